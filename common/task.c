/* Task specs. A spec reaches us either as a file the user wrote
 * (task_load.c) or as a message from the network (the wire form, here);
 * both go through the same structural checks (validate) and the same
 * expression checks (check_exprs), so the tracker never trusts a spec more
 * than the CLI does. */
#include "common/task.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/expr.h"
#include "common/task_int.h"

static const char *const arg_types[] = {"float", "double", "int32", "int64"};

/* The work of one call: expressions over the constants only, that must be
 * positive. One row each drives the checks, the wire form and freeing, so
 * bytes go wherever flops go. */
static const struct {
  const char *field;
  size_t spec_off, proto_off;
  int required;
} work_counts[] = {
    {"flops", offsetof(task_spec, flops), offsetof(Ktune__TaskSpec, flops), 1},
    {"bytes", offsetof(task_spec, bytes), offsetof(Ktune__TaskSpec, bytes), 0},
};
#define NWORK (sizeof work_counts / sizeof work_counts[0])
#define WORK(t, i) (*(char **)((char *)(t) + work_counts[i].spec_off))
#define WORK_PROTO(p, i) (*(char **)((char *)(p) + work_counts[i].proto_off))

int task_bad(char *err, size_t errlen, const char *prefix, const char *field,
               const char *fmt, ...) {
  if (!err || !errlen) return -EINVAL;
  int n = field ? snprintf(err, errlen, "%s: %s: ", prefix, field)
                : snprintf(err, errlen, "%s: ", prefix);
  if (n >= 0 && (size_t)n < errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
  }
  return -EINVAL;
}

int task_is_ident(const char *s) {
  if (!s || !*s || strlen(s) > TASK_MAX_IDENT) return 0;
  if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_')) return 0;
  for (const char *c = s + 1; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_' ||
          (*c >= '0' && *c <= '9')))
      return 0;
  return 1;
}

/* Knobs and constants become #defines: a keyword or the name of the entry
 * or reference would break every build of the task. */
static const char *define_clash(const task_spec *t, const char *name) {
  static const char *const keywords[] = {
      "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
      "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
      "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch",
      "typedef", "union", "unsigned", "void", "volatile", "while", "_Alignas", "_Alignof",
      "_Atomic", "_Bool", "_Complex", "_Generic", "_Imaginary", "_Noreturn", "_Static_assert",
      "_Thread_local"};
  for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
    if (strcmp(name, keywords[i]) == 0) return "a C keyword";
  if (t->entry && strcmp(name, t->entry) == 0) return "the entry function's name";
  if (t->reference && strcmp(name, t->reference) == 0) return "the reference function's name";
  return NULL;
}

/* Task names end up in file names, history rows and command lines. */
static int is_task_name(const char *s) {
  if (!s || !*s || strlen(s) > TASK_MAX_TASK_NAME || s[0] == '.' || s[0] == '-') return 0;
  for (const char *c = s; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
          *c == '_' || *c == '-' || *c == '.'))
      return 0;
  return 1;
}

int task_known_type(const char *s) {
  for (size_t i = 0; i < sizeof arg_types / sizeof arg_types[0]; i++)
    if (s && strcmp(s, arg_types[i]) == 0) return 1;
  return 0;
}

/* ---- expression lookups ---- */

typedef struct {
  const task_spec *t;
  const int64_t *knob_values; /* NULL: constants only */
  int all_knobs;              /* knobs are known names, value unknown (checks) */
} scope;

static int same_name(const char *a, const char *name, size_t len) {
  return strlen(a) == len && memcmp(a, name, len) == 0;
}

static const task_param *find_const(const task_spec *t, const char *name, size_t len) {
  for (size_t i = 0; i < t->nconsts; i++)
    if (same_name(t->consts[i].name, name, len)) return &t->consts[i];
  return NULL;
}

/* The knob's position in spec order, or -1. */
static long find_knob(const task_spec *t, const char *name, size_t len) {
  for (size_t i = 0; i < t->nknobs; i++)
    if (same_name(t->knobs[i].name, name, len)) return (long)i;
  return -1;
}

