#include "tests/bench/benchutil.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LAT_EXACT 1024u
#define LAT_SUB 512u  /* buckets per power of two above LAT_EXACT */
#define LAT_POW 54u   /* powers of two from 2^10 to 2^63 */
#define LAT_BUCKETS (LAT_EXACT + LAT_POW * LAT_SUB)

static unsigned bucket_of(uint64_t us) {
  if (us < LAT_EXACT) return (unsigned)us;
  unsigned e = 63u - (unsigned)__builtin_clzll(us); /* >= 10 */
  unsigned shift = e - 9u;                           /* keeps the top 10 bits */
  return LAT_EXACT + (e - 10u) * LAT_SUB + (unsigned)((us >> shift) - LAT_SUB);
}

/* The middle of a bucket: what a percentile falling in it reports. */
static double bucket_value(unsigned b) {
  if (b < LAT_EXACT) return b;
  unsigned e = (b - LAT_EXACT) / LAT_SUB + 10u, m = (b - LAT_EXACT) % LAT_SUB + LAT_SUB;
  double width = ldexp(1.0, (int)e - 9);
  return (double)m * width + width / 2;
}

int lat_init(lat_hist *h) {
  memset(h, 0, sizeof(*h));
  h->buckets = calloc(LAT_BUCKETS, sizeof(*h->buckets));
  return h->buckets ? 0 : -1;
}

void lat_free(lat_hist *h) {
  free(h->buckets);
  h->buckets = NULL;
}

void lat_reset(lat_hist *h) {
  memset(h->buckets, 0, LAT_BUCKETS * sizeof(*h->buckets));
  h->n = 0;
  h->sum_us = 0;
  h->min_us = h->max_us = 0;
}

void lat_add(lat_hist *h, uint64_t us) {
  h->buckets[bucket_of(us)]++;
  if (!h->n || us < h->min_us) h->min_us = us;
  if (us > h->max_us) h->max_us = us;
  h->n++;
  h->sum_us += (double)us;
}

double lat_pct(const lat_hist *h, double p) {
  if (!h->n) return 0;
  uint64_t want = (uint64_t)ceil(p / 100.0 * (double)h->n), seen = 0;
  if (want < 1) want = 1;
  for (unsigned b = 0; b < LAT_BUCKETS; b++) {
    seen += h->buckets[b];
    if (seen >= want) {
      /* A bucket's middle can lie outside what was seen: clamp. */
      double v = bucket_value(b);
      if (v > (double)h->max_us) v = (double)h->max_us;
      if (v < (double)h->min_us) v = (double)h->min_us;
      return v;
    }
  }
  return (double)h->max_us;
}

void lat_json(FILE *f, const char *name, const lat_hist *h) {
  fprintf(f, "\"%s\": {\"n\": %llu, \"mean_us\": %.1f, \"p50_us\": %.1f, \"p90_us\": %.1f, "
          "\"p99_us\": %.1f, \"max_us\": %llu}",
          name, (unsigned long long)h->n, h->n ? h->sum_us / (double)h->n : 0.0,
          lat_pct(h, 50), lat_pct(h, 90), lat_pct(h, 99), (unsigned long long)h->max_us);
}

int bench_u32(const char *prog, const char *opt, const char *s, uint32_t min, uint32_t max,
              uint32_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (!*s || *end || *s == '-' || errno || v < min || v > max) {
    fprintf(stderr, "%s: %s takes a whole number from %u to %u, not '%s'\n", prog, opt, min, max,
            s);
    return -1;
  }
  *out = (uint32_t)v;
  return 0;
}

int bench_double(const char *prog, const char *opt, const char *s, double min, double max,
                 double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (!*s || *end || errno || !(v >= min && v <= max)) {
    fprintf(stderr, "%s: %s takes a number from %g to %g, not '%s'\n", prog, opt, min, max, s);
    return -1;
  }
  *out = v;
  return 0;
}

/* utime + stime from /proc/PID/stat, in clock ticks (usually 10 ms). */
static double stat_cpu_s(pid_t pid) {
  char path[64], buf[4096];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = 0;
  /* The command name may hold spaces and parentheses: fields count from
   * the last ')'. utime and stime are fields 14 and 15. */
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  unsigned long long ut, st;
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
    return -1;
  long hz = sysconf(_SC_CLK_TCK);
  return (double)(ut + st) / (double)(hz > 0 ? hz : 100);
}

double bench_proc_cpu_s(pid_t pid) {
  /* The same time in nanoseconds, thread by thread (schedstat's first
   * field): a short run's few thousand trials cost less CPU than one
   * clock tick is coarse. stat is the fallback without schedstats. */
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
  DIR *d = opendir(path);
  if (!d) return stat_cpu_s(pid);
  double sum = 0;
  int found = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char file[320];
    snprintf(file, sizeof(file), "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
    FILE *f = fopen(file, "r");
    unsigned long long ns;
    if (!f) continue;
    if (fscanf(f, "%llu", &ns) == 1) sum += (double)ns / 1e9, found = 1;
    fclose(f);
  }
  closedir(d);
  return found ? sum : stat_cpu_s(pid);
}

int bench_write_file(const char *path, const char *text) {
  char tmp[4096];
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) return -1;
  fputs(text, f);
  if (fclose(f) != 0 || rename(tmp, path) != 0) return -1;
  return 0;
}
