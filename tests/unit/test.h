#ifndef TERN_TEST_H
#define TERN_TEST_H

/*
 * The unit-test harness: TEST_ASSERT records a failure and goes on,
 * test_run runs one test function, test_done prints the closing line
 * ("N passed, N failed") and gives the exit code.
 */
#include <stdio.h>
#include <string.h>

static int test_failures_now;
static int test_passed, test_failed;

#define TEST_ASSERT(cond)                                                      \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: assertion failed: %s\n",       \
				__FILE__, __LINE__, #cond);                    \
			test_failures_now++;                                   \
		}                                                              \
	} while (0)

#define TEST_ASSERT_STREQ(a, b)                                                \
	do {                                                                   \
		const char *test_a_ = (a), *test_b_ = (b);                     \
		if (test_a_ == NULL || test_b_ == NULL ||                      \
		    strcmp(test_a_, test_b_) != 0) {                           \
			fprintf(stderr, "%s:%d: '%s' != '%s'\n", __FILE__,     \
				__LINE__, test_a_ ? test_a_ : "(null)",        \
				test_b_ ? test_b_ : "(null)");                 \
			test_failures_now++;                                   \
		}                                                              \
	} while (0)

static inline void
test_run(const char *name, void (*fn)(void))
{
	test_failures_now = 0;
	fn();
	if (test_failures_now == 0) {
		test_passed++;
		printf("ok   %s\n", name);
	} else {
		test_failed++;
		printf("FAIL %s\n", name);
	}
}

static inline int
test_done(void)
{
	printf("%d passed, %d failed\n", test_passed, test_failed);
	return test_failed == 0 ? 0 : 1;
}

#endif
