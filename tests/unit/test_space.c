#include "common/space.h"

#include <errno.h>

#include "tests/test.h"

/* Specs are built in memory: the space needs only knobs, constants and
 * constraints. */
static int64_t va[] = {1, 2, 3, 4};
static int64_t vb[] = {16, 8, 0};
static int64_t vc[] = {7, 5};
static task_knob knobs3[] = {{"A", va, 4}, {"B", vb, 3}, {"C", vc, 2}};
static task_param consts[] = {{"M", 12}, {"N", 40}};
static char *cons[] = {"M % A == 0", "B == 0 || N % B == 0", "A * C < 20"};

static task_spec spec3(void) {
  task_spec t = {0};
  t.name = "s";
  t.knobs = knobs3;
  t.nknobs = 3;
  t.consts = consts;
  t.nconsts = 2;
  t.constraints = cons;
  t.nconstraints = 3;
  return t;
}

static int brute_valid(int64_t a, int64_t b, int64_t c) {
  return 12 % a == 0 && (b == 0 || 40 % b == 0) && a * c < 20;
}

static int valid_at(const space *sp, uint64_t i) {
  int64_t v[8];
  int ok = 0;
  ASSERT_EQ_INT(space_config(sp, i, v), 0);
  return space_valid(sp, v, &ok, NULL, 0) == 0 && ok;
}

TEST(size) {
  task_spec t = spec3();
  space sp;
  char err[256];
  ASSERT_EQ_INT(space_init(&sp, &t, err, sizeof err), 0);
  ASSERT_EQ_U64(sp.size, 4 * 3 * 2);
  ASSERT(sp.task == &t);

  task_spec none = {0};
  ASSERT_EQ_INT(space_init(&sp, &none, err, sizeof err), 0);
  ASSERT_EQ_U64(sp.size, 1);
  int64_t dummy = 0;
  uint64_t idx = 9;
  ASSERT_EQ_INT(space_config(&sp, 0, &dummy), 0);
  ASSERT_EQ_INT(space_index(&sp, &dummy, &idx), 0);
  ASSERT_EQ_U64(idx, 0);

  task_knob empty = {"E", NULL, 0};
  task_spec bad = {0};
  bad.knobs = &empty;
  bad.nknobs = 1;
  ASSERT(space_init(&sp, &bad, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, "'E' has no values");
}

TEST(enumeration_matches_brute_force) {
  task_spec t = spec3();
  space sp;
  char err[256];
  ASSERT_EQ_INT(space_init(&sp, &t, err, sizeof err), 0);
  uint64_t i = 0;
  int nvalid = 0;
  /* nested loops, last knob innermost: the documented index order */
  for (size_t a = 0; a < 4; a++)
    for (size_t b = 0; b < 3; b++)
      for (size_t c = 0; c < 2; c++, i++) {
        int64_t v[3];
        ASSERT_EQ_INT(space_config(&sp, i, v), 0);
        ASSERT_EQ_INT(v[0], va[a]);
        ASSERT_EQ_INT(v[1], vb[b]);
        ASSERT_EQ_INT(v[2], vc[c]);
        int ok = -1;
        ASSERT_EQ_INT(space_valid(&sp, v, &ok, err, sizeof err), 0);
        ASSERT_EQ_INT(ok, brute_valid(va[a], vb[b], vc[c]));
        nvalid += ok;
        uint64_t back = 999;
        ASSERT_EQ_INT(space_index(&sp, v, &back), 0);
        ASSERT_EQ_U64(back, i);
      }
  ASSERT_EQ_U64(i, sp.size);
  ASSERT(nvalid > 0 && (uint64_t)nvalid < sp.size);
  int64_t v[3];
  ASSERT_EQ_INT(space_config(&sp, sp.size, v), -ERANGE);
  ASSERT_EQ_INT(space_config(&sp, UINT64_MAX, v), -ERANGE);
}

TEST(index_rejects_foreign_values) {
  task_spec t = spec3();
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  int64_t v[3] = {2, 9, 5};
  uint64_t idx;
  ASSERT_EQ_INT(space_index(&sp, v, &idx), -ENOENT);
}

TEST(evaluation_error_is_reported) {
  int64_t vz[] = {0, 3};
  task_knob k[] = {{"A", vz, 2}};
  char *c[] = {"M % A == 0"};
  task_spec t = {0};
  t.name = "z";
  t.knobs = k;
  t.nknobs = 1;
  t.consts = consts;
  t.nconsts = 2;
  t.constraints = c;
  t.nconstraints = 1;
  space sp;
  char err[256] = "";
  ASSERT_EQ_INT(space_init(&sp, &t, err, sizeof err), 0);
  int64_t v = 0;
  int ok = 1;
  ASSERT(space_valid(&sp, &v, &ok, err, sizeof err) < 0);
  ASSERT_EQ_INT(ok, 0);
  ASSERT_CONTAINS(err, "constraints[0] 'M % A == 0': at 3: modulo by zero");
  v = 3;
  ASSERT_EQ_INT(space_valid(&sp, &v, &ok, err, sizeof err), 0);
  ASSERT_EQ_INT(ok, 1);
}

TEST(huge_space_saturates) {
  static int64_t many[65536];
  for (size_t i = 0; i < 65536; i++) many[i] = (int64_t)i * 3;
  task_knob k[5];
  const char *names[] = {"K0", "K1", "K2", "K3", "K4"};
  for (int i = 0; i < 5; i++) k[i] = (task_knob){(char *)names[i], many, 65536};
  task_spec t = {0};
  t.name = "huge";
  t.knobs = k;
  t.nknobs = 5;
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  ASSERT_EQ_U64(sp.size, UINT64_MAX); /* 2^80 combinations */
  /* 4 knobs: 2^64 overflows by one too */
  t.nknobs = 4;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  ASSERT_EQ_U64(sp.size, UINT64_MAX);
  t.nknobs = 3;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  ASSERT_EQ_U64(sp.size, (uint64_t)1 << 48);

  /* indices of a saturated space still map both ways */
  t.nknobs = 5;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  uint64_t probes[] = {0, 1, 65535, 65536, 0x123456789abcdefULL, UINT64_MAX - 1};
  for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
    int64_t v[5];
    uint64_t back;
    ASSERT_EQ_INT(space_config(&sp, probes[i], v), 0);
    ASSERT_EQ_INT(v[4], (int64_t)(probes[i] % 65536) * 3);
    ASSERT_EQ_INT(v[0], 0); /* the slowest knob never moves below 2^64 */
    ASSERT_EQ_INT(space_index(&sp, v, &back), 0);
    ASSERT_EQ_U64(back, probes[i]);
  }
  /* a config past 2^64 has no index */
  int64_t far[5] = {3, 0, 0, 0, 0};
  uint64_t idx;
  ASSERT_EQ_INT(space_index(&sp, far, &idx), -ERANGE);
}

