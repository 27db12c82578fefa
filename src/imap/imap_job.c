/*
 * A command's blocking part on the work pool (core/workpool.h): writing
 * and fsyncing an appended message, fsyncing the directory that holds a
 * STORE's renames or an EXPUNGE's unlinks. The session reads no input
 * meanwhile, so its answers still come in order, while the loop goes on
 * serving every other session; on a slow disk one fsync no longer stalls
 * them all.
 *
 * done() runs on the loop with the session, or with NULL when the session
 * ended meanwhile (it must then only clean up). A session that ends hands
 * its parser to the job, so that the strings work() reads (an APPEND's
 * literal) stay valid until it returns.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "core/workpool.h"
#include "imap/imap_parse.h"
#include "imap/imap_private.h"
#include "io/conn.h"
#include "io/server.h"

struct imap_job {
	struct imap_session *s; /* NULL once the session ended */
	imap_job_fn *work;
	imap_job_done_fn *done;
	void *arg;
	struct imap_parser *parser; /* the ended session's */
};

static void
imap_job_work(void *arg)
{
	struct imap_job *job = arg;
	job->work(job->arg);
}

static void
imap_job_done(void *arg)
{
	struct imap_job *job = arg;
	struct imap_session *s = job->s;
	if (s != NULL)
		s->job = NULL;
	job->done(s, job->arg);
	/* Unless done() started the next step, the next command may come. */
	if (s != NULL && s->job == NULL && !conn_closing(s->conn))
		conn_resume(s->conn);
	imap_parser_free(&job->parser);
	free(job);
}

void
imap_job_start(struct imap_session *s, imap_job_fn *work, imap_job_done_fn *done,
	       void *arg)
{
	struct imap_job *job = xcalloc(1, sizeof(*job));
	job->s = s;
	job->work = work;
	job->done = done;
	job->arg = arg;
	s->job = job;
	conn_pause(s->conn);
	workpool_submit(s->srv->pool, imap_job_work, imap_job_done, job);
}

void
imap_job_orphan(struct imap_session *s)
{
	if (s->job == NULL)
		return;
	s->job->s = NULL;
	s->job->parser = s->parser;
	s->parser = NULL;
	s->job = NULL;
}

/* ---- the common job: the answer once cur/ (one or two) is durable ---- */

struct imap_reply_job {
	char *cur[2];   /* cur[1] may be NULL */
	int error;      /* errno of a failed fsync, else 0 */
	const char *failed; /* the directory it failed on */
	struct buf out;
	size_t tagged_at;
};

static void
imap_reply_job_work(void *arg)
{
	struct imap_reply_job *rj = arg;
	for (size_t i = 0; i < 2 && rj->cur[i] != NULL && rj->error == 0; i++) {
		if (fsync_dir(rj->cur[i]) < 0) {
			rj->error = errno;
			rj->failed = rj->cur[i];
		}
	}
}

static void
imap_reply_job_done(struct imap_session *s, void *arg)
{
	struct imap_reply_job *rj = arg;
	if (s != NULL && rj->error == 0) {
		conn_write(s->conn, rj->out.data, rj->out.len);
	} else if (s != NULL) {
		log_err("imap %s: user=%s fsync %s: %s", s->id, s->address, rj->failed,
			strerror(rj->error));
		conn_write(s->conn, rj->out.data, rj->tagged_at);
		conn_printf(s->conn, "%s NO [SERVERBUG] Changes may not be saved, try again\r\n",
			    s->tag);
	}
	buf_free(&rj->out);
	free(rj->cur[0]);
	free(rj->cur[1]);
	free(rj);
}

void
imap_reply_durable(struct imap_session *s, const char *dir, const char *also,
		   struct buf *out, size_t tagged_at)
{
	if (dir == NULL && also == NULL) {
		conn_write(s->conn, out->data, out->len);
		buf_free(out);
		return;
	}
	struct imap_reply_job *rj = xcalloc(1, sizeof(*rj));
	if (dir == NULL) {
		dir = also;
		also = NULL;
	}
	rj->cur[0] = xasprintf("%s/cur", dir);
	if (also != NULL && strcmp(also, dir) != 0)
		rj->cur[1] = xasprintf("%s/cur", also);
	rj->out = *out;
	rj->tagged_at = tagged_at;
	*out = (struct buf)BUF_INIT;
	imap_job_start(s, imap_reply_job_work, imap_reply_job_done, rj);
}
