/* Fixed-size messages with file descriptors over a unix SOCK_SEQPACKET
 * socket: how the runner and the builder talk to their fork servers
 * (runner/forkserver.h, builder/buildserver.h). One message is one
 * datagram, so a reader never sees half of one. */
#ifndef KTUNE_FDMSG_H
#define KTUNE_FDMSG_H

#include <stddef.h>

/* The most fds one message carries. */
#define FDMSG_MAX_FDS 5

/* Sends len bytes of msg with n fds (n <= FDMSG_MAX_FDS); flags as for
 * sendmsg (MSG_NOSIGNAL is added). 0, or a negative errno. */
int fdmsg_send(int sock, const void *msg, size_t len, const int *fds, size_t n, int flags);

/* Receives one message of exactly len bytes and its fds (close-on-exec;
 * at most max, the rest closed). 1, 0 at the end of the stream, or a
 * negative errno (-EPROTO: not len bytes, or cut short; no fd kept). */
int fdmsg_recv(int sock, void *msg, size_t len, int *fds, size_t max, size_t *n, int flags);

/* Closes n fds. */
void fdmsg_close(const int *fds, size_t n);

#endif
