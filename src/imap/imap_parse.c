/*
 * The IMAP command parser: see imap_parse.h for the protocol with the
 * session. The parse state that outlives one line is the stack of open
 * lists, whether a separator is due, and the literal under way; every
 * other token lives within one line.
 */
#include "imap/imap_parse.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "core/buf.h"
#include "core/util.h"

enum parser_state {
	ST_START,       /* the next line starts a new command */
	ST_ARGS,        /* the next line continues the arguments */
	ST_LITERAL,     /* literal bytes are being fed */
	ST_DISCARD_LIT, /* throwing away a literal of a rejected command */
	ST_DISCARD_LINE /* throwing away the next line of a rejected command */
};

struct imap_parser {
	struct imap_parse_limits lim;
	enum parser_state state;
	char *tag, *name;
	bool uid;
	struct imap_arg root; /* LIST of the arguments */
	struct imap_arg **stack; /* open lists; stack[0] == &root */
	size_t depth;
	bool need_sep; /* a token ended: SP, ')' or end of line must follow */
	size_t nargs;
	uint64_t total;

	uint64_t lit_size, lit_left;
	bool lit_sync;
	struct buf lit;

	const char *error;
	const char *deferred_error; /* found in discarded bytes, told at the end */
	enum imap_parse_recovery recovery;
};

void
imap_parse_limits_default(struct imap_parse_limits *lim)
{
	lim->tag_max = IMAP_PARSE_TAG_MAX;
	lim->atom_max = IMAP_PARSE_ATOM_MAX;
	lim->depth_max = IMAP_PARSE_DEPTH_MAX;
	lim->args_max = IMAP_PARSE_ARGS_MAX;
	lim->literal_max = IMAP_PARSE_LITERAL_MAX;
	lim->command_max = IMAP_PARSE_COMMAND_MAX;
}

struct imap_parser *
imap_parser_new(const struct imap_parse_limits *limits)
{
	struct imap_parser *p = xcalloc(1, sizeof(*p));

	if (limits != NULL)
		p->lim = *limits;
	else
		imap_parse_limits_default(&p->lim);
	if (p->lim.depth_max == 0)
		p->lim.depth_max = 1;
	p->stack = xcalloc(p->lim.depth_max + 1, sizeof(*p->stack));
	p->root.type = IMAP_ARG_LIST;
	imap_parser_reset(p);
	return p;
}

static void
arg_clear(struct imap_arg *arg)
{
	/* Recursion is bounded by depth_max. */
	if (arg->type == IMAP_ARG_LIST) {
		for (size_t i = 0; i < arg->u.list.count; i++)
			arg_clear(&arg->u.list.items[i]);
		free(arg->u.list.items);
		arg->u.list.items = NULL;
		arg->u.list.count = arg->u.list.cap = 0;
	} else {
		free(arg->u.str.data);
		arg->u.str.data = NULL;
	}
}

void
imap_parser_reset(struct imap_parser *p)
{
	free(p->tag);
	free(p->name);
	p->tag = p->name = NULL;
	p->uid = false;
	arg_clear(&p->root);
	p->stack[0] = &p->root;
	p->depth = 0;
	p->need_sep = false;
	p->nargs = 0;
	p->total = 0;
	p->lit_size = p->lit_left = 0;
	p->lit_sync = false;
	buf_free(&p->lit);
	p->error = NULL;
	p->deferred_error = NULL;
	p->recovery = IMAP_RECOVER_NONE;
	p->state = ST_START;
}

void
imap_parser_free(struct imap_parser **pp)
{
	struct imap_parser *p = *pp;

	if (p == NULL)
		return;
	imap_parser_reset(p);
	free(p->stack);
	free(p);
	*pp = NULL;
}

/* ---- characters (RFC 3501 §9) ---- */

static bool
is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/*
 * ATOM-CHAR, widened: list-wildcards, ']' (ASTRING-CHAR) and '\' (flags)
 * are let through for the command code to judge; 8-bit octets too, for
 * UTF-8 mailbox names.
 */
static bool
is_atom_char(unsigned char c)
{
	return !is_ctl(c) && c != ' ' && c != '(' && c != ')' && c != '{' && c != '"';
}

/* Tag: 1*<any ASTRING-CHAR except "+">. */
static bool
is_tag_char(unsigned char c)
{
	return is_atom_char(c) && c != '+' && c != '*' && c != '%' && c != '\\' &&
	       c < 0x80;
}

/* ---- errors and recovery ---- */

/*
 * Parses "{N}" or "{N+}" at s[0..len), with overflow checks. Returns 0,
 * -1 if malformed, -2 if the number does not fit in 64 bits.
 */
