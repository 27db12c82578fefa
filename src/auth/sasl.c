/*
 * Server-side SASL: PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login)
 * and SCRAM-SHA-256 (RFC 5802, RFC 7677), one client response per step.
 */
#include "auth/sasl.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "auth/sasl_test.h"
#include "auth/userdb.h"
#include "core/log.h"
#include "core/util.h"

/* Longest client response taken, in base64 characters. */
#define SASL_MAX_RESPONSE 8192
/* Longest authzid, authcid or password (RFC 4616 section 2 suggests 255). */
#define SASL_MAX_FIELD 255
#define SCRAM_NONCE_BYTES 24
#define SCRAM_KEY_LEN USERDB_SCRAM_KEY_LEN

struct sasl;

struct sasl_mech {
	const char *name;
	/* in is NULL when the client gave no initial response. */
	enum sasl_result (*step)(struct sasl *s, const char *in, size_t len,
				 char **challenge_r);
};

/* The state of one SCRAM exchange, between its messages. */
struct sasl_scram {
	char *gs2_header;        /* "n,," or "y,,", or with a=authzid */
	char *client_first_bare; /* RFC 5802 section 3, part of AuthMessage */
	char *server_first;
	char *nonce;             /* client nonce + server nonce */
	char *address;           /* canonical */
	bool known;              /* false: fake secrets, the exchange must fail */
	struct userdb_scram secrets;
};

struct sasl {
	struct userdb *db;
	const struct sasl_mech *mech;
	unsigned int steps;  /* sasl_step calls so far */
	int phase;           /* per mechanism: which message comes next */
	bool finished;       /* a final result was given */
	char *login;         /* the claimed name, made safe for a log line */
	char *user;          /* the canonical address, after SASL_OK */
	char *username;      /* LOGIN: the name, until the password comes */
	struct sasl_scram *scram;
	/* Password checks on a pool (sasl_set_pool), else inside sasl_step. */
	struct workpool *pool;
	sasl_done_fn *done;
	void *done_ctx;
	struct userdb_check *check; /* running: the step said SASL_PENDING */
};

static char sasl_test_nonce[64];

void
sasl_scram_test_set_nonce(const char *nonce)
{
	snprintf(sasl_test_nonce, sizeof(sasl_test_nonce), "%s", nonce ? nonce : "");
}

/* "=" alone is an empty response (RFC 4954 section 4, RFC 5034). */
static int
sasl_b64_decode(const char *s, char **out_r, size_t *len_r)
{
	size_t n = strnlen(s, SASL_MAX_RESPONSE + 1);
	if (n > SASL_MAX_RESPONSE)
		return -1;
	if (strcmp(s, "=") == 0)
		n = 0;
	return base64_decode(s, n, (unsigned char **)out_r, len_r);
}

/* Keeps the claimed name for the log, control characters made '?'. */
static void
sasl_set_login(struct sasl *s, const char *name)
{
	free(s->login);
	s->login = xstrdup(name);
	for (unsigned char *p = (unsigned char *)s->login; *p != '\0'; p++)
		if (*p < ' ' || *p == 0x7f)
			*p = '?';
}

/* An authzid is allowed only if it names the authenticating user. */
static bool
sasl_authzid_ok(struct sasl *s, const char *authzid, const char *authcid)
{
	if (*authzid == '\0')
		return true;
	char *a = userdb_canonical(s->db, authzid);
	char *b = userdb_canonical(s->db, authcid);
	bool same = strcmp(a, b) == 0;
	free(a);
	free(b);
	return same;
}

/* The pool's check is over: the answer the step could not give. */
static void
sasl_check_done(bool ok, char *address, void *ctx)
{
	struct sasl *s = ctx;
	s->check = NULL;
	s->user = address;
	s->done(s, ok ? SASL_OK : SASL_FAIL, s->done_ctx);
}

