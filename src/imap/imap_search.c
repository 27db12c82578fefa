/*
 * SEARCH and UID SEARCH (RFC 3501 §6.4.4, §6.4.8, the SEARCH response of
 * §7.2.5), and their ESEARCH form (RFC 4731) when the client asks for it
 * with RETURN.
 *
 * The program (imap_search_prog.c) is matched against each message of
 * the session's map. The index answers flags, keywords, size, dates and
 * numbers, and keeps the folded From, To, Cc, Bcc and Subject of each
 * message with its ENVELOPE (computed at delivery, APPEND or the first
 * FETCH or SEARCH that reads the file); a message file is read (once)
 * only when another text key or SENT* must decide, and mime/mime_search
 * does the decoding and matching.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "imap/imap_parse.h"
#include "imap/imap_private.h"
#include "imap/imap_search.h"
#include "io/conn.h"
#include "mime/mime_search.h"
#include "store/index.h"

/* One message's text, loaded on the program's first need of it. */
struct search_load {
	const struct index_msg *m;
	char *data;
	size_t len;
	struct mime_search *ms;
	bool gone;     /* the file vanished (expunged meanwhile) */
	char *error;   /* any other failure */
};

static struct mime_search *
search_load(void *ctx)
{
	struct search_load *l = ctx;
	/* The file is the LF form, never larger than the CRLF size the index holds. */
	l->data = read_file(l->m->path, l->m->size + 1, &l->len);
	if (l->data == NULL) {
		if (errno == ENOENT)
			l->gone = true;
		else
			l->error = xasprintf("reading uid %u: %s", l->m->uid, strerror(errno));
		return NULL;
	}
	l->ms = mime_search_new(l->data, l->len);
	return l->ms;
}

/* Messages described during one SEARCH (their files were read for a
   header key), for the index to keep. */
struct search_kept {
	struct index_cache_entry *e;
	size_t n;
};

/*
 * One message (m, the index's fields for it or NULL): 1 matches, 0 not
 * (or gone), -1 failure with *error_r. kept: NULL unless the program has
 * keys on fields the index keeps.
 */
static int
search_one(struct imap_session *s, struct imap_search *prog, uint32_t seq,
	   const struct index_msg *m, const char *fields, struct search_kept *kept,
	   char **error_r)
{
	uint32_t count = s->sel.count;
	struct search_load load = { .m = m };
	struct imap_search_msg sm = {
		.seq = seq, .uid = m->uid, .seq_max = count, .uid_max = s->sel.uids[count - 1],
		.flags = m->flags, .keywords = m->keywords != NULL ? m->keywords : "",
		.internaldate = m->internaldate, .size = m->size,
		.recent = imap_msg_recent(s, m->uid), .fields = fields, .load = search_load,
		.load_ctx = &load,
	};
	int r = imap_search_match(prog, &sm);
	if (r >= 0 && kept != NULL && fields == NULL && load.ms != NULL) {
		kept->e = xrealloc(kept->e, (kept->n + 1) * sizeof(*kept->e));
		struct index_cache_entry *e = &kept->e[kept->n];
		memset(e, 0, sizeof(*e));
		e->uid = m->uid;
		char *derr = NULL;
		if (index_cache_describe(load.data, load.len, e, &derr) == 0)
			kept->n++;
		else
			index_cache_entry_clear(e);
		free(derr); /* a later FETCH says why, if it fails again */
	}
	if (r < 0 && load.gone)
		r = 0;
	else if (r < 0)
		*error_r = load.error != NULL ? load.error : xstrdup("cannot load message");
	else
		free(load.error);
	mime_search_free(&load.ms);
	free(load.data);
	return r;
}

/*
 * The session's map against the index's rows, both in UID order, in one
 * query: a message expunged by another session meanwhile does not match.
 * The numbers (or UIDs) that match go into hits; -1 with *error_r.
 */
