#include "core/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

static void
map_v4(const void *v4, unsigned char out[16])
{
	memset(out, 0, 10);
	out[10] = out[11] = 0xff;
	memcpy(out + 12, v4, 4);
}

int
net_cidr_parse(const char *s, struct net_cidr *cidr_r)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t hlen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	if (hlen == 0 || hlen >= sizeof(host))
		return -1;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	unsigned char v4[4];
	unsigned maxbits;
	if (inet_pton(AF_INET, host, v4) == 1) {
		map_v4(v4, cidr_r->addr);
		maxbits = 32;
	} else if (inet_pton(AF_INET6, host, cidr_r->addr) == 1) {
		maxbits = 128;
	} else {
		return -1;
	}
	unsigned bits = maxbits;
	if (slash != NULL) {
		char *end;
		unsigned long n = strtoul(slash + 1, &end, 10);
		if (slash[1] == '\0' || *end != '\0' || n > maxbits)
			return -1;
		bits = (unsigned)n;
	}
	cidr_r->bits = maxbits == 32 ? bits + 96 : bits;
	return 0;
}

int
net_list_parse(const char *s, struct net_list *list_r, char **bad_r)
{
	char *copy = xstrdup(s), *save = NULL;
	list_r->items = NULL;
	list_r->count = 0;
	for (char *tok = strtok_r(copy, " ,\t", &save); tok != NULL;
	     tok = strtok_r(NULL, " ,\t", &save)) {
		struct net_cidr c;
		if (net_cidr_parse(tok, &c) < 0) {
			*bad_r = xstrdup(tok);
			free(copy);
			net_list_free(list_r);
			return -1;
		}
		list_r->items = xrealloc(list_r->items,
					 (list_r->count + 1) * sizeof(c));
		list_r->items[list_r->count++] = c;
	}
	free(copy);
	return 0;
}

void
net_list_free(struct net_list *list)
{
	free(list->items);
	list->items = NULL;
	list->count = 0;
}

static bool
sockaddr_to_v6(const struct sockaddr *sa, unsigned char out[16])
{
	if (sa->sa_family == AF_INET) {
		map_v4(&((const struct sockaddr_in *)sa)->sin_addr, out);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		return true;
	}
	return false;
}

static bool
cidr_match(const struct net_cidr *c, const unsigned char addr[16])
{
	unsigned full = c->bits / 8, rest = c->bits % 8;
	if (memcmp(c->addr, addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (c->addr[full] & mask) == (addr[full] & mask);
}

bool
net_list_match(const struct net_list *list, const struct sockaddr *sa)
{
	unsigned char addr[16];
	if (!sockaddr_to_v6(sa, addr))
		return false;
	for (size_t i = 0; i < list->count; i++)
		if (cidr_match(&list->items[i], addr))
			return true;
	return false;
}

bool
net_is_loopback(const struct sockaddr *sa)
{
	static struct net_cidr loop[2];
	static bool init;
	if (!init) {
		net_cidr_parse("127.0.0.0/8", &loop[0]);
		net_cidr_parse("::1", &loop[1]);
		init = true;
	}
	struct net_list list = { loop, 2 };
	return net_list_match(&list, sa);
}

void
net_addr_str(const struct sockaddr *sa, char *out, size_t outlen)
{
	unsigned char a[16];
	if (!sockaddr_to_v6(sa, a)) {
		snprintf(out, outlen, "local");
		return;
	}
	static const unsigned char prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	if (memcmp(a, prefix, 12) == 0)
		inet_ntop(AF_INET, a + 12, out, (socklen_t)outlen);
	else
		inet_ntop(AF_INET6, a, out, (socklen_t)outlen);
}
