/* The tracker's metrics, in Prometheus's text exposition format (0.0.4;
 * docs/OPERATIONS.md, "Metrics and monitoring"). Counters and histograms
 * are fed by hooks where things happen; gauges (queues, agents, sessions,
 * memory) are read from the tracker's own state when scraped, so that
 * they cannot drift from it. A hook on the trial path costs a hash
 * lookup and an add: nothing is allocated once a key has its row, and
 * nothing is formatted until a scrape. The state lives in the tracker
 * (t->metrics); all zeroes is an empty, valid state. */
#ifndef KTUNE_TRACKER_METRICS_H
#define KTUNE_TRACKER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "proto/ktune.pb-c.h"

typedef struct tracker tracker;
typedef struct job job;
typedef struct peer peer;

/* Every histogram has these upper bounds, 100 us to 10 s; above the
 * last is +Inf. */
#define METRICS_BUCKETS 16
/* Trial statuses counted apart, by their code (common/wire.c). */
#define METRICS_STATUSES 16
/* Session states counted apart, by their code. */
#define METRICS_STATES 8

typedef struct {
  uint64_t n[METRICS_BUCKETS + 1]; /* observations per bucket, not cumulative */
  double sum;
} metrics_hist;

typedef struct metrics_key metrics_key;
typedef struct metrics_loss metrics_loss;

/* Why a job went back to the queue from an agent that held it. */
enum metrics_loss_reason { METRICS_LOST_DISCONNECTED, METRICS_LOST_DEADLINE };

typedef struct {
  metrics_key **keys;      /* open addressing by key: trials by status */
  size_t keys_cap, nkeys;
  metrics_key *spill;      /* trials of keys that found no memory for a row */
  metrics_loss *losses;    /* jobs lost, by key, agent and reason */
  uint64_t ended[METRICS_STATES]; /* sessions ended, by state */
  metrics_hist overhead, dispatch, commit;
} metrics;

/* A trial of a session of key is recorded (status: its code). */
void metrics_trial(tracker *t, const char *key, unsigned status);
/* A session that was queued or running ends in state. */
void metrics_session_ended(tracker *t, Ktune__SessionState state);
/* The history's transaction committed, taking ns nanoseconds. */
void metrics_commit(tracker *t, uint64_t ns);
/* Run job j was just leased to runner r. */
void metrics_dispatched(tracker *t, const job *j, const peer *r);
/* Runner r's accepted ok result for j (its lease already released). */
void metrics_run_result(tracker *t, const job *j, const Ktune__RunResult *r);
/* j (of a session) went back to the queue from p. */
void metrics_job_lost(tracker *t, const job *j, const peer *p, enum metrics_loss_reason why);

/* Every metric as Prometheus text: 0 and a malloc'd text (the caller
 * frees it) of *len bytes, NUL-terminated, or -ENOMEM. */
int metrics_render(tracker *t, char **text, size_t *len);
void metrics_free(tracker *t);

#endif
