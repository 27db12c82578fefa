#ifndef TERN_STORE_INDEX_H
#define TERN_STORE_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/*
 * The per-user IMAP index: one SQLite database (WAL, synchronous=NORMAL)
 * at USER_DIR/tern-index.sqlite holding, per mailbox, UIDVALIDITY, UIDNEXT
 * and HIGHESTMODSEQ, and per message its UID, file name, flags and sizes.
 *
 * The Maildir is the durable truth and the index a cache of it. Because
 * IMAP forbids reusing a UID even after a crash (RFC 3501 §2.3.1.1), the
 * UIDs are kept in the Maildir too: a message given a UID is renamed to
 * carry ",U=<uid>" in its base name, and each folder directory keeps
 * UIDVALIDITY and a UIDNEXT floor in the small file "tern-uidlist". A lost
 * index is rebuilt from those two alone.
 *
 * Mailboxes are named by their IMAP wire name; "dir" is the folder's
 * Maildir directory (store_folder_path). Functions return 0, or -1 with
 * *error_r set (free it): an I/O or database error, to be treated as
 * temporary.
 */
struct index;

struct index_sync_result {
	uint32_t exists;          /* messages in the mailbox after the sync */
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint32_t *new_uids;       /* ascending */
	size_t new_count;
	uint32_t *expunged_uids;  /* ascending */
	size_t expunged_count;
	size_t flag_changes;      /* messages whose flags other tools changed */
};

/* A message as the index knows it; free its strings with index_msg_clear. */
struct index_msg {
	uint32_t uid;
	char *path;               /* dir/cur/<basename> */
	char flags[8];            /* system flags as sorted letters: "DFRST" */
	char *keywords;           /* IMAP keywords, space-separated; "" if none */
	time_t internaldate;
	uint64_t size;            /* CRLF form */
	uint64_t modseq;
};

/*
 * The mtime (ns) of DIR/SUB, or 0 when it cannot be trusted to show the
 * next change: the kernel stamps with a coarse clock (a tick, a few ms), so
 * a change in the same tick as the last one leaves the mtime as it was. A
 * directory changed within the last INDEX_MTIME_MARGIN_NS counts as
 * changed; an older mtime is followed by any later change's, at least a
 * tick later. index_sync skips its scan while both new/ and cur/ keep the
 * mtimes its last scan saw.
 */
#define INDEX_MTIME_MARGIN_NS (100 * 1000000LL)
long long index_dir_mtime(const char *dir, const char *sub);

/*
 * Opens (creating if needed) USER_DIR/tern-index.sqlite; the callers in one
 * process that open one user's index share a handle. After the last close
 * the handle stays open, trimmed, for the user's next session (mail
 * clients reconnect often), up to INDEX_KEEP_OPEN handles.
 */
struct index *index_open(const char *user_dir, char **error_r);
void index_close(struct index **ix);
#define INDEX_KEEP_OPEN 64
/* Closes the handles kept open that no session uses (at exit). */
void index_close_unused(void);
/* Closes the calling thread's connections of local delivery (the loop's
   at exit; a delivery thread's close by themselves when it ends). */
void index_deliver_release(void);

/*
 * A session of the handle enters IDLE, or leaves it. While every session
 * of a handle waits in IDLE, the handle holds no database connection: the
 * next use opens it again. index_rest closes it again after work done
 * during IDLE (a wake-up's sync).
 */
void index_idle_begin(struct index *ix);
void index_idle_end(struct index *ix);
void index_rest(struct index *ix);

/*
 * Brings the index of one mailbox up to date with dir/new and dir/cur:
 * new files get UIDs in arrival order (the leading "<sec>.M<usec>" of
 * their names) and move to cur/ as "<base>,U=<uid>:2,<flags>"; flag
 * changes made by other tools are picked up; vanished files become
 * expunged UIDs. Free *r with index_sync_result_free.
 */
int index_sync(struct index *ix, const char *mailbox, const char *dir,
	       struct index_sync_result *r, char **error_r);
void index_sync_result_free(struct index_sync_result *r);
/*
 * ternd: the fsyncs that make a sync's renames durable go to pool's
 * threads, unwaited for (index_sync.c says why that is safe); without a
 * pool they are made before index_sync returns.
 */
