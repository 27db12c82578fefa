/*
 * The c-ares channel inside the libevent loop, and the life of a query.
 *
 * c-ares tells us through the socket-state callback which sockets to
 * watch; each readiness event and the timer (set from ares_timeout after
 * every call into c-ares) drive ares_process_fd. Nothing blocks and no
 * thread is started.
 *
 * A query is held by the c-ares lookups it has out (q->pending). Its result
 * is handed to the caller's callback from an event of its own, never from
 * inside c-ares or a dns_* call; after that, or after a cancel, it lives on
 * only until c-ares has given back its last lookup.
 */
#include "dns/dns_private.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define DNS_DEFAULT_TIMEOUT_MS 30000
/* c-ares' own retries: 3 s, doubled on each of 3 tries, fit in the above. */
#define DNS_TRY_TIMEOUT_MS 3000
#define DNS_TRIES 3

static void
dns_update_timer(struct dns *d)
{
	struct timeval tv;
	if (ares_timeout(d->channel, NULL, &tv) != NULL)
		evtimer_add(d->timer, &tv);
	else
		evtimer_del(d->timer);
}

static void
dns_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;
	(void)fd;
	(void)what;
	ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_update_timer(d);
}

static void
dns_on_sock(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;
	ares_process_fd(d->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
			(what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_update_timer(d);
}

/*
 * c-ares opens, watches and closes its sockets through this. A slot is
 * only ever emptied (event_del), not freed, because this may run from the
 * very event being changed.
 */
static void
dns_sock_state(void *arg, ares_socket_t fd, int readable, int writable)
{
	struct dns *d = arg;
	struct dns_sock *slot = NULL, *unused = NULL;
	for (size_t i = 0; i < d->nsocks; i++) {
		if (d->socks[i].fd == fd)
			slot = &d->socks[i];
		else if (d->socks[i].fd == ARES_SOCKET_BAD && unused == NULL)
			unused = &d->socks[i];
	}
	if (slot == NULL && !readable && !writable)
		return;
	if (slot == NULL)
		slot = unused;
	if (slot == NULL) {
		d->socks = xrealloc(d->socks, (d->nsocks + 1) * sizeof(*d->socks));
		slot = &d->socks[d->nsocks++];
		slot->ev = NULL;
	}
	if (slot->ev != NULL)
		event_del(slot->ev);
	if (!readable && !writable) {
		slot->fd = ARES_SOCKET_BAD;
		return;
	}
	slot->fd = fd;
	short what = EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
	if (slot->ev == NULL)
		slot->ev = event_new(d->base, fd, what, dns_on_sock, d);
	else
		event_assign(slot->ev, d->base, fd, what, dns_on_sock, d);
	if (slot->ev == NULL)
		abort();
	event_add(slot->ev, NULL);
}

struct dns *
dns_new(struct event_base *base, const char *servers, char **error_r)
{
	int rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc != ARES_SUCCESS) {
		*error_r = xasprintf("c-ares: %s", ares_strerror(rc));
		return NULL;
	}
	struct dns *d = xcalloc(1, sizeof(*d));
	d->base = base;
	d->timeout_ms = DNS_DEFAULT_TIMEOUT_MS;
	struct ares_options opts = { 0 };
	opts.sock_state_cb = dns_sock_state;
	opts.sock_state_cb_data = d;
	opts.timeout = DNS_TRY_TIMEOUT_MS;
	opts.tries = DNS_TRIES;
	rc = ares_init_options(&d->channel, &opts,
			       ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS) {
		*error_r = xasprintf("c-ares: %s", ares_strerror(rc));
		free(d);
		ares_library_cleanup();
		return NULL;
	}
	d->timer = evtimer_new(base, dns_on_timer, d);
	if (d->timer == NULL)
		abort();
	if (servers != NULL && servers[0] != '\0') {
		rc = ares_set_servers_ports_csv(d->channel, servers);
		if (rc != ARES_SUCCESS) {
			*error_r = xasprintf("bad DNS server list '%s': %s", servers,
					     ares_strerror(rc));
			dns_free(&d);
			return NULL;
		}
	}
	return d;
}

void
dns_set_timeout(struct dns *d, unsigned timeout_ms)
{
	d->timeout_ms = timeout_ms;
}

static void
dns_query_free(struct dns_query *q)
{
	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		q->d->queries = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	for (size_t i = 0; i < q->ntargets; i++)
		free(q->targets[i].name);
	dns_result_free(&q->res);
	event_free(q->done_ev);
	event_free(q->deadline_ev);
	free(q->name);
	free(q);
}

static void
dns_query_maybe_free(struct dns_query *q)
{
	if (q->gone && q->pending == 0)
		dns_query_free(q);
}

/* The result goes to the callback from here, outside any dns_* call. */
static void
dns_on_done(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;
	(void)fd;
	(void)what;
	dns_route_fn *cb = q->cb;
	void *cb_arg = q->arg;
	struct dns_result *res = q->res;
	q->res = NULL;
	q->gone = true;
	/* Freed first: the callback may well free the struct dns itself. */
	dns_query_maybe_free(q);
	cb(res, cb_arg);
}

static void
dns_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;
	(void)fd;
	(void)what;
	dns_query_finish(q, dns_result_new(DNS_TEMPORARY, "4.4.3",
		xasprintf("%s: DNS lookup timed out", q->name)));
}

