/*
 * The relay client against a scripted peer: a loopback listener served by
 * a thread that plays one script (lines it expects, replies it sends) and
 * records every byte it receives, so each test asserts the exact dialogue
 * and the per-recipient results. The client runs on the test's event loop.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "core/buf.h"
#include "core/util.h"
#include "io/tls.h"
#include "smtp/smtp_client.h"
#include "test.h"

static SSL_CTX *server_ctx;
static char tmpdir[] = "/tmp/tern-smtpc-XXXXXX";

/* ---- the scripted peer ---- */

/*
 * Script steps: "C:line" reads one line from the client (recorded);
 * "B:" reads a message body through its final dot (recorded); "S:text"
 * sends text CRLF; "T:" starts TLS (server side); "H:" stops reading
 * until the test calls peer_release; "E:" reads until the client closes;
 * "X:" closes now.
 */
struct peer {
	int listen_fd;
	struct sockaddr_in addr;
	const char *const *script;
	pthread_t thread;
	struct buf got; /* every byte read, in order */
	int fd;
	SSL *ssl;
	char in[65536];
	size_t inlen;
	int hold[2]; /* a pipe: "H:" waits for a byte on hold[0] */
};

static ssize_t
peer_read(struct peer *p, char *buf, size_t n)
{
	if (p->ssl != NULL) {
		int r = SSL_read(p->ssl, buf, (int)n);
		return r > 0 ? r : 0;
	}
	return read(p->fd, buf, n);
}

static void
peer_write(struct peer *p, const char *s)
{
	char *line = NULL;
	if (asprintf(&line, "%s\r\n", s) < 0)
		abort();
	if (p->ssl != NULL)
		SSL_write(p->ssl, line, (int)strlen(line));
	else if (write(p->fd, line, strlen(line)) < 0)
		perror("peer write");
	free(line);
}

/* Reads until the buffer holds `end`; records through it. 0 on EOF. */
static int
peer_read_until(struct peer *p, const char *end)
{
	for (;;) {
		p->in[p->inlen] = '\0';
		char *hit = memmem(p->in, p->inlen, end, strlen(end));
		if (hit != NULL) {
			size_t n = (size_t)(hit - p->in) + strlen(end);
			buf_append(&p->got, p->in, n);
			memmove(p->in, p->in + n, p->inlen - n);
			p->inlen -= n;
			return 1;
		}
		if (p->inlen >= sizeof(p->in) - 1) {
			/* Record a full buffer and go on (long bodies). */
			size_t keep = strlen(end);
			buf_append(&p->got, p->in, p->inlen - keep);
			memmove(p->in, p->in + p->inlen - keep, keep);
			p->inlen = keep;
		}
		ssize_t n = peer_read(p, p->in + p->inlen, sizeof(p->in) - 1 - p->inlen);
		if (n <= 0) {
			buf_append(&p->got, p->in, p->inlen);
			p->inlen = 0;
			return 0;
		}
		p->inlen += (size_t)n;
	}
}

static void *
peer_main(void *arg)
{
	struct peer *p = arg;
	p->fd = accept(p->listen_fd, NULL, NULL);
	struct timeval tv = { 10, 0 }; /* a safety net against a hang, not a measure */
	setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (const char *const *st = p->script; *st != NULL; st++) {
		const char *s = *st;
		if (s[0] == 'C' && !peer_read_until(p, "\r\n"))
			break;
		if (s[0] == 'B' && !peer_read_until(p, "\r\n.\r\n"))
			break;
		if (s[0] == 'S')
			peer_write(p, s + 2);
		if (s[0] == 'T') {
			p->ssl = SSL_new(server_ctx);
			SSL_set_fd(p->ssl, p->fd);
			if (SSL_accept(p->ssl) != 1) {
				buf_appends(&p->got, "<TLS failed>");
				break;
			}
		}
		if (s[0] == 'E') {
			char tmp[4096];
			ssize_t n;
			while ((n = peer_read(p, tmp, sizeof(tmp))) > 0)
				buf_append(&p->got, tmp, (size_t)n);
		}
		if (s[0] == 'H') {
			char ch;
			if (read(p->hold[0], &ch, 1) != 1)
				break;
		}
		if (s[0] == 'X')
			break;
	}
	if (p->ssl != NULL) {
		SSL_free(p->ssl);
		p->ssl = NULL;
	}
	close(p->fd);
	return NULL;
}

static void
peer_start(struct peer *p, const char *const *script)
{
	memset(p, 0, sizeof(*p));
	p->script = script;
	if (pipe(p->hold) < 0)
		abort();
	p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	p->addr.sin_family = AF_INET;
	p->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(p->addr);
	if (bind(p->listen_fd, (struct sockaddr *)&p->addr, len) < 0 ||
	    listen(p->listen_fd, 4) < 0 ||
	    getsockname(p->listen_fd, (struct sockaddr *)&p->addr, &len) < 0)
		abort();
	pthread_create(&p->thread, NULL, peer_main, p);
}

/* Waits for the script's end; returns what the peer received (free it). */
static char *
peer_finish(struct peer *p)
{
	pthread_join(p->thread, NULL);
	close(p->listen_fd);
	close(p->hold[0]);
	close(p->hold[1]);
	if (p->got.data == NULL)
		return strdup("");
	return buf_steal(&p->got);
}

/* ---- the client side ---- */

struct run {
	struct event_base *base;
	int done;
	/* Copies of the results, readable after the client is gone. */
	struct smtp_rcpt_result res[2][4];
};

