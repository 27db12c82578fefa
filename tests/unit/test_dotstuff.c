#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/dotstuff.h"
#include "test.h"

/*
 * Feeds in to a fresh decoder in pieces cut at the given offsets (sorted,
 * inside in); returns the decoded text, sets *consumed_r to the bytes used
 * and *done_r to whether the end marker was seen.
 */
static char *
decode_split(const char *in, size_t n, const size_t *cuts, size_t ncuts,
	     size_t *consumed_r, bool *done_r)
{
	struct dot_decoder d;
	struct buf out = BUF_INIT;
	size_t pos = 0;
	bool done = false;
	dot_decoder_init(&d);
	for (size_t k = 0; k <= ncuts && !done; k++) {
		size_t end = k < ncuts ? cuts[k] : n;
		while (pos < end && !done) {
			size_t used = dot_decode(&d, in + pos, end - pos, &out, &done);
			pos += used;
			if (used == 0)
				break;
		}
	}
	*consumed_r = pos;
	*done_r = done;
	buf_appends(&out, ""); /* make sure data is allocated */
	return buf_steal(&out);
}

static char *
decode_all(const char *in, size_t *consumed_r, bool *done_r)
{
	return decode_split(in, strlen(in), NULL, 0, consumed_r, done_r);
}

static void
test_decode_simple(void)
{
	size_t used;
	bool done;
	const char *in = "Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n";
	char *out = decode_all(in, &used, &done);
	TEST_ASSERT(done);
	TEST_ASSERT_STREQ(out, "Subject: x\r\n\r\nhello\r\n");
	TEST_ASSERT(used == strlen(in) - strlen("QUIT\r\n"));
	free(out);
}

static void
test_decode_unstuff(void)
{
	size_t used;
	bool done;
	char *out = decode_all("..\r\n...x\r\n.y\r\na.b\r\n.\r\n", &used, &done);
	TEST_ASSERT(done);
	TEST_ASSERT_STREQ(out, ".\r\n..x\r\ny\r\na.b\r\n");
	free(out);
}

static void
test_decode_end_at_start(void)
{
	size_t used;
	bool done;
	/* The CRLF of the DATA line precedes the data: "." CRLF ends at once. */
	char *out = decode_all(".\r\nNOOP\r\n", &used, &done);
	TEST_ASSERT(done);
	TEST_ASSERT(used == 3);
	TEST_ASSERT_STREQ(out, "");
	free(out);
}

static void
test_decode_bare_line_ends(void)
{
	size_t used;
	bool done;
	/* Neither LF "." CRLF nor CRLF "." LF nor CR "." CR LF ends the data. */
	const char *in = "a\n.\r\nb\r\n.\nc\r.\r\nd\r\n.\r\n";
	char *out = decode_all(in, &used, &done);
	TEST_ASSERT(done);
	TEST_ASSERT(used == strlen(in));
	TEST_ASSERT_STREQ(out, "a\n.\r\nb\r\n\nc\r.\r\nd\r\n");
	free(out);

	out = decode_all("a\n.\r\n", &used, &done);
	TEST_ASSERT(!done);
	TEST_ASSERT_STREQ(out, "a\n.\r\n");
	free(out);
}

static void
test_decode_dot_cr_other(void)
{
	size_t used;
	bool done;
	/* "." CR followed by something else: dot removed, CR kept. */
	char *out = decode_all(".\rx\r\n.\r\r\n.\r\n", &used, &done);
	TEST_ASSERT(done);
	TEST_ASSERT_STREQ(out, "\rx\r\n\r\r\n");
	free(out);
}

static const char tricky[] =
	".\rz\r\n..\r\n.x\r\n\r\n\n.\r\n\r\r\n.\n..\r\nend\r\r\n.\r\nNEXT\r\n";

static void
test_decode_every_split(void)
{
	size_t n = strlen(tricky);
	size_t used0;
	bool done0;
	char *whole = decode_all(tricky, &used0, &done0);
	TEST_ASSERT(done0);
	TEST_ASSERT(used0 == n - strlen("NEXT\r\n"));
	TEST_ASSERT_STREQ(whole, "\rz\r\n.\r\nx\r\n\r\n\n.\r\n\r\r\n\n..\r\nend\r\r\n");
	for (size_t i = 1; i < n; i++) {
		for (size_t j = i; j < n; j++) {
			size_t cuts[2] = { i, j };
			size_t used;
			bool done;
			char *out = decode_split(tricky, n, cuts, 2, &used, &done);
			TEST_ASSERT(done);
			TEST_ASSERT(used == used0);
			TEST_ASSERT_STREQ(out, whole);
			free(out);
		}
	}
	/* One byte at a time. */
	size_t cuts[sizeof(tricky)];
	for (size_t i = 0; i < n; i++)
		cuts[i] = i + 1;
	size_t used;
	bool done;
	char *out = decode_split(tricky, n, cuts, n, &used, &done);
	TEST_ASSERT(done && used == used0);
	TEST_ASSERT_STREQ(out, whole);
	free(out);
	free(whole);
}

static char *
encode_chunks(const char *in, size_t chunk)
{
	struct dot_encoder e;
	struct buf out = BUF_INIT;
	size_t n = strlen(in);
	dot_encoder_init(&e);
	for (size_t pos = 0; pos < n; pos += chunk)
		dot_encode(&e, in + pos, n - pos < chunk ? n - pos : chunk, &out);
	dot_encode_finish(&e, &out);
	return buf_steal(&out);
}

static void
test_encode(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "", ".\r\n" },
		{ "a\nb\n", "a\r\nb\r\n.\r\n" },
		{ "a\r\nb\r\n", "a\r\nb\r\n.\r\n" },
		{ ".\n..x\nok.\n", "..\r\n...x\r\nok.\r\n.\r\n" },
		{ "no end", "no end\r\n.\r\n" },
		{ "cr at end\r", "cr at end\r\n.\r\n" },
		{ "\n.\n", "\r\n..\r\n.\r\n" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t chunk = 1; chunk <= 12; chunk++) {
			char *out = encode_chunks(cases[i].in, chunk);
			TEST_ASSERT_STREQ(out, cases[i].out);
			free(out);
		}
	}
}

static void
test_roundtrip(void)
{
	const char *msg = "From: a\r\n\r\n.\r\n..\r\n.hidden\r\nlast";
	char *wire = encode_chunks(msg, 5);
	size_t used;
	bool done;
	char *back = decode_all(wire, &used, &done);
	TEST_ASSERT(done);
	TEST_ASSERT(used == strlen(wire));
	TEST_ASSERT_STREQ(back, "From: a\r\n\r\n.\r\n..\r\n.hidden\r\nlast\r\n");
	free(back);
	free(wire);
}

int
main(void)
{
	test_run("decode_simple", test_decode_simple);
	test_run("decode_unstuff", test_decode_unstuff);
	test_run("decode_end_at_start", test_decode_end_at_start);
	test_run("decode_bare_line_ends", test_decode_bare_line_ends);
	test_run("decode_dot_cr_other", test_decode_dot_cr_other);
	test_run("decode_every_split", test_decode_every_split);
	test_run("encode", test_encode);
	test_run("roundtrip", test_roundtrip);
	return test_done();
}
