/*
 * The work pool (see workpool.h): a mutex-protected queue of jobs for the
 * threads, and a queue of finished jobs handed back to the loop through
 * an eventfd that the loop watches.
 */
#include "core/workpool.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/util.h"

struct work_job {
	workpool_fn *work, *done;
	void *arg;
	struct work_job *next;
};

struct workpool {
	pthread_mutex_t lock;
	pthread_cond_t ready;
	struct work_job *todo, *todo_tail;
	struct work_job *finished, *finished_tail;
	bool stopping;
	int efd;
	struct event *ev;
	pthread_t *threads;
	unsigned nthreads;
};

static void
work_push(struct work_job **head, struct work_job **tail, struct work_job *job)
{
	job->next = NULL;
	if (*tail != NULL)
		(*tail)->next = job;
	else
		*head = job;
	*tail = job;
}

static struct work_job *
work_pop(struct work_job **head, struct work_job **tail)
{
	struct work_job *job = *head;
	if (job != NULL) {
		*head = job->next;
		if (*head == NULL)
			*tail = NULL;
	}
	return job;
}

static void *
work_thread(void *arg)
{
	struct workpool *wp = arg;
	pthread_mutex_lock(&wp->lock);
	for (;;) {
		struct work_job *job;
		while ((job = work_pop(&wp->todo, &wp->todo_tail)) == NULL && !wp->stopping)
			pthread_cond_wait(&wp->ready, &wp->lock);
		if (job == NULL)
			break;
		pthread_mutex_unlock(&wp->lock);
		job->work(job->arg);
		pthread_mutex_lock(&wp->lock);
		work_push(&wp->finished, &wp->finished_tail, job);
		uint64_t one = 1;
		/* The counter only wakes the loop; its value does not matter. */
		if (write(wp->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			abort();
	}
	pthread_mutex_unlock(&wp->lock);
	return NULL;
}

static void
work_on_finished(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct workpool *wp = arg;
	uint64_t n;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	for (;;) {
		pthread_mutex_lock(&wp->lock);
		struct work_job *job = work_pop(&wp->finished, &wp->finished_tail);
		pthread_mutex_unlock(&wp->lock);
		if (job == NULL)
			break;
		job->done(job->arg);
		free(job);
	}
}

struct workpool *
workpool_new(struct event_base *base, unsigned threads)
{
	struct workpool *wp = xcalloc(1, sizeof(*wp));
	pthread_mutex_init(&wp->lock, NULL);
	pthread_cond_init(&wp->ready, NULL);
	wp->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (wp->efd < 0)
		abort();
	wp->ev = event_new(base, wp->efd, EV_READ | EV_PERSIST, work_on_finished, wp);
	event_add(wp->ev, NULL);
	wp->nthreads = threads > 0 ? threads : 1;
	wp->threads = xcalloc(wp->nthreads, sizeof(pthread_t));
	/* Signals stay with the loop's thread (libevent catches them there). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (unsigned i = 0; i < wp->nthreads; i++)
		if (pthread_create(&wp->threads[i], NULL, work_thread, wp) != 0)
			abort();
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return wp;
}

void
workpool_submit(struct workpool *wp, workpool_fn *work, workpool_fn *done, void *arg)
{
	struct work_job *job = xcalloc(1, sizeof(*job));
	job->work = work;
	job->done = done;
	job->arg = arg;
	pthread_mutex_lock(&wp->lock);
	work_push(&wp->todo, &wp->todo_tail, job);
	pthread_cond_signal(&wp->ready);
	pthread_mutex_unlock(&wp->lock);
}

void
workpool_free(struct workpool **wpp)
{
	struct workpool *wp = *wpp;
	if (wp == NULL)
		return;
	pthread_mutex_lock(&wp->lock);
	wp->stopping = true;
	pthread_cond_broadcast(&wp->ready);
	pthread_mutex_unlock(&wp->lock);
	/* Queued jobs still run: each is a delivery a client may be waiting on. */
	for (unsigned i = 0; i < wp->nthreads; i++)
		pthread_join(wp->threads[i], NULL);
	struct work_job *job;
	while ((job = work_pop(&wp->finished, &wp->finished_tail)) != NULL) {
		job->done(job->arg);
		free(job);
	}
	event_free(wp->ev);
	close(wp->efd);
	pthread_cond_destroy(&wp->ready);
	pthread_mutex_destroy(&wp->lock);
	free(wp->threads);
	free(wp);
	*wpp = NULL;
}
