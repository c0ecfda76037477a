/* ktune status: what a running tracker holds: agents, keys, sessions. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
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

static void print_json(const Ktune__StatusReply *r) {
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
    }
    json_array_append_new(sessions, js);
  }
  json_object_set_new(o, "sessions", sessions);
  /* 15 digits print a value rounded to the millisecond as it reads. */
  char *txt = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15));
  printf("%s\n", txt);
  free(txt);
  json_decref(o);
}

void cli_print_sessions(const Ktune__StatusReply *r) {
  printf("sessions (%zu)\n", r->n_sessions);
  if (r->n_sessions)
    printf("  %-5s %-10s %-14s %-10s %-8s %-10s %-11s %-7s %-12s %s\n", "ID", "OWNER", "TASK",
           "KEY", "STRATEGY", "STATE", "TRIALS", "FAILED", "BEST GFLOPS", "LINE");
  for (size_t i = 0; i < r->n_sessions; i++) {
    const Ktune__SessionInfo *s = r->sessions[i];
    char trials[32];
    snprintf(trials, sizeof(trials), "%u/%u", s->trials_done, s->trials);
    /* Its place in its key's line; an admin's priority is shown, as it
     * reaches across owners. */
    char line[32] = "-";
    if (s->place && s->admin && s->priority)
      snprintf(line, sizeof(line), "%u (admin %u)", s->place, s->priority);
    else if (s->place)
      snprintf(line, sizeof(line), "%u", s->place);
    printf("  %-5llu %-10s %-14s %-10s %-8s %-10s %-11s %-7u %-12.3f %s\n",
           (unsigned long long)s->id, s->owner, s->task, s->key, s->strategy,
           wire_state_name(s->state), trials, s->failures, s->best_gflops, line);
    if (s->message[0]) printf("        %s\n", s->message);
  }
}

static void print_text(const char *addr, const Ktune__StatusReply *r) {
  printf("tracker %s, up %.1f s\n", addr, r->uptime_s);
  printf("\nagents (%zu)\n", r->n_agents);
  if (r->n_agents)
    printf("  %-8s %-18s %-10s %-14s %-7s %-5s %-9s %-7s %s\n", "ROLE", "NAME", "KEY", "HOST",
           "ARCH", "STATE", "JOB", "OK/FAIL", "HEARD");
  for (size_t i = 0; i < r->n_agents; i++) {
    const Ktune__AgentInfo *a = r->agents[i];
    char job[24] = "-", counts[24];
    if (a->n_jobs) snprintf(job, sizeof(job), "%llu%s", (unsigned long long)a->jobs[0], a->n_jobs > 1 ? "+" : "");
    snprintf(counts, sizeof(counts), "%u/%u", a->trials_done, a->trials_failed);
    printf("  %-8s %-18s %-10s %-14s %-7s %-5s %-9s %-7s %.1fs ago\n", wire_role_name(a->role), a->name,
           a->key[0] ? a->key : "-", a->host, a->arch, a->state, job, counts, a->last_heard_s);
    if (a->role == KTUNE__ROLE__ROLE_RUNNER && a->cpu_model[0])
      printf("           %s, %u cores, kernel %s, governor %s, ktune %s\n", a->cpu_model, a->cores,
             a->kernel, a->governor[0] ? a->governor : "unknown", a->version);
    if (a->sandbox_off[0])
      printf("           sandbox OFF: %s (--sandbox-off): its kernels run less confined\n",
             a->sandbox_off);
    if (a->role == KTUNE__ROLE__ROLE_BUILDER && a->n_archs) {
      printf("           builds for");
      for (size_t k = 0; k < a->n_archs; k++) printf("%s %s", k ? "," : "", a->archs[k]);
      printf("\n");
    }
    if (a->quarantine[0]) printf("           %s\n", a->quarantine);
  }
  printf("\nkeys (%zu)\n", r->n_keys);
  if (r->n_keys)
    printf("  %-12s %-8s %-5s %-5s %-12s %s\n", "KEY", "RUNNERS", "BUSY", "FREE", "BUILD QUEUE",
           "RUN QUEUE");
  for (size_t i = 0; i < r->n_keys; i++) {
    const Ktune__KeyInfo *k = r->keys[i];
    printf("  %-12s %-8u %-5u %-5u %-12u %u\n", k->key, k->runners, k->busy, k->free,
           k->build_queued, k->run_queued);
    if (k->n_owners)
      printf("    %-12s %-7s %-7s %-7s %-9s %-8s %s\n", "OWNER", "WEIGHT", "TARGET", "ACTUAL",
             "RUNNER S", "WAITING", "RUNNING");
    for (size_t j = 0; j < k->n_owners; j++) {
      const Ktune__OwnerShare *w = k->owners[j];
      printf("    %-12s %-7u %-7.0f %-7.0f %-9.1f %-8u %u\n", w->owner, w->weight,
             100 * w->target, 100 * w->actual, w->runner_s, w->sessions, w->running);
    }
  }
  int owners = 0;
  for (size_t i = 0; i < r->n_keys; i++) owners |= r->keys[i]->n_owners > 0;
  if (owners)
    printf("  (TARGET and ACTUAL are %% of a key's runner time; runner time used counts half "
           "after %.0f s)\n", r->share_half_life_s);
  printf("\n");
  cli_print_sessions(r);
}

