/* The build-and-measure path in one process: codegen, libtcc, loading an
 * artifact from memory, timing and checking against the reference. */
#include <math.h>
#include <pthread.h>
#include <time.h>

#include "builder/codegen.h"
#include "builder/tcc.h"
#include "common/rng.h"
#include "common/timing.h"
#include "common/wire.h"
#include "runner/load.h"
#include "runner/measure.h"
#include "tests/test.h"

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static char *read_text(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *p = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n + 4096 + 1 > cap) {
      cap = cap ? cap * 2 : 8192;
      p = realloc(p, cap);
      ASSERT_NOT_NULL(p);
    }
    size_t r = fread(p + n, 1, cap - n - 1, f);
    if (r == 0) break;
    n += r;
  }
  fclose(f);
  p[n] = '\0';
  if (len) *len = n;
  return p;
}

static char *matmul_template(void) {
  char path[4096];
  const char *src = getenv("KTUNE_SRC");
#ifdef KTUNE_SRC_DIR
  if (!src) src = KTUNE_SRC_DIR;
#endif
  ASSERT_NOT_NULL(src);
  snprintf(path, sizeof path, "%s/tasks/matmul.c", src);
  char *t = read_text(path, NULL);
  if (!t) TEST_FAIL("cannot read %s (set KTUNE_SRC to the source tree)", path);
  return t;
}

/* The matmul template's defines from v = {M, N, K, MR, NV, KC}; the other
 * knobs stay fixed (VW 8, KU 2, MC 64, NC 256). */
enum { MATMUL_DEFS = 10 };
static void matmul_defines(const int64_t *v, codegen_define *d) {
  static const char *const names[MATMUL_DEFS] = {"M", "N", "K", "MR", "NV", "KC",
                                                 "VW", "KU", "MC", "NC"};
  const int64_t fixed[] = {8, 2, 64, 256};
  for (int i = 0; i < MATMUL_DEFS; i++) d[i] = (codegen_define){names[i], i < 6 ? v[i] : fixed[i - 6]};
}

/* Builds the matmul template (see matmul_defines). */
static void build(const char *task, const char *tmpl, const int64_t *v, uint8_t **so, size_t *len) {
  codegen_define defs[MATMUL_DEFS];
  matmul_defines(v, defs);
  char *src = codegen_source(task, tmpl, defs, MATMUL_DEFS);
  ASSERT_NOT_NULL(src);
  char diag[2048];
  int rc = tcc_build_so(src, so, len, diag, sizeof diag);
  if (rc != 0) TEST_FAIL("tcc_build_so: %d: %s", rc, diag);
  free(src);
}

static void build_plain(const char *src, uint8_t **so, size_t *len) {
  char diag[2048];
  int rc = tcc_build_so(src, so, len, diag, sizeof diag);
  if (rc != 0) TEST_FAIL("tcc_build_so: %d: %s", rc, diag);
}

static int measure_dumping(const Ktune__RunJob *job, const char *dir, Ktune__RunResult *res) {
  measure_opts o = MEASURE_OPTS_INIT;
  o.dump_dir = dir;
  return measure_job(job, &o, res);
}

/* A run job for buffers C(out) A B of a matmul; the caller owns the arrays. */
typedef struct {
  Ktune__RunJob job;
  Ktune__Timing tm;
  Ktune__Buffer buf[3];
  Ktune__Buffer *bufp[3];
} matmul_job;

static void matmul_job_init(matmul_job *j, uint8_t *so, size_t len, int64_t m, int64_t n,
                            int64_t k) {
  ktune__run_job__init(&j->job);
  ktune__timing__init(&j->tm);
  j->job.timing = &j->tm;
  uint64_t counts[3] = {(uint64_t)(m * n), (uint64_t)(m * k), (uint64_t)(k * n)};
  for (int i = 0; i < 3; i++) {
    ktune__buffer__init(&j->buf[i]);
    j->buf[i].type = "float";
    j->buf[i].count = counts[i];
    j->buf[i].output = i == 0;
    j->bufp[i] = &j->buf[i];
  }
  j->job.job_id = 42;
  j->job.artifact.data = so;
  j->job.artifact.len = len;
  j->job.entry = "matmul";
  j->job.reference = "matmul_ref";
  j->job.buffers = j->bufp;
  j->job.n_buffers = 3;
  j->job.seed = 7;
  j->tm.number = 2;
  j->tm.repeat = 3;
  j->job.check = 1;
  j->job.rtol = 1e-4;
  j->job.atol = 1e-5;
}

