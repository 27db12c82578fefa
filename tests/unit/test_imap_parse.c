#include <stdlib.h>
#include <string.h>

#include "imap/imap_parse.h"
#include "test.h"

static enum imap_parse_result
feed(struct imap_parser *p, const char *line)
{
	return imap_parser_feed_line(p, line, strlen(line));
}

static const struct imap_arg *
arg_at(struct imap_parser *p, size_t i)
{
	size_t n;
	const struct imap_arg *args = imap_parser_args(p, &n);

	return i < n ? &args[i] : NULL;
}

static size_t
nargs(struct imap_parser *p)
{
	size_t n;

	(void)imap_parser_args(p, &n);
	return n;
}

static const char *
str_at(struct imap_parser *p, size_t i)
{
	const char *s = NULL;
	size_t len;

	if (!imap_arg_get_astring(arg_at(p, i), &s, &len))
		return NULL;
	return s;
}

static void
test_simple(void)
{
	struct imap_parser *p = imap_parser_new(NULL);

	TEST_ASSERT(feed(p, "a1 login user \"pass word\"") == IMAP_PARSE_DONE);
	TEST_ASSERT_STREQ(imap_parser_tag(p), "a1");
	TEST_ASSERT_STREQ(imap_parser_command(p), "LOGIN");
	TEST_ASSERT(!imap_parser_uid(p));
	TEST_ASSERT(nargs(p) == 2);
	TEST_ASSERT(arg_at(p, 0)->type == IMAP_ARG_ATOM);
	TEST_ASSERT_STREQ(str_at(p, 0), "user");
	TEST_ASSERT(arg_at(p, 1)->type == IMAP_ARG_STRING);
	TEST_ASSERT_STREQ(str_at(p, 1), "pass word");

	TEST_ASSERT(feed(p, "b NOOP") == IMAP_PARSE_DONE);
	TEST_ASSERT_STREQ(imap_parser_command(p), "NOOP");
	TEST_ASSERT(nargs(p) == 0);

	TEST_ASSERT(feed(p, "c select NIL") == IMAP_PARSE_DONE);
	TEST_ASSERT(arg_at(p, 0)->type == IMAP_ARG_NIL);
	TEST_ASSERT_STREQ(str_at(p, 0), "NIL");

	TEST_ASSERT(feed(p, "d LIST \"\" *") == IMAP_PARSE_DONE);
	TEST_ASSERT_STREQ(str_at(p, 0), "");
	TEST_ASSERT_STREQ(str_at(p, 1), "*");
	TEST_ASSERT(feed(p, "e list \"\" %/foo]") == IMAP_PARSE_DONE);
	TEST_ASSERT_STREQ(str_at(p, 1), "%/foo]");
	imap_parser_free(&p);
	TEST_ASSERT(p == NULL);
}

static void
test_quoted(void)
{
	struct imap_parser *p = imap_parser_new(NULL);
	size_t len;
	const char *s;

	TEST_ASSERT(feed(p, "a LOGIN \"a\\\"b\\\\c\" \"\"") == IMAP_PARSE_DONE);
	TEST_ASSERT_STREQ(str_at(p, 0), "a\"b\\c");
	TEST_ASSERT(imap_arg_get_astring(arg_at(p, 1), &s, &len) && len == 0);
	TEST_ASSERT(feed(p, "a LOGIN \"a\\nb\" x") == IMAP_PARSE_ERROR);
	TEST_ASSERT_STREQ(imap_parser_error(p), "Invalid escape in quoted string");
	imap_parser_free(&p);
}

