#include "builder/buildcache.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Changing what goes into the key, or how, must change this tag. */
#define BUILDCACHE_TAG "ktune build v1"
#define BUILDCACHE_MIN_BUCKETS 256

/* ---- the key: common/identity.c's encoding ---- */

static void put_u64(crypto_hash_sha256_state *st, uint64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
  crypto_hash_sha256_update(st, b, sizeof b);
}

static void put_str(crypto_hash_sha256_state *st, const char *s) {
  size_t n = strlen(s);
  put_u64(st, n);
  crypto_hash_sha256_update(st, (const unsigned char *)s, n);
}

int buildcache_key_of(const buildcache_inputs *in, buildcache_key *out) {
  memset(out, 0, sizeof *out);
  if (!in || !in->source || !in->compiler_id || !in->compiler_target || !in->target_arch ||
      (in->argc && !in->argv))
    return -EINVAL;
  for (size_t i = 0; i < in->argc; i++)
    if (!in->argv[i]) return -EINVAL;
  if (sodium_init() < 0) return -ENOMEM;
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  put_str(&st, BUILDCACHE_TAG);
  put_str(&st, in->source);
  put_u64(&st, in->argc);
  for (size_t i = 0; i < in->argc; i++) put_str(&st, in->argv[i]);
  put_str(&st, in->compiler_id);
  put_str(&st, in->compiler_target);
  put_str(&st, in->target_arch);
  struct stat sb;
  if (!in->exe) {
    put_str(&st, "built in");
  } else if (stat(in->exe, &sb) < 0) {
    put_str(&st, "no file"); /* the compile cannot start either */
  } else {
    put_str(&st, "file");
    put_u64(&st, (uint64_t)sb.st_dev);
    put_u64(&st, (uint64_t)sb.st_ino);
    put_u64(&st, (uint64_t)sb.st_size);
    put_u64(&st, (uint64_t)sb.st_mtim.tv_sec);
    put_u64(&st, (uint64_t)sb.st_mtim.tv_nsec);
  }
  crypto_hash_sha256_final(&st, out->b);
  return 0;
}

void buildcache_key_short(const buildcache_key *k, char out[13]) {
  sodium_bin2hex(out, 13, k->b, 6);
}

/* ---- the cache: a hash table of entries on a list, newest first ----
 *
 * Every compile is a fork of the builder (or of a child of it), and a fork
 * copies the page tables of all the memory the builder has touched: 64
 * MiB of artifacts on the heap made each tcc build about three times as
 * slow. So each artifact has a mapping of its own that children do not
 * inherit (MADV_DONTFORK), which also keeps other sessions' artifacts out
 * of a libtcc worker. A mapping is whole pages, and that is what counts
 * against the limit; the entry count is capped so that the mappings stay
 * far below the kernel's limit on them (vm.max_map_count, 65530). */

typedef struct bc_entry {
  buildcache_key key;
  struct bc_entry *hnext;          /* the same bucket */
  struct bc_entry *newer, *older;  /* recency */
  size_t cost;                     /* what it counts against max_bytes */
  size_t len;
  double build_s;
  uint8_t *map;                    /* the artifact, then the compiler identity */
  size_t maplen;
} bc_entry;

struct buildcache {
  bc_entry **buckets;
  size_t nbuckets;                 /* a power of two */
  bc_entry *newest, *oldest;
  size_t entries, bytes, max_bytes;
  uint64_t hits, shared, misses, evicted;
};

/* The key is a SHA-256: any 8 of its bytes are a fine hash. */
static size_t bc_bucket(const buildcache *c, const buildcache_key *k) {
  uint64_t h;
  memcpy(&h, k->b, sizeof h);
  return (size_t)h & (c->nbuckets - 1);
}

static bc_entry **bc_slot(buildcache *c, const buildcache_key *k) {
  bc_entry **p = &c->buckets[bc_bucket(c, k)];
  while (*p && memcmp((*p)->key.b, k->b, sizeof k->b) != 0) p = &(*p)->hnext;
  return p;
}

static void bc_unlink(buildcache *c, bc_entry *e) {
  if (e->newer) e->newer->older = e->older;
  else c->newest = e->older;
  if (e->older) e->older->newer = e->newer;
  else c->oldest = e->newer;
  e->newer = e->older = NULL;
}

static void bc_push_newest(buildcache *c, bc_entry *e) {
  e->older = c->newest;
  e->newer = NULL;
  if (c->newest) c->newest->newer = e;
  else c->oldest = e;
  c->newest = e;
}

static void bc_evict_oldest(buildcache *c) {
  bc_entry *e = c->oldest;
  *bc_slot(c, &e->key) = e->hnext;
  bc_unlink(c, e);
  c->entries--;
  c->bytes -= e->cost;
  c->evicted++;
  munmap(e->map, e->maplen);
  free(e);
}

