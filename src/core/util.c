#include "core/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

static void
out_of_memory(void)
{
	static const char msg[] = "tern: out of memory\n";
	(void)!write(2, msg, sizeof(msg) - 1);
	abort();
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		out_of_memory();
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (p == NULL)
		out_of_memory();
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (p == NULL)
		out_of_memory();
	return p;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		out_of_memory();
	return s;
}

int
write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

int
fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = fsync(fd);
	int saved = errno;
	close(fd);
	errno = saved;
	return r;
}

/* The whole path first: it usually exists, and then one call is all. */
int
mkdir_p(const char *path, mode_t mode)
{
	if (mkdir(path, mode) == 0 || errno == EEXIST)
		return 0;
	if (errno != ENOENT)
		return -1;
	char *parent = xstrdup(path);
	char *slash = strrchr(parent, '/');
	while (slash != NULL && slash > parent && slash[1] == '\0') {
		*slash = '\0'; /* a trailing slash names the same directory */
		slash = strrchr(parent, '/');
	}
	int r = -1;
	if (slash != NULL && slash > parent) {
		*slash = '\0';
		r = mkdir_p(parent, mode);
	}
	free(parent);
	if (r < 0)
		return -1;
	return mkdir(path, mode) == 0 || errno == EEXIST ? 0 : -1;
}

char *
read_file(const char *path, size_t max, size_t *len_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t cap = 4096, len = 0;
	char *data = xmalloc(cap);
	for (;;) {
		if (len + 1 >= cap) {
			if (cap > max) {
				errno = EFBIG;
				goto fail;
			}
			cap *= 2;
			data = xrealloc(data, cap);
		}
		ssize_t n = read(fd, data + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max) {
		errno = EFBIG;
		goto fail;
	}
	close(fd);
	data[len] = '\0';
	if (len_r != NULL)
		*len_r = len;
	return data;
fail:;
	int saved = errno;
	close(fd);
	free(data);
	errno = saved;
	return NULL;
}

void
make_id(char out[13])
{
	/* 40 bits of time (seconds, wraps in 35,000 years) and 20 random bits,
	 * so IDs sort roughly by time and two processes rarely collide. */
	static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	uint32_t rnd = 0;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint32_t)rand();
	static uint32_t counter;
	uint32_t c = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
	uint64_t v = ((uint64_t)time(NULL) << 20) ^ ((rnd + c) & 0xfffff);
	for (int i = 11; i >= 0; i--) {
		out[i] = alphabet[v & 31];
		v >>= 5;
	}
	out[12] = '\0';
}

bool
str_case_prefix(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

char *
str_lower(char *s)
{
	for (char *p = s; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return s;
}

char *
str_trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' ||
			 s[n - 1] == '\r' || s[n - 1] == '\n'))
		s[--n] = '\0';
	return s;
}

char *
base64_encode(const void *p, size_t n)
{
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}

int
base64_decode(const char *s, size_t n, unsigned char **out_r, size_t *len_r)
{
	if (n % 4 != 0 || n > 1 << 24)
		return -1;
	/* Strictly RFC 4648: EVP_DecodeBlock alone takes stray padding
	 * ("Q===", "QQ=A") and blanks. */
	size_t pad = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			     (c >= '0' && c <= '9') || c == '+' || c == '/';
		if (c == '=')
			pad++;
		else if (!alpha || pad > 0)
			return -1;
	}
	if (pad > 2)
		return -1;
	unsigned char *out = xmalloc(n / 4 * 3 + 1);
	int len = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
	if (len < 0) {
		free(out);
		return -1;
	}
	/* EVP_DecodeBlock counts the padding as data; take it back off. */
	if (n > 0 && s[n - 1] == '=')
		len--;
	if (n > 1 && s[n - 2] == '=')
		len--;
	out[len] = '\0';
	*out_r = out;
	*len_r = (size_t)len;
	return 0;
}
