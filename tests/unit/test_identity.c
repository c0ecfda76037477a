/* Identity: a digest changes with anything that changes what was built or
 * how it was measured, and with nothing else. */
#include "common/identity.h"

#include <errno.h>
#include <stdlib.h>

#include "common/space.h"
#include "common/timing.h"

#include "tests/test.h"

/* A small spec, built by hand so each case can change one thing. */
typedef struct {
  char source[64];
  task_param consts[2];
  task_arg args[2];
  task_knob knobs[1];
  int64_t knob_values[3];
  char *constraints[1];
  task_spec t;
} spec;

static void spec_init(spec *s) {
  memset(s, 0, sizeof(*s));
  snprintf(s->source, sizeof(s->source), "void k(float *a){a[0]=TI;} void ref(float *a){}");
  s->consts[0] = (task_param){"M", 64};
  s->consts[1] = (task_param){"N", 32};
  s->args[0] = (task_arg){"A", "float", "M*N", 0};
  s->args[1] = (task_arg){"C", "float", "M", 1};
  s->knob_values[0] = 1, s->knob_values[1] = 2, s->knob_values[2] = 4;
  s->knobs[0] = (task_knob){"TI", s->knob_values, 3};
  s->constraints[0] = "TI <= M";
  s->t = (task_spec){
    .name = "toy", .source = s->source, .entry = "k", .reference = "ref", .flops = "2*M*N",
    .consts = s->consts, .nconsts = 2, .args = s->args, .nargs = 2, .knobs = s->knobs,
    .nknobs = 1, .constraints = s->constraints, .nconstraints = 1, .rtol = 1e-4, .atol = 1e-6,
  };
}

static void kernel_of(const spec *s, char out[IDENT_HEX]) {
  int rc = ident_kernel(&s->t, out);
  if (rc != 0) TEST_FAIL("ident_kernel: %d", rc);
  ASSERT_EQ_INT(strlen(out), 64);
  ASSERT(ident_is_digest(out));
}

TEST(kernel_is_stable_and_hex) {
  spec a, b;
  spec_init(&a);
  spec_init(&b);
  char da[IDENT_HEX], db[IDENT_HEX];
  kernel_of(&a, da);
  kernel_of(&b, db);
  ASSERT_EQ_STR(da, db);
}

/* Each change is applied to a fresh spec and must move the digest. */
static void change_source(spec *s) { s->source[20] ^= 1; }
static void change_const(spec *s) { s->consts[1].value = 33; }
static void change_const_name(spec *s) { s->consts[1].name = "K"; }
static void change_rtol(spec *s) { s->t.rtol = 1e-3; }
static void change_atol(spec *s) { s->t.atol = 0; }
static void change_entry(spec *s) { s->t.entry = "k2"; }
static void change_reference(spec *s) { s->t.reference = "ref2"; }
static void change_flops(spec *s) { s->t.flops = "M*N"; }
static void add_bytes(spec *s) { s->t.bytes = "M*N*4"; }
static void add_other_bytes(spec *s) { s->t.bytes = "M*N*8"; }
static void change_arg_type(spec *s) { s->args[0].type = "double"; }
static void change_arg_count(spec *s) { s->args[1].count = "N"; }
static void change_arg_output(spec *s) { s->args[0].output = 1; }
static void drop_arg(spec *s) { s->t.nargs = 1; }
static void swap_args(spec *s) {
  task_arg x = s->args[0];
  s->args[0] = s->args[1];
  s->args[1] = x;
}
/* Fields that run together would hash the same bytes without lengths. */
static void shift_entry_into_reference(spec *s) {
  s->t.entry = "kr";
  s->t.reference = "ef";
}

TEST(kernel_changes_with_what_is_built) {
  void (*changes[])(spec *) = {change_source,    change_const,      change_const_name,
                               change_rtol,      change_atol,       change_entry,
                               change_reference, change_flops,      change_arg_type,
                               change_arg_count, change_arg_output, drop_arg,
                               swap_args,        shift_entry_into_reference,
                               add_bytes,        add_other_bytes};
  size_t n = sizeof(changes) / sizeof(changes[0]);
  spec base;
  spec_init(&base);
  char d0[IDENT_HEX], seen[sizeof(changes) / sizeof(changes[0])][IDENT_HEX];
  kernel_of(&base, d0);
  for (size_t i = 0; i < n; i++) {
    spec s;
    spec_init(&s);
    changes[i](&s);
    kernel_of(&s, seen[i]);
    if (strcmp(seen[i], d0) == 0) TEST_FAIL("change %zu left the kernel digest as it was", i);
    for (size_t k = 0; k < i; k++)
      if (strcmp(seen[i], seen[k]) == 0) TEST_FAIL("changes %zu and %zu collide", k, i);
  }
}

