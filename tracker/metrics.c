/* The tracker's metrics in Prometheus text (tracker/metrics.h). The
 * hooks only count: they call nothing else of the tracker, so any layer
 * may call them (core.c, the ground floor, times its commits). A scrape
 * reads the queues, agents and sessions as they are. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/wire.h"
#include "tracker/tracker.h"

/* One key's trials by status code; its name follows the counts. */
struct metrics_key {
  uint64_t trials[METRICS_STATUSES];
  char key[];
};

struct metrics_loss {
  char key[64], agent[64];
  Ktune__Role role;
  enum metrics_loss_reason why;
  uint64_t n;
  metrics_loss *next;
};

/* Seconds: a commit of a few trials is ~100 us, a lease's overhead a
 * few ms, and anything past 10 s is an outage, not a latency. */
static const double bounds[METRICS_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                               0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                               1,      2.5,     5,      10};

/* The key table starts here and doubles at half full. */
#define KEYS_MIN 16

static void observe(metrics_hist *h, double s) {
  /* An adopted lease starts after its run did: no overhead, not less. */
  if (!(s >= 0)) s = 0;
  size_t i = 0;
  while (i < METRICS_BUCKETS && s > bounds[i]) i++;
  h->n[i]++;
  h->sum += s;
}

static double ns_to_s(uint64_t ns) { return (double)ns / 1e9; }

/* ---- trials by key: an open-addressing table of rows that never move ---- */

static size_t key_hash(const char *key) {
  uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
  for (const unsigned char *c = (const unsigned char *)key; *c; c++)
    h = (h ^ *c) * 0x100000001b3ull;
  return (size_t)h;
}

/* key's slot: its row, or the empty slot where it would go. */
static metrics_key **key_slot(metrics_key **table, size_t cap, const char *key) {
  size_t i = key_hash(key) & (cap - 1);
  while (table[i] && strcmp(table[i]->key, key) != 0) i = (i + 1) & (cap - 1);
  return &table[i];
}

static int keys_grow(metrics *m) {
  size_t cap = m->keys_cap ? 2 * m->keys_cap : KEYS_MIN;
  metrics_key **nt = calloc(cap, sizeof(*nt));
  if (!nt) return -1;
  for (size_t i = 0; i < m->keys_cap; i++)
    if (m->keys[i]) *key_slot(nt, cap, m->keys[i]->key) = m->keys[i];
  free(m->keys);
  m->keys = nt;
  m->keys_cap = cap;
  return 0;
}

static metrics_key *key_new(const char *key) {
  size_t len = strlen(key);
  metrics_key *k = calloc(1, sizeof(*k) + len + 1);
  if (k) memcpy(k->key, key, len + 1);
  return k;
}

/* key's row, made when missing. Out of memory, the spill row (key "")
 * counts it, so that the trials still add up; NULL only when even that
 * cannot be had. */
static metrics_key *key_row(metrics *m, const char *key) {
  if (m->keys_cap) {
    metrics_key *k = *key_slot(m->keys, m->keys_cap, key);
    if (k) return k;
  }
  /* A fuller table still works: only a full one must grow. */
  if ((m->nkeys + 1) * 2 > m->keys_cap && keys_grow(m) < 0 && m->nkeys + 1 >= m->keys_cap)
    goto spill;
  metrics_key **slot = key_slot(m->keys, m->keys_cap, key);
  if (!(*slot = key_new(key))) goto spill;
  m->nkeys++;
  return *slot;
spill:
  if (!m->spill) m->spill = key_new("");
  return m->spill;
}

void metrics_trial(tracker *t, const char *key, unsigned status) {
  metrics_key *k = key_row(&t->metrics, key);
  if (k) k->trials[status < METRICS_STATUSES ? status : 0]++;
}

void metrics_session_ended(tracker *t, Ktune__SessionState state) {
  t->metrics.ended[(unsigned)state < METRICS_STATES ? state : 0]++;
}

void metrics_commit(tracker *t, uint64_t ns) { observe(&t->metrics.commit, ns_to_s(ns)); }

