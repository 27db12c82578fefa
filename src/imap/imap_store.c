/*
 * STORE and UID STORE (RFC 3501 §6.4.6, §6.4.8), EXPUNGE (§6.4.3), UID
 * EXPUNGE (RFC 4315 §2.1) and the silent expunge of CLOSE (§6.4.2), and
 * the FLAGS / PERMANENTFLAGS lists and a message's FLAGS item that
 * SELECT, FETCH and STORE write.
 *
 * System flags are kept as Maildir info letters, keywords (§2.3.2) as the
 * letters a-z of the folder's keyword map (store/index.h); a mailbox has at
 * most INDEX_KEYWORDS_MAX keywords, and a STORE that needs more is refused
 * whole with NO [LIMIT] before any message changes, so that a client never
 * believes a keyword was saved. \Recent cannot be stored and is ignored.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "imap/imap_parse.h"
#include "imap/imap_private.h"
#include "imap/imap_seqset.h"
#include "io/conn.h"
#include "store/index.h"

/* In the order FETCH has always shown them. */
static const struct {
	char letter;
	const char *flag;
} store_flags[] = {
	{ 'R', "\\Answered" },
	{ 'F', "\\Flagged" },
	{ 'T', "\\Deleted" },
	{ 'S', "\\Seen" },
	{ 'D', "\\Draft" },
};

#define STORE_NFLAGS (sizeof(store_flags) / sizeof(store_flags[0]))
/* Keywords one STORE may name: more than a mailbox may hold is refused. */
#define STORE_KEYWORDS_MAX INDEX_KEYWORDS_MAX

enum store_op { STORE_REPLACE, STORE_ADD, STORE_REMOVE };

/* What a flag list can be refused for, with its reply. */
enum store_parse_err { STORE_PARSE_OK, STORE_PARSE_BAD, STORE_PARSE_CANNOT,
		       STORE_PARSE_LIMIT };

struct store_req {
	enum store_op op;
	bool silent;
	bool uid_cmd;
	unsigned mask; /* bit i: store_flags[i] */
	const char *keywords[STORE_KEYWORDS_MAX]; /* the parser's strings */
	size_t nkeywords;
};

static unsigned
store_mask_of(const char *letters)
{
	unsigned mask = 0;
	for (size_t i = 0; i < STORE_NFLAGS; i++) {
		if (strchr(letters, store_flags[i].letter) != NULL)
			mask |= 1u << i;
	}
	return mask;
}

static void
store_letters_of(unsigned mask, char *out)
{
	size_t n = 0;
	for (size_t i = 0; i < STORE_NFLAGS; i++) {
		if (mask & (1u << i))
			out[n++] = store_flags[i].letter;
	}
	out[n] = '\0';
}

void
imap_write_msg_flags(struct buf *out, const struct imap_session *s,
		     const struct index_msg *m)
{
	buf_appends(out, "FLAGS ");
	imap_write_flags(s, out, m->uid, m->flags, m->keywords);
}

/*
 * §6.3.1 and §7.2.6: FLAGS names the flags defined in the mailbox (the
 * system flags and every keyword of its map), PERMANENTFLAGS those a
 * STORE keeps, with \* while new keywords can still be made.
 */
void
imap_write_flag_lists(const struct imap_session *s, const char *dir, bool readonly,
		      struct buf *out)
{
	char *names = NULL, *error = NULL;
	size_t count = INDEX_KEYWORDS_MAX;
	if (index_keywords_names(dir, &names, &count, &error) < 0) {
		/* The messages' own flags still show; only new keywords wait. */
		log_err("imap %s: user=%s keywords: %s", s->id, s->address, error);
		free(error);
		names = xstrdup("");
		count = INDEX_KEYWORDS_MAX;
	}
	struct buf list = BUF_INIT;
	for (size_t i = 0; i < STORE_NFLAGS; i++)
		buf_appendf(&list, "%s%s", i > 0 ? " " : "", store_flags[i].flag);
	if (names[0] != '\0')
		buf_appendf(&list, " %s", names);
	buf_appendf(out, "* FLAGS (%s)\r\n", list.data);
	if (readonly)
		buf_appends(out, "* OK [PERMANENTFLAGS ()] Flags permitted\r\n");
	else
		buf_appendf(out, "* OK [PERMANENTFLAGS (%s%s)] Flags permitted\r\n",
			    list.data, count < INDEX_KEYWORDS_MAX ? " \\*" : "");
	buf_free(&list);
	free(names);
}

