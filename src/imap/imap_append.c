/*
 * APPEND (RFC 3501 §6.3.11) with APPENDUID (RFC 4315 §3), the size limit
 * APPENDLIMIT (RFC 7889, answered NO [TOOBIG]) and the target rules that
 * COPY and MOVE share (imap_target_open, [TRYCREATE]).
 *
 * The message arrives whole as one literal (the parser holds it, bounded
 * by imap_append_limit); it is written with LF line ends into the target's
 * tmp/ and fsynced (store_tmp_write) on the work pool, then index_append
 * gives it its UID and renames it into cur/. The OK goes out only after
 * both.
 *
 * Flags: the system flags are kept as Maildir info letters, keywords as
 * the folder's keyword letters (index.h); \Recent is ignored (the server
 * sets it, §2.3.2).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "imap/imap_parse.h"
#include "imap/imap_private.h"
#include "io/conn.h"
#include "io/server.h"
#include "store/folders.h"
#include "store/index.h"
#include "store/store.h"

/* In Maildir's sorted order, so the letters come out sorted. */
static const struct {
	char letter;
	const char *flag;
} append_flags[] = {
	{ 'D', "\\Draft" },
	{ 'F', "\\Flagged" },
	{ 'R', "\\Answered" },
	{ 'S', "\\Seen" },
	{ 'T', "\\Deleted" },
};

#define APPEND_NFLAGS (sizeof(append_flags) / sizeof(append_flags[0]))

uint64_t
imap_append_limit(const struct imap_session *s)
{
	uint64_t limit = s->srv->cfg->message_size_limit;
	return limit < IMAP_PARSE_LITERAL_MAX ? limit : IMAP_PARSE_LITERAL_MAX;
}

int
imap_target_open(struct imap_session *s, const char *name, char **canon_r,
		 char **dir_r)
{
	enum store_folder_err err = STORE_FOLDER_OK;
	char *error = NULL;
	*canon_r = NULL;
	*dir_r = NULL;
	if (store_folder_name_check(name, canon_r, &err, &error) < 0 ||
	    !store_folder_exists(s->mail_root, s->address, *canon_r)) {
		/* §6.3.11, §6.4.7: TRYCREATE tells the client a CREATE may help. */
		free(error);
		free(*canon_r);
		*canon_r = NULL;
		conn_printf(s->conn, "%s NO [TRYCREATE] No such mailbox\r\n", s->tag);
		return -1;
	}
	*dir_r = store_folder_path(s->mail_root, s->address, *canon_r, &err, &error);
	if (*dir_r == NULL || imap_index_ensure(s, &error) < 0) {
		log_err("imap %s: user=%s target open failed: %s", s->id, s->address,
			error != NULL ? error : "?");
		free(error);
		free(*canon_r);
		free(*dir_r);
		*canon_r = *dir_r = NULL;
		conn_printf(s->conn, "%s NO [SERVERBUG] Internal error, try again\r\n", s->tag);
		return -1;
	}
	return 0;
}

/* The flag list as sorted Maildir letters and keyword names; -1 on an
   unknown \flag or a malformed keyword. */
static int
append_parse_flags(const struct imap_arg *list, char letters[APPEND_NFLAGS + 1],
		   struct buf *keywords)
{
	unsigned mask = 0;
	for (size_t i = 0; i < list->u.list.count; i++) {
		const struct imap_arg *a = &list->u.list.items[i];
		if (a->type != IMAP_ARG_ATOM)
			return -1;
		if (a->u.str.data[0] != '\\') {
			if (!index_keyword_valid(a->u.str.data, a->u.str.len))
				return -1;
			buf_appendf(keywords, "%s%s", keywords->len > 0 ? " " : "",
				    a->u.str.data);
			continue;
		}
		if (strcasecmp(a->u.str.data, "\\Recent") == 0)
			continue;
		size_t f = 0;
		while (f < APPEND_NFLAGS && strcasecmp(a->u.str.data, append_flags[f].flag) != 0)
			f++;
		if (f == APPEND_NFLAGS)
			return -1;
		mask |= 1u << f;
	}
	size_t n = 0;
	for (size_t f = 0; f < APPEND_NFLAGS; f++)
		if (mask & (1u << f))
			letters[n++] = append_flags[f].letter;
	letters[n] = '\0';
	return 0;
}

