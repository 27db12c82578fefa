/* Unit tests for mime/mime_imap: golden ENVELOPE and BODYSTRUCTURE files
 * in ../fixtures/mime, written by hand from RFC 3501, and robustness. */
#include <gmime/gmime.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/util.h"
#include "mime/mime_imap.h"
#include "test.h"

#define FIXTURES "../fixtures/mime/"

static const char *const fixtures[] = {
	"plain", "alternative", "mixed",    "rfc822",
	"encoded", "group",	"notype", "preamble",
};

/* Reads a golden file, dropping the one newline that ends it. */
static char *
read_golden(const char *name, const char *ext)
{
	char *path = xasprintf(FIXTURES "%s.%s", name, ext);
	size_t len;
	char *s = read_file(path, 1 << 20, &len);

	free(path);
	if (s != NULL && len > 0 && s[len - 1] == '\n')
		s[len - 1] = '\0';
	return s;
}

static void
check_fixture(const char *name, bool crlf)
{
	char *path = xasprintf(FIXTURES "%s.eml", name);
	char *env_gold = read_golden(name, "envelope");
	char *bs_gold = read_golden(name, "bodystructure");
	char *env = NULL, *bs = NULL, *err = NULL;
	struct buf msg = BUF_INIT;
	size_t len, k;
	char *raw = read_file(path, 1 << 20, &len);

	TEST_ASSERT(raw != NULL && env_gold != NULL && bs_gold != NULL);
	for (k = 0; raw != NULL && k < len; k++) {
		if (crlf && raw[k] == '\n')
			buf_appendc(&msg, '\r');
		buf_appendc(&msg, raw[k]);
	}
	TEST_ASSERT(mime_imap_describe(msg.data, msg.len, &env, &bs, &err) ==
		    0);
	if (env_gold != NULL && env != NULL && strcmp(env, env_gold) != 0)
		fprintf(stderr, "%s: envelope mismatch\n", name);
	TEST_ASSERT_STREQ(env, env_gold);
	TEST_ASSERT_STREQ(bs, bs_gold);
	buf_free(&msg);
	free(raw);
	free(path);
	free(env_gold);
	free(bs_gold);
	free(env);
	free(bs);
}

static void
test_golden_lf(void)
{
	for (size_t k = 0; k < sizeof(fixtures) / sizeof(fixtures[0]); k++)
		check_fixture(fixtures[k], false);
}

/* Sizes are of the CRLF form, whichever form comes in. */
static void
test_golden_crlf(void)
{
	for (size_t k = 0; k < sizeof(fixtures) / sizeof(fixtures[0]); k++)
		check_fixture(fixtures[k], true);
}

static void
describe(const char *msg, char **env_r, char **bs_r)
{
	char *err = NULL;

	*env_r = *bs_r = NULL;
	TEST_ASSERT(mime_imap_describe(msg, strlen(msg), env_r, bs_r, &err) ==
		    0);
}

static void
test_literal_and_quoting(void)
{
	char *env, *bs;

	describe("Subject: Gr\xc3\xbc\xc3\x9f" "e\r\n"
		 "From: \"a\\\\b\" <x@y>\r\n\r\n",
		 &env, &bs);
	TEST_ASSERT_STREQ(env, "(NIL {7}\r\nGr\xc3\xbc\xc3\x9f" "e "
			       "((\"a\\\\b\" NIL \"x\" \"y\")) "
			       "((\"a\\\\b\" NIL \"x\" \"y\")) "
			       "((\"a\\\\b\" NIL \"x\" \"y\")) "
			       "NIL NIL NIL NIL NIL)");
	TEST_ASSERT_STREQ(bs, "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") "
			      "NIL NIL \"7BIT\" 0 0 NIL NIL NIL NIL)");
	free(env);
	free(bs);
}

