#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "imap/imap_parse.h"
#include "imap/imap_search.h"
#include "mime/mime_search.h"
#include "test.h"

/* A fake message whose text is counted when loaded. */
struct fake {
	const char *text;
	struct mime_search *ms;
	int loads;
};

static struct mime_search *
fake_load(void *ctx)
{
	struct fake *f = ctx;
	f->loads++;
	if (f->text == NULL)
		return NULL;
	f->ms = mime_search_new(f->text, strlen(f->text));
	return f->ms;
}

static const char msg_text[] =
	"From: Alice <alice@example.org>\n"
	"To: bob@example.net\n"
	"Subject: =?ISO-8859-1?Q?R=E9union?= tomorrow\n"
	"Date: Tue, 10 Mar 2026 08:00:00 +0100\n"
	"X-Tag: blue\n"
	"\n"
	"Bring the slides.\n";

/* 2026-03-10 12:00:00 UTC */
#define T_0310 1773144000

static struct imap_search_msg
fake_msg(struct fake *f)
{
	struct imap_search_msg m = {
		.seq = 3, .uid = 30, .seq_max = 5, .uid_max = 50,
		.flags = "FS", .keywords = "$Forwarded Work",
		.internaldate = T_0310, .size = 1000, .recent = true,
		.load = fake_load, .load_ctx = f,
	};
	return m;
}

/*
 * Parses "SEARCH <program>" and matches it once: 1, 0, -1 as
 * imap_search_match, or -2 for BAD, -3 for BADCHARSET. *loads_r: times
 * the text was loaded.
 */
static int
run(const char *program, const char *text, int *loads_r)
{
	struct imap_parser *p = imap_parser_new(NULL);
	char *line = NULL;
	size_t n = strlen("t SEARCH ") + strlen(program) + 1;
	line = malloc(n);
	snprintf(line, n, "t SEARCH %s", program);
	int r = -2;
	if (imap_parser_feed_line(p, line, strlen(line)) == IMAP_PARSE_DONE) {
		size_t argc;
		const struct imap_arg *args = imap_parser_args(p, &argc);
		struct imap_search *prog = NULL;
		bool badcs = false;
		const char *why = NULL;
		if (imap_search_parse(args, argc, &prog, &badcs, &why) == 0) {
			struct fake f = { .text = text };
			struct imap_search_msg m = fake_msg(&f);
			r = badcs ? -3 : imap_search_match(prog, &m);
			mime_search_free(&f.ms);
			if (loads_r != NULL)
				*loads_r = f.loads;
			imap_search_free(&prog);
			TEST_ASSERT(prog == NULL);
		} else {
			TEST_ASSERT(why != NULL && why[0] != '\0');
		}
	}
	free(line);
	imap_parser_free(&p);
	return r;
}

static int
yes(const char *program)
{
	return run(program, msg_text, NULL);
}

static void
test_index_keys(void)
{
	TEST_ASSERT(yes("ALL") == 1);
	TEST_ASSERT(yes("FLAGGED") == 1 && yes("SEEN") == 1);
	TEST_ASSERT(yes("ANSWERED") == 0 && yes("DELETED") == 0 && yes("DRAFT") == 0);
	TEST_ASSERT(yes("UNANSWERED") == 1 && yes("UNDELETED") == 1 && yes("UNDRAFT") == 1);
	TEST_ASSERT(yes("UNFLAGGED") == 0 && yes("UNSEEN") == 0);
	TEST_ASSERT(yes("seen flagged") == 1);
	TEST_ASSERT(yes("RECENT") == 1 && yes("OLD") == 0);
	/* NEW is RECENT and UNSEEN: this one is seen. */
	TEST_ASSERT(yes("NEW") == 0);
	TEST_ASSERT(yes("LARGER 999") == 1 && yes("LARGER 1000") == 0);
	TEST_ASSERT(yes("SMALLER 1001") == 1 && yes("SMALLER 1000") == 0);
	TEST_ASSERT(yes("3") == 1 && yes("1:2,4:*") == 0 && yes("2:4") == 1);
	TEST_ASSERT(yes("*") == 0 && yes("5:*") == 0);
	TEST_ASSERT(yes("UID 30") == 1 && yes("UID 31:*") == 0 && yes("UID 1:*") == 1);
}

