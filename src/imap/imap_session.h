#ifndef TERN_IMAP_IMAP_SESSION_H
#define TERN_IMAP_IMAP_SESSION_H

#include <sys/socket.h>

#include "io/server.h"

/*
 * Starts an IMAP4rev1 session (RFC 3501) on an accepted socket: the
 * not-authenticated and authenticated states (connection, login and
 * mailbox management commands). The session owns its conn and frees
 * itself when the conn closes.
 */
void imap_session_start(struct server *srv, int fd, const struct sockaddr *peer,
			socklen_t peerlen, enum proto proto);

#endif
