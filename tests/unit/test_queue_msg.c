#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/util.h"
#include "queue/queue_msg.h"
#include "queue/spool.h"
#include "test.h"

static const char body[] = "Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
			   "received: from c by d; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
			   "Subject: hi\r\n"
			   "\r\n"
			   "Received: in the body does not count\r\n";

/* Spools body for two recipients into a new data dir; returns the ID. */
static void
spool_one(const char *dir, char id[13])
{
	char *path = xasprintf("%s/body", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	TEST_ASSERT(fd >= 0 && write_all(fd, body, strlen(body)) == 0);
	char *rcpts[] = { "bob@example.net", "\"c d\"@example.com" };
	char *error = NULL;
	TEST_ASSERT(spool_enqueue(dir, "alice@example.org", rcpts, 2, fd,
				  (off_t)strlen(body), id, &error) == 0);
	close(fd);
	unlink(path);
	free(path);
}

static char *
make_dir(void)
{
	char *dir = xstrdup("/tmp/tern-test-queue-XXXXXX");
	TEST_ASSERT(mkdtemp(dir) != NULL);
	return dir;
}

static void
remove_dir(char *dir)
{
	char *cmd = xasprintf("rm -rf '%s'", dir);
	TEST_ASSERT(system(cmd) == 0);
	free(cmd);
	free(dir);
}

static void
test_load_fresh(void)
{
	char *dir = make_dir(), id[13];
	spool_one(dir, id);
	struct queue_msg *msg = NULL;
	char *error = NULL;
	TEST_ASSERT(queue_msg_load(dir, id, &msg, &error) == 0);
	TEST_ASSERT(msg != NULL);
	if (msg != NULL) {
		TEST_ASSERT_STREQ(msg->id, id);
		TEST_ASSERT_STREQ(msg->sender, "alice@example.org");
		TEST_ASSERT(msg->nrcpts == 2);
		TEST_ASSERT_STREQ(msg->rcpts[1].address, "\"c d\"@example.com");
		TEST_ASSERT(msg->rcpts[0].state == QUEUE_RCPT_PENDING);
		TEST_ASSERT(msg->rcpts[1].state == QUEUE_RCPT_PENDING);
		TEST_ASSERT(msg->rcpts[0].attempts == 0 && msg->rcpts[0].next_attempt == 0);
		TEST_ASSERT(msg->msg_size == (off_t)strlen(body));
		TEST_ASSERT(msg->received_count == 2);
		TEST_ASSERT(msg->arrival > 0);
		/* The message starts at msg_offset, byte for byte. */
		int fd = queue_msg_open(msg, &error);
		char got[sizeof(body)] = { 0 };
		TEST_ASSERT(pread(fd, got, strlen(body), msg->msg_offset) == (ssize_t)strlen(body));
		TEST_ASSERT_STREQ(got, body);
		close(fd);
		struct buf h = BUF_INIT;
		TEST_ASSERT(queue_msg_read_headers(msg, 1 << 16, &h, &error) == 0);
		TEST_ASSERT(h.len == strlen(body) - strlen("\r\nReceived: in the body does not count\r\n"));
		TEST_ASSERT(h.data != NULL && strncmp(h.data, body, h.len) == 0);
		buf_free(&h);
		TEST_ASSERT(!queue_msg_finished(msg));
	}
	queue_msg_free(&msg);
	TEST_ASSERT(msg == NULL);
	remove_dir(dir);
}

static void
test_save_reload(void)
{
	char *dir = make_dir(), id[13];
	spool_one(dir, id);
	struct queue_msg *msg = NULL;
	char *error = NULL;
	TEST_ASSERT(queue_msg_load(dir, id, &msg, &error) == 0);
	queue_msg_mark(msg, 0, QUEUE_RCPT_DEFERRED, "451 4.7.1 Try\r\nlater", "mx.example.net",
		       1900000000);
	msg->rcpts[0].delay_notified = true;
	queue_msg_mark(msg, 1, QUEUE_RCPT_DELIVERED, "250 2.0.0 Ok", NULL, 0);
	TEST_ASSERT(queue_msg_save(msg, &error) == 0);
	queue_msg_free(&msg);

	/* The queue file did not change; the state is beside it. */
	char *qpath = xasprintf("%s/spool/queue/%s", dir, id);
	size_t len;
	char *text = read_file(qpath, 1 << 20, &len);
	TEST_ASSERT(text != NULL && strstr(text, "rcpt <bob@example.net> pending\n") != NULL);
	free(text);
	free(qpath);
	char *tmp = xasprintf("%s/spool/queue/%s.state.tmp", dir, id);
	TEST_ASSERT(access(tmp, F_OK) < 0);
	free(tmp);

	TEST_ASSERT(queue_msg_load(dir, id, &msg, &error) == 0);
	if (msg != NULL) {
		struct queue_rcpt *r = &msg->rcpts[0];
		TEST_ASSERT(r->state == QUEUE_RCPT_DEFERRED);
		TEST_ASSERT(r->attempts == 1 && r->last_attempt > 0);
		TEST_ASSERT(r->next_attempt == 1900000000);
		TEST_ASSERT(r->delay_notified && !r->failure_notified);
		TEST_ASSERT_STREQ(r->last_reply, "451 4.7.1 Try  later");
		TEST_ASSERT_STREQ(r->remote_mta, "mx.example.net");
		r = &msg->rcpts[1];
		TEST_ASSERT(r->state == QUEUE_RCPT_DELIVERED);
		TEST_ASSERT(r->remote_mta == NULL);
		TEST_ASSERT_STREQ(r->last_reply, "250 2.0.0 Ok");
		TEST_ASSERT(!queue_msg_finished(msg));
		queue_msg_mark(msg, 0, QUEUE_RCPT_FAILED, NULL, NULL, 0);
		TEST_ASSERT(queue_msg_finished(msg));
		TEST_ASSERT_STREQ(msg->rcpts[0].last_reply, "451 4.7.1 Try  later");
		TEST_ASSERT(msg->rcpts[0].attempts == 2);
	}
	queue_msg_free(&msg);

	/* Listing ignores the state file; removing takes both. */
	char **ids;
	size_t n;
	TEST_ASSERT(queue_list_ids(dir, &ids, &n, &error) == 0);
	TEST_ASSERT(n == 1 && strcmp(ids[0], id) == 0);
	queue_ids_free(ids, n);
	int lock = queue_msg_lock(dir, id, &error);
	TEST_ASSERT(lock >= 0);
	close(lock);
	TEST_ASSERT(queue_msg_remove(dir, id, &error) == 0);
	TEST_ASSERT(queue_list_ids(dir, &ids, &n, &error) == 0 && n == 0);
	queue_ids_free(ids, n);
	char *spath = xasprintf("%s/spool/queue/%s.state", dir, id);
	TEST_ASSERT(access(spath, F_OK) < 0);
	free(spath);
	TEST_ASSERT(queue_msg_load(dir, id, &msg, &error) < 0 && errno == ENOENT);
	free(error);
	error = NULL;
	TEST_ASSERT(queue_msg_remove(dir, id, &error) < 0);
	free(error);
	remove_dir(dir);
}

static void
test_bad_input(void)
{
	char *dir = make_dir(), id[13];
	char *error = NULL;
	struct queue_msg *msg = NULL;
	/* IDs that could leave queue/ are refused before any file is touched. */
	TEST_ASSERT(!queue_id_valid("../../etc/pw"));
	TEST_ASSERT(!queue_id_valid("0123456789AB.state"));
	TEST_ASSERT(queue_id_valid("0123456789AB"));
	TEST_ASSERT(queue_msg_load(dir, "../x", &msg, &error) < 0);
	free(error);
	error = NULL;
	/* No queue directory yet: an empty list. */
	char **ids;
	size_t n;
	TEST_ASSERT(queue_list_ids(dir, &ids, &n, &error) == 0 && n == 0);
	/* A damaged state file is an error, not all-pending. */
	spool_one(dir, id);
	char *spath = xasprintf("%s/spool/queue/%s.state", dir, id);
	int fd = open(spath, O_WRONLY | O_CREAT, 0600);
	TEST_ASSERT(write_all(fd, "tern-queue-state 1\nrcpt 7 pending 0 0 0 0 - \n", 45) == 0);
	close(fd);
	TEST_ASSERT(queue_msg_load(dir, id, &msg, &error) < 0);
	TEST_ASSERT(error != NULL && strstr(error, "damaged state") != NULL);
	free(error);
	free(spath);
	remove_dir(dir);
}

int
main(void)
{
	test_run("load_fresh", test_load_fresh);
	test_run("save_reload", test_save_reload);
	test_run("bad_input", test_bad_input);
	return test_done();
}