TEST(canonical_json) {
  int64_t v1[] = {1, 2}, v2[] = {3};
  task_knob k[] = {{"zeta", v1, 2}, {"Alpha", v2, 1}, {"mid", v1, 2}};
  task_param c[] = {{"N", -5}, {"K", 1LL << 40}, {"M", 0}};
  task_spec t = {0};
  t.name = "j";
  t.knobs = k;
  t.nknobs = 3;
  t.consts = c;
  t.nconsts = 3;
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  int64_t cfg[3];
  ASSERT_EQ_INT(space_config(&sp, 3, cfg), 0);
  char *a = space_config_json(&sp, cfg);
  ASSERT_EQ_STR(a, "{\"Alpha\":3,\"mid\":2,\"zeta\":2}");
  /* the same config reached another way is the same string */
  int64_t same[3] = {2, 3, 2};
  char *b = space_config_json(&sp, same);
  ASSERT_EQ_STR(a, b);
  free(a);
  free(b);
  char *cs = space_consts_json(&t);
  ASSERT_EQ_STR(cs, "{\"K\":1099511627776,\"M\":0,\"N\":-5}");
  free(cs);
  task_spec none = {0};
  ASSERT_EQ_INT(space_init(&sp, &none, NULL, 0), 0);
  char *e = space_config_json(&sp, NULL);
  ASSERT_EQ_STR(e, "{}");
  free(e);
  e = space_consts_json(&none);
  ASSERT_EQ_STR(e, "{}");
  free(e);
  int64_t ext[1] = {INT64_MIN};
  task_knob kx[] = {{"X", ext, 1}};
  none.knobs = kx;
  none.nknobs = 1;
  ASSERT_EQ_INT(space_init(&sp, &none, NULL, 0), 0);
  e = space_config_json(&sp, ext);
  ASSERT_EQ_STR(e, "{\"X\":-9223372036854775808}");
  free(e);
}

