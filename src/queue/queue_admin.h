#ifndef TERN_QUEUE_QUEUE_ADMIN_H
#define TERN_QUEUE_QUEUE_ADMIN_H

struct config;

/*
 * `tern queue list|show ID|del ID|flush [ID]` (argv[0] is the subcommand).
 * Prints to stdout, errors to stderr; returns the exit code (0, 1 on an
 * error, 2 on a usage error).
 *
 * A hidden subcommand for tests and debugging, `tern queue dsn ID
 * failure|delay`, prints the notice dsn_build makes from the message's
 * current state (nothing is sent or marked).
 */
int queue_admin_main(const struct config *cfg, int argc, char **argv);

#endif
