/*
 * Bounces and delay notices: RFC 3464 delivery status notifications in an
 * RFC 6522 multipart/report, with the original header section as
 * text/rfc822-headers (RFC 6522 §4; the body is not returned).
 */
#include "queue/dsn.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/util.h"

/* RFC 5322 §3.3 date-time, in the C locale. */
static void
dsn_date(time_t t, char out[64])
{
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(out, 64, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

static bool
dsn_includes(const struct queue_rcpt *r, enum dsn_kind kind)
{
	if (kind == DSN_FAILURE)
		return r->state == QUEUE_RCPT_FAILED && !r->failure_notified;
	return r->state == QUEUE_RCPT_DEFERRED && !r->delay_notified;
}

/* An SMTP reply starts with three digits, then a blank, '-' or the end. */
static bool
dsn_is_smtp_reply(const char *s)
{
	return s != NULL && isdigit((unsigned char)s[0]) && isdigit((unsigned char)s[1]) &&
	       isdigit((unsigned char)s[2]) && (s[3] == ' ' || s[3] == '-' || s[3] == '\0');
}

void
dsn_status(const struct queue_rcpt *r, enum dsn_kind kind, char out[16])
{
	char want = kind == DSN_FAILURE ? '5' : '4';
	const char *reply = r->last_reply;
	if (dsn_is_smtp_reply(reply)) {
		/* RFC 3463 §2: class.subject.detail, each 1-3 digits, after the code. */
		const char *p = reply + 4;
		unsigned a, b, c;
		int used = 0;
		if (reply[3] != '\0' && sscanf(p, "%1u.%3u.%3u%n", &a, &b, &c, &used) == 3 &&
		    (p[used] == ' ' || p[used] == '\0') && (char)('0' + a) == want) {
			snprintf(out, 16, "%u.%u.%u", a, b, c);
			return;
		}
		if (reply[0] == want) {
			snprintf(out, 16, "%c.0.0", want);
			return;
		}
		/* Failed after temporary errors only: the queue lifetime ran out
		 * (RFC 3463 §3.5, "delivery time expired"). */
		if (reply[0] == '4' && kind == DSN_FAILURE) {
			snprintf(out, 16, "4.4.7");
			return;
		}
	}
	/* No usable SMTP answer (a local or DNS error, or a 5xx still retried). */
	snprintf(out, 16, "%s", kind == DSN_FAILURE ? "5.4.4" : "4.4.1");
}

static void
dsn_human_part(const struct queue_msg *msg, enum dsn_kind kind,
	       const struct dsn_opts *opts, struct buf *out)
{
	buf_appends(out, "Content-Type: text/plain; charset=us-ascii\r\n"
			 "Content-Description: Notification\r\n\r\n");
	buf_appendf(out, "This is the mail server at %s.\r\n\r\n", opts->hostname);
	if (kind == DSN_FAILURE)
		buf_appends(out, "Your message could not be delivered to the recipients\r\n"
				 "below. It will not be tried again.\r\n\r\n");
	else {
		char until[64];
		dsn_date(opts->retry_until, until);
		buf_appendf(out, "Your message has not been delivered yet to the recipients\r\n"
				 "below. Nothing needs to be done: delivery will be tried\r\n"
				 "again until %s.\r\n\r\n", until);
	}
	for (size_t i = 0; i < msg->nrcpts; i++) {
		const struct queue_rcpt *r = &msg->rcpts[i];
		if (!dsn_includes(r, kind))
			continue;
		buf_appendf(out, "<%s>:\r\n    %s\r\n", r->address,
			    r->last_reply != NULL ? r->last_reply : "(no reason was given)");
	}
	buf_appends(out, "\r\nThe headers of your message are attached.\r\n");
}

static void
dsn_status_part(const struct queue_msg *msg, enum dsn_kind kind,
		const struct dsn_opts *opts, struct buf *out)
{
	char date[64];
	buf_appends(out, "Content-Type: message/delivery-status\r\n"
			 "Content-Description: Delivery report\r\n\r\n");
	/* Per-message fields (RFC 3464 §2.2), then one group per recipient
	 * (§2.3), each group after a blank line. */
	dsn_date(msg->arrival, date);
	buf_appendf(out, "Reporting-MTA: dns; %s\r\nX-Tern-Queue-ID: %s\r\nArrival-Date: %s\r\n",
		    opts->hostname, msg->id, date);
	for (size_t i = 0; i < msg->nrcpts; i++) {
		const struct queue_rcpt *r = &msg->rcpts[i];
		if (!dsn_includes(r, kind))
			continue;
		char status[16];
		dsn_status(r, kind, status);
		buf_appendf(out, "\r\nFinal-Recipient: rfc822; %s\r\nAction: %s\r\nStatus: %s\r\n",
			    r->address, kind == DSN_FAILURE ? "failed" : "delayed", status);
		if (r->remote_mta != NULL)
			buf_appendf(out, "Remote-MTA: dns; %s\r\n", r->remote_mta);
		/* §2.3.6: the diagnostic type says what the text is; only a reply
		 * we got from an SMTP server is "smtp". */
		if (dsn_is_smtp_reply(r->last_reply))
			buf_appendf(out, "Diagnostic-Code: smtp; %s\r\n", r->last_reply);
		if (r->last_attempt != 0) {
			dsn_date(r->last_attempt, date);
			buf_appendf(out, "Last-Attempt-Date: %s\r\n", date);
		}
		if (kind == DSN_DELAY) {
			dsn_date(opts->retry_until, date);
			buf_appendf(out, "Will-Retry-Until: %s\r\n", date);
		}
	}
}

/* A boundary that occurs nowhere in the included headers (RFC 2046 §5.1.1). */
static void
dsn_boundary(const char *headers, char out[48])
{
	do {
		char id[13];
		make_id(id);
		snprintf(out, 48, "=_tern-dsn-%s", id);
	} while (strstr(headers, out) != NULL);
}

enum dsn_result
dsn_build(const struct queue_msg *msg, enum dsn_kind kind, const struct dsn_opts *opts,
	  const char *headers, struct buf *out)
{
	size_t count = 0;
	for (size_t i = 0; i < msg->nrcpts; i++)
		count += dsn_includes(&msg->rcpts[i], kind);
	if (count == 0)
		return DSN_NONE;
	if (msg->sender[0] == '\0' && opts->to == NULL)
		return DSN_NULL_SENDER;
	char boundary[48], date[64], id[13];
	dsn_boundary(headers, boundary);
	dsn_date(opts->now, date);
	make_id(id);
	buf_appendf(out, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
			 "To: <%s>\r\n"
			 "Subject: %s\r\n"
			 "Date: %s\r\n"
			 "Message-ID: <%s.dsn@%s>\r\n"
			 /* RFC 3834 §5: no auto-responder answers this. */
			 "Auto-Submitted: auto-replied\r\n"
			 "MIME-Version: 1.0\r\n"
			 "Content-Type: multipart/report; report-type=delivery-status;\r\n"
			 "\tboundary=\"%s\"\r\n"
			 "\r\n"
			 "This is a MIME-encapsulated delivery status notification.\r\n",
		    opts->hostname, opts->to != NULL ? opts->to : msg->sender,
		    kind == DSN_FAILURE ? "Undelivered mail returned to sender"
					: "Delayed mail (still being retried)",
		    date, id, opts->hostname, boundary);
	buf_appendf(out, "\r\n--%s\r\n", boundary);
	dsn_human_part(msg, kind, opts, out);
	buf_appendf(out, "\r\n--%s\r\n", boundary);
	dsn_status_part(msg, kind, opts, out);
	buf_appendf(out, "\r\n--%s\r\n", boundary);
	buf_appends(out, "Content-Type: text/rfc822-headers\r\n"
			 "Content-Description: Headers of the undelivered message\r\n\r\n");
	buf_appends(out, headers);
	/* The CRLF before a boundary belongs to the boundary (RFC 2046 §5.1.1). */
	if (out->len > 0 && out->data[out->len - 1] != '\n')
		buf_appends(out, "\r\n");
	buf_appendf(out, "\r\n--%s--\r\n", boundary);
	return DSN_BUILT;
}

void
dsn_mark_sent(struct queue_msg *msg, enum dsn_kind kind)
{
	for (size_t i = 0; i < msg->nrcpts; i++) {
		struct queue_rcpt *r = &msg->rcpts[i];
		if (!dsn_includes(r, kind))
			continue;
		if (kind == DSN_FAILURE)
			r->failure_notified = true;
		else
			r->delay_notified = true;
	}
}
