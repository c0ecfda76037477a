/* The runner agent on real processes. Most cases play the tracker
 * themselves on a loopback socket, so that they choose every RunJob field
 * and see every RunResult; one runs the hostile task through a real
 * tracker, builder and `ktune tune` and reads the history.
 *
 * Artifacts are built here as the builder would (codegen + libtcc) from
 * tests/tasks/hostile.json or small inline kernels. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <time.h>

#include "builder/codegen.h"
#include "builder/tcc.h"
#include "common/frame.h"
#include "common/rng.h"
#include "common/task.h"
#include "common/wire.h"
#include "runner/load.h"
#include "runner/measure.h"
#include "tests/integration/harness.h"
#include "tests/test.h"

/* ---- a tracker of our own ---- */

typedef struct {
  char dir[256];
  char log[300];
  char dump[300];
  char addr[64];
  int lfd, fd;
  pid_t runner;
  Ktune__Envelope *hello;
  uint64_t next_id;
} bench;

/* proc_start, but the runner dies with this test process: a failed case
 * must not leave a runner holding its core for the next run. */
static pid_t start_runner(char *const argv[], const char *log) {
  fflush(NULL);
  pid_t pid = fork();
  ASSERT(pid >= 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    int nul = open("/dev/null", O_RDONLY);
    if (fd < 0 || nul < 0) _exit(126);
    dup2(nul, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    execv(argv[0], argv);
    _exit(127);
  }
  return pid;
}

/* A core this test may pin a runner to: allowed here and not claimed by
 * another runner on this host (see claim_cpu in runner/main.c). */
static const char *free_cpu(void) {
  static char buf[16];
  cpu_set_t allowed;
  ASSERT_EQ_INT(sched_getaffinity(0, sizeof allowed, &allowed), 0);
  for (int c = 0; c < CPU_SETSIZE; c++) {
    if (!CPU_ISSET(c, &allowed)) continue;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "ktune-runner-cpu-%d", c);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int ok = bind(fd, (struct sockaddr *)&a,
                  (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)) == 0;
    close(fd);
    if (ok) {
      snprintf(buf, sizeof buf, "%d", c);
      return buf;
    }
  }
  TEST_FAIL("every core here is claimed by some ktune-runner");
}

static void bench_print_log(const bench *b) {
  FILE *f = fopen(b->log, "r");
  char line[1024];
  fprintf(stderr, "--- runner log %s ---\n", b->log);
  while (f && fgets(line, sizeof line, f)) fputs(line, stderr);
  if (f) fclose(f);
}

/* Takes the runner's next connection: its Hello goes to b->hello (the
 * last one's is freed), and it is welcomed. */
static void bench_accept(bench *b) {
  struct pollfd p = {b->lfd, POLLIN, 0};
  if (poll(&p, 1, 10000) != 1) {
    bench_print_log(b);
    TEST_FAIL("the runner never dialled");
  }
  b->fd = accept4(b->lfd, NULL, NULL, SOCK_CLOEXEC);
  ASSERT(b->fd >= 0);
  p.fd = b->fd;
  ASSERT_EQ_INT(poll(&p, 1, 10000), 1);
  wire_free(b->hello);
  b->hello = wire_read_fd(b->fd, FRAME_MAX_DEFAULT);
  ASSERT_NOT_NULL(b->hello);
  ASSERT_EQ_INT(b->hello->msg_case, KTUNE__ENVELOPE__MSG_HELLO);
  Ktune__Welcome w = KTUNE__WELCOME__INIT;
  w.version = WIRE_PROTOCOL_VERSION;
  w.agent_id = 1;
  w.heartbeat_ms = 1000;
  w.timeout_ms = 600000; /* this tracker does not beat; the runner must not give up on it */
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_WELCOME;
  env.welcome = &w;
  ASSERT_EQ_INT(wire_write_fd(b->fd, &env), 0);
}

/* Listens on 127.0.0.1, starts ktune-runner against it (extra options
 * after the usual ones) and completes its handshake. */
