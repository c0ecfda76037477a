/* ktune-load: many simulated builders and runners on one libuv loop,
 * speaking the real protocol to a real tracker, whose jobs take no time:
 * every BuildJob is answered at once with a small artifact, every RunJob
 * at once with plausible costs. What is left is the tracker's own cost
 * per trial. It can also submit the sessions that feed them, and it
 * measures dispatch latency: from a runner's RunResult to its next
 * RunJob. Not installed; scripts/bench-farm drives it. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <uv.h>

#include "common/addr.h"
#include "common/agent.h"
#include "common/auth.h"
#include "common/rng.h"
#include "common/task.h"
#include "common/wire.h"
#include "tests/bench/benchutil.h"

#define PROG "ktune-load"
#define MAX_AGENTS 100000u
/* Rounds a runner may be asked for (common/timing.c's limit on --repeat). */
#define MAX_ROUNDS 10000u
#define DIAL_TICK_MS 10

typedef struct {
  const char *tracker;
  const char *tokens_path;
  uint32_t builders, builder_slots, runners, keys;
  const char *key_prefix;
  double cost_us;
  uint32_t run_ms;         /* a run takes this long before its answer; 0: none */
  uint32_t run_spread;     /* ... give or take this many percent, uniformly */
  uint32_t artifact_bytes;
  uint32_t dial_batch;
  const char *spec_path;
  const char *vary;
  uint32_t sessions, trials, batch, per_client;
  const char *strategy;
  int check;
  int wait;
  double duration_s;
  pid_t tracker_pid;
  const char *stats_path;
  const char *ready_path;
} load_opts;

typedef struct load load;

typedef struct {
  load *L;
  agent *a;
  Ktune__Role role;
  char name[64];
  char key[64];
  int welcomed;
  uint64_t result_ns;      /* runner: its last RunResult went out; 0: none pending */
  uv_timer_t *run_timer;   /* runner with --run-ms: the run under way */
  uint64_t run_job;
  uint32_t run_rounds, run_number;
  /* Clients: sessions [first, first + count) are this one's to submit. */
  uint32_t first, count;
  int submitted;
  uint64_t follow;         /* the session the tracker reports to us */
  int follow_ended;
} sim;

struct load {
  uv_loop_t *loop;
  load_opts o;
  auth_tokens tokens;
  char arch[72];
  sim *sims;               /* builders, then runners, then clients */
  size_t nagents, nclients, dialled;
  size_t welcomed;
  size_t welcomed_at_end;  /* stopping logs every agent out */
  int all_ready, stopping, exit_code, timed_out;
  uint64_t start_ns, ready_ns;
  /* The measurement window: from all agents logged in (or SIGUSR1). */
  uint64_t window_ns, end_ns;
  double cpu0, cpu1;
  uint64_t builds, runs;
  uint32_t submitted, accepted, ended_ok, ended_bad;
  lat_hist dispatch;
  rng spread;
  task_spec task;
  int have_task;
  uint8_t *artifact;
  double *costs;
  uv_timer_t dial_timer, stop_timer;
  uv_signal_t sigterm, sigint, sigusr1;
};

