/* `tern init`: writes a complete, working site into one directory. */
#include "core/init.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/util.h"

/* The unprivileged user ternd drops to when started as root. */
#define INIT_RUN_AS "tern"

static const char *
init_hostname(const struct init_opts *o, char **owned_r)
{
	*owned_r = NULL;
	if (o->hostname != NULL)
		return o->hostname;
	if (strcmp(o->domain, "localhost") == 0)
		return "localhost";
	*owned_r = xasprintf("mail.%s", o->domain);
	return *owned_r;
}

/* "ADDR:PORT", with brackets around an IPv6 address. */
static char *
init_listen(const struct init_opts *o, enum proto p)
{
	const char *addr = o->listen_addr ? o->listen_addr : "127.0.0.1";
	unsigned port = o->port_base + proto_std_port(p);
	if (strchr(addr, ':') != NULL && addr[0] != '[')
		return xasprintf("[%s]:%u", addr, port);
	return xasprintf("%s:%u", addr, port);
}

static void
init_config_listeners(const struct init_opts *o, struct buf *b)
{
	buf_appends(b,
		"# Listeners: \"ADDR:PORT\", several separated by blanks; \"*:PORT\" is\n"
		"# every address, \"[::1]:PORT\" an IPv6 one. Empty or absent: off.\n"
		"# smtp: mail from other servers (STARTTLS offered). submission and\n"
		"# submissions (TLS from the start): mail from your users, who must log in.\n");
	for (enum proto p = 0; p < PROTO_COUNT; p++) {
		char *l = init_listen(o, p);
		buf_appendf(b, "listen.%s = %s\n", proto_name(p), l);
		free(l);
	}
}

char *
init_config_text(const struct init_opts *o, const char *run_as_user)
{
	char *owned;
	const char *host = init_hostname(o, &owned);
	struct buf b = BUF_INIT;
	buf_appendf(&b,
		"# tern.conf, written by `tern init`. Every key is described in\n"
		"# docs/configuration.md. Relative paths are relative to this file's\n"
		"# directory. Check an edited file with: tern -c FILE check-config\n"
		"\n"
		"# Our name in the SMTP greeting and Received: headers; the MX record\n"
		"# of each domain should point to it.\n"
		"hostname = %s\n"
		"# The mail domains served here, separated by blanks or commas. The\n"
		"# first is the default: a login or alias target without '@' gets it.\n"
		"domains = %s\n"
		"\n"
		"# Mailboxes (data/mail/DOMAIN/USER) and the queue (data/spool).\n"
		"data_dir = data\n"
		"# \"user@domain:HASH\" lines; edit with `tern user add|passwd|del`.\n"
		"users_file = users\n"
		"# \"name: address, address\" lines, as /etc/aliases.\n"
		"aliases_file = aliases\n"
		"\n", host, o->domain);
	if (run_as_user != NULL)
		buf_appendf(&b, "# ternd started as root drops to this user after binding the ports.\n"
				"run_as_user = %s\n", run_as_user);
	else
		buf_appends(&b, "# ternd started as root drops to this user after binding the ports.\n"
				"# Empty: it keeps running as whoever started it. Create a system\n"
				"# user 'tern' (useradd -r tern) and set: run_as_user = tern\n"
				"run_as_user =\n");
	buf_appends(&b,
		"\n"
		"# A self-signed certificate; replace it with one from your CA (the\n"
		"# full chain, leaf first) to be trusted by clients.\n"
		"tls_cert = tls/cert.pem\n"
		"tls_key = tls/key.pem\n"
		"\n");
	init_config_listeners(o, &b);
	buf_appends(&b,
		"\n"
		"# Clients in these networks may relay without logging in (CIDR list).\n"
		"trusted_networks = 127.0.0.0/8 ::1/128\n"
		"\n"
		"# Limits; the values shown are the defaults.\n"
		"# message_size_limit = 50M\n"
		"# recipient_limit = 100\n"
		"# line_length_limit = 2048\n"
		"# connections_per_client = 20\n"
		"# max_connections = 10000\n"
		"# smtp_timeout = 300\n"
		"# pop3_timeout = 600\n"
		"# bad_command_limit = 10\n"
		"# auth_fail_delay_ms = 2000\n"
		"\n"
		"# debug, info, warning or error.\n"
		"log_level = info\n");
	free(owned);
	return buf_steal(&b);
}

/* Creates path with text unless it exists; 1 if written, 0 if kept. */
static int
init_write_new(const char *path, const char *text, mode_t mode, char **error_r)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0 && errno == EEXIST)
		return 0;
	if (fd < 0 || fchmod(fd, mode) < 0 || write_all(fd, text, strlen(text)) < 0 ||
	    fsync(fd) < 0) {
		*error_r = xasprintf("%s: %s", path, strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(path);
		}
		return -1;
	}
	if (close(fd) < 0) {
		*error_r = xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	return 1;
}

static int
init_add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return -1;
	int r = X509_add_ext(x, ext, -1) == 1 ? 0 : -1;
	X509_EXTENSION_free(ext);
	return r;
}

