/*
 * BODYSTRUCTURE (RFC 3501 7.4.2 and the "body" rule of section 9).
 *
 * GMime parses the structured header values (Content-Type and
 * Content-Disposition, with RFC 2231 parameters), but the part tree is
 * walked here over the raw bytes: body-fld-octets and body-fld-lines must
 * be exact for the CRLF form, and GMime does not expose where each part
 * begins and ends. Part boundaries follow RFC 2046 5.1.1: the CRLF before
 * a delimiter line belongs to the delimiter, not to the part.
 */
#include <ctype.h>
#include <glib.h>
#include <gmime/gmime.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "mime/mime_imap.h"
#include "mime/mime_imap_private.h"

/* Deeper nesting is described as an opaque application/octet-stream. */
#define MIME_IMAP_MAX_DEPTH 32
#define MIME_IMAP_MAX_HEADERS 2000
#define MIME_IMAP_MAX_PARTS 10000

struct mime_walk {
	struct buf *out;
	size_t parts; /* parts described so far, bounded */
};

static void
mime_imap_init_once(void)
{
	static gsize done = 0;

	if (g_once_init_enter(&done)) {
		g_mime_init();
		g_once_init_leave(&done, 1);
	}
}

/* Quoted if every byte is 7-bit and neither NUL, CR nor LF; else a
 * literal (RFC 3501 4.3: quoted strings cannot carry 8-bit or CR/LF). */
void
mime_imap_write_nstring(struct buf *out, const char *s, size_t len)
{
	size_t k;
	bool quotable = true;

	if (s == NULL) {
		buf_appends(out, "NIL");
		return;
	}
	for (k = 0; k < len && quotable; k++) {
		unsigned char c = (unsigned char)s[k];
		quotable = c != 0 && c < 0x80 && c != '\r' && c != '\n';
	}
	if (!quotable) {
		buf_appendf(out, "{%zu}\r\n", len);
		buf_append(out, s, len);
		return;
	}
	buf_appendc(out, '"');
	for (k = 0; k < len; k++) {
		if (s[k] == '"' || s[k] == '\\')
			buf_appendc(out, '\\');
		buf_appendc(out, s[k]);
	}
	buf_appendc(out, '"');
}

void
mime_imap_write_nstr(struct buf *out, const char *s)
{
	mime_imap_write_nstring(out, s, s != NULL ? strlen(s) : 0);
}

static void
write_upper(struct buf *out, const char *s)
{
	char *u = xstrdup(s != NULL ? s : "");
	char *p;

	for (p = u; *p != '\0'; p++)
		*p = (char)toupper((unsigned char)*p);
	mime_imap_write_nstr(out, u);
	free(u);
}

const struct mime_imap_hdr *
mime_imap_hdr_find(const struct mime_imap_hdrs *hdrs, const char *name)
{
	size_t k, n = strlen(name);

	for (k = 0; k < hdrs->n; k++) {
		if (hdrs->v[k].name_len == n &&
		    strncasecmp(hdrs->v[k].name, name, n) == 0)
			return &hdrs->v[k];
	}
	return NULL;
}

char *
mime_imap_hdr_value(const struct mime_imap_hdrs *hdrs, const char *name)
{
	const struct mime_imap_hdr *h = mime_imap_hdr_find(hdrs, name);
	struct buf b = BUF_INIT;
	size_t k;
	char *t;

	if (h == NULL)
		return NULL;
	/* Unfolding removes only the CRLF, keeping the WSP (RFC 5322 2.2.3). */
	for (k = 0; k < h->value_len; k++) {
		if (h->value[k] != '\r' && h->value[k] != '\n')
			buf_appendc(&b, h->value[k]);
	}
	if (b.data == NULL)
		return xstrdup("");
	t = str_trim(b.data);
	memmove(b.data, t, strlen(t) + 1);
	return buf_steal(&b);
}