TEST(codegen_defines) {
  codegen_define defs[] = {{"M", 64}, {"TI", 8}, {"NEG", -3}, {"_x1", 0}};
  char *s = codegen_source("matmul", "void f(void) {}", defs, 4);
  ASSERT_NOT_NULL(s);
  ASSERT_CONTAINS(s, "#define M 64\n#define TI 8\n#define NEG (-3)\n#define _x1 0\n");
  ASSERT_CONTAINS(s, "#line 1 \"matmul.c\"\nvoid f(void) {}\n");
  ASSERT_EQ_INT(strncmp(s, "#define M 64\n", 13), 0);
  free(s);

  const char *bad[] = {"1X", "A-B", "", "A B", "M\n#include"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    codegen_define d = {bad[i], 1};
    ASSERT_NULL(codegen_source("matmul", "", &d, 1));
  }
  codegen_define none = {NULL, 1};
  ASSERT_NULL(codegen_source("matmul", "", &none, 1));
  codegen_define dup[] = {{"M", 1}, {"M", 2}};
  ASSERT_NULL(codegen_source("matmul", "", dup, 2));

  /* A task name cannot break out of the #line string. */
  s = codegen_source("a\"b\\c", "", NULL, 0);
  ASSERT_NOT_NULL(s);
  ASSERT_EQ_STR(s, "#line 1 \"a_b_c.c\"\n");
  free(s);
}

TEST(rng_streams) {
  ASSERT_EQ_INT(rng_type_size("float"), 4);
  ASSERT_EQ_INT(rng_type_size("double"), 8);
  ASSERT_EQ_INT(rng_type_size("int32"), 4);
  ASSERT_EQ_INT(rng_type_size("int64"), 8);
  ASSERT_EQ_INT(rng_type_size("half"), 0);
  ASSERT_EQ_INT(rng_type_size(NULL), 0);
  enum { n = 10000 };
  static float f1[n], f2[n], f3[n];
  static double d[n];
  static int32_t i32[n];
  static int64_t i64[n];
  ASSERT_EQ_INT(rng_fill_buffer("float", f1, n, 1, 0), 0);
  ASSERT_EQ_INT(rng_fill_buffer("float", f2, n, 1, 0), 0);
  ASSERT_EQ_INT(rng_fill_buffer("float", f3, n, 1, 1), 0);
  ASSERT_EQ_INT(memcmp(f1, f2, sizeof f1), 0);
  ASSERT(memcmp(f1, f3, sizeof f1) != 0);
  ASSERT_EQ_INT(rng_fill_buffer("double", d, n, 1, 2), 0);
  ASSERT_EQ_INT(rng_fill_buffer("int32", i32, n, 1, 3), 0);
  ASSERT_EQ_INT(rng_fill_buffer("int64", i64, n, 1, 4), 0);
  ASSERT(rng_fill_buffer("half", f1, n, 1, 0) < 0);
  double lo = 1, hi = -1;
  int seen[16] = {0};
  for (int i = 0; i < n; i++) {
    ASSERT(f1[i] >= -1.0f && f1[i] < 1.0f);
    ASSERT(d[i] >= -1.0 && d[i] < 1.0);
    ASSERT(i32[i] >= -8 && i32[i] < 8);
    ASSERT(i64[i] >= -8 && i64[i] < 8);
    seen[i32[i] + 8]++;
    lo = d[i] < lo ? d[i] : lo;
    hi = d[i] > hi ? d[i] : hi;
  }
  ASSERT(lo < -0.99 && hi > 0.99);
  for (int v = 0; v < 16; v++) ASSERT(seen[v] > 0);
  rng r;
  rng_seed(&r, 3);
  for (int i = 0; i < 1000; i++) ASSERT(rng_below(&r, 7) < 7);
}

TEST(tcc_builds_matmul) {
  char *tmpl = matmul_template();
  int64_t v[] = {512, 512, 512, 4, 2, 256};
  uint8_t *so;
  size_t len;
  build("matmul", tmpl, v, &so, &len); /* the first build pays for tcc's setup */
  free(so);
  enum { reps = 50 };
  double t0 = now_s();
  for (int i = 0; i < reps; i++) {
    build("matmul", tmpl, v, &so, &len);
    if (i < reps - 1) free(so);
  }
  double t1 = now_s();
  ASSERT(len > 64);
  ASSERT_EQ_INT(memcmp(so, "\177ELF", 4), 0);
  ASSERT_CONTAINS(tcc_compiler_id(), "tcc 0.9.27");

  load_so l;
  char err[512];
  t0 = t1 - t0;
  double l0 = now_s();
  for (int i = 0; i < reps; i++) {
    ASSERT_EQ_INT(load_open(&l, so, len, err, sizeof err), 0);
    void *fn;
    ASSERT_EQ_INT(load_sym(&l, "matmul", &fn, err, sizeof err), 0);
    ASSERT_EQ_INT(load_sym(&l, "matmul_ref", &fn, err, sizeof err), 0);
    load_close(&l);
  }
  double l1 = now_s();
  fprintf(stderr, "  matmul: %zu bytes, tcc_build_so %.3f ms, load+2 dlsym+unload %.3f ms\n", len,
          t0 / reps * 1e3, (l1 - l0) / reps * 1e3);
  free(so);
  free(tmpl);
}

