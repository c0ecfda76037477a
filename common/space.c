/* Config spaces. The index is mixed radix with the last knob fastest, so
 * the same spec always numbers its configs the same way and an index is a
 * stable name for a config in the history. */
#include "common/space.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/expr.h"

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
    if (rc == 0 && v != 0) continue;
    char quoted[160];
    expr_quote(t->constraints[i], quoted, sizeof quoted);
    if (err && errlen)
      snprintf(err, errlen, "constraints[%zu] %s%s%s", i, quoted, rc < 0 ? ": " : " does not hold",
               rc < 0 ? msg : "");
    return rc < 0 ? rc : 0;
  }
  *ok = 1;
  return 0;
}

/* One part of one constraint, and the last knob it reads (-1: none). */
typedef struct {
  size_t con, part;
  int depth;
} walk_part;

struct space_walk {
  space sp;
  size_t nk;
  expr_prog **progs; /* per constraint */
  walk_part *parts;  /* shallowest first; ties in constraint and part order */
  size_t nparts;
  size_t *from;      /* from[d + 1]: the first part with depth >= d */
  uint64_t *stride;  /* configs per step of each knob, saturated */
  size_t *pos;       /* the walk's config: value positions and values */
  int64_t *vals;
  int64_t *probe;    /* space_walk_check's config */
  uint64_t index;
  int changed;       /* slowest knob changed since the parts last ran; -1: all */
  int done, broken;
  char note[1024];
};

static int resolve_name(void *ctx, const char *name, size_t len, int64_t *value, int *slot) {
  const task_spec *t = ctx;
  /* constants first, as task_eval looks them up */
  for (size_t i = 0; i < t->nconsts; i++)
    if (strlen(t->consts[i].name) == len && memcmp(t->consts[i].name, name, len) == 0) {
      *value = t->consts[i].value;
      *slot = -1;
      return 0;
    }
  for (size_t i = 0; i < t->nknobs; i++)
    if (strlen(t->knobs[i].name) == len && memcmp(t->knobs[i].name, name, len) == 0) {
      *slot = (int)i;
      return 0;
    }
  return -1;
}

static int part_order(const void *a, const void *b) {
  const walk_part *x = a, *y = b;
  if (x->depth != y->depth) return x->depth < y->depth ? -1 : 1;
  if (x->con != y->con) return x->con < y->con ? -1 : 1;
  return (x->part > y->part) - (x->part < y->part);
}

/* "constraints[1] 'M % TI == 0': at 3: modulo by zero (TI=0)": the
 * knobs the failing part reads, with their values in this config. */
static void set_note(space_walk *w, size_t con, size_t part, const int64_t *vals, const char *msg) {
  const task_spec *t = w->sp.task;
  char quoted[160];
  expr_quote(t->constraints[con], quoted, sizeof quoted);
  int n = snprintf(w->note, sizeof w->note, "constraints[%zu] %s: %s", con, quoted, msg);
  const expr_prog *g = w->progs[con];
  const char *sep = " (";
  for (size_t k = 0; g && k < w->nk && n > 0 && (size_t)n < sizeof w->note; k++) {
    if (expr_part_slot(g, part, (int)k + 1) != (int)k) continue;
    n += snprintf(w->note + n, sizeof w->note - (size_t)n, "%s%s=%lld", sep, t->knobs[k].name,
                  (long long)vals[k]);
    sep = ", ";
  }
  if (*sep == ',' && n > 0 && (size_t)n < sizeof w->note)
    snprintf(w->note + n, sizeof w->note - (size_t)n, ")");
}

/* A part of `con` failed with an error. C's && reaches it only when every
 * earlier part of the constraint holds: then it is the note. Returns the
 * depth to skip at: while there is no note yet, that of a failing earlier
 * part, so that the configs where the error is reached are still met. */
static int note_error(space_walk *w, const walk_part *wp, const int64_t *vals, const char *msg) {
  const expr_prog *g = w->progs[wp->con];
  for (size_t q = 0; q < wp->part; q++) {
    int64_t v;
    char m[512];
    int rc = expr_run_part(g, q, vals, &v, m, sizeof m);
    if (rc < 0) set_note(w, wp->con, q, vals, m);
    if (rc < 0 || v == 0) return expr_part_slot(g, q, INT_MAX);
  }
  set_note(w, wp->con, wp->part, vals, msg);
  return wp->depth;
}

/* Runs parts[from..] on a config, shallowest first. Returns 1 when every
 * one holds; else 0, with *depth a knob such that every config sharing
 * knobs 0..*depth with this one fails too (-1: every config), and *failed
 * the depth of the part that failed. */
static int holds(space_walk *w, const int64_t *vals, size_t from, int *depth, int *failed,
                 uint64_t *used) {
  for (size_t i = from; i < w->nparts; i++) {
    const walk_part *wp = &w->parts[i];
    int64_t v;
    char msg[512];
    (*used)++;
    int rc = expr_run_part(w->progs[wp->con], wp->part, vals, &v, msg, sizeof msg);
    if (rc == 0 && v != 0) continue;
    *failed = wp->depth;
    *depth = rc < 0 && !w->note[0] ? note_error(w, wp, vals, msg) : wp->depth;
    return 0;
  }
  return 1;
}

