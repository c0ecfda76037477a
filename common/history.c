/* The SQLite history, read side: the file, its schema and upgrades, and
 * the queries the CLI and the tracker ask (docs/HISTORY.md is the
 * user-facing description of the schema; keep the two in step). The
 * trials table's columns are in history_trials.c; the tracker's writes in
 * tracker/store.c, through history_int.h.
 *
 * Errors: functions return a negative code, -(SQLite primary result code)
 * when SQLite failed (so -5 is SQLITE_BUSY) and -1 for errors of our own;
 * hist_errmsg then says what went wrong. One hist is one connection: use it
 * from one thread at a time. */
#include "common/history.h"

#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "common/history_int.h"
#include "common/identity.h"

#define HIST_SCHEMA_VERSION 4
#define HIST_BUSY_MS 5000

/* The order in which every best of the history is picked (`ktune best`,
 * a session's row, the report's tasks and workloads): a latency confirmed
 * at a session's end is the stronger word, then the fastest, the oldest on
 * ties. P is the trials table's alias with its dot, or "". */
#define BEST_ORDER(P) \
  " ORDER BY " P "confirmed_s IS NULL, " P "confirmed_s, " P "mean_s, " P "id LIMIT 1"

/* Indexes of version 2, on new files and upgraded ones alike. */
#define TRIALS_DIGEST_INDEX "CREATE INDEX trials_digest ON trials(digest) WHERE status = 'ok';"
#define TRIALS_KERNEL_INDEX \
  "CREATE INDEX trials_kernel ON trials(kernel, size, mean_s) WHERE status = 'ok';"
/* Of version 4. */
#define TRIALS_PRIOR_INDEX \
  "CREATE INDEX trials_prior ON trials(kernel, compiler, key) WHERE status = 'ok';"

/* The current schema around the trials table (history_trials.c makes
 * that). The text of each CREATE is what SQLite keeps for a version 1 file
 * once upgraded (ALTER TABLE appends ", <column>"), so new and upgraded
 * files read the same. */
static const char schema_head_sql[] =
  "CREATE TABLE sessions ("
  " id INTEGER PRIMARY KEY,"
  " task TEXT NOT NULL,"
  " size TEXT NOT NULL,"
  " key TEXT NOT NULL,"
  " strategy TEXT NOT NULL,"
  " compiler TEXT NOT NULL,"
  " owner TEXT,"
  " trials INTEGER NOT NULL,"
  " seed INTEGER NOT NULL,"
  " state TEXT NOT NULL,"
  " created_ms INTEGER NOT NULL,"
  " updated_ms INTEGER NOT NULL,"
  " spec BLOB,"
  " message TEXT, workload TEXT);";
/* A job's id is never used twice, not even after the table has emptied
 * (AUTOINCREMENT): an agent's late answer for a job must not land on a
 * newer job that took its number. */
#define JOBS_TABLE                                                   \
  "CREATE TABLE jobs ("                                              \
  " id INTEGER PRIMARY KEY AUTOINCREMENT,"                           \
  " session INTEGER NOT NULL REFERENCES sessions(id),"               \
  " idx INTEGER NOT NULL,"                                           \
  " config TEXT NOT NULL,"                                           \
  " lost INTEGER NOT NULL DEFAULT 0);"                               \
  "CREATE INDEX jobs_session ON jobs(session);"
static const char schema_tail_sql[] =
  /* Candidates proposed but not yet recorded: what a restarted tracker
   * queues again. A row goes in the transaction that records its trial. */
  JOBS_TABLE
  "CREATE INDEX trials_best ON trials(task, size, key, mean_s) WHERE status = 'ok';"
  "CREATE INDEX trials_session ON trials(session);"
  TRIALS_DIGEST_INDEX
  TRIALS_KERNEL_INDEX
  TRIALS_PRIOR_INDEX;

/* Version 1 to 2, after the trials columns of version 2: a trial's
 * identity (what was built and how it was measured) as digests, whether
 * its outputs were checked and who built it; why a session ended. Old
 * trials get no digest, so they never answer for a new one: nothing says
 * which template they were built from. Reuse looks trials up by digest
 * now, so the index by config goes. */
static const char migrate_v2_sql[] =
  "ALTER TABLE sessions ADD COLUMN message TEXT;"
  "DROP INDEX IF EXISTS trials_reuse;"
  TRIALS_DIGEST_INDEX
  TRIALS_KERNEL_INDEX;

/* Version 2 to 3, after the trials columns of version 3 (bytes moved and
 * GB/s): job ids that are never reused. The jobs waiting are kept, with
 * their ids. */
static const char migrate_v3_sql[] =
  "ALTER TABLE jobs RENAME TO jobs_v2;"
  "DROP INDEX IF EXISTS jobs_session;"
  JOBS_TABLE
  "INSERT INTO jobs (id, session, idx, config, lost)"
  " SELECT id, session, idx, config, lost FROM jobs_v2;"
  "DROP TABLE jobs_v2;";

