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
  char *argv[16] = {(char *)proc_bin("cli/ktune")};
  int n = 1;
  for (int i = 0; args[i] && n < 15; i++) argv[n++] = args[i];
  argv[n] = NULL;
  return proc_run(argv, out, outlen, 30000);
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
  farm_start(&f, NULL);
  pid_t r = farm_runner(&f, "r1", "rpi4", NULL);
  farm_wait_agent(&f, "r1", 1);
  char path[300];
  snprintf(path, sizeof(path), "%s/tune.out", f.dir);
  char *args[] = {"matmul", "--trials", "4", "--key", "rpi5", NULL};
  pid_t c = tune_in_background(&f, path, args);
  /* From the start, which includes checking the submission. */
  double s = wait_text(&f, path, "waiting for a runner with key 'rpi5' (known keys: rpi4)\n", 2000);
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
  char out[8192], ids[32];
  snprintf(ids, sizeof(ids), "%ld", s2);
  char *wargs[] = {"wait", ids, NULL};
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 60000, wargs), 0);
  farm_wait_trials(&f, s1, 1);
  /* Ended now: the answer comes as the final line, and no batch is open. */
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 60000, wargs), 0);
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

TEST_LIST(TEST_ENTRY(failures_are_named_on_the_progress_line),
          TEST_ENTRY(token_new_makes_a_tokens_file_a_farm_runs_on),
          TEST_ENTRY(mistyped_key_is_said_at_once),
          TEST_ENTRY(ctrl_c_cancels_the_followed_session),
          TEST_ENTRY(default_seeds_differ_and_ended_sessions_show_no_zero_speed),
          TEST_ENTRY(header_counts_the_valid_configs))
