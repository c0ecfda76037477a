#include "tuner/features.h"
#include "tests/unit/tuner_util.h"

TEST(unknown_strategy) {
  task_spec t = small_spec();
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  tuner *tu = (tuner *)1;
  char err[256] = "";
  ASSERT(tuner_new("annealing", &sp, 1, &tu, err, sizeof err) < 0);
  ASSERT_NULL(tu);
  ASSERT_CONTAINS(err, "unknown strategy 'annealing'");
  ASSERT_CONTAINS(err, "random");
  ASSERT_CONTAINS(err, "grid");
  for (size_t i = 0; tuner_strategy_name(i); i++) ASSERT_CONTAINS(err, tuner_strategy_name(i));
  ASSERT(tuner_new(NULL, &sp, 1, &tu, err, sizeof err) < 0);
}

TEST(random_covers_each_valid_config_once) {
  task_spec t = small_spec();
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  int nvalid = 0;
  for (uint64_t i = 0; i < sp.size; i++) nvalid += valid_index(&sp, i);
  ASSERT(nvalid > 5 && (uint64_t)nvalid < sp.size);

  tuner *tu;
  char err[256];
  ASSERT_EQ_INT(tuner_new("random", &sp, 42, &tu, err, sizeof err), 0);
  int seen[60] = {0};
  int64_t v[3];
  uint64_t idx;
  int got = 0, in_order = 1;
  uint64_t prev = 0;
  while (tuner_next(tu, v, &idx) == 0) {
    ASSERT_LT_INT(idx, sp.size);
    ASSERT_EQ_INT(seen[idx], 0); /* never repeats */
    seen[idx] = 1;
    ASSERT(valid_index(&sp, idx));
    int64_t w[3];
    ASSERT_EQ_INT(space_config(&sp, idx, w), 0);
    ASSERT(memcmp(v, w, sizeof v) == 0);
    if (got && idx < prev) in_order = 0;
    prev = idx;
    got++;
    ASSERT(got <= nvalid);
  }
  ASSERT_EQ_INT(got, nvalid);
  ASSERT(!in_order); /* it is a shuffle, not a grid */
  ASSERT_EQ_INT(tuner_next(tu, v, &idx), 1); /* and stays exhausted */
  tuner_free(tu);
}

static void sequence(const char *strategy, const space *sp, uint64_t seed, uint64_t *out, int n) {
  tuner *tu;
  char err[256];
  ASSERT_EQ_INT(tuner_new(strategy, sp, seed, &tu, err, sizeof err), 0);
  int64_t v[8];
  for (int i = 0; i < n; i++) ASSERT_EQ_INT(tuner_next(tu, v, &out[i]), 0);
  tuner_free(tu);
}

TEST(random_same_seed_same_sequence) {
  task_spec t = small_spec();
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  uint64_t a[10], b[10], c[10];
  sequence("random", &sp, 7, a, 10);
  sequence("random", &sp, 7, b, 10);
  sequence("random", &sp, 8, c, 10);
  ASSERT(memcmp(a, b, sizeof a) == 0);
  ASSERT(memcmp(a, c, sizeof a) != 0);
}

TEST(random_first_pick_is_uniform) {
  task_spec t = small_spec();
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  int count[60] = {0}, nvalid = 0;
  const int trials = 20000;
  for (int s = 0; s < trials; s++) {
    uint64_t idx;
    sequence("random", &sp, (uint64_t)s, &idx, 1);
    count[idx]++;
  }
  for (uint64_t i = 0; i < sp.size; i++) nvalid += valid_index(&sp, i);
  double expect = (double)trials / nvalid;
  for (uint64_t i = 0; i < sp.size; i++) {
    if (!valid_index(&sp, i)) {
      ASSERT_EQ_INT(count[i], 0);
      continue;
    }
    /* far beyond 5 sigma would be a bias, not bad luck */
    ASSERT(count[i] > expect * 0.7 && count[i] < expect * 1.3);
  }
}

TEST(grid_in_index_order) {
  task_spec t = small_spec();
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  tuner *tu;
  char err[256];
  ASSERT_EQ_INT(tuner_new("grid", &sp, 0, &tu, err, sizeof err), 0);
  int64_t v[3];
  uint64_t idx;
  for (uint64_t i = 0; i < sp.size; i++) {
    if (!valid_index(&sp, i)) continue;
    ASSERT_EQ_INT(tuner_next(tu, v, &idx), 0);
    ASSERT_EQ_U64(idx, i);
    int64_t w[3];
    ASSERT_EQ_INT(space_config(&sp, i, w), 0);
    ASSERT(memcmp(v, w, sizeof v) == 0);
  }
  ASSERT_EQ_INT(tuner_next(tu, v, &idx), 1);
  ASSERT_EQ_INT(tuner_next(tu, v, &idx), 1);
  tuner_free(tu);
}