struct dns_query *
dns_query_new(struct dns *d, const char *name, bool route, dns_route_fn *cb,
	      void *arg)
{
	struct dns_query *q = xcalloc(1, sizeof(*q));
	q->d = d;
	q->name = xstrdup(name);
	q->route = route;
	q->cb = cb;
	q->arg = arg;
	q->done_ev = event_new(d->base, -1, 0, dns_on_done, q);
	q->deadline_ev = evtimer_new(d->base, dns_on_deadline, q);
	if (q->done_ev == NULL || q->deadline_ev == NULL)
		abort();
	struct timeval tv = { d->timeout_ms / 1000, (d->timeout_ms % 1000) * 1000 };
	evtimer_add(q->deadline_ev, &tv);
	q->next = d->queries;
	if (q->next != NULL)
		q->next->prev = q;
	d->queries = q;
	return q;
}

void
dns_query_hold(struct dns_query *q)
{
	q->pending++;
}

void
dns_query_release(struct dns_query *q)
{
	if (--q->pending > 0)
		return;
	if (!q->finished && !q->d->destroying)
		dns_query_finish(q, dns_route_build(q));
	dns_query_maybe_free(q);
}

void
dns_query_finish(struct dns_query *q, struct dns_result *res)
{
	if (q->finished || q->gone) {
		dns_result_free(&res);
		return;
	}
	q->finished = true;
	q->res = res;
	evtimer_del(q->deadline_ev);
	event_active(q->done_ev, 0, 0);
}

void
dns_query_cancel(struct dns_query **qp)
{
	struct dns_query *q = *qp;
	if (q == NULL)
		return;
	*qp = NULL;
	q->gone = true;
	q->finished = true;
	event_del(q->done_ev);
	evtimer_del(q->deadline_ev);
	dns_result_free(&q->res);
	dns_query_maybe_free(q);
}

/* What c-ares' callback carries for one lookup. */
struct dns_ask {
	struct dns_query *q;
	size_t target;
	int type;
	void (*fn)(struct dns_query *q, size_t target, int type, int status,
		   const unsigned char *abuf, int alen);
};

static void
dns_on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_ask *ask = arg;
	struct dns_query *q = ask->q;
	(void)timeouts;
	/* Late (after a timeout or cancel) and dying answers change nothing. */
	if (!q->finished && !q->d->destroying && status != ARES_EDESTRUCTION)
		ask->fn(q, ask->target, ask->type, status, abuf, alen);
	free(ask);
	dns_query_release(q);
}

void
dns_query_ask(struct dns_query *q, int type, size_t target,
	      void (*fn)(struct dns_query *q, size_t target, int type, int status,
			 const unsigned char *abuf, int alen))
{
	struct dns_ask *ask = xmalloc(sizeof(*ask));
	ask->q = q;
	ask->target = target;
	ask->type = type;
	ask->fn = fn;
	const char *name = q->route && type == ns_t_mx ? q->name
			   : q->targets[target].name;
	dns_query_hold(q);
	/* No search list (ares_search): names in mail are fully qualified,
	 * and relays MUST NOT guess otherwise (RFC 5321 §5.1). */
	ares_query(q->d->channel, name, ns_c_in, type, dns_on_answer, ask);
	dns_update_timer(q->d);
}

void
dns_free(struct dns **dp)
{
	struct dns *d = *dp;
	if (d == NULL)
		return;
	*dp = NULL;
	d->destroying = true;
	/* Nobody is told: see dns.h. */
	for (struct dns_query *q = d->queries, *next; q != NULL; q = next) {
		next = q->next;
		struct dns_query *tmp = q;
		dns_query_cancel(&tmp);
	}
	/* Calls back every lookup still out with ARES_EDESTRUCTION, which
	 * drops the last holds and so frees the remaining queries. */
	ares_destroy(d->channel);
	if (d->queries != NULL)
		abort();
	for (size_t i = 0; i < d->nsocks; i++)
		if (d->socks[i].ev != NULL)
			event_free(d->socks[i].ev);
	free(d->socks);
	event_free(d->timer);
	free(d);
	ares_library_cleanup();
}
