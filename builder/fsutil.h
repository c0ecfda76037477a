/* Small file helpers the compile back ends share: private temporary
 * folders, whole-file reads and writes, and removing a folder tree. */
#ifndef KTUNE_FSUTIL_H
#define KTUNE_FSUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Creates a fresh folder, mode 0700, named PREFIX-XXXXXX under $TMPDIR
 * (else /tmp). Returns 0 and fills buf, or a negative errno. */
int fsutil_mkdtemp(const char *prefix, char *buf, size_t len);

/* Reads a whole file (or an open fd) of at most max bytes into a malloc'd
 * buffer. -EFBIG when larger, -ENODATA when empty, else a negative errno. */
int fsutil_read_fd(int fd, size_t max, uint8_t **out, size_t *outlen);
int fsutil_read_file(const char *path, size_t max, uint8_t **out, size_t *outlen);

/* Creates path (O_EXCL, mode 0600) holding exactly the bytes given. */
int fsutil_write_file(const char *path, const void *data, size_t len);

/* Removes dir and everything below it without following symlinks.
 * Returns 0, or a negative errno when something could not be removed. */
int fsutil_rmtree(const char *dir);

#endif
