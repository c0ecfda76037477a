/* Recursive descent over the C precedence ladder. && and || short-circuit:
 * the side that is not evaluated is still parsed, and its syntax errors and
 * unknown names are still reported, but its arithmetic errors (division by
 * zero, overflow) are not, so "N != 0 && M % N == 0" works. */
#include "common/expr.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deep enough for any real spec; shallow enough that hostile input cannot
 * exhaust the stack (each level is a handful of small frames). */
#define EXPR_MAX_DEPTH 64
/* Values a compiled expression can hold at once: at most 7 per nesting
 * level (one pending left operand per precedence level, and min's first
 * argument), so EXPR_MAX_DEPTH bounds it well below this. */
#define EXPR_MAX_STACK 512

/* Bytecode: a postfix program over a value stack. && and || jump over
 * their right side, so a side that C would not evaluate never runs. */
enum {
  OP_PUSH,  /* arg: a number or a constant's value */
  OP_LOAD,  /* arg: the slot of a variable */
  OP_NEG,
  OP_NOT,
  OP_BOOL,  /* top = top != 0: the value of a finished && or || */
  OP_ANDJ,  /* top == 0: leave it, jump to arg; else drop it */
  OP_ORJ,   /* top != 0: make it 1, jump to arg; else drop it */
  OP_BIN,   /* arg: the operator (see binop) */
};

typedef struct {
  uint8_t op;
  uint32_t pos; /* byte offset of the operator, for messages */
  int64_t arg;
} expr_op;

struct expr_prog {
  expr_op *code;
  size_t n, cap;
  size_t *parts; /* start and end of each top-level && operand */
  size_t nparts;
};

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
  /* compiling: names resolve through resolve, and code goes to prog */
  expr_prog *prog;
  expr_resolve_fn resolve;
  int depth_now, depth_max; /* run-time stack depth of the code so far */
} parser;

/* "at POS: reason", POS 1-based. */
static void vsay(char *err, size_t errlen, size_t at, const char *fmt, va_list ap) {
  if (!err || !errlen) return;
  int n = snprintf(err, errlen, "at %zu: ", at + 1);
  if (n >= 0 && (size_t)n < errlen) vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
}

static int fail(parser *p, size_t at, const char *fmt, ...) {
  if (p->failed) return -EINVAL;
  p->failed = 1;
  va_list ap;
  va_start(ap, fmt);
  vsay(p->err, p->errlen, at, fmt, ap);
  va_end(ap);
  return -EINVAL;
}

/* Appends an op when compiling; `effect` is its change to the run-time
 * stack depth. Returns the op's place in the code, or -1 on failure. */
static long emit(parser *p, int op, int64_t arg, size_t pos, int effect) {
  expr_prog *g = p->prog;
  if (!g) return 0;
  if (g->n == g->cap) {
    size_t cap = g->cap ? 2 * g->cap : 32;
    expr_op *c = realloc(g->code, cap * sizeof *c);
    if (!c) return fail(p, pos, "out of memory"), -1;
    g->code = c;
    g->cap = cap;
  }
  p->depth_now += effect;
  if (p->depth_now > p->depth_max) p->depth_max = p->depth_now;
  g->code[g->n] = (expr_op){.op = (uint8_t)op, .pos = (uint32_t)pos, .arg = arg};
  return (long)g->n++;
}

/* Sets the target of the jump at `at` to the end of the code so far. */
static void patch(parser *p, long at) {
  if (p->prog && at >= 0) p->prog->code[at].arg = (int64_t)p->prog->n;
}

/* Binary operators, shared by the evaluator and the bytecode: 'l' is <=,
 * 'g' >=, '=' ==, 'n' !=, 'm' min, 'M' max. Returns NULL or why the
 * operation fails. */
