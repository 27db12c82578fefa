/*
 * IDLE (RFC 2177): after "+ idling" the server sends what changes in the
 * selected mailbox as it happens, until the client sends DONE. The wake-up
 * comes from a watch on the Maildir's new/ and cur/ (io/dirwatch.h), so a
 * delivery, another session's STORE or EXPUNGE, or a local Maildir tool
 * all reach the idling client within moments.
 */
#include <strings.h>

#include "imap/imap_private.h"
#include "io/conn.h"
#include "io/dirwatch.h"
#include "io/server.h"
#include "store/index.h"

/* RFC 2177 §3: while idling, EXPUNGE may be sent at once. */
static void
imap_idle_report(struct imap_session *s)
{
	if (s->state == IMAP_STATE_SELECTED)
		imap_sync_report(s, IMAP_SYNC_FULL);
}

static void
imap_idle_wake(void *arg)
{
	struct imap_session *s = arg;
	if (s->idling)
		imap_idle_report(s);
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
	/* A session in IDLE may wait for hours: its index keeps no cache meanwhile. */
	if (s->index != NULL)
		index_trim(s->index);
	s->idling = true;
	conn_writes(s->conn, "+ idling\r\n");
	return 0;
}

void
imap_idle_stop(struct imap_session *s)
{
	dirwatch_remove(&s->idle_watch);
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
