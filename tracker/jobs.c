/* The job queue. A job is one candidate of one session and moves
 * BUILD_QUEUED -> BUILDING -> RUN_QUEUED -> RUNNING -> (recorded, freed).
 * A job handed to an agent is leased to it; when the agent goes, the job
 * goes back one step, and after max_lost such losses it ends as
 * RUNNER_LOST. Builders run ahead of runners by a bounded amount so that a
 * runner finds an artifact waiting. Each job is a row of the history's jobs
 * table until its trial is recorded, in the same transaction.
 *
 * Only what a kernel did is recorded against it. An agent's refusal, a
 * report its role cannot make, an implausible number or a job held past
 * its deadline sends the job back to the queue and marks the agent
 * (guard.c). A failure is confirmed by a second agent when another one
 * could try, so one lying agent cannot fail a session's trials. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/identity.h"
#include "common/log.h"
#include "common/target.h"
#include "common/text.h"
#include "common/timing.h"
#include "common/wire.h"
#include "tracker/tracker.h"

#define WHO "tracker"
/* Bytes of an agent's error text kept: compiler diagnostics fit. */
#define MAX_ERROR_TEXT 4096

/* Rounds shorter than this are not measured again for their spread: a
 * cache miss or the clock's own cost is a large part of such a round, so
 * a second measurement of the same length spreads as much. The cure is
 * longer rounds (--min-repeat-ms, --number), which the log says. */
#define REMEASURE_MIN_ROUND_S 10e-6

static double round_mean(const double *c, size_t n) {
  double mean = 0;
  for (size_t i = 0; i < n; i++) mean += c[i];
  return n ? mean / (double)n : 0;
}

/* std / mean of a measurement's rounds; 0 with fewer than two. */
static double round_cv(const double *c, size_t n) {
  if (n < 2) return 0;
  double mean = round_mean(c, n), var = 0;
  for (size_t i = 0; i < n; i++) var += (c[i] - mean) * (c[i] - mean);
  return mean > 0 ? sqrt(var / (double)(n - 1)) / mean : 0;
}

/* Whether a measurement whose rounds spread cv is measured again: once,
 * and only when its rounds are long enough for that to help. */
static int remeasure_spread(tracker *t, job *j, const Ktune__RunResult *r, double cv) {
  if (!t->opts.remeasure_spread_pct || cv * 100 <= t->opts.remeasure_spread_pct || j->confirm ||
      j->retried_cv)
    return 0;
  uint32_t number = r->number ? r->number : j->s->timing.number;
  double round_s = round_mean(r->costs_s, r->n_costs_s) * (number ? number : 1);
  if (round_s >= REMEASURE_MIN_ROUND_S) return 1;
  if (!j->s->short_rounds_said) {
    j->s->short_rounds_said = 1;
    log_info(WHO, "session %llu: its rounds of %.2f us spread %.0f%% (std / mean), too short to "
                  "say more when measured again; --min-repeat-ms 1 would make each round last 1 "
                  "ms (docs/MEASUREMENT.md)",
             (unsigned long long)j->s->id, round_s * 1e6, cv * 100);
  }
  return 0;
}

job *jobs_add(tracker *t, session *s, uint64_t id, uint64_t index, const int64_t *values,
              const char *config_json, const char *digest, uint32_t lost) {
  job *j = calloc(1, sizeof(*j));
  if (!j) return NULL;
  size_t nk = s->task.nknobs;
  j->values = malloc((nk ? nk : 1) * sizeof(int64_t));
  j->config_json = strdup(config_json);
  if (!j->values || !j->config_json) {
    free(j->values);
    free(j->config_json);
    free(j);
    return NULL;
  }
  memcpy(j->values, values, nk * sizeof(int64_t));
  j->id = id;
  /* A row written in the open transaction is durable once it commits. */
  j->durable_at = t->commits + (t->txn_open ? 1 : 0);
  j->s = s;
  j->index = index;
  j->lost = lost;
  if (digest) snprintf(j->digest, sizeof(j->digest), "%s", digest);
  if (queue_add(t, j) < 0) {
    free(j->values);
    free(j->config_json);
    free(j);
    return NULL;
  }
  j->prev = t->jobs_tail;
  if (t->jobs_tail) t->jobs_tail->next = j;
  else t->jobs = j;
  t->jobs_tail = j;
  return j;
}

/* ---- who holds what, and who waits for work ---- */

/* The lease list of j's holder follows j->owner, and so does the
 * runner time its owner is charged (share.c). */
static void set_owner(job *j, peer *p) {
  peer *o = j->owner;
  if (o) {
    if (j->lprev) j->lprev->lnext = j->lnext;
    else o->leases = j->lnext;
    if (j->lnext) j->lnext->lprev = j->lprev;
    j->lnext = j->lprev = NULL;
    share_run_stop(o->t, j);
  }
  j->owner = p;
  if (p) {
    j->lnext = p->leases;
    if (p->leases) p->leases->lprev = j;
    p->leases = j;
    if (p->role == KTUNE__ROLE__ROLE_RUNNER) share_run_start(j);
  }
}

/* t->avoiding counts the jobs that avoid an agent, so that the sweep
 * looks for them only when there are any. */
static void avoid_set(tracker *t, job *j, const char *name) {
  if (!j->avoid[0]) t->avoiding++;
  snprintf(j->avoid, sizeof(j->avoid), "%s", name);
}

static void avoid_clear(tracker *t, job *j) {
  if (j->avoid[0]) t->avoiding--;
  j->avoid[0] = 0;
}

