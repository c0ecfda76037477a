/* model: a cost model chooses each batch, as AutoTVM's XGBoost tuner does.
 * It ranks configs (XGBoost, rank:pairwise) by features of the config
 * (tuner/features.h), trained on every result so far; the configs it has
 * not proposed are scored (all of them in a small space, an evolution over
 * the model's predictions in a large one) and the best-scored are the next
 * plan. One pick per plan is random, so that a wrong model cannot trap the
 * search. Until it has results to learn from it proposes at random.
 *
 * Training and scoring are too slow for an event loop: step hands a copy
 * of the data to train (TUNER_TRAIN), which may run on another thread
 * while results keep arriving. Every decision depends on the seed and the
 * order of the results, never on timing, so a replay repeats itself. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xgboost/c_api.h>

#include "common/rng.h"
#include "tuner/features.h"
#include "tuner/seen.h"

/* ok results before the first training */
#define MIN_TRAIN 8
/* configs per plan chosen by the model, and at random */
#define PLAN_MODEL 8
#define PLAN_RANDOM 1
/* spaces up to this size are scored whole; larger ones evolve */
#define SCORE_ALL_MAX 65536
/* the evolution over predictions: population, rounds, neighbours each */
#define EVO_POP 128
#define EVO_ROUNDS 4
#define EVO_NEIGHBOURS 32
/* tries at drawing a valid config at random to seed the evolution */
#define EVO_DRAWS 8192
#define ROUNDS 32

typedef struct {
  float *x;     /* features, row-major */
  float *y;     /* gflops, or 1/seconds when there is no FLOP count; 0 failed */
  uint64_t *index;
  size_t n, cap;
} rows;

typedef struct {
  const space *sp;
  features *feat;          /* compiled once; read-only, so train may share it */
  size_t nf;
  rng g;
  uint64_t seed;
  void *rnd;               /* a random search: first picks and the ε share */
  seen_set proposed;       /* proposed, restored or prior */
  rows data;               /* every result heard of */
  uint32_t ok;             /* of them, ok */
  rows snap;               /* the copy train works on */
  space_walk *check;       /* validity, for the evolution */
  uint64_t plan[PLAN_MODEL];
  size_t nplan, plan_at;
  unsigned plan_random;    /* random picks still owed in this plan */
  size_t trained_on;       /* rows of the last training; 0 none yet */
  size_t scored;           /* configs scored for the last plan */
  double train_ms, score_ms;
  char err[160];           /* the last training's failure */
} model_search;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int rows_reserve(rows *r, size_t nf, size_t want) {
  if (want <= r->cap) return 0;
  size_t cap = r->cap ? r->cap : 64;
  while (cap < want) cap *= 2;
  float *x = realloc(r->x, cap * (nf ? nf : 1) * sizeof *x);
  if (!x) return -ENOMEM;
  r->x = x;
  float *y = realloc(r->y, cap * sizeof *y);
  if (!y) return -ENOMEM;
  r->y = y;
  uint64_t *ix = realloc(r->index, cap * sizeof *ix);
  if (!ix) return -ENOMEM;
  r->index = ix;
  r->cap = cap;
  return 0;
}

static void rows_free(rows *r) {
  free(r->x);
  free(r->y);
  free(r->index);
  memset(r, 0, sizeof *r);
}

/* The features of config `index` into out (nf floats). */
static int featurize(const model_search *m, uint64_t index, float *out) {
  int64_t v[64];
  double f[256];
  if (m->sp->task->nknobs > 64 || m->nf > 256) return -E2BIG;
  if (space_config(m->sp, index, v) < 0 || features_at(m->feat, v, f) < 0) return -ERANGE;
  for (size_t i = 0; i < m->nf; i++) out[i] = (float)f[i];
  return 0;
}

