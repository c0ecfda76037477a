/* Every built-in task, from its spec file in tasks/: a few valid configs
 * built by both back ends (libtcc, and `cc -O2` as an external command)
 * through the builder's own job path, then measured the way a runner
 * does (in a child process, under the runner's sandbox) and checked
 * against the task's reference. Sizes that are not multiples of any tile
 * go through the edge paths. */
#include <sys/wait.h>

#include "cli/catalogue.h"
#include "common/rng.h"
#include "common/space.h"
#include "cli/catalogue.h"
#include "common/task.h"
#include "common/wire.h"
#include "runner/measure.h"
#include "tests/test.h"
#include "tests/unit/build_util.h"

#define MAX_KNOBS 16
#define MAX_CONFIGS 8

static void load_task(const char *name, task_spec *t) {
  char path[4096], err[512];
  snprintf(path, sizeof path, "%s/tasks/%s.json", KTUNE_SRC_DIR, name);
  if (task_load(path, t, err, sizeof err) < 0) TEST_FAIL("%s", err);
  ASSERT(t->nknobs <= MAX_KNOBS);
}

static void set_const(task_spec *t, const char *name, int64_t v) {
  char err[256];
  if (task_set_const(t, name, v, err, sizeof err) < 0) TEST_FAIL("%s", err);
  if (task_check(t, err, sizeof err) < 0) TEST_FAIL("%s", err);
}

/* Up to n valid configs: the first and last valid in index order (the
 * smallest and largest knob values, usually), then seeded random ones. */
static size_t pick_configs(const task_spec *t, size_t n, uint64_t seed,
                           int64_t cfg[][MAX_KNOBS]) {
  space sp;
  char err[256];
  ASSERT_EQ_INT(space_init(&sp, t, err, sizeof err), 0);
  ASSERT(sp.size > 0 && sp.size < UINT64_MAX);
  size_t got = 0;
  rng r;
  rng_seed(&r, seed);
  for (uint64_t tries = 0; got < n && tries < 100000; tries++) {
    uint64_t idx = tries == 0 ? 0 : tries == 1 ? sp.size - 1 : rng_below(&r, sp.size);
    int64_t v[MAX_KNOBS];
    int ok = 0;
    ASSERT_EQ_INT(space_config(&sp, idx, v), 0);
    if (space_valid(&sp, v, &ok, err, sizeof err) < 0 || !ok) continue;
    memcpy(cfg[got++], v, sizeof v);
  }
  ASSERT(got > 0);
  return got;
}

/* A build job for one config: the constants, then the knobs. */
static void task_job(bu_job *j, const task_spec *t, const int64_t *knobs, const char *compiler,
                     uint64_t id) {
  bu_job_init(j, id, t->name, t->source, compiler);
  for (size_t i = 0; i < t->nconsts; i++) bu_job_define(j, t->consts[i].name, t->consts[i].value);
  for (size_t i = 0; i < t->nknobs; i++) bu_job_define(j, t->knobs[i].name, knobs[i]);
}

static void describe(const task_spec *t, const int64_t *knobs, char *buf, size_t len) {
  size_t o = (size_t)snprintf(buf, len, "%s", t->name);
  for (size_t i = 0; i < t->nconsts && o < len; i++)
    o += (size_t)snprintf(buf + o, len - o, " %s=%lld", t->consts[i].name,
                          (long long)t->consts[i].value);
  for (size_t i = 0; i < t->nknobs && o < len; i++)
    o += (size_t)snprintf(buf + o, len - o, " %s=%lld", t->knobs[i].name, (long long)knobs[i]);
}

/* Measures an artifact as a runner does: a child process reads the job,
 * enters the sandbox, loads, runs the reference and the kernel, checks. */
