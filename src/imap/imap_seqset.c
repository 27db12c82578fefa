/*
 * Sequence sets: parsed once into the ranges as sent, resolved against a
 * "*" value on demand (and cached for that value).
 */
#include "imap/imap_seqset.h"

#include <stdlib.h>

#include "core/util.h"

struct imap_seqset {
	struct imap_seq_range *orig; /* as sent; IMAP_SEQ_STAR for "*" */
	size_t count;
	bool has_star;

	struct imap_seq_range *resolved;
	size_t nresolved;
	bool is_resolved;
	uint32_t resolved_star;
};

/* seq-number = nz-number / "*"; returns the new position or 0 on error. */
static size_t
seq_number(const char *s, size_t len, size_t pos, uint32_t *n_r)
{
	uint64_t n = 0;
	size_t start = pos;

	if (pos < len && s[pos] == '*') {
		*n_r = IMAP_SEQ_STAR;
		return pos + 1;
	}
	/* nz-number: no leading zero, at most 2^32-1 */
	if (pos >= len || s[pos] < '1' || s[pos] > '9')
		return 0;
	while (pos < len && s[pos] >= '0' && s[pos] <= '9') {
		n = n * 10 + (uint64_t)(s[pos] - '0');
		if (n > UINT32_MAX || pos - start >= 10)
			return 0;
		pos++;
	}
	*n_r = (uint32_t)n;
	return pos;
}

int
imap_seqset_parse(const char *s, size_t len, size_t max_ranges,
		  struct imap_seqset **set_r, const char **error_r)
{
	struct imap_seqset *set = xcalloc(1, sizeof(*set));
	size_t cap = 0, pos = 0;

	if (max_ranges == 0)
		max_ranges = IMAP_SEQSET_RANGES_MAX;
	for (;;) {
		struct imap_seq_range r;
		size_t next = seq_number(s, len, pos, &r.first);
		if (next == 0)
			goto bad;
		pos = next;
		r.last = r.first;
		if (pos < len && s[pos] == ':') {
			next = seq_number(s, len, pos + 1, &r.last);
			if (next == 0)
				goto bad;
			pos = next;
		}
		if (set->count == max_ranges) {
			*error_r = "Too many ranges in sequence set";
			goto fail;
		}
		if (set->count == cap) {
			cap = cap == 0 ? 8 : cap * 2;
			set->orig = xrealloc(set->orig, cap * sizeof(*set->orig));
		}
		set->has_star |= r.first == IMAP_SEQ_STAR || r.last == IMAP_SEQ_STAR;
		set->orig[set->count++] = r;
		if (pos == len)
			break;
		if (s[pos] != ',')
			goto bad;
		pos++;
	}
	*set_r = set;
	return 0;
bad:
	*error_r = "Invalid sequence set";
fail:
	imap_seqset_free(&set);
	return -1;
}

void
imap_seqset_free(struct imap_seqset **setp)
{
	struct imap_seqset *set = *setp;

	if (set == NULL)
		return;
	free(set->orig);
	free(set->resolved);
	free(set);
	*setp = NULL;
}

bool
imap_seqset_has_star(const struct imap_seqset *set)
{
	return set->has_star;
}

static int
range_cmp(const void *a, const void *b)
{
	const struct imap_seq_range *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

/* Replaces "*", orders each range, drops what star 0 empties, sorts, merges. */
static void
seqset_resolve(struct imap_seqset *set, uint32_t star)
{
	size_t n = 0;

	if (set->is_resolved && set->resolved_star == star)
		return;
	if (set->resolved == NULL)
		set->resolved = xcalloc(set->count, sizeof(*set->resolved));
	for (size_t i = 0; i < set->count; i++) {
		uint32_t a = set->orig[i].first, b = set->orig[i].last;
		if (a == IMAP_SEQ_STAR)
			a = star;
		if (b == IMAP_SEQ_STAR)
			b = star;
		if (a > b) {
			uint32_t t = a;
			a = b;
			b = t;
		}
		if (a == 0)
			a = 1;
		if (b == 0)
			continue;
		set->resolved[n].first = a;
		set->resolved[n++].last = b;
	}
	qsort(set->resolved, n, sizeof(*set->resolved), range_cmp);
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		struct imap_seq_range *cur = &set->resolved[i];
		if (m > 0 && (uint64_t)cur->first <= (uint64_t)set->resolved[m - 1].last + 1) {
			if (cur->last > set->resolved[m - 1].last)
				set->resolved[m - 1].last = cur->last;
		} else {
			set->resolved[m++] = *cur;
		}
	}
	set->nresolved = m;
	set->is_resolved = true;
	set->resolved_star = star;
}

const struct imap_seq_range *
imap_seqset_ranges(struct imap_seqset *set, uint32_t star_value, size_t *count_r)
{
	seqset_resolve(set, star_value);
	*count_r = set->nresolved;
	return set->resolved;
}

bool
imap_seqset_contains(struct imap_seqset *set, uint32_t n, uint32_t star_value)
{
	size_t lo = 0, hi;

	seqset_resolve(set, star_value);
	hi = set->nresolved;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct imap_seq_range *r = &set->resolved[mid];
		if (n < r->first)
			hi = mid;
		else if (n > r->last)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

void
imap_seqset_iter_init(struct imap_seqset_iter *it, struct imap_seqset *set,
		      uint32_t star_value)
{
	it->ranges = imap_seqset_ranges(set, star_value, &it->count);
	it->i = 0;
	it->next = it->count > 0 ? it->ranges[0].first : 0;
}

bool
imap_seqset_iter_next(struct imap_seqset_iter *it, uint32_t *n_r)
{
	while (it->i < it->count) {
		if (it->next <= it->ranges[it->i].last) {
			*n_r = (uint32_t)it->next++;
			return true;
		}
		if (++it->i < it->count)
			it->next = it->ranges[it->i].first;
	}
	return false;
}
