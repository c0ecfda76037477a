/* What happens inside the runner's measuring child: allocate and fill the
 * buffers, enter the sandbox, load the artifact, compute or look up the
 * reference, warm up, time, check. Runs in a child process so that a
 * kernel cannot take the runner agent down. docs/MEASUREMENT.md says what
 * is timed and what the sandbox allows. */
#ifndef KTUNE_MEASURE_H
#define KTUNE_MEASURE_H

#include <stdint.h>

#include "proto/ktune.pb-c.h"
#include "runner/sandbox.h"

typedef struct {
  const char *dump_dir;  /* DIR/job-ID.out gets the raw output buffers */
  int cpu;               /* pin to this core; -1: leave as is */
  uint64_t mem_limit_mb; /* address-space limit of this process; 0: none */
  int ref_fd;            /* -1, or a reference image (runner/refcache.h),
                            sealed (compare with it) or empty (fill it);
                            measure_job closes it */
  int sandbox;           /* load, reference and kernel under seccomp; for
                            a child process only: it never leaves */
  int out_fd;            /* with sandbox: crashes are reported here */
  unsigned sandbox_off;  /* with sandbox: SANDBOX_PART_SECCOMP, no filter (sandbox.h) */
  const sandbox_filters *filters; /* with sandbox: compiled ahead (a fork server's), or NULL */
} measure_opts;

#define MEASURE_OPTS_INIT {NULL, -1, 0, -1, 0, -1, 0, NULL}

/* AddressSanitizer reserves terabytes of shadow address space at start: in
 * such a build no address-space limit can be applied (mem_limit_mb is then
 * ignored). */
#if defined(__SANITIZE_ADDRESS__)
#define MEASURE_LIMITS_MEMORY 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEASURE_LIMITS_MEMORY 0
#endif
#endif
#ifndef MEASURE_LIMITS_MEMORY
#define MEASURE_LIMITS_MEMORY 1
#endif

/* Measures one job. Fills res (status, error, costs_s, number, clock);
 * strings and arrays in res are malloc'd: free with measure_result_clear.
 * o may be NULL (no dump, no pinning, no limit, no sandbox). Returns 0
 * when res is filled (even for a failed trial), negative on an internal
 * error. */
int measure_job(const Ktune__RunJob *job, const measure_opts *o, Ktune__RunResult *res);
void measure_result_clear(Ktune__RunResult *res);

/* The child's main: reads one framed Envelope{run_job} from in_fd,
 * measures, writes one framed Envelope{run_result} to out_fd. Returns the
 * exit status for the child process, which should _exit with it (with a
 * sandbox the artifact stays loaded; its destructors must not run). */
int measure_child_main(int in_fd, int out_fd, const measure_opts *o);

#endif
