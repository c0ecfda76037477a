/* The builder's back ends: external compiler commands run as processes
 * (diagnostics, time limits, compiler identity, target checks, several at
 * once) and libtcc from several threads at once. Fake compilers are small
 * shell scripts that answer the probes and then sleep, fail or hand over
 * to the real cc. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include "builder/cc.h"
#include "builder/codegen.h"
#include "builder/fsutil.h"
#include "builder/tcc.h"
#include "common/rng.h"
#include "common/wire.h"
#include "runner/measure.h"
#include "common/target.h"
#include "tests/test.h"
#include "tests/watch.h"
#include "tests/unit/build_util.h"

/* A kernel and its reference over 1000 floats: out = 2*in + 1. */
static const char *axpb_src =
    "void k(float *out, const float *in) { for (int i = 0; i < N; i++) out[i] = 2 * in[i] + B; }\n"
    "void k_ref(float *out, const float *in) {\n"
    "  for (int i = 0; i < N; i++) out[i] = in[i] * 2 + B;\n"
    "}\n";

/* Runs an artifact of axpb_src and checks it against its reference and,
 * for b >= 0, that it was built with B = b. */
static void run_axpb_b(const uint8_t *so, size_t len, int b_value) {
  Ktune__RunJob job = KTUNE__RUN_JOB__INIT;
  Ktune__Timing tm = KTUNE__TIMING__INIT;
  job.timing = &tm;
  Ktune__Buffer b[2] = {KTUNE__BUFFER__INIT, KTUNE__BUFFER__INIT};
  Ktune__Buffer *bp[2] = {&b[0], &b[1]};
  b[0].type = b[1].type = "float";
  b[0].count = b[1].count = 1000;
  b[0].output = 1;
  job.artifact.data = (uint8_t *)so;
  job.artifact.len = len;
  job.entry = "k";
  job.reference = "k_ref";
  job.buffers = bp;
  job.n_buffers = 2;
  tm.number = 1;
  tm.repeat = 2;
  job.check = 1;
  job.rtol = 1e-6;
  job.atol = 1e-6;
  job.job_id = 1;
  job.seed = 5;
  char dir[] = "/tmp/ktune-test-axpb-XXXXXX", path[64];
  ASSERT_NOT_NULL(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/job-1.out", dir);
  Ktune__RunResult res;
  measure_opts o = MEASURE_OPTS_INIT;
  o.dump_dir = dir;
  ASSERT_EQ_INT(measure_job(&job, &o, &res), 0);
  if (strcmp(wire_status_name(res.status), "ok") != 0) TEST_FAIL("%s: %s", wire_status_name(res.status), res.error);
  measure_result_clear(&res);
  float *out = (float *)bu_read_text(path), in[1000];
  ASSERT_NOT_NULL(out);
  ASSERT_EQ_INT(rng_fill_buffer("float", in, 1000, 5, 1), 0);
  for (int i = 0; b_value >= 0 && i < 1000; i++) ASSERT_EQ_DBL(out[i], 2 * in[i] + b_value, 1e-6);
  free(out);
  unlink(path);
  rmdir(dir);
}

static void run_axpb(const uint8_t *so, size_t len) { run_axpb_b(so, len, 1); }

/* axpb with constant N and knob B. */
static void axpb_job_nb(bu_job *j, uint64_t id, const char *compiler, int64_t n, int64_t b) {
  bu_job_init(j, id, "axpb", axpb_src, compiler);
  bu_job_define(j, "N", n);
  bu_job_define(j, "B", b);
  j->job.knobs = 1;
}

static void axpb_job(bu_job *j, uint64_t id, const char *compiler) {
  axpb_job_nb(j, id, compiler, 1000, 1);
}

/* A private TMPDIR, so that leftovers of a build are visible. */
static void private_tmpdir(char *dir, size_t len) {
  snprintf(dir, len, "/tmp/ktune-test-cc-XXXXXX");
  ASSERT_NOT_NULL(mkdtemp(dir));
  ASSERT_EQ_INT(setenv("TMPDIR", dir, 1), 0);
}

/* Entries in dir whose name starts with prefix. */
static int count_entries(const char *dir, const char *prefix) {
  DIR *d = opendir(dir);
  ASSERT_NOT_NULL(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) n++;
  closedir(d);
  return n;
}

/* Writes DIR/NAME: a fake compiler that answers --version (9.8.7) and
 * -dumpmachine, then runs body. */
static void fake_cc_version(char *path, size_t len, const char *dir, const char *name,
                            const char *version, const char *machine, const char *body) {
  snprintf(path, len, "%s/%s", dir, name);
  char text[4096];
  snprintf(text, sizeof text,
           "#!/bin/sh\n"
           "for a in \"$@\"; do\n"
           "  case \"$a\" in\n"
           "    --version) echo \"fakecc (Test Build 1.2) %s\"; echo 'Copyright nobody'; exit 0;;\n"
           "    -dumpmachine) echo '%s'; exit 0;;\n"
           "  esac\n"
           "done\n"
           "%s\n",
           version, machine, body);
  bu_write_script(path, text);
}

static void fake_cc(char *path, size_t len, const char *dir, const char *name,
                    const char *machine, const char *body) {
  fake_cc_version(path, len, dir, name, "9.8.7", machine, body);
}

/* Live processes whose working folder is below dir: a compile's, since
 * it runs in its work folder under the private TMPDIR. Compilers cannot
 * write a pid file anywhere else. */
static int procs_in(const char *dir) {
  DIR *d = opendir("/proc");
  ASSERT_NOT_NULL(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    char link[300], cwd[4096];
    snprintf(link, sizeof link, "/proc/%s/cwd", e->d_name);
    ssize_t len = readlink(link, cwd, sizeof cwd - 1);
    if (len <= 0) continue; /* not a process, or a zombie */
    cwd[len] = '\0';
    n += strncmp(cwd, dir, strlen(dir)) == 0 && atoi(e->d_name) != getpid();
  }
  closedir(d);
  return n;
}

static int wait_procs_in(const char *dir, int at_least, int at_most, int ms) {
  int n = procs_in(dir);
  for (int i = 0; i < ms / 10 && (n < at_least || n > at_most); i++) {
    usleep(10000);
    n = procs_in(dir);
  }
  return n;
}

static char *first_line_of(const char *cmd) {
  FILE *p = popen(cmd, "r");
  ASSERT_NOT_NULL(p);
  static char line[256];
  if (!fgets(line, sizeof line, p)) line[0] = '\0';
  pclose(p);
  line[strcspn(line, "\n")] = '\0';
  return line;
}

TEST(split_words) {
  static const struct {
    const char *in;
    int n;
    const char *words[5];
  } ok[] = {
      {"gcc", 1, {"gcc"}},
      {"  gcc   -O3\t-march=native \n", 3, {"gcc", "-O3", "-march=native"}},
      {"clang '-DX=a b' \"-DY=c d\"", 3, {"clang", "-DX=a b", "-DY=c d"}},
      {"cc -DS=\\\"q\\\" a\\ b", 3, {"cc", "-DS=\"q\"", "a b"}},
      {"cc 'it''s' \"\"", 3, {"cc", "its", ""}},
      {"cc -I\\", 2, {"cc", "-I\\"}},
      {"cc '$HOME' `x` ;|&", 4, {"cc", "$HOME", "`x`", ";|&"}},
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    char **argv, err[256];
    int n = cc_split(ok[i].in, &argv, err, sizeof err);
    if (n != ok[i].n) TEST_FAIL("'%s': %d words (%s), want %d", ok[i].in, n, err, ok[i].n);
    for (int w = 0; w < n; w++) ASSERT_EQ_STR(argv[w], ok[i].words[w]);
    ASSERT_NULL(argv[n]);
    cc_argv_free(argv);
  }
  static const struct {
    const char *in, *msg;
  } bad[] = {{"", "empty"}, {"   ", "empty"}, {"gcc '-O3", "unclosed ' quote"},
             {"gcc \"-O3", "unclosed \" quote"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char **argv, err[256] = "";
    ASSERT_EQ_INT(cc_split(bad[i].in, &argv, err, sizeof err), -EINVAL);
    ASSERT_NULL(argv);
    ASSERT_CONTAINS(err, bad[i].msg);
  }
  char many[2000] = "cc";
  for (int i = 0; i < 300; i++) strcat(many, " x");
  char **argv, err[256];
  ASSERT_EQ_INT(cc_split(many, &argv, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "more than 256 words");
}

TEST(arch_and_version_parsing) {
  static const char *const arch[][2] = {
      {"x86_64-linux-gnu", "x86_64"},        {"x86_64-pc-linux-gnu\n", "x86_64"},
      {"aarch64-linux-gnu", "aarch64"},      {"aarch64-unknown-linux-gnu", "aarch64"},
      {"arm64-apple-darwin23", "aarch64"},   {"riscv64-linux-gnu", "riscv64"},
      {"arm-linux-gnueabihf", "arm"},        {"armv7l", "arm"},
      {"i686-linux-gnu", "i686"},            {"i386", "i686"},
      {"amd64", "x86_64"},                   {"x86_64", "x86_64"},
      {"powerpc64le-linux-gnu", "ppc64le"},  {"", ""}};
  for (size_t i = 0; i < sizeof arch / sizeof arch[0]; i++) {
    char out[64];
    target_arch(arch[i][0], out, sizeof out);
    ASSERT_EQ_STR(out, arch[i][1]);
  }
  static const char *const ver[][2] = {
      {"gcc (Debian 12.2.0-14) 12.2.0\nCopyright (C) 2022", "12.2.0"},
      {"Debian clang version 14.0.6\nTarget: x86_64-pc-linux-gnu", "14.0.6"},
      {"aarch64-linux-gnu-gcc (Debian 12.2.0-14) 12.2.0", "12.2.0"},
      {"Apple clang version 15.0.0 (clang-1500.1.0.2.5)", "15.0.0"},
      {"tcc version 0.9.27 (x86_64 Linux)", "0.9.27"},
      {"mycc nightly build", "mycc nightly build"},
      {"", ""}};
  for (size_t i = 0; i < sizeof ver / sizeof ver[0]; i++) {
    char out[64];
    cc_version(ver[i][0], out, sizeof out);
    ASSERT_EQ_STR(out, ver[i][1]);
  }
}

TEST(only_compilers_and_codegen_flags_run) {
  static const char *const ok[] = {
      "gcc", "cc -O3 -march=native", "clang -O2 --target=aarch64-linux-gnu",
      "clang -target aarch64-linux-gnu -O2", "aarch64-linux-gnu-gcc -O2 -mcpu=cortex-a72",
      "gcc-12 -Ofast -ffast-math -funroll-loops -DX=1 -UY -std=gnu11 -Wall -g -fno-math-errno",
      "riscv64-linux-gnu-gcc -march=rv64gcv -mabi=lp64d", "clang-14 -O2"};
  static const struct {
    const char *cmd, *msg;
  } bad[] = {
      {"sh -c 'touch /tmp/x'", "does not run 'sh'"},
      {"/bin/gcc -O2", "does not run '/bin/gcc'"},
      {"/tmp/evil/x-gcc", "does not run '/tmp/evil/x-gcc'"},
      {"python3 -c 1", "does not run 'python3'"},
      {"gcc -wrapper sh,-c,id", "does not pass '-wrapper'"},
      {"gcc -fplugin=/tmp/p.so", "does not pass '-fplugin=/tmp/p.so'"},
      {"gcc -B/tmp/evil", "does not pass '-B/tmp/evil'"},
      {"gcc @/tmp/args", "does not pass '@/tmp/args'"},
      {"gcc -include /etc/passwd", "does not pass '-include'"},
      {"gcc -MD -MF /tmp/x", "does not pass '-MD'"},
      {"gcc -Wl,-T,/tmp/x", "does not pass '-Wl,-T,/tmp/x'"},
      {"gcc -specs=/tmp/s", "does not pass '-specs=/tmp/s'"},
      {"gcc /etc/shadow", "does not pass '/etc/shadow'"},
      {"gcc -o /tmp/x", "does not pass '-o'"},
      {"clang -Xclang -load -Xclang /tmp/p.so", "does not pass '-Xclang'"},
      {"clang -mllvm -x", "does not pass '-mllvm'"},
      {"gcc -fdump-tree-all=/tmp/d", "does not pass '-fdump-tree-all=/tmp/d'"},
      {"gcc -fprofile-use=/etc/passwd", "does not pass '-fprofile-use=/etc/passwd'"},
      {"clang -fuse-ld=/tmp/evil", "does not pass '-fuse-ld=/tmp/evil'"},
      {"gcc -wrapper", "does not pass '-wrapper'"},
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    char **argv, err[1024] = "";
    ASSERT(cc_split(ok[i], &argv, err, sizeof err) > 0);
    if (cc_check(NULL, argv, err, sizeof err) != 0) TEST_FAIL("'%s' refused: %s", ok[i], err);
    cc_argv_free(argv);
  }
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char **argv, err[1024] = "";
    ASSERT(cc_split(bad[i].cmd, &argv, err, sizeof err) > 0);
    if (cc_check(NULL, argv, err, sizeof err) != -EPERM) TEST_FAIL("'%s' allowed", bad[i].cmd);
    ASSERT_CONTAINS(err, bad[i].msg);
    cc_policy any = {NULL, 0, 1};
    ASSERT_EQ_INT(cc_check(&any, argv, err, sizeof err), 0);
    cc_argv_free(argv);
  }
  /* An operator's own patterns; '*' does not cross '/'. */
  static const char *const mine[] = {"/opt/cross/bin/*-gcc"};
  cc_policy p = {mine, 1, 0};
  char *w1[] = {"/opt/cross/bin/arm-none-eabi-gcc", NULL};
  char *w2[] = {"/opt/cross/bin/sub/x-gcc", NULL};
  char *w3[] = {"gcc", NULL};
  char err[1024];
  ASSERT_EQ_INT(cc_check(&p, w1, err, sizeof err), 0);
  ASSERT_EQ_INT(cc_check(&p, w2, err, sizeof err), -EPERM);
  ASSERT_EQ_INT(cc_check(&p, w3, err, sizeof err), -EPERM);
  ASSERT_CONTAINS(err, "it runs /opt/cross/bin/*-gcc");

  /* A refused command never runs, not even for --version. */
  char tmp[64], marker[128], cmd[300];
  private_tmpdir(tmp, sizeof tmp);
  snprintf(marker, sizeof marker, "%s/ran", tmp);
  snprintf(cmd, sizeof cmd, "gcc -wrapper /bin/sh,-c,'touch %s' -O2", marker);
  bu_job j;
  axpb_job(&j, 9, cmd);
  bu_result r;
  bu_build(&j.job, &r);
  ASSERT_EQ_STR(r.status, "UNSUPPORTED");
  ASSERT_CONTAINS(r.error, "does not pass '-wrapper'");
  ASSERT(access(marker, F_OK) != 0);
  bu_result_free(&r);
}

TEST(gcc_builds_and_runs) {
  char tmp[64];
  private_tmpdir(tmp, sizeof tmp);
  bu_job j;
  axpb_job(&j, 11, "cc -O2");
  bu_result r;
  bu_build(&j.job, &r);
  if (strcmp(r.status, "ok") != 0) TEST_FAIL("%s: %s", r.status, r.error);
  ASSERT_EQ_STR(r.error, "");
  ASSERT(r.solen > 64 && memcmp(r.so, "\177ELF", 4) == 0);
  ASSERT_GT_DBL(r.build_s, 0);
  /* The identity names the compiler, its version and the flags. */
  char want[256];
  snprintf(want, sizeof want, "cc %s -O2", first_line_of("cc -dumpfullversion"));
  ASSERT_EQ_STR(r.compiler_id, want);
  run_axpb(r.so, r.solen);
  bu_result_free(&r);
  /* The private folder is gone. */
  ASSERT_EQ_INT(count_entries(tmp, JAIL_PREFIX), 0);
  rmdir(tmp);
}

TEST(native_is_spelled_out) {
  bu_job j;
  axpb_job(&j, 12, "gcc -O1 -march=native");
  bu_result r;
  bu_build(&j.job, &r);
  if (strcmp(r.status, "ok") != 0) TEST_FAIL("%s: %s", r.status, r.error);
  /* A builder's "native" is its own CPU: the trial records which. */
  ASSERT_CONTAINS(r.compiler_id, "gcc ");
  ASSERT_CONTAINS(r.compiler_id, " -O1 -march=native (native=");
  ASSERT(strstr(r.compiler_id, "(native=native)") == NULL);
  run_axpb(r.so, r.solen);
  bu_result_free(&r);
}

TEST(compile_error_has_diagnostics) {
  char tmp[64];
  private_tmpdir(tmp, sizeof tmp);
  bu_job j;
  bu_job_init(&j, 13, "broken", "void k(float *out) {\n  foo bar;\n}\n", "gcc -O2");
  bu_job_define(&j, "N", 4);
  bu_result r;
  bu_build(&j.job, &r);
  ASSERT_EQ_STR(r.status, "COMPILE_ERROR");
  /* Positions point into the template as written (#line), in plain ASCII. */
  ASSERT_CONTAINS(r.error, "broken.c:2:");
  ASSERT_CONTAINS(r.error, "error: unknown type name 'foo'");
  ASSERT_NULL(r.so);
  ASSERT_EQ_INT(r.solen, 0);
  bu_result_free(&r);

  /* A flood of errors is cut to the first lines. */
  char src[20000] = "";
  for (int i = 0; i < 200; i++) strcat(src, "int f(void) { return undeclared_name; }\n");
  bu_job_init(&j, 14, "flood", src, "cc");
  bu_build(&j.job, &r);
  ASSERT_EQ_STR(r.status, "COMPILE_ERROR");
  int lines = 1;
  for (const char *c = r.error; *c; c++) lines += *c == '\n';
  ASSERT(lines <= 20);
  ASSERT(strlen(r.error) <= 2000);
  ASSERT_CONTAINS(r.error, "flood.c:1:");
  bu_result_free(&r);

  /* A flag the compiler refuses is a compile error too. */
  axpb_job(&j, 15, "gcc -fno-such-flag-at-all");
  bu_build(&j.job, &r);
  ASSERT_EQ_STR(r.status, "COMPILE_ERROR");
  ASSERT_CONTAINS(r.error, "-fno-such-flag-at-all");
  bu_result_free(&r);
  ASSERT_EQ_INT(count_entries(tmp, JAIL_PREFIX), 0);
  rmdir(tmp);
}

TEST(timeout_kills_the_compiler_group) {
  char tmp[64], cc[256];
  private_tmpdir(tmp, sizeof tmp);
  /* Like gcc it starts a helper (cc1) and waits for it. */
  fake_cc(cc, sizeof cc, tmp, "sleepy-cc", "x86_64-linux-gnu", "sleep 60 &\nwait\n");
  bu_job j;
  axpb_job(&j, 16, cc);
  j.job.timeout_ms = 300;
  bu_result r;
  uint64_t t0 = uv_hrtime();
  bu_build(&j.job, &r);
  double wall = (double)(uv_hrtime() - t0) / 1e9;
  ASSERT_EQ_STR(r.status, "BUILD_TIMEOUT");
  ASSERT_CONTAINS(r.error, "longer than 300 ms");
  ASSERT(wall < 5);
  /* The script is reaped by the builder; the sleep it started was in its
   * process group and is gone as well. */
  ASSERT_EQ_INT(wait_procs_in(tmp, 0, 0, 2000), 0);
  ASSERT_EQ_STR(r.compiler_id, "sleepy-cc 9.8.7");
  bu_result_free(&r);
  ASSERT_EQ_INT(count_entries(tmp, JAIL_PREFIX), 0);
}

TEST(target_arch_mismatch_refused) {
  char tmp[64], cc[256];
  private_tmpdir(tmp, sizeof tmp);
  fake_cc(cc, sizeof cc, tmp, "arm-cc", "aarch64-linux-gnu", "exec cc \"$@\"");
  bu_job j;
  axpb_job(&j, 17, cc);
  j.job.target_arch = "x86_64";
  bu_result r;
  bu_build(&j.job, &r);
  ASSERT_EQ_STR(r.status, "UNSUPPORTED");
  ASSERT_CONTAINS(r.error, "target mismatch");
  ASSERT_CONTAINS(r.error, "builds for aarch64 (aarch64-linux-gnu) but the runners need x86_64");
  bu_result_free(&r);
  /* Names the same CPU another way: fine. */
  j.job.target_arch = "arm64";
  bu_build(&j.job, &r);
  ASSERT_EQ_STR(r.status, "ok");
  bu_result_free(&r);

  /* A compiler that will not say what it targets is refused only when
   * the session names an architecture. */
  char mute[300];
  snprintf(mute, sizeof mute, "%s/mute-cc", tmp);
  bu_write_script(mute, "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = -dumpmachine ] && exit 1; done\n"
                        "exec cc \"$@\"\n");
  axpb_job(&j, 18, mute);
  j.job.target_arch = "x86_64";
  bu_build(&j.job, &r);
  ASSERT_EQ_STR(r.status, "COMPILE_ERROR");
  ASSERT_CONTAINS(r.error, "cannot tell which architecture");
  bu_result_free(&r);
  j.job.target_arch = "";
  bu_build(&j.job, &r);
  ASSERT_EQ_STR(r.status, "ok");
  bu_result_free(&r);

  /* tcc makes code for this machine only. */
  axpb_job(&j, 19, "tcc");
  j.job.target_arch = "riscv64";
  bu_build(&j.job, &r);
  ASSERT_EQ_STR(r.status, "UNSUPPORTED");
  ASSERT_CONTAINS(r.error, "target mismatch: tcc");
  bu_result_free(&r);

  /* A real cross compiler, when installed: its output is ARM code. */
  if (access("/usr/bin/aarch64-linux-gnu-gcc", X_OK) == 0) {
    axpb_job(&j, 20, "aarch64-linux-gnu-gcc -O2");
    j.job.target_arch = "aarch64";
    bu_build(&j.job, &r);
    if (strcmp(r.status, "ok") != 0) TEST_FAIL("%s: %s", r.status, r.error);
    ASSERT(r.solen > 20);
    ASSERT_EQ_INT(r.so[18] | (r.so[19] << 8), 183); /* e_machine EM_AARCH64 */
    ASSERT_CONTAINS(r.compiler_id, "aarch64-linux-gnu-gcc ");
    bu_result_free(&r);
    j.job.target_arch = "x86_64";
    bu_build(&j.job, &r);
    /* Not the candidate's fault: the tracker tries another builder. */
    ASSERT_EQ_STR(r.status, "UNSUPPORTED");
    ASSERT_CONTAINS(r.error, "builds for aarch64");
    bu_result_free(&r);
  }
}

TEST(version_probed_once_per_command) {
  char tmp[64], cc[256], cmd[300];
  private_tmpdir(tmp, sizeof tmp);
  /* Every run of --version answers another version (its pid): one
   * identity for all the builds means one probe. */
  fake_cc_version(cc, sizeof cc, tmp, "count-cc", "9.8.$$", "x86_64-linux-gnu",
                  "exec cc \"$@\"");
  snprintf(cmd, sizeof cmd, "%s -O1", cc);
  enum { n = 5 };
  bu_job j[n];
  Ktune__BuildJob *jp[n];
  for (int i = 0; i < n; i++) {
    axpb_job(&j[i], 30 + (uint64_t)i, cmd);
    jp[i] = &j[i].job;
  }
  bu_result r[n];
  bu_build_many(jp, n, r);
  for (int i = 0; i < n; i++) {
    if (strcmp(r[i].status, "ok") != 0) TEST_FAIL("%d: %s: %s", i, r[i].status, r[i].error);
    ASSERT_EQ_INT(strncmp(r[i].compiler_id, "count-cc 9.8.", 13), 0);
    ASSERT_CONTAINS(r[i].compiler_id, " -O1");
    ASSERT_EQ_STR(r[i].compiler_id, r[0].compiler_id);
  }
  for (int i = 0; i < n; i++) bu_result_free(&r[i]);
}

TEST(external_compiles_run_concurrently) {
  char tmp[64], cc[256];
  private_tmpdir(tmp, sizeof tmp);
  /* Each compile takes at least a second: four in a row would take four. */
  fake_cc(cc, sizeof cc, tmp, "slow-cc", "x86_64-linux-gnu", "sleep 1\nexec cc \"$@\"");
  enum { n = 4 };
  bu_job j[n];
  Ktune__BuildJob *jp[n];
  for (int i = 0; i < n; i++) {
    axpb_job(&j[i], 40 + (uint64_t)i, cc);
    j[i].job.timeout_ms = 20000;
    jp[i] = &j[i].job;
  }
  bu_result r[n];
  uint64_t t0 = uv_hrtime();
  bu_build_many(jp, n, r);
  double wall = (double)(uv_hrtime() - t0) / 1e9;
  for (int i = 0; i < n; i++) {
    if (strcmp(r[i].status, "ok") != 0) TEST_FAIL("%d: %s: %s", i, r[i].status, r[i].error);
    run_axpb(r[i].so, r[i].solen);
    bu_result_free(&r[i]);
  }
  if (wall >= 2.8) TEST_FAIL("4 one-second compiles took %.2f s: not concurrent", wall);
  ASSERT_EQ_INT(count_entries(tmp, JAIL_PREFIX), 0);
}

TEST(missing_compiler_and_bad_command) {
  bu_job j;
  bu_result r;
  axpb_job(&j, 50, "gcc-999 -O2");
  bu_build(&j.job, &r);
  ASSERT_EQ_STR(r.status, "UNSUPPORTED");
  ASSERT_CONTAINS(r.error, "cannot run 'gcc-999'");
  ASSERT_CONTAINS(r.error, "is the compiler installed on this builder?");
  ASSERT_EQ_STR(r.compiler_id, "gcc-999 -O2");
  bu_result_free(&r);

  axpb_job(&j, 51, "gcc '-O2");
  bu_build(&j.job, &r);
  ASSERT_EQ_STR(r.status, "COMPILE_ERROR");
  ASSERT_CONTAINS(r.error, "unclosed ' quote");
  bu_result_free(&r);

  /* A compiler that succeeds without writing the object. */
  char tmp[64], cc[256];
  private_tmpdir(tmp, sizeof tmp);
  fake_cc(cc, sizeof cc, tmp, "lazy-cc", "x86_64-linux-gnu", "echo done; exit 0");
  axpb_job(&j, 52, cc);
  bu_build(&j.job, &r);
  ASSERT_EQ_STR(r.status, "COMPILE_ERROR");
  ASSERT_CONTAINS(r.error, "left no usable out.so");
  bu_result_free(&r);

  /* One that dies by a signal, with no message. */
  fake_cc(cc, sizeof cc, tmp, "crash-cc", "x86_64-linux-gnu", "kill -SEGV $$");
  axpb_job(&j, 53, cc);
  bu_build(&j.job, &r);
  ASSERT_EQ_STR(r.status, "COMPILE_ERROR");
  ASSERT_CONTAINS(r.error, "killed by signal 11");
  bu_result_free(&r);

  /* A define that is not an identifier never reaches a compiler. */
  axpb_job(&j, 54, "cc");
  bu_job_define(&j, "A B", 1);
  bu_build(&j.job, &r);
  ASSERT_EQ_STR(r.status, "COMPILE_ERROR");
  ASSERT_CONTAINS(r.error, "not a C identifier");
  bu_result_free(&r);
}

typedef struct {
  int done;
  char status[32];
} close_probe;

static void on_cancelled(void *data, const cc_result *r) {
  close_probe *c = data;
  c->done++;
  snprintf(c->status, sizeof c->status, "%s", r->status);
}

TEST(close_cancels_running_compile) {
  char tmp[64], cc[256];
  private_tmpdir(tmp, sizeof tmp);
  fake_cc(cc, sizeof cc, tmp, "forever-cc", "x86_64-linux-gnu", "sleep 60\n");
  uv_loop_t loop;
  ASSERT_EQ_INT(uv_loop_init(&loop), 0);
  cc_ctx *c;
  cc_policy any = {NULL, 0, 1};
  ASSERT_EQ_INT(cc_new(&loop, &any, &c), 0);
  close_probe cp = {0};
  ASSERT_EQ_INT(cc_build(c, cc, "int x;", NULL, 0, on_cancelled, &cp), 0);
  /* The script and its sleep, in the work folder. */
  for (int i = 0; i < 500 && procs_in(tmp) < 2; i++) uv_run(&loop, UV_RUN_NOWAIT), usleep(10000);
  ASSERT_EQ_INT(procs_in(tmp), 2);
  ASSERT_EQ_INT(cp.done, 0);
  cc_close(c);
  ASSERT_EQ_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ASSERT_EQ_INT(cp.done, 1);
  ASSERT_EQ_STR(cp.status, "CANCELLED");
  ASSERT_EQ_INT(wait_procs_in(tmp, 0, 0, 2000), 0);
  ASSERT_EQ_INT(uv_loop_close(&loop), 0);
  ASSERT_EQ_INT(count_entries(tmp, JAIL_PREFIX), 0);
}

/* tcc from several threads at once: libtcc's global state is serialised
 * by the back end, so every artifact comes out whole and correct. */
typedef struct {
  int b;
  int ok;
  uint8_t *so[8];
  size_t len[8];
} tcc_thread_arg;

static void *tcc_thread(void *p) {
  tcc_thread_arg *a = p;
  codegen_define defs[] = {{"N", 1000}, {"B", a->b}};
  char *src = codegen_source("axpb", axpb_src, defs, 2);
  a->ok = src != NULL;
  for (int i = 0; i < 8 && a->ok; i++) {
    char diag[256];
    a->ok = tcc_build_so(src, &a->so[i], &a->len[i], diag, sizeof diag) == 0;
  }
  free(src);
  return NULL;
}

TEST(tcc_threads_build_at_once) {
  uint8_t *so;
  size_t len;
  char diag[256];
  ASSERT_EQ_INT(tcc_build_so("int warm;", &so, &len, diag, sizeof diag), 0); /* lazy setup */
  free(so);
  enum { n = 4 };
  tcc_thread_arg a[n];
  pthread_t t[n];
  memset(a, 0, sizeof a);
  for (int i = 0; i < n; i++) {
    a[i].b = i + 1;
    ASSERT_EQ_INT(pthread_create(&t[i], NULL, tcc_thread, &a[i]), 0);
  }
  for (int i = 0; i < n; i++) ASSERT_EQ_INT(pthread_join(t[i], NULL), 0);
  for (int i = 0; i < n; i++) {
    ASSERT(a[i].ok);
    /* tcc leaves padding bytes uninitialised, so artifacts are compared
     * by what they compute: each thread's B must be in each of its own. */
    for (int k = 0; k < 8; k++) {
      ASSERT_EQ_INT(a[i].len[k], a[i].len[0]);
      run_axpb_b(a[i].so[k], a[i].len[k], a[i].b);
      free(a[i].so[k]);
    }
  }
}

TEST(tcc_and_cc_jobs_mixed_on_one_loop) {
  enum { n = 8 };
  bu_job j[n];
  Ktune__BuildJob *jp[n];
  for (int i = 0; i < n; i++) {
    axpb_job(&j[i], 60 + (uint64_t)i, i % 2 ? "cc -O1" : "tcc");
    jp[i] = &j[i].job;
  }
  bu_result r[n];
  bu_build_many(jp, n, r);
  for (int i = 0; i < n; i++) {
    if (strcmp(r[i].status, "ok") != 0) TEST_FAIL("%d: %s: %s", i, r[i].status, r[i].error);
    ASSERT_CONTAINS(r[i].compiler_id, i % 2 ? "cc " : "tcc 0.9.27");
    run_axpb(r[i].so, r[i].solen);
    bu_result_free(&r[i]);
  }
}

/* The error text of a build must hold no bytes of the secret: neither
 * the marker nor a long piece of the first line. */
static void assert_no_secret(const char *error, const char *secret) {
  char piece[16];
  snprintf(piece, sizeof piece, "%s", secret);
  if (strstr(error, secret) || (strlen(piece) >= 12 && strstr(error, piece)))
    TEST_FAIL("the build error quotes the secret: %s", error);
}

/* Builds a template that includes path (and, with gcc, assembles it into
 * the object) with each compiler: a compile error that says the file
 * cannot be read, with none of its bytes. */
static void include_refused(const char *path, const char *secret) {
  static const char *const compilers[] = {"tcc", "gcc -O2"};
  char quoted[600], angled[600], incbin[700];
  snprintf(quoted, sizeof quoted, "#include \"%s\"\nvoid k(void) {}\n", path);
  snprintf(angled, sizeof angled, "#include <%s>\nvoid k(void) {}\n", path);
  snprintf(incbin, sizeof incbin, "__asm__(\".incbin \\\"%s\\\"\");\nvoid k(void) {}\n", path);
  const char *const srcs[] = {quoted, angled, incbin};
  for (size_t c = 0; c < 2; c++)
    for (size_t i = 0; i < 3; i++) {
      if (i == 2 && c == 0) continue; /* tcc's assembler has no .incbin */
      bu_job j;
      bu_job_init(&j, 80 + i, "leak", srcs[i], compilers[c]);
      bu_result r;
      bu_build(&j.job, &r);
      if (strcmp(r.status, "COMPILE_ERROR") != 0)
        TEST_FAIL("%s, source %zu: %s: %s", compilers[c], i, r.status, r.error);
      assert_no_secret(r.error, secret);
      if (!strstr(r.error, "Permission denied") && !strstr(r.error, "not found") &&
          !strstr(r.error, "No such file"))
        TEST_FAIL("%s, source %zu: the error does not say the file is unreadable: %s",
                  compilers[c], i, r.error);
      bu_result_free(&r);
    }
}

TEST(templates_cannot_read_secrets) {
  char tmp[64];
  private_tmpdir(tmp, sizeof tmp);
  /* A token file elsewhere under /tmp, readable by the builder's user. */
  char dir[] = "/tmp/ktune-test-secret-XXXXXX", path[128], secret[64];
  ASSERT_NOT_NULL(mkdtemp(dir));
  uint64_t a = uv_hrtime() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
  snprintf(secret, sizeof secret, "KTUNESECRET%016llx%08x", (unsigned long long)a,
           (unsigned)rand());
  snprintf(path, sizeof path, "%s/tokens", dir);
  char text[256];
  snprintf(text, sizeof text, "builder b1 %s\n", secret);
  ASSERT_EQ_INT(fsutil_write_file(path, text, strlen(text)), 0);
  include_refused(path, secret);
  unlink(path);
  rmdir(dir);

  /* /etc/shadow, when this user can read it (root can). */
  char *shadow = bu_read_text("/etc/shadow");
  if (shadow && strlen(shadow) >= 12) {
    shadow[strcspn(shadow, "\n")] = '\0';
    include_refused("/etc/shadow", shadow);
  }
  free(shadow);
  ASSERT_EQ_INT(count_entries(tmp, JAIL_PREFIX), 0);
}

TEST(compilers_are_confined) {
  char tmp[64], cc[256], body[512], escape[128];
  private_tmpdir(tmp, sizeof tmp);
  snprintf(escape, sizeof escape, "%s/escape", tmp);
  /* It reports its address-space limit and tries to write outside its
   * work folder. */
  snprintf(body, sizeof body, "ulimit -v >&2\necho x > '%s'\nexit 1\n", escape);
  fake_cc(cc, sizeof cc, tmp, "nosy-cc", "x86_64-linux-gnu", body);
  bu_job j;
  axpb_job(&j, 90, cc);
  bu_result r;
  bu_build(&j.job, &r);
  ASSERT_EQ_STR(r.status, "COMPILE_ERROR");
  ASSERT_CONTAINS(r.error, "1048576"); /* 1 GiB in KiB: the default */
  ASSERT_CONTAINS(r.error, "Permission denied");
  ASSERT(access(escape, F_OK) != 0);
  bu_result_free(&r);
  ASSERT_EQ_INT(count_entries(tmp, JAIL_PREFIX), 0);
}

TEST(stale_work_folders_removed) {
  char tmp[64], dead[160], live[160], other[160];
  private_tmpdir(tmp, sizeof tmp);
  pid_t gone = fork();
  if (gone == 0) _exit(0);
  ASSERT(gone > 0);
  ASSERT_EQ_INT(waitpid(gone, NULL, 0), gone);
  snprintf(dead, sizeof dead, "%s/%s-%d-abc123", tmp, JAIL_PREFIX, (int)gone);
  snprintf(live, sizeof live, "%s/%s-%d-def456", tmp, JAIL_PREFIX, (int)getpid());
  snprintf(other, sizeof other, "%s/unrelated-%d-x", tmp, (int)gone);
  ASSERT_EQ_INT(mkdir(dead, 0700), 0);
  ASSERT_EQ_INT(mkdir(live, 0700), 0);
  ASSERT_EQ_INT(mkdir(other, 0700), 0);
  char inside[200];
  snprintf(inside, sizeof inside, "%s/kernel.c", dead);
  ASSERT_EQ_INT(fsutil_write_file(inside, "x", 1), 0);
  /* Starting a back end (as the builder does at start) clears what dead
   * builders left, and only that. */
  bu_job j;
  axpb_job(&j, 91, "tcc");
  bu_result r;
  bu_build(&j.job, &r);
  ASSERT_EQ_STR(r.status, "ok");
  bu_result_free(&r);
  ASSERT(access(dead, F_OK) != 0);
  ASSERT_EQ_INT(access(live, F_OK), 0);
  ASSERT_EQ_INT(access(other, F_OK), 0);
  rmdir(live);
  rmdir(other);
}

/* A repeat is answered from the cache: the same bytes, identity and
 * build time, and no compiler runs. Any change to what decides the bytes
 * (flags, a knob, a constant, the target) misses, and failures are
 * compiled again. */
TEST(cache_answers_repeats_without_compiling) {
  char tmp[64], sleepy[256], host[65];
  private_tmpdir(tmp, sizeof tmp);
  ASSERT_EQ_STR(WATCH_PREFIX, JAIL_PREFIX "-"); /* what the watch counts */
  int w = watch_work_folders(tmp);
  struct utsname u;
  ASSERT_EQ_INT(uname(&u), 0);
  target_arch(u.machine, host, sizeof host);
  static const struct {
    const char *compiler;
    int64_t n, b;
    int named_target;   /* the job names the host's architecture */
    const char *status, *cache;
    int same_as;        /* the step whose result a hit repeats; -1 none */
  } steps[] = {
      {"cc -O2", 1000, 1, 0, "ok", "miss", -1},
      {"cc -O2", 1000, 1, 0, "ok", "hit", 0},
      {"cc -O3", 1000, 1, 0, "ok", "miss", -1}, /* the flags */
      {"cc -O2", 1000, 2, 0, "ok", "miss", -1}, /* a knob */
      {"cc -O2", 999, 1, 0, "ok", "miss", -1},  /* a constant */
      {"cc -O2", 1000, 1, 1, "ok", "miss", -1}, /* the target */
      {"cc -O2", 1000, 1, 1, "ok", "hit", 5},
      {"tcc", 1000, 1, 0, "ok", "miss", -1},
      {"tcc", 1000, 1, 0, "ok", "hit", 7},
      {"cc -O3", 1000, 1, 0, "ok", "hit", 2},
      {"cc -O2", 1000, 2, 0, "ok", "hit", 3},
  };
  enum { NSTEPS = sizeof steps / sizeof steps[0] };
  bu_backend be;
  bu_open(&be, 64u << 20);
  bu_result r[NSTEPS];
  for (int i = 0; i < NSTEPS; i++) {
    bu_job j;
    axpb_job_nb(&j, 100 + (uint64_t)i, steps[i].compiler, steps[i].n, steps[i].b);
    if (steps[i].named_target) j.job.target_arch = host;
    Ktune__BuildJob *jp = &j.job;
    uint64_t c0 = backend_compiles(be.be);
    bu_run_many(&be, &jp, 1, &r[i]);
    if (strcmp(r[i].status, steps[i].status) != 0)
      TEST_FAIL("step %d: %s: %s", i, r[i].status, r[i].error);
    if (strcmp(r[i].cache, steps[i].cache) != 0)
      TEST_FAIL("step %d (%s): cache '%s', want '%s'", i, steps[i].compiler, r[i].cache,
                steps[i].cache);
    /* An external compile makes a folder; libtcc's share one. */
    int made = (int)(backend_compiles(be.be) - c0), folders = work_folders_made(w);
    if (strcmp(steps[i].compiler, "tcc") != 0 && folders != made)
      TEST_FAIL("step %d (%s): %d compile(s) counted, %d folder(s) made", i, steps[i].compiler,
                made, folders);
    if (made != (strcmp(steps[i].cache, "miss") == 0))
      TEST_FAIL("step %d (%s, cache %s): %d compile(s)", i, steps[i].compiler, r[i].cache, made);
    int s = steps[i].same_as;
    if (s >= 0) {
      ASSERT_EQ_INT(r[i].solen, r[s].solen);
      ASSERT_EQ_INT(memcmp(r[i].so, r[s].so, r[s].solen), 0);
      ASSERT_EQ_STR(r[i].compiler_id, r[s].compiler_id);
      ASSERT_EQ_DBL(r[i].build_s, r[s].build_s, 0);
    }
    if (steps[i].n == 1000) run_axpb_b(r[i].so, r[i].solen, (int)steps[i].b);
  }
  ASSERT(strcmp(r[2].compiler_id, r[0].compiler_id) != 0);
  ASSERT_CONTAINS(r[7].compiler_id, "tcc 0.9.27");

  /* A target this compiler does not make is refused, not answered with
   * the x86 bytes that are there. */
  bu_job j;
  bu_result bad;
  axpb_job(&j, 200, "cc -O2");
  j.job.target_arch = strcmp(host, "aarch64") == 0 ? "x86_64" : "aarch64";
  Ktune__BuildJob *jp = &j.job;
  bu_run_many(&be, &jp, 1, &bad);
  ASSERT_EQ_STR(bad.status, "UNSUPPORTED");
  ASSERT_CONTAINS(bad.error, "target mismatch");
  ASSERT_EQ_INT(bad.solen, 0);
  bu_result_free(&bad);

  /* Failures are not kept: each repeat compiles. */
  fake_cc(sleepy, sizeof sleepy, tmp, "sleepy-cc", "x86_64-linux-gnu", "sleep 60");
  for (int i = 0; i < 2; i++) {
    bu_job_init(&j, 210 + (uint64_t)i, "broken", "void k(void) { foo bar; }\n", "cc -O2");
    bu_run_many(&be, &jp, 1, &bad);
    ASSERT_EQ_STR(bad.status, "COMPILE_ERROR");
    ASSERT_EQ_STR(bad.cache, "miss");
    ASSERT_EQ_INT(work_folders_made(w), 1);
    bu_result_free(&bad);
    axpb_job(&j, 220 + (uint64_t)i, sleepy);
    j.job.timeout_ms = 300;
    bu_run_many(&be, &jp, 1, &bad);
    ASSERT_EQ_STR(bad.status, "BUILD_TIMEOUT");
    ASSERT_EQ_INT(work_folders_made(w), 1);
    bu_result_free(&bad);
  }
  buildcache_stats st;
  backend_cache_stats(be.be, &st);
  ASSERT_EQ_U64(st.hits, 5);
  ASSERT_EQ_U64(st.misses, 6 + 4);
  ASSERT_EQ_U64(st.shared, 0);
  ASSERT_EQ_INT(st.entries, 6);
  ASSERT_EQ_INT(st.max_bytes, 64u << 20);
  for (int i = 0; i < NSTEPS; i++) bu_result_free(&r[i]);
  bu_close(&be);
  close(w);
  ASSERT_EQ_INT(count_entries(tmp, JAIL_PREFIX), 0);
}

/* Identical builds at once (one config for two keys) compile once: the
 * others wait and share the outcome, a failure too. One with another
 * time limit does not wait: its outcome could differ. */
TEST(identical_builds_under_way_compile_once) {
  char tmp[64], slow[256], failing[256];
  private_tmpdir(tmp, sizeof tmp);
  int w = watch_work_folders(tmp);
  fake_cc(slow, sizeof slow, tmp, "slow-cc", "x86_64-linux-gnu", "sleep 1\nexec cc \"$@\"");
  enum { n = 5 };
  bu_job j[n];
  Ktune__BuildJob *jp[n];
  for (int i = 0; i < n; i++) {
    axpb_job(&j[i], 300 + (uint64_t)i, slow);
    j[i].job.timeout_ms = i < n - 1 ? 20000 : 30000;
    jp[i] = &j[i].job;
  }
  bu_backend be;
  bu_open(&be, 64u << 20);
  bu_result r[n];
  uint64_t t0 = uv_hrtime();
  bu_run_many(&be, jp, n, r);
  double wall = (double)(uv_hrtime() - t0) / 1e9;
  ASSERT_EQ_INT(work_folders_made(w), 2);
  for (int i = 0; i < n; i++) {
    if (strcmp(r[i].status, "ok") != 0) TEST_FAIL("%d: %s: %s", i, r[i].status, r[i].error);
    ASSERT_EQ_STR(r[i].cache, i == 0 || i == n - 1 ? "miss" : "shared");
    ASSERT_EQ_STR(r[i].compiler_id, r[0].compiler_id);
    if (i < n - 1) {
      ASSERT_EQ_INT(r[i].solen, r[0].solen);
      ASSERT_EQ_INT(memcmp(r[i].so, r[0].so, r[0].solen), 0);
      ASSERT_EQ_DBL(r[i].build_s, r[0].build_s, 0);
    }
    run_axpb(r[i].so, r[i].solen);
  }
  for (int i = 0; i < n; i++) bu_result_free(&r[i]);
  if (wall >= 2.5) TEST_FAIL("one-second compiles, two at once, took %.2f s", wall);

  /* A failure under way is shared with those that waited for it, and the
   * next repeat compiles again. */
  fake_cc(failing, sizeof failing, tmp, "failing-cc", "x86_64-linux-gnu",
          "sleep 0.3\necho 'kernel.c:1: error: no' >&2\nexit 1");
  for (int i = 0; i < 3; i++) axpb_job(&j[i], 310 + (uint64_t)i, failing);
  bu_run_many(&be, jp, 3, r);
  ASSERT_EQ_INT(work_folders_made(w), 1);
  for (int i = 0; i < 3; i++) {
    ASSERT_EQ_STR(r[i].status, "COMPILE_ERROR");
    ASSERT_CONTAINS(r[i].error, "kernel.c:1: error: no");
    ASSERT_EQ_STR(r[i].cache, i == 0 ? "miss" : "shared");
    bu_result_free(&r[i]);
  }
  bu_run_many(&be, jp, 1, r);
  ASSERT_EQ_STR(r[0].status, "COMPILE_ERROR");
  ASSERT_EQ_INT(work_folders_made(w), 1);
  bu_result_free(&r[0]);
  buildcache_stats st;
  backend_cache_stats(be.be, &st);
  ASSERT_EQ_U64(st.shared, 3 + 2);
  ASSERT_EQ_U64(st.misses, 2 + 2);
  bu_close(&be);
  close(w);
}

/* Cache off (--build-cache-mb 0, the library's default): every build
 * compiles, identical ones at once included. */
TEST(cache_off_caches_nothing) {
  char tmp[64], slow[256];
  private_tmpdir(tmp, sizeof tmp);
  int w = watch_work_folders(tmp);
  fake_cc(slow, sizeof slow, tmp, "slow-cc", "x86_64-linux-gnu", "sleep 0.2\nexec cc \"$@\"");
  bu_backend be;
  bu_open(&be, 0);
  bu_job j[2];
  Ktune__BuildJob *jp[2] = {&j[0].job, &j[1].job};
  bu_result r[2];
  /* libtcc builds share one work folder (made by the first): they are
   * counted by the back end; an external compiler's by its folders. */
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < 2; i++)
      axpb_job(&j[i], 400 + (uint64_t)(2 * round + i), round ? slow : "tcc");
    uint64_t c0 = backend_compiles(be.be);
    for (int i = 0; i < 2; i++) { /* one after the other */
      bu_run_many(&be, jp, 1, &r[i]);
      ASSERT_EQ_STR(r[i].cache, "");
    }
    bu_result_free(&r[0]);
    bu_result_free(&r[1]);
    ASSERT_EQ_U64(backend_compiles(be.be) - c0, 2);
    if (round) ASSERT_EQ_INT(work_folders_made(w), 2);
    bu_run_many(&be, jp, 2, r); /* at once */
    ASSERT_EQ_U64(backend_compiles(be.be) - c0, 4);
    if (round) ASSERT_EQ_INT(work_folders_made(w), 2);
    else ASSERT(work_folders_made(w) <= 1); /* the shared folder, the first time */
    for (int i = 0; i < 2; i++) {
      ASSERT_EQ_STR(r[i].status, "ok");
      ASSERT_EQ_STR(r[i].cache, "");
      bu_result_free(&r[i]);
    }
  }
  buildcache_stats st;
  backend_cache_stats(be.be, &st);
  ASSERT_EQ_U64(st.hits + st.misses + st.shared + st.entries + st.max_bytes, 0);
  bu_close(&be);
  close(w);
}

