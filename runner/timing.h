/* Timing with the semantics TVM's time_evaluator has, so that settings
 * carry over: one warm-up call (by the caller), then `repeat` rounds of
 * `number` calls each; `min_repeat_ms` raises `number` until a round lasts
 * at least that long; `cooldown_ms` pauses between rounds; an optional
 * cache flush before each round. Every round gives seconds per call. */
#ifndef KTUNE_TIMING_H
#define KTUNE_TIMING_H

#include <stddef.h>
#include <stdint.h>

#include "common/timing.h"

/* What RunResult.clock names. */
#define TIMING_CLOCK_NAME "CLOCK_MONOTONIC"
/* number never grows past TIMING_MAX_GROWN_NUMBER (common/timing.h). */

typedef struct {
  uint32_t number;        /* calls per round to start with; 0 means 1 */
  uint32_t repeat;        /* rounds; the caller's costs array holds this many */
  uint32_t min_repeat_ms; /* 0: number stays as given */
  uint32_t cooldown_ms;   /* sleep between rounds */
  uint8_t *flush;         /* written before each round when not NULL */
  size_t flush_bytes;
} timing_opts;

typedef void (*timing_fn)(void *ctx);

/* Seconds on the monotonic clock. */
double timing_now(void);

/* TVM's rule for the next number after a round of `number` calls lasted
 * round_s but less than min_repeat_ms: enough calls to fill min_repeat_ms
 * at the measured speed (plus one), and at least 1.618 times as many. */
uint32_t timing_next_number(uint32_t number, double round_s, uint32_t min_repeat_ms);

/* Runs the rounds. costs[r] gets round r's seconds per call, measured with
 * the number in force when that round met min_repeat_ms; *number_out the
 * final number. Rounds that were too short to count are not kept. */
int timing_run(const timing_opts *o, timing_fn fn, void *ctx, double *costs, uint32_t *number_out);

/* Bytes to write to evict the last-level cache of `cpu` (twice its size,
 * from sysfs; a generous default when unknown). Reads files: call before
 * the sandbox. */
size_t timing_flush_bytes(int cpu);

/* Writes one byte per cache line of buf, leaving it dirty in cache and
 * everything else evicted. */
void timing_flush(uint8_t *buf, size_t n);

#endif
