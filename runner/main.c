/* ktune-runner: measures candidates on this device. The agent never runs
 * a kernel itself: each job runs in a fresh child process, forked by a
 * clean fork server (this same program with --fork-server;
 * runner/forkserver.h), in its own process group, sandboxed, so a kernel
 * that crashes, hangs or misbehaves costs one trial, not the runner or a
 * later trial. The agent keeps what outlives a trial: the connection and the
 * reference outputs of the tasks it has seen (runner/refcache.h). A job
 * under way outlives the connection too: its child goes on, the runner
 * tells the tracker it dials again that it still holds the job
 * (Hello.holding), and the result goes to whichever tracker is there when
 * the child is done, or right after the next Welcome. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/agent.h"
#include "common/auth.h"
#include "common/frame.h"
#include "common/log.h"
#include "common/wire.h"
#include "runner/device.h"
#include "runner/forkserver.h"
#include "runner/measure.h"
#include "runner/refcache.h"
#include "runner/sandbox.h"
#include "runner/supervise.h"
#include "runner/timing.h"

#define WHO "runner"
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

struct runner {
  uv_loop_t *loop;
  agent *ag;
  supervise_opts so;
  forkserver *fs;
  supervise_job *busy;
  /* The last job's result, kept while no tracker could take it. */
  Ktune__Envelope *pending;
  runner_fault fault;
  int cpu;
  refcache refs;
  char exe[4096];
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

/* The job's child is done. */
static void on_measured(void *data, uint64_t job_id, Ktune__TrialStatus status, const char *error,
                        const Ktune__RunResult *res) {
  runner *r = data;
  report_result(r, job_id, status, error, res);
  r->busy = NULL;
  agent_idle(r->ag, "job finished");
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
             (unsigned long long)supervise_job_id(r->busy));
    send_result(r, job->job_id, WIRE_TRIAL(REFUSED), why, NULL);
    return;
  }
  int rc = supervise_start(r->loop, &r->so, job, &tm, on_measured, r, &r->busy);
  if (rc < 0) {
    send_result(r, job->job_id, WIRE_TRIAL(RUNNER_ERROR),
                "cannot start the measuring process: runner out of memory", NULL);
    return;
  }
  agent_set_holding(r->ag, job->job_id);
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
             (unsigned long long)supervise_job_id(r->busy));
}

static const agent_ops ops = {on_message, on_disconnect};

static int busy(void *data, char *what, size_t len) {
  runner *r = data;
  if (r->busy) snprintf(what, len, "job %llu", (unsigned long long)supervise_job_id(r->busy));
  return r->busy != NULL;
}

/* The agent stops once the child is reaped (on_measured). */
static int stop_now(void *data) {
  runner *r = data;
  if (!r->busy) return 0;
  supervise_kill(r->busy);
  return 1;
}

static const agent_role role = {busy, stop_now};