TEST(kernel_ignores_search_space_and_name) {
  spec base, s;
  spec_init(&base);
  spec_init(&s);
  char d0[IDENT_HEX], d1[IDENT_HEX];
  kernel_of(&base, d0);
  /* Knob values and constraints choose which configs are tried; the task
   * name is a label. None changes what one config computes. */
  s.knob_values[2] = 8;
  s.t.nconstraints = 0;
  s.t.name = "renamed";
  kernel_of(&s, d1);
  ASSERT_EQ_STR(d1, d0);
}

/* A spec may have no reference (its outputs are then not checked): it
 * still has a digest, and not that of the same spec with one. */
TEST(kernel_without_a_reference_has_its_own_digest) {
  spec s;
  spec_init(&s);
  char with[IDENT_HEX], without[IDENT_HEX];
  kernel_of(&s, with);
  s.t.reference = NULL;
  kernel_of(&s, without);
  ASSERT(strcmp(with, without) != 0);
}

TEST(kernel_refuses_incomplete_spec) {
  spec s;
  spec_init(&s);
  char d[IDENT_HEX] = "x";
  s.t.source = NULL;
  ASSERT_EQ_INT(ident_kernel(&s.t, d), -EINVAL);
  ASSERT_EQ_STR(d, "");
  ASSERT_EQ_INT(ident_kernel(NULL, d), -EINVAL);
}

#define K "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define CONFIG "{\"TI\":8,\"TJ\":16}"
#define TIMING "{\"number\":1,\"repeat\":3}"

static void trial_of(const char *kernel, const char *config, const char *compiler,
                     const char *key, const char *timing, int checked, char out[IDENT_HEX]) {
  int rc = ident_trial(kernel, config, compiler, key, timing, checked, out);
  if (rc != 0) TEST_FAIL("ident_trial: %d", rc);
  ASSERT(ident_is_digest(out));
}

TEST(trial_changes_with_how_it_was_measured) {
  char d0[IDENT_HEX], d[IDENT_HEX];
  trial_of(K, CONFIG, "tcc", "rpi4", TIMING, 1, d0);
  const char *k2 = "1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  trial_of(k2, CONFIG, "tcc", "rpi4", TIMING, 1, d);
  ASSERT(strcmp(d, d0) != 0);
  trial_of(K, "{\"TI\":8,\"TJ\":32}", "tcc", "rpi4", TIMING, 1, d);
  ASSERT(strcmp(d, d0) != 0);
  trial_of(K, CONFIG, "gcc -O3", "rpi4", TIMING, 1, d);
  ASSERT(strcmp(d, d0) != 0);
  trial_of(K, CONFIG, "tcc", "rpi5", TIMING, 1, d);
  ASSERT(strcmp(d, d0) != 0);
  trial_of(K, CONFIG, "tcc", "rpi4", "{\"number\":1,\"repeat\":4}", 1, d);
  ASSERT(strcmp(d, d0) != 0);
  trial_of(K, CONFIG, "tcc", "rpi4", "{\"number\":1,\"repeat\":3,\"flush_cache\":true}", 1, d);
  ASSERT(strcmp(d, d0) != 0);
  trial_of(K, CONFIG, "tcc", "rpi4", TIMING, 0, d);
  ASSERT(strcmp(d, d0) != 0);
  /* Compiler and key run together: lengths keep them apart. */
  char a[IDENT_HEX], b[IDENT_HEX];
  trial_of(K, CONFIG, "tc", "crpi4", TIMING, 1, a);
  trial_of(K, CONFIG, "tcc", "rpi4", TIMING, 1, b);
  ASSERT(strcmp(a, b) != 0);
}

TEST(trial_ignores_json_form) {
  char d0[IDENT_HEX], d[IDENT_HEX];
  trial_of(K, CONFIG, "tcc", "rpi4", TIMING, 1, d0);
  trial_of(K, "{ \"TJ\": 16,\n \"TI\": 8 }", "tcc", "rpi4", "{\"repeat\":3, \"number\":1}", 1, d);
  ASSERT_EQ_STR(d, d0);
  /* Any non-zero checked flag is the same "checked". */
  trial_of(K, CONFIG, "tcc", "rpi4", TIMING, 7, d);
  ASSERT_EQ_STR(d, d0);
  /* No timing is the empty object. */
  trial_of(K, CONFIG, "tcc", "rpi4", NULL, 1, d0);
  trial_of(K, CONFIG, "tcc", "rpi4", "{}", 1, d);
  ASSERT_EQ_STR(d, d0);
}

TEST(trial_refuses_bad_input) {
  char d[IDENT_HEX];
  ASSERT_EQ_INT(ident_trial("abc", CONFIG, "tcc", "k", NULL, 1, d), -EINVAL);
  ASSERT_EQ_INT(ident_trial(NULL, CONFIG, "tcc", "k", NULL, 1, d), -EINVAL);
  /* Upper case is not the form digests are stored in. */
  ASSERT_EQ_INT(ident_trial("0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
                            CONFIG, "tcc", "k", NULL, 1, d),
                -EINVAL);
  ASSERT_EQ_INT(ident_trial(K, "[1]", "tcc", "k", NULL, 1, d), -EINVAL);
  ASSERT_EQ_INT(ident_trial(K, "{\"TI\":1,\"TI\":2}", "tcc", "k", NULL, 1, d), -EINVAL);
  ASSERT_EQ_INT(ident_trial(K, CONFIG, NULL, "k", NULL, 1, d), -EINVAL);
  ASSERT_EQ_INT(ident_trial(K, CONFIG, "tcc", NULL, NULL, 1, d), -EINVAL);
  ASSERT_EQ_INT(ident_trial(K, CONFIG, "tcc", "k", "not json", 1, d), -EINVAL);
  ASSERT_EQ_STR(d, "");
}

