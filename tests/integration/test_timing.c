/* One Timing from end to end: every timing option set on the command line
 * reaches the runner and comes back into the history; an option out of
 * range is refused with the same words by the CLI and by the tracker;
 * and the canonical timing JSON stays what old history rows hold. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "common/frame.h"
#include "common/timing.h"
#include "common/wire.h"
#include "tests/integration/harness.h"
#include "tests/test.h"

static char *read_text(const char *path) {
  FILE *fp = fopen(path, "r");
  if (!fp) TEST_FAIL("cannot open %s", path);
  static char buf[1 << 20];
  size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
  buf[n] = 0;
  fclose(fp);
  return buf;
}

TEST(timing_json_is_what_old_rows_hold) {
  Ktune__Timing tm;
  char err[256];
  timing_copy(&tm, NULL);
  ASSERT_EQ_INT(timing_fill(&tm, err, sizeof(err)), 0);
  char *j = timing_json(&tm);
  ASSERT_EQ_STR(j, "{\"cooldown_ms\":0,\"flush_cache\":false,\"min_repeat_ms\":0,\"number\":1,"
                   "\"repeat\":3}");
  free(j);
  ASSERT_EQ_INT(tm.timeout_ms, 60000);
}

TEST(every_option_reaches_the_runner_and_the_history) {
  farm f;
  farm_start(&f, NULL);
  /* The runner logs what timing each job carried at debug level. */
  setenv("KTUNE_DEBUG", "1", 1);
  pid_t b = farm_builder(&f, "b1");
  pid_t r = farm_runner(&f, "r1", "k", NULL);
  unsetenv("KTUNE_DEBUG");
  farm_wait_agent(&f, "r1", 1);
  farm_wait_agent(&f, "b1", 1);

  static char out[1 << 16];
  char *tune[] = {"tune", "matmul", "-D", "M=37", "-D", "N=45", "-D", "K=29", "--trials", "2",
                  "--key", "k", "--seed", "3", "--number", "2", "--repeat", "4",
                  "--min-repeat-ms", "2", "--cooldown-ms", "3", "--flush-cache", "--timeout",
                  "45000", NULL};
  int rc = farm_ktune(&f, out, sizeof(out), 120000, tune);
  if (rc != 0) {
    farm_print_log(&f);
    TEST_FAIL("ktune tune exited %d:\n%s", rc, out);
  }

  /* What the runner received, every option. */
  ASSERT_CONTAINS(read_text(f.log), "number 2, repeat 4, min_repeat_ms 2, cooldown_ms 3, "
                                    "flush_cache 1, timeout_ms 45000");

  /* What the history holds: the options as its canonical JSON, the rounds
   * and the calls (min_repeat_ms may have raised number above 2). */
  sqlite3 *db = farm_db(&f);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM trials WHERE status = 'ok'"), 2);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM trials WHERE timing = "
                               "'{\"cooldown_ms\":3,\"flush_cache\":true,\"min_repeat_ms\":2,"
                               "\"number\":2,\"repeat\":4}'"),
                2);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM trials WHERE repeat = 4 AND number >= 2 "
                               "AND calls = number * 4 AND json_array_length(costs) = 4"),
                2);
  sqlite3_close(db);
  farm_stop_all(&f, r, b, 0);
}

