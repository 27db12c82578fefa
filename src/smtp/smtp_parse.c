#include "smtp/smtp_parse.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/util.h"

/* A cursor over the argument text; every step checks for the end. */
struct smtp_cursor {
	const char *p;
	const char *end;
};

static bool
smtp_cursor_at(const struct smtp_cursor *cur, char ch)
{
	return cur->p < cur->end && *cur->p == ch;
}

int
smtp_parse_command(char *line, char verb_r[SMTP_VERB_MAX + 1], char **args_r)
{
	size_t n = 0;
	while (isalpha((unsigned char)line[n]) && n < SMTP_VERB_MAX) {
		verb_r[n] = (char)toupper((unsigned char)line[n]);
		n++;
	}
	verb_r[n] = '\0';
	/* The verb ends at a blank or the end of the line, nothing else. */
	if (n == 0 || (line[n] != '\0' && line[n] != ' ' && line[n] != '\t'))
		return -1;
	*args_r = str_trim(line + n);
	return 0;
}

/* RFC 5321 §4.1.2 atext (RFC 5322 §3.2.3): what a Dot-string is made of. */
static bool
smtp_is_atext(unsigned char ch)
{
	return isalnum(ch) || (ch != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", ch) != NULL);
}

/* Atom *("." Atom) over the whole of s[0..n). */
static bool
smtp_is_dot_string(const char *s, size_t n)
{
	bool need_atext = true;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.' && !need_atext) {
			need_atext = true;
			continue;
		}
		if (!smtp_is_atext((unsigned char)s[i]))
			return false;
		need_atext = false;
	}
	return !need_atext;
}

/*
 * Local-part = Dot-string / Quoted-string. The unquoted content goes to
 * out; a quoted local part that is a valid Dot-string loses its quotes,
 * any other keeps them (with only '"' and '\' escaped).
 */
static int
smtp_parse_local_part(struct smtp_cursor *cur, struct buf *out)
{
	if (!smtp_cursor_at(cur, '"')) {
		const char *start = cur->p;
		while (cur->p < cur->end && (smtp_is_atext((unsigned char)*cur->p) || *cur->p == '.'))
			cur->p++;
		if (!smtp_is_dot_string(start, (size_t)(cur->p - start)))
			return -1;
		buf_append(out, start, (size_t)(cur->p - start));
		return 0;
	}
	struct buf content = BUF_INIT;
	cur->p++;
	for (;;) {
		if (cur->p >= cur->end) {
			buf_free(&content);
			return -1;
		}
		unsigned char ch = (unsigned char)*cur->p++;
		if (ch == '"')
			break;
		if (ch == '\\') {
			/* quoted-pairSMTP = "\" %d32-126 */
			if (cur->p >= cur->end || *cur->p < 32 || *cur->p > 126) {
				buf_free(&content);
				return -1;
			}
			ch = (unsigned char)*cur->p++;
		} else if (ch < 32 || ch > 126) {
			buf_free(&content);
			return -1;
		}
		buf_appendc(&content, (char)ch);
	}
	if (content.len > 0 && smtp_is_dot_string(content.data, content.len)) {
		buf_append(out, content.data, content.len);
	} else {
		buf_appendc(out, '"');
		for (size_t i = 0; i < content.len; i++) {
			if (content.data[i] == '"' || content.data[i] == '\\')
				buf_appendc(out, '\\');
			buf_appendc(out, content.data[i]);
		}
		buf_appendc(out, '"');
	}
	buf_free(&content);
	return 0;
}

