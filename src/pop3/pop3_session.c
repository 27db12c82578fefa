/*
 * The POP3 session: greeting, the command loop and table, and the
 * AUTHORIZATION state (RFC 1939 §4, USER/PASS; RFC 5034 AUTH PLAIN; RFC 2449
 * CAPA and response codes). TRANSACTION and UPDATE live in pop3_trans.c.
 */
#include "pop3/pop3_session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>

#include "auth/userdb.h"
#include "core/log.h"
#include "core/util.h"
#include "io/conn.h"
#include "io/server.h"
#include "pop3/pop3_private.h"
#include "store/store.h"

/* RFC 2449 §4: a command line is at most 255 octets, CRLF included. */
#define POP3_LINE_MAX 253
/* What conn_read_line may hold: room for an AUTH response after "+ ". */
#define POP3_READ_MAX 512
#define POP3_MAX_ARGS 2
/* Failed logins in one session before we hang up. */
#define POP3_AUTH_FAIL_MAX 3
/* How much of a peer-chosen login name goes into the log. */
#define POP3_LOG_NAME_MAX 64

struct pop3_cmd {
	const char *name;
	unsigned states;   /* the pop3_state bits it is valid in */
	int min_args;
	int max_args;      /* -1: one argument, the rest of the line, spaces and all */
	pop3_cmd_fn *run;
};

static pop3_cmd_fn pop3_cmd_capa, pop3_cmd_user, pop3_cmd_pass, pop3_cmd_auth,
	pop3_cmd_quit;

#define ANY (POP3_STATE_AUTH | POP3_STATE_TRANS)
#define AUTH POP3_STATE_AUTH
#define TRANS POP3_STATE_TRANS

static const struct pop3_cmd pop3_cmds[] = {
	{ "CAPA", ANY, 0, 0, pop3_cmd_capa },
	{ "QUIT", ANY, 0, 0, pop3_cmd_quit },
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

/* A peer-chosen name made safe for one log line. */
static void
pop3_log_name(const char *s, char out[POP3_LOG_NAME_MAX + 1])
{
	size_t i = 0;
	for (; s[i] != '\0' && i < POP3_LOG_NAME_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		out[i] = c < 0x21 || c > 0x7e ? '?' : (char)c;
	}
	out[i] = '\0';
}

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
		conn_writes(s->conn, "-ERR [SYS/TEMP] Too many connections\r\n");
		s->logged_out = true;
		conn_close(s->conn);
		return;
	}
	conn_set_timeout(s->conn, cfg->pop3_timeout);
	log_info("pop3 %s: connect rip=%s", s->id, conn_peer(s->conn));
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
	if (s->delay != NULL)
		event_free(s->delay);
	free(s->deleted);
	free(s->user);
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

/* A syntax error or unknown command; too many in a row end the session. */
static void
pop3_bad_command(struct pop3_session *s)
{
	unsigned limit = s->srv->cfg->bad_command_limit;
	if (++s->bad_commands >= limit && limit > 0) {
		log_info("pop3 %s: too many bad commands rip=%s", s->id, conn_peer(s->conn));
		conn_writes(s->conn, "-ERR Too many bad commands\r\n");
		conn_close(s->conn);
	}
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
		conn_writes(s->conn, "-ERR Unknown command\r\n");
		return -1;
	}
	if ((cmd->states & s->state) == 0) {
		conn_writes(s->conn, "-ERR Command not valid in this state\r\n");
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
		conn_printf(s->conn, "-ERR Wrong number of arguments to %s\r\n", cmd->name);
		return -1;
	}
	return cmd->run(s, argc, argv);
}

