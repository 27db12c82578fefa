#include "smtp/smtp_client_private.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp/smtp_client.h"

void
smtpc_reply_reset(struct smtpc_reply *r)
{
	r->code = 0;
	r->complete = false;
	buf_reset(&r->text);
}

/*
 * RFC 5321 §4.2: Reply-line = *( Reply-code "-" [ textstring ] CRLF )
 * Reply-code [ SP textstring ] CRLF, with the code 2xx-5xx and the same on
 * every line. A bare "250" is a complete reply too (§4.2.1 is liberal).
 */
enum smtpc_feed
smtpc_reply_feed(struct smtpc_reply *r, const char *line, size_t len)
{
	if (len < 3 || line[0] < '2' || line[0] > '5' || !isdigit((unsigned char)line[1]) ||
	    !isdigit((unsigned char)line[2]))
		return SMTPC_FEED_GARBAGE;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return SMTPC_FEED_GARBAGE;
	unsigned code = (unsigned)(line[0] - '0') * 100 + (unsigned)(line[1] - '0') * 10 +
			(unsigned)(line[2] - '0');
	if (r->code != 0 && code != r->code)
		return SMTPC_FEED_GARBAGE;
	/* Bounded: a peer cannot make us hold more than one reply's worth. */
	if (r->text.len + len + 1 > SMTP_CLIENT_REPLY_MAX)
		return SMTPC_FEED_GARBAGE;
	if (r->text.len > 0)
		buf_appendc(&r->text, '\n');
	buf_append(&r->text, line, len);
	r->code = code;
	if (len > 3 && line[3] == '-')
		return SMTPC_FEED_MORE;
	r->complete = true;
	return SMTPC_FEED_DONE;
}

/* "d.ddd.ddd" (RFC 3463 §2: class, subject 1-3 digits, detail 1-3 digits). */
static size_t
enhanced_len(const char *p, char class)
{
	if (p[0] != class || p[1] != '.')
		return 0;
	size_t i = 2, n = 0;
	while (isdigit((unsigned char)p[i]) && n < 3)
		i++, n++;
	if (n == 0 || p[i] != '.')
		return 0;
	i++;
	n = 0;
	while (isdigit((unsigned char)p[i]) && n < 3)
		i++, n++;
	if (n == 0 || (p[i] != '\0' && p[i] != ' ' && p[i] != '\n'))
		return 0;
	return i;
}

void
smtpc_reply_enhanced(const struct smtpc_reply *r, char out[16])
{
	char class = (char)('0' + r->code / 100);
	const char *t = r->text.data;
	/* RFC 3463 §2: the class must agree with the reply code's. */
	size_t n = t != NULL && r->text.len > 4 ? enhanced_len(t + 4, class) : 0;
	if (n > 0 && n < 16) {
		memcpy(out, t + 4, n);
		out[n] = '\0';
		return;
	}
	snprintf(out, 16, "%c.0.0", class);
}

/* One EHLO line after the code: "KEYWORD [params]". */
static void
ext_line(const char *p, size_t len, struct smtpc_ext *ext)
{
	char kw[32];
	size_t n = 0;
	while (n < len && p[n] != ' ' && n < sizeof(kw) - 1) {
		kw[n] = p[n];
		n++;
	}
	kw[n] = '\0';
	const char *params = n < len ? p + n + 1 : "";
	if (strcasecmp(kw, "PIPELINING") == 0) {
		ext->pipelining = true;
	} else if (strcasecmp(kw, "8BITMIME") == 0) {
		ext->eightbitmime = true;
	} else if (strcasecmp(kw, "STARTTLS") == 0) {
		ext->starttls = true;
	} else if (strcasecmp(kw, "SIZE") == 0) {
		/* RFC 1870 §4: an optional limit; 0 or none means no fixed one. */
		ext->size = true;
		ext->size_max = isdigit((unsigned char)*params) ? strtoull(params, NULL, 10) : 0;
	} else if (strcasecmp(kw, "AUTH") == 0) {
		/* RFC 4954 §3: a space-separated list of SASL mechanisms. */
		const char *q = params;
		while (*q != '\0' && q < p + len) {
			size_t m = strcspn(q, " \n");
			if (m == 5 && strncasecmp(q, "PLAIN", 5) == 0)
				ext->auth_plain = true;
			else if (m == 5 && strncasecmp(q, "LOGIN", 5) == 0)
				ext->auth_login = true;
			q += m;
			while (*q == ' ')
				q++;
			if (*q == '\n')
				break;
		}
	}
}

void
smtpc_ext_parse(const struct smtpc_reply *r, struct smtpc_ext *ext_r)
{
	memset(ext_r, 0, sizeof(*ext_r));
	const char *p = r->text.data;
	if (p == NULL)
		return;
	/* The first line is the greeting part of the reply, not a keyword. */
	const char *nl = strchr(p, '\n');
	while (nl != NULL) {
		const char *line = nl + 1;
		nl = strchr(line, '\n');
		size_t len = nl != NULL ? (size_t)(nl - line) : strlen(line);
		if (len > 4)
			ext_line(line + 4, len - 4, ext_r);
	}
}