/* Version 3 to 4, after the trials columns of version 4 (the latency a
 * session's end confirmed): an index for the learning searches' prior
 * query (earlier trials of a kernel, compiler and key). */
static const char migrate_v4_sql[] =
  "ALTER TABLE sessions ADD COLUMN workload TEXT;"
  TRIALS_PRIOR_INDEX;

/* migrations[v] takes a file from version v to v + 1, with the trials
 * columns of version v + 1. */
static const char *const migrations[HIST_SCHEMA_VERSION] = {[1] = migrate_v2_sql,
                                                            [2] = migrate_v3_sql,
                                                            [3] = migrate_v4_sql};

/* An older file opened read-only cannot be upgraded; temporary views,
 * which shadow the tables of the same name for this connection only, show
 * it with the current columns (sessions here, for version 1; trials from
 * history_trials.c). The version 1 columns are listed, not *, so a tracker
 * upgrading the file meanwhile does not duplicate them. */
static const char readonly_v1_sql[] =
  "CREATE TEMP VIEW sessions AS SELECT id, task, size, key, strategy, compiler, owner,"
  " trials, seed, state, created_ms, updated_ms, spec, NULL AS message, NULL AS workload"
  " FROM main.sessions;";
static const char readonly_v2_sql[] =
  "CREATE TEMP VIEW sessions AS SELECT id, task, size, key, strategy, compiler, owner,"
  " trials, seed, state, created_ms, updated_ms, spec, message, NULL AS workload"
  " FROM main.sessions;";

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static int pragma_int(sqlite3 *db, const char *sql, int64_t *out) {
  sqlite3_stmt *s;
  int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
  if (rc != SQLITE_OK) return rc;
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    *out = sqlite3_column_int64(s, 0);
    rc = SQLITE_OK;
  }
  sqlite3_finalize(s);
  return rc;
}

static int pragma_text(sqlite3 *db, const char *sql, char *out, size_t n) {
  sqlite3_stmt *s;
  int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
  if (rc != SQLITE_OK) return rc;
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    const unsigned char *t = sqlite3_column_text(s, 0);
    snprintf(out, n, "%s", t ? (const char *)t : "");
    rc = SQLITE_OK;
  }
  sqlite3_finalize(s);
  return rc;
}

/* Why the history at path cannot be written, in words, when its file or
 * folder is to blame; 0 when neither is. SQLite only says "unable to open
 * database file", and the errno behind it misleads: creating a file in
 * /proc fails with "No such file or directory" although /proc exists. The
 * folder matters even for a writable file: SQLite keeps its -wal and -shm
 * files beside it. Tried rather than asked with access() alone, because
 * root passes every permission check and still cannot write /proc. */
static int unwritable_reason(const char *path, int sys_errno, char *why, size_t len) {
  char dir[4096];
  const char *slash = strrchr(path, '/');
  if (!slash) snprintf(dir, sizeof(dir), ".");
  else if (slash == path) snprintf(dir, sizeof(dir), "/");
  else snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
  struct stat st;
  int exists = stat(path, &st) == 0;
  if (exists && access(path, R_OK | W_OK) != 0) {
    snprintf(why, len, "the file is read-only here (%s)", strerror(errno));
    return 1;
  }
  if (stat(dir, &st) != 0) {
    snprintf(why, len, "the folder %s %s", dir,
             errno == ENOENT ? "does not exist" : strerror(errno));
    return 1;
  }
  if (!S_ISDIR(st.st_mode)) {
    snprintf(why, len, "%s is not a folder", dir);
    return 1;
  }
  struct statvfs vfs;
  if (statvfs(dir, &vfs) == 0 && (vfs.f_flag & ST_RDONLY)) {
    snprintf(why, len, "the folder %s is not writable: it is on a read-only file system", dir);
    return 1;
  }
  if (access(dir, W_OK | X_OK) != 0) {
    snprintf(why, len, "the folder %s is not writable (%s)", dir, strerror(errno));
    return 1;
  }
  int refused = sys_errno == ENOENT || sys_errno == EACCES || sys_errno == EPERM ||
                sys_errno == EROFS;
  if (!exists && refused) {
    snprintf(why, len, "the folder %s is not writable: creating a file there fails (%s)", dir,
             strerror(sys_errno));
    return 1;
  }
  return 0;
}

/* writing: the history was to be opened for writing. */
static void open_errmsg(sqlite3 *db, const char *path, int writing, char *err, size_t errlen) {
  int e = db ? sqlite3_system_errno(db) : 0;
  const char *m = db ? sqlite3_errmsg(db) : "out of memory";
  char why[4300];
  if (db && writing && unwritable_reason(path, e, why, sizeof(why)))
    errf(err, errlen, "cannot open history at %s: %s", path, why);
  else if (e)
    errf(err, errlen, "cannot open history at %s: %s (%s)", path, m, strerror(e));
  else
    errf(err, errlen, "cannot open history at %s: %s", path, m);
}

