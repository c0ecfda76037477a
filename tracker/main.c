/* ktune-tracker: the farm's daemon. */
#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/log.h"
#include "tracker/tracker.h"

#define WHO "tracker"
/* The history's page cache (store_cache): a few hundred thousand trials
 * and their indexes, in memory only as far as they are used. */
#define TRACKER_CACHE_MB 64

static void usage(FILE *f) {
  fprintf(f,
          "usage: ktune-tracker [--listen HOST:PORT] [--db PATH] [--sync normal|full]\n"
          "                     [--tokens FILE] [--insecure] [--replay FILE]\n"
          "                     [--http HOST:PORT] [OPTION N]...\n"
          "       ktune-tracker --version | --help\n"
          "\n"
          "Keeps the farm: builders and runners dial in, clients submit sessions.\n"
          "  --listen HOST:PORT  address to listen on (default " ADDR_DEFAULT_TRACKER "; port 0 picks one)\n"
          "  --db PATH           SQLite history (default ./ktune.db)\n"
          "  --sync normal|full  normal: a result survives a crash of this process (default);\n"
          "                      full: it also survives power loss, slower\n"
          "  --tokens FILE       who may connect: lines of ROLE NAME TOKEN, and for people\n"
          "                      [share=N] [sessions=N] [queued=N] (docs/SECURITY.md);\n"
          "                      SIGHUP reads it again (default: none, and only loopback\n"
          "                      addresses may listen)\n"
          "  --insecure          listen beyond loopback without tokens (anyone who reaches\n"
          "                      the port can run code on every runner; default off)\n"
          "  --port-file PATH    write the address actually bound, once listening (default:\n"
          "                      none)\n"
          "  --http HOST:PORT    serve the dashboard (/), /api/status, /api/events,\n"
          "                      /api/sessions/ID/trials and /metrics there, read-only\n"
          "                      (a bare PORT is 127.0.0.1:PORT; with --tokens each request\n"
          "                      needs a client or admin token; beyond loopback without\n"
          "                      --tokens, only with --insecure; default: off;\n"
          "                      docs/OPERATIONS.md)\n"
          "  --http-port-file PATH  write the HTTP address actually bound (default: none)\n"
          "  --share NAME=N      NAME's weight in the share of each key's runners, where\n"
          "                      their tokens line gives no share=N; repeatable\n"
          "                      (default 1: equal shares; docs/OPERATIONS.md)\n"
          "  --owner 'NAME [share=N] [sessions=N] [queued=N]'\n"
          "                      NAME's weight and quotas, as on a tokens line, where\n"
          "                      that line gives none (works without --tokens too);\n"
          "                      repeatable, the last for a name counts\n"
          "  --replay FILE       answer every trial from a recorded history (a ktune.db or\n"
          "                      `ktune export --format jsonl` output) instead of agents:\n"
          "                      strategies compared without timing noise (default: agents)\n"
          "  --version           print the version and exit\n"
          "Limits (N):\n"
          "  --heartbeat-ms      heartbeat interval told to agents (default 1000)\n"
          "  --timeout-ms        drop a peer silent this long (default 10000)\n"
          "  --hello-timeout-ms  time to log in after connecting (default 5000)\n"
          "  --max-frame         bytes of one message (default 67108864)\n"
          "  --max-artifact      bytes of a built shared object (default 16777216)\n"
          "  --max-conns         connections at once (default 1024)\n"
          "  --max-unauth        connections not logged in yet (default 64)\n"
          "  --max-unauth-per-addr  the same, from one address (default 8)\n"
          "  --auth-delay-ms     a failed login's answer waits this long (default 1000)\n"
          "  --max-sessions      unfinished (waiting or running) sessions per owner, unless\n"
          "                      their tokens line or --owner says sessions=N (default 16)\n"
          "  --max-queued        trials not yet recorded per owner, unless their tokens\n"
          "                      line or --owner says queued=N (default 100000)\n"
          "  --share-half-life-s runner time an owner used counts half after this long, in\n"
          "                      the turns of a key's owners (default 300)\n"
          "  --max-knobs         knobs per task (default 32)\n"
          "  --max-values        values per knob (default 4096)\n"
          "  --max-space         configs in a task's space (default 1000000000000)\n"
          "  --max-constraint-bytes  text of a task's constraints (default 8192)\n"
          "  --max-lost          times a job may lose its agent before it ends as\n"
          "                      RUNNER_LOST (default 3)\n"
          "  --grace-ms          a job held longer than its run or build limit plus this\n"
          "                      goes back to the queue (default 10000)\n"
          "  --max-gflops        results faster than this are refused as implausible\n"
          "                      (default 1000000)\n"
          "  --remeasure-spread-pct  a measurement whose rounds spread more than this\n"
          "                      (std / mean, in %%) is measured again, once, unless its\n"
          "                      rounds last under 10 us; 0: never (default 20)\n"
          "  --unknown-key-wait-ms  a session without --wait-timeout whose key no runner\n"
          "                      has served (none connected since the tracker started, no\n"
          "                      trial in the history) fails after waiting this long for\n"
          "                      one; 0: it waits as long as it takes (default 60000)\n"
          "KTUNE_DEBUG set in the environment adds debug lines to the log.\n"
          "Exit status: 0 after SIGTERM or SIGINT, 1 on a runtime failure, 2 for a usage\n"
          "error.\n");
}

