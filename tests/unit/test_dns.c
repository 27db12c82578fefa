/*
 * Unit tests of dns/ against a real resolver: a dnsmasq on 127.0.0.1 with
 * a free port and fixed records under tern.test, killed at the end, or by
 * its guard process should this test die first.
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/config.h"
#include "core/util.h"
#include "dns/dns.h"
#include "test.h"

static struct event_base *base;
static char servers[64];

/* ---- dnsmasq ------------------------------------------------------------ */

static const char *const records[] = {
	"--local=/tern.test/", /* anything else under tern.test: NXDOMAIN */
	/* mx: 5 (no such host, skipped), 10, 20 twice, 30 */
	"--mx-host=mx.tern.test,gone.tern.test,5",
	"--mx-host=mx.tern.test,mx1.tern.test,10",
	"--mx-host=mx.tern.test,mx2.tern.test,20",
	"--mx-host=mx.tern.test,mx3.tern.test,20",
	"--mx-host=mx.tern.test,mx4.tern.test,30",
	"--host-record=mx1.tern.test,192.0.2.1,2001:db8::1",
	"--host-record=mx2.tern.test,192.0.2.2",
	"--host-record=mx3.tern.test,2001:db8::3",
	"--host-record=mx4.tern.test,192.0.2.4",
	/* no MX, addresses: an implicit MX */
	"--host-record=implicit.tern.test,192.0.2.10,2001:db8::10",
	/* no MX and no address */
	"--txt-record=txtonly.tern.test,nothing here",
	/* RFC 7505 null MX: preference 0, target the root (one zero byte);
	 * the A record beside it must not be used. */
	"--dns-rr=null.tern.test,15,000000",
	"--host-record=null.tern.test,192.0.2.99",
	/* MX hosts, none with an address */
	"--mx-host=noaddr.tern.test,gone.tern.test,10",
	"--mx-host=noaddr.tern.test,txtonly.tern.test,20",
};

/*
 * dnsmasq runs under a guard process of ours that kills it as soon as the
 * pipe from this process reads EOF: when dnsmasq_stop() closes it, or when
 * this test dies in any way. (PR_SET_PDEATHSIG alone does not hold:
 * dnsmasq clears it when it sets its credentials.)
 */
static pid_t guard_pid = -1;
static int guard_fd = -1;

static void
dnsmasq_stop(void)
{
	if (guard_pid <= 0)
		return;
	close(guard_fd);
	waitpid(guard_pid, NULL, 0);
	guard_pid = -1;
}

static void __attribute__((noreturn))
guard_run(int fd, char **argv)
{
	pid_t pid = fork();
	if (pid == 0) {
		close(fd);
		execv(argv[0], argv);
		perror(argv[0]);
		_exit(127);
	}
	struct pollfd p = { .fd = fd, .events = POLLIN };
	while (pid > 0 && waitpid(pid, NULL, WNOHANG) == 0) {
		/* Data never comes: readable means EOF, the test is done. */
		if (poll(&p, 1, 100) == 1) {
			kill(pid, SIGTERM);
			waitpid(pid, NULL, 0);
			_exit(0);
		}
	}
	_exit(1); /* dnsmasq could not start, or died */
}

/* A port free for UDP and TCP on 127.0.0.1 right now. */
static int
free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(sin);
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	if (u < 0 || bind(u, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(u, (struct sockaddr *)&sin, &len) < 0)
		abort();
	int t = socket(AF_INET, SOCK_STREAM, 0);
	int ok = bind(t, (struct sockaddr *)&sin, sizeof(sin));
	close(t);
	close(u);
	return ok == 0 ? ntohs(sin.sin_port) : free_port();
}

static bool
port_listening(int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	bool ok = connect(s, (struct sockaddr *)&sin, sizeof(sin)) == 0;
	close(s);
	return ok;
}

