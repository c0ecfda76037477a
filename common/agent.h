/* The agent side of a tracker connection, shared by builders and runners:
 * dial the tracker, say Hello, keep heartbeats going, and dial again with
 * backoff whenever the connection is lost. Agents never listen. */
#ifndef KTUNE_AGENT_H
#define KTUNE_AGENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "proto/ktune.pb-c.h"

typedef struct agent agent;

typedef struct {
  /* Role-specific messages (jobs, acks). */
  void (*on_message)(agent *a, Ktune__Envelope *env);
  /* The connection is gone: forget leased work, the tracker requeues it. */
  void (*on_disconnect)(agent *a);
} agent_ops;

typedef struct {
  const char *who;           /* log prefix: "builder", "runner" */
  const char *tracker;       /* HOST:PORT */
  Ktune__Role role;
  const char *name;
  const char *key;
  const char *arch;
  const char **backends;
  size_t nbackends;
  uint32_t slots;
  /* Device identity (runners) and what a builder can make. Optional. */
  const char *cpu_model;
  uint32_t cores;
  const char *kernel;
  const char *governor;
  const char *sandbox_off; /* runners: the sandbox parts it measures without */
  const char **archs;
  size_t narchs;
  /* The agent's token (KTUNE_TOKEN or a file), or NULL. With a token the
   * agent works only for a tracker that proves it holds the same one. */
  const char *token;
  /* Optional: called after each Welcome, once agent_send works again. */
  void (*on_welcome)(agent *a);
  /* Optional: the tracker refused this agent's login again and again; the
   * program should stop (agent_stop) and exit non-zero. Without it the
   * agent just stops. */
  void (*on_give_up)(agent *a);
} agent_config;

int agent_new(uv_loop_t *loop, const agent_config *cfg, const agent_ops *ops, void *data,
              agent **out, char *err, size_t errlen);
/* Sends to the tracker; -1 when not connected (the work is lost and the
 * tracker requeues it). */
int agent_send(agent *a, const Ktune__Envelope *env);
void *agent_data(agent *a);

/* Runners: the job still being measured from an earlier connection, put
 * in every later Hello (Hello.holding); 0 for none. */
void agent_set_holding(agent *a, uint64_t job_id);
/* Closes the connection and every handle; the loop can then end. */
void agent_stop(agent *a);
/* Draining: tells the tracker to send no more work (the agent finishes
 * what it holds), and later stops once what it sent has been written, or
 * after 5 s at most. */
void agent_goodbye(agent *a);
void agent_stop_flushed(agent *a);

/* Fills a default agent name: HOSTNAME-PID. */
void agent_default_name(char *buf, size_t len);

/* ---- a builder's or a runner's main ---- */

/* What agent_main asks of the program's role. */
typedef struct {
  /* The work under way, named for the log ("job 7", "2 build(s)"); 0
   * when there is none. */
  int (*busy)(void *data, char *what, size_t len);
  /* Leave at once, abandoning the work: 0 when the agent may stop now, 1
   * when the program calls agent_idle once its work is gone. */
  int (*stop_now)(void *data);
} agent_role;

/* Reads the token (token_file, else KTUNE_TOKEN or KTUNE_TOKEN_FILE) and
 * removes those variables: the children an agent starts inherit its
 * environment and run untrusted code. 1 with a token, 0 without, -1
 * after saying why on stderr, as prog. */
int agent_token(const char *prog, const char *token_file, char *token, size_t len);

/* Serves the tracker until the program leaves: connects (cfg.on_give_up
 * is agent_main's own), and handles signals. SIGTERM drains: Goodbye, no
 * new work, what is held is finished, then the agent leaves; with nothing
 * held, or at a second SIGTERM or a SIGINT, it leaves at once. *out is
 * the agent, set before the loop runs and valid until agent_main returns.
 * Returns the exit status: 0, or 2 when the tracker kept refusing the
 * login or the configuration is wrong (said on stderr, as prog). */
int agent_main(uv_loop_t *loop, const char *prog, const agent_config *cfg, const agent_ops *ops,
               const agent_role *role, void *data, agent **out);

/* The program's work is done (finished, as "job finished", for the log):
 * a draining or leaving agent stops now; otherwise nothing happens. */
void agent_idle(agent *a, const char *finished);

#endif
