/*
 * tern sendmail's SMTP client: one blocking connection to the local ternd.
 * Blocking I/O is fine here: it is a short-lived command, not the server.
 */
#include "queue/sendmail_private.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sysexits.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/dotstuff.h"
#include "core/util.h"

/* How long one reply may take: RFC 5321 §4.5.3.2 allows minutes (DATA end: 10). */
#define SM_TIMEOUT_SECONDS 600
/* A reply line longer than this is a broken server (RFC 5321 §4.5.3.1.5: 512). */
#define SM_LINE_MAX 4096

struct sm_conn {
	int fd;
	bool verbose;
	struct buf in;
};

/* The first address of listen.smtp, with a wildcard replaced by loopback. */
static int
sm_target(const struct config *cfg, char **host_r, char **port_r, char **error_r)
{
	const char *l = cfg->listen[PROTO_SMTP];
	if (l == NULL) {
		*error_r = xasprintf("%s: no listen.smtp: ternd takes no mail", cfg->path);
		return -1;
	}
	size_t len = strcspn(l, " \t,");
	char *first = xstrndup(l, len);
	char *colon = strrchr(first, ':');
	if (colon == NULL) {
		*error_r = xasprintf("%s: bad listen.smtp '%s'", cfg->path, first);
		free(first);
		return -1;
	}
	*colon = '\0';
	*port_r = xstrdup(colon + 1);
	char *host = first;
	if (host[0] == '[') {
		host++;
		host[strcspn(host, "]")] = '\0';
	}
	if (strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0 || host[0] == '\0')
		host = "127.0.0.1";
	else if (strcmp(host, "::") == 0)
		host = "::1";
	*host_r = xstrdup(host);
	free(first);
	return 0;
}

static int
sm_connect(const struct config *cfg, struct sm_conn *c, char **error_r)
{
	char *host, *port;
	if (sm_target(cfg, &host, &port, error_r) < 0)
		return -1;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	int gai = getaddrinfo(host, port, &hints, &ai);
	c->fd = -1;
	if (gai != 0) {
		*error_r = xasprintf("%s:%s: %s", host, port, gai_strerror(gai));
	} else {
		c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c->fd >= 0 && connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			close(c->fd);
			c->fd = -1;
		}
		if (c->fd < 0)
			*error_r = xasprintf("cannot reach ternd at %s port %s: %s", host, port,
					     strerror(errno));
		freeaddrinfo(ai);
	}
	if (c->fd >= 0) {
		struct timeval tv = { SM_TIMEOUT_SECONDS, 0 };
		setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	free(host);
	free(port);
	return c->fd >= 0 ? 0 : -1;
}