/* Constants first: a knob may not share a constant's name anyway. */
static int scope_lookup(void *ctx, const char *name, size_t len, int64_t *out) {
  const scope *s = ctx;
  const task_param *c = find_const(s->t, name, len);
  if (c) {
    *out = c->value;
    return 0;
  }
  if (!s->knob_values && !s->all_knobs) return -1;
  long k = find_knob(s->t, name, len);
  if (k < 0) return -1;
  *out = s->knob_values ? s->knob_values[k] : 0;
  return 0;
}

/* The same names for expr_compile: knob i is variable i. */
static int task_resolve(void *ctx, const char *name, size_t len, int64_t *value, int *slot) {
  const task_spec *t = ctx;
  const task_param *c = find_const(t, name, len);
  if (c) {
    *value = c->value;
    *slot = -1;
    return 0;
  }
  long k = find_knob(t, name, len);
  if (k < 0) return -1;
  *slot = (int)k;
  return 0;
}

/* "M=512, N=512" for messages about values that depend on the constants. */
static void consts_text(const task_spec *t, char *buf, size_t len) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < t->nconsts && used < len; i++) {
    int n = snprintf(buf + used, len - used, "%s%s=%lld", i ? ", " : "", t->consts[i].name,
                     (long long)t->consts[i].value);
    if (n < 0) break;
    used += (size_t)n;
  }
  if (t->nconsts == 0) snprintf(buf, len, "no constants");
}

static void names_text(const task_spec *t, int knobs, char *buf, size_t len) {
  size_t used = 0, n = knobs ? t->nknobs : t->nconsts;
  buf[0] = '\0';
  for (size_t i = 0; i < n && used < len; i++) {
    int w = snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
                     knobs ? t->knobs[i].name : t->consts[i].name);
    if (w < 0) break;
    used += (size_t)w;
  }
  if (n == 0) snprintf(buf, len, "none");
}

/* Remembers the first name a constants-only lookup could not resolve, to
 * tell "names a knob" apart from a typo. */
typedef struct {
  scope s;
  const char *missing;
  size_t missing_len;
} recording_scope;

static int recording_lookup(void *ctx, const char *name, size_t len, int64_t *out) {
  recording_scope *r = ctx;
  if (scope_lookup(&r->s, name, len, out) == 0) return 0;
  if (!r->missing) {
    r->missing = name;
    r->missing_len = len;
  }
  return -1;
}

/* An expression over the constants only, that must be positive. */
static int check_positive(const task_spec *t, const char *prefix, const char *field,
                          const char *src, char *err, size_t errlen) {
  char msg[256], ctext[256], quoted[160];
  expr_quote(src, quoted, sizeof quoted);
  recording_scope r = {.s = {.t = t}};
  int64_t v;
  if (expr_eval(src, recording_lookup, &r, &v, msg, sizeof msg) == 0) {
    if (v > 0) return 0;
    consts_text(t, ctext, sizeof ctext);
    return task_bad(err, errlen, prefix, field, "%s must be positive, is %lld (with %s)", quoted,
               (long long)v, ctext);
  }
  long k = r.missing ? find_knob(t, r.missing, r.missing_len) : -1;
  if (k >= 0)
    return task_bad(err, errlen, prefix, field,
               "%s names the knob '%s'; it may use only the constants", quoted,
               t->knobs[k].name);
  names_text(t, 0, ctext, sizeof ctext);
  return task_bad(err, errlen, prefix, field, "%s: %s (constants: %s)", quoted, msg, ctext);
}

/* Expressions over knobs and constants (constraints, features): each
 * parses and names only those; arithmetic depends on the config, so it is
 * not checked here. */
static int check_over_knobs(const task_spec *t, const char *prefix, const char *what,
                            char *const *list, size_t n, char *err, size_t errlen) {
  scope all = {.t = t, .all_knobs = 1};
  for (size_t i = 0; i < n; i++) {
    char msg[256], names[256], knames[256], quoted[160], field[64];
    if (expr_check(list[i], scope_lookup, &all, msg, sizeof msg) == 0) continue;
    expr_quote(list[i], quoted, sizeof quoted);
    snprintf(field, sizeof field, "%s[%zu]", what, i);
    names_text(t, 0, names, sizeof names);
    names_text(t, 1, knames, sizeof knames);
    return task_bad(err, errlen, prefix, field, "%s: %s (constants: %s; knobs: %s)", quoted, msg,
               names, knames);
  }
  return 0;
}

