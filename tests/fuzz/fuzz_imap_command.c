/*
 * Fuzz target: bytes as an IMAP client would send them, through the command
 * parser as imap_session.c drives it (lines, literals, recovery after a
 * BAD), then through what reads a command's arguments: sequence sets,
 * FETCH sections and SEARCH programs, each program matched against three
 * messages. Checks the parser's promises: every string NUL-terminated at
 * its length with no NUL inside.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap/imap_fetch_section.h"
#include "imap/imap_parse.h"
#include "imap/imap_search.h"
#include "imap/imap_seqset.h"
#include "mime/mime_search.h"

static void
check_string(const struct imap_arg *a)
{
	if (a->u.str.data[a->u.str.len] != '\0' || memchr(a->u.str.data, '\0', a->u.str.len))
		abort();
}

static void
check_args(const struct imap_arg *args, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (args[i].type == IMAP_ARG_LIST)
			check_args(args[i].u.list.items, args[i].u.list.count);
		else
			check_string(&args[i]);
	}
}

static void
try_seqset(const struct imap_arg *a)
{
	const char *s, *error;
	size_t len;
	struct imap_seqset *set = NULL;
	if (!imap_arg_get_astring(a, &s, &len) || imap_seqset_parse(s, len, 1000, &set, &error) < 0)
		return;
	struct imap_seqset_iter it;
	uint32_t n, seen = 0;
	imap_seqset_iter_init(&it, set, 50);
	while (imap_seqset_iter_next(&it, &n) && seen++ < 1000)
		;
	imap_seqset_contains(set, 7, 50);
	imap_seqset_free(&set);
}

static void
try_section(const struct imap_arg *a)
{
	if (a->type != IMAP_ARG_ATOM)
		return;
	const char *open = strchr(a->u.str.data, '[');
	if (open == NULL)
		return;
	struct imap_section sec;
	const char *end, *error;
	memset(&sec, 0, sizeof(sec));
	if (imap_section_parse(open + 1, &sec, &end, &error) == 0)
		imap_section_clear(&sec);
}

/* The messages a SEARCH program is matched against, in LF form. */
static const char *const search_texts[] = {
	"From: Alice <alice@example.org>\nTo: bob@example.net\nSubject: report\n"
	"Date: Mon, 05 Jan 2026 10:00:00 +0100\n\nThe numbers look good.\n",
	"Subject: =?UTF-8?B?UsOpdW5pb24=?=\nMIME-Version: 1.0\n"
	"Content-Type: multipart/mixed; boundary=b\n\n--b\n"
	"Content-Transfer-Encoding: base64\n\nY2Fmw6k=\n--b--\n",
	"",
};

struct search_load {
	const char *text;
	struct mime_search *ms;
};

static struct mime_search *
search_load(void *ctx)
{
	struct search_load *l = ctx;
	l->ms = mime_search_new(l->text, strlen(l->text));
	return l->ms;
}

static void
try_search(const struct imap_arg *args, size_t argc)
{
	struct imap_search *prog = NULL;
	bool badcharset;
	const char *error;
	if (imap_search_parse(args, argc, &prog, &badcharset, &error) < 0)
		return;
	static const char *const flags[] = { "S", "DFRST", "" };
	for (uint32_t i = 0; i < 3; i++) {
		struct search_load l = { search_texts[i], NULL };
		struct imap_search_msg m = {
			.seq = i + 1, .uid = 10 * i + 3, .seq_max = 3, .uid_max = 23,
			.flags = flags[i], .keywords = i == 1 ? "$Junk work" : "",
			.internaldate = 1767603600 + 86400 * (time_t)i, .size = 100 * i,
			.recent = i == 2, .fields = NULL, .load = search_load, .load_ctx = &l,
		};
		imap_search_match(prog, &m);
		mime_search_free(&l.ms);
	}
	imap_search_free(&prog);
}

static void
try_command(struct imap_parser *p)
{
	size_t argc;
	const struct imap_arg *args = imap_parser_args(p, &argc);
	check_args(args, argc);
	const char *cmd = imap_parser_command(p);
	if (strcmp(cmd, "SEARCH") == 0) {
		try_search(args, argc);
		return;
	}
	if (argc > 0)
		try_seqset(&args[0]);
	if (strcmp(cmd, "FETCH") == 0 && argc > 1) {
		if (args[1].type == IMAP_ARG_LIST)
			for (size_t i = 0; i < args[1].u.list.count; i++)
				try_section(&args[1].u.list.items[i]);
		else
			try_section(&args[1]);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The first byte picks small limits (to reach every refusal) or the server's. */
	struct imap_parse_limits small = { .tag_max = 8, .atom_max = 32, .depth_max = 4,
					   .args_max = 64, .literal_max = 64, .command_max = 256 };
	if (size == 0)
		return 0;
	struct imap_parser *p = imap_parser_new(data[0] & 1 ? &small : NULL);
	const char *in = (const char *)data + 1, *end = (const char *)data + size;
	bool closed = false;
	while (in < end && !closed) {
		const char *lf = memchr(in, '\n', (size_t)(end - in));
		const char *line_end = lf != NULL ? lf : end;
		size_t len = (size_t)(line_end - in);
		if (len > 0 && in[len - 1] == '\r')
			len--;
		enum imap_parse_result r = imap_parser_feed_line(p, in, len);
		in = lf != NULL ? lf + 1 : end;
		while (r == IMAP_PARSE_NEED_LITERAL) {
			uint64_t left = imap_parser_literal_left(p);
			/* The session refuses big literals outside APPEND this way. */
			if (imap_parser_literal_size(p) > 1000 && imap_parser_literal_sync(p) &&
			    imap_parser_command(p) != NULL &&
			    strcmp(imap_parser_command(p), "APPEND") != 0) {
				imap_parser_reject_literal(p, "too big");
				r = IMAP_PARSE_ERROR;
				break;
			}
			size_t n = left < (uint64_t)(end - in) ? (size_t)left : (size_t)(end - in);
			in += imap_parser_feed_literal(p, in, n);
			if (imap_parser_literal_left(p) > 0)
				break; /* the input ended inside the literal */
			lf = memchr(in, '\n', (size_t)(end - in));
			line_end = lf != NULL ? lf : end;
			len = (size_t)(line_end - in);
			if (len > 0 && in[len - 1] == '\r')
				len--;
			r = imap_parser_feed_line(p, in, len);
			in = lf != NULL ? lf + 1 : end;
		}
		if (r == IMAP_PARSE_DONE) {
			try_command(p);
		} else if (r == IMAP_PARSE_ERROR) {
			if (strlen(imap_parser_error(p)) == 0)
				abort();
			closed = imap_parser_recovery(p) == IMAP_RECOVER_CLOSE;
		}
	}
	imap_parser_free(&p);
	return 0;
}
