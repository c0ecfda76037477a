/* Tuning sessions: a task, a device key and a strategy. The session asks
 * its tuner for candidates while it has room, answers those the history
 * already measured under the same conditions, turns the rest into jobs, and
 * reports progress to the clients that watch it. A session lives in the
 * history from its submission on, so a restarted tracker carries it on. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/identity.h"
#include "common/log.h"
#include "common/rng.h"
#include "common/wire.h"
#include "tracker/tracker.h"

#define WHO "tracker"
#define MAX_TRIALS 1000000u
#define MAX_NUMBER 1000000u
#define MAX_REPEAT 10000u
#define MAX_MS (24u * 3600u * 1000u)
/* Configs a session's search may look at in one loop turn. */
#define FILL_BUDGET 2048
/* Bytes of kernel buffers a session may ask a runner for. */
#define MAX_BUFFER_BYTES (4ull << 30)
/* Ended sessions kept in memory for `ktune status`; older ones are served
 * from the history. */
#define KEEP_ENDED 8
#define KEEP_ENDED_MS 60000

/* Trial statuses, for the per-status counts of a session. */
static const char *const codes[] = {
    "ok", "INVALID_CONFIG", "COMPILE_ERROR", "BUILD_TIMEOUT", "LOAD_ERROR", "RUNTIME_ERROR",
    "RUN_TIMEOUT", "WRONG_ANSWER", "RUNNER_LOST", "CANCELLED",
};
#define NCODES (sizeof(codes) / sizeof(codes[0]))

static size_t code_index(const char *status) {
  for (size_t i = 0; i < NCODES; i++)
    if (strcmp(status, codes[i]) == 0) return i;
  return 0;
}

session *session_find(tracker *t, uint64_t id) {
  for (session *s = t->sessions; s; s = s->next)
    if (s->id == id) return s;
  return NULL;
}

static void session_free(session *s) {
  if (s->tu) tuner_free(s->tu);
  task_free(&s->task);
  free(s->key);
  free(s->strategy);
  free(s->compiler);
  free(s->size_json);
  free(s->timing_json);
  free(s->counts);
  free(s->best_values);
  for (size_t i = 0; i < NCODES; i++) free(s->first_error[i]);
  free(s);
}

void session_free_all(tracker *t) {
  while (t->sessions) {
    session *s = t->sessions;
    t->sessions = s->next;
    session_free(s);
  }
}

static uint32_t or_default(uint32_t v, uint32_t d) { return v ? v : d; }

static int valid_compiler(const char *c) {
  size_t n = strlen(c);
  if (n == 0 || n > 512) return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)c[i] < 0x20) return 0;
  return 1;
}

static char *timing_json(const session *s) {
  json_t *o = json_pack("{s:i, s:i, s:i, s:i, s:b}", "number", (json_int_t)s->number, "repeat",
                        (json_int_t)s->repeat, "min_repeat_ms", (json_int_t)s->min_repeat_ms,
                        "cooldown_ms", (json_int_t)s->cooldown_ms, "flush_cache", s->flush_cache);
  char *txt = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(o);
  return txt;
}

/* Checks a submission (untrusted: it came over the network, or from a
 * history blob) and evaluates what every job of it needs. */
