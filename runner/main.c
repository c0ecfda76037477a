/* ktune-runner: measures candidates on this device. The agent never runs
 * a kernel itself: each job runs in a fresh child process (this same
 * program with --measure), so a kernel that crashes or hangs costs one
 * trial, not the runner. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/agent.h"
#include "common/frame.h"
#include "common/log.h"
#include "common/wire.h"
#include "runner/measure.h"

#define WHO "runner"
#define DEFAULT_RUN_TIMEOUT_MS 60000

typedef struct runner runner;

/* One job in its child: done when the child has exited and its stdout is
 * drained, in whichever order those come. */
typedef struct {
  runner *r;
  uint64_t job_id;
  uint64_t generation;
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
} child;

struct runner {
  uv_loop_t *loop;
  agent *ag;
  const char *dump_dir;
  uint64_t generation;
  child *busy;
  int stopping;
  uv_signal_t sigterm, sigint;
};

static void send_result(runner *r, uint64_t job_id, const char *status, const char *error,
                        const Ktune__RunResult *from) {
  Ktune__RunResult res = KTUNE__RUN_RESULT__INIT;
  if (from) res = *from;
  res.job_id = job_id;
  if (status) {
    res.status = (char *)status;
    res.error = (char *)(error ? error : "");
    res.n_costs_s = 0;
  }
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_RUN_RESULT;
  env.run_result = &res;
  agent_send(r->ag, &env);
}

static void child_free(uv_handle_t *h) {
  child *ch = h->data;
  if (--ch->handles > 0) return;
  frame_reader_free(&ch->rd);
  free(ch->job_frame);
  if (ch->result) ktune__run_result__free_unpacked(ch->result, NULL);
  free(ch);
}

static void close_handle(uv_handle_t *h) {
  if (!uv_is_closing(h)) uv_close(h, child_free);
}

