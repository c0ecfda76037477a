#include "runner/measure.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/frame.h"
#include "common/rng.h"
#include "common/wire.h"
#include "runner/load.h"
#include "runner/refcache.h"
#include "runner/sandbox.h"
#include "runner/timing.h"

/* Entry points take every buffer as a pointer argument; casting to a
 * prototype with the right number of pointers is how C calls them. */
#define MEASURE_MAX_ARGS 8
/* Rounds are kept one double each in the result; this bounds that array
 * for a job whose numbers came off the network. */
#define MEASURE_ALIGN 64

typedef struct {
  const char *type;
  size_t tsize;
  uint64_t count;
  size_t bytes; /* allocated, a multiple of MEASURE_ALIGN */
  int output;
  void *buf;
  void *ref; /* the reference's output, when checking */
} measure_buf;

/* protobuf-c marks unset strings with this shared constant; it must never
 * be freed. */
#define MEASURE_EMPTY ((char *)protobuf_c_empty_string)

static char *measure_strdup(const char *s) {
  char *p = strdup(s);
  return p ? p : MEASURE_EMPTY;
}

static int measure_set(Ktune__RunResult *res, Ktune__TrialStatus status, const char *fmt, ...) {
  char msg[1024];
  msg[0] = '\0';
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
  }
  if (res->error != protobuf_c_empty_string) free(res->error);
  res->status = status;
  res->error = msg[0] ? measure_strdup(msg) : MEASURE_EMPTY;
  return 0;
}

void measure_result_clear(Ktune__RunResult *res) {
  if (res->error && res->error != protobuf_c_empty_string) free(res->error);
  if (res->clock && res->clock != protobuf_c_empty_string) free(res->clock);
  free(res->costs_s);
  ktune__run_result__init(res);
}

static void measure_call(void *fn, void *const *a, size_t n) {
  switch (n) {
    case 0: ((void (*)(void))fn)(); break;
    case 1: ((void (*)(void *))fn)(a[0]); break;
    case 2: ((void (*)(void *, void *))fn)(a[0], a[1]); break;
    case 3: ((void (*)(void *, void *, void *))fn)(a[0], a[1], a[2]); break;
    case 4: ((void (*)(void *, void *, void *, void *))fn)(a[0], a[1], a[2], a[3]); break;
    case 5:
      ((void (*)(void *, void *, void *, void *, void *))fn)(a[0], a[1], a[2], a[3], a[4]);
      break;
    case 6:
      ((void (*)(void *, void *, void *, void *, void *, void *))fn)(a[0], a[1], a[2], a[3], a[4],
                                                                     a[5]);
      break;
    case 7:
      ((void (*)(void *, void *, void *, void *, void *, void *, void *))fn)(a[0], a[1], a[2], a[3],
                                                                             a[4], a[5], a[6]);
      break;
    case 8:
      ((void (*)(void *, void *, void *, void *, void *, void *, void *, void *))fn)(
          a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
      break;
    default: break;
  }
}

static void measure_fill_inputs(measure_buf *b, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; i++)
    if (!b[i].output) rng_fill_buffer(b[i].type, b[i].buf, b[i].count, seed, (unsigned)i);
}

static double measure_get(const measure_buf *b, const void *p, uint64_t i) {
  switch (b->type[0]) {
    case 'f': return ((const float *)p)[i];
    case 'd': return ((const double *)p)[i];
    default: return 0;
  }
}

static void measure_format(const measure_buf *b, const void *p, uint64_t i, char *out, size_t n) {
  if (strcmp(b->type, "float") == 0)
    snprintf(out, n, "%.9g", (double)((const float *)p)[i]);
  else if (strcmp(b->type, "double") == 0)
    snprintf(out, n, "%.17g", ((const double *)p)[i]);
  else if (strcmp(b->type, "int32") == 0)
    snprintf(out, n, "%" PRId32, ((const int32_t *)p)[i]);
  else
    snprintf(out, n, "%" PRId64, ((const int64_t *)p)[i]);
}

/* Compares buffer arg's kernel output with the reference's. Returns the
 * number of elements out of tolerance; *worst gets the one with the
 * largest error (a NaN where a number was expected counts as the
 * largest), *worst_err its absolute error. */
