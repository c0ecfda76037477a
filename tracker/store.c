/* The tracker's side of the history: everything it writes (sessions,
 * trials, the jobs table) and what only it reads (a trial to reuse, what
 * resumes a session after a restart). It calls nothing of the tracker; it
 * works on a hist opened with hist_open, through common/history_int.h. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/history_int.h"
#include "tracker/tracker.h"

/* IMMEDIATE takes the write lock up front, where the busy timeout applies;
 * a deferred transaction could fail with SQLITE_BUSY on its first write. */
static const char begin_sql[] = "BEGIN IMMEDIATE";
static const char commit_sql[] = "COMMIT";
static const char rollback_sql[] = "ROLLBACK";
static const char session_add_sql[] =
  "INSERT INTO sessions(task, size, key, strategy, compiler, owner, trials, seed,"
  " state, created_ms, updated_ms, spec, workload) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)";
static const char session_update_sql[] =
  "UPDATE sessions SET state = ?, message = ?, updated_ms = ? WHERE id = ?";
static const char job_add_sql[] = "INSERT INTO jobs(session, idx, config, lost) VALUES (?,?,?,0)";
static const char job_delete_sql[] = "DELETE FROM jobs WHERE id = ?";
static const char job_lost_sql[] = "UPDATE jobs SET lost = ? WHERE id = ?";
/* The newest ok measurement of exactly this trial identity; status = 'ok'
 * spelled literally so the partial index applies. */
static const char find_ok_sql[] =
  "SELECT id, costs, mean_s, runner, number, build_s, compiler_id, device, median_s,"
  " std_s, calls, clock, builder FROM trials"
  " WHERE status = 'ok' AND digest = ? AND mean_s IS NOT NULL ORDER BY id DESC LIMIT 1";

/* No index serves it: it runs once per wait for a key no runner has
 * served since the tracker started. */
static const char key_trials_sql[] = "SELECT 1 FROM trials WHERE key = ? LIMIT 1";

/* A kept statement, with the last operation's message cleared. */
static int stmt(hist *h, const char *sql, sqlite3_stmt **st) {
  hist_clear_err(h);
  return hist_stmt(h, sql, st);
}

