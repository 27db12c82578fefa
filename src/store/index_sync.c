/*
 * index_sync: brings the index of one mailbox up to date with its Maildir,
 * giving UIDs to new files and keeping them recoverable from the Maildir
 * (",U=" in names, UIDVALIDITY and a UIDNEXT floor in tern-uidlist).
 */
#include "store/index.h"
#include "store/index_private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "core/workpool.h"

#define INDEX_UIDLIST "tern-uidlist"

/* One file found in new/ or cur/. */
struct index_file {
	const char *sub;          /* "new" or "cur" */
	char *name;
	uint32_t uid;             /* from ",U=", 0 if none or reassigned */
	bool fresh;               /* given its UID by this sync */
	unsigned long long sec;   /* arrival order, read only for the files */
	unsigned long usec;       /* that are sorted (index_files_arrival) */
};

/* One row of the index before the sync. */
struct index_row {
	uint32_t uid;
	char *name;
	size_t file; /* 0: no file keeps its UID; else, in index_classify, 1 +
			the index of the one that does */
};

struct index_sync_ctx {
	struct index *ix;
	const char *mailbox, *dir;
	struct index_file *files;
	size_t nfiles, capfiles;
	struct index_row *rows;
	size_t nrows;
	uint32_t uidvalidity, uidnext, floor;
	bool rebuilding;          /* no mailbox row: trust ",U=" in names */
	uint64_t highestmodseq;
	uint64_t modseq;          /* 0 until something changes */
	bool renamed;             /* a file got a new name: cur/ needs an fsync */
	bool moved_from_new;
	struct index_kwmap kwmap; /* read when a row is written */
	bool kwmap_loaded;
	struct index_delivered delivered; /* described at delivery */
	struct index_sync_result *r;
};

/*
 * tern-uidlist: "1 <uidvalidity> <uidnext>\n". 1 when missing, -1 when
 * unreadable or garbled (never guess: a wrong UIDVALIDITY would make
 * clients trust stale caches).
 */
int
index_uidlist_read(const char *dir, uint32_t *validity_r, uint32_t *next_r,
		   char **error_r)
{
	char *path = xasprintf("%s/%s", dir, INDEX_UIDLIST);
	size_t len;
	char *s = read_file(path, 256, &len);
	int ret = 0;
	unsigned long v, n;
	if (s == NULL && errno == ENOENT)
		ret = 1;
	else if (s == NULL || sscanf(s, "1 %lu %lu", &v, &n) != 2 || v == 0 ||
		 v > UINT32_MAX || n == 0 || n > UINT32_MAX) {
		*error_r = xasprintf("%s: unreadable or garbled", path);
		ret = -1;
	} else {
		*validity_r = (uint32_t)v;
		*next_r = (uint32_t)n;
	}
	free(s);
	free(path);
	return ret;
}

/*
 * Written before any file is renamed to carry a UID below next, and before
 * the index commits them: once a client may have seen a UID, the floor
 * that keeps it from being reused must be on disk (tmp, fsync, rename,
 * fsync of the directory).
 */
int
index_uidlist_write(const char *dir, uint32_t validity, uint32_t next,
		    char **error_r)
{
	char *tmp = xasprintf("%s/%s.tmp", dir, INDEX_UIDLIST);
	char *path = xasprintf("%s/%s", dir, INDEX_UIDLIST);
	char line[64];
	int n = snprintf(line, sizeof(line), "1 %u %u\n", validity, next);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int ret = -1;
	if (fd >= 0 && write_all(fd, line, (size_t)n) == 0 && fsync(fd) == 0 &&
	    close(fd) == 0) {
		fd = -1;
		if (rename(tmp, path) == 0 && fsync_dir(dir) == 0)
			ret = 0;
	}
	if (ret < 0) {
		*error_r = xasprintf("%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(tmp);
	}
	free(tmp);
	free(path);
	return ret;
}

static void
index_file_add(struct index_sync_ctx *c, const char *sub, const char *name)
{
	if (c->nfiles == c->capfiles) {
		c->capfiles = c->capfiles == 0 ? 32 : c->capfiles * 2;
		c->files = xrealloc(c->files, c->capfiles * sizeof(*c->files));
	}
	struct index_file *f = &c->files[c->nfiles++];
	f->sub = sub;
	f->name = xstrdup(name);
	f->uid = index_name_uid(name);
	f->fresh = false;
}

/* The arrival time in the name, for the files about to be sorted. */
static void
index_files_arrival(struct index_file *files, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct index_file *f = &files[i];
		char *end;
		f->sec = strtoull(f->name, &end, 10);
		f->usec = 0;
		if (f->name[0] < '0' || f->name[0] > '9')
			f->sec = UINT64_MAX; /* unknown names come last, by name */
		else if (end[0] == '.' && end[1] == 'M')
			f->usec = strtoul(end + 2, NULL, 10);
	}
}

