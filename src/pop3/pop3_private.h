#ifndef TERN_POP3_POP3_PRIVATE_H
#define TERN_POP3_POP3_PRIVATE_H

/* What the files of the POP3 session share; not for use outside src/pop3. */
#include <stdbool.h>
#include <stddef.h>

#include "core/dotstuff.h"

struct conn;
struct event;
struct sasl;
struct userdb_check;
struct server;
struct store_mailbox;

/* RFC 1939 §3: AUTHORIZATION, then TRANSACTION; UPDATE happens inside QUIT. */
enum pop3_state {
	POP3_STATE_AUTH = 1 << 0,
	POP3_STATE_TRANS = 1 << 1,
};

/* A RETR or TOP in progress: the rest of the file goes out from on_drain. */
struct pop3_stream {
	int fd;                    /* -1: nothing is streaming */
	struct dot_encoder enc;
	bool top;                  /* TOP: stop after the header and lines_left lines */
	bool in_header;
	bool at_line_start;
	unsigned long lines_left;
};

struct pop3_session {
	struct server *srv;
	struct conn *conn;
	char id[13];
	enum proto proto;          /* pop3, or pop3s (implicit TLS) */
	enum pop3_state state;
	char *user;                /* the USER argument, waiting for PASS */
	char *address;             /* canonical address once logged in */
	struct sasl *sasl;         /* an AUTH exchange: the next line is the response */
	struct userdb_check *pass_check; /* PASS's check on the pool; input waits */
	char *pass_login;          /* its claimed name, for the failure log */
	bool logged_out;           /* the final log line is written */
	unsigned bad_commands;     /* in a row */
	unsigned auth_failures;
	struct store_mailbox *mb;
	size_t count;
	bool *deleted;             /* count entries: marked by DELE, undone by RSET */
	unsigned nretr;
	struct pop3_stream stream;
};

/*
 * A command handler: 0 when the command was understood (whatever the
 * answer), -1 for a syntax error, answered through pop3_reply_bad.
 */
typedef int pop3_cmd_fn(struct pop3_session *s, int argc, char **argv);

pop3_cmd_fn pop3_cmd_user, pop3_cmd_pass, pop3_cmd_auth;
pop3_cmd_fn pop3_cmd_stat, pop3_cmd_list, pop3_cmd_uidl, pop3_cmd_top,
	pop3_cmd_retr, pop3_cmd_dele, pop3_cmd_rset, pop3_cmd_noop;

/*
 * The answer to a bad command (syntax, unknown, out of place). It counts
 * toward bad_command_limit; the command that reaches the limit gets only
 * the final "-ERR Too many bad commands" (one reply per command, RFC 1939
 * §3) and the session ends.
 */
void pop3_reply_bad(struct pop3_session *s, const char *reply);

/* May a password cross this connection now (TLS, or a trusted network)? */
bool pop3_auth_allowed(const struct pop3_session *s);
/* The client's line during an AUTH exchange (RFC 5034 §4). */
void pop3_auth_response(struct pop3_session *s, const char *line);
/* Forgets USER and any exchange in progress (after STLS, at the end). */
void pop3_auth_reset(struct pop3_session *s);

/* Sends what it can of a running RETR/TOP; called again from on_drain. */
void pop3_stream_run(struct pop3_session *s);
void pop3_stream_stop(struct pop3_session *s);
/* UPDATE (RFC 1939 §6): removes the deleted messages and says goodbye. */
void pop3_update(struct pop3_session *s);
size_t pop3_deleted_count(const struct pop3_session *s);

#endif
