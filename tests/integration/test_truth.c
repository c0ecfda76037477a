/* The history tells the truth: a row answers only for the kernel that was
 * measured, how it was measured and by whom. Kernels that share a task name,
 * a second tracker on the same file, a restart after the end, agents killed
 * at random, and runners that lie must never become data. */
#include <ctype.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/harness.h"
#include "tests/test.h"

/* ---- small helpers ---------------------------------------------------- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Every kernel here is `k(float *C, const float *A)` over N floats, with
 * knobs U (elements per inner loop) and V (unused by the code: it only
 * widens the space). They differ in their template bytes alone, which is
 * the point: the task name, size, knobs and timing are all the same. */
static const char *ZEROS_SRC =
    "/* Writes zeros; so does its reference: checked, and right. */\n"
    "void k(float *C, const float *A) {\n"
    "  (void)A;\n"
    "  for (long i = 0; i < N; i += U)\n"
    "    for (long u = 0; u < U; u++) C[i + u] = 0.0f;\n"
    "}\n"
    "void k_ref(float *C, const float *A) {\n"
    "  (void)A;\n"
    "  for (long i = 0; i < N; i++) C[i] = 0.0f;\n"
    "}\n";
static const char *NOOP_SRC =
    "/* Does nothing: only ever measured with --no-check. */\n"
    "void k(float *C, const float *A) { (void)C; (void)A; }\n"
    "void k_ref(float *C, const float *A) {\n"
    "  for (long i = 0; i < N; i++) C[i] = A[i] * 2.0f;\n"
    "}\n";
static const char *REAL_SRC =
    "/* The real kernel: C = 2 A. */\n"
    "void k(float *C, const float *A) {\n"
    "  for (long i = 0; i < N; i += U)\n"
    "    for (long u = 0; u < U; u++) C[i + u] = A[i + u] * 2.0f;\n"
    "}\n"
    "void k_ref(float *C, const float *A) {\n"
    "  for (long i = 0; i < N; i++) C[i] = A[i] * 2.0f;\n"
    "}\n";

/* Writes DIR/STEM.c and DIR/STEM.json (task "k", N floats, 8 x nv configs,
 * all valid); the spec's path goes to path. */
static void write_task(const char *dir, const char *stem, const char *src, long n, int nv,
                       char *path, size_t len) {
  char p[512];
  snprintf(p, sizeof(p), "%s/%s.c", dir, stem);
  proc_write_file(p, src);
  snprintf(path, len, "%s/%s.json", dir, stem);
  FILE *f = fopen(path, "w");
  if (!f) TEST_FAIL("cannot write %s", path);
  fprintf(f, "{\"name\": \"k\", \"source\": \"%s.c\", \"entry\": \"k\", \"reference\": \"k_ref\",\n"
             " \"constants\": {\"N\": %ld},\n"
             " \"args\": [{\"name\": \"C\", \"type\": \"float\", \"count\": \"N\", \"output\": true},\n"
             "          {\"name\": \"A\", \"type\": \"float\", \"count\": \"N\"}],\n"
             " \"knobs\": {\"U\": [1, 2, 4, 8, 16, 32, 64, 128], \"V\": [",
          stem, n);
  for (int v = 1; v <= nv; v++) fprintf(f, "%s%d", v > 1 ? ", " : "", v);
  fprintf(f, "]},\n \"constraints\": [\"N %% U == 0\"],\n \"flops\": \"N\"}\n");
  fclose(f);
}

/* `ktune ARGS...` without --tracker (best, export --db). */
static int ktune_plain(char *out, size_t outlen, int timeout_ms, char *const args[]) {
  return proc_ktune(NULL, args, out, outlen, timeout_ms);
}

static int has_column(sqlite3 *db, const char *table, const char *col) {
  return farm_query(db, "SELECT count(*) FROM pragma_table_info('%s') WHERE name = '%s'", table,
                    col) > 0;
}

/* Prints every row of a query to stderr, columns joined by " | ". */
static void dump_sql(sqlite3 *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void dump_sql(sqlite3 *db, const char *fmt, ...) {
  char sql[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sql, sizeof(sql), fmt, ap);
  va_end(ap);
  sqlite3_stmt *st;
  fprintf(stderr, "-- %s\n", sql);
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    fprintf(stderr, "   (%s)\n", sqlite3_errmsg(db));
    return;
  }
  while (sqlite3_step(st) == SQLITE_ROW) {
    fprintf(stderr, "   ");
    for (int c = 0; c < sqlite3_column_count(st); c++) {
      const unsigned char *v = sqlite3_column_text(st, c);
      fprintf(stderr, "%s%s", c ? " | " : "", v ? (const char *)v : "NULL");
    }
    fprintf(stderr, "\n");
  }
  sqlite3_finalize(st);
}

