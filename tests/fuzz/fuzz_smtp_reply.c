/*
 * Fuzz target: what a remote SMTP server answers the relay client, one
 * line each: the reply reader, the enhanced status code taken from it,
 * and, for a 250, the EHLO keywords read from it. Another server's bytes
 * are as untrusted as a client's.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_client_private.h"

static void
reply_done(struct smtpc_reply *r)
{
	char enhanced[16];
	smtpc_reply_enhanced(r, enhanced);
	if (memchr(enhanced, '\0', sizeof(enhanced)) == NULL)
		abort();
	if (r->code == 250) {
		struct smtpc_ext ext;
		smtpc_ext_parse(r, &ext);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtpc_reply r;
	memset(&r, 0, sizeof(r));
	const char *line = (const char *)data, *end = line + size;
	while (line < end) {
		const char *lf = memchr(line, '\n', (size_t)(end - line));
		size_t len = (size_t)((lf != NULL ? lf : end) - line);
		if (len > 0 && line[len - 1] == '\r')
			len--;
		enum smtpc_feed f = smtpc_reply_feed(&r, line, len);
		if (f == SMTPC_FEED_DONE) {
			reply_done(&r);
			smtpc_reply_reset(&r);
		} else if (f == SMTPC_FEED_GARBAGE) {
			smtpc_reply_reset(&r); /* the client drops the connection */
		}
		line = lf != NULL ? lf + 1 : end;
	}
	smtpc_reply_reset(&r);
	buf_free(&r.text);
	return 0;
}