int cli_fetch_status(const cli_dial *d, Ktune__Envelope **reply, char *err, size_t errlen) {
  client c;
  if (client_connect(&c, d, err, errlen) < 0) return -1;
  Ktune__StatusRequest req = KTUNE__STATUS_REQUEST__INIT;
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_STATUS_REQUEST, &req);
  Ktune__Envelope *m = client_ask(&c, &env, 10000, err, errlen);
  client_close(&c);
  if (!m) return -1;
  if (m->msg_case != KTUNE__ENVELOPE__MSG_STATUS_REPLY) {
    snprintf(err, errlen, "unexpected reply from the tracker");
    wire_free(m);
    return -1;
  }
  *reply = m;
  return 0;
}

int cmd_status(int argc, char **argv) {
  cli_dial d = {0};
  int json = 0;
  static const struct option opts[] = {CLI_DIAL_OPTIONS,
                                       {"json", no_argument, 0, 'j'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (ch) {
    case CLI_OPT_TRACKER: case CLI_OPT_TOKEN_FILE: cli_dial_option(&d, ch, optarg); break;
    case 'j': json = 1; break;
    case 'h':
      printf("usage: ktune status " CLI_DIAL_USAGE " [--json]\n\n"
             "Prints a tracker's uptime, its agents (role, name, key, host, state, the job\n"
             "held, trials ok/failed, when last heard, a runner's device), its device keys\n"
             "(runners, busy, free, jobs queued, and each owner's weight, target and actual\n"
             "share of the runner time) and its sessions (as `ktune sessions`, with each one's\n"
             "place in its key's line).\n"
             CLI_DIAL_HELP
             "  --json               all of it as one JSON object, times in seconds to the\n"
             "                       millisecond (default: text)\n\n"
             "Exit status: 0 when the tracker answered; 1 when it could not be reached or\n"
             "refused; 2 for a usage error.\n");
      return EXIT_OK;
    default: return EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "ktune status: unexpected argument '%s'\n", argv[optind]);
    return EXIT_USAGE;
  }
  if (cli_dial_settle(&d, "status", CLI_LOCAL_TRACKER) < 0) return EXIT_USAGE;
  char err[512];
  Ktune__Envelope *m;
  if (cli_fetch_status(&d, &m, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune status: %s\n", err);
    return EXIT_FAIL;
  }
  if (json) print_json(m->status_reply);
  else print_text(d.tracker, m->status_reply);
  wire_free(m);
  return EXIT_OK;
}
