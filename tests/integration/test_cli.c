/* The ktune command against hostile input: every usage error exits 2 and
 * names the bad value, before anything is dialed or started; a history
 * that cannot be written, a token file others can read and a tracker that
 * hangs up are each said in a sentence. Real processes, loopback only. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/frame.h"
#include "common/wire.h"
#include "tests/integration/harness.h"
#include "tests/test.h"

static char out[1 << 16];

/* Runs `ktune ARGS...` (a NULL-ended list); the exit code, output in out. */
static int ktune(char *const args[]) {
  char *argv[32] = {(char *)proc_bin("cli/ktune")};
  int n = 1;
  for (int i = 0; args[i] && n < 31; i++) argv[n++] = args[i];
  argv[n] = NULL;
  return proc_run(argv, out, sizeof(out), 10000);
}

/* Exit 2, and the message names what was wrong. */
static void expect_usage(char *const args[], const char *named) {
  int rc = ktune(args);
  if (rc != 2) TEST_FAIL("ktune %s ... exited %d, not 2:\n%s", args[0], rc, out);
  ASSERT_CONTAINS(out, named);
}

TEST(numbers_and_keys_are_checked) {
  /* Nothing may be dialed: a tracker that answered would hide the point. */
  unsetenv("KTUNE_TRACKER");
  expect_usage((char *[]){"tune", "matmul", "--seed", "-1", NULL}, "'-1'");
  expect_usage((char *[]){"tune", "matmul", "--seed", "99999999999999999999", NULL},
               "99999999999999999999");
  expect_usage((char *[]){"tune", "matmul", "--trials", "-3", NULL}, "'-3'");
  expect_usage((char *[]){"tune", "matmul", "--key", "my board", NULL}, "'my board'");
  expect_usage((char *[]){"tune", "matmul", "--key", "bad\x1b[2Jkey", NULL}, "\\x1b");
  expect_usage((char *[]){"tune", "matmul", "--key", "", NULL}, "--key");
  char longkey[80];
  memset(longkey, 'k', 64);
  longkey[64] = 0;
  expect_usage((char *[]){"tune", "matmul", "--key", longkey, NULL}, "too long");
  expect_usage((char *[]){"best", "matmul", "--key", "a\tb", NULL}, "'a\\x09b'");
  /* Ids are SQLite row ids: below 2^63. */
  const char *cmds[] = {"wait", "attach", "cancel"};
  for (int i = 0; i < 3; i++) {
    expect_usage((char *[]){(char *)cmds[i], "99999999999999999999", NULL}, "99999999999999999999");
    expect_usage((char *[]){(char *)cmds[i], "9223372036854775808", NULL}, "9223372036854775808");
    expect_usage((char *[]){(char *)cmds[i], "--", "-1", NULL}, "'-1'");
    expect_usage((char *[]){(char *)cmds[i], "0", NULL}, "'0'");
    expect_usage((char *[]){(char *)cmds[i], "12abc", NULL}, "'12abc'");
  }
  expect_usage((char *[]){"tasks", "extra", NULL}, "'extra'");
  ASSERT_EQ_INT(ktune((char *[]){"tasks", "--help", NULL}), 0);
  ASSERT_CONTAINS(out, "usage: ktune tasks");
}

TEST(tracker_addresses_are_checked_up_front) {
  unsetenv("KTUNE_TRACKER");
  const char *cmds[] = {"status", "sessions", "export"};
  for (int i = 0; i < 3; i++) {
    expect_usage((char *[]){(char *)cmds[i], "--tracker", "127.0.0.1:notaport", NULL},
                 "'notaport'");
    expect_usage((char *[]){(char *)cmds[i], "--tracker", "127.0.0.1:65536", NULL}, "'65536'");
  }
  expect_usage((char *[]){"wait", "3", "--tracker", "127.0.0.1:-1", NULL}, "'-1'");
  expect_usage((char *[]){"cancel", "3", "--tracker", "bad host:9290", NULL}, "'bad host'");
  expect_usage((char *[]){"attach", "3", "--tracker", "[::1:9290", NULL}, "']'");
  /* Before the task is even looked at, and before a farm would start. */
  expect_usage((char *[]){"tune", "matmul", "--key", "k", "--tracker", "host:", NULL}, "''");
  /* KTUNE_TRACKER is named as the source. */
  setenv("KTUNE_TRACKER", "127.0.0.1:notaport", 1);
  expect_usage((char *[]){"status", NULL}, "KTUNE_TRACKER");
  ASSERT_CONTAINS(out, "'notaport'");
  expect_usage((char *[]){"tune", "matmul", "--key", "k", NULL}, "KTUNE_TRACKER");
  /* ... and not consulted when the history is read locally. */
  char dir[256], db[300];
  proc_tmpdir(dir, sizeof(dir));
  snprintf(db, sizeof(db), "%s/none.db", dir);
  ASSERT_EQ_INT(ktune((char *[]){"export", "--db", db, NULL}), 1);
  ASSERT_CONTAINS(out, "no history at");
  unsetenv("KTUNE_TRACKER");
  /* A good address that nobody serves is a runtime failure, not usage. */
  ASSERT_EQ_INT(ktune((char *[]){"status", "--tracker", "127.0.0.1:1", NULL}), 1);
  rmdir(dir);
}

