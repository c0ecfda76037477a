/* ktune tune: submit a session and follow it to the end. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cli/catalogue.h"
#include "cli/cli.h"
#include "common/history.h"
#include "common/space.h"
#include "common/target.h"
#include "common/task.h"
#include "common/timing.h"
#include "common/wire.h"
#include "tuner/tuner.h"

/* The timing options' part of --help, from their table. */
static void usage_timing(FILE *f, int synopsis) {
  for (int i = 0; i < TIMING_NOPTS; i++) {
    const timing_field *tf = &timing_fields[i];
    char opt[40];
    snprintf(opt, sizeof(opt), "%s%s%s", tf->option, tf->arg ? " " : "", tf->arg ? tf->arg : "");
    if (synopsis) fprintf(f, "%s[--%s]", i % 3 ? " " : "\n                  ", opt);
    else if (!tf->arg) fprintf(f, "  --%-17s %s\n", opt, tf->help);
    else fprintf(f, "  --%-17s %s (default %u)\n", opt, tf->help, tf->def);
  }
}

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
  fprintf(f,
          "usage: ktune tune TASK [-D NAME=VALUE]... [--tracker HOST:PORT] [--key KEY]\n"
          "                  [--token-file PATH]\n"
          "                  [--trials N] [--strategy S] [--seed N] [--compiler tcc]\n"
          "                  [--db PATH] [--batch N]");
  usage_timing(f, 1);
  fprintf(f,
          "\n                  [--no-check] [--priority N] [--remeasure] [--wait-timeout MS]\n"
          "                  [--detach]\n"
          "\n"
          "Tunes TASK (a built-in name from `ktune tasks`, or a task spec file).\n"
          "Without --tracker (or KTUNE_TRACKER) it runs a private local farm writing --db.\n"
          "  -D NAME=VALUE       set a problem constant, e.g. -D M=512\n"
          "  --tracker HOST:PORT use a running farm\n"
          "  --token-file PATH   your token for the farm (else KTUNE_TOKEN, KTUNE_TOKEN_FILE;\n"
          "                      KTUNE_USER: the name it was issued to)\n"
          "  --key KEY           device key to measure on (default local): 1 to 63\n"
          "                      printable characters without spaces\n"
          "  --trials N          candidates to measure (default 32)\n"
          "  --seed N            search seed (default: a random one, printed)\n"
          "  --compiler C        tcc (built in, default) or a compiler command line such as\n"
          "                      \"gcc -O3 -march=native\"; part of every trial's identity\n"
          "  --db PATH           history of the local farm (default ./ktune.db)\n");
  char names[256];
  strategy_names(names, sizeof(names));
  fprintf(f, "  --strategy S        %s (default random); no config is measured twice\n", names);
  usage_timing(f, 0);
  fprintf(f,
          "  --priority N        higher runs first; equal priorities share a key fairly\n"
          "  --remeasure         measure configs the history already has (default: reuse)\n"
          "  --wait-timeout MS   fail if the key has no runner for this long\n"
          "  --batch N           trials per progress line (default 8)\n"
          "  --no-check          skip comparing outputs with the reference\n"
          "  --detach            print the session id and return (needs --tracker); without\n"
          "                      it, Ctrl-C cancels the session\n");
}

static int parse_u32(const char *opt, const char *s, uint32_t min, uint32_t max, uint32_t *out) {
  uint64_t v;
  if (cli_parse_u64(s, 10, max, &v) < 0 || v < min) {
    fprintf(stderr, "ktune tune: %s takes a whole number from %u to %u, not '%s'\n", opt, min, max, s);
    return -1;
  }
  *out = (uint32_t)v;
  return 0;
}

static void fmt_config(char *buf, size_t len, Ktune__Param **ps, size_t n) {
  size_t off = 0;
  buf[0] = 0;
  for (size_t i = 0; i < n && off < len; i++)
    off += (size_t)snprintf(buf + off, len - off, "%s%s=%lld", i ? " " : "", ps[i]->name,
                            (long long)ps[i]->value);
}

