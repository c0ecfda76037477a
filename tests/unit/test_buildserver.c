/* builder/buildserver.c through cc.c's libtcc builds: the fork server
 * that forks every libtcc build, killed, stopped, or left behind by its
 * builder, with real processes, real libtcc and real signals. Most cases
 * use a server forked from this process; the exec'd one is the real
 * ktune-builder (KTUNE_BUILDER_EXE). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "builder/cc.h"
#include "tests/test.h"

typedef struct {
  int done;
  char status[32];
  char error[2048];
  size_t solen;
  int elf;
} built;

static void on_built(void *data, const cc_result *r) {
  built *b = data;
  ASSERT(!b->done); /* exactly once */
  b->done = 1;
  snprintf(b->status, sizeof b->status, "%s", r->status);
  snprintf(b->error, sizeof b->error, "%s", r->error ? r->error : "");
  b->solen = r->solen;
  b->elf = r->solen > 4 && memcmp(r->so, "\177ELF", 4) == 0;
}

static const char *twice_src =
    "void twice(int *out, const int *in) { for (int i = 0; i < 64; i++) out[i] = 2 * in[i]; }\n";

/* A macro that expands 2^40 times: libtcc works on it until killed. */
static char *bomb_src(void) {
  static char src[4096];
  int n = snprintf(src, sizeof src, "#define A0 1\n");
  for (int i = 1; i <= 40; i++)
    n += snprintf(src + n, sizeof src - (size_t)n, "#define A%d A%d A%d\n", i, i - 1, i - 1);
  snprintf(src + n, sizeof src - (size_t)n, "int v = A40;\n");
  return src;
}

typedef struct {
  uv_loop_t loop;
  cc_ctx *cc;
} ctx;

static void open_ctx(ctx *x, const char *exe) {
  ASSERT_EQ_INT(uv_loop_init(&x->loop), 0);
  jail_opts o = {0, NULL, 0, exe};
  ASSERT_EQ_INT(cc_new_limited(&x->loop, NULL, &o, &x->cc), 0);
}

static void close_ctx(ctx *x) {
  cc_close(x->cc);
  for (int i = 0; i < 1000 && uv_run(&x->loop, UV_RUN_NOWAIT); i++) usleep(1000);
  ASSERT_EQ_INT(uv_loop_close(&x->loop), 0);
}

static void start(ctx *x, const char *src, uint32_t timeout_ms, built *b) {
  memset(b, 0, sizeof *b);
  ASSERT_EQ_INT(cc_build_tcc(x->cc, src, "", timeout_ms, on_built, b), 0);
}

/* Runs the loop until b is done, at most ms. */
static void wait_built(ctx *x, built *b, int ms) {
  for (int i = 0; i < ms && !b->done; i++) {
    uv_run(&x->loop, UV_RUN_NOWAIT);
    usleep(1000);
  }
  if (!b->done) TEST_FAIL("no result within %d ms", ms);
}

static void build(ctx *x, const char *src, built *b) {
  start(x, src, 10000, b);
  wait_built(x, b, 20000);
}

/* The children of pid (of all its threads), at most max; how many. */
static int children_of(pid_t pid, pid_t *out, int max) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
  DIR *d = opendir(path);
  if (!d) return 0;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char file[320];
    snprintf(file, sizeof file, "/proc/%d/task/%s/children", (int)pid, e->d_name);
    FILE *f = fopen(file, "r");
    if (!f) continue;
    long c;
    while (n < max && fscanf(f, "%ld", &c) == 1) out[n++] = (pid_t)c;
    fclose(f);
  }
  closedir(d);
  return n;
}

/* The build server: this process's only child. */
static pid_t server_of_us(void) {
  pid_t kids[8];
  int n = children_of(getpid(), kids, 8);
  if (n != 1) TEST_FAIL("%d children, want the build server alone", n);
  return kids[0];
}

/* Waits (at most ms) until pid has no child. */
static void wait_childless(pid_t pid, int ms) {
  pid_t kid;
  for (int i = 0; i < ms / 5 && children_of(pid, &kid, 1) > 0; i++) usleep(5000);
  if (children_of(pid, &kid, 1) > 0) TEST_FAIL("process %d still has a child after %d ms", (int)pid, ms);
}

/* Runs the loop until server has a child, the compile of a build; at most
 * ms. Its pid. */