TEST(step_gives_way_and_finds_the_same_configs) {
  task_spec t = small_spec();
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  tuner *a, *b;
  ASSERT_EQ_INT(tuner_new("grid", &sp, 0, &a, NULL, 0), 0);
  ASSERT_EQ_INT(tuner_new("grid", &sp, 0, &b, NULL, 0), 0);
  int64_t v[3];
  uint64_t ia, ib;
  int agains = 0;
  for (;;) {
    int ra = tuner_next(a, v, &ia);
    /* one config looked at per step: it says AGAIN over invalid ones */
    int rb;
    for (int guard = 0; (rb = tuner_step(b, v, &ib, 1)) == TUNER_AGAIN; guard++) {
      agains++;
      ASSERT_LT_INT(guard, (long long)sp.size + 1);
    }
    ASSERT_EQ_INT(rb, ra);
    if (ra != 0) break;
    ASSERT_EQ_U64(ib, ia);
  }
  /* small_spec has invalid configs, so giving way happened */
  ASSERT_GE_INT(agains, 1);
  tuner_free(a);
  tuner_free(b);
}

TEST(no_knobs_and_no_valid_configs) {
  task_spec t = {0};
  t.name = "none";
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  const char *strategies[] = {"random", "grid"};
  for (int s = 0; s < 2; s++) {
    tuner *tu;
    uint64_t idx = 5;
    ASSERT_EQ_INT(tuner_new(strategies[s], &sp, 1, &tu, NULL, 0), 0);
    ASSERT_EQ_INT(tuner_next(tu, NULL, &idx), 0); /* the one empty config */
    ASSERT_EQ_U64(idx, 0);
    ASSERT_EQ_INT(tuner_next(tu, NULL, &idx), 1);
    tuner_free(tu);
  }
  /* every config ruled out, one by a constraint that cannot be evaluated */
  task_spec u = small_spec();
  char *never[] = {"A > 100 || M / (A - A) > 0"};
  u.constraints = never;
  u.nconstraints = 1;
  ASSERT_EQ_INT(space_init(&sp, &u, NULL, 0), 0);
  for (int s = 0; s < 2; s++) {
    tuner *tu;
    int64_t v[3];
    uint64_t idx;
    ASSERT_EQ_INT(tuner_new(strategies[s], &sp, 1, &tu, NULL, 0), 0);
    ASSERT_EQ_INT(tuner_next(tu, v, &idx), 1);
    tuner_free(tu);
  }
}

/* 2^21 combinations. */
static int64_t big[128];
static task_knob big_knobs[] = {{"X", big, 128}, {"Y", big, 128}, {"Z", big, 128}};

static task_spec big_spec(char **c, size_t nc) {
  for (int i = 0; i < 128; i++) big[i] = i;
  task_spec t = {0};
  t.name = "big";
  t.knobs = big_knobs;
  t.nknobs = 3;
  t.constraints = c;
  t.nconstraints = nc;
  return t;
}

TEST(large_space_samples_without_repeats) {
  char *c[] = {"(X + Y + Z) % 4 == 0"};
  task_spec t = big_spec(c, 1);
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  ASSERT_EQ_U64(sp.size, (uint64_t)1 << 21);
  tuner *tu;
  char err[256];
  ASSERT_EQ_INT(tuner_new("random", &sp, 3, &tu, err, sizeof err), 0);
  enum { N = 20000 };
  static uint64_t got[N];
  char *seen = calloc(sp.size, 1);
  ASSERT_NOT_NULL(seen);
  for (int i = 0; i < N; i++) {
    int64_t v[3];
    ASSERT_EQ_INT(tuner_next(tu, v, &got[i]), 0);
    ASSERT_EQ_INT(seen[got[i]], 0);
    seen[got[i]] = 1;
    ASSERT_EQ_INT((v[0] + v[1] + v[2]) % 4, 0);
  }
  tuner_free(tu);
  free(seen);
  /* same seed, same sequence */
  uint64_t again[100];
  sequence("random", &sp, 3, again, 100);
  ASSERT(memcmp(again, got, sizeof again) == 0);
}

