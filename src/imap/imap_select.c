/*
 * Entering and leaving the selected state (RFC 3501 §6.3.1, §6.3.2,
 * §6.4.2, RFC 3691 UNSELECT) and STATUS (§6.3.10), over the per-user
 * message index (store/index.h).
 *
 * Keeping the selected mailbox current is imap_sync.c's work.
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

/* A mailbox looked at by SELECT, EXAMINE or STATUS. */
struct imap_mbox {
	char *name;
	char *dir;
	uint32_t uidvalidity, uidnext, count;
	uint32_t unseen;       /* messages without \Seen */
	uint32_t recent;       /* messages no session has seen as \Recent */
};

static void
imap_mbox_clear(struct imap_mbox *m)
{
	free(m->name);
	free(m->dir);
	memset(m, 0, sizeof(*m));
}

/* Leaves the selected state; the index stays open. */
static void
imap_deselect(struct imap_session *s)
{
	free(s->sel.name);
	free(s->sel.dir);
	free(s->sel.uids);
	free(s->sel.recent);
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

/* Reads the UIDs and the \Seen and \Recent counts of a synced mailbox. */
static int
imap_mbox_scan(struct imap_session *s, struct imap_mbox *m, char **error_r)
{
	struct index_mailbox_state st;
	struct index_entry *e;
	size_t n;
	if (index_mailbox_state(s->index, m->name, &st, error_r) < 0 ||
	    index_list(s->index, m->name, &e, &n, error_r) < 0)
		return -1;
	m->count = (uint32_t)n;
	for (size_t i = 0; i < n; i++) {
		m->unseen += strchr(e[i].flags, 'S') == NULL;
		m->recent += e[i].uid >= st.recentuid;
	}
	index_entries_free(&e, &n);
	return 0;
}

/* The "NO [SERVERBUG]" of a failed mailbox operation, logged. */
static void
imap_mbox_failed(struct imap_session *s, const char *what, char *error)
{
	log_err("imap %s: user=%s %s failed: %s", s->id, s->address, what,
		error != NULL ? error : "?");
	free(error);
	conn_printf(s->conn, "%s NO [SERVERBUG] Internal error, try again\r\n", s->tag);
}

/*
 * Finds a mailbox (its canonical name and directory) and opens the index.
 * 0; or -1 after answering NO (not there, or a temporary error).
 */
static int
imap_mbox_find(struct imap_session *s, const char *name, struct imap_mbox *m)
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
	if (m->dir == NULL || imap_index_ensure(s, &error) < 0) {
		imap_mbox_clear(m);
		imap_mbox_failed(s, "mailbox open", error);
		return -1;
	}
	return 0;
}

/* STATUS: finds, syncs and counts a mailbox; -1 after answering NO. */
static int
imap_mbox_open(struct imap_session *s, const char *name, struct imap_mbox *m)
{
	if (imap_mbox_find(s, name, m) < 0)
		return -1;
	struct index_sync_result r;
	char *error = NULL;
	if (index_sync(s->index, m->name, m->dir, &r, &error) < 0) {
		imap_mbox_clear(m);
		imap_mbox_failed(s, "mailbox sync", error);
		return -1;
	}
	m->uidvalidity = r.uidvalidity;
	m->uidnext = r.uidnext;
	index_sync_result_free(&r);
	if (imap_mbox_scan(s, m, &error) < 0) {
		imap_mbox_clear(m);
		imap_mbox_failed(s, "mailbox scan", error);
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
	if (imap_mbox_find(s, name, &m) < 0)
		return 0;
	s->sel.name = m.name;
	s->sel.dir = m.dir;
	s->sel.readonly = readonly;
	uint32_t unseen, first_unseen;
	char *error = NULL;
	if (imap_sync_open(s, &unseen, &first_unseen, &error) < 0) {
		imap_deselect(s);
		imap_mbox_failed(s, "select", error);
		return 0;
	}
	struct imap_selected *sel = &s->sel;
	struct buf out = BUF_INIT;
	imap_write_flag_lists(s, sel->dir, readonly, &out);
	buf_appendf(&out, "* %u EXISTS\r\n", sel->count);
	buf_appendf(&out, "* %u RECENT\r\n", sel->recent_count);
	buf_appendf(&out, "* OK [UIDVALIDITY %u] UIDs valid\r\n", sel->uidvalidity);
	buf_appendf(&out, "* OK [UIDNEXT %u] Predicted next UID\r\n", sel->uidnext);
	if (first_unseen != 0)
		buf_appendf(&out, "* OK [UNSEEN %u] First unseen\r\n", first_unseen);
	buf_appendf(&out, "%s OK [%s] %s completed\r\n", s->tag,
		    readonly ? "READ-ONLY" : "READ-WRITE", readonly ? "EXAMINE" : "SELECT");
	conn_write(s->conn, out.data, out.len);
	buf_free(&out);
	s->state = IMAP_STATE_SELECTED;
	log_info("imap %s: select user=%s exists=%u", s->id, s->address, sel->count);
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
	bool removed = false;
	if (!s->sel.readonly &&
	    imap_store_expunge(s, NULL, false, NULL, &removed, &error) < 0) {
		log_err("imap %s: user=%s close expunge failed: %s", s->id, s->address,
			error != NULL ? error : "?");
		free(error);
	}
	char *dir = removed ? xstrdup(s->sel.dir) : NULL;
	imap_deselect(s);
	struct buf out = BUF_INIT;
	buf_appendf(&out, "%s OK CLOSE completed\r\n", s->tag);
	imap_reply_durable(s, dir, NULL, &out, 0);
	free(dir);
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
	default: return m->recent;
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
