/*
 * Timeouts for many objects that share a few durations.
 *
 * Every connection has an idle timeout. A libevent timer per connection
 * is a struct event on the heap (128 bytes with libevent 2.1) that an idle
 * IMAP session carries for hours. But the durations in use are few (each
 * protocol's idle timeout, the SMTP client's phases), and deadlines armed
 * with the same duration expire in the order they were armed. So each
 * (event_base, duration, callback) has one queue and one libevent timer;
 * an object embeds a struct deadline, which arming appends at the queue's
 * tail. The timer need only wake for the head: no event per object, and
 * re-arming on every read is an unlink and an append, not a timer update.
 *
 * A queue is made on first use and freed when its last deadline goes, so
 * nothing outlives the conns (conn_finish_all at exit) or the event_base.
 * Like conn.c, this is used only from the thread that runs the loop.
 */
#include "io/deadline.h"

#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

#include <event2/event.h>

#include "core/util.h"

struct deadline_queue {
	struct event_base *base;
	unsigned ms;
	deadline_fn *fn;
	struct event *timer;
	/*
	 * What the timer was last set for: at most the head's at_ms, since
	 * the head only ever moves later. While firing, the time taken as now.
	 */
	uint64_t timer_at;
	struct deadline *head, *tail;
	bool firing; /* in the timer's callback: the queue must not be freed */
	struct deadline_queue *next;
};

/* Every queue of every base: a handful, one per duration in use. */
static struct deadline_queue *deadline_queues;

static void deadline_queue_on_timer(evutil_socket_t fd, short what, void *arg);

static uint64_t
deadline_now_ms(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		abort();
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct deadline_queue *
deadline_queue_get(struct event_base *base, unsigned ms, deadline_fn *fn)
{
	struct deadline_queue *q;
	for (q = deadline_queues; q != NULL; q = q->next)
		if (q->base == base && q->ms == ms && q->fn == fn)
			return q;
	q = xcalloc(1, sizeof(*q));
	q->base = base;
	q->ms = ms;
	q->fn = fn;
	if ((q->timer = evtimer_new(base, deadline_queue_on_timer, q)) == NULL)
		abort();
	q->next = deadline_queues;
	deadline_queues = q;
	return q;
}

static void
deadline_queue_free(struct deadline_queue *q)
{
	for (struct deadline_queue **p = &deadline_queues; *p != NULL; p = &(*p)->next) {
		if (*p == q) {
			*p = q->next;
			break;
		}
	}
	event_free(q->timer);
	free(q);
}

/* Sets the timer for the head's deadline. */
static void
deadline_queue_set_timer(struct deadline_queue *q, uint64_t now)
{
	uint64_t at = q->head->at_ms;
	uint64_t wait = at > now ? at - now : 0;
	struct timeval tv = { .tv_sec = (time_t)(wait / 1000),
			      .tv_usec = (suseconds_t)(wait % 1000) * 1000 };
	q->timer_at = at;
	evtimer_add(q->timer, &tv);
}

static void
deadline_unlink(struct deadline *d)
{
	struct deadline_queue *q = d->queue;
	if (d->prev != NULL)
		d->prev->next = d->next;
	else
		q->head = d->next;
	if (d->next != NULL)
		d->next->prev = d->prev;
	else
		q->tail = d->prev;
	d->prev = d->next = NULL;
	d->queue = NULL;
}

static void
deadline_append(struct deadline_queue *q, struct deadline *d)
{
	d->queue = q;
	d->next = NULL;
	d->prev = q->tail;
	if (q->tail != NULL)
		q->tail->next = d;
	else
		q->head = d;
	q->tail = d;
}

void
deadline_arm(struct deadline *d, struct event_base *base, unsigned ms, deadline_fn *fn)
{
	if (ms == 0)
		abort(); /* would be due at once, forever, inside its own firing */
	struct deadline_queue *q = d->queue;
	bool start;
	if (q != NULL && q->base == base && q->ms == ms && q->fn == fn) {
		/* To the tail of the same queue: the timer set stays early enough. */
		deadline_unlink(d);
		start = false;
	} else {
		deadline_cancel(d);
		q = deadline_queue_get(base, ms, fn);
		start = q->head == NULL;
	}
	uint64_t now = deadline_now_ms();
	/* Armed again while its queue fires: due after that firing's now, never in it. */
	if (q->firing && now < q->timer_at)
		now = q->timer_at;
	d->at_ms = now + ms;
	deadline_append(q, d);
	/* A queue that fires sets its timer when done. */
	if (start && !q->firing)
		deadline_queue_set_timer(q, now);
}

void
deadline_cancel(struct deadline *d)
{
	struct deadline_queue *q = d->queue;
	if (q == NULL)
		return;
	deadline_unlink(d);
	if (q->head == NULL && !q->firing)
		deadline_queue_free(q);
}

static void
deadline_queue_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct deadline_queue *q = arg;
	(void)fd;
	(void)what;
	/*
	 * libevent's clock is coarse (CLOCK_MONOTONIC_COARSE, a few ms) and
	 * may wake us before ours reaches timer_at. It was asked for
	 * timer_at, so take that moment as come: everything due by then
	 * goes now, as it would have with a timer of its own.
	 */
	uint64_t now = deadline_now_ms();
	if (now < q->timer_at)
		now = q->timer_at;
	q->timer_at = now;
	q->firing = true;
	/*
	 * The callback may unlink, re-arm or free any entry: take the head
	 * afresh each time and hold no pointer into the list across a call.
	 */
	struct deadline *d;
	while ((d = q->head) != NULL && d->at_ms <= now) {
		deadline_unlink(d);
		q->fn(d);
	}
	q->firing = false;
	if (q->head == NULL)
		deadline_queue_free(q);
	else
		deadline_queue_set_timer(q, deadline_now_ms());
}
