#include "io/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "core/log.h"
#include "core/util.h"

struct listener {
	int fd;
	enum proto proto;
	session_start_fn *start;
	struct evconnlistener *ev;
	struct server *srv;
};

struct listeners {
	struct listener *items;
	size_t count;
};

/* "127.0.0.1:25", "[::1]:25" or "*:25". */
static int
split_host_port(const char *s, char **host_r, char **port_r)
{
	const char *colon;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':')
			return -1;
		*host_r = xstrndup(s + 1, (size_t)(close - s - 1));
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -1;
		*host_r = xstrndup(s, (size_t)(colon - s));
	}
	if (colon[1] == '\0' || strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
		free(*host_r);
		return -1;
	}
	*port_r = xstrdup(colon + 1);
	return 0;
}

static int
bind_one(const char *spec, int *fd_r, char **error_r)
{
	char *host, *port;
	if (split_host_port(spec, &host, &port) < 0) {
		*error_r = xasprintf("listen address '%s': expected ADDR:PORT", spec);
		return -1;
	}
	struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV,
				  .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai = NULL;
	const char *node = strcmp(host, "*") == 0 || host[0] == '\0' ? NULL : host;
	int gai = getaddrinfo(node, port, &hints, &ai);
	free(host);
	free(port);
	if (gai != 0) {
		*error_r = xasprintf("listen address '%s': %s", spec, gai_strerror(gai));
		return -1;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int one = 1;
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	}
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 511) < 0) {
		*error_r = xasprintf("cannot listen on %s: %s", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	*fd_r = fd;
	return 0;
}

int
listeners_bind(const struct config *cfg, session_start_fn *const starts[PROTO_COUNT],
	       struct listeners **ls_r, char **error_r)
{
	struct listeners *ls = xcalloc(1, sizeof(*ls));
	for (int p = 0; p < PROTO_COUNT; p++) {
		if (cfg->listen[p] == NULL)
			continue;
		if (starts[p] == NULL) {
			log_warn("listen.%s: this build does not serve %s yet; not listening",
				 proto_name(p), proto_name(p));
			continue;
		}
		char *copy = xstrdup(cfg->listen[p]), *save = NULL;
		for (char *spec = strtok_r(copy, " ,\t", &save); spec != NULL;
		     spec = strtok_r(NULL, " ,\t", &save)) {
			int fd;
			if (bind_one(spec, &fd, error_r) < 0) {
				free(copy);
				listeners_free(&ls);
				return -1;
			}
			ls->items = xrealloc(ls->items, (ls->count + 1) * sizeof(*ls->items));
			ls->items[ls->count++] = (struct listener){ fd, p, starts[p], NULL, NULL };
			log_info("listening for %s on %s", proto_name(p), spec);
		}
		free(copy);
	}
	*ls_r = ls;
	return 0;
}

static void
listener_on_accept(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *peer,
		   int peerlen, void *arg)
{
	struct listener *l = arg;
	(void)ev;
	l->start(l->srv, fd, peer, (socklen_t)peerlen, l->proto);
}

static void
listener_on_error(struct evconnlistener *ev, void *arg)
{
	struct listener *l = arg;
	(void)ev;
	/* EMFILE and the like: log and go on; the next accept may work. */
	log_err("accept on %s listener: %s", proto_name(l->proto), strerror(errno));
}

void
listeners_start(struct listeners *ls, struct server *srv)
{
	for (size_t i = 0; i < ls->count; i++) {
		struct listener *l = &ls->items[i];
		l->srv = srv;
		l->ev = evconnlistener_new(srv->base, listener_on_accept, l,
					   LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_CLOSE_ON_FREE, -1, l->fd);
		if (l->ev == NULL)
			abort();
		evconnlistener_set_error_cb(l->ev, listener_on_error);
	}
}

void
listeners_stop(struct listeners *ls)
{
	for (size_t i = 0; i < ls->count; i++) {
		if (ls->items[i].ev != NULL)
			evconnlistener_free(ls->items[i].ev);
		else if (ls->items[i].fd >= 0)
			close(ls->items[i].fd);
		ls->items[i].ev = NULL;
		ls->items[i].fd = -1;
	}
}

void
listeners_free(struct listeners **lsp)
{
	struct listeners *ls = *lsp;
	if (ls == NULL)
		return;
	listeners_stop(ls);
	free(ls->items);
	free(ls);
	*lsp = NULL;
}