TEST(unwritable_history_names_the_folder) {
  unsetenv("KTUNE_TRACKER");
  /* Root passes every permission check, so the folders are ones even root
   * cannot write: /proc takes no new files (with ENOENT, which used to be
   * the whole message), sysfs refuses them. */
  ASSERT_EQ_INT(ktune((char *[]){"tune", "matmul", "--trials", "1", "--db", "/proc/ktune-x.db",
                                 NULL}),
                1);
  ASSERT_CONTAINS(out, "/proc/ktune-x.db");
  ASSERT_CONTAINS(out, "folder /proc is not writable");
  ASSERT(!strstr(out, "local farm on"));
  struct stat st;
  if (stat("/sys/kernel", &st) == 0) {
    ASSERT_EQ_INT(ktune((char *[]){"tune", "matmul", "--trials", "1", "--db",
                                   "/sys/kernel/ktune-x.db", NULL}),
                  1);
    ASSERT_CONTAINS(out, "folder /sys/kernel is not writable");
  }
  /* For anyone else, a folder without write permission. */
  char dir[256], db[300];
  proc_tmpdir(dir, sizeof(dir));
  snprintf(db, sizeof(db), "%s/ktune.db", dir);
  ASSERT_EQ_INT(chmod(dir, 0555), 0);
  if (geteuid() != 0) {
    ASSERT_EQ_INT(ktune((char *[]){"tune", "matmul", "--trials", "1", "--db", db, NULL}), 1);
    ASSERT_CONTAINS(out, "is not writable");
    ASSERT_CONTAINS(out, dir);
  }
  /* A folder that is not there is said as such. */
  snprintf(db, sizeof(db), "%s/nope/ktune.db", dir);
  ASSERT_EQ_INT(ktune((char *[]){"tune", "matmul", "--trials", "1", "--db", db, NULL}), 1);
  ASSERT_CONTAINS(out, "does not exist");
  rmdir(dir);
}

#define TOKEN "bob-client-token-0123456789"

