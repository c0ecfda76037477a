#include "builder/backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "builder/codegen.h"
#include "builder/tcc.h"
#include "common/child.h"
#include "common/target.h"

#define BACKEND_MAX_DEFINES 1024
/* How long a --compiler may take to say what it targets, at start. */
#define BACKEND_PROBE_MS 10000

const char *const backend_names[BACKEND_NNAMES] = {"tcc", "cc"};

struct backend {
  uv_loop_t *loop;
  cc_ctx *cc;
  unsigned inflight; /* failures on their way through the thread pool */
  int closed;
  char arch[65];
  /* What it advertises: arch (tcc, native compilers), then the targets
   * of the --compiler commands (backend_add_compiler). */
  char archs[BACKEND_MAX_ARCHS][65];
  size_t narchs;
};

/* A job that failed before compiling: its result still arrives from the
 * loop, after backend_build has returned. */
typedef struct {
  uv_work_t req;
  backend *b;
  uint64_t job_id;
  const char *compiler_id;
  const char *status;  /* COMPILE_ERROR, or UNSUPPORTED: not the candidate's fault */
  backend_done_fn done;
  void *data;
  char diag[2048];
} backend_work;

/* A compile (cc.h): what to say when it calls back. */
typedef struct {
  backend *b;
  uint64_t job_id;
  backend_done_fn done;
  void *data;
  char reference[65]; /* to name it when the compiler finds a knob in it */
} backend_cc;

static void backend_maybe_free(backend *b) {
  if (b->closed && b->inflight == 0) free(b);
}

static void backend_do_work(uv_work_t *req) { (void)req; }

static void backend_after_work(uv_work_t *req, int status) {
  backend_work *w = req->data;
  backend *b = w->b;
  b->inflight--;
  int ok = status == 0 && !b->closed;
  backend_result r = {.job_id = w->job_id,
                      .status = ok ? w->status : "CANCELLED",
                      .error = ok ? w->diag : "the builder is stopping",
                      .compiler_id = w->compiler_id};
  w->done(w->data, &r);
  free(w);
  backend_maybe_free(b);
}

static int backend_fail(backend *b, backend_work *w) {
  w->req.data = w;
  w->b = b;
  int rc = uv_queue_work(b->loop, &w->req, backend_do_work, backend_after_work);
  if (rc < 0) {
    free(w);
    return rc;
  }
  b->inflight++;
  return 0;
}

static void backend_cc_done(void *data, const cc_result *cr) {
  backend_cc *c = data;
  backend_result r = {.job_id = c->job_id,
                      .status = cr->status,
                      .error = cr->error,
                      .artifact = cr->so,
                      .artifact_len = cr->solen,
                      .build_s = cr->seconds,
                      .compiler_id = cr->compiler_id,
                      .cache = cr->cache};
  size_t len = (cr->error ? strlen(cr->error) : 0) + 256;
  char *why = strcmp(cr->status, "COMPILE_ERROR") == 0 ? malloc(len) : NULL;
  if (why && codegen_reference_error(c->reference, cr->error, why, len)) r.error = why;
  c->done(c->data, &r);
  free(why);
  free(c);
}

