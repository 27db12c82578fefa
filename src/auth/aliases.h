#ifndef TERN_AUTH_ALIASES_H
#define TERN_AUTH_ALIASES_H

#include <stddef.h>

/*
 * The aliases file, in the style of /etc/aliases:
 *   postmaster: admin@example.org
 *   team@example.org: alice, bob@example.org, someone@elsewhere.net
 * A left side without '@' is that local part in every served domain; a bare
 * local part on the right means the default domain. Re-read when it changes.
 */
struct aliases;
struct userdb;

struct aliases *aliases_open(const char *path, const char *default_domain);
void aliases_free(struct aliases **al);
/* Loads (or re-loads if changed); -1 with *error_r "FILE:LINE: why". */
int aliases_reload(struct aliases *al, char **error_r);

/*
 * Expands an address (canonical: lower-case user@domain) through aliases,
 * recursively (at most 8 levels, loops cut). Returns the number of final
 * addresses put in *out_r (a new array of new strings; free with
 * aliases_free_list), 0 if the address is no alias.
 */
size_t aliases_expand(struct aliases *al, const char *address, char ***out_r);
void aliases_free_list(char **list, size_t n);

#endif
