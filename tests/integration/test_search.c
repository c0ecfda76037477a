/* Searching, end to end through the real programs: replay of a recorded
 * history (deterministic, failed trials for what it lacks, refused for a
 * task it does not hold), the ga and model strategies and the line that
 * says what they do, a model session that starts from the history of its
 * kernel, and --resume of a cancelled session. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/harness.h"
#include "tests/test.h"

#ifndef KTUNE_SRC_DIR
#error "KTUNE_SRC_DIR must name the source tree (tests/meson.build)"
#endif

/* The recorded space: 1,664 configs of matmul_rec at 128^3. */
#define SPEC KTUNE_SRC_DIR "/tests/data/matmul_rec.json"
#define RECORDING KTUNE_SRC_DIR "/tests/data/matmul_gcc.jsonl"

#define NOT_RECORDED "replay: this config is not in the recording"

static char big[1 << 20];

/* `ktune ARGS...` with no --tracker added (a local farm, or --db). */
static int ktune_plain(char *out, size_t outlen, int timeout_ms, char *const args[]) {
  unsetenv("KTUNE_TRACKER");
  return proc_ktune(NULL, args, out, outlen, timeout_ms);
}

/* The trials of a history, read with `ktune export --db DB --format jsonl`
 * (or --tracker ADDR when f is given), as an array in the export's order. */
static json_t *export_trials(const char *db, farm *f) {
  int rc;
  if (f) {
    char *args[] = {"export", "--format", "jsonl", NULL};
    rc = farm_ktune(f, big, sizeof(big), 30000, args);
  } else {
    char *args[] = {"export", "--db", (char *)db, "--format", "jsonl", NULL};
    rc = ktune_plain(big, sizeof(big), 30000, args);
  }
  if (rc != 0) TEST_FAIL("ktune export (%s) exited %d: %s", f ? f->addr : db, rc, big);
  json_t *all = json_array();
  for (char *line = big; *line;) {
    char *end = strchr(line, '\n');
    if (end) *end = 0;
    if (*line) {
      json_error_t e;
      json_t *o = json_loads(line, 0, &e);
      if (!json_is_object(o)) TEST_FAIL("ktune export printed a line that is not JSON: %s", line);
      json_array_append_new(all, o);
    }
    if (!end) break;
    line = end + 1;
  }
  return all;
}

/* A trial's config in one canonical text (keys sorted); the caller frees. */
static char *config_text(json_t *trial) {
  json_t *c = json_object_get(trial, "config");
  if (!json_is_object(c)) TEST_FAIL("an exported trial has no config object");
  return json_dumps(c, JSON_SORT_KEYS | JSON_COMPACT);
}

static long trial_session(json_t *trial) {
  return (long)json_integer_value(json_object_get(trial, "session"));
}

/* The configs of one session, in the order of its trial ids; ids must
 * increase along the export. n: how many. The caller frees each. */
static char **session_configs(json_t *trials, long session, size_t *n) {
  char **out = calloc(json_array_size(trials) + 1, sizeof(char *));
  size_t i, k = 0;
  json_t *t;
  long long last = 0;
  json_array_foreach(trials, i, t) {
    long long id = json_integer_value(json_object_get(t, "id"));
    if (id <= last) TEST_FAIL("export is not in id order: %lld after %lld", id, last);
    last = id;
    if (trial_session(t) == session) out[k++] = config_text(t);
  }
  *n = k;
  return out;
}

static void free_configs(char **c, size_t n) {
  for (size_t i = 0; i < n; i++) free(c[i]);
  free(c);
}

static int same_sequence(char **a, size_t na, char **b, size_t nb) {
  if (na != nb) return 0;
  for (size_t i = 0; i < na; i++)
    if (strcmp(a[i], b[i]) != 0) return 0;
  return 1;
}

/* `ktune tune SPEC --replay REC --db OUT --strategy S --seed N --trials N`;
 * the exit code, output in out. */
