/* Confirmation: at the end of a session its few best configs are measured
 * again, taking turns on one runner, pass after pass, and the winner is
 * chosen from those numbers. A search measures each config once, at one
 * moment; the machine drifts between moments (the same config can measure
 * 20% apart in two sessions), so the search's best may be a lucky moment.
 * Taking turns on one runner puts every candidate through the same drift.
 *
 * The candidates' jobs are built once and run CONFIRM_PASSES times each;
 * their ids come from a range the history's jobs table never uses, so a
 * restarted tracker does not queue them as search trials. Their rounds
 * never become trials: the search trial of each candidate gets its
 * confirmed latency (store_trial_confirm). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/wire.h"
#include "tracker/tracker.h"

#define WHO "tracker"
/* Passes over the candidates: each pass is one run of each, with the
 * session's own timing options, so a candidate gets PASSES x repeat rounds. */
#define CONFIRM_PASSES 5
/* Job ids of confirmation runs: far above any row of the jobs table. */
#define CONFIRM_ID_BASE (UINT64_C(1) << 62)

typedef struct {
  int64_t trial;           /* its search trial's row */
  int64_t *values;
  char *config;
  char digest[65];
  double search_s;         /* its mean in the search */
  double *costs;           /* rounds gathered, seconds per call */
  size_t ncosts;
  uint32_t passes;
  int failed;
  int queued;              /* its job exists */
} confirm_cand;

struct confirm {
  confirm_cand c[CONFIRM_MAX];
  uint32_t n;              /* candidates, best search mean first */
  int running;
  int finished;
};

static void cand_clear(confirm_cand *c) {
  free(c->values);
  free(c->config);
  free(c->costs);
  memset(c, 0, sizeof(*c));
}

void confirm_free(session *s) {
  if (!s->cf) return;
  for (uint32_t i = 0; i < CONFIRM_MAX; i++) cand_clear(&s->cf->c[i]);
  free(s->cf);
  s->cf = NULL;
}

/* Keeps the config when it is among the s->confirm fastest so far. trial
 * 0: its row is looked up by digest when confirmation starts. */
static void note(session *s, const int64_t *values, const char *config, double mean_s,
                 int64_t trial, const char *digest) {
  if (!s->cf && !(s->cf = calloc(1, sizeof(*s->cf)))) return;
  confirm *cf = s->cf;
  uint32_t want = s->confirm < CONFIRM_MAX ? s->confirm : CONFIRM_MAX;
  if (cf->running) return;
  uint32_t at = cf->n;
  while (at > 0 && cf->c[at - 1].search_s > mean_s) at--;
  if (at >= want) return;
  for (uint32_t i = 0; i < cf->n; i++)
    if (!strcmp(cf->c[i].digest, digest)) return; /* the same config, measured twice */
  if (cf->n == want) cand_clear(&cf->c[--cf->n]);
  memmove(&cf->c[at + 1], &cf->c[at], (cf->n - at) * sizeof(cf->c[0]));
  confirm_cand *c = &cf->c[at];
  memset(c, 0, sizeof(*c));
  size_t nk = s->task.nknobs;
  c->values = malloc((nk ? nk : 1) * sizeof(int64_t));
  c->config = strdup(config);
  if (!c->values || !c->config) {
    free(c->values);
    free(c->config);
    memmove(&cf->c[at], &cf->c[at + 1], (cf->n - at) * sizeof(cf->c[0]));
    memset(&cf->c[cf->n], 0, sizeof(cf->c[0]));
    return;
  }
  memcpy(c->values, values, nk * sizeof(int64_t));
  c->trial = trial;
  c->search_s = mean_s;
  snprintf(c->digest, sizeof(c->digest), "%s", digest);
  cf->n++;
}

void confirm_note(session *s, const int64_t *values, const char *config, const hist_trial *tr) {
  /* Measured, not answered from the history: a session answered wholly
   * from the history must not wait for a runner at its end (its earlier
   * trials come in through confirm_note_known when it confirms). */
  if (!s->confirm || !tr->id || !(tr->mean_s > 0) || !tr->digest || tr->reused > 0) return;
  note(s, values, config, tr->mean_s, tr->id, tr->digest);
}

void confirm_note_known(session *s, const int64_t *values, const char *config, double mean_s) {
  char digest[65];
  if (!s->confirm || !(mean_s > 0) || trial_digest(s, config, digest) < 0) return;
  note(s, values, config, mean_s, 0, digest);
}

int confirm_running(const session *s) { return s->cf && s->cf->running; }

/* The candidate whose turn is next after `after`: round robin over those
 * with passes to go; -1 when none has. */
static int next_turn(const confirm *cf, int after) {
  for (uint32_t k = 1; k <= cf->n; k++) {
    uint32_t i = (uint32_t)(after + (int)k) % cf->n;
    if (!cf->c[i].failed && cf->c[i].passes < CONFIRM_PASSES) return (int)i;
  }
  return -1;
}

