/* Who is connected: builders, runners and clients, and what they hold. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/identity.h"
#include "common/log.h"
#include "common/wire.h"
#include "tracker/tracker.h"

#define WHO "tracker"

peer *registry_add(tracker *t, conn *c) {
  peer *p = calloc(1, sizeof(*p));
  if (!p) return NULL;
  p->t = t;
  p->c = c;
  p->id = ++t->next_peer_id;
  p->state = PEER_AWAIT_HELLO;
  p->next = t->peers;
  if (t->peers) t->peers->prev = p;
  t->peers = p;
  return p;
}

void registry_due(tracker *t, peer *p, int due) {
  if (due == p->due) return;
  p->due = due;
  if (due) {
    p->due_prev = NULL;
    p->due_next = t->due;
    if (t->due) t->due->due_prev = p;
    t->due = p;
    return;
  }
  if (p->due_prev) p->due_prev->due_next = p->due_next;
  else t->due = p->due_next;
  if (p->due_next) p->due_next->due_prev = p->due_prev;
}

void registry_remove(tracker *t, peer *p) {
  registry_due(t, p, 0);
  if (p->prev) p->prev->next = p->next;
  else t->peers = p->next;
  if (p->next) p->next->prev = p->prev;
  free(p->device_json);
  free(p->acks);
  free(p);
}

peer *registry_find(tracker *t, uint64_t id) {
  for (peer *p = t->peers; p; p = p->next)
    if (p->id == id) return p;
  return NULL;
}

/* A runner that takes jobs now (a draining one takes none). */
static int serving_runner(const peer *p) {
  return p->state == PEER_READY && p->role == KTUNE__ROLE__ROLE_RUNNER && !p->draining;
}

uint32_t registry_runners(tracker *t, const char *key) {
  uint32_t n = 0;
  for (peer *p = t->peers; p; p = p->next)
    if (serving_runner(p) && strcmp(p->key, key) == 0) n++;
  return n;
}

void registry_keys(tracker *t, char *out, size_t len) {
  size_t off = 0;
  out[0] = 0;
  for (peer *p = t->peers; p && off < len; p = p->next) {
    if (!serving_runner(p)) continue;
    int seen = 0;
    for (peer *q = t->peers; q != p && !seen; q = q->next)
      seen = serving_runner(q) && strcmp(q->key, p->key) == 0;
    if (!seen) off += (size_t)snprintf(out + off, len - off, "%s%s", off ? ", " : "", p->key);
  }
}

static int key_noted(const tracker *t, const char *key) {
  if (t->nkeys_seen > TRACKER_KEYS_SEEN) return 1; /* too many to tell them apart */
  for (uint32_t i = 0; i < t->nkeys_seen; i++)
    if (strcmp(t->keys_seen[i], key) == 0) return 1;
  return 0;
}

void registry_note_key(tracker *t, const char *key) {
  if (key_noted(t, key)) return;
  if (t->nkeys_seen == TRACKER_KEYS_SEEN) t->nkeys_seen++;
  else snprintf(t->keys_seen[t->nkeys_seen++], sizeof(t->keys_seen[0]), "%s", key);
}

int registry_key_served(tracker *t, const char *key) {
  if (key_noted(t, key)) return 1;
  int rc = store_key_has_trials(t->db, key);
  /* A history that cannot tell must not cut a legitimate wait short. */
  if (rc < 0) log_warn(WHO, "cannot look up key '%s' in the history: %s", key, hist_errmsg(t->db));
  if (rc == 0) return 0;
  registry_note_key(t, key);
  return 1;
}

char *registry_device_json(const peer *p) {
  json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:s}", "name", p->name, "host",
                        p->host, "arch", p->arch, "cores", (json_int_t)p->cores, "cpu",
                        p->cpu_model, "kernel", p->kernel, "governor", p->governor, "ktune",
                        p->version);
  /* A trial measured without part of the sandbox says so in its row. */
  if (o && p->sandbox_off[0]) json_object_set_new(o, "sandbox_off", json_string(p->sandbox_off));
  char *txt = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(o);
  /* Canonical for certain, once: every trial of this runner stores it. */
  char *canon = NULL, why[160];
  if (txt && ident_canonical_object(txt, &canon, why, sizeof(why)) < 0) canon = NULL;
  free(txt);
  return canon;
}

