/* ktune-runner: measures candidates on this device. The agent never runs
 * a kernel itself: each job runs in a fresh child process (this same
 * program with --measure), in its own process group, sandboxed, so a
 * kernel that crashes, hangs or misbehaves costs one trial, not the
 * runner. The agent keeps what outlives a trial: the connection and the
 * reference outputs of the tasks it has seen (runner/refcache.h). A job
 * under way outlives the connection too: its child goes on, the runner
 * tells the tracker it dials again that it still holds the job
 * (Hello.holding), and the result goes to whichever tracker is there when
 * the child is done, or right after the next Welcome. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/agent.h"
#include "common/auth.h"
#include "common/frame.h"
#include "common/log.h"
#include "common/wire.h"
#include "runner/device.h"
#include "runner/measure.h"
#include "runner/refcache.h"
#include "runner/timing.h"

#define WHO "runner"
/* The child finds its reference image here. */
#define CHILD_REF_FD 3
/* A child's error text beyond this is cut: it came from untrusted code. */
#define MAX_ERROR_TEXT 2048
#define MIN_MEM_LIMIT_MB 16
/* --test-fault huge-error: an error text far above any sane limit. */
#define FAULT_HUGE_ERROR_BYTES (12u << 20)

/* --test-fault: how a runner misbehaves for ktune's own tests of the
 * tracker. A fault answers (or ignores) every job without a child. */
typedef enum {
  FAULT_NONE,
  FAULT_SILENT,     /* accept every job, never answer */
  FAULT_FAIL,       /* RUNTIME_ERROR at once */
  FAULT_TINY_COST,  /* ok at once, every cost 1e-30 s */
  FAULT_HUGE_ERROR, /* RUNTIME_ERROR with 12 MB of control bytes */
} runner_fault;

typedef struct runner runner;

/* One job in its child: done when the child has exited and its stdout is
 * drained, in whichever order those come. */
typedef struct {
  runner *r;
  uint64_t job_id;
  uint32_t repeat;
  uint32_t limit_ms;
  uv_process_t proc;
  uv_pipe_t in, out;
  uv_timer_t timer;
  uv_write_t wreq;
  uint8_t *job_frame;
  frame_reader rd;
  char rbuf[8192];
  Ktune__RunResult *result; /* what the child said, if anything */
  int exited, drained, timed_out, handles;
  int64_t exit_status;
  int term_signal;
  int spawn_error; /* uv_spawn's error: there was never a child */
  char *ref_key;     /* the job's reference cache key, or NULL */
  int ref_fd;        /* image given to the child, or -1 */
  int ref_blank;     /* ref_fd is ours: a blank the child fills */
  uint64_t ref_total;
} child;

struct runner {
  uv_loop_t *loop;
  agent *ag;
  const char *dump_dir;
  child *busy;
  /* The last job's result, kept while no tracker could take it. */
  Ktune__Envelope *pending;
  runner_fault fault;
  int stopping;
  int exit_code;           /* 2 when the tracker kept refusing our login */
  int draining;            /* SIGTERM: finish the job under way, then leave */
  int cpu;
  uint64_t mem_limit_mb;
  refcache refs;
  char exe[4096];
  uv_signal_t sigterm, sigint;
};

/* env carries res for job_id: what the child said (from), or, with a
 * status (not UNSET), a failure without costs. */
static void result_envelope(Ktune__Envelope *env, Ktune__RunResult *res, uint64_t job_id,
                            Ktune__TrialStatus status, const char *error,
                            const Ktune__RunResult *from) {
  ktune__run_result__init(res);
  if (from) *res = *from;
  res->job_id = job_id;
  if (status) {
    res->status = status;
    res->error = (char *)(error ? error : "");
    res->n_costs_s = 0;
    res->clock = (char *)TIMING_CLOCK_NAME;
  }
  ktune__envelope__init(env);
  env->msg_case = KTUNE__ENVELOPE__MSG_RUN_RESULT;
  env->run_result = res;
}

