#include "smtp/smtp_client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/buf.h"
#include "core/dotstuff.h"
#include "core/log.h"
#include "core/util.h"
#include "io/conn.h"
#include "smtp/smtp_client_private.h"

/*
 * The relay client: one conn, a state per reply awaited, a table from
 * state to the function that takes that reply. The session ends by
 * closing the conn; on_close fills in whatever is still unanswered as a
 * temporary failure, calls the caller's on_done and frees the client, so
 * there is exactly one way out.
 */
enum smtpc_state {
	SMTPC_GREETING,
	SMTPC_EHLO,
	SMTPC_HELO,
	SMTPC_STARTTLS,
	SMTPC_AUTH,
	SMTPC_RSET,
	SMTPC_TX,   /* replies to MAIL, RCPT..., DATA */
	SMTPC_BODY, /* the body is going out; then the reply to the dot */
	SMTPC_QUIT,
	SMTPC_DONE, /* nothing more is expected */
};

struct smtp_client {
	struct event_base *base;
	struct conn *conn;
	struct event *ev_fail; /* reports a connect that could not even start */
	struct smtp_client_opts opts; /* strings owned */
	struct smtp_client_timeouts to;
	struct smtp_client_msg *msgs;
	size_t nmsg, cur;
	smtp_client_done_fn *on_done;
	void *ctx;

	enum smtpc_state state;
	unsigned awaiting;  /* replies owed: commands sent (and the greeting) */
	struct smtpc_reply reply;
	struct smtpc_ext ext;
	bool tls_tried;
	unsigned auth_step; /* AUTH LOGIN: 0 sent AUTH, 1 sent user, 2 sent password */
	bool tx_dirty;      /* a MAIL was sent since the last RSET */

	/* The transaction of msgs[cur]: command 0 MAIL, 1..n RCPT, n+1 DATA. */
	size_t tx_sent, tx_answered;
	bool tx_mail_failed;
	bool *accepted;     /* per recipient: 250 to RCPT */
	size_t naccepted;

	struct dot_encoder enc;
	size_t body_done;
	bool body_finished;
	struct buf chunk;

	char *fail_text;    /* why the session ended early, for what is unanswered */
	unsigned fail_code;
	char fail_enh[16];
};

struct smtpc_step {
	const char *waiting_for; /* for the timeout message */
	void (*on_reply)(struct smtp_client *cl);
};

static void smtpc_on_greeting(struct smtp_client *cl);
static void smtpc_on_ehlo(struct smtp_client *cl);
static void smtpc_on_helo(struct smtp_client *cl);
static void smtpc_on_starttls(struct smtp_client *cl);
static void smtpc_on_auth(struct smtp_client *cl);
static void smtpc_on_rset(struct smtp_client *cl);
static void smtpc_on_tx(struct smtp_client *cl);
static void smtpc_on_dot(struct smtp_client *cl);
static void smtpc_on_quit(struct smtp_client *cl);

static const struct smtpc_step smtpc_steps[] = {
	[SMTPC_GREETING] = { "the greeting", smtpc_on_greeting },
	[SMTPC_EHLO] = { "the reply to EHLO", smtpc_on_ehlo },
	[SMTPC_HELO] = { "the reply to HELO", smtpc_on_helo },
	[SMTPC_STARTTLS] = { "the reply to STARTTLS", smtpc_on_starttls },
	[SMTPC_AUTH] = { "the reply to AUTH", smtpc_on_auth },
	[SMTPC_RSET] = { "the reply to RSET", smtpc_on_rset },
	[SMTPC_TX] = { "the reply to MAIL, RCPT or DATA", smtpc_on_tx },
	[SMTPC_BODY] = { "the reply to the end of data", smtpc_on_dot },
	[SMTPC_QUIT] = { "the reply to QUIT", smtpc_on_quit },
	[SMTPC_DONE] = { "nothing", NULL },
};

#define MIN_MS(x) ((unsigned)(x) * 60 * 1000)

const char *
smtp_client_status_name(enum smtp_client_status status)
{
	static const char *const names[] = { "pending", "sent", "deferred", "bounced" };
	return names[status];
}

