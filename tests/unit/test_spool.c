#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "queue/spool.h"
#include "test.h"

static void
test_enqueue(void)
{
	char dir[] = "/tmp/tern-test-spool-XXXXXX";
	TEST_ASSERT(mkdtemp(dir) != NULL);
	char body_path[128];
	snprintf(body_path, sizeof(body_path), "%s/body", dir);
	int body = open(body_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	TEST_ASSERT(body >= 0);
	const char msg[] = "Subject: hi\r\n\r\nhello\r\n";
	TEST_ASSERT(write_all(body, msg, strlen(msg)) == 0);
	/* The file position is at the end: the spool must read from 0. */
	char *rcpts[] = { "bob@example.net", "\"c d\"@example.com" };
	char id[13];
	char *error = NULL;
	TEST_ASSERT(spool_enqueue(dir, "alice@example.org", rcpts, 2, body,
				  (off_t)strlen(msg), id, &error) == 0);
	TEST_ASSERT(error == NULL);
	TEST_ASSERT(strlen(id) == 12);

	char *path = xasprintf("%s/spool/queue/%s", dir, id);
	size_t len;
	char *text = read_file(path, 1 << 20, &len);
	TEST_ASSERT(text != NULL);
	if (text != NULL) {
		TEST_ASSERT(strncmp(text, "created ", 8) == 0);
		const char *env = strchr(text, '\n');
		TEST_ASSERT(env != NULL);
		if (env != NULL)
			TEST_ASSERT_STREQ(env + 1, "sender <alice@example.org>\n"
						   "rcpt <bob@example.net> pending\n"
						   "rcpt <\"c d\"@example.com> pending\n"
						   "\n"
						   "Subject: hi\r\n\r\nhello\r\n");
	}
	free(text);
	/* Nothing is left behind in tmp/. */
	char *tmp = xasprintf("%s/spool/tmp/%s", dir, id);
	TEST_ASSERT(access(tmp, F_OK) < 0);
	unlink(path);
	free(path);
	free(tmp);

	/* The null sender. */
	TEST_ASSERT(spool_enqueue(dir, "", rcpts, 1, body, 0, id, &error) == 0);
	path = xasprintf("%s/spool/queue/%s", dir, id);
	text = read_file(path, 1 << 20, &len);
	TEST_ASSERT(text != NULL && strstr(text, "\nsender <>\nrcpt <bob@example.net> pending\n\n") != NULL);
	TEST_ASSERT(text != NULL && text[len - 1] == '\n' && text[len - 2] == '\n');
	free(text);
	unlink(path);
	free(path);
	close(body);
	unlink(body_path);
	char *cmd = xasprintf("rm -rf '%s'", dir);
	TEST_ASSERT(system(cmd) == 0);
	free(cmd);
}

static void
test_enqueue_error(void)
{
	char *rcpts[] = { "bob@example.net" };
	char id[13];
	char *error = NULL;
	/* A data directory that cannot be created. */
	TEST_ASSERT(spool_enqueue("/proc/nonexistent", "a@b", rcpts, 1, -1, 0, id, &error) < 0);
	TEST_ASSERT(error != NULL);
	free(error);
}

int
main(void)
{
	test_run("enqueue", test_enqueue);
	test_run("enqueue_error", test_enqueue_error);
	return test_done();
}
