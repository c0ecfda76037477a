/* The SQLite history (docs/HISTORY.md is the user-facing description of the
 * schema; keep the two in step).
 *
 * Errors: functions return a negative code, -(SQLite primary result code)
 * when SQLite failed (so -5 is SQLITE_BUSY) and -1 for errors of our own;
 * hist_errmsg then says what went wrong. One hist is one connection: use it
 * from one thread at a time. */
#include "common/history.h"

#include <errno.h>
#include <jansson.h>
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

#include "common/text.h"

#include "common/identity.h"

#define HIST_SCHEMA_VERSION 2
#define HIST_BUSY_MS 5000

enum {
  ST_BEGIN,
  ST_COMMIT,
  ST_ROLLBACK,
  ST_SESSION_ADD,
  ST_SESSION_UPDATE,
  ST_TRIAL_ADD,
  ST_TRIAL_COUNT,
  ST_EXPORT,
  ST_JOB_ADD,
  ST_JOB_DELETE,
  ST_JOB_LOST,
  ST_FIND_OK,
  ST_COUNT
};

/* IMMEDIATE takes the write lock up front, where the busy timeout applies;
 * a deferred transaction could fail with SQLITE_BUSY on its first write. */
static const char *const stmt_sql[ST_COUNT] = {
  [ST_BEGIN] = "BEGIN IMMEDIATE",
  [ST_COMMIT] = "COMMIT",
  [ST_ROLLBACK] = "ROLLBACK",
  [ST_SESSION_ADD] =
    "INSERT INTO sessions(task, size, key, strategy, compiler, owner, trials, seed,"
    " state, created_ms, updated_ms, spec) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
  [ST_SESSION_UPDATE] =
    "UPDATE sessions SET state = ?, message = ?, updated_ms = ? WHERE id = ?",
  [ST_TRIAL_ADD] =
    "INSERT INTO trials(session, task, size, config, key, compiler, status, error,"
    " costs, mean_s, gflops, flops, runner, build_s, timestamp_ms, number, repeat,"
    " compiler_id, device, median_s, std_s, calls, clock, timing, reused,"
    " digest, kernel, checked, builder)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
  [ST_TRIAL_COUNT] = "SELECT count(*) FROM trials WHERE session = ?",
  [ST_EXPORT] =
    "SELECT id, session, task, size, config, key, compiler, status, error, costs,"
    " mean_s, gflops, flops, runner, build_s, timestamp_ms, number, repeat,"
    " compiler_id, device, median_s, std_s, calls, clock, timing, reused,"
    " digest, kernel, checked, builder"
    " FROM trials ORDER BY id",
  [ST_JOB_ADD] = "INSERT INTO jobs(session, idx, config, lost) VALUES (?,?,?,0)",
  [ST_JOB_DELETE] = "DELETE FROM jobs WHERE id = ?",
  [ST_JOB_LOST] = "UPDATE jobs SET lost = ? WHERE id = ?",
  /* The newest ok measurement of exactly this trial identity; status = 'ok'
   * spelled literally so the partial index applies. */
  [ST_FIND_OK] =
    "SELECT id, costs, mean_s, runner, number, build_s, compiler_id, device, median_s,"
    " std_s, calls, clock, builder FROM trials"
    " WHERE status = 'ok' AND digest = ? AND mean_s IS NOT NULL ORDER BY id DESC LIMIT 1",
};

/* Column order of ST_EXPORT. */
enum {
  X_ID, X_SESSION, X_TASK, X_SIZE, X_CONFIG, X_KEY, X_COMPILER, X_STATUS, X_ERROR,
  X_COSTS, X_MEAN, X_GFLOPS, X_FLOPS, X_RUNNER, X_BUILD, X_TS, X_NUMBER, X_REPEAT,
  X_COMPILER_ID, X_DEVICE, X_MEDIAN, X_STD, X_CALLS, X_CLOCK, X_TIMING, X_REUSED,
  X_DIGEST, X_KERNEL, X_CHECKED, X_BUILDER
};

/* Version 1, as the first ktune created it. A new file gets this and then every
 * migration, so a new file and an upgraded one have the same columns in
 * the same order. */
static const char schema_sql[] =
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
  " spec BLOB);"
  "CREATE TABLE trials ("
  " id INTEGER PRIMARY KEY,"
  " session INTEGER REFERENCES sessions(id),"
  " task TEXT NOT NULL,"
  " size TEXT NOT NULL,"
  " config TEXT NOT NULL,"
  " key TEXT NOT NULL,"
  " compiler TEXT NOT NULL,"
  " status TEXT NOT NULL,"
  " error TEXT,"
  " costs TEXT NOT NULL,"
  " mean_s REAL,"
  " gflops REAL,"
  " flops INTEGER NOT NULL,"
  " runner TEXT,"
  " build_s REAL,"
  " timestamp_ms INTEGER NOT NULL,"
  " number INTEGER NOT NULL,"
  " repeat INTEGER NOT NULL,"
  " compiler_id TEXT,"
  " device TEXT,"
  " median_s REAL,"
  " std_s REAL,"
  " calls INTEGER,"
  " clock TEXT,"
  " timing TEXT NOT NULL DEFAULT '{}',"
  " reused INTEGER REFERENCES trials(id));"
  /* Candidates proposed but not yet recorded: what a restarted tracker
   * queues again. A row goes in the transaction that records its trial. */
  "CREATE TABLE jobs ("
  " id INTEGER PRIMARY KEY,"
  " session INTEGER NOT NULL REFERENCES sessions(id),"
  " idx INTEGER NOT NULL,"
  " config TEXT NOT NULL,"
  " lost INTEGER NOT NULL DEFAULT 0);"
  "CREATE INDEX jobs_session ON jobs(session);"
  "CREATE INDEX trials_best ON trials(task, size, key, mean_s) WHERE status = 'ok';"
  "CREATE INDEX trials_reuse ON trials(task, size, key, config) WHERE status = 'ok';"
  "CREATE INDEX trials_session ON trials(session);";

