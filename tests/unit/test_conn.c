/*
 * The connection layer over a socketpair: lines, overlong lines, output,
 * and idle timeouts (the deadline queues under them).
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/buf.h"
#include "io/conn.h"
#include "io/deadline.h"
#include "test.h"

struct session {
	struct buf got;   /* lines seen, each followed by '|' */
	int too_long;
	int closed;
	const char *name; /* the timeout tests: logged in timed_out */
};

static void
on_input(struct conn *c, void *ctx)
{
	struct session *s = ctx;
	char *line;
	size_t len;
	for (;;) {
		enum conn_line r = conn_read_line(c, 8, &line, &len);
		if (r == CONN_LINE_NONE)
			break;
		if (r == CONN_LINE_TOO_LONG) {
			/* What is handed out: the line's first 8 bytes. */
			s->too_long++;
			buf_appendc(&s->got, '[');
			buf_append(&s->got, line, len);
			buf_appends(&s->got, "]|");
			conn_writes(c, "long\r\n");
			continue;
		}
		buf_append(&s->got, line, len);
		buf_appendc(&s->got, '|');
		conn_printf(c, "ok %zu\r\n", len);
		if (strcmp(line, "QUIT") == 0)
			conn_close(c);
	}
}

static void
on_timeout(struct conn *c, void *ctx)
{
	(void)ctx;
	conn_writes(c, "bye\r\n");
}

static void
on_close(struct conn *c, void *ctx)
{
	struct session *s = ctx;
	(void)c;
	s->closed = 1;
}

static const struct conn_handler handler = { on_input, NULL, on_timeout, on_close, NULL };

