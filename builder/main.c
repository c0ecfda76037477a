/* ktune-builder: compiles candidates for the tracker. Every build, tcc's
 * included, runs in a confined child process with a deadline, so that
 * heartbeats keep flowing during a slow one and a hostile template cannot
 * read files or grow the builder (backend.h, jail.h). */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builder/backend.h"
#include "builder/buildserver.h"
#include "common/agent.h"
#include "common/auth.h"
#include "common/log.h"
#include "common/wire.h"

#define WHO "builder"

typedef struct {
  uv_loop_t *loop;
  agent *ag;
  backend *be;
  uint64_t generation;    /* bumps on every reconnect: old results are stale */
  unsigned inflight;      /* builds under way */
} builder;

typedef struct {
  builder *b;
  uint64_t generation;
} build_ticket;

static void send_result(builder *b, const backend_result *res) {
  Ktune__BuildResult r = KTUNE__BUILD_RESULT__INIT;
  r.job_id = res->job_id;
  r.status = wire_status_parse(res->status); /* the back ends speak the documented names */
  r.error = (char *)(res->error ? res->error : "");
  r.artifact.data = (uint8_t *)res->artifact;
  r.artifact.len = res->artifact_len;
  r.build_s = res->build_s;
  r.compiler_id = (char *)(res->compiler_id ? res->compiler_id : "");
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_BUILD_RESULT, &r);
  agent_send(b->ag, &env);
}

static void on_built(void *data, const backend_result *res) {
  build_ticket *t = data;
  builder *b = t->b;
  b->inflight--;
  if (t->generation == b->generation && strcmp(res->status, "CANCELLED") != 0) {
    send_result(b, res);
    int reused = res->cache && strcmp(res->cache, "miss") != 0;
    if (reused)
      log_debug(WHO, "job %llu: %s from %s, no compile (that compile took %.3f ms) (%s)",
                (unsigned long long)res->job_id, res->status,
                strcmp(res->cache, "hit") == 0 ? "the build cache"
                                               : "an identical build under way",
                res->build_s * 1e3, res->compiler_id);
    else
      log_debug(WHO, "job %llu: %s in %.3f ms (%s)%s", (unsigned long long)res->job_id,
                res->status, res->build_s * 1e3, res->compiler_id,
                res->cache ? ", build cache miss" : "");
  }
  free(t);
  if (b->inflight == 0) agent_idle(b->ag, "builds finished");
}