static int replay(const char *rec, const char *out_db, const char *strategy, const char *seed,
                  const char *trials, char *out, size_t outlen) {
  char *args[] = {"tune", SPEC, "--replay", (char *)rec, "--db", (char *)out_db,
                  "--strategy", (char *)strategy, "--seed", (char *)seed, "--trials",
                  (char *)trials, NULL};
  return ktune_plain(out, outlen, 60000, args);
}

/* A replay that must succeed: its OUT db's configs of session 1. */
static char **replay_configs(const char *dir, const char *name, const char *strategy,
                             const char *seed, const char *trials, size_t *n, char *out,
                             size_t outlen) {
  char db[512];
  snprintf(db, sizeof(db), "%s/%s.db", dir, name);
  int rc = replay(RECORDING, db, strategy, seed, trials, out, outlen);
  if (rc != 0) TEST_FAIL("replay %s seed %s exited %d: %s", strategy, seed, rc, out);
  json_t *t = export_trials(db, NULL);
  char **c = session_configs(t, 1, n);
  ASSERT_EQ_INT(*n, atoi(trials));
  ASSERT_EQ_INT(json_array_size(t), atoi(trials));
  json_decref(t);
  return c;
}

/* Every progress line of the output ("[ 8/48] ...") is followed by a line
 * of what the search does, which starts with prefix ("model: "); the last
 * one may say what the confirmation at the end did instead. */
static void assert_search_lines(const char *out, const char *prefix) {
  int progress = 0;
  for (const char *line = out; line && *line;) {
    const char *next = strchr(line, '\n');
    if (*line == '[' && strstr(line, "] last ")) {
      progress++;
      const char *s = next ? next + 1 : "";
      while (*s == ' ') s++;
      if (strncmp(s, prefix, strlen(prefix)) != 0 && strncmp(s, "confirm", 7) != 0)
        TEST_FAIL("a progress line is not followed by a '%s' line: %s", prefix, out);
    }
    line = next ? next + 1 : NULL;
  }
  if (progress == 0) TEST_FAIL("no progress line: %s", out);
}

/* The same seed and strategy replay the same configs; another seed other
 * ones; both strategies say what they do under each progress line. */
static void replay_repeats(const char *strategy, const char *search_text) {
  char dir[256], out[16384];
  proc_tmpdir(dir, sizeof(dir));
  size_t na, nb, nc;
  char **a = replay_configs(dir, "a", strategy, "11", "48", &na, out, sizeof(out));
  ASSERT_CONTAINS(out, "nothing is measured");
  char want[128];
  snprintf(want, sizeof(want), "48 trials, %s search", strategy);
  ASSERT_CONTAINS(out, want);
  char prefix[16];
  snprintf(prefix, sizeof(prefix), "%s: ", strategy);
  assert_search_lines(out, prefix);
  ASSERT_CONTAINS(out, search_text);
  char **b = replay_configs(dir, "b", strategy, "11", "48", &nb, out, sizeof(out));
  char **c = replay_configs(dir, "c", strategy, "12", "48", &nc, out, sizeof(out));
  if (!same_sequence(a, na, b, nb))
    TEST_FAIL("%s: two replays with --seed 11 proposed different configs (first: %s vs %s)",
              strategy, a[0], b[0]);
  if (same_sequence(a, na, c, nc))
    TEST_FAIL("%s: --seed 11 and --seed 12 proposed the same %zu configs", strategy, na);
  /* No config twice within a session. */
  for (size_t i = 0; i < na; i++)
    for (size_t j = i + 1; j < na; j++)
      if (!strcmp(a[i], a[j])) TEST_FAIL("%s proposed %s twice", strategy, a[i]);
  free_configs(a, na);
  free_configs(b, nb);
  free_configs(c, nc);
}

TEST(replay_of_model_is_deterministic) {
  replay_repeats("model", "model: trained on ");
}

