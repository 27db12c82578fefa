/*
 * The users file: "user@domain:HASH[:scram-sha-256=...]" lines, read again
 * whenever it changes.
 */
#include "auth/userdb.h"
#include "auth/userdb_private.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"

/* A users file larger than this is refused rather than read into memory. */
#define USERDB_MAX_FILE (64u * 1024 * 1024)

struct userdb_entry {
	char *address;
	char *hash;
	struct userdb_scram *scram; /* NULL if the line has none */
	size_t order; /* line order, so that the first of two duplicates wins */
};

struct userdb {
	char *path;
	char *default_domain;
	struct stat st; /* of the file as last read */
	bool loaded;
	struct userdb_entry *entries; /* sorted by address */
	size_t count;
	/* A hash setting for unknown users: see userdb_verify. */
	char *dummy_setting;
};

struct userdb *
userdb_open(const char *path, const char *default_domain)
{
	struct userdb *db = xcalloc(1, sizeof(*db));
	db->path = xstrdup(path);
	db->default_domain = default_domain ? str_lower(xstrdup(default_domain)) : NULL;
	return db;
}

static void
userdb_entry_free(struct userdb_entry *e)
{
	free(e->address);
	free(e->hash);
	if (e->scram != NULL)
		explicit_bzero(e->scram, sizeof(*e->scram));
	free(e->scram);
}

static void
userdb_clear(struct userdb *db)
{
	for (size_t i = 0; i < db->count; i++)
		userdb_entry_free(&db->entries[i]);
	free(db->entries);
	db->entries = NULL;
	db->count = 0;
}

void
userdb_free(struct userdb **dbp)
{
	struct userdb *db = *dbp;
	if (db == NULL)
		return;
	userdb_clear(db);
	free(db->path);
	free(db->default_domain);
	free(db->dummy_setting);
	free(db);
	*dbp = NULL;
}

char *
userdb_canonical(const struct userdb *db, const char *login)
{
	if (strchr(login, '@') == NULL && db->default_domain != NULL)
		return str_lower(xasprintf("%s@%s", login, db->default_domain));
	return str_lower(xstrdup(login));
}

/*
 * One '@', both sides non-empty, and nothing that would break the file
 * format (':' separates the hash, a newline ends the entry) or let the
 * address name a path (the mail store builds directories from it).
 */
static bool
userdb_address_valid(const char *address)
{
	const char *at = strchr(address, '@');
	if (at == NULL || at == address || at[1] == '\0' || strchr(at + 1, '@') != NULL)
		return false;
	if (strcmp(at + 1, ".") == 0 || strcmp(at + 1, "..") == 0)
		return false;
	for (const unsigned char *p = (const unsigned char *)address; *p != '\0'; p++)
		if (*p <= ' ' || *p == 0x7f || *p == ':' || *p == '/' || *p == '\\')
			return false;
	return true;
}

/* Splits "address:hash" in place; NULL for blank lines and comments. */
static char *
userdb_split_line(char *line, char **hash_r)
{
	char *s = str_trim(line);
	if (*s == '\0' || *s == '#')
		return NULL;
	char *colon = strchr(s, ':');
	if (colon == NULL) {
		*hash_r = NULL;
		return s;
	}
	*colon = '\0';
	*hash_r = str_trim(colon + 1);
	return str_trim(s);
}

