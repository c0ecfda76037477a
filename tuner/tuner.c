/* random and grid. Both walk the whole index space once, looking at a
 * bounded number of configs per call, so that a space of any size and any
 * density costs nothing up front, never repeats a config, and says it has
 * no more valid configs only after it has looked at every one.
 *   grid:   indices in order.
 *   random: indices in the order of a keyed pseudo-random permutation
 *           (a Feistel network over the next power of two, cycle-walked
 *           into [0, size)), so the valid configs come in a uniformly
 *           shuffled order that the seed alone decides. */
#include "tuner/tuner.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"

#define FEISTEL_ROUNDS 6

enum { KIND_GRID, KIND_RANDOM };

struct tuner {
  int kind;
  space sp;
  int64_t *scratch;  /* one config, for validity checks */
  uint64_t cursor;   /* next position of the walk */
  int done;
  /* random: the permutation's key and shape */
  uint64_t keys[FEISTEL_ROUNDS];
  unsigned half;     /* bits in each half of the Feistel block */
};

static int is_valid(tuner *t, uint64_t index) {
  int ok = 0;
  if (space_config(&t->sp, index, t->scratch) < 0) return 0;
  /* a constraint that cannot be evaluated for this config rules it out */
  if (space_valid(&t->sp, t->scratch, &ok, NULL, 0) < 0) return 0;
  return ok;
}

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
  size_t nk = sp->task->nknobs;
  if (!(t->scratch = calloc(nk ? nk : 1, sizeof *t->scratch))) goto oom;
  t->kind = strcmp(strategy, "grid") == 0 ? KIND_GRID : KIND_RANDOM;
  rng r;
  rng_seed(&r, seed);
  for (int i = 0; i < FEISTEL_ROUNDS; i++) t->keys[i] = rng_next(&r);
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
  if (budget == 0) budget = 1;
  for (uint32_t looked = 0; !t->done; looked++) {
    if (t->cursor >= t->sp.size) break;
    if (looked == budget) return TUNER_AGAIN;
    uint64_t pos = t->cursor++;
    uint64_t i = t->kind == KIND_GRID ? pos : permute(t, pos);
    if (!is_valid(t, i)) continue;
    if (values && space_config(&t->sp, i, values) < 0) return -ERANGE;
    if (index) *index = i;
    return 0;
  }
  t->done = 1;
  return 1;
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

void tuner_free(tuner *t) {
  if (!t) return;
  free(t->scratch);
  free(t);
}
