/* random and grid. Both look at a bounded amount of work per call, so
 * that a space of any size and any density costs nothing up front, never
 * repeat a config, and say there are no more valid configs only when that
 * is true.
 *   grid:   the space's pruned walk (space_walk_next): valid configs in
 *           index order, whole blocks of invalid ones skipped at once.
 *   random: indices in the order of a keyed pseudo-random permutation
 *           (a Feistel network over the next power of two, cycle-walked
 *           into [0, size)), so the valid configs come in a uniformly
 *           shuffled order that the seed alone decides. In a sparse space
 *           that could take as long as the space is large, so after a run
 *           of misses a pruned walk joins in, a fixed share of work per
 *           config the permutation looks at, and random proposes from the
 *           valid configs it has found. Once that walk has finished, they
 *           are all the valid configs there are. Every decision depends on
 *           the state alone, never on the caller's budget, so a seed gives
 *           the same proposals however the calls are sliced (a resumed
 *           session replays them). */
#include "tuner/tuner.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"

#define FEISTEL_ROUNDS 6
/* random: misses in a row before the pruned walk joins in; rare in a
 * space where one config in a few hundred is valid */
#define MISS_RUN 4096
/* random: units of the walk's work per config the permutation looks at,
 * about what looking at one costs */
#define WALK_SHARE 4
/* random: found configs held for proposing; the walk waits when full */
#define POOL_MAX 65536

enum { KIND_GRID, KIND_RANDOM };

struct tuner {
  int kind;
  space sp;
  space_walk *walk;  /* grid's walk; random's checks and pruned walk */
  int done;
  /* random: the permutation's key and shape, and its next position */
  uint64_t keys[FEISTEL_ROUNDS];
  unsigned half;     /* bits in each half of the Feistel block */
  uint64_t cursor;
  uint64_t misses;   /* invalid or proposed configs in a row */
  int walking, walked;
  rng pick;          /* which found config to propose */
  uint64_t *pool;    /* found by the walk, maybe proposed since */
  size_t npool, pool_cap;
  uint64_t *seen;    /* proposed indices + 1, open addressing; 0 is empty */
  size_t nseen, seen_cap;
};

static uint64_t hash64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* A bijection of [0, 2^(2*half)). */
static uint64_t feistel(const tuner *t, uint64_t x) {
  uint64_t mask = t->half >= 32 ? UINT32_MAX : (((uint64_t)1 << t->half) - 1);
  uint64_t l = (x >> t->half) & mask, r = x & mask;
  for (int i = 0; i < FEISTEL_ROUNDS; i++) {
    uint64_t f = hash64(r ^ t->keys[i]) & mask;
    uint64_t nl = r;
    r = l ^ f;
    l = nl;
  }
  return (l << t->half) | r;
}

/* Cycle walking: applying the bijection until the value lands below size
 * restricts it to a bijection of [0, size). At most 4 steps on average,
 * since the block has fewer than 4 * size values. */
static uint64_t permute(const tuner *t, uint64_t pos) {
  uint64_t y = feistel(t, pos);
  while (y >= t->sp.size) y = feistel(t, y);
  return y;
}

/* The slot of index in the seen table: where it is, or the empty one
 * where it would go. */
static size_t seen_slot(const tuner *t, uint64_t index) {
  size_t mask = t->seen_cap - 1, i = (size_t)hash64(index) & mask;
  while (t->seen[i] && t->seen[i] != index + 1) i = (i + 1) & mask;
  return i;
}

static int was_proposed(const tuner *t, uint64_t index) {
  return t->seen_cap && t->seen[seen_slot(t, index)] != 0;
}

static int mark_proposed(tuner *t, uint64_t index) {
  if (2 * (t->nseen + 1) > t->seen_cap) {
    /* grow at half full: probes stay short */
    size_t cap = t->seen_cap ? 2 * t->seen_cap : 64;
    uint64_t *old = t->seen;
    size_t old_cap = t->seen_cap;
    if (!(t->seen = calloc(cap, sizeof *t->seen))) {
      t->seen = old;
      return -ENOMEM;
    }
    t->seen_cap = cap;
    for (size_t i = 0; i < old_cap; i++)
      if (old[i]) t->seen[seen_slot(t, old[i] - 1)] = old[i];
    free(old);
  }
  t->seen[seen_slot(t, index)] = index + 1;
  t->nseen++;
  return 0;
}

/* A found config not proposed yet, drawn at random; 0 when none. */
static int pool_take(tuner *t, uint64_t *index) {
  while (t->npool > 0) {
    size_t i = (size_t)rng_below(&t->pick, t->npool);
    *index = t->pool[i];
    t->pool[i] = t->pool[--t->npool];
    if (!was_proposed(t, *index)) return 1;
  }
  return 0;
}

