/* ktune measure: configs as JSON lines on stdin, one result line each on
 * stdout, through a real farm (a tracker with a builder and a runner, or
 * the private local one). Bad lines are answered with an error line and
 * the rest go on; a config given twice is answered twice, the second from
 * the history; a session whose client leaves ends. Real processes,
 * loopback only, every wait bounded. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/harness.h"
#include "tests/test.h"

static char out[1 << 20], err[1 << 16];

/* Starts `ktune measure ARGS...` (a NULL-ended list) in dir with stdin
 * from fd, stdout and stderr to dir/out and dir/err. */
static pid_t start_measure(const char *dir, int in_fd, char *const args[]) {
  char *argv[40] = {(char *)proc_bin("cli/ktune"), "measure"};
  int n = 2;
  for (int i = 0; args[i] && n < 39; i++) argv[n++] = args[i];
  argv[n] = NULL;
  char o[300], e[300];
  snprintf(o, sizeof(o), "%s/out", dir);
  snprintf(e, sizeof(e), "%s/err", dir);
  pid_t pid = fork();
  if (pid == 0) {
    int ofd = open(o, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int efd = open(e, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (ofd < 0 || efd < 0 || chdir(dir) < 0) _exit(126);
    dup2(in_fd, 0);
    dup2(ofd, 1);
    dup2(efd, 2);
    execv(argv[0], argv);
    _exit(127);
  }
  return pid;
}

/* Runs `ktune measure ARGS...` on `input` to the end (killed after
 * timeout_ms); its stdout in out, stderr in err. The exit code. */
static int measure_run(const char *dir, const char *input, char *const args[], int timeout_ms) {
  char in[300];
  snprintf(in, sizeof(in), "%s/in", dir);
  proc_write_file(in, input);
  int fd = open(in, O_RDONLY);
  ASSERT_GE_INT(fd, 0);
  pid_t pid = start_measure(dir, fd, args);
  close(fd);
  int st = 0, done = 0;
  for (int waited = 0; waited < timeout_ms && !done; waited += 10) {
    if (waitpid(pid, &st, WNOHANG) == pid) done = 1;
    else proc_sleep_ms(10);
  }
  if (!done) st = proc_stop(pid, SIGKILL, 1000);
  char o[300], e[300];
  snprintf(o, sizeof(o), "%s/out", dir);
  snprintf(e, sizeof(e), "%s/err", dir);
  proc_read_file(o, out, sizeof(out));
  proc_read_file(e, err, sizeof(err));
  if (!done) TEST_FAIL("ktune measure did not end in %d ms; stderr:\n%s", timeout_ms, err);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The output lines as JSON objects, indexed by their "line" (1..n, each
 * once at most), `want` of them; fails the test otherwise. */
static void parse_lines(json_t **by_line, int n, int want) {
  static char text[sizeof(out)];
  memcpy(text, out, sizeof(out));
  memset(by_line, 0, (size_t)(n + 1) * sizeof(*by_line));
  int count = 0;
  for (char *p = text, *nl; *p; p = nl + 1) {
    nl = strchr(p, '\n');
    if (!nl) TEST_FAIL("the last output line has no newline: %s", p);
    *nl = 0;
    json_error_t je;
    json_t *o = json_loads(p, 0, &je);
    if (!json_is_object(o)) TEST_FAIL("an output line is not a JSON object (%s): %s", je.text, p);
    json_int_t line = json_integer_value(json_object_get(o, "line"));
    if (line < 1 || line > n) TEST_FAIL("an output line has no line number 1..%d: %s", n, p);
    if (by_line[line]) TEST_FAIL("line %lld is answered twice: %s", (long long)line, p);
    by_line[line] = o;
    count++;
  }
  if (count != want)
    TEST_FAIL("%d output lines, not %d:\n%s\nstderr:\n%s", count, want, out, err);
}

static void free_lines(json_t **by_line, int n) {
  for (int i = 1; i <= n; i++) json_decref(by_line[i]);
}

/* A measured (or reused) ok trial: its export fields, with a time. */
static void expect_ok(json_t *o, int line) {
  const char *status = json_string_value(json_object_get(o, "status"));
  if (!status || strcmp(status, "ok") != 0) {
    char *t = json_dumps(o, JSON_COMPACT);
    TEST_FAIL("line %d is not ok: %s\nstderr:\n%s", line, t, err);
  }
  ASSERT_GT_DBL(json_number_value(json_object_get(o, "mean_s")), 0);
  ASSERT_GT_DBL(json_number_value(json_object_get(o, "gflops")), 0);
  ASSERT(json_is_object(json_object_get(o, "config")));
  ASSERT(json_is_string(json_object_get(o, "digest")));
  ASSERT_NULL(json_object_get(o, "error") && !json_is_null(json_object_get(o, "error"))
                  ? json_object_get(o, "error") : NULL);
}

/* A line that was not measured: an error, and no trial. */
static void expect_error(json_t *o, const char *says) {
  ASSERT_CONTAINS(json_string_value(json_object_get(o, "error")), says);
  ASSERT_NULL(json_object_get(o, "status"));
  ASSERT_EQ_INT(json_object_size(o), 2);
}

/* Valid configs of matmul (MR * NV * VW >= 64), all different. */
static void config_line(char *buf, size_t len, int i) {
  static const int mr[] = {4, 8}, nv[] = {2, 4}, vw[] = {8, 16}, ku[] = {1, 2, 4};
  snprintf(buf, len, "{\"MR\":%d,\"NV\":%d,\"VW\":%d,\"KU\":%d,\"KC\":64,\"MC\":32,\"NC\":256}\n",
           mr[i % 2], nv[i / 2 % 2], vw[i / 4 % 2], ku[i / 8 % 3]);
}

/* The options of `ktune measure` for a small matmul on f's farm (NULL:
 * the private local farm, history in the folder it runs in), with one
 * more option when extra is given; args has room for 16. */
static void small_args(char **args, const farm *f, const char *extra) {
  char *small[] = {"matmul", "-D", "M=64", "-D", "N=64", "-D", "K=64", "--compiler", "tcc"};
  int n = 9;
  memcpy(args, small, sizeof(small));
  if (f) {
    args[n++] = "--tracker";
    args[n++] = (char *)f->addr;
    args[n++] = "--key";
    args[n++] = "k";
  } else {
    args[n++] = "--db";
    args[n++] = "history.db";
  }
  if (extra) args[n++] = (char *)extra;
  args[n] = NULL;
}

static int measure_small(const char *dir, const farm *f, const char *input, const char *extra) {
  char *args[16];
  small_args(args, f, extra);
  return measure_run(dir, input, args, 90000);
}

TEST(twenty_configs_each_answered_on_its_own_line) {
  farm f;
  farm_start(&f, NULL);
  pid_t b = farm_builder(&f, "b1");
  pid_t r = farm_runner(&f, "r1", "k", NULL);
  farm_wait_agent(&f, "r1", 1);
  /* 18 configs, a line that is not JSON (5) and one that the constraint
   * rules out (12). */
  char input[4096] = "";
  for (int line = 1, i = 0; line <= 20; line++) {
    char one[200];
    if (line == 5) snprintf(one, sizeof(one), "{\"MR\":4,\"NV\":2,\n");
    else if (line == 12)
      snprintf(one, sizeof(one), "{\"MR\":2,\"NV\":1,\"VW\":8,\"KU\":2,\"KC\":64,\"MC\":32,\"NC\":256}\n");
    else config_line(one, sizeof(one), i++);
    strcat(input, one);
  }
  int rc = measure_small(f.dir, &f, input, NULL);
  if (rc != 0) {
    farm_print_log(&f);
    TEST_FAIL("ktune measure exited %d:\n%s\nstderr:\n%s", rc, out, err);
  }
  json_t *by_line[21];
  parse_lines(by_line, 20, 20);
  for (int line = 1; line <= 20; line++) {
    if (line == 5) expect_error(by_line[line], "malformed JSON");
    else if (line == 12) expect_error(by_line[line], "MR * NV * VW >= 64");
    else expect_ok(by_line[line], line);
  }
  /* Each result is the trial's row as export writes it. */
  sqlite3 *db = farm_db(&f);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM trials WHERE status = 'ok'"), 18);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM sessions WHERE strategy = 'external' AND "
                               "state = 'done'"), 1);
  sqlite3_close(db);
  json_t *first = by_line[1];
  char sql[256];
  snprintf(sql, sizeof(sql), "SELECT mean_s = %.17g FROM trials WHERE id = %lld",
           json_real_value(json_object_get(first, "mean_s")),
           (long long)json_integer_value(json_object_get(first, "id")));
  db = farm_db(&f);
  ASSERT_EQ_INT(farm_query(db, "%s", sql), 1);
  sqlite3_close(db);
  free_lines(by_line, 20);
  farm_stop_all(&f, b, r, 0);
}

TEST(a_config_twice_is_answered_twice) {
  /* The private local farm, as without --tracker. */
  char dir[256];
  proc_tmpdir(dir, sizeof(dir));
  unsetenv("KTUNE_TRACKER");
  char a[200], b[200], input[1024];
  config_line(a, sizeof(a), 0);
  config_line(b, sizeof(b), 7);
  snprintf(input, sizeof(input), "%s%s%s\n%s", a, b, a, a);
  int rc = measure_small(dir, NULL, input, NULL);
  if (rc != 0) TEST_FAIL("ktune measure exited %d:\n%s\nstderr:\n%s", rc, out, err);
  /* Lines 1, 2, 3 and 5; line 4 is blank. */
  json_t *by_line[6];
  parse_lines(by_line, 5, 4);
  ASSERT_NULL(by_line[4]);
  for (int line = 1; line <= 5; line++)
    if (line != 4) expect_ok(by_line[line], line);
  /* The repeats waited for the first, and the history answered them. */
  json_int_t first = json_integer_value(json_object_get(by_line[1], "id"));
  ASSERT(json_is_null(json_object_get(by_line[1], "reused_from")));
  ASSERT(json_is_null(json_object_get(by_line[2], "reused_from")));
  ASSERT_EQ_INT(json_integer_value(json_object_get(by_line[3], "reused_from")), first);
  /* The newest answer of that config answers the next: line 1's or 3's. */
  json_int_t from = json_integer_value(json_object_get(by_line[5], "reused_from"));
  ASSERT(from == first || from == json_integer_value(json_object_get(by_line[3], "id")));
  for (int line = 3; line <= 5; line += 2)
    ASSERT_EQ_DBL(json_number_value(json_object_get(by_line[line], "mean_s")),
                  json_number_value(json_object_get(by_line[1], "mean_s")), 0);
  free_lines(by_line, 5);

  /* Again: all from the history; with --remeasure, all measured anew. */
  ASSERT_EQ_INT(measure_small(dir, NULL, input, NULL), 0);
  parse_lines(by_line, 5, 4);
  for (int line = 1; line <= 5; line++)
    if (line != 4) ASSERT_GT_DBL(json_integer_value(json_object_get(by_line[line], "reused_from")), 0);
  free_lines(by_line, 5);
  ASSERT_EQ_INT(measure_small(dir, NULL, input, "--remeasure"), 0);
  parse_lines(by_line, 5, 4);
  for (int line = 1; line <= 5; line++)
    if (line != 4) {
      expect_ok(by_line[line], line);
      ASSERT(json_is_null(json_object_get(by_line[line], "reused_from")));
    }
  free_lines(by_line, 5);
}

TEST(unknown_and_missing_knobs_and_values_off_the_list) {
  char dir[256];
  proc_tmpdir(dir, sizeof(dir));
  unsetenv("KTUNE_TRACKER");
  const char *input =
      "{\"MR\":4,\"NV\":2,\"VW\":8,\"KU\":2,\"KC\":64,\"MC\":32,\"XX\":256}\n"
      "{\"MR\":4,\"NV\":2,\"VW\":8,\"KU\":2,\"KC\":64,\"MC\":32}\n"
      "{\"MR\":5,\"NV\":2,\"VW\":8,\"KU\":2,\"KC\":64,\"MC\":32,\"NC\":256}\n"
      "[4,2]\n"
      "{\"MR\":\"4\",\"NV\":2,\"VW\":8,\"KU\":2,\"KC\":64,\"MC\":32,\"NC\":256}\n"
      "{\"MR\":4,\"NV\":2,\"VW\":8,\"KU\":2,\"KC\":64,\"MC\":32,\"NC\":256}";
  int rc = measure_small(dir, NULL, input, NULL);
  if (rc != 0) TEST_FAIL("ktune measure exited %d:\n%s\nstderr:\n%s", rc, out, err);
  json_t *by_line[7];
  parse_lines(by_line, 6, 6);
  expect_error(by_line[1], "unknown knob 'XX'");
  expect_error(by_line[2], "missing knob NC");
  expect_error(by_line[3], "MR=5 is not one of MR's values (2, 4, 6, 8)");
  expect_error(by_line[4], "JSON object");
  expect_error(by_line[5], "whole number");
  expect_ok(by_line[6], 6); /* the last line needs no newline */
  free_lines(by_line, 6);
}

TEST(a_session_ends_when_its_client_leaves) {
  farm f;
  farm_start(&f, NULL);
  pid_t b = farm_builder(&f, "b1");
  pid_t r = farm_runner(&f, "r1", "k", NULL);
  farm_wait_agent(&f, "r1", 1);
  int fds[2];
  ASSERT_EQ_INT(pipe(fds), 0);
  char *args[16];
  small_args(args, &f, NULL);
  pid_t m = start_measure(f.dir, fds[0], args);
  close(fds[0]);
  char one[200];
  config_line(one, sizeof(one), 3);
  ASSERT_EQ_INT(write(fds[1], one, strlen(one)), (long long)strlen(one));
  /* Its first result is out while stdin stays open. */
  char path[300];
  snprintf(path, sizeof(path), "%s/out", f.dir);
  int answered = 0;
  for (int i = 0; i < 3000 && !answered; i++) {
    proc_read_file(path, out, sizeof(out));
    answered = strstr(out, "\"line\":1,") != NULL;
    if (!answered) proc_sleep_ms(10);
  }
  if (!answered) {
    farm_print_log(&f);
    TEST_FAIL("no result while stdin is open: %s", out);
  }
  json_t *st = farm_status(&f);
  json_t *s = farm_session(st, 1);
  ASSERT_NOT_NULL(s);
  ASSERT_EQ_STR(json_string_value(json_object_get(s, "strategy")), "external");
  ASSERT_EQ_STR(json_string_value(json_object_get(s, "state")), "running");
  json_decref(st);
  /* Killed: nobody can send it configs any more. */
  proc_stop(m, SIGKILL, 1000);
  close(fds[1]);
  char state[32] = "";
  for (int i = 0; i < 500 && (!state[0] || !strcmp(state, "running")); i++) {
    if (i) proc_sleep_ms(20);
    st = farm_status(&f);
    s = farm_session(st, 1);
    snprintf(state, sizeof(state), "%s", s ? json_string_value(json_object_get(s, "state")) : "");
    json_decref(st);
  }
  if (!strcmp(state, "running")) {
    farm_print_log(&f);
    TEST_FAIL("the session of a client that left still runs");
  }
  ASSERT_EQ_STR(state, "cancelled");
  farm_stop_all(&f, b, r, 0);
}

TEST(usage_errors_exit_2) {
  char dir[256];
  proc_tmpdir(dir, sizeof(dir));
  unsetenv("KTUNE_TRACKER");
  ASSERT_EQ_INT(measure_run(dir, "", (char *[]){NULL}, 10000), 2);
  ASSERT_CONTAINS(err, "name one task");
  ASSERT_EQ_INT(measure_run(dir, "", (char *[]){"matmul", "--key", "a b", NULL}, 10000), 2);
  ASSERT_CONTAINS(err, "'a b'");
  ASSERT_EQ_INT(measure_run(dir, "", (char *[]){"matmul", "--tracker", "127.0.0.1:1", NULL},
                            10000), 2);
  ASSERT_CONTAINS(err, "--key KEY");
  ASSERT_EQ_INT(measure_run(dir, "", (char *[]){"--help", NULL}, 10000), 0);
  ASSERT_CONTAINS(out, "usage: ktune measure TASK");
  ASSERT_CONTAINS(out, "Exit status");
  ASSERT_EQ_INT(strlen(err), 0);
}

TEST_LIST(TEST_ENTRY(twenty_configs_each_answered_on_its_own_line),
          TEST_ENTRY(a_config_twice_is_answered_twice),
          TEST_ENTRY(unknown_and_missing_knobs_and_values_off_the_list),
          TEST_ENTRY(a_session_ends_when_its_client_leaves), TEST_ENTRY(usage_errors_exit_2))
