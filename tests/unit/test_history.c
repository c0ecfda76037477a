/* History: real SQLite files in a fresh temp folder per case. */
#include "common/history.h"

#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>

#include "common/identity.h"
#include "tests/test.h"
#include "tests/unit/hist_util.h"
#include "tracker/tracker.h"

/* 2026-11-28T01:02:03.456Z */
#define TS1 INT64_C(1795827723456)

static hist *open_rw(const char *path) {
  hist *h = NULL;
  char err[256] = "";
  int rc = hist_open(path, 0, &h, err, sizeof(err));
  if (rc != 0) TEST_FAIL("hist_open(%s): %d %s", path, rc, err);
  ASSERT_NOT_NULL(h);
  return h;
}

static int64_t add_session(hist *h, const char *key) {
  store_new_session s = {
    .task = "matmul", .size_json = "{\"M\":64,\"N\":64,\"K\":64}", .key = key,
    .strategy = "random", .compiler = "tcc", .owner = "alice", .trials = 10, .seed = 7,
    .state = "running", .spec = "\x01\x02\x00\x03", .spec_len = 4,
  };
  int64_t id = 0;
  int rc = store_session_add(h, &s, &id);
  if (rc != 0) TEST_FAIL("store_session_add: %d %s", rc, hist_errmsg(h));
  ASSERT_GE_INT(id, 1);
  return id;
}

static const double costs3[] = {1.5e-3, 1.25e-3, 1e-3};

/* Two kernel digests: the same task name from two template versions. */
#define KERNEL_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define KERNEL_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static hist_trial ok_trial(int64_t session, double mean) {
  hist_trial t = {
    .session = session, .task = "matmul", .size_json = "{\"K\":64,\"M\":64,\"N\":64}",
    .config_json = "{\"TI\":8,\"TJ\":16}", .key = "rpi4", .compiler = "tcc",
    .status = "ok", .costs = costs3, .ncosts = 3, .mean_s = mean,
    .gflops = 524288.0 / mean / 1e9, .flops = 524288, .runner = "pi-1", .build_s = 0.0005,
    .timestamp_ms = TS1, .number = 10, .repeat = 3, .kernel = KERNEL_A, .checked = 1,
    .builder = "b-1",
  };
  return t;
}

static int64_t add_trial(hist *h, const hist_trial *t) {
  int64_t id = 0;
  int rc = store_trial_add(h, t, &id);
  if (rc != 0) TEST_FAIL("store_trial_add: %d %s", rc, hist_errmsg(h));
  ASSERT_GE_INT(id, 1);
  return id;
}

/* A second, plain connection, to look at the file the way a user would. */
static sqlite3 *raw_open(const char *path) {
  sqlite3 *db = NULL;
  ASSERT_EQ_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  return db;
}

static int64_t raw_int(sqlite3 *db, const char *sql) {
  sqlite3_stmt *s = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
    TEST_FAIL("prepare %s: %s", sql, sqlite3_errmsg(db));
  ASSERT_EQ_INT(sqlite3_step(s), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  return v;
}

/* Copies the first column of the first row as text ("(null)" for NULL). */
static void raw_text(sqlite3 *db, const char *sql, char *out, size_t n) {
  sqlite3_stmt *s = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
    TEST_FAIL("prepare %s: %s", sql, sqlite3_errmsg(db));
  ASSERT_EQ_INT(sqlite3_step(s), SQLITE_ROW);
  const unsigned char *t = sqlite3_column_text(s, 0);
  snprintf(out, n, "%s", t ? (const char *)t : "(null)");
  sqlite3_finalize(s);
}

/* The first step of the query plan names the index. */
static void expect_plan(sqlite3 *db, const char *sql, const char *index) {
  char q[1024];
  snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", sql);
  sqlite3_stmt *s;
  if (sqlite3_prepare_v2(db, q, -1, &s, NULL) != SQLITE_OK)
    TEST_FAIL("prepare %s: %s", q, sqlite3_errmsg(db));
  ASSERT_EQ_INT(sqlite3_step(s), SQLITE_ROW);
  ASSERT_CONTAINS((const char *)sqlite3_column_text(s, 3), index);
  sqlite3_finalize(s);
}

typedef struct {
  char *lines[32];
  int n;
  int stop_after; /* 0: never stop */
} collect;

static int collect_line(void *ctx, const char *line) {
  collect *c = ctx;
  ASSERT_LT_INT(c->n, 32);
  c->lines[c->n++] = strdup(line);
  if (c->stop_after && c->n >= c->stop_after) return 7;
  return 0;
}

static void collect_free(collect *c) {
  for (int i = 0; i < c->n; i++) free(c->lines[i]);
  c->n = 0;
}

static void export_ok(hist *h, const char *fmt, collect *c) {
  char err[256] = "";
  int rc = hist_export(h, fmt, collect_line, c, err, sizeof(err));
  if (rc != 0) TEST_FAIL("hist_export(%s): %d %s", fmt, rc, err);
}

static int64_t count_trials(hist *h) {
  collect c = {0};
  export_ok(h, "jsonl", &c);
  int n = c.n;
  collect_free(&c);
  return n;
}

TEST(open_creates_schema_in_wal) {
  tmp t;
  tmp_init(&t);
  hist *h = open_rw(t.db);
  struct stat sb;
  ASSERT_EQ_INT(stat(t.db, &sb), 0);

  sqlite3 *db = raw_open(t.db);
  char mode[32];
  raw_text(db, "PRAGMA journal_mode", mode, sizeof(mode));
  ASSERT_EQ_STR(mode, "wal");
  ASSERT_EQ_INT(raw_int(db, "PRAGMA user_version"), 4);
  ASSERT_EQ_INT(raw_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND"
                            " name IN ('sessions', 'trials')"),
                2);
  ASSERT_EQ_INT(raw_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND"
                            " name IN ('trials_best', 'trials_session', 'trials_digest',"
                            " 'trials_kernel', 'trials_prior')"),
                5);
  /* The text SQLite keeps for a version 1 file once upgraded (ALTER TABLE
   * appends ", <column>"), byte for byte: new and upgraded files match. */
  char sql[2048];
  raw_text(db, "SELECT sql FROM sqlite_schema WHERE name = 'trials'", sql, sizeof(sql));
  ASSERT_EQ_STR(sql,
                "CREATE TABLE trials ( id INTEGER PRIMARY KEY, session INTEGER REFERENCES"
                " sessions(id), task TEXT NOT NULL, size TEXT NOT NULL, config TEXT NOT NULL,"
                " key TEXT NOT NULL, compiler TEXT NOT NULL, status TEXT NOT NULL, error TEXT,"
                " costs TEXT NOT NULL, mean_s REAL, gflops REAL, flops INTEGER NOT NULL,"
                " runner TEXT, build_s REAL, timestamp_ms INTEGER NOT NULL, number INTEGER NOT"
                " NULL, repeat INTEGER NOT NULL, compiler_id TEXT, device TEXT, median_s REAL,"
                " std_s REAL, calls INTEGER, clock TEXT, timing TEXT NOT NULL DEFAULT '{}',"
                " reused INTEGER REFERENCES trials(id), digest TEXT, kernel TEXT, checked"
                " INTEGER NOT NULL DEFAULT 0, builder TEXT, bytes INTEGER, gbps REAL,"
                " confirmed_s REAL, confirm_costs TEXT, retried_cv REAL)");
  raw_text(db, "SELECT sql FROM sqlite_schema WHERE name = 'sessions'", sql, sizeof(sql));
  ASSERT_EQ_STR(sql,
                "CREATE TABLE sessions ( id INTEGER PRIMARY KEY, task TEXT NOT NULL, size TEXT"
                " NOT NULL, key TEXT NOT NULL, strategy TEXT NOT NULL, compiler TEXT NOT NULL,"
                " owner TEXT, trials INTEGER NOT NULL, seed INTEGER NOT NULL, state TEXT NOT"
                " NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, spec BLOB,"
                " message TEXT, workload TEXT)");
  /* Reuse looks trials up by digest now. */
  ASSERT_EQ_INT(raw_int(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'trials_reuse'"),
                0);
  /* The queries ktune best and reuse run must use an index, not scan. */
  expect_plan(db,
              "SELECT config FROM trials WHERE status = 'ok' AND task = 'a' AND size = '{}'"
              " AND key = 'k' ORDER BY mean_s LIMIT 1",
              "trials_best");
  expect_plan(db,
              "SELECT config FROM trials WHERE status = 'ok' AND mean_s IS NOT NULL AND"
              " task = 'a' AND size = '{}' AND kernel = 'x' ORDER BY mean_s, id LIMIT 1",
              "trials_kernel");
  expect_plan(db,
              "SELECT id FROM trials WHERE status = 'ok' AND digest = 'x' AND mean_s IS NOT"
              " NULL ORDER BY id DESC LIMIT 1",
              "trials_digest");
  sqlite3_close(db);

  int64_t sid = add_session(h, "rpi4");
  hist_trial tr = ok_trial(sid, 1e-3);
  add_trial(h, &tr);
  hist_close(h);

  /* Reopening finds the schema in place and keeps the data; FULL sync too. */
  char err[256] = "";
  ASSERT_EQ_INT(hist_open(t.db, 1, &h, err, sizeof(err)), 0);
  int64_t n = -1;
  ASSERT_EQ_INT(hist_trial_count(h, sid, &n), 0);
  ASSERT_EQ_INT(n, 1);
  int64_t sid2 = add_session(h, "rpi4");
  ASSERT_EQ_INT(sid2, sid + 1);
  hist_close(h);
  tmp_free(&t);
}

