/*
 * The IMAP4rev1 session (RFC 3501): greeting (in TLS on the imaps port,
 * RFC 8314), access lists, the input loop around the incremental parser
 * (literals, RFC 7888 LITERAL+), the command table and the commands of any
 * state: CAPABILITY, NOOP, LOGOUT, STARTTLS, ID (RFC 2971), ENABLE (RFC
 * 5161), NAMESPACE (RFC 2342). Logging in lives in imap_auth.c, mailbox
 * management in imap_mailbox.c.
 */
#include "imap/imap_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "auth/sasl.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "imap/imap_parse.h"
#include "imap/imap_private.h"
#include "io/conn.h"
#include "io/server.h"

/*
 * RFC 3501 §5.4: the autologout timer must be at least 30 minutes (a key
 * of its own in the config may come later).
 */
#define IMAP_TIMEOUT (30 * 60)
/* The longest line we take; atoms and strings are bounded by the parser. */
#define IMAP_LINE_MAX (64 * 1024)
/* No command but APPEND needs a larger literal (imap_append_limit). */
#define IMAP_LITERAL_MAX (64 * 1024)

/*
 * What is checked before a command in the selected state (imap_sync.c):
 * everything, or - for commands that name messages by sequence number -
 * everything but expunges (§7.4.1), or nothing (the command leaves or
 * replaces the mailbox).
 */
enum imap_cmd_sync { CMD_SYNC_FULL = 0, CMD_SYNC_SEQ, CMD_SYNC_NONE };

struct imap_cmd {
	const char *name;
	unsigned states;
	imap_cmd_fn *run;
	bool uid; /* may come as "UID name" */
	enum imap_cmd_sync sync;
	bool settle; /* it tells the client of the flag changes it makes itself */
};

static imap_cmd_fn imap_cmd_capability, imap_cmd_noop, imap_cmd_logout, imap_cmd_starttls,
	imap_cmd_id, imap_cmd_enable, imap_cmd_namespace, imap_cmd_check;

#define ANY (IMAP_STATE_NOTAUTH | IMAP_STATE_AUTH | IMAP_STATE_SELECTED)
#define NOTAUTH IMAP_STATE_NOTAUTH
/* §3.3: the commands of the authenticated state remain in the selected one. */
#define AUTH (IMAP_STATE_AUTH | IMAP_STATE_SELECTED)
#define SELECTED IMAP_STATE_SELECTED

static const struct imap_cmd imap_cmds[] = {
	{ "CAPABILITY", ANY, imap_cmd_capability, false, CMD_SYNC_FULL, false },
	{ "NOOP", ANY, imap_cmd_noop, false, CMD_SYNC_FULL, false },
	{ "LOGOUT", ANY, imap_cmd_logout, false, CMD_SYNC_NONE, false },
	{ "ID", ANY, imap_cmd_id, false, CMD_SYNC_FULL, false },
	{ "STARTTLS", NOTAUTH, imap_cmd_starttls, false, CMD_SYNC_FULL, false },
	{ "LOGIN", NOTAUTH, imap_cmd_login, false, CMD_SYNC_FULL, false },
	{ "AUTHENTICATE", NOTAUTH, imap_cmd_authenticate, false, CMD_SYNC_FULL, false },
	{ "ENABLE", AUTH, imap_cmd_enable, false, CMD_SYNC_FULL, false },
	{ "NAMESPACE", AUTH, imap_cmd_namespace, false, CMD_SYNC_FULL, false },
	{ "LIST", AUTH, imap_cmd_list, false, CMD_SYNC_FULL, false },
	{ "LSUB", AUTH, imap_cmd_lsub, false, CMD_SYNC_FULL, false },
	{ "CREATE", AUTH, imap_cmd_create, false, CMD_SYNC_FULL, false },
	{ "DELETE", AUTH, imap_cmd_delete, false, CMD_SYNC_FULL, false },
	{ "RENAME", AUTH, imap_cmd_rename, false, CMD_SYNC_FULL, false },
	{ "SUBSCRIBE", AUTH, imap_cmd_subscribe, false, CMD_SYNC_FULL, false },
	{ "UNSUBSCRIBE", AUTH, imap_cmd_unsubscribe, false, CMD_SYNC_FULL, false },
	{ "SELECT", AUTH, imap_cmd_select, false, CMD_SYNC_NONE, false },
	{ "EXAMINE", AUTH, imap_cmd_examine, false, CMD_SYNC_NONE, false },
	{ "STATUS", AUTH, imap_cmd_status, false, CMD_SYNC_FULL, false },
	{ "APPEND", AUTH, imap_cmd_append, false, CMD_SYNC_FULL, false },
	{ "IDLE", AUTH, imap_cmd_idle, false, CMD_SYNC_FULL, false },
	{ "CHECK", SELECTED, imap_cmd_check, false, CMD_SYNC_FULL, false },
	{ "CLOSE", SELECTED, imap_cmd_close, false, CMD_SYNC_NONE, false },
	{ "UNSELECT", SELECTED, imap_cmd_unselect, false, CMD_SYNC_NONE, false },
	{ "FETCH", SELECTED, imap_cmd_fetch, true, CMD_SYNC_SEQ, true },
	{ "STORE", SELECTED, imap_cmd_store, true, CMD_SYNC_SEQ, true },
	{ "SEARCH", SELECTED, imap_cmd_search, true, CMD_SYNC_SEQ, false },
	{ "COPY", SELECTED, imap_cmd_copy, true, CMD_SYNC_SEQ, false },
	{ "MOVE", SELECTED, imap_cmd_move, true, CMD_SYNC_SEQ, false },
	{ "EXPUNGE", SELECTED, imap_cmd_expunge, true, CMD_SYNC_FULL, false },
};

