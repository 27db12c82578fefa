/*
 * Text matching for IMAP SEARCH (RFC 3501 §6.4.4): decoded header fields
 * (RFC 2047) and decoded text parts (RFC 2045 §6 transfer encodings, the
 * charset parameter of RFC 2046 §4.1.2), folded with GLib.
 *
 * The header block is split here over the raw bytes (lines, folds, names)
 * because that is simple and exact; GMime decodes the encoded words, parses
 * the Date: value, and walks and decodes the MIME parts of the body.
 */
#include "mime/mime_search.h"

#include <glib.h>
#include <gmime/gmime.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/util.h"

/* Header fields kept per message; a longer header is searched no further. */
#define MS_FIELDS_MAX 2000
/*
 * GMime parses nested multiparts and message/rfc822 parts recursively.
 * A message with more markers of nesting than this is not given to it:
 * its body is searched as raw text instead, so that a crafted message
 * cannot exhaust the stack.
 */
#define MS_NESTING_MAX 256

struct ms_field {
	char *name;   /* as written */
	char *value;  /* unfolded, raw */
	char *folded; /* decoded and folded, computed on first use */
};

struct mime_search {
	const char *data;
	size_t len;
	const char *body_start; /* after the empty line ending the header */
	bool fields_done;
	struct ms_field *fields;
	size_t nfields;
	char *header_text;      /* TEXT: "name: value\n" of every field, folded */
	char *body;             /* the decoded text parts, folded */
};

static void
ms_init_once(void)
{
	static gsize done = 0;

	if (g_once_init_enter(&done)) {
		g_mime_init();
		g_once_init_leave(&done, 1);
	}
}

char *
mime_search_fold(const char *s, size_t len)
{
	/* GLib's string functions stop at a NUL; a body may hold one. */
	char *clean = xmalloc(len + 1);
	for (size_t i = 0; i < len; i++)
		clean[i] = s[i] == '\0' ? ' ' : s[i];
	clean[len] = '\0';
	gchar *valid = g_utf8_make_valid(clean, (gssize)len);
	free(clean);
	gchar *cf = g_utf8_casefold(valid, -1);
	g_free(valid);
	/* NFKC after folding: composed and decomposed forms compare equal. */
	gchar *nf = g_utf8_normalize(cf, -1, G_NORMALIZE_ALL_COMPOSE);
	char *out = xstrdup(nf != NULL ? nf : cf);
	g_free(nf);
	g_free(cf);
	return out;
}

struct mime_search *
mime_search_new(const char *data, size_t len)
{
	struct mime_search *ms = xcalloc(1, sizeof(*ms));
	ms->data = data;
	ms->len = len;
	return ms;
}

void
mime_search_free(struct mime_search **msp)
{
	struct mime_search *ms = *msp;
	if (ms == NULL)
		return;
	for (size_t i = 0; i < ms->nfields; i++) {
		free(ms->fields[i].name);
		free(ms->fields[i].value);
		free(ms->fields[i].folded);
	}
	free(ms->fields);
	free(ms->header_text);
	free(ms->body);
	free(ms);
	*msp = NULL;
}

/* The end of the line at p (after its LF), or end. */
static const char *
ms_line_end(const char *p, const char *end)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	return nl != NULL ? nl + 1 : end;
}

