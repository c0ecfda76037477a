/* The measuring child of one job, forked by the fork server
 * (runner/forkserver.h): its own session and process group, killed when
 * the server or the runner dies, given the job frame at fd 0 and the
 * reference image at fd 3; its result comes back as one frame on its
 * stdout, a pipe. What the child says is checked and its end classified
 * (RUN_TIMEOUT at the deadline, a crash, a malformed result; RUNNER_ERROR
 * when the fork server failed it), and a reference it computed goes to
 * the cache. */
#ifndef KTUNE_SUPERVISE_H
#define KTUNE_SUPERVISE_H

#include <stdint.h>
#include <uv.h>

#include "proto/ktune.pb-c.h"
#include "runner/forkserver.h"
#include "runner/refcache.h"

typedef struct {
  forkserver *fs;        /* forks the children; outlives every job */
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
