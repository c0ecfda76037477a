#include "builder/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fsutil_mkdtemp(const char *prefix, char *buf, size_t len) {
  const char *tmp = getenv("TMPDIR");
  if (!tmp || !*tmp) tmp = "/tmp";
  int n = snprintf(buf, len, "%s/%s-XXXXXX", tmp, prefix);
  if (n < 0 || (size_t)n >= len) return -ENAMETOOLONG;
  return mkdtemp(buf) ? 0 : -errno;
}

int fsutil_read_fd(int fd, size_t max, uint8_t **out, size_t *outlen) {
  struct stat st;
  *out = NULL;
  *outlen = 0;
  if (fstat(fd, &st) < 0) return -errno;
  if (st.st_size <= 0) return -ENODATA;
  if ((uint64_t)st.st_size > max) return -EFBIG;
  size_t n = (size_t)st.st_size;
  uint8_t *p = malloc(n);
  if (!p) return -ENOMEM;
  size_t off = 0;
  while (off < n) {
    ssize_t r = pread(fd, p + off, n - off, (off_t)off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int e = r < 0 ? -errno : -EIO; /* the file shrank under us */
      free(p);
      return e;
    }
    off += (size_t)r;
  }
  *out = p;
  *outlen = n;
  return 0;
}

int fsutil_read_file(const char *path, size_t max, uint8_t **out, size_t *outlen) {
  *out = NULL;
  *outlen = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return -errno;
  int rc = fsutil_read_fd(fd, max, out, outlen);
  close(fd);
  return rc;
}

int fsutil_write_file(const char *path, const void *data, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return -errno;
  const uint8_t *p = data;
  while (len > 0) {
    ssize_t w = write(fd, p, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int e = w < 0 ? -errno : -EIO;
      close(fd);
      return e;
    }
    p += w;
    len -= (size_t)w;
  }
  return close(fd) < 0 ? -errno : 0;
}

/* Failures are not fatal here: the walk goes on removing what it can, and
 * whatever is left shows up in the final check. */
static int fsutil_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)ftw;
  if (flag == FTW_DP)
    rmdir(path);
  else
    unlink(path);
  return 0;
}

int fsutil_rmtree(const char *dir) {
  if (!dir || !*dir) return -EINVAL;
  /* FTW_DEPTH: children before their folder; FTW_PHYS: never follow a link
   * a compiler (or a kernel's build) left behind. */
  if (nftw(dir, fsutil_rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0) return -errno;
  struct stat st;
  if (lstat(dir, &st) == 0) return -ENOTEMPTY;
  return 0;
}
