/* The tracker's /metrics: Prometheus text that a strict reader of the
 * format accepts (and promtool, when installed), whose trial counters add
 * up to what the sessions recorded, whose gauges follow the farm as agents
 * come and go, and whose failures are counted under their status. */
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/harness.h"
#include "tests/integration/httpc.h"
#include "tests/test.h"

/* A small kernel, no confirmation runs; its configs in order, so that a
 * second session of it on a history asks for configs the first measured. */
#define TINY "matmul", "-D", "M=32", "-D", "N=32", "-D", "K=32", "--strategy", "grid", \
             "--confirm", "0"

/* ---- a strict reader of the text format (0.0.4) ---- */

#define MAX_SAMPLES 1024
#define MAX_FAMILIES 64
#define MAX_LABELS 6
#define NAME_LEN 96
#define VALUE_LEN 128

typedef struct {
  char name[NAME_LEN];
  char label[MAX_LABELS][2][VALUE_LEN]; /* name, unescaped value */
  int nlabels;
  double value;
  int family;
} sample;

typedef struct {
  char name[NAME_LEN];
  char type[16];
  int help, closed;
} family;

typedef struct {
  sample s[MAX_SAMPLES];
  size_t n;
  family f[MAX_FAMILIES];
  size_t nf;
  char *text;
} scrape;

/* The line being read, for what a failure says. */
typedef struct {
  const char *line;
  int no;
} cursor;

#define BAD(c, ...)                                                                   \
  do {                                                                                \
    fprintf(stderr, "/metrics line %d: %.*s\n", (c)->no, (int)strcspn((c)->line, "\n"), \
            (c)->line);                                                               \
    TEST_FAIL(__VA_ARGS__);                                                           \
  } while (0)

static int name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static int name_char(char c) { return name_start(c) || (c >= '0' && c <= '9'); }

/* A metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), or with colons refused, a
 * label name; into out. Returns what follows it. */
static const char *read_name(const cursor *c, const char *p, int label, char *out) {
  size_t n = 0;
  if (!name_start(*p) || (label && *p == ':')) BAD(c, "a name must start here: '%.10s'", p);
  while (name_char(p[n]) && !(label && p[n] == ':')) n++;
  if (n >= NAME_LEN) BAD(c, "a name of %zu characters", n);
  memcpy(out, p, n);
  out[n] = 0;
  return p + n;
}

/* A float as the format writes it: Go's ParseFloat, with +Inf, -Inf and
 * NaN. Returns what follows it. */
static const char *read_value(const cursor *c, const char *p, double *v) {
  size_t n = strcspn(p, " \n");
  char buf[64];
  if (!n || n >= sizeof(buf)) BAD(c, "no value");
  memcpy(buf, p, n);
  buf[n] = 0;
  char *end;
  if (!strcmp(buf, "+Inf")) *v = INFINITY;
  else if (!strcmp(buf, "-Inf")) *v = -INFINITY;
  else if (!strcmp(buf, "NaN")) *v = NAN;
  else if (*v = strtod(buf, &end), *end || strchr(buf, 'x') || strchr(buf, 'X'))
    BAD(c, "'%s' is not a number", buf);
  return p + n;
}

/* {a="x",b="y"}: names, and values with only \\, \" and \n escaped. */
static const char *read_labels(const cursor *c, const char *p, sample *s) {
  if (*p != '{') return p;
  p++;
  while (*p != '}') {
    if (s->nlabels == MAX_LABELS) BAD(c, "more than %d labels", MAX_LABELS);
    char *name = s->label[s->nlabels][0], *val = s->label[s->nlabels][1];
    p = read_name(c, p, 1, name);
    for (int i = 0; i < s->nlabels; i++)
      if (!strcmp(s->label[i][0], name)) BAD(c, "label %s twice", name);
    if (p[0] != '=' || p[1] != '"') BAD(c, "label %s has no =\"", name);
    p += 2;
    size_t n = 0;
    for (; *p != '"'; p++) {
      if (!*p || *p == '\n') BAD(c, "label %s's value does not end", name);
      char ch = *p;
      if (ch == '\\') {
        p++;
        if (*p != '\\' && *p != '"' && *p != 'n') BAD(c, "escape \\%c in a label value", *p);
        ch = *p == 'n' ? '\n' : *p;
      }
      if (n + 1 >= VALUE_LEN) BAD(c, "label %s's value is too long", name);
      val[n++] = ch;
    }
    val[n] = 0;
    s->nlabels++;
    p++;
    if (*p == ',') p++;
    else if (*p != '}') BAD(c, "labels must be separated by commas");
  }
  return p + 1;
}

