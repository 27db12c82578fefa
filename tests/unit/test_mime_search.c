#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "mime/mime_search.h"
#include "test.h"

/* Runs one text key over msg: 'h' HEADER field, 'b' BODY, 't' TEXT. */
static bool
match(const char *msg, char key, const char *field, const char *needle)
{
	char *n = mime_search_fold(needle, strlen(needle));
	struct mime_search *ms = mime_search_new(msg, strlen(msg));
	bool r = key == 'h' ? mime_search_header(ms, field, n)
		 : key == 'b' ? mime_search_body(ms, n) : mime_search_text(ms, n);
	mime_search_free(&ms);
	TEST_ASSERT(ms == NULL);
	free(n);
	return r;
}

static void
test_fold(void)
{
	char *a = mime_search_fold("Caf\xc3\x89 STRASSE", 13);
	char *b = mime_search_fold("caf\xc3\xa9 stra\xc3\x9f" "e", 13);
	/* decomposed: e + U+0301 COMBINING ACUTE ACCENT */
	char *c = mime_search_fold("CAFE\xcc\x81", 6);
	TEST_ASSERT_STREQ(a, "caf\xc3\xa9 strasse");
	TEST_ASSERT_STREQ(b, "caf\xc3\xa9 strasse");
	TEST_ASSERT_STREQ(c, "caf\xc3\xa9");
	free(a);
	free(b);
	free(c);
	/* Invalid UTF-8 and a NUL do not stop the fold. */
	char *d = mime_search_fold("A\xff" "B\0C", 5);
	TEST_ASSERT(d[0] == 'a' && strstr(d, "b c") != NULL);
	free(d);
}

static const char plain[] =
	"Return-Path: <a@example.org>\n"
	"From: Alice Example <alice@example.org>\n"
	"To: bob@example.net,\n"
	"  Carol <carol@example.net>\n"
	"Cc: dave@example.com\n"
	"Subject: =?UTF-8?B?Q2Fmw6kgcHLDqHMgZHUgbWFyY2jDqQ==?=\n"
	"X-Empty:\n"
	"Date: Mon, 23 Nov 2026 23:30:00 -0800\n"
	"\n"
	"Hello World, the Quick brown fox.\n"
	"From: not a header\n";

static void
test_headers(void)
{
	TEST_ASSERT(match(plain, 'h', "from", "ALICE"));
	TEST_ASSERT(match(plain, 'h', "FROM", "alice@example.org"));
	TEST_ASSERT(!match(plain, 'h', "from", "not a header"));
	/* A folded field is unfolded: the second line is searched too. */
	TEST_ASSERT(match(plain, 'h', "to", "carol"));
	TEST_ASSERT(match(plain, 'h', "to", "net,  carol"));
	TEST_ASSERT(match(plain, 'h', "cc", "dave"));
	TEST_ASSERT(!match(plain, 'h', "bcc", ""));
	/* The encoded word is decoded before the comparison. */
	TEST_ASSERT(match(plain, 'h', "subject", "CAF\xc3\x89 PR\xc3\x88S"));
	TEST_ASSERT(match(plain, 'h', "subject", "march\xc3\xa9"));
	TEST_ASSERT(!match(plain, 'h', "subject", "Q2Fm"));
	/* HEADER x "": any message with the field, even empty. */
	TEST_ASSERT(match(plain, 'h', "x-empty", ""));
	TEST_ASSERT(!match(plain, 'h', "x-missing", ""));
	TEST_ASSERT(!match(plain, 'h', "subject", "hello"));
	/* A value that starts on the continuation line. */
	TEST_ASSERT(match("Subject:\n  folded  \n\nx\n", 't', NULL, "subject: folded\n"));
}

static void
test_body_text(void)
{
	TEST_ASSERT(match(plain, 'b', NULL, "quick BROWN"));
	TEST_ASSERT(match(plain, 'b', NULL, "not a header"));
	TEST_ASSERT(!match(plain, 'b', NULL, "alice"));
	TEST_ASSERT(match(plain, 't', NULL, "alice"));
	TEST_ASSERT(match(plain, 't', NULL, "quick"));
	TEST_ASSERT(match(plain, 't', NULL, "subject: caf\xc3\xa9"));
	TEST_ASSERT(!match(plain, 't', NULL, "nowhere"));
	/* Header only, no empty line. */
	TEST_ASSERT(match("Subject: x\n", 'h', "subject", "x"));
	TEST_ASSERT(!match("Subject: x\n", 'b', NULL, "x"));
	TEST_ASSERT(match("Subject: x\r\n\r\nbody\r\n", 'b', NULL, "body"));
	TEST_ASSERT(match("", 't', NULL, ""));
}

static const char qp[] =
	"Subject: qp\n"
	"MIME-Version: 1.0\n"
	"Content-Type: text/plain; charset=utf-8\n"
	"Content-Transfer-Encoding: quoted-printable\n"
	"\n"
	"Un caf=C3=A9 tr=C3=A8s cher, une ligne coup=\n"
	"=C3=A9e.\n";

static const char latin1[] =
	"Subject: latin\n"
	"MIME-Version: 1.0\n"
	"Content-Type: text/plain; charset=iso-8859-1\n"
	"Content-Transfer-Encoding: quoted-printable\n"
	"\n"
	"R=E9sum=E9 =C9T=C9\n";