TEST(session_and_trial_round_trip) {
  tmp t;
  tmp_init(&t);
  hist *h = open_rw(t.db);
  int64_t sid = add_session(h, "rpi4");
  int64_t other = add_session(h, "x86");

  sqlite3 *db = raw_open(t.db);
  char buf[256];
  char sql[256];
  snprintf(sql, sizeof(sql),
           "SELECT task || '|' || size || '|' || key || '|' || strategy || '|' || compiler"
           " || '|' || owner || '|' || trials || '|' || seed || '|' || state || '|' ||"
           " hex(spec) FROM sessions WHERE id = %lld",
           (long long)sid);
  raw_text(db, sql, buf, sizeof(buf));
  /* size is stored canonical: keys sorted, compact. */
  ASSERT_EQ_STR(buf,
                "matmul|{\"K\":64,\"M\":64,\"N\":64}|rpi4|random|tcc|alice|10|7|running|"
                "01020003");
  snprintf(sql, sizeof(sql), "SELECT created_ms FROM sessions WHERE id = %lld", (long long)sid);
  int64_t created = raw_int(db, sql);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  ASSERT_GE_INT(created, now - 60000);
  ASSERT_GE_INT(now, created);

  usleep(5000);
  ASSERT_EQ_INT(store_session_update(h, sid, "queued", "waits for a runner with key rpi4"), 0);
  snprintf(sql, sizeof(sql), "SELECT state || '|' || message FROM sessions WHERE id = %lld",
           (long long)sid);
  raw_text(db, sql, buf, sizeof(buf));
  ASSERT_EQ_STR(buf, "queued|waits for a runner with key rpi4");
  /* A NULL message clears it: it said why, and that no longer holds. */
  ASSERT_EQ_INT(store_session_update(h, sid, "done", NULL), 0);
  snprintf(sql, sizeof(sql), "SELECT state || '|' || coalesce(message, 'none') FROM sessions"
           " WHERE id = %lld", (long long)sid);
  raw_text(db, sql, buf, sizeof(buf));
  ASSERT_EQ_STR(buf, "done|none");
  snprintf(sql, sizeof(sql), "SELECT updated_ms - created_ms FROM sessions WHERE id = %lld",
           (long long)sid);
  ASSERT_GE_INT(raw_int(db, sql), 5);
  snprintf(sql, sizeof(sql), "SELECT state FROM sessions WHERE id = %lld", (long long)other);
  raw_text(db, sql, buf, sizeof(buf));
  ASSERT_EQ_STR(buf, "running");

  ASSERT_LT_INT(store_session_update(h, 999, "done", NULL), 0);
  ASSERT_CONTAINS(hist_errmsg(h), "no session 999");

  hist_trial tr = ok_trial(sid, 1e-3);
  int64_t t1 = add_trial(h, &tr);
  int64_t t2 = add_trial(h, &tr);
  ASSERT_EQ_INT(t2, t1 + 1);
  hist_trial bad = ok_trial(sid, 0);
  bad.status = "COMPILE_ERROR";
  bad.error = "matmul.c:3: error";
  bad.costs = NULL;
  bad.ncosts = 0;
  bad.runner = NULL;
  add_trial(h, &bad);

  int64_t n = -1;
  ASSERT_EQ_INT(hist_trial_count(h, sid, &n), 0);
  ASSERT_EQ_INT(n, 3);
  ASSERT_EQ_INT(hist_trial_count(h, other, &n), 0);
  ASSERT_EQ_INT(n, 0);

  snprintf(sql, sizeof(sql),
           "SELECT config || '|' || costs || '|' || mean_s || '|' || runner || '|' ||"
           " timestamp_ms || '|' || number || '|' || repeat FROM trials WHERE id = %lld",
           (long long)t1);
  raw_text(db, sql, buf, sizeof(buf));
  ASSERT_EQ_STR(buf, "{\"TI\":8,\"TJ\":16}|[0.0015,0.00125,0.001]|0.001|pi-1|1795827723456|10|3");
  /* Never timed: no latency rather than a zero that reads as fastest. */
  ASSERT_EQ_INT(raw_int(db, "SELECT count(*) FROM trials WHERE status = 'COMPILE_ERROR' AND"
                            " mean_s IS NULL AND gflops IS NULL AND runner IS NULL AND"
                            " costs = '[]'"),
                1);
  sqlite3_close(db);
  hist_close(h);
  tmp_free(&t);
}

TEST(trial_input_is_checked) {
  tmp t;
  tmp_init(&t);
  hist *h = open_rw(t.db);
  int64_t sid = add_session(h, "rpi4");
  hist_trial tr = ok_trial(sid, 1e-3);
  tr.config_json = "{\"TI\":8,";
  ASSERT_LT_INT(store_trial_add(h, &tr, NULL), 0);
  ASSERT_CONTAINS(hist_errmsg(h), "trial config is not valid JSON");
  tr.config_json = "[8,16]";
  ASSERT_LT_INT(store_trial_add(h, &tr, NULL), 0);
  ASSERT_CONTAINS(hist_errmsg(h), "trial config must be a JSON object");
  tr = ok_trial(sid, 1e-3);
  tr.task = NULL;
  ASSERT_LT_INT(store_trial_add(h, &tr, NULL), 0);
  ASSERT_CONTAINS(hist_errmsg(h), "trial has no task");
  tr = ok_trial(sid, 1e-3);
  double nan_costs[] = {1e-3, NAN};
  tr.costs = nan_costs;
  tr.ncosts = 2;
  ASSERT_LT_INT(store_trial_add(h, &tr, NULL), 0);
  ASSERT_CONTAINS(hist_errmsg(h), "not a finite number");
  tr = ok_trial(sid, 1e-3);
  tr.digest = "ABC";
  ASSERT_LT_INT(store_trial_add(h, &tr, NULL), 0);
  ASSERT_CONTAINS(hist_errmsg(h), "trial digest is not 64 lowercase hex digits");
  tr = ok_trial(sid, 1e-3);
  tr.kernel = "xyz";
  ASSERT_LT_INT(store_trial_add(h, &tr, NULL), 0);
  ASSERT_CONTAINS(hist_errmsg(h), "trial kernel digest is not");
  /* foreign_keys is on: a trial of a session that does not exist is refused. */
  tr = ok_trial(sid + 100, 1e-3);
  ASSERT_LT_INT(store_trial_add(h, &tr, NULL), 0);
  ASSERT_CONTAINS(hist_errmsg(h), "FOREIGN KEY");
  /* Session 0 means none (a trial outside any session). */
  tr = ok_trial(0, 1e-3);
  add_trial(h, &tr);
  /* Failures leave the handle usable and nothing half-written. */
  int64_t n = -1;
  ASSERT_EQ_INT(hist_trial_count(h, sid, &n), 0);
  ASSERT_EQ_INT(n, 0);
  ASSERT_EQ_INT(count_trials(h), 1);
  hist_close(h);
  tmp_free(&t);
}

static void check_iso(const char *s) {
  int y, mo, d, hh, mm, ss, ms;
  char z = 0;
  ASSERT_EQ_INT(strlen(s), 24);
  ASSERT_EQ_INT(sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &y, &mo, &d, &hh, &mm, &ss, &ms, &z), 8);
  ASSERT_EQ_INT(z, 'Z');
}

TEST(export_jsonl) {
  tmp t;
  tmp_init(&t);
  hist *h = open_rw(t.db);
  int64_t sid = add_session(h, "rpi4");
  hist_trial a = ok_trial(sid, 1.25e-3);
  add_trial(h, &a);
  hist_trial b = ok_trial(sid, 0);
  b.status = "WRONG_ANSWER";
  b.error = "C[3] = 1.5, expected 2 (\"rtol\" 1e-4)";
  double one[] = {2.0};
  b.costs = one;
  b.ncosts = 1;
  b.mean_s = 2.0;
  b.gflops = 0.000262144;
  b.runner = "";
  b.timestamp_ms = TS1 + 1 - 450; /* .007 */
  b.config_json = "{ \"TJ\": 32, \"TI\": 4 }";
  b.checked = 0;
  b.kernel = NULL;
  b.builder = NULL;
  b.digest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  add_trial(h, &b);

  collect c = {0};
  export_ok(h, "jsonl", &c);
  ASSERT_EQ_INT(c.n, 2);
  for (int i = 0; i < c.n; i++) {
    size_t len = strlen(c.lines[i]);
    ASSERT(len > 0 && c.lines[i][len - 1] != '\n');
    ASSERT_NULL(strchr(c.lines[i], '\n'));
  }

  json_error_t je;
  json_t *o = json_loads(c.lines[0], 0, &je);
  if (!o) TEST_FAIL("line 1 is not JSON: %s: %s", je.text, c.lines[0]);
  ASSERT(json_is_object(o));
  ASSERT_EQ_STR(json_string_value(json_object_get(o, "task")), "matmul");
  json_t *size = json_object_get(o, "size");
  ASSERT(json_is_object(size));
  ASSERT_EQ_INT(json_object_size(size), 3);
  ASSERT_EQ_INT(json_integer_value(json_object_get(size, "M")), 64);
  ASSERT(json_is_integer(json_object_get(size, "K")));
  json_t *config = json_object_get(o, "config");
  ASSERT(json_is_object(config));
  ASSERT_EQ_INT(json_object_size(config), 2);
  ASSERT_EQ_INT(json_integer_value(json_object_get(config, "TI")), 8);
  ASSERT_EQ_INT(json_integer_value(json_object_get(config, "TJ")), 16);
  ASSERT_EQ_STR(json_string_value(json_object_get(o, "key")), "rpi4");
  ASSERT_EQ_STR(json_string_value(json_object_get(o, "compiler")), "tcc");
  ASSERT_EQ_STR(json_string_value(json_object_get(o, "status")), "ok");
  ASSERT(json_is_null(json_object_get(o, "error")));
  json_t *costs = json_object_get(o, "costs_s");
  ASSERT(json_is_array(costs));
  ASSERT_EQ_INT(json_array_size(costs), 3);
  for (size_t i = 0; i < 3; i++) {
    ASSERT(json_is_real(json_array_get(costs, i)));
    ASSERT_EQ_DBL(json_real_value(json_array_get(costs, i)), costs3[i], 0);
  }
  ASSERT(json_is_real(json_object_get(o, "mean_s")));
  ASSERT_EQ_DBL(json_real_value(json_object_get(o, "mean_s")), 1.25e-3, 0);
  ASSERT(json_is_real(json_object_get(o, "gflops")));
  ASSERT_EQ_DBL(json_real_value(json_object_get(o, "gflops")), a.gflops, 0);
  ASSERT(json_is_integer(json_object_get(o, "flops")));
  ASSERT_EQ_INT(json_integer_value(json_object_get(o, "flops")), 524288);
  ASSERT_EQ_STR(json_string_value(json_object_get(o, "runner")), "pi-1");
  ASSERT(json_is_real(json_object_get(o, "build_s")));
  ASSERT_EQ_DBL(json_real_value(json_object_get(o, "build_s")), 0.0005, 0);
  const char *stamp = json_string_value(json_object_get(o, "timestamp"));
  ASSERT_NOT_NULL(stamp);
  check_iso(stamp);
  ASSERT_EQ_STR(stamp, "2026-11-28T01:02:03.456Z");
  ASSERT_EQ_INT(json_integer_value(json_object_get(o, "timestamp_ms")), TS1);
  ASSERT(json_is_integer(json_object_get(o, "session")));
  ASSERT_EQ_INT(json_integer_value(json_object_get(o, "session")), sid);
  ASSERT_EQ_INT(json_integer_value(json_object_get(o, "number")), 10);
  ASSERT_EQ_INT(json_integer_value(json_object_get(o, "repeat")), 3);
  ASSERT(json_is_integer(json_object_get(o, "id")));
  int64_t id0 = json_integer_value(json_object_get(o, "id"));
  /* Short values print short: the line is meant to be read too. */
  ASSERT_CONTAINS(c.lines[0], "\"costs_s\":[0.0015,0.00125,0.001]");
  ASSERT(json_is_null(json_object_get(o, "digest")));
  ASSERT_EQ_STR(json_string_value(json_object_get(o, "kernel")), KERNEL_A);
  ASSERT(json_is_true(json_object_get(o, "checked")));
  ASSERT_EQ_STR(json_string_value(json_object_get(o, "builder")), "b-1");
  json_decref(o);

  o = json_loads(c.lines[1], 0, &je);
  if (!o) TEST_FAIL("line 2 is not JSON: %s: %s", je.text, c.lines[1]);
  ASSERT_EQ_INT(json_integer_value(json_object_get(o, "id")), id0 + 1);
  ASSERT_EQ_STR(json_string_value(json_object_get(o, "status")), "WRONG_ANSWER");
  ASSERT_EQ_STR(json_string_value(json_object_get(o, "error")), b.error);
  ASSERT(json_is_null(json_object_get(o, "runner")));
  config = json_object_get(o, "config");
  ASSERT_EQ_INT(json_integer_value(json_object_get(config, "TI")), 4);
  ASSERT_EQ_INT(json_integer_value(json_object_get(config, "TJ")), 32);
  costs = json_object_get(o, "costs_s");
  ASSERT_EQ_INT(json_array_size(costs), 1);
  ASSERT(json_is_real(json_array_get(costs, 0)));
  ASSERT_EQ_DBL(json_real_value(json_array_get(costs, 0)), 2.0, 0);
  ASSERT(json_is_real(json_object_get(o, "mean_s")));
  ASSERT_EQ_DBL(json_real_value(json_object_get(o, "mean_s")), 2.0, 0);
  ASSERT_EQ_STR(json_string_value(json_object_get(o, "timestamp")), "2026-11-28T01:02:03.007Z");
  ASSERT_EQ_STR(json_string_value(json_object_get(o, "digest")), b.digest);
  ASSERT(json_is_null(json_object_get(o, "kernel")));
  ASSERT(json_is_false(json_object_get(o, "checked")));
  ASSERT(json_is_null(json_object_get(o, "builder")));
  json_decref(o);
  collect_free(&c);

  /* A callback's non-zero return stops the export and is returned. */
  c.stop_after = 1;
  char err[256] = "";
  ASSERT_EQ_INT(hist_export(h, "jsonl", collect_line, &c, err, sizeof(err)), 7);
  ASSERT_EQ_INT(c.n, 1);
  collect_free(&c);
  hist_close(h);
  tmp_free(&t);
}