static int check_exprs(const task_spec *t, const char *prefix, char *err, size_t errlen) {
  char field[64];
  for (size_t i = 0; i < t->nargs; i++) {
    snprintf(field, sizeof field, "args[%zu].count", i);
    int rc = check_positive(t, prefix, field, t->args[i].count, err, errlen);
    if (rc < 0) return rc;
  }
  int rc = 0;
  for (size_t i = 0; i < NWORK && rc == 0; i++)
    if (WORK(t, i)) rc = check_positive(t, prefix, work_counts[i].field, WORK(t, i), err, errlen);
  if (rc < 0) return rc;
  if ((rc = check_over_knobs(t, prefix, "constraints", t->constraints, t->nconstraints, err,
                             errlen)) < 0)
    return rc;
  return check_over_knobs(t, prefix, "features", t->features, t->nfeatures, err, errlen);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* 1 and *dup when some value repeats; sorts a copy to stay O(n log n). */
static int find_duplicate(const int64_t *v, size_t n, int64_t *dup) {
  if (n < 2) return 0;
  int64_t *c = malloc(n * sizeof *c);
  if (!c) return -ENOMEM;
  memcpy(c, v, n * sizeof *c);
  qsort(c, n, sizeof *c, cmp_i64);
  int found = 0;
  for (size_t i = 1; i < n && !found; i++)
    if (c[i] == c[i - 1]) {
      *dup = c[i];
      found = 1;
    }
  free(c);
  return found;
}

/* A list of expressions over knobs and constants: how many, and each
 * present, non-empty and not too long. */
static int expr_list_ok(const char *prefix, const char *what, char *const *list, size_t n,
                        size_t max, char *err, size_t errlen) {
  if (n > max) return task_bad(err, errlen, prefix, what, "at most %zu allowed", max);
  for (size_t i = 0; i < n; i++) {
    char field[64];
    snprintf(field, sizeof field, "%s[%zu]", what, i);
    if (!list[i] || !*list[i] || strlen(list[i]) > TASK_MAX_EXPR)
      return task_bad(err, errlen, prefix, field,
                 "expected an expression over knobs and constants of at most %d bytes",
                 TASK_MAX_EXPR);
  }
  return 0;
}

/* Structure that does not depend on evaluating anything: names, types,
 * duplicates, sizes. */
static int validate(const task_spec *t, const char *prefix, char *err, size_t errlen) {
  char field[96];
  if (!is_task_name(t->name))
    return task_bad(err, errlen, prefix, "name",
               "expected a non-empty name of letters, digits, '_', '-' and '.' (at most %d)",
               TASK_MAX_TASK_NAME);
  if (!t->source || !*t->source) return task_bad(err, errlen, prefix, "source", "template is empty");
  if (!task_is_ident(t->entry))
    return task_bad(err, errlen, prefix, "entry", "expected the C function name of the kernel");
  if (t->reference && !task_is_ident(t->reference))
    return task_bad(err, errlen, prefix, "reference", "expected the C function name of the reference");
  if (t->reference && strcmp(t->reference, t->entry) == 0)
    return task_bad(err, errlen, prefix, "reference", "must differ from entry ('%s')", t->entry);
  if (t->nconsts > TASK_MAX_CONSTS)
    return task_bad(err, errlen, prefix, "constants", "at most %d allowed", TASK_MAX_CONSTS);
  if (t->nknobs > TASK_MAX_KNOBS)
    return task_bad(err, errlen, prefix, "knobs", "at most %d allowed", TASK_MAX_KNOBS);
  if (t->nargs == 0)
    return task_bad(err, errlen, prefix, "args", "expected at least one buffer argument");
  if (t->nargs > TASK_MAX_ARGS)
    return task_bad(err, errlen, prefix, "args", "at most %d allowed", TASK_MAX_ARGS);
  int rc;
  if ((rc = expr_list_ok(prefix, "constraints", t->constraints, t->nconstraints,
                         TASK_MAX_CONSTRAINTS, err, errlen)) < 0 ||
      (rc = expr_list_ok(prefix, "features", t->features, t->nfeatures, TASK_MAX_FEATURES, err,
                         errlen)) < 0)
    return rc;

  for (size_t i = 0; i < t->nconsts; i++) {
    const char *n = t->consts[i].name;
    if (!task_is_ident(n))
      return task_bad(err, errlen, prefix, "constants",
                 "'%.64s' is not a C identifier (at most %d characters)", n ? n : "",
                 TASK_MAX_IDENT);
    snprintf(field, sizeof field, "constants.%s", n);
    const char *clash = define_clash(t, n);
    if (clash) return task_bad(err, errlen, prefix, field, "'%s' is %s; rename it", n, clash);
    for (size_t j = 0; j < i; j++)
      if (strcmp(t->consts[j].name, n) == 0) return task_bad(err, errlen, prefix, field, "appears twice");
  }
  for (size_t i = 0; i < t->nknobs; i++) {
    const task_knob *k = &t->knobs[i];
    if (!task_is_ident(k->name))
      return task_bad(err, errlen, prefix, "knobs",
                 "'%.64s' is not a C identifier (at most %d characters)", k->name ? k->name : "",
                 TASK_MAX_IDENT);
    snprintf(field, sizeof field, "knobs.%s", k->name);
    const char *clash = define_clash(t, k->name);
    if (clash) return task_bad(err, errlen, prefix, field, "'%s' is %s; rename it", k->name, clash);
    for (size_t j = 0; j < i; j++)
      if (strcmp(t->knobs[j].name, k->name) == 0)
        return task_bad(err, errlen, prefix, field, "appears twice");
    for (size_t j = 0; j < t->nconsts; j++)
      if (strcmp(t->consts[j].name, k->name) == 0)
        return task_bad(err, errlen, prefix, field, "'%s' is also a constant; rename one of them",
                   k->name);
    if (k->nvalues == 0)
      return task_bad(err, errlen, prefix, field, "expected a non-empty list of integer values");
    if (k->nvalues > TASK_MAX_KNOB_VALUES)
      return task_bad(err, errlen, prefix, field, "at most %d values allowed", TASK_MAX_KNOB_VALUES);
    int64_t dup;
    rc = find_duplicate(k->values, k->nvalues, &dup);
    if (rc < 0) return rc;
    if (rc > 0) return task_bad(err, errlen, prefix, field, "value %lld appears twice", (long long)dup);
  }
  int outputs = 0;
  for (size_t i = 0; i < t->nargs; i++) {
    const task_arg *a = &t->args[i];
    snprintf(field, sizeof field, "args[%zu].name", i);
    if (!task_is_ident(a->name))
      return task_bad(err, errlen, prefix, field, "expected a C identifier (at most %d characters)",
                 TASK_MAX_IDENT);
    for (size_t j = 0; j < i; j++)
      if (strcmp(t->args[j].name, a->name) == 0)
        return task_bad(err, errlen, prefix, field, "'%s' appears twice", a->name);
    /* knobs and constants become #defines, which would rename the parameter */
    for (size_t j = 0; j < t->nconsts; j++)
      if (strcmp(t->consts[j].name, a->name) == 0)
        return task_bad(err, errlen, prefix, field, "'%s' is also a constant; rename one of them",
                   a->name);
    for (size_t j = 0; j < t->nknobs; j++)
      if (strcmp(t->knobs[j].name, a->name) == 0)
        return task_bad(err, errlen, prefix, field, "'%s' is also a knob; rename one of them",
                   a->name);
    snprintf(field, sizeof field, "args[%zu].type", i);
    if (!task_known_type(a->type))
      return task_bad(err, errlen, prefix, field,
                 "unknown type '%.32s' (expected float, double, int32 or int64)",
                 a->type ? a->type : "");
    snprintf(field, sizeof field, "args[%zu].count", i);
    if (!a->count || !*a->count || strlen(a->count) > TASK_MAX_EXPR)
      return task_bad(err, errlen, prefix, field,
                 "expected an expression over the constants of at most %d bytes", TASK_MAX_EXPR);
    outputs += a->output != 0;
  }
  if (!outputs)
    return task_bad(err, errlen, prefix, "args", "expected at least one argument with \"output\": true");
  for (size_t i = 0; i < NWORK; i++) {
    const char *v = WORK(t, i);
    if (v ? !*v || strlen(v) > TASK_MAX_EXPR : work_counts[i].required)
      return task_bad(err, errlen, prefix, work_counts[i].field,
                 "expected an expression over the constants of at most %d bytes", TASK_MAX_EXPR);
  }
  if (!isfinite(t->rtol) || t->rtol < 0)
    return task_bad(err, errlen, prefix, "tolerance.rtol", "expected a finite number >= 0");
  if (!isfinite(t->atol) || t->atol < 0)
    return task_bad(err, errlen, prefix, "tolerance.atol", "expected a finite number >= 0");
  return 0;
}

int task_verify(const task_spec *t, const char *prefix, char *err, size_t errlen) {
  int rc = validate(t, prefix, err, errlen);
  return rc < 0 ? rc : check_exprs(t, prefix, err, errlen);
}

int task_check(const task_spec *t, char *err, size_t errlen) {
  if (!t) return task_bad(err, errlen, "task", NULL, "no task");
  return task_verify(t, t->name ? t->name : "task", err, errlen);
}

/* ---- constants and evaluation ---- */

int task_set_const(task_spec *t, const char *name, int64_t value, char *err, size_t errlen) {
  const char *tn = t && t->name ? t->name : "task";
  if (!t || !name) return task_bad(err, errlen, tn, NULL, "no constant given");
  for (size_t i = 0; i < t->nconsts; i++)
    if (strcmp(t->consts[i].name, name) == 0) {
      t->consts[i].value = value;
      return 0;
    }
  char names[256];
  names_text(t, 0, names, sizeof names);
  for (size_t i = 0; i < t->nknobs; i++)
    if (strcmp(t->knobs[i].name, name) == 0)
      return task_bad(err, errlen, tn, NULL,
                 "'%s' is a knob, which the tuner sets; -D sets constants (%s)", name, names);
  return task_bad(err, errlen, tn, NULL, "unknown constant '%.64s' (constants: %s)", name, names);
}

int task_eval(const task_spec *t, const int64_t *knob_values, const char *expr, int64_t *out,
              char *err, size_t errlen) {
  if (!t) {
    if (err && errlen) snprintf(err, errlen, "no task");
    return -EINVAL;
  }
  scope s = {.t = t, .knob_values = knob_values};
  return expr_eval(expr, scope_lookup, &s, out, err, errlen);
}

int64_t task_bytes(const task_spec *t) {
  int64_t v = 0;
  if (!t || !t->bytes || task_eval(t, NULL, t->bytes, &v, NULL, 0) < 0 || v < 0) return 0;
  return v;
}

int task_compile(const task_spec *t, const char *expr, expr_prog **out, char *err,
                 size_t errlen) {
  *out = NULL;
  if (!t) {
    if (err && errlen) snprintf(err, errlen, "no task");
    return -EINVAL;
  }
  return expr_compile(expr, task_resolve, (void *)t, out, err, errlen);
}

/* ---- wire form ---- */

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

static void free_pstr(char *s) {
  if (s && s != protobuf_c_empty_string) free(s);
}

static void free_pstrs(char **a, size_t n) {
  for (size_t i = 0; a && i < n; i++) free_pstr(a[i]);
  free(a);
}

/* A list of strings (constraints, features) into a message's repeated
 * field; the count is set first, so a partial copy can be freed. */
static int strs_to_proto(char *const *src, size_t n, char ***dst, size_t *ndst) {
  if (!n) return 0;
  if (!(*dst = calloc(n, sizeof **dst))) return -ENOMEM;
  *ndst = n;
  for (size_t i = 0; i < n; i++)
    if (!((*dst)[i] = dup_or_empty(src[i]))) return -ENOMEM;
  return 0;
}

void task_proto_free(Ktune__TaskSpec *p) {
  if (!p) return;
  free_pstr(p->name);
  free_pstr(p->source);
  free_pstr(p->entry);
  free_pstr(p->reference);
  for (size_t i = 0; i < NWORK; i++) free_pstr(WORK_PROTO(p, i));
  for (size_t i = 0; i < p->n_constants; i++) {
    if (!p->constants[i]) continue;
    free_pstr(p->constants[i]->name);
    free(p->constants[i]);
  }
  free(p->constants);
  for (size_t i = 0; i < p->n_args; i++) {
    if (!p->args[i]) continue;
    free_pstr(p->args[i]->name);
    free_pstr(p->args[i]->type);
    free_pstr(p->args[i]->count);
    free(p->args[i]);
  }
  free(p->args);
  for (size_t i = 0; i < p->n_knobs; i++) {
    if (!p->knobs[i]) continue;
    free_pstr(p->knobs[i]->name);
    free(p->knobs[i]->values);
    free(p->knobs[i]);
  }
  free(p->knobs);
  free_pstrs(p->constraints, p->n_constraints);
  free_pstrs(p->features, p->n_features);
  free(p);
}

/* Arrays are calloc'd and their counts set before filling, so a partial
 * build can be freed by task_proto_free. */
static int to_proto(const task_spec *t, Ktune__TaskSpec *p) {
  if (!(p->name = dup_or_empty(t->name)) || !(p->source = dup_or_empty(t->source)) ||
      !(p->entry = dup_or_empty(t->entry)) || !(p->reference = dup_or_empty(t->reference)))
    return -ENOMEM;
  for (size_t i = 0; i < NWORK; i++)
    if (!(WORK_PROTO(p, i) = dup_or_empty(WORK(t, i)))) return -ENOMEM;
  p->rtol = t->rtol;
  p->atol = t->atol;
  if (t->nconsts) {
    if (!(p->constants = calloc(t->nconsts, sizeof *p->constants))) return -ENOMEM;
    p->n_constants = t->nconsts;
    for (size_t i = 0; i < t->nconsts; i++) {
      Ktune__Param *q = malloc(sizeof *q);
      if (!q) return -ENOMEM;
      ktune__param__init(q);
      p->constants[i] = q;
      if (!(q->name = dup_or_empty(t->consts[i].name))) return -ENOMEM;
      q->value = t->consts[i].value;
    }
  }
  if (t->nargs) {
    if (!(p->args = calloc(t->nargs, sizeof *p->args))) return -ENOMEM;
    p->n_args = t->nargs;
    for (size_t i = 0; i < t->nargs; i++) {
      Ktune__Arg *q = malloc(sizeof *q);
      if (!q) return -ENOMEM;
      ktune__arg__init(q);
      p->args[i] = q;
      if (!(q->name = dup_or_empty(t->args[i].name)) ||
          !(q->type = dup_or_empty(t->args[i].type)) ||
          !(q->count = dup_or_empty(t->args[i].count)))
        return -ENOMEM;
      q->output = t->args[i].output != 0;
    }
  }
  if (t->nknobs) {
    if (!(p->knobs = calloc(t->nknobs, sizeof *p->knobs))) return -ENOMEM;
    p->n_knobs = t->nknobs;
    for (size_t i = 0; i < t->nknobs; i++) {
      Ktune__Knob *q = malloc(sizeof *q);
      if (!q) return -ENOMEM;
      ktune__knob__init(q);
      p->knobs[i] = q;
      if (!(q->name = dup_or_empty(t->knobs[i].name))) return -ENOMEM;
      if (t->knobs[i].nvalues) {
        if (!(q->values = malloc(t->knobs[i].nvalues * sizeof *q->values))) return -ENOMEM;
        memcpy(q->values, t->knobs[i].values, t->knobs[i].nvalues * sizeof *q->values);
        q->n_values = t->knobs[i].nvalues;
      }
    }
  }
  int rc = strs_to_proto(t->constraints, t->nconstraints, &p->constraints, &p->n_constraints);
  return rc < 0 ? rc : strs_to_proto(t->features, t->nfeatures, &p->features, &p->n_features);
}

int task_to_proto(const task_spec *t, Ktune__TaskSpec **out) {
  *out = NULL;
  if (!t) return -EINVAL;
  Ktune__TaskSpec *p = malloc(sizeof *p);
  if (!p) return -ENOMEM;
  ktune__task_spec__init(p);
  int rc = to_proto(t, p);
  if (rc < 0) {
    task_proto_free(p);
    return rc;
  }
  *out = p;
  return 0;
}

/* A copy of a wire string, bounded; NULL on failure (with *rc set). */
static char *wire_str(const char *s, size_t max, int *rc) {
  if (!s || strlen(s) > max) {
    *rc = -EINVAL;
    return NULL;
  }
  char *d = strdup(s);
  if (!d) *rc = -ENOMEM;
  return d;
}

/* A repeated string field of expressions (constraints, features), each
 * bounded; *ndst counts what was copied, so a partial copy can be freed. */
static int strs_from_proto(char *const *src, size_t n, char ***dst, size_t *ndst,
                           const char *pre, const char *what, char *err, size_t errlen) {
  int rc = 0;
  if (n && !(*dst = calloc(n, sizeof **dst))) return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if (!((*dst)[i] = wire_str(src[i], TASK_MAX_EXPR, &rc))) {
      char field[64];
      snprintf(field, sizeof field, "%s[%zu]", what, i);
      return rc == -ENOMEM ? rc : task_bad(err, errlen, pre, field, "missing or too long");
    }
    (*ndst)++;
  }
  return 0;
}

