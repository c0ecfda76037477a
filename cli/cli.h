/* The ktune command: one file per group of subcommands.
 *   client.c  a blocking connection to a tracker (the CLI waits on one
 *             thing at a time, so it needs no event loop)
 *   farm.c    the private local farm behind `ktune tune` without --tracker
 *   submit.c  what tune and measure share: options, task, farm, submission
 *   tune.c    tune and following a session
 *   measure.c measure: configs from stdin, one result line each
 *   sessions.c  wait, attach, cancel, sessions
 *   status.c  status;  export.c  export, best, tasks;  token.c  token */
#ifndef KTUNE_CLI_H
#define KTUNE_CLI_H

#include <jansson.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "common/addr.h"
#include "common/auth.h"
#include "common/task.h"
#include "proto/ktune.pb-c.h"

/* Exit codes (README.md, "Exit status"). */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

typedef struct {
  int fd;
  uint32_t heartbeat_ms;
  uint32_t silence_ms;   /* the tracker's liveness timeout (Welcome) */
  uint64_t last_tx_ms, last_rx_ms;
  const char *addr;
  auth_stream mac;
  int refused;           /* the last failure was an Error message from the tracker */
  /* When set and nonzero (a signal handler's flag), client_recv gives up
   * waiting and sets interrupted. */
  volatile sig_atomic_t *stop;
  int interrupted;
} client;

/* Where a command dials and how it logs in. */
typedef struct {
  const char *tracker;     /* HOST:PORT; NULL until cli_dial_settle finds one */
  const char *token_file;  /* --token-file; NULL: KTUNE_TOKEN, else KTUNE_TOKEN_FILE */
} cli_dial;

/* --tracker and --token-file, for the option table of every command that
 * dials; their getopt_long values lie above any short option's. */
enum { CLI_OPT_TRACKER = 1000, CLI_OPT_TOKEN_FILE };
#define CLI_DIAL_OPTIONS                                      \
  {"tracker", required_argument, 0, CLI_OPT_TRACKER},         \
  {"token-file", required_argument, 0, CLI_OPT_TOKEN_FILE}
#define CLI_DIAL_USAGE "[--tracker HOST:PORT] [--token-file PATH]"
/* Their --help lines, for the commands that dial the default tracker. */
#define CLI_DIAL_HELP                                                                   \
  "  --tracker HOST:PORT  the tracker (default: KTUNE_TRACKER, else\n"                    \
  "                       " ADDR_DEFAULT_TRACKER ")\n"                                      \
  "  --token-file PATH    your token for a farm with tokens (default: KTUNE_TOKEN,\n"     \
  "                       else the file KTUNE_TOKEN_FILE names; none)\n"

/* Records the value of CLI_OPT_TRACKER or CLI_OPT_TOKEN_FILE. */
void cli_dial_option(cli_dial *d, int ch, const char *arg);
/* Settles d->tracker: --tracker, else KTUNE_TRACKER, else fallback (may
 * be NULL), and checks its HOST:PORT syntax before anything else happens.
 * Prints "ktune CMD: ..." naming the bad part and returns -1 when it is
 * wrong (a usage error). */
int cli_dial_settle(cli_dial *d, const char *cmd, const char *fallback);
/* The tracker's default address on this machine. */
#define CLI_LOCAL_TRACKER ADDR_DEFAULT_TRACKER

/* Connects, says Hello as a client (logging in with the token of
 * d->token_file, else KTUNE_TOKEN, else the file KTUNE_TOKEN_FILE names,
 * when there is one) and waits for Welcome. Warns on stderr when others
 * can read the token file. */
int client_connect(client *c, const cli_dial *d, char *err, size_t errlen);
/* err (may be NULL) says why a send failed, in words: a tracker that
 * closed the connection is not an errno. */