/* A result becomes a row: what the model learns from. */
static int learn(model_search *m, const tuner_trial *tr) {
  if (!tr->status) return 0; /* still running: nothing to learn yet */
  rows *d = &m->data;
  if (rows_reserve(d, m->nf, d->n + 1) < 0) return -ENOMEM;
  if (featurize(m, tr->index, d->x + d->n * m->nf) < 0) return 0;
  int ok = strcmp(tr->status, "ok") == 0;
  double y = !ok ? 0 : tr->gflops > 0 ? tr->gflops : tr->mean_s > 0 ? 1 / tr->mean_s : 0;
  d->y[d->n] = (float)y;
  d->index[d->n] = tr->index;
  d->n++;
  if (ok) m->ok++;
  return 0;
}

static int model_observe(void *state, const tuner_trial *tr) {
  return learn(state, tr);
}

/* Restored and prior trials alike: learnt from, never proposed again. */
static int model_restore(void *state, const tuner_trial *trials, size_t n) {
  model_search *m = state;
  for (size_t i = 0; i < n; i++) {
    if (seen_add(&m->proposed, trials[i].index) < 0 || learn(m, &trials[i]) < 0) return -ENOMEM;
  }
  return 0;
}

/* A random config nobody proposed yet: 0, 1 when there is none left, or
 * TUNER_AGAIN. */
static int random_pick(model_search *m, uint64_t *index, uint32_t budget) {
  for (;;) {
    int rc = tuner_random.step(m->rnd, index, budget);
    if (rc != 0) return rc;
    if (!seen_has(&m->proposed, *index)) return 0;
  }
}

/* Copies the data for train: results may arrive while it runs. */
static int snapshot(model_search *m) {
  rows *s = &m->snap, *d = &m->data;
  if (rows_reserve(s, m->nf, d->n) < 0) return -ENOMEM;
  memcpy(s->x, d->x, d->n * m->nf * sizeof *s->x);
  memcpy(s->y, d->y, d->n * sizeof *s->y);
  memcpy(s->index, d->index, d->n * sizeof *s->index);
  s->n = d->n;
  return 0;
}

static int model_step(void *state, uint64_t *index, uint32_t budget) {
  model_search *m = state;
  while (m->plan_at < m->nplan) {
    *index = m->plan[m->plan_at++];
    if (!seen_has(&m->proposed, *index)) return seen_add(&m->proposed, *index);
  }
  int rc;
  if (m->plan_random == 0 && m->ok >= MIN_TRAIN && m->data.n > m->trained_on) {
    /* Something new to learn from, and the plan is spent: a new plan. */
    if (snapshot(m) < 0) return -ENOMEM;
    return TUNER_TRAIN;
  }
  rc = random_pick(m, index, budget);
  if (rc != 0) return rc;
  if (m->plan_random > 0) m->plan_random--;
  return seen_add(&m->proposed, *index);
}

/* --- training and scoring, on the data step set aside --- */

static void fail(model_search *m, const char *what) {
  snprintf(m->err, sizeof m->err, "%s: %s", what, XGBGetLastError());
}

/* Scores n configs (features x, row-major) with the booster into out. */
static int predict(model_search *m, BoosterHandle b, const float *x, size_t n, float *out) {
  DMatrixHandle dm;
  if (XGDMatrixCreateFromMat(x, n, m->nf, NAN, &dm) != 0) {
    fail(m, "scoring");
    return -1;
  }
  bst_ulong len = 0;
  const float *p = NULL;
  int rc = XGBoosterPredict(b, dm, 0, 0, 0, &len, &p);
  if (rc == 0 && len == n) memcpy(out, p, n * sizeof *out);
  else fail(m, "scoring");
  XGDMatrixFree(dm);
  return rc == 0 && len == n ? 0 : -1;
}

