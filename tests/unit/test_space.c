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

TEST(neighbours_are_one_step_and_valid) {
  task_spec t = spec3();
  space sp;
  char err[256];
  ASSERT_EQ_INT(space_init(&sp, &t, err, sizeof err), 0);
  /* A=2 B=8 C=5: steps A->1,3; B->16,0; C->7. */
  int64_t v[] = {2, 8, 5};
  uint64_t out[16];
  size_t n = 0;
  ASSERT_EQ_INT(space_neighbours(&sp, v, out, 16, &n), 0);
  size_t want = 0;
  int64_t cand[][3] = {{1, 8, 5}, {3, 8, 5}, {2, 16, 5}, {2, 0, 5}, {2, 8, 7}};
  for (size_t i = 0; i < 5; i++) {
    if (!brute_valid(cand[i][0], cand[i][1], cand[i][2])) continue;
    uint64_t idx;
    ASSERT_EQ_INT(space_index(&sp, cand[i], &idx), 0);
    ASSERT_EQ_U64(out[want], idx);
    want++;
  }
  ASSERT_EQ_INT(n, want);
  /* Bounded by max. */
  ASSERT_EQ_INT(space_neighbours(&sp, v, out, 1, &n), 0);
  ASSERT_EQ_INT(n, 1);
  int64_t foreign[] = {5, 8, 5};
  ASSERT_EQ_INT(space_neighbours(&sp, foreign, out, 16, &n), -ENOENT);
}

TEST(features_are_value_and_position) {
  task_spec t = spec3();
  space sp;
  char err[256];
  ASSERT_EQ_INT(space_init(&sp, &t, err, sizeof err), 0);
  ASSERT_EQ_INT(space_nfeatures(&sp), 6);
  int64_t v[] = {3, 0, 7};
  double f[6];
  ASSERT_EQ_INT(space_features(&sp, v, f), 0);
  ASSERT_EQ_DBL(f[0], 3, 0);
  ASSERT_EQ_DBL(f[1], 2.0 / 3.0, 1e-12);
  ASSERT_EQ_DBL(f[2], 0, 0);
  ASSERT_EQ_DBL(f[3], 1.0, 0);
  ASSERT_EQ_DBL(f[4], 7, 0);
  ASSERT_EQ_DBL(f[5], 0, 0);
}

TEST_LIST(TEST_ENTRY(count_valid_matches_brute_force), TEST_ENTRY(neighbours_are_one_step_and_valid),
          TEST_ENTRY(features_are_value_and_position), TEST_ENTRY(size), TEST_ENTRY(enumeration_matches_brute_force),
          TEST_ENTRY(index_rejects_foreign_values), TEST_ENTRY(evaluation_error_is_reported),
          TEST_ENTRY(huge_space_saturates), TEST_ENTRY(canonical_json))