static int
userdb_entry_cmp(const void *a, const void *b)
{
	const struct userdb_entry *x = a, *y = b;
	int c = strcmp(x->address, y->address);
	if (c != 0)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Sorts the entries and drops later duplicates of an address. */
static void
userdb_sort(struct userdb *db)
{
	if (db->count == 0)
		return;
	qsort(db->entries, db->count, sizeof(*db->entries), userdb_entry_cmp);
	size_t out = 1;
	for (size_t i = 1; i < db->count; i++) {
		struct userdb_entry *e = &db->entries[i];
		if (strcmp(e->address, db->entries[out - 1].address) == 0) {
			log_warn("%s: user %s is listed twice; the first entry counts",
				 db->path, e->address);
			userdb_entry_free(e);
			continue;
		}
		db->entries[out++] = *e;
	}
	db->count = out;
}

#define USERDB_SCRAM_PREFIX "scram-sha-256="

/* Decodes base64 into out, which must receive between min and max bytes. */
static bool
userdb_b64_field(const char *s, size_t n, unsigned char *out, size_t min, size_t max,
		 size_t *len_r)
{
	unsigned char *bin;
	size_t len;
	if (n == 0 || base64_decode(s, n, &bin, &len) < 0)
		return false;
	bool ok = len >= min && len <= max;
	if (ok) {
		memcpy(out, bin, len);
		*len_r = len;
	}
	explicit_bzero(bin, len);
	free(bin);
	return ok;
}

/* Parses "ITER,SALT,STOREDKEY,SERVERKEY" (after the prefix). */
static bool
userdb_scram_parse(const char *text, struct userdb_scram *out)
{
	const char *f[4];
	size_t n[4];
	const char *p = text;
	for (int i = 0; i < 4; i++) {
		const char *comma = strchr(p, ',');
		f[i] = p;
		n[i] = comma != NULL ? (size_t)(comma - p) : strlen(p);
		if ((comma == NULL) != (i == 3))
			return false;
		p = comma != NULL ? comma + 1 : p;
	}
	char *end;
	errno = 0;
	unsigned long iter = strtoul(f[0], &end, 10);
	if (end != f[0] + n[0] || n[0] == 0 || f[0][0] == '-' || errno != 0 ||
	    iter == 0 || iter > 10000000)
		return false;
	out->iterations = (unsigned int)iter;
	size_t len;
	return userdb_b64_field(f[1], n[1], out->salt, 1, sizeof(out->salt),
				&out->salt_len) &&
	       userdb_b64_field(f[2], n[2], out->stored_key, USERDB_SCRAM_KEY_LEN,
				USERDB_SCRAM_KEY_LEN, &len) &&
	       userdb_b64_field(f[3], n[3], out->server_key, USERDB_SCRAM_KEY_LEN,
				USERDB_SCRAM_KEY_LEN, &len);
}

/*
 * Splits the fields after the crypt hash off hash (in place) and reads
 * the SCRAM secrets among them; other fields are ignored, for later use.
 * Returns false if a SCRAM field is there but does not parse.
 */
static bool
userdb_parse_extra(char *hash, struct userdb_scram **scram_r)
{
	*scram_r = NULL;
	char *p = strchr(hash, ':');
	if (p == NULL)
		return true;
	*p++ = '\0';
	for (char *next; p != NULL; p = next) {
		next = strchr(p, ':');
		if (next != NULL)
			*next++ = '\0';
		if (strncmp(p, USERDB_SCRAM_PREFIX, strlen(USERDB_SCRAM_PREFIX)) != 0 ||
		    *scram_r != NULL)
			continue;
		struct userdb_scram *sc = xcalloc(1, sizeof(*sc));
		if (!userdb_scram_parse(p + strlen(USERDB_SCRAM_PREFIX), sc)) {
			free(sc);
			return false;
		}
		*scram_r = sc;
	}
	return true;
}

static void
userdb_parse(struct userdb *db, char *text)
{
	size_t cap = 0;
	int lineno = 0;
	for (char *line = text, *next; line != NULL; line = next) {
		lineno++;
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		char *hash;
		char *address = userdb_split_line(line, &hash);
		if (address == NULL)
			continue;
		str_lower(address);
		if (hash == NULL || *hash == '\0' || !userdb_address_valid(address)) {
			log_warn("%s:%d: not 'user@domain:HASH', line ignored", db->path, lineno);
			continue;
		}
		struct userdb_scram *scram;
		if (!userdb_parse_extra(hash, &scram))
			log_warn("%s:%d: bad scram-sha-256 field, SCRAM disabled for %s",
				 db->path, lineno, address);
		if (db->count == cap) {
			cap = cap ? cap * 2 : 64;
			db->entries = xrealloc(db->entries, cap * sizeof(*db->entries));
		}
		db->entries[db->count] = (struct userdb_entry){
			xstrdup(address), xstrdup(hash), scram, db->count };
		db->count++;
	}
	userdb_sort(db);
}

/*
 * Reads the file again if it changed since the last read. A stat per
 * lookup is cheap next to the crypt() that follows; comparing inode, size
 * and mtime catches both an atomic rename (new inode) and an edit in place.
 */
static int
userdb_refresh(struct userdb *db)
{
	struct stat st;
	if (stat(db->path, &st) < 0) {
		log_err("%s: %s", db->path, strerror(errno));
		return -1;
	}
	if (db->loaded && st.st_ino == db->st.st_ino && st.st_size == db->st.st_size &&
	    st.st_mtim.tv_sec == db->st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == db->st.st_mtim.tv_nsec)
		return 0;
	char *text = read_file(db->path, USERDB_MAX_FILE, NULL);
	if (text == NULL) {
		log_err("%s: cannot read: %s", db->path, strerror(errno));
		return -1;
	}
	userdb_clear(db);
	userdb_parse(db, text);
	free(text);
	db->st = st;
	db->loaded = true;
	log_debug("%s: %zu users", db->path, db->count);
	return 0;
}

static const struct userdb_entry *
userdb_find(const struct userdb *db, const char *address)
{
	size_t lo = 0, hi = db->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(address, db->entries[mid].address);
		if (c == 0)
			return &db->entries[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

bool
userdb_exists(struct userdb *db, const char *address)
{
	return userdb_refresh(db) == 0 && userdb_find(db, address) != NULL;
}

/*
 * crypt() of password with setting equals setting, compared in constant
 * time. Thread-safe: crypt_rn with its own data, nothing shared.
 */
bool
userdb_hash_matches(const char *password, const char *setting)
{
	struct crypt_data *data = xcalloc(1, sizeof(*data));
	const char *out = crypt_rn(password, setting, data, sizeof(*data));
	bool ok = out != NULL && out[0] != '*' && strlen(out) == strlen(setting) &&
		  CRYPTO_memcmp(out, setting, strlen(setting)) == 0;
	explicit_bzero(data, sizeof(*data));
	free(data);
	return ok;
}

int
userdb_hash_lookup(struct userdb *db, const char *login, char **address_r,
		   char **setting_r)
{
	if (userdb_refresh(db) < 0)
		return -1;
	char *address = userdb_canonical(db, login);
	const struct userdb_entry *e = userdb_find(db, address);
	/*
	 * An unknown user still costs one crypt() with the default method and
	 * cost, so the answer's timing does not tell which users exist.
	 */
	if (e == NULL && db->dummy_setting == NULL)
		db->dummy_setting = crypt_gensalt_ra("$y$", 0, NULL, 0);
	const char *setting = e != NULL ? e->hash
			    : db->dummy_setting != NULL ? db->dummy_setting
			    : "$6$dummysaltdummy$";
	*address_r = address;
	*setting_r = xstrdup(setting);
	return e != NULL ? 1 : 0;
}

int
userdb_verify(struct userdb *db, const char *login, const char *password,
	      char **address_r)
{
	char *address, *setting;
	int r = userdb_hash_lookup(db, login, &address, &setting);
	if (r < 0)
		return -1;
	bool ok = userdb_hash_matches(password, setting) && r == 1;
	free(setting);
	if (!ok) {
		free(address);
		return 0;
	}
	*address_r = address;
	return 1;
}

/*
 * "*", "!..." or an empty hash locks the account (as in shadow(5)); the
 * SCRAM secrets beside it must not open it again.
 */
static bool
userdb_hash_locked(const char *hash)
{
	return hash[0] == '\0' || hash[0] == '*' || hash[0] == '!';
}

int
userdb_scram_secrets(struct userdb *db, const char *address, struct userdb_scram *out)
{
	if (userdb_refresh(db) < 0)
		return -1;
	const struct userdb_entry *e = userdb_find(db, address);
	if (e == NULL || e->scram == NULL || userdb_hash_locked(e->hash))
		return 0;
	*out = *e->scram;
	return 1;
}

/*
 * RFC 5802 section 3: SaltedPassword := Hi(password, salt, i) (PBKDF2),
 * ClientKey := HMAC(SaltedPassword, "Client Key"), StoredKey := H(ClientKey),
 * ServerKey := HMAC(SaltedPassword, "Server Key"). The password is used as
 * given: SASLprep is not applied, so only ASCII passwords are sure to
 * match what every client computes.
 */
void
userdb_scram_derive(const char *password, const unsigned char *salt, size_t salt_len,
		    unsigned int iterations, struct userdb_scram *out)
{
	unsigned char salted[USERDB_SCRAM_KEY_LEN], client_key[USERDB_SCRAM_KEY_LEN];
	unsigned int len;
	memset(out, 0, sizeof(*out));
	out->iterations = iterations;
	out->salt_len = salt_len < sizeof(out->salt) ? salt_len : sizeof(out->salt);
	memcpy(out->salt, salt, out->salt_len);
	if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), out->salt,
			      (int)out->salt_len, (int)iterations, EVP_sha256(),
			      sizeof(salted), salted) != 1 ||
	    HMAC(EVP_sha256(), salted, sizeof(salted),
		 (const unsigned char *)"Client Key", 10, client_key, &len) == NULL ||
	    EVP_Digest(client_key, sizeof(client_key), out->stored_key, NULL,
		       EVP_sha256(), NULL) != 1 ||
	    HMAC(EVP_sha256(), salted, sizeof(salted),
		 (const unsigned char *)"Server Key", 10, out->server_key, &len) == NULL) {
		/* Only on a broken OpenSSL: leave secrets that match nothing. */
		log_err("SCRAM key derivation failed");
		RAND_bytes(out->stored_key, sizeof(out->stored_key));
	}
	explicit_bzero(salted, sizeof(salted));
	explicit_bzero(client_key, sizeof(client_key));
}

