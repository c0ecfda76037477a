/* random through the tuner interface alone: propose, observe, restore
 * after a simulated restart. No tracker is linked. */
#include "tests/unit/tuner_util.h"

TEST(random_restores_after_a_restart) {
  for (uint64_t seed = 1; seed <= 3; seed++) tu_restart_small("random", seed);
}

/* 10^8 configs, 1600 valid: most proposals come from the pruned walk's
 * pool, which a restart refills without the configs already had. */
TEST(random_restores_in_a_sparse_space) {
  char *c[] = {"K0 % 3 == 0", "K1 + K2 == 9", "K3 == K1", "K4 <= 1", "K5 == 0 || K5 == 9",
               "K6 == K7"};
  task_knob k[8];
  task_spec t = tu_tens(k, 8, c, sizeof c / sizeof c[0]);
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  uint64_t n = 0;
  ASSERT_EQ_INT(space_count_valid(&sp, 1u << 20, &n), 0);
  ASSERT_EQ_U64(n, 1600);
  tu_restart("random", &sp, 3, 10, 2048, n);
  tu_restart("random", &sp, 3, 800, 7, n);
}

/* A restart does not make random start over: the first proposal after
 * it is none of those before, whatever the seed. */
TEST(random_after_a_restart_proposes_something_new) {
  task_spec t = small_spec();
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  for (uint64_t seed = 0; seed < 50; seed++) {
    tuner *tu;
    int64_t v[3];
    uint64_t first;
    ASSERT_EQ_INT(tuner_new("random", &sp, seed, &tu, NULL, 0), 0);
    ASSERT_EQ_INT(tuner_next(tu, v, &first), 0);
    tuner_free(tu);
    tuner_trial had = {.index = first, .values = v}; /* still running */
    uint64_t idx;
    ASSERT_EQ_INT(tuner_new("random", &sp, seed, &tu, NULL, 0), 0);
    ASSERT_EQ_INT(tuner_restore(tu, &had, 1), 0);
    ASSERT_EQ_INT(tuner_next(tu, v, &idx), 0);
    ASSERT(idx != first);
    tuner_free(tu);
  }
}

TEST_LIST(TEST_ENTRY(random_restores_after_a_restart), TEST_ENTRY(random_restores_in_a_sparse_space),
          TEST_ENTRY(random_after_a_restart_proposes_something_new))
