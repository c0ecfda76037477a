#include "runner/supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/frame.h"
#include "common/log.h"
#include "common/timing.h"
#include "common/wire.h"

#define WHO "runner"
/* A child's error text beyond this is cut: it came from untrusted code. */
#define SUPERVISE_ERROR_MAX 2048
/* After the exit, how long the result pipe may stay open. */
#define SUPERVISE_EXIT_GRACE_MS 500

/* The libuv handles of a job; the close callback that clears the last
 * one frees it. */
enum { H_TIMER = 1, H_OUT = 2 };

struct supervise_job {
  refcache *refs;
  forkserver *fs;
  uint64_t job_id;
  uint32_t repeat;
  uint32_t limit_ms;
  uv_timer_t timer;         /* the deadline, then the grace after the exit */
  uv_pipe_t out;            /* the child's stdout */
  unsigned open;            /* H_* not yet closed */
  frame_reader rd;
  Ktune__RunResult *result; /* what the child said, if anything */
  char *ref_key;            /* the job's reference cache key, or NULL */
  int ref_fd;               /* image given to the child, or -1 */
  int ref_blank;            /* ref_fd is ours: a blank the child fills */
  uint64_t ref_total;
  int started, ended, eof, timed_out, finished;
  int wait_status;          /* once ended */
  char fault[512];          /* the runner's fault: no child, or its server failed */
  char rbuf[8192];
  supervise_done_fn done;
  void *data;
};

uint64_t supervise_job_id(const supervise_job *j) { return j->job_id; }

void supervise_kill(supervise_job *j) {
  if (!j->ended && !j->finished) forkserver_kill(j->fs);
}

/* The child's result came from a process that ran untrusted code: pass on
 * only what a measuring child can honestly say. */
static const char *supervise_problem(const supervise_job *j, Ktune__RunResult *res) {
  if (!wire_status_by(res->status, WIRE_BY_CHILD)) return "unknown status";
  if (res->error && strlen(res->error) > SUPERVISE_ERROR_MAX) res->error[SUPERVISE_ERROR_MAX] = '\0';
  if (res->status != WIRE_TRIAL(OK)) return NULL;
  if (res->n_costs_s != j->repeat || res->number == 0) return "wrong number of rounds";
  for (size_t i = 0; i < res->n_costs_s; i++)
    if (!isfinite(res->costs_s[i]) || res->costs_s[i] < 0) return "a cost that is not a time";
  return NULL;
}

static void supervise_signal(int sig, char *why, size_t len) {
  if (sig == SIGSYS)
    snprintf(why, len, "sandbox: the measuring process was killed for a forbidden system call (SIGSYS)");
  else if (sig == SIGKILL)
    snprintf(why, len, "the measuring process was killed by SIGKILL, not by this runner "
                       "(out of memory? the system's OOM killer does this)");
  else
    snprintf(why, len, "kernel crashed: SIG%s (%s)", sigabbrev_np(sig) ? sigabbrev_np(sig) : "?",
             sigdescr_np(sig) ? sigdescr_np(sig) : "unknown signal");
}

static void supervise_closed(uv_handle_t *h) {
  supervise_job *j = h->data;
  j->open &= h == (uv_handle_t *)&j->timer ? ~(unsigned)H_TIMER : ~(unsigned)H_OUT;
  if (j->open) return;
  frame_reader_free(&j->rd);
  free(j->ref_key);
  if (j->ref_blank && j->ref_fd >= 0) close(j->ref_fd);
  if (j->result) ktune__run_result__free_unpacked(j->result, NULL);
  free(j);
}

/* Classifies how the trial ended. A fault of the fork server is the
 * runner's, whatever the kernel did: the tracker gives the job to a
 * runner again. */
