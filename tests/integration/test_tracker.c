/* The tracker as a shared farm: real processes, real signals. Agents that
 * die or freeze, a tracker killed mid-session, sessions that share a key,
 * wait for a key nobody serves, or repeat work the history already has. */
#include <signal.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include "common/frame.h"
#include "common/wire.h"

#include "tests/integration/harness.h"
#include "tests/test.h"

/* Slow enough trials (about 0.1 s each under tcc) that a signal lands
 * while one is being measured. */
#define SLOW "matmul", "-D", "M=64", "-D", "N=64", "-D", "K=64", "--number", "100"

static void expect_session_ok(farm *f, long id, int trials) {
  sqlite3 *db = farm_db(f);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM trials WHERE session = %ld", id), trials);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(DISTINCT config) FROM trials WHERE session = %ld", id),
                trials);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM jobs WHERE session = %ld", id), 0);
  char state[32] = "";
  sqlite3_stmt *st;
  char sql[128];
  snprintf(sql, sizeof(sql), "SELECT state FROM sessions WHERE id = %ld", id);
  ASSERT_EQ_INT(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  ASSERT_EQ_INT(sqlite3_step(st), SQLITE_ROW);
  snprintf(state, sizeof(state), "%s", sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(db);
  ASSERT_EQ_STR(state, "done");
}

static void wait_session(farm *f, long id, int want_rc, const char *want_text) {
  char out[8192];
  int rc = farm_wait(f, id, 120000, out, sizeof(out));
  if (rc != want_rc) {
    farm_print_log(f);
    TEST_FAIL("ktune wait %ld exited %d, not %d: %s", id, rc, want_rc, out);
  }
  if (want_text) ASSERT_CONTAINS(out, want_text);
}

TEST(runner_killed_mid_session_its_job_finishes_elsewhere) {
  farm f;
  farm_start(&f, NULL);
  pid_t b = farm_builder(&f, "b1");
  pid_t r1 = farm_runner(&f, "r1", "k", NULL), r2 = farm_runner(&f, "r2", "k", NULL);
  farm_wait_agent(&f, "r1", 1);
  farm_wait_agent(&f, "r2", 1);
  char *args[] = {SLOW, "--trials", "12", "--key", "k", "--seed", "3", NULL};
  long id = farm_submit(&f, args);
  farm_wait_busy(&f, "r1");
  kill(r1, SIGKILL);
  waitpid(r1, NULL, 0);
  wait_session(&f, id, 0, "best: ");
  expect_session_ok(&f, id, 12);
  sqlite3 *db = farm_db(&f);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM trials WHERE status = 'ok'"), 12);
  sqlite3_close(db);
  farm_stop_all(&f, r2, b, 0);
}

TEST(tracker_killed_mid_session_resumes_on_restart) {
  farm f;
  farm_start(&f, NULL);
  pid_t b = farm_builder(&f, "b1");
  pid_t r = farm_runner(&f, "r1", "k", NULL);
  farm_wait_agent(&f, "r1", 1);
  char *args[] = {SLOW, "--trials", "14", "--key", "k", "--seed", "5", NULL};
  long id = farm_submit(&f, args);
  farm_wait_trials(&f, id, 3);
  kill(f.tracker, SIGKILL);
  waitpid(f.tracker, NULL, 0);
  farm_restart_tracker(&f, NULL);
  /* Nobody touches the agents: they dial the new tracker by themselves. */
  wait_session(&f, id, 0, "best: ");
  expect_session_ok(&f, id, 14);
  ASSERT_EQ_INT(waitpid(r, NULL, WNOHANG), 0);
  ASSERT_EQ_INT(waitpid(b, NULL, WNOHANG), 0);
  farm_stop_all(&f, r, b, 0);
}

TEST(frozen_runner_loses_its_job_after_the_heartbeat_timeout) {
  farm f;
  char *opts[] = {"--timeout-ms", "1000", NULL};
  farm_start(&f, opts);
  pid_t b = farm_builder(&f, "b1");
  pid_t r1 = farm_runner(&f, "r1", "k", NULL), r2 = farm_runner(&f, "r2", "k", NULL);
  farm_wait_agent(&f, "r1", 1);
  farm_wait_agent(&f, "r2", 1);
  char *args[] = {SLOW, "--trials", "10", "--key", "k", NULL};
  long id = farm_submit(&f, args);
  farm_wait_busy(&f, "r1");
  kill(r1, SIGSTOP);
  farm_wait_agent(&f, "r1", 0);
  wait_session(&f, id, 0, "best: ");
  expect_session_ok(&f, id, 10);
  /* Thawed, it dials again by itself. */
  kill(r1, SIGCONT);
  farm_wait_agent(&f, "r1", 1);
  farm_stop_all(&f, r1, r2, b);
}

TEST(job_that_keeps_losing_its_runner_ends_as_runner_lost) {
  farm f;
  char *opts[] = {"--max-lost", "1", NULL};
  farm_start(&f, opts);
  pid_t b = farm_builder(&f, "b1");
  pid_t r1 = farm_runner(&f, "r1", "k", NULL), r2 = farm_runner(&f, "r2", "k", NULL);
  farm_wait_agent(&f, "r1", 1);
  char *args[] = {SLOW, "--trials", "6", "--key", "k", NULL};
  long id = farm_submit(&f, args);
  farm_wait_busy(&f, "r1");
  kill(r1, SIGKILL);
  waitpid(r1, NULL, 0);
  wait_session(&f, id, 0, "failed 1");
  sqlite3 *db = farm_db(&f);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM trials WHERE session = %ld", id), 6);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM trials WHERE status = 'RUNNER_LOST'"), 1);
  sqlite3_close(db);
  farm_stop_all(&f, r2, b, 0);
}