static void
test_unterminated_multipart(void)
{
	char *env, *bs;

	describe("Content-Type: multipart/mixed; boundary=b\r\n\r\n"
		 "--b\r\nContent-Type: text/plain\r\n\r\nabc\r\n",
		 &env, &bs);
	TEST_ASSERT_STREQ(bs, "((\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 5 1 "
			      "NIL NIL NIL NIL) \"MIXED\" (\"BOUNDARY\" \"b\") "
			      "NIL NIL NIL)");
	free(env);
	free(bs);
	/* No boundary at all: one empty text part keeps the grammar. */
	describe("Content-Type: multipart/mixed\r\n\r\nbody\r\n", &env, &bs);
	TEST_ASSERT_STREQ(bs, "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") "
			      "NIL NIL \"7BIT\" 0 0 NIL NIL NIL NIL) \"MIXED\" "
			      "NIL NIL NIL NIL)");
	free(env);
	free(bs);
}

static void
test_garbage(void)
{
	static const char *const inputs[] = {
		"",
		"\r\n",
		"no colon here\r\n:\r\n \r\nFrom:\r\n\r\n",
		"From: <<<@@@,,,;;;:::>>>\r\nTo: \"unterminated\r\n"
		"Cc: (comment (nested\r\nBcc: a@\r\n",
		"Content-Type: ;;;\r\nContent-Disposition: ;\r\n\r\nx",
		"Content-Type: message/rfc822\r\n\r\n",
		"Content-Type: multipart/x; boundary=\"\"\r\n\r\n--\r\n",
		"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a--",
		"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n--a\r\n",
	};
	char *env, *bs;

	for (size_t k = 0; k < sizeof(inputs) / sizeof(inputs[0]); k++) {
		describe(inputs[k], &env, &bs);
		TEST_ASSERT(env != NULL && env[0] == '(');
		TEST_ASSERT(bs != NULL && bs[0] == '(');
		free(env);
		free(bs);
	}
}

/*
 * A message/rfc822 part in base64 (RFC 2046 5.2.1 forbids it, mail has
 * it) cannot be walked for the envelope and body that "MESSAGE" "RFC822"
 * promises (RFC 3501 7.4.2): it is an opaque application/octet-stream,
 * and BODY can still be made from the BODYSTRUCTURE (found by tests/fuzz).
 */
static void
test_encoded_message_part(void)
{
	char *env, *bs;
	struct buf b = BUF_INIT;

	describe("Content-Type: multipart/mixed; boundary=b\r\n\r\n"
		 "--b\r\nContent-Type: message/rfc822\r\n"
		 "Content-Transfer-Encoding: base64\r\n\r\n"
		 "U3ViamVjdDogaGkNCg0KYm9keQ0K\r\n--b--\r\n",
		 &env, &bs);
	TEST_ASSERT_STREQ(bs, "((\"APPLICATION\" \"OCTET-STREAM\" NIL NIL NIL "
			      "\"BASE64\" 28 NIL NIL NIL NIL) \"MIXED\" "
			      "(\"BOUNDARY\" \"b\") NIL NIL NIL)");
	TEST_ASSERT(mime_imap_body_strip(bs, &b) == 0);
	TEST_ASSERT_STREQ(b.data, "((\"APPLICATION\" \"OCTET-STREAM\" NIL NIL NIL "
				  "\"BASE64\" 28) \"MIXED\")");
	buf_free(&b);
	free(env);
	free(bs);
}

/* Deep nesting ends in an opaque part instead of deep recursion. */
static void
test_deep_nesting(void)
{
	struct buf b = BUF_INIT;
	char *env, *bs;

	for (int k = 0; k < 200; k++)
		buf_appendf(&b, "Content-Type: multipart/mixed; boundary=b%d"
				"\r\n\r\n--b%d\r\n", k, k);
	buf_appends(&b, "\r\nleaf\r\n");
	describe(b.data, &env, &bs);
	TEST_ASSERT(bs != NULL && strstr(bs, "\"OCTET-STREAM\"") != NULL);
	free(env);
	free(bs);
	buf_free(&b);
}

