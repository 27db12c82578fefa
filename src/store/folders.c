/*
 * Maildir++ folders (see folders.h for the layout and the name rules).
 * Every change to the tree is made so that a reader (or a crash) sees the
 * old state or the new one: a folder is built in the user's tmp/ and
 * renamed into place; a deleted one is renamed out first and removed
 * after; the subscriptions file is replaced by rename.
 */
#include "store/folders.h"
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mutf7.h"
#include "core/util.h"

#define FOLDERS_NAME_MAX 1024
#define FOLDERS_COMPONENT_MAX 255
#define FOLDERS_SUBS_FILE "subscriptions"
#define FOLDERS_SUBS_LOCK "subscriptions.lock"
#define FOLDERS_SUBS_MAX (1024 * 1024)

static const struct {
	const char *name;
	unsigned flag;
} folders_special[] = {
	{ "Drafts", STORE_FOLDER_DRAFTS },
	{ "Sent", STORE_FOLDER_SENT },
	{ "Trash", STORE_FOLDER_TRASH },
	{ "Junk", STORE_FOLDER_JUNK },
	{ "Archive", STORE_FOLDER_ARCHIVE },
};

static const struct {
	unsigned flag;
	const char *imap;
} folders_flag_names[] = {
	{ STORE_FOLDER_NOSELECT, "\\Noselect" },
	{ STORE_FOLDER_HASCHILDREN, "\\HasChildren" },
	{ STORE_FOLDER_HASNOCHILDREN, "\\HasNoChildren" },
	{ STORE_FOLDER_DRAFTS, "\\Drafts" },
	{ STORE_FOLDER_SENT, "\\Sent" },
	{ STORE_FOLDER_TRASH, "\\Trash" },
	{ STORE_FOLDER_JUNK, "\\Junk" },
	{ STORE_FOLDER_ARCHIVE, "\\Archive" },
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static int
folders_fail(enum store_folder_err *err_r, char **error_r,
	     enum store_folder_err code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
folders_fail(enum store_folder_err *err_r, char **error_r,
	     enum store_folder_err code, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vappendf(&b, fmt, ap);
	va_end(ap);
	*err_r = code;
	*error_r = buf_steal(&b);
	return -1;
}

static int
folders_fail_errno(enum store_folder_err *err_r, char **error_r,
		   const char *what, const char *path)
{
	return folders_fail(err_r, error_r, STORE_FOLDER_ERR_TEMP, "%s %s: %s",
			    what, path, strerror(errno));
}

void
store_folder_flags_format(unsigned flags, struct buf *out)
{
	const char *sep = "";
	for (size_t i = 0; i < NELEM(folders_flag_names); i++) {
		if ((flags & folders_flag_names[i].flag) == 0)
			continue;
		buf_appendf(out, "%s%s", sep, folders_flag_names[i].imap);
		sep = " ";
	}
}

/* ---- names ---- */

/* Control characters in decoded UTF-8: C0, DEL, and C1 (U+0080-U+009F). */
static bool
folders_has_control(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return true;
		if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] <= 0x9f)
			return true;
	}
	return false;
}

/* One '/'-separated component of a wire name (see folders.h). */
static bool
folders_component_ok(const char *s, size_t n)
{
	if (n == 0 || n > FOLDERS_COMPONENT_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (strchr(".\\*%", s[i]) != NULL)
			return false;
	}
	return true;
}

