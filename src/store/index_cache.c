/*
 * The ENVELOPE and BODYSTRUCTURE cache in the messages table (see
 * index.h). A message file never changes once delivered (flags live in
 * its name), so what is computed from it once stays true for its UID.
 */
#include "store/index.h"
#include "store/index_private.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"

static char *
index_cache_column(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	if (t == NULL)
		return NULL;
	size_t n = (size_t)sqlite3_column_bytes(st, col);
	char *s = xmalloc(n + 1);
	memcpy(s, t, n);
	s[n] = '\0';
	return s;
}

int
index_cache_get(struct index *ix, const char *mailbox, uint32_t uid,
		char **envelope_r, char **bodystructure_r, char **error_r)
{
	*envelope_r = NULL;
	*bodystructure_r = NULL;
	sqlite3_stmt *st = index_prepare(ix, "SELECT envelope, bodystructure"
		" FROM cache WHERE mailbox = ? AND uid = ?", error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, uid);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*envelope_r = index_cache_column(st, 0);
		*bodystructure_r = index_cache_column(st, 1);
	}
	index_finish(ix, st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return index_db_error(ix, "select", error_r);
	if (*envelope_r == NULL || *bodystructure_r == NULL) {
		/* Both or neither: they are stored together. */
		free(*envelope_r);
		free(*bodystructure_r);
		*envelope_r = NULL;
		*bodystructure_r = NULL;
	}
	return 0;
}

int
index_cache_set(struct index *ix, const char *mailbox, uint32_t uid,
		const char *envelope, const char *bodystructure, char **error_r)
{
	/* Only for a message the index has (a row a client may see). */
	sqlite3_stmt *st = index_prepare(ix, "INSERT OR REPLACE INTO cache(envelope,"
		" bodystructure, mailbox, uid) SELECT ?1, ?2, ?3, ?4 WHERE EXISTS"
		" (SELECT 1 FROM messages WHERE mailbox = ?3 AND uid = ?4)", error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, envelope, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, bodystructure, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, mailbox, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, uid);
	int rc = sqlite3_step(st);
	index_finish(ix, st);
	if (rc != SQLITE_DONE)
		return index_db_error(ix, "update", error_r);
	return 0;
}