/* A self-signed certificate for host, valid ten years, like `openssl req -x509`. */
static X509 *
init_make_cert(EVP_PKEY *key, const char *host, const char *ip)
{
	X509 *x = X509_new();
	BIGNUM *serial = BN_new();
	char *san = ip ? xasprintf("DNS:%s,IP:%s", host, ip) : xasprintf("DNS:%s", host);
	X509_NAME *name = X509_get_subject_name(x);
	bool ok = x != NULL && serial != NULL && X509_set_version(x, 2) == 1 &&
		BN_rand(serial, 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
		BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) != NULL &&
		X509_gmtime_adj(X509_getm_notBefore(x), 0) != NULL &&
		X509_gmtime_adj(X509_getm_notAfter(x), 3650L * 86400) != NULL &&
		X509_set_pubkey(x, key) == 1 &&
		X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
					   (const unsigned char *)host, -1, -1, 0) == 1 &&
		X509_set_issuer_name(x, name) == 1 &&
		init_add_ext(x, NID_basic_constraints, "critical,CA:TRUE") == 0 &&
		init_add_ext(x, NID_subject_key_identifier, "hash") == 0 &&
		init_add_ext(x, NID_authority_key_identifier, "keyid:always") == 0 &&
		init_add_ext(x, NID_subject_alt_name, san) == 0 &&
		X509_sign(x, key, EVP_sha256()) > 0;
	free(san);
	BN_free(serial);
	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* Opens path for a new PEM file with the given mode. */
static FILE *
init_pem_open(const char *path, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return NULL;
	if (fchmod(fd, mode) < 0) {
		close(fd);
		return NULL;
	}
	return fdopen(fd, "w");
}

static int
init_pem_close(FILE *f, bool ok)
{
	if (f == NULL)
		return -1;
	ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
	return fclose(f) == 0 && ok ? 0 : -1;
}

static int
init_write_cert(const char *cert_path, const char *key_path, const char *host,
		const char *ip, char **error_r)
{
	EVP_PKEY *key = EVP_RSA_gen(2048);
	X509 *x = key ? init_make_cert(key, host, ip) : NULL;
	if (x == NULL) {
		*error_r = xstrdup("cannot make a certificate (OpenSSL error)");
		EVP_PKEY_free(key);
		return -1;
	}
	int r = 0;
	FILE *f = init_pem_open(key_path, 0600);
	if (init_pem_close(f, f && PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)) < 0) {
		*error_r = xasprintf("%s: %s", key_path, strerror(errno));
		r = -1;
	}
	f = r == 0 ? init_pem_open(cert_path, 0644) : NULL;
	if (r == 0 && init_pem_close(f, f && PEM_write_X509(f, x)) < 0) {
		*error_r = xasprintf("%s: %s", cert_path, strerror(errno));
		r = -1;
	}
	X509_free(x);
	EVP_PKEY_free(key);
	return r;
}

/* The IP literal to put in the certificate, if the listeners use one. */
static const char *
init_cert_ip(const struct init_opts *o)
{
	const char *a = o->listen_addr ? o->listen_addr : "127.0.0.1";
	if (strcmp(a, "*") == 0 || strcmp(a, "0.0.0.0") == 0 || strcmp(a, "::") == 0)
		return NULL;
	if (strspn(a, "0123456789.") == strlen(a) || strchr(a, ':') != NULL)
		return a;
	return NULL;
}

static char *
init_aliases_text(const char *domain)
{
	return xasprintf(
		"# Aliases: \"name: address, address, ...\". A name without '@' applies to\n"
		"# every domain in tern.conf; an address without '@' is in the first one.\n"
		"# Lines starting with a blank continue the line above.\n"
		"#\n"
		"# postmaster must reach a person (RFC 5321 section 4.5.1), and so should\n"
		"# abuse (RFC 2142). Create the user admin@%s, or point these elsewhere.\n"
		"postmaster: admin@%s\n"
		"abuse: admin@%s\n", domain, domain, domain);
}

/* A DNS name: letters, digits, '-' and inner dots. */
static bool
init_name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 253 || s[0] == '.' || s[0] == '-' || s[n - 1] == '.' ||
	    strstr(s, "..") != NULL)
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == n;
}

static int
init_check_opts(const struct init_opts *o, char **error_r)
{
	if (!init_name_valid(o->domain))
		*error_r = xasprintf("'%s' is not a domain name", o->domain);
	else if (o->hostname != NULL && !init_name_valid(o->hostname))
		*error_r = xasprintf("'%s' is not a host name", o->hostname);
	else if (o->port_base > 65535 - 995)
		*error_r = xasprintf("port base %u: the IMAPS port would pass 65535", o->port_base);
	else if (o->listen_addr != NULL && (o->listen_addr[0] == '\0' ||
					    strpbrk(o->listen_addr, " \t,#") != NULL))
		*error_r = xasprintf("'%s' is not a listen address", o->listen_addr);
	else
		return 0;
	return -1;
}