/* text/plain base64 "Grüße aus Köln" and an attachment saying "secret". */
static const char multi[] =
	"Subject: multi\n"
	"MIME-Version: 1.0\n"
	"Content-Type: multipart/mixed; boundary=\"b1\"\n"
	"\n"
	"preamble\n"
	"--b1\n"
	"Content-Type: text/plain; charset=UTF-8\n"
	"Content-Transfer-Encoding: base64\n"
	"\n"
	"R3LDvMOfZSBhdXMgS8O2bG4=\n"
	"--b1\n"
	"Content-Type: application/octet-stream\n"
	"Content-Transfer-Encoding: base64\n"
	"\n"
	"c2VjcmV0\n"
	"--b1\n"
	"Content-Type: text/html; charset=us-ascii\n"
	"\n"
	"<p>in html</p>\n"
	"--b1--\n";

static void
test_decoding(void)
{
	TEST_ASSERT(match(qp, 'b', NULL, "caf\xc3\xa9"));
	TEST_ASSERT(match(qp, 'b', NULL, "TR\xc3\x88S"));
	/* A soft line break joins the word. */
	TEST_ASSERT(match(qp, 'b', NULL, "coup\xc3\xa9" "e"));
	TEST_ASSERT(!match(qp, 'b', NULL, "=C3"));
	TEST_ASSERT(match(latin1, 'b', NULL, "r\xc3\xa9sum\xc3\xa9"));
	TEST_ASSERT(match(latin1, 'b', NULL, "\xc3\xa9t\xc3\xa9"));
	TEST_ASSERT(match(multi, 'b', NULL, "GR\xc3\x9c\xc3\x9f" "E"));
	TEST_ASSERT(match(multi, 'b', NULL, "k\xc3\xb6ln"));
	TEST_ASSERT(match(multi, 't', NULL, "in html"));
	TEST_ASSERT(!match(multi, 'b', NULL, "secret"));
	TEST_ASSERT(!match(multi, 'b', NULL, "preamble"));
	TEST_ASSERT(!match(multi, 'b', NULL, "R3LD"));
}

static void
test_sent_date(void)
{
	struct mime_search *ms = mime_search_new(plain, strlen(plain));
	int y = 0, m = 0, d = 0;
	/* 23:30 -0800 is the 24th in UTC: the day as written counts. */
	TEST_ASSERT(mime_search_sent_date(ms, &y, &m, &d) == 0);
	TEST_ASSERT(y == 2026 && m == 11 && d == 23);
	mime_search_free(&ms);
	const char *none = "Subject: x\n\nbody\n";
	ms = mime_search_new(none, strlen(none));
	TEST_ASSERT(mime_search_sent_date(ms, &y, &m, &d) == -1);
	mime_search_free(&ms);
	const char *bad = "Date: yesterday\n\nbody\n";
	ms = mime_search_new(bad, strlen(bad));
	TEST_ASSERT(mime_search_sent_date(ms, &y, &m, &d) == -1);
	mime_search_free(&ms);
}

/* Deep nesting is not handed to GMime: the body is searched raw. */
static void
test_deep_nesting(void)
{
	struct buf b = BUF_INIT;
	buf_appends(&b, "Subject: deep\n");
	for (int i = 0; i < 300; i++)
		buf_appendf(&b, "Content-Type: multipart/mixed; boundary=\"x%d\"\n\n--x%d\n", i, i);
	buf_appends(&b, "Content-Type: text/plain\n\nthe needle\n");
	TEST_ASSERT(match(b.data, 'b', NULL, "THE NEEDLE"));
	buf_free(&b);
}

/*
 * The kept fields answer a header key exactly as the message does: same
 * needles, same answers, for kept fields (several To lines, an encoded
 * Subject, an absent Bcc, the empty needle meaning "has the field").
 */
static void
test_kept_fields(void)
{
	static const char msg[] =
		"From: Alice Example <alice@example.org>\n"
		"To: bob@example.net\n"
		"To: =?ISO-8859-1?Q?Ren=E9?= <rene@example.net>\n"
		"Subject: =?UTF-8?B?Q2Fmw6kgcHLDqHMgZHUgbWFyY2jDqQ==?=\n"
		"X-Other: kept nowhere\n"
		"\n"
		"body\n";
	struct mime_search *ms = mime_search_new(msg, strlen(msg));
	char *fields = mime_search_fields(ms);
	TEST_ASSERT(strstr(fields, "X-Other") == NULL && strstr(fields, "body") == NULL);
	static const char *const keys[][2] = {
		{ "From", "alice" }, { "FROM", "EXAMPLE.ORG>" }, { "from", "bob" },
		{ "To", "bob@" }, { "To", "ren\xc3\xa9" }, { "to", "RENE@" },
		{ "Subject", "CAF\xc3\x89 PR" }, { "Subject", "march\xc3\xa9" },
		{ "Subject", "cafe" }, { "Bcc", "" }, { "Bcc", "x" }, { "Cc", "" },
		{ "Subject", "" }, { "To", "net\nto" },
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char *n = mime_search_fold(keys[i][1], strlen(keys[i][1]));
		bool want = mime_search_header(ms, keys[i][0], n);
		TEST_ASSERT(mime_search_field_kept(keys[i][0]));
		TEST_ASSERT(mime_search_fields_match(fields, keys[i][0], n) == want);
		free(n);
	}
	TEST_ASSERT(mime_search_fields_match(fields, "to", "ren\xc3\xa9"));
	TEST_ASSERT(!mime_search_fields_match(fields, "Bcc", ""));
	TEST_ASSERT(!mime_search_field_kept("X-Other") && !mime_search_field_kept("Date"));
	free(fields);
	mime_search_free(&ms);
}

int
main(void)
{
	test_run("fold", test_fold);
	test_run("headers", test_headers);
	test_run("body_text", test_body_text);
	test_run("decoding", test_decoding);
	test_run("sent_date", test_sent_date);
	test_run("deep_nesting", test_deep_nesting);
	test_run("kept_fields", test_kept_fields);
	return test_done();
}