/* ---- results ---- */

static void
smtpc_result_set(struct smtp_rcpt_result *res, unsigned code, const char *enh, const char *text)
{
	res->status = code >= 500 ? SMTP_RCPT_PERMFAIL
		      : code >= 400 ? SMTP_RCPT_TEMPFAIL
				    : SMTP_RCPT_DELIVERED;
	res->code = code;
	snprintf(res->enhanced, sizeof(res->enhanced), "%s", enh);
	free(res->text);
	res->text = xstrdup(text);
}

/* The reply just read becomes the result of one recipient. */
static void
smtpc_result_from_reply(struct smtp_client *cl, struct smtp_rcpt_result *res)
{
	char enh[16];
	smtpc_reply_enhanced(&cl->reply, enh);
	smtpc_result_set(res, cl->reply.code, enh, cl->reply.text.data);
}

/* Every recipient of every message not yet answered gets this result. */
static void
smtpc_fail_pending(struct smtp_client *cl, unsigned code, const char *enh, const char *text)
{
	for (size_t m = cl->cur; m < cl->nmsg; m++)
		for (size_t i = 0; i < cl->msgs[m].nrcpt; i++)
			if (cl->msgs[m].results[i].status == SMTP_RCPT_PENDING)
				smtpc_result_set(&cl->msgs[m].results[i], code, enh, text);
}

/* Records why the session stops; the first reason wins. */
static void
smtpc_set_failure(struct smtp_client *cl, unsigned code, const char *enh, const char *text)
{
	if (cl->fail_text != NULL)
		return;
	cl->fail_text = xstrdup(text);
	cl->fail_code = code;
	snprintf(cl->fail_enh, sizeof(cl->fail_enh), "%s", enh);
}

static void
smtpc_send(struct smtp_client *cl, enum smtpc_state state, unsigned timeout_ms, const char *fmt,
	   ...) __attribute__((format(printf, 4, 5)));

static void
smtpc_send(struct smtp_client *cl, enum smtpc_state state, unsigned timeout_ms, const char *fmt,
	   ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vappendf(&b, fmt, ap);
	va_end(ap);
	buf_appends(&b, "\r\n");
	conn_write(cl->conn, b.data, b.len);
	buf_free(&b);
	cl->awaiting++;
	cl->state = state;
	conn_set_timeout_ms(cl->conn, timeout_ms);
}

/* The polite end: QUIT, then the close (RFC 5321 §4.1.1.10). */
static void
smtpc_quit(struct smtp_client *cl)
{
	smtpc_send(cl, SMTPC_QUIT, cl->to.command, "QUIT");
}

/* The session cannot go on: everything unanswered is deferred. */
static void
smtpc_give_up(struct smtp_client *cl, unsigned code, const char *enh, const char *text,
	      bool send_quit)
{
	smtpc_set_failure(cl, code, enh, text);
	smtpc_fail_pending(cl, code, enh, text);
	if (send_quit) {
		smtpc_quit(cl);
	} else {
		cl->state = SMTPC_DONE;
		conn_abort(cl->conn, text);
	}
}

/* A reply that ends the session before any mail moved: temporary for all. */
static void
smtpc_give_up_reply(struct smtp_client *cl)
{
	char enh[16];
	smtpc_reply_enhanced(&cl->reply, enh);
	/* Session-level refusals are retried: the queue's lifetime bounds them. */
	if (enh[0] == '5')
		enh[0] = '4';
	unsigned code = cl->reply.code >= 500 ? cl->reply.code - 100 : cl->reply.code;
	smtpc_give_up(cl, code, enh, cl->reply.text.data, true);
}

/* ---- session setup ---- */

static void
smtpc_ehlo(struct smtp_client *cl)
{
	memset(&cl->ext, 0, sizeof(cl->ext));
	smtpc_send(cl, SMTPC_EHLO, cl->to.command, "EHLO %s", cl->opts.helo_name);
}