static void bench_start(bench *b, char *const extra[]) {
  memset(b, 0, sizeof *b);
  b->next_id = 1;
  proc_tmpdir(b->dir, sizeof b->dir);
  snprintf(b->log, sizeof b->log, "%s/runner.log", b->dir);
  snprintf(b->dump, sizeof b->dump, "%s/dump", b->dir);
  ASSERT_EQ_INT(mkdir(b->dump, 0755), 0);
  b->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ_INT(bind(b->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
  ASSERT_EQ_INT(listen(b->lfd, 4), 0);
  socklen_t sl = sizeof sa;
  ASSERT_EQ_INT(getsockname(b->lfd, (struct sockaddr *)&sa, &sl), 0);
  snprintf(b->addr, sizeof b->addr, "127.0.0.1:%d", ntohs(sa.sin_port));
  char *argv[32] = {(char *)proc_bin("runner/ktune-runner"), "--tracker", b->addr, "--key", "test",
                    "--name", "test-runner", "--dump-dir", b->dump};
  int n = 9;
  for (int i = 0; extra && extra[i] && n < 31; i++) argv[n++] = extra[i];
  argv[n] = NULL;
  b->runner = start_runner(argv, b->log);
  bench_accept(b);
}

/* The children of a process (their number; the first max go to out). */
static int children_of(pid_t parent, pid_t *out, int max) {
  DIR *d = opendir("/proc");
  ASSERT_NOT_NULL(d);
  struct dirent *e;
  int n = 0;
  while ((e = readdir(d))) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char path[300], buf[512];
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    char *rp = strrchr(buf, ')');
    char state;
    int ppid;
    if (rp && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && ppid == parent) {
      if (n < max) out[n] = (pid_t)atoi(e->d_name);
      n++;
    }
  }
  closedir(d);
  return n;
}

/* 1 when pid is a runner's fork server (runner/forkserver.h). */
static int is_fork_server(pid_t pid) {
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t len = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  for (size_t i = 0; i < len; i += strlen(buf + i) + 1)
    if (strcmp(buf + i, "--fork-server") == 0) return 1;
  return 0;
}

/* The runner's fork server, once it runs. */
static pid_t fork_server_of(pid_t runner) {
  pid_t kids[8];
  for (int t = 0; t < 500; t++, proc_sleep_ms(10)) {
    int n = children_of(runner, kids, 8);
    for (int i = 0; i < n && i < 8; i++)
      if (is_fork_server(kids[i])) return kids[i];
  }
  TEST_FAIL("runner %d has no fork server", (int)runner);
}

/* What is left of the runner's measuring processes: its children and
 * its fork server's, not the fork server itself. */
static int measuring_of(pid_t runner, pid_t *out, int max) {
  pid_t kids[8];
  int n = children_of(runner, kids, 8), found = 0;
  for (int i = 0; i < n && i < 8; i++) {
    if (!is_fork_server(kids[i])) {
      if (found < max) out[found] = kids[i];
      found++;
      continue;
    }
    int room = max > found ? max - found : 0;
    found += children_of(kids[i], room ? out + found : NULL, room);
  }
  return found;
}

/* 1 while pid runs (a zombie does not). */
static int running(pid_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t len = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[len] = '\0';
  char *rp = strrchr(buf, ')');
  return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

/* The runner's measuring child, once it has started. */
static pid_t bench_child(const bench *b) {
  pid_t kid = 0;
  for (int i = 0; i < 500 && measuring_of(b->runner, &kid, 1) == 0; i++) proc_sleep_ms(10);
  ASSERT(kid > 0);
  return kid;
}

static void bench_stop(bench *b) {
  int st = proc_stop(b->runner, SIGTERM, 10000);
  if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
    bench_print_log(b);
    TEST_FAIL("the runner did not stop cleanly on SIGTERM (status %d)", st);
  }
  close(b->fd);
  close(b->lfd);
  wire_free(b->hello);
}

/* 1 when the runner's log so far holds needle. */
static int bench_log_contains(const bench *b, const char *needle) {
  static char text[1 << 16];
  FILE *f = fopen(b->log, "r");
  ASSERT_NOT_NULL(f);
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = '\0';
  return strstr(text, needle) != NULL;
}

/* Sends job under the next job id. */
static void bench_send(bench *b, Ktune__RunJob *job) {
  job->job_id = b->next_id++;
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_RUN_JOB;
  env.run_job = job;
  ASSERT_EQ_INT(wire_write_fd(b->fd, &env), 0);
}

/* The next RunResult within wait_ms, heartbeats skipped, or NULL when
 * none came. The caller frees it. */
static Ktune__Envelope *bench_result(bench *b, int wait_ms) {
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long left = wait_ms - ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
    struct pollfd p = {b->fd, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, (int)left) != 1) return NULL;
    Ktune__Envelope *r = wire_read_fd(b->fd, FRAME_MAX_DEFAULT);
    if (!r) {
      bench_print_log(b);
      TEST_FAIL("the runner closed the connection");
    }
    if (r->msg_case == KTUNE__ENVELOPE__MSG_RUN_RESULT) return r;
    ASSERT_EQ_INT(r->msg_case, KTUNE__ENVELOPE__MSG_HEARTBEAT);
    wire_free(r);
  }
}

/* The result of job_id, the next one the runner sends. */
static Ktune__Envelope *bench_result_of(bench *b, uint64_t job_id, int wait_ms) {
  Ktune__Envelope *r = bench_result(b, wait_ms);
  if (!r) {
    bench_print_log(b);
    TEST_FAIL("no result for job %llu within %d ms", (unsigned long long)job_id, wait_ms);
  }
  ASSERT_EQ_U64(r->run_result->job_id, job_id);
  return r;
}

/* Sends job and waits for its result. The caller frees the envelope. */
static Ktune__Envelope *bench_trial(bench *b, Ktune__RunJob *job, int wait_ms) {
  bench_send(b, job);
  return bench_result_of(b, job->job_id, wait_ms);
}

/* ---- jobs ---- */

enum { MAX_BUFS = 4 };

typedef struct {
  Ktune__RunJob job;
  Ktune__Timing tm;
  Ktune__Buffer buf[MAX_BUFS];
  Ktune__Buffer *bufp[MAX_BUFS];
  uint8_t *so;
  size_t len;
} job_t;

static void build_or_fail(const char *src, uint8_t **so, size_t *len) {
  char diag[2048];
  int rc = tcc_build_so(src, so, len, diag, sizeof diag);
  if (rc != 0) TEST_FAIL("tcc_build_so: %d: %s", rc, diag);
}

static const char *src_dir(void) {
  const char *s = getenv("KTUNE_SRC");
#ifdef KTUNE_SRC_DIR
  if (!s) s = KTUNE_SRC_DIR;
#endif
  ASSERT_NOT_NULL(s);
  return s;
}

/* The hostile task as its spec says, with TAG and HUGE_MB set. */
static void hostile_spec(task_spec *t, long tag, int64_t huge_mb) {
  char path[4096], err[512];
  snprintf(path, sizeof path, "%s/tests/tasks/hostile.json", src_dir());
  if (task_load(path, t, err, sizeof err) < 0) TEST_FAIL("%s", err);
  ASSERT_EQ_INT(task_set_const(t, "TAG", tag, err, sizeof err), 0);
  ASSERT_EQ_INT(task_set_const(t, "HUGE_MB", huge_mb, err, sizeof err), 0);
}

/* One config of a task spec, built and wrapped in a RunJob as the
 * tracker and builder would make it. */
