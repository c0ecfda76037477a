/* ga through the tuner interface alone, fed synthetic results: it covers
 * the space, repeats nothing, is deterministic whatever the budgets, and
 * finds a clear optimum sooner than random. No tracker is linked. */
#include <stdio.h>

#include "tests/unit/tuner_util.h"

#define MAXP 10000 /* proposals a session here may make: all of tens(4) */

/* Four knobs of ten values, optimum 1000 GFLOPS at 7 2 5 8 and 500 one
 * step away; the last term couples K0 and K2. */
static double peak(const int64_t *v) {
  static const int64_t at[] = {7, 2, 5, 8};
  double d = 0;
  for (int k = 0; k < 4; k++) d += (double)((v[k] - at[k]) * (v[k] - at[k]));
  int64_t c = v[0] - v[2] - 2;
  return 1000.0 / (1.0 + d + (double)(c * c));
}

/* The same landscape upside down: the best are at the corners. */
static double valley(const int64_t *v) { return 2000.0 - peak(v); }

/* For the small space: any smooth positive function. */
static double small_gflops(const int64_t *v) { return (double)(v[0] * 10 + v[1] + v[2]); }

typedef double (*gflops_fn)(const int64_t *v);

/* The trials of a session, kept for results told late. */
static int64_t vals[MAXP][16];
static tuner_trial trials[MAXP];

static void tell(tuner *tu, size_t i, gflops_fn f) {
  double g = f(vals[i]);
  trials[i].status = "ok";
  trials[i].gflops = g;
  trials[i].mean_s = 1.0 / g;
  ASSERT_EQ_INT(tuner_observe(tu, &trials[i]), 0);
}

static tuner *new_tuner(const char *strategy, const space *sp, uint64_t seed) {
  tuner *tu;
  char err[256];
  ASSERT_EQ_INT(tuner_new(strategy, sp, seed, &tu, err, sizeof err), 0);
  return tu;
}

/* Takes the next proposal into trials[n]; 1 when there are no more. */
static int propose(tuner *tu, const space *sp, size_t n, uint32_t budget) {
  ASSERT_LT_INT(n, MAXP);
  uint64_t idx;
  int rc = tu_next(tu, vals[n], &idx, budget);
  ASSERT(rc == 0 || rc == 1);
  if (rc != 0) return rc;
  ASSERT(valid_index(sp, idx));
  int64_t w[16];
  ASSERT_EQ_INT(space_config(sp, idx, w), 0);
  ASSERT(memcmp(vals[n], w, sp->task->nknobs * sizeof w[0]) == 0);
  trials[n] = (tuner_trial){.index = idx, .values = vals[n]};
  return 0;
}

/* A session of at most max proposals whose results come `lag` proposals
 * late, as in a farm with that many out; it stops at the first config of
 * at least `stop` GFLOPS. Returns the number of proposals (in trials). */
static size_t session(tuner *tu, const space *sp, uint32_t budget, size_t lag, gflops_fn f,
                      double stop, size_t max) {
  size_t n = 0, told = 0;
  while (n < max && propose(tu, sp, n, budget) == 0) {
    int done = stop > 0 && f(vals[n]) >= stop;
    n++;
    if (done) break;
    while (told + lag < n) tell(tu, told++, f);
  }
  return n;
}

static space tens4(task_knob *k, char **c, size_t nc) {
  static task_spec t;
  t = tu_tens(k, 4, c, nc);
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  return sp;
}

TEST(ga_restores_after_a_restart) {
  for (uint64_t seed = 1; seed <= 5; seed++) tu_restart_small("ga", seed);
}

/* While it breeds, as after: each valid config once, then no more. */
TEST(ga_proposes_each_valid_config_once) {
  task_spec t = small_spec();
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  uint64_t nvalid = tu_count_valid(&sp);
  uint32_t budgets[] = {1, UINT32_MAX};
  for (uint64_t seed = 1; seed <= 5; seed++)
    for (int b = 0; b < 2; b++) {
      tuner *tu = new_tuner("ga", &sp, seed);
      size_t n = session(tu, &sp, budgets[b], 0, small_gflops, 0, MAXP);
      ASSERT_EQ_U64(n, nvalid);
      for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++) ASSERT(trials[i].index != trials[j].index);
      uint64_t idx;
      ASSERT_EQ_INT(tu_next(tu, vals[0], &idx, budgets[b]), 1);
      ASSERT_EQ_INT(tu_next(tu, vals[0], &idx, budgets[b]), 1);
      char d[128];
      tuner_describe(tu, d, sizeof d);
      ASSERT_CONTAINS(d, "ga: generation ");
      tuner_free(tu);
    }
}