/* Domain = sub-domain *("." sub-domain), sub-domain = Let-dig [Ldh-str]. */
static int
smtp_parse_domain(struct smtp_cursor *cur, struct buf *out)
{
	const char *start = cur->p;
	if (smtp_cursor_at(cur, '[')) {
		/* address-literal: checked only for its characters (dcontent). */
		cur->p++;
		while (cur->p < cur->end && *cur->p != ']' && *cur->p >= 33 && *cur->p <= 126 &&
		       *cur->p != '[' && *cur->p != '@')
			cur->p++;
		if (!smtp_cursor_at(cur, ']') || cur->p == start + 1)
			return -1;
		cur->p++;
	} else {
		bool label_start = true;
		while (cur->p < cur->end) {
			unsigned char ch = (unsigned char)*cur->p;
			if (isalnum(ch) || (ch == '-' && !label_start)) {
				label_start = false;
			} else if (ch == '.' && !label_start && cur->p[-1] != '-') {
				label_start = true;
			} else {
				break;
			}
			cur->p++;
		}
		if (label_start || cur->p[-1] == '-')
			return -1;
	}
	if ((size_t)(cur->p - start) > SMTP_DOMAIN_MAX)
		return -1;
	buf_append(out, start, (size_t)(cur->p - start));
	return 0;
}

/* A-d-l = At-domain *( "," At-domain ) ":" — parsed and ignored (§4.1.2, §C). */
static int
smtp_skip_source_route(struct smtp_cursor *cur)
{
	struct buf scratch = BUF_INIT;
	int ret = 0;
	for (;;) {
		if (!smtp_cursor_at(cur, '@')) {
			ret = -1;
			break;
		}
		cur->p++;
		if (smtp_parse_domain(cur, &scratch) < 0) {
			ret = -1;
			break;
		}
		if (smtp_cursor_at(cur, ',')) {
			cur->p++;
			continue;
		}
		if (!smtp_cursor_at(cur, ':'))
			ret = -1;
		else
			cur->p++;
		break;
	}
	buf_free(&scratch);
	return ret;
}

/* Mailbox = Local-part "@" ( Domain / address-literal ), or RCPT's <postmaster>. */
static int
smtp_parse_mailbox(struct smtp_cursor *cur, enum smtp_path_kind kind, struct buf *out)
{
	if (smtp_parse_local_part(cur, out) < 0 || out->len > SMTP_LOCAL_PART_MAX)
		return -1;
	/* §4.5.1: <postmaster> without a domain must be accepted. */
	if (kind == SMTP_PATH_RCPT && smtp_cursor_at(cur, '>') &&
	    strcasecmp(out->data, "postmaster") == 0) {
		buf_reset(out);
		buf_appends(out, "postmaster");
		return 0;
	}
	if (!smtp_cursor_at(cur, '@'))
		return -1;
	buf_appendc(out, '@');
	cur->p++;
	return smtp_parse_domain(cur, out);
}

/*
 * esmtp-param = esmtp-keyword ["=" esmtp-value]; keyword is
 * (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"), value 1*(%d33-60 / %d62-126).
 */
static bool
smtp_param_valid(const char *keyword, const char *value)
{
	if (!isalnum((unsigned char)keyword[0]))
		return false;
	for (const char *k = keyword; *k != '\0'; k++)
		if (!isalnum((unsigned char)*k) && *k != '-')
			return false;
	if (value == NULL)
		return true;
	if (*value == '\0')
		return false;
	for (const char *v = value; *v != '\0'; v++)
		if (*v < 33 || *v > 126 || *v == '=')
			return false;
	return true;
}

static int
smtp_parse_params(const char *text, struct smtp_path *path)
{
	path->param_text = xstrdup(text);
	char *save = NULL;
	for (char *tok = strtok_r(path->param_text, " ", &save); tok != NULL;
	     tok = strtok_r(NULL, " ", &save)) {
		if (path->nparams == SMTP_PARAMS_MAX)
			return -1;
		char *eq = strchr(tok, '=');
		if (eq != NULL)
			*eq++ = '\0';
		if (!smtp_param_valid(tok, eq))
			return -1;
		path->params[path->nparams].keyword = tok;
		path->params[path->nparams].value = eq;
		path->nparams++;
	}
	return 0;
}

/* Errors of MAIL and RCPT, as whole replies (RFC 3463 X.1.7 / X.1.3). */
static const struct {
	const char *prefix, *syntax, *address, *too_long, *params;
} smtp_path_errors[] = {
	[SMTP_PATH_MAIL] = { "FROM:", "501 5.5.4 Syntax: MAIL FROM:<address>",
			     "501 5.1.7 Bad sender address syntax",
			     "501 5.1.7 Path too long",
			     "501 5.5.4 Bad MAIL parameter syntax" },
	[SMTP_PATH_RCPT] = { "TO:", "501 5.5.4 Syntax: RCPT TO:<address>",
			     "501 5.1.3 Bad recipient address syntax",
			     "501 5.1.3 Path too long",
			     "501 5.5.4 Bad RCPT parameter syntax" },
};

