/* The whole path on real processes: ktune-tracker, ktune-builder and
 * ktune-runner on an ephemeral loopback port with a fresh history, driven
 * by the ktune command, checked through SQLite, ktune export and ktune
 * status, and hit with real signals and hostile bytes. */
#include <arpa/inet.h>
#include <dirent.h>
#include <sys/stat.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <sys/socket.h>

#include "common/frame.h"
#include "common/rng.h"
#include "common/wire.h"
#include "tests/integration/harness.h"
#include "tests/test.h"

static int status_has_agent(farm *f, const char *role, const char *name) {
  json_t *st = farm_status(f);
  json_t *a = farm_agent(st, name);
  int found = a && !strcmp(json_string_value(json_object_get(a, "role")), role);
  json_decref(st);
  return found;
}

enum { M = 37, N = 45, K = 29 };

/* A plain matmul from the same seeded inputs the runner used. */
static void reference_matmul(float *c) {
  float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N);
  ASSERT_EQ_INT(rng_fill_buffer("float", a, M * K, KTUNE_INPUT_SEED, 1), 0);
  ASSERT_EQ_INT(rng_fill_buffer("float", b, K * N, KTUNE_INPUT_SEED, 2), 0);
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0;
      for (int k = 0; k < K; k++) s += (double)a[i * K + k] * b[k * N + j];
      c[i * N + j] = (float)s;
    }
  free(a);
  free(b);
}

TEST(tune_16_trials_end_to_end) {
  farm f;
  farm_start(&f, NULL);
  char dump[300];
  snprintf(dump, sizeof(dump), "%s/dump", f.dir);
  ASSERT_EQ_INT(mkdir(dump, 0755), 0);
  pid_t builder = farm_builder(&f, "test-builder");
  pid_t runner = farm_runner(&f, "test-runner", "test", dump);
  farm_wait_agent(&f, "test-runner", 1);
  farm_wait_agent(&f, "test-builder", 1);

  static char out[1 << 16];
  char *tune[] = {"tune", "matmul", "-D", "M=37", "-D", "N=45", "-D", "K=29", "--trials", "16",
                  "--key", "test", "--seed", "7", NULL};
  int rc = farm_ktune(&f, out, sizeof(out), 120000, tune);
  if (rc != 0) TEST_FAIL("ktune tune exited %d:\n%s", rc, out);
  ASSERT_CONTAINS(out, "[16/16]");
  ASSERT_CONTAINS(out, "best: ");
  ASSERT_CONTAINS(out, "GFLOPS");

  /* The history, read as any SQLite user would. */
  sqlite3 *db = farm_db(&f);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM trials"), 16);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM trials WHERE status = 'ok'"), 16);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM trials WHERE mean_s > 0 AND gflops > 0"), 16);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(DISTINCT config) FROM trials"), 16);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM sessions WHERE state = 'done'"), 1);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM jobs"), 0);
  sqlite3_stmt *st;
  ASSERT_EQ_INT(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
  ASSERT_EQ_INT(sqlite3_step(st), SQLITE_ROW);
  ASSERT_EQ_STR((const char *)sqlite3_column_text(st, 0), "wal");
  sqlite3_finalize(st);
  sqlite3_close(db);

  /* ktune export: one JSON object per trial with the fields docs/HISTORY.md names. */
  static char exp[1 << 20];
  char *export[] = {(char *)proc_bin("cli/ktune"), "export", "--db", f.db, "--format", "jsonl", NULL};
  ASSERT_EQ_INT(proc_run(export, exp, sizeof(exp), 10000), 0);
  int lines = 0;
  for (char *line = strtok(exp, "\n"); line; line = strtok(NULL, "\n"), lines++) {
    json_error_t e;
    json_t *o = json_loads(line, 0, &e);
    ASSERT_NOT_NULL(o);
    ASSERT_EQ_STR(json_string_value(json_object_get(o, "task")), "matmul");
    ASSERT_EQ_INT(json_integer_value(json_object_get(json_object_get(o, "size"), "M")), 37);
    ASSERT(json_is_object(json_object_get(o, "config")));
    ASSERT_EQ_STR(json_string_value(json_object_get(o, "key")), "test");
    ASSERT_EQ_STR(json_string_value(json_object_get(o, "status")), "ok");
    ASSERT_EQ_STR(json_string_value(json_object_get(o, "runner")), "test-runner");
    ASSERT(json_string_value(json_object_get(o, "compiler")) != NULL);
    ASSERT(json_array_size(json_object_get(o, "costs_s")) == 3);
    ASSERT_GT_DBL(json_number_value(json_object_get(o, "mean_s")), 0);
    ASSERT_GT_DBL(json_number_value(json_object_get(o, "gflops")), 0);
    ASSERT(json_is_number(json_object_get(o, "build_s")));
    ASSERT(json_is_integer(json_object_get(o, "session")));
    ASSERT_CONTAINS(json_string_value(json_object_get(o, "timestamp")), "T");
    json_decref(o);
  }
  ASSERT_EQ_INT(lines, 16);

  /* The kernel's output for a trial matches a plain matmul computed here. */
  DIR *dd = opendir(dump);
  ASSERT_NOT_NULL(dd);
  struct dirent *de;
  int dumps = 0;
  char path[700] = "";
  while ((de = readdir(dd)))
    if (strncmp(de->d_name, "job-", 4) == 0 && dumps++ == 0)
      snprintf(path, sizeof(path), "%s/%s", dump, de->d_name);
  closedir(dd);
  /* One per trial, and one per config confirmed at the end (the default
   * 3; each runs again under its own job id). */
  ASSERT_EQ_INT(dumps, 16 + 3);
  FILE *df = fopen(path, "rb");
  ASSERT_NOT_NULL(df);
  float *got = malloc(sizeof(float) * M * N), *want = malloc(sizeof(float) * M * N);
  ASSERT_EQ_INT(fread(got, sizeof(float), M * N, df), M * N);
  fclose(df);
  reference_matmul(want);
  for (int i = 0; i < M * N; i++)
    if (fabsf(got[i] - want[i]) > 1e-4f + 1e-4f * fabsf(want[i]))
      TEST_FAIL("C[%d]: kernel %g, reference %g", i, got[i], want[i]);
  free(got);
  free(want);

  /* A runner killed outright disappears from status. */
  ASSERT(status_has_agent(&f, "runner", "test-runner"));
  kill(runner, SIGKILL);
  waitpid(runner, NULL, 0);
  int gone = 0;
  for (int i = 0; i < 250 && !gone; i++) {
    gone = !status_has_agent(&f, "runner", "test-runner");
    if (!gone) proc_sleep_ms(20);
  }
  ASSERT(gone);
  ASSERT(status_has_agent(&f, "builder", "test-builder"));
  proc_stop(builder, SIGTERM, 5000);
  farm_stop_tracker(&f);
}

