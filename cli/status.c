/* ktune status: what a running tracker holds: agents, keys, sessions. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/status_json.h"
#include "common/wire.h"

/* Agents and sessions a text status lists without --all: a screenful, not
 * a farm of a thousand boards. */
#define STATUS_ROWS 40

static void print_json(const Ktune__StatusReply *r) {
  char *txt = status_json_text(r);
  if (!txt) {
    fprintf(stderr, "ktune status: out of memory\n");
    return;
  }
  printf("%s\n", txt);
  free(txt);
}

/* Owners a text status lists per key without --all: those holding or
 * waiting for its runners first, then those with the most runner time. */
#define OWNER_ROWS 8

static int owner_first(const void *a, const void *b) {
  const Ktune__OwnerShare *x = *(Ktune__OwnerShare *const *)a, *y = *(Ktune__OwnerShare *const *)b;
  if (x->running != y->running) return x->running > y->running ? -1 : 1;
  if (!x->sessions != !y->sessions) return x->sessions ? -1 : 1;
  if (x->runner_s != y->runner_s) return x->runner_s > y->runner_s ? -1 : 1;
  return strcmp(x->owner, y->owner);
}

/* "(1000)", or "(1000, 40 shown: WHICH; ktune status --all for all)". */
static void count_line(const char *what, size_t shown, uint32_t total, const char *which) {
  if (total > shown)
    printf("%s (%u, %zu shown: %s; ktune status --all for all)\n", what, total, shown, which);
  else
    printf("%s (%zu)\n", what, shown);
}

void cli_print_sessions(const Ktune__StatusReply *r) {
  count_line("sessions", r->n_sessions, r->sessions_total, "the newest");
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

static void print_text(const char *addr, const Ktune__StatusReply *r, int all) {
  printf("tracker %s, up %.1f s\n", addr, r->uptime_s);
  printf("\n");
  count_line("agents", r->n_agents, r->agents_total, "those that need a look first");
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
    size_t shown = k->n_owners;
    if (!all && shown > OWNER_ROWS) {
      shown = OWNER_ROWS;
      qsort(k->owners, k->n_owners, sizeof(*k->owners), owner_first);
      printf("    ");
      count_line("owners", shown, (uint32_t)k->n_owners,
                 "those running or waiting first, then the most runner time");
    }
    if (shown)
      printf("    %-12s %-7s %-7s %-7s %-9s %-8s %s\n", "OWNER", "WEIGHT", "TARGET", "ACTUAL",
             "RUNNER S", "WAITING", "RUNNING");
    for (size_t j = 0; j < shown; j++) {
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

int cli_fetch_status(const cli_dial *d, uint32_t max_rows, Ktune__Envelope **reply, char *err,
                     size_t errlen) {
  client c;
  if (client_connect(&c, d, err, errlen) < 0) return -1;
  Ktune__StatusRequest req = KTUNE__STATUS_REQUEST__INIT;
  req.max_rows = max_rows;
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
  int json = 0, all = 0;
  static const struct option opts[] = {CLI_DIAL_OPTIONS,
                                       {"json", no_argument, 0, 'j'},
                                       {"all", no_argument, 0, 'a'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (ch) {
    case CLI_OPT_TRACKER: case CLI_OPT_TOKEN_FILE: cli_dial_option(&d, ch, optarg); break;
    case 'j': json = 1; break;
    case 'a': all = 1; break;
    case 'h':
      printf("usage: ktune status " CLI_DIAL_USAGE " [--all] [--json]\n\n"
             "Prints a tracker's uptime, its agents (role, name, key, host, state, the job\n"
             "held, trials ok/failed, when last heard, a runner's device), its device keys\n"
             "(runners, busy, free, jobs queued, and each owner's weight, target and actual\n"
             "share of the runner time) and its sessions (as `ktune sessions`, with each one's\n"
             "place in its key's line).\n"
             CLI_DIAL_HELP
             "  --all                every agent, session and owner (default: at most %d\n"
             "                       agents and sessions, the agents that need a look\n"
             "                       first: quarantined, draining, sandbox parts off, not\n"
             "                       heard lately; then the newest sessions; and %d owners\n"
             "                       a key, those running or waiting first; the counts are\n"
             "                       always of all)\n"
             "  --json               all of it as one JSON object, times in seconds to the\n"
             "                       millisecond (default: text)\n\n"
             "Exit status: 0 when the tracker answered; 1 when it could not be reached or\n"
             "refused; 2 for a usage error.\n", STATUS_ROWS, OWNER_ROWS);
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
  if (cli_fetch_status(&d, json || all ? 0 : STATUS_ROWS, &m, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune status: %s\n", err);
    return EXIT_FAIL;
  }
  if (json) print_json(m->status_reply);
  else print_text(d.tracker, m->status_reply, all);
  wire_free(m);
  return EXIT_OK;
}
