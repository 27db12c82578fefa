#ifndef TERN_SMTP_SMTP_PARSE_H
#define TERN_SMTP_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>

/*
 * The SMTP command-line grammar (RFC 5321 §4.1): the verb, and the
 * reverse-path / forward-path with ESMTP parameters of MAIL and RCPT.
 * Pure functions on a string, so that they can be tested and fuzzed alone.
 */

#define SMTP_VERB_MAX 15
#define SMTP_PARAMS_MAX 16
/* §4.5.3.1: the sizes a server must accept; longer ones are refused. */
#define SMTP_LOCAL_PART_MAX 64
#define SMTP_DOMAIN_MAX 255
#define SMTP_PATH_MAX 256

/*
 * Splits "VERB args" into the upper-cased verb (letters only, at most
 * SMTP_VERB_MAX) and the arguments (a pointer into line, blanks around them
 * removed, "" when none). -1 if the line does not start with a verb.
 */
int smtp_parse_command(char *line, char verb_r[SMTP_VERB_MAX + 1], char **args_r);

struct smtp_param {
	const char *keyword; /* as sent; compare without case */
	const char *value;   /* NULL when the parameter has no "=value" */
};

struct smtp_path {
	/*
	 * The mailbox: "local@domain" with the local part unquoted when quotes
	 * are not needed ("a.b"@x is a.b@x), "" for the null path <>, and
	 * "postmaster" for RCPT TO:<postmaster>. Source routes are dropped.
	 */
	char *address;
	char *param_text; /* storage the params point into */
	struct smtp_param params[SMTP_PARAMS_MAX];
	size_t nparams;
};

enum smtp_path_kind {
	SMTP_PATH_MAIL, /* "FROM:" reverse-path, may be <> */
	SMTP_PATH_RCPT, /* "TO:" forward-path, may be <postmaster> */
};

/*
 * Parses the arguments of MAIL or RCPT ("FROM:<a@b> SIZE=10"). A space
 * after the colon is tolerated. On error returns -1 and sets *error_r to
 * the complete reply to send (a static string, "501 5.1.7 ...").
 */
int smtp_parse_path(const char *args, enum smtp_path_kind kind, struct smtp_path *path_r,
		    const char **error_r);
/* Frees what smtp_parse_path allocated; the struct may be reused. */
void smtp_path_clear(struct smtp_path *path);

/* Header fields smtp_header_scan looks for. */
#define SMTP_HDR_MESSAGE_ID 0x1u
#define SMTP_HDR_DATE 0x2u

/*
 * Looks through the start of a message for its header section (RFC 5322
 * §2.1: it ends at the first empty line). Returns the length of the header
 * section with that empty line, or 0 if the n bytes do not hold all of it.
 * Either way *fields_r gets the SMTP_HDR_* of the fields (names compared
 * without case) on the complete lines seen.
 */
size_t smtp_header_scan(const char *p, size_t n, unsigned *fields_r);

/* The domain of an address (after the last '@'), or "" if none. */
const char *smtp_address_domain(const char *address);

#endif