static void
on_done(struct smtp_client_msg *msgs, size_t nmsg, void *ctx)
{
	struct run *r = ctx;
	for (size_t m = 0; m < nmsg && m < 2; m++) {
		for (size_t i = 0; i < msgs[m].nrcpt && i < 4; i++) {
			r->res[m][i] = msgs[m].results[i];
			r->res[m][i].text = strdup(msgs[m].results[i].text);
		}
	}
	r->done = 1;
	event_base_loopbreak(r->base);
}

static void
run_free(struct run *r)
{
	for (size_t m = 0; m < 2; m++)
		for (size_t i = 0; i < 4; i++)
			free(r->res[m][i].text);
}

/* A message file with LF line ends; the fd stays open for the test. */
static int
msg_file(const char *content)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/msg-XXXXXX", tmpdir);
	int fd = mkstemp(path);
	if (fd < 0 || write(fd, content, strlen(content)) != (ssize_t)strlen(content))
		abort();
	unlink(path);
	return fd;
}

static struct smtp_client_opts
default_opts(void)
{
	struct smtp_client_opts o = {
		.helo_name = "relay.test",
		.host = "mx.test",
		.tls = SMTP_TLS_NONE,
	};
	return o;
}

static void
run_client(struct run *r, const struct sockaddr_in *addr, const struct smtp_client_opts *o,
	   struct smtp_client_msg *msgs, size_t nmsg)
{
	memset(r, 0, sizeof(*r));
	r->base = event_base_new();
	smtp_client_start(r->base, (const struct sockaddr *)addr, sizeof(*addr), o, msgs, nmsg,
			  on_done, r);
	while (!r->done)
		event_base_loop(r->base, EVLOOP_ONCE);
	event_base_free(r->base);
}

static const char *const rcpts3[] = { "a@dest.test", "b@dest.test", "c@dest.test" };
static const char *const rcpt1[] = { "a@dest.test" };

#define BODY "Subject: hi\n\nline one\n.dot line\n"
#define WIRE "Subject: hi\r\n\r\nline one\r\n..dot line\r\n.\r\n"

static struct smtp_client_msg
make_msg(const char *const *rcpts, size_t n, int fd, size_t size)
{
	struct smtp_client_msg m = {
		.id = "TESTMSG", .sender = "s@src.test", .rcpts = rcpts, .nrcpt = n,
		.fd = fd, .offset = 0, .size = size,
	};
	return m;
}

#define ASSERT_RES(res, st, c, enh, txt)                                       \
	do {                                                                   \
		TEST_ASSERT((res).status == (st));                             \
		TEST_ASSERT((res).code == (c));                                \
		TEST_ASSERT_STREQ((res).enhanced, enh);                        \
		TEST_ASSERT_STREQ((res).text, txt);                            \
	} while (0)

/* ---- the tests ---- */

static void
test_pipelined_mixed(void)
{
	static const char *const script[] = {
		"S:220 mx.test ESMTP", "C:", "S:250-mx.test\r\n250-PIPELINING\r\n250-SIZE 100000\r\n250 8BITMIME",
		"C:", "C:", "C:", "C:", "C:",
		"S:250 2.1.0 ok", "S:250 2.1.5 ok", "S:450 4.2.0 busy", "S:550 5.1.1 no such user",
		"S:354 go", "B:", "S:250 2.0.0 queued as X", "C:", "S:221 bye", "E:", NULL,
	};
	struct peer p;
	peer_start(&p, script);
	int fd = msg_file(BODY);
	struct smtp_client_msg m = make_msg(rcpts3, 3, fd, strlen(BODY));
	struct smtp_client_opts o = default_opts();
	struct run r;
	run_client(&r, &p.addr, &o, &m, 1);
	char *got = peer_finish(&p);
	/* MAIL, the RCPTs and DATA went as one group before any reply. */
	TEST_ASSERT_STREQ(got, "EHLO relay.test\r\n"
			       "MAIL FROM:<s@src.test> SIZE=32\r\n"
			       "RCPT TO:<a@dest.test>\r\nRCPT TO:<b@dest.test>\r\n"
			       "RCPT TO:<c@dest.test>\r\nDATA\r\n" WIRE "QUIT\r\n");
	free(got);
	ASSERT_RES(r.res[0][0], SMTP_RCPT_DELIVERED, 250, "2.0.0", "250 2.0.0 queued as X");
	ASSERT_RES(r.res[0][1], SMTP_RCPT_TEMPFAIL, 450, "4.2.0", "450 4.2.0 busy");
	ASSERT_RES(r.res[0][2], SMTP_RCPT_PERMFAIL, 550, "5.1.1", "550 5.1.1 no such user");
	run_free(&r);
	close(fd);
}


/* Runs a script against one message; returns the transcript (free it). */
static char *
run_script(const char *const *script, struct smtp_client_opts *o, struct smtp_client_msg *msgs,
	   size_t nmsg, struct run *r)
{
	struct peer p;
	peer_start(&p, script);
	run_client(r, &p.addr, o, msgs, nmsg);
	return peer_finish(&p);
}