/* Numeric options: name, where, smallest value. */
typedef struct {
  const char *name;
  size_t offset;
  uint64_t min;
  int wide; /* 1: a uint64_t field, 2: a double, 0: uint32_t */
} num_opt;

#define NUM(n, field, min) {n, offsetof(tracker_opts, field), min, 0}
static const num_opt num_opts[] = {
    NUM("heartbeat-ms", heartbeat_ms, 10), NUM("timeout-ms", timeout_ms, 50),
    NUM("hello-timeout-ms", hello_timeout_ms, 10), NUM("max-frame", max_frame, 1024),
    NUM("max-artifact", max_artifact, 1024), NUM("max-conns", max_conns, 1),
    NUM("max-unauth", max_unauth, 1), NUM("auth-delay-ms", auth_delay_ms, 0),
    NUM("max-unauth-per-addr", max_unauth_addr, 1),
    NUM("max-sessions", max_sessions, 1), NUM("max-queued", max_queued, 1),
    NUM("max-knobs", max_knobs, 1), NUM("max-values", max_values, 1),
    {"max-space", offsetof(tracker_opts, max_space), 1, 1}, NUM("max-lost", max_lost, 1),
    NUM("max-constraint-bytes", max_constraint_bytes, 1), NUM("grace-ms", grace_ms, 0),
    {"max-gflops", offsetof(tracker_opts, max_gflops), 1, 2},
    NUM("unknown-key-wait-ms", unknown_key_wait_ms, 0),
    NUM("remeasure-spread-pct", remeasure_spread_pct, 0),
    NUM("share-half-life-s", share_half_life_s, 1),
};
#define NNUM (sizeof(num_opts) / sizeof(num_opts[0]))

static int set_num(tracker_opts *o, const num_opt *n, const char *s) {
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  uint64_t max = n->wide ? UINT64_MAX : UINT32_MAX;
  if (n->wide == 2) {
    double d = strtod(s, &end);
    if (!*s || *end || !(d >= (double)n->min) || d > 1e18) {
      fprintf(stderr, "ktune-tracker: --%s needs a number of at least %llu, not '%s'\n", n->name,
              (unsigned long long)n->min, s);
      return -1;
    }
    *(double *)((char *)o + n->offset) = d;
    return 0;
  }
  if (!*s || *end || *s == '-' || v < n->min || v > max) {
    fprintf(stderr, "ktune-tracker: --%s needs a whole number of at least %llu, not '%s'\n",
            n->name, (unsigned long long)n->min, s);
    return -1;
  }
  if (n->wide) *(uint64_t *)((char *)o + n->offset) = v;
  else *(uint32_t *)((char *)o + n->offset) = (uint32_t)v;
  return 0;
}

static void defaults(tracker_opts *o) {
  o->listen = ADDR_DEFAULT_TRACKER;
  o->db_path = "ktune.db";
  o->heartbeat_ms = 1000;
  o->timeout_ms = 10000;
  o->hello_timeout_ms = 5000;
  o->max_frame = 64u << 20;
  o->max_artifact = 16u << 20;
  o->build_timeout_ms = 60000;
  o->run_timeout_ms = 60000;
  o->max_lost = 3;
  o->max_conns = 1024;
  o->max_unauth = 64;
  o->max_unauth_addr = 8;
  o->auth_delay_ms = 1000;
  o->max_sessions = 16;
  o->max_queued = 100000;
  o->max_knobs = 32;
  o->max_values = 4096;
  o->max_space = 1000000000000ull;
  o->max_constraint_bytes = 8192;
  o->grace_ms = 10000;
  o->max_gflops = 1e6;
  o->unknown_key_wait_ms = 60000;
  o->remeasure_spread_pct = 20;
  o->share_half_life_s = 300;
}

/* 0 when spec is an address the tracker may open: resolvable, and
 * loopback unless it has tokens or --insecure. */
