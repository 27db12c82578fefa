/* Unit tests of server-side SASL (auth/sasl.c). */
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/sasl.h"
#include "auth/sasl_test.h"
#include "auth/userdb.h"
#include "core/util.h"
#include "test.h"

static char tmpdir[64];
static char path[128];

/* RFC 7677 section 3. */
#define RFC_CNONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SALT "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_SERVER_FIRST "r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT ",i=4096"
#define RFC_FINAL_NO_PROOF "c=biws,r=" RFC_CNONCE RFC_SNONCE
#define RFC_PROOF "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

/* One step with a response given as raw bytes; the challenge decoded. */
static enum sasl_result
step_raw(struct sasl *s, const void *p, size_t n, char **challenge_r)
{
	char *b64 = base64_encode(p, n);
	char *challenge = NULL;
	enum sasl_result r = sasl_step(s, b64, &challenge);
	free(b64);
	*challenge_r = NULL;
	if (challenge != NULL) {
		unsigned char *text;
		size_t len;
		if (base64_decode(challenge, strlen(challenge), &text, &len) == 0)
			*challenge_r = (char *)text;
		free(challenge);
	}
	return r;
}

static enum sasl_result
step(struct sasl *s, const char *text, char **challenge_r)
{
	return step_raw(s, text, strlen(text), challenge_r);
}

/* A whole PLAIN exchange with an initial response. */
static enum sasl_result
plain_once(const void *msg, size_t n, char **user_r)
{
	struct userdb *db = userdb_open(path, "example.org");
	struct sasl *s = sasl_begin(db, "PLAIN");
	char *ch = NULL;
	enum sasl_result r = step_raw(s, msg, n, &ch);
	free(ch);
	if (user_r != NULL)
		*user_r = sasl_user(s) ? xstrdup(sasl_user(s)) : NULL;
	sasl_free(&s);
	userdb_free(&db);
	return r;
}

#define PLAIN(lit) plain_once(lit, sizeof(lit) - 1, NULL)

static void
test_plain(void)
{
	char *user = NULL;
	TEST_ASSERT(plain_once("\0alice\0s3cret", 13, &user) == SASL_OK);
	TEST_ASSERT_STREQ(user, "alice@example.org");
	free(user);
	TEST_ASSERT(PLAIN("alice\0Alice@Example.org\0s3cret") == SASL_OK);
	TEST_ASSERT(PLAIN("alice@example.org\0alice\0s3cret") == SASL_OK);
	TEST_ASSERT(PLAIN("bob\0alice\0s3cret") == SASL_FAIL);
	TEST_ASSERT(PLAIN("\0alice\0wrong") == SASL_FAIL);
	TEST_ASSERT(PLAIN("\0nobody\0s3cret") == SASL_FAIL);

	/* No initial response: an empty challenge first. */
	struct userdb *db = userdb_open(path, "example.org");
	struct sasl *s = sasl_begin(db, "plain");
	char *ch = NULL;
	TEST_ASSERT(s != NULL && sasl_step(s, NULL, &ch) == SASL_CONTINUE);
	TEST_ASSERT_STREQ(ch, "");
	free(ch);
	TEST_ASSERT(step_raw(s, "\0alice\0s3cret", 13, &ch) == SASL_OK);
	TEST_ASSERT_STREQ(sasl_user(s), "alice@example.org");
	TEST_ASSERT_STREQ(sasl_login(s), "alice");
	/* Nothing after the end. */
	TEST_ASSERT(step(s, "x", &ch) == SASL_BAD);
	sasl_free(&s);
	TEST_ASSERT(s == NULL);
	userdb_free(&db);
}

