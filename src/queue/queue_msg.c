/*
 * Queued messages: the envelope of the immutable queue file and the
 * per-recipient state beside it.
 *
 * State file, DATA_DIR/spool/queue/ID.state (text, rewritten whole):
 *
 *   tern-queue-state 1\n
 *   rcpt 0 deferred 2 1718002700 1718003600 1 mx.example.net 451 4.7.1 Later\n
 *   rcpt 1 delivered 1 1718000005 0 0 - 250 2.0.0 Ok\n
 *
 * One line per recipient: its index in the queue file, state, attempts,
 * last and next attempt (epoch seconds; 0 = never / now), the notices sent
 * (bit 1: delay, bit 2: failure), the remote MTA ("-" if none) and the last
 * reply (the rest of the line, may be empty).
 * A recipient without a line is pending.
 */
#include "queue/queue_msg.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/util.h"

/* Bounds for files we read back: damage must not make us allocate without end. */
#define QUEUE_LINE_MAX 8192
#define QUEUE_RCPTS_MAX 100000
#define QUEUE_REPLY_MAX 900 /* a DSN field line stays under 998 (RFC 5322 §2.1.1) */

static const char *const state_names[] = {
	[QUEUE_RCPT_PENDING] = "pending",
	[QUEUE_RCPT_DEFERRED] = "deferred",
	[QUEUE_RCPT_DELIVERED] = "delivered",
	[QUEUE_RCPT_FAILED] = "failed",
};

const char *
queue_rcpt_state_name(enum queue_rcpt_state state)
{
	return state_names[state];
}

static int
queue_state_parse(const char *s, enum queue_rcpt_state *state_r)
{
	for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++) {
		if (strcmp(s, state_names[i]) == 0) {
			*state_r = (enum queue_rcpt_state)i;
			return 0;
		}
	}
	return -1;
}

bool
queue_id_valid(const char *id)
{
	if (strlen(id) != 12)
		return false;
	for (const char *p = id; *p != '\0'; p++)
		if (strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZ", *p) == NULL)
			return false;
	return true;
}

static char *
queue_path(const char *data_dir, const char *id, const char *suffix)
{
	return xasprintf("%s/spool/queue/%s%s", data_dir, id, suffix);
}

/* The address between the first '<' and the last '>' of a line (spool.h). */
static char *
queue_angle_addr(const char *line)
{
	const char *lt = strchr(line, '<'), *gt = strrchr(line, '>');
	if (lt == NULL || gt == NULL || gt < lt)
		return NULL;
	return xstrndup(lt + 1, (size_t)(gt - lt - 1));
}

/* Reads one line without its LF; -1 at EOF, on a too long or unterminated line. */
static int
queue_getline(FILE *f, char **line, size_t *cap)
{
	ssize_t n = getline(line, cap, f);
	if (n <= 0 || n > QUEUE_LINE_MAX || (*line)[n - 1] != '\n')
		return -1;
	(*line)[n - 1] = '\0';
	return 0;
}

static int
queue_parse_envelope(struct queue_msg *msg, FILE *f)
{
	char *line = NULL;
	size_t cap = 0;
	int ret = -1;
	long long created;
	if (queue_getline(f, &line, &cap) < 0 || sscanf(line, "created %lld", &created) != 1)
		goto out;
	msg->arrival = (time_t)created;
	if (queue_getline(f, &line, &cap) < 0 || strncmp(line, "sender ", 7) != 0 ||
	    (msg->sender = queue_angle_addr(line)) == NULL)
		goto out;
	for (;;) {
		if (queue_getline(f, &line, &cap) < 0)
			goto out;
		if (line[0] == '\0')
			break;
		char *addr;
		if (strncmp(line, "rcpt ", 5) != 0 || msg->nrcpts >= QUEUE_RCPTS_MAX ||
		    (addr = queue_angle_addr(line)) == NULL)
			goto out;
		msg->rcpts = xrealloc(msg->rcpts, (msg->nrcpts + 1) * sizeof(*msg->rcpts));
		msg->rcpts[msg->nrcpts++] = (struct queue_rcpt){ .address = addr };
	}
	msg->msg_offset = (off_t)ftello(f);
	ret = msg->nrcpts > 0 ? 0 : -1;
out:
	free(line);
	return ret;
}

/* Counts Received: fields in the header section (loop detection, RFC 5321 §6.3). */
static void
queue_count_received(struct queue_msg *msg, FILE *f)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	/* Bounded: a message with more header lines than this is looping anyway. */
	for (int lines = 0; lines < 10000 && (n = getline(&line, &cap, f)) > 0; lines++) {
		if (strcmp(line, "\r\n") == 0 || strcmp(line, "\n") == 0)
			break;
		if (str_case_prefix(line, "Received:"))
			msg->received_count++;
	}
	free(line);
}

