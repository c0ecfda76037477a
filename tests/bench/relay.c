/* ktune-relay: a pass-through between agents and the tracker that times
 * each runner's jobs with microsecond clocks, which the history's
 * millisecond timestamps cannot. Per runner connection, for each job k it
 * sees RunJob k arrive from the tracker, RunResult k leave for it, and
 * RunJob k+1 arrive; the kernel's own timed time is the RunResult's costs
 * times its calls per round. Then
 *   overhead  = (RunJob k+1 - RunJob k) - timed   a trial's wall time on
 *               its runner beyond the kernel's timed time
 *   runner    = (RunResult k - RunJob k) - timed  the runner's share: its
 *               measuring child, loading, the reference check
 *   tracker   = RunJob k+1 - RunResult k          the farm's share: record,
 *               commit, dispatch (and waiting for a build)
 * Builders' connections may pass too: each BuildJob is timed to its
 * BuildResult (build), which tells whether the farm's share is the
 * tracker or waiting for a build.
 * Frames are forwarded as they come, unchanged; only sessions without
 * tokens can be read (with tokens every frame ends in a MAC the relay
 * would have to strip). Not installed; scripts/bench-farm drives it. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/addr.h"
#include "common/frame.h"
#include "common/wire.h"
#include "tests/bench/benchutil.h"

#define PROG "ktune-relay"

typedef struct relay relay;
typedef struct pair pair;

/* One end of a relayed connection, with the frames it sends so far. */
typedef struct {
  uv_tcp_t tcp;
  pair *pr;
  frame_reader rd;
  int up;                  /* the tracker's side */
} side;

struct pair {
  relay *R;
  side down, up;           /* down: the agent; up: the tracker */
  uv_connect_t creq;
  int connected;
  uv_buf_t *held;          /* agent bytes that came before the tracker answered */
  size_t nheld;
  int closing, open;
  /* The runner's current job. */
  uint64_t job_ns, result_ns;
  double timed_s;
  int have_result;
  /* A builder's jobs in flight (at most its slots, 64). */
  struct { uint64_t id, ns; } builds[64];
};

struct relay {
  uv_loop_t *loop;
  uv_tcp_t listener;
  struct sockaddr_storage tracker;
  uv_signal_t sigterm, sigint;
  lat_hist overhead, runner, tracker_part, build;
  uint64_t jobs, results, unreadable, build_jobs;
  double timed_sum_s;
  const char *stats_path;
};

static void usage(FILE *f) {
  fprintf(f,
          "usage: " PROG " --tracker HOST:PORT [--listen HOST:PORT] [--port-file FILE]\n"
          "                   [--stats FILE]\n"
          "       " PROG " --help\n"
          "\n"
          "Passes agents' connections through to the tracker unchanged, and times each\n"
          "runner's jobs in microseconds: a trial's overhead (its wall time on the runner\n"
          "beyond the kernel's timed time), split into the runner's share and the farm's\n"
          "(RunResult to the next RunJob), and each build from BuildJob to BuildResult.\n"
          "Point runners' and builders' --tracker at it. Works only without tokens. On\n"
          "SIGTERM or SIGINT it writes its figures as JSON and exits.\n"
          "  --tracker HOST:PORT  the tracker (required)\n"
          "  --listen HOST:PORT   where to listen (default 127.0.0.1:0: a free port)\n"
          "  --port-file FILE     write the address actually bound, once listening\n"
          "  --stats FILE         where the JSON goes (default: standard output)\n"
          "Exit status: 0 after writing the figures, 1 on a runtime failure, 2 for a usage\n"
          "error.\n");
}

typedef struct {
  uv_write_t req;
  uv_buf_t buf;
} wreq;

static void on_closed(uv_handle_t *h) {
  side *s = h->data;
  pair *pr = s->pr;
  frame_reader_free(&s->rd);
  if (--pr->open > 0) return;
  for (size_t i = 0; i < pr->nheld; i++) free(pr->held[i].base);
  free(pr->held);
  free(pr);
}

static void pair_close(pair *pr) {
  if (pr->closing) return;
  pr->closing = 1;
  /* A connect still in flight is cancelled by the close; its callback
   * then sees closing and does nothing. */
  uv_close((uv_handle_t *)&pr->down.tcp, on_closed);
  uv_close((uv_handle_t *)&pr->up.tcp, on_closed);
}

static void on_written(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  free(w->buf.base);
  free(w);
  (void)status; /* a failed write shows up as a failed read and closes the pair */
}

/* Takes ownership of base. */
static void forward(pair *pr, side *to, char *base, size_t n) {
  wreq *w = malloc(sizeof(*w));
  if (!w) {
    free(base);
    pair_close(pr);
    return;
  }
  w->buf = uv_buf_init(base, (unsigned)n);
  if (uv_write(&w->req, (uv_stream_t *)&to->tcp, &w->buf, 1, on_written) < 0) {
    free(base);
    free(w);
    pair_close(pr);
  }
}

