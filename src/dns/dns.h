#ifndef TERN_DNS_DNS_H
#define TERN_DNS_DNS_H

/*
 * Asynchronous DNS for relaying mail: where to deliver a domain's mail
 * (RFC 5321 §5.1, RFC 7505), and the addresses of one host. c-ares runs
 * inside the caller's libevent loop: no threads, nothing blocks.
 *
 * Every answer comes through the callback, always from the event loop and
 * never from inside a dns_* call, so a callback may start new lookups,
 * cancel others or even free the struct dns.
 */
#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct dns;
struct dns_query;

/* Bounds on what one answer may hold; the rest is dropped. */
#define DNS_MAX_HOSTS 16
#define DNS_MAX_ADDRS 8   /* per host: at most half of it per family */

enum dns_kind {
	DNS_OK,        /* hosts[] holds at least one host with an address */
	DNS_TEMPORARY, /* try again later: timeout, SERVFAIL, no addresses */
	DNS_PERMANENT, /* give up: NXDOMAIN, null MX, bad name or literal */
};

struct dns_host {
	char *name;          /* the MX target, the domain itself, or the literal */
	unsigned preference; /* 0 for an implicit MX, a literal or dns_host() */
	/* IPv4 first, then IPv6, each in the order of the answer; port 0. */
	struct sockaddr_storage addrs[DNS_MAX_ADDRS];
	size_t naddrs;
};

struct dns_result {
	enum dns_kind kind;
	/*
	 * When not DNS_OK: the enhanced status code (RFC 3463) a bounce or
	 * deferral should carry — "5.1.2" (no such domain or host, a bad name
	 * or literal), "5.1.10" (null MX, to be answered with 556, RFC 7505
	 * §4.1), "4.4.3" (resolver failure or timeout), "4.4.4" (no host has an
	 * address) — and a one-line text naming the domain, for logs and DSNs,
	 * such as "example.org: no such domain". Both NULL when DNS_OK.
	 */
	const char *status;
	char *error;
	/* Best first: by MX preference, equal preferences in random order. */
	struct dns_host *hosts;
	size_t nhosts;
};

/*
 * The result belongs to the callback, which frees it with dns_result_free()
 * (it may keep it while it tries the hosts one after another).
 */
typedef void dns_route_fn(struct dns_result *res, void *arg);

/*
 * servers: NULL or "" for the system's resolv.conf, or a list such as
 * "127.0.0.1:5353,[::1]:53" (port 53 when none is given). Returns NULL with
 * *error_r set (free it) when c-ares cannot start or the list is bad.
 */
struct dns *dns_new(struct event_base *base, const char *servers, char **error_r);
/*
 * Cancels every pending lookup WITHOUT calling its callback (the callers
 * are usually being torn down too), then frees everything; *d becomes NULL.
 */
void dns_free(struct dns **d);
/*
 * The longest a lookup may take in total, in milliseconds (default 30000);
 * past it, the callback gets DNS_TEMPORARY "4.4.3 ... timed out". Applies
 * to lookups started afterwards.
 */
void dns_set_timeout(struct dns *d, unsigned timeout_ms);

/*
 * The hosts to try for mail to `domain` (RFC 5321 §5.1): its MX hosts by
 * preference, each with its A and AAAA addresses; hosts without addresses
 * are skipped. No MX: the domain itself (implicit MX). A null MX (RFC 7505)
 * and NXDOMAIN are permanent failures. "[192.0.2.1]" and
 * "[IPv6:2001:db8::1]" (RFC 5321 §4.1.3) are answered without DNS.
 * Returns a handle for dns_query_cancel(), valid until the callback runs.
 * The caller must drop hosts that are ourselves (RFC 5321 §5.1, last
 * paragraph): this module does not know our names.
 */
struct dns_query *dns_route(struct dns *d, const char *domain, dns_route_fn *cb,
			    void *arg);
/*
 * The A and AAAA addresses of one host (a smarthost, a transport map
 * entry), as a result with one host of preference 0. An IP address, bare
 * or as a literal in brackets, is answered without DNS.
 */
struct dns_query *dns_host(struct dns *d, const char *host, dns_route_fn *cb,
			   void *arg);
/* The callback of q will not be called; *q becomes NULL. */
void dns_query_cancel(struct dns_query **q);

void dns_result_free(struct dns_result **res);

#endif
