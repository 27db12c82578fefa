/*
 * The Maildir backend of store.h: mail_root/DOMAIN/LOCALPART/{cur,new,tmp}
 * is a user's INBOX (Maildir++; folders come later as .Name/). Messages are
 * kept with LF line ends, as local Maildir readers expect; the file name
 * carries the size (S=) and the size in CRLF form (W=) so that POP3 and
 * IMAP can report sizes without reading the file.
 */
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "store/index_private.h"

#define MAILDIR_CHUNK (64 * 1024)
#define MAILDIR_LOCK_NAME ".tern-pop3.lock"

struct store {
	char *root;
	char *host;        /* gethostname() made safe for a Maildir name */
	unsigned counter;  /* Q<counter>: unique within this process */
};

/* One listed message; msg is what store_mailbox_msg hands out. */
struct maildir_entry {
	struct store_msg msg;
	unsigned long long sec;
	unsigned long usec;
	char *name;        /* the base name as listed, for ordering */
};

struct store_mailbox {
	char *dir;         /* the user's Maildir */
	int lock_fd;
	struct maildir_entry *entries;
	size_t count;
};

/*
 * The host part of a Maildir name must not hold '/' or ':' (the Maildir
 * spec), and ',' starts our S=/W= fields, so all three are escaped as
 * "\ooo" octal.
 */
static char *
maildir_safe_host(void)
{
	char host[256];
	if (gethostname(host, sizeof(host) - 1) < 0)
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	size_t n = strlen(host);
	char *out = xmalloc(n * 4 + 1), *p = out;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)host[i];
		if (c == '/' || c == ':' || c == ',' || c < 0x21 || c > 0x7e)
			p += sprintf(p, "\\%03o", c);
		else
			*p++ = (char)c;
	}
	*p = '\0';
	return out;
}

struct store *
store_open(const char *mail_root)
{
	struct store *st = xcalloc(1, sizeof(*st));
	st->root = xstrdup(mail_root);
	st->host = maildir_safe_host();
	return st;
}

void
store_free(struct store **stp)
{
	struct store *st = *stp;
	if (st == NULL)
		return;
	free(st->root);
	free(st->host);
	free(st);
	*stp = NULL;
}

/* A path component from the peer: non-empty, no '/', no leading '.'. */
static bool
maildir_part_ok(const char *s, size_t n)
{
	if (n == 0 || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '/' || c == '\\' || c < 0x20 || c == 0x7f)
			return false;
		if (c == '.' && i + 1 < n && s[i + 1] == '.')
			return false;
	}
	return true;
}

/*
 * Maps a canonical address to its Maildir, refusing anything that could
 * leave the mail root ("../x@y", "a/b@c", "@x", ".hidden@x"). The domain
 * is the part after the last '@' so a quoted local part cannot hide one.
 */
char *
store_user_dir(const char *root, const char *address, char **error_r)
{
	const char *at = strrchr(address, '@');
	if (at == NULL || !maildir_part_ok(address, (size_t)(at - address)) ||
	    !maildir_part_ok(at + 1, strlen(at + 1))) {
		*error_r = xasprintf("invalid mailbox address");
		return NULL;
	}
	return xasprintf("%s/%s/%.*s", root, at + 1, (int)(at - address), address);
}

/*
 * Creates DIR/{cur,new,tmp}. When new/ did not exist the parents are
 * fsynced too, so the first delivery to a user survives a crash with its
 * directories.
 */
static int
maildir_create(const char *dir, char **error_r)
{
	static const char *const subs[] = { "tmp", "new", "cur" };
	char *newdir = xasprintf("%s/new", dir);
	struct stat sb;
	bool existed = stat(newdir, &sb) == 0;
	free(newdir);
	if (existed)
		return 0;
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		char *sub = xasprintf("%s/%s", dir, subs[i]);
		int r = mkdir_p(sub, 0700);
		free(sub);
		if (r < 0) {
			*error_r = xasprintf("mkdir %s: %s", dir, strerror(errno));
			return -1;
		}
	}
	/* dir, its domain directory and the root each got a new entry. */
	char *parent = xstrdup(dir);
	for (int up = 0; up < 3; up++) {
		if (fsync_dir(parent) < 0) {
			*error_r = xasprintf("fsync %s: %s", parent, strerror(errno));
			free(parent);
			return -1;
		}
		char *slash = strrchr(parent, '/');
		if (slash == NULL || slash == parent)
			break;
		*slash = '\0';
	}
	free(parent);
	return 0;
}

