#ifndef TERN_QUEUE_QUEUE_MSG_H
#define TERN_QUEUE_QUEUE_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

struct buf;

/*
 * A queued message as the runner and the admin tool see it: the envelope of
 * the immutable queue file (spool.h) plus the per-recipient state kept in
 * DATA_DIR/spool/queue/ID.state (format in queue_msg.c). A missing state
 * file means every recipient is pending, due at once: that is how
 * spool_enqueue leaves a message.
 */

enum queue_rcpt_state {
	QUEUE_RCPT_PENDING,   /* not tried yet, or due again */
	QUEUE_RCPT_DEFERRED,  /* failed temporarily; next try at next_attempt */
	QUEUE_RCPT_DELIVERED, /* done */
	QUEUE_RCPT_FAILED,    /* failed for good; a bounce is due or sent */
};

struct queue_rcpt {
	char *address;
	enum queue_rcpt_state state;
	unsigned attempts;
	time_t last_attempt;  /* 0: never tried */
	time_t next_attempt;  /* 0: due now */
	char *last_reply;     /* the last server reply or local error, or NULL */
	char *remote_mta;     /* the host that gave it, or NULL */
	bool delay_notified;   /* a delay DSN was sent for this recipient */
	bool failure_notified; /* the bounce was sent (or given to postmaster) */
};

struct queue_msg {
	char *data_dir;
	char id[13];
	time_t arrival;
	char *sender;         /* "" for the null reverse-path */
	struct queue_rcpt *rcpts;
	size_t nrcpts;
	off_t msg_offset;     /* where the message starts in the queue file */
	off_t msg_size;       /* its size in bytes (CRLF line ends) */
	unsigned received_count; /* Received: fields, for loop detection */
};

/* A queue ID is 12 characters of make_id's alphabet; anything else is refused. */
bool queue_id_valid(const char *id);

const char *queue_rcpt_state_name(enum queue_rcpt_state state);

/*
 * Loads the envelope of queue/ID and its state file. -1 with *error_r if
 * the message does not exist (errno ENOENT) or a file is damaged.
 */
int queue_msg_load(const char *data_dir, const char *id, struct queue_msg **msg_r,
		   char **error_r);
void queue_msg_free(struct queue_msg **msg);

/*
 * Sets a recipient's state. reply and remote_mta may be NULL (keep the old
 * ones); control characters in them become blanks. deferred, delivered and
 * failed count an attempt made now (last_attempt); pending does not.
 */
void queue_msg_mark(struct queue_msg *msg, size_t rcpt, enum queue_rcpt_state state,
		    const char *reply, const char *remote_mta, time_t next_attempt);
/* True when no recipient is pending or deferred any more. */
bool queue_msg_finished(const struct queue_msg *msg);

/* Writes ID.state durably: tmp file, fsync, rename, fsync of queue/. */
int queue_msg_save(const struct queue_msg *msg, char **error_r);

/*
 * Removes the message for good: the state file first, then the queue file,
 * then fsyncs queue/. A crash in between leaves a queue file without state,
 * which would be retried from the start: the price is a duplicate, never a
 * loss (DESIGN.md invariants).
 */
int queue_msg_remove(const char *data_dir, const char *id, char **error_r);

/* The header section of the message (up to the blank line), at most max bytes. */
int queue_msg_read_headers(const struct queue_msg *msg, size_t max, struct buf *out,
			   char **error_r);
/* An open fd on the queue file (read only), for sending the message itself. */
int queue_msg_open(const struct queue_msg *msg, char **error_r);

/*
 * Every ID in queue/ (sorted), ignoring state and temporary files. Free
 * with queue_ids_free.
 */
int queue_list_ids(const char *data_dir, char ***ids_r, size_t *count_r, char **error_r);
void queue_ids_free(char **ids, size_t count);

/*
 * An exclusive flock on queue/ID held while the state is read, changed and
 * saved, so that the admin tool and the runner do not overwrite each other.
 * Returns the fd to close, or -1 (*error_r; errno ENOENT if it is gone).
 */
int queue_msg_lock(const char *data_dir, const char *id, char **error_r);

#endif
