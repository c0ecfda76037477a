/* The real ktune-builder process, first against a scripted tracker on
 * loopback (this file listens, speaks the protocol by hand, and checks
 * what the builder says): Hello (back ends, archs, slots), both back ends,
 * COMPILE_ERROR with diagnostics, BUILD_TIMEOUT with the compiler gone,
 * target checks, refused commands, --jobs concurrency, results never
 * crossing a reconnect, a clean stop with a compile in flight, repeats
 * answered by the build cache without a compile. Then in a
 * real farm: a broken template ends in COMPILE_ERROR rows and the farm
 * keeps working, with either back end; a reference that uses a knob is
 * named as the reason. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <time.h>

#include "common/wire.h"
#include "tests/integration/harness.h"
#include "tests/integration/proc.h"
#include "tests/test.h"
#include "tests/watch.h"

typedef struct {
  char dir[256];
  char tmp[300];  /* the builder's TMPDIR: its work folders */
  char log[300];
  int lfd;     /* listening socket */
  int fd;      /* the builder's connection */
  pid_t pid;
  Ktune__Hello *hello; /* the last Hello, owned by env */
  Ktune__Envelope *hello_env;
} fake;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void set_timeout(int fd, int ms) {
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

static void send_env(int fd, Ktune__Envelope *env) { ASSERT_EQ_INT(wire_write_fd(fd, env), 0); }

/* Accepts the builder's connection, reads its Hello, sends Welcome. */
static void fake_accept(fake *f) {
  set_timeout(f->lfd, 10000);
  f->fd = accept(f->lfd, NULL, NULL);
  if (f->fd < 0) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "cat %s >&2", f->log);
    if (system(cmd) != 0) fprintf(stderr, "(no log)\n");
    TEST_FAIL("the builder did not connect: %s", strerror(errno));
  }
  set_timeout(f->fd, 15000);
  if (f->hello_env) wire_free(f->hello_env);
  f->hello_env = wire_read_fd(f->fd, 1 << 20);
  ASSERT_NOT_NULL(f->hello_env);
  ASSERT_EQ_INT(f->hello_env->msg_case, KTUNE__ENVELOPE__MSG_HELLO);
  f->hello = f->hello_env->hello;
  Ktune__Welcome w = KTUNE__WELCOME__INIT;
  w.version = WIRE_PROTOCOL_VERSION;
  w.agent_id = 1;
  w.heartbeat_ms = 200;
  w.timeout_ms = 60000;
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_WELCOME;
  env.welcome = &w;
  send_env(f->fd, &env);
}

/* Starts a builder that dials the fake tracker, with more options
 * (NULL-ended; NULL: none), and accepts it. */
static void fake_spawn_args(fake *f, const char *jobs, char *const extra[]) {
  struct sockaddr_in sa;
  socklen_t sl = sizeof sa;
  ASSERT_EQ_INT(getsockname(f->lfd, (struct sockaddr *)&sa, &sl), 0);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sa.sin_port));
  /* The fake compilers live in the test's folder. */
  char *argv[24] = {(char *)proc_bin("builder/ktune-builder"), "--tracker", addr, "--jobs",
                    (char *)jobs, "--name", "bld-test", "--allow-compiler", "/tmp/ktune-test.*/*"};
  for (size_t i = 0, n = 9; extra && extra[i]; i++) {
    ASSERT(n + 1 < sizeof argv / sizeof argv[0]);
    argv[n++] = extra[i];
  }
  f->pid = proc_start(argv, f->log);
  fake_accept(f);
}

static void fake_spawn(fake *f, const char *jobs) { fake_spawn_args(f, jobs, NULL); }

static void fake_start_args(fake *f, const char *jobs, char *const extra[]) {
  memset(f, 0, sizeof *f);
  proc_tmpdir(f->dir, sizeof f->dir);
  snprintf(f->log, sizeof f->log, "%s/builder.log", f->dir);
  f->lfd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT(f->lfd >= 0);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ_INT(bind(f->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
  ASSERT_EQ_INT(listen(f->lfd, 4), 0);
  /* Compiles leave their folders here, so that leftovers show. */
  snprintf(f->tmp, sizeof f->tmp, "%s/tmp", f->dir);
  ASSERT_EQ_INT(mkdir(f->tmp, 0700), 0);
  ASSERT_EQ_INT(setenv("TMPDIR", f->tmp, 1), 0);
  fake_spawn_args(f, jobs, extra);
}

static void fake_start(fake *f, const char *jobs) { fake_start_args(f, jobs, NULL); }

static void fake_stop(fake *f) {
  int st = proc_stop(f->pid, SIGTERM, 5000);
  if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "cat %s >&2", f->log);
    if (system(cmd) != 0) fprintf(stderr, "(no log)\n");
    TEST_FAIL("ktune-builder did not stop cleanly on SIGTERM (status %d)", st);
  }
  if (f->fd >= 0) close(f->fd);
  close(f->lfd);
  wire_free(f->hello_env);
  ASSERT_EQ_INT(rmdir(f->tmp), 0); /* empty: every compile folder was removed */
}

