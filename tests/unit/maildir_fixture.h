#ifndef TERN_TESTS_MAILDIR_FIXTURE_H
#define TERN_TESTS_MAILDIR_FIXTURE_H

/* A Maildir made by hand in a temp dir, for the index's unit tests. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "core/util.h"
#include "test.h"

static char *test_root;   /* the user's dir: INBOX */

static void
setup(void)
{
	char tmpl[] = "/tmp/tern-index-XXXXXX";
	char *d = mkdtemp(tmpl);
	TEST_ASSERT(d != NULL);
	test_root = xstrdup(d);
	static const char *const subs[] = { "cur", "new", "tmp" };
	for (size_t i = 0; i < 3; i++) {
		char *p = xasprintf("%s/%s", test_root, subs[i]);
		TEST_ASSERT(mkdir(p, 0700) == 0);
		free(p);
	}
}

static void
teardown(void)
{
	char *cmd = xasprintf("rm -rf '%s'", test_root);
	TEST_ASSERT(system(cmd) == 0);
	free(cmd);
	free(test_root);
	test_root = NULL;
}

/* Writes a message file test_root/sub/name. */
static void
put(const char *sub, const char *name, const char *body)
{
	char *p = xasprintf("%s/%s/%s", test_root, sub, name);
	FILE *f = fopen(p, "w");
	TEST_ASSERT(f != NULL);
	if (f != NULL) {
		fputs(body, f);
		fclose(f);
	}
	free(p);
}

#endif