TEST(two_sessions_of_equal_priority_share_one_runner) {
  farm f;
  farm_start(&f, NULL);
  pid_t b = farm_builder(&f, "b1");
  pid_t r = farm_runner(&f, "r1", "k", NULL);
  farm_wait_agent(&f, "r1", 1);
  /* Sharing during the search is the point: no confirmation at the end. */
  char *a1[] = {SLOW, "--trials", "16", "--key", "k", "--seed", "1", "--confirm", "0", NULL};
  char *a2[] = {SLOW, "--trials", "16", "--key", "k", "--seed", "2", "--confirm", "0", NULL};
  long s1 = farm_submit(&f, a1), s2 = farm_submit(&f, a2);
  int both = 0;
  for (int i = 0; i < 1500 && !both; i++) {
    json_t *st = farm_status(&f);
    json_t *x = farm_session(st, s1), *y = farm_session(st, s2);
    long d1 = json_integer_value(json_object_get(x, "trials_done"));
    long d2 = json_integer_value(json_object_get(y, "trials_done"));
    int running = !strcmp(json_string_value(json_object_get(x, "state")), "running") &&
                  !strcmp(json_string_value(json_object_get(y, "state")), "running");
    json_decref(st);
    if (d1 >= 2 && d2 >= 2 && running) both = 1;
    else proc_sleep_ms(20);
  }
  ASSERT(both);
  wait_session(&f, s1, 0, NULL);
  wait_session(&f, s2, 0, NULL);
  expect_session_ok(&f, s1, 16);
  expect_session_ok(&f, s2, 16);
  farm_stop_all(&f, r, b, 0);
}

TEST(session_for_a_key_nobody_serves_waits_then_fails) {
  farm f;
  farm_start(&f, NULL);
  char *args[] = {"matmul", "-D", "M=16", "--trials", "4", "--key", "nobody", "--wait-timeout",
                  "1500", NULL};
  long id = farm_submit(&f, args);
  json_t *st = farm_status(&f);
  json_t *s = farm_session(st, id);
  ASSERT_NOT_NULL(s);
  ASSERT_EQ_STR(json_string_value(json_object_get(s, "state")), "queued");
  json_decref(st);
  /* The sweep names what the session waits for. */
  int named = 0;
  for (int i = 0; i < 100 && !named; i++) {
    st = farm_status(&f);
    const char *msg = json_string_value(json_object_get(farm_session(st, id), "message"));
    named = msg && strstr(msg, "waiting for a runner with key 'nobody'");
    json_decref(st);
    if (!named) proc_sleep_ms(20);
  }
  ASSERT(named);
  wait_session(&f, id, 1, "nobody");
  farm_stop_tracker(&f);
}

