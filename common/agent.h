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

#endif
