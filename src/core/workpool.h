#ifndef TERN_CORE_WORKPOOL_H
#define TERN_CORE_WORKPOOL_H

/*
 * A few threads for work that blocks on the disk (a delivery's writes and
 * fsyncs) or holds a CPU (a password hash), so that the event loop goes on
 * serving every other session meanwhile, and several deliveries wait on
 * the disk at once: the disk completes parallel fsyncs far faster than
 * the same ones in a row.
 *
 * work(arg) runs on a worker thread and must touch nothing the loop
 * uses; done(arg) runs afterwards on the loop's thread, in order of
 * completion. workpool_free lets the queued jobs finish (nothing they make
 * durable is cut short) and then runs their done callbacks, so that they
 * can free what they own: by then, the loop has stopped.
 */

struct event_base;
struct workpool;

typedef void workpool_fn(void *arg);

struct workpool *workpool_new(struct event_base *base, unsigned threads);
void workpool_free(struct workpool **wp);
void workpool_submit(struct workpool *wp, workpool_fn *work, workpool_fn *done, void *arg);

#endif
