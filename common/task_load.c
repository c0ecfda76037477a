/* Task specs from JSON files: every field checked for its type and
 * bounds, with errors that name the file and the field
 * ("FILE: FIELD: what was expected"), then the same checks a spec from the
 * network gets (task_verify). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/task.h"
#include "common/task_int.h"

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
    return task_bad(l->err, l->errlen, l->file, field, "missing (expected %s)", expected);
  }
  if (!json_is_string(v))
    return task_bad(l->err, l->errlen, l->file, field, "expected %s, got %s", expected, json_kind(v));
  if (!(*out = strdup(json_string_value(v)))) return -ENOMEM;
  return 0;
}

/* An expression field: a string, or an integer for convenience. */
static int get_expr(loader *l, json_t *obj, const char *key, const char *field, int required,
                    const char *expected, char **out) {
  json_t *v = json_object_get(obj, key);
  *out = NULL;
  if (v && json_is_integer(v)) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
    return (*out = strdup(buf)) ? 0 : -ENOMEM;
  }
  return get_string(l, obj, key, field, required, expected, out);
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
    return task_bad(l->err, l->errlen, l->file, field, "unknown field (expected one of: %s)", list);
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
    return task_bad(l->err, l->errlen, l->file, "source", "path too long");
  struct stat st;
  if (stat(path, &st) != 0)
    return task_bad(l->err, l->errlen, l->file, "source", "'%s' does not exist (looked for %s)", rel,
               path);
  if (!S_ISREG(st.st_mode))
    return task_bad(l->err, l->errlen, l->file, "source", "%s is not a regular file", path);
  if ((uint64_t)st.st_size > TASK_MAX_SOURCE)
    return task_bad(l->err, l->errlen, l->file, "source", "%s is larger than %u bytes", path,
               TASK_MAX_SOURCE);
  FILE *f = fopen(path, "rb");
  if (!f)
    return task_bad(l->err, l->errlen, l->file, "source", "cannot open %s: %s", path,
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
    return task_bad(l->err, l->errlen, l->file, "source", "cannot read %s", path);
  }
  buf[got] = '\0';
  if (memchr(buf, '\0', got)) {
    free(buf);
    return task_bad(l->err, l->errlen, l->file, "source", "%s contains a NUL byte; expected C text",
               path);
  }
  if (got == 0) {
    free(buf);
    return task_bad(l->err, l->errlen, l->file, "source", "%s is empty", path);
  }
  *out = buf;
  return 0;
}

