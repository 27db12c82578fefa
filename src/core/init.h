#ifndef TERN_CORE_INIT_H
#define TERN_CORE_INIT_H

#include <stdio.h>

/*
 * `tern init`: a complete, working site in one directory: tern.conf, an
 * empty users file, aliases for postmaster and abuse, the data directory
 * and a self-signed certificate.
 */
struct init_opts {
	const char *dir;
	const char *domain;
	const char *hostname;    /* NULL: "mail.DOMAIN" ("localhost" for localhost) */
	const char *listen_addr; /* NULL: 127.0.0.1 */
	unsigned port_base;      /* each listener on port_base + its standard port */
};

/*
 * Writes the site and reports each step, then the next steps and the DNS
 * records to publish, on out. Refuses a directory that has a tern.conf.
 */
int init_site(const struct init_opts *opts, FILE *out, char **error_r);

/* The whole tern.conf text for these options (a new string). */
char *init_config_text(const struct init_opts *opts, const char *run_as_user);

#endif
