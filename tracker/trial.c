/* A trial's row, recorded in one place: its statistics (computed here
 * and nowhere else), its identity digest, and the insert into this turn's
 * transaction. Whoever produced the outcome (a runner, a builder, the
 * history answering for a config) fills in what it knows; the session
 * fills in the rest. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/identity.h"
#include "common/log.h"
#include "tracker/tracker.h"

#define WHO "tracker"

double trial_gflops(int64_t flops, double mean_s) {
  return mean_s > 0 ? (double)flops / mean_s / 1e9 : 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Mean, median and sample standard deviation of the per-call costs. */
static void stats(const double *c, size_t n, double *mean, double *median, double *std) {
  double sum = 0, var = 0;
  *mean = *median = *std = 0;
  if (!n) return;
  for (size_t i = 0; i < n; i++) sum += c[i];
  *mean = sum / (double)n;
  for (size_t i = 0; i < n; i++) var += (c[i] - *mean) * (c[i] - *mean);
  *std = n > 1 ? sqrt(var / (double)(n - 1)) : 0;
  double *sorted = malloc(n * sizeof(double));
  if (!sorted) return;
  memcpy(sorted, c, n * sizeof(double));
  qsort(sorted, n, sizeof(double), cmp_double);
  *median = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  free(sorted);
}

void trial_record(tracker *t, session *s, const char *config_json, hist_trial *tr) {
  stats(tr->costs, tr->ncosts, &tr->mean_s, &tr->median_s, &tr->std_s);
  int ok = strcmp(tr->status, "ok") == 0;
  tr->session = (int64_t)s->id;
  tr->task = s->task.name;
  tr->size_json = s->size_json;
  tr->config_json = config_json;
  tr->config_canonical = 1; /* every config here is space_config_json's */
  /* The session's size and timing are written canonical (space_consts_json,
   * timing_json), and a device is made so once an agent (registry.c) or
   * comes from the history or a replay, canonical there. */
  tr->objects_canonical = 1;
  tr->key = s->key;
  tr->compiler = s->compiler;
  tr->gflops = ok ? trial_gflops(s->flops, tr->mean_s) : 0;
  tr->flops = s->flops;
  /* The same rate over the bytes moved, for a task that counts them. */
  tr->bytes = task_bytes(&s->task);
  tr->gbps = ok ? trial_gflops(tr->bytes, tr->mean_s) : 0;
  tr->repeat = s->timing.repeat;
  tr->calls = (uint64_t)tr->number * tr->ncosts;
  tr->timing_json = s->timing_json;
  tr->kernel = s->kernel[0] ? s->kernel : NULL;
  tr->checked = s->check && s->task.reference;
  core_db_write(t);
  tr->id = 0;
  if (store_trial_add(t->db, tr, &tr->id) < 0)
    log_error(WHO, "history: cannot record a trial of session %llu: %s",
              (unsigned long long)s->id, hist_errmsg(t->db));
}

int trial_digest(const session *s, const char *config_json, char out[65]) {
  if (!s->kernel[0]) return -1;
  /* Both JSON texts come canonical: space_config_json and timing_json
   * write them (test_identity holds them to it). */
  return ident_trial_canonical(s->kernel, config_json, s->compiler, s->key, s->timing_json,
                               s->check && s->task.reference, out);
}