void jobs_peer_changed(tracker *t, peer *p) {
  int runner = p->role == KTUNE__ROLE__ROLE_RUNNER;
  int agent = runner || p->role == KTUNE__ROLE__ROLE_BUILDER;
  int up = p->state == PEER_READY && p->c && !p->draining;
  if ((agent && up) != p->serving) {
    p->serving = agent && up;
    t->tally_due = 1;
  }
  /* NULL when out of memory: the runner waits, and the sweep asks again. */
  if (runner && p->serving && !p->kq && (p->kq = queue_key_make(t, p->key))) p->kq->runners++;
  int idle = up && p->busy < p->slots && (runner ? p->kq != NULL : p->role == KTUNE__ROLE__ROLE_BUILDER);
  if (idle != p->idle) {
    peer **head = runner ? &p->kq->idle : &t->idle_builders;
    if (idle) {
      p->free_ns = uv_hrtime();
      p->idle_prev = NULL;
      p->idle_next = *head;
      if (*head) (*head)->idle_prev = p;
      *head = p;
      jobs_dispatch(t);
    } else {
      if (p->idle_prev) p->idle_prev->idle_next = p->idle_next;
      else *head = p->idle_next;
      if (p->idle_next) p->idle_next->idle_prev = p->idle_prev;
      p->idle_next = p->idle_prev = NULL;
    }
    p->idle = idle;
  }
  if (!p->c && p->kq) {
    /* Leaving: its key's queue may go with it. */
    keyq *k = p->kq;
    p->kq = NULL;
    k->runners--;
    queue_key_release(t, k);
  }
}

static void busy_add(tracker *t, peer *p, int delta) {
  if (delta < 0 && !p->busy) return;
  p->busy += (uint32_t)delta;
  jobs_peer_changed(t, p);
}

static void job_unlink(tracker *t, job *j) {
  set_owner(j, NULL);
  avoid_clear(t, j);
  queue_remove(t, j);
  if (j->prev) j->prev->next = j->next;
  else t->jobs = j->next;
  if (j->next) j->next->prev = j->prev;
  else t->jobs_tail = j->prev;
}

static void job_release_memory(job *j) {
  free(j->values);
  free(j->config_json);
  free(j->artifact);
  free(j->compiler_id);
  free(j->held_error);
  free(j);
}

static void job_free(tracker *t, job *j) {
  job_unlink(t, j);
  job_release_memory(j);
}

void jobs_free_all(tracker *t) {
  free(t->builders);
  t->builders = NULL;
  t->nbuilders = t->builders_cap = 0;
  while (t->jobs) job_free(t, t->jobs);
  t->queued[QUEUE_BUILD] = t->queued[QUEUE_RUN] = 0;
}

uint32_t jobs_outstanding(tracker *t, const session *s) {
  (void)t;
  return s->outstanding;
}

static int runner_ready(tracker *t, const peer *p) {
  return p->serving && p->role == KTUNE__ROLE__ROLE_RUNNER && !guard_quarantined(t, p);
}

static int refused(const peer *b, const char *compiler) {
  for (unsigned i = 0; i < b->nrefused && i < 4; i++)
    if (strncmp(b->refused[i], compiler, sizeof(b->refused[i]) - 1) == 0) return 1;
  return 0;
}

static int can_build(const peer *b, const session *s, const char *arch) {
  if (refused(b, s->compiler)) return 0;
  /* The submission spelled a built-in compiler TARGET_BUILTIN_COMPILER
   * (submit.c): a compare, not a parse, on every pick. */
  int tcc = strcmp(s->compiler, TARGET_BUILTIN_COMPILER) == 0;
  if (tcc ? !b->has_tcc : !b->has_cc) return 0;
  /* libtcc makes code for its own machine only; other compilers for the
   * architectures the builder advertises (its own and its --compiler
   * commands' targets), and the builder checks the command's own. */
  if (tcc || b->narchs == 0) return strcmp(b->arch, arch) == 0;
  for (size_t i = 0; i < b->narchs; i++)
    if (strcmp(b->archs[i], arch) == 0) return 1;
  return 0;
}

/* The architecture to build a job of s for on builder b: each runner
 * says its own, and the one most ready runners of the key share among
 * those b can make wins (the key's tally, from this dispatch). A runner
 * whose architecture nobody builds for waits alone; it never steers the
 * others' builds. NULL when none fits. */
static const char *build_arch(const peer *b, const session *s) {
  const keyq *k = s->kq;
  const char *best = NULL;
  uint32_t best_n = 0;
  for (uint32_t i = 0; i < k->narchs; i++)
    if (k->archs[i].n > best_n && can_build(b, s, k->archs[i].arch))
      best = k->archs[i].arch, best_n = k->archs[i].n;
  return best;
}

/* The run limit a runner applies to a job (runner/main.c), the same
 * function, so that the tracker's deadline is never the shorter one. */
static uint64_t run_limit_ms(const session *s) { return timing_limit_ms(&s->timing); }

static void lease(tracker *t, job *j, peer *p, enum job_state state, uint64_t limit_ms) {
  queue_set(t, j, state);
  set_owner(j, p);
  j->deadline = uv_now(t->loop) + limit_ms + t->opts.grace_ms;
  busy_add(t, p, 1);
}

/* j was just queued to p. A job whose row is committed may reach its
 * agent before the open transaction commits: it claims nothing about it
 * (results are acknowledged only after it, jobs_committed). One whose row
 * is in the open transaction waits for it: were the tracker to stop
 * first, its id could name another job after the restart, and the
 * agent's result for the one would answer for the other. */
static void acks_send(peer *p, uint32_t n);

static void sent(tracker *t, peer *p, const job *j) {
  if (p->acks_parked) acks_send(p, p->acks_parked);
  if (t->commits >= j->durable_at) p->send_now = 1;
  else p->send_late = 1;
  registry_due(t, p, 1);
}

