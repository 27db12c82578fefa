/*
 * Fuzz target: a message as delivered or APPENDed, through everything that
 * reads one: ENVELOPE and BODYSTRUCTURE (mime_imap_describe, then BODY
 * from it), the part walk of BODY[n.n], HEADER.FIELDS and the SEARCH
 * views (header fields, decoded body, Date:). The first byte picks the
 * part numbers to look for.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "mime/mime_imap.h"
#include "mime/mime_search.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	unsigned pick = data[0];
	const char *msg = (const char *)data + 1;
	size_t len = size - 1;

	char *envelope = NULL, *bodystructure = NULL, *error = NULL;
	if (mime_imap_describe(msg, len, &envelope, &bodystructure, &error) == 0) {
		struct buf body = BUF_INIT;
		/* What describe made, strip must take. */
		if (mime_imap_body_strip(bodystructure, &body) < 0)
			abort();
		buf_free(&body);
	}
	free(envelope);
	free(bodystructure);
	free(error);

	/* FETCH sends (and walks) the CRLF form. */
	struct buf crlf = BUF_INIT;
	buf_append_crlf(&crlf, msg, len);
	unsigned nums[3] = { 1 + (pick & 3), 1 + ((pick >> 2) & 3), 1 + ((pick >> 4) & 3) };
	struct mime_imap_part part;
	if (mime_imap_part_find(crlf.data, crlf.len, nums, 1 + (pick >> 6) % 3, &part) == 0 &&
	    !(part.start <= part.body && part.body <= part.end && part.end <= crlf.len))
		abort();
	static const char *const names[] = { "From", "subject", "X-Nothing" };
	struct buf fields = BUF_INIT;
	mime_imap_header_fields(crlf.data, crlf.len, names, 3, pick & 1, &fields);
	buf_free(&fields);
	buf_free(&crlf);

	struct mime_search *ms = mime_search_new(msg, len);
	mime_search_header(ms, "Subject", "re");
	mime_search_header(ms, "X-Empty", "");
	char *kept = mime_search_fields(ms);
	mime_search_fields_match(kept, "From", "a");
	free(kept);
	mime_search_body(ms, "caf\xc3\xa9");
	mime_search_text(ms, "x");
	int y, m, d;
	mime_search_sent_date(ms, &y, &m, &d);
	mime_search_free(&ms);
	return 0;
}