/* No valid config among 2^21: both strategies say so, and since the
 * constraint rules out every X at once, they need not look at each. */
TEST(large_space_without_valid_configs_ends) {
  char *c[] = {"X < 0"};
  task_spec t = big_spec(c, 1);
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  const char *strategies[] = {"random", "grid"};
  for (int s = 0; s < 2; s++) {
    tuner *tu;
    ASSERT_EQ_INT(tuner_new(strategies[s], &sp, 1, &tu, NULL, 0), 0);
    int64_t v[3];
    uint64_t idx;
    uint64_t steps = 0;
    int rc;
    while ((rc = tuner_step(tu, v, &idx, 4096)) == TUNER_AGAIN) steps++;
    ASSERT_EQ_INT(rc, 1);
    ASSERT_LT_INT(steps, 8);
    tuner_free(tu);
  }
}

/* A constraint that no part of can be decided before the last knob: it
 * prunes nothing, and both strategies look at every config before they
 * say there are no more. The only valid config is the last index. */
TEST(unprunable_space_ends_only_after_everything) {
  char *c[] = {"X * 256 + Y * 16 + Z == 4095"};
  task_spec t = big_spec(c, 1);
  for (int i = 0; i < 3; i++) t.knobs[i].nvalues = 16; /* 4096 configs */
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  const char *strategies[] = {"grid", "random"};
  for (int s = 0; s < 2; s++) {
    tuner *tu;
    ASSERT_EQ_INT(tuner_new(strategies[s], &sp, 5, &tu, NULL, 0), 0);
    int64_t v[3];
    uint64_t idx, agains = 0;
    int rc;
    while ((rc = tuner_step(tu, v, &idx, 1)) == TUNER_AGAIN) agains++;
    ASSERT_EQ_INT(rc, 0);
    ASSERT_EQ_U64(idx, sp.size - 1);
    /* one config per call: grid looked at every one before it */
    if (s == 0) ASSERT_EQ_U64(agains, sp.size - 1);
    ASSERT_EQ_INT(tuner_next(tu, v, &idx), 1);
    tuner_free(tu);
  }
  for (int i = 0; i < 3; i++) t.knobs[i].nvalues = 128;
}

/* Nine knobs of ten values: 10^9 configs, one of them valid. */
static task_knob nine[9];
static char *sparse_cons[] = {"K0 == 3", "K1 == 7 && K2 == 1",
                              "(K3 + K4 == 9 && K3 == 4) && K5 == 0", "K6 * 10 + K7 == 58",
                              "K8 == K0 + 1"};

static task_spec billion_spec(char **c, size_t nc) { return tu_tens(nine, 9, c, nc); }

TEST(grid_and_random_find_the_one_valid_config_in_a_billion) {
  task_spec t = billion_spec(sparse_cons, 5);
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  ASSERT_EQ_U64(sp.size, 1000000000);
  const char *strategies[] = {"grid", "random"};
  int64_t want[] = {3, 7, 1, 4, 5, 0, 5, 8, 4};
  for (int s = 0; s < 2; s++) {
    tuner *tu;
    ASSERT_EQ_INT(tuner_new(strategies[s], &sp, 11, &tu, NULL, 0), 0);
    int64_t v[9];
    uint64_t idx, calls = 0;
    int rc;
    while ((rc = tuner_step(tu, v, &idx, 2048)) == TUNER_AGAIN) calls++;
    ASSERT_EQ_INT(rc, 0);
    ASSERT(memcmp(v, want, sizeof want) == 0);
    ASSERT_LT_INT(calls, 16); /* a few event-loop turns, not 10^9 / 2048 */
    while ((rc = tuner_step(tu, v, &idx, 2048)) == TUNER_AGAIN) calls++;
    ASSERT_EQ_INT(rc, 1);
    ASSERT_LT_INT(calls, 32);
    ASSERT_NULL(tuner_note(tu));
    tuner_free(tu);
  }
}

/* random in a sparse space where most configs come from the pruned
 * walk: the same seed gives the same proposals whatever the budget per
 * call, each valid config once, then no more. */