static int check_open(const tracker *t, const char *opt, const char *spec, const char *doing,
                      const char *risk) {
  char err[512];
  struct sockaddr_storage ss;
  if (addr_resolve(spec, &ss, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune-tracker: %s: %s\n", opt, err);
    return -1;
  }
  if (t->tokens.n || addr_is_loopback(&ss) || t->opts.insecure) return 0;
  fprintf(stderr, "ktune-tracker: refusing to %s %s without --tokens: anyone who can reach it "
                  "%s. Give --tokens FILE (docs/SECURITY.md), or --insecure on a network you "
                  "trust.\n", doing, spec, risk);
  return -1;
}

/* --http PORT is this machine's port: HOST:PORT otherwise. */
static const char *http_addr(const char *arg, char *buf, size_t len) {
  if (*arg && strspn(arg, "0123456789") == strlen(arg)) {
    snprintf(buf, len, "127.0.0.1:%s", arg);
    return buf;
  }
  return arg;
}

/* One more person's fields, from --owner 'NAME FIELD=N...' or, with
 * share_form, from --share NAME=N (the same as --owner 'NAME share=N'). */
static int add_owner(tracker_opts *o, int share_form, const char *arg) {
  char fields[512], why[200] = "";
  auth_entry e = {0};
  int any = 0;
  size_t len;
  if (share_form) {
    const char *eq = strrchr(arg, '=');
    len = eq ? (size_t)(eq - arg) : 0;
    snprintf(fields, sizeof(fields), "share=%s", eq ? eq + 1 : "");
  } else {
    len = strcspn(arg, " \t");
    snprintf(fields, sizeof(fields), "%s", arg + len);
  }
  if (!len || len >= sizeof(e.name) || auth_parse_fields(fields, &e, &any, why, sizeof(why)) < 0 ||
      !any) {
    if (share_form)
      fprintf(stderr, "ktune-tracker: --share takes NAME=N, a name of 1 to %zu characters and N "
              "from 1 to 1000, not '%s'\n", sizeof(e.name) - 1, arg);
    else
      fprintf(stderr, "ktune-tracker: --owner takes 'NAME FIELD=N...', a name of 1 to %zu "
              "characters and one or more of share=N, sessions=N and queued=N, not '%s'%s%s\n",
              sizeof(e.name) - 1, arg, why[0] ? ": " : "", why);
    return -1;
  }
  snprintf(e.name, sizeof(e.name), "%.*s", (int)len, arg);
  auth_entry *no = realloc(o->owners, (o->nowners + 1) * sizeof(*no));
  if (!no) {
    fprintf(stderr, "ktune-tracker: out of memory\n");
    return -1;
  }
  o->owners = no;
  no[o->nowners++] = e;
  return 0;
}

int main(int argc, char **argv) {
  tracker t;
  memset(&t, 0, sizeof(t));
  defaults(&t.opts);
  enum { OPT_PORTF = 256, OPT_SYNC, OPT_TOKENS, OPT_INSECURE, OPT_REPLAY, OPT_VERSION, OPT_SHARE,
         OPT_OWNER, OPT_HTTP, OPT_HTTP_PORTF, OPT_NUM };
  enum { NNAMED = 13 };
  struct option opts[NNAMED + 1 + NNUM] = {
      {"listen", required_argument, 0, 'l'}, {"db", required_argument, 0, 'd'},
      {"sync", required_argument, 0, OPT_SYNC}, {"port-file", required_argument, 0, OPT_PORTF},
      {"tokens", required_argument, 0, OPT_TOKENS}, {"insecure", no_argument, 0, OPT_INSECURE},
      {"replay", required_argument, 0, OPT_REPLAY}, {"version", no_argument, 0, OPT_VERSION},
      {"share", required_argument, 0, OPT_SHARE}, {"owner", required_argument, 0, OPT_OWNER},
      {"http", required_argument, 0, OPT_HTTP},
      {"http-port-file", required_argument, 0, OPT_HTTP_PORTF}, {"help", no_argument, 0, 'h'}};
  for (size_t i = 0; i < NNUM; i++)
    opts[NNAMED + i] = (struct option){num_opts[i].name, required_argument, 0, OPT_NUM + (int)i};
  /* getopt's messages start with argv[0]: the program, not its path. */
  argv[0] = "ktune-tracker";
  int c;
  char http_spec[300];
  while ((c = getopt_long(argc, argv, "l:d:h", opts, NULL)) != -1) {
    switch (c) {
    case 'l': t.opts.listen = optarg; break;
    case 'd': t.opts.db_path = optarg; break;
    case OPT_PORTF: t.opts.port_file = optarg; break;
    case OPT_TOKENS: t.opts.tokens_path = optarg; break;
    case OPT_INSECURE: t.opts.insecure = 1; break;
    case OPT_REPLAY: t.opts.replay_path = optarg; break;
    case OPT_HTTP: t.opts.http = http_addr(optarg, http_spec, sizeof(http_spec)); break;
    case OPT_HTTP_PORTF: t.opts.http_port_file = optarg; break;
    case OPT_SHARE:
    case OPT_OWNER:
      if (add_owner(&t.opts, c == OPT_SHARE, optarg) < 0) return 2;
      break;
    case OPT_SYNC:
      if (strcmp(optarg, "normal") && strcmp(optarg, "full")) {
        fprintf(stderr, "ktune-tracker: --sync takes normal or full, not '%s'\n", optarg);
        return 2;
      }
      t.opts.sync_full = strcmp(optarg, "full") == 0;
      break;
    case 'h': usage(stdout); return 0;
    case OPT_VERSION: printf("ktune-tracker %s\n", KTUNE_VERSION); return 0;
    default:
      if (c >= OPT_NUM && c < OPT_NUM + (int)NNUM) {
        if (set_num(&t.opts, &num_opts[c - OPT_NUM], optarg) < 0) return 2;
        break;
      }
      usage(stderr);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "ktune-tracker: unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    return 2;
  }
  char err[512];
  if (auth_init() < 0) {
    fprintf(stderr, "ktune-tracker: libsodium does not start\n");
    return 1;
  }
  if (t.opts.tokens_path && auth_tokens_load(t.opts.tokens_path, &t.tokens, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune-tracker: %s\n", err);
    return 2;
  }
  /* Whoever reaches the port can run code on every runner, and the HTTP
   * side shows every session and agent: without tokens, only this
   * machine may. */
  if (check_open(&t, "--listen", t.opts.listen, "listen on", "could run code on every runner") ||
      (t.opts.http &&
       check_open(&t, "--http", t.opts.http, "serve HTTP on", "would see every session and agent")))
    return 2;
  if (!t.tokens.n && t.opts.insecure)
    log_warn(WHO, "--insecure: no authentication; anyone who reaches %s can run code on every "
             "runner", t.opts.listen);
  t.lock_fd = -1;
  if (dblock_take(&t, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune-tracker: %s\n", err);
    return 1;
  }
  if (hist_open(t.opts.db_path, t.opts.sync_full, &t.db, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune-tracker: %s\n", err);
    return 1;
  }
  if (store_cache(t.db, TRACKER_CACHE_MB) < 0)
    fprintf(stderr, "ktune-tracker: warning: cannot size the history's cache: %s\n",
            hist_errmsg(t.db));
  dblock_check(&t, err, sizeof(err));
  if (t.opts.replay_path && replay_load(&t, t.opts.replay_path, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune-tracker: --replay: %s\n", err);
    hist_close(t.db);
    return 2;
  }
  if (t.replay)
    log_info(WHO, "replay: every trial is answered from %s, none is measured",
             t.opts.replay_path);
  /* A client that leaves mid-answer (a closed dashboard tab) is a failed
   * write to it, not the end of the tracker. */
  signal(SIGPIPE, SIG_IGN);
  t.loop = uv_default_loop();
  t.started_ms = uv_now(t.loop);
  session_init(&t);
  if (submit_resume_all(&t) < 0) {
    fprintf(stderr, "ktune-tracker: cannot resume the sessions in %s: %s\n", t.opts.db_path,
            hist_errmsg(t.db));
    hist_close(t.db);
    return 1;
  }
  if (server_start(&t, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune-tracker: %s\n", err);
    hist_close(t.db);
    return 1;
  }
  if (t.opts.http && http_start(&t, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune-tracker: --http: %s\n", err);
    hist_close(t.db);
    return 1;
  }
  if (!(t.ckpt = checkpoint_start(t.loop, t.db, t.opts.db_path, err, sizeof(err)))) {
    fprintf(stderr, "ktune-tracker: %s\n", err);
    hist_close(t.db);
    return 1;
  }
  /* Resumed sessions propose what they had not proposed yet. */
  for (session *s = t.sessions; s; s = s->next) session_fill(&t, s);
  uv_run(t.loop, UV_RUN_DEFAULT);
  checkpoint_free(t.ckpt);
  http_free(&t);
  jobs_free_all(&t);
  session_free_all(&t);
  queue_free_all(&t);
  share_free_all(&t);
  metrics_free(&t);
  free(t.opts.owners);
  guard_free_all(&t);
  replay_free(t.replay);
  hist_close(t.db);
  close(t.lock_fd);
  auth_tokens_free(&t.tokens);
  uv_loop_close(t.loop);
  log_info(WHO, "stopped");
  return t.fatal ? 1 : 0;
}
