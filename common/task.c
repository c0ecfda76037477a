/* Task specs. A spec reaches us either as a file the user wrote or as a
 * message from the network; both go through the same structural checks
 * (validate) and the same expression checks (check), so the tracker never
 * trusts a spec more than the CLI does. */
#include "common/task.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/expr.h"

#ifndef KTUNE_TASKS_DIR
#define KTUNE_TASKS_DIR ""
#endif
#ifndef KTUNE_TASKS_INSTALL_DIR
#define KTUNE_TASKS_INSTALL_DIR ""
#endif

/* Limits on anything a spec can make us allocate; generous for real
 * kernels, small enough that a hostile spec cannot exhaust memory. */
#define TASK_MAX_SOURCE (16u << 20)
#define TASK_MAX_IDENT 64
#define TASK_MAX_TASK_NAME 128
#define TASK_MAX_EXPR EXPR_MAX_LEN
#define TASK_MAX_CONSTS 256
/* The runner calls a kernel with at most this many pointer arguments. */
#define TASK_MAX_ARGS 8
#define TASK_MAX_KNOBS 64
#define TASK_MAX_KNOB_VALUES 65536
#define TASK_MAX_CONSTRAINTS 256

static const char *const arg_types[] = {"float", "double", "int32", "int64"};

/* Writes "PREFIX: FIELD: message" (FIELD may be NULL). */
static int bad(char *err, size_t errlen, const char *prefix, const char *field,
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

static int is_ident(const char *s) {
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

static int known_type(const char *s) {
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

static int scope_lookup(void *ctx, const char *name, size_t len, int64_t *out) {
  const scope *s = ctx;
  for (size_t i = 0; i < s->t->nconsts; i++)
    if (strlen(s->t->consts[i].name) == len && memcmp(s->t->consts[i].name, name, len) == 0) {
      *out = s->t->consts[i].value;
      return 0;
    }
  if (!s->knob_values && !s->all_knobs) return -1;
  for (size_t i = 0; i < s->t->nknobs; i++)
    if (strlen(s->t->knobs[i].name) == len && memcmp(s->t->knobs[i].name, name, len) == 0) {
      *out = s->knob_values ? s->knob_values[i] : 0;
      return 0;
    }
  return -1;
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
    return bad(err, errlen, prefix, field, "%s must be positive, is %lld (with %s)", quoted,
               (long long)v, ctext);
  }
  for (size_t i = 0; r.missing && i < t->nknobs; i++)
    if (strlen(t->knobs[i].name) == r.missing_len &&
        memcmp(t->knobs[i].name, r.missing, r.missing_len) == 0)
      return bad(err, errlen, prefix, field,
                 "%s names the knob '%s'; it may use only the constants", quoted,
                 t->knobs[i].name);
  names_text(t, 0, ctext, sizeof ctext);
  return bad(err, errlen, prefix, field, "%s: %s (constants: %s)", quoted, msg, ctext);
}

static int check_exprs(const task_spec *t, const char *prefix, char *err, size_t errlen) {
  char field[64];
  for (size_t i = 0; i < t->nargs; i++) {
    snprintf(field, sizeof field, "args[%zu].count", i);
    int rc = check_positive(t, prefix, field, t->args[i].count, err, errlen);
    if (rc < 0) return rc;
  }
  int rc = check_positive(t, prefix, "flops", t->flops, err, errlen);
  if (rc < 0) return rc;
  scope all = {.t = t, .all_knobs = 1};
  for (size_t i = 0; i < t->nconstraints; i++) {
    char msg[256], names[256], knames[256], quoted[160];
    if (expr_check(t->constraints[i], scope_lookup, &all, msg, sizeof msg) == 0) continue;
    expr_quote(t->constraints[i], quoted, sizeof quoted);
    snprintf(field, sizeof field, "constraints[%zu]", i);
    names_text(t, 0, names, sizeof names);
    names_text(t, 1, knames, sizeof knames);
    return bad(err, errlen, prefix, field, "%s: %s (constants: %s; knobs: %s)", quoted, msg,
               names, knames);
  }
  return 0;
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

/* Structure that does not depend on evaluating anything: names, types,
 * duplicates, sizes. */
static int validate(const task_spec *t, const char *prefix, char *err, size_t errlen) {
  char field[96];
  if (!is_task_name(t->name))
    return bad(err, errlen, prefix, "name",
               "expected a non-empty name of letters, digits, '_', '-' and '.' (at most %d)",
               TASK_MAX_TASK_NAME);
  if (!t->source || !*t->source) return bad(err, errlen, prefix, "source", "template is empty");
  if (!is_ident(t->entry))
    return bad(err, errlen, prefix, "entry", "expected the C function name of the kernel");
  if (t->reference && !is_ident(t->reference))
    return bad(err, errlen, prefix, "reference", "expected the C function name of the reference");
  if (t->reference && strcmp(t->reference, t->entry) == 0)
    return bad(err, errlen, prefix, "reference", "must differ from entry ('%s')", t->entry);
  if (t->nconsts > TASK_MAX_CONSTS)
    return bad(err, errlen, prefix, "constants", "at most %d allowed", TASK_MAX_CONSTS);
  if (t->nknobs > TASK_MAX_KNOBS)
    return bad(err, errlen, prefix, "knobs", "at most %d allowed", TASK_MAX_KNOBS);
  if (t->nargs == 0)
    return bad(err, errlen, prefix, "args", "expected at least one buffer argument");
  if (t->nargs > TASK_MAX_ARGS)
    return bad(err, errlen, prefix, "args", "at most %d allowed", TASK_MAX_ARGS);
  if (t->nconstraints > TASK_MAX_CONSTRAINTS)
    return bad(err, errlen, prefix, "constraints", "at most %d allowed", TASK_MAX_CONSTRAINTS);

  for (size_t i = 0; i < t->nconsts; i++) {
    const char *n = t->consts[i].name;
    if (!is_ident(n))
      return bad(err, errlen, prefix, "constants",
                 "'%.64s' is not a C identifier (at most %d characters)", n ? n : "",
                 TASK_MAX_IDENT);
    snprintf(field, sizeof field, "constants.%s", n);
    const char *clash = define_clash(t, n);
    if (clash) return bad(err, errlen, prefix, field, "'%s' is %s; rename it", n, clash);
    for (size_t j = 0; j < i; j++)
      if (strcmp(t->consts[j].name, n) == 0) return bad(err, errlen, prefix, field, "appears twice");
  }
  for (size_t i = 0; i < t->nknobs; i++) {
    const task_knob *k = &t->knobs[i];
    if (!is_ident(k->name))
      return bad(err, errlen, prefix, "knobs",
                 "'%.64s' is not a C identifier (at most %d characters)", k->name ? k->name : "",
                 TASK_MAX_IDENT);
    snprintf(field, sizeof field, "knobs.%s", k->name);
    const char *clash = define_clash(t, k->name);
    if (clash) return bad(err, errlen, prefix, field, "'%s' is %s; rename it", k->name, clash);
    for (size_t j = 0; j < i; j++)
      if (strcmp(t->knobs[j].name, k->name) == 0)
        return bad(err, errlen, prefix, field, "appears twice");
    for (size_t j = 0; j < t->nconsts; j++)
      if (strcmp(t->consts[j].name, k->name) == 0)
        return bad(err, errlen, prefix, field, "'%s' is also a constant; rename one of them",
                   k->name);
    if (k->nvalues == 0)
      return bad(err, errlen, prefix, field, "expected a non-empty list of integer values");
    if (k->nvalues > TASK_MAX_KNOB_VALUES)
      return bad(err, errlen, prefix, field, "at most %d values allowed", TASK_MAX_KNOB_VALUES);
    int64_t dup;
    int rc = find_duplicate(k->values, k->nvalues, &dup);
    if (rc < 0) return rc;
    if (rc > 0) return bad(err, errlen, prefix, field, "value %lld appears twice", (long long)dup);
  }
  int outputs = 0;
  for (size_t i = 0; i < t->nargs; i++) {
    const task_arg *a = &t->args[i];
    snprintf(field, sizeof field, "args[%zu].name", i);
    if (!is_ident(a->name))
      return bad(err, errlen, prefix, field, "expected a C identifier (at most %d characters)",
                 TASK_MAX_IDENT);
    for (size_t j = 0; j < i; j++)
      if (strcmp(t->args[j].name, a->name) == 0)
        return bad(err, errlen, prefix, field, "'%s' appears twice", a->name);
    /* knobs and constants become #defines, which would rename the parameter */
    for (size_t j = 0; j < t->nconsts; j++)
      if (strcmp(t->consts[j].name, a->name) == 0)
        return bad(err, errlen, prefix, field, "'%s' is also a constant; rename one of them",
                   a->name);
    for (size_t j = 0; j < t->nknobs; j++)
      if (strcmp(t->knobs[j].name, a->name) == 0)
        return bad(err, errlen, prefix, field, "'%s' is also a knob; rename one of them",
                   a->name);
    snprintf(field, sizeof field, "args[%zu].type", i);
    if (!known_type(a->type))
      return bad(err, errlen, prefix, field,
                 "unknown type '%.32s' (expected float, double, int32 or int64)",
                 a->type ? a->type : "");
    snprintf(field, sizeof field, "args[%zu].count", i);
    if (!a->count || !*a->count || strlen(a->count) > TASK_MAX_EXPR)
      return bad(err, errlen, prefix, field,
                 "expected an expression over the constants of at most %d bytes", TASK_MAX_EXPR);
    outputs += a->output != 0;
  }
  if (!outputs)
    return bad(err, errlen, prefix, "args", "expected at least one argument with \"output\": true");
  if (!t->flops || !*t->flops || strlen(t->flops) > TASK_MAX_EXPR)
    return bad(err, errlen, prefix, "flops",
               "expected an expression over the constants of at most %d bytes", TASK_MAX_EXPR);
  for (size_t i = 0; i < t->nconstraints; i++) {
    snprintf(field, sizeof field, "constraints[%zu]", i);
    if (!t->constraints[i] || !*t->constraints[i] || strlen(t->constraints[i]) > TASK_MAX_EXPR)
      return bad(err, errlen, prefix, field,
                 "expected an expression over knobs and constants of at most %d bytes",
                 TASK_MAX_EXPR);
  }
  if (!isfinite(t->rtol) || t->rtol < 0)
    return bad(err, errlen, prefix, "tolerance.rtol", "expected a finite number >= 0");
  if (!isfinite(t->atol) || t->atol < 0)
    return bad(err, errlen, prefix, "tolerance.atol", "expected a finite number >= 0");
  return 0;
}

int task_check(const task_spec *t, char *err, size_t errlen) {
  if (!t) return bad(err, errlen, "task", NULL, "no task");
  const char *prefix = t->name ? t->name : "task";
  int rc = validate(t, prefix, err, errlen);
  return rc < 0 ? rc : check_exprs(t, prefix, err, errlen);
}

/* ---- loading from JSON ---- */

static const char *json_kind(const json_t *v) {
  switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
  }
  return "something else";
}

typedef struct {
  const char *file;
  char *err;
  size_t errlen;
} loader;

/* A string field; *out stays NULL when an optional field is absent. */
static int get_string(loader *l, json_t *obj, const char *key, const char *field, int required,
                      const char *expected, char **out) {
  json_t *v = json_object_get(obj, key);
  *out = NULL;
  if (!v) {
    if (!required) return 0;
    return bad(l->err, l->errlen, l->file, field, "missing (expected %s)", expected);
  }
  if (!json_is_string(v))
    return bad(l->err, l->errlen, l->file, field, "expected %s, got %s", expected, json_kind(v));
  if (!(*out = strdup(json_string_value(v)))) return -ENOMEM;
  return 0;
}

/* An expression field: a string, or an integer for convenience. */
static int get_expr(loader *l, json_t *obj, const char *key, const char *field,
                    const char *expected, char **out) {
  json_t *v = json_object_get(obj, key);
  *out = NULL;
  if (v && json_is_integer(v)) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
    return (*out = strdup(buf)) ? 0 : -ENOMEM;
  }
  return get_string(l, obj, key, field, 1, expected, out);
}

static int check_keys(loader *l, json_t *obj, const char *where, const char *const *allowed) {
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    int ok = 0;
    for (const char *const *a = allowed; *a && !ok; a++) ok = strcmp(*a, key) == 0;
    if (ok) continue;
    char list[256] = "";
    size_t used = 0;
    for (const char *const *a = allowed; *a && used < sizeof list; a++) {
      int n = snprintf(list + used, sizeof list - used, "%s%s", a == allowed ? "" : ", ", *a);
      if (n < 0) break;
      used += (size_t)n;
    }
    char field[160];
    snprintf(field, sizeof field, "%s%s%.64s", where, *where ? "." : "", key);
    return bad(l->err, l->errlen, l->file, field, "unknown field (expected one of: %s)", list);
  }
  return 0;
}

