/* grid through the tuner interface alone: propose, observe, restore after
 * a simulated restart. No tracker is linked. */
#include "tests/unit/tuner_util.h"

TEST(grid_restores_after_a_restart) { tu_restart_small("grid", 0); }

/* What the history holds need not be what grid would have proposed
 * first (a session moved to grid, or trials recorded out of order): it
 * proposes exactly the others, still in index order. */
TEST(grid_restores_from_any_set_and_keeps_index_order) {
  task_spec t = small_spec();
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  tuner_trial had[60];
  int64_t v[60][3];
  size_t n = 0, k = 0;
  for (uint64_t i = 0; i < sp.size; i++) {
    if (!valid_index(&sp, i) || k++ % 3 != 1) continue;
    ASSERT_EQ_INT(space_config(&sp, i, v[n]), 0);
    had[n] = (tuner_trial){.index = i, .values = v[n], .status = "WRONG_ANSWER"};
    n++;
  }
  tuner *tu;
  ASSERT_EQ_INT(tuner_new("grid", &sp, 0, &tu, NULL, 0), 0);
  ASSERT_EQ_INT(tuner_restore(tu, had, n), 0);
  int64_t w[3];
  uint64_t idx;
  k = 0;
  for (uint64_t i = 0; i < sp.size; i++) {
    if (!valid_index(&sp, i) || k++ % 3 == 1) continue;
    ASSERT_EQ_INT(tuner_next(tu, w, &idx), 0);
    ASSERT_EQ_U64(idx, i);
  }
  ASSERT_EQ_INT(tuner_next(tu, w, &idx), 1);
  tuner_free(tu);
}

/* One valid config in 10^9, already had: grid says there are no more
 * (the walk prunes the rest), and otherwise proposes just that one. */
TEST(grid_restored_in_a_sparse_billion_ends) {
  char *c[] = {"K0 == 3", "K1 == 7 && K2 == 1", "(K3 + K4 == 9 && K3 == 4) && K5 == 0",
               "K6 * 10 + K7 == 58", "K8 == K0 + 1"};
  task_knob k[9];
  task_spec t = tu_tens(k, 9, c, sizeof c / sizeof c[0]);
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  tu_restart("grid", &sp, 0, 1, 2048, 1);
  tu_restart("grid", &sp, 0, 0, 2048, 1);
}

TEST_LIST(TEST_ENTRY(grid_restores_after_a_restart),
          TEST_ENTRY(grid_restores_from_any_set_and_keeps_index_order),
          TEST_ENTRY(grid_restored_in_a_sparse_billion_ends))
