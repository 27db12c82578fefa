#ifndef TERN_AUTH_AUTHGUARD_H
#define TERN_AUTH_AUTHGUARD_H

#include <stdbool.h>
#include <sys/socket.h>

/*
 * The brute-force defence shared by every protocol: failed logins counted
 * per client address and per user. Each failure earns a delay before the
 * reply that doubles with the count (base auth_fail_delay_ms, at most 15 s);
 * after auth_block_after failures the address or user is blocked for
 * auth_block_seconds. Counts fade: an address that stays quiet for
 * auth_block_seconds starts over. A success clears the user's count.
 */
struct authguard;
struct config;
struct userdb;

struct authguard *authguard_new(void);
void authguard_free(struct authguard **g);
/* True while the address or the user (may be NULL) is blocked. */
bool authguard_blocked(struct authguard *g, const struct config *cfg,
		       const struct sockaddr *addr, const char *user);
/*
 * Records a failure and logs the line fail2ban matches:
 *   auth failed: proto=pop3 rip=192.0.2.1 user=<alice@example.org>
 * login is the name the client gave (NULL or "" if none), made canonical
 * with authguard_name when users is given. Returns the delay in
 * milliseconds before the reply may be sent.
 */
unsigned authguard_failed(struct authguard *g, const struct config *cfg,
			  const struct userdb *users, const struct sockaddr *addr,
			  const char *login, const char *proto, const char *session_id);
void authguard_succeeded(struct authguard *g, const struct sockaddr *addr, const char *user);
/*
 * A peer-chosen login name as the guard counts it and the log shows it:
 * canonical (so "demo" and "demo@example.org" are one user), printable,
 * at most 128 bytes. Returns a new string.
 */
char *authguard_name(const struct userdb *users, const char *login);

#endif
