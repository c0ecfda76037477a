/* The runner's measuring side: TVM timing rules, the seccomp sandbox (in
 * forked children, as the runner uses it), the memory limit, the
 * reference cache image and device identity. The whole runner agent is
 * exercised by tests/integration/test_runner.c. */
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>

#include "builder/tcc.h"
#include "common/frame.h"
#include "common/wire.h"
#include "runner/device.h"
#include "runner/load.h"
#include "runner/measure.h"
#include "runner/refcache.h"
#include "runner/sandbox.h"
#include "runner/timing.h"
#include "tests/test.h"

enum { NELEM = 256 };

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void build_src(const char *src, uint8_t **so, size_t *len) {
  char diag[2048];
  int rc = tcc_build_so(src, so, len, diag, sizeof diag);
  if (rc != 0) TEST_FAIL("tcc_build_so: %d: %s\n%s", rc, diag, src);
}

/* A kernel k(out, in) computing out = 2 * in + BIAS after running `body`,
 * and its reference k_ref (after `ref_body`). */
static void build_kernel(const char *body, const char *ref_body, int bias, uint8_t **so,
                         size_t *len) {
  char src[8192];
  snprintf(src, sizeof src,
           "typedef unsigned long size_t;\n"
           "int open(const char *, int, ...); int fork(void); int socket(int, int, int);\n"
           "int execve(const char *, char *const *, char *const *);\n"
           "long write(int, const void *, size_t); void abort(void); int kill(int, int);\n"
           "void *malloc(size_t); void free(void *);\n"
           "struct timespec { long s, ns; }; int clock_gettime(int, struct timespec *);\n"
           "int nanosleep(const struct timespec *, struct timespec *);\n"
           "static int rec(int n) { volatile char b[4096]; b[0] = (char)n; return rec(n + 1) + b[0]; }\n"
           "void k(float *out, const float *in) {\n  %s\n"
           "  for (int i = 0; i < %d; i++) out[i] = 2.0f * in[i] + %d;\n}\n"
           "void k_ref(float *out, const float *in) {\n  %s\n"
           "  for (int i = 0; i < %d; i++) out[i] = 2.0f * in[i] + %d;\n}\n",
           body, NELEM, bias, ref_body, NELEM, bias);
  build_src(src, so, len);
}

typedef struct {
  Ktune__RunJob job;
  Ktune__Timing tm;
  Ktune__Buffer buf[2];
  Ktune__Buffer *bufp[2];
} kjob;

static void kjob_init(kjob *j, uint8_t *so, size_t len) {
  ktune__run_job__init(&j->job);
  ktune__timing__init(&j->tm);
  j->job.timing = &j->tm;
  for (int i = 0; i < 2; i++) {
    ktune__buffer__init(&j->buf[i]);
    j->buf[i].type = "float";
    j->buf[i].count = NELEM;
    j->buf[i].output = i == 0;
    j->bufp[i] = &j->buf[i];
  }
  j->buf[0].name = "out";
  j->job.job_id = 9;
  j->job.artifact.data = so;
  j->job.artifact.len = len;
  j->job.entry = "k";
  j->job.reference = "k_ref";
  j->job.buffers = j->bufp;
  j->job.n_buffers = 2;
  j->job.seed = 1;
  j->tm.number = 1;
  j->tm.repeat = 2;
  j->job.check = 1;
  j->job.task = "unit";
  j->job.size = "{\"N\":256}";
}

/* Runs the job the way the runner does (measure_child_main in its own
 * sandboxed process) and returns what it said, or NULL. */
