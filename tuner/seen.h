/* A set of config indices (those proposed, or proposed before a restart)
 * for the strategies, and the hash they share. */
#ifndef KTUNE_TUNER_SEEN_H
#define KTUNE_TUNER_SEEN_H

#include <stddef.h>
#include <stdint.h>

#include "tuner/tuner.h"

typedef struct {
  uint64_t *slots;  /* index + 1, open addressing; 0 is empty */
  size_t n, cap;
} seen_set;

/* A 64-bit mixer (splitmix64's finaliser): spreads nearby indices. */
uint64_t seen_hash(uint64_t z);

int seen_has(const seen_set *s, uint64_t index);
/* Adding one already there changes nothing. */
int seen_add(seen_set *s, uint64_t index);
/* Adds the index of every trial: a strategy's restore. */
int seen_add_trials(seen_set *s, const tuner_trial *trials, size_t n);
void seen_free(seen_set *s);

#endif