/* PLAIN and LOGIN: the password checked against the crypt(3) hash. */
static enum sasl_result
sasl_check_password(struct sasl *s, const char *login, const char *password)
{
	if (s->pool != NULL) {
		if (userdb_verify_async(s->db, s->pool, login, password, sasl_check_done, s,
					&s->check) < 0)
			return SASL_TEMPFAIL;
		return SASL_PENDING;
	}
	char *address = NULL;
	int r = userdb_verify(s->db, login, password, &address);
	if (r < 0)
		return SASL_TEMPFAIL;
	if (r == 0)
		return SASL_FAIL;
	s->user = address;
	return SASL_OK;
}

/* ---- PLAIN ---- */

/* RFC 4616 section 2: message = [authzid] NUL authcid NUL passwd. */
static enum sasl_result
sasl_plain_step(struct sasl *s, const char *in, size_t len, char **challenge_r)
{
	if (in == NULL) {
		*challenge_r = xstrdup("");
		return SASL_CONTINUE;
	}
	const char *nul1 = memchr(in, '\0', len);
	const char *nul2 = nul1 ? memchr(nul1 + 1, '\0', len - (size_t)(nul1 + 1 - in)) : NULL;
	if (nul2 == NULL)
		return SASL_BAD;
	const char *authzid = in, *authcid = nul1 + 1, *password = nul2 + 1;
	size_t password_len = len - (size_t)(password - in);
	/* The decoded text is NUL-terminated: a third NUL shows as a short string. */
	if (strlen(password) != password_len || *authcid == '\0' || password_len == 0 ||
	    strlen(authzid) > SASL_MAX_FIELD || strlen(authcid) > SASL_MAX_FIELD ||
	    password_len > SASL_MAX_FIELD)
		return SASL_BAD;
	sasl_set_login(s, authcid);
	if (!sasl_authzid_ok(s, authzid, authcid))
		return SASL_FAIL;
	return sasl_check_password(s, authcid, password);
}

/* ---- LOGIN ---- */

/*
 * draft-murchison-sasl-login: the server asks "Username:" and then
 * "Password:". A client may send the name as an initial response.
 */
static enum sasl_result
sasl_login_step(struct sasl *s, const char *in, size_t len, char **challenge_r)
{
	if (in == NULL) {
		*challenge_r = base64_encode("Username:", 9);
		return SASL_CONTINUE;
	}
	if (strlen(in) != len || len > SASL_MAX_FIELD)
		return SASL_BAD;
	if (s->phase == 0) {
		if (len == 0)
			return SASL_BAD;
		s->username = xstrdup(in);
		sasl_set_login(s, in);
		s->phase = 1;
		*challenge_r = base64_encode("Password:", 9);
		return SASL_CONTINUE;
	}
	return sasl_check_password(s, s->username, in);
}

/* ---- SCRAM-SHA-256 ---- */

static void
scram_hmac(const unsigned char *key, size_t key_len, const char *data, size_t len,
	   unsigned char out[SCRAM_KEY_LEN])
{
	unsigned int out_len;
	if (HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)data, len,
		 out, &out_len) == NULL)
		RAND_bytes(out, SCRAM_KEY_LEN); /* only a broken OpenSSL: match nothing */
}

/*
 * RFC 5802 section 5.1 saslname: "=2C" is ',' and "=3D" is '='; any other
 * '=' is an error. Returns NULL for that or a name of a bad length.
 */
static char *
scram_name_decode(const char *p, size_t n)
{
	if (n == 0 || n > 3 * SASL_MAX_FIELD)
		return NULL;
	char *out = xmalloc(n + 1), *o = out;
	for (size_t i = 0; i < n; i++) {
		if (p[i] != '=') {
			*o++ = p[i];
		} else if (n - i >= 3 && strncmp(p + i, "=2C", 3) == 0) {
			*o++ = ',';
			i += 2;
		} else if (n - i >= 3 && strncmp(p + i, "=3D", 3) == 0) {
			*o++ = '=';
			i += 2;
		} else {
			free(out);
			return NULL;
		}
	}
	*o = '\0';
	if (o - out > SASL_MAX_FIELD) {
		free(out);
		return NULL;
	}
	return out;
}

/* The length of the attribute value at p: up to the next ',' or the end. */
static size_t
scram_value_len(const char *p)
{
	return strcspn(p, ",");
}

/* RFC 5802 section 7: printable = %x21-2B / %x2D-7E (no ','). */
static bool
scram_nonce_valid(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
			return false;
	return n > 0;
}