static void
test_plain_malformed(void)
{
	TEST_ASSERT(PLAIN("alice\0s3cret") == SASL_BAD);          /* one NUL */
	TEST_ASSERT(PLAIN("\0alice\0s3cret\0") == SASL_BAD);      /* three */
	TEST_ASSERT(PLAIN("\0alice\0s3\0cret") == SASL_BAD);
	TEST_ASSERT(PLAIN("\0\0s3cret") == SASL_BAD);             /* no authcid */
	TEST_ASSERT(PLAIN("\0alice\0") == SASL_BAD);              /* no password */
	TEST_ASSERT(PLAIN("") == SASL_BAD);

	struct userdb *db = userdb_open(path, "example.org");
	const char *bad[] = { "!!!!", "QQ=A", "Q===", "====", "QUJ", " QUJD", "QU\nJD" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sasl *s = sasl_begin(db, "PLAIN");
		char *ch = NULL;
		TEST_ASSERT(sasl_step(s, bad[i], &ch) == SASL_BAD);
		TEST_ASSERT(ch == NULL);
		sasl_free(&s);
	}
	/* "=" is an empty response, which PLAIN cannot use. */
	struct sasl *s = sasl_begin(db, "PLAIN");
	char *ch = NULL;
	TEST_ASSERT(sasl_step(s, "=", &ch) == SASL_BAD);
	sasl_free(&s);
	/* A NULL response after the first step is a protocol error. */
	s = sasl_begin(db, "PLAIN");
	TEST_ASSERT(sasl_step(s, NULL, &ch) == SASL_CONTINUE);
	free(ch);
	TEST_ASSERT(sasl_step(s, NULL, &ch) == SASL_BAD);
	sasl_free(&s);
	userdb_free(&db);
}

static void
test_plain_lengths(void)
{
	/* 255 bytes each are fine (and fail only on the password). */
	char msg[1 + 255 + 1 + 255];
	memset(msg, 'a', sizeof(msg));
	msg[0] = '\0';
	msg[256] = '\0';
	TEST_ASSERT(plain_once(msg, sizeof(msg), NULL) == SASL_FAIL);
	char longer[sizeof(msg) + 1];
	memset(longer, 'a', sizeof(longer));
	longer[0] = '\0';
	longer[256] = '\0';
	TEST_ASSERT(plain_once(longer, sizeof(longer), NULL) == SASL_BAD);
	TEST_ASSERT(sasl_begin(NULL, "CRAM-MD5") == NULL);
	TEST_ASSERT_STREQ(sasl_mechanisms(), "PLAIN LOGIN SCRAM-SHA-256");
}

static void
test_login(void)
{
	struct userdb *db = userdb_open(path, "example.org");
	struct sasl *s = sasl_begin(db, "LOGIN");
	char *raw = NULL;
	TEST_ASSERT(sasl_step(s, NULL, &raw) == SASL_CONTINUE);
	TEST_ASSERT_STREQ(raw, "VXNlcm5hbWU6");
	free(raw);
	char *ch = NULL;
	TEST_ASSERT(step(s, "Alice", &ch) == SASL_CONTINUE);
	TEST_ASSERT_STREQ(ch, "Password:");
	free(ch);
	TEST_ASSERT(step(s, "s3cret", &ch) == SASL_OK);
	TEST_ASSERT_STREQ(sasl_user(s), "alice@example.org");
	TEST_ASSERT_STREQ(sasl_login(s), "Alice");
	sasl_free(&s);

	/* The name as an initial response; a wrong password. */
	s = sasl_begin(db, "LOGIN");
	TEST_ASSERT(step(s, "alice", &ch) == SASL_CONTINUE);
	TEST_ASSERT_STREQ(ch, "Password:");
	free(ch);
	TEST_ASSERT(step(s, "nope", &ch) == SASL_FAIL);
	TEST_ASSERT(sasl_user(s) == NULL);
	sasl_free(&s);

	/* A NUL in the name; a control character is logged as '?'. */
	s = sasl_begin(db, "LOGIN");
	TEST_ASSERT(step_raw(s, "al\0ice", 6, &ch) == SASL_BAD);
	sasl_free(&s);
	s = sasl_begin(db, "LOGIN");
	TEST_ASSERT(step(s, "al\r\nice", &ch) == SASL_CONTINUE);
	free(ch);
	TEST_ASSERT_STREQ(sasl_login(s), "al??ice");
	TEST_ASSERT(step(s, "s3cret", &ch) == SASL_FAIL);
	sasl_free(&s);
	userdb_free(&db);
}

/* ---- SCRAM ---- */

/* The client side of RFC 5802 section 3: the proof for an AuthMessage. */
static char *
client_proof(const char *password, const char *salt64, unsigned iter, const char *auth)
{
	unsigned char *salt;
	size_t salt_len;
	if (base64_decode(salt64, strlen(salt64), &salt, &salt_len) < 0)
		return NULL;
	unsigned char salted[32], ckey[32], stored[32], sig[32];
	unsigned int n;
	PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len, (int)iter,
			  EVP_sha256(), 32, salted);
	HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Client Key", 10, ckey, &n);
	EVP_Digest(ckey, 32, stored, &n, EVP_sha256(), NULL);
	HMAC(EVP_sha256(), stored, 32, (const unsigned char *)auth, strlen(auth), sig, &n);
	for (int i = 0; i < 32; i++)
		ckey[i] ^= sig[i];
	free(salt);
	return base64_encode(ckey, 32);
}