/* An answer to a job just received: the tracker that sent it is there. */
static void send_result(runner *r, uint64_t job_id, Ktune__TrialStatus status, const char *error,
                        const Ktune__RunResult *from) {
  Ktune__RunResult res;
  Ktune__Envelope env;
  result_envelope(&env, &res, job_id, status, error, from);
  agent_send(r->ag, &env);
}

/* The measured job is settled: the runner holds nothing any more. */
static void result_settled(runner *r) {
  wire_free(r->pending);
  r->pending = NULL;
  agent_set_holding(r->ag, 0);
}

/* A measured job's result: sent now, or, with no tracker to take it, kept
 * (a copy that owns its strings) for right after the next Welcome. */
static void report_result(runner *r, uint64_t job_id, Ktune__TrialStatus status, const char *error,
                          const Ktune__RunResult *from) {
  Ktune__RunResult res;
  Ktune__Envelope env;
  result_envelope(&env, &res, job_id, status, error, from);
  if (agent_send(r->ag, &env) == 0) {
    result_settled(r);
    return;
  }
  uint8_t *frame;
  size_t len;
  wire_free(r->pending);
  r->pending = NULL;
  if (wire_pack(&env, &frame, &len) == 0) {
    r->pending = wire_unpack(frame + FRAME_HEADER, len - FRAME_HEADER);
    free(frame);
  }
  if (r->pending) {
    log_info(WHO, "job %llu finished while the tracker is away: its result waits for the next "
                  "connection", (unsigned long long)job_id);
    return;
  }
  /* Out of memory: the tracker must not wait for it. */
  log_warn(WHO, "job %llu finished while the tracker is away and its result is lost",
           (unsigned long long)job_id);
  result_settled(r);
}

static void on_welcome(agent *a) {
  runner *r = agent_data(a);
  if (r->pending && agent_send(a, r->pending) == 0) {
    log_info(WHO, "sent the kept result of job %llu",
             (unsigned long long)r->pending->run_result->job_id);
    result_settled(r);
  }
}

/* The child's result came from a process that ran untrusted code: pass on
 * only what a measuring child can honestly say. */
static const char *result_problem(const child *ch, Ktune__RunResult *res) {
  if (!wire_status_by(res->status, WIRE_BY_CHILD)) return "unknown status";
  if (res->error && strlen(res->error) > MAX_ERROR_TEXT) res->error[MAX_ERROR_TEXT] = '\0';
  if (res->status != WIRE_TRIAL(OK)) return NULL;
  if (res->n_costs_s != ch->repeat || res->number == 0) return "wrong number of rounds";
  for (size_t i = 0; i < res->n_costs_s; i++)
    if (!isfinite(res->costs_s[i]) || res->costs_s[i] < 0) return "a cost that is not a time";
  return NULL;
}

static void describe_signal(int sig, char *why, size_t len) {
  if (sig == SIGSYS)
    snprintf(why, len, "sandbox: the measuring process was killed for a forbidden system call (SIGSYS)");
  else if (sig == SIGKILL)
    snprintf(why, len, "the measuring process was killed by SIGKILL, not by this runner "
                       "(out of memory? the system's OOM killer does this)");
  else
    snprintf(why, len, "kernel crashed: SIG%s (%s)", sigabbrev_np(sig) ? sigabbrev_np(sig) : "?",
             sigdescr_np(sig) ? sigdescr_np(sig) : "unknown signal");
}

static void child_free(uv_handle_t *h) {
  child *ch = h->data;
  if (--ch->handles > 0) return;
  frame_reader_free(&ch->rd);
  free(ch->job_frame);
  free(ch->ref_key);
  if (ch->ref_blank && ch->ref_fd >= 0) close(ch->ref_fd);
  if (ch->result) ktune__run_result__free_unpacked(ch->result, NULL);
  free(ch);
}

static void close_handle(uv_handle_t *h) {
  if (!uv_is_closing(h)) uv_close(h, child_free);
}

/* Kills the child and anything it started: it leads its own process group.
 * Only while it has not been reaped, so that a reused pid is never hit. */
static void child_kill(child *ch) {
  if (ch->exited) return;
  if (ch->proc.pid > 0) kill(-ch->proc.pid, SIGKILL);
  uv_process_kill(&ch->proc, SIGKILL);
}

