#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include "core/buf.h"
#include "core/util.h"
#include "queue/dsn.h"
#include "test.h"

static const char headers[] = "Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
			      "From: alice@example.org\r\n"
			      "Subject: the report\r\n";

/* A message in memory: bob failed, carol deferred, dave delivered. */
static struct queue_msg *
make_msg(const char *sender)
{
	struct queue_msg *msg = xcalloc(1, sizeof(*msg));
	msg->data_dir = xstrdup("/nonexistent");
	strcpy(msg->id, "0123456789AB");
	msg->arrival = 1700000000;
	msg->sender = xstrdup(sender);
	msg->nrcpts = 3;
	msg->rcpts = xcalloc(3, sizeof(*msg->rcpts));
	msg->rcpts[0].address = xstrdup("bob@example.net");
	msg->rcpts[1].address = xstrdup("carol@example.com");
	msg->rcpts[2].address = xstrdup("dave@example.com");
	queue_msg_mark(msg, 0, QUEUE_RCPT_FAILED, "550 5.1.1 <bob@example.net>: no such user",
		       "mx.example.net", 0);
	queue_msg_mark(msg, 1, QUEUE_RCPT_DEFERRED, "connect to mx.example.com: timed out",
		       NULL, 1700003600);
	queue_msg_mark(msg, 2, QUEUE_RCPT_DELIVERED, "250 ok", "mx.example.com", 0);
	return msg;
}

/* The text of a part, CRLF kept. */
static char *
part_text(GMimeObject *part)
{
	GMimeStream *mem = g_mime_stream_mem_new();
	GMimeDataWrapper *content = g_mime_part_get_content(GMIME_PART(part));
	g_mime_data_wrapper_write_to_stream(content, mem);
	GByteArray *bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	char *s = bytes->len > 0 ? xstrndup((const char *)bytes->data, bytes->len) : xstrdup("");
	g_object_unref(mem);
	return s;
}

/* Parses a built DSN and checks the RFC 6522 structure; returns the status part. */
static char *
check_structure(const char *text, char **rfc822_headers_r)
{
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer(text, strlen(text));
	GMimeParser *parser = g_mime_parser_new_with_stream(stream);
	GMimeMessage *m = g_mime_parser_construct_message(parser, NULL);
	char *status = NULL;
	*rfc822_headers_r = NULL;
	TEST_ASSERT(m != NULL);
	if (m == NULL)
		goto out;
	GMimeObject *top = g_mime_message_get_mime_part(m);
	GMimeContentType *ct = g_mime_object_get_content_type(top);
	TEST_ASSERT(g_mime_content_type_is_type(ct, "multipart", "report"));
	TEST_ASSERT_STREQ(g_mime_content_type_get_parameter(ct, "report-type"), "delivery-status");
	TEST_ASSERT(GMIME_IS_MULTIPART(top));
	if (!GMIME_IS_MULTIPART(top))
		goto out;
	GMimeMultipart *mp = GMIME_MULTIPART(top);
	TEST_ASSERT(g_mime_multipart_get_count(mp) == 3);
	if (g_mime_multipart_get_count(mp) != 3)
		goto out;
	const char *types[3][2] = { { "text", "plain" }, { "message", "delivery-status" },
				    { "text", "rfc822-headers" } };
	for (int i = 0; i < 3; i++) {
		GMimeObject *p = g_mime_multipart_get_part(mp, i);
		TEST_ASSERT(g_mime_content_type_is_type(g_mime_object_get_content_type(p),
							types[i][0], types[i][1]));
	}
	status = part_text(g_mime_multipart_get_part(mp, 1));
	*rfc822_headers_r = part_text(g_mime_multipart_get_part(mp, 2));
out:
	if (m != NULL)
		g_object_unref(m);
	g_object_unref(parser);
	g_object_unref(stream);
	return status;
}

static void
test_failure(void)
{
	struct queue_msg *msg = make_msg("alice@example.org");
	struct dsn_opts opts = { "mail.example.org", 1700007200, 0, NULL };
	struct buf out = BUF_INIT;
	TEST_ASSERT(dsn_build(msg, DSN_FAILURE, &opts, headers, &out) == DSN_BUILT);
	const char *t = out.data;
	const char *top = "From: Mail Delivery System <MAILER-DAEMON@mail.example.org>\r\n"
			  "To: <alice@example.org>\r\n";
	TEST_ASSERT(strncmp(t, top, strlen(top)) == 0);
	TEST_ASSERT(strstr(t, "\r\nAuto-Submitted: auto-replied\r\n") != NULL);
	TEST_ASSERT(strstr(t, "\r\nDate: ") != NULL);
	TEST_ASSERT(strstr(t, "\r\nMessage-ID: <") != NULL);
	TEST_ASSERT(strstr(t, "\r\nMIME-Version: 1.0\r\n") != NULL);
	/* Only CRLF line ends. */
	for (size_t i = 0; i < out.len; i++)
		if (t[i] == '\n' && (i == 0 || t[i - 1] != '\r'))
			TEST_ASSERT(!"a bare LF");
	char *hdrs;
	char *status = check_structure(t, &hdrs);
	const char *permsg = "Reporting-MTA: dns; mail.example.org\r\n"
			     "X-Tern-Queue-ID: 0123456789AB\r\n"
			     "Arrival-Date: ";
	TEST_ASSERT(status != NULL && strncmp(status, permsg, strlen(permsg)) == 0);
	const char *group = status ? strstr(status, "\r\n\r\nFinal-Recipient:") : NULL;
	TEST_ASSERT(group != NULL);
	if (group != NULL) {
		const char *want = "\r\n\r\nFinal-Recipient: rfc822; bob@example.net\r\n"
				   "Action: failed\r\n"
				   "Status: 5.1.1\r\n"
				   "Remote-MTA: dns; mx.example.net\r\n"
				   "Diagnostic-Code: smtp; 550 5.1.1 <bob@example.net>: no such user\r\n"
				   "Last-Attempt-Date: ";
		TEST_ASSERT(strncmp(group, want, strlen(want)) == 0);
		/* One group: carol (deferred) and dave (delivered) are not in a bounce. */
		TEST_ASSERT(strstr(group + 4, "\r\n\r\n") == NULL ||
			    strstr(group + 4, "Final-Recipient") == NULL);
		TEST_ASSERT(strstr(group, "Will-Retry-Until") == NULL);
	}
	TEST_ASSERT_STREQ(hdrs, headers);
	free(status);
	free(hdrs);
	/* Once marked sent, there is nothing more to bounce. */
	dsn_mark_sent(msg, DSN_FAILURE);
	TEST_ASSERT(msg->rcpts[0].failure_notified);
	buf_reset(&out);
	TEST_ASSERT(dsn_build(msg, DSN_FAILURE, &opts, headers, &out) == DSN_NONE);
	TEST_ASSERT(out.len == 0);
	buf_free(&out);
	queue_msg_free(&msg);
}