/*
 * CRLF -> LF conversion that keeps state across chunks: a CR at the end of
 * one chunk is held back until the next byte shows whether it ends a line.
 * A CR not followed by LF is kept. wsize counts the CRLF form the way the
 * dot encoder will produce it: every LF not preceded by CR costs one more.
 */
struct maildir_writer {
	int fd;
	bool held_cr;
	char prev;           /* last byte written to the file */
	off_t size;
	off_t wsize;
	char out[MAILDIR_CHUNK];
	size_t outlen;
};

static int
maildir_writer_flush(struct maildir_writer *w)
{
	if (w->outlen > 0 && write_all(w->fd, w->out, w->outlen) < 0)
		return -1;
	w->outlen = 0;
	return 0;
}

static int
maildir_writer_byte(struct maildir_writer *w, char c)
{
	if (w->outlen == sizeof(w->out) && maildir_writer_flush(w) < 0)
		return -1;
	w->out[w->outlen++] = c;
	w->size++;
	w->wsize += c == '\n' && w->prev != '\r' ? 2 : 1;
	w->prev = c;
	return 0;
}

static int
maildir_writer_feed(struct maildir_writer *w, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (w->held_cr) {
			w->held_cr = false;
			if (p[i] != '\n' && maildir_writer_byte(w, '\r') < 0)
				return -1;
		}
		if (p[i] == '\r') {
			w->held_cr = true;
			continue;
		}
		if (maildir_writer_byte(w, p[i]) < 0)
			return -1;
	}
	return 0;
}

static int
maildir_writer_finish(struct maildir_writer *w)
{
	if (w->held_cr) {
		w->held_cr = false;
		if (maildir_writer_byte(w, '\r') < 0)
			return -1;
	}
	return maildir_writer_flush(w);
}

/* Copies prefix and body_len bytes of body_fd (from body_off) converted. */
static int
maildir_copy(struct maildir_writer *w, const char *prefix, size_t prefix_len,
	     int body_fd, off_t body_off, off_t body_len, char **error_r)
{
	/* Not static: deliveries run on several threads at once. */
	char *in = xmalloc(MAILDIR_CHUNK);
	if (maildir_writer_feed(w, prefix, prefix_len) < 0)
		goto write_error;
	off_t off = 0;
	while (off < body_len) {
		size_t want = body_len - off < (off_t)MAILDIR_CHUNK ?
			(size_t)(body_len - off) : MAILDIR_CHUNK;
		ssize_t n = pread(body_fd, in, want, body_off + off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*error_r = xasprintf("read message: %s",
					     n == 0 ? "short file" : strerror(errno));
			free(in);
			return -1;
		}
		if (maildir_writer_feed(w, in, (size_t)n) < 0)
			goto write_error;
		off += n;
	}
	if (maildir_writer_finish(w) < 0)
		goto write_error;
	free(in);
	return 0;
write_error:
	*error_r = xasprintf("write message: %s", strerror(errno));
	free(in);
	return -1;
}

/* "<sec>.M<usec>P<pid>Q<counter>.<host>": the Maildir unique name. */
static char *
maildir_unique(struct store *st)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return xasprintf("%lld.M%06ldP%ldQ%u.%s", (long long)tv.tv_sec,
			 (long)tv.tv_usec, (long)getpid(),
			 __atomic_add_fetch(&st->counter, 1, __ATOMIC_RELAXED), st->host);
}

/* P<pid>Q<counter> alone makes the name unique; <sec> may be any date. */
char *
store_unique_name(struct store *st, time_t when)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return xasprintf("%lld.M%06ldP%ldQ%u.%s", (long long)(when > 0 ? when : 1),
			 (long)tv.tv_usec, (long)getpid(),
			 __atomic_add_fetch(&st->counter, 1, __ATOMIC_RELAXED), st->host);
}

