/* Maildir++ folders: init, create, list, rename, delete, subscriptions,
 * and the names that must be refused. Each test gets a fresh temp root. */
#include "test.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/util.h"
#include "store/folders.h"

#define ADDR "user@example.org"

static char root[64];
static char udir[128];

static int
rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	return remove(path);
}

static void
setup(void)
{
	strcpy(root, "/tmp/tern-folders-XXXXXX");
	if (mkdtemp(root) == NULL)
		abort();
	snprintf(udir, sizeof(udir), "%s/example.org/user", root);
}

static void
teardown(void)
{
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static bool
is_dir(const char *rel)
{
	char path[512];
	struct stat sb;
	snprintf(path, sizeof(path), "%s/%s", udir, rel);
	return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static bool
is_file(const char *rel)
{
	char path[512];
	struct stat sb;
	snprintf(path, sizeof(path), "%s/%s", udir, rel);
	return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static void
touch(const char *rel)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", udir, rel);
	int fd = open(path, O_WRONLY | O_CREAT, 0600);
	TEST_ASSERT(fd >= 0);
	if (fd >= 0) {
		TEST_ASSERT(write(fd, "Subject: x\n\nhi\n", 15) == 15);
		close(fd);
	}
}

/* Runs an operation expecting err (STORE_FOLDER_OK: success). */
#define EXPECT(err, call)                                                     \
	do {                                                                   \
		enum store_folder_err e_ = STORE_FOLDER_OK;                    \
		char *error_ = NULL;                                           \
		int r_ = (call);                                               \
		if ((r_ == 0) != ((err) == STORE_FOLDER_OK) ||                 \
		    (r_ < 0 && e_ != (err)))                                   \
			fprintf(stderr, "%s: r=%d err=%d (%s)\n", #call, r_,   \
				(int)e_, error_ ? error_ : "");                \
		TEST_ASSERT(r_ == 0 ? (err) == STORE_FOLDER_OK : e_ == (err)); \
		TEST_ASSERT(r_ == 0 || error_ != NULL);                        \
		free(error_);                                                  \
	} while (0)
#define E (&e_), (&error_)

/* The LIST line body "flags name" for name, or NULL if not listed. */
static char *
listed(const char *name)
{
	struct store_folder *f = NULL;
	size_t n = 0;
	enum store_folder_err e;
	char *error = NULL;
	if (store_folder_list(root, ADDR, &f, &n, &e, &error) < 0) {
		free(error);
		return NULL;
	}
	char *out = NULL;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(f[i].name, name) != 0)
			continue;
		struct buf b = BUF_INIT;
		store_folder_flags_format(f[i].flags, &b);
		out = buf_steal(&b);
	}
	store_folder_list_free(&f, n);
	return out;
}

static void
check_flags(const char *name, const char *want)
{
	char *got = listed(name);
	if (got == NULL || strcmp(got, want) != 0)
		fprintf(stderr, "flags of %s\n", name);
	TEST_ASSERT_STREQ(got, want);
	free(got);
}

static void
test_init(void)
{
	setup();
	EXPECT(STORE_FOLDER_OK, store_user_init(root, ADDR, E));
	EXPECT(STORE_FOLDER_OK, store_user_init(root, ADDR, E)); /* again */
	struct store_folder *f = NULL;
	size_t n = 0;
	EXPECT(STORE_FOLDER_OK, store_folder_list(root, ADDR, &f, &n, E));
	static const char *const order[] = {
		"INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash",
	};
	TEST_ASSERT(n == 6);
	for (size_t i = 0; i < n && i < 6; i++)
		TEST_ASSERT_STREQ(f[i].name, order[i]);
	store_folder_list_free(&f, n);
	TEST_ASSERT(f == NULL);
	check_flags("INBOX", "\\HasNoChildren");
	check_flags("Drafts", "\\HasNoChildren \\Drafts");
	check_flags("Sent", "\\HasNoChildren \\Sent");
	check_flags("Trash", "\\HasNoChildren \\Trash");
	check_flags("Junk", "\\HasNoChildren \\Junk");
	check_flags("Archive", "\\HasNoChildren \\Archive");
	TEST_ASSERT(is_dir("cur") && is_dir("new") && is_dir("tmp"));
	TEST_ASSERT(is_dir(".Sent/cur") && is_dir(".Sent/new") && is_dir(".Sent/tmp"));
	TEST_ASSERT(is_file(".Trash/maildirfolder"));
	char **subs = NULL;
	size_t ns = 0;
	EXPECT(STORE_FOLDER_OK, store_folder_subscriptions(root, ADDR, &subs, &ns, E));
	TEST_ASSERT(ns == 6);
	if (ns == 6)
		TEST_ASSERT_STREQ(subs[0], "INBOX");
	store_folder_names_free(&subs, ns);
	teardown();
}