static void fmt_latency(char *buf, size_t len, double s) {
  if (s <= 0) snprintf(buf, len, "-");
  else if (s < 1e-3) snprintf(buf, len, "%.2f us", s * 1e6);
  else if (s < 1) snprintf(buf, len, "%.3f ms", s * 1e3);
  else snprintf(buf, len, "%.3f s", s);
}

static void print_progress(const Ktune__SessionProgress *p) {
  char lat[32], last[32] = "       -";
  fmt_latency(lat, sizeof(lat), p->best_latency_s);
  /* A batch with nothing measured has no speed, not a speed of 0. */
  if (p->last_gflops > 0) snprintf(last, sizeof(last), "%8.3f GFLOPS", p->last_gflops);
  int w = snprintf(NULL, 0, "%u", p->trials);
  char reused[32] = "";
  /* A rerun answered from the history must not look like a measurement. */
  if (p->reused) snprintf(reused, sizeof(reused), "  reused %u", p->reused);
  /* Why trials fail belongs where people look: this line. */
  const char *why = p->failures && p->failures_text && p->failures_text[0] ? p->failures_text : NULL;
  printf("[%*u/%u] last %-15s  best %8.3f GFLOPS (%s)  failed %u%s%s%s%s  %.1f s\n", w,
         p->trials_done, p->trials, last, p->best_gflops, lat, p->failures, why ? " (" : "",
         why ? why : "", why ? ")" : "", reused, p->wall_s);
  fflush(stdout);
}

int cli_follow(client *c, uint64_t id, int quiet) {
  char err[512], said[256] = "";
  uint32_t shown = 0; /* trials_done of the last progress line printed */
  for (;;) {
    Ktune__Envelope *m = client_recv(c, -1, err, sizeof(err));
    if (!m && c->interrupted) return CLI_INTERRUPTED;
    if (!m) {
      fprintf(stderr, "ktune: %s; session %llu may still be running on the tracker\n", err,
              (unsigned long long)id);
      return EXIT_FAIL;
    }
    if (m->msg_case != KTUNE__ENVELOPE__MSG_PROGRESS) {
      wire_free(m);
      continue;
    }
    Ktune__SessionProgress *p = m->progress;
    int running = p->state == WIRE_SESSION(RUNNING) || p->state == WIRE_SESSION(QUEUED);
    if (running) {
      /* What a running session waits for gets a line of its own, once. */
      const char *msg = p->message ? p->message : "";
      int news = strcmp(msg, said) != 0;
      if (news) snprintf(said, sizeof(said), "%s", msg);
      if (!quiet && news && msg[0]) printf("%s\n", msg);
      if (!quiet && (!news || p->trials_done != shown)) print_progress(p);
      shown = p->trials_done;
      fflush(stdout);
      wire_free(m);
      continue;
    }
    print_progress(p);
    int rc = EXIT_OK;
    int done = p->state == WIRE_SESSION(DONE);
    if (done && p->message && p->message[0]) printf("note: %s\n", p->message);
    if (!done) {
      fprintf(stderr, "ktune: session %llu %s%s%s\n", (unsigned long long)id,
              wire_state_name(p->state),
              p->message[0] ? ": " : "", p->message);
      rc = EXIT_FAIL;
    } else if (p->n_best_config == 0) {
      fprintf(stderr, "ktune: session %llu measured no config successfully (%u failed); "
                      "`ktune export` shows each trial's error\n",
              (unsigned long long)id, p->failures);
      rc = EXIT_FAIL;
    } else {
      char cfg[1024], lat[32];
      fmt_config(cfg, sizeof(cfg), p->best_config, p->n_best_config);
      fmt_latency(lat, sizeof(lat), p->best_latency_s);
      printf("best: %s\n      latency %s, %.3f GFLOPS (session %llu, %u trials, %u failed, "
             "%u from the history)\n", cfg, lat, p->best_gflops, (unsigned long long)id,
             p->trials_done, p->failures, p->reused);
    }
    wire_free(m);
    return rc;
  }
}

