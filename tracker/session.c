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
#include "common/target.h"
#include "common/log.h"
#include "common/wire.h"
#include "tracker/tracker.h"

#define WHO "tracker"
/* Configs a session's search may look at in one loop turn. */
#define FILL_BUDGET 2048
/* Ended sessions kept in memory for `ktune status`; older ones are served
 * from the history. */
#define KEEP_ENDED 8
#define KEEP_ENDED_MS 60000

/* Per-status counts are indexed by the status itself (common/wire.c). */
_Static_assert(KTUNE__TRIAL_STATUS__TRIAL_RUNNER_ERROR < NCODES, "a count for every status");

static void session_on_trial(tracker *t, session *s, const int64_t *values, const char *config,
                             hist_trial *tr);

session *session_find(tracker *t, uint64_t id) {
  for (session *s = t->sessions; s; s = s->next)
    if (s->id == id) return s;
  return NULL;
}

void session_free(session *s) {
  if (s->home) {
    /* Jobs queued for it (by a resume that then failed) must not outlive it. */
    if (s->outstanding) jobs_drop_session(s->home, s);
    queue_session_leave(s->home, s);
  }
  confirm_free(s);
  if (s->tu) tuner_free(s->tu);
  external_free(s->ext);
  task_free(&s->task);
  free(s->key);
  free(s->strategy);
  free(s->compiler);
  free(s->size_json);
  free(s->workload);
  free(s->timing_json);
  free(s->counts);
  free(s->best_values);
  for (size_t i = 0; i < NCODES; i++) free(s->first_error[i]);
  free(s);
}

void session_link(tracker *t, session *s) {
  /* Out of memory here leaves it off its key's list until its first job. */
  queue_session_join(t, s);
  s->next = t->sessions;
  t->sessions = s;
}

void session_forget(tracker *t, session *s) {
  for (session **pp = &t->sessions; *pp; pp = &(*pp)->next)
    if (*pp == s) {
      *pp = s->next;
      session_free(s);
      return;
    }
}

void session_free_all(tracker *t) {
  while (t->sessions) {
    session *s = t->sessions;
    t->sessions = s->next;
    session_free(s);
  }
}

/* A progress line's cut of each first error: it names the mistake and
 * stays on one terminal line. */
#define PROGRESS_ERROR_CHARS 80
/* The ended session's message has room for more of each. */
#define ENDED_ERROR_CHARS 150

/* "COMPILE_ERROR 24: kernel.c:7: error: ..., RUNTIME_ERROR 2: ..." with
 * each first error's first line, cut to `cut` characters. */
static void failure_summary(const session *s, int cut, char *out, size_t len) {
  size_t off = 0;
  out[0] = 0;
  for (size_t i = 0; i < NCODES && off < len; i++) {
    if (!s->fail_count[i]) continue;
    char first[160] = "";
    if (s->first_error[i]) {
      /* The first line says what went wrong; the rest is context. */
      int n = (int)strcspn(s->first_error[i], "\n");
      snprintf(first, sizeof(first), ": %.*s%s", n < cut ? n : cut, s->first_error[i],
               n > cut ? "..." : "");
    }
    const char *name = wire_status_name((Ktune__TrialStatus)i);
    off += (size_t)snprintf(out + off, len - off, "%s%s %u%s", off ? "; " : "",
                            name ? name : "?", s->fail_count[i], first);
  }
}

int session_active(const session *s) {
  return s->state == WIRE_SESSION(QUEUED) ||
         s->state == WIRE_SESSION(RUNNING);
}