/* Version 1 to 2: a trial's identity (what was built and how it was
 * measured) as digests, whether its outputs were checked and who built it;
 * why a session ended. Old trials get no digest, so they never answer for
 * a new one: nothing says which template they were built from. Reuse looks
 * trials up by digest now, so the index by config goes. */
static const char migrate_v2_sql[] =
  "ALTER TABLE trials ADD COLUMN digest TEXT;"
  "ALTER TABLE trials ADD COLUMN kernel TEXT;"
  "ALTER TABLE trials ADD COLUMN checked INTEGER NOT NULL DEFAULT 0;"
  "ALTER TABLE trials ADD COLUMN builder TEXT;"
  "ALTER TABLE sessions ADD COLUMN message TEXT;"
  "DROP INDEX IF EXISTS trials_reuse;"
  "CREATE INDEX trials_digest ON trials(digest) WHERE status = 'ok';"
  "CREATE INDEX trials_kernel ON trials(kernel, size, mean_s) WHERE status = 'ok';";

/* migrations[v] takes a file from version v to v + 1. */
static const char *const migrations[HIST_SCHEMA_VERSION] = {[1] = migrate_v2_sql};

/* A version 1 file opened read-only cannot be upgraded; these temporary
 * views, which shadow the tables of the same name for this connection
 * only, show it with the version 2 columns as NULL (checked as 0). The
 * version 1 columns are listed, not *, so a tracker upgrading the file
 * meanwhile does not duplicate them. */
static const char readonly_v1_sql[] =
  "CREATE TEMP VIEW sessions AS SELECT id, task, size, key, strategy, compiler, owner,"
  " trials, seed, state, created_ms, updated_ms, spec, NULL AS message FROM main.sessions;"
  "CREATE TEMP VIEW trials AS SELECT id, session, task, size, config, key, compiler,"
  " status, error, costs, mean_s, gflops, flops, runner, build_s, timestamp_ms, number,"
  " repeat, compiler_id, device, median_s, std_s, calls, clock, timing, reused,"
  " NULL AS digest, NULL AS kernel, 0 AS checked, NULL AS builder FROM main.trials;";

