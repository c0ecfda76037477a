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

#endif