/* Runs a SCRAM exchange as a client would; returns the last result. */
static enum sasl_result
scram_login(const char *gs2, const char *name, const char *password, const char *cbind,
	    char **user_r)
{
	struct userdb *db = userdb_open(path, "example.org");
	struct sasl *s = sasl_begin(db, "SCRAM-SHA-256");
	char *bare = xasprintf("n=%s,r=clientnonce123", name);
	char *first = xasprintf("%s%s", gs2, bare);
	char *sf = NULL, *ch = NULL;
	enum sasl_result r = step(s, first, &sf);
	if (r == SASL_CONTINUE) {
		char *salt = xstrndup(strstr(sf, ",s=") + 3, strcspn(strstr(sf, ",s=") + 3, ","));
		unsigned iter = (unsigned)atoi(strstr(sf, ",i=") + 3);
		char *nonce = xstrndup(sf, strcspn(sf, ","));
		char *without = xasprintf("c=%s,%s", cbind, nonce);
		char *auth = xasprintf("%s,%s,%s", bare, sf, without);
		char *proof = client_proof(password, salt, iter, auth);
		char *final = xasprintf("%s,p=%s", without, proof);
		r = step(s, final, &ch);
		if (r == SASL_CONTINUE) {
			TEST_ASSERT(strncmp(ch, "v=", 2) == 0);
			free(ch);
			r = step(s, "", &ch);
		}
		free(salt), free(nonce), free(without), free(auth), free(proof), free(final);
	}
	if (user_r != NULL)
		*user_r = sasl_user(s) ? xstrdup(sasl_user(s)) : NULL;
	free(ch), free(sf), free(bare), free(first);
	sasl_free(&s);
	userdb_free(&db);
	return r;
}

static void
test_scram_rfc7677(void)
{
	sasl_scram_test_set_nonce(RFC_SNONCE);
	struct userdb *db = userdb_open(path, "example.org");
	for (int initial = 0; initial < 2; initial++) {
		struct sasl *s = sasl_begin(db, "scram-sha-256");
		char *ch = NULL;
		if (!initial) {
			TEST_ASSERT(sasl_step(s, NULL, &ch) == SASL_CONTINUE);
			TEST_ASSERT_STREQ(ch, "");
			free(ch);
		}
		TEST_ASSERT(step(s, "n,,n=user,r=" RFC_CNONCE, &ch) == SASL_CONTINUE);
		TEST_ASSERT_STREQ(ch, RFC_SERVER_FIRST);
		free(ch);
		TEST_ASSERT(step(s, RFC_FINAL_NO_PROOF ",p=" RFC_PROOF, &ch) == SASL_CONTINUE);
		TEST_ASSERT_STREQ(ch, RFC_SERVER_FINAL);
		free(ch);
		TEST_ASSERT(sasl_user(s) == NULL);
		TEST_ASSERT(sasl_step(s, "", &ch) == SASL_OK);
		TEST_ASSERT(ch == NULL);
		TEST_ASSERT_STREQ(sasl_user(s), "user@example.org");
		TEST_ASSERT_STREQ(sasl_login(s), "user");
		sasl_free(&s);
	}
	/* A tampered proof, a tampered nonce. */
	struct sasl *s = sasl_begin(db, "SCRAM-SHA-256");
	char *ch = NULL;
	TEST_ASSERT(step(s, "n,,n=user,r=" RFC_CNONCE, &ch) == SASL_CONTINUE);
	free(ch);
	TEST_ASSERT(step(s, RFC_FINAL_NO_PROOF ",p=eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
			 &ch) == SASL_FAIL);
	TEST_ASSERT(ch == NULL && sasl_user(s) == NULL);
	sasl_free(&s);
	s = sasl_begin(db, "SCRAM-SHA-256");
	TEST_ASSERT(step(s, "n,,n=user,r=" RFC_CNONCE, &ch) == SASL_CONTINUE);
	free(ch);
	TEST_ASSERT(step(s, "c=biws,r=" RFC_CNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k1,p=" RFC_PROOF,
			 &ch) == SASL_BAD);
	sasl_free(&s);
	/* The right proof, but the final empty response is missing. */
	s = sasl_begin(db, "SCRAM-SHA-256");
	TEST_ASSERT(step(s, "n,,n=user,r=" RFC_CNONCE, &ch) == SASL_CONTINUE);
	free(ch);
	TEST_ASSERT(step(s, RFC_FINAL_NO_PROOF ",p=" RFC_PROOF, &ch) == SASL_CONTINUE);
	free(ch);
	TEST_ASSERT(step(s, "x", &ch) == SASL_BAD);
	TEST_ASSERT(sasl_user(s) == NULL);
	sasl_free(&s);
	userdb_free(&db);
	sasl_scram_test_set_nonce(NULL);
}