/* "cc '-O1 -g'" passes one flag and "cc -O1 -g" two: two commands, each
 * run with its own words, though the words join alike. */
TEST(word_splits_are_distinct_commands) {
  char tmp[64], cc[256], one[300], two[300];
  private_tmpdir(tmp, sizeof tmp);
  fake_cc(cc, sizeof cc, tmp, "words-cc", "x86_64-linux-gnu",
          "[ \"$1\" = '-O1 -g' ] && { echo 'got one word' >&2; exit 1; }\nexec cc \"$@\"");
  snprintf(one, sizeof one, "%s '-O1 -g'", cc);
  snprintf(two, sizeof two, "%s -O1 -g", cc);
  bu_backend be;
  bu_open(&be, 64u << 20);
  bu_job j;
  Ktune__BuildJob *jp = &j.job;
  bu_result r;
  axpb_job(&j, 500, one);
  bu_run_many(&be, &jp, 1, &r);
  ASSERT_EQ_STR(r.status, "COMPILE_ERROR");
  ASSERT_CONTAINS(r.error, "got one word");
  bu_result_free(&r);
  axpb_job(&j, 501, two);
  bu_run_many(&be, &jp, 1, &r);
  if (strcmp(r.status, "ok") != 0) TEST_FAIL("%s: %s", r.status, r.error);
  run_axpb(r.so, r.solen);
  bu_result_free(&r);
  bu_close(&be);
}