static family *find_family(scrape *sc, const char *name) {
  for (size_t i = 0; i < sc->nf; i++)
    if (!strcmp(sc->f[i].name, name)) return &sc->f[i];
  return NULL;
}

/* Lines of one family stand together: once another's begin, it is closed. */
static family *enter_family(scrape *sc, const cursor *c, const char *name, int *last) {
  family *f = find_family(sc, name);
  if (!f) {
    if (sc->nf == MAX_FAMILIES) BAD(c, "more than %d families", MAX_FAMILIES);
    f = &sc->f[sc->nf++];
    snprintf(f->name, sizeof(f->name), "%s", name);
  }
  int i = (int)(f - sc->f);
  if (f->closed) BAD(c, "family %s's lines are not together", name);
  if (*last >= 0 && *last != i) sc->f[*last].closed = 1;
  *last = i;
  return f;
}

static void read_comment(scrape *sc, const cursor *c, int *last) {
  const char *p = c->line;
  int help = !strncmp(p, "# HELP ", 7), type = !strncmp(p, "# TYPE ", 7);
  if (!help && !type) BAD(c, "a comment that is neither HELP nor TYPE");
  char name[NAME_LEN];
  p = read_name(c, p + 7, 0, name);
  if (*p != ' ') BAD(c, "no text after the name");
  p++;
  family *f = enter_family(sc, c, name, last);
  if (help) {
    if (f->help++) BAD(c, "a second HELP for %s", name);
    for (; *p != '\n'; p++)
      if (*p == '\\' && (++p, *p != '\\' && *p != 'n')) BAD(c, "escape \\%c in HELP", *p);
    return;
  }
  if (f->type[0]) BAD(c, "a second TYPE for %s", name);
  for (size_t i = 0; i < sc->n; i++)
    if (sc->s[i].family == (int)(f - sc->f)) BAD(c, "TYPE after %s's samples", name);
  size_t n = strcspn(p, "\n");
  static const char *types[] = {"counter", "gauge", "histogram", "summary", "untyped"};
  for (size_t i = 0; i < 5 && !f->type[0]; i++)
    if (n == strlen(types[i]) && !strncmp(p, types[i], n))
      snprintf(f->type, sizeof(f->type), "%s", types[i]);
  if (!f->type[0]) BAD(c, "unknown type '%.*s'", (int)n, p);
}

/* The family a sample belongs to: its own name, or a histogram's or a
 * summary's with _bucket, _sum or _count. */
static const char *family_of(scrape *sc, const char *name, char *buf) {
  if (find_family(sc, name)) return name;
  static const char *suffix[] = {"_bucket", "_sum", "_count"};
  for (size_t i = 0; i < 3; i++) {
    size_t n = strlen(name), k = strlen(suffix[i]);
    if (n <= k || strcmp(name + n - k, suffix[i])) continue;
    snprintf(buf, NAME_LEN, "%.*s", (int)(n - k), name);
    family *f = find_family(sc, buf);
    if (f && (!strcmp(f->type, "histogram") || !strcmp(f->type, "summary"))) return buf;
  }
  return name;
}

