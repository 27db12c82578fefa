#ifndef TERN_SMTP_SMTP_PRIVATE_H
#define TERN_SMTP_SMTP_PRIVATE_H

/* Shared by smtp_session.c (commands) and smtp_data.c (DATA, delivery). */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/buf.h"
#include "core/dotstuff.h"
#include "io/conn.h"
#include "io/server.h"

enum smtp_state {
	SMTP_STATE_GREETED, /* no HELO/EHLO yet */
	SMTP_STATE_READY,   /* HELO done, no transaction */
	SMTP_STATE_MAIL,    /* MAIL accepted; RCPTs may follow */
	SMTP_STATE_DATA,    /* message bytes, not commands, are coming */
};

/* A final recipient after alias expansion. */
struct smtp_target {
	char *address; /* canonical */
	bool local;    /* store_deliver, else the spool */
};

/* The message being received; exists only between DATA and its end. */
struct smtp_data {
	char msg_id[13];
	struct dot_decoder dec;
	struct buf chunk;     /* decoded bytes on their way to the file */
	int fd;               /* the temp file (already unlinked) */
	off_t size;           /* message bytes received, our header excluded */
	off_t file_size;      /* bytes written to fd */
	bool too_big;         /* over message_size_limit: discarding */
	bool has_nul;
	int write_errno;      /* first write error, 0 if none */
};

struct smtp_session {
	struct server *srv;
	struct conn *conn;
	char id[13];
	enum proto proto;      /* smtp, submission or submissions */
	enum smtp_state state;
	bool esmtp;
	char *helo;
	unsigned bad_commands; /* in a row */

	/* The transaction (MAIL to the end of DATA or RSET). */
	char *sender;           /* "" for <> */
	unsigned nrcpts;        /* RCPTs accepted */
	bool rcpt_refused;      /* some RCPT was refused */
	char *first_rcpt;       /* for Received: "for" with one recipient */
	struct smtp_target *targets;
	size_t ntargets;
	struct smtp_data *data;
};

/* Writes one reply line (CRLF added). */
void smtp_reply(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A reply that rejects something: logged with the session ID and client. */
void smtp_reject(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Forgets the transaction (RSET, EHLO, end of DATA). */
void smtp_transaction_reset(struct smtp_session *s);

/* DATA: opens the temp file, writes the trace header, answers 354. */
void smtp_data_begin(struct smtp_session *s);
/* Takes message bytes from the conn; false when it needs more input. */
bool smtp_data_input(struct smtp_session *s);
/* Drops an unfinished message (the client went away). */
void smtp_data_abort(struct smtp_session *s);

#endif
