/*
 * The POP3 session: greeting (in TLS on the pop3s port, RFC 8314), access
 * lists, the command loop and table, CAPA (RFC 2449) and STLS (RFC 2595 §4).
 * Logging in lives in pop3_auth.c; TRANSACTION and UPDATE in pop3_trans.c.
 */
#include "pop3/pop3_session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>

#include "auth/sasl.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "io/conn.h"
#include "io/server.h"
#include "pop3/pop3_private.h"
#include "store/store.h"

/* RFC 2449 §4: a command line is at most 255 octets, CRLF included. */
#define POP3_LINE_MAX 253
/*
 * What conn_read_line may hold: an AUTH response after "+ " is not bound
 * by the 255 octets (RFC 5034 §4); this fits PLAIN with long names and
 * passwords and every SCRAM message.
 */
#define POP3_READ_MAX 2048
#define POP3_MAX_ARGS 2

struct pop3_cmd {
	const char *name;
	unsigned states;   /* the pop3_state bits it is valid in */
	int min_args;
	int max_args;      /* -1: one argument, the rest of the line, spaces and all */
	pop3_cmd_fn *run;
};

static pop3_cmd_fn pop3_cmd_capa, pop3_cmd_stls, pop3_cmd_quit;

#define ANY (POP3_STATE_AUTH | POP3_STATE_TRANS)
#define AUTH POP3_STATE_AUTH
#define TRANS POP3_STATE_TRANS

static const struct pop3_cmd pop3_cmds[] = {
	{ "CAPA", ANY, 0, 0, pop3_cmd_capa },
	{ "QUIT", ANY, 0, 0, pop3_cmd_quit },
	{ "STLS", AUTH, 0, 0, pop3_cmd_stls },
	{ "USER", AUTH, 1, 1, pop3_cmd_user },
	{ "PASS", AUTH, 1, -1, pop3_cmd_pass },
	{ "AUTH", AUTH, 0, 2, pop3_cmd_auth },
	{ "STAT", TRANS, 0, 0, pop3_cmd_stat },
	{ "LIST", TRANS, 0, 1, pop3_cmd_list },
	{ "UIDL", TRANS, 0, 1, pop3_cmd_uidl },
	{ "TOP", TRANS, 2, 2, pop3_cmd_top },
	{ "RETR", TRANS, 1, 1, pop3_cmd_retr },
	{ "DELE", TRANS, 1, 1, pop3_cmd_dele },
	{ "RSET", TRANS, 0, 0, pop3_cmd_rset },
	{ "NOOP", TRANS, 0, 0, pop3_cmd_noop },
};

#undef ANY
#undef AUTH
#undef TRANS

static void pop3_on_input(struct conn *c, void *ctx);
static void pop3_on_drain(struct conn *c, void *ctx);
static void pop3_on_timeout(struct conn *c, void *ctx);
static void pop3_on_close(struct conn *c, void *ctx);

static const struct conn_handler pop3_handler = {
	.on_input = pop3_on_input,
	.on_drain = pop3_on_drain,
	.on_timeout = pop3_on_timeout,
	.on_close = pop3_on_close,
};

