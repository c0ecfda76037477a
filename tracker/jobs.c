/* The job queue. A job is one candidate of one session and moves
 * BUILD_QUEUED -> BUILDING -> RUN_QUEUED -> RUNNING -> (recorded, freed).
 * A job handed to an agent is leased to it; when the agent goes, the job
 * goes back one step. Builders run ahead of runners by a bounded amount so
 * that a runner finds an artifact waiting. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

int jobs_add(tracker *t, session *s, uint64_t index, const int64_t *values) {
  job *j = calloc(1, sizeof(*j));
  if (!j) return -1;
  size_t nk = s->task.nknobs;
  j->values = malloc((nk ? nk : 1) * sizeof(int64_t));
  j->config_json = space_config_json(&s->sp, values);
  if (!j->values || !j->config_json) {
    free(j->values);
    free(j->config_json);
    free(j);
    return -1;
  }
  memcpy(j->values, values, nk * sizeof(int64_t));
  j->id = ++t->next_job_id;
  j->s = s;
  j->index = index;
  j->state = JOB_BUILD_QUEUED;
  j->prev = t->jobs_tail;
  if (t->jobs_tail) t->jobs_tail->next = j;
  else t->jobs = j;
  t->jobs_tail = j;
  return 0;
}

static void job_free(tracker *t, job *j) {
  if (j->prev) j->prev->next = j->next;
  else t->jobs = j->next;
  if (j->next) j->next->prev = j->prev;
  else t->jobs_tail = j->prev;
  free(j->values);
  free(j->config_json);
  free(j->artifact);
  free(j);
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

static int can_build(const peer *b, const session *s) {
  /* External compiler commands are a later back end; tcc is built in. */
  return strcmp(s->compiler, "tcc") == 0 && b->has_tcc;
}

static void send_build(tracker *t, peer *b, job *j) {
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
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_BUILD_JOB;
  env.build_job = &bj;
  if (server_send(b, &env) == 0) {
    j->state = JOB_BUILDING;
    j->owner = b;
    b->busy++;
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
  rj.timeout_ms = t->opts.run_timeout_ms;
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_RUN_JOB;
  env.run_job = &rj;
  if (server_send(r, &env) == 0) {
    j->state = JOB_RUNNING;
    j->owner = r;
    r->busy++;
  }
out:
  free(bufs);
  free(bp);
}

void jobs_dispatch(tracker *t) {
  if (t->stopping) return;
  for (peer *p = t->peers; p; p = p->next) {
    if (p->state != PEER_READY || !p->c) continue;
    if (p->role == KTUNE__ROLE__ROLE_RUNNER) {
      for (job *j = t->jobs; j && p->busy < p->slots; j = j->next)
        if (j->s && j->state == JOB_RUN_QUEUED && strcmp(j->s->key, p->key) == 0)
          send_run(t, p, j);
    } else if (p->role == KTUNE__ROLE__ROLE_BUILDER) {
      for (job *j = t->jobs; j && p->busy < p->slots; j = j->next) {
        if (!j->s || j->state != JOB_BUILD_QUEUED || !can_build(p, j->s)) continue;
        uint32_t runners = registry_runners(t, j->s->key);
        uint32_t limit = runners > 1 ? 2 * runners : 2;
        if (built_ahead(t, j->s->key) >= limit) continue;
        send_build(t, p, j);
      }
    }
  }
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes one trial into this turn's transaction and tells the session. */
static void record(tracker *t, job *j, const char *status, const char *error, const double *costs,
                   size_t ncosts, const char *runner, uint32_t number) {
  session *s = j->s;
  double mean = 0;
  for (size_t i = 0; i < ncosts; i++) mean += costs[i];
  if (ncosts) mean /= (double)ncosts;
  hist_trial tr = {0};
  tr.session = (int64_t)s->id;
  tr.task = s->task.name;
  tr.size_json = s->size_json;
  tr.config_json = j->config_json;
  tr.key = s->key;
  tr.compiler = s->compiler;
  tr.status = status;
  tr.error = error && error[0] ? error : NULL;
  tr.costs = costs;
  tr.ncosts = ncosts;
  tr.mean_s = mean;
  tr.gflops = mean > 0 && strcmp(status, "ok") == 0 ? (double)s->flops / mean / 1e9 : 0;
  tr.flops = s->flops;
  tr.runner = runner ? runner : "";
  tr.build_s = j->build_s;
  tr.timestamp_ms = now_ms();
  tr.number = number;
  tr.repeat = s->repeat;
  server_db_write(t);
  if (hist_trial_add(t->db, &tr, NULL) < 0)
    log_error(WHO, "history: cannot record trial of session %llu: %s",
              (unsigned long long)s->id, hist_errmsg(t->db));
  session_on_trial(t, s, j, status, strcmp(status, "ok") == 0 ? mean : 0);
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
             registry_role_name(p->role), p->name, what, (unsigned long long)id);
    return NULL;
  }
  j->owner = NULL;
  if (p->busy) p->busy--;
  return j;
}

void jobs_on_build_result(tracker *t, peer *p, const Ktune__BuildResult *r) {
  job *j = leased_job(t, p, r->job_id, JOB_BUILDING, "build result");
  if (!j) return;
  if (!j->s) {
    finish(t, j);
    return;
  }
  j->build_s = isfinite(r->build_s) && r->build_s >= 0 ? r->build_s : 0;
  const char *code = known_code(r->status);
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
  record(t, j, code, r->error[0] ? r->error : "builder returned no artifact", NULL, 0, p->name, 0);
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
  p->trials_done++;
  record(t, j, code, error, ok ? r->costs_s : NULL, ok ? n : 0, p->name, r->number);
  finish(t, j);
}

void jobs_release(tracker *t, peer *p) {
  for (job *j = t->jobs; j; j = j->next) {
    if (j->owner != p) continue;
    j->owner = NULL;
    j->state = j->state == JOB_BUILDING ? JOB_BUILD_QUEUED : JOB_RUN_QUEUED;
    log_info(WHO, "job %llu goes back to the queue", (unsigned long long)j->id);
  }
  p->busy = 0;
}

void jobs_drop_session(tracker *t, session *s) {
  for (job *j = t->jobs, *next; j; j = next) {
    next = j->next;
    if (j->s != s) continue;
    /* A leased job waits for its agent's answer, which is then dropped. */
    if (j->owner) j->s = NULL;
    else job_free(t, j);
  }
}

void jobs_free_all(tracker *t) {
  while (t->jobs) job_free(t, t->jobs);
}
