#ifndef TERN_CORE_UTIL_H
#define TERN_CORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Allocation that never returns NULL: out of memory ends the process. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Writes all n bytes, retrying on EINTR and short writes. */
int write_all(int fd, const void *p, size_t n);
/* fsync() of a directory, so that a rename or link inside it is durable. */
int fsync_dir(const char *dir);
/* mkdir -p with the given mode; 0 if it exists already. */
int mkdir_p(const char *path, mode_t mode);
/* Reads a whole file (at most max bytes) into a new NUL-terminated string. */
char *read_file(const char *path, size_t max, size_t *len_r);

/* A short unique ID for sessions and messages (12 base32 characters). */
void make_id(char out[13]);

bool str_case_prefix(const char *s, const char *prefix);
/* Lower-cases s in place (ASCII only); returns s. */
char *str_lower(char *s);
/* Strips leading and trailing blanks in place; returns the new start. */
char *str_trim(char *s);

/* Base64 (RFC 4648) through OpenSSL. decode returns -1 on bad input. */
char *base64_encode(const void *p, size_t n);
int base64_decode(const char *s, size_t n, unsigned char **out_r, size_t *len_r);

#endif