/* The reference the test trusts: double accumulation over inputs made
 * the way the runner makes them. */
static void check_dump(const char *path, int64_t m, int64_t n, int64_t k, uint64_t seed) {
  size_t len;
  char *out = read_text(path, &len);
  ASSERT_NOT_NULL(out);
  ASSERT_EQ_U64(len, (uint64_t)(m * n) * sizeof(float));
  const float *c = (const float *)out;
  float *a = malloc(sizeof(float) * (size_t)(m * k)), *b = malloc(sizeof(float) * (size_t)(k * n));
  ASSERT_EQ_INT(rng_fill_buffer("float", a, (uint64_t)(m * k), seed, 1), 0);
  ASSERT_EQ_INT(rng_fill_buffer("float", b, (uint64_t)(k * n), seed, 2), 0);
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      double s = 0;
      for (int64_t q = 0; q < k; q++) s += (double)a[i * k + q] * b[q * n + j];
      double got = c[i * n + j];
      if (!(fabs(got - s) <= 1e-5 + 1e-4 * fabs(s)))
        TEST_FAIL("C[%lld][%lld]: got %.9g expected %.9g", (long long)i, (long long)j, got, s);
    }
  free(a);
  free(b);
  free(out);
}

TEST(measure_matmul_edges) {
  char *tmpl = matmul_template();
  const int64_t m = 64, n = 48, k = 80;
  /* Micro-tiles and k blocks (MR, NV, KC) that do not divide 64x48x80,
   * and one larger than every side. */
  const int64_t tiles[][3] = {{6, 1, 64}, {4, 3, 32}, {3, 2, 16}, {2, 1, 80}, {8, 8, 512}};
  char dir[] = "/tmp/ktune-test-XXXXXX";
  ASSERT_NOT_NULL(mkdtemp(dir));
  for (size_t t = 0; t < sizeof tiles / sizeof tiles[0]; t++) {
    int64_t v[] = {m, n, k, tiles[t][0], tiles[t][1], tiles[t][2]};
    uint8_t *so;
    size_t len;
    build("matmul", tmpl, v, &so, &len);
    matmul_job j;
    matmul_job_init(&j, so, len, m, n, k);
    j.job.job_id = 100 + t;
    Ktune__RunResult res;
    ASSERT_EQ_INT(measure_dumping(&j.job, dir, &res), 0);
    if (strcmp(wire_status_name(res.status), "ok") != 0)
      TEST_FAIL("MR %lld NV %lld KC %lld: %s: %s", (long long)v[3], (long long)v[4], (long long)v[5],
                wire_status_name(res.status), res.error);
    ASSERT_EQ_STR(res.error, "");
    ASSERT_EQ_U64(res.job_id, 100 + t);
    ASSERT_EQ_INT(res.n_costs_s, 3);
    ASSERT_EQ_INT(res.number, 2);
    ASSERT_EQ_STR(res.clock, "CLOCK_MONOTONIC");
    for (size_t i = 0; i < res.n_costs_s; i++) ASSERT_GT_DBL(res.costs_s[i], 0);
    char path[256];
    snprintf(path, sizeof path, "%s/job-%llu.out", dir, (unsigned long long)(100 + t));
    check_dump(path, m, n, k, 7);
    unlink(path);
    measure_result_clear(&res);
    ASSERT_NULL(res.costs_s);
    free(so);
  }
  rmdir(dir);
  free(tmpl);
}

TEST(measure_zero_number_repeat) {
  char *tmpl = matmul_template();
  int64_t v[] = {8, 8, 8, 2, 1, 64};
  uint8_t *so;
  size_t len;
  build("matmul", tmpl, v, &so, &len);
  matmul_job j;
  matmul_job_init(&j, so, len, 8, 8, 8);
  j.tm.number = 0;
  j.tm.repeat = 0;
  Ktune__RunResult res;
  ASSERT_EQ_INT(measure_job(&j.job, NULL, &res), 0);
  ASSERT_EQ_STR(wire_status_name(res.status), "ok");
  /* Unset means the defaults of the one table, as on the tracker. */
  ASSERT_EQ_INT(res.n_costs_s, timing_fields[TIMING_REPEAT].def);
  ASSERT_EQ_INT(res.number, timing_fields[TIMING_NUMBER].def);
  measure_result_clear(&res);
  free(so);
  free(tmpl);
}