/* Both events are in: report and let the next job come. */
static void child_maybe_done(child *ch) {
  if (!ch->exited || !ch->drained) return;
  runner *r = ch->r;
  char why[256];
  if (ch->generation == r->generation) {
    if (ch->timed_out) {
      snprintf(why, sizeof(why), "no result within the time limit; the kernel was killed");
      send_result(r, ch->job_id, "RUN_TIMEOUT", why, NULL);
    } else if (ch->result) {
      send_result(r, ch->job_id, NULL, NULL, ch->result);
    } else if (ch->term_signal) {
      snprintf(why, sizeof(why), "kernel killed by signal %d (%s)", ch->term_signal,
               strsignal(ch->term_signal));
      send_result(r, ch->job_id, "RUNTIME_ERROR", why, NULL);
    } else {
      snprintf(why, sizeof(why), "measuring process exited with status %lld and no result",
               (long long)ch->exit_status);
      send_result(r, ch->job_id, "RUNTIME_ERROR", why, NULL);
    }
  }
  r->busy = NULL;
  close_handle((uv_handle_t *)&ch->timer);
  close_handle((uv_handle_t *)&ch->in);
  close_handle((uv_handle_t *)&ch->out);
  close_handle((uv_handle_t *)&ch->proc);
  if (r->stopping) agent_stop(r->ag);
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
  uv_process_kill(&ch->proc, SIGKILL);
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

static void on_run_job(runner *r, const Ktune__RunJob *job) {
  if (r->busy) {
    send_result(r, job->job_id, "RUNTIME_ERROR", "runner is busy: one measurement at a time", NULL);
    return;
  }
  child *ch = calloc(1, sizeof(*ch));
  if (!ch) return;
  ch->r = r;
  ch->job_id = job->job_id;
  ch->generation = r->generation;
  frame_reader_init(&ch->rd, FRAME_MAX_DEFAULT);
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_RUN_JOB;
  env.run_job = (Ktune__RunJob *)job;
  size_t flen;
  if (wire_pack(&env, &ch->job_frame, &flen) < 0) {
    free(ch);
    return;
  }
  uv_pipe_init(r->loop, &ch->in, 0);
  uv_pipe_init(r->loop, &ch->out, 0);
  uv_timer_init(r->loop, &ch->timer);
  ch->in.data = ch->out.data = ch->timer.data = ch->proc.data = ch->wreq.data = ch;
  ch->handles = 4;

  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  exe[n > 0 ? n : 0] = 0;
  char *args[5] = {exe, "--measure", NULL, NULL, NULL};
  if (r->dump_dir) {
    args[2] = "--dump-dir";
    args[3] = (char *)r->dump_dir;
  }
  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
  stdio[0].data.stream = (uv_stream_t *)&ch->in;
  stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[1].data.stream = (uv_stream_t *)&ch->out;
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = 2;
  uv_process_options_t po = {0};
  po.exit_cb = on_exit_cb;
  po.file = exe;
  po.args = args;
  po.stdio = stdio;
  po.stdio_count = 3;
  r->busy = ch;
  int rc = uv_spawn(r->loop, &ch->proc, &po);
  if (rc < 0) {
    char why[256];
    snprintf(why, sizeof(why), "cannot start the measuring process: %s", uv_strerror(rc));
    send_result(r, ch->job_id, "RUNTIME_ERROR", why, NULL);
    ch->exited = ch->drained = 1;
    child_maybe_done(ch);
    return;
  }
  uint32_t limit = job->timeout_ms ? job->timeout_ms : DEFAULT_RUN_TIMEOUT_MS;
  uv_timer_start(&ch->timer, on_timeout, limit, 0);
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
  /* The tracker requeues what we held; a result now would be stale. */
  r->generation++;
}

static const agent_ops ops = {on_message, on_disconnect};

static void on_signal(uv_signal_t *h, int sig) {
  runner *r = h->data;
  log_info(WHO, "signal %d: leaving", sig);
  r->stopping = 1;
  uv_close((uv_handle_t *)&r->sigterm, NULL);
  uv_close((uv_handle_t *)&r->sigint, NULL);
  if (r->busy) {
    uv_process_kill(&r->busy->proc, SIGKILL);
    return; /* the agent stops once the child is reaped */
  }
  agent_stop(r->ag);
}

static void usage(FILE *f) {
  fprintf(f, "usage: ktune-runner --tracker HOST:PORT --key KEY [--name NAME] [--dump-dir DIR]\n"
             "\n"
             "Measures candidates on this device for a ktune tracker.\n"
             "  --tracker HOST:PORT  the tracker to serve (or KTUNE_TRACKER)\n"
             "  --key KEY            device key: the pool this device belongs to\n"
             "  --name NAME          name shown in `ktune status` (default HOST-PID)\n"
             "  --dump-dir DIR       write each job's raw output buffers to DIR/job-ID.out\n");
}

int main(int argc, char **argv) {
  const char *tracker = getenv("KTUNE_TRACKER");
  const char *key = NULL, *dump_dir = NULL;
  int measure = 0;
  char name[128];
  agent_default_name(name, sizeof(name));
  static const struct option opts[] = {{"tracker", required_argument, 0, 't'},
                                       {"key", required_argument, 0, 'k'},
                                       {"name", required_argument, 0, 'n'},
                                       {"dump-dir", required_argument, 0, 'D'},
                                       {"measure", no_argument, 0, 'M'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "t:k:n:h", opts, NULL)) != -1) {
    switch (c) {
    case 't': tracker = optarg; break;
    case 'k': key = optarg; break;
    case 'n': snprintf(name, sizeof(name), "%s", optarg); break;
    case 'D': dump_dir = optarg; break;
    case 'M': measure = 1; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (measure) return measure_child_main(0, 1, dump_dir);
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
  struct utsname u;
  uname(&u);
  agent_config cfg = {WHO, tracker, KTUNE__ROLE__ROLE_RUNNER, name, key, u.machine, NULL, 0, 1};
  char err[256];
  if (agent_new(r.loop, &cfg, &ops, &r, &r.ag, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune-runner: %s\n", err);
    return 2;
  }
  uv_signal_init(r.loop, &r.sigterm);
  uv_signal_init(r.loop, &r.sigint);
  r.sigterm.data = r.sigint.data = &r;
  uv_signal_start(&r.sigterm, on_signal, SIGTERM);
  uv_signal_start(&r.sigint, on_signal, SIGINT);
  log_info(WHO, "%s serving key %s for %s", name, key, tracker);
  uv_run(r.loop, UV_RUN_DEFAULT);
  uv_loop_close(r.loop);
  return 0;
}