#undef ANY
#undef NOTAUTH
#undef AUTH
#undef SELECTED

static void imap_on_input(struct conn *c, void *ctx);
static void imap_on_timeout(struct conn *c, void *ctx);
static void imap_on_close(struct conn *c, void *ctx);
static void imap_on_shutdown(struct conn *c, void *ctx);
static void imap_on_drain(struct conn *c, void *ctx);

static const struct conn_handler imap_handler = {
	.on_input = imap_on_input,
	.on_drain = imap_on_drain,
	.on_timeout = imap_on_timeout,
	.on_close = imap_on_close,
	.on_shutdown = imap_on_shutdown,
};

/* Says why, then closes; nothing more is read. */
static void
imap_refuse(struct imap_session *s, const char *reply)
{
	if (reply != NULL)
		conn_writes(s->conn, reply);
	s->logged_out = true;
	conn_close(s->conn);
}

void
imap_session_start(struct server *srv, int fd, const struct sockaddr *peer,
		   socklen_t peerlen, enum proto proto)
{
	struct imap_session *s = xcalloc(1, sizeof(*s));
	s->srv = srv;
	s->proto = proto;
	s->state = IMAP_STATE_NOTAUTH;
	make_id(s->id);
	s->conn = conn_new(srv->base, fd, peer, peerlen, &imap_handler, s);
	const struct config *cfg = srv->cfg;
	bool tls = proto_implicit_tls(proto);
	if (srv->draining || conn_peer_count(s->conn) > cfg->connections_per_client ||
	    conn_total_count() > cfg->max_connections) {
		log_info("imap %s: refused rip=%s: too many connections", s->id,
			 conn_peer(s->conn));
		/* On imaps a word in clear would only confuse the client's TLS. */
		imap_refuse(s, tls ? NULL : "* BYE [UNAVAILABLE] Too many connections\r\n");
		return;
	}
	if (tls) {
		if (srv->tls == NULL) {
			log_err("imap %s: rip=%s imaps without tls_cert, closing", s->id,
				conn_peer(s->conn));
			imap_refuse(s, NULL);
			return;
		}
		/* RFC 8314 §3.3: TLS first; even a refusal goes out inside it. */
		conn_start_tls(s->conn, srv->tls);
	}
	if (!server_access_allowed(cfg, proto, conn_peer_addr(s->conn))) {
		log_info("imap %s: refused rip=%s proto=%s: access denied", s->id,
			 conn_peer(s->conn), proto_name(proto));
		imap_refuse(s, "* BYE Access denied\r\n");
		return;
	}
	conn_set_timeout(s->conn, IMAP_TIMEOUT);
	log_info("imap %s: connect rip=%s proto=%s", s->id, conn_peer(s->conn),
		 proto_name(proto));
	struct buf out = BUF_INIT;
	buf_appends(&out, "* OK [CAPABILITY ");
	imap_capabilities(s, &out);
	buf_appends(&out, "] tern IMAP4rev1 ready\r\n");
	conn_write(s->conn, out.data, out.len);
	buf_free(&out);
}

static void
imap_on_close(struct conn *c, void *ctx)
{
	struct imap_session *s = ctx;
	if (!s->logged_out)
		log_info("imap %s: disconnect user=%s rip=%s", s->id,
			 s->address != NULL ? s->address : "", conn_peer(c));
	imap_auth_reset(s);
	imap_job_orphan(s);
	imap_idle_stop(s);
	imap_fetch_free(s);
	imap_select_free(s);
	imap_parser_free(&s->parser);
	server_trim_soon(s->srv);
	free(s->address);
	free(s->mail_root);
	free(s);
}

