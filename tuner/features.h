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

/* A numeric feature vector for the cost model, features_count(sp)
 * numbers: per knob, in spec order, its value, log2 of its value (0 when
 * the value is <= 0) and its position in the knob's list scaled to
 * [0, 1]; then per expression of the spec's `features` its value for the
 * config (0 when it cannot be evaluated). */
size_t features_count(const space *sp);

/* The spec's feature expressions compiled once, for many configs, with
 * the constants' current values. The space's task must outlive it; it is
 * read-only after features_new, so threads may share one. features_new
 * fails (-EINVAL, with "features[i] 'EXPR': at POS: reason" in err) only
 * for a spec task_check would refuse, or -ENOMEM. */
typedef struct features features;
int features_new(const space *sp, features **out, char *err, size_t errlen);
/* Writes the vector of one config (knob values in spec order) to out;
 * -ENOENT when a value is not among its knob's values. */
int features_at(const features *f, const int64_t *values, double *out);
void features_free(features *f);

/* The same for one config, compiling the expressions on each call: for
 * a few configs. Scoring many, use features_new and features_at. */
int features_of(const space *sp, const int64_t *values, double *out);

#endif