int
store_folder_name_check(const char *name, char **canon_r,
			enum store_folder_err *err_r, char **error_r)
{
	size_t len = strlen(name);
	if (len == 0 || len > FOLDERS_NAME_MAX)
		return folders_fail(err_r, error_r, STORE_FOLDER_ERR_BADNAME,
				    "mailbox name empty or too long");
	struct buf utf8 = BUF_INIT;
	char *merr = NULL;
	int r = mutf7_decode(name, len, &utf8, &merr);
	bool control = r == 0 && folders_has_control(utf8.data, utf8.len);
	buf_free(&utf8);
	free(merr);
	if (r < 0 || control)
		return folders_fail(err_r, error_r, STORE_FOLDER_ERR_BADNAME,
				    "invalid characters in mailbox name");
	/* A trailing '/' only announces a hierarchy (RFC 3501 §6.3.3). */
	char *canon = xstrndup(name, len > 1 && name[len - 1] == '/' ? len - 1 : len);
	for (const char *p = canon;; ) {
		size_t n = strcspn(p, "/");
		if (!folders_component_ok(p, n)) {
			free(canon);
			return folders_fail(err_r, error_r, STORE_FOLDER_ERR_BADNAME,
					    "invalid mailbox name");
		}
		if (p[n] == '\0')
			break;
		p += n + 1;
	}
	/* RFC 3501 §5.1: INBOX is case-insensitive, also as a parent. */
	size_t first = strcspn(canon, "/");
	if (first == 5 && strncasecmp(canon, "INBOX", 5) == 0)
		memcpy(canon, "INBOX", 5);
	if (strcmp(canon, "INBOX") != 0 && strlen(canon) + 1 > NAME_MAX) {
		free(canon);
		return folders_fail(err_r, error_r, STORE_FOLDER_ERR_BADNAME,
				    "mailbox name too long");
	}
	*canon_r = canon;
	return 0;
}

/* ---- paths ---- */

static char *
folders_user_dir(const char *root, const char *address,
		 enum store_folder_err *err_r, char **error_r)
{
	char *dir = store_user_dir(root, address, error_r);
	if (dir == NULL)
		*err_r = STORE_FOLDER_ERR_TEMP;
	return dir;
}

/* ".a.b" for the canonical name "a/b" (not for INBOX). */
static char *
folders_dirname(const char *canon)
{
	char *d = xasprintf(".%s", canon);
	for (char *p = d; *p != '\0'; p++) {
		if (*p == '/')
			*p = '.';
	}
	return d;
}

static char *
folders_dir(const char *udir, const char *canon)
{
	if (strcmp(canon, "INBOX") == 0)
		return xstrdup(udir);
	char *dn = folders_dirname(canon);
	char *path = xasprintf("%s/%s", udir, dn);
	free(dn);
	return path;
}

