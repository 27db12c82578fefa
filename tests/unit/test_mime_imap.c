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
	test_run("deep_nesting", test_deep_nesting);
	test_run("fuzz", test_fuzz);
	g_mime_shutdown();
	return test_done();
}