static void
imap_on_drain(struct conn *c, void *ctx)
{
	(void)c;
	imap_fetch_drained(ctx);
}

static void
imap_on_timeout(struct conn *c, void *ctx)
{
	struct imap_session *s = ctx;
	log_info("imap %s: timeout rip=%s", s->id, conn_peer(c));
	s->logged_out = true;
	conn_writes(c, "* BYE Autologout; idle for too long\r\n");
}

/* RFC 3501 §7.1.5: BYE tells the client the server is going away. */
static void
imap_on_shutdown(struct conn *c, void *ctx)
{
	struct imap_session *s = ctx;
	(void)c;
	log_info("imap %s: shutdown user=%s rip=%s", s->id,
		 s->address != NULL ? s->address : "", conn_peer(c));
	imap_refuse(s, "* BYE [UNAVAILABLE] Server shutting down\r\n");
}

void
imap_capabilities(const struct imap_session *s, struct buf *out)
{
	buf_appends(out, "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT ESEARCH");
	if (s->state != IMAP_STATE_NOTAUTH) {
		/* RFC 7889 APPENDLIMIT: advertised once logged in, where it applies. */
		buf_appendf(out, " UIDPLUS MOVE APPENDLIMIT=%llu",
			    (unsigned long long)imap_append_limit(s));
		return;
	}
	/* RFC 3501 §6.2.1, §7.2.1: STARTTLS until TLS is on; no password in
	   clear where it is not allowed (LOGINDISABLED). */
	if (s->srv->tls != NULL && !conn_is_tls(s->conn))
		buf_appends(out, " STARTTLS");
	if (!imap_auth_allowed(s)) {
		buf_appends(out, " LOGINDISABLED");
		return;
	}
	char *list = xstrdup(sasl_mechanisms());
	char *save = NULL;
	for (char *m = strtok_r(list, " ", &save); m != NULL; m = strtok_r(NULL, " ", &save))
		buf_appendf(out, " AUTH=%s", m);
	free(list);
}

void
imap_reply_bad(struct imap_session *s, const char *reason)
{
	unsigned limit = s->srv->cfg->bad_command_limit;
	conn_printf(s->conn, "%s BAD %s\r\n", s->tag[0] != '\0' ? s->tag : "*", reason);
	if (++s->bad_commands >= limit && limit > 0) {
		log_info("imap %s: too many bad commands rip=%s", s->id, conn_peer(s->conn));
		imap_refuse(s, "* BYE Too many bad commands\r\n");
	}
}

static void
imap_set_tag(struct imap_session *s)
{
	const char *tag = imap_parser_tag(s->parser);
	snprintf(s->tag, sizeof(s->tag), "%s", tag != NULL ? tag : "");
}

static const struct imap_cmd *
imap_cmd_find(const char *name)
{
	for (size_t i = 0; i < sizeof(imap_cmds) / sizeof(imap_cmds[0]); i++) {
		if (strcmp(imap_cmds[i].name, name) == 0)
			return &imap_cmds[i];
	}
	return NULL;
}

/* A whole command was parsed: run it. */
static void
imap_dispatch(struct imap_session *s)
{
	imap_set_tag(s);
	const char *name = imap_parser_command(s->parser);
	const struct imap_cmd *cmd = imap_cmd_find(name);
	if (cmd == NULL || (imap_parser_uid(s->parser) && !cmd->uid)) {
		imap_reply_bad(s, "Unknown command");
		return;
	}
	if ((cmd->states & s->state) == 0) {
		/* RFC 3501 §6: a command in the wrong state is a protocol error. */
		const char *why = "Already logged in";
		if (s->state == IMAP_STATE_NOTAUTH)
			why = "Log in first";
		else if (cmd->states == IMAP_STATE_SELECTED)
			why = "No mailbox selected";
		imap_reply_bad(s, why);
		return;
	}
	size_t argc;
	const struct imap_arg *args = imap_parser_args(s->parser, &argc);
	if (s->state == IMAP_STATE_SELECTED && cmd->sync != CMD_SYNC_NONE)
		imap_sync_report(s, cmd->sync == CMD_SYNC_FULL || imap_parser_uid(s->parser)
					    ? IMAP_SYNC_FULL : IMAP_SYNC_NO_EXPUNGE);
	if (cmd->run(s, args, argc) == 0)
		s->bad_commands = 0;
	if (cmd->settle && s->fetch == NULL) /* else when the FETCH ends */
		imap_sync_settle(s);
}