/* Both events are in: report and let the next job come. */
static void child_maybe_done(child *ch) {
  if (!ch->exited || !ch->drained) return;
  runner *r = ch->r;
  char why[512];
  const char *bad = ch->result && !ch->timed_out ? result_problem(ch, ch->result) : NULL;
  Ktune__TrialStatus status = WIRE_TRIAL(RUNTIME_ERROR);
  if (ch->spawn_error) {
    /* This runner's fault, not the kernel's: the tracker gives the job to
     * another runner. */
    status = WIRE_TRIAL(RUNNER_ERROR);
    snprintf(why, sizeof(why), "cannot start the measuring process: %s",
             uv_strerror(ch->spawn_error));
  } else if (ch->timed_out) {
    status = WIRE_TRIAL(RUN_TIMEOUT);
    snprintf(why, sizeof(why),
             "no result within %" PRIu32 " ms; the kernel was killed with its process group",
             ch->limit_ms);
  } else if (ch->result && bad) {
    snprintf(why, sizeof(why), "the measuring process sent a malformed result (%s)", bad);
  } else if (ch->result) {
    status = KTUNE__TRIAL_STATUS__TRIAL_STATUS_UNSET;
  } else if (ch->term_signal) {
    describe_signal(ch->term_signal, why, sizeof(why));
  } else {
    snprintf(why, sizeof(why), "measuring process exited with status %lld and no result",
             (long long)ch->exit_status);
  }
  report_result(r, ch->job_id, status, why, status ? NULL : ch->result);
  /* The reference is good whatever the kernel did after it ran. */
  if (ch->ref_blank && ch->ref_fd >= 0) {
    if (refcache_adopt(&r->refs, ch->ref_key, ch->ref_fd, ch->ref_total))
      log_debug(WHO, "reference cached (%" PRIu64 " bytes)", ch->ref_total);
    ch->ref_fd = -1;
  }
  r->busy = NULL;
  close_handle((uv_handle_t *)&ch->timer);
  close_handle((uv_handle_t *)&ch->in);
  close_handle((uv_handle_t *)&ch->out);
  close_handle((uv_handle_t *)&ch->proc);
  if (r->stopping) {
    agent_stop(r->ag);
  } else if (r->draining) {
    log_info(WHO, "job finished: leaving");
    uv_close((uv_handle_t *)&r->sigterm, NULL);
    uv_close((uv_handle_t *)&r->sigint, NULL);
    agent_stop_flushed(r->ag);
  }
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig) {
  child *ch = p->data;
  ch->exited = 1;
  ch->exit_status = status;
  ch->term_signal = sig;
  uv_timer_stop(&ch->timer);
  child_maybe_done(ch);
}

static void on_timeout(uv_timer_t *t) {
  child *ch = t->data;
  ch->timed_out = 1;
  child_kill(ch);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  child *ch = h->data;
  *buf = uv_buf_init(ch->rbuf, sizeof(ch->rbuf));
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  child *ch = s->data;
  (void)buf;
  if (n < 0) {
    uv_read_stop(s);
    ch->drained = 1;
    child_maybe_done(ch);
    return;
  }
  if (n == 0 || ch->result) return;
  frame_reader_feed(&ch->rd, ch->rbuf, (size_t)n);
  const uint8_t *p;
  uint32_t len;
  if (frame_reader_next(&ch->rd, &p, &len) == 1) {
    Ktune__Envelope *env = wire_unpack(p, len);
    if (env && env->msg_case == KTUNE__ENVELOPE__MSG_RUN_RESULT) {
      ch->result = env->run_result;
      env->run_result = NULL;
      env->msg_case = KTUNE__ENVELOPE__MSG__NOT_SET;
    }
    wire_free(env);
  }
}

static void write_cb(uv_write_t *req, int status) {
  child *ch = req->data;
  (void)status; /* a child that died early is reported by its exit */
  close_handle((uv_handle_t *)&ch->in);
}

/* The time a trial may take (the tracker's deadline is the same plus
 * its grace), within what a libuv timer takes. */
