/*
 * Lingering close over a socketpair: the peer gets the end of the stream
 * at once, and the socket closes when the peer does, or when its time is
 * up however long the peer goes on sending.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "io/linger.h"
#include "test.h"

static bool
fd_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

static void
test_peer_closes(void)
{
	struct event_base *base = event_base_new();
	int sv[2];
	TEST_ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
	TEST_ASSERT(write(sv[1], "pipelined\r\n", 11) == 11);
	linger_close(base, sv[0]);
	char buf[64];
	TEST_ASSERT(read(sv[1], buf, sizeof(buf)) == 0); /* our side is shut */
	event_base_loop(base, EVLOOP_NONBLOCK);
	TEST_ASSERT(fd_open(sv[0])); /* the input is read, the peer still there */
	close(sv[1]);
	event_base_dispatch(base); /* returns once nothing waits */
	TEST_ASSERT(!fd_open(sv[0]));
	event_base_free(base);
}

/* The peer writes every 100 ms for as long as the other side is open. */
struct trickle {
	struct event *ev;
	int peer;
	int writes;
};

static void
trickle_tick(evutil_socket_t fd, short what, void *arg)
{
	struct trickle *t = arg;
	(void)fd;
	(void)what;
	if (write(t->peer, "x", 1) == 1)
		t->writes++;
	else
		event_del(t->ev); /* EPIPE: the lingering side closed */
}

static void
test_peer_goes_on_sending(void)
{
	struct event_base *base = event_base_new();
	int sv[2];
	TEST_ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
	struct trickle t = { .peer = sv[1] };
	t.ev = event_new(base, -1, EV_PERSIST, trickle_tick, &t);
	struct timeval every = { 0, 100 * 1000 };
	event_add(t.ev, &every);
	linger_close(base, sv[0]);
	event_base_dispatch(base);
	TEST_ASSERT(!fd_open(sv[0]));
	/* It was read from until LINGER_MS ran out, not closed at once. */
	TEST_ASSERT(t.writes >= LINGER_MS / 100 / 2);
	event_free(t.ev);
	close(sv[1]);
	event_base_free(base);
}

static void
test_close_all(void)
{
	struct event_base *base = event_base_new();
	int a[2], b[2];
	TEST_ASSERT(socketpair(AF_UNIX, SOCK_STREAM, 0, a) == 0);
	TEST_ASSERT(socketpair(AF_UNIX, SOCK_STREAM, 0, b) == 0);
	linger_close(base, a[0]);
	linger_close(base, b[0]);
	linger_close_all();
	TEST_ASSERT(!fd_open(a[0]) && !fd_open(b[0]));
	/* Nothing left in the loop (LeakSanitizer checks the rest). */
	TEST_ASSERT(event_base_loop(base, EVLOOP_NONBLOCK) == 1);
	close(a[1]);
	close(b[1]);
	event_base_free(base);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_run("peer_closes", test_peer_closes);
	test_run("peer_goes_on_sending", test_peer_goes_on_sending);
	test_run("close_all", test_close_all);
	return test_done();
}
