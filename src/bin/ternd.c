/* ternd: the mail server daemon. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "imap/imap_session.h"
#include "io/server.h"
#include "pop3/pop3_session.h"
#include "smtp/smtp_session.h"

static void
usage(void)
{
	fprintf(stderr, "usage: ternd [-d] -c FILE\n"
			"  -c FILE  the config file (see docs/configuration.md)\n"
			"  -d       detach and log to syslog (default: foreground, log to stderr)\n");
}

int
main(int argc, char **argv)
{
	const char *config_path = "/etc/tern/tern.conf";
	bool detach = false;
	int opt;
	while ((opt = getopt(argc, argv, "c:dh")) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 'd': detach = true; break;
		default: usage(); return 2;
		}
	}
	if (optind != argc) {
		usage();
		return 2;
	}
	/* The protocols this build serves; listeners of the others are skipped. */
	session_start_fn *const starts[PROTO_COUNT] = {
		[PROTO_SMTP] = smtp_session_start,
		[PROTO_SUBMISSION] = smtp_session_start,
		[PROTO_SUBMISSIONS] = smtp_session_start,
		[PROTO_POP3] = pop3_session_start,
		[PROTO_POP3S] = pop3_session_start,
		[PROTO_IMAP] = imap_session_start,
		[PROTO_IMAPS] = imap_session_start,
	};
	return server_main(config_path, detach, starts);
}