static const char *binop(int op, int64_t a, int64_t b, int64_t *out) {
  switch (op) {
  case '*': return __builtin_mul_overflow(a, b, out) ? "overflow in '*'" : NULL;
  case '+': return __builtin_add_overflow(a, b, out) ? "overflow in '+'" : NULL;
  case '-': return __builtin_sub_overflow(a, b, out) ? "overflow in '-'" : NULL;
  case '/':
  case '%':
    if (b == 0) return op == '/' ? "division by zero" : "modulo by zero";
    if (a == INT64_MIN && b == -1) return op == '/' ? "overflow in '/'" : "overflow in '%'";
    *out = op == '/' ? a / b : a % b;
    return NULL;
  case '<': *out = a < b; return NULL;
  case 'l': *out = a <= b; return NULL;
  case '>': *out = a > b; return NULL;
  case 'g': *out = a >= b; return NULL;
  case '=': *out = a == b; return NULL;
  case 'n': *out = a != b; return NULL;
  case 'm': *out = a < b ? a : b; return NULL;
  default: *out = a > b ? a : b; return NULL;
  }
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

/* *out = *out OP r, and the same in the code. */
static int apply(parser *p, int op, size_t at, int64_t r, int64_t *out) {
  const char *why = binop(op, *out, r, out);
  int rc = why ? arith_fail(p, at, why, out) : 0;
  if (rc == 0 && emit(p, OP_BIN, op, at, -1) < 0) rc = -EINVAL;
  return rc;
}

static int parse_call(parser *p, int is_min, int64_t *out) {
  int64_t a, b;
  int rc;
  if ((rc = parse_or(p, &a)) < 0) return rc;
  if (!accept(p, ",")) return fail_unexpected(p, "','");
  if ((rc = parse_or(p, &b)) < 0) return rc;
  if (!accept(p, ")")) return fail_unexpected(p, "')'");
  binop(is_min ? 'm' : 'M', a, b, out);
  return emit(p, OP_BIN, is_min ? 'm' : 'M', p->pos, -1) < 0 ? -EINVAL : 0;
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
    return emit(p, OP_PUSH, v, at, 1) < 0 ? -EINVAL : 0;
  }
  if (is_ident_start(c)) {
    size_t len = 0;
    while (is_ident(p->src[at + len])) len++;
    p->pos = at + len;
    int is_min = len == 3 && p->src[at] == 'm' && p->src[at + 1] == 'i' && p->src[at + 2] == 'n';
    int is_max = len == 3 && p->src[at] == 'm' && p->src[at + 1] == 'a' && p->src[at + 2] == 'x';
    if ((is_min || is_max) && accept(p, "(")) return parse_call(p, is_min, out);
    int64_t v = 0;
    int slot = -1;
    int known = p->prog ? p->resolve && p->resolve(p->ctx, p->src + at, len, &v, &slot) == 0
                        : p->lookup && p->lookup(p->ctx, p->src + at, len, &v) == 0;
    if (!known) {
      int shown = len > 64 ? 64 : (int)len;
      return fail(p, at, "unknown name '%.*s'%s", shown, p->src + at, len > 64 ? "..." : "");
    }
    *out = v;
    if (slot >= 0) return emit(p, OP_LOAD, slot, at, 1) < 0 ? -EINVAL : 0;
    return emit(p, OP_PUSH, v, at, 1) < 0 ? -EINVAL : 0;
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
    if (rc == 0 && emit(p, c == '!' ? OP_NOT : OP_NEG, 0, at, 0) < 0) rc = -EINVAL;
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
    rc = apply(p, op, at, r, out);
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
    rc = apply(p, op, at, r, out);
  }
  return rc;
}

static int parse_rel(parser *p, int64_t *out) {
  int rc = parse_add(p, out);
  while (rc == 0) {
    skip_ws(p);
    size_t at = p->pos;
    char c = p->src[at];
    if (c != '<' && c != '>') break;
    int le = p->src[at + 1] == '=';
    p->pos += le ? 2 : 1;
    int64_t r;
    if ((rc = parse_add(p, &r)) < 0) break;
    rc = apply(p, le ? (c == '<' ? 'l' : 'g') : c, at, r, out);
  }
  return rc;
}

static int parse_eq(parser *p, int64_t *out) {
  int rc = parse_rel(p, out);
  while (rc == 0) {
    int op;
    skip_ws(p);
    size_t at = p->pos;
    if (accept(p, "=="))
      op = '=';
    else if (accept(p, "!="))
      op = 'n';
    else
      break;
    int64_t r;
    if ((rc = parse_rel(p, &r)) < 0) break;
    rc = apply(p, op, at, r, out);
  }
  return rc;
}

