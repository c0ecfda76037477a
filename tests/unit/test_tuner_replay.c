/* The strategies against a recorded space: tests/data/matmul_gcc.jsonl
 * holds every valid config of tests/data/matmul_rec.json measured with gcc
 * (scripts/record-space). Each search is answered from the recording, in
 * process, so the figures are free of timing noise and the same on every
 * machine. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/space.h"
#include "tests/test.h"
#include "tuner/tuner.h"

#define SEEDS 5
#define MAXN 4096

typedef struct {
  task_spec t;
  space sp;
  double gflops[MAXN]; /* by config index; 0: not recorded, or failed */
  double best;
} recording;

static recording rec;

static void load(void) {
  char err[512];
  if (task_load(KTUNE_SRC_DIR "/tests/data/matmul_rec.json", &rec.t, err, sizeof err) < 0)
    TEST_FAIL("%s", err);
  ASSERT_EQ_INT(space_init(&rec.sp, &rec.t, err, sizeof err), 0);
  ASSERT(rec.sp.size <= MAXN);
  int64_t flops;
  ASSERT_EQ_INT(task_eval(&rec.t, NULL, rec.t.flops, &flops, err, sizeof err), 0);
  FILE *f = fopen(KTUNE_SRC_DIR "/tests/data/matmul_gcc.jsonl", "r");
  ASSERT(f);
  char line[4096];
  size_t n = 0;
  while (fgets(line, sizeof line, f)) {
    json_error_t je;
    json_t *o = json_loads(line, 0, &je);
    ASSERT(o);
    json_t *cfg = json_object_get(o, "config"), *costs = json_object_get(o, "costs_s");
    int64_t v[16];
    for (size_t k = 0; k < rec.t.nknobs; k++)
      v[k] = json_integer_value(json_object_get(cfg, rec.t.knobs[k].name));
    uint64_t index;
    ASSERT_EQ_INT(space_index(&rec.sp, v, &index), 0);
    double sum = 0;
    for (size_t i = 0; i < json_array_size(costs); i++) sum += json_number_value(json_array_get(costs, i));
    if (!strcmp(json_string_value(json_object_get(o, "status")), "ok") && sum > 0)
      rec.gflops[index] = (double)flops / (sum / (double)json_array_size(costs)) / 1e9;
    if (rec.gflops[index] > rec.best) rec.best = rec.gflops[index];
    json_decref(o);
    n++;
  }
  fclose(f);
  ASSERT_EQ_INT(n, 1664);
}

/* Answers a proposal from the recording, as a replay does. */
static void answer(tuner *tu, uint64_t index, const int64_t *v) {
  double g = rec.gflops[index];
  tuner_trial tr = {.index = index, .values = v, .status = g > 0 ? "ok" : "RUNTIME_ERROR",
                    .gflops = g, .mean_s = g > 0 ? 1 / g : 0};
  ASSERT_EQ_INT(tuner_observe(tu, &tr), 0);
}

/* Trials until one reaches `share` of the recording's best. */
static size_t trials_to(const char *strategy, uint64_t seed, double share) {
  tuner *tu;
  char err[256];
  if (tuner_new(strategy, &rec.sp, seed, &tu, err, sizeof err) < 0) TEST_FAIL("%s", err);
  int64_t v[16];
  uint64_t index;
  size_t n = 0;
  while (tuner_next(tu, v, &index) == 0) {
    n++;
    answer(tu, index, v);
    if (rec.gflops[index] >= share * rec.best) break;
  }
  tuner_free(tu);
  return n;
}

static int cmp_size(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? -1 : x > y;
}

static size_t median_trials(const char *strategy, double share) {
  size_t n[SEEDS];
  for (int s = 0; s < SEEDS; s++) n[s] = trials_to(strategy, 1000 + (uint64_t)s, share);
  qsort(n, SEEDS, sizeof n[0], cmp_size);
  return n[SEEDS / 2];
}

TEST(model_needs_a_third_of_randoms_trials) {
  load();
  size_t r = median_trials("random", 0.98), m = median_trials("model", 0.98),
         g = median_trials("ga", 0.98);
  printf("# trials to 98%% of the best (median of %d seeds): random %zu, ga %zu, model %zu\n",
         SEEDS, r, g, m);
  ASSERT(m * 3 <= r);
  ASSERT(g <= r);
}

/* The proposals of a search answered from the recording. */
static void proposals(const char *strategy, uint64_t seed, size_t n, uint64_t *out) {
  tuner *tu;
  ASSERT_EQ_INT(tuner_new(strategy, &rec.sp, seed, &tu, NULL, 0), 0);
  int64_t v[16];
  for (size_t i = 0; i < n; i++) {
    ASSERT_EQ_INT(tuner_next(tu, v, &out[i]), 0);
    answer(tu, out[i], v);
  }
  tuner_free(tu);
}

