/* The measuring child of one job: this same program with --measure, a
 * supervised child (common/child.h: its own process group, parent-death
 * kill, a deadline), given the job on stdin and the reference image at
 * fd 3; its result comes back as one frame on stdout. What the child says
 * is checked and its end classified (RUN_TIMEOUT, a crash, a malformed
 * result), and a reference it computed goes to the cache. */
#ifndef KTUNE_SUPERVISE_H
#define KTUNE_SUPERVISE_H

#include <stdint.h>
#include <uv.h>

#include "proto/ktune.pb-c.h"
#include "runner/refcache.h"

typedef struct {
  const char *exe;       /* this program */
  int cpu;               /* -1: not pinned */
  uint64_t mem_limit_mb;
  const char *dump_dir;  /* or NULL */
  refcache *refs;        /* outlives every job */
} supervise_opts;

typedef struct supervise_job supervise_job;

/* The job's end: with status UNSET, res is what the child measured;
 * otherwise the failure, and error says why. Called once, from the loop;
 * the job is gone after it. */
typedef void (*supervise_done_fn)(void *data, uint64_t job_id, Ktune__TrialStatus status,
                                  const char *error, const Ktune__RunResult *res);

/* Starts job with its filled timing tm. 0, and done comes later; or a
 * negative code (no memory) and it never comes. */
int supervise_start(uv_loop_t *loop, const supervise_opts *o, const Ktune__RunJob *job,
                    const Ktune__Timing *tm, supervise_done_fn done, void *data,
                    supervise_job **out);

/* Kills the child and all it started; done still comes. */
void supervise_kill(supervise_job *j);

uint64_t supervise_job_id(const supervise_job *j);

#endif