/* A template that keeps libtcc busy for a while (2^19 copies of a
 * constant expression to fold) and makes a small object. */
static char *slow_tcc_src(void) {
  char *src = malloc(4096);
  ASSERT_NOT_NULL(src);
  int n = snprintf(src, 4096, "#define X0 (1 + 2)\n");
  for (int i = 1; i <= 19; i++)
    n += snprintf(src + n, 4096 - (size_t)n, "#define X%d (X%d + X%d)\n", i, i - 1, i - 1);
  snprintf(src + n, 4096 - (size_t)n, "int slow = X19 + B;\n");
  return src;
}

/* libtcc compiles one source at a time per process (global state behind
 * a lock), so tcc builds run in processes of their own: two jobs are two
 * compiling processes at once, which --jobs 2 puts on two cores. */
TEST(tcc_builds_run_at_once) {
  char tmp[64];
  private_tmpdir(tmp, sizeof tmp);
  char *src = slow_tcc_src();
  bu_backend be;
  bu_open(&be, 0);
  enum { n = 2 };
  bu_job j[n];
  bu_result r[n];
  bu_slot slots[n];
  uint64_t t0 = uv_hrtime();
  for (int i = 0; i < n; i++) {
    bu_job_init(&j[i], 600 + (uint64_t)i, "slow", src, "tcc");
    bu_job_define(&j[i], "B", i);
    j[i].job.timeout_ms = 60000;
    memset(&r[i], 0, sizeof r[i]);
    slots[i] = (bu_slot){&r[i], t0};
    ASSERT_EQ_INT(backend_build(be.be, &j[i].job, bu_on_done, &slots[i]), 0);
  }
  int most = 0;
  while (!(r[0].done && r[1].done)) {
    uv_run(&be.loop, UV_RUN_NOWAIT);
    int now = procs_in(tmp);
    if (now > most) most = now;
    usleep(2000);
  }
  for (int i = 0; i < n; i++) {
    if (strcmp(r[i].status, "ok") != 0) TEST_FAIL("%d: %s: %s", i, r[i].status, r[i].error);
    bu_result_free(&r[i]);
  }
  if (most < 2) TEST_FAIL("at most %d tcc compile(s) ran at once", most);
  bu_close(&be);
  free(src);
}

