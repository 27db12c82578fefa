/*
 * FETCH and UID FETCH (RFC 3501 §6.4.5, §6.4.8, §7.4.2): FLAGS, UID,
 * INTERNALDATE, RFC822.SIZE, ENVELOPE, BODYSTRUCTURE, BODY,
 * BODY[section]<partial> and BODY.PEEK (sections in
 * imap_fetch_section.c), RFC822, RFC822.HEADER, RFC822.TEXT, and the
 * macros ALL, FAST, FULL.
 *
 * ENVELOPE and BODYSTRUCTURE (and BODY, derived from it) are computed
 * once per message, by the first session that asks, and kept in the
 * index (index_cache_*): a FETCH of them, or of anything else the index
 * holds, does not open the message file.
 *
 * Limits: a message is read whole into memory (bounded by
 * message_size_limit plus room for the delivery's added header fields)
 * and its literal is built in a buf rather than streamed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "imap/imap_fetch_section.h"
#include "imap/imap_parse.h"
#include "imap/imap_private.h"
#include "imap/imap_seqset.h"
#include "io/conn.h"
#include "io/server.h"
#include "mime/mime_imap.h"
#include "store/index.h"

/* Room for Return-Path, Delivered-To and Received above the message. */
#define IMAP_FETCH_ADDED_MAX (64 * 1024)
#define IMAP_FETCH_ITEMS_MAX 64

enum fetch_kind {
	F_FLAGS, F_UID, F_INTERNALDATE, F_SIZE, F_ENVELOPE, F_BODYSTRUCTURE, F_BODY,
	F_SECTION,
};

struct fetch_item {
	enum fetch_kind kind;
	enum imap_section_text text; /* RFC822*: the fixed section */
	struct imap_section sec;     /* F_SECTION; owns memory */
	bool peek;
	const char *name;   /* the response name of RFC822*; NULL for BODY[...] */
	bool partial;
	uint64_t offset, length;
};

struct fetch_req {
	struct fetch_item items[IMAP_FETCH_ITEMS_MAX];
	size_t count;
	bool uid_cmd;
	bool has_flags, has_uid, need_data, need_mime, sets_seen;
};

/* The items named by one word; RFC822* are sections under other names. */
static const struct fetch_item fetch_simple[] = {
	{ .kind = F_FLAGS, .name = "FLAGS" },
	{ .kind = F_UID, .name = "UID" },
	{ .kind = F_INTERNALDATE, .name = "INTERNALDATE" },
	{ .kind = F_SIZE, .name = "RFC822.SIZE" },
	{ .kind = F_ENVELOPE, .name = "ENVELOPE" },
	{ .kind = F_BODYSTRUCTURE, .name = "BODYSTRUCTURE" },
	{ .kind = F_BODY, .name = "BODY" },
	{ .kind = F_SECTION, .text = IMAP_SECTION_BODY, .name = "RFC822" },
	/* §6.4.5: RFC822.HEADER is the same as BODY.PEEK[HEADER]. */
	{ .kind = F_SECTION, .text = IMAP_SECTION_HEADER, .peek = true,
	  .name = "RFC822.HEADER" },
	{ .kind = F_SECTION, .text = IMAP_SECTION_TEXT, .name = "RFC822.TEXT" },
};

/* §6.4.5 macros; only valid alone, not inside a list. */
static const struct {
	const char *name;
	const char *items[5];
} fetch_macros[] = {
	{ "ALL", { "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", NULL } },
	{ "FAST", { "FLAGS", "INTERNALDATE", "RFC822.SIZE", NULL } },
	{ "FULL", { "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY" } },
};

/* "<n.m>" at s: -1 if malformed. */
static int
fetch_parse_partial(const char *s, struct fetch_item *it)
{
	char *end;
	if (*s == '\0')
		return 0;
	if (*s != '<' || s[1] < '0' || s[1] > '9')
		return -1;
	it->offset = strtoull(s + 1, &end, 10);
	if (*end != '.' || end[1] < '1' || end[1] > '9')
		return -1;
	it->length = strtoull(end + 1, &end, 10);
	if (strcmp(end, ">") != 0)
		return -1;
	it->partial = true;
	return 0;
}