static int train_booster(model_search *m, BoosterHandle *out) {
  rows *s = &m->snap;
  float best = 0;
  for (size_t i = 0; i < s->n; i++)
    if (s->y[i] > best) best = s->y[i];
  /* Relative speed: only the order matters to a ranking objective, and
   * the scale stays the same as the data grows. */
  for (size_t i = 0; i < s->n; i++) s->y[i] = best > 0 ? s->y[i] / best : 0;
  DMatrixHandle dm;
  BoosterHandle b = NULL;
  unsigned group = (unsigned)s->n;
  char seed[24];
  snprintf(seed, sizeof seed, "%u", (unsigned)(m->seed & 0x7fffffff));
  const char *params[][2] = {
      {"objective", "rank:pairwise"}, {"nthread", "1"}, {"max_depth", "4"},
      {"eta", "0.3"}, {"min_child_weight", "1"}, {"verbosity", "0"}, {"seed", seed},
  };
  if (XGDMatrixCreateFromMat(s->x, s->n, m->nf, NAN, &dm) != 0) {
    fail(m, "training");
    return -1;
  }
  int rc = XGDMatrixSetFloatInfo(dm, "label", s->y, s->n);
  if (rc == 0) rc = XGDMatrixSetUIntInfo(dm, "group", &group, 1);
  if (rc == 0) rc = XGBoosterCreate(&dm, 1, &b);
  for (size_t i = 0; rc == 0 && i < sizeof params / sizeof params[0]; i++)
    rc = XGBoosterSetParam(b, params[i][0], params[i][1]);
  for (int i = 0; rc == 0 && i < ROUNDS; i++) rc = XGBoosterUpdateOneIter(b, i, dm);
  if (rc != 0) {
    fail(m, "training");
    if (b) XGBoosterFree(b);
    b = NULL;
  }
  XGDMatrixFree(dm);
  *out = b;
  return rc == 0 ? 0 : -1;
}

/* The best-scored configs so far, best first; ties go to the lower index
 * so that the plan does not depend on the order configs were met. */
typedef struct {
  uint64_t index[PLAN_MODEL];
  float score[PLAN_MODEL];
  size_t n;
} top;

static void top_offer(top *t, uint64_t index, float score) {
  size_t i = t->n;
  while (i > 0 && (t->score[i - 1] < score ||
                   (t->score[i - 1] == score && t->index[i - 1] > index)))
    i--;
  if (i >= PLAN_MODEL) return;
  size_t last = t->n < PLAN_MODEL ? t->n : PLAN_MODEL - 1;
  memmove(t->index + i + 1, t->index + i, (last - i) * sizeof t->index[0]);
  memmove(t->score + i + 1, t->score + i, (last - i) * sizeof t->score[0]);
  t->index[i] = index;
  t->score[i] = score;
  if (t->n < PLAN_MODEL) t->n++;
}

/* A batch of candidates to score: indices and their features. */
typedef struct {
  uint64_t *index;
  float *x, *score;
  size_t n, cap;
} batch;

static int batch_add(model_search *m, batch *c, uint64_t index) {
  if (c->n == c->cap) {
    size_t cap = c->cap ? 2 * c->cap : 256;
    uint64_t *ix = realloc(c->index, cap * sizeof *ix);
    if (ix) c->index = ix;
    float *x = realloc(c->x, cap * m->nf * sizeof *x);
    if (x) c->x = x;
    float *sc = realloc(c->score, cap * sizeof *sc);
    if (sc) c->score = sc;
    if (!ix || !x || !sc) return -ENOMEM;
    c->cap = cap;
  }
  if (featurize(m, index, c->x + c->n * m->nf) < 0) return 0;
  c->index[c->n++] = index;
  return 0;
}

static void batch_free(batch *c) {
  free(c->index);
  free(c->x);
  free(c->score);
}

/* Scores the batch and offers the configs nobody proposed to the plan. */
static int score_batch(model_search *m, BoosterHandle b, batch *c, top *plan) {
  if (c->n == 0) return 0;
  if (predict(m, b, c->x, c->n, c->score) < 0) return -1;
  m->scored += c->n;
  for (size_t i = 0; i < c->n; i++)
    if (!seen_has(&m->proposed, c->index[i])) top_offer(plan, c->index[i], c->score[i]);
  return 0;
}