TEST(replay_of_ga_is_deterministic) {
  replay_repeats("ga", "ga: generation ");
}

/* Half of the recording (its odd lines) in path; their configs in the
 * returned object (canonical text -> true). */
static json_t *write_half_recording(const char *path) {
  FILE *in = fopen(RECORDING, "r"), *out = fopen(path, "w");
  if (!in || !out) TEST_FAIL("cannot copy %s to %s", RECORDING, path);
  json_t *kept = json_object();
  char line[8192];
  int n = 0;
  while (fgets(line, sizeof(line), in)) {
    if (n++ % 2) continue;
    fputs(line, out);
    json_t *o = json_loads(line, 0, NULL);
    if (!o) TEST_FAIL("%s: line %d is not JSON", RECORDING, n);
    char *c = config_text(o);
    json_object_set_new(kept, c, json_true());
    free(c);
    json_decref(o);
  }
  fclose(in);
  fclose(out);
  ASSERT_EQ_INT(n, 1664);
  ASSERT_EQ_INT(json_object_size(kept), 832);
  return kept;
}

/* A recording that lacks configs answers them as failed trials; OUT holds
 * the session with ids 1..N in the order of proposal, the same order a
 * replay of the whole recording proposes (random and grid do not depend
 * on the results). */
TEST(replay_of_a_trimmed_recording_fails_what_it_lacks) {
  char dir[256], half[300], db[300], full_db[300], out[16384];
  proc_tmpdir(dir, sizeof(dir));
  snprintf(half, sizeof(half), "%s/half.jsonl", dir);
  json_t *kept = write_half_recording(half);
  const char *strategies[] = {"random", "grid"};
  for (int s = 0; s < 2; s++) {
    snprintf(db, sizeof(db), "%s/half-%s.db", dir, strategies[s]);
    snprintf(full_db, sizeof(full_db), "%s/full-%s.db", dir, strategies[s]);
    int rc = replay(half, db, strategies[s], "3", "40", out, sizeof(out));
    if (rc != 0) TEST_FAIL("replay of the trimmed recording exited %d: %s", rc, out);
    ASSERT_CONTAINS(out, "RUNTIME_ERROR");
    ASSERT_CONTAINS(out, NOT_RECORDED);
    rc = replay(RECORDING, full_db, strategies[s], "3", "40", out, sizeof(out));
    if (rc != 0) TEST_FAIL("replay of the whole recording exited %d: %s", rc, out);

    json_t *trials = export_trials(db, NULL);
    ASSERT_EQ_INT(json_array_size(trials), 40);
    size_t i;
    json_t *t;
    int failed = 0, ok = 0;
    json_array_foreach(trials, i, t) {
      ASSERT_EQ_INT(json_integer_value(json_object_get(t, "id")), (long)i + 1);
      ASSERT_EQ_INT(trial_session(t), 1);
      ASSERT_EQ_STR(json_string_value(json_object_get(t, "runner")), "replay");
      char *c = config_text(t);
      const char *status = json_string_value(json_object_get(t, "status"));
      const char *error = json_string_value(json_object_get(t, "error"));
      if (json_object_get(kept, c)) {
        if (!status || strcmp(status, "ok") != 0)
          TEST_FAIL("%s: recorded config %s is %s (%s), not ok", strategies[s], c,
                    status ? status : "?", error ? error : "");
        ok++;
      } else {
        ASSERT_EQ_STR(status, "RUNTIME_ERROR");
        ASSERT_EQ_STR(error, NOT_RECORDED);
        if (json_array_size(json_object_get(t, "costs_s")) != 0)
          TEST_FAIL("a config not recorded has costs: %s", c);
        failed++;
      }
      free(c);
    }
    fprintf(stderr, "%s: %d ok, %d not in the recording\n", strategies[s], ok, failed);
    if (failed == 0 || ok == 0)
      TEST_FAIL("%s: %d ok and %d failed; the trimmed recording should give both",
                strategies[s], ok, failed);
    /* The failures come in the order they were proposed, not after the rest. */
    json_t *full = export_trials(full_db, NULL);
    size_t nh, nf;
    char **h = session_configs(trials, 1, &nh), **fc = session_configs(full, 1, &nf);
    if (!same_sequence(h, nh, fc, nf))
      TEST_FAIL("%s: the trimmed replay's trial ids are not in the order of proposal "
                "(the whole recording's replay with the same seed differs)", strategies[s]);
    free_configs(h, nh);
    free_configs(fc, nf);
    json_decref(full);
    json_decref(trials);
  }
  json_decref(kept);
}