static void
smtpc_on_greeting(struct smtp_client *cl)
{
	if (cl->reply.code != 220) {
		smtpc_give_up_reply(cl);
		return;
	}
	smtpc_ehlo(cl);
}

static void smtpc_after_ehlo(struct smtp_client *cl);

static void
smtpc_on_ehlo(struct smtp_client *cl)
{
	if (cl->reply.code / 100 == 2) {
		smtpc_ext_parse(&cl->reply, &cl->ext);
		smtpc_after_ehlo(cl);
	} else if (cl->reply.code / 100 == 5 && !conn_is_tls(cl->conn)) {
		/* RFC 5321 §3.2: an old server; HELO has no extensions. */
		smtpc_send(cl, SMTPC_HELO, cl->to.command, "HELO %s", cl->opts.helo_name);
	} else {
		smtpc_give_up_reply(cl);
	}
}

static void
smtpc_on_helo(struct smtp_client *cl)
{
	if (cl->reply.code / 100 != 2) {
		smtpc_give_up_reply(cl);
		return;
	}
	memset(&cl->ext, 0, sizeof(cl->ext));
	smtpc_after_ehlo(cl);
}

static void smtpc_next_msg(struct smtp_client *cl);

static void
smtpc_auth_begin(struct smtp_client *cl)
{
	/* RFC 4954 §4: credentials never go over a connection in clear. */
	if (!conn_is_tls(cl->conn)) {
		smtpc_give_up(cl, 451, "4.7.0", "AUTH is configured but the connection is not TLS",
			      true);
		return;
	}
	cl->auth_step = 0;
	if (cl->ext.auth_plain) {
		/* RFC 4616: authzid NUL authcid NUL passwd, as the initial response. */
		struct buf b = BUF_INIT;
		buf_appendc(&b, '\0');
		buf_appends(&b, cl->opts.auth_user);
		buf_appendc(&b, '\0');
		buf_appends(&b, cl->opts.auth_pass);
		char *enc = base64_encode(b.data, b.len);
		smtpc_send(cl, SMTPC_AUTH, cl->to.command, "AUTH PLAIN %s", enc);
		explicit_bzero(b.data, b.len);
		explicit_bzero(enc, strlen(enc));
		free(enc);
		buf_free(&b);
		cl->auth_step = 2;
	} else if (cl->ext.auth_login) {
		smtpc_send(cl, SMTPC_AUTH, cl->to.command, "AUTH LOGIN");
	} else {
		smtpc_give_up(cl, 451, "4.7.0", "AUTH is configured but the peer offers neither PLAIN nor LOGIN",
			      true);
	}
}

static void
smtpc_after_ehlo(struct smtp_client *cl)
{
	if (!cl->tls_tried && cl->opts.tls != SMTP_TLS_NONE) {
		cl->tls_tried = true;
		if (cl->ext.starttls && cl->opts.tls_ctx != NULL) {
			smtpc_send(cl, SMTPC_STARTTLS, cl->to.command, "STARTTLS");
			return;
		}
		if (cl->opts.tls == SMTP_TLS_REQUIRED) {
			/* Never fall back to clear text when TLS was asked for. */
			smtpc_give_up(cl, 451, "4.7.0",
				      cl->opts.tls_ctx == NULL
					      ? "TLS is required but no TLS client context was given"
					      : "TLS is required but the peer does not offer STARTTLS",
				      true);
			return;
		}
	}
	if (cl->opts.auth_user != NULL) {
		smtpc_auth_begin(cl);
		return;
	}
	smtpc_next_msg(cl);
}

static void
smtpc_on_starttls(struct smtp_client *cl)
{
	if (cl->reply.code == 220) {
		/* RFC 3207 §4.2: forget all we knew, EHLO again once under TLS. */
		conn_start_tls_client(cl->conn, cl->opts.tls_ctx, cl->opts.host);
		smtpc_ehlo(cl);
		return;
	}
	if (cl->opts.tls == SMTP_TLS_REQUIRED) {
		smtpc_give_up_reply(cl);
		return;
	}
	/* Opportunistic: a refused STARTTLS leaves the session in clear. */
	smtpc_after_ehlo(cl);
}