static int prepare(session *s, const Ktune__SubmitSession *req, char *err, size_t errlen) {
  if (!req->task) {
    snprintf(err, errlen, "the session has no task");
    return -1;
  }
  if (req->trials == 0 || req->trials > MAX_TRIALS) {
    snprintf(err, errlen, "trials must be between 1 and %u, not %u", MAX_TRIALS, req->trials);
    return -1;
  }
  if (!req->key[0] || strlen(req->key) >= 64) {
    snprintf(err, errlen, "a session needs a device key of 1 to 63 characters");
    return -1;
  }
  if (req->number > MAX_NUMBER || req->repeat > MAX_REPEAT) {
    snprintf(err, errlen, "number must be at most %u and repeat at most %u", MAX_NUMBER,
             MAX_REPEAT);
    return -1;
  }
  if (req->min_repeat_ms > MAX_MS || req->cooldown_ms > MAX_MS || req->timeout_ms > MAX_MS ||
      req->wait_timeout_ms > MAX_MS) {
    snprintf(err, errlen, "min-repeat-ms, cooldown-ms, timeout and wait-timeout must be at most %u ms",
             MAX_MS);
    return -1;
  }
  const char *compiler = req->compiler[0] ? req->compiler : "tcc";
  if (!valid_compiler(compiler)) {
    snprintf(err, errlen, "compiler must be tcc or a command line of at most 512 characters");
    return -1;
  }
  if (task_from_proto(req->task, &s->task, err, errlen) < 0) return -1;
  if (ident_kernel(&s->task, s->kernel) < 0) {
    snprintf(err, errlen, "cannot compute the kernel's identity digest");
    return -1;
  }
  if (space_init(&s->sp, &s->task, err, errlen) < 0) return -1;
  s->seed = req->seed;
  if (tuner_new(req->strategy[0] ? req->strategy : "random", &s->sp, req->seed, &s->tu, err,
                errlen) < 0)
    return -1;
  if (task_eval(&s->task, NULL, s->task.flops, &s->flops, err, errlen) < 0) return -1;
  if (s->flops <= 0) {
    snprintf(err, errlen, "task %s: flops evaluates to %lld; it must be positive", s->task.name,
             (long long)s->flops);
    return -1;
  }
  s->counts = calloc(s->task.nargs ? s->task.nargs : 1, sizeof(*s->counts));
  if (!s->counts) return -1;
  uint64_t bytes = 0;
  for (size_t i = 0; i < s->task.nargs; i++) {
    int64_t c;
    if (task_eval(&s->task, NULL, s->task.args[i].count, &c, err, errlen) < 0) return -1;
    size_t es = rng_type_size(s->task.args[i].type);
    if (c <= 0 || (uint64_t)c > MAX_BUFFER_BYTES / es) {
      snprintf(err, errlen, "task %s: buffer %s has %lld elements; it must be 1 to %llu",
               s->task.name, s->task.args[i].name, (long long)c,
               (unsigned long long)(MAX_BUFFER_BYTES / es));
      return -1;
    }
    s->counts[i] = (uint64_t)c;
    bytes += (uint64_t)c * es;
  }
  if (bytes > MAX_BUFFER_BYTES) {
    snprintf(err, errlen, "task %s: buffers need %llu bytes, above the limit of %llu",
             s->task.name, (unsigned long long)bytes, (unsigned long long)MAX_BUFFER_BYTES);
    return -1;
  }
  s->trials = req->trials;
  s->number = or_default(req->number, 1);
  s->repeat = or_default(req->repeat, 3);
  s->batch = or_default(req->batch, 8);
  s->min_repeat_ms = req->min_repeat_ms;
  s->cooldown_ms = req->cooldown_ms;
  s->flush_cache = req->flush_cache;
  s->timeout_ms = req->timeout_ms;
  s->check = req->check;
  s->remeasure = req->remeasure;
  s->priority = req->priority;
  s->wait_timeout_ms = req->wait_timeout_ms;
  s->size_json = space_consts_json(&s->task);
  s->timing_json = timing_json(s);
  s->key = strdup(req->key);
  s->strategy = strdup(req->strategy[0] ? req->strategy : "random");
  s->compiler = strdup(compiler);
  s->best_values = calloc(s->task.nknobs ? s->task.nknobs : 1, sizeof(int64_t));
  if (!s->size_json || !s->timing_json || !s->key || !s->strategy || !s->compiler ||
      !s->best_values)
    return -1;
  return 0;
}

static void link_session(tracker *t, session *s) {
  s->next = t->sessions;
  t->sessions = s;
}

/* Per-client and per-task limits, checked on the submission as it came,
 * before any work is spent on it; each error names its tracker option. */