TEST_LIST(TEST_ENTRY(split_words), TEST_ENTRY(arch_and_version_parsing),
          TEST_ENTRY(only_compilers_and_codegen_flags_run),
          TEST_ENTRY(gcc_builds_and_runs), TEST_ENTRY(native_is_spelled_out),
          TEST_ENTRY(compile_error_has_diagnostics), TEST_ENTRY(timeout_kills_the_compiler_group),
          TEST_ENTRY(target_arch_mismatch_refused), TEST_ENTRY(version_probed_once_per_command),
          TEST_ENTRY(external_compiles_run_concurrently),
          TEST_ENTRY(missing_compiler_and_bad_command), TEST_ENTRY(close_cancels_running_compile),
          TEST_ENTRY(tcc_threads_build_at_once), TEST_ENTRY(tcc_and_cc_jobs_mixed_on_one_loop),
          TEST_ENTRY(templates_cannot_read_secrets), TEST_ENTRY(compilers_are_confined),
          TEST_ENTRY(stale_work_folders_removed),
          TEST_ENTRY(cache_answers_repeats_without_compiling),
          TEST_ENTRY(identical_builds_under_way_compile_once), TEST_ENTRY(cache_off_caches_nothing),
          TEST_ENTRY(word_splits_are_distinct_commands), TEST_ENTRY(tcc_builds_run_at_once))