static uint32_t run_limit_ms(const Ktune__Timing *tm) {
  uint64_t ms = timing_limit_ms(tm);
  return ms > UINT32_MAX / 2 ? UINT32_MAX / 2 : (uint32_t)ms;
}

/* Picks the reference image for the child: the cached one, or a blank to
 * fill. Without one the child computes the reference privately. */
static void child_reference(runner *r, child *ch, const Ktune__RunJob *job) {
  ch->ref_fd = -1;
  uint64_t off[8];
  if (job->n_buffers > sizeof off / sizeof off[0]) return;
  ch->ref_key = refcache_key(job);
  if (!ch->ref_key || refcache_layout(job, off, &ch->ref_total) < 0) return;
  ch->ref_fd = refcache_find(&r->refs, ch->ref_key);
  if (ch->ref_fd < 0) {
    ch->ref_fd = refcache_blank();
    ch->ref_blank = ch->ref_fd >= 0;
  }
}

/* --test-fault: the answer to every job, at once and without a child. */
static void fault_answer(runner *r, const Ktune__RunJob *job, const Ktune__Timing *tm) {
  switch (r->fault) {
  case FAULT_NONE:
  case FAULT_SILENT: return;
  case FAULT_FAIL:
    send_result(r, job->job_id, WIRE_TRIAL(RUNTIME_ERROR), "test fault", NULL);
    return;
  case FAULT_TINY_COST: {
    Ktune__RunResult res = KTUNE__RUN_RESULT__INIT;
    uint32_t repeat = tm->repeat;
    double *costs = calloc(repeat, sizeof *costs);
    if (!costs) {
      send_result(r, job->job_id, WIRE_TRIAL(RUNTIME_ERROR), "test fault: out of memory", NULL);
      return;
    }
    for (uint32_t i = 0; i < repeat; i++) costs[i] = 1e-30;
    res.status = WIRE_TRIAL(OK);
    res.costs_s = costs;
    res.n_costs_s = repeat;
    res.number = tm->number;
    res.clock = "monotonic";
    send_result(r, job->job_id, KTUNE__TRIAL_STATUS__TRIAL_STATUS_UNSET, NULL, &res);
    free(costs);
    return;
  }
  case FAULT_HUGE_ERROR: {
    char *text = malloc(FAULT_HUGE_ERROR_BYTES + 1);
    if (!text) return;
    /* 0x01..0x1f over and over: control bytes, no NUL. */
    for (size_t i = 0; i < FAULT_HUGE_ERROR_BYTES; i++) text[i] = (char)(1 + i % 0x1f);
    text[FAULT_HUGE_ERROR_BYTES] = '\0';
    send_result(r, job->job_id, WIRE_TRIAL(RUNTIME_ERROR), text, NULL);
    free(text);
    return;
  }
  }
}

