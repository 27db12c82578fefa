/*
 * SMTP DATA: the message is dot-decoded into a temp file (bounded, trace
 * header first), then delivered to local users through the store and
 * handed to the spool for foreign recipients, all before the 250.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "queue/queue_runner.h"
#include "queue/spool.h"
#include "smtp/smtp_parse.h"
#include "smtp/smtp_private.h"
#include "store/store.h"

/*
 * The temp file is unlinked as soon as it is open: the store and the spool
 * read it through the descriptor, and a crash or a client that vanishes
 * mid-DATA can then never leave a stray file behind.
 */
static int
smtp_data_open(struct smtp_session *s, const char *msg_id)
{
	char *dir = xasprintf("%s/spool/tmp", s->srv->cfg->data_dir);
	char *path = xasprintf("%s/%s.smtp", dir, msg_id);
	int fd = -1;
	if (mkdir_p(dir, 0700) == 0)
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		log_err("%s: open %s: %s", s->id, path, strerror(errno));
	else
		unlink(path);
	free(path);
	free(dir);
	return fd;
}

/*
 * How much of a submitted message's start is held to find the end of its
 * header section; a longer header is taken as it is (a field past this
 * point may then be added twice, which is harmless).
 */
#define SMTP_HEADER_SCAN_MAX (64 * 1024)

/*
 * RFC 3848: SMTP, ESMTP, an "S" more when TLS carried the message and an
 * "A" more when the client authenticated. The user's name is not shown.
 */
static const char *
smtp_received_protocol(struct smtp_session *s)
{
	bool tls = conn_is_tls(s->conn);
	if (s->esmtp && s->auth_user != NULL)
		return tls ? "ESMTPSA" : "ESMTPA";
	if (s->esmtp)
		return tls ? "ESMTPS" : "ESMTP";
	return tls ? "SMTPS" : "SMTP";
}

