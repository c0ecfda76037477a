/* ktune-builder: compiles candidates for the tracker. Builds run on
 * libuv's thread pool so that heartbeats keep flowing during a slow one. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#include "builder/codegen.h"
#include "builder/tcc.h"
#include "common/agent.h"
#include "common/log.h"
#include "common/wire.h"

#define WHO "builder"

typedef struct {
  uv_loop_t *loop;
  agent *ag;
  uint64_t generation;    /* bumps on every reconnect: old results are stale */
  uv_signal_t sigterm, sigint;
  unsigned inflight;
} builder;

typedef struct {
  uv_work_t req;
  builder *b;
  uint64_t generation;
  uint64_t job_id;
  char *source;
  uint8_t *so;
  size_t solen;
  int rc;
  double seconds;
  char diag[2048];
} build_work;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void do_build(uv_work_t *req) {
  build_work *w = req->data;
  double t0 = now_s();
  w->rc = tcc_build_so(w->source, &w->so, &w->solen, w->diag, sizeof(w->diag));
  w->seconds = now_s() - t0;
}

static void send_result(builder *b, uint64_t job_id, const char *status, const char *error,
                        const uint8_t *so, size_t solen, double seconds) {
  Ktune__BuildResult r = KTUNE__BUILD_RESULT__INIT;
  r.job_id = job_id;
  r.status = (char *)status;
  r.error = (char *)(error ? error : "");
  r.artifact.data = (uint8_t *)so;
  r.artifact.len = solen;
  r.build_s = seconds;
  r.compiler_id = (char *)tcc_compiler_id();
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_BUILD_RESULT;
  env.build_result = &r;
  agent_send(b->ag, &env);
}

static void after_build(uv_work_t *req, int status) {
  build_work *w = req->data;
  builder *b = w->b;
  b->inflight--;
  if (status == 0 && w->generation == b->generation) {
    if (w->rc == 0)
      send_result(b, w->job_id, "ok", NULL, w->so, w->solen, w->seconds);
    else
      send_result(b, w->job_id, "COMPILE_ERROR", w->diag[0] ? w->diag : "compile failed", NULL, 0,
                  w->seconds);
    log_debug(WHO, "job %llu built in %.3f ms", (unsigned long long)w->job_id, w->seconds * 1e3);
  }
  free(w->source);
  free(w->so);
  free(w);
}

static void on_build_job(builder *b, const Ktune__BuildJob *j) {
  if (strcmp(j->compiler, "tcc") != 0) {
    send_result(b, j->job_id, "COMPILE_ERROR", "this builder has only the tcc back end", NULL, 0, 0);
    return;
  }
  codegen_define *defs = calloc(j->n_defines + 1, sizeof(*defs));
  if (!defs) return;
  for (size_t i = 0; i < j->n_defines; i++) {
    defs[i].name = j->defines[i]->name;
    defs[i].value = j->defines[i]->value;
  }
  char *src = codegen_source(j->task, j->source, defs, j->n_defines);
  free(defs);
  if (!src) {
    send_result(b, j->job_id, "COMPILE_ERROR", "a knob or constant name is not a C identifier",
                NULL, 0, 0);
    return;
  }
  build_work *w = calloc(1, sizeof(*w));
  if (!w) {
    free(src);
    return;
  }
  w->req.data = w;
  w->b = b;
  w->generation = b->generation;
  w->job_id = j->job_id;
  w->source = src;
  b->inflight++;
  uv_queue_work(b->loop, &w->req, do_build, after_build);
}

static void on_message(agent *a, Ktune__Envelope *env) {
  builder *b = agent_data(a);
  if (env->msg_case == KTUNE__ENVELOPE__MSG_BUILD_JOB) on_build_job(b, env->build_job);
  else log_warn(WHO, "unexpected %s from the tracker", wire_msg_name(env));
}

static void on_disconnect(agent *a) {
  builder *b = agent_data(a);
  b->generation++;
}

static const agent_ops ops = {on_message, on_disconnect};

static void on_signal(uv_signal_t *h, int sig) {
  builder *b = h->data;
  log_info(WHO, "signal %d: leaving", sig);
  agent_stop(b->ag);
  uv_close((uv_handle_t *)&b->sigterm, NULL);
  uv_close((uv_handle_t *)&b->sigint, NULL);
}

static void usage(FILE *f) {
  fprintf(f, "usage: ktune-builder --tracker HOST:PORT [--jobs N] [--name NAME]\n"
             "\n"
             "Compiles candidates for a ktune tracker with libtcc, in process.\n"
             "  --tracker HOST:PORT  the tracker to serve (or KTUNE_TRACKER)\n"
             "  --jobs N             candidates built at once (default 1)\n"
             "  --name NAME          name shown in `ktune status` (default HOST-PID)\n");
}

int main(int argc, char **argv) {
  const char *tracker = getenv("KTUNE_TRACKER");
  char name[128];
  agent_default_name(name, sizeof(name));
  unsigned jobs = 1;
  static const struct option opts[] = {{"tracker", required_argument, 0, 't'},
                                       {"jobs", required_argument, 0, 'j'},
                                       {"name", required_argument, 0, 'n'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "t:j:n:h", opts, NULL)) != -1) {
    switch (c) {
    case 't': tracker = optarg; break;
    case 'j': {
      char *end;
      unsigned long v = strtoul(optarg, &end, 10);
      if (!*optarg || *end || v < 1 || v > 64) {
        fprintf(stderr, "ktune-builder: --jobs takes 1 to 64, not '%s'\n", optarg);
        return 2;
      }
      jobs = (unsigned)v;
      break;
    }
    case 'n': snprintf(name, sizeof(name), "%s", optarg); break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (!tracker || optind < argc) {
    fprintf(stderr, "ktune-builder: %s\n", tracker ? "unexpected argument" : "--tracker HOST:PORT is required (or set KTUNE_TRACKER)");
    usage(stderr);
    return 2;
  }
  /* libtcc creates its lock lazily and unsafely: compile once before the
   * thread pool can run two builds (FACTS.md). */
  uint8_t *so = NULL;
  size_t solen = 0;
  char diag[256];
  if (tcc_build_so("void ktune_warmup(void) {}\n", &so, &solen, diag, sizeof(diag)) != 0) {
    fprintf(stderr, "ktune-builder: libtcc does not work here: %s\n", diag);
    return 1;
  }
  free(so);

  builder b = {0};
  b.loop = uv_default_loop();
  struct utsname u;
  uname(&u);
  const char *backends[] = {"tcc"};
  agent_config cfg = {WHO, tracker, KTUNE__ROLE__ROLE_BUILDER, name, "", u.machine, backends, 1, jobs};
  char err[256];
  if (agent_new(b.loop, &cfg, &ops, &b, &b.ag, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune-builder: %s\n", err);
    return 2;
  }
  uv_signal_init(b.loop, &b.sigterm);
  uv_signal_init(b.loop, &b.sigint);
  b.sigterm.data = b.sigint.data = &b;
  uv_signal_start(&b.sigterm, on_signal, SIGTERM);
  uv_signal_start(&b.sigint, on_signal, SIGINT);
  log_info(WHO, "%s serving %s with %u job(s), back end tcc", name, tracker, jobs);
  uv_run(b.loop, UV_RUN_DEFAULT);
  uv_loop_close(b.loop);
  return 0;
}