static void
smtpc_on_auth(struct smtp_client *cl)
{
	if (cl->reply.code == 235 && cl->auth_step == 2) {
		smtpc_next_msg(cl);
		return;
	}
	if (cl->reply.code != 334 || cl->auth_step >= 2) {
		smtpc_give_up_reply(cl);
		return;
	}
	/* AUTH LOGIN: the user name, then the password, each in base64. */
	const char *s = cl->auth_step == 0 ? cl->opts.auth_user : cl->opts.auth_pass;
	char *enc = base64_encode(s, strlen(s));
	smtpc_send(cl, SMTPC_AUTH, cl->to.command, "%s", enc);
	explicit_bzero(enc, strlen(enc));
	free(enc);
	cl->auth_step++;
}

/* ---- messages ---- */

static void
smtpc_log_msg(struct smtp_client *cl, const struct smtp_client_msg *msg)
{
	for (size_t i = 0; i < msg->nrcpt; i++) {
		const struct smtp_rcpt_result *r = &msg->results[i];
		/* The first line of the reply, or the code before a local reason. */
		const char *nl = strchr(r->text, '\n');
		int n = nl != NULL ? (int)(nl - r->text) : (int)strlen(r->text);
		char code[24] = "";
		if (strtoul(r->text, NULL, 10) != r->code)
			snprintf(code, sizeof(code), "%u %s ", r->code, r->enhanced);
		log_info("%s: to=<%s> relay=%s[%s] status=%s (%s%.*s)", msg->id, msg->rcpts[i],
			 cl->opts.host, cl->conn != NULL ? conn_peer(cl->conn) : "",
			 smtp_client_status_name(r->status), code, n, r->text);
	}
}

/* Refuses a message before sending it: every recipient gets the same. */
static void
smtpc_refuse_msg(struct smtp_client *cl, unsigned code, const char *enh, const char *text)
{
	struct smtp_client_msg *msg = &cl->msgs[cl->cur];
	for (size_t i = 0; i < msg->nrcpt; i++)
		smtpc_result_set(&msg->results[i], code, enh, text);
}

/* Checks what the peer said it takes; false if the message was refused. */
static bool
smtpc_msg_fits(struct smtp_client *cl, const struct smtp_client_msg *msg)
{
	char text[256];
	if (cl->ext.size && cl->ext.size_max > 0 && msg->size > cl->ext.size_max) {
		/* RFC 1870 §6: larger than the peer's fixed limit: it will never fit. */
		snprintf(text, sizeof(text), "message of %zu bytes exceeds the %llu-byte limit of %s",
			 msg->size, cl->ext.size_max, cl->opts.host);
		smtpc_refuse_msg(cl, 552, "5.3.4", text);
		return false;
	}
	if (msg->eightbit && !cl->ext.eightbitmime) {
		/*
		 * RFC 6152 §3 allows returning 8-bit mail a server cannot
		 * take; tern does not convert it to 7 bits (quoted-printable
		 * or base64), which could break signatures and is rarely
		 * needed today.
		 */
		snprintf(text, sizeof(text), "message has 8-bit content and %s does not offer 8BITMIME",
			 cl->opts.host);
		smtpc_refuse_msg(cl, 554, "5.6.3", text);
		return false;
	}
	return true;
}

/* Sends command k of the transaction (0 MAIL, 1..n RCPT, n+1 DATA). */
static void
smtpc_tx_send(struct smtp_client *cl, size_t k)
{
	const struct smtp_client_msg *msg = &cl->msgs[cl->cur];
	if (k == 0) {
		char size[48] = "";
		if (cl->ext.size)
			snprintf(size, sizeof(size), " SIZE=%zu", msg->size);
		smtpc_send(cl, SMTPC_TX, cl->to.mail, "MAIL FROM:<%s>%s%s", msg->sender, size,
			   msg->eightbit ? " BODY=8BITMIME" : "");
	} else if (k <= msg->nrcpt) {
		smtpc_send(cl, SMTPC_TX, cl->to.rcpt, "RCPT TO:<%s>", msg->rcpts[k - 1]);
	} else {
		smtpc_send(cl, SMTPC_TX, cl->to.data, "DATA");
	}
	cl->tx_sent = k + 1;
}