static int within_limits(tracker *t, peer *p, const Ktune__SubmitSession *req, char *err,
                         size_t errlen) {
  const tracker_opts *o = &t->opts;
  const Ktune__TaskSpec *task = req->task;
  uint32_t active = 0;
  uint64_t queued = req->trials;
  for (session *x = t->sessions; x; x = x->next) {
    if (strcmp(x->owner, p->name) != 0) continue;
    if (strcmp(x->state, "running") != 0 && strcmp(x->state, "queued") != 0) continue;
    active++;
    queued += x->trials - (x->done < x->trials ? x->done : x->trials);
  }
  for (session_pending *w = t->pending; w; w = w->next)
    if (w->peer_id == p->id) active++, queued += w->trials;
  if (active >= o->max_sessions) {
    snprintf(err, errlen, "LIMIT: %s already has %u unfinished sessions; the limit is %u "
             "(--max-sessions)", p->name, active, o->max_sessions);
    return -1;
  }
  if (queued > o->max_queued) {
    snprintf(err, errlen, "LIMIT: %s would have %llu trials queued; the limit is %u "
             "(--max-queued)", p->name, (unsigned long long)queued, o->max_queued);
    return -1;
  }
  if (!task) return 0; /* prepare() says what is missing */
  if (task->n_knobs > o->max_knobs) {
    snprintf(err, errlen, "LIMIT: task %s has %zu knobs; the limit is %u (--max-knobs)",
             task->name, task->n_knobs, o->max_knobs);
    return -1;
  }
  uint64_t size = 1;
  for (size_t i = 0; i < task->n_knobs; i++) {
    size_t nv = task->knobs[i]->n_values;
    if (nv > o->max_values) {
      snprintf(err, errlen, "LIMIT: knob %s has %zu values; the limit is %u (--max-values)",
               task->knobs[i]->name, nv, o->max_values);
      return -1;
    }
    if (nv && size > UINT64_MAX / nv) size = UINT64_MAX;
    else size *= nv ? nv : 1;
  }
  if (size > o->max_space) {
    snprintf(err, errlen, "LIMIT: task %s has a space of %llu configs; the limit is %llu "
             "(--max-space)", task->name, (unsigned long long)size,
             (unsigned long long)o->max_space);
    return -1;
  }
  size_t text = 0;
  for (size_t i = 0; i < task->n_constraints; i++) text += strlen(task->constraints[i]);
  if (text > o->max_constraint_bytes) {
    snprintf(err, errlen, "LIMIT: task %s has %zu bytes of constraints; the limit is %u "
             "(--max-constraint-bytes)", task->name, text, o->max_constraint_bytes);
    return -1;
  }
  return 0;
}

/* Checking a submission and building its tuner can take long (a random
 * search lists the valid configs of a space up to 2^20): it runs on
 * libuv's thread pool, and only the result comes back to the loop. */
static void submit_work(uv_work_t *req) {
  session_pending *w = req->data;
  Ktune__SubmitSession *sub = ktune__submit_session__unpack(NULL, w->blob_len, w->blob);
  if (!sub) {
    snprintf(w->err, sizeof(w->err), "the submission does not decode");
    w->rc = -1;
    return;
  }
  w->rc = prepare(w->s, sub, w->err, sizeof(w->err));
  ktune__submit_session__free_unpacked(sub, NULL);
}

static void unlink_pending(tracker *t, session_pending *w) {
  for (session_pending **pp = &t->pending; *pp; pp = &(*pp)->next)
    if (*pp == w) {
      *pp = w->next;
      return;
    }
}

/* Stores an accepted session; it exists from here on, even if its client
 * has gone meanwhile. */
static int store_session(tracker *t, session_pending *w, char *err, size_t errlen) {
  session *s = w->s;
  hist_session hs = {0};
  hs.task = s->task.name;
  hs.size_json = s->size_json;
  hs.key = s->key;
  hs.strategy = s->strategy;
  hs.compiler = s->compiler;
  hs.owner = s->owner;
  hs.trials = s->trials;
  hs.seed = s->seed;
  hs.state = "queued";
  hs.spec = w->blob;
  hs.spec_len = w->blob_len;
  int64_t rowid = 0;
  server_db_write(t);
  if (hist_session_add(t->db, &hs, &rowid) < 0) {
    snprintf(err, errlen, "history: cannot store the session: %s", hist_errmsg(t->db));
    return -1;
  }
  s->id = (uint64_t)rowid;
  s->state = "queued";
  s->started_ms = uv_now(t->loop);
  link_session(t, s);
  log_info(WHO, "session %llu from %s: %s %s on key %s, %u trials, %s search (%llu configs)",
           (unsigned long long)s->id, s->owner, s->task.name, s->size_json, s->key, s->trials,
           s->strategy, (unsigned long long)s->sp.size);
  return 0;
}

