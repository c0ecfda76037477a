/* A farm of real processes for integration tests: a tracker on an
 * ephemeral loopback port with a fresh history, builders and runners, and
 * the ktune command against it. */
#ifndef KTUNE_TEST_HARNESS_H
#define KTUNE_TEST_HARNESS_H

#include <jansson.h>
#include <sqlite3.h>
#include <sys/types.h>

#include "proto/ktune.pb-c.h"
#include "tests/integration/proc.h"

typedef struct {
  char dir[256];
  char db[300];
  char log[300];
  char addr[80];
  char http[80]; /* its HTTP side's address, after farm_start_http */
  pid_t tracker;
} farm;

/* Starts a tracker with a fresh history (listen NULL: an ephemeral port),
 * or restarts one on the same history and address. extra: more options. */
void farm_start(farm *f, char *const extra[]);
void farm_restart_tracker(farm *f, char *const extra[]);
/* A tokens file (mode 600) of these lines in a fresh folder; its path. */
void farm_tokens_file(char *path, size_t len, const char *lines);
/* farm_start with the HTTP side on an ephemeral loopback port (f->http). */
void farm_start_http(farm *f, char *const extra[]);
pid_t farm_runner(farm *f, const char *name, const char *key, const char *dump_dir);
/* A runner with more options after the usual ones (a NULL-ended list),
 * e.g. a hidden --test-fault MODE. */
pid_t farm_runner_args(farm *f, const char *name, const char *key, char *const extra[]);
pid_t farm_builder(farm *f, const char *name);
/* SIGTERM to the tracker; fails the test unless it exits 0. */
void farm_stop_tracker(farm *f);
void farm_print_log(const farm *f);

/* Runs `ktune ARGS... --tracker ADDR`; returns the exit code, output in out. */
int farm_ktune(farm *f, char *out, size_t outlen, int timeout_ms, char *const args[]);
/* `ktune tune ... --detach`: the session id. */
long farm_submit(farm *f, char *const args[]);

/* A socket listening on 127.0.0.1 at a free port, for a test that plays
 * the tracker; its "HOST:PORT" goes to addr. */
int farm_listen(char *addr, size_t len);
/* A raw TCP connection to the tracker, with a 5 s receive timeout. */
int farm_dial(const farm *f);
/* farm_dial, then hello h (version set here) to a tracker without
 * tokens, and its Welcome read: a peer played by hand. */
int farm_hello(const farm *f, Ktune__Hello *h);
/* SIGTERM to each agent given (0 or less: none), then to the tracker. */
void farm_stop_all(farm *f, pid_t a, pid_t b, pid_t c);

json_t *farm_status(farm *f);
/* The agent of that name in status, or NULL (borrowed from st). */
json_t *farm_agent(json_t *st, const char *name);
json_t *farm_session(json_t *st, long id);
void farm_wait_agent(farm *f, const char *name, int present);
/* Waits until the runner holds a job. */
void farm_wait_busy(farm *f, const char *name);
/* Waits until session id has at least n trials done. */
void farm_wait_trials(farm *f, long id, int n);
/* `ktune wait ID` within timeout_ms, its output in out; returns its exit
 * code (-1: timed out). */
int farm_wait(farm *f, long id, int timeout_ms, char *out, size_t outlen);

sqlite3 *farm_db(farm *f);
long long farm_query(sqlite3 *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