/* Writes, fsyncs and closes the temporary file; unlinks it on failure. */
static int
maildir_write_tmp(const char *tmppath, struct maildir_writer *w,
		  const char *prefix, size_t prefix_len, int body_fd,
		  off_t body_off, off_t body_len, char **error_r)
{
	w->fd = open(tmppath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		*error_r = xasprintf("open %s: %s", tmppath, strerror(errno));
		return -1;
	}
	int r = maildir_copy(w, prefix, prefix_len, body_fd, body_off, body_len, error_r);
	/*
	 * The data must be on disk before the name appears in new/: after a
	 * crash a reader must never find a complete-looking name whose
	 * content is missing or short.
	 */
	if (r == 0 && fsync(w->fd) < 0) {
		*error_r = xasprintf("fsync %s: %s", tmppath, strerror(errno));
		r = -1;
	}
	if (close(w->fd) < 0 && r == 0) {
		*error_r = xasprintf("close %s: %s", tmppath, strerror(errno));
		r = -1;
	}
	w->fd = -1;
	if (r < 0)
		unlink(tmppath);
	return r;
}

/*
 * ENVELOPE and BODYSTRUCTURE for the IMAP index, computed here on the
 * delivery thread, once the message is durable in new/: only then, so
 * that a sync that sees the index row also finds the file (see
 * index_delivered_take). The message is delivered whatever happens here;
 * a failure only leaves the work to the first FETCH.
 */
static void
maildir_describe(const char *dir, const char *address, const char *newpath,
		 unsigned long long wsize)
{
	char *error = NULL;
	const char *name = strrchr(newpath, '/') + 1;
	if (index_deliver_describe(dir, "INBOX", newpath, name, wsize, &error) < 0) {
		log_warn("deliver: user=<%s> %s: not described for IMAP: %s",
			 address, name, error);
		free(error);
	}
}

int
store_deliver(struct store *st, const char *address, const char *prefix,
	      size_t prefix_len, int body_fd, off_t body_len, char **error_r)
{
	return store_deliver_at(st, address, prefix, prefix_len, body_fd, 0, body_len,
				error_r);
}

int
store_deliver_at(struct store *st, const char *address, const char *prefix,
		 size_t prefix_len, int body_fd, off_t body_off, off_t body_len,
		 char **error_r)
{
	char *dir = store_user_dir(st->root, address, error_r);
	if (dir == NULL)
		return -1;
	if (maildir_create(dir, error_r) < 0) {
		free(dir);
		return -1;
	}
	char *unique = maildir_unique(st);
	char *tmppath = xasprintf("%s/tmp/%s", dir, unique);
	struct maildir_writer *w = xcalloc(1, sizeof(*w));
	int r = maildir_write_tmp(tmppath, w, prefix, prefix_len, body_fd,
				  body_off, body_len, error_r);
	char *newdir = xasprintf("%s/new", dir);
	char *newpath = xasprintf("%s/%s,S=%lld,W=%lld", newdir, unique,
				  (long long)w->size, (long long)w->wsize);
	/*
	 * rename() is atomic: readers see either nothing or the whole file
	 * under its final name (sizes included, known only now).
	 */
	if (r == 0 && rename(tmppath, newpath) < 0) {
		*error_r = xasprintf("rename to %s: %s", newpath, strerror(errno));
		unlink(tmppath);
		r = -1;
	}
	/*
	 * The rename lives in the directory: until new/ is fsynced a crash
	 * may lose the entry, so only after this may the caller say 250.
	 */
	if (r == 0 && fsync_dir(newdir) < 0) {
		*error_r = xasprintf("fsync %s: %s", newdir, strerror(errno));
		r = -1;
	}
	if (r == 0)
		maildir_describe(dir, address, newpath, (unsigned long long)w->wsize);
	free(newpath);
	free(newdir);
	free(w);
	free(tmppath);
	free(unique);
	free(dir);
	return r;
}

/* ---- reading: the POP3 maildrop ---- */

/* The value of ",KEY=<digits>" in the base name (before ':'), or -1. */
static long long
maildir_name_field(const char *name, const char *key)
{
	size_t klen = strlen(key);
	const char *end = strchr(name, ':');
	if (end == NULL)
		end = name + strlen(name);
	for (const char *p = name; p < end; p++) {
		if (*p != ',' || (size_t)(end - p) < klen + 2 ||
		    strncmp(p + 1, key, klen) != 0 || p[1 + klen] != '=')
			continue;
		const char *d = p + 2 + klen;
		long long v = 0;
		if (d >= end || *d < '0' || *d > '9')
			return -1;
		for (; d < end && *d >= '0' && *d <= '9'; d++) {
			if (v > (LLONG_MAX - 9) / 10)
				return -1;
			v = v * 10 + (*d - '0');
		}
		return v;
	}
	return -1;
}