static bool
ms_line_blank(const char *p, const char *end)
{
	return p < end && (*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n'));
}

/* One field, lines [start, end): name up to the colon, the value unfolded. */
static void
ms_field_add(struct mime_search *ms, const char *start, const char *end)
{
	const char *colon = memchr(start, ':', (size_t)(end - start));
	if (colon == NULL || colon == start || ms->nfields >= MS_FIELDS_MAX)
		return; /* not a field (RFC 5322 §2.2): skipped */
	const char *ne = colon;
	while (ne > start && (ne[-1] == ' ' || ne[-1] == '\t'))
		ne--;
	struct buf v = BUF_INIT;
	for (const char *p = colon + 1; p < end; p++) {
		/* Unfolding (RFC 5322 §2.2.3): CR and LF go, the blanks stay. */
		if (*p != '\r' && *p != '\n')
			buf_appendc(&v, *p);
	}
	/* The blanks around the value are not part of it. */
	while (v.len > 0 && (v.data[v.len - 1] == ' ' || v.data[v.len - 1] == '\t'))
		v.data[--v.len] = '\0';
	size_t lead = strspn(v.data != NULL ? v.data : "", " \t");
	buf_consume(&v, lead);
	ms->fields = xrealloc(ms->fields, (ms->nfields + 1) * sizeof(*ms->fields));
	struct ms_field *f = &ms->fields[ms->nfields++];
	f->name = xstrndup(start, (size_t)(ne - start));
	f->value = buf_steal(&v);
	f->folded = NULL;
}

static void
ms_fields_parse(struct mime_search *ms)
{
	if (ms->fields_done)
		return;
	ms->fields_done = true;
	const char *p = ms->data, *end = ms->data + ms->len;
	while (p < end && !ms_line_blank(p, end)) {
		const char *start = p;
		p = ms_line_end(p, end);
		while (p < end && (*p == ' ' || *p == '\t'))
			p = ms_line_end(p, end);
		ms_field_add(ms, start, p);
	}
	ms->body_start = p < end ? ms_line_end(p, end) : end;
}

static const char *
ms_field_folded(struct ms_field *f)
{
	if (f->folded == NULL) {
		ms_init_once();
		char *dec = g_mime_utils_header_decode_text(NULL, f->value);
		const char *v = dec != NULL ? dec : f->value;
		f->folded = mime_search_fold(v, strlen(v));
		g_free(dec);
	}
	return f->folded;
}

bool
mime_search_header(struct mime_search *ms, const char *field, const char *needle)
{
	ms_fields_parse(ms);
	for (size_t i = 0; i < ms->nfields; i++) {
		struct ms_field *f = &ms->fields[i];
		if (strcasecmp(f->name, field) == 0 && strstr(ms_field_folded(f), needle) != NULL)
			return true;
	}
	return false;
}

/* The fields mime_search_fields keeps: the envelope's (§6.4.4 FROM, TO,
   CC, BCC, SUBJECT), which clients search most. */
static const char *const ms_kept[] = { "From", "To", "Cc", "Bcc", "Subject" };

bool
mime_search_field_kept(const char *field)
{
	for (size_t i = 0; i < sizeof(ms_kept) / sizeof(ms_kept[0]); i++) {
		if (strcasecmp(field, ms_kept[i]) == 0)
			return true;
	}
	return false;
}

char *
mime_search_fields(struct mime_search *ms)
{
	ms_fields_parse(ms);
	struct buf out = BUF_INIT;
	for (size_t i = 0; i < ms->nfields; i++) {
		struct ms_field *f = &ms->fields[i];
		if (!mime_search_field_kept(f->name))
			continue;
		size_t at = out.len;
		buf_appendf(&out, "%s:%s", f->name, ms_field_folded(f));
		/* One line a field: a newline decoded from an encoded word goes. */
		for (size_t j = at; j < out.len; j++) {
			if (out.data[j] == '\n')
				out.data[j] = ' ';
		}
		buf_appendc(&out, '\n');
	}
	return buf_steal(&out);
}

bool
mime_search_fields_match(const char *fields, const char *field, const char *needle)
{
	size_t n = strlen(field), nlen = strlen(needle);
	for (const char *p = fields; *p != '\0';) {
		const char *eol = strchr(p, '\n');
		size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p);
		if (len > n && p[n] == ':' && strncasecmp(p, field, n) == 0 &&
		    memmem(p + n + 1, len - n - 1, needle, nlen) != NULL)
			return true;
		p += len + (eol != NULL);
	}
	return false;
}

