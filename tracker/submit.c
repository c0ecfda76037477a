/* Submissions: a session as a client sends it is untrusted. The cheap
 * per-client limits are checked at once; the rest (parsing the spec,
 * evaluating its expressions, building the tuner) runs on libuv's thread
 * pool, and only the verdict comes back to the loop. An accepted session
 * is stored (with the submission itself, so that a restarted tracker can
 * rebuild it) before anyone hears of it; submit_resume_all does that
 * rebuilding. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/identity.h"
#include "common/log.h"
#include "common/target.h"
#include "common/rng.h"
#include "common/timing.h"
#include "common/wire.h"
#include "tracker/tracker.h"

/* What a session may say of its workload (SubmitSession.workload). */
#define MAX_WORKLOAD_TEXT 1024

#define WHO "tracker"
#define MAX_TRIALS 1000000u
#define MAX_MS (24u * 3600u * 1000u)
/* Bytes of kernel buffers a session may ask a runner for. */
#define MAX_BUFFER_BYTES (4ull << 30)
/* Work a submission may spend counting its valid configs (space.h units):
 * well under a second, and a space too sparse for it is only "a space of
 * M configs" to its client. */
#define VALID_COUNT_BUDGET (1ull << 22)

static void start_from_prior(tracker *t, session *s);
static int restore_session(tracker *t, session *s, uint32_t *queued);

static uint32_t or_default(uint32_t v, uint32_t d) { return v ? v : d; }

static int valid_compiler(const char *c) {
  size_t n = strlen(c);
  if (n == 0 || n > 512) return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)c[i] < 0x20) return 0;
  return 1;
}

/* Checks a submission (untrusted: it came over the network, or from a
 * history blob) and evaluates what every job of it needs. */
static int prepare(session *s, const Ktune__SubmitSession *req, char *err, size_t errlen) {
  if (!req->task) {
    snprintf(err, errlen, "the session has no task");
    return -1;
  }
  /* An external session has no tuner and no budget: its client sends
   * the configs (tracker/external.c). */
  int external = strcmp(req->strategy, EXTERNAL_STRATEGY) == 0;
  if (external && req->trials) {
    snprintf(err, errlen, "an external session has no trials count (0), not %u", req->trials);
    return -1;
  }
  if (!external && (req->trials == 0 || req->trials > MAX_TRIALS)) {
    snprintf(err, errlen, "trials must be between 1 and %u, not %u", MAX_TRIALS, req->trials);
    return -1;
  }
  if (!req->key[0] || strlen(req->key) >= 64) {
    snprintf(err, errlen, "a session needs a device key of 1 to 63 characters");
    return -1;
  }
  /* The same table and words as the CLI's (common/timing.c). */
  timing_copy(&s->timing, req->timing);
  if (timing_fill(&s->timing, err, errlen) < 0) return -1;
  if (req->wait_timeout_ms > MAX_MS) {
    snprintf(err, errlen, "wait-timeout must be at most %u ms", MAX_MS);
    return -1;
  }
  /* One spelling of the built-in compiler, so that it is one identity. */
  const char *compiler = target_builtin_compiler(req->compiler) ? TARGET_BUILTIN_COMPILER
                                                                : req->compiler;
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
  if (external ? !(s->ext = external_new())
               : tuner_new(req->strategy[0] ? req->strategy : TUNER_DEFAULT, &s->sp, req->seed,
                           &s->tu, err, errlen) < 0)
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
  s->batch = or_default(req->batch, 8);
  s->check = req->check;
  s->remeasure = req->remeasure;
  s->confirm = req->confirm < CONFIRM_MAX ? req->confirm : CONFIRM_MAX;
  if (req->workload && req->workload[0]) {
    /* Stored as told, for `ktune report` to add the workload's tasks up. */
    char why[160];
    if (strlen(req->workload) > MAX_WORKLOAD_TEXT ||
        ident_canonical_object(req->workload, &s->workload, why, sizeof(why)) < 0) {
      snprintf(err, errlen, "workload must be a JSON object of at most %d bytes",
               MAX_WORKLOAD_TEXT);
      return -1;
    }
  }
  s->priority = req->priority;
  s->wait_timeout_ms = req->wait_timeout_ms;
  s->size_json = space_consts_json(&s->task);
  s->timing_json = timing_json(&s->timing);
  s->key = strdup(req->key);
  s->strategy = strdup(req->strategy[0] ? req->strategy : TUNER_DEFAULT);
  s->compiler = strdup(compiler);
  s->best_values = calloc(s->task.nknobs ? s->task.nknobs : 1, sizeof(int64_t));
  if (!s->size_json || !s->timing_json || !s->key || !s->strategy || !s->compiler ||
      !s->best_values)
    return -1;
  return 0;
}

