#ifndef TERN_CORE_DOTSTUFF_H
#define TERN_CORE_DOTSTUFF_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

/*
 * SMTP DATA and POP3 multi-line transparency (RFC 5321 §4.5.2, RFC 1939 §3).
 *
 * The decoder takes the raw bytes after DATA in chunks of any size, removes
 * the leading dot of stuffed lines and stops at the end marker. Only
 * CRLF "." CRLF ends the data: a bare LF or bare CR never counts as a line
 * end, so no second message can be smuggled inside the first. The output is
 * the message exactly as sent (CRLF kept), without the end marker.
 */
struct dot_decoder {
	int state;
};

void dot_decoder_init(struct dot_decoder *d);
/*
 * Decodes up to n bytes of in, appending message bytes to out. Returns the
 * number of bytes consumed; sets *done_r once the end marker has been
 * consumed (the bytes after it are the next commands and are not consumed).
 */
size_t dot_decode(struct dot_decoder *d, const char *in, size_t n, struct buf *out,
		  bool *done_r);

/*
 * The encoder turns stored content (LF or CRLF line ends) into the wire form:
 * every line end becomes CRLF and a line starting with "." gets one more.
 */
struct dot_encoder {
	bool at_line_start;
	bool after_cr;
};

void dot_encoder_init(struct dot_encoder *e);
void dot_encode(struct dot_encoder *e, const char *in, size_t n, struct buf *out);
/* Ends the text: a CRLF if the content did not end a line, then ".\r\n". */
void dot_encode_finish(struct dot_encoder *e, struct buf *out);

#endif
