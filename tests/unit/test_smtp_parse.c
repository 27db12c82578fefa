#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_parse.h"
#include "test.h"

static void
test_command(void)
{
	char verb[SMTP_VERB_MAX + 1];
	char *args;
	char l1[] = "mail FROM:<a@b>  ";
	TEST_ASSERT(smtp_parse_command(l1, verb, &args) == 0);
	TEST_ASSERT_STREQ(verb, "MAIL");
	TEST_ASSERT_STREQ(args, "FROM:<a@b>");
	char l2[] = "QUIT";
	TEST_ASSERT(smtp_parse_command(l2, verb, &args) == 0);
	TEST_ASSERT_STREQ(verb, "QUIT");
	TEST_ASSERT_STREQ(args, "");
	char l3[] = "";
	TEST_ASSERT(smtp_parse_command(l3, verb, &args) < 0);
	char l4[] = "HE1O x";
	TEST_ASSERT(smtp_parse_command(l4, verb, &args) < 0);
	char l5[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
	TEST_ASSERT(smtp_parse_command(l5, verb, &args) < 0);
	char l6[] = " NOOP";
	TEST_ASSERT(smtp_parse_command(l6, verb, &args) < 0);
}

/* Parses and returns the address (static copy) or NULL on error. */
static const char *
path_ok(const char *args, enum smtp_path_kind kind)
{
	static char copy[512];
	struct smtp_path p;
	const char *error;
	if (smtp_parse_path(args, kind, &p, &error) < 0)
		return NULL;
	snprintf(copy, sizeof(copy), "%s", p.address);
	smtp_path_clear(&p);
	return copy;
}

static void
test_mail_from(void)
{
	TEST_ASSERT_STREQ(path_ok("FROM:<alice@example.org>", SMTP_PATH_MAIL), "alice@example.org");
	TEST_ASSERT_STREQ(path_ok("from: <Alice@Example.org>", SMTP_PATH_MAIL), "Alice@Example.org");
	TEST_ASSERT_STREQ(path_ok("FROM:<>", SMTP_PATH_MAIL), "");
	TEST_ASSERT_STREQ(path_ok("FROM:<\"john.doe\"@x.org>", SMTP_PATH_MAIL), "john.doe@x.org");
	TEST_ASSERT_STREQ(path_ok("FROM:<\"john doe\"@x.org>", SMTP_PATH_MAIL), "\"john doe\"@x.org");
	TEST_ASSERT_STREQ(path_ok("FROM:<\"a\\\"b\"@x.org>", SMTP_PATH_MAIL), "\"a\\\"b\"@x.org");
	TEST_ASSERT_STREQ(path_ok("FROM:<@a.org,@b.org:user@d.org>", SMTP_PATH_MAIL), "user@d.org");
	TEST_ASSERT_STREQ(path_ok("FROM:<u@[192.0.2.1]>", SMTP_PATH_MAIL), "u@[192.0.2.1]");
	TEST_ASSERT_STREQ(path_ok("FROM:<u@[IPv6:::1]>", SMTP_PATH_MAIL), "u@[IPv6:::1]");
	TEST_ASSERT_STREQ(path_ok("FROM:<a+b.c@x-y.example>", SMTP_PATH_MAIL), "a+b.c@x-y.example");
}

static void
test_garbage(void)
{
	static const char *bad[] = {
		"", "FROM", "FROM:", "FROM:alice@example.org", "FROM:<alice@example.org",
		"FROM:<alice>", "FROM:<@example.org>", "FROM:<a..b@x.org>", "FROM:<.a@x.org>",
		"FROM:<a.@x.org>", "FROM:<a@>", "FROM:<a@-x.org>", "FROM:<a@x-.org>",
		"FROM:<a@x..org>", "FROM:<a@x.org.>", "FROM:<a b@x.org>", "FROM:<\"ab@x.org>",
		"FROM:<a@x.org>junk", "FROM:<a@[]>", "FROM:<@a.org:>", "FROM:<@a.org,user@d>",
		"FROM:<a@x.org> =1", "FROM:<a@x.org> SIZE=", "FROM:<a@x.org> -X",
		"FROM:<a@x.org> A=b=c", "TO:<a@x.org>", "FROM:<\xc3\xa9@x.org>",
		"FROM:<postmaster>", "FROM:<a@b@c>", "FROM:<\"a\x01\"@x.org>",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *r = path_ok(bad[i], SMTP_PATH_MAIL);
		if (r != NULL)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		TEST_ASSERT(r == NULL);
	}
	TEST_ASSERT(path_ok("TO:<>", SMTP_PATH_RCPT) == NULL);
	TEST_ASSERT(path_ok("FROM:<a@x.org>", SMTP_PATH_RCPT) == NULL);
}

static void
test_rcpt(void)
{
	TEST_ASSERT_STREQ(path_ok("TO:<bob@example.org>", SMTP_PATH_RCPT), "bob@example.org");
	TEST_ASSERT_STREQ(path_ok("To: <bob@example.org>", SMTP_PATH_RCPT), "bob@example.org");
	TEST_ASSERT_STREQ(path_ok("TO:<postmaster>", SMTP_PATH_RCPT), "postmaster");
	TEST_ASSERT_STREQ(path_ok("TO:<PostMaster>", SMTP_PATH_RCPT), "postmaster");
	TEST_ASSERT_STREQ(path_ok("TO:<@relay.net:bob@example.org>", SMTP_PATH_RCPT),
			  "bob@example.org");
}

static void
test_params(void)
{
	struct smtp_path p;
	const char *error = NULL;
	TEST_ASSERT(smtp_parse_path("FROM:<a@x.org> SIZE=1000  BODY=8BITMIME SMTPUTF8",
				    SMTP_PATH_MAIL, &p, &error) == 0);
	TEST_ASSERT(p.nparams == 3);
	TEST_ASSERT_STREQ(p.params[0].keyword, "SIZE");
	TEST_ASSERT_STREQ(p.params[0].value, "1000");
	TEST_ASSERT_STREQ(p.params[1].keyword, "BODY");
	TEST_ASSERT_STREQ(p.params[1].value, "8BITMIME");
	TEST_ASSERT_STREQ(p.params[2].keyword, "SMTPUTF8");
	TEST_ASSERT(p.params[2].value == NULL);
	smtp_path_clear(&p);
	TEST_ASSERT(p.address == NULL);

	TEST_ASSERT(smtp_parse_path("FROM:<> SIZE=x=y", SMTP_PATH_MAIL, &p, &error) < 0);
	TEST_ASSERT_STREQ(error, "501 5.5.4 Bad MAIL parameter syntax");
	TEST_ASSERT(smtp_parse_path("FROM:<a b>", SMTP_PATH_MAIL, &p, &error) < 0);
	TEST_ASSERT_STREQ(error, "501 5.1.7 Bad sender address syntax");
	TEST_ASSERT(smtp_parse_path("TO:<a b>", SMTP_PATH_RCPT, &p, &error) < 0);
	TEST_ASSERT_STREQ(error, "501 5.1.3 Bad recipient address syntax");
	TEST_ASSERT(smtp_parse_path("TO:", SMTP_PATH_RCPT, &p, &error) < 0);
	TEST_ASSERT_STREQ(error, "501 5.5.4 Syntax: RCPT TO:<address>");

	char many[512] = "FROM:<a@x.org>";
	for (int i = 0; i < SMTP_PARAMS_MAX + 1; i++)
		strcat(many, " X=1");
	TEST_ASSERT(smtp_parse_path(many, SMTP_PATH_MAIL, &p, &error) < 0);
}

static void
test_lengths(void)
{
	char local[80], args[400];
	memset(local, 'a', 64);
	local[64] = '\0';
	snprintf(args, sizeof(args), "FROM:<%s@x.org>", local);
	TEST_ASSERT(path_ok(args, SMTP_PATH_MAIL) != NULL);
	snprintf(args, sizeof(args), "FROM:<%sb@x.org>", local);
	TEST_ASSERT(path_ok(args, SMTP_PATH_MAIL) == NULL);
	/* A path over 256 characters with valid parts. */
	char dom[300] = "";
	for (int i = 0; i < 4; i++)
		strcat(dom, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.");
	strcat(dom, "org");
	snprintf(args, sizeof(args), "FROM:<%s@%s>", local, dom);
	TEST_ASSERT(path_ok(args, SMTP_PATH_MAIL) == NULL);
	TEST_ASSERT_STREQ(smtp_address_domain("a@b.org"), "b.org");
	TEST_ASSERT_STREQ(smtp_address_domain("\"x@y\"@b.org"), "b.org");
	TEST_ASSERT_STREQ(smtp_address_domain("postmaster"), "");
}

static void
test_header_scan(void)
{
	unsigned fields;
	const char *m1 = "From: a@b\r\nmessage-id: <x@y>\r\nSubject: s\r\n\r\nbody\r\n";
	TEST_ASSERT(smtp_header_scan(m1, strlen(m1), &fields) == strlen(m1) - 6);
	TEST_ASSERT(fields == SMTP_HDR_MESSAGE_ID);
	const char *m2 = "DATE: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID:<a@b>\r\n\r\n";
	TEST_ASSERT(smtp_header_scan(m2, strlen(m2), &fields) == strlen(m2));
	TEST_ASSERT(fields == (SMTP_HDR_MESSAGE_ID | SMTP_HDR_DATE));
	/* A field name only inside the body, or a longer name, does not count. */
	const char *m3 = "Subject: x\r\nDate-Received: 1\r\n\r\nDate: not a header\r\n";
	TEST_ASSERT(smtp_header_scan(m3, strlen(m3), &fields) == 32);
	TEST_ASSERT(fields == 0);
	/* The header section not complete in these bytes: 0, fields so far. */
	const char *m4 = "Date: x\r\nSubject: still going";
	TEST_ASSERT(smtp_header_scan(m4, strlen(m4), &fields) == 0);
	TEST_ASSERT(fields == SMTP_HDR_DATE);
}

int
main(void)
{
	test_run("command", test_command);
	test_run("header_scan", test_header_scan);
	test_run("mail_from", test_mail_from);
	test_run("garbage", test_garbage);
	test_run("rcpt", test_rcpt);
	test_run("params", test_params);
	test_run("lengths", test_lengths);
	return test_done();
}