static int read_source(loader *l, const char *spec_path, const char *rel, char **out) {
  char path[4096];
  const char *slash = strrchr(spec_path, '/');
  int n;
  if (rel[0] == '/' || !slash)
    n = snprintf(path, sizeof path, "%s", rel);
  else
    n = snprintf(path, sizeof path, "%.*s/%s", (int)(slash - spec_path), spec_path, rel);
  if (n < 0 || (size_t)n >= sizeof path)
    return bad(l->err, l->errlen, l->file, "source", "path too long");
  struct stat st;
  if (stat(path, &st) != 0)
    return bad(l->err, l->errlen, l->file, "source", "'%s' does not exist (looked for %s)", rel,
               path);
  if (!S_ISREG(st.st_mode))
    return bad(l->err, l->errlen, l->file, "source", "%s is not a regular file", path);
  if ((uint64_t)st.st_size > TASK_MAX_SOURCE)
    return bad(l->err, l->errlen, l->file, "source", "%s is larger than %u bytes", path,
               TASK_MAX_SOURCE);
  FILE *f = fopen(path, "rb");
  if (!f)
    return bad(l->err, l->errlen, l->file, "source", "cannot open %s: %s", path,
               strerror(errno));
  char *buf = malloc((size_t)st.st_size + 1);
  if (!buf) {
    fclose(f);
    return -ENOMEM;
  }
  size_t got = fread(buf, 1, (size_t)st.st_size, f);
  int rerr = ferror(f);
  fclose(f);
  if (rerr || got != (size_t)st.st_size) {
    free(buf);
    return bad(l->err, l->errlen, l->file, "source", "cannot read %s", path);
  }
  buf[got] = '\0';
  if (memchr(buf, '\0', got)) {
    free(buf);
    return bad(l->err, l->errlen, l->file, "source", "%s contains a NUL byte; expected C text",
               path);
  }
  if (got == 0) {
    free(buf);
    return bad(l->err, l->errlen, l->file, "source", "%s is empty", path);
  }
  *out = buf;
  return 0;
}

