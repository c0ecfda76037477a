/* Remote boards of another architecture (docs/BOARDS.md): a builder
 * advertises what its --compiler commands target, the tracker routes a
 * key's builds to a builder that can make its runners' code and says when
 * none can, and an aarch64 runner, cross-built and run under qemu-user,
 * measures trials a cross builder made.
 *
 * The aarch64 cases need a cross build of the runner (KTUNE_ARM64_BUILD_DIR,
 * by default this build's folder with -arm64 after it: scripts/test makes
 * it), the cross compiler, and qemu-user registered with binfmt_misc (the
 * runner starts its fork server by exec). scripts/deps --board installs
 * them; without them those cases are skipped, and said so. */
#include <jansson.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/integration/harness.h"
#include "tests/test.h"

#define CROSS_CC "aarch64-linux-gnu-gcc"
#define CROSS_COMPILER CROSS_CC " -O2"
/* Small enough that qemu's slowness costs seconds, not minutes. */
#define SMALL "-D", "M=32", "-D", "N=32", "-D", "K=32"

/* The folder of the aarch64 build. */
static const char *arm64_dir(void) {
  const char *d = getenv("KTUNE_ARM64_BUILD_DIR");
  return d && *d ? d : getenv("KTUNE_ARM64_DEFAULT_DIR");
}

static const char *arm64_runner(void) {
  static char path[4096];
  snprintf(path, sizeof(path), "%s/runner/ktune-runner", arm64_dir() ? arm64_dir() : "");
  return path;
}

/* Why the aarch64 cases cannot run here, or NULL when they can. */
static const char *board_missing(void) {
  static char why[512];
  char line[64] = "";
  FILE *f = fopen("/proc/sys/fs/binfmt_misc/qemu-aarch64", "r");
  if (f && !fgets(line, sizeof(line), f)) line[0] = 0;
  if (f) fclose(f);
  if (!arm64_dir() || access(arm64_runner(), X_OK) != 0)
    snprintf(why, sizeof(why), "no aarch64 runner at %s (scripts/test builds one; by hand: meson "
             "setup DIR --cross-file cross/aarch64-linux-gnu.ini -Dboard=true, then "
             "KTUNE_ARM64_BUILD_DIR=DIR)", arm64_runner());
  else if (!proc_find(CROSS_CC, NULL, 0))
    snprintf(why, sizeof(why), "no %s on the PATH (scripts/deps --board)", CROSS_CC);
  else if (strncmp(line, "enabled", 7) != 0)
    snprintf(why, sizeof(why), "qemu-user is not registered for aarch64 programs in binfmt_misc "
             "(/proc/sys/fs/binfmt_misc/qemu-aarch64; scripts/deps --board registers it)");
  else
    return NULL;
  return why;
}

static pid_t start_cross_builder(farm *f, const char *name) {
  char *argv[] = {(char *)proc_bin("builder/ktune-builder"), "--tracker", f->addr, "--name",
                  (char *)name, "--compiler", CROSS_COMPILER, NULL};
  return proc_start(argv, f->log);
}

static pid_t start_arm64_runner(farm *f, const char *name) {
  char *argv[] = {(char *)arm64_runner(), "--tracker", f->addr, "--key", "pi", "--name",
                  (char *)name, "--sandbox-off", "seccomp,mem-limit", NULL};
  return proc_start(argv, f->log);
}

/* The text of an agent's field in status (borrowed from st), or "". */
static const char *agent_text(json_t *st, const char *name, const char *field) {
  const char *v = json_string_value(json_object_get(farm_agent(st, name), field));
  return v ? v : "";
}

/* 1 when the agent's builds_for in status holds arch. */
static int builds_for(json_t *st, const char *name, const char *arch) {
  size_t i;
  json_t *a;
  json_array_foreach(json_object_get(farm_agent(st, name), "builds_for"), i, a)
    if (!strcmp(json_string_value(a), arch)) return 1;
  return 0;
}

static int run_program(char *const argv[], char *out, size_t len) {
  return proc_run(argv, out, len, 20000);
}

/* A --compiler a builder must not take is refused at start, naming it. */
TEST(builder_refuses_a_compiler_it_cannot_offer) {
  static const struct {
    const char *allow;    /* an option before --compiler, or NULL */
    const char *compiler;
    const char *says;
  } cases[] = {
      {NULL, "python3 -c 1", "--compiler 'python3 -c 1'"},
      {NULL, "nowhere-linux-gnu-gcc -O2", "cannot find 'nowhere-linux-gnu-gcc' on the PATH"},
      /* Allowed and found, but it cannot say what it targets. */
      {"--allow-any-compiler", "false", "--compiler 'false': `false -dumpmachine` failed"},
      {NULL, "", "--compiler takes a compiler command"},
  };
  char out[4096];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *argv[8] = {(char *)proc_bin("builder/ktune-builder"), "--tracker", "127.0.0.1:9"};
    int n = 3;
    if (cases[i].allow) argv[n++] = (char *)cases[i].allow;
    argv[n++] = "--compiler";
    argv[n++] = (char *)cases[i].compiler;
    argv[n] = NULL;
    ASSERT_EQ_INT(run_program(argv, out, sizeof(out)), 2);
    ASSERT_CONTAINS(out, cases[i].says);
  }
}

