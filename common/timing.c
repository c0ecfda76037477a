#include "common/timing.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS (24u * 3600u * 1000u)
#define FIELD(f) offsetof(Ktune__Timing, f)

/* The limits are what a session may ask of a runner: a day per wait, and
 * round counts that keep a trial's costs a small array. */
const timing_field timing_fields[TIMING_NOPTS] = {
    [TIMING_NUMBER] = {"number", "number", "N", "calls per timed round", 1, 1, 1000000,
                       FIELD(number), 1},
    [TIMING_REPEAT] = {"repeat", "repeat", "N", "timed rounds", 3, 1, 10000, FIELD(repeat), 1},
    [TIMING_MIN_REPEAT_MS] = {"min_repeat_ms", "min-repeat-ms", "MS",
                              "raise --number until a round lasts at least MS", 0, 0, DAY_MS,
                              FIELD(min_repeat_ms), 1},
    [TIMING_COOLDOWN_MS] = {"cooldown_ms", "cooldown-ms", "MS", "pause between rounds", 0, 0,
                            DAY_MS, FIELD(cooldown_ms), 1},
    [TIMING_FLUSH_CACHE] = {"flush_cache", "flush-cache", NULL, "evict caches between rounds", 0,
                            0, 1, FIELD(flush_cache), 1},
    /* How long a kernel may run does not change what it measures. */
    [TIMING_TIMEOUT_MS] = {"timeout_ms", "timeout", "MS",
                           "a run longer than this is killed (RUN_TIMEOUT)", 60000, 1, DAY_MS,
                           FIELD(timeout_ms), 0},
};

/* Every option is a 32-bit field: uint32 or protobuf_c_boolean. */
static uint32_t *slot(Ktune__Timing *t, enum timing_opt opt) {
  return (uint32_t *)((char *)t + timing_fields[opt].offset);
}

static uint32_t get(const Ktune__Timing *t, enum timing_opt opt) {
  return *slot((Ktune__Timing *)t, opt);
}

void timing_copy(Ktune__Timing *dst, const Ktune__Timing *src) {
  ktune__timing__init(dst);
  for (int i = 0; src && i < TIMING_NOPTS; i++) *slot(dst, i) = get(src, i);
}

static int out_of_range(enum timing_opt opt, const char *given, char *err, size_t errlen) {
  const timing_field *f = &timing_fields[opt];
  snprintf(err, errlen, "--%s takes a whole number from %u to %u, not %s", f->option, f->min,
           f->max, given);
  return -1;
}

int timing_set(Ktune__Timing *t, enum timing_opt opt, const char *text, char *err,
               size_t errlen) {
  const timing_field *f = &timing_fields[opt];
  if (!f->arg) {
    *slot(t, opt) = 1;
    return 0;
  }
  if (!text[0] || strspn(text, "0123456789") != strlen(text)) {
    char quoted[64];
    snprintf(quoted, sizeof(quoted), "'%.60s'", text);
    return out_of_range(opt, quoted, err, errlen);
  }
  uint64_t v = 0;
  for (const char *p = text; *p && v <= f->max; p++) v = v * 10 + (uint64_t)(*p - '0');
  /* A number out of range reads as the tracker says it. */
  if (v > f->max || v < f->min) return out_of_range(opt, text, err, errlen);
  *slot(t, opt) = (uint32_t)v;
  return 0;
}

int timing_fill(Ktune__Timing *t, char *err, size_t errlen) {
  for (int i = 0; i < TIMING_NOPTS; i++) {
    const timing_field *f = &timing_fields[i];
    uint32_t *v = slot(t, i);
    if (*v == 0) *v = f->def;
    if (*v < f->min || *v > f->max) {
      char given[16];
      snprintf(given, sizeof(given), "%u", *v);
      return out_of_range(i, given, err, errlen);
    }
  }
  return 0;
}

char *timing_json(const Ktune__Timing *t) {
  json_t *o = json_object();
  for (int i = 0; o && i < TIMING_NOPTS; i++) {
    const timing_field *f = &timing_fields[i];
    if (!f->identity) continue;
    json_t *v = f->arg ? json_integer(get(t, i)) : json_boolean(get(t, i));
    if (json_object_set_new(o, f->name, v) < 0) {
      json_decref(o);
      return NULL;
    }
  }
  char *txt = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(o);
  return txt;
}

uint64_t timing_limit_ms(const Ktune__Timing *t) {
  uint64_t ms = t->timeout_ms ? t->timeout_ms : timing_fields[TIMING_TIMEOUT_MS].def;
  uint64_t rounds = t->repeat ? t->repeat : timing_fields[TIMING_REPEAT].def;
  return ms + rounds * ((uint64_t)t->cooldown_ms + t->min_repeat_ms);
}