static void read_sample(scrape *sc, const cursor *c, int *last) {
  if (sc->n == MAX_SAMPLES) BAD(c, "more than %d samples", MAX_SAMPLES);
  sample *s = &sc->s[sc->n];
  memset(s, 0, sizeof(*s));
  const char *p = read_name(c, c->line, 0, s->name);
  p = read_labels(c, p, s);
  if (*p != ' ') BAD(c, "no space before the value");
  p = read_value(c, p + 1, &s->value);
  if (*p == ' ') {
    /* A timestamp: an integer of milliseconds. */
    char *end;
    strtoll(p + 1, &end, 10);
    if (end == p + 1 || *end != '\n') BAD(c, "a timestamp that is not an integer");
    p = end;
  }
  if (*p != '\n') BAD(c, "something after the value");
  char buf[NAME_LEN];
  family *f = enter_family(sc, c, family_of(sc, s->name, buf), last);
  if (!f->type[0]) BAD(c, "sample %s has no TYPE", s->name);
  s->family = (int)(f - sc->f);
  sc->n++;
}

static int same_labels(const sample *a, const sample *b, const char *except) {
  int na = 0, nb = 0;
  for (int i = 0; i < a->nlabels; i++) {
    if (except && !strcmp(a->label[i][0], except)) continue;
    na++;
    int found = 0;
    for (int j = 0; j < b->nlabels && !found; j++)
      found = !strcmp(a->label[i][0], b->label[j][0]) && !strcmp(a->label[i][1], b->label[j][1]);
    if (!found) return 0;
  }
  for (int j = 0; j < b->nlabels; j++) nb += !except || strcmp(b->label[j][0], except);
  return na == nb;
}

static const char *label_of(const sample *s, const char *name) {
  for (int i = 0; i < s->nlabels; i++)
    if (!strcmp(s->label[i][0], name)) return s->label[i][1];
  return NULL;
}

/* The sample of this name with a's labels (but le), or NULL. */
static const sample *partner(const scrape *sc, const sample *a, const char *name) {
  for (size_t i = 0; i < sc->n; i++)
    if (!strcmp(sc->s[i].name, name) && same_labels(&sc->s[i], a, "le")) return &sc->s[i];
  return NULL;
}

/* Each series of a histogram: buckets in rising order of le, counts
 * that never fall, +Inf last and equal to _count, and a _sum. */
static void check_histogram(const scrape *sc, const family *f) {
  char bucket[NAME_LEN + 8], count[NAME_LEN + 8], sum[NAME_LEN + 8];
  snprintf(bucket, sizeof(bucket), "%s_bucket", f->name);
  snprintf(count, sizeof(count), "%s_count", f->name);
  snprintf(sum, sizeof(sum), "%s_sum", f->name);
  for (size_t i = 0; i < sc->n; i++) {
    const sample *first = &sc->s[i];
    if (strcmp(first->name, bucket) || partner(sc, first, bucket) != first) continue;
    double le = -INFINITY, n = 0;
    int buckets = 0;
    for (size_t j = i; j < sc->n; j++) {
      const sample *b = &sc->s[j];
      if (strcmp(b->name, bucket) || !same_labels(b, first, "le")) continue;
      const char *l = label_of(b, "le");
      if (!l) TEST_FAIL("%s without le", bucket);
      double v = !strcmp(l, "+Inf") ? INFINITY : strtod(l, NULL);
      if (!(v > le)) TEST_FAIL("%s: le=\"%s\" does not rise", bucket, l);
      if (b->value < n) TEST_FAIL("%s: le=\"%s\" counts %g, fewer than before (%g)", bucket, l,
                                  b->value, n);
      le = v, n = b->value;
      buckets++;
    }
    const sample *c = partner(sc, first, count), *s = partner(sc, first, sum);
    if (le != INFINITY) TEST_FAIL("%s: the last bucket is not le=\"+Inf\"", bucket);
    if (!c || c->value != n) TEST_FAIL("%s: _count is not the +Inf bucket's %g", f->name, n);
    if (!s) TEST_FAIL("%s has no _sum", f->name);
    if (buckets < 2) TEST_FAIL("%s has only %d buckets", f->name, buckets);
  }
}