static void send_build(tracker *t, peer *b, job *j, const char *arch) {
  session *s = j->s;
  size_t nc = s->task.nconsts, nk = s->task.nknobs;
  Ktune__Param *params = calloc(nc + nk + 1, sizeof(*params));
  Ktune__Param **pp = calloc(nc + nk + 1, sizeof(*pp));
  if (!params || !pp) goto out;
  for (size_t i = 0; i < nc + nk; i++) {
    ktune__param__init(&params[i]);
    params[i].name = i < nc ? s->task.consts[i].name : s->task.knobs[i - nc].name;
    params[i].value = i < nc ? s->task.consts[i].value : j->values[i - nc];
    pp[i] = &params[i];
  }
  Ktune__BuildJob bj = KTUNE__BUILD_JOB__INIT;
  bj.job_id = j->id;
  bj.task = s->task.name;
  bj.source = s->task.source;
  bj.defines = pp;
  bj.n_defines = nc + nk;
  bj.compiler = s->compiler;
  bj.timeout_ms = t->opts.build_timeout_ms;
  bj.target_arch = (char *)arch;
  /* Runners keep one reference output for every config (RunJob.ref_key),
   * so the builder makes sure the reference cannot see the knobs. */
  bj.reference = s->check && s->task.reference ? s->task.reference : "";
  bj.knobs = (uint32_t)nk;
  if (core_send_msg(b, KTUNE__ENVELOPE__MSG_BUILD_JOB, &bj) == 0) {
    snprintf(j->arch, sizeof(j->arch), "%s", arch);
    lease(t, j, b, JOB_BUILDING, t->opts.build_timeout_ms);
    sent(t, b, j);
  }
out:
  free(params);
  free(pp);
}

static void send_run(tracker *t, peer *r, job *j) {
  session *s = j->s;
  size_t na = s->task.nargs;
  Ktune__Buffer *bufs = calloc(na + 1, sizeof(*bufs));
  Ktune__Buffer **bp = calloc(na + 1, sizeof(*bp));
  if (!bufs || !bp) goto out;
  for (size_t i = 0; i < na; i++) {
    ktune__buffer__init(&bufs[i]);
    bufs[i].type = s->task.args[i].type;
    bufs[i].count = s->counts[i];
    bufs[i].output = s->task.args[i].output;
    bufs[i].name = s->task.args[i].name;
    bp[i] = &bufs[i];
  }
  Ktune__RunJob rj = KTUNE__RUN_JOB__INIT;
  rj.job_id = j->id;
  rj.artifact.data = j->artifact;
  rj.artifact.len = j->artifact_len;
  rj.entry = s->task.entry;
  rj.reference = s->task.reference ? s->task.reference : "";
  rj.buffers = bp;
  rj.n_buffers = na;
  rj.seed = KTUNE_INPUT_SEED;
  rj.timing = &s->timing;
  rj.check = s->check && s->task.reference;
  rj.rtol = s->task.rtol;
  rj.atol = s->task.atol;
  rj.task = s->task.name;
  rj.size = s->size_json;
  /* The reference's output depends on its code (in the kernel digest)
   * and its inputs (the seed): the runner caches it under both. */
  char ref_key[96] = "";
  if (s->kernel[0]) snprintf(ref_key, sizeof(ref_key), "%s:%llu", s->kernel,
                             (unsigned long long)KTUNE_INPUT_SEED);
  rj.ref_key = ref_key;
  if (core_send_msg(r, KTUNE__ENVELOPE__MSG_RUN_JOB, &rj) == 0) {
    if (j->confirm && !s->confirm_runner[0])
      snprintf(s->confirm_runner, sizeof(s->confirm_runner), "%s", r->name);
    lease(t, j, r, JOB_RUNNING, run_limit_ms(s));
    sent(t, r, j);
    metrics_dispatched(t, j, r);
    t->hooks.job_started(t, s);
  }
out:
  free(bufs);
  free(bp);
}

/* The sessions' order of share.c (an admin's priority, then the owner
 * and the session with the least runner time, a client's priority
 * within its own), then the oldest job. Builds go in the order runs
 * will, or the run queue would hold what the runners should not take. */
static int better(tracker *t, const job *a, const job *b, int for_runner) {
  if (!b) return 1;
  int o = share_order(t, a->s, b->s, !for_runner);
  return o ? o < 0 : a->id < b->id;
}

/* A confirmation run goes when it is its candidate's turn, to the one
 * runner confirming (the first to take a turn); that runner takes it
 * even after failing to answer for it in time, since no other may. */
static int confirm_turn(const session *s, const job *j, const peer *r) {
  return j->confirm == s->confirm_turn &&
         (!s->confirm_runner[0] || !strcmp(s->confirm_runner, r->name));
}

/* The best job for runner r: the first in each session of its key that
 * it may take, then the best of those. Costs the key's sessions, not its
 * jobs (a runner skips only jobs of another arch or awaiting a second
 * opinion from someone else). */
static job *pick_run(const peer *r) {
  keyq *k = r->kq;
  if (!k || !k->queued[QUEUE_RUN]) return NULL;
  job *best = NULL;
  for (session *s = k->sessions; s; s = s->kq_next)
    for (job *j = s->qhead[QUEUE_RUN]; j; j = j->qnext)
      if (!strcmp(j->arch, r->arch) && (j->confirm ? confirm_turn(s, j, r)
                                                   : !j->avoid[0] || strcmp(j->avoid, r->name) != 0)) {
        if (better(r->t, j, best, 1)) best = j;
        break;
      }
  return best;
}

/* The best build of key k for builder b (k->build_pick), and its arch. */
static void pick_key_build(tracker *t, keyq *k, const peer *b) {
  k->build_pick = NULL;
  /* The target must be known: build only for a key that has a runner,
   * and only so far ahead of its runners. */
  uint32_t limit = k->ready > 1 ? 2 * k->ready : 2;
  if (!k->queued[QUEUE_BUILD] || !k->ready || k->ahead >= limit) return;
  /* The sessions of a key mostly share a compiler: its target once. */
  const char *memo_compiler = NULL, *memo_arch = NULL;
  for (session *s = k->sessions; s; s = s->kq_next) {
    if (!s->queued[QUEUE_BUILD]) continue;
    if (!memo_compiler || strcmp(memo_compiler, s->compiler) != 0) {
      memo_compiler = s->compiler;
      memo_arch = build_arch(b, s);
    }
    if (!memo_arch) continue;
    for (job *j = s->qhead[QUEUE_BUILD]; j; j = j->qnext)
      if (!j->avoid[0] || strcmp(j->avoid, b->name) != 0) {
        if (better(t, j, k->build_pick, 0)) k->build_pick = j, k->build_pick_arch = memo_arch;
        break;
      }
  }
}