TEST(canonical_object_sorts_and_compacts) {
  char *out = NULL, err[200] = "";
  ASSERT_EQ_INT(ident_canonical_object("{ \"b\": [1, 2], \"a\": {\"y\":1,\"x\":2} }", &out, err,
                                       sizeof(err)),
                0);
  ASSERT_EQ_STR(out, "{\"a\":{\"x\":2,\"y\":1},\"b\":[1,2]}");
  free(out);
  ASSERT_EQ_INT(ident_canonical_object("[1]", &out, err, sizeof(err)), -EINVAL);
  ASSERT_NULL(out);
  ASSERT_CONTAINS(err, "must be a JSON object");
  ASSERT_EQ_INT(ident_canonical_object("{", &out, err, sizeof(err)), -EINVAL);
  ASSERT_CONTAINS(err, "is not valid JSON");
}

/* The tracker digests its configs without parsing them
 * (ident_trial_canonical): what space_config_json and timing_json write
 * must be the canonical text, for every config and timing, or trials
 * would stop answering for each other. */
TEST(tracker_texts_are_canonical) {
  static int64_t wide[] = {-3, 0, 7, 1024, 9007199254740993};
  static int64_t one[] = {1};
  task_knob knobs[] = {{"ZZ", wide, 5}, {"A_b", one, 1}, {"a", wide, 5}, {"MR", wide, 5}};
  task_param consts[] = {{"N", 4}, {"M", -3}, {"a_b", 9007199254740993}};
  task_spec t = {.name = "k", .consts = consts, .nconsts = 3, .knobs = knobs, .nknobs = 4,
                 .flops = "N"};
  space sp;
  char err[256];
  if (space_init(&sp, &t, err, sizeof(err)) < 0) TEST_FAIL("space_init: %s", err);
  Ktune__Timing tm = KTUNE__TIMING__INIT;
  tm.number = 7;
  tm.flush_cache = 1;
  if (timing_fill(&tm, err, sizeof(err)) < 0) TEST_FAIL("timing_fill: %s", err);
  char *timing = timing_json(&tm);
  ASSERT_NOT_NULL(timing);
  /* The session's size, which trials store as it is (objects_canonical). */
  char *size = space_consts_json(&t), *canon;
  ASSERT_EQ_INT(ident_canonical_object(size, &canon, err, sizeof(err)), 0);
  ASSERT_EQ_STR(size, canon);
  free(canon);
  ASSERT_EQ_INT(ident_canonical_object(timing, &canon, err, sizeof(err)), 0);
  ASSERT_EQ_STR(timing, canon);
  free(canon);
  free(size);
  for (uint64_t i = 0; i < sp.size; i++) {
    int64_t v[4];
    ASSERT_EQ_INT(space_config(&sp, i, v), 0);
    char *config = space_config_json(&sp, v);
    ASSERT_NOT_NULL(config);
    char a[IDENT_HEX], b[IDENT_HEX];
    ASSERT_EQ_INT(ident_trial(K, config, "tcc", "k", timing, 1, a), 0);
    ASSERT_EQ_INT(ident_trial_canonical(K, config, "tcc", "k", timing, 1, b), 0);
    ASSERT_EQ_STR(a, b);
    free(config);
  }
  /* And the shortcut is no shortcut for text that is not canonical. */
  char a[IDENT_HEX], b[IDENT_HEX];
  ASSERT_EQ_INT(ident_trial(K, "{\"b\": 1, \"a\": 2}", "tcc", "k", NULL, 1, a), 0);
  ASSERT_EQ_INT(ident_trial_canonical(K, "{\"b\": 1, \"a\": 2}", "tcc", "k", NULL, 1, b), 0);
  ASSERT(strcmp(a, b) != 0);
  free(timing);
}

TEST_LIST(TEST_ENTRY(kernel_is_stable_and_hex), TEST_ENTRY(kernel_without_a_reference_has_its_own_digest), TEST_ENTRY(tracker_texts_are_canonical), TEST_ENTRY(kernel_changes_with_what_is_built),
          TEST_ENTRY(kernel_ignores_search_space_and_name),
          TEST_ENTRY(kernel_refuses_incomplete_spec),
          TEST_ENTRY(trial_changes_with_how_it_was_measured),
          TEST_ENTRY(trial_ignores_json_form), TEST_ENTRY(trial_refuses_bad_input),
          TEST_ENTRY(canonical_object_sorts_and_compacts))