static void on_run_job(runner *r, const Ktune__RunJob *job) {
  Ktune__Timing tm;
  char err[256];
  timing_copy(&tm, job->timing);
  if (timing_fill(&tm, err, sizeof err) < 0) {
    send_result(r, job->job_id, WIRE_TRIAL(RUNTIME_ERROR), err, NULL);
    return;
  }
  log_debug(WHO, "job %llu: number %u, repeat %u, min_repeat_ms %u, cooldown_ms %u, "
                 "flush_cache %d, timeout_ms %u",
            (unsigned long long)job->job_id, tm.number, tm.repeat, tm.min_repeat_ms,
            tm.cooldown_ms, (int)tm.flush_cache, tm.timeout_ms);
  if (r->fault != FAULT_NONE) {
    fault_answer(r, job, &tm);
    return;
  }
  if (r->busy) {
    /* Not a trial result: the tracker gives the job to someone else. */
    char why[128];
    snprintf(why, sizeof why, "runner is busy with job %llu: one measurement at a time",
             (unsigned long long)r->busy->job_id);
    send_result(r, job->job_id, WIRE_TRIAL(REFUSED), why, NULL);
    return;
  }
  child *ch = calloc(1, sizeof(*ch));
  if (!ch) return;
  ch->r = r;
  ch->job_id = job->job_id;
  ch->repeat = tm.repeat;
  ch->limit_ms = run_limit_ms(&tm);
  frame_reader_init(&ch->rd, FRAME_MAX_DEFAULT);
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_RUN_JOB;
  env.run_job = (Ktune__RunJob *)job;
  size_t flen;
  if (wire_pack(&env, &ch->job_frame, &flen) < 0) {
    free(ch);
    return;
  }
  child_reference(r, ch, job);
  uv_pipe_init(r->loop, &ch->in, 0);
  uv_pipe_init(r->loop, &ch->out, 0);
  uv_timer_init(r->loop, &ch->timer);
  ch->in.data = ch->out.data = ch->timer.data = ch->proc.data = ch->wreq.data = ch;
  ch->handles = 4;

  char cpu[16], mem[32], parent[32], ref[16];
  char *args[16];
  int na = 0;
  args[na++] = r->exe;
  args[na++] = "--measure";
  snprintf(parent, sizeof parent, "%d", (int)getpid());
  args[na++] = "--parent-pid";
  args[na++] = parent;
  if (r->cpu >= 0) {
    snprintf(cpu, sizeof cpu, "%d", r->cpu);
    args[na++] = "--cpu";
    args[na++] = cpu;
  }
  snprintf(mem, sizeof mem, "%" PRIu64, r->mem_limit_mb);
  args[na++] = "--mem-limit-mb";
  args[na++] = mem;
  if (r->dump_dir) {
    args[na++] = "--dump-dir";
    args[na++] = (char *)r->dump_dir;
  }
  uv_stdio_container_t stdio[4];
  stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
  stdio[0].data.stream = (uv_stream_t *)&ch->in;
  stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[1].data.stream = (uv_stream_t *)&ch->out;
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = 2;
  int nstdio = 3;
  if (ch->ref_fd >= 0) {
    snprintf(ref, sizeof ref, "%d", CHILD_REF_FD);
    args[na++] = "--ref-fd";
    args[na++] = ref;
    stdio[CHILD_REF_FD].flags = UV_INHERIT_FD;
    stdio[CHILD_REF_FD].data.fd = ch->ref_fd;
    nstdio = CHILD_REF_FD + 1;
  }
  args[na] = NULL;
  uv_process_options_t po = {0};
  po.exit_cb = on_exit_cb;
  po.file = r->exe;
  po.args = args;
  po.stdio = stdio;
  po.stdio_count = nstdio;
  /* Its own session and process group: a timeout kills everything in it. */
  po.flags = UV_PROCESS_DETACHED;
  r->busy = ch;
  agent_set_holding(r->ag, ch->job_id);
  int rc = uv_spawn(r->loop, &ch->proc, &po);
  if (rc < 0) {
    ch->spawn_error = rc;
    ch->exited = ch->drained = 1;
    child_maybe_done(ch);
    return;
  }
  uv_timer_start(&ch->timer, on_timeout, ch->limit_ms, 0);
  uv_read_start((uv_stream_t *)&ch->out, alloc_cb, read_cb);
  uv_buf_t b = uv_buf_init((char *)ch->job_frame, (unsigned)flen);
  uv_write(&ch->wreq, (uv_stream_t *)&ch->in, &b, 1, write_cb);
}

static void on_message(agent *a, Ktune__Envelope *env) {
  runner *r = agent_data(a);
  switch (env->msg_case) {
  case KTUNE__ENVELOPE__MSG_RUN_JOB: on_run_job(r, env->run_job); break;
  case KTUNE__ENVELOPE__MSG_RESULT_ACK: break;
  default: log_warn(WHO, "unexpected %s from the tracker", wire_msg_name(env));
  }
}

static void on_disconnect(agent *a) {
  runner *r = agent_data(a);
  if (r->busy)
    log_info(WHO, "job %llu goes on: its result goes to the tracker once it is back",
             (unsigned long long)r->busy->job_id);
}

static const agent_ops ops = {on_message, on_disconnect};