/* The one config of a space without knobs; the two of a space where a
 * constraint divides by zero, which the note names. */
TEST(ga_ends_in_spaces_with_few_valid_configs) {
  task_spec none = {.name = "none"};
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &none, NULL, 0), 0);
  tuner *tu = new_tuner("ga", &sp, 1);
  uint64_t idx = 5;
  ASSERT_EQ_INT(tuner_next(tu, NULL, &idx), 0); /* the one empty config */
  ASSERT_EQ_U64(idx, 0);
  ASSERT_EQ_INT(tuner_next(tu, NULL, &idx), 1);
  tuner_free(tu);

  int64_t ti[] = {0, 4, 5}, kk[] = {1, 2};
  task_knob k[] = {{"K", kk, 2}, {"TI", ti, 3}};
  task_param m[] = {{"M", 12}};
  char *c[] = {"K > 0", "M % TI == 0"};
  task_spec z = {.name = "z", .knobs = k, .nknobs = 2, .consts = m, .nconsts = 1,
                 .constraints = c, .nconstraints = 2};
  ASSERT_EQ_INT(space_init(&sp, &z, NULL, 0), 0);
  tu = new_tuner("ga", &sp, 2);
  ASSERT_EQ_INT(session(tu, &sp, UINT32_MAX, 0, small_gflops, 0, MAXP), 2);
  ASSERT_EQ_STR(tuner_note(tu), "constraints[1] 'M % TI == 0': at 3: modulo by zero (TI=0)");
  tuner_free(tu);
}

/* 128^10 combinations, more than an index can number: it breeds there
 * too, and repeats nothing. */
static int64_t wide[128];

static double wide_gflops(const int64_t *v) {
  double g = 1;
  for (int k = 0; k < 10; k++) g += (double)v[k];
  return g;
}

TEST(ga_breeds_within_a_space_too_large_to_number) {
  static const char *names[] = {"K0", "K1", "K2", "K3", "K4", "K5", "K6", "K7", "K8", "K9"};
  task_knob k[10];
  for (int i = 0; i < 128; i++) wide[i] = i;
  for (int i = 0; i < 10; i++) k[i] = (task_knob){(char *)names[i], wide, 128};
  task_spec t = {.name = "huge", .knobs = k, .nknobs = 10};
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  ASSERT_EQ_U64(sp.size, UINT64_MAX);
  tuner *tu = new_tuner("ga", &sp, 4);
  ASSERT_EQ_INT(session(tu, &sp, 64, 0, wide_gflops, 0, 2000), 2000);
  for (size_t i = 0; i < 2000; i++)
    for (size_t j = 0; j < i; j++) ASSERT(trials[i].index != trials[j].index);
  char d[128];
  tuner_describe(tu, d, sizeof d);
  ASSERT_CONTAINS(d, "ga: generation ");
  tuner_free(tu);
}

/* Results told while a step gives way (budget 1) count from the next
 * proposal on, as if told just after the one before: the budgets and
 * where the results fall among the calls change nothing. when[i] is how
 * many proposals were out when result i was told. */
static size_t when[MAXP];

static void sliced(tuner *tu, size_t max, uint64_t *out, size_t *early) {
  size_t n = 0, told = 0;
  *early = 0;
  while (n < max) {
    uint64_t idx;
    int rc;
    while ((rc = tuner_step(tu, vals[n], &idx, 1)) == TUNER_AGAIN)
      if (told < n) {
        when[told] = n;
        tell(tu, told++, peak);
        ++*early;
      }
    ASSERT_EQ_INT(rc, 0);
    trials[n] = (tuner_trial){.index = idx, .values = vals[n]};
    out[n++] = idx;
    while (told + 1 < n) {
      when[told] = n;
      tell(tu, told++, peak);
    }
  }
}

static void replayed(tuner *tu, const space *sp, uint32_t budget, size_t max, uint64_t *out) {
  size_t told = 0;
  for (size_t n = 0; n < max;) {
    ASSERT_EQ_INT(propose(tu, sp, n, budget), 0);
    out[n] = trials[n].index;
    n++;
    while (told < n && when[told] == n) tell(tu, told++, peak);
  }
}

