/*
 * Entering and leaving the selected state (RFC 3501 §6.3.1, §6.3.2,
 * §6.4.2, RFC 3691 UNSELECT) and STATUS (§6.3.10), over the per-user
 * message index (store/index.h).
 *
 * Not yet: \Recent (RECENT is always 0), untagged EXISTS/EXPUNGE while
 * selected outside EXPUNGE (imap_store.c).
 */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "imap/imap_parse.h"
#include "imap/imap_private.h"
#include "io/conn.h"
#include "store/folders.h"
#include "store/index.h"

#define IMAP_SYSTEM_FLAGS "(\\Answered \\Flagged \\Deleted \\Seen \\Draft)"

/* A mailbox looked at by SELECT, EXAMINE or STATUS. */
struct imap_mbox {
	char *name;
	char *dir;
	uint32_t uidvalidity, uidnext, count;
	uint32_t *uids;
	uint32_t unseen;       /* messages without \Seen */
	uint32_t first_unseen; /* its sequence number, 0 if none */
};

static void
imap_mbox_clear(struct imap_mbox *m)
{
	free(m->name);
	free(m->dir);
	free(m->uids);
	memset(m, 0, sizeof(*m));
}

/* Leaves the selected state; the index stays open. */
static void
imap_deselect(struct imap_session *s)
{
	free(s->sel.name);
	free(s->sel.dir);
	free(s->sel.uids);
	memset(&s->sel, 0, sizeof(s->sel));
	if (s->state == IMAP_STATE_SELECTED)
		s->state = IMAP_STATE_AUTH;
}

void
imap_select_free(struct imap_session *s)
{
	imap_deselect(s);
	if (s->index != NULL)
		index_close(&s->index);
}

int
imap_index_ensure(struct imap_session *s, char **error_r)
{
	if (s->index != NULL)
		return 0;
	enum store_folder_err err;
	char *user_dir = store_folder_path(s->mail_root, s->address, "INBOX", &err, error_r);
	if (user_dir == NULL)
		return -1;
	s->index = index_open(user_dir, error_r);
	free(user_dir);
	return s->index != NULL ? 0 : -1;
}

/* Reads the UIDs and the \Seen counts of a synced mailbox. */
static int
imap_mbox_scan(struct imap_session *s, struct imap_mbox *m, char **error_r)
{
	if (index_count(s->index, m->name, &m->count, error_r) < 0)
		return -1;
	m->uids = xcalloc(m->count + 1, sizeof(uint32_t));
	for (uint32_t seq = 1; seq <= m->count; seq++) {
		if (index_uid_at(s->index, m->name, seq, &m->uids[seq - 1], error_r) < 0)
			return -1;
		struct index_msg msg;
		int found = 0;
		if (index_msg_get(s->index, m->name, m->dir, m->uids[seq - 1], &msg, &found,
				  error_r) < 0)
			return -1;
		if (found && strchr(msg.flags, 'S') == NULL) {
			m->unseen++;
			if (m->first_unseen == 0)
				m->first_unseen = seq;
		}
		if (found)
			index_msg_clear(&msg);
	}
	return 0;
}

/*
 * Opens, syncs and scans a mailbox. 0; or -1 after answering NO (the
 * mailbox is not there, or a temporary error).
 */
static int
imap_mbox_open(struct imap_session *s, const char *name, struct imap_mbox *m)
{
	enum store_folder_err err = STORE_FOLDER_OK;
	char *error = NULL;
	memset(m, 0, sizeof(*m));
	if (store_folder_name_check(name, &m->name, &err, &error) < 0 ||
	    !store_folder_exists(s->mail_root, s->address, m->name)) {
		free(error);
		imap_mbox_clear(m);
		conn_printf(s->conn, "%s NO [NONEXISTENT] No such mailbox\r\n", s->tag);
		return -1;
	}
	m->dir = store_folder_path(s->mail_root, s->address, m->name, &err, &error);
	struct index_sync_result r;
	memset(&r, 0, sizeof(r));
	if (m->dir == NULL || imap_index_ensure(s, &error) < 0 ||
	    index_sync(s->index, m->name, m->dir, &r, &error) < 0) {
		log_err("imap %s: user=%s mailbox open failed: %s", s->id, s->address,
			error != NULL ? error : "?");
		free(error);
		imap_mbox_clear(m);
		conn_printf(s->conn, "%s NO [SERVERBUG] Internal error, try again\r\n", s->tag);
		return -1;
	}
	m->uidvalidity = r.uidvalidity;
	m->uidnext = r.uidnext;
	index_sync_result_free(&r);
	if (imap_mbox_scan(s, m, &error) < 0) {
		log_err("imap %s: user=%s mailbox scan failed: %s", s->id, s->address,
			error != NULL ? error : "?");
		free(error);
		imap_mbox_clear(m);
		conn_printf(s->conn, "%s NO [SERVERBUG] Internal error, try again\r\n", s->tag);
		return -1;
	}
	return 0;
}