/* Hostile bytes get an error and a close; the tracker keeps serving. */

/* Reads until the tracker closes; returns the error code it sent, if any. */
static void expect_error_and_close(int fd, const char *code) {
  Ktune__Envelope *env = wire_read_fd(fd, FRAME_MAX_DEFAULT);
  if (code) {
    ASSERT_NOT_NULL(env);
    ASSERT_EQ_INT(env->msg_case, KTUNE__ENVELOPE__MSG_ERROR);
    ASSERT_EQ_STR(env->error->code, code);
    wire_free(env);
    env = wire_read_fd(fd, FRAME_MAX_DEFAULT);
  }
  /* Then end of stream, not a timeout. */
  ASSERT_NULL(env);
  char c;
  ASSERT_EQ_INT(read(fd, &c, 1), 0);
  close(fd);
}

TEST(hostile_frames_do_not_hurt_the_tracker) {
  farm f;
  farm_start(&f, NULL);

  int fd = farm_dial(&f);
  ASSERT_EQ_INT(write(fd, "\x00\x00\x00\x05garba", 9), 9);
  expect_error_and_close(fd, "BAD_FRAME");

  fd = farm_dial(&f);
  ASSERT_EQ_INT(write(fd, "\x80\x00\x00\x00", 4), 4); /* a length of 2^31 */
  expect_error_and_close(fd, "FRAME_TOO_BIG");

  fd = farm_dial(&f);
  ASSERT_EQ_INT(write(fd, "\x00\x00\x00\x00", 4), 4); /* zero-length frame */
  expect_error_and_close(fd, "BAD_FRAME");

  fd = farm_dial(&f);
  Ktune__StatusRequest sr = KTUNE__STATUS_REQUEST__INIT;
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_STATUS_REQUEST;
  env.status_request = &sr;
  ASSERT_EQ_INT(wire_write_fd(fd, &env), 0);
  expect_error_and_close(fd, "NOT_HELLO");

  /* A truncated frame from a peer that then goes away. */
  fd = farm_dial(&f);
  ASSERT_EQ_INT(write(fd, "\x00\x00\x01\x00partial", 11), 11);
  close(fd);

  /* A runner saying hello without a key is refused with the reason. */
  fd = farm_dial(&f);
  Ktune__Hello h = KTUNE__HELLO__INIT;
  h.version = WIRE_PROTOCOL_VERSION;
  h.role = KTUNE__ROLE__ROLE_RUNNER;
  h.name = "keyless";
  env.msg_case = KTUNE__ENVELOPE__MSG_HELLO;
  env.hello = &h;
  ASSERT_EQ_INT(wire_write_fd(fd, &env), 0);
  expect_error_and_close(fd, "BAD_HELLO");

  /* Still serving. */
  json_t *j = farm_status(&f);
  ASSERT_EQ_INT(json_array_size(json_object_get(j, "agents")), 0);
  json_decref(j);
  farm_stop_tracker(&f);
}