static const char wrong_src[] =
    "#define M 16\n#define N 16\n#define K 16\n"
    "void matmul_ref(float *C, const float *A, const float *B) {\n"
    "  for (int i = 0; i < M; i++)\n"
    "    for (int j = 0; j < N; j++) {\n"
    "      float s = 0;\n"
    "      for (int k = 0; k < K; k++) s += A[i * K + k] * B[k * N + j];\n"
    "      C[i * N + j] = s;\n"
    "    }\n"
    "}\n"
    "void matmul(float *C, const float *A, const float *B) {\n"
    "  matmul_ref(C, A, B);\n"
    "  C[123] += 0.5f;\n"
    "  C[200] += 0.001f;\n"
    "}\n";

TEST(wrong_answer_names_index) {
  uint8_t *so;
  size_t len;
  build_plain(wrong_src, &so, &len);
  matmul_job j;
  matmul_job_init(&j, so, len, 16, 16, 16);
  char dir[] = "/tmp/ktune-test-XXXXXX";
  ASSERT_NOT_NULL(mkdtemp(dir));
  Ktune__RunResult res;
  ASSERT_EQ_INT(measure_dumping(&j.job, dir, &res), 0);
  ASSERT_EQ_STR(wire_status_name(res.status), "WRONG_ANSWER");
  ASSERT_CONTAINS(res.error, "buffer 0[123]: got ");
  ASSERT_CONTAINS(res.error, "worst abs error 0.5");
  ASSERT_CONTAINS(res.error, "2 of 256 elements");
  /* Costs were measured before the check failed. */
  ASSERT_EQ_INT(res.n_costs_s, 3);
  /* The dump holds the kernel's output, not the reference's. */
  char path[256];
  snprintf(path, sizeof path, "%s/job-42.out", dir);
  size_t dlen;
  char *out = read_text(path, &dlen);
  ASSERT_NOT_NULL(out);
  ASSERT_EQ_INT(dlen, 256 * sizeof(float));
  float a[256], b[256];
  rng_fill_buffer("float", a, 256, 7, 1);
  rng_fill_buffer("float", b, 256, 7, 2);
  float s = 0;
  for (int q = 0; q < 16; q++) s += a[7 * 16 + q] * b[q * 16 + 11];
  ASSERT_EQ_DBL(((float *)out)[123], s + 0.5f, 1e-5);
  free(out);
  unlink(path);
  rmdir(dir);
  measure_result_clear(&res);

  /* Without the check the same kernel is simply timed. */
  j.job.check = 0;
  ASSERT_EQ_INT(measure_job(&j.job, NULL, &res), 0);
  ASSERT_EQ_STR(wire_status_name(res.status), "ok");
  measure_result_clear(&res);
  free(so);
}

TEST(wrong_answer_ints_exact) {
  const char *src =
      "void k(int *out, const int *in) { for (int i = 0; i < 64; i++) out[i] = in[i] * 2 + (i == 9); }\n"
      "void r(int *out, const int *in) { for (int i = 0; i < 64; i++) out[i] = in[i] * 2; }\n";
  uint8_t *so;
  size_t len;
  build_plain(src, &so, &len);
  Ktune__RunJob job = KTUNE__RUN_JOB__INIT;
  Ktune__Buffer b[2] = {KTUNE__BUFFER__INIT, KTUNE__BUFFER__INIT};
  Ktune__Buffer *bp[2] = {&b[0], &b[1]};
  b[0].type = b[1].type = "int32";
  b[0].count = b[1].count = 64;
  b[0].output = 1;
  job.artifact.data = so;
  job.artifact.len = len;
  job.entry = "k";
  job.reference = "r";
  job.buffers = bp;
  job.n_buffers = 2;
  job.check = 1;
  job.rtol = 0.5; /* tolerances do not apply to integers */
  job.atol = 2;
  Ktune__RunResult res;
  ASSERT_EQ_INT(measure_job(&job, NULL, &res), 0);
  ASSERT_EQ_STR(wire_status_name(res.status), "WRONG_ANSWER");
  ASSERT_CONTAINS(res.error, "buffer 0[9]: got ");
  measure_result_clear(&res);
  free(so);
}