static int load_consts(loader *l, json_t *root, task_spec *t) {
  json_t *obj = json_object_get(root, "constants");
  if (!obj) return 0;
  if (!json_is_object(obj))
    return bad(l->err, l->errlen, l->file, "constants",
               "expected an object of name: integer, got %s", json_kind(obj));
  size_t n = json_object_size(obj);
  if (n > TASK_MAX_CONSTS)
    return bad(l->err, l->errlen, l->file, "constants", "at most %d allowed", TASK_MAX_CONSTS);
  if (n && !(t->consts = calloc(n, sizeof *t->consts))) return -ENOMEM;
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    char field[96];
    snprintf(field, sizeof field, "constants.%.64s", key);
    if (!json_is_integer(v))
      return bad(l->err, l->errlen, l->file, field, "expected an integer, got %s", json_kind(v));
    if (!is_ident(key))
      return bad(l->err, l->errlen, l->file, field, "expected a C identifier as the name");
    task_param *p = &t->consts[t->nconsts];
    if (!(p->name = strdup(key))) return -ENOMEM;
    p->value = json_integer_value(v);
    t->nconsts++;
  }
  return 0;
}

static int load_knobs(loader *l, json_t *root, task_spec *t) {
  json_t *obj = json_object_get(root, "knobs");
  if (!obj) return 0;
  if (!json_is_object(obj))
    return bad(l->err, l->errlen, l->file, "knobs",
               "expected an object of name: [integer values], got %s", json_kind(obj));
  size_t n = json_object_size(obj);
  if (n > TASK_MAX_KNOBS)
    return bad(l->err, l->errlen, l->file, "knobs", "at most %d allowed", TASK_MAX_KNOBS);
  if (n && !(t->knobs = calloc(n, sizeof *t->knobs))) return -ENOMEM;
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    char field[96];
    snprintf(field, sizeof field, "knobs.%.64s", key);
    if (!is_ident(key))
      return bad(l->err, l->errlen, l->file, field, "expected a C identifier as the name");
    if (!json_is_array(v) || json_array_size(v) == 0)
      return bad(l->err, l->errlen, l->file, field,
                 "expected a non-empty array of integer values, got %s",
                 json_is_array(v) ? "an empty array" : json_kind(v));
    size_t nv = json_array_size(v);
    if (nv > TASK_MAX_KNOB_VALUES)
      return bad(l->err, l->errlen, l->file, field, "at most %d values allowed",
                 TASK_MAX_KNOB_VALUES);
    task_knob *k = &t->knobs[t->nknobs];
    if (!(k->name = strdup(key))) return -ENOMEM;
    t->nknobs++;
    if (!(k->values = calloc(nv, sizeof *k->values))) return -ENOMEM;
    for (size_t i = 0; i < nv; i++) {
      json_t *e = json_array_get(v, i);
      if (!json_is_integer(e)) {
        char efield[128];
        snprintf(efield, sizeof efield, "%s[%zu]", field, i);
        return bad(l->err, l->errlen, l->file, efield, "expected an integer, got %s",
                   json_kind(e));
      }
      k->values[i] = json_integer_value(e);
      k->nvalues++;
    }
  }
  return 0;
}

