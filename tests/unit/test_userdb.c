/* Unit tests of the users file (auth/userdb.c). */
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "auth/userdb.h"
#include "core/util.h"
#include "test.h"

static char tmpdir[64];
static char path[128];

static void
write_text(const char *text)
{
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
}

static void
collect(const char *address, void *ctx)
{
	struct buf_list { char text[512]; } *l = ctx;
	strcat(l->text, address);
	strcat(l->text, " ");
}

static void
test_add_verify(void)
{
	unlink(path);
	char *error = NULL;
	TEST_ASSERT(userdb_add(path, "Alice@Example.org", "s3cret", &error) == 0);
	TEST_ASSERT(userdb_add(path, "alice@example.org", "x", &error) == -1);
	TEST_ASSERT(error != NULL && strstr(error, "exists") != NULL);
	free(error);
	struct stat st;
	TEST_ASSERT(stat(path, &st) == 0 && (st.st_mode & 0777) == 0640);

	struct userdb *db = userdb_open(path, "example.org");
	char *addr = NULL;
	TEST_ASSERT(userdb_verify(db, "alice", "s3cret", &addr) == 1);
	TEST_ASSERT_STREQ(addr, "alice@example.org");
	free(addr);
	TEST_ASSERT(userdb_verify(db, "ALICE@example.org", "s3cret", &addr) == 1);
	free(addr);
	TEST_ASSERT(userdb_verify(db, "alice", "wrong", &addr) == 0);
	TEST_ASSERT(userdb_verify(db, "alice", "", &addr) == 0);
	TEST_ASSERT(userdb_verify(db, "nobody", "s3cret", &addr) == 0);
	TEST_ASSERT(userdb_exists(db, "alice@example.org"));
	TEST_ASSERT(!userdb_exists(db, "bob@example.org"));
	userdb_free(&db);
	TEST_ASSERT(db == NULL);

	char *text = read_file(path, 4096, NULL);
	TEST_ASSERT(text != NULL && strncmp(text, "alice@example.org:$y$", 21) == 0);
	free(text);
}

static void
test_passwd_delete_list(void)
{
	unlink(path);
	write_text("# users\n\ncarol@example.org:*\n");
	char *error = NULL;
	TEST_ASSERT(userdb_add(path, "dave@example.org", "one", &error) == 0);
	TEST_ASSERT(userdb_add(path, "erin@example.org", "two", &error) == 0);
	TEST_ASSERT(userdb_set_password(path, "dave@example.org", "three", &error) == 0);
	TEST_ASSERT(userdb_set_password(path, "zed@example.org", "x", &error) == -1);
	free(error);
	error = NULL;

	struct userdb *db = userdb_open(path, "example.org");
	char *addr = NULL;
	TEST_ASSERT(userdb_verify(db, "dave", "one", &addr) == 0);
	TEST_ASSERT(userdb_verify(db, "dave", "three", &addr) == 1);
	free(addr);
	/* A locked hash ("*") never matches. */
	TEST_ASSERT(userdb_verify(db, "carol", "*", &addr) == 0);

	TEST_ASSERT(userdb_delete(path, "DAVE@example.org", &error) == 0);
	TEST_ASSERT(userdb_delete(path, "dave@example.org", &error) == -1);
	free(error);
	error = NULL;
	TEST_ASSERT(!userdb_exists(db, "dave@example.org"));
	userdb_free(&db);

	struct { char text[512]; } list = { "" };
	TEST_ASSERT(userdb_list(path, collect, &list, &error) == 0);
	TEST_ASSERT_STREQ(list.text, "carol@example.org erin@example.org ");
	char *text = read_file(path, 4096, NULL);
	TEST_ASSERT(text != NULL && strncmp(text, "# users\n\ncarol@", 15) == 0);
	free(text);
	TEST_ASSERT(access(path, F_OK) == 0);
	char tmp[160];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	TEST_ASSERT(access(tmp, F_OK) != 0);
}

static void
test_bad_addresses(void)
{
	const char *bad[] = { "noat", "@example.org", "a@", "a@b@c", "a b@c", "a:b@c",
			      "a/b@c", "a@..", "a\tb@c" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *error = NULL;
		TEST_ASSERT(userdb_add(path, bad[i], "pw", &error) == -1);
		TEST_ASSERT(error != NULL);
		free(error);
	}
}