TEST(ga_is_deterministic_whatever_the_budget) {
  task_knob k[4];
  char *c[] = {"(K0 + K1 + K2 + K3) % 3 != 0"}; /* invalid children: steps give way */
  space sp = tens4(k, c, 1);
  enum { N = 600 };
  static uint64_t a[N], b[N], d[N], e[N];
  size_t early;
  tuner *tu = new_tuner("ga", &sp, 3);
  sliced(tu, N, a, &early);
  tuner_free(tu);
  /* both cases happened: results told mid-step, and after it */
  ASSERT(early > 10 && early < N - 10);
  uint32_t budgets[] = {UINT32_MAX, 7};
  for (int i = 0; i < 2; i++) {
    tu = new_tuner("ga", &sp, 3);
    replayed(tu, &sp, budgets[i], N, b);
    tuner_free(tu);
    ASSERT(memcmp(a, b, sizeof a) == 0);
  }
  /* other results, other proposals, once it breeds */
  for (size_t i = 0; i < N; i++) when[i] = i + 1;
  tu = new_tuner("ga", &sp, 3);
  replayed(tu, &sp, UINT32_MAX, N, d);
  tuner_free(tu);
  tu = new_tuner("ga", &sp, 3);
  ASSERT_EQ_INT(session(tu, &sp, UINT32_MAX, 0, valley, 0, N), N);
  for (size_t i = 0; i < N; i++) e[i] = trials[i].index;
  tuner_free(tu);
  ASSERT(memcmp(d, e, sizeof d) != 0);
}

TEST(ga_seeds_differ) {
  task_knob k[4];
  space sp = tens4(k, NULL, 0);
  uint64_t first[8];
  for (uint64_t s = 0; s < 8; s++) {
    tuner *tu = new_tuner("ga", &sp, s + 1);
    ASSERT_EQ_INT(propose(tu, &sp, 0, UINT32_MAX), 0);
    first[s] = trials[0].index;
    tuner_free(tu);
    for (uint64_t r = 0; r < s; r++) ASSERT(first[r] != first[s]);
  }
}

/* The session's own trials and other sessions' are never proposed, and
 * their results are bred from at once. */
TEST(ga_never_proposes_restored_or_prior_configs) {
  task_spec t = small_spec();
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  uint64_t nvalid = tu_count_valid(&sp);
  static tuner_trial had[64], prior[64];
  static int64_t hv[64][3], pv[64][3];
  size_t nhad = 0, nprior = 0;

  tuner *tu = new_tuner("ga", &sp, 1);
  ASSERT_EQ_INT(session(tu, &sp, UINT32_MAX, 0, small_gflops, 0, 10), 10);
  tuner_free(tu);
  for (size_t i = 0; i < 10; i++, nhad++) {
    memcpy(hv[i], vals[i], sizeof hv[i]);
    had[i] = trials[i];
    had[i].values = hv[i];
    if (i == 9) had[i].status = NULL; /* still running */
    if (i == 8) had[i] = (tuner_trial){.index = had[i].index, .values = hv[i],
                                       .status = "COMPILE_ERROR"};
  }
  tu = new_tuner("ga", &sp, 2); /* another session */
  size_t n = session(tu, &sp, UINT32_MAX, 0, small_gflops, 0, MAXP);
  tuner_free(tu);
  for (size_t i = 0; i < n && nprior < 6; i++) {
    int dup = 0;
    for (size_t j = 0; j < nhad; j++) dup |= had[j].index == trials[i].index;
    if (dup) continue;
    memcpy(pv[nprior], vals[i], sizeof pv[nprior]);
    prior[nprior] = trials[i];
    prior[nprior].values = pv[nprior];
    nprior++;
  }
  ASSERT_EQ_INT(nprior, 6);

  tu = new_tuner("ga", &sp, 1);
  char d[128];
  tuner_describe(tu, d, sizeof d);
  ASSERT_EQ_STR(d, "ga: random start, 0 of 8 results in");
  ASSERT_EQ_INT(tuner_restore(tu, had, nhad), 0);
  double best = 0;
  for (size_t i = 0; i < nhad; i++)
    if (had[i].status && !strcmp(had[i].status, "ok") && had[i].gflops > best) best = had[i].gflops;
  char want[128];
  snprintf(want, sizeof want, "ga: generation 1, population 8, best %.1f GFLOPS", best);
  tuner_describe(tu, d, sizeof d);
  ASSERT_EQ_STR(d, want); /* eight results in: it breeds from the first step */
  ASSERT_EQ_INT(tuner_prior(tu, prior, nprior), 0);
  n = session(tu, &sp, 1, 0, small_gflops, 0, MAXP);
  ASSERT_EQ_U64(n + nhad + nprior, nvalid);
  for (size_t i = 0; i < n; i++) {
    for (size_t j = 0; j < nhad; j++) ASSERT(trials[i].index != had[j].index);
    for (size_t j = 0; j < nprior; j++) ASSERT(trials[i].index != prior[j].index);
  }
  tuner_free(tu);
}