/* A ktune history is a recording too: what it lacks fails, in order. */
TEST(replay_from_a_history_db) {
  char dir[256], rec[300], db[300], out[16384];
  proc_tmpdir(dir, sizeof(dir));
  snprintf(rec, sizeof(rec), "%s/rec.db", dir);
  snprintf(db, sizeof(db), "%s/out.db", dir);
  int rc = replay(RECORDING, rec, "grid", "1", "20", out, sizeof(out));
  if (rc != 0) TEST_FAIL("replay into a history exited %d: %s", rc, out);
  rc = replay(rec, db, "grid", "1", "26", out, sizeof(out));
  if (rc != 0) TEST_FAIL("replay from a history exited %d: %s", rc, out);
  ASSERT_CONTAINS(out, "failed 6 (RUNTIME_ERROR 6: " NOT_RECORDED ")");
  json_t *r = export_trials(rec, NULL), *t = export_trials(db, NULL);
  ASSERT_EQ_INT(json_array_size(t), 26);
  for (size_t i = 0; i < 26; i++) {
    json_t *x = json_array_get(t, i);
    ASSERT_EQ_INT(json_integer_value(json_object_get(x, "id")), (long)i + 1);
    const char *status = json_string_value(json_object_get(x, "status"));
    if (i < 20) {
      char *a = config_text(x), *b = config_text(json_array_get(r, i));
      ASSERT_EQ_STR(a, b);
      ASSERT_EQ_STR(status, "ok");
      /* The recorded costs, not new ones. */
      char *ca = json_dumps(json_object_get(x, "costs_s"), JSON_COMPACT);
      char *cb = json_dumps(json_object_get(json_array_get(r, i), "costs_s"), JSON_COMPACT);
      ASSERT_EQ_STR(ca, cb);
      free(a), free(b), free(ca), free(cb);
    } else {
      ASSERT_EQ_STR(status, "RUNTIME_ERROR");
      ASSERT_EQ_STR(json_string_value(json_object_get(x, "error")), NOT_RECORDED);
    }
  }
  json_decref(r);
  json_decref(t);
}

/* A task, or a size, that the recording does not hold: refused, naming
 * what it holds. */
TEST(replay_refuses_a_task_the_recording_lacks) {
  char dir[256], db[300], out[16384];
  proc_tmpdir(dir, sizeof(dir));
  snprintf(db, sizeof(db), "%s/out.db", dir);
  char *other[] = {"tune", "matmul", "--replay", RECORDING, "--db", db, "--trials", "4", NULL};
  int rc = ktune_plain(out, sizeof(out), 60000, other);
  if (rc == 0) TEST_FAIL("replay of a task the recording lacks exited 0: %s", out);
  ASSERT_CONTAINS(out, "has no trials of matmul ");
  ASSERT_CONTAINS(out, "it holds: matmul_rec {\"K\":128,\"M\":128,\"N\":128} (1664 trials)");
  if (strstr(out, "best: ")) TEST_FAIL("a refused replay reported a best config: %s", out);
  char *size[] = {"tune", SPEC, "-D", "M=64", "--replay", RECORDING, "--db", db, "--trials", "4",
                  NULL};
  rc = ktune_plain(out, sizeof(out), 60000, size);
  if (rc == 0) TEST_FAIL("replay of a size the recording lacks exited 0: %s", out);
  ASSERT_CONTAINS(out, "has no trials of matmul_rec {\"K\":128,\"M\":64,\"N\":128}");
  ASSERT_CONTAINS(out, "it holds: matmul_rec {\"K\":128,\"M\":128,\"N\":128}");
  /* A recording is needed: --replay with --tracker is a usage error. */
  char *tracker[] = {"tune", SPEC, "--replay", RECORDING, "--tracker", "127.0.0.1:1", NULL};
  ASSERT_EQ_INT(ktune_plain(out, sizeof(out), 10000, tracker), 2);
}

