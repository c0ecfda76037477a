/* grid: the space's pruned walk (space_walk_next), valid configs in index
 * order with whole blocks of invalid ones skipped at once. After a
 * restart it walks from the start again and passes over the configs the
 * session already has: the walk costs what it did, and nothing is
 * proposed twice whatever order the restored ones came in. */
#include <errno.h>
#include <stdlib.h>

#include "tuner/seen.h"

typedef struct {
  space_walk *walk;
  seen_set restored;  /* proposed before a restart */
} grid;

static void grid_free(void *state) {
  grid *g = state;
  space_walk_free(g->walk);
  seen_free(&g->restored);
  free(g);
}

static int grid_new(const space *sp, uint64_t seed, void **state) {
  (void)seed;
  grid *g = calloc(1, sizeof *g);
  if (!g) return -ENOMEM;
  if (space_walk_new(sp, &g->walk, NULL, 0) < 0) {
    grid_free(g);
    return -ENOMEM;
  }
  *state = g;
  return 0;
}

static int grid_step(void *state, uint64_t *index, uint32_t budget) {
  grid *g = state;
  uint64_t left = budget;
  for (;;) {
    uint64_t used = 0;
    int rc = space_walk_next(g->walk, left, index, &used);
    if (rc != 0 || !seen_has(&g->restored, *index)) return rc;
    if (used >= left) return TUNER_AGAIN;
    left -= used;
  }
}

static int grid_restore(void *state, const tuner_trial *trials, size_t n) {
  grid *g = state;
  return seen_add_trials(&g->restored, trials, n);
}

static const char *grid_note(const void *state) {
  const grid *g = state;
  return space_walk_note(g->walk);
}

const tuner_strategy tuner_grid = {
    .new = grid_new,
    .step = grid_step,
    .restore = grid_restore,
    .note = grid_note,
    .free = grid_free,
};