static uint64_t measure_compare(const measure_buf *b, double rtol, double atol, uint64_t *worst,
                                double *worst_err) {
  uint64_t bad = 0;
  *worst = 0;
  *worst_err = -1;
  int is_int = b->type[0] == 'i';
  for (uint64_t i = 0; i < b->count; i++) {
    double err;
    if (is_int) {
      int64_t g, w;
      if (b->tsize == 4) {
        g = ((const int32_t *)b->buf)[i];
        w = ((const int32_t *)b->ref)[i];
      } else {
        g = ((const int64_t *)b->buf)[i];
        w = ((const int64_t *)b->ref)[i];
      }
      if (g == w) continue;
      err = fabs((double)g - (double)w);
    } else {
      double g = measure_get(b, b->buf, i), w = measure_get(b, b->ref, i);
      /* Equal infinities and a NaN where the reference also has one are
       * not the kernel's fault. */
      if (g == w || (isnan(g) && isnan(w))) continue;
      err = fabs(g - w);
      if (err <= atol + rtol * fabs(w)) continue;
      if (isnan(err)) err = INFINITY;
    }
    bad++;
    if (err > *worst_err) {
      *worst_err = err;
      *worst = i;
    }
  }
  return bad;
}

/* ---- the dump: raw output bytes, for tests and debugging ---- */

static int measure_dump_open(const Ktune__RunJob *job, const char *dir, int *fd, char *err,
                             size_t errlen) {
  char path[4096];
  *fd = -1;
  if ((size_t)snprintf(path, sizeof path, "%s/job-%" PRIu64 ".out", dir, job->job_id) >=
      sizeof path) {
    snprintf(err, errlen, "dump path under %s is too long", dir);
    return -1;
  }
  *fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (*fd < 0) {
    snprintf(err, errlen, "cannot write %.512s: %s", path, strerror(errno));
    return -1;
  }
  return 0;
}

static int measure_dump_write(int fd, const measure_buf *b, size_t n, char *err, size_t errlen) {
  for (size_t i = 0; i < n; i++) {
    if (!b[i].output) continue;
    const uint8_t *p = b[i].buf;
    size_t left = (size_t)b[i].count * b[i].tsize;
    while (left > 0) {
      ssize_t w = write(fd, p, left);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        snprintf(err, errlen, "cannot write the dump: %s", w < 0 ? strerror(errno) : "short write");
        return -1;
      }
      p += w;
      left -= (size_t)w;
    }
  }
  return 0;
}

/* ---- setup, before the sandbox ---- */

/* A hint for allocation failures under the runner's memory limit. */
static void measure_limit_hint(const measure_opts *o, char *out, size_t len) {
  if (o->mem_limit_mb && MEASURE_LIMITS_MEMORY)
    snprintf(out, len, " (the measuring process may use %" PRIu64 " MB: ktune-runner --mem-limit-mb)",
             o->mem_limit_mb);
  else
    out[0] = '\0';
}

static int measure_limits(const measure_opts *o, Ktune__RunResult *res) {
  struct rlimit none = {0, 0};
  if (o->sandbox) setrlimit(RLIMIT_CORE, &none); /* a crashing kernel is reported, not dumped */
  if (o->mem_limit_mb && MEASURE_LIMITS_MEMORY) {
    rlim_t bytes = (rlim_t)o->mem_limit_mb << 20;
    struct rlimit as = {bytes, bytes};
    if (setrlimit(RLIMIT_AS, &as) < 0)
      return measure_set(res, WIRE_TRIAL(RUNTIME_ERROR), "cannot limit memory to %" PRIu64 " MB: %s",
                         o->mem_limit_mb, strerror(errno)) < 0 ? -1 : 1;
  }
  if (o->cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (o->cpu >= CPU_SETSIZE)
      return measure_set(res, WIRE_TRIAL(RUNTIME_ERROR), "cannot pin to cpu %d: no such cpu", o->cpu) < 0 ? -1 : 1;
    CPU_SET(o->cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) < 0)
      return measure_set(res, WIRE_TRIAL(RUNTIME_ERROR), "cannot pin to cpu %d: %s", o->cpu, strerror(errno)) < 0
                 ? -1 : 1;
  }
  return 0;
}

/* Checks the job's buffers and allocates them; on a bad job sets res and
 * returns 1. */
