#ifndef TERN_IO_LISTENER_H
#define TERN_IO_LISTENER_H

#include "core/config.h"
#include "io/server.h"

/*
 * The listening sockets of every configured protocol. They are bound by
 * listeners_bind before privileges are dropped, and handed connections to
 * the protocol's session_start_fn once listeners_start runs.
 */
struct listeners;

/*
 * Binds every "listen.PROTO = ADDR:PORT ..." whose protocol has a start
 * function in starts[] (others are logged and skipped). -1 with *error_r
 * naming the address on failure (port in use, bad address).
 */
int listeners_bind(const struct config *cfg, session_start_fn *const starts[PROTO_COUNT],
		   struct listeners **ls_r, char **error_r);
void listeners_start(struct listeners *ls, struct server *srv);
/* Stops accepting (SIGTERM); open sessions go on. */
void listeners_stop(struct listeners *ls);
void listeners_free(struct listeners **ls);

#endif