/* Versions this ktune reads: 1 (upgraded, or viewed read-only) to current. */
static int version_ok(int64_t v, const char *path, char *err, size_t errlen) {
  if (v >= 1 && v <= HIST_SCHEMA_VERSION) return 1;
  if (v > HIST_SCHEMA_VERSION)
    errf(err, errlen,
         "history at %s has schema version %lld but this ktune knows version %d: "
         "upgrade ktune",
         path, (long long)v, HIST_SCHEMA_VERSION);
  else
    errf(err, errlen, "%s is not a ktune history (schema version %lld): pass another --db",
         path, (long long)v);
  return 0;
}

/* Runs the SQL built in s, and frees it. */
static int exec_built(sqlite3 *db, sqlite3_str *s) {
  char *sql = sqlite3_str_finish(s);
  int rc = sql ? sqlite3_exec(db, sql, NULL, NULL, NULL) : SQLITE_NOMEM;
  sqlite3_free(sql);
  return rc;
}

/* The current schema on an empty file, or the steps from version v up. */
static int build_schema(sqlite3 *db, int64_t v) {
  sqlite3_str *s = sqlite3_str_new(db);
  if (v == 0) {
    char *trials = hist_trial_sql_make(HIST_TRIALS_CREATE);
    if (!trials) {
      sqlite3_free(sqlite3_str_finish(s));
      return SQLITE_NOMEM;
    }
    sqlite3_str_appendf(s, "%s%s;%s", schema_head_sql, trials, schema_tail_sql);
    sqlite3_free(trials);
  }
  for (; v > 0 && v < HIST_SCHEMA_VERSION; v++) {
    hist_trial_sql_added(s, (int)v + 1);
    sqlite3_str_appendall(s, migrations[v]);
  }
  sqlite3_str_appendf(s, "PRAGMA user_version = %d;", HIST_SCHEMA_VERSION);
  return exec_built(db, s);
}

/* Creates the schema on a fresh file and upgrades an older one, in one
 * transaction under the write lock: two openers racing on a file do not
 * both do it, and a failed upgrade leaves the file as it was. */