static void
test_create_list(void)
{
	setup();
	EXPECT(STORE_FOLDER_OK, store_folder_create(root, ADDR, "Lists/tern", E));
	TEST_ASSERT(is_dir(".Lists") && is_dir(".Lists.tern/new"));
	TEST_ASSERT(is_file(".Lists/maildirfolder"));
	TEST_ASSERT(is_dir("new")); /* INBOX made on the way */
	EXPECT(STORE_FOLDER_ERR_EXISTS, store_folder_create(root, ADDR, "Lists/tern", E));
	EXPECT(STORE_FOLDER_ERR_EXISTS, store_folder_create(root, ADDR, "Lists", E));
	EXPECT(STORE_FOLDER_ERR_EXISTS, store_folder_create(root, ADDR, "inbox", E));
	EXPECT(STORE_FOLDER_OK, store_folder_create(root, ADDR, "foo/", E));
	TEST_ASSERT(is_dir(".foo"));
	EXPECT(STORE_FOLDER_OK, store_folder_create(root, ADDR, "Inbox/sub", E));
	TEST_ASSERT(is_dir(".INBOX.sub"));
	check_flags("Lists", "\\HasChildren");
	check_flags("Lists/tern", "\\HasNoChildren");
	check_flags("foo", "\\HasNoChildren");
	check_flags("INBOX", "\\HasChildren");
	/* A parent made by another tool without its own directory. */
	char path[512];
	snprintf(path, sizeof(path), "%s/.x.y/cur", udir);
	TEST_ASSERT(mkdir_p(path, 0700) == 0);
	check_flags("x", "\\Noselect \\HasChildren");
	check_flags("x/y", "\\HasNoChildren");
	TEST_ASSERT(store_folder_exists(root, ADDR, "Lists/tern"));
	TEST_ASSERT(store_folder_exists(root, ADDR, "inbox"));
	TEST_ASSERT(!store_folder_exists(root, ADDR, "x"));
	teardown();
}

static void
test_rename(void)
{
	setup();
	EXPECT(STORE_FOLDER_OK, store_folder_create(root, ADDR, "a/b/c", E));
	EXPECT(STORE_FOLDER_OK, store_folder_create(root, ADDR, "ab", E));
	touch(".a.b/new/1.M1P1.host");
	EXPECT(STORE_FOLDER_OK, store_folder_rename(root, ADDR, "a", "z/a", E));
	TEST_ASSERT(!is_dir(".a") && !is_dir(".a.b") && !is_dir(".a.b.c"));
	TEST_ASSERT(is_dir(".z") && is_dir(".z.a") && is_dir(".z.a.b.c"));
	TEST_ASSERT(is_file(".z.a.b/new/1.M1P1.host"));
	TEST_ASSERT(is_dir(".ab")); /* a sibling sharing the prefix stays */
	check_flags("z/a/b", "\\HasChildren");
	EXPECT(STORE_FOLDER_ERR_NONEXISTENT, store_folder_rename(root, ADDR, "a", "q", E));
	EXPECT(STORE_FOLDER_ERR_EXISTS, store_folder_rename(root, ADDR, "ab", "z/a", E));
	EXPECT(STORE_FOLDER_ERR_EXISTS, store_folder_rename(root, ADDR, "ab", "INBOX", E));
	EXPECT(STORE_FOLDER_ERR_NOTALLOWED, store_folder_rename(root, ADDR, "z", "z/q", E));
	EXPECT(STORE_FOLDER_ERR_BADNAME, store_folder_rename(root, ADDR, "ab", "../ab", E));
	teardown();
}

