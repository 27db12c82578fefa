#include <stdlib.h>
#include <string.h>

#include "imap/imap_seqset.h"
#include "test.h"

static struct imap_seqset *
parse(const char *s)
{
	struct imap_seqset *set = NULL;
	const char *error = NULL;

	if (imap_seqset_parse(s, strlen(s), 0, &set, &error) < 0) {
		TEST_ASSERT(error != NULL);
		return NULL;
	}
	return set;
}

static void
test_basic(void)
{
	struct imap_seqset *set = parse("1,3:5,7:*,*");

	TEST_ASSERT(set != NULL);
	if (set == NULL)
		return;
	TEST_ASSERT(imap_seqset_has_star(set));
	TEST_ASSERT(imap_seqset_contains(set, 1, 10));
	TEST_ASSERT(!imap_seqset_contains(set, 2, 10));
	TEST_ASSERT(imap_seqset_contains(set, 4, 10));
	TEST_ASSERT(!imap_seqset_contains(set, 6, 10));
	TEST_ASSERT(imap_seqset_contains(set, 10, 10));
	TEST_ASSERT(!imap_seqset_contains(set, 11, 10));
	/* another "*" value resolves again */
	TEST_ASSERT(imap_seqset_contains(set, 11, 20));
	/* "7:*" with * = 5 is 5:7 (§9 seq-range: order does not matter) */
	TEST_ASSERT(imap_seqset_contains(set, 7, 5));
	TEST_ASSERT(!imap_seqset_contains(set, 8, 5));
	TEST_ASSERT(imap_seqset_contains(set, 5, 5));
	TEST_ASSERT(imap_seqset_contains(set, 6, 6));

	size_t n;
	const struct imap_seq_range *r = imap_seqset_ranges(set, 8, &n);
	TEST_ASSERT(n == 3);
	TEST_ASSERT(r[0].first == 1 && r[0].last == 1);
	TEST_ASSERT(r[1].first == 3 && r[1].last == 5);
	TEST_ASSERT(r[2].first == 7 && r[2].last == 8);

	struct imap_seqset_iter it;
	uint32_t v, got[16];
	size_t k = 0;
	imap_seqset_iter_init(&it, set, 8);
	while (imap_seqset_iter_next(&it, &v) && k < 16)
		got[k++] = v;
	TEST_ASSERT(k == 6);
	TEST_ASSERT(k == 6 && got[0] == 1 && got[1] == 3 && got[3] == 5 && got[4] == 7 &&
		    got[5] == 8);
	imap_seqset_free(&set);
	TEST_ASSERT(set == NULL);
}

static void
test_reversed(void)
{
	struct imap_seqset *a = parse("5:1"), *b = parse("1:5");
	size_t na, nb;

	TEST_ASSERT(a != NULL && b != NULL);
	if (a == NULL || b == NULL)
		return;
	const struct imap_seq_range *ra = imap_seqset_ranges(a, 100, &na);
	const struct imap_seq_range *rb = imap_seqset_ranges(b, 100, &nb);
	TEST_ASSERT(na == 1 && nb == 1);
	TEST_ASSERT(ra[0].first == rb[0].first && ra[0].last == rb[0].last);
	TEST_ASSERT(ra[0].first == 1 && ra[0].last == 5);
	imap_seqset_free(&a);
	imap_seqset_free(&b);

	/* "*:3" with * = 2 is 2:3; overlaps merge, duplicates come once */
	a = parse("*:3,2,1:2,9,8");
	const struct imap_seq_range *r = imap_seqset_ranges(a, 2, &na);
	TEST_ASSERT(na == 2);
	TEST_ASSERT(r[0].first == 1 && r[0].last == 3);
	TEST_ASSERT(r[1].first == 8 && r[1].last == 9);
	imap_seqset_free(&a);
}

static void
test_star_empty(void)
{
	struct imap_seqset *set = parse("*");
	size_t n;

	TEST_ASSERT(set != NULL);
	(void)imap_seqset_ranges(set, 0, &n);
	TEST_ASSERT(n == 0);
	TEST_ASSERT(!imap_seqset_contains(set, 1, 0));
	TEST_ASSERT(imap_seqset_contains(set, 3, 3));
	imap_seqset_free(&set);

	set = parse("4294967295");
	TEST_ASSERT(set != NULL);
	TEST_ASSERT(set && imap_seqset_contains(set, 4294967295u, 1));
	TEST_ASSERT(set && !imap_seqset_has_star(set));
	imap_seqset_free(&set);

	set = parse("1:4294967295");
	struct imap_seqset_iter it;
	uint32_t v;
	imap_seqset_iter_init(&it, set, 1);
	TEST_ASSERT(imap_seqset_iter_next(&it, &v) && v == 1);
	imap_seqset_free(&set);
}

static void
test_errors(void)
{
	static const char *const bad[] = {
		"", "0", "1:0", "0:*", "01", "4294967296", "99999999999999999999", "1,",
		",1", "1::2", "1:", "a", "1 2", "1,,2", "**", "1:*:2", "-1", "+1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct imap_seqset *set = parse(bad[i]);
		if (set != NULL)
			fprintf(stderr, "accepted '%s'\n", bad[i]);
		TEST_ASSERT(set == NULL);
		imap_seqset_free(&set);
	}
}

static void
test_bound(void)
{
	/* 100,001 ranges: refused with a clear reason, quickly */
	size_t cap = 100001 * 8 + 1, len = 0;
	char *s = malloc(cap);
	for (int i = 0; i < 100001; i++)
		len += (size_t)snprintf(s + len, cap - len, "%s%d", i ? "," : "", i * 2 + 1);
	struct imap_seqset *set = NULL;
	const char *error = NULL;
	TEST_ASSERT(imap_seqset_parse(s, len, 0, &set, &error) < 0);
	TEST_ASSERT_STREQ(error, "Too many ranges in sequence set");
	TEST_ASSERT(set == NULL);

	/* 100,000 are fine and contains stays fast (binary search) */
	char *comma = strrchr(s, ',');
	TEST_ASSERT(imap_seqset_parse(s, (size_t)(comma - s), 0, &set, &error) == 0);
	size_t hits = 0;
	for (uint32_t n = 1; n <= 200000; n++)
		hits += imap_seqset_contains(set, n, 1);
	TEST_ASSERT(hits == 100000);
	imap_seqset_free(&set);
	TEST_ASSERT(imap_seqset_parse("1,2,3", 5, 2, &set, &error) < 0);
	free(s);
}

int
main(void)
{
	test_run("imap_seqset_basic", test_basic);
	test_run("imap_seqset_reversed", test_reversed);
	test_run("imap_seqset_star_empty", test_star_empty);
	test_run("imap_seqset_errors", test_errors);
	test_run("imap_seqset_bound", test_bound);
	return test_done();
}
