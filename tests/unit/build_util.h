/* Test helpers around the builder's back ends: run BuildJobs through
 * backend.c on a private libuv loop exactly as ktune-builder does, and
 * collect copies of the results. Header-only: each test program is one
 * file. */
#ifndef KTUNE_TEST_BUILD_UTIL_H
#define KTUNE_TEST_BUILD_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <uv.h>

#include "builder/backend.h"
#include "tests/test.h"

typedef struct {
  int done;
  char status[32];
  char *error;
  char *compiler_id;
  char cache[16];   /* "hit", "shared", "miss", or "" */
  uint8_t *so;
  size_t solen;
  double build_s;
  double done_at;   /* seconds since the batch started */
} bu_result;

typedef struct {
  bu_result *out;
  uint64_t t0;
} bu_slot;

static inline void bu_on_done(void *data, const backend_result *r) {
  bu_slot *s = data;
  bu_result *o = s->out;
  ASSERT(!o->done); /* exactly once */
  o->done = 1;
  snprintf(o->status, sizeof o->status, "%s", r->status);
  o->error = strdup(r->error ? r->error : "");
  o->compiler_id = strdup(r->compiler_id ? r->compiler_id : "");
  snprintf(o->cache, sizeof o->cache, "%s", r->cache ? r->cache : "");
  o->build_s = r->build_s;
  o->done_at = (double)(uv_hrtime() - s->t0) / 1e9;
  if (r->artifact_len) {
    o->so = malloc(r->artifact_len);
    ASSERT_NOT_NULL(o->so);
    memcpy(o->so, r->artifact, r->artifact_len);
    o->solen = r->artifact_len;
  }
}

/* A back end on a private loop, as ktune-builder has, kept across builds
 * so that its cache (cache_bytes; 0: none) answers later ones. */
typedef struct {
  uv_loop_t loop;
  backend *be;
} bu_backend;

static inline void bu_open(bu_backend *b, size_t cache_bytes) {
  ASSERT_EQ_INT(uv_loop_init(&b->loop), 0);
  char err[256];
  /* The defaults, and the fake compilers tests write under /tmp. */
  static const char *const programs[] = {"cc", "gcc", "clang", "gcc-[0-9]*", "*-gcc", "/tmp/*/*"};
  cc_policy policy = {programs, sizeof programs / sizeof programs[0], 0};
  if (backend_new(&b->loop, &policy, &b->be, err, sizeof err) < 0)
    TEST_FAIL("backend_new: %s", err);
  ASSERT_EQ_INT(backend_set_cache(b->be, cache_bytes), 0);
}

/* Builds n jobs at once (as `ktune-builder --jobs n` would) and waits for
 * every result. */
static inline void bu_run_many(bu_backend *b, Ktune__BuildJob *const *jobs, size_t n,
                               bu_result *out) {
  bu_slot *slots = calloc(n, sizeof *slots);
  ASSERT_NOT_NULL(slots);
  uint64_t t0 = uv_hrtime();
  for (size_t i = 0; i < n; i++) {
    memset(&out[i], 0, sizeof out[i]);
    slots[i].out = &out[i];
    slots[i].t0 = t0;
    ASSERT_EQ_INT(backend_build(b->be, jobs[i], bu_on_done, &slots[i]), 0);
  }
  uv_run(&b->loop, UV_RUN_DEFAULT);
  for (size_t i = 0; i < n; i++) ASSERT(out[i].done);
  free(slots);
}

/* The loop must end with no handle left. */
static inline void bu_close(bu_backend *b) {
  backend_close(b->be);
  uv_run(&b->loop, UV_RUN_DEFAULT);
  ASSERT_EQ_INT(uv_loop_close(&b->loop), 0);
}

/* n jobs at once on a fresh back end without a cache. */
static inline void bu_build_many(Ktune__BuildJob *const *jobs, size_t n, bu_result *out) {
  bu_backend b;
  bu_open(&b, 0);
  bu_run_many(&b, jobs, n, out);
  bu_close(&b);
}

static inline void bu_result_free(bu_result *r) {
  free(r->error);
  free(r->compiler_id);
  free(r->so);
  memset(r, 0, sizeof *r);
}

/* A BuildJob with up to 16 defines; the strings are borrowed. */
typedef struct {
  Ktune__BuildJob job;
  Ktune__Param params[16];
  Ktune__Param *pp[16];
} bu_job;

static inline void bu_job_init(bu_job *j, uint64_t id, const char *task, const char *source,
                               const char *compiler) {
  memset(j, 0, sizeof *j);
  ktune__build_job__init(&j->job);
  j->job.job_id = id;
  j->job.task = (char *)task;
  j->job.source = (char *)source;
  j->job.compiler = (char *)compiler;
  j->job.target_arch = "";
  j->job.defines = j->pp;
}

static inline void bu_job_define(bu_job *j, const char *name, int64_t value) {
  ASSERT(j->job.n_defines < 16);
  Ktune__Param *p = &j->params[j->job.n_defines];
  ktune__param__init(p);
  p->name = (char *)name;
  p->value = value;
  j->pp[j->job.n_defines++] = p;
}

/* One job, built alone. */
static inline void bu_build(Ktune__BuildJob *job, bu_result *out) { bu_build_many(&job, 1, out); }

static inline char *bu_read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  struct stat st;
  if (fstat(fileno(f), &st) < 0) {
    fclose(f);
    return NULL;
  }
  char *p = malloc((size_t)st.st_size + 1);
  ASSERT_NOT_NULL(p);
  size_t n = fread(p, 1, (size_t)st.st_size, f);
  fclose(f);
  p[n] = '\0';
  return p;
}

/* Writes an executable script (a fake compiler). */
static inline void bu_write_script(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  ASSERT_NOT_NULL(f);
  fputs(text, f);
  fclose(f);
  ASSERT_EQ_INT(chmod(path, 0755), 0);
}

#endif