TEST(compile_error_has_diagnostics) {
  codegen_define d = {"M", 4};
  /* tcc reports some syntax errors (`int x = ;`) at the line after; an
   * undeclared name is reported where it is. */
  char *src = codegen_source("broken", "void f(float *C) {\n  foo bar;\n}\n", &d, 1);
  ASSERT_NOT_NULL(src);
  uint8_t *so = (uint8_t *)1;
  size_t len = 1;
  char diag[512];
  ASSERT_EQ_INT(tcc_build_so(src, &so, &len, diag, sizeof diag), -1);
  ASSERT_NULL(so);
  ASSERT_EQ_INT(len, 0);
  ASSERT_CONTAINS(diag, "broken.c:2: error: 'foo' undeclared");
  free(src);

  /* A tiny diag buffer is filled, not overrun. */
  char small[8];
  memset(small, 'x', sizeof small);
  ASSERT_EQ_INT(tcc_build_so("int x = ;", &so, &len, small, sizeof small), -1);
  ASSERT_EQ_INT(strlen(small), 7);
  /* A later build in the same process is unaffected. */
  ASSERT_EQ_INT(tcc_build_so("void f(void) {}", &so, &len, diag, sizeof diag), 0);
  free(so);
}

TEST(garbage_artifact_load_error) {
  uint8_t junk[4096];
  for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(i * 131 + 7);
  matmul_job j;
  matmul_job_init(&j, junk, sizeof junk, 4, 4, 4);
  Ktune__RunResult res;
  ASSERT_EQ_INT(measure_job(&j.job, NULL, &res), 0);
  ASSERT_EQ_STR(wire_status_name(res.status), "LOAD_ERROR");
  ASSERT_CONTAINS(res.error, "cannot load artifact");
  ASSERT_EQ_INT(res.n_costs_s, 0);
  measure_result_clear(&res);

  /* A truncated real object fails the same way. */
  uint8_t *so;
  size_t len;
  build_plain("void matmul(float *C, const float *A, const float *B) { C[0] = A[0] + B[0]; }", &so,
              &len);
  matmul_job_init(&j, so, 200, 4, 4, 4);
  ASSERT_EQ_INT(measure_job(&j.job, NULL, &res), 0);
  ASSERT_EQ_STR(wire_status_name(res.status), "LOAD_ERROR");
  measure_result_clear(&res);
  free(so);

  /* tcc leaves unknown functions undefined in a DLL; dlopen names them. */
  build_plain("void no_such_function(float *);\n"
              "void matmul(float *C, const float *A, const float *B) { no_such_function(C); }",
              &so, &len);
  matmul_job_init(&j, so, len, 4, 4, 4);
  ASSERT_EQ_INT(measure_job(&j.job, NULL, &res), 0);
  ASSERT_EQ_STR(wire_status_name(res.status), "LOAD_ERROR");
  ASSERT_CONTAINS(res.error, "undefined symbol: no_such_function");
  measure_result_clear(&res);
  free(so);

  matmul_job_init(&j, NULL, 0, 4, 4, 4);
  ASSERT_EQ_INT(measure_job(&j.job, NULL, &res), 0);
  ASSERT_EQ_STR(wire_status_name(res.status), "LOAD_ERROR");
  measure_result_clear(&res);
}

TEST(missing_entry_load_error) {
  uint8_t *so;
  size_t len;
  build_plain("void other(float *C, const float *A, const float *B) { C[0] = A[0] + B[0]; }\n"
              "void matmul_ref(float *C, const float *A, const float *B) { C[0] = A[0] + B[0]; }\n",
              &so, &len);
  matmul_job j;
  matmul_job_init(&j, so, len, 4, 4, 4);
  Ktune__RunResult res;
  ASSERT_EQ_INT(measure_job(&j.job, NULL, &res), 0);
  ASSERT_EQ_STR(wire_status_name(res.status), "LOAD_ERROR");
  ASSERT_CONTAINS(res.error, "function matmul not found");
  measure_result_clear(&res);

  /* A missing reference matters only when checking. */
  j.job.entry = "other";
  j.job.reference = "nope";
  ASSERT_EQ_INT(measure_job(&j.job, NULL, &res), 0);
  ASSERT_EQ_STR(wire_status_name(res.status), "LOAD_ERROR");
  ASSERT_CONTAINS(res.error, "function nope not found");
  measure_result_clear(&res);
  j.job.check = 0;
  ASSERT_EQ_INT(measure_job(&j.job, NULL, &res), 0);
  ASSERT_EQ_STR(wire_status_name(res.status), "ok");
  measure_result_clear(&res);
  free(so);
}