/* Moves the walk to `next`, or ends it when next is past the space. */
static void walk_move(space_walk *w, uint64_t next, int past) {
  if (past || next >= w->sp.size) {
    w->done = 1;
    return;
  }
  const task_spec *t = w->sp.task;
  w->changed = -1;
  for (size_t k = 0; k < w->nk; k++) {
    size_t p = (size_t)(next / w->stride[k] % t->knobs[k].nvalues);
    if (p == w->pos[k] && w->changed < 0) continue;
    if (w->changed < 0) w->changed = (int)k;
    w->pos[k] = p;
    w->vals[k] = t->knobs[k].values[p];
  }
  w->index = next;
}

int space_walk_new(const space *sp, space_walk **out, char *err, size_t errlen) {
  const task_spec *t = sp->task;
  size_t nk = t->nknobs, nc = t->nconstraints;
  space_walk *w = calloc(1, sizeof *w);
  *out = NULL;
  if (!w) goto oom;
  w->sp = *sp;
  w->nk = nk;
  w->progs = calloc(nc ? nc : 1, sizeof *w->progs);
  w->from = calloc(nk + 2, sizeof *w->from);
  w->stride = calloc(nk ? nk : 1, sizeof *w->stride);
  w->pos = calloc(nk ? nk : 1, sizeof *w->pos);
  w->vals = calloc(nk ? nk : 1, sizeof *w->vals);
  w->probe = calloc(nk ? nk : 1, sizeof *w->probe);
  if (!w->progs || !w->from || !w->stride || !w->pos || !w->vals || !w->probe) goto oom;
  for (size_t c = 0; c < nc && !w->broken; c++) {
    char msg[512];
    int rc = expr_compile(t->constraints[c], resolve_name, (void *)t, &w->progs[c], msg,
                          sizeof msg);
    if (rc == -ENOMEM) goto oom;
    if (rc < 0) {
      /* no config can meet it; say why once */
      set_note(w, c, 0, w->vals, msg);
      w->broken = w->done = 1;
      w->nparts = 0;
    } else {
      w->nparts += expr_nparts(w->progs[c]);
    }
  }
  if (!w->broken && w->nparts) {
    if (!(w->parts = malloc(w->nparts * sizeof *w->parts))) goto oom;
    size_t n = 0;
    for (size_t c = 0; c < nc; c++)
      for (size_t q = 0; q < expr_nparts(w->progs[c]); q++)
        w->parts[n++] = (walk_part){c, q, expr_part_slot(w->progs[c], q, INT_MAX)};
    qsort(w->parts, n, sizeof *w->parts, part_order);
  }
  for (int d = (int)nk - 1, i = (int)w->nparts; d >= -1; d--) {
    while (i > 0 && w->parts[i - 1].depth >= d) i--;
    w->from[d + 1] = (size_t)i;
  }
  uint64_t stride = 1;
  for (size_t k = nk; k-- > 0;) {
    w->stride[k] = stride;
    if (__builtin_mul_overflow(stride, (uint64_t)t->knobs[k].nvalues, &stride))
      stride = UINT64_MAX;
    w->vals[k] = t->knobs[k].values[0];
  }
  w->changed = -1;
  *out = w;
  return 0;
oom:
  space_walk_free(w);
  if (err && errlen) snprintf(err, errlen, "space: out of memory");
  return -ENOMEM;
}

int space_walk_next(space_walk *w, uint64_t budget, uint64_t *index, uint64_t *used) {
  uint64_t u = 0;
  int rc = 1;
  while (!w->done) {
    if (u >= budget) {
      rc = SPACE_AGAIN;
      break;
    }
    uint64_t before = u;
    int depth = -1, failed = -1;
    int ok = holds(w, w->vals, w->from[w->changed + 1], &depth, &failed, &u);
    if (u == before) u++;
    if (ok) {
      *index = w->index;
      walk_move(w, w->index + 1, 0);
      rc = 0;
      break;
    }
    if (depth < 0) {
      w->done = 1;
      break;
    }
    /* the next value of knob `depth`, its faster knobs back to their first */
    uint64_t next;
    int past = __builtin_mul_overflow(w->index / w->stride[depth] + 1, w->stride[depth], &next);
    walk_move(w, next, past);
    /* skipped on a deeper part than the one that failed: that one must
     * run again, though its knobs did not change */
    if (failed < w->changed) w->changed = failed;
  }
  if (used) *used = u;
  return rc;
}

int space_walk_check(space_walk *w, uint64_t index, int *ok, uint64_t *used) {
  *ok = 0;
  int rc = space_config(&w->sp, index, w->probe);
  if (rc < 0) return rc;
  int depth, failed;
  uint64_t u = 1;
  *ok = !w->broken && holds(w, w->probe, 0, &depth, &failed, &u);
  if (used) *used = u;
  return 0;
}

const char *space_walk_note(const space_walk *w) { return w->note[0] ? w->note : NULL; }

void space_walk_free(space_walk *w) {
  if (!w) return;
  for (size_t c = 0; w->progs && c < w->sp.task->nconstraints; c++) expr_free(w->progs[c]);
  free(w->progs);
  free(w->parts);
  free(w->from);
  free(w->stride);
  free(w->pos);
  free(w->vals);
  free(w->probe);
  free(w);
}

int space_count_valid(const space *sp, uint64_t limit, uint64_t *n) {
  space_walk *w;
  int rc = space_walk_new(sp, &w, NULL, 0);
  if (rc < 0) return rc;
  uint64_t count = 0, idx, used;
  while ((rc = space_walk_next(w, limit, &idx, &used)) == 0) {
    count++;
    limit -= used < limit ? used : limit;
  }
  space_walk_free(w);
  if (rc == SPACE_AGAIN) return -E2BIG;
  *n = count;
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
