/* Who is connected: builders, runners and clients, and what they hold. */
#include <stdlib.h>
#include <string.h>

#include "tracker/tracker.h"

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

void registry_remove(tracker *t, peer *p) {
  if (p->prev) p->prev->next = p->next;
  else t->peers = p->next;
  if (p->next) p->next->prev = p->prev;
  free(p);
}

peer *registry_find(tracker *t, uint64_t id) {
  for (peer *p = t->peers; p; p = p->next)
    if (p->id == id) return p;
  return NULL;
}

uint32_t registry_runners(tracker *t, const char *key) {
  uint32_t n = 0;
  for (peer *p = t->peers; p; p = p->next)
    if (p->state == PEER_READY && p->role == KTUNE__ROLE__ROLE_RUNNER && strcmp(p->key, key) == 0)
      n++;
  return n;
}

const char *registry_role_name(Ktune__Role r) {
  switch (r) {
  case KTUNE__ROLE__ROLE_BUILDER: return "builder";
  case KTUNE__ROLE__ROLE_RUNNER: return "runner";
  case KTUNE__ROLE__ROLE_CLIENT: return "client";
  default: return "peer";
  }
}

void registry_status(tracker *t, Ktune__StatusReply *out) {
  ktune__status_reply__init(out);
  out->uptime_s = (double)(uv_now(t->loop) - t->started_ms) / 1e3;
  size_t na = 0, ns = 0;
  for (peer *p = t->peers; p; p = p->next)
    na += p->state == PEER_READY && p->role != KTUNE__ROLE__ROLE_CLIENT;
  for (session *s = t->sessions; s; s = s->next) ns++;
  out->agents = calloc(na ? na : 1, sizeof(*out->agents));
  out->sessions = calloc(ns ? ns : 1, sizeof(*out->sessions));
  if (!out->agents || !out->sessions) return;
  for (peer *p = t->peers; p; p = p->next) {
    if (p->state != PEER_READY || p->role == KTUNE__ROLE__ROLE_CLIENT) continue;
    Ktune__AgentInfo *a = calloc(1, sizeof(*a));
    if (!a) break;
    ktune__agent_info__init(a);
    a->role = p->role;
    a->name = p->name;
    a->key = p->key;
    a->host = p->host;
    a->arch = p->arch;
    a->id = p->id;
    a->state = p->busy ? "busy" : "idle";
    a->trials_done = p->trials_done;
    out->agents[out->n_agents++] = a;
  }
  for (session *s = t->sessions; s; s = s->next) {
    Ktune__SessionInfo *si = calloc(1, sizeof(*si));
    if (!si) break;
    ktune__session_info__init(si);
    si->id = s->id;
    si->key = s->key;
    si->state = (char *)s->state;
    si->trials = s->trials;
    si->trials_done = s->done;
    si->best_gflops = s->best_gflops;
    si->task = s->task.name;
    si->strategy = s->strategy;
    out->sessions[out->n_sessions++] = si;
  }
}

void registry_status_free(Ktune__StatusReply *r) {
  /* The strings belong to peers and sessions; only the shells are ours. */
  for (size_t i = 0; i < r->n_agents; i++) free(r->agents[i]);
  for (size_t i = 0; i < r->n_sessions; i++) free(r->sessions[i]);
  free(r->agents);
  free(r->sessions);
}
