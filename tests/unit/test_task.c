#include "common/task.h"

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <sys/stat.h>

#include "cli/catalogue.h"
#include "tests/test.h"

static char dir[64];

static void make_dir(void) {
  snprintf(dir, sizeof dir, "/tmp/ktune-task-XXXXXX");
  ASSERT_NOT_NULL(mkdtemp(dir));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

/* Called at the end of each passing case; a failing one keeps its files. */
static void cleanup(void) { nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static void write_file(const char *name, const char *text) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  ASSERT_NOT_NULL(f);
  fputs(text, f);
  fclose(f);
}

static const char *tmpl = "void k(float *C, const float *A) { C[0] = A[0]; }\n";

/* The parts of a spec; NULL keeps the good default, "" leaves it out. */
typedef struct {
  const char *name, *source, *entry, *reference, *constants, *args, *knobs, *constraints,
      *features, *flops, *tolerance, *extra;
} parts;

static const parts good = {
    .name = "\"name\": \"tiny\"",
    .source = "\"source\": \"tiny.c\"",
    .entry = "\"entry\": \"k\"",
    .reference = "\"reference\": \"k_ref\"",
    .constants = "\"constants\": {\"M\": 64, \"N\": 32}",
    .args = "\"args\": [{\"name\": \"C\", \"type\": \"float\", \"count\": \"M*N\", \"output\": true},"
            " {\"name\": \"A\", \"type\": \"float\", \"count\": \"M\"}]",
    .knobs = "\"knobs\": {\"TI\": [1, 2, 4, 8], \"U\": [3], \"TJ\": [16, 8]}",
    .constraints = "\"constraints\": [\"TI * TJ <= 32\", \"M % TI == 0\"]",
    .features = "\"features\": [\"TI * TJ\", \"M / TI + U\"]",
    .flops = "\"flops\": \"2 * M * N\"",
    .tolerance = "",
    .extra = "",
};

/* Writes spec.json from parts and returns its path. */
static const char *write_spec(parts p) {
  const char *f[] = {p.name ? p.name : good.name,
                     p.source ? p.source : good.source,
                     p.entry ? p.entry : good.entry,
                     p.reference ? p.reference : good.reference,
                     p.constants ? p.constants : good.constants,
                     p.args ? p.args : good.args,
                     p.knobs ? p.knobs : good.knobs,
                     p.constraints ? p.constraints : good.constraints,
                     p.features ? p.features : good.features,
                     p.flops ? p.flops : good.flops,
                     p.tolerance ? p.tolerance : good.tolerance,
                     p.extra ? p.extra : good.extra};
  static char text[4096];
  size_t used = snprintf(text, sizeof text, "{");
  int first = 1;
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
    if (!*f[i]) continue;
    used += snprintf(text + used, sizeof text - used, "%s\n  %s", first ? "" : ",", f[i]);
    first = 0;
  }
  snprintf(text + used, sizeof text - used, "\n}\n");
  write_file("spec.json", text);
  static char path[256];
  snprintf(path, sizeof path, "%s/spec.json", dir);
  return path;
}

/* Loading must fail with a message naming the file, the field and the reason. */
static void expect_error(parts p, const char *field, const char *reason) {
  const char *path = write_spec(p);
  task_spec t;
  char err[512] = "";
  int rc = task_load(path, &t, err, sizeof err);
  if (rc >= 0) TEST_FAIL("loaded a bad spec (wanted %s: %s)", field, reason);
  char want[256];
  snprintf(want, sizeof want, "%s: %s: ", path, field);
  ASSERT_CONTAINS(err, want);
  ASSERT_CONTAINS(err, reason);
  ASSERT_NULL(t.name); /* freed on error */
}

static void setup(void) {
  make_dir();
  write_file("tiny.c", tmpl);
}

