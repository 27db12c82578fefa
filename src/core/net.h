#ifndef TERN_CORE_NET_H
#define TERN_CORE_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* An IPv4 or IPv6 network in CIDR form; IPv4 is kept as ::ffff:a.b.c.d. */
struct net_cidr {
	unsigned char addr[16];
	unsigned bits;
};

struct net_list {
	struct net_cidr *items;
	size_t count;
};

/* Parses "a.b.c.d[/n]" or "x:y::z[/n]". */
int net_cidr_parse(const char *s, struct net_cidr *cidr_r);
/* Parses a space- or comma-separated list; *bad_r names the bad item. */
int net_list_parse(const char *s, struct net_list *list_r, char **bad_r);
void net_list_free(struct net_list *list);
bool net_list_match(const struct net_list *list, const struct sockaddr *sa);
bool net_is_loopback(const struct sockaddr *sa);
/* "1.2.3.4" or "::1" (IPv4-mapped addresses shown as IPv4). */
void net_addr_str(const struct sockaddr *sa, char *out, size_t outlen);

#endif