/* A build job; strings are borrowed. */
typedef struct {
  Ktune__BuildJob job;
  Ktune__Param p[2];
  Ktune__Param *pp[2];
} job_msg;

static const char *axpb_src =
    "void k(float *out, const float *in) { for (int i = 0; i < N; i++) out[i] = 2 * in[i] + B; }\n";

/* A job for axpb_src with N = 100 and knob B = b. */
static void send_job_b(fake *f, uint64_t id, const char *src, const char *compiler,
                       const char *target, uint32_t timeout_ms, int64_t b) {
  job_msg m;
  ktune__build_job__init(&m.job);
  for (int i = 0; i < 2; i++) {
    ktune__param__init(&m.p[i]);
    m.pp[i] = &m.p[i];
  }
  m.p[0].name = "N";
  m.p[0].value = 100;
  m.p[1].name = "B";
  m.p[1].value = b;
  m.job.knobs = 1;
  m.job.job_id = id;
  m.job.task = "axpb";
  m.job.source = (char *)src;
  m.job.defines = m.pp;
  m.job.n_defines = 2;
  m.job.compiler = (char *)compiler;
  m.job.timeout_ms = timeout_ms;
  m.job.target_arch = (char *)target;
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_BUILD_JOB;
  env.build_job = &m.job;
  send_env(f->fd, &env);
}

static void send_job(fake *f, uint64_t id, const char *src, const char *compiler,
                     const char *target, uint32_t timeout_ms) {
  send_job_b(f, id, src, compiler, target, timeout_ms, 3);
}

/* The next BuildResult, skipping heartbeats; fails after timeout_ms. */
static Ktune__Envelope *next_result(fake *f, int timeout_ms) {
  double end = now_s() + timeout_ms / 1e3;
  while (now_s() < end) {
    set_timeout(f->fd, 100 + (int)((end - now_s()) * 1e3));
    Ktune__Envelope *e = wire_read_fd(f->fd, 64u << 20);
    if (!e) TEST_FAIL("no build result from the builder (connection closed or timed out)");
    if (e->msg_case == KTUNE__ENVELOPE__MSG_BUILD_RESULT) return e;
    ASSERT_EQ_INT(e->msg_case, KTUNE__ENVELOPE__MSG_HEARTBEAT);
    wire_free(e);
  }
  TEST_FAIL("no build result within %d ms", timeout_ms);
}

static int has(char **list, size_t n, const char *s) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(list[i], s) == 0) return 1;
  return 0;
}

static void write_script(const char *path, const char *text) {
  FILE *fp = fopen(path, "w");
  ASSERT_NOT_NULL(fp);
  fputs(text, fp);
  fclose(fp);
  ASSERT_EQ_INT(chmod(path, 0755), 0);
}

/* A fake compiler: answers the probes, then runs body. */
static void fake_cc(char *path, size_t len, const char *dir, const char *name, const char *body) {
  snprintf(path, len, "%s/%s", dir, name);
  char text[2048];
  snprintf(text, sizeof text,
           "#!/bin/sh\n"
           "for a in \"$@\"; do case \"$a\" in\n"
           "  --version) echo 'fakecc 4.5.6'; exit 0;;\n"
           "  -dumpmachine) echo x86_64-linux-gnu; exit 0;;\n"
           "esac; done\n%s\n",
           body);
  write_script(path, text);
}

/* The compiler processes of a builder: those working in a folder below
 * dir (its TMPDIR). A compile can write nowhere else, so its processes
 * are found by where they run rather than by pid files. name, when
 * given, must also be the process's name. */
static int compilers_under(const char *dir, const char *name) {
  DIR *d = opendir("/proc");
  ASSERT_NOT_NULL(d);
  int found = 0;
  for (struct dirent *e; (e = readdir(d));) {
    char path[300], where[4096], comm[64] = "";
    snprintf(path, sizeof path, "/proc/%s/cwd", e->d_name);
    ssize_t n = readlink(path, where, sizeof where - 1);
    if (n <= 0) continue; /* not a process, or one that has ended */
    where[n] = '\0';
    if (strncmp(where, dir, strlen(dir)) != 0) continue;
    snprintf(path, sizeof path, "/proc/%s/comm", e->d_name);
    FILE *fp = fopen(path, "r");
    if (fp) {
      if (!fgets(comm, sizeof comm, fp)) comm[0] = '\0';
      fclose(fp);
    }
    comm[strcspn(comm, "\n")] = '\0';
    if (!name || strcmp(comm, name) == 0) found++;
  }
  closedir(d);
  return found;
}

