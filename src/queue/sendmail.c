/*
 * tern sendmail: the command line of sendmail(8), the message read from
 * stdin, and the header fields a local submission must carry (RFC 6409
 * §8: Date, Message-ID, From are added when missing).
 */
#include "queue/sendmail.h"

#include <ctype.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <gmime/gmime.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "queue/sendmail_private.h"

struct sendmail_opts {
	bool from_headers;    /* -t */
	bool ignore_dots;     /* -i, -oi */
	bool smtp_stdio;      /* -bs */
	bool verbose;         /* -v */
	const char *sender;   /* -f, -r */
	const char *fullname; /* -F */
	const char *config;   /* -C */
	char **rcpts;         /* the arguments after the flags */
	int nrcpts;
};

/* Flags that take a value, glued (-fADDR) or as the next argument. */
static const char *
sm_flag_value(int argc, char **argv, int *i)
{
	if (argv[*i][2] != '\0')
		return argv[*i] + 2;
	if (*i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

static int
sm_parse_args(int argc, char **argv, struct sendmail_opts *o)
{
	int i = 1;
	for (; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		switch (a[1]) {
		case 't':
			o->from_headers = true;
			break;
		case 'i':
			o->ignore_dots = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'o':
			/* -oi is -i; every other -oX (-oem, -odb, ...) is ignored. */
			if (strcmp(a, "-oi") == 0)
				o->ignore_dots = true;
			break;
		case 'b':
			if (strcmp(a, "-bs") == 0)
				o->smtp_stdio = true;
			else if (strcmp(a, "-bm") != 0) {
				fprintf(stderr, "sendmail: %s is not supported\n", a);
				return -1;
			}
			break;
		case 'U': /* initial submission: what we do anyway */
			break;
		case 'f': case 'r': case 'F': case 'C': case 'B': case 'N': case 'R': case 'V': {
			const char *v = sm_flag_value(argc, argv, &i);
			if (v == NULL) {
				fprintf(stderr, "sendmail: %s needs a value\n", a);
				return -1;
			}
			if (a[1] == 'f' || a[1] == 'r')
				o->sender = v;
			else if (a[1] == 'F')
				o->fullname = v;
			else if (a[1] == 'C')
				o->config = v;
			break; /* -B, -N, -R, -V: DSN and body options, ignored */
		}
		default:
			fprintf(stderr, "sendmail: unknown flag %s\n", a);
			return -1;
		}
	}
	o->rcpts = argv + i;
	o->nrcpts = argc - i;
	return 0;
}

/* An address with the default domain added when it has none. */
static char *
sm_qualify(const struct config *cfg, const char *addr)
{
	if (strchr(addr, '@') != NULL)
		return xstrdup(addr);
	return xasprintf("%s@%s", addr, cfg->domains[0]);
}

/*
 * Reads the message: every line end becomes CRLF; without -i a line of a
 * lone "." ends it, as sendmail does. At most limit bytes.
 */
static int
sm_read_message(bool ignore_dots, size_t limit, struct buf *msg)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int ret = 0;
	while ((n = getline(&line, &cap, stdin)) > 0) {
		if (line[n - 1] == '\n')
			line[--n] = '\0';
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = '\0';
		if (!ignore_dots && strcmp(line, ".") == 0)
			break;
		buf_append(msg, line, (size_t)n);
		buf_appends(msg, "\r\n");
		if (msg->len > limit) {
			fprintf(stderr, "sendmail: the message is larger than %zu bytes\n", limit);
			ret = EX_DATAERR;
			break;
		}
	}
	if (ret == 0 && ferror(stdin)) {
		fprintf(stderr, "sendmail: cannot read the message\n");
		ret = EX_IOERR;
	}
	free(line);
	return ret;
}

/* One header field: where it starts in the message and how long it is (CRLFs included). */
struct sm_field {
	size_t start, len;
	size_t name_len;
};

struct sm_message {
	struct sm_field *fields;
	size_t nfields;
	size_t body_start;   /* after the blank line, or where the body begins */
	bool has_separator;  /* an empty line separates header and body */
};

/* The length of "Name:" at p if it starts a header field (RFC 5322 §2.2), else 0. */
static size_t
sm_field_name(const char *p, const char *end)
{
	const char *q = p;
	while (q < end && *q > ' ' && *q < 0x7f && *q != ':')
		q++;
	return q > p && q < end && *q == ':' ? (size_t)(q - p) : 0;
}

static void
sm_split(const struct buf *msg, struct sm_message *m)
{
	const char *p = msg->data ? msg->data : "", *end = p + msg->len;
	memset(m, 0, sizeof(*m));
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *next = eol ? eol + 1 : end;
		if ((*p == ' ' || *p == '\t') && m->nfields > 0) {
			m->fields[m->nfields - 1].len += (size_t)(next - p);
		} else {
			size_t name = sm_field_name(p, end);
			if (name == 0) {
				m->has_separator = p[0] == '\r' && p + 1 < end && p[1] == '\n';
				if (m->has_separator)
					p = next;
				break;
			}
			m->fields = xrealloc(m->fields, (m->nfields + 1) * sizeof(*m->fields));
			m->fields[m->nfields++] = (struct sm_field){ (size_t)(p - msg->data),
								     (size_t)(next - p), name };
		}
		p = next;
	}
	m->body_start = (size_t)(p - (msg->data ? msg->data : p));
}

