/* Recursive descent over the C precedence ladder. && and || short-circuit:
 * the side that is not evaluated is still parsed, and its syntax errors and
 * unknown names are still reported, but its arithmetic errors (division by
 * zero, overflow) are not, so "N != 0 && M % N == 0" works. */
#include "common/expr.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

/* Deep enough for any real spec; shallow enough that hostile input cannot
 * exhaust the stack (each level is a handful of small frames). */
#define EXPR_MAX_DEPTH 64

typedef struct {
  const char *src;
  size_t pos;
  expr_lookup_fn lookup;
  void *ctx;
  char *err;
  size_t errlen;
  int depth;
  int skip; /* > 0 inside an unevaluated && / || operand */
  int failed;
} parser;

static int fail(parser *p, size_t at, const char *fmt, ...) {
  if (p->failed) return -EINVAL;
  p->failed = 1;
  if (p->err && p->errlen) {
    int n = snprintf(p->err, p->errlen, "at %zu: ", at + 1);
    if (n >= 0 && (size_t)n < p->errlen) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
      va_end(ap);
    }
  }
  return -EINVAL;
}

/* Arithmetic failures only count on the evaluated side. */
static int arith_fail(parser *p, size_t at, const char *what, int64_t *out) {
  if (p->skip) {
    *out = 0;
    return 0;
  }
  return fail(p, at, "%s", what);
}

static void skip_ws(parser *p) {
  for (;;) {
    char c = p->src[p->pos];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v')
      p->pos++;
    else
      return;
  }
}

static int is_ident_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static int is_ident(char c) { return is_ident_start(c) || (c >= '0' && c <= '9'); }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Describes the character at pos for "unexpected" messages. */
static int fail_unexpected(parser *p, const char *expected) {
  char c = p->src[p->pos];
  if (c == '\0') return fail(p, p->pos, "expected %s, got end of input", expected);
  if ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7f)
    return fail(p, p->pos, "expected %s, got '%c'", expected, c);
  return fail(p, p->pos, "expected %s, got byte 0x%02x", expected, (unsigned char)c);
}

static int accept(parser *p, const char *tok) {
  skip_ws(p);
  size_t i = 0;
  while (tok[i] && p->src[p->pos + i] == tok[i]) i++;
  if (tok[i]) return 0;
  p->pos += i;
  return 1;
}

static int parse_or(parser *p, int64_t *out);

static int parse_call(parser *p, int is_min, int64_t *out) {
  int64_t a, b;
  int rc;
  if ((rc = parse_or(p, &a)) < 0) return rc;
  if (!accept(p, ",")) return fail_unexpected(p, "','");
  if ((rc = parse_or(p, &b)) < 0) return rc;
  if (!accept(p, ")")) return fail_unexpected(p, "')'");
  *out = is_min ? (a < b ? a : b) : (a > b ? a : b);
  return 0;
}

static int parse_primary(parser *p, int64_t *out) {
  skip_ws(p);
  size_t at = p->pos;
  char c = p->src[at];
  if (is_digit(c)) {
    int64_t v = 0;
    while (is_digit(p->src[p->pos])) {
      if (__builtin_mul_overflow(v, 10, &v) ||
          __builtin_add_overflow(v, p->src[p->pos] - '0', &v))
        return fail(p, at, "integer literal out of range");
      p->pos++;
    }
    /* "12abc" is a typo, not 12 followed by a name. */
    if (is_ident(p->src[p->pos])) return fail(p, p->pos, "malformed number");
    *out = v;
    return 0;
  }
  if (is_ident_start(c)) {
    size_t len = 0;
    while (is_ident(p->src[at + len])) len++;
    p->pos = at + len;
    int is_min = len == 3 && p->src[at] == 'm' && p->src[at + 1] == 'i' && p->src[at + 2] == 'n';
    int is_max = len == 3 && p->src[at] == 'm' && p->src[at + 1] == 'a' && p->src[at + 2] == 'x';
    if ((is_min || is_max) && accept(p, "(")) return parse_call(p, is_min, out);
    int64_t v = 0;
    if (!p->lookup || p->lookup(p->ctx, p->src + at, len, &v) != 0) {
      int shown = len > 64 ? 64 : (int)len;
      return fail(p, at, "unknown name '%.*s'%s", shown, p->src + at, len > 64 ? "..." : "");
    }
    *out = v;
    return 0;
  }
  if (c == '(') {
    p->pos++;
    int rc = parse_or(p, out);
    if (rc < 0) return rc;
    if (!accept(p, ")")) return fail_unexpected(p, "')'");
    return 0;
  }
  if (c == ')') return fail(p, at, "unbalanced ')'");
  return fail_unexpected(p, "a number, a name or '('");
}