static bool
folders_is_dir(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Resolves address and name; on success both outputs are set. */
static int
folders_resolve(const char *root, const char *address, const char *name,
		char **udir_r, char **canon_r, enum store_folder_err *err_r,
		char **error_r)
{
	if (store_folder_name_check(name, canon_r, err_r, error_r) < 0)
		return -1;
	*udir_r = folders_user_dir(root, address, err_r, error_r);
	if (*udir_r == NULL) {
		free(*canon_r);
		return -1;
	}
	return 0;
}

char *
store_folder_path(const char *mail_root, const char *address, const char *name,
		  enum store_folder_err *err_r, char **error_r)
{
	char *udir, *canon;
	if (folders_resolve(mail_root, address, name, &udir, &canon, err_r,
			    error_r) < 0)
		return NULL;
	char *path = folders_dir(udir, canon);
	free(udir);
	free(canon);
	return path;
}

bool
store_folder_exists(const char *mail_root, const char *address, const char *name)
{
	enum store_folder_err err;
	char *error = NULL;
	char *path = store_folder_path(mail_root, address, name, &err, &error);
	if (path == NULL) {
		free(error);
		return false;
	}
	bool inbox = strcasecmp(name, "INBOX") == 0;
	bool r = inbox || folders_is_dir(path);
	free(path);
	return r;
}

/* ---- creating ---- */

/* rename() that never replaces: a plain rename would silently replace an
 * empty directory of the target name. Falls back where unsupported. */
static int
folders_rename_noreplace(const char *from, const char *to)
{
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	struct stat sb;
	if (lstat(to, &sb) == 0) {
		errno = EEXIST;
		return -1;
	}
	return rename(from, to);
}

/* The user's own Maildir (INBOX): DIR/{cur,new,tmp}. */
static int
folders_inbox_ensure(const char *udir, enum store_folder_err *err_r,
		     char **error_r)
{
	static const char *const subs[] = { "cur", "new", "tmp" };
	for (size_t i = 0; i < NELEM(subs); i++) {
		char *sub = xasprintf("%s/%s", udir, subs[i]);
		int r = mkdir_p(sub, 0700);
		free(sub);
		if (r < 0)
			return folders_fail_errno(err_r, error_r, "mkdir", udir);
	}
	return 0;
}

/* Fills a new folder directory: cur/ new/ tmp/ and "maildirfolder". */
static int
folders_fill(const char *dir)
{
	static const char *const subs[] = { "cur", "new", "tmp" };
	for (size_t i = 0; i < NELEM(subs); i++) {
		char *sub = xasprintf("%s/%s", dir, subs[i]);
		int r = mkdir(sub, 0700);
		free(sub);
		if (r < 0)
			return -1;
	}
	char *marker = xasprintf("%s/maildirfolder", dir);
	int fd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	free(marker);
	if (fd < 0)
		return -1;
	close(fd);
	return fsync_dir(dir);
}

static int
folders_rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* rm -rf without following symlinks (FTW_PHYS). */
static int
folders_rm_tree(const char *path)
{
	return nftw(path, folders_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * Makes one folder directory. It is built complete in the user's tmp/
 * and renamed into place, so no reader ever sees a folder without its
 * cur/ new/ tmp/; the rename must not replace, which is how a concurrent
 * CREATE of the same name is detected.
 */
static int
folders_make(const char *udir, const char *canon, enum store_folder_err *err_r,
	     char **error_r)
{
	char id[13];
	make_id(id);
	char *tmp = xasprintf("%s/tmp/.folder-%s", udir, id);
	char *dir = folders_dir(udir, canon);
	int r = 0;
	if (mkdir(tmp, 0700) < 0 || folders_fill(tmp) < 0) {
		r = folders_fail_errno(err_r, error_r, "create", tmp);
	} else if (folders_rename_noreplace(tmp, dir) < 0) {
		if (errno == EEXIST || errno == ENOTEMPTY)
			r = folders_fail(err_r, error_r, STORE_FOLDER_ERR_EXISTS,
					 "mailbox already exists");
		else
			r = folders_fail_errno(err_r, error_r, "rename", dir);
	} else if (fsync_dir(udir) < 0) {
		/* The new entry in the user's directory must be durable. */
		r = folders_fail_errno(err_r, error_r, "fsync", udir);
	}
	if (r < 0)
		folders_rm_tree(tmp);
	free(tmp);
	free(dir);
	return r;
}

/* Creates the parents of canon that are missing ("a", "a/b" for "a/b/c"). */
static int
folders_make_parents(const char *udir, const char *canon,
		     enum store_folder_err *err_r, char **error_r)
{
	char *name = xstrdup(canon);
	int r = 0;
	for (char *slash = strchr(name, '/'); slash != NULL && r == 0;
	     slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		char *dir = folders_dir(udir, name);
		if (!folders_is_dir(dir) &&
		    folders_make(udir, name, err_r, error_r) < 0) {
			if (*err_r != STORE_FOLDER_ERR_EXISTS) {
				r = -1;
			} else {
				/* Made meanwhile by another session: fine. */
				free(*error_r);
				*error_r = NULL;
				*err_r = STORE_FOLDER_OK;
			}
		}
		free(dir);
		*slash = '/';
	}
	free(name);
	return r;
}

/* Creates canon (and its parents) in udir, which is known to be valid. */
static int
folders_create(const char *udir, const char *canon, enum store_folder_err *err_r,
	       char **error_r)
{
	if (strcmp(canon, "INBOX") == 0)
		return folders_fail(err_r, error_r, STORE_FOLDER_ERR_EXISTS,
				    "INBOX always exists");
	*err_r = STORE_FOLDER_OK;
	if (folders_inbox_ensure(udir, err_r, error_r) < 0 ||
	    folders_make_parents(udir, canon, err_r, error_r) < 0)
		return -1;
	char *dir = folders_dir(udir, canon);
	bool exists = folders_is_dir(dir);
	free(dir);
	if (exists)
		return folders_fail(err_r, error_r, STORE_FOLDER_ERR_EXISTS,
				    "mailbox already exists");
	return folders_make(udir, canon, err_r, error_r);
}

int
store_folder_create(const char *mail_root, const char *address,
		    const char *name, enum store_folder_err *err_r,
		    char **error_r)
{
	char *udir, *canon;
	if (folders_resolve(mail_root, address, name, &udir, &canon, err_r,
			    error_r) < 0)
		return -1;
	int r = folders_create(udir, canon, err_r, error_r);
	free(udir);
	free(canon);
	return r;
}

/* ---- listing ---- */

struct folders_vec {
	struct store_folder *v;
	size_t n, cap;
};

static void
folders_vec_add(struct folders_vec *vec, const char *name, unsigned flags)
{
	if (vec->n == vec->cap) {
		vec->cap = vec->cap == 0 ? 16 : vec->cap * 2;
		vec->v = xrealloc(vec->v, vec->cap * sizeof(*vec->v));
	}
	vec->v[vec->n].name = xstrdup(name);
	vec->v[vec->n].flags = flags;
	vec->n++;
}

static bool
folders_vec_has(const struct folders_vec *vec, const char *name)
{
	for (size_t i = 0; i < vec->n; i++) {
		if (strcmp(vec->v[i].name, name) == 0)
			return true;
	}
	return false;
}

/*
 * The folder a directory entry stands for, or NULL: only ".a.b" directories
 * whose name passes the same rules as a new name (and is spelt canonically)
 * count, so stray entries made by other tools are never shown.
 */
static char *
folders_entry_name(int dfd, const struct dirent *de)
{
	const char *dn = de->d_name;
	if (dn[0] != '.' || dn[1] == '\0' || strcmp(dn, "..") == 0)
		return NULL;
	struct stat sb;
	if (fstatat(dfd, dn, &sb, 0) < 0 || !S_ISDIR(sb.st_mode))
		return NULL;
	char *wire = xstrdup(dn + 1);
	for (char *p = wire; *p != '\0'; p++) {
		if (*p == '.')
			*p = '/';
	}
	char *canon = NULL, *error = NULL;
	enum store_folder_err err;
	if (store_folder_name_check(wire, &canon, &err, &error) < 0 ||
	    strcmp(canon, wire) != 0 || strcmp(canon, "INBOX") == 0) {
		free(canon);
		canon = NULL;
	}
	free(error);
	free(wire);
	return canon;
}

static int
folders_scan(const char *udir, struct folders_vec *vec,
	     enum store_folder_err *err_r, char **error_r)
{
	DIR *d = opendir(udir);
	if (d == NULL)
		return errno == ENOENT ? 0 :
			folders_fail_errno(err_r, error_r, "opendir", udir);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		char *name = folders_entry_name(dirfd(d), de);
		if (name != NULL)
			folders_vec_add(vec, name, 0);
		free(name);
	}
	closedir(d);
	return 0;
}

/* Parents that have no directory of their own are listed \Noselect. */
static void
folders_add_parents(struct folders_vec *vec)
{
	for (size_t i = 0; i < vec->n; i++) {
		char *name = xstrdup(vec->v[i].name);
		char *slash = strrchr(name, '/');
		if (slash != NULL) {
			*slash = '\0';
			if (!folders_vec_has(vec, name))
				folders_vec_add(vec, name, STORE_FOLDER_NOSELECT);
		}
		free(name);
	}
}

static int
folders_cmp(const void *a, const void *b)
{
	const struct store_folder *x = a, *y = b;
	bool xi = strcmp(x->name, "INBOX") == 0, yi = strcmp(y->name, "INBOX") == 0;
	if (xi || yi)
		return yi - xi;
	return strcmp(x->name, y->name);
}

static void
folders_set_flags(struct folders_vec *vec)
{
	for (size_t i = 0; i < vec->n; i++) {
		struct store_folder *f = &vec->v[i];
		size_t len = strlen(f->name);
		bool children = false;
		for (size_t j = 0; j < vec->n && !children; j++)
			children = strncmp(vec->v[j].name, f->name, len) == 0 &&
				vec->v[j].name[len] == '/';
		f->flags |= children ? STORE_FOLDER_HASCHILDREN :
			STORE_FOLDER_HASNOCHILDREN;
		for (size_t k = 0; k < NELEM(folders_special); k++) {
			if (strcmp(f->name, folders_special[k].name) == 0)
				f->flags |= folders_special[k].flag;
		}
	}
}

int
store_folder_list(const char *mail_root, const char *address,
		  struct store_folder **folders_r, size_t *count_r,
		  enum store_folder_err *err_r, char **error_r)
{
	char *udir = folders_user_dir(mail_root, address, err_r, error_r);
	if (udir == NULL)
		return -1;
	struct folders_vec vec = { NULL, 0, 0 };
	folders_vec_add(&vec, "INBOX", 0);
	int r = folders_scan(udir, &vec, err_r, error_r);
	free(udir);
	if (r < 0) {
		store_folder_list_free(&vec.v, vec.n);
		return -1;
	}
	folders_add_parents(&vec);
	qsort(vec.v, vec.n, sizeof(*vec.v), folders_cmp);
	folders_set_flags(&vec);
	*folders_r = vec.v;
	*count_r = vec.n;
	return 0;
}

void
store_folder_list_free(struct store_folder **folders, size_t count)
{
	if (*folders == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		free((*folders)[i].name);
	free(*folders);
	*folders = NULL;
}

void
store_folder_names_free(char ***names, size_t count)
{
	if (*names == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		free((*names)[i]);
	free(*names);
	*names = NULL;
}

/* ---- deleting and renaming ---- */

/* Directory names (".a.b.c") of the inferiors of canon, in udir. */
static int
folders_children(const char *udir, const char *canon, char ***names_r,
		 size_t *count_r, enum store_folder_err *err_r, char **error_r)
{
	DIR *d = opendir(udir);
	if (d == NULL)
		return folders_fail_errno(err_r, error_r, "opendir", udir);
	char *dn = folders_dirname(canon);
	size_t dlen = strlen(dn), n = 0;
	char **names = NULL;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, dn, dlen) != 0 || de->d_name[dlen] != '.')
			continue;
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	free(dn);
	*names_r = names;
	*count_r = n;
	return 0;
}

static int
folders_delete(const char *udir, const char *canon, enum store_folder_err *err_r,
	       char **error_r)
{
	if (strcmp(canon, "INBOX") == 0)
		return folders_fail(err_r, error_r, STORE_FOLDER_ERR_NOTALLOWED,
				    "INBOX cannot be deleted");
	char *dir = folders_dir(udir, canon);
	char **kids = NULL;
	size_t nkids = 0;
	int r = 0;
	if (!folders_is_dir(dir))
		r = folders_fail(err_r, error_r, STORE_FOLDER_ERR_NONEXISTENT,
				 "no such mailbox");
	else if (folders_children(udir, canon, &kids, &nkids, err_r, error_r) < 0)
		r = -1;
	else if (nkids > 0)
		r = folders_fail(err_r, error_r, STORE_FOLDER_ERR_HASCHILDREN,
				 "mailbox has inferior hierarchical names");
	store_folder_names_free(&kids, nkids);
	if (r < 0) {
		free(dir);
		return -1;
	}
	/*
	 * Renamed out of the user's tree first, so the mailbox vanishes at
	 * once and whole; a crash during the removal leaves only litter in
	 * tmp/, never a half-emptied mailbox.
	 */
	char id[13];
	make_id(id);
	char *gone = xasprintf("%s/tmp/.deleted-%s", udir, id);
	if (rename(dir, gone) < 0)
		r = folders_fail_errno(err_r, error_r, "rename", dir);
	else if (fsync_dir(udir) < 0)
		r = folders_fail_errno(err_r, error_r, "fsync", udir);
	else if (folders_rm_tree(gone) < 0)
		r = folders_fail_errno(err_r, error_r, "remove", gone);
	free(gone);
	free(dir);
	return r;
}

int
store_folder_delete(const char *mail_root, const char *address,
		    const char *name, enum store_folder_err *err_r,
		    char **error_r)
{
	char *udir, *canon;
	if (folders_resolve(mail_root, address, name, &udir, &canon, err_r,
			    error_r) < 0)
		return -1;
	int r = folders_delete(udir, canon, err_r, error_r);
	free(udir);
	free(canon);
	return r;
}

/* Moves every message file of INBOX's sub/ into the same sub/ of to. */
static int
folders_move_msgs(const char *udir, const char *to, const char *sub,
		  enum store_folder_err *err_r, char **error_r)
{
	char *from_sub = xasprintf("%s/%s", udir, sub);
	char *to_sub = xasprintf("%s/%s", to, sub);
	DIR *d = opendir(from_sub);
	int r = 0;
	if (d == NULL && errno != ENOENT)
		r = folders_fail_errno(err_r, error_r, "opendir", from_sub);
	struct dirent *de;
	while (d != NULL && r == 0 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char *a = xasprintf("%s/%s", from_sub, de->d_name);
		char *b = xasprintf("%s/%s", to_sub, de->d_name);
		if (rename(a, b) < 0 && errno != ENOENT)
			r = folders_fail_errno(err_r, error_r, "rename", a);
		free(a);
		free(b);
	}
	if (d != NULL)
		closedir(d);
	/* The new entries first: a crash in between may show a message in
	 * both mailboxes, never in neither. */
	if (r == 0 && (fsync_dir(to_sub) < 0 || (d != NULL && fsync_dir(from_sub) < 0)))
		r = folders_fail_errno(err_r, error_r, "fsync", to_sub);
	free(from_sub);
	free(to_sub);
	return r;
}

/* RENAME INBOX (RFC 3501 §6.3.5): a new mailbox gets all of its mail. */
static int
folders_rename_inbox(const char *udir, const char *to_canon,
		     enum store_folder_err *err_r, char **error_r)
{
	if (folders_create(udir, to_canon, err_r, error_r) < 0)
		return -1;
	char *to = folders_dir(udir, to_canon);
	int r = folders_move_msgs(udir, to, "new", err_r, error_r);
	if (r == 0)
		r = folders_move_msgs(udir, to, "cur", err_r, error_r);
	free(to);
	return r;
}

/* Renames ".old" and then every ".old.X" to ".new.X". */
static int
folders_rename_tree(const char *udir, const char *from, const char *to,
		    enum store_folder_err *err_r, char **error_r)
{
	char **kids = NULL;
	size_t nkids = 0;
	if (folders_children(udir, from, &kids, &nkids, err_r, error_r) < 0)
		return -1;
	char *fdn = folders_dirname(from), *tdn = folders_dirname(to);
	size_t flen = strlen(fdn), tlen = strlen(tdn);
	int r = 0;
	for (size_t i = 0; i < nkids && r == 0; i++) {
		if (tlen + strlen(kids[i]) - flen > NAME_MAX)
			r = folders_fail(err_r, error_r, STORE_FOLDER_ERR_BADNAME,
					 "new name too long for an inferior");
	}
	if (r == 0 && (folders_inbox_ensure(udir, err_r, error_r) < 0 ||
		       folders_make_parents(udir, to, err_r, error_r) < 0))
		r = -1;
	for (size_t i = 0; i <= nkids && r == 0; i++) {
		/* i == 0: the mailbox itself; then its inferiors. */
		const char *tail = i == 0 ? "" : kids[i - 1] + flen;
		char *a = xasprintf("%s/%s%s", udir, fdn, tail);
		char *b = xasprintf("%s/%s%s", udir, tdn, tail);
		if (folders_rename_noreplace(a, b) < 0)
			r = errno == EEXIST || errno == ENOTEMPTY ?
				folders_fail(err_r, error_r, STORE_FOLDER_ERR_EXISTS,
					     "mailbox already exists") :
				folders_fail_errno(err_r, error_r, "rename", a);
		free(a);
		free(b);
	}
	if (r == 0 && fsync_dir(udir) < 0)
		r = folders_fail_errno(err_r, error_r, "fsync", udir);
	store_folder_names_free(&kids, nkids);
	free(fdn);
	free(tdn);
	return r;
}

static int
folders_rename(const char *udir, const char *from, const char *to,
	       enum store_folder_err *err_r, char **error_r)
{
	bool inbox = strcmp(from, "INBOX") == 0;
	size_t flen = strlen(from);
	if (strcmp(to, "INBOX") == 0 || strcmp(from, to) == 0)
		return folders_fail(err_r, error_r, STORE_FOLDER_ERR_EXISTS,
				    "mailbox already exists");
	if (!inbox && strncmp(to, from, flen) == 0 && to[flen] == '/')
		return folders_fail(err_r, error_r, STORE_FOLDER_ERR_NOTALLOWED,
				    "cannot rename a mailbox into itself");
	char *fdir = folders_dir(udir, from), *tdir = folders_dir(udir, to);
	bool from_ok = inbox || folders_is_dir(fdir), to_exists = folders_is_dir(tdir);
	free(fdir);
	free(tdir);
	if (!from_ok)
		return folders_fail(err_r, error_r, STORE_FOLDER_ERR_NONEXISTENT,
				    "no such mailbox");
	if (to_exists)
		return folders_fail(err_r, error_r, STORE_FOLDER_ERR_EXISTS,
				    "mailbox already exists");
	if (inbox)
		return folders_rename_inbox(udir, to, err_r, error_r);
	return folders_rename_tree(udir, from, to, err_r, error_r);
}

int
store_folder_rename(const char *mail_root, const char *address,
		    const char *old_name, const char *new_name,
		    enum store_folder_err *err_r, char **error_r)
{
	char *udir, *from, *to;
	if (folders_resolve(mail_root, address, old_name, &udir, &from, err_r,
			    error_r) < 0)
		return -1;
	int r = store_folder_name_check(new_name, &to, err_r, error_r);
	if (r == 0) {
		*err_r = STORE_FOLDER_OK;
		r = folders_rename(udir, from, to, err_r, error_r);
		free(to);
	}
	free(udir);
	free(from);
	return r;
}

/* ---- subscriptions ---- */

static int
folders_subs_read(const char *udir, char ***names_r, size_t *count_r,
		  enum store_folder_err *err_r, char **error_r)
{
	char *path = xasprintf("%s/%s", udir, FOLDERS_SUBS_FILE);
	size_t len;
	char *data = read_file(path, FOLDERS_SUBS_MAX, &len);
	*names_r = NULL;
	*count_r = 0;
	if (data == NULL) {
		int r = errno == ENOENT ? 0 :
			folders_fail_errno(err_r, error_r, "read", path);
		free(path);
		return r;
	}
	free(path);
	for (char *line = data, *next; line < data + len; line = next) {
		next = memchr(line, '\n', (size_t)(data + len - line));
		next = next == NULL ? data + len : next + 1;
		size_t n = strcspn(line, "\n");
		if (n == 0)
			continue;
		*names_r = xrealloc(*names_r, (*count_r + 1) * sizeof(**names_r));
		(*names_r)[(*count_r)++] = xstrndup(line, n);
	}
	free(data);
	return 0;
}

/* Replaces the file: tmp, fsync, rename, fsync dir (the lock is held). */
static int
folders_subs_write(const char *udir, char **names, size_t count,
		   enum store_folder_err *err_r, char **error_r)
{
	char *tmp = xasprintf("%s/%s.tmp", udir, FOLDERS_SUBS_FILE);
	char *path = xasprintf("%s/%s", udir, FOLDERS_SUBS_FILE);
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < count; i++)
		buf_appendf(&b, "%s\n", names[i]);
	int r = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = folders_fail_errno(err_r, error_r, "open", tmp);
	} else {
		if (write_all(fd, b.data, b.len) < 0 || fsync(fd) < 0)
			r = folders_fail_errno(err_r, error_r, "write", tmp);
		if (close(fd) < 0 && r == 0)
			r = folders_fail_errno(err_r, error_r, "close", tmp);
	}
	/* Data durable before the name moves; the rename durable before OK. */
	if (r == 0 && rename(tmp, path) < 0)
		r = folders_fail_errno(err_r, error_r, "rename", tmp);
	if (r == 0 && fsync_dir(udir) < 0)
		r = folders_fail_errno(err_r, error_r, "fsync", udir);
	if (r < 0)
		unlink(tmp);
	buf_free(&b);
	free(tmp);
	free(path);
	return r;
}

