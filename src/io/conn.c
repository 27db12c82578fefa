#include "io/conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/net.h"
#include "core/util.h"
#include "io/deadline.h"
#include "io/linger.h"

/*
 * The connection layer under every protocol: a bounded input buffer with a
 * line reader, an output queue (libevent's evbuffer), an idle timer, and a
 * deferred close. Sessions never see the socket; with TLS on, reads and
 * writes go through OpenSSL in conn_sys_read/conn_sys_write, so the
 * sessions above are the same with and without it.
 */
struct conn {
	struct event_base *base;
	int fd;
	/*
	 * Thousands of sessions sit idle for hours (IMAP IDLE), so an idle
	 * conn holds only what it must: ev_read and its place in the queue
	 * of conns with the same timeout (deadline.c). ev_write and
	 * the output evbuffer exist while output is queued, ev_later while a
	 * run from the loop is due; each is made on first need and freed
	 * when done (conn_want_write, conn_out, conn_schedule).
	 */
	struct event *ev_read;
	struct event *ev_write;
	struct deadline timeout; /* armed while timeout_ms is set, until closing */
	struct event *ev_later; /* runs on_input or the close from the loop */
	struct event *ev_delay; /* conn_pause_for, made on first use */
	void (*delay_then)(struct conn *c, void *ctx);
	const struct conn_handler *handler;
	void *ctx;

	struct buf in;
	size_t in_start;       /* bytes of in already handed out as lines */
	bool skipping_line;    /* inside an overlong line, dropping until LF */
	struct evbuffer *out;

	/* TCP only: an IPv4 or IPv6 address (not a sockaddr_storage, 100
	   bytes more on every connection). */
	union {
		struct sockaddr sa;
		struct sockaddr_in sin;
		struct sockaddr_in6 sin6;
	} peer;
	char peer_str[INET6_ADDRSTRLEN];
	unsigned local_port;
	unsigned timeout_ms;

	/* Client side: a connect in progress, the name for SNI, the failure. */
	bool client;
	bool connecting;
	unsigned idle_after_connect;
	char *tls_host;
	char *error;

	SSL *ssl;
	SSL_CTX *tls_wanted;   /* STARTTLS said: begin once the reply is out */
	bool handshaking;

	bool eof;
	bool paused;
	bool closing;
	bool closed;
	struct peer_slot *slot;
	struct conn *prev, *next; /* every open conn, for conn_shutdown_all */
};

/* Open connections per client address, for connections_per_client. */
struct peer_slot {
	char addr[64];
	unsigned count;
	struct peer_slot *next;
};

static struct peer_slot *peer_slots;
static struct conn *conn_all;
static unsigned conn_count;

static struct peer_slot *
peer_slot_get(const char *addr)
{
	for (struct peer_slot *s = peer_slots; s != NULL; s = s->next)
		if (strcmp(s->addr, addr) == 0)
			return s;
	struct peer_slot *s = xcalloc(1, sizeof(*s));
	snprintf(s->addr, sizeof(s->addr), "%s", addr);
	s->next = peer_slots;
	peer_slots = s;
	return s;
}

static void
peer_slot_put(struct peer_slot *slot)
{
	if (slot == NULL)
		return;
	if (--slot->count > 0)
		return;
	for (struct peer_slot **p = &peer_slots; *p != NULL; p = &(*p)->next) {
		if (*p == slot) {
			*p = slot->next;
			free(slot);
			return;
		}
	}
}

