/*
 * The SMTP server session (RFC 5321): the greeting, the command loop and
 * table, and the envelope commands. DATA and delivery live in smtp_data.c,
 * the grammar of command lines in smtp_parse.c.
 */
#include "smtp/smtp_session.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/aliases.h"
#include "auth/sasl.h"
#include "auth/userdb.h"
#include "core/log.h"
#include "core/util.h"
#include "io/conn.h"
#include "smtp/smtp_parse.h"
#include "smtp/smtp_private.h"

/* How much of a client-chosen HELO name we keep (it goes into Received:). */
#define SMTP_HELO_MAX 255

/* What a command needs before it may run (RFC 5321 §4.1.4 ordering). */
enum smtp_need {
	SMTP_NEED_NOTHING,
	SMTP_NEED_HELO, /* HELO/EHLO done */
	SMTP_NEED_MAIL, /* inside a transaction */
};

typedef void smtp_cmd_fn(struct smtp_session *s, char *args);

struct smtp_cmd {
	const char *verb;
	enum smtp_need need;
	smtp_cmd_fn *run;
};

static smtp_cmd_fn smtp_cmd_helo, smtp_cmd_ehlo, smtp_cmd_mail, smtp_cmd_rcpt,
	smtp_cmd_data, smtp_cmd_rset, smtp_cmd_noop, smtp_cmd_quit, smtp_cmd_vrfy,
	smtp_cmd_expn, smtp_cmd_help, smtp_cmd_starttls; /* and smtp_cmd_auth */

static const struct smtp_cmd smtp_cmds[] = {
	{ "HELO", SMTP_NEED_NOTHING, smtp_cmd_helo },
	{ "EHLO", SMTP_NEED_NOTHING, smtp_cmd_ehlo },
	{ "MAIL", SMTP_NEED_HELO, smtp_cmd_mail },
	{ "RCPT", SMTP_NEED_MAIL, smtp_cmd_rcpt },
	{ "DATA", SMTP_NEED_MAIL, smtp_cmd_data },
	{ "RSET", SMTP_NEED_NOTHING, smtp_cmd_rset },
	{ "NOOP", SMTP_NEED_NOTHING, smtp_cmd_noop },
	{ "QUIT", SMTP_NEED_NOTHING, smtp_cmd_quit },
	{ "VRFY", SMTP_NEED_NOTHING, smtp_cmd_vrfy },
	{ "EXPN", SMTP_NEED_NOTHING, smtp_cmd_expn },
	{ "HELP", SMTP_NEED_NOTHING, smtp_cmd_help },
	{ "STARTTLS", SMTP_NEED_NOTHING, smtp_cmd_starttls },
	{ "AUTH", SMTP_NEED_HELO, smtp_cmd_auth },
};

static void smtp_on_input(struct conn *c, void *ctx);
static void smtp_on_timeout(struct conn *c, void *ctx);
static void smtp_on_close(struct conn *c, void *ctx);
static void smtp_on_shutdown(struct conn *c, void *ctx);

static const struct conn_handler smtp_handler = {
	.on_input = smtp_on_input,
	.on_drain = NULL,
	.on_timeout = smtp_on_timeout,
	.on_close = smtp_on_close,
	.on_shutdown = smtp_on_shutdown,
};

void
smtp_reply(struct smtp_session *s, const char *fmt, ...)
{
	struct buf line = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vappendf(&line, fmt, ap);
	va_end(ap);
	buf_append(&line, "\r\n", 2);
	conn_write(s->conn, line.data, line.len);
	buf_free(&line);
}

void
smtp_reject(struct smtp_session *s, const char *fmt, ...)
{
	struct buf line = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vappendf(&line, fmt, ap);
	va_end(ap);
	log_info("%s: reject from %s: %s", s->id, conn_peer(s->conn), line.data);
	buf_append(&line, "\r\n", 2);
	conn_write(s->conn, line.data, line.len);
	buf_free(&line);
}

/*
 * A protocol error by the client (unknown command, bad syntax, bad
 * sequence). Past bad_command_limit in a row the reply is a 421 and we
 * hang up, so that a confused or hostile client cannot go on forever.
 */
void
smtp_reply_bad(struct smtp_session *s, const char *reply)
{
	unsigned limit = s->srv->cfg->bad_command_limit;
	if (limit > 0 && ++s->bad_commands > limit) {
		smtp_reject(s, "421 4.7.0 %s Too many errors", s->srv->cfg->hostname);
		conn_close(s->conn);
		return;
	}
	smtp_reject(s, "%s", reply);
}