static Ktune__KeyInfo *key_info(Ktune__StatusReply *out, const char *key) {
  for (size_t i = 0; i < out->n_keys; i++)
    if (strcmp(out->keys[i]->key, key) == 0) return out->keys[i];
  Ktune__KeyInfo **nk = realloc(out->keys, (out->n_keys + 1) * sizeof(*nk));
  Ktune__KeyInfo *k = calloc(1, sizeof(*k));
  if (!nk || !k) {
    if (nk) out->keys = nk;
    free(k);
    return NULL;
  }
  ktune__key_info__init(k);
  k->key = (char *)key;
  out->keys = nk;
  out->keys[out->n_keys++] = k;
  return k;
}

/* Ended sessions shown from the history besides those still in memory:
 * enough to find the last few, few enough that status stays small on a
 * tracker that has run thousands. */
#define RECENT_SESSIONS 10

/* One status's count of failed trials, into the session read back. */
static int add_failures(void *ctx, const char *status, int64_t n) {
  Ktune__SessionInfo *si = ctx;
  if (si->n_failure_counts >= NCODES) return 0;
  size_t code = (size_t)wire_status_parse(status);
  const char *name = code ? wire_status_name((Ktune__TrialStatus)code) : NULL;
  Ktune__StatusCount *c = &si->failure_counts[0][si->n_failure_counts];
  ktune__status_count__init(c);
  c->status = (char *)(name ? name : "unknown");
  c->count = (uint32_t)n;
  si->failure_counts[si->n_failure_counts] = c;
  si->n_failure_counts++;
  return 0;
}

typedef struct {
  hist *db;
  Ktune__StatusReply *out;
  uint32_t max_rows; /* 0: all */
} recent_ctx;

static int add_recent(void *ctx, const hist_session_row *r) {
  hist *db = ((recent_ctx *)ctx)->db;
  Ktune__StatusReply *out = ((recent_ctx *)ctx)->out;
  uint32_t max_rows = ((recent_ctx *)ctx)->max_rows;
  for (size_t i = 0; i < out->n_sessions; i++)
    if (out->sessions[i]->id == (uint64_t)r->id) return 0;
  out->sessions_total++;
  if (max_rows && out->n_sessions >= max_rows) return 0;
  Ktune__SessionInfo *si = calloc(1, sizeof(*si));
  if (!si) return 0;
  ktune__session_info__init(si);
  si->id = (uint64_t)r->id;
  si->key = strdup(r->key ? r->key : "");
  si->state = wire_state_parse(r->state);
  si->trials = r->trials;
  si->trials_done = r->done;
  si->best_gflops = r->best_gflops;
  si->task = strdup(r->task ? r->task : "");
  si->strategy = strdup(r->strategy ? r->strategy : "");
  si->owner = strdup(r->owner ? r->owner : "");
  si->message = strdup(r->message ? r->message : "");
  si->failures = r->failures;
  si->reused = r->reused;
  /* Ended: its pace and its failures from its rows. */
  if (r->failures) {
    si->failure_counts = calloc(NCODES, sizeof(*si->failure_counts));
    Ktune__StatusCount *c = calloc(NCODES, sizeof(*c));
    if (si->failure_counts && c) {
      si->failure_counts[0] = c; /* the array of all, until add_failures fills */
      hist_session_failures(db, r->id, add_failures, si);
    }
    if (!si->n_failure_counts) {
      free(c);
      free(si->failure_counts);
      si->failure_counts = NULL;
    }
  }
  si->best_latency_s = r->best_mean_s;
  si->elapsed_s = r->updated_ms > r->created_ms ? (double)(r->updated_ms - r->created_ms) / 1e3 : 0;
  si->eta_s = 0;
  out->sessions[out->n_sessions++] = si;
  return 0;
}

/* Its failed trials by status into c, pointed at by ptrs (room for each
 * status); returns how many statuses had some. */