static bool
store_has_keyword(const struct store_req *req, const char *name, size_t len)
{
	for (size_t i = 0; i < req->nkeywords; i++) {
		if (strlen(req->keywords[i]) == len &&
		    strncasecmp(req->keywords[i], name, len) == 0)
			return true;
	}
	return false;
}

/* One flag: a system flag, \Recent (ignored), or a keyword. */
static enum store_parse_err
store_flag_add(const struct imap_arg *arg, struct store_req *req)
{
	if (arg->type != IMAP_ARG_ATOM)
		return STORE_PARSE_BAD;
	const char *f = arg->u.str.data;
	size_t len = arg->u.str.len;
	if (strcasecmp(f, "\\Recent") == 0)
		return STORE_PARSE_OK;
	for (size_t i = 0; i < STORE_NFLAGS; i++) {
		if (strcasecmp(f, store_flags[i].flag) == 0) {
			req->mask |= 1u << i;
			return STORE_PARSE_OK;
		}
	}
	if (f[0] == '\\')
		return STORE_PARSE_CANNOT; /* a flag-extension tern does not know */
	if (len > INDEX_KEYWORD_LEN_MAX)
		return STORE_PARSE_LIMIT;
	if (!index_keyword_valid(f, len))
		return STORE_PARSE_BAD;
	if (store_has_keyword(req, f, len))
		return STORE_PARSE_OK;
	if (req->nkeywords == STORE_KEYWORDS_MAX)
		return STORE_PARSE_LIMIT;
	req->keywords[req->nkeywords++] = f;
	return STORE_PARSE_OK;
}

/* "+FLAGS.SILENT" and its kin; -1 if not one of them. */
static int
store_parse_item(const struct imap_arg *arg, struct store_req *req)
{
	if (arg->type != IMAP_ARG_ATOM)
		return -1;
	const char *s = arg->u.str.data;
	req->op = *s == '+' ? STORE_ADD : *s == '-' ? STORE_REMOVE : STORE_REPLACE;
	if (req->op != STORE_REPLACE)
		s++;
	if (strcasecmp(s, "FLAGS") == 0)
		return 0;
	if (strcasecmp(s, "FLAGS.SILENT") == 0) {
		req->silent = true;
		return 0;
	}
	return -1;
}

/* The flag list or a single flag (§6.4.6 allows both). */
static enum store_parse_err
store_parse_flags(const struct imap_arg *arg, struct store_req *req)
{
	if (arg->type != IMAP_ARG_LIST)
		return store_flag_add(arg, req);
	for (size_t i = 0; i < arg->u.list.count; i++) {
		enum store_parse_err e = store_flag_add(&arg->u.list.items[i], req);
		if (e != STORE_PARSE_OK)
			return e;
	}
	return STORE_PARSE_OK;
}

/* Whether a space-separated list holds the name (case-insensitively). */
static bool
store_list_has(const char *list, const char *name, size_t len)
{
	for (const char *p = list; *p != '\0';) {
		size_t n = strcspn(p, " ");
		if (n == len && strncasecmp(p, name, len) == 0)
			return true;
		p += n;
		p += *p == ' ';
	}
	return false;
}

/*
 * The message's keywords after the request, space-separated, into kw;
 * false when they stay what they were (names compare case-insensitively,
 * §2.3.2 leaves keyword case to the server).
 */
