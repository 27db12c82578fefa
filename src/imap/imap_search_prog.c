/*
 * The SEARCH program: parsing the search keys of RFC 3501 §6.4.4 (grammar
 * in §9, "search-key") into a tree, and matching it against a message.
 * RETURN options are those of ESEARCH (RFC 4731 §3.1).
 */
#include "imap/imap_search.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "imap/imap_parse.h"
#include "imap/imap_seqset.h"
#include "mime/mime_search.h"

/* Nesting through NOT, OR and parentheses; deeper is refused with BAD. */
#define SK_DEPTH_MAX 64
/* Keys in one program, all levels. */
#define SK_NODES_MAX 4096

enum sk_kind {
	SK_ALL, SK_FLAG, SK_KEYWORD, SK_RECENT, SK_NEW, SK_OLD, SK_LARGER, SK_SMALLER,
	SK_SEQ, SK_UID, SK_DATE, SK_SENTDATE, SK_HEADER, SK_BODY, SK_TEXT,
	SK_NOT, SK_AND, SK_OR,
};

enum sk_cmp { SK_BEFORE, SK_ON, SK_SINCE };

/* What a key needs: the index only, the header, or the body too. */
enum sk_cost { COST_INDEX, COST_HEADER, COST_BODY };

struct sk {
	enum sk_kind kind;
	enum sk_cost cost;
	char flag;            /* SK_FLAG: the index letter */
	bool want;            /* SK_FLAG, SK_KEYWORD: set, or not set (UN...) */
	enum sk_cmp cmp;      /* SK_DATE, SK_SENTDATE */
	int64_t day;          /* days since 1970-01-01 */
	uint64_t n;           /* SK_LARGER, SK_SMALLER */
	char *name;           /* SK_KEYWORD keyword, SK_HEADER field */
	char *needle;         /* text keys: the folded string */
	struct imap_seqset *set; /* SK_SEQ, SK_UID */
	struct sk **kids;     /* SK_NOT (1), SK_OR (2), SK_AND */
	size_t nkids;
};

struct imap_search {
	struct sk *root;
	bool esearch;
	unsigned ret;
};

/* The argument a key takes (§9 search-key). */
enum sk_arg { ARG_NONE, ARG_ASTRING, ARG_HEADER, ARG_DATE, ARG_NUMBER, ARG_SET, ARG_FLAG,
	      ARG_KEY, ARG_KEY2 };