void session_end(tracker *t, session *s, Ktune__SessionState state, const char *why) {
  size_t len = sizeof(s->message);
  int n = 0;
  if (state == WIRE_SESSION(DONE) && s->done > 0 && s->failures == s->done) {
    /* Nothing measured: there is no best, and the reason is what failed. */
    state = WIRE_SESSION(FAILED);
    n = snprintf(s->message, len, "every trial failed: ");
    failure_summary(s, ENDED_ERROR_CHARS, s->message + n, len - (size_t)n);
  } else if (why) {
    snprintf(s->message, len, "%s", why);
  } else if (s->failures) {
    n = snprintf(s->message, len, "%u of %u trials failed: ", s->failures, s->done);
    failure_summary(s, ENDED_ERROR_CHARS, s->message + n, len - (size_t)n);
    /* A resumed session has its count but not the statuses: no list. */
    if (!s->message[n]) s->message[0] = 0;
  }
  /* A constraint that could not be evaluated ruled configs out: say so. */
  const char *note = tuner_note(s->tu);
  if (note) {
    size_t n = strlen(s->message);
    snprintf(s->message + n, sizeof(s->message) - n, "%sconfigs ruled out: %s", n ? "; " : "",
             note);
  }
  if (session_active(s)) metrics_session_ended(t, state);
  s->state = state;
  s->ended_ms = uv_now(t->loop);
  core_db_write(t);
  if (store_session_update(t->db, (int64_t)s->id, wire_state_name(state),
                          s->message[0] ? s->message : NULL) < 0)
    log_error(WHO, "history: cannot update session %llu: %s", (unsigned long long)s->id,
              hist_errmsg(t->db));
  jobs_drop_session(t, s);
  log_info(WHO, "session %llu %s: %u trials (%u from the history), %u failed, best %.3f GFLOPS%s%s",
           (unsigned long long)s->id, wire_state_name(state), s->done, s->reused, s->failures,
           s->best_gflops,
           s->message[0] ? ": " : "", s->message);
  session_notify(t, s);
}

