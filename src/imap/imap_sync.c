/*
 * Keeping a selected session's view of its mailbox current (RFC 3501
 * §5.2, §7.4.1). The Maildir is synced into the index when its
 * directories changed; the index is then compared with the session's map:
 * new messages are appended and announced with EXISTS (and RECENT), flags
 * changed by others are sent as untagged FETCH, and expunged messages
 * leave the map with an EXPUNGE each - but only where the client cannot
 * confuse sequence numbers: never while answering FETCH, STORE or SEARCH
 * (nor COPY or MOVE) by sequence number; there they stay in the map and
 * are reported at a later command.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "imap/imap_private.h"
#include "io/conn.h"
#include "store/index.h"

/* Scans the Maildir into the index unless neither directory changed. */
static int
sync_maildir(struct imap_session *s, bool force, char **error_r)
{
	struct imap_selected *sel = &s->sel;
	if (!force && sel->new_mtime != 0 && sel->cur_mtime != 0 &&
	    index_dir_mtime(sel->dir, "new") == sel->new_mtime &&
	    index_dir_mtime(sel->dir, "cur") == sel->cur_mtime)
		return 0;
	struct index_sync_result r;
	if (index_sync(s->index, sel->name, sel->dir, &r, error_r) < 0)
		return -1;
	index_sync_result_free(&r);
	sel->new_mtime = index_dir_mtime(sel->dir, "new");
	sel->cur_mtime = index_dir_mtime(sel->dir, "cur");
	return 0;
}

static bool
sync_in_ranges(const struct imap_selected *sel, uint32_t uid)
{
	if (sel->readonly)
		return sel->recent_floor != 0 && uid >= sel->recent_floor;
	for (size_t i = 0; i < sel->nrecent; i++)
		if (uid >= sel->recent[i].lo && uid <= sel->recent[i].hi)
			return true;
	return false;
}

bool
imap_msg_recent(const struct imap_session *s, uint32_t uid)
{
	return s->state == IMAP_STATE_SELECTED && sync_in_ranges(&s->sel, uid);
}

/*
 * Takes the messages that arrived since the last claim as \Recent for this
 * session (read-write only; EXAMINE sees them recent without taking them,
 * §6.3.2).
 */
static int
sync_claim_recent(struct imap_session *s, char **error_r)
{
	struct imap_selected *sel = &s->sel;
	if (sel->readonly)
		return 0;
	uint32_t first, end;
	if (index_recent_claim(s->index, sel->name, &first, &end, error_r) < 0)
		return -1;
	if (first >= end)
		return 0;
	if (sel->nrecent > 0 && sel->recent[sel->nrecent - 1].hi + 1 == first) {
		sel->recent[sel->nrecent - 1].hi = end - 1;
		return 0;
	}
	sel->recent = xrealloc(sel->recent, (sel->nrecent + 1) * sizeof(*sel->recent));
	sel->recent[sel->nrecent++] = (struct imap_uid_range){ first, end - 1 };
	return 0;
}

