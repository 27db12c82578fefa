#ifndef TERN_IO_DIRWATCH_H
#define TERN_IO_DIRWATCH_H

/*
 * Wake-ups when files appear in, leave or are renamed in a directory:
 * what an IMAP IDLE session waits for in its Maildir's new/ and cur/.
 * Whoever changes the Maildir - an SMTP delivery in this process, another
 * IMAP or POP3 session, another process, mutt - wakes every watcher of it,
 * because the watch is the kernel's (inotify), not a message between
 * sessions.
 *
 * One inotify descriptor serves the whole event loop; each directory is
 * watched once however many sessions wait on it. A burst of changes gives
 * one call, DIRWATCH_DELAY_MS after the first. Where inotify refuses a
 * watch (the per-user limit), the watcher falls back to a poll every
 * DIRWATCH_POLL_S seconds, so it still wakes, only later.
 */

struct event_base;
struct dirwatch;

#define DIRWATCH_DELAY_MS 20
#define DIRWATCH_POLL_S 15

typedef void dirwatch_fn(void *arg);

/* Watches the given subdirectories ("new", "cur") of dir; never NULL. */
struct dirwatch *dirwatch_add(struct event_base *base, const char *dir,
			      const char *const *subs, dirwatch_fn *fn, void *arg);
void dirwatch_remove(struct dirwatch **w);

#endif
