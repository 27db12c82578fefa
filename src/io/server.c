#include "io/server.h"
#include "queue/queue_runner.h"
#include "core/workpool.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <sys/resource.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "auth/aliases.h"
#include "auth/authguard.h"
#include "auth/userdb.h"
#include "core/log.h"
#include "core/util.h"
#include "io/conn.h"
#include "io/listener.h"
#include "io/tls.h"
#include "store/index.h"
#include "store/store.h"

/*
 * Deliveries made at once. Each mostly waits on fsync, and a disk
 * completes several parallel fsyncs in about the time of one.
 */
#define SERVER_DELIVERY_THREADS 8

/* How long SIGTERM waits for open sessions before stopping anyway. */
#define DRAIN_SECONDS 10

struct server_runtime {
	struct server srv;
	struct listeners *listeners;
	struct config **old_cfgs; /* replaced by SIGHUP, kept until exit */
	size_t nold;
	struct tls_server **tls;  /* every certificate table loaded, likewise */
	size_t ntls;
	struct event *ev_drain;
	time_t drain_started;
	char *pid_path; /* DATA_DIR/ternd.pid as at start-up (SIGHUP may move data_dir) */
};

static int
drop_privileges(const char *user, char **error_r)
{
	struct passwd *pw = getpwnam(user);
	if (pw == NULL) {
		*error_r = xasprintf("run_as_user: no such user '%s'", user);
		return -1;
	}
	/* Groups first, then gid, then uid: after setuid we could not. */
	if (initgroups(user, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		*error_r = xasprintf("cannot become '%s': %s", user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		*error_r = xstrdup("privileges could be regained after dropping them");
		return -1;
	}
	return 0;
}

bool
proto_implicit_tls(enum proto proto)
{
	return proto == PROTO_SUBMISSIONS || proto == PROTO_POP3S || proto == PROTO_IMAPS;
}

bool
server_access_allowed(const struct config *cfg, enum proto proto, const struct sockaddr *peer)
{
	if (net_list_match(&cfg->access_allow[proto], peer))
		return true;
	return !net_list_match(&cfg->access_deny[proto], peer);
}

bool
server_plaintext_auth_ok(const struct server *srv, const struct conn *c)
{
	const struct config *cfg = srv->cfg;
	return conn_is_tls(c) ||
	       net_list_match(&cfg->plaintext_auth_networks, conn_peer_addr(c)) ||
	       net_list_match(&cfg->trusted_networks, conn_peer_addr(c));
}

/*
 * Loads the certificates. Every table loaded stays until exit: a handshake
 * begun with an old one still looks names up in it.
 */
static int
server_load_tls(struct server_runtime *rt, const struct config *cfg, char **error_r)
{
	struct tls_server *tls = tls_server_new(cfg, error_r);
	if (tls == NULL)
		return -1;
	rt->tls = xrealloc(rt->tls, (rt->ntls + 1) * sizeof(*rt->tls));
	rt->tls[rt->ntls++] = tls;
	rt->srv.tls = tls->ctx;
	return 0;
}

static int
server_open_data(struct server *srv, char **error_r)
{
	const struct config *cfg = srv->cfg;
	char *mail_root = xasprintf("%s/mail", cfg->data_dir);
	char *spool = xasprintf("%s/spool", cfg->data_dir);
	int r = 0;
	if (mkdir_p(mail_root, 0700) < 0 || mkdir_p(spool, 0700) < 0) {
		*error_r = xasprintf("%s: cannot create: %s", cfg->data_dir, strerror(errno));
		r = -1;
	} else if (access(cfg->users_file, R_OK) < 0) {
		/* Checked after the privilege drop: the user we run as must read it. */
		*error_r = xasprintf("%s: cannot read: %s", cfg->users_file, strerror(errno));
		r = -1;
	} else {
		srv->store = store_open(mail_root);
		srv->guard = authguard_new();
		srv->users = userdb_open(cfg->users_file, cfg->domains[0]);
		if (cfg->aliases_file != NULL) {
			srv->aliases = aliases_open(cfg->aliases_file, cfg->domains[0]);
			r = aliases_reload(srv->aliases, error_r);
		}
	}
	free(mail_root);
	free(spool);
	return r;
}

static void
server_reload(struct server_runtime *rt)
{
	char *error = NULL;
	struct config *cfg = config_load(rt->srv.cfg->path, &error);
	if (cfg == NULL) {
		log_err("reload failed, keeping the old config: %s", error);
		free(error);
		return;
	}
	/* Open sessions keep the SSL_CTX they started with (OpenSSL counts
	 * references); new ones get the reloaded certificates. */
	if (server_load_tls(rt, cfg, &error) < 0) {
		log_err("reload failed, keeping the old config: %s", error);
		free(error);
		config_free(&cfg);
		return;
	}
	rt->old_cfgs = xrealloc(rt->old_cfgs, (rt->nold + 1) * sizeof(*rt->old_cfgs));
	rt->old_cfgs[rt->nold++] = rt->srv.cfg;
	rt->srv.cfg = cfg;
	userdb_free(&rt->srv.users);
	rt->srv.users = userdb_open(cfg->users_file, cfg->domains[0]);
	aliases_free(&rt->srv.aliases);
	if (cfg->aliases_file != NULL) {
		rt->srv.aliases = aliases_open(cfg->aliases_file, cfg->domains[0]);
		if (aliases_reload(rt->srv.aliases, &error) < 0) {
			log_err("reload: %s", error);
			free(error);
		}
	}
	log_info("reloaded %s (listeners change only with a restart)", cfg->path);
	queue_runner_kick(rt->srv.queue); /* queue_hold or the schedule may have changed */
}

static void
server_on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
	struct server_runtime *rt = arg;
	(void)fd;
	(void)what;
	bool idle = conn_total_count() == 0 && queue_runner_idle(rt->srv.queue);
	if (idle || time(NULL) - rt->drain_started >= DRAIN_SECONDS) {
		if (!idle)
			log_warn("stopping with %u sessions and deliveries still open",
				 conn_total_count());
		event_base_loopbreak(rt->srv.base);
	}
}

static void
server_on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct server_runtime *rt = arg;
	(void)what;
	if (sig == SIGHUP) {
		server_reload(rt);
		return;
	}
	if (sig == SIGUSR1) {
		/* `tern queue flush` */
		log_info("signal %d: queue run requested", (int)sig);
		queue_runner_kick(rt->srv.queue);
		return;
	}
	if (rt->srv.draining)
		return;
	log_info("signal %d: no new sessions, stopping when the open ones end",
		 (int)sig);
	rt->srv.draining = true;
	queue_runner_stop(rt->srv.queue);
	listeners_stop(rt->listeners);
	conn_shutdown_all();
	rt->drain_started = time(NULL);
	rt->ev_drain = event_new(rt->srv.base, -1, EV_PERSIST, server_on_drain_tick, rt);
	struct timeval tv = { 0, 100 * 1000 };
	event_add(rt->ev_drain, &tv);
}

