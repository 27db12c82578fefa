/*
 * BODY is BODYSTRUCTURE without extension data (RFC 3501 7.4.2). The text
 * comes from mime_imap_describe (maybe through the index cache), so it is
 * well-formed; these walk it anyway with bounds and give up (-1) on
 * anything unexpected.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "mime/mime_imap.h"

static int
bs_skip(const char **p, const char *end)
{
	const char *s = *p;
	if (s >= end)
		return -1;
	if (*s == '"') {
		for (s++; s < end && *s != '"'; s++) {
			if (*s == '\\')
				s++;
		}
		if (s >= end)
			return -1;
		*p = s + 1;
		return 0;
	}
	if (*s == '{') {
		char *e;
		unsigned long long n = strtoull(s + 1, &e, 10);
		if (e >= end || *e != '}' || (unsigned long long)(end - e) < 3 + n)
			return -1;
		*p = e + 3 + n;
		return 0;
	}
	if (*s == '(') {
		for (s++; s < end && *s != ')';) {
			if (*s == ' ')
				s++;
			else if (bs_skip(&s, end) < 0)
				return -1;
		}
		if (s >= end)
			return -1;
		*p = s + 1;
		return 0;
	}
	while (s < end && *s != ' ' && *s != '(' && *s != ')')
		s++;
	if (s == *p)
		return -1;
	*p = s;
	return 0;
}

static int bs_strip(const char **p, const char *end, struct buf *out);

/* Copies n space-separated values of a single part. */
static int
bs_copy_fields(const char **p, const char *end, size_t n, struct buf *out)
{
	for (size_t i = 0; i < n; i++) {
		if (i > 0) {
			if (*p >= end || **p != ' ')
				return -1;
			(*p)++;
			buf_appendc(out, ' ');
		}
		const char *start = *p;
		if (bs_skip(p, end) < 0)
			return -1;
		buf_append(out, start, (size_t)(*p - start));
	}
	return 0;
}

/* The fields of a single part: 7 basic ones, then "lines" for TEXT, or
   envelope, body and lines for MESSAGE/RFC822 (§9 body-type-1part). */
static int
bs_strip_single(const char **p, const char *end, struct buf *out)
{
	bool text = (size_t)(end - *p) > 7 && strncmp(*p, "\"TEXT\" ", 7) == 0;
	bool msg = (size_t)(end - *p) > 19 && strncmp(*p, "\"MESSAGE\" \"RFC822\" ", 19) == 0;
	if (bs_copy_fields(p, end, msg ? 8 : text ? 8 : 7, out) < 0)
		return -1;
	if (!msg)
		return 0;
	if (*p >= end || **p != ' ')
		return -1;
	(*p)++;
	buf_appendc(out, ' ');
	if (bs_strip(p, end, out) < 0)
		return -1;
	buf_appendc(out, ' ');
	if (*p >= end || **p != ' ')
		return -1;
	(*p)++;
	return bs_copy_fields(p, end, 1, out);
}

static int
bs_strip(const char **p, const char *end, struct buf *out)
{
	const char *s = *p;
	if (s >= end || *s != '(')
		return -1;
	s++;
	buf_appendc(out, '(');
	if (s < end && *s == '(') {
		/* body-type-mpart: 1*body SP media-subtype */
		while (s < end && *s == '(') {
			if (bs_strip(&s, end, out) < 0)
				return -1;
		}
		if (s >= end || *s != ' ')
			return -1;
		s++;
		buf_appendc(out, ' ');
		if (bs_copy_fields(&s, end, 1, out) < 0)
			return -1;
	} else if (bs_strip_single(&s, end, out) < 0) {
		return -1;
	}
	while (s < end && *s != ')') { /* the extension data */
		if (*s == ' ')
			s++;
		else if (bs_skip(&s, end) < 0)
			return -1;
	}
	if (s >= end)
		return -1;
	buf_appendc(out, ')');
	*p = s + 1;
	return 0;
}

int
mime_imap_body_strip(const char *bodystructure, struct buf *out)
{
	struct buf body = BUF_INIT;
	const char *p = bodystructure;
	int ret = bs_strip(&p, p + strlen(p), &body);

	if (ret == 0)
		buf_append(out, body.data, body.len);
	buf_free(&body);
	return ret;
}
