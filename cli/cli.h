/* The ktune command: one file per group of subcommands.
 *   client.c  a blocking connection to a tracker (the CLI waits on one
 *             thing at a time, so it needs no event loop)
 *   farm.c    the private local farm behind `ktune tune` without --tracker
 *   tune.c    tune and following a session
 *   sessions.c  wait, attach, cancel, sessions
 *   status.c  status;  export.c  export, best, tasks */
#ifndef KTUNE_CLI_H
#define KTUNE_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/auth.h"
#include "proto/ktune.pb-c.h"

/* Exit codes (DESIGN.md). */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

typedef struct {
  int fd;
  uint32_t heartbeat_ms;
  uint32_t silence_ms;   /* the tracker's liveness timeout (Welcome) */
  uint64_t last_tx_ms, last_rx_ms;
  const char *addr;
  auth_stream mac;
} client;

/* Connects, says Hello as a client (logging in with KTUNE_TOKEN or the
 * file KTUNE_TOKEN_FILE names, when set) and waits for Welcome. */
int client_connect(client *c, const char *tracker, char *err, size_t errlen);
int client_send(client *c, const Ktune__Envelope *env);
/* Waits up to timeout_ms (-1: as long as the tracker is alive) for the
 * next message that is not a heartbeat, sending heartbeats meanwhile. NULL
 * with err set on a closed connection, timeout, a tracker silent for
 * longer than its own liveness timeout, or an Error message from it. */
Ktune__Envelope *client_recv(client *c, int timeout_ms, char *err, size_t errlen);
void client_close(client *c);

/* --tracker, else KTUNE_TRACKER, else NULL. */
const char *cli_tracker(const char *opt);
/* The same, else the tracker's default address on this machine. */
const char *cli_tracker_or_local(const char *opt);

typedef struct {
  pid_t tracker, builder, runner;
  char dir[256];      /* private folder: port file and logs */
  char addr[80];      /* where the tracker listens */
} farm;

/* Starts a tracker on an ephemeral loopback port writing db_path, one
 * builder and one runner with key "local". */
int farm_start(farm *f, const char *db_path, char *err, size_t errlen);
/* Stops all three (runner and builder first, then the tracker, which
 * commits). Prints the farm's log when show_log is set. */
void farm_stop(farm *f, int show_log);

int cmd_tune(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_best(int argc, char **argv);
int cmd_tasks(int argc, char **argv);
int cmd_wait(int argc, char **argv);
int cmd_attach(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_sessions(int argc, char **argv);

/* Prints a session's progress until it ends (only the final line when
 * quiet); returns the exit code: 0 when it ended done with a result. */
int cli_follow(client *c, uint64_t id, int quiet);

/* Asks a tracker for its status; *reply is freed with wire_free. */
int cli_fetch_status(const char *tracker, Ktune__Envelope **reply, char *err, size_t errlen);
void cli_print_sessions(const Ktune__StatusReply *r);

/* Parses -D NAME=VALUE. */
int cli_parse_define(const char *s, char *name, size_t namelen, int64_t *value);

#endif