/* Sessions a quota refusal lists by name; the rest are counted. */
#define QUOTA_LISTED 4

static uint32_t trials_left(const session *x) {
  return x->trials - (x->done < x->trials ? x->done : x->trials);
}

/* What owner has unfinished, for a refusal to name: "session 7 matmul,
 * 40 trials left; session 9 conv2d, 12 left; 1 being checked". */
static void owner_usage(tracker *t, const char *owner, char *out, size_t len) {
  size_t off = 0;
  uint32_t listed = 0, more = 0, checking = 0;
  out[0] = 0;
  for (session *x = t->sessions; x; x = x->next) {
    if (strcmp(x->owner, owner) != 0 || !session_active(x)) continue;
    if (listed == QUOTA_LISTED) {
      more++;
      continue;
    }
    if (off < len)
      off += (size_t)snprintf(out + off, len - off, "%ssession %llu %s, %u%s left",
                              listed ? "; " : "", (unsigned long long)x->id, x->task.name,
                              trials_left(x), listed ? "" : " trials");
    listed++;
  }
  for (session_pending *w = t->pending; w; w = w->next) checking += !strcmp(w->s->owner, owner);
  if (more && off < len) off += (size_t)snprintf(out + off, len - off, "; %u more", more);
  if (checking && off < len)
    snprintf(out + off, len - off, "%s%u being checked", off ? "; " : "", checking);
}

/* Per-owner and per-task limits, checked on the submission as it came,
 * before any work is spent on it; each error names its tracker option,
 * or the owner's line of the tokens file, and what uses the quota. */