void metrics_dispatched(tracker *t, const job *j, const peer *r) {
  /* Since both a runnable job and a free slot of this runner existed. */
  uint64_t since = j->runnable_ns > r->free_ns ? j->runnable_ns : r->free_ns;
  if (!since || j->confirm) return; /* a confirmation run waits for its turn, not a runner */
  observe(&t->metrics.dispatch, ns_to_s(uv_hrtime() - since));
}

void metrics_run_result(tracker *t, const job *j, const Ktune__RunResult *r) {
  if (!j->run_start_ns) return; /* share.c did not time this lease */
  double kernel_s = 0;
  for (size_t i = 0; i < r->n_costs_s; i++) kernel_s += r->costs_s[i];
  kernel_s *= r->number ? r->number : j->s->timing.number;
  observe(&t->metrics.overhead, ns_to_s(uv_hrtime() - j->run_start_ns) - kernel_s);
}

void metrics_job_lost(tracker *t, const job *j, const peer *p, enum metrics_loss_reason why) {
  if (!j->s) return; /* its session ended: nobody waits for it */
  metrics_loss *l = t->metrics.losses;
  while (l && (l->why != why || l->role != p->role || strcmp(l->key, j->s->key) ||
               strcmp(l->agent, p->name)))
    l = l->next;
  if (!l) {
    /* Losses are rare: a miss here only loses one count. */
    if (!(l = calloc(1, sizeof(*l)))) return;
    snprintf(l->key, sizeof(l->key), "%s", j->s->key);
    snprintf(l->agent, sizeof(l->agent), "%s", p->name);
    l->role = p->role;
    l->why = why;
    l->next = t->metrics.losses;
    t->metrics.losses = l;
  }
  l->n++;
}

void metrics_free(tracker *t) {
  metrics *m = &t->metrics;
  for (size_t i = 0; i < m->keys_cap; i++) free(m->keys[i]);
  free(m->keys);
  free(m->spill);
  while (m->losses) {
    metrics_loss *l = m->losses;
    m->losses = l->next;
    free(l);
  }
  memset(m, 0, sizeof(*m));
}

/* ---- the text ---- */

typedef struct {
  char *p;
  size_t len, cap;
  int oom;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...) {
  for (int tries = 0; tries < 2 && !o->oom; tries++) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->p ? o->p + o->len : NULL, o->p ? o->cap - o->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0) break;
    if (o->p && o->len + (size_t)n < o->cap) {
      o->len += (size_t)n;
      return;
    }
    size_t cap = o->cap ? o->cap : 4096;
    while (cap <= o->len + (size_t)n) cap *= 2;
    char *np = realloc(o->p, cap);
    if (!np) break;
    o->p = np;
    o->cap = cap;
  }
  o->oom = 1;
}

