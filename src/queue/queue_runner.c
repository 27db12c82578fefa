/*
 * The scheduler (see queue_runner.h). A scan reads every queue file's
 * envelope and state; recipients that are due and not already in a job
 * are grouped by domain into jobs, within queue_concurrency jobs in all and
 * queue_domain_concurrency per domain. When a job ends, each of its
 * messages is reloaded under its lock, its recipients marked, notices
 * spooled, and the state saved (or the message removed when nothing is
 * left) before the next scan.
 */
#include "queue/queue_runner.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "dns/dns.h"
#include "io/server.h"
#include "io/tls.h"
#include "queue/dsn.h"
#include "queue/queue_msg.h"
#include "queue/queue_private.h"
#include "queue/spool.h"

/* How soon a kick or a finished job leads to a scan. */
#define RUNNER_KICK_MS 10
/* Messages one SMTP session carries at most. */
#define RUNNER_JOB_MSGS 20
/* The longest a scan waits even when nothing is due (a hand-made file). */
#define RUNNER_IDLE_S 300

static void runner_on_timer(evutil_socket_t fd, short what, void *arg);

struct queue_runner *
queue_runner_new(struct server *srv, char **error_r)
{
	struct dns *dns = dns_new(srv->base, srv->cfg->dns_servers, error_r);
	if (dns == NULL)
		return NULL;
	struct queue_runner *r = xcalloc(1, sizeof(*r));
	r->srv = srv;
	r->dns = dns;
	r->tls_any = tls_client_ctx_new(false, NULL, error_r);
	if (r->tls_any != NULL && srv->cfg->relay_tls_ca != NULL)
		r->tls_verify = tls_client_ctx_new(true, srv->cfg->relay_tls_ca, error_r);
	if (r->tls_any == NULL || (srv->cfg->relay_tls_ca != NULL && r->tls_verify == NULL)) {
		queue_runner_free(&r);
		return NULL;
	}
	r->timer = evtimer_new(srv->base, runner_on_timer, r);
	queue_runner_kick(r);
	return r;
}

static void runner_finish_msg(struct queue_runner *r, struct queue_job *job,
			      struct job_msg *m);

void
queue_runner_free(struct queue_runner **rp)
{
	struct queue_runner *r = *rp;
	if (r == NULL)
		return;
	while (r->jobs != NULL) {
		struct queue_job *job = r->jobs;
		r->jobs = job->next;
		/* What a stopped session already got done is recorded, so that a
		   normal restart delivers nothing twice. */
		for (size_t i = 0; i < job->nmsgs; i++) {
			struct job_msg *m = &job->msgs[i];
			bool any = false;
			for (size_t j = 0; j < m->n; j++)
				any |= m->out[j] != OUT_PENDING;
			if (any)
				runner_finish_msg(r, job, m);
		}
		queue_job_free(job);
	}
	if (r->timer != NULL)
		event_free(r->timer);
	dns_free(&r->dns);
	SSL_CTX_free(r->tls_any);
	SSL_CTX_free(r->tls_verify);
	free(r);
	*rp = NULL;
}

static void
runner_schedule(struct queue_runner *r, long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_del(r->timer);
	evtimer_add(r->timer, &tv);
}

void
queue_runner_kick(struct queue_runner *r)
{
	if (r != NULL && !r->stopping)
		runner_schedule(r, RUNNER_KICK_MS);
}

void
queue_runner_stop(struct queue_runner *r)
{
	if (r == NULL)
		return;
	r->stopping = true;
	evtimer_del(r->timer);
}

bool
queue_runner_idle(const struct queue_runner *r)
{
	return r == NULL || r->jobs == NULL;
}

/* ---- the end of a job ---- */