/* The date and time as RFC 5322 §3.3 writes it (C locale names). */
static void
smtp_date(char *out, size_t size)
{
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(out, size, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

/*
 * The trace header (RFC 5321 §4.4), with the protocol named as RFC 3848
 * says, and "for" only when there is exactly one recipient, so that a
 * Received: line never discloses the other recipients (Bcc).
 */
static void
smtp_received_header(struct smtp_session *s, const char *msg_id, struct buf *out)
{
	const char *peer = conn_peer(s->conn);
	char date[64];
	smtp_date(date, sizeof(date));
	buf_appendf(out, "Received: from %s (rdns-not-done [%s%s])\r\n"
			 "\tby %s (tern) with %s id %s",
		    s->helo != NULL ? s->helo : "unknown",
		    strchr(peer, ':') != NULL ? "IPv6:" : "", peer,
		    s->srv->cfg->hostname, smtp_received_protocol(s), msg_id);
	if (s->nrcpts == 1)
		buf_appendf(out, "\r\n\tfor <%s>", s->first_rcpt);
	buf_appendf(out, "; %s\r\n", date);
}

void
smtp_data_begin(struct smtp_session *s)
{
	struct smtp_data *d = xcalloc(1, sizeof(*d));
	make_id(d->msg_id);
	d->fd = smtp_data_open(s, d->msg_id);
	if (d->fd < 0) {
		free(d);
		smtp_reject(s, "451 4.3.0 Error: local error in processing");
		return;
	}
	smtp_received_header(s, d->msg_id, &d->chunk);
	if (write_all(d->fd, d->chunk.data, d->chunk.len) < 0)
		d->write_errno = errno;
	d->file_size = (off_t)d->chunk.len;
	buf_reset(&d->chunk);
	d->scan_header = smtp_is_submission(s);
	/* The CRLF of the DATA line comes first: "." CRLF at once is the end. */
	dot_decoder_init(&d->dec);
	s->data = d;
	s->state = SMTP_STATE_DATA;
	smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void
smtp_data_write(struct smtp_data *d, const char *p, size_t n)
{
	if (d->write_errno != 0 || n == 0)
		return;
	if (write_all(d->fd, p, n) < 0)
		d->write_errno = errno;
	else
		d->file_size += (off_t)n;
}

/*
 * RFC 6409 §8.2, §8.3: a submitted message without Message-ID or Date gets
 * them. The header section is held in d->head until its end (or the bound,
 * or the end of the message) is seen; then the missing fields are written,
 * and the held bytes after them.
 */
static void
smtp_data_header(struct smtp_session *s, struct smtp_data *d, const char *p, size_t n,
		 bool end)
{
	buf_append(&d->head, p, n);
	unsigned fields;
	size_t hlen = smtp_header_scan(d->head.data, d->head.len, &fields);
	if (hlen == 0 && !end && d->head.len < SMTP_HEADER_SCAN_MAX)
		return;
	d->scan_header = false;
	struct buf add = BUF_INIT;
	if (!(fields & SMTP_HDR_MESSAGE_ID)) {
		char stamp[32];
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
		buf_appendf(&add, "Message-ID: <%s.%s@%s>\r\n", stamp, d->msg_id,
			    s->srv->cfg->hostname);
	}
	if (!(fields & SMTP_HDR_DATE)) {
		char date[64];
		smtp_date(date, sizeof(date));
		buf_appendf(&add, "Date: %s\r\n", date);
	}
	if (add.len > 0)
		log_info("%s: added%s%s", d->msg_id,
			 (fields & SMTP_HDR_MESSAGE_ID) ? "" : " Message-ID",
			 (fields & SMTP_HDR_DATE) ? "" : " Date");
	smtp_data_write(d, add.data, add.len);
	smtp_data_write(d, d->head.data, d->head.len);
	buf_free(&add);
	buf_free(&d->head);
}

/*
 * Puts decoded bytes into the file. Past the size limit, or once the
 * message is known to be refused, bytes are only counted and dropped: the
 * client is still sending and must be read up to the end marker.
 */
static void
smtp_data_store(struct smtp_session *s, struct smtp_data *d)
{
	size_t n = d->chunk.len;
	if (n == 0)
		return;
	if (memchr(d->chunk.data, '\0', n) != NULL)
		d->has_nul = true;
	d->size += (off_t)n;
	if ((size_t)d->size > s->srv->cfg->message_size_limit)
		d->too_big = true;
	if (!d->too_big && !d->has_nul && d->write_errno == 0) {
		if (d->scan_header)
			smtp_data_header(s, d, d->chunk.data, n, false);
		else
			smtp_data_write(d, d->chunk.data, n);
	}
	buf_reset(&d->chunk);
}

static void
smtp_data_free(struct smtp_session *s)
{
	struct smtp_data *d = s->data;
	if (d == NULL)
		return;
	if (d->fd >= 0)
		close(d->fd);
	buf_free(&d->chunk);
	buf_free(&d->head);
	free(d);
	s->data = NULL;
}

void
smtp_data_abort(struct smtp_session *s)
{
	if (s->data != NULL)
		log_info("%s: message %s dropped: client gone during DATA", s->id,
			 s->data->msg_id);
	smtp_data_free(s);
}

/*
 * The end of DATA. The 250 goes out only after every copy is durable: the
 * store and the spool fsync their own files and directories. The temp file
 * itself needs no fsync: it was unlinked at once, so no crash can leave
 * anything of it to trust, and its copies read it through the page cache.
 * A local copy
 * that fails is queued instead. If the queue file fails too, the client
 * gets a 451 and sends again: some recipients may then get the message
 * twice, but none loses it.
 */
static void
smtp_data_end(struct smtp_session *s)
{
	struct smtp_data *d = s->data;
	log_info("smtp %s: from=<%s> size=%lld nrcpt=%u", d->msg_id, s->sender,
		 (long long)d->size, s->nrcpts);
	/* A message that ended inside its header section (or had no body). */
	if (d->scan_header && !d->too_big && !d->has_nul)
		smtp_data_header(s, d, NULL, 0, true);
	if (d->has_nul) {
		smtp_reject(s, "554 5.6.0 Error: message contains NUL characters");
	} else if (d->too_big) {
		smtp_reject(s, "552 5.3.4 Message size exceeds fixed limit");
	} else if (d->write_errno != 0) {
		log_err("%s: writing the message: %s", d->msg_id, strerror(d->write_errno));
		smtp_reject(s, "451 4.3.0 Error: local error in processing");
	} else {
		/* The copies are made off the loop; the reply comes when they are. */
		smtp_deliver_start(s, d);
	}
	smtp_data_free(s);
	smtp_transaction_reset(s);
}

bool
smtp_data_input(struct smtp_session *s)
{
	struct smtp_data *d = s->data;
	const char *in;
	size_t n = conn_input(s->conn, &in);
	if (n == 0)
		return false;
	bool done;
	size_t used = dot_decode(&d->dec, in, n, &d->chunk, &done);
	conn_consume(s->conn, used);
	smtp_data_store(s, d);
	if (done)
		smtp_data_end(s);
	return true;
}
