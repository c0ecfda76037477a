#include "builder/cc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builder/buildserver.h"
#include "builder/fsutil.h"
#include "builder/jail.h"
#include "builder/tcc.h"
#include "common/child.h"
#include "common/log.h"
#include "common/target.h"

extern char **environ;

#define CC_PROBE_TIMEOUT_MS 10000
/* Output kept per stream; the rest is read and dropped so that a chatty
 * compiler never blocks on a full pipe. */
#define CC_CAPTURE_MAX (64u << 10)
#define CC_DIAG_LINES 20
#define CC_DIAG_MAX 2000
/* Well under the wire's 64 MiB frame limit. */
#define CC_ARTIFACT_MAX (32u << 20)

/* ---- one child process ---- */

typedef struct cc_run cc_run;
typedef void (*cc_run_fn)(cc_run *run, const child_result *res);

/* A confined child (common/child.h, jail.h) under way. */
struct cc_run {
  cc_ctx *ctx;
  cc_run *prev, *next;  /* ctx->runs, so that cc_close can kill them */
  child *ch;
  cc_run_fn done;
  void *data;
  int tag;              /* which probe question, for probes */
};

/* ---- a compiler command, probed once ---- */

typedef struct cc_req cc_req;

enum { PROBE_VERSION, PROBE_MACHINE, PROBE_NATIVE, PROBE_COUNT };

typedef struct cc_probe {
  struct cc_probe *next;
  cc_ctx *ctx;
  char *key;           /* the words joined by single blanks */
  char **argv;
  int argc;
  int ready;
  int pending;         /* probe processes still running */
  char *out[PROBE_COUNT];
  int failed;          /* could not run the command at all */
  char fail[512];
  char *id;            /* compiler identity */
  char arch[64];       /* uname -m style; "" when the compiler would not say */
  char triple[128];
  cc_req *waiters;     /* builds waiting for the answers, in arrival order */
  cc_req **waiters_tail;
} cc_probe;

struct cc_req {
  cc_ctx *ctx;
  cc_req *next;        /* probe waiters */
  cc_probe *probe;
  char *command;
  char *source;
  const char *fixed_id; /* libtcc in the child: no command, no probe */
  int retried;         /* a libtcc build whose fork server died was started again */
  char target[64];
  uint32_t timeout_ms;
  cc_done_fn done;
  void *data;
  char dir[4096];
  uv_timer_t defer;    /* delivers results decided outside a callback */
  const char *status;
  char *error;
  double seconds;
  /* With a cache (cc_reuse): */
  buildcache_key key;
  const char *cache;   /* cc_result.cache */
  buildcache_entry hit; /* a hit's artifact, delivered on the next turn */
  int leading;         /* compiling, on ctx->leaders */
  cc_req *lnext;       /* ctx->leaders */
  cc_req *followers;   /* identical builds waiting for this one's outcome */
  cc_req **followers_tail;
  cc_req *fnext;
};

struct cc_ctx {
  uv_loop_t *loop;
  char **programs;     /* the policy's patterns, copied; NULL: the defaults */
  size_t nprograms;
  int any;
  jail *jail;
  cc_probe *probes;
  cc_run *runs;
  size_t live;         /* runs and requests not yet freed */
  int closed;
  buildcache *cache;   /* NULL: off */
  char *server_exe;    /* jail_opts.server_exe */
  buildserver *bs;     /* forks libtcc builds; NULL until one could start */
  jail_plan tcc_plan;  /* the ruleset of every libtcc build, once tcc_ready */
  int tcc_ready;
  uint64_t compiles;   /* started: not answered from the cache or shared */
  char tcc_dir[4096];  /* the folder libtcc builds work in, once made */
  int tcc_dir_fd;      /* it, O_PATH; -1 until made */
  cc_req *leaders;     /* compiles others may wait for (cc_reuse) */
};

static void cc_maybe_free(cc_ctx *c) {
  if (!c->closed || c->live || c->probes) return;
  for (size_t i = 0; i < c->nprograms; i++) free(c->programs[i]);
  free(c->programs);
  jail_free(c->jail);
  buildcache_free(c->cache);
  buildserver_free(c->bs);
  if (c->tcc_ready) jail_plan_release(&c->tcc_plan);
  if (c->tcc_dir_fd >= 0) close(c->tcc_dir_fd);
  if (c->tcc_dir[0]) fsutil_rmtree(c->tcc_dir);
  free(c->server_exe);
  free(c);
}

