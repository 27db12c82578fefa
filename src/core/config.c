#include "core/config.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/util.h"

static const char *const proto_names[PROTO_COUNT] = {
	"smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps",
};
static const unsigned proto_ports[PROTO_COUNT] = { 25, 587, 465, 110, 995, 143, 993 };

const char *
proto_name(enum proto p)
{
	return proto_names[p];
}

unsigned
proto_std_port(enum proto p)
{
	return proto_ports[p];
}

enum key_type { KEY_STRING, KEY_PATH, KEY_SIZE, KEY_UINT, KEY_DOMAINS, KEY_NETS, KEY_SNI,
		KEY_LOGLEVEL, KEY_DURATION, KEY_TRANSPORT, KEY_BOOL };

struct config_key {
	const char *name;
	enum key_type type;
	size_t offset;
};

#define K(name, type, field) { name, type, offsetof(struct config, field) }
#define ACCESS(name, p) K("access." name ".allow", KEY_NETS, access_allow[p]), \
			K("access." name ".deny", KEY_NETS, access_deny[p])


/* Every key the file may hold; docs/configuration.md documents each. */
static const struct config_key config_keys[] = {
	K("hostname", KEY_STRING, hostname),
	K("domains", KEY_DOMAINS, domains),
	K("data_dir", KEY_PATH, data_dir),
	K("users_file", KEY_PATH, users_file),
	K("aliases_file", KEY_PATH, aliases_file),
	K("run_as_user", KEY_STRING, run_as_user),
	K("tls_cert", KEY_PATH, tls_cert),
	K("tls_key", KEY_PATH, tls_key),
	K("tls_sni", KEY_SNI, tls_sni),
	K("trusted_networks", KEY_NETS, trusted_networks),
	K("dns_servers", KEY_STRING, dns_servers),
	K("message_size_limit", KEY_SIZE, message_size_limit),
	K("recipient_limit", KEY_UINT, recipient_limit),
	K("line_length_limit", KEY_SIZE, line_length_limit),
	K("connections_per_client", KEY_UINT, connections_per_client),
	K("max_connections", KEY_UINT, max_connections),
	K("smtp_timeout", KEY_UINT, smtp_timeout),
	K("pop3_timeout", KEY_UINT, pop3_timeout),
	K("bad_command_limit", KEY_UINT, bad_command_limit),
	K("auth_fail_delay_ms", KEY_UINT, auth_fail_delay_ms),
	K("auth_block_after", KEY_UINT, auth_block_after),
	K("auth_block_seconds", KEY_UINT, auth_block_seconds),
	K("auth_max_failures", KEY_UINT, auth_max_failures),
	K("plaintext_auth_networks", KEY_NETS, plaintext_auth_networks),
	ACCESS("smtp", PROTO_SMTP),
	ACCESS("submission", PROTO_SUBMISSION),
	ACCESS("submissions", PROTO_SUBMISSIONS),
	ACCESS("pop3", PROTO_POP3),
	ACCESS("pop3s", PROTO_POP3S),
	ACCESS("imap", PROTO_IMAP),
	ACCESS("imaps", PROTO_IMAPS),
	K("log_level", KEY_LOGLEVEL, log_level),
	K("queue_hold", KEY_BOOL, queue_hold),
	K("queue_retry_min", KEY_DURATION, queue_retry_min),
	K("queue_retry_max", KEY_DURATION, queue_retry_max),
	K("queue_delay_warning", KEY_DURATION, queue_delay_warning),
	K("queue_lifetime", KEY_DURATION, queue_lifetime),
	K("queue_concurrency", KEY_UINT, queue_concurrency),
	K("queue_domain_concurrency", KEY_UINT, queue_domain_concurrency),
	K("max_received", KEY_UINT, max_received),
	K("relay_port", KEY_UINT, relay_port),
	K("relayhost", KEY_STRING, relayhost),
	K("relayhost_user", KEY_STRING, relayhost_user),
	K("relayhost_password", KEY_STRING, relayhost_password),
	K("relay_tls_ca", KEY_PATH, relay_tls_ca),
	K("transport", KEY_TRANSPORT, transport),
};

static const struct {
	const char *name;
	int proto;
} listen_keys[] = {
	{ "listen.smtp", PROTO_SMTP },
	{ "listen.submission", PROTO_SUBMISSION },
	{ "listen.submissions", PROTO_SUBMISSIONS },
	{ "listen.pop3", PROTO_POP3 },
	{ "listen.pop3s", PROTO_POP3S },
	{ "listen.imap", PROTO_IMAP },
	{ "listen.imaps", PROTO_IMAPS },
};