/* Lists dir/sub; a missing directory is an empty one. */
static int
index_scan(struct index_sync_ctx *c, const char *sub, char **error_r)
{
	char *path = xasprintf("%s/%s", c->dir, sub);
	DIR *d = opendir(path);
	if (d == NULL) {
		int ret = errno == ENOENT ? 0 : -1;
		if (ret < 0)
			*error_r = xasprintf("opendir %s: %s", path, strerror(errno));
		free(path);
		return ret;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		/* The entry's type saves a stat per file where the file system
		   gives it (ext4, xfs, tmpfs do). */
		struct stat sb;
		if (de->d_type != DT_REG &&
		    (de->d_type != DT_UNKNOWN ||
		     fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
		     !S_ISREG(sb.st_mode)))
			continue;
		index_file_add(c, sub, de->d_name);
	}
	closedir(d);
	free(path);
	return 0;
}

/* Files with a UID first by UID; then the others in arrival order. */
static int
index_file_cmp(const void *a, const void *b)
{
	const struct index_file *x = a, *y = b;
	if ((x->uid == 0) != (y->uid == 0))
		return x->uid == 0 ? 1 : -1;
	if (x->uid != y->uid)
		return x->uid < y->uid ? -1 : 1;
	if (x->sec != y->sec)
		return x->sec < y->sec ? -1 : 1;
	if (x->usec != y->usec)
		return x->usec < y->usec ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int
index_rows_load(struct index_sync_ctx *c, char **error_r)
{
	sqlite3_stmt *st = index_prepare(c->ix, "SELECT uid, basename FROM"
		" messages WHERE mailbox = ? ORDER BY uid", error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, c->mailbox, -1, SQLITE_STATIC);
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (c->nrows == cap) {
			cap = cap == 0 ? 32 : cap * 2;
			c->rows = xrealloc(c->rows, cap * sizeof(*c->rows));
		}
		struct index_row *row = &c->rows[c->nrows++];
		row->uid = (uint32_t)sqlite3_column_int64(st, 0);
		row->name = xstrdup((const char *)sqlite3_column_text(st, 1));
		row->file = 0;
	}
	index_finish(c->ix, st);
	return rc == SQLITE_DONE ? 0 : index_db_error(c->ix, "select", error_r);
}