static int measure_alloc(const Ktune__RunJob *job, const measure_opts *o, measure_buf *b,
                         Ktune__RunResult *res) {
  char hint[160];
  measure_limit_hint(o, hint, sizeof hint);
  for (size_t i = 0; i < job->n_buffers; i++) {
    const Ktune__Buffer *jb = job->buffers[i];
    const char *type = jb && jb->type ? jb->type : "";
    size_t ts = rng_type_size(type);
    if (ts == 0)
      return measure_set(res, WIRE_TRIAL(RUNTIME_ERROR),
                         "buffer %zu: unknown element type \"%.40s\" (use float, double, int32 or int64)",
                         i, type) < 0 ? -1 : 1;
    if (jb->count == 0)
      return measure_set(res, WIRE_TRIAL(RUNTIME_ERROR), "buffer %zu: element count is 0", i) < 0 ? -1 : 1;
    if (jb->count > (SIZE_MAX / 4) / ts)
      return measure_set(res, WIRE_TRIAL(RUNTIME_ERROR), "buffer %zu: %" PRIu64 " elements do not fit in memory",
                         i, jb->count) < 0 ? -1 : 1;
    b[i].type = type;
    b[i].tsize = ts;
    b[i].count = jb->count;
    b[i].output = jb->output;
    size_t bytes = (size_t)jb->count * ts;
    b[i].bytes = (bytes + MEASURE_ALIGN - 1) / MEASURE_ALIGN * MEASURE_ALIGN;
    b[i].buf = aligned_alloc(MEASURE_ALIGN, b[i].bytes);
    if (!b[i].buf)
      return measure_set(res, WIRE_TRIAL(RUNTIME_ERROR), "buffer %zu: cannot allocate %zu bytes%s", i,
                         b[i].bytes, hint) < 0 ? -1 : 1;
    if (b[i].output) memset(b[i].buf, 0, b[i].bytes);
  }
  return 0;
}

/* Where the reference's outputs come from. */
typedef struct {
  uint8_t *image;      /* a mapped reference image, or NULL */
  size_t image_bytes;
  int cached;          /* the image is a finished reference: compare with it */
  int fill;            /* the image is ours to fill once the reference ran */
  int own;             /* b[].ref are private buffers */
} measure_ref;

/* Maps the runner's reference image, if any, and takes ownership of fd. A
 * finished image is mapped private, so that nothing done here can reach
 * the runner's copy; a blank one is sized and mapped shared to be filled.
 * Otherwise (or for a blank one) private buffers receive the reference. */
