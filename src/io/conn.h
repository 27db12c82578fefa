#ifndef TERN_IO_CONN_H
#define TERN_IO_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct conn;
struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

/*
 * What a protocol session supplies. The conn calls on_input whenever input is
 * buffered and the session is not busy (output backed up, paused or closing);
 * the session then takes as many lines as it wants. on_close comes last, from
 * the event loop (never from inside a conn_* call), and must free the session.
 */
struct conn_handler {
	void (*on_input)(struct conn *c, void *ctx);
	/* Output fell below the low-water mark: a streaming reply may go on. */
	void (*on_drain)(struct conn *c, void *ctx);
	/* No input for the timeout: write a goodbye; the conn then closes. */
	void (*on_timeout)(struct conn *c, void *ctx);
	void (*on_close)(struct conn *c, void *ctx);
	/* The server is stopping: end the session now if nothing is in flight. */
	void (*on_shutdown)(struct conn *c, void *ctx);
};

enum conn_line {
	CONN_LINE_NONE,     /* no complete line yet */
	CONN_LINE_OK,       /* *line_r holds one line without its CRLF or LF */
	CONN_LINE_TOO_LONG, /* a line over max: reported once, the rest of it is skipped;
			       *line_r holds its first max bytes, not terminated */
};

/* Output above this makes the conn busy: on_input waits for the drain. */
#define CONN_OUTPUT_HIGH (256 * 1024)
/* Input is never buffered beyond this; reading stops until it is consumed. */
#define CONN_INPUT_MAX (256 * 1024)

struct conn *conn_new(struct event_base *base, int fd, const struct sockaddr *peer,
		      socklen_t peerlen, const struct conn_handler *handler, void *ctx);

/*
 * Client side: a non-blocking connect to addr. The session hears nothing
 * until input arrives (the greeting); a failed connect, or none within
 * connect_ms (on_timeout first), closes the conn, and conn_error says why.
 * Once connected, the idle timeout is idle_ms (the greeting's).
 * Client conns do not count in conn_peer_count / conn_total_count. NULL
 * only when no socket can be made.
 */
struct conn *conn_connect(struct event_base *base, const struct sockaddr *addr,
			  socklen_t addrlen, unsigned connect_ms, unsigned idle_ms,
			  const struct conn_handler *handler, void *ctx, char **error_r);
/* Why a client conn failed (connect, TLS handshake, conn_abort), or NULL. */
const char *conn_error(const struct conn *c);
/* Drops queued output and closes at once (a timed-out or broken peer). */
void conn_abort(struct conn *c, const char *reason);

/* The peer's address as text ("192.0.2.1", "::1"). */
const char *conn_peer(const struct conn *c);
const struct sockaddr *conn_peer_addr(const struct conn *c);
/* The local port the client connected to. */
unsigned conn_local_port(const struct conn *c);
/* Open connections from the same address as this one, this one included. */
unsigned conn_peer_count(const struct conn *c);
/* Open connections in this process. */
unsigned conn_total_count(void);
/* SIGTERM: asks every open session to end (on_shutdown). */
void conn_shutdown_all(void);
/* At exit: ends every conn still open at once (on_close, then freed). */
void conn_finish_all(void);

/* Idle timeout in seconds, restarted by every read; 0 turns it off. */
void conn_set_timeout(struct conn *c, unsigned seconds);
void conn_set_timeout_ms(struct conn *c, unsigned ms);

/*
 * Takes one line. The pointer stays valid until the next conn_read_line,
 * conn_consume or return to the event loop; the line is NUL-terminated and
 * *len_r excludes the terminator. A bare LF ends a line here too (commands).
 */
enum conn_line conn_read_line(struct conn *c, size_t max, char **line_r, size_t *len_r);
/* Raw input for streaming (SMTP DATA): look, then consume what was used. */
size_t conn_input(struct conn *c, const char **data_r);
void conn_consume(struct conn *c, size_t n);
/* Drops all buffered input (STARTTLS: what was pipelined before the handshake). */
void conn_discard_input(struct conn *c);
/* True when the session should not take more input now. */
bool conn_busy(const struct conn *c);
/* Stops on_input until resumed (a delay after a failed login, say). */
void conn_pause(struct conn *c);
void conn_resume(struct conn *c);
/*
 * Pauses input for ms milliseconds, then calls then() from the loop (not
 * if the conn is closing by then); then() resumes or closes. The delay
 * before answering a failed login, in every protocol.
 */
void conn_pause_for(struct conn *c, unsigned ms, void (*then)(struct conn *c, void *ctx));

/*
 * Turns TLS on (server side): at once for implicit-TLS ports, or after the
 * queued reply for STARTTLS. Buffered and pipelined input is discarded.
 */
void conn_start_tls(struct conn *c, struct ssl_ctx_st *ctx);
/*
 * Client side of STARTTLS (RFC 3207): call once the 220 reply is read;
 * input still buffered is discarded. host (may be NULL) is sent as SNI
 * unless it is an address literal, and checked against the certificate
 * when ctx verifies peers (tls_client_ctx_new). Output queued after this
 * call goes out once the handshake is done.
 */
void conn_start_tls_client(struct conn *c, struct ssl_ctx_st *ctx, const char *host);
bool conn_is_tls(const struct conn *c);

void conn_write(struct conn *c, const void *p, size_t n);
void conn_writes(struct conn *c, const char *s);
void conn_printf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
size_t conn_output_pending(const struct conn *c);

/* Flushes what is queued, then closes; on_close follows from the loop. */
void conn_close(struct conn *c);
bool conn_closing(const struct conn *c);

#endif