static pid_t wait_compile(ctx *x, pid_t server, int ms) {
  pid_t compile = 0;
  for (int i = 0; i < ms && !compile; i++) {
    uv_run(&x->loop, UV_RUN_NOWAIT);
    if (children_of(server, &compile, 1) == 0) usleep(1000);
  }
  if (!compile) TEST_FAIL("the build server %d started no compile in %d ms", (int)server, ms);
  return compile;
}

static int alive(pid_t pid) {
  char path[64], state = 0;
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  int ok = fscanf(f, "%*d %*s %c", &state) == 1;
  fclose(f);
  return ok && state != 'Z';
}

static void wait_gone(pid_t pid, int ms) {
  for (int i = 0; i < ms / 5 && alive(pid); i++) usleep(5000);
  if (alive(pid)) TEST_FAIL("process %d still runs after %d ms", (int)pid, ms);
}

TEST(builds_come_back_from_the_forked_server) {
  ctx x;
  open_ctx(&x, NULL);
  pid_t server = server_of_us();
  built b;
  for (int i = 0; i < 3; i++) {
    build(&x, twice_src, &b);
    if (strcmp(b.status, "ok") != 0) TEST_FAIL("%s: %s", b.status, b.error);
    ASSERT(b.elf);
  }
  /* One server served them all. */
  ASSERT_EQ_INT(server_of_us(), server);
  build(&x, "int f(void) { return nope; }\n", &b);
  ASSERT_EQ_STR(b.status, "COMPILE_ERROR");
  ASSERT_CONTAINS(b.error, "nope");
  close_ctx(&x);
  wait_gone(server, 3000);
}

/* The builder's own program serves, exec'd: nothing of the caller's
 * memory is in it. */
TEST(builds_come_back_from_the_execd_server) {
  ctx x;
  open_ctx(&x, KTUNE_BUILDER_EXE);
  pid_t server = server_of_us();
  char path[64], cmd[256] = "";
  snprintf(path, sizeof path, "/proc/%d/cmdline", (int)server);
  built b;
  build(&x, twice_src, &b);
  if (strcmp(b.status, "ok") != 0) TEST_FAIL("%s: %s", b.status, b.error);
  ASSERT(b.elf);
  FILE *f = fopen(path, "r");
  ASSERT_NOT_NULL(f);
  size_t n = fread(cmd, 1, sizeof cmd - 1, f);
  fclose(f);
  for (size_t i = 0; i < n; i++)
    if (!cmd[i]) cmd[i] = ' ';
  ASSERT_CONTAINS(cmd, "ktune-builder --build-server");
  close_ctx(&x);
  wait_gone(server, 3000);
}

TEST(server_killed_between_builds_is_started_again) {
  ctx x;
  open_ctx(&x, NULL);
  built b;
  build(&x, twice_src, &b);
  ASSERT_EQ_STR(b.status, "ok");
  pid_t first = server_of_us();
  kill(first, SIGKILL);
  wait_gone(first, 3000);
  /* Whether or not the loop has seen it die, the next build works. */
  build(&x, twice_src, &b);
  if (strcmp(b.status, "ok") != 0) TEST_FAIL("%s: %s", b.status, b.error);
  ASSERT_NE_INT(server_of_us(), first);
  close_ctx(&x);
}

/* A server that dies under a build costs no trial: the build runs again
 * on a new one; a second death is the build's end, said plainly. */
TEST(server_killed_during_a_build) {
  ctx x;
  open_ctx(&x, NULL);
  built b;
  start(&x, bomb_src(), 1500, &b);
  for (int round = 0; round < 2; round++) {
    /* The server (a new one in the second round, once the loop has
     * reaped the first), busy with the build. */
    pid_t server = 0;
    for (int i = 0; i < 2000 && !server; i++) {
      uv_run(&x.loop, UV_RUN_NOWAIT);
      pid_t kids[2];
      if (children_of(getpid(), kids, 2) == 1) server = kids[0];
      else usleep(1000);
    }
    ASSERT(server > 0);
    pid_t compile = wait_compile(&x, server, 3000);
    kill(server, SIGKILL);
    wait_gone(compile, 3000); /* its parent-death signal */
  }
  wait_built(&x, &b, 10000);
  ASSERT_EQ_STR(b.status, "COMPILE_ERROR");
  ASSERT_CONTAINS(b.error, "build fork server");
  ASSERT_CONTAINS(b.error, "SIGKILL");
  /* And the next build has a server again. */
  build(&x, twice_src, &b);
  if (strcmp(b.status, "ok") != 0) TEST_FAIL("%s: %s", b.status, b.error);
  close_ctx(&x);
}

