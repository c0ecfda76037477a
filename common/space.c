/* Config spaces. The index is mixed radix with the last knob fastest, so
 * the same spec always numbers its configs the same way and an index is a
 * stable name for a config in the history. */
#include "common/space.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int space_init(space *sp, const task_spec *t, char *err, size_t errlen) {
  if (!sp || !t) {
    if (err && errlen) snprintf(err, errlen, "space: no task");
    return -EINVAL;
  }
  sp->task = t;
  sp->size = 1;
  for (size_t i = 0; i < t->nknobs; i++) {
    if (t->knobs[i].nvalues == 0) {
      if (err && errlen) snprintf(err, errlen, "space: knob '%s' has no values", t->knobs[i].name);
      sp->size = 0;
      return -EINVAL;
    }
    /* saturate: a space this large is sampled, never listed */
    if (__builtin_mul_overflow(sp->size, (uint64_t)t->knobs[i].nvalues, &sp->size))
      sp->size = UINT64_MAX;
  }
  return 0;
}

int space_config(const space *sp, uint64_t index, int64_t *values) {
  const task_spec *t = sp->task;
  if (index >= sp->size) return -ERANGE;
  for (size_t i = t->nknobs; i-- > 0;) {
    uint64_t n = t->knobs[i].nvalues;
    values[i] = t->knobs[i].values[index % n];
    index /= n;
  }
  return 0;
}

int space_index(const space *sp, const int64_t *values, uint64_t *index) {
  const task_spec *t = sp->task;
  uint64_t idx = 0;
  for (size_t i = 0; i < t->nknobs; i++) {
    const task_knob *k = &t->knobs[i];
    size_t pos = 0;
    while (pos < k->nvalues && k->values[pos] != values[i]) pos++;
    if (pos == k->nvalues) return -ENOENT;
    if (__builtin_mul_overflow(idx, (uint64_t)k->nvalues, &idx) ||
        __builtin_add_overflow(idx, (uint64_t)pos, &idx))
      return -ERANGE;
  }
  *index = idx;
  return 0;
}

int space_valid(const space *sp, const int64_t *values, int *ok, char *err, size_t errlen) {
  const task_spec *t = sp->task;
  *ok = 0;
  for (size_t i = 0; i < t->nconstraints; i++) {
    int64_t v;
    char msg[256];
    int rc = task_eval(t, values, t->constraints[i], &v, msg, sizeof msg);
    if (rc < 0) {
      if (err && errlen) snprintf(err, errlen, "constraints[%zu] '%s': %s", i, t->constraints[i], msg);
      return rc;
    }
    if (v == 0) return 0;
  }
  *ok = 1;
  return 0;
}

int space_count_valid(const space *sp, uint64_t limit, uint64_t *n) {
  if (sp->size > limit) return -E2BIG;
  size_t nk = sp->task->nknobs;
  int64_t *v = malloc((nk ? nk : 1) * sizeof(int64_t));
  if (!v) return -ENOMEM;
  uint64_t count = 0;
  for (uint64_t i = 0; i < sp->size; i++) {
    int ok = 0;
    space_config(sp, i, v);
    /* A constraint that cannot be evaluated makes the config invalid. */
    if (space_valid(sp, v, &ok, NULL, 0) == 0 && ok) count++;
  }
  free(v);
  *n = count;
  return 0;
}

/* Position of a value in its knob's list, or -1. */
static long value_pos(const task_knob *k, int64_t v) {
  for (size_t i = 0; i < k->nvalues; i++)
    if (k->values[i] == v) return (long)i;
  return -1;
}

int space_neighbours(const space *sp, const int64_t *values, uint64_t *out, size_t max,
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

size_t space_nfeatures(const space *sp) { return 2 * sp->task->nknobs; }

int space_features(const space *sp, const int64_t *values, double *out) {
  const task_spec *t = sp->task;
  for (size_t k = 0; k < t->nknobs; k++) {
    long pos = value_pos(&t->knobs[k], values[k]);
    if (pos < 0) return -ENOENT;
    out[2 * k] = (double)values[k];
    out[2 * k + 1] = t->knobs[k].nvalues > 1 ? (double)pos / (double)(t->knobs[k].nvalues - 1) : 0;
  }
  return 0;
}

static char *dump_params(size_t n, const char *(*name)(const void *, size_t),
                         int64_t (*value)(const void *, const int64_t *, size_t), const void *src,
                         const int64_t *values) {
  json_t *obj = json_object();
  if (!obj) return NULL;
  for (size_t i = 0; i < n; i++) {
    json_t *v = json_integer(value(src, values, i));
    if (!v || json_object_set_new(obj, name(src, i), v) != 0) {
      json_decref(obj);
      return NULL;
    }
  }
  char *s = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(obj);
  return s;
}

static const char *knob_name(const void *t, size_t i) {
  return ((const task_spec *)t)->knobs[i].name;
}
static int64_t knob_value(const void *t, const int64_t *values, size_t i) {
  (void)t;
  return values[i];
}
static const char *const_name(const void *t, size_t i) {
  return ((const task_spec *)t)->consts[i].name;
}
static int64_t const_value(const void *t, const int64_t *values, size_t i) {
  (void)values;
  return ((const task_spec *)t)->consts[i].value;
}

char *space_config_json(const space *sp, const int64_t *values) {
  if (!sp || !sp->task || (sp->task->nknobs && !values)) return NULL;
  return dump_params(sp->task->nknobs, knob_name, knob_value, sp->task, values);
}

char *space_consts_json(const task_spec *t) {
  if (!t) return NULL;
  return dump_params(t->nconsts, const_name, const_value, t, NULL);
}