static Ktune__TrialStatus supervise_status(supervise_job *j, char *why, size_t len) {
  const char *bad = j->result && !j->timed_out ? supervise_problem(j, j->result) : NULL;
  if (j->fault[0]) {
    snprintf(why, len, "%s", j->fault);
    return WIRE_TRIAL(RUNNER_ERROR);
  }
  if (j->timed_out) {
    snprintf(why, len,
             "no result within %" PRIu32 " ms; the kernel was killed with its process group",
             j->limit_ms);
    return WIRE_TRIAL(RUN_TIMEOUT);
  }
  if (j->result && bad) {
    snprintf(why, len, "the measuring process sent a malformed result (%s)", bad);
    return WIRE_TRIAL(RUNTIME_ERROR);
  }
  if (j->result) return KTUNE__TRIAL_STATUS__TRIAL_STATUS_UNSET;
  if (WIFSIGNALED(j->wait_status)) supervise_signal(WTERMSIG(j->wait_status), why, len);
  else
    snprintf(why, len, "measuring process exited with status %d and no result",
             WEXITSTATUS(j->wait_status));
  return WIRE_TRIAL(RUNTIME_ERROR);
}

/* The child is reaped and its stdout drained, or its server failed it:
 * classify, report, and let go of the handles. */
static void supervise_finish(supervise_job *j) {
  if (j->finished) return;
  j->finished = 1;
  uv_timer_stop(&j->timer);
  char why[512];
  why[0] = '\0';
  Ktune__TrialStatus status = supervise_status(j, why, sizeof why);
  /* The reference is good whatever the kernel did after it ran; a child
   * that may still hold it mapped cannot be sealed out (refcache_adopt). */
  if (j->ref_blank && j->ref_fd >= 0 && j->started) {
    if (refcache_adopt(j->refs, j->ref_key, j->ref_fd, j->ref_total))
      log_debug(WHO, "reference cached (%" PRIu64 " bytes)", j->ref_total);
    j->ref_fd = -1;
  }
  j->done(j->data, j->job_id, status, why, status ? NULL : j->result);
  uv_close((uv_handle_t *)&j->timer, supervise_closed);
  if (j->open & H_OUT) uv_close((uv_handle_t *)&j->out, supervise_closed);
}

static void supervise_on_timer(uv_timer_t *t) {
  supervise_job *j = t->data;
  if (j->fault[0] || j->ended) {
    supervise_finish(j); /* no child, or its output still open after the grace */
  } else if (!j->timed_out) {
    j->timed_out = 1;
    forkserver_kill(j->fs); /* ended or failed follows */
  }
}

static void supervise_started(void *data, pid_t pid) {
  supervise_job *j = data;
  j->started = 1;
  log_debug(WHO, "job %" PRIu64 ": measuring process %d", j->job_id, (int)pid);
}

static void supervise_exited(void *data, int wait_status) {
  supervise_job *j = data;
  j->ended = 1;
  j->wait_status = wait_status;
  if (j->eof) supervise_finish(j);
  else uv_timer_start(&j->timer, supervise_on_timer, SUPERVISE_EXIT_GRACE_MS, 0);
}

static void supervise_failed(void *data, const char *why) {
  supervise_job *j = data;
  snprintf(j->fault, sizeof j->fault, "%s", why);
  supervise_finish(j);
}

static const forkserver_events supervise_events = {supervise_started, supervise_exited,
                                                   supervise_failed};

static void supervise_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  supervise_job *j = h->data;
  *buf = uv_buf_init(j->rbuf, sizeof j->rbuf);
}

/* The child's stdout: one RunResult frame; anything after it is ignored. */
static void supervise_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  supervise_job *j = st->data;
  if (n < 0) {
    uv_read_stop(st);
    j->eof = 1;
    if (j->ended) supervise_finish(j);
    return;
  }
  if (n == 0 || j->result) return;
  frame_reader_feed(&j->rd, buf->base, (size_t)n);
  const uint8_t *p;
  uint32_t len;
  if (frame_reader_next(&j->rd, &p, &len) != 1) return;
  Ktune__Envelope *env = wire_unpack(p, len);
  if (env && env->msg_case == KTUNE__ENVELOPE__MSG_RUN_RESULT) {
    j->result = env->run_result;
    env->run_result = NULL;
    env->msg_case = KTUNE__ENVELOPE__MSG__NOT_SET;
  }
  wire_free(env);
}