static const struct sk_def {
	const char *name;
	enum sk_kind kind;
	enum sk_arg arg;
	char flag;
	bool want;
	enum sk_cmp cmp;
	const char *field;
} sk_defs[] = {
	{ .name = "ALL", .kind = SK_ALL },
	{ .name = "ANSWERED", .kind = SK_FLAG, .flag = 'R', .want = true },
	{ .name = "DELETED", .kind = SK_FLAG, .flag = 'T', .want = true },
	{ .name = "DRAFT", .kind = SK_FLAG, .flag = 'D', .want = true },
	{ .name = "FLAGGED", .kind = SK_FLAG, .flag = 'F', .want = true },
	{ .name = "SEEN", .kind = SK_FLAG, .flag = 'S', .want = true },
	{ .name = "UNANSWERED", .kind = SK_FLAG, .flag = 'R' },
	{ .name = "UNDELETED", .kind = SK_FLAG, .flag = 'T' },
	{ .name = "UNDRAFT", .kind = SK_FLAG, .flag = 'D' },
	{ .name = "UNFLAGGED", .kind = SK_FLAG, .flag = 'F' },
	{ .name = "UNSEEN", .kind = SK_FLAG, .flag = 'S' },
	{ .name = "KEYWORD", .kind = SK_KEYWORD, .arg = ARG_FLAG, .want = true },
	{ .name = "UNKEYWORD", .kind = SK_KEYWORD, .arg = ARG_FLAG },
	{ .name = "RECENT", .kind = SK_RECENT },
	{ .name = "NEW", .kind = SK_NEW },
	{ .name = "OLD", .kind = SK_OLD },
	{ .name = "LARGER", .kind = SK_LARGER, .arg = ARG_NUMBER },
	{ .name = "SMALLER", .kind = SK_SMALLER, .arg = ARG_NUMBER },
	{ .name = "UID", .kind = SK_UID, .arg = ARG_SET },
	{ .name = "BEFORE", .kind = SK_DATE, .arg = ARG_DATE, .cmp = SK_BEFORE },
	{ .name = "ON", .kind = SK_DATE, .arg = ARG_DATE, .cmp = SK_ON },
	{ .name = "SINCE", .kind = SK_DATE, .arg = ARG_DATE, .cmp = SK_SINCE },
	{ .name = "SENTBEFORE", .kind = SK_SENTDATE, .arg = ARG_DATE, .cmp = SK_BEFORE },
	{ .name = "SENTON", .kind = SK_SENTDATE, .arg = ARG_DATE, .cmp = SK_ON },
	{ .name = "SENTSINCE", .kind = SK_SENTDATE, .arg = ARG_DATE, .cmp = SK_SINCE },
	{ .name = "FROM", .kind = SK_HEADER, .arg = ARG_ASTRING, .field = "From" },
	{ .name = "TO", .kind = SK_HEADER, .arg = ARG_ASTRING, .field = "To" },
	{ .name = "CC", .kind = SK_HEADER, .arg = ARG_ASTRING, .field = "Cc" },
	{ .name = "BCC", .kind = SK_HEADER, .arg = ARG_ASTRING, .field = "Bcc" },
	{ .name = "SUBJECT", .kind = SK_HEADER, .arg = ARG_ASTRING, .field = "Subject" },
	{ .name = "HEADER", .kind = SK_HEADER, .arg = ARG_HEADER },
	{ .name = "BODY", .kind = SK_BODY, .arg = ARG_ASTRING },
	{ .name = "TEXT", .kind = SK_TEXT, .arg = ARG_ASTRING },
	{ .name = "NOT", .kind = SK_NOT, .arg = ARG_KEY },
	{ .name = "OR", .kind = SK_OR, .arg = ARG_KEY2 },
};

struct sk_parser {
	size_t nodes;
	const char *error;
};

static void
sk_free(struct sk *k)
{
	if (k == NULL)
		return;
	for (size_t i = 0; i < k->nkids; i++)
		sk_free(k->kids[i]);
	free(k->kids);
	free(k->name);
	free(k->needle);
	imap_seqset_free(&k->set);
	free(k);
}

static struct sk *
sk_new(struct sk_parser *p, enum sk_kind kind)
{
	if (++p->nodes > SK_NODES_MAX) {
		p->error = "Search program too large";
		return NULL;
	}
	struct sk *k = xcalloc(1, sizeof(*k));
	k->kind = kind;
	return k;
}

static void
sk_add_kid(struct sk *k, struct sk *kid)
{
	k->kids = xrealloc(k->kids, (k->nkids + 1) * sizeof(*k->kids));
	k->kids[k->nkids++] = kid;
	if (kid->cost > k->cost)
		k->cost = kid->cost;
}

/*
 * Cheap keys first: AND and OR stop at the first key that decides, so
 * a file is opened only when the index could not answer. Stable, so the
 * client's order is kept among keys of one cost.
 */
static void
sk_sort_kids(struct sk *k)
{
	for (size_t i = 1; i < k->nkids; i++) {
		struct sk *x = k->kids[i];
		size_t j = i;
		for (; j > 0 && k->kids[j - 1]->cost > x->cost; j--)
			k->kids[j] = k->kids[j - 1];
		k->kids[j] = x;
	}
}

