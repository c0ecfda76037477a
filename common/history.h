/* The SQLite history: sessions and trials (docs/HISTORY.md), read side.
 * Only the tracker writes it (tracker/store.c); the CLI reads it directly
 * with --db. */
#ifndef KTUNE_HISTORY_H
#define KTUNE_HISTORY_H

#include <stddef.h>
#include <stdint.h>

typedef struct hist hist;

/* One trial as the tracker records it (store_trial_add); the trials
 * table (common/history_trials.c) says which member fills which column. */
typedef struct {
  int64_t session;
  const char *task;
  const char *size_json;
  const char *config_json; /* JSON of the knobs (made canonical unless config_canonical) */
  int config_canonical;    /* config_json is canonical already (space_config_json's) */
  int objects_canonical;   /* so are size_json, timing_json and device_json */
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
  const char *digest;      /* trial identity (ident_trial); NULL: answers for nothing */
  const char *kernel;      /* kernel identity (ident_kernel); may be NULL */
  const char *builder;     /* name of the builder that built it; may be NULL */
  int checked;             /* 1 when outputs were compared with the reference */
  int64_t bytes;           /* bytes one call moves; 0 when the task gives none */
  double gbps;             /* bytes / mean_s / 1e9; stored only with bytes */
  double retried_cv;       /* the spread (std / mean) of a first measurement too wide to
                            * keep, measured again; 0 when the first one stood */
  int64_t id;              /* its row, once recorded (trial_record sets it); not inserted */
} hist_trial;

/* A session as recorded, with counts from its trials (strings malloc'd;
 * free with hist_session_row_clear). */
typedef struct {
  int64_t id;
  char *task, *size_json, *key, *strategy, *compiler, *owner, *state;
  char *message;           /* why it ended or what it waits for; may be NULL */
  uint32_t trials;         /* budget requested */
  uint32_t done;           /* trials recorded */
  uint32_t failures;       /* of those, not ok */
  uint32_t reused;         /* of those, answered from the history */
  char *best_config;       /* fastest ok trial of the session; NULL when none */
  double best_mean_s, best_gflops; /* 0 when none */
  double best_gbps;        /* 0 when none, or its task gives no bytes */
  int64_t created_ms, updated_ms;
} hist_session_row;

/* What hist_best, hist_count_ok and hist_best_values look for: ok, timed
 * trials of a task, optionally narrowed. */
typedef struct {
  const char *task;        /* required */
  const char *kernel;      /* kernel digest; NULL = any kernel of that task name */
  const char *size_json;   /* any key order; NULL = any size (to find the sizes there are) */
  const char *key, *compiler, *timing_json; /* NULL = any */
  int checked_only;        /* 1: only trials whose outputs were checked */
} hist_best_query;

/* The winner hist_best found (strings malloc'd, NULL when the column is;
 * free with hist_best_row_clear). */
typedef struct {
  int64_t id, session;     /* session 0 when none */
  char *config_json, *compiler, *compiler_id, *key, *runner, *builder, *timing_json, *kernel;
  double mean_s, gflops;
  double gbps;             /* NAN when not stored (its task gave no bytes) */
  int checked;
} hist_best_row;

/* Opens (creating if needed) the history in WAL mode. sync_full selects
 * synchronous=FULL instead of NORMAL. A version 1 file is upgraded to
 * version 2 in place, in one transaction. */
int hist_open(const char *path, int sync_full, hist **out, char *err, size_t errlen);
/* Opens an existing history read-only (for the CLI). A version 1 file is
 * read as it is, its version 2 columns reading as NULL (checked as 0);
 * hist_open upgrades it. */
int hist_open_readonly(const char *path, hist **out, char *err, size_t errlen);
void hist_close(hist *h);

/* One snapshot for several reads: between these, h sees the history as it
 * was at the first read after hist_read_begin, whatever a tracker writes
 * meanwhile (SQLite's WAL keeps that version for it). */
int hist_read_begin(hist *h);
int hist_read_end(hist *h);

/* A session's recorded trials: how many, how many failed, and the fastest
 * ok one (best_config NULL when none; caller frees). */
int hist_session_summary(hist *h, int64_t session, uint32_t *trials, uint32_t *failures,
                         char **best_config, double *best_mean_s);
/* Trials recorded for a session. */
int hist_trial_count(hist *h, int64_t session, int64_t *n);
/* Session's failed trials: cb once per status with its count, by status.
 * A non-zero return of cb stops and is returned; negative on error. */
typedef int (*hist_count_fn)(void *ctx, const char *status, int64_t n);
int hist_session_failures(hist *h, int64_t session, hist_count_fn cb, void *ctx);

/* One session with its counts. Returns 1 and fills out, 0 when there is no
 * such session (out zeroed), negative on error. */
int hist_session_get(hist *h, int64_t id, hist_session_row *out);
void hist_session_row_clear(hist_session_row *r);
/* Ended sessions (state neither queued nor running), most recently ended
 * first, at most limit. A non-zero return of cb stops and is returned. */
typedef int (*hist_session_row_fn)(void *ctx, const hist_session_row *r);
int hist_sessions_recent(hist *h, uint32_t limit, hist_session_row_fn cb, void *ctx);