static void
test_scram_client(void)
{
	char *user = NULL;
	TEST_ASSERT(scram_login("n,,", "alice", "s3cret", "biws", &user) == SASL_OK);
	TEST_ASSERT_STREQ(user, "alice@example.org");
	free(user);
	TEST_ASSERT(scram_login("y,,", "Alice@Example.org", "s3cret", "eSws", NULL) == SASL_OK);
	TEST_ASSERT(scram_login("n,a=alice,", "alice", "s3cret", "bixhPWFsaWNlLA==", NULL) ==
		    SASL_OK);
	TEST_ASSERT(scram_login("n,,", "alice", "wrong", "biws", &user) == SASL_FAIL);
	TEST_ASSERT(user == NULL);
	/* The channel-binding text must match the GS2 header. */
	TEST_ASSERT(scram_login("y,,", "alice", "s3cret", "biws", NULL) == SASL_BAD);
	TEST_ASSERT(scram_login("n,a=bob,", "alice", "s3cret", "biws", NULL) == SASL_FAIL);
	/* An old line without SCRAM secrets: fails at the end, PLAIN still works. */
	TEST_ASSERT(scram_login("n,,", "carol", "pw", "biws", NULL) == SASL_FAIL);
	TEST_ASSERT(PLAIN("\0carol\0pw") == SASL_OK);
}

/* An unknown user gets a stable fake salt and fails only at the end. */
static void
test_scram_unknown(void)
{
	struct userdb *db = userdb_open(path, "example.org");
	char *first[2] = { NULL, NULL };
	for (int i = 0; i < 2; i++) {
		struct sasl *s = sasl_begin(db, "SCRAM-SHA-256");
		TEST_ASSERT(step(s, "n,,n=nobody,r=abc", &first[i]) == SASL_CONTINUE);
		TEST_ASSERT(first[i] != NULL && strncmp(first[i], "r=abc", 5) == 0);
		TEST_ASSERT(first[i] != NULL && strstr(first[i], ",i=4096") != NULL);
		char *nonce = xstrndup(first[i], strcspn(first[i], ","));
		char *final = xasprintf("c=biws,%s,p=" RFC_PROOF, nonce);
		char *ch = NULL;
		TEST_ASSERT(step(s, final, &ch) == SASL_FAIL);
		TEST_ASSERT_STREQ(sasl_login(s), "nobody");
		free(nonce);
		free(final);
		sasl_free(&s);
	}
	/* Same salt both times (a real user's salt does not change either). */
	TEST_ASSERT(first[0] && first[1] &&
		    strcmp(strstr(first[0], ",s="), strstr(first[1], ",s=")) == 0);
	/* ... and a fresh server nonce each time. */
	TEST_ASSERT(first[0] && first[1] && strcmp(first[0], first[1]) != 0);
	free(first[0]);
	free(first[1]);
	userdb_free(&db);
}

static enum sasl_result
scram_first_only(const char *msg)
{
	struct userdb *db = userdb_open(path, "example.org");
	struct sasl *s = sasl_begin(db, "SCRAM-SHA-256");
	char *ch = NULL;
	enum sasl_result r = step(s, msg, &ch);
	free(ch);
	sasl_free(&s);
	userdb_free(&db);
	return r;
}