/* Every check that needs the whole text. */
static void check_whole(const scrape *sc) {
  for (size_t i = 0; i < sc->n; i++)
    for (size_t j = 0; j < i; j++)
      if (!strcmp(sc->s[i].name, sc->s[j].name) && same_labels(&sc->s[i], &sc->s[j], NULL))
        TEST_FAIL("series %s twice with the same labels", sc->s[i].name);
  for (size_t i = 0; i < sc->nf; i++) {
    const family *f = &sc->f[i];
    if (!f->help) TEST_FAIL("%s has no HELP", f->name);
    if (!f->type[0]) TEST_FAIL("%s has no TYPE", f->name);
    if (!strcmp(f->type, "histogram")) check_histogram(sc, f);
    size_t n = strlen(f->name);
    int total = n > 6 && !strcmp(f->name + n - 6, "_total");
    if ((strcmp(f->type, "counter") == 0) != total)
      TEST_FAIL("%s: counters, and only they, end in _total", f->name);
  }
  for (size_t i = 0; i < sc->n; i++)
    if (!strcmp(sc->f[sc->s[i].family].type, "counter") && !(sc->s[i].value >= 0))
      TEST_FAIL("counter %s is %g", sc->s[i].name, sc->s[i].value);
}

static scrape *parse(char *text) {
  scrape *sc = calloc(1, sizeof(*sc));
  ASSERT_NOT_NULL(sc);
  sc->text = text;
  size_t len = strlen(text);
  if (!len || text[len - 1] != '\n') TEST_FAIL("/metrics does not end with a newline");
  int last = -1;
  cursor c = {text, 1};
  for (; *c.line; c.no++) {
    if (*c.line == '\n') BAD(&c, "an empty line");
    if (*c.line == '#') read_comment(sc, &c, &last);
    else read_sample(sc, &c, &last);
    c.line += strcspn(c.line, "\n") + 1;
  }
  check_whole(sc);
  return sc;
}

static void scrape_free(scrape *sc) {
  free(sc->text);
  free(sc);
}

/* ---- promtool, when it is installed ---- */

/* `promtool check metrics` reads the text and lints it: it must say
 * nothing and exit 0. promtool comes only with Debian's whole prometheus
 * package, which starts a server: scripts/deps leaves it to the reader,
 * and without it only this part is skipped. */
static void promtool_check(const farm *f, const char *text) {
  static int said;
  if (!proc_find("promtool", NULL, 0)) {
    if (!said++) fprintf(stderr, "promtool is not installed: its check is skipped\n");
    return;
  }
  char path[400], cmd[512], out[8192];
  snprintf(path, sizeof(path), "%s/metrics.txt", f->dir);
  proc_write_file(path, text);
  snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s'", path);
  char *argv[] = {"/bin/sh", "-c", cmd, NULL};
  int rc = proc_run(argv, out, sizeof(out), 20000);
  if (rc != 0 || out[0]) TEST_FAIL("promtool check metrics exited %d: %s\n%s", rc, out, text);
}

/* GET /metrics, read strictly (and by promtool). */
static scrape *scrape_metrics(const farm *f) {
  httpc_resp r;
  int status = httpc_get(f->http, "/metrics", NULL, 5000, &r);
  if (status != 200) TEST_FAIL("GET /metrics answered %d: %s", status, r.body ? r.body : "");
  char type[128];
  ASSERT(httpc_header(&r, "content-type", type, sizeof(type)));
  ASSERT_CONTAINS(type, "text/plain");
  ASSERT_CONTAINS(type, "version=0.0.4");
  if (strlen(r.body) != r.body_len) TEST_FAIL("/metrics holds a NUL byte");
  char *text = r.body;
  r.body = NULL;
  httpc_free(&r);
  promtool_check(f, text);
  return parse(text);
}

