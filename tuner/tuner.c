/* random and grid. Small spaces (up to RANDOM_LIST_MAX combinations) are
 * filtered once and shuffled incrementally, which is exact and never
 * repeats. Larger spaces are sampled by rejection, remembering what was
 * proposed; each call gives up after a bounded number of draws, so a huge
 * space with almost no valid configs ends the session instead of stalling
 * the tracker. grid bounds its scan per call for the same reason. */
#include "tuner/tuner.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"

#define RANDOM_LIST_MAX ((uint64_t)1 << 20)
#define RANDOM_ATTEMPTS 65536
#define RANDOM_MAX_PROPOSED ((size_t)1 << 22)
#define GRID_SCAN_MAX ((uint64_t)1 << 24)

enum { KIND_GRID, KIND_RANDOM_LIST, KIND_RANDOM_SAMPLE };

struct tuner {
  int kind;
  space sp;
  rng r;
  int64_t *scratch;  /* one config, for validity checks */
  /* grid */
  uint64_t cursor;
  int done;
  uint64_t misses;   /* configs looked at since the last one found */
  /* random, listed: valid[0..remaining) are not yet proposed */
  uint64_t *valid;
  uint64_t remaining;
  /* random, sampled: open addressing set of proposed index + 1 (0 = empty) */
  uint64_t *set;
  size_t cap, count;
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

static int set_has(const tuner *t, uint64_t index) {
  if (!t->cap) return 0;
  for (size_t i = hash64(index) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
    if (t->set[i] == 0) return 0;
    if (t->set[i] == index + 1) return 1;
  }
}

static void set_put_raw(uint64_t *set, size_t cap, uint64_t key) {
  size_t i = hash64(key - 1) & (cap - 1);
  while (set[i]) i = (i + 1) & (cap - 1);
  set[i] = key;
}

static int set_add(tuner *t, uint64_t index) {
  if ((t->count + 1) * 2 > t->cap) {
    size_t ncap = t->cap ? t->cap * 2 : 1024;
    uint64_t *ns = calloc(ncap, sizeof *ns);
    if (!ns) return -ENOMEM;
    for (size_t i = 0; i < t->cap; i++)
      if (t->set[i]) set_put_raw(ns, ncap, t->set[i]);
    free(t->set);
    t->set = ns;
    t->cap = ncap;
  }
  set_put_raw(t->set, t->cap, index + 1);
  t->count++;
  return 0;
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
  rng_seed(&t->r, seed);
  size_t nk = sp->task->nknobs;
  if (!(t->scratch = calloc(nk ? nk : 1, sizeof *t->scratch))) goto oom;
  if (strcmp(strategy, "grid") == 0) {
    t->kind = KIND_GRID;
  } else if (sp->size <= RANDOM_LIST_MAX) {
    t->kind = KIND_RANDOM_LIST;
    if (!(t->valid = malloc((sp->size ? sp->size : 1) * sizeof *t->valid))) goto oom;
    for (uint64_t i = 0; i < sp->size; i++)
      if (is_valid(t, i)) t->valid[t->remaining++] = i;
  } else {
    t->kind = KIND_RANDOM_SAMPLE;
  }
  *out = t;
  return 0;
oom:
  tuner_free(t);
  if (err && errlen) snprintf(err, errlen, "tuner: out of memory");
  return -ENOMEM;
}

static int next_grid(tuner *t, uint64_t *index, uint32_t budget) {
  for (uint32_t looked = 0; !t->done && t->misses < GRID_SCAN_MAX; looked++) {
    if (t->cursor >= t->sp.size) break;
    if (looked == budget) return TUNER_AGAIN;
    uint64_t i = t->cursor++;
    if (is_valid(t, i)) {
      t->misses = 0;
      *index = i;
      return 0;
    }
    t->misses++;
  }
  t->done = 1;
  return 1;
}

static int next_listed(tuner *t, uint64_t *index) {
  if (t->remaining == 0) return 1;
  /* one step of Fisher-Yates: swap the pick out of the live prefix */
  uint64_t j = rng_below(&t->r, t->remaining);
  uint64_t pick = t->valid[j];
  t->valid[j] = t->valid[--t->remaining];
  t->valid[t->remaining] = pick;
  *index = pick;
  return 0;
}

static int next_sampled(tuner *t, uint64_t *index, uint32_t budget) {
  if (t->count >= RANDOM_MAX_PROPOSED || t->count >= t->sp.size) return 1;
  for (uint32_t looked = 0; t->misses < RANDOM_ATTEMPTS; looked++) {
    if (looked == budget) return TUNER_AGAIN;
    uint64_t i = rng_below(&t->r, t->sp.size);
    if (set_has(t, i) || !is_valid(t, i)) {
      t->misses++;
      continue;
    }
    int rc = set_add(t, i);
    if (rc < 0) return rc;
    t->misses = 0;
    *index = i;
    return 0;
  }
  return 1;
}

int tuner_step(tuner *t, int64_t *values, uint64_t *index, uint32_t budget) {
  if (!t) return -EINVAL;
  uint64_t i = 0;
  int rc;
  if (budget == 0) budget = 1;
  switch (t->kind) {
    case KIND_GRID: rc = next_grid(t, &i, budget); break;
    case KIND_RANDOM_LIST: rc = next_listed(t, &i); break;
    default: rc = next_sampled(t, &i, budget); break;
  }
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

void tuner_free(tuner *t) {
  if (!t) return;
  free(t->scratch);
  free(t->valid);
  free(t->set);
  free(t);
}
