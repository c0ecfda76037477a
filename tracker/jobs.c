/* The job queue. A job is one candidate of one session and moves
 * BUILD_QUEUED -> BUILDING -> RUN_QUEUED -> RUNNING -> (recorded, freed).
 * A job handed to an agent is leased to it; when the agent goes, the job
 * goes back one step, and after max_lost such losses it ends as
 * RUNNER_LOST. Builders run ahead of runners by a bounded amount so that a
 * runner finds an artifact waiting. Each job is a row of the history's jobs
 * table until its trial is recorded, in the same transaction. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/wire.h"
#include "tracker/tracker.h"

#define WHO "tracker"
#define MAX_COSTS 100000

static const char *const trial_codes[] = {
    "ok", "INVALID_CONFIG", "COMPILE_ERROR", "BUILD_TIMEOUT", "LOAD_ERROR", "RUNTIME_ERROR",
    "RUN_TIMEOUT", "WRONG_ANSWER", "RUNNER_LOST", "CANCELLED",
};

/* Status strings come from the network: only known codes reach the history. */
static const char *known_code(const char *s) {
  for (size_t i = 0; i < sizeof(trial_codes) / sizeof(trial_codes[0]); i++)
    if (strcmp(s, trial_codes[i]) == 0) return trial_codes[i];
  return NULL;
}

job *jobs_add(tracker *t, session *s, uint64_t id, uint64_t index, const int64_t *values,
              uint32_t lost) {
  job *j = calloc(1, sizeof(*j));
  if (!j) return NULL;
  size_t nk = s->task.nknobs;
  j->values = malloc((nk ? nk : 1) * sizeof(int64_t));
  j->config_json = space_config_json(&s->sp, values);
  if (!j->values || !j->config_json) {
    free(j->values);
    free(j->config_json);
    free(j);
    return NULL;
  }
  memcpy(j->values, values, nk * sizeof(int64_t));
  j->id = id;
  j->s = s;
  j->index = index;
  j->lost = lost;
  j->state = JOB_BUILD_QUEUED;
  j->prev = t->jobs_tail;
  if (t->jobs_tail) t->jobs_tail->next = j;
  else t->jobs = j;
  t->jobs_tail = j;
  return j;
}

static void job_free(tracker *t, job *j) {
  if (j->prev) j->prev->next = j->next;
  else t->jobs = j->next;
  if (j->next) j->next->prev = j->prev;
  else t->jobs_tail = j->prev;
  free(j->values);
  free(j->config_json);
  free(j->artifact);
  free(j->compiler_id);
  free(j);
}

void jobs_free_all(tracker *t) {
  while (t->jobs) job_free(t, t->jobs);
}

static job *find_job(tracker *t, uint64_t id) {
  for (job *j = t->jobs; j; j = j->next)
    if (j->id == id) return j;
  return NULL;
}

uint32_t jobs_outstanding(tracker *t, const session *s) {
  uint32_t n = 0;
  for (job *j = t->jobs; j; j = j->next) n += j->s == s;
  return n;
}

static uint32_t built_ahead(tracker *t, const char *key) {
  uint32_t n = 0;
  for (job *j = t->jobs; j; j = j->next)
    if (j->s && (j->state == JOB_BUILDING || j->state == JOB_RUN_QUEUED) &&
        strcmp(j->s->key, key) == 0)
      n++;
  return n;
}

/* The architecture the runners of a key report (they are identical
 * devices), or NULL when none is connected. */
static const char *key_arch(tracker *t, const char *key) {
  for (peer *p = t->peers; p; p = p->next)
    if (p->state == PEER_READY && p->role == KTUNE__ROLE__ROLE_RUNNER && !strcmp(p->key, key))
      return p->arch;
  return NULL;
}

static int refused(const peer *b, const char *compiler) {
  for (unsigned i = 0; i < b->nrefused && i < 4; i++)
    if (strncmp(b->refused[i], compiler, sizeof(b->refused[i]) - 1) == 0) return 1;
  return 0;
}

