#include "core/dotstuff.h"

#include <string.h>

/*
 * Decoder states. DOT_LINE_START means "just after CRLF": the decoder starts
 * there because the CRLF ending the DATA command line precedes the message,
 * so a "." CRLF as the very first line is the end marker (RFC 5321 §4.1.1.4).
 */
enum {
	DOT_LINE_START, /* after CRLF */
	DOT_MID,        /* inside a line */
	DOT_CR,         /* after a CR inside a line (or after a bare CR) */
	DOT_DOT,        /* after CRLF "." */
	DOT_DOT_CR,     /* after CRLF "." CR: one LF more ends the data */
};

void
dot_decoder_init(struct dot_decoder *d)
{
	d->state = DOT_LINE_START;
}

/* Copies the run of ordinary bytes up to the next CR; returns its length. */
static size_t
dot_copy_run(const char *in, size_t n, struct buf *out)
{
	const char *cr = memchr(in, '\r', n);
	size_t run = cr != NULL ? (size_t)(cr - in) : n;
	buf_append(out, in, run);
	return run;
}

/* One byte in a state where no dot is pending; returns the next state. */
static int
dot_step_plain(int state, char ch, struct buf *out)
{
	buf_appendc(out, ch);
	if (ch == '\r')
		return DOT_CR;
	/* Only CR LF ends a line: a bare LF is ordinary data (§4.1.1.4). */
	if (ch == '\n' && state == DOT_CR)
		return DOT_LINE_START;
	return DOT_MID;
}

size_t
dot_decode(struct dot_decoder *d, const char *in, size_t n, struct buf *out,
	   bool *done_r)
{
	size_t i = 0;
	*done_r = false;
	while (i < n) {
		char ch = in[i];
		switch (d->state) {
		case DOT_MID:
			if (ch != '\r') {
				i += dot_copy_run(in + i, n - i, out);
				continue;
			}
			d->state = dot_step_plain(d->state, ch, out);
			break;
		case DOT_LINE_START:
			if (ch == '.') {
				/* Held back: either the end marker or a stuffed dot. */
				d->state = DOT_DOT;
				break;
			}
			d->state = dot_step_plain(d->state, ch, out);
			break;
		case DOT_CR:
			d->state = dot_step_plain(d->state, ch, out);
			break;
		case DOT_DOT:
			if (ch == '\r') {
				d->state = DOT_DOT_CR;
				break;
			}
			/*
			 * §4.5.2: a line starting with a period has that period
			 * deleted. ".." gives "."; a lone "." followed by other
			 * text (not allowed to senders, but seen) loses it too.
			 */
			d->state = dot_step_plain(DOT_MID, ch, out);
			break;
		case DOT_DOT_CR:
			if (ch == '\n') {
				d->state = DOT_LINE_START;
				*done_r = true;
				return i + 1;
			}
			/* "." CR x: the dot was stuffing; the CR is data. */
			buf_appendc(out, '\r');
			d->state = dot_step_plain(DOT_CR, ch, out);
			break;
		}
		i++;
	}
	return i;
}

void
dot_encoder_init(struct dot_encoder *e)
{
	e->at_line_start = true;
	e->after_cr = false;
}

void
dot_encode(struct dot_encoder *e, const char *in, size_t n, struct buf *out)
{
	size_t start = 0; /* first byte not yet copied to out */
	for (size_t i = 0; i < n; i++) {
		char ch = in[i];
		if (ch == '\n') {
			buf_append(out, in + start, i - start);
			start = i + 1;
			/* LF alone becomes CRLF; an existing CRLF stays as it is. */
			buf_append(out, e->after_cr ? "\n" : "\r\n", e->after_cr ? 1 : 2);
			e->at_line_start = true;
			e->after_cr = false;
			continue;
		}
		if (e->at_line_start && ch == '.') {
			buf_append(out, in + start, i - start);
			start = i;
			buf_appendc(out, '.');
		}
		e->at_line_start = false;
		e->after_cr = ch == '\r';
	}
	buf_append(out, in + start, n - start);
}

void
dot_encode_finish(struct dot_encoder *e, struct buf *out)
{
	if (!e->at_line_start)
		buf_appends(out, e->after_cr ? "\n" : "\r\n");
	buf_appends(out, ".\r\n");
	dot_encoder_init(e);
}