static void
smtpc_tx_begin(struct smtp_client *cl)
{
	const struct smtp_client_msg *msg = &cl->msgs[cl->cur];
	free(cl->accepted);
	cl->accepted = xcalloc(msg->nrcpt, sizeof(*cl->accepted));
	cl->naccepted = 0;
	cl->tx_mail_failed = false;
	cl->tx_answered = 0;
	cl->tx_dirty = true;
	/* RFC 2920 §3.1: MAIL, RCPTs and DATA may go as one group, DATA last. */
	size_t last = cl->ext.pipelining ? msg->nrcpt + 1 : 0;
	for (size_t k = 0; k <= last; k++)
		smtpc_tx_send(cl, k);
	/* The first reply awaited is MAIL's. */
	conn_set_timeout_ms(cl->conn, cl->to.mail);
}

static void
smtpc_msg_done(struct smtp_client *cl)
{
	smtpc_log_msg(cl, &cl->msgs[cl->cur]);
	cl->cur++;
	smtpc_next_msg(cl);
}

static void
smtpc_next_msg(struct smtp_client *cl)
{
	for (; cl->cur < cl->nmsg; cl->cur++) {
		struct smtp_client_msg *msg = &cl->msgs[cl->cur];
		if (msg->nrcpt == 0)
			continue;
		if (!smtpc_msg_fits(cl, msg)) {
			smtpc_log_msg(cl, msg);
			continue;
		}
		/* A second transaction starts from a clean state (§4.1.1.5). */
		if (cl->tx_dirty) {
			smtpc_send(cl, SMTPC_RSET, cl->to.command, "RSET");
			return;
		}
		smtpc_tx_begin(cl);
		return;
	}
	smtpc_quit(cl);
}

static void
smtpc_on_rset(struct smtp_client *cl)
{
	if (cl->reply.code != 250) {
		smtpc_give_up_reply(cl);
		return;
	}
	cl->tx_dirty = false;
	smtpc_next_msg(cl);
}

static void smtpc_body_push(struct smtp_client *cl);

/* The reply to DATA: 354 starts the body, anything else ends the message. */
static void
smtpc_on_data_reply(struct smtp_client *cl)
{
	struct smtp_client_msg *msg = &cl->msgs[cl->cur];
	if (cl->tx_mail_failed || cl->naccepted == 0) {
		/* RFC 2920 §3.1: a 354 despite no recipients gets an empty body. */
		if (cl->reply.code == 354) {
			conn_writes(cl->conn, ".\r\n");
			cl->awaiting++;
			conn_set_timeout_ms(cl->conn, cl->to.dot);
			return;
		}
		smtpc_msg_done(cl);
		return;
	}
	if (cl->reply.code == 354) {
		cl->state = SMTPC_BODY;
		cl->awaiting++; /* the reply to the final dot */
		dot_encoder_init(&cl->enc);
		cl->body_done = 0;
		cl->body_finished = false;
		smtpc_body_push(cl);
		return;
	}
	for (size_t i = 0; i < msg->nrcpt; i++)
		if (cl->accepted[i])
			smtpc_result_from_reply(cl, &msg->results[i]);
	smtpc_msg_done(cl);
}

