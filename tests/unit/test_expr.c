#include "common/expr.h"

#include "tests/test.h"

/* Names: M=512, N=0, K=7, BIG=INT64_MAX, SMALL=INT64_MIN. */
static int lookup(void *ctx, const char *name, size_t len, int64_t *out) {
  (void)ctx;
  static const struct {
    const char *n;
    int64_t v;
  } names[] = {{"M", 512}, {"N", 0}, {"K", 7}, {"BIG", INT64_MAX}, {"SMALL", INT64_MIN},
               {"_x9", 3}};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (strlen(names[i].n) == len && memcmp(names[i].n, name, len) == 0) {
      *out = names[i].v;
      return 0;
    }
  return -1;
}

static const struct {
  const char *src;
  int64_t want;
} value_cases[] = {
      {"0", 0},
      {"42", 42},
      {"  42  ", 42},
      {"9223372036854775807", INT64_MAX},
      {"1+2*3", 7},
      {"(1+2)*3", 9},
      {"10-4-3", 3},
      {"100/10/5", 2},
      {"7%3", 1},
      {"-7/2", -3},
      {"-7%3", -1},
      {"-3", -3},
      {"--3", 3},
      {"- -3", 3},
      {"!0", 1},
      {"!5", 0},
      {"!!5", 1},
      {"-M", -512},
      {"2*M*M*K", 2 * 512 * 512 * 7},
      {"M % 64 == 0", 1},
      {"M % 48 == 0", 0},
      {"1<2", 1},
      {"2<2", 0},
      {"2<=2", 1},
      {"3>2", 1},
      {"2>=3", 0},
      {"1==1", 1},
      {"1!=1", 0},
      {"1<2==1", 1}, /* relational binds tighter than equality */
      {"1+1<3", 1},
      {"1 && 2", 1},
      {"1 && 0", 0},
      {"0 || 3", 1},
      {"0 || 0", 0},
      {"1 || 0 && 0", 1}, /* && binds tighter than || */
      {"min(3, 5)", 3},
      {"max(3, 5)", 5},
      {"min(max(1,2), -4)", -4},
      {"max(M, K) * 2", 1024},
      {"_x9*_x9", 9},
      {"\tM\n*\n2", 1024},
      {"BIG", INT64_MAX},
      {"SMALL", INT64_MIN},
      {"SMALL + BIG", -1},
      {"BIG - BIG", 0},
      {"SMALL / 1", INT64_MIN},
      {"-BIG - 1", INT64_MIN},
      /* short-circuit: the skipped side's arithmetic errors are not raised */
      {"N != 0 && M % N == 0", 0},
      {"N == 0 || M / N > 2", 1},
      {"0 && BIG + 1", 0},
      {"1 || SMALL / -1", 1},
      {"((((((((((1))))))))))", 1},
};

TEST(values) {
  for (size_t i = 0; i < sizeof(value_cases) / sizeof(value_cases[0]); i++) {
    char err[256] = "";
    int64_t v = -12345;
    int rc = expr_eval(value_cases[i].src, lookup, NULL, &v, err, sizeof err);
    if (rc != 0) TEST_FAIL("'%s': unexpected error %d: %s", value_cases[i].src, rc, err);
    if (v != value_cases[i].want)
      TEST_FAIL("'%s': got %lld, want %lld", value_cases[i].src, (long long)v,
                (long long)value_cases[i].want);
  }
}

static const struct {
  const char *src;
  const char *want; /* must appear in the message */
} error_cases[] = {
      {"", "at 1: expected a number, a name or '(', got end of input"},
      {"   ", "at 4: expected a number, a name or '(', got end of input"},
      {"1 + Q", "at 5: unknown name 'Q'"},
      {"M*Nope", "at 3: unknown name 'Nope'"},
      {"1/0", "at 2: division by zero"},
      {"1 % N", "at 3: modulo by zero"},
      {"SMALL / -1", "at 7: overflow in '/'"},
      {"SMALL % -1", "at 7: overflow in '%'"},
      {"BIG + 1", "at 5: overflow in '+'"},
      {"SMALL - 1", "at 7: overflow in '-'"},
      {"BIG * 2", "at 5: overflow in '*'"},
      {"-SMALL", "at 1: overflow in negation"},
      {"9223372036854775808", "at 1: integer literal out of range"},
      {"1 2", "at 3: expected an operator or end of input, got '2'"},
      {"12abc", "at 3: malformed number"},
      {"(1+2", "at 5: expected ')', got end of input"},
      {"1+2)", "at 4: unbalanced ')'"},
      {")", "at 1: unbalanced ')'"},
      {"()", "at 2: unbalanced ')'"},
      {"1 +", "at 4: expected a number, a name or '(', got end of input"},
      {"M = 1", "at 3: '=' is not an operator"},
      {"1 & 1", "at 3: expected an operator or end of input, got '&'"},
      {"min(1)", "at 6: expected ',', got ')'"},
      {"max(1,2", "at 8: expected ')', got end of input"},
      {"min", "at 1: unknown name 'min'"},
      {"1 $ 2", "at 3: expected an operator or end of input, got '$'"},
      {"1 \x01", "at 3: expected an operator or end of input, got byte 0x01"},
      /* the skipped side must still parse and name only known names */
      {"0 && Q", "at 6: unknown name 'Q'"},
      {"1 || (2", "at 8: expected ')'"},
      {"K > 1 && M % N == 0 && Q", "at 12: modulo by zero"}, /* evaluation comes first */
      {"M > 1 && (K == 7 && 5 / N)", "at 23: division by zero"},
};