/* ---- editing, for `tern user` ---- */

/* "scram-sha-256=ITER,SALT,STOREDKEY,SERVERKEY" with a fresh random salt. */
static char *
userdb_scram_field_new(const char *password, char **error_r)
{
	unsigned char salt[USERDB_SCRAM_SALT_LEN];
	if (RAND_bytes(salt, sizeof(salt)) != 1) {
		*error_r = xstrdup("cannot make a SCRAM salt: no randomness");
		return NULL;
	}
	struct userdb_scram sc;
	userdb_scram_derive(password, salt, sizeof(salt), USERDB_SCRAM_ITERATIONS, &sc);
	char *s64 = base64_encode(sc.salt, sc.salt_len);
	char *k64 = base64_encode(sc.stored_key, sizeof(sc.stored_key));
	char *v64 = base64_encode(sc.server_key, sizeof(sc.server_key));
	char *field = xasprintf(USERDB_SCRAM_PREFIX "%u,%s,%s,%s", sc.iterations,
				s64, k64, v64);
	explicit_bzero(&sc, sizeof(sc));
	free(s64);
	free(k64);
	free(v64);
	return field;
}

/* A new yescrypt hash of password with a fresh random salt. */
static char *
userdb_hash_new(const char *password, char **error_r)
{
	char *setting = crypt_gensalt_ra("$y$", 0, NULL, 0);
	if (setting == NULL) {
		*error_r = xasprintf("cannot make a password salt: %s", strerror(errno));
		return NULL;
	}
	void *data = NULL;
	int size = 0;
	const char *out = crypt_ra(password, setting, &data, &size);
	char *hash = NULL;
	if (out == NULL || out[0] == '*')
		*error_r = xasprintf("cannot hash the password: %s", strerror(errno));
	else
		hash = xstrdup(out);
	if (data != NULL)
		explicit_bzero(data, (size_t)size);
	free(data);
	free(setting);
	return hash;
}