static void spec_job(job_t *j, const task_spec *t, const int64_t *knobs, const char *size) {
  codegen_define defs[64];
  size_t nd = 0;
  for (size_t i = 0; i < t->nconsts; i++)
    defs[nd++] = (codegen_define){t->consts[i].name, t->consts[i].value};
  for (size_t i = 0; i < t->nknobs; i++)
    defs[nd++] = (codegen_define){t->knobs[i].name, knobs[i]};
  char *src = codegen_source(t->name, t->source, defs, nd);
  ASSERT_NOT_NULL(src);
  build_or_fail(src, &j->so, &j->len);
  free(src);
  ktune__run_job__init(&j->job);
  ktune__timing__init(&j->tm);
  j->job.timing = &j->tm;
  ASSERT(t->nargs <= MAX_BUFS);
  for (size_t i = 0; i < t->nargs; i++) {
    ktune__buffer__init(&j->buf[i]);
    int64_t count;
    char err[256];
    ASSERT_EQ_INT(task_eval(t, NULL, t->args[i].count, &count, err, sizeof err), 0);
    j->buf[i].type = t->args[i].type;
    j->buf[i].count = (uint64_t)count;
    j->buf[i].output = t->args[i].output;
    j->buf[i].name = t->args[i].name;
    j->bufp[i] = &j->buf[i];
  }
  j->job.artifact.data = j->so;
  j->job.artifact.len = j->len;
  j->job.entry = t->entry;
  j->job.reference = t->reference ? t->reference : "";
  j->job.buffers = j->bufp;
  j->job.n_buffers = t->nargs;
  j->job.seed = KTUNE_INPUT_SEED;
  j->tm.number = 1;
  j->tm.repeat = 3;
  j->job.check = 1;
  j->job.rtol = t->rtol;
  j->job.atol = t->atol;
  j->tm.timeout_ms = 10000;
  j->job.task = t->name;
  j->job.size = (char *)size;
}

/* A job for k(float *out) with n outputs and no reference. */
static void inline_job(job_t *j, const char *src, uint64_t n) {
  build_or_fail(src, &j->so, &j->len);
  ktune__run_job__init(&j->job);
  ktune__timing__init(&j->tm);
  j->job.timing = &j->tm;
  ktune__buffer__init(&j->buf[0]);
  j->buf[0].type = "float";
  j->buf[0].count = n;
  j->buf[0].output = 1;
  j->bufp[0] = &j->buf[0];
  j->job.artifact.data = j->so;
  j->job.artifact.len = j->len;
  j->job.entry = "k";
  j->job.buffers = j->bufp;
  j->job.n_buffers = 1;
  j->job.seed = KTUNE_INPUT_SEED;
  j->tm.number = 1;
  j->tm.repeat = 3;
  j->tm.timeout_ms = 20000;
}

static int cmp_dbl(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, size_t n) {
  qsort(v, n, sizeof *v, cmp_dbl);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* The good config's dump holds out = 2 * in + 1 for the runner's inputs. */
static void check_hostile_dump(const bench *b, uint64_t job_id, int64_t n) {
  char path[400];
  snprintf(path, sizeof path, "%s/job-%llu.out", b->dump, (unsigned long long)job_id);
  FILE *f = fopen(path, "rb");
  ASSERT_NOT_NULL(f);
  float *out = malloc(sizeof(float) * (size_t)n), *in = malloc(sizeof(float) * (size_t)n);
  ASSERT_EQ_INT(fread(out, sizeof(float), (size_t)n, f), n);
  fclose(f);
  ASSERT_EQ_INT(rng_fill_buffer("float", in, (uint64_t)n, KTUNE_INPUT_SEED, 1), 0);
  for (int64_t i = 0; i < n; i++)
    if (out[i] != 2.0f * in[i] + 1.0f)
      TEST_FAIL("out[%lld] = %g, expected %g", (long long)i, out[i], 2.0f * in[i] + 1.0f);
  free(out);
  free(in);
}

/* ---- the cases ---- */

typedef struct {
  int mode;
  const char *status;
  const char *needle, *needle2;
} expectation;

/* What each hostile MODE must come to (tests/tasks/hostile.c). */
static const expectation hostile_expect[] = {
    {0, "ok", NULL, NULL},
    {1, "RUNTIME_ERROR", "kernel crashed: SIGSEGV", NULL},
    {2, "RUNTIME_ERROR", "kernel crashed: SIGABRT", NULL},
    {3, "RUN_TIMEOUT", "killed with its process group", NULL},
    {4, "RUNTIME_ERROR", "SIGFPE", "integer divide by zero"},
    {5, "WRONG_ANSWER", "out[512]", "worst abs error 1"},
    {6, "RUNTIME_ERROR", "sandbox: the kernel made a forbidden system call: openat", NULL},
    {7, "RUNTIME_ERROR", "sandbox: the kernel made a forbidden system call: clone", NULL},
    {8, "RUNTIME_ERROR", "kernel crashed: SIGSEGV", "may use 256 MB (ktune-runner --mem-limit-mb)"},
    {9, "RUNTIME_ERROR", "sandbox: the kernel made a forbidden system call: socket", NULL},
    {10, "RUNTIME_ERROR", "initialisation code (run by dlopen) made a forbidden system call: clone",
     NULL},
};

/* Sanitized builds cannot limit memory (runner/measure.h): there the huge
 * allocation is one no machine grants, and whatever stops it will do. */
static int64_t huge_mb(void) { return MEASURE_LIMITS_MEMORY ? 1024 : INT64_C(1) << 30; }

static const expectation *expect_for(int mode) {
  static const expectation unlimited = {8, "RUNTIME_ERROR", NULL, NULL};
  if (mode == 8 && !MEASURE_LIMITS_MEMORY) return &unlimited;
  return &hostile_expect[mode];
}

TEST(hostile_trials_leave_the_runner_serving) {
  char *extra[] = {"--cpu", (char *)free_cpu(), "--mem-limit-mb", "256", NULL};
  bench b;
  bench_start(&b, extra);
  long tag = (long)getpid();
  char escaped[128], ctor[140];
  snprintf(escaped, sizeof escaped, "/tmp/ktune-hostile-%ld", tag);
  snprintf(ctor, sizeof ctor, "%s-ctor", escaped);
  unlink(escaped);
  unlink(ctor);
  task_spec t;
  /* 1 GB: the machine would grant it; the runner's limit must not. */
  hostile_spec(&t, tag, huge_mb());
  ASSERT_EQ_INT(t.nknobs, 1);
  ASSERT_EQ_INT(t.knobs[0].nvalues, sizeof hostile_expect / sizeof hostile_expect[0]);
  pid_t kids[8];
  for (size_t i = 0; i <= sizeof hostile_expect / sizeof hostile_expect[0]; i++) {
    /* Every misbehaviour, then the good config again. */
    const expectation *e = expect_for(hostile_expect[i % (sizeof hostile_expect / sizeof hostile_expect[0])].mode);
    int64_t mode = e->mode;
    job_t j;
    spec_job(&j, &t, &mode, "{\"N\":1024}");
    j.tm.timeout_ms = 1500;
    Ktune__Envelope *r = bench_trial(&b, &j.job, 30000);
    Ktune__RunResult *res = r->run_result;
    if (strcmp(wire_status_name(res->status), e->status) != 0 || (e->needle && !strstr(res->error, e->needle)) ||
        (e->needle2 && !strstr(res->error, e->needle2))) {
      bench_print_log(&b);
      TEST_FAIL("MODE=%d: expected %s with \"%s\", got %s: %s", e->mode, e->status,
                e->needle ? e->needle : "", wire_status_name(res->status), res->error);
    }
    fprintf(stderr, "  MODE=%-2d %-13s %s\n", e->mode, wire_status_name(res->status), res->error);
    if (e->mode == 0) {
      ASSERT_EQ_INT(res->n_costs_s, 3);
      for (size_t k = 0; k < res->n_costs_s; k++) ASSERT_GT_DBL(res->costs_s[k], 0);
      check_hostile_dump(&b, j.job.job_id, 1024);
    }
    /* The same runner, and nothing of the trial left running. */
    ASSERT_EQ_INT(kill(b.runner, 0), 0);
    ASSERT_EQ_INT(waitpid(b.runner, NULL, WNOHANG), 0);
    ASSERT_EQ_INT(measuring_of(b.runner, kids, 8), 0);
    wire_free(r);
    free(j.so);
  }
  ASSERT(!file_exists(escaped));
  ASSERT(!file_exists(ctor));
  task_free(&t);
  bench_stop(&b);
}

/* A kernel that spins on the clock for SPIN_US microseconds per call. */
static void spin_job(job_t *j, int spin_us) {
  char src[1024];
  snprintf(src, sizeof src,
           "struct timespec { long s, ns; };\n"
           "int clock_gettime(int, struct timespec *);\n"
           "static long now_ns(void) {\n"
           "  struct timespec t;\n"
           "  clock_gettime(1, &t);\n"
           "  return t.s * 1000000000L + t.ns;\n"
           "}\n"
           "void k(float *out) {\n"
           "  long end = now_ns() + %dL * 1000;\n"
           "  while (now_ns() < end) {}\n"
           "  out[0] += 1;\n"
           "}\n",
           spin_us);
  inline_job(j, src, 16);
}

/* The median time of one call of artifact's k(float *), in this process. */
static double time_in_process(const uint8_t *so, size_t len, int reps) {
  load_so l;
  char err[256];
  ASSERT_EQ_INT(load_open(&l, so, len, err, sizeof err), 0);
  void *fn;
  ASSERT_EQ_INT(load_sym(&l, "k", &fn, err, sizeof err), 0);
  float out[16] = {0};
  double t[32];
  ASSERT(reps <= 32);
  ((void (*)(float *))fn)(out);
  for (int i = 0; i < reps; i++) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    ((void (*)(float *))fn)(out);
    clock_gettime(CLOCK_MONOTONIC, &b);
    t[i] = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9;
  }
  load_close(&l);
  return median(t, (size_t)reps);
}