TEST(good_spec_loads) {
  setup();
  task_spec t;
  char err[512] = "";
  const char *path = write_spec((parts){0});
  int rc = task_load(path, &t, err, sizeof err);
  if (rc != 0) TEST_FAIL("load: %s", err);
  ASSERT_EQ_STR(t.name, "tiny");
  ASSERT_EQ_STR(t.source, tmpl);
  ASSERT_EQ_STR(t.entry, "k");
  ASSERT_EQ_STR(t.reference, "k_ref");
  ASSERT_EQ_STR(t.flops, "2 * M * N");
  ASSERT_EQ_INT(t.nconsts, 2);
  ASSERT_EQ_STR(t.consts[0].name, "M");
  ASSERT_EQ_INT(t.consts[0].value, 64);
  ASSERT_EQ_STR(t.consts[1].name, "N");
  ASSERT_EQ_INT(t.nargs, 2);
  ASSERT_EQ_STR(t.args[0].name, "C");
  ASSERT_EQ_STR(t.args[0].type, "float");
  ASSERT_EQ_STR(t.args[0].count, "M*N");
  ASSERT_EQ_INT(t.args[0].output, 1);
  ASSERT_EQ_INT(t.args[1].output, 0);
  /* knobs keep the spec's order (not sorted), which fixes the config index */
  ASSERT_EQ_INT(t.nknobs, 3);
  ASSERT_EQ_STR(t.knobs[0].name, "TI");
  ASSERT_EQ_STR(t.knobs[1].name, "U");
  ASSERT_EQ_STR(t.knobs[2].name, "TJ");
  ASSERT_EQ_INT(t.knobs[0].nvalues, 4);
  ASSERT_EQ_INT(t.knobs[0].values[3], 8);
  ASSERT_EQ_INT(t.knobs[2].values[0], 16);
  ASSERT_EQ_INT(t.nconstraints, 2);
  ASSERT_EQ_STR(t.constraints[1], "M % TI == 0");
  ASSERT_EQ_INT(t.nfeatures, 2);
  ASSERT_EQ_STR(t.features[0], "TI * TJ");
  ASSERT_EQ_STR(t.features[1], "M / TI + U");
  ASSERT_EQ_DBL(t.rtol, 1e-4, 0);
  ASSERT_EQ_DBL(t.atol, 1e-5, 0);
  ASSERT_EQ_INT(task_check(&t, err, sizeof err), 0);
  task_free(&t);
  ASSERT_NULL(t.name);
  task_free(&t); /* idempotent */
  cleanup();
}

TEST(optional_fields) {
  setup();
  task_spec t;
  char err[512] = "";
  /* integers for expressions, no reference/constraints/constants, tolerance given */
  const char *path = write_spec((parts){
      .reference = "",
      .constants = "",
      .constraints = "",
      .features = "",
      .args = "\"args\": [{\"name\": \"C\", \"type\": \"int64\", \"count\": 16, \"output\": true}]",
      .flops = "\"flops\": 100",
      .tolerance = "\"tolerance\": {\"rtol\": 0.5, \"atol\": 0}",
      .extra = "\"description\": \"a test\""});
  if (task_load(path, &t, err, sizeof err) != 0) TEST_FAIL("load: %s", err);
  ASSERT_NULL(t.reference);
  ASSERT_EQ_INT(t.nconsts, 0);
  ASSERT_EQ_INT(t.nconstraints, 0);
  ASSERT_EQ_INT(t.nfeatures, 0);
  ASSERT_NULL(t.features);
  ASSERT_EQ_STR(t.args[0].count, "16");
  ASSERT_EQ_STR(t.flops, "100");
  ASSERT_EQ_DBL(t.rtol, 0.5, 0);
  ASSERT_EQ_DBL(t.atol, 0, 0);
  task_free(&t);
  cleanup();
}

TEST(missing_field) {
  setup();
  expect_error((parts){.entry = ""}, "entry", "missing");
  expect_error((parts){.name = ""}, "name", "missing");
  expect_error((parts){.source = ""}, "source", "missing");
  expect_error((parts){.args = ""}, "args", "missing");
  expect_error((parts){.flops = ""}, "flops", "missing");
  expect_error((parts){.args = "\"args\": [{\"name\": \"C\", \"type\": \"float\", \"output\": true}]"},
               "args[0].count", "missing");
  cleanup();
}

TEST(wrong_type) {
  setup();
  expect_error((parts){.name = "\"name\": 5"}, "name", "got an integer");
  expect_error((parts){.entry = "\"entry\": [\"k\"]"}, "entry", "got an array");
  expect_error((parts){.constants = "\"constants\": {\"M\": \"64\", \"N\": 1}"}, "constants.M",
               "expected an integer, got a string");
  expect_error((parts){.constants = "\"constants\": {\"M\": 6.5, \"N\": 1}"}, "constants.M",
               "expected an integer");
  expect_error((parts){.args = "\"args\": {\"C\": 1}"}, "args", "expected an array");
  expect_error((parts){.args = "\"args\": [{\"name\": \"C\", \"type\": \"float\", \"count\": "
                               "\"M\", \"output\": 1}]"},
               "args[0].output", "expected true or false");
  expect_error((parts){.constraints = "\"constraints\": \"TI < 4\""}, "constraints",
               "expected an array");
  expect_error((parts){.constraints = "\"constraints\": [\"TI < 4\", 3]"}, "constraints[1]",
               "expected an expression string");
  expect_error((parts){.tolerance = "\"tolerance\": {\"rtol\": \"small\"}"}, "tolerance.rtol",
               "expected a finite number");
  expect_error((parts){.tolerance = "\"tolerance\": {\"rtol\": -1}"}, "tolerance.rtol",
               "expected a finite number");
  expect_error((parts){.name = "\"name\": \"has space\""}, "name", "letters, digits");
  expect_error((parts){.entry = "\"entry\": \"not-an-ident\""}, "entry", "C function name");
  cleanup();
}