void session_evict(tracker *t) {
  uint64_t now = uv_now(t->loop);
  uint32_t kept = 0;
  /* Newest first: the list is pushed at the head. */
  for (session **pp = &t->sessions; *pp;) {
    session *s = *pp;
    /* A training on the thread pool still uses it. */
    if (!s->ended_ms || s->training) {
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
  pr.state = wire_state_parse(row.state);
  if (!pr.state) pr.state = WIRE_SESSION(FAILED);
  pr.trials = row.trials;
  pr.trials_done = row.done;
  pr.failures = row.failures;
  pr.reused = row.reused;
  pr.best_gflops = row.best_gflops;
  pr.best_latency_s = row.best_mean_s;
  pr.best_gbps = row.best_gbps;
  pr.bytes_counted = row.best_gbps > 0;
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
  core_send_msg(to, KTUNE__ENVELOPE__MSG_PROGRESS, &pr);
  free(ps);
  free(pp);
  json_decref(cfg);
  hist_session_row_clear(&row);
  return 0;
}

/* The history measured this config with the same trial identity: the
 * trial is answered from there. Returns 1 when it was. */
static int answer_from_history(tracker *t, session *s, const int64_t *values,
                               const char *config, const char *digest) {
  store_found f;
  if (s->remeasure || !digest || store_find_ok(t->db, digest, &f) != 1) return 0;
  hist_trial tr = {0};
  tr.status = "ok";
  tr.digest = digest;
  tr.costs = f.costs;
  tr.ncosts = f.ncosts;
  tr.runner = f.runner;
  tr.builder = f.builder;
  tr.device_json = f.device_json;
  tr.compiler_id = f.compiler_id;
  tr.number = f.number;
  tr.clock = f.clock;
  tr.reused = f.id;
  session_on_trial(t, s, values, config, &tr);
  store_found_clear(&f);
  return 1;
}

/* --replay: every trial is answered from the recording, in proposal order. */
static int answer_from_recording(tracker *t, session *s, const int64_t *values,
                                 const char *config) {
  hist_trial tr;
  replay_answer(t, s, config, &tr);
  session_on_trial(t, s, values, config, &tr);
  return 1;
}

void session_started(tracker *t, session *s) {
  if (s->state != WIRE_SESSION(QUEUED)) return;
  s->state = WIRE_SESSION(RUNNING);
  core_db_write(t);
  store_session_update(t->db, (int64_t)s->id, wire_state_name(s->state), NULL);
}

/* A runner took a job of s: whatever it waited for has come, and its
 * last progress must not say otherwise. */
static void on_job_started(tracker *t, session *s) {
  if (s->waiting_since || session_active(s)) {
    s->waiting_since = 0;
    s->waiting_builder = 0;
    s->message[0] = 0;
  }
  session_started(t, s);
}

/* Runs while some session's search has more to look at than one loop
 * turn may spend (FILL_BUDGET): it goes on a turn later. */
static void on_refill(uv_idle_t *h) {
  tracker *t = h->data;
  int more = 0;
  for (session *s = t->sessions; s; s = s->next) {
    if (!s->refill) continue;
    session_fill(t, s);
    more |= s->refill;
  }
  jobs_dispatch(t);
  if (!more) uv_idle_stop(h);
}

/* Queues one candidate: a row of the history's jobs table, then a job.
 * Returns -1 when it could not be stored. */
static int queue_candidate(tracker *t, session *s, uint64_t idx, const int64_t *vals,
                           const char *config, const char *digest) {
  int64_t jid = 0;
  core_db_write(t);
  if (store_job_add(t->db, (int64_t)s->id, idx, config, &jid) < 0) return -1;
  return jobs_add(t, s, (uint64_t)jid, idx, vals, config, digest, 0) ? 0 : -1;
}

/* Training runs on libuv's thread pool; the session stops proposing
 * until it is done, while its queued jobs keep the agents busy. */
static void train_work(uv_work_t *req) {
  session *s = req->data;
  uint64_t t0 = uv_hrtime();
  s->train_rc = tuner_train(s->tu);
  s->train_ns = uv_hrtime() - t0;
}

static void train_done(uv_work_t *req, int status) {
  session *s = req->data;
  tracker *t = s->home;
  s->training = 0;
  s->search_s += (double)s->train_ns / 1e9;
  if (status != 0 || s->train_rc < 0) {
    session_end(t, s, WIRE_SESSION(FAILED), "its search could not train its model (out of memory)");
    return;
  }
  session_fill(t, s);
  /* The words of this plan, while nothing changes them: a batch's
   * progress that comes while the next training runs shows them. */
  if (!s->training && session_active(s)) tuner_describe(s->tu, s->search, sizeof(s->search));
  jobs_dispatch(t);
}

void session_fill(tracker *t, session *s) {
  if (!session_active(s) || s->training) return;
  uint32_t cap = s->batch * 2 > 64 ? 64 : s->batch * 2;
  uint32_t out = jobs_outstanding(t, s);
  int64_t vals[64];
  s->refill = 0;
  /* A search about to learn would rather wait for results than guess
   * (tuner_ahead); a job's end calls this again. */
  while (!s->exhausted && s->proposed < s->trials && out < cap && out < tuner_ahead(s->tu) &&
         s->task.nknobs <= 64) {
    uint64_t idx;
    /* A bounded look per turn: a sparse space cannot stall the loop. */
    uint64_t t0 = uv_hrtime();
    int rc = s->ext ? external_next(s, vals, &idx) /* the configs its client sent */
                    : tuner_step(s->tu, vals, &idx, FILL_BUDGET);
    s->search_s += (double)(uv_hrtime() - t0) / 1e9;
    if (rc == TUNER_AGAIN) {
      s->refill = 1;
      if (!t->stopping) uv_idle_start(&t->refill, on_refill);
      return;
    }
    if (rc == TUNER_TRAIN) {
      if (t->stopping) return;
      s->training = 1;
      s->home = t;
      s->train.data = s;
      uv_queue_work(t->loop, &s->train, train_work, train_done);
      return;
    }
    if (rc != 0) {
      /* No new valid config: the space is smaller than the trials asked. */
      s->exhausted = 1;
      break;
    }
    s->proposed++;
    /* The config's JSON and its trial identity are made once, for the
     * reuse lookup, the jobs table, the job and the trial's row. */
    char *config = space_config_json(&s->sp, vals);
    char digest[IDENT_HEX];
    const char *id = config && trial_digest(s, config, digest) == 0 ? digest : NULL;
    int answered = config && (t->replay ? answer_from_recording(t, s, vals, config)
                                        : answer_from_history(t, s, vals, config, id));
    if (answered) {
      session_started(t, s);
    } else if (!config || queue_candidate(t, s, idx, vals, config, id) < 0) {
      free(config);
      session_end(t, s, WIRE_SESSION(FAILED),
                  "cannot queue a job (out of memory or history error)");
      return;
    } else {
      out++;
    }
    free(config);
  }
  int searched = s->ext ? external_finished(s) : s->done >= s->trials || s->exhausted;
  /* Confirmation's runs that are left wait for a turn that never comes. */
  if (searched && confirm_finished(s)) session_end(t, s, WIRE_SESSION(DONE), NULL);
  else if (searched && out == 0 && confirm_start(t, s)) session_send_progress(t, s, NULL);
  else if (searched && out == 0) session_end(t, s, WIRE_SESSION(DONE), NULL);
}

/* The tuner hears of every trial, measured or answered from the history:
 * a strategy that learns learns from all of them. */
static void tell_tuner(session *s, const int64_t *values, const hist_trial *tr) {
  int ok = tr->status && strcmp(tr->status, "ok") == 0;
  tuner_trial tt = {.values = values, .status = tr->status, .mean_s = ok ? tr->mean_s : 0,
                    .gflops = ok ? tr->gflops : 0};
  if (space_index(&s->sp, values, &tt.index) < 0 || tuner_observe(s->tu, &tt) < 0)
    log_error(WHO, "session %llu: its tuner could not take in a trial",
              (unsigned long long)s->id);
}

/* Every trial of a session, measured, reused or replayed: its row, then
 * the session's counts and its search (or its external client). */
static void session_on_trial(tracker *t, session *s, const int64_t *values, const char *config,
                             hist_trial *tr) {
  trial_record(t, s, config, tr);
  if (s->ext) external_answer(t, s, tr); /* its client hears of it instead */
  else tell_tuner(s, values, tr);
  s->done++;
  if (tr->reused > 0) s->reused++;
  size_t code = (size_t)wire_status_parse(tr->status); /* the history's string */
  if (code >= NCODES) code = 0;
  metrics_trial(t, s->key, (unsigned)code);
  if (code != KTUNE__TRIAL_STATUS__TRIAL_OK) {
    s->failures++;
    s->fail_count[code]++;
    if (!s->first_error[code] && tr->error) s->first_error[code] = strdup(tr->error);
  } else if (tr->mean_s > 0) {
    confirm_note(s, values, config, tr);
    double g = trial_gflops(s->flops, tr->mean_s);
    if (g > s->batch_best) s->batch_best = g;
    if (g > s->best_gflops) {
      s->best_gflops = g;
      s->best_latency = tr->mean_s;
      memcpy(s->best_values, values, s->task.nknobs * sizeof(int64_t));
    }
  }
  if (s->done % s->batch == 0 && s->done < s->trials) session_notify(t, s);
}

/* Agents started together connect in any order: a key's runner before
 * the builders is no wait worth saying. */
#define BUILDER_GRACE_MS 2000

/* A key whose runners no connected builder can make code for (an aarch64
 * board, and builders for x86-64 only) waits for one, and fails after
 * --wait-timeout. */
static void check_builders(tracker *t, session *s) {
  char want[96];
  if (!s->queued[QUEUE_BUILD] || !jobs_builder_missing(t, s, want, sizeof(want))) {
    s->waiting_since = 0;
    s->waiting_builder = 0;
    s->message[0] = 0;
    return;
  }
  uint64_t now = uv_now(t->loop);
  if (!s->waiting_builder) {
    s->waiting_builder = 1;
    s->waiting_since = now;
    s->wait_limit_ms = s->wait_timeout_ms;
    s->message[0] = 0;
  }
  if (s->message[0] || now - s->waiting_since < BUILDER_GRACE_MS) return;
  int tcc = strcmp(s->compiler, TARGET_BUILTIN_COMPILER) == 0;
  snprintf(s->message, sizeof(s->message), "waiting for a builder that can make %.30s code with "
           "'%.60s' (%s)%s", want, s->compiler,
           tcc ? "tcc builds for its builder's own machine only"
               : "start one with --compiler for a compiler that targets it",
           s->wait_limit_ms ? "; giving up at --wait-timeout" : "");
  session_send_progress(t, s, NULL);
}

void session_check_runners(tracker *t, session *s) {
  if (!session_active(s) || t->replay) return;
  if (jobs_key_runners(t, s) > 0) {
    check_builders(t, s);
    return;
  }
  if (s->waiting_since && !s->waiting_builder) return;
  s->waiting_builder = 0;
  s->waiting_since = uv_now(t->loop);
  /* A key no runner has ever served is most likely mistyped: waiting for
   * it without end looks like a hang. */
  s->wait_limit_ms = s->wait_timeout_ms ? s->wait_timeout_ms
                     : registry_key_served(t, s->key) ? 0 : t->opts.unknown_key_wait_ms;
  char keys[160], limit[96] = "";
  registry_keys(t, keys, sizeof(keys));
  if (s->wait_limit_ms)
    snprintf(limit, sizeof(limit), "; giving up in %g s unless one connects (--wait-timeout)",
             s->wait_limit_ms / 1e3);
  snprintf(s->message, sizeof(s->message), "waiting for a runner with key '%s' (%s%s)%s", s->key,
           keys[0] ? "known keys: " : "no runner is connected", keys, limit);
  /* Said at once to whoever follows it: a silent wait looks like a hang. */
  session_send_progress(t, s, NULL);
}

void session_sweep(tracker *t) {
  uint64_t now = uv_now(t->loop);
  for (session *s = t->sessions; s; s = s->next) {
    session_check_runners(t, s);
    if (confirm_sweep(t, s)) session_fill(t, s);
    if (s->ext && session_active(s) && external_orphaned(t, s))
      session_end(t, s, WIRE_SESSION(CANCELLED), "its client left (an external session lives as "
                                                 "long as a client follows it)");
    if (!session_active(s) || !s->waiting_since) continue;
    if (s->wait_limit_ms && now - s->waiting_since >= s->wait_limit_ms) {
      char why[256], want[96];
      if (s->waiting_builder && jobs_builder_missing(t, s, want, sizeof(want)))
        snprintf(why, sizeof(why), "no builder that can make %s code with '%.60s' was connected "
                 "for %g s (--wait-timeout)", want, s->compiler, s->wait_limit_ms / 1e3);
      else if (s->wait_timeout_ms)
        snprintf(why, sizeof(why), "no runner with key '%s' was connected for %g s "
                 "(--wait-timeout)", s->key, s->wait_limit_ms / 1e3);
      else
        snprintf(why, sizeof(why), "no runner with key '%s' has ever served this tracker, and "
                 "none connected in %g s: check the key (`ktune status` lists the runners'), "
                 "or give --wait-timeout MS to wait longer", s->key, s->wait_limit_ms / 1e3);
      session_end(t, s, WIRE_SESSION(FAILED), why);
    }
  }
}

/* What a progress message points into while it is sent. */
typedef struct {
  char failures[512];      /* the per-status summary in words */
  Ktune__StatusCount counts[NCODES];
  Ktune__StatusCount *count_ptrs[NCODES];
} progress_room;

static void session_progress(tracker *t, session *s, Ktune__SessionProgress *out,
                             progress_room *room) {
  ktune__session_progress__init(out);
  out->session_id = s->id;
  out->state = s->state;
  out->trials = s->trials;
  out->trials_done = s->done;
  out->failures = s->failures;
  out->reused = s->reused;
  out->last_gflops = s->batch_best;
  out->best_gflops = s->best_gflops;
  out->best_latency_s = s->best_latency;
  int64_t bytes = task_bytes(&s->task);
  if (bytes > 0) {
    /* Both rates are work over the same latency: GB/s is GFLOPS scaled by
     * bytes / flops, so the batch's best needs no latency of its own. */
    out->bytes_counted = 1;
    out->last_gbps = s->flops > 0 ? s->batch_best * (double)bytes / (double)s->flops : 0;
    out->best_gbps = trial_gflops(bytes, s->best_latency);
  }
  out->wall_s = (double)(uv_now(t->loop) - s->started_ms) / 1e3;
  failure_summary(s, PROGRESS_ERROR_CHARS, room->failures, sizeof(room->failures));
  out->failures_text = room->failures;
  out->failure_counts = room->count_ptrs;
  out->n_failure_counts = registry_fail_counts(s, room->counts, room->count_ptrs);
  /* A training thread may be changing what describe reads: the words of
   * the last plan stand until it is done. */
  if (!s->training && !s->cf) tuner_describe(s->tu, s->search, sizeof(s->search));
  else if (!s->training && !confirm_running(s) && !confirm_finished(s))
    tuner_describe(s->tu, s->search, sizeof(s->search));
  out->search = s->search;
  out->search_s = s->search_s;
  out->confirmed_latency_s = s->confirmed_s;
  out->confirmed = s->confirmed_n;
  out->search_best_latency_s = s->search_best_s;
  out->prior = s->prior;
  if (s->message[0]) out->message = s->message;
  else if (s->exhausted && s->done < s->trials)
    out->message = "the space has no more valid configs than these";
  else if (tuner_note(s->tu))
    out->message = (char *)tuner_note(s->tu);
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
  progress_room room;
  session_progress(t, s, &pr, &room);
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_PROGRESS, &pr);
  for (peer *p = t->peers; p; p = p->next)
    if (to ? p == to : p->watching == s->id) core_send(p, &env);
  session_progress_free(&pr);
}

void session_notify(tracker *t, session *s) {
  session_send_progress(t, s, NULL);
  s->batch_best = 0;
}

/* The job queue's word that a job of s ended with trial tr. */
static void on_job_ended(tracker *t, session *s, const int64_t *values, const char *config_json,
                         hist_trial *tr) {
  session_on_trial(t, s, values, config_json, tr);
  session_fill(t, s);
}

void session_init(tracker *t) {
  t->hooks.job_ended = on_job_ended;
  t->hooks.job_started = on_job_started;
  t->hooks.confirm_ended = confirm_result;
  t->hooks.poke = session_fill;
  uv_idle_init(t->loop, &t->refill);
  t->refill.data = t;
}