/* Preemption (other work on this machine) only lengthens calls; a few
 * attempts keep a busy moment from failing these checks. */
enum { TIMING_ATTEMPTS = 3 };

TEST(spinning_kernel_timed_within_ten_percent) {
  char *extra[] = {"--cpu", (char *)free_cpu(), NULL};
  bench b;
  bench_start(&b, extra);
  job_t j;
  spin_job(&j, 2000);
  j.tm.repeat = 9;
  int ok = 0;
  for (int attempt = 0; attempt < TIMING_ATTEMPTS && !ok; attempt++) {
    Ktune__Envelope *r = bench_trial(&b, &j.job, 30000);
    ASSERT_EQ_STR(wire_status_name(r->run_result->status), "ok");
    ASSERT_EQ_INT(r->run_result->n_costs_s, 9);
    ASSERT_EQ_INT(r->run_result->number, 1);
    ASSERT_EQ_STR(r->run_result->clock, "CLOCK_MONOTONIC");
    double m = median(r->run_result->costs_s, 9);
    /* What a call takes, measured here: the spin plus its clock reads. */
    double calibrated = time_in_process(j.so, j.len, 9);
    fprintf(stderr, "  2 ms spin: calibrated %.4f ms, runner median %.4f ms\n", calibrated * 1e3,
            m * 1e3);
    ok = fabs(m - calibrated) <= 0.1 * calibrated;
    wire_free(r);
  }
  if (!ok) TEST_FAIL("the runner's median was not within 10%% of the calibrated time");

  /* min_repeat_ms raises number by TVM's rule: one 1 ms call is short of
   * 20 ms, so number becomes 20 / (ms per call) + 1 = 20 or 21, and the
   * round that reaches 20 ms is the one kept. */
  free(j.so);
  spin_job(&j, 1000);
  j.tm.repeat = 5;
  j.tm.min_repeat_ms = 20;
  ok = 0;
  for (int attempt = 0; attempt < TIMING_ATTEMPTS && !ok; attempt++) {
    Ktune__Envelope *r = bench_trial(&b, &j.job, 30000);
    ASSERT_EQ_STR(wire_status_name(r->run_result->status), "ok");
    uint32_t number = r->run_result->number;
    double m = median(r->run_result->costs_s, r->run_result->n_costs_s);
    fprintf(stderr, "  1 ms spin, min_repeat_ms 20: number %u, median %.4f ms\n", number, m * 1e3);
    /* Whatever happened, every kept round lasted at least 20 ms. */
    for (size_t i = 0; i < r->run_result->n_costs_s; i++)
      ASSERT(r->run_result->costs_s[i] * number >= 0.0199);
    ok = number >= 20 && number <= 21 && fabs(m - 1e-3) <= 0.1 * 1e-3;
    wire_free(r);
  }
  if (!ok) TEST_FAIL("min_repeat_ms did not give number 20 or 21 with 1 ms calls");

  /* cooldown_ms pauses between rounds; flush_cache still measures. */
  j.tm.min_repeat_ms = 0;
  j.tm.repeat = 4;
  j.tm.cooldown_ms = 100;
  j.tm.flush_cache = 1;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  Ktune__Envelope *r = bench_trial(&b, &j.job, 30000);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  ASSERT_EQ_STR(wire_status_name(r->run_result->status), "ok");
  double wall = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
  ASSERT(wall >= 0.3);
  ASSERT_EQ_INT(r->run_result->n_costs_s, 4);
  wire_free(r);
  free(j.so);
  bench_stop(&b);
}