TEST(runner_refuses_an_unknown_sandbox_part) {
  char out[4096];
  char *bad[] = {(char *)proc_bin("runner/ktune-runner"), "--tracker", "127.0.0.1:9", "--key",
                 "k", "--sandbox-off", "seccomp,landlock", NULL};
  ASSERT_EQ_INT(run_program(bad, out, sizeof(out)), 2);
  ASSERT_CONTAINS(out, "--sandbox-off: expected seccomp, mem-limit or both");
}

/* No builder was sent a build it cannot make: it would refuse it
 * (builder/backend.c), and the tracker would log the refusal. */
static void expect_no_misrouted_build(farm *f) {
  char log[1 << 16];
  proc_read_file(f->log, log, sizeof(log));
  if (strstr(log, "target mismatch") || strstr(log, "cannot build for session"))
    TEST_FAIL("a builder was sent a build for an architecture it cannot make:\n%s", log);
}

/* What the text of ktune status says holds each of want[]. */
static void expect_status_text(farm *f, const char *const want[]) {
  static char out[1 << 16];
  char *args[] = {"status", NULL};
  ASSERT_EQ_INT(farm_ktune(f, out, sizeof(out), 10000, args), 0);
  for (int i = 0; want[i]; i++) ASSERT_CONTAINS(out, want[i]);
}

/* A key whose runners (here one that claims aarch64) no builder can make
 * code for: the session says it waits for a builder, the x86-64 builder
 * is never sent a build for it, and --wait-timeout fails it. */
TEST(session_waits_for_a_builder_of_its_architecture) {
  farm f;
  farm_start(&f, NULL);
  pid_t b = farm_builder(&f, "tb");
  char *fake[] = {"--test-fault", "arch=aarch64", NULL};
  pid_t r = farm_runner_args(&f, "pi-fake", "pi", fake);
  farm_wait_agent(&f, "tb", 1);
  farm_wait_agent(&f, "pi-fake", 1);
  char *args[] = {"matmul", SMALL, "--trials", "4", "--key", "pi", "--wait-timeout", "4000",
                  NULL};
  long id = farm_submit(&f, args);
  int seen = 0;
  for (int i = 0; i < 200 && !seen; i++) {
    json_t *st = farm_status(&f);
    const char *msg = json_string_value(json_object_get(farm_session(st, id), "message"));
    seen = msg && strstr(msg, "waiting for a builder that can make aarch64 code with 'tcc'");
    json_decref(st);
    if (!seen) proc_sleep_ms(50);
  }
  if (!seen) {
    farm_print_log(&f);
    TEST_FAIL("ktune status never said session %ld waits for an aarch64 builder", id);
  }
  const char *text[] = {"waiting for a builder that can make aarch64 code with 'tcc'",
                        "builds for x86_64", NULL};
  expect_status_text(&f, text);
  char out[8192];
  ASSERT_EQ_INT(farm_wait(&f, id, 30000, out, sizeof(out)), 1);
  ASSERT_CONTAINS(out, "no builder that can make aarch64 code with 'tcc' was connected for 4 s");
  sqlite3 *db = farm_db(&f);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM trials"), 0);
  sqlite3_close(db);
  expect_no_misrouted_build(&f);
  farm_stop_all(&f, r, b, 0);
}

/* An aarch64 runner refuses to start where part of its sandbox would be
 * silently missing (under qemu-user: seccomp and the memory limit). */
TEST(aarch64_runner_refuses_a_partial_sandbox) {
  char out[4096];
  char *argv[] = {(char *)arm64_runner(), "--tracker", "127.0.0.1:9", "--key", "pi", NULL};
  ASSERT_EQ_INT(run_program(argv, out, sizeof(out)), 2);
  ASSERT_CONTAINS(out, "cannot honour the whole sandbox: seccomp: ");
  ASSERT_CONTAINS(out, "--sandbox-off seccomp,mem-limit");
}

/* The whole path on a foreign board: a cross builder beside an x86-64
 * tcc builder, an aarch64 runner under qemu; every build goes to the cross
 * builder, every trial is ok and checked against the reference, and the
 * device's architecture and missing sandbox parts are stored. Timings
 * under emulation mean nothing: none is looked at. */