static Ktune__Envelope *run_sandboxed(const Ktune__RunJob *job, const measure_opts *base,
                                      int *wstatus) {
  int in[2], out[2];
  ASSERT_EQ_INT(pipe(in), 0);
  ASSERT_EQ_INT(pipe(out), 0);
  fflush(NULL);
  pid_t pid = fork();
  ASSERT(pid >= 0);
  if (pid == 0) {
    close(in[1]);
    close(out[0]);
    measure_opts mo = base ? *base : (measure_opts)MEASURE_OPTS_INIT;
    mo.sandbox = 1;
    _exit(measure_child_main(in[0], out[1], &mo));
  }
  close(in[0]);
  close(out[1]);
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_RUN_JOB;
  env.run_job = (Ktune__RunJob *)job;
  ASSERT_EQ_INT(wire_write_fd(in[1], &env), 0);
  close(in[1]);
  struct pollfd p = {out[0], POLLIN, 0};
  Ktune__Envelope *r = NULL;
  if (poll(&p, 1, 30000) == 1) r = wire_read_fd(out[0], FRAME_MAX_DEFAULT);
  else kill(pid, SIGKILL);
  close(out[0]);
  int st;
  ASSERT_EQ_INT(waitpid(pid, &st, 0), pid);
  if (wstatus) *wstatus = st;
  return r;
}

/* The status and error of a sandboxed run, which must have sent a result. */
static Ktune__Envelope *expect_result(const Ktune__RunJob *job, const measure_opts *o,
                                      const char *status, const char *needle) {
  int st;
  Ktune__Envelope *r = run_sandboxed(job, o, &st);
  if (!r) TEST_FAIL("no result (wait status %d)", st);
  ASSERT_EQ_INT(r->msg_case, KTUNE__ENVELOPE__MSG_RUN_RESULT);
  ASSERT_EQ_U64(r->run_result->job_id, job->job_id);
  if (strcmp(wire_status_name(r->run_result->status), status) != 0 ||
      (needle && !strstr(r->run_result->error, needle)))
    TEST_FAIL("expected %s with \"%s\", got %s: %s", status, needle ? needle : "",
              wire_status_name(r->run_result->status), r->run_result->error);
  return r;
}

static int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

TEST(timing_next_number_follows_tvm) {
  /* Enough calls to fill min_repeat_ms at the measured speed, plus one. */
  ASSERT_EQ_INT(timing_next_number(1, 0.001, 20), 21);
  ASSERT_EQ_INT(timing_next_number(10, 0.005, 100), 201);
  /* At least the golden ratio more. */
  ASSERT_EQ_INT(timing_next_number(100, 0.0099, 10), 161);
  /* Always grows, even from nothing measured. */
  ASSERT_EQ_INT(timing_next_number(1, 0, 10), 2);
  ASSERT_EQ_INT(timing_next_number(0, 0, 10), 2);
  ASSERT_EQ_U64(timing_next_number(1u << 29, 1e-9, 100000), TIMING_MAX_GROWN_NUMBER);
}

typedef struct {
  double spin_s;
  uint32_t calls;
} spin_ctx;

static void spin(void *p) {
  spin_ctx *c = p;
  c->calls++;
  double end = now_s() + c->spin_s;
  while (now_s() < end) {
  }
}

TEST(timing_run_grows_number_cools_and_flushes) {
  spin_ctx c = {200e-6, 0};
  uint8_t flush[4096] = {0};
  timing_opts o = {1, 3, 10, 30, flush, sizeof flush};
  double costs[3];
  uint32_t number = 0;
  double t0 = now_s();
  ASSERT_EQ_INT(timing_run(&o, spin, &c, costs, &number), 0);
  double wall = now_s() - t0;
  /* 10 ms of 0.2 ms calls: 1 call, then 10/0.2 + 1 = 51; a preempted
   * first round gives fewer, and 1.618 times those at most 83. Speed is
   * for scripts/bench: here only what the rule guarantees. */
  ASSERT(number >= 2 && number <= 90);
  for (int r = 0; r < 3; r++) {
    ASSERT(costs[r] >= 199e-6);
    ASSERT(costs[r] * number >= 0.0099);
  }
  /* Two pauses of 30 ms between three rounds of >= 10 ms. */
  ASSERT(wall >= 0.060 + 0.030);
  /* Each round started by writing every line of the flush buffer. */
  ASSERT_EQ_INT(flush[0], 3);
  ASSERT_EQ_INT(flush[4032], 3);
  /* Without min_repeat_ms number stays as given. */
  timing_opts plain = {7, 2, 0, 0, NULL, 0};
  c.calls = 0;
  ASSERT_EQ_INT(timing_run(&plain, spin, &c, costs, &number), 0);
  ASSERT_EQ_INT(number, 7);
  ASSERT_EQ_INT(c.calls, 14);
  ASSERT(timing_flush_bytes(0) >= (8u << 20));
}