static void
test_helo_fallback(void)
{
	static const char *const script[] = {
		"S:220 old.test", "C:", "S:502 what?", "C:", "S:250 old.test",
		"C:", "S:250 ok", "C:", "S:251 forwarding", "C:", "S:354 go", "B:", "S:250 ok",
		"C:", "S:221 bye", "E:", NULL,
	};
	int fd = msg_file(BODY);
	struct smtp_client_msg m = make_msg(rcpt1, 1, fd, strlen(BODY));
	struct smtp_client_opts o = default_opts();
	struct run r;
	char *got = run_script(script, &o, &m, 1, &r);
	/* No extensions after HELO: no SIZE, one command at a time. */
	TEST_ASSERT_STREQ(got, "EHLO relay.test\r\nHELO relay.test\r\n"
			       "MAIL FROM:<s@src.test>\r\nRCPT TO:<a@dest.test>\r\nDATA\r\n"
			       WIRE "QUIT\r\n");
	ASSERT_RES(r.res[0][0], SMTP_RCPT_DELIVERED, 250, "2.0.0", "250 ok");
	free(got);
	run_free(&r);
	close(fd);
}

static void
test_multiline_552_after_dot(void)
{
	static const char *const script[] = {
		"S:220-mx.test\r\n220 welcome", "C:", "S:250-mx.test\r\n250-8BITMIME\r\n250 HELP",
		"C:", "S:250 ok", "C:", "S:250 ok", "C:", "S:250 ok", "C:", "S:354 go", "B:",
		"S:552-5.3.4 message too big\r\n552 5.3.4 for this mailbox", "C:", "S:221 bye", "E:",
		NULL,
	};
	int fd = msg_file(BODY);
	struct smtp_client_msg m = make_msg(rcpts3, 2, fd, strlen(BODY));
	struct smtp_client_opts o = default_opts();
	struct run r;
	char *got = run_script(script, &o, &m, 1, &r);
	TEST_ASSERT_STREQ(got, "EHLO relay.test\r\nMAIL FROM:<s@src.test>\r\n"
			       "RCPT TO:<a@dest.test>\r\nRCPT TO:<b@dest.test>\r\nDATA\r\n"
			       WIRE "QUIT\r\n");
	const char *text = "552-5.3.4 message too big\n552 5.3.4 for this mailbox";
	ASSERT_RES(r.res[0][0], SMTP_RCPT_PERMFAIL, 552, "5.3.4", text);
	ASSERT_RES(r.res[0][1], SMTP_RCPT_PERMFAIL, 552, "5.3.4", text);
	free(got);
	run_free(&r);
	close(fd);
}

static void
test_552_to_data(void)
{
	static const char *const script[] = {
		"S:220 mx.test", "C:", "S:250-mx.test\r\n250 PIPELINING",
		"C:", "C:", "C:", "S:250 ok", "S:250 ok", "S:552 no room", "C:", "S:221 bye", "E:",
		NULL,
	};
	int fd = msg_file(BODY);
	struct smtp_client_msg m = make_msg(rcpt1, 1, fd, strlen(BODY));
	struct smtp_client_opts o = default_opts();
	struct run r;
	char *got = run_script(script, &o, &m, 1, &r);
	TEST_ASSERT_STREQ(got, "EHLO relay.test\r\nMAIL FROM:<s@src.test>\r\n"
			       "RCPT TO:<a@dest.test>\r\nDATA\r\nQUIT\r\n");
	/* No enhanced code in the reply: derived from the class. */
	ASSERT_RES(r.res[0][0], SMTP_RCPT_PERMFAIL, 552, "5.0.0", "552 no room");
	free(got);
	run_free(&r);
	close(fd);
}

/* RFC 2920 §3.1's example: every RCPT refused, DATA still says 354. */
static void
test_no_valid_rcpt_354(void)
{
	static const char *const script[] = {
		"S:220 mx.test", "C:", "S:250-mx.test\r\n250 PIPELINING",
		"C:", "C:", "C:", "C:", "S:250 ok", "S:550 5.7.1 not here", "S:550 5.7.1 nor here",
		"S:354 go", "C:", "S:554 no valid recipients", "C:", "S:221 bye", "E:", NULL,
	};
	int fd = msg_file(BODY);
	struct smtp_client_msg m = make_msg(rcpts3, 2, fd, strlen(BODY));
	struct smtp_client_opts o = default_opts();
	struct run r;
	char *got = run_script(script, &o, &m, 1, &r);
	TEST_ASSERT_STREQ(got, "EHLO relay.test\r\nMAIL FROM:<s@src.test>\r\n"
			       "RCPT TO:<a@dest.test>\r\nRCPT TO:<b@dest.test>\r\nDATA\r\n"
			       ".\r\nQUIT\r\n");
	ASSERT_RES(r.res[0][0], SMTP_RCPT_PERMFAIL, 550, "5.7.1", "550 5.7.1 not here");
	ASSERT_RES(r.res[0][1], SMTP_RCPT_PERMFAIL, 550, "5.7.1", "550 5.7.1 nor here");
	free(got);
	run_free(&r);
	close(fd);
}

static void
test_mail_refused(void)
{
	static const char *const script[] = {
		"S:220 mx.test", "C:", "S:250 mx.test", "C:", "S:553 5.1.8 bad sender",
		"C:", "S:221 bye", "E:", NULL,
	};
	int fd = msg_file(BODY);
	struct smtp_client_msg m = make_msg(rcpts3, 2, fd, strlen(BODY));
	struct smtp_client_opts o = default_opts();
	struct run r;
	char *got = run_script(script, &o, &m, 1, &r);
	TEST_ASSERT_STREQ(got, "EHLO relay.test\r\nMAIL FROM:<s@src.test>\r\nQUIT\r\n");
	ASSERT_RES(r.res[0][0], SMTP_RCPT_PERMFAIL, 553, "5.1.8", "553 5.1.8 bad sender");
	ASSERT_RES(r.res[0][1], SMTP_RCPT_PERMFAIL, 553, "5.1.8", "553 5.1.8 bad sender");
	free(got);
	run_free(&r);
	close(fd);
}

