#ifndef TERN_POP3_POP3_SESSION_H
#define TERN_POP3_POP3_SESSION_H

#include <sys/socket.h>

#include "io/server.h"

/*
 * Starts a POP3 session (RFC 1939, with RFC 2449 CAPA and response codes
 * and RFC 5034 AUTH) on an accepted socket. The session owns its conn and
 * frees itself when the conn closes.
 */
void pop3_session_start(struct server *srv, int fd, const struct sockaddr *peer,
			socklen_t peerlen, enum proto proto);

#endif
