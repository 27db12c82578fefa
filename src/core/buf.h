#ifndef TERN_CORE_BUF_H
#define TERN_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

/*
 * The one growable string type for untrusted data: binary-safe, always
 * NUL-terminated (data[len] == 0), never larger than its limit.
 */
struct buf {
	char *data;
	size_t len;
	size_t cap;
};

#define BUF_INIT { NULL, 0, 0 }

void buf_append(struct buf *b, const void *p, size_t n);
void buf_appends(struct buf *b, const char *s);
void buf_appendc(struct buf *b, char c);
void buf_appendf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void buf_vappendf(struct buf *b, const char *fmt, va_list ap);
/* Appends a message with every bare LF made CRLF (a Maildir file keeps
   LF line ends; IMAP counts and sends the CRLF form). */
void buf_append_crlf(struct buf *b, const char *data, size_t len);
/* Removes the first n bytes. */
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);
/* Frees the storage; the buf may be used again afterwards. */
void buf_free(struct buf *b);
/* Returns a NUL-terminated string the caller owns; the buf is left empty. */
char *buf_steal(struct buf *b);

#endif