struct hist {
  sqlite3 *db;
  sqlite3_stmt *st[ST_COUNT];
  char err[512]; /* our own message for the last failure; empty: ask SQLite */
};

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static int fail(hist *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(hist *h, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(h->err, sizeof(h->err), fmt, ap);
  va_end(ap);
  return -1;
}

/* Snapshots the message now: a later reset or statement would replace it. */
static int fail_db(hist *h, int rc) {
  snprintf(h->err, sizeof(h->err), "%s", sqlite3_errmsg(h->db));
  rc &= 0xff;
  return rc > 0 ? -rc : -1;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int stmt(hist *h, int i, sqlite3_stmt **out) {
  if (!h->st[i]) {
    int rc = sqlite3_prepare_v3(h->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &h->st[i],
                                NULL);
    if (rc != SQLITE_OK) return fail_db(h, rc);
  }
  *out = h->st[i];
  return 0;
}

/* Bound strings may be freed by the caller right after this. */
static void stmt_done(sqlite3_stmt *s) {
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
}

/* Runs a statement that returns no rows. */
static int step_done(hist *h, sqlite3_stmt *s) {
  int rc = sqlite3_step(s);
  int ret = rc == SQLITE_DONE ? 0 : fail_db(h, rc);
  stmt_done(s);
  return ret;
}

static int bind_opt_text(sqlite3_stmt *s, int i, const char *v) {
  if (!v || !*v) return sqlite3_bind_null(s, i);
  return sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

static int bind_real(sqlite3_stmt *s, int i, double v, int present) {
  if (!present || !isfinite(v)) return sqlite3_bind_null(s, i);
  return sqlite3_bind_double(s, i, v);
}

/* Shortest %.*g that reads back as the same double. Starting at 15 loses
 * nothing: %g drops trailing zeros, so 0.001 still prints as 0.001. */
static int real_digits(double v) {
  char b[40];
  for (int p = 15; p < 17; p++) {
    snprintf(b, sizeof(b), "%.*g", p, v);
    if (strtod(b, NULL) == v) return p;
  }
  return 17;
}

static void fmt_real(char *out, size_t n, double v) {
  snprintf(out, n, "%.*g", real_digits(v), v);
}

/* Keys sorted, compact: the same text as space_config_json and as the
 * digests hash, so equal configs compare equal as strings whoever wrote
 * them. */
static char *canonical_object(hist *h, const char *what, const char *text) {
  char why[200], *out;
  if (ident_canonical_object(text, &out, why, sizeof(why)) < 0) fail(h, "%s %s", what, why);
  return out;
}

static char *costs_json(hist *h, const double *costs, size_t n) {
  if (n > 0 && !costs) {
    fail(h, "trial has %zu costs but no array", n);
    return NULL;
  }
  size_t cap = 2 + n * 26 + 1, len = 0;
  char *s = malloc(cap);
  if (!s) {
    fail(h, "out of memory");
    return NULL;
  }
  s[len++] = '[';
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(costs[i])) {
      free(s);
      fail(h, "trial cost %zu is not a finite number", i);
      return NULL;
    }
    if (i) s[len++] = ',';
    char b[40];
    fmt_real(b, sizeof(b), costs[i]);
    size_t bl = strlen(b);
    memcpy(s + len, b, bl);
    len += bl;
  }
  s[len++] = ']';
  s[len] = '\0';
  return s;
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
    if ((rc = sqlite3_exec(db, schema_sql, NULL, NULL, NULL)) != SQLITE_OK) goto dberr_rb;
    v = 1;
  } else if (!version_ok(v, path, err, errlen)) {
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
  }
  if (v < HIST_SCHEMA_VERSION) {
    for (; v < HIST_SCHEMA_VERSION; v++)
      if ((rc = sqlite3_exec(db, migrations[v], NULL, NULL, NULL)) != SQLITE_OK) goto dberr_rb;
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", HIST_SCHEMA_VERSION);
    if ((rc = sqlite3_exec(db, sql, NULL, NULL, NULL)) != SQLITE_OK) goto dberr_rb;
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

static hist *hist_new(sqlite3 *db) {
  hist *h = calloc(1, sizeof(*h));
  if (h) h->db = db;
  return h;
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
  if (!(*out = hist_new(db))) {
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
  if (v == 1 && (rc = sqlite3_exec(db, readonly_v1_sql, NULL, NULL, NULL)) != SQLITE_OK) {
    errf(err, errlen, "cannot read version 1 history at %s: %s", path, sqlite3_errmsg(db));
    sqlite3_close_v2(db);
    return -(rc & 0xff);
  }
  if (!(*out = hist_new(db))) {
    errf(err, errlen, "out of memory");
    sqlite3_close_v2(db);
    return -1;
  }
  return 0;
}

void hist_close(hist *h) {
  if (!h) return;
  for (int i = 0; i < ST_COUNT; i++) sqlite3_finalize(h->st[i]);
  /* An open transaction is rolled back here: uncommitted means not recorded. */
  sqlite3_close_v2(h->db);
  free(h);
}

const char *hist_errmsg(hist *h) {
  if (!h) return "no history handle";
  return h->err[0] ? h->err : sqlite3_errmsg(h->db);
}

int hist_begin(hist *h) {
  h->err[0] = '\0';
  sqlite3_stmt *s;
  int rc = stmt(h, ST_BEGIN, &s);
  return rc < 0 ? rc : step_done(h, s);
}

/* A failed COMMIT is rolled back so the handle is usable again; the caller
 * must treat everything since hist_begin as not recorded. */
int hist_commit(hist *h) {
  h->err[0] = '\0';
  sqlite3_stmt *s;
  int rc = stmt(h, ST_COMMIT, &s);
  if (rc < 0) return rc;
  rc = step_done(h, s);
  if (rc < 0 && !sqlite3_get_autocommit(h->db)) {
    sqlite3_stmt *rb;
    if (stmt(h, ST_ROLLBACK, &rb) == 0) {
      sqlite3_step(rb);
      stmt_done(rb);
    }
  }
  return rc;
}

int hist_session_add(hist *h, const hist_session *s, int64_t *id) {
  h->err[0] = '\0';
  const char *missing = !s->task       ? "task"
                        : !s->key      ? "key"
                        : !s->strategy ? "strategy"
                        : !s->compiler ? "compiler"
                                       : NULL;
  if (missing) return fail(h, "session has no %s", missing);
  char *size = canonical_object(h, "session size", s->size_json);
  if (!size) return -1;
  sqlite3_stmt *st;
  int rc = stmt(h, ST_SESSION_ADD, &st);
  if (rc < 0) {
    free(size);
    return rc;
  }
  int64_t now = now_ms();
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
  rc = step_done(h, st);
  free(size);
  if (rc == 0 && id) *id = sqlite3_last_insert_rowid(h->db);
  return rc;
}

int hist_session_update(hist *h, int64_t id, const char *state, const char *message) {
  h->err[0] = '\0';
  if (!state || !*state) return fail(h, "session %lld: no state given", (long long)id);
  sqlite3_stmt *st;
  int rc = stmt(h, ST_SESSION_UPDATE, &st);
  if (rc < 0) return rc;
  sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
  bind_opt_text(st, 2, message);
  sqlite3_bind_int64(st, 3, now_ms());
  sqlite3_bind_int64(st, 4, id);
  if ((rc = step_done(h, st)) < 0) return rc;
  if (sqlite3_changes(h->db) == 0) return fail(h, "no session %lld in the history", (long long)id);
  return 0;
}

int hist_trial_add(hist *h, const hist_trial *t, int64_t *id) {
  h->err[0] = '\0';
  const char *missing = !t->task       ? "task"
                        : !t->key      ? "key"
                        : !t->compiler ? "compiler"
                        : !t->status   ? "status"
                                       : NULL;
  if (missing) return fail(h, "trial has no %s", missing);
  /* A malformed digest would never be asked for again: refuse it now. */
  if (t->digest && *t->digest && !ident_is_digest(t->digest))
    return fail(h, "trial digest is not 64 lowercase hex digits: %.80s", t->digest);
  if (t->kernel && *t->kernel && !ident_is_digest(t->kernel))
    return fail(h, "trial kernel digest is not 64 lowercase hex digits: %.80s", t->kernel);
  char *size = canonical_object(h, "trial size", t->size_json);
  char *config = size ? canonical_object(h, "trial config", t->config_json) : NULL;
  char *costs = config ? costs_json(h, t->costs, t->ncosts) : NULL;
  char *timing = costs ? canonical_object(h, "trial timing", t->timing_json ? t->timing_json : "{}") : NULL;
  char *device = NULL;
  if (timing && t->device_json && *t->device_json)
    device = canonical_object(h, "trial device", t->device_json);
  sqlite3_stmt *st = NULL;
  int rc = timing && (device || !t->device_json || !*t->device_json) ? stmt(h, ST_TRIAL_ADD, &st) : -1;
  if (rc < 0) goto out;
  /* A trial that failed before it was timed has no latency; its zero would
   * read as infinitely fast. */
  int timed = t->ncosts > 0 || strcmp(t->status, "ok") == 0;
  if (t->session > 0)
    sqlite3_bind_int64(st, 1, t->session);
  else
    sqlite3_bind_null(st, 1);
  sqlite3_bind_text(st, 2, t->task, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, size, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, config, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 5, t->key, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 6, t->compiler, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 7, t->status, -1, SQLITE_STATIC);
  bind_opt_text(st, 8, t->error);
  sqlite3_bind_text(st, 9, costs, -1, SQLITE_STATIC);
  bind_real(st, 10, t->mean_s, timed);
  bind_real(st, 11, t->gflops, timed && isfinite(t->mean_s));
  sqlite3_bind_int64(st, 12, t->flops);
  bind_opt_text(st, 13, t->runner);
  bind_real(st, 14, t->build_s, 1);
  sqlite3_bind_int64(st, 15, t->timestamp_ms > 0 ? t->timestamp_ms : now_ms());
  sqlite3_bind_int64(st, 16, t->number);
  sqlite3_bind_int64(st, 17, t->repeat);
  bind_opt_text(st, 18, t->compiler_id);
  bind_opt_text(st, 19, device);
  bind_real(st, 20, t->median_s, timed);
  bind_real(st, 21, t->std_s, timed);
  sqlite3_bind_int64(st, 22, (int64_t)t->calls);
  bind_opt_text(st, 23, t->clock);
  sqlite3_bind_text(st, 24, timing, -1, SQLITE_STATIC);
  if (t->reused > 0)
    sqlite3_bind_int64(st, 25, t->reused);
  else
    sqlite3_bind_null(st, 25);
  bind_opt_text(st, 26, t->digest);
  bind_opt_text(st, 27, t->kernel);
  sqlite3_bind_int(st, 28, t->checked != 0);
  bind_opt_text(st, 29, t->builder);
  rc = step_done(h, st);
  if (rc == 0 && id) *id = sqlite3_last_insert_rowid(h->db);
out:
  free(size);
  free(config);
  free(costs);
  free(timing);
  free(device);
  return rc;
}

static const char *col_text(sqlite3_stmt *st, int i) {
  return (const char *)sqlite3_column_text(st, i);
}

static char *col_strdup(sqlite3_stmt *st, int i) {
  const unsigned char *t = sqlite3_column_text(st, i);
  return t ? strdup((const char *)t) : NULL;
}

int hist_job_add(hist *h, int64_t session, uint64_t index, const char *config_json, int64_t *id) {
  h->err[0] = '\0';
  char *config = canonical_object(h, "job config", config_json);
  if (!config) return -1;
  sqlite3_stmt *st;
  int rc = stmt(h, ST_JOB_ADD, &st);
  if (rc == 0) {
    sqlite3_bind_int64(st, 1, session);
    sqlite3_bind_int64(st, 2, (int64_t)index);
    sqlite3_bind_text(st, 3, config, -1, SQLITE_STATIC);
    rc = step_done(h, st);
    if (rc == 0 && id) *id = sqlite3_last_insert_rowid(h->db);
  }
  free(config);
  return rc;
}

/* Runs a cached statement that changes one row picked by its last parameter. */
static int change_row(hist *h, int which, int64_t a, int64_t id, const char *what) {
  h->err[0] = '\0';
  sqlite3_stmt *st;
  int rc = stmt(h, which, &st);
  if (rc < 0) return rc;
  int n = 1;
  if (which == ST_JOB_LOST) sqlite3_bind_int64(st, n++, a);
  sqlite3_bind_int64(st, n, id);
  if ((rc = step_done(h, st)) < 0) return rc;
  if (sqlite3_changes(h->db) == 0) return fail(h, "no %s %lld in the history", what, (long long)id);
  return 0;
}

int hist_job_delete(hist *h, int64_t id) { return change_row(h, ST_JOB_DELETE, 0, id, "job"); }

int hist_job_lost(hist *h, int64_t id, uint32_t lost) {
  return change_row(h, ST_JOB_LOST, lost, id, "job");
}

/* Prepares a one-off query; these run once per tracker start. */
static int query(hist *h, const char *sql, sqlite3_stmt **st) {
  h->err[0] = '\0';
  int rc = sqlite3_prepare_v2(h->db, sql, -1, st, NULL);
  return rc == SQLITE_OK ? 0 : fail_db(h, rc);
}

static int query_end(hist *h, sqlite3_stmt *st, int step, int cb_rc) {
  sqlite3_finalize(st);
  if (cb_rc) return cb_rc;
  return step == SQLITE_DONE ? 0 : fail_db(h, step);
}

int hist_jobs_of(hist *h, int64_t session, hist_job_fn cb, void *ctx) {
  sqlite3_stmt *st;
  int rc = query(h, "SELECT id, idx, lost FROM jobs WHERE session = ? ORDER BY id", &st);
  if (rc < 0) return rc;
  sqlite3_bind_int64(st, 1, session);
  int step, cb_rc = 0;
  while (!cb_rc && (step = sqlite3_step(st)) == SQLITE_ROW)
    cb_rc = cb(ctx, sqlite3_column_int64(st, 0), (uint64_t)sqlite3_column_int64(st, 1),
               (uint32_t)sqlite3_column_int64(st, 2));
  return query_end(h, st, cb_rc ? SQLITE_DONE : step, cb_rc);
}

int hist_sessions_unfinished(hist *h, hist_session_fn cb, void *ctx) {
  sqlite3_stmt *st;
  int rc = query(h, "SELECT id, spec, owner, created_ms FROM sessions"
                    " WHERE state IN ('queued', 'running') ORDER BY id", &st);
  if (rc < 0) return rc;
  int step, cb_rc = 0;
  while (!cb_rc && (step = sqlite3_step(st)) == SQLITE_ROW)
    cb_rc = cb(ctx, sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1),
               (size_t)sqlite3_column_bytes(st, 1), col_text(st, 2), sqlite3_column_int64(st, 3));
  return query_end(h, st, cb_rc ? SQLITE_DONE : step, cb_rc);
}

static double col_real(sqlite3_stmt *st, int i) {
  return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

/* ---- sessions ---- */

/* A session and its counts; the best trial as summary and ktune best pick
 * it (fastest ok, oldest on ties). Subqueries use trials_session. */
#define SESSION_ROW_SQL                                                                   \
  "SELECT s.id, s.task, s.size, s.key, s.strategy, s.compiler, s.owner, s.state,"         \
  " s.message, s.trials, s.created_ms, s.updated_ms,"                                     \
  " (SELECT count(*) FROM trials t WHERE t.session = s.id),"                              \
  " (SELECT count(*) FROM trials t WHERE t.session = s.id AND t.status <> 'ok'),"         \
  " (SELECT count(*) FROM trials t WHERE t.session = s.id AND t.reused IS NOT NULL),"     \
  " b.config, b.mean_s, b.gflops"                                                         \
  " FROM sessions s LEFT JOIN trials b ON b.id = (SELECT t.id FROM trials t"              \
  " WHERE t.session = s.id AND t.status = 'ok' AND t.mean_s > 0"                          \
  " ORDER BY t.mean_s, t.id LIMIT 1)"

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
    if (!(*strs[i] = col_strdup(st, i + 1)) && sqlite3_column_type(st, i + 1) != SQLITE_NULL)
      goto oom;
  r->trials = (uint32_t)sqlite3_column_int64(st, 9);
  r->created_ms = sqlite3_column_int64(st, 10);
  r->updated_ms = sqlite3_column_int64(st, 11);
  r->done = (uint32_t)sqlite3_column_int64(st, 12);
  r->failures = (uint32_t)sqlite3_column_int64(st, 13);
  r->reused = (uint32_t)sqlite3_column_int64(st, 14);
  if (sqlite3_column_type(st, 15) != SQLITE_NULL) {
    if (!(r->best_config = col_strdup(st, 15))) goto oom;
    r->best_mean_s = sqlite3_column_double(st, 16);
    r->best_gflops = sqlite3_column_double(st, 17);
  }
  return 0;
oom:
  hist_session_row_clear(r);
  return fail(h, "out of memory");
}

int hist_session_get(hist *h, int64_t id, hist_session_row *out) {
  memset(out, 0, sizeof(*out));
  sqlite3_stmt *st;
  int rc = query(h, SESSION_ROW_SQL " WHERE s.id = ?", &st);
  if (rc < 0) return rc;
  sqlite3_bind_int64(st, 1, id);
  int step = sqlite3_step(st);
  if (step == SQLITE_ROW) {
    rc = session_row(h, st, out) < 0 ? -1 : 1;
    sqlite3_finalize(st);
    return rc;
  }
  return query_end(h, st, step, 0);
}

int hist_sessions_recent(hist *h, uint32_t limit, hist_session_row_fn cb, void *ctx) {
  sqlite3_stmt *st;
  int rc = query(h, SESSION_ROW_SQL " WHERE s.state NOT IN ('queued', 'running')"
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
  return query_end(h, st, cb_rc ? SQLITE_DONE : step, cb_rc);
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

/* ---- reuse ---- */

void hist_found_clear(hist_found *f) {
  free(f->costs);
  free(f->runner);
  free(f->compiler_id);
  free(f->device_json);
  free(f->clock);
  free(f->builder);
  memset(f, 0, sizeof(*f));
}

int hist_find_ok(hist *h, const char *digest, hist_found *out) {
  h->err[0] = '\0';
  memset(out, 0, sizeof(*out));
  /* No identity, nothing it could repeat. */
  if (!digest || !*digest) return 0;
  sqlite3_stmt *st = NULL;
  int rc = stmt(h, ST_FIND_OK, &st);
  if (rc < 0) return rc;
  sqlite3_bind_text(st, 1, digest, -1, SQLITE_STATIC);
  int step = sqlite3_step(st);
  if (step == SQLITE_ROW) {
    json_error_t je;
    json_t *costs = json_loads(col_text(st, 1) ? col_text(st, 1) : "", 0, &je);
    size_t n = json_is_array(costs) ? json_array_size(costs) : 0;
    out->costs = calloc(n ? n : 1, sizeof(double));
    for (size_t i = 0; out->costs && i < n; i++)
      out->costs[i] = json_number_value(json_array_get(costs, i));
    json_decref(costs);
    out->ncosts = out->costs ? n : 0;
    out->id = sqlite3_column_int64(st, 0);
    out->mean_s = sqlite3_column_double(st, 2);
    out->runner = col_strdup(st, 3);
    out->number = (uint32_t)sqlite3_column_int64(st, 4);
    out->build_s = sqlite3_column_double(st, 5);
    out->compiler_id = col_strdup(st, 6);
    out->device_json = col_strdup(st, 7);
    out->median_s = sqlite3_column_double(st, 8);
    out->std_s = sqlite3_column_double(st, 9);
    out->calls = (uint64_t)sqlite3_column_int64(st, 10);
    out->clock = col_strdup(st, 11);
    out->builder = col_strdup(st, 12);
    rc = out->ncosts ? 1 : fail(h, "trial %lld has no costs", (long long)out->id);
    if (rc < 0) hist_found_clear(out);
  } else {
    rc = step == SQLITE_DONE ? 0 : fail_db(h, step);
  }
  stmt_done(st);
  return rc;
}

int hist_trial_count(hist *h, int64_t session, int64_t *n) {
  h->err[0] = '\0';
  sqlite3_stmt *st;
  int rc = stmt(h, ST_TRIAL_COUNT, &st);
  if (rc < 0) return rc;
  sqlite3_bind_int64(st, 1, session);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *n = sqlite3_column_int64(st, 0);
    rc = 0;
  } else {
    rc = fail_db(h, rc);
  }
  stmt_done(st);
  return rc;
}

/* ---- best ---- */

typedef struct {
  char *s;
  size_t len, cap;
  int oom;
} sbuf;

static void sb_put(sbuf *b, const char *p, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *ns = realloc(b->s, cap);
    if (!ns) {
      b->oom = 1;
      return;
    }
    b->s = ns;
    b->cap = cap;
  }
  memcpy(b->s + b->len, p, n);
  b->len += n;
  b->s[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *p) { sb_put(b, p, strlen(p)); }

/* The trials a best query allows, as "SELECT <what> FROM trials WHERE ...
 * <tail>", prepared and bound. Only the conditions asked for are written,
 * so SQLite plans each with the index that fits (trials_kernel when a
 * kernel is given, else trials_best); status = 'ok' is spelled literally so
 * those partial indexes apply. *size and *timing hold bound text: free
 * them after finalizing *st. */
static int best_prepare(hist *h, const hist_best_query *q, const char *what, const char *tail,
                        sqlite3_stmt **st, char **size, char **timing) {
  h->err[0] = '\0';
  *st = NULL;
  *size = *timing = NULL;
  if (!q || !q->task) return fail(h, "no task given");
  if (!(*size = canonical_object(h, "size", q->size_json))) return -1;
  if (q->timing_json && !(*timing = canonical_object(h, "timing", q->timing_json))) return -1;
  const char *binds[5] = {q->task, *size};
  int n = 2;
  sbuf sql = {0};
  sb_str(&sql, "SELECT ");
  sb_str(&sql, what);
  sb_str(&sql, " FROM trials WHERE status = 'ok' AND mean_s IS NOT NULL AND task = ?"
               " AND size = ?");
  const struct {
    const char *col, *val;
  } opt[] = {{"kernel", q->kernel}, {"key", q->key}, {"compiler", q->compiler},
             {"timing", *timing}};
  for (size_t i = 0; i < sizeof(opt) / sizeof(opt[0]); i++) {
    if (!opt[i].val) continue;
    sb_str(&sql, " AND ");
    sb_str(&sql, opt[i].col);
    sb_str(&sql, " = ?");
    binds[n++] = opt[i].val;
  }
  if (q->checked_only) sb_str(&sql, " AND checked = 1");
  sb_str(&sql, tail);
  if (sql.oom) {
    free(sql.s);
    return fail(h, "out of memory");
  }
  int rc = query(h, sql.s, st);
  free(sql.s);
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
                        "id, session, mean_s, gflops, checked, config, compiler, compiler_id,"
                        " key, runner, builder, timing, kernel",
                        " ORDER BY mean_s, id LIMIT 1", &st, &size, &timing);
  int step = rc < 0 ? SQLITE_DONE : sqlite3_step(st);
  if (rc == 0 && step == SQLITE_ROW) {
    out->id = sqlite3_column_int64(st, 0);
    out->session = sqlite3_column_int64(st, 1);
    out->mean_s = col_real(st, 2);
    out->gflops = col_real(st, 3);
    out->checked = sqlite3_column_int(st, 4) != 0;
    char **strs[] = {&out->config_json, &out->compiler, &out->compiler_id, &out->key,
                     &out->runner,      &out->builder,  &out->timing_json, &out->kernel};
    rc = 1;
    for (int i = 0; i < 8; i++)
      if (!(*strs[i] = col_strdup(st, i + 5)) && sqlite3_column_type(st, i + 5) != SQLITE_NULL)
        rc = fail(h, "out of memory");
    if (rc < 0) hist_best_row_clear(out);
    step = SQLITE_DONE;
  }
  if (st) rc = query_end(h, st, step, rc);
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
    rc = query_end(h, st, step, 0);
  }
  free(size);
  free(timing);
  return rc;
}

/* ---- export ---- */

static void iso_utc_ms(int64_t ms, char *out, size_t n) {
  int64_t s = ms / 1000, r = ms % 1000;
  if (r < 0) {
    r += 1000;
    s--;
  }
  time_t t = (time_t)s;
  struct tm tm;
  if (!gmtime_r(&t, &tm)) {
    snprintf(out, n, "%s", "");
    return;
  }
  char day[48];
  strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, n, "%s.%03dZ", day, (int)r);
}


