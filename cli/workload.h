/* `ktune tune --workload FILE`: several tasks tuned together for the
 * end-to-end time, the budget spent where it cuts that most. */
#ifndef KTUNE_CLI_WORKLOAD_H
#define KTUNE_CLI_WORKLOAD_H

#include <stdio.h>

#include "cli/cli.h"
#include "common/history.h"

typedef struct workload workload;

/* Reads {"tasks": [{"task": NAME or SPEC, "constants": {...}, "weight": N},
 * ...]}; spec paths are relative to the file's folder. -1 after saying
 * why on stderr. */
int workload_load(const char *path, workload **out);
/* Spends o->trials in batches of o->batch on w's tasks, one session per
 * batch on d's farm, printing a line per task and the end-to-end estimate
 * after each. Returns the exit code. */
int workload_run(workload *w, const cli_session_opts *o, const cli_dial *d);
/* The --json summary: per task its best, trials and failures, and the
 * end-to-end estimate. */
int workload_json(const workload *w, FILE *out);
/* `ktune best --workload`: each task's best in db under filters (its
 * task, size and kernel filled in here) and the end-to-end estimate; with
 * emit_dir, each winner as C there (cli/emit.h). Returns the exit code. */
int workload_best(const workload *w, const char *db, const hist_best_query *filters,
                  const char *emit_dir);
size_t workload_size(const workload *w);
void workload_free(workload *w);

#endif