static void
hdrs_push(struct mime_imap_hdrs *hdrs, const char *line, size_t len)
{
	const char *colon = memchr(line, ':', len);

	if (colon == NULL || colon == line || hdrs->n >= MIME_IMAP_MAX_HEADERS)
		return; /* garbage line: ignored */
	if (hdrs->n == hdrs->cap) {
		hdrs->cap = hdrs->cap ? hdrs->cap * 2 : 16;
		hdrs->v = xrealloc(hdrs->v, hdrs->cap * sizeof(*hdrs->v));
	}
	hdrs->v[hdrs->n].name = line;
	hdrs->v[hdrs->n].name_len = (size_t)(colon - line);
	while (hdrs->v[hdrs->n].name_len > 0 &&
	       (line[hdrs->v[hdrs->n].name_len - 1] == ' ' ||
		line[hdrs->v[hdrs->n].name_len - 1] == '\t'))
		hdrs->v[hdrs->n].name_len--;
	hdrs->v[hdrs->n].value = colon + 1;
	hdrs->v[hdrs->n].value_len = len - (size_t)(colon + 1 - line);
	hdrs->n++;
}

/* Splits [p, end) into header fields and returns where the body starts:
 * after the empty line, or end if there is none. */
static const char *
hdrs_parse(const char *p, const char *end, struct mime_imap_hdrs *hdrs)
{
	const char *field = NULL, *body = end;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *next = nl != NULL ? nl + 1 : end;
		size_t len = (size_t)(next - p);

		if (len <= 2 && (len == 1 || p[0] == '\r') && nl != NULL) {
			body = next; /* the empty line ends the header */
			break;
		}
		if (field != NULL && (*p == ' ' || *p == '\t')) {
			p = next; /* continuation of the current field */
			continue;
		}
		if (field != NULL)
			hdrs_push(hdrs, field, (size_t)(p - field));
		field = p;
		p = next;
	}
	/* The last field ends before the empty line. */
	if (field != NULL)
		hdrs_push(hdrs, field, (size_t)(p - field));
	return body;
}

static size_t
count_lines(const char *p, const char *end)
{
	size_t n = 0;
	const char *q;

	for (q = p; q < end; q++)
		n += *q == '\n';
	/* A last line without CRLF still counts as a line. */
	if (end > p && end[-1] != '\n')
		n++;
	return n;
}

static void
write_params(struct buf *out, GMimeParamList *params)
{
	int k, n = params != NULL ? g_mime_param_list_length(params) : 0;

	if (n <= 0) {
		buf_appends(out, "NIL");
		return;
	}
	buf_appendc(out, '(');
	for (k = 0; k < n; k++) {
		GMimeParam *prm = g_mime_param_list_get_parameter_at(params, k);
		if (k > 0)
			buf_appendc(out, ' ');
		write_upper(out, g_mime_param_get_name(prm));
		buf_appendc(out, ' ');
		mime_imap_write_nstr(out, g_mime_param_get_value(prm) != NULL
						  ? g_mime_param_get_value(prm)
						  : "");
	}
	buf_appendc(out, ')');
}

static void
write_disposition(struct buf *out, const struct mime_imap_hdrs *hdrs)
{
	char *v = mime_imap_hdr_value(hdrs, "Content-Disposition");
	GMimeContentDisposition *d;
	const char *dsp;

	if (v == NULL || *v == '\0') {
		buf_appends(out, "NIL");
		free(v);
		return;
	}
	d = g_mime_content_disposition_parse(NULL, v);
	dsp = d != NULL ? g_mime_content_disposition_get_disposition(d) : NULL;
	if (dsp == NULL || *dsp == '\0') {
		buf_appends(out, "NIL"); /* body-fld-dsp needs a string */
	} else {
		buf_appendc(out, '(');
		write_upper(out, dsp);
		buf_appendc(out, ' ');
		write_params(out, g_mime_content_disposition_get_parameters(d));
		buf_appendc(out, ')');
	}
	if (d != NULL)
		g_object_unref(d);
	free(v);
}

