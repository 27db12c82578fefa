#ifndef TERN_QUEUE_DSN_H
#define TERN_QUEUE_DSN_H

#include <time.h>

#include "queue/queue_msg.h"

struct buf;

/*
 * Delivery status notifications (RFC 3464) for a queued message: the
 * bounce for failed recipients and the delay notice for deferred ones, as
 * a multipart/report; report-type=delivery-status message (RFC 6522).
 */

enum dsn_kind {
	DSN_FAILURE, /* recipients failed and not yet bounced */
	DSN_DELAY,   /* recipients deferred and not yet told about */
};

enum dsn_result {
	DSN_BUILT = 0,       /* out holds the message */
	DSN_NONE = 1,        /* no recipient of that kind: nothing to send */
	/*
	 * The message had the null reverse-path: a notice to it must never be
	 * sent (RFC 5321 §4.5.5, §6.1), or bounces could loop. Nothing was
	 * built; the caller may build it again with dsn_opts.to set to the
	 * postmaster, or drop it.
	 */
	DSN_NULL_SENDER = 2,
};

struct dsn_opts {
	const char *hostname;  /* Reporting-MTA and MAILER-DAEMON@hostname */
	time_t now;            /* Date: */
	time_t retry_until;    /* DSN_DELAY: Will-Retry-Until */
	const char *to;        /* NULL: the original sender */
};

/*
 * Builds the notice into out (CRLF line ends, ready to be spooled with the
 * sender "<>"). headers is the original message's header section (CRLF,
 * may be empty), included as text/rfc822-headers. Returns a dsn_result.
 */
enum dsn_result dsn_build(const struct queue_msg *msg, enum dsn_kind kind,
			  const struct dsn_opts *opts, const char *headers, struct buf *out);

/* Sets delay_notified / failure_notified on the recipients dsn_build reported. */
void dsn_mark_sent(struct queue_msg *msg, enum dsn_kind kind);

/*
 * The RFC 3463 status for a recipient: the enhanced code of its last reply
 * when it has one of the right class, else X.0.0 from the reply code, 4.4.7
 * for a failure after only temporary replies (expired), else 4.4.1 / 5.4.4
 * (no answer / no route). Writes at most 16 bytes.
 */
void dsn_status(const struct queue_rcpt *r, enum dsn_kind kind, char out[16]);

#endif