/* One line without its CRLF into line; -1 on EOF, error or an overlong line. */
static int
sm_read_line(struct sm_conn *c, struct buf *line)
{
	for (;;) {
		char *nl = c->in.len > 0 ? memchr(c->in.data, '\n', c->in.len) : NULL;
		if (nl != NULL) {
			size_t n = (size_t)(nl - c->in.data);
			buf_reset(line);
			buf_append(line, c->in.data, n > 0 && nl[-1] == '\r' ? n - 1 : n);
			buf_consume(&c->in, n + 1);
			if (c->verbose)
				fprintf(stderr, "<<< %s\n", line->data);
			return 0;
		}
		if (c->in.len > SM_LINE_MAX)
			return -1;
		char chunk[4096];
		ssize_t r = read(c->fd, chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		buf_append(&c->in, chunk, (size_t)r);
	}
}

/*
 * Reads a whole (possibly multi-line) reply. Returns its code, or -1 if
 * the dialogue broke; *text_r gets the reply text (lines joined by blanks).
 */
static int
sm_reply(struct sm_conn *c, struct buf *text)
{
	struct buf line = BUF_INIT;
	int code = -1;
	buf_reset(text);
	while (sm_read_line(c, &line) == 0) {
		if (line.len < 3 || (line.len > 3 && line.data[3] != ' ' && line.data[3] != '-'))
			break;
		if (text->len > 0)
			buf_appendc(text, ' ');
		buf_append(text, line.data, line.len);
		if (line.len == 3 || line.data[3] == ' ') {
			code = atoi(line.data);
			if (code < 200 || code > 599)
				code = -1;
			break;
		}
	}
	buf_free(&line);
	return code;
}

static int
sm_send(struct sm_conn *c, const char *data, size_t len)
{
	return write_all(c->fd, data, len);
}

/* Sends one command and returns the reply code (-1: broken). */
static int
sm_cmd(struct sm_conn *c, struct buf *text, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
sm_cmd(struct sm_conn *c, struct buf *text, const char *fmt, ...)
{
	struct buf cmd = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vappendf(&cmd, fmt, ap);
	va_end(ap);
	if (c->verbose)
		fprintf(stderr, ">>> %s\n", cmd.data);
	buf_appends(&cmd, "\r\n");
	int r = sm_send(c, cmd.data, cmd.len);
	buf_free(&cmd);
	return r < 0 ? -1 : sm_reply(c, text);
}

/* The exit code for a failed step, after saying why on stderr. */
static int
sm_fail(int code, const struct buf *text, const char *what)
{
	if (code < 0) {
		fprintf(stderr, "sendmail: ternd broke off the dialogue at %s\n", what);
		return EX_PROTOCOL;
	}
	fprintf(stderr, "sendmail: %s refused: %s\n", what, text->data);
	return code >= 500 ? EX_UNAVAILABLE : EX_TEMPFAIL;
}

static bool
sm_has_8bit(const struct buf *msg)
{
	for (size_t i = 0; i < msg->len; i++)
		if ((unsigned char)msg->data[i] >= 0x80)
			return true;
	return false;
}

/* MAIL and every RCPT; all recipients or none (the caller gets one answer). */
static int
sm_envelope(struct sm_conn *c, struct buf *text, const char *sender, char *const *rcpts,
	    size_t nrcpts, const struct buf *msg, bool ehlo_8bit)
{
	int code = sm_cmd(c, text, "MAIL FROM:<%s>%s", sender,
			  ehlo_8bit && sm_has_8bit(msg) ? " BODY=8BITMIME" : "");
	if (code != 250)
		return sm_fail(code, text, "the sender");
	for (size_t i = 0; i < nrcpts; i++) {
		code = sm_cmd(c, text, "RCPT TO:<%s>", rcpts[i]);
		if (code == 250 || code == 251)
			continue;
		if (code >= 500) {
			fprintf(stderr, "sendmail: <%s>: %s\n", rcpts[i], text->data);
			return EX_NOUSER;
		}
		return sm_fail(code, text, "a recipient");
	}
	return 0;
}

static int
sm_data(struct sm_conn *c, struct buf *text, const struct buf *msg)
{
	int code = sm_cmd(c, text, "DATA");
	if (code != 354)
		return sm_fail(code, text, "DATA");
	struct dot_encoder enc;
	struct buf wire = BUF_INIT;
	dot_encoder_init(&enc);
	dot_encode(&enc, msg->data, msg->len, &wire);
	dot_encode_finish(&enc, &wire);
	if (c->verbose)
		fprintf(stderr, ">>> (%zu bytes of message)\n>>> .\n", msg->len);
	int r = sm_send(c, wire.data, wire.len);
	buf_free(&wire);
	code = r < 0 ? -1 : sm_reply(c, text);
	/* Only this 250 means ternd has the message on disk. */
	if (code != 250)
		return sm_fail(code, text, "the message");
	return 0;
}

int
sendmail_submit(const struct config *cfg, const char *sender, char *const *rcpts,
		size_t nrcpts, const struct buf *msg, bool verbose)
{
	struct sm_conn c = { .fd = -1, .verbose = verbose };
	struct buf text = BUF_INIT;
	char *error = NULL;
	int ret;
	if (sm_connect(cfg, &c, &error) < 0) {
		fprintf(stderr, "sendmail: %s; the message was not sent\n", error);
		free(error);
		return EX_TEMPFAIL;
	}
	int code = sm_reply(&c, &text);
	if (code != 220) {
		ret = sm_fail(code, &text, "the connection");
		goto out;
	}
	code = sm_cmd(&c, &text, "EHLO %s", cfg->hostname);
	if (code != 250) {
		ret = sm_fail(code, &text, "EHLO");
		goto out;
	}
	bool ehlo_8bit = strstr(text.data, "8BITMIME") != NULL;
	ret = sm_envelope(&c, &text, sender, rcpts, nrcpts, msg, ehlo_8bit);
	if (ret == 0)
		ret = sm_data(&c, &text, msg);
	if (ret == 0 || ret == EX_NOUSER || ret == EX_UNAVAILABLE || ret == EX_TEMPFAIL)
		sm_cmd(&c, &text, "QUIT");
out:
	close(c.fd);
	buf_free(&c.in);
	buf_free(&text);
	return ret;
}

/* Copies what arrived on from to to; bare LF becomes CRLF when crlf is set. */
static int
sm_pump(int from, int to, bool crlf, bool *prev_cr)
{
	char chunk[4096];
	ssize_t n = read(from, chunk, sizeof(chunk));
	if (n < 0 && errno == EINTR)
		return 0;
	if (n <= 0)
		return -1;
	if (!crlf)
		return write_all(to, chunk, (size_t)n) < 0 ? -2 : 0;
	struct buf out = BUF_INIT;
	for (ssize_t i = 0; i < n; i++) {
		if (chunk[i] == '\n' && !*prev_cr)
			buf_appendc(&out, '\r');
		buf_appendc(&out, chunk[i]);
		*prev_cr = chunk[i] == '\r';
	}
	int r = write_all(to, out.data, out.len);
	buf_free(&out);
	return r < 0 ? -2 : 0;
}

int
sendmail_relay_stdio(const struct config *cfg, bool verbose)
{
	struct sm_conn c = { .fd = -1, .verbose = verbose };
	char *error = NULL;
	if (sm_connect(cfg, &c, &error) < 0) {
		fprintf(stderr, "sendmail: %s\n", error);
		free(error);
		return EX_TEMPFAIL;
	}
	/* The relay waits on the peers as long as they like: no read timeout. */
	struct timeval none = { 0, 0 };
	setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
	struct pollfd fds[2] = { { STDIN_FILENO, POLLIN, 0 }, { c.fd, POLLIN, 0 } };
	bool prev_cr = false;
	int ret = 0;
	for (;;) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			ret = EX_OSERR;
			break;
		}
		if (fds[1].revents != 0) {
			int r = sm_pump(c.fd, STDOUT_FILENO, false, &prev_cr);
			if (r < 0) {
				ret = r == -2 ? EX_IOERR : 0;
				break; /* ternd closed, after QUIT or a 421 */
			}
		}
		if (fds[0].revents != 0) {
			int r = sm_pump(STDIN_FILENO, c.fd, true, &prev_cr);
			if (r < 0) {
				/* stdin ended: let ternd finish what it has, then stop. */
				shutdown(c.fd, SHUT_WR);
				fds[0].fd = -1;
			}
		}
	}
	close(c.fd);
	return ret;
}