/* After a refused command: what the parser's recovery says. */
static void
imap_parse_recover(struct imap_session *s)
{
	switch (imap_parser_recovery(s->parser)) {
	case IMAP_RECOVER_DISCARD:
		s->discarding = true;
		break;
	case IMAP_RECOVER_CLOSE:
		/* RFC 7888 §4: a non-synchronizing literal we won't wait for. */
		if (!conn_closing(s->conn))
			imap_refuse(s, "* BYE Literal too large\r\n");
		break;
	default:
		s->discarding = false;
		break;
	}
}

/* The parser refused the command: BAD, then what its recovery says. */
static void
imap_parse_failed(struct imap_session *s)
{
	imap_set_tag(s);
	imap_reply_bad(s, imap_parser_error(s->parser));
	imap_parse_recover(s);
}

/* A literal was announced: refuse it, or ask for it ("+ "). */
static void
imap_literal_announced(struct imap_session *s)
{
	if (s->discarding)
		return; /* the parser drops the bytes */
	/* Only a logged-in APPEND may send a message-sized literal. */
	const char *cmd = imap_parser_command(s->parser);
	bool append = s->state != IMAP_STATE_NOTAUTH && cmd != NULL &&
		strcmp(cmd, "APPEND") == 0 && !imap_parser_uid(s->parser);
	uint64_t size = imap_parser_literal_size(s->parser);
	if (append && size > imap_append_limit(s)) {
		/* RFC 7889, with RFC 4469's TOOBIG: refused before "+", so
		   the client sends nothing (the bytes of a LITERAL+ one are
		   discarded by the parser). */
		imap_parser_reject_literal(s->parser, "Message too large");
		imap_set_tag(s);
		conn_printf(s->conn, "%s NO [TOOBIG] Message too large\r\n", s->tag);
		imap_parse_recover(s);
		return;
	}
	if (!append && size > IMAP_LITERAL_MAX) {
		imap_parser_reject_literal(s->parser, "Literal too large");
		imap_parse_failed(s);
		return;
	}
	if (imap_parser_literal_sync(s->parser))
		conn_writes(s->conn, "+ Ready for literal data\r\n");
}

/* Feeds what is buffered of a literal; false when more must arrive. */
static bool
imap_feed_literal(struct imap_session *s)
{
	const char *data;
	size_t n = conn_input(s->conn, &data);
	if (n == 0)
		return false;
	size_t used = imap_parser_feed_literal(s->parser, data, n);
	conn_consume(s->conn, used);
	return imap_parser_literal_left(s->parser) == 0;
}

static void
imap_line(struct imap_session *s, const char *line, size_t len)
{
	if (s->idling) {
		imap_idle_line(s, line);
		return;
	}
	if (s->sasl != NULL) {
		if (strlen(line) != len) {
			imap_auth_reset(s);
			imap_reply_bad(s, "NUL in authentication response");
			return;
		}
		imap_auth_response(s, line);
		return;
	}
	/* Freed while the session idles (imap_on_input): made again here. */
	if (s->parser == NULL)
		s->parser = imap_parser_new(NULL);
	switch (imap_parser_feed_line(s->parser, line, len)) {
	case IMAP_PARSE_DONE:
		s->discarding = false;
		imap_dispatch(s);
		break;
	case IMAP_PARSE_NEED_LITERAL:
		imap_literal_announced(s);
		break;
	case IMAP_PARSE_ERROR:
		s->discarding = false;
		imap_parse_failed(s);
		break;
	case IMAP_PARSE_DISCARDED:
		s->discarding = false;
		break;
	}
}

static void
imap_on_input(struct conn *c, void *ctx)
{
	struct imap_session *s = ctx;
	while (!conn_busy(c) && !conn_closing(c) && !s->delayed) {
		if (s->parser != NULL && imap_parser_literal_left(s->parser) > 0) {
			if (!imap_feed_literal(s))
				break;
			continue;
		}
		char *line;
		size_t len;
		enum conn_line r = conn_read_line(c, IMAP_LINE_MAX, &line, &len);
		if (r == CONN_LINE_NONE)
			break;
		if (r == CONN_LINE_TOO_LONG) {
			/* Within AUTHENTICATE the BAD ends that command (its tag);
			   else the line's own tag, if its start has one. */
			if (s->sasl == NULL) {
				size_t n = imap_tag_len(line, len, IMAP_PARSE_TAG_MAX);
				memcpy(s->tag, line, n);
				s->tag[n] = '\0';
			}
			if (s->parser != NULL)
				imap_parser_reset(s->parser);
			imap_auth_reset(s);
			s->discarding = false;
			imap_reply_bad(s, "Line too long");
			continue;
		}
		imap_line(s, line, len);
	}
	/*
	 * An idling session (IDLE, RFC 2177) reads only "DONE" until it ends,
	 * never a command: the parser (about half a KiB with its stack) is
	 * freed and made again for the next command, so the thousands of
	 * sessions that sit in IDLE for hours do not each hold one.
	 */
	if (s->idling)
		imap_parser_free(&s->parser);
}

