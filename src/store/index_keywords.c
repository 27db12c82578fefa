/*
 * IMAP keywords in a Maildir folder (see index.h): the lowercase letters
 * a-z of a file name's info part, and the folder's map of letters to names
 * in "tern-keywords", one "<letter> <name>" line per given letter.
 *
 * The map only ever grows: a letter keeps its name even when no message
 * carries it any more, because files (and other tools' copies of them)
 * may still carry the letter, and a rebuilt index must read them as the
 * same keyword.
 */
#include "store/index.h"
#include "store/index_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/util.h"

#define INDEX_KEYWORDS_FILE "tern-keywords"
/* 26 lines of "<letter> <name>\n", with room to spare. */
#define INDEX_KEYWORDS_FILE_MAX (INDEX_KEYWORDS_MAX * (INDEX_KEYWORD_LEN_MAX + 3) + 64)

/*
 * RFC 3501 §9: flag-keyword = atom, and ATOM-CHAR is any CHAR except
 * atom-specials ( ) { SP CTL % * " \ ]. '[' is allowed by the grammar but
 * refused here: tern's parser reads "[...]" inside an atom as a section.
 */
bool
index_keyword_valid(const char *s, size_t len)
{
	if (len == 0 || len > INDEX_KEYWORD_LEN_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\][", c) != NULL)
			return false;
	}
	return true;
}

void
index_kwmap_clear(struct index_kwmap *map)
{
	for (size_t i = 0; i < INDEX_KEYWORDS_MAX; i++)
		free(map->names[i]);
	memset(map, 0, sizeof(*map));
}

/* The letter index of a name (case-insensitive), or -1. */
static int
index_kwmap_find(const struct index_kwmap *map, const char *name, size_t len)
{
	for (int i = 0; i < INDEX_KEYWORDS_MAX; i++) {
		const char *n = map->names[i];
		if (n != NULL && strlen(n) == len && strncasecmp(n, name, len) == 0)
			return i;
	}
	return -1;
}

/* One "<letter> <name>" line; -1 if garbled or a repeat. */
static int
index_kwmap_line(struct index_kwmap *map, const char *line, size_t len)
{
	if (len < 3 || line[0] < 'a' || line[0] > 'z' || line[1] != ' ')
		return -1;
	const char *name = line + 2;
	size_t nlen = len - 2;
	int i = line[0] - 'a';
	if (!index_keyword_valid(name, nlen) || map->names[i] != NULL ||
	    index_kwmap_find(map, name, nlen) >= 0)
		return -1;
	map->names[i] = xstrndup(name, nlen);
	return 0;
}

/*
 * A garbled map is an error, never guessed at: reading a letter as the
 * wrong keyword would silently change messages' flags.
 */
int
index_kwmap_load(const char *dir, struct index_kwmap *map_r, char **error_r)
{
	memset(map_r, 0, sizeof(*map_r));
	char *path = xasprintf("%s/%s", dir, INDEX_KEYWORDS_FILE);
	size_t len;
	char *s = read_file(path, INDEX_KEYWORDS_FILE_MAX, &len);
	int ret = 0;
	if (s == NULL) {
		if (errno != ENOENT) {
			*error_r = xasprintf("%s: %s", path, strerror(errno));
			ret = -1;
		}
		free(path);
		return ret;
	}
	for (size_t pos = 0; ret == 0 && pos < len;) {
		const char *nl = memchr(s + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t)(nl - s) : len;
		if (index_kwmap_line(map_r, s + pos, end - pos) < 0) {
			*error_r = xasprintf("%s: garbled", path);
			ret = -1;
		}
		pos = end + 1;
	}
	if (ret < 0)
		index_kwmap_clear(map_r);
	free(s);
	free(path);
	return ret;
}

/* Written before any file carries a new letter (tmp, fsync, rename, fsync
   of the directory), so that no letter on disk is ever without its name. */
