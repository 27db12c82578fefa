/* The aliases file, /etc/aliases style, read again whenever it changes. */
#include "auth/aliases.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"

#define ALIASES_MAX_FILE (16u * 1024 * 1024)
/* How deep aliases may nest; deeper ones are taken as final addresses. */
#define ALIASES_MAX_DEPTH 8
/* One expansion yields at most this many addresses (a mailing list's size). */
#define ALIASES_MAX_RESULTS 10000

struct alias {
	char *name; /* "local@domain", or "local" for every served domain */
	char **targets; /* canonical addresses */
	size_t ntargets;
	int line;
};

struct alias_table {
	struct alias *items; /* sorted by name */
	size_t count;
	char **domains; /* the domains named on left sides: all served by us */
	size_t ndomains;
};

struct aliases {
	char *path;
	char *default_domain;
	struct stat st; /* of the file behind table, or of the bad file */
	bool loaded;
	char *error; /* set when the file as of st did not parse */
	struct alias_table table;
};

struct aliases *
aliases_open(const char *path, const char *default_domain)
{
	struct aliases *al = xcalloc(1, sizeof(*al));
	al->path = xstrdup(path);
	al->default_domain = default_domain ? str_lower(xstrdup(default_domain)) : NULL;
	return al;
}

static void
alias_table_clear(struct alias_table *t)
{
	for (size_t i = 0; i < t->count; i++) {
		free(t->items[i].name);
		aliases_free_list(t->items[i].targets, t->items[i].ntargets);
	}
	free(t->items);
	aliases_free_list(t->domains, t->ndomains);
	*t = (struct alias_table){ 0 };
}

void
aliases_free(struct aliases **alp)
{
	struct aliases *al = *alp;
	if (al == NULL)
		return;
	alias_table_clear(&al->table);
	free(al->path);
	free(al->default_domain);
	free(al->error);
	free(al);
	*alp = NULL;
}

void
aliases_free_list(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

/* "local" or "local@domain", without blanks, controls, quotes or '/'. */
static bool
aliases_name_valid(const char *s)
{
	const char *at = strchr(s, '@');
	if (*s == '\0' || at == s || (at != NULL && (at[1] == '\0' || strchr(at + 1, '@'))))
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p <= ' ' || *p == 0x7f || *p == '"' || *p == '/' || *p == '\\' ||
		    *p == ':' || *p == ',')
			return false;
	return true;
}

static void
strv_push(char ***v, size_t *n, char *s)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = s;
}