int client_send(client *c, const Ktune__Envelope *env, char *err, size_t errlen);
/* Waits up to timeout_ms (-1: as long as the tracker is alive) for the
 * next message that is not a heartbeat, sending heartbeats meanwhile. NULL
 * with err set on a closed connection, timeout, a tracker silent for
 * longer than its own liveness timeout, or an Error message from it (then
 * c->refused is set). */
Ktune__Envelope *client_recv(client *c, int timeout_ms, char *err, size_t errlen);
/* The same, but it also watches fd (when >= 0): NULL with *ready set and
 * no error as soon as fd can be read (or is at its end) while the
 * tracker has nothing to say. */
Ktune__Envelope *client_recv_or(client *c, int fd, int *ready, int timeout_ms, char *err,
                                size_t errlen);
/* Sends env and waits up to timeout_ms for the answer, as client_recv. */
Ktune__Envelope *client_ask(client *c, const Ktune__Envelope *env, int timeout_ms, char *err,
                            size_t errlen);
void client_close(client *c);

/* Parses a whole number from 0 to max in base (0: 10, or 16 after 0x):
 * digits only, so no sign, no blanks and nothing after. */
int cli_parse_u64(const char *s, int base, uint64_t max, uint64_t *out);
/* A device key or a name: 1 to CLI_KEY_MAX printable characters without
 * spaces, as the tracker requires. 0 when it is one; else says so, naming
 * what (an option or argument). */
#define CLI_KEY_MAX 63
int cli_check_label(const char *cmd, const char *what, const char *key);
#define cli_check_key(cmd, key) cli_check_label(cmd, "--key", key)

typedef struct {
  pid_t tracker, builder, runner;
  char dir[256];      /* private folder: port file and logs */
  char addr[80];      /* where the tracker listens */
} farm;

/* Starts a tracker on an ephemeral loopback port writing db_path, one
 * builder and one runner with key "local", and waits for the two to
 * connect, up to FARM_AGENTS_MS. */
#define FARM_AGENTS_MS 5000
int farm_start(farm *f, const char *db_path, const char *replay, char *err, size_t errlen);
/* Stops all three (runner and builder first, then the tracker, which
 * commits). Prints the farm's log when show_log is set. */
void farm_stop(farm *f, int show_log);

/* What the commands that submit a session (tune, measure) share. */
typedef struct {
  const char *task_arg;
  char **defines;
  size_t ndefines;
  const char *key, *strategy, *compiler, *db, *replay;
  uint64_t resume;
  cli_dial dial;
  uint32_t trials, batch, priority, wait_timeout_ms;
  uint32_t confirm;        /* tune: configs measured again at the end */
  const char *workload;    /* tune --workload: the batch's JSON tag, or NULL */
  Ktune__Timing timing;    /* 0: the tracker fills in the default */
  int remeasure;
  uint64_t seed;
  int seed_set, check, detach, verbose;
  FILE *json;              /* tune --json: where the summary goes (the real stdout) */
} cli_session_opts;

/* The defaults; defines gets room for argc of them. */
void cli_session_defaults(cli_session_opts *o, int argc);
void cli_session_opts_free(cli_session_opts *o);
/* The options they share, for getopt_long; with --help and the timing
 * options (common/timing.c) appended after a command's own (at most 16)
 * by cli_session_longopts (ends with a zero entry; one table a process). */
enum { CLI_OPT_KEY = 1010, CLI_OPT_COMPILER, CLI_OPT_DB, CLI_OPT_NOCHECK, CLI_OPT_REMEASURE,
       CLI_OPT_PRIO, CLI_OPT_WAITTO };
#define CLI_SESSION_OPTIONS                                                               \
  CLI_DIAL_OPTIONS, {"key", required_argument, 0, CLI_OPT_KEY},                         \
  {"compiler", required_argument, 0, CLI_OPT_COMPILER},                                 \
  {"db", required_argument, 0, CLI_OPT_DB}, {"no-check", no_argument, 0, CLI_OPT_NOCHECK}, \
  {"remeasure", no_argument, 0, CLI_OPT_REMEASURE},                                     \
  {"priority", required_argument, 0, CLI_OPT_PRIO},                                     \
  {"wait-timeout", required_argument, 0, CLI_OPT_WAITTO}
