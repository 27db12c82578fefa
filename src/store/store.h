#ifndef TERN_STORE_STORE_H
#define TERN_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

/*
 * The mail store. Protocol code reaches mail only through this API; the
 * backend here is Maildir (var/mail/DOMAIN/USER/{cur,new,tmp}), messages
 * kept with LF line ends as local Maildir tools expect; sizes reported to
 * clients are of the CRLF form.
 */
struct store;
struct store_mailbox;

struct store *store_open(const char *mail_root);
/*
 * The Maildir of a canonical address under mail_root (a new string), or
 * NULL with *error_r set if the address could leave the tree ("../x@y",
 * "a/b@c", ".hidden@x").
 */
char *store_user_dir(const char *mail_root, const char *address, char **error_r);
void store_free(struct store **st);

/*
 * Delivers one message to the INBOX of a user (canonical address): writes
 * prefix (header lines the delivery adds, CRLF) then body_len bytes of body_fd
 * from offset 0 (the message as received, CRLF), converting CRLF to LF;
 * fsyncs the file, renames it into new/, fsyncs new/. Only when this returns
 * 0 may the message be acknowledged. -1 is a temporary failure (*error_r set).
 */
int store_deliver(struct store *st, const char *address, const char *prefix,
		  size_t prefix_len, int body_fd, off_t body_len, char **error_r);
/* The same with the message at body_off in body_fd (a queue file). */
int store_deliver_at(struct store *st, const char *address, const char *prefix,
		     size_t prefix_len, int body_fd, off_t body_off, off_t body_len,
		     char **error_r);

struct store_msg {
	char *uid;          /* stable unique ID: the base name up to its first "," or ":" */
	size_t size;        /* size in CRLF form, as POP3 and IMAP report it */
	char *path;         /* current file path */
};

/*
 * Opens a user's INBOX for POP3: takes the maildrop lock (a second open
 * while one is held gives -1 and *in_use_r = true), lists the messages
 * in new/ and cur/ in arrival order.
 */
struct store_mailbox *store_inbox_open(struct store *st, const char *address,
				       bool *in_use_r, char **error_r);
size_t store_mailbox_count(const struct store_mailbox *mb);
const struct store_msg *store_mailbox_msg(const struct store_mailbox *mb, size_t i);
/* Opens a message file for reading (LF form); -1 if it is gone. */
int store_msg_open(const struct store_mailbox *mb, size_t i);
/* Removes messages for good, fsyncing the directories; -1 on failure. */
int store_mailbox_expunge(struct store_mailbox *mb, const bool *deleted, char **error_r);
/* Releases the lock. */
void store_mailbox_close(struct store_mailbox **mb);

/*
 * For IMAP COPY and APPEND into any folder directory dir (see index.h,
 * index_append): a new Maildir unique name "<when>.M<usec>P<pid>Q<n>.<host>"
 * whose leading seconds are the message's INTERNALDATE.
 */
char *store_unique_name(struct store *st, time_t when);
/*
 * Writes a message given in CRLF form with LF line ends to
 * dir/tmp/<unique>,S=<size>,W=<CRLF size>[:2,<info>] and fsyncs it;
 * *name_r is its name in tmp/ (free it). info (Maildir flag letters) may
 * be NULL. Nothing is left behind on failure.
 */
int store_tmp_write(struct store *st, const char *dir, time_t when, const char *info,
		    const char *data, size_t len, char **name_r, char **error_r);

#endif
