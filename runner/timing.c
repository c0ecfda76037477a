#include "runner/timing.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* TVM grows number by at least the golden ratio per short round. */
#define TIMING_GROWTH 1.618
#define TIMING_LINE 64
#define TIMING_FLUSH_DEFAULT (64u << 20)
#define TIMING_FLUSH_MAX (1u << 30)

double timing_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

uint32_t timing_next_number(uint32_t number, double round_s, uint32_t min_repeat_ms) {
  if (number == 0) number = 1;
  double want = number * TIMING_GROWTH;
  if (round_s > 0) {
    double need = min_repeat_ms / (round_s * 1e3 / number) + 1;
    if (need > want) want = need;
  }
  if (want >= (double)TIMING_MAX_GROWN_NUMBER) return TIMING_MAX_GROWN_NUMBER;
  uint32_t n = (uint32_t)want;
  return n > number ? n : number + 1;
}

static void timing_sleep_ms(uint32_t ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

void timing_flush(uint8_t *buf, size_t n) {
  volatile uint8_t *p = buf;
  for (size_t i = 0; i < n; i += TIMING_LINE) p[i]++;
}

int timing_run(const timing_opts *o, timing_fn fn, void *ctx, double *costs, uint32_t *number_out) {
  uint32_t number = o->number ? o->number : 1;
  for (uint32_t r = 0; r < o->repeat; r++) {
    if (r > 0 && o->cooldown_ms) timing_sleep_ms(o->cooldown_ms);
    if (o->flush) timing_flush(o->flush, o->flush_bytes);
    double secs;
    for (;;) {
      double t0 = timing_now();
      for (uint32_t k = 0; k < number; k++) fn(ctx);
      secs = timing_now() - t0;
      if (secs * 1e3 >= o->min_repeat_ms || number >= TIMING_MAX_GROWN_NUMBER) break;
      number = timing_next_number(number, secs, o->min_repeat_ms);
    }
    costs[r] = secs / number;
  }
  *number_out = number;
  return 0;
}

/* The largest data or unified cache cpu sees, in bytes; 0 when sysfs does
 * not say. sysconf's figure is not used: in VMs it can be the whole
 * package's, not what one core evicts. */
static size_t timing_llc_bytes(int cpu) {
  size_t best = 0;
  for (int idx = 0; idx < 8; idx++) {
    char path[128], type[32] = "";
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/cache/index%d/type", cpu, idx);
    FILE *f = fopen(path, "r");
    if (!f) break;
    int got = fscanf(f, "%31s", type);
    fclose(f);
    if (got != 1 || type[0] == 'I') continue; /* instruction caches */
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/cache/index%d/size", cpu, idx);
    f = fopen(path, "r");
    if (!f) continue;
    unsigned long v = 0;
    char unit = 0;
    if (fscanf(f, "%lu%c", &v, &unit) >= 1) {
      size_t b = unit == 'K' ? v << 10 : unit == 'M' ? v << 20 : v;
      if (b > best) best = b;
    }
    fclose(f);
  }
  return best;
}

size_t timing_flush_bytes(int cpu) {
  size_t llc = timing_llc_bytes(cpu < 0 ? 0 : cpu);
  if (llc == 0) return TIMING_FLUSH_DEFAULT;
  size_t n = 2 * llc;
  return n > TIMING_FLUSH_MAX ? TIMING_FLUSH_MAX : n < (8u << 20) ? (8u << 20) : n;
}