TEST(kernel_uses_libc_and_libtcc1) {
  /* memset/memcpy come from the runner's libc at dlopen time; the
   * float -> unsigned 64-bit conversion needs a helper from libtcc1.a. */
  const char *src =
      "typedef unsigned long size_t;\n"
      "void *memset(void *, int, size_t);\n"
      "void *memcpy(void *, const void *, size_t);\n"
      "void k(double *out, const double *in) {\n"
      "  double tmp[64];\n"
      "  memset(out, 0, 64 * sizeof *out);\n"
      "  memcpy(tmp, in, sizeof tmp);\n"
      "  for (int i = 0; i < 64; i++) {\n"
      "    unsigned long long u = (unsigned long long)((tmp[i] + 1.0) * 1e6);\n"
      "    out[i] = (double)u;\n"
      "  }\n"
      "}\n";
  uint8_t *so;
  size_t len;
  build_plain(src, &so, &len);
  Ktune__RunJob job = KTUNE__RUN_JOB__INIT;
  Ktune__Buffer b[2] = {KTUNE__BUFFER__INIT, KTUNE__BUFFER__INIT};
  Ktune__Buffer *bp[2] = {&b[0], &b[1]};
  b[0].type = b[1].type = "double";
  b[0].count = b[1].count = 64;
  b[0].output = 1;
  job.job_id = 5;
  job.artifact.data = so;
  job.artifact.len = len;
  job.entry = "k";
  job.buffers = bp;
  job.n_buffers = 2;
  job.seed = 3;
  char dir[] = "/tmp/ktune-test-XXXXXX";
  ASSERT_NOT_NULL(mkdtemp(dir));
  Ktune__RunResult res;
  ASSERT_EQ_INT(measure_dumping(&job, dir, &res), 0);
  if (strcmp(wire_status_name(res.status), "ok") != 0) TEST_FAIL("%s: %s", wire_status_name(res.status), res.error);
  char path[256];
  snprintf(path, sizeof path, "%s/job-5.out", dir);
  size_t dlen;
  char *out = read_text(path, &dlen);
  ASSERT_EQ_INT(dlen, 64 * sizeof(double));
  double in[64];
  rng_fill_buffer("double", in, 64, 3, 1);
  for (int i = 0; i < 64; i++)
    ASSERT_EQ_DBL(((double *)out)[i], (double)(unsigned long long)((in[i] + 1.0) * 1e6), 0);
  free(out);
  unlink(path);
  rmdir(dir);
  measure_result_clear(&res);
  free(so);
}

TEST(bad_buffers_runtime_error) {
  uint8_t *so;
  size_t len;
  build_plain("void k(void *a, void *b, void *c, void *d, void *e, void *f, void *g, void *h,"
              " void *i) {}\n",
              &so, &len);
  Ktune__RunJob job = KTUNE__RUN_JOB__INIT;
  Ktune__Buffer b[9];
  Ktune__Buffer *bp[9];
  for (int i = 0; i < 9; i++) {
    ktune__buffer__init(&b[i]);
    b[i].type = "float";
    b[i].count = 4;
    bp[i] = &b[i];
  }
  job.artifact.data = so;
  job.artifact.len = len;
  job.entry = "k";
  job.buffers = bp;
  job.n_buffers = 9;
  Ktune__RunResult res;
  ASSERT_EQ_INT(measure_job(&job, NULL, &res), 0);
  ASSERT_EQ_STR(wire_status_name(res.status), "RUNTIME_ERROR");
  ASSERT_CONTAINS(res.error, "at most 8");
  measure_result_clear(&res);

  job.n_buffers = 8; /* eight is fine */
  ASSERT_EQ_INT(measure_job(&job, NULL, &res), 0);
  ASSERT_EQ_STR(wire_status_name(res.status), "ok");
  measure_result_clear(&res);

  b[2].type = "half";
  ASSERT_EQ_INT(measure_job(&job, NULL, &res), 0);
  ASSERT_EQ_STR(wire_status_name(res.status), "RUNTIME_ERROR");
  ASSERT_CONTAINS(res.error, "buffer 2: unknown element type \"half\"");
  measure_result_clear(&res);

  b[2].type = "float";
  b[3].count = 0;
  ASSERT_EQ_INT(measure_job(&job, NULL, &res), 0);
  ASSERT_EQ_STR(wire_status_name(res.status), "RUNTIME_ERROR");
  ASSERT_CONTAINS(res.error, "buffer 3: element count is 0");
  measure_result_clear(&res);

  b[3].count = UINT64_MAX / 2;
  ASSERT_EQ_INT(measure_job(&job, NULL, &res), 0);
  ASSERT_EQ_STR(wire_status_name(res.status), "RUNTIME_ERROR");
  ASSERT_CONTAINS(res.error, "buffer 3:");
  measure_result_clear(&res);
  free(so);
}

