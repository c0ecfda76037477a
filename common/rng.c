#include "common/rng.h"

#include <string.h>

/* splitmix64 (Steele, Lea, Flood 2014): tiny state, good enough for test
 * inputs, and identical on every platform so a runner, a test and a
 * reference see the same bytes for the same seed. */
#define RNG_GAMMA 0x9e3779b97f4a7c15ULL

static uint64_t rng_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void rng_seed(rng *r, uint64_t seed) { r->s = seed; }

uint64_t rng_next(rng *r) {
  r->s += RNG_GAMMA;
  return rng_mix(r->s);
}

uint64_t rng_below(rng *r, uint64_t n) {
  if (n == 0) return 0;
  /* Rejecting the top partial block keeps every value equally likely. */
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do {
    x = rng_next(r);
  } while (x >= limit);
  return x % n;
}

double rng_unit(rng *r) {
  /* 53 random bits map exactly onto doubles in [0, 2), so the result never
   * rounds up to 1. */
  return (double)(rng_next(r) >> 11) * 0x1p-52 - 1.0;
}

size_t rng_type_size(const char *type) {
  if (!type) return 0;
  if (strcmp(type, "float") == 0 || strcmp(type, "int32") == 0) return 4;
  if (strcmp(type, "double") == 0 || strcmp(type, "int64") == 0) return 8;
  return 0;
}

int rng_fill_buffer(const char *type, void *buf, uint64_t count, uint64_t seed, unsigned arg) {
  if (rng_type_size(type) == 0) return -1;
  if (count > 0 && !buf) return -2;
  /* Mixing the argument index (not adding it to the seed) keeps the streams
   * of (seed, arg+1) and (seed+1, arg) apart. */
  rng r;
  rng_seed(&r, rng_mix(seed) ^ rng_mix(RNG_GAMMA * ((uint64_t)arg + 1)));
  if (strcmp(type, "float") == 0) {
    float *p = buf;
    /* 24 bits so that every value is exact in a float and below 1. */
    for (uint64_t i = 0; i < count; i++) p[i] = (float)(rng_next(&r) >> 40) * 0x1p-23f - 1.0f;
  } else if (strcmp(type, "double") == 0) {
    double *p = buf;
    for (uint64_t i = 0; i < count; i++) p[i] = rng_unit(&r);
  } else if (strcmp(type, "int32") == 0) {
    int32_t *p = buf;
    for (uint64_t i = 0; i < count; i++) p[i] = (int32_t)(rng_next(&r) >> 60) - 8;
  } else {
    int64_t *p = buf;
    for (uint64_t i = 0; i < count; i++) p[i] = (int64_t)(rng_next(&r) >> 60) - 8;
  }
  return 0;
}