static bool
dnsmasq_start(void)
{
	int port = free_port();
	char *argv[64];
	size_t n = 0;
	argv[n++] = "/usr/sbin/dnsmasq";
	argv[n++] = "--conf-file=/dev/null";
	argv[n++] = "--keep-in-foreground";
	argv[n++] = "--no-resolv";
	argv[n++] = "--no-hosts";
	argv[n++] = "--bind-interfaces";
	argv[n++] = "--listen-address=127.0.0.1";
	argv[n++] = "--pid-file=";
	char port_arg[32];
	snprintf(port_arg, sizeof(port_arg), "--port=%d", port);
	argv[n++] = port_arg;
	if (geteuid() == 0)
		argv[n++] = "--user=root"; /* no need to become nobody */
	for (size_t i = 0; i < sizeof(records) / sizeof(records[0]); i++)
		argv[n++] = (char *)records[i];
	argv[n] = NULL;
	int fds[2];
	if (pipe(fds) < 0)
		return false;
	guard_pid = fork();
	if (guard_pid < 0)
		return false;
	if (guard_pid == 0) {
		close(fds[1]);
		guard_run(fds[0], argv);
	}
	close(fds[0]);
	guard_fd = fds[1];
	atexit(dnsmasq_stop);
	/* Ready once it accepts TCP on its port (it binds UDP first). */
	for (int i = 0; i < 3000; i++) {
		if (waitpid(guard_pid, NULL, WNOHANG) != 0) {
			guard_pid = -1;
			return false;
		}
		if (port_listening(port)) {
			snprintf(servers, sizeof(servers), "127.0.0.1:%d", port);
			return true;
		}
		usleep(10000);
	}
	return false;
}

/* ---- running lookups ---------------------------------------------------- */

static struct dns_result *got;
static int calls;

static void
on_result(struct dns_result *res, void *arg)
{
	(void)arg;
	calls++;
	dns_result_free(&got);
	got = res;
	event_base_loopbreak(base);
}

static void
on_guard(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	/* Only against a hang: the test then fails on the missing result. */
	fprintf(stderr, "no answer: loop stopped\n");
	event_base_loopbreak(base);
}

static void
run_loop(void)
{
	struct timeval tv = { 60, 0 };
	struct event *guard = evtimer_new(base, on_guard, NULL);
	evtimer_add(guard, &tv);
	event_base_dispatch(base);
	event_free(guard);
}

/* The result as one line: "kind status error" or "ok|host pref addr...|...". */
static char *
fmt(const struct dns_result *res)
{
	if (res == NULL)
		return xstrdup("(none)");
	if (res->kind != DNS_OK)
		return xasprintf("%s %s %s", res->kind == DNS_TEMPORARY ? "temp" : "perm",
				 res->status, res->error);
	char *s = xstrdup("ok");
	for (size_t i = 0; i < res->nhosts; i++) {
		const struct dns_host *h = &res->hosts[i];
		char *t = xasprintf("%s|%s %u", s, h->name, h->preference);
		free(s);
		s = t;
		for (size_t k = 0; k < h->naddrs; k++) {
			char a[INET6_ADDRSTRLEN] = "?";
			const struct sockaddr_storage *ss = &h->addrs[k];
			in_port_t port;
			if (ss->ss_family == AF_INET) {
				const struct sockaddr_in *sin = (const void *)ss;
				inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a));
				port = sin->sin_port;
			} else {
				const struct sockaddr_in6 *sin6 = (const void *)ss;
				inet_ntop(AF_INET6, &sin6->sin6_addr, a, sizeof(a));
				port = sin6->sin6_port;
			}
			t = xasprintf("%s %s%s", s, a, port != 0 ? ":port!" : "");
			free(s);
			s = t;
		}
	}
	return s;
}

/* Runs one lookup to its end and returns its result as by fmt(). */
static char *
lookup(struct dns *d, const char *name, bool route)
{
	calls = 0;
	dns_result_free(&got);
	if (route)
		dns_route(d, name, on_result, NULL);
	else
		dns_host(d, name, on_result, NULL);
	run_loop();
	TEST_ASSERT(calls == 1);
	char *s = fmt(got);
	dns_result_free(&got);
	return s;
}

static void
expect(struct dns *d, const char *name, bool route, const char *want)
{
	char *s = lookup(d, name, route);
	TEST_ASSERT_STREQ(s, want);
	free(s);
}

static void
expect_either(struct dns *d, const char *name, bool route, const char *want1,
	      const char *want2)
{
	char *s = lookup(d, name, route);
	if (strcmp(s, want2) != 0)
		TEST_ASSERT_STREQ(s, want1);
	free(s);
}

static struct dns *
dns_open(const char *list)
{
	char *error = NULL;
	struct dns *d = dns_new(base, list, &error);
	TEST_ASSERT(d != NULL);
	if (d == NULL) {
		fprintf(stderr, "dns_new: %s\n", error);
		free(error);
	}
	return d;
}

/* ---- tests -------------------------------------------------------------- */