/* Serialises read-modify-write of the file between sessions. */
static int
folders_subs_lock(const char *udir, enum store_folder_err *err_r, char **error_r)
{
	if (mkdir_p(udir, 0700) < 0)
		return folders_fail_errno(err_r, error_r, "mkdir", udir);
	char *path = xasprintf("%s/%s", udir, FOLDERS_SUBS_LOCK);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		folders_fail_errno(err_r, error_r, "lock", path);
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	free(path);
	return fd;
}

/* Adds (add) or removes the canonical names; writes only on a change. */
static int
folders_subs_edit(const char *udir, const char *const *canon, size_t ncanon,
		  bool add, enum store_folder_err *err_r, char **error_r)
{
	int lock = folders_subs_lock(udir, err_r, error_r);
	if (lock < 0)
		return -1;
	char **names;
	size_t n;
	int r = folders_subs_read(udir, &names, &n, err_r, error_r);
	bool changed = false;
	for (size_t c = 0; c < ncanon && r == 0; c++) {
		size_t i = 0;
		while (i < n && strcmp(names[i], canon[c]) != 0)
			i++;
		if (add && i == n) {
			names = xrealloc(names, (n + 1) * sizeof(*names));
			names[n++] = xstrdup(canon[c]);
			changed = true;
		} else if (!add && i < n) {
			free(names[i]);
			memmove(&names[i], &names[i + 1], (n - i - 1) * sizeof(*names));
			n--;
			changed = true;
		} else if (!add) {
			r = folders_fail(err_r, error_r, STORE_FOLDER_ERR_NONEXISTENT,
					 "not subscribed");
		}
	}
	if (r == 0 && changed)
		r = folders_subs_write(udir, names, n, err_r, error_r);
	store_folder_names_free(&names, n);
	close(lock);
	return r;
}