static int load_consts(loader *l, json_t *root, task_spec *t) {
  json_t *obj = json_object_get(root, "constants");
  if (!obj) return 0;
  if (!json_is_object(obj))
    return task_bad(l->err, l->errlen, l->file, "constants",
               "expected an object of name: integer, got %s", json_kind(obj));
  size_t n = json_object_size(obj);
  if (n > TASK_MAX_CONSTS)
    return task_bad(l->err, l->errlen, l->file, "constants", "at most %d allowed", TASK_MAX_CONSTS);
  if (n && !(t->consts = calloc(n, sizeof *t->consts))) return -ENOMEM;
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    char field[96];
    snprintf(field, sizeof field, "constants.%.64s", key);
    if (!json_is_integer(v))
      return task_bad(l->err, l->errlen, l->file, field, "expected an integer, got %s", json_kind(v));
    if (!task_is_ident(key))
      return task_bad(l->err, l->errlen, l->file, field, "expected a C identifier as the name");
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
    return task_bad(l->err, l->errlen, l->file, "knobs",
               "expected an object of name: [integer values], got %s", json_kind(obj));
  size_t n = json_object_size(obj);
  if (n > TASK_MAX_KNOBS)
    return task_bad(l->err, l->errlen, l->file, "knobs", "at most %d allowed", TASK_MAX_KNOBS);
  if (n && !(t->knobs = calloc(n, sizeof *t->knobs))) return -ENOMEM;
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    char field[96];
    snprintf(field, sizeof field, "knobs.%.64s", key);
    if (!task_is_ident(key))
      return task_bad(l->err, l->errlen, l->file, field, "expected a C identifier as the name");
    if (!json_is_array(v) || json_array_size(v) == 0)
      return task_bad(l->err, l->errlen, l->file, field,
                 "expected a non-empty array of integer values, got %s",
                 json_is_array(v) ? "an empty array" : json_kind(v));
    size_t nv = json_array_size(v);
    if (nv > TASK_MAX_KNOB_VALUES)
      return task_bad(l->err, l->errlen, l->file, field, "at most %d values allowed",
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
        return task_bad(l->err, l->errlen, l->file, efield, "expected an integer, got %s",
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
    return task_bad(l->err, l->errlen, l->file, "args",
               "missing (expected an array of {name, type, count, output})");
  if (!json_is_array(arr))
    return task_bad(l->err, l->errlen, l->file, "args", "expected an array, got %s", json_kind(arr));
  size_t n = json_array_size(arr);
  if (n == 0)
    return task_bad(l->err, l->errlen, l->file, "args", "expected at least one buffer argument");
  if (n > TASK_MAX_ARGS)
    return task_bad(l->err, l->errlen, l->file, "args", "at most %d allowed", TASK_MAX_ARGS);
  if (!(t->args = calloc(n, sizeof *t->args))) return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    json_t *a = json_array_get(arr, i);
    char where[32], field[64];
    snprintf(where, sizeof where, "args[%zu]", i);
    if (!json_is_object(a))
      return task_bad(l->err, l->errlen, l->file, where,
                 "expected an object {name, type, count, output}, got %s", json_kind(a));
    int rc = check_keys(l, a, where, keys);
    if (rc < 0) return rc;
    task_arg *ta = &t->args[t->nargs++];
    snprintf(field, sizeof field, "%s.name", where);
    if ((rc = get_string(l, a, "name", field, 1, "the parameter name", &ta->name)) < 0) return rc;
    snprintf(field, sizeof field, "%s.type", where);
    if ((rc = get_string(l, a, "type", field, 1, "float, double, int32 or int64", &ta->type)) < 0)
      return rc;
    if (!task_known_type(ta->type))
      return task_bad(l->err, l->errlen, l->file, field,
                 "unknown type '%.32s' (expected float, double, int32 or int64)", ta->type);
    snprintf(field, sizeof field, "%s.count", where);
    if ((rc = get_expr(l, a, "count", field, 1, "an element count expression such as \"M*N\"",
                       &ta->count)) < 0)
      return rc;
    json_t *o = json_object_get(a, "output");
    if (o && !json_is_boolean(o)) {
      snprintf(field, sizeof field, "%s.output", where);
      return task_bad(l->err, l->errlen, l->file, field, "expected true or false, got %s",
                 json_kind(o));
    }
    ta->output = o && json_is_true(o);
  }
  return 0;
}

/* An optional array of expression strings over knobs and constants
 * (constraints, features). */
static int load_exprs(loader *l, json_t *root, const char *key, size_t max, char ***out,
                      size_t *n) {
  json_t *arr = json_object_get(root, key);
  if (!arr) return 0;
  if (!json_is_array(arr))
    return task_bad(l->err, l->errlen, l->file, key,
               "expected an array of expression strings, got %s", json_kind(arr));
  size_t len = json_array_size(arr);
  if (len > max) return task_bad(l->err, l->errlen, l->file, key, "at most %zu allowed", max);
  if (len && !(*out = calloc(len, sizeof **out))) return -ENOMEM;
  for (size_t i = 0; i < len; i++) {
    json_t *c = json_array_get(arr, i);
    if (!json_is_string(c)) {
      char field[64];
      snprintf(field, sizeof field, "%s[%zu]", key, i);
      return task_bad(l->err, l->errlen, l->file, field, "expected an expression string, got %s",
                 json_kind(c));
    }
    if (!((*out)[i] = strdup(json_string_value(c)))) return -ENOMEM;
    (*n)++;
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
    return task_bad(l->err, l->errlen, l->file, "tolerance", "expected {\"rtol\": R, \"atol\": A}, got %s",
               json_kind(obj));
  int rc = check_keys(l, obj, "tolerance", keys);
  if (rc < 0) return rc;
  for (int i = 0; i < 2; i++) {
    json_t *v = json_object_get(obj, keys[i]);
    if (!v) continue;
    char field[32];
    snprintf(field, sizeof field, "tolerance.%s", keys[i]);
    if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < 0)
      return task_bad(l->err, l->errlen, l->file, field, "expected a finite number >= 0, got %s",
                 json_is_number(v) ? "a negative number" : json_kind(v));
    *(i ? &t->atol : &t->rtol) = json_number_value(v);
  }
  return 0;
}

static int load_root(loader *l, const char *path, json_t *root, task_spec *t) {
  static const char *const keys[] = {"name",  "source",      "entry", "reference",
                                     "constants", "args",     "knobs", "constraints",
                                     "features", "flops", "bytes", "tolerance",
                                     "description", NULL};
  if (!json_is_object(root))
    return task_bad(l->err, l->errlen, l->file, NULL, "expected a JSON object at the top level");
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
      (rc = load_knobs(l, root, t)) < 0 ||
      (rc = load_exprs(l, root, "constraints", TASK_MAX_CONSTRAINTS, &t->constraints,
                       &t->nconstraints)) < 0 ||
      (rc = load_exprs(l, root, "features", TASK_MAX_FEATURES, &t->features, &t->nfeatures)) < 0 ||
      (rc = get_expr(l, root, "flops", "flops", 1,
                     "a FLOP count expression such as \"2*M*N*K\"", &t->flops)) < 0 ||
      (rc = get_expr(l, root, "bytes", "bytes", 0,
                     "a byte count expression such as \"2 * M * N * 4\"", &t->bytes)) < 0 ||
      (rc = load_tolerance(l, root, t)) < 0) {
    free(rel);
    free(desc);
    return rc;
  }
  free(desc);
  if (!*rel) {
    free(rel);
    return task_bad(l->err, l->errlen, l->file, "source", "expected the template file name, got \"\"");
  }
  rc = read_source(l, path, rel, &t->source);
  free(rel);
  if (rc < 0) return rc;
  return task_verify(t, l->file, l->err, l->errlen);
}

int task_load(const char *path, task_spec *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (!path || !*path) return task_bad(err, errlen, "task", NULL, "no spec file given");
  loader l = {.file = path, .err = err, .errlen = errlen};
  struct stat st;
  if (stat(path, &st) != 0)
    return task_bad(err, errlen, path, NULL, "cannot open: %s", strerror(errno));
  if (!S_ISREG(st.st_mode)) return task_bad(err, errlen, path, NULL, "not a regular file");
  json_error_t jerr;
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
  if (!root)
    return task_bad(err, errlen, path, NULL, "line %d column %d: %s (expected a JSON task spec)",
               jerr.line, jerr.column, jerr.text);
  int rc = load_root(&l, path, root, out);
  json_decref(root);
  if (rc == -ENOMEM) task_bad(err, errlen, path, NULL, "out of memory");
  if (rc < 0) task_free(out);
  return rc;
}