static void
run_until_closed(struct event_base *base, struct session *s)
{
	for (int i = 0; i < 1000 && !s->closed; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

static void
test_lines(void)
{
	int sv[2];
	TEST_ASSERT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	struct event_base *base = event_base_new();
	struct session s = { BUF_INIT, 0, 0, NULL };
	struct sockaddr_storage peer = { .ss_family = AF_UNIX };
	struct conn *c = conn_new(base, sv[0], (struct sockaddr *)&peer, sizeof(peer),
				  &handler, &s);
	TEST_ASSERT(conn_peer_count(c) == 1);
	/* CRLF and bare LF end lines; a 20-byte line is too long and skipped
	 * whole; the line after it is read normally. */
	const char *in = "ab\r\ncd\n0123456789012345678\r\nef\r\nQUIT\r\nafter\r\n";
	TEST_ASSERT(write(sv[1], in, strlen(in)) == (ssize_t)strlen(in));
	run_until_closed(base, &s);
	TEST_ASSERT(s.closed);
	TEST_ASSERT_STREQ(s.got.data, "ab|cd|[01234567]|ef|QUIT|");
	TEST_ASSERT(s.too_long == 1);
	char out[256] = { 0 };
	ssize_t n = read(sv[1], out, sizeof(out) - 1);
	TEST_ASSERT(n > 0);
	TEST_ASSERT_STREQ(out, "ok 2\r\nok 2\r\nlong\r\nok 2\r\nok 4\r\n");
	TEST_ASSERT(conn_total_count() == 0);
	buf_free(&s.got);
	close(sv[1]);
	event_base_free(base);
}

static void
test_overlong_across_reads(void)
{
	int sv[2];
	TEST_ASSERT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	struct event_base *base = event_base_new();
	struct session s = { BUF_INIT, 0, 0, NULL };
	struct sockaddr_storage peer = { .ss_family = AF_UNIX };
	conn_new(base, sv[0], (struct sockaddr *)&peer, sizeof(peer), &handler, &s);
	/* An endless line in many writes is reported once and never buffered. */
	for (int i = 0; i < 100; i++) {
		TEST_ASSERT(write(sv[1], "xxxxxxxxxxxxxxxxxxxx", 20) == 20);
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	}
	TEST_ASSERT(write(sv[1], "\r\nok\r\n", 6) == 6);
	close(sv[1]); /* EOF: the conn closes after the last line */
	run_until_closed(base, &s);
	TEST_ASSERT(s.too_long == 1);
	TEST_ASSERT_STREQ(s.got.data, "[xxxxxxxx]|ok|");
	TEST_ASSERT(s.closed);
	buf_free(&s.got);
	event_base_free(base);
}

/* The timeout tests: who timed out, in order ("b|a|"), and how many. */
static struct buf timed_out;
static int ntimed_out;

/* on_timeout_log's extra work, for the conn named "first". */
static struct conn *abort_in_timeout, *rearm_in_timeout;

static void
on_timeout_log(struct conn *c, void *ctx)
{
	struct session *s = ctx;
	(void)c;
	buf_appendf(&timed_out, "%s|", s->name);
	ntimed_out++;
	if (strcmp(s->name, "first") == 0) {
		if (abort_in_timeout != NULL)
			conn_abort(abort_in_timeout, "closed by another's timeout");
		if (rearm_in_timeout != NULL)
			conn_set_timeout_ms(rearm_in_timeout, 30);
	}
}

static const struct conn_handler timed_handler = { on_input, NULL, on_timeout_log, on_close, NULL };

struct timed {
	int sv[2];
	struct conn *c;
	struct session s;
};

static void
timed_open(struct event_base *base, struct timed *t, const char *name, unsigned ms)
{
	TEST_ASSERT(socketpair(AF_UNIX, SOCK_STREAM, 0, t->sv) == 0);
	t->s = (struct session){ BUF_INIT, 0, 0, name };
	struct sockaddr_storage peer = { .ss_family = AF_UNIX };
	t->c = conn_new(base, t->sv[0], (struct sockaddr *)&peer, sizeof(peer), &timed_handler,
			&t->s);
	if (ms > 0)
		conn_set_timeout_ms(t->c, ms);
}

/* The conn is gone (on_close was called); the test's end goes too. */
static void
timed_done(struct timed *t)
{
	TEST_ASSERT(t->s.closed);
	close(t->sv[1]);
	buf_free(&t->s.got);
}

static void
on_guard(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(int *)arg = 1;
}

/* Runs the loop until *n reaches want, or two seconds (a timer that never comes). */
static void
run_until(struct event_base *base, const int *n, int want)
{
	int expired = 0;
	struct event *guard = evtimer_new(base, on_guard, &expired);
	struct timeval tv = { 2, 0 };
	evtimer_add(guard, &tv);
	while (*n < want && !expired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(guard);
	TEST_ASSERT(*n >= want);
}

static void
run_for(struct event_base *base, unsigned ms)
{
	struct timeval tv = { 0, (suseconds_t)ms * 1000 };
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static void
timed_reset(void)
{
	buf_reset(&timed_out);
	ntimed_out = 0;
	abort_in_timeout = rearm_in_timeout = NULL;
}

static void
test_timeout_order(void)
{
	struct event_base *base = event_base_new();
	struct timed a, b, d;
	timed_reset();
	/* Three durations, three queues; a re-arm moves d to the later one. */
	timed_open(base, &a, "a", 80);
	timed_open(base, &b, "b", 20);
	timed_open(base, &d, "d", 20);
	conn_set_timeout_ms(d.c, 140);
	run_until(base, &ntimed_out, 3);
	TEST_ASSERT_STREQ(timed_out.data, "b|a|d|");
	/* A timeout closes the conn after on_timeout. */
	run_until(base, &d.s.closed, 1);
	timed_done(&a);
	timed_done(&b);
	timed_done(&d);
	TEST_ASSERT(conn_total_count() == 0);
	event_base_free(base);
}

static void
test_timeout_postponed_by_input(void)
{
	struct event_base *base = event_base_new();
	struct timed c;
	timed_reset();
	timed_open(base, &c, "c", 60);
	/* 100 ms of input, a line every 20: no timeout meanwhile... */
	for (int i = 0; i < 5; i++) {
		TEST_ASSERT(write(c.sv[1], "x\r\n", 3) == 3);
		run_for(base, 20);
	}
	TEST_ASSERT(ntimed_out == 0);
	TEST_ASSERT_STREQ(c.s.got.data, "x|x|x|x|x|");
	/* ...then 60 ms after the last one. */
	run_until(base, &ntimed_out, 1);
	TEST_ASSERT_STREQ(timed_out.data, "c|");
	run_until(base, &c.s.closed, 1);
	timed_done(&c);
	event_base_free(base);
}

static void
test_timeout_cancelled(void)
{
	struct event_base *base = event_base_new();
	struct timed x, y;
	timed_reset();
	timed_open(base, &x, "x", 20);
	conn_set_timeout_ms(x.c, 0);
	timed_open(base, &y, "y", 60);
	run_until(base, &ntimed_out, 1);
	run_for(base, 30);
	TEST_ASSERT_STREQ(timed_out.data, "y|");
	TEST_ASSERT(!x.s.closed);
	conn_close(x.c);
	run_until(base, &x.s.closed, 1);
	run_until(base, &y.s.closed, 1);
	timed_done(&x);
	timed_done(&y);
	event_base_free(base);
}

static void
test_timeout_never_after_close(void)
{
	struct event_base *base = event_base_new();
	struct timed p, q, w, z;
	timed_reset();
	/* Closed by the session, by the peer, and freed at once at exit. */
	timed_open(base, &p, "p", 20);
	timed_open(base, &q, "q", 20);
	timed_open(base, &z, "z", 60);
	conn_close(p.c);
	shutdown(q.sv[1], SHUT_WR);
	run_until(base, &p.s.closed, 1);
	run_until(base, &q.s.closed, 1);
	run_until(base, &ntimed_out, 1);
	run_until(base, &z.s.closed, 1);
	timed_open(base, &w, "w", 20);
	conn_finish_all();
	TEST_ASSERT(w.s.closed);
	run_for(base, 40);
	TEST_ASSERT_STREQ(timed_out.data, "z|");
	timed_done(&p);
	timed_done(&q);
	timed_done(&w);
	timed_done(&z);
	TEST_ASSERT(conn_total_count() == 0);
	event_base_free(base);
}

static void
test_timeout_callback_closes_and_rearms(void)
{
	struct event_base *base = event_base_new();
	struct timed first, closed, later;
	timed_reset();
	/* All due together: first's on_timeout aborts one and re-arms the other. */
	timed_open(base, &first, "first", 30);
	timed_open(base, &closed, "closed", 30);
	timed_open(base, &later, "later", 30);
	abort_in_timeout = closed.c;
	rearm_in_timeout = later.c;
	run_until(base, &ntimed_out, 2);
	TEST_ASSERT_STREQ(timed_out.data, "first|later|");
	run_until(base, &closed.s.closed, 1);
	run_until(base, &later.s.closed, 1);
	TEST_ASSERT(first.s.closed);
	timed_done(&first);
	timed_done(&closed);
	timed_done(&later);
	event_base_free(base);
}

/*
 * The queue itself, below conn: a callback may free its own entry and
 * another one that is due in the same firing, and re-arm a third.
 */
struct item {
	struct deadline dl;
	const char *name;
};

static struct event_base *item_base;
static struct item *item_freed_by_x, *item_rearmed_by_x;

static void
item_due(struct deadline *d)
{
	struct item *it = (struct item *)d;
	buf_appendf(&timed_out, "%s|", it->name);
	ntimed_out++;
	if (strcmp(it->name, "x") == 0) {
		deadline_cancel(&item_freed_by_x->dl);
		free(item_freed_by_x);
		deadline_arm(&item_rearmed_by_x->dl, item_base, 20, item_due);
	}
	if (!deadline_armed(d))
		free(it);
}

static struct item *
item_new(const char *name)
{
	struct item *it = calloc(1, sizeof(*it));
	it->name = name;
	deadline_arm(&it->dl, item_base, 20, item_due);
	return it;
}

static void
test_deadline_callback_frees(void)
{
	item_base = event_base_new();
	timed_reset();
	item_new("x");
	item_freed_by_x = item_new("y");
	item_rearmed_by_x = item_new("z");
	run_until(item_base, &ntimed_out, 2);
	TEST_ASSERT_STREQ(timed_out.data, "x|z|");
	/* Every entry gone: the queue is freed with its timer (LeakSanitizer). */
	event_base_free(item_base);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_run("lines", test_lines);
	test_run("overlong_across_reads", test_overlong_across_reads);
	test_run("timeout_order", test_timeout_order);
	test_run("timeout_postponed_by_input", test_timeout_postponed_by_input);
	test_run("timeout_cancelled", test_timeout_cancelled);
	test_run("timeout_never_after_close", test_timeout_never_after_close);
	test_run("timeout_callback_closes_and_rearms", test_timeout_callback_closes_and_rearms);
	test_run("deadline_callback_frees", test_deadline_callback_frees);
	buf_free(&timed_out);
	return test_done();
}