/* The retry interval after the given number of attempts: doubling. */
static time_t
runner_backoff(const struct config *cfg, unsigned attempts)
{
	time_t t = cfg->queue_retry_min > 0 ? cfg->queue_retry_min : 1;
	for (unsigned i = 1; i < attempts && t < (time_t)cfg->queue_retry_max; i++)
		t *= 2;
	return t < (time_t)cfg->queue_retry_max ? t : (time_t)cfg->queue_retry_max;
}

/* Spools a notice (sender "<>") to one recipient. */
static int
runner_spool_notice(struct queue_runner *r, const struct buf *text, const char *to,
		    char **error_r)
{
	char *dir = xasprintf("%s/spool/tmp", r->srv->cfg->data_dir);
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	free(dir);
	if (fd < 0 || write_all(fd, text->data, text->len) < 0) {
		*error_r = xasprintf("notice: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	char *rcpts[1] = { (char *)to };
	char id[13];
	int ret = spool_enqueue(r->srv->cfg->data_dir, "", rcpts, 1, fd, (off_t)text->len, id,
				error_r);
	close(fd);
	if (ret == 0) {
		log_info("queue: notice queued as %s to=<%s>", id, to);
		queue_runner_kick(r);
	}
	return ret;
}

/*
 * The bounce or delay notice of a message, if one is due. A message from
 * the null sender gets none (RFC 5321 §6.1); its failures go to the
 * postmaster instead, unless they are the postmaster's own.
 */
static void
runner_notify(struct queue_runner *r, struct queue_msg *msg, enum dsn_kind kind)
{
	const struct config *cfg = r->srv->cfg;
	struct buf headers = BUF_INIT, out = BUF_INIT;
	char *error = NULL;
	if (queue_msg_read_headers(msg, 64 * 1024, &headers, &error) < 0) {
		log_warn("queue %s: headers for the notice: %s", msg->id, error);
		free(error);
		error = NULL;
	}
	char *postmaster = xasprintf("postmaster@%s", cfg->domains[0]);
	struct dsn_opts opts = {
		.hostname = cfg->hostname,
		.now = time(NULL),
		.retry_until = msg->arrival + cfg->queue_lifetime,
	};
	const char *to = msg->sender;
	enum dsn_result res = dsn_build(msg, kind, &opts, headers.data != NULL ? headers.data : "",
					&out);
	if (res == DSN_NULL_SENDER && kind == DSN_FAILURE) {
		bool own = false;
		for (size_t i = 0; i < msg->nrcpts; i++)
			own |= strcasecmp(msg->rcpts[i].address, postmaster) == 0;
		if (!own) {
			opts.to = to = postmaster;
			res = dsn_build(msg, kind, &opts, headers.data != NULL ? headers.data : "",
					&out);
		}
	}
	if (res == DSN_BUILT && runner_spool_notice(r, &out, to, &error) < 0) {
		/* Not marked as sent: the next attempt tries again. */
		log_err("queue %s: notice not queued: %s", msg->id, error);
		free(error);
	} else {
		if (res != DSN_BUILT && res != DSN_NONE)
			log_info("queue %s: no notice for a bounce (null sender)", msg->id);
		dsn_mark_sent(msg, kind);
	}
	free(postmaster);
	buf_free(&headers);
	buf_free(&out);
}

/* Marks what the job did to one message and saves it, under its lock. */
static void
runner_finish_msg(struct queue_runner *r, struct queue_job *job, struct job_msg *m)
{
	const struct config *cfg = r->srv->cfg;
	const char *data_dir = cfg->data_dir;
	char *error = NULL;
	int lock = queue_msg_lock(data_dir, m->id, &error);
	struct queue_msg *msg = NULL;
	if (lock < 0 || queue_msg_load(data_dir, m->id, &msg, &error) < 0) {
		/* Deleted meanwhile (tern queue del): nothing to record. */
		log_warn("queue %s: %s", m->id, error);
		free(error);
		if (lock >= 0)
			close(lock);
		return;
	}
	time_t now = time(NULL);
	bool expired = now - msg->arrival >= (time_t)cfg->queue_lifetime;
	for (size_t j = 0; j < m->n; j++) {
		size_t i = m->idx[j];
		if (i >= msg->nrcpts)
			continue;
		const char *to = m->rcpts[j];
		switch (m->out[j]) {
		case OUT_DELIVERED:
			queue_msg_mark(msg, i, QUEUE_RCPT_DELIVERED, m->reply[j], m->remote, 0);
			log_info("queue %s: to=<%s> relay=%s status=sent (%s)", m->id, to,
				 job->local ? "local" : m->remote != NULL ? m->remote : "?",
				 m->reply[j] != NULL ? m->reply[j] : "delivered");
			break;
		case OUT_PERMFAIL:
			queue_msg_mark(msg, i, QUEUE_RCPT_FAILED, m->reply[j], m->remote, 0);
			log_info("queue %s: to=<%s> status=bounced (%s)", m->id, to, m->reply[j]);
			break;
		default:
			if (expired) {
				char *why = xasprintf("%s (gave up after %u days)",
						      m->reply[j] != NULL ? m->reply[j] : "no answer",
						      cfg->queue_lifetime / 86400);
				queue_msg_mark(msg, i, QUEUE_RCPT_FAILED, why, m->remote, 0);
				log_info("queue %s: to=<%s> status=expired (%s)", m->id, to, why);
				free(why);
				break;
			}
			time_t next = now + runner_backoff(cfg, msg->rcpts[i].attempts + 1);
			queue_msg_mark(msg, i, QUEUE_RCPT_DEFERRED, m->reply[j], m->remote, next);
			log_info("queue %s: to=<%s> status=deferred (%s)", m->id, to,
				 m->reply[j] != NULL ? m->reply[j] : "?");
			break;
		}
	}
	runner_notify(r, msg, DSN_FAILURE);
	if (now - msg->arrival >= (time_t)cfg->queue_delay_warning)
		runner_notify(r, msg, DSN_DELAY);
	int ret = queue_msg_finished(msg) ? queue_msg_remove(data_dir, m->id, &error)
					  : queue_msg_save(msg, &error);
	if (ret < 0) {
		log_err("queue %s: state not saved: %s", m->id, error);
		free(error);
	}
	queue_msg_free(&msg);
	close(lock);
}

void
queue_job_done(struct queue_job *job)
{
	struct queue_runner *r = job->r;
	for (size_t i = 0; i < job->nmsgs; i++)
		runner_finish_msg(r, job, &job->msgs[i]);
	for (struct queue_job **p = &r->jobs; *p != NULL; p = &(*p)->next) {
		if (*p == job) {
			*p = job->next;
			break;
		}
	}
	r->njobs--;
	queue_job_free(job);
	queue_runner_kick(r);
}

/* ---- the scan ---- */

static bool
runner_busy(const struct queue_runner *r, const char *id)
{
	for (const struct queue_job *job = r->jobs; job != NULL; job = job->next)
		for (size_t i = 0; i < job->nmsgs; i++)
			if (strcmp(job->msgs[i].id, id) == 0)
				return true;
	return false;
}

static unsigned
runner_domain_jobs(const struct queue_runner *r, const char *domain)
{
	unsigned n = 0;
	for (const struct queue_job *job = r->jobs; job != NULL; job = job->next)
		n += strcmp(job->domain, domain) == 0;
	return n;
}

/* Whether the message has bytes above 127 (BODY=8BITMIME needed). */
static bool
runner_eightbit(int fd, off_t offset, off_t size)
{
	char buf[65536];
	off_t done = 0;
	while (done < size) {
		size_t want = size - done < (off_t)sizeof(buf) ? (size_t)(size - done) : sizeof(buf);
		ssize_t n = pread(fd, buf, want, offset + done);
		if (n <= 0)
			return false;
		for (ssize_t i = 0; i < n; i++)
			if ((unsigned char)buf[i] & 0x80)
				return true;
		done += n;
	}
	return false;
}

static const char *
runner_domain_of(const char *address)
{
	const char *at = strrchr(address, '@');
	return at != NULL ? at + 1 : "";
}

/* The job for a domain built in this scan, made if new; NULL past the limits. */
static struct queue_job *
runner_job_for(struct queue_runner *r, struct queue_job **fresh, const char *domain)
{
	for (struct queue_job *job = *fresh; job != NULL; job = job->next)
		if (strcasecmp(job->domain, domain) == 0 && job->nmsgs < RUNNER_JOB_MSGS)
			return job;
	const struct config *cfg = r->srv->cfg;
	unsigned in_scan = 0, same = 0;
	for (struct queue_job *job = *fresh; job != NULL; job = job->next) {
		in_scan++;
		same += strcasecmp(job->domain, domain) == 0;
	}
	if (r->njobs + in_scan >= cfg->queue_concurrency ||
	    runner_domain_jobs(r, domain) + same >= cfg->queue_domain_concurrency)
		return NULL;
	struct queue_job *job = xcalloc(1, sizeof(*job));
	job->r = r;
	job->domain = str_lower(xstrdup(domain));
	job->local = config_is_local_domain(cfg, domain);
	job->next = *fresh;
	*fresh = job;
	return job;
}

/* Adds a message's due recipients for one domain to a job. */
static void
runner_job_add(struct queue_job *job, const struct queue_msg *msg, int fd, bool eightbit,
	       const bool *take)
{
	job->msgs = xrealloc(job->msgs, (job->nmsgs + 1) * sizeof(*job->msgs));
	struct job_msg *m = &job->msgs[job->nmsgs++];
	memset(m, 0, sizeof(*m));
	memcpy(m->id, msg->id, sizeof(m->id));
	m->sender = xstrdup(msg->sender);
	m->fd = fd;
	m->offset = msg->msg_offset;
	m->size = msg->msg_size;
	m->eightbit = eightbit;
	m->rcpts = xcalloc(msg->nrcpts, sizeof(char *));
	m->idx = xcalloc(msg->nrcpts, sizeof(size_t));
	m->out = xcalloc(msg->nrcpts, sizeof(*m->out));
	m->reply = xcalloc(msg->nrcpts, sizeof(char *));
	for (size_t i = 0; i < msg->nrcpts; i++) {
		if (!take[i])
			continue;
		m->rcpts[m->n] = xstrdup(msg->rcpts[i].address);
		m->idx[m->n++] = i;
	}
}

static bool
runner_due(const struct queue_rcpt *rc, time_t now)
{
	return rc->state == QUEUE_RCPT_PENDING ||
	       (rc->state == QUEUE_RCPT_DEFERRED && rc->next_attempt <= now);
}

/*
 * A message with too many Received: fields is looping (RFC 5321 §6.3):
 * every recipient fails with 5.4.6 and the sender hears of it.
 */
static void
runner_loop_bounce(struct queue_runner *r, struct queue_msg *msg)
{
	char *error = NULL;
	int lock = queue_msg_lock(r->srv->cfg->data_dir, msg->id, &error);
	if (lock < 0) {
		free(error);
		return;
	}
	char *why = xasprintf("554 5.4.6 Too many Received: header fields (%u): mail loop",
			      msg->received_count);
	for (size_t i = 0; i < msg->nrcpts; i++)
		if (runner_due(&msg->rcpts[i], (time_t)-1 >> 1))
			queue_msg_mark(msg, i, QUEUE_RCPT_FAILED, why, NULL, 0);
	log_info("queue %s: status=bounced (%s)", msg->id, why);
	free(why);
	runner_notify(r, msg, DSN_FAILURE);
	if ((queue_msg_finished(msg) ? queue_msg_remove(r->srv->cfg->data_dir, msg->id, &error)
				     : queue_msg_save(msg, &error)) < 0) {
		log_err("queue %s: %s", msg->id, error);
		free(error);
	}
	close(lock);
}

/* Puts the message's due recipients into jobs; the earliest later time in *next. */
static void
runner_take(struct queue_runner *r, struct queue_job **fresh, struct queue_msg *msg,
	    time_t now, time_t *next)
{
	const struct config *cfg = r->srv->cfg;
	if (cfg->max_received > 0 && msg->received_count > cfg->max_received) {
		runner_loop_bounce(r, msg);
		return;
	}
	bool *take = xcalloc(msg->nrcpts, sizeof(bool));
	bool *placed = xcalloc(msg->nrcpts, sizeof(bool));
	bool eightbit = false, checked = false;
	for (size_t i = 0; i < msg->nrcpts; i++) {
		const struct queue_rcpt *rc = &msg->rcpts[i];
		if (rc->state == QUEUE_RCPT_DEFERRED && rc->next_attempt > now &&
		    (*next == 0 || rc->next_attempt < *next))
			*next = rc->next_attempt;
		if (placed[i] || !runner_due(rc, now))
			continue;
		/* All due recipients of this domain go into one job. */
		const char *domain = runner_domain_of(rc->address);
		memset(take, 0, msg->nrcpts * sizeof(bool));
		for (size_t k = i; k < msg->nrcpts; k++) {
			if (!placed[k] && runner_due(&msg->rcpts[k], now) &&
			    strcasecmp(runner_domain_of(msg->rcpts[k].address), domain) == 0)
				take[k] = placed[k] = true;
		}
		struct queue_job *job = runner_job_for(r, fresh, domain);
		if (job == NULL)
			continue; /* at a limit: a later scan */
		char *error = NULL;
		int fd = queue_msg_open(msg, &error);
		if (fd < 0) {
			log_err("queue %s: %s", msg->id, error);
			free(error);
			break;
		}
		if (!checked) {
			eightbit = runner_eightbit(fd, msg->msg_offset, msg->msg_size);
			checked = true;
		}
		runner_job_add(job, msg, fd, eightbit, take);
	}
	free(take);
	free(placed);
}

static void
runner_scan(struct queue_runner *r)
{
	if (r->srv->cfg->queue_hold) {
		/* SIGHUP after the setting changes brings a scan (kick). */
		return;
	}
	const char *data_dir = r->srv->cfg->data_dir;
	char **ids = NULL;
	size_t n = 0;
	char *error = NULL;
	time_t now = time(NULL), next = 0;
	if (queue_list_ids(data_dir, &ids, &n, &error) < 0) {
		log_err("queue: %s", error);
		free(error);
		runner_schedule(r, 60 * 1000);
		return;
	}
	struct queue_job *fresh = NULL;
	for (size_t i = 0; i < n; i++) {
		if (runner_busy(r, ids[i]))
			continue;
		struct queue_msg *msg = NULL;
		if (queue_msg_load(data_dir, ids[i], &msg, &error) < 0) {
			/* Removed meanwhile, or damaged: say so and go on. */
			if (errno != ENOENT)
				log_err("queue %s: %s", ids[i], error);
			free(error);
			error = NULL;
			continue;
		}
		runner_take(r, &fresh, msg, now, &next);
		queue_msg_free(&msg);
	}
	queue_ids_free(ids, n);
	/* Start them only now: a job may end (and kick) at once. */
	while (fresh != NULL) {
		struct queue_job *job = fresh;
		fresh = job->next;
		job->next = r->jobs;
		r->jobs = job;
		r->njobs++;
		queue_job_run(job);
	}
	if (r->stopping)
		return;
	long wait = next > now ? (long)(next - now) : RUNNER_IDLE_S;
	if (wait > RUNNER_IDLE_S)
		wait = RUNNER_IDLE_S;
	if (!evtimer_pending(r->timer, NULL))
		runner_schedule(r, wait * 1000);
}

static void
runner_on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct queue_runner *r = arg;
	if (!r->stopping)
		runner_scan(r);
}