static int
append_digits(const char *p, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

/*
 * date-time (RFC 3501 §9): "dd-Mon-yyyy hh:mm:ss +zzzz", the day may be
 * " d". -1 if malformed.
 */
static int
append_parse_date(const char *s, size_t len, time_t *date_r)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	if (len != 26 || s[2] != '-' || s[6] != '-' || s[11] != ' ' || s[14] != ':' ||
	    s[17] != ':' || s[20] != ' ' || (s[21] != '+' && s[21] != '-'))
		return -1;
	int day = s[0] == ' ' ? append_digits(s + 1, 1) : append_digits(s, 2);
	int mon = -1;
	for (int m = 0; m < 12; m++)
		if (strncasecmp(s + 3, months + 3 * m, 3) == 0)
			mon = m;
	int year = append_digits(s + 7, 4), hour = append_digits(s + 12, 2);
	int min = append_digits(s + 15, 2), sec = append_digits(s + 18, 2);
	int zh = append_digits(s + 22, 2), zm = append_digits(s + 24, 2);
	if (day < 1 || day > 31 || mon < 0 || year < 1970 || hour > 23 || min > 59 ||
	    sec > 60 || zh < 0 || zm < 0 || zm > 59)
		return -1;
	struct tm tm = {
		.tm_mday = day, .tm_mon = mon, .tm_year = year - 1900,
		.tm_hour = hour, .tm_min = min, .tm_sec = sec,
	};
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	long zone = (zh * 60L + zm) * 60L;
	/* The zone says how far local time is ahead of UTC. */
	*date_r = s[21] == '+' ? t - zone : t + zone;
	return 0;
}

struct append_req {
	const char *mailbox;
	char letters[APPEND_NFLAGS + 1];
	struct buf keywords;
	time_t date;
	const char *data;
	size_t len;
};

/* mailbox [flags] [date-time] message; -1 after BAD. */
static int
append_parse(struct imap_session *s, const struct imap_arg *args, size_t argc,
	     struct append_req *req)
{
	size_t len, i = 1;
	memset(req, 0, sizeof(*req));
	req->date = time(NULL);
	if (argc < 2 || argc > 4 || !imap_arg_get_astring(&args[0], &req->mailbox, &len) ||
	    args[argc - 1].type != IMAP_ARG_STRING) {
		imap_reply_bad(s, "Expected a mailbox, optional flags and date, and a literal");
		return -1;
	}
	if (i < argc - 1 && args[i].type == IMAP_ARG_LIST) {
		if (append_parse_flags(&args[i], req->letters, &req->keywords) < 0) {
			imap_reply_bad(s, "Invalid flag in APPEND");
			return -1;
		}
		i++;
	}
	if (i < argc - 1 && args[i].type == IMAP_ARG_STRING) {
		if (append_parse_date(args[i].u.str.data, args[i].u.str.len, &req->date) < 0) {
			imap_reply_bad(s, "Invalid date-time in APPEND");
			return -1;
		}
		i++;
	}
	if (i != argc - 1) {
		imap_reply_bad(s, "Expected a mailbox, optional flags and date, and a literal");
		return -1;
	}
	req->data = args[argc - 1].u.str.data;
	req->len = args[argc - 1].u.str.len;
	return 0;
}

/*
 * An APPEND's file: written, fsynced and described (ENVELOPE,
 * BODYSTRUCTURE and the search fields, as a delivery does, so that FETCH
 * and SEARCH of them never parse the file) on the work pool, data still
 * being the parser's literal; then index_append gives it its UID on the
 * loop.
 */
struct append_job {
	struct store *store;
	char *mailbox, *dir, *info;
	time_t date;
	const char *data;
	size_t len;
	char *name; /* in tmp/, once written */
	char *error;
	struct index_cache_entry desc; /* what FETCH and SEARCH read of it */
	char *describe_error;
};

static void
append_job_free(struct append_job *job)
{
	free(job->mailbox);
	free(job->dir);
	free(job->info);
	free(job->name);
	free(job->error);
	index_cache_entry_clear(&job->desc);
	free(job->describe_error);
	free(job);
}

static void
append_work(void *arg)
{
	struct append_job *job = arg;
	if (store_tmp_write(job->store, job->dir, job->date, job->info, job->data, job->len,
			    &job->name, &job->error) < 0)
		return;
	/* A failure only leaves the work to the first FETCH or SEARCH. */
	if (index_cache_describe(job->data, job->len, &job->desc, &job->describe_error) < 0)
		index_cache_entry_clear(&job->desc);
}

