/* The model strategy on a space too large to score whole: its evolution
 * over the model's predictions (tuner/model.c) must still propose only
 * valid, new configs and find a smooth optimum well before random. */
#include <string.h>

#include "tests/unit/tuner_util.h"

#define KNOBS 6
#define TRIALS 120

/* A smooth speed with one peak at K_i = 7 - i, and one constraint. */
static double speed(const int64_t *v) {
  double d = 0;
  for (int i = 0; i < KNOBS; i++) d += (double)((v[i] - (7 - i)) * (v[i] - (7 - i)));
  return 100.0 / (1.0 + d);
}

/* The best speed a search of `strategy` finds in TRIALS trials. */
static double best_found(const char *strategy, uint64_t seed) {
  task_knob k[KNOBS];
  char *cons[] = {"K0 + K1 != 3"};
  task_spec t = tu_tens(k, KNOBS, cons, 1);
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  ASSERT(sp.size > 65536); /* beyond the size the model scores whole */
  tuner *tu;
  ASSERT_EQ_INT(tuner_new(strategy, &sp, seed, &tu, NULL, 0), 0);
  static uint64_t seen[TRIALS];
  double best = 0;
  for (int n = 0; n < TRIALS; n++) {
    int64_t v[KNOBS];
    uint64_t index;
    ASSERT_EQ_INT(tu_next(tu, v, &index, UINT32_MAX), 0);
    int ok = 0;
    ASSERT_EQ_INT(space_valid(&sp, v, &ok, NULL, 0), 0);
    ASSERT(ok);
    for (int i = 0; i < n; i++) ASSERT(seen[i] != index);
    seen[n] = index;
    double g = speed(v);
    tuner_trial tr = {.index = index, .values = v, .status = "ok", .gflops = g, .mean_s = 1 / g};
    ASSERT_EQ_INT(tuner_observe(tu, &tr), 0);
    if (g > best) best = g;
  }
  tuner_free(tu);
  return best;
}

TEST(model_evolves_over_a_large_space) {
  int wins = 0;
  for (uint64_t seed = 1; seed <= 3; seed++) {
    double m = best_found("model", seed), r = best_found("random", seed);
    printf("# seed %llu: best after %d trials: model %.1f, random %.1f (peak 100)\n",
           (unsigned long long)seed, TRIALS, m, r);
    ASSERT(m >= 90);
    wins += m > r;
  }
  ASSERT_EQ_INT(wins, 3);
}

TEST_LIST(TEST_ENTRY(model_evolves_over_a_large_space))
