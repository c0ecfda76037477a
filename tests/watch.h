/* Counting compiles from outside: every compile, and only a compile,
 * makes a work folder (jail.h: JAIL_PREFIX-PID-XXXXXX under the
 * builder's TMPDIR; probes run in none), so a build that makes none was
 * answered without running a compiler. A compiler cannot count itself:
 * its work folder is the one place it may write. Header-only, for unit
 * and integration tests alike. */
#ifndef KTUNE_TEST_WATCH_H
#define KTUNE_TEST_WATCH_H

#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "tests/test.h"

#define WATCH_PREFIX "ktune-build-"

/* Watches dir (a builder's TMPDIR) from now on. */
static inline int watch_work_folders(const char *dir) {
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  ASSERT(fd >= 0);
  ASSERT(inotify_add_watch(fd, dir, IN_CREATE) >= 0);
  return fd;
}

/* Work folders made since the last call. */
static inline int work_folders_made(int fd) {
  char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
  int n = 0;
  ssize_t len;
  while ((len = read(fd, buf, sizeof buf)) > 0)
    for (char *p = buf; p < buf + len;) {
      const struct inotify_event *ev = (const struct inotify_event *)p;
      n += (ev->mask & IN_ISDIR) && ev->len &&
           strncmp(ev->name, WATCH_PREFIX, strlen(WATCH_PREFIX)) == 0;
      p += sizeof *ev + ev->len;
    }
  return n;
}

#endif