/*
 * The size POP3 sends of a file written by another tool (RFC 1939 §11,
 * the exact size in LIST): bare LFs become CRLF, and a last line without
 * its end gets one, as dot_encode_finish adds it.
 */
static int
maildir_count_size(const char *path, size_t *size_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	static char chunk[MAILDIR_CHUNK];
	size_t size = 0;
	char prev = 0;
	ssize_t n;
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			close(fd);
			return -1;
		}
		for (ssize_t i = 0; i < n; i++) {
			size += chunk[i] == '\n' && prev != '\r' ? 2 : 1;
			prev = chunk[i];
		}
	}
	close(fd);
	if (size > 0 && prev != '\n')
		size += prev == '\r' ? 1 : 2;
	*size_r = size;
	return 0;
}

/* Arrival order key: "<sec>.M<usec>..." (other tools: "<sec>.<anything>"). */
static void
maildir_parse_time(const char *name, unsigned long long *sec_r,
		   unsigned long *usec_r)
{
	char *end;
	errno = 0;
	unsigned long long sec = strtoull(name, &end, 10);
	if (errno != 0 || end == name || *name < '0' || *name > '9')
		sec = ULLONG_MAX; /* unknown names sort last, by name */
	unsigned long usec = 0;
	if (sec != ULLONG_MAX && end[0] == '.' && end[1] == 'M' &&
	    end[2] >= '0' && end[2] <= '9')
		usec = strtoul(end + 2, NULL, 10);
	*sec_r = sec;
	*usec_r = usec;
}

static int
maildir_entry_cmp(const void *a, const void *b)
{
	const struct maildir_entry *x = a, *y = b;
	if (x->sec != y->sec)
		return x->sec < y->sec ? -1 : 1;
	if (x->usec != y->usec)
		return x->usec < y->usec ? -1 : 1;
	return strcmp(x->name, y->name);
}

static bool
maildir_is_file(int dfd, const struct dirent *de)
{
	if (de->d_type == DT_REG)
		return true;
	if (de->d_type != DT_UNKNOWN)
		return false;
	struct stat sb;
	return fstatat(dfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
		S_ISREG(sb.st_mode);
}

static void
maildir_entry_add(struct store_mailbox *mb, size_t *cap, const char *sub,
		  const char *name)
{
	char *path = xasprintf("%s/%s/%s", mb->dir, sub, name);
	long long w = maildir_name_field(name, "W");
	size_t size;
	if (w >= 0)
		size = (size_t)w;
	else if (maildir_count_size(path, &size) < 0) {
		free(path); /* vanished while listing: not ours to show */
		return;
	}
	if (mb->count == *cap) {
		*cap = *cap == 0 ? 16 : *cap * 2;
		mb->entries = xrealloc(mb->entries, *cap * sizeof(*mb->entries));
	}
	struct maildir_entry *e = &mb->entries[mb->count++];
	memset(e, 0, sizeof(*e));
	e->name = xstrdup(name);
	/* The unique part only: the ",S=" ",W=" ",U=" fields after it may be
	 * added or changed (the IMAP index adds ",U="), the UIDL must not. */
	e->msg.uid = xstrndup(name, strcspn(name, ":,"));
	e->msg.size = size;
	e->msg.path = path;
	maildir_parse_time(name, &e->sec, &e->usec);
}

/* Lists one of new/ or cur/; a missing directory is an empty one. */
static int
maildir_list(struct store_mailbox *mb, size_t *cap, const char *sub,
	     char **error_r)
{
	char *path = xasprintf("%s/%s", mb->dir, sub);
	DIR *d = opendir(path);
	if (d == NULL) {
		int saved = errno;
		if (saved == ENOENT) {
			free(path);
			return 0;
		}
		*error_r = xasprintf("opendir %s: %s", path, strerror(saved));
		free(path);
		return -1;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || !maildir_is_file(dirfd(d), de))
			continue;
		maildir_entry_add(mb, cap, sub, de->d_name);
	}
	closedir(d);
	free(path);
	return 0;
}

/*
 * The maildrop lock (RFC 1939 §8: one session per maildrop). flock() locks
 * belong to the open file description, so a second session in the same
 * process is refused just like one in another process, and the kernel
 * drops the lock if we die.
 */
