/*
 * One delivery job: the due recipients of one or more queued messages
 * that share a destination domain. Local ones are written into their
 * Maildir on the work pool; foreign ones go over SMTP to the hosts the route gives, in
 * order (RFC 5321 §5.1): the next address or host is tried while every
 * recipient still pending failed temporarily (no connection, 421, a 4xx
 * to all of them); a host that answered some recipients ends the search.
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth/aliases.h"
#include "auth/userdb.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "core/workpool.h"
#include "dns/dns.h"
#include "io/server.h"
#include "queue/queue_private.h"
#include "store/store.h"

static void
job_set(struct job_msg *m, size_t i, enum job_outcome out, const char *reply)
{
	m->out[i] = out;
	free(m->reply[i]);
	m->reply[i] = reply != NULL ? xstrdup(reply) : NULL;
}

/* Every recipient still pending gets this outcome. */
static void
job_set_pending(struct queue_job *job, enum job_outcome out, const char *reply)
{
	for (size_t i = 0; i < job->nmsgs; i++)
		for (size_t j = 0; j < job->msgs[i].n; j++)
			if (job->msgs[i].out[j] == OUT_PENDING)
				job_set(&job->msgs[i], j, out, reply);
}

/* ---- local recipients ---- */

/*
 * Local deliveries run on the work pool, as an SMTP session's do: each
 * copy is written and fsynced into a Maildir, and the loop that every
 * session shares must not wait for the disk. Who receives what is decided
 * on the loop first (users and aliases are reloaded there).
 */
struct local_rcpt {
	struct job_msg *m;
	size_t j;              /* the recipient's index in m */
	char **targets;        /* the users it goes to; NULL: decided already */
	size_t ntargets;
	enum job_outcome out;
	char *reply;
};

struct local_run {
	struct queue_job *job;
	struct store *store;
	struct local_rcpt *rcpts;
	size_t n;
};

static enum job_outcome
job_local_one(struct store *store, struct job_msg *m, const char *rcpt, char **reply_r)
{
	char *prefix = xasprintf("Return-Path: <%s>\r\nDelivered-To: %s\r\n", m->sender, rcpt);
	char *error = NULL;
	int r = store_deliver_at(store, rcpt, prefix, strlen(prefix), m->fd, m->offset,
				 m->size, &error);
	free(prefix);
	if (r == 0)
		return OUT_DELIVERED;
	*reply_r = xasprintf("451 4.3.0 local delivery failed: %s", error);
	free(error);
	return OUT_TEMPFAIL;
}

/*
 * A queued local recipient: a user, or an alias of local users (a bounce
 * to postmaster, a delivery retried). An alias reaching outside is not
 * followed from the queue: the SMTP session expands aliases before
 * queueing, so only notices to a local address come here that way.
 */
static void
job_local_decide(struct server *srv, struct job_msg *m, size_t j, struct local_rcpt *rc)
{
	const char *rcpt = m->rcpts[j];
	rc->m = m;
	rc->j = j;
	char **list = NULL;
	size_t n = srv->aliases != NULL ? aliases_expand(srv->aliases, rcpt, &list) : 0;
	if (n == 0 && userdb_exists(srv->users, rcpt)) {
		rc->targets = xcalloc(1, sizeof(char *));
		rc->targets[0] = xstrdup(rcpt);
		rc->ntargets = 1;
		return;
	}
	if (n == 0) {
		rc->out = OUT_PERMFAIL;
		rc->reply = xasprintf("550 5.1.1 <%s>: no such user here", rcpt);
		return;
	}
	for (size_t k = 0; k < n; k++) {
		const char *at = strrchr(list[k], '@');
		if (at == NULL || !config_is_local_domain(srv->cfg, at + 1) ||
		    !userdb_exists(srv->users, list[k])) {
			rc->out = OUT_PERMFAIL;
			rc->reply = xasprintf("550 5.1.1 <%s>: alias target <%s> not "
					      "deliverable from the queue", rcpt, list[k]);
			aliases_free_list(list, n);
			return;
		}
	}
	rc->targets = list;
	rc->ntargets = n;
}

static void
job_local_work(void *arg)
{
	struct local_run *lr = arg;
	for (size_t i = 0; i < lr->n; i++) {
		struct local_rcpt *rc = &lr->rcpts[i];
		if (rc->targets == NULL)
			continue;
		rc->out = OUT_DELIVERED;
		for (size_t k = 0; k < rc->ntargets && rc->out == OUT_DELIVERED; k++)
			rc->out = job_local_one(lr->store, rc->m, rc->targets[k], &rc->reply);
	}
}