static int ensure_schema(sqlite3 *db, const char *path, char *err, size_t errlen) {
  int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  if (rc != SQLITE_OK) goto dberr;
  int64_t v = 0, nobj = 0;
  if ((rc = pragma_int(db, "PRAGMA user_version", &v)) != SQLITE_OK) goto dberr_rb;
  if (v == 0) {
    rc = pragma_int(db, "SELECT count(*) FROM sqlite_schema", &nobj);
    if (rc != SQLITE_OK) goto dberr_rb;
    if (nobj > 0) {
      sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
      errf(err, errlen,
           "%s is an SQLite file but not a ktune history: pass another --db", path);
      return -1;
    }
    if ((rc = build_schema(db, 0)) != SQLITE_OK) goto dberr_rb;
  } else if (!version_ok(v, path, err, errlen)) {
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
  } else if (v < HIST_SCHEMA_VERSION && (rc = build_schema(db, v)) != SQLITE_OK) {
    goto dberr_rb;
  }
  if ((rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK) goto dberr_rb;
  return 0;
dberr_rb:
  errf(err, errlen, "cannot set up history at %s: %s", path, sqlite3_errmsg(db));
  sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  return -(rc & 0xff);
dberr:
  errf(err, errlen, "cannot set up history at %s: %s", path, sqlite3_errmsg(db));
  return -(rc & 0xff);
}

static int readonly_views(sqlite3 *db, int version) {
  sqlite3_str *s = sqlite3_str_new(db);
  if (version < 2) sqlite3_str_appendall(s, readonly_v1_sql);
  else if (version < 4) sqlite3_str_appendall(s, readonly_v2_sql);
  hist_trial_sql_view(s, version);
  return exec_built(db, s);
}

int hist_open(const char *path, int sync_full, hist **out, char *err, size_t errlen) {
  *out = NULL;
  if (!path) {
    errf(err, errlen, "no history path given: pass --db PATH");
    return -1;
  }
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
  if (rc != SQLITE_OK) {
    open_errmsg(db, path, 1, err, errlen);
    sqlite3_close_v2(db);
    return rc > 0 ? -(rc & 0xff) : -1;
  }
  sqlite3_busy_timeout(db, HIST_BUSY_MS);
  char mode[32] = "";
  rc = pragma_text(db, "PRAGMA journal_mode = WAL", mode, sizeof(mode));
  if (rc != SQLITE_OK) {
    open_errmsg(db, path, 1, err, errlen);
    sqlite3_close_v2(db);
    return -(rc & 0xff);
  }
  /* In-memory databases cannot use WAL; everything else must, or a crash
   * could lose acknowledged results and readers would block the tracker. */
  int in_memory = path[0] == '\0' || strcmp(path, ":memory:") == 0;
  if (strcmp(mode, "wal") != 0 && !in_memory) {
    errf(err, errlen,
         "cannot use WAL journaling for history at %s (got %s): keep it on a local "
         "file system",
         path, mode);
    sqlite3_close_v2(db);
    return -1;
  }
  rc = sqlite3_exec(db,
                    sync_full ? "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON"
                              : "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON",
                    NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    errf(err, errlen, "cannot open history at %s: %s", path, sqlite3_errmsg(db));
    sqlite3_close_v2(db);
    return -(rc & 0xff);
  }
  if ((rc = ensure_schema(db, path, err, errlen)) < 0) {
    sqlite3_close_v2(db);
    return rc;
  }
  if (!(*out = hist_handle_new(db))) {
    errf(err, errlen, "out of memory");
    sqlite3_close_v2(db);
    return -1;
  }
  return 0;
}

int hist_open_readonly(const char *path, hist **out, char *err, size_t errlen) {
  *out = NULL;
  if (!path) {
    errf(err, errlen, "no history path given: pass --db PATH");
    return -1;
  }
  /* SQLite would only say "unable to open database file". */
  struct stat sb;
  if (stat(path, &sb) != 0) {
    if (errno == ENOENT)
      errf(err, errlen, "no history at %s: run `ktune tune` first or pass --db", path);
    else
      errf(err, errlen, "cannot open history at %s: %s", path, strerror(errno));
    return -1;
  }
  if (S_ISDIR(sb.st_mode)) {
    errf(err, errlen, "cannot open history at %s: it is a folder; pass the .db file", path);
    return -1;
  }
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
  if (rc != SQLITE_OK) {
    open_errmsg(db, path, 0, err, errlen);
    sqlite3_close_v2(db);
    return rc > 0 ? -(rc & 0xff) : -1;
  }
  sqlite3_busy_timeout(db, HIST_BUSY_MS);
  int64_t v = 0;
  rc = pragma_int(db, "PRAGMA user_version", &v);
  if (rc != SQLITE_OK) {
    errf(err, errlen, "cannot read history at %s: %s", path, sqlite3_errmsg(db));
    sqlite3_close_v2(db);
    return -(rc & 0xff);
  }
  if (!version_ok(v, path, err, errlen)) {
    sqlite3_close_v2(db);
    return -1;
  }
  if (v < HIST_SCHEMA_VERSION && (rc = readonly_views(db, (int)v)) != SQLITE_OK) {
    errf(err, errlen, "cannot read version %d history at %s: %s", (int)v, path,
         sqlite3_errmsg(db));
    sqlite3_close_v2(db);
    return -(rc & 0xff);
  }
  if (!(*out = hist_handle_new(db))) {
    errf(err, errlen, "out of memory");
    sqlite3_close_v2(db);
    return -1;
  }
  return 0;
}

static double col_real(sqlite3_stmt *st, int i) {
  return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

/* ---- sessions ---- */

/* A session and its counts; the best trial as summary and ktune best pick
 * it (the fastest confirmed at its end, else the fastest ok, oldest on
 * ties). Subqueries use trials_session. */
#define SESSION_ROW_SQL                                                                   \
  "SELECT s.id, s.task, s.size, s.key, s.strategy, s.compiler, s.owner, s.state,"         \
  " s.message, s.trials, s.created_ms, s.updated_ms,"                                     \
  " (SELECT count(*) FROM trials t WHERE t.session = s.id),"                              \
  " (SELECT count(*) FROM trials t WHERE t.session = s.id AND t.status <> 'ok'),"         \
  " (SELECT count(*) FROM trials t WHERE t.session = s.id AND t.reused IS NOT NULL),"     \
  " b.config, b.mean_s, b.gflops, b.gbps"                                                 \
  " FROM sessions s LEFT JOIN trials b ON b.id = (SELECT t.id FROM trials t"              \
  " WHERE t.session = s.id AND t.status = 'ok' AND t.mean_s > 0"                          \
  BEST_ORDER("t.") ")"

void hist_session_row_clear(hist_session_row *r) {
  char **strs[] = {&r->task,  &r->size_json, &r->key,     &r->strategy,   &r->compiler,
                   &r->owner, &r->state,     &r->message, &r->best_config};
  for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) free(*strs[i]);
  memset(r, 0, sizeof(*r));
}

static int session_row(hist *h, sqlite3_stmt *st, hist_session_row *r) {
  memset(r, 0, sizeof(*r));
  r->id = sqlite3_column_int64(st, 0);
  /* A NULL copy of a column that is not NULL means out of memory. */
  char **strs[] = {&r->task, &r->size_json, &r->key, &r->strategy, &r->compiler,
                   &r->owner, &r->state, &r->message};
  for (int i = 0; i < 8; i++)
    if (!(*strs[i] = hist_col_strdup(st, i + 1)) && sqlite3_column_type(st, i + 1) != SQLITE_NULL)
      goto oom;
  r->trials = (uint32_t)sqlite3_column_int64(st, 9);
  r->created_ms = sqlite3_column_int64(st, 10);
  r->updated_ms = sqlite3_column_int64(st, 11);
  r->done = (uint32_t)sqlite3_column_int64(st, 12);
  r->failures = (uint32_t)sqlite3_column_int64(st, 13);
  r->reused = (uint32_t)sqlite3_column_int64(st, 14);
  if (sqlite3_column_type(st, 15) != SQLITE_NULL) {
    if (!(r->best_config = hist_col_strdup(st, 15))) goto oom;
    r->best_mean_s = sqlite3_column_double(st, 16);
    r->best_gflops = sqlite3_column_double(st, 17);
    r->best_gbps = sqlite3_column_double(st, 18);
  }
  return 0;
oom:
  hist_session_row_clear(r);
  return hist_fail(h, "out of memory");
}

int hist_session_get(hist *h, int64_t id, hist_session_row *out) {
  memset(out, 0, sizeof(*out));
  sqlite3_stmt *st;
  int rc = hist_query(h, SESSION_ROW_SQL " WHERE s.id = ?", &st);
  if (rc < 0) return rc;
  sqlite3_bind_int64(st, 1, id);
  int step = sqlite3_step(st);
  if (step == SQLITE_ROW) {
    rc = session_row(h, st, out) < 0 ? -1 : 1;
    sqlite3_finalize(st);
    return rc;
  }
  return hist_query_end(h, st, step, 0);
}

int hist_sessions_recent(hist *h, uint32_t limit, hist_session_row_fn cb, void *ctx) {
  sqlite3_stmt *st;
  int rc = hist_query(h, SESSION_ROW_SQL " WHERE s.state NOT IN ('queued', 'running')"
                    " ORDER BY s.updated_ms DESC, s.id DESC LIMIT ?", &st);
  if (rc < 0) return rc;
  sqlite3_bind_int64(st, 1, limit);
  int step, cb_rc = 0;
  while (!cb_rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
    hist_session_row r;
    if (session_row(h, st, &r) < 0) {
      sqlite3_finalize(st);
      return -1;
    }
    cb_rc = cb(ctx, &r);
    hist_session_row_clear(&r);
  }
  return hist_query_end(h, st, cb_rc ? SQLITE_DONE : step, cb_rc);
}

int hist_session_summary(hist *h, int64_t session, uint32_t *trials, uint32_t *failures,
                         char **best_config, double *best_mean_s) {
  hist_session_row r;
  int rc = hist_session_get(h, session, &r);
  if (rc < 0) return rc;
  *trials = r.done;
  *failures = r.failures;
  *best_config = r.best_config;
  *best_mean_s = r.best_mean_s;
  r.best_config = NULL;
  hist_session_row_clear(&r);
  return 0;
}

int hist_trial_count(hist *h, int64_t session, int64_t *n) {
  hist_clear_err(h);
  sqlite3_stmt *st;
  int rc = hist_stmt(h, "SELECT count(*) FROM trials WHERE session = ?", &st);
  if (rc < 0) return rc;
  sqlite3_bind_int64(st, 1, session);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *n = sqlite3_column_int64(st, 0);
    rc = 0;
  } else {
    rc = hist_fail_db(h, rc);
  }
  hist_stmt_done(st);
  return rc;
}