/* One state line; -1 if it is damaged. */
static int
queue_parse_state_line(struct queue_msg *msg, char *line)
{
	char state[16], remote[256];
	unsigned long idx;
	unsigned attempts, notified;
	long long last, next;
	int used = 0;
	if (sscanf(line, "rcpt %lu %15s %u %lld %lld %u %255s %n", &idx, state, &attempts,
		   &last, &next, &notified, remote, &used) != 7 ||
	    used == 0 || idx >= msg->nrcpts)
		return -1;
	struct queue_rcpt *r = &msg->rcpts[idx];
	if (queue_state_parse(state, &r->state) < 0)
		return -1;
	r->attempts = attempts;
	r->last_attempt = (time_t)last;
	r->next_attempt = (time_t)next;
	r->delay_notified = (notified & 1) != 0;
	r->failure_notified = (notified & 2) != 0;
	free(r->remote_mta);
	r->remote_mta = strcmp(remote, "-") == 0 ? NULL : xstrdup(remote);
	free(r->last_reply);
	r->last_reply = line[used] != '\0' ? xstrdup(line + used) : NULL;
	return 0;
}

static int
queue_load_state(struct queue_msg *msg, char **error_r)
{
	char *path = queue_path(msg->data_dir, msg->id, ".state");
	FILE *f = fopen(path, "re");
	int ret = 0;
	if (f == NULL) {
		/* No state yet: every recipient pending (spool_enqueue's contract). */
		if (errno != ENOENT) {
			*error_r = xasprintf("open %s: %s", path, strerror(errno));
			ret = -1;
		}
		free(path);
		return ret;
	}
	char *line = NULL;
	size_t cap = 0;
	if (queue_getline(f, &line, &cap) < 0 || strcmp(line, "tern-queue-state 1") != 0) {
		ret = -1;
	} else {
		size_t lines = 0;
		while (ret == 0 && queue_getline(f, &line, &cap) == 0)
			ret = ++lines > msg->nrcpts ? -1 : queue_parse_state_line(msg, line);
		if (ret == 0 && !feof(f))
			ret = -1;
	}
	if (ret < 0)
		*error_r = xasprintf("%s: damaged state file", path);
	free(line);
	fclose(f);
	free(path);
	return ret;
}

int
queue_msg_load(const char *data_dir, const char *id, struct queue_msg **msg_r,
	       char **error_r)
{
	if (!queue_id_valid(id)) {
		*error_r = xasprintf("%s: not a queue ID", id);
		errno = ENOENT;
		return -1;
	}
	char *path = queue_path(data_dir, id, "");
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		int err = errno;
		*error_r = xasprintf("%s: %s", err == ENOENT ? id : path, strerror(err));
		free(path);
		errno = err;
		return -1;
	}
	struct queue_msg *msg = xcalloc(1, sizeof(*msg));
	msg->data_dir = xstrdup(data_dir);
	memcpy(msg->id, id, sizeof(msg->id));
	struct stat st;
	int ret = -1;
	if (fstat(fileno(f), &st) < 0 || queue_parse_envelope(msg, f) < 0) {
		*error_r = xasprintf("%s: damaged queue file", path);
	} else {
		msg->msg_size = st.st_size - msg->msg_offset;
		queue_count_received(msg, f);
		ret = queue_load_state(msg, error_r);
	}
	fclose(f);
	free(path);
	if (ret < 0) {
		queue_msg_free(&msg);
		errno = EINVAL;
		return -1;
	}
	*msg_r = msg;
	return 0;
}

