/* Config spaces: every combination of a task's knob values, indexed in
 * mixed radix (last knob fastest), filtered by the spec's constraints. */
#ifndef KTUNE_SPACE_H
#define KTUNE_SPACE_H

#include <stdint.h>

#include "common/task.h"

typedef struct {
  const task_spec *task;
  uint64_t size;      /* all combinations, valid or not; saturates at UINT64_MAX */
} space;

int space_init(space *sp, const task_spec *t, char *err, size_t errlen);

/* Index -> knob values (task->nknobs of them) and back. space_config gives
 * -ERANGE for an index >= size; space_index gives -ENOENT when a value is
 * not among its knob's values. */
int space_config(const space *sp, uint64_t index, int64_t *values);
int space_index(const space *sp, const int64_t *values, uint64_t *index);

/* Sets *ok to 1 when the config meets every constraint (non-zero); when
 * it does not, err names the first constraint that fails. A constraint
 * that cannot be evaluated for this config (division by zero, overflow)
 * leaves *ok 0 and returns a negative code with the reason. */
int space_valid(const space *sp, const int64_t *values, int *ok, char *err, size_t errlen);

/* A walk over the valid configs of a space in index order that skips
 * whole blocks of invalid ones: each constraint is split at its top-level
 * && into parts, and a part that fails (0, or an error) for a config
 * fails for every config that shares the knobs it reads, so the walk
 * jumps to the next value of the fastest-varying knob among them. Its
 * cost follows the number of valid configs and of such blocks, not the
 * size of the space. */
typedef struct space_walk space_walk;

/* Only out of memory is an error: a constraint that does not compile
 * makes every config invalid, as space_valid would, and is the note. */
int space_walk_new(const space *sp, space_walk **out, char *err, size_t errlen);

/* The next valid config: returns 0 with its *index (the walk moves past
 * it), 1 when there are no more, or SPACE_AGAIN when `budget` units of
 * work ran out first (call again to go on). A unit is one run of a part,
 * and at least one per config looked at; a config is looked at whole, so
 * *used (may be NULL) can exceed budget by one config's parts. */
#define SPACE_AGAIN 2
int space_walk_next(space_walk *w, uint64_t budget, uint64_t *index, uint64_t *used);

/* Whether the config at index meets every constraint, with the compiled
 * constraints; *used as above. Does not move the walk. */
int space_walk_check(space_walk *w, uint64_t index, int *ok, uint64_t *used);

/* The first constraint error met on the way (walk or check), counted only
 * where C's && would reach it: "constraints[1] 'M % TI == 0': at 3: modulo
 * by zero (TI=0)". NULL when none. */
const char *space_walk_note(const space_walk *w);

void space_walk_free(space_walk *w);

/* Counts the valid configs with a walk of at most `limit` units of work
 * (see space_walk_next); -E2BIG when that is not enough. */
int space_count_valid(const space *sp, uint64_t limit, uint64_t *n);

/* Canonical JSON object of the knobs ({"A":1,"B":2}, keys sorted, compact)
 * and of the constants. Caller frees. */
char *space_config_json(const space *sp, const int64_t *values);
char *space_consts_json(const task_spec *t);

#endif