struct workpool;
void index_sync_use_pool(struct workpool *pool);

/*
 * Forgets what the index knows of the mailbox and syncs it anew (tern
 * reindex): UIDs come back from the ",U=" in the names, UIDVALIDITY and
 * the UIDNEXT floor from tern-uidlist.
 */
int index_rebuild(struct index *ix, const char *mailbox, const char *dir,
		  struct index_sync_result *r, char **error_r);

/* How far past the UIDs in use tern-uidlist's floor is raised when it must
   move (index_sync.c says why); a lost index resumes from the floor. */
#define INDEX_UID_RESERVE 64

/* Lookups after a sync. seq counts from 1 in ascending UID order. */
int index_count(struct index *ix, const char *mailbox, uint32_t *count_r,
		char **error_r);
/* *uid_r is 0 when seq is out of range. */
int index_uid_at(struct index *ix, const char *mailbox, uint32_t seq,
		 uint32_t *uid_r, char **error_r);
/* *found_r is 0 when the UID is not in the index. */
int index_msg_get(struct index *ix, const char *mailbox, const char *dir,
		  uint32_t uid, struct index_msg *msg_r, int *found_r,
		  char **error_r);
void index_msg_clear(struct index_msg *msg);

/*
 * Lookups between begin and end share one transaction: one snapshot and
 * one round of locks instead of one per lookup. Nothing may change the
 * index in between (for loops of reads such as SEARCH's).
 */
int index_read_begin(struct index *ix, char **error_r);
void index_read_end(struct index *ix);

/*
 * Replaces the system flags of a message (letters from "DFRST", any
 * order; others are refused): renames its file's ":2," part (letters
 * sorted, as Maildir wants; lowercase keyword letters of other tools
 * kept), then updates the row with a new modseq. -1 if the file is gone
 * (the caller should sync). The rename is not durable yet: the caller
 * fsyncs cur/ once, after all of a command's changes, before it says OK.
 */
int index_set_flags(struct index *ix, const char *mailbox, const char *dir,
		    uint32_t uid, const char *flags, char **error_r);

/* ---- the session's view (index_view.c) ---- */

struct index_mailbox_state {
	uint32_t uidvalidity, uidnext, count;
	uint64_t highestmodseq;
	uint32_t recentuid;       /* the lowest UID no session has seen as \Recent */
};

/* One message's changeable state. */
struct index_entry {
	uint32_t uid;
	char flags[8];
	char *keywords;
	uint64_t modseq;
};

/*
 * Every message of a mailbox, ascending UID, as index_msg_get gives each
 * (clear it with index_msg_clear), with the header fields kept for SEARCH
 * (*fields_r, to free; NULL when none are). next: 1, 0 at the end, -1 on
 * error. For a loop of reads: inside index_read_begin/end.
 */
struct index_walk;
int index_walk_begin(struct index *ix, const char *mailbox, const char *dir,
		     struct index_walk **w_r, char **error_r);
int index_walk_next(struct index_walk *w, struct index_msg *msg_r, char **fields_r,
		    char **error_r);
void index_walk_end(struct index_walk **w);

/* All zero when the mailbox has never been synced. */
int index_mailbox_state(struct index *ix, const char *mailbox,
			struct index_mailbox_state *r, char **error_r);
/* Every message, ascending UID; free with index_entries_free. */
int index_list(struct index *ix, const char *mailbox, struct index_entry **r,
	       size_t *n_r, char **error_r);
void index_entries_free(struct index_entry **r, size_t *n);
/*
 * \Recent (RFC 3501 §2.3.2): a message is recent in the first session
 * that selects its mailbox read-write after it arrived. Claims the UIDs
 * [*first_r, *end_r) for the caller (an empty range when another session
 * had them) and moves the mailbox's recentuid past them.
 */
int index_recent_claim(struct index *ix, const char *mailbox, uint32_t *first_r,
		       uint32_t *end_r, char **error_r);

/*
 * Keywords (RFC 3501 §2.3.2 flag-keyword). A message's keywords are the
 * lowercase letters a-z after ":2," in its file name, the convention other
 * Maildir tools follow; each folder maps letters to names in its file
 * "tern-keywords" ("<letter> <name>" lines, written tmp + fsync + rename).
 * A letter once given keeps its name for good, so that a rebuilt index
 * reads the same keywords: a folder has at most INDEX_KEYWORDS_MAX of
 * them. Names match case-insensitively; the first spelling is kept.
 * Letters with no name in the map (set by other tools) are kept in file
 * names but are no keyword.
 */