/* A fixture in CRLF form, as FETCH hands it to mime_imap_part_find. */
static char *
read_crlf(const char *name, size_t *len_r)
{
	char *path = xasprintf(FIXTURES "%s.eml", name);
	size_t len, k;
	char *raw = read_file(path, 1 << 20, &len);
	struct buf b = BUF_INIT;

	free(path);
	TEST_ASSERT(raw != NULL);
	for (k = 0; raw != NULL && k < len; k++) {
		if (raw[k] == '\n')
			buf_appendc(&b, '\r');
		buf_appendc(&b, raw[k]);
	}
	free(raw);
	*len_r = b.len;
	return buf_steal(&b);
}

/* "1.2.3" to numbers; "" is none. */
static size_t
parse_nums(const char *s, unsigned *nums)
{
	size_t n = 0;
	char *end;

	while (*s != '\0') {
		nums[n++] = (unsigned)strtoul(s, &end, 10);
		s = *end == '.' ? end + 1 : end;
	}
	return n;
}

enum which { PART_BODY, PART_MIME, MSG_HEADER, MSG_TEXT };

/* The bytes a section names, or NULL if there is no such part. */
static char *
section(const char *msg, size_t len, const char *nums_text, enum which w)
{
	unsigned nums[16];
	size_t n = parse_nums(nums_text, nums);
	struct mime_imap_part p;

	if (mime_imap_part_find(msg, len, nums, n, &p) < 0)
		return NULL;
	switch (w) {
	case PART_BODY: return xasprintf("%.*s", (int)(p.end - p.body), msg + p.body);
	case PART_MIME: return xasprintf("%.*s", (int)(p.body - p.start), msg + p.start);
	case MSG_HEADER:
		if (!p.message)
			return NULL;
		return xasprintf("%.*s", (int)(p.msg_body - p.body), msg + p.body);
	case MSG_TEXT:
		if (!p.message)
			return NULL;
		return xasprintf("%.*s", (int)(p.end - p.msg_body), msg + p.msg_body);
	}
	return NULL;
}

static void
check_section(const char *msg, size_t len, const char *nums, enum which w,
	      const char *want)
{
	char *got = section(msg, len, nums, w);

	if (want == NULL) {
		TEST_ASSERT(got == NULL);
	} else {
		if (got == NULL || strcmp(got, want) != 0)
			fprintf(stderr, "section %s/%d: got [%s]\n", nums, (int)w,
				got != NULL ? got : "(none)");
		TEST_ASSERT_STREQ(got, want);
	}
	free(got);
}

/* RFC 3501 6.4.5 part numbers over nested multiparts and message/rfc822;
 * expectations written by hand from nested.eml. */