static void
config_defaults(struct config *cfg)
{
	char host[256];
	if (gethostname(host, sizeof(host)) < 0)
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	cfg->hostname = xstrdup(host);
	cfg->message_size_limit = 50 * 1024 * 1024;
	cfg->recipient_limit = 100;
	/* RFC 5321 §4.5.3.1.4: 512 octets is the minimum a server must take. */
	cfg->line_length_limit = 2048;
	cfg->connections_per_client = 20;
	cfg->max_connections = 10000;
	/* RFC 5321 §4.5.3.2.7: at least 5 minutes. */
	cfg->smtp_timeout = 300;
	/* RFC 1939 §3: at least 10 minutes. */
	cfg->pop3_timeout = 600;
	cfg->bad_command_limit = 10;
	cfg->auth_fail_delay_ms = 2000;
	cfg->auth_block_after = 10;
	cfg->auth_block_seconds = 600;
	cfg->auth_max_failures = 3;
	char *bad = NULL;
	if (net_list_parse("127.0.0.0/8 ::1", &cfg->plaintext_auth_networks, &bad) < 0)
		abort();
	cfg->log_level = LOG_LEVEL_INFO;
	/* The schedule issue 5 and RFC 5321 §4.5.4.1 suggest: retry after
	   15 minutes at first, warn after 4 hours, give up after 5 days. */
	cfg->queue_retry_min = 15 * 60;
	cfg->queue_retry_max = 2 * 3600;
	cfg->queue_delay_warning = 4 * 3600;
	cfg->queue_lifetime = 5 * 86400;
	cfg->queue_concurrency = 20;
	cfg->queue_domain_concurrency = 4;
	cfg->max_received = 50;
	cfg->relay_port = 25;
}

static int parse_uint(const char *s, unsigned *out);

/* "90", "30s", "15m", "4h", "5d": seconds. */
static int
parse_duration(const char *s, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (end == s || errno != 0 || s[0] == '-')
		return -1;
	unsigned long unit = 1;
	switch (*end) {
	case '\0': case 's': break;
	case 'm': unit = 60; break;
	case 'h': unit = 3600; break;
	case 'd': unit = 86400; break;
	default: return -1;
	}
	if (*end != '\0' && end[1] != '\0')
		return -1;
	if (v > UINT_MAX / unit)
		return -1;
	*out = (unsigned)(v * unit);
	return 0;
}

/* "DOMAIN HOST[:PORT]" (an IPv6 host in brackets), port 25 by default. */
static int
parse_transport(struct config *cfg, const char *value)
{
	char domain[256], dest[300], rest[2];
	if (sscanf(value, "%255s %299s %1s", domain, dest, rest) != 2)
		return -1;
	unsigned port = 25;
	char *colon = strrchr(dest, ':');
	char *bracket = strrchr(dest, ']');
	if (colon != NULL && (bracket == NULL || colon > bracket)) {
		*colon = '\0';
		if (parse_uint(colon + 1, &port) < 0 || port == 0 || port > 65535)
			return -1;
	}
	if (dest[0] == '\0')
		return -1;
	cfg->transport = xrealloc(cfg->transport,
				  (cfg->ntransport + 1) * sizeof(*cfg->transport));
	struct config_transport *t = &cfg->transport[cfg->ntransport++];
	t->domain = str_lower(xstrdup(domain));
	t->host = xstrdup(dest);
	t->port = port;
	return 0;
}

/* "50M", "64k", "1G" or plain bytes. */
static int
parse_size(const char *s, size_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (end == s || errno != 0 || *s == '-')
		return -1;
	unsigned long long mult = 1;
	if (*end != '\0') {
		switch (*end) {
		case 'k': case 'K': mult = 1024ULL; break;
		case 'm': case 'M': mult = 1024ULL * 1024; break;
		case 'g': case 'G': mult = 1024ULL * 1024 * 1024; break;
		default: return -1;
		}
		if (end[1] != '\0')
			return -1;
	}
	if (v > SIZE_MAX / mult)
		return -1;
	*out = (size_t)(v * mult);
	return 0;
}

