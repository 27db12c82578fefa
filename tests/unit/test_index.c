/* Unit tests for the IMAP index over a Maildir made by hand. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/buf.h"
#include "core/util.h"
#include "store/index.h"
#include "maildir_fixture.h"
#include "test.h"

/* The name in cur/ starting with prefix, or NULL. */
static char *
find_cur(const char *prefix)
{
	char *p = xasprintf("%s/cur", test_root);
	DIR *d = opendir(p);
	free(p);
	char *found = NULL;
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL)
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			found = xstrdup(de->d_name);
	if (d != NULL)
		closedir(d);
	return found;
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

static void
rename_cur(const char *from, const char *to)
{
	char *a = xasprintf("%s/cur/%s", test_root, from);
	char *b = xasprintf("%s/cur/%s", test_root, to);
	TEST_ASSERT(rename(a, b) == 0);
	free(a);
	free(b);
}

static void
unlink_cur(const char *name)
{
	char *a = xasprintf("%s/cur/%s", test_root, name);
	TEST_ASSERT(unlink(a) == 0);
	free(a);
}

/* Three messages: one seen in cur/, two in new/ (arrival order c, a, b). */
static void
make_three(void)
{
	put("new", "1700000002.M5P1Q1.host,S=5,W=6", "two\n\n");
	put("cur", "1700000001.M9P1Q1.host,S=4,W=5:2,S", "one\n");
	put("new", "1700000003.M1P1Q1.host", "three\nx\n");
}