static void
test_rename_inbox(void)
{
	setup();
	EXPECT(STORE_FOLDER_OK, store_user_init(root, ADDR, E));
	EXPECT(STORE_FOLDER_OK, store_folder_create(root, ADDR, "INBOX/kid", E));
	touch("new/100.M1P1.host,S=15,W=18");
	touch("cur/99.M1P1.host,S=15,W=18:2,S");
	EXPECT(STORE_FOLDER_OK, store_folder_rename(root, ADDR, "INBOX", "Old/2026", E));
	TEST_ASSERT(is_file(".Old.2026/new/100.M1P1.host,S=15,W=18"));
	TEST_ASSERT(is_file(".Old.2026/cur/99.M1P1.host,S=15,W=18:2,S"));
	TEST_ASSERT(!is_file("new/100.M1P1.host,S=15,W=18"));
	TEST_ASSERT(!is_file("cur/99.M1P1.host,S=15,W=18:2,S"));
	TEST_ASSERT(is_dir("new") && is_dir(".INBOX.kid")); /* inferiors stay */
	check_flags("INBOX", "\\HasChildren");
	EXPECT(STORE_FOLDER_ERR_EXISTS, store_folder_rename(root, ADDR, "INBOX", "Sent", E));
	teardown();
}

static void
test_delete(void)
{
	setup();
	EXPECT(STORE_FOLDER_OK, store_folder_create(root, ADDR, "Lists/tern", E));
	touch(".Lists.tern/new/1.M1P1.host");
	EXPECT(STORE_FOLDER_ERR_HASCHILDREN, store_folder_delete(root, ADDR, "Lists", E));
	EXPECT(STORE_FOLDER_OK, store_folder_delete(root, ADDR, "Lists/tern", E));
	TEST_ASSERT(!is_dir(".Lists.tern"));
	EXPECT(STORE_FOLDER_ERR_NONEXISTENT, store_folder_delete(root, ADDR, "Lists/tern", E));
	EXPECT(STORE_FOLDER_ERR_NOTALLOWED, store_folder_delete(root, ADDR, "INBOX", E));
	EXPECT(STORE_FOLDER_OK, store_folder_delete(root, ADDR, "Lists", E));
	char *l = listed("Lists");
	TEST_ASSERT(l == NULL);
	free(l);
	/* Nothing left behind in tmp/. */
	char path[512];
	snprintf(path, sizeof(path), "%s/tmp", udir);
	DIR *d = opendir(path);
	TEST_ASSERT(d != NULL);
	struct dirent *de;
	int entries = 0;
	while (d != NULL && (de = readdir(d)) != NULL)
		entries++;
	if (d != NULL)
		closedir(d);
	TEST_ASSERT(entries == 2);
	teardown();
}

static void
test_subscriptions(void)
{
	setup();
	EXPECT(STORE_FOLDER_OK, store_folder_subscribe(root, ADDR, "Lists/tern", E));
	EXPECT(STORE_FOLDER_OK, store_folder_subscribe(root, ADDR, "Lists/tern", E));
	EXPECT(STORE_FOLDER_OK, store_folder_subscribe(root, ADDR, "inbox", E));
	EXPECT(STORE_FOLDER_OK, store_folder_subscribe(root, ADDR, "Entw&APw-rfe", E));
	EXPECT(STORE_FOLDER_OK, store_folder_unsubscribe(root, ADDR, "Entw&APw-rfe", E));
	EXPECT(STORE_FOLDER_ERR_NONEXISTENT,
	       store_folder_unsubscribe(root, ADDR, "Entw&APw-rfe", E));
	EXPECT(STORE_FOLDER_ERR_BADNAME, store_folder_subscribe(root, ADDR, "a//b", E));
	/* Each call reads the file afresh: this is a reopen. */
	char **subs = NULL;
	size_t n = 0;
	EXPECT(STORE_FOLDER_OK, store_folder_subscriptions(root, ADDR, &subs, &n, E));
	TEST_ASSERT(n == 2);
	if (n == 2) {
		TEST_ASSERT_STREQ(subs[0], "Lists/tern");
		TEST_ASSERT_STREQ(subs[1], "INBOX");
	}
	store_folder_names_free(&subs, n);
	char path[512];
	snprintf(path, sizeof(path), "%s/subscriptions", udir);
	size_t len;
	char *data = read_file(path, 4096, &len);
	TEST_ASSERT_STREQ(data, "Lists/tern\nINBOX\n");
	free(data);
	TEST_ASSERT(!is_file("subscriptions.tmp"));
	teardown();
}