struct option;
const struct option *cli_session_longopts(const struct option *own, size_t n);
/* Takes getopt_long's ch (and -D) when it is a shared option: 1; 0 when
 * it is not one; -1 after saying "ktune CMD: ..." what is wrong. */
int cli_session_option(cli_session_opts *o, const char *cmd, int ch, const char *arg);
/* The options' checks before anything starts: -1 after saying why. */
int cli_session_check(cli_session_opts *o, const char *cmd);
/* --help: the synopsis (the shared options, then own, a NULL-ended list
 * such as "[--trials N]"), and the shared options' lines. */
void cli_session_usage(FILE *f, const char *cmd, const char *const own[]);
void cli_session_help(FILE *f);
/* A whole number from min to max, or "ktune CMD: OPT takes ...". */
int cli_parse_u32(const char *cmd, const char *opt, const char *s, uint32_t min, uint32_t max,
                  uint32_t *out);

/* Loads o->task_arg (a built-in name or a spec file) with the -D
 * constants, and checks it; -1 after saying why. */
int cli_session_task(const char *cmd, const cli_session_opts *o, task_spec *t);
/* Runs fn against o's tracker (shared 1; --key is required there) or a
 * private local farm writing o->db (shared 0; key "local"), whose address
 * is said on `say`. Returns fn's exit code, or the farm's failure. */
typedef int (*cli_session_fn)(void *ctx, const cli_dial *d, int shared);
int cli_session_run(const char *cmd, cli_session_opts *o, FILE *say, cli_session_fn fn,
                    void *ctx);
/* Connects to d and submits a session of o and t (NULL: o->resume's);
 * returns the tracker's SessionAccepted envelope with c connected, or NULL
 * with c closed after saying why, and *rc the exit code (EXIT_USAGE for a
 * refusal). */
Ktune__Envelope *cli_session_submit(const char *cmd, const cli_session_opts *o,
                                    const cli_dial *d, const task_spec *t, client *c, int *rc);

int cmd_tune(int argc, char **argv);
int cmd_measure(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_best(int argc, char **argv);
int cmd_tasks(int argc, char **argv);
int cmd_wait(int argc, char **argv);
int cmd_attach(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_sessions(int argc, char **argv);
int cmd_token(int argc, char **argv);

/* Prints a session's progress until it ends (only the final line with
 * CLI_FOLLOW_QUIET; the search's time too with CLI_FOLLOW_VERBOSE);
 * returns the exit code: 0 when it ended done with a result, or
 * CLI_INTERRUPTED when c->stop cut the wait short. With final, the
 * envelope of the last progress is left there (free with wire_free;
 * NULL when none came). */
#define CLI_INTERRUPTED (-4)
#define CLI_FOLLOW_QUIET 1
#define CLI_FOLLOW_VERBOSE 2
#define CLI_FOLLOW_SILENT 4 /* not even the final lines: the caller says what counts */
int cli_follow(client *c, uint64_t id, int how, Ktune__Envelope **final);

/* --json pieces: a session's best (config, latency_s, gflops, gbps,
 * confirmed_latency_s, confirmed) or null, and its failures added to a
 * {status: count} object. */
json_t *cli_best_json(const Ktune__SessionProgress *p);
void cli_add_failures(json_t *failures, const Ktune__SessionProgress *p);

/* Asks a tracker for its status; *reply is freed with wire_free. */
/* The tracker's status: max_rows agents and sessions at most, 0 for all
 * (StatusRequest.max_rows). */
int cli_fetch_status(const cli_dial *d, uint32_t max_rows, Ktune__Envelope **reply, char *err,
                     size_t errlen);
void cli_print_sessions(const Ktune__StatusReply *r);

/* Parses -D NAME=VALUE. */
int cli_parse_define(const char *s, char *name, size_t namelen, int64_t *value);

#endif
