#ifndef TERN_AUTH_USERDB_H
#define TERN_AUTH_USERDB_H

#include <stdbool.h>

#include <stddef.h>

/*
 * The users file: one "user@domain:HASH[:scram-sha-256=ITER,SALT,STOREDKEY,
 * SERVERKEY]" per line, HASH from crypt(3) (yescrypt "$y$..." by default,
 * SHA-512-crypt "$6$..." accepted), the optional field the SCRAM-SHA-256
 * secrets of RFC 5802 section 3 (base64; written by userdb_add and
 * userdb_set_password). Blank lines and lines starting with '#' are
 * ignored. The file is read again whenever it changes on disk, so a
 * running ternd sees `tern user add` without a restart.
 */
struct userdb;

#define USERDB_SCRAM_ITERATIONS 4096 /* RFC 7677 section 3: at least 4096 */
#define USERDB_SCRAM_SALT_LEN 16     /* what userdb_add writes */
#define USERDB_SCRAM_SALT_MAX 64     /* the longest salt read from the file */
#define USERDB_SCRAM_KEY_LEN 32      /* SHA-256 */

/* SCRAM-SHA-256 secrets: the server never needs the password itself. */
struct userdb_scram {
	unsigned int iterations;
	unsigned char salt[USERDB_SCRAM_SALT_MAX];
	size_t salt_len;
	unsigned char stored_key[USERDB_SCRAM_KEY_LEN]; /* H(ClientKey) */
	unsigned char server_key[USERDB_SCRAM_KEY_LEN];
};

struct userdb *userdb_open(const char *path, const char *default_domain);
void userdb_free(struct userdb **db);

/*
 * Makes a login name canonical: lower-cased, and a bare local part gets
 * the default domain. Returns a new string.
 */
char *userdb_canonical(const struct userdb *db, const char *login);
/* True if the canonical address is a user. */
bool userdb_exists(struct userdb *db, const char *address);
/*
 * Checks a password. Returns 1 and sets *address_r (new string, canonical)
 * on success, 0 on a wrong password or unknown user, -1 if the users file
 * cannot be read (a temporary failure).
 */
int userdb_verify(struct userdb *db, const char *login, const char *password,
		  char **address_r);

/*
 * userdb_verify with the crypt() on a worker thread (core/workpool.h), so
 * that the loop serves other sessions meanwhile (yescrypt takes ~100 ms).
 * The users file is read and the hash looked up here, on the calling
 * (loop) thread; the thread gets copies. Returns -1 if the users file
 * cannot be read (no callback then). Else 0 and *check_r: later, from the
 * loop, done(ok, address, ctx) is called once (address: canonical, a new
 * string the callee owns, NULL unless ok) and the check is freed when it
 * returns, so done must forget *check_r. userdb_check_abandon instead
 * (the session is gone): done is never called, the check frees itself.
 */
struct workpool;
struct userdb_check;
typedef void userdb_check_fn(bool ok, char *address, void *ctx);
int userdb_verify_async(struct userdb *db, struct workpool *pool, const char *login,
			const char *password, userdb_check_fn *done, void *ctx,
			struct userdb_check **check_r);
/* Sets *check to NULL; nothing if it is NULL already. */
void userdb_check_abandon(struct userdb_check **check);
/*
 * The SCRAM-SHA-256 secrets of a canonical address: 1 found, 0 unknown
 * user or no secrets stored for it, -1 if the users file cannot be read.
 */
int userdb_scram_secrets(struct userdb *db, const char *address,
			 struct userdb_scram *out);
/* Derives the secrets from a password (RFC 5802 section 3). */
void userdb_scram_derive(const char *password, const unsigned char *salt,
			 size_t salt_len, unsigned int iterations,
			 struct userdb_scram *out);

/* Editing, for `tern user`: each rewrites the file atomically. */
int userdb_add(const char *path, const char *address, const char *password,
	       char **error_r);
int userdb_set_password(const char *path, const char *address, const char *password,
			char **error_r);
int userdb_delete(const char *path, const char *address, char **error_r);
/* Calls fn for every address in file order. */
int userdb_list(const char *path, void (*fn)(const char *address, void *ctx),
		void *ctx, char **error_r);

#endif
