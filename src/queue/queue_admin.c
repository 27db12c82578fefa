/* tern queue: list, show, delete and flush queued messages (mailq). */
#include "queue/queue_admin.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/util.h"
#include "queue/dsn.h"
#include "queue/queue_msg.h"

/* How much of a message's header section `show` and DSNs include. */
#define QUEUE_ADMIN_HEADERS_MAX (256 * 1024)

static void
admin_time(time_t t, char out[32])
{
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%d %H:%M:%S", &tm);
}

static int
admin_load(const struct config *cfg, const char *id, struct queue_msg **msg_r)
{
	char *error = NULL;
	if (queue_msg_load(cfg->data_dir, id, msg_r, &error) == 0)
		return 0;
	fprintf(stderr, "tern: %s\n", error);
	free(error);
	return -1;
}

static void
admin_print_rcpt(const struct queue_rcpt *r, bool verbose)
{
	char when[32];
	printf("    <%s> %s", r->address, queue_rcpt_state_name(r->state));
	if (r->attempts > 0)
		printf(" attempts=%u", r->attempts);
	if (r->state == QUEUE_RCPT_DEFERRED && r->next_attempt != 0) {
		admin_time(r->next_attempt, when);
		printf(" next=\"%s\"", when);
	}
	if (verbose && r->last_attempt != 0) {
		admin_time(r->last_attempt, when);
		printf(" last=\"%s\"", when);
	}
	if (verbose && r->remote_mta != NULL)
		printf(" remote=%s", r->remote_mta);
	if (verbose && (r->delay_notified || r->failure_notified))
		printf(" notified=%s%s%s", r->delay_notified ? "delay" : "",
		       r->delay_notified && r->failure_notified ? "," : "",
		       r->failure_notified ? "failure" : "");
	putchar('\n');
	if (r->last_reply != NULL)
		printf("        %s\n", r->last_reply);
}

static int
admin_list(const struct config *cfg)
{
	char **ids;
	size_t n;
	char *error = NULL;
	if (queue_list_ids(cfg->data_dir, &ids, &n, &error) < 0) {
		fprintf(stderr, "tern: %s\n", error);
		free(error);
		return 1;
	}
	size_t shown = 0;
	long long bytes = 0;
	for (size_t i = 0; i < n; i++) {
		struct queue_msg *msg = NULL;
		if (queue_msg_load(cfg->data_dir, ids[i], &msg, &error) < 0) {
			/* Delivered and removed while we listed: not an error. */
			if (errno != ENOENT)
				fprintf(stderr, "tern: %s\n", error);
			free(error);
			error = NULL;
			continue;
		}
		char when[32];
		admin_time(msg->arrival, when);
		if (shown++ == 0)
			printf("%-12s %10s  %-19s  %s\n", "QUEUE-ID", "SIZE", "ARRIVAL",
			       "SENDER/RECIPIENTS");
		printf("%-12s %10lld  %s  <%s>\n", msg->id, (long long)msg->msg_size, when,
		       msg->sender);
		for (size_t k = 0; k < msg->nrcpts; k++)
			admin_print_rcpt(&msg->rcpts[k], false);
		bytes += msg->msg_size;
		queue_msg_free(&msg);
	}
	queue_ids_free(ids, n);
	if (shown == 0)
		printf("the queue is empty\n");
	else
		printf("%zu message%s, %lld bytes\n", shown, shown == 1 ? "" : "s", bytes);
	return 0;
}

static int
admin_show(const struct config *cfg, const char *id)
{
	struct queue_msg *msg = NULL;
	if (admin_load(cfg, id, &msg) < 0)
		return 1;
	char when[32];
	admin_time(msg->arrival, when);
	printf("id: %s\narrival: %s\nsender: <%s>\nsize: %lld\nreceived-count: %u\n",
	       msg->id, when, msg->sender, (long long)msg->msg_size, msg->received_count);
	printf("recipients:\n");
	for (size_t k = 0; k < msg->nrcpts; k++)
		admin_print_rcpt(&msg->rcpts[k], true);
	struct buf h = BUF_INIT;
	char *error = NULL;
	int ret = 0;
	if (queue_msg_read_headers(msg, QUEUE_ADMIN_HEADERS_MAX, &h, &error) < 0) {
		fprintf(stderr, "tern: %s\n", error);
		free(error);
		ret = 1;
	} else {
		/* Shown with the terminal's line ends. */
		printf("headers:\n");
		for (size_t i = 0; i < h.len; i++)
			if (h.data[i] != '\r' || i + 1 >= h.len || h.data[i + 1] != '\n')
				putchar(h.data[i]);
	}
	buf_free(&h);
	queue_msg_free(&msg);
	return ret;
}

static int
admin_del(const struct config *cfg, const char *id)
{
	char *error = NULL;
	/* Under the lock, so the runner is not half-way through this message. */
	int lock = queue_msg_lock(cfg->data_dir, id, &error);
	if (lock < 0 || queue_msg_remove(cfg->data_dir, id, &error) < 0) {
		fprintf(stderr, "tern: %s\n", error);
		free(error);
		if (lock >= 0)
			close(lock);
		return 1;
	}
	close(lock);
	printf("%s: deleted\n", id);
	return 0;
}