static void run_checked(const task_spec *t, const bu_result *b, const char *what) {
  if (strcmp(b->status, "ok") != 0) TEST_FAIL("%s: build %s: %s", what, b->status, b->error);
  Ktune__RunJob job = KTUNE__RUN_JOB__INIT;
  Ktune__Timing tm = KTUNE__TIMING__INIT;
  job.timing = &tm;
  Ktune__Buffer buf[16], *bp[16];
  ASSERT(t->nargs <= 16);
  for (size_t i = 0; i < t->nargs; i++) {
    int64_t count;
    char err[256];
    ASSERT_EQ_INT(task_eval(t, NULL, t->args[i].count, &count, err, sizeof err), 0);
    ktune__buffer__init(&buf[i]);
    buf[i].type = t->args[i].type;
    buf[i].count = (uint64_t)count;
    buf[i].output = t->args[i].output;
    buf[i].name = t->args[i].name;
    bp[i] = &buf[i];
  }
  job.job_id = 9;
  job.artifact.data = b->so;
  job.artifact.len = b->solen;
  job.entry = t->entry;
  job.reference = t->reference;
  job.buffers = bp;
  job.n_buffers = t->nargs;
  job.seed = KTUNE_INPUT_SEED;
  tm.number = 1;
  tm.repeat = 1;
  job.check = 1;
  job.rtol = t->rtol;
  job.atol = t->atol;
  tm.timeout_ms = 60000;

  int in[2], out[2];
  ASSERT_EQ_INT(pipe(in), 0);
  ASSERT_EQ_INT(pipe(out), 0);
  fflush(NULL);
  pid_t pid = fork();
  ASSERT(pid >= 0);
  if (pid == 0) {
    close(in[1]);
    close(out[0]);
    measure_opts o = MEASURE_OPTS_INIT;
    o.sandbox = 1;
    _exit(measure_child_main(in[0], out[1], &o));
  }
  close(in[0]);
  close(out[1]);
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_RUN_JOB;
  env.run_job = &job;
  ASSERT_EQ_INT(wire_write_fd(in[1], &env), 0);
  close(in[1]);
  Ktune__Envelope *r = wire_read_fd(out[0], 1 << 20);
  close(out[0]);
  int st;
  ASSERT_EQ_INT(waitpid(pid, &st, 0), pid);
  if (!r) TEST_FAIL("%s: the measuring child sent no result (status %d)", what, st);
  ASSERT_EQ_INT(r->msg_case, KTUNE__ENVELOPE__MSG_RUN_RESULT);
  if (strcmp(wire_status_name(r->run_result->status), "ok") != 0)
    TEST_FAIL("%s: %s: %s", what, wire_status_name(r->run_result->status), r->run_result->error);
  ASSERT_EQ_INT(r->run_result->n_costs_s, 1);
  ASSERT_GT_DBL(r->run_result->costs_s[0], 0);
  wire_free(r);
}

/* Builds n configs at once with each back end and checks every one. */
static void build_and_check(const task_spec *t, int64_t cfg[][MAX_KNOBS], size_t n) {
  static const char *const compilers[] = {"tcc", "cc -O2"};
  for (size_t c = 0; c < 2; c++) {
    bu_job jobs[MAX_CONFIGS];
    Ktune__BuildJob *jp[MAX_CONFIGS];
    bu_result res[MAX_CONFIGS];
    ASSERT(n <= MAX_CONFIGS);
    for (size_t i = 0; i < n; i++) {
      task_job(&jobs[i], t, cfg[i], compilers[c], i + 1);
      jp[i] = &jobs[i].job;
    }
    bu_build_many(jp, n, res);
    for (size_t i = 0; i < n; i++) {
      char what[512], d[400];
      describe(t, cfg[i], d, sizeof d);
      snprintf(what, sizeof what, "%s [%s]", d, compilers[c]);
      run_checked(t, &res[i], what);
      bu_result_free(&res[i]);
    }
  }
}

static void check_task(const char *name, size_t nconfigs, uint64_t seed) {
  task_spec t;
  load_task(name, &t);
  int64_t cfg[MAX_CONFIGS][MAX_KNOBS];
  size_t n = pick_configs(&t, nconfigs, seed, cfg);
  build_and_check(&t, cfg, n);
  task_free(&t);
}

TEST(builtin_tasks_listed_and_valid) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/tasks", KTUNE_SRC_DIR);
  ASSERT_EQ_INT(setenv("KTUNE_TASKS", dir, 1), 0);
  char **paths, err[256];
  size_t n;
  ASSERT_EQ_INT(catalogue_list(&paths, &n, err, sizeof err), 0);
  const char *want[] = {"conv2d", "matmul", "transpose"};
  ASSERT_EQ_INT(n, 3);
  for (size_t i = 0; i < n; i++) {
    ASSERT_CONTAINS(paths[i], want[i]);
    task_spec t;
    if (task_load(paths[i], &t, err, sizeof err) < 0) TEST_FAIL("%s", err);
    ASSERT_NOT_NULL(t.reference);
    ASSERT(t.nknobs >= 2);
    /* Every knob has a choice to make, and some configs are valid. */
    for (size_t k = 0; k < t.nknobs; k++) ASSERT(t.knobs[k].nvalues >= 2);
    int64_t cfg[MAX_CONFIGS][MAX_KNOBS];
    ASSERT(pick_configs(&t, 3, 1, cfg) >= 2);
    task_free(&t);
    free(paths[i]);
  }
  free(paths);
}

TEST(matmul_default_size) { check_task("matmul", 4, 11); }