TEST(a_seed_gives_the_same_proposals) {
  load();
  const char *strategies[] = {"model", "ga"};
  for (size_t k = 0; k < 2; k++) {
    uint64_t a[64], b[64], c[64];
    proposals(strategies[k], 7, 64, a);
    proposals(strategies[k], 7, 64, b);
    proposals(strategies[k], 8, 64, c);
    ASSERT(memcmp(a, b, sizeof a) == 0);
    ASSERT(memcmp(a, c, sizeof a) != 0);
  }
}

/* A second session starts from the first's trials (tuner_prior): with
 * the model its first batch is faster on average than a fresh random
 * session's first batch. */
TEST(a_second_session_starts_where_the_first_left_off) {
  load();
  double model_sum = 0, random_sum = 0;
  for (int s = 0; s < SEEDS; s++) {
    /* the first session: 32 random trials */
    uint64_t first[32];
    int64_t vals[32][16];
    tuner_trial prior[32];
    proposals("random", 500 + (uint64_t)s, 32, first);
    for (size_t i = 0; i < 32; i++) {
      ASSERT_EQ_INT(space_config(&rec.sp, first[i], vals[i]), 0);
      double g = rec.gflops[first[i]];
      prior[i] = (tuner_trial){.index = first[i], .values = vals[i],
                               .status = g > 0 ? "ok" : "RUNTIME_ERROR", .gflops = g,
                               .mean_s = g > 0 ? 1 / g : 0};
    }
    const char *strategies[] = {"model", "random"};
    for (size_t k = 0; k < 2; k++) {
      tuner *tu;
      ASSERT_EQ_INT(tuner_new(strategies[k], &rec.sp, 900 + (uint64_t)s, &tu, NULL, 0), 0);
      ASSERT_EQ_INT(tuner_prior(tu, prior, 32), 0);
      int64_t v[16];
      uint64_t index;
      for (int i = 0; i < 8; i++) {
        ASSERT_EQ_INT(tuner_next(tu, v, &index), 0);
        for (size_t j = 0; k == 0 && j < 32; j++) ASSERT(index != first[j]);
        *(k == 0 ? &model_sum : &random_sum) += rec.gflops[index];
        answer(tu, index, v);
      }
      tuner_free(tu);
    }
  }
  printf("# first batch after 32 earlier trials: model %.1f GFLOPS, random %.1f on average\n",
         model_sum / (8 * SEEDS), random_sum / (8 * SEEDS));
  ASSERT(model_sum > random_sum);
}

TEST(the_model_says_what_it_does) {
  load();
  tuner *tu;
  ASSERT_EQ_INT(tuner_new("model", &rec.sp, 3, &tu, NULL, 0), 0);
  char words[256];
  tuner_describe(tu, words, sizeof words);
  ASSERT(strstr(words, "model: random start, 0 of 8 results in"));
  int64_t v[16];
  uint64_t index;
  for (int i = 0; i < 20; i++) {
    ASSERT_EQ_INT(tuner_next(tu, v, &index), 0);
    answer(tu, index, v);
  }
  tuner_describe(tu, words, sizeof words);
  ASSERT(strstr(words, "model: trained on "));
  ASSERT(strstr(words, " chosen by the model"));
  ASSERT(strstr(words, "1 at random"));
  tuner_free(tu);
}

/* A search about to learn asks for no more guesses in flight than the
 * results it needs; random and grid set no limit. */
TEST(learning_searches_wait_for_results_rather_than_guess) {
  load();
  const char *strategies[] = {"model", "ga", "random", "grid"};
  for (size_t k = 0; k < 4; k++) {
    tuner *tu;
    ASSERT_EQ_INT(tuner_new(strategies[k], &rec.sp, 4, &tu, NULL, 0), 0);
    if (k >= 2) {
      ASSERT_EQ_U64(tuner_ahead(tu), UINT32_MAX);
      tuner_free(tu);
      continue;
    }
    ASSERT_EQ_U64(tuner_ahead(tu), 8);
    int64_t v[16];
    uint64_t index;
    for (int i = 0; i < 3; i++) {
      ASSERT_EQ_INT(tuner_next(tu, v, &index), 0);
      answer(tu, index, v);
    }
    ASSERT_EQ_U64(tuner_ahead(tu), 5);
    for (int i = 0; i < 6; i++) {
      ASSERT_EQ_INT(tuner_next(tu, v, &index), 0);
      answer(tu, index, v);
    }
    /* learning now: a plan in hand (model) or a population (ga) */
    ASSERT(tuner_ahead(tu) > 8);
    tuner_free(tu);
  }
}

TEST_LIST(TEST_ENTRY(model_needs_a_third_of_randoms_trials),
          TEST_ENTRY(a_seed_gives_the_same_proposals),
          TEST_ENTRY(a_second_session_starts_where_the_first_left_off),
          TEST_ENTRY(the_model_says_what_it_does),
          TEST_ENTRY(learning_searches_wait_for_results_rather_than_guess))