static void
test_reload_and_sha512(void)
{
	void *data = NULL;
	int size = 0;
	char *hash = xstrdup(crypt_ra("pw", "$6$saltsalt$", &data, &size));
	free(data);
	char *text = xasprintf("frank@example.org:%s\n", hash);
	write_text(text);
	free(text);

	struct userdb *db = userdb_open(path, "example.org");
	char *addr = NULL;
	TEST_ASSERT(userdb_verify(db, "frank", "pw", &addr) == 1);
	free(addr);
	TEST_ASSERT(userdb_verify(db, "frank", "pw2", &addr) == 0);
	TEST_ASSERT(!userdb_exists(db, "gina@example.org"));

	/* Edited in place with the same size: the mtime tells. */
	text = xasprintf("gina@example.org:%s\n", hash);
	write_text(text);
	free(text);
	struct timeval tv[2];
	gettimeofday(&tv[0], NULL);
	tv[0].tv_sec += 10;
	tv[1] = tv[0];
	TEST_ASSERT(utimes(path, tv) == 0);
	TEST_ASSERT(userdb_exists(db, "gina@example.org"));
	TEST_ASSERT(!userdb_exists(db, "frank@example.org"));

	/* A missing file is a temporary failure, not a wrong password. */
	unlink(path);
	TEST_ASSERT(userdb_verify(db, "gina", "pw", &addr) == -1);
	userdb_free(&db);
	free(hash);
}

static void
test_canonical(void)
{
	struct userdb *db = userdb_open(path, "Example.ORG");
	char *s = userdb_canonical(db, "Bob");
	TEST_ASSERT_STREQ(s, "bob@example.org");
	free(s);
	s = userdb_canonical(db, "Bob@Other.NET");
	TEST_ASSERT_STREQ(s, "bob@other.net");
	free(s);
	userdb_free(&db);
}

static void
test_duplicates_and_junk(void)
{
	void *data = NULL;
	int size = 0;
	char *h1 = xstrdup(crypt_ra("one", "$6$aaaa$", &data, &size));
	char *h2 = xstrdup(crypt_ra("two", "$6$bbbb$", &data, &size));
	free(data);
	char *text = xasprintf("junk line\nh@example.org:%s\r\nh@example.org:%s\n"
			       "  # indented comment\n", h1, h2);
	write_text(text);
	free(text);
	struct userdb *db = userdb_open(path, "example.org");
	char *addr = NULL;
	TEST_ASSERT(userdb_verify(db, "h", "one", &addr) == 1);
	free(addr);
	TEST_ASSERT(userdb_verify(db, "h", "two", &addr) == 0);
	userdb_free(&db);
	free(h1);
	free(h2);
}

/* The SCRAM field: written by add and passwd, read back, old lines still fine. */
static void
test_scram_field(void)
{
	unlink(path);
	char *error = NULL;
	TEST_ASSERT(userdb_add(path, "ivy@example.org", "pw1", &error) == 0);
	char *text = read_file(path, 4096, NULL);
	TEST_ASSERT(text != NULL && strstr(text, ":scram-sha-256=4096,") != NULL);
	TEST_ASSERT(text != NULL && strchr(text, '\n') == text + strlen(text) - 1);
	free(text);

	struct userdb *db = userdb_open(path, "example.org");
	struct userdb_scram sc, want;
	TEST_ASSERT(userdb_scram_secrets(db, "ivy@example.org", &sc) == 1);
	TEST_ASSERT(sc.iterations == 4096 && sc.salt_len == 16);
	userdb_scram_derive("pw1", sc.salt, sc.salt_len, sc.iterations, &want);
	TEST_ASSERT(memcmp(sc.stored_key, want.stored_key, 32) == 0);
	TEST_ASSERT(memcmp(sc.server_key, want.server_key, 32) == 0);
	char *addr = NULL;
	TEST_ASSERT(userdb_verify(db, "ivy", "pw1", &addr) == 1);
	free(addr);

	/* passwd replaces both the hash and the secrets (with a new salt). */
	TEST_ASSERT(userdb_set_password(path, "ivy@example.org", "pw2", &error) == 0);
	struct userdb_scram sc2;
	TEST_ASSERT(userdb_scram_secrets(db, "ivy@example.org", &sc2) == 1);
	TEST_ASSERT(memcmp(sc.salt, sc2.salt, 16) != 0);
	userdb_scram_derive("pw2", sc2.salt, sc2.salt_len, sc2.iterations, &want);
	TEST_ASSERT(memcmp(sc2.stored_key, want.stored_key, 32) == 0);
	TEST_ASSERT(userdb_verify(db, "ivy", "pw2", &addr) == 1);
	free(addr);
	TEST_ASSERT(userdb_scram_secrets(db, "nobody@example.org", &sc) == 0);
	userdb_free(&db);
}

