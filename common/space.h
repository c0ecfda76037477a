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

/* Sets *ok to 1 when the config meets every constraint (non-zero). A
 * constraint that cannot be evaluated for this config (division by zero,
 * overflow) leaves *ok 0 and returns a negative code with the reason. */
int space_valid(const space *sp, const int64_t *values, int *ok, char *err, size_t errlen);

/* Counts the valid configs by enumeration when the space has at most
 * `limit` combinations; -E2BIG when it has more. */
int space_count_valid(const space *sp, uint64_t limit, uint64_t *n);

/* Valid configs that differ from `values` in one knob by one step along
 * that knob's value list (for evolutionary search). Writes up to max
 * indices to out and their number to *n. */
int space_neighbours(const space *sp, const int64_t *values, uint64_t *out, size_t max,
                     size_t *n);

/* A numeric feature vector for the cost model: per knob its value and its
 * position in the knob's list scaled to [0, 1]. out has room for
 * space_nfeatures(sp) numbers. */
size_t space_nfeatures(const space *sp);
int space_features(const space *sp, const int64_t *values, double *out);

/* Canonical JSON object of the knobs ({"A":1,"B":2}, keys sorted, compact)
 * and of the constants. Caller frees. */
char *space_config_json(const space *sp, const int64_t *values);
char *space_consts_json(const task_spec *t);

#endif
