#ifndef TERN_QUEUE_SPOOL_H
#define TERN_QUEUE_SPOOL_H

#include <stddef.h>
#include <sys/types.h>

/*
 * The spool: messages waiting for relay (or a retried local delivery), one
 * file per message, DATA_DIR/spool/queue/ID, written as DATA_DIR/spool/tmp/ID
 * first and moved into queue/ only once complete and fsynced.
 *
 * File format (text envelope, then the message exactly as received):
 *
 *   created 1718000000\n          arrival time, seconds since the epoch
 *   sender <alice@example.org>\n  the reverse-path; "<>" for a bounce
 *   rcpt <bob@example.net> pending\n   one line per recipient with its state
 *   \n                            a blank line ends the envelope
 *   Received: ...\r\n             the message, CRLF line ends, not dot-stuffed
 *
 * Addresses never contain a line end (smtp_parse allows none), but a quoted
 * local part may contain blanks: readers take what is between the first '<'
 * and the last '>' of the line.
 *
 * The queue file is never changed once it is in queue/: the word after each
 * recipient is always "pending" and readers ignore it. What happened to each
 * recipient since (deferred, delivered, failed, attempts, next try, last
 * reply) lives in DATA_DIR/spool/queue/ID.state, written whole by
 * queue_msg_save (format in queue_msg.c); no state file means every
 * recipient is pending and due now. Removing a message deletes ID.state,
 * then ID.
 */

/*
 * Writes a queue file for the recipients with body_len bytes of body_fd
 * (read from offset 0). Returns 0 only when the file is durable in queue/
 * (file fsynced, linked, directory fsynced), with its ID in id_r; -1 is a
 * temporary failure with *error_r (a new string).
 */
int spool_enqueue(const char *data_dir, const char *sender, char *const *rcpts,
		  size_t nrcpts, int body_fd, off_t body_len, char id_r[13], char **error_r);

#endif
