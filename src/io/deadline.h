#ifndef TERN_IO_DEADLINE_H
#define TERN_IO_DEADLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct deadline_queue;

/*
 * A deadline embedded in the object it times out (a conn): four words, in
 * the queue of every deadline armed with the same duration on the same
 * event_base. Zeroed means not armed.
 */
struct deadline {
	struct deadline *prev, *next;
	struct deadline_queue *queue; /* NULL when not armed */
	uint64_t at_ms;               /* CLOCK_MONOTONIC, in milliseconds */
};

/*
 * Called from base's loop once ms have passed since the last deadline_arm.
 * d is no longer armed by then; the callback may arm or cancel it or any
 * other deadline, and free the object d is in.
 */
typedef void deadline_fn(struct deadline *d);

/* Arms d (again) for ms > 0 from now, replacing any earlier arming. */
void deadline_arm(struct deadline *d, struct event_base *base, unsigned ms, deadline_fn *fn);
/* Disarms d; nothing happens if it is not armed. */
void deadline_cancel(struct deadline *d);

static inline bool
deadline_armed(const struct deadline *d)
{
	return d->queue != NULL;
}

#endif
