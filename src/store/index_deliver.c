/*
 * ENVELOPE and BODYSTRUCTURE computed at delivery (see index_private.h),
 * so that a FETCH of them never parses the message: the delivery thread
 * describes the file it has just written (still in the page cache) and
 * leaves the texts in the table "delivered"; the loop's index_sync moves
 * them into the table "cache" when it gives the file its UID.
 *
 * All of this is a cache: a row lost (a failed insert, a crash, a
 * rebuilt index) only means that the first FETCH computes the texts, as
 * it does for a file another tool put into the Maildir.
 */
#include "store/index.h"
#include "store/index_private.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/util.h"

/* The Maildir unique name: up to the first ',' (",S=", ",U=") or ':'. */
static char *
index_deliver_key(const char *name)
{
	return xstrndup(name, strcspn(name, ",:"));
}

/*
 * Each thread that delivers keeps its connections to the last few users'
 * indexes open: opening one costs more than the insert, and a database
 * whose last connection closed has its WAL read again whole by the next
 * open. A kept connection is dropped when its file was replaced (an index
 * removed by hand) and when the thread ends.
 */
#define INDEX_DELIVER_CONNS 4

struct deliver_conn {
	char *user_dir; /* NULL: a free slot */
	sqlite3 *db;
	dev_t dev;
	ino_t ino;
	unsigned long long used;
};

struct deliver_conns {
	struct deliver_conn c[INDEX_DELIVER_CONNS];
	unsigned long long clock;
};

static pthread_key_t deliver_key;
static pthread_once_t deliver_once = PTHREAD_ONCE_INIT;

static void
deliver_conn_close(struct deliver_conn *c)
{
	sqlite3_close(c->db);
	free(c->user_dir);
	memset(c, 0, sizeof(*c));
}

static void
deliver_conns_free(void *p)
{
	struct deliver_conns *cs = p;
	for (size_t i = 0; i < INDEX_DELIVER_CONNS; i++)
		deliver_conn_close(&cs->c[i]);
	free(cs);
}

static void
deliver_key_make(void)
{
	if (pthread_key_create(&deliver_key, deliver_conns_free) != 0)
		abort();
}

void
index_deliver_release(void)
{
	pthread_once(&deliver_once, deliver_key_make);
	struct deliver_conns *cs = pthread_getspecific(deliver_key);
	if (cs != NULL) {
		pthread_setspecific(deliver_key, NULL);
		deliver_conns_free(cs);
	}
}

/* This thread's connection to user_dir's index (not to be closed). */
static sqlite3 *
deliver_conn_get(const char *user_dir, char **error_r)
{
	pthread_once(&deliver_once, deliver_key_make);
	struct deliver_conns *cs = pthread_getspecific(deliver_key);
	if (cs == NULL) {
		cs = xcalloc(1, sizeof(*cs));
		pthread_setspecific(deliver_key, cs);
	}
	dev_t dev;
	ino_t ino;
	index_file_id(user_dir, &dev, &ino);
	bool exists = ino != 0;
	struct deliver_conn *slot = &cs->c[0];
	for (size_t i = 0; i < INDEX_DELIVER_CONNS; i++) {
		struct deliver_conn *c = &cs->c[i];
		if (c->user_dir != NULL && strcmp(c->user_dir, user_dir) == 0) {
			if (exists && c->dev == dev && c->ino == ino) {
				c->used = ++cs->clock;
				return c->db;
			}
			slot = c;
			break;
		}
		if (c->used < slot->used)
			slot = c; /* the least recently used, or a free one */
	}
	deliver_conn_close(slot);
	sqlite3 *db;
	if (index_db_open(user_dir, &db, error_r) < 0)
		return NULL;
	slot->user_dir = xstrdup(user_dir);
	slot->db = db;
	index_file_id(user_dir, &slot->dev, &slot->ino);
	slot->used = ++cs->clock;
	return db;
}

static int
index_deliver_insert(const char *user_dir, const char *mailbox,
		     const char *key, const struct index_cache_entry *e, char **error_r)
{
	sqlite3 *db = deliver_conn_get(user_dir, error_r);
	if (db == NULL)
		return -1;
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO delivered"
		"(mailbox, name, envelope, bodystructure, fields) VALUES (?, ?, ?, ?, ?)",
		-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, e->envelope, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, e->bodystructure, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, e->fields, -1, SQLITE_STATIC);
		/* An autocommit insert: the write lock is held for it alone,
		   and busy_timeout waits for a sync of the loop's to end. */
		rc = sqlite3_step(st);
	}
	int ret = 0;
	if (rc != SQLITE_DONE) {
		*error_r = xasprintf("index %s: insert: %s", user_dir,
				     sqlite3_errmsg(db));
		ret = -1;
	}
	sqlite3_finalize(st);
	return ret;
}

