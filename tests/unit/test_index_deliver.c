/*
 * ENVELOPE and BODYSTRUCTURE computed at delivery: store_deliver leaves
 * them in the index's "delivered" table, index_sync moves them into the
 * message's row, no FETCH involved.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/util.h"
#include "mime/mime_imap.h"
#include "store/index.h"
#include "store/index_private.h"
#include "store/store.h"
#include "test.h"

#define ADDR "u@example.org"
#define PREFIX "Return-Path: <s@example.net>\r\nDelivered-To: u@example.org\r\n"

static const char msg_multi[] =
	"From: Alice <alice@example.org>\r\n"
	"To: bob@example.org\r\n"
	"Subject: multi\r\n"
	"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
	"Message-ID: <m1@example.org>\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
	"\r\n"
	"preamble\r\n"
	"--b1\r\n"
	"Content-Type: text/plain; charset=us-ascii\r\n"
	"\r\n"
	"part one\r\n"
	"--b1\r\n"
	"Content-Type: text/html\r\n"
	"\r\n"
	"<p>two</p>\r\n"
	"--b1--\r\n";

static const char env_multi[] =
	"(\"Mon, 1 Jan 2024 10:00:00 +0000\" \"multi\""
	" ((\"Alice\" NIL \"alice\" \"example.org\"))"
	" ((\"Alice\" NIL \"alice\" \"example.org\"))"
	" ((\"Alice\" NIL \"alice\" \"example.org\"))"
	" ((NIL NIL \"bob\" \"example.org\")) NIL NIL NIL \"<m1@example.org>\")";
/* The CRLF before a delimiter belongs to it (RFC 2046 §5.1.1): "part one"
   is 8 octets. */
static const char bs_multi[] =
	"((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 8 1"
	" NIL NIL NIL NIL)"
	"(\"TEXT\" \"HTML\" NIL NIL NIL \"7BIT\" 10 1 NIL NIL NIL NIL)"
	" \"MIXED\" (\"BOUNDARY\" \"b1\") NIL NIL NIL)";

static char root[64];
static char *user_dir;

static void
setup(void)
{
	strcpy(root, "/tmp/tern-test-deliv-XXXXXX");
	TEST_ASSERT(mkdtemp(root) != NULL);
	user_dir = xasprintf("%s/example.org/u", root);
}

static void
teardown(void)
{
	char *cmd = xasprintf("rm -rf '%s'", root);
	TEST_ASSERT(system(cmd) == 0);
	free(cmd);
	free(user_dir);
	user_dir = NULL;
}

static int
deliver(struct store *st, const char *body)
{
	char path[] = "/tmp/tern-test-body-XXXXXX";
	int fd = mkstemp(path);
	unlink(path);
	size_t len = strlen(body);
	TEST_ASSERT(fd >= 0 && write_all(fd, body, len) == 0);
	char *error = NULL;
	int r = store_deliver(st, ADDR, PREFIX, strlen(PREFIX), fd, (off_t)len, &error);
	if (r < 0)
		fprintf(stderr, "deliver: %s\n", error);
	free(error);
	close(fd);
	return r;
}

/* Rows of the delivered table, read as another tool would. */
static int
delivered_rows(void)
{
	char *path = xasprintf("%s/tern-index.sqlite", user_dir);
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int n = -1;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT count(*) FROM delivered", -1, &st,
			       NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(path);
	return n;
}

/* The only file in user_dir/sub, or NULL. */
static char *
only_file(const char *sub)
{
	char *p = xasprintf("%s/%s", user_dir, sub);
	DIR *d = opendir(p);
	free(p);
	char *found = NULL;
	int n = 0;
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		n++;
		free(found);
		found = xstrdup(de->d_name);
	}
	if (d != NULL)
		closedir(d);
	if (n != 1) {
		free(found);
		found = NULL;
	}
	return found;
}

static void
sync_inbox(struct index *ix, struct index_sync_result *r)
{
	char *error = NULL;
	TEST_ASSERT(index_sync(ix, "INBOX", user_dir, r, &error) == 0);
	free(error);
}

static void
assert_cached(struct index *ix, uint32_t uid, const char *env, const char *bs)
{
	struct index_cache_entry c;
	char *error = NULL;
	TEST_ASSERT(index_cache_get(ix, "INBOX", uid, &c, &error) == 0);
	if (env == NULL) {
		TEST_ASSERT(c.envelope == NULL && c.bodystructure == NULL && c.fields == NULL);
	} else {
		TEST_ASSERT_STREQ(c.envelope, env);
		TEST_ASSERT_STREQ(c.bodystructure, bs);
		/* The search fields came along: the folded Subject among them. */
		TEST_ASSERT(c.fields != NULL && strstr(c.fields, "Subject:") != NULL);
	}
	index_cache_entry_clear(&c);
	free(error);
}

