/* The first hour: what a newcomer meets. Failures named on the progress
 * line, tokens made by ktune, a wait for a mistyped key said at once,
 * Ctrl-C that cancels, seeds that differ, a header that counts the valid
 * configs, and no speed of 0 for a batch that measured nothing. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/harness.h"
#include "tests/test.h"

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Waits up to timeout_ms for text in the file; the seconds it took, or
 * fails the test. */
static double wait_text(const farm *f, const char *path, const char *text, int timeout_ms) {
  static char buf[1 << 16];
  double t0 = mono_s();
  for (;;) {
    proc_read_file(path, buf, sizeof(buf));
    if (strstr(buf, text)) return mono_s() - t0;
    if ((mono_s() - t0) * 1e3 > timeout_ms) {
      farm_print_log(f);
      TEST_FAIL("\"%s\" did not appear within %d ms; output: %s", text, timeout_ms, buf);
    }
    proc_sleep_ms(10);
  }
}

/* `ktune tune ARGS... --tracker ADDR` in the background, output to path. */
static pid_t tune_in_background(farm *f, const char *path, char *const args[]) {
  char *argv[48] = {(char *)proc_bin("cli/ktune"), "tune"};
  int n = 2;
  for (int i = 0; args[i] && n < 45; i++) argv[n++] = args[i];
  argv[n++] = "--tracker";
  argv[n++] = f->addr;
  argv[n] = NULL;
  return proc_start(argv, path);
}

/* `ktune ARGS...` with no --tracker added. */
static int ktune_plain(char *out, size_t outlen, char *const args[]) {
  return proc_ktune(NULL, args, out, outlen, 30000);
}

/* A farm (tracker options opts) with runner r1 of key, ready. */
static pid_t farm_with_runner(farm *f, char *const opts[], const char *key) {
  farm_start(f, opts);
  pid_t r = farm_runner(f, "r1", key, NULL);
  farm_wait_agent(f, "r1", 1);
  return r;
}

/* A farm with builder b1 and runner r1 of key k, r1 ready. */
static void farm_with_agents(farm *f, pid_t *b, pid_t *r) {
  farm_start(f, NULL);
  *b = farm_builder(f, "b1");
  *r = farm_runner(f, "r1", "k", NULL);
  farm_wait_agent(f, "r1", 1);
}

/* Item 1 and 7: a build that never works is named on the progress line,
 * and a batch with nothing measured shows no speed. */
TEST(failures_are_named_on_the_progress_line) {
  farm f;
  pid_t b, r;
  farm_with_agents(&f, &b, &r);
  char src[512], spec[512], out[16384];
  snprintf(src, sizeof(src), "%s/rowsum.c", f.dir);
  proc_write_file(src, "void k(float *C, const float *A) {\n"
                       "  for (long i = 0; i < N; i += U) C[i] = A[i];\n"
                       "  not_declared_anywhere(C);\n"
                       "  this is not C;\n"
                       "}\n"
                       "void k_ref(float *C, const float *A) { (void)C; (void)A; }\n");
  snprintf(spec, sizeof(spec), "%s/rowsum.json", f.dir);
  proc_write_file(spec, "{\"name\": \"rowsum\", \"source\": \"rowsum.c\", \"entry\": \"k\", "
                        "\"reference\": \"k_ref\",\n"
                        " \"constants\": {\"N\": 1024},\n"
                        " \"args\": [{\"name\": \"C\", \"type\": \"float\", \"count\": \"N\", "
                        "\"output\": true},\n"
                        "          {\"name\": \"A\", \"type\": \"float\", \"count\": \"N\"}],\n"
                        " \"knobs\": {\"U\": [1, 2, 4, 8, 16, 32, 64, 128]},\n"
                        " \"flops\": \"N\"}\n");
  char *args[] = {"tune", spec, "--trials", "8", "--batch", "4", "--key", "k", NULL};
  int rc = farm_ktune(&f, out, sizeof(out), 60000, args);
  if (rc != 1) {
    farm_print_log(&f);
    TEST_FAIL("a session whose every build fails exited %d, not 1: %s", rc, out);
  }
  /* The batch line and the final one both say what failed and why. */
  ASSERT_CONTAINS(out, "[4/8] last        -");
  ASSERT_CONTAINS(out, "failed 4 (COMPILE_ERROR 4: ");
  ASSERT_CONTAINS(out, "failed 8 (COMPILE_ERROR 8: ");
  ASSERT_CONTAINS(out, "rowsum.c:");
  if (strstr(out, "last    0.000")) TEST_FAIL("an empty batch showed a speed of 0: %s", out);
  /* One line each: the first error's first line, cut short. */
  const char *line = strstr(out, "failed 8 (");
  size_t len = strcspn(line, "\n");
  if (len > 160) TEST_FAIL("the progress line is %zu characters long: %s", len, out);
  farm_stop_all(&f, r, b, 0);
}