/* Splits the right side into canonical targets; -1 with *why_r on error. */
static int
aliases_parse_targets(const struct aliases *al, char *list, struct alias *a, char **why_r)
{
	char *save = NULL;
	for (char *t = strtok_r(list, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		t = str_lower(str_trim(t));
		if (*t == '\0')
			continue;
		if (*t == '|' || *t == '/' || strncmp(t, ":include:", 9) == 0) {
			*why_r = xasprintf("'%s': pipes, files and :include: are not supported", t);
			return -1;
		}
		if (!aliases_name_valid(t)) {
			*why_r = xasprintf("'%s' is not an address", t);
			return -1;
		}
		/* A bare local part on the right side means the default domain. */
		char *addr = strchr(t, '@') || al->default_domain == NULL ? xstrdup(t)
			   : xasprintf("%s@%s", t, al->default_domain);
		strv_push(&a->targets, &a->ntargets, addr);
	}
	if (a->ntargets == 0) {
		*why_r = xasprintf("alias '%s' has no target", a->name);
		return -1;
	}
	return 0;
}

static int
aliases_parse_entry(struct aliases *al, struct alias_table *t, char *text, int line,
		    char **why_r)
{
	char *colon = strchr(text, ':');
	if (colon == NULL) {
		*why_r = xstrdup("expected 'name: address, address, ...'");
		return -1;
	}
	*colon = '\0';
	char *name = str_lower(str_trim(text));
	if (!aliases_name_valid(name)) {
		*why_r = xasprintf("'%s' is not a valid alias name", name);
		return -1;
	}
	struct alias a = { xstrdup(name), NULL, 0, line };
	if (aliases_parse_targets(al, colon + 1, &a, why_r) < 0) {
		free(a.name);
		aliases_free_list(a.targets, a.ntargets);
		return -1;
	}
	t->items = xrealloc(t->items, (t->count + 1) * sizeof(*t->items));
	t->items[t->count++] = a;
	const char *at = strchr(name, '@');
	if (at != NULL)
		strv_push(&t->domains, &t->ndomains, xstrdup(at + 1));
	return 0;
}

static int
alias_cmp(const void *x, const void *y)
{
	return strcmp(((const struct alias *)x)->name, ((const struct alias *)y)->name);
}

/* Sorts by name for bsearch; a name defined twice is an error. */
static int
aliases_sort(struct alias_table *t, int *line_r, char **why_r)
{
	if (t->count == 0)
		return 0;
	qsort(t->items, t->count, sizeof(*t->items), alias_cmp);
	for (size_t i = 1; i < t->count; i++) {
		struct alias *a = &t->items[i - 1], *b = &t->items[i];
		if (strcmp(a->name, b->name) != 0)
			continue;
		struct alias *later = a->line > b->line ? a : b;
		struct alias *first = a->line > b->line ? b : a;
		*line_r = later->line;
		*why_r = xasprintf("'%s' is defined twice (first on line %d)",
				   later->name, first->line);
		return -1;
	}
	return 0;
}

/*
 * Parses the whole text into t. Lines that start with a blank continue
 * the entry above them (as in /etc/aliases), so a long list can be
 * written over several lines.
 */
static int
aliases_parse(struct aliases *al, char *text, struct alias_table *t, char **error_r)
{
	struct buf entry = BUF_INIT;
	int entry_line = 0, lineno = 0;
	char *why = NULL;
	for (char *line = text, *next; line != NULL; line = next) {
		lineno++;
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		bool continues = line[0] == ' ' || line[0] == '\t';
		char *s = str_trim(line);
		if (*s == '\0' || *s == '#')
			continue;
		if (continues) {
			if (entry_line == 0) {
				why = xstrdup("continuation line without an alias above it");
				entry_line = lineno;
				goto fail;
			}
			buf_appendf(&entry, ",%s", s);
			continue;
		}
		if (entry_line != 0 &&
		    aliases_parse_entry(al, t, entry.data, entry_line, &why) < 0)
			goto fail;
		buf_reset(&entry);
		buf_appends(&entry, s);
		entry_line = lineno;
	}
	if (entry_line != 0 && aliases_parse_entry(al, t, entry.data, entry_line, &why) < 0)
		goto fail;
	buf_free(&entry);
	if (aliases_sort(t, &entry_line, &why) < 0)
		goto fail;
	return 0;
fail:
	*error_r = xasprintf("%s:%d: %s", al->path, entry_line, why);
	free(why);
	buf_free(&entry);
	alias_table_clear(t);
	return -1;
}

static bool
aliases_same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/*
 * Loads the file if it changed since the last look. *changed_r tells the
 * caller whether an error is news or the same broken file as before.
 */
static int
aliases_refresh(struct aliases *al, bool *changed_r, char **error_r)
{
	struct stat st;
	*changed_r = true;
	if (stat(al->path, &st) < 0) {
		*error_r = xasprintf("%s: %s", al->path, strerror(errno));
		return -1;
	}
	if (al->loaded && aliases_same_file(&st, &al->st)) {
		*changed_r = false;
		if (al->error == NULL)
			return 0;
		*error_r = xstrdup(al->error);
		return -1;
	}
	char *text = read_file(al->path, ALIASES_MAX_FILE, NULL);
	if (text == NULL) {
		*error_r = xasprintf("%s: cannot read: %s", al->path, strerror(errno));
		return -1;
	}
	struct alias_table t = { 0 };
	int r = aliases_parse(al, text, &t, error_r);
	free(text);
	al->st = st;
	al->loaded = true;
	free(al->error);
	al->error = NULL;
	if (r < 0) {
		/* A broken file leaves the last good table in use. */
		al->error = xstrdup(*error_r);
		return -1;
	}
	alias_table_clear(&al->table);
	al->table = t;
	return 0;
}

int
aliases_reload(struct aliases *al, char **error_r)
{
	bool changed;
	return aliases_refresh(al, &changed, error_r);
}

static const struct alias *
aliases_lookup(const struct alias_table *t, const char *name)
{
	struct alias key = { .name = (char *)name };
	return bsearch(&key, t->items, t->count, sizeof(*t->items), alias_cmp);
}

struct aliases_walk {
	const struct aliases *al;
	const char *top_domain;
	const char *path[ALIASES_MAX_DEPTH]; /* the aliases being expanded */
	size_t depth;
	char **out;
	size_t n;
};

/* A served domain, as far as we can tell (see the report on header wishes). */
static bool
aliases_local_domain(const struct aliases_walk *w, const char *domain)
{
	const struct alias_table *t = &w->al->table;
	if (strcmp(domain, w->top_domain) == 0 ||
	    (w->al->default_domain && strcmp(domain, w->al->default_domain) == 0))
		return true;
	for (size_t i = 0; i < t->ndomains; i++)
		if (strcmp(domain, t->domains[i]) == 0)
			return true;
	return false;
}

/*
 * The alias for address: "local@domain" first, then a bare "local" when the
 * domain is one of ours (a bare name must not catch foreign targets).
 */
static const struct alias *
aliases_find(const struct aliases_walk *w, const char *address)
{
	const struct alias *a = aliases_lookup(&w->al->table, address);
	const char *at = strchr(address, '@');
	if (a != NULL || at == NULL || !aliases_local_domain(w, at + 1))
		return a;
	char *local = xstrndup(address, (size_t)(at - address));
	a = aliases_lookup(&w->al->table, local);
	free(local);
	return a;
}

static void
aliases_add_final(struct aliases_walk *w, const char *address)
{
	for (size_t i = 0; i < w->n; i++)
		if (strcmp(w->out[i], address) == 0)
			return;
	if (w->n == ALIASES_MAX_RESULTS) {
		log_warn("%s: expansion of %s stops at %d addresses", w->al->path,
			 w->path[0], ALIASES_MAX_RESULTS);
		return;
	}
	strv_push(&w->out, &w->n, xstrdup(address));
}

static bool
aliases_on_path(const struct aliases_walk *w, const char *address)
{
	for (size_t i = 0; i < w->depth; i++)
		if (strcmp(w->path[i], address) == 0)
			return true;
	return false;
}

static void
aliases_walk(struct aliases_walk *w, const char *address)
{
	const struct alias *a = aliases_find(w, address);
	if (a == NULL) {
		aliases_add_final(w, address);
		return;
	}
	if (w->depth == ALIASES_MAX_DEPTH) {
		log_warn("%s: %s: aliases nest deeper than %d levels; taken as final",
			 w->al->path, address, ALIASES_MAX_DEPTH);
		aliases_add_final(w, address);
		return;
	}
	w->path[w->depth++] = address;
	for (size_t i = 0; i < a->ntargets; i++) {
		const char *t = a->targets[i];
		/*
		 * "bob: bob, bob@elsewhere.org" keeps bob's own mailbox: an alias
		 * naming itself is final. A target that leads back to an alias
		 * being expanded (a loop) is final too, so a loop ends.
		 */
		if (strcmp(t, address) == 0) {
			aliases_add_final(w, t);
		} else if (aliases_on_path(w, t)) {
			log_warn("%s: alias loop through %s (line %d)", w->al->path, t, a->line);
			aliases_add_final(w, t);
		} else {
			aliases_walk(w, t);
		}
	}
	w->depth--;
}

size_t
aliases_expand(struct aliases *al, const char *address, char ***out_r)
{
	*out_r = NULL;
	if (al == NULL)
		return 0;
	char *error = NULL;
	bool changed;
	if (aliases_refresh(al, &changed, &error) < 0) {
		/* Logged once per change of the file; the old table stays in use. */
		if (changed)
			log_err("%s", error);
		free(error);
	}
	char *addr = str_lower(xstrdup(address));
	const char *at = strchr(addr, '@');
	struct aliases_walk w = { .al = al, .top_domain = at ? at + 1 : "" };
	/* The caller checked that the address is in a served domain. */
	const struct alias *a = aliases_find(&w, addr);
	if (a == NULL) {
		free(addr);
		return 0;
	}
	aliases_walk(&w, addr);
	free(addr);
	*out_r = w.out;
	return w.n;
}