void
queue_msg_free(struct queue_msg **msg)
{
	if (*msg == NULL)
		return;
	for (size_t i = 0; i < (*msg)->nrcpts; i++) {
		free((*msg)->rcpts[i].address);
		free((*msg)->rcpts[i].last_reply);
		free((*msg)->rcpts[i].remote_mta);
	}
	free((*msg)->rcpts);
	free((*msg)->sender);
	free((*msg)->data_dir);
	free(*msg);
	*msg = NULL;
}

/* A copy fit for one line of the state file: no control characters, bounded. */
static char *
queue_clean_text(const char *s, bool no_blanks)
{
	size_t n = strnlen(s, QUEUE_REPLY_MAX);
	char *out = xstrndup(s, n);
	for (char *p = out; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f || (no_blanks && *p == ' '))
			*p = no_blanks ? '_' : ' ';
	return out;
}

void
queue_msg_mark(struct queue_msg *msg, size_t rcpt, enum queue_rcpt_state state,
	       const char *reply, const char *remote_mta, time_t next_attempt)
{
	struct queue_rcpt *r = &msg->rcpts[rcpt];
	if (state != QUEUE_RCPT_PENDING) {
		r->attempts++;
		r->last_attempt = time(NULL);
	}
	r->state = state;
	r->next_attempt = next_attempt;
	if (reply != NULL) {
		free(r->last_reply);
		r->last_reply = queue_clean_text(reply, false);
	}
	if (remote_mta != NULL) {
		free(r->remote_mta);
		r->remote_mta = remote_mta[0] != '\0' ? queue_clean_text(remote_mta, true) : NULL;
	}
}

bool
queue_msg_finished(const struct queue_msg *msg)
{
	for (size_t i = 0; i < msg->nrcpts; i++)
		if (msg->rcpts[i].state == QUEUE_RCPT_PENDING ||
		    msg->rcpts[i].state == QUEUE_RCPT_DEFERRED)
			return false;
	return true;
}

