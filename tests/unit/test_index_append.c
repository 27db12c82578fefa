/* Unit tests for index_append (COPY, MOVE, APPEND) over a Maildir made by hand. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "store/index.h"
#include "maildir_fixture.h"
#include "test.h"

static bool
exists(const char *sub, const char *name)
{
	char *p = xasprintf("%s/%s/%s", test_root, sub, name);
	bool r = access(p, F_OK) == 0;
	free(p);
	return r;
}

static size_t
count_dir(const char *sub)
{
	char *p = xasprintf("%s/%s", test_root, sub);
	DIR *d = opendir(p);
	free(p);
	size_t n = 0;
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	if (d != NULL)
		closedir(d);
	return n;
}

static char *
uidlist(void)
{
	char *p = xasprintf("%s/tern-uidlist", test_root);
	size_t len;
	char *s = read_file(p, 256, &len);
	free(p);
	return s;
}

static struct index *
open_ix(void)
{
	char *err = NULL;
	struct index *ix = index_open(test_root, &err);
	TEST_ASSERT(ix != NULL);
	free(err);
	return ix;
}

static int
sync_ix(struct index *ix, struct index_sync_result *r)
{
	char *err = NULL;
	int ret = index_sync(ix, "INBOX", test_root, r, &err);
	if (err != NULL)
		fprintf(stderr, "%s\n", err);
	free(err);
	return ret;
}

static int
append(struct index *ix, const char *const *names, size_t n, uint32_t *validity,
       uint32_t *uids)
{
	char *err = NULL;
	int ret = index_append(ix, "INBOX", test_root, names, n, validity, uids, &err);
	if (err != NULL)
		fprintf(stderr, "(expected or not) %s\n", err);
	free(err);
	return ret;
}

static void
test_append_unsynced(void)
{
	setup();
	struct index *ix = open_ix();
	put("tmp", "1700000100.M1P9Q1.host,S=4,W=5:2,FS", "one\n");
	put("tmp", "1700000200.M2P9Q2.host,S=5,W=7:2,a", "t\nw\n");
	const char *names[] = { "1700000100.M1P9Q1.host,S=4,W=5:2,FS",
				"1700000200.M2P9Q2.host,S=5,W=7:2,a" };
	uint32_t v = 0, uids[2] = { 0, 0 };
	TEST_ASSERT(append(ix, names, 2, &v, uids) == 0);
	TEST_ASSERT(v != 0 && uids[0] == 1 && uids[1] == 2);
	TEST_ASSERT(count_dir("tmp") == 0 && count_dir("cur") == 2);
	TEST_ASSERT(exists("cur", "1700000100.M1P9Q1.host,S=4,W=5,U=1:2,FS"));
	/* Keyword letters of the info part are kept as they are. */
	TEST_ASSERT(exists("cur", "1700000200.M2P9Q2.host,S=5,W=7,U=2:2,a"));
	/* The floor, raised with its reserve by the sync that made the
	   mailbox known, already covered UIDs 1 and 2: not rewritten. */
	char *want = xasprintf("1 %u %u\n", v, 1 + INDEX_UID_RESERVE), *got = uidlist();
	TEST_ASSERT_STREQ(got, want);
	free(want);
	free(got);

	struct index_msg m;
	int found = 0;
	char *err = NULL;
	TEST_ASSERT(index_msg_get(ix, "INBOX", test_root, 1, &m, &found, &err) == 0);
	TEST_ASSERT(found && m.size == 5 && m.internaldate == 1700000100);
	TEST_ASSERT_STREQ(m.flags, "FS");
	index_msg_clear(&m);
	TEST_ASSERT(index_msg_get(ix, "INBOX", test_root, 2, &m, &found, &err) == 0);
	TEST_ASSERT(found && m.size == 7 && m.internaldate == 1700000200);
	TEST_ASSERT_STREQ(m.flags, "");
	index_msg_clear(&m);

	/* A sync afterwards changes nothing and reports nothing new. */
	struct index_sync_result r;
	TEST_ASSERT(sync_ix(ix, &r) == 0);
	TEST_ASSERT(r.exists == 2 && r.new_count == 0 && r.expunged_count == 0);
	TEST_ASSERT(r.uidnext == 3 && r.uidvalidity == v && r.flag_changes == 0);
	index_sync_result_free(&r);

	index_close(&ix);
	teardown();
}