TEST(random_is_deterministic_whatever_the_budget) {
  char *c[] = {"K0 % 3 == 0", "K1 + K2 == 9", "K3 == K1", "K4 <= 1", "K5 == 0 || K5 == 9",
               "K6 == K7"};
  task_spec t = billion_spec(c, 6);
  t.nknobs = 8; /* 10^8 configs, 1600 valid */
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  uint64_t n = 0;
  ASSERT_EQ_INT(space_count_valid(&sp, 1u << 20, &n), 0);
  ASSERT_EQ_U64(n, 1600);
  static uint64_t first[1600];
  uint32_t budgets[] = {UINT32_MAX, 1, 7, 2048};
  for (int b = 0; b < 4; b++) {
    tuner *tu;
    ASSERT_EQ_INT(tuner_new("random", &sp, 3, &tu, NULL, 0), 0);
    int64_t v[8];
    uint64_t idx, got = 0;
    int rc;
    for (;;) {
      while ((rc = tuner_step(tu, v, &idx, budgets[b])) == TUNER_AGAIN) {
      }
      if (rc != 0) break;
      ASSERT_LT_INT(got, 1600);
      if (b == 0) {
        for (uint64_t i = 0; i < got; i++) ASSERT(first[i] != idx);
        first[got] = idx;
      }
      ASSERT_EQ_U64(idx, first[got]);
      got++;
    }
    ASSERT_EQ_INT(rc, 1);
    ASSERT_EQ_U64(got, 1600);
    tuner_free(tu);
  }
}

/* A constraint that divides by zero: the search goes on without those
 * configs, and the tuner names the constraint, where and why. */
TEST(division_by_zero_is_noted) {
  int64_t ti[] = {0, 4, 5}, kk[] = {1, 2};
  task_knob k[] = {{"K", kk, 2}, {"TI", ti, 3}};
  task_param m[] = {{"M", 12}};
  char *c[] = {"K > 0", "M % TI == 0"};
  task_spec t = {.name = "z", .knobs = k, .nknobs = 2, .consts = m, .nconsts = 1,
                 .constraints = c, .nconstraints = 2};
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  const char *strategies[] = {"grid", "random"};
  for (int s = 0; s < 2; s++) {
    tuner *tu;
    ASSERT_EQ_INT(tuner_new(strategies[s], &sp, 2, &tu, NULL, 0), 0);
    int64_t v[2];
    uint64_t idx;
    int got = 0;
    while (tuner_next(tu, v, &idx) == 0) {
      ASSERT_EQ_INT(v[1], 4);
      got++;
    }
    ASSERT_EQ_INT(got, 2);
    ASSERT_EQ_STR(tuner_note(tu), "constraints[1] 'M % TI == 0': at 3: modulo by zero (TI=0)");
    tuner_free(tu);
  }
}

/* One valid config in 2^21, at a place the seed does not know: random
 * finds it, whatever the seed. */
TEST(random_finds_the_only_valid_config) {
  char *c[] = {"X == 77 && Y == 3 && Z == 120"};
  task_spec t = big_spec(c, 1);
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  for (uint64_t seed = 1; seed <= 3; seed++) {
    tuner *tu;
    ASSERT_EQ_INT(tuner_new("random", &sp, seed, &tu, NULL, 0), 0);
    int64_t v[3];
    uint64_t idx;
    ASSERT_EQ_INT(tuner_next(tu, v, &idx), 0);
    ASSERT_EQ_INT(v[0], 77);
    ASSERT_EQ_INT(v[1], 3);
    ASSERT_EQ_INT(v[2], 120);
    ASSERT_EQ_INT(tuner_next(tu, v, &idx), 1);
    tuner_free(tu);
  }
}

TEST(huge_space_is_never_listed) {
  /* 128^9 = 2^63 combinations: tuner_new must return at once */
  task_knob k[9];
  const char *names[] = {"K0", "K1", "K2", "K3", "K4", "K5", "K6", "K7", "K8"};
  for (int i = 0; i < 128; i++) big[i] = i;
  for (int i = 0; i < 9; i++) k[i] = (task_knob){(char *)names[i], big, 128};
  task_spec t = {0};
  t.name = "huge";
  t.knobs = k;
  t.nknobs = 9;
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  const char *strategies[] = {"random", "grid"};
  for (int s = 0; s < 2; s++) {
    tuner *tu;
    ASSERT_EQ_INT(tuner_new(strategies[s], &sp, 9, &tu, NULL, 0), 0);
    int64_t v[9];
    uint64_t idx, prev = 0;
    for (int i = 0; i < 1000; i++) {
      ASSERT_EQ_INT(tuner_next(tu, v, &idx), 0);
      if (s == 1) ASSERT_EQ_U64(idx, (uint64_t)i);
      if (s == 0 && i) ASSERT(idx != prev);
      prev = idx;
    }
    tuner_free(tu);
  }
}