static int load_args(loader *l, json_t *root, task_spec *t) {
  static const char *const keys[] = {"name", "type", "count", "output", NULL};
  json_t *arr = json_object_get(root, "args");
  if (!arr)
    return bad(l->err, l->errlen, l->file, "args",
               "missing (expected an array of {name, type, count, output})");
  if (!json_is_array(arr))
    return bad(l->err, l->errlen, l->file, "args", "expected an array, got %s", json_kind(arr));
  size_t n = json_array_size(arr);
  if (n == 0)
    return bad(l->err, l->errlen, l->file, "args", "expected at least one buffer argument");
  if (n > TASK_MAX_ARGS)
    return bad(l->err, l->errlen, l->file, "args", "at most %d allowed", TASK_MAX_ARGS);
  if (!(t->args = calloc(n, sizeof *t->args))) return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    json_t *a = json_array_get(arr, i);
    char where[32], field[64];
    snprintf(where, sizeof where, "args[%zu]", i);
    if (!json_is_object(a))
      return bad(l->err, l->errlen, l->file, where,
                 "expected an object {name, type, count, output}, got %s", json_kind(a));
    int rc = check_keys(l, a, where, keys);
    if (rc < 0) return rc;
    task_arg *ta = &t->args[t->nargs++];
    snprintf(field, sizeof field, "%s.name", where);
    if ((rc = get_string(l, a, "name", field, 1, "the parameter name", &ta->name)) < 0) return rc;
    snprintf(field, sizeof field, "%s.type", where);
    if ((rc = get_string(l, a, "type", field, 1, "float, double, int32 or int64", &ta->type)) < 0)
      return rc;
    if (!known_type(ta->type))
      return bad(l->err, l->errlen, l->file, field,
                 "unknown type '%.32s' (expected float, double, int32 or int64)", ta->type);
    snprintf(field, sizeof field, "%s.count", where);
    if ((rc = get_expr(l, a, "count", field, "an element count expression such as \"M*N\"",
                       &ta->count)) < 0)
      return rc;
    json_t *o = json_object_get(a, "output");
    if (o && !json_is_boolean(o)) {
      snprintf(field, sizeof field, "%s.output", where);
      return bad(l->err, l->errlen, l->file, field, "expected true or false, got %s",
                 json_kind(o));
    }
    ta->output = o && json_is_true(o);
  }
  return 0;
}