/* Doubles the table when it holds more entries than buckets; a failure
 * only makes chains longer. */
static void bc_grow(buildcache *c) {
  if (c->entries < c->nbuckets) return;
  size_t n = c->nbuckets * 2;
  bc_entry **b = calloc(n, sizeof *b);
  if (!b) return;
  for (size_t i = 0; i < c->nbuckets; i++)
    for (bc_entry *e = c->buckets[i], *next; e; e = next) {
      next = e->hnext;
      uint64_t h;
      memcpy(&h, e->key.b, sizeof h);
      bc_entry **slot = &b[(size_t)h & (n - 1)];
      e->hnext = *slot;
      *slot = e;
    }
  free(c->buckets);
  c->buckets = b;
  c->nbuckets = n;
}

int buildcache_new(size_t max_bytes, buildcache **out) {
  *out = NULL;
  if (max_bytes == 0) return 0;
  buildcache *c = calloc(1, sizeof *c);
  if (!c || !(c->buckets = calloc(BUILDCACHE_MIN_BUCKETS, sizeof *c->buckets))) {
    free(c);
    return -ENOMEM;
  }
  c->nbuckets = BUILDCACHE_MIN_BUCKETS;
  c->max_bytes = max_bytes;
  *out = c;
  return 0;
}

void buildcache_free(buildcache *c) {
  if (!c) return;
  while (c->oldest) bc_evict_oldest(c);
  free(c->buckets);
  free(c);
}

void buildcache_entry_clear(buildcache_entry *e) {
  free(e->artifact);
  free(e->compiler_id);
  memset(e, 0, sizeof *e);
}

int buildcache_get(buildcache *c, const buildcache_key *k, buildcache_entry *out) {
  memset(out, 0, sizeof *out);
  if (!c) return 0;
  bc_entry *e = *bc_slot(c, k);
  if (!e) {
    c->misses++;
    return 0;
  }
  out->artifact = malloc(e->len ? e->len : 1);
  out->compiler_id = strdup((const char *)e->map + e->len);
  if (!out->artifact || !out->compiler_id) {
    buildcache_entry_clear(out);
    c->misses++;
    return -ENOMEM;
  }
  memcpy(out->artifact, e->map, e->len);
  out->len = e->len;
  out->build_s = e->build_s;
  bc_unlink(c, e);
  bc_push_newest(c, e);
  c->hits++;
  return 1;
}

int buildcache_put(buildcache *c, const buildcache_key *k, const uint8_t *artifact, size_t len,
                   const char *compiler_id, double build_s) {
  if (!c) return 0;
  if (!compiler_id) compiler_id = "";
  size_t idlen = strlen(compiler_id) + 1;
  if (len > c->max_bytes || idlen > c->max_bytes) return 0;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t maplen = (len + idlen + page - 1) / page * page;
  size_t cost = sizeof(bc_entry) + maplen;
  if (cost > c->max_bytes) return 0;
  bc_entry **slot = bc_slot(c, k);
  if (*slot) {
    bc_unlink(c, *slot);
    bc_push_newest(c, *slot);
    return 1;
  }
  bc_entry *e = calloc(1, sizeof *e);
  void *m = e ? mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
              : MAP_FAILED;
  if (m == MAP_FAILED) {
    free(e);
    return -ENOMEM;
  }
  /* Without it builds are slower, not wrong. */
  (void)madvise(m, maplen, MADV_DONTFORK);
  e->key = *k;
  e->cost = cost;
  e->len = len;
  e->build_s = build_s;
  e->map = m;
  e->maplen = maplen;
  if (len) memcpy(e->map, artifact, len);
  memcpy(e->map + len, compiler_id, idlen);
  while (c->entries && (c->bytes + cost > c->max_bytes || c->entries >= BUILDCACHE_MAX_ENTRIES))
    bc_evict_oldest(c);
  bc_entry **head = &c->buckets[bc_bucket(c, k)];
  e->hnext = *head;
  *head = e;
  bc_push_newest(c, e);
  c->entries++;
  c->bytes += cost;
  bc_grow(c);
  return 1;
}

void buildcache_note_shared(buildcache *c) {
  if (!c || c->misses == 0) return;
  c->misses--;
  c->shared++;
}

void buildcache_get_stats(const buildcache *c, buildcache_stats *st) {
  memset(st, 0, sizeof *st);
  if (!c) return;
  st->hits = c->hits;
  st->shared = c->shared;
  st->misses = c->misses;
  st->evicted = c->evicted;
  st->entries = c->entries;
  st->bytes = c->bytes;
  st->max_bytes = c->max_bytes;
}
