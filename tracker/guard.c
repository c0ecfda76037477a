/* Trust in agents. Tokens say who an agent is, not that its reports are
 * true: a board in a shared farm may belong to someone else. An agent can
 * report only what its role can produce, numbers a clock can measure, and
 * text of bounded size; an agent that breaks jobs faster than any kernel
 * could is quarantined. Records are kept by agent name, so reconnecting
 * wipes nothing. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/timing.h"
#include "common/wire.h"
#include "tracker/tracker.h"

#define WHO "tracker"
#define STRIKES 3
#define STRIKE_WINDOW_MS 60000
#define QUARANTINE_MS 10000
#define QUARANTINE_MAX_MS (10u * 60u * 1000u)
#define MAX_RECORDS 4096
/* CLOCK_MONOTONIC counts nanoseconds: one call cannot take less than a
 * tick spread over the calls of a round. */
#define CLOCK_RESOLUTION_S 1e-9

agent_record *guard_record(tracker *t, const char *name, int role) {
  for (agent_record *r = t->records; r; r = r->next)
    if (r->role == role && strcmp(r->name, name) == 0) return r;
  if (t->nrecords >= MAX_RECORDS) {
    /* Names are chosen by peers: forget one with a clean slate first. */
    for (agent_record **pp = &t->records; *pp; pp = &(*pp)->next) {
      agent_record *r = *pp;
      if (!r->strikes && !r->quarantines && !r->loss_streak) {
        *pp = r->next;
        free(r);
        t->nrecords--;
        break;
      }
    }
    if (t->nrecords >= MAX_RECORDS) return NULL;
  }
  agent_record *r = calloc(1, sizeof(*r));
  if (!r) return NULL;
  snprintf(r->name, sizeof(r->name), "%s", name);
  r->role = role;
  r->next = t->records;
  t->records = r;
  t->nrecords++;
  return r;
}

void guard_strike(tracker *t, agent_record *r, const char *fmt, ...) {
  char why[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  if (!r) return;
  log_warn(WHO, "%s %s: %s", wire_role_name((Ktune__Role)r->role), r->name, why);
  uint64_t now = uv_now(t->loop);
  if (!r->strikes || now - r->window_ms > STRIKE_WINDOW_MS) {
    r->strikes = 0;
    r->window_ms = now;
  }
  if (++r->strikes < STRIKES) return;
  uint64_t ms = (uint64_t)QUARANTINE_MS << (r->quarantines < 6 ? r->quarantines : 6);
  if (ms > QUARANTINE_MAX_MS) ms = QUARANTINE_MAX_MS;
  r->quarantines++;
  r->strikes = 0;
  r->until_ms = now + ms;
  t->tally_due = 1; /* its runners no longer count as ready */
  snprintf(r->reason, sizeof(r->reason), "%s", why);
  log_warn(WHO, "%s %s quarantined for %.0f s: %s", wire_role_name((Ktune__Role)r->role), r->name,
           ms / 1e3, why);
}

int guard_quarantined(tracker *t, const peer *p) {
  return p->rec && p->rec->until_ms > uv_now(t->loop);
}

void guard_describe(tracker *t, const peer *p, char *out, size_t len) {
  out[0] = 0;
  if (!guard_quarantined(t, p)) return;
  snprintf(out, len, "quarantined for %.0f s more: %s",
           (double)(p->rec->until_ms - uv_now(t->loop)) / 1e3, p->rec->reason);
}

int guard_runner_status(Ktune__TrialStatus status) {
  return wire_status_by(status, WIRE_BY_RUNNER);
}

int guard_builder_status(Ktune__TrialStatus status) {
  return wire_status_by(status, WIRE_BY_BUILDER);
}

int guard_plausible(tracker *t, const job *j, const Ktune__RunResult *r, char *why, size_t len) {
  const session *s = j->s;
  const Ktune__Timing *tm = &s->timing;
  if (r->n_costs_s != tm->repeat) {
    snprintf(why, len, "%zu costs for a job of %u rounds", r->n_costs_s, tm->repeat);
    return -1;
  }
  if (r->number == 0 || r->number > TIMING_MAX_GROWN_NUMBER ||
      (tm->min_repeat_ms == 0 && r->number != tm->number)) {
    snprintf(why, len, "%u calls per round for a job that asked for %u%s", r->number, tm->number,
             tm->min_repeat_ms ? " or more" : "");
    return -1;
  }
  double floor_s = CLOCK_RESOLUTION_S / r->number, sum = 0;
  for (size_t i = 0; i < r->n_costs_s; i++) {
    double c = r->costs_s[i];
    if (!isfinite(c) || c < floor_s) {
      snprintf(why, len, "a cost of %g s, below what the clock can measure over %u calls", c,
               r->number);
      return -1;
    }
    sum += c;
  }
  double mean = sum / (double)r->n_costs_s;
  if (!isfinite(mean) || mean <= 0) {
    snprintf(why, len, "costs whose mean is not a time");
    return -1;
  }
  double gflops = trial_gflops(s->flops, mean);
  if (gflops > t->opts.max_gflops) {
    snprintf(why, len, "%.3g GFLOPS, above the ceiling of %.3g (--max-gflops)", gflops,
             t->opts.max_gflops);
    return -1;
  }
  return 0;
}

void guard_free_all(tracker *t) {
  while (t->records) {
    agent_record *r = t->records;
    t->records = r->next;
    free(r);
  }
  t->nrecords = 0;
}