static void
test_literal_sync(void)
{
	struct imap_parser *p = imap_parser_new(NULL);

	TEST_ASSERT(feed(p, "a1 LOGIN {4}") == IMAP_PARSE_NEED_LITERAL);
	TEST_ASSERT(imap_parser_literal_size(p) == 4);
	TEST_ASSERT(imap_parser_literal_sync(p));
	TEST_ASSERT(imap_parser_literal_left(p) == 4);
	TEST_ASSERT(imap_parser_feed_literal(p, "us", 2) == 2);
	TEST_ASSERT(imap_parser_feed_literal(p, "erXXX", 5) == 2);
	TEST_ASSERT(imap_parser_literal_left(p) == 0);
	TEST_ASSERT(feed(p, " {3}") == IMAP_PARSE_NEED_LITERAL);
	TEST_ASSERT(imap_parser_feed_literal(p, "p\r\n", 3) == 3);
	TEST_ASSERT(feed(p, "") == IMAP_PARSE_DONE);
	TEST_ASSERT_STREQ(imap_parser_command(p), "LOGIN");
	TEST_ASSERT(nargs(p) == 2);
	TEST_ASSERT_STREQ(str_at(p, 0), "user");
	TEST_ASSERT(arg_at(p, 0)->literal);
	TEST_ASSERT(arg_at(p, 1)->u.str.len == 3);
	TEST_ASSERT(memcmp(arg_at(p, 1)->u.str.data, "p\r\n", 3) == 0);

	/* {0} needs no bytes; literal followed directly by ')' */
	TEST_ASSERT(feed(p, "b X ({0}") == IMAP_PARSE_NEED_LITERAL);
	TEST_ASSERT(feed(p, ") y") == IMAP_PARSE_DONE);
	TEST_ASSERT(nargs(p) == 2);
	TEST_ASSERT(arg_at(p, 0)->u.list.count == 1);
	TEST_ASSERT_STREQ(str_at(p, 1), "y");
	/* a literal must be followed by a separator */
	TEST_ASSERT(feed(p, "c X {1}") == IMAP_PARSE_NEED_LITERAL);
	TEST_ASSERT(imap_parser_feed_literal(p, "a", 1) == 1);
	TEST_ASSERT(feed(p, "b") == IMAP_PARSE_ERROR);
	imap_parser_free(&p);
}

static void
test_literal_plus(void)
{
	struct imap_parser *p = imap_parser_new(NULL);

	TEST_ASSERT(feed(p, "a2 LOGIN {5+}") == IMAP_PARSE_NEED_LITERAL);
	TEST_ASSERT(!imap_parser_literal_sync(p));
	TEST_ASSERT(imap_parser_literal_size(p) == 5);
	TEST_ASSERT(imap_parser_feed_literal(p, "hello", 5) == 5);
	TEST_ASSERT(feed(p, " secret") == IMAP_PARSE_DONE);
	TEST_ASSERT_STREQ(str_at(p, 0), "hello");
	TEST_ASSERT_STREQ(str_at(p, 1), "secret");
	imap_parser_free(&p);
}

static void
test_nested(void)
{
	struct imap_parser *p = imap_parser_new(NULL);

	TEST_ASSERT(feed(p, "a X (1 (2 (3)) () \"q\") z") == IMAP_PARSE_DONE);
	TEST_ASSERT(nargs(p) == 2);
	const struct imap_arg *l = arg_at(p, 0);
	TEST_ASSERT(l->type == IMAP_ARG_LIST && l->u.list.count == 4);
	TEST_ASSERT(l->u.list.items[1].type == IMAP_ARG_LIST);
	TEST_ASSERT(l->u.list.items[1].u.list.count == 2);
	TEST_ASSERT(l->u.list.items[1].u.list.items[1].u.list.count == 1);
	TEST_ASSERT(l->u.list.items[2].u.list.count == 0);
	TEST_ASSERT(l->u.list.items[3].type == IMAP_ARG_STRING);
	TEST_ASSERT(feed(p, "a X (1 2") == IMAP_PARSE_ERROR);
	TEST_ASSERT_STREQ(imap_parser_error(p), "Missing ')'");
	TEST_ASSERT(feed(p, "a X 1)") == IMAP_PARSE_ERROR);
	TEST_ASSERT(feed(p, "a X (1)(2)") == IMAP_PARSE_ERROR);
	imap_parser_free(&p);
}

