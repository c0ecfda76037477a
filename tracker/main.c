/* ktune-tracker: the farm's daemon. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "tracker/tracker.h"

#define WHO "tracker"

static void usage(FILE *f) {
  fprintf(f,
          "usage: ktune-tracker [--listen HOST:PORT] [--db PATH] [--sync normal|full]\n"
          "                     [--heartbeat-ms N] [--timeout-ms N] [--max-frame BYTES]\n"
          "                     [--max-lost N] [--port-file PATH]\n"
          "\n"
          "Keeps the farm: builders and runners dial in, clients submit sessions.\n"
          "  --listen HOST:PORT  address to listen on (default 127.0.0.1:9290; port 0 picks one)\n"
          "  --db PATH           SQLite history (default ./ktune.db)\n"
          "  --sync normal|full  normal: a result survives a crash of this process (default);\n"
          "                      full: it also survives power loss, slower\n"
          "  --heartbeat-ms N    heartbeat interval told to agents (default 1000)\n"
          "  --timeout-ms N      drop a peer silent this long (default 10000)\n"
          "  --max-frame BYTES   largest message accepted (default 67108864)\n"
          "  --max-lost N        times a job may lose its agent before it ends as\n"
          "                      RUNNER_LOST (default 3)\n"
          "  --port-file PATH    write the address actually bound, once listening\n");
}

static int parse_u32(const char *opt, const char *s, uint32_t min, uint32_t *out) {
  char *end;
  unsigned long v = strtoul(s, &end, 10);
  if (!*s || *end || v < min || v > UINT32_MAX) {
    fprintf(stderr, "ktune-tracker: %s needs a whole number of at least %u, not '%s'\n", opt, min, s);
    return -1;
  }
  *out = (uint32_t)v;
  return 0;
}

int main(int argc, char **argv) {
  tracker t;
  memset(&t, 0, sizeof(t));
  t.opts.listen = "127.0.0.1:9290";
  t.opts.db_path = "ktune.db";
  t.opts.heartbeat_ms = 1000;
  t.opts.timeout_ms = 10000;
  t.opts.hello_timeout_ms = 10000;
  t.opts.max_frame = 64u << 20;
  t.opts.build_timeout_ms = 60000;
  t.opts.run_timeout_ms = 60000;
  t.opts.max_lost = 3;
  enum { OPT_HB = 256, OPT_TO, OPT_MAXF, OPT_PORTF, OPT_SYNC, OPT_LOST };
  static const struct option opts[] = {
      {"listen", required_argument, 0, 'l'}, {"db", required_argument, 0, 'd'},
      {"sync", required_argument, 0, OPT_SYNC}, {"heartbeat-ms", required_argument, 0, OPT_HB},
      {"timeout-ms", required_argument, 0, OPT_TO}, {"max-frame", required_argument, 0, OPT_MAXF},
      {"port-file", required_argument, 0, OPT_PORTF}, {"max-lost", required_argument, 0, OPT_LOST},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "l:d:h", opts, NULL)) != -1) {
    switch (c) {
    case 'l': t.opts.listen = optarg; break;
    case 'd': t.opts.db_path = optarg; break;
    case OPT_PORTF: t.opts.port_file = optarg; break;
    case OPT_SYNC:
      if (strcmp(optarg, "normal") && strcmp(optarg, "full")) {
        fprintf(stderr, "ktune-tracker: --sync takes normal or full, not '%s'\n", optarg);
        return 2;
      }
      t.opts.sync_full = strcmp(optarg, "full") == 0;
      break;
    case OPT_HB: if (parse_u32("--heartbeat-ms", optarg, 10, &t.opts.heartbeat_ms)) return 2; break;
    case OPT_TO: if (parse_u32("--timeout-ms", optarg, 50, &t.opts.timeout_ms)) return 2; break;
    case OPT_LOST: if (parse_u32("--max-lost", optarg, 1, &t.opts.max_lost)) return 2; break;
    case OPT_MAXF: if (parse_u32("--max-frame", optarg, 1024, &t.opts.max_frame)) return 2; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "ktune-tracker: unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    return 2;
  }
  char err[512];
  if (hist_open(t.opts.db_path, t.opts.sync_full, &t.db, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune-tracker: %s\n", err);
    return 1;
  }
  t.loop = uv_default_loop();
  t.started_ms = uv_now(t.loop);
  if (session_resume_all(&t) < 0) {
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
  uv_run(t.loop, UV_RUN_DEFAULT);
  jobs_free_all(&t);
  session_free_all(&t);
  hist_close(t.db);
  uv_loop_close(t.loop);
  log_info(WHO, "stopped");
  return 0;
}
