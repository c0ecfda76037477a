/* Search strategies: propose configs of a space, never the same one twice
 * in a session. random: valid configs in a shuffled order; grid: valid
 * configs in index order. Both find every valid config, however few, and
 * say there are no more only when every one has been proposed. */
#ifndef KTUNE_TUNER_H
#define KTUNE_TUNER_H

#include <stdint.h>

#include "common/space.h"

typedef struct tuner tuner;

/* Unknown strategy names are an error naming the known ones. */
int tuner_new(const char *strategy, const space *sp, uint64_t seed, tuner **out,
              char *err, size_t errlen);

/* Next config: returns 0 and fills values (sp->task->nknobs) and *index;
 * 1 when every valid config has been proposed; negative on error. */
int tuner_next(tuner *t, int64_t *values, uint64_t *index);

/* The same, but does about `budget` units of work (a unit is one run of a
 * part of a constraint, at least one per config looked at; see
 * space_walk_next): returns TUNER_AGAIN when it has not found one yet, so
 * that a caller on an event loop can go on later instead of stalling. The
 * configs proposed do not depend on the budgets. */
#define TUNER_AGAIN SPACE_AGAIN
int tuner_step(tuner *t, int64_t *values, uint64_t *index, uint32_t budget);

/* The measured result of a proposed config (gflops 0 for a failure); used
 * by model-based strategies, ignored by random and grid. */
void tuner_observe(tuner *t, uint64_t index, double gflops);

/* The first constraint error met while searching, naming the constraint,
 * its expression and the knob values (space_walk_note), or NULL. */
const char *tuner_note(const tuner *t);

void tuner_free(tuner *t);

#endif