/* Replayed trials carry no kernel digest: a second replay of a model into
 * the same OUT starts from nothing. */
TEST(replayed_trials_seed_no_search) {
  char dir[256], db[300], out[16384];
  proc_tmpdir(dir, sizeof(dir));
  snprintf(db, sizeof(db), "%s/out.db", dir);
  for (int i = 0; i < 2; i++) {
    int rc = replay(RECORDING, db, "model", i ? "2" : "1", "24", out, sizeof(out));
    if (rc != 0) TEST_FAIL("replay %d exited %d: %s", i + 1, rc, out);
    if (strstr(out, "the search starts from"))
      TEST_FAIL("replay %d started from earlier trials: %s", i + 1, out);
  }
  ASSERT_CONTAINS(out, "session 2: matmul_rec");
  ASSERT_CONTAINS(out, "model: random start");
}

/* `ktune tune matmul 32^3 --db DB ARGS...` on a local farm. */
static int local_session(const char *db, const char *strategy, const char *seed,
                         char *const more[], char *out, size_t outlen) {
  char *args[40] = {"tune", "matmul", "-D", "M=32", "-D", "N=32", "-D", "K=32", "--compiler",
                    "tcc", "--strategy", (char *)strategy, "--seed", (char *)seed, "--trials",
                    "16", "--db", (char *)db};
  int n = 18;
  for (int i = 0; more && more[i] && n < 39; i++) args[n++] = more[i];
  args[n] = NULL;
  return ktune_plain(out, outlen, 90000, args);
}

/* A model session starts from the trials of its kernel that the history
 * has (same compiler, key and timing), and measures none of them again. */
TEST(model_starts_from_the_history_of_its_kernel) {
  char dir[256], db[300], out[16384];
  proc_tmpdir(dir, sizeof(dir));
  snprintf(db, sizeof(db), "%s/history.db", dir);
  int rc = local_session(db, "model", "1", NULL, out, sizeof(out));
  if (rc != 0) TEST_FAIL("the first session exited %d: %s", rc, out);
  if (strstr(out, "the search starts from"))
    TEST_FAIL("a session on an empty history started from earlier trials: %s", out);
  json_t *t = export_trials(db, NULL);
  size_t n1, n2;
  char **first = session_configs(t, 1, &n1);
  json_decref(t);
  ASSERT_EQ_INT(n1, 16);

  rc = local_session(db, "model", "2", NULL, out, sizeof(out));
  if (rc != 0) TEST_FAIL("the second session exited %d: %s", rc, out);
  char want[160];
  snprintf(want, sizeof(want),
           "\nthe search starts from %zu earlier trials of this kernel in the history\n", n1);
  ASSERT_CONTAINS(out, want);
  /* Right after the header. */
  const char *head = strstr(out, "session 2: matmul");
  ASSERT_NOT_NULL(head);
  if (strchr(head, '\n') != strstr(out, want))
    TEST_FAIL("the line of earlier trials is not right after the session header: %s", out);
  assert_search_lines(out, "model: ");
  ASSERT_CONTAINS(out, "model: trained on ");
  ASSERT_CONTAINS(out, "0 from the history)");
  t = export_trials(db, NULL);
  char **second = session_configs(t, 2, &n2);
  ASSERT_EQ_INT(n2, 16);
  for (size_t i = 0; i < n2; i++)
    for (size_t j = 0; j < n1; j++)
      if (!strcmp(second[i], first[j]))
        TEST_FAIL("session 2 measured %s again (session 1 had it)", second[i]);
  size_t i;
  json_t *x;
  json_array_foreach(t, i, x)
    if (!json_is_null(json_object_get(x, "reused_from")))
      TEST_FAIL("trial %lld was answered from the history",
                json_integer_value(json_object_get(x, "id")));
  json_decref(t);

  /* ga starts from both sessions. */
  rc = local_session(db, "ga", "3", NULL, out, sizeof(out));
  if (rc != 0) TEST_FAIL("the ga session exited %d: %s", rc, out);
  ASSERT_CONTAINS(out, "\nthe search starts from 32 earlier trials of this kernel in the history\n");
  assert_search_lines(out, "ga: ");

  /* Another timing is another measurement: nothing to start from. */
  char *timing[] = {"--repeat", "5", NULL};
  rc = local_session(db, "model", "4", timing, out, sizeof(out));
  if (rc != 0) TEST_FAIL("the session with --repeat 5 exited %d: %s", rc, out);
  if (strstr(out, "the search starts from"))
    TEST_FAIL("a session with another timing started from earlier trials: %s", out);
  free_configs(first, n1);
  free_configs(second, n2);
}

