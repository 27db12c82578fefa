#include <arpa/inet.h>
#include <netinet/in.h>

#include "auth/authguard.h"
#include "core/config.h"
#include "test.h"

static struct sockaddr_in
addr(const char *s)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	inet_pton(AF_INET, s, &sin.sin_addr);
	return sin;
}

static void
test_delay_doubles_then_blocks(void)
{
	struct config cfg = { .auth_fail_delay_ms = 100, .auth_block_after = 4,
			      .auth_block_seconds = 600 };
	struct authguard *g = authguard_new();
	struct sockaddr_in a = addr("192.0.2.1"), b = addr("192.0.2.2");
	const struct sockaddr *sa = (struct sockaddr *)&a, *sb = (struct sockaddr *)&b;
	TEST_ASSERT(!authguard_blocked(g, &cfg, sa, "alice@example.org"));
	TEST_ASSERT(authguard_failed(g, &cfg, NULL, sa, "alice@example.org", "pop3", "T1") == 100);
	TEST_ASSERT(authguard_failed(g, &cfg, NULL, sa, "bob@example.org", "pop3", "T1") == 200);
	TEST_ASSERT(authguard_failed(g, &cfg, NULL, sa, "carol@example.org", "smtp", "T1") == 400);
	TEST_ASSERT(!authguard_blocked(g, &cfg, sa, NULL));
	TEST_ASSERT(authguard_failed(g, &cfg, NULL, sa, "dave@example.org", "imap", "T1") == 800);
	/* The fourth failure from the address blocks it, for every user. */
	TEST_ASSERT(authguard_blocked(g, &cfg, sa, "erin@example.org"));
	TEST_ASSERT(authguard_blocked(g, &cfg, sa, NULL));
	/* Another address is not blocked, nor are the users tried once. */
	TEST_ASSERT(!authguard_blocked(g, &cfg, sb, "alice@example.org"));
	authguard_free(&g);
	TEST_ASSERT(g == NULL);
}

static void
test_user_counted_across_addresses(void)
{
	struct config cfg = { .auth_fail_delay_ms = 10, .auth_block_after = 3,
			      .auth_block_seconds = 600 };
	struct authguard *g = authguard_new();
	char ip[32];
	for (int i = 1; i <= 3; i++) {
		snprintf(ip, sizeof(ip), "198.51.100.%d", i);
		struct sockaddr_in a = addr(ip);
		authguard_failed(g, &cfg, NULL, (struct sockaddr *)&a, "alice@example.org", "smtp", "T");
	}
	struct sockaddr_in fresh = addr("203.0.113.9");
	/* A distributed guess at one user blocks the user, from anywhere. */
	TEST_ASSERT(authguard_blocked(g, &cfg, (struct sockaddr *)&fresh, "alice@example.org"));
	TEST_ASSERT(!authguard_blocked(g, &cfg, (struct sockaddr *)&fresh, "bob@example.org"));
	authguard_free(&g);
}

static void
test_success_clears_user(void)
{
	struct config cfg = { .auth_fail_delay_ms = 10, .auth_block_after = 5,
			      .auth_block_seconds = 600 };
	struct authguard *g = authguard_new();
	struct sockaddr_in a = addr("192.0.2.7");
	const struct sockaddr *sa = (struct sockaddr *)&a;
	authguard_failed(g, &cfg, NULL, sa, "alice@example.org", "pop3", "T");
	authguard_failed(g, &cfg, NULL, sa, "alice@example.org", "pop3", "T");
	authguard_succeeded(g, sa, "alice@example.org");
	/* The user's count starts over; the address keeps its two. */
	TEST_ASSERT(authguard_failed(g, &cfg, NULL, sa, "alice@example.org", "pop3", "T") == 40);
	authguard_free(&g);
}

int
main(void)
{
	test_run("delay_doubles_then_blocks", test_delay_doubles_then_blocks);
	test_run("user_counted_across_addresses", test_user_counted_across_addresses);
	test_run("success_clears_user", test_success_clears_user);
	return test_done();
}