/* Waits until the count is (want_any ? > 0 : 0); returns the last count. */
static int wait_compilers(const char *dir, const char *name, int want_any, int ms) {
  double end = now_s() + ms / 1e3;
  int n;
  while (((n = compilers_under(dir, name)) != 0) != want_any && now_s() < end) proc_sleep_ms(10);
  return n;
}

static long rss_kb(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *fp = fopen(path, "r");
  ASSERT_NOT_NULL(fp);
  long kb = -1;
  while (fgets(line, sizeof line, fp))
    if (strncmp(line, "VmRSS:", 6) == 0) kb = atol(line + 6);
  fclose(fp);
  return kb;
}

TEST(hello_and_both_back_ends) {
  fake f;
  fake_start(&f, "3");
  struct utsname u;
  uname(&u);
  ASSERT_EQ_INT(f.hello->role, KTUNE__ROLE__ROLE_BUILDER);
  ASSERT_EQ_STR(f.hello->name, "bld-test");
  ASSERT_EQ_INT(f.hello->slots, 3);
  ASSERT_EQ_STR(f.hello->arch, u.machine);
  ASSERT(has(f.hello->backends, f.hello->n_backends, "tcc"));
  ASSERT(has(f.hello->backends, f.hello->n_backends, "cc"));
  ASSERT_EQ_INT(f.hello->n_archs, 1);
  ASSERT_EQ_STR(f.hello->archs[0], u.machine);

  send_job(&f, 1, axpb_src, "tcc", u.machine, 10000);
  Ktune__Envelope *e = next_result(&f, 10000);
  Ktune__BuildResult *r = e->build_result;
  ASSERT_EQ_U64(r->job_id, 1);
  ASSERT_EQ_STR(wire_status_name(r->status), "ok");
  ASSERT(r->artifact.len > 64 && memcmp(r->artifact.data, "\177ELF", 4) == 0);
  ASSERT_CONTAINS(r->compiler_id, "tcc 0.9.27");
  wire_free(e);

  send_job(&f, 2, axpb_src, "cc -O2", u.machine, 30000);
  e = next_result(&f, 30000);
  r = e->build_result;
  ASSERT_EQ_U64(r->job_id, 2);
  ASSERT_EQ_STR(wire_status_name(r->status), "ok");
  ASSERT(r->artifact.len > 64 && memcmp(r->artifact.data, "\177ELF", 4) == 0);
  ASSERT_CONTAINS(r->compiler_id, "cc ");
  ASSERT_CONTAINS(r->compiler_id, " -O2");
  ASSERT_GT_DBL(r->build_s, 0);
  wire_free(e);
  fake_stop(&f);
}