static int bind_opt_text(sqlite3_stmt *s, int i, const char *v) {
  if (!v || !*v) return sqlite3_bind_null(s, i);
  return sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

int store_cache(hist *h, uint32_t mb) {
  char sql[64];
  snprintf(sql, sizeof(sql), "PRAGMA cache_size = -%u", mb * 1024u);
  return sqlite3_exec(hist_db(h), sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

int store_begin(hist *h) {
  sqlite3_stmt *s;
  int rc = stmt(h, begin_sql, &s);
  return rc < 0 ? rc : hist_step_done(h, s);
}

/* A failed COMMIT is rolled back so the handle is usable again; the caller
 * must treat everything since store_begin as not recorded. */
int store_commit(hist *h) {
  sqlite3_stmt *s;
  int rc = stmt(h, commit_sql, &s);
  if (rc < 0) return rc;
  rc = hist_step_done(h, s);
  if (rc < 0 && !sqlite3_get_autocommit(hist_db(h))) {
    sqlite3_stmt *rb;
    if (hist_stmt(h, rollback_sql, &rb) == 0) {
      sqlite3_step(rb);
      hist_stmt_done(rb);
    }
  }
  return rc;
}

/* Runs st (bound, or failed to prepare: rc) and reports the new row's id. */
static int insert_done(hist *h, sqlite3_stmt *st, int rc, int64_t *id) {
  if (rc < 0) return rc;
  rc = hist_step_done(h, st);
  if (rc == 0 && id) *id = sqlite3_last_insert_rowid(hist_db(h));
  return rc;
}

int store_session_add(hist *h, const store_new_session *s, int64_t *id) {
  hist_clear_err(h);
  const char *missing = !s->task       ? "task"
                        : !s->key      ? "key"
                        : !s->strategy ? "strategy"
                        : !s->compiler ? "compiler"
                                       : NULL;
  if (missing) return hist_fail(h, "session has no %s", missing);
  char *size = hist_canonical(h, "session size", s->size_json);
  if (!size) return -1;
  sqlite3_stmt *st = NULL;
  int rc = stmt(h, session_add_sql, &st);
  if (rc == 0) {
    int64_t now = hist_now_ms();
    sqlite3_bind_text(st, 1, s->task, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, size, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, s->key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, s->strategy, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, s->compiler, -1, SQLITE_STATIC);
    bind_opt_text(st, 6, s->owner);
    sqlite3_bind_int64(st, 7, s->trials);
    /* Stored as the same 64 bits; SQLite integers are signed. */
    sqlite3_bind_int64(st, 8, (int64_t)s->seed);
    sqlite3_bind_text(st, 9, s->state && *s->state ? s->state : "queued", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 10, now);
    sqlite3_bind_int64(st, 11, now);
    if (s->spec && s->spec_len)
      sqlite3_bind_blob64(st, 12, s->spec, s->spec_len, SQLITE_STATIC);
    else
      sqlite3_bind_null(st, 12);
    bind_opt_text(st, 13, s->workload);
  }
  rc = insert_done(h, st, rc, id);
  free(size);
  return rc;
}

/* Runs a statement that changes the one row `id` names. */
static int change_row(hist *h, sqlite3_stmt *st, int64_t id, const char *what) {
  int rc = hist_step_done(h, st);
  if (rc < 0) return rc;
  if (sqlite3_changes(hist_db(h)) == 0)
    return hist_fail(h, "no %s %lld in the history", what, (long long)id);
  return 0;
}

int store_session_update(hist *h, int64_t id, const char *state, const char *message) {
  hist_clear_err(h);
  if (!state || !*state) return hist_fail(h, "session %lld: no state given", (long long)id);
  sqlite3_stmt *st;
  int rc = stmt(h, session_update_sql, &st);
  if (rc < 0) return rc;
  sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
  bind_opt_text(st, 2, message);
  sqlite3_bind_int64(st, 3, hist_now_ms());
  sqlite3_bind_int64(st, 4, id);
  return change_row(h, st, id, "session");
}

int store_trial_add(hist *h, const hist_trial *t, int64_t *id) {
  hist_clear_err(h);
  const char *sql = hist_trial_sql(h, HIST_TRIALS_INSERT);
  sqlite3_stmt *st = NULL;
  int rc = sql ? stmt(h, sql, &st) : hist_fail(h, "out of memory");
  if (rc == 0) rc = hist_trial_bind(h, st, t);
  return insert_done(h, st, rc, id);
}

static const char trial_confirm_sql[] =
    "UPDATE trials SET confirmed_s = ?, confirm_costs = ? WHERE id = ? AND status = 'ok'";

int store_trial_confirm(hist *h, int64_t id, double confirmed_s, const double *costs,
                        size_t ncosts) {
  hist_clear_err(h);
  if (!isfinite(confirmed_s) || confirmed_s <= 0)
    return hist_fail(h, "a confirmed latency must be a positive time");
  char *json = hist_reals_json(h, costs, ncosts);
  if (!json) return -1;
  sqlite3_stmt *st = NULL;
  int rc = stmt(h, trial_confirm_sql, &st);
  if (rc == 0) {
    sqlite3_bind_double(st, 1, confirmed_s);
    sqlite3_bind_text(st, 2, json, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, id);
    rc = change_row(h, st, id, "ok trial");
  }
  sqlite3_free(json);
  return rc;
}

int store_job_add(hist *h, int64_t session, uint64_t index, const char *config_json,
                  int64_t *id) {
  hist_clear_err(h);
  char *config = hist_canonical(h, "job config", config_json);
  if (!config) return -1;
  sqlite3_stmt *st = NULL;
  int rc = stmt(h, job_add_sql, &st);
  if (rc == 0) {
    sqlite3_bind_int64(st, 1, session);
    sqlite3_bind_int64(st, 2, (int64_t)index);
    sqlite3_bind_text(st, 3, config, -1, SQLITE_STATIC);
  }
  rc = insert_done(h, st, rc, id);
  free(config);
  return rc;
}

int store_job_delete(hist *h, int64_t id) {
  sqlite3_stmt *st;
  int rc = stmt(h, job_delete_sql, &st);
  if (rc < 0) return rc;
  sqlite3_bind_int64(st, 1, id);
  return change_row(h, st, id, "job");
}

int store_job_lost(hist *h, int64_t id, uint32_t lost) {
  sqlite3_stmt *st;
  int rc = stmt(h, job_lost_sql, &st);
  if (rc < 0) return rc;
  sqlite3_bind_int64(st, 1, lost);
  sqlite3_bind_int64(st, 2, id);
  return change_row(h, st, id, "job");
}

/* ---- resume ---- */

/* One caller's callback, and how a result row reaches it. */
typedef struct visit visit;
struct visit {
  int (*row)(const visit *v, sqlite3_stmt *st);
  union {
    store_job_fn job;
    store_session_fn session;
    store_session_trial_fn trial;
  } cb;
  void *ctx;
};

static const char *col_text(sqlite3_stmt *st, int i) {
  return (const char *)sqlite3_column_text(st, i);
}

static int visit_job(const visit *v, sqlite3_stmt *st) {
  return v->cb.job(v->ctx, sqlite3_column_int64(st, 0), (uint64_t)sqlite3_column_int64(st, 1),
                   (uint32_t)sqlite3_column_int64(st, 2));
}

static int visit_session(const visit *v, sqlite3_stmt *st) {
  return v->cb.session(v->ctx, sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1),
                       (size_t)sqlite3_column_bytes(st, 1), col_text(st, 2),
                       sqlite3_column_int64(st, 3));
}

/* A NULL mean_s (a failure) reads as 0. */
static int visit_trial(const visit *v, sqlite3_stmt *st) {
  return v->cb.trial(v->ctx, col_text(st, 0), col_text(st, 1), sqlite3_column_double(st, 2));
}

/* v sees each row of a prepared query until it returns non-zero, which is
 * returned. */
static int visit_rows(hist *h, sqlite3_stmt *st, const visit *v) {
  int step, cb_rc = 0;
  while (!cb_rc && (step = sqlite3_step(st)) == SQLITE_ROW) cb_rc = v->row(v, st);
  return hist_query_end(h, st, cb_rc ? SQLITE_DONE : step, cb_rc);
}

/* A one-off query (these run once per tracker start) with its parameter,
 * if it has one, bound to `param`: v sees each row until it returns
 * non-zero, which is returned. */
static int each_row(hist *h, const char *sql, int64_t param, const visit *v) {
  sqlite3_stmt *st;
  int rc = hist_query(h, sql, &st);
  if (rc < 0) return rc;
  if (sqlite3_bind_parameter_count(st) > 0) sqlite3_bind_int64(st, 1, param);
  return visit_rows(h, st, v);
}

int store_jobs_of(hist *h, int64_t session, store_job_fn cb, void *ctx) {
  visit v = {visit_job, {.job = cb}, ctx};
  return each_row(h, "SELECT id, idx, lost FROM jobs WHERE session = ? ORDER BY id", session,
                  &v);
}

int store_sessions_unfinished(hist *h, store_session_fn cb, void *ctx) {
  visit v = {visit_session, {.session = cb}, ctx};
  return each_row(h, "SELECT id, spec, owner, created_ms FROM sessions"
                     " WHERE state IN ('queued', 'running') ORDER BY id", 0, &v);
}

int store_session_spec(hist *h, int64_t session, store_session_fn cb, void *ctx) {
  visit v = {visit_session, {.session = cb}, ctx};
  return each_row(h, "SELECT id, spec, owner, created_ms FROM sessions WHERE id = ?", session, &v);
}

int store_session_trials(hist *h, int64_t session, store_session_trial_fn cb, void *ctx) {
  visit v = {visit_trial, {.trial = cb}, ctx};
  return each_row(h, "SELECT config, status, mean_s FROM trials WHERE session = ? ORDER BY id",
                  session, &v);
}

int store_prior_trials(hist *h, const store_prior_query *q, store_session_trial_fn cb,
                       void *ctx) {
  sqlite3_stmt *st;
  int rc = hist_query(h,
                      "SELECT config, status, mean_s FROM trials WHERE kernel = ? AND compiler = ?"
                      " AND key = ? AND timing = ? AND checked = ? AND session IS NOT ?"
                      " AND reused IS NULL ORDER BY id LIMIT ?",
                      &st);
  if (rc < 0) return rc;
  sqlite3_bind_text(st, 1, q->kernel, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, q->compiler, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, q->key, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, q->timing_json, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 5, q->checked);
  sqlite3_bind_int64(st, 6, q->session);
  sqlite3_bind_int(st, 7, STORE_PRIOR_MAX);
  visit v = {visit_trial, {.trial = cb}, ctx};
  return visit_rows(h, st, &v);
}

/* ---- reuse ---- */

void store_found_clear(store_found *f) {
  free(f->costs);
  free(f->runner);
  free(f->compiler_id);
  free(f->device_json);
  free(f->clock);
  free(f->builder);
  memset(f, 0, sizeof(*f));
}

/* The stored costs, a JSON array of seconds. */
static int found_costs(store_found *f, const char *text) {
  json_t *costs = json_loads(text ? text : "", 0, NULL);
  size_t n = json_is_array(costs) ? json_array_size(costs) : 0;
  f->costs = calloc(n ? n : 1, sizeof(double));
  for (size_t i = 0; f->costs && i < n; i++)
    f->costs[i] = json_number_value(json_array_get(costs, i));
  json_decref(costs);
  f->ncosts = f->costs ? n : 0;
  return f->ncosts ? 0 : -1;
}

int store_find_ok(hist *h, const char *digest, store_found *out) {
  memset(out, 0, sizeof(*out));
  hist_clear_err(h);
  /* No identity, nothing it could repeat. */
  if (!digest || !*digest) return 0;
  sqlite3_stmt *st = NULL;
  int rc = stmt(h, find_ok_sql, &st);
  if (rc < 0) return rc;
  sqlite3_bind_text(st, 1, digest, -1, SQLITE_STATIC);
  int step = sqlite3_step(st);
  if (step == SQLITE_ROW) {
    out->id = sqlite3_column_int64(st, 0);
    int costs = found_costs(out, col_text(st, 1));
    out->mean_s = sqlite3_column_double(st, 2);
    out->runner = hist_col_strdup(st, 3);
    out->number = (uint32_t)sqlite3_column_int64(st, 4);
    out->build_s = sqlite3_column_double(st, 5);
    out->compiler_id = hist_col_strdup(st, 6);
    out->device_json = hist_col_strdup(st, 7);
    out->median_s = sqlite3_column_double(st, 8);
    out->std_s = sqlite3_column_double(st, 9);
    out->calls = (uint64_t)sqlite3_column_int64(st, 10);
    out->clock = hist_col_strdup(st, 11);
    out->builder = hist_col_strdup(st, 12);
    rc = costs == 0 ? 1 : hist_fail(h, "trial %lld has no costs", (long long)out->id);
    if (rc < 0) store_found_clear(out);
  } else {
    rc = step == SQLITE_DONE ? 0 : hist_fail_db(h, step);
  }
  hist_stmt_done(st);
  return rc;
}

int store_key_has_trials(hist *h, const char *key) {
  sqlite3_stmt *st;
  int rc = stmt(h, key_trials_sql, &st);
  if (rc < 0) return rc;
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  int step = sqlite3_step(st);
  rc = step == SQLITE_ROW ? 1 : step == SQLITE_DONE ? 0 : hist_fail_db(h, step);
  hist_stmt_done(st);
  return rc;
}
