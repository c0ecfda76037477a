/* ga: a steady-state genetic search. In the farm many proposals are out
 * before their results come back, so there are no generations to wait
 * for: each step breeds one child from the best configs measured so far
 * (tournament selection, uniform crossover, a step along a knob's value
 * list as mutation), and each result joins that population as it comes.
 * The population keeps only the best, so it never loses them.
 *
 * Until a handful of results are in there is nothing to breed from, so
 * the configs come from an embedded random search; it also takes over for
 * a step whose children are all invalid or already had, which is how ga,
 * like the others, ends up proposing every valid config. Random does not
 * know what ga bred, so ga skips what random gives that it already has.
 *
 * A step breeds from the population as it was when the previous proposal
 * was made: results arriving between the calls of a step that gives way
 * cannot change what it finds, so the budgets never change the
 * proposals. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "tuner/seen.h"

#define POP 32       /* the best results bred from */
#define START 8      /* results before breeding: fewer make a poor tournament */
#define TOURNAMENT 3
#define MUTATE 10    /* one knob in MUTATE moves, when bred */
#define TRIES 64     /* children per step before random takes over */

typedef struct {
  uint64_t index;
  double gflops, mean_s;
} member;

typedef struct {
  const space *sp;
  void *random;       /* the first configs, and when breeding finds none */
  space_walk *walk;   /* checks the children */
  rng rng;
  seen_set seen;      /* proposed, restored and prior: never again */
  member pop[POP];    /* best first */
  size_t npop;
  member parents[POP]; /* pop when the last proposal was made */
  size_t nparents;
  unsigned tries;     /* children tried for this step; TRIES: random's turn */
  uint64_t bred;      /* proposals that were children */
  uint64_t *pa, *pb;  /* the parents' positions in each knob's values */
} ga;

/* Higher GFLOPS wins; a kernel without a FLOP count has only its time. */
static int better(const member *a, const member *b) {
  if (a->gflops > 0 || b->gflops > 0) return a->gflops > b->gflops;
  return a->mean_s < b->mean_s;
}

static void join(ga *g, const tuner_trial *tr) {
  if (!tr->status || strcmp(tr->status, "ok") != 0) return;
  if (tr->gflops <= 0 && tr->mean_s <= 0) return;
  member m = {tr->index, tr->gflops, tr->mean_s};
  for (size_t i = 0; i < g->npop; i++)
    if (g->pop[i].index == m.index) return;
  size_t at = 0;
  while (at < g->npop && !better(&m, &g->pop[at])) at++;
  if (at == POP) return;
  size_t n = g->npop < POP ? g->npop : POP - 1;
  memmove(&g->pop[at + 1], &g->pop[at], (n - at) * sizeof m);
  g->pop[at] = m;
  if (g->npop < POP) g->npop++;
}

/* What the next proposal breeds from (see the top). */
static void settle(ga *g) {
  memcpy(g->parents, g->pop, g->npop * sizeof g->pop[0]);
  g->nparents = g->npop;
}

/* An index as positions in each knob's values: mixed radix, last knob
 * fastest, as the space numbers them. */
static void decode(const ga *g, uint64_t index, uint64_t *pos) {
  const task_spec *t = g->sp->task;
  for (size_t k = t->nknobs; k-- > 0;) {
    pos[k] = index % t->knobs[k].nvalues;
    index /= t->knobs[k].nvalues;
  }
}

static const member *tournament(ga *g) {
  size_t best = (size_t)rng_below(&g->rng, g->nparents);
  for (int i = 1; i < TOURNAMENT; i++) {
    size_t c = (size_t)rng_below(&g->rng, g->nparents);
    if (c < best) best = c;
  }
  return &g->parents[best];
}

/* A child's index; -ERANGE when it lies past the end of a space too large
 * to number whole. */
static int breed(ga *g, uint64_t *index) {
  const task_spec *t = g->sp->task;
  decode(g, tournament(g)->index, g->pa);
  decode(g, tournament(g)->index, g->pb);
  uint64_t idx = 0;
  int over = 0;
  for (size_t k = 0; k < t->nknobs; k++) {
    uint64_t n = t->knobs[k].nvalues;
    uint64_t p = rng_below(&g->rng, 2) ? g->pa[k] : g->pb[k];
    if (n > 1 && rng_below(&g->rng, MUTATE) == 0) {
      if (p == 0 || (p < n - 1 && rng_below(&g->rng, 2)))
        p++;
      else
        p--;
    }
    over |= __builtin_mul_overflow(idx, n, &idx);
    over |= __builtin_add_overflow(idx, p, &idx);
  }
  *index = idx;
  return over || idx >= g->sp->size ? -ERANGE : 0;
}

