/* A small seeded generator (splitmix64) so that a runner, a test and a
 * reference all see the same inputs for the same seed. */
#ifndef KTUNE_RNG_H
#define KTUNE_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint64_t s;
} rng;

void rng_seed(rng *r, uint64_t seed);
uint64_t rng_next(rng *r);
/* Uniform in [0, n); n > 0. */
uint64_t rng_below(rng *r, uint64_t n);
/* Uniform in [-1, 1). */
double rng_unit(rng *r);

/* Fills buffer number `arg` of a job: floats and doubles uniform in
 * [-1, 1), integers in [-8, 8). Each buffer has its own stream. */
int rng_fill_buffer(const char *type, void *buf, uint64_t count, uint64_t seed, unsigned arg);

/* Bytes per element of a buffer type, or 0 when the type is unknown. */
size_t rng_type_size(const char *type);

#endif