static void
test_scram_malformed(void)
{
	TEST_ASSERT(scram_first_only("p=tls-unique,,n=user,r=abc") == SASL_BAD);
	TEST_ASSERT(scram_first_only("x,,n=user,r=abc") == SASL_BAD);
	TEST_ASSERT(scram_first_only("n,n=user,r=abc") == SASL_BAD);
	TEST_ASSERT(scram_first_only("n,,m=ext,n=user,r=abc") == SASL_BAD);
	TEST_ASSERT(scram_first_only("n,,n=user") == SASL_BAD);
	TEST_ASSERT(scram_first_only("n,,n=user,r=") == SASL_BAD);
	TEST_ASSERT(scram_first_only("n,,n=,r=abc") == SASL_BAD);
	TEST_ASSERT(scram_first_only("n,,n=us=41er,r=abc") == SASL_BAD);
	TEST_ASSERT(scram_first_only("n,,n=user,r=a\x01" "bc") == SASL_BAD);
	TEST_ASSERT(scram_first_only("n,a=us=2,,n=user,r=abc") == SASL_BAD);
	TEST_ASSERT(scram_first_only("n,,n=user,r=abc,x=ext") == SASL_CONTINUE);
	TEST_ASSERT(scram_first_only("n,a=user@example.org,n=user,r=abc") == SASL_CONTINUE);
	TEST_ASSERT(scram_first_only("n,a=other,n=user,r=abc") == SASL_FAIL);

	/* "=2C" and "=3D" decode to ',' and '='. */
	struct userdb *db = userdb_open(path, "example.org");
	struct sasl *s = sasl_begin(db, "SCRAM-SHA-256");
	char *ch = NULL;
	TEST_ASSERT(step(s, "n,,n=a=2Cb=3Dc,r=abc", &ch) == SASL_CONTINUE);
	TEST_ASSERT_STREQ(sasl_login(s), "a,b=c");
	free(ch);
	/* A proof of the wrong length or bad base64. */
	TEST_ASSERT(step(s, "c=biws,r=abc,p=AAAA", &ch) == SASL_BAD);
	sasl_free(&s);
	s = sasl_begin(db, "SCRAM-SHA-256");
	TEST_ASSERT(step_raw(s, "n,,n=us\0er,r=abc", 16, &ch) == SASL_BAD);
	sasl_free(&s);
	userdb_free(&db);
}

static void
test_tempfail(void)
{
	char missing[160];
	snprintf(missing, sizeof(missing), "%s/missing", tmpdir);
	struct userdb *db = userdb_open(missing, "example.org");
	struct sasl *s = sasl_begin(db, "PLAIN");
	char *ch = NULL;
	TEST_ASSERT(step_raw(s, "\0alice\0s3cret", 13, &ch) == SASL_TEMPFAIL);
	sasl_free(&s);
	s = sasl_begin(db, "SCRAM-SHA-256");
	TEST_ASSERT(step(s, "n,,n=alice,r=abc", &ch) == SASL_TEMPFAIL);
	TEST_ASSERT(ch == NULL);
	sasl_free(&s);
	userdb_free(&db);
}

/* alice (added by userdb_add), user (RFC 7677's secrets), carol (no SCRAM). */
static void
write_users(void)
{
	unlink(path);
	char *error = NULL;
	if (userdb_add(path, "alice@example.org", "s3cret", &error) < 0) {
		fprintf(stderr, "%s\n", error);
		exit(1);
	}
	unsigned char *salt;
	size_t salt_len;
	base64_decode(RFC_SALT, strlen(RFC_SALT), &salt, &salt_len);
	struct userdb_scram sc;
	userdb_scram_derive("pencil", salt, salt_len, 4096, &sc);
	free(salt);
	char *k = base64_encode(sc.stored_key, 32), *v = base64_encode(sc.server_key, 32);
	void *data = NULL;
	int size = 0;
	const char *pencil = crypt_ra("pencil", "$6$saltsalt$", &data, &size);
	char *pw = xstrdup(crypt_ra("pw", "$6$saltsalt$", &data, &size));
	FILE *f = fopen(path, "a");
	fprintf(f, "user@example.org:%s:scram-sha-256=4096,%s,%s,%s\n", pencil, RFC_SALT, k, v);
	fprintf(f, "carol@example.org:%s\n", pw);
	fclose(f);
	free(data);
	free(pw);
	free(k);
	free(v);
}

int
main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_sasl.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/users", tmpdir);
	write_users();
	test_run("PLAIN", test_plain);
	test_run("PLAIN malformed", test_plain_malformed);
	test_run("PLAIN field lengths", test_plain_lengths);
	test_run("LOGIN", test_login);
	test_run("SCRAM-SHA-256 RFC 7677 example", test_scram_rfc7677);
	test_run("SCRAM-SHA-256 client exchanges", test_scram_client);
	test_run("SCRAM-SHA-256 unknown user", test_scram_unknown);
	test_run("SCRAM-SHA-256 malformed", test_scram_malformed);
	test_run("users file unreadable", test_tempfail);
	unlink(path);
	rmdir(tmpdir);
	return test_done();
}
