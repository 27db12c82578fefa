/*
 * POP3 TRANSACTION state (RFC 1939 §5) and UPDATE (§6): the commands on a
 * locked maildrop, and the streaming of RETR and TOP.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "io/conn.h"
#include "io/server.h"
#include "pop3/pop3_private.h"
#include "store/store.h"

#define POP3_CHUNK (64 * 1024)

/* A decimal argument: digits only, no sign, no blanks; saturates. */
static int
pop3_parse_ulong(const char *s, unsigned long *n_r)
{
	if (*s == '\0')
		return -1;
	unsigned long n = 0;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		unsigned d = (unsigned)(*s - '0');
		n = n > (~0UL - d) / 10 ? ~0UL : n * 10 + d;
	}
	*n_r = n;
	return 0;
}

/*
 * A message-number argument (1..count, not deleted) as an index. Returns 0,
 * -1 for a syntax error or -2 for a message that does not exist (both
 * answered here).
 */
static int
pop3_msg_arg(struct pop3_session *s, const char *arg, size_t *idx_r)
{
	unsigned long n;
	if (pop3_parse_ulong(arg, &n) < 0) {
		pop3_reply_bad(s, "-ERR Invalid message number");
		return -1;
	}
	/* RFC 1939 §5: a deleted message may not be referred to. */
	if (n == 0 || n > s->count || s->deleted[n - 1]) {
		conn_writes(s->conn, "-ERR No such message\r\n");
		return -2;
	}
	*idx_r = n - 1;
	return 0;
}

/* Maps pop3_msg_arg's result to a handler result. */
static int
pop3_arg_result(int r)
{
	return r == -1 ? -1 : 0;
}

size_t
pop3_deleted_count(const struct pop3_session *s)
{
	size_t n = 0;
	for (size_t i = 0; i < s->count; i++)
		n += s->deleted[i];
	return n;
}

int
pop3_cmd_stat(struct pop3_session *s, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	size_t n = 0, octets = 0;
	for (size_t i = 0; i < s->count; i++) {
		if (s->deleted[i])
			continue;
		n++;
		octets += store_mailbox_msg(s->mb, i)->size;
	}
	conn_printf(s->conn, "+OK %zu %zu\r\n", n, octets);
	return 0;
}

int
pop3_cmd_list(struct pop3_session *s, int argc, char **argv)
{
	size_t i;
	if (argc == 1) {
		int r = pop3_msg_arg(s, argv[0], &i);
		if (r == 0)
			conn_printf(s->conn, "+OK %zu %zu\r\n", i + 1,
				    store_mailbox_msg(s->mb, i)->size);
		return pop3_arg_result(r);
	}
	struct buf out = BUF_INIT;
	size_t n = 0, octets = 0;
	for (i = 0; i < s->count; i++) {
		if (s->deleted[i])
			continue;
		size_t size = store_mailbox_msg(s->mb, i)->size;
		n++;
		octets += size;
		buf_appendf(&out, "%zu %zu\r\n", i + 1, size);
	}
	conn_printf(s->conn, "+OK %zu messages (%zu octets)\r\n", n, octets);
	buf_appends(&out, ".\r\n");
	conn_write(s->conn, out.data, out.len);
	buf_free(&out);
	return 0;
}

/*
 * RFC 1939 §7: a unique-id is 1 to 70 characters in 0x21..0x7E. Maildir
 * names of other tools (or ours on a long host name) may not fit; those
 * get a digest of the name, which is just as stable.
 */
