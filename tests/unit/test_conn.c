/* The connection layer over a socketpair: lines, overlong lines, output. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/buf.h"
#include "io/conn.h"
#include "test.h"

struct session {
	struct buf got;   /* lines seen, each followed by '|' */
	int too_long;
	int closed;
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
			s->too_long++;
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
	struct session s = { BUF_INIT, 0, 0 };
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
	TEST_ASSERT_STREQ(s.got.data, "ab|cd|ef|QUIT|");
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
	struct session s = { BUF_INIT, 0, 0 };
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
	TEST_ASSERT_STREQ(s.got.data, "ok|");
	TEST_ASSERT(s.closed);
	buf_free(&s.got);
	event_base_free(base);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_run("lines", test_lines);
	test_run("overlong_across_reads", test_overlong_across_reads);
	return test_done();
}