static void
test_part_find_nested(void)
{
	size_t len;
	char *msg = read_crlf("nested", &len);

	check_section(msg, len, "1.1", PART_BODY, "Hello, plain.");
	check_section(msg, len, "1.2", PART_BODY, "<p>Hello, html.</p>");
	check_section(msg, len, "1.2", PART_MIME,
		      "Content-Type: text/html; charset=utf-8\r\n\r\n");
	check_section(msg, len, "1", PART_BODY,
		      "--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
		      "Hello, plain.\r\n--alt\r\nContent-Type: text/html; "
		      "charset=utf-8\r\n\r\n<p>Hello, html.</p>\r\n--alt--");
	check_section(msg, len, "1", PART_MIME,
		      "Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n");
	check_section(msg, len, "2", PART_BODY, "AAECAwQF");
	check_section(msg, len, "3", MSG_HEADER,
		      "From: Carol <carol@example.org>\r\nTo: alice@example.org\r\n"
		      "Subject: Inner\r\nDate: Sun, 22 Nov 2026 12:00:00 +0000\r\n"
		      "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
		      "boundary=\"inner\"\r\n\r\n");
	check_section(msg, len, "3", MSG_TEXT,
		      "--inner\r\nContent-Type: text/plain\r\n\r\nInner text.\r\n"
		      "--inner\r\nContent-Type: text/plain; name=\"note.txt\"\r\n"
		      "Content-Disposition: attachment\r\n\r\nA note\r\n with two "
		      "lines.\r\n--inner--");
	check_section(msg, len, "3.1", PART_BODY, "Inner text.");
	check_section(msg, len, "3.2", PART_BODY, "A note\r\n with two lines.");
	check_section(msg, len, "3.2", PART_MIME,
		      "Content-Type: text/plain; name=\"note.txt\"\r\n"
		      "Content-Disposition: attachment\r\n\r\n");
	/* Parts that are not there. */
	check_section(msg, len, "4", PART_BODY, NULL);
	check_section(msg, len, "1.3", PART_BODY, NULL);
	check_section(msg, len, "1.1.1", PART_BODY, NULL);
	check_section(msg, len, "2.1", PART_BODY, NULL);
	check_section(msg, len, "3.3", PART_BODY, NULL);
	check_section(msg, len, "1.1", MSG_HEADER, NULL); /* not message/rfc822 */
	check_section(msg, len, "0", PART_BODY, NULL);
	free(msg);
}

/* A message that is not multipart has a part 1, its body; inside a
 * message/rfc822 part, the same holds for the message it holds. */
static void
test_part_find_single(void)
{
	size_t len;
	char *msg = read_crlf("plain", &len);
	struct mime_imap_part p;
	unsigned one = 1;

	TEST_ASSERT(mime_imap_part_find(msg, len, NULL, 0, &p) == 0);
	TEST_ASSERT(p.start == 0 && p.end == len && !p.message);
	TEST_ASSERT(mime_imap_part_find(msg, len, &one, 1, &p) == 0);
	TEST_ASSERT(p.start == 0 && p.end == len);
	check_section(msg, len, "2", PART_BODY, NULL);
	check_section(msg, len, "1.1", PART_BODY, NULL);
	free(msg);

	msg = read_crlf("rfc822", &len);
	check_section(msg, len, "2.1", PART_BODY, "Inner body\r\nline two");
	check_section(msg, len, "2.2", PART_BODY, NULL);
	check_section(msg, len, "2", MSG_TEXT, "Inner body\r\nline two");
	free(msg);

	const char *m = "Subject: x\r\n\r\nbody";
	check_section(m, strlen(m), "1", PART_BODY, "body");
	check_section(m, strlen(m), "1", PART_MIME, "Subject: x\r\n\r\n");
}

static void
fields(const char *hdr, const char *const *names, size_t n, bool exclude,
       const char *want)
{
	struct buf b = BUF_INIT;

	mime_imap_header_fields(hdr, strlen(hdr), names, n, exclude, &b);
	TEST_ASSERT_STREQ(b.data != NULL ? b.data : "", want);
	buf_free(&b);
}

/* HEADER.FIELDS[.NOT]: case-insensitive names, folds and order kept, the
 * blank line added only when the header has one. */
static void
test_header_fields(void)
{
	static const char hdr[] = "From: a@b\r\nX-Folded: one\r\n\ttwo\r\n"
				  "subject: Hi\r\nTo: c@d\r\nSUBJECT: again\r\n\r\n";
	static const char *const fs[] = { "SUBJECT", "x-folded" };
	static const char *const from[] = { "From" };

	fields(hdr, fs, 2, false,
	       "X-Folded: one\r\n\ttwo\r\nsubject: Hi\r\nSUBJECT: again\r\n\r\n");
	fields(hdr, fs, 2, true, "From: a@b\r\nTo: c@d\r\n\r\n");
	fields(hdr, from, 1, false, "From: a@b\r\n\r\n");
	fields(hdr, (const char *const[]){ "Nope" }, 1, false, "\r\n");
	/* A header without its empty line (a message with no body). */
	fields("From: a@b\r\nTo: c@d\r\n", from, 1, false, "From: a@b\r\n");
	fields("From: a@b\r\nTo: c@d", from, 1, true, "To: c@d");
	/* "Fromage" is not "From". */
	fields("Fromage: x\r\n\r\n", from, 1, false, "\r\n");
}