static void leave_now(runner *r) {
  if (r->stopping) return;
  r->stopping = 1;
  uv_close((uv_handle_t *)&r->sigterm, NULL);
  uv_close((uv_handle_t *)&r->sigint, NULL);
  if (r->busy) {
    child_kill(r->busy);
    return; /* the agent stops once the child is reaped */
  }
  agent_stop(r->ag);
}

/* SIGTERM drains: the tracker sends nothing more, the job under way is
 * measured and reported. A second SIGTERM, or SIGINT, leaves at once. */
static void on_signal(uv_signal_t *h, int sig) {
  runner *r = h->data;
  if (sig == SIGTERM && r->busy && !r->draining) {
    r->draining = 1;
    agent_goodbye(r->ag);
    log_info(WHO, "SIGTERM: finishing job %llu, then leaving (SIGTERM again to stop now)",
             (unsigned long long)r->busy->job_id);
    return;
  }
  log_info(WHO, "signal %d: leaving", sig);
  leave_now(r);
}

/* The tracker keeps refusing our login: a configuration error. */
static void on_give_up(agent *a) {
  runner *r = agent_data(a);
  r->exit_code = 2;
  leave_now(r);
}

static void usage(FILE *f) {
  fprintf(f, "usage: ktune-runner --tracker HOST:PORT --key KEY [--cpu N] [--mem-limit-mb N]\n"
             "                    [--name NAME] [--token-file PATH] [--dump-dir DIR]\n"
             "                    [--test-fault MODE]\n"
             "\n"
             "Measures candidates on this device for a ktune tracker, one at a time.\n"
             "  --tracker HOST:PORT  the tracker to serve (or KTUNE_TRACKER)\n"
             "  --key KEY            device key: the pool this device belongs to\n"
             "  --cpu N              pin measurements to core N (one runner per core)\n"
             "  --mem-limit-mb N     address space a measurement may use, buffers included\n"
             "                       (default: half of this machine's memory)\n"
             "  --name NAME          name shown in `ktune status` (default HOST-PID); with a\n"
             "                       token, the name the token was issued to\n"
             "  --token-file PATH    this runner's token (or KTUNE_TOKEN, KTUNE_TOKEN_FILE;\n"
             "                       docs/SECURITY.md)\n"
             "  --dump-dir DIR       write each job's raw output buffers to DIR/job-ID.out\n"
             "  --test-fault MODE    misbehave, for ktune's own tests: silent, fail, arch=NAME,\n"
             "                       tiny-cost or huge-error (may be given more than once)\n"
             "See docs/MEASUREMENT.md for getting stable numbers.\n");
}

static int parse_num(const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi) {
    fprintf(stderr, "ktune-runner: %s: expected a whole number from %" PRIu64 " to %" PRIu64
                    ", got \"%s\"\n", opt, lo, hi, s);
    return -1;
  }
  *out = v;
  return 0;
}

static uint64_t default_mem_limit_mb(void) {
  long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
  uint64_t mb = pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size / 2 / (1u << 20) : 0;
  return mb > 1024 ? mb : 1024;
}

/* --test-fault MODE: a fault for every job, or a false architecture. */
static int parse_fault(const char *s, runner_fault *fault, const char **arch) {
  static const struct {
    const char *name;
    runner_fault fault;
  } modes[] = {{"silent", FAULT_SILENT},
               {"fail", FAULT_FAIL},
               {"tiny-cost", FAULT_TINY_COST},
               {"huge-error", FAULT_HUGE_ERROR}};
  if (strncmp(s, "arch=", 5) == 0 && s[5]) {
    *arch = s + 5;
    return 0;
  }
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
    if (strcmp(s, modes[i].name) == 0) {
      *fault = modes[i].fault;
      return 0;
    }
  fprintf(stderr, "ktune-runner: --test-fault: expected silent, fail, arch=NAME, tiny-cost or "
                  "huge-error, got \"%s\"\n", s);
  return -1;
}

/* Claims core cpu for this runner, so that a second runner pinned there
 * refuses to start rather than time its kernels against ours. An abstract
 * socket name is released by the kernel however the runner ends. Returns
 * the fd to keep open, or -1 with the reason in err. */