/* One trial of a template whose reference (wrongly) follows a knob: it
 * shows which reference the trial was compared with. */
typedef struct {
  int bias;
  const char *size, *ref_key, *status;
} ref_step;

static void run_ref_steps(const ref_step *steps, size_t n) {
  bench b;
  bench_start(&b, NULL);
  const char *fmt =
      "void k(float *out, const float *in) { for (int i = 0; i < 64; i++) out[i] = in[i] + %d; }\n"
      "void k_ref(float *out, const float *in) { for (int i = 0; i < 64; i++) out[i] = in[i] + %d; }\n";
  for (size_t i = 0; i < n; i++) {
    char src[512];
    snprintf(src, sizeof src, fmt, steps[i].bias, steps[i].bias);
    job_t j;
    inline_job(&j, src, 64);
    j.buf[1] = j.buf[0];
    j.buf[1].output = 0;
    j.bufp[1] = &j.buf[1];
    j.job.n_buffers = 2;
    j.job.reference = "k_ref";
    j.job.check = 1;
    j.job.task = "biased";
    j.job.size = (char *)steps[i].size;
    j.job.ref_key = (char *)(steps[i].ref_key ? steps[i].ref_key : "");
    Ktune__Envelope *r = bench_trial(&b, &j.job, 30000);
    if (strcmp(wire_status_name(r->run_result->status), steps[i].status) != 0)
      TEST_FAIL("step %zu: expected %s, got %s: %s", i, steps[i].status, wire_status_name(r->run_result->status),
                r->run_result->error);
    wire_free(r);
    free(j.so);
  }
  bench_stop(&b);
}

TEST(reference_computed_once_per_task_and_size) {
  /* Without a ref_key (an older tracker) the task and size key it. */
  const ref_step steps[] = {
      {0, "{\"N\":64}", NULL, "ok"},           /* computes and caches the reference */
      {1, "{\"N\":64}", NULL, "WRONG_ANSWER"}, /* compared with the cached one */
      {1, "{\"N\":64,\"x\":1}", NULL, "ok"},   /* another size: its own reference */
      {0, "{\"N\":64,\"x\":1}", NULL, "WRONG_ANSWER"},
      {0, "{\"N\":64}", NULL, "ok"},
  };
  run_ref_steps(steps, sizeof steps / sizeof steps[0]);
}

TEST(reference_cached_by_ref_key) {
  /* Same task and size throughout: the tracker's digest alone tells the
   * references apart, so a session whose reference differs does not
   * inherit (or poison) another's. */
  const ref_step steps[] = {
      {0, "{\"N\":64}", "digest-a", "ok"},           /* computes and caches a */
      {1, "{\"N\":64}", "digest-b", "ok"},           /* not a's: its own reference */
      {1, "{\"N\":64}", "digest-a", "WRONG_ANSWER"}, /* a's, cached */
      {0, "{\"N\":64}", "digest-b", "WRONG_ANSWER"}, /* b's, cached */
      {0, "{\"N\":64}", NULL, "ok"},                 /* no digest: none of those */
  };
  run_ref_steps(steps, sizeof steps / sizeof steps[0]);
}

/* A job of about a second: warm-up and three rounds of 250 ms. */
static void slow_job(job_t *j) {
  spin_job(j, 250000);
  j->tm.repeat = 3;
}

TEST(busy_runner_refuses_a_second_job) {
  bench b;
  bench_start(&b, NULL);
  job_t j;
  slow_job(&j);
  bench_send(&b, &j.job);
  uint64_t first = j.job.job_id;
  bench_send(&b, &j.job);
  Ktune__Envelope *r = bench_result_of(&b, j.job.job_id, 10000);
  ASSERT_EQ_STR(wire_status_name(r->run_result->status), "REFUSED");
  ASSERT_CONTAINS(r->run_result->error, "runner is busy with job 1: one measurement at a time");
  ASSERT_EQ_INT(r->run_result->n_costs_s, 0);
  wire_free(r);
  /* The first is measured all the same. */
  r = bench_result_of(&b, first, 30000);
  ASSERT_EQ_STR(wire_status_name(r->run_result->status), "ok");
  ASSERT_EQ_INT(r->run_result->n_costs_s, 3);
  wire_free(r);
  free(j.so);
  bench_stop(&b);
}

/* Drops the connection as a tracker that went away would. */
static void bench_drop(bench *b) {
  close(b->fd);
  b->fd = -1;
}

