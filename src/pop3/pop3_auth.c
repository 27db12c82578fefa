/*
 * POP3 AUTHORIZATION (RFC 1939 §4 USER/PASS, RFC 5034 AUTH over auth/sasl.h,
 * RFC 3206 response codes): where passwords may be sent, the brute-force
 * guard (auth/authguard.h) and the move to TRANSACTION.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "auth/authguard.h"
#include "auth/sasl.h"
#include "auth/userdb.h"
#include "core/log.h"
#include "core/util.h"
#include "io/conn.h"
#include "io/server.h"
#include "pop3/pop3_private.h"
#include "store/store.h"

/* Said instead of +OK wherever a password would cross in clear. */
#define POP3_NEED_TLS "-ERR Plaintext authentication disallowed without TLS (use STLS)\r\n"

bool
pop3_auth_allowed(const struct pop3_session *s)
{
	return server_plaintext_auth_ok(s->srv, s->conn);
}

void
pop3_auth_reset(struct pop3_session *s)
{
	free(s->user);
	s->user = NULL;
	sasl_free(&s->sasl);
	/* A check still running finds no session: it frees itself. */
	userdb_check_abandon(&s->pass_check);
	free(s->pass_login);
	s->pass_login = NULL;
}

/* The guard says no: the same answer whether the password was right or not. */
static bool
pop3_auth_blocked(struct pop3_session *s, const char *user)
{
	if (!authguard_blocked(s->srv->guard, s->srv->cfg, conn_peer_addr(s->conn), user))
		return false;
	log_warn("pop3 %s: auth blocked: proto=%s rip=%s user=<%s>", s->id,
		 proto_name(s->proto), conn_peer(s->conn), user != NULL ? user : "");
	conn_writes(s->conn, "-ERR [SYS/TEMP] Too many failures, try later\r\n");
	return true;
}

/* After the pause: the answer to the failed login, then input again. */
static void
pop3_auth_fail_done(struct conn *c, void *ctx)
{
	struct pop3_session *s = ctx;
	(void)c;
	conn_writes(s->conn, "-ERR [AUTH] Authentication failed\r\n");
	unsigned max = s->srv->cfg->auth_max_failures;
	if (max > 0 && s->auth_failures >= max) {
		log_info("pop3 %s: too many failed logins rip=%s", s->id, conn_peer(s->conn));
		conn_close(s->conn);
		return;
	}
	conn_resume(s->conn);
}

/*
 * A wrong password is answered only after the guard's delay (doubling with
 * each failure), with input paused meanwhile, so guessing costs time even
 * over pipelined commands. The guard writes the one fail2ban log line.
 */
static void
pop3_auth_fail(struct pop3_session *s, const char *login)
{
	unsigned ms = authguard_failed(s->srv->guard, s->srv->cfg, s->srv->users,
				       conn_peer_addr(s->conn), login, proto_name(s->proto), s->id);
	s->auth_failures++;
	conn_pause_for(s->conn, ms, pop3_auth_fail_done);
}

/* Takes the maildrop lock and enters TRANSACTION (RFC 1939 §4). */
static void
pop3_open_maildrop(struct pop3_session *s, char *address, const char *mech)
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
	log_info("pop3 %s: login user=%s mech=%s rip=%s tls=%s msgs=%zu", s->id, address,
		 mech, conn_peer(s->conn), conn_is_tls(s->conn) ? "yes" : "no", s->count);
	conn_printf(s->conn, "+OK Logged in, %zu messages\r\n", s->count);
}

/* Credentials were right: unless the user is blocked, open the maildrop. */
static void
pop3_auth_ok(struct pop3_session *s, char *address, const char *mech)
{
	/*
	 * A blocked user stays blocked even with the right password: else the
	 * block would tell a guesser which guess was right.
	 */
	if (pop3_auth_blocked(s, address)) {
		free(address);
		return;
	}
	authguard_succeeded(s->srv->guard, conn_peer_addr(s->conn), address);
	pop3_open_maildrop(s, address, mech);
}

int
pop3_cmd_user(struct pop3_session *s, int argc, char **argv)
{
	(void)argc;
	if (!pop3_auth_allowed(s)) {
		conn_writes(s->conn, POP3_NEED_TLS);
		return 0;
	}
	free(s->user);
	s->user = xstrdup(argv[0]);
	/* The same answer for every name: nothing to learn about who exists. */
	conn_writes(s->conn, "+OK\r\n");
	return 0;
}

/* PASS's check is over (on the loop again): the answer, then input. */
static void
pop3_pass_done(bool ok, char *address, void *ctx)
{
	struct pop3_session *s = ctx;
	s->pass_check = NULL;
	conn_resume(s->conn);
	if (ok)
		pop3_auth_ok(s, address, "USER");
	else
		pop3_auth_fail(s, s->pass_login);
	free(s->pass_login);
	s->pass_login = NULL;
}