static void conn_on_read(evutil_socket_t fd, short what, void *arg);
static void conn_on_write(evutil_socket_t fd, short what, void *arg);
static void conn_on_timeout(struct deadline *d);
static void conn_on_later(evutil_socket_t fd, short what, void *arg);
static void conn_schedule(struct conn *c);
static void conn_finish(struct conn *c);
static void conn_fail(struct conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The output queue, made on first use. */
static struct evbuffer *
conn_out(struct conn *c)
{
	if (c->out == NULL && (c->out = evbuffer_new()) == NULL)
		abort();
	return c->out;
}

static size_t
conn_out_len(const struct conn *c)
{
	return c->out != NULL ? evbuffer_get_length(c->out) : 0;
}

/* Drops what is queued and the queue itself. */
static void
conn_out_drop(struct conn *c)
{
	if (c->out != NULL)
		evbuffer_free(c->out);
	c->out = NULL;
}

static void
conn_want_write(struct conn *c)
{
	if (c->ev_write == NULL &&
	    (c->ev_write = event_new(c->base, c->fd, EV_WRITE | EV_PERSIST, conn_on_write, c)) == NULL)
		abort();
	event_add(c->ev_write, NULL);
}

/* Nothing more to write for now. (libevent allows this in the event's own callback.) */
static void
conn_stop_write(struct conn *c)
{
	if (c->ev_write != NULL)
		event_free(c->ev_write);
	c->ev_write = NULL;
}

static struct conn *
conn_alloc(struct event_base *base, int fd, const struct sockaddr *peer, socklen_t peerlen,
	   const struct conn_handler *handler, void *ctx, bool client)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	c->base = base;
	c->fd = fd;
	c->handler = handler;
	c->ctx = ctx;
	evutil_make_socket_nonblocking(fd);
	/*
	 * Replies are small and come in pieces (untagged lines, then the
	 * tagged one): with Nagle's algorithm the last piece would wait for
	 * the peer's delayed ACK, 40 ms a command. Output is already batched
	 * in the evbuffer, so no delay is needed. (Fails harmlessly on a
	 * socket that is not TCP.)
	 */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (peerlen > sizeof(c->peer))
		peerlen = sizeof(c->peer);
	memcpy(&c->peer, peer, peerlen);
	net_addr_str(peer, c->peer_str, sizeof(c->peer_str));
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0) {
		if (local.ss_family == AF_INET)
			c->local_port = ntohs(((struct sockaddr_in *)&local)->sin_port);
		else if (local.ss_family == AF_INET6)
			c->local_port = ntohs(((struct sockaddr_in6 *)&local)->sin6_port);
	}
	c->ev_read = event_new(base, fd, EV_READ | EV_PERSIST, conn_on_read, c);
	if (c->ev_read == NULL)
		abort();
	/* Outgoing connections do not count against the server's limits. */
	c->client = client;
	if (!client) {
		c->slot = peer_slot_get(c->peer_str);
		c->slot->count++;
		conn_count++;
	}
	c->next = conn_all;
	if (conn_all != NULL)
		conn_all->prev = c;
	conn_all = c;
	return c;
}

struct conn *
conn_new(struct event_base *base, int fd, const struct sockaddr *peer, socklen_t peerlen,
	 const struct conn_handler *handler, void *ctx)
{
	struct conn *c = conn_alloc(base, fd, peer, peerlen, handler, ctx, false);
	event_add(c->ev_read, NULL);
	return c;
}

struct conn *
conn_connect(struct event_base *base, const struct sockaddr *addr, socklen_t addrlen,
	     unsigned connect_ms, unsigned idle_ms, const struct conn_handler *handler, void *ctx,
	     char **error_r)
{
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error_r = xasprintf("socket: %s", strerror(errno));
		return NULL;
	}
	int r = connect(fd, addr, addrlen);
	int err = r == 0 ? 0 : errno;
	struct conn *c = conn_alloc(base, fd, addr, addrlen, handler, ctx, true);
	if (r < 0 && err != EINPROGRESS) {
		/* Reported like a late failure: on_close from the loop. */
		conn_fail(c, "connect to %s: %s", c->peer_str, strerror(err));
		return c;
	}
	/* Writable means connected (or failed: SO_ERROR tells, conn_on_write). */
	c->connecting = true;
	conn_want_write(c);
	c->idle_after_connect = idle_ms;
	if (connect_ms > 0)
		conn_set_timeout_ms(c, connect_ms);
	return c;
}

const char *
conn_error(const struct conn *c)
{
	return c->error;
}