static void submit_done(uv_work_t *req, int status) {
  session_pending *w = req->data;
  tracker *t = w->t;
  unlink_pending(t, w);
  peer *p = registry_find(t, w->peer_id);
  if (status == 0 && w->rc == 0 && !t->stopping &&
      store_session(t, w, w->err, sizeof(w->err)) == 0) {
    session *s = w->s;
    w->s = NULL;
    if (p) {
      Ktune__SessionAccepted acc = KTUNE__SESSION_ACCEPTED__INIT;
      acc.session_id = s->id;
      acc.space_size = s->sp.size;
      Ktune__Envelope reply = KTUNE__ENVELOPE__INIT;
      reply.msg_case = KTUNE__ENVELOPE__MSG_ACCEPTED;
      reply.accepted = &acc;
      server_send(p, &reply);
      /* The submitter follows its session from the first trial on; a
       * watch sent after the accept could miss a fast session's batches. */
      p->watching = s->id;
    }
    session_fill(t, s);
    jobs_dispatch(t);
  } else if (p && p->c) {
    conn_send_error(p->c, "BAD_SESSION", "%s",
                    t->stopping ? "the tracker is stopping" : w->err[0] ? w->err : "refused");
  }
  if (w->s) session_free(w->s);
  free(w->blob);
  free(w);
}

int session_submit(tracker *t, peer *p, const Ktune__SubmitSession *req, char *err,
                   size_t errlen) {
  if (within_limits(t, p, req, err, errlen) < 0) return -1;
  session_pending *w = calloc(1, sizeof(*w));
  if (w) w->s = calloc(1, sizeof(*w->s));
  if (w) w->blob = malloc(ktune__submit_session__get_packed_size(req) + 1);
  if (!w || !w->s || !w->blob) {
    if (w) free(w->s), free(w->blob);
    free(w);
    snprintf(err, errlen, "the tracker is out of memory");
    return -1;
  }
  w->blob_len = ktune__submit_session__pack(req, w->blob);
  w->t = t;
  w->peer_id = p->id;
  w->trials = req->trials;
  snprintf(w->s->owner, sizeof(w->s->owner), "%s", p->name);
  w->work.data = w;
  w->next = t->pending;
  t->pending = w;
  uv_queue_work(t->loop, &w->work, submit_work, submit_done);
  return 0;
}

typedef struct {
  tracker *t;
  session *s;
  int failed;
} resume_ctx;

static int resume_job(void *ctx, int64_t id, uint64_t index, uint32_t lost) {
  resume_ctx *r = ctx;
  int64_t vals[64];
  if (r->s->task.nknobs > 64 || space_config(&r->s->sp, index, vals) < 0 ||
      !jobs_add(r->t, r->s, (uint64_t)id, index, vals, lost))
    r->failed = 1;
  else
    r->s->proposed++;
  return 0;
}

/* Knob values back from a stored canonical config. */
static void values_from_json(session *s, const char *config) {
  json_error_t je;
  json_t *o = config ? json_loads(config, 0, &je) : NULL;
  for (size_t i = 0; o && i < s->task.nknobs; i++)
    s->best_values[i] = json_integer_value(json_object_get(o, s->task.knobs[i].name));
  json_decref(o);
}