/* Advances the pruned walk by its share, keeping the valid configs it
 * finds; adds the work done to *used. */
static int walk_share(tuner *t, uint64_t *used) {
  uint64_t left = WALK_SHARE;
  while (left > 0 && !t->walked && t->npool < POOL_MAX) {
    uint64_t index, u;
    int rc = space_walk_next(t->walk, left, &index, &u);
    *used += u;
    left -= u < left ? u : left;
    if (rc == 1) t->walked = 1;
    if (rc != 0 || was_proposed(t, index)) continue;
    if (t->npool == t->pool_cap) {
      size_t cap = t->pool_cap ? 2 * t->pool_cap : 64;
      uint64_t *p = realloc(t->pool, cap * sizeof *p);
      if (!p) return -ENOMEM;
      t->pool = p;
      t->pool_cap = cap;
    }
    t->pool[t->npool++] = index;
  }
  return 0;
}

/* One proposal of random, or 1 when there are no more, or TUNER_AGAIN. */
static int random_step(tuner *t, uint64_t *index, uint32_t budget) {
  uint64_t used = 0;
  for (;;) {
    /* after a run of misses, or once the walk knows them all: a found one */
    if ((t->misses >= MISS_RUN || t->walked) && pool_take(t, index)) break;
    if (t->walked || t->cursor >= t->sp.size) return 1;
    if (used >= budget) return TUNER_AGAIN;
    if (t->misses >= MISS_RUN) t->walking = 1;
    if (t->walking && walk_share(t, &used) < 0) return -ENOMEM;
    int ok;
    uint64_t u, i = permute(t, t->cursor++);
    if (space_walk_check(t->walk, i, &ok, &u) < 0) return -ERANGE;
    used += u;
    if (ok && !was_proposed(t, i)) {
      *index = i;
      break;
    }
    t->misses++;
  }
  t->misses = 0;
  return mark_proposed(t, *index);
}

int tuner_new(const char *strategy, const space *sp, uint64_t seed, tuner **out, char *err,
              size_t errlen) {
  *out = NULL;
  if (!strategy || (strcmp(strategy, "random") != 0 && strcmp(strategy, "grid") != 0)) {
    if (err && errlen)
      snprintf(err, errlen, "unknown strategy '%.64s' (known: random, grid)",
               strategy ? strategy : "");
    return -EINVAL;
  }
  if (!sp || !sp->task) {
    if (err && errlen) snprintf(err, errlen, "tuner: no config space");
    return -EINVAL;
  }
  tuner *t = calloc(1, sizeof *t);
  if (!t) goto oom;
  t->sp = *sp;
  if (space_walk_new(&t->sp, &t->walk, NULL, 0) < 0) goto oom;
  t->kind = strcmp(strategy, "grid") == 0 ? KIND_GRID : KIND_RANDOM;
  rng r;
  rng_seed(&r, seed);
  for (int i = 0; i < FEISTEL_ROUNDS; i++) t->keys[i] = rng_next(&r);
  rng_seed(&t->pick, rng_next(&r));
  unsigned bits = 1;
  while (bits < 64 && ((uint64_t)1 << bits) < sp->size) bits++;
  t->half = (bits + 1) / 2;
  *out = t;
  return 0;
oom:
  tuner_free(t);
  if (err && errlen) snprintf(err, errlen, "tuner: out of memory");
  return -ENOMEM;
}

int tuner_step(tuner *t, int64_t *values, uint64_t *index, uint32_t budget) {
  if (!t) return -EINVAL;
  if (t->done) return 1;
  if (budget == 0) budget = 1;
  uint64_t i;
  int rc = t->kind == KIND_GRID ? space_walk_next(t->walk, budget, &i, NULL)
                                : random_step(t, &i, budget);
  if (rc == SPACE_AGAIN) return TUNER_AGAIN;
  if (rc == 1) t->done = 1;
  if (rc != 0) return rc;
  if (values && space_config(&t->sp, i, values) < 0) return -ERANGE;
  if (index) *index = i;
  return 0;
}

int tuner_next(tuner *t, int64_t *values, uint64_t *index) {
  int rc;
  while ((rc = tuner_step(t, values, index, UINT32_MAX)) == TUNER_AGAIN) {
  }
  return rc;
}

void tuner_observe(tuner *t, uint64_t index, double gflops) {
  (void)t, (void)index, (void)gflops;
}

const char *tuner_note(const tuner *t) { return t ? space_walk_note(t->walk) : NULL; }

void tuner_free(tuner *t) {
  if (!t) return;
  space_walk_free(t->walk);
  free(t->pool);
  free(t->seen);
  free(t);
}
