#include "builder/codegen.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int codegen_is_ident(const char *s) {
  if (!s || !(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'))) return 0;
  for (s++; *s; s++)
    if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
          (*s >= '0' && *s <= '9')))
      return 0;
  return 1;
}

/* A growable string; everything here is small, so doubling is plenty. */
typedef struct {
  char *p;
  size_t len, cap;
} codegen_buf;

static int codegen_put(codegen_buf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
  return 0;
}

static int codegen_puts(codegen_buf *b, const char *s) { return codegen_put(b, s, strlen(s)); }

/* The strings up to a NULL, one after another. */
static int codegen_putv(codegen_buf *b, ...) {
  va_list ap;
  va_start(ap, b);
  int rc = 0;
  for (const char *s; rc == 0 && (s = va_arg(ap, const char *));) rc = codegen_puts(b, s);
  va_end(ap);
  return rc;
}

/* `#define NAME VALUE`. Negative values get parentheses so that `N-1`
 * style uses stay right; INT64_MIN has no literal of its own in C. */
static int codegen_put_define(codegen_buf *b, const char *name, int64_t v) {
  char line[64];
  if (v == INT64_MIN)
    snprintf(line, sizeof line, " (-9223372036854775807LL - 1)\n");
  else if (v < 0)
    snprintf(line, sizeof line, " (%" PRId64 ")\n", v);
  else
    snprintf(line, sizeof line, " %" PRId64 "\n", v);
  return codegen_putv(b, "#define ", name, line, (char *)NULL);
}

/* `#line N "task.c"`: diagnostics point into the template as the user
 * wrote it, not into the generated text. The name goes inside a string
 * literal, so only plain characters pass through. */
static int codegen_put_line(codegen_buf *b, const char *task, size_t line) {
  char num[32];
  snprintf(num, sizeof num, "#line %zu \"", line);
  if (codegen_puts(b, num) < 0) return -1;
  for (const char *t = task && *task ? task : "kernel"; *t; t++) {
    char c = (*t >= 0x20 && *t < 0x7f && *t != '"' && *t != '\\') ? *t : '_';
    if (codegen_put(b, &c, 1) < 0) return -1;
  }
  return codegen_puts(b, ".c\"\n");
}

/* ---- Keeping the knobs out of the reference ----
 *
 * Runners compute the reference's outputs once per kernel and size and
 * compare every config with them, so a reference that reads a knob would
 * make the check depend on which config came first. Scanning the template
 * for knob names alone is not enough (templates use knobs through their own
 * macros, `MM_NR`), and compiling the template without the knobs fails on
 * the entry, which needs them. So the template is compiled once, as ever,
 * and around the reference's body (and the bodies of the template's
 * functions it calls) each knob is redefined as an undeclared name,
 * `ktune_reference_uses_knob_NAME`, and restored after it: a knob reached
 * through any macro there is a compile error naming it, and the entry still
 * sees the values. A knob named in those bodies themselves is reported
 * before compiling, which also covers `#if KNOB`, where an undeclared name
 * would quietly be 0.
 *
 * Finding function bodies needs only C's tokens (comments, literals,
 * directives, brackets), not its grammar. A template whose braces do not
 * balance outside directives (a `{` opened in each branch of an `#if`) is
 * not checked: a guessed body could put the poison inside the entry. */

#define CODEGEN_POISON "ktune_reference_uses_knob_"
#define CODEGEN_REFERENCE_RULE "; the reference must not depend on the config (docs/TASKS.md)"
/* More top-level functions than this: the template is not checked. */
#define CODEGEN_MAX_FUNCS 65536

typedef struct {
  size_t at, len;
  char kind; /* 'i' identifier, '0' number, '"' literal, else the punctuator */
  int dir;   /* part of a preprocessing directive */
} codegen_tok;

typedef struct {
  const char *s;
  size_t n, at;
  int bol, dir; /* at the start of a line; inside a directive */
} codegen_lexer;

