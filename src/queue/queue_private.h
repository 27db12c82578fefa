#ifndef TERN_QUEUE_QUEUE_PRIVATE_H
#define TERN_QUEUE_QUEUE_PRIVATE_H

/* Shared by the runner (queue_runner.c) and its jobs (queue_job.c). */
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "smtp/smtp_client.h"

struct dns;
struct dns_query;
struct dns_result;
struct event;
struct server;
struct ssl_ctx_st;

enum job_outcome { OUT_PENDING, OUT_DELIVERED, OUT_TEMPFAIL, OUT_PERMFAIL };

/* One queued message inside a job: the recipients of it that go the job's way. */
struct job_msg {
	char id[13];
	char *sender;
	int fd;                 /* the queue file */
	off_t offset, size;     /* the message inside it */
	bool eightbit;
	size_t n;
	char **rcpts;
	size_t *idx;            /* their index in the message's envelope */
	enum job_outcome *out;
	char **reply;           /* the last reply or error for each */
	char *remote;           /* the host that answered last */
	/* For the SMTP client: the recipients still pending in this attempt. */
	const char **try_rcpts;
	size_t *try_idx;
};

struct queue_job {
	struct queue_runner *r;
	char *domain;
	bool local;
	struct job_msg *msgs;
	size_t nmsgs;
	/* Relay: the hosts to try, in order. */
	struct dns_query *query;
	struct dns_result *route;
	size_t host_i, addr_i;
	unsigned port;
	bool relayhost;
	bool all_temp;          /* the last session failed every recipient for now */
	/* The session's messages: those with recipients still pending. */
	struct smtp_client_msg *cms;
	size_t *cm_msg;         /* cms[k] is msgs[cm_msg[k]] */
	struct queue_job *next;
};

struct queue_runner {
	struct server *srv;
	struct dns *dns;
	struct ssl_ctx_st *tls_any;     /* opportunistic STARTTLS: no verification */
	struct ssl_ctx_st *tls_verify;  /* the relayhost, with relay_tls_ca */
	struct event *timer;
	struct queue_job *jobs;
	unsigned njobs;
	bool stopping;
};

/* queue_job.c: runs a job; calls queue_job_done when every recipient has an outcome. */
void queue_job_run(struct queue_job *job);
void queue_job_free(struct queue_job *job);
/* queue_runner.c */
void queue_job_done(struct queue_job *job);

#endif