static struct index *
open_ix(void)
{
	char *err = NULL;
	struct index *ix = index_open(test_root, &err);
	TEST_ASSERT(ix != NULL);
	if (err != NULL)
		fprintf(stderr, "%s\n", err);
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

/* A new Maildir with make_three's messages, indexed once: the handle. */
static struct index *
three_indexed(uint32_t *uidvalidity_r)
{
	setup();
	make_three();
	struct index *ix = open_ix();
	struct index_sync_result r;
	TEST_ASSERT(sync_ix(ix, &r) == 0);
	*uidvalidity_r = r.uidvalidity;
	index_sync_result_free(&r);
	return ix;
}

static void
test_first_sync(void)
{
	setup();
	make_three();
	struct index *ix = open_ix();
	struct index_sync_result r;
	TEST_ASSERT(sync_ix(ix, &r) == 0);
	TEST_ASSERT(r.exists == 3 && r.new_count == 3 && r.uidnext == 4);
	TEST_ASSERT(r.new_count == 3 && r.new_uids[0] == 1 && r.new_uids[2] == 3);
	TEST_ASSERT(r.uidvalidity != 0 && r.expunged_count == 0);
	TEST_ASSERT(count_dir("new") == 0 && count_dir("cur") == 3);
	char *n = find_cur("1700000001.");
	TEST_ASSERT_STREQ(n, "1700000001.M9P1Q1.host,S=4,W=5,U=1:2,S");
	free(n);
	n = find_cur("1700000002.");
	TEST_ASSERT_STREQ(n, "1700000002.M5P1Q1.host,S=5,W=6,U=2:2,");
	free(n);
	n = find_cur("1700000003.");
	TEST_ASSERT_STREQ(n, "1700000003.M1P1Q1.host,U=3:2,");
	free(n);
	index_sync_result_free(&r);

	struct index_msg m;
	int found;
	char *err = NULL;
	TEST_ASSERT(index_msg_get(ix, "INBOX", test_root, 3, &m, &found, &err) == 0);
	TEST_ASSERT(found == 1 && m.size == 10 && m.internaldate == 1700000003);
	TEST_ASSERT_STREQ(m.flags, "");
	index_msg_clear(&m);
	TEST_ASSERT(index_msg_get(ix, "INBOX", test_root, 1, &m, &found, &err) == 0);
	TEST_ASSERT(found == 1 && m.size == 5);
	TEST_ASSERT_STREQ(m.flags, "S");
	TEST_ASSERT(m.path != NULL && access(m.path, F_OK) == 0);
	index_msg_clear(&m);
	TEST_ASSERT(index_msg_get(ix, "INBOX", test_root, 9, &m, &found, &err) == 0);
	TEST_ASSERT(found == 0);

	/* Second sync: nothing to do. */
	TEST_ASSERT(sync_ix(ix, &r) == 0);
	TEST_ASSERT(r.exists == 3 && r.new_count == 0 && r.expunged_count == 0);
	TEST_ASSERT(r.flag_changes == 0 && r.uidnext == 4);
	index_sync_result_free(&r);
	uint32_t uid, count;
	TEST_ASSERT(index_count(ix, "INBOX", &count, &err) == 0 && count == 3);
	TEST_ASSERT(index_uid_at(ix, "INBOX", 2, &uid, &err) == 0 && uid == 2);
	TEST_ASSERT(index_uid_at(ix, "INBOX", 4, &uid, &err) == 0 && uid == 0);
	index_close(&ix);
	TEST_ASSERT(ix == NULL);
	teardown();
}

static void
test_changes(void)
{
	uint32_t validity;
	struct index *ix = three_indexed(&validity);
	struct index_sync_result r;

	/* A new delivery gets the next UID. */
	put("new", "1600000000.M1P1Q1.host,S=2,W=3", "x\n");
	/* mutt marks message 2 read and flagged. */
	rename_cur("1700000002.M5P1Q1.host,S=5,W=6,U=2:2,",
		   "1700000002.M5P1Q1.host,S=5,W=6,U=2:2,FS");
	/* Message 1 is deleted by another tool. */
	unlink_cur("1700000001.M9P1Q1.host,S=4,W=5,U=1:2,S");
	TEST_ASSERT(sync_ix(ix, &r) == 0);
	TEST_ASSERT(r.exists == 3 && r.new_count == 1 && r.new_uids[0] == 4);
	TEST_ASSERT(r.expunged_count == 1 && r.expunged_uids[0] == 1);
	TEST_ASSERT(r.flag_changes == 1 && r.uidnext == 5);
	index_sync_result_free(&r);

	struct index_msg m;
	int found;
	char *err = NULL;
	TEST_ASSERT(index_msg_get(ix, "INBOX", test_root, 2, &m, &found, &err) == 0);
	TEST_ASSERT(found == 1);
	TEST_ASSERT_STREQ(m.flags, "FS");
	index_msg_clear(&m);
	uint32_t uid;
	TEST_ASSERT(index_uid_at(ix, "INBOX", 1, &uid, &err) == 0 && uid == 2);
	TEST_ASSERT(index_uid_at(ix, "INBOX", 3, &uid, &err) == 0 && uid == 4);
	index_close(&ix);
	teardown();
}

static void
test_set_flags(void)
{
	setup();
	put("cur", "1700000001.M9P1Q1.host:2,Sa", "one\n");
	struct index *ix = open_ix();
	struct index_sync_result r;
	TEST_ASSERT(sync_ix(ix, &r) == 0);
	index_sync_result_free(&r);
	char *err = NULL;
	TEST_ASSERT(index_set_flags(ix, "INBOX", test_root, 1, "TSRD", &err) == 0);
	char *n = find_cur("1700000001.");
	TEST_ASSERT_STREQ(n, "1700000001.M9P1Q1.host,U=1:2,DRSTa");
	free(n);
	struct index_msg m;
	int found;
	TEST_ASSERT(index_msg_get(ix, "INBOX", test_root, 1, &m, &found, &err) == 0);
	TEST_ASSERT_STREQ(m.flags, "DRST");
	TEST_ASSERT(m.modseq >= 2);
	index_msg_clear(&m);
	TEST_ASSERT(index_set_flags(ix, "INBOX", test_root, 1, "", &err) == 0);
	n = find_cur("1700000001.");
	TEST_ASSERT_STREQ(n, "1700000001.M9P1Q1.host,U=1:2,a");
	free(n);
	TEST_ASSERT(index_set_flags(ix, "INBOX", test_root, 1, "X", &err) < 0);
	free(err);
	err = NULL;
	TEST_ASSERT(index_set_flags(ix, "INBOX", test_root, 7, "S", &err) < 0);
	free(err);
	/* The sync after our own rename sees no change by others. */
	TEST_ASSERT(sync_ix(ix, &r) == 0);
	TEST_ASSERT(r.flag_changes == 0 && r.new_count == 0 && r.exists == 1);
	index_sync_result_free(&r);
	index_close(&ix);
	teardown();
}

static void
remove_index(void)
{
	static const char *const names[] = {
		"tern-index.sqlite", "tern-index.sqlite-wal", "tern-index.sqlite-shm",
	};
	for (size_t i = 0; i < 3; i++) {
		char *p = xasprintf("%s/%s", test_root, names[i]);
		unlink(p);
		free(p);
	}
}

static void
test_rebuild(void)
{
	uint32_t validity;
	struct index *ix = three_indexed(&validity);
	struct index_sync_result r;
	put("new", "1800000000.M1P1Q1.host", "four\n");
	TEST_ASSERT(sync_ix(ix, &r) == 0);
	TEST_ASSERT(r.new_count == 1 && r.new_uids[0] == 4);
	index_sync_result_free(&r);
	/* The highest UID goes, then the index is lost. */
	unlink_cur("1800000000.M1P1Q1.host,U=4:2,");
	index_close(&ix);
	remove_index();

	/* The floor was raised past UID 3 with its reserve, once: the
	   rebuild resumes from there. */
	ix = open_ix();
	TEST_ASSERT(sync_ix(ix, &r) == 0);
	TEST_ASSERT(r.uidvalidity == validity && r.exists == 3);
	const uint32_t floor = 4 + INDEX_UID_RESERVE;
	TEST_ASSERT(r.uidnext == floor && r.new_count == 0);
	index_sync_result_free(&r);
	uint32_t uid;
	char *err = NULL;
	TEST_ASSERT(index_uid_at(ix, "INBOX", 3, &uid, &err) == 0 && uid == 3);
	/* UID 4 is never given again. */
	put("new", "1900000000.M1P1Q1.host", "five\n");
	TEST_ASSERT(sync_ix(ix, &r) == 0);
	TEST_ASSERT(r.new_count == 1 && r.new_uids[0] == floor);
	index_sync_result_free(&r);

	/* index_rebuild keeps the same UIDs; UIDNEXT resumes from the floor,
	   which giving UID floor raised again. */
	TEST_ASSERT(index_rebuild(ix, "INBOX", test_root, &r, &err) == 0);
	TEST_ASSERT(r.uidvalidity == validity && r.exists == 4 &&
		    r.uidnext == floor + 1 + INDEX_UID_RESERVE);
	index_sync_result_free(&r);
	TEST_ASSERT(index_uid_at(ix, "INBOX", 4, &uid, &err) == 0 && uid == floor);
	char *n = find_cur("1700000003.");
	TEST_ASSERT_STREQ(n, "1700000003.M1P1Q1.host,U=3:2,");
	free(n);
	index_close(&ix);
	teardown();
}

/* Runs sql on the index file itself, with no handle of ours open on it;
   row (may be NULL) is called for each row with arg. */
static void
index_file_exec(const char *sql, int (*row)(void *, int, char **, char **), void *arg)
{
	index_close_unused();
	char *path = xasprintf("%s/tern-index.sqlite", test_root);
	sqlite3 *db = NULL;
	TEST_ASSERT(sqlite3_open(path, &db) == SQLITE_OK);
	TEST_ASSERT(sqlite3_exec(db, sql, row, arg, NULL) == SQLITE_OK);
	sqlite3_close(db);
	free(path);
}

static int
count_rows(void *arg, int ncol, char **vals, char **names)
{
	(void)ncol;
	(void)vals;
	(void)names;
	(*(int *)arg)++;
	return 0;
}

/*
 * An index of another schema version is emptied and made again from the
 * Maildir: the same UIDs, UIDVALIDITY and flags, and nothing the old
 * version cached (its descriptions may be wrong).
 */
static void
test_schema_change(void)
{
	uint32_t validity;
	struct index *ix = three_indexed(&validity);
	struct index_sync_result r;
	index_close(&ix);
	index_file_exec("INSERT INTO cache VALUES('INBOX', 1, 'stale', 'stale', '');"
			"PRAGMA user_version = 1;", NULL, NULL);

	ix = open_ix();
	TEST_ASSERT(sync_ix(ix, &r) == 0);
	TEST_ASSERT(r.uidvalidity == validity && r.exists == 3 && r.new_count == 0);
	index_sync_result_free(&r);
	uint32_t uid;
	char *err = NULL;
	for (uint32_t seq = 1; seq <= 3; seq++)
		TEST_ASSERT(index_uid_at(ix, "INBOX", seq, &uid, &err) == 0 && uid == seq);
	char *n = find_cur("1700000001.");
	TEST_ASSERT_STREQ(n, "1700000001.M9P1Q1.host,S=4,W=5,U=1:2,S");
	free(n);
	index_close(&ix);
	int stale = 0;
	index_file_exec("SELECT 1 FROM cache WHERE envelope = 'stale'", count_rows, &stale);
	TEST_ASSERT(stale == 0);
	teardown();
}

/* A file copied in by another tool with a ",U=" already in use. */
static void
test_duplicate_uid(void)
{
	setup();
	put("cur", "1700000001.M1P1Q1.host:2,", "one\n");
	struct index *ix = open_ix();
	struct index_sync_result r;
	TEST_ASSERT(sync_ix(ix, &r) == 0);
	index_sync_result_free(&r);
	put("cur", "1700000009.M1P1Q1.host,U=1:2,S", "copy\n");
	TEST_ASSERT(sync_ix(ix, &r) == 0);
	TEST_ASSERT(r.exists == 2 && r.new_count == 1 && r.new_uids[0] == 2);
	TEST_ASSERT(r.flag_changes == 0 && r.expunged_count == 0);
	index_sync_result_free(&r);
	char *n = find_cur("1700000009.");
	TEST_ASSERT_STREQ(n, "1700000009.M1P1Q1.host,U=2:2,S");
	free(n);
	/* A copy that sorts first still does not take the UID from the file
	   whose name the index knows. */
	put("cur", "1600000000.M1P1Q1.host,U=1:2,F", "older copy\n");
	TEST_ASSERT(sync_ix(ix, &r) == 0);
	TEST_ASSERT(r.exists == 3 && r.new_count == 1 && r.new_uids[0] == 3);
	TEST_ASSERT(r.flag_changes == 0 && r.expunged_count == 0);
	index_sync_result_free(&r);
	n = find_cur("1600000000.");
	TEST_ASSERT_STREQ(n, "1600000000.M1P1Q1.host,U=3:2,F");
	free(n);
	n = find_cur("1700000001.");
	TEST_ASSERT_STREQ(n, "1700000001.M1P1Q1.host,U=1:2,");
	free(n);
	index_close(&ix);
	teardown();
}

/* Folders share the database but not their UIDs or UIDVALIDITY file. */
static void
test_folder(void)
{
	setup();
	put("new", "1700000001.M1P1Q1.host", "one\n");
	char *sent = xasprintf("%s/.Sent", test_root);
	TEST_ASSERT(mkdir(sent, 0700) == 0);
	char *sub = xasprintf("%s/.Sent/new", test_root);
	TEST_ASSERT(mkdir(sub, 0700) == 0);
	free(sub);
	sub = xasprintf("%s/.Sent/new/1700000005.M1P1Q1.host", test_root);
	FILE *f = fopen(sub, "w");
	TEST_ASSERT(f != NULL);
	if (f != NULL)
		fclose(f);
	free(sub);
	struct index *ix = open_ix();
	struct index_sync_result r;
	char *err = NULL;
	TEST_ASSERT(sync_ix(ix, &r) == 0 && r.exists == 1);
	index_sync_result_free(&r);
	TEST_ASSERT(index_sync(ix, "Sent", sent, &r, &err) == 0);
	if (err != NULL)
		fprintf(stderr, "%s\n", err);
	free(err);
	err = NULL;
	TEST_ASSERT(r.exists == 1 && r.new_count == 1 && r.new_uids[0] == 1);
	index_sync_result_free(&r);
	sub = xasprintf("%s/.Sent/tern-uidlist", test_root);
	TEST_ASSERT(access(sub, F_OK) == 0);
	free(sub);
	struct index_msg m;
	int found;
	TEST_ASSERT(index_msg_get(ix, "Sent", sent, 1, &m, &found, &err) == 0);
	TEST_ASSERT(found == 1 && m.size == 0 && access(m.path, F_OK) == 0);
	index_msg_clear(&m);
	free(sent);
	index_close(&ix);
	teardown();
}

static char *
read_map(void)
{
	char *p = xasprintf("%s/tern-keywords", test_root);
	size_t len;
	char *s = read_file(p, 65536, &len);
	free(p);
	return s;
}

static void
write_map(const char *text)
{
	char *p = xasprintf("%s/tern-keywords", test_root);
	FILE *f = fopen(p, "w");
	TEST_ASSERT(f != NULL);
	if (f != NULL) {
		fputs(text, f);
		fclose(f);
	}
	free(p);
}

static void
assert_keywords(struct index *ix, uint32_t uid, const char *flags,
		const char *keywords)
{
	struct index_msg m;
	int found = 0;
	char *err = NULL;
	TEST_ASSERT(index_msg_get(ix, "INBOX", test_root, uid, &m, &found, &err) == 0);
	TEST_ASSERT(found == 1);
	if (found) {
		TEST_ASSERT_STREQ(m.flags, flags);
		TEST_ASSERT_STREQ(m.keywords, keywords);
	}
	index_msg_clear(&m);
}

static void
test_keywords(void)
{
	setup();
	put("cur", "1700000001.M1P1Q1.host:2,S", "one\n");
	put("cur", "1700000002.M1P1Q1.host:2,z", "two\n");
	struct index *ix = open_ix();
	struct index_sync_result r;
	TEST_ASSERT(sync_ix(ix, &r) == 0);
	index_sync_result_free(&r);
	assert_keywords(ix, 1, "S", "");
	assert_keywords(ix, 2, "", ""); /* 'z' is no keyword without a name */

	char *err = NULL;
	bool limit = true;
	TEST_ASSERT(index_set_flags_keywords(ix, "INBOX", test_root, 1, "S",
					     "$Forwarded Junk", &limit, &err) == 0);
	TEST_ASSERT(!limit);
	char *n = find_cur("1700000001.");
	TEST_ASSERT_STREQ(n, "1700000001.M1P1Q1.host,U=1:2,Sab");
	free(n);
	char *map = read_map();
	TEST_ASSERT_STREQ(map, "a $Forwarded\nb Junk\n");
	free(map);
	assert_keywords(ix, 1, "S", "$Forwarded Junk");

	/* Case-insensitive: the first spelling is kept; system flags alone
	   keep the letters. */
	TEST_ASSERT(index_set_flags_keywords(ix, "INBOX", test_root, 1, "S",
					     "JUNK", &limit, &err) == 0);
	assert_keywords(ix, 1, "S", "Junk");
	TEST_ASSERT(index_set_flags(ix, "INBOX", test_root, 1, "FS", &err) == 0);
	n = find_cur("1700000001.");
	TEST_ASSERT_STREQ(n, "1700000001.M1P1Q1.host,U=1:2,FSb");
	free(n);
	assert_keywords(ix, 1, "FS", "Junk");
	/* Another tool's letter stays when the keywords change. */
	TEST_ASSERT(index_set_flags_keywords(ix, "INBOX", test_root, 2, "",
					     "junk", &limit, &err) == 0);
	n = find_cur("1700000002.");
	TEST_ASSERT_STREQ(n, "1700000002.M1P1Q1.host,U=2:2,bz");
	free(n);
	assert_keywords(ix, 2, "", "Junk");

	char letters[INDEX_KEYWORDS_MAX + 1];
	TEST_ASSERT(index_keywords_letters(test_root, "junk  $FORWARDED", letters,
					   &limit, &err) == 0);
	TEST_ASSERT_STREQ(letters, "ab");
	TEST_ASSERT(index_keywords_letters(test_root, "", letters, &limit, &err) == 0);
	TEST_ASSERT_STREQ(letters, "");
	TEST_ASSERT(index_keywords_letters(test_root, "bad\\kw", letters, &limit,
					   &err) < 0 && !limit);
	free(err);
	err = NULL;

	/* mutt adds $Forwarded to message 2. */
	rename_cur("1700000002.M1P1Q1.host,U=2:2,bz",
		   "1700000002.M1P1Q1.host,U=2:2,Sabz");
	TEST_ASSERT(sync_ix(ix, &r) == 0);
	TEST_ASSERT(r.flag_changes == 1);
	index_sync_result_free(&r);
	assert_keywords(ix, 2, "S", "$Forwarded Junk");

	/* A rebuilt index reads the same keywords. */
	TEST_ASSERT(index_rebuild(ix, "INBOX", test_root, &r, &err) == 0);
	TEST_ASSERT(r.exists == 2 && r.new_count == 0);
	index_sync_result_free(&r);
	assert_keywords(ix, 1, "FS", "Junk");
	assert_keywords(ix, 2, "S", "$Forwarded Junk");

	/* 26 letters at most; the 27th name changes nothing. */
	struct buf kw = BUF_INIT;
	for (int i = 0; i < 24; i++)
		buf_appendf(&kw, "k%d ", i);
	TEST_ASSERT(index_keywords_letters(test_root, kw.data, letters, &limit,
					   &err) == 0);
	TEST_ASSERT(strlen(letters) == 24 && letters[0] == 'c');
	buf_free(&kw);
	char *names = NULL;
	size_t count = 0;
	TEST_ASSERT(index_keywords_names(test_root, &names, &count, &err) == 0);
	TEST_ASSERT(count == 26 && strncmp(names, "$Forwarded Junk k0 k1 ", 22) == 0);
	free(names);
	map = read_map();
	TEST_ASSERT(index_set_flags_keywords(ix, "INBOX", test_root, 1, "S",
					     "Junk k23 Extra", &limit, &err) < 0);
	TEST_ASSERT(limit);
	free(err);
	err = NULL;
	char *map2 = read_map();
	TEST_ASSERT_STREQ(map, map2);
	free(map);
	free(map2);
	assert_keywords(ix, 1, "FS", "Junk");
	TEST_ASSERT(index_set_flags_keywords(ix, "INBOX", test_root, 1, "S",
					     "k23 junk", &limit, &err) == 0);
	assert_keywords(ix, 1, "S", "Junk k23");

	/* A garbled map is an error, never a guess. */
	write_map("a $Forwarded\nb Junk\nb Twice\n");
	TEST_ASSERT(index_keywords_names(test_root, &names, &count, &err) < 0);
	free(err);
	err = NULL;
	/* ... which stops only the syncs that need the map. */
	put("new", "1800000000.M1P1Q1.host", "three\n");
	TEST_ASSERT(sync_ix(ix, &r) == 0 && r.new_count == 1);
	index_sync_result_free(&r);
	index_close(&ix);
	teardown();
}

static void
test_keyword_valid(void)
{
	TEST_ASSERT(index_keyword_valid("$Forwarded", 10));
	TEST_ASSERT(index_keyword_valid("Junk", 4));
	TEST_ASSERT(!index_keyword_valid("\\Seen", 5));
	TEST_ASSERT(!index_keyword_valid("a b", 3));
	TEST_ASSERT(!index_keyword_valid("a]", 2));
	TEST_ASSERT(!index_keyword_valid("a%", 2));
	TEST_ASSERT(!index_keyword_valid("", 0));
	TEST_ASSERT(!index_keyword_valid("\xc3\xa9", 2));
	char big[INDEX_KEYWORD_LEN_MAX + 2];
	memset(big, 'x', sizeof(big));
	TEST_ASSERT(index_keyword_valid(big, INDEX_KEYWORD_LEN_MAX));
	TEST_ASSERT(!index_keyword_valid(big, INDEX_KEYWORD_LEN_MAX + 1));
}

int
main(void)
{
	test_run("first sync assigns UIDs, second is a no-op", test_first_sync);
	test_run("new, flag change by mutt, expunge", test_changes);
	test_run("set_flags renames with sorted letters", test_set_flags);
	test_run("rebuild keeps UIDs, UIDVALIDITY, UIDNEXT floor", test_rebuild);
	test_run("another schema version is made again from the Maildir", test_schema_change);
	test_run("duplicate U= gets a new UID", test_duplicate_uid);
	test_run("folders are indexed apart", test_folder);
	test_run("keywords: letters, map, mutt, rebuild, limit", test_keywords);
	test_run("keyword atoms", test_keyword_valid);
	return test_done();
}