static int resume_one(void *ctx, int64_t id, const void *spec, size_t len, const char *owner,
                      int64_t created_ms) {
  tracker *t = ctx;
  (void)created_ms;
  char err[512];
  Ktune__SubmitSession *req = ktune__submit_session__unpack(NULL, len, spec);
  session *s = calloc(1, sizeof(*s));
  if (!s || !req || prepare(s, req, err, sizeof(err)) < 0) {
    log_error(WHO, "session %lld cannot be resumed (%s); marking it failed", (long long)id,
              req ? err : "its stored form does not decode");
    if (req) ktune__submit_session__free_unpacked(req, NULL);
    if (s) session_free(s);
    hist_session_update(t->db, id, "failed", NULL);
    return 0;
  }
  ktune__submit_session__free_unpacked(req, NULL);
  s->id = (uint64_t)id;
  snprintf(s->owner, sizeof(s->owner), "%s", owner ? owner : "");
  s->state = "running";
  s->started_ms = uv_now(t->loop);
  hist_session_row row;
  if (hist_session_get(t->db, id, &row) == 1) {
    s->done = row.done;
    s->failures = row.failures;
    s->reused = row.reused;
    if (row.best_config && row.best_mean_s > 0) {
      values_from_json(s, row.best_config);
      s->best_latency = row.best_mean_s;
      s->best_gflops = (double)s->flops / row.best_mean_s / 1e9;
    }
    hist_session_row_clear(&row);
  }
  /* Random and grid are deterministic in their seed: replaying as many
   * proposals as were made puts the tuner where it was. */
  int64_t vals[64];
  uint64_t idx;
  uint32_t made = s->done;
  resume_ctx rc = {t, s, 0};
  link_session(t, s);
  hist_jobs_of(t->db, id, resume_job, &rc);
  made += s->proposed;
  s->proposed = made;
  for (uint32_t i = 0; i < made && s->task.nknobs <= 64; i++)
    if (tuner_next(s->tu, vals, &idx) != 0) s->exhausted = 1;
  log_info(WHO, "session %llu resumed: %u of %u trials recorded, %u jobs queued again",
           (unsigned long long)s->id, s->done, s->trials, made - s->done);
  return 0;
}

int session_resume_all(tracker *t) {
  server_db_write(t);
  return hist_sessions_unfinished(t->db, resume_one, t);
}

/* "COMPILE_ERROR 24: kernel.c:7: error: ..., RUNTIME_ERROR 2: ..." */
static void failure_summary(const session *s, char *out, size_t len) {
  size_t off = 0;
  out[0] = 0;
  for (size_t i = 1; i < NCODES && off < len; i++) {
    if (!s->fail_count[i]) continue;
    char first[160] = "";
    if (s->first_error[i]) {
      /* The first line says what went wrong; the rest is context. */
      snprintf(first, sizeof(first), ": %.*s", (int)strcspn(s->first_error[i], "\n"),
               s->first_error[i]);
    }
    off += (size_t)snprintf(out + off, len - off, "%s%s %u%s", off ? "; " : "", codes[i],
                            s->fail_count[i], first);
  }
}

void session_end(tracker *t, session *s, const char *state, const char *why) {
  char summary[512];
  failure_summary(s, summary, sizeof(summary));
  if (!strcmp(state, "done") && s->done > 0 && s->failures == s->done) {
    /* Nothing measured: there is no best, and the reason is what failed. */
    state = "failed";
    snprintf(s->message, sizeof(s->message), "every trial failed: %s", summary);
  } else if (why) {
    snprintf(s->message, sizeof(s->message), "%s", why);
  } else if (summary[0]) {
    snprintf(s->message, sizeof(s->message), "%u of %u trials failed: %s", s->failures, s->done,
             summary);
  }
  s->state = state;
  s->ended_ms = uv_now(t->loop);
  server_db_write(t);
  if (hist_session_update(t->db, (int64_t)s->id, state, s->message[0] ? s->message : NULL) < 0)
    log_error(WHO, "history: cannot update session %llu: %s", (unsigned long long)s->id,
              hist_errmsg(t->db));
  jobs_drop_session(t, s);
  log_info(WHO, "session %llu %s: %u trials (%u from the history), %u failed, best %.3f GFLOPS%s%s",
           (unsigned long long)s->id, state, s->done, s->reused, s->failures, s->best_gflops,
           s->message[0] ? ": " : "", s->message);
  session_notify(t, s);
}

void session_evict(tracker *t) {
  uint64_t now = uv_now(t->loop);
  uint32_t kept = 0;
  /* Newest first: the list is pushed at the head. */
  for (session **pp = &t->sessions; *pp;) {
    session *s = *pp;
    if (!s->ended_ms) {
      pp = &s->next;
      continue;
    }
    if (++kept <= KEEP_ENDED && now - s->ended_ms < KEEP_ENDED_MS) {
      pp = &s->next;
      continue;
    }
    *pp = s->next;
    session_free(s);
  }
}

