#include "tuner/features.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/expr.h"

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

/* Per knob: value, log2 and position. */
#define PER_KNOB 3

struct features {
  const task_spec *t;
  expr_prog **progs; /* one per spec feature */
  size_t n;
};

size_t features_count(const space *sp) {
  return PER_KNOB * sp->task->nknobs + sp->task->nfeatures;
}

int features_new(const space *sp, features **out, char *err, size_t errlen) {
  const task_spec *t = sp->task;
  features *f = calloc(1, sizeof *f);
  *out = NULL;
  if (!f || (t->nfeatures && !(f->progs = calloc(t->nfeatures, sizeof *f->progs)))) {
    free(f);
    if (err && errlen) snprintf(err, errlen, "features: out of memory");
    return -ENOMEM;
  }
  f->t = t;
  for (; f->n < t->nfeatures; f->n++) {
    char msg[256], quoted[160];
    int rc = task_compile(t, t->features[f->n], &f->progs[f->n], msg, sizeof msg);
    if (rc < 0) {
      expr_quote(t->features[f->n], quoted, sizeof quoted);
      if (err && errlen)
        snprintf(err, errlen, "features[%zu] %s: %s", f->n, quoted,
                 rc == -ENOMEM ? "out of memory" : msg);
      features_free(f);
      return rc;
    }
  }
  *out = f;
  return 0;
}

int features_at(const features *f, const int64_t *values, double *out) {
  const task_spec *t = f->t;
  for (size_t k = 0; k < t->nknobs; k++) {
    const task_knob *kn = &t->knobs[k];
    long pos = value_pos(kn, values[k]);
    if (pos < 0) return -ENOENT;
    out[PER_KNOB * k] = (double)values[k];
    out[PER_KNOB * k + 1] = values[k] > 0 ? log2((double)values[k]) : 0;
    out[PER_KNOB * k + 2] = kn->nvalues > 1 ? (double)pos / (double)(kn->nvalues - 1) : 0;
  }
  double *spec = out + PER_KNOB * t->nknobs;
  for (size_t i = 0; i < f->n; i++) {
    /* A feature is a hint to the model, not a rule: the constraints decide
     * which configs are valid, and a valid config for which a feature
     * cannot be computed (a division by a knob that is 0, an overflow)
     * still needs a full vector to be scored. 0 keeps every number
     * finite, which any learner accepts, and the knob values beside it
     * still tell such configs apart. */
    int64_t v;
    spec[i] = expr_run(f->progs[i], values, &v, NULL, 0) == 0 ? (double)v : 0;
  }
  return 0;
}

void features_free(features *f) {
  if (!f) return;
  for (size_t i = 0; i < f->n; i++) expr_free(f->progs[i]);
  free(f->progs);
  free(f);
}

int features_of(const space *sp, const int64_t *values, double *out) {
  features *f;
  int rc = features_new(sp, &f, NULL, 0);
  if (rc < 0) return rc;
  rc = features_at(f, values, out);
  features_free(f);
  return rc;
}