static int
maildir_lock(struct store_mailbox *mb, bool *in_use_r, char **error_r)
{
	if (mkdir_p(mb->dir, 0700) < 0) {
		*error_r = xasprintf("mkdir %s: %s", mb->dir, strerror(errno));
		return -1;
	}
	char *path = xasprintf("%s/%s", mb->dir, MAILDIR_LOCK_NAME);
	mb->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (mb->lock_fd < 0) {
		*error_r = xasprintf("open %s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	free(path);
	if (flock(mb->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			*in_use_r = true;
		*error_r = xasprintf("lock %s: %s", mb->dir,
				     errno == EWOULDBLOCK ? "in use" : strerror(errno));
		return -1;
	}
	return 0;
}

struct store_mailbox *
store_inbox_open(struct store *st, const char *address, bool *in_use_r,
		 char **error_r)
{
	*in_use_r = false;
	char *dir = store_user_dir(st->root, address, error_r);
	if (dir == NULL)
		return NULL;
	struct store_mailbox *mb = xcalloc(1, sizeof(*mb));
	mb->dir = dir;
	mb->lock_fd = -1;
	size_t cap = 0;
	if (maildir_lock(mb, in_use_r, error_r) < 0 ||
	    maildir_list(mb, &cap, "new", error_r) < 0 ||
	    maildir_list(mb, &cap, "cur", error_r) < 0) {
		store_mailbox_close(&mb);
		return NULL;
	}
	if (mb->count > 0)
		qsort(mb->entries, mb->count, sizeof(*mb->entries), maildir_entry_cmp);
	return mb;
}

size_t
store_mailbox_count(const struct store_mailbox *mb)
{
	return mb->count;
}

const struct store_msg *
store_mailbox_msg(const struct store_mailbox *mb, size_t i)
{
	return i < mb->count ? &mb->entries[i].msg : NULL;
}

/* Finds a file again by uid in "sub" (another tool moved or re-flagged it). */
static char *
maildir_find_in(const char *dir, const char *sub, const char *uid)
{
	char *path = xasprintf("%s/%s", dir, sub);
	DIR *d = opendir(path);
	free(path);
	if (d == NULL)
		return NULL;
	size_t ulen = strlen(uid);
	char *found = NULL;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, uid, ulen) == 0 &&
		    (de->d_name[ulen] == '\0' || de->d_name[ulen] == ':' ||
		     de->d_name[ulen] == ',')) {
			found = xasprintf("%s/%s/%s", dir, sub, de->d_name);
			break;
		}
	}
	closedir(d);
	return found;
}

/* Updates e's path to where its uid now lives; false if it is gone. */
static bool
maildir_refind(const struct store_mailbox *mb, struct maildir_entry *e)
{
	char *found = maildir_find_in(mb->dir, "cur", e->msg.uid);
	if (found == NULL)
		found = maildir_find_in(mb->dir, "new", e->msg.uid);
	if (found == NULL)
		return false;
	free(e->msg.path);
	e->msg.path = found;
	return true;
}

int
store_msg_open(const struct store_mailbox *mb, size_t i)
{
	if (i >= mb->count)
		return -1;
	struct maildir_entry *e = &mb->entries[i];
	int fd = open(e->msg.path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && maildir_refind(mb, e))
		fd = open(e->msg.path, O_RDONLY | O_CLOEXEC);
	return fd;
}

/* Unlinks one message; 0 also when it is gone already. */
static int
maildir_unlink(struct store_mailbox *mb, struct maildir_entry *e,
	       bool *touched_new, bool *touched_cur)
{
	for (int tries = 0; tries < 3; tries++) {
		if (unlink(e->msg.path) == 0) {
			char *slash = strrchr(e->msg.path, '/');
			if (slash - e->msg.path >= 4 && strncmp(slash - 4, "/new", 4) == 0)
				*touched_new = true;
			else
				*touched_cur = true;
			return 0;
		}
		if (errno != ENOENT)
			return -1;
		/* Renamed by another tool since we listed it: look again. */
		if (!maildir_refind(mb, e))
			return 0;
	}
	return 0;
}

/*
 * The IMAP index's rows for messages described at delivery and removed
 * before an IMAP session saw them (a sync would drop them too, but a
 * POP3-only user may never have one). A failure costs only table space.
 */
