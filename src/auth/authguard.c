#include "auth/authguard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/userdb.h"
#include "core/config.h"
#include "core/log.h"
#include "core/net.h"
#include "core/util.h"

/* The longest delay before a failure reply. */
#define AUTHGUARD_MAX_DELAY_MS 15000
/* Entries kept at most; the oldest quiet ones go first when full. */
#define AUTHGUARD_MAX_ENTRIES 100000

/* One counted party: a client address ("ip:...") or a user ("user:..."). */
struct guard_entry {
	char *key;
	unsigned failures;
	time_t last_failure;
	time_t blocked_until;
	struct guard_entry *next;
};

struct authguard {
	struct guard_entry *entries;
	size_t count;
};

struct authguard *
authguard_new(void)
{
	return xcalloc(1, sizeof(struct authguard));
}

static void
entry_free(struct guard_entry *e)
{
	free(e->key);
	free(e);
}

void
authguard_free(struct authguard **gp)
{
	struct authguard *g = *gp;
	if (g == NULL)
		return;
	while (g->entries != NULL) {
		struct guard_entry *e = g->entries;
		g->entries = e->next;
		entry_free(e);
	}
	free(g);
	*gp = NULL;
}

/* Drops entries that are neither blocked nor recent, so memory stays bounded. */
static void
authguard_expire(struct authguard *g, const struct config *cfg, time_t now)
{
	for (struct guard_entry **p = &g->entries; *p != NULL;) {
		struct guard_entry *e = *p;
		if (e->blocked_until <= now &&
		    now - e->last_failure >= (time_t)cfg->auth_block_seconds) {
			*p = e->next;
			entry_free(e);
			g->count--;
		} else {
			p = &e->next;
		}
	}
}

static struct guard_entry *
authguard_find(struct authguard *g, const char *key, bool create)
{
	for (struct guard_entry *e = g->entries; e != NULL; e = e->next)
		if (strcasecmp(e->key, key) == 0)
			return e;
	if (!create || g->count >= AUTHGUARD_MAX_ENTRIES)
		return NULL;
	struct guard_entry *e = xcalloc(1, sizeof(*e));
	e->key = xstrdup(key);
	e->next = g->entries;
	g->entries = e;
	g->count++;
	return e;
}

static void
keys_for(const struct sockaddr *addr, const char *user, char ip_key[80], char **user_key_r)
{
	char ip[64];
	net_addr_str(addr, ip, sizeof(ip));
	snprintf(ip_key, 80, "ip:%s", ip);
	*user_key_r = user != NULL && user[0] != '\0' ? xasprintf("user:%s", user) : NULL;
}

bool
authguard_blocked(struct authguard *g, const struct config *cfg, const struct sockaddr *addr,
		  const char *user)
{
	time_t now = time(NULL);
	authguard_expire(g, cfg, now);
	char ip_key[80], *user_key;
	keys_for(addr, user, ip_key, &user_key);
	struct guard_entry *ip = authguard_find(g, ip_key, false);
	struct guard_entry *u = user_key != NULL ? authguard_find(g, user_key, false) : NULL;
	free(user_key);
	return (ip != NULL && ip->blocked_until > now) || (u != NULL && u->blocked_until > now);
}

static unsigned
entry_fail(struct guard_entry *e, const struct config *cfg, time_t now)
{
	if (e == NULL)
		return 0;
	e->failures++;
	e->last_failure = now;
	if (cfg->auth_block_after > 0 && e->failures >= cfg->auth_block_after)
		e->blocked_until = now + (time_t)cfg->auth_block_seconds;
	/* Doubling from the base: 1x, 2x, 4x ... */
	unsigned shift = e->failures - 1 < 16 ? e->failures - 1 : 16;
	unsigned long long delay = (unsigned long long)cfg->auth_fail_delay_ms << shift;
	return delay > AUTHGUARD_MAX_DELAY_MS ? AUTHGUARD_MAX_DELAY_MS : (unsigned)delay;
}

unsigned
authguard_failed(struct authguard *g, const struct config *cfg, const struct userdb *users,
		 const struct sockaddr *addr, const char *login, const char *proto,
		 const char *session_id)
{
	char *user = login == NULL || login[0] == '\0' ? NULL
		     : users != NULL ? authguard_name(users, login) : xstrdup(login);
	time_t now = time(NULL);
	authguard_expire(g, cfg, now);
	char ip_key[80], *user_key;
	keys_for(addr, user, ip_key, &user_key);
	unsigned d1 = entry_fail(authguard_find(g, ip_key, true), cfg, now);
	unsigned d2 = user_key != NULL ? entry_fail(authguard_find(g, user_key, true), cfg, now) : 0;
	free(user_key);
	/* One fixed shape for fail2ban: "auth failed: proto=P rip=ADDR user=<U>". */
	log_warn("%s: auth failed: proto=%s rip=%s user=<%s>", session_id, proto, ip_key + 3,
		 user != NULL ? user : "");
	free(user);
	return d1 > d2 ? d1 : d2;
}

char *
authguard_name(const struct userdb *users, const char *login)
{
	char *name = userdb_canonical(users, login);
	size_t i = 0;
	for (; name[i] != '\0' && i < 128; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x21 || c > 0x7e)
			name[i] = '?';
	}
	name[i] = '\0';
	return name;
}

void
authguard_succeeded(struct authguard *g, const struct sockaddr *addr, const char *user)
{
	(void)addr;
	/* The address keeps its count: one good login must not reset an
	 * attacker's tries at other users from the same place. */
	char *key = xasprintf("user:%s", user);
	struct guard_entry *e = authguard_find(g, key, false);
	if (e != NULL && e->blocked_until == 0)
		e->failures = 0;
	free(key);
}
