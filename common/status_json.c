/* The JSON of a tracker's status: what `ktune status --json` prints and
 * the tracker's /api/status serves, from one StatusReply. */
#include "common/status_json.h"

#include <math.h>
#include <stdlib.h>

#include "common/wire.h"

/* Seconds to the millisecond, the resolution the tracker measures them
 * in: 0.123, not 0.12299999999999999. */
static json_t *json_seconds(double s) { return json_real(round(s * 1e3) / 1e3); }

/* A part of a whole, 0 to 1, to a tenth of a percent. */
static json_t *json_share(double f) { return json_real(round(f * 1e3) / 1e3); }

/* A runner's device; NULL for an agent that reported none (a builder). */
static json_t *json_device(const Ktune__AgentInfo *a) {
  if (!a->cpu_model[0] && !a->cores && !a->kernel[0]) return NULL;
  return json_pack("{s:s, s:i, s:s, s:s, s:s}", "cpu", a->cpu_model, "cores", (int)a->cores,
                   "kernel", a->kernel, "governor", a->governor, "ktune", a->version);
}

json_t *status_json(const Ktune__StatusReply *r) {
  json_t *o = json_object();
  json_object_set_new(o, "uptime_s", json_seconds(r->uptime_s));
  json_t *agents = json_array();
  for (size_t i = 0; i < r->n_agents; i++) {
    const Ktune__AgentInfo *a = r->agents[i];
    json_t *jobs = json_array();
    for (size_t k = 0; k < a->n_jobs; k++) json_array_append_new(jobs, json_integer((json_int_t)a->jobs[k]));
    json_t *backends = json_array();
    for (size_t k = 0; k < a->n_backends; k++) json_array_append_new(backends, json_string(a->backends[k]));
    json_t *agent =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:i, s:i, s:o, s:o, s:o, s:s}",
                  "role", wire_role_name(a->role), "name", a->name, "key", a->key, "host", a->host,
                  "state", a->state, "arch", a->arch, "id", (json_int_t)a->id, "trials_done",
                  (int)a->trials_done, "trials_failed", (int)a->trials_failed, "jobs", jobs,
                  "last_heard_s", json_seconds(a->last_heard_s), "backends", backends,
                  "quarantine", a->quarantine);
    json_t *device = json_device(a);
    if (agent && device) json_object_set_new(agent, "device", device);
    else json_decref(device);
    if (agent && a->sandbox_off[0])
      json_object_set_new(agent, "sandbox_off", json_string(a->sandbox_off));
    if (agent && a->n_archs) {
      json_t *archs = json_array();
      for (size_t k = 0; k < a->n_archs; k++) json_array_append_new(archs, json_string(a->archs[k]));
      json_object_set_new(agent, "builds_for", archs);
    }
    json_array_append_new(agents, agent);
  }
  json_object_set_new(o, "agents", agents);
  json_object_set_new(o, "share_half_life_s", json_seconds(r->share_half_life_s));
  json_t *keys = json_array();
  for (size_t i = 0; i < r->n_keys; i++) {
    const Ktune__KeyInfo *k = r->keys[i];
    json_t *owners = json_array();
    for (size_t j = 0; j < k->n_owners; j++) {
      const Ktune__OwnerShare *w = k->owners[j];
      json_array_append_new(owners, json_pack("{s:s, s:i, s:o, s:o, s:o, s:i, s:i}", "owner",
                                              w->owner, "weight", (int)w->weight, "target",
                                              json_share(w->target), "actual",
                                              json_share(w->actual), "runner_s",
                                              json_seconds(w->runner_s), "sessions",
                                              (int)w->sessions, "running", (int)w->running));
    }
    json_array_append_new(keys, json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:o}", "key", k->key,
                                           "runners", (int)k->runners, "busy", (int)k->busy,
                                           "free", (int)k->free, "build_queued",
                                           (int)k->build_queued, "run_queued", (int)k->run_queued,
                                           "owners", owners));
  }
  json_object_set_new(o, "keys", keys);
  json_t *sessions = json_array();
  for (size_t i = 0; i < r->n_sessions; i++) {
    const Ktune__SessionInfo *s = r->sessions[i];
    json_t *js =
        json_pack("{s:I, s:s, s:s, s:i, s:i, s:i, s:i, s:f, s:s, s:s, s:s, s:i, s:s}", "id",
                  (json_int_t)s->id, "key", s->key, "state", wire_state_name(s->state), "trials", (int)s->trials,
                  "trials_done", (int)s->trials_done, "failures", (int)s->failures,
                  "reused", (int)s->reused,
                  "best_gflops", s->best_gflops, "task", s->task, "strategy", s->strategy,
                  "owner", s->owner, "priority", (int)s->priority, "message", s->message);
    if (js) {
      json_object_set_new(js, "place", json_integer(s->place));
      json_object_set_new(js, "runner_s", json_seconds(s->runner_s));
      json_object_set_new(js, "admin", json_boolean(s->admin));
      /* A latency in full: a kernel of microseconds is not 0.000 s. */
      json_object_set_new(js, "best_latency_s", json_real(s->best_latency_s));
      json_t *fails = json_object();
      for (size_t k = 0; k < s->n_failure_counts; k++)
        json_object_set_new(fails, s->failure_counts[k]->status,
                            json_integer(s->failure_counts[k]->count));
      json_object_set_new(js, "failures_by_code", fails);
      json_object_set_new(js, "elapsed_s", json_seconds(s->elapsed_s));
      json_object_set_new(js, "eta_s", s->eta_s < 0 ? json_null() : json_seconds(s->eta_s));
    }
    json_array_append_new(sessions, js);
  }
  json_object_set_new(o, "sessions", sessions);
  return o;
}

char *status_json_text(const Ktune__StatusReply *r) {
  json_t *o = status_json(r);
  /* 15 digits print a value rounded to the millisecond as it reads. */
  char *txt = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
  json_decref(o);
  return txt;
}

