/*
 * STORE and UID STORE (RFC 3501 §6.4.6, §6.4.8), EXPUNGE (§6.4.3), UID
 * EXPUNGE (RFC 4315 §2.1) and the silent expunge of CLOSE (§6.4.2).
 *
 * Only the system flags are kept (as Maildir info letters); keywords are
 * refused with NO [CANNOT] rather than dropped, so that a client never
 * believes a keyword was saved. \Recent cannot be stored and is ignored.
 */
#include <errno.h>
#include <fcntl.h>
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

/* In Maildir's sorted order, so that a walk over it gives sorted letters. */
static const struct {
	char letter;
	const char *flag;
} store_flags[] = {
	{ 'D', "\\Draft" },
	{ 'F', "\\Flagged" },
	{ 'R', "\\Answered" },
	{ 'S', "\\Seen" },
	{ 'T', "\\Deleted" },
};

#define STORE_NFLAGS (sizeof(store_flags) / sizeof(store_flags[0]))

enum store_op { STORE_REPLACE, STORE_ADD, STORE_REMOVE };

struct store_req {
	enum store_op op;
	bool silent;
	bool uid_cmd;
	unsigned mask; /* bit i: store_flags[i] */
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

static void
store_write_flags(struct buf *out, unsigned mask)
{
	buf_appends(out, "FLAGS (");
	bool first = true;
	for (size_t i = 0; i < STORE_NFLAGS; i++) {
		if (!(mask & (1u << i)))
			continue;
		buf_appendf(out, "%s%s", first ? "" : " ", store_flags[i].flag);
		first = false;
	}
	buf_appends(out, ")");
}

/* One flag: 1 known (bit added), 0 \Recent (ignored), -1 anything else. */
static int
store_flag_add(const struct imap_arg *arg, unsigned *mask)
{
	if (arg->type != IMAP_ARG_ATOM)
		return -1;
	if (strcasecmp(arg->u.str.data, "\\Recent") == 0)
		return 0;
	for (size_t i = 0; i < STORE_NFLAGS; i++) {
		if (strcasecmp(arg->u.str.data, store_flags[i].flag) == 0) {
			*mask |= 1u << i;
			return 1;
		}
	}
	return -1;
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

/* The flag list or a single flag (§6.4.6 allows both); -1 on a keyword. */
static int
store_parse_flags(const struct imap_arg *arg, unsigned *mask)
{
	if (arg->type != IMAP_ARG_LIST)
		return store_flag_add(arg, mask) < 0 ? -1 : 0;
	for (size_t i = 0; i < arg->u.list.count; i++) {
		if (store_flag_add(&arg->u.list.items[i], mask) < 0)
			return -1;
	}
	return 0;
}

/* Applies the change to one message and reports it; -1 on failure. */
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
	index_msg_clear(&m);
	if (req->op == STORE_ADD)
		now |= req->mask;
	else if (req->op == STORE_REMOVE)
		now &= ~req->mask;
	else
		now = req->mask;
	if (now != old) {
		char letters[STORE_NFLAGS + 1];
		store_letters_of(now, letters);
		if (index_set_flags(s->index, s->sel.name, s->sel.dir, uid, letters,
				    &error) < 0)
			goto fail;
	}
	if (!req->silent) {
		buf_appendf(out, "* %u FETCH (", seq);
		if (req->uid_cmd)
			buf_appendf(out, "UID %u ", uid);
		store_write_flags(out, now);
		buf_appends(out, ")\r\n");
	}
	return 0;
fail:
	log_err("imap %s: user=%s store failed: %s", s->id, s->address,
		error != NULL ? error : "?");
	free(error);
	return -1;
}

/* The sequence numbers the set names, as FETCH reads them. */
static int
store_all(struct imap_session *s, const struct store_req *req, struct imap_seqset *set,
	  struct buf *out)
{
	int failed = 0;
	uint32_t count = s->sel.count;
	uint32_t star = req->uid_cmd ? (count > 0 ? s->sel.uids[count - 1] : 0) : count;
	for (uint32_t seq = 1; seq <= count; seq++) {
		uint32_t n = req->uid_cmd ? s->sel.uids[seq - 1] : seq;
		if (imap_seqset_contains(set, n, star) && store_one(s, req, seq, out) < 0)
			failed++;
	}
	return failed;
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
	if (imap_seqset_parse(args[0].u.str.data, args[0].u.str.len, 0, &set, &perr) < 0) {
		imap_reply_bad(s, perr);
		return -1;
	}
	if (store_parse_flags(&args[2], &req.mask) < 0) {
		imap_seqset_free(&set);
		conn_printf(s->conn, "%s NO [CANNOT] Keywords are not supported yet\r\n", s->tag);
		return 0;
	}
	if (s->sel.readonly) {
		imap_seqset_free(&set);
		conn_printf(s->conn, "%s NO [READ-ONLY] Mailbox is read-only\r\n", s->tag);
		return 0;
	}
	struct buf out = BUF_INIT;
	int failed = store_all(s, &req, set, &out);
	imap_seqset_free(&set);
	if (failed > 0)
		buf_appendf(&out, "%s NO [SERVERBUG] Some flags could not be stored\r\n", s->tag);
	else
		buf_appendf(&out, "%s OK %sSTORE completed\r\n", s->tag,
			    req.uid_cmd ? "UID " : "");
	conn_write(s->conn, out.data, out.len);
	buf_free(&out);
	return 0;
}

/* Removes the files of the \Deleted messages (of uids, if not NULL). */
static int
store_unlink_deleted(struct imap_session *s, struct imap_seqset *uids, char **error_r)
{
	uint32_t count = s->sel.count;
	uint32_t star = count > 0 ? s->sel.uids[count - 1] : 0;
	size_t removed = 0;
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
		removed += deleted;
		index_msg_clear(&m);
	}
	if (removed == 0)
		return 0;
	/* The unlinks are durable only once the directory is synced. */
	char *cur = xasprintf("%s/cur", s->sel.dir);
	int fd = open(cur, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(cur);
	if (fd < 0 || fsync(fd) < 0) {
		*error_r = xasprintf("fsync cur/: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int
imap_store_expunge(struct imap_session *s, struct imap_seqset *uids, bool report,
		   struct buf *out, char **error_r)
{
	if (store_unlink_deleted(s, uids, error_r) < 0)
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
	if (imap_store_expunge(s, set, true, &out, &error) < 0) {
		log_err("imap %s: user=%s expunge failed: %s", s->id, s->address,
			error != NULL ? error : "?");
		free(error);
		buf_appendf(&out, "%s NO [SERVERBUG] Expunge failed, try again\r\n", s->tag);
	} else {
		buf_appendf(&out, "%s OK %sEXPUNGE completed\r\n", s->tag, uid_cmd ? "UID " : "");
	}
	imap_seqset_free(&set);
	conn_write(s->conn, out.data, out.len);
	buf_free(&out);
	return 0;
}
