/* Tests of the Maildir store: delivery, listing, locking, expunge. */
#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/dotstuff.h"
#include "core/util.h"
#include "store/store.h"
#include "test.h"

static char root[64];

/* A temp file holding data, for store_deliver's body_fd. */
static int
body_file(const char *data, size_t len)
{
	char path[] = "/tmp/tern-test-body-XXXXXX";
	int fd = mkstemp(path);
	unlink(path);
	if (fd >= 0 && write_all(fd, data, len) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The single file name in DIR, or NULL. */
static char *
only_file(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return NULL;
	char *name = NULL;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		n++;
		free(name);
		name = xstrdup(de->d_name);
	}
	closedir(d);
	if (n != 1) {
		free(name);
		return NULL;
	}
	return name;
}

static void
rm_rf(const char *path)
{
	char *cmd = xasprintf("rm -rf '%s'", path);
	(void)!system(cmd);
	free(cmd);
}

static int
deliver_str(struct store *st, const char *addr, const char *prefix,
	    const char *body, size_t len, char **error_r)
{
	int fd = body_file(body, len);
	int r = store_deliver(st, addr, prefix, strlen(prefix), fd, (off_t)len, error_r);
	close(fd);
	return r;
}

static void
test_deliver_and_list(void)
{
	struct store *st = store_open(root);
	char *error = NULL;
	/* CRLF, a bare CR, and a CRLF split at the 64 KiB chunk boundary. */
	size_t len = 70000;
	char *body = xmalloc(len);
	memset(body, 'x', len);
	memcpy(body, "Subject: t\r\n\r\na\rb\r\n", 19);
	body[65535] = '\r';
	body[65536] = '\n';
	body[len - 2] = '\r';
	body[len - 1] = '\n';
	int r = deliver_str(st, "alice@example.org", "X-Tern: 1\r\n", body, len, &error);
	TEST_ASSERT(r == 0);
	/* LF form: prefix 10 + body minus 5 CRs (the bare one stays). */
	size_t lf_size = 10 + len - 5;
	size_t crlf_size = 11 + len; /* the CRLF form is what was sent */

	char *newdir = xasprintf("%s/example.org/alice/new", root);
	char *name = only_file(newdir);
	TEST_ASSERT(name != NULL);
	if (name != NULL) {
		char *want = xasprintf(",S=%zu,W=%zu", lf_size, crlf_size);
		TEST_ASSERT(strstr(name, want) != NULL);
		free(want);
		char *path = xasprintf("%s/%s", newdir, name);
		size_t flen;
		char *data = read_file(path, 1 << 20, &flen);
		TEST_ASSERT(data != NULL && flen == lf_size);
		if (data != NULL && flen == lf_size) {
			TEST_ASSERT(memcmp(data, "X-Tern: 1\nSubject: t\n\na\rb\n", 26) == 0);
			TEST_ASSERT(data[10 + 65535 - 3] == '\n');
			TEST_ASSERT(data[10 + 65535 - 2] == 'x');
			TEST_ASSERT(memchr(data + 26, '\r', flen - 26) == NULL);
			TEST_ASSERT(data[flen - 1] == '\n');
		}
		free(data);
		free(path);
	}

	bool in_use = true;
	struct store_mailbox *mb = store_inbox_open(st, "alice@example.org", &in_use, &error);
	TEST_ASSERT(mb != NULL && !in_use);
	TEST_ASSERT(mb != NULL && store_mailbox_count(mb) == 1);
	if (mb != NULL && store_mailbox_count(mb) == 1) {
		const struct store_msg *m = store_mailbox_msg(mb, 0);
		TEST_ASSERT(m->size == crlf_size);
		TEST_ASSERT(name != NULL && strncmp(m->uid, name, strlen(m->uid)) == 0);
		int fd = store_msg_open(mb, 0);
		TEST_ASSERT(fd >= 0);
		if (fd >= 0)
			close(fd);
	}

	/* A second session is refused while the first holds the lock. */
	char *error2 = NULL;
	struct store_mailbox *mb2 = store_inbox_open(st, "alice@example.org", &in_use, &error2);
	TEST_ASSERT(mb2 == NULL && in_use);
	free(error2);

	/* Renamed into cur/ with flags and a ",U=" as the IMAP index does:
	 * still found by uid, then expunged. */
	if (mb != NULL && name != NULL) {
		char *from = xasprintf("%s/%s", newdir, name);
		char *to = xasprintf("%s/example.org/alice/cur/%s,U=7:2,S", root, name);
		TEST_ASSERT(rename(from, to) == 0);
		int fd = store_msg_open(mb, 0);
		TEST_ASSERT(fd >= 0);
		if (fd >= 0)
			close(fd);
		bool del[1] = { true };
		TEST_ASSERT(store_mailbox_expunge(mb, del, &error) == 0);
		struct stat sb;
		TEST_ASSERT(stat(to, &sb) < 0);
		free(from);
		free(to);
	}
	store_mailbox_close(&mb);
	TEST_ASSERT(mb == NULL);

	/* The UIDL is the unique part only, whatever fields follow it. */
	if (name != NULL) {
		char *uidl = xstrndup(name, strcspn(name, ","));
		struct stat sb;
		char *again = xasprintf("%s/example.org/alice/cur/%s,U=9:2,", root, uidl);
		int fd = open(again, O_CREAT | O_WRONLY, 0600);
		TEST_ASSERT(fd >= 0 && write(fd, "x\n", 2) == 2);
		if (fd >= 0)
			close(fd);
		mb = store_inbox_open(st, "alice@example.org", &in_use, &error);
		TEST_ASSERT(mb != NULL && store_mailbox_count(mb) == 1);
		if (mb != NULL && store_mailbox_count(mb) == 1)
			TEST_ASSERT_STREQ(store_mailbox_msg(mb, 0)->uid, uidl);
		bool del[1] = { true };
		TEST_ASSERT(mb != NULL && store_mailbox_expunge(mb, del, &error) == 0);
		TEST_ASSERT(stat(again, &sb) < 0);
		store_mailbox_close(&mb);
		free(again);
		free(uidl);
	}

	/* Lock released: open again, now empty. */
	mb = store_inbox_open(st, "alice@example.org", &in_use, &error);
	TEST_ASSERT(mb != NULL && store_mailbox_count(mb) == 0);
	store_mailbox_close(&mb);

	free(name);
	free(newdir);
	free(body);
	free(error);
	store_free(&st);
	TEST_ASSERT(st == NULL);
}

static void
test_order_and_foreign_files(void)
{
	struct store *st = store_open(root);
	char *error = NULL;
	TEST_ASSERT(deliver_str(st, "bob@example.org", "", "one\r\n", 5, &error) == 0);
	TEST_ASSERT(deliver_str(st, "bob@example.org", "", "two\r\n", 5, &error) == 0);
	/* A file from another tool without S=/W=, older than both. */
	char *path = xasprintf("%s/example.org/bob/cur/1000.abc.host:2,", root);
	int fd = open(path, O_WRONLY | O_CREAT, 0600);
	TEST_ASSERT(fd >= 0 && write_all(fd, "a\nb\n", 4) == 0);
	close(fd);
	free(path);

	bool in_use;
	struct store_mailbox *mb = store_inbox_open(st, "bob@example.org", &in_use, &error);
	TEST_ASSERT(mb != NULL && store_mailbox_count(mb) == 3);
	if (mb != NULL && store_mailbox_count(mb) == 3) {
		TEST_ASSERT_STREQ(store_mailbox_msg(mb, 0)->uid, "1000.abc.host");
		TEST_ASSERT(store_mailbox_msg(mb, 0)->size == 6);
		TEST_ASSERT(store_mailbox_msg(mb, 1)->size == 5);
		int f1 = store_msg_open(mb, 1);
		char b[8] = { 0 };
		TEST_ASSERT(f1 >= 0 && read(f1, b, sizeof(b)) == 4);
		TEST_ASSERT_STREQ(b, "one\n");
		close(f1);
	}
	store_mailbox_close(&mb);

	/* No Maildir yet: an empty mailbox. */
	mb = store_inbox_open(st, "nobody@example.org", &in_use, &error);
	TEST_ASSERT(mb != NULL && store_mailbox_count(mb) == 0);
	store_mailbox_close(&mb);
	free(error);
	store_free(&st);
}

static void
test_path_escape(void)
{
	static const char *const bad[] = {
		"../x@example.org", "a/b@example.org", "x@../etc", "x@a/b",
		"@example.org", "x@", "x", ".x@example.org", "x@.example.org",
		"..@example.org", "x@..",
	};
	struct store *st = store_open(root);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *error = NULL;
		TEST_ASSERT(deliver_str(st, bad[i], "", "x\r\n", 3, &error) < 0);
		TEST_ASSERT(error != NULL);
		free(error);
		error = NULL;
		bool in_use;
		struct store_mailbox *mb = store_inbox_open(st, bad[i], &in_use, &error);
		TEST_ASSERT(mb == NULL && !in_use);
		free(error);
	}
	store_free(&st);
}

