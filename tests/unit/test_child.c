/* common/child.c: a supervised child on a libuv loop. Each case runs the
 * loop until done came and every handle of the child is closed (the loop
 * ends only then), so a handle left open shows as a hang, a leak under
 * ASan. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/child.h"
#include "tests/test.h"

typedef struct {
  int calls;
  child_result r;
  char out[4096], err[4096], spawn_msg[128];
  size_t streamed;
} seen;

static void on_done(void *data, const child_result *r) {
  seen *s = data;
  s->calls++;
  s->r = *r;
  if (r->out) snprintf(s->out, sizeof s->out, "%s", r->out); /* else streamed there */
  snprintf(s->err, sizeof s->err, "%s", r->err ? r->err : "");
  snprintf(s->spawn_msg, sizeof s->spawn_msg, "%s", r->spawn_msg ? r->spawn_msg : "");
  s->r.out = s->r.err = s->r.spawn_msg = NULL;
}

static void on_out(void *data, const char *buf, size_t n) {
  seen *s = data;
  if (s->streamed + n < sizeof s->out) memcpy(s->out + s->streamed, buf, n);
  s->streamed += n;
}

/* Runs spec on a fresh loop to its end; the loop must close cleanly. */
static void run(child_spec *spec, seen *s) {
  memset(s, 0, sizeof *s);
  uv_loop_t loop;
  uv_loop_init(&loop);
  spec->done = on_done;
  spec->data = s;
  ASSERT_EQ_INT(child_start(&loop, spec, NULL), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  ASSERT_EQ_INT(uv_loop_close(&loop), 0);
  ASSERT_EQ_INT(s->calls, 1);
}

TEST(output_and_status_are_kept) {
  char *argv[] = {"/bin/sh", "-c", "echo out; echo err >&2; exit 3", NULL};
  child_spec spec = {.argv = argv, .timeout_ms = 5000};
  seen s;
  run(&spec, &s);
  ASSERT(s.r.exited);
  ASSERT_EQ_INT(s.r.exit_status, 3);
  ASSERT_EQ_INT(s.r.term_signal, 0);
  ASSERT_EQ_INT(s.r.timed_out, 0);
  ASSERT_EQ_STR(s.out, "out\n");
  ASSERT_EQ_STR(s.err, "err\n");
}

TEST(stdin_and_an_extra_fd_reach_it) {
  int fd = memfd_create("extra", MFD_CLOEXEC);
  ASSERT(fd >= 0);
  ASSERT_EQ_INT(write(fd, "fd3", 3), 3);
  char *argv[] = {"/bin/sh", "-c", "cat; cat <&3", NULL};
  uint8_t *in = malloc(5);
  memcpy(in, "hello", 5);
  seen s;
  child_spec spec = {.argv = argv, .in = in, .in_len = 5, .extra_fds = &fd, .nextra = 1,
                     .on_out = on_out, .inherit_err = 1, .timeout_ms = 5000};
  lseek(fd, 0, SEEK_SET);
  run(&spec, &s);
  close(fd);
  ASSERT_EQ_INT(s.r.exit_status, 0);
  ASSERT_EQ_INT(s.streamed, 8);
  ASSERT(memcmp(s.out, "hellofd3", 8) == 0);
}

TEST(deadline_kills_the_whole_group) {
  /* A grandchild that keeps stdout open would hold the child up past
   * its deadline unless the group is killed. */
  char *argv[] = {"/bin/sh", "-c", "sleep 30 & sleep 30", NULL};
  child_spec spec = {.argv = argv, .timeout_ms = 200};
  uint64_t t0 = uv_hrtime();
  seen s;
  run(&spec, &s);
  double took = (double)(uv_hrtime() - t0) / 1e9;
  ASSERT(s.r.timed_out);
  ASSERT_EQ_INT(s.r.term_signal, SIGKILL);
  if (took > 2.0) TEST_FAIL("done after %.2f s, deadline 0.2 s", took);
}

TEST(guard_passes_the_signal_on) {
  char *argv[] = {"/bin/sh", "-c", "kill -SEGV $$", NULL};
  child_spec spec = {.argv = argv, .guard = 1, .timeout_ms = 5000};
  seen s;
  run(&spec, &s);
  ASSERT(s.r.exited);
  ASSERT_EQ_INT(s.r.term_signal, SIGSEGV);
}

static int fn_exit(void *arg) { return *(int *)arg; }

TEST(function_runs_in_the_child) {
  int code = 7;
  child_spec spec = {.fn = fn_exit, .arg = &code, .guard = 1, .timeout_ms = 5000};
  seen s;
  run(&spec, &s);
  ASSERT_EQ_INT(s.r.exit_status, 7);
}

static const char *refuse(void *arg) {
  (void)arg;
  errno = EPERM;
  return "refuse";
}

TEST(start_failures_come_through_done) {
  char *argv[] = {"/nonexistent/program", NULL};
  child_spec spec = {.argv = argv, .timeout_ms = 5000};
  seen s;
  run(&spec, &s);
  ASSERT_EQ_INT(s.r.spawn_error, -ENOENT);
  ASSERT_CONTAINS(s.spawn_msg, "exec");
  ASSERT(!s.r.exited);

  char *ok[] = {"/bin/true", NULL};
  child_spec hooked = {.argv = ok, .prepare = refuse, .guard = 1, .timeout_ms = 5000};
  run(&hooked, &s);
  ASSERT_EQ_INT(s.r.spawn_error, -EPERM);
  ASSERT_CONTAINS(s.spawn_msg, "refuse");
}

TEST_LIST(TEST_ENTRY(output_and_status_are_kept), TEST_ENTRY(stdin_and_an_extra_fd_reach_it),
          TEST_ENTRY(deadline_kills_the_whole_group), TEST_ENTRY(guard_passes_the_signal_on),
          TEST_ENTRY(function_runs_in_the_child), TEST_ENTRY(start_failures_come_through_done))