/* The best build for b across keys. Each key's best is kept while b
 * takes jobs: a build reorders only its own key (its session's and
 * owner's levels, what the key has ahead), so after the first pick only
 * that key (changed) is looked at again, not every session of the farm. */
static job *pick_build(tracker *t, const peer *b, const keyq *changed, const char **arch_out) {
  job *best = NULL;
  for (keyq *k = t->keys; k; k = k->next) {
    if (!changed || k == changed) pick_key_build(t, k, b);
    if (k->build_pick && better(t, k->build_pick, best, 0))
      best = k->build_pick, *arch_out = k->build_pick_arch;
  }
  return best;
}

#define KEY_ARCHS (sizeof(((keyq *)0)->archs) / sizeof(((keyq *)0)->archs[0]))

/* arch's entry in k's tally; k->narchs when it has none. */
static uint32_t key_arch(const keyq *k, const char *arch) {
  uint32_t i = 0;
  while (i < k->narchs && strcmp(k->archs[i].arch, arch) != 0) i++;
  return i;
}

/* Counts each key's runners, and its ready ones by architecture (for
 * pick_build), when the roster has changed since. */
static void tally_runners(tracker *t) {
  if (!t->tally_due) return;
  t->tally_due = 0;
  for (keyq *k = t->keys; k; k = k->next) k->serving = k->ready = k->narchs = 0;
  t->nbuilders = 0;
  for (peer *p = t->peers; p; p = p->next) {
    if (p->serving && p->role == KTUNE__ROLE__ROLE_BUILDER) {
      if (t->nbuilders == t->builders_cap) {
        size_t cap = t->builders_cap ? 2 * t->builders_cap : 16;
        peer **nb = realloc(t->builders, cap * sizeof(*nb));
        if (!nb) {
          t->tally_due = 1; /* counted again at the next chance */
          continue;
        }
        t->builders = nb;
        t->builders_cap = cap;
      }
      t->builders[t->nbuilders++] = p;
    }
    if (!p->serving || !p->kq) continue;
    keyq *k = p->kq;
    k->serving++;
    if (guard_quarantined(t, p)) continue;
    k->ready++;
    uint32_t i = key_arch(k, p->arch);
    if (i == k->narchs) {
      if (i == KEY_ARCHS) continue;
      k->archs[k->narchs++].arch = p->arch;
      k->archs[i].n = 0;
    }
    k->archs[i].n++;
  }
}

uint32_t jobs_key_runners(tracker *t, const session *s) {
  if (!s->kq) return registry_runners(t, s->key);
  tally_runners(t);
  return s->kq->serving;
}

int jobs_builder_missing(tracker *t, const session *s, char *want, size_t len) {
  size_t off = 0;
  want[0] = 0;
  if (!s->kq) return 0;
  tally_runners(t);
  const keyq *k = s->kq;
  for (uint32_t i = 0; i < k->narchs; i++) {
    for (size_t b = 0; b < t->nbuilders; b++)
      if (can_build(t->builders[b], s, k->archs[i].arch)) return 0;
    if (off < len)
      off += (size_t)snprintf(want + off, len - off, "%s%s", off ? " or " : "", k->archs[i].arch);
  }
  return off > 0;
}

/* Only agents with a free slot are looked at, and runners only where
 * their key has work: a turn costs what it hands out, not the farm. */
static void dispatch_now(tracker *t) {
  if (t->stopping || (!t->queued[QUEUE_BUILD] && !t->queued[QUEUE_RUN])) return;
  for (keyq *k = t->keys; k && t->queued[QUEUE_RUN]; k = k->next)
    for (peer *p = k->idle, *next; p && k->queued[QUEUE_RUN]; p = next) {
      next = p->idle_next;
      if (p->holding || guard_quarantined(t, p)) continue;
      job *j;
      while (p->idle && !p->holding && (j = pick_run(p))) {
        uint32_t busy = p->busy;
        send_run(t, p, j);
        if (p->busy == busy) break; /* could not send: not again this turn */
      }
    }
  if (!t->queued[QUEUE_BUILD]) return;
  tally_runners(t);
  for (peer *p = t->idle_builders, *next; p; p = next) {
    next = p->idle_next;
    if (guard_quarantined(t, p)) continue;
    job *j;
    const char *arch = NULL;
    const keyq *changed = NULL;
    while (p->idle && (j = pick_build(t, p, changed, &arch))) {
      uint32_t busy = p->busy;
      changed = j->s->kq;
      send_build(t, p, j, arch);
      if (p->busy == busy) break;
    }
  }
}

void jobs_dispatch(tracker *t) { t->dispatch_due = 1; }

void jobs_dispatch_due(tracker *t) {
  /* Handing out work can free more (a session that starts, a job that
   * cannot be sent); a few rounds settle it within the turn. */
  for (int round = 0; round < 3 && t->dispatch_due; round++) {
    t->dispatch_due = 0;
    dispatch_now(t);
  }
}

/* The job is over: out of the queue, its session told (tr: the trial it
 * made, NULL when its session is gone), then freed. */
static void end_job(tracker *t, job *j, hist_trial *tr) {
  session *s = j->s;
  job_unlink(t, j);
  if (s && tr) t->hooks.job_ended(t, s, j->values, j->config_json, tr);
  job_release_memory(j);
  jobs_dispatch(t);
}

/* Records a job's trial and retires its history row in the same
 * transaction: the trial exists exactly when the job no longer does. */
static void requeue(tracker *t, job *j);