static bool
sync_entry_has(const struct index_entry *e, size_t n, uint32_t uid)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (e[mid].uid == uid)
			return true;
		if (e[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* The sequence number of a UID in the map, 0 if not there. */
static uint32_t
sync_seq_of(const struct imap_selected *sel, uint32_t uid)
{
	uint32_t lo = 0, hi = sel->count;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (sel->uids[mid] == uid)
			return mid + 1;
		if (sel->uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

void
imap_write_flags(const struct imap_session *s, struct buf *out, uint32_t uid,
		 const char *letters, const char *keywords)
{
	static const struct {
		char letter;
		const char *name;
	} names[] = {
		{ 'R', "\\Answered" }, { 'F', "\\Flagged" }, { 'T', "\\Deleted" },
		{ 'S', "\\Seen" }, { 'D', "\\Draft" },
	};
	bool first = true;
	buf_appends(out, "(");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strchr(letters, names[i].letter) == NULL)
			continue;
		buf_appendf(out, "%s%s", first ? "" : " ", names[i].name);
		first = false;
	}
	if (imap_msg_recent(s, uid)) {
		buf_appendf(out, "%s\\Recent", first ? "" : " ");
		first = false;
	}
	if (keywords != NULL && keywords[0] != '\0')
		buf_appendf(out, "%s%s", first ? "" : " ", keywords);
	buf_appends(out, ")");
}

/* Drops the expunged UIDs from the map, highest sequence number first:
   each EXPUNGE renumbers the messages after it (§7.4.1), so going down
   keeps every number sent right. */
static void
sync_expunge(struct imap_session *s, const struct index_entry *e, size_t n, bool report,
	     struct buf *out)
{
	struct imap_selected *sel = &s->sel;
	for (uint32_t seq = sel->count; seq >= 1; seq--) {
		uint32_t uid = sel->uids[seq - 1];
		if (sync_entry_has(e, n, uid))
			continue;
		if (sync_in_ranges(sel, uid) && sel->recent_count > 0)
			sel->recent_count--;
		memmove(&sel->uids[seq - 1], &sel->uids[seq],
			(sel->count - seq) * sizeof(uint32_t));
		sel->count--;
		if (report)
			buf_appendf(out, "* %u EXPUNGE\r\n", seq);
	}
}

static int
sync_run(struct imap_session *s, enum imap_sync_mode mode, bool force, struct buf *out,
	 char **error_r)
{
	struct imap_selected *sel = &s->sel;
	if (sync_maildir(s, force, error_r) < 0)
		return -1;
	struct index_mailbox_state st;
	if (index_mailbox_state(s->index, sel->name, &st, error_r) < 0)
		return -1;
	/* The map holds unreported expunges while its count is above the index's. */
	if (!force && st.highestmodseq == sel->seen_modseq && st.count == sel->count &&
	    st.uidnext == sel->known_uidnext)
		return 0;
	struct index_entry *e;
	size_t n;
	if (index_list(s->index, sel->name, &e, &n, error_r) < 0)
		return -1;
	if (mode != IMAP_SYNC_NO_EXPUNGE)
		sync_expunge(s, e, n, mode == IMAP_SYNC_FULL, out);
	uint32_t old_count = sel->count, old_recent = sel->recent_count;
	uint32_t last = sel->count > 0 ? sel->uids[sel->count - 1] : 0;
	bool fresh = false;
	for (size_t i = 0; i < n; i++)
		fresh |= e[i].uid > last;
	if (fresh && sync_claim_recent(s, error_r) < 0) {
		index_entries_free(&e, &n);
		return -1;
	}
	sel->uids = xrealloc(sel->uids, (sel->count + n + 1) * sizeof(uint32_t));
	for (size_t i = 0; i < n; i++) {
		if (e[i].uid <= last) {
			/* Flags changed by someone else since we last looked. */
			uint32_t seq = sync_seq_of(sel, e[i].uid);
			if (mode != IMAP_SYNC_SILENT && seq != 0 && e[i].modseq > sel->seen_modseq) {
				buf_appendf(out, "* %u FETCH (UID %u FLAGS ", seq, e[i].uid);
				imap_write_flags(s, out, e[i].uid, e[i].flags, e[i].keywords);
				buf_appends(out, ")\r\n");
			}
			continue;
		}
		sel->uids[sel->count++] = e[i].uid;
		if (sync_in_ranges(sel, e[i].uid))
			sel->recent_count++;
	}
	index_entries_free(&e, &n);
	if (st.uidnext > sel->uidnext)
		sel->uidnext = st.uidnext;
	sel->seen_modseq = st.highestmodseq;
	sel->known_uidnext = st.uidnext;
	if (mode != IMAP_SYNC_SILENT && sel->count != old_count)
		buf_appendf(out, "* %u EXISTS\r\n", sel->count);
	if (mode != IMAP_SYNC_SILENT && sel->recent_count != old_recent)
		buf_appendf(out, "* %u RECENT\r\n", sel->recent_count);
	return 0;
}

void
imap_sync_report(struct imap_session *s, enum imap_sync_mode mode)
{
	struct buf out = BUF_INIT;
	char *error = NULL;
	if (sync_run(s, mode, false, &out, &error) < 0) {
		/* The session goes on with the view it has; the next sync retries. */
		log_err("imap %s: user=%s sync failed: %s", s->id, s->address,
			error != NULL ? error : "?");
		free(error);
	}
	if (out.len > 0)
		conn_write(s->conn, out.data, out.len);
	buf_free(&out);
}

int
imap_sync(struct imap_session *s, bool report, struct buf *out, char **error_r)
{
	/* Callers have just changed the Maildir themselves: always rescan. */
	return sync_run(s, report ? IMAP_SYNC_FULL : IMAP_SYNC_SILENT, true, out, error_r);
}

int
imap_sync_open(struct imap_session *s, uint32_t *unseen_r, uint32_t *first_unseen_r,
	       char **error_r)
{
	struct imap_selected *sel = &s->sel;
	*unseen_r = *first_unseen_r = 0;
	if (sync_maildir(s, true, error_r) < 0)
		return -1;
	struct index_mailbox_state st;
	if (index_mailbox_state(s->index, sel->name, &st, error_r) < 0)
		return -1;
	if (sel->readonly)
		sel->recent_floor = st.recentuid;
	else if (sync_claim_recent(s, error_r) < 0)
		return -1;
	struct index_entry *e;
	size_t n;
	if (index_list(s->index, sel->name, &e, &n, error_r) < 0)
		return -1;
	sel->uids = xcalloc(n + 1, sizeof(uint32_t));
	for (size_t i = 0; i < n; i++) {
		sel->uids[i] = e[i].uid;
		if (sync_in_ranges(sel, e[i].uid))
			sel->recent_count++;
		if (strchr(e[i].flags, 'S') == NULL) {
			if (*unseen_r == 0)
				*first_unseen_r = (uint32_t)i + 1;
			(*unseen_r)++;
		}
	}
	sel->count = (uint32_t)n;
	index_entries_free(&e, &n);
	sel->uidvalidity = st.uidvalidity;
	sel->uidnext = st.uidnext;
	sel->seen_modseq = st.highestmodseq;
	sel->known_uidnext = st.uidnext;
	return 0;
}

void
imap_sync_settle(struct imap_session *s)
{
	if (s->state != IMAP_STATE_SELECTED)
		return;
	struct index_mailbox_state st;
	char *error = NULL;
	if (index_mailbox_state(s->index, s->sel.name, &st, &error) < 0) {
		free(error);
		return;
	}
	s->sel.seen_modseq = st.highestmodseq;
}
