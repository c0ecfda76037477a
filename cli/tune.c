/* ktune tune: submit a session and follow it to the end. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/format.h"
#include "cli/workload.h"
#include "common/space.h"
#include "common/task.h"
#include "common/wire.h"
#include "tuner/tuner.h"

/* The tuner's table of strategies is the one list: "random, grid". */
static void strategy_names(char *out, size_t len) {
  size_t off = 0;
  out[0] = 0;
  for (size_t i = 0; tuner_strategy_name(i) && off < len; i++)
    off += (size_t)snprintf(out + off, len - off, "%s%s", i ? ", " : "", tuner_strategy_name(i));
}

static int known_strategy(const char *name) {
  for (size_t i = 0; tuner_strategy_name(i); i++)
    if (!strcmp(name, tuner_strategy_name(i))) return 1;
  return 0;
}

static void usage(FILE *f) {
  static const char *const own[] = {"[--trials N]", "[--strategy S]", "[--seed N]",
                                    "[--batch N]", "[--detach]", "[--replay FILE]",
                                    "[--resume ID]", "[--verbose]", "[--json]",
                                    "[--confirm N]", "[--workload FILE]", NULL};
  cli_session_usage(f, "tune", own);
  fprintf(f,
          "\n"
          "Tunes TASK (a built-in name from `ktune tasks`, or a task spec file).\n"
          "Without --tracker (or KTUNE_TRACKER) it runs a private local farm writing --db.\n");
  cli_session_help(f);
  char names[256];
  strategy_names(names, sizeof(names));
  fprintf(f,
          "  --trials N          candidates to measure (default 32)\n"
          "  --strategy S        %s (default model: a cost model learned from\n"
          "                      the trials chooses each batch); no config is measured twice\n"
          "  --seed N            search seed (default: a random one, printed)\n"
          "  --batch N           trials per progress line (default 8)\n"
          "  --detach            print the session id and return (needs --tracker; default:\n"
          "                      follow it to the end, and Ctrl-C cancels it)\n"
          "  --replay FILE       answer every trial from a recorded history (a ktune.db or\n"
          "                      `ktune export --format jsonl` output) instead of measuring;\n"
          "                      the session is recorded in --db; compares strategies\n"
          "                      (default: measure)\n"
          "  --resume ID         continue cancelled or failed session ID with its own task,\n"
          "                      options and remaining trials (no TASK); nothing is\n"
          "                      measured twice\n"
          "  --verbose           also print, under each progress line, the time the search\n"
          "                      spent choosing (training included) and its share of the\n"
          "                      session's wall time (default: not printed)\n"
          "  --confirm N         at the end, measure the N best configs again, taking turns\n"
          "                      on one runner, and pick the winner from those numbers;\n"
          "                      0 to 8 (default 3; 0: the search's best stands)\n"
          "  --workload FILE     tune the tasks FILE lists ({\"tasks\": [{\"task\": NAME or\n"
          "                      SPEC, \"constants\": {...}, \"weight\": N}]}) for the weighted\n"
          "                      sum of their best latencies; --trials is the budget for\n"
          "                      all (default 32 per task), spent a --batch at a time where\n"
          "                      it cuts that sum most (no TASK; default: one task)\n"
          "  --json              end with one JSON object on stdout: per task the session,\n"
          "                      best config, latency, GFLOPS, trials and failures by\n"
          "                      status (docs/METRICS.md); progress goes to stderr\n"
          "                      (default: text only)\n"
          "\n"
          "Exit status: 0 when the session ended done with a best config; 1 when it\n"
          "failed, was cancelled or measured no config successfully, or the farm failed;\n"
          "2 for a usage error or a session the tracker refused.\n",
          names);
}


typedef cli_session_opts tune_opts;

/* Configs measured again at the end of a session (the tracker's
 * CONFIRM_MAX is the most it takes). */
#define TUNE_CONFIRM_DEFAULT 3
#define TUNE_CONFIRM_MAX 8


/* --json: the session's outcome as one JSON object, for scripts. A task
 * is a list item so that a workload's several tasks fit the same shape. */