static long session_done(farm *f, long id, const char **state, char *buf, size_t len) {
  json_t *st = farm_status(f);
  json_t *s = farm_session(st, id);
  long done = s ? (long)json_integer_value(json_object_get(s, "trials_done")) : -1;
  snprintf(buf, len, "%s", s ? json_string_value(json_object_get(s, "state")) : "absent");
  *state = buf;
  json_decref(st);
  return done;
}

/* Set when `ktune tune --tracker ADDR --resume ID` asks for --key. */
/* `ktune tune --resume ID --tracker ADDR`: no --key, the session has its
 * own. */
static int resume(farm *f, long id, char *out, size_t outlen, int timeout_ms) {
  char ids[32];
  snprintf(ids, sizeof(ids), "%ld", id);
  char *args[] = {"tune", "--resume", ids, NULL};
  return farm_ktune(f, out, outlen, timeout_ms, args);
}

/* A session cancelled in the middle goes on with --resume to its 40
 * trials, measuring no config twice; a done one cannot be resumed. */
TEST(resume_finishes_a_cancelled_session) {
  farm f;
  farm_start(&f, NULL);
  pid_t b = farm_builder(&f, "b1");
  pid_t r = farm_runner(&f, "r1", "k", NULL);
  farm_wait_agent(&f, "r1", 1);
  farm_wait_agent(&f, "b1", 1);
  /* --min-repeat-ms: each trial takes about 0.1 s, 40 take seconds. */
  char *args[] = {"matmul", "-D", "M=128", "-D", "N=128", "-D", "K=128", "--compiler", "tcc",
                  "--trials", "40", "--strategy", "model", "--seed", "5", "--min-repeat-ms",
                  "30", "--key", "k", NULL};
  long id = farm_submit(&f, args);
  farm_wait_trials(&f, id, 3);
  char ids[32], out[16384], sb[64];
  snprintf(ids, sizeof(ids), "%ld", id);
  char *cargs[] = {"cancel", ids, NULL};
  int rc = farm_ktune(&f, out, sizeof(out), 30000, cargs);
  if (rc != 0) {
    farm_print_log(&f);
    TEST_FAIL("ktune cancel %ld exited %d: %s", id, rc, out);
  }
  const char *state;
  long before = -1;
  /* Bounded: the cancel is said at once, the state follows. */
  for (int i = 0; i < 250; i++) {
    before = session_done(&f, id, &state, sb, sizeof(sb));
    if (!strcmp(state, "cancelled")) break;
    proc_sleep_ms(20);
  }
  ASSERT_EQ_STR(state, "cancelled");
  if (before >= 40) TEST_FAIL("the session ended before it could be cancelled (%ld trials)", before);
  ASSERT_GE_INT(before, 3);
  /* What it measured before the cancel; settled by now. */
  proc_sleep_ms(300);
  json_t *t0 = export_trials(NULL, &f);
  size_t n0;
  char **kept = session_configs(t0, id, &n0);
  json_decref(t0);
  fprintf(stderr, "cancelled after %ld trials (%zu rows)\n", before, n0);
  ASSERT_LT_INT(n0, 40);

  rc = resume(&f, id, big, sizeof(big), 100000);
  if (rc != 0) {
    farm_print_log(&f);
    TEST_FAIL("ktune tune --resume %ld exited %d: %s", id, rc, big);
  }
  char want[96];
  snprintf(want, sizeof(want), "session %ld resumed: ", id);
  ASSERT_CONTAINS(big, want);
  snprintf(want, sizeof(want), "(session %ld, 40 trials, ", id);
  ASSERT_CONTAINS(big, want);
  long after = session_done(&f, id, &state, sb, sizeof(sb));
  ASSERT_EQ_STR(state, "done");
  ASSERT_EQ_INT(after, 40);

  json_t *t = export_trials(NULL, &f);
  size_t n;
  char **all = session_configs(t, id, &n);
  json_decref(t);
  ASSERT_EQ_INT(n, 40);
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++)
      if (!strcmp(all[i], all[j])) TEST_FAIL("session %ld measured %s twice", id, all[i]);
  /* The trials from before the cancel stay, first. */
  for (size_t i = 0; i < n0; i++) ASSERT_EQ_STR(all[i], kept[i]);
  sqlite3 *db = farm_db(&f);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM trials WHERE session = %ld", id), 40);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM sessions WHERE id = %ld AND state = 'done'",
                           id), 1);
  sqlite3_close(db);

  /* Done now: refused, saying why. */
  rc = resume(&f, id, out, sizeof(out), 30000);
  if (rc == 0) TEST_FAIL("--resume of a done session exited 0: %s", out);
  snprintf(want, sizeof(want), "session %ld is done; only a cancelled or failed session can be "
                               "resumed", id);
  ASSERT_CONTAINS(out, want);
  /* With a TASK: a usage error. */
  char *targs[] = {"tune", "matmul", "--resume", ids, "--key", "k", NULL};
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 30000, targs), 2);
  ASSERT_CONTAINS(out, "--resume takes no TASK");
  free_configs(all, n);
  free_configs(kept, n0);
  farm_stop_all(&f, r, b, 0);
}