TEST(unknown_arg_type) {
  setup();
  expect_error((parts){.args = "\"args\": [{\"name\": \"C\", \"type\": \"half\", \"count\": "
                               "\"M\", \"output\": true}]"},
               "args[0].type", "unknown type 'half' (expected float, double, int32 or int64)");
  cleanup();
}

TEST(count_names_unknown_constant) {
  setup();
  expect_error((parts){.args = "\"args\": [{\"name\": \"C\", \"type\": \"float\", \"count\": "
                               "\"M*Q\", \"output\": true}]"},
               "args[0].count", "at 3: unknown name 'Q' (constants: M, N)");
  /* a knob is not a constant: buffers are sized once per task */
  expect_error((parts){.args = "\"args\": [{\"name\": \"C\", \"type\": \"float\", \"count\": "
                               "\"M*TI\", \"output\": true}]"},
               "args[0].count", "names the knob 'TI'");
  expect_error((parts){.args = "\"args\": [{\"name\": \"C\", \"type\": \"float\", \"count\": "
                               "\"M*(N\", \"output\": true}]"},
               "args[0].count", "at 5: expected ')'");
  expect_error((parts){.flops = "\"flops\": \"2*M*K\""}, "flops", "unknown name 'K'");
  cleanup();
}

TEST(non_positive_count) {
  setup();
  expect_error((parts){.args = "\"args\": [{\"name\": \"C\", \"type\": \"float\", \"count\": "
                               "\"M-N-N\", \"output\": true}]"},
               "args[0].count", "'M-N-N' must be positive, is 0 (with M=64, N=32)");
  expect_error((parts){.constants = "\"constants\": {\"M\": -1, \"N\": 32}"}, "args[0].count",
               "must be positive, is -32");
  expect_error((parts){.flops = "\"flops\": \"M - M\""}, "flops", "must be positive");
  cleanup();
}

TEST(knob_values) {
  setup();
  expect_error((parts){.knobs = "\"knobs\": {\"TI\": [], \"TJ\": [1]}"}, "knobs.TI",
               "non-empty array");
  expect_error((parts){.knobs = "\"knobs\": {\"TI\": 4, \"TJ\": [1]}"}, "knobs.TI",
               "non-empty array of integer values, got an integer");
  expect_error((parts){.knobs = "\"knobs\": {\"TI\": [1, 2.5], \"TJ\": [1]}"}, "knobs.TI[1]",
               "expected an integer, got a real number");
  expect_error((parts){.knobs = "\"knobs\": {\"TI\": [1, \"2\"], \"TJ\": [1]}"}, "knobs.TI[1]",
               "expected an integer, got a string");
  expect_error((parts){.knobs = "\"knobs\": {\"TI\": [1, 2, 1], \"TJ\": [1]}"}, "knobs.TI",
               "value 1 appears twice");
  expect_error((parts){.knobs = "\"knobs\": {\"TI\": [1], \"TJ\": [1], \"2X\": [1]}"},
               "knobs.2X", "C identifier");
  cleanup();
}

TEST(source_missing) {
  setup();
  expect_error((parts){.source = "\"source\": \"nope.c\""}, "source", "'nope.c' does not exist");
  expect_error((parts){.source = "\"source\": \"\""}, "source", "template file name");
  write_file("empty.c", "");
  expect_error((parts){.source = "\"source\": \"empty.c\""}, "source", "is empty");
  cleanup();
}

TEST(source_relative_to_spec_dir) {
  setup();
  const char *path = write_spec((parts){0});
  /* load from another working directory: the template is found next to the spec */
  ASSERT_EQ_INT(chdir("/"), 0);
  task_spec t;
  char err[512] = "";
  if (task_load(path, &t, err, sizeof err) != 0) TEST_FAIL("load: %s", err);
  ASSERT_EQ_STR(t.source, tmpl);
  task_free(&t);
  /* and a relative spec path works too */
  ASSERT_EQ_INT(chdir(dir), 0);
  if (task_load("spec.json", &t, err, sizeof err) != 0) TEST_FAIL("load: %s", err);
  task_free(&t);
  cleanup();
}