TEST(export_jsonl_untimed_trial_has_nulls) {
  tmp t;
  tmp_init(&t);
  hist *h = open_rw(t.db);
  hist_trial tr = ok_trial(0, 0);
  tr.status = "RUNNER_LOST";
  tr.costs = NULL;
  tr.ncosts = 0;
  tr.gflops = 0;
  add_trial(h, &tr);
  collect c = {0};
  export_ok(h, "jsonl", &c);
  ASSERT_EQ_INT(c.n, 1);
  json_t *o = json_loads(c.lines[0], 0, NULL);
  ASSERT_NOT_NULL(o);
  ASSERT(json_is_null(json_object_get(o, "session")));
  ASSERT(json_is_null(json_object_get(o, "mean_s")));
  ASSERT(json_is_null(json_object_get(o, "gflops")));
  ASSERT(json_is_array(json_object_get(o, "costs_s")));
  ASSERT_EQ_INT(json_array_size(json_object_get(o, "costs_s")), 0);
  json_decref(o);
  collect_free(&c);
  hist_close(h);
  tmp_free(&t);
}

TEST(export_jsonl_odd_text_stays_valid) {
  tmp t;
  tmp_init(&t);
  hist *h = open_rw(t.db);
  hist_trial tr = ok_trial(0, 1e-3);
  tr.status = "COMPILE_ERROR";
  tr.error = "bad byte \xff, tab\t, bell\a, quote \" back \\ caf\xc3\xa9";
  add_trial(h, &tr);
  collect c = {0};
  export_ok(h, "jsonl", &c);
  ASSERT_EQ_INT(c.n, 1);
  json_error_t je;
  json_t *o = json_loads(c.lines[0], 0, &je);
  if (!o) TEST_FAIL("not JSON: %s: %s", je.text, c.lines[0]);
  ASSERT_EQ_STR(json_string_value(json_object_get(o, "error")),
                "bad byte \xef\xbf\xbd, tab\t, bell\a, quote \" back \\ caf\xc3\xa9");
  json_decref(o);
  collect_free(&c);
  hist_close(h);
  tmp_free(&t);
}

TEST(export_csv) {
  tmp t;
  tmp_init(&t);
  hist *h = open_rw(t.db);
  int64_t sid = add_session(h, "rpi4");
  hist_trial tr = ok_trial(sid, 1e-3);
  tr.status = "COMPILE_ERROR";
  tr.error = "x.c:1: expected ',' or \";\"\nsecond line";
  add_trial(h, &tr);
  hist_trial ok = ok_trial(sid, 1e-3);
  ok.compiler = "gcc -O3";
  ok.kernel = NULL;
  ok.checked = 0;
  ok.builder = NULL;
  add_trial(h, &ok);

  collect c = {0};
  export_ok(h, "csv", &c);
  ASSERT_EQ_INT(c.n, 3);
  ASSERT_EQ_STR(c.lines[0],
                "id,session,task,size,config,key,compiler,status,error,costs_s,mean_s,gflops,"
                "flops,runner,build_s,timestamp,timestamp_ms,number,repeat,compiler_id,device,"
                "median_s,std_s,calls,clock,timing,reused_from,digest,kernel,checked,builder,"
                "bytes,gbps,confirmed_s,confirm_costs_s,retried_cv");
  char want[512];
  snprintf(want, sizeof(want),
           "1,%lld,matmul,\"{\"\"K\"\":64,\"\"M\"\":64,\"\"N\"\":64}\",\"{\"\"TI\"\":8,"
           "\"\"TJ\"\":16}\",rpi4,tcc,COMPILE_ERROR,\"x.c:1: expected ',' or \"\";\"\"\n"
           "second line\",\"[0.0015,0.00125,0.001]\",0.001,0.524288,524288,pi-1,0.0005,"
           "2026-11-28T01:02:03.456Z,1795827723456,10,3,,,0,0,0,,{},,," KERNEL_A ",true,b-1,,,,,",
           (long long)sid);
  ASSERT_EQ_STR(c.lines[1], want);
  ASSERT_CONTAINS(c.lines[2], ",rpi4,gcc -O3,ok,,\"[");
  ASSERT_CONTAINS(c.lines[2], ",{},,,,false,");
  collect_free(&c);

  hist_close(h);
  tmp_free(&t);

  /* An empty history is just the header. */
  tmp t2;
  tmp_init(&t2);
  h = open_rw(t2.db);
  export_ok(h, "csv", &c);
  ASSERT_EQ_INT(c.n, 1);
  collect_free(&c);
  export_ok(h, "jsonl", &c);
  ASSERT_EQ_INT(c.n, 0);
  hist_close(h);
  tmp_free(&t2);
}

TEST(export_unknown_format) {
  tmp t;
  tmp_init(&t);
  hist *h = open_rw(t.db);
  collect c = {0};
  char err[256] = "";
  ASSERT_LT_INT(hist_export(h, "xml", collect_line, &c, err, sizeof(err)), 0);
  ASSERT_CONTAINS(err, "xml");
  ASSERT_CONTAINS(err, "jsonl");
  ASSERT_CONTAINS(err, "csv");
  ASSERT_CONTAINS(hist_errmsg(h), "jsonl");
  ASSERT_EQ_INT(c.n, 0);
  hist_close(h);
  tmp_free(&t);
}

#define SIZE64 "{\"K\":64,\"M\":64,\"N\":64}"

static int best_of(hist *h, const hist_best_query *q, hist_best_row *b) {
  int rc = hist_best(h, q, b);
  if (rc < 0) TEST_FAIL("hist_best: %d %s", rc, hist_errmsg(h));
  return rc;
}

static int64_t count_of(hist *h, const hist_best_query *q) {
  int64_t n = -1;
  int rc = hist_count_ok(h, q, &n);
  if (rc != 0) TEST_FAIL("hist_count_ok: %d %s", rc, hist_errmsg(h));
  return n;
}

TEST(best_picks_fastest_ok) {
  tmp t;
  tmp_init(&t);
  hist *h = open_rw(t.db);
  hist_best_row b;
  hist_best_query q = {.task = "matmul", .size_json = SIZE64, .key = "rpi4"};
  ASSERT_EQ_INT(best_of(h, &q, &b), 0);
  ASSERT_NULL(b.config_json);
  ASSERT_EQ_INT(count_of(h, &q), 0);

  int64_t sid = add_session(h, "rpi4");
  hist_trial tr = ok_trial(sid, 3e-3);
  tr.config_json = "{\"TI\":4,\"TJ\":8}";
  add_trial(h, &tr);
  tr = ok_trial(sid, 1e-3); /* the answer */
  tr.config_json = "{\"TI\":16,\"TJ\":32}";
  tr.compiler = "gcc -O3";
  tr.compiler_id = "gcc 12.2.0 -O3";
  tr.timing_json = "{\"number\":10,\"repeat\":3}";
  int64_t answer = add_trial(h, &tr);
  tr = ok_trial(sid, 2e-3);
  add_trial(h, &tr);
  tr = ok_trial(sid, 1e-6); /* faster but wrong */
  tr.status = "WRONG_ANSWER";
  tr.config_json = "{\"TI\":64,\"TJ\":64}";
  add_trial(h, &tr);
  tr = ok_trial(sid, 5e-4); /* another device key */
  tr.key = "x86";
  tr.config_json = "{\"TI\":32,\"TJ\":32}";
  add_trial(h, &tr);
  tr = ok_trial(sid, 1e-5); /* another size */
  tr.size_json = "{\"K\":8,\"M\":8,\"N\":8}";
  add_trial(h, &tr);
  tr = ok_trial(sid, 1e-5); /* another task */
  tr.task = "conv2d";
  add_trial(h, &tr);

  ASSERT_EQ_INT(best_of(h, &q, &b), 1);
  ASSERT_EQ_INT(b.id, answer);
  ASSERT_EQ_INT(b.session, sid);
  ASSERT_EQ_STR(b.config_json, "{\"TI\":16,\"TJ\":32}");
  ASSERT_EQ_STR(b.compiler, "gcc -O3");
  ASSERT_EQ_STR(b.compiler_id, "gcc 12.2.0 -O3");
  ASSERT_EQ_STR(b.key, "rpi4");
  ASSERT_EQ_STR(b.runner, "pi-1");
  ASSERT_EQ_STR(b.builder, "b-1");
  ASSERT_EQ_STR(b.timing_json, "{\"number\":10,\"repeat\":3}");
  ASSERT_EQ_STR(b.kernel, KERNEL_A);
  ASSERT_EQ_INT(b.checked, 1);
  ASSERT_EQ_DBL(b.mean_s, 1e-3, 0);
  ASSERT_EQ_DBL(b.gflops, 524288.0 / 1e-3 / 1e9, 1e-12);
  hist_best_row_clear(&b);
  ASSERT_NULL(b.config_json);
  ASSERT_EQ_INT(count_of(h, &q), 3);

  /* Any key; a size written differently is the same size. */
  hist_best_query any = {.task = "matmul", .size_json = "{ \"N\": 64, \"M\": 64, \"K\": 64 }"};
  ASSERT_EQ_INT(best_of(h, &any, &b), 1);
  ASSERT_EQ_STR(b.config_json, "{\"TI\":32,\"TJ\":32}");
  ASSERT_EQ_DBL(b.mean_s, 5e-4, 0);
  hist_best_row_clear(&b);

  /* Narrowed by compiler and by timing, written in any key order. */
  hist_best_query narrow = q;
  narrow.compiler = "tcc";
  ASSERT_EQ_INT(best_of(h, &narrow, &b), 1);
  ASSERT_EQ_DBL(b.mean_s, 2e-3, 0);
  hist_best_row_clear(&b);
  narrow = q;
  narrow.timing_json = "{\"repeat\":3,\"number\":10}";
  ASSERT_EQ_INT(best_of(h, &narrow, &b), 1);
  ASSERT_EQ_INT(b.id, answer);
  hist_best_row_clear(&b);

  q.key = "rpi5";
  ASSERT_EQ_INT(best_of(h, &q, &b), 0);
  any.task = "gemv";
  ASSERT_EQ_INT(best_of(h, &any, &b), 0);
  any.task = "matmul";
  any.size_json = "{M=64}";
  ASSERT_LT_INT(hist_best(h, &any, &b), 0);
  ASSERT_CONTAINS(hist_errmsg(h), "not valid JSON");
  any.size_json = SIZE64;
  any.task = NULL;
  ASSERT_LT_INT(hist_best(h, &any, &b), 0);
  ASSERT_CONTAINS(hist_errmsg(h), "no task");
  hist_close(h);
  tmp_free(&t);
}

