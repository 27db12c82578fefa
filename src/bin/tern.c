/* tern: the admin tool (init, user, check-config, reindex, queue, sendmail). */
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "auth/aliases.h"
#include "auth/userdb.h"
#include "core/config.h"
#include "core/init.h"
#include "core/log.h"
#include "core/util.h"
#include "queue/queue_admin.h"
#include "queue/sendmail.h"
#include "store/folders.h"
#include "store/index.h"
#include "store/store.h"

/* Passwords longer than this are refused: they are typed, not pasted books. */
#define TERN_PASSWORD_MAX 1024

static const char usage_text[] =
	"usage: tern init DIR --domain DOMAIN [--port-base N] [--listen ADDR]\n"
	"                 [--hostname HOST]\n"
	"       tern [-c FILE] user add|passwd ADDRESS [--password-stdin]\n"
	"       tern [-c FILE] user del ADDRESS\n"
	"       tern [-c FILE] user list\n"
	"       tern [-c FILE] check-config\n"
	"       tern [-c FILE] reindex ADDRESS\n"
	"       tern [-c FILE] queue list|show ID|del ID|flush [ID]\n"
	"       tern [-c FILE] sendmail [-t] [-i] [-f SENDER] [-F NAME] [-bs] [RCPT ...]\n"
	"\n"
	"  init          write a working site into DIR: tern.conf, users, aliases,\n"
	"                data/ and a self-signed certificate; listeners on N plus\n"
	"                each standard port (default N = 0, ADDR = 127.0.0.1)\n"
	"  user          add, change the password of, delete or list users; an\n"
	"                ADDRESS without '@' is in the first of the config's domains\n"
	"  check-config  load the config, users and aliases and report problems\n"
	"  reindex       rebuild a user's IMAP index from the Maildir (UIDs kept)\n"
	"  queue         the relay queue: list it, show, delete a message, or make\n"
	"                messages due now and wake ternd (flush)\n"
	"  sendmail      sendmail(8): submit a message from stdin to the local ternd\n"
	"                (also when tern is run through a link named sendmail)\n"
	"  -c FILE       the config file (default /etc/tern/tern.conf)\n"
	"  --password-stdin  read the password from the first line of stdin\n"
	"                (default: ask twice on the terminal)\n";

static int
usage(void)
{
	fputs(usage_text, stderr);
	return 2;
}

/* ---- tern init ---- */

struct init_flag {
	const char *name;
	size_t offset; /* of the const char * in struct init_opts */
};

static const struct init_flag init_flags[] = {
	{ "--domain", offsetof(struct init_opts, domain) },
	{ "--hostname", offsetof(struct init_opts, hostname) },
	{ "--listen", offsetof(struct init_opts, listen_addr) },
};

static int
parse_port_base(const char *s, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || *s == '-' || v > 65535)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int
cmd_init(int argc, char **argv)
{
	struct init_opts o = { 0 };
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		bool known = false;
		for (size_t f = 0; f < sizeof(init_flags) / sizeof(init_flags[0]); f++) {
			if (strcmp(a, init_flags[f].name) != 0)
				continue;
			if (++i == argc)
				return usage();
			*(const char **)((char *)&o + init_flags[f].offset) = argv[i];
			known = true;
		}
		if (known)
			continue;
		if (strcmp(a, "--port-base") == 0) {
			if (++i == argc || parse_port_base(argv[i], &o.port_base) < 0) {
				fprintf(stderr, "tern: --port-base needs a number 0..64540\n");
				return 2;
			}
		} else if (a[0] != '-' && o.dir == NULL) {
			o.dir = a;
		} else {
			return usage();
		}
	}
	if (o.dir == NULL || o.domain == NULL)
		return usage();
	char *error = NULL;
	if (init_site(&o, stdout, &error) < 0) {
		fprintf(stderr, "tern: init: %s\n", error);
		free(error);
		return 1;
	}
	return 0;
}

/* ---- passwords ---- */