/* Who the next program started logs in as; NULL: nobody. */
static void as_user(const char *name, const char *token) {
  if (name) setenv("KTUNE_USER", name, 1);
  else unsetenv("KTUNE_USER");
  if (token) setenv("KTUNE_TOKEN", token, 1);
  else unsetenv("KTUNE_TOKEN");
}

/* Item 2: three lines of `ktune token new` are a tokens file a farm runs on. */
TEST(token_new_makes_a_tokens_file_a_farm_runs_on) {
  char dir[256], path[300], out[1024];
  proc_tmpdir(dir, sizeof(dir));
  snprintf(path, sizeof(path), "%s/tokens", dir);
  const char *who[3][2] = {{"admin", "alice"}, {"builder", "b1"}, {"runner", "r1"}};
  char tok[3][128];
  FILE *tf = fopen(path, "w");
  ASSERT_NOT_NULL(tf);
  for (int i = 0; i < 3; i++) {
    char *args[] = {"token", "new", (char *)who[i][0], (char *)who[i][1], NULL};
    ASSERT_EQ_INT(ktune_plain(out, sizeof(out), args), 0);
    char role[32], name[64];
    ASSERT_EQ_INT(sscanf(out, "%31s %63s %127s", role, name, tok[i]), 3);
    ASSERT_EQ_STR(role, who[i][0]);
    ASSERT_EQ_STR(name, who[i][1]);
    /* 32 bytes of entropy: 43 base64url characters. */
    ASSERT_GE_INT((long)strlen(tok[i]), 43);
    fputs(out, tf);
  }
  fclose(tf);
  if (!strcmp(tok[0], tok[1]) || !strcmp(tok[1], tok[2])) TEST_FAIL("tokens repeat");
  ASSERT_EQ_INT(chmod(path, 0600), 0);
  /* Usage errors: a role that is none, a name with a space. */
  char *bad_role[] = {"token", "new", "root", "x", NULL};
  ASSERT_EQ_INT(ktune_plain(out, sizeof(out), bad_role), 2);
  char *bad_name[] = {"token", "new", "client", "a b", NULL};
  ASSERT_EQ_INT(ktune_plain(out, sizeof(out), bad_name), 2);

  farm f;
  char *opts[] = {"--tokens", path, NULL};
  farm_start(&f, opts);
  as_user("b1", tok[1]);
  pid_t b = farm_builder(&f, "b1");
  as_user("r1", tok[2]);
  pid_t r = farm_runner(&f, "r1", "k", NULL);
  as_user("alice", tok[0]);
  farm_wait_agent(&f, "r1", 1);
  char big[8192];
  char *args[] = {"tune", "matmul", "-D", "M=32", "-D", "N=32", "-D", "K=32", "--trials", "2",
                  "--key", "k", NULL};
  int rc = farm_ktune(&f, big, sizeof(big), 60000, args);
  if (rc != 0) {
    farm_print_log(&f);
    TEST_FAIL("a session on the farm with made tokens exited %d: %s", rc, big);
  }
  ASSERT_CONTAINS(big, "best: ");
  farm_stop_all(&f, r, b, 0);
  as_user(NULL, NULL);
}

