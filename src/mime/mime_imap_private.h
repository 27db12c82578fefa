#ifndef TERN_MIME_MIME_IMAP_PRIVATE_H
#define TERN_MIME_MIME_IMAP_PRIVATE_H

#include <stddef.h>

#include "core/buf.h"

/* One header field; name and value point into the message (CRLF form). */
struct mime_imap_hdr {
	const char *name;
	size_t name_len;
	const char *value; /* after the colon, folds included */
	size_t value_len;
};

struct mime_imap_hdrs {
	struct mime_imap_hdr *v;
	size_t n, cap;
};

/* Returns the first field named name, or NULL. */
const struct mime_imap_hdr *
mime_imap_hdr_find(const struct mime_imap_hdrs *hdrs, const char *name);
/* Returns the unfolded, trimmed value of name (caller frees), or NULL. */
char *
mime_imap_hdr_value(const struct mime_imap_hdrs *hdrs, const char *name);

/* Writes NIL, a quoted string or a literal (RFC 3501 4.3, 9 "nstring"). */
void
mime_imap_write_nstring(struct buf *out, const char *s, size_t len);
void
mime_imap_write_nstr(struct buf *out, const char *s);

/* Writes the parenthesised ENVELOPE of a header block. */
void
mime_imap_write_envelope(struct buf *out, const struct mime_imap_hdrs *hdrs);

#endif
