/* What the commands that submit a session share (ktune tune, ktune
 * measure): their common options and their help, the task they load with
 * its -D constants, the farm they run against (a tracker, or a private
 * local one) and the submission itself, up to the tracker's accept. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/catalogue.h"
#include "cli/cli.h"
#include "common/history.h"
#include "common/target.h"
#include "common/task.h"
#include "common/timing.h"
#include "tuner/tuner.h"
#include "common/wire.h"

/* Timing options are CLI_OPT_TIMING + their row in common/timing.c. */
enum { CLI_OPT_TIMING = 1100 };

void cli_session_defaults(cli_session_opts *o, int argc) {
  memset(o, 0, sizeof(*o));
  o->strategy = TUNER_DEFAULT;
  o->compiler = TARGET_BUILTIN_COMPILER;
  o->db = "ktune.db";
  o->trials = 32;
  o->check = 1;
  o->defines = calloc((size_t)argc + 1, sizeof(char *));
  ktune__timing__init(&o->timing);
}

void cli_session_opts_free(cli_session_opts *o) {
  free(o->defines);
  o->defines = NULL;
}

const struct option *cli_session_longopts(const struct option *own, size_t n) {
  static const struct option shared[] = {CLI_SESSION_OPTIONS, {"help", no_argument, 0, 'h'}};
  enum { NSHARED = sizeof(shared) / sizeof(shared[0]), NOWN = 16 };
  static struct option all[NOWN + NSHARED + TIMING_NOPTS + 1];
  size_t ns = NSHARED;
  if (n > NOWN) abort(); /* a command with more options: raise NOWN */
  if (n) memcpy(all, own, n * sizeof(*own));
  memcpy(all + n, shared, sizeof(shared));
  for (int i = 0; i < TIMING_NOPTS; i++)
    all[n + ns + (size_t)i] =
        (struct option){timing_fields[i].option,
                        timing_fields[i].arg ? required_argument : no_argument, 0,
                        CLI_OPT_TIMING + i};
  all[n + ns + TIMING_NOPTS] = (struct option){0, 0, 0, 0};
  return all;
}

int cli_parse_u32(const char *cmd, const char *opt, const char *s, uint32_t min, uint32_t max,
                  uint32_t *out) {
  uint64_t v;
  if (cli_parse_u64(s, 10, max, &v) < 0 || v < min) {
    fprintf(stderr, "ktune %s: %s takes a whole number from %u to %u, not '%s'\n", cmd, opt, min,
            max, s);
    return -1;
  }
  *out = (uint32_t)v;
  return 0;
}

int cli_session_option(cli_session_opts *o, const char *cmd, int ch, const char *arg) {
  if (ch >= CLI_OPT_TIMING && ch < CLI_OPT_TIMING + TIMING_NOPTS) {
    char terr[256];
    if (timing_set(&o->timing, ch - CLI_OPT_TIMING, arg, terr, sizeof(terr)) == 0) return 1;
    fprintf(stderr, "ktune %s: %s\n", cmd, terr);
    return -1;
  }
  switch (ch) {
  case 'D': o->defines[o->ndefines++] = (char *)arg; return 1;
  case CLI_OPT_TRACKER: case CLI_OPT_TOKEN_FILE: cli_dial_option(&o->dial, ch, arg); return 1;
  case CLI_OPT_KEY: o->key = arg; return 1;
  case CLI_OPT_COMPILER: o->compiler = arg; return 1;
  case CLI_OPT_DB: o->db = arg; return 1;
  case CLI_OPT_NOCHECK: o->check = 0; return 1;
  case CLI_OPT_REMEASURE: o->remeasure = 1; return 1;
  case CLI_OPT_PRIO: return cli_parse_u32(cmd, "--priority", arg, 0, 1000, &o->priority) ? -1 : 1;
  case CLI_OPT_WAITTO:
    return cli_parse_u32(cmd, "--wait-timeout", arg, 1, 86400000, &o->wait_timeout_ms) ? -1 : 1;
  default: return 0;
  }
}