/* RFC 4180: quote a field that holds a comma, quote or line break. */
static void csv_field(sbuf *b, int first, const char *v) {
  if (!first) sb_put(b, ",", 1);
  if (!v) return;
  if (!strpbrk(v, ",\"\r\n")) {
    sb_str(b, v);
    return;
  }
  sb_put(b, "\"", 1);
  for (const char *p = v; *p; p++) {
    if (*p == '"') sb_put(b, "\"", 1);
    sb_put(b, p, 1);
  }
  sb_put(b, "\"", 1);
}

static const char csv_header[] =
  "id,session,task,size,config,key,compiler,status,error,costs_s,mean_s,gflops,flops,"
  "runner,build_s,timestamp,timestamp_ms,number,repeat,compiler_id,device,median_s,std_s,"
  "calls,clock,timing,reused_from,digest,kernel,checked,builder";


/* One CSV row: numbers as text, NULL as an empty field. */
static int csv_row(hist *h, sqlite3_stmt *st, char **line) {
  sbuf b = {0};
  char num[48], ts[64];
  for (int i = X_ID; i <= X_BUILDER; i++) {
    const char *v = NULL;
    int type = sqlite3_column_type(st, i);
    if (i == X_CHECKED) {
      /* As in jsonl, so one reader parses both. */
      v = sqlite3_column_int(st, i) ? "true" : "false";
    } else if (i == X_TS) {
      iso_utc_ms(sqlite3_column_int64(st, i), ts, sizeof(ts));
      csv_field(&b, 0, ts);
      v = col_text(st, i);
    } else if (type == SQLITE_FLOAT) {
      fmt_real(num, sizeof(num), sqlite3_column_double(st, i));
      v = num;
    } else if (type != SQLITE_NULL) {
      v = col_text(st, i);
    }
    csv_field(&b, i == X_ID, v);
  }
  if (b.oom || !b.s) {
    free(b.s);
    return fail(h, "out of memory");
  }
  *line = b.s;
  return 0;
}

