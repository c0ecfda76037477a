/* ktune: the command line. A table of subcommands, each in its own file. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

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
    {"wait", cmd_wait, "wait for a session to end"},
    {"attach", cmd_attach, "follow a session's progress"},
    {"cancel", cmd_cancel, "stop a session; its queued jobs are dropped"},
    {"sessions", cmd_sessions, "the sessions of a tracker"},
    {"tasks", cmd_tasks, "the built-in tasks, their knobs and space sizes"},
    {"token", cmd_token, "a tokens-file line with a fresh random token"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: ktune COMMAND [OPTIONS]   (ktune COMMAND --help for its options)\n\n");
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
    fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
  fprintf(f, "\nKTUNE_TRACKER stands for --tracker HOST:PORT. Against a farm with tokens, the\n"
             "token is --token-file PATH, else KTUNE_TOKEN, else the file KTUNE_TOKEN_FILE\n"
             "names; KTUNE_USER is the name it was issued to (default: your login name).\n");
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
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
    if (strcmp(argv[1], commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "ktune: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return EXIT_USAGE;
}