int hist_session_failures(hist *h, int64_t session, hist_count_fn cb, void *ctx) {
  hist_clear_err(h);
  sqlite3_stmt *st;
  int rc = hist_stmt(h, "SELECT status, count(*) FROM trials WHERE session = ? AND status <> 'ok'"
                        " GROUP BY status ORDER BY status", &st);
  if (rc < 0) return rc;
  sqlite3_bind_int64(st, 1, session);
  int step, cb_rc = 0;
  while (!cb_rc && (step = sqlite3_step(st)) == SQLITE_ROW)
    cb_rc = cb(ctx, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1));
  if (!cb_rc && step != SQLITE_DONE) cb_rc = hist_fail_db(h, step);
  hist_stmt_done(st);
  return cb_rc;
}

/* ---- best ---- */

/* The trials a best query allows, as "SELECT <what> FROM trials WHERE ...
 * <tail>", prepared and bound. Only the conditions asked for are written,
 * so SQLite plans each with the index that fits (trials_kernel when a
 * kernel is given, else trials_best); status = 'ok' is spelled literally so
 * those partial indexes apply. *size and *timing hold bound text: free
 * them after finalizing *st. */
static int best_prepare(hist *h, const hist_best_query *q, const char *what, const char *tail,
                        sqlite3_stmt **st, char **size, char **timing) {
  hist_clear_err(h);
  *st = NULL;
  *size = *timing = NULL;
  if (!q || !q->task) return hist_fail(h, "no task given");
  if (q->size_json && !(*size = hist_canonical(h, "size", q->size_json))) return -1;
  if (q->timing_json && !(*timing = hist_canonical(h, "timing", q->timing_json))) return -1;
  const char *binds[6] = {q->task};
  int n = 1;
  sqlite3_str *sql = sqlite3_str_new(hist_db(h));
  sqlite3_str_appendf(sql, "SELECT %s FROM trials WHERE status = 'ok' AND mean_s IS NOT NULL"
                      " AND task = ?", what);
  const struct {
    const char *col, *val;
  } opt[] = {{"size", *size},          {"kernel", q->kernel}, {"key", q->key},
             {"compiler", q->compiler}, {"timing", *timing}};
  for (size_t i = 0; i < sizeof(opt) / sizeof(opt[0]); i++) {
    if (!opt[i].val) continue;
    sqlite3_str_appendf(sql, " AND %s = ?", opt[i].col);
    binds[n++] = opt[i].val;
  }
  if (q->checked_only) sqlite3_str_appendall(sql, " AND checked = 1");
  sqlite3_str_appendall(sql, tail);
  char *text = sqlite3_str_finish(sql);
  if (!text) return hist_fail(h, "out of memory");
  int rc = hist_query(h, text, st);
  sqlite3_free(text);
  if (rc < 0) return rc;
  for (int i = 0; i < n; i++) sqlite3_bind_text(*st, i + 1, binds[i], -1, SQLITE_STATIC);
  return 0;
}