/*
 * The GS2 header: "n," or "y," (we offer no channel binding, so "y" is
 * fine), then "a=authzid," or ",". "p=" asks for channel binding: BAD.
 * Sets *authzid_r (new string, maybe "") and returns the header length.
 */
static size_t
scram_gs2_parse(const char *msg, char **authzid_r)
{
	if ((msg[0] != 'n' && msg[0] != 'y') || msg[1] != ',')
		return 0;
	const char *p = msg + 2;
	if (*p == ',') {
		*authzid_r = xstrdup("");
		return 3;
	}
	if (strncmp(p, "a=", 2) != 0)
		return 0;
	size_t n = scram_value_len(p + 2);
	if (p[2 + n] != ',' || (*authzid_r = scram_name_decode(p + 2, n)) == NULL)
		return 0;
	return (size_t)(p + 2 + n + 1 - msg);
}

/*
 * A fake salt for an unknown user, the same for every attempt with that
 * name (HMAC of a per-process secret), so that the server-first message
 * looks alike for users who exist and users who do not.
 */
static void
scram_fake_secrets(const char *address, struct userdb_scram *out)
{
	static unsigned char secret[32];
	static bool have_secret;
	if (!have_secret) {
		RAND_bytes(secret, sizeof(secret));
		have_secret = true;
	}
	unsigned char mac[SCRAM_KEY_LEN];
	scram_hmac(secret, sizeof(secret), address, strlen(address), mac);
	memset(out, 0, sizeof(*out));
	out->iterations = USERDB_SCRAM_ITERATIONS;
	out->salt_len = USERDB_SCRAM_SALT_LEN;
	memcpy(out->salt, mac, out->salt_len);
	RAND_bytes(out->stored_key, sizeof(out->stored_key));
	RAND_bytes(out->server_key, sizeof(out->server_key));
}

/* Looks up the user's secrets; -1 when the users file cannot be read. */
static int
scram_lookup(struct sasl *s, const char *username)
{
	struct sasl_scram *sc = s->scram;
	sc->address = userdb_canonical(s->db, username);
	int r = userdb_scram_secrets(s->db, sc->address, &sc->secrets);
	if (r < 0)
		return -1;
	sc->known = r == 1;
	if (!sc->known) {
		if (userdb_exists(s->db, sc->address))
			log_warn("%s: no SCRAM-SHA-256 secrets in the users file; "
				 "`tern user passwd` adds them", sc->address);
		scram_fake_secrets(sc->address, &sc->secrets);
	}
	return 0;
}

/* server-first-message = "r=" nonce ",s=" salt ",i=" iteration-count */
static char *
scram_server_first(struct sasl_scram *sc, const char *cnonce, size_t cnonce_len)
{
	char *snonce;
	if (sasl_test_nonce[0] != '\0') {
		snonce = xstrdup(sasl_test_nonce);
	} else {
		unsigned char rnd[SCRAM_NONCE_BYTES];
		RAND_bytes(rnd, sizeof(rnd));
		snonce = base64_encode(rnd, sizeof(rnd)); /* base64 has no ',' */
	}
	sc->nonce = xasprintf("%.*s%s", (int)cnonce_len, cnonce, snonce);
	char *salt = base64_encode(sc->secrets.salt, sc->secrets.salt_len);
	sc->server_first = xasprintf("r=%s,s=%s,i=%u", sc->nonce, salt,
				     sc->secrets.iterations);
	free(salt);
	free(snonce);
	return base64_encode(sc->server_first, strlen(sc->server_first));
}

/*
 * client-first-message = gs2-header client-first-message-bare, where
 * bare = [reserved-mext ","] "n=" saslname ",r=" c-nonce ["," extensions].
 */
