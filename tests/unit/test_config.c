/* Unit tests of the config parser (core/config.c). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/init.h"
#include "core/util.h"
#include "test.h"

static char tmpdir[64];
static char path[128];

static const char minimal[] = "domains = example.org\ndata_dir = var\nusers_file = users\n";

static struct config *
load(const char *text, char **error_r)
{
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	*error_r = NULL;
	return config_load(path, error_r);
}

/* Loading text fails with "PATH:want...". */
static void
expect_error(const char *text, const char *want)
{
	char *error;
	struct config *cfg = load(text, &error);
	TEST_ASSERT(cfg == NULL);
	char *full = xasprintf("%s%s", path, want);
	if (error == NULL || strncmp(error, full, strlen(full)) != 0)
		fprintf(stderr, "got '%s', want '%s...'\n", error ? error : "(null)", full);
	TEST_ASSERT(error != NULL && strncmp(error, full, strlen(full)) == 0);
	free(full);
	free(error);
	config_free(&cfg);
}

static void
test_defaults(void)
{
	char *error;
	struct config *cfg = load(minimal, &error);
	TEST_ASSERT(cfg != NULL);
	if (cfg == NULL)
		return;
	TEST_ASSERT(cfg->message_size_limit == 50 * 1024 * 1024);
	TEST_ASSERT(cfg->recipient_limit == 100);
	TEST_ASSERT(cfg->line_length_limit == 2048);
	TEST_ASSERT(cfg->connections_per_client == 20);
	TEST_ASSERT(cfg->max_connections == 10000);
	TEST_ASSERT(cfg->smtp_timeout == 300);
	TEST_ASSERT(cfg->pop3_timeout == 600);
	TEST_ASSERT(cfg->bad_command_limit == 10);
	TEST_ASSERT(cfg->auth_fail_delay_ms == 2000);
	TEST_ASSERT(cfg->log_level == LOG_LEVEL_INFO);
	TEST_ASSERT(cfg->hostname != NULL && cfg->hostname[0] != '\0');
	TEST_ASSERT(cfg->aliases_file == NULL && cfg->tls_cert == NULL);
	TEST_ASSERT(cfg->run_as_user == NULL);
	TEST_ASSERT(cfg->trusted_networks.count == 0);
	for (int p = 0; p < PROTO_COUNT; p++)
		TEST_ASSERT(cfg->listen[p] == NULL);
	TEST_ASSERT_STREQ(cfg->path, path);
	config_free(&cfg);
	TEST_ASSERT(cfg == NULL);
}

static void
test_values(void)
{
	char *error;
	char *text = xstrdup(
		"data_dir = var\n"
		"users_file = users\n"
		"# a comment\n"
		"\n"
		"  hostname = mx.example.org   # trailing comment\n"
		"domains = Example.ORG, other.net\tthird.info\n"
		"message_size_limit = 10M\n"
		"line_length_limit = 4k\n"
		"recipient_limit = 7\n"
		"log_level = debug\n"
		"run_as_user = tern\n"
		"aliases_file = /etc/tern/aliases\n"
		"tls_cert = tls/cert.pem\n"
		"listen.smtp = 127.0.0.1:2525 [::1]:2525\n"
		"listen.imaps = *:993\n"
		"trusted_networks = 127.0.0.0/8, ::1/128 10.1.0.0/16\n");
	struct config *cfg = load(text, &error);
	free(text);
	TEST_ASSERT(cfg != NULL);
	if (cfg == NULL) {
		fprintf(stderr, "%s\n", error);
		free(error);
		return;
	}
	TEST_ASSERT_STREQ(cfg->hostname, "mx.example.org");
	TEST_ASSERT(cfg->ndomains == 3);
	if (cfg->ndomains == 3) {
		TEST_ASSERT_STREQ(cfg->domains[0], "example.org");
		TEST_ASSERT_STREQ(cfg->domains[1], "other.net");
		TEST_ASSERT_STREQ(cfg->domains[2], "third.info");
	}
	TEST_ASSERT(config_is_local_domain(cfg, "OTHER.net"));
	TEST_ASSERT(!config_is_local_domain(cfg, "example.com"));
	TEST_ASSERT(cfg->message_size_limit == 10 * 1024 * 1024);
	TEST_ASSERT(cfg->line_length_limit == 4096);
	TEST_ASSERT(cfg->recipient_limit == 7);
	TEST_ASSERT(cfg->log_level == LOG_LEVEL_DEBUG);
	TEST_ASSERT_STREQ(cfg->run_as_user, "tern");
	/* Relative paths are relative to the config file's directory. */
	char *want = xasprintf("%s/var", tmpdir);
	TEST_ASSERT_STREQ(cfg->data_dir, want);
	free(want);
	want = xasprintf("%s/tls/cert.pem", tmpdir);
	TEST_ASSERT_STREQ(cfg->tls_cert, want);
	free(want);
	TEST_ASSERT_STREQ(cfg->aliases_file, "/etc/tern/aliases");
	TEST_ASSERT_STREQ(cfg->listen[PROTO_SMTP], "127.0.0.1:2525 [::1]:2525");
	TEST_ASSERT_STREQ(cfg->listen[PROTO_IMAPS], "*:993");
	TEST_ASSERT(cfg->listen[PROTO_POP3] == NULL);

	TEST_ASSERT(cfg->trusted_networks.count == 3);
	struct sockaddr_in in = { .sin_family = AF_INET };
	inet_pton(AF_INET, "10.1.200.3", &in.sin_addr);
	TEST_ASSERT(net_list_match(&cfg->trusted_networks, (struct sockaddr *)&in));
	inet_pton(AF_INET, "10.2.0.1", &in.sin_addr);
	TEST_ASSERT(!net_list_match(&cfg->trusted_networks, (struct sockaddr *)&in));
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
	inet_pton(AF_INET6, "::1", &in6.sin6_addr);
	TEST_ASSERT(net_list_match(&cfg->trusted_networks, (struct sockaddr *)&in6));
	config_free(&cfg);
}