static int load_constraints(loader *l, json_t *root, task_spec *t) {
  json_t *arr = json_object_get(root, "constraints");
  if (!arr) return 0;
  if (!json_is_array(arr))
    return bad(l->err, l->errlen, l->file, "constraints",
               "expected an array of expression strings, got %s", json_kind(arr));
  size_t n = json_array_size(arr);
  if (n > TASK_MAX_CONSTRAINTS)
    return bad(l->err, l->errlen, l->file, "constraints", "at most %d allowed",
               TASK_MAX_CONSTRAINTS);
  if (n && !(t->constraints = calloc(n, sizeof *t->constraints))) return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    json_t *c = json_array_get(arr, i);
    if (!json_is_string(c)) {
      char field[64];
      snprintf(field, sizeof field, "constraints[%zu]", i);
      return bad(l->err, l->errlen, l->file, field, "expected an expression string, got %s",
                 json_kind(c));
    }
    if (!(t->constraints[i] = strdup(json_string_value(c)))) return -ENOMEM;
    t->nconstraints++;
  }
  return 0;
}

static int load_tolerance(loader *l, json_t *root, task_spec *t) {
  static const char *const keys[] = {"rtol", "atol", NULL};
  t->rtol = 1e-4;
  t->atol = 1e-5;
  json_t *obj = json_object_get(root, "tolerance");
  if (!obj) return 0;
  if (!json_is_object(obj))
    return bad(l->err, l->errlen, l->file, "tolerance", "expected {\"rtol\": R, \"atol\": A}, got %s",
               json_kind(obj));
  int rc = check_keys(l, obj, "tolerance", keys);
  if (rc < 0) return rc;
  for (int i = 0; i < 2; i++) {
    json_t *v = json_object_get(obj, keys[i]);
    if (!v) continue;
    char field[32];
    snprintf(field, sizeof field, "tolerance.%s", keys[i]);
    if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < 0)
      return bad(l->err, l->errlen, l->file, field, "expected a finite number >= 0, got %s",
                 json_is_number(v) ? "a negative number" : json_kind(v));
    *(i ? &t->atol : &t->rtol) = json_number_value(v);
  }
  return 0;
}

static int load_root(loader *l, const char *path, json_t *root, task_spec *t) {
  static const char *const keys[] = {"name",  "source",      "entry", "reference",
                                     "constants", "args",     "knobs", "constraints",
                                     "flops", "tolerance", "description", NULL};
  if (!json_is_object(root))
    return bad(l->err, l->errlen, l->file, NULL, "expected a JSON object at the top level");
  int rc;
  char *rel = NULL, *desc = NULL;
  if ((rc = check_keys(l, root, "", keys)) < 0 ||
      (rc = get_string(l, root, "name", "name", 1, "the task name", &t->name)) < 0 ||
      (rc = get_string(l, root, "source", "source", 1, "the template file name", &rel)) < 0 ||
      (rc = get_string(l, root, "entry", "entry", 1, "the kernel's C function name",
                       &t->entry)) < 0 ||
      (rc = get_string(l, root, "reference", "reference", 0, "the reference's C function name",
                       &t->reference)) < 0 ||
      (rc = get_string(l, root, "description", "description", 0, "a string", &desc)) < 0 ||
      (rc = load_consts(l, root, t)) < 0 || (rc = load_args(l, root, t)) < 0 ||
      (rc = load_knobs(l, root, t)) < 0 || (rc = load_constraints(l, root, t)) < 0 ||
      (rc = get_expr(l, root, "flops", "flops", "a FLOP count expression such as \"2*M*N*K\"",
                     &t->flops)) < 0 ||
      (rc = load_tolerance(l, root, t)) < 0) {
    free(rel);
    free(desc);
    return rc;
  }
  free(desc);
  if (!*rel) {
    free(rel);
    return bad(l->err, l->errlen, l->file, "source", "expected the template file name, got \"\"");
  }
  rc = read_source(l, path, rel, &t->source);
  free(rel);
  if (rc < 0) return rc;
  if ((rc = validate(t, l->file, l->err, l->errlen)) < 0) return rc;
  return check_exprs(t, l->file, l->err, l->errlen);
}