static void
smtpc_on_tx(struct smtp_client *cl)
{
	struct smtp_client_msg *msg = &cl->msgs[cl->cur];
	size_t k = cl->tx_answered++;
	if (k == 0 && cl->reply.code / 100 != 2) {
		/* A refused MAIL is the answer for every recipient. */
		cl->tx_mail_failed = true;
		for (size_t i = 0; i < msg->nrcpt; i++)
			smtpc_result_from_reply(cl, &msg->results[i]);
	} else if (k >= 1 && k <= msg->nrcpt && !cl->tx_mail_failed) {
		if (cl->reply.code / 100 == 2) {
			cl->accepted[k - 1] = true;
			cl->naccepted++;
		} else {
			smtpc_result_from_reply(cl, &msg->results[k - 1]);
		}
	} else if (k == msg->nrcpt + 1) {
		smtpc_on_data_reply(cl);
		return;
	}
	if (k == msg->nrcpt + 2 || (!cl->ext.pipelining && cl->tx_mail_failed)) {
		/* The reply to an empty body, or MAIL refused one by one. */
		smtpc_msg_done(cl);
		return;
	}
	if (!cl->ext.pipelining) {
		/* One by one: DATA only if some recipient was taken. */
		if (cl->tx_sent == msg->nrcpt + 1 && cl->naccepted == 0) {
			smtpc_msg_done(cl);
			return;
		}
		smtpc_tx_send(cl, cl->tx_sent);
		return;
	}
	size_t next = cl->tx_answered;
	conn_set_timeout_ms(cl->conn, next <= msg->nrcpt ? cl->to.rcpt : cl->to.data);
}

/* ---- the body ---- */

#define SMTPC_BODY_CHUNK 65536

/* Streams the body while the output queue has room; on_drain calls again. */
static void
smtpc_body_push(struct smtp_client *cl)
{
	struct smtp_client_msg *msg = &cl->msgs[cl->cur];
	char *tmp = NULL;
	while (!cl->body_finished && conn_output_pending(cl->conn) < CONN_OUTPUT_HIGH) {
		size_t want = msg->size - cl->body_done;
		if (want == 0) {
			dot_encode_finish(&cl->enc, &cl->chunk);
			conn_write(cl->conn, cl->chunk.data, cl->chunk.len);
			buf_reset(&cl->chunk);
			cl->body_finished = true;
			conn_set_timeout_ms(cl->conn, cl->to.dot);
			break;
		}
		if (want > SMTPC_BODY_CHUNK)
			want = SMTPC_BODY_CHUNK;
		if (tmp == NULL)
			tmp = xmalloc(SMTPC_BODY_CHUNK);
		ssize_t n = pread(msg->fd, tmp, want, msg->offset + (off_t)cl->body_done);
		if (n <= 0) {
			/* Half a body was sent: the transaction cannot be saved. */
			char text[256];
			snprintf(text, sizeof(text), "cannot read the message: %s",
				 n < 0 ? strerror(errno) : "file is shorter than its size");
			log_err("%s: %s", msg->id, text);
			smtpc_give_up(cl, 451, "4.3.0", text, false);
			break;
		}
		dot_encode(&cl->enc, tmp, (size_t)n, &cl->chunk);
		conn_write(cl->conn, cl->chunk.data, cl->chunk.len);
		buf_reset(&cl->chunk);
		cl->body_done += (size_t)n;
		/* §4.5.3.2.5: the data block timeout runs from each block sent. */
		conn_set_timeout_ms(cl->conn, cl->to.block);
	}
	free(tmp);
}

static void
smtpc_on_dot(struct smtp_client *cl)
{
	struct smtp_client_msg *msg = &cl->msgs[cl->cur];
	bool early = !cl->body_finished;
	for (size_t i = 0; i < msg->nrcpt; i++) {
		if (!cl->accepted[i])
			continue;
		if (early && cl->reply.code / 100 == 2)
			smtpc_result_set(&msg->results[i], 451, "4.5.0", cl->reply.text.data);
		else
			smtpc_result_from_reply(cl, &msg->results[i]);
	}
	if (early) {
		/* A reply before our dot: the peer and we no longer agree. */
		smtpc_log_msg(cl, msg);
		cl->cur++;
		smtpc_give_up(cl, 421, "4.4.2", "the peer replied before the end of the data", false);
		return;
	}
	smtpc_msg_done(cl);
}

static void
smtpc_on_quit(struct smtp_client *cl)
{
	cl->state = SMTPC_DONE;
	conn_close(cl->conn);
}

/* ---- the conn's callbacks ---- */