static const struct sm_field *
sm_find(const struct buf *msg, const struct sm_message *m, const char *name, size_t from)
{
	for (size_t i = from; i < m->nfields; i++)
		if (m->fields[i].name_len == strlen(name) &&
		    strncasecmp(msg->data + m->fields[i].start, name, m->fields[i].name_len) == 0)
			return &m->fields[i];
	return NULL;
}

/* Adds the addresses of one To/Cc/Bcc field (groups included) to rcpts. */
static void
sm_field_addresses(const struct config *cfg, const struct buf *msg, const struct sm_field *f,
		   char ***rcpts, size_t *n)
{
	char *value = xstrndup(msg->data + f->start + f->name_len + 1,
			       f->len - f->name_len - 1);
	InternetAddressList *list = internet_address_list_parse(NULL, value);
	for (int i = 0; list != NULL && i < internet_address_list_length(list); i++) {
		InternetAddress *ia = internet_address_list_get_address(list, i);
		InternetAddressList *members = NULL;
		if (INTERNET_ADDRESS_IS_GROUP(ia))
			members = internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia));
		int count = members ? internet_address_list_length(members) : 1;
		for (int k = 0; k < count; k++) {
			InternetAddress *one = members ? internet_address_list_get_address(members, k)
						       : ia;
			if (!INTERNET_ADDRESS_IS_MAILBOX(one))
				continue;
			const char *a = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(one));
			if (a == NULL || a[0] == '\0')
				continue;
			*rcpts = xrealloc(*rcpts, (*n + 1) * sizeof(**rcpts));
			(*rcpts)[(*n)++] = sm_qualify(cfg, a);
		}
	}
	if (list != NULL)
		g_object_unref(list);
	free(value);
}

/* The header fields we add, each ending in CRLF. */
static void
sm_added_fields(const struct config *cfg, const struct sendmail_opts *o, const char *sender,
		const struct buf *msg, const struct sm_message *m, struct buf *out)
{
	if (sm_find(msg, m, "From", 0) == NULL) {
		const char *addr = sender[0] != '\0' ? sender : "MAILER-DAEMON";
		InternetAddress *ia = internet_address_mailbox_new(o->fullname, addr);
		/* GMime quotes the name, or RFC 2047-encodes it if it is not ASCII. */
		char *text = internet_address_to_string(ia, NULL, TRUE);
		buf_appendf(out, "From: %s\r\n", text);
		g_free(text);
		g_object_unref(ia);
	}
	if (sm_find(msg, m, "Date", 0) == NULL) {
		char date[64];
		time_t now = time(NULL);
		struct tm tm;
		localtime_r(&now, &tm);
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
		buf_appendf(out, "Date: %s\r\n", date);
	}
	if (sm_find(msg, m, "Message-ID", 0) == NULL) {
		char id[13];
		make_id(id);
		buf_appendf(out, "Message-ID: <%s.%ld@%s>\r\n", id, (long)getpid(), cfg->hostname);
	}
}

/*
 * Rebuilds the message: its header fields without Bcc when -t, the added
 * fields after them, the blank line, the body unchanged. With -t, the
 * recipients of To, Cc and Bcc are added to rcpts.
 */
