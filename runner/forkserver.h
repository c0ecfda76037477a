/* The runner's fork server: one clean helper process (this same program
 * with --fork-server, exec'd without the agent's token, loop or threads)
 * that forks the measuring child of every trial, so that a trial costs a
 * fork instead of an exec, a dynamic link and a set-up.
 *
 *   runner (libuv agent)
 *    └─ fork server: single-threaded, its own session; dies with the runner
 *       └─ measuring child: its own session and group; dies with the server
 *
 * They talk over a unix socketpair, fixed-size messages, one trial at a
 * time. The runner sends a trial with its fds (the job frame, the result
 * pipe, the reference image); the server forks, says the child's pid,
 * and after reaping it, its wait status. A kill request makes the server
 * kill the child's process group: only the server reaps the child, so
 * only it can do that without hitting a recycled pid. The server never
 * reads a job: untrusted bytes reach only the child, which closes every
 * other fd of the server's (the control socket) before measuring.
 *
 * The runner starts a new server whenever one dies (at once, or with the
 * next trial if it died while starting); a trial in flight then fails as
 * the runner's fault (failed), never the kernel's. */
#ifndef KTUNE_FORKSERVER_H
#define KTUNE_FORKSERVER_H

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "runner/measure.h"

/* ---- in the fork server process ---- */

/* The server's fd for its control socket (ktune-runner --fork-server). */
#define FORKSERVER_FD 3

/* Serves the runner whose pid is parent on sock until the runner closes
 * it; every child measures with mo. Returns the exit status. */
int forkserver_main(int sock, pid_t parent, const measure_opts *mo);

/* ---- in the runner ---- */

typedef struct forkserver forkserver;

typedef struct {
  const char *exe;       /* this program */
  int cpu;               /* -1: not pinned */
  uint64_t mem_limit_mb;
  const char *dump_dir;  /* or NULL */
  const char *sandbox_off; /* --sandbox-off's list for the server, or NULL */
} forkserver_opts;

/* What becomes of a trial: started (maybe), then exactly one of ended
 * (the child was reaped) or failed (the server could not fork, or died or
 * misbehaved: the runner's fault). From the loop, never from inside
 * forkserver_trial. */
typedef struct {
  void (*started)(void *data, pid_t pid);
  void (*ended)(void *data, int wait_status);
  void (*failed)(void *data, const char *why);
} forkserver_events;

/* Starts the server. 0, or a negative code with the reason in err. */
int forkserver_new(uv_loop_t *loop, const forkserver_opts *o, forkserver **out, char *err,
                   size_t errlen);

/* Asks for a child that reads the job frame from job_fd, writes its
 * result to out_fd and maps the reference image ref_fd (-1: none). The
 * fds stay the caller's. 0 and ev comes later; or a negative code with
 * the reason in err (no server and none could be started) and it never
 * comes. One trial at a time. */
int forkserver_trial(forkserver *fs, uint64_t job_id, int job_fd, int out_fd, int ref_fd,
                     const forkserver_events *ev, void *data, char *err, size_t errlen);

/* Kills the trial's child and its group; ended (or failed) still comes. */
void forkserver_kill(forkserver *fs);

/* Ends the server, even with a trial in flight (whose event never comes),
 * and frees; the loop must run once more to close its handles. */
void forkserver_free(forkserver *fs);

#endif