/* A client-side failure: remembered for the session, and the conn closes at once. */
static void
conn_fail(struct conn *c, const char *fmt, ...)
{
	if (c->error == NULL) {
		va_list ap;
		va_start(ap, fmt);
		if (vasprintf(&c->error, fmt, ap) < 0)
			abort();
		va_end(ap);
	}
	conn_out_drop(c);
	c->closing = true;
	event_del(c->ev_read);
	conn_stop_write(c);
	deadline_cancel(&c->timeout);
	conn_schedule(c);
}

void
conn_abort(struct conn *c, const char *reason)
{
	if (reason != NULL)
		conn_fail(c, "%s", reason);
	else
		conn_fail(c, "%s", "aborted");
}

const char *
conn_peer(const struct conn *c)
{
	return c->peer_str;
}

const struct sockaddr *
conn_peer_addr(const struct conn *c)
{
	return &c->peer.sa;
}

unsigned
conn_local_port(const struct conn *c)
{
	return c->local_port;
}

unsigned
conn_peer_count(const struct conn *c)
{
	return c->slot->count;
}

unsigned
conn_total_count(void)
{
	return conn_count;
}

void
conn_shutdown_all(void)
{
	/* Sessions only mark themselves closing here; none is freed. */
	for (struct conn *c = conn_all; c != NULL; c = c->next)
		if (!c->closing && c->handler->on_shutdown != NULL)
			c->handler->on_shutdown(c, c->ctx);
}

void
conn_set_timeout(struct conn *c, unsigned seconds)
{
	conn_set_timeout_ms(c, seconds * 1000);
}

void
conn_set_timeout_ms(struct conn *c, unsigned ms)
{
	c->timeout_ms = ms;
	if (ms == 0)
		deadline_cancel(&c->timeout);
	else
		deadline_arm(&c->timeout, c->base, ms, conn_on_timeout);
}

/* Drops the lines already handed out, so the buffer holds only new input. */
static void
conn_compact(struct conn *c)
{
	if (c->in_start == 0)
		return;
	buf_consume(&c->in, c->in_start);
	c->in_start = 0;
	/* An idle connection should hold no input memory. */
	if (c->in.len == 0)
		buf_free(&c->in);
}

enum conn_line
conn_read_line(struct conn *c, size_t max, char **line_r, size_t *len_r)
{
	/* A session that is closing takes no more commands. */
	if (c->closing)
		return CONN_LINE_NONE;
	for (;;) {
		char *start = c->in.data + c->in_start;
		size_t avail = c->in.len - c->in_start;
		char *lf = avail > 0 ? memchr(start, '\n', avail) : NULL;
		if (c->skipping_line) {
			if (lf == NULL) {
				c->in_start = c->in.len;
				return CONN_LINE_NONE;
			}
			c->in_start += (size_t)(lf - start) + 1;
			c->skipping_line = false;
			continue;
		}
		if (lf == NULL) {
			if (avail <= max)
				return CONN_LINE_NONE;
			/* Too long and still no end: report once, skip the rest. */
			c->in_start = c->in.len;
			c->skipping_line = true;
			*line_r = start;
			*len_r = max;
			return CONN_LINE_TOO_LONG;
		}
		size_t len = (size_t)(lf - start);
		c->in_start += len + 1;
		if (len > 0 && start[len - 1] == '\r')
			len--;
		if (len > max) {
			*line_r = start;
			*len_r = max;
			return CONN_LINE_TOO_LONG;
		}
		start[len] = '\0';
		*line_r = start;
		*len_r = len;
		return CONN_LINE_OK;
	}
}

size_t
conn_input(struct conn *c, const char **data_r)
{
	*data_r = c->in.data + c->in_start;
	return c->in.len - c->in_start;
}

void
conn_consume(struct conn *c, size_t n)
{
	c->in_start += n;
	if (c->in_start > c->in.len)
		c->in_start = c->in.len;
}

void
conn_discard_input(struct conn *c)
{
	c->in_start = c->in.len;
	conn_compact(c);
}

bool
conn_busy(const struct conn *c)
{
	return c->paused || c->closing || c->connecting || c->tls_wanted != NULL || c->handshaking ||
	       conn_out_len(c) >= CONN_OUTPUT_HIGH;
}

