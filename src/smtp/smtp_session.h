#ifndef TERN_SMTP_SMTP_SESSION_H
#define TERN_SMTP_SMTP_SESSION_H

#include <sys/socket.h>

#include "io/server.h"

/*
 * The SMTP server session (RFC 5321) of the port-25 listener: greeting,
 * EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT, VRFY, HELP, STARTTLS.
 * Messages for local users are delivered into the store at the end of
 * DATA; mail for other domains (from trusted networks only) goes to the
 * spool. The session owns the conn and frees itself when it closes.
 */
void smtp_session_start(struct server *srv, int fd, const struct sockaddr *peer,
			socklen_t peerlen, enum proto proto);

#endif