static void record_job(tracker *t, job *j, Ktune__TrialStatus status, const char *error,
                       const double *costs, size_t ncosts, const peer *runner, uint32_t number,
                       const char *clock) {
  if (j->confirm && j->s) {
    /* A confirmation run is no trial: its session keeps its rounds. */
    session *s = j->s;
    if (t->hooks.confirm_ended(t, j, status, costs, ncosts) == 1) {
      requeue(t, j);
    } else {
      job_unlink(t, j);
      job_release_memory(j);
    }
    t->hooks.poke(t, s);
    jobs_dispatch(t);
    return;
  }
  hist_trial tr = {0};
  char *clean = error && error[0] ? text_clean(error, MAX_ERROR_TEXT) : NULL;
  tr.status = wire_status_name(status); /* the history keeps the documented strings */
  tr.error = clean;
  tr.costs = costs;
  tr.ncosts = ncosts;
  tr.runner = runner ? runner->name : NULL;
  tr.device_json = runner ? runner->device_json : NULL;
  tr.builder = j->builder[0] ? j->builder : NULL;
  tr.retried_cv = j->retried_cv;
  tr.digest = j->digest[0] ? j->digest : NULL;
  tr.build_s = j->build_s;
  tr.compiler_id = j->compiler_id;
  tr.number = number;
  tr.clock = clock;
  core_db_write(t);
  if (store_job_delete(t->db, (int64_t)j->id) < 0)
    log_error(WHO, "history: cannot retire job %llu: %s", (unsigned long long)j->id,
              hist_errmsg(t->db));
  end_job(t, j, &tr);
  free(clean);
}

static void record_held(tracker *t, job *j) {
  record_job(t, j, j->held_status, j->held_error, NULL, 0, NULL, 0, NULL);
}

static job *leased_job(tracker *t, peer *p, uint64_t id, enum job_state want, const char *what) {
  job *j = queue_find(t, id);
  if (!j || j->owner != p || j->state != want) {
    /* A late result for a job requeued elsewhere: recorded once, there. */
    log_warn(WHO, "%s %s sent a %s for job %llu it does not hold; dropped",
             wire_role_name(p->role), p->name, what, (unsigned long long)id);
    return NULL;
  }
  set_owner(j, NULL);
  busy_add(t, p, -1);
  return j;
}

/* Back one step, to be done by another agent (or this one, later). */
static void requeue(tracker *t, job *j) {
  /* A job a runner brought back after our restart (jobs_adopt) has no
   * artifact here: running it again means building it again. */
  int build = j->state == JOB_BUILDING || j->state == JOB_BUILD_QUEUED || !j->artifact_len;
  queue_set(t, j, build ? JOB_BUILD_QUEUED : JOB_RUN_QUEUED);
  set_owner(j, NULL);
}

/* Another agent than the one named that could do job j. */
static int another_agent(tracker *t, const char *except, const job *j, Ktune__Role role) {
  for (peer *p = t->peers; p; p = p->next) {
    if (p->state != PEER_READY || p->role != role || !p->c || p->draining ||
        guard_quarantined(t, p) || !strcmp(p->name, except))
      continue;
    if (role == KTUNE__ROLE__ROLE_BUILDER && can_build(p, j->s, j->arch)) return 1;
    if (role == KTUNE__ROLE__ROLE_RUNNER && !strcmp(p->key, j->s->key) &&
        !strcmp(p->arch, j->arch))
      return 1;
  }
  return 0;
}

static int agent_here(tracker *t, const char *name, Ktune__Role role) {
  for (peer *p = t->peers; p; p = p->next)
    if (p->state == PEER_READY && p->role == role && p->c && !strcmp(p->name, name)) return 1;
  return 0;
}

/* A failure from p: the first one of a job goes to another agent for a
 * second opinion when there is one, so that a lying agent cannot fail
 * trials; the second is the kernel's. Returns 1 when it was sent back. */
static int second_opinion(tracker *t, peer *p, job *j, Ktune__TrialStatus status,
                          const char *error, Ktune__Role role) {
  if (j->avoid[0] || !another_agent(t, p->name, j, role)) return 0;
  avoid_set(t, j, p->name);
  j->held_status = status;
  free(j->held_error);
  j->held_error = text_clean(error, MAX_ERROR_TEXT);
  requeue(t, j);
  log_debug(WHO, "job %llu: %s from %s %s; asking another", (unsigned long long)j->id,
            wire_status_name(status),
            wire_role_name(p->role), p->name);
  return 1;
}

/* j succeeded where the agent it avoids had failed it: that agent lied
 * or is broken. */
static void contradicted(tracker *t, job *j, Ktune__Role role) {
  /* A refused report was struck when it came; only a failure waits. */
  if (j->held_status)
    guard_strike(t, guard_record(t, j->avoid, role),
                 "its %s of job %llu was contradicted by another %s",
                 wire_status_name(j->held_status),
                 (unsigned long long)j->id, wire_role_name(role));
  avoid_clear(t, j);
  j->held_status = KTUNE__TRIAL_STATUS__TRIAL_STATUS_UNSET;
  free(j->held_error);
  j->held_error = NULL;
}

/* An answer the agent's role cannot honestly give: the job goes back,
 * the agent is marked. */
static void refuse_report(tracker *t, peer *p, job *j, const char *what) {
  if (j->confirm && j->s) {
    /* Only this runner may confirm: its candidate drops out instead. */
    guard_strike(t, p->rec, "job %llu: %s", (unsigned long long)j->id, what);
    record_job(t, j, WIRE_TRIAL(RUNNER_ERROR), what, NULL, 0, p, 0, NULL);
    return;
  }
  guard_strike(t, p->rec, "job %llu: %s; the job goes back to the queue",
               (unsigned long long)j->id, what);
  avoid_set(t, j, p->name);
  requeue(t, j);
  jobs_dispatch(t);
}