static struct index_row *
index_row_find(struct index_sync_ctx *c, uint32_t uid)
{
	size_t lo = 0, hi = c->nrows;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->rows[mid].uid == uid)
			return &c->rows[mid];
		if (c->rows[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/*
 * Why the floor is reserved ahead: writing tern-uidlist durably costs two
 * fsyncs, inside the loop, for every APPEND and every sync that finds new
 * mail. So it is raised INDEX_UID_RESERVE past what is needed, and UIDs
 * below it are given without a write.
 *
 * Which UID comes next then needs care. The index's uidnext is exact as
 * long as its commits are, but they are not fsynced (a cache): after a
 * power loss it may lag behind UIDs that clients saw. The floor does not
 * lag. So the floor is trusted unless it says exactly what this process
 * wrote itself for this database file (same UIDVALIDITY, same number):
 * then the gap above the UIDs used when it was written is our own
 * reserve, and uidnext stands (or that first unused UID, should the
 * assignment have been rolled back). After a restart, when the database
 * was replaced, or when anyone else wrote the floor, the next UID skips
 * to it: at worst the reserve is left unused, never is a UID given twice.
 *
 * The floors written are remembered for the process, not the handle, so
 * that a handle closed and opened again (more users than kept handles)
 * keeps its reserve; only the loop thread assigns UIDs. At most
 * INDEX_FLOORS_MAX are kept: one forgotten costs a write.
 */
#define INDEX_FLOORS_MAX 4096

struct index_floor {
	dev_t dev; /* the database file's */
	ino_t ino;
	char *mailbox;
	uint32_t validity, next, used;
};

static struct index_floor index_floors[INDEX_FLOORS_MAX];
static size_t index_nfloors, index_floor_victim;

static struct index_floor *
index_floor_find(const struct index *ix, const char *mailbox)
{
	if (ix->ino == 0)
		return NULL; /* no file to tell databases apart by */
	for (size_t i = 0; i < index_nfloors; i++) {
		struct index_floor *f = &index_floors[i];
		if (f->dev == ix->dev && f->ino == ix->ino && strcmp(f->mailbox, mailbox) == 0)
			return f;
	}
	return NULL;
}

void
index_uid_floors_free(void)
{
	for (size_t i = 0; i < index_nfloors; i++)
		free(index_floors[i].mailbox);
	index_nfloors = 0;
}

uint32_t
index_uid_next(struct index *ix, const char *mailbox, uint32_t validity, uint32_t dn,
	       uint32_t fn)
{
	const struct index_floor *f = index_floor_find(ix, mailbox);
	uint32_t floor = f != NULL && f->validity == validity && f->next == fn ? f->used : fn;
	return dn > floor ? dn : floor;
}

int
index_uid_reserve(struct index *ix, const char *mailbox, const char *dir,
		  uint32_t validity, uint32_t fn, uint32_t need, char **error_r)
{
	if (need <= fn)
		return 0;
	uint32_t next = need <= UINT32_MAX - INDEX_UID_RESERVE ?
		need + INDEX_UID_RESERVE : UINT32_MAX;
	if (index_uidlist_write(dir, validity, next, error_r) < 0)
		return -1;
	struct index_floor *f = index_floor_find(ix, mailbox);
	if (f == NULL && ix->ino == 0)
		return 0;
	if (f == NULL) {
		if (index_nfloors < INDEX_FLOORS_MAX) {
			f = &index_floors[index_nfloors++];
		} else {
			f = &index_floors[index_floor_victim++ % INDEX_FLOORS_MAX];
			free(f->mailbox);
		}
		f->dev = ix->dev;
		f->ino = ix->ino;
		f->mailbox = xstrdup(mailbox);
	}
	f->validity = validity;
	f->next = next;
	f->used = need;
	return 0;
}

/* Drops what the index knows of a mailbox (inside a transaction). */
static int
index_mailbox_forget(struct index *ix, const char *mailbox, char **error_r)
{
	static const char *const sqls[] = {
		"DELETE FROM messages WHERE mailbox = ?",
		"DELETE FROM mailboxes WHERE name = ?",
	};
	for (size_t i = 0; i < sizeof(sqls) / sizeof(sqls[0]); i++) {
		sqlite3_stmt *st = index_prepare(ix, sqls[i], error_r);
		if (st == NULL)
			return -1;
		sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		index_finish(ix, st);
		if (rc != SQLITE_DONE)
			return index_db_error(ix, "delete", error_r);
	}
	return 0;
}

/*
 * The mailbox's UIDVALIDITY and UIDNEXT. The uidlist is the truth for
 * UIDVALIDITY; when the index disagrees (the folder was deleted and made
 * again under the same name) its rows are stale and are dropped.
 */
static int
index_mailbox_load(struct index_sync_ctx *c, char **error_r)
{
	uint32_t fv = 0, fn = 1;
	int r = index_uidlist_read(c->dir, &fv, &fn, error_r);
	if (r < 0)
		return -1;
	sqlite3_stmt *st = index_prepare(c->ix, "SELECT uidvalidity, uidnext,"
		" highestmodseq FROM mailboxes WHERE name = ?", error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, c->mailbox, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	uint32_t dv = 0, dn = 1;
	if (rc == SQLITE_ROW) {
		dv = (uint32_t)sqlite3_column_int64(st, 0);
		dn = (uint32_t)sqlite3_column_int64(st, 1);
		c->highestmodseq = (uint64_t)sqlite3_column_int64(st, 2);
	}
	index_finish(c->ix, st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return index_db_error(c->ix, "select", error_r);
	if (r == 1) {
		/* A folder never synced: a UIDVALIDITY of its own. */
		time_t now = time(NULL);
		fv = dv != 0 ? dv : now > 0 ? (uint32_t)now : 1;
		fn = 1;
	}
	c->rebuilding = rc != SQLITE_ROW || dv != fv;
	c->uidvalidity = fv;
	c->floor = r == 1 ? 0 : fn;
	c->uidnext = c->rebuilding ? fn : index_uid_next(c->ix, c->mailbox, fv, dn, fn);
	if (!c->rebuilding)
		return 0;
	return index_mailbox_forget(c->ix, c->mailbox, error_r);
}

/*
 * Decides, without touching anything yet, which files keep their UID and
 * which get a new one. A ",U=" is trusted only when its row is in the
 * index, or when the index is being rebuilt; a file moved in by another
 * tool from some other folder, or a second file with the same ",U=",
 * gets a new UID rather than an old one a client may have seen expunged
 * (of two, the one under the name the row knows keeps it).
 *
 * Only a rebuild sorts every file (by UID, to find the second of a
 * pair); otherwise the rows tell, and only the files that need a UID are
 * sorted, by arrival, which is the order they get theirs in. They end up
 * last in c->files.
 */
static int
index_classify(struct index_sync_ctx *c, char **error_r)
{
	if (c->rebuilding && c->nfiles > 0) {
		index_files_arrival(c->files, c->nfiles);
		qsort(c->files, c->nfiles, sizeof(*c->files), index_file_cmp);
	}
	uint32_t prev = 0;
	for (size_t i = 0; i < c->nfiles; i++) {
		struct index_file *f = &c->files[i];
		uint32_t uid = f->uid;
		if (uid == 0)
			continue;
		struct index_row *row = c->rebuilding ? NULL : index_row_find(c, uid);
		if (c->rebuilding) {
			if (uid == prev)
				f->uid = 0;
			else if (uid >= c->uidnext)
				c->uidnext = uid + 1;
			prev = uid;
		} else if (row == NULL) {
			f->uid = 0;
		} else if (row->file == 0) {
			row->file = i + 1;
		} else if (strcmp(f->name, row->name) == 0) {
			c->files[row->file - 1].uid = 0; /* the other is the stray */
			row->file = i + 1;
		} else {
			f->uid = 0;
		}
	}
	size_t keep = 0;
	for (size_t i = 0; i < c->nfiles; i++) {
		if (c->files[i].uid == 0)
			continue;
		struct index_file t = c->files[keep];
		c->files[keep++] = c->files[i];
		c->files[i] = t;
	}
	if (c->nfiles - keep > 1) {
		index_files_arrival(c->files + keep, c->nfiles - keep);
		qsort(c->files + keep, c->nfiles - keep, sizeof(*c->files), index_file_cmp);
	}
	for (size_t i = keep; i < c->nfiles; i++) {
		if (c->uidnext == UINT32_MAX) {
			*error_r = xasprintf("%s: UIDs exhausted", c->mailbox);
			return -1;
		}
		c->files[i].uid = c->uidnext++;
		c->files[i].fresh = true;
	}
	return 0;
}

static uint64_t
index_sync_modseq(struct index_sync_ctx *c)
{
	if (c->modseq == 0)
		c->modseq = ++c->highestmodseq;
	return c->modseq;
}

/*
 * The keyword names of a file name's letters, from the folder's map, read
 * only for a name that has such letters: a damaged map then stops only
 * the syncs that need it.
 */
static int
index_sync_keywords(struct index_sync_ctx *c, const char *name,
		    char **keywords_r, char **error_r)
{
	const char *info = index_name_info(name);
	if (info[strcspn(info, "abcdefghijklmnopqrstuvwxyz")] == '\0') {
		*keywords_r = xstrdup("");
		return 0;
	}
	if (!c->kwmap_loaded) {
		if (index_kwmap_load(c->dir, &c->kwmap, error_r) < 0)
			return -1;
		c->kwmap_loaded = true;
	}
	*keywords_r = index_kwmap_names_of(&c->kwmap, name);
	return 0;
}

static int
index_row_insert(struct index_sync_ctx *c, uint32_t uid, const char *name,
		 const char *path, char **error_r)
{
	char flags[8], *keywords;
	index_name_flags(name, flags);
	if (index_sync_keywords(c, name, &keywords, error_r) < 0)
		return -1;
	sqlite3_stmt *st = index_prepare(c->ix, "INSERT OR REPLACE INTO messages"
		"(mailbox, uid, basename, flags, internaldate, size_crlf, modseq,"
		" keywords) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", error_r);
	if (st == NULL) {
		free(keywords);
		return -1;
	}
	sqlite3_bind_text(st, 1, c->mailbox, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, uid);
	sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, flags, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)index_file_date(name, path));
	sqlite3_bind_int64(st, 6, (sqlite3_int64)index_file_size(name, path));
	sqlite3_bind_int64(st, 7, (sqlite3_int64)index_sync_modseq(c));
	sqlite3_bind_text(st, 8, keywords, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	index_finish(c->ix, st);
	free(keywords);
	return rc == SQLITE_DONE ? 0 : index_db_error(c->ix, "insert", error_r);
}

static int
index_row_update(struct index_sync_ctx *c, uint32_t uid, const char *name,
		 const char *keywords, char **error_r)
{
	char flags[8];
	index_name_flags(name, flags);
	sqlite3_stmt *st = index_prepare(c->ix, "UPDATE messages SET basename"
		" = ?, flags = ?, keywords = ?, modseq = ?"
		" WHERE mailbox = ? AND uid = ?", error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, flags, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, keywords, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)index_sync_modseq(c));
	sqlite3_bind_text(st, 5, c->mailbox, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, uid);
	int rc = sqlite3_step(st);
	index_finish(c->ix, st);
	return rc == SQLITE_DONE ? 0 : index_db_error(c->ix, "update", error_r);
}

/*
 * A renamed file whose row is known: the row follows the name, and a
 * change of its system flags or keywords (by mutt and the like) counts.
 */
static int
index_row_follow(struct index_sync_ctx *c, const struct index_row *row,
		 const char *name, char **error_r)
{
	char *was, *now;
	if (index_sync_keywords(c, row->name, &was, error_r) < 0)
		return -1;
	if (index_sync_keywords(c, name, &now, error_r) < 0) {
		free(was);
		return -1;
	}
	char a[8], b[8];
	index_name_flags(row->name, a);
	index_name_flags(name, b);
	if (strcmp(a, b) != 0 || strcmp(was, now) != 0)
		c->r->flag_changes++;
	int r = index_row_update(c, row->uid, name, now, error_r);
	free(was);
	free(now);
	return r;
}

static void
index_uids_push(uint32_t **uids, size_t *n, uint32_t uid)
{
	*uids = xrealloc(*uids, (*n + 1) * sizeof(**uids));
	(*uids)[(*n)++] = uid;
}

/*
 * Moves a file to cur/ under the name that carries its UID. 1 when it
 * vanished meanwhile (deleted by another tool: its UID is simply unused).
 */
static int
index_file_place(struct index_sync_ctx *c, struct index_file *f,
		 char **name_r, char **error_r)
{
	char *name = index_name_with_uid(f->name, f->uid);
	char *from = xasprintf("%s/%s/%s", c->dir, f->sub, f->name);
	char *to = xasprintf("%s/cur/%s", c->dir, name);
	int ret = 0;
	if (strcmp(from, to) != 0 && rename(from, to) < 0) {
		ret = errno == ENOENT ? 1 : -1;
		if (ret < 0)
			*error_r = xasprintf("rename %s: %s", from, strerror(errno));
	} else if (strcmp(from, to) != 0) {
		c->renamed = true;
		c->moved_from_new |= f->sub[0] == 'n';
	}
	free(from);
	free(to);
	if (ret != 0)
		free(name);
	else
		*name_r = name;
	return ret;
}

/* One file: a new UID, a row rebuilt from its name, or a changed name. */
static int
index_file_apply(struct index_sync_ctx *c, struct index_file *f,
		 char **error_r)
{
	bool fresh = f->fresh;
	struct index_row *row = fresh ? NULL : index_row_find(c, f->uid);
	if (row != NULL && f->sub[0] == 'c' && strcmp(row->name, f->name) == 0)
		return 0; /* unchanged: the common case */
	char *name;
	int r = index_file_place(c, f, &name, error_r);
	if (r != 0)
		return r < 0 ? -1 : 0;
	if (row != NULL) {
		r = index_row_follow(c, row, name, error_r);
	} else {
		char *path = xasprintf("%s/cur/%s", c->dir, name);
		r = index_row_insert(c, f->uid, name, path, error_r);
		free(path);
		if (r == 0 && fresh)
			index_uids_push(&c->r->new_uids, &c->r->new_count, f->uid);
	}
	free(name);
	return r;
}

static int
index_expunge_unseen(struct index_sync_ctx *c, char **error_r)
{
	for (size_t i = 0; i < c->nrows; i++) {
		if (c->rows[i].file != 0)
			continue;
		sqlite3_stmt *st = index_prepare(c->ix, "DELETE FROM messages"
			" WHERE mailbox = ? AND uid = ?", error_r);
		if (st == NULL)
			return -1;
		sqlite3_bind_text(st, 1, c->mailbox, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, c->rows[i].uid);
		int rc = sqlite3_step(st);
		index_finish(c->ix, st);
		if (rc != SQLITE_DONE)
			return index_db_error(c->ix, "delete", error_r);
		index_sync_modseq(c);
		index_uids_push(&c->r->expunged_uids, &c->r->expunged_count,
				c->rows[i].uid);
	}
	return 0;
}

static int
index_mailbox_store(struct index_sync_ctx *c, char **error_r)
{
	/* An upsert, not REPLACE: the row's other columns (recentuid) stay. */
	sqlite3_stmt *st = index_prepare(c->ix, "INSERT INTO"
		" mailboxes(name, uidvalidity, uidnext, highestmodseq, messages)"
		" VALUES (?1, ?2, ?3, ?4, (SELECT count(*) FROM messages"
		" WHERE mailbox = ?1)) ON CONFLICT(name) DO UPDATE SET"
		" uidvalidity = excluded.uidvalidity, uidnext = excluded.uidnext,"
		" highestmodseq = excluded.highestmodseq, messages = excluded.messages",
		error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, c->mailbox, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, c->uidvalidity);
	sqlite3_bind_int64(st, 3, c->uidnext);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)c->highestmodseq);
	int rc = sqlite3_step(st);
	index_finish(c->ix, st);
	return rc == SQLITE_DONE ? 0 : index_db_error(c->ix, "insert", error_r);
}