static bool
store_keywords_apply(const struct store_req *req, const char *old, struct buf *kw)
{
	bool changed = false;
	for (const char *p = old; *p != '\0';) {
		size_t len = strcspn(p, " ");
		bool named = store_has_keyword(req, p, len);
		bool keep = req->op == STORE_ADD ||
			    (req->op == STORE_REMOVE && !named) ||
			    (req->op == STORE_REPLACE && named);
		if (keep)
			buf_appendf(kw, "%s%.*s", kw->len > 0 ? " " : "", (int)len, p);
		else
			changed = true;
		p += len;
		p += *p == ' ';
	}
	if (req->op == STORE_REMOVE)
		return changed;
	for (size_t i = 0; i < req->nkeywords; i++) {
		const char *k = req->keywords[i];
		if (store_list_has(old, k, strlen(k)))
			continue;
		buf_appendf(kw, "%s%s", kw->len > 0 ? " " : "", k);
		changed = true;
	}
	return changed;
}

/* Applies the change to one message and reports it; 1 if it changed,
   0 if not, -1 on failure. */
static int
store_one(struct imap_session *s, const struct store_req *req, uint32_t seq,
	  struct buf *out)
{
	struct index_msg m;
	int found = 0;
	char *error = NULL;
	uint32_t uid = s->sel.uids[seq - 1];
	if (index_msg_get(s->index, s->sel.name, s->sel.dir, uid, &m, &found, &error) < 0)
		goto fail;
	if (!found)
		return -1; /* expunged by another session */
	unsigned old = store_mask_of(m.flags), now = old;
	if (req->op == STORE_ADD)
		now |= req->mask;
	else if (req->op == STORE_REMOVE)
		now &= ~req->mask;
	else
		now = req->mask;
	char letters[STORE_NFLAGS + 1];
	store_letters_of(now, letters);
	struct buf kw = BUF_INIT;
	bool kw_changed = store_keywords_apply(req, m.keywords, &kw);
	int r = 0;
	bool limit = false;
	if (kw_changed)
		r = index_set_flags_keywords(s->index, s->sel.name, s->sel.dir, uid,
					     letters, kw.data != NULL ? kw.data : "",
					     &limit, &error);
	else if (now != old)
		r = index_set_flags(s->index, s->sel.name, s->sel.dir, uid, letters,
				    &error);
	buf_free(&kw);
	/* Read back: the keywords as the mailbox spells them. */
	if (r == 0 && (kw_changed || now != old)) {
		index_msg_clear(&m);
		r = index_msg_get(s->index, s->sel.name, s->sel.dir, uid, &m, &found,
				  &error);
	}
	if (r < 0 || !found) {
		index_msg_clear(&m);
		if (r == 0)
			return -1;
		goto fail;
	}
	if (!req->silent) {
		buf_appendf(out, "* %u FETCH (", seq);
		if (req->uid_cmd)
			buf_appendf(out, "UID %u ", uid);
		imap_write_msg_flags(out, s, &m);
		buf_appends(out, ")\r\n");
	}
	index_msg_clear(&m);
	return kw_changed || now != old;
fail:
	log_err("imap %s: user=%s store failed: %s", s->id, s->address,
		error != NULL ? error : "?");
	free(error);
	return -1;
}

/* The sequence numbers the set names, as FETCH reads them; the failures
   counted, *changed_r whether any message changed. */
static int
store_all(struct imap_session *s, const struct store_req *req, struct imap_seqset *set,
	  struct buf *out, bool *changed_r)
{
	int failed = 0;
	uint32_t count = s->sel.count;
	uint32_t star = req->uid_cmd ? (count > 0 ? s->sel.uids[count - 1] : 0) : count;
	for (uint32_t seq = 1; seq <= count; seq++) {
		uint32_t n = req->uid_cmd ? s->sel.uids[seq - 1] : seq;
		if (!imap_seqset_contains(set, n, star))
			continue;
		int r = store_one(s, req, seq, out);
		failed += r < 0;
		*changed_r |= r > 0;
	}
	return failed;
}