static int
parse_uint(const char *s, unsigned *out)
{
	size_t v;
	if (parse_size(s, &v) < 0 || strpbrk(s, "kKmMgG") != NULL || v > UINT_MAX)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static char *
resolve_path(const char *cfg_path, const char *value)
{
	if (value[0] == '/')
		return xstrdup(value);
	/* Relative paths are relative to the config file's directory. */
	const char *slash = strrchr(cfg_path, '/');
	if (slash == NULL)
		return xstrdup(value);
	return xasprintf("%.*s/%s", (int)(slash - cfg_path), cfg_path, value);
}

static int
parse_domains(struct config *cfg, const char *value)
{
	/* Like every other key, a second "domains" line replaces the first. */
	for (size_t i = 0; i < cfg->ndomains; i++)
		free(cfg->domains[i]);
	cfg->ndomains = 0;
	char *copy = xstrdup(value), *save = NULL;
	for (char *d = strtok_r(copy, " ,\t", &save); d != NULL;
	     d = strtok_r(NULL, " ,\t", &save)) {
		cfg->domains = xrealloc(cfg->domains, (cfg->ndomains + 1) * sizeof(char *));
		cfg->domains[cfg->ndomains++] = str_lower(xstrdup(d));
	}
	free(copy);
	return cfg->ndomains > 0 ? 0 : -1;
}

/* "HOSTNAME CERT KEY"; unlike other keys, each line adds one more. */
static int
parse_sni(struct config *cfg, const char *value)
{
	char host[256], cert[1024], key[1024], rest[2];
	if (sscanf(value, "%255s %1023s %1023s %1s", host, cert, key, rest) != 3)
		return -1;
	cfg->tls_sni = xrealloc(cfg->tls_sni, (cfg->ntls_sni + 1) * sizeof(*cfg->tls_sni));
	struct config_sni *sni = &cfg->tls_sni[cfg->ntls_sni++];
	sni->hostname = str_lower(xstrdup(host));
	sni->cert = resolve_path(cfg->path, cert);
	sni->key = resolve_path(cfg->path, key);
	return 0;
}

static int
set_key(struct config *cfg, const char *key, const char *value, char **why_r)
{
	for (size_t i = 0; i < sizeof(listen_keys) / sizeof(listen_keys[0]); i++) {
		if (strcmp(key, listen_keys[i].name) != 0)
			continue;
		free(cfg->listen[listen_keys[i].proto]);
		cfg->listen[listen_keys[i].proto] = value[0] ? xstrdup(value) : NULL;
		return 0;
	}
	for (size_t i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]); i++) {
		const struct config_key *k = &config_keys[i];
		if (strcmp(key, k->name) != 0)
			continue;
		void *field = (char *)cfg + k->offset;
		char *bad = NULL;
		switch (k->type) {
		case KEY_STRING:
		case KEY_PATH:
			free(*(char **)field);
			*(char **)field = value[0] == '\0' ? NULL
				: k->type == KEY_PATH ? resolve_path(cfg->path, value)
						      : xstrdup(value);
			return 0;
		case KEY_SIZE:
			if (parse_size(value, field) == 0)
				return 0;
			*why_r = xasprintf("%s: not a size (bytes, or with k, M, G)", key);
			return -1;
		case KEY_UINT:
			if (parse_uint(value, field) == 0)
				return 0;
			*why_r = xasprintf("%s: not a whole number", key);
			return -1;
		case KEY_DOMAINS:
			if (parse_domains(cfg, value) == 0)
				return 0;
			*why_r = xasprintf("%s: needs at least one domain", key);
			return -1;
		case KEY_SNI:
			if (parse_sni(cfg, value) == 0)
				return 0;
			*why_r = xasprintf("%s: expected HOSTNAME CERTFILE KEYFILE", key);
			return -1;
		case KEY_NETS:
			net_list_free(field);
			if (net_list_parse(value, field, &bad) == 0)
				return 0;
			*why_r = xasprintf("%s: bad network '%s'", key, bad);
			free(bad);
			return -1;
		case KEY_BOOL:
			if (strcasecmp(value, "yes") == 0 || strcasecmp(value, "on") == 0 ||
			    strcmp(value, "1") == 0 || strcasecmp(value, "true") == 0) {
				*(bool *)field = true;
				return 0;
			}
			if (strcasecmp(value, "no") == 0 || strcasecmp(value, "off") == 0 ||
			    strcmp(value, "0") == 0 || strcasecmp(value, "false") == 0) {
				*(bool *)field = false;
				return 0;
			}
			*why_r = xasprintf("%s: expected yes or no", key);
			return -1;
		case KEY_DURATION:
			if (parse_duration(value, field) == 0)
				return 0;
			*why_r = xasprintf("%s: not a duration (seconds, or with s, m, h, d)", key);
			return -1;
		case KEY_TRANSPORT:
			if (parse_transport(cfg, value) == 0)
				return 0;
			*why_r = xasprintf("%s: expected DOMAIN HOST[:PORT]", key);
			return -1;
		case KEY_LOGLEVEL:
			if (log_level_parse(value, field) == 0)
				return 0;
			*why_r = xasprintf("%s: one of debug, info, warning, error", key);
			return -1;
		}
	}
	*why_r = xasprintf("unknown key '%s'", key);
	return -1;
}