static double timed_s(const Ktune__RunResult *r) {
  if (r->status != WIRE_TRIAL(OK)) return 0;
  double sum = 0;
  for (size_t i = 0; i < r->n_costs_s; i++) sum += r->costs_s[i];
  return sum * (r->number ? r->number : 1);
}

static uint64_t us_clamped(double s) { return s > 0 ? (uint64_t)(s * 1e6 + 0.5) : 0; }

/* One whole frame passed by: time it if it is a runner's job or result. */
static void observe(pair *pr, int from_tracker, const uint8_t *p, uint32_t len, uint64_t now) {
  relay *R = pr->R;
  Ktune__Envelope *env = wire_unpack(p, len);
  if (!env) {
    R->unreadable++;
    return;
  }
  if (from_tracker && env->msg_case == KTUNE__ENVELOPE__MSG_RUN_JOB) {
    R->jobs++;
    if (pr->job_ns && pr->have_result) {
      double cycle = (double)(now - pr->job_ns) / 1e9;
      double held = (double)(pr->result_ns - pr->job_ns) / 1e9;
      lat_add(&R->overhead, us_clamped(cycle - pr->timed_s));
      lat_add(&R->runner, us_clamped(held - pr->timed_s));
      lat_add(&R->tracker_part, (now - pr->result_ns) / 1000);
    }
    pr->job_ns = now;
    pr->have_result = 0;
  } else if (!from_tracker && env->msg_case == KTUNE__ENVELOPE__MSG_RUN_RESULT && pr->job_ns &&
             env->run_result->status != WIRE_TRIAL(REFUSED)) {
    R->results++;
    pr->result_ns = now;
    pr->timed_s = timed_s(env->run_result);
    R->timed_sum_s += pr->timed_s;
    pr->have_result = 1;
  }
  if (from_tracker && env->msg_case == KTUNE__ENVELOPE__MSG_BUILD_JOB) {
    R->build_jobs++;
    for (size_t i = 0; i < sizeof(pr->builds) / sizeof(pr->builds[0]); i++)
      if (!pr->builds[i].id) {
        pr->builds[i].id = env->build_job->job_id;
        pr->builds[i].ns = now;
        break;
      }
  } else if (!from_tracker && env->msg_case == KTUNE__ENVELOPE__MSG_BUILD_RESULT) {
    for (size_t i = 0; i < sizeof(pr->builds) / sizeof(pr->builds[0]); i++)
      if (pr->builds[i].id == env->build_result->job_id) {
        lat_add(&R->build, (now - pr->builds[i].ns) / 1000);
        pr->builds[i].id = 0;
        break;
      }
  }
  wire_free(env);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h;
  buf->base = malloc(hint);
  buf->len = buf->base ? hint : 0;
}

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  side *s = st->data;
  pair *pr = s->pr;
  if (n <= 0) {
    free(buf->base);
    if (n < 0) pair_close(pr);
    return;
  }
  uint64_t now = uv_hrtime();
  if (frame_reader_feed(&s->rd, buf->base, (size_t)n) == 0) {
    const uint8_t *p;
    uint32_t len;
    while (frame_reader_next(&s->rd, &p, &len) == 1) observe(pr, s->up, p, len, now);
  }
  if (s->up) {
    forward(pr, &pr->down, buf->base, (size_t)n);
  } else if (pr->connected) {
    forward(pr, &pr->up, buf->base, (size_t)n);
  } else {
    uv_buf_t *nh = realloc(pr->held, (pr->nheld + 1) * sizeof(*nh));
    if (!nh) {
      free(buf->base);
      pair_close(pr);
      return;
    }
    pr->held = nh;
    pr->held[pr->nheld++] = uv_buf_init(buf->base, (unsigned)n);
  }
}

static void on_upstream(uv_connect_t *req, int status) {
  pair *pr = req->data;
  if (pr->closing) return;
  if (status < 0) {
    fprintf(stderr, "%s: cannot reach the tracker: %s\n", PROG, uv_strerror(status));
    pair_close(pr);
    return;
  }
  pr->connected = 1;
  uv_tcp_nodelay(&pr->up.tcp, 1);
  for (size_t i = 0; i < pr->nheld; i++) forward(pr, &pr->up, pr->held[i].base, pr->held[i].len);
  free(pr->held);
  pr->held = NULL;
  pr->nheld = 0;
  uv_read_start((uv_stream_t *)&pr->up.tcp, alloc_cb, read_cb);
}

