#include "tuner/features.h"

#include <errno.h>
#include <string.h>

/* Position of a value in its knob's list, or -1. */
static long value_pos(const task_knob *k, int64_t v) {
  for (size_t i = 0; i < k->nvalues; i++)
    if (k->values[i] == v) return (long)i;
  return -1;
}

int features_neighbours(const space *sp, const int64_t *values, uint64_t *out, size_t max,
                        size_t *n) {
  const task_spec *t = sp->task;
  *n = 0;
  if (t->nknobs > 64) return -E2BIG;
  int64_t v[64];
  memcpy(v, values, t->nknobs * sizeof(int64_t));
  for (size_t k = 0; k < t->nknobs; k++) {
    long pos = value_pos(&t->knobs[k], values[k]);
    if (pos < 0) return -ENOENT;
    for (int step = -1; step <= 1; step += 2) {
      long np = pos + step;
      if (np < 0 || np >= (long)t->knobs[k].nvalues || *n >= max) continue;
      v[k] = t->knobs[k].values[np];
      int ok = 0;
      uint64_t idx;
      if (space_valid(sp, v, &ok, NULL, 0) == 0 && ok && space_index(sp, v, &idx) == 0)
        out[(*n)++] = idx;
    }
    v[k] = values[k];
  }
  return 0;
}

size_t features_count(const space *sp) { return 2 * sp->task->nknobs; }

int features_of(const space *sp, const int64_t *values, double *out) {
  const task_spec *t = sp->task;
  for (size_t k = 0; k < t->nknobs; k++) {
    long pos = value_pos(&t->knobs[k], values[k]);
    if (pos < 0) return -ENOENT;
    out[2 * k] = (double)values[k];
    out[2 * k + 1] = t->knobs[k].nvalues > 1 ? (double)pos / (double)(t->knobs[k].nvalues - 1) : 0;
  }
  return 0;
}
