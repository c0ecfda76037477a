/* A farm shared by a team: one runner's time is split between owners
 * first, then between an owner's sessions, in runner seconds; an owner's
 * weight scales its share; only an admin's priority reaches across
 * owners; per-owner quotas refuse with the limit named. Shares are
 * measured from the history: with one runner, trials end one after
 * another, so the time since the trial before is the runner time a trial
 * took. */
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "tests/integration/harness.h"
#include "tests/test.h"

#define T_ALICE "alice-admin-token-0123456789"
#define T_BOB "bob-client-token-0123456789"
#define T_CAROL "carol-client-token-0123456789"
#define T_RUNNER "runner-r1-token-0123456789"
#define T_BUILDER "builder-b1-token-0123456789"

/* A tiny kernel whose every round takes 5 ms or more: 3 rounds and the
 * runner's overhead make a trial of some 20 ms. Random configs, never
 * answered from the history, no confirmation: every trial is a run. */
#define TINY "matmul", "-D", "M=32", "-D", "N=32", "-D", "K=32", "--strategy", "random", \
             "--remeasure", "--confirm", "0", "--key", "k"

/* Trials a window holds at least, and how long a test waits for them. */
#define WINDOW 120
#define WINDOW_WAIT_MS 60000

static void as_user(const char *name, const char *token) {
  setenv("KTUNE_USER", name, 1);
  if (token) setenv("KTUNE_TOKEN", token, 1);
  else unsetenv("KTUNE_TOKEN");
}

/* A tokens file of these lines besides the agents' own. */
static void tokens_file(char *path, size_t len, const char *people) {
  char lines[1024];
  snprintf(lines, sizeof(lines), "%srunner r1 " T_RUNNER "\nbuilder b1 " T_BUILDER "\n", people);
  farm_tokens_file(path, len, lines);
}

typedef struct {
  pid_t runner, builder;
} agents;

/* A farm with one builder and one runner of key k that measures each
 * trial once; with a tokens file of these people's lines (NULL: none).
 * The test goes on as alice, an admin in every tokens file here. */
static agents share_farm(farm *f, const char *people) {
  char path[300];
  char *opts[] = {"--remeasure-spread-pct", "0", "--tokens", path, NULL};
  if (people) tokens_file(path, sizeof(path), people);
  else opts[2] = NULL;
  farm_start(f, opts);
  int tokens = people != NULL;
  agents a;
  as_user("b1", tokens ? T_BUILDER : NULL);
  a.builder = farm_builder(f, "b1");
  as_user("r1", tokens ? T_RUNNER : NULL);
  a.runner = farm_runner(f, "r1", "k", NULL);
  as_user("alice", tokens ? T_ALICE : NULL);
  farm_wait_agent(f, "r1", 1);
  farm_wait_agent(f, "b1", 1);
  return a;
}

static long submit_as(farm *f, const char *who, const char *token, char *const args[]) {
  as_user(who, token);
  return farm_submit(f, args);
}

/* alice's four sessions, ids[0..3], and bob's one, ids[4]. */
static void four_and_one(farm *f, const char *alice_token, const char *bob_token, long ids[5]) {
  char *alice[] = {TINY, "--trials", "200", "--min-repeat-ms", "5", NULL};
  char *bob[] = {TINY, "--trials", "400", "--min-repeat-ms", "5", NULL};
  for (int i = 0; i < 4; i++) ids[i] = submit_as(f, "alice", alice_token, alice);
  ids[4] = submit_as(f, "bob", bob_token, bob);
}

/* Runner time and trials per owner over a window of the history. */
typedef struct {
  int trials;
  int n[2];      /* trials of the two owners named */
  double s[2];   /* their runner seconds */
  long long first, last; /* the window's first and last trial */
} split;

static double part(const split *w, int i) {
  return w->s[0] + w->s[1] > 0 ? w->s[i] / (w->s[0] + w->s[1]) : 0;
}

