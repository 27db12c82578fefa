#ifndef TERN_IO_SERVER_H
#define TERN_IO_SERVER_H

#include <stdbool.h>
#include <sys/socket.h>

#include "core/config.h"

struct event;
struct event_base;
struct userdb;
struct aliases;
struct store;
struct ssl_ctx_st;
struct authguard;
struct queue_runner;
struct workpool;
struct conn;

/*
 * What every session of this process shares. Sessions read cfg at the
 * moment they need a value and never keep pointers into it across events:
 * SIGHUP swaps in a new config (old ones live on until exit).
 */
struct server {
	struct event_base *base;
	struct config *cfg;
	struct userdb *users;
	struct aliases *aliases;
	struct store *store;
	struct ssl_ctx_st *tls; /* OpenSSL's SSL_CTX, or NULL without tls_cert */
	struct authguard *guard; /* failed-login counts, across sessions */
	struct queue_runner *queue; /* relays and retries what the spool holds */
	struct workpool *pool;   /* threads for deliveries and password checks */
	struct event *ev_trim;   /* server_trim_soon's timer, once armed */
	bool draining; /* SIGTERM: no new sessions, finish the open ones */
};

/*
 * Starts a session on an accepted socket. proto is the listener's: one
 * session type serves several (SMTP: smtp, submission, submissions).
 */
typedef void session_start_fn(struct server *srv, int fd, const struct sockaddr *peer,
			      socklen_t peerlen, enum proto proto);

/* Implicit TLS (RFC 8314): submissions, pop3s, imaps. */
bool proto_implicit_tls(enum proto proto);

/*
 * Per-listener access lists, TCP-wrappers style: an address in
 * access.PROTO.allow is let in; else one in access.PROTO.deny is refused;
 * else it is let in.
 */
bool server_access_allowed(const struct config *cfg, enum proto proto,
			   const struct sockaddr *peer);
/*
 * May a password cross this connection? Under TLS yes; in clear only from
 * plaintext_auth_networks (loopback by default) and trusted_networks.
 */
bool server_plaintext_auth_ok(const struct server *srv, const struct conn *c);

/*
 * Much was just freed (a session ended, or went to sleep in IDLE): gives
 * the heap's free pages back to the system a moment later, at most once
 * a second whatever the number of calls (see server.c).
 */
void server_trim_soon(struct server *srv);

/*
 * ternd's life: loads the config, opens users, aliases and store, binds
 * the listeners, drops privileges, then runs the event loop until SIGTERM
 * (drain, then stop). SIGHUP reloads config, users and aliases. Returns
 * the exit code; start-up errors are printed to stderr first.
 */
int server_main(const char *config_path, bool detach,
		session_start_fn *const starts[PROTO_COUNT]);

#endif
