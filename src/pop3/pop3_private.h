#ifndef TERN_POP3_POP3_PRIVATE_H
#define TERN_POP3_POP3_PRIVATE_H

/* What the files of the POP3 session share; not for use outside src/pop3. */
#include <stdbool.h>
#include <stddef.h>

#include "core/dotstuff.h"

struct conn;
struct event;
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
	bool sasl_wait;            /* AUTH PLAIN sent "+ ": the next line is the response */
	bool logged_out;           /* the final log line is written */
	unsigned bad_commands;     /* in a row */
	unsigned auth_failures;
	struct event *delay;       /* the pause after a failed login */
	struct store_mailbox *mb;
	size_t count;
	bool *deleted;             /* count entries: marked by DELE, undone by RSET */
	unsigned nretr;
	struct pop3_stream stream;
};

/*
 * A command handler: 0 when the command was understood (whatever the
 * answer), -1 for a syntax error, which counts toward bad_command_limit.
 */
typedef int pop3_cmd_fn(struct pop3_session *s, int argc, char **argv);

pop3_cmd_fn pop3_cmd_stat, pop3_cmd_list, pop3_cmd_uidl, pop3_cmd_top,
	pop3_cmd_retr, pop3_cmd_dele, pop3_cmd_rset, pop3_cmd_noop;

/* Sends what it can of a running RETR/TOP; called again from on_drain. */
void pop3_stream_run(struct pop3_session *s);
void pop3_stream_stop(struct pop3_session *s);
/* UPDATE (RFC 1939 §6): removes the deleted messages and says goodbye. */
void pop3_update(struct pop3_session *s);
size_t pop3_deleted_count(const struct pop3_session *s);

#endif
