/*
 * Unit tests of password checks on the work pool (auth/userdb_async.c)
 * and of SASL's SASL_PENDING steps over them: results, the temporary
 * failure, and a check whose session went away (abandoned: no callback,
 * nothing leaked).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "auth/sasl.h"
#include "auth/userdb.h"
#include "core/util.h"
#include "core/workpool.h"
#include "test.h"

static char tmpdir[64];
static char path[128];

/* What the callbacks saw. */
struct seen {
	int calls;
	bool ok;
	char *address;
	enum sasl_result sasl_r;
};

static void
on_check(bool ok, char *address, void *ctx)
{
	struct seen *seen = ctx;
	seen->calls++;
	seen->ok = ok;
	free(seen->address);
	seen->address = address;
}

static void
on_sasl(struct sasl *s, enum sasl_result r, void *ctx)
{
	struct seen *seen = ctx;
	seen->calls++;
	seen->sasl_r = r;
	free(seen->address);
	seen->address = sasl_user(s) != NULL ? xstrdup(sasl_user(s)) : NULL;
}

/* Runs the loop until the callback count reaches n. */
static void
loop_until(struct event_base *base, const struct seen *seen, int n)
{
	while (seen->calls < n)
		event_base_loop(base, EVLOOP_ONCE);
}

static void
test_verify_async(void)
{
	struct event_base *base = event_base_new();
	struct workpool *pool = workpool_new(base, 2);
	struct userdb *db = userdb_open(path, "example.org");
	struct seen seen = { 0 };
	struct userdb_check *check = NULL;

	TEST_ASSERT(userdb_verify_async(db, pool, "Alice", "s3cret", on_check, &seen,
					&check) == 0);
	TEST_ASSERT(check != NULL);
	loop_until(base, &seen, 1);
	TEST_ASSERT(seen.calls == 1 && seen.ok);
	TEST_ASSERT_STREQ(seen.address, "alice@example.org");

	TEST_ASSERT(userdb_verify_async(db, pool, "alice", "wrong", on_check, &seen,
					&check) == 0);
	loop_until(base, &seen, 2);
	TEST_ASSERT(seen.calls == 2 && !seen.ok && seen.address == NULL);

	/* An unknown user: a failure like a wrong password. */
	TEST_ASSERT(userdb_verify_async(db, pool, "nobody", "s3cret", on_check, &seen,
					&check) == 0);
	loop_until(base, &seen, 3);
	TEST_ASSERT(seen.calls == 3 && !seen.ok && seen.address == NULL);

	/* Several at once, answered each to its own context. */
	struct seen many[6] = { { 0 } };
	for (int i = 0; i < 6; i++)
		TEST_ASSERT(userdb_verify_async(db, pool, "alice", i % 2 ? "s3cret" : "no",
						on_check, &many[i], &check) == 0);
	for (int i = 0; i < 6; i++) {
		loop_until(base, &many[i], 1);
		TEST_ASSERT(many[i].calls == 1 && many[i].ok == (i % 2 == 1));
		free(many[i].address);
	}

	/* A users file that cannot be read: -1 at once, no callback. */
	char *moved = xasprintf("%s.moved", path);
	TEST_ASSERT(rename(path, moved) == 0);
	check = NULL;
	TEST_ASSERT(userdb_verify_async(db, pool, "alice", "s3cret", on_check, &seen,
					&check) == -1);
	TEST_ASSERT(check == NULL);
	TEST_ASSERT(rename(moved, path) == 0);
	free(moved);

	workpool_free(&pool);
	TEST_ASSERT(seen.calls == 3);
	free(seen.address);
	userdb_free(&db);
	event_base_free(base);
}

/*
 * The session closed while crypt() ran: abandoned, the check never calls
 * back and frees itself when the thread is done (LeakSanitizer watches).
 */
static void
test_abandon(void)
{
	struct event_base *base = event_base_new();
	struct workpool *pool = workpool_new(base, 2);
	struct userdb *db = userdb_open(path, "example.org");
	struct seen gone = { 0 }, other = { 0 };
	struct userdb_check *check = NULL, *check2 = NULL;

	TEST_ASSERT(userdb_verify_async(db, pool, "alice", "s3cret", on_check, &gone,
					&check) == 0);
	TEST_ASSERT(userdb_verify_async(db, pool, "alice", "s3cret", on_check, &other,
					&check2) == 0);
	userdb_check_abandon(&check);
	TEST_ASSERT(check == NULL);
	userdb_check_abandon(&check); /* twice: nothing */
	/* The pool's jobs finish in any order: wait for the one still wanted. */
	loop_until(base, &other, 1);
	TEST_ASSERT(other.ok);
	free(other.address);

	/* One abandoned with its result still queued for the loop. */
	TEST_ASSERT(userdb_verify_async(db, pool, "alice", "wrong", on_check, &gone,
					&check) == 0);
	userdb_check_abandon(&check);
	workpool_free(&pool); /* runs the remaining done callbacks */
	TEST_ASSERT(gone.calls == 0);
	userdb_free(&db);
	event_base_free(base);
}