int
pop3_cmd_pass(struct pop3_session *s, int argc, char **argv)
{
	if (!pop3_auth_allowed(s)) {
		conn_writes(s->conn, POP3_NEED_TLS);
		return 0;
	}
	if (s->user == NULL) {
		pop3_reply_bad(s, "-ERR USER first");
		return -1;
	}
	char *login = s->user;
	s->user = NULL; /* RFC 1939 §7: after a failed PASS, USER starts again */
	char *name = authguard_name(s->srv->users, login);
	if (pop3_auth_blocked(s, name)) {
		free(login);
	} else if (userdb_verify_async(s->srv->users, s->srv->pool, login,
				       argc == 1 ? argv[0] : "", pop3_pass_done, s,
				       &s->pass_check) < 0) {
		log_err("pop3 %s: users file unreadable rip=%s", s->id, conn_peer(s->conn));
		conn_writes(s->conn, "-ERR [SYS/TEMP] Authentication is unavailable\r\n");
		free(login);
	} else {
		/* crypt() runs on the pool: no command is read until the answer. */
		s->pass_login = login;
		conn_pause(s->conn);
	}
	free(name);
	return 0;
}

/* An AUTH exchange acts on the result of a step. */
static void pop3_auth_result(struct pop3_session *s, enum sasl_result r);

/* AUTH's check ran on the pool: the answer, then input again. */
static void
pop3_auth_check_done(struct sasl *sasl, enum sasl_result r, void *ctx)
{
	struct pop3_session *s = ctx;
	(void)sasl;
	conn_resume(s->conn);
	pop3_auth_result(s, r);
}

/* Acts on one SASL step; the exchange ends unless it continues. */
static void
pop3_auth_step(struct pop3_session *s, const char *response)
{
	char *challenge = NULL;
	enum sasl_result r = sasl_step(s->sasl, response, &challenge);
	if (r == SASL_CONTINUE) {
		/* RFC 5034 §4: "+ " and the base64 challenge, nothing else. */
		conn_printf(s->conn, "+ %s\r\n", challenge != NULL ? challenge : "");
		free(challenge);
		return;
	}
	free(challenge);
	pop3_auth_result(s, r);
}

static void
pop3_auth_result(struct pop3_session *s, enum sasl_result r)
{
	switch (r) {
	case SASL_PENDING:
		/* crypt() on the pool: no input until pop3_auth_check_done. */
		conn_pause(s->conn);
		return;
	case SASL_OK:
		pop3_auth_ok(s, xstrdup(sasl_user(s->sasl)), sasl_mechanism(s->sasl));
		break;
	case SASL_FAIL:
		pop3_auth_fail(s, sasl_login(s->sasl));
		break;
	case SASL_TEMPFAIL:
		log_err("pop3 %s: users file unreadable rip=%s", s->id, conn_peer(s->conn));
		conn_writes(s->conn, "-ERR [SYS/TEMP] Authentication is unavailable\r\n");
		break;
	default:
		pop3_reply_bad(s, "-ERR Invalid authentication exchange");
		break;
	}
	sasl_free(&s->sasl);
}

void
pop3_auth_response(struct pop3_session *s, const char *line)
{
	if (strcmp(line, "*") == 0) {
		/* RFC 5034 §4: the client cancelled; the AUTH command fails. */
		sasl_free(&s->sasl);
		conn_writes(s->conn, "-ERR Authentication cancelled\r\n");
		return;
	}
	pop3_auth_step(s, line);
}

/* RFC 5034 §4: AUTH mechanism [initial-response]; "=" is an empty one. */
int
pop3_cmd_auth(struct pop3_session *s, int argc, char **argv)
{
	if (argc == 0) {
		/* Not in RFC 5034: the older RFC 1734 clients list mechanisms this way. */
		conn_writes(s->conn, "+OK\r\n");
		if (pop3_auth_allowed(s)) {
			char *list = xstrdup(sasl_mechanisms());
			char *save = NULL;
			for (char *m = strtok_r(list, " ", &save); m != NULL;
			     m = strtok_r(NULL, " ", &save))
				conn_printf(s->conn, "%s\r\n", m);
			free(list);
		}
		conn_writes(s->conn, ".\r\n");
		return 0;
	}
	if (!pop3_auth_allowed(s)) {
		conn_writes(s->conn, POP3_NEED_TLS);
		return 0;
	}
	s->sasl = sasl_begin(s->srv->users, argv[0]);
	if (s->sasl == NULL) {
		conn_writes(s->conn, "-ERR Unsupported authentication mechanism\r\n");
		return 0;
	}
	/* The guard is asked before the exchange; again at the end with the user. */
	if (pop3_auth_blocked(s, NULL)) {
		sasl_free(&s->sasl);
		return 0;
	}
	sasl_set_pool(s->sasl, s->srv->pool, pop3_auth_check_done, s);
	pop3_auth_step(s, argc == 2 ? argv[1] : NULL);
	return 0;
}
