#ifndef TERN_AUTH_USERDB_PRIVATE_H
#define TERN_AUTH_USERDB_PRIVATE_H

#include <stdbool.h>

/*
 * Shared by userdb.c and userdb_async.c: a password check in its two
 * halves, the lookup (on the loop: it may read the users file again) and
 * the crypt() comparison (anywhere, thread-safe).
 */
struct userdb;

/*
 * Sets *address_r (canonical) and *setting_r (the stored hash, or a dummy
 * one of the default method for an unknown user), both new strings.
 * Returns 1 for a known user, 0 for an unknown one, -1 if the users file
 * cannot be read (nothing set then).
 */
int userdb_hash_lookup(struct userdb *db, const char *login, char **address_r,
		       char **setting_r);
/* True if crypt(password, setting) is setting; constant-time compare. */
bool userdb_hash_matches(const char *password, const char *setting);

#endif