static const char mx_a[] = "ok|mx1.tern.test 10 192.0.2.1 2001:db8::1"
			   "|mx2.tern.test 20 192.0.2.2|mx3.tern.test 20 2001:db8::3"
			   "|mx4.tern.test 30 192.0.2.4";
static const char mx_b[] = "ok|mx1.tern.test 10 192.0.2.1 2001:db8::1"
			   "|mx3.tern.test 20 2001:db8::3|mx2.tern.test 20 192.0.2.2"
			   "|mx4.tern.test 30 192.0.2.4";

static void
test_mx_order(void)
{
	struct dns *d = dns_open(servers);
	if (d == NULL)
		return;
	/* By preference; gone.tern.test (5) has no address and is skipped.
	 * mx2 and mx3 share 20: both orders must turn up (RFC 5321 §5.1);
	 * 64 runs miss one with a chance of 2^-63. */
	int a = 0, b = 0;
	for (int i = 0; i < 64; i++) {
		char *s = lookup(d, "mx.tern.test", true);
		if (strcmp(s, mx_a) == 0)
			a++;
		else if (strcmp(s, mx_b) == 0)
			b++;
		else
			TEST_ASSERT_STREQ(s, mx_a);
		free(s);
	}
	TEST_ASSERT(a > 0 && b > 0 && a + b == 64);
	/* A final dot changes nothing but the names asked. */
	char *s = lookup(d, "mx.tern.test.", true);
	TEST_ASSERT(strcmp(s, mx_a) == 0 || strcmp(s, mx_b) == 0);
	free(s);
	dns_free(&d);
	TEST_ASSERT(d == NULL);
}

static void
test_route_results(void)
{
	struct dns *d = dns_open(servers);
	if (d == NULL)
		return;
	expect(d, "implicit.tern.test", true,
	       "ok|implicit.tern.test 0 192.0.2.10 2001:db8::10");
	expect(d, "null.tern.test", true,
	       "perm 5.1.10 null.tern.test: domain accepts no mail (null MX)");
	expect(d, "nx.tern.test", true, "perm 5.1.2 nx.tern.test: no such domain");
	expect(d, "noaddr.tern.test", true,
	       "temp 4.4.4 noaddr.tern.test: no MX host has an address");
	expect(d, "txtonly.tern.test", true,
	       "temp 4.4.4 txtonly.tern.test: host has no address");
	/* Outside tern.test dnsmasq has no upstream and refuses. */
	expect(d, "example.org", true,
	       "temp 4.4.3 example.org: MX lookup failed: Could not contact DNS servers");
	dns_free(&d);
}

static void
test_literals(void)
{
	/* No server at all: none of these may need one. */
	struct dns *d = dns_open("127.0.0.1:1");
	if (d == NULL)
		return;
	expect(d, "[192.0.2.7]", true, "ok|[192.0.2.7] 0 192.0.2.7");
	expect(d, "[IPv6:2001:db8::7]", true, "ok|[IPv6:2001:db8::7] 0 2001:db8::7");
	expect(d, "[ipv6:2001:DB8::8]", true, "ok|[ipv6:2001:DB8::8] 0 2001:db8::8");
	expect(d, "[300.1.1.1]", true,
	       "perm 5.1.2 [300.1.1.1]: not a valid address literal");
	expect(d, "[2001:db8::7]", true,
	       "perm 5.1.2 [2001:db8::7]: not a valid address literal");
	expect(d, "[192.0.2.7", true, "perm 5.1.2 [192.0.2.7: not a valid address literal");
	expect(d, "bad..tern.test", true,
	       "perm 5.1.2 bad..tern.test: not a valid domain name");
	expect(d, "bad name.test", true,
	       "perm 5.1.2 bad name.test: not a valid domain name");
	expect(d, "", true, "perm 5.1.2 : not a valid domain name");
	char long_label[80];
	memset(long_label, 'a', 64);
	strcpy(long_label + 64, ".test");
	char *want = xasprintf("perm 5.1.2 %s: not a valid domain name", long_label);
	expect(d, long_label, true, want);
	free(want);
	char *huge = xmalloc(1001);
	memset(huge, 'b', 1000);
	huge[1000] = '\0';
	want = xasprintf("perm 5.1.2 %.255s: not a valid domain name", huge);
	expect(d, huge, true, want);
	free(want);
	free(huge);
	expect(d, "192.0.2.8", false, "ok|192.0.2.8 0 192.0.2.8");
	expect(d, "2001:db8::8", false, "ok|2001:db8::8 0 2001:db8::8");
	expect(d, "[192.0.2.9]", false, "ok|[192.0.2.9] 0 192.0.2.9");
	dns_free(&d);
}