TEST(matmul_sizes_off_every_tile) {
  task_spec t;
  load_task("matmul", &t);
  set_const(&t, "M", 257);
  set_const(&t, "N", 1001);
  set_const(&t, "K", 513);
  /* MR NV VW KU KC MC NC: tiles and blocks that all leave a remainder,
   * including a k block of 1 (513 = 2 * 256 + 1). */
  int64_t cfg[2][MAX_KNOBS] = {{6, 3, 16, 4, 256, 64, 512}, {8, 1, 8, 8, 128, 96, 256}};
  build_and_check(&t, cfg, 2);
  task_free(&t);
}

TEST(matmul_tiny_and_odd_sizes) {
  static const int64_t sizes[][3] = {{1, 1, 1}, {3, 5, 7}, {37, 45, 29}, {64, 17, 130}};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    task_spec t;
    load_task("matmul", &t);
    set_const(&t, "M", sizes[s][0]);
    set_const(&t, "N", sizes[s][1]);
    set_const(&t, "K", sizes[s][2]);
    int64_t cfg[MAX_CONFIGS][MAX_KNOBS];
    size_t n = pick_configs(&t, 3, 100 + s, cfg);
    build_and_check(&t, cfg, n);
    task_free(&t);
  }
}

TEST(conv2d_default_size) { check_task("conv2d", 4, 12); }

TEST(conv2d_other_shape) {
  task_spec t;
  load_task("conv2d", &t);
  set_const(&t, "N", 2);
  set_const(&t, "C", 3);
  set_const(&t, "K", 8);
  set_const(&t, "H", 14);
  set_const(&t, "W", 28);
  int64_t cfg[MAX_CONFIGS][MAX_KNOBS];
  size_t n = pick_configs(&t, 4, 13, cfg);
  build_and_check(&t, cfg, n);
  task_free(&t);
}

TEST(transpose_default_size) { check_task("transpose", 4, 14); }

TEST(transpose_sizes_off_every_block) {
  task_spec t;
  load_task("transpose", &t);
  set_const(&t, "M", 37);
  set_const(&t, "N", 1001);
  int64_t cfg[MAX_CONFIGS][MAX_KNOBS];
  size_t n = pick_configs(&t, 4, 15, cfg);
  build_and_check(&t, cfg, n);
  task_free(&t);
}

/* Copies the fenced block "```LANG NAME" of docs/TASKS.md into dir/NAME. */
static void extract_doc_block(const char *doc, const char *fence, const char *dir,
                              const char *name) {
  const char *start = strstr(doc, fence);
  if (!start) TEST_FAIL("docs/TASKS.md has no block opened by \"%s\"", fence);
  start = strchr(start, '\n') + 1;
  const char *end = strstr(start, "\n```");
  ASSERT_NOT_NULL(end);
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  ASSERT_NOT_NULL(f);
  fwrite(start, 1, (size_t)(end - start) + 1, f);
  fclose(f);
}

/* The example users are told to copy works as printed. */
TEST(docs_example_task) {
  char path[4096], dir[] = "/tmp/ktune-test-doc-XXXXXX", err[512];
  snprintf(path, sizeof path, "%s/docs/TASKS.md", KTUNE_SRC_DIR);
  char *doc = bu_read_text(path);
  ASSERT_NOT_NULL(doc);
  ASSERT_NOT_NULL(mkdtemp(dir));
  extract_doc_block(doc, "```json rowsum.json\n", dir, "rowsum.json");
  extract_doc_block(doc, "```c rowsum.c\n", dir, "rowsum.c");
  free(doc);
  snprintf(path, sizeof path, "%s/rowsum.json", dir);
  task_spec t;
  if (task_load(path, &t, err, sizeof err) < 0) TEST_FAIL("%s", err);
  int64_t cfg[MAX_CONFIGS][MAX_KNOBS];
  size_t n = pick_configs(&t, 4, 16, cfg);
  build_and_check(&t, cfg, n);
  task_free(&t);
  snprintf(path, sizeof path, "rm -rf '%s'", dir);
  ASSERT_EQ_INT(system(path), 0);
}

TEST_LIST(TEST_ENTRY(docs_example_task), TEST_ENTRY(builtin_tasks_listed_and_valid), TEST_ENTRY(matmul_default_size),
          TEST_ENTRY(matmul_sizes_off_every_tile), TEST_ENTRY(matmul_tiny_and_odd_sizes),
          TEST_ENTRY(conv2d_default_size), TEST_ENTRY(conv2d_other_shape),
          TEST_ENTRY(transpose_default_size), TEST_ENTRY(transpose_sizes_off_every_block))
