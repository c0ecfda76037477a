/* ktune's small integer expression evaluator: a task spec never executes
 * code. 64-bit signed integers; + - * / %, comparisons, && || !,
 * parentheses, min(a,b), max(a,b). Overflow, division by zero and unknown
 * names are errors that give the byte position. */
#ifndef KTUNE_EXPR_H
#define KTUNE_EXPR_H

#include <stddef.h>
#include <stdint.h>

/* Looks a name up; returns 0 and sets *out, or -1 if unknown. */
typedef int (*expr_lookup_fn)(void *ctx, const char *name, size_t len, int64_t *out);

/* Errors read "at POS: reason" (POS is 1-based, in bytes). && and ||
 * short-circuit: the skipped side must still parse and name only known
 * names, but its arithmetic errors are not raised. */
int expr_eval(const char *src, expr_lookup_fn lookup, void *ctx, int64_t *out,
              char *err, size_t errlen);

/* Parses without evaluating: reports syntax errors and unknown names but
 * no arithmetic errors, so a constraint can be checked before any config
 * exists. */
int expr_check(const char *src, expr_lookup_fn lookup, void *ctx, char *err, size_t errlen);

/* The longest expression a task spec may hold (task.c refuses longer). */
#define EXPR_MAX_LEN 4096

/* Writes src for a message: 'src' when short; when long, its head, its
 * length and EXPR_MAX_LEN, so that a reason written after it is not cut
 * off by the end of a message buffer. */
void expr_quote(const char *src, char *buf, size_t len);

/* A compiled expression, for evaluating one many times (every config of
 * a space): parsed once, then run as bytecode over an array of
 * variables. Running gives the same value, error and message as
 * expr_eval over the same names. */
typedef struct expr_prog expr_prog;

/* Resolves a name while compiling: a constant (*slot = -1, *value set) or
 * a variable read from vars[*slot] at each run. Returns 0, or -1 if the
 * name is unknown. */
typedef int (*expr_resolve_fn)(void *ctx, const char *name, size_t len, int64_t *value,
                               int *slot);

/* Reports what expr_check reports. */
int expr_compile(const char *src, expr_resolve_fn resolve, void *ctx, expr_prog **out,
                 char *err, size_t errlen);

/* The expression split at its top-level && (through parentheses) into
 * parts: it is non-zero exactly when every part is, and it evaluates them
 * left to right, stopping at the first that is 0 or fails. A part can be
 * run alone, in any order: running has no side effects. */
size_t expr_nparts(const expr_prog *g);
int expr_run_part(const expr_prog *g, size_t part, const int64_t *vars, int64_t *out,
                  char *err, size_t errlen);

/* The highest slot below `below` that a part reads, or -1. */
int expr_part_slot(const expr_prog *g, size_t part, int below);

int expr_run(const expr_prog *g, const int64_t *vars, int64_t *out, char *err, size_t errlen);
void expr_free(expr_prog *g);

#endif
