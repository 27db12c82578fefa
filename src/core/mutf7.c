/*
 * Modified UTF-7 (RFC 3501 §5.1.3). The base64 step reuses util.h's
 * RFC 4648 codec: the modified alphabet differs only in ',' for '/' and
 * in leaving out the '=' padding, so we translate around it.
 */
#include "core/mutf7.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

static bool
mutf7_printable(uint32_t c)
{
	return c >= 0x20 && c <= 0x7e;
}

/*
 * Reads one code point of strict UTF-8 at s[*i]; -1 if malformed
 * (RFC 3629 §3: no overlong forms, no surrogates, nothing above U+10FFFF).
 */
static int
mutf7_utf8_next(const unsigned char *s, size_t len, size_t *i, uint32_t *cp_r)
{
	static const uint32_t min_for_len[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	unsigned char c = s[*i];
	size_t n;
	uint32_t cp;
	if (c < 0x80) {
		n = 1;
		cp = c;
	} else if ((c & 0xe0) == 0xc0) {
		n = 2;
		cp = c & 0x1f;
	} else if ((c & 0xf0) == 0xe0) {
		n = 3;
		cp = c & 0x0f;
	} else if ((c & 0xf8) == 0xf0) {
		n = 4;
		cp = c & 0x07;
	} else {
		return -1;
	}
	if (len - *i < n)
		return -1;
	for (size_t k = 1; k < n; k++) {
		if ((s[*i + k] & 0xc0) != 0x80)
			return -1;
		cp = cp << 6 | (s[*i + k] & 0x3f);
	}
	if (cp < min_for_len[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*i += n;
	*cp_r = cp;
	return 0;
}

static void
mutf7_utf8_put(struct buf *out, uint32_t cp)
{
	char b[4];
	size_t n;
	if (cp < 0x80) {
		b[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | cp >> 6);
		b[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | cp >> 12);
		b[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (char)(0xf0 | cp >> 18);
		b[1] = (char)(0x80 | (cp >> 12 & 0x3f));
		b[2] = (char)(0x80 | (cp >> 6 & 0x3f));
		b[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	buf_append(out, b, n);
}

/* Appends the modified base64 of p[0..n): '/' -> ',', no '=' padding. */
static void
mutf7_b64_put(struct buf *out, const unsigned char *p, size_t n)
{
	char *b64 = base64_encode(p, n);
	for (char *c = b64; *c != '\0' && *c != '='; c++)
		buf_appendc(out, *c == '/' ? ',' : *c);
	free(b64);
}

/* Appends one UTF-16BE unit (or surrogate pair) of cp to u16. */
static void
mutf7_utf16_put(struct buf *u16, uint32_t cp)
{
	if (cp >= 0x10000) {
		cp -= 0x10000;
		uint32_t hi = 0xd800 | cp >> 10, lo = 0xdc00 | (cp & 0x3ff);
		unsigned char b[4] = { hi >> 8, hi & 0xff, lo >> 8, lo & 0xff };
		buf_append(u16, b, 4);
	} else {
		unsigned char b[2] = { cp >> 8, cp & 0xff };
		buf_append(u16, b, 2);
	}
}

int
mutf7_encode(const char *utf8, size_t len, struct buf *out, char **error_r)
{
	const unsigned char *s = (const unsigned char *)utf8;
	struct buf u16 = BUF_INIT;
	size_t i = 0;
	while (i < len) {
		uint32_t cp;
		if (mutf7_utf8_next(s, len, &i, &cp) < 0 || cp == 0) {
			buf_free(&u16);
			*error_r = xasprintf("invalid UTF-8 in mailbox name");
			return -1;
		}
		if (!mutf7_printable(cp)) {
			mutf7_utf16_put(&u16, cp);
			continue;
		}
		/* A printable character ends the pending base64 run. */
		if (u16.len > 0) {
			buf_appendc(out, '&');
			mutf7_b64_put(out, (unsigned char *)u16.data, u16.len);
			buf_appendc(out, '-');
			buf_reset(&u16);
		}
		buf_appends(out, cp == '&' ? "&-" : (char[]){ (char)cp, '\0' });
	}
	if (u16.len > 0) {
		buf_appendc(out, '&');
		mutf7_b64_put(out, (unsigned char *)u16.data, u16.len);
		buf_appendc(out, '-');
	}
	buf_free(&u16);
	return 0;
}

/*
 * Decodes the base64 between '&' and '-' into UTF-16BE, refusing any
 * spelling other than the one mutf7_b64_put would produce.
 */
static int
mutf7_b64_get(const char *s, size_t n, unsigned char **u16_r, size_t *len_r)
{
	if (n % 4 == 1 || memchr(s, '/', n) != NULL || memchr(s, '=', n) != NULL)
		return -1;
	char *std = xmalloc(n + 4);
	for (size_t i = 0; i < n; i++)
		std[i] = s[i] == ',' ? '/' : s[i];
	size_t m = n;
	while (m % 4 != 0)
		std[m++] = '=';
	int r = base64_decode(std, m, u16_r, len_r);
	free(std);
	if (r < 0)
		return -1;
	/* Re-encoding catches non-zero pad bits ("&AMl-" for "&AMk-"). */
	struct buf again = BUF_INIT;
	mutf7_b64_put(&again, *u16_r, *len_r);
	bool same = again.len == n && memcmp(again.data, s, n) == 0;
	buf_free(&again);
	if (!same || *len_r == 0 || *len_r % 2 != 0) {
		free(*u16_r);
		return -1;
	}
	return 0;
}

/* UTF-16BE to UTF-8; -1 on unpaired surrogates or needlessly encoded ASCII. */
static int
mutf7_utf16_get(const unsigned char *u, size_t n, struct buf *out)
{
	for (size_t i = 0; i < n; i += 2) {
		uint32_t cp = (uint32_t)u[i] << 8 | u[i + 1];
		if (cp >= 0xdc00 && cp <= 0xdfff)
			return -1;
		if (cp >= 0xd800 && cp <= 0xdbff) {
			if (i + 3 >= n)
				return -1;
			uint32_t lo = (uint32_t)u[i + 2] << 8 | u[i + 3];
			if (lo < 0xdc00 || lo > 0xdfff)
				return -1;
			cp = 0x10000 + ((cp - 0xd800) << 10 | (lo - 0xdc00));
			i += 2;
		}
		if (mutf7_printable(cp) || cp == 0)
			return -1;
		mutf7_utf8_put(out, cp);
	}
	return 0;
}

/* Decodes "&...-" at s[0] (s[0] == '&'); returns the bytes used or -1. */
static ssize_t
mutf7_decode_run(const char *s, size_t len, bool after_run, struct buf *out)
{
	const char *dash = memchr(s, '-', len);
	if (dash == NULL)
		return -1;
	size_t n = (size_t)(dash - s) - 1;
	if (n == 0) {
		buf_appendc(out, '&');
		return 2;
	}
	if (after_run)
		return -1;
	unsigned char *u16;
	size_t u16len;
	if (mutf7_b64_get(s + 1, n, &u16, &u16len) < 0)
		return -1;
	int r = mutf7_utf16_get(u16, u16len, out);
	free(u16);
	return r < 0 ? -1 : (ssize_t)n + 2;
}

int
mutf7_decode(const char *mutf7, size_t len, struct buf *out, char **error_r)
{
	size_t i = 0;
	bool after_run = false; /* the previous bytes closed a base64 run */
	while (i < len) {
		unsigned char c = (unsigned char)mutf7[i];
		if (!mutf7_printable(c))
			goto bad;
		if (c != '&') {
			buf_appendc(out, (char)c);
			after_run = false;
			i++;
			continue;
		}
		ssize_t used = mutf7_decode_run(mutf7 + i, len - i, after_run, out);
		if (used < 0)
			goto bad;
		after_run = used > 2;
		i += (size_t)used;
	}
	return 0;
bad:
	*error_r = xasprintf("invalid modified UTF-7 in mailbox name");
	return -1;
}
