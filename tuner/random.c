/* random: indices in the order of a keyed pseudo-random permutation (a
 * Feistel network over the next power of two, cycle-walked into
 * [0, size)), so the valid configs come in a uniformly shuffled order that
 * the seed alone decides. In a sparse space that could take as long as
 * the space is large, so after a run of misses a pruned walk joins in, a
 * fixed share of work per config the permutation looks at, and random
 * proposes from the valid configs it has found. Once that walk has
 * finished, they are all the valid configs there are. Every decision
 * depends on the state alone, never on the caller's budget, so a seed
 * gives the same proposals however the calls are sliced. After a restart
 * the configs the session already has count as proposed: the permutation
 * passes over them, and the walk does not keep them. */
#include <errno.h>
#include <stdlib.h>

#include "common/rng.h"
#include "tuner/seen.h"

#define FEISTEL_ROUNDS 6
/* misses in a row before the pruned walk joins in; rare in a space where
 * one config in a few hundred is valid */
#define MISS_RUN 4096
/* units of the walk's work per config the permutation looks at, about
 * what looking at one costs */
#define WALK_SHARE 4
/* found configs held for proposing; the walk waits when full */
#define POOL_MAX 65536

typedef struct {
  uint64_t size;      /* of the space */
  space_walk *walk;   /* checks, and the pruned walk */
  /* the permutation's key and shape, and its next position */
  uint64_t keys[FEISTEL_ROUNDS];
  unsigned half;      /* bits in each half of the Feistel block */
  uint64_t cursor;
  uint64_t misses;    /* invalid or proposed configs in a row */
  int walking, walked;
  rng pick;           /* which found config to propose */
  uint64_t *pool;     /* found by the walk, maybe proposed since */
  size_t npool, pool_cap;
  seen_set proposed;
} random_search;

/* A bijection of [0, 2^(2*half)). */
static uint64_t feistel(const random_search *r, uint64_t x) {
  uint64_t mask = r->half >= 32 ? UINT32_MAX : (((uint64_t)1 << r->half) - 1);
  uint64_t l = (x >> r->half) & mask, w = x & mask;
  for (int i = 0; i < FEISTEL_ROUNDS; i++) {
    uint64_t f = seen_hash(w ^ r->keys[i]) & mask;
    uint64_t nl = w;
    w = l ^ f;
    l = nl;
  }
  return (l << r->half) | w;
}

/* Cycle walking: applying the bijection until the value lands below size
 * restricts it to a bijection of [0, size). At most 4 steps on average,
 * since the block has fewer than 4 * size values. */
static uint64_t permute(const random_search *r, uint64_t pos) {
  uint64_t y = feistel(r, pos);
  while (y >= r->size) y = feistel(r, y);
  return y;
}

/* A found config not proposed yet, drawn at random; 0 when none. */
static int pool_take(random_search *r, uint64_t *index) {
  while (r->npool > 0) {
    size_t i = (size_t)rng_below(&r->pick, r->npool);
    *index = r->pool[i];
    r->pool[i] = r->pool[--r->npool];
    if (!seen_has(&r->proposed, *index)) return 1;
  }
  return 0;
}

/* Advances the pruned walk by its share, keeping the valid configs it
 * finds; adds the work done to *used. */
static int walk_share(random_search *r, uint64_t *used) {
  uint64_t left = WALK_SHARE;
  while (left > 0 && !r->walked && r->npool < POOL_MAX) {
    uint64_t index, u;
    int rc = space_walk_next(r->walk, left, &index, &u);
    *used += u;
    left -= u < left ? u : left;
    if (rc == 1) r->walked = 1;
    if (rc != 0 || seen_has(&r->proposed, index)) continue;
    if (r->npool == r->pool_cap) {
      size_t cap = r->pool_cap ? 2 * r->pool_cap : 64;
      uint64_t *p = realloc(r->pool, cap * sizeof *p);
      if (!p) return -ENOMEM;
      r->pool = p;
      r->pool_cap = cap;
    }
    r->pool[r->npool++] = index;
  }
  return 0;
}

static int random_step(void *state, uint64_t *index, uint32_t budget) {
  random_search *r = state;
  uint64_t used = 0;
  for (;;) {
    /* after a run of misses, or once the walk knows them all: a found one */
    if ((r->misses >= MISS_RUN || r->walked) && pool_take(r, index)) break;
    if (r->walked || r->cursor >= r->size) return 1;
    if (used >= budget) return TUNER_AGAIN;
    if (r->misses >= MISS_RUN) r->walking = 1;
    if (r->walking && walk_share(r, &used) < 0) return -ENOMEM;
    int ok;
    uint64_t u, i = permute(r, r->cursor++);
    if (space_walk_check(r->walk, i, &ok, &u) < 0) return -ERANGE;
    used += u;
    if (ok && !seen_has(&r->proposed, i)) {
      *index = i;
      break;
    }
    r->misses++;
  }
  r->misses = 0;
  return seen_add(&r->proposed, *index);
}

static void random_free(void *state) {
  random_search *r = state;
  space_walk_free(r->walk);
  free(r->pool);
  seen_free(&r->proposed);
  free(r);
}

static int random_new(const space *sp, uint64_t seed, void **state) {
  random_search *r = calloc(1, sizeof *r);
  if (!r) return -ENOMEM;
  if (space_walk_new(sp, &r->walk, NULL, 0) < 0) {
    random_free(r);
    return -ENOMEM;
  }
  r->size = sp->size;
  rng g;
  rng_seed(&g, seed);
  for (int i = 0; i < FEISTEL_ROUNDS; i++) r->keys[i] = rng_next(&g);
  rng_seed(&r->pick, rng_next(&g));
  unsigned bits = 1;
  while (bits < 64 && ((uint64_t)1 << bits) < sp->size) bits++;
  r->half = (bits + 1) / 2;
  *state = r;
  return 0;
}

static int random_restore(void *state, const tuner_trial *trials, size_t n) {
  random_search *r = state;
  return seen_add_trials(&r->proposed, trials, n);
}

static const char *random_note(const void *state) {
  const random_search *r = state;
  return space_walk_note(r->walk);
}

const tuner_strategy tuner_random = {
    .new = random_new,
    .step = random_step,
    .restore = random_restore,
    .note = random_note,
    .free = random_free,
};