void hist_best_row_clear(hist_best_row *r) {
  char **strs[] = {&r->config_json, &r->compiler, &r->compiler_id, &r->key,
                   &r->runner,      &r->builder,  &r->timing_json, &r->kernel};
  for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) free(*strs[i]);
  memset(r, 0, sizeof(*r));
}

int hist_best(hist *h, const hist_best_query *q, hist_best_row *out) {
  memset(out, 0, sizeof(*out));
  sqlite3_stmt *st;
  char *size, *timing;
  int rc = best_prepare(h, q,
                        "id, session, mean_s, gflops, checked, gbps, config, compiler,"
                        " compiler_id, key, runner, builder, timing, kernel",
                        BEST_ORDER(""), &st, &size, &timing);
  int step = rc < 0 ? SQLITE_DONE : sqlite3_step(st);
  if (rc == 0 && step == SQLITE_ROW) {
    out->id = sqlite3_column_int64(st, 0);
    out->session = sqlite3_column_int64(st, 1);
    out->mean_s = col_real(st, 2);
    out->gflops = col_real(st, 3);
    out->checked = sqlite3_column_int(st, 4) != 0;
    out->gbps = col_real(st, 5);
    char **strs[] = {&out->config_json, &out->compiler, &out->compiler_id, &out->key,
                     &out->runner,      &out->builder,  &out->timing_json, &out->kernel};
    rc = 1;
    for (int i = 0; i < 8; i++)
      if (!(*strs[i] = hist_col_strdup(st, i + 6)) && sqlite3_column_type(st, i + 6) != SQLITE_NULL)
        rc = hist_fail(h, "out of memory");
    if (rc < 0) hist_best_row_clear(out);
    step = SQLITE_DONE;
  }
  if (st) rc = hist_query_end(h, st, step, rc);
  free(size);
  free(timing);
  return rc;
}

int hist_count_ok(hist *h, const hist_best_query *q, int64_t *n) {
  *n = 0;
  sqlite3_stmt *st;
  char *size, *timing;
  int rc = best_prepare(h, q, "count(*)", "", &st, &size, &timing);
  if (rc == 0) {
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
      *n = sqlite3_column_int64(st, 0);
      step = SQLITE_DONE;
    }
    rc = hist_query_end(h, st, step, 0);
  }
  free(size);
  free(timing);
  return rc;
}

int hist_best_values(hist *h, const hist_best_query *q, const char *col, hist_value_fn cb,
                     void *ctx) {
  /* The name goes into the SQL: only these. */
  static const char *const cols[] = {"size", "kernel", "compiler", "key", "timing"};
  size_t c = 0;
  while (c < sizeof(cols) / sizeof(cols[0]) && (!col || strcmp(col, cols[c]) != 0)) c++;
  if (c == sizeof(cols) / sizeof(cols[0]))
    return hist_fail(h, "cannot list the values of column '%s'", col ? col : "");
  char what[48], tail[96];
  snprintf(what, sizeof(what), "%s, count(*)", cols[c]);
  snprintf(tail, sizeof(tail), " AND %s IS NOT NULL GROUP BY %s ORDER BY max(id) DESC", cols[c],
           cols[c]);
  sqlite3_stmt *st;
  char *size, *timing;
  int rc = best_prepare(h, q, what, tail, &st, &size, &timing);
  if (rc == 0) {
    int step, cb_rc = 0;
    while (!cb_rc && (step = sqlite3_step(st)) == SQLITE_ROW)
      cb_rc = cb(ctx, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1));
    rc = hist_query_end(h, st, cb_rc ? SQLITE_DONE : step, cb_rc);
  }
  free(size);
  free(timing);
  return rc;
}