static void on_build_job(builder *b, const Ktune__BuildJob *j) {
  build_ticket *t = malloc(sizeof *t);
  if (t) {
    t->b = b;
    t->generation = b->generation;
  }
  if (t) b->inflight++;
  if (!t || backend_build(b->be, j, on_built, t) < 0) {
    if (t) b->inflight--;
    free(t);
    backend_result r = {.job_id = j->job_id, .status = "COMPILE_ERROR",
                        .error = "the builder is out of memory", .compiler_id = j->compiler};
    send_result(b, &r);
  }
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

static int busy(void *data, char *what, size_t len) {
  builder *b = data;
  snprintf(what, len, "%u build(s)", b->inflight);
  return b->inflight > 0;
}

/* What the cache saved, once, as the back end closes. */
static void close_backend(builder *b) {
  if (!b->be) return;
  buildcache_stats st;
  backend_cache_stats(b->be, &st);
  if (st.max_bytes)
    log_info(WHO,
             "build cache: %llu hit(s), %llu shared with an identical build under way, %llu "
             "compiled; %zu artifact(s) in %zu KiB of %zu MiB, %llu evicted",
             (unsigned long long)st.hits, (unsigned long long)st.shared,
             (unsigned long long)st.misses, st.entries, (st.bytes + 1023) >> 10,
             st.max_bytes >> 20, (unsigned long long)st.evicted);
  backend_close(b->be); /* frees it once idle: never twice */
  b->be = NULL;
}

/* Builds still under way come back CANCELLED, and are not sent. */
static int stop_now(void *data) {
  close_backend(data);
  return 0;
}

static const agent_role role = {busy, stop_now};

static void usage(FILE *f) {
  fprintf(f, "usage: ktune-builder --tracker HOST:PORT [--jobs N] [--name NAME]\n"
             "                     [--token-file PATH] [--allow-compiler PATTERN]...\n"
             "                     [--allow-any-compiler] [--build-mem-limit-mb N]\n"
             "                     [--build-read-dir DIR]... [--build-cache-mb N]\n"
             "                     [--compiler CMD]...\n"
             "       ktune-builder --version | --help\n"
             "\n"
             "Compiles candidates for a ktune tracker: with libtcc in process (--compiler\n"
             "tcc), or by running the compiler command a session names (--compiler\n"
             "\"gcc -O3 -march=native\"), which must be installed here.\n"
             "  --tracker HOST:PORT  the tracker to serve (default: KTUNE_TRACKER; one of the\n"
             "                       two is required)\n"
             "  --jobs N             candidates built at once (default 1); every build, tcc's\n"
             "                       too, is a process of its own, so N builds use N cores\n"
             "  --name NAME          name shown in `ktune status` (default HOST-PID); with a\n"
             "                       token, the name the token was issued to\n"
             "  --token-file PATH    this builder's token (default: KTUNE_TOKEN, else the file\n"
             "                       KTUNE_TOKEN_FILE names; none)\n"
             "  --allow-compiler PATTERN\n"
             "                       also run compilers whose name (or path) matches PATTERN\n"
             "                       ('*' stops at '/'); by default: cc, gcc, clang, gcc-N,\n"
             "                       clang-N, *-gcc, *-gcc-N, *-clang, found on the PATH\n"
             "  --allow-any-compiler run any command a session names, with any flags: only\n"
             "                       where everyone who can submit a session may run\n"
             "                       programs on this machine (docs/TASKS.md; default off)\n"
             "  --build-mem-limit-mb N\n"
             "                       address space one compile may use, 64 to 1048576\n"
             "                       (default %d)\n"
             "  --build-read-dir DIR also let compilers read DIR (a toolchain outside /usr;\n"
             "                       builds see only the toolchain: docs/SECURITY.md; default:\n"
             "                       none)\n"
             "  --build-cache-mb N   memory for the artifacts of successful builds, 0 to %d\n"
             "                       (default %d; 0: none): a build of the same source,\n"
             "                       defines, compiler and target is answered from it\n"
             "                       without compiling (docs/OPERATIONS.md)\n"
             "  --compiler CMD       a compiler this builder offers, such as a cross compiler\n"
             "                       (\"aarch64-linux-gnu-gcc -O2\"): asked -dumpmachine at\n"
             "                       start, its architecture is advertised, and the tracker\n"
             "                       sends builds for runners of that architecture here\n"
             "                       (default: only this machine's own; docs/BOARDS.md)\n"
             "  --version            print the version and exit\n"
             "KTUNE_DEBUG set in the environment adds debug lines to the log: one per\n"
             "build, saying whether the build cache answered it. The cache's counts are\n"
             "logged at exit.\n"
             "Exit status: 0 after SIGTERM or SIGINT, 2 for a usage error or a login the\n"
             "tracker keeps refusing, 1 for another failure.\n",
          JAIL_DEFAULT_MEM_MB, BUILDCACHE_MAX_MB, BUILDCACHE_DEFAULT_MB);
}

int main(int argc, char **argv) {
  /* The build fork server (buildserver.h), exec'd by a builder: before
   * anything of an agent is set up. */
  if (argc == 3 && strcmp(argv[1], BUILDSERVER_OPTION) == 0)
    return buildserver_main(BUILDSERVER_FD, (pid_t)strtol(argv[2], NULL, 10));
  const char *tracker = getenv("KTUNE_TRACKER");
  char name[128];
  agent_default_name(name, sizeof(name));
  unsigned jobs = 1;
  const char *token_file = NULL;
  /* The default patterns, then those --allow-compiler adds. */
  enum { MAX_ALLOW = 64 };
  const char *allow[MAX_ALLOW];
  size_t nallow = 0;
  for (; nallow < cc_ndefault_programs && nallow < MAX_ALLOW; nallow++)
    allow[nallow] = cc_default_programs[nallow];
  cc_policy policy = {allow, 0, 0};
  const char *read_dirs[MAX_ALLOW];
  /* libtcc builds are forked by this program run as a build server, by
   * its name so that ps and perf show it as ktune-builder. */
  char self[4096];
  ssize_t selflen = readlink("/proc/self/exe", self, sizeof self - 1);
  if (selflen > 0) self[selflen] = '\0';
  else snprintf(self, sizeof self, "/proc/self/exe");
  jail_opts limits = {0, read_dirs, 0, self};
  unsigned cache_mb = BUILDCACHE_DEFAULT_MB;
  const char *compilers[BACKEND_MAX_ARCHS];
  size_t ncompilers = 0;
  enum { OPT_TOKEN = 256, OPT_ALLOW, OPT_ANY, OPT_MEM, OPT_READ, OPT_CACHE, OPT_COMPILER,
         OPT_VERSION };
  static const struct option opts[] = {{"tracker", required_argument, 0, 't'},
                                       {"jobs", required_argument, 0, 'j'},
                                       {"name", required_argument, 0, 'n'},
                                       {"token-file", required_argument, 0, OPT_TOKEN},
                                       {"allow-compiler", required_argument, 0, OPT_ALLOW},
                                       {"allow-any-compiler", no_argument, 0, OPT_ANY},
                                       {"build-mem-limit-mb", required_argument, 0, OPT_MEM},
                                       {"build-read-dir", required_argument, 0, OPT_READ},
                                       {"build-cache-mb", required_argument, 0, OPT_CACHE},
                                       {"compiler", required_argument, 0, OPT_COMPILER},
                                       {"version", no_argument, 0, OPT_VERSION},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  /* getopt's messages start with argv[0]: the program, not its path. */
  argv[0] = "ktune-builder";
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
    case OPT_TOKEN: token_file = optarg; break;
    case OPT_ALLOW:
      if (nallow == MAX_ALLOW || !*optarg) {
        fprintf(stderr, "ktune-builder: --allow-compiler takes a non-empty pattern, at most %d\n",
                MAX_ALLOW - (int)cc_ndefault_programs);
        return 2;
      }
      allow[nallow++] = optarg;
      break;
    case OPT_ANY: policy.any = 1; break;
    case OPT_MEM: {
      char *end;
      unsigned long v = strtoul(optarg, &end, 10);
      if (!*optarg || *end || v < 64 || v > (1ul << 20)) {
        fprintf(stderr, "ktune-builder: --build-mem-limit-mb takes 64 to 1048576, not '%s'\n",
                optarg);
        return 2;
      }
      limits.mem_limit_mb = (unsigned)v;
      break;
    }
    case OPT_READ:
      if (limits.nread_dirs == MAX_ALLOW || optarg[0] != '/') {
        fprintf(stderr, "ktune-builder: --build-read-dir takes an absolute path, at most %d\n",
                MAX_ALLOW);
        return 2;
      }
      read_dirs[limits.nread_dirs++] = optarg;
      break;
    case OPT_CACHE: {
      char *end;
      unsigned long v = strtoul(optarg, &end, 10);
      if (!*optarg || *end || optarg[0] == '-' || v > BUILDCACHE_MAX_MB ||
          v > SIZE_MAX >> 20) {
        fprintf(stderr, "ktune-builder: --build-cache-mb takes 0 to %d, not '%s'\n",
                BUILDCACHE_MAX_MB, optarg);
        return 2;
      }
      cache_mb = (unsigned)v;
      break;
    }
    case OPT_COMPILER:
      if (ncompilers == BACKEND_MAX_ARCHS - 1 || !*optarg) {
        fprintf(stderr, "ktune-builder: --compiler takes a compiler command, at most %d\n",
                BACKEND_MAX_ARCHS - 1);
        return 2;
      }
      compilers[ncompilers++] = optarg;
      break;
    case 'h': usage(stdout); return 0;
    case OPT_VERSION: printf("ktune-builder %s\n", KTUNE_VERSION); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (!tracker || optind < argc) {
    fprintf(stderr, "ktune-builder: %s\n", tracker ? "unexpected argument" : "--tracker HOST:PORT is required (or set KTUNE_TRACKER)");
    usage(stderr);
    return 2;
  }
  char token[AUTH_TOKEN_MAX];
  int have_token = agent_token("ktune-builder", token_file, token, sizeof token);
  if (have_token < 0) return 2;
  policy.nprograms = nallow;

  builder b = {0};
  b.loop = uv_default_loop();
  char err[256];
  if (backend_new_limited(b.loop, &policy, &limits, &b.be, err, sizeof err) < 0) {
    fprintf(stderr, "ktune-builder: %s\n", err);
    return 1;
  }
  if (backend_set_cache(b.be, (size_t)cache_mb << 20) < 0) {
    fprintf(stderr, "ktune-builder: no memory for a %u MiB build cache\n", cache_mb);
    backend_close(b.be);
    return 1;
  }
  for (size_t i = 0; i < ncompilers; i++) {
    char arch[65];
    if (backend_add_compiler(b.be, &policy, compilers[i], arch, sizeof arch, err, sizeof err) < 0) {
      fprintf(stderr, "ktune-builder: %s\n", err);
      backend_close(b.be);
      return 2;
    }
    log_info(WHO, "compiler '%s' builds for %s", compilers[i], arch);
  }
  /* tcc makes code for this machine only, named in .arch; every build
   * with an external compiler is checked again (-dumpmachine). */
  const char *archs[BACKEND_MAX_ARCHS];
  size_t narchs = backend_archs(b.be, archs, BACKEND_MAX_ARCHS);
  agent_config cfg = {.who = WHO,
                      .tracker = tracker,
                      .role = KTUNE__ROLE__ROLE_BUILDER,
                      .name = name,
                      .key = "",
                      .arch = backend_host_arch(b.be),
                      .backends = (const char **)backend_names,
                      .nbackends = BACKEND_NNAMES,
                      .slots = jobs,
                      .archs = archs,
                      .narchs = narchs,
                      .token = have_token ? token : NULL};
  int confined;
  const char *sandbox = backend_sandbox(b.be, &confined);
  if (confined) log_info(WHO, "builds run confined: %s", sandbox);
  else log_warn(WHO, "builds run with %s", sandbox);
  log_info(WHO, "%s serving %s with %u job(s), back ends tcc (%s) and %s, build cache %u MiB",
           name, tracker, jobs, backend_host_arch(b.be),
           policy.any ? "ANY external compiler command" : "external compilers", cache_mb);
  int code = agent_main(b.loop, "ktune-builder", &cfg, &ops, &role, &b, &b.ag);
  close_backend(&b); /* unless stop_now did: a drain ends with no build under way */
  memset(token, 0, sizeof token);
  return code;
}