/* Who the next program started logs in as. */
static void as_user(const char *name, const char *token) {
  setenv("KTUNE_USER", name, 1);
  setenv("KTUNE_TOKEN", token, 1);
}

/* --resume of an unknown id, a running session, another owner's: each
 * refused with a message that says which. */
TEST(resume_refusals) {
  char dir[256], path[300], out[8192], tok[2][128];
  proc_tmpdir(dir, sizeof(dir));
  snprintf(path, sizeof(path), "%s/tokens", dir);
  FILE *tf = fopen(path, "w");
  ASSERT_NOT_NULL(tf);
  const char *who[2] = {"alice", "bob"};
  for (int i = 0; i < 2; i++) {
    char *args[] = {"token", "new", "client", (char *)who[i], NULL};
    ASSERT_EQ_INT(ktune_plain(out, sizeof(out), 10000, args), 0);
    char role[32], name[64];
    ASSERT_EQ_INT(sscanf(out, "%31s %63s %127s", role, name, tok[i]), 3);
    fputs(out, tf);
  }
  fclose(tf);
  ASSERT_EQ_INT(chmod(path, 0600), 0);
  farm f;
  char *opts[] = {"--tokens", path, "--max-sessions", "1", NULL};
  farm_start(&f, opts);
  as_user("alice", tok[0]);
  /* No runner: the session waits, running. */
  char *args[] = {"matmul", "-D", "M=32", "--trials", "4", "--key", "k", NULL};
  long id = farm_submit(&f, args);
  char ids[32];
  snprintf(ids, sizeof(ids), "%ld", id);
  /* --key k: what these check is the tracker's answer. */
  char *rargs[] = {"tune", "--resume", ids, "--key", "k", NULL};
  int rc = farm_ktune(&f, out, sizeof(out), 30000, rargs);
  if (rc == 0) TEST_FAIL("--resume of a running session exited 0: %s", out);
  char want[96];
  snprintf(want, sizeof(want), "session %ld is still running", id);
  ASSERT_CONTAINS(out, want);
  char *cargs[] = {"cancel", ids, NULL};
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 30000, cargs), 0);
  /* A resumed session counts against its owner's limits like a new one. */
  long other = farm_submit(&f, args);
  ASSERT(other != id);
  rc = farm_ktune(&f, out, sizeof(out), 30000, rargs);
  if (rc == 0) TEST_FAIL("--resume beyond --max-sessions exited 0: %s", out);
  ASSERT_CONTAINS(out, "the limit is 1 (--max-sessions)");
  as_user("bob", tok[1]);
  rc = farm_ktune(&f, out, sizeof(out), 30000, rargs);
  if (rc == 0) TEST_FAIL("bob resumed alice's session: %s", out);
  snprintf(want, sizeof(want), "session %ld belongs to alice, not to bob", id);
  ASSERT_CONTAINS(out, want);
  char *uargs[] = {"tune", "--resume", "999", "--key", "k", NULL};
  rc = farm_ktune(&f, out, sizeof(out), 30000, uargs);
  if (rc == 0) TEST_FAIL("--resume of an unknown session exited 0: %s", out);
  ASSERT_CONTAINS(out, "there is no session 999");
  char *bad[] = {"tune", "--resume", "x", "--key", "k", NULL};
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 30000, bad), 2);
  farm_stop_tracker(&f);
}