TEST(errors_reach_the_tracker) {
  fake f;
  fake_start(&f, "2");
  char cc[300];
  fake_cc(cc, sizeof cc, f.dir, "sleepy-cc", "sleep 60 &\nwait");

  /* The compiler's own words, pointing into the template. */
  send_job(&f, 10, "void k(float *out) {\n  return 1 +;\n}\n", "gcc -O2", "", 30000);
  Ktune__Envelope *e = next_result(&f, 30000);
  ASSERT_EQ_U64(e->build_result->job_id, 10);
  ASSERT_EQ_STR(wire_status_name(e->build_result->status), "COMPILE_ERROR");
  ASSERT_CONTAINS(e->build_result->error, "axpb.c:2:");
  ASSERT_CONTAINS(e->build_result->error, "error:");
  ASSERT_EQ_INT(e->build_result->artifact.len, 0);
  ASSERT_CONTAINS(e->build_result->compiler_id, "gcc ");
  wire_free(e);

  /* tcc's too. */
  send_job(&f, 11, "void k(float *out) {\n  foo bar;\n}\n", "tcc", "", 10000);
  e = next_result(&f, 10000);
  ASSERT_EQ_STR(wire_status_name(e->build_result->status), "COMPILE_ERROR");
  ASSERT_CONTAINS(e->build_result->error, "axpb.c:2: error:");
  wire_free(e);

  /* Over the time limit: BUILD_TIMEOUT, and the compiler with what it
   * started is gone. */
  double t0 = now_s();
  send_job(&f, 12, axpb_src, cc, "", 500);
  e = next_result(&f, 10000);
  ASSERT_EQ_U64(e->build_result->job_id, 12);
  ASSERT_EQ_STR(wire_status_name(e->build_result->status), "BUILD_TIMEOUT");
  ASSERT_CONTAINS(e->build_result->error, "longer than 500 ms");
  ASSERT(now_s() - t0 < 5);
  wire_free(e);
  ASSERT_EQ_INT(wait_compilers(f.tmp, NULL, 0, 2000), 0);

  /* A compiler for another machine is refused before it runs. */
  send_job(&f, 13, axpb_src, "cc -O2", "riscv64", 30000);
  e = next_result(&f, 30000);
  ASSERT_EQ_STR(wire_status_name(e->build_result->status), "UNSUPPORTED");
  ASSERT_CONTAINS(e->build_result->error, "target mismatch");
  ASSERT_CONTAINS(e->build_result->error, "the runners need riscv64");
  wire_free(e);
  send_job(&f, 14, axpb_src, "tcc", "riscv64", 10000);
  e = next_result(&f, 10000);
  ASSERT_EQ_STR(wire_status_name(e->build_result->status), "UNSUPPORTED");
  ASSERT_CONTAINS(e->build_result->error, "target mismatch: tcc");
  wire_free(e);

  /* No such compiler. */
  send_job(&f, 15, axpb_src, "gcc-999 -O2", "", 30000);
  e = next_result(&f, 30000);
  ASSERT_EQ_STR(wire_status_name(e->build_result->status), "UNSUPPORTED");
  ASSERT_CONTAINS(e->build_result->error, "cannot run 'gcc-999'");
  wire_free(e);

  /* Commands are limited to compilers and code-generation flags: this one
   * would run a program of the session's choosing. */
  char marker[300], evil[700];
  snprintf(marker, sizeof marker, "%s/ran", f.dir);
  snprintf(evil, sizeof evil, "gcc -wrapper /bin/sh,-c,'touch %s' -O2", marker);
  send_job(&f, 16, axpb_src, evil, "", 30000);
  e = next_result(&f, 30000);
  ASSERT_EQ_STR(wire_status_name(e->build_result->status), "UNSUPPORTED");
  ASSERT_CONTAINS(e->build_result->error, "does not pass '-wrapper'");
  ASSERT(access(marker, F_OK) != 0);
  wire_free(e);
  send_job(&f, 17, axpb_src, "sh -c 'touch /tmp/x'", "", 30000);
  e = next_result(&f, 30000);
  ASSERT_EQ_STR(wire_status_name(e->build_result->status), "UNSUPPORTED");
  ASSERT_CONTAINS(e->build_result->error, "does not run 'sh'");
  wire_free(e);

  /* The builder is still fine. */
  send_job(&f, 18, axpb_src, "tcc", "", 10000);
  e = next_result(&f, 10000);
  ASSERT_EQ_STR(wire_status_name(e->build_result->status), "ok");
  wire_free(e);
  fake_stop(&f);
}

TEST(jobs_build_concurrently) {
  fake f;
  fake_start(&f, "4");
  char cc[300];
  /* One second per compile: four one after the other take four. */
  fake_cc(cc, sizeof cc, f.dir, "slow-cc", "sleep 1\nexec cc \"$@\"");
  double t0 = now_s();
  /* Four configs: identical jobs would share one compile. */
  for (uint64_t i = 0; i < 4; i++) send_job_b(&f, 20 + i, axpb_src, cc, "", 30000, (int64_t)i);
  int seen[4] = {0};
  for (int i = 0; i < 4; i++) {
    Ktune__Envelope *e = next_result(&f, 30000);
    uint64_t id = e->build_result->job_id;
    ASSERT(id >= 20 && id < 24);
    if (strcmp(wire_status_name(e->build_result->status), "ok") != 0)
      TEST_FAIL("job %llu: %s: %s", (unsigned long long)id, wire_status_name(e->build_result->status),
                e->build_result->error);
    ASSERT_EQ_STR(e->build_result->compiler_id, "slow-cc 4.5.6");
    seen[id - 20]++;
    wire_free(e);
  }
  double wall = now_s() - t0;
  for (int i = 0; i < 4; i++) ASSERT_EQ_INT(seen[i], 1);
  if (wall >= 2.8) TEST_FAIL("4 one-second compiles with --jobs 4 took %.2f s", wall);
  fake_stop(&f);
}