static void usage(FILE *f) {
  fprintf(f,
          "usage: " PROG " --tracker HOST:PORT [OPTION]...\n"
          "       " PROG " --help\n"
          "\n"
          "Simulated builders and runners, one connection each on one loop, whose jobs take\n"
          "no time: each BuildJob is answered at once with a small artifact, each RunJob at\n"
          "once with plausible costs. Optionally submits the sessions that feed them. On\n"
          "SIGTERM or SIGINT (or at the end of --duration, or with --wait when every\n"
          "followed session has ended) it writes its figures as JSON and exits.\n"
          "SIGUSR1 starts the measurement window again (counts, dispatch latency,\n"
          "tracker CPU).\n"
          "  --tracker HOST:PORT    the tracker (required)\n"
          "  --tokens FILE          a tracker tokens file (lines ROLE NAME TOKEN): each\n"
          "                         simulated agent logs in with its name's line\n"
          "                         (default: no token)\n"
          "  --builders N           simulated builders (default 2)\n"
          "  --builder-slots N      build jobs each builder takes at once (default 8)\n"
          "  --runners N            simulated runners, one job at a time each (default 8)\n"
          "  --keys N               runners (and sessions) spread round-robin over keys\n"
          "                         PREFIX0 .. PREFIX<N-1> (default 1)\n"
          "  --key-prefix P         (default load)\n"
          "  --cost-us US           seconds per call each round reports, in us (default 2)\n"
          "  --run-ms MS            a runner answers each run MS after it came, as a device\n"
          "                         busy for that long (default 0: at once)\n"
          "  --run-spread PCT       each run takes --run-ms give or take PCT%%, uniformly,\n"
          "                         as runs of different configs do (default 0)\n"
          "  --artifact-bytes N     bytes of each built artifact (default 64)\n"
          "  --dial-batch N         agents dialled per %d ms, so logins do not trip the\n"
          "                         tracker's --max-unauth limits (default 32)\n"
          "  --spec FILE            task spec to submit sessions of (docs/TASKS.md)\n"
          "  --sessions N           sessions to submit once every agent is in (default 0)\n"
          "  --per-client N         sessions submitted per client connection, each one a\n"
          "                         distinct owner; a client follows its last (default 1)\n"
          "  --trials N             trials per session (default 1000)\n"
          "  --strategy S           (default grid)\n"
          "  --batch N              trials per progress report (default 8)\n"
          "  --vary NAME            sets the spec's constant NAME to each session's index,\n"
          "                         so that no two sessions share a trial identity and\n"
          "                         none is answered from the history (default: none)\n"
          "  --check                ask for output checking (default: --no-check)\n"
          "  --wait                 stop once every followed session has ended\n"
          "  --duration S           stop after S seconds whatever happens (default 300)\n"
          "  --tracker-pid PID      report the tracker's CPU time (utime+stime) over the\n"
          "                         window (default: not measured)\n"
          "  --stats FILE           where the JSON goes (default: standard output)\n"
          "  --ready-file FILE      written once every agent has logged in\n"
          "Running out of --duration is reported (\"timed_out\": true), not an error.\n"
          "Exit status: 0 after writing the figures; 1 when the run broke (a session\n"
          "ended failed or cancelled, the task could not be packed); 2 for a usage error.\n",
          DIAL_TICK_MS);
}

static double secs(uint64_t ns) { return (double)ns / 1e9; }

static void window_start(load *L) {
  L->window_ns = uv_hrtime();
  L->builds = L->runs = 0;
  lat_reset(&L->dispatch);
  for (size_t i = 0; i < L->nagents; i++) L->sims[i].result_ns = 0;
  L->cpu0 = L->o.tracker_pid ? bench_proc_cpu_s(L->o.tracker_pid) : -1;
}

static void stop_all(load *L);

/* ---- builders and runners ---- */

static void answer_build(sim *s, const Ktune__BuildJob *bj) {
  load *L = s->L;
  Ktune__BuildResult br = KTUNE__BUILD_RESULT__INIT;
  br.job_id = bj->job_id;
  br.status = WIRE_TRIAL(OK);
  br.artifact.data = L->artifact;
  br.artifact.len = L->o.artifact_bytes;
  br.build_s = 1e-5;
  br.compiler_id = PROG;
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_BUILD_RESULT, &br);
  if (agent_send(s->a, &env) == 0) L->builds++;
}

static void send_result(sim *s, uint64_t job_id, uint32_t rounds, uint32_t number) {
  load *L = s->L;
  Ktune__RunResult rr = KTUNE__RUN_RESULT__INIT;
  rr.job_id = job_id;
  rr.status = WIRE_TRIAL(OK);
  rr.costs_s = L->costs;
  rr.n_costs_s = rounds;
  rr.number = number;
  rr.clock = "CLOCK_MONOTONIC";
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_RUN_RESULT, &rr);
  if (agent_send(s->a, &env) == 0) {
    L->runs++;
    s->result_ns = uv_hrtime();
  }
}