static void
test_size_refused(void)
{
	static const char *const script[] = {
		"S:220 mx.test", "C:", "S:250-mx.test\r\n250 SIZE 20", "C:", "S:221 bye", "E:", NULL,
	};
	int fd = msg_file(BODY);
	struct smtp_client_msg m = make_msg(rcpt1, 1, fd, strlen(BODY));
	struct smtp_client_opts o = default_opts();
	struct run r;
	char *got = run_script(script, &o, &m, 1, &r);
	TEST_ASSERT_STREQ(got, "EHLO relay.test\r\nQUIT\r\n");
	ASSERT_RES(r.res[0][0], SMTP_RCPT_PERMFAIL, 552, "5.3.4",
		   "message of 32 bytes exceeds the 20-byte limit of mx.test");
	free(got);
	run_free(&r);
	close(fd);
}

static void
test_8bit_refused(void)
{
	static const char *const script[] = {
		"S:220 mx.test", "C:", "S:250-mx.test\r\n250 PIPELINING", "C:", "S:221 bye", "E:", NULL,
	};
	int fd = msg_file(BODY);
	struct smtp_client_msg m = make_msg(rcpt1, 1, fd, strlen(BODY));
	m.eightbit = true;
	struct smtp_client_opts o = default_opts();
	struct run r;
	char *got = run_script(script, &o, &m, 1, &r);
	TEST_ASSERT_STREQ(got, "EHLO relay.test\r\nQUIT\r\n");
	ASSERT_RES(r.res[0][0], SMTP_RCPT_PERMFAIL, 554, "5.6.3",
		   "message has 8-bit content and mx.test does not offer 8BITMIME");
	free(got);
	run_free(&r);
	close(fd);
}

static void
test_two_messages_rset(void)
{
	static const char *const script[] = {
		"S:220 mx.test", "C:", "S:250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME",
		"C:", "C:", "C:", "S:250 ok", "S:250 ok", "S:354 go", "B:", "S:250 first",
		"C:", "S:250 reset",
		"C:", "C:", "C:", "S:250 ok", "S:250 ok", "S:354 go", "B:", "S:250 second",
		"C:", "S:221 bye", "E:", NULL,
	};
	const char *body2 = "Subject: \xc3\xa9t\xc3\xa9\n\n\xc3\xa9\n";
	int fd1 = msg_file(BODY), fd2 = msg_file(body2);
	struct smtp_client_msg m[2] = {
		make_msg(rcpt1, 1, fd1, strlen(BODY)),
		make_msg(rcpts3 + 1, 1, fd2, strlen(body2)),
	};
	m[1].eightbit = true;
	struct smtp_client_opts o = default_opts();
	struct run r;
	char *got = run_script(script, &o, m, 2, &r);
	TEST_ASSERT_STREQ(got, "EHLO relay.test\r\n"
			       "MAIL FROM:<s@src.test>\r\nRCPT TO:<a@dest.test>\r\nDATA\r\n" WIRE
			       "RSET\r\n"
			       "MAIL FROM:<s@src.test> BODY=8BITMIME\r\nRCPT TO:<b@dest.test>\r\n"
			       "DATA\r\nSubject: \xc3\xa9t\xc3\xa9\r\n\r\n\xc3\xa9\r\n.\r\n"
			       "QUIT\r\n");
	ASSERT_RES(r.res[0][0], SMTP_RCPT_DELIVERED, 250, "2.0.0", "250 first");
	ASSERT_RES(r.res[1][0], SMTP_RCPT_DELIVERED, 250, "2.0.0", "250 second");
	free(got);
	run_free(&r);
	close(fd1);
	close(fd2);
}

/* A body far over the conn's output high-water mark goes out in pieces. */
static void
test_large_body(void)
{
	static const char *const script[] = {
		"S:220 mx.test", "C:", "S:250-mx.test\r\n250 PIPELINING",
		"C:", "C:", "C:", "S:250 ok", "S:250 ok", "S:354 go", "B:", "S:250 ok",
		"C:", "S:221 bye", "E:", NULL,
	};
	struct buf body = BUF_INIT, wire = BUF_INIT;
	for (int i = 0; i < 40000; i++) {
		buf_appendf(&body, "%s%05d abcdefghijklmnopqrstuvwxyz\n", i % 7 == 0 ? "." : "", i);
		buf_appendf(&wire, "%s%05d abcdefghijklmnopqrstuvwxyz\r\n", i % 7 == 0 ? ".." : "", i);
	}
	int fd = msg_file(body.data);
	struct smtp_client_msg m = make_msg(rcpt1, 1, fd, body.len);
	struct smtp_client_opts o = default_opts();
	struct run r;
	char *got = run_script(script, &o, &m, 1, &r);
	struct buf want = BUF_INIT;
	buf_appendf(&want, "EHLO relay.test\r\nMAIL FROM:<s@src.test>\r\n"
			   "RCPT TO:<a@dest.test>\r\nDATA\r\n%s.\r\nQUIT\r\n", wire.data);
	TEST_ASSERT(body.len > 1024 * 1024);
	TEST_ASSERT(strcmp(got, want.data) == 0);
	ASSERT_RES(r.res[0][0], SMTP_RCPT_DELIVERED, 250, "2.0.0", "250 ok");
	free(got);
	run_free(&r);
	buf_free(&body);
	buf_free(&wire);
	buf_free(&want);
	close(fd);
}