size_t registry_fail_counts(const session *s, Ktune__StatusCount *c, Ktune__StatusCount **ptrs) {
  size_t n = 0;
  for (size_t i = 0; i < NCODES; i++) {
    if (!s->fail_count[i]) continue;
    ktune__status_count__init(&c[n]);
    const char *name = wire_status_name((Ktune__TrialStatus)i);
    c[n].status = (char *)(name ? name : "unknown");
    c[n].count = s->fail_count[i];
    ptrs[n] = &c[n];
    n++;
  }
  return n;
}

/* Its pace for status: the best latency, the failures by status, the
 * time so far and the time left, at the pace of its trials so far (reused
 * ones included, as they count toward its total). */
static void session_pace(tracker *t, const session *s, Ktune__SessionInfo *si) {
  si->best_latency_s = s->best_latency;
  uint64_t end = s->ended_ms ? s->ended_ms : uv_now(t->loop);
  si->elapsed_s = end > s->started_ms ? (double)(end - s->started_ms) / 1e3 : 0;
  si->eta_s = -1;
  if (s->ended_ms) si->eta_s = 0;
  else if (s->done > 0 && s->done < s->trials)
    si->eta_s = si->elapsed_s / s->done * (s->trials - s->done);
  size_t n = 0;
  for (size_t i = 0; i < NCODES; i++) n += s->fail_count[i] != 0;
  if (!n) return;
  Ktune__StatusCount *c = calloc(n, sizeof(*c));
  Ktune__StatusCount **ptrs = calloc(n, sizeof(*ptrs));
  if (!c || !ptrs) {
    free(c), free(ptrs);
    return;
  }
  si->n_failure_counts = registry_fail_counts(s, c, ptrs);
  si->failure_counts = ptrs;
}

/* A ready agent's row of the status (its strings are the peer's). */
static Ktune__AgentInfo *agent_info(tracker *t, peer *p) {
  Ktune__AgentInfo *a = calloc(1, sizeof(*a));
  if (!a) return NULL;
  ktune__agent_info__init(a);
  a->role = p->role;
  a->name = p->name;
  a->key = p->key;
  a->host = p->host;
  a->arch = p->arch;
  a->id = p->id;
  a->state = p->draining ? "draining" : p->busy ? "busy" : "idle";
  if (guard_quarantined(t, p)) {
    a->state = "quarantined";
    char q[256];
    guard_describe(t, p, q, sizeof(q));
    a->quarantine = strdup(q);
  }
  a->trials_done = p->trials_done;
  a->trials_failed = p->trials_failed;
  a->last_heard_s = p->c ? (double)(uv_now(t->loop) - p->c->last_rx_ms) / 1e3 : 0;
  a->cpu_model = p->cpu_model;
  a->cores = p->cores;
  a->kernel = p->kernel;
  a->governor = p->governor;
  a->version = p->version;
  a->sandbox_off = p->sandbox_off;
  a->archs = calloc(p->narchs ? p->narchs : 1, sizeof(char *));
  for (size_t i = 0; a->archs && i < p->narchs; i++) a->archs[a->n_archs++] = (char *)p->archs[i];
  a->jobs = calloc(p->busy ? p->busy : 1, sizeof(uint64_t));
  for (job *j = p->leases; a->jobs && j && a->n_jobs < p->busy; j = j->lnext)
    a->jobs[a->n_jobs++] = j->id;
  static char *tcc = "tcc", *cc = "cc";
  a->backends = calloc(2, sizeof(char *));
  if (a->backends && p->has_tcc) a->backends[a->n_backends++] = tcc;
  if (a->backends && p->has_cc) a->backends[a->n_backends++] = cc;
  return a;
}

/* An agent to look at first when not every one is listed. */
static int needs_a_look(tracker *t, const peer *p) {
  return guard_quarantined(t, p) || p->draining || p->sandbox_off[0] ||
         (p->c && uv_now(t->loop) - p->c->last_rx_ms > 2 * (uint64_t)t->opts.heartbeat_ms);
}

static int listed(const peer *p) {
  return p->state == PEER_READY && p->role != KTUNE__ROLE__ROLE_CLIENT;
}

