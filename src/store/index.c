/*
 * The per-user IMAP index over Maildir folders (see index.h). This file
 * holds the database, the Maildir name helpers and the lookups; the sync
 * itself is in index_sync.c.
 */
#include "store/index.h"
#include "store/index_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"

#define INDEX_SYSTEM_FLAGS "DFRST"

/* Made in one transaction with user_version, so a database whose
   user_version is INDEX_SCHEMA_VERSION has every table. */
static const char index_schema[] =
	"DROP TABLE IF EXISTS messages;"
	"DROP TABLE IF EXISTS mailboxes;"
	"DROP TABLE IF EXISTS delivered;"
	"DROP TABLE IF EXISTS cache;"
	"CREATE TABLE mailboxes("
	" name TEXT PRIMARY KEY,"
	" uidvalidity INTEGER NOT NULL,"
	" uidnext INTEGER NOT NULL,"
	" highestmodseq INTEGER NOT NULL,"
	" recentuid INTEGER NOT NULL DEFAULT 1,"
	" new_mtime INTEGER NOT NULL DEFAULT 0,"
	" cur_mtime INTEGER NOT NULL DEFAULT 0,"
	/* Its rows in messages: kept by the triggers below and recounted by
	   every full sync, so that the commands that need the count (each
	   sync check, STATUS) do not step through every row for it. */
	" messages INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE messages("
	" mailbox TEXT NOT NULL,"
	" uid INTEGER NOT NULL,"
	" basename TEXT NOT NULL,"
	" flags TEXT NOT NULL,"
	" keywords TEXT NOT NULL DEFAULT '',"
	" internaldate INTEGER NOT NULL,"
	" size_crlf INTEGER NOT NULL,"
	" modseq INTEGER NOT NULL,"
	" PRIMARY KEY(mailbox, uid)) WITHOUT ROWID;"
	/* What a message's text says, computed once (index_cache.c): its
	   ENVELOPE, BODYSTRUCTURE and the folded header fields SEARCH asks
	   for most (mime_search_fields). Apart from messages: their kilobyte
	   a message would make every scan of the rows (a sync, a count,
	   SEARCH by flags) read many times the pages. A message's texts go
	   with its row, whichever code removes it, and a new row never finds
	   an old text. */
	"CREATE TABLE cache("
	" mailbox TEXT NOT NULL,"
	" uid INTEGER NOT NULL,"
	" envelope TEXT NOT NULL,"
	" bodystructure TEXT NOT NULL,"
	" fields TEXT NOT NULL,"
	" PRIMARY KEY(mailbox, uid)) WITHOUT ROWID;"
	"CREATE TRIGGER messages_gone AFTER DELETE ON messages BEGIN"
	" DELETE FROM cache WHERE mailbox = old.mailbox AND uid = old.uid;"
	" UPDATE mailboxes SET messages = messages - 1 WHERE name = old.mailbox; END;"
	"CREATE TRIGGER messages_new AFTER INSERT ON messages BEGIN"
	" DELETE FROM cache WHERE mailbox = new.mailbox AND uid = new.uid;"
	" UPDATE mailboxes SET messages = messages + 1 WHERE name = new.mailbox; END;"
	/* Described at delivery, not yet seen by index_sync (index_deliver.c);
	   name is the Maildir unique name, up to its first ',' or ':'. */
	"CREATE TABLE delivered("
	" mailbox TEXT NOT NULL,"
	" name TEXT NOT NULL,"
	" envelope TEXT NOT NULL,"
	" bodystructure TEXT NOT NULL,"
	" fields TEXT NOT NULL,"
	" PRIMARY KEY(mailbox, name)) WITHOUT ROWID;";

/*
 * The index is a cache of the Maildir, so a schema change needs no
 * migration: an older database is emptied and rebuilt from the Maildir
 * (UIDs and UIDVALIDITY come back from the file names and tern-uidlist).
 * So does a change in what the cached texts say: 7 describes a
 * message/rfc822 part with an encoding as opaque, where 6 cached a
 * BODYSTRUCTURE that broke RFC 3501's grammar.
 */
