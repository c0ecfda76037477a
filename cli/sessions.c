/* ktune wait | attach | cancel | sessions: sessions outlive the client
 * that submitted them; these find them again by id. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/wire.h"

/* Parses `ktune CMD ID [--tracker HOST:PORT]`. */
static int parse_id_args(const char *cmd, int argc, char **argv, uint64_t *id, const char **tracker) {
  const char *opt_tracker = NULL;
  static const struct option opts[] = {{"tracker", required_argument, 0, 't'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int ch;
  optind = 1;
  while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (ch) {
    case 't': opt_tracker = optarg; break;
    case 'h': printf("usage: ktune %s ID [--tracker HOST:PORT]\n", cmd); return 1;
    default: return -1;
    }
  }
  char *end = NULL;
  if (argc - optind != 1 || !(*id = strtoull(argv[optind], &end, 10)) || *end) {
    fprintf(stderr, "ktune %s: give one session id (`ktune sessions` lists them)\n", cmd);
    return -1;
  }
  *tracker = cli_tracker_or_local(opt_tracker);
  return 0;
}

static int watch(const char *cmd, int argc, char **argv, int quiet) {
  uint64_t id;
  const char *tracker;
  int rc = parse_id_args(cmd, argc, argv, &id, &tracker);
  if (rc) return rc > 0 ? EXIT_OK : EXIT_USAGE;
  char err[512];
  client c;
  if (client_connect(&c, tracker, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune %s: %s\n", cmd, err);
    return EXIT_FAIL;
  }
  Ktune__WatchSession w = KTUNE__WATCH_SESSION__INIT;
  w.session_id = id;
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_WATCH;
  env.watch = &w;
  rc = client_send(&c, &env) < 0 ? EXIT_FAIL : cli_follow(&c, id, quiet);
  client_close(&c);
  return rc;
}

int cmd_wait(int argc, char **argv) { return watch("wait", argc, argv, 1); }

int cmd_attach(int argc, char **argv) { return watch("attach", argc, argv, 0); }

int cmd_cancel(int argc, char **argv) {
  uint64_t id;
  const char *tracker;
  int rc = parse_id_args("cancel", argc, argv, &id, &tracker);
  if (rc) return rc > 0 ? EXIT_OK : EXIT_USAGE;
  char err[512];
  client c;
  if (client_connect(&c, tracker, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune cancel: %s\n", err);
    return EXIT_FAIL;
  }
  Ktune__CancelSession cs = KTUNE__CANCEL_SESSION__INIT;
  cs.session_id = id;
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_CANCEL;
  env.cancel = &cs;
  Ktune__Envelope *m = client_send(&c, &env) < 0 ? NULL : client_recv(&c, 10000, err, sizeof(err));
  client_close(&c);
  if (!m || m->msg_case != KTUNE__ENVELOPE__MSG_PROGRESS) {
    fprintf(stderr, "ktune cancel: %s\n", m ? "unexpected reply from the tracker" : err);
    wire_free(m);
    return EXIT_FAIL;
  }
  printf("session %llu %s after %u of %u trials\n", (unsigned long long)id, m->progress->state,
         m->progress->trials_done, m->progress->trials);
  wire_free(m);
  return EXIT_OK;
}

int cmd_sessions(int argc, char **argv) {
  const char *opt_tracker = NULL;
  static const struct option opts[] = {{"tracker", required_argument, 0, 't'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (ch) {
    case 't': opt_tracker = optarg; break;
    case 'h': printf("usage: ktune sessions [--tracker HOST:PORT]\n"); return EXIT_OK;
    default: return EXIT_USAGE;
    }
  }
  const char *tracker = cli_tracker_or_local(opt_tracker);
  char err[512];
  Ktune__Envelope *m;
  if (cli_fetch_status(tracker, &m, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune sessions: %s\n", err);
    return EXIT_FAIL;
  }
  cli_print_sessions(m->status_reply);
  wire_free(m);
  return EXIT_OK;
}
