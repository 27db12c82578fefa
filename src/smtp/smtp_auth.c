/*
 * SMTP AUTH (RFC 4954) on top of the shared SASL code (auth/sasl.h): the
 * command, the 334 challenge / response loop, the delay after a failure
 * (auth/authguard.h), and who may use which envelope sender afterwards.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/aliases.h"
#include "auth/authguard.h"
#include "auth/sasl.h"
#include "auth/userdb.h"
#include "core/log.h"
#include "core/util.h"
#include "smtp/smtp_private.h"

bool
smtp_auth_allowed(const struct smtp_session *s)
{
	return server_plaintext_auth_ok(s->srv, s->conn);
}

void
smtp_auth_clear(struct smtp_session *s)
{
	sasl_free(&s->sasl);
	free(s->auth_user);
	s->auth_user = NULL;
}

/* After the pause: the answer to the failed exchange, then input again. */
static void
smtp_auth_fail_done(struct conn *c, void *ctx)
{
	struct smtp_session *s = ctx;
	(void)c;
	unsigned max = s->srv->cfg->auth_max_failures;
	if (max > 0 && s->auth_failures >= max) {
		log_info("%s: too many failed authentications from %s", s->id,
			 conn_peer(s->conn));
		smtp_reply(s, "421 4.7.0 %s Error: too many failed authentications",
			   s->srv->cfg->hostname);
		conn_close(s->conn);
		return;
	}
	smtp_reply(s, "535 5.7.8 Authentication credentials invalid");
	conn_resume(s->conn);
}

/*
 * Wrong credentials are answered only after the guard's delay, with input
 * paused meanwhile, so that guessing costs time even when pipelined.
 */
static void
smtp_auth_failed(struct smtp_session *s, const char *login)
{
	unsigned ms = authguard_failed(s->srv->guard, s->srv->cfg, s->srv->users,
				       conn_peer_addr(s->conn), login, proto_name(s->proto), s->id);
	s->auth_failures++;
	conn_pause_for(s->conn, ms, smtp_auth_fail_done);
}

static void
smtp_auth_blocked(struct smtp_session *s, const char *user)
{
	log_warn("%s: auth blocked: proto=%s rip=%s user=<%s>", s->id, proto_name(s->proto),
		 conn_peer(s->conn), user != NULL ? user : "");
	smtp_reply(s, "454 4.7.0 Temporary authentication failure, try again later");
}

static void
smtp_auth_succeeded(struct smtp_session *s)
{
	const char *user = sasl_user(s->sasl);
	/*
	 * A blocked user stays blocked even with the right password: else the
	 * block would tell a guesser when a guess was right.
	 */
	if (authguard_blocked(s->srv->guard, s->srv->cfg, conn_peer_addr(s->conn), user)) {
		smtp_auth_blocked(s, user);
		return;
	}
	authguard_succeeded(s->srv->guard, conn_peer_addr(s->conn), user);
	s->auth_user = xstrdup(user);
	log_info("%s: auth ok user=<%s> mech=%s rip=%s", s->id, user, sasl_mechanism(s->sasl),
		 conn_peer(s->conn));
	smtp_reply(s, "235 2.7.0 Authentication successful");
}

static void smtp_auth_result(struct smtp_session *s, enum sasl_result r, char *challenge);

/* The password check ran on the pool: the session takes input again. */
static void
smtp_auth_check_done(struct sasl *sasl, enum sasl_result r, void *ctx)
{
	struct smtp_session *s = ctx;
	(void)sasl;
	conn_resume(s->conn);
	smtp_auth_result(s, r, NULL);
}

/* Acts on one SASL step; the exchange ends unless it continues. */
static void
smtp_auth_result(struct smtp_session *s, enum sasl_result r, char *challenge)
{
	if (r == SASL_PENDING) {
		/*
		 * crypt() runs on the pool; no further command is read until
		 * its answer is out (RFC 2920 §3.1 keeps replies in order).
		 * Closing the session meanwhile abandons the check (sasl_free).
		 */
		free(challenge);
		conn_pause(s->conn);
		return;
	}
	if (r == SASL_CONTINUE) {
		/* Checked at every step, so that a blocked user learns nothing
		 * from a SCRAM server-final message either. */
		const char *login = sasl_login(s->sasl);
		char *name = login[0] != '\0' ? authguard_name(s->srv->users, login) : NULL;
		if (name != NULL && authguard_blocked(s->srv->guard, s->srv->cfg,
						      conn_peer_addr(s->conn), name)) {
			free(challenge);
			smtp_auth_blocked(s, name);
			free(name);
			sasl_free(&s->sasl);
			return;
		}
		free(name);
		smtp_reply(s, "334 %s", challenge);
		free(challenge);
		return;
	}
	free(challenge);
	switch (r) {
	case SASL_OK:
		smtp_auth_succeeded(s);
		break;
	case SASL_FAIL:
		smtp_auth_failed(s, sasl_login(s->sasl));
		break;
	case SASL_TEMPFAIL:
		log_err("%s: auth unavailable: the users file cannot be read", s->id);
		smtp_reply(s, "454 4.7.0 Temporary authentication failure");
		break;
	default:
		smtp_reply_bad(s, "501 5.5.2 Invalid authentication exchange");
		break;
	}
	sasl_free(&s->sasl);
}