/* Two sessions (two handles on one database) and a delivery, interleaved. */
static void
test_two_handles(void)
{
	setup();
	put("new", "1700000001.M1P1Q1.host,S=2,W=3", "x\n");
	struct index *a = open_ix(), *b = open_ix();
	struct index_sync_result r;
	TEST_ASSERT(sync_ix(a, &r) == 0 && r.new_count == 1);
	index_sync_result_free(&r);

	uint32_t v, ua, ub;
	put("tmp", "1700000002.M1P2Q1.host", "a\n");
	const char *na = "1700000002.M1P2Q1.host";
	TEST_ASSERT(append(a, &na, 1, &v, &ua) == 0 && ua == 2);
	put("tmp", "1700000003.M1P2Q2.host", "b\n");
	const char *nb = "1700000003.M1P2Q2.host";
	TEST_ASSERT(append(b, &nb, 1, &v, &ub) == 0 && ub == 3);
	put("new", "1700000004.M1P1Q2.host,S=2,W=3", "y\n");
	TEST_ASSERT(sync_ix(b, &r) == 0);
	TEST_ASSERT(r.exists == 4 && r.new_count == 1 && r.new_uids[0] == 4);
	index_sync_result_free(&r);
	TEST_ASSERT(exists("cur", "1700000002.M1P2Q1.host,U=2:2,"));
	TEST_ASSERT(exists("cur", "1700000003.M1P2Q2.host,U=3:2,"));

	/* The index lost: the rebuild finds every UID in the names. */
	index_close(&a);
	index_close(&b);
	char *db = xasprintf("%s/tern-index.sqlite", test_root);
	TEST_ASSERT(unlink(db) == 0);
	free(db);
	a = open_ix();
	TEST_ASSERT(sync_ix(a, &r) == 0);
	/* UIDNEXT resumes from the floor (raised past UID 1 with its reserve). */
	const uint32_t floor = 2 + INDEX_UID_RESERVE;
	TEST_ASSERT(r.exists == 4 && r.uidnext == floor && r.uidvalidity == v);
	index_sync_result_free(&r);
	put("tmp", "1700000005.M1P2Q3.host", "c\n");
	const char *nc = "1700000005.M1P2Q3.host";
	TEST_ASSERT(append(a, &nc, 1, &v, &ua) == 0 && ua == floor);
	index_close(&a);
	teardown();
}

/* The tern-uidlist floor ahead of the index wins; a failure adds nothing. */
static void
test_floor_and_failure(void)
{
	setup();
	struct index *ix = open_ix();
	struct index_sync_result r;
	TEST_ASSERT(sync_ix(ix, &r) == 0);
	uint32_t v = r.uidvalidity;
	index_sync_result_free(&r);
	char *p = xasprintf("%s/tern-uidlist", test_root);
	FILE *f = fopen(p, "w");
	TEST_ASSERT(f != NULL);
	fprintf(f, "1 %u 10\n", v);
	fclose(f);
	free(p);

	put("tmp", "1700000001.M1P1Q1.host", "a\n");
	const char *names[] = { "1700000001.M1P1Q1.host", "missing" };
	uint32_t uids[2], v2;
	TEST_ASSERT(append(ix, names, 2, &v2, uids) == -1);
	/* Nothing added, the file that was there removed too (§6.4.7). */
	TEST_ASSERT(count_dir("cur") == 0 && count_dir("tmp") == 0);
	uint32_t count = 9;
	char *err = NULL;
	TEST_ASSERT(index_count(ix, "INBOX", &count, &err) == 0 && count == 0);

	/* The floor may have moved past UIDs never used: never below 10. */
	put("tmp", "1700000002.M1P1Q2.host", "b\n");
	TEST_ASSERT(append(ix, names, 1, &v2, uids) == -1); /* gone: removed above */
	const char *ok = "1700000002.M1P1Q2.host";
	TEST_ASSERT(append(ix, &ok, 1, &v2, uids) == 0);
	TEST_ASSERT(v2 == v && uids[0] >= 10);
	TEST_ASSERT(index_count(ix, "INBOX", &count, &err) == 0 && count == 1);
	index_close(&ix);
	teardown();
}