static void
conn_schedule(struct conn *c)
{
	if (c->ev_later == NULL && (c->ev_later = event_new(c->base, -1, 0, conn_on_later, c)) == NULL)
		abort();
	event_active(c->ev_later, 0, 0);
}

void
conn_pause(struct conn *c)
{
	c->paused = true;
}

void
conn_resume(struct conn *c)
{
	c->paused = false;
	conn_schedule(c);
}

static void
conn_on_delay(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	(void)fd;
	(void)what;
	if (!c->closing)
		c->delay_then(c, c->ctx);
}

void
conn_pause_for(struct conn *c, unsigned ms, void (*then)(struct conn *c, void *ctx))
{
	conn_pause(c);
	c->delay_then = then;
	if (c->ev_delay == NULL && (c->ev_delay = evtimer_new(c->base, conn_on_delay, c)) == NULL)
		abort();
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
	evtimer_add(c->ev_delay, &tv);
}

void
conn_write(struct conn *c, const void *p, size_t n)
{
	if (c->closed)
		return;
	evbuffer_add(conn_out(c), p, n);
	conn_want_write(c);
}

void
conn_writes(struct conn *c, const char *s)
{
	conn_write(c, s, strlen(s));
}

void
conn_printf(struct conn *c, const char *fmt, ...)
{
	if (c->closed)
		return;
	va_list ap;
	va_start(ap, fmt);
	evbuffer_add_vprintf(conn_out(c), fmt, ap);
	va_end(ap);
	conn_want_write(c);
}

size_t
conn_output_pending(const struct conn *c)
{
	return conn_out_len(c);
}

void
conn_close(struct conn *c)
{
	c->closing = true;
	event_del(c->ev_read);
	deadline_cancel(&c->timeout);
	conn_schedule(c);
}

bool
conn_closing(const struct conn *c)
{
	return c->closing;
}

static void
conn_free(struct conn *c)
{
	event_free(c->ev_read);
	conn_stop_write(c);
	deadline_cancel(&c->timeout);
	if (c->ev_later != NULL)
		event_free(c->ev_later);
	if (c->ev_delay != NULL)
		event_free(c->ev_delay);
	conn_out_drop(c);
	buf_free(&c->in);
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	if (c->fd >= 0)
		close(c->fd);
	free(c->tls_host);
	free(c->error);
	peer_slot_put(c->slot);
	if (!c->client)
		conn_count--;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		conn_all = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	free(c);
}

void
conn_finish_all(void)
{
	while (conn_all != NULL)
		conn_finish(conn_all);
	linger_close_all();
}

/* The end: the session frees itself in on_close, then the conn goes. */
static void
conn_finish(struct conn *c)
{
	if (c->closed)
		return;
	c->closed = true;
	event_del(c->ev_read);
	conn_stop_write(c);
	deadline_cancel(&c->timeout);
	if (c->ssl != NULL && !c->handshaking && !c->connecting)
		SSL_shutdown(c->ssl); /* close_notify, best effort */
	if (c->client || c->eof) {
		shutdown(c->fd, SHUT_RDWR);
	} else {
		/* The peer may still be sending: see io/linger.h. */
		linger_close(c->base, c->fd);
		c->fd = -1;
	}
	c->handler->on_close(c, c->ctx);
	conn_free(c);
}

static void
conn_dispatch_input(struct conn *c)
{
	if (c->closing || c->paused)
		return;
	if (c->in.len > c->in_start)
		c->handler->on_input(c, c->ctx);
	conn_compact(c);
	/* The peer is gone and the session took what it could: finish. */
	if (c->eof && !c->closing)
		conn_close(c);
	/* Stop reading while a full buffer waits for the session. */
	if (!c->closing && !c->handshaking) {
		if (c->in.len >= CONN_INPUT_MAX || conn_busy(c)) {
			event_del(c->ev_read);
		} else {
			event_add(c->ev_read, NULL);
			/* OpenSSL may hold decrypted bytes the socket won't signal. */
			if (c->ssl != NULL && SSL_pending(c->ssl) > 0)
				event_active(c->ev_read, EV_READ, 0);
		}
	}
}

