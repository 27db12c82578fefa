/* Modified UTF-7 (RFC 3501 §5.1.3): examples, rejects, random round trips. */
#include "test.h"

#include <stdint.h>
#include <stdlib.h>

#include "core/buf.h"
#include "core/mutf7.h"

static char *
enc(const char *utf8)
{
	struct buf b = BUF_INIT;
	char *err = NULL;
	if (mutf7_encode(utf8, strlen(utf8), &b, &err) < 0) {
		free(err);
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

static char *
dec(const char *m)
{
	struct buf b = BUF_INIT;
	char *err = NULL;
	if (mutf7_decode(m, strlen(m), &b, &err) < 0) {
		TEST_ASSERT(err != NULL);
		free(err);
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

static void
check_pair(const char *utf8, const char *m)
{
	char *e = enc(utf8), *d = dec(m);
	TEST_ASSERT_STREQ(e, m);
	TEST_ASSERT_STREQ(d, utf8);
	free(e);
	free(d);
}

static void
test_examples(void)
{
	check_pair("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
	check_pair("&", "&-");
	check_pair("a&b&", "a&-b&-");
	check_pair("", "");
	check_pair("INBOX", "INBOX");
	check_pair("Entwürfe", "Entw&APw-rfe");
	check_pair("é&é", "&AOk-&-&AOk-");
	check_pair("😀", "&2D3eAA-");          /* U+1F600: a surrogate pair */
	check_pair("\t", "&AAk-");             /* control: must be base64 */
	check_pair("ÉÉ", "&AMkAyQ-");
}

static void
test_decode_rejects(void)
{
	static const char *const bad[] = {
		"&", "&U,BTFw", "a&", "&AGE-",     /* unclosed; 'a' in base64 */
		"&AC8-",                           /* '/' hidden in base64 */
		"&AMl-",                           /* non-zero pad bits */
		"&AM-", "&A-", "&AMkA-",           /* bad length, odd bytes */
		"&AM/J-", "&AM=-", "&AM!k-",       /* wrong alphabet */
		"&2D0-", "&3gA-", "&2D0AQQ-",      /* unpaired surrogates */
		"&AAA-",                           /* NUL */
		"&AMk-&AMk-",                      /* two runs back to back */
		"caf\xc3\xa9", "tab\there", "\x7f",  /* raw 8-bit, controls */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *d = dec(bad[i]);
		if (d != NULL)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		TEST_ASSERT(d == NULL);
		free(d);
	}
	/* A NUL inside the counted input is refused too. */
	struct buf b = BUF_INIT;
	char *err = NULL;
	TEST_ASSERT(mutf7_decode("a\0b", 3, &b, &err) < 0);
	free(err);
	buf_free(&b);
}

static void
test_encode_rejects(void)
{
	static const char *const bad[] = {
		"\xc0\xaf",             /* overlong '/' */
		"\xe0\x80\xaf",         /* overlong '/' */
		"\xed\xa0\x80",         /* surrogate U+D800 */
		"\xf4\x90\x80\x80",     /* above U+10FFFF */
		"\xe6\x97",             /* truncated */
		"\x80", "\xff",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *e = enc(bad[i]);
		TEST_ASSERT(e == NULL);
		free(e);
	}
	struct buf b = BUF_INIT;
	char *err = NULL;
	TEST_ASSERT(mutf7_encode("a\0b", 3, &b, &err) < 0);
	free(err);
	buf_free(&b);
}

static size_t
put_utf8(char *p, uint32_t cp)
{
	if (cp < 0x80) {
		p[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		p[0] = (char)(0xc0 | cp >> 6);
		p[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		p[0] = (char)(0xe0 | cp >> 12);
		p[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		p[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	p[0] = (char)(0xf0 | cp >> 18);
	p[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	p[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	p[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

static uint32_t
random_cp(void)
{
	switch (rand() % 4) {
	case 0: return 0x20 + (uint32_t)(rand() % 0x5f);           /* ASCII */
	case 1: return 0x10000 + (uint32_t)(rand() % 0x100000);    /* astral */
	default: {
		uint32_t cp;
		do
			cp = 1 + (uint32_t)(rand() % 0xffff);
		while (cp >= 0xd800 && cp <= 0xdfff);
		return cp;
	}
	}
}

static void
test_random_round_trips(void)
{
	srand(42);
	for (int round = 0; round < 2000; round++) {
		char s[64 * 4 + 1];
		size_t n = 0, count = (size_t)(rand() % 64);
		for (size_t i = 0; i < count; i++)
			n += put_utf8(s + n, random_cp());
		s[n] = '\0';
		char *e = enc(s);
		TEST_ASSERT(e != NULL);
		if (e == NULL)
			continue;
		for (char *c = e; *c != '\0'; c++)
			TEST_ASSERT(*c >= 0x20 && *c <= 0x7e);
		char *d = dec(e);
		TEST_ASSERT_STREQ(d, s);
		free(d);
		free(e);
	}
}

int
main(void)
{
	test_run("mutf7 RFC examples", test_examples);
	test_run("mutf7 decode rejects", test_decode_rejects);
	test_run("mutf7 encode rejects", test_encode_rejects);
	test_run("mutf7 random round trips", test_random_round_trips);
	return test_done();
}
