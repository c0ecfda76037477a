/* The tuner: picks a strategy by name and holds what every strategy
 * shares (the space, the end of the search, the values of a proposal). */
#include "tuner/tuner.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
  const char *name;
  const tuner_strategy *strategy;
} strategies[] = {
    {"random", &tuner_random},
    {"grid", &tuner_grid},
    {"ga", &tuner_ga},
    {"model", &tuner_model},
};
#define NSTRATEGIES (sizeof(strategies) / sizeof(strategies[0]))
static const char *const names[] = {TUNER_STRATEGY_NAMES};
_Static_assert(sizeof(names) / sizeof(names[0]) == NSTRATEGIES,
               "TUNER_STRATEGY_NAMES names every strategy of the table, in its order");

struct tuner {
  const tuner_strategy *st;
  void *state;
  space sp;      /* the strategy's, so that the caller's may go */
  int done;      /* the strategy said there are no more */
  int stepped;   /* it has been asked for a proposal: too late to restore */
};

static void unknown(const char *strategy, char *err, size_t errlen) {
  if (!err || !errlen) return;
  size_t off = (size_t)snprintf(err, errlen, "unknown strategy '%.64s' (known:",
                                strategy ? strategy : "");
  for (size_t i = 0; i < NSTRATEGIES && off < errlen; i++)
    off += (size_t)snprintf(err + off, errlen - off, "%s %s", i ? "," : "", strategies[i].name);
  if (off < errlen) snprintf(err + off, errlen - off, ")");
}

int tuner_new(const char *strategy, const space *sp, uint64_t seed, tuner **out, char *err,
              size_t errlen) {
  *out = NULL;
  const tuner_strategy *st = NULL;
  for (size_t i = 0; strategy && i < NSTRATEGIES; i++)
    if (strcmp(strategy, strategies[i].name) == 0) st = strategies[i].strategy;
  if (!st) {
    unknown(strategy, err, errlen);
    return -EINVAL;
  }
  if (!sp || !sp->task) {
    if (err && errlen) snprintf(err, errlen, "tuner: no config space");
    return -EINVAL;
  }
  tuner *t = calloc(1, sizeof *t);
  if (!t) goto oom;
  t->st = st;
  t->sp = *sp;
  if (st->new(&t->sp, seed, &t->state) < 0) goto oom;
  *out = t;
  return 0;
oom:
  tuner_free(t);
  if (err && errlen) snprintf(err, errlen, "tuner: out of memory");
  return -ENOMEM;
}

int tuner_step(tuner *t, int64_t *values, uint64_t *index, uint32_t budget) {
  if (!t) return -EINVAL;
  if (t->done) return 1;
  t->stepped = 1;
  uint64_t i;
  int rc = t->st->step(t->state, &i, budget ? budget : 1);
  if (rc == 1) t->done = 1;
  if (rc != 0) return rc;
  if (values && space_config(&t->sp, i, values) < 0) return -ERANGE;
  if (index) *index = i;
  return 0;
}

int tuner_train(tuner *t) {
  if (!t || !t->st->train) return -EINVAL;
  return t->st->train(t->state);
}

int tuner_next(tuner *t, int64_t *values, uint64_t *index) {
  int rc;
  while ((rc = tuner_step(t, values, index, UINT32_MAX)) == TUNER_AGAIN ||
         rc == TUNER_TRAIN)
    if (rc == TUNER_TRAIN && (rc = tuner_train(t)) < 0) return rc;
  return rc;
}

int tuner_observe(tuner *t, const tuner_trial *tr) {
  if (!t || !tr || tr->index >= t->sp.size) return -EINVAL;
  return t->st->observe ? t->st->observe(t->state, tr) : 0;
}

/* Trials handed over before the first step, each of the space. */
static int before_first_step(const tuner *t, const tuner_trial *trials, size_t n) {
  if (!t || t->stepped || (n && !trials)) return -EINVAL;
  for (size_t i = 0; i < n; i++)
    if (trials[i].index >= t->sp.size) return -ERANGE;
  return 0;
}

int tuner_restore(tuner *t, const tuner_trial *trials, size_t n) {
  int rc = before_first_step(t, trials, n);
  return rc < 0 ? rc : t->st->restore(t->state, trials, n);
}

int tuner_prior(tuner *t, const tuner_trial *trials, size_t n) {
  int rc = before_first_step(t, trials, n);
  if (rc < 0 || !t->st->prior) return rc;
  return t->st->prior(t->state, trials, n);
}

int tuner_uses_prior(const tuner *t) {
  return t && t->st->prior;
}

uint32_t tuner_ahead(const tuner *t) {
  if (!t || !t->st->ahead) return UINT32_MAX;
  uint32_t n = t->st->ahead(t->state);
  return n ? n : 1;
}

void tuner_describe(const tuner *t, char *out, size_t len) {
  if (!len) return;
  out[0] = 0;
  if (t && t->st->describe) t->st->describe(t->state, out, len);
}

const char *tuner_note(const tuner *t) {
  return t && t->st->note ? t->st->note(t->state) : NULL;
}

void tuner_free(tuner *t) {
  if (!t) return;
  if (t->state) t->st->free(t->state);
  free(t);
}
