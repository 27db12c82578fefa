/*
 * Password checks off the event loop: the lookup here on the loop, the
 * crypt() comparison on a work pool thread, the answer back on the loop.
 * The thread touches only the check's own copies (the users file may be
 * read again on the loop meanwhile: its entries are not thread-safe).
 */
#include <stdlib.h>
#include <string.h>

#include "auth/userdb.h"
#include "auth/userdb_private.h"
#include "core/log.h"
#include "core/util.h"
#include "core/workpool.h"

struct userdb_check {
	char *address;  /* canonical */
	char *setting;  /* the stored hash (or the dummy one) */
	char *password; /* wiped and freed by the thread once used */
	bool known;     /* the user exists */
	bool ok;        /* the thread's result */
	bool abandoned; /* the caller is gone: no callback (loop only) */
	userdb_check_fn *done;
	void *ctx;
};

static void
userdb_check_free(struct userdb_check *c)
{
	free(c->address);
	free(c->setting);
	if (c->password != NULL) {
		explicit_bzero(c->password, strlen(c->password));
		free(c->password);
	}
	free(c);
}

/* On a worker thread. */
static void
userdb_check_work(void *arg)
{
	struct userdb_check *c = arg;
	c->ok = userdb_hash_matches(c->password, c->setting) && c->known;
	explicit_bzero(c->password, strlen(c->password));
	free(c->password);
	c->password = NULL;
}

/* On the loop. */
static void
userdb_check_done(void *arg)
{
	struct userdb_check *c = arg;
	if (!c->abandoned) {
		char *address = NULL;
		if (c->ok) {
			address = c->address;
			c->address = NULL;
		}
		c->done(c->ok, address, c->ctx);
	} else {
		log_debug("password check for %s ended after its session", c->address);
	}
	userdb_check_free(c);
}

int
userdb_verify_async(struct userdb *db, struct workpool *pool, const char *login,
		    const char *password, userdb_check_fn *done, void *ctx,
		    struct userdb_check **check_r)
{
	char *address, *setting;
	int r = userdb_hash_lookup(db, login, &address, &setting);
	if (r < 0)
		return -1;
	struct userdb_check *c = xcalloc(1, sizeof(*c));
	c->address = address;
	c->setting = setting;
	c->password = xstrdup(password);
	c->known = r == 1;
	c->done = done;
	c->ctx = ctx;
	*check_r = c;
	workpool_submit(pool, userdb_check_work, userdb_check_done, c);
	return 0;
}

void
userdb_check_abandon(struct userdb_check **check)
{
	if (*check != NULL)
		(*check)->abandoned = true;
	*check = NULL;
}