/* A client that logs in and submits a session the CLI would never send. */
static Ktune__Envelope *raw_submit(farm *f, const Ktune__Timing *tm) {
  Ktune__Hello h = KTUNE__HELLO__INIT;
  h.role = KTUNE__ROLE__ROLE_CLIENT;
  h.name = "raw";
  int fd = farm_hello(f, &h);
  Ktune__TaskSpec task = KTUNE__TASK_SPEC__INIT;
  task.name = "raw";
  Ktune__SubmitSession s = KTUNE__SUBMIT_SESSION__INIT;
  s.task = &task;
  s.key = "k";
  s.trials = 1;
  s.timing = (Ktune__Timing *)tm;
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_SUBMIT, &s);
  ASSERT_EQ_INT(wire_write_fd(fd, &env), 0);
  /* SubmitReceived, then the verdict; heartbeats may come between. */
  Ktune__Envelope *m;
  while ((m = wire_read_fd(fd, FRAME_MAX_DEFAULT)) &&
         (m->msg_case == KTUNE__ENVELOPE__MSG_SUBMIT_RECEIVED ||
          m->msg_case == KTUNE__ENVELOPE__MSG_HEARTBEAT))
    wire_free(m);
  close(fd);
  if (!m) TEST_FAIL("the tracker sent no verdict");
  return m;
}

TEST(out_of_range_is_refused_alike_by_the_cli_and_the_tracker) {
  farm f;
  farm_start(&f, NULL);
  static char out[1 << 14];
  const char *want = "--repeat takes a whole number from 1 to 10000, not 10001";
  char *tune[] = {"tune", "matmul", "--key", "k", "--repeat", "10001", NULL};
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 30000, tune), 2);
  ASSERT_CONTAINS(out, want);

  Ktune__Timing tm = KTUNE__TIMING__INIT;
  tm.repeat = 10001;
  Ktune__Envelope *m = raw_submit(&f, &tm);
  ASSERT_EQ_INT(m->msg_case, KTUNE__ENVELOPE__MSG_ERROR);
  ASSERT_EQ_STR(m->error->code, "BAD_SESSION");
  ASSERT_CONTAINS(m->error->message, want);
  wire_free(m);

  /* Every bounded option, both ways: the table's words. */
  for (int i = 0; i < TIMING_NOPTS; i++) {
    const timing_field *tf = &timing_fields[i];
    if (!tf->arg) continue;
    char big[16], msg[160];
    snprintf(big, sizeof(big), "%u", tf->max + 1);
    snprintf(msg, sizeof(msg), "--%s takes a whole number from %u to %u, not %s", tf->option,
             tf->min, tf->max, big);
    char opt[40];
    snprintf(opt, sizeof(opt), "--%s", tf->option);
    char *args[] = {"tune", "matmul", "--key", "k", opt, big, NULL};
    ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 30000, args), 2);
    ASSERT_CONTAINS(out, msg);
    Ktune__Timing bad = KTUNE__TIMING__INIT;
    *(uint32_t *)((char *)&bad + tf->offset) = tf->max + 1;
    m = raw_submit(&f, &bad);
    ASSERT_EQ_INT(m->msg_case, KTUNE__ENVELOPE__MSG_ERROR);
    ASSERT_CONTAINS(m->error->message, msg);
    wire_free(m);
  }
  /* Not a number at all: quoted, as the CLI read it. */
  char *nan[] = {"tune", "matmul", "--key", "k", "--number", "2x", NULL};
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 30000, nan), 2);
  ASSERT_CONTAINS(out, "--number takes a whole number from 1 to 1000000, not '2x'");
  farm_stop_tracker(&f);
}

/* Tunes 3 configs of a kernel that spins `slow` iterations on every
 * other call and `fast` on the others: 4 rounds of one call each, whose
 * spread is far over 20%. */
