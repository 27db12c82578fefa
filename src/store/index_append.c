/*
 * index_append: new messages for a mailbox (COPY, MOVE, APPEND) get their
 * UIDs here, under the database write lock that index_sync takes too, with
 * the same order of durable steps (see index.h).
 */
#include "store/index.h"
#include "store/index_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"

/*
 * The mailbox's UIDVALIDITY, next UID and tern-uidlist floor inside the
 * transaction: 0, 1 when the index does not know the mailbox or disagrees
 * with its tern-uidlist (a sync must settle that first), -1 on error.
 */
static int
index_append_load(struct index *ix, const char *mailbox, const char *dir,
		  uint32_t *validity_r, uint32_t *next_r, uint32_t *floor_r,
		  char **error_r)
{
	uint32_t fv = 0, fn = 0;
	int r = index_uidlist_read(dir, &fv, &fn, error_r);
	if (r < 0)
		return -1;
	sqlite3_stmt *st = index_prepare(ix, "SELECT uidvalidity, uidnext FROM"
					 " mailboxes WHERE name = ?", error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	uint32_t dv = 0, dn = 0;
	if (rc == SQLITE_ROW) {
		dv = (uint32_t)sqlite3_column_int64(st, 0);
		dn = (uint32_t)sqlite3_column_int64(st, 1);
	}
	index_finish(ix, st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return index_db_error(ix, "select", error_r);
	if (rc == SQLITE_DONE || r == 1 || dv != fv)
		return 1;
	*validity_r = dv;
	*next_r = index_uid_next(ix, mailbox, dv, dn, fn);
	*floor_r = fn;
	return 0;
}

/* BEGIN IMMEDIATE with the mailbox known to the index (synced if not). */
static int
index_append_begin(struct index *ix, const char *mailbox, const char *dir,
		   uint32_t *validity_r, uint32_t *next_r, uint32_t *floor_r,
		   char **error_r)
{
	for (int attempt = 0;; attempt++) {
		if (index_exec(ix, "BEGIN IMMEDIATE", error_r) < 0)
			return -1;
		int r = index_append_load(ix, mailbox, dir, validity_r, next_r, floor_r,
					  error_r);
		if (r == 0)
			return 0;
		index_rollback(ix);
		if (r < 0)
			return -1;
		if (attempt > 0) {
			*error_r = xasprintf("index: mailbox %s out of step with %s",
					     mailbox, dir);
			return -1;
		}
		struct index_sync_result sr;
		if (index_sync(ix, mailbox, dir, &sr, error_r) < 0)
			return -1;
		index_sync_result_free(&sr);
	}
}

static int
index_append_row(struct index *ix, const char *mailbox, const char *dir,
		 const struct index_kwmap *map, uint32_t uid, const char *name,
		 uint64_t modseq, char **error_r)
{
	char flags[8];
	index_name_flags(name, flags);
	char *keywords = index_kwmap_names_of(map, name);
	char *path = xasprintf("%s/cur/%s", dir, name);
	sqlite3_stmt *st = index_prepare(ix, "INSERT INTO messages(mailbox, uid,"
		" basename, flags, internaldate, size_crlf, modseq, keywords)"
		" VALUES (?, ?, ?, ?, ?, ?, ?, ?)", error_r);
	int rc = SQLITE_ERROR;
	if (st != NULL) {
		sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, uid);
		sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, flags, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, (sqlite3_int64)index_file_date(name, path));
		sqlite3_bind_int64(st, 6, (sqlite3_int64)index_file_size(name, path));
		sqlite3_bind_int64(st, 7, (sqlite3_int64)modseq);
		sqlite3_bind_text(st, 8, keywords, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		index_finish(ix, st);
	}
	free(path);
	free(keywords);
	if (rc != SQLITE_DONE)
		return st == NULL ? -1 : index_db_error(ix, "insert", error_r);
	return 0;
}

/* The rows of the placed files and the new UIDNEXT (in the transaction). */
static int
index_append_rows(struct index *ix, const char *mailbox, const char *dir,
		  char *const *placed, size_t count, uint32_t first,
		  char **error_r)
{
	uint64_t modseq;
	struct index_kwmap map;
	if (index_modseq_next(ix, mailbox, &modseq, error_r) < 0 ||
	    index_kwmap_load(dir, &map, error_r) < 0)
		return -1;
	for (size_t i = 0; i < count; i++) {
		if (index_append_row(ix, mailbox, dir, &map, first + (uint32_t)i, placed[i],
				     modseq, error_r) < 0) {
			index_kwmap_clear(&map);
			return -1;
		}
	}
	index_kwmap_clear(&map);
	sqlite3_stmt *st = index_prepare(ix, "UPDATE mailboxes SET uidnext = ?"
					 " WHERE name = ?", error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)first + (sqlite3_int64)count);
	sqlite3_bind_text(st, 2, mailbox, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	index_finish(ix, st);
	return rc == SQLITE_DONE ? 0 : index_db_error(ix, "update", error_r);
}

/*
 * Renames each file into cur/ with its UID; *placed_r[i] NULL if not.
 * The renames are not durable yet: the caller fsyncs cur/ before it tells
 * the client (a crash before that leaves the file in tmp/, and the next
 * sync drops a row committed meanwhile).
 */
static int
index_append_place(const char *dir, const char *const *names, size_t count,
		   uint32_t first, char **placed, char **error_r)
{
	for (size_t i = 0; i < count; i++) {
		char *name = index_name_with_uid(names[i], first + (uint32_t)i);
		char *from = xasprintf("%s/tmp/%s", dir, names[i]);
		char *to = xasprintf("%s/cur/%s", dir, name);
		int r = rename(from, to);
		if (r < 0) {
			*error_r = xasprintf("rename %s: %s", from, strerror(errno));
			free(name);
		} else {
			placed[i] = name;
		}
		free(from);
		free(to);
		if (r < 0)
			return -1;
	}
	return 0;
}

/* Removes every file of a failed append, wherever it got to. */
static void
index_append_undo(const char *dir, const char *const *names, char **placed,
		  size_t count)
{
	bool any = false;
	for (size_t i = 0; i < count; i++) {
		char *path = placed != NULL && placed[i] != NULL ?
			xasprintf("%s/cur/%s", dir, placed[i]) :
			xasprintf("%s/tmp/%s", dir, names[i]);
		any |= placed != NULL && placed[i] != NULL;
		unlink(path);
		free(path);
	}
	if (any) {
		char *cur = xasprintf("%s/cur", dir);
		fsync_dir(cur);
		free(cur);
	}
}

int
index_append(struct index *ix, const char *mailbox, const char *dir,
	     const char *const *names, size_t count, uint32_t *uidvalidity_r,
	     uint32_t *uids_r, char **error_r)
{
	uint32_t validity = 0, next = 0, floor = 0;
	if (index_append_begin(ix, mailbox, dir, &validity, &next, &floor, error_r) < 0) {
		index_append_undo(dir, names, NULL, count);
		return -1;
	}
	char **placed = xcalloc(count + 1, sizeof(*placed));
	char *cur = xasprintf("%s/cur", dir);
	int r = 0;
	if (count == 0 || count >= UINT32_MAX - next) {
		*error_r = xasprintf("%s: %s", mailbox,
				     count == 0 ? "nothing to append" : "UIDs exhausted");
		r = -1;
	} else if (mkdir_p(cur, 0700) < 0) {
		*error_r = xasprintf("mkdir %s: %s", cur, strerror(errno));
		r = -1;
	}
	/*
	 * The floor first (RFC 3501 §2.3.1.1): once a file carries a UID in
	 * its name, no crash may let that UID be handed out again, even with
	 * the index lost.
	 */
	if (r == 0)
		r = index_uid_reserve(ix, mailbox, dir, validity, floor, next + (uint32_t)count,
				      error_r);
	if (r == 0)
		r = index_append_place(dir, names, count, next, placed, error_r);
	if (r == 0)
		r = index_append_rows(ix, mailbox, dir, placed, count, next, error_r);
	if (r == 0)
		r = index_exec(ix, "COMMIT", error_r);
	if (r < 0) {
		index_rollback(ix);
		index_append_undo(dir, names, placed, count);
	} else {
		*uidvalidity_r = validity;
		for (size_t i = 0; i < count; i++)
			uids_r[i] = next + (uint32_t)i;
	}
	for (size_t i = 0; i < count; i++)
		free(placed[i]);
	free(placed);
	free(cur);
	return r;
}