/*
 * RFC 1939 §11: LIST gives the exact size as sent. A file from another
 * tool is sent with its lines ending in CRLF and, if its last line has no
 * end, one added (so that the terminating "." starts a line): its size
 * counts those.
 */
static void
test_foreign_file_sizes(void)
{
	static const char *const bodies[] = { "a\nb\n", "x\ny", "p\r", "q\r\n", "" };
	size_t n = sizeof(bodies) / sizeof(bodies[0]);
	struct store *st = store_open(root);
	char *error = NULL;
	char *cur = xasprintf("%s/example.org/carol/cur", root);
	TEST_ASSERT(mkdir_p(cur, 0700) == 0);
	for (size_t i = 0; i < n; i++) {
		char *path = xasprintf("%s/%zu.f%zu.host:2,", cur, 1000 + i, i);
		int fd = open(path, O_WRONLY | O_CREAT, 0600);
		TEST_ASSERT(fd >= 0 && write_all(fd, bodies[i], strlen(bodies[i])) == 0);
		close(fd);
		free(path);
	}
	free(cur);
	bool in_use;
	struct store_mailbox *mb = store_inbox_open(st, "carol@example.org", &in_use, &error);
	TEST_ASSERT(mb != NULL && store_mailbox_count(mb) == n);
	for (size_t i = 0; mb != NULL && i < store_mailbox_count(mb) && i < n; i++) {
		struct dot_encoder e;
		struct buf sent = BUF_INIT;
		dot_encoder_init(&e);
		dot_encode(&e, bodies[i], strlen(bodies[i]), &sent);
		dot_encode_finish(&e, &sent);
		TEST_ASSERT(store_mailbox_msg(mb, i)->size == sent.len - 3); /* ".\r\n" */
		buf_free(&sent);
	}
	store_mailbox_close(&mb);
	free(error);
	store_free(&st);
}

int
main(void)
{
	strcpy(root, "/tmp/tern-test-store-XXXXXX");
	if (mkdtemp(root) == NULL)
		return 1;
	test_run("store_deliver_and_list", test_deliver_and_list);
	test_run("store_order_and_foreign_files", test_order_and_foreign_files);
	test_run("store_foreign_file_sizes", test_foreign_file_sizes);
	test_run("store_path_escape", test_path_escape);
	rm_rf(root);
	return test_done();
}
