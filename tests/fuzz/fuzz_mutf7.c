/*
 * Fuzz target: mailbox names in modified UTF-7 (RFC 3501 §5.1.3). Any
 * bytes go through both directions; what decodes must encode back to the
 * same bytes (one spelling per name), and what encodes must decode back
 * to the same UTF-8.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/mutf7.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct buf a = BUF_INIT, b = BUF_INIT;
	char *error = NULL;
	if (mutf7_decode(in, size, &a, &error) == 0) {
		if (mutf7_encode(a.data != NULL ? a.data : "", a.len, &b, &error) < 0 ||
		    b.len != size || memcmp(b.data != NULL ? b.data : "", in, size) != 0)
			abort();
	}
	free(error);
	error = NULL;
	buf_reset(&a);
	buf_reset(&b);
	if (mutf7_encode(in, size, &a, &error) == 0) {
		if (mutf7_decode(a.data != NULL ? a.data : "", a.len, &b, &error) < 0 ||
		    b.len != size || memcmp(b.data != NULL ? b.data : "", in, size) != 0)
			abort();
	}
	free(error);
	buf_free(&a);
	buf_free(&b);
	return 0;
}
