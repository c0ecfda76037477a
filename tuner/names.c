/* The strategies' names alone: what the CLI checks and lists, without
 * linking the strategies themselves (the model's XGBoost and the C++
 * runtime cost every ktune command milliseconds of start-up). */
#include "tuner/tuner.h"

static const char *const names[] = {TUNER_STRATEGY_NAMES};

const char *tuner_strategy_name(size_t i) {
  return i < sizeof(names) / sizeof(names[0]) ? names[i] : NULL;
}
