#include "io/linger.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/util.h"

struct lingering_fd {
	struct event *ev;
	int fd;
	uint64_t until_ms; /* CLOCK_MONOTONIC */
	struct lingering_fd *prev, *next;
};

static struct lingering_fd *lingering;

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
linger_free(struct lingering_fd *l)
{
	event_free(l->ev);
	close(l->fd);
	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		lingering = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	free(l);
}

/* Re-arms l's read event for the time it has left; false if none. */
static bool
linger_wait(struct lingering_fd *l)
{
	uint64_t now = now_ms();
	if (now >= l->until_ms)
		return false;
	uint64_t left = l->until_ms - now;
	struct timeval tv = { .tv_sec = (time_t)(left / 1000),
			      .tv_usec = (suseconds_t)(left % 1000) * 1000 };
	return event_add(l->ev, &tv) == 0;
}

static void
linger_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct lingering_fd *l = arg;
	if (what & EV_TIMEOUT) {
		linger_free(l);
		return;
	}
	/* At most 64 KiB a turn: a peer sending fast must not hold the loop. */
	char drop[4096];
	for (int i = 0; i < 16; i++) {
		ssize_t n = recv(fd, drop, sizeof(drop), 0);
		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		/* The peer closed (0), or the socket failed. */
		linger_free(l);
		return;
	}
	if (!linger_wait(l))
		linger_free(l); /* time is up */
}

void
linger_close(struct event_base *base, int fd)
{
	if (shutdown(fd, SHUT_WR) < 0) {
		close(fd);
		return;
	}
	struct lingering_fd *l = xcalloc(1, sizeof(*l));
	l->fd = fd;
	l->until_ms = now_ms() + LINGER_MS;
	l->ev = event_new(base, fd, EV_READ, linger_on_read, l);
	if (l->ev == NULL)
		abort();
	l->next = lingering;
	if (lingering != NULL)
		lingering->prev = l;
	lingering = l;
	if (!linger_wait(l))
		linger_free(l);
}

void
linger_close_all(void)
{
	while (lingering != NULL)
		linger_free(lingering);
}