static char *
userdb_dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (slash == NULL)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

/*
 * Replaces path with data: write PATH.tmp, fsync it, rename over PATH,
 * fsync the directory. A reader (ternd) sees the old or the new file,
 * never a half-written one, and after a crash the change is either fully
 * there or not at all. The new file keeps the old one's owner and group
 * when we may set them (root), so that ternd's user can still read it.
 */
static int
userdb_write_atomic(const char *path, const char *data, size_t len, char **error_r)
{
	char *tmp = xasprintf("%s.tmp", path);
	char *dir = userdb_dir_of(path);
	struct stat old;
	bool have_old = stat(path, &old) == 0;
	int r = -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0) {
		*error_r = xasprintf("%s: %s", tmp, strerror(errno));
		goto out;
	}
	if (have_old && geteuid() == 0)
		(void)!fchown(fd, old.st_uid, old.st_gid);
	if (fchmod(fd, 0640) < 0 || write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		*error_r = xasprintf("%s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		goto out;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		*error_r = xasprintf("%s: %s", path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	if (fsync_dir(dir) < 0) {
		*error_r = xasprintf("%s: fsync: %s", dir, strerror(errno));
		goto out;
	}
	r = 0;
out:
	free(tmp);
	free(dir);
	return r;
}

enum userdb_op { USERDB_ADD, USERDB_PASSWD, USERDB_DELETE };