void jobs_on_build_result(tracker *t, peer *p, const Ktune__BuildResult *r) {
  job *j = leased_job(t, p, r->job_id, JOB_BUILDING, "build result");
  if (!j) return;
  if (p->rec) p->rec->loss_streak = 0;
  if (!j->s) {
    end_job(t, j, NULL);
    return;
  }
  if (!guard_builder_status(r->status)) {
    char what[96];
    snprintf(what, sizeof(what), "status %d is not one a builder can report", (int)r->status);
    refuse_report(t, p, j, what);
    return;
  }
  j->build_s = isfinite(r->build_s) && r->build_s >= 0 ? r->build_s : 0;
  free(j->compiler_id);
  j->compiler_id = r->compiler_id[0] ? text_clean(r->compiler_id, 512) : NULL;
  snprintf(j->builder, sizeof(j->builder), "%s", p->name);
  int ok = r->status == WIRE_TRIAL(OK);
  if (ok && r->artifact.len > t->opts.max_artifact) {
    char why[160];
    snprintf(why, sizeof(why), "the built artifact has %zu bytes; the limit is %u (--max-artifact)",
             r->artifact.len, t->opts.max_artifact);
    record_job(t, j, WIRE_TRIAL(COMPILE_ERROR), why, NULL, 0, NULL, 0, NULL);
    return;
  }
  if (ok && r->artifact.len > 0) {
    j->artifact = malloc(r->artifact.len);
    if (!j->artifact) {
      queue_set(t, j, JOB_BUILD_QUEUED);
      return;
    }
    memcpy(j->artifact, r->artifact.data, r->artifact.len);
    j->artifact_len = r->artifact.len;
    queue_set(t, j, JOB_RUN_QUEUED);
    contradicted(t, j, KTUNE__ROLE__ROLE_BUILDER);
    jobs_dispatch(t);
    return;
  }
  Ktune__TrialStatus code = ok ? WIRE_TRIAL(COMPILE_ERROR) : r->status;
  const char *error = r->error[0] ? r->error : "builder returned no artifact";
  if (r->status == WIRE_TRIAL(UNSUPPORTED) &&
      another_agent(t, p->name, j, KTUNE__ROLE__ROLE_BUILDER)) {
    /* Not the candidate's fault: this builder lacks the compiler or the
     * target. Another one gets the job; this one is not asked again. */
    snprintf(p->refused[p->nrefused++ % 4], sizeof(p->refused[0]), "%s", j->s->compiler);
    log_info(WHO, "builder %s cannot build for session %llu (%.120s); trying another",
             p->name, (unsigned long long)j->s->id, r->error);
    queue_set(t, j, JOB_BUILD_QUEUED);
    jobs_dispatch(t);
    return;
  }
  if (code == WIRE_TRIAL(UNSUPPORTED)) {
    /* No builder here can make it: the session's compiler or target is
     * what failed, and the error says which. */
    record_job(t, j, WIRE_TRIAL(COMPILE_ERROR), error, NULL, 0, NULL, 0, NULL);
    return;
  }
  if (second_opinion(t, p, j, code, error, KTUNE__ROLE__ROLE_BUILDER)) {
    jobs_dispatch(t);
    return;
  }
  record_job(t, j, code, error, NULL, 0, NULL, 0, NULL);
}

/* ResultAck says the result is committed: it is sent after the commit
 * (jobs_committed), whatever goes before. */
static void send_ack(tracker *t, peer *p, uint64_t job_id) {
  if (p->nacks == p->acks_cap) {
    uint32_t cap = p->acks_cap ? 2 * p->acks_cap : 4;
    uint64_t *na = realloc(p->acks, cap * sizeof(*na));
    if (!na) return; /* an agent does without an ack (it resends nothing) */
    p->acks = na;
    p->acks_cap = cap;
  }
  p->acks[p->nacks++] = job_id;
  registry_due(t, p, 1);
}

void jobs_send_early(tracker *t) {
  for (peer *p = t->due, *next; p; p = next) {
    next = p->due_next;
    if (p->send_now && !p->send_late && p->c) conn_send_now(p->c);
    p->send_now = 0;
    if (!p->send_late && !p->nacks) registry_due(t, p, 0);
  }
}

/* Sends the first n acknowledgements of p (all the parked ones, at least). */
static void acks_send(peer *p, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    Ktune__ResultAck ack = KTUNE__RESULT_ACK__INIT;
    ack.job_id = p->acks[i];
    core_send_msg(p, KTUNE__ENVELOPE__MSG_RESULT_ACK, &ack);
  }
  memmove(p->acks, p->acks + n, (p->nacks - n) * sizeof(*p->acks));
  p->nacks -= n;
  p->acks_parked = 0;
}

static void on_acks_timer(uv_timer_t *h) { jobs_acks_unpark(h->data); }

/* An agent's next job most often follows its result's commit within a
 * millisecond, so acknowledgements with nothing to go with park until
 * then: one write and one wake-up of the agent a trial, not two (the
 * loopback write is a tenth of the tracker's time a trial). */
void jobs_committed(tracker *t) {
  while (t->due) {
    peer *p = t->due;
    registry_due(t, p, 0);
    p->send_now = p->send_late = 0;
    if (!p->nacks) continue;
    if (p->c && p->c->out_len) {
      acks_send(p, p->nacks);
      continue;
    }
    p->acks_parked = p->nacks;
    if (!uv_is_active((uv_handle_t *)&t->acks_timer)) {
      t->acks_timer.data = t;
      uv_timer_start(&t->acks_timer, on_acks_timer, JOBS_ACK_PARK_MS, 0);
    }
  }
}

void jobs_acks_unpark(tracker *t) {
  for (peer *p = t->peers; p; p = p->next) {
    /* One due now gets them with the open transaction's commit. */
    if (!p->acks_parked || p->due) continue;
    acks_send(p, p->acks_parked);
    if (p->c) conn_send_now(p->c);
  }
}

/* A result for the job a runner brought along from an earlier connection
 * that we could not give back to it: it is free again. */
static int unheld_result(tracker *t, peer *p, const Ktune__RunResult *r) {
  if (!p->holding) return 0;
  job *j = queue_find(t, r->job_id);
  if (j && j->owner == p) return 0;
  log_info(WHO, "runner %s finished job %llu from before; it is free again", p->name,
           (unsigned long long)r->job_id);
  p->holding = 0;
  busy_add(t, p, -1);
  send_ack(t, p, r->job_id);
  return 1;
}