TEST(identical_session_is_answered_from_the_history) {
  farm f;
  farm_start(&f, NULL);
  pid_t b = farm_builder(&f, "b1");
  pid_t r = farm_runner(&f, "r1", "k", NULL);
  farm_wait_agent(&f, "r1", 1);
  char *args[] = {"matmul", "-D", "M=32", "-D", "N=32", "-D", "K=32", "--trials", "5",
                  "--strategy", "grid", "--key", "k", NULL};
  long s1 = farm_submit(&f, args);
  wait_session(&f, s1, 0, "best: ");
  /* Nothing can be measured now: no runner, no builder. */
  proc_stop(r, SIGTERM, 5000);
  proc_stop(b, SIGTERM, 5000);
  farm_wait_agent(&f, "r1", 0);
  long s2 = farm_submit(&f, args);
  wait_session(&f, s2, 0, "best: ");
  expect_session_ok(&f, s2, 5);
  sqlite3 *db = farm_db(&f);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM trials WHERE session = %ld AND reused IN "
                               "(SELECT id FROM trials WHERE session = %ld)", s2, s1), 5);
  sqlite3_close(db);
  /* --remeasure asks for real measurements: with no runner it waits. */
  char *again[] = {"matmul", "-D", "M=32", "-D", "N=32", "-D", "K=32", "--trials", "5",
                   "--strategy", "grid", "--key", "k", "--remeasure", "--wait-timeout", "500", NULL};
  long s3 = farm_submit(&f, again);
  wait_session(&f, s3, 1, "no runner with key 'k'");
  farm_stop_tracker(&f);
}

TEST(cancel_stops_a_session_and_drops_its_queue) {
  farm f;
  farm_start(&f, NULL);
  pid_t b = farm_builder(&f, "b1");
  pid_t r = farm_runner(&f, "r1", "k", NULL);
  char *args[] = {SLOW, "--trials", "40", "--key", "k", NULL};
  long id = farm_submit(&f, args);
  farm_wait_trials(&f, id, 1);
  char out[4096], ids[32];
  snprintf(ids, sizeof(ids), "%ld", id);
  char *cancel[] = {"cancel", ids, NULL};
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 10000, cancel), 0);
  ASSERT_CONTAINS(out, "cancelled");
  wait_session(&f, id, 1, "cancelled");
  json_t *st = farm_status(&f);
  ASSERT_EQ_STR(json_string_value(json_object_get(farm_session(st, id), "state")), "cancelled");
  json_decref(st);
  sqlite3 *db = farm_db(&f);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM jobs"), 0);
  ASSERT_LT_INT(farm_query(db, "SELECT count(*) FROM trials WHERE session = %ld", id), 40);
  sqlite3_close(db);
  /* Cancelling again is an error that says the session had ended. */
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 10000, cancel), 1);
  farm_stop_all(&f, r, b, 0);
}

TEST(sigterm_drains_a_runner_after_its_job) {
  farm f;
  /* The job it holds is the one counted: not measured again elsewhere
   * because its rounds spread on a busy machine. */
  char *no_remeasure[] = {"--remeasure-spread-pct", "0", NULL};
  farm_start(&f, no_remeasure);
  pid_t b = farm_builder(&f, "b1");
  pid_t r1 = farm_runner(&f, "r1", "k", NULL), r2 = farm_runner(&f, "r2", "k", NULL);
  farm_wait_agent(&f, "r1", 1);
  farm_wait_agent(&f, "r2", 1);
  char *args[] = {"matmul", "-D", "M=64", "-D", "N=64", "-D", "K=64", "--number", "300",
                  "--trials", "8", "--key", "k", NULL};
  long id = farm_submit(&f, args);
  farm_wait_busy(&f, "r1");
  sqlite3 *db = farm_db(&f);
  long long before = farm_query(db, "SELECT count(*) FROM trials WHERE runner = 'r1'");
  kill(r1, SIGTERM);
  int st = 0;
  for (int i = 0; i < 3000 && waitpid(r1, &st, WNOHANG) == 0; i++) proc_sleep_ms(10);
  ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  /* The job it held was measured by it, not requeued. */
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM trials WHERE runner = 'r1'"), before + 1);
  sqlite3_close(db);
  wait_session(&f, id, 0, "best: ");
  expect_session_ok(&f, id, 8);
  db = farm_db(&f);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM trials WHERE status <> 'ok'"), 0);
  sqlite3_close(db);
  farm_stop_all(&f, r2, b, 0);
}

/* A runner played by hand (no token): hello as NAME of key KEY, of this
 * machine's architecture, measuring without the sandbox parts off ("":
 * none); returns the socket once welcomed. */
