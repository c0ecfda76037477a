/* The SQLite history: sessions and trials (docs/HISTORY.md). Only the
 * tracker writes it; the CLI may read it directly with --db. */
#ifndef KTUNE_HISTORY_H
#define KTUNE_HISTORY_H

#include <stddef.h>
#include <stdint.h>

typedef struct hist hist;

typedef struct {
  const char *task;
  const char *size_json;   /* canonical JSON of the constants */
  const char *key;
  const char *strategy;
  const char *compiler;
  const char *owner;
  uint32_t trials;
  uint64_t seed;
  const char *state;       /* queued, running, done, failed, cancelled */
  const void *spec;        /* serialized SubmitSession, to resume it */
  size_t spec_len;
} hist_session;

typedef struct {
  int64_t session;
  const char *task;
  const char *size_json;
  const char *config_json; /* canonical JSON of the knobs */
  const char *key;
  const char *compiler;
  const char *status;      /* ok or a trial error code */
  const char *error;       /* detail, may be NULL */
  const double *costs;     /* seconds per call, one per round */
  size_t ncosts;
  double mean_s;
  double gflops;
  int64_t flops;
  const char *runner;
  double build_s;
  int64_t timestamp_ms;    /* Unix time in milliseconds */
  uint32_t number;         /* calls per round actually used */
  uint32_t repeat;
  const char *compiler_id; /* name, version and flags of what built it */
  const char *device_json; /* runner's device identity, a JSON object */
  double median_s, std_s;
  uint64_t calls;          /* timed calls in all */
  const char *clock;
  const char *timing_json; /* requested timing options, a JSON object */
  int64_t reused;          /* answered from this earlier trial, 0 if measured */
} hist_trial;

/* What hist_find_ok found (strings malloc'd; free with hist_found_clear). */
typedef struct {
  int64_t id;
  double *costs;
  size_t ncosts;
  double mean_s, median_s, std_s, build_s;
  uint32_t number;
  uint64_t calls;
  char *runner, *compiler_id, *device_json, *clock;
} hist_found;

/* Opens (creating if needed) the history in WAL mode. sync_full selects
 * synchronous=FULL instead of NORMAL. */
int hist_open(const char *path, int sync_full, hist **out, char *err, size_t errlen);
/* Opens an existing history read-only (for the CLI). */
int hist_open_readonly(const char *path, hist **out, char *err, size_t errlen);
void hist_close(hist *h);

/* Groups writes into one transaction. */
int hist_begin(hist *h);
int hist_commit(hist *h);

int hist_session_add(hist *h, const hist_session *s, int64_t *id);
int hist_session_update(hist *h, int64_t id, const char *state);
int hist_trial_add(hist *h, const hist_trial *t, int64_t *id);
int hist_trial_count(hist *h, int64_t session, int64_t *n);

/* Jobs: candidates proposed and not yet recorded, so that a restarted
 * tracker queues them again. */
int hist_job_add(hist *h, int64_t session, uint64_t index, const char *config_json, int64_t *id);
int hist_job_delete(hist *h, int64_t id);
int hist_job_lost(hist *h, int64_t id, uint32_t lost);
typedef int (*hist_job_fn)(void *ctx, int64_t id, uint64_t index, uint32_t lost);
int hist_jobs_of(hist *h, int64_t session, hist_job_fn cb, void *ctx);

/* Sessions left queued or running, oldest first, with what resumes them. */
typedef int (*hist_session_fn)(void *ctx, int64_t id, const void *spec, size_t spec_len,
                               const char *owner, int64_t created_ms);
int hist_sessions_unfinished(hist *h, hist_session_fn cb, void *ctx);

/* A session's recorded trials: how many, how many failed, and the fastest
 * ok one (best_config NULL when none; caller frees). */
int hist_session_summary(hist *h, int64_t session, uint32_t *trials, uint32_t *failures,
                         char **best_config, double *best_mean_s);

/* The newest ok trial of exactly this config under the same conditions.
 * Returns 1 and fills out, 0 when there is none. */
int hist_find_ok(hist *h, const char *task, const char *size_json, const char *key,
                 const char *config_json, const char *compiler, const char *timing_json,
                 hist_found *out);
void hist_found_clear(hist_found *f);

/* Calls cb once per trial, oldest first, with one line of the format
 * ("jsonl" or "csv"; csv starts with a header line). */
typedef int (*hist_line_fn)(void *ctx, const char *line);
int hist_export(hist *h, const char *format, hist_line_fn cb, void *ctx, char *err, size_t errlen);

/* The fastest ok trial of a task at a size on a key (key may be NULL). Returns
 * 1 and fills the out-parameters (caller frees the strings), 0 when none. */
int hist_best(hist *h, const char *task, const char *size_json, const char *key,
              char **config_json, double *mean_s, double *gflops, char **compiler);

const char *hist_errmsg(hist *h);

#endif