/* ---- small text helpers ---- */

static char *cc_strdup(const char *s) { return strdup(s ? s : ""); }

static char *cc_join(char *const *w, int n) {
  size_t len = 1;
  for (int i = 0; i < n; i++) len += strlen(w[i]) + 1;
  char *s = malloc(len), *p = s;
  if (!s) return NULL;
  for (int i = 0; i < n; i++) {
    size_t l = strlen(w[i]);
    if (i) *p++ = ' ';
    memcpy(p, w[i], l);
    p += l;
  }
  *p = '\0';
  return s;
}

/* The first lines of what a process printed, plain ASCII, for a message
 * that ends up in JSON and in terminals. */
static void cc_diag(const char *text, size_t n, char *out, size_t len) {
  size_t o = 0;
  int lines = 0;
  for (size_t i = 0; text && i < n && o + 1 < len && lines < CC_DIAG_LINES; i++) {
    unsigned char ch = (unsigned char)text[i];
    if (ch == '\n') {
      lines++;
      if (lines == CC_DIAG_LINES || i + 1 == n) break;
    } else if (ch == '\t') {
      ch = ' ';
    } else if (ch < 0x20 || ch >= 0x7f) {
      ch = '?';
    }
    out[o++] = (char)ch;
  }
  while (o && (out[o - 1] == '\n' || out[o - 1] == ' ')) o--;
  out[o] = '\0';
}

/* ---- running a process ---- */

static void cc_run_done(void *data, const child_result *res) {
  cc_run *run = data;
  cc_ctx *c = run->ctx;
  if (run->prev) run->prev->next = run->next;
  else c->runs = run->next;
  if (run->next) run->next->prev = run->prev;
  run->done(run, res);
  free(run);
  c->live--;
  cc_maybe_free(c);
}

/* The environment of a compiler: ours, with messages in plain ASCII
 * (gcc quotes names with UTF-8 marks in other locales) and temporary
 * files in its work folder, the one place it may write (tmpdir, a
 * "TMPDIR=..." string, or NULL). */
static char **cc_env(char *tmpdir) {
  size_t n = 0;
  while (environ && environ[n]) n++;
  char **env = calloc(n + 3, sizeof *env);
  if (!env) return NULL;
  size_t k = 0;
  env[k++] = "LC_ALL=C";
  if (tmpdir) env[k++] = tmpdir;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "LC_ALL=", 7) != 0 && strncmp(environ[i], "TMPDIR=", 7) != 0)
      env[k++] = environ[i];
  return env;
}

/* Starts spec as a run of c whose end goes to done; spec's done and data
 * are filled here. Returns 0, or a negative code with the reason in err
 * when done will not come. */
static int cc_run_launch(cc_ctx *c, child_spec *spec, cc_run_fn done, void *data, int tag,
                         char *err, size_t errlen) {
  cc_run *run = calloc(1, sizeof *run);
  if (!run) {
    free(spec->in);
    snprintf(err, errlen, "builder out of memory");
    return -ENOMEM;
  }
  run->ctx = c;
  run->done = done;
  run->data = data;
  run->tag = tag;
  spec->done = cc_run_done;
  spec->data = run;
  int rc = child_start(c->loop, spec, &run->ch);
  if (rc < 0) {
    free(run);
    snprintf(err, errlen, "builder out of memory");
    return rc;
  }
  c->live++;
  run->next = c->runs;
  if (c->runs) c->runs->prev = run;
  c->runs = run;
  return 0;
}

/* Starts argv in a confined child working in cwd; done runs later,
 * exactly once, from the loop (with spawn_error set when the child could
 * not start). Returns 0, or a negative code with the reason in err when
 * done will not come. */