void jobs_on_run_result(tracker *t, peer *p, const Ktune__RunResult *r) {
  if (unheld_result(t, p, r)) return;
  if (r->status == WIRE_TRIAL(REFUSED)) {
    /* Busy with a job we do not know of (sent before our restart): not
     * the kernel's doing. It stays busy until that one is answered. */
    job *j = leased_job(t, p, r->job_id, JOB_RUNNING, "refusal");
    if (!j) return;
    requeue(t, j);
    p->holding = UINT64_MAX;
    p->holding_until = uv_now(t->loop) + (j->s ? run_limit_ms(j->s) : t->opts.run_timeout_ms) +
                       t->opts.grace_ms;
    busy_add(t, p, 1);
    log_info(WHO, "runner %s is busy with earlier work; job %llu goes to the queue", p->name,
             (unsigned long long)r->job_id);
    jobs_dispatch(t);
    return;
  }
  job *j = leased_job(t, p, r->job_id, JOB_RUNNING, "run result");
  if (!j) return;
  p->holding = 0;
  if (p->rec) p->rec->loss_streak = 0;
  send_ack(t, p, r->job_id);
  if (!j->s) {
    end_job(t, j, NULL);
    return;
  }
  char why[256];
  if (r->status == WIRE_TRIAL(RUNNER_ERROR)) {
    snprintf(why, sizeof(why), "could not measure it: %.200s", r->error);
    refuse_report(t, p, j, why);
    return;
  }
  if (!guard_runner_status(r->status)) {
    snprintf(why, sizeof(why), "status %d is not one a runner can report", (int)r->status);
    refuse_report(t, p, j, why);
    return;
  }
  int ok = r->status == WIRE_TRIAL(OK);
  if (ok && guard_plausible(t, j, r, why, sizeof(why)) < 0) {
    char what[300];
    snprintf(what, sizeof(what), "implausible result (%s)", why);
    refuse_report(t, p, j, what);
    return;
  }
  if (ok) metrics_run_result(t, j, r);
  if (!ok && !j->confirm && second_opinion(t, p, j, r->status, r->error, KTUNE__ROLE__ROLE_RUNNER)) {
    jobs_dispatch(t);
    return;
  }
  /* A measurement whose rounds spread wider than --remeasure-spread-pct
   * is not one number: the machine was busy, or the kernel is. It is
   * measured again, once; the second measurement is the trial, and the
   * first's spread is kept (docs/MEASUREMENT.md). */
  double cv = ok ? round_cv(r->costs_s, r->n_costs_s) : 0;
  if (ok && remeasure_spread(t, j, r, cv)) {
    j->retried_cv = cv;
    log_info(WHO, "job %llu: its rounds spread %.0f%% (std / mean); measuring it again",
             (unsigned long long)j->id, cv * 100);
    requeue(t, j);
    jobs_dispatch(t);
    return;
  }
  if (ok) {
    p->trials_done++;
    contradicted(t, j, KTUNE__ROLE__ROLE_RUNNER);
  } else {
    p->trials_failed++;
  }
  char clock[32];
  snprintf(clock, sizeof(clock), "%s", r->clock);
  record_job(t, j, r->status, r->error, ok ? r->costs_s : NULL, ok ? r->n_costs_s : 0, p,
             r->number ? r->number : j->s->timing.number, clock[0] ? clock : NULL);
}

void jobs_adopt(tracker *t, peer *p, uint64_t id) {
  job *j = queue_find(t, id);
  if (j && j->s && (j->state != JOB_RUNNING || j->owner == NULL)) {
    /* Still ours: the runner's result will be its trial. A builder that
     * was given it again since no longer has it; another runner measuring
     * it keeps it, and this result will be dropped. */
    if (j->owner && j->owner != p) busy_add(t, j->owner, -1);
    snprintf(j->arch, sizeof(j->arch), "%s", p->arch);
    lease(t, j, p, JOB_RUNNING, run_limit_ms(j->s));
    p->holding = id;
    log_info(WHO, "runner %s still measures job %llu: waiting for its result", p->name,
             (unsigned long long)id);
    return;
  }
  /* Recorded or dropped meanwhile: its result will be dropped, but the
   * runner stays busy until it comes. */
  p->holding = id;
  p->holding_until = uv_now(t->loop) + t->opts.run_timeout_ms + t->opts.grace_ms;
  busy_add(t, p, 1);
}

static int lost_for_good(tracker *t, const job *j) {
  return j->s && !j->owner && j->lost >= t->opts.max_lost;
}

static void record_lost_job(tracker *t, job *j) {
  char why[128];
  snprintf(why, sizeof(why), "the job lost its agent %u times", j->lost);
  record_job(t, j, WIRE_TRIAL(RUNNER_LOST), why, NULL, 0, NULL, 0, NULL);
}

/* Jobs that lost their agent too often end as RUNNER_LOST. Recording one
 * can end its session, which frees other jobs of it, so no pointer into
 * the list survives a recording: start over after each. */
static void record_lost_all(tracker *t) {
  for (int again = 1; again;) {
    again = 0;
    for (job *j = t->jobs; j; j = j->next)
      if (lost_for_good(t, j)) {
        record_lost_job(t, j);
        again = 1;
        break;
      }
  }
}

/* j's holder is gone or too late: back to the queue, one loss more. */
static void lose(tracker *t, job *j, const char *holder_role) {
  requeue(t, j);
  if (!j->s) return;
  j->lost++;
  core_db_write(t);
  store_job_lost(t->db, (int64_t)j->id, j->lost);
  log_info(WHO, "job %llu lost its %s (%u of %u times); back to the queue",
           (unsigned long long)j->id, holder_role, j->lost, t->opts.max_lost);
}

