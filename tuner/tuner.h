/* The search: a tuner proposes configs of a space, is told the outcome of
 * every trial, and after a restart restores itself from the trials its
 * session already has, so that it never proposes a config twice in a
 * session. How it searches is its strategy's business: a strategy is one
 * file in tuner/ and one line in the table in tuner.c.
 *   grid:   valid configs in index order.
 *   random: valid configs in a shuffled order that the seed decides.
 *   ga:     evolution over the valid configs (tuner/ga.c).
 *   model:  a cost model learned from the trials chooses each batch
 *           (tuner/model.c).
 * Each finds every valid config, however few, and says there are no more
 * only when every one has been proposed. */
#ifndef KTUNE_TUNER_H
#define KTUNE_TUNER_H

#include <stddef.h>
#include <stdint.h>

#include "common/space.h"

typedef struct tuner tuner;

/* A trial of the session as the tuner hears of it: when it ended
 * (tuner_observe), or from the history after a restart (tuner_restore). */
typedef struct {
  uint64_t index;          /* the config's index in the space */
  const int64_t *values;   /* its knob values (space_config of index) */
  const char *status;      /* "ok", a trial error code (COMPILE_ERROR, ...),
                            * or NULL: proposed and not finished yet */
  double mean_s;           /* seconds per call of an ok trial, else 0 */
  double gflops;           /* of an ok trial, else 0 */
} tuner_trial;

/* What a strategy does. Its state is its own; the space outlives it. */
typedef struct {
  /* A search of sp; the seed alone decides its random choices. */
  int (*new)(const space *sp, uint64_t seed, void **state);
  /* The next config's *index: 0; 1 when there are no more; TUNER_AGAIN
   * after about `budget` units of work (see tuner_step); negative on
   * error. Its proposals may not depend on the budgets. */
  int (*step)(void *state, uint64_t *index, uint32_t budget);
  /* The outcome of a trial it proposed. NULL: it does not learn. */
  int (*observe)(void *state, const tuner_trial *tr);
  /* On a new state, before its first step: the session's trials so far,
   * oldest first, and those proposed and not finished. None of them may
   * be proposed again. */
  int (*restore)(void *state, const tuner_trial *trials, size_t n);
  /* Earlier trials of the same kernel under the same conditions, from
   * other sessions, before the first step: a strategy that learns starts
   * from them and does not propose them. NULL: it ignores them. */
  int (*prior)(void *state, const tuner_trial *trials, size_t n);
  /* Work too slow for the event loop (training a model): step returned
   * TUNER_TRAIN, and wants this done before it is called again. It may
   * run on another thread, so it touches only what step set aside for it;
   * observe may be called meanwhile. NULL: the strategy never asks. */
  int (*train)(void *state);
  /* How many proposals may wait for their results before more are worth
   * making: a search about to learn from results would otherwise fill
   * the farm's queue with guesses. The caller keeps at least one trial
   * in flight whatever it says. NULL: no limit. */
  uint32_t (*ahead)(const void *state);
  /* A short human note on what the search met, or NULL. May be NULL. */
  const char *(*note)(const void *state);
  /* What the search is doing, in words for the progress line ("ga:
   * generation 5, population 32, best 210.4 GFLOPS"); "" when nothing to
   * say. May be NULL. */
  void (*describe)(const void *state, char *out, size_t len);
  void (*free)(void *state);
} tuner_strategy;

extern const tuner_strategy tuner_grid, tuner_random, tuner_ga, tuner_model;

/* The strategy of a session that names none. */
#define TUNER_DEFAULT "model"

/* The strategies by name, in the order of tuner.c's table. */
#define TUNER_STRATEGY_NAMES "random", "grid", "ga", "model"

/* The name of the i-th strategy, NULL past the end (names.c: a program
 * that only names strategies, the CLI, links none of them, nor XGBoost). */
const char *tuner_strategy_name(size_t i);

/* Unknown strategy names are an error naming the known ones. */
int tuner_new(const char *strategy, const space *sp, uint64_t seed, tuner **out,
              char *err, size_t errlen);

/* Next config: returns 0 and fills values (sp->task->nknobs) and *index;
 * 1 when every valid config has been proposed; negative on error. */
int tuner_next(tuner *t, int64_t *values, uint64_t *index);

/* The same, but does about `budget` units of work (a unit is one run of a
 * part of a constraint, at least one per config looked at; see
 * space_walk_next): returns TUNER_AGAIN when it has not found one yet, so
 * that a caller on an event loop can go on later instead of stalling. The
 * configs proposed do not depend on the budgets. */
#define TUNER_AGAIN SPACE_AGAIN
/* Or TUNER_TRAIN: call tuner_train (on any thread, but no other call on
 * this tuner until it returns, except tuner_observe) before stepping
 * again. */
#define TUNER_TRAIN 3
int tuner_step(tuner *t, int64_t *values, uint64_t *index, uint32_t budget);

/* The work step asked for with TUNER_TRAIN. */
int tuner_train(tuner *t);

/* The outcome of a proposed config, for every trial that ends. */
int tuner_observe(tuner *t, const tuner_trial *tr);

/* After a restart, on a new tuner of the same strategy, space and seed,
 * before its first step: the session's trials from the history and the
 * proposals not finished yet. It goes on from there without proposing any
 * of them again; -EINVAL once it has proposed. */
int tuner_restore(tuner *t, const tuner_trial *trials, size_t n);

/* Earlier trials of the same kernel, compiler, key and timing from other
 * sessions, before the first step (see the strategy's prior); after
 * tuner_restore if both are called. Ignored by grid and random. */
int tuner_prior(tuner *t, const tuner_trial *trials, size_t n);
/* 1 when the strategy learns from prior trials. */
int tuner_uses_prior(const tuner *t);

/* Proposals worth having in flight now (the strategy's ahead; UINT32_MAX
 * when it sets no limit, at least 1). */
uint32_t tuner_ahead(const tuner *t);

/* The strategy's words on what it is doing, "" when none (see describe). */
void tuner_describe(const tuner *t, char *out, size_t len);

/* The strategy's note: for grid and random, the first constraint error
 * met while searching (which ruled configs out), naming the constraint,
 * its expression and the knob values (space_walk_note), or NULL. */
const char *tuner_note(const tuner *t);

void tuner_free(tuner *t);

#endif