/* Shortest text that reads back as the same double, and still reads as a
 * real (2.0, not 2) so consumers see one type per field. */
static void sb_real(sbuf *b, double v) {
  if (!isfinite(v)) {
    sb_str(b, "null");
    return;
  }
  char num[48];
  fmt_real(num, sizeof(num), v);
  sb_str(b, num);
  if (!strpbrk(num, ".e")) sb_str(b, ".0");
}

/* Compiler diagnostics can carry any bytes; invalid UTF-8 becomes U+FFFD so
 * the line stays valid JSON. */
static void sb_jstr(sbuf *b, const char *v) {
  if (!v) {
    sb_str(b, "null");
    return;
  }
  sb_put(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)v; *p;) {
    char esc[8];
    if (*p == '"' || *p == '\\') {
      esc[0] = '\\';
      esc[1] = (char)*p;
      sb_put(b, esc, 2);
      p++;
    } else if (*p < 0x20) {
      const char *named = *p == '\n' ? "\\n" : *p == '\t' ? "\\t" : *p == '\r' ? "\\r" : NULL;
      if (named) {
        sb_str(b, named);
      } else {
        snprintf(esc, sizeof(esc), "\\u%04x", *p);
        sb_str(b, esc);
      }
      p++;
    } else {
      size_t n = text_utf8_len(p, 4); /* a NUL ends a sequence */
      if (n) {
        sb_put(b, (const char *)p, n);
        p += n;
      } else {
        sb_str(b, "\\ufffd");
        p++;
      }
    }
  }
  sb_put(b, "\"", 1);
}