static enum sasl_result
scram_client_first(struct sasl *s, const char *msg, char **challenge_r)
{
	if (strncmp(msg, "p=", 2) == 0)
		return SASL_BAD; /* channel binding: we offer no -PLUS mechanism */
	char *authzid = NULL;
	size_t gs2_len = scram_gs2_parse(msg, &authzid);
	const char *bare = msg + gs2_len;
	/* "m=" is a mandatory extension we do not know: section 5.1 says fail. */
	if (gs2_len == 0 || strncmp(bare, "n=", 2) != 0) {
		free(authzid);
		return SASL_BAD;
	}
	size_t name_len = scram_value_len(bare + 2);
	const char *r = bare + 2 + name_len;
	char *username = scram_name_decode(bare + 2, name_len);
	size_t cnonce_len = strncmp(r, ",r=", 3) == 0 ? scram_value_len(r + 3) : 0;
	enum sasl_result result = SASL_CONTINUE;
	if (username == NULL || !scram_nonce_valid(r + 3, cnonce_len)) {
		result = SASL_BAD;
	} else {
		sasl_set_login(s, username);
		if (!sasl_authzid_ok(s, authzid, username))
			result = SASL_FAIL;
		else if (scram_lookup(s, username) < 0)
			result = SASL_TEMPFAIL;
	}
	if (result == SASL_CONTINUE) {
		s->scram->gs2_header = xstrndup(msg, gs2_len);
		s->scram->client_first_bare = xstrdup(bare);
		*challenge_r = scram_server_first(s->scram, r + 3, cnonce_len);
	}
	free(authzid);
	free(username);
	return result;
}

/*
 * Splits client-final-message = without-proof ",p=" proof. The proof is
 * the last attribute (RFC 5802 section 7). Returns the decoded proof
 * length, or -1.
 */
static int
scram_split_proof(const char *msg, size_t *without_len_r,
		  unsigned char proof[SCRAM_KEY_LEN])
{
	const char *last = NULL;
	for (const char *p = strstr(msg, ",p="); p != NULL; p = strstr(p + 1, ",p="))
		last = p;
	if (last == NULL)
		return -1;
	char *bin;
	size_t len;
	if (sasl_b64_decode(last + 3, &bin, &len) < 0)
		return -1;
	bool ok = len == SCRAM_KEY_LEN;
	if (ok)
		memcpy(proof, bin, len);
	free(bin);
	*without_len_r = (size_t)(last - msg);
	return ok ? 0 : -1;
}

/* "c=" base64(gs2-header) ",r=" nonce [...]: both must be what we know. */
static bool
scram_final_matches(const struct sasl_scram *sc, const char *msg, size_t len)
{
	char *cbind = base64_encode(sc->gs2_header, strlen(sc->gs2_header));
	char *expect = xasprintf("c=%s,r=%s", cbind, sc->nonce);
	size_t n = strlen(expect);
	bool ok = len >= n && memcmp(msg, expect, n) == 0 && (len == n || msg[n] == ',');
	free(cbind);
	free(expect);
	return ok;
}

/*
 * RFC 5802 section 3: ClientSignature := HMAC(StoredKey, AuthMessage),
 * ClientKey := ClientProof XOR ClientSignature, and the proof is good if
 * H(ClientKey) == StoredKey. Then ServerSignature := HMAC(ServerKey,
 * AuthMessage) goes back as "v=" so the client knows us too.
 */
static enum sasl_result
scram_client_final(struct sasl *s, const char *msg, char **challenge_r)
{
	struct sasl_scram *sc = s->scram;
	unsigned char proof[SCRAM_KEY_LEN], key[SCRAM_KEY_LEN], stored[SCRAM_KEY_LEN];
	size_t without_len;
	if (scram_split_proof(msg, &without_len, proof) < 0 ||
	    !scram_final_matches(sc, msg, without_len))
		return SASL_BAD;
	char *auth = xasprintf("%s,%s,%.*s", sc->client_first_bare, sc->server_first,
			       (int)without_len, msg);
	scram_hmac(sc->secrets.stored_key, SCRAM_KEY_LEN, auth, strlen(auth), key);
	for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
		key[i] ^= proof[i];
	unsigned int n;
	bool ok = EVP_Digest(key, sizeof(key), stored, &n, EVP_sha256(), NULL) == 1 &&
		  CRYPTO_memcmp(stored, sc->secrets.stored_key, SCRAM_KEY_LEN) == 0 &&
		  sc->known;
	if (ok) {
		unsigned char sig[SCRAM_KEY_LEN];
		scram_hmac(sc->secrets.server_key, SCRAM_KEY_LEN, auth, strlen(auth), sig);
		char *sig64 = base64_encode(sig, sizeof(sig));
		char *final = xasprintf("v=%s", sig64);
		*challenge_r = base64_encode(final, strlen(final));
		free(final);
		free(sig64);
	}
	explicit_bzero(key, sizeof(key));
	free(auth);
	return ok ? SASL_CONTINUE : SASL_FAIL;
}