static void
job_local_done(void *arg)
{
	struct local_run *lr = arg;
	for (size_t i = 0; i < lr->n; i++) {
		struct local_rcpt *rc = &lr->rcpts[i];
		job_set(rc->m, rc->j, rc->out, rc->reply);
		free(rc->reply);
		aliases_free_list(rc->targets, rc->ntargets);
	}
	free(lr->rcpts);
	struct queue_job *job = lr->job;
	free(lr);
	queue_job_done(job);
}

static void
job_local(struct queue_job *job)
{
	struct server *srv = job->r->srv;
	struct local_run *lr = xcalloc(1, sizeof(*lr));
	lr->job = job;
	lr->store = srv->store;
	for (size_t i = 0; i < job->nmsgs; i++)
		lr->n += job->msgs[i].n;
	lr->rcpts = xcalloc(lr->n + 1, sizeof(*lr->rcpts));
	size_t k = 0;
	for (size_t i = 0; i < job->nmsgs; i++) {
		for (size_t j = 0; j < job->msgs[i].n; j++)
			job_local_decide(srv, &job->msgs[i], j, &lr->rcpts[k++]);
	}
	workpool_submit(srv->pool, job_local_work, job_local_done, lr);
}

/* ---- relay ---- */

static void job_try_next(struct queue_job *job);

/* After a session: the next host, or the end of the job. */
static void
job_on_continue(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct queue_job *job = arg;
	if (job->r->stopping || !job->all_temp) {
		job_set_pending(job, OUT_TEMPFAIL, NULL);
		queue_job_done(job);
		return;
	}
	job_try_next(job);
}

/*
 * The session's results. The client still owns msgs until this returns
 * (it frees their results after), so the job goes on from the loop.
 */
static void
job_on_smtp_done(struct smtp_client_msg *msgs, size_t nmsg, void *ctx)
{
	struct queue_job *job = ctx;
	const struct dns_host *host = &job->route->hosts[job->host_i];
	bool all_temp = true;
	for (size_t c = 0; c < nmsg; c++) {
		struct job_msg *m = &job->msgs[job->cm_msg[c]];
		for (size_t k = 0; k < msgs[c].nrcpt; k++) {
			const struct smtp_rcpt_result *res = &msgs[c].results[k];
			size_t j = m->try_idx[k];
			enum job_outcome out = res->status == SMTP_RCPT_DELIVERED ? OUT_DELIVERED
				: res->status == SMTP_RCPT_PERMFAIL ? OUT_PERMFAIL : OUT_PENDING;
			all_temp &= out == OUT_PENDING;
			/* A temporary failure stays pending while other hosts remain. */
			job_set(m, j, out, res->text);
			free(m->remote);
			m->remote = xstrdup(host->name);
		}
	}
	job->all_temp = all_temp;
	struct timeval now = { 0, 0 };
	event_base_once(job->r->srv->base, -1, EV_TIMEOUT, job_on_continue, job, &now);
}

/* The next address of the route (with the port set), or NULL. */
static const struct sockaddr_storage *
job_next_addr(struct queue_job *job, const struct dns_host **host_r)
{
	const char *self = job->r->srv->cfg->hostname;
	while (job->host_i < job->route->nhosts) {
		const struct dns_host *h = &job->route->hosts[job->host_i];
		/* RFC 5321 §5.1: never deliver to ourselves through MX. */
		if (job->addr_i < h->naddrs && !(job->route->nhosts > 1 && !job->relayhost &&
						 strcasecmp(h->name, self) == 0)) {
			*host_r = h;
			return &h->addrs[job->addr_i++];
		}
		job->host_i++;
		job->addr_i = 0;
	}
	return NULL;
}

