#include "runner/measure.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/frame.h"
#include "common/rng.h"
#include "common/wire.h"
#include "runner/load.h"

/* Entry points take every buffer as a pointer argument; casting to a
 * prototype with the right number of pointers is how C calls them. */
#define MEASURE_MAX_ARGS 8
/* Rounds are kept one double each in the result; this bounds that array
 * for a job whose numbers came off the network. */
#define MEASURE_MAX_REPEAT 100000u
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

static int measure_set(Ktune__RunResult *res, const char *status, const char *fmt, ...) {
  char msg[1024];
  msg[0] = '\0';
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
  }
  if (res->status != protobuf_c_empty_string) free(res->status);
  if (res->error != protobuf_c_empty_string) free(res->error);
  res->status = measure_strdup(status);
  res->error = msg[0] ? measure_strdup(msg) : MEASURE_EMPTY;
  return res->status == protobuf_c_empty_string ? -1 : 0;
}

void measure_result_clear(Ktune__RunResult *res) {
  if (res->status && res->status != protobuf_c_empty_string) free(res->status);
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

static double measure_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
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

static int measure_dump(const Ktune__RunJob *job, const measure_buf *b, size_t n,
                        const char *dir, char *err, size_t errlen) {
  char path[4096];
  if ((size_t)snprintf(path, sizeof path, "%s/job-%" PRIu64 ".out", dir, job->job_id) >=
      sizeof path) {
    snprintf(err, errlen, "dump path under %s is too long", dir);
    return -1;
  }
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    snprintf(err, errlen, "cannot write %.512s: %s", path, strerror(errno));
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    if (!b[i].output) continue;
    const uint8_t *p = b[i].buf;
    size_t left = (size_t)b[i].count * b[i].tsize;
    while (left > 0) {
      ssize_t w = write(fd, p, left);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        snprintf(err, errlen, "cannot write %.512s: %s", path, w < 0 ? strerror(errno) : "short write");
        close(fd);
        return -1;
      }
      p += w;
      left -= (size_t)w;
    }
  }
  if (close(fd) < 0) {
    snprintf(err, errlen, "cannot write %.512s: %s", path, strerror(errno));
    return -1;
  }
  return 0;
}

/* Checks the job's buffers and allocates them; on a bad job sets res and
 * returns 1. */
static int measure_alloc(const Ktune__RunJob *job, measure_buf *b, int check,
                         Ktune__RunResult *res) {
  for (size_t i = 0; i < job->n_buffers; i++) {
    const Ktune__Buffer *jb = job->buffers[i];
    const char *type = jb && jb->type ? jb->type : "";
    size_t ts = rng_type_size(type);
    if (ts == 0)
      return measure_set(res, "RUNTIME_ERROR",
                         "buffer %zu: unknown element type \"%.40s\" (use float, double, int32 or int64)",
                         i, type) < 0 ? -1 : 1;
    if (jb->count == 0)
      return measure_set(res, "RUNTIME_ERROR", "buffer %zu: element count is 0", i) < 0 ? -1 : 1;
    if (jb->count > (SIZE_MAX - MEASURE_ALIGN) / ts)
      return measure_set(res, "RUNTIME_ERROR", "buffer %zu: %" PRIu64 " elements do not fit in memory",
                         i, jb->count) < 0 ? -1 : 1;
    b[i].type = type;
    b[i].tsize = ts;
    b[i].count = jb->count;
    b[i].output = jb->output;
    size_t bytes = (size_t)jb->count * ts;
    b[i].bytes = (bytes + MEASURE_ALIGN - 1) / MEASURE_ALIGN * MEASURE_ALIGN;
    b[i].buf = aligned_alloc(MEASURE_ALIGN, b[i].bytes);
    if (b[i].buf && b[i].output && check) b[i].ref = aligned_alloc(MEASURE_ALIGN, b[i].bytes);
    if (!b[i].buf || (b[i].output && check && !b[i].ref))
      return measure_set(res, "RUNTIME_ERROR", "buffer %zu: cannot allocate %zu bytes", i,
                         b[i].bytes) < 0 ? -1 : 1;
    if (b[i].output) {
      memset(b[i].buf, 0, b[i].bytes);
      if (b[i].ref) memset(b[i].ref, 0, b[i].bytes);
    }
  }
  return 0;
}