static int
literal_parse(const char *s, size_t len, uint64_t *size_r, bool *sync_r)
{
	size_t i = 1;
	uint64_t n = 0;

	if (len < 3 || s[0] != '{' || s[len - 1] != '}')
		return -1;
	*sync_r = s[len - 2] != '+';
	size_t end = len - (*sync_r ? 1 : 2);
	if (end <= 1)
		return -1;
	for (; i < end; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		if (n > (UINT64_MAX - d) / 10)
			return -2;
		n = n * 10 + d;
	}
	*size_r = n;
	return 0;
}

/* Finds a literal announcement at the end of the line, if any. */
static bool
literal_at_end(const char *line, size_t len, uint64_t *size_r, bool *sync_r)
{
	if (len < 3 || line[len - 1] != '}')
		return false;
	const char *open = memrchr(line, '{', len);
	if (open == NULL)
		return false;
	int r = literal_parse(open, len - (size_t)(open - line), size_r, sync_r);
	if (r == -2) {
		*size_r = UINT64_MAX;
		return true;
	}
	return r == 0;
}

/*
 * Decides what follows an error found in a line: if the line ends with a
 * non-synchronizing literal its bytes come anyway (RFC 7888 §4) and are
 * discarded, unless too large to wait for.
 */
static enum imap_parse_result
parser_fail_line(struct imap_parser *p, const char *line, size_t len, const char *reason)
{
	uint64_t size;
	bool sync;

	p->error = reason;
	p->recovery = IMAP_RECOVER_NONE;
	p->state = ST_START;
	if (literal_at_end(line, len, &size, &sync) && !sync) {
		if (size > p->lim.literal_max) {
			p->recovery = IMAP_RECOVER_CLOSE;
		} else {
			p->recovery = IMAP_RECOVER_DISCARD;
			p->lit_size = p->lit_left = size;
			p->lit_sync = false;
			p->state = size > 0 ? ST_DISCARD_LIT : ST_DISCARD_LINE;
		}
	}
	return IMAP_PARSE_ERROR;
}

void
imap_parser_reject_literal(struct imap_parser *p, const char *reason)
{
	if (p->state != ST_LITERAL)
		return;
	p->error = reason;
	buf_free(&p->lit);
	if (p->lit_sync) {
		/* The client waits for "+ " that will never come. */
		p->recovery = IMAP_RECOVER_NONE;
		p->state = ST_START;
	} else {
		p->recovery = IMAP_RECOVER_DISCARD;
		p->state = p->lit_left > 0 ? ST_DISCARD_LIT : ST_DISCARD_LINE;
	}
}

/* ---- building the argument tree ---- */

static struct imap_arg *
arg_add(struct imap_parser *p, enum imap_arg_type type, const char **error_r)
{
	struct imap_arg *list = p->stack[p->depth];

	if (++p->nargs > p->lim.args_max) {
		*error_r = "Too many arguments";
		return NULL;
	}
	if (list->u.list.count == list->u.list.cap) {
		size_t cap = list->u.list.cap == 0 ? 4 : list->u.list.cap * 2;
		list->u.list.items = xrealloc(list->u.list.items, cap * sizeof(struct imap_arg));
		list->u.list.cap = cap;
	}
	struct imap_arg *arg = &list->u.list.items[list->u.list.count++];
	memset(arg, 0, sizeof(*arg));
	arg->type = type;
	return arg;
}

static int
arg_add_str(struct imap_parser *p, enum imap_arg_type type, char *data, size_t len,
	    const char **error_r)
{
	struct imap_arg *arg = arg_add(p, type, error_r);

	if (arg == NULL) {
		free(data);
		return -1;
	}
	arg->u.str.data = data;
	arg->u.str.len = len;
	return 0;
}

/* ---- tokens within one line; each returns the new position or -1 ---- */

/* A quoted string (§9 quoted): only \" and \\ may be escaped. */
static ssize_t
token_quoted(struct imap_parser *p, const char *line, size_t len, size_t pos,
	     const char **error_r)
{
	struct buf b = BUF_INIT;

	for (pos++; pos < len; pos++) {
		unsigned char c = (unsigned char)line[pos];
		if (c == '"') {
			size_t n = b.len;
			char *s = b.data != NULL ? buf_steal(&b) : xstrdup("");
			if (arg_add_str(p, IMAP_ARG_STRING, s, n, error_r) < 0)
				return -1;
			return (ssize_t)pos + 1;
		}
		if (c == '\\') {
			if (++pos == len)
				break;
			c = (unsigned char)line[pos];
			if (c != '"' && c != '\\') {
				*error_r = "Invalid escape in quoted string";
				goto fail;
			}
		} else if (c == '\r' || c == '\n') {
			*error_r = "CR or LF in quoted string";
			goto fail;
		}
		if (b.len >= p->lim.atom_max) {
			*error_r = "Quoted string too long";
			goto fail;
		}
		buf_appendc(&b, (char)c);
	}
	*error_r = "Unterminated quoted string";
fail:
	buf_free(&b);
	return -1;
}

