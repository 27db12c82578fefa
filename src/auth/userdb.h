#ifndef TERN_AUTH_USERDB_H
#define TERN_AUTH_USERDB_H

#include <stdbool.h>

/*
 * The users file: one "user@domain:HASH" per line, HASH from crypt(3)
 * (yescrypt "$y$..." by default, SHA-512-crypt "$6$..." accepted). Blank
 * lines and lines starting with '#' are ignored. The file is read again
 * whenever it changes on disk, so a running ternd sees `tern user add`
 * without a restart.
 */
struct userdb;

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