static int measure_run(const Ktune__RunJob *job, const char *dump_dir, measure_buf *b, void **args,
                       Ktune__RunResult *res) {
  size_t n = job->n_buffers;
  if (n > MEASURE_MAX_ARGS)
    return measure_set(res, "RUNTIME_ERROR", "%zu buffers: at most %d arguments are supported", n,
                       MEASURE_MAX_ARGS);
  uint32_t number = job->number ? job->number : 1;
  uint32_t repeat = job->repeat ? job->repeat : 1;
  if (repeat > MEASURE_MAX_REPEAT)
    return measure_set(res, "RUNTIME_ERROR", "repeat %" PRIu32 " is above the limit %u", repeat,
                       MEASURE_MAX_REPEAT);
  int check = job->check && job->reference && job->reference[0];

  char err[1024];
  load_so so;
  if (load_open(&so, job->artifact.data, job->artifact.len, err, sizeof err) < 0)
    return measure_set(res, "LOAD_ERROR", "%s", err);
  void *entry = NULL, *ref = NULL;
  int rc = 0;
  if (load_sym(&so, job->entry, &entry, err, sizeof err) < 0 ||
      (check && load_sym(&so, job->reference, &ref, err, sizeof err) < 0)) {
    rc = measure_set(res, "LOAD_ERROR", "%s", err);
    goto out;
  }
  rc = measure_alloc(job, b, check, res);
  if (rc != 0) {
    rc = rc < 0 ? -1 : 0;
    goto out;
  }
  for (size_t i = 0; i < n; i++) args[i] = b[i].buf;
  measure_fill_inputs(b, n, job->seed);

  res->costs_s = calloc(repeat, sizeof *res->costs_s);
  if (!res->costs_s) {
    rc = -1;
    goto out;
  }
  measure_call(entry, args, n); /* warm-up: page faults, caches, lazy binding */
  for (uint32_t r = 0; r < repeat; r++) {
    double t0 = measure_now();
    for (uint32_t k = 0; k < number; k++) measure_call(entry, args, n);
    double t1 = measure_now();
    res->costs_s[r] = (t1 - t0) / number;
  }
  res->n_costs_s = repeat;
  res->number = number;

  /* The dump and the check both see the outputs of the last timed call. */
  if (dump_dir && measure_dump(job, b, n, dump_dir, err, sizeof err) < 0) {
    measure_set(res, "RUNTIME_ERROR", "%s", err);
    rc = -1;
    goto out;
  }
  if (check) {
    /* The kernel may have written into its inputs; the reference gets them
     * fresh from the same seed, and its own zeroed outputs. */
    measure_fill_inputs(b, n, job->seed);
    for (size_t i = 0; i < n; i++) args[i] = b[i].output ? b[i].ref : b[i].buf;
    measure_call(ref, args, n);
    double rtol = job->rtol > 0 ? job->rtol : 0, atol = job->atol > 0 ? job->atol : 0;
    for (size_t i = 0; i < n; i++) {
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
      rc = measure_set(res, "WRONG_ANSWER",
                       "%s[%" PRIu64 "]: got %s expected %s (worst abs error %.3g; %" PRIu64
                       " of %" PRIu64 " elements out of tolerance rtol %g atol %g)",
                       label, worst, got, want, werr, bad, b[i].count, rtol, atol);
      goto out;
    }
  }
  rc = measure_set(res, "ok", NULL);
out:
  load_close(&so);
  return rc;
}

int measure_job(const Ktune__RunJob *job, const char *dump_dir, Ktune__RunResult *res) {
  ktune__run_result__init(res);
  if (!job) return -1;
  res->job_id = job->job_id;
  res->clock = measure_strdup("CLOCK_MONOTONIC");
  size_t n = job->n_buffers;
  measure_buf *b = calloc(n ? n : 1, sizeof *b);
  void **args = calloc(n ? n : 1, sizeof *args);
  int rc = -1;
  if (b && args) rc = measure_run(job, dump_dir, b, args, res);
  for (size_t i = 0; b && i < n; i++) {
    free(b[i].buf);
    free(b[i].ref);
  }
  free(b);
  free(args);
  if (res->status == protobuf_c_empty_string && rc >= 0) rc = -1;
  return rc;
}

int measure_child_main(int in_fd, int out_fd, const char *dump_dir) {
  Ktune__Envelope *in = wire_read_fd(in_fd, FRAME_MAX_DEFAULT);
  if (!in) return 1;
  if (in->msg_case != KTUNE__ENVELOPE__MSG_RUN_JOB || !in->run_job) {
    wire_free(in);
    return 1;
  }
  Ktune__RunResult res;
  int rc = measure_job(in->run_job, dump_dir, &res);
  /* A result whose status was set still tells the runner what happened,
   * even when the measurement hit an internal error. */
  if (rc < 0 && res.status == protobuf_c_empty_string) {
    measure_set(&res, "RUNTIME_ERROR", "measuring child failed: out of memory");
    res.job_id = in->run_job->job_id;
  }
  wire_free(in);
  Ktune__Envelope out = KTUNE__ENVELOPE__INIT;
  out.msg_case = KTUNE__ENVELOPE__MSG_RUN_RESULT;
  out.run_result = &res;
  int wrc = wire_write_fd(out_fd, &out);
  measure_result_clear(&res);
  return wrc < 0 ? 2 : 0;
}