/*
 * DATA_DIR/ternd.pid names the running daemon, for `tern queue flush`
 * (SIGUSR1) and init scripts. Written after detaching (the pid changes)
 * and after the privilege drop (so the same user removes it at exit);
 * tmp + rename so a reader never sees half a number.
 */
static void
server_write_pid(struct server_runtime *rt)
{
	rt->pid_path = xasprintf("%s/ternd.pid", rt->srv.cfg->data_dir);
	char *tmp = xasprintf("%s.tmp", rt->pid_path);
	char text[32];
	int n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write_all(fd, text, (size_t)n) < 0 || close(fd) < 0 ||
	    rename(tmp, rt->pid_path) < 0) {
		log_warn("cannot write %s: %s", rt->pid_path, strerror(errno));
		unlink(tmp);
	}
	free(tmp);
}

/* Removes the pid file if it still names us (a second ternd may own it). */
static void
server_remove_pid(struct server_runtime *rt)
{
	char *text = read_file(rt->pid_path, 64, NULL);
	if (text != NULL && atol(text) == (long)getpid())
		unlink(rt->pid_path);
	free(text);
	free(rt->pid_path);
	rt->pid_path = NULL;
}

/*
 * Why trim by hand: a SELECT builds and frees tens of KiB (the sync's file
 * lists, SQLite's page cache) between allocations that live on (sessions,
 * connections), so the freed pages sit in the middle of the heap, where
 * glibc's automatic trimming (only the heap's top) never reaches them.
 * With thousands of sessions asleep in IDLE that is most of the server's
 * memory. malloc_trim releases every free page; its cost grows with the
 * heap, so it runs on a timer, at most once a second.
 */
#define SERVER_TRIM_DELAY_MS 1000

static void
server_on_trim(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	malloc_trim(0);
}

void
server_trim_soon(struct server *srv)
{
	if (srv->ev_trim == NULL &&
	    (srv->ev_trim = evtimer_new(srv->base, server_on_trim, srv)) == NULL)
		abort();
	if (evtimer_pending(srv->ev_trim, NULL))
		return;
	struct timeval tv = { .tv_sec = SERVER_TRIM_DELAY_MS / 1000,
			      .tv_usec = (SERVER_TRIM_DELAY_MS % 1000) * 1000 };
	evtimer_add(srv->ev_trim, &tv);
}

