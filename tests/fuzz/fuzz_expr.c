/* The expression evaluator, over the names a task might have. Beyond not
 * crashing, it checks the contract expr.h states: errors read "at POS: ..."
 * with POS inside the text, expr_check accepts whatever expr_eval
 * accepts, the unevaluated side of && and || raises no arithmetic errors,
 * and a short error buffer is truncated, never overrun. */
#include <stdlib.h>
#include <string.h>

#include "common/expr.h"
#include "tests/fuzz/walk.h"

typedef struct {
  const char *src;
  size_t len;
} text;

static int lookup(void *ctx, const char *name, size_t len, int64_t *out) {
  static const struct {
    const char *name;
    int64_t value;
  } names[] = {{"M", 512},           {"N", 256},           {"K", 3},      {"TI", 16},
               {"TJ", 0},            {"NEG", -7},          {"BIG", INT64_MAX},
               {"SMALL", INT64_MIN}, {"min_tile", 4}};
  const text *t = ctx;
  /* the evaluator hands out slices of the text it was given */
  FUZZ_ASSERT(len > 0 && name >= t->src && name + len <= t->src + t->len);
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strlen(names[i].name) == len && memcmp(names[i].name, name, len) == 0) {
      *out = names[i].value;
      return 0;
    }
  return -1;
}

/* "at POS: reason" with 1 <= POS <= len + 1 */
static void check_error(const char *err, size_t len) {
  FUZZ_ASSERT(strncmp(err, "at ", 3) == 0);
  char *end = NULL;
  unsigned long long pos = strtoull(err + 3, &end, 10);
  FUZZ_ASSERT(end != err + 3 && end[0] == ':' && end[1] == ' ' && end[2] != '\0');
  FUZZ_ASSERT(pos >= 1 && pos <= len + 1);
}

/* prefix + src + suffix, NUL-terminated, in a buffer of exactly that size
 * so that ASan catches a read past the end. */
static char *wrap(const char *prefix, const char *src, size_t len, const char *suffix,
                  text *t) {
  size_t pl = strlen(prefix), sl = strlen(suffix);
  char *s = malloc(pl + len + sl + 1);
  FUZZ_ASSERT(s != NULL);
  memcpy(s, prefix, pl);
  memcpy(s + pl, src, len);
  memcpy(s + pl + len, suffix, sl + 1);
  t->src = s;
  t->len = pl + len + sl;
  return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* the evaluator reads C strings: stop at the first NUL, as it would */
  const uint8_t *nul = memchr(data, '\0', size);
  size_t len = nul ? (size_t)(nul - data) : size;
  text t;
  char *src = wrap("", (const char *)data, len, "", &t);
  char err[256];
  int64_t v = 0;

  int erc = expr_eval(src, lookup, &t, &v, err, sizeof err);
  if (erc != 0) check_error(err, len);
  int crc = expr_check(src, lookup, &t, err, sizeof err);
  if (crc != 0) check_error(err, len);
  /* check only skips arithmetic errors, so it accepts more */
  if (erc == 0) FUZZ_ASSERT(crc == 0);

  /* without a lookup every name is unknown; nothing may crash */
  int64_t unused;
  if (expr_eval(src, NULL, NULL, &unused, err, sizeof err) != 0) check_error(err, len);

  /* errors into buffers too short for them stay inside and terminated */
  char tiny[7];
  memset(tiny, 'x', sizeof tiny);
  if (expr_eval(src, lookup, &t, NULL, tiny, 1) != 0) FUZZ_ASSERT(tiny[0] == '\0');
  memset(tiny, 'x', sizeof tiny);
  if (expr_eval(src, lookup, &t, NULL, tiny, 6) != 0) FUZZ_ASSERT(memchr(tiny, '\0', 6) != NULL);
  FUZZ_ASSERT(tiny[6] == 'x');

  if (crc == 0) {
    /* a parseable expression on the skipped side of && or || raises
     * nothing, unless the extra level of nesting is one too many */
    int64_t w = -1;
    text t2;
    char *s2 = wrap("0 && (", (const char *)data, len, ")", &t2);
    if (expr_eval(s2, lookup, &t2, &w, err, sizeof err) == 0)
      FUZZ_ASSERT(w == 0);
    else
      FUZZ_ASSERT(strstr(err, "nested too deeply") != NULL);
    free(s2);
    s2 = wrap("1 || (", (const char *)data, len, ")", &t2);
    if (expr_eval(s2, lookup, &t2, &w, err, sizeof err) == 0)
      FUZZ_ASSERT(w == 1);
    else
      FUZZ_ASSERT(strstr(err, "nested too deeply") != NULL);
    free(s2);
  }
  if (erc == 0) {
    /* parentheses change nothing but depth */
    int64_t w = 0;
    text t2;
    char *s2 = wrap("(", (const char *)data, len, ")", &t2);
    if (expr_eval(s2, lookup, &t2, &w, err, sizeof err) == 0)
      FUZZ_ASSERT(w == v);
    else
      FUZZ_ASSERT(strstr(err, "nested too deeply") != NULL);
    free(s2);
  }
  free(src);
  return 0;
}