int hist_session_spec(hist *h, int64_t id, void **blob, size_t *len) {
  *blob = NULL;
  *len = 0;
  sqlite3_stmt *st;
  int rc = hist_query(h, "SELECT spec FROM sessions WHERE id = ? AND spec IS NOT NULL", &st);
  if (rc < 0) return rc;
  sqlite3_bind_int64(st, 1, id);
  int step = sqlite3_step(st);
  if (step == SQLITE_ROW) {
    int n = sqlite3_column_bytes(st, 0);
    const void *b = sqlite3_column_blob(st, 0);
    rc = 0;
    if (n > 0 && b) {
      if ((*blob = malloc((size_t)n))) {
        memcpy(*blob, b, (size_t)n);
        *len = (size_t)n;
        rc = 1;
      } else {
        rc = hist_fail(h, "out of memory");
      }
    }
    step = SQLITE_DONE;
  }
  int end = hist_query_end(h, st, step, rc < 0 ? rc : 0);
  return end < 0 ? end : rc;
}

/* ---- the whole history at a glance ---- */

/* One scan groups the trials; each group's best is picked as `ktune best`
 * and a session's summary pick it: the fastest confirmed latency, else the
 * fastest mean_s, oldest on ties (status = 'ok' spelled literally, so the
 * partial index trials_best applies). */
static const char tasks_sql[] =
  "SELECT g.task, g.size, g.n, g.failed, g.flops, g.bytes, g.first_ms, g.last_ms,"
  " b.id, b.session, b.mean_s, b.gflops, b.gbps, b.checked, b.compiler, b.key"
  " FROM (SELECT task, size, count(*) AS n, sum(status <> 'ok') AS failed,"
  " max(flops) AS flops, max(bytes) AS bytes, min(timestamp_ms) AS first_ms,"
  " max(timestamp_ms) AS last_ms, min(id) AS first FROM trials GROUP BY task, size) g"
  " LEFT JOIN trials b ON b.id = (SELECT t.id FROM trials t WHERE t.task = g.task"
  " AND t.size = g.size AND t.status = 'ok' AND t.mean_s > 0"
  BEST_ORDER("t.") ")"
  " ORDER BY g.first";

int hist_tasks(hist *h, hist_task_fn cb, void *ctx) {
  sqlite3_stmt *st;
  int rc = hist_query(h, tasks_sql, &st);
  if (rc < 0) return rc;
  int step, cb_rc = 0;
  while (!cb_rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
    hist_task_row r = {
        .task = (const char *)sqlite3_column_text(st, 0),
        .size_json = (const char *)sqlite3_column_text(st, 1),
        .trials = sqlite3_column_int64(st, 2),
        .failures = sqlite3_column_int64(st, 3),
        .flops = sqlite3_column_int64(st, 4),
        .bytes = sqlite3_column_int64(st, 5),
        .first_ms = sqlite3_column_int64(st, 6),
        .last_ms = sqlite3_column_int64(st, 7),
        .best_id = sqlite3_column_int64(st, 8),
        .best_session = sqlite3_column_int64(st, 9),
        .best_mean_s = col_real(st, 10),
        .best_gflops = col_real(st, 11),
        .best_gbps = col_real(st, 12),
        .best_checked = sqlite3_column_int(st, 13) != 0,
        .best_compiler = (const char *)sqlite3_column_text(st, 14),
        .best_key = (const char *)sqlite3_column_text(st, 15),
    };
    cb_rc = cb(ctx, &r);
  }
  return hist_query_end(h, st, cb_rc ? SQLITE_DONE : step, cb_rc);
}

int hist_failures(hist *h, hist_failure_fn cb, void *ctx) {
  sqlite3_stmt *st;
  int rc = hist_query(h,
      "SELECT f.task, f.size, f.status, f.n, e.error FROM (SELECT task, size, status,"
      " count(*) AS n, min(CASE WHEN error IS NOT NULL AND error <> '' THEN id END) AS first"
      " FROM trials WHERE status <> 'ok' GROUP BY task, size, status) f"
      " LEFT JOIN trials e ON e.id = f.first ORDER BY f.task, f.size, f.n DESC, f.status", &st);
  if (rc < 0) return rc;
  int step, cb_rc = 0;
  while (!cb_rc && (step = sqlite3_step(st)) == SQLITE_ROW)
    cb_rc = cb(ctx, (const char *)sqlite3_column_text(st, 0),
               (const char *)sqlite3_column_text(st, 1), (const char *)sqlite3_column_text(st, 2),
               sqlite3_column_int64(st, 3), (const char *)sqlite3_column_text(st, 4));
  return hist_query_end(h, st, cb_rc ? SQLITE_DONE : step, cb_rc);
}

int hist_points(hist *h, hist_point_fn cb, void *ctx) {
  sqlite3_stmt *st;
  /* BINARY collation and integer sessions: the order strcmp and < give. */
  int rc = hist_query(h, "SELECT task, size, status, session, mean_s, gflops, gbps FROM trials"
                         " ORDER BY task, size, coalesce(session, 0), id", &st);
  if (rc < 0) return rc;
  int step, cb_rc = 0;
  while (!cb_rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
    hist_point p = {.task = (const char *)sqlite3_column_text(st, 0),
                    .size_json = (const char *)sqlite3_column_text(st, 1),
                    .status = (const char *)sqlite3_column_text(st, 2),
                    .session = sqlite3_column_int64(st, 3),
                    .mean_s = col_real(st, 4),
                    .gflops = col_real(st, 5),
                    .gbps = col_real(st, 6)};
    cb_rc = cb(ctx, &p);
  }
  return hist_query_end(h, st, cb_rc ? SQLITE_DONE : step, cb_rc);
}