static int within_limits(tracker *t, peer *p, const Ktune__SubmitSession *req, char *err,
                         size_t errlen) {
  const tracker_opts *o = &t->opts;
  const Ktune__TaskSpec *task = req->task;
  /* An owner's quota holds across their connections; the tokens file or
   * --owner may give a person their own. */
  char from_sessions[160], from_queued[160];
  uint32_t max_sessions =
      owner_setting(t, p->name, OWNER_SESSIONS, from_sessions, sizeof(from_sessions));
  uint32_t max_queued = owner_setting(t, p->name, OWNER_QUEUED, from_queued, sizeof(from_queued));
  uint32_t active = 0;
  uint64_t queued = req->trials;
  for (session *x = t->sessions; x; x = x->next) {
    if (strcmp(x->owner, p->name) != 0) continue;
    if (!session_active(x)) continue;
    active++;
    queued += trials_left(x);
  }
  for (session_pending *w = t->pending; w; w = w->next)
    if (!strcmp(w->s->owner, p->name)) active++, queued += w->trials;
  int over_sessions = active >= max_sessions;
  if (over_sessions || queued > max_queued) {
    char using[300];
    owner_usage(t, p->name, using, sizeof(using));
    if (over_sessions)
      snprintf(err, errlen, "LIMIT: %s already has %u unfinished session%s (%s); the limit is %u "
               "(%s)", p->name, active, active == 1 ? "" : "s", using, max_sessions,
               from_sessions);
    else
      snprintf(err, errlen, "LIMIT: %s would have %llu trials queued, %u of them in this "
               "session (%s); the limit is %u (%s)", p->name, (unsigned long long)queued,
               req->trials, using[0] ? using : "nothing else", max_queued, from_queued);
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

/* Checking a submission (parsing and compiling a spec of up to the
 * tracker's limits, evaluating its expressions) runs on libuv's thread
 * pool, and only the result comes back to the loop. */
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
  uint64_t n;
  if (w->rc == 0 && space_count_valid(&w->s->sp, VALID_COUNT_BUDGET, &n) == 0) {
    w->s->valid_configs = n;
    w->s->valid_exact = 1;
  }
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
  store_new_session hs = {0};
  hs.task = s->task.name;
  hs.size_json = s->size_json;
  hs.key = s->key;
  hs.strategy = s->strategy;
  hs.compiler = s->compiler;
  hs.owner = s->owner;
  hs.trials = s->trials;
  hs.seed = s->seed;
  hs.state = wire_state_name(WIRE_SESSION(QUEUED));
  hs.workload = s->workload;
  hs.spec = w->blob;
  hs.spec_len = w->blob_len;
  int64_t rowid = 0;
  core_db_write(t);
  if (store_session_add(t->db, &hs, &rowid) < 0) {
    snprintf(err, errlen, "history: cannot store the session: %s", hist_errmsg(t->db));
    return -1;
  }
  s->id = (uint64_t)rowid;
  s->state = WIRE_SESSION(QUEUED);
  s->started_ms = uv_now(t->loop);
  session_link(t, s);
  log_info(WHO, "session %llu from %s: %s %s on key %s, %u trials, %s search (%llu configs)",
           (unsigned long long)s->id, s->owner, s->task.name, s->size_json, s->key, s->trials,
           s->strategy, (unsigned long long)s->sp.size);
  return 0;
}

/* --resume: the session takes up its id, counts and search again. */
static int reopen_session(tracker *t, session_pending *w, char *err, size_t errlen) {
  session *s = w->s, *old = session_find(t, w->resume);
  if (old && (session_active(old) || old->training)) {
    snprintf(err, errlen, "session %llu is running again already", (unsigned long long)w->resume);
    return -1;
  }
  if (old) session_forget(t, old);
  s->id = w->resume;
  s->state = WIRE_SESSION(QUEUED);
  s->started_ms = uv_now(t->loop);
  uint32_t queued;
  core_db_write(t);
  if (restore_session(t, s, &queued) < 0 ||
      store_session_update(t->db, (int64_t)s->id, wire_state_name(s->state), NULL) < 0) {
    snprintf(err, errlen, "session %llu: its search cannot be restored from the history",
             (unsigned long long)s->id);
    return -1;
  }
  session_link(t, s);
  log_info(WHO, "session %llu resumed by %s: %u of %u trials recorded", (unsigned long long)s->id,
           s->owner, s->done, s->trials);
  return 0;
}

static void submit_done(uv_work_t *req, int status) {
  session_pending *w = req->data;
  tracker *t = w->t;
  unlink_pending(t, w);
  peer *p = registry_find(t, w->peer_id);
  if (status == 0 && w->rc == 0 && t->replay) {
    /* Simulated results answer for no real trial: no digest, no reuse. */
    w->s->kernel[0] = 0;
    if (replay_covers(t, w->s, w->err, sizeof(w->err)) < 0) w->rc = -1;
  }
  if (status == 0 && w->rc == 0 && !t->stopping &&
      (w->resume ? reopen_session(t, w, w->err, sizeof(w->err))
                 : store_session(t, w, w->err, sizeof(w->err))) == 0) {
    session *s = w->s;
    w->s = NULL;
    start_from_prior(t, s);
    if (p) {
      Ktune__SessionAccepted acc = KTUNE__SESSION_ACCEPTED__INIT;
      acc.session_id = s->id;
      acc.space_size = s->sp.size;
      acc.valid_configs = s->valid_configs;
      acc.valid_exact = s->valid_exact;
      acc.prior = s->prior;
      core_send_msg(p, KTUNE__ENVELOPE__MSG_ACCEPTED, &acc);
      /* The submitter follows its session from the first trial on; a
       * watch sent after the accept could miss a fast session's batches. */
      p->watching = s->id;
    }
    session_fill(t, s);
    /* A key nobody serves is said now, not at the next sweep. */
    session_check_runners(t, s);
    jobs_dispatch(t);
  } else if (p && p->c) {
    conn_send_error(p->c, "BAD_SESSION", "%s",
                    t->stopping ? "the tracker is stopping" : w->err[0] ? w->err : "refused");
  }
  if (w->s) session_free(w->s);
  free(w->blob);
  free(w);
}

/* A submission to check: blob (len bytes) is the packed SubmitSession. */
static session_pending *pending_new(tracker *t, peer *p, const void *blob, size_t len) {
  session_pending *w = calloc(1, sizeof(*w));
  if (w) w->s = calloc(1, sizeof(*w->s));
  if (w) w->blob = malloc(len + 1);
  if (!w || !w->s || !w->blob) {
    if (w) free(w->s), free(w->blob);
    free(w);
    return NULL;
  }
  memcpy(w->blob, blob, len);
  w->blob_len = len;
  w->t = t;
  w->peer_id = p->id;
  snprintf(w->s->owner, sizeof(w->s->owner), "%s", p->name);
  return w;
}

static void pending_queue(tracker *t, session_pending *w) {
  w->work.data = w;
  w->next = t->pending;
  t->pending = w;
  uv_queue_work(t->loop, &w->work, submit_work, submit_done);
}

/* The stored submission of the session to resume becomes the pending one. */
typedef struct {
  tracker *t;
  peer *p;
  session_pending *w;
} spec_ctx;

static int take_spec(void *ctx, int64_t id, const void *spec, size_t len, const char *owner,
                     int64_t created_ms) {
  (void)id, (void)owner, (void)created_ms;
  spec_ctx *c = ctx;
  c->w = pending_new(c->t, c->p, spec, len);
  return 0;
}

/* --resume: a cancelled or failed session goes on with its own stored
 * submission and its remaining trials; its search restores from its
 * trials, so nothing is measured twice. */
static int submit_resume(tracker *t, peer *p, uint64_t id, char *err, size_t errlen) {
  session *live = session_find(t, id);
  if (live && (session_active(live) || live->training)) {
    snprintf(err, errlen, "session %llu is still running", (unsigned long long)id);
    return -1;
  }
  for (session_pending *x = t->pending; x; x = x->next)
    if (x->resume == id) {
      snprintf(err, errlen, "session %llu is being resumed already", (unsigned long long)id);
      return -1;
    }
  hist_session_row row;
  if (id > INT64_MAX || hist_session_get(t->db, (int64_t)id, &row) != 1) {
    snprintf(err, errlen, "there is no session %llu in the history", (unsigned long long)id);
    return -1;
  }
  int rc = -1;
  if (strcmp(row.state, "cancelled") != 0 && strcmp(row.state, "failed") != 0)
    snprintf(err, errlen, "session %llu is %s; only a cancelled or failed session can be resumed",
             (unsigned long long)id, row.state);
  else if (strcmp(row.owner ? row.owner : "", p->name) != 0)
    snprintf(err, errlen, "session %llu belongs to %s, not to %s", (unsigned long long)id,
             row.owner ? row.owner : "nobody", p->name);
  else if (row.done >= row.trials)
    snprintf(err, errlen, "session %llu has all its %u trials; start a new session for more",
             (unsigned long long)id, row.trials);
  else
    rc = 0;
  uint32_t left = row.trials - row.done;
  hist_session_row_clear(&row);
  if (rc < 0) return -1;
  spec_ctx c = {t, p, NULL};
  if (store_session_spec(t->db, (int64_t)id, take_spec, &c) < 0 || !c.w) {
    snprintf(err, errlen, "session %llu: its stored submission cannot be read",
             (unsigned long long)id);
    return -1;
  }
  session_pending *w = c.w;
  /* A resumed session counts against its owner's limits as a new one
   * does: its remaining trials, its task against today's limits. */
  Ktune__SubmitSession *req = ktune__submit_session__unpack(NULL, w->blob_len, w->blob);
  int ok = req != NULL;
  if (!ok) {
    snprintf(err, errlen, "session %llu: its stored submission does not decode",
             (unsigned long long)id);
  } else {
    req->trials = left;
    ok = within_limits(t, p, req, err, errlen) == 0;
    ktune__submit_session__free_unpacked(req, NULL);
  }
  if (!ok) {
    session_free(w->s);
    free(w->blob);
    free(w);
    return -1;
  }
  w->resume = id;
  w->trials = left;
  pending_queue(t, w);
  return 0;
}

int submit_session(tracker *t, peer *p, const Ktune__SubmitSession *req, char *err,
                   size_t errlen) {
  if (req->resume) return submit_resume(t, p, req->resume, err, errlen);
  if (within_limits(t, p, req, err, errlen) < 0) return -1;
  uint8_t *blob = malloc(ktune__submit_session__get_packed_size(req) + 1);
  session_pending *w = blob ? pending_new(t, p, blob, ktune__submit_session__pack(req, blob)) : NULL;
  free(blob);
  if (!w) {
    snprintf(err, errlen, "the tracker is out of memory");
    return -1;
  }
  w->trials = req->trials;
  pending_queue(t, w);
  return 0;
}

/* What a resumed session's tuner restores from: the session's trials and
 * its jobs queued again, each with its knob values. */
typedef struct {
  tracker *t;
  session *s;
  int failed;          /* out of memory: the tuner cannot be restored */
  tuner_trial *past;
  int64_t *vals;       /* task.nknobs of them per entry of past */
  char **status;       /* copies of past[i].status */
  size_t n, cap;
} resume_ctx;

static int grow(void *arrayp, size_t elem, size_t n) {
  void *p = realloc(*(void **)arrayp, n * elem);
  if (!p) return -1;
  *(void **)arrayp = p;
  return 0;
}

/* Keeps a config the session proposed before the restart. */
static void remember(resume_ctx *r, uint64_t index, const int64_t *vals, const char *status,
                     double mean_s) {
  size_t nk = r->s->task.nknobs ? r->s->task.nknobs : 1;
  if (r->n == r->cap) {
    size_t cap = r->cap ? 2 * r->cap : 64;
    if (grow(&r->past, sizeof *r->past, cap) < 0 || grow(&r->vals, nk * sizeof *r->vals, cap) < 0 ||
        grow(&r->status, sizeof *r->status, cap) < 0) {
      r->failed = 1;
      return;
    }
    r->cap = cap;
  }
  char *copy = status ? strdup(status) : NULL;
  if (status && !copy) r->failed = 1;
  int ok = copy && strcmp(copy, "ok") == 0;
  memcpy(r->vals + r->n * nk, vals, r->s->task.nknobs * sizeof *vals);
  r->status[r->n] = copy;
  r->past[r->n++] = (tuner_trial){.index = index, .status = copy, .mean_s = ok ? mean_s : 0,
                                  .gflops = ok ? trial_gflops(r->s->flops, mean_s) : 0};
}

/* A job that cannot be queued again is not remembered: the tuner may
 * propose its config again. */
static int resume_job(void *ctx, int64_t id, uint64_t index, uint32_t lost) {
  resume_ctx *r = ctx;
  int64_t vals[64];
  char *config = NULL, digest[IDENT_HEX];
  if (r->s->task.nknobs <= 64 && space_config(&r->s->sp, index, vals) == 0 &&
      (config = space_config_json(&r->s->sp, vals)) &&
      jobs_add(r->t, r->s, (uint64_t)id, index, vals, config,
               trial_digest(r->s, config, digest) == 0 ? digest : NULL, lost)) {
    r->s->proposed++;
    remember(r, index, vals, NULL, 0);
  }
  free(config);
  return 0;
}

/* Knob values back from a stored canonical config; -1 when one is not
 * there. */
static int values_from_json(const session *s, const char *config, int64_t *out) {
  json_error_t je;
  json_t *o = config ? json_loads(config, 0, &je) : NULL;
  int rc = o ? 0 : -1;
  for (size_t i = 0; o && i < s->task.nknobs; i++) {
    json_t *v = json_object_get(o, s->task.knobs[i].name);
    if (!json_is_integer(v)) rc = -1;
    out[i] = json_integer_value(v);
  }
  json_decref(o);
  return rc;
}

/* A trial whose config is not in the space (an edited history) is one
 * the tuner could not propose anyway. */
static int resume_trial(void *ctx, const char *config_json, const char *status, double mean_s) {
  resume_ctx *r = ctx;
  int64_t vals[64];
  uint64_t index;
  if (r->s->task.nknobs <= 64 && values_from_json(r->s, config_json, vals) == 0 &&
      space_index(&r->s->sp, vals, &index) == 0) {
    remember(r, index, vals, status, mean_s);
    /* The history's stored config is canonical, as the digest wants. */
    if (status && !strcmp(status, "ok")) confirm_note_known(r->s, vals, config_json, mean_s);
  }
  return 0;
}

static int ignore_prior(tuner *tu, const tuner_trial *t, size_t n) {
  (void)tu, (void)t, (void)n;
  return 0;
}

/* Hands the tuner the trials remembered: with tuner_restore, what the
 * session proposed before the restart; with tuner_prior, what earlier
 * sessions measured. */
static int hand_over(resume_ctx *r, int (*give)(tuner *, const tuner_trial *, size_t)) {
  size_t nk = r->s->task.nknobs ? r->s->task.nknobs : 1;
  for (size_t i = 0; i < r->n; i++) r->past[i].values = r->vals + i * nk;
  int rc = r->failed ? -1 : give(r->s->tu, r->past, r->n);
  for (size_t i = 0; i < r->n; i++) free(r->status[i]);
  free(r->past);
  free(r->vals);
  free(r->status);
  return rc;
}

/* A session's progress and search back from the history: its counts and
 * best, its trials for the tuner to restore, and its jobs not finished
 * queued again (*queued of them). -1 when the search cannot be restored. */
static int restore_session(tracker *t, session *s, uint32_t *queued) {
  int64_t id = (int64_t)s->id;
  hist_session_row row;
  if (hist_session_get(t->db, id, &row) == 1) {
    s->done = row.done;
    s->failures = row.failures;
    s->reused = row.reused;
    if (row.best_config && row.best_mean_s > 0) {
      values_from_json(s, row.best_config, s->best_values);
      s->best_latency = row.best_mean_s;
      s->best_gflops = trial_gflops(s->flops, row.best_mean_s);
    }
    hist_session_row_clear(&row);
  }
  /* The tuner restores from what the history holds (the session's trials,
   * its jobs not finished), not by proposing again. */
  resume_ctx rc = {.t = t, .s = s};
  store_jobs_of(t->db, id, resume_job, &rc);
  *queued = s->proposed;
  s->proposed += s->done;
  if (store_session_trials(t->db, id, resume_trial, &rc) < 0) rc.failed = 1;
  return hand_over(&rc, tuner_restore);
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
    store_session_update(t->db, id, "failed", NULL);
    return 0;
  }
  ktune__submit_session__free_unpacked(req, NULL);
  s->id = (uint64_t)id;
  snprintf(s->owner, sizeof(s->owner), "%s", owner ? owner : "");
  s->state = WIRE_SESSION(RUNNING);
  s->started_ms = uv_now(t->loop);
  session_link(t, s);
  if (!s->tu) {
    /* An external session's configs came from its client, gone with the
     * old tracker. */
    session_end(t, s, WIRE_SESSION(CANCELLED), "its client (ktune measure) left when the "
                                               "tracker stopped");
    return 0;
  }
  uint32_t queued;
  if (restore_session(t, s, &queued) < 0) {
    log_error(WHO, "session %llu cannot restore its search; marking it failed",
              (unsigned long long)s->id);
    session_end(t, s, WIRE_SESSION(FAILED),
                "its search could not be restored after a restart");
    return 0;
  }
  start_from_prior(t, s);
  log_info(WHO, "session %llu resumed: %u of %u trials recorded, %u jobs queued again",
           (unsigned long long)s->id, s->done, s->trials, queued);
  return 0;
}