static void sb_key(sbuf *b, const char *k) {
  sb_put(b, b->len > 1 ? ",\"" : "\"", b->len > 1 ? 2 : 1);
  sb_str(b, k);
  sb_put(b, "\":", 2);
}

static void sb_col_int(sbuf *b, sqlite3_stmt *st, int i) {
  char num[32];
  if (sqlite3_column_type(st, i) == SQLITE_NULL) {
    sb_str(b, "null");
    return;
  }
  snprintf(num, sizeof(num), "%lld", (long long)sqlite3_column_int64(st, i));
  sb_str(b, num);
}

static void sb_col_real(sbuf *b, sqlite3_stmt *st, int i) {
  if (sqlite3_column_type(st, i) == SQLITE_NULL)
    sb_str(b, "null");
  else
    sb_real(b, sqlite3_column_double(st, i));
}

/* Stored JSON is parsed back, so what goes out is valid whoever wrote the
 * row; objects stay objects rather than strings. */
static json_t *col_json(hist *h, sqlite3_stmt *st, int i, const char *what) {
  const char *t = col_text(st, i);
  json_error_t je;
  json_t *j = t ? json_loads(t, JSON_DECODE_ANY, &je) : NULL;
  if (!j || (i == X_COSTS ? !json_is_array(j) : !json_is_object(j))) {
    json_decref(j);
    fail(h, "trial %lld: stored %s is not a JSON %s: %.100s",
         (long long)sqlite3_column_int64(st, X_ID), what, i == X_COSTS ? "array" : "object",
         t ? t : "(null)");
    return NULL;
  }
  return j;
}