#define INDEX_SCHEMA_VERSION 7

static int
index_schema_version(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	int version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
	sqlite3_finalize(st);
	return version;
}

/*
 * The common case, a current database, costs one read of the header.
 * Otherwise the tables are made under the write lock, and the version is
 * read again there: a delivery thread and the loop may open a new
 * database at the same moment, and the second must not drop what the
 * first just made.
 */
static int
index_schema_check(sqlite3 *db)
{
	if (index_schema_version(db) == INDEX_SCHEMA_VERSION)
		return SQLITE_OK;
	/* WAL outlives the connection; it cannot be set inside a transaction. */
	int rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return rc;
	if (index_schema_version(db) != INDEX_SCHEMA_VERSION) {
		char sql[64];
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
			 INDEX_SCHEMA_VERSION);
		rc = sqlite3_exec(db, index_schema, NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int
index_db_open(const char *user_dir, sqlite3 **db_r, char **error_r)
{
	*db_r = NULL;
	if (mkdir_p(user_dir, 0700) < 0) {
		*error_r = xasprintf("mkdir %s: %s", user_dir, strerror(errno));
		return -1;
	}
	char *path = xasprintf("%s/%s", user_dir, INDEX_FILE);
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
				 SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK) {
		/* Waits for another connection's write (a delivery thread's
		   insert, another process's sync) instead of failing. */
		sqlite3_busy_timeout(db, 5000);
		/* A cache: a commit need not reach the disk (WAL keeps it
		   consistent), so commits cost no fsync. */
		rc = sqlite3_exec(db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
	}
	/* Nor does closing: the last connection to close would checkpoint
	   (two fsyncs) and delete the WAL (a directory fsync), in the loop,
	   each time a user's last session ends. The WAL stays; commits
	   checkpoint it when it grows (wal_autocheckpoint), and when it
	   starts over it is cut back to 256 KiB, so that the WALs of many
	   users who were once busy do not keep megabytes of disk each. */
	if (rc == SQLITE_OK)
		rc = sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "PRAGMA journal_size_limit=262144", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = index_schema_check(db);
	if (rc != SQLITE_OK) {
		*error_r = xasprintf("index %s: %s", path,
				     db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		free(path);
		return -1;
	}
	free(path);
	*db_r = db;
	return 0;
}

/*
 * The open databases of this process, one per user directory: the
 * sessions of one user share a handle (refs counts them). That is safe
 * because the process is one thread and every transaction begins and ends
 * within one call; it saves each IMAP session its own SQLite connection
 * (schema, page cache), most of what an idle session would cost. Handles
 * nobody uses stay at the end of the list, the least recently used last.
 */
static struct index *index_handles;

static void
index_unlink_handle(struct index *ix)
{
	for (struct index **p = &index_handles; *p != NULL; p = &(*p)->next) {
		if (*p == ix) {
			*p = ix->next;
			return;
		}
	}
}

static void
index_free(struct index *ix)
{
	index_unlink_handle(ix);
	for (size_t i = 0; i < ix->nstmts; i++)
		sqlite3_finalize(ix->stmts[i].st);
	free(ix->stmts);
	sqlite3_close(ix->db);
	free(ix->user_dir);
	free(ix);
}

void
index_file_id(const char *user_dir, dev_t *dev_r, ino_t *ino_r)
{
	char *path = xasprintf("%s/%s", user_dir, INDEX_FILE);
	struct stat sb;
	bool ok = stat(path, &sb) == 0;
	free(path);
	*dev_r = ok ? sb.st_dev : 0;
	*ino_r = ok ? sb.st_ino : 0;
}

/* A kept handle is only good while its file is the one on disk (an
   administrator may have removed a broken index). */
static bool
index_file_same(const struct index *ix)
{
	dev_t dev;
	ino_t ino;
	index_file_id(ix->user_dir, &dev, &ino);
	return ino != 0 && dev == ix->dev && ino == ix->ino;
}

static struct index *
index_find(const char *user_dir)
{
	for (struct index *ix = index_handles; ix != NULL; ix = ix->next) {
		if (strcmp(ix->user_dir, user_dir) != 0)
			continue;
		if (ix->refs == 0 && !index_file_same(ix)) {
			index_free(ix);
			return NULL;
		}
		return ix;
	}
	return NULL;
}

struct index *
index_open(const char *user_dir, char **error_r)
{
	struct index *ix = index_find(user_dir);
	if (ix != NULL) {
		if (ix->refs++ == 0) { /* the most recently used goes first */
			index_unlink_handle(ix);
			ix->next = index_handles;
			index_handles = ix;
		}
		return ix;
	}
	sqlite3 *db;
	if (index_db_open(user_dir, &db, error_r) < 0)
		return NULL;
	ix = xcalloc(1, sizeof(*ix));
	ix->db = db;
	ix->user_dir = xstrdup(user_dir);
	index_file_id(user_dir, &ix->dev, &ix->ino);
	ix->refs = 1;
	ix->next = index_handles;
	index_handles = ix;
	return ix;
}

static void index_sleep(struct index *ix);
static void index_trim(struct index *ix);

void
index_close(struct index **ixp)
{
	struct index *ix = *ixp;
	if (ix == NULL)
		return;
	*ixp = NULL;
	if (--ix->refs > 0) {
		index_sleep(ix); /* those left may all be idling */
		return;
	}
	index_trim(ix);
	/* The list runs from the most recently opened: the last unused goes. */
	unsigned kept = 0;
	struct index *last_unused = NULL;
	for (struct index *p = index_handles; p != NULL; p = p->next) {
		if (p->refs == 0) {
			kept++;
			last_unused = p;
		}
	}
	if (kept > INDEX_KEEP_OPEN)
		index_free(last_unused);
}

void
index_close_unused(void)
{
	index_uid_floors_free();
	struct index *ix = index_handles;
	while (ix != NULL) {
		struct index *next = ix->next;
		if (ix->refs == 0)
			index_free(ix);
		ix = next;
	}
}

/* Gives back what the handle holds beyond its connection (prepared
   statements not in use, page cache). */
static void
index_trim(struct index *ix)
{
	size_t kept = 0;
	for (size_t i = 0; i < ix->nstmts; i++) {
		if (ix->stmts[i].in_use)
			ix->stmts[kept++] = ix->stmts[i];
		else
			sqlite3_finalize(ix->stmts[i].st);
	}
	ix->nstmts = kept;
	if (kept == 0) {
		free(ix->stmts);
		ix->stmts = NULL;
	}
	if (ix->db != NULL)
		sqlite3_db_release_memory(ix->db);
}

/*
 * While every session of a handle waits in IDLE, the handle needs no
 * database connection (its schema, WAL index mapping and allocations are
 * most of what an idle user costs): it is closed, and the next use opens
 * it again (index_wake).
 */
static void
index_sleep(struct index *ix)
{
	if (ix->db == NULL || ix->refs == 0 || ix->idle < ix->refs ||
	    !sqlite3_get_autocommit(ix->db))
		return;
	index_trim(ix);
	if (ix->nstmts > 0)
		return; /* a statement under way further up the stack */
	sqlite3_close(ix->db);
	ix->db = NULL;
}

static int
index_wake(struct index *ix, char **error_r)
{
	if (ix->db != NULL)
		return 0;
	if (index_db_open(ix->user_dir, &ix->db, error_r) < 0)
		return -1;
	index_file_id(ix->user_dir, &ix->dev, &ix->ino);
	return 0;
}

void
index_idle_begin(struct index *ix)
{
	ix->idle++;
	index_trim(ix);
	index_sleep(ix);
}

void
index_idle_end(struct index *ix)
{
	if (ix->idle > 0)
		ix->idle--;
}

void
index_rest(struct index *ix)
{
	index_sleep(ix);
}

int
index_db_error(struct index *ix, const char *what, char **error_r)
{
	*error_r = xasprintf("index %s: %s", what, sqlite3_errmsg(ix->db));
	return -1;
}

sqlite3_stmt *
index_prepare(struct index *ix, const char *sql, char **error_r)
{
	bool cached = false;
	for (size_t i = 0; i < ix->nstmts; i++) {
		if (ix->stmts[i].sql != sql)
			continue;
		if (!ix->stmts[i].in_use) {
			ix->stmts[i].in_use = true;
			return ix->stmts[i].st;
		}
		cached = true; /* in use further up the stack: one more, uncached */
		break;
	}
	sqlite3_stmt *st = NULL;
	if (index_wake(ix, error_r) < 0)
		return NULL;
	if (sqlite3_prepare_v3(ix->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
			       NULL) != SQLITE_OK) {
		index_db_error(ix, "prepare", error_r);
		return NULL;
	}
	if (!cached && ix->nstmts < INDEX_STMT_CACHE) {
		if (ix->stmts == NULL)
			ix->stmts = xcalloc(INDEX_STMT_CACHE, sizeof(*ix->stmts));
		ix->stmts[ix->nstmts++] = (struct index_stmt){ .sql = sql, .st = st,
							       .in_use = true };
	}
	return st;
}

void
index_finish(struct index *ix, sqlite3_stmt *st)
{
	if (st == NULL)
		return;
	for (size_t i = 0; i < ix->nstmts; i++) {
		if (ix->stmts[i].st == st) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			ix->stmts[i].in_use = false;
			return;
		}
	}
	sqlite3_finalize(st);
}

int
index_exec(struct index *ix, const char *sql, char **error_r)
{
	if (index_wake(ix, error_r) < 0)
		return -1;
	if (sqlite3_exec(ix->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return index_db_error(ix, sql, error_r);
	return 0;
}

int
index_read_begin(struct index *ix, char **error_r)
{
	return index_exec(ix, "BEGIN", error_r);
}

void
index_read_end(struct index *ix)
{
	if (ix->db != NULL)
		sqlite3_exec(ix->db, "COMMIT", NULL, NULL, NULL);
}

void
index_rollback(struct index *ix)
{
	if (ix->db != NULL)
		sqlite3_exec(ix->db, "ROLLBACK", NULL, NULL, NULL);
}

/* The base name ends at ':' (Maildir's info part). */
static size_t
index_base_len(const char *name)
{
	return strcspn(name, ":");
}

/* ",U=<digits>" inside the base name: its position, or NULL. */
static const char *
index_name_ufield(const char *name, size_t *len_r)
{
	size_t blen = index_base_len(name);
	const char *end = name + blen;
	/* Every sync looks at every name: jump from comma to comma. */
	for (const char *p = memchr(name, ',', blen); p != NULL && p + 3 < end;
	     p = memchr(p + 1, ',', (size_t)(end - p - 1))) {
		if (p[1] != 'U' || p[2] != '=')
			continue;
		const char *d = p + 3;
		while (d < name + blen && *d >= '0' && *d <= '9')
			d++;
		if (d == p + 3 || (d < name + blen && *d != ','))
			continue;
		*len_r = (size_t)(d - p);
		return p;
	}
	return NULL;
}

uint32_t
index_name_uid(const char *name)
{
	size_t len;
	const char *p = index_name_ufield(name, &len);
	if (p == NULL || len > 3 + 10)
		return 0;
	uint64_t v = 0;
	for (size_t i = 3; i < len; i++) /* digits, as index_name_ufield found */
		v = v * 10 + (uint64_t)(p[i] - '0');
	return v > UINT32_MAX ? 0 : (uint32_t)v;
}

/* The letters after ":2,", or "" (a file in new/ has none). */
const char *
index_name_info(const char *name)
{
	const char *c = strchr(name, ':');
	if (c == NULL || strncmp(c, ":2,", 3) != 0)
		return "";
	return c + 3;
}

void
index_name_flags(const char *name, char out[8])
{
	const char *info = index_name_info(name);
	size_t n = 0;
	for (const char *f = INDEX_SYSTEM_FLAGS; *f != '\0'; f++)
		if (strchr(info, *f) != NULL)
			out[n++] = *f;
	out[n] = '\0';
}

/*
 * "<base without ,U=>,U=<uid>:2,<info>": the name a message carries once
 * it has a UID. ",U=" goes last in the base so the ",S=" ",W=" fields that
 * POP3 reads stay where they were.
 */
char *
index_name_with_uid(const char *name, uint32_t uid)
{
	size_t blen = index_base_len(name), ulen = 0;
	const char *u = index_name_ufield(name, &ulen);
	if (u == NULL)
		u = name + blen;
	const char *rest = u + ulen;
	return xasprintf("%.*s%.*s,U=%u:2,%s", (int)(u - name), name,
			 (int)(name + blen - rest), rest, uid,
			 index_name_info(name));
}

long long
index_dir_mtime(const char *dir, const char *sub)
{
	char *path = xasprintf("%s/%s", dir, sub);
	struct stat st;
	int r = stat(path, &st);
	free(path);
	if (r < 0)
		return 0;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	long long m = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
	long long n = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
	return n - m < INDEX_MTIME_MARGIN_NS ? 0 : m;
}

/* The CRLF size: W= when delivery wrote it, else counted from the file. */
uint64_t
index_file_size(const char *name, const char *path)
{
	size_t blen = index_base_len(name);
	for (const char *p = name; p + 3 < name + blen; p++) {
		if (strncmp(p, ",W=", 3) == 0 && p[3] >= '0' && p[3] <= '9')
			return strtoull(p + 3, NULL, 10);
	}
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	uint64_t size = 0;
	int c, prev = 0;
	while ((c = getc(f)) != EOF) {
		if (c == '\n' && prev != '\r')
			size++;
		size++;
		prev = c;
	}
	fclose(f);
	return size;
}

/* Delivery time from "<sec>." at the start of the name, else the mtime. */
time_t
index_file_date(const char *name, const char *path)
{
	char *end;
	unsigned long long sec = strtoull(name, &end, 10);
	if (name[0] >= '0' && name[0] <= '9' && *end == '.' && sec > 0 &&
	    sec < (1ULL << 40))
		return (time_t)sec;
	struct stat sb;
	return stat(path, &sb) == 0 ? sb.st_mtime : 0;
}

/*
 * The file name with its ":2," letters replaced: system flags from flags,
 * the letters the keyword map names from kwletters (all kept when map is
 * NULL); other letters of other tools kept. All sorted, as the Maildir
 * spec asks.
 */
static char *
index_name_set_info(const char *name, const char *flags, const char *kwletters,
		    const struct index_kwmap *map)
{
	const char *info = index_name_info(name);
	char letters[128];
	size_t n = 0;
	for (int c = 0x21; c < 0x7f && n + 1 < sizeof(letters); c++) {
		bool sys = strchr(INDEX_SYSTEM_FLAGS, c) != NULL;
		bool kw = c >= 'a' && c <= 'z' && map != NULL &&
			  map->names[c - 'a'] != NULL;
		if ((sys && strchr(flags, c) != NULL) ||
		    (kw && strchr(kwletters, c) != NULL) ||
		    (!sys && !kw && c != ',' && strchr(info, c) != NULL))
			letters[n++] = (char)c;
	}
	letters[n] = '\0';
	return xasprintf("%.*s:2,%s", (int)index_base_len(name), name, letters);
}

static bool
index_flags_valid(const char *flags)
{
	for (const char *p = flags; *p != '\0'; p++)
		if (strchr(INDEX_SYSTEM_FLAGS, *p) == NULL)
			return false;
	return true;
}

static int
index_row_name(struct index *ix, const char *mailbox, uint32_t uid,
	       char **name_r, char **error_r)
{
	sqlite3_stmt *st = index_prepare(ix, "SELECT basename FROM messages"
					 " WHERE mailbox = ? AND uid = ?", error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, uid);
	int rc = sqlite3_step(st);
	*name_r = NULL;
	if (rc == SQLITE_ROW)
		*name_r = xstrdup((const char *)sqlite3_column_text(st, 0));
	index_finish(ix, st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return index_db_error(ix, "select", error_r);
	return 0;
}

/* Takes the next HIGHESTMODSEQ of the mailbox (inside a transaction). */
int
index_modseq_next(struct index *ix, const char *mailbox, uint64_t *modseq_r,
		  char **error_r)
{
	sqlite3_stmt *st = index_prepare(ix, "UPDATE mailboxes SET highestmodseq"
		" = highestmodseq + 1 WHERE name = ? RETURNING highestmodseq",
		error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*modseq_r = (uint64_t)sqlite3_column_int64(st, 0);
	index_finish(ix, st);
	if (rc != SQLITE_ROW) {
		*error_r = xasprintf("index: mailbox %s not synced", mailbox);
		return -1;
	}
	return 0;
}

/* The row follows the rename; keywords NULL: the column is kept. */
static int
index_flags_store(struct index *ix, const char *mailbox, uint32_t uid,
		  const char *newname, const char *keywords, char **error_r)
{
	uint64_t modseq;
	if (index_exec(ix, "BEGIN IMMEDIATE", error_r) < 0)
		return -1;
	if (index_modseq_next(ix, mailbox, &modseq, error_r) < 0) {
		index_rollback(ix);
		return -1;
	}
	char flags[8];
	index_name_flags(newname, flags);
	sqlite3_stmt *st = index_prepare(ix, "UPDATE messages SET basename = ?,"
		" flags = ?, keywords = coalesce(?, keywords), modseq = ?"
		" WHERE mailbox = ? AND uid = ?", error_r);
	int rc = SQLITE_ERROR;
	if (st != NULL) {
		sqlite3_bind_text(st, 1, newname, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, flags, -1, SQLITE_STATIC);
		if (keywords != NULL)
			sqlite3_bind_text(st, 3, keywords, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(st, 3);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)modseq);
		sqlite3_bind_text(st, 5, mailbox, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, uid);
		rc = sqlite3_step(st);
		index_finish(ix, st);
	}
	if (rc != SQLITE_DONE) {
		if (st != NULL)
			index_db_error(ix, "update", error_r);
		index_rollback(ix);
		return -1;
	}
	return index_exec(ix, "COMMIT", error_r);
}

/*
 * Renames the message's file to carry the flags (and the keyword letters,
 * unless map is NULL), then updates its row.
 */
static int
index_set_info(struct index *ix, const char *mailbox, const char *dir,
	       uint32_t uid, const char *flags, const char *kwletters,
	       const struct index_kwmap *map, char **error_r)
{
	char *name;
	if (index_row_name(ix, mailbox, uid, &name, error_r) < 0)
		return -1;
	if (name == NULL) {
		*error_r = xasprintf("no message with UID %u", uid);
		return -1;
	}
	char *newname = index_name_set_info(name, flags, kwletters, map);
	char *keywords = map != NULL ? index_kwmap_names_of(map, newname) : NULL;
	char *cur = xasprintf("%s/cur", dir);
	char *from = xasprintf("%s/%s", cur, name);
	char *to = xasprintf("%s/%s", cur, newname);
	int ret = 0;
	/* rename() is atomic: another reader sees the old or the new name.
	 * Should a crash undo it, the next sync finds the old name and the
	 * row follows the file. */
	if (strcmp(name, newname) != 0 && rename(from, to) < 0) {
		*error_r = xasprintf("rename %s: %s", from, strerror(errno));
		ret = -1;
	}
	if (ret == 0)
		ret = index_flags_store(ix, mailbox, uid, newname, keywords, error_r);
	free(name);
	free(newname);
	free(keywords);
	free(cur);
	free(from);
	free(to);
	return ret;
}

int
index_set_flags(struct index *ix, const char *mailbox, const char *dir,
		uint32_t uid, const char *flags, char **error_r)
{
	if (!index_flags_valid(flags)) {
		*error_r = xasprintf("invalid flags \"%s\"", flags);
		return -1;
	}
	return index_set_info(ix, mailbox, dir, uid, flags, NULL, NULL, error_r);
}

int
index_set_flags_keywords(struct index *ix, const char *mailbox,
			 const char *dir, uint32_t uid, const char *flags,
			 const char *keywords, bool *limit_r, char **error_r)
{
	*limit_r = false;
	if (!index_flags_valid(flags)) {
		*error_r = xasprintf("invalid flags \"%s\"", flags);
		return -1;
	}
	struct index_kwmap map;
	char letters[INDEX_KEYWORDS_MAX + 1];
	if (index_kwmap_load(dir, &map, error_r) < 0)
		return -1;
	/* Any new letter is in the durable map before a file carries it. */
	int ret = index_kwmap_assign(dir, &map, keywords, letters, limit_r, error_r);
	if (ret == 0)
		ret = index_set_info(ix, mailbox, dir, uid, flags, letters, &map,
				     error_r);
	index_kwmap_clear(&map);
	return ret;
}

int
index_count(struct index *ix, const char *mailbox, uint32_t *count_r,
	    char **error_r)
{
	sqlite3_stmt *st = index_prepare(ix, "SELECT messages FROM mailboxes"
					 " WHERE name = ?", error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	*count_r = rc == SQLITE_ROW ? (uint32_t)sqlite3_column_int64(st, 0) : 0;
	index_finish(ix, st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : index_db_error(ix, "count", error_r);
}

int
index_uid_at(struct index *ix, const char *mailbox, uint32_t seq,
	     uint32_t *uid_r, char **error_r)
{
	*uid_r = 0;
	if (seq == 0)
		return 0;
	sqlite3_stmt *st = index_prepare(ix, "SELECT uid FROM messages"
		" WHERE mailbox = ? ORDER BY uid LIMIT 1 OFFSET ?", error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)seq - 1);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*uid_r = (uint32_t)sqlite3_column_int64(st, 0);
	index_finish(ix, st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return index_db_error(ix, "select", error_r);
	return 0;
}

int
index_msg_get(struct index *ix, const char *mailbox, const char *dir,
	      uint32_t uid, struct index_msg *msg_r, int *found_r,
	      char **error_r)
{
	memset(msg_r, 0, sizeof(*msg_r));
	*found_r = 0;
	sqlite3_stmt *st = index_prepare(ix, "SELECT basename, flags,"
		" internaldate, size_crlf, modseq, keywords FROM messages"
		" WHERE mailbox = ? AND uid = ?", error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, uid);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*found_r = 1;
		msg_r->uid = uid;
		msg_r->path = xasprintf("%s/cur/%s", dir,
					(const char *)sqlite3_column_text(st, 0));
		snprintf(msg_r->flags, sizeof(msg_r->flags), "%s",
			 (const char *)sqlite3_column_text(st, 1));
		msg_r->internaldate = (time_t)sqlite3_column_int64(st, 2);
		msg_r->size = (uint64_t)sqlite3_column_int64(st, 3);
		msg_r->modseq = (uint64_t)sqlite3_column_int64(st, 4);
		msg_r->keywords = xstrdup((const char *)sqlite3_column_text(st, 5));
	}
	index_finish(ix, st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return index_db_error(ix, "select", error_r);
	return 0;
}

void
index_msg_clear(struct index_msg *msg)
{
	free(msg->path);
	free(msg->keywords);
	memset(msg, 0, sizeof(*msg));
}