int task_load(const char *path, task_spec *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (!path || !*path) return bad(err, errlen, "task", NULL, "no spec file given");
  loader l = {.file = path, .err = err, .errlen = errlen};
  struct stat st;
  if (stat(path, &st) != 0)
    return bad(err, errlen, path, NULL, "cannot open: %s", strerror(errno));
  if (!S_ISREG(st.st_mode)) return bad(err, errlen, path, NULL, "not a regular file");
  json_error_t jerr;
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
  if (!root)
    return bad(err, errlen, path, NULL, "line %d column %d: %s (expected a JSON task spec)",
               jerr.line, jerr.column, jerr.text);
  int rc = load_root(&l, path, root, out);
  json_decref(root);
  if (rc == -ENOMEM) bad(err, errlen, path, NULL, "out of memory");
  if (rc < 0) task_free(out);
  return rc;
}

/* ---- built-in tasks ---- */

/* The folders holding built-in specs, in the order they are searched. */
static size_t task_dirs(const char *dirs[2]) {
  const char *env = getenv("KTUNE_TASKS");
  size_t n = 0;
  if (env && *env) {
    dirs[n++] = env;
    return n;
  }
  if (*KTUNE_TASKS_DIR) dirs[n++] = KTUNE_TASKS_DIR;
  if (*KTUNE_TASKS_INSTALL_DIR && strcmp(KTUNE_TASKS_INSTALL_DIR, KTUNE_TASKS_DIR) != 0)
    dirs[n++] = KTUNE_TASKS_INSTALL_DIR;
  return n;
}

