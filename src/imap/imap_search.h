#ifndef TERN_IMAP_IMAP_SEARCH_H
#define TERN_IMAP_IMAP_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/*
 * The SEARCH program (RFC 3501 §6.4.4, §9 search-key): parsed once from
 * the command's arguments into a tree, bounded in depth and size, then
 * matched against each message.
 *
 * Matching is two passes so that a message file is opened only when its
 * text decides: the first pass answers from the index alone (flags,
 * keywords, size, internal date, numbers, and the header fields the index
 * keeps, imap_search_msg.fields), other text keys counting as unknown
 * with three-valued logic; only if the answer is still unknown is the
 * message loaded (once) and the program run again, cheap keys first and
 * short-circuiting.
 *
 *	if (imap_search_parse(args, argc, &prog, &badcharset, &why) < 0)
 *		BAD why
 *	else if (badcharset) NO [BADCHARSET ...]
 *	for each message: imap_search_match(prog, &msg)
 *	imap_search_free(&prog);
 */

struct imap_arg;
struct mime_search;
struct imap_search;

/* RETURN options of ESEARCH (RFC 4731 §3.1). */
enum imap_search_return {
	IMAP_SEARCH_RET_MIN = 1 << 0,
	IMAP_SEARCH_RET_MAX = 1 << 1,
	IMAP_SEARCH_RET_ALL = 1 << 2,
	IMAP_SEARCH_RET_COUNT = 1 << 3,
};

/* What the program is matched against: one message of the mailbox. */
struct imap_search_msg {
	uint32_t seq, uid;
	uint32_t seq_max, uid_max; /* what "*" stands for; 0 in an empty mailbox */
	const char *flags;         /* system flags as index letters, "DFRST" */
	const char *keywords;      /* space-separated */
	time_t internaldate;
	uint64_t size;             /* RFC822.SIZE */
	bool recent;
	/* The kept folded header fields (mime_search_fields), or NULL: a key
	   on one of them is then answered without loading the text. */
	const char *fields;
	/*
	 * The message's text for the text keys and SENT*, asked for at most
	 * once; NULL if it cannot be had (then the match answers -1). The
	 * caller keeps and frees what it returns.
	 */
	struct mime_search *(*load)(void *ctx);
	void *load_ctx;
};

/*
 * Parses "[RETURN (...)] [CHARSET x] key...". -1 with a static reason for
 * BAD on a malformed program. A charset other than UTF-8 and US-ASCII
 * parses (0) with *badcharset_r true: the answer is NO [BADCHARSET].
 */
int imap_search_parse(const struct imap_arg *args, size_t argc,
		      struct imap_search **prog_r, bool *badcharset_r, const char **error_r);
void imap_search_free(struct imap_search **prog);

/* Whether a key of the program is on a field mime_search_fields keeps. */
bool imap_search_wants_fields(const struct imap_search *prog);

/* 1 matches, 0 does not, -1 the message was needed and load gave NULL. */
int imap_search_match(struct imap_search *prog, const struct imap_search_msg *m);

/*
 * ESEARCH: true if the program began with RETURN (RFC 4731), with the
 * options asked for in *ret_r ("RETURN ()" means ALL).
 */
bool imap_search_esearch(const struct imap_search *prog, unsigned *ret_r);

#endif
