/* ktune: the command line. A table of subcommands, each in its own file. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/report.h"

static const struct {
  const char *name;
  int (*fn)(int argc, char **argv);
  const char *help;
} commands[] = {
    {"tune", cmd_tune, "tune a task: measure candidates and report the best"},
    {"measure", cmd_measure, "measure the configs stdin gives (JSON lines): for your own tuner"},
    {"status", cmd_status, "agents and sessions of a running tracker"},
    {"export", cmd_export, "the history as JSON lines or CSV"},
    {"best", cmd_best, "the fastest config measured for a task"},
    {"report", cmd_report, "the history as one HTML page: tables and charts, no server"},
    {"wait", cmd_wait, "wait for a session to end"},
    {"attach", cmd_attach, "follow a session's progress"},
    {"cancel", cmd_cancel, "stop a session; its queued jobs are dropped"},
    {"sessions", cmd_sessions, "the sessions of a tracker"},
    {"tasks", cmd_tasks, "the built-in tasks, their knobs and space sizes"},
    {"token", cmd_token, "a tokens-file line with a fresh random token"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: ktune COMMAND [OPTIONS]   (ktune COMMAND --help for its options)\n"
             "       ktune --version | --help\n\n");
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
    fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
  fprintf(f,
          "\nEnvironment:\n"
          "  KTUNE_TRACKER     HOST:PORT, when --tracker is not given (default: tune and\n"
          "                    measure run a private local farm, export reads --db; status,\n"
          "                    sessions, wait, attach and cancel dial " ADDR_DEFAULT_TRACKER ")\n"
          "  KTUNE_TOKEN       your token for a farm with tokens, when --token-file is not\n"
          "                    given (default: none)\n"
          "  KTUNE_TOKEN_FILE  a file holding it, when neither --token-file nor KTUNE_TOKEN\n"
          "                    is given\n"
          "  KTUNE_USER        the name you log in as, the one your token was issued to\n"
          "                    (default: $USER, else your login name)\n"
          "  KTUNE_TASKS       the folder of the built-in task specs (default:\n"
          "                    %s%s%s)\n"
          "  TMPDIR            where the local farm keeps its port file and log (default\n"
          "                    /tmp)\n"
          "  KTUNE_DEBUG       when set, the local farm's programs log debug lines too\n"
          "\nExit status: 0 success, 1 runtime failure, 2 usage error.\n",
          KTUNE_TASKS_DIR, *KTUNE_TASKS_INSTALL_DIR ? ", then " : "", KTUNE_TASKS_INSTALL_DIR);
}

int main(int argc, char **argv) {
  /* A tracker that closes on us is an error message, not a silent death
   * by SIGPIPE (exit 141). */
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2) {
    usage(stderr);
    return EXIT_USAGE;
  }
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return EXIT_OK;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("ktune %s\n", KTUNE_VERSION);
    return EXIT_OK;
  }
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
    if (strcmp(argv[1], commands[i].name) != 0) continue;
    /* getopt names argv[0] in its messages: "ktune wait: unrecognized
     * option", not "wait: ...", for every command alike. */
    static char prog[32];
    snprintf(prog, sizeof(prog), "ktune %s", commands[i].name);
    argv[1] = prog;
    return commands[i].fn(argc - 1, argv + 1);
  }
  fprintf(stderr, "ktune: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return EXIT_USAGE;
}
