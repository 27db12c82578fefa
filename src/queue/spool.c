#include "queue/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/util.h"

/* Creates DIR/spool/tmp/ID with a fresh ID that nobody else holds. */
static int
spool_create_tmp(const char *tmp_dir, char id_r[13], char **path_r, char **error_r)
{
	for (int tries = 0; tries < 10; tries++) {
		make_id(id_r);
		char *path = xasprintf("%s/%s", tmp_dir, id_r);
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0) {
			*path_r = path;
			return fd;
		}
		int err = errno;
		free(path);
		if (err != EEXIST) {
			*error_r = xasprintf("open %s/%s: %s", tmp_dir, id_r, strerror(err));
			return -1;
		}
	}
	*error_r = xasprintf("%s: no free queue ID", tmp_dir);
	return -1;
}

static int
spool_write_envelope(int fd, const char *sender, char *const *rcpts, size_t nrcpts)
{
	struct buf env = BUF_INIT;
	buf_appendf(&env, "created %lld\nsender <%s>\n", (long long)time(NULL), sender);
	for (size_t i = 0; i < nrcpts; i++)
		buf_appendf(&env, "rcpt <%s> pending\n", rcpts[i]);
	buf_appendc(&env, '\n');
	int ret = write_all(fd, env.data, env.len);
	buf_free(&env);
	return ret;
}

/* Copies len bytes of in (from offset 0, whatever its file position) to out. */
static int
spool_copy_body(int out, int in, off_t len)
{
	char chunk[65536];
	off_t pos = 0;
	while (pos < len) {
		size_t want = (size_t)(len - pos) < sizeof(chunk) ? (size_t)(len - pos) : sizeof(chunk);
		ssize_t n = pread(in, chunk, want, pos);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO; /* the body is shorter than promised */
			return -1;
		}
		if (write_all(out, chunk, (size_t)n) < 0)
			return -1;
		pos += n;
	}
	return 0;
}

int
spool_enqueue(const char *data_dir, const char *sender, char *const *rcpts,
	      size_t nrcpts, int body_fd, off_t body_len, char id_r[13], char **error_r)
{
	char *tmp_dir = xasprintf("%s/spool/tmp", data_dir);
	char *queue_dir = xasprintf("%s/spool/queue", data_dir);
	char *tmp_path = NULL, *queue_path = NULL;
	int ret = -1;
	if (mkdir_p(tmp_dir, 0700) < 0 || mkdir_p(queue_dir, 0700) < 0) {
		*error_r = xasprintf("mkdir %s/spool: %s", data_dir, strerror(errno));
		goto out;
	}
	int fd = spool_create_tmp(tmp_dir, id_r, &tmp_path, error_r);
	if (fd < 0)
		goto out;
	/* The file must be complete on disk before its name appears in queue/:
	 * the runner trusts every file there, and the client hears 250 next. */
	if (spool_write_envelope(fd, sender, rcpts, nrcpts) < 0 ||
	    spool_copy_body(fd, body_fd, body_len) < 0 || fsync(fd) < 0) {
		*error_r = xasprintf("write %s: %s", tmp_path, strerror(errno));
		close(fd);
		unlink(tmp_path);
		goto out;
	}
	if (close(fd) < 0) {
		*error_r = xasprintf("close %s: %s", tmp_path, strerror(errno));
		unlink(tmp_path);
		goto out;
	}
	/* link() rather than rename(): it fails instead of replacing a queue
	 * file that happens to have the same ID (IDs are random, not unique). */
	queue_path = xasprintf("%s/%s", queue_dir, id_r);
	if (link(tmp_path, queue_path) < 0) {
		*error_r = xasprintf("link %s: %s", queue_path, strerror(errno));
		unlink(tmp_path);
		goto out;
	}
	unlink(tmp_path);
	/* The new directory entry is what makes the message durable. */
	if (fsync_dir(queue_dir) < 0) {
		*error_r = xasprintf("fsync %s: %s", queue_dir, strerror(errno));
		unlink(queue_path);
		goto out;
	}
	ret = 0;
out:
	free(tmp_path);
	free(queue_path);
	free(tmp_dir);
	free(queue_dir);
	return ret;
}