/* A small space: every valid config not proposed yet is scored. */
static int score_all(model_search *m, BoosterHandle b, top *plan) {
  space_walk *w;
  if (space_walk_new(m->sp, &w, NULL, 0) < 0) return -ENOMEM;
  batch c = {0};
  uint64_t index;
  int rc = 0;
  while (rc == 0 && space_walk_next(w, UINT64_MAX, &index, NULL) == 0)
    if (!seen_has(&m->proposed, index)) rc = batch_add(m, &c, index);
  if (rc == 0) rc = score_batch(m, b, &c, plan);
  batch_free(&c);
  space_walk_free(w);
  return rc;
}

/* Orders positions in a scored batch best first (by score, then
 * position); qsort_r's argument is the scores, since trainings of several
 * sessions may sort at once. */
static int by_score(const void *a, const void *b, void *scores) {
  const float *s = scores;
  size_t i = *(const size_t *)a, j = *(const size_t *)b;
  if (s[i] != s[j]) return s[i] < s[j] ? 1 : -1;
  return i < j ? -1 : i > j;
}

/* A large space: an evolution over the model's predictions. It starts
 * from the best measured configs and random valid ones, and each round
 * scores the valid neighbours of the best-scored population. */
static int evolve(model_search *m, BoosterHandle b, top *plan) {
  seen_set met = {0};
  batch pop = {0}, next = {0};
  int rc = 0;
  /* the measured ones, best first */
  size_t *order = malloc((m->snap.n ? m->snap.n : 1) * sizeof *order);
  if (!order) return -ENOMEM;
  for (size_t i = 0; i < m->snap.n; i++) order[i] = i;
  qsort_r(order, m->snap.n, sizeof *order, by_score, m->snap.y);
  for (size_t i = 0; rc == 0 && i < m->snap.n && pop.n < EVO_POP / 4; i++)
    if (!seen_has(&met, m->snap.index[order[i]]) && (rc = seen_add(&met, m->snap.index[order[i]])) == 0)
      rc = batch_add(m, &pop, m->snap.index[order[i]]);
  for (int i = 0; rc == 0 && i < EVO_DRAWS && pop.n < EVO_POP; i++) {
    uint64_t index = rng_below(&m->g, m->sp->size);
    int ok = 0;
    if (seen_has(&met, index) || space_walk_check(m->check, index, &ok, NULL) < 0 || !ok) continue;
    if ((rc = seen_add(&met, index)) == 0) rc = batch_add(m, &pop, index);
  }
  if (rc == 0) rc = score_batch(m, b, &pop, plan);
  size_t *rank = NULL;
  for (int round = 0; rc == 0 && round < EVO_ROUNDS; round++) {
    next.n = 0;
    int64_t v[64];
    uint64_t nb[EVO_NEIGHBOURS];
    for (size_t i = 0; rc == 0 && i < pop.n; i++) {
      size_t n = 0;
      if (space_config(m->sp, pop.index[i], v) < 0 ||
          features_neighbours(m->sp, v, nb, EVO_NEIGHBOURS, &n) < 0)
        continue;
      for (size_t k = 0; rc == 0 && k < n; k++)
        if (!seen_has(&met, nb[k]) && (rc = seen_add(&met, nb[k])) == 0)
          rc = batch_add(m, &next, nb[k]);
    }
    if (rc == 0) rc = score_batch(m, b, &next, plan);
    if (rc != 0 || next.n == 0) break;
    /* the next population: the best-scored of the new configs */
    free(rank);
    rank = malloc(next.n * sizeof *rank);
    if (!rank) {
      rc = -ENOMEM;
      break;
    }
    for (size_t i = 0; i < next.n; i++) rank[i] = i;
    qsort_r(rank, next.n, sizeof *rank, by_score, next.score);
    pop.n = 0;
    for (size_t i = 0; rc == 0 && i < next.n && i < EVO_POP; i++)
      rc = batch_add(m, &pop, next.index[rank[i]]);
  }
  free(rank);
  free(order);
  batch_free(&pop);
  batch_free(&next);
  seen_free(&met);
  return rc;
}