static int is_regular(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

typedef struct {
  char *name;
  char *path;
} entry;

static int entry_cmp(const void *a, const void *b) {
  return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

/* Built-in specs by name, the first folder winning a name; sorted. */
static int scan_builtin(entry **out, size_t *n) {
  const char *dirs[2];
  size_t ndirs = task_dirs(dirs), cap = 0;
  entry *list = NULL;
  *n = 0;
  for (size_t d = 0; d < ndirs; d++) {
    DIR *dir = opendir(dirs[d]);
    if (!dir) continue;
    struct dirent *de;
    while ((de = readdir(dir))) {
      size_t len = strlen(de->d_name);
      if (len <= 5 || de->d_name[0] == '.' || strcmp(de->d_name + len - 5, ".json") != 0)
        continue;
      int seen = 0;
      for (size_t i = 0; i < *n && !seen; i++)
        seen = strlen(list[i].name) == len - 5 && memcmp(list[i].name, de->d_name, len - 5) == 0;
      if (seen) continue;
      size_t plen = strlen(dirs[d]) + 1 + len + 1;
      char *path = malloc(plen);
      char *name = strndup(de->d_name, len - 5);
      if (*n == cap) {
        size_t ncap = cap ? cap * 2 : 8;
        entry *nl = realloc(list, ncap * sizeof *nl);
        if (nl) {
          list = nl;
          cap = ncap;
        }
      }
      if (!path || !name || *n == cap) {
        free(path);
        free(name);
        closedir(dir);
        for (size_t i = 0; i < *n; i++) {
          free(list[i].name);
          free(list[i].path);
        }
        free(list);
        *n = 0;
        return -ENOMEM;
      }
      snprintf(path, plen, "%s/%s", dirs[d], de->d_name);
      if (!is_regular(path)) {
        free(path);
        free(name);
        continue;
      }
      list[*n].name = name;
      list[*n].path = path;
      (*n)++;
    }
    closedir(dir);
  }
  if (*n) qsort(list, *n, sizeof *list, entry_cmp);
  *out = list;
  return 0;
}

int task_list_builtin(char ***paths, size_t *n, char *err, size_t errlen) {
  entry *list = NULL;
  size_t cnt = 0;
  *paths = NULL;
  *n = 0;
  if (scan_builtin(&list, &cnt) < 0) return bad(err, errlen, "tasks", NULL, "out of memory");
  char **out = cnt ? calloc(cnt, sizeof *out) : NULL;
  if (cnt && !out) {
    for (size_t i = 0; i < cnt; i++) {
      free(list[i].name);
      free(list[i].path);
    }
    free(list);
    return bad(err, errlen, "tasks", NULL, "out of memory");
  }
  for (size_t i = 0; i < cnt; i++) {
    out[i] = list[i].path;
    free(list[i].name);
  }
  free(list);
  *paths = out;
  *n = cnt;
  return 0;
}

int task_find(const char *name, char *path, size_t pathlen, char *err, size_t errlen) {
  if (!name || !*name)
    return bad(err, errlen, "task", NULL,
               "no task given (name a built-in task, see 'ktune tasks', or a spec file)");
  if (is_regular(name)) {
    if (strlen(name) >= pathlen) return bad(err, errlen, name, NULL, "path too long");
    snprintf(path, pathlen, "%s", name);
    return 0;
  }
  size_t len = strlen(name);
  if (strchr(name, '/') || (len > 5 && strcmp(name + len - 5, ".json") == 0))
    return bad(err, errlen, name, NULL, "no such task spec file");
  const char *dirs[2];
  size_t ndirs = task_dirs(dirs);
  for (size_t d = 0; d < ndirs; d++) {
    char cand[4096];
    int n = snprintf(cand, sizeof cand, "%s/%s.json", dirs[d], name);
    if (n < 0 || (size_t)n >= sizeof cand || !is_regular(cand)) continue;
    if ((size_t)n >= pathlen) return bad(err, errlen, cand, NULL, "path too long");
    snprintf(path, pathlen, "%s", cand);
    return 0;
  }
  entry *list = NULL;
  size_t cnt = 0;
  char names[512] = "";
  size_t used = 0;
  if (scan_builtin(&list, &cnt) == 0) {
    for (size_t i = 0; i < cnt; i++) {
      if (used < sizeof names) {
        int w = snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "", list[i].name);
        if (w > 0) used += (size_t)w;
      }
      free(list[i].name);
      free(list[i].path);
    }
    free(list);
  }
  if (cnt)
    return bad(err, errlen, "task", NULL,
               "unknown task '%.128s'; built-in tasks: %s (or give the path of a task spec file)",
               name, names);
  return bad(err, errlen, "task", NULL,
             "unknown task '%.128s'; no built-in tasks found in %s%s%s (set KTUNE_TASKS, or give "
             "the path of a task spec file)",
             name, ndirs ? dirs[0] : "(none)", ndirs > 1 ? " or " : "", ndirs > 1 ? dirs[1] : "");
}

/* ---- constants and evaluation ---- */

int task_set_const(task_spec *t, const char *name, int64_t value, char *err, size_t errlen) {
  const char *tn = t && t->name ? t->name : "task";
  if (!t || !name) return bad(err, errlen, tn, NULL, "no constant given");
  for (size_t i = 0; i < t->nconsts; i++)
    if (strcmp(t->consts[i].name, name) == 0) {
      t->consts[i].value = value;
      return 0;
    }
  char names[256];
  names_text(t, 0, names, sizeof names);
  for (size_t i = 0; i < t->nknobs; i++)
    if (strcmp(t->knobs[i].name, name) == 0)
      return bad(err, errlen, tn, NULL,
                 "'%s' is a knob, which the tuner sets; -D sets constants (%s)", name, names);
  return bad(err, errlen, tn, NULL, "unknown constant '%.64s' (constants: %s)", name, names);
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

/* ---- wire form ---- */

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

static void free_pstr(char *s) {
  if (s && s != protobuf_c_empty_string) free(s);
}

void task_proto_free(Ktune__TaskSpec *p) {
  if (!p) return;
  free_pstr(p->name);
  free_pstr(p->source);
  free_pstr(p->entry);
  free_pstr(p->reference);
  free_pstr(p->flops);
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
  for (size_t i = 0; i < p->n_constraints; i++) free_pstr(p->constraints[i]);
  free(p->constraints);
  free(p);
}

/* Arrays are calloc'd and their counts set before filling, so a partial
 * build can be freed by task_proto_free. */
static int to_proto(const task_spec *t, Ktune__TaskSpec *p) {
  if (!(p->name = dup_or_empty(t->name)) || !(p->source = dup_or_empty(t->source)) ||
      !(p->entry = dup_or_empty(t->entry)) || !(p->reference = dup_or_empty(t->reference)) ||
      !(p->flops = dup_or_empty(t->flops)))
    return -ENOMEM;
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
  if (t->nconstraints) {
    if (!(p->constraints = calloc(t->nconstraints, sizeof *p->constraints))) return -ENOMEM;
    p->n_constraints = t->nconstraints;
    for (size_t i = 0; i < t->nconstraints; i++)
      if (!(p->constraints[i] = dup_or_empty(t->constraints[i]))) return -ENOMEM;
  }
  return 0;
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

static int from_proto(const Ktune__TaskSpec *p, task_spec *t, char *err, size_t errlen) {
  const char *pre = "task spec";
  int rc = 0;
  char field[64];
  if (p->n_constants > TASK_MAX_CONSTS)
    return bad(err, errlen, pre, "constants", "at most %d allowed", TASK_MAX_CONSTS);
  if (p->n_args > TASK_MAX_ARGS)
    return bad(err, errlen, pre, "args", "at most %d allowed", TASK_MAX_ARGS);
  if (p->n_knobs > TASK_MAX_KNOBS)
    return bad(err, errlen, pre, "knobs", "at most %d allowed", TASK_MAX_KNOBS);
  if (p->n_constraints > TASK_MAX_CONSTRAINTS)
    return bad(err, errlen, pre, "constraints", "at most %d allowed", TASK_MAX_CONSTRAINTS);
  if ((p->n_constants && !p->constants) || (p->n_args && !p->args) ||
      (p->n_knobs && !p->knobs) || (p->n_constraints && !p->constraints))
    return bad(err, errlen, pre, NULL, "malformed message");

  if (!(t->name = wire_str(p->name, TASK_MAX_TASK_NAME, &rc)))
    return rc == -ENOMEM ? rc : bad(err, errlen, pre, "name", "missing or too long");
  if (!(t->source = wire_str(p->source, TASK_MAX_SOURCE, &rc)))
    return rc == -ENOMEM ? rc : bad(err, errlen, pre, "source", "missing or too long");
  if (!(t->entry = wire_str(p->entry, TASK_MAX_IDENT, &rc)))
    return rc == -ENOMEM ? rc : bad(err, errlen, pre, "entry", "missing or too long");
  if (p->reference && *p->reference &&
      !(t->reference = wire_str(p->reference, TASK_MAX_IDENT, &rc)))
    return rc == -ENOMEM ? rc : bad(err, errlen, pre, "reference", "too long");
  if (!(t->flops = wire_str(p->flops, TASK_MAX_EXPR, &rc)))
    return rc == -ENOMEM ? rc : bad(err, errlen, pre, "flops", "missing or too long");
  t->rtol = p->rtol;
  t->atol = p->atol;

  if (p->n_constants && !(t->consts = calloc(p->n_constants, sizeof *t->consts))) return -ENOMEM;
  for (size_t i = 0; i < p->n_constants; i++) {
    const Ktune__Param *q = p->constants[i];
    snprintf(field, sizeof field, "constants[%zu]", i);
    if (!q) return bad(err, errlen, pre, field, "missing");
    if (!(t->consts[i].name = wire_str(q->name, TASK_MAX_IDENT, &rc)))
      return rc == -ENOMEM ? rc : bad(err, errlen, pre, field, "name missing or too long");
    t->consts[i].value = q->value;
    t->nconsts++;
  }
  if (p->n_args && !(t->args = calloc(p->n_args, sizeof *t->args))) return -ENOMEM;
  for (size_t i = 0; i < p->n_args; i++) {
    const Ktune__Arg *q = p->args[i];
    snprintf(field, sizeof field, "args[%zu]", i);
    if (!q) return bad(err, errlen, pre, field, "missing");
    task_arg *a = &t->args[t->nargs++];
    if (!(a->name = wire_str(q->name, TASK_MAX_IDENT, &rc)) ||
        !(a->type = wire_str(q->type, 16, &rc)) ||
        !(a->count = wire_str(q->count, TASK_MAX_EXPR, &rc)))
      return rc == -ENOMEM ? rc : bad(err, errlen, pre, field, "a field is missing or too long");
    a->output = q->output != 0;
  }
  if (p->n_knobs && !(t->knobs = calloc(p->n_knobs, sizeof *t->knobs))) return -ENOMEM;
  for (size_t i = 0; i < p->n_knobs; i++) {
    const Ktune__Knob *q = p->knobs[i];
    snprintf(field, sizeof field, "knobs[%zu]", i);
    if (!q) return bad(err, errlen, pre, field, "missing");
    task_knob *k = &t->knobs[t->nknobs++];
    if (!(k->name = wire_str(q->name, TASK_MAX_IDENT, &rc)))
      return rc == -ENOMEM ? rc : bad(err, errlen, pre, field, "name missing or too long");
    if (q->n_values > TASK_MAX_KNOB_VALUES)
      return bad(err, errlen, pre, field, "at most %d values allowed", TASK_MAX_KNOB_VALUES);
    if (q->n_values && !q->values) return bad(err, errlen, pre, field, "malformed values");
    if (q->n_values) {
      if (!(k->values = malloc(q->n_values * sizeof *k->values))) return -ENOMEM;
      memcpy(k->values, q->values, q->n_values * sizeof *k->values);
      k->nvalues = q->n_values;
    }
  }
  if (p->n_constraints &&
      !(t->constraints = calloc(p->n_constraints, sizeof *t->constraints)))
    return -ENOMEM;
  for (size_t i = 0; i < p->n_constraints; i++) {
    snprintf(field, sizeof field, "constraints[%zu]", i);
    if (!(t->constraints[i] = wire_str(p->constraints[i], TASK_MAX_EXPR, &rc)))
      return rc == -ENOMEM ? rc : bad(err, errlen, pre, field, "missing or too long");
    t->nconstraints++;
  }
  if ((rc = validate(t, pre, err, errlen)) < 0) return rc;
  return check_exprs(t, pre, err, errlen);
}

int task_from_proto(const Ktune__TaskSpec *p, task_spec *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (!p) return bad(err, errlen, "task spec", NULL, "missing");
  int rc = from_proto(p, out, err, errlen);
  if (rc == -ENOMEM) bad(err, errlen, "task spec", NULL, "out of memory");
  if (rc < 0) task_free(out);
  return rc;
}

void task_free(task_spec *t) {
  if (!t) return;
  free(t->name);
  free(t->source);
  free(t->entry);
  free(t->reference);
  free(t->flops);
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
  for (size_t i = 0; i < t->nconstraints; i++) free(t->constraints[i]);
  free(t->constraints);
  memset(t, 0, sizeof *t);
}