TEST(local_farm_is_the_default) {
  char dir[256];
  proc_tmpdir(dir, sizeof(dir));
  char db[300];
  snprintf(db, sizeof(db), "%s/local.db", dir);
  unsetenv("KTUNE_TRACKER");
  static char out[1 << 16];
  char *tune[] = {(char *)proc_bin("cli/ktune"), "tune", "matmul", "-D", "M=32", "-D", "N=32",
                  "-D", "K=32", "--trials", "6", "--batch", "3", "--strategy", "grid", "--db", db, NULL};
  int rc = proc_run(tune, out, sizeof(out), 120000);
  if (rc != 0) TEST_FAIL("ktune tune exited %d:\n%s", rc, out);
  ASSERT_CONTAINS(out, "local farm on 127.0.0.1:");
  /* Its runner is there before the session: no wait to report. */
  ASSERT(!strstr(out, "waiting for a runner"));
  ASSERT_CONTAINS(out, "[3/6]");
  ASSERT_CONTAINS(out, "[6/6]");
  ASSERT_CONTAINS(out, "best: ");
  sqlite3 *h;
  ASSERT_EQ_INT(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  ASSERT_EQ_INT(farm_query(h, "SELECT count(*) FROM trials WHERE status = 'ok' AND key = 'local'"), 6);
  ASSERT_EQ_INT(farm_query(h, "SELECT count(DISTINCT config) FROM trials"), 6);
  sqlite3_close(h);
  /* The private farm is gone: nothing of it is left listening. */
  ASSERT_CONTAINS(out, "best: ");
}

TEST(usage_errors_exit_2_with_a_reason) {
  static char out[8192];
  char *unknown[] = {(char *)proc_bin("cli/ktune"), "tune", "no-such-task", NULL};
  ASSERT_EQ_INT(proc_run(unknown, out, sizeof(out), 10000), 2);
  ASSERT_CONTAINS(out, "no-such-task");
  char *badconst[] = {(char *)proc_bin("cli/ktune"), "tune", "matmul", "-D", "Q=3", NULL};
  ASSERT_EQ_INT(proc_run(badconst, out, sizeof(out), 10000), 2);
  ASSERT_CONTAINS(out, "Q");
  char *badstrat[] = {(char *)proc_bin("cli/ktune"), "tune", "matmul", "--strategy", "magic", NULL};
  ASSERT_EQ_INT(proc_run(badstrat, out, sizeof(out), 10000), 2);
  ASSERT_CONTAINS(out, "--strategy takes random, grid, ga, model, not 'magic'");
  char *nocmd[] = {(char *)proc_bin("cli/ktune"), "frobnicate", NULL};
  ASSERT_EQ_INT(proc_run(nocmd, out, sizeof(out), 10000), 2);
  char *nokey[] = {(char *)proc_bin("runner/ktune-runner"), "--tracker", "127.0.0.1:1", NULL};
  ASSERT_EQ_INT(proc_run(nokey, out, sizeof(out), 10000), 2);
  ASSERT_CONTAINS(out, "--key");
  /* Nothing listening: a runtime failure, said plainly. */
  char *down[] = {(char *)proc_bin("cli/ktune"), "status", "--tracker", "127.0.0.1:1", NULL};
  ASSERT_EQ_INT(proc_run(down, out, sizeof(out), 10000), 1);
  ASSERT_CONTAINS(out, "cannot reach the tracker");
}

TEST_LIST(TEST_ENTRY(tune_16_trials_end_to_end), TEST_ENTRY(hostile_frames_do_not_hurt_the_tracker),
          TEST_ENTRY(local_farm_is_the_default), TEST_ENTRY(usage_errors_exit_2_with_a_reason))