static struct sasl *
sasl_pooled(struct userdb *db, struct workpool *pool, const char *mech, struct seen *seen)
{
	struct sasl *s = sasl_begin(db, mech);
	sasl_set_pool(s, pool, on_sasl, seen);
	return s;
}

static void
test_sasl_pending(void)
{
	struct event_base *base = event_base_new();
	struct workpool *pool = workpool_new(base, 2);
	struct userdb *db = userdb_open(path, "example.org");
	struct seen seen = { 0 };
	char *ch = NULL;
	char *plain = base64_encode("\0alice\0s3cret", 13);
	char *plain_bad = base64_encode("\0alice\0wrong", 12);

	/* PLAIN: pending, then OK with the user. */
	struct sasl *s = sasl_pooled(db, pool, "PLAIN", &seen);
	TEST_ASSERT(sasl_step(s, plain, &ch) == SASL_PENDING && ch == NULL);
	/* Nothing more is taken while the check runs. */
	TEST_ASSERT(sasl_step(s, plain, &ch) == SASL_BAD && ch == NULL);
	loop_until(base, &seen, 1);
	TEST_ASSERT(seen.sasl_r == SASL_OK);
	TEST_ASSERT_STREQ(seen.address, "alice@example.org");
	TEST_ASSERT_STREQ(sasl_user(s), "alice@example.org");
	sasl_free(&s);

	/* PLAIN with a wrong password: pending, then FAIL, no user. */
	s = sasl_pooled(db, pool, "PLAIN", &seen);
	TEST_ASSERT(sasl_step(s, plain_bad, &ch) == SASL_PENDING);
	loop_until(base, &seen, 2);
	TEST_ASSERT(seen.sasl_r == SASL_FAIL && seen.address == NULL);
	TEST_ASSERT_STREQ(sasl_login(s), "alice");
	sasl_free(&s);

	/* LOGIN: the name, then the password goes to the pool. */
	s = sasl_pooled(db, pool, "LOGIN", &seen);
	char *name = base64_encode("alice", 5), *pw = base64_encode("s3cret", 6);
	TEST_ASSERT(sasl_step(s, NULL, &ch) == SASL_CONTINUE);
	free(ch);
	TEST_ASSERT(sasl_step(s, name, &ch) == SASL_CONTINUE);
	free(ch);
	TEST_ASSERT(sasl_step(s, pw, &ch) == SASL_PENDING);
	loop_until(base, &seen, 3);
	TEST_ASSERT(seen.sasl_r == SASL_OK);
	sasl_free(&s);

	/* A malformed exchange is answered at once, as before. */
	s = sasl_pooled(db, pool, "PLAIN", &seen);
	TEST_ASSERT(sasl_step(s, "!!!", &ch) == SASL_BAD);
	sasl_free(&s);

	/* Freed while pending (the client went away): no callback, no leak. */
	struct seen gone = { 0 };
	s = sasl_pooled(db, pool, "PLAIN", &gone);
	TEST_ASSERT(sasl_step(s, plain, &ch) == SASL_PENDING);
	sasl_free(&s);
	workpool_free(&pool);
	TEST_ASSERT(gone.calls == 0 && seen.calls == 3);

	free(name);
	free(pw);
	free(plain);
	free(plain_bad);
	free(seen.address);
	userdb_free(&db);
	event_base_free(base);
}

int
main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_userdb_async.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/users", tmpdir);
	char *error = NULL;
	if (userdb_add(path, "alice@example.org", "s3cret", &error) < 0) {
		fprintf(stderr, "userdb_add: %s\n", error);
		return 1;
	}
	test_run("verify on the pool", test_verify_async);
	test_run("abandoned checks", test_abandon);
	test_run("SASL steps that wait for the pool", test_sasl_pending);
	unlink(path);
	rmdir(tmpdir);
	return test_done();
}
