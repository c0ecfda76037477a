/* Task specs: a kernel template, its problem constants, buffers, knobs,
 * constraints, FLOP and byte counts and reference (docs/TASKS.md). */
#ifndef KTUNE_TASK_H
#define KTUNE_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "common/expr.h"
#include "proto/ktune.pb-c.h"

typedef struct {
  char *name;
  int64_t value;
} task_param;

typedef struct {
  char *name;
  char *type;   /* float, double, int32, int64 */
  char *count;  /* expression over the constants */
  int output;
} task_arg;

typedef struct {
  char *name;
  int64_t *values;
  size_t nvalues;
} task_knob;

typedef struct {
  char *name;
  char *source;     /* template text, read from the file the spec names */
  char *entry;
  char *reference;
  char *flops;      /* expression */
  char *bytes;      /* expression: bytes one call moves; NULL when the spec gives none */
  task_param *consts;
  size_t nconsts;
  task_arg *args;
  size_t nargs;
  task_knob *knobs;
  size_t nknobs;
  char **constraints;
  size_t nconstraints;
  char **features;  /* expressions over knobs and constants a cost model learns from */
  size_t nfeatures;
  double rtol, atol;
} task_spec;

/* Reads a spec file (JSON) and the template it names. On error returns a
 * negative code and writes "FILE: FIELD: what was expected" to err. */
int task_load(const char *path, task_spec *out, char *err, size_t errlen);

/* A spec error in the one shape every task error has: "PREFIX: FIELD:
 * message" (FIELD may be NULL). Returns -EINVAL. */
int task_bad(char *err, size_t errlen, const char *prefix, const char *field, const char *fmt,
             ...) __attribute__((format(printf, 5, 6)));

/* Overrides a constant (-D NAME=VALUE); unknown names are an error. */
int task_set_const(task_spec *t, const char *name, int64_t value, char *err, size_t errlen);

/* Re-checks a spec against its current constants (call after
 * task_set_const): every buffer count, the FLOP count and the byte count
 * (when given) evaluate to a positive number, and every constraint and feature parses and names
 * only knobs and constants. Errors read "TASK: FIELD: what was expected".
 * task_load and task_from_proto run it already. */
int task_check(const task_spec *t, char *err, size_t errlen);

/* Evaluates an expression over the constants and, when knob_values is not
 * NULL, the knobs (in spec order). */
int task_eval(const task_spec *t, const int64_t *knob_values, const char *expr,
              int64_t *out, char *err, size_t errlen);

/* What the spec's `bytes` evaluates to at the current constants; 0 when
 * it gives none (or, after task_check, never otherwise). */
int64_t task_bytes(const task_spec *t);

/* Compiles an expression over the constants and knobs once, to run it for
 * many configs: expr_run(*out, knob_values, ...) gives what task_eval
 * gives. Constants are folded in at their current values (compile again
 * after task_set_const); knob i reads vars[i]. Errors are expr_check's. */
int task_compile(const task_spec *t, const char *expr, expr_prog **out, char *err,
                 size_t errlen);

/* Conversion to and from the wire form. task_to_proto allocates into *out
 * (free with task_proto_free, never with ktune__task_spec__free_unpacked);
 * task_from_proto copies, treats the message as untrusted and runs the
 * same checks as task_load. */
int task_to_proto(const task_spec *t, Ktune__TaskSpec **out);
void task_proto_free(Ktune__TaskSpec *p);
int task_from_proto(const Ktune__TaskSpec *p, task_spec *out, char *err, size_t errlen);

void task_free(task_spec *t);

#endif