/* The sum of name's samples whose labels match the NULL-ended name,
 * value pairs; how many matched goes to n (NULL: it must be one or more). */
static double sum_of(const scrape *sc, int *n, const char *name, ...) {
  const char *want[2 * MAX_LABELS + 1];
  int nw = 0;
  va_list ap;
  va_start(ap, name);
  while (nw < 2 * MAX_LABELS && (want[nw] = va_arg(ap, const char *))) nw++;
  va_end(ap);
  double sum = 0;
  int found = 0;
  for (size_t i = 0; i < sc->n; i++) {
    const sample *s = &sc->s[i];
    int match = !strcmp(s->name, name);
    for (int k = 0; match && k + 1 < nw; k += 2) {
      const char *v = label_of(s, want[k]);
      match = v && !strcmp(v, want[k + 1]);
    }
    if (match) sum += s->value, found++;
  }
  if (n) *n = found;
  else if (!found) TEST_FAIL("no sample of %s with those labels in:\n%s", name, sc->text);
  return sum;
}

/* Scrapes until name's sample with those labels (one pair) holds at
 * least min, within 20 s; the last scrape is returned. */
static scrape *wait_for(const farm *f, double min, const char *name, const char *l1,
                        const char *v1, const char *l2, const char *v2) {
  for (int i = 0; i < 200; i++) {
    scrape *sc = scrape_metrics(f);
    int n;
    double v = sum_of(sc, &n, name, l1, v1, l2, v2, NULL);
    if (n && v >= min) return sc;
    if (i == 199) {
      farm_print_log(f);
      TEST_FAIL("%s{%s=\"%s\",%s=\"%s\"} did not reach %g in 20 s:\n%s", name, l1, v1,
                l2 ? l2 : "", v2 ? v2 : "", min, sc->text);
    }
    scrape_free(sc);
    proc_sleep_ms(100);
  }
  return NULL;
}

/* ---- the cases ---- */

/* A farm with its HTTP side (tracker options opts), builder b1, and
 * runners r1 .. rn of key, each with runner_opts (NULL: none), all logged
 * in; returns the builder. */
static pid_t http_farm(farm *f, char *const opts[], const char *key, int n,
                       char *const runner_opts[], pid_t *runners) {
  char name[16];
  farm_start_http(f, opts);
  pid_t b = farm_builder(f, "b1");
  for (int i = 0; i < n; i++) {
    snprintf(name, sizeof(name), "r%d", i + 1);
    runners[i] = farm_runner_args(f, name, key, runner_opts);
  }
  farm_wait_agent(f, "b1", 1);
  for (int i = 0; i < n; i++) {
    snprintf(name, sizeof(name), "r%d", i + 1);
    farm_wait_agent(f, name, 1);
  }
  return b;
}

/* `ktune tune ARGS...`, which must succeed. */
static void tune_or_fail(farm *f, char *const args[]) {
  char out[16384];
  int rc = farm_ktune(f, out, sizeof(out), 90000, args);
  if (rc != 0) {
    farm_print_log(f);
    TEST_FAIL("ktune tune exited %d: %s", rc, out);
  }
}

/* A session of 24 trials on two runners: the trial counters add up to
 * the 24 the history and `ktune status` count, the session shows as
 * done, and each histogram saw the leases, results and commits. The same
 * session again is answered from the history: 24 trials more, no run. */
