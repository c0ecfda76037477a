/* Tuning sessions: a task, a device key and a strategy. The session asks
 * its tuner for candidates while it has room, turns them into jobs, and
 * reports progress to the clients that watch it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/wire.h"
#include "tracker/tracker.h"

#define WHO "tracker"
#define MAX_TRIALS 1000000u
#define MAX_NUMBER 1000000u
#define MAX_REPEAT 10000u
/* Bytes of kernel buffers a session may ask a runner for. */
#define MAX_BUFFER_BYTES (4ull << 30)

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
  free(s->counts);
  free(s->best_values);
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

/* Checks a submission and evaluates what every job of it needs. */
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
  const char *compiler = req->compiler[0] ? req->compiler : "tcc";
  if (strcmp(compiler, "tcc") != 0) {
    snprintf(err, errlen, "compiler '%s' is not available yet: only tcc is built in", compiler);
    return -1;
  }
  if (task_from_proto(req->task, &s->task, err, errlen) < 0) return -1;
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
    size_t es = strcmp(s->task.args[i].type, "double") == 0 || strcmp(s->task.args[i].type, "int64") == 0 ? 8 : 4;
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
  s->size_json = space_consts_json(&s->task);
  s->key = strdup(req->key);
  s->strategy = strdup(req->strategy[0] ? req->strategy : "random");
  s->compiler = strdup(compiler);
  s->best_values = calloc(s->task.nknobs ? s->task.nknobs : 1, sizeof(int64_t));
  if (!s->size_json || !s->key || !s->strategy || !s->compiler || !s->best_values) return -1;
  s->trials = req->trials;
  s->number = or_default(req->number, 1);
  s->repeat = or_default(req->repeat, 3);
  s->batch = or_default(req->batch, 8);
  s->check = req->check;
  return 0;
}

int session_submit(tracker *t, peer *p, const Ktune__SubmitSession *req, uint64_t *id,
                   char *err, size_t errlen) {
  session *s = calloc(1, sizeof(*s));
  if (!s) return -1;
  if (prepare(s, req, err, errlen) < 0) {
    session_free(s);
    return -1;
  }
  uint8_t *blob = malloc(ktune__submit_session__get_packed_size(req) + 1);
  size_t blen = blob ? ktune__submit_session__pack(req, blob) : 0;
  hist_session hs = {0};
  hs.task = s->task.name;
  hs.size_json = s->size_json;
  hs.key = s->key;
  hs.strategy = s->strategy;
  hs.compiler = s->compiler;
  hs.owner = p->name;
  hs.trials = s->trials;
  hs.seed = s->seed;
  hs.state = "running";
  hs.spec = blob;
  hs.spec_len = blen;
  int64_t rowid = 0;
  server_db_write(t);
  int rc = hist_session_add(t->db, &hs, &rowid);
  free(blob);
  if (rc < 0) {
    snprintf(err, errlen, "history: cannot store the session: %s", hist_errmsg(t->db));
    session_free(s);
    return -1;
  }
  s->id = (uint64_t)rowid;
  s->state = "running";
  s->started_ms = uv_now(t->loop);
  s->next = t->sessions;
  t->sessions = s;
  *id = s->id;
  log_info(WHO, "session %llu: %s %s on key %s, %u trials, %s search (%llu configs in the space)",
           (unsigned long long)s->id, s->task.name, s->size_json, s->key, s->trials, s->strategy,
           (unsigned long long)s->sp.size);
  return 0;
}

static void end_session(tracker *t, session *s, const char *state) {
  s->state = state;
  server_db_write(t);
  if (hist_session_update(t->db, (int64_t)s->id, state) < 0)
    log_error(WHO, "history: cannot update session %llu: %s", (unsigned long long)s->id,
              hist_errmsg(t->db));
  jobs_drop_session(t, s);
  log_info(WHO, "session %llu %s: %u trials, %u failed, best %.3f GFLOPS",
           (unsigned long long)s->id, state, s->done, s->failures, s->best_gflops);
  session_notify(t, s);
}

void session_fill(tracker *t, session *s) {
  if (strcmp(s->state, "running") != 0) return;
  uint32_t cap = s->batch * 2 > 64 ? 64 : s->batch * 2;
  uint32_t out = jobs_outstanding(t, s);
  while (!s->exhausted && s->proposed < s->trials && out < cap) {
    int64_t vals[64];
    int64_t *v = s->task.nknobs <= 64 ? vals : malloc(s->task.nknobs * sizeof(int64_t));
    uint64_t idx;
    int rc = v ? tuner_next(s->tu, v, &idx) : -1;
    if (rc == 0) rc = jobs_add(t, s, idx, v);
    if (v != vals) free(v);
    if (rc != 0) {
      /* No new valid config: the space is smaller than the trials asked. */
      s->exhausted = 1;
      break;
    }
    s->proposed++;
    out++;
  }
  if (out == 0 && (s->done >= s->trials || s->exhausted)) end_session(t, s, "done");
}

void session_on_trial(tracker *t, session *s, const job *j, const char *status, double mean_s) {
  s->done++;
  if (strcmp(status, "ok") != 0) {
    s->failures++;
  } else {
    double g = (double)s->flops / mean_s / 1e9;
    if (g > s->batch_best) s->batch_best = g;
    if (g > s->best_gflops) {
      s->best_gflops = g;
      s->best_latency = mean_s;
      memcpy(s->best_values, j->values, s->task.nknobs * sizeof(int64_t));
    }
  }
  if (s->done % s->batch == 0 && s->done < s->trials) session_notify(t, s);
}

void session_progress(tracker *t, session *s, Ktune__SessionProgress *out) {
  ktune__session_progress__init(out);
  out->session_id = s->id;
  out->state = (char *)s->state;
  out->trials = s->trials;
  out->trials_done = s->done;
  out->failures = s->failures;
  out->last_gflops = s->batch_best;
  out->best_gflops = s->best_gflops;
  out->best_latency_s = s->best_latency;
  out->wall_s = (double)(uv_now(t->loop) - s->started_ms) / 1e3;
  if (s->exhausted && s->done < s->trials)
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

void session_progress_free(Ktune__SessionProgress *p) {
  if (p->best_config) free(p->best_config[0]);
  free(p->best_config);
}

void session_notify(tracker *t, session *s) {
  Ktune__SessionProgress pr;
  session_progress(t, s, &pr);
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_PROGRESS;
  env.progress = &pr;
  for (peer *p = t->peers; p; p = p->next)
    if (p->watching == s->id) server_send(p, &env);
  session_progress_free(&pr);
  s->batch_best = 0;
}