static int model_train(void *state) {
  model_search *m = state;
  double t0 = now_ms();
  BoosterHandle b = NULL;
  m->trained_on = m->snap.n;
  m->nplan = m->plan_at = 0;
  m->plan_random = PLAN_RANDOM;
  m->scored = 0;
  m->err[0] = 0;
  /* A model that cannot be trained leaves the plan to random picks. */
  if (train_booster(m, &b) < 0) return 0;
  double t1 = now_ms();
  top plan = {0};
  int rc = m->sp->size <= SCORE_ALL_MAX ? score_all(m, b, &plan) : evolve(m, b, &plan);
  XGBoosterFree(b);
  if (rc == -ENOMEM) return rc;
  memcpy(m->plan, plan.index, plan.n * sizeof plan.index[0]);
  m->nplan = plan.n;
  m->train_ms = t1 - t0;
  m->score_ms = now_ms() - t1;
  return 0;
}

/* Before the first training, guesses beyond the results it needs are
 * wasted; with a plan spent and nothing new to learn from, a plan's worth
 * of results is worth waiting for. */
static uint32_t model_ahead(const void *state) {
  const model_search *m = state;
  if (!m->trained_on) return m->ok < MIN_TRAIN ? MIN_TRAIN - m->ok : 1;
  if (m->plan_at < m->nplan || m->plan_random) return UINT32_MAX;
  return PLAN_MODEL + PLAN_RANDOM;
}

static void model_describe(const void *state, char *out, size_t len) {
  const model_search *m = state;
  if (m->err[0])
    snprintf(out, len, "model: cannot learn (%s); choosing at random", m->err);
  else if (!m->trained_on)
    snprintf(out, len, "model: random start, %u of %d results in", m->ok < MIN_TRAIN ? m->ok : MIN_TRAIN,
             MIN_TRAIN);
  else
    snprintf(out, len,
             "model: trained on %zu trials, %.0f ms; next %zu chosen by the model "
             "(%zu scored, %.0f ms), %d at random",
             m->trained_on, m->train_ms, m->nplan, m->scored, m->score_ms, PLAN_RANDOM);
}

static const char *model_note(const void *state) {
  const model_search *m = state;
  return tuner_random.note(m->rnd);
}

static void model_free(void *state) {
  model_search *m = state;
  if (m->rnd) tuner_random.free(m->rnd);
  seen_free(&m->proposed);
  rows_free(&m->data);
  rows_free(&m->snap);
  space_walk_free(m->check);
  features_free(m->feat);
  free(m);
}

static int model_new(const space *sp, uint64_t seed, void **state) {
  model_search *m = calloc(1, sizeof *m);
  if (!m) return -ENOMEM;
  m->sp = sp;
  m->seed = seed;
  m->nf = features_count(sp);
  rng_seed(&m->g, seed ^ 0x6d6f64656cULL);
  if (tuner_random.new(sp, seed, &m->rnd) < 0 || space_walk_new(sp, &m->check, NULL, 0) < 0 ||
      features_new(sp, &m->feat, NULL, 0) < 0) {
    model_free(m);
    return -ENOMEM;
  }
  *state = m;
  return 0;
}

const tuner_strategy tuner_model = {
    .new = model_new,
    .step = model_step,
    .observe = model_observe,
    .restore = model_restore,
    .prior = model_restore,
    .train = model_train,
    .ahead = model_ahead,
    .note = model_note,
    .describe = model_describe,
    .free = model_free,
};
