/*
 * Where mail for a domain goes (RFC 5321 §5.1, RFC 7505), and the
 * addresses of a host: what is asked, and how the answers become the
 * ordered list of hosts in a struct dns_result.
 */
#include "dns/dns_private.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"

/* An MX answer is at most 64 KiB; this many records are read from it. */
#define DNS_MAX_MX_RECORDS 256

struct dns_result *
dns_result_new(enum dns_kind kind, const char *status, char *error)
{
	struct dns_result *res = xcalloc(1, sizeof(*res));
	res->kind = kind;
	res->status = status;
	res->error = error;
	return res;
}

void
dns_result_free(struct dns_result **resp)
{
	struct dns_result *res = *resp;
	if (res == NULL)
		return;
	for (size_t i = 0; i < res->nhosts; i++)
		free(res->hosts[i].name);
	free(res->hosts);
	free(res->error);
	free(res);
	*resp = NULL;
}

/* A host name as RFC 1035 §2.3.1 lets it be (plus '_'); a final dot is fine. */
static bool
dns_name_valid(const char *name)
{
	size_t len = strlen(name);
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return false;
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (isalnum(c) || c == '-' || c == '_') {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0;
}

/*
 * "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 §4.1.3); with bare_ok,
 * also "192.0.2.1" and "2001:db8::1". Returns 1 with *ss set, 0 if s is no
 * literal (a name), -1 if it is a bracketed literal we cannot use.
 */
static int
dns_parse_literal(const char *s, bool bare_ok, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	if (s[0] != '[') {
		if (!bare_ok)
			return 0;
		if (inet_pton(AF_INET, s, &sin->sin_addr) == 1) {
			sin->sin_family = AF_INET;
			return 1;
		}
		if (inet_pton(AF_INET6, s, &sin6->sin6_addr) == 1) {
			sin6->sin6_family = AF_INET6;
			return 1;
		}
		return 0;
	}
	size_t len = strlen(s);
	if (len < 3 || len > 64 || s[len - 1] != ']')
		return -1;
	char inner[64];
	memcpy(inner, s + 1, len - 2);
	inner[len - 2] = '\0';
	if (strncasecmp(inner, "IPv6:", 5) == 0) {
		if (inet_pton(AF_INET6, inner + 5, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		return 1;
	}
	/* General-address-literal tags other than IPv6 are not used. */
	if (inet_pton(AF_INET, inner, &sin->sin_addr) != 1)
		return -1;
	sin->sin_family = AF_INET;
	return 1;
}

static struct dns_result *
dns_result_literal(const char *name, const struct sockaddr_storage *ss)
{
	struct dns_result *res = dns_result_new(DNS_OK, NULL, NULL);
	res->hosts = xcalloc(1, sizeof(*res->hosts));
	res->nhosts = 1;
	res->hosts[0].name = xstrdup(name);
	res->hosts[0].addrs[0] = *ss;
	res->hosts[0].naddrs = 1;
	return res;
}

static void
dns_on_addr(struct dns_query *q, size_t i, int type, int status,
	    const unsigned char *abuf, int alen)
{
	struct dns_target *t = &q->targets[i];
	if (status == ARES_ENOTFOUND) {
		t->nxdomain++;
		return;
	}
	if (status == ARES_ENODATA)
		return;
	if (status != ARES_SUCCESS) {
		t->failure = status;
		return;
	}
	if (type == ns_t_a) {
		struct ares_addrttl a[DNS_MAX_PER_FAMILY];
		int n = DNS_MAX_PER_FAMILY;
		status = ares_parse_a_reply(abuf, alen, NULL, a, &n);
		for (int k = 0; status == ARES_SUCCESS && k < n; k++) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&t->v4[t->n4++];
			memset(sin, 0, sizeof(struct sockaddr_storage));
			sin->sin_family = AF_INET;
			sin->sin_addr = a[k].ipaddr;
		}
	} else {
		struct ares_addr6ttl a[DNS_MAX_PER_FAMILY];
		int n = DNS_MAX_PER_FAMILY;
		status = ares_parse_aaaa_reply(abuf, alen, NULL, a, &n);
		for (int k = 0; status == ARES_SUCCESS && k < n; k++) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&t->v6[t->n6++];
			memset(sin6, 0, sizeof(struct sockaddr_storage));
			sin6->sin6_family = AF_INET6;
			memcpy(&sin6->sin6_addr, &a[k].ip6addr, sizeof(sin6->sin6_addr));
		}
	}
	/* ENODATA: the answer held only other types, such as a CNAME chain
	 * that ends nowhere. */
	if (status != ARES_SUCCESS && status != ARES_ENODATA)
		t->failure = status;
}

static void
dns_ask_addrs(struct dns_query *q)
{
	for (size_t i = 0; i < q->ntargets; i++) {
		dns_query_ask(q, ns_t_a, i, dns_on_addr);
		dns_query_ask(q, ns_t_aaaa, i, dns_on_addr);
	}
}

static void
dns_add_target(struct dns_query *q, const char *name, unsigned preference)
{
	struct dns_target *t = &q->targets[q->ntargets++];
	t->name = xstrdup(name);
	t->preference = preference;
}

struct mx_rec {
	const char *host;
	unsigned preference;
	uint32_t shuffle;
};

static int
mx_rec_cmp(const void *a, const void *b)
{
	const struct mx_rec *x = a, *y = b;
	if (x->preference != y->preference)
		return x->preference < y->preference ? -1 : 1;
	if (x->shuffle != y->shuffle)
		return x->shuffle < y->shuffle ? -1 : 1;
	return 0;
}

static bool
mx_is_root(const char *host)
{
	/* c-ares gives the root name as "", others may write it "." */
	return host[0] == '\0' || strcmp(host, ".") == 0;
}

/*
 * The MX records, best first (RFC 5321 §5.1: "lowest-numbered records
 * being most preferred"; equal preferences MUST be randomised), become the
 * targets. Returns false for a null MX.
 */
static bool
dns_mx_targets(struct dns_query *q, struct ares_mx_reply *mx)
{
	struct mx_rec recs[DNS_MAX_MX_RECORDS];
	size_t n = 0;
	bool any_host = false;
	for (; mx != NULL && n < DNS_MAX_MX_RECORDS; mx = mx->next) {
		recs[n].host = mx->host;
		recs[n].preference = mx->priority;
		recs[n].shuffle = arc4random();
		any_host |= !mx_is_root(mx->host);
		n++;
	}
	/*
	 * RFC 7505 §3: a null MX is a single record with preference 0 and
	 * target ".". A set whose only target is "." (whatever the preference,
	 * or repeated) leaves nowhere to deliver either, so it is read the
	 * same way; a "." beside real hosts is merely one unusable host.
	 */
	if (!any_host)
		return false;
	qsort(recs, n, sizeof(recs[0]), mx_rec_cmp);
	for (size_t i = 0; i < n && q->ntargets < DNS_MAX_HOSTS; i++) {
		if (mx_is_root(recs[i].host))
			continue;
		bool dup = false;
		for (size_t k = 0; k < q->ntargets; k++)
			dup |= strcasecmp(q->targets[k].name, recs[i].host) == 0;
		if (!dup)
			dns_add_target(q, recs[i].host, recs[i].preference);
	}
	return true;
}

static void
dns_on_mx(struct dns_query *q, size_t target, int type, int status,
	  const unsigned char *abuf, int alen)
{
	(void)target;
	(void)type;
	struct ares_mx_reply *mx = NULL;
	if (status == ARES_SUCCESS) {
		status = ares_parse_mx_reply(abuf, alen, &mx);
		if (status != ARES_SUCCESS && status != ARES_ENODATA) {
			dns_query_finish(q, dns_result_new(DNS_TEMPORARY, "4.4.3",
				xasprintf("%s: bad MX answer: %s", q->name,
					  ares_strerror(status))));
			return;
		}
	}
	if (status == ARES_SUCCESS) {
		bool usable = dns_mx_targets(q, mx);
		ares_free_data(mx);
		if (!usable) {
			/* RFC 7505 §4.1: 556 and 5.1.10. */
			dns_query_finish(q, dns_result_new(DNS_PERMANENT, "5.1.10",
				xasprintf("%s: domain accepts no mail (null MX)",
					  q->name)));
			return;
		}
	} else if (status == ARES_ENODATA) {
		/* RFC 5321 §5.1: no MX is an implicit MX of preference 0 naming
		 * the domain itself. */
		q->implicit = true;
		dns_add_target(q, q->name, 0);
	} else if (status == ARES_ENOTFOUND) {
		/* RFC 5321 §5.1: a non-existent domain MUST be an error. */
		dns_query_finish(q, dns_result_new(DNS_PERMANENT, "5.1.2",
			xasprintf("%s: no such domain", q->name)));
		return;
	} else {
		dns_query_finish(q, dns_result_new(DNS_TEMPORARY, "4.4.3",
			xasprintf("%s: MX lookup failed: %s", q->name,
				  ares_strerror(status))));
		return;
	}
	dns_ask_addrs(q);
}

/*
 * IPv4 before IPv6: a host's IPv6 addresses are more often without
 * reverse DNS or reputation at the receiving end, so IPv4 is the safer
 * first try; the order within a family is the resolver's (RFC 5321 §5.1:
 * "the SMTP sender MUST try them in the order presented").
 */
static void
dns_host_fill(struct dns_host *h, struct dns_target *t)
{
	h->name = t->name;
	t->name = NULL;
	h->preference = t->preference;
	for (size_t k = 0; k < t->n4; k++)
		h->addrs[h->naddrs++] = t->v4[k];
	for (size_t k = 0; k < t->n6; k++)
		h->addrs[h->naddrs++] = t->v6[k];
}

struct dns_result *
dns_route_build(struct dns_query *q)
{
	size_t usable = 0;
	int failure = ARES_SUCCESS, nxdomain = 0;
	for (size_t i = 0; i < q->ntargets; i++) {
		struct dns_target *t = &q->targets[i];
		if (t->n4 + t->n6 > 0)
			usable++;
		else if (t->failure != ARES_SUCCESS)
			failure = t->failure;
		nxdomain += t->nxdomain;
	}
	if (usable == 0) {
		bool single = !q->route || q->implicit;
		/* A host name (not an MX target) that does not exist at all. */
		if (single && nxdomain == 2)
			return dns_result_new(DNS_PERMANENT, "5.1.2",
				xasprintf("%s: no such host", q->name));
		if (failure != ARES_SUCCESS)
			return dns_result_new(DNS_TEMPORARY, "4.4.3",
				xasprintf("%s: address lookup failed: %s", q->name,
					  ares_strerror(failure)));
		return dns_result_new(DNS_TEMPORARY, "4.4.4",
			xasprintf(single ? "%s: host has no address"
					 : "%s: no MX host has an address", q->name));
	}
	struct dns_result *res = dns_result_new(DNS_OK, NULL, NULL);
	res->hosts = xcalloc(usable, sizeof(*res->hosts));
	for (size_t i = 0; i < q->ntargets; i++)
		if (q->targets[i].n4 + q->targets[i].n6 > 0)
			dns_host_fill(&res->hosts[res->nhosts++], &q->targets[i]);
	return res;
}

void
dns_route_start(struct dns_query *q)
{
	struct sockaddr_storage ss;
	int lit = dns_parse_literal(q->name, !q->route, &ss);
	if (lit == 1) {
		dns_query_finish(q, dns_result_literal(q->name, &ss));
		return;
	}
	if (lit < 0 || !dns_name_valid(q->name)) {
		dns_query_finish(q, dns_result_new(DNS_PERMANENT, "5.1.2",
			/* Cut: a peer's name may be as long as its line. */
			xasprintf("%.255s: not a valid %s", q->name,
				  lit < 0 ? "address literal" : "domain name")));
		return;
	}
	dns_query_hold(q);
	if (q->route) {
		dns_query_ask(q, ns_t_mx, 0, dns_on_mx);
	} else {
		dns_add_target(q, q->name, 0);
		dns_ask_addrs(q);
	}
	dns_query_release(q);
}

struct dns_query *
dns_route(struct dns *d, const char *domain, dns_route_fn *cb, void *arg)
{
	struct dns_query *q = dns_query_new(d, domain, true, cb, arg);
	dns_route_start(q);
	return q;
}

struct dns_query *
dns_host(struct dns *d, const char *host, dns_route_fn *cb, void *arg)
{
	struct dns_query *q = dns_query_new(d, host, false, cb, arg);
	dns_route_start(q);
	return q;
}
