#ifndef TERN_DNS_DNS_PRIVATE_H
#define TERN_DNS_DNS_PRIVATE_H

/*
 * Shared by dns.c (the c-ares channel in the libevent loop, and the life of
 * a query) and dns_route.c (what is asked, and how answers become a route).
 */
#include <ares.h>
#include <arpa/nameser.h>
#include <stdbool.h>

#include "dns/dns.h"

struct event;

/* One socket c-ares asked us to watch; slots are reused, never freed early. */
struct dns_sock {
	ares_socket_t fd; /* ARES_SOCKET_BAD: the slot is free */
	struct event *ev;
};

struct dns {
	struct event_base *base;
	ares_channel channel;
	struct event *timer;      /* c-ares' next timeout */
	struct dns_sock *socks;
	size_t nsocks;
	unsigned timeout_ms;      /* the deadline of each query */
	bool destroying;          /* in dns_free: start nothing new */
	struct dns_query *queries; /* every query not yet freed */
};

#define DNS_MAX_PER_FAMILY (DNS_MAX_ADDRS / 2)

/* A host being looked up, before it becomes a struct dns_host. */
struct dns_target {
	char *name;
	unsigned preference;
	struct sockaddr_storage v4[DNS_MAX_PER_FAMILY], v6[DNS_MAX_PER_FAMILY];
	size_t n4, n6;
	int nxdomain;    /* how many of its A/AAAA lookups said NXDOMAIN */
	int failure;     /* the ares status of a failed lookup, or ARES_SUCCESS */
};

struct dns_query {
	struct dns *d;
	struct dns_query *prev, *next; /* in d->queries */
	dns_route_fn *cb;
	void *arg;
	char *name;       /* the domain or host asked for */
	bool route;       /* dns_route (MX first), not dns_host */
	bool implicit;    /* no MX: the domain is its own mail host */
	/*
	 * c-ares lookups still out, plus one while a step is starting some:
	 * the query may be freed only at 0, since c-ares still holds it.
	 */
	int pending;
	bool finished;    /* res is decided; late answers are ignored */
	bool gone;        /* delivered or cancelled: nobody waits any more */
	struct dns_result *res;
	struct dns_target targets[DNS_MAX_HOSTS];
	size_t ntargets;
	struct event *done_ev;     /* hands res to cb from the loop */
	struct event *deadline_ev; /* d->timeout_ms after the start */
};

/* dns.c */
struct dns_query *dns_query_new(struct dns *d, const char *name, bool route,
				dns_route_fn *cb, void *arg);
/* Takes one more hold on q; dns_query_release() gives it back. */
void dns_query_hold(struct dns_query *q);
/* Gives back a hold; at 0 finishes q (dns_route_build) or frees it. */
void dns_query_release(struct dns_query *q);
/* Decides the result; cb gets it from the loop. Later calls are ignored. */
void dns_query_finish(struct dns_query *q, struct dns_result *res);
/* ares_query() with a hold on q until the answer comes. */
void dns_query_ask(struct dns_query *q, int type, size_t target,
		   void (*fn)(struct dns_query *q, size_t target, int type,
			      int status, const unsigned char *abuf, int alen));

/* dns_route.c */
struct dns_result *dns_result_new(enum dns_kind kind, const char *status,
				  char *error);
/* Every lookup of q is back: turn q's targets into its result. */
struct dns_result *dns_route_build(struct dns_query *q);
/* Starts the lookups of q; may finish it at once (a literal, a bad name). */
void dns_route_start(struct dns_query *q);

#endif