/* Gives the written file its UID and answers, with APPENDUID. */
static void
append_done(struct imap_session *s, void *arg)
{
	struct append_job *job = arg;
	uint32_t validity = 0, uid = 0;
	if (s == NULL) {
		if (job->name != NULL) {
			char *path = xasprintf("%s/tmp/%s", job->dir, job->name);
			unlink(path);
			free(path);
		}
		append_job_free(job);
		return;
	}
	if (job->name == NULL ||
	    index_append(s->index, job->mailbox, job->dir, (const char *const *)&job->name, 1,
			 &validity, &uid, &job->error) < 0) {
		log_err("imap %s: user=%s append failed: %s", s->id, s->address,
			job->error != NULL ? job->error : "?");
		conn_printf(s->conn, "%s NO [SERVERBUG] Append failed, try again\r\n", s->tag);
		append_job_free(job);
		return;
	}
	char *error = NULL;
	job->desc.uid = uid;
	if (job->desc.envelope == NULL ||
	    index_cache_set(s->index, job->mailbox, &job->desc, 1, &error) < 0) {
		log_warn("imap %s: user=%s appended uid %u not described: %s", s->id,
			 s->address, uid, error != NULL ? error :
			 job->describe_error != NULL ? job->describe_error : "?");
		free(error);
		error = NULL;
	}
	log_info("imap %s: append user=%s mailbox=%s uid=%u size=%zu", s->id, s->address,
		 job->mailbox, uid, job->len);
	struct buf out = BUF_INIT;
	/* The new message is announced (EXISTS) before the OK when it went
	   into the selected mailbox. */
	if (s->state == IMAP_STATE_SELECTED && strcmp(job->mailbox, s->sel.name) == 0 &&
	    imap_sync(s, true, &out, &error) < 0) {
		log_err("imap %s: user=%s sync after append failed: %s", s->id, s->address,
			error != NULL ? error : "?");
		free(error);
	}
	size_t tagged_at = out.len;
	buf_appendf(&out, "%s OK [APPENDUID %u %u] APPEND completed\r\n", s->tag, validity,
		    uid);
	/* index_append leaves its rename into cur/ for us to make durable. */
	imap_reply_durable(s, job->dir, NULL, &out, tagged_at);
	append_job_free(job);
}

/* Starts the write of the message into an existing mailbox (taking
   mailbox and dir); the answer comes from append_done. */
static void
append_start(struct imap_session *s, const struct append_req *req, char *mailbox,
	     char *dir)
{
	char *error = NULL;
	char kw[INDEX_KEYWORDS_MAX + 1] = "";
	bool limit = false;
	if (req->keywords.len > 0 &&
	    index_keywords_letters(dir, req->keywords.data, kw, &limit, &error) < 0) {
		if (limit) {
			conn_printf(s->conn, "%s NO [LIMIT] Too many keywords in this mailbox\r\n",
				    s->tag);
		} else {
			log_err("imap %s: user=%s append keywords: %s", s->id, s->address, error);
			conn_printf(s->conn, "%s NO [SERVERBUG] Append failed, try again\r\n",
				    s->tag);
		}
		free(error);
		free(mailbox);
		free(dir);
		return;
	}
	struct append_job *job = xcalloc(1, sizeof(*job));
	job->store = s->srv->store;
	job->mailbox = mailbox;
	job->dir = dir;
	job->info = xasprintf("%s%s", req->letters, kw);
	job->date = req->date;
	job->data = req->data;
	job->len = req->len;
	imap_job_start(s, append_work, append_done, job);
}

int
imap_cmd_append(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	struct append_req req;
	if (append_parse(s, args, argc, &req) < 0) {
		buf_free(&req.keywords);
		return -1;
	}
	char *mailbox, *dir;
	if (req.len > imap_append_limit(s))
		conn_printf(s->conn, "%s NO [TOOBIG] Message too large\r\n", s->tag);
	else if (req.len == 0)
		conn_printf(s->conn, "%s NO Empty message\r\n", s->tag);
	else if (imap_target_open(s, req.mailbox, &mailbox, &dir) == 0)
		append_start(s, &req, mailbox, dir);
	buf_free(&req.keywords);
	return 0;
}