TEST(best_checked_only_ignores_unchecked) {
  tmp t;
  tmp_init(&t);
  hist *h = open_rw(t.db);
  int64_t sid = add_session(h, "rpi4");
  hist_trial tr = ok_trial(sid, 1e-4); /* fastest, measured with --no-check */
  tr.checked = 0;
  tr.config_json = "{\"TI\":1,\"TJ\":1}";
  add_trial(h, &tr);
  tr = ok_trial(sid, 1e-3);
  int64_t checked = add_trial(h, &tr);

  hist_best_query q = {.task = "matmul", .kernel = KERNEL_A, .size_json = SIZE64,
                       .checked_only = 1};
  hist_best_row b;
  ASSERT_EQ_INT(best_of(h, &q, &b), 1);
  ASSERT_EQ_INT(b.id, checked);
  ASSERT_EQ_INT(b.checked, 1);
  hist_best_row_clear(&b);
  ASSERT_EQ_INT(count_of(h, &q), 1);
  q.checked_only = 0;
  ASSERT_EQ_INT(best_of(h, &q, &b), 1);
  ASSERT_EQ_STR(b.config_json, "{\"TI\":1,\"TJ\":1}");
  ASSERT_EQ_INT(b.checked, 0);
  hist_best_row_clear(&b);
  ASSERT_EQ_INT(count_of(h, &q), 2);
  hist_close(h);
  tmp_free(&t);
}

TEST(best_of_a_kernel_ignores_other_kernels_of_the_name) {
  tmp t;
  tmp_init(&t);
  hist *h = open_rw(t.db);
  int64_t sid = add_session(h, "rpi4");
  hist_trial tr = ok_trial(sid, 1e-4); /* an older template of matmul */
  tr.kernel = KERNEL_B;
  tr.config_json = "{\"TI\":1,\"TJ\":1}";
  add_trial(h, &tr);
  tr = ok_trial(sid, 1e-4); /* recorded before kernels had digests */
  tr.kernel = NULL;
  add_trial(h, &tr);

  hist_best_query q = {.task = "matmul", .kernel = KERNEL_A, .size_json = SIZE64,
                       .checked_only = 1};
  hist_best_row b;
  ASSERT_EQ_INT(best_of(h, &q, &b), 0);
  ASSERT_EQ_INT(count_of(h, &q), 0);
  /* What ktune best reports then: trials of the name from other versions. */
  hist_best_query name = q;
  name.kernel = NULL;
  ASSERT_EQ_INT(count_of(h, &name), 2);

  tr = ok_trial(sid, 1e-3);
  int64_t mine = add_trial(h, &tr);
  ASSERT_EQ_INT(best_of(h, &q, &b), 1);
  ASSERT_EQ_INT(b.id, mine);
  ASSERT_EQ_STR(b.kernel, KERNEL_A);
  hist_best_row_clear(&b);
  q.kernel = KERNEL_B;
  ASSERT_EQ_INT(best_of(h, &q, &b), 1);
  ASSERT_EQ_STR(b.config_json, "{\"TI\":1,\"TJ\":1}");
  hist_best_row_clear(&b);
  hist_close(h);
  tmp_free(&t);
}

TEST(committed_survives_reopen) {
  tmp t;
  tmp_init(&t);
  hist *h = open_rw(t.db);
  ASSERT_EQ_INT(store_begin(h), 0);
  int64_t sid = add_session(h, "rpi4");
  for (int i = 0; i < 50; i++) {
    hist_trial tr = ok_trial(sid, 1e-3 + i * 1e-6);
    add_trial(h, &tr);
  }
  ASSERT_EQ_INT(store_session_update(h, sid, "done", NULL), 0);
  ASSERT_EQ_INT(store_commit(h), 0);
  hist_close(h);

  h = open_rw(t.db);
  int64_t n = -1;
  ASSERT_EQ_INT(hist_trial_count(h, sid, &n), 0);
  ASSERT_EQ_INT(n, 50);
  hist_close(h);

  /* A second begin inside a transaction is an error, not a silent nest. */
  h = open_rw(t.db);
  ASSERT_EQ_INT(store_begin(h), 0);
  ASSERT_LT_INT(store_begin(h), 0);
  ASSERT_EQ_INT(store_commit(h), 0);
  ASSERT_LT_INT(store_commit(h), 0);
  /* ... and the handle still works after those errors. */
  ASSERT_EQ_INT(store_begin(h), 0);
  hist_trial tr = ok_trial(sid, 1e-3);
  add_trial(h, &tr);
  ASSERT_EQ_INT(store_commit(h), 0);
  ASSERT_EQ_INT(hist_trial_count(h, sid, &n), 0);
  ASSERT_EQ_INT(n, 51);
  hist_close(h);
  tmp_free(&t);
}

TEST(uncommitted_is_lost_on_close) {
  tmp t;
  tmp_init(&t);
  hist *h = open_rw(t.db);
  int64_t sid = add_session(h, "rpi4");
  ASSERT_EQ_INT(store_begin(h), 0);
  hist_trial tr = ok_trial(sid, 1e-3);
  add_trial(h, &tr);
  add_trial(h, &tr);
  hist_close(h);

  h = open_rw(t.db);
  int64_t n = -1;
  ASSERT_EQ_INT(hist_trial_count(h, sid, &n), 0);
  ASSERT_EQ_INT(n, 0);
  hist_close(h);
  tmp_free(&t);
}

TEST(crash_keeps_committed_only) {
  tmp t;
  tmp_init(&t);
  fflush(NULL);
  pid_t pid = fork();
  ASSERT_GE_INT(pid, 0);
  if (pid == 0) {
    hist *h = NULL;
    char err[256];
    if (hist_open(t.db, 0, &h, err, sizeof(err)) != 0) _exit(10);
    if (store_begin(h) != 0) _exit(11);
    int64_t sid = add_session(h, "rpi4");
    for (int i = 0; i < 5; i++) {
      hist_trial tr = ok_trial(sid, 1e-3);
      if (store_trial_add(h, &tr, NULL) != 0) _exit(12);
    }
    if (store_commit(h) != 0) _exit(13);
    /* The next turn's writes are in flight when the tracker dies. */
    if (store_begin(h) != 0) _exit(14);
    for (int i = 0; i < 7; i++) {
      hist_trial tr = ok_trial(sid, 2e-3);
      if (store_trial_add(h, &tr, NULL) != 0) _exit(15);
    }
    if (store_session_update(h, sid, "done", NULL) != 0) _exit(16);
    kill(getpid(), SIGKILL);
    _exit(17);
  }
  int st = 0;
  ASSERT_EQ_INT(waitpid(pid, &st, 0), pid);
  if (!WIFSIGNALED(st)) TEST_FAIL("child exited with %d instead of dying", WEXITSTATUS(st));
  ASSERT_EQ_INT(WTERMSIG(st), SIGKILL);

  hist *h = open_rw(t.db);
  int64_t n = -1;
  ASSERT_EQ_INT(hist_trial_count(h, 1, &n), 0);
  ASSERT_EQ_INT(n, 5);
  hist_close(h);
  sqlite3 *db = raw_open(t.db);
  char state[32];
  raw_text(db, "SELECT state FROM sessions WHERE id = 1", state, sizeof(state));
  ASSERT_EQ_STR(state, "running");
  ASSERT_EQ_INT(raw_int(db, "SELECT count(*) FROM trials WHERE mean_s = 2e-3"), 0);
  sqlite3_close(db);
  tmp_free(&t);
}

/* A report's many reads see one version of the history while a tracker
 * goes on recording trials. */
TEST(a_read_snapshot_holds_while_the_writer_goes_on) {
  tmp t;
  tmp_init(&t);
  hist *w = open_rw(t.db);
  int64_t sid = add_session(w, "rpi4");
  hist_trial tr = ok_trial(sid, 1e-3);
  add_trial(w, &tr);
  hist *r = NULL;
  char err[256] = "";
  ASSERT_EQ_INT(hist_open_readonly(t.db, &r, err, sizeof(err)), 0);
  ASSERT_EQ_INT(hist_read_begin(r), 0);
  int64_t n = 0;
  ASSERT_EQ_INT(hist_trial_count(r, sid, &n), 0);
  ASSERT_EQ_INT(n, 1);
  add_trial(w, &tr);
  ASSERT_EQ_INT(hist_trial_count(r, sid, &n), 0);
  ASSERT_EQ_INT(n, 1); /* still the version it began with */
  ASSERT_EQ_INT(hist_read_end(r), 0);
  ASSERT_EQ_INT(hist_trial_count(r, sid, &n), 0);
  ASSERT_EQ_INT(n, 2);
  /* An end without a beginning says so. */
  ASSERT_LT_INT(hist_read_end(r), 0);
  hist_close(r);
  hist_close(w);
  tmp_free(&t);
}

TEST(reader_sees_only_committed_and_is_not_blocked) {
  tmp t;
  tmp_init(&t);
  hist *w = open_rw(t.db);
  int64_t sid = add_session(w, "rpi4");
  hist *r = NULL;
  char err[256] = "";
  ASSERT_EQ_INT(hist_open_readonly(t.db, &r, err, sizeof(err)), 0);
  ASSERT_EQ_INT(store_begin(w), 0);
  hist_trial tr = ok_trial(sid, 1e-3);
  add_trial(w, &tr);
  ASSERT_EQ_INT(count_trials(r), 0);
  ASSERT_EQ_INT(store_commit(w), 0);
  ASSERT_EQ_INT(count_trials(r), 1);
  hist_best_query q = {.task = "matmul", .size_json = tr.size_json, .key = "rpi4"};
  hist_best_row b;
  ASSERT_EQ_INT(hist_best(r, &q, &b), 1);
  ASSERT_EQ_STR(b.config_json, "{\"TI\":8,\"TJ\":16}");
  hist_best_row_clear(&b);
  /* A read-only handle refuses writes. */
  ASSERT_LT_INT(store_trial_add(r, &tr, NULL), 0);
  ASSERT_CONTAINS(hist_errmsg(r), "readonly");
  hist_close(r);
  hist_close(w);
  tmp_free(&t);
}