typedef struct {
  const char *task_arg;
  char **defines;
  size_t ndefines;
  const char *key, *strategy, *compiler, *db;
  cli_dial dial;
  uint32_t trials, batch, priority, wait_timeout_ms;
  Ktune__Timing timing;    /* 0: the tracker fills in the default */
  int remeasure;
  uint64_t seed;
  int seed_set, check, detach;
} tune_opts;

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
  (void)sig;
  interrupted = 1;
}

/* "6,656": a count with thousands separators. */
static void fmt_count(char *buf, size_t len, uint64_t n) {
  char digits[24];
  int nd = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)n);
  size_t off = 0;
  for (int i = 0; i < nd && off + 1 < len; i++) {
    if (i && (nd - i) % 3 == 0) buf[off++] = ',';
    if (off + 1 < len) buf[off++] = digits[i];
  }
  buf[off] = 0;
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
  char err[512];
  client c;
  if (client_connect(&c, d, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune tune: %s\n", err);
    return EXIT_FAIL;
  }
  Ktune__TaskSpec *tp;
  if (task_to_proto(t, &tp) < 0) {
    fprintf(stderr, "ktune tune: out of memory\n");
    client_close(&c);
    return EXIT_FAIL;
  }
  Ktune__SubmitSession s = KTUNE__SUBMIT_SESSION__INIT;
  s.task = tp;
  s.key = (char *)o->key;
  s.trials = o->trials;
  s.strategy = (char *)o->strategy;
  s.seed = o->seed;
  s.compiler = (char *)o->compiler;
  Ktune__Timing timing = o->timing;
  s.timing = &timing;
  s.batch = o->batch;
  s.check = o->check;
  s.priority = o->priority;
  s.remeasure = o->remeasure;
  s.wait_timeout_ms = o->wait_timeout_ms;
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_SUBMIT, &s);
  /* First word that the submission arrived and is being checked, then
   * the verdict, for as long as the tracker stays alive. */
  Ktune__Envelope *m = client_ask(&c, &env, 30000, err, sizeof(err));
  task_proto_free(tp);
  if (m && m->msg_case == KTUNE__ENVELOPE__MSG_SUBMIT_RECEIVED) {
    wire_free(m);
    m = client_recv(&c, -1, err, sizeof(err));
  }
  if (!m || m->msg_case != KTUNE__ENVELOPE__MSG_ACCEPTED) {
    /* A refusal is about the request (usage); a lost tracker is not. */
    int refused = !m && c.refused;
    if (refused) fprintf(stderr, "ktune tune: the tracker refused the session: %s\n", err);
    else fprintf(stderr, "ktune tune: %s\n", m ? "unexpected reply from the tracker" : err);
    wire_free(m);
    client_close(&c);
    return refused ? EXIT_USAGE : EXIT_FAIL;
  }
  uint64_t id = m->accepted->session_id;
  char space[96], all[32], valid[32];
  fmt_count(all, sizeof(all), m->accepted->space_size);
  fmt_count(valid, sizeof(valid), m->accepted->valid_configs);
  if (m->accepted->valid_exact) snprintf(space, sizeof(space), "%s valid of %s configs", valid, all);
  else snprintf(space, sizeof(space), "a space of %s configs", all);
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
  printf("session %llu: %s on key %s, %u trials, %s search, %s%s\n", (unsigned long long)id,
         t->name, o->key, o->trials, o->strategy, space, seed);
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
  int rc = cli_follow(&c, id, 0);
  if (cancel_on_int) sigaction(SIGINT, &old_int, NULL); /* a second Ctrl-C ends us at once */
  if (rc == CLI_INTERRUPTED) rc = cancel_interrupted(&c, id);
  client_close(&c);
  return rc;
}

/* Opens the local farm's history here first: a --db that cannot be
 * written is then one sentence naming the folder and why, not a tracker
 * log that says "No such file or directory". */
static int check_history(const char *db, char *err, size_t errlen) {
  hist *h;
  if (hist_open(db, 0, &h, err, errlen) < 0) return -1;
  hist_close(h);
  return 0;
}

