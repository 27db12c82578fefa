#ifndef TERN_IMAP_IMAP_PRIVATE_H
#define TERN_IMAP_IMAP_PRIVATE_H

/* What the files of the IMAP session share (imap_session.c, imap_auth.c,
   imap_mailbox.c); not for other modules. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "imap/imap_parse.h"

struct conn;
struct dirwatch;
struct event;
struct imap_arg;
struct imap_job;
struct index;
struct sasl;
struct server;
struct userdb_check;

enum imap_state {
	IMAP_STATE_NOTAUTH = 1 << 0,
	IMAP_STATE_AUTH = 1 << 1,
	IMAP_STATE_SELECTED = 1 << 2,
};

/* UIDs lo..hi (inclusive). */
struct imap_uid_range {
	uint32_t lo, hi;
};

/*
 * The selected mailbox (RFC 3501 §6.3.1). uids maps sequence numbers to
 * UIDs. It changes only through imap_sync (imap_sync.c), which reports
 * each change to the client as §7.4.1 requires: new messages (EXISTS) at
 * any command, expunges only where sequence numbers cannot be confused.
 */
struct imap_selected {
	char *name;         /* canonical wire name, the index's key */
	char *dir;          /* its Maildir directory */
	bool readonly;      /* EXAMINE */
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint32_t *uids;     /* uids[seq - 1], ascending; may hold expunges not yet reported */
	uint32_t count;
	/* What the index said at the last sync, to skip work when nothing moved. */
	uint64_t seen_modseq;
	uint32_t known_uidnext;
	uint32_t recent_count; /* messages of uids that are \Recent here */
	/* \Recent here: UIDs claimed by this session (index_recent_claim);
	   for EXAMINE, every UID from recent_floor up. */
	struct imap_uid_range *recent;
	size_t nrecent;
	uint32_t recent_floor;
	/* new/ and cur/ mtimes at the last Maildir scan (0: scan next time). */
	long long new_mtime, cur_mtime;
};

struct imap_session {
	struct server *srv;
	struct conn *conn;
	struct imap_parser *parser;
	enum proto proto;
	enum imap_state state;
	char id[13];
	/* The tag of the command under way, kept past the parser's lifetime
	   (AUTHENTICATE continuations, the delayed answer to a failed login). */
	char tag[IMAP_PARSE_TAG_MAX + 1];
	bool discarding;   /* throwing away the rest of a rejected command */
	bool logged_out;
	bool delayed;
	bool idling;       /* between IDLE's "+" and DONE */
	unsigned bad_commands;
	unsigned auth_failures;
	struct sasl *sasl; /* an AUTHENTICATE exchange under way */
	/* A LOGIN's password check on the pool; input waits for it. */
	struct userdb_check *login_check;
	char *login_name;  /* its claimed name, for the failure log */
	char *address;     /* the canonical user once logged in */
	char *mail_root;
	struct index *index; /* opened at the first SELECT, EXAMINE or STATUS */
	struct imap_selected sel; /* valid in IMAP_STATE_SELECTED */
	struct imap_fetch_run *fetch; /* a FETCH waiting for its output to drain */
	struct imap_job *job; /* a command's part on the work pool; input waits */
	struct dirwatch *idle_watch;
	/* While idling, sel.uids may be kept here as runs instead
	   (imap_idle.c); sel.uids is then NULL. */
	struct imap_uid_range *idle_runs;
	uint32_t idle_nruns;
};

typedef int imap_cmd_fn(struct imap_session *s, const struct imap_arg *args, size_t argc);

/* "TAG BAD reason", counting bad commands; may close the session. */
void imap_reply_bad(struct imap_session *s, const char *reason);
/* The CAPABILITY list for the current state (no leading "CAPABILITY"). */
void imap_capabilities(const struct imap_session *s, struct buf *out);

/* imap_auth.c */
bool imap_auth_allowed(const struct imap_session *s);
void imap_auth_reset(struct imap_session *s);
void imap_auth_response(struct imap_session *s, const char *line);
imap_cmd_fn imap_cmd_login, imap_cmd_authenticate;

/* imap_mailbox.c */
imap_cmd_fn imap_cmd_list, imap_cmd_lsub, imap_cmd_create, imap_cmd_delete,
	imap_cmd_rename, imap_cmd_subscribe, imap_cmd_unsubscribe;
/* Writes a mailbox name as a quoted string (RFC 3501 §9 quoted). */
void imap_append_quoted(struct buf *out, const char *name);

/* imap_select.c */
imap_cmd_fn imap_cmd_select, imap_cmd_examine, imap_cmd_status, imap_cmd_close,
	imap_cmd_unselect;
/* Leaves the selected state (if in it) and closes the index: session end. */
void imap_select_free(struct imap_session *s);
/* Opens the user's index if it is not open yet. */
int imap_index_ensure(struct imap_session *s, char **error_r);

/* imap_fetch.c: FETCH and UID FETCH (RFC 3501 §6.4.5, §6.4.8). */
imap_cmd_fn imap_cmd_fetch;
/* The client read most of what was sent: a FETCH under way goes on. */
void imap_fetch_drained(struct imap_session *s);
void imap_fetch_free(struct imap_session *s);

/* imap_store.c: STORE, EXPUNGE, UID STORE, UID EXPUNGE (RFC 3501 §6.4.6,
   §6.4.3; RFC 4315). */