/*
 * Copies the file line by line into out, replacing or dropping the line of
 * address (comments and order are kept). Returns whether it was found.
 */
static bool
userdb_rewrite(const char *text, const char *address, const char *new_line, struct buf *out)
{
	bool found = false;
	const char *line = text;
	while (*line != '\0') {
		const char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);
		char *copy = xstrndup(line, n), *hash;
		char *addr = userdb_split_line(copy, &hash);
		bool match = addr != NULL && !found && strcmp(str_lower(addr), address) == 0;
		free(copy);
		if (match) {
			found = true;
			if (new_line != NULL)
				buf_appendf(out, "%s\n", new_line);
		} else {
			buf_append(out, line, n);
			buf_appendc(out, '\n');
		}
		line += n + (nl != NULL);
	}
	return found;
}

static int
userdb_edit(const char *path, const char *address, enum userdb_op op,
	    const char *hash, char **error_r)
{
	/* Serialise concurrent `tern user` runs: lock the file's directory. */
	char *dir = userdb_dir_of(path);
	int lock = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lock < 0 || flock(lock, LOCK_EX) < 0) {
		*error_r = xasprintf("%s: cannot lock: %s", dir, strerror(errno));
		free(dir);
		if (lock >= 0)
			close(lock);
		return -1;
	}
	free(dir);
	int r = -1;
	char *text = read_file(path, USERDB_MAX_FILE, NULL);
	if (text == NULL && !(errno == ENOENT && op == USERDB_ADD)) {
		*error_r = xasprintf("%s: cannot read: %s", path, strerror(errno));
		goto out;
	}
	char *line = hash ? xasprintf("%s:%s", address, hash) : NULL;
	struct buf out = BUF_INIT;
	bool found = userdb_rewrite(text ? text : "", address,
				    op == USERDB_ADD ? NULL : line, &out);
	if (op == USERDB_ADD && found)
		*error_r = xasprintf("%s: user exists already", address);
	else if (op != USERDB_ADD && !found)
		*error_r = xasprintf("%s: no such user", address);
	else {
		if (op == USERDB_ADD)
			buf_appendf(&out, "%s\n", line);
		r = userdb_write_atomic(path, out.data ? out.data : "", out.len, error_r);
	}
	free(line);
	buf_free(&out);
out:
	free(text);
	close(lock);
	return r;
}

static int
userdb_edit_password(const char *path, const char *address, const char *password,
		     enum userdb_op op, char **error_r)
{
	char *addr = str_lower(xstrdup(address));
	int r = -1;
	if (!userdb_address_valid(addr)) {
		*error_r = xasprintf("'%s': not a valid address (user@domain)", address);
	} else {
		char *hash = userdb_hash_new(password, error_r);
		char *scram = hash ? userdb_scram_field_new(password, error_r) : NULL;
		if (scram != NULL) {
			char *fields = xasprintf("%s:%s", hash, scram);
			r = userdb_edit(path, addr, op, fields, error_r);
			free(fields);
		}
		free(scram);
		free(hash);
	}
	free(addr);
	return r;
}

int
userdb_add(const char *path, const char *address, const char *password, char **error_r)
{
	return userdb_edit_password(path, address, password, USERDB_ADD, error_r);
}

int
userdb_set_password(const char *path, const char *address, const char *password,
		    char **error_r)
{
	return userdb_edit_password(path, address, password, USERDB_PASSWD, error_r);
}

int
userdb_delete(const char *path, const char *address, char **error_r)
{
	char *addr = str_lower(xstrdup(address));
	int r = userdb_edit(path, addr, USERDB_DELETE, NULL, error_r);
	free(addr);
	return r;
}

int
userdb_list(const char *path, void (*fn)(const char *address, void *ctx), void *ctx,
	    char **error_r)
{
	char *text = read_file(path, USERDB_MAX_FILE, NULL);
	if (text == NULL) {
		*error_r = xasprintf("%s: cannot read: %s", path, strerror(errno));
		return -1;
	}
	for (char *line = text, *next; line != NULL; line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		char *hash;
		char *address = userdb_split_line(line, &hash);
		if (address != NULL && hash != NULL)
			fn(str_lower(address), ctx);
	}
	free(text);
	return 0;
}