/* Keywords cannot reach the wire before STORE keeps them: tested here. */
static void
test_keywords(void)
{
	TEST_ASSERT(yes("KEYWORD Work") == 1);
	TEST_ASSERT(yes("KEYWORD work") == 1);
	TEST_ASSERT(yes("KEYWORD $forwarded") == 1);
	TEST_ASSERT(yes("KEYWORD Wor") == 0);
	TEST_ASSERT(yes("KEYWORD Other") == 0);
	TEST_ASSERT(yes("UNKEYWORD Other") == 1);
	TEST_ASSERT(yes("UNKEYWORD WORK") == 0);
	TEST_ASSERT(yes("KEYWORD \\Seen") == -2);
	TEST_ASSERT(yes("KEYWORD") == -2);
}

static void
test_dates(void)
{
	TEST_ASSERT(yes("ON 10-Mar-2026") == 1);
	TEST_ASSERT(yes("ON \"10-mar-2026\"") == 1);
	TEST_ASSERT(yes("ON 9-Mar-2026") == 0);
	TEST_ASSERT(yes("BEFORE 10-Mar-2026") == 0 && yes("BEFORE 11-Mar-2026") == 1);
	TEST_ASSERT(yes("SINCE 10-Mar-2026") == 1 && yes("SINCE 11-Mar-2026") == 0);
	TEST_ASSERT(yes("SINCE 1-Jan-1970") == 1);
	/* The Date: header says the 10th (in +0100). */
	TEST_ASSERT(yes("SENTON 10-Mar-2026") == 1 && yes("SENTON 9-Mar-2026") == 0);
	TEST_ASSERT(yes("SENTBEFORE 10-Mar-2026") == 0 && yes("SENTBEFORE 11-Mar-2026") == 1);
	TEST_ASSERT(yes("SENTSINCE 10-Mar-2026") == 1 && yes("SENTSINCE 11-Mar-2026") == 0);
	TEST_ASSERT(run("SENTSINCE 1-Jan-1970", "Subject: no date\n\nx\n", NULL) == 0);
	TEST_ASSERT(run("NOT SENTSINCE 1-Jan-1970", "Subject: no date\n\nx\n", NULL) == 1);
	const char *bad[] = { "ON 32-Jan-2026", "ON 0-Jan-2026", "ON 10-Foo-2026",
			      "ON 10-Mar-26", "ON 2026-03-10", "ON 100-Mar-2026",
			      "ON 31-Apr-2026", "ON", "ON (1-Jan-2026)" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		TEST_ASSERT(yes(bad[i]) == -2);
}

static void
test_text_keys(void)
{
	TEST_ASSERT(yes("FROM alice") == 1 && yes("FROM bob") == 0);
	TEST_ASSERT(yes("TO BOB") == 1 && yes("CC bob") == 0 && yes("BCC bob") == 0);
	TEST_ASSERT(yes("SUBJECT \"r\xc3\xa9union tomorrow\"") == 1);
	TEST_ASSERT(yes("SUBJECT R\xc3\x89UNION") == 1);
	TEST_ASSERT(yes("HEADER X-Tag blue") == 1 && yes("HEADER x-tag \"\"") == 1);
	TEST_ASSERT(yes("HEADER X-Other \"\"") == 0);
	TEST_ASSERT(yes("BODY slides") == 1 && yes("BODY alice") == 0);
	TEST_ASSERT(yes("TEXT slides") == 1 && yes("TEXT alice") == 1 && yes("TEXT zebra") == 0);
	TEST_ASSERT(yes("HEADER \"\" x") == -2 && yes("HEADER X-Tag") == -2);
}

static void
test_logic(void)
{
	TEST_ASSERT(yes("NOT SEEN") == 0 && yes("NOT DELETED") == 1);
	TEST_ASSERT(yes("OR DELETED SEEN") == 1 && yes("OR DELETED DRAFT") == 0);
	TEST_ASSERT(yes("(SEEN FLAGGED)") == 1 && yes("(SEEN DELETED)") == 0);
	TEST_ASSERT(yes("OR (DELETED SEEN) (FROM alice BODY slides)") == 1);
	TEST_ASSERT(yes("NOT (OR DELETED (NOT FROM alice))") == 1);
	TEST_ASSERT(yes("NOT NOT NOT SEEN") == 0);
	TEST_ASSERT(yes("OR NOT SEEN NOT BODY slides") == 0);
}

/* The text is loaded only when the index cannot decide, and once. */
static void
test_laziness(void)
{
	int loads = -1;
	TEST_ASSERT(run("DELETED BODY slides", msg_text, &loads) == 0 && loads == 0);
	TEST_ASSERT(run("BODY slides DELETED", msg_text, &loads) == 0 && loads == 0);
	TEST_ASSERT(run("OR BODY x SEEN", msg_text, &loads) == 1 && loads == 0);
	/* Not decided by the first key, but by the NOT of the second. */
	TEST_ASSERT(run("(OR FLAGGED BODY a) (NOT (OR SEEN BODY b))", msg_text, &loads) == 0 &&
		    loads == 0);
	TEST_ASSERT(run("FROM alice BODY slides SUBJECT r\xc3\xa9union", msg_text, &loads) == 1 &&
		    loads == 1);
	TEST_ASSERT(run("SENTON 10-Mar-2026", msg_text, &loads) == 1 && loads == 1);
	/* A message that cannot be loaded: -1 for the caller to judge. */
	TEST_ASSERT(run("BODY x", NULL, &loads) == -1 && loads == 1);
	TEST_ASSERT(run("SEEN OR BODY x DELETED", NULL, &loads) == -1);
	TEST_ASSERT(run("UNSEEN BODY x", NULL, &loads) == 0 && loads == 0);
}

static void
test_malformed(void)
{
	const char *bad[] = { "", "FOO", "SEEN FOO", "()", "(SEEN", "NOT", "OR SEEN",
			      "LARGER", "LARGER x", "LARGER -1", "LARGER 12345678901234567890",
			      "UID", "UID x", "0", "1:0", "$", "\"SEEN\"", "CHARSET UTF-8",
			      "FROM", "RETURN (FOO) ALL", "RETURN MIN ALL" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = yes(bad[i]);
		if (r != -2)
			fprintf(stderr, "not BAD: '%s' gave %d\n", bad[i], r);
		TEST_ASSERT(r == -2);
	}
	/* Too deep, too many keys: a clear BAD, not a crash. */
	struct buf b = BUF_INIT;
	for (int i = 0; i < 200; i++)
		buf_appends(&b, "NOT ");
	buf_appends(&b, "SEEN");
	TEST_ASSERT(yes(b.data) == -2);
	buf_reset(&b);
	for (int i = 0; i < 5000; i++)
		buf_appends(&b, "SEEN ");
	TEST_ASSERT(yes(b.data) == -2);
	buf_reset(&b);
	for (int i = 0; i < 1000; i++)
		buf_appends(&b, "SEEN ");
	TEST_ASSERT(yes(b.data) == 1);
	buf_free(&b);
}

static void
test_charset(void)
{
	TEST_ASSERT(yes("CHARSET UTF-8 SUBJECT r\xc3\xa9union") == 1);
	TEST_ASSERT(yes("charset us-ascii FROM alice") == 1);
	TEST_ASSERT(yes("CHARSET \"utf-8\" SEEN") == 1);
	TEST_ASSERT(yes("CHARSET ISO-8859-1 SEEN") == -3);
	TEST_ASSERT(yes("CHARSET KOI8-R FROM x") == -3);
}

static void
test_return(void)
{
	struct imap_parser *p = imap_parser_new(NULL);
	const char *lines[] = { "t SEARCH RETURN (MIN COUNT) SEEN", "t SEARCH RETURN () SEEN",
				"t SEARCH SEEN" };
	unsigned want[] = { IMAP_SEARCH_RET_MIN | IMAP_SEARCH_RET_COUNT, IMAP_SEARCH_RET_ALL,
			    0 };
	for (size_t i = 0; i < 3; i++) {
		TEST_ASSERT(imap_parser_feed_line(p, lines[i], strlen(lines[i])) ==
			    IMAP_PARSE_DONE);
		size_t argc;
		const struct imap_arg *args = imap_parser_args(p, &argc);
		struct imap_search *prog = NULL;
		bool badcs;
		const char *why;
		TEST_ASSERT(imap_search_parse(args, argc, &prog, &badcs, &why) == 0);
		unsigned ret = 99;
		TEST_ASSERT(imap_search_esearch(prog, &ret) == (i < 2));
		TEST_ASSERT(ret == want[i]);
		imap_search_free(&prog);
	}
	imap_parser_free(&p);
}

int
main(void)
{
	test_run("index_keys", test_index_keys);
	test_run("keywords", test_keywords);
	test_run("dates", test_dates);
	test_run("text_keys", test_text_keys);
	test_run("logic", test_logic);
	test_run("laziness", test_laziness);
	test_run("malformed", test_malformed);
	test_run("charset", test_charset);
	test_run("return", test_return);
	return test_done();
}