TEST(aarch64_runner_measures_cross_built_matmul) {
  farm f;
  farm_start(&f, NULL);
  pid_t tb = farm_builder(&f, "tb");
  pid_t xb = start_cross_builder(&f, "xb");
  pid_t r = start_arm64_runner(&f, "pi1");
  farm_wait_agent(&f, "tb", 1);
  farm_wait_agent(&f, "xb", 1);
  farm_wait_agent(&f, "pi1", 1);
  json_t *st = farm_status(&f);
  if (strcmp(agent_text(st, "pi1", "arch"), "aarch64") != 0 ||
      strcmp(agent_text(st, "pi1", "sandbox_off"), "seccomp,mem-limit") != 0 ||
      !builds_for(st, "xb", "aarch64") || builds_for(st, "tb", "aarch64")) {
    char *txt = json_dumps(st, 0);
    farm_print_log(&f);
    TEST_FAIL("status does not show the aarch64 runner, its sandbox or the builders' targets: %s",
              txt);
  }
  json_decref(st);
  const char *text[] = {"sandbox OFF: seccomp,mem-limit (--sandbox-off)", "builds for", "aarch64",
                        NULL};
  expect_status_text(&f, text);
  char out[16384];
  char *args[] = {"tune", "matmul", SMALL, "--trials", "8", "--key", "pi", "--compiler",
                  CROSS_COMPILER, "--strategy", "grid", "--confirm", "0", NULL};
  int rc = farm_ktune(&f, out, sizeof(out), 90000, args);
  if (rc != 0) {
    farm_print_log(&f);
    TEST_FAIL("ktune tune on the aarch64 runner exited %d: %s", rc, out);
  }
  sqlite3 *db = farm_db(&f);
  long long all = farm_query(db, "SELECT count(*) FROM trials");
  long long good = farm_query(db, "SELECT count(*) FROM trials WHERE status = 'ok' AND checked = 1 "
                                  "AND builder = 'xb' AND runner = 'pi1' AND "
                                  "json_extract(device, '$.arch') = 'aarch64' AND "
                                  "json_extract(device, '$.sandbox_off') = 'seccomp,mem-limit'");
  sqlite3_close(db);
  if (all != 8 || good != 8) {
    farm_print_log(&f);
    TEST_FAIL("%lld trials, %lld of them ok, checked, built by xb and run on aarch64 pi1 "
              "(want 8 and 8)", all, good);
  }
  expect_no_misrouted_build(&f);
  farm_stop_all(&f, r, xb, tb);
}

static const test_case native_cases[] = {
    TEST_ENTRY(builder_refuses_a_compiler_it_cannot_offer),
    TEST_ENTRY(runner_refuses_an_unknown_sandbox_part),
    TEST_ENTRY(session_waits_for_a_builder_of_its_architecture),
};
static const test_case board_cases[] = {
    TEST_ENTRY(aarch64_runner_refuses_a_partial_sandbox),
    TEST_ENTRY(aarch64_runner_measures_cross_built_matmul),
};
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Meson's "skipped": the aarch64 cases could not run here. */
#define EXIT_SKIP 77

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  const char *missing = board_missing();
  if (argc > 1) {
    const test_case *sets[] = {native_cases, board_cases};
    size_t counts[] = {N(native_cases), N(board_cases)};
    for (size_t s = 0; s < 2; s++)
      for (size_t i = 0; i < counts[s]; i++)
        if (!strcmp(sets[s][i].name, argv[1])) {
          if (s == 1 && missing) {
            printf("SKIP: %s\n", missing);
            return EXIT_SKIP;
          }
          sets[s][i].fn();
          return 0;
        }
    fprintf(stderr, "no test case named %s\n", argv[1]);
    return 2;
  }
  int failed = 0;
  size_t ran = 0;
  for (size_t i = 0; i < N(native_cases) + N(board_cases); i++) {
    const test_case *t = i < N(native_cases) ? &native_cases[i] : &board_cases[i - N(native_cases)];
    if (i >= N(native_cases) && missing) {
      printf("skip - %s: %s\n", t->name, missing);
      continue;
    }
    int rc = test_run_one(t);
    printf("%s - %s\n", rc == 0 ? "ok" : "not ok", t->name);
    failed += rc != 0;
    ran++;
  }
  printf("%zu passed, %d failed\n", ran - (size_t)failed, failed);
  if (failed) return 1;
  if (missing) printf("SKIP: the aarch64 cases did not run: %s\n", missing);
  return missing ? EXIT_SKIP : 0;
}