void registry_status(tracker *t, Ktune__StatusReply *out, uint32_t max_rows) {
  ktune__status_reply__init(out);
  out->uptime_s = (double)(uv_now(t->loop) - t->started_ms) / 1e3;
  size_t na = 0, ns = 0;
  for (peer *p = t->peers; p; p = p->next) na += listed(p);
  for (session *s = t->sessions; s; s = s->next) ns++;
  out->agents_total = (uint32_t)na;
  out->sessions_total = (uint32_t)ns;
  ns += RECENT_SESSIONS;
  out->agents = calloc(na ? na : 1, sizeof(*out->agents));
  out->sessions = calloc(ns ? ns : 1, sizeof(*out->sessions));
  if (!out->agents || !out->sessions) return;
  /* With a limit, two passes: those that need a look, then the rest. */
  int limited = max_rows && max_rows < na;
  size_t room = limited ? max_rows : na;
  for (int pass = 0; pass < (limited ? 2 : 1); pass++)
    for (peer *p = t->peers; p && out->n_agents < room; p = p->next) {
      if (!listed(p) || (limited && (pass == 0) != needs_a_look(t, p))) continue;
      Ktune__AgentInfo *a = agent_info(t, p);
      if (!a) break;
      out->agents[out->n_agents++] = a;
    }
  for (peer *p = t->peers; p; p = p->next) {
    if (!listed(p)) continue;
    if (p->role == KTUNE__ROLE__ROLE_RUNNER) {
      Ktune__KeyInfo *k = key_info(out, p->key);
      if (k) {
        k->runners++;
        if (p->busy) k->busy++;
        else k->free++;
      }
    }
  }
  for (keyq *q = t->keys; q; q = q->next) {
    if (!q->queued[QUEUE_BUILD] && !q->queued[QUEUE_RUN]) continue;
    Ktune__KeyInfo *k = key_info(out, q->key);
    if (!k) continue;
    k->build_queued += q->queued[QUEUE_BUILD];
    k->run_queued += q->queued[QUEUE_RUN];
  }
  /* Each key's owners: those waiting, and those who used it lately. */
  out->share_half_life_s = t->opts.share_half_life_s;
  for (share *sh = t->shares; sh; sh = sh->next) key_info(out, sh->key);
  for (size_t i = 0; i < out->n_keys; i++)
    share_status(t, queue_key(t, out->keys[i]->key), out->keys[i]);
  for (session *s = t->sessions; s && !(max_rows && out->n_sessions >= max_rows); s = s->next) {
    Ktune__SessionInfo *si = calloc(1, sizeof(*si));
    if (!si) break;
    ktune__session_info__init(si);
    si->id = s->id;
    si->key = strdup(s->key);
    si->state = s->state;
    si->trials = s->trials;
    si->trials_done = s->done;
    si->best_gflops = s->best_gflops;
    si->task = strdup(s->task.name);
    si->strategy = strdup(s->strategy);
    si->owner = strdup(s->owner);
    si->priority = s->priority;
    si->message = strdup(s->message);
    si->failures = s->failures;
    si->reused = s->reused;
    session_pace(t, s, si);
    share_session_status(t, s, si);
    out->sessions[out->n_sessions++] = si;
  }
  recent_ctx rc = {t->db, out, max_rows};
  hist_sessions_recent(t->db, RECENT_SESSIONS, add_recent, &rc);
}

void registry_status_free(Ktune__StatusReply *r) {
  /* The agents' strings belong to peers; the sessions' are copies. */
  for (size_t i = 0; i < r->n_agents; i++) {
    free(r->agents[i]->jobs);
    free(r->agents[i]->backends);
    free(r->agents[i]->archs);
    if (r->agents[i]->quarantine != protobuf_c_empty_string) free(r->agents[i]->quarantine);
    free(r->agents[i]);
  }
  for (size_t i = 0; i < r->n_keys; i++) {
    share_status_free(r->keys[i]);
    free(r->keys[i]);
  }
  free(r->keys);
  for (size_t i = 0; i < r->n_sessions; i++) {
    Ktune__SessionInfo *si = r->sessions[i];
    free(si->key), free(si->task), free(si->strategy), free(si->owner);
    free(si->message);
    if (si->n_failure_counts) free(si->failure_counts[0]); /* one array of all */
    free(si->failure_counts);
    free(si);
  }
  free(r->agents);
  free(r->sessions);
}