/* One && or || operand: `lazy` when its value cannot change the result.
 * The code jumps over it in the same case. */
static int parse_lazy(parser *p, int is_and, int lazy, int (*side)(parser *, int64_t *),
                      int64_t *r) {
  long jump = emit(p, is_and ? OP_ANDJ : OP_ORJ, 0, p->pos, -1);
  if (jump < 0) return -EINVAL;
  p->skip += lazy;
  int rc = side(p, r);
  p->skip -= lazy;
  if (rc == 0 && emit(p, OP_BOOL, 0, p->pos, 0) < 0) rc = -EINVAL;
  patch(p, jump);
  return rc;
}

static int parse_and(parser *p, int64_t *out) {
  int rc = parse_eq(p, out);
  while (rc == 0 && accept(p, "&&")) {
    int lazy = *out == 0;
    int64_t r;
    if ((rc = parse_lazy(p, 1, lazy, parse_eq, &r)) < 0) break;
    *out = !lazy && r != 0;
  }
  return rc;
}

static int parse_or(parser *p, int64_t *out) {
  int rc = parse_and(p, out);
  while (rc == 0 && accept(p, "||")) {
    int lazy = *out != 0;
    int64_t r;
    if ((rc = parse_lazy(p, 0, lazy, parse_and, &r)) < 0) break;
    *out = lazy || r != 0;
  }
  return rc;
}

/* Parses the whole text; the caller's parser says how (evaluate, check or
 * compile). */
static int run(parser *p, int64_t *out) {
  if (p->err && p->errlen) p->err[0] = '\0';
  if (!p->src) return fail(p, 0, "expected an expression, got nothing");
  const char *src = p->src;
  int64_t v = 0;
  int rc = parse_or(p, &v);
  if (rc < 0) return rc;
  skip_ws(p);
  if (src[p->pos] == ')') return fail(p, p->pos, "unbalanced ')'");
  if (src[p->pos] == '=') return fail(p, p->pos, "'=' is not an operator (did you mean '=='?)");
  if (src[p->pos] != '\0') return fail_unexpected(p, "an operator or end of input");
  if (out) *out = v;
  return 0;
}

int expr_eval(const char *src, expr_lookup_fn lookup, void *ctx, int64_t *out,
              char *err, size_t errlen) {
  parser p = {.src = src, .lookup = lookup, .ctx = ctx, .err = err, .errlen = errlen};
  return run(&p, out);
}

int expr_check(const char *src, expr_lookup_fn lookup, void *ctx, char *err, size_t errlen) {
  parser p = {.src = src, .lookup = lookup, .ctx = ctx, .err = err, .errlen = errlen, .skip = 1};
  return run(&p, NULL);
}

/* The jump of the && whose result ends code[start, end), or -1: such
 * code ends with the BOOL of the right side, and only that && jumps to
 * its end (nested jumps land inside their own operand). */
static long and_jump(const expr_prog *g, size_t start, size_t end) {
  if (end - start < 2 || g->code[end - 1].op != OP_BOOL) return -1;
  for (size_t j = start; j < end - 1; j++)
    if (g->code[j].op == OP_ANDJ && g->code[j].arg == (int64_t)end) return (long)j;
  return -1;
}

/* Splits the code into its top-level && operands, left to right, through
 * any parentheses: (a && b) && c has the parts a, b, c. An explicit stack
 * instead of recursion: a chain of thousands of && is a valid input. */
static int split_parts(expr_prog *g) {
  size_t *stack = malloc(2 * (g->n + 1) * sizeof *stack);
  g->parts = malloc(2 * g->n * sizeof *g->parts);
  if (!stack || !g->parts) {
    free(stack);
    return -ENOMEM;
  }
  size_t n = 1;
  stack[0] = 0;
  stack[1] = g->n;
  while (n > 0) {
    n--;
    size_t start = stack[2 * n], end = stack[2 * n + 1];
    long j = and_jump(g, start, end);
    if (j < 0) {
      g->parts[2 * g->nparts] = start;
      g->parts[2 * g->nparts + 1] = end;
      g->nparts++;
      continue;
    }
    /* right operand first, so that the left one comes off first */
    size_t pushes[4] = {(size_t)j + 1, end - 1, start, (size_t)j};
    memcpy(stack + 2 * n, pushes, sizeof pushes);
    n += 2;
  }
  free(stack);
  return 0;
}