int cmd_tune(int argc, char **argv) {
  tune_opts o = {0};
  o.strategy = "random";
  o.compiler = TARGET_BUILTIN_COMPILER;
  o.db = "ktune.db";
  o.trials = 32;
  o.check = 1;
  o.defines = calloc((size_t)argc + 1, sizeof(char *));
  ktune__timing__init(&o.timing);
  /* Timing options are OPT_TIMING + their row in common/timing.c. */
  enum { OPT_KEY = 256, OPT_TRIALS, OPT_STRATEGY, OPT_SEED, OPT_COMPILER, OPT_DB,
         OPT_BATCH, OPT_NOCHECK, OPT_DETACH, OPT_PRIO, OPT_REMEASURE, OPT_WAITTO, OPT_TIMING };
  static const struct option fixed[] = {
      CLI_DIAL_OPTIONS, {"key", required_argument, 0, OPT_KEY},
      {"trials", required_argument, 0, OPT_TRIALS}, {"strategy", required_argument, 0, OPT_STRATEGY},
      {"seed", required_argument, 0, OPT_SEED}, {"compiler", required_argument, 0, OPT_COMPILER},
      {"db", required_argument, 0, OPT_DB}, {"batch", required_argument, 0, OPT_BATCH},
      {"no-check", no_argument, 0, OPT_NOCHECK}, {"detach", no_argument, 0, OPT_DETACH},
      {"priority", required_argument, 0, OPT_PRIO},
      {"remeasure", no_argument, 0, OPT_REMEASURE},
      {"wait-timeout", required_argument, 0, OPT_WAITTO},
      {"help", no_argument, 0, 'h'}};
  enum { NFIXED = sizeof(fixed) / sizeof(fixed[0]) };
  struct option opts[NFIXED + TIMING_NOPTS + 1];
  memcpy(opts, fixed, sizeof(fixed));
  for (int i = 0; i < TIMING_NOPTS; i++)
    opts[NFIXED + i] = (struct option){timing_fields[i].option,
                                       timing_fields[i].arg ? required_argument : no_argument, 0,
                                       OPT_TIMING + i};
  opts[NFIXED + TIMING_NOPTS] = (struct option){0, 0, 0, 0};
  int ch, rc = EXIT_USAGE;
  char terr[256];
  while ((ch = getopt_long(argc, argv, "D:h", opts, NULL)) != -1) {
    if (ch >= OPT_TIMING && ch < OPT_TIMING + TIMING_NOPTS) {
      if (timing_set(&o.timing, ch - OPT_TIMING, optarg, terr, sizeof(terr)) < 0) {
        fprintf(stderr, "ktune tune: %s\n", terr);
        goto out;
      }
      continue;
    }
    switch (ch) {
    case 'D': o.defines[o.ndefines++] = optarg; break;
    case CLI_OPT_TRACKER: case CLI_OPT_TOKEN_FILE: cli_dial_option(&o.dial, ch, optarg); break;
    case OPT_KEY: o.key = optarg; break;
    case OPT_TRIALS: if (parse_u32("--trials", optarg, 1, 1000000, &o.trials)) goto out; break;
    case OPT_STRATEGY: o.strategy = optarg; break;
    case OPT_SEED:
      if (cli_parse_u64(optarg, 0, UINT64_MAX, &o.seed) < 0) {
        fprintf(stderr, "ktune tune: --seed takes a whole number from 0 to %llu, not '%s'\n",
                (unsigned long long)UINT64_MAX, optarg);
        goto out;
      }
      o.seed_set = 1;
      break;
    case OPT_COMPILER: o.compiler = optarg; break;
    case OPT_DB: o.db = optarg; break;
    case OPT_BATCH: if (parse_u32("--batch", optarg, 1, 100000, &o.batch)) goto out; break;
    case OPT_NOCHECK: o.check = 0; break;
    case OPT_PRIO: if (parse_u32("--priority", optarg, 0, 1000, &o.priority)) goto out; break;
    case OPT_REMEASURE: o.remeasure = 1; break;
    case OPT_WAITTO: if (parse_u32("--wait-timeout", optarg, 1, 86400000, &o.wait_timeout_ms)) goto out; break;
    case OPT_DETACH: o.detach = 1; break;
    case 'h': usage(stdout); rc = EXIT_OK; goto out;
    default: usage(stderr); goto out;
    }
  }
  if (optind >= argc) {
    fprintf(stderr, "ktune tune: name a task (`ktune tasks` lists the built-in ones) or a spec file\n");
    usage(stderr);
    goto out;
  }
  if (argc - optind > 1) {
    fprintf(stderr, "ktune tune: one task at a time for now; got %d\n", argc - optind);
    goto out;
  }
  o.task_arg = argv[optind];
  if (!known_strategy(o.strategy)) {
    char names[256];
    strategy_names(names, sizeof(names));
    fprintf(stderr, "ktune tune: --strategy takes %s, not '%s'\n", names, o.strategy);
    goto out;
  }
  if (!o.compiler[0]) {
    fprintf(stderr, "ktune tune: --compiler takes tcc or a compiler command line\n");
    goto out;
  }
  if ((o.key && cli_check_key("tune", o.key) < 0) || cli_dial_settle(&o.dial, "tune", NULL) < 0)
    goto out;
  /* Not the clock: two sessions started in the same second would search
   * alike. */
  if (!o.seed_set && getrandom(&o.seed, sizeof(o.seed), 0) != (ssize_t)sizeof(o.seed)) {
    fprintf(stderr, "ktune tune: no random seed (getrandom: %s); give --seed N\n",
            strerror(errno));
    rc = EXIT_FAIL;
    goto out;
  }

  char err[1024], path[4096];
  task_spec t;
  if (catalogue_find(o.task_arg, path, sizeof(path), err, sizeof(err)) < 0 ||
      task_load(path, &t, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune tune: %s\n", err);
    goto out;
  }
  for (size_t i = 0; i < o.ndefines; i++) {
    char name[128];
    int64_t v;
    if (cli_parse_define(o.defines[i], name, sizeof(name), &v) < 0) {
      fprintf(stderr, "ktune tune: -D takes NAME=VALUE with a whole number, not '%s'\n", o.defines[i]);
      task_free(&t);
      goto out;
    }
    if (task_set_const(&t, name, v, err, sizeof(err)) < 0) {
      fprintf(stderr, "ktune tune: %s\n", err);
      task_free(&t);
      goto out;
    }
  }
  if (task_check(&t, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune tune: %s\n", err);
    task_free(&t);
    goto out;
  }
  if (o.dial.tracker) {
    if (!o.key) {
      fprintf(stderr, "ktune tune: with --tracker, name the device key to measure on (--key KEY; "
                      "`ktune status` lists the runners' keys)\n");
      task_free(&t);
      goto out;
    }
    rc = submit_and_follow(&o, &o.dial, &t, 1);
  } else if (o.detach) {
    fprintf(stderr, "ktune tune: --detach needs a running farm (--tracker); the local farm "
                    "ends with the command\n");
  } else {
    if (!o.key) o.key = "local";
    /* The private farm has no tokens; its agents must not expect one. */
    unsetenv("KTUNE_TOKEN");
    unsetenv("KTUNE_TOKEN_FILE");
    farm f;
    if (check_history(o.db, err, sizeof(err)) < 0) {
      fprintf(stderr, "ktune tune: %s\n", err);
      rc = EXIT_FAIL;
    } else if (farm_start(&f, o.db, err, sizeof(err)) < 0) {
      fprintf(stderr, "ktune tune: %s\n", err);
      farm_stop(&f, 1);
      rc = EXIT_FAIL;
    } else {
      printf("local farm on %s, history %s\n", f.addr, o.db);
      cli_dial local = {.tracker = f.addr};
      rc = submit_and_follow(&o, &local, &t, 0);
      farm_stop(&f, rc == EXIT_FAIL);
    }
  }
  task_free(&t);
out:
  free(o.defines);
  return rc;
}
