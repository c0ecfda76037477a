#include "tuner/seen.h"

#include <errno.h>
#include <stdlib.h>

uint64_t seen_hash(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* Where index is, or the empty slot where it would go. */
static size_t slot(const seen_set *s, uint64_t index) {
  size_t mask = s->cap - 1, i = (size_t)seen_hash(index) & mask;
  while (s->slots[i] && s->slots[i] != index + 1) i = (i + 1) & mask;
  return i;
}

int seen_has(const seen_set *s, uint64_t index) {
  return s->cap && s->slots[slot(s, index)] != 0;
}

int seen_add(seen_set *s, uint64_t index) {
  if (seen_has(s, index)) return 0;
  if (2 * (s->n + 1) > s->cap) {
    /* grow at half full: probes stay short */
    seen_set g = {calloc(s->cap ? 2 * s->cap : 64, sizeof(uint64_t)), s->n,
                  s->cap ? 2 * s->cap : 64};
    if (!g.slots) return -ENOMEM;
    for (size_t i = 0; i < s->cap; i++)
      if (s->slots[i]) g.slots[slot(&g, s->slots[i] - 1)] = s->slots[i];
    free(s->slots);
    *s = g;
  }
  s->slots[slot(s, index)] = index + 1;
  s->n++;
  return 0;
}

int seen_add_trials(seen_set *s, const tuner_trial *trials, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (seen_add(s, trials[i].index) < 0) return -ENOMEM;
  return 0;
}

void seen_free(seen_set *s) {
  free(s->slots);
  *s = (seen_set){0};
}
