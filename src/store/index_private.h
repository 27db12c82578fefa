#ifndef TERN_STORE_INDEX_PRIVATE_H
#define TERN_STORE_INDEX_PRIVATE_H

/* Shared between index.c (database, names, lookups) and index_sync.c. */
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "store/index.h"

/* Prepared statements kept per handle: parsing costs more than most queries. */
#define INDEX_STMT_CACHE 40

struct index_stmt {
	const char *sql; /* the caller's text: a string literal */
	sqlite3_stmt *st;
	bool in_use;
};

/* Shared by every session of one user in this process (index_open). */
struct index {
	sqlite3 *db;
	char *user_dir;
	dev_t dev; /* of the database file, to notice it replaced */
	ino_t ino;
	unsigned refs; /* 0: kept open for the user's next session */
	struct index_stmt stmts[INDEX_STMT_CACHE];
	size_t nstmts;
	struct index *next;
};

int index_db_error(struct index *ix, const char *what, char **error_r);
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

#endif