static void
test_deliver_then_sync(void)
{
	setup();
	struct store *st = store_open(root);
	TEST_ASSERT(deliver(st, msg_multi) == 0);
	TEST_ASSERT(delivered_rows() == 1);

	struct index *ix = index_open(user_dir, &(char *){ NULL });
	TEST_ASSERT(ix != NULL);
	struct index_sync_result r;
	sync_inbox(ix, &r);
	TEST_ASSERT(r.new_count == 1 && r.new_uids[0] == 1);
	index_sync_result_free(&r);
	assert_cached(ix, 1, env_multi, bs_multi);
	TEST_ASSERT(delivered_rows() == 0);

	/* The same texts as the FETCH path computes from the file (the
	   message with the delivery's header fields, in CRLF form). */
	char *e = NULL, *b = NULL, *error = NULL;
	struct buf whole = BUF_INIT;
	buf_appends(&whole, PREFIX);
	buf_appends(&whole, msg_multi);
	TEST_ASSERT(mime_imap_describe(whole.data, whole.len, &e, &b, &error) == 0);
	assert_cached(ix, 1, e, b);
	free(e);
	free(b);
	buf_free(&whole);
	index_close(&ix);
	store_free(&st);
	teardown();
}

/* POP3 (or any tool) removed the file before a sync saw it. */
static void
test_gone_file_leaves_no_row(void)
{
	setup();
	struct store *st = store_open(root);
	TEST_ASSERT(deliver(st, msg_multi) == 0);
	char *name = only_file("new");
	TEST_ASSERT(name != NULL);
	char *path = xasprintf("%s/new/%s", user_dir, name ? name : "");
	TEST_ASSERT(unlink(path) == 0);
	TEST_ASSERT(delivered_rows() == 1);
	struct index *ix = index_open(user_dir, &(char *){ NULL });
	struct index_sync_result r;
	sync_inbox(ix, &r);
	TEST_ASSERT(r.exists == 0 && r.new_count == 0);
	index_sync_result_free(&r);
	TEST_ASSERT(delivered_rows() == 0);
	index_close(&ix);
	free(path);
	free(name);
	store_free(&st);
	teardown();
}

/*
 * A sync may register the file between its rename into new/ and the
 * insert of its row: the row then waits for the next full scan, which
 * fills the message's empty cache from it.
 */
static void
test_row_after_registration(void)
{
	setup();
	struct store *st = store_open(root);
	/* Delivered while the index cannot be opened: no row. */
	TEST_ASSERT(mkdir_p(user_dir, 0700) == 0);
	char *blocker = xasprintf("%s/tern-index.sqlite", user_dir);
	TEST_ASSERT(mkdir(blocker, 0700) == 0);
	TEST_ASSERT(deliver(st, msg_multi) == 0);
	TEST_ASSERT(rmdir(blocker) == 0);
	char *name = only_file("new");
	TEST_ASSERT(name != NULL);

	struct index *ix = index_open(user_dir, &(char *){ NULL });
	struct index_sync_result r;
	sync_inbox(ix, &r);
	TEST_ASSERT(r.new_count == 1);
	index_sync_result_free(&r);
	assert_cached(ix, 1, NULL, NULL);

	/* Now the delivery thread's insert arrives, for the name in cur/. */
	char *cur = only_file("cur");
	TEST_ASSERT(cur != NULL);
	char *path = xasprintf("%s/cur/%s", user_dir, cur ? cur : "");
	char *error = NULL;
	TEST_ASSERT(index_deliver_describe(user_dir, "INBOX", path, name ? name : "",
					   1 << 20, &error) == 0);
	free(error);
	TEST_ASSERT(delivered_rows() == 1);

	/* The next delivery changes new/: a full scan takes both rows. */
	TEST_ASSERT(deliver(st, "Subject: second\r\n\r\nhello\r\n") == 0);
	sync_inbox(ix, &r);
	TEST_ASSERT(r.new_count == 1 && r.new_uids[0] == 2);
	index_sync_result_free(&r);
	assert_cached(ix, 1, env_multi, bs_multi);
	assert_cached(ix, 2, "(NIL \"second\" NIL NIL NIL NIL NIL NIL NIL NIL)",
		      "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL"
		      " \"7BIT\" 7 1 NIL NIL NIL NIL)");
	TEST_ASSERT(delivered_rows() == 0);
	index_close(&ix);
	free(path);
	free(cur);
	free(name);
	free(blocker);
	store_free(&st);
	teardown();
}

/* A broken index never fails the delivery itself. */
static void
test_index_failure_delivers(void)
{
	setup();
	struct store *st = store_open(root);
	TEST_ASSERT(mkdir_p(user_dir, 0700) == 0);
	char *blocker = xasprintf("%s/tern-index.sqlite", user_dir);
	FILE *f = fopen(blocker, "w");
	TEST_ASSERT(f != NULL);
	if (f != NULL) {
		fputs("not a database, just junk that is long enough to matter\n", f);
		fclose(f);
	}
	TEST_ASSERT(deliver(st, msg_multi) == 0);
	char *name = only_file("new");
	TEST_ASSERT(name != NULL);
	free(name);
	free(blocker);
	store_free(&st);
	teardown();
}

int
main(void)
{
	test_run("delivery describes, sync takes it", test_deliver_then_sync);
	test_run("a file gone before the sync leaves no row",
		 test_gone_file_leaves_no_row);
	test_run("a row inserted after the sync registered its file",
		 test_row_after_registration);
	test_run("an index failure does not fail the delivery",
		 test_index_failure_delivers);
	return test_done();
}