TEST(results_never_cross_a_reconnect) {
  fake f;
  fake_start(&f, "2");
  char cc[300];
  fake_cc(cc, sizeof cc, f.dir, "slow-cc", "sleep 1\nexec cc \"$@\"");
  send_job(&f, 30, axpb_src, cc, "", 30000);
  proc_sleep_ms(200);
  /* The tracker drops the connection: the job goes back to its queue. */
  close(f.fd);
  fake_accept(&f);
  ASSERT_EQ_STR(f.hello->name, "bld-test");
  /* The old compile finishes during this job; only this job's result comes. */
  send_job(&f, 31, axpb_src, "tcc", "", 10000);
  Ktune__Envelope *e = next_result(&f, 10000);
  ASSERT_EQ_U64(e->build_result->job_id, 31);
  wire_free(e);
  double end = now_s() + 2.0;
  while (now_s() < end) {
    set_timeout(f.fd, 200);
    e = wire_read_fd(f.fd, 64u << 20);
    if (!e) continue;
    if (e->msg_case == KTUNE__ENVELOPE__MSG_BUILD_RESULT)
      TEST_FAIL("job %llu's result came after a reconnect",
                (unsigned long long)e->build_result->job_id);
    wire_free(e);
  }
  fake_stop(&f);
}

TEST(sigterm_with_a_compile_in_flight) {
  fake f;
  fake_start(&f, "1");
  char cc[300];
  fake_cc(cc, sizeof cc, f.dir, "forever-cc", "sleep 60");
  send_job(&f, 40, axpb_src, cc, "", 60000);
  ASSERT(wait_compilers(f.tmp, "sleep", 1, 10000) > 0);
  /* The first SIGTERM drains: the compile under way goes on. */
  kill(f.pid, SIGTERM);
  proc_sleep_ms(300);
  ASSERT_EQ_INT(compilers_under(f.tmp, "sleep"), 1);
  ASSERT_EQ_INT(waitpid(f.pid, NULL, WNOHANG), 0);
  double t0 = now_s();
  char tmp[300];
  snprintf(tmp, sizeof tmp, "%s", f.tmp);
  fake_stop(&f); /* the second stops at once: exits 0, its temporary folders are gone */
  ASSERT(now_s() - t0 < 3);
  ASSERT_EQ_INT(wait_compilers(tmp, NULL, 0, 2000), 0);
}

/* The same BuildJob twice (a config for a second key, a re-submitted
 * session): the second is answered with the first's bytes and identity
 * and no compiler runs; the log says so, and counts the hits at exit.
 * With --build-cache-mb 0 every build compiles. */
TEST(repeated_build_served_from_cache) {
  ASSERT_EQ_INT(setenv("KTUNE_DEBUG", "1", 1), 0);
  static const char *const compilers[] = {"cc -O2", "tcc"};
  char *off[] = {"--build-cache-mb", "0", NULL};
  for (int cache = 1; cache >= 0; cache--) {
    fake f;
    fake_start_args(&f, "2", cache ? NULL : off);
    int w = watch_work_folders(f.tmp);
    for (int c = 0; c < 2; c++) {
      Ktune__Envelope *first = NULL;
      for (uint64_t k = 0; k < 2; k++) {
        uint64_t id = 70 + 2 * (uint64_t)c + k;
        send_job(&f, id, axpb_src, compilers[c], "", 30000);
        Ktune__Envelope *e = next_result(&f, 30000);
        Ktune__BuildResult *r = e->build_result;
        ASSERT_EQ_U64(r->job_id, id);
        if (strcmp(wire_status_name(r->status), "ok") != 0)
          TEST_FAIL("%s: %s: %s", compilers[c], wire_status_name(r->status), r->error);
        /* An external compile makes a folder of its own; libtcc builds
         * share one, made by the first (the log tells their compiles). */
        int made = work_folders_made(w), want = k == 0 || (!cache && c == 0);
        if (c == 0 ? made != want : made > want)
          TEST_FAIL("%s, build %d, cache %s: %d compile(s)", compilers[c], (int)k + 1,
                    cache ? "on" : "off", made);
        if (!first) {
          first = e;
          continue;
        }
        Ktune__BuildResult *r0 = first->build_result;
        ASSERT_EQ_STR(r->compiler_id, r0->compiler_id);
        if (cache) {
          ASSERT_EQ_INT(r->artifact.len, r0->artifact.len);
          ASSERT_EQ_INT(memcmp(r->artifact.data, r0->artifact.data, r0->artifact.len), 0);
          ASSERT_EQ_DBL(r->build_s, r0->build_s, 0);
        }
        wire_free(e);
      }
      wire_free(first);
    }
    close(w);
    fake_stop(&f);
    char log[1 << 16];
    proc_read_file(f.log, log, sizeof log);
    if (cache) {
      ASSERT_CONTAINS(log, "job 71: ok from the build cache, no compile");
      ASSERT_CONTAINS(log, "job 73: ok from the build cache, no compile");
      ASSERT_CONTAINS(log, "job 70: ok in ");
      ASSERT_CONTAINS(log, ", build cache miss");
      ASSERT_CONTAINS(log, "build cache: 2 hit(s), 0 shared with an identical build under way, "
                           "2 compiled; 2 artifact(s) in ");
    } else {
      ASSERT(strstr(log, "from the build cache") == NULL);
      ASSERT(strstr(log, "build cache:") == NULL);
      ASSERT_CONTAINS(log, "job 72: ok in ");
      ASSERT_CONTAINS(log, "job 73: ok in ");
      ASSERT_CONTAINS(log, "build cache 0 MiB");
    }
  }
}

