/* `ktune best` answers the question asked: a task known only by its name
 * in the history, filters by compiler and timing that the answer names,
 * no silent mix of compilers, the units of `ktune tune`, and GB/s for a
 * task that counts its bytes. Every session runs on the private local
 * farm of `ktune tune`, writing a history in a fresh folder. */
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/integration/proc.h"
#include "tests/test.h"

/* A tune with its farm's start and stop, or a best: each well inside the
 * case's two minutes. */
#define RUN_MS 60000

static char out[1 << 16];

/* `ktune ARGS...` in folder cwd; its exit code, its output in out. */
static int ktune_in(const char *cwd, char *const args[]) {
  return proc_ktune(cwd, args, out, sizeof(out), RUN_MS);
}

static void expect_rc(int rc, int want, const char *what) {
  if (rc != want) TEST_FAIL("%s exited %d, not %d: %s", what, rc, want, out);
}

/* A copy kernel `tiny` over N floats whose knobs the spec lists V before
 * U, so that the spec's order is not the stored (sorted) one. */
static void write_tiny(const char *dir) {
  char p[512];
  snprintf(p, sizeof(p), "%s/tiny.c", dir);
  proc_write_file(p, "void k(float *C, const float *A) {\n"
                     "  for (long i = 0; i < N; i += U)\n"
                     "    for (long u = 0; u < U; u++) C[i + u] = A[i + u] * 2.0f;\n"
                     "}\n"
                     "void k_ref(float *C, const float *A) {\n"
                     "  for (long i = 0; i < N; i++) C[i] = A[i] * 2.0f;\n"
                     "}\n");
  snprintf(p, sizeof(p), "%s/tiny.json", dir);
  proc_write_file(p, "{\"name\": \"tiny\", \"source\": \"tiny.c\", \"entry\": \"k\",\n"
                     " \"reference\": \"k_ref\", \"constants\": {\"N\": 1024},\n"
                     " \"args\": [{\"name\": \"C\", \"type\": \"float\", \"count\": \"N\","
                     " \"output\": true},\n"
                     "          {\"name\": \"A\", \"type\": \"float\", \"count\": \"N\"}],\n"
                     " \"knobs\": {\"V\": [1, 2], \"U\": [1, 2, 4, 8]},\n"
                     " \"constraints\": [\"N % U == 0\"],\n"
                     " \"flops\": \"N\"}\n");
}

typedef struct {
  char root[256], spec[300], other[300], db[300];
} place;

