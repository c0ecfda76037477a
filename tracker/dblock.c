/* One history, one tracker. Two trackers on one file would both resume
 * the same sessions and write every trial twice; SQLite's own locking
 * only serialises them. The lock is an flock on PATH.lock, which the
 * kernel releases however the holder ends, and the file says who holds
 * it. The history file itself is watched: deleted or replaced under a
 * running tracker, writes would go to a file nobody will ever read. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tracker/tracker.h"

static void lock_path(const tracker *t, char *out, size_t len) {
  snprintf(out, len, "%s.lock", t->opts.db_path);
}

static void write_holder(int fd, const char *addr) {
  char line[256];
  int n = snprintf(line, sizeof(line), "pid %d%s%s\n", (int)getpid(), addr ? " listening on " : "",
                   addr ? addr : "");
  if (ftruncate(fd, 0) == 0 && n > 0) {
    ssize_t w = pwrite(fd, line, (size_t)n, 0);
    (void)w;
  }
}

int dblock_take(tracker *t, char *err, size_t errlen) {
  char path[4200];
  lock_path(t, path, sizeof(path));
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    snprintf(err, errlen, "cannot create the lock file %s: %s", path, strerror(errno));
    return -1;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    char holder[256] = "";
    ssize_t n = pread(fd, holder, sizeof(holder) - 1, 0);
    holder[n > 0 ? n : 0] = 0;
    holder[strcspn(holder, "\n")] = 0;
    snprintf(err, errlen, "the history %s is in use by another tracker (%s); stop it, or give "
             "this one another --db", t->opts.db_path, holder[0] ? holder : "holder unknown");
    close(fd);
    return -1;
  }
  write_holder(fd, NULL);
  t->lock_fd = fd;
  return 0;
}

void dblock_note_address(tracker *t, const char *addr) {
  if (t->lock_fd > 0) write_holder(t->lock_fd, addr);
}

int dblock_check(tracker *t, char *why, size_t len) {
  struct stat sb;
  int found = stat(t->opts.db_path, &sb) == 0;
  if (!t->db_dev_ino_known && found) {
    /* The first look, right after opening, learns which file it is. */
    t->db_dev = (uint64_t)sb.st_dev;
    t->db_ino = (uint64_t)sb.st_ino;
    t->db_dev_ino_known = 1;
  }
  if (!t->db_dev_ino_known) return 0;
  if (!found) {
    snprintf(why, len, "the history %s is gone (%s)", t->opts.db_path, strerror(errno));
    return -1;
  }
  if ((uint64_t)sb.st_dev != t->db_dev || (uint64_t)sb.st_ino != t->db_ino) {
    snprintf(why, len, "the history %s was replaced by another file", t->opts.db_path);
    return -1;
  }
  return 0;
}
