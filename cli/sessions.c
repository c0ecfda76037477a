/* ktune wait | attach | cancel | sessions: sessions outlive the client
 * that submitted them; these find them again by id. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/wire.h"

/* Session ids are SQLite row ids: positive and below 2^63. */
#define SESSION_ID_MAX ((uint64_t)INT64_MAX)

/* What wait, attach and cancel say after their synopsis. */
#define EXIT_FOLLOW                                                                        \
  "Exit status: 0 when the session ended done with a best config; 1 when it failed,\n"     \
  "was cancelled, measured no config successfully, or the tracker could not be\n"          \
  "reached or refused (no such session); 2 for a usage error.\n"
static const char wait_help[] =
    "Waits for session ID to end, printing nothing meanwhile; then prints its last\n"
    "progress line and, when it is done, its best config (as `ktune tune` ends).\n"
    "Interrupting wait leaves the session running.\n" CLI_DIAL_HELP "\n" EXIT_FOLLOW;
static const char attach_help[] =
    "Follows session ID: prints what it waits for and a progress line per finished\n"
    "batch, then its last line and, when it is done, its best config (as `ktune\n"
    "tune` does). Ctrl-C stops following and leaves the session running (`ktune\n"
    "cancel ID` stops it).\n" CLI_DIAL_HELP "\n" EXIT_FOLLOW;
static const char cancel_help[] =
    "Stops session ID (yours, or any with an admin token): its queued jobs are\n"
    "dropped and the trials recorded so far stay in the history. Prints\n"
    "\"session ID cancelled after N of M trials\".\n" CLI_DIAL_HELP "\n"
    "Exit status: 0 when it was cancelled; 1 when it had already ended, is not\n"
    "yours, does not exist, or the tracker could not be reached; 2 for a usage\n"
    "error.\n";

/* Parses `ktune CMD ID [--tracker HOST:PORT] [--token-file PATH]`: 0, 1
 * after --help (help: what follows the synopsis), -1 on a usage error
 * (said). */
static int parse_id_args(const char *cmd, const char *help, int argc, char **argv, uint64_t *id,
                         cli_dial *d) {
  static const struct option opts[] = {CLI_DIAL_OPTIONS, {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int ch;
  optind = 1;
  while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (ch) {
    case CLI_OPT_TRACKER: case CLI_OPT_TOKEN_FILE: cli_dial_option(d, ch, optarg); break;
    case 'h': printf("usage: ktune %s ID " CLI_DIAL_USAGE "\n\n%s", cmd, help); return 1;
    default: return -1;
    }
  }
  if (argc - optind != 1) {
    fprintf(stderr, "ktune %s: give one session id (`ktune sessions` lists them)\n", cmd);
    return -1;
  }
  if (cli_parse_u64(argv[optind], 10, SESSION_ID_MAX, id) < 0 || *id == 0) {
    fprintf(stderr, "ktune %s: a session id is a whole number from 1 to %llu, not '%s'\n", cmd,
            (unsigned long long)SESSION_ID_MAX, argv[optind]);
    return -1;
  }
  return cli_dial_settle(d, cmd, CLI_LOCAL_TRACKER);
}

static int watch(const char *cmd, const char *help, int argc, char **argv, int quiet) {
  uint64_t id;
  cli_dial d = {0};
  int rc = parse_id_args(cmd, help, argc, argv, &id, &d);
  if (rc) return rc > 0 ? EXIT_OK : EXIT_USAGE;
  char err[512];
  client c;
  if (client_connect(&c, &d, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune %s: %s\n", cmd, err);
    return EXIT_FAIL;
  }
  Ktune__WatchSession w = KTUNE__WATCH_SESSION__INIT;
  w.session_id = id;
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_WATCH, &w);
  if (client_send(&c, &env, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune %s: %s\n", cmd, err);
    rc = EXIT_FAIL;
  } else {
    rc = cli_follow(&c, id, quiet ? CLI_FOLLOW_QUIET : 0, NULL);
  }
  client_close(&c);
  return rc;
}

int cmd_wait(int argc, char **argv) { return watch("wait", wait_help, argc, argv, 1); }

int cmd_attach(int argc, char **argv) { return watch("attach", attach_help, argc, argv, 0); }

int cmd_cancel(int argc, char **argv) {
  uint64_t id;
  cli_dial d = {0};
  int rc = parse_id_args("cancel", cancel_help, argc, argv, &id, &d);
  if (rc) return rc > 0 ? EXIT_OK : EXIT_USAGE;
  char err[512];
  client c;
  if (client_connect(&c, &d, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune cancel: %s\n", err);
    return EXIT_FAIL;
  }
  Ktune__CancelSession cs = KTUNE__CANCEL_SESSION__INIT;
  cs.session_id = id;
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_CANCEL, &cs);
  Ktune__Envelope *m = client_ask(&c, &env, 10000, err, sizeof(err));
  client_close(&c);
  if (!m || m->msg_case != KTUNE__ENVELOPE__MSG_PROGRESS) {
    fprintf(stderr, "ktune cancel: %s\n", m ? "unexpected reply from the tracker" : err);
    wire_free(m);
    return EXIT_FAIL;
  }
  printf("session %llu %s after %u of %u trials\n", (unsigned long long)id,
         wire_state_name(m->progress->state),
         m->progress->trials_done, m->progress->trials);
  wire_free(m);
  return EXIT_OK;
}

int cmd_sessions(int argc, char **argv) {
  cli_dial d = {0};
  static const struct option opts[] = {CLI_DIAL_OPTIONS, {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (ch) {
    case CLI_OPT_TRACKER: case CLI_OPT_TOKEN_FILE: cli_dial_option(&d, ch, optarg); break;
    case 'h':
      printf("usage: ktune sessions " CLI_DIAL_USAGE "\n\n"
             "Prints a tracker's sessions, one line each: the unfinished ones and the last\n"
             "few that ended (ID, owner, task, key, strategy, state, trials done/asked,\n"
             "failed trials, best GFLOPS), and under a session what it waits for or why\n"
             "it ended.\n" CLI_DIAL_HELP "\n"
             "Exit status: 0 when the tracker answered; 1 when it could not be reached or\n"
             "refused; 2 for a usage error.\n");
      return EXIT_OK;
    default: return EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "ktune sessions: unexpected argument '%s'\n", argv[optind]);
    return EXIT_USAGE;
  }
  if (cli_dial_settle(&d, "sessions", CLI_LOCAL_TRACKER) < 0) return EXIT_USAGE;
  char err[512];
  Ktune__Envelope *m;
  if (cli_fetch_status(&d, 0, &m, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune sessions: %s\n", err);
    return EXIT_FAIL;
  }
  cli_print_sessions(m->status_reply);
  wire_free(m);
  return EXIT_OK;
}
