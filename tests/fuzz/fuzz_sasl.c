/*
 * Fuzz target: a client's side of an AUTH / AUTHENTICATE exchange, before
 * any login: PLAIN, LOGIN or SCRAM-SHA-256 (the first byte picks one, and
 * whether the responses are sent as given or base64-encoded first), then
 * one response per line, stepped until the exchange ends. The users file
 * has a user of each kind; SCRAM's server nonce is fixed so that what the
 * fuzzer learns about it holds from one run to the next.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/sasl.h"
#include "auth/sasl_test.h"
#include "auth/userdb.h"
#include "core/util.h"

static char users_dir[64];
static char users_path[96];

static void
users_remove(void)
{
	unlink(users_path);
	rmdir(users_dir);
}

static struct userdb *
users_open(void)
{
	static struct userdb *db;
	if (db != NULL)
		return db;
	snprintf(users_dir, sizeof(users_dir), "/tmp/tern-fuzz-sasl.XXXXXX");
	if (mkdtemp(users_dir) == NULL)
		abort();
	snprintf(users_path, sizeof(users_path), "%s/users", users_dir);
	atexit(users_remove);
	FILE *f = fopen(users_path, "w");
	if (f == NULL)
		abort();
	/* Cheap hashes: the fuzzer is after the parsing, not crypt(3). */
	static const char hash[] = "$6$rounds=1000$saltsalt$zcCvYcDM8j0aB28drG.Vwe4L4mnOkoRyg3Q."
				   "Bu7J9v6yK9aKDDPiDDlrOhF03cpnd3KFfSzTDNEBa0iVYm2H90";
	fprintf(f, "alice@example.org:%s\n", hash);
	struct userdb_scram sc;
	static const unsigned char salt[] = "0123456789abcdef";
	userdb_scram_derive("pencil", salt, 16, 4096, &sc);
	char *s = base64_encode(salt, 16), *k = base64_encode(sc.stored_key, 32),
	     *v = base64_encode(sc.server_key, 32);
	fprintf(f, "user@example.org:%s:scram-sha-256=4096,%s,%s,%s\n", hash, s, k, v);
	free(s);
	free(k);
	free(v);
	fclose(f);
	sasl_scram_test_set_nonce("fuzznonce");
	db = userdb_open(users_path, "example.org");
	return db;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const mechs[] = { "PLAIN", "LOGIN", "SCRAM-SHA-256", "plain" };
	if (size == 0)
		return 0;
	struct sasl *s = sasl_begin(users_open(), mechs[data[0] & 3]);
	bool raw = data[0] & 4;       /* the lines are the base64 text itself */
	bool initial = data[0] & 8;   /* the first line is an initial response */
	char *copy = malloc(size);
	memcpy(copy, data + 1, size - 1);
	copy[size - 1] = '\0';
	char *line = copy, *end = copy + size - 1;
	char *challenge = NULL;
	enum sasl_result r = initial ? SASL_CONTINUE : sasl_step(s, NULL, &challenge);
	while (r == SASL_CONTINUE && line <= end) {
		free(challenge);
		challenge = NULL;
		char *lf = memchr(line, '\n', (size_t)(end - line));
		size_t len = (size_t)((lf != NULL ? lf : end) - line);
		line[len] = '\0';
		char *b64 = raw ? xstrdup(line) : base64_encode(line, len);
		r = sasl_step(s, b64, &challenge);
		free(b64);
		if (lf == NULL)
			break;
		line = lf + 1;
	}
	if (r == SASL_OK && sasl_user(s) == NULL)
		abort();
	free(challenge);
	free(copy);
	sasl_free(&s);
	return 0;
}