static int
folders_subscribe(const char *mail_root, const char *address, const char *name,
		  bool add, enum store_folder_err *err_r, char **error_r)
{
	char *udir, *canon;
	if (folders_resolve(mail_root, address, name, &udir, &canon, err_r,
			    error_r) < 0)
		return -1;
	const char *one[1] = { canon };
	int r = folders_subs_edit(udir, one, 1, add, err_r, error_r);
	free(udir);
	free(canon);
	return r;
}

int
store_folder_subscribe(const char *mail_root, const char *address,
		       const char *name, enum store_folder_err *err_r,
		       char **error_r)
{
	return folders_subscribe(mail_root, address, name, true, err_r, error_r);
}

int
store_folder_unsubscribe(const char *mail_root, const char *address,
			 const char *name, enum store_folder_err *err_r,
			 char **error_r)
{
	return folders_subscribe(mail_root, address, name, false, err_r, error_r);
}

int
store_folder_subscriptions(const char *mail_root, const char *address,
			   char ***names_r, size_t *count_r,
			   enum store_folder_err *err_r, char **error_r)
{
	char *udir = folders_user_dir(mail_root, address, err_r, error_r);
	if (udir == NULL)
		return -1;
	/* No lock: the file is only ever replaced whole, by rename. */
	int r = folders_subs_read(udir, names_r, count_r, err_r, error_r);
	free(udir);
	return r;
}

/* ---- a new user ---- */

int
store_user_init(const char *mail_root, const char *address,
		enum store_folder_err *err_r, char **error_r)
{
	char *udir = folders_user_dir(mail_root, address, err_r, error_r);
	if (udir == NULL)
		return -1;
	const char *all[NELEM(folders_special) + 1] = { "INBOX" };
	int r = folders_inbox_ensure(udir, err_r, error_r);
	for (size_t i = 0; i < NELEM(folders_special) && r == 0; i++) {
		all[i + 1] = folders_special[i].name;
		char *dir = folders_dir(udir, folders_special[i].name);
		if (!folders_is_dir(dir))
			r = folders_create(udir, folders_special[i].name, err_r,
					   error_r);
		free(dir);
	}
	if (r == 0)
		r = folders_subs_edit(udir, all, NELEM(all), true, err_r, error_r);
	free(udir);
	return r;
}