int
smtp_parse_path(const char *args, enum smtp_path_kind kind, struct smtp_path *path_r,
		const char **error_r)
{
	const char *prefix = smtp_path_errors[kind].prefix;
	memset(path_r, 0, sizeof(*path_r));
	if (!str_case_prefix(args, prefix)) {
		*error_r = smtp_path_errors[kind].syntax;
		return -1;
	}
	struct smtp_cursor cur = { args + strlen(prefix), args + strlen(args) };
	while (smtp_cursor_at(&cur, ' '))
		cur.p++;
	if (!smtp_cursor_at(&cur, '<')) {
		*error_r = smtp_path_errors[kind].syntax;
		return -1;
	}
	const char *path_start = cur.p++;
	struct buf addr = BUF_INIT;
	int ret = 0;
	if (kind == SMTP_PATH_MAIL && smtp_cursor_at(&cur, '>')) {
		/* The null reverse-path <> (bounces). */
	} else if ((smtp_cursor_at(&cur, '@') && smtp_skip_source_route(&cur) < 0) ||
		   smtp_parse_mailbox(&cur, kind, &addr) < 0 || !smtp_cursor_at(&cur, '>')) {
		*error_r = smtp_path_errors[kind].address;
		ret = -1;
	}
	if (ret == 0 && (size_t)(cur.p + 1 - path_start) > SMTP_PATH_MAX) {
		*error_r = smtp_path_errors[kind].too_long;
		ret = -1;
	}
	if (ret == 0) {
		cur.p++; /* the '>' */
		if (cur.p < cur.end && *cur.p != ' ') {
			*error_r = smtp_path_errors[kind].address;
			ret = -1;
		} else if (smtp_parse_params(cur.p, path_r) < 0) {
			*error_r = smtp_path_errors[kind].params;
			ret = -1;
		}
	}
	path_r->address = buf_steal(&addr);
	if (ret < 0)
		smtp_path_clear(path_r);
	return ret;
}

void
smtp_path_clear(struct smtp_path *path)
{
	free(path->address);
	free(path->param_text);
	memset(path, 0, sizeof(*path));
}

const char *
smtp_address_domain(const char *address)
{
	const char *at = strrchr(address, '@');
	return at != NULL ? at + 1 : "";
}

static const struct {
	const char *name;
	unsigned flag;
} smtp_header_fields[] = {
	{ "message-id", SMTP_HDR_MESSAGE_ID },
	{ "date", SMTP_HDR_DATE },
};

/* Which of smtp_header_fields one header line names (0 if none). */
static unsigned
smtp_header_field(const char *line, size_t len)
{
	const char *colon = memchr(line, ':', len);
	if (colon == NULL)
		return 0;
	size_t n = (size_t)(colon - line);
	/* RFC 5322 §4.5.1 (obsolete syntax): blanks before the colon. */
	while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
		n--;
	for (size_t i = 0; i < sizeof(smtp_header_fields) / sizeof(smtp_header_fields[0]); i++)
		if (strlen(smtp_header_fields[i].name) == n &&
		    strncasecmp(line, smtp_header_fields[i].name, n) == 0)
			return smtp_header_fields[i].flag;
	return 0;
}

size_t
smtp_header_scan(const char *p, size_t n, unsigned *fields_r)
{
	*fields_r = 0;
	size_t pos = 0;
	while (pos < n) {
		const char *nl = memchr(p + pos, '\n', n - pos);
		if (nl == NULL)
			return 0;
		size_t end = (size_t)(nl - p);
		size_t len = end - pos;
		if (len > 0 && p[end - 1] == '\r')
			len--;
		if (len == 0)
			return end + 1;
		/* A folded line starts with a blank and so names no field. */
		*fields_r |= smtp_header_field(p + pos, len);
		pos = end + 1;
	}
	return 0;
}