/* BODY[section]<partial> or BODY.PEEK[...]; -1 if not one we serve. */
static int
fetch_parse_section(const char *s, struct fetch_item *it)
{
	memset(it, 0, sizeof(*it));
	it->kind = F_SECTION;
	if (strncasecmp(s, "BODY[", 5) == 0) {
		s += 5;
	} else if (strncasecmp(s, "BODY.PEEK[", 10) == 0) {
		s += 10;
		it->peek = true;
	} else {
		return -1;
	}
	const char *end, *error;
	if (imap_section_parse(s, &it->sec, &end, &error) < 0)
		return -1;
	if (fetch_parse_partial(end, it) < 0) {
		imap_section_clear(&it->sec);
		return -1;
	}
	return 0;
}

static int
fetch_add_item(struct fetch_req *req, const char *word)
{
	if (req->count >= IMAP_FETCH_ITEMS_MAX)
		return -1;
	struct fetch_item *it = &req->items[req->count];
	bool found = false;
	for (size_t i = 0; i < sizeof(fetch_simple) / sizeof(fetch_simple[0]); i++) {
		if (strcasecmp(word, fetch_simple[i].name) == 0) {
			*it = fetch_simple[i];
			if (it->kind == F_SECTION)
				imap_section_init(&it->sec, it->text);
			found = true;
		}
	}
	if (!found && fetch_parse_section(word, it) < 0)
		return -1;
	req->count++;
	req->has_flags |= it->kind == F_FLAGS;
	req->has_uid |= it->kind == F_UID;
	req->need_mime |= it->kind == F_ENVELOPE || it->kind == F_BODYSTRUCTURE ||
			  it->kind == F_BODY;
	req->need_data |= it->kind == F_SECTION;
	req->sets_seen |= it->kind == F_SECTION && !it->peek;
	return 0;
}

static int
fetch_parse_atom(struct fetch_req *req, const struct imap_arg *arg, bool macros_ok)
{
	if (arg->type != IMAP_ARG_ATOM)
		return -1;
	for (size_t i = 0; macros_ok && i < sizeof(fetch_macros) / sizeof(fetch_macros[0]); i++) {
		if (strcasecmp(arg->u.str.data, fetch_macros[i].name) != 0)
			continue;
		for (size_t j = 0; j < 5 && fetch_macros[i].items[j] != NULL; j++)
			fetch_add_item(req, fetch_macros[i].items[j]);
		return 0;
	}
	return fetch_add_item(req, arg->u.str.data);
}

/* The items: one atom (maybe a macro) or a non-empty list of atoms. */
static int
fetch_parse_items(struct fetch_req *req, const struct imap_arg *arg)
{
	if (arg->type != IMAP_ARG_LIST)
		return fetch_parse_atom(req, arg, true);
	if (arg->u.list.count == 0)
		return -1;
	for (size_t i = 0; i < arg->u.list.count; i++) {
		if (fetch_parse_atom(req, &arg->u.list.items[i], false) < 0)
			return -1;
	}
	return 0;
}


