/*
 * ENVELOPE (RFC 3501 7.4.2): header values sent raw, addresses split into
 * (name adl mailbox host) by a small lenient RFC 5322 3.4 parser. Encoded
 * words stay encoded: the client decodes them.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mime/mime_imap_private.h"

/* The host given to a mailbox that has none: a NIL host means group. */
#define MIME_IMAP_NO_HOST ".MISSING-HOST-NAME."
/* Bounds the work one header can cause. */
#define MIME_IMAP_MAX_TOKENS 10000

/* A token: kind 'w' is a word (atom, quoted string or domain literal),
 * otherwise the special character itself; 0 ends the list. */
struct addr_tok {
	char kind;
	char *text;
};

struct addr_toks {
	struct addr_tok *v;
	size_t n, cap;
};

static void
toks_push(struct addr_toks *t, char kind, char *text)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->v = xrealloc(t->v, t->cap * sizeof(*t->v));
	}
	t->v[t->n].kind = kind;
	t->v[t->n].text = text;
	t->n++;
}

static const char *
skip_cfws(const char *p)
{
	int depth = 0;

	for (; *p != '\0'; p++) {
		if (depth > 0 && *p == '\\' && p[1] != '\0')
			p++;
		else if (*p == '(')
			depth++;
		else if (*p == ')' && depth > 0)
			depth--;
		else if (depth == 0 && *p != ' ' && *p != '\t' &&
			 *p != '\r' && *p != '\n')
			break;
	}
	return p;
}

static const char *
lex_quoted(const char *p, struct buf *b)
{
	for (p++; *p != '\0' && *p != '"'; p++) {
		if (*p == '\\' && p[1] != '\0')
			p++;
		if (*p != '\r' && *p != '\n')
			buf_appendc(b, *p);
	}
	return *p == '"' ? p + 1 : p;
}

static const char *
lex_word(const char *p, struct buf *b)
{
	if (*p == '"')
		return lex_quoted(p, b);
	if (*p == '[') {
		const char *e = strchr(p, ']');
		size_t n = e != NULL ? (size_t)(e - p) + 1 : strlen(p);
		buf_append(b, p, n);
		return p + n;
	}
	while (*p != '\0' && strchr(" \t\r\n()<>@,;:\"[", *p) == NULL)
		buf_appendc(b, *p++);
	return p;
}

static void
addr_lex(const char *s, struct addr_toks *t)
{
	const char *p = skip_cfws(s);

	while (*p != '\0' && t->n < MIME_IMAP_MAX_TOKENS) {
		if (strchr("<>@,;:", *p) != NULL) {
			toks_push(t, *p, NULL);
			p++;
		} else {
			struct buf b = BUF_INIT;
			const char *q = lex_word(p, &b);
			if (q == p) /* a stray ')' or similar: skip it */
				q++;
			toks_push(t, 'w', b.data != NULL ? buf_steal(&b)
							 : xstrdup(""));
			p = q;
		}
		p = skip_cfws(p);
	}
	toks_push(t, 0, NULL);
}

static void
write_addr(struct buf *out, const char *name, const char *adl,
	   const char *mailbox, const char *host)
{
	buf_appendc(out, '(');
	mime_imap_write_nstr(out, name);
	buf_appendc(out, ' ');
	mime_imap_write_nstr(out, adl);
	buf_appendc(out, ' ');
	mime_imap_write_nstr(out, mailbox);
	buf_appendc(out, ' ');
	mime_imap_write_nstr(out, host);
	buf_appendc(out, ')');
}

/* Joins the words of t from *i on, with sep between them, up to the
 * first token not a word or listed in also; NULL if there are none. */
static char *
join_words(const struct addr_toks *t, size_t *i, const char *sep,
	   const char *also)
{
	struct buf b = BUF_INIT;
	bool any = false;

	for (; t->v[*i].kind == 'w' ||
	       (t->v[*i].kind != 0 && strchr(also, t->v[*i].kind) != NULL);
	     (*i)++) {
		if (any && t->v[*i].kind == 'w' && t->v[*i - 1].kind == 'w')
			buf_appends(&b, sep);
		if (t->v[*i].kind == 'w')
			buf_appends(&b, t->v[*i].text);
		else
			buf_appendc(&b, t->v[*i].kind);
		any = true;
	}
	if (!any)
		return NULL;
	return b.data != NULL ? buf_steal(&b) : xstrdup("");
}

/* "<" [route ":"] local ["@" domain] ">" after a phrase (RFC 5322 3.4,
 * obs-route in 4.4). */
static void
parse_angle(const struct addr_toks *t, size_t *i, const char *name,
	    struct buf *out)
{
	char *adl = NULL, *local, *host = NULL;
	size_t save;