/* body-fld-lang: NIL, one string, or a list of the tags (RFC 3282). */
static void
write_language(struct buf *out, const struct mime_imap_hdrs *hdrs)
{
	char *v = mime_imap_hdr_value(hdrs, "Content-Language");
	char *save = NULL, *tok;
	struct buf list = BUF_INIT;
	int n = 0;

	for (tok = v != NULL ? strtok_r(v, ", \t", &save) : NULL; tok != NULL;
	     tok = strtok_r(NULL, ", \t", &save)) {
		if (n++ > 0)
			buf_appendc(&list, ' ');
		mime_imap_write_nstr(&list, tok);
	}
	if (n == 0)
		buf_appends(out, "NIL");
	else if (n == 1)
		buf_append(out, list.data, list.len);
	else
		buf_appendf(out, "(%s)", list.data);
	buf_free(&list);
	free(v);
}

/* Disposition, language and location, shared by both kinds of part. */
static void
write_ext(struct buf *out, const struct mime_imap_hdrs *hdrs)
{
	char *loc = mime_imap_hdr_value(hdrs, "Content-Location");

	buf_appendc(out, ' ');
	write_disposition(out, hdrs);
	buf_appendc(out, ' ');
	write_language(out, hdrs);
	buf_appendc(out, ' ');
	mime_imap_write_nstr(out, loc);
	free(loc);
}

static void
write_part(struct mime_walk *w, const char *start, const char *end,
	   int depth, bool in_digest);

static bool
is_identity_encoding(const char *enc)
{
	return strcasecmp(enc, "7bit") == 0 || strcasecmp(enc, "8bit") == 0 ||
	       strcasecmp(enc, "binary") == 0;
}

static void
write_leaf(struct mime_walk *w, const struct mime_imap_hdrs *hdrs,
	   GMimeContentType *ct, const char *type, const char *subtype,
	   const char *body, const char *end, int depth, bool message)
{
	struct buf *out = w->out;
	char *id = mime_imap_hdr_value(hdrs, "Content-ID");
	char *desc = mime_imap_hdr_value(hdrs, "Content-Description");
	char *enc = mime_imap_hdr_value(hdrs, "Content-Transfer-Encoding");

	if (enc != NULL && *enc == '\0') {
		free(enc);
		enc = NULL;
	}
	buf_appendc(out, '(');
	write_upper(out, type);
	buf_appendc(out, ' ');
	write_upper(out, subtype);
	buf_appendc(out, ' ');
	write_params(out, g_mime_content_type_get_parameters(ct));
	buf_appendc(out, ' ');
	mime_imap_write_nstr(out, id);
	buf_appendc(out, ' ');
	mime_imap_write_nstr(out, desc);
	buf_appendc(out, ' ');
	write_upper(out, enc != NULL ? enc : "7bit");
	buf_appendf(out, " %zu", (size_t)(end - body));
	if (message) {
		struct mime_imap_hdrs inner = { NULL, 0, 0 };
		hdrs_parse(body, end, &inner);
		buf_appendc(out, ' ');
		mime_imap_write_envelope(out, &inner);
		free(inner.v);
		buf_appendc(out, ' ');
		write_part(w, body, end, depth + 1, false);
		buf_appendf(out, " %zu", count_lines(body, end));
	} else if (strcasecmp(type, "text") == 0) {
		buf_appendf(out, " %zu", count_lines(body, end));
	}
	buf_appends(out, " NIL"); /* body-fld-md5: not computed */
	write_ext(out, hdrs);
	buf_appendc(out, ')');
	free(id);
	free(desc);
	free(enc);
}

/* Whether the line at p is "--boundary" or "--boundary--" followed by
 * padding (RFC 2046 5.1.1); *close_r tells the close delimiter. */
