#ifndef TERN_QUEUE_SENDMAIL_H
#define TERN_QUEUE_SENDMAIL_H

/*
 * `tern sendmail` (also a symlink named sendmail): the sendmail(8) command
 * line that cron, scripts and mail(1) use. It reads one message on stdin
 * and submits it over SMTP to the local ternd (the first listen.smtp
 * address; loopback must be in trusted_networks for foreign recipients,
 * as `tern init` writes it). It exits 0 only after ternd's 250 to DATA, so
 * the message is durable; sysexits(3) codes otherwise (75 EX_TEMPFAIL when
 * ternd cannot be reached or answers 4xx, 64 EX_USAGE for bad flags).
 *
 * config_path is the tern config (-c of tern); "-C FILE" in argv overrides
 * it, as sendmail's own -C does. argv[0] is the program name.
 */
int sendmail_main(const char *config_path, int argc, char **argv);

#endif