static void
test_fetch(void)
{
	struct imap_parser *p = imap_parser_new(NULL);

	TEST_ASSERT(feed(p, "f FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)]<0.512>"
			 " BODY[])") == IMAP_PARSE_DONE);
	TEST_ASSERT(nargs(p) == 2);
	TEST_ASSERT_STREQ(str_at(p, 0), "1:*");
	const struct imap_arg *l = arg_at(p, 1);
	TEST_ASSERT(l->type == IMAP_ARG_LIST && l->u.list.count == 3);
	TEST_ASSERT(imap_arg_atom_equals(&l->u.list.items[0], "flags"));
	TEST_ASSERT_STREQ(l->u.list.items[1].u.str.data,
			  "BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)]<0.512>");
	TEST_ASSERT_STREQ(l->u.list.items[2].u.str.data, "BODY[]");

	TEST_ASSERT(feed(p, "g uid fetch 4:7 BODY[HEADER.FIELDS (\"X-A]\")]") == IMAP_PARSE_DONE);
	TEST_ASSERT(imap_parser_uid(p));
	TEST_ASSERT_STREQ(imap_parser_command(p), "FETCH");
	TEST_ASSERT_STREQ(str_at(p, 1), "BODY[HEADER.FIELDS (\"X-A]\")]");
	TEST_ASSERT(feed(p, "h UID") == IMAP_PARSE_ERROR);
	TEST_ASSERT_STREQ(imap_parser_error(p), "Missing command after UID");
	TEST_ASSERT(feed(p, "i FETCH 1 BODY[TEXT") == IMAP_PARSE_ERROR);
	TEST_ASSERT(feed(p, "j LIST \"\" [Gmail]/Sent") == IMAP_PARSE_DONE);
	TEST_ASSERT_STREQ(str_at(p, 1), "[Gmail]/Sent");
	imap_parser_free(&p);
}

static void
test_search_append(void)
{
	struct imap_parser *p = imap_parser_new(NULL);

	TEST_ASSERT(feed(p, "s SEARCH OR FROM a NOT SEEN") == IMAP_PARSE_DONE);
	TEST_ASSERT(nargs(p) == 5);
	TEST_ASSERT(imap_arg_atom_equals(arg_at(p, 0), "OR"));
	TEST_ASSERT(imap_arg_atom_equals(arg_at(p, 4), "SEEN"));

	TEST_ASSERT(feed(p, "t APPEND INBOX (\\Seen) \"17-Jul-1996 02:44:25 -0700\" {12}") ==
		    IMAP_PARSE_NEED_LITERAL);
	TEST_ASSERT(imap_parser_literal_size(p) == 12);
	TEST_ASSERT_STREQ(imap_parser_command(p), "APPEND");
	TEST_ASSERT(imap_parser_feed_literal(p, "Subject: x\r\n", 12) == 12);
	TEST_ASSERT(feed(p, "") == IMAP_PARSE_DONE);
	TEST_ASSERT(nargs(p) == 4);
	TEST_ASSERT(arg_at(p, 1)->type == IMAP_ARG_LIST);
	TEST_ASSERT_STREQ(arg_at(p, 1)->u.list.items[0].u.str.data, "\\Seen");
	TEST_ASSERT_STREQ(str_at(p, 2), "17-Jul-1996 02:44:25 -0700");
	TEST_ASSERT(arg_at(p, 3)->literal && arg_at(p, 3)->u.str.len == 12);
	imap_parser_free(&p);
}