static void
test_bad_names(void)
{
	static const char *const bad[] = {
		"", "/", "..", "../x", "a/../b", "a/..", ".", "./a", "a//b",
		"/a", "//a", ".hidden", "a/.b", "a.b", "a/b.", "&AC8-", "a&AC8-b",
		"&AC4-", "a\001b", "a\tb", "a\nb", "a\x7f", "&AAk-", "&AIU-",
		"&AH8-", "*", "a%", "a/*", "a\\b", "&", "&Jjo", "caf\xc3\xa9",
		"\xc0\xaf", "a/b//", "x&-&AMk-&AMk-",
	};
	setup();
	EXPECT(STORE_FOLDER_OK, store_user_init(root, ADDR, E));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *name = bad[i];
		EXPECT(STORE_FOLDER_ERR_BADNAME, store_folder_create(root, ADDR, name, E));
		EXPECT(STORE_FOLDER_ERR_BADNAME, store_folder_delete(root, ADDR, name, E));
		EXPECT(STORE_FOLDER_ERR_BADNAME,
		       store_folder_rename(root, ADDR, "Junk", name, E));
		EXPECT(STORE_FOLDER_ERR_BADNAME,
		       store_folder_rename(root, ADDR, name, "Junk2", E));
		EXPECT(STORE_FOLDER_ERR_BADNAME, store_folder_subscribe(root, ADDR, name, E));
	}
	/* Lengths: 255 bytes a component, 1024 in all, NAME_MAX on disk. */
	char name[1100];
	memset(name, 'a', 256);
	name[256] = '\0';
	EXPECT(STORE_FOLDER_ERR_BADNAME, store_folder_create(root, ADDR, name, E));
	name[254] = '\0';
	EXPECT(STORE_FOLDER_OK, store_folder_create(root, ADDR, name, E));
	for (size_t i = 0; i < 1099; i++)
		name[i] = i % 10 == 9 ? '/' : 'b';
	name[1099] = '\0';
	EXPECT(STORE_FOLDER_ERR_BADNAME, store_folder_create(root, ADDR, name, E));
	name[200] = '\0';
	EXPECT(STORE_FOLDER_OK, store_folder_create(root, ADDR, name, E));
	/* Addresses that try to leave the mail root. */
	EXPECT(STORE_FOLDER_ERR_TEMP, store_folder_create(root, "../x@y", "a", E));
	EXPECT(STORE_FOLDER_ERR_TEMP, store_folder_create(root, "x@../y", "a", E));
	EXPECT(STORE_FOLDER_ERR_TEMP, store_user_init(root, "a/b@c", E));
	/* Only the expected entries exist: nothing escaped. */
	char path[512];
	snprintf(path, sizeof(path), "%s", root);
	DIR *d = opendir(path);
	int entries = 0;
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL)
		entries++;
	if (d != NULL)
		closedir(d);
	TEST_ASSERT(entries == 3); /* ".", "..", "example.org" */
	teardown();
}

static void
test_mutf7_names(void)
{
	setup();
	EXPECT(STORE_FOLDER_OK,
	       store_folder_create(root, ADDR, "~peter/mail/&U,BTFw-/&ZeVnLIqe-", E));
	TEST_ASSERT(is_dir(".~peter.mail.&U,BTFw-.&ZeVnLIqe-"));
	TEST_ASSERT(is_dir(".~peter.mail.&U,BTFw-"));
	EXPECT(STORE_FOLDER_OK, store_folder_create(root, ADDR, "Entw&APw-rfe", E));
	TEST_ASSERT(is_dir(".Entw&APw-rfe"));
	check_flags("Entw&APw-rfe", "\\HasNoChildren");
	check_flags("~peter/mail/&U,BTFw-", "\\HasChildren");
	check_flags("~peter/mail/&U,BTFw-/&ZeVnLIqe-", "\\HasNoChildren");
	EXPECT(STORE_FOLDER_OK, store_folder_rename(root, ADDR, "Entw&APw-rfe",
						    "&2D3eAA-", E));
	TEST_ASSERT(is_dir(".&2D3eAA-") && !is_dir(".Entw&APw-rfe"));
	char *p = NULL;
	enum store_folder_err e;
	char *error = NULL;
	p = store_folder_path(root, ADDR, "&2D3eAA-", &e, &error);
	char want[512];
	snprintf(want, sizeof(want), "%s/.&2D3eAA-", udir);
	TEST_ASSERT_STREQ(p, want);
	free(p);
	teardown();
}

int
main(void)
{
	test_run("folders init", test_init);
	test_run("folders create and list", test_create_list);
	test_run("folders rename with children", test_rename);
	test_run("folders rename INBOX", test_rename_inbox);
	test_run("folders delete", test_delete);
	test_run("folders subscriptions", test_subscriptions);
	test_run("folders bad names refused", test_bad_names);
	test_run("folders mUTF-7 names", test_mutf7_names);
	return test_done();
}