static int sb_col_object(hist *h, sbuf *b, sqlite3_stmt *st, int i, const char *what) {
  json_t *j = col_json(h, st, i, what);
  if (!j) return -1;
  char *t = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(j);
  if (!t) return fail(h, "out of memory");
  sb_str(b, t);
  free(t);
  return 0;
}

static int jsonl_row(hist *h, sqlite3_stmt *st, char **line) {
  sbuf b = {0};
  int rc = 0;
  sb_put(&b, "{", 1);
  sb_key(&b, "id");
  sb_col_int(&b, st, X_ID);
  sb_key(&b, "session");
  sb_col_int(&b, st, X_SESSION);
  sb_key(&b, "task");
  sb_jstr(&b, col_text(st, X_TASK));
  sb_key(&b, "size");
  if ((rc = sb_col_object(h, &b, st, X_SIZE, "size")) < 0) goto out;
  sb_key(&b, "config");
  if ((rc = sb_col_object(h, &b, st, X_CONFIG, "config")) < 0) goto out;
  sb_key(&b, "key");
  sb_jstr(&b, col_text(st, X_KEY));
  sb_key(&b, "compiler");
  sb_jstr(&b, col_text(st, X_COMPILER));
  sb_key(&b, "status");
  sb_jstr(&b, col_text(st, X_STATUS));
  sb_key(&b, "error");
  sb_jstr(&b, col_text(st, X_ERROR));
  sb_key(&b, "costs_s");
  json_t *costs = col_json(h, st, X_COSTS, "costs");
  if (!costs) {
    rc = -1;
    goto out;
  }
  sb_put(&b, "[", 1);
  size_t k;
  json_t *v;
  json_array_foreach(costs, k, v) {
    if (k) sb_put(&b, ",", 1);
    if (json_is_number(v))
      sb_real(&b, json_number_value(v));
    else
      sb_str(&b, "null");
  }
  sb_put(&b, "]", 1);
  json_decref(costs);
  sb_key(&b, "mean_s");
  sb_col_real(&b, st, X_MEAN);
  sb_key(&b, "gflops");
  sb_col_real(&b, st, X_GFLOPS);
  sb_key(&b, "flops");
  sb_col_int(&b, st, X_FLOPS);
  sb_key(&b, "runner");
  sb_jstr(&b, col_text(st, X_RUNNER));
  sb_key(&b, "build_s");
  sb_col_real(&b, st, X_BUILD);
  char ts[64];
  iso_utc_ms(sqlite3_column_int64(st, X_TS), ts, sizeof(ts));
  sb_key(&b, "timestamp");
  sb_jstr(&b, ts);
  sb_key(&b, "timestamp_ms");
  sb_col_int(&b, st, X_TS);
  sb_key(&b, "number");
  sb_col_int(&b, st, X_NUMBER);
  sb_key(&b, "repeat");
  sb_col_int(&b, st, X_REPEAT);
  sb_key(&b, "compiler_id");
  sb_jstr(&b, col_text(st, X_COMPILER_ID));
  sb_key(&b, "device");
  if (sqlite3_column_type(st, X_DEVICE) == SQLITE_NULL) sb_str(&b, "null");
  else if ((rc = sb_col_object(h, &b, st, X_DEVICE, "device")) < 0) goto out;
  sb_key(&b, "median_s");
  sb_col_real(&b, st, X_MEDIAN);
  sb_key(&b, "std_s");
  sb_col_real(&b, st, X_STD);
  sb_key(&b, "calls");
  sb_col_int(&b, st, X_CALLS);
  sb_key(&b, "clock");
  sb_jstr(&b, col_text(st, X_CLOCK));
  sb_key(&b, "timing");
  if ((rc = sb_col_object(h, &b, st, X_TIMING, "timing")) < 0) goto out;
  sb_key(&b, "reused_from");
  sb_col_int(&b, st, X_REUSED);
  sb_key(&b, "digest");
  sb_jstr(&b, col_text(st, X_DIGEST));
  sb_key(&b, "kernel");
  sb_jstr(&b, col_text(st, X_KERNEL));
  sb_key(&b, "checked");
  sb_str(&b, sqlite3_column_int(st, X_CHECKED) ? "true" : "false");
  sb_key(&b, "builder");
  sb_jstr(&b, col_text(st, X_BUILDER));
  sb_put(&b, "}", 1);
  if (b.oom) rc = fail(h, "out of memory");
out:
  if (rc < 0) {
    free(b.s);
    return rc;
  }
  *line = b.s;
  return 0;
}