static int cc_run_start(cc_ctx *c, char **argv, const char *cwd, uint32_t timeout_ms,
                        cc_run_fn done, void *data, int tag, char *err, size_t errlen) {
  char exe[4096], tmpdir[4096 + 8], **env = NULL;
  int rc = jail_which(argv[0], exe, sizeof exe);
  if (rc < 0) {
    snprintf(err, errlen, "cannot run '%.200s': %s%s", argv[0], uv_strerror(rc),
             rc == -ENOENT ? " (is the compiler installed on this builder?)" : "");
    return rc;
  }
  jail_plan plan;
  if ((rc = jail_plan_make(c->jail, exe, cwd, timeout_ms, &plan, err, errlen)) < 0) return rc;
  snprintf(tmpdir, sizeof tmpdir, "TMPDIR=%s", cwd ? cwd : "");
  if (!(env = cc_env(cwd ? tmpdir : NULL))) {
    jail_plan_release(&plan);
    snprintf(err, errlen, "builder out of memory");
    return -ENOMEM;
  }
  char *exe_argv0 = argv[0];
  argv[0] = exe;
  child_spec spec = {.argv = argv, .env = env, .dir = cwd ? cwd : "/", .prepare = jail_enter,
                     .prepare_arg = &plan, .guard = 1, .keep_max = CC_CAPTURE_MAX,
                     .timeout_ms = timeout_ms};
  rc = cc_run_launch(c, &spec, done, data, tag, err, errlen);
  argv[0] = exe_argv0;
  free(env);
  jail_plan_release(&plan);
  return rc;
}

/* ---- requests ---- */

static void cc_req_closed(uv_handle_t *h) {
  cc_req *r = h->data;
  cc_ctx *c = r->ctx;
  free(r->command);
  free(r->source);
  free(r->error);
  buildcache_entry_clear(&r->hit);
  free(r);
  c->live--;
  cc_maybe_free(c);
}

static void cc_req_free(cc_req *r) {
  if (r->dir[0]) fsutil_rmtree(r->dir);
  uv_close((uv_handle_t *)&r->defer, cc_req_closed);
}

static void cc_leader_unlink(cc_req *r) {
  if (!r->leading) return;
  for (cc_req **q = &r->ctx->leaders; *q; q = &(*q)->lnext)
    if (*q == r) {
      *q = r->lnext;
      break;
    }
  r->leading = 0;
}

/* Tells r's caller, then those that waited for r's compile. */
static void cc_req_deliver(cc_req *r, const char *status, const char *error, const uint8_t *so,
                           size_t solen) {
  cc_ctx *c = r->ctx;
  /* Once the builder is closing, the probe may be freed already. */
  const char *id = r->fixed_id ? r->fixed_id : r->command;
  if (!c->closed && r->probe && r->probe->id) id = r->probe->id;
  if (r->hit.compiler_id) id = r->hit.compiler_id;
  cc_result res = {status, error ? error : "", so, solen, id, r->seconds, r->cache};
  if (c->closed) {
    res.status = "CANCELLED";
    res.error = "the builder is stopping";
    res.so = NULL;
    res.solen = 0;
    res.compiler_id = r->fixed_id ? r->fixed_id : r->command; /* its probe may be gone */
  } else if (r->leading && strcmp(status, "ok") == 0) {
    /* Only successes are kept. A failure may come from this moment rather
     * than from the source (no memory or disk for the compile, a compiler
     * killed from outside, a deadline on a busy machine), and the tracker
     * answers repeats from the history only with ok trials, so a repeat
     * of a failure is compiled again, as it would be without a cache. */
    buildcache_put(c->cache, &r->key, so, solen, id, r->seconds);
  }
  cc_leader_unlink(r);
  r->done(r->data, &res);
  cc_req *f = r->followers;
  r->followers = NULL;
  while (f) {
    cc_req *next = f->fnext;
    f->seconds = r->seconds;
    cc_req_deliver(f, status, error, so, solen);
    f = next;
  }
  cc_req_free(r);
}

static void cc_req_on_defer(uv_timer_t *t) {
  cc_req *r = t->data;
  cc_req_deliver(r, r->status, r->error, r->hit.artifact, r->hit.len);
}

/* Results decided while no libuv callback is running are delivered on
 * the next loop turn, so that done never runs inside cc_build. */
