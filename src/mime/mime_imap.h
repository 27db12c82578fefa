#ifndef TERN_MIME_MIME_IMAP_H
#define TERN_MIME_MIME_IMAP_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

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

/*
 * Appends BODY, the BODYSTRUCTURE text of mime_imap_describe without its
 * extension data (RFC 3501 7.4.2). -1, and nothing appended, if the text
 * is not such a BODYSTRUCTURE.
 */
int
mime_imap_body_strip(const char *bodystructure, struct buf *out);

/*
 * Where a part named by section part numbers is (RFC 3501 6.4.5), as
 * offsets into msg, which must be in CRLF form (as FETCH sends it).
 * count 0 names the whole message. Offsets: start is the part's MIME
 * header (the message header for the whole message or a non-multipart
 * message's part 1), body its body, end its end; when message is true the
 * part is a message/rfc822 whose body is walked as a message, and that
 * message's own body starts at msg_body. The part tree is the one
 * mime_imap_describe reports. Returns 0, or -1 if there is no such part.
 */
struct mime_imap_part {
	size_t start, body, end;
	bool message;
	size_t msg_body;
};

int
mime_imap_part_find(const char *msg, size_t len, const unsigned *nums,
		    size_t count, struct mime_imap_part *part_r);

/*
 * Appends the fields of the header [hdr, hdr + len) whose names are (or,
 * with exclude, are not) among names, compared without regard to case:
 * each field byte-exact with its folded lines, in message order, then the
 * empty line if the header ends with one (HEADER.FIELDS[.NOT], RFC 3501
 * 6.4.5). Lines without a colon are not fields and are left out, and so
 * are fields past the 2000th (the bound every header walk here has).
 */
void
mime_imap_header_fields(const char *hdr, size_t len, const char *const *names,
			size_t count, bool exclude, struct buf *out);

#endif