static void on_run_done(uv_timer_t *t) {
  sim *s = t->data;
  send_result(s, s->run_job, s->run_rounds, s->run_number);
}

static void answer_run(sim *s, const Ktune__RunJob *rj) {
  load *L = s->L;
  uint64_t now = uv_hrtime();
  if (s->result_ns) lat_add(&L->dispatch, (now - s->result_ns) / 1000);
  s->result_ns = 0;
  /* The tracker checks the costs against what it asked for (guard.c):
   * one per round, the calls per round it asked for. */
  uint32_t rounds = rj->timing && rj->timing->repeat ? rj->timing->repeat : 3;
  uint32_t number = rj->timing && rj->timing->number ? rj->timing->number : 1;
  if (rounds > MAX_ROUNDS) rounds = MAX_ROUNDS;
  if (!L->o.run_ms) {
    send_result(s, rj->job_id, rounds, number);
    return;
  }
  /* A device busy for run_ms: the tracker is not saturated, and the
   * dispatch latency is the tracker's, not a queue's. */
  if (!s->run_timer) {
    s->run_timer = malloc(sizeof(*s->run_timer));
    if (!s->run_timer || uv_timer_init(L->loop, s->run_timer) < 0) {
      free(s->run_timer);
      s->run_timer = NULL;
      send_result(s, rj->job_id, rounds, number);
      return;
    }
    s->run_timer->data = s;
  }
  s->run_job = rj->job_id;
  s->run_rounds = rounds;
  s->run_number = number;
  /* Devices that all take exactly run_ms stay in step after the first
   * round, and their results reach the tracker in one burst a second. */
  double f = 1 + L->o.run_spread / 100.0 * rng_unit(&L->spread);
  uv_timer_start(s->run_timer, on_run_done, (uint64_t)(L->o.run_ms * f + 0.5), 0);
}

static void agent_message(agent *a, Ktune__Envelope *env) {
  sim *s = agent_data(a);
  if (env->msg_case == KTUNE__ENVELOPE__MSG_BUILD_JOB && s->role == KTUNE__ROLE__ROLE_BUILDER)
    answer_build(s, env->build_job);
  else if (env->msg_case == KTUNE__ENVELOPE__MSG_RUN_JOB && s->role == KTUNE__ROLE__ROLE_RUNNER)
    answer_run(s, env->run_job);
}

static void agent_gone(agent *a) {
  sim *s = agent_data(a);
  s->result_ns = 0;
  if (s->welcomed && s->L->welcomed) s->L->welcomed--;
  s->welcomed = 0;
}

static const agent_ops sim_ops = {agent_message, agent_gone};

/* ---- clients: sessions ---- */

static void submit_one(sim *c, uint32_t index) {
  load *L = c->L;
  char err[512];
  if (L->o.vary && task_set_const(&L->task, L->o.vary, (int64_t)index, err, sizeof(err)) < 0) {
    fprintf(stderr, "%s: --vary: %s\n", PROG, err);
    L->exit_code = 1;
    stop_all(L);
    return;
  }
  Ktune__TaskSpec *tp;
  if (task_to_proto(&L->task, &tp) < 0) {
    fprintf(stderr, "%s: cannot pack the task (out of memory)\n", PROG);
    L->exit_code = 1;
    stop_all(L);
    return;
  }
  char key[80];
  snprintf(key, sizeof(key), "%s%u", L->o.key_prefix, index % L->o.keys);
  Ktune__SubmitSession sub = KTUNE__SUBMIT_SESSION__INIT;
  sub.task = tp;
  sub.key = key;
  sub.trials = L->o.trials;
  sub.strategy = (char *)L->o.strategy;
  sub.seed = index + 1;
  sub.compiler = "tcc";
  sub.batch = L->o.batch;
  sub.check = L->o.check;
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_SUBMIT, &sub);
  if (agent_send(c->a, &env) == 0) L->submitted++;
  task_proto_free(tp);
}

