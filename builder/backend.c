#include "builder/backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "builder/codegen.h"
#include "builder/tcc.h"

#define BACKEND_MAX_DEFINES 1024

const char *const backend_names[BACKEND_NNAMES] = {"tcc", "cc"};

struct backend {
  uv_loop_t *loop;
  cc_ctx *cc;
  unsigned inflight; /* items on the thread pool */
  int closed;
  char arch[65];
};

/* One build that goes through the thread pool: a tcc compile, or a job
 * that failed before compiling (its result still arrives from the loop). */
typedef struct {
  uv_work_t req;
  backend *b;
  uint64_t job_id;
  uint32_t timeout_ms;
  char *source;      /* NULL: nothing to compile, status/diag say why */
  const char *status;
  const char *compiler_id;
  uint8_t *so;
  size_t solen;
  int rc;
  double seconds;
  backend_done_fn done;
  void *data;
  char diag[2048];
} backend_work;

/* An external compile: what to say when cc calls back. */
typedef struct {
  backend *b;
  uint64_t job_id;
  backend_done_fn done;
  void *data;
} backend_cc;

static int backend_is_tcc(const char *compiler) {
  if (!compiler) return 1;
  while (*compiler == ' ' || *compiler == '\t') compiler++;
  size_t n = strlen(compiler);
  while (n && (compiler[n - 1] == ' ' || compiler[n - 1] == '\t')) n--;
  return n == 0 || (n == 3 && strncmp(compiler, "tcc", 3) == 0);
}

static void backend_maybe_free(backend *b) {
  if (b->closed && b->inflight == 0) free(b);
}

static void backend_do_work(uv_work_t *req) {
  backend_work *w = req->data;
  if (!w->source) return;
  uint64_t t0 = uv_hrtime();
  w->rc = tcc_build_so(w->source, &w->so, &w->solen, w->diag, sizeof w->diag);
  w->seconds = (double)(uv_hrtime() - t0) / 1e9;
  if (w->rc == 0) {
    w->status = "ok";
    /* libtcc cannot be interrupted; a compile that overran still fails
     * the way an external one would. */
    if (w->timeout_ms && w->seconds * 1e3 > w->timeout_ms) {
      w->status = "BUILD_TIMEOUT";
      snprintf(w->diag, sizeof w->diag, "compile took %.0f ms, over the limit of %u ms",
               w->seconds * 1e3, w->timeout_ms);
    }
  } else {
    w->status = "COMPILE_ERROR";
    if (!w->diag[0]) snprintf(w->diag, sizeof w->diag, "libtcc failed without a message");
  }
}

static void backend_after_work(uv_work_t *req, int status) {
  backend_work *w = req->data;
  backend *b = w->b;
  b->inflight--;
  int ok = status == 0 && !b->closed && strcmp(w->status, "ok") == 0;
  backend_result r = {w->job_id,
                      status == 0 && !b->closed ? w->status : "CANCELLED",
                      ok ? "" : (status == 0 && !b->closed ? w->diag : "the builder is stopping"),
                      ok ? w->so : NULL,
                      ok ? w->solen : 0,
                      w->seconds,
                      w->compiler_id};
  w->done(w->data, &r);
  free(w->source);
  free(w->so);
  free(w);
  backend_maybe_free(b);
}

static int backend_queue(backend *b, backend_work *w) {
  w->req.data = w;
  w->b = b;
  int rc = uv_queue_work(b->loop, &w->req, backend_do_work, backend_after_work);
  if (rc < 0) {
    free(w->source);
    free(w);
    return rc;
  }
  b->inflight++;
  return 0;
}

static void backend_cc_done(void *data, const cc_result *cr) {
  backend_cc *c = data;
  backend_result r = {c->job_id, cr->status, cr->error, cr->so, cr->solen, cr->seconds,
                      cr->compiler_id};
  c->done(c->data, &r);
  free(c);
}

int backend_new(uv_loop_t *loop, const cc_policy *policy, backend **out, char *err,
                size_t errlen) {
  *out = NULL;
  /* libtcc creates its lock lazily and unsafely: compile once before the
   * thread pool can run two builds (FACTS.md). */
  uint8_t *so = NULL;
  size_t solen = 0;
  char diag[256];
  if (tcc_build_so("void ktune_warmup(void) {}\n", &so, &solen, diag, sizeof diag) != 0) {
    snprintf(err, errlen, "libtcc does not work here: %s", diag);
    return -EIO;
  }
  free(so);
  backend *b = calloc(1, sizeof *b);
  if (!b || cc_new(loop, policy, &b->cc) < 0) {
    free(b);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  b->loop = loop;
  struct utsname u;
  snprintf(b->arch, sizeof b->arch, "%s", uname(&u) == 0 ? u.machine : "unknown");
  *out = b;
  return 0;
}

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
  int tcc = backend_is_tcc(j->compiler);
  backend_work *w = calloc(1, sizeof *w);
  if (!w) return -ENOMEM;
  w->job_id = j->job_id;
  w->timeout_ms = j->timeout_ms;
  w->done = done;
  w->data = data;
  w->compiler_id = tcc ? tcc_compiler_id() : "";

  /* A spec has at most 256 constants and 64 knobs; the duplicate check in
   * codegen is quadratic, so a runaway count is refused up front. */
  if (j->n_defines > BACKEND_MAX_DEFINES) {
    w->status = "COMPILE_ERROR";
    snprintf(w->diag, sizeof w->diag, "%zu defines; at most %d", j->n_defines,
             BACKEND_MAX_DEFINES);
    return backend_queue(b, w);
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
  char *src = codegen_source(j->task, j->source, defs, j->n_defines);
  free(defs);
  if (!src) {
    w->status = "COMPILE_ERROR";
    snprintf(w->diag, sizeof w->diag,
             "a knob or constant name is not a C identifier, or appears twice");
    return backend_queue(b, w);
  }
  /* tcc only makes code for the CPU it runs on. */
  if (tcc && j->target_arch && *j->target_arch) {
    char want[65], have[65];
    cc_arch_name(j->target_arch, want, sizeof want);
    cc_arch_name(b->arch, have, sizeof have);
    if (strcmp(want, have) != 0) {
      free(src);
      w->status = "COMPILE_ERROR";
      snprintf(w->diag, sizeof w->diag,
               "target mismatch: tcc on this builder makes %s code but the runners need %s; "
               "use a cross compiler (--compiler \"%s-linux-gnu-gcc -O2\") or a builder on %s",
               have, want, want, want);
      return backend_queue(b, w);
    }
  }
  if (tcc) {
    w->source = src;
    return backend_queue(b, w);
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
  int rc = cc_build(b->cc, j->compiler, src, j->target_arch, j->timeout_ms, backend_cc_done, c);
  free(src);
  if (rc < 0) free(c);
  return rc;
}