/* Maps an OpenSSL result to the read(2)/write(2) convention. */
static ssize_t
conn_tls_result(struct conn *c, int r)
{
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_WRITE:
		conn_want_write(c);
		/* fall through */
	case SSL_ERROR_WANT_READ:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	default:
		ERR_clear_error();
		errno = ECONNRESET;
		return -1;
	}
}

static ssize_t
conn_sys_read(struct conn *c, void *p, size_t n)
{
	if (c->ssl == NULL)
		return read(c->fd, p, n);
	int r = SSL_read(c->ssl, p, (int)n);
	return r > 0 ? r : conn_tls_result(c, r);
}

static void
conn_tls_handshake(struct conn *c)
{
	int r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->handshaking = false;
		log_debug("%s: TLS %s %s", c->peer_str, SSL_get_version(c->ssl),
			  SSL_get_cipher_name(c->ssl));
		/* Implicit TLS: the greeting was queued during the handshake. */
		if (conn_out_len(c) == 0)
			conn_stop_write(c);
		else
			conn_want_write(c);
		event_add(c->ev_read, NULL);
		conn_schedule(c);
		return;
	}
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		event_add(c->ev_read, NULL);
		if (e == SSL_ERROR_WANT_WRITE)
			conn_want_write(c);
		else
			conn_stop_write(c);
		return;
	}
	char detail[256];
	ERR_error_string_n(ERR_get_error(), detail, sizeof(detail));
	ERR_clear_error();
	if (c->client) {
		long v = SSL_get_verify_result(c->ssl);
		if (v != X509_V_OK)
			snprintf(detail, sizeof(detail), "certificate: %s",
				 X509_verify_cert_error_string(v));
	}
	log_info("%s: TLS handshake failed: %s", c->peer_str, detail);
	/* Nothing can be said in clear now: drop what was queued and go. */
	conn_fail(c, "TLS handshake with %s failed: %s", c->peer_str, detail);
}

/*
 * The client side: SNI names the host (RFC 6066 §3, never an address
 * literal); with verification on, the certificate must also match it
 * (RFC 6125 via OpenSSL's host check).
 */
static void
conn_tls_client_setup(struct conn *c)
{
	SSL_set_connect_state(c->ssl);
	const char *host = c->tls_host;
	if (host == NULL)
		return;
	unsigned char addr[16];
	bool literal = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
	if (!literal)
		SSL_set_tlsext_host_name(c->ssl, host);
	if (SSL_get_verify_mode(c->ssl) & SSL_VERIFY_PEER) {
		if (literal)
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host);
		else
			SSL_set1_host(c->ssl, host);
	}
}

static void
conn_tls_begin(struct conn *c)
{
	/* RFC 3207 §4.2: bytes that came before the handshake are discarded. */
	conn_discard_input(c);
	c->ssl = SSL_new(c->tls_wanted);
	c->tls_wanted = NULL;
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
		abort();
	if (c->client)
		conn_tls_client_setup(c);
	else
		SSL_set_accept_state(c->ssl);
	c->handshaking = true;
	conn_tls_handshake(c);
}

void
conn_start_tls(struct conn *c, SSL_CTX *ctx)
{
	/*
	 * RFC 3207 §4.2: commands pipelined after STARTTLS were sent in clear
	 * and must not be acted on. Reading stops until the reply is out; then
	 * the handshake starts (conn_on_write).
	 */
	conn_discard_input(c);
	c->tls_wanted = ctx;
	event_del(c->ev_read);
	if (conn_out_len(c) == 0)
		conn_tls_begin(c);
}

void
conn_start_tls_client(struct conn *c, SSL_CTX *ctx, const char *host)
{
	free(c->tls_host);
	c->tls_host = host != NULL ? xstrdup(host) : NULL;
	conn_start_tls(c, ctx);
}

bool
conn_is_tls(const struct conn *c)
{
	return c->ssl != NULL || c->tls_wanted != NULL;
}

