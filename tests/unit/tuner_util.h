/* Test helpers for the strategies, through the tuner interface alone: a
 * small space, and a search cut by a simulated restart. Header-only: each
 * test program is one file. */
#ifndef KTUNE_TEST_TUNER_UTIL_H
#define KTUNE_TEST_TUNER_UTIL_H

#include <errno.h>

#include "tests/test.h"
#include "tuner/tuner.h"

/* A small space: 5 * 4 * 3 = 60 configs, about half of them valid. */
static int64_t va[] = {1, 2, 3, 4, 6};
static int64_t vb[] = {8, 4, 2, 1};
static int64_t vc[] = {0, 1, 2};
static task_knob knobs[] = {{"A", va, 5}, {"B", vb, 4}, {"C", vc, 3}};
static task_param consts[] = {{"M", 12}};
static char *cons[] = {"M % A == 0", "A * B <= 16", "C == 0 || A % 2 == 0"};

static inline task_spec small_spec(void) {
  task_spec t = {0};
  t.name = "small";
  t.knobs = knobs;
  t.nknobs = 3;
  t.consts = consts;
  t.nconsts = 1;
  t.constraints = cons;
  t.nconstraints = 3;
  return t;
}

static inline int valid_index(const space *sp, uint64_t i) {
  int64_t v[16];
  int ok = 0;
  ASSERT_EQ_INT(space_config(sp, i, v), 0);
  ASSERT_EQ_INT(space_valid(sp, v, &ok, NULL, 0), 0);
  return ok;
}

/* nk (at most 9) knobs K0, K1, ... of the values 0 to 9, stored in k:
 * spaces of up to 10^9 configs. */
static inline task_spec tu_tens(task_knob *k, size_t nk, char **c, size_t nc) {
  static int64_t ten[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  static const char *names[] = {"K0", "K1", "K2", "K3", "K4", "K5", "K6", "K7", "K8"};
  for (size_t i = 0; i < nk && i < 9; i++) k[i] = (task_knob){(char *)names[i], ten, 10};
  return (task_spec){.name = "tens", .knobs = k, .nknobs = nk < 9 ? nk : 9, .constraints = c,
                     .nconstraints = nc};
}

/* Up to 16 knobs; the trials keep their values here. */
typedef struct {
  tuner_trial tr[4096];
  int64_t values[4096][16];
  size_t n;
} tu_trials;

static inline int tu_has(const tu_trials *p, uint64_t index) {
  for (size_t i = 0; i < p->n; i++)
    if (p->tr[i].index == index) return 1;
  return 0;
}

/* Next proposal with `budget` per call, through TUNER_AGAIN, training
 * when the strategy asks for it. */
static inline int tu_next(tuner *tu, int64_t *v, uint64_t *idx, uint32_t budget) {
  int rc;
  while ((rc = tuner_step(tu, v, idx, budget)) == TUNER_AGAIN || rc == TUNER_TRAIN)
    if (rc == TUNER_TRAIN) ASSERT_EQ_INT(tuner_train(tu), 0);
  return rc;
}

/* Appends a proposal; every third one fails, every fifth is still
 * running (status NULL) when the tracker stops. */
static inline tuner_trial *tu_add(tu_trials *p, uint64_t index, const int64_t *v, size_t nk) {
  ASSERT_LT_INT(p->n, 4096);
  ASSERT(!tu_has(p, index)); /* never proposed twice */
  tuner_trial *t = &p->tr[p->n];
  memcpy(p->values[p->n], v, nk * sizeof *v);
  *t = (tuner_trial){.index = index, .values = p->values[p->n]};
  if (p->n % 5 != 4) t->status = p->n % 3 == 2 ? "RUNTIME_ERROR" : "ok";
  if (t->status && !strcmp(t->status, "ok")) {
    t->mean_s = 1e-3 * (double)(index % 7 + 1);
    t->gflops = 1.0 / t->mean_s;
  }
  p->n++;
  return t;
}

/* A session of `strategy` proposes `before` configs and hears how they
 * ended, then the tracker restarts: a new tuner restores from those
 * trials, oldest last, and proposes the rest. Together they propose
 * every one of the space's `nvalid` valid configs once, and then say
 * there are no more, for good. */
static inline void tu_restart(const char *strategy, const space *sp, uint64_t seed,
                              size_t before, uint32_t budget, uint64_t nvalid) {
  static tu_trials p;
  p.n = 0;
  size_t nk = sp->task->nknobs;
  ASSERT(nk <= 16 && nvalid <= 4096);
  int64_t v[16];
  uint64_t idx;
  tuner *tu;
  char err[256];
  ASSERT_EQ_INT(tuner_new(strategy, sp, seed, &tu, err, sizeof err), 0);
  while (p.n < before) {
    ASSERT_EQ_INT(tu_next(tu, v, &idx, budget), 0);
    tuner_trial *t = tu_add(&p, idx, v, nk);
    if (t->status) ASSERT_EQ_INT(tuner_observe(tu, t), 0);
  }
  tuner_free(tu);

  /* The history gives them in its own order, not the proposals'. */
  for (size_t i = 0; i < p.n / 2; i++) {
    tuner_trial t = p.tr[i];
    p.tr[i] = p.tr[p.n - 1 - i];
    p.tr[p.n - 1 - i] = t;
  }
  ASSERT_EQ_INT(tuner_new(strategy, sp, seed, &tu, err, sizeof err), 0);
  ASSERT_EQ_INT(tuner_restore(tu, p.tr, p.n), 0);
  int rc;
  while ((rc = tu_next(tu, v, &idx, budget)) == 0) {
    ASSERT(valid_index(sp, idx));
    int64_t w[16];
    ASSERT_EQ_INT(space_config(sp, idx, w), 0);
    ASSERT(memcmp(v, w, nk * sizeof *v) == 0);
    tuner_trial *t = tu_add(&p, idx, v, nk);
    if (t->status) ASSERT_EQ_INT(tuner_observe(tu, t), 0);
  }
  ASSERT_EQ_INT(rc, 1);
  ASSERT_EQ_U64(p.n, nvalid);
  ASSERT_EQ_INT(tu_next(tu, v, &idx, budget), 1);
  tuner_free(tu);
}

/* The valid configs of a small space, by looking at each. */
static inline uint64_t tu_count_valid(const space *sp) {
  uint64_t n = 0;
  for (uint64_t i = 0; i < sp->size; i++) n += (uint64_t)valid_index(sp, i);
  return n;
}

/* tu_restart in the small space, cut after none, one, a few, all but one
 * and all of its valid configs, with budgets of one config per call and
 * of all it takes. */
static inline void tu_restart_small(const char *strategy, uint64_t seed) {
  task_spec t = small_spec();
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  uint64_t nvalid = tu_count_valid(&sp);
  size_t before[] = {0, 1, 9, (size_t)nvalid - 1, (size_t)nvalid};
  for (size_t b = 0; b < 5; b++) {
    tu_restart(strategy, &sp, seed, before[b], 1, nvalid);
    tu_restart(strategy, &sp, seed, before[b], UINT32_MAX, nvalid);
  }
}

#endif