/*
 * Gives letters to the keywords a +FLAGS or FLAGS names before any
 * message changes, so that NO [LIMIT] leaves the mailbox as it was.
 * Writes the new FLAGS and PERMANENTFLAGS to out when keywords were
 * made (§7.2.6: the client learns of them before seeing them on a
 * message). 0; or -1 after answering NO.
 */
static int
store_keywords_prepare(struct imap_session *s, const struct store_req *req,
		       struct buf *out)
{
	if (req->op == STORE_REMOVE || req->nkeywords == 0)
		return 0;
	struct buf kw = BUF_INIT;
	for (size_t i = 0; i < req->nkeywords; i++)
		buf_appendf(&kw, "%s%s", i > 0 ? " " : "", req->keywords[i]);
	char *before = NULL, *error = NULL;
	char letters[INDEX_KEYWORDS_MAX + 1];
	size_t nbefore = 0;
	bool limit = false;
	int r = index_keywords_names(s->sel.dir, &before, &nbefore, &error);
	if (r == 0)
		r = index_keywords_letters(s->sel.dir, kw.data, letters, &limit, &error);
	buf_free(&kw);
	free(before);
	if (r < 0 && limit) {
		free(error);
		conn_printf(s->conn, "%s NO [LIMIT] At most %d keywords per mailbox\r\n",
			    s->tag, INDEX_KEYWORDS_MAX);
		return -1;
	}
	if (r < 0) {
		log_err("imap %s: user=%s keywords: %s", s->id, s->address, error);
		free(error);
		conn_printf(s->conn, "%s NO [SERVERBUG] Keywords could not be stored\r\n",
			    s->tag);
		return -1;
	}
	/* The map only grows: more names than before means new keywords. */
	char *after = NULL;
	size_t nafter = 0;
	if (index_keywords_names(s->sel.dir, &after, &nafter, &error) < 0) {
		free(error);
		nafter = nbefore;
	}
	free(after);
	if (nafter != nbefore)
		imap_write_flag_lists(s, s->sel.dir, false, out);
	return 0;
}

int
imap_cmd_store(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	struct store_req req = { .uid_cmd = imap_parser_uid(s->parser) };
	struct imap_seqset *set = NULL;
	const char *perr = NULL;
	if (argc != 3 || args[0].type != IMAP_ARG_ATOM ||
	    store_parse_item(&args[1], &req) < 0) {
		imap_reply_bad(s, "Expected a sequence set, FLAGS item and flags");
		return -1;
	}
	enum store_parse_err e = store_parse_flags(&args[2], &req);
	if (e == STORE_PARSE_BAD) {
		imap_reply_bad(s, "Invalid flag");
		return -1;
	}
	if (imap_seqset_parse(args[0].u.str.data, args[0].u.str.len, 0, &set, &perr) < 0) {
		imap_reply_bad(s, perr);
		return -1;
	}
	if (e != STORE_PARSE_OK) {
		imap_seqset_free(&set);
		if (e == STORE_PARSE_CANNOT)
			conn_printf(s->conn, "%s NO [CANNOT] Unknown system flag\r\n", s->tag);
		else
			conn_printf(s->conn, "%s NO [LIMIT] Too many or too long keywords\r\n",
				    s->tag);
		return 0;
	}
	if (s->sel.readonly) {
		imap_seqset_free(&set);
		conn_printf(s->conn, "%s NO [READ-ONLY] Mailbox is read-only\r\n", s->tag);
		return 0;
	}
	struct buf out = BUF_INIT;
	if (store_keywords_prepare(s, &req, &out) < 0) {
		imap_seqset_free(&set);
		buf_free(&out);
		return 0;
	}
	bool changed = false;
	int failed = store_all(s, &req, set, &out, &changed);
	imap_seqset_free(&set);
	size_t tagged_at = out.len;
	if (failed > 0)
		buf_appendf(&out, "%s NO [SERVERBUG] Some flags could not be stored\r\n", s->tag);
	else
		buf_appendf(&out, "%s OK %sSTORE completed\r\n", s->tag,
			    req.uid_cmd ? "UID " : "");
	imap_reply_durable(s, changed ? s->sel.dir : NULL, NULL, &out, tagged_at);
	return 0;
}

