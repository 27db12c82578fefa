/*
 * The copies of a received message: one store_deliver per local recipient
 * (each with its own Return-Path and Delivered-To), one spool file for the
 * foreign recipients and for local ones whose Maildir failed. They are made
 * on a worker thread (core/workpool.h), several messages at once, because
 * each copy waits on fsyncs: the loop meanwhile serves everyone else, and
 * this session's next command waits (its input is paused) until the reply
 * is out, so pipelined commands still come after it (RFC 2920 §3.1).
 *
 * The worker reads only what this struct holds (moved out of the session
 * at the end of DATA) and the server's store, which does not change while
 * ternd runs (its name counter is atomic).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "core/workpool.h"
#include "io/conn.h"
#include "io/server.h"
#include "queue/queue_runner.h"
#include "queue/spool.h"
#include "smtp/smtp_private.h"
#include "store/store.h"

struct smtp_delivery {
	struct smtp_session *s;     /* NULL once the session is gone */
	struct server *srv;
	char *data_dir;             /* a copy: SIGHUP may swap the config */
	char msg_id[13];
	char *sender;
	struct smtp_target *targets;
	size_t ntargets;
	int fd;                     /* the received message */
	off_t size;
	/* Results, set by the worker. */
	bool spooled;               /* a queue file was made */
	bool failed;                /* a copy could not be made: 451 */
};

/* On the worker: the local copies; a failed one is spooled instead. */
static void
deliver_local(struct smtp_delivery *dv, bool *spool)
{
	for (size_t i = 0; i < dv->ntargets; i++) {
		const char *to = dv->targets[i].address;
		if (!dv->targets[i].local)
			continue;
		char *prefix = xasprintf("Return-Path: <%s>\r\nDelivered-To: %s\r\n",
					 dv->sender, to);
		char *error = NULL;
		if (store_deliver(dv->srv->store, to, prefix, strlen(prefix), dv->fd, dv->size,
				  &error) == 0) {
			log_info("%s: to=<%s> status=delivered", dv->msg_id, to);
		} else {
			log_warn("%s: to=<%s> local delivery failed, queueing it (%s)", dv->msg_id,
				 to, error != NULL ? error : "store error");
			spool[i] = true;
		}
		free(error);
		free(prefix);
	}
}

/* On the worker: foreign recipients and failed local ones, one queue file. */
static void
deliver_spool(struct smtp_delivery *dv, const bool *spool)
{
	char **rcpts = xcalloc(dv->ntargets + 1, sizeof(*rcpts));
	size_t n = 0;
	for (size_t i = 0; i < dv->ntargets; i++)
		if (!dv->targets[i].local || spool[i])
			rcpts[n++] = dv->targets[i].address;
	if (n > 0) {
		char queue_id[13];
		char *error = NULL;
		int ret = spool_enqueue(dv->data_dir, dv->sender, rcpts, n, dv->fd,
					dv->size, queue_id, &error);
		dv->spooled = ret == 0;
		dv->failed = ret < 0;
		for (size_t i = 0; i < n; i++) {
			if (ret == 0)
				log_info("%s: to=<%s> status=queued queue_id=%s", dv->msg_id,
					 rcpts[i], queue_id);
			else
				log_warn("%s: to=<%s> status=deferred (%s)", dv->msg_id,
					 rcpts[i], error);
		}
		free(error);
	}
	free(rcpts);
}

static void
deliver_work(void *arg)
{
	struct smtp_delivery *dv = arg;
	bool *spool = xcalloc(dv->ntargets + 1, sizeof(bool));
	deliver_local(dv, spool);
	deliver_spool(dv, spool);
	free(spool);
}

/* On the loop: the reply, and the session takes commands again. */
static void
deliver_done(void *arg)
{
	struct smtp_delivery *dv = arg;
	struct smtp_session *s = dv->s;
	if (dv->spooled)
		queue_runner_kick(dv->srv->queue);
	if (s != NULL) {
		s->delivery = NULL;
		if (!dv->failed)
			smtp_reply(s, "250 2.0.0 Ok: queued as %s", dv->msg_id);
		else
			smtp_reject(s, "451 4.3.0 Error: delivery failed, try again later");
		if (s->srv->draining) {
			/* The server is stopping: no next transaction (RFC 5321 §3.8). */
			smtp_reject(s, "421 4.3.2 %s Service shutting down", s->srv->cfg->hostname);
			conn_close(s->conn);
		} else {
			conn_resume(s->conn);
		}
	}
	close(dv->fd);
	for (size_t i = 0; i < dv->ntargets; i++)
		free(dv->targets[i].address);
	free(dv->targets);
	free(dv->sender);
	free(dv->data_dir);
	free(dv);
}

void
smtp_deliver_start(struct smtp_session *s, struct smtp_data *d)
{
	struct smtp_delivery *dv = xcalloc(1, sizeof(*dv));
	dv->s = s;
	dv->srv = s->srv;
	dv->data_dir = xstrdup(s->srv->cfg->data_dir);
	memcpy(dv->msg_id, d->msg_id, sizeof(dv->msg_id));
	/* The transaction's envelope and file move into the delivery. */
	dv->sender = s->sender;
	s->sender = NULL;
	dv->targets = s->targets;
	dv->ntargets = s->ntargets;
	s->targets = NULL;
	s->ntargets = 0;
	dv->fd = d->fd;
	d->fd = -1;
	dv->size = d->file_size;
	s->delivery = dv;
	conn_pause(s->conn);
	workpool_submit(s->srv->pool, deliver_work, deliver_done, dv);
}

void
smtp_deliver_orphan(struct smtp_session *s)
{
	if (s->delivery != NULL)
		s->delivery->s = NULL;
	s->delivery = NULL;
}