TEST(errors) {
  for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
    char err[256] = "";
    int64_t v = 77;
    int rc = expr_eval(error_cases[i].src, lookup, NULL, &v, err, sizeof err);
    if (rc >= 0) TEST_FAIL("'%s': expected an error, got %lld", error_cases[i].src, (long long)v);
    if (!strstr(err, error_cases[i].want))
      TEST_FAIL("'%s': message \"%s\" lacks \"%s\"", error_cases[i].src, err,
                error_cases[i].want);
    if (v != 77) TEST_FAIL("'%s': *out written on error", error_cases[i].src);
  }
}

/* For compiling: M and K are variables (slots 0 and 1), the rest
 * constants, with the values lookup gives. */
static int resolve(void *ctx, const char *name, size_t len, int64_t *value, int *slot) {
  (void)ctx;
  *slot = len == 1 && name[0] == 'M' ? 0 : len == 1 && name[0] == 'K' ? 1 : -1;
  return lookup(NULL, name, len, value);
}

/* Compiled and run, an expression gives what expr_eval gives: the value,
 * or the error and its message; one that does not compile fails
 * expr_check with the same message. */
static void same_as_eval(const char *src) {
  static const int64_t vars[] = {512, 7};
  char want[256] = "", got[256] = "";
  int64_t wv = 0, gv = 0;
  int wrc = expr_eval(src, lookup, NULL, &wv, want, sizeof want);
  expr_prog *g = NULL;
  int crc = expr_compile(src, resolve, NULL, &g, got, sizeof got);
  if (crc < 0) {
    ASSERT(expr_check(src, lookup, NULL, want, sizeof want) < 0);
    ASSERT_NULL(g);
  } else {
    ASSERT_EQ_INT(expr_run(g, vars, &gv, got, sizeof got), wrc);
    if (wrc == 0 && gv != wv) TEST_FAIL("'%s': compiled %lld, eval %lld", src, (long long)gv,
                                        (long long)wv);
    expr_free(g);
  }
  if (strcmp(want, got) != 0) TEST_FAIL("'%s': compiled \"%s\", eval \"%s\"", src, got, want);
}

TEST(compiled_matches_eval) {
  for (size_t i = 0; i < sizeof(value_cases) / sizeof(value_cases[0]); i++)
    same_as_eval(value_cases[i].src);
  for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++)
    same_as_eval(error_cases[i].src);
  same_as_eval("(M > 1 && K < 9) && (M % (K - 7) == 0 || K == 7) && min(M, K) != 3");
}