static void
test_errors(void)
{
	struct imap_parser *p = imap_parser_new(NULL);

	TEST_ASSERT(feed(p, "a LOGIN \"abc") == IMAP_PARSE_ERROR);
	TEST_ASSERT_STREQ(imap_parser_error(p), "Unterminated quoted string");
	TEST_ASSERT_STREQ(imap_parser_tag(p), "a");
	TEST_ASSERT(imap_parser_recovery(p) == IMAP_RECOVER_NONE);

	/* refused before a byte is read; sync: nothing follows */
	TEST_ASSERT(feed(p, "b APPEND INBOX {100000000000}") == IMAP_PARSE_ERROR);
	TEST_ASSERT_STREQ(imap_parser_error(p), "Literal too big");
	TEST_ASSERT(imap_parser_recovery(p) == IMAP_RECOVER_NONE);
	TEST_ASSERT(feed(p, "b APPEND INBOX {100000000000+}") == IMAP_PARSE_ERROR);
	TEST_ASSERT(imap_parser_recovery(p) == IMAP_RECOVER_CLOSE);
	TEST_ASSERT(feed(p, "b APPEND INBOX {99999999999999999999999}") == IMAP_PARSE_ERROR);
	TEST_ASSERT_STREQ(imap_parser_error(p), "Literal too big");
	TEST_ASSERT(feed(p, "b APPEND INBOX {12a}") == IMAP_PARSE_ERROR);
	TEST_ASSERT(feed(p, "b APPEND INBOX {12} x") == IMAP_PARSE_ERROR);

	TEST_ASSERT(feed(p, "+a NOOP") == IMAP_PARSE_ERROR);
	TEST_ASSERT_STREQ(imap_parser_error(p), "Invalid tag");
	TEST_ASSERT(imap_parser_tag(p) == NULL);
	TEST_ASSERT(feed(p, "* NOOP") == IMAP_PARSE_ERROR);
	TEST_ASSERT(feed(p, "") == IMAP_PARSE_ERROR);
	TEST_ASSERT(feed(p, " NOOP") == IMAP_PARSE_ERROR);
	TEST_ASSERT(feed(p, "abc") == IMAP_PARSE_ERROR);
	TEST_ASSERT_STREQ(imap_parser_error(p), "Missing command");
	TEST_ASSERT_STREQ(imap_parser_tag(p), "abc");
	TEST_ASSERT(feed(p, "abc ") == IMAP_PARSE_ERROR);
	TEST_ASSERT(feed(p, "a NO(OP") == IMAP_PARSE_ERROR);

	TEST_ASSERT(imap_parser_feed_line(p, "a NOOP x\0y", 10) == IMAP_PARSE_ERROR);
	TEST_ASSERT_STREQ(imap_parser_error(p), "NUL in command");
	/* The tag before the NUL is read, so that the BAD can be tagged... */
	TEST_ASSERT_STREQ(imap_parser_tag(p), "a");
	/* ...but not a tag with the NUL in it. */
	TEST_ASSERT(imap_parser_feed_line(p, "a\0 NOOP", 7) == IMAP_PARSE_ERROR);
	TEST_ASSERT(imap_parser_tag(p) == NULL);
	TEST_ASSERT(feed(p, "a X \"a\rb\"") == IMAP_PARSE_ERROR);

	/* and the next command parses fine */
	TEST_ASSERT(feed(p, "z NOOP") == IMAP_PARSE_DONE);
	TEST_ASSERT_STREQ(imap_parser_tag(p), "z");
	imap_parser_free(&p);
}

static void
test_nesting(void)
{
	struct imap_parser *p = imap_parser_new(NULL);
	char line[2100] = "a X ";

	for (int i = 0; i < 1000; i++)
		strcat(line, "(");
	for (int i = 0; i < 1000; i++)
		strcat(line, ")");
	TEST_ASSERT(feed(p, line) == IMAP_PARSE_ERROR);
	TEST_ASSERT_STREQ(imap_parser_error(p), "Too deeply nested lists");
	/* 32 deep is fine */
	strcpy(line, "a X ");
	for (int i = 0; i < 32; i++)
		strcat(line, "(");
	for (int i = 0; i < 32; i++)
		strcat(line, ")");
	TEST_ASSERT(feed(p, line) == IMAP_PARSE_DONE);
	imap_parser_free(&p);
}