int session_progress_from_history(tracker *t, uint64_t id, peer *to) {
  hist_session_row row;
  if (id > INT64_MAX || hist_session_get(t->db, (int64_t)id, &row) != 1) return -1;
  Ktune__SessionProgress pr = KTUNE__SESSION_PROGRESS__INIT;
  pr.session_id = id;
  pr.state = row.state ? row.state : "failed";
  pr.trials = row.trials;
  pr.trials_done = row.done;
  pr.failures = row.failures;
  pr.reused = row.reused;
  pr.best_gflops = row.best_gflops;
  pr.best_latency_s = row.best_mean_s;
  pr.wall_s = (double)(row.updated_ms - row.created_ms) / 1e3;
  pr.message = row.message ? row.message : "";
  json_error_t je;
  json_t *cfg = row.best_config ? json_loads(row.best_config, 0, &je) : NULL;
  size_t nk = json_is_object(cfg) ? json_object_size(cfg) : 0;
  Ktune__Param *ps = calloc(nk ? nk : 1, sizeof(*ps));
  Ktune__Param **pp = calloc(nk ? nk : 1, sizeof(*pp));
  if (ps && pp && nk && row.best_mean_s > 0) {
    const char *name;
    json_t *v;
    json_object_foreach(cfg, name, v) {
      ktune__param__init(&ps[pr.n_best_config]);
      ps[pr.n_best_config].name = (char *)name;
      ps[pr.n_best_config].value = json_integer_value(v);
      pp[pr.n_best_config] = &ps[pr.n_best_config];
      pr.n_best_config++;
    }
    pr.best_config = pp;
  }
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_PROGRESS;
  env.progress = &pr;
  server_send(to, &env);
  free(ps);
  free(pp);
  json_decref(cfg);
  hist_session_row_clear(&row);
  return 0;
}

/* The history measured this config under the same conditions: the trial
 * is answered from there. Returns 1 when it was. */
static int answer_from_history(tracker *t, session *s, const int64_t *values) {
  if (s->remeasure) return 0;
  char *config = space_config_json(&s->sp, values);
  char digest[IDENT_HEX];
  hist_found f;
  int found = config && ident_trial(s->kernel, config, s->compiler, s->key, s->timing_json,
                                    s->check && s->task.reference, digest) == 0
                  ? hist_find_ok(t->db, digest, &f)
                  : 0;
  if (found == 1) {
    hist_trial tr = {0};
    tr.status = "ok";
    tr.costs = f.costs;
    tr.ncosts = f.ncosts;
    tr.runner = f.runner;
    tr.builder = f.builder;
    tr.device_json = f.device_json;
    tr.compiler_id = f.compiler_id;
    tr.number = f.number;
    tr.clock = f.clock;
    tr.reused = f.id;
    jobs_record(t, s, values, config, &tr);
    hist_found_clear(&f);
  }
  free(config);
  return found == 1;
}

void session_started(tracker *t, session *s) {
  if (strcmp(s->state, "queued") != 0) return;
  s->state = "running";
  server_db_write(t);
  hist_session_update(t->db, (int64_t)s->id, "running", NULL);
}

void session_fill(tracker *t, session *s) {
  if (strcmp(s->state, "running") != 0 && strcmp(s->state, "queued") != 0) return;
  uint32_t cap = s->batch * 2 > 64 ? 64 : s->batch * 2;
  uint32_t out = jobs_outstanding(t, s);
  int64_t vals[64];
  s->refill = 0;
  while (!s->exhausted && s->proposed < s->trials && out < cap && s->task.nknobs <= 64) {
    uint64_t idx;
    /* A bounded look per turn: a sparse space cannot stall the loop. */
    int rc = tuner_step(s->tu, vals, &idx, FILL_BUDGET);
    if (rc == TUNER_AGAIN) {
      s->refill = 1;
      server_refill(t);
      return;
    }
    if (rc != 0) {
      /* No new valid config: the space is smaller than the trials asked. */
      s->exhausted = 1;
      break;
    }
    s->proposed++;
    if (answer_from_history(t, s, vals)) {
      session_started(t, s);
      continue;
    }
    char *config = space_config_json(&s->sp, vals);
    int64_t jid = 0;
    server_db_write(t);
    if (!config || hist_job_add(t->db, (int64_t)s->id, idx, config, &jid) < 0 ||
        !jobs_add(t, s, (uint64_t)jid, idx, vals, 0)) {
      free(config);
      session_end(t, s, "failed", "cannot queue a job (out of memory or history error)");
      return;
    }
    free(config);
    out++;
  }
  if (out == 0 && (s->done >= s->trials || s->exhausted)) session_end(t, s, "done", NULL);
}