TEST(child_main_over_pipes) {
  char *tmpl = matmul_template();
  int64_t v[] = {16, 12, 20, 4, 1, 16};
  uint8_t *so;
  size_t len;
  build("matmul", tmpl, v, &so, &len);
  matmul_job j;
  matmul_job_init(&j, so, len, 16, 12, 20);
  j.job.job_id = 77;
  int in[2], out[2];
  ASSERT_EQ_INT(pipe(in), 0);
  ASSERT_EQ_INT(pipe(out), 0);
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_RUN_JOB;
  env.run_job = &j.job;
  ASSERT_EQ_INT(wire_write_fd(in[1], &env), 0);
  ASSERT_EQ_INT(measure_child_main(in[0], out[1], NULL), 0);
  Ktune__Envelope *r = wire_read_fd(out[0], 1 << 20);
  ASSERT_NOT_NULL(r);
  ASSERT_EQ_INT(r->msg_case, KTUNE__ENVELOPE__MSG_RUN_RESULT);
  ASSERT_EQ_U64(r->run_result->job_id, 77);
  ASSERT_EQ_STR(wire_status_name(r->run_result->status), "ok");
  ASSERT_EQ_INT(r->run_result->n_costs_s, 3);
  ASSERT_EQ_STR(r->run_result->clock, "CLOCK_MONOTONIC");
  wire_free(r);

  /* Anything but a run_job is a protocol failure. */
  Ktune__Heartbeat hb = KTUNE__HEARTBEAT__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_HEARTBEAT;
  env.heartbeat = &hb;
  ASSERT_EQ_INT(wire_write_fd(in[1], &env), 0);
  ASSERT_NE_INT(measure_child_main(in[0], out[1], NULL), 0);
  /* So is end of input. */
  close(in[1]);
  ASSERT_NE_INT(measure_child_main(in[0], out[1], NULL), 0);
  close(in[0]);
  close(out[0]);
  close(out[1]);
  free(so);
  free(tmpl);
}

typedef struct {
  const char *tmpl;
  int64_t ti;
  int ok;
} build_thread_arg;

static void *build_thread(void *p) {
  build_thread_arg *a = p;
  int64_t v[] = {64, 64, 64, a->ti, 2, 32};
  codegen_define defs[MATMUL_DEFS];
  matmul_defines(v, defs);
  char *src = codegen_source("matmul", a->tmpl, defs, MATMUL_DEFS);
  a->ok = src != NULL;
  for (int i = 0; i < 20 && a->ok; i++) {
    uint8_t *so;
    size_t len;
    char diag[256];
    a->ok = tcc_build_so(src, &so, &len, diag, sizeof diag) == 0 && len > 64 &&
            memcmp(so, "\177ELF", 4) == 0;
    if (a->ok) free(so);
  }
  free(src);
  return NULL;
}

TEST(two_threads_build) {
  char *tmpl = matmul_template();
  uint8_t *so;
  size_t len;
  int64_t v[] = {8, 8, 8, 2, 1, 16};
  build("matmul", tmpl, v, &so, &len); /* libtcc's lazy setup, once */
  free(so);
  build_thread_arg a[2] = {{tmpl, 2, 0}, {tmpl, 4, 0}};
  pthread_t t[2];
  for (int i = 0; i < 2; i++) ASSERT_EQ_INT(pthread_create(&t[i], NULL, build_thread, &a[i]), 0);
  for (int i = 0; i < 2; i++) ASSERT_EQ_INT(pthread_join(t[i], NULL), 0);
  ASSERT(a[0].ok);
  ASSERT(a[1].ok);
  free(tmpl);
}

/* A reference that reads a knob is refused by name: directly (before any
 * compile), through a macro (the compiler's error, reworded), or in a
 * function it calls. The entry still sees the knob, and messages keep
 * pointing at the template's own lines. */