static int ended(Ktune__SessionState st) {
  return st == WIRE_SESSION(DONE) || st == WIRE_SESSION(FAILED) || st == WIRE_SESSION(CANCELLED);
}

static void client_message(agent *a, Ktune__Envelope *env) {
  sim *c = agent_data(a);
  load *L = c->L;
  if (env->msg_case == KTUNE__ENVELOPE__MSG_ACCEPTED) {
    L->accepted++;
    /* The tracker reports the last accepted session to its submitter. */
    c->follow = env->accepted->session_id;
    return;
  }
  if (env->msg_case != KTUNE__ENVELOPE__MSG_PROGRESS) return;
  const Ktune__SessionProgress *pr = env->progress;
  if (pr->session_id != c->follow || c->follow_ended || !ended(pr->state)) return;
  c->follow_ended = 1;
  if (pr->state == WIRE_SESSION(DONE)) {
    L->ended_ok++;
  } else {
    L->ended_bad++;
    fprintf(stderr, "%s: session %llu ended %s: %s\n", PROG, (unsigned long long)pr->session_id,
            wire_state_name(pr->state), pr->message);
  }
  if (L->o.wait && L->ended_ok + L->ended_bad == L->nclients) {
    L->end_ns = uv_hrtime();
    stop_all(L);
  }
}

static void client_welcome(agent *a) {
  sim *c = agent_data(a);
  if (c->submitted) {
    /* A reconnect: the tracker forgot what we follow. */
    if (c->follow && !c->follow_ended) {
      Ktune__WatchSession w = KTUNE__WATCH_SESSION__INIT;
      w.session_id = c->follow;
      Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_WATCH, &w);
      agent_send(a, &env);
    }
    return;
  }
  c->submitted = 1;
  for (uint32_t i = 0; i < c->count; i++) submit_one(c, c->first + i);
}

static void client_gone(agent *a) { (void)a; }

static const agent_ops client_ops = {client_message, client_gone};

/* ---- setting up ---- */

static int sim_config(load *L, sim *s, agent_config *cfg) {
  static const char *tcc[] = {"tcc"};
  memset(cfg, 0, sizeof(*cfg));
  cfg->who = PROG;
  cfg->tracker = L->o.tracker;
  cfg->role = s->role;
  cfg->name = s->name;
  cfg->key = s->key[0] ? s->key : NULL;
  cfg->arch = L->arch;
  cfg->cpu_model = PROG;
  cfg->cores = 1;
  if (s->role == KTUNE__ROLE__ROLE_BUILDER) {
    cfg->backends = tcc;
    cfg->nbackends = 1;
    cfg->slots = L->o.builder_slots;
  } else {
    cfg->slots = 1;
  }
  if (L->o.tokens_path) {
    const auth_entry *e = auth_tokens_find(&L->tokens, s->name);
    if (!e) {
      fprintf(stderr, "%s: --tokens %s has no line for %s\n", PROG, L->o.tokens_path, s->name);
      return -1;
    }
    cfg->token = e->token;
  }
  return 0;
}

static void on_agent_welcome(agent *a);

static int dial_one(load *L, sim *s) {
  agent_config cfg;
  char err[256];
  if (sim_config(L, s, &cfg) < 0) return -1;
  int client = s->role == KTUNE__ROLE__ROLE_CLIENT;
  cfg.on_welcome = client ? client_welcome : on_agent_welcome;
  if (agent_new(L->loop, &cfg, client ? &client_ops : &sim_ops, s, &s->a, err, sizeof(err)) < 0) {
    fprintf(stderr, "%s: %s\n", PROG, err);
    return -1;
  }
  return 0;
}

static void start_clients(load *L) {
  for (size_t i = 0; i < L->nclients; i++)
    if (dial_one(L, &L->sims[L->nagents + i]) < 0) {
      L->exit_code = 1;
      stop_all(L);
      return;
    }
}