/*
 * Makes every unfinished recipient of one message due now. A message that
 * is gone (delivered meanwhile) is reported only when asked for by ID.
 */
static int
admin_flush_one(const struct config *cfg, const char *id, bool quiet_if_gone)
{
	char *error = NULL;
	struct queue_msg *msg = NULL;
	int lock = queue_msg_lock(cfg->data_dir, id, &error);
	int ret = -1;
	if (lock >= 0 && queue_msg_load(cfg->data_dir, id, &msg, &error) == 0) {
		for (size_t k = 0; k < msg->nrcpts; k++)
			if (msg->rcpts[k].state == QUEUE_RCPT_DEFERRED)
				msg->rcpts[k].next_attempt = 0;
		ret = queue_msg_save(msg, &error);
	}
	if (ret < 0) {
		int err = errno;
		if (!(quiet_if_gone && err == ENOENT))
			fprintf(stderr, "tern: %s\n", error);
		free(error);
		errno = err;
	}
	queue_msg_free(&msg);
	if (lock >= 0)
		close(lock);
	return ret;
}

/* Wakes a running ternd through DATA_DIR/ternd.pid. */
static void
admin_kick_ternd(const struct config *cfg)
{
	char *path = xasprintf("%s/ternd.pid", cfg->data_dir);
	char *text = read_file(path, 64, NULL);
	long pid = text != NULL ? atol(text) : 0;
	if (text == NULL)
		printf("ternd is not running (no %s): due at its next start\n", path);
	else if (pid <= 1 || kill((pid_t)pid, SIGUSR1) < 0)
		printf("ternd (pid %ld in %s) could not be told: %s\n", pid, path,
		       pid <= 1 ? "bad pid" : strerror(errno));
	else
		printf("ternd (pid %ld) told to run the queue\n", pid);
	free(text);
	free(path);
}

static int
admin_flush(const struct config *cfg, const char *id)
{
	int failed = 0;
	size_t done = 0;
	if (id != NULL) {
		failed = admin_flush_one(cfg, id, false) < 0;
		done = !failed;
	} else {
		char **ids;
		size_t n;
		char *error = NULL;
		if (queue_list_ids(cfg->data_dir, &ids, &n, &error) < 0) {
			fprintf(stderr, "tern: %s\n", error);
			free(error);
			return 1;
		}
		for (size_t i = 0; i < n; i++) {
			if (admin_flush_one(cfg, ids[i], true) == 0)
				done++;
			else if (errno != ENOENT)
				failed = 1;
		}
		queue_ids_free(ids, n);
	}
	printf("%zu message%s due now\n", done, done == 1 ? "" : "s");
	admin_kick_ternd(cfg);
	return failed;
}

static int
admin_dsn(const struct config *cfg, const char *id, const char *kind_name)
{
	enum dsn_kind kind;
	if (strcmp(kind_name, "failure") == 0)
		kind = DSN_FAILURE;
	else if (strcmp(kind_name, "delay") == 0)
		kind = DSN_DELAY;
	else
		return 2;
	struct queue_msg *msg = NULL;
	if (admin_load(cfg, id, &msg) < 0)
		return 1;
	struct buf h = BUF_INIT, out = BUF_INIT;
	char *error = NULL;
	int ret = 1;
	if (queue_msg_read_headers(msg, QUEUE_ADMIN_HEADERS_MAX, &h, &error) < 0) {
		fprintf(stderr, "tern: %s\n", error);
		free(error);
	} else {
		time_t now = time(NULL);
		struct dsn_opts opts = { cfg->hostname, now, msg->arrival + 5 * 86400, NULL };
		enum dsn_result r = dsn_build(msg, kind, &opts, h.data ? h.data : "", &out);
		if (r == DSN_BUILT) {
			fwrite(out.data, 1, out.len, stdout);
			ret = 0;
		} else {
			fprintf(stderr, "tern: %s: %s\n", id,
				r == DSN_NONE ? "no recipient to report" : "null sender");
		}
	}
	buf_free(&h);
	buf_free(&out);
	queue_msg_free(&msg);
	return ret;
}

int
queue_admin_main(const struct config *cfg, int argc, char **argv)
{
	if (argc == 1 && strcmp(argv[0], "list") == 0)
		return admin_list(cfg);
	if (argc == 2 && strcmp(argv[0], "show") == 0)
		return admin_show(cfg, argv[1]);
	if (argc == 2 && strcmp(argv[0], "del") == 0)
		return admin_del(cfg, argv[1]);
	if ((argc == 1 || argc == 2) && strcmp(argv[0], "flush") == 0)
		return admin_flush(cfg, argc == 2 ? argv[1] : NULL);
	if (argc == 3 && strcmp(argv[0], "dsn") == 0)
		return admin_dsn(cfg, argv[1], argv[2]);
	return 2;
}