int backend_new_limited(uv_loop_t *loop, const cc_policy *policy, const jail_opts *limits,
                        backend **out, char *err, size_t errlen) {
  *out = NULL;
  /* Builds are children, but a libtcc that does not work is better
   * reported at start than per job. */
  uint8_t *so = NULL;
  size_t solen = 0;
  char diag[256];
  if (tcc_build_so("void ktune_warmup(void) {}\n", &so, &solen, diag, sizeof diag) != 0) {
    snprintf(err, errlen, "libtcc does not work here: %s", diag);
    return -EIO;
  }
  free(so);
  backend *b = calloc(1, sizeof *b);
  if (!b || cc_new_limited(loop, policy, limits, &b->cc) < 0) {
    free(b);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  b->loop = loop;
  /* Work folders of builders that were killed: nobody else removes them. */
  jail_remove_stale();
  struct utsname u;
  target_arch(uname(&u) == 0 ? u.machine : "unknown", b->arch, sizeof b->arch);
  snprintf(b->archs[b->narchs++], sizeof b->archs[0], "%s", b->arch);
  *out = b;
  return 0;
}

/* `-dumpmachine`'s answer, on a loop of its own: the builder has not
 * started serving yet. */
static void backend_probed(void *data, const child_result *r) {
  child_result *out = data;
  *out = *r;
  out->out = r->out ? strdup(r->out) : NULL;
}

int backend_add_compiler(backend *b, const cc_policy *policy, const char *command, char *arch,
                         size_t archlen, char *err, size_t errlen) {
  char **argv = NULL, exe[4096], why[256];
  int argc = cc_split(command, &argv, why, sizeof why);
  if (argc < 0) {
    snprintf(err, errlen, "--compiler '%.200s': %s", command, why);
    return -EINVAL;
  }
  int rc = cc_check(policy, argv, why, sizeof why);
  if (rc == 0 && (rc = jail_which(argv[0], exe, sizeof exe)) < 0)
    snprintf(why, sizeof why, "cannot find '%.200s' on the PATH: %s", argv[0], strerror(-rc));
  char **probe = rc == 0 ? calloc((size_t)argc + 2, sizeof *probe) : NULL;
  if (rc == 0 && !probe) {
    rc = -ENOMEM;
    snprintf(why, sizeof why, "out of memory");
  }
  child_result res = {0};
  if (rc == 0) {
    memcpy(probe, argv, (size_t)argc * sizeof *probe);
    probe[0] = exe;
    probe[argc] = "-dumpmachine";
    uv_loop_t loop;
    child *ch;
    child_spec spec = {.argv = probe, .timeout_ms = BACKEND_PROBE_MS, .done = backend_probed,
                       .data = &res};
    if ((rc = uv_loop_init(&loop)) == 0) {
      if ((rc = child_start(&loop, &spec, &ch)) == 0) uv_run(&loop, UV_RUN_DEFAULT);
      uv_loop_close(&loop);
    }
    if (rc < 0) snprintf(why, sizeof why, "cannot run it: %s", strerror(-rc));
  }
  free(probe);
  char triple[128] = "";
  if (res.out) snprintf(triple, sizeof triple, "%.*s", (int)strcspn(res.out, " \r\n"), res.out);
  if (rc == 0 && (res.spawn_error || !res.exited || res.exit_status != 0 || !triple[0])) {
    rc = -EINVAL;
    snprintf(why, sizeof why, "`%.200s -dumpmachine` %s", argv[0],
             res.spawn_error ? "could not start" : res.timed_out ? "did not answer in time"
             : !res.exited || res.exit_status != 0 ? "failed" : "said nothing");
  }
  free((char *)res.out);
  cc_argv_free(argv);
  if (rc < 0) {
    snprintf(err, errlen, "--compiler '%.200s': %s", command, why);
    return rc;
  }
  target_arch(triple, arch, archlen);
  size_t i = 0;
  while (i < b->narchs && strcmp(b->archs[i], arch) != 0) i++;
  if (i < b->narchs) return 0;
  if (b->narchs == BACKEND_MAX_ARCHS) {
    snprintf(err, errlen, "--compiler '%.200s' targets %s: a builder advertises at most %d "
             "architectures", command, arch, BACKEND_MAX_ARCHS);
    return -E2BIG;
  }
  snprintf(b->archs[b->narchs++], sizeof b->archs[0], "%s", arch);
  return 0;
}

size_t backend_archs(const backend *b, const char **archs, size_t max) {
  size_t n = 0;
  for (; n < b->narchs && n < max; n++) archs[n] = b->archs[n];
  return n;
}

int backend_new(uv_loop_t *loop, const cc_policy *policy, backend **out, char *err,
                size_t errlen) {
  return backend_new_limited(loop, policy, NULL, out, err, errlen);
}

const char *backend_sandbox(const backend *b, int *confined) { return cc_sandbox(b->cc, confined); }

int backend_set_cache(backend *b, size_t max_bytes) { return cc_set_cache(b->cc, max_bytes); }

void backend_cache_stats(const backend *b, buildcache_stats *st) { cc_cache_stats(b->cc, st); }
uint64_t backend_compiles(const backend *b) { return cc_compiles(b->cc); }

void backend_close(backend *b) {
  if (!b || b->closed) return;
  b->closed = 1;
  cc_close(b->cc);
  b->cc = NULL;
  backend_maybe_free(b);
}

const char *backend_host_arch(const backend *b) { return b->arch; }

int backend_build(backend *b, const Ktune__BuildJob *j, backend_done_fn done, void *data) {
  if (!b || b->closed || !j || !done) return -EINVAL;
  int tcc = target_builtin_compiler(j->compiler);
  backend_work *w = calloc(1, sizeof *w);
  if (!w) return -ENOMEM;
  w->job_id = j->job_id;
  w->done = done;
  w->data = data;
  w->compiler_id = tcc ? tcc_compiler_id() : "";
  w->status = "COMPILE_ERROR";

  /* A spec has at most 256 constants and 64 knobs; the duplicate check in
   * codegen is quadratic, so a runaway count is refused up front. */
  if (j->n_defines > BACKEND_MAX_DEFINES) {
    snprintf(w->diag, sizeof w->diag, "%zu defines; at most %d", j->n_defines,
             BACKEND_MAX_DEFINES);
    return backend_fail(b, w);
  }
  codegen_define *defs = calloc(j->n_defines + 1, sizeof *defs);
  if (!defs) {
    free(w);
    return -ENOMEM;
  }
  for (size_t i = 0; i < j->n_defines; i++) {
    defs[i].name = j->defines[i] ? j->defines[i]->name : NULL;
    defs[i].value = j->defines[i] ? j->defines[i]->value : 0;
  }
  char *src = codegen_source_guarded(j->task, j->source, defs, j->n_defines, j->reference,
                                     j->knobs, w->diag, sizeof w->diag);
  free(defs);
  if (!src) {
    if (!w->diag[0])
      snprintf(w->diag, sizeof w->diag,
               "a knob or constant name is not a C identifier, or appears twice");
    return backend_fail(b, w);
  }
  /* tcc only makes code for the CPU it runs on. */
  if (tcc && j->target_arch && *j->target_arch) {
    char want[65], have[65];
    target_arch(j->target_arch, want, sizeof want);
    target_arch(b->arch, have, sizeof have);
    if (strcmp(want, have) != 0) {
      free(src);
      w->status = "UNSUPPORTED";
      snprintf(w->diag, sizeof w->diag,
               "target mismatch: tcc on this builder makes %s code but the runners need %s; "
               "use a cross compiler (--compiler \"%s-linux-gnu-gcc -O2\") or a builder on %s",
               have, want, want, want);
      return backend_fail(b, w);
    }
  }
  free(w);
  backend_cc *c = calloc(1, sizeof *c);
  if (!c) {
    free(src);
    return -ENOMEM;
  }
  c->b = b;
  c->job_id = j->job_id;
  c->done = done;
  c->data = data;
  snprintf(c->reference, sizeof c->reference, "%s", j->reference ? j->reference : "");
  int rc = tcc ? cc_build_tcc(b->cc, src, b->arch, j->timeout_ms, backend_cc_done, c)
               : cc_build(b->cc, j->compiler, src, j->target_arch, j->timeout_ms,
                          backend_cc_done, c);
  free(src);
  if (rc < 0) free(c);
  return rc;
}
