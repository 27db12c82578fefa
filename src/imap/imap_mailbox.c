/*
 * IMAP mailbox management in the authenticated state (RFC 3501 §6.3):
 * LIST and LSUB with '*' and '%' wildcards, CREATE, DELETE, RENAME,
 * SUBSCRIBE, UNSUBSCRIBE over store/folders.h, with RFC 5530 response
 * codes and RFC 6154 special-use attributes.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "imap/imap_parse.h"
#include "imap/imap_private.h"
#include "io/conn.h"
#include "store/folders.h"

/* A reference plus pattern longer than this matches nothing we store. */
#define IMAP_PATTERN_MAX 2048

struct imap_folder_err {
	enum store_folder_err err;
	const char *code;
};

/* RFC 5530 codes for the store's errors. */
static const struct imap_folder_err imap_folder_errs[] = {
	{ STORE_FOLDER_ERR_NONEXISTENT, "NONEXISTENT" },
	{ STORE_FOLDER_ERR_EXISTS, "ALREADYEXISTS" },
	{ STORE_FOLDER_ERR_BADNAME, "CANNOT" },
	{ STORE_FOLDER_ERR_NOTALLOWED, "CANNOT" },
	{ STORE_FOLDER_ERR_HASCHILDREN, "INUSE" },
	{ STORE_FOLDER_ERR_TEMP, "SERVERBUG" },
};

/* Answers a failed store call; the reason is made printable (it may quote
   a peer-chosen name that came as a literal). */
static void
imap_folder_failed(struct imap_session *s, enum store_folder_err err, char *error)
{
	const char *code = "SERVERBUG";
	for (size_t i = 0; i < sizeof(imap_folder_errs) / sizeof(imap_folder_errs[0]); i++) {
		if (imap_folder_errs[i].err == err)
			code = imap_folder_errs[i].code;
	}
	if (err == STORE_FOLDER_ERR_TEMP) {
		log_err("imap %s: user=%s mailbox error: %s", s->id, s->address, error);
		conn_printf(s->conn, "%s NO [SERVERBUG] Internal error, try again\r\n", s->tag);
	} else {
		for (char *p = error; p != NULL && *p != '\0'; p++) {
			if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
				*p = '?';
		}
		conn_printf(s->conn, "%s NO [%s] %s\r\n", s->tag, code,
			    error != NULL ? error : "Failed");
	}
	free(error);
}

void
imap_append_quoted(struct buf *out, const char *name)
{
	buf_appends(out, "\"");
	for (const char *p = name; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			buf_appends(out, "\\");
		buf_append(out, p, 1);
	}
	buf_appends(out, "\"");
}

/*
 * RFC 3501 §6.3.8: '*' matches anything, '%' anything but the hierarchy
 * separator. Dynamic programming over the name, O(pattern * name), so no
 * pattern can make matching take exponential time.
 */
static bool
imap_match(const char *pat, const char *name)
{
	size_t n = strlen(name);
	bool *prev = xcalloc(n + 1, sizeof(bool));
	bool *cur = xcalloc(n + 1, sizeof(bool));
	prev[0] = true;
	for (const char *p = pat; *p != '\0'; p++) {
		cur[0] = (*p == '*' || *p == '%') && prev[0];
		for (size_t j = 1; j <= n; j++) {
			if (*p == '*')
				cur[j] = prev[j] || cur[j - 1];
			else if (*p == '%')
				cur[j] = prev[j] || (cur[j - 1] && name[j - 1] != '/');
			else
				cur[j] = prev[j - 1] && name[j - 1] == *p;
		}
		bool *t = prev;
		prev = cur;
		cur = t;
	}
	bool r = prev[n];
	free(prev);
	free(cur);
	return r;
}

/*
 * Reference and pattern joined into one pattern. INBOX is case-insensitive
 * (§5.1): a leading "inbox" component is spelt as the store spells it.
 */
static char *
imap_list_pattern(const char *ref, const char *pat)
{
	char *full = xasprintf("%s%s", ref, pat);
	if (strncasecmp(full, "INBOX", 5) == 0 && (full[5] == '\0' || full[5] == '/'))
		memcpy(full, "INBOX", 5);
	return full;
}

/* Gets "reference pattern"; -1 after a BAD. */
static int
imap_list_args(struct imap_session *s, const struct imap_arg *args, size_t argc,
	       const char **ref_r, const char **pat_r)
{
	size_t len;
	if (argc != 2 || !imap_arg_get_astring(&args[0], ref_r, &len) ||
	    !imap_arg_get_astring(&args[1], pat_r, &len)) {
		imap_reply_bad(s, "Expected a reference and a mailbox pattern");
		return -1;
	}
	if (strlen(*ref_r) + strlen(*pat_r) > IMAP_PATTERN_MAX) {
		imap_reply_bad(s, "Pattern too long");
		return -1;
	}
	return 0;
}