static void
test_delay(void)
{
	struct queue_msg *msg = make_msg("alice@example.org");
	struct dsn_opts opts = { "mail.example.org", 1700007200, 1700432000, NULL };
	struct buf out = BUF_INIT;
	TEST_ASSERT(dsn_build(msg, DSN_DELAY, &opts, "", &out) == DSN_BUILT);
	TEST_ASSERT(strstr(out.data, "\r\nSubject: Delayed mail") != NULL);
	char *hdrs;
	char *status = check_structure(out.data, &hdrs);
	TEST_ASSERT(status != NULL && strstr(status, "\r\n\r\nFinal-Recipient: rfc822; carol@example.com\r\n"
						     "Action: delayed\r\n"
						     "Status: 4.4.1\r\n"
						     "Last-Attempt-Date: ") != NULL);
	TEST_ASSERT(status != NULL && strstr(status, "\r\nWill-Retry-Until: ") != NULL);
	/* Not an SMTP reply: no Diagnostic-Code, the text is in the human part. */
	TEST_ASSERT(status != NULL && strstr(status, "Diagnostic-Code") == NULL);
	TEST_ASSERT(strstr(out.data, "connect to mx.example.com: timed out") != NULL);
	TEST_ASSERT(status != NULL && strstr(status, "bob@") == NULL);
	free(status);
	free(hdrs);
	dsn_mark_sent(msg, DSN_DELAY);
	TEST_ASSERT(msg->rcpts[1].delay_notified && !msg->rcpts[0].delay_notified);
	buf_reset(&out);
	TEST_ASSERT(dsn_build(msg, DSN_DELAY, &opts, "", &out) == DSN_NONE);
	buf_free(&out);
	queue_msg_free(&msg);
}

static void
test_null_sender(void)
{
	struct queue_msg *msg = make_msg("");
	struct dsn_opts opts = { "mail.example.org", 1700007200, 0, NULL };
	struct buf out = BUF_INIT;
	/* RFC 5321 §6.1: never a notice to the null reverse-path. */
	TEST_ASSERT(dsn_build(msg, DSN_FAILURE, &opts, headers, &out) == DSN_NULL_SENDER);
	TEST_ASSERT(out.len == 0);
	/* The caller may send it to the postmaster instead. */
	opts.to = "postmaster@example.org";
	TEST_ASSERT(dsn_build(msg, DSN_FAILURE, &opts, headers, &out) == DSN_BUILT);
	TEST_ASSERT(strstr(out.data, "\r\nTo: <postmaster@example.org>\r\n") != NULL);
	buf_free(&out);
	queue_msg_free(&msg);
}

static void
test_status(void)
{
	struct queue_rcpt r = { 0 };
	char s[16];
	r.last_reply = "550 5.7.1 denied";
	dsn_status(&r, DSN_FAILURE, s);
	TEST_ASSERT_STREQ(s, "5.7.1");
	r.last_reply = "550 denied";
	dsn_status(&r, DSN_FAILURE, s);
	TEST_ASSERT_STREQ(s, "5.0.0");
	r.last_reply = "452-4.2.2 full";
	dsn_status(&r, DSN_DELAY, s);
	TEST_ASSERT_STREQ(s, "4.2.2"); /* RFC 2034 §4: each line of a reply carries it */
	r.last_reply = "452 4.2.2 full";
	dsn_status(&r, DSN_DELAY, s);
	TEST_ASSERT_STREQ(s, "4.2.2");
	/* A 4xx that finally failed: the queue lifetime ran out. */
	dsn_status(&r, DSN_FAILURE, s);
	TEST_ASSERT_STREQ(s, "4.4.7");
	r.last_reply = "550 5.1.10x bad";
	dsn_status(&r, DSN_FAILURE, s);
	TEST_ASSERT_STREQ(s, "5.0.0");
	r.last_reply = NULL;
	dsn_status(&r, DSN_FAILURE, s);
	TEST_ASSERT_STREQ(s, "5.4.4");
}

int
main(void)
{
	g_mime_init();
	test_run("failure", test_failure);
	test_run("delay", test_delay);
	test_run("null_sender", test_null_sender);
	test_run("status", test_status);
	g_mime_shutdown();
	return test_done();
}
