/* ktune status: agents and sessions of a running tracker. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/wire.h"

static const char *role_name(Ktune__Role r) {
  return r == KTUNE__ROLE__ROLE_BUILDER ? "builder" : r == KTUNE__ROLE__ROLE_RUNNER ? "runner" : "client";
}

static void print_json(const Ktune__StatusReply *r) {
  json_t *o = json_object();
  json_object_set_new(o, "uptime_s", json_real(r->uptime_s));
  json_t *agents = json_array();
  for (size_t i = 0; i < r->n_agents; i++) {
    const Ktune__AgentInfo *a = r->agents[i];
    json_array_append_new(agents,
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:i}", "role", role_name(a->role), "name",
                  a->name, "key", a->key, "host", a->host, "state", a->state, "arch", a->arch, "id",
                  (json_int_t)a->id, "trials_done", (int)a->trials_done));
  }
  json_object_set_new(o, "agents", agents);
  json_t *sessions = json_array();
  for (size_t i = 0; i < r->n_sessions; i++) {
    const Ktune__SessionInfo *s = r->sessions[i];
    json_array_append_new(sessions,
        json_pack("{s:I, s:s, s:s, s:i, s:i, s:f, s:s, s:s}", "id", (json_int_t)s->id, "key",
                  s->key, "state", s->state, "trials", (int)s->trials, "trials_done",
                  (int)s->trials_done, "best_gflops", s->best_gflops, "task", s->task, "strategy",
                  s->strategy));
  }
  json_object_set_new(o, "sessions", sessions);
  char *txt = json_dumps(o, JSON_COMPACT);
  printf("%s\n", txt);
  free(txt);
  json_decref(o);
}

static void print_text(const char *addr, const Ktune__StatusReply *r) {
  printf("tracker %s, up %.1f s\n", addr, r->uptime_s);
  printf("\nagents (%zu)\n", r->n_agents);
  if (r->n_agents)
    printf("  %-8s %-20s %-12s %-16s %-8s %-6s %s\n", "ROLE", "NAME", "KEY", "HOST", "ARCH",
           "STATE", "TRIALS");
  for (size_t i = 0; i < r->n_agents; i++) {
    const Ktune__AgentInfo *a = r->agents[i];
    printf("  %-8s %-20s %-12s %-16s %-8s %-6s %u\n", role_name(a->role), a->name,
           a->key[0] ? a->key : "-", a->host, a->arch, a->state, a->trials_done);
  }
  printf("\nsessions (%zu)\n", r->n_sessions);
  if (r->n_sessions)
    printf("  %-5s %-16s %-12s %-8s %-10s %-13s %s\n", "ID", "TASK", "KEY", "STRATEGY", "STATE",
           "TRIALS", "BEST GFLOPS");
  for (size_t i = 0; i < r->n_sessions; i++) {
    const Ktune__SessionInfo *s = r->sessions[i];
    char trials[32];
    snprintf(trials, sizeof(trials), "%u/%u", s->trials_done, s->trials);
    printf("  %-5llu %-16s %-12s %-8s %-10s %-13s %.3f\n", (unsigned long long)s->id, s->task,
           s->key, s->strategy, s->state, trials, s->best_gflops);
  }
}

int cmd_status(int argc, char **argv) {
  const char *opt_tracker = NULL;
  int json = 0;
  static const struct option opts[] = {{"tracker", required_argument, 0, 't'},
                                       {"json", no_argument, 0, 'j'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (ch) {
    case 't': opt_tracker = optarg; break;
    case 'j': json = 1; break;
    case 'h':
      printf("usage: ktune status [--tracker HOST:PORT] [--json]\n"
             "Lists a tracker's agents and sessions (default tracker 127.0.0.1:9290).\n");
      return EXIT_OK;
    default: return EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "ktune status: unexpected argument '%s'\n", argv[optind]);
    return EXIT_USAGE;
  }
  const char *tracker = cli_tracker(opt_tracker);
  if (!tracker) tracker = "127.0.0.1:9290";
  char err[512];
  client c;
  if (client_connect(&c, tracker, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune status: %s\n", err);
    return EXIT_FAIL;
  }
  Ktune__StatusRequest req = KTUNE__STATUS_REQUEST__INIT;
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_STATUS_REQUEST;
  env.status_request = &req;
  Ktune__Envelope *m = client_send(&c, &env) < 0 ? NULL : client_recv(&c, 10000, err, sizeof(err));
  client_close(&c);
  if (!m || m->msg_case != KTUNE__ENVELOPE__MSG_STATUS_REPLY) {
    fprintf(stderr, "ktune status: %s\n", m ? "unexpected reply from the tracker" : err);
    wire_free(m);
    return EXIT_FAIL;
  }
  if (json) print_json(m->status_reply);
  else print_text(tracker, m->status_reply);
  wire_free(m);
  return EXIT_OK;
}
