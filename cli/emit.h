/* `ktune best --emit`: the winning config as a self-contained C file and
 * a header for its entry. */
#ifndef KTUNE_CLI_EMIT_H
#define KTUNE_CLI_EMIT_H

#include <stdint.h>

#include "common/task.h"

/* What was measured, for the files' opening comment. */
typedef struct {
  const task_spec *task;   /* with its constants as measured (after -D) */
  const char *config_json; /* the winner's knobs */
  const char *latency, *rate; /* as `ktune best` prints them */
  const char *key, *compiler, *db;
  int64_t trial, session;
  /* Appended to the entry's and the reference's names ("" or NULL: none),
   * so that two sizes of one task link into one program. */
  const char *suffix;
} emit_winner;

/* Writes c_path and/or h_path (either may be NULL). -1 with err saying
 * why (a file that cannot be written, a config the spec does not fit). */
int emit_files(const emit_winner *w, const char *c_path, const char *h_path, char *err,
               size_t errlen);

#endif