TEST(hanging_build_is_killed_at_its_timeout) {
  ctx x;
  open_ctx(&x, NULL);
  pid_t server = server_of_us();
  built b;
  start(&x, bomb_src(), 1000, &b);
  wait_built(&x, &b, 8000);
  ASSERT_EQ_STR(b.status, "BUILD_TIMEOUT");
  ASSERT_CONTAINS(b.error, "longer than 1000 ms");
  wait_childless(server, 3000);   /* the compile is gone ... */
  build(&x, twice_src, &b);       /* ... and the same server goes on */
  ASSERT_EQ_STR(b.status, "ok");
  ASSERT_EQ_INT(server_of_us(), server);
  close_ctx(&x);
}

/* A server that stops answering (stopped here) does not take the builder
 * with it: the build ends at its deadline, the server is killed, and a new
 * one serves the next build. */
TEST(server_that_stops_answering_is_replaced) {
  ctx x;
  open_ctx(&x, NULL);
  pid_t server = server_of_us();
  built b;
  start(&x, bomb_src(), 500, &b);
  pid_t compile = wait_compile(&x, server, 3000);
  kill(server, SIGSTOP);
  wait_built(&x, &b, 10000); /* the deadline, then the kill's grace */
  ASSERT_EQ_STR(b.status, "BUILD_TIMEOUT");
  wait_gone(server, 3000);
  wait_gone(compile, 3000);
  build(&x, twice_src, &b);
  if (strcmp(b.status, "ok") != 0) TEST_FAIL("%s: %s", b.status, b.error);
  ASSERT_NE_INT(server_of_us(), server);
  close_ctx(&x);
}

/* Its builder killed with a build under way: the server and the compile
 * go too, for a forked server and for the exec'd one. */
static void caller_death(const char *exe) {
  int p[2];
  ASSERT_EQ_INT(pipe(p), 0);
  pid_t caller = fork();
  ASSERT(caller >= 0);
  if (caller == 0) {
    close(p[0]);
    ctx x;
    open_ctx(&x, exe);
    pid_t server = server_of_us();
    built b;
    start(&x, bomb_src(), 60000, &b);
    pid_t both[2] = {server, wait_compile(&x, server, 5000)};
    if (write(p[1], both, sizeof both) != sizeof both) _exit(1);
    for (;;) pause();
  }
  close(p[1]);
  pid_t both[2];
  ASSERT_EQ_INT(read(p[0], both, sizeof both), sizeof both);
  close(p[0]);
  ASSERT(both[0] > 0 && both[1] > 0);
  kill(caller, SIGKILL);
  ASSERT_EQ_INT(waitpid(caller, NULL, 0), caller);
  wait_gone(both[0], 3000);
  wait_gone(both[1], 3000);
}

TEST(caller_death_takes_the_forked_server_and_its_builds) { caller_death(NULL); }

TEST(caller_death_takes_the_execd_server_and_its_builds) { caller_death(KTUNE_BUILDER_EXE); }

/* The builds of several jobs at once go through one server. */
TEST(builds_at_once_share_the_server) {
  ctx x;
  open_ctx(&x, NULL);
  enum { N = 4 };
  built b[N];
  char src[N][256];
  for (int i = 0; i < N; i++) {
    snprintf(src[i], sizeof src[i], "int k%d(int x) { return x * %d; }\n", i, i + 2);
    start(&x, src[i], 10000, &b[i]);
  }
  for (int i = 0; i < N; i++) {
    wait_built(&x, &b[i], 20000);
    if (strcmp(b[i].status, "ok") != 0) TEST_FAIL("%d: %s: %s", i, b[i].status, b[i].error);
  }
  close_ctx(&x);
}

TEST_LIST(TEST_ENTRY(builds_come_back_from_the_forked_server),
          TEST_ENTRY(builds_come_back_from_the_execd_server),
          TEST_ENTRY(server_killed_between_builds_is_started_again),
          TEST_ENTRY(server_killed_during_a_build), TEST_ENTRY(hanging_build_is_killed_at_its_timeout),
          TEST_ENTRY(server_that_stops_answering_is_replaced),
          TEST_ENTRY(caller_death_takes_the_forked_server_and_its_builds),
          TEST_ENTRY(caller_death_takes_the_execd_server_and_its_builds),
          TEST_ENTRY(builds_at_once_share_the_server))