static void on_agent_welcome(agent *a) {
  sim *s = agent_data(a);
  load *L = s->L;
  if (!s->welcomed) L->welcomed++;
  s->welcomed = 1;
  if (L->all_ready || L->welcomed < L->nagents) return;
  L->all_ready = 1;
  L->ready_ns = uv_hrtime();
  fprintf(stderr, "%s: %zu agents logged in after %.2f s\n", PROG, L->nagents,
          secs(L->ready_ns - L->start_ns));
  if (L->o.ready_path && bench_write_file(L->o.ready_path, "ready\n") < 0)
    fprintf(stderr, "%s: cannot write --ready-file %s\n", PROG, L->o.ready_path);
  window_start(L);
  start_clients(L);
}

static void on_dial_tick(uv_timer_t *t) {
  load *L = t->data;
  for (uint32_t n = 0; n < L->o.dial_batch && L->dialled < L->nagents; n++)
    if (dial_one(L, &L->sims[L->dialled++]) < 0) {
      L->exit_code = 1;
      stop_all(L);
      return;
    }
  if (L->dialled == L->nagents) uv_timer_stop(t);
}

static void free_handle(uv_handle_t *h) { free(h); }

static void stop_all(load *L) {
  if (L->stopping) return;
  L->stopping = 1;
  if (!L->end_ns) L->end_ns = uv_hrtime();
  if (L->o.tracker_pid) L->cpu1 = bench_proc_cpu_s(L->o.tracker_pid);
  L->welcomed_at_end = L->welcomed;
  for (size_t i = 0; i < L->nagents + L->nclients; i++) {
    if (L->sims[i].a) agent_stop(L->sims[i].a);
    if (L->sims[i].run_timer) uv_close((uv_handle_t *)L->sims[i].run_timer, free_handle);
  }
  uv_close((uv_handle_t *)&L->dial_timer, NULL);
  uv_close((uv_handle_t *)&L->stop_timer, NULL);
  uv_close((uv_handle_t *)&L->sigterm, NULL);
  uv_close((uv_handle_t *)&L->sigint, NULL);
  uv_close((uv_handle_t *)&L->sigusr1, NULL);
}

/* Running out of time is the tracker being slow, not broken: the figures
 * say so (timed_out) and the exit status stays 0. */
static void on_stop_timer(uv_timer_t *t) {
  load *L = t->data;
  if (!L->all_ready) {
    fprintf(stderr, "%s: only %zu of %zu agents logged in within --duration %g s\n", PROG,
            L->welcomed, L->nagents, L->o.duration_s);
    L->timed_out = 1;
  } else if (L->o.wait) {
    fprintf(stderr, "%s: --duration %g s is over with %u of %zu followed sessions ended (%u of %u "
            "accepted)\n", PROG, L->o.duration_s, L->ended_ok + L->ended_bad, L->nclients,
            L->accepted, L->o.sessions);
    L->timed_out = 1;
  }
  stop_all(L);
}

static void on_signal(uv_signal_t *h, int sig) {
  load *L = h->data;
  if (sig == SIGUSR1) {
    window_start(L);
    return;
  }
  stop_all(L);
}