/* ---- commands of any state ---- */

static int
imap_reply_ok(struct imap_session *s, const char *text)
{
	conn_printf(s->conn, "%s OK %s\r\n", s->tag, text);
	return 0;
}

static int
imap_no_args(struct imap_session *s, size_t argc)
{
	if (argc == 0)
		return 0;
	imap_reply_bad(s, "Unexpected arguments");
	return -1;
}

static int
imap_cmd_capability(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	(void)args;
	if (imap_no_args(s, argc) < 0)
		return -1;
	struct buf out = BUF_INIT;
	buf_appends(&out, "* CAPABILITY ");
	imap_capabilities(s, &out);
	buf_appends(&out, "\r\n");
	conn_write(s->conn, out.data, out.len);
	buf_free(&out);
	return imap_reply_ok(s, "Capability completed");
}

static int
imap_cmd_noop(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	(void)args;
	if (imap_no_args(s, argc) < 0)
		return -1;
	return imap_reply_ok(s, "NOOP completed");
}

/* §6.4.1: the check of the mailbox is the sync every command gets. */
static int
imap_cmd_check(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	(void)args;
	if (imap_no_args(s, argc) < 0)
		return -1;
	return imap_reply_ok(s, "CHECK completed");
}

/* RFC 3501 §6.1.3: the untagged BYE first, then the tagged OK. */
static int
imap_cmd_logout(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	(void)args;
	if (imap_no_args(s, argc) < 0)
		return -1;
	log_info("imap %s: logout user=%s rip=%s", s->id,
		 s->address != NULL ? s->address : "", conn_peer(s->conn));
	conn_writes(s->conn, "* BYE tern IMAP4rev1 logging out\r\n");
	imap_reply_ok(s, "Logout completed");
	s->logged_out = true;
	conn_close(s->conn);
	return 0;
}

/*
 * RFC 3501 §6.2.1: OK in clear, then the handshake; pipelined input is
 * dropped (conn_start_tls) and the client must ask CAPABILITY again.
 */
static int
imap_cmd_starttls(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	(void)args;
	if (imap_no_args(s, argc) < 0)
		return -1;
	if (conn_is_tls(s->conn)) {
		imap_reply_bad(s, "TLS is already active");
		return -1;
	}
	if (s->srv->tls == NULL) {
		conn_printf(s->conn, "%s NO [UNAVAILABLE] TLS is not available\r\n", s->tag);
		return 0;
	}
	imap_reply_ok(s, "Begin TLS negotiation now");
	conn_start_tls(s->conn, s->srv->tls);
	imap_parser_reset(s->parser);
	log_info("imap %s: starttls rip=%s", s->id, conn_peer(s->conn));
	return 0;
}

/* RFC 2971: ID ( "key" "value" ... ) or ID NIL; we only say who we are. */
static int
imap_cmd_id(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	if (argc != 1 || (args[0].type != IMAP_ARG_LIST && args[0].type != IMAP_ARG_NIL)) {
		imap_reply_bad(s, "ID takes a list or NIL");
		return -1;
	}
	conn_writes(s->conn, "* ID (\"name\" \"tern\")\r\n");
	return imap_reply_ok(s, "ID completed");
}

/* RFC 5161: nothing can be enabled yet, so the list is always empty. */
static int
imap_cmd_enable(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	for (size_t i = 0; i < argc; i++) {
		if (args[i].type != IMAP_ARG_ATOM) {
			imap_reply_bad(s, "ENABLE takes capability names");
			return -1;
		}
	}
	if (argc == 0) {
		imap_reply_bad(s, "ENABLE needs a capability");
		return -1;
	}
	conn_writes(s->conn, "* ENABLED\r\n");
	return imap_reply_ok(s, "ENABLE completed");
}

/* RFC 2342: one personal namespace, no prefix, '/' as the separator. */
static int
imap_cmd_namespace(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	(void)args;
	if (imap_no_args(s, argc) < 0)
		return -1;
	conn_writes(s->conn, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
	return imap_reply_ok(s, "NAMESPACE completed");
}