TEST(trials_add_up_to_the_session) {
  farm f;
  pid_t r[2];
  pid_t b = http_farm(&f, NULL, "k", 2, NULL, r);
  scrape *sc = scrape_metrics(&f);
  int n;
  sum_of(sc, &n, "ktune_trials_total", NULL);
  ASSERT_EQ_INT(n, 0);
  ASSERT_EQ_INT(sum_of(sc, NULL, "ktune_trial_overhead_seconds_count", NULL), 0);
  scrape_free(sc);

  char *args[] = {"tune", TINY, "--trials", "24", "--key", "k", NULL};
  tune_or_fail(&f, args);
  sc = scrape_metrics(&f);
  ASSERT_EQ_INT(sum_of(sc, NULL, "ktune_trials_total", NULL), 24);
  ASSERT_EQ_INT(sum_of(sc, NULL, "ktune_trials_total", "key", "k", NULL), 24);
  sqlite3 *db = farm_db(&f);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM trials"), 24);
  double ok = (double)farm_query(db, "SELECT count(*) FROM trials WHERE status = 'ok'");
  sqlite3_close(db);
  sum_of(sc, &n, "ktune_trials_total", "status", "ok", NULL);
  ASSERT_EQ_INT(n ? sum_of(sc, NULL, "ktune_trials_total", "status", "ok", NULL) : 0, ok);
  json_t *st = farm_status(&f);
  ASSERT_EQ_INT(json_integer_value(json_object_get(farm_session(st, 1), "trials_done")), 24);
  json_decref(st);

  ASSERT_EQ_INT(sum_of(sc, NULL, "ktune_sessions", "state", "done", NULL), 1);
  ASSERT_EQ_INT(sum_of(sc, NULL, "ktune_sessions", "state", "running", NULL), 0);
  ASSERT_EQ_INT(sum_of(sc, NULL, "ktune_sessions", "state", "queued", NULL), 0);
  ASSERT_EQ_INT(sum_of(sc, NULL, "ktune_sessions_ended_total", "state", "done", NULL), 1);
  /* Every ok trial was a run with an overhead; every trial's run was
   * dispatched to a free runner; its row was committed. */
  ASSERT_GE_INT(sum_of(sc, NULL, "ktune_trial_overhead_seconds_count", NULL), ok);
  ASSERT_GE_INT(sum_of(sc, NULL, "ktune_dispatch_latency_seconds_count", NULL), 24);
  ASSERT_GE_INT(sum_of(sc, NULL, "ktune_sqlite_commit_seconds_count", NULL), 1);
  ASSERT_GT_DBL(sum_of(sc, NULL, "ktune_trial_overhead_seconds_sum", NULL), 0);
  ASSERT_GT_DBL(sum_of(sc, NULL, "ktune_sqlite_commit_seconds_sum", NULL), 0);
  ASSERT_GT_DBL(sum_of(sc, NULL, "ktune_tracker_uptime_seconds", NULL), 0);
  ASSERT_GT_DBL(sum_of(sc, NULL, "ktune_tracker_resident_bytes", NULL), 1 << 20);
  ASSERT_EQ_INT(sum_of(sc, NULL, "ktune_tracker_info", "version", KTUNE_VERSION, NULL), 1);
  double runs = sum_of(sc, NULL, "ktune_trial_overhead_seconds_count", NULL);
  scrape_free(sc);

  tune_or_fail(&f, args);
  sc = scrape_metrics(&f);
  ASSERT_EQ_INT(sum_of(sc, NULL, "ktune_trials_total", "key", "k", NULL), 48);
  ASSERT_EQ_INT(sum_of(sc, NULL, "ktune_trial_overhead_seconds_count", NULL), runs);
  ASSERT_EQ_INT(sum_of(sc, NULL, "ktune_sessions_ended_total", "state", "done", NULL), 2);
  st = farm_status(&f);
  ASSERT_EQ_INT(json_integer_value(json_object_get(farm_session(st, 2), "trials_done")), 24);
  ASSERT_EQ_INT(json_integer_value(json_object_get(farm_session(st, 2), "reused")), 24);
  json_decref(st);
  scrape_free(sc);
  farm_stop_all(&f, r[0], r[1], b);
}

/* Agents by role and key follow the farm: a killed runner is counted
 * out, and the job it held is counted lost. A key that no runner serves
 * shows its waiting jobs and a runner count of 0, its odd name escaped. */
