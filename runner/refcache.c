#include "runner/refcache.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/rng.h"

#define REFCACHE_ALIGN 64
/* An image larger than this is recomputed per trial rather than kept. */
#define REFCACHE_MAX_BYTES (UINT64_C(1) << 30)

int refcache_layout(const Ktune__RunJob *job, uint64_t *offsets, uint64_t *total) {
  uint64_t at = REFCACHE_HEADER;
  for (size_t i = 0; i < job->n_buffers; i++) {
    const Ktune__Buffer *b = job->buffers[i];
    size_t ts = b ? rng_type_size(b->type) : 0;
    if (ts == 0 || b->count == 0 || b->count > (UINT64_MAX / 4) / ts) return -1;
    offsets[i] = 0;
    if (!b->output) continue;
    offsets[i] = at;
    uint64_t bytes = (b->count * ts + REFCACHE_ALIGN - 1) / REFCACHE_ALIGN * REFCACHE_ALIGN;
    if (bytes > UINT64_MAX / 4 - at) return -1;
    at += bytes;
  }
  *total = at;
  return 0;
}

char *refcache_key(const Ktune__RunJob *job) {
  /* The tracker's digest names the reference code and its inputs, so a
   * session whose reference differs under the same task name and size
   * gets its own image. Without one, the name and size stand for them. */
  int digest = job->ref_key && job->ref_key[0];
  const char *name = digest ? job->ref_key : job->task;
  const char *size = digest || !job->size ? "" : job->size;
  if (!job->check || !name || !name[0] || !job->reference || !job->reference[0]) return NULL;
  size_t cap = strlen(name) + strlen(size) + strlen(job->reference) + 64 + job->n_buffers * 48;
  char *k = malloc(cap);
  if (!k) return NULL;
  int n = snprintf(k, cap, "%s:%s\n%s\n%s\n%" PRIu64, digest ? "digest" : "task", name, size,
                   job->reference, job->seed);
  for (size_t i = 0; i < job->n_buffers && n > 0 && (size_t)n < cap; i++) {
    const Ktune__Buffer *b = job->buffers[i];
    n += snprintf(k + n, cap - (size_t)n, "\n%.8s:%" PRIu64 ":%d", b && b->type ? b->type : "",
                  b ? b->count : 0, b ? b->output : 0);
  }
  if (n < 0 || (size_t)n >= cap) {
    free(k);
    return NULL;
  }
  return k;
}

void refcache_init(refcache *c) { memset(c, 0, sizeof *c); }

static void refcache_drop(refcache_entry *e) {
  free(e->key);
  if (e->fd >= 0) close(e->fd);
  memset(e, 0, sizeof *e);
  e->fd = -1;
}

void refcache_clear(refcache *c) {
  for (size_t i = 0; i < c->n; i++) refcache_drop(&c->e[i]);
  c->n = 0;
}

int refcache_find(refcache *c, const char *key) {
  for (size_t i = 0; i < c->n; i++)
    if (strcmp(c->e[i].key, key) == 0) {
      c->e[i].used = ++c->tick;
      return c->e[i].fd;
    }
  return -1;
}

int refcache_blank(void) { return memfd_create("ktune-reference", MFD_CLOEXEC | MFD_ALLOW_SEALING); }

static int refcache_complete(int fd, uint64_t total) {
  struct stat st;
  refcache_header h;
  if (total < REFCACHE_HEADER || total > REFCACHE_MAX_BYTES) return 0;
  if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != total) return 0;
  if (pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h) return 0;
  return h.magic == REFCACHE_MAGIC && h.bytes == total;
}

int refcache_adopt(refcache *c, const char *key, int fd, uint64_t total) {
  /* Sealing fails while anyone still has it mapped writable: then the
   * child that filled it is not gone and the image cannot be trusted. */
  if (!key || fd < 0 || !refcache_complete(fd, total) ||
      fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0 ||
      refcache_find(c, key) >= 0) {
    if (fd >= 0) close(fd);
    return 0;
  }
  char *k = strdup(key);
  if (!k) {
    close(fd);
    return 0;
  }
  size_t slot = c->n;
  if (c->n == REFCACHE_MAX) {
    slot = 0;
    for (size_t i = 1; i < c->n; i++)
      if (c->e[i].used < c->e[slot].used) slot = i;
    refcache_drop(&c->e[slot]);
  } else {
    c->n++;
  }
  c->e[slot] = (refcache_entry){k, fd, total, ++c->tick};
  return 1;
}