static int codegen_ident_char(char c) {
  return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int codegen_lex(codegen_lexer *x, codegen_tok *t) {
  const char *s = x->s;
  size_t n = x->n, i = x->at;
  for (;;) {
    if (i >= n) {
      x->at = n;
      return 0;
    }
    if (s[i] == '\\' && i + 1 < n && s[i + 1] == '\n') {
      i += 2; /* a spliced line goes on: the directive too */
    } else if (s[i] == '\n') {
      x->bol = 1;
      x->dir = 0;
      i++;
    } else if (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\f' || s[i] == '\v') {
      i++;
    } else if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') {
      /* A comment is one space, even across lines: a directive goes on. */
      for (i += 2; i < n && !(s[i] == '*' && i + 1 < n && s[i + 1] == '/'); i++) {}
      i = i < n ? i + 2 : n;
    } else if (s[i] == '/' && i + 1 < n && s[i + 1] == '/') {
      while (i < n && s[i] != '\n') i++;
    } else {
      break;
    }
  }
  char c = s[i];
  t->at = i;
  if (x->bol && c == '#') x->dir = 1;
  t->dir = x->dir;
  x->bol = 0;
  if (codegen_ident_char(c) && !(c >= '0' && c <= '9')) {
    while (i < n && codegen_ident_char(s[i])) i++;
    t->kind = 'i';
  } else if ((c >= '0' && c <= '9') ||
             (c == '.' && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9')) {
    /* A pp-number, 1e-5f and 0x1p+3 included. */
    for (i++; i < n; i++) {
      if ((s[i] == '+' || s[i] == '-') && strchr("eEpP", s[i - 1])) continue;
      if (!codegen_ident_char(s[i]) && s[i] != '.') break;
    }
    t->kind = '0';
  } else if (c == '"' || c == '\'') {
    for (i++; i < n && s[i] != c && s[i] != '\n'; i++)
      if (s[i] == '\\' && i + 1 < n) i++;
    if (i < n && s[i] == c) i++;
    t->kind = '"';
  } else {
    i++;
    t->kind = c;
  }
  t->len = i - t->at;
  x->at = i;
  return 1;
}

/* A function definition at file scope: its name and its body's braces. */
typedef struct {
  size_t name, namelen, open, close;
  int marked; /* the reference, or called by a marked one */
} codegen_func;

static int codegen_keyword(const char *s, size_t len) {
  static const char *const kw[] = {"if", "for", "while", "switch", "return", "sizeof",
                                   "_Alignof", "__attribute__", "__typeof__", "typeof",
                                   "_Generic", "_Static_assert", "do", "else"};
  for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++)
    if (strlen(kw[i]) == len && memcmp(kw[i], s, len) == 0) return 1;
  return 0;
}

/* The template's function definitions, in order. Returns how many, or -1
 * when the braces do not balance, there are too many, or no memory. */
static long codegen_funcs(const char *s, size_t n, codegen_func **out) {
  codegen_lexer x = {s, n, 0, 1, 0};
  codegen_tok t;
  codegen_func *f = NULL;
  size_t nf = 0, cap = 0;
  size_t brace = 0, paren = 0, cand = 0, candlen = 0;
  int phase = 0; /* 1: a name, 2: in its (...), 3: after the ')' */
  int in_func = 0;
  while (codegen_lex(&x, &t)) {
    if (t.dir) continue;
    if (brace) {
      if (t.kind == '{') brace++;
      if (t.kind == '}' && --brace == 0 && in_func) f[nf - 1].close = t.at;
      if (!brace) in_func = 0;
      continue;
    }
    switch (t.kind) {
    case '(':
      if (phase == 1) phase = 2, paren = 1;
      else if (phase == 2) paren++;
      else phase = 0;
      break;
    case ')':
      if (phase == 2) {
        if (--paren == 0) phase = 3;
      } else {
        phase = 0;
      }
      break;
    case '{':
      brace = 1;
      if (phase == 3 && !codegen_keyword(s + cand, candlen)) {
        if (nf == CODEGEN_MAX_FUNCS) goto bad;
        if (nf == cap) {
          cap = cap ? 2 * cap : 16;
          codegen_func *p = realloc(f, cap * sizeof *f);
          if (!p) goto bad;
          f = p;
        }
        f[nf++] = (codegen_func){cand, candlen, t.at, 0, 0};
        in_func = 1;
      }
      phase = 0;
      break;
    case '}': goto bad;
    case 'i':
      if (phase != 2) cand = t.at, candlen = t.len, phase = 1;
      break;
    default:
      if (phase != 2) phase = 0;
    }
  }
  if (brace) goto bad;
  *out = f;
  return (long)nf;
bad:
  free(f);
  return -1;
}

