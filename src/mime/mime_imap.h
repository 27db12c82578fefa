#ifndef TERN_MIME_MIME_IMAP_H
#define TERN_MIME_MIME_IMAP_H

#include <stddef.h>

/*
 * IMAP ENVELOPE and BODYSTRUCTURE of one message (RFC 3501 7.4.2, 9).
 *
 * data may use CRLF or bare LF line ends; sizes and line counts are always
 * those of the CRLF form, because that is what FETCH BODY[n] returns.
 * The outputs are the exact parenthesised IMAP texts (quoted strings or
 * literals), BODYSTRUCTURE with extension data, ready to be cached and
 * sent verbatim. The caller frees them with free().
 *
 * Choices: type, subtype, encoding, disposition and parameter names are
 * upper-cased; parameter values and header values are sent raw (encoded
 * words are not decoded, RFC 3501 7.4.2); body-fld-lines counts lines,
 * a last line without CRLF included; a mailbox without a domain gets the
 * host ".MISSING-HOST-NAME." so that it is not mistaken for group syntax.
 */
int
mime_imap_describe(const char *data, size_t len, char **envelope_r,
		   char **bodystructure_r, char **error_r);

#endif