TEST(agents_and_queues_follow_the_farm) {
  farm f;
  pid_t r[2];
  pid_t b = http_farm(&f, NULL, "k", 2, NULL, r);
  scrape *sc = scrape_metrics(&f);
  ASSERT_EQ_INT(sum_of(sc, NULL, "ktune_agents", "role", "runner", "key", "k", NULL), 2);
  ASSERT_EQ_INT(sum_of(sc, NULL, "ktune_agents", "role", "builder", "key", "", NULL), 1);
  ASSERT_EQ_INT(sum_of(sc, NULL, "ktune_agents", NULL), 3);
  ASSERT_EQ_INT(sum_of(sc, NULL, "ktune_queue_jobs", "key", "k", "queue", "build", NULL), 0);
  ASSERT_EQ_INT(sum_of(sc, NULL, "ktune_queue_jobs", "key", "k", "queue", "run", NULL), 0);
  scrape_free(sc);

  /* A quote and a backslash: label values escape both. */
  const char *odd = "odd\"key\\x";
  char *nobody[] = {TINY, "--trials", "8", "--key", (char *)odd, "--wait-timeout", "60000", NULL};
  long s1 = farm_submit(&f, nobody);
  sc = wait_for(&f, 1, "ktune_queue_jobs", "key", odd, "queue", "build");
  ASSERT_EQ_INT(sum_of(sc, NULL, "ktune_agents", "role", "runner", "key", odd, NULL), 0);
  ASSERT_EQ_INT(sum_of(sc, NULL, "ktune_sessions", "state", "queued", NULL), 1);
  ASSERT_CONTAINS(sc->text, "key=\"odd\\\"key\\\\x\"");
  scrape_free(sc);

  /* Runs of 300 ms or more: r2 is killed while it holds one. */
  char *slow[] = {TINY, "--trials", "40", "--key", "k", "--min-repeat-ms", "300", NULL};
  long s2 = farm_submit(&f, slow);
  farm_wait_busy(&f, "r2");
  kill(r[1], SIGKILL);
  waitpid(r[1], NULL, 0);
  sc = wait_for(&f, 1, "ktune_jobs_lost_total", "agent", "r2", "reason", "disconnected");
  ASSERT_EQ_INT(sum_of(sc, NULL, "ktune_agents", "role", "runner", "key", "k", NULL), 1);
  ASSERT_GE_INT(sum_of(sc, NULL, "ktune_jobs_lost_total", "key", "k", "role", "runner", "agent",
                       "r2", NULL), 1);
  scrape_free(sc);

  char out[4096], id[32];
  for (int i = 0; i < 2; i++) {
    snprintf(id, sizeof(id), "%ld", i ? s2 : s1);
    char *cancel[] = {"cancel", id, NULL};
    ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 10000, cancel), 0);
  }
  sc = scrape_metrics(&f);
  ASSERT_EQ_INT(sum_of(sc, NULL, "ktune_sessions_ended_total", "state", "cancelled", NULL), 2);
  ASSERT_EQ_INT(sum_of(sc, NULL, "ktune_sessions", "state", "cancelled", NULL), 2);
  scrape_free(sc);
  farm_stop_all(&f, r[0], b, 0);
}

/* A runner that takes jobs and never answers: each job it held past its
 * limit (--timeout 200 ms, no grace) is counted lost for its deadline. */