static int hand_runner(const farm *f, const char *name, const char *key, const char *off) {
  struct utsname u;
  ASSERT_EQ_INT(uname(&u), 0);
  Ktune__Hello h = KTUNE__HELLO__INIT;
  h.role = KTUNE__ROLE__ROLE_RUNNER;
  h.name = (char *)name;
  h.key = (char *)key;
  h.host = "hand";
  h.arch = u.machine;
  h.slots = 1;
  h.cpu_model = "by hand";
  h.cores = 1;
  h.sandbox_off = (char *)off;
  return farm_hello(f, &h);
}

/* The hand runner's answer to a job: every round asked for, 1 ms a call. */
static void hand_answer(int fd, const Ktune__RunJob *job) {
  uint32_t repeat = job->timing && job->timing->repeat ? job->timing->repeat : 1;
  double costs[64];
  for (uint32_t k = 0; k < repeat && k < 64; k++) costs[k] = 1e-3;
  Ktune__RunResult r = KTUNE__RUN_RESULT__INIT;
  r.job_id = job->job_id;
  r.status = WIRE_TRIAL(OK);
  r.costs_s = costs;
  r.n_costs_s = repeat < 64 ? repeat : 64;
  r.number = 1;
  r.clock = "monotonic";
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_RUN_RESULT, &r);
  ASSERT_EQ_INT(wire_write_fd(fd, &env), 0);
}

/* A farm of a builder and the hand runner "hand" of key k, and a session
 * of a small matmul for `trials` trials on it (*id); returns the runner's
 * socket. The hand runner sends no heartbeats: it must not be dropped. */
static int hand_farm(farm *f, const char *trials, pid_t *builder, long *id) {
  char *opts[] = {"--timeout-ms", "300000", NULL};
  farm_start(f, opts);
  *builder = farm_builder(f, "b1");
  farm_wait_agent(f, "b1", 1);
  int fd = hand_runner(f, "hand", "k", "");
  char *args[] = {"matmul", "-D", "M=16", "-D", "N=16", "-D", "K=16", "--trials", (char *)trials,
                  "--key", "k", "--confirm", "0", "--no-check", NULL};
  *id = farm_submit(f, args);
  return fd;
}

/* A ResultAck says the result is in the history: the tracker is killed
 * the moment the first one arrives, and the trial must be there. Jobs may
 * reach a runner before the commit of the turn that handed them out; an
 * acknowledgement may not. */
TEST(a_result_is_acknowledged_only_once_it_is_committed) {
  farm f;
  pid_t b;
  long id;
  int fd = hand_farm(&f, "50", &b, &id);
  int results = 0, acked = 0;
  for (int i = 0; i < 1000 && !acked; i++) {
    Ktune__Envelope *m = wire_read_fd(fd, FRAME_MAX_DEFAULT);
    ASSERT_NOT_NULL(m);
    if (m->msg_case == KTUNE__ENVELOPE__MSG_RESULT_ACK) {
      kill(f.tracker, SIGKILL);
      acked = 1;
    } else if (m->msg_case == KTUNE__ENVELOPE__MSG_RUN_JOB) {
      hand_answer(fd, m->run_job);
      results++;
    }
    wire_free(m);
  }
  ASSERT(acked);
  waitpid(f.tracker, NULL, 0);
  f.tracker = 0;
  sqlite3 *db = farm_db(&f);
  long long trials = farm_query(db, "SELECT count(*) FROM trials WHERE session = %ld", id);
  sqlite3_close(db);
  fprintf(stderr, "%d results sent, the first acknowledged; %lld trials in the history\n", results,
          trials);
  ASSERT(trials >= 1);
  close(fd);
  proc_stop(b, SIGTERM, 5000);
}

/* Each result is acknowledged once. An acknowledgement with nothing else
 * to go to its runner waits for the runner's next job, and without one
 * (the session's last result) goes on its own within JOBS_ACK_PARK_MS.
 * A job measured again keeps its id: each of its results is acknowledged. */