TEST(job_outlives_a_lost_connection) {
  bench b;
  bench_start(&b, NULL);
  ASSERT_EQ_U64(b.hello->hello->holding, 0);
  job_t j;
  slow_job(&j);

  /* Back at once: the new connection is told of the job, and its result
   * comes there when the child is done. */
  bench_send(&b, &j.job);
  pid_t kid = bench_child(&b);
  bench_drop(&b);
  bench_accept(&b);
  ASSERT_EQ_U64(b.hello->hello->holding, j.job.job_id);
  ASSERT(running(kid));
  Ktune__Envelope *r = bench_result_of(&b, j.job.job_id, 30000);
  ASSERT_EQ_STR(wire_status_name(r->run_result->status), "ok");
  ASSERT_EQ_INT(r->run_result->n_costs_s, 3);
  wire_free(r);

  /* Away until the child is done: the result is kept, and it is the
   * first thing after the next Welcome. */
  bench_send(&b, &j.job);
  kid = bench_child(&b);
  bench_drop(&b);
  for (int i = 0; i < 3000 && measuring_of(b.runner, &kid, 1) > 0; i++) proc_sleep_ms(10);
  ASSERT_EQ_INT(measuring_of(b.runner, &kid, 1), 0);
  for (int i = 0; i < 500 && !bench_log_contains(&b, "its result waits"); i++) proc_sleep_ms(10);
  ASSERT(bench_log_contains(&b, "its result waits for the next connection"));
  bench_accept(&b);
  ASSERT_EQ_U64(b.hello->hello->holding, j.job.job_id);
  r = bench_result_of(&b, j.job.job_id, 10000);
  ASSERT_EQ_STR(wire_status_name(r->run_result->status), "ok");
  ASSERT_EQ_INT(r->run_result->n_costs_s, 3);
  wire_free(r);

  /* Delivered: the runner holds nothing any more. */
  bench_drop(&b);
  bench_accept(&b);
  ASSERT_EQ_U64(b.hello->hello->holding, 0);
  /* And serves as before. */
  free(j.so);
  spin_job(&j, 100);
  r = bench_trial(&b, &j.job, 30000);
  ASSERT_EQ_STR(wire_status_name(r->run_result->status), "ok");
  wire_free(r);
  free(j.so);
  bench_stop(&b);
}

TEST(test_faults) {
  job_t j;
  spin_job(&j, 100);
  j.tm.repeat = 4;
  j.tm.number = 7;
  bench b;

  char *fail[] = {"--test-fault", "fail", "--test-fault", "arch=nowhere-arch", NULL};
  bench_start(&b, fail);
  ASSERT_EQ_STR(b.hello->hello->arch, "nowhere-arch");
  Ktune__Envelope *r = bench_trial(&b, &j.job, 10000);
  ASSERT_EQ_STR(wire_status_name(r->run_result->status), "RUNTIME_ERROR");
  ASSERT_EQ_STR(r->run_result->error, "test fault");
  ASSERT_EQ_INT(measuring_of(b.runner, NULL, 0), 0);
  wire_free(r);
  bench_stop(&b);

  char *tiny[] = {"--test-fault", "tiny-cost", NULL};
  bench_start(&b, tiny);
  r = bench_trial(&b, &j.job, 10000);
  ASSERT_EQ_STR(wire_status_name(r->run_result->status), "ok");
  ASSERT_EQ_INT(r->run_result->n_costs_s, 4);
  for (size_t i = 0; i < r->run_result->n_costs_s; i++) ASSERT(r->run_result->costs_s[i] == 1e-30);
  ASSERT_EQ_INT(r->run_result->number, 7);
  ASSERT_EQ_STR(r->run_result->clock, "monotonic");
  wire_free(r);
  bench_stop(&b);

  char *huge[] = {"--test-fault", "huge-error", NULL};
  bench_start(&b, huge);
  r = bench_trial(&b, &j.job, 10000);
  ASSERT_EQ_STR(wire_status_name(r->run_result->status), "RUNTIME_ERROR");
  const unsigned char *text = (const unsigned char *)r->run_result->error;
  size_t len = strlen(r->run_result->error);
  ASSERT_EQ_INT(len, 12 * 1024 * 1024);
  for (size_t i = 0; i < len; i++)
    if (text[i] < 0x01 || text[i] > 0x1f)
      TEST_FAIL("error[%zu] = 0x%02x, not a control byte", i, text[i]);
  wire_free(r);
  bench_stop(&b);

  /* Silent: no answer, but the heartbeats go on (bench_result skips them
   * and fails on anything else). */
  char *silent[] = {"--test-fault", "silent", NULL};
  bench_start(&b, silent);
  bench_send(&b, &j.job);
  ASSERT_NULL(bench_result(&b, 2500));
  ASSERT(bench_log_contains(&b, "for ktune's own tests"));
  bench_stop(&b);

  char out[4096];
  char *bad[] = {(char *)proc_bin("runner/ktune-runner"), "--tracker", "127.0.0.1:1", "--key",
                 "test", "--test-fault", "sometimes", NULL};
  ASSERT_EQ_INT(proc_run(bad, out, sizeof out, 10000), 2);
  ASSERT_CONTAINS(out, "--test-fault");
  free(j.so);
}

TEST(hello_reports_the_device) {
  bench b;
  bench_start(&b, NULL);
  const Ktune__Hello *h = b.hello->hello;
  struct utsname u;
  uname(&u);
  ASSERT_EQ_INT(h->role, KTUNE__ROLE__ROLE_RUNNER);
  ASSERT_EQ_STR(h->key, "test");
  ASSERT(h->cpu_model && h->cpu_model[0]);
  ASSERT(h->cores >= 1);
  ASSERT_EQ_STR(h->arch, u.machine);
  ASSERT_EQ_STR(h->kernel, u.release);
  ASSERT(h->governor && h->governor[0]);
  ASSERT_EQ_STR(h->ktune_version, KTUNE_VERSION);
  int steady = strcmp(h->governor, "performance") == 0;
  bench_stop(&b);
  /* Not "performance" (or unreadable): the log says timings may drift. */
  if (!steady) ASSERT(bench_log_contains(&b, "timings may drift"));
}

TEST(one_runner_per_core) {
  char *extra[] = {"--cpu", (char *)free_cpu(), NULL};
  bench b;
  bench_start(&b, extra);
  char out[4096];
  char *second[] = {(char *)proc_bin("runner/ktune-runner"), "--tracker", b.addr, "--key", "test",
                    "--cpu", extra[1], NULL};
  ASSERT_EQ_INT(proc_run(second, out, sizeof out, 10000), 2);
  ASSERT_CONTAINS(out, "another runner on this host measures on that core");
  char *bad[] = {(char *)proc_bin("runner/ktune-runner"), "--tracker", b.addr, "--key", "test",
                 "--cpu", "100000", NULL};
  ASSERT_EQ_INT(proc_run(bad, out, sizeof out, 10000), 2);
  ASSERT_CONTAINS(out, "--cpu");
  bench_stop(&b);
  /* Released when the first one ends. */
  bench_start(&b, extra);
  bench_stop(&b);
}

