#ifndef TERN_AUTH_SASL_H
#define TERN_AUTH_SASL_H

/*
 * Server-side SASL (RFC 4422), one implementation for SMTP AUTH (RFC 4954),
 * POP3 AUTH (RFC 5034) and IMAP AUTHENTICATE: PLAIN (RFC 4616), LOGIN, and
 * SCRAM-SHA-256 (RFC 5802, RFC 7677). The protocols carry the exchange as
 * base64 text; this module takes and gives base64, so each protocol only
 * frames it ("334 ...", "+ ...") and handles the client's "*" cancel.
 */
struct userdb;
struct workpool;
struct sasl;

enum sasl_result {
	SASL_CONTINUE, /* send *challenge_r, then feed the client's answer */
	SASL_OK,       /* authenticated: sasl_user() is the canonical address */
	SASL_FAIL,     /* wrong credentials or unknown user */
	SASL_BAD,      /* malformed exchange (bad base64, protocol violation) */
	SASL_TEMPFAIL, /* the users file cannot be read */
	SASL_PENDING,  /* a password check runs on the pool: wait for done() */
};

/*
 * The end of a check that sasl_step left SASL_PENDING: r is SASL_OK or
 * SASL_FAIL. Called from the loop; it may sasl_free(s).
 */
typedef void sasl_done_fn(struct sasl *s, enum sasl_result r, void *ctx);

/* "PLAIN LOGIN SCRAM-SHA-256": what the protocols advertise. */
const char *sasl_mechanisms(void);
/* Starts an exchange; NULL for an unknown mechanism (case-insensitive). */
struct sasl *sasl_begin(struct userdb *db, const char *mechanism);
/*
 * PLAIN and LOGIN check the password with crypt(3) on the pool's threads
 * (userdb_verify_async): the step that needs it returns SASL_PENDING and
 * done() gives the result later. The session takes no input meanwhile.
 * Without this call the check runs inside sasl_step (unit tests).
 * sasl_free while a check runs abandons it: done() is never called.
 */
void sasl_set_pool(struct sasl *s, struct workpool *pool, sasl_done_fn *done, void *ctx);
/*
 * One step. response is the client's base64 text; NULL when the client gave
 * no initial response (so the first challenge is sent), "" or "=" for an
 * empty one. *challenge_r (new string, base64, maybe "") is set with
 * SASL_CONTINUE.
 */
enum sasl_result sasl_step(struct sasl *s, const char *response, char **challenge_r);
/* After SASL_OK: the canonical address. */
const char *sasl_user(const struct sasl *s);
/* The login name the client claimed, for the failure log (never a password). */
const char *sasl_login(const struct sasl *s);
/* The mechanism's name, upper case ("PLAIN"), for the log. */
const char *sasl_mechanism(const struct sasl *s);
void sasl_free(struct sasl **s);

#endif