	(*i)++;
	if (t->v[*i].kind == '@') {
		save = *i;
		adl = join_words(t, i, "", "@,");
		if (t->v[*i].kind == ':')
			(*i)++;
		else { /* no route after all: "<@x>" */
			free(adl);
			adl = NULL;
			*i = save + 1;
		}
	}
	local = join_words(t, i, "", "");
	if (t->v[*i].kind == '@') {
		(*i)++;
		host = join_words(t, i, "", "");
	}
	if (t->v[*i].kind == '>')
		(*i)++;
	write_addr(out, name, adl, local != NULL ? local : "",
		   host != NULL ? host : MIME_IMAP_NO_HOST);
	free(adl);
	free(local);
	free(host);
}

/* One mailbox or, outside a group, one group; returns the number of
 * addresses written. */
static int
parse_item(const struct addr_toks *t, size_t *i, bool in_group,
	   struct buf *out);

static int
parse_group(const struct addr_toks *t, size_t *i, const char *name,
	    struct buf *out)
{
	int n = 1;

	write_addr(out, NULL, NULL, name != NULL ? name : "", NULL);
	(*i)++;
	while (t->v[*i].kind != 0 && t->v[*i].kind != ';') {
		n += parse_item(t, i, true, out);
		if (t->v[*i].kind == ',')
			(*i)++;
	}
	if (t->v[*i].kind == ';')
		(*i)++;
	write_addr(out, NULL, NULL, NULL, NULL);
	return n + 1;
}

static int
parse_item(const struct addr_toks *t, size_t *i, bool in_group,
	   struct buf *out)
{
	size_t start = *i;
	char *phrase = join_words(t, i, " ", "");
	char kind = t->v[*i].kind;
	int n = 1;

	if (kind == ':' && !in_group) {
		n = parse_group(t, i, phrase, out);
	} else if (kind == '<') {
		parse_angle(t, i, phrase, out);
	} else if (kind == '@' && phrase != NULL) {
		char *local, *host;
		*i = start;
		local = join_words(t, i, "", "");
		(*i)++;
		host = join_words(t, i, "", "");
		write_addr(out, NULL, NULL, local,
			   host != NULL ? host : MIME_IMAP_NO_HOST);
		free(local);
		free(host);
	} else if (phrase != NULL) {
		write_addr(out, NULL, NULL, phrase, MIME_IMAP_NO_HOST);
	} else {
		n = 0;
		if (kind != 0 && kind != ',' && kind != ';')
			(*i)++; /* stray special: skip it */
		else if (kind == ';' && !in_group)
			(*i)++;
	}
	free(phrase);
	return n;
}

static void
write_addr_list(struct buf *out, const char *value)
{
	struct addr_toks t = { NULL, 0, 0 };
	struct buf list = BUF_INIT;
	size_t i = 0;
	int n = 0;

	addr_lex(value, &t);
	while (t.v[i].kind != 0) {
		n += parse_item(&t, &i, false, &list);
		if (t.v[i].kind == ',')
			i++;
	}
	if (n == 0) {
		buf_appends(out, "NIL");
	} else {
		buf_appendc(out, '(');
		buf_append(out, list.data, list.len);
		buf_appendc(out, ')');
	}
	buf_free(&list);
	for (i = 0; i < t.n; i++)
		free(t.v[i].text);
	free(t.v);
}

/* The fields in ENVELOPE order; fallback names the field used when this
 * one is absent (RFC 3501 7.4.2: sender and reply-to default to from). */
static const struct {
	const char *name;
	bool is_addr;
	const char *fallback;
} envelope_fields[] = {
	{ "Date", false, NULL },	{ "Subject", false, NULL },
	{ "From", true, NULL },		{ "Sender", true, "From" },
	{ "Reply-To", true, "From" },	{ "To", true, NULL },
	{ "Cc", true, NULL },		{ "Bcc", true, NULL },
	{ "In-Reply-To", false, NULL }, { "Message-ID", false, NULL },
};

void
mime_imap_write_envelope(struct buf *out, const struct mime_imap_hdrs *hdrs)
{
	size_t k;

	buf_appendc(out, '(');
	for (k = 0; k < sizeof(envelope_fields) / sizeof(envelope_fields[0]);
	     k++) {
		char *v = mime_imap_hdr_value(hdrs, envelope_fields[k].name);
		if (k > 0)
			buf_appendc(out, ' ');
		if (envelope_fields[k].is_addr) {
			struct buf tmp = BUF_INIT;
			if (v != NULL)
				write_addr_list(&tmp, v);
			if ((v == NULL || strcmp(tmp.data, "NIL") == 0) &&
			    envelope_fields[k].fallback != NULL) {
				free(v);
				v = mime_imap_hdr_value(
					hdrs, envelope_fields[k].fallback);
				buf_reset(&tmp);
				if (v != NULL)
					write_addr_list(&tmp, v);
			}
			if (v == NULL)
				buf_appends(out, "NIL");
			else
				buf_append(out, tmp.data, tmp.len);
			buf_free(&tmp);
		} else {
			mime_imap_write_nstr(out, v);
		}
		free(v);
	}
	buf_appendc(out, ')');
}
