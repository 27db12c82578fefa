/* Unit tests of the aliases file (auth/aliases.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "auth/aliases.h"
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
	/* Push the mtime on, so a rewrite within one clock tick is seen. */
	static int bump;
	struct timeval tv[2];
	gettimeofday(&tv[0], NULL);
	tv[0].tv_sec += ++bump;
	tv[1] = tv[0];
	utimes(path, tv);
}

/* The expansion of address as one space-separated string ("" if none). */
static char *
expand(struct aliases *al, const char *address)
{
	char **list = NULL;
	size_t n = aliases_expand(al, address, &list);
	char *s = xstrdup("");
	for (size_t i = 0; i < n; i++) {
		char *t = xasprintf("%s%s%s", s, i ? " " : "", list[i]);
		free(s);
		s = t;
	}
	aliases_free_list(list, n);
	return s;
}

#define EXPECT(al, address, want)                                              \
	do {                                                                   \
		char *got_ = expand(al, address);                              \
		TEST_ASSERT_STREQ(got_, want);                                 \
		free(got_);                                                    \
	} while (0)

static struct aliases *
load(const char *text)
{
	write_text(text);
	struct aliases *al = aliases_open(path, "example.org");
	char *error = NULL;
	if (aliases_reload(al, &error) < 0) {
		fprintf(stderr, "unexpected: %s\n", error);
		free(error);
	}
	return al;
}

static void
test_simple(void)
{
	struct aliases *al = load(
		"# comment\n"
		"postmaster: admin\n"
		"\n"
		"Team@Example.org: alice, Bob@Example.org ,someone@elsewhere.net\n"
		"sales@other.org: carol\n");
	EXPECT(al, "postmaster@example.org", "admin@example.org");
	/* A bare name is that local part in every domain (the caller checks it is ours). */
	EXPECT(al, "postmaster@other.org", "admin@example.org");
	EXPECT(al, "team@example.org",
	       "alice@example.org bob@example.org someone@elsewhere.net");
	EXPECT(al, "team@other.org", "");
	EXPECT(al, "sales@other.org", "carol@example.org");
	EXPECT(al, "alice@example.org", "");
	char **list = (char **)1;
	TEST_ASSERT(aliases_expand(al, "nobody@example.org", &list) == 0 && list == NULL);
	aliases_free(&al);
	TEST_ASSERT(al == NULL);
}

static void
test_recursion(void)
{
	struct aliases *al = load(
		"all: staff, friends@example.org\n"
		"staff: alice, bob\n"
		"friends: bob, dave@elsewhere.net\n"
		"bob: bob, bob@elsewhere.org\n"
		"loop1: loop2\n"
		"loop2: loop3\n"
		"loop3: loop1, eve\n"
		"d1: d2\nd2: d3\nd3: d4\nd4: d5\nd5: d6\nd6: d7\nd7: d8\nd8: d9\nd9: d10\n"
		"postmaster: postmaster@elsewhere.org\n");
	/* Duplicates removed, self reference kept as the mailbox. */
	EXPECT(al, "all@example.org",
	       "alice@example.org bob@example.org bob@elsewhere.org dave@elsewhere.net");
	EXPECT(al, "bob@example.org", "bob@example.org bob@elsewhere.org");
	/* A loop ends at the alias met again. */
	EXPECT(al, "loop1@example.org", "loop1@example.org eve@example.org");
	/* Eight levels, then the address is taken as it is. */
	EXPECT(al, "d1@example.org", "d9@example.org");
	EXPECT(al, "d2@example.org", "d10@example.org");
	/* A bare name does not catch a foreign target. */
	EXPECT(al, "postmaster@example.org", "postmaster@elsewhere.org");
	aliases_free(&al);
}

static void
test_continuation(void)
{
	struct aliases *al = load(
		"list: a,\n"
		"  b,\n"
		"# a comment in between\n"
		"\tc\n"
		"  d@x.org\n"
		"last: z");
	EXPECT(al, "list@example.org",
	       "a@example.org b@example.org c@example.org d@x.org");
	EXPECT(al, "last@example.org", "z@example.org");
	aliases_free(&al);
}

static void
expect_error(const char *text, const char *want)
{
	write_text(text);
	struct aliases *al = aliases_open(path, "example.org");
	char *error = NULL;
	TEST_ASSERT(aliases_reload(al, &error) == -1);
	char *full = xasprintf("%s:%s", path, want);
	if (error == NULL || strncmp(error, full, strlen(full)) != 0)
		fprintf(stderr, "got '%s', want '%s...'\n", error ? error : "(null)", full);
	TEST_ASSERT(error != NULL && strncmp(error, full, strlen(full)) == 0);
	free(full);
	free(error);
	aliases_free(&al);
}

static void
test_errors(void)
{
	expect_error("a: b\nno colon here\n", "2: expected");
	expect_error("  x\n", "1: continuation");
	expect_error("a: b\n\nc:\n", "3: alias 'c' has no target");
	expect_error("a: b\nc: |/bin/prog\n", "2: '|/bin/prog': pipes");
	expect_error("a: /var/mail/a\n", "1: '/var/mail/a': pipes");
	expect_error("a: :include:/etc/list\n", "1: ':include:/etc/list': pipes");
	expect_error("a b: c\n", "1: 'a b' is not a valid");
	expect_error("a: b c\n", "1: 'b c' is not an address");
	expect_error("a@: b\n", "1: 'a@' is not a valid");
	expect_error("a: b\nx: y\nA: c\n", "3: 'a' is defined twice (first on line 1)");
	expect_error("a: b,\n  c@\n", "1: 'c@' is not an address");
}

static void
test_reload(void)
{
	struct aliases *al = load("a: b\n");
	EXPECT(al, "a@example.org", "b@example.org");
	write_text("a: c\n");
	EXPECT(al, "a@example.org", "c@example.org");
	/* A broken edit keeps the last good table. */
	write_text("a: c\nbroken\n");
	EXPECT(al, "a@example.org", "c@example.org");
	char *error = NULL;
	TEST_ASSERT(aliases_reload(al, &error) == -1);
	TEST_ASSERT(error != NULL && strstr(error, ":2: ") != NULL);
	free(error);
	write_text("a: d\n");
	TEST_ASSERT(aliases_reload(al, &error) == 0);
	EXPECT(al, "a@example.org", "d@example.org");
	aliases_free(&al);
	char **list;
	TEST_ASSERT(aliases_expand(NULL, "a@example.org", &list) == 0 && list == NULL);
}

int
main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_aliases.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/aliases", tmpdir);
	test_run("simple aliases", test_simple);
	test_run("recursion, loops, self reference", test_recursion);
	test_run("continuation lines", test_continuation);
	test_run("errors name the line", test_errors);
	test_run("reload on change", test_reload);
	unlink(path);
	rmdir(tmpdir);
	return test_done();
}