static void
server_cleanup(struct server_runtime *rt)
{
	listeners_free(&rt->listeners);
	/* First: the last deliveries' callbacks still reach the queue runner. */
	workpool_free(&rt->srv.pool);
	index_sync_use_pool(NULL);
	queue_runner_free(&rt->srv.queue);
	userdb_free(&rt->srv.users);
	aliases_free(&rt->srv.aliases);
	store_free(&rt->srv.store);
	index_close_unused();
	index_deliver_release();
	authguard_free(&rt->srv.guard);
	for (size_t i = 0; i < rt->ntls; i++)
		tls_server_free(&rt->tls[i]);
	free(rt->tls);
	for (size_t i = 0; i < rt->nold; i++)
		config_free(&rt->old_cfgs[i]);
	free(rt->old_cfgs);
	config_free(&rt->srv.cfg);
	if (rt->ev_drain != NULL)
		event_free(rt->ev_drain);
	if (rt->srv.ev_trim != NULL)
		event_free(rt->srv.ev_trim);
}

static int
server_start(struct server_runtime *rt, const char *config_path, bool detach,
	     session_start_fn *const starts[PROTO_COUNT], char **error_r)
{
	rt->srv.cfg = config_load(config_path, error_r);
	if (rt->srv.cfg == NULL)
		return -1;
	struct config *cfg = rt->srv.cfg;
	log_open("ternd", cfg->log_level, detach);
	/* The key is read before the privilege drop: it may be root's alone. */
	if (server_load_tls(rt, cfg, error_r) < 0)
		return -1;
	if (listeners_bind(cfg, starts, &rt->listeners, error_r) < 0)
		return -1;
	if (getuid() == 0) {
		if (cfg->run_as_user != NULL) {
			if (drop_privileges(cfg->run_as_user, error_r) < 0)
				return -1;
		} else {
			log_warn("running as root: set run_as_user to drop privileges");
		}
	}
	if (server_open_data(&rt->srv, error_r) < 0)
		return -1;
	if (detach && daemon(1, 0) < 0) {
		*error_r = xasprintf("cannot detach: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Every connection holds a descriptor (an IMAP session with a mailbox
 * open, a few): the soft limit, often 1024, is raised to the hard one so
 * that max_connections can be reached.
 */
static void
server_raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
server_main(const char *config_path, bool detach, session_start_fn *const starts[PROTO_COUNT])
{
	struct server_runtime rt = { 0 };
	char *error = NULL;
	signal(SIGPIPE, SIG_IGN);
	server_raise_fd_limit();
	log_open("ternd", LOG_LEVEL_INFO, 0);
	/*
	 * Signals are caught from before the ports are bound: a client may
	 * connect (and a test or an init system signal us) as soon as they
	 * are, and a SIGHUP must not meet its default action, which kills.
	 * libevent queues them until the loop runs.
	 */
	rt.srv.base = event_base_new();
	if (rt.srv.base == NULL)
		abort();
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };
	enum { NSIGS = sizeof(sigs) / sizeof(sigs[0]) };
	struct event *ev_sig[NSIGS];
	for (int i = 0; i < NSIGS; i++) {
		ev_sig[i] = evsignal_new(rt.srv.base, sigs[i], server_on_signal, &rt);
		event_add(ev_sig[i], NULL);
	}
	int r = server_start(&rt, config_path, detach, starts, &error);
	if (r == 0 && detach && event_reinit(rt.srv.base) < 0) {
		error = xstrdup("cannot restart the event loop after detaching");
		r = -1;
	}
	if (r == 0 && (rt.srv.queue = queue_runner_new(&rt.srv, &error)) == NULL)
		r = -1;
	/* After detaching: threads do not survive fork(). */
	if (r == 0) {
		/*
		 * glibc gives each thread that allocates an arena of its own
		 * (up to 8 a core), and each keeps its freed pages. The workers
		 * allocate little (a password check, a message's parse): they
		 * share one arena, the loop has the main one.
		 */
		mallopt(M_ARENA_MAX, 2);
		rt.srv.pool = workpool_new(rt.srv.base, SERVER_DELIVERY_THREADS);
		index_sync_use_pool(rt.srv.pool);
	}
	if (r < 0) {
		fprintf(stderr, "ternd: %s\n", error);
		free(error);
		for (int i = 0; i < NSIGS; i++)
			event_free(ev_sig[i]);
		server_cleanup(&rt);
		event_base_free(rt.srv.base);
		return 1;
	}
	listeners_start(rt.listeners, &rt.srv);
	server_write_pid(&rt);
	log_info("ternd started: %s, domains %s%s", rt.srv.cfg->path, rt.srv.cfg->domains[0],
		 rt.srv.cfg->ndomains > 1 ? " and more" : "");
	event_base_dispatch(rt.srv.base);
	conn_finish_all();
	server_remove_pid(&rt);
	log_info("ternd stopped");
	for (int i = 0; i < NSIGS; i++)
		event_free(ev_sig[i]);
	server_cleanup(&rt);
	event_base_free(rt.srv.base);
	return 0;
}