static void usage(FILE *f) {
  fprintf(f, "usage: ktune-runner --tracker HOST:PORT --key KEY [--cpu N] [--mem-limit-mb N]\n"
             "                    [--name NAME] [--token-file PATH] [--dump-dir DIR]\n"
             "                    [--sandbox-off PARTS] [--test-fault MODE]\n"
             "       ktune-runner --version | --help\n"
             "\n"
             "Measures candidates on this device for a ktune tracker, one at a time.\n"
             "  --tracker HOST:PORT  the tracker to serve (default: KTUNE_TRACKER; one of the\n"
             "                       two is required)\n"
             "  --key KEY            device key: the pool this device belongs to (required)\n"
             "  --cpu N              pin measurements to core N, one runner per core (default:\n"
             "                       not pinned)\n"
             "  --mem-limit-mb N     address space a measurement may use, buffers included\n"
             "                       (default: half of this machine's memory)\n"
             "  --name NAME          name shown in `ktune status` (default HOST-PID); with a\n"
             "                       token, the name the token was issued to\n"
             "  --token-file PATH    this runner's token (default: KTUNE_TOKEN, else the file\n"
             "                       KTUNE_TOKEN_FILE names; none; docs/SECURITY.md)\n"
             "  --dump-dir DIR       write each job's raw output buffers to DIR/job-ID.out\n"
             "                       (default: none)\n"
             "  --sandbox-off PARTS  measure without these parts of the sandbox, where this\n"
             "                       machine cannot honour them (qemu-user): seccomp,\n"
             "                       mem-limit or both, comma-separated; the runner refuses\n"
             "                       to start with a part missing unless it is named here,\n"
             "                       and `ktune status` shows it (default: none;\n"
             "                       docs/BOARDS.md)\n"
             "  --test-fault MODE    misbehave, for ktune's own tests: silent, fail, arch=NAME,\n"
             "                       tiny-cost or huge-error (may be given more than once;\n"
             "                       default: none)\n"
             "  --version            print the version and exit\n"
             "See docs/MEASUREMENT.md for getting stable numbers. KTUNE_DEBUG set in the\n"
             "environment adds debug lines to the log.\n"
             "Exit status: 0 after SIGTERM or SIGINT, 2 for a usage error or a login the\n"
             "tracker keeps refusing, 1 for another failure.\n");
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

enum { OPT_CPU = 256, OPT_MEM, OPT_PARENT, OPT_TOKEN, OPT_FAULT, OPT_SANDBOX_OFF, OPT_VERSION };

/* The parts of the sandbox this runner measures without: those the
 * operator named, after checking that every other part holds here, so
 * that none is ever missing unsaid. Returns 0, or 2 (a usage error: the
 * machine needs --sandbox-off) after saying why. */
static int check_sandbox(unsigned off) {
  /* A sanitizer build applies no memory limit at all (runner/measure.h). */
  unsigned applied = MEASURE_LIMITS_MEMORY ? SANDBOX_PARTS : SANDBOX_PARTS & ~SANDBOX_PART_MEM_LIMIT;
  char why[768], names[64], all[64];
  unsigned missing = sandbox_probe(applied & ~off, why, sizeof why);
  if (missing) {
    sandbox_parts_text(missing | off, all, sizeof all);
    fprintf(stderr, "ktune-runner: this machine cannot honour the whole sandbox: %s. Kernels "
                    "from the network would run with that part silently missing; to measure "
                    "without it anyway (qemu-user, a test board), start the runner with "
                    "--sandbox-off %s (docs/BOARDS.md)\n", why, all);
    return 2;
  }
  if (off) {
    sandbox_parts_text(off, names, sizeof names);
    int sc = (off & SANDBOX_PART_SECCOMP) != 0, mem = (off & SANDBOX_PART_MEM_LIMIT) != 0;
    log_warn(WHO, "sandbox: measuring WITHOUT %s (--sandbox-off): a kernel may %s%s%s; `ktune "
             "status` shows it", names, sc ? "make any system call this runner's user may" : "",
             sc && mem ? " and " : "", mem ? "use all the memory it can get" : "");
  }
  return 0;
}

int main(int argc, char **argv) {
  const char *tracker = getenv("KTUNE_TRACKER");
  const char *key = NULL, *dump_dir = NULL, *token_file = NULL, *fault_arch = NULL;
  runner_fault fault = FAULT_NONE;
  unsigned sandbox_off = 0;
  char off_text[64] = "";
  int fork_server = 0;
  uint64_t cpu = UINT64_MAX, mem = 0, parent = 0;
  char name[128];
  agent_default_name(name, sizeof(name));
  static const struct option opts[] = {{"tracker", required_argument, 0, 't'},
                                       {"key", required_argument, 0, 'k'},
                                       {"name", required_argument, 0, 'n'},
                                       {"dump-dir", required_argument, 0, 'D'},
                                       {"cpu", required_argument, 0, OPT_CPU},
                                       {"mem-limit-mb", required_argument, 0, OPT_MEM},
                                       {"token-file", required_argument, 0, OPT_TOKEN},
                                       {"fork-server", no_argument, 0, 'F'},
                                       {"parent-pid", required_argument, 0, OPT_PARENT},
                                       {"test-fault", required_argument, 0, OPT_FAULT},
                                       {"sandbox-off", required_argument, 0, OPT_SANDBOX_OFF},
                                       {"version", no_argument, 0, OPT_VERSION},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  /* getopt's messages start with argv[0]: the program, not its path. */
  argv[0] = "ktune-runner";
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
    case OPT_PARENT: if (parse_num("--parent-pid", optarg, 1, INT32_MAX, &parent)) return 2; break;
    case OPT_FAULT: if (parse_fault(optarg, &fault, &fault_arch)) return 2; break;
    case OPT_SANDBOX_OFF: {
      char why[160];
      if (sandbox_parse_parts(optarg, &sandbox_off, why, sizeof why) < 0) {
        fprintf(stderr, "ktune-runner: --sandbox-off: %s\n", why);
        return 2;
      }
      sandbox_parts_text(sandbox_off, off_text, sizeof off_text);
      break;
    }
    case 'F': fork_server = 1; break;
    case 'h': usage(stdout); return 0;
    case OPT_VERSION: printf("ktune-runner %s\n", KTUNE_VERSION); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (fork_server) {
    /* Started by the runner only (runner/forkserver.c), never by hand. */
    if (!parent || optind < argc) {
      fprintf(stderr, "ktune-runner: --fork-server is started by the runner itself\n");
      return 2;
    }
    measure_opts mo = MEASURE_OPTS_INIT;
    mo.dump_dir = dump_dir;
    mo.cpu = cpu == UINT64_MAX ? -1 : (int)cpu;
    mo.mem_limit_mb = sandbox_off & SANDBOX_PART_MEM_LIMIT ? 0 : mem;
    mo.sandbox_off = sandbox_off & SANDBOX_PART_SECCOMP;
    return forkserver_main(FORKSERVER_FD, (pid_t)parent, &mo);
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
  r.fault = fault;
  r.cpu = cpu == UINT64_MAX ? -1 : (int)cpu;
  refcache_init(&r.refs);
  if (r.cpu >= 0) {
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0 && !CPU_ISSET(r.cpu, &allowed)) {
      fprintf(stderr, "ktune-runner: --cpu %d: this process may not run there (%ld CPUs online; "
                      "see taskset and isolcpus)\n", r.cpu, sysconf(_SC_NPROCESSORS_ONLN));
      return 2;
    }
  }
  int sandbox_rc = check_sandbox(sandbox_off);
  if (sandbox_rc) return sandbox_rc;
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
  char token[AUTH_TOKEN_MAX];
  int have_token = agent_token("ktune-runner", token_file, token, sizeof token);
  if (have_token < 0) return 2;
  /* After agent_token: the server's environment has no token in it. */
  forkserver_opts fo = {.exe = r.exe, .cpu = r.cpu, .dump_dir = dump_dir,
                        .mem_limit_mb = mem ? mem : default_mem_limit_mb(),
                        .sandbox_off = sandbox_off ? off_text : NULL};
  if (forkserver_new(r.loop, &fo, &r.fs, err, sizeof err) < 0) {
    fprintf(stderr, "ktune-runner: %s\n", err);
    memset(token, 0, sizeof token);
    if (claim >= 0) close(claim);
    return 1;
  }
  r.so = (supervise_opts){.fs = r.fs, .refs = &r.refs};
  device_info dev;
  device_identity(r.cpu, &dev);
  report_device(&dev, r.cpu);
  agent_config cfg = {.who = WHO, .tracker = tracker, .role = KTUNE__ROLE__ROLE_RUNNER, .name = name,
                      .key = key, .arch = fault_arch ? fault_arch : dev.arch, .slots = 1,
                      .cpu_model = dev.cpu_model, .cores = dev.cores, .kernel = dev.kernel,
                      .governor = dev.governor, .sandbox_off = off_text,
                      .token = have_token ? token : NULL,
                      .on_welcome = on_welcome};
  log_info(WHO, "%s serving key %s for %s%s", name, key, tracker,
           r.cpu >= 0 ? "" : " (measurements not pinned: --cpu N pins them)");
  if (fault != FAULT_NONE || fault_arch)
    log_warn(WHO, "--test-fault: this runner misbehaves on purpose; it is for ktune's own tests");
  int code = agent_main(r.loop, "ktune-runner", &cfg, &ops, &role, &r, &r.ag);
  /* The agent's loop has ended around the server's handles (not counted). */
  forkserver_free(r.fs);
  uv_run(r.loop, UV_RUN_DEFAULT);
  uv_loop_close(r.loop);
  wire_free(r.pending);
  refcache_clear(&r.refs);
  memset(token, 0, sizeof token);
  if (claim >= 0) close(claim);
  return code;
}