static int from_proto(const Ktune__TaskSpec *p, task_spec *t, char *err, size_t errlen) {
  const char *pre = "task spec";
  int rc = 0;
  char field[64];
  if (p->n_constants > TASK_MAX_CONSTS)
    return task_bad(err, errlen, pre, "constants", "at most %d allowed", TASK_MAX_CONSTS);
  if (p->n_args > TASK_MAX_ARGS)
    return task_bad(err, errlen, pre, "args", "at most %d allowed", TASK_MAX_ARGS);
  if (p->n_knobs > TASK_MAX_KNOBS)
    return task_bad(err, errlen, pre, "knobs", "at most %d allowed", TASK_MAX_KNOBS);
  if (p->n_constraints > TASK_MAX_CONSTRAINTS)
    return task_bad(err, errlen, pre, "constraints", "at most %d allowed", TASK_MAX_CONSTRAINTS);
  if (p->n_features > TASK_MAX_FEATURES)
    return task_bad(err, errlen, pre, "features", "at most %d allowed", TASK_MAX_FEATURES);
  if ((p->n_constants && !p->constants) || (p->n_args && !p->args) ||
      (p->n_knobs && !p->knobs) || (p->n_constraints && !p->constraints) ||
      (p->n_features && !p->features))
    return task_bad(err, errlen, pre, NULL, "malformed message");

  if (!(t->name = wire_str(p->name, TASK_MAX_TASK_NAME, &rc)))
    return rc == -ENOMEM ? rc : task_bad(err, errlen, pre, "name", "missing or too long");
  if (!(t->source = wire_str(p->source, TASK_MAX_SOURCE, &rc)))
    return rc == -ENOMEM ? rc : task_bad(err, errlen, pre, "source", "missing or too long");
  if (!(t->entry = wire_str(p->entry, TASK_MAX_IDENT, &rc)))
    return rc == -ENOMEM ? rc : task_bad(err, errlen, pre, "entry", "missing or too long");
  if (p->reference && *p->reference &&
      !(t->reference = wire_str(p->reference, TASK_MAX_IDENT, &rc)))
    return rc == -ENOMEM ? rc : task_bad(err, errlen, pre, "reference", "too long");
  for (size_t i = 0; i < NWORK; i++) {
    const char *v = WORK_PROTO(p, i);
    /* An optional count is "" on the wire when the spec has none. */
    if (!work_counts[i].required && (!v || !*v)) continue;
    if (!(WORK(t, i) = wire_str(v, TASK_MAX_EXPR, &rc)))
      return rc == -ENOMEM
                 ? rc
                 : task_bad(err, errlen, pre, work_counts[i].field, "missing or too long");
  }
  t->rtol = p->rtol;
  t->atol = p->atol;

  if (p->n_constants && !(t->consts = calloc(p->n_constants, sizeof *t->consts))) return -ENOMEM;
  for (size_t i = 0; i < p->n_constants; i++) {
    const Ktune__Param *q = p->constants[i];
    snprintf(field, sizeof field, "constants[%zu]", i);
    if (!q) return task_bad(err, errlen, pre, field, "missing");
    if (!(t->consts[i].name = wire_str(q->name, TASK_MAX_IDENT, &rc)))
      return rc == -ENOMEM ? rc : task_bad(err, errlen, pre, field, "name missing or too long");
    t->consts[i].value = q->value;
    t->nconsts++;
  }
  if (p->n_args && !(t->args = calloc(p->n_args, sizeof *t->args))) return -ENOMEM;
  for (size_t i = 0; i < p->n_args; i++) {
    const Ktune__Arg *q = p->args[i];
    snprintf(field, sizeof field, "args[%zu]", i);
    if (!q) return task_bad(err, errlen, pre, field, "missing");
    task_arg *a = &t->args[t->nargs++];
    if (!(a->name = wire_str(q->name, TASK_MAX_IDENT, &rc)) ||
        !(a->type = wire_str(q->type, 16, &rc)) ||
        !(a->count = wire_str(q->count, TASK_MAX_EXPR, &rc)))
      return rc == -ENOMEM ? rc : task_bad(err, errlen, pre, field, "a field is missing or too long");
    a->output = q->output != 0;
  }
  if (p->n_knobs && !(t->knobs = calloc(p->n_knobs, sizeof *t->knobs))) return -ENOMEM;
  for (size_t i = 0; i < p->n_knobs; i++) {
    const Ktune__Knob *q = p->knobs[i];
    snprintf(field, sizeof field, "knobs[%zu]", i);
    if (!q) return task_bad(err, errlen, pre, field, "missing");
    task_knob *k = &t->knobs[t->nknobs++];
    if (!(k->name = wire_str(q->name, TASK_MAX_IDENT, &rc)))
      return rc == -ENOMEM ? rc : task_bad(err, errlen, pre, field, "name missing or too long");
    if (q->n_values > TASK_MAX_KNOB_VALUES)
      return task_bad(err, errlen, pre, field, "at most %d values allowed", TASK_MAX_KNOB_VALUES);
    if (q->n_values && !q->values) return task_bad(err, errlen, pre, field, "malformed values");
    if (q->n_values) {
      if (!(k->values = malloc(q->n_values * sizeof *k->values))) return -ENOMEM;
      memcpy(k->values, q->values, q->n_values * sizeof *k->values);
      k->nvalues = q->n_values;
    }
  }
  if ((rc = strs_from_proto(p->constraints, p->n_constraints, &t->constraints,
                            &t->nconstraints, pre, "constraints", err, errlen)) < 0 ||
      (rc = strs_from_proto(p->features, p->n_features, &t->features, &t->nfeatures, pre,
                            "features", err, errlen)) < 0)
    return rc;
  return task_verify(t, pre, err, errlen);
}