static void
test_host(void)
{
	struct dns *d = dns_open(servers);
	if (d == NULL)
		return;
	expect(d, "mx1.tern.test", false, "ok|mx1.tern.test 0 192.0.2.1 2001:db8::1");
	expect(d, "mx3.tern.test", false, "ok|mx3.tern.test 0 2001:db8::3");
	/* dns_host asks for addresses only, never for MX. */
	expect(d, "null.tern.test", false, "ok|null.tern.test 0 192.0.2.99");
	expect(d, "gone.tern.test", false, "perm 5.1.2 gone.tern.test: no such host");
	expect(d, "txtonly.tern.test", false,
	       "temp 4.4.4 txtonly.tern.test: host has no address");
	dns_free(&d);
}

static void
test_no_server(void)
{
	/* A port where nothing listens: refused at once. */
	char list[64];
	snprintf(list, sizeof(list), "127.0.0.1:%d", free_port());
	struct dns *d = dns_open(list);
	if (d == NULL)
		return;
	/* Whether a lookup meets the ICMP error or, once c-ares has dropped
	 * the socket for it, a retry's timeout is c-ares' business (A and
	 * AAAA go out together), so either text is right. */
	expect_either(d, "mx.tern.test", true,
		      "temp 4.4.3 mx.tern.test: MX lookup failed: "
		      "Could not contact DNS servers",
		      "temp 4.4.3 mx.tern.test: MX lookup failed: "
		      "Timeout while contacting DNS servers");
	expect_either(d, "mx1.tern.test", false,
		      "temp 4.4.3 mx1.tern.test: address lookup failed: "
		      "Could not contact DNS servers",
		      "temp 4.4.3 mx1.tern.test: address lookup failed: "
		      "Timeout while contacting DNS servers");
	dns_free(&d);

	/* A server that takes the query and never answers: our deadline. */
	struct sockaddr_in sin = { .sin_family = AF_INET };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(sin);
	int silent = socket(AF_INET, SOCK_DGRAM, 0);
	TEST_ASSERT(bind(silent, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	TEST_ASSERT(getsockname(silent, (struct sockaddr *)&sin, &len) == 0);
	snprintf(list, sizeof(list), "127.0.0.1:%d", ntohs(sin.sin_port));
	d = dns_open(list);
	if (d != NULL) {
		dns_set_timeout(d, 200);
		expect(d, "mx.tern.test", true,
		       "temp 4.4.3 mx.tern.test: DNS lookup timed out");
		expect(d, "mx1.tern.test", false,
		       "temp 4.4.3 mx1.tern.test: DNS lookup timed out");
		/* Freed with c-ares' queries still out: nothing leaks. */
		dns_free(&d);
	}
	close(silent);
}

/* A server in this loop that answers every query with SERVFAIL. */
static void
on_servfail_query(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	(void)arg;
	unsigned char pkt[512];
	struct sockaddr_storage from;
	socklen_t len = sizeof(from);
	ssize_t n = recvfrom(fd, pkt, sizeof(pkt), 0, (struct sockaddr *)&from, &len);
	if (n < 12)
		return;
	pkt[2] |= 0x80;   /* QR: a response, the question echoed */
	pkt[3] = 0x80 | 2; /* RA, RCODE 2: SERVFAIL */
	sendto(fd, pkt, (size_t)n, 0, (struct sockaddr *)&from, len);
}

static void
test_servfail(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	TEST_ASSERT(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	TEST_ASSERT(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
	struct event *ev = event_new(base, fd, EV_READ | EV_PERSIST, on_servfail_query, NULL);
	event_add(ev, NULL);
	char list[64];
	snprintf(list, sizeof(list), "127.0.0.1:%d", ntohs(sin.sin_port));
	struct dns *d = dns_open(list);
	if (d != NULL) {
		/* c-ares 1.18 tries each server again on SERVFAIL and then
		 * reports ARES_ECONNREFUSED, whose text this is. */
		expect(d, "mx.tern.test", true, "temp 4.4.3 mx.tern.test: MX lookup "
		       "failed: Could not contact DNS servers");
		expect(d, "mx1.tern.test", false, "temp 4.4.3 mx1.tern.test: address "
		       "lookup failed: Could not contact DNS servers");
		dns_free(&d);
	}
	event_free(ev);
	close(fd);
}

static int never_calls;

static void
on_never(struct dns_result *res, void *arg)
{
	(void)arg;
	never_calls++;
	dns_result_free(&res);
}

static struct dns *freed_in_cb;

static void
on_free_dns(struct dns_result *res, void *arg)
{
	(void)arg;
	calls++;
	dns_result_free(&res);
	/* Documented as allowed: free the resolver from its own callback. */
	dns_free(&freed_in_cb);
	event_base_loopbreak(base);
}

static void
test_cancel_and_free(void)
{
	struct dns *d = dns_open(servers);
	if (d == NULL)
		return;
	never_calls = 0;
	/* Cancelled before the answer, and a literal cancelled before its
	 * (immediate) answer is handed over. */
	struct dns_query *q = dns_route(d, "mx.tern.test", on_never, NULL);
	dns_query_cancel(&q);
	TEST_ASSERT(q == NULL);
	q = dns_route(d, "[192.0.2.1]", on_never, NULL);
	dns_query_cancel(&q);
	/* These answers come after the cancelled ones were. */
	expect(d, "mx1.tern.test", false, "ok|mx1.tern.test 0 192.0.2.1 2001:db8::1");
	expect(d, "implicit.tern.test", true,
	       "ok|implicit.tern.test 0 192.0.2.10 2001:db8::10");
	/* Freed with lookups out: their callbacks are not called. */
	dns_route(d, "mx.tern.test", on_never, NULL);
	dns_host(d, "mx4.tern.test", on_never, NULL);
	dns_route(d, "[192.0.2.1]", on_never, NULL);
	dns_free(&d);
	TEST_ASSERT(never_calls == 0);

	/* A callback that frees the resolver, with another lookup still out. */
	freed_in_cb = dns_open(servers);
	if (freed_in_cb == NULL)
		return;
	calls = 0;
	dns_route(freed_in_cb, "[192.0.2.1]", on_free_dns, NULL);
	dns_route(freed_in_cb, "mx.tern.test", on_never, NULL);
	run_loop();
	TEST_ASSERT(calls == 1);
	TEST_ASSERT(freed_in_cb == NULL);
	TEST_ASSERT(never_calls == 0);
}

static void
test_bad_servers(void)
{
	char *error = NULL;
	struct dns *d = dns_new(base, "not-an-address:53", &error);
	TEST_ASSERT(d == NULL);
	TEST_ASSERT_STREQ(error, "bad DNS server list 'not-an-address:53': "
				 "Misformatted string");
	free(error);
	/* "" is the system's resolver, as NULL is. */
	d = dns_open("");
	dns_free(&d);
}

static void
test_config_key(void)
{
	char dir[] = "/tmp/test_dns.XXXXXX";
	TEST_ASSERT(mkdtemp(dir) != NULL);
	char *path = xasprintf("%s/tern.conf", dir);
	FILE *f = fopen(path, "w");
	fputs("domains = example.org\ndata_dir = var\nusers_file = users\n", f);
	fclose(f);
	char *error = NULL;
	struct config *cfg = config_load(path, &error);
	TEST_ASSERT(cfg != NULL && cfg->dns_servers == NULL);
	config_free(&cfg);
	f = fopen(path, "a");
	fputs("dns_servers = 127.0.0.1:5353,[::1]:53\n", f);
	fclose(f);
	cfg = config_load(path, &error);
	TEST_ASSERT(cfg != NULL);
	if (cfg != NULL)
		TEST_ASSERT_STREQ(cfg->dns_servers, "127.0.0.1:5353,[::1]:53");
	config_free(&cfg);
	unlink(path);
	rmdir(dir);
	free(path);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	test_run("literals", test_literals);
	test_run("bad_servers", test_bad_servers);
	test_run("config_key", test_config_key);
	test_run("servfail", test_servfail);
	if (!dnsmasq_start()) {
		fprintf(stderr, "cannot start /usr/sbin/dnsmasq (scripts/deps.sh installs it)\n");
		test_failed++;
		event_base_free(base);
		return test_done();
	}
	test_run("mx_order", test_mx_order);
	test_run("route_results", test_route_results);
	test_run("host", test_host);
	test_run("no_server", test_no_server);
	test_run("cancel_and_free", test_cancel_and_free);
	dnsmasq_stop();
	event_base_free(base);
	return test_done();
}