/* A file holding text with the given mode, in a fresh folder. */
static void write_file(char *path, size_t len, const char *name, const char *text, int mode) {
  char dir[256];
  proc_tmpdir(dir, sizeof(dir));
  snprintf(path, len, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  ASSERT_NOT_NULL(f);
  fputs(text, f);
  fclose(f);
  ASSERT_EQ_INT(chmod(path, (mode_t)mode), 0);
}

TEST(token_files_others_can_read_are_warned_about) {
  unsetenv("KTUNE_TRACKER");
  unsetenv("KTUNE_TOKEN");
  unsetenv("KTUNE_TOKEN_FILE");
  char open_file[300], warning[800];
  write_file(open_file, sizeof(open_file), "token", TOKEN "\n", 0644);
  snprintf(warning, sizeof(warning), "token file %s can be read by others: chmod 600 %s",
           open_file, open_file);
  /* Warned, and the command goes on (to a port nobody serves). */
  ASSERT_EQ_INT(ktune((char *[]){"status", "--tracker", "127.0.0.1:1", "--token-file", open_file,
                                 NULL}),
                1);
  ASSERT_CONTAINS(out, warning);
  ASSERT_CONTAINS(out, "cannot reach the tracker");
  setenv("KTUNE_TOKEN_FILE", open_file, 1);
  ASSERT_EQ_INT(ktune((char *[]){"sessions", "--tracker", "127.0.0.1:1", NULL}), 1);
  ASSERT_CONTAINS(out, warning);
  /* A private file: no warning. */
  ASSERT_EQ_INT(chmod(open_file, 0600), 0);
  ASSERT_EQ_INT(ktune((char *[]){"sessions", "--tracker", "127.0.0.1:1", NULL}), 1);
  ASSERT(!strstr(out, "can be read by others"));
  unsetenv("KTUNE_TOKEN_FILE");
  /* A bad token says where it came from. */
  char short_file[300];
  write_file(short_file, sizeof(short_file), "short", "abc\n", 0600);
  ASSERT_EQ_INT(ktune((char *[]){"status", "--tracker", "127.0.0.1:1", "--token-file", short_file,
                                 NULL}),
                1);
  ASSERT_CONTAINS(out, short_file);
  setenv("KTUNE_TOKEN", "abc", 1);
  ASSERT_EQ_INT(ktune((char *[]){"status", "--tracker", "127.0.0.1:1", NULL}), 1);
  ASSERT_CONTAINS(out, "KTUNE_TOKEN");
  unsetenv("KTUNE_TOKEN");
}

TEST(token_file_option_logs_in) {
  unsetenv("KTUNE_TRACKER");
  unsetenv("KTUNE_TOKEN");
  unsetenv("KTUNE_TOKEN_FILE");
  char tokens[300], mine[300];
  write_file(tokens, sizeof(tokens), "tokens", "client bob " TOKEN "\n", 0600);
  write_file(mine, sizeof(mine), "token", TOKEN "\n", 0600);
  farm f;
  farm_start(&f, (char *[]){"--tokens", tokens, NULL});
  setenv("KTUNE_USER", "bob", 1);
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 10000, (char *[]){"sessions", NULL}), 1);
  ASSERT_CONTAINS(out, "bob, from KTUNE_USER, without a token (--token-file, KTUNE_TOKEN or "
                       "KTUNE_TOKEN_FILE)");
  int rc = farm_ktune(&f, out, sizeof(out), 10000,
                      (char *[]){"sessions", "--token-file", mine, NULL});
  if (rc != 0) TEST_FAIL("ktune sessions --token-file exited %d:\n%s", rc, out);
  ASSERT_CONTAINS(out, "sessions (0)");
  /* The wrong name for the token: the reply says which name and token
   * this side used. */
  setenv("KTUNE_USER", "carol", 1);
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 10000,
                           (char *[]){"sessions", "--token-file", mine, NULL}),
                1);
  ASSERT_CONTAINS(out, "carol, from KTUNE_USER");
  ASSERT_CONTAINS(out, mine);
  unsetenv("KTUNE_USER");
  farm_stop_tracker(&f);
}