int task_from_proto(const Ktune__TaskSpec *p, task_spec *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (!p) return task_bad(err, errlen, "task spec", NULL, "missing");
  int rc = from_proto(p, out, err, errlen);
  if (rc == -ENOMEM) task_bad(err, errlen, "task spec", NULL, "out of memory");
  if (rc < 0) task_free(out);
  return rc;
}

static void free_strs(char **a, size_t n) {
  for (size_t i = 0; a && i < n; i++) free(a[i]);
  free(a);
}

void task_free(task_spec *t) {
  if (!t) return;
  free(t->name);
  free(t->source);
  free(t->entry);
  free(t->reference);
  for (size_t i = 0; i < NWORK; i++) free(WORK(t, i));
  for (size_t i = 0; i < t->nconsts; i++) free(t->consts[i].name);
  free(t->consts);
  for (size_t i = 0; i < t->nargs; i++) {
    free(t->args[i].name);
    free(t->args[i].type);
    free(t->args[i].count);
  }
  free(t->args);
  for (size_t i = 0; i < t->nknobs; i++) {
    free(t->knobs[i].name);
    free(t->knobs[i].values);
  }
  free(t->knobs);
  free_strs(t->constraints, t->nconstraints);
  free_strs(t->features, t->nfeatures);
  memset(t, 0, sizeof *t);
}