void
pop3_session_start(struct server *srv, int fd, const struct sockaddr *peer,
		   socklen_t peerlen, enum proto proto)
{
	struct pop3_session *s = xcalloc(1, sizeof(*s));
	s->proto = proto;
	s->srv = srv;
	s->state = POP3_STATE_AUTH;
	s->stream.fd = -1;
	make_id(s->id);
	s->conn = conn_new(srv->base, fd, peer, peerlen, &pop3_handler, s);
	const struct config *cfg = srv->cfg;
	if (srv->draining || conn_peer_count(s->conn) > cfg->connections_per_client ||
	    conn_total_count() > cfg->max_connections) {
		log_info("pop3 %s: refused rip=%s: too many connections%s", s->id,
			 conn_peer(s->conn), srv->draining ? " (draining)" : "");
		/* On pop3s a word in clear would only confuse the client's TLS,
		   and a handshake costs what we are short of: just close. */
		if (!proto_implicit_tls(proto))
			conn_writes(s->conn, "-ERR [SYS/TEMP] Too many connections\r\n");
		s->logged_out = true;
		conn_close(s->conn);
		return;
	}
	if (proto_implicit_tls(proto)) {
		if (srv->tls == NULL) {
			/* Nothing can be said: the client expects a TLS handshake. */
			log_err("pop3 %s: rip=%s pop3s without tls_cert, closing", s->id,
				conn_peer(s->conn));
			s->logged_out = true;
			conn_close(s->conn);
			return;
		}
		/* RFC 8314 §3.3: TLS first; even a refusal goes out inside it. */
		conn_start_tls(s->conn, srv->tls);
	}
	if (!server_access_allowed(cfg, proto, conn_peer_addr(s->conn))) {
		log_info("pop3 %s: refused rip=%s proto=%s: access denied", s->id,
			 conn_peer(s->conn), proto_name(proto));
		conn_writes(s->conn, "-ERR [SYS/PERM] Access denied\r\n");
		s->logged_out = true;
		conn_close(s->conn);
		return;
	}
	conn_set_timeout(s->conn, cfg->pop3_timeout);
	log_info("pop3 %s: connect rip=%s proto=%s", s->id, conn_peer(s->conn),
		 proto_name(proto));
	conn_writes(s->conn, "+OK tern POP3 ready\r\n");
}

static void
pop3_on_close(struct conn *c, void *ctx)
{
	struct pop3_session *s = ctx;
	if (!s->logged_out && s->address != NULL)
		/* No QUIT: RFC 1939 §6 says nothing is deleted. */
		log_info("pop3 %s: disconnect user=%s rip=%s retr=%u dele=0", s->id,
			 s->address, conn_peer(c), s->nretr);
	else if (!s->logged_out)
		log_info("pop3 %s: disconnect rip=%s", s->id, conn_peer(c));
	pop3_stream_stop(s);
	store_mailbox_close(&s->mb);
	pop3_auth_reset(s);
	free(s->deleted);
	free(s->address);
	free(s);
}

static void
pop3_on_timeout(struct conn *c, void *ctx)
{
	struct pop3_session *s = ctx;
	log_info("pop3 %s: timeout rip=%s", s->id, conn_peer(c));
	conn_writes(c, "-ERR Timeout\r\n");
}

static void
pop3_on_drain(struct conn *c, void *ctx)
{
	struct pop3_session *s = ctx;
	if (s->stream.fd < 0)
		return;
	/* Progress on a long RETR is activity too: keep the idle timer fresh. */
	conn_set_timeout(c, s->srv->cfg->pop3_timeout);
	pop3_stream_run(s);
	/* Done: let pipelined commands waiting behind the RETR run (we are not
	   paused, so resume only schedules on_input). */
	if (s->stream.fd < 0 && !conn_closing(c))
		conn_resume(c);
}

void
pop3_reply_bad(struct pop3_session *s, const char *reply)
{
	unsigned limit = s->srv->cfg->bad_command_limit;
	if (++s->bad_commands >= limit && limit > 0) {
		log_info("pop3 %s: too many bad commands rip=%s", s->id, conn_peer(s->conn));
		conn_writes(s->conn, "-ERR Too many bad commands\r\n");
		conn_close(s->conn);
		return;
	}
	conn_printf(s->conn, "%s\r\n", reply);
}

static const struct pop3_cmd *
pop3_cmd_find(const char *name)
{
	for (size_t i = 0; i < sizeof(pop3_cmds) / sizeof(pop3_cmds[0]); i++) {
		if (strcasecmp(pop3_cmds[i].name, name) == 0)
			return &pop3_cmds[i];
	}
	return NULL;
}

/*
 * Splits "KEYWORD arg arg" (RFC 1939 §3: separated by single spaces; runs
 * of spaces are forgiven) and runs the command. Returns the handler's
 * result, -1 for an unknown or misplaced command.
 */