int hist_trial_values(hist *h, const char *const *cols, size_t ncols, hist_values_fn cb,
                      void *ctx) {
  /* The names go into the SQL: only these. */
  static const char *const known[] = {"runner", "key",     "device",  "compiler",
                                      "compiler_id", "timing", "builder", "clock"};
  enum { MAX_COLS = 4 };
  if (ncols < 1 || ncols > MAX_COLS)
    return hist_fail(h, "cannot list %zu columns at once (1 to %d)", ncols, MAX_COLS);
  sqlite3_str *sql = sqlite3_str_new(hist_db(h));
  sqlite3_str_appendall(sql, "SELECT ");
  for (size_t i = 0; i < ncols; i++) {
    size_t k = 0;
    while (k < sizeof(known) / sizeof(known[0]) && (!cols[i] || strcmp(cols[i], known[k]))) k++;
    if (k == sizeof(known) / sizeof(known[0])) {
      sqlite3_free(sqlite3_str_finish(sql));
      return hist_fail(h, "cannot list the values of column '%s'", cols[i] ? cols[i] : "");
    }
    sqlite3_str_appendf(sql, "%s, ", known[k]);
  }
  sqlite3_str_appendall(sql, "count(*) FROM trials GROUP BY ");
  /* SQLite's printf has no %zu (its %z frees a string). */
  for (size_t i = 0; i < ncols; i++) sqlite3_str_appendf(sql, "%s%d", i ? ", " : "", (int)i + 1);
  sqlite3_str_appendall(sql, " ORDER BY min(id)");
  char *text = sqlite3_str_finish(sql);
  if (!text) return hist_fail(h, "out of memory");
  sqlite3_stmt *st;
  int rc = hist_query(h, text, &st);
  sqlite3_free(text);
  if (rc < 0) return rc;
  int step, cb_rc = 0;
  while (!cb_rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
    const char *v[MAX_COLS];
    for (size_t i = 0; i < ncols; i++) v[i] = (const char *)sqlite3_column_text(st, (int)i);
    cb_rc = cb(ctx, v, sqlite3_column_int64(st, (int)ncols));
  }
  return hist_query_end(h, st, cb_rc ? SQLITE_DONE : step, cb_rc);
}

/* One row per run, task and size of the workload sessions; the best is
 * picked over the run's sessions of that task and size, as hist_best
 * picks (confirmed first). */
static const char workload_sql[] =
  "SELECT g.run, g.file, g.task, g.size, g.weight, g.trials,"
  " (SELECT t.mean_s FROM trials t JOIN sessions s2 ON s2.id = t.session"
  "  WHERE json_extract(s2.workload, '$.run') = g.run AND s2.task = g.task"
  "  AND s2.size = g.size AND t.status = 'ok' AND t.mean_s > 0"
  BEST_ORDER("t.") ")"
  " FROM (SELECT json_extract(s.workload, '$.run') AS run,"
  " json_extract(s.workload, '$.file') AS file, s.task, s.size,"
  " max(json_extract(s.workload, '$.weight')) AS weight, min(s.id) AS first,"
  " (SELECT count(*) FROM trials t2 JOIN sessions s3 ON s3.id = t2.session"
  "  WHERE json_extract(s3.workload, '$.run') = json_extract(s.workload, '$.run')"
  "  AND s3.task = s.task AND s3.size = s.size) AS trials"
  " FROM sessions s WHERE s.workload IS NOT NULL"
  " GROUP BY run, s.task, s.size) g"
  " ORDER BY (SELECT min(s4.id) FROM sessions s4"
  "  WHERE json_extract(s4.workload, '$.run') = g.run), g.first";

int hist_workload_tasks(hist *h, hist_workload_fn cb, void *ctx) {
  sqlite3_stmt *st;
  int rc = hist_query(h, workload_sql, &st);
  if (rc < 0) return rc;
  int step, cb_rc = 0;
  while (!cb_rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
    hist_workload_row r = {
        .run = (const char *)sqlite3_column_text(st, 0),
        .file = (const char *)sqlite3_column_text(st, 1),
        .task = (const char *)sqlite3_column_text(st, 2),
        .size = (const char *)sqlite3_column_text(st, 3),
        .weight = sqlite3_column_double(st, 4),
        .trials = sqlite3_column_int64(st, 5),
        .best_mean_s = sqlite3_column_double(st, 6),
    };
    if (!r.run || !r.task || !r.size) continue; /* not written by ktune: skip */
    cb_rc = cb(ctx, &r);
  }
  return hist_query_end(h, st, step, cb_rc);
}