void
smtp_transaction_reset(struct smtp_session *s)
{
	for (size_t i = 0; i < s->ntargets; i++)
		free(s->targets[i].address);
	free(s->targets);
	s->targets = NULL;
	s->ntargets = 0;
	free(s->sender);
	s->sender = NULL;
	free(s->first_rcpt);
	s->first_rcpt = NULL;
	s->nrcpts = 0;
	s->rcpt_refused = false;
	if (s->state > SMTP_STATE_READY)
		s->state = SMTP_STATE_READY;
}

/*
 * Before the greeting: implicit TLS on submissions (RFC 8314 §3.3), then
 * the listener's access list. A refused client gets 554 instead of the
 * greeting (RFC 5321 §3.1) and we hang up at once rather than wait for
 * its QUIT: it will get no service, so it should cost us nothing.
 */
static int
smtp_session_open(struct smtp_session *s)
{
	const struct config *cfg = s->srv->cfg;
	if (proto_implicit_tls(s->proto)) {
		if (s->srv->tls == NULL) {
			log_err("%s: %s listener without tls_cert: closing", s->id,
				proto_name(s->proto));
			smtp_reply(s, "421 4.3.0 %s TLS not available", cfg->hostname);
			conn_close(s->conn);
			return -1;
		}
		conn_start_tls(s->conn, s->srv->tls);
	}
	if (!server_access_allowed(cfg, s->proto, conn_peer_addr(s->conn))) {
		log_info("%s: access denied for %s on %s", s->id, conn_peer(s->conn),
			 proto_name(s->proto));
		smtp_reply(s, "554 5.7.1 Access denied");
		conn_close(s->conn);
		return -1;
	}
	return 0;
}

void
smtp_session_start(struct server *srv, int fd, const struct sockaddr *peer,
		   socklen_t peerlen, enum proto proto)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));
	s->proto = proto;
	s->srv = srv;
	make_id(s->id);
	s->state = SMTP_STATE_GREETED;
	s->conn = conn_new(srv->base, fd, peer, peerlen, &smtp_handler, s);
	const struct config *cfg = srv->cfg;
	log_info("%s: connect from %s", s->id, conn_peer(s->conn));
	/* Limits are checked after conn_new, whose counts include this one. */
	if (srv->draining ||
	    (cfg->connections_per_client > 0 &&
	     conn_peer_count(s->conn) > cfg->connections_per_client) ||
	    (cfg->max_connections > 0 && conn_total_count() > cfg->max_connections)) {
		smtp_reject(s, "421 4.7.0 %s Too many connections", cfg->hostname);
		conn_close(s->conn);
		return;
	}
	conn_set_timeout(s->conn, cfg->smtp_timeout);
	if (smtp_session_open(s) < 0)
		return;
	/* RFC 3848: "ESMTP" in the greeting; no enhanced code here (RFC 2034 §3). */
	smtp_reply(s, "220 %s ESMTP tern", cfg->hostname);
}

static void
smtp_on_timeout(struct conn *c, void *ctx)
{
	struct smtp_session *s = ctx;
	(void)c;
	smtp_reject(s, "421 4.4.2 %s Error: timeout exceeded", s->srv->cfg->hostname);
}

static void
smtp_on_close(struct conn *c, void *ctx)
{
	struct smtp_session *s = ctx;
	if (s->data != NULL)
		smtp_data_abort(s);
	smtp_deliver_orphan(s);
	log_info("%s: disconnect from %s", s->id, conn_peer(c));
	smtp_transaction_reset(s);
	smtp_auth_clear(s);
	free(s->helo);
	free(s);
}

static const struct smtp_cmd *
smtp_cmd_find(const char *verb)
{
	for (size_t i = 0; i < sizeof(smtp_cmds) / sizeof(smtp_cmds[0]); i++)
		if (strcmp(smtp_cmds[i].verb, verb) == 0)
			return &smtp_cmds[i];
	return NULL;
}