/* Names to look up per token of a body: open addressing, linear probing. */
typedef struct {
  const char *p;
  size_t len, idx;
} codegen_slot;

typedef struct {
  codegen_slot *slot;
  size_t mask;
} codegen_table;

static size_t codegen_hash(const char *p, size_t len) {
  uint64_t h = 1469598103934665603u;
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211u;
  return (size_t)h;
}

static int codegen_table_init(codegen_table *t, size_t n) {
  size_t cap = 16;
  while (cap < 2 * n) cap *= 2;
  t->slot = calloc(cap, sizeof *t->slot);
  t->mask = cap - 1;
  return t->slot ? 0 : -1;
}

static void codegen_table_add(codegen_table *t, const char *p, size_t len, size_t idx) {
  size_t h = codegen_hash(p, len) & t->mask;
  while (t->slot[h].p) h = (h + 1) & t->mask;
  t->slot[h] = (codegen_slot){p, len, idx};
}

/* The first slot at or after *h named p; *h moves past it. NULL: no more. */
static const codegen_slot *codegen_table_next(const codegen_table *t, const char *p, size_t len,
                                              size_t *h) {
  for (; t->slot[*h].p; *h = (*h + 1) & t->mask) {
    const codegen_slot *e = &t->slot[*h];
    if (e->len == len && memcmp(e->p, p, len) == 0) {
      *h = (*h + 1) & t->mask;
      return e;
    }
  }
  return NULL;
}

/* Marks the reference's definitions and, through the names their bodies
 * use, every function they reach. The first knob any of them names goes
 * into err. Returns 1 when one does, 0 when none does, -1 without memory. */
static int codegen_mark(const char *s, codegen_func *f, size_t nf, const char *reference,
                        const codegen_define *knobs, size_t nknobs, char *err, size_t errlen) {
  size_t *todo = malloc((nf + 1) * sizeof *todo);
  codegen_table fn = {0}, kn = {0};
  int found = -1;
  if (!todo || codegen_table_init(&fn, nf) < 0 || codegen_table_init(&kn, nknobs) < 0) goto out;
  for (size_t i = 0; i < nf; i++) codegen_table_add(&fn, s + f[i].name, f[i].namelen, i);
  for (size_t k = 0; k < nknobs; k++)
    codegen_table_add(&kn, knobs[k].name, strlen(knobs[k].name), k);
  size_t ntodo = 0, h = codegen_hash(reference, strlen(reference)) & fn.mask;
  for (const codegen_slot *e; (e = codegen_table_next(&fn, reference, strlen(reference), &h));)
    f[e->idx].marked = 1, todo[ntodo++] = e->idx;
  found = 0;
  while (ntodo && !found) {
    const codegen_func *g = &f[todo[--ntodo]];
    codegen_lexer x = {s, g->close + 1, g->open, 0, 0};
    codegen_tok t;
    while (!found && codegen_lex(&x, &t)) {
      if (t.kind != 'i') continue;
      const char *p = s + t.at;
      h = codegen_hash(p, t.len) & kn.mask;
      const codegen_slot *k = codegen_table_next(&kn, p, t.len, &h);
      if (k) {
        found = 1;
        int self = g->namelen == strlen(reference) && !memcmp(s + g->name, reference, g->namelen);
        if (self)
          snprintf(err, errlen, "reference %s uses knob %s", reference, knobs[k->idx].name);
        else
          snprintf(err, errlen, "reference %s uses knob %s in %.*s, which it calls", reference,
                   knobs[k->idx].name, (int)g->namelen, s + g->name);
        break;
      }
      h = codegen_hash(p, t.len) & fn.mask;
      for (const codegen_slot *e; (e = codegen_table_next(&fn, p, t.len, &h));)
        if (!f[e->idx].marked) f[e->idx].marked = 1, todo[ntodo++] = e->idx;
    }
  }
out:
  free(todo);
  free(fn.slot);
  free(kn.slot);
  return found;
}