TEST(stopping_or_killing_the_runner_leaves_nothing_running) {
  char *extra[] = {"--cpu", (char *)free_cpu(), NULL};
  for (int how = 0; how < 2; how++) {
    bench b;
    bench_start(&b, extra);
    job_t j;
    inline_job(&j, "void k(float *out) { volatile int x = 0; for (;;) x++; }", 16);
    j.tm.timeout_ms = 600000;
    bench_send(&b, &j.job);
    pid_t kid = bench_child(&b);
    proc_sleep_ms(100); /* spinning in the kernel by now */
    if (how == 0) {
      /* The first SIGTERM drains: the job under way goes on. */
      kill(b.runner, SIGTERM);
      proc_sleep_ms(300);
      ASSERT(running(kid));
      bench_stop(&b); /* the second: the runner kills and reaps its child */
    } else {
      kill(b.runner, SIGKILL); /* the child dies with it (PR_SET_PDEATHSIG) */
      waitpid(b.runner, NULL, 0);
      close(b.fd);
      close(b.lfd);
      wire_free(b.hello);
    }
    for (int i = 0; i < 500 && running(kid); i++) proc_sleep_ms(10);
    ASSERT(!running(kid));
    free(j.so);
  }
}

/* Waits up to 5 s for pid to be gone (or a zombie). */
static void wait_gone(pid_t pid) {
  for (int i = 0; i < 500 && running(pid); i++) proc_sleep_ms(10);
  ASSERT(!running(pid));
}

/* The trial in flight when the fork server failed is the runner's fault
 * (the tracker measures it again), nothing of it runs on, and a new
 * server measures the next ones. */
static void expect_server_fault(bench *b, uint64_t job_id, pid_t server, pid_t kid,
                                const char *needle) {
  Ktune__Envelope *r = bench_result_of(b, job_id, 15000);
  if (strcmp(wire_status_name(r->run_result->status), "RUNNER_ERROR") != 0 ||
      !strstr(r->run_result->error, needle)) {
    bench_print_log(b);
    TEST_FAIL("expected RUNNER_ERROR with \"%s\", got %s: %s", needle,
              wire_status_name(r->run_result->status), r->run_result->error);
  }
  ASSERT_CONTAINS(r->run_result->error, "the runner starts a new one");
  ASSERT_EQ_INT(r->run_result->n_costs_s, 0);
  wire_free(r);
  wait_gone(kid);
  wait_gone(server);
  ASSERT(bench_log_contains(b, "in flight is a runner error"));
  ASSERT(fork_server_of(b->runner) != server);
  job_t j;
  spin_job(&j, 100);
  r = bench_trial(b, &j.job, 30000);
  ASSERT_EQ_STR(wire_status_name(r->run_result->status), "ok");
  ASSERT_EQ_INT(r->run_result->n_costs_s, 3);
  wire_free(r);
  free(j.so);
}

TEST(a_dead_fork_server_costs_only_the_trial_in_flight) {
  bench b;
  bench_start(&b, NULL);
  job_t j;
  slow_job(&j);
  pid_t server = fork_server_of(b.runner);
  bench_send(&b, &j.job);
  pid_t kid = bench_child(&b);
  ASSERT_EQ_INT(kill(server, SIGKILL), 0);
  expect_server_fault(&b, j.job.job_id, server, kid, "was killed by SIGKILL during the trial");
  /* Killed between trials: nothing is lost, the next trial is measured. */
  server = fork_server_of(b.runner);
  ASSERT_EQ_INT(kill(server, SIGKILL), 0);
  wait_gone(server);
  Ktune__Envelope *r = bench_trial(&b, &j.job, 30000);
  ASSERT_EQ_STR(wire_status_name(r->run_result->status), "ok");
  wire_free(r);
  ASSERT(fork_server_of(b.runner) != server);
  free(j.so);
  bench_stop(&b);
}

TEST(a_stuck_fork_server_is_replaced) {
  bench b;
  bench_start(&b, NULL);
  job_t j;
  inline_job(&j, "void k(float *out) { volatile int x = 0; for (;;) x++; }", 16);
  j.tm.timeout_ms = 300;
  pid_t server = fork_server_of(b.runner);
  bench_send(&b, &j.job);
  pid_t kid = bench_child(&b);
  /* It can no longer kill the hanging kernel at the deadline. */
  ASSERT_EQ_INT(kill(server, SIGSTOP), 0);
  expect_server_fault(&b, j.job.job_id, server, kid,
                      "did not end the measuring process within 3000 ms of being asked");
  free(j.so);
  bench_stop(&b);
}

/* 1 when needle is anywhere in pid's readable memory. */
static int memory_holds(pid_t pid, const char *needle) {
  char path[64], line[512];
  snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
  FILE *maps = fopen(path, "r");
  ASSERT_NOT_NULL(maps);
  snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
  int mem = open(path, O_RDONLY | O_CLOEXEC);
  ASSERT(mem >= 0);
  size_t nl = strlen(needle), chunk = 1 << 20;
  char *buf = malloc(chunk + nl);
  ASSERT_NOT_NULL(buf);
  int found = 0;
  while (!found && fgets(line, sizeof line, maps)) {
    unsigned long lo, hi;
    char perms[8];
    /* Beyond 1 GiB: a sanitizer's shadow, terabytes that hold no copy. */
    if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 || perms[0] != 'r' ||
        hi - lo > (1ul << 30))
      continue;
    /* Overlapping reads, so that no copy straddles two. */
    for (unsigned long at = lo; at < hi && !found; at += chunk) {
      size_t want = hi - at < chunk + nl ? hi - at : chunk + nl;
      ssize_t got = pread(mem, buf, want, (off_t)at);
      if (got <= 0) break; /* [vvar] and the like do not read */
      found = memmem(buf, (size_t)got, needle, nl) != NULL;
    }
  }
  free(buf);
  close(mem);
  fclose(maps);
  return found;
}