TEST(count_valid_matches_brute_force) {
  task_spec t = spec3();
  space sp;
  char err[256];
  ASSERT_EQ_INT(space_init(&sp, &t, err, sizeof err), 0);
  uint64_t want = 0, n = 0;
  for (int a = 0; a < 4; a++)
    for (int b = 0; b < 3; b++)
      for (int c = 0; c < 2; c++) want += brute_valid(va[a], vb[b], vc[c]);
  ASSERT_EQ_INT(space_count_valid(&sp, 1000, &n), 0);
  ASSERT_EQ_U64(n, want);
  ASSERT_EQ_INT(space_count_valid(&sp, 10, &n), -E2BIG);
}

/* The pruned walk lists exactly the configs space_valid accepts, in
 * index order, for every pair of constraints from a list that mixes
 * guards, errors, || and parenthesised &&. */
TEST(walk_matches_brute_force) {
  static int64_t wa[] = {0, 1, 2, 3, 6}, wb[] = {-2, 0, 1, 4}, wc[] = {3, 0, 2};
  task_knob k[] = {{"A", wa, 5}, {"B", wb, 4}, {"C", wc, 3}};
  char *pool[] = {"M % A == 0",
                  "A != 0 && M % A == 0",
                  "B > 0 && (C < 3 && A + B > 2)",
                  "C == 0 || N / C > 10",
                  "(A < 3 && B != 0) && M / B > C",
                  "1 && A + C != 4 && N % 5 == 0",
                  "B * C >= A || !A",
                  "min(A, C) == 0 && max(B, 1) == 1",
                  "N > 100 && A > 0",
                  "C / B",
                  "B > 0 && M % A == 0"};
  size_t np = sizeof pool / sizeof pool[0];
  for (size_t i = 0; i < np; i++)
    for (size_t j = 0; j < np; j++) {
      char *c[] = {pool[i], pool[j]};
      task_spec t = {.name = "w", .knobs = k, .nknobs = 3, .consts = consts, .nconsts = 2,
                      .constraints = c, .nconstraints = i == j ? 1 : 2};
      space sp;
      ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
      space_walk *w;
      ASSERT_EQ_INT(space_walk_new(&sp, &w, NULL, 0), 0);
      uint64_t next = 0, found;
      int rc;
      while ((rc = space_walk_next(w, 1, &found, NULL)) != 1) {
        if (rc == SPACE_AGAIN) continue;
        ASSERT_EQ_INT(rc, 0);
        for (; next < found; next++) /* the ones skipped are invalid */
          if (valid_at(&sp, next)) TEST_FAIL("'%s', '%s': missed %llu", c[0], c[1],
                                             (unsigned long long)next);
        ASSERT(valid_at(&sp, found));
        next = found + 1;
        int ok;
        ASSERT_EQ_INT(space_walk_check(w, found, &ok, NULL), 0);
        ASSERT_EQ_INT(ok, 1);
      }
      for (; next < sp.size; next++) ASSERT(!valid_at(&sp, next));
      ASSERT_EQ_INT(space_walk_next(w, 1, &found, NULL), 1);
      space_walk_free(w);
    }
}

