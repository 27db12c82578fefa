/*
 * The table cache (see index.h): what a message's text says, computed
 * once. A message file never changes once delivered (flags live in its
 * name), so what is computed from it once stays true for its UID.
 */
#include "store/index.h"
#include "store/index_private.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mime/mime_imap.h"
#include "mime/mime_search.h"

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
		struct index_cache_entry *e, char **error_r)
{
	memset(e, 0, sizeof(*e));
	e->uid = uid;
	sqlite3_stmt *st = index_prepare(ix, "SELECT envelope, bodystructure, fields"
		" FROM cache WHERE mailbox = ? AND uid = ?", error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, uid);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		e->envelope = index_cache_column(st, 0);
		e->bodystructure = index_cache_column(st, 1);
		e->fields = index_cache_column(st, 2);
	}
	index_finish(ix, st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return index_db_error(ix, "select", error_r);
	if (e->envelope == NULL || e->bodystructure == NULL || e->fields == NULL)
		index_cache_entry_clear(e); /* all or nothing: stored together */
	return 0;
}

int
index_cache_set(struct index *ix, const char *mailbox, const struct index_cache_entry *e,
		size_t n, char **error_r)
{
	if (n == 0)
		return 0;
	if (index_exec(ix, "BEGIN IMMEDIATE", error_r) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		/* Only for a message the index has (a row a client may see). */
		sqlite3_stmt *st = index_prepare(ix, "INSERT OR REPLACE INTO cache(mailbox,"
			" uid, envelope, bodystructure, fields) SELECT ?1, ?2, ?3, ?4, ?5"
			" WHERE EXISTS (SELECT 1 FROM messages WHERE mailbox = ?1 AND uid = ?2)",
			error_r);
		if (st == NULL) {
			index_rollback(ix);
			return -1;
		}
		sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, e[i].uid);
		sqlite3_bind_text(st, 3, e[i].envelope, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, e[i].bodystructure, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, e[i].fields, -1, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		index_finish(ix, st);
		if (rc != SQLITE_DONE) {
			index_db_error(ix, "insert", error_r);
			index_rollback(ix);
			return -1;
		}
	}
	return index_exec(ix, "COMMIT", error_r);
}

void
index_cache_entry_clear(struct index_cache_entry *e)
{
	free(e->envelope);
	free(e->bodystructure);
	free(e->fields);
	e->envelope = e->bodystructure = e->fields = NULL;
}

int
index_cache_describe(const char *data, size_t len, struct index_cache_entry *e,
		     char **error_r)
{
	if (mime_imap_describe(data, len, &e->envelope, &e->bodystructure, error_r) < 0)
		return -1;
	struct mime_search *ms = mime_search_new(data, len);
	e->fields = mime_search_fields(ms);
	mime_search_free(&ms);
	return 0;
}
