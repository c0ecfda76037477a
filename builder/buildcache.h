/* Artifacts of successful builds, kept in the builder's memory and found
 * by a digest of everything that decides their bytes, so that a config
 * built again (for a second key with the same compiler and architecture,
 * a resumed or re-submitted session, a replay) costs no compile. Bounded
 * by total bytes: the least recently used go first. It lives as long as
 * the builder; nothing is written to disk. */
#ifndef KTUNE_BUILDCACHE_H
#define KTUNE_BUILDCACHE_H

#include <stddef.h>
#include <stdint.h>

#define BUILDCACHE_DEFAULT_MB 64
#define BUILDCACHE_MAX_MB 65536
/* Artifacts kept at most, whatever their size (each is a mapping). */
#define BUILDCACHE_MAX_ENTRIES 32768

/* A SHA-256 digest, in the conventions of common/identity.c: a domain
 * tag first, then every field with its length in front of it. */
typedef struct {
  unsigned char b[32];
} buildcache_key;

/* What decides an artifact's bytes. Not the time limit or the memory
 * limit: they decide whether a compile ends, not what it makes. */
typedef struct {
  /* The generated C text exactly as the compiler reads it: the template,
   * every constant and knob as a #define in order, the #line naming the
   * task, and the guards codegen puts around the reference. */
  const char *source;
  /* An external command's words (argc 0 for libtcc): words, not the
   * joined line, so that "-DA=1 -O2" as one word and as two differ. */
  char *const *argv;
  size_t argc;
  const char *compiler_id;     /* name, version, flags, what "native" meant */
  const char *compiler_target; /* what it makes code for: a triple or a uname -m name */
  const char *target_arch;     /* what the job asked for (uname -m style, "" for any) */
  /* The compiler's file, or NULL (libtcc is part of this program): its
   * device, inode, size and modification time go in, so that a compiler
   * upgraded under a running builder misses instead of answering with
   * the old compiler's bytes. */
  const char *exe;
} buildcache_inputs;

/* 0, or -EINVAL for a missing field, -ENOMEM when libsodium cannot start. */
int buildcache_key_of(const buildcache_inputs *in, buildcache_key *out);

/* The first 12 hex digits, for log lines. */
void buildcache_key_short(const buildcache_key *k, char out[13]);

typedef struct buildcache buildcache;

/* max_bytes 0 turns the cache off: *out is NULL, which every function
 * here takes as a cache that keeps nothing. Returns 0 or -ENOMEM. */
int buildcache_new(size_t max_bytes, buildcache **out);
void buildcache_free(buildcache *c);

/* A hit: copies, the caller's to free (buildcache_entry_clear), so that
 * it outlives any eviction. */
typedef struct {
  uint8_t *artifact;
  size_t len;
  char *compiler_id;
  double build_s; /* the compile that made it */
} buildcache_entry;

void buildcache_entry_clear(buildcache_entry *e);

/* 1 and a copy in *out on a hit (it becomes the most recently used), 0
 * on a miss, -ENOMEM when the copy cannot be made (counted as a miss). */
int buildcache_get(buildcache *c, const buildcache_key *k, buildcache_entry *out);

/* Keeps a copy, evicting the least recently used until it fits: it counts
 * as the whole pages it takes, the identity included, and at most
 * BUILDCACHE_MAX_ENTRIES are kept. 1 when kept (or already there: the
 * first artifact stays, so that one digest always answers with the same
 * bytes), 0 when the cache is off or the artifact alone is larger than it,
 * -ENOMEM. */
int buildcache_put(buildcache *c, const buildcache_key *k, const uint8_t *artifact, size_t len,
                   const char *compiler_id, double build_s);

/* A lookup that missed, then took the outcome of an identical build
 * already under way (cc.c) instead of compiling: moves it from misses to
 * shared, so that misses counts compiles. */
void buildcache_note_shared(buildcache *c);

typedef struct {
  uint64_t hits, shared, misses, evicted;
  size_t entries, bytes, max_bytes;
} buildcache_stats;

/* All zero for a cache that is off. */
void buildcache_get_stats(const buildcache *c, buildcache_stats *st);

#endif