#define INDEX_KEYWORDS_MAX 26
#define INDEX_KEYWORD_LEN_MAX 128

/* A keyword tern keeps: an IMAP atom of at most INDEX_KEYWORD_LEN_MAX
   printable ASCII characters, not starting with a backslash. */
bool index_keyword_valid(const char *s, size_t len);

/*
 * The folder's keywords in letter order, space-separated ("" if none),
 * and how many letters are given (INDEX_KEYWORDS_MAX: no room for more).
 */
int index_keywords_names(const char *dir, char **names_r, size_t *count_r,
			 char **error_r);

/*
 * The sorted letters (a-z) for the space-separated keyword names in the
 * folder dir, giving letters to names not yet mapped; the map is durable
 * before this returns, so a file may carry the letters at once. For COPY
 * and APPEND: a new message's name ends in ":2," + its system flag
 * letters + these letters (uppercase sorts first, so the whole stays
 * sorted). When the names would need more than INDEX_KEYWORDS_MAX
 * letters: -1 with *limit_r true (NO [LIMIT]), and nothing is changed;
 * other errors leave *limit_r false.
 */
int index_keywords_letters(const char *dir, const char *keywords,
			   char letters_r[INDEX_KEYWORDS_MAX + 1], bool *limit_r,
			   char **error_r);

/*
 * As index_set_flags, and the keywords replaced by the space-separated
 * names (letters given as index_keywords_letters does; *limit_r as
 * there).
 */
int index_set_flags_keywords(struct index *ix, const char *mailbox,
			     const char *dir, uint32_t uid, const char *flags,
			     const char *keywords, bool *limit_r, char **error_r);

/*
 * What a message's text says, computed once (index_cache.c): its IMAP
 * ENVELOPE and BODYSTRUCTURE (the exact texts of mime_imap_describe) and
 * the folded header fields SEARCH asks for most (mime_search_fields),
 * kept in the table "cache" until the message's row goes.
 */
struct index_cache_entry {
	uint32_t uid;
	char *envelope, *bodystructure, *fields;
};
/* All three texts, or none (nothing cached yet, or no such message). */
int index_cache_get(struct index *ix, const char *mailbox, uint32_t uid,
		    struct index_cache_entry *e_r, char **error_r);
/* Stores n entries in one transaction, skipping messages no longer in the
   index. */
int index_cache_set(struct index *ix, const char *mailbox,
		    const struct index_cache_entry *e, size_t n, char **error_r);
void index_cache_entry_clear(struct index_cache_entry *e);
/* Computes the three texts of a message (LF or CRLF form; any thread). */
int index_cache_describe(const char *data, size_t len, struct index_cache_entry *e,
			 char **error_r);

/*
 * ---- Adding messages: COPY, MOVE, APPEND (index_append.c) ----
 *
 * The one way UIDs are handed out besides index_sync, and under the same
 * database write lock, so two sessions never give out one UID twice.
 *
 * names are files already complete and durable in dir/tmp/ (a copy's hard
 * link, an APPEND's fsynced file). Each may carry a Maildir info part
 * (":2,<letters>"), kept as it is; the leading "<sec>." of a name is the
 * message's INTERNALDATE (store_unique_name). In order, under the lock:
 * the mailbox is synced first if the index does not know it yet; the
 * tern-uidlist floor is raised past the new UIDs and made durable; each
 * file is renamed to dir/cur/<base>,U=<uid>:2,<info>; the rows are
 * inserted and committed. The renames are durable only once the caller
 * has fsynced dir/cur/, which it must do before it reports success.
 * uids_r[i] (count of them, room given by the caller) is the UID of
 * names[i]: consecutive, ascending.
 *
 * On failure nothing was added (RFC 3501 §6.4.7 asks the destination to
 * be left as it was): every file, placed or still in tmp/, is removed.
 */
int index_append(struct index *ix, const char *mailbox, const char *dir,
		 const char *const *names, size_t count, uint32_t *uidvalidity_r,
		 uint32_t *uids_r, char **error_r);

#endif
