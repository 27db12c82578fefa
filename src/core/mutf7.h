#ifndef TERN_CORE_MUTF7_H
#define TERN_CORE_MUTF7_H

#include <stddef.h>

#include "core/buf.h"

/*
 * IMAP's modified UTF-7 (RFC 3501 §5.1.3), the encoding of mailbox names
 * on the wire: printable US-ASCII stands for itself except '&', which is
 * written "&-"; everything else is UTF-16BE in base64 (',' instead of '/',
 * no padding) between '&' and '-'.
 *
 * Both functions append to out and return 0, or -1 with *error_r set
 * (out then holds a partial result the caller should discard).
 *
 * mutf7_encode takes UTF-8 and refuses invalid UTF-8: overlong forms,
 * surrogate code points, values above U+10FFFF, truncated sequences, NUL.
 *
 * mutf7_decode gives UTF-8 and accepts only the one canonical encoding of
 * a string, so that a name has exactly one spelling: it refuses bytes
 * outside printable ASCII, '&' not closed by '-', bad base64 (wrong
 * alphabet, impossible length, non-zero pad bits, an odd byte count),
 * unpaired surrogates, printable ASCII and NUL encoded in base64, and two
 * base64 runs written back to back ("&AMk-&AMk-" must be "&AMkAyQ-").
 */
int mutf7_encode(const char *utf8, size_t len, struct buf *out, char **error_r);
int mutf7_decode(const char *mutf7, size_t len, struct buf *out, char **error_r);

#endif