static void on_connection(uv_stream_t *server, int status) {
  relay *R = server->data;
  if (status < 0) return;
  pair *pr = calloc(1, sizeof(*pr));
  if (!pr) return;
  pr->R = R;
  pr->down.pr = pr->up.pr = pr;
  pr->up.up = 1;
  uv_tcp_init(R->loop, &pr->down.tcp);
  uv_tcp_init(R->loop, &pr->up.tcp);
  pr->down.tcp.data = &pr->down;
  pr->up.tcp.data = &pr->up;
  pr->open = 2;
  frame_reader_init(&pr->down.rd, FRAME_MAX_DEFAULT);
  frame_reader_init(&pr->up.rd, FRAME_MAX_DEFAULT);
  if (uv_accept(server, (uv_stream_t *)&pr->down.tcp) != 0) {
    pair_close(pr);
    return;
  }
  uv_tcp_nodelay(&pr->down.tcp, 1);
  pr->creq.data = pr;
  if (uv_tcp_connect(&pr->creq, &pr->up.tcp, (struct sockaddr *)&R->tracker, on_upstream) != 0) {
    pair_close(pr);
    return;
  }
  uv_read_start((uv_stream_t *)&pr->down.tcp, alloc_cb, read_cb);
}

static int write_stats(relay *R) {
  FILE *f = R->stats_path ? fopen(R->stats_path, "w") : stdout;
  if (!f) {
    fprintf(stderr, "%s: cannot write --stats %s\n", PROG, R->stats_path);
    return -1;
  }
  fprintf(f, "{\"run_jobs\": %llu, \"run_results\": %llu, \"unreadable_frames\": %llu, "
          "\"timed_mean_us\": %.2f, ",
          (unsigned long long)R->jobs, (unsigned long long)R->results,
          (unsigned long long)R->unreadable,
          R->results ? R->timed_sum_s / (double)R->results * 1e6 : 0.0);
  lat_json(f, "overhead", &R->overhead);
  fprintf(f, ", ");
  lat_json(f, "runner", &R->runner);
  fprintf(f, ", ");
  lat_json(f, "tracker", &R->tracker_part);
  fprintf(f, ", \"build_jobs\": %llu, ", (unsigned long long)R->build_jobs);
  lat_json(f, "build", &R->build);
  fprintf(f, "}\n");
  return f != stdout && fclose(f) != 0 ? -1 : 0;
}

static void on_signal(uv_signal_t *h, int sig) {
  (void)sig;
  relay *R = h->data;
  /* Links are left to the process's exit: the figures are what matter. */
  uv_stop(R->loop);
}

static int write_port_file(relay *R, const char *path) {
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  char buf[96];
  if (uv_tcp_getsockname(&R->listener, (struct sockaddr *)&ss, &len) != 0) return -1;
  addr_format(&ss, buf, sizeof(buf));
  strcat(buf, "\n");
  return bench_write_file(path, buf);
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"tracker", required_argument, 0, 't'}, {"listen", required_argument, 0, 'l'},
      {"port-file", required_argument, 0, 'p'}, {"stats", required_argument, 0, 's'},
      {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  const char *tracker = NULL, *listen = "127.0.0.1:0", *port_file = NULL;
  static relay R;
  int c;
  /* getopt's messages start with argv[0]: the program, not its path. */
  argv[0] = PROG;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 't': tracker = optarg; break;
    case 'l': listen = optarg; break;
    case 'p': port_file = optarg; break;
    case 's': R.stats_path = optarg; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", PROG, argv[optind]);
    return 2;
  }
  if (!tracker) {
    fprintf(stderr, "%s: --tracker HOST:PORT is required (see --help)\n", PROG);
    return 2;
  }
  char err[256];
  struct sockaddr_storage ss;
  if (addr_resolve(tracker, &R.tracker, err, sizeof(err)) < 0 ||
      addr_resolve(listen, &ss, err, sizeof(err)) < 0) {
    fprintf(stderr, "%s: %s\n", PROG, err);
    return 2;
  }
  if (lat_init(&R.overhead) < 0 || lat_init(&R.runner) < 0 || lat_init(&R.tracker_part) < 0 ||
      lat_init(&R.build) < 0) {
    fprintf(stderr, "%s: out of memory\n", PROG);
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  R.loop = uv_default_loop();
  uv_tcp_init(R.loop, &R.listener);
  R.listener.data = &R;
  int rc = uv_tcp_bind(&R.listener, (struct sockaddr *)&ss, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&R.listener, 128, on_connection);
  if (rc < 0) {
    fprintf(stderr, "%s: cannot listen on %s: %s\n", PROG, listen, uv_strerror(rc));
    return 1;
  }
  if (port_file && write_port_file(&R, port_file) < 0) {
    fprintf(stderr, "%s: cannot write --port-file %s\n", PROG, port_file);
    return 1;
  }
  uv_signal_init(R.loop, &R.sigterm);
  uv_signal_init(R.loop, &R.sigint);
  R.sigterm.data = R.sigint.data = &R;
  uv_signal_start(&R.sigterm, on_signal, SIGTERM);
  uv_signal_start(&R.sigint, on_signal, SIGINT);
  uv_run(R.loop, UV_RUN_DEFAULT);
  return write_stats(&R) < 0 ? 1 : 0;
}
