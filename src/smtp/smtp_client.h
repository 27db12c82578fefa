#ifndef TERN_SMTP_SMTP_CLIENT_H
#define TERN_SMTP_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

struct event_base;
struct ssl_ctx_st;
struct smtp_client;

/*
 * The SMTP client for relay: one connection to one host, one or more
 * messages over it (RFC 5321, with PIPELINING, SIZE, 8BITMIME, STARTTLS
 * and AUTH PLAIN/LOGIN), asynchronous on the caller's event loop.
 */

enum smtp_client_status {
	SMTP_RCPT_PENDING,   /* not answered yet (only seen inside the client) */
	SMTP_RCPT_DELIVERED, /* the peer took responsibility (250 after the dot) */
	SMTP_RCPT_TEMPFAIL,  /* try again later */
	SMTP_RCPT_PERMFAIL,  /* bounce */
};

/* What became of one recipient. */
struct smtp_rcpt_result {
	enum smtp_client_status status;
	unsigned code;      /* the reply code, or 421/451/554 made up for local causes */
	char enhanced[16];  /* "5.1.1": from the reply (RFC 3463) or derived from code */
	/*
	 * The whole reply, its lines joined with "\n", codes kept ("550-5.1.1
	 * ...\n550 5.1.1 ..."), at most SMTP_CLIENT_REPLY_MAX bytes; or a
	 * local explanation ("connect to 192.0.2.1: Connection refused").
	 */
	char *text;
};

/* One message to send; the caller keeps it alive until on_done. */
struct smtp_client_msg {
	const char *id;           /* for the log */
	const char *sender;       /* "" for the null reverse-path */
	const char *const *rcpts;
	size_t nrcpt;
	int fd;                   /* the message as stored (LF or CRLF line ends) */
	off_t offset;
	size_t size;
	bool eightbit;            /* has 8-bit content: BODY=8BITMIME needed */
	/* Filled in by the client: nrcpt entries, valid during on_done. */
	struct smtp_rcpt_result *results;
};

enum smtp_client_tls {
	SMTP_TLS_NONE,          /* never STARTTLS */
	SMTP_TLS_OPPORTUNISTIC, /* STARTTLS when offered, else clear text */
	SMTP_TLS_REQUIRED,      /* no STARTTLS, or a failed one: temporary failure */
};

/* Milliseconds; 0 takes the RFC 5321 §4.5.3.2 default. */
struct smtp_client_timeouts {
	unsigned connect;  /* default 5 min, like the greeting */
	unsigned greeting; /* §4.5.3.2.1: 5 min */
	unsigned command;  /* EHLO, STARTTLS, AUTH, RSET, QUIT: 5 min */
	unsigned mail;     /* §4.5.3.2.2: 5 min */
	unsigned rcpt;     /* §4.5.3.2.3: 5 min */
	unsigned data;     /* §4.5.3.2.4: 2 min for the 354 */
	unsigned block;    /* §4.5.3.2.5: 3 min for each block of the body to go */
	unsigned dot;      /* §4.5.3.2.6: 10 min for the reply to the final dot */
};

struct smtp_client_opts {
	const char *helo_name;   /* our name in EHLO/HELO */
	const char *host;        /* the peer's name: SNI, certificate check, logs */
	enum smtp_client_tls tls;
	struct ssl_ctx_st *tls_ctx; /* tls_client_ctx_new(); needed unless SMTP_TLS_NONE */
	const char *auth_user;   /* AUTH PLAIN or LOGIN, only ever under TLS */
	const char *auth_pass;
	struct smtp_client_timeouts timeouts;
};

/* Longest reply line taken (§4.5.3.1.5 asks for 512) and longest reply. */
#define SMTP_CLIENT_LINE_MAX 4096
#define SMTP_CLIENT_REPLY_MAX 16384

/*
 * Called once, from the event loop, when every message has its results;
 * the client frees itself after it returns.
 */
typedef void smtp_client_done_fn(struct smtp_client_msg *msgs, size_t nmsg, void *ctx);

/*
 * Connects to addr and delivers msgs in order. Never fails at once: a
 * failure to connect, like every failure, arrives through on_done as
 * temporary failures. opts and its strings are copied; msgs (and the
 * strings and fds they point to) must stay valid until on_done.
 */
struct smtp_client *smtp_client_start(struct event_base *base, const struct sockaddr *addr,
				      socklen_t addrlen, const struct smtp_client_opts *opts,
				      struct smtp_client_msg *msgs, size_t nmsg,
				      smtp_client_done_fn *on_done, void *ctx);

const char *smtp_client_status_name(enum smtp_client_status status);

#endif