static int print_summary(const tune_opts *o, const task_spec *t, uint64_t id,
                         const Ktune__SessionProgress *p) {
  json_t *task = json_object(), *failures = json_object();
  json_object_set_new(task, "session", json_integer((json_int_t)id));
  if (t) {
    json_t *size = json_object();
    for (size_t i = 0; i < t->nconsts; i++)
      json_object_set_new(size, t->consts[i].name, json_integer(t->consts[i].value));
    json_object_set_new(task, "task", json_string(t->name));
    json_object_set_new(task, "size", size);
  }
  if (!o->resume) {
    json_object_set_new(task, "key", json_string(o->key));
    json_object_set_new(task, "compiler", json_string(o->compiler));
    json_object_set_new(task, "strategy", json_string(o->strategy));
  }
  json_object_set_new(task, "state", json_string(p ? wire_state_name(p->state) : "unknown"));
  json_object_set_new(task, "best", cli_best_json(p));
  cli_add_failures(failures, p);
  json_object_set_new(task, "trials", json_integer(p ? p->trials_done : 0));
  json_object_set_new(task, "reused", json_integer(p ? p->reused : 0));
  json_object_set_new(task, "failed", json_integer(p ? p->failures : 0));
  json_object_set_new(task, "failures", failures);
  json_object_set_new(task, "wall_s", json_real(p ? p->wall_s : 0));
  json_t *all = json_pack("{s:[o]}", "tasks", task);
  int rc = all && json_dumpf(all, o->json, JSON_COMPACT) == 0 && fputc('\n', o->json) != EOF &&
           fflush(o->json) == 0 ? 0 : -1;
  json_decref(all);
  if (rc < 0) fprintf(stderr, "ktune tune: cannot write the --json summary\n");
  return rc;
}

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
  (void)sig;
  interrupted = 1;
}

/* Ctrl-C on a followed session: cancel it and say so. */
static int cancel_interrupted(client *c, uint64_t id) {
  char err[512];
  c->stop = NULL;
  c->interrupted = 0;
  Ktune__CancelSession cs = KTUNE__CANCEL_SESSION__INIT;
  cs.session_id = id;
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_CANCEL, &cs);
  Ktune__Envelope *m = NULL;
  if (client_send(c, &env, err, sizeof(err)) == 0) m = client_recv(c, 10000, err, sizeof(err));
  /* Batches may still be on their way: the answer is the final progress. */
  while (m && m->msg_case == KTUNE__ENVELOPE__MSG_PROGRESS &&
         (m->progress->state == WIRE_SESSION(RUNNING) ||
          m->progress->state == WIRE_SESSION(QUEUED))) {
    wire_free(m);
    m = client_recv(c, 10000, err, sizeof(err));
  }
  if (!m && c->refused) {
    fprintf(stderr, "ktune tune: session %llu: %s\n", (unsigned long long)id, err);
  } else if (!m || m->msg_case != KTUNE__ENVELOPE__MSG_PROGRESS) {
    fprintf(stderr, "ktune tune: session %llu may still be running: cannot cancel it (%s); "
                    "`ktune cancel %llu` stops it\n", (unsigned long long)id,
            m ? "unexpected reply from the tracker" : err, (unsigned long long)id);
  } else if (m->progress->state == WIRE_SESSION(CANCELLED)) {
    fprintf(stderr, "ktune tune: session %llu cancelled (Ctrl-C); use --detach to leave a "
                    "session running\n", (unsigned long long)id);
  } else {
    fprintf(stderr, "ktune tune: session %llu had already ended (%s)\n", (unsigned long long)id,
            wire_state_name(m->progress->state));
  }
  wire_free(m);
  return EXIT_FAIL;
}

/* cancel_on_int: Ctrl-C cancels the session (a shared farm's). */
static int submit_and_follow(const tune_opts *o, const cli_dial *d, const task_spec *t,
                             int cancel_on_int) {
  client c;
  int rc;
  Ktune__Envelope *m = cli_session_submit("tune", o, d, t, &c, &rc);
  if (!m) return rc;
  uint64_t id = m->accepted->session_id;
  char space[96], all[32], valid[32];
  cli_fmt_count(all, sizeof(all), m->accepted->space_size);
  cli_fmt_count(valid, sizeof(valid), m->accepted->valid_configs);
  if (m->accepted->valid_exact) snprintf(space, sizeof(space), "%s valid of %s configs", valid, all);
  else snprintf(space, sizeof(space), "a space of %s configs", all);
  uint32_t prior = m->accepted->prior;
  wire_free(m);
  if (o->detach) {
    printf("%llu\n", (unsigned long long)id);
    client_close(&c);
    return EXIT_OK;
  }
  char seed[40] = "";
  /* Grid's order is fixed: a seed would suggest otherwise. */
  if (strcmp(o->strategy, "grid") != 0)
    snprintf(seed, sizeof(seed), ", seed %llu", (unsigned long long)o->seed);
  if (o->resume)
    printf("session %llu resumed: %s\n", (unsigned long long)id, space);
  else
    printf("session %llu: %s on key %s, %u trials, %s search, %s%s\n", (unsigned long long)id,
           t->name, o->key, o->trials, o->strategy, space, seed);
  if (prior)
    printf("the search starts from %u earlier trials of this kernel in the history\n", prior);
  fflush(stdout);
  /* On a shared farm the session outlives this client; Ctrl-C means "stop
   * it", not "leave it running unwatched". The local farm ends anyway. */
  struct sigaction old_int;
  if (cancel_on_int) {
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    c.stop = &interrupted;
  }
  Ktune__Envelope *final = NULL;
  rc = cli_follow(&c, id, o->verbose ? CLI_FOLLOW_VERBOSE : 0, o->json ? &final : NULL);
  if (cancel_on_int) sigaction(SIGINT, &old_int, NULL); /* a second Ctrl-C ends us at once */
  if (rc == CLI_INTERRUPTED) rc = cancel_interrupted(&c, id);
  if (o->json && rc != CLI_INTERRUPTED && print_summary(o, t, id, final ? final->progress : NULL) < 0)
    rc = EXIT_FAIL;
  wire_free(final);
  client_close(&c);
  return rc;
}