static void
test_limits(void)
{
	struct imap_parse_limits lim;

	imap_parse_limits_default(&lim);
	lim.command_max = 100;
	lim.args_max = 5;
	lim.atom_max = 10;
	struct imap_parser *p = imap_parser_new(&lim);
	char line[200];

	memset(line, 'x', sizeof(line));
	memcpy(line, "a X ", 4);
	TEST_ASSERT(imap_parser_feed_line(p, line, 150) == IMAP_PARSE_ERROR);
	TEST_ASSERT_STREQ(imap_parser_error(p), "Command too long");
	/* the total counts lines and literals together */
	TEST_ASSERT(feed(p, "a X {60}") == IMAP_PARSE_NEED_LITERAL);
	for (int i = 0; i < 60; i++)
		TEST_ASSERT(imap_parser_feed_literal(p, "y", 1) == 1);
	TEST_ASSERT(feed(p, " {30}") == IMAP_PARSE_ERROR);
	TEST_ASSERT_STREQ(imap_parser_error(p), "Command too long");

	TEST_ASSERT(feed(p, "a X 1 2 3 4 5") == IMAP_PARSE_DONE);
	TEST_ASSERT(feed(p, "a X 1 2 3 4 5 6") == IMAP_PARSE_ERROR);
	TEST_ASSERT_STREQ(imap_parser_error(p), "Too many arguments");
	TEST_ASSERT(feed(p, "a X (1 2 3 4 5)") == IMAP_PARSE_ERROR);
	TEST_ASSERT(feed(p, "a X 12345678901") == IMAP_PARSE_ERROR);
	TEST_ASSERT_STREQ(imap_parser_error(p), "Atom too long");
	TEST_ASSERT(feed(p, "a X \"12345678901\"") == IMAP_PARSE_ERROR);
	TEST_ASSERT(feed(p, "a X 1234567890") == IMAP_PARSE_DONE);
	imap_parser_free(&p);
}

static void
test_recovery(void)
{
	struct imap_parser *p = imap_parser_new(NULL);

	/* an error on a line that ends with {N+}: the N bytes come anyway */
	TEST_ASSERT(feed(p, "a X \"open {3+}") == IMAP_PARSE_ERROR);
	TEST_ASSERT(imap_parser_recovery(p) == IMAP_RECOVER_DISCARD);
	TEST_ASSERT(imap_parser_literal_left(p) == 3);
	TEST_ASSERT(imap_parser_feed_literal(p, "abc", 3) == 3);
	TEST_ASSERT(feed(p, " more {2+}") == IMAP_PARSE_NEED_LITERAL);
	TEST_ASSERT(!imap_parser_literal_sync(p));
	TEST_ASSERT(imap_parser_feed_literal(p, "zz", 2) == 2);
	TEST_ASSERT(feed(p, " end") == IMAP_PARSE_DISCARDED);
	TEST_ASSERT(feed(p, "b NOOP") == IMAP_PARSE_DONE);

	/* the session refuses a literal */
	TEST_ASSERT(feed(p, "c X {10+}") == IMAP_PARSE_NEED_LITERAL);
	imap_parser_reject_literal(p, "Literal too big for X");
	TEST_ASSERT(imap_parser_recovery(p) == IMAP_RECOVER_DISCARD);
	TEST_ASSERT_STREQ(imap_parser_error(p), "Literal too big for X");
	TEST_ASSERT(imap_parser_feed_literal(p, "0123456789", 10) == 10);
	TEST_ASSERT(feed(p, "") == IMAP_PARSE_DISCARDED);
	TEST_ASSERT(feed(p, "c X {10}") == IMAP_PARSE_NEED_LITERAL);
	imap_parser_reject_literal(p, "no");
	TEST_ASSERT(imap_parser_recovery(p) == IMAP_RECOVER_NONE);
	TEST_ASSERT(feed(p, "d NOOP") == IMAP_PARSE_DONE);

	/* NUL in a literal: told once the command has been read */
	TEST_ASSERT(feed(p, "e X {3}") == IMAP_PARSE_NEED_LITERAL);
	TEST_ASSERT(imap_parser_feed_literal(p, "a\0b", 3) == 3);
	TEST_ASSERT(feed(p, " y") == IMAP_PARSE_ERROR);
	TEST_ASSERT_STREQ(imap_parser_error(p), "NUL in literal");
	TEST_ASSERT_STREQ(imap_parser_tag(p), "e");
	TEST_ASSERT(imap_parser_recovery(p) == IMAP_RECOVER_NONE);

	/* reset in the middle of a literal */
	TEST_ASSERT(feed(p, "f X {3}") == IMAP_PARSE_NEED_LITERAL);
	TEST_ASSERT(imap_parser_feed_literal(p, "a", 1) == 1);
	imap_parser_reset(p);
	TEST_ASSERT(imap_parser_literal_left(p) == 0);
	TEST_ASSERT(feed(p, "g CAPABILITY") == IMAP_PARSE_DONE);
	TEST_ASSERT_STREQ(imap_parser_command(p), "CAPABILITY");
	imap_parser_free(&p);
}