/*
 * The floor is raised with a reserve, so most appends write nothing and
 * UIDs stay consecutive; a handle opened afresh (a restart, perhaps after
 * a crash that lost the index's last commits) resumes from the floor.
 */
static void
test_floor_reserve(void)
{
	setup();
	struct index *ix = open_ix();
	uint32_t v = 0, uid = 0;
	const uint32_t n = INDEX_UID_RESERVE + 6;
	for (uint32_t i = 1; i <= n; i++) {
		char *name = xasprintf("17000%05u.M1P1Q%u.host", i, i);
		put("tmp", name, "m\n");
		const char *names[] = { name };
		TEST_ASSERT(append(ix, names, 1, &v, &uid) == 0 && uid == i);
		free(name);
		char *got = uidlist();
		/* Rewritten only when UID 1 + INDEX_UID_RESERVE was given. */
		uint32_t floor = i <= INDEX_UID_RESERVE ? 1 + INDEX_UID_RESERVE :
			2 + 2 * INDEX_UID_RESERVE;
		char *want = xasprintf("1 %u %u\n", v, floor);
		TEST_ASSERT_STREQ(got, want);
		free(got);
		free(want);
	}
	index_close(&ix);
	index_close_unused();

	ix = open_ix();
	put("tmp", "1800000000.M1P1Q1.host", "m\n");
	const char *next[] = { "1800000000.M1P1Q1.host" };
	TEST_ASSERT(append(ix, next, 1, &v, &uid) == 0);
	TEST_ASSERT(uid == 2 + 2 * INDEX_UID_RESERVE);
	index_close(&ix);
	teardown();
}

/* A folder deleted and made again: the new UIDVALIDITY is taken. */
static void
test_new_uidvalidity(void)
{
	setup();
	struct index *ix = open_ix();
	put("tmp", "1700000001.M1P1Q1.host", "a\n");
	const char *n1 = "1700000001.M1P1Q1.host";
	uint32_t v, uid;
	TEST_ASSERT(append(ix, &n1, 1, &v, &uid) == 0 && uid == 1);
	char *cmd = xasprintf("rm -f '%s'/cur/* '%s'/tern-uidlist", test_root, test_root);
	TEST_ASSERT(system(cmd) == 0);
	free(cmd);
	char *p = xasprintf("%s/tern-uidlist", test_root);
	FILE *f = fopen(p, "w");
	TEST_ASSERT(f != NULL);
	fprintf(f, "1 %u 1\n", v + 7);
	fclose(f);
	free(p);
	put("tmp", "1700000002.M1P1Q2.host", "b\n");
	const char *n2 = "1700000002.M1P1Q2.host";
	uint32_t v2;
	TEST_ASSERT(append(ix, &n2, 1, &v2, &uid) == 0);
	TEST_ASSERT(v2 == v + 7 && uid == 1);
	uint32_t count = 0;
	char *err = NULL;
	TEST_ASSERT(index_count(ix, "INBOX", &count, &err) == 0 && count == 1);
	index_close(&ix);
	teardown();
}

int
main(void)
{
	test_run("append into a mailbox never synced", test_append_unsynced);
	test_run("two handles and a delivery take turns; rebuild", test_two_handles);
	test_run("uidlist floor wins; a failure adds nothing", test_floor_and_failure);
	test_run("the floor is reserved ahead; a new handle resumes from it",
		 test_floor_reserve);
	test_run("a new UIDVALIDITY is taken", test_new_uidvalidity);
	return test_done();
}
