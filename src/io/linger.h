#ifndef TERN_IO_LINGER_H
#define TERN_IO_LINGER_H

struct event_base;

/*
 * Closes a server-side socket without losing what was said last.
 *
 * A peer may still be sending when a session ends: commands pipelined
 * behind QUIT or LOGOUT, the rest of a literal or DATA the server refused.
 * close() with unread input makes the kernel answer with a reset, and a
 * reset throws away whatever the socket had not sent yet: the end of a
 * RETR, the BYE or the error that explains the close. So the write side is
 * shut now (FIN after the queued bytes) and the fd is kept, reading and
 * dropping input, until the peer closes too or LINGER_MS have passed.
 */
#define LINGER_MS 2000

/* Takes fd (a connected TCP socket) and closes it as above. */
void linger_close(struct event_base *base, int fd);
/* At exit: closes every socket still lingering, at once. */
void linger_close_all(void);

#endif