static bool
is_delimiter(const char *p, const char *end, const char *boundary,
	     size_t blen, bool *close_r)
{
	if ((size_t)(end - p) < blen + 2 || p[0] != '-' || p[1] != '-' ||
	    memcmp(p + 2, boundary, blen) != 0)
		return false;
	p += blen + 2;
	*close_r = end - p >= 2 && p[0] == '-' && p[1] == '-';
	if (*close_r)
		p += 2;
	return p == end || *p == ' ' || *p == '\t' || *p == '\r' ||
	       *p == '\n';
}

/* The body parts of a multipart body, one at a time (see children_next). */
struct mime_children {
	const char *p, *end;
	const char *part;   /* start of the part under way, NULL before one */
	const char *boundary;
	size_t blen;
};

static void
children_init(struct mime_children *c, const char *body, const char *end,
	      const char *boundary)
{
	c->p = body;
	c->end = end;
	c->part = NULL;
	c->boundary = boundary;
	c->blen = strlen(boundary);
}

/* The next body part between the delimiters, in [*start_r, *end_r);
 * false when there is none. The close delimiter ends the list; an
 * unterminated last part runs to the end of the body. */
static bool
children_next(struct mime_children *c, const char **start_r,
	      const char **end_r)
{
	while (c->p < c->end) {
		const char *line = c->p;
		const char *nl = memchr(line, '\n', (size_t)(c->end - line));
		const char *next = nl != NULL ? nl + 1 : c->end;
		const char *part = c->part;
		bool close;

		c->p = next;
		if (!is_delimiter(line, next, c->boundary, c->blen, &close))
			continue;
		c->part = close ? NULL : next;
		if (close)
			c->p = c->end;
		if (part == NULL)
			continue;
		/* The CRLF before the delimiter is its own. */
		if (line > part && line[-1] == '\n')
			line--;
		if (line > part && line[-1] == '\r')
			line--;
		*start_r = part;
		*end_r = line;
		return true;
	}
	if (c->part == NULL)
		return false;
	*start_r = c->part;
	*end_r = c->end;
	c->part = NULL;
	return true;
}

/* Emits each body part; returns the number of parts written. */
static size_t
write_children(struct mime_walk *w, const char *body, const char *end,
	       const char *boundary, int depth, bool digest)
{
	struct mime_children c;
	const char *start, *pend;
	size_t n = 0;

	children_init(&c, body, end, boundary);
	while (w->parts < MIME_IMAP_MAX_PARTS &&
	       children_next(&c, &start, &pend)) {
		write_part(w, start, pend, depth + 1, digest);
		n++;
	}
	return n;
}

static void
write_multipart(struct mime_walk *w, const struct mime_imap_hdrs *hdrs,
		GMimeContentType *ct, const char *body, const char *end,
		int depth)
{
	const char *boundary = g_mime_content_type_get_parameter(ct, "boundary");
	const char *subtype = g_mime_content_type_get_media_subtype(ct);
	bool digest = subtype != NULL && strcasecmp(subtype, "digest") == 0;
	size_t n = 0;

	buf_appendc(w->out, '(');
	if (boundary != NULL && *boundary != '\0')
		n = write_children(w, body, end, boundary, depth, digest);
	if (n == 0) /* the grammar needs one part: an empty text one */
		buf_appends(w->out, "(\"TEXT\" \"PLAIN\" (\"CHARSET\" "
				    "\"us-ascii\") NIL NIL \"7BIT\" 0 0 NIL "
				    "NIL NIL NIL)");
	buf_appendc(w->out, ' ');
	write_upper(w->out, subtype);
	buf_appendc(w->out, ' ');
	write_params(w->out, g_mime_content_type_get_parameters(ct));
	write_ext(w->out, hdrs);
	buf_appendc(w->out, ')');
}