/*
 * Making a sync's renames durable. They only give files their UIDs (a new
 * message is durable in new/ already), so nothing acknowledged hangs on
 * them: should a crash undo one, the file is back under its old name, the
 * next sync gives it a new UID (the floor keeps the old one from ever
 * being given again), and the message stays. So ternd has the fsyncs done
 * on its worker threads without waiting (index_sync_use_pool): the loop
 * that every session shares never waits for the disk to register new
 * mail. Elsewhere (tern reindex) they are done in place.
 */
static struct workpool *index_sync_pool;

void
index_sync_use_pool(struct workpool *pool)
{
	index_sync_pool = pool;
}

struct index_fsync_job {
	char *dirs[2]; /* dirs[1] may be NULL */
};

static void
index_fsync_work(void *arg)
{
	struct index_fsync_job *job = arg;
	for (size_t i = 0; i < 2 && job->dirs[i] != NULL; i++)
		fsync_dir(job->dirs[i]); /* a failure costs a UID at worst (above) */
}

static void
index_fsync_done(void *arg)
{
	struct index_fsync_job *job = arg;
	free(job->dirs[0]);
	free(job->dirs[1]);
	free(job);
}

static int
index_sync_durable(const char *cur, const char *new, char **error_r)
{
	if (index_sync_pool != NULL) {
		struct index_fsync_job *job = xcalloc(1, sizeof(*job));
		job->dirs[0] = xstrdup(cur);
		job->dirs[1] = new != NULL ? xstrdup(new) : NULL;
		workpool_submit(index_sync_pool, index_fsync_work, index_fsync_done, job);
		return 0;
	}
	if (fsync_dir(cur) < 0 || (new != NULL && fsync_dir(new) < 0)) {
		*error_r = xasprintf("fsync %s: %s", new != NULL ? new : cur, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * The order matters for crash safety: the UIDNEXT floor is durable before
 * any file is renamed to carry a new UID; the renames are made durable
 * (index_sync_durable) once they are all done.
 */
static int
index_sync_run(struct index_sync_ctx *c, char **error_r)
{
	if (index_mailbox_load(c, error_r) < 0 ||
	    index_scan(c, "cur", error_r) < 0 ||
	    index_scan(c, "new", error_r) < 0 || index_rows_load(c, error_r) < 0 ||
	    index_delivered_load(c->ix, c->mailbox, &c->delivered, error_r) < 0)
		return -1;
	if (index_classify(c, error_r) < 0)
		return -1;
	/* A folder made by hand may lack cur/; every file ends up there. */
	char *cur = xasprintf("%s/cur", c->dir), *new = xasprintf("%s/new", c->dir);
	int r = 0;
	if (c->nfiles > 0 && mkdir_p(cur, 0700) < 0) {
		*error_r = xasprintf("mkdir %s: %s", cur, strerror(errno));
		r = -1;
	}
	if (r == 0 && index_uid_reserve(c->ix, c->mailbox, c->dir, c->uidvalidity,
					c->floor, c->uidnext, error_r) < 0)
		r = -1;
	for (size_t i = 0; r == 0 && i < c->nfiles; i++) {
		if (index_file_apply(c, &c->files[i], error_r) < 0)
			r = -1;
		index_delivered_match(&c->delivered, c->files[i].name,
				      c->files[i].uid);
	}
	if (r == 0 && c->renamed &&
	    index_sync_durable(cur, c->moved_from_new ? new : NULL, error_r) < 0)
		r = -1;
	free(cur);
	free(new);
	if (r < 0 || index_delivered_take(c->ix, c->mailbox, &c->delivered,
					  error_r) < 0 ||
	    index_expunge_unseen(c, error_r) < 0 ||
	    index_mailbox_store(c, error_r) < 0 ||
	    index_count(c->ix, c->mailbox, &c->r->exists, error_r) < 0)
		return -1;
	c->r->uidvalidity = c->uidvalidity;
	c->r->uidnext = c->uidnext;
	return 0;
}

static void
index_sync_ctx_free(struct index_sync_ctx *c)
{
	for (size_t i = 0; i < c->nfiles; i++)
		free(c->files[i].name);
	free(c->files);
	for (size_t i = 0; i < c->nrows; i++)
		free(c->rows[i].name);
	free(c->rows);
	index_kwmap_clear(&c->kwmap);
	index_delivered_free(&c->delivered);
}

/*
 * Whether new/ and cur/ still have the mtimes the last scan saw (nothing
 * was added, removed or renamed since): then the index is current, and
 * r gets the mailbox's numbers without a scan. 1 if so, 0 if not.
 */
static int
index_sync_unchanged(struct index *ix, const char *mailbox, const char *dir,
		     struct index_sync_result *r, char **error_r)
{
	long long m_new = index_dir_mtime(dir, "new"), m_cur = index_dir_mtime(dir, "cur");
	if (m_new == 0 || m_cur == 0)
		return 0;
	sqlite3_stmt *st = index_prepare(ix, "SELECT uidvalidity, uidnext FROM mailboxes"
		" WHERE name = ? AND new_mtime = ? AND cur_mtime = ?", error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, m_new);
	sqlite3_bind_int64(st, 3, m_cur);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		r->uidvalidity = (uint32_t)sqlite3_column_int64(st, 0);
		r->uidnext = (uint32_t)sqlite3_column_int64(st, 1);
	}
	index_finish(ix, st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return index_db_error(ix, "select", error_r);
	if (rc != SQLITE_ROW)
		return 0;
	return index_count(ix, mailbox, &r->exists, error_r) < 0 ? -1 : 1;
}

/* What the scan saw, for index_sync_unchanged (0: scan again next time). */
static int
index_sync_seen(struct index *ix, const char *mailbox, const char *dir, char **error_r)
{
	sqlite3_stmt *st = index_prepare(ix, "UPDATE mailboxes SET new_mtime = ?,"
		" cur_mtime = ? WHERE name = ?", error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, index_dir_mtime(dir, "new"));
	sqlite3_bind_int64(st, 2, index_dir_mtime(dir, "cur"));
	sqlite3_bind_text(st, 3, mailbox, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	index_finish(ix, st);
	return rc == SQLITE_DONE ? 0 : index_db_error(ix, "update", error_r);
}

int
index_sync(struct index *ix, const char *mailbox, const char *dir,
	   struct index_sync_result *r, char **error_r)
{
	memset(r, 0, sizeof(*r));
	struct index_sync_ctx c = {
		.ix = ix, .mailbox = mailbox, .dir = dir, .r = r,
	};
	/* IMMEDIATE: two sessions of one user syncing at once take turns,
	 * so one UID is never given to two files. */
	if (index_exec(ix, "BEGIN IMMEDIATE", error_r) < 0)
		return -1;
	int ret = index_sync_unchanged(ix, mailbox, dir, r, error_r);
	if (ret == 1) {
		index_sync_ctx_free(&c);
		return index_exec(ix, "COMMIT", error_r);
	}
	if (ret == 0)
		ret = index_sync_run(&c, error_r);
	if (ret == 0)
		ret = index_sync_seen(ix, mailbox, dir, error_r);
	if (ret == 0)
		ret = index_exec(ix, "COMMIT", error_r);
	if (ret < 0) {
		index_rollback(ix);
		index_sync_result_free(r);
	}
	index_sync_ctx_free(&c);
	return ret;
}

void
index_sync_result_free(struct index_sync_result *r)
{
	free(r->new_uids);
	free(r->expunged_uids);
	memset(r, 0, sizeof(*r));
}

int
index_rebuild(struct index *ix, const char *mailbox, const char *dir,
	      struct index_sync_result *r, char **error_r)
{
	memset(r, 0, sizeof(*r));
	if (index_exec(ix, "BEGIN IMMEDIATE", error_r) < 0)
		return -1;
	if (index_mailbox_forget(ix, mailbox, error_r) < 0 ||
	    index_exec(ix, "COMMIT", error_r) < 0) {
		index_rollback(ix);
		return -1;
	}
	return index_sync(ix, mailbox, dir, r, error_r);
}