/* Every strategy in the table, through the interface alone: a restart
 * after a few trials loses nothing and repeats nothing. */
TEST(every_strategy_restores_after_a_restart) {
  size_t n = 0;
  for (; tuner_strategy_name(n); n++) tu_restart_small(tuner_strategy_name(n), 5);
  ASSERT_GE_INT(n, 2);
}

TEST(restore_comes_first_and_names_configs_of_the_space) {
  task_spec t = small_spec();
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  int64_t v[3];
  uint64_t idx;
  for (size_t s = 0; tuner_strategy_name(s); s++) {
    tuner *tu;
    ASSERT_EQ_INT(tuner_new(tuner_strategy_name(s), &sp, 1, &tu, NULL, 0), 0);
    tuner_trial far = {.index = sp.size, .values = v, .status = "ok"};
    ASSERT_EQ_INT(tuner_restore(tu, &far, 1), -ERANGE);
    ASSERT_EQ_INT(tuner_observe(tu, &far), -EINVAL);
    ASSERT_EQ_INT(tuner_restore(tu, NULL, 0), 0);
    ASSERT_EQ_INT(tuner_next(tu, v, &idx), 0);
    tuner_trial done = {.index = idx, .values = v, .status = "ok", .mean_s = 1e-3, .gflops = 2};
    ASSERT_EQ_INT(tuner_observe(tu, &done), 0);
    /* once it has proposed, its state is its own */
    ASSERT_EQ_INT(tuner_restore(tu, &done, 1), -EINVAL);
    tuner_free(tu);
  }
}

TEST(neighbours_are_one_step_and_valid) {
  task_spec t = small_spec();
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  /* A=2 B=4 C=1: steps A->1,3; B->8,2; C->0,2, kept when valid */
  int64_t v[] = {2, 4, 1};
  int64_t cand[][3] = {{1, 4, 1}, {3, 4, 1}, {2, 8, 1}, {2, 2, 1}, {2, 4, 0}, {2, 4, 2}};
  uint64_t out[16];
  size_t n = 0, want = 0;
  ASSERT_EQ_INT(features_neighbours(&sp, v, out, 16, &n), 0);
  for (size_t i = 0; i < 6; i++) {
    uint64_t idx;
    ASSERT_EQ_INT(space_index(&sp, cand[i], &idx), 0);
    if (!valid_index(&sp, idx)) continue;
    ASSERT_LT_INT(want, n);
    ASSERT_EQ_U64(out[want], idx);
    want++;
  }
  ASSERT_EQ_INT(n, want);
  ASSERT(want > 1 && want < 6);
  ASSERT_EQ_INT(features_neighbours(&sp, v, out, 1, &n), 0); /* bounded by max */
  ASSERT_EQ_INT(n, 1);
  int64_t foreign[] = {5, 4, 1};
  ASSERT_EQ_INT(features_neighbours(&sp, foreign, out, 16, &n), -ENOENT);
}

TEST_LIST(TEST_ENTRY(step_gives_way_and_finds_the_same_configs), TEST_ENTRY(unknown_strategy), TEST_ENTRY(random_covers_each_valid_config_once),
          TEST_ENTRY(random_same_seed_same_sequence), TEST_ENTRY(random_first_pick_is_uniform),
          TEST_ENTRY(grid_in_index_order), TEST_ENTRY(no_knobs_and_no_valid_configs),
          TEST_ENTRY(large_space_samples_without_repeats), TEST_ENTRY(large_space_without_valid_configs_ends),
          TEST_ENTRY(random_finds_the_only_valid_config),
          TEST_ENTRY(unprunable_space_ends_only_after_everything),
          TEST_ENTRY(grid_and_random_find_the_one_valid_config_in_a_billion),
          TEST_ENTRY(random_is_deterministic_whatever_the_budget),
          TEST_ENTRY(division_by_zero_is_noted),
          TEST_ENTRY(huge_space_is_never_listed),
          TEST_ENTRY(every_strategy_restores_after_a_restart),
          TEST_ENTRY(restore_comes_first_and_names_configs_of_the_space),
          TEST_ENTRY(neighbours_are_one_step_and_valid))