static void cc_req_fail(cc_req *r, const char *status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void cc_req_fail(cc_req *r, const char *status, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  r->status = status;
  free(r->error);
  r->error = strdup(msg);
  uv_timer_start(&r->defer, cc_req_on_defer, 0, 0);
}

static int cc_tcc_start(cc_req *r, char *err, size_t errlen);

static void cc_compiled(cc_run *run, const child_result *p) {
  cc_req *r = run->data;
  char diag[CC_DIAG_MAX + 1];
  if (r->ctx->closed) { /* its probe may be gone already */
    cc_req_deliver(r, "CANCELLED", "", NULL, 0);
    return;
  }
  r->seconds = p->seconds;
  if (p->spawn_error) {
    cc_req_fail(r, "UNSUPPORTED", "cannot run '%.200s': cannot start the compile: %s",
                r->probe ? r->probe->argv[0] : r->command,
                p->spawn_msg[0] ? p->spawn_msg : uv_strerror(p->spawn_error));
    return;
  }
  if (p->lost) {
    /* Not the source's doing: a new server tries once more. */
    if (!r->retried++ && cc_tcc_start(r, diag, sizeof diag) == 0) return;
    cc_req_fail(r, "COMPILE_ERROR", "%s", p->lost);
    return;
  }
  if (p->timed_out) {
    cc_req_fail(r, "BUILD_TIMEOUT", "compile took longer than %u ms; '%.200s' was killed",
                r->timeout_ms, r->command);
    return;
  }
  /* A libtcc build's stdout is the object, never a message. */
  cc_diag(p->err, p->err_len, diag, sizeof diag);
  if (!diag[0] && !r->fixed_id) cc_diag(p->out, p->out_len, diag, sizeof diag);
  if (!p->exited || p->term_signal || p->exit_status != 0) {
    if (diag[0])
      cc_req_fail(r, "COMPILE_ERROR", "%s", diag);
    else if (p->term_signal)
      cc_req_fail(r, "COMPILE_ERROR", "'%.200s' was killed by signal %d", r->command,
                  p->term_signal);
    else
      cc_req_fail(r, "COMPILE_ERROR", "'%.200s' failed with exit status %lld and no message",
                  r->command, (long long)p->exit_status);
    return;
  }
  uint8_t *so = NULL;
  size_t solen = 0;
  int rc;
  if (r->fixed_id) {
    rc = p->out_len > CC_ARTIFACT_MAX ? -EFBIG : p->out_len == 0 ? -ENODATA : 0;
  } else {
    char path[4096 + 16];
    snprintf(path, sizeof path, "%s/out.so", r->dir);
    rc = fsutil_read_file(path, CC_ARTIFACT_MAX, &so, &solen);
  }
  if (rc < 0) {
    cc_req_fail(r, "COMPILE_ERROR", "'%.200s' succeeded but left no usable %s (%s)%s%s",
                r->command, r->fixed_id ? "object" : "out.so",
                rc == -EFBIG ? "larger than 32 MiB" : rc == -ENODATA ? "empty" : strerror(-rc),
                diag[0] ? ": " : "", diag);
    return;
  }
  if (r->fixed_id) cc_req_deliver(r, "ok", "", (const uint8_t *)p->out, p->out_len);
  else cc_req_deliver(r, "ok", "", so, solen);
  free(so);
}

/* The folder every libtcc build works in, made with the first. They
 * share it: the ruleset lets them write nowhere, and a folder made and
 * removed for each build cost a sixth of a trivial build's CPU. */
static int cc_tcc_dir(cc_ctx *c, char *err, size_t errlen) {
  if (c->tcc_dir_fd >= 0) return 0;
  int rc = jail_mkdtemp(c->tcc_dir, sizeof c->tcc_dir);
  if (rc < 0) {
    c->tcc_dir[0] = '\0';
    snprintf(err, errlen, "builder cannot make a temporary folder: %s", strerror(-rc));
    return rc;
  }
  c->tcc_dir_fd = open(c->tcc_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (c->tcc_dir_fd < 0) {
    rc = -errno;
    snprintf(err, errlen, "builder cannot open %.200s: %s", c->tcc_dir, strerror(-rc));
    rmdir(c->tcc_dir); /* the next build makes another */
    c->tcc_dir[0] = '\0';
    return rc;
  }
  return 0;
}

/* A libtcc build: a child of the build fork server (buildserver.h),
 * confined by the ruleset made once for every libtcc build, which lets
 * it write nowhere: the source goes in on its stdin, the object comes
 * out on its stdout. Returns 0, or a negative code with the reason in
 * err. */
static int cc_tcc_start(cc_req *r, char *err, size_t errlen) {
  cc_ctx *c = r->ctx;
  int rc;
  if (!c->tcc_ready) {
    if ((rc = jail_plan_make(c->jail, NULL, NULL, 0, &c->tcc_plan, err, errlen)) < 0) return rc;
    c->tcc_ready = 1;
  }
  if (!c->bs && (rc = buildserver_new(c->loop, c->server_exe, &c->bs, err, errlen)) < 0)
    return rc;
  if ((rc = cc_tcc_dir(c, err, errlen)) < 0) return rc;
  buildserver_limits lim = {c->tcc_plan.ruleset_fd, c->tcc_dir_fd, jail_mem_limit(c->jail),
                            jail_cpu_limit_s(r->timeout_ms)};
  child_spec spec = {.launcher = buildserver_launcher(c->bs), .launch_how = &lim,
                     .in = (uint8_t *)strdup(r->source), .in_len = strlen(r->source),
                     .keep_max = CC_ARTIFACT_MAX + 1, .timeout_ms = r->timeout_ms};
  if (!spec.in) {
    snprintf(err, errlen, "builder out of memory");
    return -ENOMEM;
  }
  if ((rc = cc_run_launch(c, &spec, cc_compiled, r, 0, err, errlen)) == 0) c->compiles++;
  return rc;
}

/* Makes the work folder of an external compiler and writes kernel.c
 * there. */
static int cc_workdir(cc_req *r) {
  int rc = jail_mkdtemp(r->dir, sizeof r->dir);
  if (rc < 0) {
    r->dir[0] = '\0';
    cc_req_fail(r, "COMPILE_ERROR", "builder cannot make a temporary folder: %s", strerror(-rc));
    return rc;
  }
  char path[4096 + 16];
  snprintf(path, sizeof path, "%s/kernel.c", r->dir);
  if ((rc = fsutil_write_file(path, r->source, strlen(r->source))) < 0)
    cc_req_fail(r, "COMPILE_ERROR", "builder cannot write %s: %s", path, strerror(-rc));
  return rc;
}

/* The cache key of r's build: after the probe, so that it holds the
 * compiler's identity and target. */
static int cc_req_key(cc_req *r) {
  cc_probe *pr = r->probe;
  char want[64], exe[4096];
  target_arch(r->target, want, sizeof want);
  buildcache_inputs in = {.source = r->source, .target_arch = want};
  if (!pr) {
    in.compiler_id = r->fixed_id;
    in.compiler_target = want;
  } else {
    if (jail_which(pr->argv[0], exe, sizeof exe) < 0) return -ENOENT; /* it will not run */
    in.argv = pr->argv;
    in.argc = (size_t)pr->argc;
    in.compiler_id = pr->id;
    in.compiler_target = pr->triple;
    in.exe = exe;
  }
  return buildcache_key_of(&in, &r->key);
}

/* With a cache: answers r from it, or lets r wait for an identical build
 * under way. Only one with the same time limit: then its outcome is the
 * one r would have had, and r waits no longer than its own limit. 1 when
 * r is taken care of; 0: compile it. */
static int cc_reuse(cc_req *r) {
  cc_ctx *c = r->ctx;
  if (!c->cache || cc_req_key(r) < 0) return 0;
  if (buildcache_get(c->cache, &r->key, &r->hit) == 1) {
    r->cache = "hit";
    r->status = "ok";
    r->seconds = r->hit.build_s;
    uv_timer_start(&r->defer, cc_req_on_defer, 0, 0);
    return 1;
  }
  for (cc_req *l = c->leaders; l; l = l->lnext)
    if (l->timeout_ms == r->timeout_ms && memcmp(l->key.b, r->key.b, sizeof r->key.b) == 0) {
      buildcache_note_shared(c->cache);
      r->cache = "shared";
      *l->followers_tail = r;
      l->followers_tail = &r->fnext;
      return 1;
    }
  r->cache = "miss";
  r->leading = 1;
  r->followers_tail = &r->followers;
  r->lnext = c->leaders;
  c->leaders = r;
  return 0;
}

static void cc_compile(cc_req *r) {
  cc_probe *pr = r->probe;
  char want[64];
  char err[1024];
  if (!pr) { /* libtcc */
    if (cc_reuse(r) == 0 && cc_tcc_start(r, err, sizeof err) < 0)
      cc_req_fail(r, "COMPILE_ERROR", "%s", err);
    return;
  }
  if (r->target[0]) {
    target_arch(r->target, want, sizeof want);
    if (!pr->arch[0]) {
      cc_req_fail(r, "COMPILE_ERROR",
                  "cannot tell which architecture '%.200s' builds for (it did not answer "
                  "-dumpmachine); the runners need %s",
                  r->command, want);
      return;
    }
    if (strcmp(want, pr->arch) != 0) {
      cc_req_fail(r, "UNSUPPORTED",
                  "target mismatch: '%.200s' builds for %s (%s) but the runners need %s; use a "
                  "compiler that targets %s (a cross compiler) or runners of that architecture",
                  r->command, pr->arch, pr->triple, want, want);
      return;
    }
  }
  if (cc_reuse(r) || cc_workdir(r) < 0) return;
  static const char *const tail[] = {"-shared", "-fPIC", "-o", "out.so", "kernel.c"};
  enum { NTAIL = sizeof tail / sizeof tail[0] };
  char **argv = calloc((size_t)pr->argc + NTAIL + 1, sizeof *argv);
  if (!argv) {
    cc_req_fail(r, "COMPILE_ERROR", "builder out of memory");
    return;
  }
  memcpy(argv, pr->argv, (size_t)pr->argc * sizeof *argv);
  memcpy(argv + pr->argc, tail, sizeof tail);
  int rc = cc_run_start(r->ctx, argv, r->dir, r->timeout_ms, cc_compiled, r, 0, err, sizeof err);
  free(argv);
  if (rc == 0) r->ctx->compiles++;
  if (rc < 0) cc_req_fail(r, rc == -ENOMEM ? "COMPILE_ERROR" : "UNSUPPORTED", "%s", err);
}

/* ---- probes ---- */

static void cc_probe_free(cc_probe *pr) {
  cc_argv_free(pr->argv);
  free(pr->key);
  free(pr->id);
  for (int i = 0; i < PROBE_COUNT; i++) free(pr->out[i]);
  free(pr);
}

static void cc_probe_unlink(cc_probe *pr) {
  for (cc_probe **q = &pr->ctx->probes; *q; q = &(*q)->next)
    if (*q == pr) {
      *q = pr->next;
      return;
    }
}

/* What "native" means to this compiler: gcc shows the CPU it picked in
 * the cc1 command line (-march=znver3), clang as -target-cpu. */
static void cc_native(const char *dump, char *out, size_t len) {
  out[0] = '\0';
  if (!dump) return;
  static const char *const keys[] = {"-march=", "-mcpu=", "\"-target-cpu\" \""};
  for (size_t k = 0; k < sizeof keys / sizeof keys[0] && !out[0]; k++) {
    size_t kl = strlen(keys[k]);
    for (const char *s = strstr(dump, keys[k]); s; s = strstr(s + 1, keys[k])) {
      const char *v = s + kl;
      size_t n = strcspn(v, "\" \n'");
      if (n == 0 || (n == 6 && strncmp(v, "native", 6) == 0)) continue;
      snprintf(out, len, "%.*s", (int)n, v);
      break;
    }
  }
}

static int cc_probe_identify(cc_probe *pr) {
  char version[128], native[64] = "";
  cc_version(pr->out[PROBE_VERSION], version, sizeof version);
  if (!version[0]) snprintf(version, sizeof version, "?");
  cc_native(pr->out[PROBE_NATIVE], native, sizeof native);
  snprintf(pr->triple, sizeof pr->triple, "%.*s",
           (int)strcspn(pr->out[PROBE_MACHINE] ? pr->out[PROBE_MACHINE] : "", " \r\n"),
           pr->out[PROBE_MACHINE] ? pr->out[PROBE_MACHINE] : "");
  if (pr->triple[0]) target_arch(pr->triple, pr->arch, sizeof pr->arch);
  const char *base = strrchr(pr->argv[0], '/');
  base = base ? base + 1 : pr->argv[0];
  char *flags = cc_join(pr->argv + 1, pr->argc - 1);
  if (!flags) return -ENOMEM;
  size_t len = strlen(base) + strlen(version) + strlen(flags) + strlen(native) + 32;
  if (!(pr->id = malloc(len))) {
    free(flags);
    return -ENOMEM;
  }
  snprintf(pr->id, len, "%s %s%s%s%s%s%s", base, version, flags[0] ? " " : "", flags,
           native[0] ? " (native=" : "", native, native[0] ? ")" : "");
  free(flags);
  return 0;
}

/* Every question has its answer (or failed): start the waiting builds. */
static void cc_probe_done(cc_probe *pr) {
  cc_probe_unlink(pr);
  int failed = pr->failed || pr->ctx->closed;
  if (!failed && cc_probe_identify(pr) < 0) {
    failed = 1;
    snprintf(pr->fail, sizeof pr->fail, "builder out of memory");
  }
  cc_req *w = pr->waiters;
  pr->waiters = NULL;
  if (failed) {
    /* Not remembered: the compiler may be installed by the next job. */
    for (; w; w = w->next) {
      w->probe = NULL;
      cc_req_fail(w, "UNSUPPORTED", "%s", pr->fail);
    }
    cc_probe_free(pr);
    return;
  }
  pr->ready = 1;
  pr->next = pr->ctx->probes;
  pr->ctx->probes = pr;
  while (w) {
    cc_req *next = w->next;
    w->next = NULL;
    cc_compile(w);
    w = next;
  }
}

static void cc_probed(cc_run *run, const child_result *p) {
  cc_probe *pr = run->data;
  if (run->tag == PROBE_VERSION && p->spawn_error) {
    pr->failed = 1;
    snprintf(pr->fail, sizeof pr->fail, "cannot run '%.200s': %s%s", pr->argv[0],
             p->spawn_msg[0] ? p->spawn_msg : uv_strerror(p->spawn_error),
             p->spawn_error == UV_ENOENT ? " (is the compiler installed on this builder?)" : "");
  }
  /* --version and -dumpmachine answer on stdout; -### on stderr. */
  const char *said = run->tag == PROBE_NATIVE ? p->err : p->out;
  if (!p->timed_out && p->exited && p->exit_status == 0 && said)
    pr->out[run->tag] = strdup(said);
  if (--pr->pending == 0) cc_probe_done(pr);
}

/* The same words: the joined key alone takes "gcc '-DA=1 -O2'" (one
 * flag) for "gcc -DA=1 -O2" (two), and would compile one with the
 * other's words. */
static int cc_probe_is(const cc_probe *pr, char *const *argv, int argc) {
  if (pr->argc != argc) return 0;
  for (int i = 0; i < argc; i++)
    if (strcmp(pr->argv[i], argv[i]) != 0) return 0;
  return 1;
}

static int cc_probe_start(cc_probe *pr) {
  static const char *const extra[PROBE_COUNT][5] = {
      {"--version", NULL}, {"-dumpmachine", NULL}, {"-###", "-E", "-x", "c", "/dev/null"}};
  int want_native = strstr(pr->key, "=native") != NULL;
  for (int i = 0; i < PROBE_COUNT; i++) {
    if (i == PROBE_NATIVE && !want_native) continue;
    size_t ne = 0;
    while (ne < 5 && extra[i][ne]) ne++;
    char **argv = calloc((size_t)pr->argc + ne + 1, sizeof *argv);
    if (!argv) {
      snprintf(pr->fail, sizeof pr->fail, "builder out of memory");
      return -ENOMEM;
    }
    memcpy(argv, pr->argv, (size_t)pr->argc * sizeof *argv);
    memcpy(argv + pr->argc, extra[i], ne * sizeof *argv);
    int rc = cc_run_start(pr->ctx, argv, NULL, CC_PROBE_TIMEOUT_MS, cc_probed, pr, i, pr->fail,
                          sizeof pr->fail);
    free(argv);
    if (rc < 0) return rc;
    pr->pending++;
  }
  return 0;
}

/* ---- the interface ---- */

int cc_new_limited(uv_loop_t *loop, const cc_policy *policy, const jail_opts *limits,
                   cc_ctx **out) {
  *out = NULL;
  cc_ctx *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  c->tcc_dir_fd = -1;
  c->loop = loop;
  c->any = policy && policy->any;
  if (jail_new(limits, &c->jail) < 0) {
    free(c);
    return -ENOMEM;
  }
  if (limits && limits->server_exe && !(c->server_exe = strdup(limits->server_exe))) {
    c->closed = 1;
    cc_maybe_free(c);
    return -ENOMEM;
  }
  /* Now, while the caller is small and holds no secret: a fork server
   * forked later (after a failure here) would copy what it has then. */
  char err[256];
  if (buildserver_new(loop, c->server_exe, &c->bs, err, sizeof err) < 0)
    log_warn("builder", "%s; trying again at the first libtcc build", err);
  if (policy && policy->programs && policy->nprograms) {
    if (!(c->programs = calloc(policy->nprograms, sizeof *c->programs))) {
      c->closed = 1;
      cc_maybe_free(c);
      return -ENOMEM;
    }
    for (; c->nprograms < policy->nprograms; c->nprograms++)
      if (!(c->programs[c->nprograms] = strdup(policy->programs[c->nprograms]))) {
        c->closed = 1;
        cc_maybe_free(c);
        return -ENOMEM;
      }
  }
  *out = c;
  return 0;
}

int cc_new(uv_loop_t *loop, const cc_policy *policy, cc_ctx **out) {
  return cc_new_limited(loop, policy, NULL, out);
}

const char *cc_sandbox(const cc_ctx *c, int *confined) { return jail_describe(c->jail, confined); }

int cc_set_cache(cc_ctx *c, size_t max_bytes) {
  /* Builds under way hold keys, not the cache: replacing it is safe. */
  buildcache_free(c->cache);
  return buildcache_new(max_bytes, &c->cache);
}

void cc_cache_stats(const cc_ctx *c, buildcache_stats *st) { buildcache_get_stats(c->cache, st); }

uint64_t cc_compiles(const cc_ctx *c) { return c->compiles; }

void cc_close(cc_ctx *c) {
  if (!c || c->closed) return;
  c->closed = 1;
  for (cc_run *run = c->runs; run; run = run->next) child_kill(run->ch);
  /* Probes still asking are freed when their processes end. */
  cc_probe **q = &c->probes;
  while (*q) {
    cc_probe *pr = *q;
    if (pr->ready) {
      *q = pr->next;
      cc_probe_free(pr);
    } else {
      q = &pr->next;
    }
  }
  cc_maybe_free(c);
}

static cc_req *cc_req_new(cc_ctx *c, const char *command, const char *source,
                          const char *target_arch, uint32_t timeout_ms, cc_done_fn done,
                          void *data) {
  if (!c || c->closed || !done) return NULL;
  cc_req *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  if (!(r->command = cc_strdup(command)) || !(r->source = cc_strdup(source))) {
    free(r->command);
    free(r);
    return NULL;
  }
  r->ctx = c;
  r->done = done;
  r->data = data;
  r->timeout_ms = timeout_ms ? timeout_ms : CC_DEFAULT_TIMEOUT_MS;
  snprintf(r->target, sizeof r->target, "%s", target_arch ? target_arch : "");
  uv_timer_init(c->loop, &r->defer);
  r->defer.data = r;
  c->live++;
  return r;
}

int cc_build_tcc(cc_ctx *c, const char *source, const char *target_arch, uint32_t timeout_ms,
                 cc_done_fn done, void *data) {
  if (!c || c->closed || !done) return -EINVAL;
  cc_req *r = cc_req_new(c, "tcc", source, target_arch, timeout_ms, done, data);
  if (!r) return -ENOMEM;
  r->fixed_id = tcc_compiler_id();
  cc_compile(r);
  return 0;
}

int cc_build(cc_ctx *c, const char *command, const char *source, const char *target_arch,
             uint32_t timeout_ms, cc_done_fn done, void *data) {
  if (!c || c->closed || !done) return -EINVAL;
  cc_req *r = cc_req_new(c, command, source, target_arch, timeout_ms, done, data);
  if (!r) return -ENOMEM;

  char **argv, err[1024];
  int argc = cc_split(command, &argv, err, sizeof err);
  if (argc < 0) {
    cc_req_fail(r, "COMPILE_ERROR", "%s", err);
    return 0;
  }
  cc_policy pol = {(const char *const *)c->programs, c->nprograms, c->any};
  if (cc_check(&pol, argv, err, sizeof err) < 0) {
    cc_argv_free(argv);
    cc_req_fail(r, "UNSUPPORTED", "%s", err);
    return 0;
  }
  char *key = cc_join(argv, argc);
  cc_probe *pr = NULL;
  for (cc_probe *q = c->probes; key && q && !pr; q = q->next)
    if (cc_probe_is(q, argv, argc)) pr = q;
  if (pr) {
    free(key);
    cc_argv_free(argv);
    r->probe = pr;
    if (pr->ready) cc_compile(r);
    else {
      *pr->waiters_tail = r;
      pr->waiters_tail = &r->next;
    }
    return 0;
  }
  if (!key || !(pr = calloc(1, sizeof *pr))) {
    free(key);
    cc_argv_free(argv);
    cc_req_fail(r, "COMPILE_ERROR", "builder out of memory");
    return 0;
  }
  pr->ctx = c;
  pr->key = key;
  pr->argv = argv;
  pr->argc = argc;
  pr->waiters = r;
  pr->waiters_tail = &r->next;
  r->probe = pr;
  pr->next = c->probes;
  c->probes = pr;
  if (cc_probe_start(pr) < 0) {
    pr->failed = 1; /* cc_probe_start said why */
    if (pr->pending == 0) cc_probe_done(pr); /* nothing started will call back */
  }
  return 0;
}