static void tune_erratic(farm *f, long slow, long fast) {
  char spec[400], src[400];
  snprintf(src, sizeof(src), "%s/erratic.c", f->dir);
  snprintf(spec, sizeof(spec), "%s/erratic.json", f->dir);
  FILE *fp = fopen(src, "w");
  ASSERT_NOT_NULL(fp);
  fprintf(fp,
          "static int calls;\n"
          "void k(float *C, const float *A) {\n"
          "  volatile float x = 0;\n"
          "  long spin = calls++ %% 2 ? %ld : %ld;\n"
          "  for (long i = 0; i < spin; i++) x += A[i %% N];\n"
          "  for (long i = 0; i < N; i++) C[i] = A[i] * U;\n"
          "}\n"
          "void k_ref(float *C, const float *A) { for (long i = 0; i < N; i++) C[i] = A[i] * 2; }\n",
          slow, fast);
  fclose(fp);
  fp = fopen(spec, "w");
  ASSERT_NOT_NULL(fp);
  fputs("{\"name\": \"erratic\", \"source\": \"erratic.c\", \"entry\": \"k\","
        " \"reference\": \"k_ref\", \"constants\": {\"N\": 64},"
        " \"args\": [{\"name\": \"C\", \"type\": \"float\", \"count\": \"N\", \"output\": true},"
        " {\"name\": \"A\", \"type\": \"float\", \"count\": \"N\"}],"
        " \"knobs\": {\"U\": [2], \"V\": [1, 2, 3]}, \"flops\": \"N\"}\n", fp);
  fclose(fp);
  static char out[1 << 16];
  char *tune[] = {"tune", spec, "--trials", "3", "--strategy", "grid", "--key", "k", "--repeat",
                  "4", "--confirm", "0", NULL};
  int rc = farm_ktune(f, out, sizeof(out), 120000, tune);
  if (rc != 0) {
    farm_print_log(f);
    TEST_FAIL("ktune tune exited %d:\n%s", rc, out);
  }
  sqlite3 *db = farm_db(f);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM trials WHERE task = 'erratic'"), 3);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(DISTINCT config) FROM trials WHERE task = 'erratic'"),
                3);
  sqlite3_close(db);
}

/* A measurement whose rounds disagree (this kernel is slow on every other
 * call) is measured again before it becomes a trial, once: the trial
 * keeps the first one's spread, and no trial is recorded twice. */
TEST(a_measurement_whose_rounds_disagree_is_measured_again) {
  farm f;
  farm_start(&f, NULL);
  pid_t b = farm_builder(&f, "b1");
  pid_t r = farm_runner(&f, "r1", "k", NULL);
  farm_wait_agent(&f, "r1", 1);
  tune_erratic(&f, 400000, 4000);
  sqlite3 *db = farm_db(&f);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM trials WHERE task = 'erratic' AND"
                               " status = 'ok' AND retried_cv > 0.2"), 3);
  sqlite3_close(db);
  ASSERT_CONTAINS(read_text(f.log), "measuring it again");
  farm_stop_all(&f, r, b, 0);
}

/* Rounds of a few microseconds spread whatever the machine does: they are
 * not measured again (which would spread as much and double the runner's
 * work), and the log says once what would make them longer. */
TEST(rounds_too_short_to_time_are_not_measured_again) {
  farm f;
  farm_start(&f, NULL);
  pid_t b = farm_builder(&f, "b1");
  pid_t r = farm_runner(&f, "r1", "k", NULL);
  farm_wait_agent(&f, "r1", 1);
  tune_erratic(&f, 200, 2); /* rounds of 0.1 to 5 us, far under 10 */
  sqlite3 *db = farm_db(&f);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM trials WHERE task = 'erratic' AND"
                               " status = 'ok' AND retried_cv IS NULL AND std_s / mean_s > 0.2"),
                3);
  sqlite3_close(db);
  const char *log = read_text(f.log);
  ASSERT(strstr(log, "measuring it again") == NULL);
  const char *said = strstr(log, "too short to say more when measured again; --min-repeat-ms 1");
  ASSERT_NOT_NULL(said);
  ASSERT(strstr(said + 1, "too short to say more") == NULL); /* once a session */
  farm_stop_all(&f, r, b, 0);
}

TEST_LIST(TEST_ENTRY(timing_json_is_what_old_rows_hold),
          TEST_ENTRY(a_measurement_whose_rounds_disagree_is_measured_again),
          TEST_ENTRY(rounds_too_short_to_time_are_not_measured_again),
          TEST_ENTRY(every_option_reaches_the_runner_and_the_history),
          TEST_ENTRY(out_of_range_is_refused_alike_by_the_cli_and_the_tracker))