static void
job_try_next(struct queue_job *job)
{
	const struct dns_host *host;
	const struct sockaddr_storage *ss = job_next_addr(job, &host);
	if (ss == NULL) {
		/* Every host failed temporarily: the last replies stand. */
		for (size_t i = 0; i < job->nmsgs; i++) {
			struct job_msg *m = &job->msgs[i];
			for (size_t j = 0; j < m->n; j++) {
				if (m->out[j] != OUT_PENDING)
					continue;
				m->out[j] = OUT_TEMPFAIL;
				if (m->reply[j] == NULL)
					m->reply[j] = xasprintf("451 4.4.4 %s: no mail host to try",
								job->domain);
			}
		}
		queue_job_done(job);
		return;
	}
	struct sockaddr_storage addr = *ss;
	socklen_t len;
	if (addr.ss_family == AF_INET6) {
		((struct sockaddr_in6 *)&addr)->sin6_port = htons((uint16_t)job->port);
		len = sizeof(struct sockaddr_in6);
	} else {
		((struct sockaddr_in *)&addr)->sin_port = htons((uint16_t)job->port);
		len = sizeof(struct sockaddr_in);
	}
	size_t ncms = 0;
	for (size_t i = 0; i < job->nmsgs; i++) {
		struct job_msg *m = &job->msgs[i];
		size_t k = 0;
		for (size_t j = 0; j < m->n; j++) {
			if (m->out[j] != OUT_PENDING)
				continue;
			m->try_rcpts[k] = m->rcpts[j];
			m->try_idx[k++] = j;
		}
		if (k == 0)
			continue;
		job->cm_msg[ncms] = i;
		job->cms[ncms++] = (struct smtp_client_msg){
			.id = m->id, .sender = m->sender, .rcpts = m->try_rcpts, .nrcpt = k,
			.fd = m->fd, .offset = m->offset, .size = (size_t)m->size,
			.eightbit = m->eightbit,
		};
	}
	const struct config *cfg = job->r->srv->cfg;
	struct smtp_client_opts opts = {
		.helo_name = cfg->hostname,
		.host = host->name,
		.tls = job->relayhost ? SMTP_TLS_REQUIRED : SMTP_TLS_OPPORTUNISTIC,
		.tls_ctx = job->relayhost && job->r->tls_verify != NULL ? job->r->tls_verify
									 : job->r->tls_any,
		.auth_user = job->relayhost ? cfg->relayhost_user : NULL,
		.auth_pass = job->relayhost ? cfg->relayhost_password : NULL,
	};
	log_debug("queue: %s: trying %s port %u", job->domain, host->name, job->port);
	smtp_client_start(job->r->srv->base, (struct sockaddr *)&addr, len,
					&opts, job->cms, ncms, job_on_smtp_done, job);
}

/* The route is known: permanent and temporary DNS failures end the job. */
static void
job_on_route(struct dns_result *res, void *arg)
{
	struct queue_job *job = arg;
	job->query = NULL;
	job->route = res;
	if (res->kind != DNS_OK) {
		bool perm = res->kind == DNS_PERMANENT;
		/* RFC 7505 §4.1: a null MX is answered with 556 5.1.10. */
		unsigned code = !perm ? 451 : strcmp(res->status, "5.1.10") == 0 ? 556 : 550;
		char *reply = xasprintf("%u %s %s", code, res->status, res->error);
		job_set_pending(job, perm ? OUT_PERMFAIL : OUT_TEMPFAIL, reply);
		free(reply);
		queue_job_done(job);
		return;
	}
	job_try_next(job);
}

/* "host[:port]" of the relayhost; the host may be "[addr]". */
static char *
job_split_hostport(const char *s, unsigned *port_r)
{
	char *host = xstrdup(s);
	char *colon = strrchr(host, ':');
	char *bracket = strrchr(host, ']');
	*port_r = 25;
	if (colon != NULL && (bracket == NULL || colon > bracket)) {
		*colon = '\0';
		*port_r = (unsigned)strtoul(colon + 1, NULL, 10);
	}
	return host;
}

void
queue_job_run(struct queue_job *job)
{
	if (job->local) {
		job_local(job);
		return;
	}
	size_t most = 0;
	for (size_t i = 0; i < job->nmsgs; i++) {
		struct job_msg *m = &job->msgs[i];
		m->try_rcpts = xcalloc(m->n, sizeof(char *));
		m->try_idx = xcalloc(m->n, sizeof(size_t));
		most++;
	}
	job->cms = xcalloc(most, sizeof(*job->cms));
	job->cm_msg = xcalloc(most, sizeof(size_t));
	const struct config *cfg = job->r->srv->cfg;
	struct dns *dns = job->r->dns;
	for (size_t i = 0; i < cfg->ntransport; i++) {
		if (strcmp(cfg->transport[i].domain, job->domain) == 0) {
			job->port = cfg->transport[i].port;
			job->query = dns_host(dns, cfg->transport[i].host, job_on_route, job);
			return;
		}
	}
	if (cfg->relayhost != NULL) {
		char *host = job_split_hostport(cfg->relayhost, &job->port);
		job->relayhost = true;
		job->query = dns_host(dns, host, job_on_route, job);
		free(host);
		return;
	}
	job->port = cfg->relay_port;
	job->query = dns_route(dns, job->domain, job_on_route, job);
}

void
queue_job_free(struct queue_job *job)
{
	if (job->query != NULL)
		dns_query_cancel(&job->query);
	for (size_t i = 0; i < job->nmsgs; i++) {
		struct job_msg *m = &job->msgs[i];
		if (m->fd >= 0)
			close(m->fd);
		free(m->sender);
		for (size_t j = 0; j < m->n; j++) {
			free(m->rcpts[j]);
			free(m->reply[j]);
		}
		free(m->rcpts);
		free(m->reply);
		free(m->idx);
		free(m->out);
		free(m->remote);
		free(m->try_rcpts);
		free(m->try_idx);
	}
	free(job->msgs);
	free(job->cms);
	free(job->cm_msg);
	dns_result_free(&job->route);
	free(job->domain);
	free(job);
}