static void
smtpc_on_reply(struct smtp_client *cl)
{
	/* RFC 5321 §3.8: 421 means the peer is closing, whatever we asked. */
	if (cl->reply.code == 421 && cl->state != SMTPC_QUIT) {
		char enh[16];
		smtpc_reply_enhanced(&cl->reply, enh);
		smtpc_give_up(cl, 421, enh, cl->reply.text.data, false);
		return;
	}
	smtpc_steps[cl->state].on_reply(cl);
}

static void
smtpc_garbage(struct smtp_client *cl, const char *what)
{
	char text[128];
	snprintf(text, sizeof(text), "protocol error: %s from %s", what, cl->opts.host);
	log_info("%s", text);
	smtpc_give_up(cl, 451, "4.5.0", text, false);
}

static void
smtpc_on_input(struct conn *c, void *ctx)
{
	struct smtp_client *cl = ctx;
	char *line;
	size_t len;
	while (!conn_busy(c) && cl->state != SMTPC_DONE) {
		enum conn_line r = conn_read_line(c, SMTP_CLIENT_LINE_MAX, &line, &len);
		if (r == CONN_LINE_NONE)
			return;
		if (r == CONN_LINE_TOO_LONG) {
			smtpc_garbage(cl, "reply line too long");
			return;
		}
		enum smtpc_feed f = smtpc_reply_feed(&cl->reply, line, len);
		if (f == SMTPC_FEED_GARBAGE) {
			smtpc_garbage(cl, "malformed reply");
			return;
		}
		if (f == SMTPC_FEED_DONE) {
			/* RFC 2920 §3.2 keeps replies in order and one per command. */
			if (cl->awaiting == 0) {
				smtpc_garbage(cl, "unexpected reply");
				return;
			}
			cl->awaiting--;
			smtpc_on_reply(cl);
			smtpc_reply_reset(&cl->reply);
		}
	}
	/* Anything after QUIT's reply, or after giving up, is ignored. */
	if (cl->state == SMTPC_DONE)
		conn_discard_input(c);
}

static void
smtpc_on_drain(struct conn *c, void *ctx)
{
	struct smtp_client *cl = ctx;
	(void)c;
	if (cl->state == SMTPC_BODY && !cl->body_finished)
		smtpc_body_push(cl);
}

static void
smtpc_on_timeout(struct conn *c, void *ctx)
{
	struct smtp_client *cl = ctx;
	char text[160];
	if (cl->state == SMTPC_GREETING)
		snprintf(text, sizeof(text), "timed out connecting to %s or waiting for its greeting",
			 cl->opts.host);
	else if (cl->state == SMTPC_BODY && !cl->body_finished)
		snprintf(text, sizeof(text), "timed out sending the message data to %s",
			 cl->opts.host);
	else
		snprintf(text, sizeof(text), "timed out waiting for %s from %s",
			 smtpc_steps[cl->state].waiting_for, cl->opts.host);
	log_info("smtp client: %s", text);
	if (cl->state == SMTPC_QUIT) {
		cl->state = SMTPC_DONE;
		conn_abort(c, text);
		return;
	}
	smtpc_give_up(cl, 421, "4.4.2", text, false);
}

static void
smtpc_free(struct smtp_client *cl)
{
	for (size_t m = 0; m < cl->nmsg; m++) {
		for (size_t i = 0; i < cl->msgs[m].nrcpt; i++)
			free(cl->msgs[m].results[i].text);
		free(cl->msgs[m].results);
		cl->msgs[m].results = NULL;
	}
	if (cl->ev_fail != NULL)
		event_free(cl->ev_fail);
	free(cl->accepted);
	buf_free(&cl->chunk);
	buf_free(&cl->reply.text);
	free(cl->fail_text);
	free((char *)cl->opts.helo_name);
	free((char *)cl->opts.host);
	if (cl->opts.auth_pass != NULL)
		explicit_bzero((char *)cl->opts.auth_pass, strlen(cl->opts.auth_pass));
	free((char *)cl->opts.auth_user);
	free((char *)cl->opts.auth_pass);
	free(cl);
}