/* A macro that expands to 2^39 tokens: libtcc expands it in memory and
 * cannot be interrupted. */
static const char *bomb_src(void) {
  static char src[4096];
  int n = snprintf(src, sizeof src, "#define A0 x\n");
  for (int i = 1; i < 40; i++)
    n += snprintf(src + n, sizeof src - (size_t)n, "#define A%d A%d A%d\n", i, i - 1, i - 1);
  snprintf(src + n, sizeof src - (size_t)n, "int v = A39;\n");
  return src;
}

TEST(tcc_macro_bomb_ends_on_time) {
  fake f;
  fake_start(&f, "2");
  double t0 = now_s();
  send_job(&f, 50, bomb_src(), "tcc", "", 2000);
  Ktune__Envelope *e = next_result(&f, 10000);
  double took = now_s() - t0;
  ASSERT_EQ_U64(e->build_result->job_id, 50);
  /* Whichever comes first ends it: the deadline, or the address-space
   * limit (tcc's "memory full"); both on time. */
  const char *status = wire_status_name(e->build_result->status);
  if (strcmp(status, "BUILD_TIMEOUT") == 0)
    ASSERT_CONTAINS(e->build_result->error, "longer than 2000 ms");
  else if (strcmp(status, "COMPILE_ERROR") == 0)
    ASSERT_CONTAINS(e->build_result->error, "memory");
  else
    TEST_FAIL("the bomb ended as %s: %s", status, e->build_result->error);
  wire_free(e);
  if (took > 3.0) TEST_FAIL("%s after %.2f s, limit 2 s", status, took);
  /* The compile grew in its child, not in the builder. */
  long kb = rss_kb(f.pid);
  if (kb > 300 * 1024) TEST_FAIL("the builder holds %ld kB after the bomb", kb);
  ASSERT_EQ_INT(wait_compilers(f.tmp, NULL, 0, 2000), 0);
  /* And it keeps serving, tcc included. */
  send_job(&f, 51, axpb_src, "tcc", "", 10000);
  e = next_result(&f, 10000);
  ASSERT_EQ_STR(wire_status_name(e->build_result->status), "ok");
  wire_free(e);
  fake_stop(&f);
}

/* libtcc compiles in a fork of the build server: --build-mem-limit-mb
 * holds it, on top of what the server maps, well before its deadline. */
TEST(tcc_build_is_held_to_its_memory_limit) {
  fake f;
  char *extra[] = {"--build-mem-limit-mb", "64", NULL};
  fake_start_args(&f, "1", extra);
  double t0 = now_s();
  send_job(&f, 52, bomb_src(), "tcc", "", 30000);
  Ktune__Envelope *e = next_result(&f, 40000);
  double took = now_s() - t0;
  ASSERT_EQ_U64(e->build_result->job_id, 52);
  ASSERT_EQ_STR(wire_status_name(e->build_result->status), "COMPILE_ERROR");
  ASSERT_CONTAINS(e->build_result->error, "memory");
  wire_free(e);
  if (took > 20.0) TEST_FAIL("the 64 MB limit took %.1f s to stop the bomb", took);
  send_job(&f, 53, axpb_src, "tcc", "", 10000);
  e = next_result(&f, 10000);
  ASSERT_EQ_STR(wire_status_name(e->build_result->status), "ok");
  wire_free(e);
  fake_stop(&f);
}

static int work_folders(const char *dir) {
  DIR *d = opendir(dir);
  ASSERT_NOT_NULL(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) n += strncmp(e->d_name, "ktune-build-", 12) == 0;
  closedir(d);
  return n;
}