/* §9 date-time: "dd-Mon-yyyy hh:mm:ss +0000", month names not localised. */
static void
fetch_write_date(struct buf *out, time_t t)
{
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	gmtime_r(&t, &tm);
	buf_appendf(out, "INTERNALDATE \"%02d-%s-%04d %02d:%02d:%02d +0000\"", tm.tm_mday,
		    months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/*
 * A section of the CRLF message. A part that does not exist is sent as
 * the empty string: §6.4.5 answers an origin past the end of a text with
 * one, a missing part holds no text either, and a string is what a client
 * expects there (NIL, also allowed by §9 nstring, trips some clients).
 */
static void
fetch_write_section(struct buf *out, const struct fetch_item *it, const struct buf *msg)
{
	struct buf tmp = BUF_INIT;
	const char *data = "";
	size_t len = 0;
	bool found = imap_section_extract(&it->sec, msg->data != NULL ? msg->data : "",
					  msg->len, &tmp, &data, &len) == 0;
	if (it->name != NULL)
		buf_appends(out, it->name);
	else
		buf_appendf(out, "BODY[%s]", it->sec.name);
	if (it->partial) {
		/* §6.4.5: an origin past the end gives an empty string; the
		   response names the origin only (§7.4.2). */
		uint64_t off = it->offset < len ? it->offset : len;
		uint64_t n = it->length < len - off ? it->length : len - off;
		buf_appendf(out, "<%llu>", (unsigned long long)it->offset);
		data += (size_t)off;
		len = (size_t)n;
	}
	if (!found)
		buf_appends(out, " \"\"");
	else {
		buf_appendf(out, " {%zu}\r\n", len);
		buf_append(out, data, len);
	}
	buf_free(&tmp);
}

static void
fetch_write_body(struct buf *out, const char *bodystructure)
{
	buf_appends(out, "BODY ");
	if (mime_imap_body_strip(bodystructure, out) < 0)
		buf_appends(out, bodystructure); /* extensions do no harm */
}

struct fetch_msg {
	uint32_t seq;
	struct index_msg m;
	struct buf data;   /* CRLF form, when needed */
	struct index_cache_entry cached; /* ENVELOPE, BODYSTRUCTURE when needed */
	bool seen_set;     /* this FETCH set \Seen */
};

static void
fetch_write_item(struct buf *out, const struct imap_session *s, const struct fetch_item *it,
		 struct fetch_msg *fm)
{
	switch (it->kind) {
	case F_FLAGS: imap_write_msg_flags(out, s, &fm->m); break;
	case F_UID: buf_appendf(out, "UID %u", fm->m.uid); break;
	case F_INTERNALDATE: fetch_write_date(out, fm->m.internaldate); break;
	case F_SIZE:
		buf_appendf(out, "RFC822.SIZE %llu", (unsigned long long)fm->m.size);
		break;
	case F_ENVELOPE: buf_appendf(out, "ENVELOPE %s", fm->cached.envelope); break;
	case F_BODYSTRUCTURE:
		buf_appendf(out, "BODYSTRUCTURE %s", fm->cached.bodystructure);
		break;
	case F_BODY: fetch_write_body(out, fm->cached.bodystructure); break;
	case F_SECTION: fetch_write_section(out, it, &fm->data); break;
	}
}

/*
 * ENVELOPE, BODYSTRUCTURE and the search fields computed from the file,
 * then cached. A failure to store only costs the next FETCH the same work
 * again, so it is logged, not answered.
 */
static int
fetch_describe(struct imap_session *s, struct fetch_msg *fm, char **error_r)
{
	fm->cached.uid = fm->m.uid;
	if (index_cache_describe(fm->data.data != NULL ? fm->data.data : "", fm->data.len,
				 &fm->cached, error_r) < 0)
		return -1;
	char *error = NULL;
	if (index_cache_set(s->index, s->sel.name, &fm->cached, 1, &error) < 0) {
		log_warn("imap %s: user=%s uid %u not cached: %s", s->id, s->address,
			 fm->m.uid, error);
		free(error);
	}
	return 0;
}

/* Reads the file and what is derived from it; \Seen set if asked (§6.4.5). */
static int
fetch_load(struct imap_session *s, const struct fetch_req *req, struct fetch_msg *fm,
	   char **error_r)
{
	/* The cache first: a FETCH it answers does not open the file. */
	if (req->need_mime &&
	    index_cache_get(s->index, s->sel.name, fm->m.uid, &fm->cached, error_r) < 0)
		return -1;
	bool describe = req->need_mime && fm->cached.envelope == NULL;
	if (req->need_data || describe) {
		size_t max = s->srv->cfg->message_size_limit + IMAP_FETCH_ADDED_MAX, len;
		char *raw = read_file(fm->m.path, max, &len);
		if (raw == NULL) {
			*error_r = xasprintf("reading uid %u: %s", fm->m.uid, strerror(errno));
			return -1;
		}
		buf_append_crlf(&fm->data, raw, len);
		free(raw);
	}
	if (describe && fetch_describe(s, fm, error_r) < 0)
		return -1;
	if (req->sets_seen && !s->sel.readonly && strchr(fm->m.flags, 'S') == NULL) {
		/* At most the five letters "DFRST": room for one more. */
		size_t n = strlen(fm->m.flags);
		if (n + 1 >= sizeof(fm->m.flags)) {
			*error_r = xasprintf("uid %u: odd flags", fm->m.uid);
			return -1;
		}
		char flags[sizeof(fm->m.flags)];
		memcpy(flags, fm->m.flags, n);
		flags[n] = 'S';
		flags[n + 1] = '\0';
		if (index_set_flags(s->index, s->sel.name, s->sel.dir, fm->m.uid, flags,
				    error_r) < 0)
			return -1;
		memcpy(fm->m.flags, flags, n + 2);
		fm->seen_set = true;
	}
	return 0;
}

static void
fetch_msg_clear(struct fetch_msg *fm)
{
	index_msg_clear(&fm->m);
	buf_free(&fm->data);
	index_cache_entry_clear(&fm->cached);
}

/* One "* seq FETCH (...)" response; -1 if the message could not be read,
   1 if it was expunged by another session (and not yet reported);
   *seen_r set when it got \Seen. */
static int
fetch_one(struct imap_session *s, const struct fetch_req *req, uint32_t seq, bool *seen_r)
{
	struct fetch_msg fm;
	memset(&fm, 0, sizeof(fm));
	fm.seq = seq;
	int found = 0;
	char *error = NULL;
	if (index_msg_get(s->index, s->sel.name, s->sel.dir, s->sel.uids[seq - 1], &fm.m,
			  &found, &error) < 0 ||
	    (found && fetch_load(s, req, &fm, &error) < 0)) {
		log_err("imap %s: user=%s fetch failed: %s", s->id, s->address,
			error != NULL ? error : "?");
		free(error);
		fetch_msg_clear(&fm);
		return -1;
	}
	if (!found)
		return 1;
	struct buf out = BUF_INIT;
	buf_appendf(&out, "* %u FETCH (", seq);
	bool first = true;
	if (req->uid_cmd && !req->has_uid) {
		/* §6.4.8: UID FETCH always reports the UID. */
		buf_appendf(&out, "UID %u", fm.m.uid);
		first = false;
	}
	for (size_t i = 0; i < req->count; i++) {
		if (!first)
			buf_appends(&out, " ");
		fetch_write_item(&out, s, &req->items[i], &fm);
		first = false;
	}
	if (fm.seen_set && !req->has_flags) {
		buf_appends(&out, " ");
		imap_write_msg_flags(&out, s, &fm.m);
	}
	buf_appends(&out, ")\r\n");
	conn_write(s->conn, out.data, out.len);
	buf_free(&out);
	*seen_r |= fm.seen_set;
	fetch_msg_clear(&fm);
	return 0;
}

/*
 * A FETCH under way. It stops between two messages whenever the answer
 * waiting for the client reaches CONN_OUTPUT_HIGH, and goes on when the
 * client has read it (imap_fetch_drained): a FETCH 1:* BODY[] of a large
 * mailbox never sits in memory whole.
 */
struct imap_fetch_run {
	struct fetch_req *req;
	struct imap_seqset *set;
	size_t range;  /* by number: the range under way */
	uint32_t seq;  /* the next message to look at; 0 before the first */
	int failed;
	unsigned gone;
	bool seen_set; /* a file was renamed: cur/ is fsynced before the OK */
};

static bool
fetch_one_counted(struct imap_session *s, struct imap_fetch_run *run, uint32_t seq)
{
	if (conn_closing(s->conn))
		return false;
	if (conn_output_pending(s->conn) >= CONN_OUTPUT_HIGH) {
		run->seq = seq;
		return false;
	}
	int rc = fetch_one(s, run->req, seq, &run->seen_set);
	run->failed += rc < 0;
	run->gone += rc > 0;
	return true;
}

/*
 * The sequence numbers the set names. By message number, numbers past
 * the last message are ignored; by UID, "*" is the largest UID in use.
 * true when every message is done (or the client is gone).
 */
static bool
fetch_continue(struct imap_session *s, struct imap_fetch_run *run)
{
	uint32_t count = s->sel.count;
	if (run->req->uid_cmd) {
		uint32_t star = count > 0 ? s->sel.uids[count - 1] : 0;
		for (uint32_t seq = run->seq > 0 ? run->seq : 1; seq <= count; seq++) {
			if (imap_seqset_contains(run->set, s->sel.uids[seq - 1], star) &&
			    !fetch_one_counted(s, run, seq))
				return conn_closing(s->conn);
		}
		return true;
	}
	size_t n;
	const struct imap_seq_range *r = imap_seqset_ranges(run->set, count, &n);
	for (; run->range < n; run->range++) {
		uint32_t seq = run->seq > r[run->range].first ? run->seq : r[run->range].first;
		for (; seq <= r[run->range].last && seq <= count; seq++) {
			if (!fetch_one_counted(s, run, seq))
				return conn_closing(s->conn);
		}
	}
	return true;
}

static void
fetch_req_free(struct fetch_req **reqp)
{
	struct fetch_req *req = *reqp;
	for (size_t i = 0; i < req->count; i++)
		imap_section_clear(&req->items[i].sec);
	free(req);
	*reqp = NULL;
}

/* The tagged answer, once every message is done. */
static void
fetch_finish(struct imap_session *s)
{
	struct imap_fetch_run *run = s->fetch;
	const char *what = run->req->uid_cmd ? "UID FETCH" : "FETCH";
	struct buf out = BUF_INIT;
	if (run->failed > 0)
		buf_appendf(&out, "%s NO [SERVERBUG] Some messages could not be fetched\r\n",
			    s->tag);
	else if (run->gone > 0)
		/* RFC 2180 §4.1.2 allows NO; RFC 5530 names the reason. The
		   EXPUNGE responses follow at the next command that may carry them. */
		buf_appendf(&out, "%s NO [EXPUNGEISSUED] Some messages were expunged\r\n",
			    s->tag);
	else
		buf_appendf(&out, "%s OK %s completed\r\n", s->tag, what);
	imap_reply_durable(s, run->seen_set ? s->sel.dir : NULL, NULL, &out, 0);
	imap_fetch_free(s);
}

int
imap_cmd_fetch(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	struct imap_seqset *set = NULL;
	const char *error = NULL;
	if (argc != 2 || args[0].type != IMAP_ARG_ATOM) {
		imap_reply_bad(s, "Expected a sequence set and fetch items");
		return -1;
	}
	if (imap_seqset_parse(args[0].u.str.data, args[0].u.str.len, 0, &set, &error) < 0) {
		imap_reply_bad(s, error);
		return -1;
	}
	struct fetch_req *req = xcalloc(1, sizeof(*req));
	req->uid_cmd = imap_parser_uid(s->parser);
	if (fetch_parse_items(req, &args[1]) < 0) {
		imap_seqset_free(&set);
		fetch_req_free(&req);
		imap_reply_bad(s, "Unknown or unsupported fetch item");
		return -1;
	}
	s->fetch = xcalloc(1, sizeof(*s->fetch));
	s->fetch->req = req;
	s->fetch->set = set;
	if (fetch_continue(s, s->fetch))
		fetch_finish(s);
	else
		conn_pause(s->conn); /* no further command until this one ends */
	return 0;
}

void
imap_fetch_drained(struct imap_session *s)
{
	if (s->fetch != NULL && fetch_continue(s, s->fetch)) {
		fetch_finish(s);
		imap_sync_settle(s);
		if (s->job == NULL) /* else once cur/ is durable */
			conn_resume(s->conn);
	}
}

void
imap_fetch_free(struct imap_session *s)
{
	if (s->fetch == NULL)
		return;
	imap_seqset_free(&s->fetch->set);
	fetch_req_free(&s->fetch->req);
	free(s->fetch);
	s->fetch = NULL;
}