/*
 * The "[...]" part of an atom like BODY[HEADER.FIELDS (A B)]: everything
 * up to the closing ']' (quoted strings inside may hold one). Returns the
 * position after ']'.
 */
static ssize_t
section_end(const char *line, size_t len, size_t pos, const char **error_r)
{
	bool quoted = false;

	for (pos++; pos < len; pos++) {
		unsigned char c = (unsigned char)line[pos];
		if (is_ctl(c))
			break;
		if (quoted && c == '\\' && pos + 1 < len)
			pos++;
		else if (c == '"')
			quoted = !quoted;
		else if (c == ']' && !quoted)
			return (ssize_t)pos + 1;
	}
	*error_r = "Unterminated [section]";
	return -1;
}

static ssize_t
token_atom(struct imap_parser *p, const char *line, size_t len, size_t pos,
	   const char **error_r)
{
	size_t start = pos;

	while (pos < len && is_atom_char((unsigned char)line[pos])) {
		if (line[pos] == '[') {
			ssize_t end = section_end(line, len, pos, error_r);
			if (end < 0)
				return -1;
			pos = (size_t)end;
		} else {
			pos++;
		}
	}
	if (pos == start) {
		*error_r = "Invalid characters in atom";
		return -1;
	}
	if (pos - start > p->lim.atom_max) {
		*error_r = "Atom too long";
		return -1;
	}
	enum imap_arg_type type = pos - start == 3 && strncasecmp(line + start, "NIL", 3) == 0
		? IMAP_ARG_NIL : IMAP_ARG_ATOM;
	if (arg_add_str(p, type, xstrndup(line + start, pos - start), pos - start,
			error_r) < 0)
		return -1;
	return (ssize_t)pos;
}

/* "{N}" or "{N+}", which must end the line. Sets up ST_LITERAL. */
static int
token_literal(struct imap_parser *p, const char *line, size_t len, size_t pos,
	      const char **error_r)
{
	uint64_t size;
	bool sync;
	int r = literal_parse(line + pos, len - pos, &size, &sync);

	if (r == -1) {
		*error_r = "Invalid literal announcement";
		return -1;
	}
	/* Refused before a single byte is read. */
	if (r == -2 || size > p->lim.literal_max) {
		*error_r = "Literal too big";
		return -1;
	}
	if (size > p->lim.command_max - p->total) {
		*error_r = "Command too long";
		return -1;
	}
	p->total += size;
	p->lit_size = p->lit_left = size;
	p->lit_sync = sync;
	buf_reset(&p->lit);
	p->state = ST_LITERAL;
	return 0;
}

static int
list_open(struct imap_parser *p, const char **error_r)
{
	if (p->depth + 1 > p->lim.depth_max) {
		*error_r = "Too deeply nested lists";
		return -1;
	}
	struct imap_arg *arg = arg_add(p, IMAP_ARG_LIST, error_r);
	if (arg == NULL)
		return -1;
	p->stack[++p->depth] = arg;
	return 0;
}

/* One token at line[pos]; returns the new position, -1 on error. */
static ssize_t
token_next(struct imap_parser *p, const char *line, size_t len, size_t pos,
	   const char **error_r)
{
	char c = line[pos];

	if (c == ' ') {
		p->need_sep = false;
		return (ssize_t)pos + 1;
	}
	if (c == ')') {
		if (p->depth == 0) {
			*error_r = "Unexpected ')'";
			return -1;
		}
		p->depth--;
		p->need_sep = true;
		return (ssize_t)pos + 1;
	}
	if (p->need_sep) {
		*error_r = "Missing space between arguments";
		return -1;
	}
	if (c == '(')
		return list_open(p, error_r) < 0 ? -1 : (ssize_t)pos + 1;
	if (c == '{')
		return token_literal(p, line, len, pos, error_r) < 0 ? -1 : (ssize_t)len;
	p->need_sep = true;
	if (c == '"')
		return token_quoted(p, line, len, pos, error_r);
	return token_atom(p, line, len, pos, error_r);
}

