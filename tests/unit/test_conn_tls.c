/*
 * TLS in the connection layer: STARTTLS after a queued reply, with a
 * command pipelined behind it that must never be answered (RFC 3207 §4.2).
 * The client is OpenSSL in the same process, on the other end of a
 * socketpair, stepped in turn with the event loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "core/buf.h"
#include "io/conn.h"
#include "io/tls.h"
#include "test.h"

static SSL_CTX *server_ctx;

struct session {
	struct buf got;
	int closed;
};

static void
on_input(struct conn *c, void *ctx)
{
	struct session *s = ctx;
	char *line;
	size_t len;
	while (!conn_busy(c) && conn_read_line(c, 100, &line, &len) == CONN_LINE_OK) {
		buf_append(&s->got, line, len);
		buf_appendc(&s->got, '|');
		if (strcmp(line, "STARTTLS") == 0) {
			conn_writes(c, "go\r\n");
			conn_start_tls(c, server_ctx);
			continue;
		}
		conn_printf(c, "ok %s%s\r\n", line, conn_is_tls(c) ? " tls" : "");
	}
}

static void
on_timeout(struct conn *c, void *ctx)
{
	(void)c;
	(void)ctx;
}

static void
on_close(struct conn *c, void *ctx)
{
	(void)c;
	((struct session *)ctx)->closed = 1;
}

static const struct conn_handler handler = { on_input, NULL, on_timeout, on_close, NULL };

/* Reads from the plain socket until want is seen (or ~1000 loop turns). */
static void
read_plain(struct event_base *base, int fd, struct buf *in, const char *want)
{
	for (int i = 0; i < 1000 && strstr(in->data ? in->data : "", want) == NULL; i++) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		char tmp[256];
		ssize_t n = read(fd, tmp, sizeof(tmp));
		if (n > 0)
			buf_append(in, tmp, (size_t)n);
	}
}

static void
test_starttls(void)
{
	char dir[] = "/tmp/tern-tls-XXXXXX";
	TEST_ASSERT(mkdtemp(dir) != NULL);
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test "
		 "-keyout %s/key.pem -out %s/cert.pem 2>/dev/null", dir, dir);
	TEST_ASSERT(system(cmd) == 0);
	char cert[256], key[256], *error = NULL;
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	server_ctx = tls_server_ctx_new(cert, key, &error);
	TEST_ASSERT(server_ctx != NULL);
	if (server_ctx == NULL)
		return;

	int sv[2];
	TEST_ASSERT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	struct event_base *base = event_base_new();
	struct session s = { BUF_INIT, 0 };
	struct sockaddr_storage peer = { .ss_family = AF_UNIX };
	conn_new(base, sv[0], (struct sockaddr *)&peer, sizeof(peer), &handler, &s);

	const char *first = "A\r\nSTARTTLS\r\nINJECTED\r\n";
	TEST_ASSERT(write(sv[1], first, strlen(first)) == (ssize_t)strlen(first));
	struct buf plain = BUF_INIT;
	read_plain(base, sv[1], &plain, "go\r\n");
	TEST_ASSERT_STREQ(plain.data, "ok A\r\ngo\r\n");

	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL *cl = SSL_new(cctx);
	SSL_set_fd(cl, sv[1]);
	SSL_set_connect_state(cl);
	int r = -1;
	for (int i = 0; i < 2000 && r != 1; i++) {
		r = SSL_do_handshake(cl);
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	}
	TEST_ASSERT(r == 1);
	TEST_ASSERT(SSL_write(cl, "B\r\n", 3) == 3);
	struct buf secure = BUF_INIT;
	for (int i = 0; i < 2000 && strstr(secure.data ? secure.data : "", "\n") == NULL; i++) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		char tmp[256];
		int n = SSL_read(cl, tmp, sizeof(tmp));
		if (n > 0)
			buf_append(&secure, tmp, (size_t)n);
	}
	TEST_ASSERT_STREQ(secure.data, "ok B tls\r\n");
	/* The command pipelined behind STARTTLS never reached the session. */
	TEST_ASSERT_STREQ(s.got.data, "A|STARTTLS|B|");

	SSL_shutdown(cl);
	close(sv[1]);
	for (int i = 0; i < 1000 && !s.closed; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	TEST_ASSERT(s.closed);
	SSL_free(cl);
	SSL_CTX_free(cctx);
	SSL_CTX_free(server_ctx);
	buf_free(&plain);
	buf_free(&secure);
	buf_free(&s.got);
	event_base_free(base);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	TEST_ASSERT(system(cmd) == 0);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_run("starttls", test_starttls);
	return test_done();
}