static void
pop3_uidl_of(const char *uid, char out[71])
{
	size_t n = strlen(uid);
	bool ok = n >= 1 && n <= 70;
	for (size_t i = 0; ok && i < n; i++)
		ok = uid[i] >= 0x21 && uid[i] <= 0x7e;
	if (ok) {
		memcpy(out, uid, n + 1);
		return;
	}
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	if (EVP_Digest(uid, n, md, &mdlen, EVP_sha256(), NULL) != 1)
		mdlen = 0;
	if (mdlen > 32)
		mdlen = 32;
	for (unsigned i = 0; i < mdlen; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
	out[2 * mdlen] = '\0';
	if (mdlen == 0)
		strcpy(out, "x");
}

int
pop3_cmd_uidl(struct pop3_session *s, int argc, char **argv)
{
	char uidl[71];
	size_t i;
	if (argc == 1) {
		int r = pop3_msg_arg(s, argv[0], &i);
		if (r == 0) {
			pop3_uidl_of(store_mailbox_msg(s->mb, i)->uid, uidl);
			conn_printf(s->conn, "+OK %zu %s\r\n", i + 1, uidl);
		}
		return pop3_arg_result(r);
	}
	struct buf out = BUF_INIT;
	buf_appends(&out, "+OK\r\n");
	for (i = 0; i < s->count; i++) {
		if (s->deleted[i])
			continue;
		pop3_uidl_of(store_mailbox_msg(s->mb, i)->uid, uidl);
		buf_appendf(&out, "%zu %s\r\n", i + 1, uidl);
	}
	buf_appends(&out, ".\r\n");
	conn_write(s->conn, out.data, out.len);
	buf_free(&out);
	return 0;
}

/* Opens message i and starts sending it; top: header plus lines of body. */
static void
pop3_stream_start(struct pop3_session *s, size_t i, bool top, unsigned long lines)
{
	int fd = store_msg_open(s->mb, i);
	if (fd < 0) {
		log_warn("pop3 %s: user=%s message %zu unreadable: %s", s->id,
			 s->address, i + 1, strerror(errno));
		conn_writes(s->conn, "-ERR [SYS/TEMP] Message is no longer available\r\n");
		return;
	}
	struct pop3_stream *st = &s->stream;
	st->fd = fd;
	dot_encoder_init(&st->enc);
	st->top = top;
	st->in_header = true;
	st->at_line_start = true;
	st->lines_left = lines;
	if (top)
		conn_writes(s->conn, "+OK\r\n");
	else
		conn_printf(s->conn, "+OK %zu octets\r\n", store_mailbox_msg(s->mb, i)->size);
	pop3_stream_run(s);
}

int
pop3_cmd_retr(struct pop3_session *s, int argc, char **argv)
{
	(void)argc;
	size_t i;
	int r = pop3_msg_arg(s, argv[0], &i);
	if (r == 0) {
		s->nretr++;
		pop3_stream_start(s, i, false, 0);
	}
	return pop3_arg_result(r);
}

int
pop3_cmd_top(struct pop3_session *s, int argc, char **argv)
{
	(void)argc;
	size_t i;
	unsigned long lines;
	if (pop3_parse_ulong(argv[1], &lines) < 0) {
		pop3_reply_bad(s, "-ERR Invalid line count");
		return -1;
	}
	int r = pop3_msg_arg(s, argv[0], &i);
	if (r == 0)
		pop3_stream_start(s, i, true, lines);
	return pop3_arg_result(r);
}

int
pop3_cmd_dele(struct pop3_session *s, int argc, char **argv)
{
	(void)argc;
	size_t i;
	int r = pop3_msg_arg(s, argv[0], &i);
	if (r == 0) {
		/* Only marked: RFC 1939 §6 removes it in UPDATE, at QUIT. */
		s->deleted[i] = true;
		conn_printf(s->conn, "+OK message %zu deleted\r\n", i + 1);
	}
	return pop3_arg_result(r);
}

int
pop3_cmd_rset(struct pop3_session *s, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	memset(s->deleted, 0, s->count * sizeof(*s->deleted));
	conn_printf(s->conn, "+OK %zu messages\r\n", s->count);
	return 0;
}

int
pop3_cmd_noop(struct pop3_session *s, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	conn_writes(s->conn, "+OK\r\n");
	return 0;
}

/*
 * TOP: how many of the n bytes belong to the answer (RFC 1939 §7: the
 * header, the blank line, then the first lines_left lines of the body).
 * Sets *end_r once nothing more is wanted. The file is in LF form, but a
 * CRLF written by another tool is understood too.
 */
static size_t
pop3_top_cut(struct pop3_stream *st, const char *p, size_t n, bool *end_r)
{
	for (size_t i = 0; i < n; i++) {
		if (!st->in_header && st->lines_left == 0) {
			*end_r = true;
			return i;
		}
		char c = p[i];
		if (!st->in_header) {
			if (c == '\n')
				st->lines_left--;
		} else if (c == '\n') {
			if (st->at_line_start)
				st->in_header = false; /* the blank line */
			st->at_line_start = true;
		} else if (c != '\r') {
			st->at_line_start = false;
		}
	}
	if (!st->in_header && st->lines_left == 0)
		*end_r = true;
	return n;
}

void
pop3_stream_stop(struct pop3_session *s)
{
	if (s->stream.fd >= 0)
		close(s->stream.fd);
	s->stream.fd = -1;
}

/*
 * Reads and sends 64 KiB at a time while the output is below the high-water
 * mark, so a 10 MiB message never sits in memory whole; on_drain calls this
 * again as the client catches up.
 */
void
pop3_stream_run(struct pop3_session *s)
{
	/* One process, one loop: the buffers are shared by all sessions. */
	static char chunk[POP3_CHUNK];
	static struct buf out = BUF_INIT;
	struct pop3_stream *st = &s->stream;
	while (st->fd >= 0 && conn_output_pending(s->conn) < CONN_OUTPUT_HIGH) {
		ssize_t n = read(st->fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			/* Half a multi-line answer is out: only hanging up is honest. */
			log_err("pop3 %s: user=%s read failed: %s", s->id, s->address,
				strerror(errno));
			pop3_stream_stop(s);
			conn_close(s->conn);
			return;
		}
		bool end = n == 0;
		size_t use = (size_t)n;
		if (st->top && n > 0)
			use = pop3_top_cut(st, chunk, (size_t)n, &end);
		dot_encode(&st->enc, chunk, use, &out);
		if (end) {
			dot_encode_finish(&st->enc, &out);
			pop3_stream_stop(s);
		}
		conn_write(s->conn, out.data, out.len);
		buf_reset(&out);
	}
}

void
pop3_update(struct pop3_session *s)
{
	size_t ndele = pop3_deleted_count(s);
	char *error = NULL;
	if (ndele > 0 && store_mailbox_expunge(s->mb, s->deleted, &error) < 0) {
		log_err("pop3 %s: user=%s expunge failed: %s", s->id, s->address, error);
		conn_writes(s->conn, "-ERR [SYS/TEMP] Some deleted messages were not removed\r\n");
		free(error);
	} else {
		conn_printf(s->conn, "+OK Bye, %zu messages deleted\r\n", ndele);
	}
	log_info("pop3 %s: logout user=%s rip=%s retr=%u dele=%zu", s->id, s->address,
		 conn_peer(s->conn), s->nretr, ndele);
	s->logged_out = true;
	/* Unlock now, not when the goodbye has drained: the client may reconnect at once. */
	store_mailbox_close(&s->mb);
	conn_close(s->conn);
}