static enum imap_parse_result
parse_args(struct imap_parser *p, const char *line, size_t len, size_t pos)
{
	const char *error = NULL;

	while (pos < len) {
		ssize_t next = token_next(p, line, len, pos, &error);
		if (next < 0)
			return parser_fail_line(p, line, len, error);
		if (p->state == ST_LITERAL)
			return IMAP_PARSE_NEED_LITERAL;
		pos = (size_t)next;
	}
	if (p->depth > 0)
		return parser_fail_line(p, line, len, "Missing ')'");
	p->state = ST_START;
	return IMAP_PARSE_DONE;
}

/* ---- the first line: tag SP command ---- */

/* A word up to SP or the end; returns its end. */
static size_t
word_end(const char *line, size_t len, size_t pos)
{
	while (pos < len && line[pos] != ' ')
		pos++;
	return pos;
}

static int
parse_name(struct imap_parser *p, const char *line, size_t len, size_t *pos,
	   char **name_r, const char **error_r)
{
	size_t start = *pos, end = word_end(line, len, start);

	if (end == start) {
		*error_r = "Missing command";
		return -1;
	}
	if (end - start > 32) {
		*error_r = "Command name too long";
		return -1;
	}
	for (size_t i = start; i < end; i++) {
		unsigned char c = (unsigned char)line[i];
		if (!is_atom_char(c) || c >= 0x80 || c == '[' || c == '\\') {
			*error_r = "Invalid characters in command name";
			return -1;
		}
	}
	*name_r = xstrndup(line + start, end - start);
	for (char *s = *name_r; *s != '\0'; s++)
		if (*s >= 'a' && *s <= 'z')
			*s = (char)(*s - 'a' + 'A');
	*pos = end < len ? end + 1 : end;
	(void)p;
	return 0;
}

/*
 * Read before anything else of a command's first line is looked at, so
 * that a BAD for the rest (a NUL, a command too long) is tagged: §7.1.3
 * keeps the untagged BAD for a command that cannot be told, and a client
 * waits for its tag's completion.
 */
size_t
imap_tag_len(const char *line, size_t len, size_t tag_max)
{
	size_t end = word_end(line, len, 0);

	if (end > tag_max)
		return 0;
	for (size_t i = 0; i < end; i++)
		if (!is_tag_char((unsigned char)line[i]))
			return 0;
	return end;
}

static enum imap_parse_result
parse_first_line(struct imap_parser *p, const char *line, size_t len)
{
	const char *error = NULL;
	size_t end = word_end(line, len, 0), pos;

	if (len == 0)
		return parser_fail_line(p, line, len, "Empty command line");
	if (p->tag == NULL)
		return parser_fail_line(p, line, len, "Invalid tag");
	pos = end < len ? end + 1 : end;
	if (parse_name(p, line, len, &pos, &p->name, &error) < 0)
		return parser_fail_line(p, line, len, error);
	if (strcmp(p->name, "UID") == 0) {
		free(p->name);
		p->name = NULL;
		if (parse_name(p, line, len, &pos, &p->name, &error) < 0)
			return parser_fail_line(p, line, len, pos >= len
						? "Missing command after UID" : error);
		p->uid = true;
	}
	p->state = ST_ARGS;
	return parse_args(p, line, len, pos);
}

/* ---- feeding ---- */

static void literal_finish(struct imap_parser *p);

/* A line of a command rejected earlier: only literals matter. */
static enum imap_parse_result
discard_line(struct imap_parser *p, const char *line, size_t len)
{
	uint64_t size;
	bool sync;

	if (literal_at_end(line, len, &size, &sync) && !sync) {
		if (size > p->lim.literal_max) {
			p->error = "Literal too big";
			p->recovery = IMAP_RECOVER_CLOSE;
			p->state = ST_START;
			return IMAP_PARSE_ERROR;
		}
		p->lit_size = p->lit_left = size;
		p->lit_sync = false;
		p->state = size > 0 ? ST_DISCARD_LIT : ST_DISCARD_LINE;
		return IMAP_PARSE_NEED_LITERAL;
	}
	p->state = ST_START;
	if (p->deferred_error != NULL) {
		p->error = p->deferred_error;
		p->recovery = IMAP_RECOVER_NONE;
		return IMAP_PARSE_ERROR;
	}
	return IMAP_PARSE_DISCARDED;
}

