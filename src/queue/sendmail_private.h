#ifndef TERN_QUEUE_SENDMAIL_PRIVATE_H
#define TERN_QUEUE_SENDMAIL_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>

struct buf;
struct config;

/* sendmail_smtp.c: the SMTP side of tern sendmail. Results are sysexits codes. */

/*
 * Submits the message (CRLF line ends, not dot-stuffed) to the local ternd:
 * 0 after its 250 to DATA; 75 if it cannot be reached or answers 4xx; 67
 * if a recipient is refused for good (nothing is sent then); 69 for other
 * 5xx; 76 for a broken dialogue. The reason goes to stderr.
 */
int sendmail_submit(const struct config *cfg, const char *sender, char *const *rcpts,
		    size_t nrcpts, const struct buf *msg, bool verbose);

/*
 * -bs: connects to ternd and relays the SMTP dialogue between stdin/stdout
 * and it until either side closes; bare LF from stdin is sent as CRLF.
 */
int sendmail_relay_stdio(const struct config *cfg, bool verbose);

#endif