/* root/spec holds the spec, root/other is elsewhere, root/t.db the history. */
static void make_place(place *p) {
  proc_tmpdir(p->root, sizeof(p->root));
  snprintf(p->spec, sizeof(p->spec), "%s/spec", p->root);
  snprintf(p->other, sizeof(p->other), "%s/other", p->root);
  snprintf(p->db, sizeof(p->db), "%s/t.db", p->root);
  if (mkdir(p->spec, 0700) != 0 || mkdir(p->other, 0700) != 0) TEST_FAIL("mkdir in %s", p->root);
  write_tiny(p->spec);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

/* At the end of a passing case; a failing one keeps its files to look at. */
static void remove_place(const place *p) {
  if (chdir("/") == 0) nftw(p->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* `ktune tune ./tiny.json` from the spec's folder on the local farm. */
static void tune_tiny(const place *p, const char *compiler, const char *n) {
  char define[32];
  snprintf(define, sizeof(define), "N=%s", n);
  char *args[] = {"tune", "./tiny.json", "-D", define, "--trials", "4", "--strategy", "grid",
                  "--compiler", (char *)compiler, "--db", (char *)p->db, NULL};
  expect_rc(ktune_in(p->spec, args), 0, "ktune tune ./tiny.json");
}

static json_t *parse(const char *what) {
  json_error_t je;
  json_t *j = json_loads(out, 0, &je);
  if (!j) TEST_FAIL("%s is not one JSON object (%s): %s", what, je.text, out);
  return j;
}

/* The latency of the best checked ok trial of a task straight from the
 * file, as `ktune best` picks it: the fastest confirmed one (a session's
 * end confirms its best), else the fastest. `where` narrows it with two
 * text parameters, a and b. */
static double best_where(const place *p, const char *where, const char *a, const char *b) {
  sqlite3 *db;
  sqlite3_stmt *st;
  char sql[512];
  snprintf(sql, sizeof(sql), "SELECT mean_s FROM trials WHERE status = 'ok' AND %s ORDER BY "
           "confirmed_s IS NULL, confirmed_s, mean_s LIMIT 1", where);
  if (sqlite3_open_v2(p->db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
    TEST_FAIL("cannot read %s", p->db);
  sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
  ASSERT_EQ_INT(sqlite3_step(st), SQLITE_ROW);
  double v = sqlite3_column_double(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

static double min_mean(const place *p, const char *compiler) {
  return best_where(p, "task = ?1 AND checked = 1 AND compiler = ?2", "tiny", compiler);
}

TEST(best_by_name_of_a_spec_file_task_from_another_folder) {
  place p;
  make_place(&p);
  tune_tiny(&p, "tcc", "1024");
  /* No tiny.json here: the name is found in the history. */
  char *best[] = {"best", "tiny", "--db", p.db, NULL};
  expect_rc(ktune_in(p.other, best), 0, "ktune best tiny (from another folder)");
  ASSERT_CONTAINS(out, "best of 4 checked trials of tiny {\"N\":1024} with any compiler, any "
                       "key, any timing\n");
  /* The spec's knob order, from the session's own submission. */
  ASSERT_CONTAINS(out, "best: V=1 U=");
  ASSERT_CONTAINS(out, "note: tiny is not a built-in task or a spec file here");
  /* The units of `ktune tune`: no bare seconds. */
  ASSERT(strstr(out, " us, ") || strstr(out, " ms, "));
  ASSERT_CONTAINS(out, " GFLOPS\n");
  ASSERT_CONTAINS(out, "timing number=1 repeat=3");

  /* A second size: -D picks, and without it the sizes are named. */
  tune_tiny(&p, "tcc", "2048");
  expect_rc(ktune_in(p.other, best), 2, "ktune best tiny with two sizes in the history");
  ASSERT_CONTAINS(out, "task tiny has trials at 2 sizes");
  ASSERT_CONTAINS(out, "{\"N\":1024} (4 trials)");
  ASSERT_CONTAINS(out, "{\"N\":2048} (4 trials)");
  ASSERT_CONTAINS(out, "-D NAME=VALUE");
  char *pick[] = {"best", "tiny", "-D", "N=2048", "--db", p.db, NULL};
  expect_rc(ktune_in(p.other, pick), 0, "ktune best tiny -D N=2048");
  ASSERT_CONTAINS(out, "of tiny {\"N\":2048}");
  char *none[] = {"best", "tiny", "-D", "N=7", "--db", p.db, NULL};
  expect_rc(ktune_in(p.other, none), 1, "ktune best tiny -D N=7");
  ASSERT_CONTAINS(out, "task tiny has no trial at N=7");
  ASSERT_CONTAINS(out, "{\"N\":1024} (4 trials)");
  char *unknown[] = {"best", "tinyy", "--db", p.db, NULL};
  expect_rc(ktune_in(p.other, unknown), 2, "ktune best tinyy");
  ASSERT_CONTAINS(out, "unknown task 'tinyy'");
  ASSERT_CONTAINS(out, "nor has");
  /* The spec file still answers, for exactly its kernel. */
  char *by_spec[] = {"best", "./tiny.json", "--db", p.db, NULL};
  expect_rc(ktune_in(p.spec, by_spec), 0, "ktune best ./tiny.json");
  ASSERT_CONTAINS(out, "best of 4 checked trials of tiny {\"N\":1024}");
  if (strstr(out, "not a built-in task")) TEST_FAIL("a spec file was taken as a name: %s", out);
  remove_place(&p);
}

TEST(compiler_filter_between_tcc_and_gcc) {
  place p;
  make_place(&p);
  tune_tiny(&p, "tcc", "1024");
  tune_tiny(&p, "gcc -O2", "1024");
  const char *compilers[] = {"tcc", "gcc -O2"};
  for (int i = 0; i < 2; i++) {
    char *args[] = {"best", "tiny", "--compiler", (char *)compilers[i], "--db", p.db, NULL};
    expect_rc(ktune_in(p.other, args), 0, "ktune best --compiler");
    char want[128];
    snprintf(want, sizeof(want), "best of 4 checked trials of tiny {\"N\":1024} with compiler "
                                 "\"%s\", any key, any timing\n", compilers[i]);
    ASSERT_CONTAINS(out, want);
    snprintf(want, sizeof(want), "      compiler \"%s\" (%s ", compilers[i],
             i ? "gcc" : "tcc");
    ASSERT_CONTAINS(out, want);
    if (strstr(out, "come from 2 compilers"))
      TEST_FAIL("a filtered answer warns of other compilers: %s", out);
    char *json[] = {"best", "tiny", "--compiler", (char *)compilers[i], "--db", p.db, "--json",
                    NULL};
    expect_rc(ktune_in(p.other, json), 0, "ktune best --compiler --json");
    json_t *j = parse("ktune best --json");
    ASSERT_EQ_STR(json_string_value(json_object_get(j, "compiler")), compilers[i]);
    ASSERT_EQ_DBL(json_real_value(json_object_get(j, "mean_s")), min_mean(&p, compilers[i]),
                  0);
    json_t *filters = json_object_get(j, "filters");
    ASSERT_EQ_STR(json_string_value(json_object_get(filters, "compiler")), compilers[i]);
    ASSERT(json_is_null(json_object_get(filters, "key")));
    ASSERT(json_is_true(json_object_get(filters, "checked")));
    ASSERT_EQ_INT(json_integer_value(json_object_get(j, "matched")), 4);
    /* What the winner was built and measured with, and by whom. */
    ASSERT_CONTAINS(json_string_value(json_object_get(j, "compiler_id")), i ? "gcc" : "tcc");
    ASSERT_EQ_INT(json_integer_value(json_object_get(json_object_get(j, "timing"), "repeat")), 3);
    ASSERT_EQ_STR(json_string_value(json_object_get(j, "runner")), "local-runner");
    ASSERT_EQ_STR(json_string_value(json_object_get(j, "builder")), "local-builder");
    ASSERT(json_is_null(json_object_get(j, "gbps")));
    ASSERT(json_is_true(json_object_get(j, "from_history")));
    /* Which compilers there are, filtered or not. */
    ASSERT_EQ_INT(json_array_size(json_object_get(j, "compilers")), 2);
    json_decref(j);
  }

  /* No filter: the best overall, said to be one compiler's among two. */
  char *any[] = {"best", "tiny", "--db", p.db, NULL};
  expect_rc(ktune_in(p.other, any), 0, "ktune best tiny");
  ASSERT_CONTAINS(out, "best of 8 checked trials of tiny {\"N\":1024} with any compiler");
  ASSERT_CONTAINS(out, "note: the best is from compiler \"");
  ASSERT_CONTAINS(out, "these trials come from 2 compilers: ");
  ASSERT_CONTAINS(out, "\"tcc\" (4 trials)");
  ASSERT_CONTAINS(out, "\"gcc -O2\" (4 trials)");
  ASSERT_CONTAINS(out, "--compiler picks one");

  /* Filters that match nothing say what there is instead. */
  char *clang[] = {"best", "tiny", "--compiler", "clang", "--db", p.db, NULL};
  expect_rc(ktune_in(p.other, clang), 1, "ktune best --compiler clang");
  ASSERT_CONTAINS(out, "no checked trial of tiny {\"N\":1024} with compiler \"clang\"");
  ASSERT_CONTAINS(out, "without --compiler there are trials with compiler ");
  char *number[] = {"best", "tiny", "--number", "5", "--db", p.db, NULL};
  expect_rc(ktune_in(p.other, number), 1, "ktune best --number 5");
  ASSERT_CONTAINS(out, "with timing number=5 repeat=3");
  ASSERT_CONTAINS(out, "without the timing options there are trials with timing number=1 "
                       "repeat=3 (8 trials)");
  char *same[] = {"best", "tiny", "--number", "1", "--repeat", "3", "--db", p.db, NULL};
  expect_rc(ktune_in(p.other, same), 0, "ktune best --number 1 --repeat 3");
  ASSERT_CONTAINS(out, "any compiler, any key, timing number=1 repeat=3\n");
  /* Options about measuring are not filters. */
  char *nocheck[] = {"best", "tiny", "--no-check", "--db", p.db, NULL};
  expect_rc(ktune_in(p.other, nocheck), 2, "ktune best --no-check");
  remove_place(&p);
}

TEST(bytes_task_reads_in_gb_per_s) {
  place p;
  make_place(&p);
  char *tune[] = {"tune", "transpose", "-D", "M=64", "-D", "N=64", "--trials", "4", "--batch",
                  "2", "--strategy", "grid", "--db", p.db, NULL};
  expect_rc(ktune_in(p.root, tune), 0, "ktune tune transpose");
  /* Progress and the final lines speak of bytes moved, not FLOPs. */
  ASSERT_CONTAINS(out, "[2/4] last ");
  ASSERT_CONTAINS(out, " GB/s  best ");
  ASSERT_CONTAINS(out, " GB/s (session ");
  if (strstr(out, "GFLOPS")) TEST_FAIL("a task that counts its bytes printed GFLOPS: %s", out);
  char *best[] = {"best", "transpose", "-D", "M=64", "-D", "N=64", "--db", p.db, NULL};
  expect_rc(ktune_in(p.root, best), 0, "ktune best transpose");
  ASSERT_CONTAINS(out, " GB/s\n");
  if (strstr(out, "GFLOPS")) TEST_FAIL("best of a task that counts bytes said GFLOPS: %s", out);
  char *json[] = {"best", "transpose", "-D", "M=64", "-D", "N=64", "--db", p.db, "--json", NULL};
  expect_rc(ktune_in(p.root, json), 0, "ktune best transpose --json");
  json_t *j = parse("ktune best transpose --json");
  double mean = json_real_value(json_object_get(j, "mean_s"));
  ASSERT(mean > 0);
  ASSERT_EQ_DBL(json_real_value(json_object_get(j, "gbps")), 2.0 * 64 * 64 * 4 / mean / 1e9,
                1e-9);
  json_decref(j);
  /* The history keeps both. */
  char *exp[] = {"export", "--db", p.db, NULL};
  expect_rc(ktune_in(p.root, exp), 0, "ktune export");
  ASSERT_CONTAINS(out, "\"bytes\":32768,\"gbps\":");
  remove_place(&p);
}

/* The emitted winner is plain C: the system gcc builds it with a small
 * driver that includes the emitted header, and its output is the
 * reference's. The template is written so that the knobs matter: a file
 * without the winner's defines would not compile. */
TEST(emitted_winner_compiles_into_a_driver_and_matches_the_reference) {
  place p;
  make_place(&p);
  char *tune[] = {"tune", "matmul", "-D", "M=24", "-D", "N=40", "-D", "K=16", "--trials", "3",
                  "--strategy", "random", "--db", p.db, NULL};
  expect_rc(ktune_in(p.root, tune), 0, "ktune tune matmul");
  char c_path[400], h_path[400], drv[400], exe[400];
  snprintf(c_path, sizeof(c_path), "%s/winner.c", p.root);
  snprintf(h_path, sizeof(h_path), "%s/winner.h", p.root);
  snprintf(drv, sizeof(drv), "%s/drv.c", p.root);
  snprintf(exe, sizeof(exe), "%s/drv", p.root);
  char *best[] = {"best", "matmul", "-D", "M=24", "-D", "N=40", "-D", "K=16", "--db", p.db,
                  "--emit", c_path, "--emit-header", h_path, NULL};
  expect_rc(ktune_in(p.root, best), 0, "ktune best --emit");
  ASSERT_CONTAINS(out, "wrote ");
  /* The file names the winner ktune best printed. */
  char *json[] = {"best", "matmul", "-D", "M=24", "-D", "N=40", "-D", "K=16", "--db", p.db,
                  "--json", NULL};
  expect_rc(ktune_in(p.root, json), 0, "ktune best --json");
  json_t *j = parse("ktune best --json");
  json_t *cfg = json_object_get(j, "config");
  ASSERT(json_is_object(cfg));
  static char text[1 << 16];
  proc_read_file(c_path, text, sizeof(text));
  const char *knob;
  json_t *v;
  json_object_foreach(cfg, knob, v) {
    char def[64];
    snprintf(def, sizeof(def), "#define %s %lld\n", knob, (long long)json_integer_value(v));
    ASSERT_CONTAINS(text, def);
  }
  ASSERT_CONTAINS(text, "#define M 24\n");
  json_decref(j);
  proc_read_file(h_path, text, sizeof(text));
  ASSERT_CONTAINS(text, "void matmul(float *C, const float *A, const float *B);");
  proc_write_file(drv, "#include <math.h>\n#include <stdio.h>\n#include \"winner.h\"\n"
                       "void matmul_ref(float *C, const float *A, const float *B);\n"
                       "int main(void) {\n"
                       "  static float A[24 * 16], B[16 * 40], C[24 * 40], R[24 * 40];\n"
                       "  for (int i = 0; i < 24 * 16; i++) A[i] = (float)(i % 7) - 3;\n"
                       "  for (int i = 0; i < 16 * 40; i++) B[i] = (float)(i % 5) - 2;\n"
                       "  matmul(C, A, B);\n  matmul_ref(R, A, B);\n"
                       "  double e = 0;\n"
                       "  for (int i = 0; i < 24 * 40; i++) e = fmax(e, fabs(C[i] - R[i]));\n"
                       "  printf(\"max error %g\\n\", e);\n  return e > 1e-4;\n}\n");
  /* proc_run does not search the PATH. */
  char *gcc[] = {"/usr/bin/env", "gcc", "-O2", "-Wall", "-Werror", "-o", exe, c_path, drv, "-lm", NULL};
  if (chdir(p.root) != 0) TEST_FAIL("cannot enter %s", p.root);
  int rc = proc_run(gcc, out, sizeof(out), RUN_MS);
  if (rc != 0) TEST_FAIL("gcc could not build the emitted file with a driver (%d): %s", rc, out);
  char *run[] = {exe, NULL};
  rc = proc_run(run, out, sizeof(out), RUN_MS);
  if (rc != 0) TEST_FAIL("the emitted kernel disagrees with the reference (%d): %s", rc, out);
  ASSERT_CONTAINS(out, "max error 0");
  /* A file that cannot be written is an error that says where. */
  char *bad[] = {"best", "matmul", "-D", "M=24", "-D", "N=40", "-D", "K=16", "--db", p.db,
                 "--emit", "/proc/no/such/winner.c", NULL};
  expect_rc(ktune_in(p.root, bad), 1, "ktune best --emit to a bad path");
  ASSERT_CONTAINS(out, "cannot create /proc/no/such/winner.c");
  remove_place(&p);
}

/* `ktune tune --json` ends with one JSON object on stdout, alone there
 * (progress goes to stderr), and it agrees with `ktune best`. */
TEST(tune_json_summary_parses_and_agrees_with_best) {
  place p;
  make_place(&p);
  char cmd[1024];
  snprintf(cmd, sizeof(cmd), "'%s' tune ./tiny.json --trials 4 --strategy grid --db '%s' --json "
           "2>'%s/progress.txt'", proc_bin("cli/ktune"), p.db, p.root);
  char *sh[] = {"/bin/sh", "-c", cmd, NULL};
  if (chdir(p.spec) != 0) TEST_FAIL("cannot enter %s", p.spec);
  expect_rc(proc_run(sh, out, sizeof(out), RUN_MS), 0, "ktune tune --json");
  json_t *sum = parse("ktune tune --json");
  json_t *tasks = json_object_get(sum, "tasks");
  ASSERT_EQ_INT((int)json_array_size(tasks), 1);
  json_t *t = json_array_get(tasks, 0);
  ASSERT_EQ_STR(json_string_value(json_object_get(t, "task")), "tiny");
  ASSERT_EQ_STR(json_string_value(json_object_get(t, "state")), "done");
  ASSERT_EQ_INT((int)json_integer_value(json_object_get(t, "trials")), 4);
  ASSERT(json_is_object(json_object_get(t, "failures")));
  json_t *best = json_object_get(t, "best");
  ASSERT(json_is_object(best));
  /* The progress went to stderr. */
  static char progress[1 << 14];
  char path[400];
  snprintf(path, sizeof(path), "%s/progress.txt", p.root);
  proc_read_file(path, progress, sizeof(progress));
  ASSERT_CONTAINS(progress, "[4/4]");
  char *ask[] = {"best", "./tiny.json", "--db", p.db, "--json", NULL};
  expect_rc(ktune_in(p.spec, ask), 0, "ktune best --json");
  json_t *b = parse("ktune best --json");
  if (!json_equal(json_object_get(best, "config"), json_object_get(b, "config")))
    TEST_FAIL("tune --json and best disagree on the config: %s", out);
  ASSERT_EQ_DBL(json_real_value(json_object_get(best, "latency_s")),
                json_real_value(json_object_get(b, "mean_s")), 1e-12);
  ASSERT_EQ_DBL(json_real_value(json_object_get(best, "gflops")),
                json_real_value(json_object_get(b, "gflops")), 1e-9);
  json_decref(b);
  json_decref(sum);
  remove_place(&p);
}

/* The end of a session measures its best configs again, taking turns on
 * one runner: the confirmed latencies are stored with exactly those
 * trials, the winner reported (and `ktune best`'s) is the fastest
 * confirmed one, and --confirm 0 leaves the search's best alone. */
TEST(confirmation_stores_latencies_and_picks_the_fastest_confirmed) {
  place p;
  make_place(&p);
  char cmd[1024];
  snprintf(cmd, sizeof(cmd), "'%s' tune ./tiny.json --trials 6 --strategy grid --confirm 3 "
           "--db '%s' --json 2>/dev/null", proc_bin("cli/ktune"), p.db);
  char *sh[] = {"/bin/sh", "-c", cmd, NULL};
  if (chdir(p.spec) != 0) TEST_FAIL("cannot enter %s", p.spec);
  expect_rc(proc_run(sh, out, sizeof(out), RUN_MS), 0, "ktune tune --confirm 3 --json");
  json_t *sum = parse("ktune tune --json");
  json_t *best = json_object_get(json_array_get(json_object_get(sum, "tasks"), 0), "best");
  ASSERT_EQ_INT((int)json_integer_value(json_object_get(best, "confirmed")), 3);
  double confirmed = json_real_value(json_object_get(best, "confirmed_latency_s"));
  ASSERT(confirmed > 0);
  /* Straight from the file: the three fastest search trials, and only
   * they, have a confirmed latency from 5 passes of 3 rounds. A tie goes
   * to the earlier trial, as the session keeps its candidates: a kernel
   * this short measures in steps of the clock, and two configs can read
   * the same mean. */
  sqlite3 *db;
  sqlite3_stmt *st;
  if (sqlite3_open_v2(p.db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db, "SELECT confirmed_s, json_array_length(confirm_costs), config,"
                             " row_number() OVER (ORDER BY mean_s, id) FROM trials WHERE status = 'ok'"
                             " ORDER BY mean_s, id", -1, &st, NULL) != SQLITE_OK)
    TEST_FAIL("cannot read %s: %s", p.db, sqlite3_errmsg(db));
  int rows = 0, with = 0;
  double min_confirmed = 0;
  char winner[256] = "";
  while (sqlite3_step(st) == SQLITE_ROW) {
    rows++;
    int has = sqlite3_column_type(st, 0) != SQLITE_NULL;
    if (has != (sqlite3_column_int(st, 3) <= 3))
      TEST_FAIL("trial ranked %d by its search latency %s a confirmed latency",
                sqlite3_column_int(st, 3), has ? "has" : "lacks");
    if (!has) continue;
    with++;
    ASSERT_EQ_INT(sqlite3_column_int(st, 1), 15);
    double c = sqlite3_column_double(st, 0);
    if (!winner[0] || c < min_confirmed) {
      min_confirmed = c;
      snprintf(winner, sizeof(winner), "%s", (const char *)sqlite3_column_text(st, 2));
    }
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  ASSERT_EQ_INT(rows, 6);
  ASSERT_EQ_INT(with, 3);
  ASSERT_EQ_DBL(confirmed, min_confirmed, 1e-15);
  json_t *w = json_loads(winner, 0, NULL);
  if (!json_equal(w, json_object_get(best, "config")))
    TEST_FAIL("the reported winner is not the fastest confirmed config %s", winner);
  /* `ktune best` answers with the same winner. */
  char *ask[] = {"best", "./tiny.json", "--db", p.db, "--json", NULL};
  expect_rc(ktune_in(p.spec, ask), 0, "ktune best --json");
  json_t *b = parse("ktune best --json");
  if (!json_equal(w, json_object_get(b, "config")))
    TEST_FAIL("ktune best does not answer with the confirmed winner %s: %s", winner, out);
  json_decref(b);
  json_decref(w);
  json_decref(sum);
  /* Without confirmation nothing is measured again. */
  snprintf(cmd, sizeof(cmd), "'%s' tune ./tiny.json -D N=512 --trials 4 --strategy grid "
           "--confirm 0 --db '%s' --json 2>/dev/null", proc_bin("cli/ktune"), p.db);
  expect_rc(proc_run(sh, out, sizeof(out), RUN_MS), 0, "ktune tune --confirm 0");
  sum = parse("ktune tune --confirm 0 --json");
  best = json_object_get(json_array_get(json_object_get(sum, "tasks"), 0), "best");
  ASSERT(json_is_null(json_object_get(best, "confirmed_latency_s")));
  json_decref(sum);
  remove_place(&p);
}

/* Runs `ktune tune --workload FILE ARGS... --json` in p's spec folder and
 * parses its summary. */
static json_t *tune_workload(const place *p, const char *workload, const char *trials) {
  char wl[400], cmd[1400];
  snprintf(wl, sizeof(wl), "%s/workload.json", p->spec);
  proc_write_file(wl, workload);
  snprintf(cmd, sizeof(cmd), "'%s' tune --workload '%s' --trials %s --batch 4 --strategy random "
           "--db '%s' --json 2>'%s/progress.txt'", proc_bin("cli/ktune"), wl, trials, p->db,
           p->root);
  char *sh[] = {"/bin/sh", "-c", cmd, NULL};
  if (chdir(p->root) != 0) TEST_FAIL("cannot enter %s", p->root);
  expect_rc(proc_run(sh, out, sizeof(out), RUN_MS), 0, "ktune tune --workload");
  return parse("ktune tune --workload --json");
}

/* The best ok trial of a task at a size (each task's last batch
 * confirms). */
static double best_mean(const place *p, const char *task, const char *size) {
  return best_where(p, "task = ?1 AND size = ?2", task, size);
}

/* A workload's end-to-end estimate is the weighted sum of each task's
 * best latency, as the history has them; a spec path in the file is
 * relative to the file. */
TEST(workload_estimate_is_the_weighted_sum_of_the_bests) {
  place p;
  make_place(&p);
  json_t *sum = tune_workload(&p, "{\"tasks\": [{\"task\": \"matmul\", \"constants\": "
                                  "{\"M\": 16, \"N\": 24, \"K\": 8}, \"weight\": 3},\n"
                                  " {\"task\": \"./tiny.json\", \"weight\": 2}]}\n", "12");
  json_t *tasks = json_object_get(sum, "tasks");
  ASSERT_EQ_INT((int)json_array_size(tasks), 2);
  double mm = best_mean(&p, "matmul", "{\"K\":8,\"M\":16,\"N\":24}");
  double tiny = best_mean(&p, "tiny", "{\"N\":1024}");
  ASSERT(mm > 0 && tiny > 0);
  double e2e = json_real_value(json_object_get(sum, "end_to_end_s"));
  ASSERT_EQ_DBL(e2e, 3 * mm + 2 * tiny, 1e-12 * e2e);
  /* Each task's last batch confirmed its best configs, from all its
   * batches. */
  for (size_t i = 0; i < 2; i++) {
    json_t *best = json_object_get(json_array_get(tasks, i), "best");
    if (!(json_real_value(json_object_get(best, "confirmed_latency_s")) > 0))
      TEST_FAIL("task %zu's winner was not confirmed: %s", i, out);
    /* The last batch measured one config: the others came from the
     * earlier batches. */
    if (json_integer_value(json_object_get(best, "confirmed")) != 3)
      TEST_FAIL("task %zu's last batch confirmed %lld configs, not its 3 best of all batches: "
                "%s", i, (long long)json_integer_value(json_object_get(best, "confirmed")), out);
  }
  int trials = 0;
  for (size_t i = 0; i < 2; i++)
    trials += (int)json_integer_value(json_object_get(json_array_get(tasks, i), "trials"));
  ASSERT_EQ_INT(trials, 12);
  /* The progress shows a line per task and the estimate. */
  static char progress[1 << 15];
  char path[400];
  snprintf(path, sizeof(path), "%s/progress.txt", p.root);
  proc_read_file(path, progress, sizeof(progress));
  ASSERT_CONTAINS(progress, "  matmul {\"K\":8,\"M\":16,\"N\":24}");
  ASSERT_CONTAINS(progress, "  tiny {\"N\":1024}");
  ASSERT_CONTAINS(progress, "[12/12] end to end (weighted sum of the bests): ");
  json_decref(sum);
  remove_place(&p);
}

/* Unbalanced: the same kernel at two sizes, one 64 times the work and 20
 * times the weight. After a batch each, the trials go to it. */
TEST(workload_scheduler_spends_where_there_is_more_to_gain) {
  place p;
  make_place(&p);
  json_t *sum = tune_workload(&p, "{\"tasks\": [{\"task\": \"./tiny.json\", \"constants\": "
                                  "{\"N\": 64}, \"weight\": 1},\n"
                                  " {\"task\": \"./tiny.json\", \"constants\": {\"N\": 4096},"
                                  " \"weight\": 20}]}\n", "16");
  json_t *tasks = json_object_get(sum, "tasks");
  long small = json_integer_value(json_object_get(json_array_get(tasks, 0), "trials"));
  long big = json_integer_value(json_object_get(json_array_get(tasks, 1), "trials"));
  if (!(big > small))
    TEST_FAIL("the heavy task got %ld trials, the light one %ld: %s", big, small, out);
  /* Its first batch, and the one trial of its confirming last batch. */
  ASSERT_EQ_INT((int)small, 4 + 1);
  json_decref(sum);
  /* Both sizes' winners as C: the second renamed, so that both link into
   * one program with the system gcc, and each computes what it should. */
  char dir[400], drv[420], exe[420], wlp[400];
  snprintf(dir, sizeof(dir), "%s/emitted", p.root);
  snprintf(wlp, sizeof(wlp), "%s/workload.json", p.spec);
  char *best[] = {"best", "--workload", wlp, "--db", p.db, "--emit-dir", dir, NULL};
  expect_rc(ktune_in(p.root, best), 0, "ktune best --workload --emit-dir");
  ASSERT_CONTAINS(out, "end to end (weighted sum of the bests): ");
  ASSERT_CONTAINS(out, "/emitted/tiny_2.c");
  snprintf(drv, sizeof(drv), "%s/drv.c", dir);
  snprintf(exe, sizeof(exe), "%s/drv", dir);
  proc_write_file(drv, "#include <stdio.h>\n#include \"tiny.h\"\n#include \"tiny_2.h\"\n"
                       "static float A[4096], C[4096];\n"
                       "int main(void) {\n  int bad = 0;\n"
                       "  for (int i = 0; i < 4096; i++) A[i] = (float)(i % 9) - 4;\n"
                       "  k(C, A);\n  for (int i = 0; i < 64; i++) bad += C[i] != A[i] * 2;\n"
                       "  k_2(C, A);\n  for (int i = 0; i < 4096; i++) bad += C[i] != A[i] * 2;\n"
                       "  printf(\"%d wrong\\n\", bad);\n  return bad != 0;\n}\n");
  char c1[420], c2[420];
  snprintf(c1, sizeof(c1), "%s/tiny.c", dir);
  snprintf(c2, sizeof(c2), "%s/tiny_2.c", dir);
  char *gcc[] = {"/usr/bin/env", "gcc", "-O2", "-Wall", "-Werror", "-o", exe, c1, c2, drv, NULL};
  int rc = proc_run(gcc, out, sizeof(out), RUN_MS);
  if (rc != 0) TEST_FAIL("gcc could not link both emitted sizes (%d): %s", rc, out);
  char *run[] = {exe, NULL};
  expect_rc(proc_run(run, out, sizeof(out), RUN_MS), 0, "the emitted workload's driver");
  ASSERT_CONTAINS(out, "0 wrong");
  /* A broken file is a usage error that says where. */
  char wl[400];
  snprintf(wl, sizeof(wl), "%s/bad.json", p.spec);
  proc_write_file(wl, "{\"tasks\": [{\"task\": \"matmul\", \"weight\": -1}]}");
  char *bad[] = {"tune", "--workload", wl, "--db", p.db, NULL};
  expect_rc(ktune_in(p.root, bad), 2, "ktune tune --workload with a bad weight");
  ASSERT_CONTAINS(out, "tasks[0]: \"weight\" must be a positive number");
  remove_place(&p);
}

/* A spec without a reference (docs/TASKS.md: optional) tunes, unchecked,
 * and `ktune best --unchecked` answers for it. */
TEST(spec_without_a_reference_tunes_unchecked) {
  place p;
  make_place(&p);
  char path[400];
  snprintf(path, sizeof(path), "%s/noref.c", p.spec);
  proc_write_file(path, "void k(float *C) { for (long i = 0; i < N; i++) C[i] = U; }\n");
  snprintf(path, sizeof(path), "%s/noref.json", p.spec);
  proc_write_file(path, "{\"name\": \"noref\", \"source\": \"noref.c\", \"entry\": \"k\","
                        " \"constants\": {\"N\": 64}, \"args\": [{\"name\": \"C\", \"type\":"
                        " \"float\", \"count\": \"N\", \"output\": true}],"
                        " \"knobs\": {\"U\": [1, 2]}, \"flops\": \"N\"}\n");
  char *tune[] = {"tune", "./noref.json", "--trials", "2", "--strategy", "grid", "--db", p.db,
                  NULL};
  expect_rc(ktune_in(p.spec, tune), 0, "ktune tune ./noref.json");
  char *best[] = {"best", "./noref.json", "--unchecked", "--db", p.db, NULL};
  expect_rc(ktune_in(p.spec, best), 0, "ktune best ./noref.json --unchecked");
  ASSERT_CONTAINS(out, "were NOT checked");
  remove_place(&p);
}

TEST_LIST(TEST_ENTRY(best_by_name_of_a_spec_file_task_from_another_folder),
          TEST_ENTRY(spec_without_a_reference_tunes_unchecked),
          TEST_ENTRY(workload_estimate_is_the_weighted_sum_of_the_bests),
          TEST_ENTRY(workload_scheduler_spends_where_there_is_more_to_gain),
          TEST_ENTRY(confirmation_stores_latencies_and_picks_the_fastest_confirmed),
          TEST_ENTRY(tune_json_summary_parses_and_agrees_with_best),
          TEST_ENTRY(emitted_winner_compiles_into_a_driver_and_matches_the_reference),
          TEST_ENTRY(compiler_filter_between_tcc_and_gcc),
          TEST_ENTRY(bytes_task_reads_in_gb_per_s))