/* The one way out: unanswered recipients are deferred, the caller hears. */
static void
smtpc_report(struct smtp_client *cl, const char *conn_err)
{
	char text[256];
	if (cl->fail_text == NULL) {
		if (conn_err != NULL)
			snprintf(text, sizeof(text), "%s", conn_err);
		else
			snprintf(text, sizeof(text), "connection to %s closed unexpectedly",
				 cl->opts.host);
		/* 4.4.1: no answer from host; 4.4.2: bad connection (RFC 3463). */
		smtpc_set_failure(cl, 421, cl->state == SMTPC_GREETING ? "4.4.1" : "4.4.2", text);
	}
	if (cl->cur < cl->nmsg) {
		smtpc_fail_pending(cl, cl->fail_code, cl->fail_enh, cl->fail_text);
		for (size_t m = cl->cur; m < cl->nmsg; m++)
			if (cl->msgs[m].nrcpt > 0)
				smtpc_log_msg(cl, &cl->msgs[m]);
	}
	cl->on_done(cl->msgs, cl->nmsg, cl->ctx);
	smtpc_free(cl);
}

static void
smtpc_on_close(struct conn *c, void *ctx)
{
	struct smtp_client *cl = ctx;
	smtpc_report(cl, conn_error(c));
	/* conn_peer in the log lines above needed the conn; it goes now. */
}

static void
smtpc_on_failed_start(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct smtp_client *cl = arg;
	smtpc_report(cl, NULL);
}

static const struct conn_handler smtpc_handler = {
	.on_input = smtpc_on_input,
	.on_drain = smtpc_on_drain,
	.on_timeout = smtpc_on_timeout,
	.on_close = smtpc_on_close,
};

static unsigned
smtpc_ms(unsigned given, unsigned minutes)
{
	return given != 0 ? given : MIN_MS(minutes);
}

struct smtp_client *
smtp_client_start(struct event_base *base, const struct sockaddr *addr, socklen_t addrlen,
		  const struct smtp_client_opts *opts, struct smtp_client_msg *msgs, size_t nmsg,
		  smtp_client_done_fn *on_done, void *ctx)
{
	struct smtp_client *cl = xcalloc(1, sizeof(*cl));
	cl->base = base;
	cl->opts = *opts;
	cl->opts.helo_name = xstrdup(opts->helo_name);
	cl->opts.host = xstrdup(opts->host);
	cl->opts.auth_user = opts->auth_user != NULL ? xstrdup(opts->auth_user) : NULL;
	cl->opts.auth_pass = opts->auth_pass != NULL ? xstrdup(opts->auth_pass) : NULL;
	const struct smtp_client_timeouts *t = &opts->timeouts;
	cl->to.connect = smtpc_ms(t->connect, 5);
	cl->to.greeting = smtpc_ms(t->greeting, 5);
	cl->to.command = smtpc_ms(t->command, 5);
	cl->to.mail = smtpc_ms(t->mail, 5);
	cl->to.rcpt = smtpc_ms(t->rcpt, 5);
	cl->to.data = smtpc_ms(t->data, 2);
	cl->to.block = smtpc_ms(t->block, 3);
	cl->to.dot = smtpc_ms(t->dot, 10);
	cl->msgs = msgs;
	cl->nmsg = nmsg;
	for (size_t m = 0; m < nmsg; m++)
		msgs[m].results = xcalloc(msgs[m].nrcpt, sizeof(*msgs[m].results));
	cl->on_done = on_done;
	cl->ctx = ctx;
	cl->state = SMTPC_GREETING;
	cl->awaiting = 1; /* the greeting */
	char *error = NULL;
	cl->conn = conn_connect(base, addr, addrlen, cl->to.connect, cl->to.greeting, &smtpc_handler, cl, &error);
	if (cl->conn == NULL) {
		smtpc_set_failure(cl, 421, "4.4.1", error);
		free(error);
		cl->ev_fail = evtimer_new(base, smtpc_on_failed_start, cl);
		if (cl->ev_fail == NULL)
			abort();
		struct timeval now = { 0, 0 };
		evtimer_add(cl->ev_fail, &now);
	}
	return cl;
}