/* Secrets on hand-written lines: old, locked, junk, a future field. */
static void
test_scram_lines(void)
{
	struct userdb *db = userdb_open(path, "example.org");
	struct userdb_scram sc, want;
	userdb_scram_derive("pw2", (const unsigned char *)"0123456789abcdef", 16, 4096, &want);
	char *error = NULL, *addr = NULL, *text;
	char *k = base64_encode(want.stored_key, 32), *v = base64_encode(want.server_key, 32);
	char *salt = base64_encode(want.salt, want.salt_len);
	void *data = NULL;
	int size = 0;
	char *hash = xstrdup(crypt_ra("pw2", "$6$saltsalt$", &data, &size));
	free(data);
	text = xasprintf("old@example.org:%s\n"
			 "locked@example.org:*:scram-sha-256=4096,%s,%s,%s\n"
			 "junk@example.org:%s:scram-sha-256=4096,%s,AAAA,%s\n"
			 "zero@example.org:%s:scram-sha-256=0,%s,%s,%s\n"
			 "new@example.org:%s:future=1:scram-sha-256=4096,%s,%s,%s\n",
			 hash, salt, k, v, hash, salt, v, hash, salt, k, v, hash, salt, k, v);
	write_text(text);
	free(text);
	struct timeval tv[2];
	gettimeofday(&tv[0], NULL);
	tv[0].tv_sec += 20;
	tv[1] = tv[0];
	TEST_ASSERT(utimes(path, tv) == 0);
	TEST_ASSERT(userdb_scram_secrets(db, "old@example.org", &sc) == 0);
	TEST_ASSERT(userdb_verify(db, "old", "pw2", &addr) == 1);
	free(addr);
	TEST_ASSERT(userdb_scram_secrets(db, "locked@example.org", &sc) == 0);
	TEST_ASSERT(userdb_scram_secrets(db, "junk@example.org", &sc) == 0);
	TEST_ASSERT(userdb_verify(db, "junk", "pw2", &addr) == 1);
	free(addr);
	TEST_ASSERT(userdb_scram_secrets(db, "zero@example.org", &sc) == 0);
	TEST_ASSERT(userdb_scram_secrets(db, "new@example.org", &sc) == 1);
	TEST_ASSERT(memcmp(sc.stored_key, want.stored_key, 32) == 0);
	TEST_ASSERT(userdb_verify(db, "new", "pw2", &addr) == 1);
	free(addr);

	/* Editing keeps the other lines as they are. */
	TEST_ASSERT(userdb_delete(path, "old@example.org", &error) == 0);
	struct { char text[512]; } list = { "" };
	TEST_ASSERT(userdb_list(path, collect, &list, &error) == 0);
	TEST_ASSERT_STREQ(list.text, "locked@example.org junk@example.org zero@example.org "
				     "new@example.org ");
	TEST_ASSERT(userdb_set_password(path, "junk@example.org", "pw3", &error) == 0);
	TEST_ASSERT(userdb_scram_secrets(db, "junk@example.org", &sc) == 1);
	unlink(path);
	TEST_ASSERT(userdb_scram_secrets(db, "junk@example.org", &sc) == -1);
	userdb_free(&db);
	free(k);
	free(v);
	free(salt);
	free(hash);
}

int
main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_userdb.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/users", tmpdir);
	test_run("add and verify", test_add_verify);
	test_run("passwd, delete, list", test_passwd_delete_list);
	test_run("bad addresses refused", test_bad_addresses);
	test_run("reload on change, $6$ hashes", test_reload_and_sha512);
	test_run("canonical names", test_canonical);
	test_run("duplicates and junk lines", test_duplicates_and_junk);
	test_run("SCRAM secrets field", test_scram_field);
	test_run("SCRAM secrets on old and odd lines", test_scram_lines);
	unlink(path);
	rmdir(tmpdir);
	return test_done();
}