/* What a session's trials look like, for a failure message. */
static void dump_session(farm *f, long id) {
  sqlite3 *db;
  if (sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) return;
  sqlite3_busy_timeout(db, 2000);
  dump_sql(db, "SELECT id, state, trials FROM sessions WHERE id = %ld", id);
  dump_sql(db, "SELECT status, runner, count(*) FROM trials WHERE session = %ld "
               "GROUP BY status, runner", id);
  dump_sql(db, "SELECT id, status, runner, gflops, substr(error, 1, 200) FROM trials "
               "WHERE session = %ld AND (status <> 'ok' OR gflops >= 1e4) ORDER BY id LIMIT 5", id);
  dump_sql(db, "SELECT count(*) AS jobs_left FROM jobs WHERE session = %ld", id);
  sqlite3_close(db);
}

/* The session's state from the history, without failing the test when the
 * file is busy or the tracker is down: for polling during chaos. */
static int session_state(farm *f, long id, char *buf, size_t len) {
  sqlite3 *db;
  sqlite3_stmt *st = NULL;
  int rc = -1;
  buf[0] = 0;
  if (sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) goto out;
  sqlite3_busy_timeout(db, 500);
  char sql[128];
  snprintf(sql, sizeof(sql), "SELECT state FROM sessions WHERE id = %ld", id);
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
      sqlite3_column_text(st, 0)) {
    snprintf(buf, len, "%s", sqlite3_column_text(st, 0));
    rc = 0;
  }
out:
  sqlite3_finalize(st);
  sqlite3_close(db);
  return rc;
}