TEST(the_token_never_reaches_the_fork_server) {
  char token[96], text[8192];
  snprintf(token, sizeof token, "fork-server-test-token-%d-%ld", (int)getpid(), (long)time(NULL));
  ASSERT_EQ_INT(setenv("KTUNE_TOKEN", token, 1), 0);
  bench b;
  bench_start(&b, NULL); /* this tracker cannot prove it holds the token: no job comes */
  pid_t server = fork_server_of(b.runner);
  /* The scan finds the token where it is: the runner keeps it to log in. */
  ASSERT(memory_holds(b.runner, token));
  ASSERT(!memory_holds(server, token));
  const char *files[] = {"environ", "cmdline"};
  for (size_t i = 0; i < 2; i++) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)server, files[i]);
    FILE *f = fopen(path, "r");
    ASSERT_NOT_NULL(f);
    size_t n = fread(text, 1, sizeof text, f);
    fclose(f);
    ASSERT(memmem(text, n, token, strlen(token)) == NULL);
    ASSERT(memmem(text, n, "KTUNE_TOKEN", 11) == NULL);
  }
  proc_stop(b.runner, SIGTERM, 10000);
  close(b.fd);
  close(b.lfd);
  wire_free(b.hello);
}

/* ---- through a real tracker, builder and ktune tune ---- */

TEST(hostile_task_through_ktune_tune) {
  farm f;
  farm_start(&f, NULL);
  char *rargv[] = {(char *)proc_bin("runner/ktune-runner"), "--tracker", f.addr, "--key", "hostile",
                   "--name", "hostile-runner", "--cpu", (char *)free_cpu(), "--mem-limit-mb", "256",
                   NULL};
  pid_t runner = start_runner(rargv, f.log);
  pid_t builder = farm_builder(&f, "hostile-builder");
  farm_wait_agent(&f, "hostile-runner", 1);
  farm_wait_agent(&f, "hostile-builder", 1);
  long tag = (long)getpid() + 1000000;
  char escaped[128], ctor[140], dtag[64], spec[4096];
  snprintf(escaped, sizeof escaped, "/tmp/ktune-hostile-%ld", tag);
  snprintf(ctor, sizeof ctor, "%s-ctor", escaped);
  unlink(escaped);
  unlink(ctor);
  snprintf(dtag, sizeof dtag, "TAG=%ld", tag);
  char dhuge[64];
  snprintf(dhuge, sizeof dhuge, "HUGE_MB=%lld", (long long)huge_mb());
  snprintf(spec, sizeof spec, "%s/tests/tasks/hostile.json", src_dir());
  static char out[1 << 16];
  char *args[] = {"tune", spec, "-D", dtag, "-D", dhuge, "--key", "hostile",
                  "--strategy", "grid", "--trials", "11", "--timeout", "1500", NULL};
  int rc = farm_ktune(&f, out, sizeof out, 120000, args);
  if (rc != 0) {
    farm_print_log(&f);
    TEST_FAIL("ktune tune exited %d:\n%s", rc, out);
  }
  sqlite3 *db = farm_db(&f);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM trials WHERE task = 'hostile'"), 11);
  for (size_t i = 0; i < sizeof hostile_expect / sizeof hostile_expect[0]; i++) {
    const expectation *e = expect_for(hostile_expect[i].mode);
    sqlite3_stmt *st;
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT status, coalesce(error, ''), runner FROM trials WHERE task = 'hostile' "
             "AND json_extract(config, '$.MODE') = %d", e->mode);
    ASSERT_EQ_INT(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) != SQLITE_ROW) TEST_FAIL("no trial for MODE=%d", e->mode);
    const char *status = (const char *)sqlite3_column_text(st, 0);
    const char *error = (const char *)sqlite3_column_text(st, 1);
    if (strcmp(status, e->status) != 0 || (e->needle && !strstr(error, e->needle)))
      TEST_FAIL("MODE=%d: expected %s with \"%s\", got %s: %s", e->mode, e->status,
                e->needle ? e->needle : "", status, error);
    ASSERT_EQ_STR((const char *)sqlite3_column_text(st, 2), "hostile-runner");
    sqlite3_finalize(st);
  }
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM trials WHERE task = 'hostile' AND status = 'ok' "
                               "AND mean_s > 0 AND json_extract(config, '$.MODE') = 0"), 1);
  sqlite3_close(db);
  ASSERT(!file_exists(escaped));
  ASSERT(!file_exists(ctor));
  /* The same runner served all eleven and is still here. */
  ASSERT_EQ_INT(waitpid(runner, NULL, WNOHANG), 0);
  pid_t kids[4];
  ASSERT_EQ_INT(measuring_of(runner, kids, 4), 0);
  json_t *stj = farm_status(&f);
  ASSERT_NOT_NULL(farm_agent(stj, "hostile-runner"));
  json_decref(stj);
  proc_stop(runner, SIGTERM, 5000);
  proc_stop(builder, SIGTERM, 5000);
  farm_stop_tracker(&f);
}

TEST_LIST(TEST_ENTRY(hostile_trials_leave_the_runner_serving),
          TEST_ENTRY(spinning_kernel_timed_within_ten_percent),
          TEST_ENTRY(reference_computed_once_per_task_and_size),
          TEST_ENTRY(reference_cached_by_ref_key), TEST_ENTRY(busy_runner_refuses_a_second_job),
          TEST_ENTRY(job_outlives_a_lost_connection), TEST_ENTRY(test_faults),
          TEST_ENTRY(hello_reports_the_device),
          TEST_ENTRY(one_runner_per_core),
          TEST_ENTRY(stopping_or_killing_the_runner_leaves_nothing_running),
          TEST_ENTRY(a_dead_fork_server_costs_only_the_trial_in_flight),
          TEST_ENTRY(a_stuck_fork_server_is_replaced),
          TEST_ENTRY(the_token_never_reaches_the_fork_server),
          TEST_ENTRY(hostile_task_through_ktune_tune))
