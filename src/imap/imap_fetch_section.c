/*
 * BODY[section] (RFC 3501 §6.4.5): part numbers, HEADER, TEXT, MIME,
 * HEADER.FIELDS and HEADER.FIELDS.NOT, parsed from the atom the command
 * parser hands over, and found in the message through mime/ (the same
 * part walk that BODYSTRUCTURE reports, so the two always agree).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "imap/imap_fetch_section.h"
#include "mime/mime_imap.h"

static const char *const section_texts[] = {
	[IMAP_SECTION_BODY] = "",
	[IMAP_SECTION_HEADER] = "HEADER",
	[IMAP_SECTION_TEXT] = "TEXT",
	[IMAP_SECTION_MIME] = "MIME",
	[IMAP_SECTION_FIELDS] = "HEADER.FIELDS",
	[IMAP_SECTION_FIELDS_NOT] = "HEADER.FIELDS.NOT",
};

void
imap_section_init(struct imap_section *sec, enum imap_section_text text)
{
	memset(sec, 0, sizeof(*sec));
	sec->text = text;
	sec->name = xstrdup(section_texts[text]);
}

void
imap_section_clear(struct imap_section *sec)
{
	for (size_t i = 0; i < sec->field_count; i++)
		free(sec->fields[i]);
	free(sec->fields);
	free(sec->name);
	memset(sec, 0, sizeof(*sec));
}

/* ATOM-CHAR (§9) without ']', which ends the section. */
static bool
section_atom_char(char c)
{
	return c > 0x20 && c < 0x7f && strchr("(){\"%*\\]", c) == NULL;
}

/* One header-fld-name (an astring: atom or quoted string) at *p. */
static char *
section_field_name(const char **p)
{
	struct buf b = BUF_INIT;
	const char *s = *p;
	if (*s == '"') {
		for (s++; *s != '\0' && *s != '"'; s++) {
			if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
				s++;
			buf_appendc(&b, *s);
		}
		if (*s != '"') {
			buf_free(&b);
			return NULL;
		}
		s++;
	} else {
		while (section_atom_char(*s))
			buf_appendc(&b, *s++);
	}
	*p = s;
	/* RFC 5322 field names are printable ASCII; an empty one is none. */
	for (size_t i = 0; i < b.len; i++) {
		if (b.data[i] <= 0x20 || b.data[i] >= 0x7f)
			b.len = 0;
	}
	if (b.len == 0) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

/* " (name *(SP name))" after HEADER.FIELDS[.NOT]. */
static int
section_parse_fields(const char **p, struct imap_section *sec)
{
	const char *s = *p;
	if (s[0] != ' ' || s[1] != '(')
		return -1;
	s += 2;
	for (;;) {
		if (sec->field_count >= IMAP_SECTION_FIELDS_MAX)
			return -1;
		char *name = section_field_name(&s);
		if (name == NULL)
			return -1;
		sec->fields = xrealloc(sec->fields, (sec->field_count + 1) *
				       sizeof(*sec->fields));
		sec->fields[sec->field_count++] = name;
		if (*s == ')')
			break;
		if (*s != ' ')
			return -1;
		s++;
	}
	*p = s + 1;
	return 0;
}

/* The response's name for the section: part numbers, text, field list. */
static void
section_make_name(struct imap_section *sec)
{
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < sec->depth; i++)
		buf_appendf(&b, "%s%u", i > 0 ? "." : "", sec->nums[i]);
	if (sec->depth > 0 && sec->text != IMAP_SECTION_BODY)
		buf_appendc(&b, '.');
	buf_appends(&b, section_texts[sec->text]);
	for (size_t i = 0; i < sec->field_count; i++) {
		const char *f = sec->fields[i];
		bool atom = true;
		for (const char *c = f; *c != '\0'; c++)
			atom &= section_atom_char(*c);
		buf_appends(&b, i == 0 ? " (" : " ");
		if (atom) {
			buf_appends(&b, f);
			continue;
		}
		buf_appendc(&b, '"');
		for (const char *c = f; *c != '\0'; c++) {
			if (*c == '"' || *c == '\\')
				buf_appendc(&b, '\\');
			buf_appendc(&b, *c);
		}
		buf_appendc(&b, '"');
	}
	if (sec->field_count > 0)
		buf_appendc(&b, ')');
	sec->name = b.data != NULL ? buf_steal(&b) : xstrdup("");
}