/* Appends the decoded text of one leaf of type text, in UTF-8 where known. */
static void
ms_body_part(GMimeObject *parent, GMimeObject *part, gpointer user)
{
	struct buf *out = user;
	(void)parent;
	if (!GMIME_IS_PART(part))
		return;
	GMimeContentType *ct = g_mime_object_get_content_type(part);
	if (ct == NULL || !g_mime_content_type_is_type(ct, "text", "*"))
		return;
	GMimeDataWrapper *w = g_mime_part_get_content(GMIME_PART(part));
	if (w == NULL)
		return;
	GMimeStream *mem = g_mime_stream_mem_new();
	GMimeStream *filtered = g_mime_stream_filter_new(mem);
	const char *cs = g_mime_content_type_get_parameter(ct, "charset");
	/* US-ASCII is a subset of UTF-8; bytes outside both are repaired by the fold. */
	if (cs != NULL && strcasecmp(cs, "utf-8") != 0 && strcasecmp(cs, "us-ascii") != 0) {
		GMimeFilter *conv = g_mime_filter_charset_new(cs, "UTF-8");
		if (conv != NULL) { /* NULL: a charset iconv does not know */
			g_mime_stream_filter_add(GMIME_STREAM_FILTER(filtered), conv);
			g_object_unref(conv);
		}
	}
	/* The wrapper undoes the Content-Transfer-Encoding as it writes. */
	g_mime_data_wrapper_write_to_stream(w, filtered);
	g_mime_stream_flush(filtered);
	GByteArray *bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	if (bytes != NULL && bytes->len > 0) {
		buf_append(out, bytes->data, bytes->len);
		buf_appends(out, "\n");
	}
	g_object_unref(filtered);
	g_object_unref(mem);
}

/* Lines that open a nested part; counted before GMime recurses into them. */
static size_t
ms_nesting_markers(const char *p, const char *end)
{
	size_t n = 0;
	for (; p < end; p = ms_line_end(p, end)) {
		const char *le = ms_line_end(p, end);
		size_t l = (size_t)(le - p);
		if (memmem(p, l, "ultipart/", 9) != NULL || memmem(p, l, "ULTIPART/", 9) != NULL ||
		    memmem(p, l, "essage/", 7) != NULL || memmem(p, l, "ESSAGE/", 7) != NULL)
			n++;
		if (n > MS_NESTING_MAX)
			break;
	}
	return n;
}

static void
ms_body_decode(struct mime_search *ms, struct buf *out)
{
	ms_fields_parse(ms);
	if (ms_nesting_markers(ms->data, ms->data + ms->len) > MS_NESTING_MAX) {
		buf_append(out, ms->body_start, (size_t)(ms->data + ms->len - ms->body_start));
		return;
	}
	ms_init_once();
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer(ms->data, ms->len);
	GMimeParser *parser = g_mime_parser_new_with_stream(stream);
	GMimeMessage *msg = g_mime_parser_construct_message(parser, NULL);
	if (msg != NULL) {
		g_mime_message_foreach(msg, ms_body_part, out);
		g_object_unref(msg);
	}
	g_object_unref(parser);
	g_object_unref(stream);
}

bool
mime_search_body(struct mime_search *ms, const char *needle)
{
	if (ms->body == NULL) {
		struct buf text = BUF_INIT;
		ms_body_decode(ms, &text);
		ms->body = mime_search_fold(text.data != NULL ? text.data : "", text.len);
		buf_free(&text);
	}
	return strstr(ms->body, needle) != NULL;
}

bool
mime_search_text(struct mime_search *ms, const char *needle)
{
	ms_fields_parse(ms);
	if (ms->header_text == NULL) {
		struct buf h = BUF_INIT;
		for (size_t i = 0; i < ms->nfields; i++) {
			char *name = mime_search_fold(ms->fields[i].name,
						      strlen(ms->fields[i].name));
			buf_appendf(&h, "%s: %s\n", name, ms_field_folded(&ms->fields[i]));
			free(name);
		}
		ms->header_text = buf_steal(&h);
	}
	return strstr(ms->header_text, needle) != NULL || mime_search_body(ms, needle);
}

int
mime_search_sent_date(struct mime_search *ms, int *year_r, int *month_r, int *day_r)
{
	ms_fields_parse(ms);
	for (size_t i = 0; i < ms->nfields; i++) {
		if (strcasecmp(ms->fields[i].name, "Date") != 0)
			continue;
		ms_init_once();
		GDateTime *dt = g_mime_utils_header_decode_date(ms->fields[i].value);
		if (dt == NULL)
			return -1;
		/* The day in the zone the sender wrote: the zone is disregarded. */
		g_date_time_get_ymd(dt, year_r, month_r, day_r);
		g_date_time_unref(dt);
		return 0;
	}
	return -1;
}
