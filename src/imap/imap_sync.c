/*
 * Keeping a selected session's view of its mailbox current: the index is
 * synced with the Maildir and what changed (new messages, expunges) is
 * applied to the session's sequence-number map and, when asked, reported
 * as untagged responses (RFC 3501 §7.3.1, §7.4.1).
 */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/util.h"
#include "imap/imap_private.h"
#include "store/index.h"

static bool
sync_uid_in(const uint32_t *uids, size_t n, uint32_t uid)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (uids[mid] == uid)
			return true;
		if (uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/*
 * Takes the sync's expunged UIDs out of the session's map, highest
 * sequence number first: §7.4.1 says each EXPUNGE renumbers the messages
 * after it, so going downwards keeps every number sent right. New
 * messages found by the same sync are announced with EXISTS.
 */
static void
sync_apply(struct imap_session *s, const struct index_sync_result *r, bool report,
		 struct buf *out)
{
	for (uint32_t seq = s->sel.count; seq >= 1; seq--) {
		if (!sync_uid_in(r->expunged_uids, r->expunged_count, s->sel.uids[seq - 1]))
			continue;
		memmove(&s->sel.uids[seq - 1], &s->sel.uids[seq],
			(s->sel.count - seq) * sizeof(uint32_t));
		s->sel.count--;
		if (report)
			buf_appendf(out, "* %u EXPUNGE\r\n", seq);
	}
	if (r->new_count == 0)
		return;
	s->sel.uids = xrealloc(s->sel.uids, (s->sel.count + r->new_count + 1) * sizeof(uint32_t));
	for (size_t i = 0; i < r->new_count; i++) {
		if (s->sel.count == 0 || r->new_uids[i] > s->sel.uids[s->sel.count - 1])
			s->sel.uids[s->sel.count++] = r->new_uids[i];
	}
	if (r->uidnext > s->sel.uidnext)
		s->sel.uidnext = r->uidnext;
	if (report)
		buf_appendf(out, "* %u EXISTS\r\n", s->sel.count);
}

int
imap_sync(struct imap_session *s, bool report, struct buf *out, char **error_r)
{
	struct index_sync_result r;
	memset(&r, 0, sizeof(r));
	if (index_sync(s->index, s->sel.name, s->sel.dir, &r, error_r) < 0)
		return -1;
	/* New to this session is every UID above the last one it knows: the
	   sync's own new UIDs and those index_append gave (COPY, APPEND). */
	uint32_t last = s->sel.count > 0 ? s->sel.uids[s->sel.count - 1] : 0;
	free(r.new_uids);
	r.new_uids = NULL;
	r.new_count = 0;
	if (index_uids_after(s->index, s->sel.name, last, &r.new_uids, &r.new_count,
			     error_r) < 0) {
		index_sync_result_free(&r);
		return -1;
	}
	sync_apply(s, &r, report, out);
	index_sync_result_free(&r);
	return 0;
}

bool
imap_msg_recent(const struct imap_session *s, uint32_t uid)
{
	(void)s;
	(void)uid;
	return false;
}