static int
search_all(struct imap_session *s, struct imap_search *prog, bool uid_cmd,
	   struct search_kept *kept, uint32_t *hits, size_t *n_r, char **error_r)
{
	struct index_walk *w;
	if (index_walk_begin(s->index, s->sel.name, s->sel.dir, &w, error_r) < 0)
		return -1;
	struct index_msg m = { 0 };
	char *fields = NULL;
	int more = index_walk_next(w, &m, &fields, error_r), r = 0;
	for (uint32_t seq = 1; seq <= s->sel.count && more > 0 && r >= 0; seq++) {
		uint32_t uid = s->sel.uids[seq - 1];
		while (more > 0 && m.uid < uid) {
			index_msg_clear(&m);
			free(fields);
			more = index_walk_next(w, &m, &fields, error_r);
		}
		if (more <= 0 || m.uid != uid)
			continue;
		r = search_one(s, prog, seq, &m, fields, kept, error_r);
		if (r > 0)
			hits[(*n_r)++] = uid_cmd ? uid : seq;
	}
	if (more > 0)
		index_msg_clear(&m);
	free(fields);
	index_walk_end(&w);
	return more < 0 || r < 0 ? -1 : 0;
}

/* The ESEARCH response (RFC 4731 §3.1); numbers ascend. */
static void
search_write_esearch(struct imap_session *s, bool uid_cmd, unsigned ret,
		     const uint32_t *hits, size_t n, struct buf *out)
{
	buf_appends(out, "* ESEARCH (TAG ");
	imap_append_quoted(out, s->tag);
	buf_appendf(out, ")%s", uid_cmd ? " UID" : "");
	if ((ret & IMAP_SEARCH_RET_MIN) && n > 0)
		buf_appendf(out, " MIN %u", hits[0]);
	if ((ret & IMAP_SEARCH_RET_MAX) && n > 0)
		buf_appendf(out, " MAX %u", hits[n - 1]);
	if ((ret & IMAP_SEARCH_RET_ALL) && n > 0) {
		buf_appends(out, " ALL ");
		for (size_t i = 0; i < n;) {
			size_t j = i;
			while (j + 1 < n && hits[j + 1] == hits[j] + 1)
				j++;
			buf_appendf(out, "%s%u", i > 0 ? "," : "", hits[i]);
			if (j > i)
				buf_appendf(out, ":%u", hits[j]);
			i = j + 1;
		}
	}
	if (ret & IMAP_SEARCH_RET_COUNT)
		buf_appendf(out, " COUNT %zu", n);
	buf_appends(out, "\r\n");
}

/* Stores what was described (a failure only costs the next SEARCH or
   FETCH the same reads). */
static void
search_keep(struct imap_session *s, struct search_kept *kept)
{
	char *error = NULL;
	if (index_cache_set(s->index, s->sel.name, kept->e, kept->n, &error) < 0) {
		log_warn("imap %s: user=%s search: descriptions not kept: %s", s->id,
			 s->address, error);
		free(error);
	}
	for (size_t i = 0; i < kept->n; i++)
		index_cache_entry_clear(&kept->e[i]);
	free(kept->e);
}

int
imap_cmd_search(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	bool uid_cmd = imap_parser_uid(s->parser), badcharset;
	struct imap_search *prog = NULL;
	const char *why = NULL;
	if (imap_search_parse(args, argc, &prog, &badcharset, &why) < 0) {
		imap_reply_bad(s, why);
		return -1;
	}
	if (badcharset) {
		imap_search_free(&prog);
		conn_printf(s->conn, "%s NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset\r\n",
			    s->tag);
		return 0;
	}
	uint32_t *hits = xmalloc((s->sel.count + 1) * sizeof(*hits));
	size_t n = 0;
	char *error = NULL;
	struct search_kept kept = { 0 };
	bool keep = imap_search_wants_fields(prog);
	if (index_read_begin(s->index, &error) == 0) {
		search_all(s, prog, uid_cmd, keep ? &kept : NULL, hits, &n, &error);
		index_read_end(s->index);
	}
	search_keep(s, &kept);
	struct buf out = BUF_INIT;
	unsigned ret;
	if (error != NULL) {
		log_err("imap %s: user=%s search failed: %s", s->id, s->address, error);
		free(error);
		buf_appendf(&out, "%s NO [SERVERBUG] Search failed, try again\r\n", s->tag);
	} else {
		if (imap_search_esearch(prog, &ret)) {
			search_write_esearch(s, uid_cmd, ret, hits, n, &out);
		} else {
			buf_appends(&out, "* SEARCH");
			for (size_t i = 0; i < n; i++)
				buf_appendf(&out, " %u", hits[i]);
			buf_appends(&out, "\r\n");
		}
		buf_appendf(&out, "%s OK %sSEARCH completed\r\n", s->tag, uid_cmd ? "UID " : "");
	}
	free(hits);
	imap_search_free(&prog);
	conn_write(s->conn, out.data, out.len);
	buf_free(&out);
	return 0;
}
