#ifndef TERN_STORE_FOLDERS_H
#define TERN_STORE_FOLDERS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

/*
 * Mailbox folders of a user's Maildir (Maildir++ layout), for IMAP.
 *
 * Names in this API are IMAP wire names: modified UTF-7 (RFC 3501 §5.1.3),
 * hierarchy separator '/'. "INBOX" (any case) is the Maildir itself,
 * mail_root/DOMAIN/LOCAL/{cur,new,tmp}; every other mailbox "a/b" is the
 * directory mail_root/DOMAIN/LOCAL/.a.b/ holding cur/ new/ tmp/ and an empty
 * "maildirfolder" file. Directory names keep the modified UTF-7 spelling,
 * as Dovecot does, so Maildir tools only ever see ASCII.
 *
 * Name rules (anything else is STORE_FOLDER_ERR_BADNAME):
 *  - valid canonical modified UTF-7 (mutf7_decode accepts it), so '/'
 *    cannot be smuggled in as base64; at most 1024 bytes in all;
 *  - components split at '/' are non-empty ("a//b", "/a" are refused),
 *    at most 255 bytes, and contain no '.': Maildir++ uses '.' as its
 *    separator on disk and we refuse it (as Dovecot's default Maildir++
 *    layout does) rather than invent an escape other tools won't know;
 *    this also refuses "..", "." and names starting with '.';
 *  - no control characters (C0, DEL, C1) once decoded, no '\\', and no
 *    LIST wildcards '*' or '%';
 *  - the whole directory name ".a.b" fits NAME_MAX (255 bytes).
 * A trailing '/' ("foo/") is accepted and dropped: it only says the name
 * is meant as a hierarchy (RFC 3501 §6.3.3). A first component that is
 * "INBOX" in any case is spelt "INBOX".
 *
 * Users are canonical addresses under mail_root, as for store_deliver.
 * Every function returns 0, or -1 with *err_r and *error_r (free it) set.
 */
enum store_folder_err {
	STORE_FOLDER_OK = 0,
	STORE_FOLDER_ERR_NONEXISTENT,   /* IMAP NO [NONEXISTENT] (RFC 5530) */
	STORE_FOLDER_ERR_EXISTS,        /* IMAP NO [ALREADYEXISTS] */
	STORE_FOLDER_ERR_BADNAME,       /* name refused by the rules above */
	STORE_FOLDER_ERR_NOTALLOWED,    /* DELETE INBOX, RENAME into itself */
	STORE_FOLDER_ERR_HASCHILDREN,   /* DELETE of a name with inferiors */
	STORE_FOLDER_ERR_TEMP,          /* I/O error: NO [SERVERBUG] / retry */
};

/* LIST attributes (RFC 3501 §7.2.2, RFC 3348 children, RFC 6154). */
enum store_folder_flag {
	STORE_FOLDER_HASCHILDREN = 1 << 0,
	STORE_FOLDER_HASNOCHILDREN = 1 << 1,
	STORE_FOLDER_NOSELECT = 1 << 2,   /* a parent that has no directory */
	STORE_FOLDER_DRAFTS = 1 << 3,
	STORE_FOLDER_SENT = 1 << 4,
	STORE_FOLDER_TRASH = 1 << 5,
	STORE_FOLDER_JUNK = 1 << 6,
	STORE_FOLDER_ARCHIVE = 1 << 7,
};

struct store_folder {
	char *name;        /* wire name (modified UTF-7) */
	unsigned flags;    /* enum store_folder_flag bits */
};

/*
 * Checks a wire name against the rules above and returns its canonical
 * spelling (INBOX upper-cased, trailing '/' dropped) in a new string.
 */
int store_folder_name_check(const char *name, char **canon_r,
			    enum store_folder_err *err_r, char **error_r);

/* Appends the attributes as IMAP writes them: "\HasNoChildren \Sent". */
void store_folder_flags_format(unsigned flags, struct buf *out);

/*
 * Creates INBOX and Drafts, Sent, Trash, Junk, Archive (whose special use
 * comes from their names: the five top-level names always carry the RFC
 * 6154 attribute) and subscribes all six. Safe to call again: what exists
 * is left alone.
 */
int store_user_init(const char *mail_root, const char *address,
		    enum store_folder_err *err_r, char **error_r);

/*
 * All mailboxes of the user: INBOX first, then the others sorted by name
 * (byte order). Parents missing on disk (made by other tools) appear with
 * \Noselect. Free with store_folder_list_free.
 */
int store_folder_list(const char *mail_root, const char *address,
		      struct store_folder **folders_r, size_t *count_r,
		      enum store_folder_err *err_r, char **error_r);
void store_folder_list_free(struct store_folder **folders, size_t count);

/* Whether a mailbox exists and can be selected (INBOX always can). */
bool store_folder_exists(const char *mail_root, const char *address,
			 const char *name);

/*
 * The Maildir directory of a mailbox (it may not exist yet), for opening
 * it; NULL with *err_r and *error_r set on a bad name or address.
 */
char *store_folder_path(const char *mail_root, const char *address,
			const char *name, enum store_folder_err *err_r,
			char **error_r);

/* CREATE (RFC 3501 §6.3.3): missing parents are created too. */
int store_folder_create(const char *mail_root, const char *address,
			const char *name, enum store_folder_err *err_r,
			char **error_r);

/*
 * DELETE (§6.3.4): refuses INBOX, and refuses a mailbox that has
 * inferiors (STORE_FOLDER_ERR_HASCHILDREN) rather than keep it \Noselect.
 * The folder is first renamed out of sight, then removed with its mail.
 */
int store_folder_delete(const char *mail_root, const char *address,
			const char *name, enum store_folder_err *err_r,
			char **error_r);

/*
 * RENAME (§6.3.5): inferiors move along; missing parents of the new name
 * are created. RENAME INBOX creates the new mailbox, moves INBOX's
 * messages into it and leaves INBOX empty (its inferiors stay).
 */
int store_folder_rename(const char *mail_root, const char *address,
			const char *old_name, const char *new_name,
			enum store_folder_err *err_r, char **error_r);

/*
 * Subscriptions (§6.3.6-6.3.7): the file "subscriptions" in the user's
 * Maildir, one wire name per line, rewritten atomically (tmp, fsync,
 * rename, fsync of the directory). Subscribing to a name that does not
 * exist is allowed (RFC 3501 permits it); unsubscribing a name that is not
 * subscribed gives STORE_FOLDER_ERR_NONEXISTENT.
 */
int store_folder_subscribe(const char *mail_root, const char *address,
			   const char *name, enum store_folder_err *err_r,
			   char **error_r);
int store_folder_unsubscribe(const char *mail_root, const char *address,
			     const char *name, enum store_folder_err *err_r,
			     char **error_r);
/* The subscribed names in file order; free with store_folder_names_free. */
int store_folder_subscriptions(const char *mail_root, const char *address,
			       char ***names_r, size_t *count_r,
			       enum store_folder_err *err_r, char **error_r);
void store_folder_names_free(char ***names, size_t count);

#endif