static void
test_many_args(void)
{
	struct imap_parser *p = imap_parser_new(NULL);
	size_t n = 100001 * 2 + 16;
	char *line = malloc(n);
	size_t len = 0;

	memcpy(line, "a X ", 4);
	len = 4;
	for (int i = 0; i < 100001; i++) {
		line[len++] = 'x';
		line[len++] = ' ';
	}
	TEST_ASSERT(imap_parser_feed_line(p, line, len) == IMAP_PARSE_ERROR);
	TEST_ASSERT_STREQ(imap_parser_error(p), "Too many arguments");
	TEST_ASSERT(imap_parser_feed_line(p, line, len - 4) == IMAP_PARSE_DONE);
	free(line);
	imap_parser_free(&p);
}

/* Random lines under the sanitizers: whatever comes, no crash, no leak. */
static void
test_random(void)
{
	static const char alphabet[] = "a1 ()\"\\{}+[]<>*%NIL09 \r.";
	struct imap_parse_limits lim;
	unsigned seed = 12345;
	char line[64], lit[1000];

	imap_parse_limits_default(&lim);
	lim.literal_max = sizeof(lit);
	lim.depth_max = 4;
	memset(lit, 'L', sizeof(lit));
	struct imap_parser *p = imap_parser_new(&lim);
	for (int i = 0; i < 50000; i++) {
		size_t len = 0, n;
		seed = seed * 1103515245u + 12345u;
		n = (seed >> 16) % sizeof(line);
		for (; len < n; len++) {
			seed = seed * 1103515245u + 12345u;
			line[len] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		enum imap_parse_result r = imap_parser_feed_line(p, line, len);
		TEST_ASSERT(r != IMAP_PARSE_ERROR || imap_parser_error(p) != NULL);
		while (imap_parser_literal_left(p) > 0) {
			uint64_t left = imap_parser_literal_left(p);
			TEST_ASSERT(imap_parser_feed_literal(p, lit, (size_t)left) == left);
		}
	}
	imap_parser_free(&p);
}

int
main(void)
{
	test_run("imap_parse_simple", test_simple);
	test_run("imap_parse_quoted", test_quoted);
	test_run("imap_parse_literal_sync", test_literal_sync);
	test_run("imap_parse_literal_plus", test_literal_plus);
	test_run("imap_parse_nested", test_nested);
	test_run("imap_parse_fetch", test_fetch);
	test_run("imap_parse_search_append", test_search_append);
	test_run("imap_parse_errors", test_errors);
	test_run("imap_parse_nesting", test_nesting);
	test_run("imap_parse_limits", test_limits);
	test_run("imap_parse_recovery", test_recovery);
	test_run("imap_parse_many_args", test_many_args);
	test_run("imap_parse_random", test_random);
	return test_done();
}
