#ifndef TERN_SMTP_SMTP_CLIENT_PRIVATE_H
#define TERN_SMTP_SMTP_CLIENT_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

/*
 * The reply reader of the SMTP client (smtp_client_reply.c): lines in,
 * whole replies out (RFC 5321 §4.2: "ddd-text" lines, then "ddd text").
 */
struct smtpc_reply {
	unsigned code;
	struct buf text; /* the lines with their codes, joined with "\n" */
	bool complete;
};

enum smtpc_feed {
	SMTPC_FEED_MORE,     /* a continuation line: the reply goes on */
	SMTPC_FEED_DONE,     /* the last line: the reply is complete */
	SMTPC_FEED_GARBAGE,  /* not a reply line, mixed codes, or too big */
};

/* Takes one line (without CRLF). After DONE, reset before the next line. */
enum smtpc_feed smtpc_reply_feed(struct smtpc_reply *r, const char *line, size_t len);
void smtpc_reply_reset(struct smtpc_reply *r);

/* The enhanced status code (RFC 3463) of a reply's first line, or one derived
 * from the code's class ("4.0.0"). */
void smtpc_reply_enhanced(const struct smtpc_reply *r, char out[16]);

/* What EHLO told (RFC 5321 §4.1.1.1 and the extensions' RFCs). */
struct smtpc_ext {
	bool pipelining;   /* RFC 2920 */
	bool size;         /* RFC 1870 */
	unsigned long long size_max; /* 0: no fixed limit */
	bool eightbitmime; /* RFC 6152 */
	bool starttls;     /* RFC 3207 */
	bool auth_plain;   /* RFC 4954, RFC 4616 */
	bool auth_login;
};

/* Reads the keywords of a 250 reply to EHLO (every line but the first). */
void smtpc_ext_parse(const struct smtpc_reply *r, struct smtpc_ext *ext_r);

#endif
