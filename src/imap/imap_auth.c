/*
 * IMAP not-authenticated state: LOGIN (RFC 3501 §6.2.3), AUTHENTICATE
 * (§6.2.2 over auth/sasl.h, with RFC 4959 SASL-IR), RFC 5530 response
 * codes, the brute-force guard (auth/authguard.h) and the move to the
 * authenticated state, which creates the user's default mailboxes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "auth/authguard.h"
#include "auth/sasl.h"
#include "auth/userdb.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "imap/imap_parse.h"
#include "imap/imap_private.h"
#include "io/conn.h"
#include "io/server.h"
#include "store/folders.h"

bool
imap_auth_allowed(const struct imap_session *s)
{
	return server_plaintext_auth_ok(s->srv, s->conn);
}

void
imap_auth_reset(struct imap_session *s)
{
	sasl_free(&s->sasl);
	/* A check still running finds no session: it frees itself. */
	userdb_check_abandon(&s->login_check);
	free(s->login_name);
	s->login_name = NULL;
}

static bool
imap_auth_blocked(struct imap_session *s, const char *user)
{
	if (!authguard_blocked(s->srv->guard, s->srv->cfg, conn_peer_addr(s->conn), user))
		return false;
	log_warn("imap %s: auth blocked: proto=%s rip=%s user=<%s>", s->id,
		 proto_name(s->proto), conn_peer(s->conn), user != NULL ? user : "");
	conn_printf(s->conn, "%s NO [UNAVAILABLE] Too many failures, try later\r\n", s->tag);
	return true;
}

static void
imap_auth_fail_done(struct conn *c, void *ctx)
{
	struct imap_session *s = ctx;
	(void)c;
	s->delayed = false;
	conn_printf(s->conn, "%s NO [AUTHENTICATIONFAILED] Authentication failed\r\n", s->tag);
	unsigned max = s->srv->cfg->auth_max_failures;
	if (max > 0 && s->auth_failures >= max) {
		log_info("imap %s: too many failed logins rip=%s", s->id, conn_peer(s->conn));
		conn_writes(s->conn, "* BYE Too many failed logins\r\n");
		s->logged_out = true;
		conn_close(s->conn);
		return;
	}
	conn_resume(s->conn);
}

/* The answer waits for the guard's delay, input paused meanwhile. */
static void
imap_auth_fail(struct imap_session *s, const char *login)
{
	unsigned ms = authguard_failed(s->srv->guard, s->srv->cfg, s->srv->users,
				       conn_peer_addr(s->conn), login, proto_name(s->proto), s->id);
	s->auth_failures++;
	s->delayed = true;
	conn_pause_for(s->conn, ms, imap_auth_fail_done);
}

static void
imap_auth_tempfail(struct imap_session *s)
{
	log_err("imap %s: users file unreadable rip=%s", s->id, conn_peer(s->conn));
	conn_printf(s->conn, "%s NO [UNAVAILABLE] Authentication is unavailable\r\n", s->tag);
}

/* Right credentials: unless blocked, into the authenticated state. */
static void
imap_auth_ok(struct imap_session *s, char *address, const char *mech)
{
	/* A blocked user stays blocked even with the right password: else the
	   block would tell a guesser which guess was right. */
	if (imap_auth_blocked(s, address)) {
		free(address);
		return;
	}
	authguard_succeeded(s->srv->guard, conn_peer_addr(s->conn), address);
	char *mail_root = xasprintf("%s/mail", s->srv->cfg->data_dir);
	enum store_folder_err err;
	char *error = NULL;
	if (store_user_init(mail_root, address, &err, &error) < 0) {
		log_err("imap %s: user=%s mailbox setup failed: %s", s->id, address, error);
		conn_printf(s->conn, "%s NO [SERVERBUG] Cannot open the mailboxes\r\n", s->tag);
		free(error);
		free(mail_root);
		free(address);
		return;
	}
	s->mail_root = mail_root;
	s->address = address;
	s->state = IMAP_STATE_AUTH;
	log_info("imap %s: login user=%s mech=%s rip=%s tls=%s", s->id, address, mech,
		 conn_peer(s->conn), conn_is_tls(s->conn) ? "yes" : "no");
	struct buf out = BUF_INIT;
	buf_appendf(&out, "%s OK [CAPABILITY ", s->tag);
	imap_capabilities(s, &out);
	buf_appends(&out, "] Logged in\r\n");
	conn_write(s->conn, out.data, out.len);
	buf_free(&out);
}

/* RFC 5530 PRIVACYREQUIRED: a password must not cross here in clear. */
static bool
imap_auth_refused(struct imap_session *s)
{
	if (imap_auth_allowed(s))
		return false;
	conn_printf(s->conn, "%s NO [PRIVACYREQUIRED] Plaintext authentication disallowed "
		    "without TLS\r\n", s->tag);
	return true;
}

