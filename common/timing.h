/* How a run is timed (proto Timing): the one table of its options, their
 * defaults and limits, that the CLI parses against, the tracker fills and
 * checks a submission with, and the runner holds a job to; and the
 * canonical JSON of the options, stored with every trial and part of its
 * identity. A new timing option is a field in the proto and a row here. */
#ifndef KTUNE_COMMON_TIMING_H
#define KTUNE_COMMON_TIMING_H

#include <stddef.h>
#include <stdint.h>

#include "proto/ktune.pb-c.h"

/* min_repeat_ms grows number past what was asked, up to this: a round of
 * a kernel that takes no time must still end. */
#define TIMING_MAX_GROWN_NUMBER (1u << 30)

enum timing_opt {
  TIMING_NUMBER,
  TIMING_REPEAT,
  TIMING_MIN_REPEAT_MS,
  TIMING_COOLDOWN_MS,
  TIMING_FLUSH_CACHE,
  TIMING_TIMEOUT_MS,
  TIMING_NOPTS
};

typedef struct {
  const char *name;   /* field of Timing and key of the JSON: "min_repeat_ms" */
  const char *option; /* CLI option without the dashes: "min-repeat-ms" */
  const char *arg;    /* its argument in --help ("N", "MS"); NULL: a flag */
  const char *help;
  uint32_t def, min, max; /* a 0 on the wire means def */
  size_t offset;          /* of the field in Ktune__Timing */
  int identity;           /* in the timing JSON: it changes what is measured */
} timing_field;

extern const timing_field timing_fields[TIMING_NOPTS];

/* dst gets src's options (src NULL: all unset), without src's unknown
 * fields, which stay src's memory. */
void timing_copy(Ktune__Timing *dst, const Ktune__Timing *src);
/* Sets option `opt` of t from its command-line text (NULL for a flag);
 * -1 with the message naming the option when it is out of range. */
int timing_set(Ktune__Timing *t, enum timing_opt opt, const char *text, char *err,
               size_t errlen);
/* Unset options get their defaults; -1 with the message timing_set gives
 * when one is out of range. */
int timing_fill(Ktune__Timing *t, char *err, size_t errlen);
/* The canonical JSON of a filled t (the identity options, sorted keys,
 * compact), malloc'd; NULL when out of memory. */
char *timing_json(const Ktune__Timing *t);
/* The time a run of a filled t may take: its timeout for the kernel plus
 * the pauses and minimum round lengths it asks for. */
uint64_t timing_limit_ms(const Ktune__Timing *t);

#endif