int cli_session_check(cli_session_opts *o, const char *cmd) {
  if (!o->compiler[0]) {
    fprintf(stderr, "ktune %s: --compiler takes tcc or a compiler command line\n", cmd);
    return -1;
  }
  if (o->key && cli_check_label(cmd, "--key", o->key) < 0) return -1;
  return cli_dial_settle(&o->dial, cmd, NULL);
}

/* The synopsis in lines of at most this width. */
#define SYNOPSIS_WIDTH 80

void cli_session_usage(FILE *f, const char *cmd, const char *const own[]) {
  const char *shared[3 + TIMING_NOPTS + 16] = {
      "[-D NAME=VALUE]...", "[--tracker HOST:PORT]", "[--key KEY]", "[--token-file PATH]",
      "[--compiler C]", "[--db PATH]"};
  char timing[TIMING_NOPTS][48];
  size_t n = 6;
  for (int i = 0; i < TIMING_NOPTS; i++) {
    const timing_field *tf = &timing_fields[i];
    snprintf(timing[i], sizeof(timing[i]), "[--%s%s%s]", tf->option, tf->arg ? " " : "",
             tf->arg ? tf->arg : "");
    shared[n++] = timing[i];
  }
  const char *tail[] = {"[--no-check]", "[--priority N]", "[--remeasure]", "[--wait-timeout MS]"};
  for (size_t i = 0; i < 4; i++) shared[n++] = tail[i];
  int indent = fprintf(f, "usage: ktune %s TASK", cmd) - 4, col = indent + 4;
  for (size_t i = 0; i < n || *own; i++) {
    const char *w = i < n ? shared[i] : *own++;
    int len = (int)strlen(w);
    if (col + 1 + len > SYNOPSIS_WIDTH) {
      fprintf(f, "\n%*s", indent - 1, "");
      col = indent - 1;
    }
    col += fprintf(f, " %s", w);
  }
  fprintf(f, "\n");
}

void cli_session_help(FILE *f) {
  fprintf(f,
          "  -D NAME=VALUE       set a problem constant, e.g. -D M=512 (default: the\n"
          "                      spec's value)\n"
          "  --tracker HOST:PORT use a running farm (default: KTUNE_TRACKER, else a\n"
          "                      private local farm)\n"
          "  --token-file PATH   your token for the farm (default: KTUNE_TOKEN, else the\n"
          "                      file KTUNE_TOKEN_FILE names; KTUNE_USER: the name it was\n"
          "                      issued to)\n"
          "  --key KEY           device key to measure on: 1 to 63 printable characters\n"
          "                      without spaces; required with --tracker (default local,\n"
          "                      the local farm's runner)\n"
          "  --compiler C        tcc (built in, default) or a compiler command line such as\n"
          "                      \"gcc -O3 -march=native\"; part of every trial's identity\n"
          "  --db PATH           history of the local farm (default ./ktune.db)\n");
  for (int i = 0; i < TIMING_NOPTS; i++) {
    const timing_field *tf = &timing_fields[i];
    char opt[40];
    snprintf(opt, sizeof(opt), "%s%s%s", tf->option, tf->arg ? " " : "", tf->arg ? tf->arg : "");
    if (!tf->arg) fprintf(f, "  --%-17s %s (default off)\n", opt, tf->help);
    else fprintf(f, "  --%-17s %s (default %u)\n", opt, tf->help, tf->def);
  }
  fprintf(f,
          "  --priority N        0 to 1000: orders your own sessions on a key, higher first;\n"
          "                      an admin's also goes before other people's (owners share\n"
          "                      a key fairly, in runner time; default 0)\n"
          "  --remeasure         measure configs the history already has (default: reuse)\n"
          "  --wait-timeout MS   fail once the key has had no runner, or its runners no\n"
          "                      builder that can make their code, for MS (default: wait\n"
          "                      as long as it takes for a key the tracker has seen; 60 s\n"
          "                      for a key no runner has ever served there, the tracker's\n"
          "                      --unknown-key-wait-ms)\n"
          "  --no-check          skip comparing outputs with the reference (default: check)\n");
}