/* One entity: its header fields and its media type, defaults applied. */
struct mime_entity {
	struct mime_imap_hdrs hdrs;
	const char *start, *body, *end;
	char *ct_value;
	GMimeContentType *ct;
	const char *type, *subtype;
	bool multipart;  /* walked as a multipart */
	bool message;    /* a message/rfc822 whose body is walked as a message */
};

/* Header, then body up to end. Without Content-Type it is text/plain;
 * charset=us-ascii, or message/rfc822 inside a digest (RFC 2045 5.2,
 * RFC 2046 5.1.5). Too deep, it is an opaque application/octet-stream;
 * so is a message/rfc822 with a non-identity encoding (RFC 2046 5.2.1
 * forbids one): RFC 3501 7.4.2 gives "MESSAGE" "RFC822" an envelope and
 * a body that an encoded message cannot be walked for, and a client
 * parsing the BODYSTRUCTURE expects them. */
static void
entity_open(struct mime_entity *e, const char *start, const char *end,
	    int depth, bool in_digest)
{
	memset(e, 0, sizeof(*e));
	e->start = start;
	e->end = end;
	e->body = hdrs_parse(start, end, &e->hdrs);
	e->ct_value = mime_imap_hdr_value(&e->hdrs, "Content-Type");
	if (e->ct_value == NULL || *e->ct_value == '\0') {
		free(e->ct_value);
		e->ct_value = xstrdup(in_digest ? "message/rfc822"
						: "text/plain; charset=us-ascii");
	}
	e->ct = g_mime_content_type_parse(NULL, e->ct_value);
	e->type = g_mime_content_type_get_media_type(e->ct);
	e->subtype = g_mime_content_type_get_media_subtype(e->ct);
	if (e->type == NULL || e->subtype == NULL || depth >= MIME_IMAP_MAX_DEPTH) {
		e->type = "application";
		e->subtype = "octet-stream";
	}
	e->multipart = strcasecmp(e->type, "multipart") == 0;
	if (strcasecmp(e->type, "message") == 0 &&
	    strcasecmp(e->subtype, "rfc822") == 0) {
		char *enc = mime_imap_hdr_value(&e->hdrs, "Content-Transfer-Encoding");
		e->message = is_identity_encoding(enc != NULL && *enc != '\0' ? enc : "7bit");
		free(enc);
		if (!e->message) {
			e->type = "application";
			e->subtype = "octet-stream";
		}
	}
}

static void
entity_close(struct mime_entity *e)
{
	if (e->ct != NULL)
		g_object_unref(e->ct);
	free(e->hdrs.v);
	free(e->ct_value);
	memset(e, 0, sizeof(*e));
}

static void
write_part(struct mime_walk *w, const char *start, const char *end,
	   int depth, bool in_digest)
{
	struct mime_entity e;

	w->parts++;
	entity_open(&e, start, end, depth, in_digest);
	if (e.multipart)
		write_multipart(w, &e.hdrs, e.ct, e.body, end, depth);
	else
		write_leaf(w, &e.hdrs, e.ct, e.type, e.subtype, e.body, end,
			   depth, e.message);
	entity_close(&e);
}

int
mime_imap_describe(const char *data, size_t len, char **envelope_r,
		   char **bodystructure_r, char **error_r)
{
	struct mime_imap_hdrs hdrs = { NULL, 0, 0 };
	struct buf env = BUF_INIT, body = BUF_INIT;
	struct mime_walk w = { &body, 0 };
	size_t n;
	char *msg;

	if (data == NULL) {
		*error_r = xstrdup("no message");
		return -1;
	}
	mime_imap_init_once();
	struct buf crlf = BUF_INIT;
	buf_append_crlf(&crlf, data, len);
	n = crlf.len;
	msg = buf_steal(&crlf);
	hdrs_parse(msg, msg + n, &hdrs);
	mime_imap_write_envelope(&env, &hdrs);
	write_part(&w, msg, msg + n, 0, false);
	free(hdrs.v);
	free(msg);
	*envelope_r = buf_steal(&env);
	*bodystructure_r = buf_steal(&body);
	return 0;
}

