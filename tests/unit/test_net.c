#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>

#include "core/net.h"
#include "test.h"

static struct sockaddr_storage
v4(const char *s)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, s, &sin->sin_addr);
	return ss;
}

static struct sockaddr_storage
v6(const char *s)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	sin6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, s, &sin6->sin6_addr);
	return ss;
}

static void
test_cidr_match(void)
{
	struct net_list list;
	char *bad = NULL;
	TEST_ASSERT(net_list_parse("10.0.0.0/8, 192.0.2.128/25 2001:db8::/32", &list, &bad) == 0);
	TEST_ASSERT(list.count == 3);
	struct sockaddr_storage a = v4("10.200.3.4"), b = v4("11.0.0.1"),
				c = v4("192.0.2.200"), d = v4("192.0.2.100"),
				e = v6("2001:db8:1::5"), f = v6("2001:db9::1"),
				g = v6("::ffff:10.1.1.1");
	TEST_ASSERT(net_list_match(&list, (struct sockaddr *)&a));
	TEST_ASSERT(!net_list_match(&list, (struct sockaddr *)&b));
	TEST_ASSERT(net_list_match(&list, (struct sockaddr *)&c));
	TEST_ASSERT(!net_list_match(&list, (struct sockaddr *)&d));
	TEST_ASSERT(net_list_match(&list, (struct sockaddr *)&e));
	TEST_ASSERT(!net_list_match(&list, (struct sockaddr *)&f));
	/* An IPv4-mapped IPv6 address is the IPv4 address. */
	TEST_ASSERT(net_list_match(&list, (struct sockaddr *)&g));
	net_list_free(&list);
}

static void
test_bad_networks(void)
{
	struct net_list list;
	char *bad = NULL;
	TEST_ASSERT(net_list_parse("10.0.0.0/33", &list, &bad) == -1);
	TEST_ASSERT_STREQ(bad, "10.0.0.0/33");
	free(bad);
	bad = NULL;
	TEST_ASSERT(net_list_parse("1.2.3.4 nonsense", &list, &bad) == -1);
	TEST_ASSERT_STREQ(bad, "nonsense");
	free(bad);
	bad = NULL;
	TEST_ASSERT(net_list_parse("::1/129", &list, &bad) == -1);
	free(bad);
	bad = NULL;
	TEST_ASSERT(net_list_parse("10.0.0.0/", &list, &bad) == -1);
	free(bad);
}

static void
test_loopback_and_str(void)
{
	struct sockaddr_storage a = v4("127.5.5.5"), b = v6("::1"), c = v4("192.0.2.1"),
				m = v6("::ffff:192.0.2.7");
	TEST_ASSERT(net_is_loopback((struct sockaddr *)&a));
	TEST_ASSERT(net_is_loopback((struct sockaddr *)&b));
	TEST_ASSERT(!net_is_loopback((struct sockaddr *)&c));
	char s[64];
	net_addr_str((struct sockaddr *)&m, s, sizeof(s));
	TEST_ASSERT_STREQ(s, "192.0.2.7");
	net_addr_str((struct sockaddr *)&b, s, sizeof(s));
	TEST_ASSERT_STREQ(s, "::1");
}

int
main(void)
{
	test_run("cidr_match", test_cidr_match);
	test_run("bad_networks", test_bad_networks);
	test_run("loopback_and_str", test_loopback_and_str);
	return test_done();
}