int cli_session_task(const char *cmd, const cli_session_opts *o, task_spec *t) {
  char err[1024], path[4096];
  if (catalogue_find(o->task_arg, path, sizeof(path), err, sizeof(err)) < 0 ||
      task_load(path, t, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune %s: %s\n", cmd, err);
    return -1;
  }
  for (size_t i = 0; i < o->ndefines; i++) {
    char name[128];
    int64_t v;
    if (cli_parse_define(o->defines[i], name, sizeof(name), &v) < 0) {
      fprintf(stderr, "ktune %s: -D takes NAME=VALUE with a whole number, not '%s'\n", cmd,
              o->defines[i]);
      task_free(t);
      return -1;
    }
    if (task_set_const(t, name, v, err, sizeof(err)) < 0) {
      fprintf(stderr, "ktune %s: %s\n", cmd, err);
      task_free(t);
      return -1;
    }
  }
  if (task_check(t, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune %s: %s\n", cmd, err);
    task_free(t);
    return -1;
  }
  return 0;
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

int cli_session_run(const char *cmd, cli_session_opts *o, FILE *say, cli_session_fn fn,
                    void *ctx) {
  if (o->dial.tracker) {
    /* A resumed session measures on its own key. */
    if (!o->key && !o->resume) {
      fprintf(stderr, "ktune %s: with --tracker, name the device key to measure on (--key KEY; "
                      "`ktune status` lists the runners' keys)\n", cmd);
      return EXIT_USAGE;
    }
    return fn(ctx, &o->dial, 1);
  }
  if (!o->key) o->key = "local";
  /* The private farm has no tokens; its agents must not expect one. */
  unsetenv("KTUNE_TOKEN");
  unsetenv("KTUNE_TOKEN_FILE");
  char err[1024];
  farm f;
  if (check_history(o->db, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune %s: %s\n", cmd, err);
    return EXIT_FAIL;
  }
  if (farm_start(&f, o->db, o->replay, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune %s: %s\n", cmd, err);
    farm_stop(&f, 1);
    return EXIT_FAIL;
  }
  if (o->replay)
    fprintf(say, "replay of %s on a local tracker, history %s: nothing is measured\n", o->replay,
            o->db);
  else
    fprintf(say, "local farm on %s, history %s\n", f.addr, o->db);
  fflush(say);
  cli_dial local = {.tracker = f.addr};
  int rc = fn(ctx, &local, 0);
  farm_stop(&f, rc == EXIT_FAIL);
  return rc;
}

Ktune__Envelope *cli_session_submit(const char *cmd, const cli_session_opts *o,
                                    const cli_dial *d, const task_spec *t, client *c, int *rc) {
  char err[512];
  *rc = EXIT_FAIL;
  if (client_connect(c, d, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune %s: %s\n", cmd, err);
    return NULL;
  }
  Ktune__TaskSpec *tp = NULL;
  if (t && task_to_proto(t, &tp) < 0) {
    fprintf(stderr, "ktune %s: out of memory\n", cmd);
    client_close(c);
    return NULL;
  }
  Ktune__SubmitSession s = KTUNE__SUBMIT_SESSION__INIT;
  s.task = tp;
  s.key = (char *)(o->key ? o->key : "");
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
  s.confirm = o->confirm;
  s.workload = (char *)(o->workload ? o->workload : "");
  s.wait_timeout_ms = o->wait_timeout_ms;
  s.resume = o->resume;
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_SUBMIT, &s);
  /* First word that the submission arrived and is being checked, then
   * the verdict, for as long as the tracker stays alive. */
  Ktune__Envelope *m = client_ask(c, &env, 30000, err, sizeof(err));
  task_proto_free(tp);
  if (m && m->msg_case == KTUNE__ENVELOPE__MSG_SUBMIT_RECEIVED) {
    wire_free(m);
    m = client_recv(c, -1, err, sizeof(err));
  }
  if (m && m->msg_case == KTUNE__ENVELOPE__MSG_ACCEPTED) {
    *rc = EXIT_OK;
    return m;
  }
  /* A refusal is about the request (usage); a lost tracker is not. */
  int refused = !m && c->refused;
  if (refused) fprintf(stderr, "ktune %s: the tracker refused the session: %s\n", cmd, err);
  else fprintf(stderr, "ktune %s: %s\n", cmd, m ? "unexpected reply from the tracker" : err);
  wire_free(m);
  client_close(c);
  *rc = refused ? EXIT_USAGE : EXIT_FAIL;
  return NULL;
}