int
index_deliver_describe(const char *user_dir, const char *mailbox,
		       const char *path, const char *name,
		       unsigned long long max_crlf, char **error_r)
{
	/* The file keeps LF line ends; describe counts in CRLF form, as
	   FETCH sends the message. It is no larger than its CRLF size. */
	size_t len;
	char *data = read_file(path, (size_t)max_crlf, &len);
	if (data == NULL) {
		*error_r = xasprintf("read %s: %s", path, strerror(errno));
		return -1;
	}
	struct index_cache_entry e = { 0 };
	int ret = index_cache_describe(data, len, &e, error_r);
	free(data);
	if (ret == 0) {
		char *key = index_deliver_key(name);
		ret = index_deliver_insert(user_dir, mailbox, key, &e, error_r);
		free(key);
	}
	index_cache_entry_clear(&e);
	return ret;
}

int
index_deliver_forget(const char *user_dir, const char *mailbox,
		     const char *const *names, size_t count, char **error_r)
{
	if (count == 0)
		return 0;
	sqlite3 *db = deliver_conn_get(user_dir, error_r);
	if (db == NULL)
		return -1;
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "DELETE FROM delivered"
			" WHERE mailbox = ? AND name = ?", -1, &st, NULL);
	for (size_t i = 0; rc == SQLITE_OK && i < count; i++) {
		sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, names[i], -1, SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	int ret = 0;
	if (rc != SQLITE_OK) {
		*error_r = xasprintf("index %s: delete: %s", user_dir,
				     sqlite3_errmsg(db));
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		ret = -1;
	}
	return ret;
}

/* ---- taken by index_sync ---- */

static int
index_delivered_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
index_delivered_load(struct index *ix, const char *mailbox,
		     struct index_delivered *d, char **error_r)
{
	memset(d, 0, sizeof(*d));
	sqlite3_stmt *st = index_prepare(ix, "SELECT name FROM delivered"
					 " WHERE mailbox = ?", error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (d->count == cap) {
			cap = cap == 0 ? 8 : cap * 2;
			d->names = xrealloc(d->names, cap * sizeof(*d->names));
		}
		d->names[d->count++] = xstrdup((const char *)sqlite3_column_text(st, 0));
	}
	index_finish(ix, st);
	if (rc != SQLITE_DONE) {
		index_delivered_free(d);
		return index_db_error(ix, "select", error_r);
	}
	if (d->count > 0) {
		qsort(d->names, d->count, sizeof(*d->names), index_delivered_cmp);
		d->uids = xcalloc(d->count, sizeof(*d->uids));
	}
	return 0;
}

void
index_delivered_match(struct index_delivered *d, const char *name, uint32_t uid)
{
	if (d->count == 0)
		return;
	size_t klen = strcspn(name, ",:"), lo = 0, hi = d->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strncmp(d->names[mid], name, klen);
		if (c == 0 && d->names[mid][klen] != '\0')
			c = 1; /* longer than the key: sorts after it */
		if (c == 0) {
			d->uids[mid] = uid;
			return;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
}

int
index_delivered_take(struct index *ix, const char *mailbox,
		     struct index_delivered *d, char **error_r)
{
	if (d->count == 0)
		return 0;
	for (size_t i = 0; i < d->count; i++) {
		if (d->uids[i] == 0)
			continue;
		/* A text the first FETCH already cached is the same one. */
		sqlite3_stmt *st = index_prepare(ix, "INSERT OR IGNORE INTO cache"
			"(mailbox, uid, envelope, bodystructure, fields) SELECT ?1, ?3,"
			" envelope, bodystructure, fields FROM delivered"
			" WHERE mailbox = ?1 AND name = ?2", error_r);
		if (st == NULL)
			return -1;
		sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, d->names[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, d->uids[i]);
		int rc = sqlite3_step(st);
		index_finish(ix, st);
		if (rc != SQLITE_DONE)
			return index_db_error(ix, "insert", error_r);
	}
	/* Exactly the rows loaded: the sync has held the write lock since. */
	sqlite3_stmt *st = index_prepare(ix, "DELETE FROM delivered"
					 " WHERE mailbox = ?", error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	index_finish(ix, st);
	return rc == SQLITE_DONE ? 0 : index_db_error(ix, "delete", error_r);
}

void
index_delivered_free(struct index_delivered *d)
{
	for (size_t i = 0; i < d->count; i++)
		free(d->names[i]);
	free(d->names);
	free(d->uids);
	memset(d, 0, sizeof(*d));
}