static enum sasl_result
sasl_scram_step(struct sasl *s, const char *in, size_t len, char **challenge_r)
{
	if (in == NULL) {
		/* RFC 4422 section 5: no initial response, so an empty challenge. */
		*challenge_r = xstrdup("");
		return SASL_CONTINUE;
	}
	if (strlen(in) != len)
		return SASL_BAD;
	enum sasl_result r;
	switch (s->phase) {
	case 0:
		if (s->scram == NULL)
			s->scram = xcalloc(1, sizeof(*s->scram));
		r = scram_client_first(s, in, challenge_r);
		break;
	case 1:
		r = scram_client_final(s, in, challenge_r);
		break;
	default:
		/* After server-final the client has nothing more to say. */
		if (len != 0)
			return SASL_BAD;
		s->user = xstrdup(s->scram->address);
		return SASL_OK;
	}
	s->phase++;
	return r;
}

/* ---- the exchange ---- */

static const struct sasl_mech sasl_mechs[] = {
	{ "PLAIN", sasl_plain_step },
	{ "LOGIN", sasl_login_step },
	{ "SCRAM-SHA-256", sasl_scram_step },
};

const char *
sasl_mechanisms(void)
{
	return "PLAIN LOGIN SCRAM-SHA-256";
}

struct sasl *
sasl_begin(struct userdb *db, const char *mechanism)
{
	for (size_t i = 0; i < sizeof(sasl_mechs) / sizeof(sasl_mechs[0]); i++) {
		if (mechanism != NULL && strcasecmp(mechanism, sasl_mechs[i].name) == 0) {
			struct sasl *s = xcalloc(1, sizeof(*s));
			s->db = db;
			s->mech = &sasl_mechs[i];
			return s;
		}
	}
	return NULL;
}

const char *
sasl_mechanism(const struct sasl *s)
{
	return s->mech->name;
}

void
sasl_set_pool(struct sasl *s, struct workpool *pool, sasl_done_fn *done, void *ctx)
{
	s->pool = pool;
	s->done = done;
	s->done_ctx = ctx;
}

enum sasl_result
sasl_step(struct sasl *s, const char *response, char **challenge_r)
{
	*challenge_r = NULL;
	/*
	 * Only the first step may come without a response; none after the end
	 * (a pending check is the end: its result comes through done()).
	 */
	if (s->finished || (response == NULL && s->steps > 0)) {
		s->finished = true;
		return SASL_BAD;
	}
	s->steps++;
	char *in = NULL;
	size_t len = 0;
	enum sasl_result r = SASL_BAD;
	if (response == NULL || sasl_b64_decode(response, &in, &len) == 0)
		r = s->mech->step(s, in, len, challenge_r);
	if (in != NULL) {
		explicit_bzero(in, len); /* it may hold a password */
		free(in);
	}
	if (r != SASL_CONTINUE)
		s->finished = true;
	return r;
}

const char *
sasl_user(const struct sasl *s)
{
	return s->user;
}

const char *
sasl_login(const struct sasl *s)
{
	return s->login != NULL ? s->login : "";
}

void
sasl_free(struct sasl **sp)
{
	struct sasl *s = *sp;
	if (s == NULL)
		return;
	userdb_check_abandon(&s->check);
	if (s->scram != NULL) {
		free(s->scram->gs2_header);
		free(s->scram->client_first_bare);
		free(s->scram->server_first);
		free(s->scram->nonce);
		free(s->scram->address);
		explicit_bzero(&s->scram->secrets, sizeof(s->scram->secrets));
		free(s->scram);
	}
	free(s->login);
	free(s->user);
	free(s->username);
	free(s);
	*sp = NULL;
}
