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

struct event;
struct sasl;

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
struct smtp_delivery;

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
	/*
	 * Submission (RFC 6409 §8): the header section is held here until its
	 * end is seen, so that a missing Message-ID or Date can be written
	 * ahead of it. Bounded by SMTP_HEADER_SCAN_MAX.
	 */
	bool scan_header;
	struct buf head;
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
	struct smtp_delivery *delivery; /* the copies being made; input waits */

	/* AUTH (RFC 4954), smtp_auth.c. */
	struct sasl *sasl;        /* an exchange in progress: lines are responses */
	char *auth_user;          /* the authenticated address, or NULL */
	unsigned auth_failures;   /* in this session */
};

/* Submission ports (587, 465): AUTH required, RFC 6409 fix-ups. */
static inline bool
smtp_is_submission(const struct smtp_session *s)
{
	return s->proto == PROTO_SUBMISSION || s->proto == PROTO_SUBMISSIONS;
}

/* Writes one reply line (CRLF added). */
void smtp_reply(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A reply that rejects something: logged with the session ID and client. */
void smtp_reject(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A protocol error by the client; too many in a row end the session. */
void smtp_reply_bad(struct smtp_session *s, const char *reply);
/* Forgets the transaction (RSET, EHLO, end of DATA). */
void smtp_transaction_reset(struct smtp_session *s);

/* DATA: opens the temp file, writes the trace header, answers 354. */
void smtp_data_begin(struct smtp_session *s);
/* Takes message bytes from the conn; false when it needs more input. */
bool smtp_data_input(struct smtp_session *s);
/* Drops an unfinished message (the client went away). */
void smtp_data_abort(struct smtp_session *s);

/* smtp_deliver.c: the end of DATA. Makes the copies (local Maildirs, the
   spool) on a worker thread; the session's input waits, and the reply
   goes out when they are durable. */
void smtp_deliver_start(struct smtp_session *s, struct smtp_data *d);
/* The session is closing: the copies are still made, nobody is told. */
void smtp_deliver_orphan(struct smtp_session *s);

/* AUTH (smtp_auth.c): the command, and one line of an exchange. */
void smtp_cmd_auth(struct smtp_session *s, char *args);
void smtp_auth_input(struct smtp_session *s, enum conn_line r, bool nul, const char *line);
/* May AUTH be offered and used on this connection now? */
bool smtp_auth_allowed(const struct smtp_session *s);
/* Forgets the login (STARTTLS) and frees what AUTH holds (end of session). */
void smtp_auth_clear(struct smtp_session *s);
/* Is the (canonical) sender one the authenticated user may use? */
bool smtp_auth_owns_sender(struct smtp_session *s, const char *sender);

#endif