int hist_export(hist *h, const char *format, hist_line_fn cb, void *ctx, char *err,
                size_t errlen) {
  h->err[0] = '\0';
  int csv;
  if (format && strcmp(format, "jsonl") == 0) {
    csv = 0;
  } else if (format && strcmp(format, "csv") == 0) {
    csv = 1;
  } else {
    fail(h, "unknown export format '%s': use jsonl or csv", format ? format : "");
    errf(err, errlen, "%s", h->err);
    return -1;
  }
  sqlite3_stmt *st;
  int rc = stmt(h, ST_EXPORT, &st);
  if (rc < 0) {
    errf(err, errlen, "export: %s", h->err);
    return rc;
  }
  /* The cursor is shared; a callback that exports again would reset it. */
  if (sqlite3_stmt_busy(st)) {
    fail(h, "an export is already running on this history handle");
    errf(err, errlen, "%s", h->err);
    return -1;
  }
  int rc_cb = csv ? cb(ctx, csv_header) : 0;
  while (rc_cb == 0) {
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE) break;
    char *line = NULL;
    if (step != SQLITE_ROW)
      rc = fail_db(h, step);
    else
      rc = csv ? csv_row(h, st, &line) : jsonl_row(h, st, &line);
    if (rc < 0) {
      stmt_done(st);
      errf(err, errlen, "export: %s", h->err);
      return rc;
    }
    rc_cb = cb(ctx, line);
    free(line);
  }
  stmt_done(st);
  return rc_cb;
}