TEST(readonly_missing_path) {
  tmp t;
  tmp_init(&t);
  hist *h = (hist *)&t; /* must be reset to NULL */
  char err[256] = "";
  ASSERT_LT_INT(hist_open_readonly(t.db, &h, err, sizeof(err)), 0);
  ASSERT_NULL(h);
  char want[256];
  snprintf(want, sizeof(want), "no history at %s: run `ktune tune` first or pass --db", t.db);
  ASSERT_EQ_STR(err, want);
  /* ... and it did not create the file. */
  ASSERT_LT_INT(access(t.db, F_OK), 0);
  tmp_free(&t);
}

TEST(not_a_history_is_refused) {
  tmp t;
  tmp_init(&t);
  char err[256] = "";
  hist *h = NULL;
  /* Text file. */
  FILE *f = fopen(t.db, "w");
  ASSERT_NOT_NULL(f);
  fputs("this is not a database, just some text that is long enough to be a header\n", f);
  fclose(f);
  ASSERT_LT_INT(hist_open(t.db, 0, &h, err, sizeof(err)), 0);
  ASSERT_CONTAINS(err, t.db);
  ASSERT_CONTAINS(err, "not a database");
  ASSERT_LT_INT(hist_open_readonly(t.db, &h, err, sizeof(err)), 0);
  ASSERT_CONTAINS(err, t.db);
  unlink(t.db);

  /* Someone else's SQLite file: neither written over nor read as ours. */
  sqlite3 *db = NULL;
  ASSERT_EQ_INT(sqlite3_open(t.db, &db), SQLITE_OK);
  ASSERT_EQ_INT(sqlite3_exec(db, "CREATE TABLE notes(x)", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  ASSERT_LT_INT(hist_open(t.db, 0, &h, err, sizeof(err)), 0);
  ASSERT_CONTAINS(err, "not a ktune history");
  ASSERT_LT_INT(hist_open_readonly(t.db, &h, err, sizeof(err)), 0);
  ASSERT_CONTAINS(err, "not a ktune history");
  unlink(t.db);

  /* A newer schema than this build knows. */
  h = open_rw(t.db);
  hist_close(h);
  db = raw_open(t.db);
  ASSERT_EQ_INT(sqlite3_exec(db, "PRAGMA user_version = 5", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  ASSERT_LT_INT(hist_open(t.db, 0, &h, err, sizeof(err)), 0);
  ASSERT_CONTAINS(err, "schema version 5");
  ASSERT_CONTAINS(err, "upgrade ktune");
  ASSERT_LT_INT(hist_open_readonly(t.db, &h, err, sizeof(err)), 0);
  ASSERT_CONTAINS(err, "upgrade ktune");

  /* A folder that does not exist. */
  char bad[200];
  snprintf(bad, sizeof(bad), "%s/nope/ktune.db", t.dir);
  ASSERT_LT_INT(hist_open(bad, 0, &h, err, sizeof(err)), 0);
  ASSERT_CONTAINS(err, bad);
  ASSERT_CONTAINS(err, "does not exist");
  tmp_free(&t);
}

/* A folder nobody can write, root included: creating a file in /proc
 * fails with ENOENT, which alone would read "No such file or directory". */
TEST(unwritable_folder_is_named) {
  char err[512] = "";
  hist *h = NULL;
  ASSERT_LT_INT(hist_open("/proc/ktune-test.db", 0, &h, err, sizeof(err)), 0);
  ASSERT_NULL(h);
  ASSERT_CONTAINS(err, "/proc/ktune-test.db");
  ASSERT_CONTAINS(err, "the folder /proc is not writable");
  /* Reading is another matter: there is simply no history there. */
  ASSERT_LT_INT(hist_open_readonly("/proc/ktune-test.db", &h, err, sizeof(err)), 0);
  ASSERT_CONTAINS(err, "no history at");
}

typedef struct {
  int64_t ids[8];
  uint64_t idx[8];
  uint32_t lost[8];
  int n;
} jobs_seen;

static int see_job(void *ctx, int64_t id, uint64_t index, uint32_t lost) {
  jobs_seen *j = ctx;
  j->ids[j->n] = id;
  j->idx[j->n] = index;
  j->lost[j->n++] = lost;
  return 0;
}

static int see_session(void *ctx, int64_t id, const void *spec, size_t len, const char *owner,
                       int64_t created) {
  jobs_seen *j = ctx;
  ASSERT_EQ_INT(len, 4);
  ASSERT(memcmp(spec, "\x01\x02\x00\x03", 4) == 0);
  ASSERT_EQ_STR(owner, "alice");
  ASSERT_GE_INT(created, 1);
  j->ids[j->n++] = id;
  return 0;
}

typedef struct {
  char configs[4][64], status[4][16];
  double mean[4];
  int n, stop_at;
} trials_seen;

static int see_trial(void *ctx, const char *config, const char *status, double mean_s) {
  trials_seen *ts = ctx;
  ASSERT_LT_INT(ts->n, 4);
  snprintf(ts->configs[ts->n], sizeof(ts->configs[0]), "%s", config);
  snprintf(ts->status[ts->n], sizeof(ts->status[0]), "%s", status);
  ts->mean[ts->n++] = mean_s;
  return ts->stop_at && ts->n >= ts->stop_at ? 9 : 0;
}

TEST(jobs_and_unfinished_sessions_resume) {
  tmp t;
  tmp_init(&t);
  hist *h = open_rw(t.db);
  int64_t a = add_session(h, "x"), b = add_session(h, "y");
  ASSERT_EQ_INT(store_session_update(h, b, "done", NULL), 0);
  int64_t j1, j2, j3;
  ASSERT_EQ_INT(store_job_add(h, a, 5, "{\"TJ\":2, \"TI\":1}", &j1), 0);
  ASSERT_EQ_INT(store_job_add(h, a, 9, "{\"TI\":3,\"TJ\":4}", &j2), 0);
  ASSERT_EQ_INT(store_job_add(h, b, 1, "{\"TI\":1,\"TJ\":1}", &j3), 0);
  ASSERT_EQ_INT(store_job_lost(h, j2, 2), 0);
  ASSERT_EQ_INT(store_job_delete(h, j1), 0);
  ASSERT_LT_INT(store_job_delete(h, j1), 0); /* already gone */
  ASSERT_LT_INT(store_job_add(h, a, 1, "not json", NULL), 0);
  hist_close(h);

  h = open_rw(t.db);
  jobs_seen js = {0};
  ASSERT_EQ_INT(store_jobs_of(h, a, see_job, &js), 0);
  ASSERT_EQ_INT(js.n, 1);
  ASSERT_EQ_INT(js.ids[0], j2);
  ASSERT_EQ_U64(js.idx[0], 9);
  ASSERT_EQ_INT(js.lost[0], 2);
  jobs_seen ss = {0};
  ASSERT_EQ_INT(store_sessions_unfinished(h, see_session, &ss), 0);
  ASSERT_EQ_INT(ss.n, 1);
  ASSERT_EQ_INT(ss.ids[0], a);

  /* Summary: counts and the fastest ok trial of the session only. */
  hist_trial slow = ok_trial(a, 2e-3), fast = ok_trial(a, 1e-3), bad = ok_trial(a, 5e-4);
  fast.config_json = "{\"TI\":16,\"TJ\":4}";
  bad.status = "WRONG_ANSWER";
  add_trial(h, &slow);
  add_trial(h, &fast);
  add_trial(h, &bad);
  uint32_t n = 0, failed = 0;
  char *best = NULL;
  double mean = 0;
  ASSERT_EQ_INT(hist_session_summary(h, a, &n, &failed, &best, &mean), 0);
  ASSERT_EQ_INT(n, 3);
  ASSERT_EQ_INT(failed, 1);
  ASSERT_EQ_STR(best, "{\"TI\":16,\"TJ\":4}");
  ASSERT_EQ_DBL(mean, 1e-3, 1e-12);
  free(best);
  ASSERT_EQ_INT(hist_session_summary(h, b, &n, &failed, &best, &mean), 0);
  ASSERT_EQ_INT(n, 0);
  ASSERT_NULL(best);

  /* What the tuner restores from: every trial, oldest first. */
  trials_seen ts = {0};
  ASSERT_EQ_INT(store_session_trials(h, a, see_trial, &ts), 0);
  ASSERT_EQ_INT(ts.n, 3);
  ASSERT_EQ_STR(ts.configs[1], "{\"TI\":16,\"TJ\":4}");
  ASSERT_EQ_STR(ts.status[2], "WRONG_ANSWER");
  ASSERT_EQ_DBL(ts.mean[0], 2e-3, 0);
  ts.stop_at = 1;
  ts.n = 0;
  ASSERT_EQ_INT(store_session_trials(h, a, see_trial, &ts), 9);
  ASSERT_EQ_INT(ts.n, 1);
  hist_close(h);
  tmp_free(&t);
}

static void digest_of(const char *kernel, const hist_trial *tr, char out[IDENT_HEX]) {
  int rc = ident_trial(kernel, tr->config_json, tr->compiler, tr->key, tr->timing_json,
                       tr->checked, out);
  if (rc != 0) TEST_FAIL("ident_trial: %d", rc);
}

TEST(find_ok_matches_only_the_exact_digest) {
  tmp t;
  tmp_init(&t);
  hist *h = open_rw(t.db);
  int64_t a = add_session(h, "x");
  hist_trial tr = ok_trial(a, 1e-3);
  tr.key = "x";
  tr.timing_json = "{\"number\":1,\"repeat\":3}";
  tr.device_json = "{\"cpu\":\"zen\"}";
  tr.compiler_id = "tcc 0.9.27";
  char d[IDENT_HEX];
  digest_of(KERNEL_A, &tr, d);
  tr.digest = d;
  int64_t id = add_trial(h, &tr);

  /* The same trial, its JSON written differently: the same digest, found. */
  hist_trial same = tr;
  same.config_json = "{ \"TJ\": 16, \"TI\": 8 }";
  same.timing_json = "{\"repeat\":3,\"number\":1}";
  char d2[IDENT_HEX];
  digest_of(KERNEL_A, &same, d2);
  ASSERT_EQ_STR(d2, d);
  store_found f;
  ASSERT_EQ_INT(store_find_ok(h, d2, &f), 1);
  ASSERT_EQ_INT(f.id, id);
  ASSERT_EQ_INT(f.ncosts, 3);
  ASSERT_EQ_DBL(f.costs[1], costs3[1], 0);
  ASSERT_EQ_STR(f.compiler_id, "tcc 0.9.27");
  ASSERT_EQ_STR(f.device_json, "{\"cpu\":\"zen\"}");
  ASSERT_EQ_STR(f.builder, "b-1");
  ASSERT_EQ_STR(f.runner, "pi-1");
  store_found_clear(&f);
  ASSERT_NULL(f.builder);

  /* Another kernel, timing, compiler, key or check: another digest. */
  hist_trial other[5];
  for (int i = 0; i < 5; i++) other[i] = tr;
  other[1].timing_json = "{\"number\":2,\"repeat\":3}";
  other[2].compiler = "gcc";
  other[3].key = "y";
  other[4].checked = 0;
  for (int i = 0; i < 5; i++) {
    char o[IDENT_HEX];
    digest_of(i == 0 ? KERNEL_B : KERNEL_A, &other[i], o);
    ASSERT(strcmp(o, d) != 0);
    ASSERT_EQ_INT(store_find_ok(h, o, &f), 0);
  }
  /* No digest answers for nothing, even where trials have none. */
  hist_trial anon = tr;
  anon.digest = NULL;
  add_trial(h, &anon);
  ASSERT_EQ_INT(store_find_ok(h, NULL, &f), 0);
  ASSERT_EQ_INT(store_find_ok(h, "", &f), 0);

  /* A failed trial is never reused. */
  hist_trial bad = tr;
  bad.status = "WRONG_ANSWER";
  bad.config_json = "{\"TI\":99,\"TJ\":1}";
  char db[IDENT_HEX];
  digest_of(KERNEL_A, &bad, db);
  bad.digest = db;
  add_trial(h, &bad);
  ASSERT_EQ_INT(store_find_ok(h, db, &f), 0);

  /* The newest of several measurements of the same trial. */
  hist_trial again = tr;
  again.runner = "pi-2";
  int64_t id2 = add_trial(h, &again);
  ASSERT_EQ_INT(store_find_ok(h, d, &f), 1);
  ASSERT_EQ_INT(f.id, id2);
  ASSERT_EQ_STR(f.runner, "pi-2");
  store_found_clear(&f);
  hist_close(h);
  tmp_free(&t);
}

/* Version 1 of the schema, as ktune wrote it before trial identities
 * (git show 032e419:common/history.c). */
static const char v1_schema[] =
  "CREATE TABLE sessions ("
  " id INTEGER PRIMARY KEY, task TEXT NOT NULL, size TEXT NOT NULL, key TEXT NOT NULL,"
  " strategy TEXT NOT NULL, compiler TEXT NOT NULL, owner TEXT, trials INTEGER NOT NULL,"
  " seed INTEGER NOT NULL, state TEXT NOT NULL, created_ms INTEGER NOT NULL,"
  " updated_ms INTEGER NOT NULL, spec BLOB);"
  "CREATE TABLE trials ("
  " id INTEGER PRIMARY KEY, session INTEGER REFERENCES sessions(id), task TEXT NOT NULL,"
  " size TEXT NOT NULL, config TEXT NOT NULL, key TEXT NOT NULL, compiler TEXT NOT NULL,"
  " status TEXT NOT NULL, error TEXT, costs TEXT NOT NULL, mean_s REAL, gflops REAL,"
  " flops INTEGER NOT NULL, runner TEXT, build_s REAL, timestamp_ms INTEGER NOT NULL,"
  " number INTEGER NOT NULL, repeat INTEGER NOT NULL, compiler_id TEXT, device TEXT,"
  " median_s REAL, std_s REAL, calls INTEGER, clock TEXT,"
  " timing TEXT NOT NULL DEFAULT '{}', reused INTEGER REFERENCES trials(id)%s);"
  "CREATE TABLE jobs ("
  " id INTEGER PRIMARY KEY, session INTEGER NOT NULL REFERENCES sessions(id),"
  " idx INTEGER NOT NULL, config TEXT NOT NULL, lost INTEGER NOT NULL DEFAULT 0);"
  "CREATE INDEX jobs_session ON jobs(session);"
  "CREATE INDEX trials_best ON trials(task, size, key, mean_s) WHERE status = 'ok';"
  "CREATE INDEX trials_reuse ON trials(task, size, key, config) WHERE status = 'ok';"
  "CREATE INDEX trials_session ON trials(session);"
  "INSERT INTO sessions VALUES (1, 'matmul', '{\"K\":64,\"M\":64,\"N\":64}', 'rpi4',"
  " 'random', 'tcc', 'alice', 10, 7, 'done', 1000, 2000, NULL);"
  "INSERT INTO trials(session, task, size, config, key, compiler, status, costs, mean_s,"
  " gflops, flops, runner, timestamp_ms, number, repeat, timing) VALUES"
  " (1, 'matmul', '{\"K\":64,\"M\":64,\"N\":64}', '{\"TI\":8,\"TJ\":16}', 'rpi4', 'tcc',"
  " 'ok', '[0.001]', 0.001, 0.524288, 524288, 'pi-1', 1500, 1, 1, '{}'),"
  " (1, 'matmul', '{\"K\":64,\"M\":64,\"N\":64}', '{\"TI\":4,\"TJ\":4}', 'rpi4', 'tcc',"
  " 'COMPILE_ERROR', '[]', NULL, NULL, 524288, NULL, 1600, 1, 1, '{}');"
  "INSERT INTO jobs(session, idx, config) VALUES (1, 3, '{\"TI\":2,\"TJ\":2}');"
  "PRAGMA user_version = 1;";

/* A version 1 file with two trials and a job; extra_column goes into the
 * trials table (to make the upgrade fail). */
static void make_v1(const char *path, const char *extra_column) {
  char sql[sizeof(v1_schema) + 64];
  snprintf(sql, sizeof(sql), v1_schema, extra_column);
  sqlite3 *db = NULL;
  ASSERT_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
  char *err = NULL;
  if (sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, &err) != SQLITE_OK ||
      sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
    TEST_FAIL("making a version 1 file: %s", err);
  sqlite3_close(db);
}

static void columns_of(sqlite3 *db, const char *table, char *out, size_t n) {
  char sql[128];
  snprintf(sql, sizeof(sql), "SELECT group_concat(name, ',') FROM pragma_table_info('%s')",
           table);
  raw_text(db, sql, out, n);
}

TEST(v1_file_reads_read_only_as_it_is) {
  tmp t;
  tmp_init(&t);
  make_v1(t.db, "");
  hist *r = NULL;
  char err[256] = "";
  ASSERT_EQ_INT(hist_open_readonly(t.db, &r, err, sizeof(err)), 0);
  collect c = {0};
  export_ok(r, "jsonl", &c);
  ASSERT_EQ_INT(c.n, 2);
  json_t *o = json_loads(c.lines[0], 0, NULL);
  ASSERT_NOT_NULL(o);
  ASSERT_EQ_STR(json_string_value(json_object_get(o, "status")), "ok");
  ASSERT(json_is_null(json_object_get(o, "digest")));
  ASSERT(json_is_null(json_object_get(o, "kernel")));
  ASSERT(json_is_false(json_object_get(o, "checked")));
  ASSERT(json_is_null(json_object_get(o, "builder")));
  json_decref(o);
  collect_free(&c);
  export_ok(r, "csv", &c);
  ASSERT_EQ_INT(c.n, 3);
  ASSERT_CONTAINS(c.lines[0], ",reused_from,digest,kernel,checked,builder,bytes,gbps");
  collect_free(&c);

  /* ktune best finds it only when it asks for no kernel and no check. */
  hist_best_query q = {.task = "matmul", .size_json = SIZE64};
  hist_best_row b;
  ASSERT_EQ_INT(best_of(r, &q, &b), 1);
  ASSERT_EQ_STR(b.config_json, "{\"TI\":8,\"TJ\":16}");
  ASSERT_NULL(b.kernel);
  ASSERT_NULL(b.builder);
  hist_best_row_clear(&b);
  q.checked_only = 1;
  ASSERT_EQ_INT(best_of(r, &q, &b), 0);
  q.checked_only = 0;
  q.kernel = KERNEL_A;
  ASSERT_EQ_INT(best_of(r, &q, &b), 0);
  store_found f;
  ASSERT_EQ_INT(store_find_ok(r, KERNEL_A, &f), 0);

  hist_session_row s;
  ASSERT_EQ_INT(hist_session_get(r, 1, &s), 1);
  ASSERT_EQ_STR(s.state, "done");
  ASSERT_NULL(s.message);
  ASSERT_EQ_INT(s.done, 2);
  ASSERT_EQ_INT(s.failures, 1);
  hist_session_row_clear(&s);
  hist_close(r);

  /* Reading changed nothing. */
  sqlite3 *db = raw_open(t.db);
  ASSERT_EQ_INT(raw_int(db, "PRAGMA user_version"), 1);
  char cols[1024];
  columns_of(db, "trials", cols, sizeof(cols));
  ASSERT(strstr(cols, "digest") == NULL);
  sqlite3_close(db);
  tmp_free(&t);
}

TEST(v1_file_is_upgraded_in_place) {
  tmp t;
  tmp_init(&t);
  make_v1(t.db, "");
  hist *h = open_rw(t.db);

  sqlite3 *db = raw_open(t.db);
  ASSERT_EQ_INT(raw_int(db, "PRAGMA user_version"), 4);
  ASSERT_EQ_INT(raw_int(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'trials_reuse'"),
                0);
  ASSERT_EQ_INT(raw_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND"
                            " name IN ('trials_digest', 'trials_kernel')"),
                2);
  /* Old rows kept, with no identity: they never answer for a new trial. */
  ASSERT_EQ_INT(raw_int(db, "SELECT count(*) FROM trials WHERE digest IS NULL AND kernel IS"
                            " NULL AND checked = 0 AND builder IS NULL"),
                2);
  ASSERT_EQ_INT(raw_int(db, "SELECT count(*) FROM sessions WHERE message IS NULL"), 1);

  /* The same columns in the same order as a file made new. */
  tmp t2;
  tmp_init(&t2);
  hist *fresh = open_rw(t2.db);
  sqlite3 *db2 = raw_open(t2.db);
  const char *tables[] = {"sessions", "trials", "jobs"};
  for (size_t i = 0; i < 3; i++) {
    char a[1024], b[1024];
    columns_of(db, tables[i], a, sizeof(a));
    columns_of(db2, tables[i], b, sizeof(b));
    ASSERT_EQ_STR(a, b);
  }
  char idx_a[512], idx_b[512];
  const char *idx_sql = "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_schema"
                        " WHERE type = 'index' AND sql IS NOT NULL ORDER BY name)";
  raw_text(db, idx_sql, idx_a, sizeof(idx_a));
  raw_text(db2, idx_sql, idx_b, sizeof(idx_b));
  ASSERT_EQ_STR(idx_a, idx_b);
  sqlite3_close(db2);
  hist_close(fresh);
  tmp_free(&t2);
  sqlite3_close(db);

  /* The job is still there to resume, and new trials record. */
  jobs_seen js = {0};
  ASSERT_EQ_INT(store_jobs_of(h, 1, see_job, &js), 0);
  ASSERT_EQ_INT(js.n, 1);
  hist_trial tr = ok_trial(1, 2e-3);
  char d[IDENT_HEX];
  digest_of(KERNEL_A, &tr, d);
  tr.digest = d;
  int64_t id = add_trial(h, &tr);
  store_found f;
  ASSERT_EQ_INT(store_find_ok(h, d, &f), 1);
  ASSERT_EQ_INT(f.id, id);
  store_found_clear(&f);
  hist_close(h);

  /* Opening again finds version 3 and does nothing. */
  h = open_rw(t.db);
  ASSERT_EQ_INT(count_trials(h), 3);
  hist_close(h);
  tmp_free(&t);
}

TEST(v1_upgrade_that_fails_leaves_the_file_as_it_was) {
  tmp t;
  tmp_init(&t);
  /* A column the upgrade adds is there already: its ALTER fails midway. */
  make_v1(t.db, ", builder TEXT");
  hist *h = NULL;
  char err[256] = "";
  ASSERT_LT_INT(hist_open(t.db, 0, &h, err, sizeof(err)), 0);
  ASSERT_NULL(h);
  ASSERT_CONTAINS(err, t.db);
  ASSERT_CONTAINS(err, "duplicate column");
  sqlite3 *db = raw_open(t.db);
  ASSERT_EQ_INT(raw_int(db, "PRAGMA user_version"), 1);
  char cols[1024];
  columns_of(db, "trials", cols, sizeof(cols));
  ASSERT(strstr(cols, "digest") == NULL);
  ASSERT_EQ_INT(raw_int(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'trials_reuse'"),
                1);
  sqlite3_close(db);
  tmp_free(&t);
}

typedef struct {
  int64_t ids[8];
  char states[8][16];
  int n, stop_at;
} recent_seen;

static int see_recent(void *ctx, const hist_session_row *r) {
  recent_seen *s = ctx;
  ASSERT_LT_INT(s->n, 8);
  s->ids[s->n] = r->id;
  snprintf(s->states[s->n++], sizeof(s->states[0]), "%s", r->state);
  return s->stop_at && s->n >= s->stop_at ? 9 : 0;
}

TEST(session_get_and_recent) {
  tmp t;
  tmp_init(&t);
  hist *h = open_rw(t.db);
  int64_t a = add_session(h, "rpi4"), b = add_session(h, "rpi4"), c = add_session(h, "rpi4"),
          d = add_session(h, "rpi4");
  hist_trial slow = ok_trial(a, 2e-3), fast = ok_trial(a, 1e-3), bad = ok_trial(a, 5e-4);
  fast.config_json = "{\"TI\":16,\"TJ\":4}";
  bad.status = "WRONG_ANSWER";
  int64_t slow_id = add_trial(h, &slow);
  add_trial(h, &fast);
  add_trial(h, &bad);
  hist_trial again = slow;
  again.reused = slow_id;
  add_trial(h, &again);
  hist_trial other = ok_trial(b, 1e-5); /* another session's, not a's best */
  add_trial(h, &other);

  ASSERT_EQ_INT(store_session_update(h, a, "done", NULL), 0);
  usleep(3000);
  ASSERT_EQ_INT(store_session_update(h, b, "failed", "no runner with key rpi4 for 60 s"), 0);
  usleep(3000);
  ASSERT_EQ_INT(store_session_update(h, c, "running", NULL), 0);
  ASSERT_EQ_INT(store_session_update(h, d, "cancelled", "cancelled by alice"), 0);

  hist_session_row r;
  ASSERT_EQ_INT(hist_session_get(h, a, &r), 1);
  ASSERT_EQ_INT(r.id, a);
  ASSERT_EQ_STR(r.task, "matmul");
  ASSERT_EQ_STR(r.size_json, SIZE64);
  ASSERT_EQ_STR(r.key, "rpi4");
  ASSERT_EQ_STR(r.strategy, "random");
  ASSERT_EQ_STR(r.compiler, "tcc");
  ASSERT_EQ_STR(r.owner, "alice");
  ASSERT_EQ_STR(r.state, "done");
  ASSERT_NULL(r.message);
  ASSERT_EQ_INT(r.trials, 10);
  ASSERT_EQ_INT(r.done, 4);
  ASSERT_EQ_INT(r.failures, 1);
  ASSERT_EQ_INT(r.reused, 1);
  ASSERT_EQ_STR(r.best_config, "{\"TI\":16,\"TJ\":4}");
  ASSERT_EQ_DBL(r.best_mean_s, 1e-3, 0);
  ASSERT_EQ_DBL(r.best_gflops, 524288.0 / 1e-3 / 1e9, 1e-9);
  ASSERT_GE_INT(r.updated_ms, r.created_ms);
  hist_session_row_clear(&r);
  ASSERT_NULL(r.task);

  ASSERT_EQ_INT(hist_session_get(h, b, &r), 1);
  ASSERT_EQ_STR(r.message, "no runner with key rpi4 for 60 s");
  ASSERT_EQ_INT(r.done, 1);
  hist_session_row_clear(&r);
  ASSERT_EQ_INT(hist_session_get(h, c, &r), 1);
  ASSERT_EQ_INT(r.done, 0);
  ASSERT_NULL(r.best_config);
  ASSERT_EQ_DBL(r.best_mean_s, 0, 0);
  hist_session_row_clear(&r);
  ASSERT_EQ_INT(hist_session_get(h, 999, &r), 0);
  ASSERT_NULL(r.task);

  /* Ended ones, most recently ended first; the running one is not. */
  recent_seen s = {0};
  ASSERT_EQ_INT(hist_sessions_recent(h, 10, see_recent, &s), 0);
  ASSERT_EQ_INT(s.n, 3);
  ASSERT_EQ_INT(s.ids[0], d);
  ASSERT_EQ_STR(s.states[0], "cancelled");
  ASSERT_EQ_INT(s.ids[1], b);
  ASSERT_EQ_INT(s.ids[2], a);
  recent_seen lim = {0};
  ASSERT_EQ_INT(hist_sessions_recent(h, 2, see_recent, &lim), 0);
  ASSERT_EQ_INT(lim.n, 2);
  ASSERT_EQ_INT(lim.ids[1], b);
  recent_seen stop = {.stop_at = 1};
  ASSERT_EQ_INT(hist_sessions_recent(h, 10, see_recent, &stop), 9);
  ASSERT_EQ_INT(stop.n, 1);

  /* The summary the tracker resumes from agrees. */
  uint32_t n = 0, failed = 0;
  char *best = NULL;
  double mean = 0;
  ASSERT_EQ_INT(hist_session_summary(h, a, &n, &failed, &best, &mean), 0);
  ASSERT_EQ_INT(n, 4);
  ASSERT_EQ_INT(failed, 1);
  ASSERT_EQ_STR(best, "{\"TI\":16,\"TJ\":4}");
  free(best);
  hist_close(h);
  tmp_free(&t);
}

/* A task that counts its bytes stores them and its GB/s; one that does
 * not has NULL there, not 0. */
TEST(bytes_and_gbps_are_stored_for_tasks_that_count_bytes) {
  tmp t;
  tmp_init(&t);
  hist *h = open_rw(t.db);
  int64_t sid = add_session(h, "rpi4");
  hist_trial plain = ok_trial(sid, 1e-3);
  add_trial(h, &plain);
  hist_trial moved = ok_trial(sid, 5e-4);
  moved.bytes = 1000000;
  moved.gbps = 1000000 / 5e-4 / 1e9;
  moved.config_json = "{\"TI\":2,\"TJ\":2}";
  add_trial(h, &moved);
  hist_trial failed = ok_trial(sid, 0); /* never timed: no speed of either kind */
  failed.status = "COMPILE_ERROR";
  failed.costs = NULL;
  failed.ncosts = 0;
  failed.bytes = 1000000;
  failed.config_json = "{\"TI\":4,\"TJ\":4}";
  add_trial(h, &failed);

  collect c = {0};
  export_ok(h, "jsonl", &c);
  ASSERT_EQ_INT(c.n, 3);
  json_t *o = json_loads(c.lines[0], 0, NULL);
  ASSERT(json_is_null(json_object_get(o, "bytes")));
  ASSERT(json_is_null(json_object_get(o, "gbps")));
  json_decref(o);
  o = json_loads(c.lines[1], 0, NULL);
  ASSERT_EQ_INT(json_integer_value(json_object_get(o, "bytes")), 1000000);
  ASSERT(json_is_real(json_object_get(o, "gbps")));
  ASSERT_EQ_DBL(json_real_value(json_object_get(o, "gbps")), 2.0, 1e-12);
  json_decref(o);
  o = json_loads(c.lines[2], 0, NULL);
  ASSERT_EQ_INT(json_integer_value(json_object_get(o, "bytes")), 1000000);
  ASSERT(json_is_null(json_object_get(o, "gbps")));
  json_decref(o);
  collect_free(&c);

  hist_best_query q = {.task = "matmul", .size_json = SIZE64};
  hist_best_row b;
  ASSERT_EQ_INT(best_of(h, &q, &b), 1);
  ASSERT_EQ_DBL(b.gbps, 2.0, 1e-12);
  hist_best_row_clear(&b);
  q.compiler = "gcc"; /* nothing */
  ASSERT_EQ_INT(best_of(h, &q, &b), 0);
  hist_session_row r;
  ASSERT_EQ_INT(hist_session_get(h, sid, &r), 1);
  ASSERT_EQ_DBL(r.best_gbps, 2.0, 1e-12);
  hist_session_row_clear(&r);

  /* The winner without bytes has no GB/s. */
  hist_trial fastest = ok_trial(sid, 1e-4);
  fastest.config_json = "{\"TI\":8,\"TJ\":8}";
  add_trial(h, &fastest);
  q.compiler = NULL;
  ASSERT_EQ_INT(best_of(h, &q, &b), 1);
  ASSERT(isnan(b.gbps));
  hist_best_row_clear(&b);
  hist_close(h);
  tmp_free(&t);
}

typedef struct {
  char values[8][128];
  int64_t trials[8];
  int n;
} values_seen;

static int see_value(void *ctx, const char *value, int64_t trials) {
  values_seen *v = ctx;
  ASSERT_LT_INT(v->n, 8);
  snprintf(v->values[v->n], sizeof(v->values[0]), "%s", value);
  v->trials[v->n++] = trials;
  return 0;
}

static values_seen values_of(hist *h, const hist_best_query *q, const char *col) {
  values_seen v = {0};
  int rc = hist_best_values(h, q, col, see_value, &v);
  if (rc != 0) TEST_FAIL("hist_best_values(%s): %d %s", col, rc, hist_errmsg(h));
  return v;
}

/* What ktune best lists: the sizes of a task name, and the compilers,
 * keys and timings its trials differ in, newest first, with counts. */
TEST(best_values_list_what_the_trials_differ_in) {
  tmp t;
  tmp_init(&t);
  hist *h = open_rw(t.db);
  int64_t sid = add_session(h, "rpi4");
  hist_trial tr = ok_trial(sid, 3e-3);
  add_trial(h, &tr);
  add_trial(h, &tr);
  tr.compiler = "gcc -O3";
  add_trial(h, &tr);
  tr.size_json = "{\"K\":8,\"M\":8,\"N\":8}";
  tr.kernel = KERNEL_B;
  add_trial(h, &tr);
  tr = ok_trial(sid, 1e-3); /* failed: never counted */
  tr.status = "RUNTIME_ERROR";
  tr.compiler = "clang";
  add_trial(h, &tr);
  tr = ok_trial(sid, 1e-3); /* unchecked */
  tr.compiler = "clang -O2";
  tr.checked = 0;
  add_trial(h, &tr);

  hist_best_query named = {.task = "matmul", .checked_only = 1};
  values_seen v = values_of(h, &named, "size");
  ASSERT_EQ_INT(v.n, 2);
  ASSERT_EQ_STR(v.values[0], "{\"K\":8,\"M\":8,\"N\":8}");
  ASSERT_EQ_INT(v.trials[0], 1);
  ASSERT_EQ_STR(v.values[1], SIZE64);
  ASSERT_EQ_INT(v.trials[1], 3);

  hist_best_query q = {.task = "matmul", .size_json = SIZE64, .checked_only = 1};
  v = values_of(h, &q, "compiler");
  ASSERT_EQ_INT(v.n, 2);
  ASSERT_EQ_STR(v.values[0], "gcc -O3");
  ASSERT_EQ_INT(v.trials[0], 1);
  ASSERT_EQ_STR(v.values[1], "tcc");
  ASSERT_EQ_INT(v.trials[1], 2);
  q.checked_only = 0;
  v = values_of(h, &q, "compiler");
  ASSERT_EQ_INT(v.n, 3);
  ASSERT_EQ_STR(v.values[0], "clang -O2");
  v = values_of(h, &q, "kernel");
  ASSERT_EQ_INT(v.n, 1);
  ASSERT_EQ_STR(v.values[0], KERNEL_A);
  v = values_of(h, &q, "key");
  ASSERT_EQ_INT(v.n, 1);
  ASSERT_EQ_INT(v.trials[0], 4);
  q.compiler = "icc";
  v = values_of(h, &q, "timing");
  ASSERT_EQ_INT(v.n, 0);

  /* Only those columns: the name goes into the SQL. */
  values_seen none = {0};
  ASSERT_LT_INT(hist_best_values(h, &q, "config; DROP TABLE trials", see_value, &none), 0);
  ASSERT_CONTAINS(hist_errmsg(h), "cannot list");
  hist_close(h);
  tmp_free(&t);
}

TEST(session_spec_is_read_back) {
  tmp t;
  tmp_init(&t);
  hist *h = open_rw(t.db);
  int64_t sid = add_session(h, "rpi4");
  void *blob = NULL;
  size_t len = 0;
  ASSERT_EQ_INT(hist_session_spec(h, sid, &blob, &len), 1);
  ASSERT_EQ_INT(len, 4);
  ASSERT_EQ_INT(memcmp(blob, "\x01\x02\x00\x03", 4), 0);
  free(blob);
  ASSERT_EQ_INT(hist_session_spec(h, sid + 1, &blob, &len), 0);
  ASSERT_NULL(blob);
  hist_close(h);
  tmp_free(&t);
}

/* A version 2 file (before bytes and GB/s): read as it is, upgraded in
 * place by a writer. */
TEST(v2_file_reads_read_only_and_is_upgraded) {
  tmp t;
  tmp_init(&t);
  hist *h = open_rw(t.db);
  int64_t sid = add_session(h, "rpi4");
  hist_trial tr = ok_trial(sid, 1e-3);
  add_trial(h, &tr);
  hist_close(h);
  sqlite3 *db = raw_open(t.db);
  /* version 2's jobs table, whose ids an empty table handed out again */
  char v2[1536];
  snprintf(v2, sizeof v2,
           "DROP INDEX trials_prior;"
           "ALTER TABLE sessions DROP COLUMN workload;"
           "ALTER TABLE trials DROP COLUMN retried_cv;"
           "ALTER TABLE trials DROP COLUMN confirm_costs;"
           "ALTER TABLE trials DROP COLUMN confirmed_s;"
           "ALTER TABLE trials DROP COLUMN gbps;"
           "ALTER TABLE trials DROP COLUMN bytes;"
           "DROP TABLE jobs;"
           "CREATE TABLE jobs (id INTEGER PRIMARY KEY, session INTEGER NOT NULL REFERENCES"
           " sessions(id), idx INTEGER NOT NULL, config TEXT NOT NULL,"
           " lost INTEGER NOT NULL DEFAULT 0);"
           "CREATE INDEX jobs_session ON jobs(session);"
           "INSERT INTO jobs VALUES (7, %lld, 3, '{}', 1);"
           "PRAGMA user_version = 2;", (long long)sid);
  ASSERT_EQ_INT(sqlite3_exec(db, v2, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);

  hist *r = NULL;
  char err[256] = "";
  ASSERT_EQ_INT(hist_open_readonly(t.db, &r, err, sizeof(err)), 0);
  collect c = {0};
  export_ok(r, "jsonl", &c);
  ASSERT_EQ_INT(c.n, 1);
  json_t *o = json_loads(c.lines[0], 0, NULL);
  ASSERT(json_is_null(json_object_get(o, "gbps")));
  ASSERT_EQ_STR(json_string_value(json_object_get(o, "builder")), "b-1");
  json_decref(o);
  collect_free(&c);
  hist_best_query q = {.task = "matmul", .size_json = SIZE64, .checked_only = 1};
  hist_best_row b;
  ASSERT_EQ_INT(best_of(r, &q, &b), 1);
  ASSERT(isnan(b.gbps));
  hist_best_row_clear(&b);
  hist_session_row s;
  ASSERT_EQ_INT(hist_session_get(r, sid, &s), 1);
  hist_session_row_clear(&s);
  hist_close(r);
  db = raw_open(t.db);
  ASSERT_EQ_INT(raw_int(db, "PRAGMA user_version"), 2);
  sqlite3_close(db);

  h = open_rw(t.db);
  tr.bytes = 4096;
  tr.gbps = 4096 / 1e-3 / 1e9;
  add_trial(h, &tr);
  hist_close(h);
  db = raw_open(t.db);
  ASSERT_EQ_INT(raw_int(db, "PRAGMA user_version"), 4);
  ASSERT_EQ_INT(raw_int(db, "SELECT count(*) FROM trials WHERE bytes IS NULL AND gbps IS NULL"),
                1);
  ASSERT_EQ_INT(raw_int(db, "SELECT bytes FROM trials WHERE gbps > 0"), 4096);
  /* the waiting job kept, in a table that never reuses an id */
  ASSERT_EQ_INT(raw_int(db, "SELECT idx FROM jobs WHERE id = 7 AND lost = 1"), 3);
  ASSERT_EQ_INT(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'jobs'"
                            " AND sql LIKE '%AUTOINCREMENT%'"), 1);
  ASSERT_EQ_INT(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'jobs_session'"), 1);
  sqlite3_close(db);
  tmp_free(&t);
}

/* A late answer for a job must not land on a newer job: ids are not
 * handed out again when the table empties, nor after a reopen. */
TEST(job_ids_are_never_reused) {
  tmp t;
  tmp_init(&t);
  hist *h = open_rw(t.db);
  int64_t a = add_session(h, "x"), j1, j2, j3;
  ASSERT_EQ_INT(store_job_add(h, a, 1, "{\"TI\":1}", &j1), 0);
  ASSERT_EQ_INT(store_job_delete(h, j1), 0);
  ASSERT_EQ_INT(store_job_add(h, a, 2, "{\"TI\":2}", &j2), 0);
  ASSERT(j2 > j1);
  ASSERT_EQ_INT(store_job_delete(h, j2), 0);
  hist_close(h);
  h = open_rw(t.db);
  ASSERT_EQ_INT(store_job_add(h, a, 3, "{\"TI\":3}", &j3), 0);
  ASSERT(j3 > j2);
  hist_close(h);
  tmp_free(&t);
}

/* A session's end stores the confirmed latency next to the search's, on
 * ok trials only, with the rounds it came from; export shows both. */
TEST(confirmed_latency_is_stored_on_the_ok_trial) {
  tmp t;
  tmp_init(&t);
  hist *h = open_rw(t.db);
  int64_t sid = add_session(h, "rpi4");
  hist_trial ok = ok_trial(sid, 1e-3);
  int64_t id = add_trial(h, &ok);
  hist_trial bad = ok_trial(sid, 0);
  bad.status = "RUNTIME_ERROR";
  bad.ncosts = 0;
  int64_t bad_id = add_trial(h, &bad);
  const double rounds[] = {1.25e-3, 1e-3, 1.5e-3};
  ASSERT_EQ_INT(store_trial_confirm(h, id, 1.25e-3, rounds, 3), 0);
  /* Nothing to confirm on a failed trial, a missing one or with no time. */
  ASSERT_LT_INT(store_trial_confirm(h, bad_id, 1e-3, rounds, 3), 0);
  ASSERT_CONTAINS(hist_errmsg(h), "no ok trial");
  ASSERT_LT_INT(store_trial_confirm(h, id + 99, 1e-3, rounds, 3), 0);
  ASSERT_LT_INT(store_trial_confirm(h, id, 0, rounds, 3), 0);
  collect c = {0};
  export_ok(h, "jsonl", &c);
  ASSERT_EQ_INT(c.n, 2);
  ASSERT_CONTAINS(c.lines[0], "\"confirmed_s\":0.00125,\"confirm_costs_s\":[0.00125,0.001,0.0015]");
  ASSERT_CONTAINS(c.lines[1], "\"confirmed_s\":null,\"confirm_costs_s\":null,\"retried_cv\":null");
  collect_free(&c);
  hist_close(h);
  tmp_free(&t);
}

TEST_LIST(TEST_ENTRY(jobs_and_unfinished_sessions_resume),
          TEST_ENTRY(a_read_snapshot_holds_while_the_writer_goes_on),
          TEST_ENTRY(confirmed_latency_is_stored_on_the_ok_trial), TEST_ENTRY(job_ids_are_never_reused),
          TEST_ENTRY(find_ok_matches_only_the_exact_digest), TEST_ENTRY(open_creates_schema_in_wal),
          TEST_ENTRY(session_and_trial_round_trip), TEST_ENTRY(trial_input_is_checked),
          TEST_ENTRY(export_jsonl), TEST_ENTRY(export_jsonl_untimed_trial_has_nulls),
          TEST_ENTRY(export_jsonl_odd_text_stays_valid), TEST_ENTRY(export_csv),
          TEST_ENTRY(export_unknown_format), TEST_ENTRY(best_picks_fastest_ok),
          TEST_ENTRY(best_checked_only_ignores_unchecked),
          TEST_ENTRY(best_of_a_kernel_ignores_other_kernels_of_the_name),
          TEST_ENTRY(committed_survives_reopen), TEST_ENTRY(uncommitted_is_lost_on_close),
          TEST_ENTRY(crash_keeps_committed_only),
          TEST_ENTRY(reader_sees_only_committed_and_is_not_blocked),
          TEST_ENTRY(readonly_missing_path), TEST_ENTRY(not_a_history_is_refused),
          TEST_ENTRY(unwritable_folder_is_named),
          TEST_ENTRY(v1_file_reads_read_only_as_it_is), TEST_ENTRY(v1_file_is_upgraded_in_place),
          TEST_ENTRY(v1_upgrade_that_fails_leaves_the_file_as_it_was),
          TEST_ENTRY(session_get_and_recent),
          TEST_ENTRY(bytes_and_gbps_are_stored_for_tasks_that_count_bytes),
          TEST_ENTRY(best_values_list_what_the_trials_differ_in),
          TEST_ENTRY(session_spec_is_read_back),
          TEST_ENTRY(v2_file_reads_read_only_and_is_upgraded))