/* The window opens once each of the n sessions has a trial (before that
 * the queue does not hold them all) and ends at the newest trial. */
static split measure(farm *f, const long *ids, int n, const char *owner0, const char *owner1) {
  split w = {0};
  sqlite3 *db = farm_db(f);
  sqlite3_stmt *st;
  const char *sql = "SELECT t.id, t.session, t.timestamp_ms, s.owner FROM trials t JOIN sessions "
                    "s ON s.id = t.session WHERE t.runner IS NOT NULL ORDER BY t.id";
  ASSERT_EQ_INT(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  int seen[16] = {0}, started = 0;
  long long prev = -1;
  while (sqlite3_step(st) == SQLITE_ROW) {
    long long trial = sqlite3_column_int64(st, 0);
    long session = (long)sqlite3_column_int64(st, 1);
    long long ts = sqlite3_column_int64(st, 2);
    const char *owner = (const char *)sqlite3_column_text(st, 3);
    if (started) {
      int o = !strcmp(owner, owner0) ? 0 : !strcmp(owner, owner1) ? 1 : -1;
      if (o >= 0) {
        w.n[o]++;
        w.s[o] += (double)(ts - prev) / 1e3;
      }
      if (!w.trials++) w.first = trial;
      w.last = trial;
    }
    prev = ts;
    for (int i = 0; i < n && !started; i++)
      if (ids[i] == session) seen[i] = 1;
    started = 1;
    for (int i = 0; i < n; i++) started &= seen[i];
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return w;
}

/* Trials of one session in the window. */
static long long window_trials(farm *f, const split *w, long session) {
  sqlite3 *db = farm_db(f);
  long long n = farm_query(db, "SELECT count(*) FROM trials WHERE session = %ld AND id >= %lld "
                               "AND id <= %lld", session, w->first, w->last);
  sqlite3_close(db);
  return n;
}

/* As alice: with tokens an admin, who may cancel anyone's session. */
static void cancel_all(farm *f, const long *ids, int n) {
  as_user("alice", getenv("KTUNE_TOKEN") ? T_ALICE : NULL);
  for (int i = 0; i < n; i++) {
    char out[4096], id[32];
    snprintf(id, sizeof(id), "%ld", ids[i]);
    char *args[] = {"cancel", id, NULL};
    farm_ktune(f, out, sizeof(out), 10000, args);
  }
}

/* Waits for a window of `trials` trials while every session runs, then
 * cancels them all; the window ends before the first cancel. */
static split share_window(farm *f, const long *ids, int n, const char *owner0,
                          const char *owner1, int trials) {
  split w = {0};
  for (int waited = 0; waited < WINDOW_WAIT_MS; waited += 200) {
    w = measure(f, ids, n, owner0, owner1);
    if (w.trials >= trials) break;
    proc_sleep_ms(200);
  }
  cancel_all(f, ids, n);
  if (w.trials < trials) {
    farm_print_log(f);
    TEST_FAIL("only %d trials in the window after %d ms", w.trials, WINDOW_WAIT_MS);
  }
  fprintf(stderr, "window of %d trials: %s %d trials %.3f s (%.0f%%), %s %d trials %.3f s "
          "(%.0f%%)\n", w.trials, owner0, w.n[0], w.s[0], 100 * part(&w, 0), owner1, w.n[1],
          w.s[1], 100 * part(&w, 1));
  return w;
}

static void expect_share(const split *w, int who, double lo, double hi) {
  double p = part(w, who);
  if (!(p >= lo && p <= hi))
    TEST_FAIL("owner %d had %.1f%% of the runner time; expected %.0f%% to %.0f%%", who, 100 * p,
              100 * lo, 100 * hi);
}

/* What ktune status says of key k while the five sessions run: both
 * owners, their targets, and a place in the line for every session. */
static void expect_status_explains(farm *f, const long *ids) {
  json_t *st = farm_status(f);
  json_t *k = NULL, *x, *owner;
  size_t i;
  json_array_foreach(json_object_get(st, "keys"), i, x)
    if (!strcmp(json_string_value(json_object_get(x, "key")), "k")) k = x;
  ASSERT_NOT_NULL(k);
  ASSERT_EQ_INT(json_array_size(json_object_get(k, "owners")), 2);
  json_array_foreach(json_object_get(k, "owners"), i, owner) {
    const char *name = json_string_value(json_object_get(owner, "owner"));
    ASSERT_EQ_INT(json_integer_value(json_object_get(owner, "weight")), 1);
    ASSERT_EQ_DBL(json_real_value(json_object_get(owner, "target")), 0.5, 1e-9);
    ASSERT_EQ_INT(json_integer_value(json_object_get(owner, "sessions")), !strcmp(name, "bob") ? 1 : 4);
    ASSERT_GT_DBL(json_real_value(json_object_get(owner, "runner_s")), 0);
  }
  int places = 0;
  for (int j = 0; j < 5; j++) {
    long place = (long)json_integer_value(json_object_get(farm_session(st, ids[j]), "place"));
    ASSERT(place >= 1 && place <= 5);
    places |= 1 << (place - 1);
  }
  ASSERT_EQ_INT(places, 0x1f); /* each place once */
  json_decref(st);
  static char out[1 << 16];
  char *args[] = {"status", NULL};
  ASSERT_EQ_INT(farm_ktune(f, out, sizeof(out), 10000, args), 0);
  ASSERT_CONTAINS(out, "OWNER        WEIGHT  TARGET  ACTUAL");
  ASSERT_CONTAINS(out, "LINE");
  /* A row per owner: name, weight 1, target 50%. */
  ASSERT_CONTAINS(out, "    alice        1       50 ");
  ASSERT_CONTAINS(out, "    bob          1       50 ");
}

/* The owner's part of key k's runner time as ktune status says it. */
static double status_actual(farm *f, const char *who) {
  json_t *st = farm_status(f), *k, *owner;
  size_t i, j;
  double actual = -1;
  json_array_foreach(json_object_get(st, "keys"), i, k) json_array_foreach(json_object_get(k, "owners"), j, owner)
    if (!strcmp(json_string_value(json_object_get(k, "key")), "k") &&
        !strcmp(json_string_value(json_object_get(owner, "owner")), who))
      actual = json_real_value(json_object_get(owner, "actual"));
  json_decref(st);
  return actual;
}

TEST(four_sessions_against_one_split_the_runner_by_owner) {
  farm f;
  agents a = share_farm(&f, NULL);
  long ids[5];
  four_and_one(&f, NULL, NULL, ids);
  for (int i = 0; i < 5; i++) farm_wait_trials(&f, ids[i], 1);
  expect_status_explains(&f, ids);
  split w = share_window(&f, ids, 5, "alice", "bob", WINDOW);
  expect_share(&w, 1, 0.40, 0.60);
  /* Status's ACTUAL is the same split, faded (and counting the trials
   * before the window): owners stay listed after their sessions end. */
  double actual = status_actual(&f, "bob");
  fprintf(stderr, "ktune status: bob's actual share %.2f\n", actual);
  ASSERT(actual >= 0.35 && actual <= 0.65);
  farm_stop_all(&f, a.runner, a.builder, 0);
}

/* bob arrives after alice had the runner alone for a while: he starts
 * level with her and they split it from his first trial, rather than
 * bob having it alone until he has used as much as she did. */
TEST(an_owner_who_arrives_late_starts_level) {
  farm f;
  agents a = share_farm(&f, NULL);
  char *args[] = {TINY, "--trials", "1000", "--min-repeat-ms", "5", NULL};
  long ids[2];
  ids[0] = submit_as(&f, "alice", NULL, args);
  farm_wait_trials(&f, ids[0], WINDOW + 30);
  ids[1] = submit_as(&f, "bob", NULL, args);
  split w = share_window(&f, ids, 2, "alice", "bob", WINDOW);
  expect_share(&w, 1, 0.40, 0.60);
  farm_stop_all(&f, a.runner, a.builder, 0);
}

TEST(bob_with_share_3_gets_three_quarters) {
  farm f;
  agents a = share_farm(&f, "admin alice " T_ALICE "\nclient bob " T_BOB " share=3\n");
  long ids[5];
  four_and_one(&f, T_ALICE, T_BOB, ids);
  split w = share_window(&f, ids, 5, "alice", "bob", WINDOW);
  expect_share(&w, 1, 0.65, 0.85);
  farm_stop_all(&f, a.runner, a.builder, 0);
}

/* Runner seconds, not trials: bob's kernel takes some ten times as long
 * as alice's, so an even split of the runner gives him far fewer trials. */
TEST(shares_count_runner_seconds_not_trials) {
  farm f;
  agents a = share_farm(&f, NULL);
  char *alice[] = {TINY, "--trials", "400", "--min-repeat-ms", "1", NULL};
  char *bob[] = {TINY, "--trials", "200", "--min-repeat-ms", "25", NULL};
  long ids[2] = {submit_as(&f, "alice", NULL, alice), submit_as(&f, "bob", NULL, bob)};
  /* One of bob's trials is some 7% of a window of 120 trials: a longer
   * one measures the split closer than that. */
  split w = share_window(&f, ids, 2, "alice", "bob", 3 * WINDOW);
  expect_share(&w, 1, 0.40, 0.60);
  ASSERT_LT_INT(3 * w.n[1], w.n[0]);
  farm_stop_all(&f, a.runner, a.builder, 0);
}

/* bob's priority 1000 orders his own two sessions, and does not lift him
 * above carol. */
TEST(a_client_priority_orders_only_their_own_sessions) {
  farm f;
  agents a = share_farm(&f, "admin alice " T_ALICE "\nclient bob " T_BOB "\nclient carol " T_CAROL
                            "\n");
  char *hi[] = {TINY, "--trials", "400", "--min-repeat-ms", "5", "--priority", "1000", NULL};
  char *lo[] = {TINY, "--trials", "400", "--min-repeat-ms", "5", NULL};
  long carol = submit_as(&f, "carol", T_CAROL, lo);
  long bob_lo = submit_as(&f, "bob", T_BOB, lo);
  long bob_hi = submit_as(&f, "bob", T_BOB, hi);
  long ids[3] = {carol, bob_hi, bob_lo};
  /* bob's low session may never run while his high one has work: the
   * window needs the other two only. */
  split w = share_window(&f, ids, 2, "carol", "bob", WINDOW);
  expect_share(&w, 1, 0.40, 0.60);
  long long n_lo = window_trials(&f, &w, bob_lo), n_hi = window_trials(&f, &w, bob_hi);
  fprintf(stderr, "bob's sessions: priority 1000 %lld trials, priority 0 %lld\n", n_hi, n_lo);
  ASSERT_LT_INT(4 * n_lo, n_hi);
  cancel_all(&f, ids + 2, 1);
  farm_stop_all(&f, a.runner, a.builder, 0);
}

/* An admin's priority does reach across owners. */
TEST(an_admin_priority_outranks_other_owners) {
  farm f;
  agents a = share_farm(&f, "admin alice " T_ALICE "\nclient bob " T_BOB "\n");
  char *bob[] = {TINY, "--trials", "400", "--min-repeat-ms", "5", NULL};
  char *alice[] = {TINY, "--trials", "400", "--min-repeat-ms", "5", "--priority", "10", NULL};
  long ids[2];
  ids[1] = submit_as(&f, "bob", T_BOB, bob);
  farm_wait_trials(&f, ids[1], 2);
  ids[0] = submit_as(&f, "alice", T_ALICE, alice);
  split w = share_window(&f, ids, 1, "alice", "bob", WINDOW);
  expect_share(&w, 0, 0.90, 1.00);
  farm_stop_all(&f, a.runner, a.builder, 0);
}

/* A refused tune --detach: a usage error, and its message. */
static void expect_refused(farm *f, const char *who, const char *token, char *const args[],
                           const char *want) {
  as_user(who, token);
  char *argv[32] = {"tune"};
  int n = 1;
  for (int i = 0; args[i] && n < 30; i++) argv[n++] = args[i];
  argv[n++] = "--detach";
  argv[n] = NULL;
  char out[4096];
  ASSERT_EQ_INT(farm_ktune(f, out, sizeof(out), 30000, argv), 2);
  ASSERT_CONTAINS(out, want);
}

/* Sessions that wait: nobody serves key nobody, so their trials stay
 * queued and they stay unfinished. */
#define WAITING(n) {"matmul", "-D", "M=16", "--trials", n, "--key", "nobody", NULL}
static char *ten[] = WAITING("10"), *thirty[] = WAITING("30"), *sixty[] = WAITING("60");

/* who's second session of ten trials is refused: one is their limit,
 * and from says where it comes from. */
static void expect_second_refused(farm *f, const char *who, const char *token, const char *from) {
  long first = submit_as(f, who, token, ten);
  char want[200];
  snprintf(want, sizeof(want), "%s already has 1 unfinished session (session %ld matmul, 10 "
           "trials left); the limit is 1 (%s)", who, first, from);
  expect_refused(f, who, token, ten, want);
}

TEST(quotas_are_per_owner_and_refusals_name_the_limit) {
  char tokens[300];
  tokens_file(tokens, sizeof(tokens), "admin alice " T_ALICE "\nclient bob " T_BOB
                                      " sessions=1\nclient carol " T_CAROL " queued=50\n");
  farm f;
  char *opts[] = {"--tokens", tokens, "--max-sessions", "2", "--share", "carol=2", NULL};
  farm_start(&f, opts);
  char want[160];
  expect_second_refused(&f, "bob", T_BOB, "sessions=1 on bob's line of the tokens file");
  expect_refused(&f, "carol", T_CAROL, sixty, "carol would have 60 trials queued, 60 of them in "
                 "this session (nothing else); the limit is 50 (queued=50 on carol's line");
  long c1 = submit_as(&f, "carol", T_CAROL, thirty);
  snprintf(want, sizeof(want), "(session %ld matmul, 30 trials left); the limit is 50", c1);
  expect_refused(&f, "carol", T_CAROL, thirty, want);
  long a1 = submit_as(&f, "alice", T_ALICE, ten), a2 = submit_as(&f, "alice", T_ALICE, ten);
  snprintf(want, sizeof(want), "alice already has 2 unfinished sessions (session %ld matmul, 10 "
           "trials left; session %ld matmul, 10 left); the limit is 2 (--max-sessions)", a2, a1);
  expect_refused(&f, "alice", T_ALICE, ten, want);
  /* The weights: --share for carol, 1 for the others; targets among the
   * owners waiting. */
  json_t *st = farm_status(&f), *k, *owner;
  size_t i, j;
  int seen = 0;
  json_array_foreach(json_object_get(st, "keys"), i, k) json_array_foreach(json_object_get(k, "owners"), j, owner) {
    const char *name = json_string_value(json_object_get(owner, "owner"));
    int carol = !strcmp(name, "carol");
    ASSERT_EQ_STR(json_string_value(json_object_get(k, "key")), "nobody");
    ASSERT_EQ_INT(json_integer_value(json_object_get(owner, "weight")), carol ? 2 : 1);
    ASSERT_EQ_DBL(json_real_value(json_object_get(owner, "target")), carol ? 0.5 : 0.25, 1e-9);
    seen++;
  }
  ASSERT_EQ_INT(seen, 3);
  json_decref(st);
  /* SIGHUP: bob's new weight counts at once; nobody's token changed. */
  FILE *tf = fopen(tokens, "w");
  ASSERT_NOT_NULL(tf);
  fprintf(tf, "admin alice " T_ALICE "\nclient bob " T_BOB " sessions=1 share=5\nclient carol "
              T_CAROL " queued=50\n");
  fclose(tf);
  ASSERT_EQ_INT(kill(f.tracker, SIGHUP), 0);
  long long weight = 0;
  for (int tries = 0; tries < 250 && weight != 5; tries++) {
    st = farm_status(&f);
    json_array_foreach(json_object_get(st, "keys"), i, k) json_array_foreach(json_object_get(k, "owners"), j, owner)
      if (!strcmp(json_string_value(json_object_get(owner, "owner")), "bob"))
        weight = json_integer_value(json_object_get(owner, "weight"));
    json_decref(st);
    if (weight != 5) proc_sleep_ms(20);
  }
  ASSERT_EQ_INT(weight, 5);
  farm_stop_tracker(&f);
}

/* --owner gives a person their quotas and weight without a tokens file,
 * and a refusal names it, or the tracker's default it fell back to. */
TEST(owner_option_sets_quotas_and_weights_without_tokens) {
  farm f;
  char *opts[] = {"--owner", "bob sessions=1", "--owner", "dave share=3 queued=40",
                  "--max-queued", "50", NULL};
  farm_start(&f, opts);
  char *fortyfive[] = WAITING("45");
  expect_second_refused(&f, "bob", NULL, "--owner 'bob sessions=1'");
  expect_refused(&f, "carol", NULL, sixty, "carol would have 60 trials queued, 60 of them in "
                 "this session (nothing else); the limit is 50 (--max-queued)");
  expect_refused(&f, "dave", NULL, fortyfive, "the limit is 40 (--owner 'dave queued=40')");
  submit_as(&f, "dave", NULL, ten);
  json_t *st = farm_status(&f), *k, *owner;
  size_t i, j;
  int seen = 0;
  json_array_foreach(json_object_get(st, "keys"), i, k) json_array_foreach(json_object_get(k, "owners"), j, owner) {
    int dave = !strcmp(json_string_value(json_object_get(owner, "owner")), "dave");
    ASSERT_EQ_INT(json_integer_value(json_object_get(owner, "weight")), dave ? 3 : 1);
    ASSERT_EQ_DBL(json_real_value(json_object_get(owner, "target")), dave ? 0.75 : 0.25, 1e-9);
    seen++;
  }
  ASSERT_EQ_INT(seen, 2);
  json_decref(st);
  farm_stop_tracker(&f);
}

/* A tracker that is told something it cannot use says what and where. */
static void expect_tracker_refuses(char *const extra[], const char *want) {
  char dir[256], db[300];
  proc_tmpdir(dir, sizeof(dir));
  snprintf(db, sizeof(db), "%s/history.db", dir);
  char *argv[16] = {(char *)proc_bin("tracker/ktune-tracker"), "--listen", "127.0.0.1:0", "--db",
                    db};
  int n = 5;
  for (int i = 0; extra[i] && n < 15; i++) argv[n++] = extra[i];
  argv[n] = NULL;
  char out[4096];
  ASSERT_EQ_INT(proc_run(argv, out, sizeof(out), 10000), 2);
  ASSERT_CONTAINS(out, want);
}

TEST(malformed_share_fields_are_refused_naming_the_line) {
  char tokens[300];
  tokens_file(tokens, sizeof(tokens), "client bob " T_BOB " share=x\n");
  char *bad_share[] = {"--tokens", tokens, NULL};
  expect_tracker_refuses(bad_share, "tokens:1: 'share=x': share takes a whole number from 1 to "
                                    "1000");
  tokens_file(tokens, sizeof(tokens), "client bob " T_BOB " share=2 sessions=0\n");
  expect_tracker_refuses(bad_share, "tokens:1: 'sessions=0': sessions takes a whole number");
  tokens_file(tokens, sizeof(tokens), "client bob " T_BOB " share=2 share=3\n");
  expect_tracker_refuses(bad_share, "tokens:1: share appears twice");
  tokens_file(tokens, sizeof(tokens), "\nclient bob " T_BOB " weight=2\n");
  expect_tracker_refuses(bad_share, "tokens:2: 'weight=2' is not a field");
  /* A person's field on an agent's line (line 3; a comment is a line). */
  tokens_file(tokens, sizeof(tokens), "client bob " T_BOB "\n# runner r1 next\n"
                                      "runner r2 " T_RUNNER " share=2\n");
  expect_tracker_refuses(bad_share, "tokens:3: share=, sessions= and queued= are for admin and "
                                    "client lines, not runner");
  char *no_weight[] = {"--share", "bob", NULL};
  expect_tracker_refuses(no_weight, "--share takes NAME=N");
  char *zero[] = {"--share", "bob=0", NULL};
  expect_tracker_refuses(zero, "not 'bob=0'");
  char *no_fields[] = {"--owner", "bob", NULL};
  expect_tracker_refuses(no_fields, "--owner takes 'NAME FIELD=N...'");
  char *bad_field[] = {"--owner", "bob sessions=2 weight=2", NULL};
  expect_tracker_refuses(bad_field, "not 'bob sessions=2 weight=2': 'weight=2' is not a field");
  char *half_life[] = {"--share-half-life-s", "0", NULL};
  expect_tracker_refuses(half_life, "--share-half-life-s needs a whole number of at least 1");
}

/* A key's owners in the text status: a screenful, those waiting first,
 * with the count of all; --all lists every one. */
TEST(text_status_lists_a_few_owners_a_key) {
  farm f;
  agents a = share_farm(&f, NULL);
  char *idle[] = {"matmul", "-D", "M=32", "-D", "N=32", "-D", "K=32", "--key", "idle",
                  "--trials", "5", "--wait-timeout", "60000", NULL};
  char name[16];
  for (int i = 0; i < 10; i++) {
    snprintf(name, sizeof(name), "owner-%02d", i);
    submit_as(&f, name, NULL, idle);
  }
  /* One who used key k, and waits for nothing now. */
  char *used[] = {TINY, "--trials", "3", NULL};
  long id = submit_as(&f, "zed", NULL, used);
  farm_wait_trials(&f, id, 3);
  as_user("alice", NULL);
  static char out[1 << 16];
  char *args[] = {"status", NULL};
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 10000, args), 0);
  ASSERT_CONTAINS(out, "    owners (10, 8 shown: those running or waiting first, then the most "
                       "runner time; ktune status --all for all)");
  int rows = 0;
  for (const char *p = out; (p = strstr(p, "\n    owner-")); p++) rows++;
  ASSERT_EQ_INT(rows, 8);
  ASSERT_CONTAINS(out, "    zed "); /* key k's one owner: no count line */
  char *all[] = {"status", "--all", NULL};
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 10000, all), 0);
  ASSERT(strstr(out, "owners (10") == NULL);
  rows = 0;
  for (const char *p = out; (p = strstr(p, "\n    owner-")); p++) rows++;
  ASSERT_EQ_INT(rows, 10);
  farm_stop_all(&f, a.runner, a.builder, 0);
}

TEST_LIST(TEST_ENTRY(four_sessions_against_one_split_the_runner_by_owner),
          TEST_ENTRY(bob_with_share_3_gets_three_quarters),
          TEST_ENTRY(shares_count_runner_seconds_not_trials),
          TEST_ENTRY(a_client_priority_orders_only_their_own_sessions),
          TEST_ENTRY(an_admin_priority_outranks_other_owners),
          TEST_ENTRY(quotas_are_per_owner_and_refusals_name_the_limit),
          TEST_ENTRY(an_owner_who_arrives_late_starts_level),
          TEST_ENTRY(owner_option_sets_quotas_and_weights_without_tokens),
          TEST_ENTRY(malformed_share_fields_are_refused_naming_the_line),
          TEST_ENTRY(text_status_lists_a_few_owners_a_key))