/* Nine knobs of ten values, one valid config in 10^9: counted at once. */
TEST(count_in_a_sparse_billion) {
  static int64_t ten[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  const char *names[] = {"K0", "K1", "K2", "K3", "K4", "K5", "K6", "K7", "K8"};
  task_knob k[9];
  for (int i = 0; i < 9; i++) k[i] = (task_knob){(char *)names[i], ten, 10};
  char *c[] = {"K0 == 3", "K1 == 7 && K2 == 1", "(K3 + K4 == 9 && K3 == 4) && K5 == 0",
               "K6 * 10 + K7 == 58", "K8 == K0 + 1"};
  task_spec t = {.name = "sparse", .knobs = k, .nknobs = 9, .constraints = c, .nconstraints = 5};
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  ASSERT_EQ_U64(sp.size, 1000000000);
  uint64_t n = 0;
  ASSERT_EQ_INT(space_count_valid(&sp, 100000, &n), 0);
  ASSERT_EQ_U64(n, 1);
  /* too little work to finish is not a count */
  ASSERT_EQ_INT(space_count_valid(&sp, 20, &n), -E2BIG);
}

/* The first error the walk meets names its constraint, its expression and
 * the knobs; an error C's && would not reach is not one. */
TEST(walk_notes_the_first_reached_error) {
  int64_t ti[] = {0, 4, 5}, kk[] = {0, 1};
  task_knob k[] = {{"TI", ti, 3}, {"K", kk, 2}};
  char *guarded[] = {"K < 2", "TI != 0 && M % TI == 0"};
  char *late[] = {"K == 1 && M % TI == 0"};
  char *bare[] = {"K < 2", "M % TI == 0"};
  char **sets[] = {guarded, late, bare};
  size_t counts[] = {2, 1, 2};
  const char *want[] = {NULL, "constraints[0] 'K == 1 && M % TI == 0': at 13: modulo by zero (TI=0)",
                        "constraints[1] 'M % TI == 0': at 3: modulo by zero (TI=0)"};
  for (int s = 0; s < 3; s++) {
    task_spec t = {.name = "z", .knobs = k, .nknobs = 2, .consts = consts, .nconsts = 2,
                    .constraints = sets[s], .nconstraints = counts[s]};
    space sp;
    ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
    space_walk *w;
    ASSERT_EQ_INT(space_walk_new(&sp, &w, NULL, 0), 0);
    uint64_t idx, n = 0;
    while (space_walk_next(w, UINT64_MAX, &idx, NULL) == 0) n++;
    ASSERT_EQ_U64(n, s == 1 ? 1 : 2); /* TI=4 (with K=1 only for late) */
    if (want[s])
      ASSERT_EQ_STR(space_walk_note(w), want[s]);
    else
      ASSERT_NULL(space_walk_note(w));
    space_walk_free(w);
  }
}

/* A long constraint's error keeps its reason and names the limit. */
TEST(long_constraint_error_keeps_the_reason) {
  size_t n = 3000;
  char *src = malloc(n + 16);
  ASSERT_NOT_NULL(src);
  for (size_t i = 0; i < n; i += 4) memcpy(src + i, "A + ", 4);
  strcpy(src + n, "M % (A - A)");
  char *c[] = {src};
  task_spec t = spec3();
  t.constraints = c;
  t.nconstraints = 1;
  space sp;
  char err[256];
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  int64_t v[3] = {1, 16, 7};
  int ok;
  ASSERT(space_valid(&sp, v, &ok, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, "constraints[0] 'A + A + ");
  ASSERT_CONTAINS(err, "...' (expression of 3011 bytes, limit 4096): at 3003: modulo by zero");
  space_walk *w;
  ASSERT_EQ_INT(space_walk_new(&sp, &w, NULL, 0), 0);
  uint64_t idx;
  ASSERT_EQ_INT(space_walk_next(w, UINT64_MAX, &idx, NULL), 1);
  ASSERT_CONTAINS(space_walk_note(w), "limit 4096): at 3003: modulo by zero (A=1)");
  space_walk_free(w);
  free(src);
}

TEST_LIST(TEST_ENTRY(count_valid_matches_brute_force), TEST_ENTRY(walk_matches_brute_force),
          TEST_ENTRY(count_in_a_sparse_billion), TEST_ENTRY(walk_notes_the_first_reached_error),
          TEST_ENTRY(long_constraint_error_keeps_the_reason),
          TEST_ENTRY(size), TEST_ENTRY(enumeration_matches_brute_force),
          TEST_ENTRY(index_rejects_foreign_values), TEST_ENTRY(evaluation_error_is_reported),
          TEST_ENTRY(huge_space_saturates), TEST_ENTRY(canonical_json))