TEST(duplicate_names) {
  setup();
  expect_error((parts){.knobs = "\"knobs\": {\"M\": [1, 2], \"TI\": [1], \"TJ\": [1]}"},
               "knobs.M", "also a constant");
  /* JSON itself refuses the repeated key, naming the file and the line */
  const char *path = write_spec((parts){.knobs = "\"knobs\": {\"TI\": [1], \"TI\": [2]}"});
  task_spec t;
  char err[512] = "";
  ASSERT(task_load(path, &t, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, path);
  ASSERT_CONTAINS(err, "duplicate");
  ASSERT_CONTAINS(err, "TI");
  expect_error((parts){.args = "\"args\": [{\"name\": \"C\", \"type\": \"float\", \"count\": "
                               "\"M\", \"output\": true}, {\"name\": \"C\", \"type\": \"float\", "
                               "\"count\": \"M\"}]"},
               "args[1].name", "'C' appears twice");
  expect_error((parts){.args = "\"args\": [{\"name\": \"M\", \"type\": \"float\", \"count\": "
                               "\"M\", \"output\": true}]"},
               "args[0].name", "also a constant");
  expect_error((parts){.args = "\"args\": [{\"name\": \"TI\", \"type\": \"float\", \"count\": "
                               "\"M\", \"output\": true}]"},
               "args[0].name", "also a knob");
  expect_error((parts){.reference = "\"reference\": \"k\""}, "reference", "must differ");
  /* knobs and constants become #defines: keywords and function names break every build */
  expect_error((parts){.knobs = "\"knobs\": {\"float\": [1], \"TJ\": [1]}"}, "knobs.float",
               "a C keyword");
  expect_error((parts){.knobs = "\"knobs\": {\"k\": [1], \"TJ\": [1]}"}, "knobs.k",
               "the entry function's name");
  expect_error((parts){.constants = "\"constants\": {\"M\": 4, \"while\": 2}"},
               "constants.while", "a C keyword");
  cleanup();
}

TEST(too_many_args) {
  setup();
  /* the runner passes at most 8 buffers to a kernel */
  char args[2048] = "\"args\": [";
  for (int i = 0; i < 9; i++)
    snprintf(args + strlen(args), sizeof(args) - strlen(args),
             "%s{\"name\": \"B%d\", \"type\": \"float\", \"count\": \"M\"%s}", i ? ", " : "",
             i, i == 0 ? ", \"output\": true" : "");
  strcat(args, "]");
  expect_error((parts){.args = args}, "args", "at most 8 allowed");
  cleanup();
}

TEST(no_output_arg) {
  setup();
  expect_error((parts){.args = "\"args\": [{\"name\": \"C\", \"type\": \"float\", \"count\": "
                               "\"M\", \"output\": false}, {\"name\": \"A\", \"type\": "
                               "\"float\", \"count\": \"M\"}]"},
               "args", "at least one argument with \"output\": true");
  expect_error((parts){.args = "\"args\": []"}, "args", "at least one buffer");
  cleanup();
}

TEST(constraint_unknown_name) {
  setup();
  expect_error((parts){.constraints = "\"constraints\": [\"TI <= 8\", \"TI * TK <= 32\"]"},
               "constraints[1]", "at 6: unknown name 'TK'");
  expect_error((parts){.constraints = "\"constraints\": [\"TI <=\"]"}, "constraints[0]",
               "at 6: expected");
  /* arithmetic is only checked per config: a division by a knob is fine */
  const char *path = write_spec((parts){.constraints = "\"constraints\": [\"M / (TI - 1) > 0\"]"});
  task_spec t;
  char err[512] = "";
  if (task_load(path, &t, err, sizeof err) != 0) TEST_FAIL("load: %s", err);
  task_free(&t);
  cleanup();
}

/* Features are checked as constraints are, each named by its index. */
TEST(feature_errors) {
  setup();
  expect_error((parts){.features = "\"features\": \"TI * TJ\""}, "features",
               "expected an array of expression strings, got a string");
  expect_error((parts){.features = "\"features\": [\"TI\", 4]"}, "features[1]",
               "expected an expression string, got an integer");
  expect_error((parts){.features = "\"features\": [\"TI * TJ\", \"TI * TK\"]"}, "features[1]",
               "'TI * TK': at 6: unknown name 'TK' (constants: M, N; knobs: TI, U, TJ)");
  expect_error((parts){.features = "\"features\": [\"TI *\"]"}, "features[0]", "at 5: expected");
  expect_error((parts){.features = "\"features\": [\"TI\", \"\"]"}, "features[1]",
               "expected an expression over knobs and constants");
  /* 65 of them: one past the limit */
  static char many[1024];
  size_t used = (size_t)snprintf(many, sizeof many, "\"features\": [");
  for (int i = 0; i < 65; i++)
    used += (size_t)snprintf(many + used, sizeof many - used, "%s\"TI\"", i ? ", " : "");
  snprintf(many + used, sizeof many - used, "]");
  expect_error((parts){.features = many}, "features", "at most 64 allowed");
  /* arithmetic is per config, as for constraints: a division by a knob loads */
  const char *path = write_spec((parts){.features = "\"features\": [\"M / (TI - 1)\"]"});
  task_spec t;
  char err[512] = "";
  if (task_load(path, &t, err, sizeof err) != 0) TEST_FAIL("load: %s", err);
  ASSERT_EQ_INT(t.nfeatures, 1);
  /* and task_check sees an edit */
  free(t.features[0]);
  t.features[0] = strdup("U + V");
  ASSERT(task_check(&t, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, "tiny: features[0]: 'U + V': at 5: unknown name 'V'");
  task_free(&t);
  cleanup();
}

TEST(unknown_field_and_bad_json) {
  setup();
  expect_error((parts){.extra = "\"knob\": {\"X\": [1]}"}, "knob", "unknown field");
  expect_error((parts){.tolerance = "\"tolerance\": {\"rtol\": 1, \"abs\": 2}"}, "tolerance.abs",
               "unknown field");
  expect_error((parts){.args = "\"args\": [{\"name\": \"C\", \"type\": \"float\", \"count\": "
                               "\"M\", \"output\": true, \"const\": true}]"},
               "args[0].const", "unknown field");
  write_file("spec.json", "{\"name\": \"x\",");
  task_spec t;
  char err[512] = "", path[256];
  snprintf(path, sizeof path, "%s/spec.json", dir);
  ASSERT(task_load(path, &t, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, path);
  ASSERT_CONTAINS(err, "line 1");
  write_file("spec.json", "[1, 2]");
  ASSERT(task_load(path, &t, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, "expected a JSON object");
  snprintf(path, sizeof path, "%s/absent.json", dir);
  ASSERT(task_load(path, &t, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, path);
  ASSERT_CONTAINS(err, "No such file");
  cleanup();
}

static void load_good(task_spec *t) {
  char err[512] = "";
  if (task_load(write_spec((parts){0}), t, err, sizeof err) != 0) TEST_FAIL("load: %s", err);
}

TEST(set_const_and_check) {
  setup();
  task_spec t;
  load_good(&t);
  char err[512] = "";
  ASSERT_EQ_INT(task_set_const(&t, "M", 128, err, sizeof err), 0);
  ASSERT_EQ_INT(t.consts[0].value, 128);
  ASSERT_EQ_INT(task_check(&t, err, sizeof err), 0);
  ASSERT(task_set_const(&t, "K", 1, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, "unknown constant 'K' (constants: M, N)");
  ASSERT(task_set_const(&t, "TI", 1, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, "'TI' is a knob");
  /* an override that empties a buffer is caught by the re-check */
  ASSERT_EQ_INT(task_set_const(&t, "N", 0, err, sizeof err), 0);
  ASSERT(task_check(&t, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, "tiny: args[0].count: 'M*N' must be positive, is 0 (with M=128, N=0)");
  /* and one that overflows */
  ASSERT_EQ_INT(task_set_const(&t, "N", INT64_MAX, err, sizeof err), 0);
  ASSERT(task_check(&t, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, "args[0].count");
  ASSERT_CONTAINS(err, "overflow");
  task_free(&t);
  cleanup();
}

TEST(eval) {
  setup();
  task_spec t;
  load_good(&t);
  char err[512] = "";
  int64_t v;
  ASSERT_EQ_INT(task_eval(&t, NULL, "M*N", &v, err, sizeof err), 0);
  ASSERT_EQ_INT(v, 64 * 32);
  ASSERT(task_eval(&t, NULL, "TI", &v, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, "at 1: unknown name 'TI'");
  int64_t knobs[] = {4, 3, 8}; /* TI, U, TJ */
  ASSERT_EQ_INT(task_eval(&t, knobs, "TI * TJ + U + M", &v, err, sizeof err), 0);
  ASSERT_EQ_INT(v, 4 * 8 + 3 + 64);
  task_free(&t);
  cleanup();
}

static void assert_same(const task_spec *a, const task_spec *b) {
  ASSERT_EQ_STR(a->name, b->name);
  ASSERT_EQ_STR(a->source, b->source);
  ASSERT_EQ_STR(a->entry, b->entry);
  if (a->reference || b->reference) ASSERT_EQ_STR(a->reference, b->reference);
  ASSERT_EQ_STR(a->flops, b->flops);
  if (a->bytes || b->bytes) ASSERT_EQ_STR(a->bytes, b->bytes);
  ASSERT_EQ_INT(a->nconsts, b->nconsts);
  for (size_t i = 0; i < a->nconsts; i++) {
    ASSERT_EQ_STR(a->consts[i].name, b->consts[i].name);
    ASSERT_EQ_INT(a->consts[i].value, b->consts[i].value);
  }
  ASSERT_EQ_INT(a->nargs, b->nargs);
  for (size_t i = 0; i < a->nargs; i++) {
    ASSERT_EQ_STR(a->args[i].name, b->args[i].name);
    ASSERT_EQ_STR(a->args[i].type, b->args[i].type);
    ASSERT_EQ_STR(a->args[i].count, b->args[i].count);
    ASSERT_EQ_INT(a->args[i].output, b->args[i].output);
  }
  ASSERT_EQ_INT(a->nknobs, b->nknobs);
  for (size_t i = 0; i < a->nknobs; i++) {
    ASSERT_EQ_STR(a->knobs[i].name, b->knobs[i].name);
    ASSERT_EQ_INT(a->knobs[i].nvalues, b->knobs[i].nvalues);
    for (size_t j = 0; j < a->knobs[i].nvalues; j++)
      ASSERT_EQ_INT(a->knobs[i].values[j], b->knobs[i].values[j]);
  }
  ASSERT_EQ_INT(a->nconstraints, b->nconstraints);
  for (size_t i = 0; i < a->nconstraints; i++)
    ASSERT_EQ_STR(a->constraints[i], b->constraints[i]);
  ASSERT_EQ_INT(a->nfeatures, b->nfeatures);
  for (size_t i = 0; i < a->nfeatures; i++) ASSERT_EQ_STR(a->features[i], b->features[i]);
  ASSERT_EQ_DBL(a->rtol, b->rtol, 0);
  ASSERT_EQ_DBL(a->atol, b->atol, 0);
}

TEST(proto_round_trip) {
  setup();
  task_spec t, back;
  load_good(&t);
  char err[512] = "";
  Ktune__TaskSpec *p = NULL;
  ASSERT_EQ_INT(task_to_proto(&t, &p), 0);
  ASSERT_NOT_NULL(p);
  ASSERT_EQ_INT(p->n_features, 2);
  ASSERT_EQ_STR(p->features[1], "M / TI + U");
  if (task_from_proto(p, &back, err, sizeof err) != 0) TEST_FAIL("from_proto: %s", err);
  assert_same(&t, &back);
  ASSERT_EQ_INT(back.nfeatures, 2);
  task_free(&back);

  /* through the wire bytes, as the tracker receives it */
  size_t len = ktune__task_spec__get_packed_size(p);
  uint8_t *buf = malloc(len);
  ASSERT_NOT_NULL(buf);
  ASSERT_EQ_U64(ktune__task_spec__pack(p, buf), len);
  Ktune__TaskSpec *u = ktune__task_spec__unpack(NULL, len, buf);
  ASSERT_NOT_NULL(u);
  if (task_from_proto(u, &back, err, sizeof err) != 0) TEST_FAIL("from_proto: %s", err);
  assert_same(&t, &back);
  task_free(&back);
  ktune__task_spec__free_unpacked(u, NULL);
  free(buf);
  task_proto_free(p);

  /* no reference survives as no reference */
  free(t.reference);
  t.reference = NULL;
  ASSERT_EQ_INT(task_to_proto(&t, &p), 0);
  ASSERT_EQ_INT(task_from_proto(p, &back, err, sizeof err), 0);
  ASSERT_NULL(back.reference);
  task_free(&back);
  task_proto_free(p);
  task_free(&t);
  task_proto_free(NULL);
  cleanup();
}

/* Each hostile edit of a good message must be refused with a message. */
TEST(proto_untrusted) {
  setup();
  task_spec t, back;
  load_good(&t);
  char err[512];
  Ktune__TaskSpec *p = NULL;
  ASSERT_EQ_INT(task_to_proto(&t, &p), 0);

#define REFUSE(edit, restore, want)                                   \
  do {                                                                \
    edit;                                                             \
    err[0] = '\0';                                                    \
    ASSERT(task_from_proto(p, &back, err, sizeof err) < 0);           \
    ASSERT_CONTAINS(err, want);                                       \
    ASSERT_NULL(back.name);                                           \
    restore;                                                          \
    ASSERT_EQ_INT(task_from_proto(p, &back, err, sizeof err), 0);     \
    task_free(&back);                                                 \
  } while (0)

  char *saved;
  saved = p->args[0]->type;
  REFUSE(p->args[0]->type = "float16", p->args[0]->type = saved, "args[0].type");
  saved = p->name;
  REFUSE(p->name = "", p->name = saved, "name");
  REFUSE(p->name = NULL, p->name = saved, "name");
  saved = p->entry;
  REFUSE(p->entry = "1bad", p->entry = saved, "entry");
  saved = p->source;
  REFUSE(p->source = "", p->source = saved, "source");
  saved = p->args[0]->count;
  REFUSE(p->args[0]->count = "M*Q", p->args[0]->count = saved, "unknown name 'Q'");
  REFUSE(p->args[0]->count = "M-M", p->args[0]->count = saved, "must be positive");
  saved = p->constraints[0];
  REFUSE(p->constraints[0] = "TI < ZZ", p->constraints[0] = saved, "unknown name 'ZZ'");
  saved = p->features[1];
  REFUSE(p->features[1] = "TI * ZZ", p->features[1] = saved,
         "task spec: features[1]: 'TI * ZZ': at 6: unknown name 'ZZ'");
  REFUSE(p->features[1] = "", p->features[1] = saved, "features[1]: expected an expression");
  REFUSE(p->features[1] = NULL, p->features[1] = saved, "features[1]: missing or too long");
  size_t nf = p->n_features;
  REFUSE(p->n_features = 100000, p->n_features = nf, "features: at most 64");
  char **fs = p->features;
  REFUSE(p->features = NULL, p->features = fs, "malformed message");
  REFUSE(p->args[0]->output = 0, p->args[0]->output = 1, "output");
  size_t nk = p->n_knobs;
  REFUSE(p->n_knobs = 100000, p->n_knobs = nk, "knobs: at most");
  size_t nv = p->knobs[0]->n_values;
  REFUSE(p->knobs[0]->n_values = 0, p->knobs[0]->n_values = nv, "knobs.TI");
  Ktune__Knob *k0 = p->knobs[0];
  REFUSE(p->knobs[0] = NULL, p->knobs[0] = k0, "knobs[0]: missing");
  saved = p->knobs[1]->name;
  REFUSE(p->knobs[1]->name = "TI", p->knobs[1]->name = saved, "appears twice");
  REFUSE(p->knobs[1]->name = "M", p->knobs[1]->name = saved, "also a constant");
  REFUSE(p->rtol = -1, p->rtol = t.rtol, "tolerance.rtol");
  REFUSE(p->atol = NAN, p->atol = t.atol, "tolerance.atol");
  char *big = malloc(5000);
  memset(big, 'x', 4999);
  big[4999] = '\0';
  saved = p->flops;
  REFUSE(p->flops = big, p->flops = saved, "flops");
  free(big);
#undef REFUSE
  ASSERT(task_from_proto(NULL, &back, err, sizeof err) < 0);
  task_proto_free(p);
  task_free(&t);
  cleanup();
}

TEST(find_and_list) {
  setup();
  write_file("zeta.json", "{}");
  write_file("alpha.json", "{}");
  write_file("notes.txt", "x");
  char sub[128];
  snprintf(sub, sizeof sub, "%s/dir.json", dir);
  ASSERT_EQ_INT(mkdir(sub, 0700), 0); /* a folder is not a task */
  ASSERT_EQ_INT(setenv("KTUNE_TASKS", dir, 1), 0);

  char path[512], err[512], want[512];
  ASSERT_EQ_INT(catalogue_find("alpha", path, sizeof path, err, sizeof err), 0);
  snprintf(want, sizeof want, "%s/alpha.json", dir);
  ASSERT_EQ_STR(path, want);

  /* an existing path is taken as it is */
  ASSERT_EQ_INT(catalogue_find(want, path, sizeof path, err, sizeof err), 0);
  ASSERT_EQ_STR(path, want);

  ASSERT(catalogue_find("nosuch", path, sizeof path, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, "unknown task 'nosuch'");
  ASSERT_CONTAINS(err, "built-in tasks: alpha, zeta");
  ASSERT(catalogue_find("./nosuch.json", path, sizeof path, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, "no such task spec file");
  ASSERT(catalogue_find("alpha", path, 8, err, sizeof err) < 0);

  char **list = NULL;
  size_t n = 0;
  ASSERT_EQ_INT(catalogue_list(&list, &n, err, sizeof err), 0);
  ASSERT_EQ_INT(n, 2);
  snprintf(want, sizeof want, "%s/alpha.json", dir);
  ASSERT_EQ_STR(list[0], want);
  snprintf(want, sizeof want, "%s/zeta.json", dir);
  ASSERT_EQ_STR(list[1], want);
  for (size_t i = 0; i < n; i++) free(list[i]);
  free(list);

  /* an empty folder: nothing listed, and the error says where it looked */
  char empty[128];
  snprintf(empty, sizeof empty, "%s/none", dir);
  ASSERT_EQ_INT(mkdir(empty, 0700), 0);
  ASSERT_EQ_INT(setenv("KTUNE_TASKS", empty, 1), 0);
  ASSERT_EQ_INT(catalogue_list(&list, &n, err, sizeof err), 0);
  ASSERT_EQ_INT(n, 0);
  free(list);
  ASSERT(catalogue_find("alpha", path, sizeof path, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, empty);
  cleanup();
}

/* bytes: optional, checked like flops (constants only, positive), and
 * every mistake names the field. */
TEST(bytes_field) {
  setup();
  task_spec t;
  char err[512] = "";
  load_good(&t);
  ASSERT_NULL(t.bytes);
  ASSERT_EQ_INT(task_bytes(&t), 0);
  task_free(&t);
  const char *path = write_spec((parts){.extra = "\"bytes\": \"2 * M * N * 4\""});
  if (task_load(path, &t, err, sizeof err) != 0) TEST_FAIL("load: %s", err);
  ASSERT_EQ_STR(t.bytes, "2 * M * N * 4");
  ASSERT_EQ_INT(task_bytes(&t), 2 * 64 * 32 * 4);
  /* -D that leaves nothing to move is caught by the re-check. */
  ASSERT_EQ_INT(task_set_const(&t, "N", 0, err, sizeof err), 0);
  ASSERT(task_check(&t, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, "args[0].count");
  task_free(&t);
  path = write_spec((parts){.extra = "\"bytes\": 4096"});
  if (task_load(path, &t, err, sizeof err) != 0) TEST_FAIL("load: %s", err);
  ASSERT_EQ_INT(task_bytes(&t), 4096);
  task_free(&t);

  expect_error((parts){.extra = "\"bytes\": \"M * Q\""}, "bytes", "at 5: unknown name 'Q'");
  expect_error((parts){.extra = "\"bytes\": \"M * TI\""}, "bytes", "names the knob 'TI'");
  expect_error((parts){.extra = "\"bytes\": \"M - M\""}, "bytes",
               "'M - M' must be positive, is 0 (with M=64, N=32)");
  expect_error((parts){.extra = "\"bytes\": \"M * (N\""}, "bytes", "expected ')'");
  expect_error((parts){.extra = "\"bytes\": \"\""}, "bytes", "expected an expression");
  expect_error((parts){.extra = "\"bytes\": true"}, "bytes", "got a boolean");
  cleanup();
}

TEST(bytes_on_the_wire) {
  setup();
  task_spec t, back;
  char err[512] = "";
  load_good(&t);
  Ktune__TaskSpec *p = NULL;
  /* none stays none */
  ASSERT_EQ_INT(task_to_proto(&t, &p), 0);
  ASSERT_EQ_STR(p->bytes, "");
  ASSERT_EQ_INT(task_from_proto(p, &back, err, sizeof err), 0);
  ASSERT_NULL(back.bytes);
  task_free(&back);
  task_proto_free(p);

  t.bytes = strdup("M * N * 8");
  ASSERT_EQ_INT(task_to_proto(&t, &p), 0);
  size_t len = ktune__task_spec__get_packed_size(p);
  uint8_t *buf = malloc(len);
  ASSERT_NOT_NULL(buf);
  ktune__task_spec__pack(p, buf);
  Ktune__TaskSpec *u = ktune__task_spec__unpack(NULL, len, buf);
  ASSERT_NOT_NULL(u);
  if (task_from_proto(u, &back, err, sizeof err) != 0) TEST_FAIL("from_proto: %s", err);
  assert_same(&t, &back);
  ASSERT_EQ_INT(task_bytes(&back), 64 * 32 * 8);
  task_free(&back);
  ktune__task_spec__free_unpacked(u, NULL);
  free(buf);

  /* untrusted: checked as a file's would be */
  const char *bad[][2] = {{"M * ZZ", "task spec: bytes: 'M * ZZ'"},
                          {"N - N", "bytes: 'N - N' must be positive"},
                          {"TI", "bytes: 'TI' names the knob 'TI'"}};
  char *saved = p->bytes;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    p->bytes = (char *)bad[i][0];
    ASSERT(task_from_proto(p, &back, err, sizeof err) < 0);
    ASSERT_CONTAINS(err, bad[i][1]);
    ASSERT_NULL(back.name);
  }
  char *big = malloc(5000);
  memset(big, 'x', 4999);
  big[4999] = '\0';
  p->bytes = big;
  ASSERT(task_from_proto(p, &back, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, "bytes: missing or too long");
  free(big);
  p->bytes = saved;
  task_proto_free(p);
  task_free(&t);
  cleanup();
}

TEST_LIST(TEST_ENTRY(too_many_args), TEST_ENTRY(good_spec_loads), TEST_ENTRY(optional_fields), TEST_ENTRY(missing_field),
          TEST_ENTRY(wrong_type), TEST_ENTRY(unknown_arg_type),
          TEST_ENTRY(count_names_unknown_constant), TEST_ENTRY(non_positive_count),
          TEST_ENTRY(knob_values), TEST_ENTRY(source_missing),
          TEST_ENTRY(source_relative_to_spec_dir), TEST_ENTRY(duplicate_names),
          TEST_ENTRY(no_output_arg), TEST_ENTRY(constraint_unknown_name),
          TEST_ENTRY(feature_errors),
          TEST_ENTRY(unknown_field_and_bad_json), TEST_ENTRY(set_const_and_check),
          TEST_ENTRY(eval), TEST_ENTRY(proto_round_trip), TEST_ENTRY(proto_untrusted),
          TEST_ENTRY(find_and_list), TEST_ENTRY(bytes_field), TEST_ENTRY(bytes_on_the_wire))