int confirm_start(tracker *t, session *s) {
  confirm *cf = s->cf;
  if (!cf || cf->running || cf->finished || !cf->n || t->replay || s->ext) return 0;
  cf->running = 1;
  s->confirm_turn = 0;
  s->confirm_runner[0] = 0;
  for (uint32_t i = 0; i < cf->n; i++) {
    confirm_cand *c = &cf->c[i];
    if (!c->trial) {
      /* From the history: its newest ok row is the one confirmed. */
      store_found f;
      if (store_find_ok(t->db, c->digest, &f) == 1) c->trial = f.id;
      store_found_clear(&f);
      if (!c->trial) {
        c->failed = 1;
        continue;
      }
    }
    uint64_t idx = 0;
    space_index(&s->sp, c->values, &idx);
    job *j = jobs_add(t, s, CONFIRM_ID_BASE + ++t->confirm_ids, idx, c->values, c->config,
                      c->digest, 0);
    if (!j) {
      c->failed = 1;
      continue;
    }
    j->confirm = i + 1;
    c->queued = 1;
  }
  int first = next_turn(cf, -1);
  if (first < 0) {
    cf->running = 0;
    cf->finished = 1;
    return 0;
  }
  s->confirm_turn = (uint32_t)first + 1;
  snprintf(s->search, sizeof(s->search),
           "confirming: the best %u configs measured again, taking turns on one runner, %d "
           "passes", cf->n, CONFIRM_PASSES);
  log_info(WHO, "session %llu: confirming its best %u configs", (unsigned long long)s->id, cf->n);
  return 1;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Every candidate has its passes (or failed): store the confirmed
 * latencies and make the fastest confirmed config the session's best. */
static void finish(tracker *t, session *s) {
  confirm *cf = s->cf;
  cf->running = 0;
  cf->finished = 1;
  int win = -1;
  double win_s = 0;
  core_db_write(t);
  for (uint32_t i = 0; i < cf->n; i++) {
    confirm_cand *c = &cf->c[i];
    if (c->failed || !c->ncosts) continue;
    qsort(c->costs, c->ncosts, sizeof(double), cmp_double);
    double med = c->ncosts % 2 ? c->costs[c->ncosts / 2]
                               : (c->costs[c->ncosts / 2 - 1] + c->costs[c->ncosts / 2]) / 2;
    if (store_trial_confirm(t->db, c->trial, med, c->costs, c->ncosts) < 0)
      log_error(WHO, "history: cannot store trial %lld's confirmed latency: %s",
                (long long)c->trial, hist_errmsg(t->db));
    if (win < 0 || med < win_s) win = (int)i, win_s = med;
  }
  s->search_best_s = s->best_latency;
  if (win >= 0) {
    confirm_cand *c = &cf->c[win];
    memcpy(s->best_values, c->values, s->task.nknobs * sizeof(int64_t));
    s->best_latency = c->search_s;
    s->best_gflops = trial_gflops(s->flops, c->search_s);
    s->confirmed_s = win_s;
    s->confirmed_n = 0;
    for (uint32_t i = 0; i < cf->n; i++) s->confirmed_n += !cf->c[i].failed && cf->c[i].ncosts;
  }
  snprintf(s->search, sizeof(s->search), "confirmed: %u of the best configs, %d passes each on "
           "runner %s", s->confirmed_n, CONFIRM_PASSES, s->confirm_runner);
}

int confirm_result(tracker *t, job *j, Ktune__TrialStatus status, const double *costs,
                   size_t ncosts) {
  session *s = j->s;
  confirm *cf = s ? s->cf : NULL;
  if (!cf || !cf->running || j->confirm == 0 || j->confirm > cf->n) return 0;
  confirm_cand *c = &cf->c[j->confirm - 1];
  int keep = 0;
  if (status != WIRE_TRIAL(OK)) {
    /* It ran well in the search: whatever failed now, it cannot win. */
    c->failed = 1;
    log_info(WHO, "session %llu: config %s failed its confirmation (%s)",
             (unsigned long long)s->id, c->config, wire_status_name(status));
  } else {
    double *nc = realloc(c->costs, (c->ncosts + ncosts) * sizeof(double));
    if (nc) {
      memcpy(nc + c->ncosts, costs, ncosts * sizeof(double));
      c->costs = nc;
      c->ncosts += ncosts;
    }
    c->passes++;
    /* Kept after its last pass too: if the runner goes, every candidate
     * starts over (confirm_sweep). */
    keep = 1;
  }
  int next = next_turn(cf, (int)j->confirm - 1);
  if (next >= 0) s->confirm_turn = (uint32_t)next + 1;
  else finish(t, s);
  return keep ? 1 : 2;
}

int confirm_finished(const session *s) { return s->cf && s->cf->finished; }

int confirm_sweep(tracker *t, session *s) {
  confirm *cf = s->cf;
  if (!cf || !cf->running) return 0;
  if (!jobs_key_runners(t, s)) {
    /* The search is done and its results are in: no runner to confirm on
     * is no reason to hold them back. What was confirmed counts. */
    log_info(WHO, "session %llu: no runner of key %s to confirm on; its search's best stands",
             (unsigned long long)s->id, s->key);
    snprintf(s->message, sizeof(s->message), "no runner of key '%s' was there to confirm the "
             "best configs on; the search's best stands", s->key);
    finish(t, s);
    return 1;
  }
  if (!s->confirm_runner[0]) return 0;
  for (peer *p = t->peers; p; p = p->next)
    if (p->state == PEER_READY && p->role == KTUNE__ROLE__ROLE_RUNNER && p->c && !p->draining &&
        !guard_quarantined(t, p) && !strcmp(p->name, s->confirm_runner))
      return 0;
  /* Its runner is gone: the rounds it gave are not comparable with
   * another's. Start over on whichever runner takes the next turn. */
  log_info(WHO, "session %llu: runner %s left during confirmation; starting it over",
           (unsigned long long)s->id, s->confirm_runner);
  s->confirm_runner[0] = 0;
  for (uint32_t i = 0; i < cf->n; i++) {
    free(cf->c[i].costs);
    cf->c[i].costs = NULL;
    cf->c[i].ncosts = 0;
    cf->c[i].passes = 0;
  }
  int next = next_turn(cf, -1);
  s->confirm_turn = next >= 0 ? (uint32_t)next + 1 : 0;
  jobs_dispatch(t);
  return 0;
}