static void
test_timeout_ehlo(void)
{
	static const char *const script[] = { "S:220 mx.test", "C:", "E:", NULL };
	int fd = msg_file(BODY);
	struct smtp_client_msg m = make_msg(rcpt1, 1, fd, strlen(BODY));
	struct smtp_client_opts o = default_opts();
	o.timeouts.command = 50;
	struct run r;
	char *got = run_script(script, &o, &m, 1, &r);
	TEST_ASSERT_STREQ(got, "EHLO relay.test\r\n");
	ASSERT_RES(r.res[0][0], SMTP_RCPT_TEMPFAIL, 421, "4.4.2",
		   "timed out waiting for the reply to EHLO from mx.test");
	free(got);
	run_free(&r);
	close(fd);
}

static void
test_timeout_greeting(void)
{
	static const char *const script[] = { "E:", NULL };
	int fd = msg_file(BODY);
	struct smtp_client_msg m = make_msg(rcpt1, 1, fd, strlen(BODY));
	struct smtp_client_opts o = default_opts();
	o.timeouts.greeting = 50;
	struct run r;
	char *got = run_script(script, &o, &m, 1, &r);
	TEST_ASSERT_STREQ(got, "");
	ASSERT_RES(r.res[0][0], SMTP_RCPT_TEMPFAIL, 421, "4.4.2",
		   "timed out connecting to mx.test or waiting for its greeting");
	free(got);
	run_free(&r);
	close(fd);
}

static void
test_timeout_data(void)
{
	static const char *const script[] = {
		"S:220 mx.test", "C:", "S:250-mx.test\r\n250 PIPELINING",
		"C:", "C:", "C:", "S:250 ok", "S:250 ok", "E:", NULL,
	};
	int fd = msg_file(BODY);
	struct smtp_client_msg m = make_msg(rcpt1, 1, fd, strlen(BODY));
	struct smtp_client_opts o = default_opts();
	o.timeouts.data = 50;
	struct run r;
	char *got = run_script(script, &o, &m, 1, &r);
	ASSERT_RES(r.res[0][0], SMTP_RCPT_TEMPFAIL, 421, "4.4.2",
		   "timed out waiting for the reply to MAIL, RCPT or DATA from mx.test");
	free(got);
	run_free(&r);
	close(fd);
}

/* The peer stops reading in the middle of a big body: §4.5.3.2.5 applies. */
static void
test_timeout_data_block(void)
{
	static const char *const script[] = {
		"S:220 mx.test", "C:", "S:250-mx.test\r\n250 PIPELINING",
		"C:", "C:", "C:", "S:250 ok", "S:250 ok", "S:354 go", "H:", "E:", NULL,
	};
	struct buf body = BUF_INIT;
	for (int i = 0; i < 200000; i++)
		buf_appends(&body, "0123456789012345678901234567890123456789\n");
	int fd = msg_file(body.data);
	struct smtp_client_msg m = make_msg(rcpt1, 1, fd, body.len);
	struct smtp_client_opts o = default_opts();
	o.timeouts.block = 100;
	struct peer p;
	peer_start(&p, script);
	struct run r;
	run_client(&r, &p.addr, &o, &m, 1);
	TEST_ASSERT(write(p.hold[1], "x", 1) == 1);
	free(peer_finish(&p));
	ASSERT_RES(r.res[0][0], SMTP_RCPT_TEMPFAIL, 421, "4.4.2",
		   "timed out sending the message data to mx.test");
	run_free(&r);
	buf_free(&body);
	close(fd);
}

static void
test_421(void)
{
	static const char *const script[] = {
		"S:220 mx.test", "C:", "S:250 mx.test", "C:", "S:421 4.3.2 going down", "E:", NULL,
	};
	int fd = msg_file(BODY);
	struct smtp_client_msg m = make_msg(rcpts3, 2, fd, strlen(BODY));
	struct smtp_client_opts o = default_opts();
	struct run r;
	char *got = run_script(script, &o, &m, 1, &r);
	TEST_ASSERT_STREQ(got, "EHLO relay.test\r\nMAIL FROM:<s@src.test>\r\n");
	ASSERT_RES(r.res[0][0], SMTP_RCPT_TEMPFAIL, 421, "4.3.2", "421 4.3.2 going down");
	ASSERT_RES(r.res[0][1], SMTP_RCPT_TEMPFAIL, 421, "4.3.2", "421 4.3.2 going down");
	free(got);
	run_free(&r);
	close(fd);
}

static void
test_garbage(void)
{
	static const char *const script[] = { "S:hello there", "E:", NULL };
	int fd = msg_file(BODY);
	struct smtp_client_msg m = make_msg(rcpt1, 1, fd, strlen(BODY));
	struct smtp_client_opts o = default_opts();
	struct run r;
	char *got = run_script(script, &o, &m, 1, &r);
	TEST_ASSERT_STREQ(got, "");
	ASSERT_RES(r.res[0][0], SMTP_RCPT_TEMPFAIL, 451, "4.5.0",
		   "protocol error: malformed reply from mx.test");
	free(got);
	run_free(&r);
	close(fd);
}