TEST(every_result_is_acknowledged_once_the_last_too) {
  farm f;
  pid_t b;
  long id;
  int fd = hand_farm(&f, "4", &b, &id);
  /* Results and acknowledgements by job id (ids start at 1). */
  enum { TRIALS = 4, MAX = 64 };
  int sent[MAX] = {0}, acked[MAX] = {0}, nsent = 0, nacked = 0;
  for (int i = 0; i < 400 && (nsent < TRIALS || nacked < nsent); i++) {
    /* NULL: 5 s went by without a message (the farm's read timeout). */
    Ktune__Envelope *m = wire_read_fd(fd, FRAME_MAX_DEFAULT);
    ASSERT_NOT_NULL(m);
    if (m->msg_case == KTUNE__ENVELOPE__MSG_RESULT_ACK) {
      uint64_t id = m->result_ack->job_id;
      ASSERT_LT_INT((long long)id, MAX);
      ASSERT_LT_INT(acked[id], sent[id]);
      acked[id]++;
      nacked++;
    } else if (m->msg_case == KTUNE__ENVELOPE__MSG_RUN_JOB) {
      uint64_t id = m->run_job->job_id;
      ASSERT_LT_INT((long long)id, MAX);
      hand_answer(fd, m->run_job);
      sent[id]++;
      nsent++;
    }
    wire_free(m);
  }
  ASSERT_GE_INT(nsent, TRIALS);
  ASSERT_EQ_INT(nacked, nsent);
  close(fd);
  proc_stop(b, SIGTERM, 5000);
  farm_stop_tracker(&f);
}

/* A farm larger than a screen: ktune status lists 40 agents, those that
 * need a look first (here the oldest, whose sandbox is partly off, which
 * a list in arrival order would leave out), and the 40 newest sessions;
 * the counts and the keys are of all of them, and --all lists all. */
TEST(status_lists_a_screenful_and_counts_every_one) {
  farm f;
  /* The hand runners send no heartbeats: long intervals keep them from
   * looking unheard (two intervals) or being dropped while the test runs. */
  char *opts[] = {"--max-sessions", "60", "--heartbeat-ms", "30000", "--timeout-ms", "300000",
                  NULL};
  farm_start(&f, opts);
  enum { N = 45 };
  int fds[N];
  for (int i = 0; i < N; i++) {
    char name[16];
    snprintf(name, sizeof(name), "h%02d", i);
    fds[i] = hand_runner(&f, name, "k", i == 0 ? "seccomp" : "");
  }
  char *wait[] = {"matmul", "-D", "M=16", "--trials", "4", "--key", "nobody", NULL};
  long first = 0, last = 0;
  for (int i = 0; i < N; i++) {
    last = farm_submit(&f, wait);
    if (!first) first = last;
  }
  static char out[1 << 18];
  char *args[] = {"status", NULL};
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 10000, args), 0);
  ASSERT_CONTAINS(out, "agents (45, 40 shown: those that need a look first; ktune status --all "
                       "for all)");
  ASSERT_CONTAINS(out, "sessions (45, 40 shown: the newest; ktune status --all for all)");
  ASSERT_CONTAINS(out, "sandbox OFF: seccomp"); /* h00, the oldest */
  char row[32];
  snprintf(row, sizeof(row), "\n  %-5ld ", last);
  ASSERT_CONTAINS(out, row);
  snprintf(row, sizeof(row), "\n  %-5ld ", first);
  ASSERT(strstr(out, row) == NULL);
  ASSERT_CONTAINS(out, "  k            45       0     45");
  char *all[] = {"status", "--all", NULL};
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 10000, all), 0);
  ASSERT_CONTAINS(out, "agents (45)\n");
  ASSERT_CONTAINS(out, "sessions (45)\n");
  json_t *st = farm_status(&f);
  ASSERT_EQ_INT(json_array_size(json_object_get(st, "agents")), N);
  ASSERT_EQ_INT(json_array_size(json_object_get(st, "sessions")), N);
  json_decref(st);
  for (int i = 0; i < N; i++) close(fds[i]);
  farm_stop_tracker(&f);
}

TEST_LIST(TEST_ENTRY(sigterm_drains_a_runner_after_its_job),
          TEST_ENTRY(a_result_is_acknowledged_only_once_it_is_committed),
          TEST_ENTRY(every_result_is_acknowledged_once_the_last_too),
          TEST_ENTRY(status_lists_a_screenful_and_counts_every_one), TEST_ENTRY(runner_killed_mid_session_its_job_finishes_elsewhere),
          TEST_ENTRY(tracker_killed_mid_session_resumes_on_restart),
          TEST_ENTRY(frozen_runner_loses_its_job_after_the_heartbeat_timeout),
          TEST_ENTRY(job_that_keeps_losing_its_runner_ends_as_runner_lost),
          TEST_ENTRY(two_sessions_of_equal_priority_share_one_runner),
          TEST_ENTRY(session_for_a_key_nobody_serves_waits_then_fails),
          TEST_ENTRY(identical_session_is_answered_from_the_history),
          TEST_ENTRY(cancel_stops_a_session_and_drops_its_queue))
