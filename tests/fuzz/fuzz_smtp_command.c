/*
 * Fuzz target: SMTP command lines as a client sends them (one per line),
 * through the verb split and the MAIL/RCPT path parser, and the bytes
 * after them through the header scan of DATA. Checks that a parsed
 * address fits the limits of RFC 5321 §4.5.3.1 that the parser enforces.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_parse.h"

static void
try_line(char *line)
{
	char verb[SMTP_VERB_MAX + 1];
	char *args;
	if (smtp_parse_command(line, verb, &args) < 0)
		return;
	if (strcmp(verb, "MAIL") != 0 && strcmp(verb, "RCPT") != 0)
		return;
	struct smtp_path path = { 0 };
	const char *error;
	if (smtp_parse_path(args, verb[0] == 'M' ? SMTP_PATH_MAIL : SMTP_PATH_RCPT, &path,
			    &error) == 0) {
		if (strlen(path.address) > SMTP_PATH_MAX || path.nparams > SMTP_PARAMS_MAX)
			abort();
		smtp_address_domain(path.address);
		for (size_t i = 0; i < path.nparams; i++)
			if (path.params[i].keyword == NULL)
				abort();
	} else if (strncmp(error, "5", 1) != 0) {
		abort();
	}
	smtp_path_clear(&path);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1);
	memcpy(copy, data, size);
	copy[size] = '\0';
	char *line = copy, *end = copy + size;
	while (line < end) {
		char *lf = memchr(line, '\n', (size_t)(end - line));
		size_t len = (size_t)((lf != NULL ? lf : end) - line);
		char *next = lf != NULL ? lf + 1 : end;
		if (len > 0 && line[len - 1] == '\r')
			len--;
		line[len] = '\0';
		/* The session refuses a line with a NUL in it before parsing. */
		if (memchr(line, '\0', len) == NULL)
			try_line(line);
		line = next;
	}
	free(copy);
	unsigned fields;
	size_t hdr = smtp_header_scan((const char *)data, size, &fields);
	if (hdr > size)
		abort();
	return 0;
}