TEST(reference_must_not_use_knobs) {
  codegen_define defs[] = {{"N", 64}, {"U", 4}, {"V", 2}};
  char err[256];
  const char *direct = "void k(float *o) { for (int i = 0; i < N; i += U) o[i] = 0; }\n"
                       "void k_ref(float *o) {\n"
                       "  /* U is not used here; \"V\" neither */\n"
                       "  for (int i = 0; i < N; i += V) o[i] = 0;\n"
                       "}\n";
  ASSERT_NULL(codegen_source_guarded("t", direct, defs, 3, "k_ref", 2, err, sizeof err));
  ASSERT_EQ_STR(err, "reference k_ref uses knob V; the reference must not depend on the config "
                     "(docs/TASKS.md)");
  const char *in_if = "void k_ref(float *o) {\n#if U > 2\n  o[0] = 1;\n#endif\n}\n";
  ASSERT_NULL(codegen_source_guarded("t", in_if, defs, 3, "k_ref", 2, err, sizeof err));
  ASSERT_CONTAINS(err, "reference k_ref uses knob U;");
  const char *helper = "static float h(const float *a) { return a[0] * U; }\n"
                       "void k_ref(float *o) { o[0] = h(o); }\n";
  ASSERT_NULL(codegen_source_guarded("t", helper, defs, 3, "k_ref", 2, err, sizeof err));
  ASSERT_CONTAINS(err, "reference k_ref uses knob U in h, which it calls;");
  /* N is a constant, and only knobs are kept out. */
  char *src = codegen_source_guarded("t", helper, defs, 3, "k_ref", 1, err, sizeof err);
  ASSERT_NOT_NULL(src);
  ASSERT_EQ_STR(err, "");
  free(src);

  /* Through a macro: the compiler names the poisoned knob; the entry,
   * after the reference, sees its value, and a later error keeps its line. */
  const char *macro = "#define T (U * 2)\n"
                      "void k_ref(float *o) { for (int i = 0; i < N; i++) o[i] = T; }\n"
                      "void k(float *o) { for (int i = 0; i < N; i++) o[i] = T; }\n";
  src = codegen_source_guarded("t", macro, defs, 3, "k_ref", 2, err, sizeof err);
  ASSERT_NOT_NULL(src);
  uint8_t *so = NULL;
  size_t len = 0;
  char diag[1024], why[2048];
  ASSERT_EQ_INT(tcc_build_so(src, &so, &len, diag, sizeof diag), -1);
  ASSERT_CONTAINS(diag, "t.c:2:");
  ASSERT_EQ_INT(codegen_reference_error("k_ref", diag, why, sizeof why), 1);
  ASSERT_EQ_INT(strncmp(why, "reference k_ref uses knob U; the reference must not depend on the "
                             "config (docs/TASKS.md)\nt.c:2:", 95), 0);
  ASSERT_EQ_INT(codegen_reference_error("k_ref", "t.c:2: error: 'x' undeclared", why, sizeof why),
                0);
  free(src);
  const char *fine = "#define T (U * 2)\n"
                     "void k_ref(float *o) { for (int i = 0; i < N; i++) o[i] = 8; }\n"
                     "void k(float *o) { for (int i = 0; i < N; i++) o[i] = T; }\n"
                     "void broken(void) {\n  x;\n}\n";
  src = codegen_source_guarded("t", fine, defs, 3, "k_ref", 2, err, sizeof err);
  ASSERT_NOT_NULL(src);
  ASSERT_EQ_INT(tcc_build_so(src, &so, &len, diag, sizeof diag), -1);
  ASSERT_CONTAINS(diag, "t.c:5: error: 'x' undeclared");
  free(src);

  /* Braces that balance only per #if branch: not checked, built as is. */
  const char *odd = "void k_ref(float *o) {\n#if 1\n  if (N) {\n#else\n  if (U) {\n#endif\n"
                    "    o[0] = U;\n  }\n}\n";
  src = codegen_source_guarded("t", odd, defs, 3, "k_ref", 2, err, sizeof err);
  ASSERT_NOT_NULL(src);
  ASSERT_NULL(strstr(src, "ktune_reference_uses_knob_"));
  free(src);

  /* The built-in matmul's reference uses no knob, and still builds. */
  char *tmpl = matmul_template();
  int64_t v[] = {64, 64, 64, 4, 2, 64};
  codegen_define md[MATMUL_DEFS];
  matmul_defines(v, md);
  /* matmul_defines puts knobs among constants: take the last four. */
  src = codegen_source_guarded("matmul", tmpl, md, MATMUL_DEFS, "matmul_ref", 4, err, sizeof err);
  ASSERT_NOT_NULL(src);
  ASSERT_CONTAINS(src, "#define KU ktune_reference_uses_knob_KU\n");
  ASSERT_EQ_INT(tcc_build_so(src, &so, &len, diag, sizeof diag), 0);
  free(so);
  free(src);
  free(tmpl);
}

TEST_LIST(TEST_ENTRY(codegen_defines), TEST_ENTRY(rng_streams), TEST_ENTRY(tcc_builds_matmul),
          TEST_ENTRY(measure_matmul_edges), TEST_ENTRY(measure_zero_number_repeat),
          TEST_ENTRY(wrong_answer_names_index), TEST_ENTRY(wrong_answer_ints_exact),
          TEST_ENTRY(compile_error_has_diagnostics), TEST_ENTRY(garbage_artifact_load_error),
          TEST_ENTRY(missing_entry_load_error), TEST_ENTRY(kernel_uses_libc_and_libtcc1),
          TEST_ENTRY(bad_buffers_runtime_error), TEST_ENTRY(child_main_over_pipes),
          TEST_ENTRY(two_threads_build), TEST_ENTRY(reference_must_not_use_knobs))