void jobs_release(tracker *t, peer *p) {
  size_t n = 0, lost = 0;
  for (job *j = p->leases; j; j = j->lnext) n++;
  /* The jobs it lost, by id: recording one may free others. */
  uint64_t *ids = n ? malloc(n * sizeof(*ids)) : NULL;
  while (p->leases) {
    job *j = p->leases;
    /* A tracker that is stopping loses no agent: the jobs stay as they are
     * in the history and are queued again on restart. */
    if (t->stopping) {
      requeue(t, j);
      continue;
    }
    lose(t, j, wire_role_name(p->role));
    metrics_job_lost(t, j, p, METRICS_LOST_DISCONNECTED);
    if (ids) ids[lost] = j->id;
    lost++;
  }
  p->busy = 0;
  jobs_peer_changed(t, p);
  if (t->stopping) {
    free(ids);
    return;
  }
  /* A crash loses a job now and then; an agent that loses job after job
   * without delivering one takes work only to drop it. */
  if (lost && p->rec && ++p->rec->loss_streak >= 2)
    guard_strike(t, p->rec, "lost %u jobs in a row with its connection, delivering none",
                 p->rec->loss_streak);
  if (lost && !ids) record_lost_all(t);
  for (size_t i = 0; ids && i < lost; i++) {
    job *j = queue_find(t, ids[i]);
    if (j && lost_for_good(t, j)) record_lost_job(t, j);
  }
  free(ids);
}

/* A run-queued job of key k fits a runner here: one of its architecture
 * that is not the one it avoids. */
static int run_fits(tracker *t, const keyq *k, const job *j, int *same_arch) {
  uint32_t n = 0, i = key_arch(k, j->arch);
  if (i < k->narchs) n = k->archs[i].n;
  else if (k->narchs == KEY_ARCHS)
    n = UINT32_MAX; /* more architectures than the tally keeps: look */
  if (n != UINT32_MAX && (n != 1 || !j->avoid[0])) {
    *same_arch = n > 0;
    return n > 0;
  }
  int fits = 0;
  *same_arch = 0;
  for (peer *p = t->peers; p && !fits; p = p->next) {
    if (p->kq != k || !runner_ready(t, p) || strcmp(p->arch, j->arch) != 0) continue;
    *same_arch = 1;
    fits = strcmp(p->name, j->avoid) != 0;
  }
  return fits;
}

/* Built for an architecture whose runners are all gone: built again for
 * one that is here. Returns 1 when it changed something, 2 when it also
 * recorded a job (which may have freed others). */
static int sweep_run_queue(tracker *t) {
  int changed = 0;
  for (keyq *k = t->keys; k; k = k->next) {
    if (!k->queued[QUEUE_RUN] || !k->ready) continue;
    for (session *s = k->sessions; s; s = s->kq_next)
      for (job *j = s->qhead[QUEUE_RUN], *next; j; j = next) {
        next = j->qnext;
        int same_arch;
        if (run_fits(t, k, j, &same_arch)) continue;
        changed = 1;
        if (same_arch && j->held_status) {
          /* Nobody else can give the second opinion: the first stands. */
          record_held(t, j);
          return 2;
        }
        if (same_arch) {
          avoid_clear(t, j); /* only the agent it avoids is left: try it again */
        } else {
          free(j->artifact);
          j->artifact = NULL;
          j->artifact_len = 0;
          queue_set(t, j, JOB_BUILD_QUEUED);
        }
      }
  }
  return changed;
}

/* A build waiting for a second opinion that only the builder it avoids
 * could give: a failure it held stands; anything else, it may try again. */
static int sweep_avoiding(tracker *t) {
  int changed = 0;
  for (job *j = t->avoiding ? t->jobs : NULL; j; j = j->next) {
    if (j->owner || !j->s || j->state != JOB_BUILD_QUEUED || !j->avoid[0] ||
        !agent_here(t, j->avoid, KTUNE__ROLE__ROLE_BUILDER) ||
        another_agent(t, j->avoid, j, KTUNE__ROLE__ROLE_BUILDER))
      continue;
    changed = 1;
    if (j->held_status) {
      record_held(t, j);
      return 2;
    }
    avoid_clear(t, j);
  }
  return changed;
}

void jobs_sweep(tracker *t) {
  uint64_t now = uv_now(t->loop);
  int changed = 0;
  /* Quarantines end with time, not with an event. */
  t->tally_due = 1;
  tally_runners(t);
  for (peer *p = t->peers; p; p = p->next) {
    /* Asked again: a runner whose key could not be made for lack of
     * memory gets another chance. */
    jobs_peer_changed(t, p);
    for (job *j = p->leases, *next; j; j = next) {
      next = j->lnext;
      if (now <= j->deadline) continue;
      /* The agent is there but silent about the job: its doing, not the
       * kernel's (the agent enforces the job's limit itself). Another
       * agent gets it; no loss is counted against the kernel. */
      guard_strike(t, p->rec, "held job %llu past its deadline (%u ms after its limit)",
                   (unsigned long long)j->id, t->opts.grace_ms);
      busy_add(t, p, -1);
      if (p->holding == j->id) p->holding = 0;
      avoid_set(t, j, p->name);
      requeue(t, j);
      metrics_job_lost(t, j, p, METRICS_LOST_DEADLINE);
      changed = 1;
    }
  }
  changed |= sweep_avoiding(t);
  tally_runners(t); /* the strikes above may have quarantined runners */
  changed |= sweep_run_queue(t);
  for (peer *p = t->peers; p; p = p->next)
    if (p->holding && !queue_find(t, p->holding) && p->holding_until && now > p->holding_until) {
      p->holding = 0;
      p->holding_until = 0;
      busy_add(t, p, -1);
      changed = 1;
    }
  if (changed) record_lost_all(t);
  /* A quarantine that ended frees its agent with no event to say so. */
  jobs_dispatch(t);
}

void jobs_drop_session(tracker *t, session *s) {
  for (job *j = t->jobs, *next; j; j = next) {
    next = j->next;
    if (j->s != s) continue;
    core_db_write(t);
    store_job_delete(t->db, (int64_t)j->id);
    /* A leased job waits for its agent's answer, which is then dropped. */
    if (j->owner) queue_detach(t, j);
    else job_free(t, j);
  }
}