/* Picks the reference image for the child: the cached one, or a blank to
 * fill. Without one the child computes the reference privately. */
static void supervise_reference(supervise_job *j, const Ktune__RunJob *job) {
  j->ref_fd = -1;
  uint64_t off[8];
  if (job->n_buffers > sizeof off / sizeof off[0]) return;
  j->ref_key = refcache_key(job);
  if (!j->ref_key || refcache_layout(job, off, &j->ref_total) < 0) return;
  j->ref_fd = refcache_find(j->refs, j->ref_key);
  if (j->ref_fd < 0) {
    j->ref_fd = refcache_blank();
    j->ref_blank = j->ref_fd >= 0;
  }
}

/* The time a trial may take (the tracker's deadline is the same plus
 * its grace), within what a libuv timer takes. */
static uint32_t supervise_limit_ms(const Ktune__Timing *tm) {
  uint64_t ms = timing_limit_ms(tm);
  return ms > UINT32_MAX / 2 ? UINT32_MAX / 2 : (uint32_t)ms;
}

/* The job frame in a memfd, read from the start: the child's fd 0; or -1
 * with the reason in j->fault. */
static int supervise_job_fd(supervise_job *j, const Ktune__RunJob *job) {
  int fd = memfd_create("ktune-job", MFD_CLOEXEC);
  if (fd < 0) {
    snprintf(j->fault, sizeof j->fault, "cannot start the measuring process: memfd_create: %s",
             strerror(errno));
    return -1;
  }
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_RUN_JOB, (void *)job);
  int rc = wire_write_fd(fd, &env);
  if (rc < 0 || lseek(fd, 0, SEEK_SET) != 0) {
    int err = errno;
    close(fd);
    snprintf(j->fault, sizeof j->fault, "cannot start the measuring process: writing the job: %s",
             strerror(err));
    return -1;
  }
  return fd;
}

/* Hands the job to the fork server with the child's fds; on failure the
 * reason is in j->fault. */
static void supervise_fork(supervise_job *j, uv_loop_t *loop, int job_fd) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) < 0) {
    snprintf(j->fault, sizeof j->fault, "cannot start the measuring process: pipe: %s",
             strerror(errno));
    return;
  }
  uv_pipe_init(loop, &j->out, 0);
  j->out.data = j;
  j->open |= H_OUT;
  uv_pipe_open(&j->out, out[0]);
  forkserver_trial(j->fs, j->job_id, job_fd, out[1], j->ref_fd, &supervise_events, j, j->fault,
                   sizeof j->fault);
  /* The child has its own copy now; ours would hide its end of output. */
  close(out[1]);
  if (!j->fault[0]) uv_read_start((uv_stream_t *)&j->out, supervise_alloc, supervise_read);
}

int supervise_start(uv_loop_t *loop, const supervise_opts *o, const Ktune__RunJob *job,
                    const Ktune__Timing *tm, supervise_done_fn done, void *data,
                    supervise_job **out) {
  supervise_job *j = calloc(1, sizeof *j);
  if (!j) return -ENOMEM;
  j->refs = o->refs;
  j->fs = o->fs;
  j->job_id = job->job_id;
  j->repeat = tm->repeat;
  j->limit_ms = supervise_limit_ms(tm);
  j->done = done;
  j->data = data;
  j->ref_fd = -1;
  frame_reader_init(&j->rd, FRAME_MAX_DEFAULT);
  int job_fd = supervise_job_fd(j, job);
  uv_timer_init(loop, &j->timer);
  j->timer.data = j;
  j->open = H_TIMER;
  if (job_fd >= 0) {
    supervise_reference(j, job);
    supervise_fork(j, loop, job_fd);
    close(job_fd);
  }
  /* done comes from the loop, never inside supervise_start. */
  uv_timer_start(&j->timer, supervise_on_timer, j->fault[0] ? 0 : j->limit_ms, 0);
  *out = j;
  return 0;
}