static int measure_ref_setup(const Ktune__RunJob *job, const measure_opts *o, int fd,
                             measure_buf *b, measure_ref *mr, Ktune__RunResult *res) {
  uint64_t off[MEASURE_MAX_ARGS], total = 0;
  struct stat st;
  if (fd >= 0 && refcache_layout(job, off, &total) == 0 && total <= SIZE_MAX &&
      fstat(fd, &st) == 0) {
    if ((uint64_t)st.st_size == total) {
      void *p = mmap(NULL, (size_t)total, PROT_READ, MAP_PRIVATE, fd, 0);
      const refcache_header *h = p;
      if (p != MAP_FAILED && h->magic == REFCACHE_MAGIC && h->bytes == total) {
        mr->image = p;
        mr->image_bytes = (size_t)total;
        mr->cached = 1;
        for (size_t i = 0; i < job->n_buffers; i++)
          if (b[i].output) b[i].ref = mr->image + off[i];
      } else if (p != MAP_FAILED) {
        munmap(p, (size_t)total);
      }
    } else if (st.st_size == 0 && ftruncate(fd, (off_t)total) == 0) {
      void *p = mmap(NULL, (size_t)total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (p != MAP_FAILED) {
        mr->image = p;
        mr->image_bytes = (size_t)total;
        mr->fill = 1;
      }
    }
  }
  if (fd >= 0) close(fd);
  if (mr->cached) return 0;
  char hint[160];
  measure_limit_hint(o, hint, sizeof hint);
  mr->own = 1;
  for (size_t i = 0; i < job->n_buffers; i++) {
    if (!b[i].output) continue;
    b[i].ref = aligned_alloc(MEASURE_ALIGN, b[i].bytes);
    if (!b[i].ref)
      return measure_set(res, WIRE_TRIAL(RUNTIME_ERROR), "buffer %zu: cannot allocate %zu bytes for the reference%s",
                         i, b[i].bytes, hint) < 0 ? -1 : 1;
    memset(b[i].ref, 0, b[i].bytes);
  }
  return 0;
}

/* Copies the computed reference into the blank image and publishes it
 * (magic last), then unmaps it: the kernel that runs next has no way back
 * to it. */
static void measure_ref_publish(const Ktune__RunJob *job, const measure_buf *b, measure_ref *mr) {
  uint64_t off[MEASURE_MAX_ARGS], total;
  if (!mr->fill) return;
  if (refcache_layout(job, off, &total) == 0 && total == mr->image_bytes) {
    for (size_t i = 0; i < job->n_buffers; i++)
      if (b[i].output) memcpy(mr->image + off[i], b[i].ref, (size_t)b[i].count * b[i].tsize);
    refcache_header *h = (refcache_header *)mr->image;
    h->bytes = total;
    __atomic_store_n(&h->magic, REFCACHE_MAGIC, __ATOMIC_RELEASE);
  }
  munmap(mr->image, mr->image_bytes);
  mr->image = NULL;
  mr->fill = 0;
}

/* ---- the measurement ---- */

typedef struct {
  void *fn;
  void **args;
  size_t n;
} measure_call_ctx;

static void measure_call_cb(void *p) {
  const measure_call_ctx *c = p;
  measure_call(c->fn, c->args, c->n);
}

/* Holds what measure_run sets up, so that one place releases it. */
typedef struct {
  measure_buf *b;
  void **args;
  measure_ref ref;
  Ktune__Timing tm;  /* the job's, filled in */
  uint8_t *flush;
  size_t flush_bytes;
  int dump_fd;
  int ref_fd; /* the caller's image until measure_ref_setup takes it */
  load_so so;
  sandbox *sb;
} measure_state;

static int measure_compare_all(const Ktune__RunJob *job, const measure_buf *b, Ktune__RunResult *res) {
  double rtol = job->rtol > 0 ? job->rtol : 0, atol = job->atol > 0 ? job->atol : 0;
  for (size_t i = 0; i < job->n_buffers; i++) {
    if (!b[i].output) continue;
    uint64_t worst;
    double werr;
    uint64_t bad = measure_compare(&b[i], rtol, atol, &worst, &werr);
    if (bad == 0) continue;
    char got[64], want[64];
    measure_format(&b[i], b[i].buf, worst, got, sizeof got);
    measure_format(&b[i], b[i].ref, worst, want, sizeof want);
    char label[80];
    const char *nm = job->buffers[i]->name;
    if (nm && nm[0]) snprintf(label, sizeof label, "%.64s", nm);
    else snprintf(label, sizeof label, "buffer %zu", i);
    return measure_set(res, WIRE_TRIAL(WRONG_ANSWER),
                       "%s[%" PRIu64 "]: got %s expected %s (worst abs error %.3g; %" PRIu64
                       " of %" PRIu64 " elements out of tolerance rtol %g atol %g)",
                       label, worst, got, want, werr, bad, b[i].count, rtol, atol);
  }
  return measure_set(res, WIRE_TRIAL(OK), NULL);
}

/* Everything before untrusted code runs: limits, buffers, inputs, the
 * reference image, the flush buffer, the artifact's memfd, the dump file.
 * Returns 0 to go on, 1 when res says why not, negative on no memory. */
static int measure_prepare(const Ktune__RunJob *job, const measure_opts *o, int check,
                           measure_state *st, Ktune__RunResult *res) {
  int rc = measure_limits(o, res);
  if (rc == 0) rc = measure_alloc(job, o, st->b, res);
  if (rc != 0) return rc;
  measure_fill_inputs(st->b, job->n_buffers, job->seed);
  int fd = st->ref_fd;
  st->ref_fd = -1;
  if (check) {
    rc = measure_ref_setup(job, o, fd, st->b, &st->ref, res);
    if (rc != 0) return rc;
  } else if (fd >= 0) {
    close(fd);
  }
  if (st->tm.flush_cache) {
    st->flush_bytes = timing_flush_bytes(o->cpu);
    st->flush = aligned_alloc(MEASURE_ALIGN, st->flush_bytes);
    if (!st->flush) {
      char hint[160];
      measure_limit_hint(o, hint, sizeof hint);
      return measure_set(res, WIRE_TRIAL(RUNTIME_ERROR), "cannot allocate %zu bytes to flush caches with%s",
                         st->flush_bytes, hint) < 0 ? -1 : 1;
    }
    memset(st->flush, 0, st->flush_bytes);
  }
  res->costs_s = calloc(st->tm.repeat, sizeof *res->costs_s);
  if (!res->costs_s) return -1;
  char err[1024];
  if (load_prepare(&st->so, job->artifact.data, job->artifact.len, err, sizeof err) < 0)
    return measure_set(res, WIRE_TRIAL(LOAD_ERROR), "%s", err) < 0 ? -1 : 1;
  if (o->dump_dir && measure_dump_open(job, o->dump_dir, &st->dump_fd, err, sizeof err) < 0)
    return measure_set(res, WIRE_TRIAL(RUNTIME_ERROR), "%s", err) < 0 ? -1 : 1;
  return 0;
}

/* Loads the artifact and finds its functions; with a sandbox, the loader
 * runs inside the first filter when the architecture allows. */
static int measure_load(const Ktune__RunJob *job, const measure_opts *o, int need_ref,
                        measure_state *st, void **entry, void **ref, Ktune__RunResult *res) {
  char err[1024];
  int loaded = 0;
  if (o->sandbox) {
    if (!sandbox_loader_inside()) {
      if (load_map(&st->so, err, sizeof err) < 0)
        return measure_set(res, WIRE_TRIAL(LOAD_ERROR), "%s", err) < 0 ? -1 : 1;
      loaded = 1;
    }
    sandbox_config sc = {job->job_id, o->out_fd, st->dump_fd, st->so.fd, st->so.path,
                         MEASURE_LIMITS_MEMORY ? o->mem_limit_mb : 0, o->sandbox_off,
                         o->filters};
    if (sandbox_enter(&sc, &st->sb, err, sizeof err) < 0)
      return measure_set(res, WIRE_TRIAL(RUNTIME_ERROR), "%s", err) < 0 ? -1 : 1;
  }
  if (!loaded && load_map(&st->so, err, sizeof err) < 0)
    return measure_set(res, WIRE_TRIAL(LOAD_ERROR), "%s", err) < 0 ? -1 : 1;
  if (load_sym(&st->so, job->entry, entry, err, sizeof err) < 0 ||
      (need_ref && load_sym(&st->so, job->reference, ref, err, sizeof err) < 0))
    return measure_set(res, WIRE_TRIAL(LOAD_ERROR), "%s", err) < 0 ? -1 : 1;
  load_drop_fd(&st->so);
  if (st->sb && sandbox_lockdown(st->sb, err, sizeof err) < 0)
    return measure_set(res, WIRE_TRIAL(RUNTIME_ERROR), "%s", err) < 0 ? -1 : 1;
  return 0;
}

static int measure_run(const Ktune__RunJob *job, const measure_opts *o, measure_state *st,
                       Ktune__RunResult *res) {
  size_t n = job->n_buffers;
  if (n > MEASURE_MAX_ARGS)
    return measure_set(res, WIRE_TRIAL(RUNTIME_ERROR), "%zu buffers: at most %d arguments are supported", n,
                       MEASURE_MAX_ARGS);
  /* The numbers came off the network: the limits every program shares. */
  char terr[256];
  timing_copy(&st->tm, job->timing);
  if (timing_fill(&st->tm, terr, sizeof terr) < 0)
    return measure_set(res, WIRE_TRIAL(RUNTIME_ERROR), "%s", terr);
  int check = job->check && job->reference && job->reference[0];
  int rc = measure_prepare(job, o, check, st, res);
  if (rc != 0) return rc < 0 ? -1 : 0;
  void *entry = NULL, *ref = NULL;
  int need_ref = check && !st->ref.cached;
  rc = measure_load(job, o, need_ref, st, &entry, &ref, res);
  if (rc != 0) return rc < 0 ? -1 : 0;

  if (need_ref) {
    /* The reference gets fresh inputs and its own zeroed outputs; the
     * kernel then gets the inputs again, in case the reference wrote them. */
    for (size_t i = 0; i < n; i++) st->args[i] = st->b[i].output ? st->b[i].ref : st->b[i].buf;
    measure_call(ref, st->args, n);
    measure_ref_publish(job, st->b, &st->ref);
    measure_fill_inputs(st->b, n, job->seed);
  }
  for (size_t i = 0; i < n; i++) st->args[i] = st->b[i].buf;
  if (st->sb) sandbox_set_phase(st->sb, SANDBOX_KERNEL);
  /* A crash handler reads errno to tell an out-of-memory crash apart. */
  errno = 0;
  measure_call_ctx cc = {entry, st->args, n};
  measure_call(entry, st->args, n); /* warm-up: page faults, caches, lazy binding */
  timing_opts to = {st->tm.number, st->tm.repeat, st->tm.min_repeat_ms, st->tm.cooldown_ms,
                    st->flush, st->flush_bytes};
  timing_run(&to, measure_call_cb, &cc, res->costs_s, &res->number);
  res->n_costs_s = to.repeat;
  if (st->sb) sandbox_set_phase(st->sb, SANDBOX_CHECKING);

  /* The dump and the check both see the outputs of the last timed call. */
  char err[1024];
  if (st->dump_fd >= 0 && measure_dump_write(st->dump_fd, st->b, n, err, sizeof err) < 0) {
    measure_set(res, WIRE_TRIAL(RUNTIME_ERROR), "%s", err);
    return -1;
  }
  if (check) return measure_compare_all(job, st->b, res);
  return measure_set(res, WIRE_TRIAL(OK), NULL);
}

int measure_job(const Ktune__RunJob *job, const measure_opts *o, Ktune__RunResult *res) {
  static const measure_opts defaults = MEASURE_OPTS_INIT;
  if (!o) o = &defaults;
  ktune__run_result__init(res);
  if (!job) {
    if (o->ref_fd >= 0) close(o->ref_fd);
    return -1;
  }
  res->job_id = job->job_id;
  res->clock = measure_strdup(TIMING_CLOCK_NAME);
  size_t n = job->n_buffers;
  measure_state st = {0};
  st.dump_fd = -1;
  st.ref_fd = o->ref_fd;
  st.so.fd = -1;
  st.b = calloc(n ? n : 1, sizeof *st.b);
  st.args = calloc(n ? n : 1, sizeof *st.args);
  int rc = -1;
  if (st.b && st.args) rc = measure_run(job, o, &st, res);
  if (st.ref_fd >= 0) close(st.ref_fd);
  /* A sandboxed process exits next: its artifact stays loaded so that no
   * destructor of it runs, and nothing else needs releasing. */
  if (!st.sb) {
    for (size_t i = 0; st.b && i < n; i++) {
      free(st.b[i].buf);
      if (st.ref.own) free(st.b[i].ref);
    }
    if (st.ref.image) munmap(st.ref.image, st.ref.image_bytes);
    free(st.flush);
    free(st.b);
    free(st.args);
    if (st.dump_fd >= 0) close(st.dump_fd);
    load_close(&st.so);
  }
  if (res->status == KTUNE__TRIAL_STATUS__TRIAL_STATUS_UNSET && rc >= 0) rc = -1;
  return rc;
}

/* The result fd must not be one a kernel's stdio writes to by accident:
 * move it above stderr and put /dev/null where it was. */
static int measure_private_out(int out_fd) {
  if (out_fd > 2) return out_fd;
  int fd = fcntl(out_fd, F_DUPFD_CLOEXEC, 3);
  if (fd < 0) return out_fd;
  int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (nul >= 0) {
    dup2(nul, out_fd);
    close(nul);
  }
  return fd;
}

int measure_child_main(int in_fd, int out_fd, const measure_opts *o) {
  static const measure_opts defaults = MEASURE_OPTS_INIT;
  if (!o) o = &defaults;
  Ktune__Envelope *in = wire_read_fd(in_fd, FRAME_MAX_DEFAULT);
  if (!in || in->msg_case != KTUNE__ENVELOPE__MSG_RUN_JOB || !in->run_job) {
    wire_free(in);
    if (o->ref_fd >= 0) close(o->ref_fd);
    return 1;
  }
  measure_opts mo = *o;
  if (mo.sandbox) out_fd = measure_private_out(out_fd);
  mo.out_fd = out_fd;
  Ktune__RunResult res;
  int rc = measure_job(in->run_job, &mo, &res);
  /* A result whose status was set still tells the runner what happened,
   * even when the measurement hit an internal error. */
  if (rc < 0 && res.status == KTUNE__TRIAL_STATUS__TRIAL_STATUS_UNSET) {
    measure_set(&res, WIRE_TRIAL(RUNTIME_ERROR),
                "measuring child failed: out of memory");
    res.job_id = in->run_job->job_id;
  }
  Ktune__Envelope out = wire_envelope(KTUNE__ENVELOPE__MSG_RUN_RESULT, &res);
  int wrc = wire_write_fd(out_fd, &out);
  if (!mo.sandbox) {
    measure_result_clear(&res);
    wire_free(in);
  }
  return wrc < 0 ? 2 : 0;
}