static void
test_long_line(void)
{
	static char line[6000];
	memset(line, 'x', sizeof(line) - 1);
	memcpy(line, "S:220 ", 6);
	static const char *const script[] = { line, "E:", NULL };
	int fd = msg_file(BODY);
	struct smtp_client_msg m = make_msg(rcpt1, 1, fd, strlen(BODY));
	struct smtp_client_opts o = default_opts();
	struct run r;
	char *got = run_script(script, &o, &m, 1, &r);
	ASSERT_RES(r.res[0][0], SMTP_RCPT_TEMPFAIL, 451, "4.5.0",
		   "protocol error: reply line too long from mx.test");
	free(got);
	run_free(&r);
	close(fd);
}

static void
test_close_mid_data(void)
{
	static const char *const script[] = {
		"S:220 mx.test", "C:", "S:250-mx.test\r\n250 PIPELINING",
		"C:", "C:", "C:", "S:250 ok", "S:250 ok", "S:354 go", "X:", NULL,
	};
	int fd = msg_file(BODY);
	struct smtp_client_msg m[2] = {
		make_msg(rcpt1, 1, fd, strlen(BODY)),
		make_msg(rcpt1, 1, fd, strlen(BODY)),
	};
	struct smtp_client_opts o = default_opts();
	struct run r;
	char *got = run_script(script, &o, m, 2, &r);
	TEST_ASSERT(r.res[0][0].status == SMTP_RCPT_TEMPFAIL);
	TEST_ASSERT(r.res[0][0].code == 421);
	TEST_ASSERT(r.res[1][0].status == SMTP_RCPT_TEMPFAIL);
	TEST_ASSERT_STREQ(r.res[1][0].enhanced, "4.4.2");
	free(got);
	run_free(&r);
	close(fd);
}

static void
test_connect_refused(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	socklen_t len = sizeof(a);
	TEST_ASSERT(bind(s, (struct sockaddr *)&a, len) == 0);
	TEST_ASSERT(getsockname(s, (struct sockaddr *)&a, &len) == 0);
	close(s); /* nobody listens there now */
	int fd = msg_file(BODY);
	struct smtp_client_msg m = make_msg(rcpt1, 1, fd, strlen(BODY));
	struct smtp_client_opts o = default_opts();
	struct run r;
	run_client(&r, &a, &o, &m, 1);
	ASSERT_RES(r.res[0][0], SMTP_RCPT_TEMPFAIL, 421, "4.4.1",
		   "connect to 127.0.0.1: Connection refused");
	run_free(&r);
	close(fd);
}

static SSL_CTX *
client_ctx(bool verify)
{
	char ca[PATH_MAX], *error = NULL;
	snprintf(ca, sizeof(ca), "%s/cert.pem", tmpdir);
	SSL_CTX *ctx = tls_client_ctx_new(verify, verify ? ca : NULL, &error);
	TEST_ASSERT(ctx != NULL);
	free(error);
	return ctx;
}

/* STARTTLS, the certificate checked against a CA file, AUTH PLAIN under TLS. */
static void
test_starttls_auth(void)
{
	static const char *const script[] = {
		"S:220 mx.test", "C:", "S:250-mx.test\r\n250-STARTTLS\r\n250 AUTH PLAIN",
		"C:", "S:220 go ahead", "T:",
		"C:", "S:250-mx.test\r\n250-PIPELINING\r\n250 AUTH LOGIN PLAIN",
		"C:", "S:235 2.7.0 ok",
		"C:", "C:", "C:", "S:250 ok", "S:250 ok", "S:354 go", "B:", "S:250 ok",
		"C:", "S:221 bye", "E:", NULL,
	};
	int fd = msg_file(BODY);
	struct smtp_client_msg m = make_msg(rcpt1, 1, fd, strlen(BODY));
	struct smtp_client_opts o = default_opts();
	o.tls = SMTP_TLS_REQUIRED;
	o.tls_ctx = client_ctx(true);
	o.auth_user = "user";
	o.auth_pass = "pass";
	struct run r;
	char *got = run_script(script, &o, &m, 1, &r);
	TEST_ASSERT_STREQ(got, "EHLO relay.test\r\nSTARTTLS\r\nEHLO relay.test\r\n"
			       "AUTH PLAIN AHVzZXIAcGFzcw==\r\n"
			       "MAIL FROM:<s@src.test>\r\nRCPT TO:<a@dest.test>\r\nDATA\r\n"
			       WIRE "QUIT\r\n");
	ASSERT_RES(r.res[0][0], SMTP_RCPT_DELIVERED, 250, "2.0.0", "250 ok");
	free(got);
	run_free(&r);
	SSL_CTX_free(o.tls_ctx);
	close(fd);
}

/* AUTH LOGIN, opportunistic TLS without a certificate check. */
static void
test_starttls_auth_login(void)
{
	static const char *const script[] = {
		"S:220 mx.test", "C:", "S:250-mx.test\r\n250 STARTTLS",
		"C:", "S:220 go ahead", "T:",
		"C:", "S:250-mx.test\r\n250 AUTH LOGIN",
		"C:", "S:334 VXNlcm5hbWU6", "C:", "S:334 UGFzc3dvcmQ6", "C:", "S:235 ok",
		"C:", "S:250 ok", "C:", "S:250 ok", "C:", "S:354 go", "B:", "S:250 ok",
		"C:", "S:221 bye", "E:", NULL,
	};
	int fd = msg_file(BODY);
	struct smtp_client_msg m = make_msg(rcpt1, 1, fd, strlen(BODY));
	struct smtp_client_opts o = default_opts();
	o.host = "other.name"; /* not checked: opportunistic */
	o.tls = SMTP_TLS_OPPORTUNISTIC;
	o.tls_ctx = client_ctx(false);
	o.auth_user = "user";
	o.auth_pass = "pass";
	struct run r;
	char *got = run_script(script, &o, &m, 1, &r);
	TEST_ASSERT_STREQ(got, "EHLO relay.test\r\nSTARTTLS\r\nEHLO relay.test\r\n"
			       "AUTH LOGIN\r\ndXNlcg==\r\ncGFzcw==\r\n"
			       "MAIL FROM:<s@src.test>\r\nRCPT TO:<a@dest.test>\r\nDATA\r\n"
			       WIRE "QUIT\r\n");
	ASSERT_RES(r.res[0][0], SMTP_RCPT_DELIVERED, 250, "2.0.0", "250 ok");
	free(got);
	run_free(&r);
	SSL_CTX_free(o.tls_ctx);
	close(fd);
}