/* Item 3: a mistyped key is said within 2 s, next to the keys there are. */
TEST(mistyped_key_is_said_at_once) {
  farm f;
  pid_t r = farm_with_runner(&f, NULL, "rpi4");
  char path[300];
  snprintf(path, sizeof(path), "%s/tune.out", f.dir);
  char *args[] = {"matmul", "--trials", "4", "--key", "rpi5", NULL};
  pid_t c = tune_in_background(&f, path, args);
  /* From the start, which includes checking the submission. */
  double s = wait_text(&f, path, "waiting for a runner with key 'rpi5' (known keys: rpi4); giving "
                      "up in 60 s unless one connects (--wait-timeout)\n", 2000);
  fprintf(stderr, "the wait was said after %.2f s\n", s);
  proc_stop(c, SIGKILL, 5000);
  farm_stop_all(&f, r, 0, 0);
}

/* Item 4: Ctrl-C on an attached client cancels its session. */
TEST(ctrl_c_cancels_the_followed_session) {
  farm f;
  pid_t b, r;
  farm_with_agents(&f, &b, &r);
  char path[300], out[16384];
  snprintf(path, sizeof(path), "%s/tune.out", f.dir);
  char *args[] = {"matmul", "-D", "M=64", "-D", "N=64", "-D", "K=64", "--number", "100",
                  "--trials", "200", "--key", "k", NULL};
  pid_t c = tune_in_background(&f, path, args);
  wait_text(&f, path, "session 1:", 10000);
  farm_wait_busy(&f, "r1");
  kill(c, SIGINT);
  int st = proc_stop(c, 0, 10000);
  proc_read_file(path, out, sizeof(out));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 1)
    TEST_FAIL("ktune tune after Ctrl-C: status %d, not exit 1: %s", st, out);
  ASSERT_CONTAINS(out, "session 1 cancelled (Ctrl-C); use --detach to leave a session running");
  char *sargs[] = {"sessions", NULL};
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 10000, sargs), 0);
  ASSERT_CONTAINS(out, "cancelled");
  sqlite3 *db = farm_db(&f);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM sessions WHERE id = 1 AND "
                               "state = 'cancelled'"), 1);
  sqlite3_close(db);
  farm_stop_all(&f, r, b, 0);
}

/* Item 5 and 7: sessions started together without --seed search apart;
 * `ktune wait` on an ended session shows no speed of 0. */
TEST(default_seeds_differ_and_ended_sessions_show_no_zero_speed) {
  farm f;
  pid_t b, r;
  farm_with_agents(&f, &b, &r);
  char *args[] = {"matmul", "-D", "M=32", "-D", "N=32", "-D", "K=32", "--trials", "1", "--key",
                  "k", NULL};
  long s1 = farm_submit(&f, args), s2 = farm_submit(&f, args);
  char out[8192];
  ASSERT_EQ_INT(farm_wait(&f, s2, 60000, out, sizeof(out)), 0);
  farm_wait_trials(&f, s1, 1);
  /* Ended now: the answer comes as the final line, and no batch is open. */
  ASSERT_EQ_INT(farm_wait(&f, s2, 60000, out, sizeof(out)), 0);
  if (strstr(out, "last    0.000")) TEST_FAIL("wait on an ended session showed last 0: %s", out);
  ASSERT_CONTAINS(out, "last        -");
  sqlite3 *db = farm_db(&f);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(DISTINCT seed) FROM sessions WHERE id IN (%ld, %ld)",
                           s1, s2), 2);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(DISTINCT config) FROM trials WHERE session IN "
                               "(%ld, %ld)", s1, s2), 2);
  sqlite3_close(db);
  farm_stop_all(&f, r, b, 0);
}

/* Item 6: the header counts the valid configs, as `ktune tasks` does. */
TEST(header_counts_the_valid_configs) {
  farm f;
  pid_t b, r;
  farm_with_agents(&f, &b, &r);
  char out[8192];
  char *targs[] = {"tasks", NULL};
  ASSERT_EQ_INT(ktune_plain(out, sizeof(out), targs), 0);
  ASSERT_CONTAINS(out, "space: 8192 configs, 6656 meet the constraints");
  /* The default size: the one `ktune tasks` counts. */
  char *args[] = {"tune", "matmul", "--trials", "1", "--key", "k", NULL};
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 60000, args), 0);
  ASSERT_CONTAINS(out, "model search, 6,656 valid of 8,192 configs, seed ");
  char *gargs[] = {"tune", "matmul", "--trials", "1", "--key", "k", "--strategy", "grid", NULL};
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 60000, gargs), 0);
  ASSERT_CONTAINS(out, "grid search, 6,656 valid of 8,192 configs\n");
  if (strstr(out, "seed")) TEST_FAIL("grid printed a seed: %s", out);
  farm_stop_all(&f, r, b, 0);
}