static void
maildir_forget(const char *dir, const char *const *names, size_t count)
{
	char *error = NULL;
	if (index_deliver_forget(dir, "INBOX", names, count, &error) < 0) {
		log_warn("pop3: %s: index rows of removed messages kept: %s",
			 dir, error);
		free(error);
	}
}

int
store_mailbox_expunge(struct store_mailbox *mb, const bool *deleted, char **error_r)
{
	bool touched_new = false, touched_cur = false;
	int r = 0;
	const char **gone = xcalloc(mb->count + 1, sizeof(*gone));
	size_t ngone = 0;
	for (size_t i = 0; i < mb->count; i++) {
		if (!deleted[i])
			continue;
		gone[ngone++] = mb->entries[i].msg.uid;
		if (maildir_unlink(mb, &mb->entries[i], &touched_new, &touched_cur) < 0 &&
		    r == 0) {
			*error_r = xasprintf("unlink %s: %s", mb->entries[i].msg.path,
					     strerror(errno));
			r = -1;
		}
	}
	/* The removals are durable only once the directories are synced. */
	const char *subs[2] = { touched_new ? "new" : NULL, touched_cur ? "cur" : NULL };
	for (size_t i = 0; i < 2; i++) {
		if (subs[i] == NULL)
			continue;
		char *path = xasprintf("%s/%s", mb->dir, subs[i]);
		if (fsync_dir(path) < 0 && r == 0) {
			*error_r = xasprintf("fsync %s: %s", path, strerror(errno));
			r = -1;
		}
		free(path);
	}
	maildir_forget(mb->dir, gone, ngone);
	free(gone);
	return r;
}

void
store_mailbox_close(struct store_mailbox **mbp)
{
	struct store_mailbox *mb = *mbp;
	if (mb == NULL)
		return;
	for (size_t i = 0; i < mb->count; i++) {
		free(mb->entries[i].msg.uid);
		free(mb->entries[i].msg.path);
		free(mb->entries[i].name);
	}
	free(mb->entries);
	/* Closing the only descriptor of the lock file releases the flock. */
	if (mb->lock_fd >= 0)
		close(mb->lock_fd);
	free(mb->dir);
	free(mb);
	*mbp = NULL;
}

/* ---- IMAP APPEND: a message given whole, in CRLF form ---- */

int
store_tmp_write(struct store *st, const char *dir, time_t when, const char *info,
		const char *data, size_t len, char **name_r, char **error_r)
{
	char *tmpdir = xasprintf("%s/tmp", dir);
	if (mkdir_p(tmpdir, 0700) < 0) {
		*error_r = xasprintf("mkdir %s: %s", tmpdir, strerror(errno));
		free(tmpdir);
		return -1;
	}
	char *unique = store_unique_name(st, when);
	char *path = xasprintf("%s/%s", tmpdir, unique);
	struct maildir_writer *w = xcalloc(1, sizeof(*w));
	int r = 0;
	w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		*error_r = xasprintf("open %s: %s", path, strerror(errno));
		r = -1;
	} else {
		if (maildir_writer_feed(w, data, len) < 0 || maildir_writer_finish(w) < 0) {
			*error_r = xasprintf("write %s: %s", path, strerror(errno));
			r = -1;
		}
		/* Durable before any name in cur/ points at it (index_append). */
		if (r == 0 && fsync(w->fd) < 0) {
			*error_r = xasprintf("fsync %s: %s", path, strerror(errno));
			r = -1;
		}
		if (close(w->fd) < 0 && r == 0) {
			*error_r = xasprintf("close %s: %s", path, strerror(errno));
			r = -1;
		}
	}
	char *name = xasprintf("%s,S=%lld,W=%lld%s%s", unique, (long long)w->size,
			       (long long)w->wsize, info != NULL ? ":2," : "",
			       info != NULL ? info : "");
	char *final = xasprintf("%s/%s", tmpdir, name);
	/* The sizes are known only now; the rename stays inside tmp/. */
	if (r == 0 && rename(path, final) < 0) {
		*error_r = xasprintf("rename %s: %s", path, strerror(errno));
		r = -1;
	}
	if (r < 0) {
		unlink(path);
		free(name);
	} else {
		*name_r = name;
	}
	free(final);
	free(w);
	free(path);
	free(unique);
	free(tmpdir);
	return r;
}
