#ifndef TERN_IMAP_IMAP_PARSE_H
#define TERN_IMAP_IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The IMAP4rev1 command parser (RFC 3501 §9, LITERAL+ of RFC 7888).
 * Pure and incremental: the session reads one line (without CRLF) and feeds
 * it; when the line ends with a literal announcement "{N}" or "{N+}" the
 * parser answers IMAP_PARSE_NEED_LITERAL, the session (after sending "+ "
 * for a synchronizing literal) feeds exactly N raw bytes, then the next
 * line, which continues the same command.
 *
 *	p = imap_parser_new(NULL);
 *	r = imap_parser_feed_line(p, line, len);
 *	while (r == IMAP_PARSE_NEED_LITERAL) {
 *		if (imap_parser_literal_sync(p)) send "+ OK";
 *		while (imap_parser_literal_left(p) > 0)
 *			imap_parser_feed_literal(p, bytes, n);  (returns consumed)
 *		r = imap_parser_feed_line(p, next_line, len);
 *	}
 *
 * Results:
 *  - DONE: a whole command; tag, name, UID flag and arguments can be read
 *    until the next feed_line or reset.
 *  - ERROR: answer "TAG BAD reason" (or "* BAD reason" when the tag is
 *    NULL), then look at imap_parser_recovery():
 *      NONE:    nothing more of this command will come; next line is new.
 *      DISCARD: the client will send the bytes of a non-synchronizing
 *               literal anyway: keep feeding literal bytes and lines as
 *               above; the parser throws them away and ends with
 *               IMAP_PARSE_DISCARDED (answer nothing more).
 *      CLOSE:   the client announced a non-synchronizing literal larger
 *               than literal_max: send "* BYE" and close (RFC 7888 §4).
 *    A NUL inside a literal is reported as ERROR only once the whole
 *    command has been read (its bytes are on their way anyway).
 *  - DISCARDED: the end of a command rejected earlier.
 *
 * The next feed_line after DONE, ERROR (recovery NONE) or DISCARDED starts
 * a new command by itself; imap_parser_reset() forces that at any time.
 *
 * Tokens (RFC 3501 §9):
 *  - ATOM: atom characters; '*', '%', ']' and '\' are accepted (list
 *    wildcards, flags like \Seen, astring) and left to the command code.
 *    An atom containing '[' is read up to the matching ']' including
 *    spaces, parentheses and quoted strings, and goes on after it, so that
 *    "BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>" and "[Gmail]/Sent" are
 *    each one ATOM, passed through as sent.
 *  - NIL: the atom NIL in any case (str holds it as sent, so it may also
 *    be taken as an astring, the mailbox "NIL").
 *  - STRING: a quoted string (escapes \" and \\ only, no CR, LF or NUL) or
 *    a literal (any octet but NUL); binary-safe with its length.
 *  - LIST: "(" ... ")", nested up to depth_max.
 * The command name is upper-cased. "UID FETCH ..." is handled here: the
 * name becomes "FETCH" and imap_parser_uid() is true.
 */

enum imap_arg_type {
	IMAP_ARG_ATOM,
	IMAP_ARG_STRING,
	IMAP_ARG_NIL,
	IMAP_ARG_LIST,
};

struct imap_arg {
	enum imap_arg_type type;
	bool literal; /* a STRING that came as a literal */
	union {
		struct {
			char *data; /* NUL-terminated, NUL never inside */
			size_t len;
		} str;          /* ATOM, STRING, NIL */
		struct {
			struct imap_arg *items;
			size_t count;
			size_t cap;
		} list;         /* LIST */
	} u;
};

struct imap_parse_limits {
	size_t tag_max;      /* characters of a tag */
	size_t atom_max;     /* characters of an atom or a quoted string */
	size_t depth_max;    /* nesting of parentheses */
	size_t args_max;     /* tokens and lists in one command, all levels */
	uint64_t literal_max;  /* bytes of one literal */
	uint64_t command_max;  /* bytes of all lines and literals of a command */
};

#define IMAP_PARSE_TAG_MAX 64
#define IMAP_PARSE_ATOM_MAX 8192
#define IMAP_PARSE_DEPTH_MAX 32
#define IMAP_PARSE_ARGS_MAX 100000
#define IMAP_PARSE_LITERAL_MAX (64u * 1024 * 1024)
#define IMAP_PARSE_COMMAND_MAX (IMAP_PARSE_LITERAL_MAX + 1024u * 1024)

enum imap_parse_result {
	IMAP_PARSE_DONE,
	IMAP_PARSE_NEED_LITERAL,
	IMAP_PARSE_ERROR,
	IMAP_PARSE_DISCARDED,
};

enum imap_parse_recovery {
	IMAP_RECOVER_NONE,
	IMAP_RECOVER_DISCARD,
	IMAP_RECOVER_CLOSE,
};

struct imap_parser;

/* The defaults above. */
void imap_parse_limits_default(struct imap_parse_limits *lim);

/* limits may be NULL for the defaults; they are copied. */
struct imap_parser *imap_parser_new(const struct imap_parse_limits *limits);
void imap_parser_free(struct imap_parser **p);
/* Forgets the current command (and any literal or discarding under way). */
void imap_parser_reset(struct imap_parser *p);

enum imap_parse_result imap_parser_feed_line(struct imap_parser *p, const char *line,
					     size_t len);
/*
 * The length of the tag that begins line (§9 tag, up to the first SP), 0
 * if it does not begin with one of at most tag_max characters. The parser
 * reads it before anything else of a command's first line, and so can a
 * session that drops a line too long: a BAD for the rest is then tagged.
 */
size_t imap_tag_len(const char *line, size_t len, size_t tag_max);
/*
 * Feeds raw bytes of the announced literal; returns how many were taken
 * (at most imap_parser_literal_left). Then feed the next line.
 */
size_t imap_parser_feed_literal(struct imap_parser *p, const void *data, size_t n);

/* The literal announced by the last NEED_LITERAL. */
uint64_t imap_parser_literal_size(const struct imap_parser *p);
/* true for "{N}": the client waits for "+ " before sending the bytes. */
bool imap_parser_literal_sync(const struct imap_parser *p);
/* Bytes of the current literal still to be fed. */
uint64_t imap_parser_literal_left(const struct imap_parser *p);
/*
 * The session refuses the literal just announced (a per-command size,
 * e.g. more than 1 MiB outside APPEND). Turns the command into an ERROR
 * with reason; see imap_parser_recovery() for what follows.
 */
void imap_parser_reject_literal(struct imap_parser *p, const char *reason);

/* After ERROR: the reason for the BAD reply (static or parser-owned). */
const char *imap_parser_error(const struct imap_parser *p);
enum imap_parse_recovery imap_parser_recovery(const struct imap_parser *p);

/* NULL until read. Valid until the next feed_line or reset. */
const char *imap_parser_tag(const struct imap_parser *p);
/* Upper-cased; "FETCH" for "UID FETCH". NULL until read. */
const char *imap_parser_command(const struct imap_parser *p);
bool imap_parser_uid(const struct imap_parser *p);
/* The arguments after the command name (after DONE). */
const struct imap_arg *imap_parser_args(const struct imap_parser *p, size_t *count_r);

/* An astring (ATOM, STRING or NIL as "NIL"): true and the text. */
bool imap_arg_get_astring(const struct imap_arg *arg, const char **str_r, size_t *len_r);
/* A nstring: STRING, or NIL giving NULL. */
bool imap_arg_get_nstring(const struct imap_arg *arg, const char **str_r, size_t *len_r);
/* True if arg is an ATOM equal to s without regard to case. */
bool imap_arg_atom_equals(const struct imap_arg *arg, const char *s);

#endif