int
queue_msg_save(const struct queue_msg *msg, char **error_r)
{
	struct buf b = BUF_INIT;
	buf_appends(&b, "tern-queue-state 1\n");
	for (size_t i = 0; i < msg->nrcpts; i++) {
		const struct queue_rcpt *r = &msg->rcpts[i];
		buf_appendf(&b, "rcpt %zu %s %u %lld %lld %d %s %s\n", i, state_names[r->state],
			    r->attempts, (long long)r->last_attempt, (long long)r->next_attempt,
			    (r->delay_notified ? 1 : 0) | (r->failure_notified ? 2 : 0),
			    r->remote_mta != NULL ? r->remote_mta : "-",
			    r->last_reply != NULL ? r->last_reply : "");
	}
	char *dir = xasprintf("%s/spool/queue", msg->data_dir);
	char *path = queue_path(msg->data_dir, msg->id, ".state");
	char *tmp = queue_path(msg->data_dir, msg->id, ".state.tmp");
	int ret = -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		*error_r = xasprintf("open %s: %s", tmp, strerror(errno));
		goto out;
	}
	/* The new state must be on disk before its name replaces the old one:
	 * after a crash we find either the old state or the new, whole. */
	if (write_all(fd, b.data, b.len) < 0 || fsync(fd) < 0) {
		*error_r = xasprintf("write %s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		goto out;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		*error_r = xasprintf("rename %s: %s", path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	/* Only the directory fsync makes the rename itself durable. */
	if (fsync_dir(dir) < 0) {
		*error_r = xasprintf("fsync %s: %s", dir, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	buf_free(&b);
	free(dir);
	free(path);
	free(tmp);
	return ret;
}

int
queue_msg_remove(const char *data_dir, const char *id, char **error_r)
{
	if (!queue_id_valid(id)) {
		*error_r = xasprintf("%s: not a queue ID", id);
		return -1;
	}
	char *state = queue_path(data_dir, id, ".state");
	char *file = queue_path(data_dir, id, "");
	char *dir = xasprintf("%s/spool/queue", data_dir);
	int ret = -1;
	if (unlink(state) < 0 && errno != ENOENT)
		*error_r = xasprintf("unlink %s: %s", state, strerror(errno));
	else if (unlink(file) < 0)
		*error_r = errno == ENOENT ? xasprintf("%s: no such message", id)
					   : xasprintf("unlink %s: %s", file, strerror(errno));
	else if (fsync_dir(dir) < 0)
		*error_r = xasprintf("fsync %s: %s", dir, strerror(errno));
	else
		ret = 0;
	free(state);
	free(file);
	free(dir);
	return ret;
}

int
queue_msg_open(const struct queue_msg *msg, char **error_r)
{
	char *path = queue_path(msg->data_dir, msg->id, "");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		*error_r = xasprintf("open %s: %s", path, strerror(errno));
	free(path);
	return fd;
}

int
queue_msg_read_headers(const struct queue_msg *msg, size_t max, struct buf *out,
		       char **error_r)
{
	int fd = queue_msg_open(msg, error_r);
	if (fd < 0)
		return -1;
	char chunk[8192];
	off_t pos = msg->msg_offset;
	size_t start = out->len;
	int ret = 0;
	while (out->len - start < max) {
		ssize_t n = pread(fd, chunk, sizeof(chunk), pos);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = xasprintf("read %s: %s", msg->id, strerror(errno));
			ret = -1;
			break;
		}
		if (n == 0)
			break;
		buf_append(out, chunk, (size_t)n);
		pos += n;
		/* The header section ends at the first empty line (RFC 5322 §2.1). */
		char *hdr = out->data + start;
		if (strncmp(hdr, "\r\n", 2) == 0) {
			out->len = start;
			break;
		}
		char *end = strstr(hdr, "\r\n\r\n");
		if (end != NULL) {
			out->len = (size_t)(end - out->data) + 2;
			break;
		}
	}
	if (out->len - start > max)
		out->len = start + max;
	if (out->data != NULL)
		out->data[out->len] = '\0';
	close(fd);
	return ret;
}

static int
queue_id_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
queue_list_ids(const char *data_dir, char ***ids_r, size_t *count_r, char **error_r)
{
	char *dir = xasprintf("%s/spool/queue", data_dir);
	DIR *d = opendir(dir);
	*ids_r = NULL;
	*count_r = 0;
	if (d == NULL) {
		int err = errno;
		free(dir);
		if (err == ENOENT)
			return 0; /* nothing was ever queued */
		*error_r = xasprintf("opendir %s/spool/queue: %s", data_dir, strerror(err));
		return -1;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!queue_id_valid(de->d_name))
			continue; /* ".", "..", ID.state, ID.state.tmp */
		*ids_r = xrealloc(*ids_r, (*count_r + 1) * sizeof(**ids_r));
		(*ids_r)[(*count_r)++] = xstrdup(de->d_name);
	}
	closedir(d);
	free(dir);
	/* IDs begin with the time: sorted, they are in order of arrival. */
	if (*count_r > 0)
		qsort(*ids_r, *count_r, sizeof(**ids_r), queue_id_cmp);
	return 0;
}

void
queue_ids_free(char **ids, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(ids[i]);
	free(ids);
}

int
queue_msg_lock(const char *data_dir, const char *id, char **error_r)
{
	if (!queue_id_valid(id)) {
		*error_r = xasprintf("%s: not a queue ID", id);
		errno = ENOENT;
		return -1;
	}
	char *path = queue_path(data_dir, id, "");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		int err = errno;
		*error_r = err == ENOENT ? xasprintf("%s: no such message", id)
					 : xasprintf("lock %s: %s", path, strerror(err));
		if (fd >= 0)
			close(fd);
		free(path);
		errno = err;
		return -1;
	}
	free(path);
	return fd;
}