static uint64_t median5(uint64_t *x) {
  for (int i = 1; i < 5; i++)
    for (int j = i; j > 0 && x[j] < x[j - 1]; j--) {
      uint64_t s = x[j];
      x[j] = x[j - 1];
      x[j - 1] = s;
    }
  return x[2];
}

/* Trials until the optimum (nothing else is within 98% of it), median of
 * five seeds; results told at once, or 16 proposals late. */
TEST(ga_finds_the_optimum_sooner_than_random) {
  task_knob k[4];
  space sp = tens4(k, NULL, 0);
  size_t lags[] = {0, 16};
  for (int l = 0; l < 2; l++) {
    uint64_t ga[5], rnd[5];
    for (uint64_t s = 0; s < 5; s++) {
      const char *st[] = {"ga", "random"};
      uint64_t *out[] = {ga, rnd};
      for (int i = 0; i < 2; i++) {
        tuner *tu = new_tuner(st[i], &sp, s + 1);
        out[i][s] = session(tu, &sp, 2048, lags[l], peak, 0.98 * 1000, MAXP);
        ASSERT_GE_INT(peak(vals[out[i][s] - 1]), 980);
        tuner_free(tu);
      }
    }
    uint64_t g = median5(ga), r = median5(rnd);
    fprintf(stderr, "lag %zu: ga %llu, random %llu trials\n", lags[l], (unsigned long long)g,
            (unsigned long long)r);
    /* random needs about half the space; ga a fraction of that */
    ASSERT_LT_INT(4 * g, r);
  }
}

TEST(ga_describes_its_start_then_its_generations) {
  task_knob k[4];
  space sp = tens4(k, NULL, 0);
  tuner *tu = new_tuner("ga", &sp, 9);
  char d[128], want[128];
  tuner_describe(tu, d, sizeof d);
  ASSERT_EQ_STR(d, "ga: random start, 0 of 8 results in");
  for (size_t i = 0; i < 4; i++) ASSERT_EQ_INT(propose(tu, &sp, i, UINT32_MAX), 0);
  for (size_t i = 0; i < 3; i++) tell(tu, i, peak);
  trials[3].status = "RUNTIME_ERROR"; /* failures are no results to breed from */
  ASSERT_EQ_INT(tuner_observe(tu, &trials[3]), 0);
  tuner_describe(tu, d, sizeof d);
  ASSERT_EQ_STR(d, "ga: random start, 3 of 8 results in");

  size_t n = session(tu, &sp, UINT32_MAX, 0, peak, 0, 200);
  double best = 0;
  for (size_t i = 0; i < n; i++) best = peak(vals[i]) > best ? peak(vals[i]) : best;
  tuner_describe(tu, d, sizeof d);
  ASSERT(!strchr(d, '\n'));
  unsigned gen = 0, pop = 0;
  ASSERT_EQ_INT(sscanf(d, "ga: generation %u, population %u", &gen, &pop), 2);
  ASSERT(gen >= 4 && gen <= 200 / 32 + 1);
  ASSERT_EQ_INT(pop, 32);
  snprintf(want, sizeof want, "best %.1f GFLOPS", best);
  ASSERT_CONTAINS(d, want);
  tuner_free(tu);

  /* without a FLOP count the fastest is the best */
  tu = new_tuner("ga", &sp, 9);
  for (size_t i = 0; i < 8; i++) {
    ASSERT_EQ_INT(propose(tu, &sp, i, UINT32_MAX), 0);
    trials[i].status = "ok";
    trials[i].mean_s = 1e-3 * (double)(i % 4 + 2);
    ASSERT_EQ_INT(tuner_observe(tu, &trials[i]), 0);
  }
  tuner_describe(tu, d, sizeof d);
  ASSERT_EQ_STR(d, "ga: generation 1, population 8, best 2 ms");
  tuner_free(tu);
}

TEST_LIST(TEST_ENTRY(ga_restores_after_a_restart), TEST_ENTRY(ga_proposes_each_valid_config_once),
          TEST_ENTRY(ga_ends_in_spaces_with_few_valid_configs),
          TEST_ENTRY(ga_breeds_within_a_space_too_large_to_number),
          TEST_ENTRY(ga_is_deterministic_whatever_the_budget), TEST_ENTRY(ga_seeds_differ),
          TEST_ENTRY(ga_never_proposes_restored_or_prior_configs),
          TEST_ENTRY(ga_finds_the_optimum_sooner_than_random),
          TEST_ENTRY(ga_describes_its_start_then_its_generations))
