/* Shared by the task modules (task.c: checks, evaluation, wire form;
 * task_load.c: JSON files) and by nothing else. */
#ifndef KTUNE_TASK_INT_H
#define KTUNE_TASK_INT_H

#include <stddef.h>

#include "common/expr.h"
#include "common/task.h"

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
/* Each is one more number per config the cost model learns from. */
#define TASK_MAX_FEATURES 64

int task_is_ident(const char *s);
/* float, double, int32 or int64. */
int task_known_type(const char *s);
/* The structural and expression checks every spec goes through, whether
 * it came from a file or the network; errors start with prefix. */
int task_verify(const task_spec *t, const char *prefix, char *err, size_t errlen);

#endif
