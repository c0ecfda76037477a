/* The cost model's feature vectors (tuner/features.h): per knob its value,
 * log2 and scaled position, then the spec's feature expressions. */
#include "tuner/features.h"

#include <errno.h>
#include <math.h>

#include "tests/test.h"

static int64_t va[] = {1, 2, 4, 8, 16};
static int64_t vb[] = {0, 3, -2};
static int64_t vc[] = {5};
static task_knob knobs[] = {{"A", va, 5}, {"B", vb, 3}, {"C", vc, 1}};
static task_param consts[] = {{"M", 12}};
static char *feats[] = {"A * B + M", "M / B", "A * 4611686018427387904", "max(A, C) - M"};

static task_spec spec(void) {
  return (task_spec){.name = "feat", .knobs = knobs, .nknobs = 3, .consts = consts, .nconsts = 1,
                     .features = feats, .nfeatures = 4};
}

TEST(count_is_three_per_knob_and_one_per_feature) {
  task_spec t = spec();
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  ASSERT_EQ_INT(features_count(&sp), 3 * 3 + 4);
  t.nfeatures = 0;
  ASSERT_EQ_INT(features_count(&sp), 3 * 3);
  t.nknobs = 0;
  ASSERT_EQ_INT(features_count(&sp), 0);
}

/* Checks the vector of A=a B=b C=5 against what it should be. */
static void expect(const double *f, int64_t a, int64_t b, double pos_a, double pos_b) {
  ASSERT_EQ_DBL(f[0], (double)a, 0);
  ASSERT_EQ_DBL(f[1], log2((double)a), 1e-12);
  ASSERT_EQ_DBL(f[2], pos_a, 1e-12);
  ASSERT_EQ_DBL(f[3], (double)b, 0);
  ASSERT_EQ_DBL(f[4], b > 0 ? log2((double)b) : 0, 1e-12); /* 0 for B <= 0 */
  ASSERT_EQ_DBL(f[5], pos_b, 1e-12);
  ASSERT_EQ_DBL(f[6], 5, 0);
  ASSERT_EQ_DBL(f[7], log2(5.0), 1e-12);
  ASSERT_EQ_DBL(f[8], 0, 0); /* a one-value knob sits at 0 */
  ASSERT_EQ_DBL(f[9], (double)(a * b + 12), 0);
  ASSERT_EQ_DBL(f[10], b ? (double)(12 / b) : 0, 0);          /* division by zero: 0 */
  ASSERT_EQ_DBL(f[11], a == 1 ? 4611686018427387904.0 : 0, 0); /* overflow: 0 */
  ASSERT_EQ_DBL(f[12], (double)((a > 5 ? a : 5) - 12), 0);
}

TEST(value_log2_position_and_expressions) {
  task_spec t = spec();
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  features *fx;
  char err[256] = "";
  if (features_new(&sp, &fx, err, sizeof err) != 0) TEST_FAIL("features_new: %s", err);
  double f[13], g[13];
  int64_t v1[] = {4, 3, 5};
  ASSERT_EQ_INT(features_at(fx, v1, f), 0);
  expect(f, 4, 3, 0.5, 0.5);
  int64_t v2[] = {1, 0, 5};
  ASSERT_EQ_INT(features_at(fx, v2, f), 0);
  expect(f, 1, 0, 0, 0);
  int64_t v3[] = {16, -2, 5};
  ASSERT_EQ_INT(features_at(fx, v3, f), 0);
  expect(f, 16, -2, 1, 1);
  /* the one-off form gives the same numbers */
  ASSERT_EQ_INT(features_of(&sp, v3, g), 0);
  for (size_t i = 0; i < 13; i++) ASSERT_EQ_DBL(g[i], f[i], 0);
  /* a value that is not among its knob's */
  int64_t foreign[] = {3, 3, 5};
  ASSERT_EQ_INT(features_at(fx, foreign, f), -ENOENT);
  ASSERT_EQ_INT(features_of(&sp, foreign, f), -ENOENT);
  features_free(fx);
  features_free(NULL);
}

/* Constants are read when the features are compiled, as for constraints. */
TEST(constants_at_compile_time) {
  task_spec t = spec();
  task_param c = {"M", 100};
  t.consts = &c;
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  features *fx;
  ASSERT_EQ_INT(features_new(&sp, &fx, NULL, 0), 0);
  double f[13];
  int64_t v[] = {2, 3, 5};
  ASSERT_EQ_INT(features_at(fx, v, f), 0);
  ASSERT_EQ_DBL(f[9], 2 * 3 + 100, 0);
  ASSERT_EQ_DBL(f[10], 100 / 3, 0);
  features_free(fx);
}

TEST(no_features_and_no_knobs) {
  task_spec t = spec();
  t.nfeatures = 0;
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  features *fx;
  ASSERT_EQ_INT(features_new(&sp, &fx, NULL, 0), 0);
  double f[9];
  int64_t v[] = {8, -2, 5};
  ASSERT_EQ_INT(features_at(fx, v, f), 0);
  ASSERT_EQ_DBL(f[0], 8, 0);
  ASSERT_EQ_DBL(f[1], 3, 0);
  ASSERT_EQ_DBL(f[2], 0.75, 0);
  features_free(fx);
  char *one[] = {"M * 2"};
  t.nknobs = 0;
  t.features = one;
  t.nfeatures = 1;
  ASSERT_EQ_INT(features_new(&sp, &fx, NULL, 0), 0);
  ASSERT_EQ_INT(features_at(fx, NULL, f), 0);
  ASSERT_EQ_DBL(f[0], 24, 0);
  features_free(fx);
}

/* A spec task_check would refuse: features_new says which feature. */
TEST(bad_feature_is_refused) {
  task_spec t = spec();
  char *bad[] = {"A * B", "A * Z"};
  t.features = bad;
  t.nfeatures = 2;
  space sp;
  ASSERT_EQ_INT(space_init(&sp, &t, NULL, 0), 0);
  features *fx = NULL;
  char err[256] = "";
  ASSERT_EQ_INT(features_new(&sp, &fx, err, sizeof err), -EINVAL);
  ASSERT_NULL(fx);
  ASSERT_EQ_STR(err, "features[1] 'A * Z': at 5: unknown name 'Z'");
  double f[11];
  int64_t v[] = {1, 0, 5};
  ASSERT_EQ_INT(features_of(&sp, v, f), -EINVAL);
}

TEST_LIST(TEST_ENTRY(count_is_three_per_knob_and_one_per_feature),
          TEST_ENTRY(value_log2_position_and_expressions), TEST_ENTRY(constants_at_compile_time),
          TEST_ENTRY(no_features_and_no_knobs), TEST_ENTRY(bad_feature_is_refused))