int expr_compile(const char *src, expr_resolve_fn resolve, void *ctx, expr_prog **out,
                 char *err, size_t errlen) {
  *out = NULL;
  expr_prog *g = calloc(1, sizeof *g);
  if (!g) return -ENOMEM;
  parser p = {.src = src, .ctx = ctx, .err = err, .errlen = errlen, .skip = 1, .prog = g,
              .resolve = resolve};
  int rc = run(&p, NULL);
  if (rc == 0 && p.depth_max > EXPR_MAX_STACK) rc = fail(&p, 0, "expression nested too deeply");
  if (rc == 0) rc = split_parts(g);
  if (rc < 0) {
    expr_free(g);
    return rc;
  }
  *out = g;
  return 0;
}

size_t expr_nparts(const expr_prog *g) { return g->nparts; }

int expr_part_slot(const expr_prog *g, size_t part, int below) {
  int best = -1;
  for (size_t i = g->parts[2 * part]; i < g->parts[2 * part + 1]; i++) {
    const expr_op *o = &g->code[i];
    if (o->op == OP_LOAD && o->arg < below && o->arg > best) best = (int)o->arg;
  }
  return best;
}

static int say(char *err, size_t errlen, size_t at, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsay(err, errlen, at, fmt, ap);
  va_end(ap);
  return -EINVAL;
}

int expr_run_part(const expr_prog *g, size_t part, const int64_t *vars, int64_t *out, char *err,
                  size_t errlen) {
  int64_t st[EXPR_MAX_STACK];
  size_t sp = 0, pc = g->parts[2 * part], end = g->parts[2 * part + 1];
  while (pc < end) {
    const expr_op *o = &g->code[pc++];
    const char *why;
    switch (o->op) {
    case OP_PUSH: st[sp++] = o->arg; break;
    case OP_LOAD: st[sp++] = vars[o->arg]; break;
    case OP_NOT: st[sp - 1] = !st[sp - 1]; break;
    case OP_BOOL: st[sp - 1] = st[sp - 1] != 0; break;
    case OP_NEG:
      if (st[sp - 1] == INT64_MIN) return say(err, errlen, o->pos, "overflow in negation");
      st[sp - 1] = -st[sp - 1];
      break;
    case OP_ANDJ:
      if (st[sp - 1] == 0)
        pc = (size_t)o->arg;
      else
        sp--;
      break;
    case OP_ORJ:
      if (st[sp - 1] != 0) {
        st[sp - 1] = 1;
        pc = (size_t)o->arg;
      } else {
        sp--;
      }
      break;
    default:
      sp--;
      if ((why = binop((int)o->arg, st[sp - 1], st[sp], &st[sp - 1])))
        return say(err, errlen, o->pos, "%s", why);
    }
  }
  *out = st[0];
  return 0;
}

int expr_run(const expr_prog *g, const int64_t *vars, int64_t *out, char *err, size_t errlen) {
  if (err && errlen) err[0] = '\0';
  if (g->nparts == 1) return expr_run_part(g, 0, vars, out, err, errlen);
  for (size_t i = 0; i < g->nparts; i++) {
    int64_t v;
    int rc = expr_run_part(g, i, vars, &v, err, errlen);
    if (rc < 0) return rc;
    if (v == 0) {
      *out = 0;
      return 0;
    }
  }
  *out = 1;
  return 0;
}

void expr_free(expr_prog *g) {
  if (!g) return;
  free(g->code);
  free(g->parts);
  free(g);
}

/* Long enough for any constraint a person writes on one line. */
#define EXPR_QUOTE_MAX 80

void expr_quote(const char *src, char *buf, size_t len) {
  size_t n = src ? strlen(src) : 0;
  if (n <= EXPR_QUOTE_MAX)
    snprintf(buf, len, "'%s'", src ? src : "");
  else
    snprintf(buf, len, "'%.*s...' (expression of %zu bytes, limit %d)", EXPR_QUOTE_MAX - 16, src,
             n, EXPR_MAX_LEN);
}