static void
conn_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	(void)fd;
	(void)what;
	char tmp[16384];
	size_t room = CONN_INPUT_MAX - (c->in.len < CONN_INPUT_MAX ? c->in.len : CONN_INPUT_MAX);
	if (room == 0) {
		event_del(c->ev_read);
		return;
	}
	if (c->handshaking) {
		conn_tls_handshake(c);
		return;
	}
	if (c->tls_wanted != NULL)
		return;
	ssize_t n = conn_sys_read(c, tmp, room < sizeof(tmp) ? room : sizeof(tmp));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		c->eof = true;
		event_del(c->ev_read);
	} else {
		buf_append(&c->in, tmp, (size_t)n);
		if (c->timeout_ms > 0)
			conn_set_timeout_ms(c, c->timeout_ms);
	}
	conn_dispatch_input(c);
}

static ssize_t
conn_sys_write(struct conn *c)
{
	if (c->out == NULL)
		return 0;
	if (c->ssl == NULL)
		return evbuffer_write(c->out, c->fd);
	ssize_t total = 0;
	while (evbuffer_get_length(c->out) > 0) {
		size_t n = evbuffer_get_length(c->out);
		if (n > 16384)
			n = 16384; /* one TLS record */
		unsigned char *p = evbuffer_pullup(c->out, (ssize_t)n);
		int r = SSL_write(c->ssl, p, (int)n);
		if (r <= 0) {
			ssize_t e = conn_tls_result(c, r);
			return total > 0 && errno == EAGAIN ? total : e;
		}
		evbuffer_drain(c->out, (size_t)r);
		total += r;
	}
	return total;
}

/* The socket became writable while connecting: did the connect succeed? */
static void
conn_connected(struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		conn_fail(c, "connect to %s: %s", c->peer_str, strerror(err));
		return;
	}
	c->connecting = false;
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	if (getsockname(c->fd, (struct sockaddr *)&local, &llen) == 0 &&
	    (local.ss_family == AF_INET || local.ss_family == AF_INET6))
		c->local_port = ntohs(local.ss_family == AF_INET
					      ? ((struct sockaddr_in *)&local)->sin_port
					      : ((struct sockaddr_in6 *)&local)->sin6_port);
	event_add(c->ev_read, NULL);
	if (conn_out_len(c) == 0)
		conn_stop_write(c);
	/* The idle timer now waits for the first input (the greeting). */
	conn_set_timeout_ms(c, c->idle_after_connect);
}

static void
conn_on_write(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	(void)fd;
	(void)what;
	if (c->connecting) {
		conn_connected(c);
		return;
	}
	if (c->handshaking) {
		conn_tls_handshake(c);
		return;
	}
	bool was_busy = conn_busy(c);
	ssize_t n = conn_sys_write(c);
	if (n < 0 && errno != EAGAIN && errno != EINTR) {
		/* The peer is gone: nothing more can be said to it. */
		conn_out_drop(c);
		c->closing = true;
		conn_schedule(c);
		return;
	}
	size_t left = conn_out_len(c);
	if (left == 0) {
		/* Idle again: no write event, no output queue. */
		conn_stop_write(c);
		conn_out_drop(c);
	}
	if (left == 0 && c->tls_wanted != NULL && !c->closing) {
		conn_tls_begin(c);
		return;
	}
	if (c->closing) {
		if (left == 0)
			conn_finish(c);
		return;
	}
	if (left < CONN_OUTPUT_HIGH / 2 && c->handler->on_drain != NULL)
		c->handler->on_drain(c, c->ctx);
	if (was_busy && !conn_busy(c))
		conn_schedule(c);
}

static void
conn_on_timeout(struct deadline *d)
{
	struct conn *c = (struct conn *)((char *)d - offsetof(struct conn, timeout));
	if (c->closing)
		return;
	c->handler->on_timeout(c, c->ctx);
	conn_close(c);
}

static void
conn_on_later(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	(void)fd;
	(void)what;
	/* Done with until the next conn_schedule (safe in its own callback). */
	event_free(c->ev_later);
	c->ev_later = NULL;
	if (c->closing) {
		if (conn_out_len(c) == 0)
			conn_finish(c);
		return;
	}
	conn_dispatch_input(c);
}