static int write_stats(load *L) {
  FILE *f = L->o.stats_path ? fopen(L->o.stats_path, "w") : stdout;
  if (!f) {
    fprintf(stderr, "%s: cannot write --stats %s\n", PROG, L->o.stats_path);
    return -1;
  }
  double window = L->window_ns ? secs(L->end_ns - L->window_ns) : 0;
  fprintf(f, "{\"builders\": %u, \"runners\": %u, \"keys\": %u, \"agents_logged_in\": %zu, ",
          L->o.builders, L->o.runners, L->o.keys, L->welcomed_at_end);
  fprintf(f, "\"timed_out\": %s, \"agents\": %zu, ", L->timed_out ? "true" : "false", L->nagents);
  fprintf(f, "\"login_s\": %.3f, \"window_s\": %.3f, \"builds\": %llu, \"runs\": %llu, "
          "\"runs_per_s\": %.1f, ",
          L->ready_ns ? secs(L->ready_ns - L->start_ns) : -1.0, window,
          (unsigned long long)L->builds, (unsigned long long)L->runs,
          window > 0 ? (double)L->runs / window : 0.0);
  fprintf(f, "\"sessions\": {\"submitted\": %u, \"accepted\": %u, \"done\": %u, \"not_done\": %u}, ",
          L->submitted, L->accepted, L->ended_ok, L->ended_bad);
  if (L->o.tracker_pid && L->cpu0 >= 0 && L->cpu1 >= 0)
    fprintf(f, "\"tracker_cpu_s\": %.3f, ", L->cpu1 - L->cpu0);
  /* Its own CPU: on a small machine the load client competes with the
   * tracker it measures. */
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0)
    fprintf(f, "\"load_cpu_s\": %.3f, ", (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
            (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
  lat_json(f, "dispatch", &L->dispatch);
  fprintf(f, "}\n");
  if (f != stdout && fclose(f) != 0) return -1;
  return 0;
}

static int parse(int argc, char **argv, load_opts *o) {
  enum { O_TOKENS = 256, O_BUILDERS, O_SLOTS, O_RUNNERS, O_KEYS, O_PREFIX, O_COST, O_ARTIFACT,
         O_DIAL, O_SPEC, O_VARY, O_SESSIONS, O_PER_CLIENT, O_TRIALS, O_STRATEGY, O_BATCH,
         O_CHECK, O_WAIT, O_DURATION, O_PID, O_STATS, O_READY, O_RUN_MS, O_RUN_SPREAD };
  static const struct option opts[] = {
      {"tracker", required_argument, 0, 't'}, {"tokens", required_argument, 0, O_TOKENS},
      {"builders", required_argument, 0, O_BUILDERS},
      {"builder-slots", required_argument, 0, O_SLOTS},
      {"runners", required_argument, 0, O_RUNNERS}, {"keys", required_argument, 0, O_KEYS},
      {"key-prefix", required_argument, 0, O_PREFIX}, {"cost-us", required_argument, 0, O_COST},
      {"run-ms", required_argument, 0, O_RUN_MS},
      {"run-spread", required_argument, 0, O_RUN_SPREAD},
      {"artifact-bytes", required_argument, 0, O_ARTIFACT},
      {"dial-batch", required_argument, 0, O_DIAL}, {"spec", required_argument, 0, O_SPEC},
      {"vary", required_argument, 0, O_VARY}, {"sessions", required_argument, 0, O_SESSIONS},
      {"per-client", required_argument, 0, O_PER_CLIENT},
      {"trials", required_argument, 0, O_TRIALS}, {"strategy", required_argument, 0, O_STRATEGY},
      {"batch", required_argument, 0, O_BATCH}, {"check", no_argument, 0, O_CHECK},
      {"wait", no_argument, 0, O_WAIT}, {"duration", required_argument, 0, O_DURATION},
      {"tracker-pid", required_argument, 0, O_PID}, {"stats", required_argument, 0, O_STATS},
      {"ready-file", required_argument, 0, O_READY}, {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  *o = (load_opts){.builders = 2, .builder_slots = 8, .runners = 8, .keys = 1,
                   .key_prefix = "load", .cost_us = 2, .artifact_bytes = 64, .dial_batch = 32,
                   .per_client = 1, .trials = 1000, .strategy = "grid", .batch = 8,
                   .duration_s = 300};
  uint32_t pid = 0;
  int c;
  /* getopt's messages start with argv[0]: the program, not its path. */
  argv[0] = PROG;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    int rc = 0;
    switch (c) {
    case 't': o->tracker = optarg; break;
    case O_TOKENS: o->tokens_path = optarg; break;
    case O_BUILDERS: rc = bench_u32(PROG, "--builders", optarg, 0, MAX_AGENTS, &o->builders); break;
    case O_SLOTS: rc = bench_u32(PROG, "--builder-slots", optarg, 1, 64, &o->builder_slots); break;
    case O_RUNNERS: rc = bench_u32(PROG, "--runners", optarg, 0, MAX_AGENTS, &o->runners); break;
    case O_KEYS: rc = bench_u32(PROG, "--keys", optarg, 1, 100000, &o->keys); break;
    case O_PREFIX: o->key_prefix = optarg; break;
    case O_COST: rc = bench_double(PROG, "--cost-us", optarg, 0.001, 1e6, &o->cost_us); break;
    case O_RUN_MS: rc = bench_u32(PROG, "--run-ms", optarg, 0, 3600000, &o->run_ms); break;
    case O_RUN_SPREAD: rc = bench_u32(PROG, "--run-spread", optarg, 0, 100, &o->run_spread); break;
    case O_ARTIFACT:
      rc = bench_u32(PROG, "--artifact-bytes", optarg, 1, 1u << 24, &o->artifact_bytes);
      break;
    case O_DIAL: rc = bench_u32(PROG, "--dial-batch", optarg, 1, MAX_AGENTS, &o->dial_batch); break;
    case O_SPEC: o->spec_path = optarg; break;
    case O_VARY: o->vary = optarg; break;
    case O_SESSIONS: rc = bench_u32(PROG, "--sessions", optarg, 0, 1000000, &o->sessions); break;
    case O_PER_CLIENT:
      rc = bench_u32(PROG, "--per-client", optarg, 1, 1000000, &o->per_client);
      break;
    case O_TRIALS: rc = bench_u32(PROG, "--trials", optarg, 1, 1000000, &o->trials); break;
    case O_STRATEGY: o->strategy = optarg; break;
    case O_BATCH: rc = bench_u32(PROG, "--batch", optarg, 1, 1000000, &o->batch); break;
    case O_CHECK: o->check = 1; break;
    case O_WAIT: o->wait = 1; break;
    case O_DURATION:
      rc = bench_double(PROG, "--duration", optarg, 0.1, 86400, &o->duration_s);
      break;
    case O_PID:
      rc = bench_u32(PROG, "--tracker-pid", optarg, 1, 1u << 30, &pid);
      o->tracker_pid = (pid_t)pid;
      break;
    case O_STATS: o->stats_path = optarg; break;
    case O_READY: o->ready_path = optarg; break;
    case 'h': usage(stdout); exit(0);
    default: usage(stderr); return -1;
    }
    if (rc < 0) return -1;
  }
  const char *bad = NULL;
  if (optind < argc) {
    fprintf(stderr, "%s: unexpected argument '%s'\n", PROG, argv[optind]);
    return -1;
  }
  if (!o->tracker) bad = "--tracker HOST:PORT is required";
  else if (o->builders + o->runners == 0) bad = "no agents: give --builders or --runners";
  else if (o->sessions && !o->spec_path) bad = "--sessions needs --spec FILE";
  else if (o->wait && !o->sessions) bad = "--wait needs --sessions";
  else if (o->wait && o->per_client != 1)
    bad = "--wait follows one session per client: use --per-client 1";
  else if (strlen(o->key_prefix) > 50) bad = "--key-prefix is too long";
  if (bad) {
    fprintf(stderr, "%s: %s (see --help)\n", PROG, bad);
    return -1;
  }
  return 0;
}

static int setup(load *L) {
  load_opts *o = &L->o;
  char err[512];
  /* A wrong address is the caller's mistake: said now, not once per agent. */
  struct sockaddr_storage ss;
  if (addr_resolve(o->tracker, &ss, err, sizeof(err)) < 0) {
    fprintf(stderr, "%s: --tracker: %s\n", PROG, err);
    return -1;
  }
  if (o->tokens_path && auth_tokens_load(o->tokens_path, &L->tokens, err, sizeof(err)) < 0) {
    fprintf(stderr, "%s: %s\n", PROG, err);
    return -1;
  }
  if (o->spec_path) {
    if (task_load(o->spec_path, &L->task, err, sizeof(err)) < 0) {
      fprintf(stderr, "%s: %s\n", PROG, err);
      return -1;
    }
    L->have_task = 1;
  }
  struct utsname u;
  snprintf(L->arch, sizeof(L->arch), "%s", uname(&u) == 0 ? u.machine : "x86_64");
  L->nagents = (size_t)o->builders + o->runners;
  L->nclients = o->sessions ? (o->sessions + o->per_client - 1) / o->per_client : 0;
  L->sims = calloc(L->nagents + L->nclients, sizeof(*L->sims));
  L->artifact = calloc(1, o->artifact_bytes);
  L->costs = malloc(MAX_ROUNDS * sizeof(double));
  rng_seed(&L->spread, 1);
  if (!L->sims || !L->artifact || !L->costs || lat_init(&L->dispatch) < 0) {
    fprintf(stderr, "%s: out of memory\n", PROG);
    return -1;
  }
  for (uint32_t i = 0; i < MAX_ROUNDS; i++) L->costs[i] = o->cost_us * 1e-6;
  for (size_t i = 0; i < L->nagents + L->nclients; i++) {
    sim *s = &L->sims[i];
    s->L = L;
    if (i < o->builders) {
      s->role = KTUNE__ROLE__ROLE_BUILDER;
      snprintf(s->name, sizeof(s->name), "load-b%zu", i);
    } else if (i < L->nagents) {
      size_t r = i - o->builders;
      s->role = KTUNE__ROLE__ROLE_RUNNER;
      snprintf(s->name, sizeof(s->name), "load-r%zu", r);
      snprintf(s->key, sizeof(s->key), "%s%zu", o->key_prefix, r % o->keys);
    } else {
      size_t k = i - L->nagents;
      s->role = KTUNE__ROLE__ROLE_CLIENT;
      snprintf(s->name, sizeof(s->name), "load-c%zu", k);
      s->first = (uint32_t)(k * o->per_client);
      s->count = o->sessions - s->first < o->per_client ? o->sessions - s->first : o->per_client;
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  static load L;
  if (parse(argc, argv, &L.o) < 0) return 2;
  if (auth_init() < 0) {
    fprintf(stderr, "%s: libsodium does not start\n", PROG);
    return 1;
  }
  if (setup(&L) < 0) return 2;
  /* A peer closing on us must not kill the process mid-write. */
  signal(SIGPIPE, SIG_IGN);
  L.loop = uv_default_loop();
  L.start_ns = uv_hrtime();
  uv_timer_init(L.loop, &L.dial_timer);
  uv_timer_init(L.loop, &L.stop_timer);
  L.dial_timer.data = L.stop_timer.data = &L;
  uv_timer_start(&L.dial_timer, on_dial_tick, 0, DIAL_TICK_MS);
  uv_timer_start(&L.stop_timer, on_stop_timer, (uint64_t)(L.o.duration_s * 1000), 0);
  uv_signal_init(L.loop, &L.sigterm);
  uv_signal_init(L.loop, &L.sigint);
  uv_signal_init(L.loop, &L.sigusr1);
  L.sigterm.data = L.sigint.data = L.sigusr1.data = &L;
  uv_signal_start(&L.sigterm, on_signal, SIGTERM);
  uv_signal_start(&L.sigint, on_signal, SIGINT);
  uv_signal_start(&L.sigusr1, on_signal, SIGUSR1);
  uv_run(L.loop, UV_RUN_DEFAULT);
  if (L.ended_bad) L.exit_code = 1;
  int rc = write_stats(&L);
  uv_loop_close(L.loop);
  free(L.sims);
  free(L.artifact);
  free(L.costs);
  lat_free(&L.dispatch);
  if (L.have_task) task_free(&L.task);
  auth_tokens_free(&L.tokens);
  return rc < 0 ? 1 : L.exit_code;
}