TEST(a_silent_runner_is_counted_losing_jobs) {
  farm f;
  char *opts[] = {"--grace-ms", "0", NULL}, *fault[] = {"--test-fault", "silent", NULL};
  pid_t r;
  pid_t b = http_farm(&f, opts, "k", 1, fault, &r);
  char *args[] = {TINY, "--trials", "4", "--key", "k", "--timeout", "200", NULL};
  long id = farm_submit(&f, args);
  scrape *sc = wait_for(&f, 1, "ktune_jobs_lost_total", "agent", "r1", "reason", "deadline");
  ASSERT_GE_INT(sum_of(sc, NULL, "ktune_jobs_lost_total", "key", "k", "role", "runner", "agent",
                       "r1", "reason", "deadline", NULL), 1);
  int n;
  sum_of(sc, &n, "ktune_jobs_lost_total", "reason", "disconnected", NULL);
  ASSERT_EQ_INT(n, 0);
  scrape_free(sc);
  char out[4096], sid[32];
  snprintf(sid, sizeof(sid), "%ld", id);
  char *cancel[] = {"cancel", sid, NULL};
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 10000, cancel), 0);
  farm_stop_all(&f, r, b, 0);
}

/* The trials of each status in the history, against the counter. */
static void expect_statuses_counted(farm *f, const scrape *sc, const char *key) {
  sqlite3 *db = farm_db(f);
  sqlite3_stmt *st;
  ASSERT_EQ_INT(sqlite3_prepare_v2(db, "SELECT status, count(*) FROM trials GROUP BY status", -1,
                                   &st, NULL), SQLITE_OK);
  while (sqlite3_step(st) == SQLITE_ROW) {
    const char *status = (const char *)sqlite3_column_text(st, 0);
    long long n = sqlite3_column_int64(st, 1);
    double counted = sum_of(sc, NULL, "ktune_trials_total", "key", key, "status", status, NULL);
    if (counted != (double)n)
      TEST_FAIL("the history has %lld %s trials, ktune_trials_total %g", n, status, counted);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
}

/* The hostile task (tests/tasks) fails on purpose in a way per MODE: a
 * grid over MODE 0 to 5 measures one ok kernel, and kernels that crash,
 * overrun their time and compute the wrong thing. Each status's trials
 * are counted under it, as many as the history holds. */
TEST(failures_are_counted_under_their_status) {
  farm f;
  pid_t r;
  pid_t b = http_farm(&f, NULL, "hostile", 1, NULL, &r);
  /* The tests' environment names the source tree's tasks folder. */
  char spec[512], out[16384];
  const char *tasks = getenv("KTUNE_TASKS");
  ASSERT_NOT_NULL(tasks);
  snprintf(spec, sizeof(spec), "%s/../tests/tasks/hostile.json", tasks);
  char *args[] = {"tune", spec, "--key", "hostile", "--strategy", "grid", "--trials", "6",
                  "--timeout", "500", "--confirm", "0", NULL};
  int rc = farm_ktune(&f, out, sizeof(out), 60000, args);
  if (rc != 0) {
    farm_print_log(&f);
    TEST_FAIL("ktune tune of the hostile task exited %d: %s", rc, out);
  }
  scrape *sc = scrape_metrics(&f);
  ASSERT_EQ_INT(sum_of(sc, NULL, "ktune_trials_total", NULL), 6);
  expect_statuses_counted(&f, sc, "hostile");
  ASSERT_EQ_INT(sum_of(sc, NULL, "ktune_trials_total", "status", "ok", NULL), 1);
  ASSERT_GE_INT(sum_of(sc, NULL, "ktune_trials_total", "status", "RUNTIME_ERROR", NULL), 1);
  ASSERT_EQ_INT(sum_of(sc, NULL, "ktune_trials_total", "status", "RUN_TIMEOUT", NULL), 1);
  ASSERT_EQ_INT(sum_of(sc, NULL, "ktune_trials_total", "status", "WRONG_ANSWER", NULL), 1);
  ASSERT_EQ_INT(sum_of(sc, NULL, "ktune_sessions_ended_total", "state", "done", NULL), 1);
  scrape_free(sc);
  farm_stop_all(&f, r, b, 0);
}

TEST_LIST(TEST_ENTRY(trials_add_up_to_the_session), TEST_ENTRY(agents_and_queues_follow_the_farm),
          TEST_ENTRY(failures_are_counted_under_their_status),
          TEST_ENTRY(a_silent_runner_is_counted_losing_jobs))