static int can_build(const peer *b, const session *s, const char *arch) {
  if (refused(b, s->compiler)) return 0;
  if (strcmp(s->compiler, "tcc") != 0) return b->has_cc; /* the builder checks the target */
  if (!b->has_tcc) return 0;
  if (b->narchs == 0) return strcmp(b->arch, arch) == 0;
  for (size_t i = 0; i < b->narchs; i++)
    if (strcmp(b->archs[i], arch) == 0) return 1;
  return 0;
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
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_BUILD_JOB;
  env.build_job = &bj;
  if (server_send(b, &env) == 0) {
    j->state = JOB_BUILDING;
    j->owner = b;
    b->busy++;
    s->built++;
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
  rj.number = s->number;
  rj.repeat = s->repeat;
  rj.check = s->check && s->task.reference;
  rj.rtol = s->task.rtol;
  rj.atol = s->task.atol;
  rj.timeout_ms = s->timeout_ms ? s->timeout_ms : t->opts.run_timeout_ms;
  rj.min_repeat_ms = s->min_repeat_ms;
  rj.cooldown_ms = s->cooldown_ms;
  rj.flush_cache = s->flush_cache;
  rj.task = s->task.name;
  rj.size = s->size_json;
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_RUN_JOB;
  env.run_job = &rj;
  if (server_send(r, &env) == 0) {
    j->state = JOB_RUNNING;
    j->owner = r;
    r->busy++;
    s->served++;
    session_started(t, s);
  }
out:
  free(bufs);
  free(bp);
}

/* Higher priority first; among equals, the session served least so far,
 * so that no session starves while another is busy; then the oldest job. */
static int better(const job *a, const job *b, int for_runner) {
  if (!b) return 1;
  if (a->s->priority != b->s->priority) return a->s->priority > b->s->priority;
  uint64_t ua = for_runner ? a->s->served : a->s->built;
  uint64_t ub = for_runner ? b->s->served : b->s->built;
  return ua < ub;
}

static job *pick_run(tracker *t, const peer *r) {
  job *best = NULL;
  for (job *j = t->jobs; j; j = j->next)
    if (j->s && j->state == JOB_RUN_QUEUED && !strcmp(j->s->key, r->key) && better(j, best, 1))
      best = j;
  return best;
}

static job *pick_build(tracker *t, const peer *b) {
  job *best = NULL;
  for (job *j = t->jobs; j; j = j->next) {
    if (!j->s || j->state != JOB_BUILD_QUEUED || !better(j, best, 0)) continue;
    /* The target must be known: build only for a key that has a runner. */
    const char *arch = key_arch(t, j->s->key);
    if (!arch || !can_build(b, j->s, arch)) continue;
    uint32_t runners = registry_runners(t, j->s->key);
    uint32_t limit = runners > 1 ? 2 * runners : 2;
    if (built_ahead(t, j->s->key) >= limit) continue;
    best = j;
  }
  return best;
}

void jobs_dispatch(tracker *t) {
  if (t->stopping) return;
  for (peer *p = t->peers; p; p = p->next) {
    if (p->state != PEER_READY || !p->c || p->draining) continue;
    if (p->role == KTUNE__ROLE__ROLE_RUNNER) {
      job *j;
      while (p->busy < p->slots && (j = pick_run(t, p))) send_run(t, p, j);
    } else if (p->role == KTUNE__ROLE__ROLE_BUILDER) {
      job *j;
      while (p->busy < p->slots && (j = pick_build(t, p))) send_build(t, p, j, key_arch(t, j->s->key));
    }
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

void jobs_record(tracker *t, session *s, const int64_t *values, const char *config_json,
                 hist_trial *tr) {
  double mean = 0, var = 0, median = 0;
  size_t n = tr->ncosts;
  for (size_t i = 0; i < n; i++) mean += tr->costs[i];
  if (n) mean /= (double)n;
  for (size_t i = 0; i < n; i++) var += (tr->costs[i] - mean) * (tr->costs[i] - mean);
  double *sorted = n ? malloc(n * sizeof(double)) : NULL;
  if (sorted) {
    memcpy(sorted, tr->costs, n * sizeof(double));
    qsort(sorted, n, sizeof(double), cmp_double);
    median = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    free(sorted);
  }
  int ok = strcmp(tr->status, "ok") == 0;
  tr->session = (int64_t)s->id;
  tr->task = s->task.name;
  tr->size_json = s->size_json;
  tr->config_json = config_json;
  tr->key = s->key;
  tr->compiler = s->compiler;
  tr->mean_s = mean;
  tr->median_s = median;
  tr->std_s = n > 1 ? sqrt(var / (double)(n - 1)) : 0;
  tr->gflops = mean > 0 && ok ? (double)s->flops / mean / 1e9 : 0;
  tr->flops = s->flops;
  tr->repeat = s->repeat;
  tr->calls = (uint64_t)tr->number * n;
  tr->timing_json = s->timing_json;
  server_db_write(t);
  if (hist_trial_add(t->db, tr, NULL) < 0)
    log_error(WHO, "history: cannot record a trial of session %llu: %s",
              (unsigned long long)s->id, hist_errmsg(t->db));
  session_on_trial(t, s, values, tr->status, ok ? mean : 0);
}

/* Records a job's trial and retires its history row in the same
 * transaction: the trial exists exactly when the job no longer does. */
static void record_job(tracker *t, job *j, const char *status, const char *error,
                       const double *costs, size_t ncosts, const peer *runner, uint32_t number,
                       const char *clock) {
  hist_trial tr = {0};
  tr.status = status;
  tr.error = error && error[0] ? error : NULL;
  tr.costs = costs;
  tr.ncosts = ncosts;
  tr.runner = runner ? runner->name : NULL;
  tr.device_json = runner ? runner->device_json : NULL;
  tr.build_s = j->build_s;
  tr.compiler_id = j->compiler_id;
  tr.number = number;
  tr.clock = clock;
  server_db_write(t);
  if (hist_job_delete(t->db, (int64_t)j->id) < 0)
    log_error(WHO, "history: cannot retire job %llu: %s", (unsigned long long)j->id,
              hist_errmsg(t->db));
  jobs_record(t, j->s, j->values, j->config_json, &tr);
}

/* The job's trial is recorded (or its session is gone): free it and let
 * its session propose the next candidate. */
static void finish(tracker *t, job *j) {
  session *s = j->s;
  job_free(t, j);
  if (s) session_fill(t, s);
  jobs_dispatch(t);
}

static job *leased_job(tracker *t, peer *p, uint64_t id, enum job_state want, const char *what) {
  job *j = find_job(t, id);
  if (!j || j->owner != p || j->state != want) {
    /* A late result for a job requeued elsewhere: recorded once, there. */
    log_warn(WHO, "%s %s sent a %s for job %llu it does not hold; dropped",
             wire_role_name(p->role), p->name, what, (unsigned long long)id);
    return NULL;
  }
  j->owner = NULL;
  if (p->busy) p->busy--;
  return j;
}

/* Build errors that say the builder, not the candidate, is the problem
 * (builder/cc.c and builder/backend.c word them so). */
static int builder_cannot(const char *error) {
  static const char *const prefixes[] = {"target mismatch:", "cannot run '",
                                         "this builder does not run"};
  for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
    if (strncmp(error, prefixes[i], strlen(prefixes[i])) == 0) return 1;
  return 0;
}

static int another_builder(tracker *t, const peer *except, const session *s) {
  const char *arch = key_arch(t, s->key);
  for (peer *b = t->peers; b; b = b->next)
    if (b != except && b->state == PEER_READY && b->role == KTUNE__ROLE__ROLE_BUILDER && arch &&
        can_build(b, s, arch))
      return 1;
  return 0;
}

void jobs_on_build_result(tracker *t, peer *p, const Ktune__BuildResult *r) {
  job *j = leased_job(t, p, r->job_id, JOB_BUILDING, "build result");
  if (!j) return;
  if (!j->s) {
    finish(t, j);
    return;
  }
  j->build_s = isfinite(r->build_s) && r->build_s >= 0 ? r->build_s : 0;
  free(j->compiler_id);
  j->compiler_id = r->compiler_id[0] ? strndup(r->compiler_id, 512) : NULL;
  const char *code = known_code(r->status);
  if (r->artifact.len > t->opts.max_artifact) {
    char why[160];
    snprintf(why, sizeof(why), "the built artifact has %zu bytes; the limit is %u (--max-artifact)",
             r->artifact.len, t->opts.max_artifact);
    record_job(t, j, "COMPILE_ERROR", why, NULL, 0, NULL, 0, NULL);
    finish(t, j);
    return;
  }
  if (code && strcmp(code, "ok") == 0 && r->artifact.len > 0) {
    j->artifact = malloc(r->artifact.len);
    if (!j->artifact) {
      j->state = JOB_BUILD_QUEUED;
      return;
    }
    memcpy(j->artifact, r->artifact.data, r->artifact.len);
    j->artifact_len = r->artifact.len;
    j->state = JOB_RUN_QUEUED;
    jobs_dispatch(t);
    return;
  }
  if (!code || strcmp(code, "ok") == 0) code = "COMPILE_ERROR";
  if (builder_cannot(r->error) && another_builder(t, p, j->s)) {
    /* Not the candidate's fault: this builder lacks the compiler or the
     * target. Another one gets the job; this one is not asked again. */
    snprintf(p->refused[p->nrefused++ % 4], sizeof(p->refused[0]), "%s", j->s->compiler);
    log_info(WHO, "builder %s cannot build for session %llu (%.120s); trying another",
             p->name, (unsigned long long)j->s->id, r->error);
    j->state = JOB_BUILD_QUEUED;
    jobs_dispatch(t);
    return;
  }
  record_job(t, j, code, r->error[0] ? r->error : "builder returned no artifact", NULL, 0, NULL,
             0, NULL);
  finish(t, j);
}

static void send_ack(peer *p, uint64_t job_id) {
  Ktune__ResultAck ack = KTUNE__RESULT_ACK__INIT;
  ack.job_id = job_id;
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_RESULT_ACK;
  env.result_ack = &ack;
  server_send(p, &env);
}

void jobs_on_run_result(tracker *t, peer *p, const Ktune__RunResult *r) {
  job *j = leased_job(t, p, r->job_id, JOB_RUNNING, "run result");
  if (!j) return;
  send_ack(p, r->job_id);
  if (!j->s) {
    finish(t, j);
    return;
  }
  const char *code = known_code(r->status);
  const char *error = r->error;
  if (!code) {
    code = "RUNTIME_ERROR";
    error = "runner reported an unknown status";
  }
  size_t n = r->n_costs_s;
  int costs_ok = n > 0 && n <= MAX_COSTS;
  for (size_t i = 0; costs_ok && i < n; i++)
    costs_ok = isfinite(r->costs_s[i]) && r->costs_s[i] > 0;
  if (strcmp(code, "ok") == 0 && !costs_ok) {
    code = "RUNTIME_ERROR";
    error = "runner reported no valid timings";
  }
  int ok = strcmp(code, "ok") == 0;
  if (ok) p->trials_done++;
  else p->trials_failed++;
  char clock[32];
  snprintf(clock, sizeof(clock), "%s", r->clock);
  record_job(t, j, code, error, ok ? r->costs_s : NULL, ok ? n : 0, p,
             r->number ? r->number : j->s->number, clock[0] ? clock : NULL);
  finish(t, j);
}

void jobs_release(tracker *t, peer *p) {
  /* Two passes: recording a lost job can end its session, which frees
   * other jobs of it, so no pointer into the list survives a recording. */
  for (job *j = t->jobs; j; j = j->next) {
    if (j->owner != p) continue;
    j->owner = NULL;
    j->state = j->state == JOB_BUILDING ? JOB_BUILD_QUEUED : JOB_RUN_QUEUED;
    /* A tracker that is stopping loses no agent: the jobs stay as they are
     * in the history and are queued again on restart. */
    if (t->stopping || !j->s) continue;
    j->lost++;
    server_db_write(t);
    hist_job_lost(t->db, (int64_t)j->id, j->lost);
    log_info(WHO, "job %llu lost its %s (%u of %u times); back to the queue",
             (unsigned long long)j->id, wire_role_name(p->role), j->lost, t->opts.max_lost);
  }
  p->busy = 0;
  if (t->stopping) return;
  for (int again = 1; again;) {
    again = 0;
    for (job *j = t->jobs; j; j = j->next) {
      if (!j->s || j->owner || j->lost < t->opts.max_lost) continue;
      char why[128];
      snprintf(why, sizeof(why), "the job lost its agent %u times", j->lost);
      record_job(t, j, "RUNNER_LOST", why, NULL, 0, NULL, 0, NULL);
      finish(t, j);
      again = 1;
      break;
    }
  }
}

void jobs_drop_session(tracker *t, session *s) {
  for (job *j = t->jobs, *next; j; j = next) {
    next = j->next;
    if (j->s != s) continue;
    server_db_write(t);
    hist_job_delete(t->db, (int64_t)j->id);
    /* A leased job waits for its agent's answer, which is then dropped. */
    if (j->owner) j->s = NULL;
    else job_free(t, j);
  }
}
