#include "runner/supervise.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/child.h"
#include "common/frame.h"
#include "common/log.h"
#include "common/timing.h"
#include "common/wire.h"

#define WHO "runner"
/* The child finds its reference image here. */
#define SUPERVISE_REF_FD 3
/* A child's error text beyond this is cut: it came from untrusted code. */
#define SUPERVISE_ERROR_MAX 2048

struct supervise_job {
  refcache *refs;
  uint64_t job_id;
  uint32_t repeat;
  uint32_t limit_ms;
  child *ch;
  frame_reader rd;
  Ktune__RunResult *result; /* what the child said, if anything */
  char *ref_key;            /* the job's reference cache key, or NULL */
  int ref_fd;               /* image given to the child, or -1 */
  int ref_blank;            /* ref_fd is ours: a blank the child fills */
  uint64_t ref_total;
  supervise_done_fn done;
  void *data;
};

uint64_t supervise_job_id(const supervise_job *j) { return j->job_id; }

void supervise_kill(supervise_job *j) { child_kill(j->ch); }

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

static void supervise_free(supervise_job *j) {
  frame_reader_free(&j->rd);
  free(j->ref_key);
  if (j->ref_blank && j->ref_fd >= 0) close(j->ref_fd);
  if (j->result) ktune__run_result__free_unpacked(j->result, NULL);
  free(j);
}

/* The child has exited and its stdout is drained: classify and report. */
static void supervise_ended(void *data, const child_result *cr) {
  supervise_job *j = data;
  char why[512];
  const char *bad = j->result && !cr->timed_out ? supervise_problem(j, j->result) : NULL;
  Ktune__TrialStatus status = WIRE_TRIAL(RUNTIME_ERROR);
  if (cr->spawn_error) {
    /* This runner's fault, not the kernel's: the tracker gives the job to
     * another runner. */
    status = WIRE_TRIAL(RUNNER_ERROR);
    snprintf(why, sizeof why, "cannot start the measuring process: %s",
             cr->spawn_msg[0] ? cr->spawn_msg : uv_strerror(cr->spawn_error));
  } else if (cr->timed_out) {
    status = WIRE_TRIAL(RUN_TIMEOUT);
    snprintf(why, sizeof why,
             "no result within %" PRIu32 " ms; the kernel was killed with its process group",
             j->limit_ms);
  } else if (j->result && bad) {
    snprintf(why, sizeof why, "the measuring process sent a malformed result (%s)", bad);
  } else if (j->result) {
    status = KTUNE__TRIAL_STATUS__TRIAL_STATUS_UNSET;
  } else if (cr->term_signal) {
    supervise_signal(cr->term_signal, why, sizeof why);
  } else {
    snprintf(why, sizeof why, "measuring process exited with status %lld and no result",
             (long long)cr->exit_status);
  }
  /* The reference is good whatever the kernel did after it ran. */
  if (j->ref_blank && j->ref_fd >= 0 && !cr->spawn_error) {
    if (refcache_adopt(j->refs, j->ref_key, j->ref_fd, j->ref_total))
      log_debug(WHO, "reference cached (%" PRIu64 " bytes)", j->ref_total);
    j->ref_fd = -1;
  }
  j->done(j->data, j->job_id, status, why, status ? NULL : j->result);
  supervise_free(j);
}

/* The child's stdout: one RunResult frame; anything after it is ignored. */
static void supervise_out(void *data, const char *buf, size_t n) {
  supervise_job *j = data;
  if (j->result) return;
  frame_reader_feed(&j->rd, buf, n);
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

int supervise_start(uv_loop_t *loop, const supervise_opts *o, const Ktune__RunJob *job,
                    const Ktune__Timing *tm, supervise_done_fn done, void *data,
                    supervise_job **out) {
  supervise_job *j = calloc(1, sizeof *j);
  if (!j) return -ENOMEM;
  j->refs = o->refs;
  j->job_id = job->job_id;
  j->repeat = tm->repeat;
  j->limit_ms = supervise_limit_ms(tm);
  j->done = done;
  j->data = data;
  frame_reader_init(&j->rd, FRAME_MAX_DEFAULT);
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_RUN_JOB, (void *)job);
  uint8_t *frame;
  size_t flen;
  if (wire_pack(&env, &frame, &flen) < 0) {
    j->ref_fd = -1;
    supervise_free(j);
    return -ENOMEM;
  }
  supervise_reference(j, job);

  char cpu[16], mem[32], parent[32], ref[16];
  char *args[16];
  int na = 0;
  args[na++] = (char *)o->exe;
  args[na++] = "--measure";
  snprintf(parent, sizeof parent, "%d", (int)getpid());
  args[na++] = "--parent-pid";
  args[na++] = parent;
  if (o->cpu >= 0) {
    snprintf(cpu, sizeof cpu, "%d", o->cpu);
    args[na++] = "--cpu";
    args[na++] = cpu;
  }
  snprintf(mem, sizeof mem, "%" PRIu64, o->mem_limit_mb);
  args[na++] = "--mem-limit-mb";
  args[na++] = mem;
  if (o->dump_dir) {
    args[na++] = "--dump-dir";
    args[na++] = (char *)o->dump_dir;
  }
  if (j->ref_fd >= 0) {
    snprintf(ref, sizeof ref, "%d", SUPERVISE_REF_FD);
    args[na++] = "--ref-fd";
    args[na++] = ref;
  }
  args[na] = NULL;
  child_spec spec = {.argv = args, .in = frame, .in_len = flen, .on_out = supervise_out,
                     .inherit_err = 1, .extra_fds = &j->ref_fd, .nextra = j->ref_fd >= 0,
                     .timeout_ms = j->limit_ms, .done = supervise_ended, .data = j};
  int rc = child_start(loop, &spec, &j->ch);
  if (rc < 0) {
    supervise_free(j);
    return rc;
  }
  *out = j;
  return 0;
}