static int claim_cpu(int cpu, char *err, size_t len) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "ktune-runner-cpu-%d", cpu);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(err, len, "cannot claim cpu %d: socket: %s", cpu, strerror(errno));
    return -1;
  }
  socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
  if (bind(fd, (struct sockaddr *)&a, alen) < 0) {
    if (errno == EADDRINUSE)
      snprintf(err, len, "--cpu %d: another runner on this host measures on that core; "
                         "give each runner its own", cpu);
    else
      snprintf(err, len, "cannot claim cpu %d: %s", cpu, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

/* The measuring child: dies with the agent, then measures one job. */
static int child_main(pid_t parent, const measure_opts *mo) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (parent > 0 && getppid() != parent) return 1; /* the agent died before prctl */
  _exit(measure_child_main(0, 1, mo));
}

/* Logs what the runner measures on; a governor that moves the clock
 * makes timings drift. */
static void report_device(const device_info *d, int cpu) {
  log_info(WHO, "device: %s, %u cores, %s, kernel %s, cpu %d governor %s, ktune %s", d->cpu_model,
           d->cores, d->arch, d->kernel, cpu < 0 ? 0 : cpu, d->governor, d->version);
  if (strcmp(d->governor, "unknown") == 0)
    log_warn(WHO, "cannot read the cpufreq governor of cpu %d: if the clock speed varies, "
                  "timings may drift (docs/MEASUREMENT.md)", cpu < 0 ? 0 : cpu);
  else if (strcmp(d->governor, "performance") != 0)
    log_warn(WHO, "cpu %d frequency governor is \"%s\", not \"performance\": timings may drift "
                  "(docs/MEASUREMENT.md)", cpu < 0 ? 0 : cpu, d->governor);
}

enum { OPT_CPU = 256, OPT_MEM, OPT_REF, OPT_PARENT, OPT_TOKEN, OPT_FAULT };

int main(int argc, char **argv) {
  const char *tracker = getenv("KTUNE_TRACKER");
  const char *key = NULL, *dump_dir = NULL, *token_file = NULL, *fault_arch = NULL;
  runner_fault fault = FAULT_NONE;
  int measure = 0;
  uint64_t cpu = UINT64_MAX, mem = 0, ref_fd = UINT64_MAX, parent = 0;
  char name[128];
  agent_default_name(name, sizeof(name));
  static const struct option opts[] = {{"tracker", required_argument, 0, 't'},
                                       {"key", required_argument, 0, 'k'},
                                       {"name", required_argument, 0, 'n'},
                                       {"dump-dir", required_argument, 0, 'D'},
                                       {"cpu", required_argument, 0, OPT_CPU},
                                       {"mem-limit-mb", required_argument, 0, OPT_MEM},
                                       {"token-file", required_argument, 0, OPT_TOKEN},
                                       {"measure", no_argument, 0, 'M'},
                                       {"ref-fd", required_argument, 0, OPT_REF},
                                       {"parent-pid", required_argument, 0, OPT_PARENT},
                                       {"test-fault", required_argument, 0, OPT_FAULT},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "t:k:n:h", opts, NULL)) != -1) {
    switch (c) {
    case 't': tracker = optarg; break;
    case 'k': key = optarg; break;
    case 'n': snprintf(name, sizeof(name), "%s", optarg); break;
    case 'D': dump_dir = optarg; break;
    case OPT_TOKEN: token_file = optarg; break;
    case OPT_CPU: if (parse_num("--cpu", optarg, 0, CPU_SETSIZE - 1, &cpu)) return 2; break;
    case OPT_MEM:
      if (parse_num("--mem-limit-mb", optarg, MIN_MEM_LIMIT_MB, UINT64_C(1) << 40, &mem)) return 2;
      break;
    case OPT_REF: if (parse_num("--ref-fd", optarg, 3, 1 << 20, &ref_fd)) return 2; break;
    case OPT_PARENT: if (parse_num("--parent-pid", optarg, 1, INT32_MAX, &parent)) return 2; break;
    case OPT_FAULT: if (parse_fault(optarg, &fault, &fault_arch)) return 2; break;
    case 'M': measure = 1; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (measure) {
    measure_opts mo = MEASURE_OPTS_INIT;
    mo.dump_dir = dump_dir;
    mo.cpu = cpu == UINT64_MAX ? -1 : (int)cpu;
    mo.mem_limit_mb = mem;
    mo.ref_fd = ref_fd == UINT64_MAX ? -1 : (int)ref_fd;
    mo.sandbox = 1;
    return child_main((pid_t)parent, &mo);
  }
  if (!tracker || !key || !*key || optind < argc) {
    fprintf(stderr, "ktune-runner: %s\n",
            !tracker ? "--tracker HOST:PORT is required (or set KTUNE_TRACKER)"
            : (!key || !*key) ? "--key KEY is required: the device key this runner serves"
                              : "unexpected argument");
    usage(stderr);
    return 2;
  }
  runner r = {0};
  r.loop = uv_default_loop();
  r.dump_dir = dump_dir;
  r.fault = fault;
  r.cpu = cpu == UINT64_MAX ? -1 : (int)cpu;
  r.mem_limit_mb = mem ? mem : default_mem_limit_mb();
  refcache_init(&r.refs);
  if (r.cpu >= 0) {
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0 && !CPU_ISSET(r.cpu, &allowed)) {
      fprintf(stderr, "ktune-runner: --cpu %d: this process may not run there (%ld CPUs online; "
                      "see taskset and isolcpus)\n", r.cpu, sysconf(_SC_NPROCESSORS_ONLN));
      return 2;
    }
  }
  char err[256];
  int claim = -1;
  if (r.cpu >= 0 && (claim = claim_cpu(r.cpu, err, sizeof err)) < 0) {
    fprintf(stderr, "ktune-runner: %s\n", err);
    return 2;
  }
  ssize_t n = readlink("/proc/self/exe", r.exe, sizeof(r.exe) - 1);
  if (n <= 0) {
    fprintf(stderr, "ktune-runner: cannot find its own program (/proc/self/exe): %s\n",
            strerror(errno));
    return 1;
  }
  r.exe[n] = '\0';
  char token[AUTH_TOKEN_MAX], terr[512];
  int have_token = auth_read_token(token_file, token, sizeof token, terr, sizeof terr);
  if (have_token < 0) {
    fprintf(stderr, "ktune-runner: %s\n", terr);
    return 2;
  }
  /* Measuring children inherit the environment and run untrusted code:
   * nothing there may lead to the token. */
  unsetenv("KTUNE_TOKEN");
  unsetenv("KTUNE_TOKEN_FILE");
  device_info dev;
  device_identity(r.cpu, &dev);
  report_device(&dev, r.cpu);
  agent_config cfg = {.who = WHO, .tracker = tracker, .role = KTUNE__ROLE__ROLE_RUNNER, .name = name,
                      .key = key, .arch = fault_arch ? fault_arch : dev.arch, .slots = 1,
                      .cpu_model = dev.cpu_model, .cores = dev.cores, .kernel = dev.kernel,
                      .governor = dev.governor, .token = have_token ? token : NULL,
                      .on_welcome = on_welcome, .on_give_up = on_give_up};
  if (agent_new(r.loop, &cfg, &ops, &r, &r.ag, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune-runner: %s\n", err);
    return 2;
  }
  uv_signal_init(r.loop, &r.sigterm);
  uv_signal_init(r.loop, &r.sigint);
  r.sigterm.data = r.sigint.data = &r;
  uv_signal_start(&r.sigterm, on_signal, SIGTERM);
  uv_signal_start(&r.sigint, on_signal, SIGINT);
  log_info(WHO, "%s serving key %s for %s%s", name, key, tracker,
           r.cpu >= 0 ? "" : " (measurements not pinned: --cpu N pins them)");
  if (fault != FAULT_NONE || fault_arch)
    log_warn(WHO, "--test-fault: this runner misbehaves on purpose; it is for ktune's own tests");
  uv_run(r.loop, UV_RUN_DEFAULT);
  uv_loop_close(r.loop);
  wire_free(r.pending);
  refcache_clear(&r.refs);
  memset(token, 0, sizeof token);
  if (claim >= 0) close(claim);
  return r.exit_code;
}