/* The digits after the point of each number that follows name in text;
 * fails the test when there is none. */
static int max_decimals(const char *text, const char *name) {
  int most = -1;
  for (const char *p = strstr(text, name); p; p = strstr(p + 1, name)) {
    const char *v = p + strlen(name);
    const char *dot = v + strspn(v, "-0123456789");
    int n = *dot == '.' ? (int)strspn(dot + 1, "0123456789") : 0;
    if (n > most) most = n;
  }
  if (most < 0) TEST_FAIL("no %s in: %s", name, text);
  return most;
}

/* status --json: times to the millisecond, and a device only for runners. */
TEST(status_json_is_rounded_and_builders_have_no_device) {
  farm f;
  pid_t b, r;
  farm_with_agents(&f, &b, &r);
  farm_wait_agent(&f, "b1", 1);
  /* Long enough for times that are not whole seconds. */
  proc_sleep_ms(150);
  static char out[1 << 16];
  char *args[] = {"status", "--json", NULL};
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 10000, args), 0);
  ASSERT(max_decimals(out, "\"last_heard_s\":") <= 3);
  ASSERT(max_decimals(out, "\"uptime_s\":") <= 3);
  json_t *st = json_loads(out, 0, NULL);
  ASSERT_NOT_NULL(st);
  json_t *builder = farm_agent(st, "b1"), *runner = farm_agent(st, "r1");
  ASSERT_NOT_NULL(builder);
  ASSERT_NOT_NULL(runner);
  if (json_object_get(builder, "device")) TEST_FAIL("the builder has a device block: %s", out);
  json_t *dev = json_object_get(runner, "device");
  ASSERT_NOT_NULL(dev);
  ASSERT(json_integer_value(json_object_get(dev, "cores")) > 0);
  json_decref(st);
  farm_stop_all(&f, r, b, 0);
}

/* A key no runner has ever served gives up after the tracker's default
 * wait (1 s here) and says how to wait longer; a key that was served
 * waits on. */
TEST(a_never_served_key_gives_up_after_the_default_wait) {
  farm f;
  pid_t r = farm_with_runner(&f, (char *[]){"--unknown-key-wait-ms", "1000", NULL}, "rpi4");
  static char out[16384];
  char *args[] = {"tune", "matmul", "--trials", "2", "--key", "rpi5", NULL};
  double t0 = mono_s();
  int rc = farm_ktune(&f, out, sizeof(out), 30000, args);
  double took = mono_s() - t0;
  if (rc != 1) {
    farm_print_log(&f);
    TEST_FAIL("a session on a never-served key exited %d, not 1: %s", rc, out);
  }
  ASSERT_CONTAINS(out, "waiting for a runner with key 'rpi5' (known keys: rpi4); giving up in 1 s "
                       "unless one connects (--wait-timeout)\n");
  ASSERT_CONTAINS(out, "no runner with key 'rpi5' has ever served this tracker");
  ASSERT_CONTAINS(out, "give --wait-timeout MS to wait longer");
  ASSERT(took >= 1.0);
  /* rpi4 has been served: with its runner gone, a session waits on. */
  proc_stop(r, SIGTERM, 5000);
  farm_wait_agent(&f, "r1", 0);
  long id = farm_submit(&f, (char *[]){"matmul", "--trials", "2", "--key", "rpi4", NULL});
  proc_sleep_ms(2000);
  json_t *st = farm_status(&f);
  json_t *s = farm_session(st, id);
  ASSERT_NOT_NULL(s);
  ASSERT_EQ_STR(json_string_value(json_object_get(s, "state")), "queued");
  const char *msg = json_string_value(json_object_get(s, "message"));
  ASSERT_NOT_NULL(msg);
  ASSERT_CONTAINS(msg, "waiting for a runner with key 'rpi4'");
  if (strstr(msg, "giving up")) TEST_FAIL("a served key's wait has a limit: %s", msg);
  json_decref(st);
  char ids[32];
  snprintf(ids, sizeof(ids), "%ld", id);
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 10000, (char *[]){"cancel", ids, NULL}), 0);
  farm_stop_tracker(&f);
}