static void family(out *o, const char *name, const char *type, const char *help) {
  put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, double quote and newline escaped. */
static void put_value(out *o, const char *v) {
  for (; *v; v++) {
    size_t n = strcspn(v, "\\\"\n");
    put(o, "%.*s", (int)n, v);
    if (!v[n]) return;
    v += n;
    put(o, "\\%c", *v == '\n' ? 'n' : *v);
  }
}

/* The shortest text that reads back as the same double. */
static void put_number(out *o, double v) {
  char s[32];
  snprintf(s, sizeof(s), "%.15g", v);
  if (strtod(s, NULL) != v) snprintf(s, sizeof(s), "%.17g", v);
  put(o, "%s", s);
}

/* name{a="x",b="y"} v, the labels given as NULL-ended name, value pairs. */
static void sample(out *o, const char *name, const char *const *labels, double v) {
  put(o, "%s", name);
  for (size_t i = 0; labels && labels[i]; i += 2) {
    put(o, "%s%s=\"", i ? "," : "{", labels[i]);
    put_value(o, labels[i + 1]);
    put(o, "\"%s", labels[i + 2] ? "" : "}");
  }
  put(o, " ");
  put_number(o, v);
  put(o, "\n");
}

static void histogram(out *o, const char *name, const char *help, const metrics_hist *h) {
  char series[96], le[32];
  const char *labels[] = {"le", le, NULL};
  uint64_t total = 0;
  family(o, name, "histogram", help);
  snprintf(series, sizeof(series), "%s_bucket", name);
  for (size_t i = 0; i <= METRICS_BUCKETS; i++) {
    total += h->n[i];
    if (i < METRICS_BUCKETS) snprintf(le, sizeof(le), "%g", bounds[i]);
    else snprintf(le, sizeof(le), "+Inf");
    sample(o, series, labels, (double)total);
  }
  snprintf(series, sizeof(series), "%s_sum", name);
  sample(o, series, NULL, h->sum);
  snprintf(series, sizeof(series), "%s_count", name);
  sample(o, series, NULL, (double)total);
}

static void trials(out *o, const metrics *m) {
  family(o, "ktune_trials_total", "counter",
         "Trials recorded in the history since the tracker started, by device key and status "
         "(the history's string: ok, COMPILE_ERROR, RUN_TIMEOUT, ...). Every trial a session "
         "counts as done: measured, answered from the history (reused) or from a --replay "
         "recording. Trials recorded before a restart are not counted again.");
  for (size_t i = 0; i <= m->keys_cap; i++) {
    const metrics_key *k = i < m->keys_cap ? m->keys[i] : m->spill;
    for (unsigned s = 0; k && s < METRICS_STATUSES; s++) {
      if (!k->trials[s]) continue;
      const char *name = wire_status_name((Ktune__TrialStatus)s);
      const char *labels[] = {"key", k->key, "status", name ? name : "unknown", NULL};
      sample(o, "ktune_trials_total", labels, (double)k->trials[s]);
    }
  }
}

static void queues(out *o, tracker *t) {
  family(o, "ktune_queue_jobs", "gauge",
         "Jobs waiting, by device key and queue: build (for a builder) or run (built, for a "
         "runner of the key). Keys with a session or a runner in the tracker's memory.");
  for (keyq *k = t->keys; k; k = k->next) {
    const char *build[] = {"key", k->key, "queue", "build", NULL};
    const char *run[] = {"key", k->key, "queue", "run", NULL};
    sample(o, "ktune_queue_jobs", build, k->queued[QUEUE_BUILD]);
    sample(o, "ktune_queue_jobs", run, k->queued[QUEUE_RUN]);
  }
}

/* Agents are counted into (role, key) pairs; every key the tracker
 * queues for gets its runner count, 0 included, so that "no runner"
 * is a sample and not a missing series. */
typedef struct {
  Ktune__Role role;
  const char *key;
  uint32_t n;
} agent_count;

static agent_count *count_of(agent_count *c, size_t *n, Ktune__Role role, const char *key) {
  for (size_t i = 0; i < *n; i++)
    if (c[i].role == role && !strcmp(c[i].key, key)) return &c[i];
  c[*n] = (agent_count){role, key, 0};
  return &c[(*n)++];
}

static void agents(out *o, tracker *t) {
  size_t max = 0, n = 0;
  for (keyq *k = t->keys; k; k = k->next) max++;
  for (peer *p = t->peers; p; p = p->next) max++;
  agent_count *c = malloc((max ? max : 1) * sizeof(*c));
  if (!c) {
    o->oom = 1;
    return;
  }
  for (keyq *k = t->keys; k; k = k->next) count_of(c, &n, KTUNE__ROLE__ROLE_RUNNER, k->key);
  for (peer *p = t->peers; p; p = p->next) {
    int runner = p->role == KTUNE__ROLE__ROLE_RUNNER;
    if (p->state != PEER_READY || (!runner && p->role != KTUNE__ROLE__ROLE_BUILDER)) continue;
    count_of(c, &n, p->role, runner ? p->key : "")->n++;
  }
  family(o, "ktune_agents", "gauge",
         "Agents logged in (as `ktune status` lists them, draining and quarantined ones "
         "included), by role and device key; builders serve every key: key=\"\".");
  for (size_t i = 0; i < n; i++) {
    const char *labels[] = {"role", wire_role_name(c[i].role), "key", c[i].key, NULL};
    sample(o, "ktune_agents", labels, c[i].n);
  }
  free(c);
}

static void sessions(out *o, tracker *t) {
  uint32_t n[METRICS_STATES] = {0};
  for (session *s = t->sessions; s; s = s->next)
    n[(unsigned)s->state < METRICS_STATES ? s->state : 0]++;
  family(o, "ktune_sessions", "gauge",
         "Sessions in the tracker's memory, by state: every queued and running one, and the "
         "last few ended ones (kept about a minute for `ktune status`).");
  for (unsigned s = 1; s < METRICS_STATES; s++) {
    const char *name = wire_state_name((Ktune__SessionState)s);
    const char *labels[] = {"state", name, NULL};
    if (strcmp(name, "unknown") != 0) sample(o, "ktune_sessions", labels, n[s]);
  }
  family(o, "ktune_sessions_ended_total", "counter",
         "Sessions that ended since the tracker started, by state (done, failed, cancelled).");
  for (unsigned s = 1; s < METRICS_STATES; s++) {
    const char *labels[] = {"state", wire_state_name((Ktune__SessionState)s), NULL};
    if (t->metrics.ended[s]) sample(o, "ktune_sessions_ended_total", labels, t->metrics.ended[s]);
  }
}

static void losses(out *o, const metrics *m) {
  family(o, "ktune_jobs_lost_total", "counter",
         "Jobs that went back to the queue from the agent holding them, by the job's device "
         "key, the agent's role and name, and why: disconnected (its connection closed) or "
         "deadline (held past its limit plus --grace-ms).");
  for (const metrics_loss *l = m->losses; l; l = l->next) {
    const char *labels[] = {"key", l->key, "role", wire_role_name(l->role), "agent", l->agent,
                            "reason", l->why == METRICS_LOST_DEADLINE ? "deadline" : "disconnected",
                            NULL};
    sample(o, "ktune_jobs_lost_total", labels, (double)l->n);
  }
}

/* Resident set size from /proc/self/statm; -1 when it cannot be read. */
static double resident_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long long size, resident;
  int n = f ? fscanf(f, "%llu %llu", &size, &resident) : 0;
  if (f) fclose(f);
  long page = sysconf(_SC_PAGESIZE);
  return n == 2 && page > 0 ? (double)resident * (double)page : -1;
}

