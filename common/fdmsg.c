#include "common/fdmsg.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef union {
  char buf[CMSG_SPACE(sizeof(int) * FDMSG_MAX_FDS)];
  struct cmsghdr align;
} fdmsg_control;

int fdmsg_send(int sock, const void *msg, size_t len, const int *fds, size_t n, int flags) {
  if (n > FDMSG_MAX_FDS) return -EINVAL;
  fdmsg_control c;
  struct iovec iov = {(void *)msg, len};
  struct msghdr h = {.msg_iov = &iov, .msg_iovlen = 1};
  if (n > 0) {
    memset(&c, 0, sizeof c);
    h.msg_control = c.buf;
    h.msg_controllen = CMSG_SPACE(sizeof(int) * n);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&h);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
  }
  ssize_t w;
  while ((w = sendmsg(sock, &h, flags | MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  return w == (ssize_t)len ? 0 : w < 0 ? -errno : -EIO;
}

void fdmsg_close(const int *fds, size_t n) {
  for (size_t i = 0; i < n; i++) close(fds[i]);
}

int fdmsg_recv(int sock, void *msg, size_t len, int *fds, size_t max, size_t *n, int flags) {
  fdmsg_control c;
  struct iovec iov = {msg, len};
  struct msghdr h = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf,
                     .msg_controllen = sizeof c.buf};
  ssize_t r;
  *n = 0;
  while ((r = recvmsg(sock, &h, flags | MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  if (r < 0) return -errno;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&h); cm; cm = CMSG_NXTHDR(&h, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(cm) + i * sizeof fd, sizeof fd);
      if (*n < max) fds[(*n)++] = fd;
      else close(fd);
    }
  }
  if (r == 0 && *n == 0) return 0;
  if (r != (ssize_t)len || (h.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
    fdmsg_close(fds, *n);
    *n = 0;
    return -EPROTO;
  }
  return 1;
}
