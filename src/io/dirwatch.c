/*
 * Directory watches over one inotify descriptor (see dirwatch.h).
 *
 * Each watched directory is a struct watched_dir with the list of the
 * watchers waiting on it (doubly linked through the watchers' own link
 * nodes, so a watcher leaves in constant time even with thousands on one
 * mailbox). The directories are in a plain list: they number the distinct
 * mailboxes being waited on, and the list is walked once per kernel event.
 */
#include "io/dirwatch.h"

#include <errno.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"

#define DIRWATCH_SUBS_MAX 2
#define DIRWATCH_MASK (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | \
		       IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

struct watched_dir;

struct dirwatch_link {
	struct dirwatch *w;
	struct watched_dir *dir;
	struct dirwatch_link *prev, *next;
};

struct dirwatch {
	struct event_base *base;
	/* Made when a wake-up is due (or to poll), freed once it fired: an
	   idle watcher holds no event. */
	struct event *timer;
	dirwatch_fn *fn;
	void *arg;
	bool polling; /* a watch was refused: the timer polls instead */
	unsigned char nlinks;
	struct dirwatch_link links[DIRWATCH_SUBS_MAX];
};

struct watched_dir {
	int wd;
	char *path;
	struct dirwatch_link *subs;
	struct watched_dir *next;
};

static struct {
	struct event_base *base;
	int fd;
	struct event *ev;
	struct watched_dir *dirs;
	unsigned watchers;
} dw = { .fd = -1 };

static void dirwatch_on_timer(evutil_socket_t fd, short what, void *arg);

/* Arms the watcher's timer in ms milliseconds, unless it is armed already. */
static void
dirwatch_arm(struct dirwatch *w, unsigned ms)
{
	if (w->timer == NULL && (w->timer = evtimer_new(w->base, dirwatch_on_timer, w)) == NULL)
		abort();
	if (evtimer_pending(w->timer, NULL))
		return;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(w->timer, &tv);
}

static void
dirwatch_wake(struct dirwatch *w)
{
	dirwatch_arm(w, DIRWATCH_DELAY_MS);
}

static void
dirwatch_wake_dir(struct watched_dir *d)
{
	for (struct dirwatch_link *l = d->subs; l != NULL; l = l->next)
		dirwatch_wake(l->w);
}

static void
dirwatch_on_inotify(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	(void)arg;
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			return;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			p += sizeof(*ev) + ev->len;
			for (struct watched_dir *d = dw.dirs; d != NULL; d = d->next) {
				/* A queue overflow lost events: everyone looks. */
				if (d->wd == ev->wd || (ev->mask & IN_Q_OVERFLOW))
					dirwatch_wake_dir(d);
				if (d->wd == ev->wd && (ev->mask & IN_IGNORED))
					d->wd = -1; /* the directory went away */
			}
		}
	}
}

static int
dirwatch_init(struct event_base *base)
{
	if (dw.fd >= 0)
		return 0;
	dw.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (dw.fd < 0) {
		log_warn("inotify: %s; IDLE falls back to polling", strerror(errno));
		return -1;
	}
	dw.base = base;
	dw.ev = event_new(base, dw.fd, EV_READ | EV_PERSIST, dirwatch_on_inotify, NULL);
	event_add(dw.ev, NULL);
	return 0;
}

static void
dirwatch_fini(void)
{
	if (dw.fd < 0 || dw.watchers > 0 || dw.dirs != NULL)
		return;
	event_free(dw.ev);
	close(dw.fd);
	dw.ev = NULL;
	dw.fd = -1;
	dw.base = NULL;
}

static struct watched_dir *
dirwatch_dir_get(const char *path)
{
	for (struct watched_dir *d = dw.dirs; d != NULL; d = d->next)
		if (d->wd >= 0 && strcmp(d->path, path) == 0)
			return d;
	int wd = inotify_add_watch(dw.fd, path, DIRWATCH_MASK);
	if (wd < 0) {
		log_warn("inotify watch %s: %s; polling it instead", path, strerror(errno));
		return NULL;
	}
	/* The kernel gives the same wd for a path watched twice. */
	for (struct watched_dir *d = dw.dirs; d != NULL; d = d->next)
		if (d->wd == wd)
			return d;
	struct watched_dir *d = xcalloc(1, sizeof(*d));
	d->wd = wd;
	d->path = xstrdup(path);
	d->next = dw.dirs;
	dw.dirs = d;
	return d;
}

static void
dirwatch_dir_put(struct watched_dir *d)
{
	if (d->subs != NULL)
		return;
	for (struct watched_dir **p = &dw.dirs; *p != NULL; p = &(*p)->next) {
		if (*p == d) {
			*p = d->next;
			break;
		}
	}
	if (d->wd >= 0)
		inotify_rm_watch(dw.fd, d->wd);
	free(d->path);
	free(d);
}

static void
dirwatch_on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct dirwatch *w = arg;
	if (w->polling) {
		dirwatch_arm(w, DIRWATCH_POLL_S * 1000);
	} else {
		/* Freeing a non-persistent event in its own callback is safe. */
		event_free(w->timer);
		w->timer = NULL;
	}
	w->fn(w->arg); /* last: it may remove the watcher */
}

struct dirwatch *
dirwatch_add(struct event_base *base, const char *dir, const char *const *subs,
	     dirwatch_fn *fn, void *arg)
{
	struct dirwatch *w = xcalloc(1, sizeof(*w));
	w->fn = fn;
	w->arg = arg;
	w->base = base;
	dw.watchers++;
	bool ok = dirwatch_init(base) == 0 && dw.base == base;
	for (size_t i = 0; ok && subs[i] != NULL && i < DIRWATCH_SUBS_MAX; i++) {
		char *path = xasprintf("%s/%s", dir, subs[i]);
		struct watched_dir *d = dirwatch_dir_get(path);
		free(path);
		if (d == NULL) {
			ok = false;
			break;
		}
		struct dirwatch_link *l = &w->links[w->nlinks++];
		l->w = w;
		l->dir = d;
		l->next = d->subs;
		if (d->subs != NULL)
			d->subs->prev = l;
		d->subs = l;
	}
	if (!ok) {
		w->polling = true;
		dirwatch_arm(w, DIRWATCH_POLL_S * 1000);
	}
	return w;
}

void
dirwatch_remove(struct dirwatch **wp)
{
	struct dirwatch *w = *wp;
	if (w == NULL)
		return;
	for (size_t i = 0; i < w->nlinks; i++) {
		struct dirwatch_link *l = &w->links[i];
		if (l->prev != NULL)
			l->prev->next = l->next;
		else
			l->dir->subs = l->next;
		if (l->next != NULL)
			l->next->prev = l->prev;
		dirwatch_dir_put(l->dir);
	}
	if (w->timer != NULL)
		event_free(w->timer);
	free(w);
	*wp = NULL;
	dw.watchers--;
	dirwatch_fini();
}