/* The sandbox's two ways to its filters: compiled in the measuring
 * process itself, or filled in from filters compiled ahead, as a fork
 * server's children do. Every sandbox case runs both ways. */
#define WAYS 2
static const measure_opts *way_opts(int way, measure_opts *o) {
  static sandbox_filters *ahead;
  *o = (measure_opts)MEASURE_OPTS_INIT;
  if (way == 0) return o;
  char err[256];
  if (!ahead && sandbox_filters_new(&ahead, err, sizeof err) < 0)
    TEST_FAIL("filters compiled ahead: %s", err);
  o->filters = ahead;
  return o;
}

TEST(sandboxed_child_measures) {
  uint8_t *so;
  size_t len;
  build_kernel("", "", 0, &so, &len);
  kjob j;
  kjob_init(&j, so, len);
  j.tm.repeat = 5;
  j.tm.number = 3;
  Ktune__Envelope *r = expect_result(&j.job, NULL, "ok", NULL);
  ASSERT_EQ_INT(r->run_result->n_costs_s, 5);
  ASSERT_EQ_INT(r->run_result->number, 3);
  ASSERT_EQ_STR(r->run_result->clock, "CLOCK_MONOTONIC");
  wire_free(r);
  free(so);
}

TEST(sandbox_allows_what_kernels_need) {
  /* Scratch memory (brk and mmap sizes), the clock, a short sleep. */
  uint8_t *so;
  size_t len;
  build_kernel("char *small = malloc(100); char *big = malloc(32u << 20);\n"
               "  for (size_t i = 0; i < (32u << 20); i += 4096) big[i] = 1;\n"
               "  struct timespec now, t = {0, 1000}; clock_gettime(1, &now); nanosleep(&t, 0);\n"
               "  free(big); free(small);",
               "", 0, &so, &len);
  kjob j;
  kjob_init(&j, so, len);
  for (int way = 0; way < WAYS; way++) {
    measure_opts o;
    wire_free(expect_result(&j.job, way_opts(way, &o), "ok", NULL));
  }
  free(so);
}

/* The dump file is the one fd besides the result the running filter lets
 * the process write to: its number differs from trial to trial. */
TEST(sandbox_writes_the_dump) {
  char dir[] = "/tmp/ktune-test-XXXXXX";
  ASSERT_NOT_NULL(mkdtemp(dir));
  uint8_t *so;
  size_t len;
  build_kernel("", "", 0, &so, &len);
  kjob j;
  kjob_init(&j, so, len);
  for (int way = 0; way < WAYS; way++) {
    measure_opts o;
    way_opts(way, &o);
    o.dump_dir = dir;
    j.job.job_id = 40 + (uint64_t)way;
    wire_free(expect_result(&j.job, &o, "ok", NULL));
    char path[128];
    snprintf(path, sizeof path, "%s/job-%d.out", dir, 40 + way);
    struct stat sb;
    ASSERT_EQ_INT(stat(path, &sb), 0);
    ASSERT_EQ_INT((int)sb.st_size, NELEM * (int)sizeof(float));
    unlink(path);
  }
  free(so);
  rmdir(dir);
}

