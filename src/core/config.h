#ifndef TERN_CORE_CONFIG_H
#define TERN_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "core/log.h"
#include "core/net.h"

/* The protocols a listener can speak; the order fixes the listen.* key names. */
enum proto {
	PROTO_SMTP,
	PROTO_SUBMISSION,
	PROTO_SUBMISSIONS,
	PROTO_POP3,
	PROTO_POP3S,
	PROTO_IMAP,
	PROTO_IMAPS,
	PROTO_COUNT
};

const char *proto_name(enum proto p);
/* The standard port of each protocol: 25, 587, 465, 110, 995, 143, 993. */
unsigned proto_std_port(enum proto p);

/* One "tls_sni = HOSTNAME CERT KEY" line. */
struct config_sni {
	char *hostname; /* exact, or "*.example.org" */
	char *cert;
	char *key;
};

/* One "transport = DOMAIN HOST[:PORT]" line: where that domain's mail goes. */
struct config_transport {
	char *domain;   /* lower case */
	char *host;     /* a name, an IPv4 address or an IPv6 address in [] */
	unsigned port;
};

struct config {
	char *path;           /* the file it was read from */
	char *hostname;       /* our name in greetings and Received: */
	char **domains;       /* domains served; domains[0] is the default */
	size_t ndomains;
	char *data_dir;       /* mail/, spool/ and state live under here */
	char *users_file;
	char *aliases_file;
	char *run_as_user;    /* drop to this user when started as root */
	char *tls_cert;
	char *tls_key;
	struct config_sni *tls_sni; /* more certificates, chosen by SNI */
	size_t ntls_sni;
	char *listen[PROTO_COUNT]; /* "addr:port ..." per protocol, or NULL */
	struct net_list trusted_networks;
	char *dns_servers;    /* "ip[:port],..." for relaying, NULL: resolv.conf */

	size_t message_size_limit;  /* bytes */
	unsigned recipient_limit;   /* RCPT per message */
	size_t line_length_limit;   /* bytes per command line */
	unsigned connections_per_client;
	unsigned max_connections;
	unsigned smtp_timeout;      /* seconds idle before the session is closed */
	unsigned pop3_timeout;
	unsigned bad_command_limit; /* bad commands in a row before we hang up */
	unsigned auth_fail_delay_ms;  /* delay after the first failed login */
	unsigned auth_block_after;    /* failures before an address/user is blocked */
	unsigned auth_block_seconds;  /* how long a block lasts */
	unsigned auth_max_failures;   /* failed logins per connection before hang-up */
	/* Where passwords may cross in clear (without TLS): loopback by default. */
	struct net_list plaintext_auth_networks;
	/* Per listener protocol, TCP-wrappers style: allow wins, then deny. */
	struct net_list access_allow[PROTO_COUNT];
	struct net_list access_deny[PROTO_COUNT];
	enum log_level log_level;

	/* The queue and relay (queue/queue_runner.c). Durations in seconds. */
	bool queue_hold;              /* deliver nothing from the queue (maintenance) */
	unsigned queue_retry_min;     /* the first retry interval; doubles after */
	unsigned queue_retry_max;     /* the longest interval between tries */
	unsigned queue_delay_warning; /* a delay notice after this long */
	unsigned queue_lifetime;      /* a bounce after this long */
	unsigned queue_concurrency;   /* deliveries at once, in all */
	unsigned queue_domain_concurrency; /* deliveries at once to one domain */
	unsigned max_received;        /* more Received: fields than this: a loop */
	unsigned relay_port;          /* the port of MX hosts (25) */
	char *relayhost;              /* HOST[:PORT]: all foreign mail goes there */
	char *relayhost_user;         /* AUTH for the relayhost (TLS required) */
	char *relayhost_password;
	char *relay_tls_ca;           /* verify the relayhost's certificate */
	struct config_transport *transport;
	size_t ntransport;
};

/*
 * Reads the config file. On error returns NULL and sets *error_r to a
 * message of the form "FILE:LINE: ..." that the caller must free.
 */
struct config *config_load(const char *path, char **error_r);
void config_free(struct config **cfg);
bool config_is_local_domain(const struct config *cfg, const char *domain);

#endif