static int
index_kwmap_write(const char *dir, const struct index_kwmap *map, char **error_r)
{
	struct buf b = BUF_INIT;
	for (int i = 0; i < INDEX_KEYWORDS_MAX; i++)
		if (map->names[i] != NULL)
			buf_appendf(&b, "%c %s\n", 'a' + i, map->names[i]);
	char *tmp = xasprintf("%s/%s.tmp", dir, INDEX_KEYWORDS_FILE);
	char *path = xasprintf("%s/%s", dir, INDEX_KEYWORDS_FILE);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int ret = -1;
	if (fd >= 0 && write_all(fd, b.data, b.len) == 0 && fsync(fd) == 0 &&
	    close(fd) == 0) {
		fd = -1;
		if (rename(tmp, path) == 0 && fsync_dir(dir) == 0)
			ret = 0;
	}
	if (ret < 0) {
		*error_r = xasprintf("%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(tmp);
	}
	buf_free(&b);
	free(tmp);
	free(path);
	return ret;
}

/* The next space-separated word of *p, or NULL at the end. */
static const char *
index_kw_next(const char **p, size_t *len_r)
{
	const char *s = *p;
	while (*s == ' ')
		s++;
	if (*s == '\0')
		return NULL;
	size_t len = strcspn(s, " ");
	*p = s + len;
	*len_r = len;
	return s;
}

int
index_kwmap_assign(const char *dir, struct index_kwmap *map, const char *keywords,
		   char letters_r[INDEX_KEYWORDS_MAX + 1], bool *limit_r,
		   char **error_r)
{
	*limit_r = false;
	letters_r[0] = '\0';
	struct index_kwmap next = { 0 };
	bool given[INDEX_KEYWORDS_MAX] = { false };
	bool added = false;
	for (int i = 0; i < INDEX_KEYWORDS_MAX; i++)
		next.names[i] = map->names[i];
	const char *p = keywords, *w;
	size_t len;
	int ret = 0, free_i = 0;
	while (ret == 0 && (w = index_kw_next(&p, &len)) != NULL) {
		int i = index_kwmap_find(&next, w, len);
		if (i < 0 && !index_keyword_valid(w, len)) {
			*error_r = xasprintf("invalid keyword \"%.*s\"", (int)len, w);
			ret = -1;
			break;
		}
		if (i < 0) {
			while (free_i < INDEX_KEYWORDS_MAX && next.names[free_i] != NULL)
				free_i++;
			if (free_i == INDEX_KEYWORDS_MAX) {
				*error_r = xasprintf("%s: more than %d keywords", dir,
						     INDEX_KEYWORDS_MAX);
				*limit_r = true;
				ret = -1;
				break;
			}
			i = free_i;
			next.names[i] = xstrndup(w, len);
			added = true;
		}
		given[i] = true;
	}
	if (ret == 0 && added)
		ret = index_kwmap_write(dir, &next, error_r);
	/* Adopt the new names, or drop them. */
	for (int i = 0; i < INDEX_KEYWORDS_MAX; i++) {
		if (next.names[i] == map->names[i])
			continue;
		if (ret == 0)
			map->names[i] = next.names[i];
		else
			free(next.names[i]);
	}
	if (ret < 0)
		return -1;
	size_t n = 0;
	for (int i = 0; i < INDEX_KEYWORDS_MAX; i++)
		if (given[i])
			letters_r[n++] = (char)('a' + i);
	letters_r[n] = '\0';
	return 0;
}

int
index_keywords_letters(const char *dir, const char *keywords,
		       char letters_r[INDEX_KEYWORDS_MAX + 1], bool *limit_r,
		       char **error_r)
{
	struct index_kwmap map;
	*limit_r = false;
	if (index_kwmap_load(dir, &map, error_r) < 0)
		return -1;
	int ret = index_kwmap_assign(dir, &map, keywords, letters_r, limit_r, error_r);
	index_kwmap_clear(&map);
	return ret;
}

char *
index_kwmap_names_of(const struct index_kwmap *map, const char *name)
{
	const char *info = index_name_info(name);
	struct buf b = BUF_INIT;
	for (int i = 0; i < INDEX_KEYWORDS_MAX; i++) {
		if (map->names[i] == NULL || strchr(info, 'a' + i) == NULL)
			continue;
		buf_appendf(&b, "%s%s", b.len > 0 ? " " : "", map->names[i]);
	}
	return buf_steal(&b);
}

int
index_keywords_names(const char *dir, char **names_r, size_t *count_r,
		     char **error_r)
{
	struct index_kwmap map;
	if (index_kwmap_load(dir, &map, error_r) < 0)
		return -1;
	struct buf b = BUF_INIT;
	size_t n = 0;
	for (int i = 0; i < INDEX_KEYWORDS_MAX; i++) {
		if (map.names[i] == NULL)
			continue;
		buf_appendf(&b, "%s%s", n > 0 ? " " : "", map.names[i]);
		n++;
	}
	*names_r = buf_steal(&b);
	*count_r = n;
	index_kwmap_clear(&map);
	return 0;
}