/* A runner stopped for longer than the tracker's timeout blames its own
 * pause, not the tracker. */
TEST(a_paused_runner_does_not_blame_the_tracker) {
  farm f;
  pid_t r = farm_with_runner(&f, NULL, "k");
  /* The harness's tracker says 3 s of silence (--timeout-ms 3000). */
  kill(r, SIGSTOP);
  proc_sleep_ms(3500);
  kill(r, SIGCONT);
  wait_text(&f, f.log, "(this process may have been paused); reconnecting", 5000);
  farm_wait_agent(&f, "r1", 1);
  farm_stop_all(&f, r, 0, 0);
}

/* The private farm of `ktune tune` has no other client to protect: it
 * takes the largest space a spec may hold, past a shared tracker's
 * default 32 knobs of 4096 values (docs/TASKS.md). */
TEST(local_farm_takes_what_a_spec_may_hold) {
  char dir[256], path[300], spec[300], db[300], out[16384];
  proc_tmpdir(dir, sizeof(dir));
  snprintf(path, sizeof(path), "%s/wide.c", dir);
  proc_write_file(path, "void k(float *o) { for (int i = 0; i < 8; i++) o[i] = 1; }\n"
                        "void k_ref(float *o) { for (int i = 0; i < 8; i++) o[i] = 1; }\n");
  static char knobs[65536], text[70000];
  size_t n = 0;
  for (int i = 0; i < 33; i++)
    n += (size_t)snprintf(knobs + n, sizeof(knobs) - n, "\"K%d\": [1], ", i);
  n += (size_t)snprintf(knobs + n, sizeof(knobs) - n, "\"BIG\": [0");
  for (int v = 1; v < 5000; v++) n += (size_t)snprintf(knobs + n, sizeof(knobs) - n, ",%d", v);
  snprintf(text, sizeof(text),
           "{\"name\": \"wide\", \"source\": \"wide.c\", \"entry\": \"k\", \"reference\": "
           "\"k_ref\", \"flops\": \"8\",\n \"args\": [{\"name\": \"o\", \"type\": \"float\", "
           "\"count\": \"8\", \"output\": true}],\n \"knobs\": {%s]}}\n", knobs);
  snprintf(spec, sizeof(spec), "%s/wide.json", dir);
  proc_write_file(spec, text);
  snprintf(db, sizeof(db), "%s/ktune.db", dir);
  char *args[] = {"tune", spec, "--trials", "1", "--db", db, NULL};
  int rc = ktune_plain(out, sizeof(out), args);
  if (rc != 0) TEST_FAIL("a spec of 34 knobs, one of 5000 values, on the local farm: exit %d: %s",
                         rc, out);
  ASSERT_CONTAINS(out, "5,000 valid of 5,000 configs");
}

TEST_LIST(TEST_ENTRY(failures_are_named_on_the_progress_line),
          TEST_ENTRY(token_new_makes_a_tokens_file_a_farm_runs_on),
          TEST_ENTRY(mistyped_key_is_said_at_once),
          TEST_ENTRY(ctrl_c_cancels_the_followed_session),
          TEST_ENTRY(default_seeds_differ_and_ended_sessions_show_no_zero_speed),
          TEST_ENTRY(header_counts_the_valid_configs),
          TEST_ENTRY(status_json_is_rounded_and_builders_have_no_device),
          TEST_ENTRY(a_never_served_key_gives_up_after_the_default_wait),
          TEST_ENTRY(a_paused_runner_does_not_blame_the_tracker),
          TEST_ENTRY(local_farm_takes_what_a_spec_may_hold))