static int proposed(ga *g, uint64_t index) {
  g->tries = 0;
  settle(g);
  return seen_add(&g->seen, index);
}

static int ga_step(void *state, uint64_t *index, uint32_t budget) {
  ga *g = state;
  uint64_t used = 0;
  while (g->nparents >= START && g->tries < TRIES) {
    if (used >= budget) return TUNER_AGAIN;
    g->tries++;
    uint64_t i, u = 1;
    int ok = 0;
    if (breed(g, &i) == 0 && !seen_has(&g->seen, i) &&
        space_walk_check(g->walk, i, &ok, &u) < 0)
      return -ERANGE;
    used += u;
    if (ok) {
      g->bred++;
      *index = i;
      return proposed(g, i);
    }
  }
  if (used >= budget) return TUNER_AGAIN;
  int rc = tuner_random.step(g->random, index, (uint32_t)(budget - used));
  if (rc != 0) return rc;
  /* Random's work is not known here, so a skip gives way rather than
   * risk a second full budget. */
  if (seen_has(&g->seen, *index)) return TUNER_AGAIN;
  return proposed(g, *index);
}

static int ga_observe(void *state, const tuner_trial *tr) {
  ga *g = state;
  join(g, tr);
  /* measured, so never proposed, even if it was not ga's proposal */
  return seen_add(&g->seen, tr->index);
}

static int ga_restore(void *state, const tuner_trial *trials, size_t n) {
  ga *g = state;
  for (size_t i = 0; i < n; i++) join(g, &trials[i]);
  settle(g);
  if (seen_add_trials(&g->seen, trials, n) < 0) return -ENOMEM;
  return tuner_random.restore(g->random, trials, n);
}

static const char *ga_note(const void *state) {
  const ga *g = state;
  const char *note = tuner_random.note(g->random);
  return note ? note : space_walk_note(g->walk);
}

static void ga_describe(const void *state, char *out, size_t len) {
  const ga *g = state;
  if (g->bred == 0 && g->npop < START) {
    snprintf(out, len, "ga: random start, %zu of %d results in", g->npop, START);
    return;
  }
  int n = snprintf(out, len, "ga: generation %llu, population %zu, best ",
                   (unsigned long long)(g->bred / POP + 1), g->npop);
  if (n < 0 || (size_t)n >= len) return;
  if (g->pop[0].gflops > 0)
    snprintf(out + n, len - (size_t)n, "%.1f GFLOPS", g->pop[0].gflops);
  else
    snprintf(out + n, len - (size_t)n, "%.4g ms", g->pop[0].mean_s * 1e3);
}

static void ga_free(void *state) {
  ga *g = state;
  if (g->random) tuner_random.free(g->random);
  space_walk_free(g->walk);
  seen_free(&g->seen);
  free(g->pa);
  free(g);
}

static int ga_new(const space *sp, uint64_t seed, void **state) {
  ga *g = calloc(1, sizeof *g);
  if (!g) return -ENOMEM;
  g->sp = sp;
  size_t nk = sp->task->nknobs;
  g->pa = calloc(2 * nk + 1, sizeof *g->pa);
  if (!g->pa || tuner_random.new(sp, seed, &g->random) < 0 ||
      space_walk_new(sp, &g->walk, NULL, 0) < 0) {
    ga_free(g);
    return -ENOMEM;
  }
  g->pb = g->pa + nk;
  /* not random's own stream: breeding should not echo its shuffle */
  rng_seed(&g->rng, seed ^ 0x9e3779b97f4a7c15ULL);
  *state = g;
  return 0;
}

/* Until it can breed, random guesses beyond the results it needs would
 * fill the farm's queue with configs bred from nothing. */
static uint32_t ga_ahead(const void *state) {
  const ga *g = state;
  return g->npop < START ? (uint32_t)(START - g->npop) : UINT32_MAX;
}

const tuner_strategy tuner_ga = {
    .new = ga_new,
    .step = ga_step,
    .observe = ga_observe,
    .restore = ga_restore,
    .prior = ga_restore,
    .ahead = ga_ahead,
    .note = ga_note,
    .describe = ga_describe,
    .free = ga_free,
};