TEST(builder_death_kills_its_compilers) {
  fake f;
  fake_start(&f, "1");
  /* gcc expands the bomb for seconds in cc1, a child of the driver. */
  send_job(&f, 60, bomb_src(), "gcc -O2", "", 60000);
  ASSERT(wait_compilers(f.tmp, "cc1", 1, 10000) > 0);
  kill(f.pid, SIGKILL);
  ASSERT_EQ_INT(waitpid(f.pid, NULL, 0), f.pid);
  /* The supervisor's parent-death signal takes the whole group. */
  if (wait_compilers(f.tmp, NULL, 0, 3000) != 0)
    TEST_FAIL("%d compiler processes outlived the builder", compilers_under(f.tmp, NULL));
  /* Its work folder is left behind, until the next builder starts. */
  ASSERT_EQ_INT(work_folders(f.tmp), 1);
  close(f.fd);
  fake_spawn(&f, "1");
  ASSERT_EQ_INT(work_folders(f.tmp), 0);
  send_job(&f, 61, axpb_src, "tcc", "", 10000);
  Ktune__Envelope *e = next_result(&f, 10000);
  ASSERT_EQ_STR(wire_status_name(e->build_result->status), "ok");
  wire_free(e);
  fake_stop(&f);
}

/* A template that compiles for even V only. (Its reference must not
 * depend on V: runners keep one reference output per task and size.) */
static void write_broken_task(const char *dir, char *spec, size_t len) {
  char path[400];
  snprintf(path, sizeof path, "%s/broken.c", dir);
  write_script(path,
               "void k(float *out, const float *in) {\n"
               "#if V % 2\n"
               "  this is not C;\n"
               "#endif\n"
               "  for (int i = 0; i < 64; i++) out[i] = in[i] * 2;\n"
               "}\n"
               "void k_ref(float *out, const float *in) {\n"
               "  for (int i = 0; i < 64; i++) out[i] = 2 * in[i];\n"
               "}\n");
  snprintf(spec, len, "%s/broken.json", dir);
  write_script(spec, "{\"name\": \"broken\", \"source\": \"broken.c\", \"entry\": \"k\",\n"
                     " \"reference\": \"k_ref\", \"flops\": \"64\",\n"
                     " \"args\": [{\"name\": \"out\", \"type\": \"float\", \"count\": \"64\","
                     " \"output\": true},\n"
                     "          {\"name\": \"in\", \"type\": \"float\", \"count\": \"64\"}],\n"
                     " \"knobs\": {\"V\": [0, 1, 2, 3]}}\n");
}

static void broken_session(farm *f, const char *spec, const char *compiler, const char *id_like) {
  char out[8192];
  char *args[] = {"tune", (char *)spec, "--key", "k", "--strategy", "grid", "--trials", "4",
                  "--compiler", (char *)compiler, NULL};
  int rc = farm_ktune(f, out, sizeof out, 120000, args);
  if (rc != 0) {
    farm_print_log(f);
    TEST_FAIL("ktune tune %s --compiler '%s' exited %d: %s", spec, compiler, rc, out);
  }
  sqlite3 *db = farm_db(f);
  long long sid = farm_query(db, "SELECT max(id) FROM sessions");
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM trials WHERE session = %lld", sid), 4);
  ASSERT_EQ_INT(farm_query(db,
                           "SELECT count(*) FROM trials WHERE session = %lld AND status = 'ok'"
                           " AND json_extract(config, '$.V') %% 2 = 0 AND compiler_id LIKE '%s'",
                           sid, id_like),
                2);
  /* The compiler's first lines, pointing into the template as written. */
  ASSERT_EQ_INT(farm_query(db,
                           "SELECT count(*) FROM trials WHERE session = %lld AND "
                           "status = 'COMPILE_ERROR' AND json_extract(config, '$.V') %% 2 = 1 AND "
                           "error LIKE '%%broken.c:3%%error%%' AND compiler_id LIKE '%s'",
                           sid, id_like),
                2);
  sqlite3_close(db);
}

/* A farm with builder b1 and runner r1 of key k, both ready. */
static void farm_with_agents(farm *f, pid_t *b, pid_t *r) {
  farm_start(f, NULL);
  *b = farm_builder(f, "b1");
  *r = farm_runner(f, "r1", "k", NULL);
  farm_wait_agent(f, "b1", 1);
  farm_wait_agent(f, "r1", 1);
}