/* BODY: BODYSTRUCTURE without extension data, at every level. */
static void
test_body_strip(void)
{
	char *bs = read_golden("rfc822", "bodystructure");
	struct buf b = BUF_INIT;

	TEST_ASSERT(bs != NULL && mime_imap_body_strip(bs, &b) == 0);
	TEST_ASSERT_STREQ(b.data,
		"((\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 10 1)"
		"(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 121 "
		"(\"Sun, 22 Nov 2026 12:00:00 +0000\" \"Inner\" "
		"((NIL NIL \"inner\" \"example.org\")) ((NIL NIL \"inner\" \"example.org\")) "
		"((NIL NIL \"inner\" \"example.org\")) ((NIL NIL \"y\" \"example.org\")) "
		"NIL NIL NIL NIL) (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL "
		"\"7BIT\" 20 2) 7) \"MIXED\")");
	buf_reset(&b);
	TEST_ASSERT(mime_imap_body_strip("(\"TEXT\" \"PLAIN\"", &b) == -1);
	TEST_ASSERT(b.len == 0);
	buf_free(&b);
	free(bs);
}

/* Random bytes built from MIME-ish pieces must never crash. */
static void
test_fuzz(void)
{
	static const char *const pieces[] = {
		"Content-Type: multipart/mixed; boundary=z\r\n",
		"Content-Type: message/rfc822\r\n", "\r\n", "--z\r\n", "--z--\r\n",
		"From: a <b@c>, d:e;\r\n", "x", "\n", "\r", " ", "\"", "(",
		"Content-Type: text/plain; charset*=utf-8''%C3%A9\r\n", "\xff",
	};
	unsigned seed = 12345;
	char *env, *bs;

	for (int round = 0; round < 300; round++) {
		struct buf b = BUF_INIT;
		for (int k = 0; k < 40; k++) {
			seed = seed * 1103515245u + 12345u;
			buf_appends(&b, pieces[(seed >> 16) %
					       (sizeof(pieces) / sizeof(pieces[0]))]);
		}
		describe(b.data, &env, &bs);
		TEST_ASSERT(env != NULL && bs != NULL);
		free(env);
		free(bs);
		/* Any part numbers, found or not, stay inside the message. */
		for (unsigned a = 1; a <= 3; a++) {
			unsigned nums[3] = { a, 1, 2 };
			struct mime_imap_part p;
			for (size_t n = 0; n <= 3; n++) {
				if (mime_imap_part_find(b.data, b.len, nums, n, &p) == 0)
					TEST_ASSERT(p.start <= p.body && p.body <= p.end &&
						    p.end <= b.len &&
						    p.msg_body <= p.end);
			}
		}
		buf_free(&b);
	}
}

int
main(void)
{
	test_run("golden_lf", test_golden_lf);
	test_run("golden_crlf", test_golden_crlf);
	test_run("literal_and_quoting", test_literal_and_quoting);
	test_run("unterminated_multipart", test_unterminated_multipart);
	test_run("garbage", test_garbage);
	test_run("encoded_message_part", test_encoded_message_part);
	test_run("deep_nesting", test_deep_nesting);
	test_run("part_find_nested", test_part_find_nested);
	test_run("part_find_single", test_part_find_single);
	test_run("header_fields", test_header_fields);
	test_run("body_strip", test_body_strip);
	test_run("fuzz", test_fuzz);
	g_mime_shutdown();
	return test_done();
}