int
imap_cmd_list(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	const char *ref, *pat;
	if (imap_list_args(s, args, argc, &ref, &pat) < 0)
		return -1;
	if (pat[0] == '\0') {
		/* §6.3.8: an empty pattern asks for the separator and root. */
		conn_writes(s->conn, "* LIST (\\Noselect) \"/\" \"\"\r\n");
		conn_printf(s->conn, "%s OK LIST completed\r\n", s->tag);
		return 0;
	}
	struct store_folder *folders = NULL;
	size_t count = 0;
	enum store_folder_err err;
	char *error = NULL;
	if (store_folder_list(s->mail_root, s->address, &folders, &count, &err, &error) < 0) {
		imap_folder_failed(s, err, error);
		return 0;
	}
	char *full = imap_list_pattern(ref, pat);
	struct buf out = BUF_INIT;
	for (size_t i = 0; i < count; i++) {
		if (!imap_match(full, folders[i].name))
			continue;
		buf_appends(&out, "* LIST (");
		store_folder_flags_format(folders[i].flags, &out);
		buf_appends(&out, ") \"/\" ");
		imap_append_quoted(&out, folders[i].name);
		buf_appends(&out, "\r\n");
	}
	buf_appendf(&out, "%s OK LIST completed\r\n", s->tag);
	conn_write(s->conn, out.data, out.len);
	buf_free(&out);
	free(full);
	store_folder_list_free(&folders, count);
	return 0;
}

int
imap_cmd_lsub(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	const char *ref, *pat;
	if (imap_list_args(s, args, argc, &ref, &pat) < 0)
		return -1;
	char **names = NULL;
	size_t count = 0;
	enum store_folder_err err;
	char *error = NULL;
	if (store_folder_subscriptions(s->mail_root, s->address, &names, &count, &err,
				       &error) < 0) {
		imap_folder_failed(s, err, error);
		return 0;
	}
	char *full = imap_list_pattern(ref, pat);
	struct buf out = BUF_INIT;
	for (size_t i = 0; i < count && pat[0] != '\0'; i++) {
		if (!imap_match(full, names[i]))
			continue;
		buf_appends(&out, "* LSUB () \"/\" ");
		imap_append_quoted(&out, names[i]);
		buf_appends(&out, "\r\n");
	}
	buf_appendf(&out, "%s OK LSUB completed\r\n", s->tag);
	conn_write(s->conn, out.data, out.len);
	buf_free(&out);
	free(full);
	store_folder_names_free(&names, count);
	return 0;
}

typedef int imap_folder_op(const char *mail_root, const char *address, const char *name,
			   enum store_folder_err *err_r, char **error_r);

/* The commands taking one mailbox name: CREATE, DELETE, (UN)SUBSCRIBE. */
static int
imap_folder_cmd(struct imap_session *s, const struct imap_arg *args, size_t argc,
		imap_folder_op *op, const char *what)
{
	const char *name;
	size_t len;
	if (argc != 1 || !imap_arg_get_astring(&args[0], &name, &len)) {
		imap_reply_bad(s, "Expected one mailbox name");
		return -1;
	}
	enum store_folder_err err;
	char *error = NULL;
	if (op(s->mail_root, s->address, name, &err, &error) < 0) {
		imap_folder_failed(s, err, error);
		return 0;
	}
	conn_printf(s->conn, "%s OK %s completed\r\n", s->tag, what);
	return 0;
}

int
imap_cmd_create(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	return imap_folder_cmd(s, args, argc, store_folder_create, "CREATE");
}

int
imap_cmd_delete(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	return imap_folder_cmd(s, args, argc, store_folder_delete, "DELETE");
}

int
imap_cmd_subscribe(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	return imap_folder_cmd(s, args, argc, store_folder_subscribe, "SUBSCRIBE");
}

int
imap_cmd_unsubscribe(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	return imap_folder_cmd(s, args, argc, store_folder_unsubscribe, "UNSUBSCRIBE");
}

int
imap_cmd_rename(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	const char *from, *to;
	size_t len;
	if (argc != 2 || !imap_arg_get_astring(&args[0], &from, &len) ||
	    !imap_arg_get_astring(&args[1], &to, &len)) {
		imap_reply_bad(s, "Expected two mailbox names");
		return -1;
	}
	enum store_folder_err err;
	char *error = NULL;
	if (store_folder_rename(s->mail_root, s->address, from, to, &err, &error) < 0) {
		imap_folder_failed(s, err, error);
		return 0;
	}
	conn_printf(s->conn, "%s OK RENAME completed\r\n", s->tag);
	return 0;
}