imap_cmd_fn imap_cmd_store, imap_cmd_expunge;
struct imap_seqset;
struct index_msg;
/* "FLAGS (...)" of a message (§7.4.2): system flags, \Recent when it is
   recent in this session, then its keywords. */
void imap_write_msg_flags(struct buf *out, const struct imap_session *s,
			  const struct index_msg *m);
/*
 * "* FLAGS (...)" and "* OK [PERMANENTFLAGS (...)]" for the mailbox in
 * dir (§7.2.6, §7.1): the system flags and its keywords, and \* while it
 * has room for new keywords; PERMANENTFLAGS () when readonly.
 */
void imap_write_flag_lists(const struct imap_session *s, const char *dir,
			   bool readonly, struct buf *out);
/*
 * Removes the \Deleted messages (only those whose UIDs are in uids, if
 * not NULL), syncs the index and updates the session's map, writing
 * "* n EXPUNGE" (and "* n EXISTS" for new mail) to out if report.
 * *removed_r: files went, and cur/ must be fsynced before the OK
 * (imap_reply_durable).
 */
int imap_store_expunge(struct imap_session *s, struct imap_seqset *uids, bool report,
		       struct buf *out, bool *removed_r, char **error_r);

/* imap_job.c: a command's blocking part on the work pool, the session
   paused meanwhile (see there). */
typedef void imap_job_fn(void *arg);
/* s is NULL when the session ended meanwhile: only clean up then. */
typedef void imap_job_done_fn(struct imap_session *s, void *arg);
void imap_job_start(struct imap_session *s, imap_job_fn *work, imap_job_done_fn *done,
		    void *arg);
/* Session end: a job under way finishes without it. */
void imap_job_orphan(struct imap_session *s);
/*
 * Sends out (taking it) once dir/cur/ and also/cur/ are fsynced, so that
 * the renames and unlinks of the command are durable before its tagged
 * OK, which starts at out->data + tagged_at; if an fsync fails, NO
 * replaces that line. Either Maildir may be NULL; both NULL: nothing to
 * make durable, out goes at once.
 */
void imap_reply_durable(struct imap_session *s, const char *dir, const char *also,
			struct buf *out, size_t tagged_at);

/* imap_idle.c: IDLE (RFC 2177). */
imap_cmd_fn imap_cmd_idle;
/* A line while idling: DONE ends it (anything else is BAD and ends it too). */
void imap_idle_line(struct imap_session *s, const char *line);
/* Ends IDLE without a reply (session end). */
void imap_idle_stop(struct imap_session *s);

/* imap_search.c: SEARCH and UID SEARCH (RFC 3501 §6.4.4), with RFC 4731's
   RETURN options (ESEARCH). */
imap_cmd_fn imap_cmd_search;

/* imap_sync.c */
/*
 * Syncs the selected mailbox with the Maildir and applies what changed to
 * the session's map; with report, writes "* n EXPUNGE" and "* n EXISTS"
 * to out (report false: for CLOSE, which must stay silent).
 */
int imap_sync(struct imap_session *s, bool report, struct buf *out, char **error_r);
enum imap_sync_mode {
	IMAP_SYNC_SILENT,      /* apply, report nothing (CLOSE) */
	IMAP_SYNC_NO_EXPUNGE,  /* report EXISTS, RECENT, FETCH; keep expunges for later */
	IMAP_SYNC_FULL,        /* report everything */
};
/* The check before each command in the selected state (and at an IDLE
   wake-up): writes what changed to the client; does nothing when neither
   the Maildir nor the index moved since the last one. */
void imap_sync_report(struct imap_session *s, enum imap_sync_mode mode);
/* SELECT/EXAMINE: fills s->sel (name, dir and readonly set by the caller)
   from a fresh sync; the unseen count and first unseen sequence number
   are for the SELECT response. */
int imap_sync_open(struct imap_session *s, uint32_t *unseen_r, uint32_t *first_unseen_r,
		   char **error_r);
/* After a command that changed flags itself and told the client so: those
   changes are not reported back to it as untagged FETCH. */
void imap_sync_settle(struct imap_session *s);
/* Whether a message is \Recent in this session (RFC 3501 §2.3.2). */
bool imap_msg_recent(const struct imap_session *s, uint32_t uid);
/* A flag list "(\Seen kw \Recent)" for FETCH responses. */
void imap_write_flags(const struct imap_session *s, struct buf *out, uint32_t uid,
		      const char *letters, const char *keywords);

/* imap_copy.c: COPY, MOVE and their UID forms (RFC 3501 §6.4.7, RFC 6851),
   with COPYUID (RFC 4315 §3). */
imap_cmd_fn imap_cmd_copy, imap_cmd_move;

/* imap_append.c: APPEND (RFC 3501 §6.3.11) with APPENDUID (RFC 4315 §3)
   and APPENDLIMIT (RFC 7889). */
imap_cmd_fn imap_cmd_append;
/* The largest message APPEND takes: APPENDLIMIT=n and the literal limit. */
uint64_t imap_append_limit(const struct imap_session *s);
/*
 * The mailbox a COPY, MOVE or APPEND writes to: its canonical name and
 * Maildir directory (free both), the index open. 0; or -1 after the tagged
 * NO ([TRYCREATE] when it does not exist, RFC 3501 §6.3.11, §6.4.7).
 */
int imap_target_open(struct imap_session *s, const char *name, char **canon_r,
		     char **dir_r);

#endif