/* Appends the template with the poison around the marked bodies. */
static int codegen_put_guarded(codegen_buf *b, const char *task, const char *s,
                               const codegen_func *f, size_t nf, const codegen_define *knobs,
                               size_t nknobs) {
  size_t from = 0, line = 1;
  for (size_t i = 0; i < nf; i++) {
    if (!f[i].marked) continue;
    /* Directives need lines of their own: the body's braces move to the
     * next line, and #line gives them back their numbers. */
    for (int side = 0; side < 2; side++) {
      size_t at = side ? f[i].close + 1 : f[i].open;
      for (size_t j = from; j < at; j++) line += s[j] == '\n';
      if (codegen_put(b, s + from, at - from) < 0 || codegen_puts(b, "\n") < 0) return -1;
      for (size_t k = 0; k < nknobs; k++) {
        const char *nm = knobs[k].name;
        int rc = codegen_putv(b, "#undef ", nm, "\n", (char *)NULL);
        if (rc == 0)
          rc = side ? codegen_put_define(b, nm, knobs[k].value)
                    : codegen_putv(b, "#define ", nm, " " CODEGEN_POISON, nm, "\n", (char *)NULL);
        if (rc < 0) return -1;
      }
      if (codegen_put_line(b, task, line) < 0) return -1;
      from = at;
    }
  }
  return codegen_puts(b, s + from);
}

char *codegen_source_guarded(const char *task, const char *tmpl, const codegen_define *defs,
                             size_t ndefs, const char *reference, size_t nknobs, char *err,
                             size_t errlen) {
  if (err && errlen) err[0] = '\0';
  if (ndefs && !defs) return NULL;
  for (size_t i = 0; i < ndefs; i++) {
    if (!codegen_is_ident(defs[i].name)) return NULL;
    /* A second value for the same name would only draw a warning from the
     * compiler and silently win; refuse it instead. */
    for (size_t j = 0; j < i; j++)
      if (strcmp(defs[i].name, defs[j].name) == 0) return NULL;
  }
  if (nknobs > ndefs) nknobs = ndefs;
  const codegen_define *knobs = defs ? defs + (ndefs - nknobs) : NULL;
  codegen_func *f = NULL;
  long nf = 0;
  if (tmpl && nknobs && reference && codegen_is_ident(reference)) {
    char why[256];
    nf = codegen_funcs(tmpl, strlen(tmpl), &f);
    int used = nf > 0 ? codegen_mark(tmpl, f, (size_t)nf, reference, knobs, nknobs, why,
                                     sizeof why)
                      : 0;
    if (used) {
      free(f);
      if (used > 0 && err && errlen) snprintf(err, errlen, "%s%s", why, CODEGEN_REFERENCE_RULE);
      return NULL;
    }
  }
  codegen_buf b = {0};
  int bad = 0;
  for (size_t i = 0; i < ndefs && !bad; i++)
    bad = codegen_put_define(&b, defs[i].name, defs[i].value) < 0;
  bad = bad || codegen_put_line(&b, task, 1) < 0;
  if (tmpl && !bad) {
    bad = nf > 0 ? codegen_put_guarded(&b, task, tmpl, f, (size_t)nf, knobs, nknobs) < 0
                 : codegen_puts(&b, tmpl) < 0;
    if (!bad && b.len && b.p[b.len - 1] != '\n') bad = codegen_puts(&b, "\n") < 0;
  }
  free(f);
  if (bad) {
    free(b.p);
    return NULL;
  }
  return b.p;
}

char *codegen_source(const char *task, const char *tmpl, const codegen_define *defs, size_t ndefs) {
  return codegen_source_guarded(task, tmpl, defs, ndefs, NULL, 0, NULL, 0);
}

int codegen_reference_error(const char *reference, const char *diag, char *out, size_t len) {
  const char *p = diag ? strstr(diag, CODEGEN_POISON) : NULL;
  if (!p || !reference || !*reference) return 0;
  p += strlen(CODEGEN_POISON);
  size_t n = 0;
  while (codegen_ident_char(p[n]) && n < 64) n++;
  if (!n) return 0;
  /* The compiler's lines after it say where. */
  snprintf(out, len, "reference %.64s uses knob %.*s%s\n%s", reference, (int)n,
           p, CODEGEN_REFERENCE_RULE, diag);
  return 1;
}