/* Reads one line (without its end) into a new string; NULL at EOF or too long. */
static char *
read_password_line(FILE *in)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, in);
	if (n < 0 || n > TERN_PASSWORD_MAX) {
		if (line != NULL)
			explicit_bzero(line, cap);
		free(line);
		return NULL;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

static char *
prompt_password(const char *prompt)
{
	struct termios saved, quiet;
	if (tcgetattr(STDIN_FILENO, &saved) < 0)
		return NULL;
	quiet = saved;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	fputs(prompt, stderr);
	fflush(stderr);
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) < 0)
		return NULL;
	char *pw = read_password_line(stdin);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
	return pw;
}

static void
password_free(char **pw)
{
	if (*pw != NULL)
		explicit_bzero(*pw, strlen(*pw));
	free(*pw);
	*pw = NULL;
}

static char *
get_password(bool from_stdin)
{
	char *pw = NULL, *again = NULL;
	if (from_stdin) {
		pw = read_password_line(stdin);
	} else if (!isatty(STDIN_FILENO)) {
		fprintf(stderr, "tern: stdin is no terminal: use --password-stdin\n");
		return NULL;
	} else {
		pw = prompt_password("New password: ");
		again = pw ? prompt_password("Again: ") : NULL;
		if (pw != NULL && (again == NULL || strcmp(pw, again) != 0)) {
			fprintf(stderr, "tern: the passwords differ\n");
			password_free(&pw);
			password_free(&again);
			return NULL;
		}
		password_free(&again);
	}
	if (pw == NULL)
		fprintf(stderr, "tern: no password read (at most %d bytes)\n", TERN_PASSWORD_MAX);
	else if (pw[0] == '\0') {
		fprintf(stderr, "tern: the password is empty\n");
		password_free(&pw);
	}
	return pw;
}

/* ---- tern user ---- */

/* The canonical address of arg, if it is in a domain this config serves. */
static char *
user_address(const struct config *cfg, const char *arg)
{
	struct userdb *db = userdb_open(cfg->users_file, cfg->domains[0]);
	char *address = userdb_canonical(db, arg);
	userdb_free(&db);
	const char *at = strchr(address, '@');
	if (at != NULL && !config_is_local_domain(cfg, at + 1)) {
		fprintf(stderr, "tern: %s: domain '%s' is not in 'domains' of %s\n",
			address, at + 1, cfg->path);
		free(address);
		return NULL;
	}
	return address;
}

static void
print_address(const char *address, void *ctx)
{
	(void)ctx;
	printf("%s\n", address);
}

static int
user_set(const struct config *cfg, const char *address, bool add, bool from_stdin,
	 char **error_r)
{
	char *pw = get_password(from_stdin);
	if (pw == NULL)
		return -1;
	int r = add ? userdb_add(cfg->users_file, address, pw, error_r)
		    : userdb_set_password(cfg->users_file, address, pw, error_r);
	password_free(&pw);
	if (r == 0)
		printf("%s %s\n", add ? "added" : "changed the password of", address);
	return r;
}

static int
cmd_user(const struct config *cfg, int argc, char **argv)
{
	char *error = NULL;
	int r;
	if (argc == 1 && strcmp(argv[0], "list") == 0) {
		r = userdb_list(cfg->users_file, print_address, NULL, &error);
	} else if (argc >= 2 && argc <= 3) {
		bool add = strcmp(argv[0], "add") == 0, passwd = strcmp(argv[0], "passwd") == 0;
		bool del = strcmp(argv[0], "del") == 0;
		bool from_stdin = argc == 3 && strcmp(argv[2], "--password-stdin") == 0;
		if (!(add || passwd || del) || (argc == 3 && (!from_stdin || del)))
			return usage();
		char *address = user_address(cfg, argv[1]);
		if (address == NULL)
			return 1;
		if (del) {
			r = userdb_delete(cfg->users_file, address, &error);
			if (r == 0)
				printf("deleted %s (its mail under %s/mail is kept)\n", address,
				       cfg->data_dir);
		} else {
			r = user_set(cfg, address, add, from_stdin, &error);
		}
		free(address);
	} else {
		return usage();
	}
	if (r < 0 && error != NULL)
		fprintf(stderr, "tern: %s\n", error);
	free(error);
	return r < 0 ? 1 : 0;
}

/* ---- tern check-config ---- */

struct check {
	const struct config *cfg;
	struct userdb *users;
	struct aliases *aliases;
	int errors;
};

