#include "builder/codegen.h"

#include <inttypes.h>
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

char *codegen_source(const char *task, const char *tmpl, const codegen_define *defs, size_t ndefs) {
  if (ndefs && !defs) return NULL;
  for (size_t i = 0; i < ndefs; i++) {
    if (!codegen_is_ident(defs[i].name)) return NULL;
    /* A second value for the same name would only draw a warning from the
     * compiler and silently win; refuse it instead. */
    for (size_t j = 0; j < i; j++)
      if (strcmp(defs[i].name, defs[j].name) == 0) return NULL;
  }
  codegen_buf b = {0};
  char line[128];
  int bad = 0;
  for (size_t i = 0; i < ndefs && !bad; i++) {
    int64_t v = defs[i].value;
    /* Negative values get parentheses so that `N-1` style uses stay right;
     * INT64_MIN has no literal of its own in C. */
    if (v == INT64_MIN)
      snprintf(line, sizeof line, " (-9223372036854775807LL - 1)\n");
    else if (v < 0)
      snprintf(line, sizeof line, " (%" PRId64 ")\n", v);
    else
      snprintf(line, sizeof line, " %" PRId64 "\n", v);
    bad = codegen_puts(&b, "#define ") < 0 || codegen_puts(&b, defs[i].name) < 0 ||
          codegen_puts(&b, line) < 0;
  }
  /* #line makes diagnostics point into the template as the user wrote it,
   * not into the generated text. The name goes inside a string literal, so
   * only plain characters pass through. */
  bad = bad || codegen_puts(&b, "#line 1 \"") < 0;
  const char *t = task && *task ? task : "kernel";
  for (; *t && !bad; t++) {
    char c = (*t >= 0x20 && *t < 0x7f && *t != '"' && *t != '\\') ? *t : '_';
    bad = codegen_put(&b, &c, 1) < 0;
  }
  bad = bad || codegen_puts(&b, ".c\"\n") < 0;
  if (tmpl && !bad) {
    bad = codegen_puts(&b, tmpl) < 0;
    if (!bad && b.len && b.p[b.len - 1] != '\n') bad = codegen_puts(&b, "\n") < 0;
  }
  if (bad) {
    free(b.p);
    return NULL;
  }
  return b.p;
}