static void
smtp_command(struct smtp_session *s, char *line)
{
	char verb[SMTP_VERB_MAX + 1];
	char *args;
	const struct smtp_cmd *cmd = NULL;
	if (smtp_parse_command(line, verb, &args) == 0)
		cmd = smtp_cmd_find(verb);
	if (cmd == NULL) {
		smtp_reply_bad(s, "500 5.5.2 Error: command not recognized");
		return;
	}
	if (cmd->need == SMTP_NEED_HELO && s->state < SMTP_STATE_READY) {
		smtp_reply_bad(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (cmd->need == SMTP_NEED_MAIL && s->state < SMTP_STATE_MAIL) {
		smtp_reply_bad(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	unsigned bad_before = s->bad_commands;
	cmd->run(s, args);
	/* "In a row": a command that did not add a bad one ends the run. */
	if (s->bad_commands == bad_before)
		s->bad_commands = 0;
}

/* An idle session goes at once; one inside DATA when its message is done. */
static void
smtp_on_shutdown(struct conn *c, void *ctx)
{
	struct smtp_session *s = ctx;
	/* A message on its way in, or being delivered: its reply comes first. */
	if (s->state == SMTP_STATE_DATA || s->delivery != NULL)
		return;
	smtp_reject(s, "421 4.3.2 %s Service shutting down", s->srv->cfg->hostname);
	conn_close(c);
}

static void
smtp_on_input(struct conn *c, void *ctx)
{
	struct smtp_session *s = ctx;
	while (!conn_busy(c)) {
		/* Shutting down: no new command once a transaction is over (§3.8). */
		if (s->srv->draining && s->state != SMTP_STATE_DATA) {
			smtp_reject(s, "421 4.3.2 %s Service shutting down", s->srv->cfg->hostname);
			conn_close(c);
			break;
		}
		if (s->state == SMTP_STATE_DATA) {
			if (!smtp_data_input(s))
				break;
			continue;
		}
		char *line;
		size_t len;
		enum conn_line r = conn_read_line(c, s->srv->cfg->line_length_limit, &line, &len);
		if (r == CONN_LINE_NONE)
			break;
		/* A NUL would cut the line short of what the client sent. */
		bool nul = r == CONN_LINE_OK && strlen(line) != len;
		if (s->sasl != NULL) {
			smtp_auth_input(s, r, nul, line);
			continue;
		}
		if (r == CONN_LINE_TOO_LONG) {
			smtp_reply_bad(s, "500 5.5.2 Error: line too long");
			continue;
		}
		if (nul) {
			smtp_reply_bad(s, "500 5.5.2 Error: NUL in command");
			continue;
		}
		smtp_command(s, line);
	}
}

/* Keeps the first word of a HELO argument, printable ASCII only. */
static char *
smtp_helo_name(const char *args)
{
	size_t n = strcspn(args, " \t");
	if (n > SMTP_HELO_MAX)
		n = SMTP_HELO_MAX;
	char *name = xstrndup(args, n);
	for (char *p = name; *p != '\0'; p++)
		if (*p < 33 || *p > 126)
			*p = '?';
	return name;
}

static bool
smtp_helo_common(struct smtp_session *s, char *args, bool esmtp)
{
	if (*args == '\0') {
		smtp_reply_bad(s, esmtp ? "501 5.5.4 Syntax: EHLO hostname"
					: "501 5.5.4 Syntax: HELO hostname");
		return false;
	}
	/* §4.1.4: EHLO/HELO in the middle of a transaction resets it. */
	smtp_transaction_reset(s);
	free(s->helo);
	s->helo = smtp_helo_name(args);
	s->esmtp = esmtp;
	s->state = SMTP_STATE_READY;
	log_info("%s: helo=%s from %s", s->id, s->helo, conn_peer(s->conn));
	return true;
}

static void
smtp_cmd_helo(struct smtp_session *s, char *args)
{
	if (smtp_helo_common(s, args, false))
		smtp_reply(s, "250 %s", s->srv->cfg->hostname);
}

static void
smtp_cmd_ehlo(struct smtp_session *s, char *args)
{
	if (!smtp_helo_common(s, args, true))
		return;
	const struct config *cfg = s->srv->cfg;
	smtp_reply(s, "250-%s", cfg->hostname);
	smtp_reply(s, "250-PIPELINING");
	smtp_reply(s, "250-SIZE %zu", cfg->message_size_limit);
	if (s->srv->tls != NULL && !conn_is_tls(s->conn))
		smtp_reply(s, "250-STARTTLS");
	/* RFC 4954 §4: no AUTH where a password would cross in clear. */
	if (smtp_auth_allowed(s))
		smtp_reply(s, "250-AUTH %s", sasl_mechanisms());
	smtp_reply(s, "250-8BITMIME");
	smtp_reply(s, "250 ENHANCEDSTATUSCODES");
}

/* SIZE=n (RFC 1870 §6) and BODY= (RFC 6152); anything else is refused. */
static int
smtp_mail_params(struct smtp_session *s, const struct smtp_path *path)
{
	for (size_t i = 0; i < path->nparams; i++) {
		const struct smtp_param *p = &path->params[i];
		if (strcasecmp(p->keyword, "SIZE") == 0 && p->value != NULL) {
			char *end;
			errno = 0;
			unsigned long long size = strtoull(p->value, &end, 10);
			if (*end != '\0' || errno != 0 || p->value[0] == '-') {
				smtp_reply_bad(s, "501 5.5.4 Bad SIZE parameter");
				return -1;
			}
			if (size > s->srv->cfg->message_size_limit) {
				smtp_reject(s, "552 5.3.4 Message size exceeds fixed limit");
				return -1;
			}
		} else if (strcasecmp(p->keyword, "BODY") == 0 && p->value != NULL &&
			   (strcasecmp(p->value, "7BIT") == 0 ||
			    strcasecmp(p->value, "8BITMIME") == 0)) {
			/* Nothing to do: we store 8-bit data as it comes. */
		} else {
			smtp_reply_bad(s, "555 5.5.4 Unsupported parameter");
			return -1;
		}
	}
	return 0;
}

/*
 * Submission (RFC 6409 §4.3, §6.1) wants a login, and a logged-in user may
 * only send as an address of its own; never <>, which is for bounces.
 */
static int
smtp_mail_sender_check(struct smtp_session *s, const char *sender)
{
	if (s->auth_user == NULL) {
		if (!smtp_is_submission(s))
			return 0;
		smtp_reject(s, "530 5.7.0 Authentication required");
		return -1;
	}
	if (!smtp_auth_owns_sender(s, sender)) {
		log_info("%s: user=<%s> may not send as <%s>", s->id, s->auth_user, sender);
		smtp_reject(s, "553 5.7.1 Sender address not owned by user");
		return -1;
	}
	return 0;
}

static void
smtp_cmd_mail(struct smtp_session *s, char *args)
{
	if (s->state != SMTP_STATE_READY) {
		smtp_reply_bad(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	struct smtp_path path;
	const char *error;
	if (smtp_parse_path(args, SMTP_PATH_MAIL, &path, &error) < 0) {
		smtp_reply_bad(s, error);
		return;
	}
	if (smtp_mail_params(s, &path) < 0 || smtp_mail_sender_check(s, path.address) < 0) {
		smtp_path_clear(&path);
		return;
	}
	s->sender = path.address;
	path.address = NULL;
	smtp_path_clear(&path);
	s->state = SMTP_STATE_MAIL;
	smtp_reply(s, "250 2.1.0 Ok");
}

static void
smtp_target_add(struct smtp_session *s, const char *address, bool local)
{
	for (size_t i = 0; i < s->ntargets; i++)
		if (strcmp(s->targets[i].address, address) == 0)
			return;
	s->targets = xrealloc(s->targets, (s->ntargets + 1) * sizeof(*s->targets));
	s->targets[s->ntargets].address = xstrdup(address);
	s->targets[s->ntargets].local = local;
	s->ntargets++;
}

/*
 * Adds the final addresses of an alias. Targets in a local domain must be
 * users (a stale alias should not make us accept mail we cannot store);
 * foreign targets go to the spool, since the admin chose to forward there.
 * Returns how many targets were usable.
 */
static size_t
smtp_rcpt_alias(struct smtp_session *s, char **list, size_t n)
{
	size_t usable = 0;
	for (size_t i = 0; i < n; i++) {
		bool local = config_is_local_domain(s->srv->cfg, smtp_address_domain(list[i]));
		if (local && !userdb_exists(s->srv->users, list[i])) {
			log_warn("%s: alias target <%s> is no user, skipped", s->id, list[i]);
			continue;
		}
		smtp_target_add(s, list[i], local);
		usable++;
	}
	return usable;
}

/* Decides about one canonical recipient; 0 if accepted (reply not yet sent). */
static int
smtp_rcpt_check(struct smtp_session *s, const char *addr)
{
	const struct config *cfg = s->srv->cfg;
	if (config_is_local_domain(cfg, smtp_address_domain(addr))) {
		char **list = NULL;
		size_t n = s->srv->aliases != NULL ? aliases_expand(s->srv->aliases, addr, &list) : 0;
		size_t usable = n > 0 ? smtp_rcpt_alias(s, list, n) : 0;
		aliases_free_list(list, n);
		if (usable > 0)
			return 0;
		if (n == 0 && userdb_exists(s->srv->users, addr)) {
			smtp_target_add(s, addr, true);
			return 0;
		}
		smtp_reject(s, "550 5.1.1 <%s>: Recipient address rejected: no such user", addr);
		return -1;
	}
	/* No open relay: foreign domains only for users and trusted networks. */
	if (s->auth_user == NULL &&
	    !net_list_match(&cfg->trusted_networks, conn_peer_addr(s->conn))) {
		smtp_reject(s, "554 5.7.1 <%s>: Relay access denied", addr);
		return -1;
	}
	smtp_target_add(s, addr, false);
	return 0;
}

static void
smtp_cmd_rcpt(struct smtp_session *s, char *args)
{
	/* §4.5.3.1.10: 452 for one recipient too many; the client goes on. */
	if (s->nrcpts >= s->srv->cfg->recipient_limit) {
		smtp_reject(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	struct smtp_path path;
	const char *error;
	if (smtp_parse_path(args, SMTP_PATH_RCPT, &path, &error) < 0) {
		smtp_reply_bad(s, error);
		return;
	}
	if (path.nparams > 0) {
		smtp_path_clear(&path);
		smtp_reply_bad(s, "555 5.5.4 Unsupported parameter");
		return;
	}
	char *addr = userdb_canonical(s->srv->users, path.address);
	smtp_path_clear(&path);
	if (smtp_rcpt_check(s, addr) == 0) {
		if (s->nrcpts++ == 0)
			s->first_rcpt = xstrdup(addr);
		smtp_reply(s, "250 2.1.5 Ok");
	} else {
		s->rcpt_refused = true;
	}
	free(addr);
}

static void
smtp_cmd_data(struct smtp_session *s, char *args)
{
	if (*args != '\0') {
		smtp_reply_bad(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	/* §3.3: 503 if no RCPT came, 554 if all of them were refused. */
	if (s->nrcpts == 0 && !s->rcpt_refused) {
		smtp_reply_bad(s, "503 5.5.1 Error: need RCPT command");
		return;
	}
	if (s->nrcpts == 0) {
		smtp_reject(s, "554 5.5.1 Error: no valid recipients");
		return;
	}
	smtp_data_begin(s);
}

static void
smtp_cmd_rset(struct smtp_session *s, char *args)
{
	(void)args;
	smtp_transaction_reset(s);
	smtp_reply(s, "250 2.0.0 Ok");
}

static void
smtp_cmd_noop(struct smtp_session *s, char *args)
{
	(void)args;
	smtp_reply(s, "250 2.0.0 Ok");
}

static void
smtp_cmd_quit(struct smtp_session *s, char *args)
{
	(void)args;
	smtp_reply(s, "221 2.0.0 Bye");
	conn_close(s->conn);
}

static void
smtp_cmd_vrfy(struct smtp_session *s, char *args)
{
	if (*args == '\0') {
		smtp_reply_bad(s, "501 5.5.4 Syntax: VRFY address");
		return;
	}
	/* §3.5.3: 252 says neither yes nor no, and gives no user list away. */
	smtp_reply(s, "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
}

static void
smtp_cmd_expn(struct smtp_session *s, char *args)
{
	(void)args;
	smtp_reply(s, "502 5.5.1 Error: command not implemented");
}

static void
smtp_cmd_help(struct smtp_session *s, char *args)
{
	(void)args;
	smtp_reply(s, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS AUTH");
}

/* RFC 3207: after the handshake the session starts over, EHLO and all. */
static void
smtp_cmd_starttls(struct smtp_session *s, char *args)
{
	if (s->srv->tls == NULL || conn_is_tls(s->conn)) {
		smtp_reply_bad(s, "502 5.5.1 Error: command not implemented");
		return;
	}
	if (*args != '\0') {
		smtp_reply_bad(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	smtp_reply(s, "220 2.0.0 Ready to start TLS");
	conn_start_tls(s->conn, s->srv->tls);
	smtp_transaction_reset(s);
	smtp_auth_clear(s);
	free(s->helo);
	s->helo = NULL;
	s->esmtp = false;
	s->state = SMTP_STATE_GREETED;
}
