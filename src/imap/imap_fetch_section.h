#ifndef TERN_IMAP_IMAP_FETCH_SECTION_H
#define TERN_IMAP_IMAP_FETCH_SECTION_H

/* The section of BODY[section] (RFC 3501 §6.4.5, §9 "section"), shared by
   imap_fetch.c and imap_fetch_section.c; not for other modules. */

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

/* Deeper part numbers cannot name a part: mime/ stops nesting at 32. */
#define IMAP_SECTION_NUMS_MAX 64
#define IMAP_SECTION_FIELDS_MAX 256

enum imap_section_text {
	IMAP_SECTION_BODY,        /* BODY[] or BODY[1.2] */
	IMAP_SECTION_HEADER,
	IMAP_SECTION_TEXT,
	IMAP_SECTION_MIME,
	IMAP_SECTION_FIELDS,      /* HEADER.FIELDS (list) */
	IMAP_SECTION_FIELDS_NOT,  /* HEADER.FIELDS.NOT (list) */
};

struct imap_section {
	unsigned nums[IMAP_SECTION_NUMS_MAX];
	size_t depth;
	enum imap_section_text text;
	char **fields;
	size_t field_count;
	char *name;  /* how the response names it, e.g. "1.HEADER.FIELDS (From)" */
};

/*
 * Parses the text after "BODY[" up to and including the closing ']';
 * *end_r points after it. -1 with *error_r (static) if malformed.
 */
int imap_section_parse(const char *s, struct imap_section *sec,
		       const char **end_r, const char **error_r);
/* A section for a fixed text (RFC822, RFC822.HEADER, RFC822.TEXT). */
void imap_section_init(struct imap_section *sec, enum imap_section_text text);
void imap_section_clear(struct imap_section *sec);

/*
 * The bytes of the section in msg (CRLF form): *data_r points into msg,
 * or into tmp for a header subset. -1 if the message has no such part.
 */
int imap_section_extract(const struct imap_section *sec, const char *msg,
			 size_t len, struct buf *tmp, const char **data_r,
			 size_t *len_r);

#endif