/* --verbose says what choosing cost, as a share of the wall time. */
TEST(verbose_shows_the_search_cost) {
  char dir[256], db[300];
  proc_tmpdir(dir, sizeof(dir));
  snprintf(db, sizeof(db), "%s/v.db", dir);
  char *args[] = {"tune", SPEC, "--replay", RECORDING, "--db", db, "--strategy", "model",
                  "--seed", "3", "--trials", "24", "--verbose", NULL};
  ASSERT_EQ_INT(ktune_plain(big, sizeof(big), 60000, args), 0);
  ASSERT_CONTAINS(big, "search: ");
  ASSERT_CONTAINS(big, " s in all, ");
  ASSERT_CONTAINS(big, "% of the ");
  char *quiet[] = {"tune", SPEC, "--replay", RECORDING, "--db", db, "--strategy", "model",
                   "--seed", "3", "--trials", "24", NULL};
  ASSERT_EQ_INT(ktune_plain(big, sizeof(big), 60000, quiet), 0);
  ASSERT(!strstr(big, " s in all, "));
}

TEST_LIST(TEST_ENTRY(replay_of_model_is_deterministic), TEST_ENTRY(verbose_shows_the_search_cost), TEST_ENTRY(replay_of_ga_is_deterministic),
          TEST_ENTRY(replay_of_a_trimmed_recording_fails_what_it_lacks),
          TEST_ENTRY(replay_from_a_history_db),
          TEST_ENTRY(replay_refuses_a_task_the_recording_lacks),
          TEST_ENTRY(replayed_trials_seed_no_search),
          TEST_ENTRY(model_starts_from_the_history_of_its_kernel),
          TEST_ENTRY(resume_finishes_a_cancelled_session), TEST_ENTRY(resume_refusals))