static int
config_check(struct config *cfg, char **why_r)
{
	if (cfg->ndomains == 0)
		*why_r = xstrdup("'domains' is required");
	else if (cfg->data_dir == NULL)
		*why_r = xstrdup("'data_dir' is required");
	else if (cfg->users_file == NULL)
		*why_r = xstrdup("'users_file' is required");
	else if (cfg->line_length_limit < 512)
		*why_r = xstrdup("'line_length_limit' must be at least 512 (RFC 5321 §4.5.3.1.4)");
	else if (cfg->message_size_limit < 1024)
		*why_r = xstrdup("'message_size_limit' must be at least 1k");
	else if (cfg->recipient_limit == 0 || cfg->max_connections == 0 ||
		 cfg->connections_per_client == 0)
		*why_r = xstrdup("recipient_limit, max_connections and "
				 "connections_per_client must be at least 1");
	else if (cfg->smtp_timeout == 0 || cfg->pop3_timeout == 0)
		*why_r = xstrdup("smtp_timeout and pop3_timeout must be at least 1 second");
	else
		return 0;
	return -1;
}

struct config *
config_load(const char *path, char **error_r)
{
	size_t len;
	char *text = read_file(path, 1 << 20, &len);
	if (text == NULL) {
		*error_r = xasprintf("%s: cannot read: %s", path, strerror(errno));
		return NULL;
	}
	struct config *cfg = xcalloc(1, sizeof(*cfg));
	cfg->path = xstrdup(path);
	config_defaults(cfg);
	int lineno = 0;
	char *why = NULL;
	/* strtok_r would skip empty lines and so miscount: walk by hand. */
	for (char *line = text, *next; line != NULL; line = next) {
		lineno++;
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		char *hash = strchr(line, '#');
		if (hash != NULL)
			*hash = '\0';
		char *s = str_trim(line);
		if (*s == '\0')
			continue;
		char *eq = strchr(s, '=');
		if (eq == NULL) {
			why = xasprintf("expected 'key = value', got '%s'", s);
			goto fail;
		}
		*eq = '\0';
		if (set_key(cfg, str_trim(s), str_trim(eq + 1), &why) < 0)
			goto fail;
	}
	free(text);
	if (config_check(cfg, &why) < 0) {
		*error_r = xasprintf("%s: %s", path, why);
		free(why);
		config_free(&cfg);
		return NULL;
	}
	return cfg;
fail:
	*error_r = xasprintf("%s:%d: %s", path, lineno, why);
	free(why);
	free(text);
	config_free(&cfg);
	return NULL;
}

void
config_free(struct config **cfgp)
{
	struct config *cfg = *cfgp;
	if (cfg == NULL)
		return;
	free(cfg->path);
	free(cfg->hostname);
	for (size_t i = 0; i < cfg->ndomains; i++)
		free(cfg->domains[i]);
	free(cfg->domains);
	free(cfg->data_dir);
	free(cfg->users_file);
	free(cfg->aliases_file);
	free(cfg->run_as_user);
	free(cfg->tls_cert);
	free(cfg->tls_key);
	for (size_t i = 0; i < cfg->ntls_sni; i++) {
		free(cfg->tls_sni[i].hostname);
		free(cfg->tls_sni[i].cert);
		free(cfg->tls_sni[i].key);
	}
	free(cfg->tls_sni);
	for (int i = 0; i < PROTO_COUNT; i++)
		free(cfg->listen[i]);
	free(cfg->dns_servers);
	free(cfg->relayhost);
	free(cfg->relayhost_user);
	free(cfg->relayhost_password);
	free(cfg->relay_tls_ca);
	for (size_t i = 0; i < cfg->ntransport; i++) {
		free(cfg->transport[i].domain);
		free(cfg->transport[i].host);
	}
	free(cfg->transport);
	net_list_free(&cfg->trusted_networks);
	net_list_free(&cfg->plaintext_auth_networks);
	for (int i = 0; i < PROTO_COUNT; i++) {
		net_list_free(&cfg->access_allow[i]);
		net_list_free(&cfg->access_deny[i]);
	}
	free(cfg);
	*cfgp = NULL;
}

bool
config_is_local_domain(const struct config *cfg, const char *domain)
{
	for (size_t i = 0; i < cfg->ndomains; i++)
		if (strcasecmp(cfg->domains[i], domain) == 0)
			return true;
	return false;
}
