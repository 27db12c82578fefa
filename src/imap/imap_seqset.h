#ifndef TERN_IMAP_IMAP_SEQSET_H
#define TERN_IMAP_IMAP_SEQSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * IMAP sequence sets (RFC 3501 §9 sequence-set): "1,3:5,7:*,*". Numbers
 * are nz-number (1 .. 2^32-1); "*" is kept as IMAP_SEQ_STAR and resolved
 * later against the largest UID or message number in use. A range may
 * be reversed ("5:1" is "1:5", §9 seq-range).
 *
 * Resolving (done by contains, iteration and imap_seqset_ranges) turns
 * the set into sorted, merged ranges without "*", so that contains is a
 * binary search and iteration gives each number once in ascending order.
 * With star_value 0 (an empty mailbox) a "*" matches nothing.
 */

#define IMAP_SEQ_STAR 0u
/* More ranges than this are refused (a clear BAD, not a slow server). */
#define IMAP_SEQSET_RANGES_MAX 100000

struct imap_seq_range {
	uint32_t first, last; /* first <= last once resolved */
};

struct imap_seqset;

/*
 * Parses s[0..len). max_ranges 0 means IMAP_SEQSET_RANGES_MAX. -1 with a
 * static *error_r on "0", garbage, numbers over 2^32-1 or too many ranges.
 */
int imap_seqset_parse(const char *s, size_t len, size_t max_ranges,
		      struct imap_seqset **set_r, const char **error_r);
void imap_seqset_free(struct imap_seqset **set);

/* True if the set holds "*" anywhere. */
bool imap_seqset_has_star(const struct imap_seqset *set);
bool imap_seqset_contains(struct imap_seqset *set, uint32_t n, uint32_t star_value);
/* The resolved ranges (sorted, merged, no "*"); valid until the next call. */
const struct imap_seq_range *imap_seqset_ranges(struct imap_seqset *set,
						uint32_t star_value, size_t *count_r);

struct imap_seqset_iter {
	const struct imap_seq_range *ranges;
	size_t count, i;
	uint64_t next;
};

/* Iterates over the numbers in ascending order, each once. */
void imap_seqset_iter_init(struct imap_seqset_iter *it, struct imap_seqset *set,
			   uint32_t star_value);
bool imap_seqset_iter_next(struct imap_seqset_iter *it, uint32_t *n_r);

#endif
