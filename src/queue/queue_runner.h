#ifndef TERN_QUEUE_QUEUE_RUNNER_H
#define TERN_QUEUE_QUEUE_RUNNER_H

/*
 * The queue runner: delivers what the spool holds, inside ternd's event
 * loop. It scans data_dir/spool/queue for recipients that are due (new, or
 * deferred until now), groups them by destination domain into jobs, and
 * runs each job: local recipients are delivered into their Maildir, foreign
 * ones through the SMTP client to the domain's MX hosts (or the transport
 * map's host, or the relayhost). Each recipient's outcome is written to the
 * message's state file (queue_msg.h) before anything else happens to it:
 * delivered, failed for good (a bounce goes to the sender), or deferred
 * with a growing interval; a delay notice goes out after
 * queue_delay_warning and a bounce after queue_lifetime.
 */

#include <stdbool.h>

struct server;
struct queue_runner;

/* NULL with *error_r when the resolver cannot start (a bad dns_servers). */
struct queue_runner *queue_runner_new(struct server *srv, char **error_r);
/* Frees everything; deliveries under way are dropped, their recipients
   left as the state file has them (they are tried again at the next start). */
void queue_runner_free(struct queue_runner **r);
/* Look at the queue soon: something was spooled, or a flush was asked for. */
void queue_runner_kick(struct queue_runner *r);
/*
 * The server is stopping: start nothing new; the deliveries under way go
 * on (ending one mid-DATA could make the next server deliver a message we
 * then send again). Whatever is still open at exit is recorded by _free.
 */
void queue_runner_stop(struct queue_runner *r);
/* No delivery under way (true for NULL). */
bool queue_runner_idle(const struct queue_runner *r);

#endif