/*
 * Files ternd must read after dropping privileges belong to root and its
 * group (0640); the data directory belongs to it. Nothing to do unless
 * we run as root and the user exists.
 */
static void
init_give(const char *path, const struct passwd *pw, bool own)
{
	if (pw != NULL)
		(void)!chown(path, own ? pw->pw_uid : 0, pw->pw_gid);
}

static void
init_report(FILE *out, const char *path, int written)
{
	fprintf(out, "%s %s\n", written ? "wrote" : "kept ", path);
}

static int
init_files(const struct init_opts *o, const struct passwd *pw, FILE *out, char **error_r)
{
	char *data = xasprintf("%s/data", o->dir), *tls = xasprintf("%s/tls", o->dir);
	char *users = xasprintf("%s/users", o->dir), *aliases = xasprintf("%s/aliases", o->dir);
	char *cert = xasprintf("%s/cert.pem", tls), *key = xasprintf("%s/key.pem", tls);
	char *aliases_text = init_aliases_text(o->domain), *owned;
	const char *host = init_hostname(o, &owned);
	int r = -1, w;
	if (mkdir_p(data, 0700) < 0 || mkdir_p(tls, 0755) < 0) {
		*error_r = xasprintf("%s: %s", o->dir, strerror(errno));
		goto out;
	}
	init_give(data, pw, true);
	fprintf(out, "made  %s/\n", data);
	if ((w = init_write_new(users, "", 0640, error_r)) < 0)
		goto out;
	init_give(users, pw, false);
	init_report(out, users, w);
	if ((w = init_write_new(aliases, aliases_text, 0640, error_r)) < 0)
		goto out;
	init_give(aliases, pw, false);
	init_report(out, aliases, w);
	w = access(cert, F_OK) != 0 || access(key, F_OK) != 0;
	if (w && init_write_cert(cert, key, host, init_cert_ip(o), error_r) < 0)
		goto out;
	if (pw != NULL && chmod(key, 0640) == 0)
		init_give(key, pw, false);
	init_report(out, cert, w);
	init_report(out, key, w);
	r = 0;
out:
	free(data);
	free(tls);
	free(users);
	free(aliases);
	free(cert);
	free(key);
	free(aliases_text);
	free(owned);
	return r;
}

static void
init_print_next(const struct init_opts *o, const char *conf, bool have_pw, FILE *out)
{
	char *owned;
	const char *host = init_hostname(o, &owned);
	const char *d = o->domain;
	fprintf(out, "\nListeners:\n");
	for (enum proto p = 0; p < PROTO_COUNT; p++) {
		char *l = init_listen(o, p);
		fprintf(out, "  %-12s %s\n", proto_name(p), l);
		free(l);
	}
	fprintf(out,
		"\nNext steps:\n"
		"  1. Create the user that postmaster@%s and abuse@%s go to\n"
		"     (or edit %s/aliases):\n"
		"       tern -c %s user add admin@%s\n"
		"  2. Check the configuration:  tern -c %s check-config\n"
		"  3. Start the server:         ternd -c %s\n",
		d, d, o->dir, conf, d, conf, conf);
	if (geteuid() == 0 && !have_pw)
		fprintf(out, "  (No user '" INIT_RUN_AS "' exists: create one with "
			     "`useradd -r " INIT_RUN_AS "` and set run_as_user in %s.)\n", conf);
	fprintf(out,
		"\nDNS records to publish, for mail from the Internet:\n"
		"  %s. IN MX 10 %s.\n"
		"  %s. IN TXT \"v=spf1 mx -all\"\n"
		"  _dmarc.%s. IN TXT \"v=DMARC1; p=quarantine\"\n"
		"and A (and AAAA) records for %s. with this machine's public address,\n"
		"whose reverse (PTR) records name %s. again.\n",
		d, host, d, d, host, host);
	free(owned);
}

int
init_site(const struct init_opts *o, FILE *out, char **error_r)
{
	if (init_check_opts(o, error_r) < 0)
		return -1;
	char *conf = xasprintf("%s/tern.conf", o->dir);
	int r = -1;
	if (access(conf, F_OK) == 0) {
		*error_r = xasprintf("%s exists already; not overwriting it", conf);
		goto out;
	}
	if (mkdir_p(o->dir, 0755) < 0) {
		*error_r = xasprintf("%s: %s", o->dir, strerror(errno));
		goto out;
	}
	const struct passwd *pw = geteuid() == 0 ? getpwnam(INIT_RUN_AS) : NULL;
	bool have_pw = pw != NULL;
	if (init_files(o, pw, out, error_r) < 0)
		goto out;
	/* tern.conf comes last, so that a failed run can simply be repeated. */
	char *text = init_config_text(o, have_pw ? INIT_RUN_AS : NULL);
	int w = init_write_new(conf, text, 0644, error_r);
	free(text);
	if (w <= 0) {
		if (w == 0)
			*error_r = xasprintf("%s exists already; not overwriting it", conf);
		goto out;
	}
	init_report(out, conf, 1);
	init_print_next(o, conf, have_pw, out);
	r = 0;
out:
	free(conf);
	return r;
}