/* The checks of RFC 4954 §4 before an exchange may start; 0 if it may. */
static int
smtp_auth_check(struct smtp_session *s)
{
	if (s->auth_user != NULL) {
		smtp_reply_bad(s, "503 5.5.1 Error: already authenticated");
		return -1;
	}
	if (s->state >= SMTP_STATE_MAIL) {
		smtp_reply_bad(s, "503 5.5.1 Error: MAIL transaction in progress");
		return -1;
	}
	if (!smtp_auth_allowed(s)) {
		smtp_reject(s, "538 5.7.11 Encryption required for requested "
			       "authentication mechanism");
		return -1;
	}
	if (authguard_blocked(s->srv->guard, s->srv->cfg, conn_peer_addr(s->conn), NULL)) {
		smtp_auth_blocked(s, NULL);
		return -1;
	}
	return 0;
}

/* AUTH mechanism [initial-response] */
void
smtp_cmd_auth(struct smtp_session *s, char *args)
{
	if (smtp_auth_check(s) < 0)
		return;
	char *mech = args;
	char *initial = NULL;
	char *sp = strchr(args, ' ');
	if (sp != NULL) {
		*sp = '\0';
		initial = sp + 1;
		while (*initial == ' ')
			initial++;
		if (*initial == '\0' || strchr(initial, ' ') != NULL) {
			smtp_reply_bad(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
			return;
		}
	}
	if (*mech == '\0') {
		smtp_reply_bad(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
		return;
	}
	if ((s->sasl = sasl_begin(s->srv->users, mech)) == NULL) {
		smtp_reply_bad(s, "504 5.5.4 Unrecognized authentication type");
		return;
	}
	sasl_set_pool(s->sasl, s->srv->pool, smtp_auth_check_done, s);
	/* "*" as the initial response cancels as well (RFC 4954 §4). */
	if (initial != NULL && strcmp(initial, "*") == 0) {
		sasl_free(&s->sasl);
		smtp_reply(s, "501 5.0.0 Authentication cancelled");
		return;
	}
	char *challenge = NULL;
	enum sasl_result r = sasl_step(s->sasl, initial, &challenge);
	smtp_auth_result(s, r, challenge);
}

/* One line of the exchange: the client's answer to a 334 (nul: it held one). */
void
smtp_auth_input(struct smtp_session *s, enum conn_line r, bool nul, const char *line)
{
	if (r == CONN_LINE_TOO_LONG) {
		sasl_free(&s->sasl);
		smtp_reply_bad(s, "500 5.5.6 Authentication exchange line is too long");
		return;
	}
	if (nul) {
		/* RFC 4954 §4: an answer that cannot be decoded ends the exchange. */
		sasl_free(&s->sasl);
		smtp_reply_bad(s, "501 5.5.2 Invalid authentication exchange");
		return;
	}
	if (strcmp(line, "*") == 0) {
		sasl_free(&s->sasl);
		smtp_reply(s, "501 5.0.0 Authentication cancelled");
		return;
	}
	char *challenge = NULL;
	enum sasl_result res = sasl_step(s->sasl, line, &challenge);
	smtp_auth_result(s, res, challenge);
}

/*
 * RFC 6409 §6.1: the MSA may check that the sender is one the user may
 * use: the user's own address, or an alias that reaches the user.
 */
bool
smtp_auth_owns_sender(struct smtp_session *s, const char *sender)
{
	if (sender[0] == '\0')
		return false;
	char *addr = userdb_canonical(s->srv->users, sender);
	bool owned = strcmp(addr, s->auth_user) == 0;
	if (!owned && s->srv->aliases != NULL) {
		char **list = NULL;
		size_t n = aliases_expand(s->srv->aliases, addr, &list);
		for (size_t i = 0; i < n && !owned; i++)
			owned = strcmp(list[i], s->auth_user) == 0;
		aliases_free_list(list, n);
	}
	free(addr);
	return owned;
}