static void check_error(struct check *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
check_error(struct check *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", c->cfg->path);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	c->errors++;
}

/*
 * postmaster (RFC 5321 §4.5.1) and abuse (RFC 2142) must reach someone:
 * a user, or aliases whose local addresses are all users.
 */
static void
check_role(struct check *c, const char *role, const char *domain)
{
	char *address = xasprintf("%s@%s", role, domain);
	char **list = NULL;
	size_t n = userdb_exists(c->users, address) ? 0
		 : aliases_expand(c->aliases, address, &list);
	if (n == 0 && !userdb_exists(c->users, address))
		check_error(c, "%s is neither a user nor an alias (RFC 5321 §4.5.1, RFC 2142)",
			    address);
	for (size_t i = 0; i < n; i++) {
		const char *at = strchr(list[i], '@');
		if (at != NULL && config_is_local_domain(c->cfg, at + 1) &&
		    !userdb_exists(c->users, list[i]))
			check_error(c, "%s goes to %s, which is no user", address, list[i]);
	}
	aliases_free_list(list, n);
	free(address);
}

/* The certificate and key load and belong together. */
static void
check_tls(struct check *c)
{
	const struct config *cfg = c->cfg;
	if (cfg->tls_cert == NULL || cfg->tls_key == NULL) {
		const enum proto need[] = { PROTO_SUBMISSIONS, PROTO_POP3S, PROTO_IMAPS };
		for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
			if (cfg->listen[need[i]] != NULL)
				check_error(c, "listen.%s needs tls_cert and tls_key",
					    proto_name(need[i]));
		return;
	}
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1)
		check_error(c, "tls_cert %s: cannot load the certificate", cfg->tls_cert);
	else if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1)
		check_error(c, "tls_key %s: cannot load the key", cfg->tls_key);
	else if (SSL_CTX_check_private_key(ctx) != 1)
		check_error(c, "tls_key %s does not belong to tls_cert %s", cfg->tls_key,
			    cfg->tls_cert);
	SSL_CTX_free(ctx);
}

static void
check_files(struct check *c)
{
	const struct config *cfg = c->cfg;
	struct stat st;
	if (stat(cfg->data_dir, &st) < 0)
		printf("note: data_dir %s does not exist yet; ternd will create it\n",
		       cfg->data_dir);
	else if (!S_ISDIR(st.st_mode))
		check_error(c, "data_dir %s is no directory", cfg->data_dir);
	if (access(cfg->users_file, R_OK) != 0)
		check_error(c, "users_file %s: %s", cfg->users_file, strerror(errno));
	if (cfg->run_as_user != NULL && getpwnam(cfg->run_as_user) == NULL)
		check_error(c, "run_as_user: no such user '%s'", cfg->run_as_user);
	if (cfg->aliases_file == NULL) {
		check_error(c, "no aliases_file: postmaster and abuse must be users");
		return;
	}
	char *error = NULL;
	if (aliases_reload(c->aliases, &error) < 0) {
		fprintf(stderr, "%s\n", error);
		free(error);
		c->errors++;
	}
}

static int
cmd_check_config(const struct config *cfg, int argc)
{
	if (argc != 0)
		return usage();
	struct check c = { cfg, userdb_open(cfg->users_file, cfg->domains[0]),
			   cfg->aliases_file ? aliases_open(cfg->aliases_file, cfg->domains[0])
					     : NULL, 0 };
	check_files(&c);
	check_tls(&c);
	for (size_t i = 0; i < cfg->ndomains; i++) {
		check_role(&c, "postmaster", cfg->domains[i]);
		check_role(&c, "abuse", cfg->domains[i]);
	}
	userdb_free(&c.users);
	aliases_free(&c.aliases);
	if (c.errors > 0) {
		fprintf(stderr, "%s: %d problem%s\n", cfg->path, c.errors,
			c.errors == 1 ? "" : "s");
		return 1;
	}
	printf("%s: ok\n", cfg->path);
	return 0;
}

/* ---- tern reindex ---- */