/* LOGIN's check is over (on the loop again): the answer, then input. */
static void
imap_login_done(bool ok, char *address, void *ctx)
{
	struct imap_session *s = ctx;
	s->login_check = NULL;
	conn_resume(s->conn);
	if (ok)
		imap_auth_ok(s, address, "LOGIN");
	else
		imap_auth_fail(s, s->login_name);
	free(s->login_name);
	s->login_name = NULL;
}

int
imap_cmd_login(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	const char *login, *password;
	size_t len;
	if (argc != 2 || !imap_arg_get_astring(&args[0], &login, &len) ||
	    !imap_arg_get_astring(&args[1], &password, &len)) {
		imap_reply_bad(s, "LOGIN takes a user name and a password");
		return -1;
	}
	if (imap_auth_refused(s))
		return 0;
	char *name = authguard_name(s->srv->users, login);
	if (!imap_auth_blocked(s, name)) {
		/*
		 * crypt() runs on the pool; the session reads nothing more
		 * until imap_login_done has answered (the tag stays in s->tag).
		 */
		if (userdb_verify_async(s->srv->users, s->srv->pool, login, password,
					imap_login_done, s, &s->login_check) < 0) {
			imap_auth_tempfail(s);
		} else {
			s->login_name = xstrdup(login);
			conn_pause(s->conn);
		}
	}
	free(name);
	return 0;
}

/* An AUTHENTICATE exchange acts on the result of a step. */
static void imap_auth_result(struct imap_session *s, enum sasl_result r);

/* AUTHENTICATE's check ran on the pool: the answer, then input again. */
static void
imap_auth_check_done(struct sasl *sasl, enum sasl_result r, void *ctx)
{
	struct imap_session *s = ctx;
	(void)sasl;
	conn_resume(s->conn);
	imap_auth_result(s, r);
}

/* Acts on one SASL step; the exchange ends unless it continues. */
static void
imap_auth_step(struct imap_session *s, const char *response)
{
	char *challenge = NULL;
	enum sasl_result r = sasl_step(s->sasl, response, &challenge);
	if (r == SASL_CONTINUE) {
		/* RFC 3501 §7.5: "+ " and the base64 challenge. */
		conn_printf(s->conn, "+ %s\r\n", challenge != NULL ? challenge : "");
		free(challenge);
		return;
	}
	free(challenge);
	imap_auth_result(s, r);
}

static void
imap_auth_result(struct imap_session *s, enum sasl_result r)
{
	switch (r) {
	case SASL_PENDING:
		/* crypt() on the pool: no input until imap_auth_check_done. */
		conn_pause(s->conn);
		return;
	case SASL_OK:
		imap_auth_ok(s, xstrdup(sasl_user(s->sasl)), sasl_mechanism(s->sasl));
		break;
	case SASL_FAIL:
		imap_auth_fail(s, sasl_login(s->sasl));
		break;
	case SASL_TEMPFAIL:
		imap_auth_tempfail(s);
		break;
	default:
		imap_reply_bad(s, "Invalid authentication exchange");
		break;
	}
	sasl_free(&s->sasl);
}

void
imap_auth_response(struct imap_session *s, const char *line)
{
	if (strcmp(line, "*") == 0) {
		/* RFC 3501 §6.2.2: the client cancelled; BAD. */
		sasl_free(&s->sasl);
		imap_reply_bad(s, "Authentication cancelled");
		return;
	}
	imap_auth_step(s, line);
}

/* AUTHENTICATE mechanism [initial-response] (RFC 4959: "=" is empty). */
int
imap_cmd_authenticate(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	const char *mech, *ir = NULL;
	size_t len;
	if (argc < 1 || argc > 2 || args[0].type != IMAP_ARG_ATOM ||
	    (argc == 2 && !imap_arg_get_astring(&args[1], &ir, &len))) {
		imap_reply_bad(s, "AUTHENTICATE takes a mechanism and an initial response");
		return -1;
	}
	mech = args[0].u.str.data;
	if (imap_auth_refused(s))
		return 0;
	s->sasl = sasl_begin(s->srv->users, mech);
	if (s->sasl == NULL) {
		conn_printf(s->conn, "%s NO [CANNOT] Unsupported authentication mechanism\r\n",
			    s->tag);
		return 0;
	}
	if (imap_auth_blocked(s, NULL)) {
		sasl_free(&s->sasl);
		return 0;
	}
	sasl_set_pool(s->sasl, s->srv->pool, imap_auth_check_done, s);
	imap_auth_step(s, ir);
	return 0;
}
