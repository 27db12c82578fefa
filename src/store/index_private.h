#ifndef TERN_STORE_INDEX_PRIVATE_H
#define TERN_STORE_INDEX_PRIVATE_H

/* Shared between index.c (database, names, lookups) and index_sync.c. */
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "store/index.h"

#define INDEX_FILE "tern-index.sqlite"

/* Prepared statements kept per handle: parsing costs more than most queries. */
#define INDEX_STMT_CACHE 40

struct index_stmt {
	const char *sql; /* the caller's text: a string literal */
	sqlite3_stmt *st;
	bool in_use;
};

/* Shared by every session of one user in this process (index_open). */
struct index {
	sqlite3 *db; /* NULL while every session waits in IDLE (index_idle_begin) */
	char *user_dir;
	dev_t dev; /* of the database file, to notice it replaced */
	ino_t ino;
	unsigned refs; /* 0: kept open for the user's next session */
	unsigned idle; /* of the refs, sessions waiting in IDLE */
	/* INDEX_STMT_CACHE of them while any is kept; NULL while none (idle). */
	struct index_stmt *stmts;
	size_t nstmts;
	struct index *next;
};

/*
 * Opens USER_DIR/tern-index.sqlite as a connection of its own, making it
 * or its tables first where needed (schema version mismatch: emptied, to
 * be rebuilt from the Maildir). index_open shares one per user on the
 * loop thread; a delivery thread opens its own (index_deliver.c).
 */
int index_db_open(const char *user_dir, sqlite3 **db_r, char **error_r);

int index_db_error(struct index *ix, const char *what, char **error_r);
/* The database file's identity (0s if it is not there). */
void index_file_id(const char *user_dir, dev_t *dev_r, ino_t *ino_r);
/*
 * A statement for sql, which must be a string literal (it is cached by its
 * address): ready to bind, to be given back with index_finish.
 */
sqlite3_stmt *index_prepare(struct index *ix, const char *sql, char **error_r);
void index_finish(struct index *ix, sqlite3_stmt *st);
int index_exec(struct index *ix, const char *sql, char **error_r);
/* Ends a failed transaction; its own errors do not matter any more. */
void index_rollback(struct index *ix);
int index_modseq_next(struct index *ix, const char *mailbox,
		      uint64_t *modseq_r, char **error_r);

/* Maildir names: the UID in ",U=" (0 if none), system flag letters. */
uint32_t index_name_uid(const char *name);
void index_name_flags(const char *name, char out[8]);
char *index_name_with_uid(const char *name, uint32_t uid);
uint64_t index_file_size(const char *name, const char *path);
time_t index_file_date(const char *name, const char *path);
/* The letters after ":2," in a Maildir name, or "" (index.c). */
const char *index_name_info(const char *name);

/* A folder's keyword map (index_keywords.c): names[i] is letter 'a' + i. */
struct index_kwmap {
	char *names[INDEX_KEYWORDS_MAX]; /* NULL where no name is given */
};

/* Reads dir/tern-keywords; a missing file is an empty map. */
int index_kwmap_load(const char *dir, struct index_kwmap *map_r, char **error_r);
void index_kwmap_clear(struct index_kwmap *map);
/* The names of the mapped keyword letters in a Maildir name's info part,
   space-separated in letter order. */
char *index_kwmap_names_of(const struct index_kwmap *map, const char *name);
/* index_keywords_letters on a loaded map (updated when letters are given). */
int index_kwmap_assign(const char *dir, struct index_kwmap *map,
		       const char *keywords, char letters_r[INDEX_KEYWORDS_MAX + 1],
		       bool *limit_r, char **error_r);

/*
 * tern-uidlist in dir (index_sync.c): read gives 1 when it is missing, -1
 * when unreadable; write is durable when it returns (tmp, fsync, rename,
 * fsync of dir).
 */
int index_uidlist_read(const char *dir, uint32_t *validity_r, uint32_t *next_r,
		       char **error_r);
int index_uidlist_write(const char *dir, uint32_t validity, uint32_t next,
			char **error_r);
/*
 * UID assignment (a sync's new files, index_append), inside the write
 * transaction. index_uid_next: the first UID to give, from the index's
 * uidnext dn and the floor fn that tern-uidlist holds now. Then
 * index_uid_reserve, before any file carries a UID below need: raises
 * the floor past need if it is not there yet, and INDEX_UID_RESERVE
 * further, so that most assignments write nothing (see index_sync.c).
 */
uint32_t index_uid_next(struct index *ix, const char *mailbox, uint32_t validity,
			uint32_t dn, uint32_t fn);
int index_uid_reserve(struct index *ix, const char *mailbox, const char *dir,
		      uint32_t validity, uint32_t fn, uint32_t need, char **error_r);
/* Forgets the floors written (at exit, for leak checkers). */
void index_uid_floors_free(void);

/*
 * ---- ENVELOPE and BODYSTRUCTURE at delivery (index_deliver.c) ----
 *
 * index_deliver_describe runs on a delivery thread once a message is
 * durable in new/ (path, its Maildir name name): it describes the file
 * (at most max_crlf bytes, its size with CRLF line ends) and inserts the texts into the
 * table "delivered" under (mailbox, unique name) through a connection of
 * its own, never the loop's shared handle. It gives no UID: index_sync
 * does that when it registers the file, and takes the texts then.
 */
int index_deliver_describe(const char *user_dir, const char *mailbox,
			   const char *path, const char *name,
			   unsigned long long max_crlf, char **error_r);

/*
 * Drops the rows of messages removed before any sync saw them (POP3's
 * expunge: a user who never uses IMAP would otherwise keep them for
 * good). names are unique names as index_deliver_describe keys them.
 */
int index_deliver_forget(const char *user_dir, const char *mailbox,
			 const char *const *names, size_t count, char **error_r);

/*
 * Inside index_sync's transaction, after a full scan: the delivered rows
 * of the mailbox are loaded, each scanned file whose unique name has one
 * is matched with its UID, and take moves the texts of matched rows into
 * messages (where nothing is cached yet) and deletes every loaded row: a
 * row is inserted only after its file is in new/, and a sync holds the
 * write lock from before its scan, so a row no scanned file matched is
 * for a file that is gone.
 */
struct index_delivered {
	char **names;             /* sorted */
	uint32_t *uids;           /* 0: no scanned file matched */
	size_t count;
};

int index_delivered_load(struct index *ix, const char *mailbox,
			 struct index_delivered *d, char **error_r);
void index_delivered_match(struct index_delivered *d, const char *name,
			   uint32_t uid);
int index_delivered_take(struct index *ix, const char *mailbox,
			 struct index_delivered *d, char **error_r);
void index_delivered_free(struct index_delivered *d);

#endif