/* Removes the files of the \Deleted messages (of uids, if not NULL);
   *removed_r set if any went. */
static int
store_unlink_deleted(struct imap_session *s, struct imap_seqset *uids, bool *removed_r,
		     char **error_r)
{
	uint32_t count = s->sel.count;
	uint32_t star = count > 0 ? s->sel.uids[count - 1] : 0;
	for (uint32_t seq = 1; seq <= count; seq++) {
		uint32_t uid = s->sel.uids[seq - 1];
		if (uids != NULL && !imap_seqset_contains(uids, uid, star))
			continue;
		struct index_msg m;
		int found = 0;
		if (index_msg_get(s->index, s->sel.name, s->sel.dir, uid, &m, &found,
				  error_r) < 0)
			return -1;
		if (!found)
			continue;
		bool deleted = strchr(m.flags, 'T') != NULL;
		/* ENOENT: gone already, which the sync will report. */
		if (deleted && unlink(m.path) < 0 && errno != ENOENT) {
			*error_r = xasprintf("unlink uid %u: %s", uid, strerror(errno));
			index_msg_clear(&m);
			return -1;
		}
		*removed_r |= deleted;
		index_msg_clear(&m);
	}
	return 0;
}

int
imap_store_expunge(struct imap_session *s, struct imap_seqset *uids, bool report,
		   struct buf *out, bool *removed_r, char **error_r)
{
	*removed_r = false;
	if (store_unlink_deleted(s, uids, removed_r, error_r) < 0)
		return -1;
	return imap_sync(s, report, out, error_r);
}

/* EXPUNGE, or UID EXPUNGE uid-set (RFC 4315 §2.1). */
int
imap_cmd_expunge(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	bool uid_cmd = imap_parser_uid(s->parser);
	struct imap_seqset *set = NULL;
	const char *perr = NULL;
	if (argc != (uid_cmd ? 1u : 0u) || (uid_cmd && args[0].type != IMAP_ARG_ATOM)) {
		imap_reply_bad(s, uid_cmd ? "Expected a UID set" : "Unexpected arguments");
		return -1;
	}
	if (uid_cmd &&
	    imap_seqset_parse(args[0].u.str.data, args[0].u.str.len, 0, &set, &perr) < 0) {
		imap_reply_bad(s, perr);
		return -1;
	}
	if (s->sel.readonly) {
		imap_seqset_free(&set);
		conn_printf(s->conn, "%s NO [READ-ONLY] Mailbox is read-only\r\n", s->tag);
		return 0;
	}
	struct buf out = BUF_INIT;
	char *error = NULL;
	bool removed;
	int r = imap_store_expunge(s, set, true, &out, &removed, &error);
	size_t tagged_at = out.len;
	if (r < 0) {
		log_err("imap %s: user=%s expunge failed: %s", s->id, s->address,
			error != NULL ? error : "?");
		free(error);
		buf_appendf(&out, "%s NO [SERVERBUG] Expunge failed, try again\r\n", s->tag);
	} else {
		buf_appendf(&out, "%s OK %sEXPUNGE completed\r\n", s->tag, uid_cmd ? "UID " : "");
	}
	imap_seqset_free(&set);
	imap_reply_durable(s, removed ? s->sel.dir : NULL, NULL, &out, tagged_at);
	return 0;
}