/*
 * Part numbers (RFC 3501 6.4.5): the parts of a multipart are numbered
 * from 1 as they occur; a message that is not multipart (the top one or
 * one inside a message/rfc822 part) has only part 1, which is its body;
 * the numbers after a message/rfc822 part name the parts of the message
 * it holds, and those after a multipart part its children.
 */
int
mime_imap_part_find(const char *msg, size_t len, const unsigned *nums,
		    size_t count, struct mime_imap_part *part_r)
{
	struct mime_entity e;
	bool in_message = true;
	int depth = 0, ret = 0;
	size_t k;

	mime_imap_init_once();
	entity_open(&e, msg, msg + len, 0, false);
	for (k = 0; k < count && ret == 0; k++) {
		if (e.multipart) {
			const char *boundary = g_mime_content_type_get_parameter(e.ct, "boundary");
			bool digest = strcasecmp(e.subtype, "digest") == 0;
			struct mime_children c;
			const char *start = NULL, *end = NULL;
			unsigned n = 0;

			if (boundary != NULL && *boundary != '\0') {
				children_init(&c, e.body, e.end, boundary);
				while (n < nums[k] && children_next(&c, &start, &end))
					n++;
			}
			entity_close(&e);
			if (n == 0 || n != nums[k]) {
				ret = -1;
				break;
			}
			entity_open(&e, start, end, ++depth, digest);
		} else if (!in_message || nums[k] != 1) {
			ret = -1; /* a leaf has no parts, a message one */
			break;
		}
		in_message = false;
		if (k + 1 < count && e.message) {
			const char *body = e.body, *end = e.end;
			entity_close(&e);
			entity_open(&e, body, end, ++depth, false);
			in_message = true;
		} else if (k + 1 < count && !e.multipart) {
			ret = -1;
		}
	}
	if (ret == 0) {
		part_r->start = (size_t)(e.start - msg);
		part_r->body = (size_t)(e.body - msg);
		part_r->end = (size_t)(e.end - msg);
		part_r->message = e.message;
		part_r->msg_body = part_r->end;
		if (e.message) {
			struct mime_imap_hdrs inner = { NULL, 0, 0 };
			part_r->msg_body = (size_t)(hdrs_parse(e.body, e.end, &inner) - msg);
			free(inner.v);
		}
	}
	if (e.ct != NULL)
		entity_close(&e);
	return ret;
}

/* Whether the header [hdr, body) ends with its empty line. */
static bool
ends_blank_line(const char *hdr, const char *body)
{
	const char *line = body;

	if (line == hdr || line[-1] != '\n')
		return false;
	line--;
	if (line > hdr && line[-1] == '\r')
		line--;
	return line == hdr || line[-1] == '\n';
}

void
mime_imap_header_fields(const char *hdr, size_t len, const char *const *names,
			size_t count, bool exclude, struct buf *out)
{
	struct mime_imap_hdrs hdrs = { NULL, 0, 0 };
	const char *body = hdrs_parse(hdr, hdr + len, &hdrs);
	size_t k, j;

	for (k = 0; k < hdrs.n; k++) {
		const struct mime_imap_hdr *h = &hdrs.v[k];
		bool match = false;
		for (j = 0; j < count && !match; j++)
			match = strlen(names[j]) == h->name_len &&
				strncasecmp(names[j], h->name, h->name_len) == 0;
		if (match != exclude)
			buf_append(out, h->name, (size_t)(h->value + h->value_len - h->name));
	}
	/* The blank line is part of every header fetch, unless the header
	 * had none (RFC 3501 6.4.5). */
	if (ends_blank_line(hdr, body))
		buf_appends(out, "\r\n");
	free(hdrs.v);
}
