#ifndef TERN_MIME_MIME_SEARCH_H
#define TERN_MIME_MIME_SEARCH_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Text matching for IMAP SEARCH (RFC 3501 §6.4.4) over one message.
 *
 * Matching is a case-insensitive substring test on decoded text, both
 * sides folded by mime_search_fold: made valid UTF-8, Unicode case-folded
 * and NFKC-normalised (GLib), so "É" finds "é" and a composed "é" finds a
 * decomposed one.
 *
 *  - header fields: the unfolded value with RFC 2047 encoded words
 *    decoded (GMime); a field given more than once matches if any does.
 *  - body: the text of every text part (type text), decoded from base64 or
 *    quoted-printable and converted to UTF-8 from the part's charset
 *    (GMime filters); other parts are left out (§6.4.4 allows it).
 *
 *	char *needle = mime_search_fold("caf\xc3\xa9", 5);
 *	struct mime_search *ms = mime_search_new(data, len);
 *	if (mime_search_body(ms, needle)) ...
 *	mime_search_free(&ms);
 *	free(needle);
 *
 * The message (LF or CRLF line ends) is borrowed and must outlive ms.
 * What a key needs is computed on first use and kept: the header fields
 * when a header key or SENT* asks, the decoded body when BODY or TEXT
 * does, so a message is parsed at most once whatever the program.
 */
struct mime_search;

/* The folded form of a search string; free() it. Never NULL. */
char *mime_search_fold(const char *s, size_t len);

struct mime_search *mime_search_new(const char *data, size_t len);
void mime_search_free(struct mime_search **ms);

/*
 * A header field named field (any case) whose decoded value holds needle
 * (folded). An empty needle matches every message having the field
 * (§6.4.4 HEADER).
 */
bool mime_search_header(struct mime_search *ms, const char *field, const char *needle);
/*
 * The folded values of the header fields SEARCH asks for most (FROM, TO,
 * CC, BCC, SUBJECT: mime_search_field_kept), one "Name:value" line each,
 * for the index to keep, so that a later SEARCH of them reads no file.
 * mime_search_fields_match answers mime_search_header from that text,
 * for a kept field.
 */
bool mime_search_field_kept(const char *field);
char *mime_search_fields(struct mime_search *ms);
bool mime_search_fields_match(const char *fields, const char *field, const char *needle);
/* The decoded text of the body's text parts holds needle (folded). */
bool mime_search_body(struct mime_search *ms, const char *needle);
/* TEXT: any header line ("Name: decoded value") or the body holds needle. */
bool mime_search_text(struct mime_search *ms, const char *needle);

/*
 * The day of the Date: header as written in it (the zone disregarded,
 * §6.4.4 SENT*): 0 with year, month (1-12) and day, or -1 when there is
 * no Date: field or it cannot be read.
 */
int mime_search_sent_date(struct mime_search *ms, int *year_r, int *month_r, int *day_r);

#endif