/* A tracker that welcomes the client, then hangs up. */
TEST(a_tracker_that_hangs_up_is_a_sentence) {
  char addr[64], dir[256], log[300];
  int ls = farm_listen(addr, sizeof(addr));
  proc_tmpdir(dir, sizeof(dir));
  snprintf(log, sizeof(log), "%s/ktune.log", dir);
  unsetenv("KTUNE_TOKEN");
  unsetenv("KTUNE_TOKEN_FILE");
  const char *cmds[] = {"wait", "cancel", "status"};
  for (int i = 0; i < 3; i++) {
    unlink(log);
    char *argv[] = {(char *)proc_bin("cli/ktune"), (char *)cmds[i], "--tracker", addr,
                    i < 2 ? "7" : NULL, NULL};
    pid_t pid = proc_start(argv, log);
    struct timeval tv = {10, 0};
    setsockopt(ls, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int fd = accept(ls, NULL, NULL);
    ASSERT_GE_INT(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    Ktune__Envelope *h = wire_read_fd(fd, FRAME_MAX_DEFAULT);
    ASSERT_NOT_NULL(h);
    ASSERT_EQ_INT(h->msg_case, KTUNE__ENVELOPE__MSG_HELLO);
    wire_free(h);
    Ktune__Welcome w = KTUNE__WELCOME__INIT;
    w.version = WIRE_PROTOCOL_VERSION;
    w.heartbeat_ms = 1000;
    w.timeout_ms = 5000;
    Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
    env.msg_case = KTUNE__ENVELOPE__MSG_WELCOME;
    env.welcome = &w;
    ASSERT_EQ_INT(wire_write_fd(fd, &env), 0);
    close(fd);
    int st = proc_stop(pid, 0, 10000);
    ASSERT(WIFEXITED(st));
    char got[4096] = "";
    FILE *lf = fopen(log, "r");
    ASSERT_NOT_NULL(lf);
    got[fread(got, 1, sizeof(got) - 1, lf)] = 0;
    fclose(lf);
    if (WEXITSTATUS(st) != 1) TEST_FAIL("ktune %s exited %d: %s", cmds[i], WEXITSTATUS(st), got);
    char want[128];
    snprintf(want, sizeof(want), "the tracker at %s closed the connection", addr);
    ASSERT_CONTAINS(got, want);
  }
  close(ls);
  unlink(log);
  rmdir(dir);
}

/* Runs a program of the build tree with one argument; the exit code. */
static int program(const char *rel, const char *arg) {
  char *argv[] = {(char *)proc_bin(rel), (char *)arg, NULL};
  return proc_run(argv, out, sizeof(out), 10000);
}

TEST(every_program_says_its_version) {
  const char *progs[][2] = {{"cli/ktune", "ktune"},
                            {"tracker/ktune-tracker", "ktune-tracker"},
                            {"builder/ktune-builder", "ktune-builder"},
                            {"runner/ktune-runner", "ktune-runner"}};
  for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
    if (program(progs[i][0], "--version") != 0)
      TEST_FAIL("%s --version exited non-zero: %s", progs[i][1], out);
    char want[64];
    snprintf(want, sizeof(want), "%s %s\n", progs[i][1], KTUNE_VERSION);
    ASSERT_EQ_STR(out, want);
    /* --help names it, with the defaults. */
    ASSERT_EQ_INT(program(progs[i][0], "--help"), 0);
    ASSERT_CONTAINS(out, "--version");
    ASSERT_CONTAINS(out, "default");
  }
}

TEST(help_says_what_is_printed_and_the_exit_status) {
  const char *cmds[] = {"wait", "attach", "cancel", "sessions", "status"};
  for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
    ASSERT_EQ_INT(ktune((char *[]){(char *)cmds[i], "--help", NULL}), 0);
    if (!strcasestr(out, "prints")) TEST_FAIL("ktune %s --help says nothing of its output: %s",
                                              cmds[i], out);
    ASSERT_CONTAINS(out, "Exit status: 0 ");
    ASSERT_CONTAINS(out, "(default: KTUNE_TRACKER, else");
  }
  ASSERT_EQ_INT(ktune((char *[]){"tune", "--help", NULL}), 0);
  ASSERT_CONTAINS(out, "required with --tracker");
  ASSERT_CONTAINS(out, "--unknown-key-wait-ms");
  ASSERT_CONTAINS(out, "Exit status: 0 ");
  ASSERT_EQ_INT(ktune((char *[]){"--help", NULL}), 0);
  const char *vars[] = {"KTUNE_TRACKER", "KTUNE_TOKEN ", "KTUNE_TOKEN_FILE", "KTUNE_USER",
                        "$USER", "KTUNE_TASKS", "TMPDIR", "KTUNE_DEBUG"};
  for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) ASSERT_CONTAINS(out, vars[i]);
}

/* getopt's complaint names the command it is about. */
TEST(unknown_options_are_named_with_their_command) {
  const char *cmds[] = {"tune", "measure", "status", "export", "best", "wait", "attach",
                        "cancel", "sessions", "tasks"};
  for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
    expect_usage((char *[]){(char *)cmds[i], "--x", NULL}, "unrecognized option '--x'");
    char want[64];
    snprintf(want, sizeof(want), "ktune %s: unrecognized option '--x'", cmds[i]);
    ASSERT_CONTAINS(out, want);
  }
  /* The programs by name, not by the path they were started with. */
  const char *progs[][2] = {{"tracker/ktune-tracker", "ktune-tracker"},
                            {"builder/ktune-builder", "ktune-builder"},
                            {"runner/ktune-runner", "ktune-runner"}};
  for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
    ASSERT_EQ_INT(program(progs[i][0], "--x"), 2);
    char want[64];
    snprintf(want, sizeof(want), "%s: unrecognized option '--x'\n", progs[i][1]);
    if (strncmp(out, want, strlen(want)) != 0) TEST_FAIL("wanted %s first, got: %s", want, out);
  }
}

TEST_LIST(TEST_ENTRY(numbers_and_keys_are_checked),
          TEST_ENTRY(tracker_addresses_are_checked_up_front),
          TEST_ENTRY(unwritable_history_names_the_folder),
          TEST_ENTRY(token_files_others_can_read_are_warned_about),
          TEST_ENTRY(token_file_option_logs_in), TEST_ENTRY(a_tracker_that_hangs_up_is_a_sentence),
          TEST_ENTRY(every_program_says_its_version),
          TEST_ENTRY(help_says_what_is_printed_and_the_exit_status),
          TEST_ENTRY(unknown_options_are_named_with_their_command))
