#include "runner/load.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* dlerror's text is kept in thread state; a stale message from an earlier
 * failure must not be blamed on this call. */
static void load_dlerror(char *err, size_t errlen, const char *what) {
  const char *e = dlerror();
  if (err && errlen) snprintf(err, errlen, "%s: %s", what, e ? e : "unknown dlerror");
}

static int load_write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int load_prepare(load_so *so, const uint8_t *bytes, size_t len, char *err, size_t errlen) {
  so->dl = NULL;
  so->fd = -1;
  so->path[0] = '\0';
  if (err && errlen) err[0] = '\0';
  if (!bytes || len == 0) {
    if (err && errlen) snprintf(err, errlen, "cannot load artifact: it is empty");
    return -1;
  }
  int fd = memfd_create("ktune-kernel", MFD_CLOEXEC);
  if (fd < 0) {
    if (err && errlen) snprintf(err, errlen, "cannot load artifact: memfd_create: %s", strerror(errno));
    return -2;
  }
  if (load_write_all(fd, bytes, len) < 0) {
    if (err && errlen) snprintf(err, errlen, "cannot load artifact: write to memfd: %s", strerror(errno));
    close(fd);
    return -2;
  }
  /* glibc identifies a loaded object by its path before anything else, so
   * a stale object still loaded under /proc/self/fd/N (an fd number reused
   * since) would be handed back instead of ours. Move to another number
   * until the path is free. */
  for (int tries = 0;; tries++) {
    snprintf(so->path, sizeof so->path, "/proc/self/fd/%d", fd);
    void *old = dlopen(so->path, RTLD_NOW | RTLD_NOLOAD);
    if (!old) break;
    dlclose(old);
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, fd + 1);
    close(fd);
    if (nfd < 0 || tries >= 16) {
      if (nfd >= 0) close(nfd);
      if (err && errlen) snprintf(err, errlen, "cannot load artifact: no free /proc/self/fd path");
      so->path[0] = '\0';
      return -2;
    }
    fd = nfd;
  }
  so->fd = fd;
  return 0;
}

int load_map(load_so *so, char *err, size_t errlen) {
  if (so->fd < 0 || !so->path[0]) {
    if (err && errlen) snprintf(err, errlen, "cannot load artifact: not prepared");
    return -2;
  }
  dlerror();
  void *dl = dlopen(so->path, RTLD_NOW | RTLD_LOCAL);
  if (!dl) {
    load_dlerror(err, errlen, "cannot load artifact");
    return -1;
  }
  so->dl = dl;
  return 0;
}

int load_open(load_so *so, const uint8_t *bytes, size_t len, char *err, size_t errlen) {
  int rc = load_prepare(so, bytes, len, err, errlen);
  if (rc == 0) rc = load_map(so, err, errlen);
  if (rc < 0) load_close(so);
  return rc;
}

int load_sym(const load_so *so, const char *name, void **fn, char *err, size_t errlen) {
  *fn = NULL;
  if (!so->dl || !name || !*name) {
    if (err && errlen) snprintf(err, errlen, "no function name given");
    return -1;
  }
  dlerror();
  void *p = dlsym(so->dl, name);
  /* A NULL symbol value is legal in ELF but never a callable kernel. */
  if (!p) {
    const char *e = dlerror();
    if (err && errlen)
      snprintf(err, errlen, "function %s not found in artifact%s%s", name, e ? ": " : "", e ? e : "");
    return -1;
  }
  *fn = p;
  return 0;
}

void load_drop_fd(load_so *so) {
  if (so->fd >= 0) close(so->fd);
  so->fd = -1;
}

void load_close(load_so *so) {
  if (so->dl) dlclose(so->dl);
  if (so->fd >= 0) close(so->fd);
  so->dl = NULL;
  so->fd = -1;
}