TEST(sandbox_names_forbidden_calls) {
  char dir[] = "/tmp/ktune-test-XXXXXX";
  ASSERT_NOT_NULL(mkdtemp(dir));
  char created[128], open_body[256];
  snprintf(created, sizeof created, "%s/escaped", dir);
  snprintf(open_body, sizeof open_body, "open(\"%s\", 0101, 0644);", created);
  const struct {
    const char *body, *want;
  } cases[] = {
      {open_body, "forbidden system call: openat"},
      {"fork();", "forbidden system call: clone"},
      {"socket(2, 1, 0);", "forbidden system call: socket"},
      {"char *a[] = {\"/bin/true\", 0}; execve(\"/bin/true\", a, 0);", "forbidden system call: execve"},
      {"write(2, \"x\", 1);", "forbidden system call: write"},
      {"kill(1, 0);", "forbidden system call: kill"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint8_t *so;
    size_t len;
    build_kernel(cases[i].body, "", 0, &so, &len);
    kjob j;
    kjob_init(&j, so, len);
    for (int way = 0; way < WAYS; way++) {
      measure_opts o;
      Ktune__Envelope *r = expect_result(&j.job, way_opts(way, &o), "RUNTIME_ERROR", cases[i].want);
      ASSERT_CONTAINS(r->run_result->error, "sandbox: the kernel made");
      wire_free(r);
    }
    free(so);
  }
  ASSERT(!exists(created));
  rmdir(dir);
}

TEST(crashes_are_named) {
  const struct {
    const char *body, *want;
  } cases[] = {
      {"*(volatile int *)16 = 1;",
       "kernel crashed: SIGSEGV (Segmentation fault: address not mapped) at address 0x10"},
      {"volatile int z = 0; out[0] = 1 / z;",
       "kernel crashed: SIGFPE (Floating point exception: integer divide by zero)"},
      {"abort();", "kernel crashed: SIGABRT (Aborted)"},
      {"__asm__(\"ud2\");", "kernel crashed: SIGILL"},
      {"out[0] = rec(0);", "kernel crashed: SIGSEGV"}, /* stack overflow: needs the alternate stack */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint8_t *so;
    size_t len;
    build_kernel(cases[i].body, "", 0, &so, &len);
    kjob j;
    kjob_init(&j, so, len);
    for (int way = 0; way < WAYS; way++) {
      measure_opts o;
      wire_free(expect_result(&j.job, way_opts(way, &o), "RUNTIME_ERROR", cases[i].want));
    }
    free(so);
  }
}

TEST(loader_runs_inside_the_sandbox) {
  if (!sandbox_loader_inside()) return;
  char dir[] = "/tmp/ktune-test-XXXXXX";
  ASSERT_NOT_NULL(mkdtemp(dir));
  char created[128], src[1024];
  snprintf(created, sizeof created, "%s/ctor", dir);
  /* A constructor runs at dlopen: its open is refused, the kernel is fine. */
  snprintf(src, sizeof src,
           "int open(const char *, int, ...);\n"
           "__attribute__((constructor)) static void init(void) { open(\"%s\", 0101, 0644); }\n"
           "void k(float *out, const float *in) { for (int i = 0; i < %d; i++) out[i] = in[i]; }\n",
           created, NELEM);
  uint8_t *so;
  size_t len;
  build_src(src, &so, &len);
  kjob j;
  kjob_init(&j, so, len);
  j.job.check = 0;
  measure_opts o;
  for (int way = 0; way < WAYS; way++)
    wire_free(expect_result(&j.job, way_opts(way, &o), "ok", NULL));
  ASSERT(!exists(created));
  free(so);
  /* One that forks is stopped and named for what it is. */
  build_src("int fork(void);\n"
            "__attribute__((constructor)) static void init(void) { fork(); }\n"
            "void k(float *out, const float *in) { out[0] = in[0]; }\n",
            &so, &len);
  kjob_init(&j, so, len);
  j.job.check = 0;
  for (int way = 0; way < WAYS; way++)
    wire_free(expect_result(&j.job, way_opts(way, &o), "RUNTIME_ERROR",
                            "sandbox: the artifact's initialisation code (run by dlopen) made a "
                            "forbidden system call: clone"));
  free(so);
  rmdir(dir);
}

TEST(sandboxed_load_errors) {
  uint8_t junk[4096];
  for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(i * 131 + 7);
  kjob j;
  kjob_init(&j, junk, sizeof junk);
  wire_free(expect_result(&j.job, NULL, "LOAD_ERROR", "cannot load artifact"));
  uint8_t *so;
  size_t len;
  build_src("void other(float *out, const float *in) { out[0] = in[0]; }", &so, &len);
  kjob_init(&j, so, len);
  wire_free(expect_result(&j.job, NULL, "LOAD_ERROR", "function k not found"));
  free(so);
}

/* The external-compiler path: gcc's shared objects need libc (loaded) and
 * run initialisers of their own (frame_dummy); a library the runner has
 * not loaded cannot be opened from the sandbox. */
TEST(gcc_artifacts_load_in_the_sandbox) {
  if (system("gcc --version >/dev/null 2>&1") != 0) {
    fprintf(stderr, "  (no gcc: skipped)\n");
    return;
  }
  char dir[] = "/tmp/ktune-test-XXXXXX";
  ASSERT_NOT_NULL(mkdtemp(dir));
  const char *variants[][2] = {
      {"", "ok"},
      {"-lz", "LOAD_ERROR"}, /* DT_NEEDED libz: not in the runner, cannot be opened */
  };
  for (size_t v = 0; v < 2; v++) {
    char cmd[1024], c[300], o[300];
    snprintf(c, sizeof c, "%s/k.c", dir);
    snprintf(o, sizeof o, "%s/k.so", dir);
    FILE *f = fopen(c, "w");
    ASSERT_NOT_NULL(f);
    fprintf(f,
            "void k(float *out, const float *in) { for (int i = 0; i < %d; i++) out[i] = 2 * in[i]; }\n"
            "void k_ref(float *out, const float *in) { for (int i = 0; i < %d; i++) out[i] = 2 * in[i]; }\n",
            NELEM, NELEM);
    fclose(f);
    snprintf(cmd, sizeof cmd, "gcc -O2 -shared -fPIC -Wl,--no-as-needed -o %s %s %s 2>/dev/null", o, c,
             variants[v][0]);
    if (system(cmd) != 0) {
      fprintf(stderr, "  (gcc %s failed: skipped)\n", variants[v][0]);
      continue;
    }
    f = fopen(o, "rb");
    ASSERT_NOT_NULL(f);
    static uint8_t so[1 << 20];
    size_t len = fread(so, 1, sizeof so, f);
    fclose(f);
    kjob j;
    kjob_init(&j, so, len);
    const char *why = v ? "libz.so.1: cannot open shared object file: Permission denied" : NULL;
    wire_free(expect_result(&j.job, NULL, variants[v][1], why));
    unlink(c);
    unlink(o);
  }
  rmdir(dir);
}

TEST(memory_limit) {
  if (!MEASURE_LIMITS_MEMORY) {
    fprintf(stderr, "  (AddressSanitizer build: no memory limit to test)\n");
    return;
  }
  const char *body = "char *p = malloc((size_t)512 << 20);\n"
                     "  for (size_t i = 0; i < ((size_t)512 << 20); i += 4096) p[i] = 1;\n"
                     "  free(p);";
  uint8_t *so;
  size_t len;
  build_kernel(body, "", 0, &so, &len);
  kjob j;
  kjob_init(&j, so, len);
  measure_opts o = MEASURE_OPTS_INIT;
  o.mem_limit_mb = 256;
  Ktune__Envelope *r = expect_result(&j.job, &o, "RUNTIME_ERROR", "kernel crashed: SIGSEGV");
  ASSERT_CONTAINS(r->run_result->error,
                  "a memory allocation had failed before: the measuring process may use 256 MB "
                  "(ktune-runner --mem-limit-mb)");
  wire_free(r);
  o.mem_limit_mb = 2048;
  wire_free(expect_result(&j.job, &o, "ok", NULL));
  /* Buffers count too: a job that cannot fit says so before running. */
  j.buf[1].count = (uint64_t)300 << 20;
  o.mem_limit_mb = 256;
  wire_free(expect_result(&j.job, &o, "RUNTIME_ERROR", "buffer 1: cannot allocate"));
  free(so);
}

TEST(reference_image_cached_and_sealed) {
  refcache c;
  refcache_init(&c);
  uint8_t *so0, *so1, *noref, *refcrash;
  size_t l0, l1, ln, lc;
  build_kernel("", "", 0, &so0, &l0);
  build_kernel("", "", 1, &so1, &l1);
  build_src("void k(float *out, const float *in) {\n"
            "  for (int i = 0; i < 256; i++) out[i] = 2.0f * in[i];\n}\n",
            &noref, &ln);
  build_kernel("", "*(volatile int *)8 = 1;", 0, &refcrash, &lc);
  kjob j;
  kjob_init(&j, so0, l0);
  char *key = refcache_key(&j.job);
  ASSERT_NOT_NULL(key);
  uint64_t off[2], total;
  ASSERT_EQ_INT(refcache_layout(&j.job, off, &total), 0);
  ASSERT_EQ_U64(off[0], REFCACHE_HEADER);
  ASSERT_EQ_U64(total, REFCACHE_HEADER + NELEM * 4);

  /* A reference that crashes leaves an image that is not adopted. */
  measure_opts o = MEASURE_OPTS_INIT;
  kjob_init(&j, refcrash, lc);
  o.ref_fd = refcache_blank();
  wire_free(expect_result(&j.job, &o, "RUNTIME_ERROR", "the reference function crashed: SIGSEGV"));
  ASSERT_EQ_INT(refcache_adopt(&c, key, o.ref_fd, total), 0);
  ASSERT_EQ_INT(refcache_find(&c, key), -1);

  /* The first trial fills a blank; the runner adopts and seals it. */
  kjob_init(&j, so0, l0);
  o.ref_fd = refcache_blank();
  wire_free(expect_result(&j.job, &o, "ok", NULL));
  ASSERT_EQ_INT(refcache_adopt(&c, key, o.ref_fd, total), 1);
  int fd = refcache_find(&c, key);
  ASSERT(fd >= 0);
  ASSERT(write(fd, "x", 1) < 0);
  ASSERT(ftruncate(fd, 0) < 0);
  ASSERT(mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);

  /* Later trials compare with it and do not need the reference at all. */
  o.ref_fd = dup(fd);
  kjob_init(&j, noref, ln);
  wire_free(expect_result(&j.job, &o, "ok", NULL));
  /* A template whose reference depends on a knob shows which one is used. */
  o.ref_fd = dup(fd);
  kjob_init(&j, so1, l1);
  wire_free(expect_result(&j.job, &o, "WRONG_ANSWER", "out[0]: got"));
  /* Without the image each trial computes its own. */
  o.ref_fd = -1;
  wire_free(expect_result(&j.job, &o, "ok", NULL));

  /* Keys tell sizes, seeds and layouts apart; no task or no check, no key. */
  kjob k2;
  kjob_init(&k2, so0, l0);
  k2.job.size = "{\"N\":512}";
  char *k = refcache_key(&k2.job);
  ASSERT(strcmp(k, key) != 0);
  free(k);
  kjob_init(&k2, so0, l0);
  k2.job.seed = 2;
  k = refcache_key(&k2.job);
  ASSERT(strcmp(k, key) != 0);
  free(k);
  kjob_init(&k2, so0, l0);
  k2.buf[1].count = 128;
  k = refcache_key(&k2.job);
  ASSERT(strcmp(k, key) != 0);
  free(k);
  k2.job.task = "";
  ASSERT_NULL(refcache_key(&k2.job));
  kjob_init(&k2, so0, l0);
  k2.job.check = 0;
  ASSERT_NULL(refcache_key(&k2.job));

  /* Bounded: the least recently used entry goes. */
  for (int i = 0; i < REFCACHE_MAX + 2; i++) {
    char name[16];
    snprintf(name, sizeof name, "k%d", i);
    int b = refcache_blank();
    ASSERT_EQ_INT(ftruncate(b, (off_t)total), 0);
    refcache_header h = {REFCACHE_MAGIC, total};
    ASSERT_EQ_INT(pwrite(b, &h, sizeof h, 0), (ssize_t)sizeof h);
    ASSERT_EQ_INT(refcache_adopt(&c, name, b, total), 1);
    ASSERT(refcache_find(&c, key) >= 0); /* kept fresh by use */
  }
  ASSERT_EQ_INT(c.n, REFCACHE_MAX);
  ASSERT_EQ_INT(refcache_find(&c, "k0"), -1);
  ASSERT(refcache_find(&c, "k5") >= 0);
  /* A short or unfinished image is refused. */
  int b = refcache_blank();
  ASSERT_EQ_INT(ftruncate(b, (off_t)total), 0);
  ASSERT_EQ_INT(refcache_adopt(&c, "unfinished", b, total), 0);
  refcache_clear(&c);
  free(key);
  free(so0);
  free(so1);
  free(noref);
  free(refcrash);
}

TEST(device_identity_and_cpuinfo) {
  char m[128];
  ASSERT_EQ_INT(device_parse_cpuinfo("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel\t\t: 17\n"
                                     "model name\t: AMD EPYC 9B45  \nflags\t\t: fpu\n",
                                     m, sizeof m),
                0);
  ASSERT_EQ_STR(m, "AMD EPYC 9B45");
  ASSERT_EQ_INT(device_parse_cpuinfo("processor\t: 0\nBogoMIPS\t: 108.00\nCPU part\t: 0xd08\n\n"
                                     "Hardware\t: BCM2835\nRevision\t: c03111\n"
                                     "Model\t\t: Raspberry Pi 4 Model B Rev 1.1\n",
                                     m, sizeof m),
                0);
  ASSERT_EQ_STR(m, "Raspberry Pi 4 Model B Rev 1.1");
  ASSERT_EQ_INT(device_parse_cpuinfo("processor\t: 0\nhart\t\t: 1\nisa\t\t: rv64imafdc\n"
                                     "uarch\t\t: sifive,u74-mc\n",
                                     m, sizeof m),
                0);
  ASSERT_EQ_STR(m, "sifive,u74-mc");
  ASSERT_EQ_INT(device_parse_cpuinfo("processor : 0\nmodel name :   \n", m, sizeof m), -1);

  device_info d;
  ASSERT_EQ_INT(device_identity(0, &d), 0);
  struct utsname u;
  uname(&u);
  ASSERT(d.cores >= 1);
  ASSERT(d.cpu_model[0]);
  ASSERT_EQ_STR(d.arch, u.machine);
  ASSERT_EQ_STR(d.kernel, u.release);
  ASSERT(d.governor[0]);
  ASSERT_EQ_STR(d.version, KTUNE_VERSION);
  fprintf(stderr, "  %s, %u cores, %s, %s, governor %s\n", d.cpu_model, d.cores, d.arch, d.kernel,
          d.governor);
}

TEST(syscall_names) {
  ASSERT_EQ_STR(sandbox_syscall_name(SYS_openat), "openat");
  ASSERT_EQ_STR(sandbox_syscall_name(SYS_clone), "clone");
  ASSERT_NULL(sandbox_syscall_name(-1));
  ASSERT_NULL(sandbox_syscall_name(100000));
}

TEST_LIST(TEST_ENTRY(timing_next_number_follows_tvm),
          TEST_ENTRY(timing_run_grows_number_cools_and_flushes), TEST_ENTRY(sandboxed_child_measures),
          TEST_ENTRY(sandbox_allows_what_kernels_need), TEST_ENTRY(sandbox_writes_the_dump), TEST_ENTRY(sandbox_names_forbidden_calls),
          TEST_ENTRY(crashes_are_named), TEST_ENTRY(loader_runs_inside_the_sandbox),
          TEST_ENTRY(sandboxed_load_errors), TEST_ENTRY(gcc_artifacts_load_in_the_sandbox),
          TEST_ENTRY(memory_limit), TEST_ENTRY(reference_image_cached_and_sealed),
          TEST_ENTRY(device_identity_and_cpuinfo), TEST_ENTRY(syscall_names))