/* SELECT and EXAMINE: §6.3.1 lists the untagged responses required. */
static int
imap_select(struct imap_session *s, const struct imap_arg *args, size_t argc, bool readonly)
{
	const char *name;
	size_t len;
	if (argc != 1 || !imap_arg_get_astring(&args[0], &name, &len)) {
		imap_reply_bad(s, "Expected one mailbox name");
		return -1;
	}
	/* §6.3.1: a SELECT while selected deselects first, even if it fails. */
	imap_deselect(s);
	struct imap_mbox m;
	if (imap_mbox_open(s, name, &m) < 0)
		return 0;
	struct buf out = BUF_INIT;
	buf_appends(&out, "* FLAGS " IMAP_SYSTEM_FLAGS "\r\n");
	buf_appendf(&out, "* OK [PERMANENTFLAGS %s] Flags permitted\r\n",
		    readonly ? "()" : IMAP_SYSTEM_FLAGS);
	buf_appendf(&out, "* %u EXISTS\r\n", m.count);
	/* No \Recent support yet: no message is ever recent. */
	buf_appends(&out, "* 0 RECENT\r\n");
	buf_appendf(&out, "* OK [UIDVALIDITY %u] UIDs valid\r\n", m.uidvalidity);
	buf_appendf(&out, "* OK [UIDNEXT %u] Predicted next UID\r\n", m.uidnext);
	if (m.first_unseen != 0)
		buf_appendf(&out, "* OK [UNSEEN %u] First unseen\r\n", m.first_unseen);
	buf_appendf(&out, "%s OK [%s] %s completed\r\n", s->tag,
		    readonly ? "READ-ONLY" : "READ-WRITE", readonly ? "EXAMINE" : "SELECT");
	conn_write(s->conn, out.data, out.len);
	buf_free(&out);
	s->sel.name = m.name;
	s->sel.dir = m.dir;
	s->sel.uids = m.uids;
	s->sel.count = m.count;
	s->sel.uidvalidity = m.uidvalidity;
	s->sel.uidnext = m.uidnext;
	s->sel.readonly = readonly;
	s->state = IMAP_STATE_SELECTED;
	log_info("imap %s: select user=%s exists=%u", s->id, s->address, m.count);
	return 0;
}

int
imap_cmd_select(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	return imap_select(s, args, argc, false);
}

int
imap_cmd_examine(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	return imap_select(s, args, argc, true);
}

/*
 * CLOSE (§6.4.2): expunges \Deleted messages without untagged EXPUNGE
 * responses when read-write, then deselects. A failed expunge is only
 * logged: the client is back in the authenticated state either way, and
 * the messages stay marked for a later EXPUNGE.
 */
int
imap_cmd_close(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	(void)args;
	if (argc != 0) {
		imap_reply_bad(s, "Unexpected arguments");
		return -1;
	}
	char *error = NULL;
	if (!s->sel.readonly && imap_store_expunge(s, NULL, false, NULL, &error) < 0) {
		log_err("imap %s: user=%s close expunge failed: %s", s->id, s->address,
			error != NULL ? error : "?");
		free(error);
	}
	imap_deselect(s);
	conn_printf(s->conn, "%s OK CLOSE completed\r\n", s->tag);
	return 0;
}

/* RFC 3691: deselect without expunging. */
int
imap_cmd_unselect(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	(void)args;
	if (argc != 0) {
		imap_reply_bad(s, "Unexpected arguments");
		return -1;
	}
	imap_deselect(s);
	conn_printf(s->conn, "%s OK UNSELECT completed\r\n", s->tag);
	return 0;
}

enum imap_status_item { ST_MESSAGES, ST_RECENT, ST_UIDNEXT, ST_UIDVALIDITY, ST_UNSEEN };

static const char *const imap_status_names[] = {
	[ST_MESSAGES] = "MESSAGES",
	[ST_RECENT] = "RECENT",
	[ST_UIDNEXT] = "UIDNEXT",
	[ST_UIDVALIDITY] = "UIDVALIDITY",
	[ST_UNSEEN] = "UNSEEN",
};

static int
imap_status_item_find(const struct imap_arg *arg)
{
	for (size_t i = 0; i < sizeof(imap_status_names) / sizeof(imap_status_names[0]); i++) {
		if (imap_arg_atom_equals(arg, imap_status_names[i]))
			return (int)i;
	}
	return -1;
}

static uint32_t
imap_status_value(const struct imap_mbox *m, int item)
{
	switch (item) {
	case ST_MESSAGES: return m->count;
	case ST_UIDNEXT: return m->uidnext;
	case ST_UIDVALIDITY: return m->uidvalidity;
	case ST_UNSEEN: return m->unseen;
	default: return 0; /* RECENT: no \Recent support yet */
	}
}

/* STATUS mailbox (items) (§6.3.10). */
int
imap_cmd_status(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	const char *name;
	size_t len;
	if (argc != 2 || !imap_arg_get_astring(&args[0], &name, &len) ||
	    args[1].type != IMAP_ARG_LIST || args[1].u.list.count == 0) {
		imap_reply_bad(s, "Expected a mailbox name and a list of items");
		return -1;
	}
	const struct imap_arg *items = args[1].u.list.items;
	size_t n = args[1].u.list.count;
	for (size_t i = 0; i < n; i++) {
		if (imap_status_item_find(&items[i]) < 0) {
			imap_reply_bad(s, "Unknown STATUS item");
			return -1;
		}
	}
	struct imap_mbox m;
	if (imap_mbox_open(s, name, &m) < 0)
		return 0;
	struct buf out = BUF_INIT;
	buf_appends(&out, "* STATUS ");
	imap_append_quoted(&out, m.name);
	buf_appends(&out, " (");
	for (size_t i = 0; i < n; i++) {
		int item = imap_status_item_find(&items[i]);
		buf_appendf(&out, "%s%s %u", i > 0 ? " " : "", imap_status_names[item],
			    imap_status_value(&m, item));
	}
	buf_appendf(&out, ")\r\n%s OK STATUS completed\r\n", s->tag);
	conn_write(s->conn, out.data, out.len);
	buf_free(&out);
	imap_mbox_clear(&m);
	return 0;
}