TEST(broken_template_in_a_farm) {
  farm f;
  pid_t b, r;
  farm_with_agents(&f, &b, &r);
  char spec[400];
  write_broken_task(f.dir, spec, sizeof spec);
  broken_session(&f, spec, "tcc", "tcc 0.9.27%");
  broken_session(&f, spec, "cc -O2", "cc % -O2");

  /* ktune export carries the diagnostics too. */
  static char exp[1 << 18];
  char *export[] = {"export", "--format", "jsonl", NULL};
  ASSERT_EQ_INT(farm_ktune(&f, exp, sizeof exp, 30000, export), 0);
  int errors = 0;
  for (char *line = strtok(exp, "\n"); line; line = strtok(NULL, "\n")) {
    json_t *o = json_loads(line, 0, NULL);
    ASSERT_NOT_NULL(o);
    if (!strcmp(json_string_value(json_object_get(o, "status")), "COMPILE_ERROR")) {
      ASSERT_CONTAINS(json_string_value(json_object_get(o, "error")), "broken.c:3");
      errors++;
    }
    json_decref(o);
  }
  ASSERT_EQ_INT(errors, 4);

  /* The farm keeps working: a real kernel with the external compiler. */
  char out[8192];
  char *good[] = {"tune", "matmul", "-D", "M=40", "-D", "N=33", "-D", "K=17", "--key", "k",
                  "--trials", "3", "--compiler", "cc -O2", NULL};
  int rc = farm_ktune(&f, out, sizeof out, 120000, good);
  if (rc != 0) TEST_FAIL("ktune tune matmul exited %d: %s", rc, out);
  sqlite3 *db = farm_db(&f);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM trials WHERE task = 'matmul' AND "
                               "status = 'ok' AND compiler_id LIKE 'cc %% -O2'"),
                3);
  sqlite3_close(db);
  proc_stop(r, SIGTERM, 5000);
  proc_stop(b, SIGTERM, 5000);
  farm_stop_tracker(&f);
}

/* A reference that reads a knob, here through the template's own macro:
 * runners would keep its output for one config and judge every other
 * config by it. Every build is refused with a message naming the knob, on
 * the progress line and in the session's end, with either back end. */
TEST(reference_using_a_knob_is_named) {
  farm f;
  pid_t b, r;
  farm_with_agents(&f, &b, &r);
  char path[400], spec[400];
  snprintf(path, sizeof path, "%s/scaled.c", f.dir);
  write_script(path, "#define SC_SCALE (U + 1)\n"
                     "void k(float *out, const float *in) {\n"
                     "  for (int i = 0; i < 64; i++) out[i] = in[i] * SC_SCALE;\n"
                     "}\n"
                     "void k_ref(float *out, const float *in) {\n"
                     "  for (int i = 0; i < 64; i++) out[i] = in[i] * SC_SCALE;\n"
                     "}\n");
  snprintf(spec, sizeof spec, "%s/scaled.json", f.dir);
  write_script(spec, "{\"name\": \"scaled\", \"source\": \"scaled.c\", \"entry\": \"k\",\n"
                     " \"reference\": \"k_ref\", \"flops\": \"64\",\n"
                     " \"args\": [{\"name\": \"out\", \"type\": \"float\", \"count\": \"64\","
                     " \"output\": true},\n"
                     "          {\"name\": \"in\", \"type\": \"float\", \"count\": \"64\"}],\n"
                     " \"knobs\": {\"U\": [1, 2]}}\n");
  const char *compilers[] = {"tcc", "cc -O2"};
  for (int i = 0; i < 2; i++) {
    char out[8192];
    char *args[] = {"tune", spec, "--key", "k", "--strategy", "grid", "--trials", "2",
                    "--compiler", (char *)compilers[i], NULL};
    int rc = farm_ktune(&f, out, sizeof out, 120000, args);
    if (rc != 1) {
      farm_print_log(&f);
      TEST_FAIL("--compiler '%s': a reference using a knob exited %d, not 1: %s", compilers[i],
                rc, out);
    }
    ASSERT_CONTAINS(out, "failed 2 (COMPILE_ERROR 2: reference k_ref uses knob U; the reference");
    ASSERT_CONTAINS(out, "every trial failed: COMPILE_ERROR 2: reference k_ref uses knob U; the "
                         "reference must not depend on the config (docs/TASKS.md)");
  }
  farm_stop_all(&f, r, b, 0);
}

TEST_LIST(TEST_ENTRY(broken_template_in_a_farm), TEST_ENTRY(hello_and_both_back_ends), TEST_ENTRY(errors_reach_the_tracker),
          TEST_ENTRY(jobs_build_concurrently), TEST_ENTRY(results_never_cross_a_reconnect),
          TEST_ENTRY(sigterm_with_a_compile_in_flight), TEST_ENTRY(tcc_macro_bomb_ends_on_time),
          TEST_ENTRY(tcc_build_is_held_to_its_memory_limit),
          TEST_ENTRY(builder_death_kills_its_compilers), TEST_ENTRY(repeated_build_served_from_cache),
          TEST_ENTRY(reference_using_a_knob_is_named))
