/*
 * IDLE (RFC 2177): after "+ idling" the server sends what changes in the
 * selected mailbox as it happens, until the client sends DONE. The wake-up
 * comes from a watch on the Maildir's new/ and cur/ (io/dirwatch.h), so a
 * delivery, another session's STORE or EXPUNGE, or a local Maildir tool
 * all reach the idling client within moments.
 */
#include <stdlib.h>
#include <strings.h>

#include "core/util.h"
#include "imap/imap_private.h"
#include "io/conn.h"
#include "io/dirwatch.h"
#include "io/server.h"
#include "store/index.h"

/*
 * A session in IDLE may wait for hours, and its map of sequence numbers to
 * UIDs (4 bytes a message) is most of what it holds. UIDs are mostly
 * consecutive, so while idling the map is kept as runs (lo..hi), a few
 * bytes for a whole mailbox, and unpacked before anything reads it (the
 * sync at a wake-up, DONE, the end of the session). A map that would not
 * shrink is kept as it is.
 */
static void
imap_idle_pack(struct imap_session *s)
{
	struct imap_selected *sel = &s->sel;
	if (s->state != IMAP_STATE_SELECTED || sel->uids == NULL || s->idle_runs != NULL)
		return;
	uint32_t n = 0;
	for (uint32_t i = 0; i < sel->count; i++)
		if (i == 0 || sel->uids[i] != sel->uids[i - 1] + 1)
			n++;
	if ((size_t)n * sizeof(struct imap_uid_range) >= (size_t)sel->count * sizeof(uint32_t) &&
	    sel->count > 0)
		return;
	struct imap_uid_range *runs = xcalloc(n > 0 ? n : 1, sizeof(*runs));
	uint32_t r = 0;
	for (uint32_t i = 0; i < sel->count; i++) {
		if (i == 0 || sel->uids[i] != sel->uids[i - 1] + 1)
			runs[r++].lo = sel->uids[i];
		runs[r - 1].hi = sel->uids[i];
	}
	free(sel->uids);
	sel->uids = NULL;
	s->idle_runs = runs;
	s->idle_nruns = n;
}

static void
imap_idle_unpack(struct imap_session *s)
{
	struct imap_selected *sel = &s->sel;
	if (s->idle_runs == NULL)
		return;
	/* One spare slot, as imap_sync allocates it (a map is never NULL). */
	sel->uids = xcalloc((size_t)sel->count + 1, sizeof(uint32_t));
	uint32_t i = 0;
	for (uint32_t r = 0; r < s->idle_nruns; r++)
		for (uint64_t uid = s->idle_runs[r].lo; uid <= s->idle_runs[r].hi; uid++)
			sel->uids[i++] = (uint32_t)uid;
	free(s->idle_runs);
	s->idle_runs = NULL;
	s->idle_nruns = 0;
}

/* RFC 2177 §3: while idling, EXPUNGE may be sent at once. */
static void
imap_idle_report(struct imap_session *s)
{
	imap_idle_unpack(s);
	if (s->state == IMAP_STATE_SELECTED)
		imap_sync_report(s, IMAP_SYNC_FULL);
}

static void
imap_idle_wake(void *arg)
{
	struct imap_session *s = arg;
	if (s->idling) {
		imap_idle_report(s);
		imap_idle_pack(s);
		if (s->index != NULL)
			index_rest(s->index);
	}
}

int
imap_cmd_idle(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	(void)args;
	if (argc != 0) {
		imap_reply_bad(s, "Unexpected arguments");
		return -1;
	}
	if (s->state == IMAP_STATE_SELECTED) {
		static const char *const subs[] = { "new", "cur", NULL };
		s->idle_watch = dirwatch_add(s->srv->base, s->sel.dir, subs, imap_idle_wake, s);
	}
	/* A session in IDLE may wait for hours: its index keeps no cache
	   meanwhile, nor its connection once the user's sessions all idle. */
	if (s->index != NULL)
		index_idle_begin(s->index);
	s->idling = true;
	conn_writes(s->conn, "+ idling\r\n");
	imap_idle_pack(s);
	server_trim_soon(s->srv);
	return 0;
}

void
imap_idle_stop(struct imap_session *s)
{
	dirwatch_remove(&s->idle_watch);
	imap_idle_unpack(s);
	if (s->idling && s->index != NULL)
		index_idle_end(s->index);
	s->idling = false;
}

void
imap_idle_line(struct imap_session *s, const char *line)
{
	imap_idle_stop(s);
	if (strcasecmp(line, "DONE") != 0) {
		imap_reply_bad(s, "Expected DONE");
		return;
	}
	/* Anything that came in between the last wake-up and DONE. */
	imap_idle_report(s);
	conn_printf(s->conn, "%s OK IDLE terminated\r\n", s->tag);
}