/* Days from 1970-01-01 to a civil date (proleptic Gregorian). */
static int64_t
sk_days(int y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* §9 date: date-day "-" date-month "-" date-year, quoted or not. */
static int
sk_parse_date(const struct imap_arg *arg, int64_t *day_r)
{
	static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	const char *s;
	size_t len;
	if (arg->type == IMAP_ARG_LIST || !imap_arg_get_astring(arg, &s, &len))
		return -1;
	size_t dl = len > 1 && s[1] == '-' ? 1 : 2;
	if (len != dl + 9 || !isdigit((unsigned char)s[0]) ||
	    !isdigit((unsigned char)s[dl - 1]) || s[dl] != '-' || s[dl + 4] != '-')
		return -1;
	for (size_t i = dl + 5; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
	}
	int day = dl == 1 ? s[0] - '0' : (s[0] - '0') * 10 + s[1] - '0';
	int month = 0;
	for (int i = 0; i < 12 && month == 0; i++) {
		if (strncasecmp(s + dl + 1, months + 3 * i, 3) == 0)
			month = i + 1;
	}
	if (month == 0)
		return -1;
	int year = atoi(s + dl + 5);
	if (day < 1 || day > mdays[month - 1])
		return -1;
	*day_r = sk_days(year, month, day);
	return 0;
}

/* §9 number (RFC 9051's number64 for sizes): digits only. */
static int
sk_parse_number(const struct imap_arg *arg, uint64_t *n_r)
{
	if (arg->type != IMAP_ARG_ATOM || arg->u.str.len == 0 || arg->u.str.len > 19)
		return -1;
	uint64_t n = 0;
	for (size_t i = 0; i < arg->u.str.len; i++) {
		if (!isdigit((unsigned char)arg->u.str.data[i]))
			return -1;
		n = n * 10 + (uint64_t)(arg->u.str.data[i] - '0');
	}
	*n_r = n;
	return 0;
}

static int
sk_parse_string(const struct imap_arg *arg, char **needle_r)
{
	const char *s;
	size_t len;
	if (arg->type == IMAP_ARG_LIST || !imap_arg_get_astring(arg, &s, &len))
		return -1;
	*needle_r = mime_search_fold(s, len);
	return 0;
}

static struct sk *sk_parse_key(struct sk_parser *p, const struct imap_arg *args,
			       size_t argc, size_t *i, size_t depth);

/* Keys one after the other are ANDed (§6.4.4). */
static struct sk *
sk_parse_and(struct sk_parser *p, const struct imap_arg *args, size_t argc, size_t depth)
{
	struct sk *and = sk_new(p, SK_AND);
	if (and == NULL)
		return NULL;
	for (size_t i = 0; i < argc;) {
		struct sk *kid = sk_parse_key(p, args, argc, &i, depth);
		if (kid == NULL) {
			sk_free(and);
			return NULL;
		}
		sk_add_kid(and, kid);
	}
	if (and->nkids == 0) {
		p->error = "Empty search key list";
		sk_free(and);
		return NULL;
	}
	sk_sort_kids(and);
	return and;
}

/* A flag-keyword (§9: an atom; '\' is not an atom character). */
static int
sk_parse_keyword(const struct imap_arg *arg, char **name_r)
{
	if (arg->type != IMAP_ARG_ATOM || arg->u.str.len == 0 ||
	    strpbrk(arg->u.str.data, "\\*%]") != NULL)
		return -1;
	*name_r = xstrdup(arg->u.str.data);
	return 0;
}

/* The arguments of k as def says, from args[*i]; -1 with p->error. */
static int
sk_parse_args(struct sk_parser *p, const struct sk_def *def, struct sk *k,
	      const struct imap_arg *args, size_t argc, size_t *i, size_t depth)
{
	size_t need = def->arg == ARG_NONE ? 0 : def->arg == ARG_HEADER || def->arg == ARG_KEY2 ? 2 : 1;
	if (*i + need > argc) {
		p->error = "Search key is missing its argument";
		return -1;
	}
	const struct imap_arg *a = &args[*i];
	int r = 0;
	switch (def->arg) {
	case ARG_NONE: break;
	case ARG_ASTRING: r = sk_parse_string(a, &k->needle); break;
	case ARG_NUMBER: r = sk_parse_number(a, &k->n); break;
	case ARG_DATE: r = sk_parse_date(a, &k->day); break;
	case ARG_FLAG: r = sk_parse_keyword(a, &k->name); break;
	case ARG_HEADER: {
		const char *name;
		size_t len;
		if (a->type == IMAP_ARG_LIST || !imap_arg_get_astring(a, &name, &len) ||
		    len == 0 || strpbrk(name, ": ") != NULL)
			r = -1;
		else
			k->name = xstrdup(name);
		if (r == 0)
			r = sk_parse_string(&args[*i + 1], &k->needle);
		break;
	}
	case ARG_SET:
		if (a->type != IMAP_ARG_ATOM ||
		    imap_seqset_parse(a->u.str.data, a->u.str.len, 0, &k->set, &p->error) < 0)
			r = -1;
		break;
	case ARG_KEY:
	case ARG_KEY2:
		for (size_t n = 0; n < need; n++) {
			struct sk *kid = sk_parse_key(p, args, argc, i, depth + 1);
			if (kid == NULL)
				return -1;
			sk_add_kid(k, kid);
		}
		sk_sort_kids(k);
		return 0;
	}
	if (r < 0) {
		if (p->error == NULL)
			p->error = "Invalid search key argument";
		return -1;
	}
	*i += need;
	return 0;
}

static struct sk *
sk_parse_key(struct sk_parser *p, const struct imap_arg *args, size_t argc, size_t *i,
	     size_t depth)
{
	/* OR and NOT count their keys, not the arguments those keys take:
	   "OR NOT A" runs out only here. */
	if (*i >= argc) {
		p->error = "Search key is missing its argument";
		return NULL;
	}
	const struct imap_arg *a = &args[(*i)++];
	if (depth >= SK_DEPTH_MAX) {
		p->error = "Search program too deeply nested";
		return NULL;
	}
	if (a->type == IMAP_ARG_LIST)
		return sk_parse_and(p, a->u.list.items, a->u.list.count, depth + 1);
	if (a->type != IMAP_ARG_ATOM) {
		p->error = "Expected a search key";
		return NULL;
	}
	const char *name = a->u.str.data;
	if (isdigit((unsigned char)name[0]) || name[0] == '*') {
		struct sk *k = sk_new(p, SK_SEQ);
		if (k != NULL && imap_seqset_parse(name, a->u.str.len, 0, &k->set, &p->error) < 0) {
			sk_free(k);
			return NULL;
		}
		return k;
	}
	const struct sk_def *def = NULL;
	for (size_t d = 0; d < sizeof(sk_defs) / sizeof(sk_defs[0]); d++) {
		if (strcasecmp(sk_defs[d].name, name) == 0)
			def = &sk_defs[d];
	}
	if (def == NULL) {
		p->error = "Unknown search key";
		return NULL;
	}
	struct sk *k = sk_new(p, def->kind);
	if (k == NULL)
		return NULL;
	k->flag = def->flag;
	k->want = def->want;
	k->cmp = def->cmp;
	if (def->field != NULL)
		k->name = xstrdup(def->field);
	if (sk_parse_args(p, def, k, args, argc, i, depth) < 0) {
		sk_free(k);
		return NULL;
	}
	if (k->kind == SK_HEADER || k->kind == SK_SENTDATE)
		k->cost = COST_HEADER;
	else if (k->kind == SK_BODY || k->kind == SK_TEXT)
		k->cost = COST_BODY;
	return k;
}

/* RFC 4731 §4: "RETURN (" [opt *(SP opt)] ")". */
static int
sk_parse_return(struct imap_search *prog, const struct imap_arg *list)
{
	static const struct { const char *name; unsigned bit; } opts[] = {
		{ "MIN", IMAP_SEARCH_RET_MIN }, { "MAX", IMAP_SEARCH_RET_MAX },
		{ "ALL", IMAP_SEARCH_RET_ALL }, { "COUNT", IMAP_SEARCH_RET_COUNT },
	};
	if (list->type != IMAP_ARG_LIST)
		return -1;
	prog->esearch = true;
	for (size_t i = 0; i < list->u.list.count; i++) {
		size_t o = 0;
		while (o < 4 && !imap_arg_atom_equals(&list->u.list.items[i], opts[o].name))
			o++;
		if (o == 4)
			return -1;
		prog->ret |= opts[o].bit;
	}
	if (prog->ret == 0)
		prog->ret = IMAP_SEARCH_RET_ALL; /* §3.1: "RETURN ()" is "(ALL)" */
	return 0;
}

int
imap_search_parse(const struct imap_arg *args, size_t argc, struct imap_search **prog_r,
		  bool *badcharset_r, const char **error_r)
{
	struct imap_search *prog = xcalloc(1, sizeof(*prog));
	struct sk_parser p = { 0 };
	size_t i = 0;
	*badcharset_r = false;
	if (argc >= 2 && imap_arg_atom_equals(&args[0], "RETURN")) {
		if (sk_parse_return(prog, &args[1]) < 0) {
			free(prog);
			*error_r = "Invalid RETURN options";
			return -1;
		}
		i = 2;
	}
	if (argc - i >= 2 && imap_arg_atom_equals(&args[i], "CHARSET")) {
		const char *cs;
		size_t len;
		if (args[i + 1].type == IMAP_ARG_LIST ||
		    !imap_arg_get_astring(&args[i + 1], &cs, &len)) {
			free(prog);
			*error_r = "Invalid CHARSET";
			return -1;
		}
		/* §6.4.4: US-ASCII must be known; UTF-8 is its superset. */
		*badcharset_r = strcasecmp(cs, "UTF-8") != 0 && strcasecmp(cs, "US-ASCII") != 0;
		i += 2;
	}
	/* No keys: args may be NULL, and NULL + 0 is undefined in C. */
	prog->root = argc > i ? sk_parse_and(&p, args + i, argc - i, 0) : NULL;
	if (prog->root == NULL) {
		free(prog);
		*error_r = argc == i ? "Missing search keys" : p.error;
		return -1;
	}
	*prog_r = prog;
	return 0;
}

void
imap_search_free(struct imap_search **progp)
{
	if (*progp == NULL)
		return;
	sk_free((*progp)->root);
	free(*progp);
	*progp = NULL;
}

bool
imap_search_esearch(const struct imap_search *prog, unsigned *ret_r)
{
	*ret_r = prog->ret;
	return prog->esearch;
}

/* Matching: three values, so that the first pass can leave text unknown. */
enum tri { NO, YES, MAYBE };

struct sk_eval {
	const struct imap_search_msg *m;
	struct mime_search *ms; /* NULL in the first pass */
};

static enum tri
tri_of(bool b)
{
	return b ? YES : NO;
}

/* Whether a keyword is in the space-separated list (keywords ignore case). */
static bool
sk_has_keyword(const char *list, const char *kw)
{
	size_t n = strlen(kw);
	for (const char *p = list; *p != '\0';) {
		size_t w = strcspn(p, " ");
		if (w == n && strncasecmp(p, kw, n) == 0)
			return true;
		p += w;
		p += strspn(p, " ");
	}
	return false;
}

static enum tri
sk_cmp_day(enum sk_cmp cmp, int64_t day, int64_t key)
{
	return tri_of(cmp == SK_BEFORE ? day < key : cmp == SK_ON ? day == key : day >= key);
}

static enum tri sk_eval(struct sk *k, struct sk_eval *e);

/* AND and OR (Kleene): stop at the first kid that decides. */
static enum tri
sk_eval_list(struct sk *k, struct sk_eval *e, enum tri decides)
{
	enum tri r = decides == NO ? YES : NO;
	for (size_t i = 0; i < k->nkids; i++) {
		enum tri v = sk_eval(k->kids[i], e);
		if (v == decides)
			return decides;
		if (v == MAYBE)
			r = MAYBE;
	}
	return r;
}

/* Keys that need the message's text: MAYBE until it is loaded, unless
   the index keeps the header field asked for. */
static enum tri
sk_eval_text(struct sk *k, struct sk_eval *e)
{
	if (k->kind == SK_HEADER && e->m->fields != NULL && mime_search_field_kept(k->name))
		return tri_of(mime_search_fields_match(e->m->fields, k->name, k->needle));
	if (e->ms == NULL)
		return MAYBE;
	switch (k->kind) {
	case SK_HEADER: return tri_of(mime_search_header(e->ms, k->name, k->needle));
	case SK_BODY: return tri_of(mime_search_body(e->ms, k->needle));
	case SK_TEXT: return tri_of(mime_search_text(e->ms, k->needle));
	default: break;
	}
	int y, mo, d;
	/* A message without a readable Date: is sent on no day. */
	if (mime_search_sent_date(e->ms, &y, &mo, &d) < 0)
		return NO;
	return sk_cmp_day(k->cmp, sk_days(y, mo, d), k->day);
}

static enum tri
sk_eval(struct sk *k, struct sk_eval *e)
{
	const struct imap_search_msg *m = e->m;
	switch (k->kind) {
	case SK_ALL: return YES;
	case SK_FLAG: return tri_of((strchr(m->flags, k->flag) != NULL) == k->want);
	case SK_KEYWORD: return tri_of(sk_has_keyword(m->keywords, k->name) == k->want);
	case SK_RECENT: return tri_of(m->recent);
	case SK_NEW: return tri_of(m->recent && strchr(m->flags, 'S') == NULL);
	case SK_OLD: return tri_of(!m->recent);
	case SK_LARGER: return tri_of(m->size > k->n);
	case SK_SMALLER: return tri_of(m->size < k->n);
	case SK_SEQ: return tri_of(imap_seqset_contains(k->set, m->seq, m->seq_max));
	case SK_UID: return tri_of(imap_seqset_contains(k->set, m->uid, m->uid_max));
	case SK_DATE: {
		/* The internal date's day in UTC, the zone FETCH shows it in. */
		int64_t t = (int64_t)m->internaldate;
		int64_t day = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
		return sk_cmp_day(k->cmp, day, k->day);
	}
	case SK_SENTDATE:
	case SK_HEADER:
	case SK_BODY:
	case SK_TEXT: return sk_eval_text(k, e);
	case SK_NOT: {
		enum tri v = sk_eval(k->kids[0], e);
		return v == MAYBE ? MAYBE : v == YES ? NO : YES;
	}
	case SK_AND: return sk_eval_list(k, e, NO);
	case SK_OR: return sk_eval_list(k, e, YES);
	}
	return NO;
}

static bool
sk_wants_fields(const struct sk *k)
{
	if (k->kind == SK_HEADER)
		return mime_search_field_kept(k->name);
	for (size_t i = 0; i < k->nkids; i++) {
		if (sk_wants_fields(k->kids[i]))
			return true;
	}
	return false;
}

bool
imap_search_wants_fields(const struct imap_search *prog)
{
	return sk_wants_fields(prog->root);
}

int
imap_search_match(struct imap_search *prog, const struct imap_search_msg *m)
{
	struct sk_eval e = { .m = m };
	enum tri r = sk_eval(prog->root, &e);
	if (r != MAYBE)
		return r == YES;
	e.ms = m->load(m->load_ctx);
	if (e.ms == NULL)
		return -1;
	return sk_eval(prog->root, &e) == YES;
}
