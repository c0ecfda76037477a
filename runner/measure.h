/* What happens inside the runner's measuring child: load the artifact,
 * allocate and fill the buffers, warm up, time, check against the
 * reference. Runs in a child process so that a kernel cannot take the
 * runner agent down. */
#ifndef KTUNE_MEASURE_H
#define KTUNE_MEASURE_H

#include "proto/ktune.pb-c.h"

/* Measures one job. Fills res (status, error, costs_s, number, clock);
 * strings and arrays in res are malloc'd: free with measure_result_clear.
 * dump_dir, if not NULL, receives DIR/job-ID.out with the raw bytes of the
 * output buffers, in argument order. Returns 0 when res is filled (even for
 * a failed trial), negative on an internal error. */
int measure_job(const Ktune__RunJob *job, const char *dump_dir, Ktune__RunResult *res);
void measure_result_clear(Ktune__RunResult *res);

/* The child's main: reads one framed Envelope{run_job} from in_fd, measures,
 * writes one framed Envelope{run_result} to out_fd. Exit status for the
 * child process. */
int measure_child_main(int in_fd, int out_fd, const char *dump_dir);

#endif