/* A search that learns starts from every earlier trial of the same kernel
 * under the same conditions, so a second session goes on where the first
 * left off. Before its first step; a failure only costs the head start. */
/* Earlier trials of the kernel: what a learning search starts from, and
 * the candidates for the confirmation at the session's end (so that the
 * batches of a workload, or a session that goes on where another left
 * off, confirm the best of all of them). */
static void start_from_prior(tracker *t, session *s) {
  int learn = tuner_uses_prior(s->tu);
  if (!s->kernel[0] || (!learn && !s->confirm) || !s->tu) return;
  resume_ctx r = {.t = t, .s = s};
  store_prior_query q = {.kernel = s->kernel, .compiler = s->compiler, .key = s->key,
                         .timing_json = s->timing_json, .checked = s->check && s->task.reference,
                         .session = (int64_t)s->id};
  if (store_prior_trials(t->db, &q, resume_trial, &r) < 0) r.failed = 1;
  size_t n = learn ? r.n : 0;
  if (hand_over(&r, learn ? tuner_prior : ignore_prior) < 0) {
    log_error(WHO, "session %llu: cannot read earlier trials of its kernel; it starts afresh",
              (unsigned long long)s->id);
    return;
  }
  s->prior = (uint32_t)n;
  if (n)
    log_info(WHO, "session %llu starts from %zu earlier trials of its kernel",
             (unsigned long long)s->id, n);
}

int submit_resume_all(tracker *t) {
  core_db_write(t);
  return store_sessions_unfinished(t->db, resume_one, t);
}

