/* What a learning strategy sees of a config besides its index: the
 * configs next to it, and numbers for a cost model. Only strategies need
 * these, so they live with the tuner. */
#ifndef KTUNE_TUNER_FEATURES_H
#define KTUNE_TUNER_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#include "common/space.h"

/* Valid configs that differ from `values` in one knob by one step along
 * that knob's value list (for evolutionary search). Writes up to max
 * indices to out and their number to *n; -ENOENT when a value is not
 * among its knob's values. */
int features_neighbours(const space *sp, const int64_t *values, uint64_t *out, size_t max,
                        size_t *n);

/* A numeric feature vector for the cost model: per knob its value and its
 * position in the knob's list scaled to [0, 1]. out has room for
 * features_count(sp) numbers. */
size_t features_count(const space *sp);
int features_of(const space *sp, const int64_t *values, double *out);

#endif