static void
test_tls_wrong_name(void)
{
	static const char *const script[] = {
		"S:220 mx.test", "C:", "S:250-mx.test\r\n250 STARTTLS",
		"C:", "S:220 go ahead", "T:", "E:", NULL,
	};
	int fd = msg_file(BODY);
	struct smtp_client_msg m = make_msg(rcpt1, 1, fd, strlen(BODY));
	struct smtp_client_opts o = default_opts();
	o.host = "wrong.test";
	o.tls = SMTP_TLS_REQUIRED;
	o.tls_ctx = client_ctx(true);
	struct run r;
	char *got = run_script(script, &o, &m, 1, &r);
	TEST_ASSERT(r.res[0][0].status == SMTP_RCPT_TEMPFAIL);
	TEST_ASSERT(r.res[0][0].code == 421);
	TEST_ASSERT_STREQ(r.res[0][0].text,
			  "TLS handshake with 127.0.0.1 failed: certificate: hostname mismatch");
	free(got);
	run_free(&r);
	SSL_CTX_free(o.tls_ctx);
	close(fd);
}

static void
test_tls_required_not_offered(void)
{
	static const char *const script[] = {
		"S:220 mx.test", "C:", "S:250-mx.test\r\n250 PIPELINING", "C:", "S:221 bye", "E:", NULL,
	};
	int fd = msg_file(BODY);
	struct smtp_client_msg m = make_msg(rcpt1, 1, fd, strlen(BODY));
	struct smtp_client_opts o = default_opts();
	o.tls = SMTP_TLS_REQUIRED;
	o.tls_ctx = client_ctx(false);
	struct run r;
	char *got = run_script(script, &o, &m, 1, &r);
	/* Never a MAIL in clear text. */
	TEST_ASSERT_STREQ(got, "EHLO relay.test\r\nQUIT\r\n");
	ASSERT_RES(r.res[0][0], SMTP_RCPT_TEMPFAIL, 451, "4.7.0",
		   "TLS is required but the peer does not offer STARTTLS");
	free(got);
	run_free(&r);
	SSL_CTX_free(o.tls_ctx);
	close(fd);
}

/* ---- against a real ternd (built beside this test) ---- */

static int
write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return -1;
	fputs(text, f);
	return fclose(f);
}

/* The files of a Maildir's new/, each read whole, in *files_r (up to max). */
static size_t
read_new(const char *dir, struct buf *files_r, size_t max)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return 0;
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL && n < max) {
		if (e->d_name[0] == '.')
			continue;
		char *path = xasprintf("%s/%s", dir, e->d_name);
		FILE *f = fopen(path, "rb");
		free(path);
		if (f == NULL)
			continue;
		char tmp[4096];
		size_t got;
		while ((got = fread(tmp, 1, sizeof(tmp), f)) > 0)
			buf_append(&files_r[n], tmp, got);
		fclose(f);
		n++;
	}
	closedir(d);
	return n;
}

/* The stored file: Return-Path, Delivered-To, Received, then body byte-exact. */
static bool
stored_as(const struct buf *file, const char *rcpt, const char *body)
{
	char head[256];
	snprintf(head, sizeof(head), "Return-Path: <s@src.test>\nDelivered-To: %s\nReceived: ",
		 rcpt);
	size_t n = strlen(body);
	return file->len > strlen(head) + n && strncmp(file->data, head, strlen(head)) == 0 &&
	       memcmp(file->data + file->len - n, body, n) == 0 &&
	       file->data[file->len - n - 1] == '\n' && file->data[file->len - n - 2] != '\n';
}