/* Rebuilds one mailbox's index; returns 0 or 1 (an error was printed). */
static int
reindex_mailbox(struct index *ix, const char *mail_root, const char *address,
		const char *name)
{
	enum store_folder_err err;
	char *error = NULL;
	char *dir = store_folder_path(mail_root, address, name, &err, &error);
	struct index_sync_result r = { 0 };
	if (dir == NULL || index_rebuild(ix, name, dir, &r, &error) < 0) {
		fprintf(stderr, "%s: %s: %s\n", address, name, error ? error : "failed");
		free(error);
		free(dir);
		return 1;
	}
	printf("%s: %u messages, UIDVALIDITY %u, UIDNEXT %u\n", name, r.exists,
	       r.uidvalidity, r.uidnext);
	index_sync_result_free(&r);
	free(dir);
	return 0;
}

static int
cmd_reindex(const struct config *cfg, int argc, char **argv)
{
	if (argc != 1)
		return usage();
	struct userdb *db = userdb_open(cfg->users_file, cfg->domains[0]);
	char *address = userdb_canonical(db, argv[0]);
	char *mail_root = xasprintf("%s/mail", cfg->data_dir);
	char *error = NULL, *user_dir = NULL;
	struct index *ix = NULL;
	struct store_folder *folders = NULL;
	size_t count = 0;
	enum store_folder_err err;
	int failed = 1;
	if (!userdb_exists(db, address))
		fprintf(stderr, "%s: no such user\n", address);
	else if ((user_dir = store_user_dir(mail_root, address, &error)) == NULL ||
		 (ix = index_open(user_dir, &error)) == NULL ||
		 store_folder_list(mail_root, address, &folders, &count, &err, &error) < 0)
		fprintf(stderr, "%s: %s\n", address, error);
	else
		failed = 0;
	for (size_t i = 0; i < count; i++)
		if (!(folders[i].flags & STORE_FOLDER_NOSELECT))
			failed |= reindex_mailbox(ix, mail_root, address, folders[i].name);
	store_folder_list_free(&folders, count);
	index_close(&ix);
	free(error);
	free(user_dir);
	free(mail_root);
	free(address);
	userdb_free(&db);
	return failed;
}

/* ---- tern queue ---- */

static int
cmd_queue(const struct config *cfg, int argc, char **argv)
{
	int r = queue_admin_main(cfg, argc, argv);
	return r == 2 ? usage() : r;
}

/* ---- dispatch ---- */

struct tern_cmd {
	const char *name;
	int (*fn)(const struct config *cfg, int argc, char **argv);
};

static int
cmd_check_config_args(const struct config *cfg, int argc, char **argv)
{
	(void)argv;
	return cmd_check_config(cfg, argc);
}

/* The commands that work on a config file (init writes one instead). */
static const struct tern_cmd tern_cmds[] = {
	{ "user", cmd_user },
	{ "check-config", cmd_check_config_args },
	{ "reindex", cmd_reindex },
	{ "queue", cmd_queue },
};

int
main(int argc, char **argv)
{
	const char *config_path = "/etc/tern/tern.conf";
	log_open("tern", LOG_LEVEL_WARN, 0);
	const char *base = strrchr(argv[0], '/');
	if (strcmp(base != NULL ? base + 1 : argv[0], "sendmail") == 0)
		return sendmail_main(config_path, argc, argv);
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			config_path = argv[++i];
		else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(usage_text, stdout);
			return 0;
		} else
			return usage();
	}
	if (i == argc)
		return usage();
	if (strcmp(argv[i], "init") == 0)
		return cmd_init(argc - i - 1, argv + i + 1);
	/* sendmail loads the config itself: its own -C may name another. */
	if (strcmp(argv[i], "sendmail") == 0)
		return sendmail_main(config_path, argc - i, argv + i);
	for (size_t k = 0; k < sizeof(tern_cmds) / sizeof(tern_cmds[0]); k++) {
		if (strcmp(argv[i], tern_cmds[k].name) != 0)
			continue;
		char *error = NULL;
		struct config *cfg = config_load(config_path, &error);
		if (cfg == NULL) {
			fprintf(stderr, "%s\n", error);
			free(error);
			return 1;
		}
		int r = tern_cmds[k].fn(cfg, argc - i - 1, argv + i + 1);
		config_free(&cfg);
		return r;
	}
	return usage();
}