static void process(out *o, tracker *t) {
  const char *version[] = {"version", KTUNE_VERSION, NULL};
  family(o, "ktune_tracker_info", "gauge", "Always 1; the tracker's version as a label.");
  sample(o, "ktune_tracker_info", version, 1);
  family(o, "ktune_tracker_uptime_seconds", "gauge", "Seconds since the tracker started.");
  sample(o, "ktune_tracker_uptime_seconds", NULL, (double)(uv_now(t->loop) - t->started_ms) / 1e3);
  double rss = resident_bytes();
  family(o, "ktune_tracker_resident_bytes", "gauge",
         "The tracker's resident memory (/proc/self/statm).");
  if (rss >= 0) sample(o, "ktune_tracker_resident_bytes", NULL, rss);
}

int metrics_render(tracker *t, char **text, size_t *len) {
  out o = {0};
  const metrics *m = &t->metrics;
  process(&o, t);
  trials(&o, m);
  sessions(&o, t);
  queues(&o, t);
  agents(&o, t);
  losses(&o, m);
  histogram(&o, "ktune_trial_overhead_seconds",
            "Wall time of a runner's lease of a run beyond the kernel's timed rounds: from the "
            "lease to its ok result, less number x the sum of the rounds' costs (warm-up, "
            "reference, checking, the child's start, the network).", &m->overhead);
  histogram(&o, "ktune_dispatch_latency_seconds",
            "From the moment both a runnable job and a free slot of the runner that took it "
            "existed to the job's lease being sent (confirmation runs, which wait for their "
            "turn, excluded).", &m->dispatch);
  histogram(&o, "ktune_sqlite_commit_seconds",
            "Time of each commit of the history's transaction (one per 2-3 ms that wrote).",
            &m->commit);
  if (o.oom) {
    free(o.p);
    return -ENOMEM;
  }
  *text = o.p;
  *len = o.len;
  return 0;
}