/* What the farm runs: the session, submitted and followed. */
typedef struct {
  const tune_opts *o;
  const task_spec *t;      /* NULL: --resume's */
} tune_job;

static int run_tune(void *ctx, const cli_dial *d, int shared) {
  const tune_job *j = ctx;
  /* On a shared farm the session outlives this client: Ctrl-C cancels it. */
  return submit_and_follow(j->o, d, j->t, shared);
}

/* --json: everything a person reads goes to stderr; stdout keeps the
 * summary alone, so a script can parse it whatever the farm printed. */
static int json_to_stdout_only(tune_opts *o) {
  fflush(stdout);
  int fd = dup(STDOUT_FILENO);
  if (fd < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0 || !(o->json = fdopen(fd, "w"))) {
    fprintf(stderr, "ktune tune: --json: %s\n", strerror(errno));
    return -1;
  }
  return 0;
}

static int run_workload(void *ctx, const cli_dial *d, int shared) {
  (void)shared;
  void **args = ctx;
  return workload_run(args[0], args[1], d);
}

/* --workload FILE: several tasks, one budget (docs/METRICS.md). */
static int tune_workload(tune_opts *o, const char *path, int ntasks_given, int json,
                         int trials_given) {
  if (ntasks_given || o->resume || o->replay || o->detach) {
    fprintf(stderr, "ktune tune: --workload names its tasks itself; it takes no TASK, --resume, "
                    "--replay or --detach\n");
    return EXIT_USAGE;
  }
  if (o->ndefines) {
    fprintf(stderr, "ktune tune: --workload takes each task's constants from its file, not -D\n");
    return EXIT_USAGE;
  }
  if (!known_strategy(o->strategy)) {
    fprintf(stderr, "ktune tune: --strategy: unknown '%s'\n", o->strategy);
    return EXIT_USAGE;
  }
  if (cli_session_check(o, "tune") < 0) return EXIT_USAGE;
  workload *w;
  if (workload_load(path, &w) < 0) return EXIT_USAGE;
  if (!o->seed_set && getrandom(&o->seed, sizeof(o->seed), 0) != (ssize_t)sizeof(o->seed))
    o->seed = 1;
  int rc = EXIT_FAIL;
  if (json && json_to_stdout_only(o) < 0) goto out;
  /* The default budget is the single task's, for each task. */
  if (!trials_given) o->trials *= (uint32_t)workload_size(w);
  void *args[] = {w, o};
  rc = cli_session_run("tune", o, stdout, run_workload, args);
  if (json && workload_json(w, o->json) < 0) {
    fprintf(stderr, "ktune tune: cannot write the --json summary\n");
    rc = EXIT_FAIL;
  }
out:
  workload_free(w);
  return rc;
}