static void fail_session(farm *f, long id, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail_session(farm *f, long id, const char *fmt, ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  farm_print_log(f);
  dump_session(f, id);
  TEST_FAIL("session %ld: %s", id, msg);
}

/* Asserts a session ended done with exactly `trials` trials, all ok, each
 * config once, and nothing left in the jobs table. */
static void expect_all_ok(farm *f, long id, int trials) {
  char state[32];
  session_state(f, id, state, sizeof(state));
  if (strcmp(state, "done") != 0)
    fail_session(f, id, "state is '%s', not 'done'", state);
  sqlite3 *db = farm_db(f);
  long long n = farm_query(db, "SELECT count(*) FROM trials WHERE session = %ld", id);
  long long ok = farm_query(db, "SELECT count(*) FROM trials WHERE session = %ld AND status = 'ok'", id);
  long long distinct =
      farm_query(db, "SELECT count(DISTINCT config) FROM trials WHERE session = %ld", id);
  long long jobs = farm_query(db, "SELECT count(*) FROM jobs WHERE session = %ld", id);
  sqlite3_close(db);
  if (n != trials || ok != trials || distinct != trials || jobs != 0)
    fail_session(f, id, "%lld trials recorded (want %d), %lld ok (want all), %lld distinct configs "
                 "(want %d), %lld jobs left (want 0)", n, trials, ok, distinct, trials, jobs);
}

/* The id printed by an attached `ktune tune` ("session N: ..."). */
static long session_id_of(const char *out) {
  const char *p = strstr(out, "session ");
  while (p) {
    char *end;
    long id = strtol(p + 8, &end, 10);
    if (end != p + 8 && *end == ':') return id;
    p = strstr(p + 1, "session ");
  }
  TEST_FAIL("ktune tune printed no \"session N:\" line: %s", out);
}

/* The number written just before p (skipping spaces), or -1. */
static long number_before(const char *text, const char *p) {
  while (p > text && p[-1] == ' ') p--;
  if (p == text || !isdigit((unsigned char)p[-1])) return -1;
  while (p > text && isdigit((unsigned char)p[-1])) p--;
  return strtol(p, NULL, 10);
}

/* The largest count of reused trials in `ktune tune` output, written as
 * "reused 3", "reused: 3", "3 reused" or "3 from the history"; 0 when it
 * says none. */
static long reused_in_output(const char *out) {
  long most = 0;
  for (const char *p = strstr(out, "reused"); p; p = strstr(p + 1, "reused")) {
    const char *q = p + 6;
    while (*q == ' ' || *q == ':' || *q == '=') q++;
    long v = isdigit((unsigned char)*q) ? strtol(q, NULL, 10) : -1;
    if (v > most) most = v;
    v = number_before(out, p);
    if (v > most) most = v;
  }
  for (const char *p = strstr(out, "from the history"); p; p = strstr(p + 1, "from the history")) {
    long v = number_before(out, p);
    if (v > most) most = v;
  }
  return most;
}

/* Runs an attached `ktune tune SPEC --key k ...` to the end; returns its id. */
static long tune_attached(farm *f, char *out, size_t outlen, char *const args[]) {
  char *argv[40] = {"tune"};
  int n = 1;
  for (int i = 0; args[i] && n < 39; i++) argv[n++] = args[i];
  argv[n] = NULL;
  int rc = farm_ktune(f, out, outlen, 90000, argv);
  if (rc != 0) {
    farm_print_log(f);
    TEST_FAIL("ktune tune %s exited %d, not 0: %s", args[0], rc, out);
  }
  return session_id_of(out);
}

/* ---- 1. kernels that share a name ------------------------------------ */

TEST(three_kernels_under_one_name_never_answer_for_each_other) {
  farm f;
  farm_start(&f, NULL);
  pid_t b = farm_builder(&f, "b1");
  pid_t r = farm_runner(&f, "r1", "k", NULL);
  farm_wait_agent(&f, "r1", 1);
  char spec_a[400], spec_b[400], spec_c[400];
  write_task(f.dir, "zeros", ZEROS_SRC, 1024, 4, spec_a, sizeof(spec_a));
  write_task(f.dir, "noop", NOOP_SRC, 1024, 4, spec_b, sizeof(spec_b));
  write_task(f.dir, "real", REAL_SRC, 1024, 4, spec_c, sizeof(spec_c));
  /* Grid: every session proposes the same six configs, so each one could
   * be answered from the rows of the session before it. */
  static char out[1 << 16];
  char *ta[] = {spec_a, "--key", "k", "--trials", "6", "--strategy", "grid", NULL};
  long sa = tune_attached(&f, out, sizeof(out), ta);
  char *tb[] = {spec_b, "--key", "k", "--trials", "6", "--strategy", "grid", "--no-check", NULL};
  long sb = tune_attached(&f, out, sizeof(out), tb);
  char *tc[] = {spec_c, "--key", "k", "--trials", "6", "--strategy", "grid", NULL};
  long sc = tune_attached(&f, out, sizeof(out), tc);
  long shown = reused_in_output(out);
  expect_all_ok(&f, sa, 6);
  expect_all_ok(&f, sb, 6);
  expect_all_ok(&f, sc, 6);

  sqlite3 *db = farm_db(&f);
  /* B (unchecked no-op) from A, and C from A or B: every one is a lie.
   * C's template was never measured before: nothing in C may be reused. */
  long long b_from_a = farm_query(db, "SELECT count(*) FROM trials WHERE session = %ld AND reused "
                                      "IN (SELECT id FROM trials WHERE session = %ld)", sb, sa);
  long long c_from_ab = farm_query(db, "SELECT count(*) FROM trials WHERE session = %ld AND reused "
                                       "IN (SELECT id FROM trials WHERE session IN (%ld, %ld))",
                                   sc, sa, sb);
  long long c_reused = farm_query(db, "SELECT count(*) FROM trials WHERE session = %ld AND "
                                      "reused IS NOT NULL", sc);
  if (b_from_a || c_from_ab || c_reused) {
    dump_sql(db, "SELECT id, session, config, status, reused, mean_s FROM trials ORDER BY id");
    TEST_FAIL("kernels answered for each other under the task name \"k\": %lld of 6 trials of "
              "session B (no-op, --no-check) reuse rows of A (zeros), %lld of 6 trials of C (the "
              "real kernel) reuse rows of A or B, %lld of C's trials are reused at all (want 0, 0, "
              "0)", b_from_a, c_from_ab, c_reused);
  }
  if (!has_column(db, "trials", "kernel"))
    TEST_FAIL("trials has no `kernel` column: a row does not say which kernel it measured");
  long long c_kernel_shared =
      farm_query(db, "SELECT count(*) FROM trials WHERE session = %ld AND kernel IN (SELECT "
                     "kernel FROM trials WHERE session IN (%ld, %ld))", sc, sa, sb);
  long long ab_kernel_shared =
      farm_query(db, "SELECT count(*) FROM trials WHERE session = %ld AND kernel IN (SELECT "
                     "kernel FROM trials WHERE session = %ld)", sb, sa);
  long long c_kernels =
      farm_query(db, "SELECT count(DISTINCT kernel) FROM trials WHERE session = %ld", sc);
  if (c_kernel_shared || ab_kernel_shared || c_kernels != 1) {
    dump_sql(db, "SELECT id, session, config, kernel FROM trials ORDER BY id");
    TEST_FAIL("kernel digests do not tell the templates apart: %lld of C's rows carry A's or B's "
              "digest, %lld of B's carry A's (want 0, 0); C's rows have %lld digests (want 1)",
              c_kernel_shared, ab_kernel_shared, c_kernels);
  }
  sqlite3_close(db);
  if (shown > 0) {
    farm_print_log(&f);
    TEST_FAIL("ktune tune of the real kernel says %ld trials were reused; it was never measured "
              "before: %s", shown, out);
  }

  /* `ktune best` for the real kernel names a row of the real kernel. */
  char *best_c[] = {"best", spec_c, "--db", f.db, "--json", NULL};
  int rc = ktune_plain(out, sizeof(out), 10000, best_c);
  if (rc != 0) TEST_FAIL("ktune best %s exited %d: %s", spec_c, rc, out);
  json_error_t je;
  json_t *best = json_loads(out, 0, &je);
  if (!best) TEST_FAIL("ktune best --json is not JSON (%s): %s", je.text, out);
  double mean = json_real_value(json_object_get(best, "mean_s"));
  char *cfg = json_dumps(json_object_get(best, "config"), JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(best);
  db = farm_db(&f);
  long long from_c = farm_query(db, "SELECT count(*) FROM trials WHERE status = 'ok' AND kernel = "
                                    "(SELECT kernel FROM trials WHERE session = %ld LIMIT 1) AND "
                                    "abs(mean_s - %.17g) <= 1e-7 * %.17g AND config = '%s'",
                                sc, mean, mean, cfg ? cfg : "");
  long long from_ab = farm_query(db, "SELECT count(*) FROM trials WHERE session IN (%ld, %ld) AND "
                                     "abs(mean_s - %.17g) <= 1e-7 * %.17g", sa, sb, mean, mean);
  /* In picoseconds, so that farm_query's integer carries it. The best is
   * the fastest confirmed trial (the session's end confirms its best
   * few), else the fastest. */
  long long min_c_ps = farm_query(db, "SELECT CAST(mean_s * 1e12 AS INTEGER) FROM trials "
                                      "WHERE session = %ld AND status = 'ok' ORDER BY "
                                      "confirmed_s IS NULL, confirmed_s, mean_s LIMIT 1", sc);
  if (from_c == 0 || from_ab != 0) {
    dump_sql(db, "SELECT id, session, config, status, kernel, mean_s FROM trials ORDER BY mean_s");
    TEST_FAIL("ktune best %s answered config %s at %.9g s: %s", spec_c, cfg ? cfg : "?", mean,
              from_ab ? "that is a row of the zeros (A) or no-op (B) kernel, not the real one"
                      : "no ok row of the real kernel has that config and latency");
  }
  /* %.9g in the output and the cast here each round by under 1e-7. */
  if (mean * 1e12 - (double)min_c_ps > 1e-7 * mean * 1e12 + 1 ||
      (double)min_c_ps - mean * 1e12 > 1e-7 * mean * 1e12 + 1)
    TEST_FAIL("ktune best %s names a latency of %.9g s, but the real kernel's best ok trial "
              "took %.9g s", spec_c, mean, (double)min_c_ps / 1e12);
  free(cfg);

  /* The unchecked no-op is never the answer to a checked `ktune best`. */
  char *best_b[] = {"best", spec_b, "--db", f.db, "--json", NULL};
  rc = ktune_plain(out, sizeof(out), 10000, best_b);
  if (rc == 0) {
    best = json_loads(out, 0, &je);
    double m = best ? json_real_value(json_object_get(best, "mean_s")) : -1;
    json_decref(best);
    long long unchecked = farm_query(db, "SELECT count(*) FROM trials WHERE session = %ld AND "
                                         "abs(mean_s - %.17g) <= 1e-7 * %.17g", sb, m, m);
    if (unchecked)
      TEST_FAIL("ktune best %s (checked: no --unchecked) answered with a row of session %ld, "
                "measured with --no-check: %s", spec_b, sb, out);
  }
  sqlite3_close(db);

  /* Control: the same real kernel again is answered from its own rows. */
  char *tc2[] = {spec_c, "--key", "k", "--trials", "6", "--strategy", "grid", NULL};
  long sc2 = tune_attached(&f, out, sizeof(out), tc2);
  shown = reused_in_output(out);
  expect_all_ok(&f, sc2, 6);
  /* Also proves this test reads the CLI's count, so its zeros mean zero. */
  if (shown != 6)
    TEST_FAIL("ktune tune of the unchanged real kernel again reports %ld trials reused (want 6, "
              "as \"reused 6\" or \"6 from the history\"): %s", shown, out);
  db = farm_db(&f);
  long long own = farm_query(db, "SELECT count(*) FROM trials WHERE session = %ld AND reused IN "
                                 "(SELECT id FROM trials WHERE session = %ld)", sc2, sc);
  if (own != 6) {
    dump_sql(db, "SELECT id, session, config, kernel, reused FROM trials WHERE session IN (%ld, %ld)",
             sc, sc2);
    TEST_FAIL("rerunning the unchanged real kernel reused %lld of its 6 trials from session %ld "
              "(want all 6): reuse must still work for the same kernel", own, sc);
  }
  sqlite3_close(db);

  /* One character more in the template is another kernel: nothing reused. */
  char src[512];
  snprintf(src, sizeof(src), "%s/real.c", f.dir);
  FILE *sf = fopen(src, "a");
  ASSERT_NOT_NULL(sf);
  fputc('\n', sf);
  fclose(sf);
  long sc3 = tune_attached(&f, out, sizeof(out), tc2);
  shown = reused_in_output(out);
  expect_all_ok(&f, sc3, 6);
  db = farm_db(&f);
  long long stale = farm_query(db, "SELECT count(*) FROM trials WHERE session = %ld AND reused IS "
                                   "NOT NULL", sc3);
  if (stale || shown) {
    dump_sql(db, "SELECT id, session, config, kernel, reused FROM trials WHERE session >= %ld", sc);
    TEST_FAIL("after a one-character edit of the template, %lld of 6 trials were answered from "
              "the old template's rows and ktune tune reported %ld reused (want 0 and 0)", stale,
              shown);
  }
  sqlite3_close(db);
  farm_stop_all(&f, r, b, 0);
}

/* ---- 2. one history, one tracker ------------------------------------- */

/* Whether text holds the number as a whole word (not inside another). */
static int has_number(const char *text, long v) {
  char num[32];
  int n = snprintf(num, sizeof(num), "%ld", v);
  for (const char *p = strstr(text, num); p; p = strstr(p + 1, num))
    if ((p == text || !isdigit((unsigned char)p[-1])) && !isdigit((unsigned char)p[n])) return 1;
  return 0;
}

TEST(second_tracker_on_the_same_db_refuses) {
  farm f;
  farm_start(&f, NULL);
  char *argv[] = {(char *)proc_bin("tracker/ktune-tracker"), "--db", f.db, "--listen",
                  "127.0.0.1:0", NULL};
  char out[8192];
  double t0 = now_s();
  int rc = proc_run(argv, out, sizeof(out), 5000);
  double took = now_s() - t0;
  if (rc == -1) {
    farm_print_log(&f);
    TEST_FAIL("a second ktune-tracker on %s (held by pid %d) was still running after 5 s; it "
              "must refuse the history at once. It printed: %s", f.db, (int)f.tracker, out);
  }
  if (rc == 0) TEST_FAIL("a second ktune-tracker on the same history exited 0: %s", out);
  if (!has_number(out, (long)f.tracker) || !strstr(out, f.addr))
    TEST_FAIL("the second tracker exited %d after %.1f s but did not name the holder (pid %d, "
              "listening on %s): \"%s\"", rc, took, (int)f.tracker, f.addr, out);
  /* The first one is untouched. */
  json_decref(farm_status(&f));
  farm_stop_tracker(&f);
}

/* ---- 3. a finished session outlives its tracker ---------------------- */

TEST(finished_session_survives_a_restart) {
  farm f;
  farm_start(&f, NULL);
  pid_t b = farm_builder(&f, "b1");
  pid_t r = farm_runner(&f, "r1", "k", NULL);
  farm_wait_agent(&f, "r1", 1);
  char spec[400];
  write_task(f.dir, "real", REAL_SRC, 1024, 4, spec, sizeof(spec));
  char *args[] = {spec, "--trials", "4", "--key", "k", NULL};
  long id = farm_submit(&f, args);
  char out[16384];
  int rc = farm_wait(&f, id, 60000, out, sizeof(out));
  if (rc != 0) fail_session(&f, id, "ktune wait exited %d before the restart: %s", rc, out);
  expect_all_ok(&f, id, 4);
  kill(f.tracker, SIGKILL);
  waitpid(f.tracker, NULL, 0);
  farm_restart_tracker(&f, NULL);
  rc = farm_wait(&f, id, 20000, out, sizeof(out));
  if (rc != 0 || !strstr(out, "best: "))
    fail_session(&f, id, "after kill -9 and a restart, `ktune wait %ld` of the finished session "
                 "exited %d (want 0 and a \"best: \" line): %s", id, rc, out);
  char *sessions[] = {"sessions", NULL};
  rc = farm_ktune(&f, out, sizeof(out), 10000, sessions);
  if (rc != 0) fail_session(&f, id, "ktune sessions exited %d: %s", rc, out);
  int listed = 0;
  for (char *line = strtok(out, "\n"); line && !listed; line = strtok(NULL, "\n")) {
    char *end;
    long v = strtol(line, &end, 10);
    listed = end != line && v == id && strstr(end, " done ");
  }
  if (!listed) {
    farm_ktune(&f, out, sizeof(out), 10000, sessions);
    fail_session(&f, id, "after a restart `ktune sessions` does not list session %ld as done: %s",
                 id, out);
  }
  farm_stop_all(&f, r, b, 0);
}

/* ---- 4. chaos --------------------------------------------------------- */

#define CHAOS_TRIALS 300
#define CHAOS_S 60.0

TEST(chaos_never_becomes_data) {
  /* 60 s of chaos, then up to 45 s to finish: more than the 120 s that
   * tests/test.h allows a case. */
  alarm(170);
  farm f;
  /* A job the dice hit three times is RUNNER_LOST by policy (--max-lost);
   * this test is about chaos leaking into data, so the policy stays out. */
  char *opts[] = {"--max-lost", "50", NULL};
  farm_start(&f, opts);
  pid_t b = farm_builder(&f, "b1");
  pid_t r[2] = {farm_runner(&f, "r1", "k", NULL), farm_runner(&f, "r2", "k", NULL)};
  farm_wait_agent(&f, "r1", 1);
  farm_wait_agent(&f, "r2", 1);
  char spec[400];
  write_task(f.dir, "real", REAL_SRC, 4096, 64, spec, sizeof(spec));
  char trials[16];
  snprintf(trials, sizeof(trials), "%d", CHAOS_TRIALS);
  /* About 12 us a call under tcc: three rounds of 6000 calls make a trial
   * some 0.25 s, so 300 of them on two runners span about the minute of
   * chaos and a runner's kill mostly lands mid-trial. */
  char *args[] = {spec, "--trials", trials, "--key", "k", "--number", "6000", "--seed", "7", NULL};
  long id = farm_submit(&f, args);

  double t0 = now_s(), next_r = t0 + 3, next_b = t0 + 9, next_t = t0 + 15;
  int kills_r = 0, kills_b = 0, kills_t = 0;
  char state[32] = "";
  while (now_s() - t0 < CHAOS_S) {
    session_state(&f, id, state, sizeof(state));
    if (strcmp(state, "done") == 0 || strcmp(state, "failed") == 0 ||
        strcmp(state, "cancelled") == 0)
      break;
    double t = now_s();
    if (t >= next_r) {
      int i = kills_r++ % 2;
      kill(r[i], SIGKILL);
      waitpid(r[i], NULL, 0);
      r[i] = farm_runner(&f, i ? "r2" : "r1", "k", NULL);
      next_r += 3;
    }
    if (t >= next_b) {
      kill(b, SIGKILL);
      waitpid(b, NULL, 0);
      b = farm_builder(&f, "b1");
      kills_b++;
      next_b += 9;
    }
    if (t >= next_t) {
      kill(f.tracker, SIGKILL);
      waitpid(f.tracker, NULL, 0);
      farm_restart_tracker(&f, opts);
      kills_t++;
      next_t += 15;
    }
    proc_sleep_ms(100);
  }
  fprintf(stderr, "chaos: %.1f s, %d runner, %d builder, %d tracker kills; session %s\n",
          now_s() - t0, kills_r, kills_b, kills_t, state[0] ? state : "?");
  char out[16384];
  int rc = farm_wait(&f, id, 45000, out, sizeof(out));
  if (rc != 0)
    fail_session(&f, id, "after the chaos `ktune wait` exited %d%s (want 0): %s", rc,
                 rc == -1 ? " (still running after 45 s)" : "", out);
  expect_all_ok(&f, id, CHAOS_TRIALS);
  farm_stop_all(&f, r[0], r[1], b);
}

/* ---- 5. runners that lie --------------------------------------------- */

/* An honest runner and one started with --test-fault MODE on key k, one
 * builder, a bounded session: it must end done, all ok, with nothing of the
 * liar's in the history, and the export must stay readable. */
static void misbehaving_runner(const char *mode, int trials, int bound_s) {
  farm f;
  farm_start(&f, NULL);
  pid_t b = farm_builder(&f, "b1");
  pid_t honest = farm_runner(&f, "honest", "k", NULL);
  char *fault[] = {"--test-fault", (char *)mode, NULL};
  pid_t liar = farm_runner_args(&f, "liar", "k", fault);
  farm_wait_agent(&f, "honest", 1);
  /* The liar must really be there, or the test proves nothing. */
  int here = 0;
  for (int i = 0; i < 200 && !here; i++) {
    if (waitpid(liar, NULL, WNOHANG) == liar) {
      farm_print_log(&f);
      TEST_FAIL("ktune-runner --test-fault %s exited at once: the runner does not know the mode",
                mode);
    }
    json_t *st = farm_status(&f);
    here = farm_agent(st, "liar") != NULL;
    json_decref(st);
    if (!here) proc_sleep_ms(50);
  }
  if (!here) {
    farm_print_log(&f);
    TEST_FAIL("the --test-fault %s runner never joined the farm", mode);
  }
  char spec[400], ntrials[16];
  write_task(f.dir, "real", REAL_SRC, 1024, 4, spec, sizeof(spec));
  snprintf(ntrials, sizeof(ntrials), "%d", trials);
  /* --timeout 2000: a job held by a silent runner has a short deadline. */
  char *args[] = {spec, "--trials", ntrials, "--key", "k", "--number", "100", "--timeout", "2000",
                  NULL};
  long id = farm_submit(&f, args);
  static char out[1 << 16];
  int rc = farm_wait(&f, id, bound_s * 1000, out, sizeof(out));
  if (rc != 0)
    fail_session(&f, id, "beside a --test-fault %s runner `ktune wait` exited %d%s (want 0): %s",
                 mode, rc, rc == -1 ? " (the session did not finish in time)" : "", out);
  expect_all_ok(&f, id, trials);
  sqlite3 *db = farm_db(&f);
  long long fast = farm_query(db, "SELECT count(*) FROM trials WHERE gflops >= 1e4");
  long long errors = farm_query(db, "SELECT count(*) FROM trials WHERE status <> 'ok'");
  long long rows = farm_query(db, "SELECT count(*) FROM trials");
  sqlite3_close(db);
  if (fast || errors)
    fail_session(&f, id, "the --test-fault %s runner's answers became data: %lld rows at 1e4 "
                 "GFLOPS or more, %lld rows not ok", mode, fast, errors);

  /* Every exported line is one readable JSON object of sane size. */
  size_t cap = 32u << 20;
  char *big = malloc(cap);
  ASSERT_NOT_NULL(big);
  char *exp[] = {"export", "--format", "jsonl", NULL};
  rc = farm_ktune(&f, big, cap, 60000, exp);
  if (rc != 0) {
    big[4096] = 0;
    farm_print_log(&f);
    TEST_FAIL("ktune export --format jsonl exited %d beside a --test-fault %s runner: %s", rc,
              mode, big);
  }
  long lines = 0;
  for (char *p = big; *p;) {
    char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    if (len > 64 * 1024)
      TEST_FAIL("export line %ld is %zu bytes (over 64 KB): %.200s...", lines + 1, len, p);
    json_error_t je;
    json_t *j = json_loadb(p, len, 0, &je);
    if (!j || !json_is_object(j))
      TEST_FAIL("export line %ld is not a JSON object (%s): %.300s", lines + 1,
                j ? "not an object" : je.text, p);
    json_decref(j);
    lines++;
    p = nl ? nl + 1 : p + len;
  }
  free(big);
  if (lines != rows) TEST_FAIL("export wrote %ld lines for %lld trials", lines, rows);

  json_t *st = farm_status(&f);
  json_t *a = farm_agent(st, "liar");
  if (!a) {
    json_decref(st);
    farm_print_log(&f);
    TEST_FAIL("ktune status --json does not show the --test-fault %s runner", mode);
  }
  const char *arch = strncmp(mode, "arch=", 5) == 0 ? mode + 5 : NULL;
  if (arch) {
    const char *shown_arch = json_string_value(json_object_get(a, "arch"));
    if (!shown_arch || strcmp(shown_arch, arch) != 0) {
      json_decref(st);
      TEST_FAIL("the --test-fault %s runner shows arch \"%s\" in status, so the test did not "
                "put a foreign runner on the key", mode, shown_arch ? shown_arch : "(none)");
    }
    db = farm_db(&f);
    long long elsewhere = farm_query(db, "SELECT count(*) FROM trials WHERE session = %ld AND "
                                         "runner IS NOT 'honest'", id);
    sqlite3_close(db);
    if (elsewhere)
      fail_session(&f, id, "%lld trials were not measured by the honest runner beside a %s one",
                   elsewhere, arch);
  }
  const char *q = json_string_value(json_object_get(a, "quarantine"));
  /* Informative only: quarantine is how, not whether, it is kept out. */
  fprintf(stderr, "liar (%s): state %s, quarantine \"%s\"\n", mode,
          json_string_value(json_object_get(a, "state")), q ? q : "(no field)");
  json_decref(st);
  farm_stop_all(&f, honest, liar, b);
}

TEST(silent_runner_never_stalls_a_session) { misbehaving_runner("silent", 12, 60); }
TEST(failing_runner_never_becomes_data) { misbehaving_runner("fail", 16, 30); }
TEST(tiny_costs_never_become_data) { misbehaving_runner("tiny-cost", 16, 30); }
TEST(huge_errors_never_become_data) { misbehaving_runner("huge-error", 16, 30); }

/* Today one sparc64 runner stops every build for its key. */
TEST(foreign_arch_runner_does_not_stop_its_key) { misbehaving_runner("arch=sparc64", 16, 30); }

/* A template that never compiles ends its session failed: the client
 * exits 1 and shows the status and the first compiler error, and no
 * "best" is named from other code (a working kernel of the same name was
 * measured first). */
TEST(template_that_never_compiles_fails_its_session) {
  farm f;
  farm_start(&f, NULL);
  pid_t b = farm_builder(&f, "b1");
  pid_t r = farm_runner(&f, "r1", "k", NULL);
  farm_wait_agent(&f, "r1", 1);
  char good[512], bad[512], out[16384];
  write_task(f.dir, "real", REAL_SRC, 1024, 1, good, sizeof(good));
  char *first[] = {"tune", good, "--trials", "4", "--key", "k", NULL};
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 60000, first), 0);
  write_task(f.dir, "broken",
             "void k(float *C, const float *A) { this is not C; }\n"
             "void k_ref(float *C, const float *A) { (void)C; (void)A; }\n",
             1024, 1, bad, sizeof(bad));
  char *second[] = {"tune", bad, "--trials", "4", "--key", "k", NULL};
  int rc = farm_ktune(&f, out, sizeof(out), 60000, second);
  if (rc != 1) {
    farm_print_log(&f);
    TEST_FAIL("a session whose every build fails exited %d, not 1: %s", rc, out);
  }
  ASSERT_CONTAINS(out, "failed");
  ASSERT_CONTAINS(out, "every trial failed: COMPILE_ERROR 4");
  ASSERT_CONTAINS(out, "error: ");
  if (strstr(out, "best: ")) TEST_FAIL("a failed session named a best config: %s", out);
  farm_stop_all(&f, r, b, 0);
}

TEST_LIST(TEST_ENTRY(template_that_never_compiles_fails_its_session), TEST_ENTRY(three_kernels_under_one_name_never_answer_for_each_other),
          TEST_ENTRY(second_tracker_on_the_same_db_refuses),
          TEST_ENTRY(finished_session_survives_a_restart),
          TEST_ENTRY(chaos_never_becomes_data),
          TEST_ENTRY(silent_runner_never_stalls_a_session),
          TEST_ENTRY(failing_runner_never_becomes_data),
          TEST_ENTRY(tiny_costs_never_become_data),
          TEST_ENTRY(huge_errors_never_become_data),
          TEST_ENTRY(foreign_arch_runner_does_not_stop_its_key))