static void
test_errors(void)
{
	expect_error("domains = a.org\nbogus = 1\n", ":2: unknown key 'bogus'");
	expect_error("# c\n\nmessage_size_limit = 10X\n", ":3: message_size_limit: not a size");
	expect_error("message_size_limit = -5\n", ":1: message_size_limit: not a size");
	expect_error("message_size_limit = 5MB\n", ":1: message_size_limit: not a size");
	expect_error("recipient_limit = 5k\n", ":1: recipient_limit: not a whole number");
	expect_error("recipient_limit = 99999999999\n", ":1: recipient_limit: not a whole");
	expect_error("log_level = loud\n", ":1: log_level: one of");
	expect_error("trusted_networks = 10.0.0.0/33\n", ":1: trusted_networks: bad network");
	expect_error("domains =\n", ":1: domains: needs at least one domain");
	expect_error("just words\n", ":1: expected 'key = value'");
	expect_error("listen.smtpx = 1.2.3.4:25\n", ":1: unknown key 'listen.smtpx'");
	/* Missing required keys: the file is named, without a line. */
	expect_error("data_dir = var\nusers_file = u\n", ": 'domains' is required");
	expect_error("domains = a.org\nusers_file = u\n", ": 'data_dir' is required");
	expect_error("domains = a.org\ndata_dir = v\n", ": 'users_file' is required");
	char *text = xasprintf("%sline_length_limit = 100\n", minimal);
	expect_error(text, ": 'line_length_limit' must be at least 512");
	free(text);

	char *error = NULL;
	TEST_ASSERT(config_load("/nonexistent/tern.conf", &error) == NULL);
	TEST_ASSERT(error != NULL && strstr(error, "/nonexistent/tern.conf: cannot read") != NULL);
	free(error);
}

/* What `tern init` writes must load, with the ports it promises. */
static void
test_init_text(void)
{
	struct init_opts o = { .dir = tmpdir, .domain = "example.test", .port_base = 2000 };
	char *text = init_config_text(&o, NULL);
	char *error;
	struct config *cfg = load(text, &error);
	free(text);
	TEST_ASSERT(cfg != NULL);
	if (cfg == NULL) {
		fprintf(stderr, "%s\n", error);
		free(error);
		return;
	}
	TEST_ASSERT_STREQ(cfg->listen[PROTO_SMTP], "127.0.0.1:2025");
	TEST_ASSERT_STREQ(cfg->listen[PROTO_IMAPS], "127.0.0.1:2993");
	TEST_ASSERT_STREQ(cfg->hostname, "mail.example.test");
	TEST_ASSERT(cfg->run_as_user == NULL);
	TEST_ASSERT(cfg->trusted_networks.count == 2);
	config_free(&cfg);

	o.listen_addr = "::1";
	o.hostname = "mx.example.test";
	text = init_config_text(&o, "tern");
	cfg = load(text, &error);
	free(text);
	TEST_ASSERT(cfg != NULL);
	if (cfg != NULL) {
		TEST_ASSERT_STREQ(cfg->listen[PROTO_POP3], "[::1]:2110");
		TEST_ASSERT_STREQ(cfg->run_as_user, "tern");
		TEST_ASSERT_STREQ(cfg->hostname, "mx.example.test");
	}
	config_free(&cfg);
}

int
main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/tern.conf", tmpdir);
	test_run("defaults", test_defaults);
	test_run("values", test_values);
	test_run("errors name file and line", test_errors);
	test_run("tern init's config loads", test_init_text);
	unlink(path);
	rmdir(tmpdir);
	return test_done();
}