int cmd_tune(int argc, char **argv) {
  tune_opts o;
  cli_session_defaults(&o, argc);
  enum { OPT_TRIALS = 256, OPT_STRATEGY, OPT_SEED, OPT_BATCH, OPT_DETACH, OPT_REPLAY,
         OPT_RESUME, OPT_VERBOSE, OPT_JSON, OPT_CONFIRM, OPT_WORKLOAD };
  int json = 0, trials_given = 0;
  const char *workload_path = NULL;
  o.confirm = TUNE_CONFIRM_DEFAULT;
  static const struct option own[] = {
      {"trials", required_argument, 0, OPT_TRIALS}, {"strategy", required_argument, 0, OPT_STRATEGY},
      {"seed", required_argument, 0, OPT_SEED}, {"batch", required_argument, 0, OPT_BATCH},
      {"detach", no_argument, 0, OPT_DETACH},
      {"replay", required_argument, 0, OPT_REPLAY}, {"resume", required_argument, 0, OPT_RESUME},
      {"verbose", no_argument, 0, OPT_VERBOSE}, {"json", no_argument, 0, OPT_JSON},
      {"confirm", required_argument, 0, OPT_CONFIRM},
      {"workload", required_argument, 0, OPT_WORKLOAD}};
  const struct option *opts = cli_session_longopts(own, sizeof(own) / sizeof(own[0]));
  int ch, rc = EXIT_USAGE;
  while ((ch = getopt_long(argc, argv, "D:h", opts, NULL)) != -1) {
    int shared = cli_session_option(&o, "tune", ch, optarg);
    if (shared < 0) goto out;
    if (shared) continue;
    switch (ch) {
    case OPT_TRIALS:
      if (cli_parse_u32("tune", "--trials", optarg, 1, 1000000, &o.trials)) goto out;
      trials_given = 1;
      break;
    case OPT_STRATEGY: o.strategy = optarg; break;
    case OPT_SEED:
      if (cli_parse_u64(optarg, 0, UINT64_MAX, &o.seed) < 0) {
        fprintf(stderr, "ktune tune: --seed takes a whole number from 0 to %llu, not '%s'\n",
                (unsigned long long)UINT64_MAX, optarg);
        goto out;
      }
      o.seed_set = 1;
      break;
    case OPT_BATCH:
      if (cli_parse_u32("tune", "--batch", optarg, 1, 100000, &o.batch)) goto out;
      break;
    case OPT_DETACH: o.detach = 1; break;
    case OPT_VERBOSE: o.verbose = 1; break;
    case OPT_JSON: json = 1; break;
    case OPT_WORKLOAD: workload_path = optarg; break;
    case OPT_CONFIRM:
      if (cli_parse_u32("tune", "--confirm", optarg, 0, TUNE_CONFIRM_MAX, &o.confirm)) goto out;
      break;
    case OPT_REPLAY: o.replay = optarg; break;
    case OPT_RESUME:
      if (cli_parse_u64(optarg, 10, INT64_MAX, &o.resume) < 0 || o.resume == 0) {
        fprintf(stderr, "ktune tune: --resume takes a session id (`ktune sessions` lists them), "
                        "not '%s'\n", optarg);
        goto out;
      }
      break;
    case 'h': usage(stdout); rc = EXIT_OK; goto out;
    default: usage(stderr); goto out;
    }
  }
  if (workload_path) {
    rc = tune_workload(&o, workload_path, argc - optind, json, trials_given);
    goto out;
  }
  if (o.resume && optind < argc) {
    fprintf(stderr, "ktune tune: --resume takes no TASK: the session goes on with its own\n");
    goto out;
  }
  if (o.replay && o.dial.tracker) {
    fprintf(stderr, "ktune tune: --replay runs its own farm; it cannot be used with --tracker\n");
    goto out;
  }
  if (!o.resume && optind >= argc) {
    fprintf(stderr, "ktune tune: name a task (`ktune tasks` lists the built-in ones) or a spec file\n");
    usage(stderr);
    goto out;
  }
  if (argc - optind > 1) {
    fprintf(stderr, "ktune tune: one task at a time for now; got %d\n", argc - optind);
    goto out;
  }
  o.task_arg = o.resume ? NULL : argv[optind];
  if (!known_strategy(o.strategy)) {
    char names[256];
    strategy_names(names, sizeof(names));
    fprintf(stderr, "ktune tune: --strategy takes %s, not '%s'\n", names, o.strategy);
    goto out;
  }
  if (cli_session_check(&o, "tune") < 0) goto out;
  /* Not the clock: two sessions started in the same second would search
   * alike. */
  if (!o.seed_set && getrandom(&o.seed, sizeof(o.seed), 0) != (ssize_t)sizeof(o.seed)) {
    fprintf(stderr, "ktune tune: no random seed (getrandom: %s); give --seed N\n",
            strerror(errno));
    rc = EXIT_FAIL;
    goto out;
  }

  if (json && o.detach) {
    fprintf(stderr, "ktune tune: --json waits for the session's outcome; --detach does not\n");
    goto out;
  }
  if (json && json_to_stdout_only(&o) < 0) {
    rc = EXIT_FAIL;
    goto out;
  }
  task_spec t = {0};
  /* With --resume the tracker has the session's task. */
  if (!o.resume && cli_session_task("tune", &o, &t) < 0) goto out;
  if (o.detach && !o.dial.tracker) {
    fprintf(stderr, "ktune tune: --detach needs a running farm (--tracker); the local farm "
                    "ends with the command\n");
  } else {
    tune_job j = {&o, o.resume ? NULL : &t};
    rc = cli_session_run("tune", &o, stdout, run_tune, &j);
  }
  task_free(&t);
out:
  if (o.json) fclose(o.json);
  cli_session_opts_free(&o);
  return rc;
}
