/*
 * ENVELOPE and BODYSTRUCTURE computed at delivery (see index_private.h),
 * so that a FETCH of them never parses the message: the delivery thread
 * describes the file it has just written (still in the page cache) and
 * leaves the texts in the table "delivered"; the loop's index_sync takes
 * them into the message's row when it gives the file its UID.
 *
 * All of this is a cache: a row lost (a failed insert, a crash, a
 * rebuilt index) only means that the first FETCH computes the texts, as
 * it does for a file another tool put into the Maildir.
 */
#include "store/index.h"
#include "store/index_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "mime/mime_imap.h"

#define INDEX_DELIVER_CHUNK (64 * 1024)

/* The Maildir unique name: up to the first ',' (",S=", ",U=") or ':'. */
static char *
index_deliver_key(const char *name)
{
	return xstrndup(name, strcspn(name, ",:"));
}

/*
 * The file in CRLF form, as FETCH hands it to mime_imap_describe (every
 * LF not preceded by CR becomes CRLF), so that both give the same bytes.
 * At most max bytes: a delivery knows its CRLF size.
 */
static char *
index_deliver_read(const char *path, unsigned long long max, size_t *len_r,
		   char **error_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*error_r = xasprintf("open %s: %s", path, strerror(errno));
		return NULL;
	}
	char *in = xmalloc(INDEX_DELIVER_CHUNK);
	char *out = xmalloc(max + 1);
	size_t len = 0;
	char prev = 0;
	ssize_t n;
	while ((n = read(fd, in, INDEX_DELIVER_CHUNK)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = xasprintf("read %s: %s", path, strerror(errno));
			goto fail;
		}
		for (ssize_t i = 0; i < n; i++) {
			size_t need = in[i] == '\n' && prev != '\r' ? 2 : 1;
			if (len + need > max) {
				*error_r = xasprintf("%s: larger than %llu bytes",
						     path, max);
				goto fail;
			}
			if (need == 2)
				out[len++] = '\r';
			out[len++] = in[i];
			prev = in[i];
		}
	}
	close(fd);
	free(in);
	out[len] = '\0';
	*len_r = len;
	return out;
fail:
	close(fd);
	free(in);
	free(out);
	return NULL;
}

/*
 * A WAL left by a closed connection is read again whole by the next one
 * that opens the database alone (the next delivery), and is not restarted
 * from its start by such connections: a checkpoint that truncates it,
 * every INDEX_DELIVER_WAL_FRAMES pages (a few fsyncs per hundred
 * deliveries), keeps both short. Failing (an IMAP session reading just
 * then) is no matter: a later commit tries again.
 */
#define INDEX_DELIVER_WAL_FRAMES 100

static int
index_deliver_wal_hook(void *ctx, sqlite3 *db, const char *name, int frames)
{
	(void)ctx;
	if (frames >= INDEX_DELIVER_WAL_FRAMES)
		sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_TRUNCATE,
					  NULL, NULL);
	return SQLITE_OK;
}

static int
index_deliver_insert(const char *user_dir, const char *mailbox,
		     const char *key, const char *envelope,
		     const char *bodystructure, char **error_r)
{
	sqlite3 *db;
	if (index_db_open(user_dir, &db, error_r) < 0)
		return -1;
	/*
	 * Closing the last connection to a WAL database checkpoints it, with
	 * fsyncs, and most deliveries find no IMAP session holding the index
	 * open. So this connection leaves the WAL as it is, and the hook
	 * empties it only once it is INDEX_DELIVER_WAL_FRAMES long.
	 */
	sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	sqlite3_wal_hook(db, index_deliver_wal_hook, NULL);
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO delivered"
		"(mailbox, name, envelope, bodystructure) VALUES (?, ?, ?, ?)",
		-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, envelope, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, bodystructure, -1, SQLITE_STATIC);
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
	sqlite3_close(db);
	return ret;
}

int
index_deliver_describe(const char *user_dir, const char *mailbox,
		       const char *path, const char *name,
		       unsigned long long max_crlf, char **error_r)
{
	size_t len;
	char *data = index_deliver_read(path, max_crlf, &len, error_r);
	if (data == NULL)
		return -1;
	char *envelope = NULL, *bodystructure = NULL;
	int ret = mime_imap_describe(data, len, &envelope, &bodystructure, error_r);
	free(data);
	if (ret == 0) {
		char *key = index_deliver_key(name);
		ret = index_deliver_insert(user_dir, mailbox, key, envelope,
					   bodystructure, error_r);
		free(key);
	}
	free(envelope);
	free(bodystructure);
	return ret;
}

int
index_deliver_forget(const char *user_dir, const char *mailbox,
		     const char *const *names, size_t count, char **error_r)
{
	if (count == 0)
		return 0;
	sqlite3 *db;
	if (index_db_open(user_dir, &db, error_r) < 0)
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
	sqlite3_close(db);
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
	sqlite3_finalize(st);
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
		sqlite3_stmt *st = index_prepare(ix, "UPDATE messages SET"
			" (envelope, bodystructure) = (SELECT envelope, bodystructure"
			" FROM delivered WHERE mailbox = ?1 AND name = ?2)"
			" WHERE mailbox = ?1 AND uid = ?3 AND envelope IS NULL",
			error_r);
		if (st == NULL)
			return -1;
		sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, d->names[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, d->uids[i]);
		int rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return index_db_error(ix, "update", error_r);
	}
	/* Exactly the rows loaded: the sync has held the write lock since. */
	sqlite3_stmt *st = index_prepare(ix, "DELETE FROM delivered"
					 " WHERE mailbox = ?", error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
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