TEST(compiled_parts) {
  static const struct {
    const char *src;
    size_t nparts;
    int deepest[4]; /* slot each part reads last, -1: none */
  } cases[] = {
      {"M % 2 == 0", 1, {0}},
      {"M > 1 && K > 1", 2, {0, 1}},
      {"(M > 1 && (K > 1 && 3)) && M + K", 4, {0, 1, -1, 1}},
      {"M > 1 && K > 1 || N", 1, {1}},
      {"!(M && K)", 1, {1}},
      {"(M || K) && N == 0", 2, {1, -1}},
      {"min(M && K, 1) && 1", 2, {1, -1}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    expr_prog *g;
    char err[128];
    ASSERT_EQ_INT(expr_compile(cases[i].src, resolve, NULL, &g, err, sizeof err), 0);
    if (expr_nparts(g) != cases[i].nparts)
      TEST_FAIL("'%s': %zu parts, want %zu", cases[i].src, expr_nparts(g), cases[i].nparts);
    for (size_t p = 0; p < cases[i].nparts; p++)
      ASSERT_EQ_INT(expr_part_slot(g, p, 64), cases[i].deepest[p]);
    expr_free(g);
  }
  /* one part alone: its own error, at its place in the whole text */
  expr_prog *g;
  char err[128];
  int64_t v;
  static const int64_t vars[] = {512, 0};
  ASSERT_EQ_INT(expr_compile("K != 0 && M % K == 0", resolve, NULL, &g, err, sizeof err), 0);
  ASSERT_EQ_INT(expr_run(g, vars, &v, err, sizeof err), 0);
  ASSERT_EQ_INT(v, 0);
  ASSERT(expr_run_part(g, 1, vars, &v, err, sizeof err) < 0);
  ASSERT_EQ_STR(err, "at 13: modulo by zero");
  ASSERT_EQ_INT(expr_part_slot(g, 1, 1), 0);
  expr_free(g);
  /* thousands of && are parts, not a deep recursion */
  size_t n = 3000;
  char *chain = malloc(6 * n);
  ASSERT_NOT_NULL(chain);
  for (size_t i = 0; i < n; i++) memcpy(chain + 5 * i, i ? "&&K>1" : "  K>1", 5);
  chain[5 * n] = '\0';
  ASSERT_EQ_INT(expr_compile(chain, resolve, NULL, &g, err, sizeof err), 0);
  ASSERT_EQ_INT(expr_nparts(g), n);
  free(chain);
  expr_free(g);
}

TEST(quote_keeps_room_for_the_reason) {
  char buf[200];
  expr_quote("M % TI == 0", buf, sizeof buf);
  ASSERT_EQ_STR(buf, "'M % TI == 0'");
  char long_src[9501];
  memset(long_src, 'x', sizeof long_src - 1);
  long_src[sizeof long_src - 1] = '\0';
  expr_quote(long_src, buf, sizeof buf);
  ASSERT(strlen(buf) < 120);
  ASSERT_CONTAINS(buf, "...' (expression of 9500 bytes, limit 4096)");
}

TEST(null_lookup_and_null_src) {
  char err[128];
  int64_t v;
  ASSERT_EQ_INT(expr_eval("3*4", NULL, NULL, &v, err, sizeof err), 0);
  ASSERT_EQ_INT(v, 12);
  ASSERT(expr_eval("X", NULL, NULL, &v, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, "at 1: unknown name 'X'");
  ASSERT(expr_eval(NULL, NULL, NULL, &v, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, "at 1:");
  /* a tiny or absent error buffer must not be overrun */
  char small[4] = "zzz";
  ASSERT(expr_eval("1/0", NULL, NULL, &v, small, sizeof small) < 0);
  ASSERT_EQ_INT(strlen(small), 3);
  ASSERT(expr_eval("1/0", NULL, NULL, &v, NULL, 0) < 0);
}

TEST(long_name_is_clipped) {
  char src[300];
  memset(src, 'a', sizeof src - 1);
  src[sizeof src - 1] = '\0';
  char err[256];
  int64_t v;
  ASSERT(expr_eval(src, lookup, NULL, &v, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, "at 1: unknown name 'aaaa");
  ASSERT_CONTAINS(err, "...");
}

TEST(depth_is_bounded) {
  char err[256];
  int64_t v;
  /* 60 levels are fine */
  char ok[200];
  size_t n = 0;
  for (int i = 0; i < 60; i++) ok[n++] = '(';
  ok[n++] = '1';
  for (int i = 0; i < 60; i++) ok[n++] = ')';
  ok[n] = '\0';
  ASSERT_EQ_INT(expr_eval(ok, NULL, NULL, &v, err, sizeof err), 0);
  ASSERT_EQ_INT(v, 1);

  /* a million opening parens, minus signs or nots must fail, not crash */
  const char fill[] = {'(', '-', '!'};
  for (size_t k = 0; k < sizeof fill; k++) {
    size_t big = 1000000;
    char *s = malloc(big + 2);
    ASSERT_NOT_NULL(s);
    memset(s, fill[k], big);
    s[big] = '1';
    s[big + 1] = '\0';
    ASSERT(expr_eval(s, NULL, NULL, &v, err, sizeof err) < 0);
    ASSERT_CONTAINS(err, "nested too deeply");
    free(s);
  }
  ASSERT(expr_eval("min(min(min(min(min(min(min(min(min(min(min(min(min(min(min(min(min("
                   "min(min(min(min(min(min(min(min(min(min(min(min(min(min(min(min(min("
                   "min(min(min(min(min(min(min(min(min(min(min(min(min(min(min(min(min("
                   "min(min(min(min(min(min(min(min(min(min(min(min(min(min(min(min(",
                   NULL, NULL, &v, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, "nested too deeply");
}

TEST(check_reports_names_not_arithmetic) {
  char err[256];
  ASSERT_EQ_INT(expr_check("M / N + BIG * 2", lookup, NULL, err, sizeof err), 0);
  ASSERT(expr_check("M / N + Q", lookup, NULL, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, "at 9: unknown name 'Q'");
  ASSERT(expr_check("M +", lookup, NULL, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, "at 4:");
}

TEST_LIST(TEST_ENTRY(values), TEST_ENTRY(errors), TEST_ENTRY(compiled_matches_eval),
          TEST_ENTRY(compiled_parts), TEST_ENTRY(quote_keeps_room_for_the_reason), TEST_ENTRY(null_lookup_and_null_src),
          TEST_ENTRY(long_name_is_clipped), TEST_ENTRY(depth_is_bounded),
          TEST_ENTRY(check_reports_names_not_arithmetic))