static void pop3_sasl_plain(struct pop3_session *s, const char *response);

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
		bool sasl = s->sasl_wait;
		s->sasl_wait = false;
		if (r == CONN_LINE_TOO_LONG || (!sasl && len > POP3_LINE_MAX)) {
			conn_writes(c, "-ERR Line too long\r\n");
			pop3_bad_command(s);
			continue;
		}
		if (strlen(line) != len) {
			conn_writes(c, "-ERR NUL in command\r\n");
			pop3_bad_command(s);
			continue;
		}
		if (sasl) {
			pop3_sasl_plain(s, line);
			continue;
		}
		if (pop3_command(s, line) < 0)
			pop3_bad_command(s);
		else
			s->bad_commands = 0;
	}
}

/* ---- AUTHORIZATION ---- */

static int
pop3_cmd_capa(struct pop3_session *s, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	/* RFC 2449 §5; USER and SASL only where they can be used. */
	conn_writes(s->conn, "+OK Capability list follows\r\n"
			     "TOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\n"
			     "AUTH-RESP-CODE\r\n");
	if (s->state == POP3_STATE_AUTH)
		conn_writes(s->conn, "USER\r\nSASL PLAIN\r\n");
	conn_writes(s->conn, "IMPLEMENTATION tern\r\n.\r\n");
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

static int
pop3_cmd_user(struct pop3_session *s, int argc, char **argv)
{
	(void)argc;
	free(s->user);
	s->user = xstrdup(argv[0]);
	/* The same answer for every name: nothing to learn about who exists. */
	conn_writes(s->conn, "+OK\r\n");
	return 0;
}

static void pop3_login(struct pop3_session *s, const char *login, const char *password);

static int
pop3_cmd_pass(struct pop3_session *s, int argc, char **argv)
{
	if (s->user == NULL) {
		conn_writes(s->conn, "-ERR USER first\r\n");
		return -1;
	}
	char *user = s->user;
	s->user = NULL; /* RFC 1939 §7: after a failed PASS, USER starts again */
	pop3_login(s, user, argc == 1 ? argv[0] : "");
	free(user);
	return 0;
}

/* RFC 5034 §4: AUTH mechanism [initial-response]; "=" is an empty one. */
static int
pop3_cmd_auth(struct pop3_session *s, int argc, char **argv)
{
	if (argc == 0) {
		/* Not in RFC 5034, but older clients list mechanisms this way. */
		conn_writes(s->conn, "+OK\r\nPLAIN\r\n.\r\n");
		return 0;
	}
	if (strcasecmp(argv[0], "PLAIN") != 0) {
		conn_writes(s->conn, "-ERR Unsupported authentication mechanism\r\n");
		return 0;
	}
	if (argc == 2) {
		pop3_sasl_plain(s, strcmp(argv[1], "=") == 0 ? "" : argv[1]);
		return 0;
	}
	s->sasl_wait = true;
	conn_writes(s->conn, "+ \r\n");
	return 0;
}

/*
 * RFC 4616: authzid NUL authcid NUL passwd. We log in as authcid only, so
 * an authzid must be empty or name the same user.
 */
static void
pop3_sasl_plain(struct pop3_session *s, const char *response)
{
	if (strcmp(response, "*") == 0) {
		/* RFC 5034 §4: the client cancelled; the AUTH command fails. */
		conn_writes(s->conn, "-ERR [AUTH] Authentication cancelled\r\n");
		return;
	}
	unsigned char *dec = NULL;
	size_t len = 0;
	if (base64_decode(response, strlen(response), &dec, &len) < 0) {
		conn_writes(s->conn, "-ERR [AUTH] Invalid base64 response\r\n");
		pop3_bad_command(s);
		return;
	}
	const char *authzid = (const char *)dec;
	const char *nul1 = memchr(dec, '\0', len);
	const char *nul2 = nul1 != NULL ?
		memchr(nul1 + 1, '\0', len - (size_t)(nul1 + 1 - authzid)) : NULL;
	if (nul2 == NULL || memchr(nul2 + 1, '\0', len - (size_t)(nul2 + 1 - authzid)) != NULL ||
	    nul1[1] == '\0') {
		conn_writes(s->conn, "-ERR [AUTH] Invalid PLAIN response\r\n");
		pop3_bad_command(s);
	} else {
		/* authzid ends at nul1, authcid at nul2; passwd runs to len. */
		char *passwd = xstrndup(nul2 + 1, len - (size_t)(nul2 + 1 - authzid));
		const char *authcid = nul1 + 1;
		if (authzid[0] != '\0' && strcasecmp(authzid, authcid) != 0)
			conn_writes(s->conn, "-ERR [AUTH] Authorization identity not allowed\r\n");
		else
			pop3_login(s, authcid, passwd);
		explicit_bzero(passwd, strlen(passwd));
		free(passwd);
	}
	explicit_bzero(dec, len);
	free(dec);
}

/* After the pause: the answer to the failed login, then input again. */
static void
pop3_auth_fail_done(evutil_socket_t fd, short what, void *arg)
{
	struct pop3_session *s = arg;
	(void)fd;
	(void)what;
	conn_writes(s->conn, "-ERR [AUTH] Authentication failed\r\n");
	if (s->auth_failures >= POP3_AUTH_FAIL_MAX) {
		log_info("pop3 %s: too many failed logins rip=%s", s->id, conn_peer(s->conn));
		conn_close(s->conn);
		return;
	}
	conn_resume(s->conn);
}

/*
 * A wrong password is answered only after auth_fail_delay_ms, with input
 * paused meanwhile, so guessing costs time even over pipelined commands.
 */
static void
pop3_auth_fail(struct pop3_session *s, const char *login)
{
	char name[POP3_LOG_NAME_MAX + 1];
	pop3_log_name(login, name);
	/* The fail2ban line: keep its shape. */
	log_info("pop3 %s: auth failed user=%s rip=%s", s->id, name, conn_peer(s->conn));
	s->auth_failures++;
	if (s->delay == NULL)
		s->delay = evtimer_new(s->srv->base, pop3_auth_fail_done, s);
	unsigned ms = s->srv->cfg->auth_fail_delay_ms;
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
	conn_pause(s->conn);
	evtimer_add(s->delay, &tv);
}

/* Takes the maildrop lock and enters TRANSACTION (RFC 1939 §4). */
static void
pop3_open_maildrop(struct pop3_session *s, char *address)
{
	bool in_use = false;
	char *error = NULL;
	struct store_mailbox *mb = store_inbox_open(s->srv->store, address, &in_use, &error);
	if (mb == NULL) {
		if (in_use) {
			log_info("pop3 %s: user=%s rip=%s mailbox in use", s->id, address,
				 conn_peer(s->conn));
			conn_writes(s->conn, "-ERR [IN-USE] Mailbox is locked by another session\r\n");
		} else {
			log_err("pop3 %s: user=%s open failed: %s", s->id, address, error);
			conn_writes(s->conn, "-ERR [SYS/TEMP] Cannot open the mailbox\r\n");
		}
		free(error);
		free(address);
		s->logged_out = true;
		conn_close(s->conn);
		return;
	}
	s->mb = mb;
	s->address = address;
	s->count = store_mailbox_count(mb);
	s->deleted = xcalloc(s->count > 0 ? s->count : 1, sizeof(*s->deleted));
	s->state = POP3_STATE_TRANS;
	log_info("pop3 %s: login user=%s rip=%s msgs=%zu", s->id, address,
		 conn_peer(s->conn), s->count);
	conn_printf(s->conn, "+OK Logged in, %zu messages\r\n", s->count);
}

static void
pop3_login(struct pop3_session *s, const char *login, const char *password)
{
	char *address = NULL;
	int r = userdb_verify(s->srv->users, login, password, &address);
	if (r < 0) {
		log_err("pop3 %s: users file unreadable rip=%s", s->id, conn_peer(s->conn));
		conn_writes(s->conn, "-ERR [SYS/TEMP] Authentication is unavailable\r\n");
		return;
	}
	if (r == 0) {
		pop3_auth_fail(s, login);
		return;
	}
	pop3_open_maildrop(s, address);
}