static void
test_real_ternd(void)
{
	char bindir[1024];
	ssize_t n = readlink("/proc/self/exe", bindir, sizeof(bindir) - 1);
	TEST_ASSERT(n > 0);
	if (n <= 0)
		return;
	bindir[n] = '\0';
	*strrchr(bindir, '/') = '\0';

	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	socklen_t alen = sizeof(a);
	TEST_ASSERT(bind(s, (struct sockaddr *)&a, alen) == 0);
	TEST_ASSERT(getsockname(s, (struct sockaddr *)&a, &alen) == 0);
	close(s);

	char dir[256], path[4096], conf[512], text[1024], cmd[4096];
	snprintf(dir, sizeof(dir), "%s/ternd", tmpdir);
	TEST_ASSERT(mkdir(dir, 0700) == 0);
	snprintf(conf, sizeof(conf), "%s/tern.conf", dir);
	snprintf(text, sizeof(text),
		 "hostname = mail.example.test\ndomains = example.test\ndata_dir = var\n"
		 "users_file = users\naliases_file = aliases\nlog_level = warning\n"
		 "listen.smtp = 127.0.0.1:%u\n", ntohs(a.sin_port));
	TEST_ASSERT(write_text(conf, text) == 0);
	snprintf(path, sizeof(path), "%s/users", dir);
	TEST_ASSERT(write_text(path, "") == 0);
	snprintf(path, sizeof(path), "%s/aliases", dir);
	TEST_ASSERT(write_text(path, "postmaster: bob@example.test\n") == 0);
	snprintf(cmd, sizeof(cmd), "echo pw | %s/tern -c %s user add bob@example.test "
		 "--password-stdin >/dev/null", bindir, conf);
	TEST_ASSERT(system(cmd) == 0);

	pid_t pid = fork();
	if (pid == 0) {
		snprintf(path, sizeof(path), "%s/ternd", bindir);
		execl(path, "ternd", "-c", conf, (char *)NULL);
		_exit(127);
	}
	/* Wait until it listens: each try is a real connect, nothing is timed. */
	bool up = false;
	for (int i = 0; i < 400 && !up; i++) {
		int t = socket(AF_INET, SOCK_STREAM, 0);
		up = connect(t, (struct sockaddr *)&a, sizeof(a)) == 0;
		close(t);
		if (!up)
			usleep(25000);
	}
	TEST_ASSERT(up);

	const char *body1 = "From: s@src.test\nSubject: one\n\n.leading dot\nlast line\n";
	const char *body2 = "From: s@src.test\nSubject: two\n\ncaf\xc3\xa9\n";
	static const char *const bob[] = { "bob@example.test" };
	static const char *const mixed[] = { "nobody@example.test", "bob@example.test" };
	int fd1 = msg_file(body1), fd2 = msg_file(body2);
	struct smtp_client_msg m[2] = {
		make_msg(mixed, 2, fd1, strlen(body1)),
		make_msg(bob, 1, fd2, strlen(body2)),
	};
	m[1].eightbit = true;
	struct smtp_client_opts o = default_opts();
	o.host = "mail.example.test";
	struct run r;
	run_client(&r, &a, &o, m, 2);
	TEST_ASSERT(r.res[0][0].status == SMTP_RCPT_PERMFAIL);
	TEST_ASSERT(r.res[0][0].code == 550);
	TEST_ASSERT(r.res[0][1].status == SMTP_RCPT_DELIVERED);
	TEST_ASSERT(r.res[1][0].status == SMTP_RCPT_DELIVERED);

	snprintf(path, sizeof(path), "%s/var/mail/example.test/bob/new", dir);
	struct buf files[3] = { BUF_INIT, BUF_INIT, BUF_INIT };
	size_t nfiles = read_new(path, files, 3);
	TEST_ASSERT(nfiles == 2);
	if (nfiles == 2) {
		bool first = stored_as(&files[0], "bob@example.test", body1);
		TEST_ASSERT(stored_as(&files[first ? 0 : 1], "bob@example.test", body1));
		TEST_ASSERT(stored_as(&files[first ? 1 : 0], "bob@example.test", body2));
	}
	for (size_t i = 0; i < 3; i++)
		buf_free(&files[i]);

	kill(pid, SIGTERM);
	int status = 0;
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fprintf(stderr, "ternd status %d\n", status);
	TEST_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	run_free(&r);
	close(fd1);
	close(fd2);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (mkdtemp(tmpdir) == NULL)
		return 1;
	char cmd[1024];
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=mx.test "
		 "-addext subjectAltName=DNS:mx.test -keyout %s/key.pem -out %s/cert.pem "
		 "2>/dev/null", tmpdir, tmpdir);
	if (system(cmd) != 0)
		return 1;
	char cert[PATH_MAX], key[PATH_MAX], *error = NULL;
	snprintf(cert, sizeof(cert), "%s/cert.pem", tmpdir);
	snprintf(key, sizeof(key), "%s/key.pem", tmpdir);
	server_ctx = tls_server_ctx_new(cert, key, &error);
	if (server_ctx == NULL)
		return 1;

	test_run("pipelined_mixed", test_pipelined_mixed);
	test_run("helo_fallback", test_helo_fallback);
	test_run("multiline_552_after_dot", test_multiline_552_after_dot);
	test_run("552_to_data", test_552_to_data);
	test_run("no_valid_rcpt_354", test_no_valid_rcpt_354);
	test_run("mail_refused", test_mail_refused);
	test_run("size_refused", test_size_refused);
	test_run("8bit_refused", test_8bit_refused);
	test_run("two_messages_rset", test_two_messages_rset);
	test_run("large_body", test_large_body);
	test_run("timeout_ehlo", test_timeout_ehlo);
	test_run("timeout_greeting", test_timeout_greeting);
	test_run("timeout_data", test_timeout_data);
	test_run("timeout_data_block", test_timeout_data_block);
	test_run("421", test_421);
	test_run("garbage", test_garbage);
	test_run("long_line", test_long_line);
	test_run("close_mid_data", test_close_mid_data);
	test_run("connect_refused", test_connect_refused);
	test_run("starttls_auth", test_starttls_auth);
	test_run("starttls_auth_login", test_starttls_auth_login);
	test_run("tls_wrong_name", test_tls_wrong_name);
	test_run("tls_required_not_offered", test_tls_required_not_offered);
	test_run("real_ternd", test_real_ternd);

	SSL_CTX_free(server_ctx);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		return 1;
	return test_done();
}