enum imap_parse_result
imap_parser_feed_line(struct imap_parser *p, const char *line, size_t len)
{
	/* A literal of size 0 needs no feed_literal call. */
	if (p->state == ST_LITERAL && p->lit_left == 0)
		literal_finish(p);
	if (p->state == ST_DISCARD_LIT && p->lit_left == 0)
		p->state = ST_DISCARD_LINE;
	if (p->state == ST_DISCARD_LINE)
		return discard_line(p, line, len);
	if (p->state == ST_LITERAL || p->state == ST_DISCARD_LIT) {
		/* The session broke the protocol; start afresh. */
		imap_parser_reset(p);
	}
	if (p->state == ST_START) {
		imap_parser_reset(p);
		size_t n = imap_tag_len(line, len, p->lim.tag_max);
		if (n > 0)
			p->tag = xstrndup(line, n);
	}
	if (memchr(line, '\0', len) != NULL)
		return parser_fail_line(p, line, len, "NUL in command");
	/* + 2 for the CRLF the session has stripped. */
	if (len + 2 > p->lim.command_max - p->total)
		return parser_fail_line(p, line, len, "Command too long");
	p->total += len + 2;
	if (p->state == ST_START)
		return parse_first_line(p, line, len);
	return parse_args(p, line, len, 0);
}

/* The literal is complete: it becomes a STRING and a token has ended. */
static void
literal_finish(struct imap_parser *p)
{
	const char *error = NULL;
	size_t n = p->lit.len;
	char *s = p->lit.data != NULL ? buf_steal(&p->lit) : xstrdup("");

	p->need_sep = true;
	p->state = ST_ARGS;
	if (arg_add_str(p, IMAP_ARG_STRING, s, n, &error) < 0) {
		/* The rest of the command still comes: throw it away. */
		p->deferred_error = error;
		p->state = ST_DISCARD_LINE;
		return;
	}
	struct imap_arg *list = p->stack[p->depth];
	list->u.list.items[list->u.list.count - 1].literal = true;
}

size_t
imap_parser_feed_literal(struct imap_parser *p, const void *data, size_t n)
{
	if (p->state != ST_LITERAL && p->state != ST_DISCARD_LIT)
		return 0;
	if (n > p->lit_left)
		n = (size_t)p->lit_left;
	p->lit_left -= n;
	if (p->state == ST_LITERAL) {
		if (memchr(data, '\0', n) != NULL) {
			/* RFC 3501 §4.3: NUL is not allowed in a literal. */
			p->deferred_error = "NUL in literal";
			buf_free(&p->lit);
			p->state = ST_DISCARD_LIT;
		} else {
			buf_append(&p->lit, data, n);
		}
	}
	if (p->lit_left == 0) {
		if (p->state == ST_LITERAL)
			literal_finish(p);
		else
			p->state = ST_DISCARD_LINE;
	}
	return n;
}

/* ---- accessors ---- */

uint64_t
imap_parser_literal_size(const struct imap_parser *p)
{
	return p->lit_size;
}

bool
imap_parser_literal_sync(const struct imap_parser *p)
{
	return p->lit_sync;
}

uint64_t
imap_parser_literal_left(const struct imap_parser *p)
{
	return p->state == ST_LITERAL || p->state == ST_DISCARD_LIT ? p->lit_left : 0;
}

const char *
imap_parser_error(const struct imap_parser *p)
{
	return p->error;
}

enum imap_parse_recovery
imap_parser_recovery(const struct imap_parser *p)
{
	return p->recovery;
}

const char *
imap_parser_tag(const struct imap_parser *p)
{
	return p->tag;
}

const char *
imap_parser_command(const struct imap_parser *p)
{
	return p->name;
}

bool
imap_parser_uid(const struct imap_parser *p)
{
	return p->uid;
}

const struct imap_arg *
imap_parser_args(const struct imap_parser *p, size_t *count_r)
{
	*count_r = p->root.u.list.count;
	return p->root.u.list.items;
}

bool
imap_arg_get_astring(const struct imap_arg *arg, const char **str_r, size_t *len_r)
{
	if (arg == NULL || arg->type == IMAP_ARG_LIST)
		return false;
	*str_r = arg->u.str.data;
	*len_r = arg->u.str.len;
	return true;
}

bool
imap_arg_get_nstring(const struct imap_arg *arg, const char **str_r, size_t *len_r)
{
	if (arg == NULL)
		return false;
	if (arg->type == IMAP_ARG_NIL) {
		*str_r = NULL;
		*len_r = 0;
		return true;
	}
	if (arg->type != IMAP_ARG_STRING)
		return false;
	*str_r = arg->u.str.data;
	*len_r = arg->u.str.len;
	return true;
}

bool
imap_arg_atom_equals(const struct imap_arg *arg, const char *s)
{
	return arg != NULL && arg->type == IMAP_ARG_ATOM && strcasecmp(arg->u.str.data, s) == 0;
}
