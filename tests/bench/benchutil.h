/* What the bench programs (ktune-load, ktune-relay) share: latency
 * histograms, option parsing with clear errors, and the tracker's CPU
 * time from /proc. */
#ifndef KTUNE_BENCHUTIL_H
#define KTUNE_BENCHUTIL_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* Microsecond latencies. Log-linear buckets: exact below 1024 us, then
 * 512 buckets per power of two (under 0.2% error), so a tail of seconds
 * costs no more memory than one of microseconds. */
typedef struct {
  uint32_t *buckets;
  uint64_t n;
  double sum_us;
  uint64_t min_us, max_us;
} lat_hist;

int lat_init(lat_hist *h);
void lat_free(lat_hist *h);
void lat_reset(lat_hist *h);
void lat_add(lat_hist *h, uint64_t us);
/* The p-th percentile (0 < p <= 100) in microseconds; 0 when empty. */
double lat_pct(const lat_hist *h, double p);
/* "name": {"n":..,"mean_us":..,"p50_us":..,"p99_us":..,"max_us":..} */
void lat_json(FILE *f, const char *name, const lat_hist *h);

/* Parses a whole number in [min, max] for option opt; on error says so on
 * stderr as prog and returns -1. */
int bench_u32(const char *prog, const char *opt, const char *s, uint32_t min, uint32_t max,
              uint32_t *out);
int bench_double(const char *prog, const char *opt, const char *s, double min, double max,
                 double *out);

/* CPU time of a process in seconds, all its threads (user and system):
 * /proc's schedstat, else utime + stime. -1 when it cannot be read. */
double bench_proc_cpu_s(pid_t pid);

/* Writes text to path atomically (a temporary file, then rename). */
int bench_write_file(const char *path, const char *text);

#endif