static int parse_unary(parser *p, int64_t *out) {
  skip_ws(p);
  size_t at = p->pos;
  char c = p->src[at];
  if (++p->depth > EXPR_MAX_DEPTH) return fail(p, at, "expression nested too deeply");
  int rc;
  if (c == '-' || c == '!') {
    p->pos++;
    int64_t v;
    if ((rc = parse_unary(p, &v)) < 0) return rc;
    if (c == '!')
      *out = !v;
    else if (v == INT64_MIN)
      rc = arith_fail(p, at, "overflow in negation", out);
    else
      *out = -v;
  } else {
    rc = parse_primary(p, out);
  }
  p->depth--;
  return rc;
}

static int parse_mul(parser *p, int64_t *out) {
  int rc = parse_unary(p, out);
  while (rc == 0) {
    skip_ws(p);
    size_t at = p->pos;
    char op = p->src[at];
    if (op != '*' && op != '/' && op != '%') break;
    p->pos++;
    int64_t r;
    if ((rc = parse_unary(p, &r)) < 0) break;
    if (op == '*') {
      if (__builtin_mul_overflow(*out, r, out))
        rc = arith_fail(p, at, "overflow in '*'", out);
    } else if (r == 0) {
      rc = arith_fail(p, at, op == '/' ? "division by zero" : "modulo by zero", out);
    } else if (*out == INT64_MIN && r == -1) {
      rc = arith_fail(p, at, op == '/' ? "overflow in '/'" : "overflow in '%'", out);
    } else {
      *out = op == '/' ? *out / r : *out % r;
    }
  }
  return rc;
}

static int parse_add(parser *p, int64_t *out) {
  int rc = parse_mul(p, out);
  while (rc == 0) {
    skip_ws(p);
    size_t at = p->pos;
    char op = p->src[at];
    if (op != '+' && op != '-') break;
    p->pos++;
    int64_t r;
    if ((rc = parse_mul(p, &r)) < 0) break;
    int ovf = op == '+' ? __builtin_add_overflow(*out, r, out)
                        : __builtin_sub_overflow(*out, r, out);
    if (ovf) rc = arith_fail(p, at, op == '+' ? "overflow in '+'" : "overflow in '-'", out);
  }
  return rc;
}

static int parse_rel(parser *p, int64_t *out) {
  int rc = parse_add(p, out);
  while (rc == 0) {
    skip_ws(p);
    char c = p->src[p->pos];
    if (c != '<' && c != '>') break;
    int le = p->src[p->pos + 1] == '=';
    p->pos += le ? 2 : 1;
    int64_t r;
    if ((rc = parse_add(p, &r)) < 0) break;
    if (c == '<')
      *out = le ? *out <= r : *out < r;
    else
      *out = le ? *out >= r : *out > r;
  }
  return rc;
}

static int parse_eq(parser *p, int64_t *out) {
  int rc = parse_rel(p, out);
  while (rc == 0) {
    int eq;
    if (accept(p, "=="))
      eq = 1;
    else if (accept(p, "!="))
      eq = 0;
    else
      break;
    int64_t r;
    if ((rc = parse_rel(p, &r)) < 0) break;
    *out = eq ? *out == r : *out != r;
  }
  return rc;
}

static int parse_and(parser *p, int64_t *out) {
  int rc = parse_eq(p, out);
  while (rc == 0 && accept(p, "&&")) {
    int lazy = *out == 0;
    int64_t r;
    p->skip += lazy;
    rc = parse_eq(p, &r);
    p->skip -= lazy;
    if (rc < 0) break;
    *out = !lazy && r != 0;
  }
  return rc;
}

static int parse_or(parser *p, int64_t *out) {
  int rc = parse_and(p, out);
  while (rc == 0 && accept(p, "||")) {
    int lazy = *out != 0;
    int64_t r;
    p->skip += lazy;
    rc = parse_and(p, &r);
    p->skip -= lazy;
    if (rc < 0) break;
    *out = lazy || r != 0;
  }
  return rc;
}

static int run(const char *src, expr_lookup_fn lookup, void *ctx, int skip, int64_t *out,
               char *err, size_t errlen) {
  parser p = {.src = src, .lookup = lookup, .ctx = ctx, .err = err, .errlen = errlen,
              .skip = skip};
  if (err && errlen) err[0] = '\0';
  if (!src) return fail(&p, 0, "expected an expression, got nothing");
  int64_t v = 0;
  int rc = parse_or(&p, &v);
  if (rc < 0) return rc;
  skip_ws(&p);
  if (src[p.pos] == ')') return fail(&p, p.pos, "unbalanced ')'");
  if (src[p.pos] == '=') return fail(&p, p.pos, "'=' is not an operator (did you mean '=='?)");
  if (src[p.pos] != '\0') return fail_unexpected(&p, "an operator or end of input");
  if (out) *out = v;
  return 0;
}

int expr_eval(const char *src, expr_lookup_fn lookup, void *ctx, int64_t *out,
              char *err, size_t errlen) {
  return run(src, lookup, ctx, 0, out, err, errlen);
}

int expr_check(const char *src, expr_lookup_fn lookup, void *ctx, char *err, size_t errlen) {
  return run(src, lookup, ctx, 1, NULL, err, errlen);
}