/* section-part: nz-number *("." nz-number); stops before ".TEXT" etc. */
static int
section_parse_nums(const char **p, struct imap_section *sec)
{
	const char *s = *p;
	while (*s >= '1' && *s <= '9') {
		unsigned long long n = 0;
		for (; *s >= '0' && *s <= '9'; s++) {
			n = n * 10 + (unsigned)(*s - '0');
			if (n > 0xffffffffULL)
				return -1;
		}
		if (sec->depth >= IMAP_SECTION_NUMS_MAX)
			return -1;
		sec->nums[sec->depth++] = (unsigned)n;
		if (*s != '.')
			break;
		if (s[1] < '1' || s[1] > '9') {
			s++; /* ".TEXT", ".MIME"... follows */
			break;
		}
		s++;
	}
	if (sec->depth > 0 && s[-1] == '.' && (*s == ']' || *s == '\0'))
		return -1; /* "1.]" */
	*p = s;
	return 0;
}

int
imap_section_parse(const char *s, struct imap_section *sec, const char **end_r,
		   const char **error_r)
{
	memset(sec, 0, sizeof(*sec));
	*error_r = "Invalid section";
	if (section_parse_nums(&s, sec) < 0)
		return -1;
	/* Longest keyword first: HEADER.FIELDS.NOT before HEADER.FIELDS
	   before HEADER. */
	static const enum imap_section_text order[] = {
		IMAP_SECTION_FIELDS_NOT, IMAP_SECTION_FIELDS, IMAP_SECTION_HEADER,
		IMAP_SECTION_TEXT, IMAP_SECTION_MIME,
	};
	sec->text = IMAP_SECTION_BODY;
	if (sec->depth > 0 && *s != ']' && s[-1] != '.')
		return -1; /* "1HEADER" */
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]) && *s != ']'; i++) {
		const char *kw = section_texts[order[i]];
		size_t n = strlen(kw);
		if (strncasecmp(s, kw, n) != 0 || (s[n] != ']' && s[n] != ' '))
			continue;
		sec->text = order[i];
		s += n;
		break;
	}
	/* §9: MIME only after part numbers (section-text, not -msgtext). */
	if (sec->text == IMAP_SECTION_MIME && sec->depth == 0)
		return -1;
	if ((sec->text == IMAP_SECTION_FIELDS || sec->text == IMAP_SECTION_FIELDS_NOT) &&
	    section_parse_fields(&s, sec) < 0) {
		imap_section_clear(sec);
		return -1;
	}
	if (*s != ']') {
		imap_section_clear(sec);
		return -1;
	}
	*end_r = s + 1;
	section_make_name(sec);
	return 0;
}

int
imap_section_extract(const struct imap_section *sec, const char *msg, size_t len,
		     struct buf *tmp, const char **data_r, size_t *len_r)
{
	struct mime_imap_part p;
	if (mime_imap_part_find(msg, len, sec->nums, sec->depth, &p) < 0)
		return -1;
	size_t start, end;
	if (sec->text == IMAP_SECTION_BODY) {
		start = sec->depth == 0 ? 0 : p.body;
		end = p.end;
	} else if (sec->text == IMAP_SECTION_MIME) {
		/* Of a non-multipart message's part 1, the message header. */
		start = p.start;
		end = p.body;
	} else {
		/* §6.4.5: after part numbers, HEADER, TEXT and HEADER.FIELDS
		   only name the message inside a MESSAGE/RFC822 part. */
		size_t hs = p.start, he = p.body;
		if (sec->depth > 0 && !p.message)
			return -1;
		if (sec->depth > 0) {
			hs = p.body;
			he = p.msg_body;
		}
		start = sec->text == IMAP_SECTION_TEXT ? he : hs;
		end = sec->text == IMAP_SECTION_TEXT ? p.end : he;
		if (sec->text == IMAP_SECTION_FIELDS ||
		    sec->text == IMAP_SECTION_FIELDS_NOT) {
			buf_reset(tmp);
			mime_imap_header_fields(msg + hs, he - hs,
						(const char *const *)sec->fields,
						sec->field_count,
						sec->text == IMAP_SECTION_FIELDS_NOT, tmp);
			*data_r = tmp->data != NULL ? tmp->data : "";
			*len_r = tmp->len;
			return 0;
		}
	}
	*data_r = msg + start;
	*len_r = end - start;
	return 0;
}
