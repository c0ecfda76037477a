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
  uint32_t number;
  uint32_t repeat;
} hist_trial;

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
/* Marks sessions left queued or running by an earlier tracker as failed;
 * *n is how many. */
int hist_fail_unfinished(hist *h, int64_t *n);
int hist_trial_add(hist *h, const hist_trial *t, int64_t *id);
int hist_trial_count(hist *h, int64_t session, int64_t *n);

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
