/* Numbers and configs as every command prints them: `ktune tune`'s
 * progress and `ktune best` say the same thing the same way. */
#ifndef KTUNE_CLI_FORMAT_H
#define KTUNE_CLI_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "common/task.h"

/* Seconds per call in the unit that fits: "68.121 ms", "63.63 us"; "-"
 * for none (0 or less). */
void cli_fmt_latency(char *buf, size_t len, double s);
/* A count with thousands separators: "6,656". */
void cli_fmt_count(char *buf, size_t len, uint64_t n);
/* A speed, right-aligned in width digits: "  12.345 GB/s" for a task that
 * counts its bytes (gbps set), else "   1.234 GFLOPS". */
void cli_fmt_rate(char *buf, size_t len, int width, double rate, int gbps);
/* Stored timing options (canonical JSON) in words: "number=1 repeat=3",
 * with the options that change what is measured after them when set
 * ("min_repeat_ms=100", "flush_cache"). */
void cli_fmt_timing(char *buf, size_t len, const char *timing_json);
/* A stored config (canonical JSON) as "MR=8 NV=1", knobs in t's order
 * (t NULL: the stored, sorted order). */
void cli_fmt_config(char *buf, size_t len, const char *config_json, const task_spec *t);

#endif
