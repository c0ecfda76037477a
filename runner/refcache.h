/* Reference outputs, computed once per runner for a reference (the
 * tracker's RunJob.ref_key) and kept by the runner agent for every later
 * trial.
 *
 * An image is a memfd: a header, then the reference's output buffers in
 * argument order, each at a 64-byte aligned offset. The agent hands a
 * measuring child either a sealed image (read-only for good: compare with
 * it) or an empty memfd to fill. The child runs the reference inside its
 * sandbox, writes the outputs and then the header's magic, and unmaps the
 * image before the kernel runs, so a kernel can neither reach nor forge
 * it. The agent adopts a filled image only when it is complete. */
#ifndef KTUNE_REFCACHE_H
#define KTUNE_REFCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/ktune.pb-c.h"

#define REFCACHE_MAGIC UINT64_C(0x314645524e55544b) /* "KTUNREF1" */
#define REFCACHE_HEADER 64
#define REFCACHE_MAX 4

typedef struct {
  uint64_t magic; /* written last */
  uint64_t bytes; /* the whole image */
} refcache_header;

/* Offsets of each output buffer in a job's image (0 for inputs) and the
 * image's total size. Returns 0, or -1 when the job's buffers are not
 * valid (unknown type, no count, too big). */
int refcache_layout(const Ktune__RunJob *job, uint64_t *offsets, uint64_t *total);

/* The key a job's reference is cached under: the job's ref_key (or, when
 * the tracker sent none, its task and size), seed, reference function and
 * buffer layout. malloc'd; NULL when the job's reference is not cacheable
 * (no check, or nothing to key it by). */
char *refcache_key(const Ktune__RunJob *job);

typedef struct {
  char *key;
  int fd;
  uint64_t bytes;
  uint64_t used; /* for least-recently-used eviction */
} refcache_entry;

typedef struct {
  refcache_entry e[REFCACHE_MAX];
  size_t n;
  uint64_t tick;
} refcache;

void refcache_init(refcache *c);
void refcache_clear(refcache *c);

/* The sealed image under key (owned by the cache), or -1. */
int refcache_find(refcache *c, const char *key);

/* A fresh memfd for a child to fill, or -1. */
int refcache_blank(void);

/* Adopts fd under key when it holds a complete image of `total` bytes:
 * seals it and keeps it (evicting the least recently used), returns 1.
 * Otherwise closes fd and returns 0. */
int refcache_adopt(refcache *c, const char *key, int fd, uint64_t total);

#endif