void session_on_trial(tracker *t, session *s, const int64_t *values, const hist_trial *tr) {
  s->done++;
  if (tr->reused > 0) s->reused++;
  size_t code = code_index(tr->status);
  if (code != 0) {
    s->failures++;
    s->fail_count[code]++;
    if (!s->first_error[code] && tr->error) s->first_error[code] = strdup(tr->error);
  } else if (tr->mean_s > 0) {
    double g = (double)s->flops / tr->mean_s / 1e9;
    if (g > s->batch_best) s->batch_best = g;
    if (g > s->best_gflops) {
      s->best_gflops = g;
      s->best_latency = tr->mean_s;
      memcpy(s->best_values, values, s->task.nknobs * sizeof(int64_t));
    }
  }
  if (s->done % s->batch == 0 && s->done < s->trials) session_notify(t, s);
}

void session_sweep(tracker *t) {
  uint64_t now = uv_now(t->loop);
  for (session *s = t->sessions; s; s = s->next) {
    if (strcmp(s->state, "running") != 0 && strcmp(s->state, "queued") != 0) continue;
    if (registry_runners(t, s->key) > 0) {
      s->waiting_since = 0;
      s->message[0] = 0;
      continue;
    }
    if (!s->waiting_since) {
      s->waiting_since = now;
      snprintf(s->message, sizeof(s->message), "waiting for a runner with key '%s'", s->key);
    }
    if (s->wait_timeout_ms && now - s->waiting_since >= s->wait_timeout_ms) {
      char why[256];
      snprintf(why, sizeof(why), "no runner with key '%s' was connected for %.1f s (--wait-timeout)",
               s->key, s->wait_timeout_ms / 1e3);
      session_end(t, s, "failed", why);
    }
  }
}

static void session_progress(tracker *t, session *s, Ktune__SessionProgress *out) {
  ktune__session_progress__init(out);
  out->session_id = s->id;
  out->state = (char *)s->state;
  out->trials = s->trials;
  out->trials_done = s->done;
  out->failures = s->failures;
  out->reused = s->reused;
  out->last_gflops = s->batch_best;
  out->best_gflops = s->best_gflops;
  out->best_latency_s = s->best_latency;
  out->wall_s = (double)(uv_now(t->loop) - s->started_ms) / 1e3;
  if (s->message[0]) out->message = s->message;
  else if (s->exhausted && s->done < s->trials)
    out->message = "the space has no more valid configs than these";
  if (s->best_gflops > 0) {
    size_t nk = s->task.nknobs;
    out->best_config = calloc(nk ? nk : 1, sizeof(*out->best_config));
    Ktune__Param *ps = calloc(nk ? nk : 1, sizeof(*ps));
    if (!out->best_config || !ps) {
      free(out->best_config);
      free(ps);
      out->best_config = NULL;
      return;
    }
    out->best_config[0] = ps; /* owns the array, even when there are no knobs */
    for (size_t i = 0; i < nk; i++) {
      ktune__param__init(&ps[i]);
      ps[i].name = s->task.knobs[i].name;
      ps[i].value = s->best_values[i];
      out->best_config[i] = &ps[i];
    }
    out->n_best_config = nk;
  }
}

static void session_progress_free(Ktune__SessionProgress *p) {
  if (p->best_config) free(p->best_config[0]);
  free(p->best_config);
}

void session_send_progress(tracker *t, session *s, peer *to) {
  Ktune__SessionProgress pr;
  session_progress(t, s, &pr);
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_PROGRESS;
  env.progress = &pr;
  for (peer *p = t->peers; p; p = p->next)
    if (to ? p == to : p->watching == s->id) server_send(p, &env);
  session_progress_free(&pr);
}

void session_notify(tracker *t, session *s) {
  session_send_progress(t, s, NULL);
  s->batch_best = 0;
}