/* Calls cb once per trial, oldest first, with one line of the format
 * ("jsonl" or "csv"; csv starts with a header line). */
typedef int (*hist_line_fn)(void *ctx, const char *line);
int hist_export(hist *h, const char *format, hist_line_fn cb, void *ctx, char *err, size_t errlen);
/* Trial id as hist_export writes it in jsonl, in *line (malloc'd): 1 when
 * found, 0 when there is no such trial, negative on error. */
int hist_export_trial(hist *h, int64_t id, char **line);
/* Session's trials with an id above after, oldest first, at most limit, as
 * hist_export's jsonl lines to cb; *last is the last one's id. Returns how
 * many (0: none), or negative on error (a callback's negative return too). */
int hist_export_session(hist *h, int64_t session, int64_t after, uint32_t limit,
                        hist_line_fn cb, void *ctx, int64_t *last);

/* The fastest trial q allows (ties: the oldest). Returns 1 and fills out,
 * 0 when none (out zeroed), negative on error. */
int hist_best(hist *h, const hist_best_query *q, hist_best_row *out);
void hist_best_row_clear(hist_best_row *r);
/* How many trials q allows: with q->kernel NULL, how many trials of that
 * task name at that size exist whatever kernel they were built from. */
int hist_count_ok(hist *h, const hist_best_query *q, int64_t *n);
/* The values column col ("size", "kernel", "compiler", "key" or "timing")
 * takes among the trials q allows, NULL ones left out, each with how many
 * trials have it, the most recently recorded first. A non-zero return of
 * cb stops and is returned. */
typedef int (*hist_value_fn)(void *ctx, const char *value, int64_t trials);
int hist_best_values(hist *h, const hist_best_query *q, const char *col, hist_value_fn cb,
                     void *ctx);

/* The submission session id was recorded with (a packed SubmitSession),
 * in *blob (malloc'd): 1 when there is one, 0 when the session has none
 * or does not exist, negative on error. */
int hist_session_spec(hist *h, int64_t id, void **blob, size_t *len);

/* ---- the whole history at a glance (ktune report) ---- */

/* A task at one size (a task name and its constants), over every trial
 * of it, whatever kernel version, compiler or key measured it. Strings
 * are the callback's to read, not to keep. */
typedef struct {
  const char *task, *size_json;
  int64_t trials, failures;  /* failures: status not ok */
  int64_t flops;             /* per call (the largest recorded) */
  int64_t bytes;             /* per call; 0 when the task gives none */
  int64_t first_ms, last_ms; /* when its first and last trials were recorded */
  /* Its fastest ok trial (ties: the oldest); best_id 0 when it has none. */
  int64_t best_id, best_session; /* session 0 when none */
  double best_mean_s, best_gflops;
  double best_gbps;          /* NAN when not stored */
  int best_checked;
  const char *best_compiler, *best_key;
} hist_task_row;
typedef int (*hist_task_fn)(void *ctx, const hist_task_row *r);
/* Every task and size with trials, the one measured first first. A
 * non-zero return of cb stops and is returned. */
int hist_tasks(hist *h, hist_task_fn cb, void *ctx);

/* How many trials of a task and size ended with a failing status, and the
 * error of the first of them that has one (NULL when none has). */
typedef int (*hist_failure_fn)(void *ctx, const char *task, const char *size_json,
                               const char *status, int64_t trials, const char *first_error);
/* Every (task, size, status) but ok, by task and size, then the most
 * frequent status first. */
int hist_failures(hist *h, hist_failure_fn cb, void *ctx);

/* One trial as a point of a chart; session 0 when none. */
typedef struct {
  const char *task, *size_json, *status;
  int64_t session;
  double mean_s, gflops, gbps; /* NAN when not stored */
} hist_point;
typedef int (*hist_point_fn)(void *ctx, const hist_point *p);
/* Every trial, in one pass, by task, size and session (as text and
 * number: ordered as strcmp and < order them), each session's in the
 * order they were recorded. */
int hist_points(hist *h, hist_point_fn cb, void *ctx);

/* The combinations of values columns cols[0..ncols) take over all trials
 * (NULL ones included, as NULL), each with how many trials have it, the
 * first recorded first. Columns: runner, key, device, compiler,
 * compiler_id, timing, builder, clock; at most 4. */
/* The tasks of each workload run (sessions that `ktune tune --workload`
 * submitted, sessions.workload), oldest run first: per run, file and task
 * and size, the weight and the best latency over the run's sessions (0
 * when none; confirmed first, as hist_best picks), for the end-to-end
 * estimate. */
typedef struct {
  const char *run, *file, *task, *size;
  double weight, best_mean_s;
  int64_t trials;
} hist_workload_row;
typedef int (*hist_workload_fn)(void *ctx, const hist_workload_row *r);
int hist_workload_tasks(hist *h, hist_workload_fn cb, void *ctx);

typedef int (*hist_values_fn)(void *ctx, const char *const *values, int64_t trials);
int hist_trial_values(hist *h, const char *const *cols, size_t ncols, hist_values_fn cb,
                      void *ctx);

const char *hist_errmsg(hist *h);

#endif