static void
sm_rewrite(const struct config *cfg, const struct sendmail_opts *o, const char *sender,
	   const struct buf *msg, struct buf *out, char ***rcpts, size_t *nrcpts)
{
	struct sm_message m;
	sm_split(msg, &m);
	static const char *const rcpt_fields[] = { "To", "Cc", "Bcc" };
	for (size_t i = 0; i < m.nfields; i++) {
		const struct sm_field *f = &m.fields[i];
		bool is_bcc = false;
		for (size_t k = 0; o->from_headers && k < 3; k++) {
			if (sm_find(msg, &m, rcpt_fields[k], i) != f)
				continue;
			sm_field_addresses(cfg, msg, f, rcpts, nrcpts);
			is_bcc = k == 2;
		}
		/* -t: Bcc recipients get the message, nobody sees the field. */
		if (!is_bcc)
			buf_append(out, msg->data + f->start, f->len);
	}
	sm_added_fields(cfg, o, sender, msg, &m, out);
	/* The header section ends with an empty line even if the input had none
	 * (or had no header at all: then everything read is body). */
	buf_appends(out, "\r\n");
	if (msg->len > m.body_start)
		buf_append(out, msg->data + m.body_start, msg->len - m.body_start);
	free(m.fields);
}

static char *
sm_default_sender(const struct config *cfg, const struct sendmail_opts *o)
{
	if (o->sender != NULL) {
		/* -f "<>" or -f "" is the null reverse-path. */
		size_t len = strlen(o->sender);
		const char *s = o->sender;
		if (len >= 2 && s[0] == '<' && s[len - 1] == '>') {
			char *inner = xstrndup(s + 1, len - 2);
			char *addr = inner[0] == '\0' ? xstrdup("") : sm_qualify(cfg, inner);
			free(inner);
			return addr;
		}
		return len == 0 ? xstrdup("") : sm_qualify(cfg, s);
	}
	struct passwd *pw = getpwuid(getuid());
	return sm_qualify(cfg, pw != NULL ? pw->pw_name : "nobody");
}

static int
sm_send_message(const struct config *cfg, const struct sendmail_opts *o)
{
	struct buf raw = BUF_INIT, msg = BUF_INIT;
	char **rcpts = NULL;
	size_t n = 0;
	char *sender = sm_default_sender(cfg, o);
	for (int i = 0; i < o->nrcpts; i++) {
		rcpts = xrealloc(rcpts, (n + 1) * sizeof(*rcpts));
		rcpts[n++] = sm_qualify(cfg, o->rcpts[i]);
	}
	int ret = sm_read_message(o->ignore_dots, cfg->message_size_limit, &raw);
	if (ret == 0) {
		g_mime_init();
		sm_rewrite(cfg, o, sender, &raw, &msg, &rcpts, &n);
		g_mime_shutdown();
		if (n == 0) {
			fprintf(stderr, "sendmail: no recipients%s\n",
				o->from_headers ? " in To, Cc or Bcc" : " (give them, or -t)");
			ret = EX_USAGE;
		} else {
			ret = sendmail_submit(cfg, sender, rcpts, n, &msg, o->verbose);
		}
	}
	for (size_t i = 0; i < n; i++)
		free(rcpts[i]);
	free(rcpts);
	free(sender);
	buf_free(&raw);
	buf_free(&msg);
	return ret;
}

int
sendmail_main(const char *config_path, int argc, char **argv)
{
	struct sendmail_opts o = { 0 };
	if (sm_parse_args(argc, argv, &o) < 0) {
		fprintf(stderr, "usage: sendmail [-t] [-i] [-f SENDER] [-F NAME] [-C CONFIG] "
				"[-v] [-bs] [RECIPIENT ...]\n");
		return EX_USAGE;
	}
	char *error = NULL;
	struct config *cfg = config_load(o.config != NULL ? o.config : config_path, &error);
	if (cfg == NULL) {
		fprintf(stderr, "sendmail: %s\n", error);
		free(error);
		return EX_CONFIG;
	}
	int ret = o.smtp_stdio ? sendmail_relay_stdio(cfg, o.verbose) : sm_send_message(cfg, &o);
	config_free(&cfg);
	return ret;
}