static int
pop3_command(struct pop3_session *s, char *line)
{
	char *rest = strchr(line, ' ');
	if (rest != NULL)
		*rest++ = '\0';
	const struct pop3_cmd *cmd = pop3_cmd_find(line);
	if (cmd == NULL) {
		pop3_reply_bad(s, "-ERR Unknown command");
		return -1;
	}
	if ((cmd->states & s->state) == 0) {
		pop3_reply_bad(s, "-ERR Command not valid in this state");
		return -1;
	}
	char *argv[POP3_MAX_ARGS];
	int argc = 0;
	if (cmd->max_args < 0 && rest != NULL && *rest != '\0') {
		argv[argc++] = rest;
	} else {
		char *save = NULL;
		for (char *t = rest != NULL ? strtok_r(rest, " ", &save) : NULL; t != NULL;
		     t = strtok_r(NULL, " ", &save)) {
			if (argc == POP3_MAX_ARGS || argc == cmd->max_args) {
				argc = -1;
				break;
			}
			argv[argc++] = t;
		}
	}
	if (argc < cmd->min_args || argc < 0) {
		char reply[64];
		snprintf(reply, sizeof(reply), "-ERR Wrong number of arguments to %s", cmd->name);
		pop3_reply_bad(s, reply);
		return -1;
	}
	return cmd->run(s, argc, argv);
}

static void
pop3_on_input(struct conn *c, void *ctx)
{
	struct pop3_session *s = ctx;
	/* While a RETR streams, later commands wait for it (RFC 2449 PIPELINING). */
	while (!conn_busy(c) && s->stream.fd < 0) {
		char *line;
		size_t len;
		enum conn_line r = conn_read_line(c, POP3_READ_MAX, &line, &len);
		if (r == CONN_LINE_NONE)
			break;
		bool sasl = s->sasl != NULL;
		bool too_long = r == CONN_LINE_TOO_LONG || (!sasl && len > POP3_LINE_MAX);
		if (too_long || strlen(line) != len) {
			/* Within an exchange, this ends it (RFC 5034 §4: -ERR). */
			pop3_auth_reset(s);
			pop3_reply_bad(s, too_long ? "-ERR Line too long" : "-ERR NUL in command");
			continue;
		}
		if (sasl)
			pop3_auth_response(s, line);
		else if (pop3_command(s, line) == 0)
			s->bad_commands = 0;
	}
}


/* ---- commands of either state ---- */

static int
pop3_cmd_capa(struct pop3_session *s, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	/* RFC 2449 §5: what can be used now, so USER and SASL only where a
	   password may be sent, STLS only until TLS is on (RFC 2595 §4). */
	struct buf out = BUF_INIT;
	buf_appends(&out, "+OK Capability list follows\r\n"
			  "TOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n");
	if (s->state == POP3_STATE_AUTH) {
		if (s->srv->tls != NULL && !conn_is_tls(s->conn))
			buf_appends(&out, "STLS\r\n");
		if (pop3_auth_allowed(s))
			buf_appendf(&out, "USER\r\nSASL %s\r\n", sasl_mechanisms());
	}
	buf_appends(&out, "IMPLEMENTATION tern\r\n.\r\n");
	conn_write(s->conn, out.data, out.len);
	buf_free(&out);
	return 0;
}

/*
 * RFC 2595 §4: the reply goes out in clear, then the handshake; whatever
 * the client pipelined behind STLS is dropped (conn_start_tls), and what
 * was said before TLS is forgotten, USER included.
 */
static int
pop3_cmd_stls(struct pop3_session *s, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	if (conn_is_tls(s->conn)) {
		conn_writes(s->conn, "-ERR Command not permitted when TLS active\r\n");
		return 0;
	}
	if (s->srv->tls == NULL) {
		conn_writes(s->conn, "-ERR TLS is not available\r\n");
		return 0;
	}
	conn_writes(s->conn, "+OK Begin TLS negotiation\r\n");
	conn_start_tls(s->conn, s->srv->tls);
	pop3_auth_reset(s);
	log_info("pop3 %s: starttls rip=%s", s->id, conn_peer(s->conn));
	return 0;
}

static int
pop3_cmd_quit(struct pop3_session *s, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	if (s->state == POP3_STATE_TRANS) {
		pop3_update(s);
		return 0;
	}
	log_info("pop3 %s: quit rip=%s", s->id, conn_peer(s->conn));
	s->logged_out = true;
	conn_writes(s->conn, "+OK Bye\r\n");
	conn_close(s->conn);
	return 0;
}
