/*
 * What a session needs to keep its view of a mailbox current: the
 * mailbox's counters in one query, its messages in one query, and the
 * \Recent claim; and SEARCH's walk through every message.
 */
#include "store/index.h"
#include "store/index_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

int
index_mailbox_state(struct index *ix, const char *mailbox,
		    struct index_mailbox_state *r, char **error_r)
{
	memset(r, 0, sizeof(*r));
	sqlite3_stmt *st = index_prepare(ix, "SELECT uidvalidity, uidnext,"
		" highestmodseq, recentuid, messages"
		" FROM mailboxes WHERE name = ?", error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		r->uidvalidity = (uint32_t)sqlite3_column_int64(st, 0);
		r->uidnext = (uint32_t)sqlite3_column_int64(st, 1);
		r->highestmodseq = (uint64_t)sqlite3_column_int64(st, 2);
		r->recentuid = (uint32_t)sqlite3_column_int64(st, 3);
		r->count = (uint32_t)sqlite3_column_int64(st, 4);
	}
	index_finish(ix, st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return index_db_error(ix, "select", error_r);
	return 0;
}

int
index_list(struct index *ix, const char *mailbox, struct index_entry **r,
	   size_t *n_r, char **error_r)
{
	*r = NULL;
	*n_r = 0;
	sqlite3_stmt *st = index_prepare(ix, "SELECT uid, flags, keywords, modseq"
		" FROM messages WHERE mailbox = ? ORDER BY uid", error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n_r == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			*r = xrealloc(*r, cap * sizeof(**r));
		}
		struct index_entry *e = &(*r)[(*n_r)++];
		e->uid = (uint32_t)sqlite3_column_int64(st, 0);
		snprintf(e->flags, sizeof(e->flags), "%s",
			 (const char *)sqlite3_column_text(st, 1));
		e->keywords = xstrdup((const char *)sqlite3_column_text(st, 2));
		e->modseq = (uint64_t)sqlite3_column_int64(st, 3);
	}
	index_finish(ix, st);
	if (rc != SQLITE_DONE) {
		index_entries_free(r, n_r);
		return index_db_error(ix, "select", error_r);
	}
	return 0;
}

void
index_entries_free(struct index_entry **r, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		free((*r)[i].keywords);
	free(*r);
	*r = NULL;
	*n = 0;
}

int
index_recent_claim(struct index *ix, const char *mailbox, uint32_t *first_r,
		   uint32_t *end_r, char **error_r)
{
	*first_r = *end_r = 0;
	if (index_exec(ix, "BEGIN IMMEDIATE", error_r) < 0)
		return -1;
	sqlite3_stmt *st = index_prepare(ix, "SELECT recentuid, uidnext FROM mailboxes"
		" WHERE name = ?", error_r);
	if (st == NULL) {
		index_rollback(ix);
		return -1;
	}
	sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	uint32_t recent = 0, next = 0;
	if (rc == SQLITE_ROW) {
		recent = (uint32_t)sqlite3_column_int64(st, 0);
		next = (uint32_t)sqlite3_column_int64(st, 1);
	}
	index_finish(ix, st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		index_db_error(ix, "select", error_r);
		index_rollback(ix);
		return -1;
	}
	if (rc == SQLITE_ROW && recent < next) {
		st = index_prepare(ix, "UPDATE mailboxes SET recentuid = ? WHERE name = ?",
				   error_r);
		if (st == NULL) {
			index_rollback(ix);
			return -1;
		}
		sqlite3_bind_int64(st, 1, next);
		sqlite3_bind_text(st, 2, mailbox, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		index_finish(ix, st);
		if (rc != SQLITE_DONE) {
			index_db_error(ix, "update", error_r);
			index_rollback(ix);
			return -1;
		}
		*first_r = recent;
		*end_r = next;
	}
	return index_exec(ix, "COMMIT", error_r);
}

struct index_walk {
	struct index *ix;
	sqlite3_stmt *st;
	const char *dir;
};

int
index_walk_begin(struct index *ix, const char *mailbox, const char *dir,
		 struct index_walk **w_r, char **error_r)
{
	*w_r = NULL;
	sqlite3_stmt *st = index_prepare(ix, "SELECT m.uid, m.basename, m.flags,"
		" m.internaldate, m.size_crlf, m.modseq, m.keywords, c.fields"
		" FROM messages m LEFT JOIN cache c USING (mailbox, uid)"
		" WHERE m.mailbox = ? ORDER BY m.uid", error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_TRANSIENT);
	struct index_walk *w = xcalloc(1, sizeof(*w));
	w->ix = ix;
	w->st = st;
	w->dir = dir;
	*w_r = w;
	return 0;
}

int
index_walk_next(struct index_walk *w, struct index_msg *msg_r, char **fields_r,
		char **error_r)
{
	*fields_r = NULL;
	int rc = sqlite3_step(w->st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return index_db_error(w->ix, "select", error_r);
	memset(msg_r, 0, sizeof(*msg_r));
	msg_r->uid = (uint32_t)sqlite3_column_int64(w->st, 0);
	msg_r->path = xasprintf("%s/cur/%s", w->dir,
				(const char *)sqlite3_column_text(w->st, 1));
	snprintf(msg_r->flags, sizeof(msg_r->flags), "%s",
		 (const char *)sqlite3_column_text(w->st, 2));
	msg_r->internaldate = (time_t)sqlite3_column_int64(w->st, 3);
	msg_r->size = (uint64_t)sqlite3_column_int64(w->st, 4);
	msg_r->modseq = (uint64_t)sqlite3_column_int64(w->st, 5);
	msg_r->keywords = xstrdup((const char *)sqlite3_column_text(w->st, 6));
	const unsigned char *f = sqlite3_column_text(w->st, 7);
	if (f != NULL)
		*fields_r = xstrdup((const char *)f);
	return 1;
}

void
index_walk_end(struct index_walk **wp)
{
	struct index_walk *w = *wp;
	if (w == NULL)
		return;
	index_finish(w->ix, w->st);
	free(w);
	*wp = NULL;
}
