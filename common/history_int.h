/* Inside the history: what its reader (common/history.c), its trials table
 * (common/history_trials.c) and its writer (tracker/store.c) share. Not
 * for anyone else: the CLI and the tests of readers use common/history.h.
 *
 * A failing function sets the handle's message (hist_errmsg) and returns a
 * negative code: -(SQLite primary result code) when SQLite failed, -1 for
 * our own errors. */
#ifndef KTUNE_HISTORY_INT_H
#define KTUNE_HISTORY_INT_H

#include <sqlite3.h>
#include <stdint.h>

#include "common/history.h"

/* ---- the handle (common/history_handle.c) ---- */

/* A handle on an open connection; NULL when out of memory. */
hist *hist_handle_new(sqlite3 *db);
sqlite3 *hist_db(hist *h);
/* Slots for generated SQL text a handle keeps (sqlite3_malloc'd, freed by
 * hist_close); NULL past the end. */
#define HIST_SQL_SLOTS 8
char **hist_sql_slot(hist *h, int which);

/* A new operation begins: forget the last one's message. */
void hist_clear_err(hist *h);
int hist_fail(hist *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* SQLite's message for rc, snapshotted now (a later statement replaces it). */
int hist_fail_db(hist *h, int rc);

/* A statement prepared on first use and kept until hist_close, found by
 * the address of its text: sql must be static, or from hist_trial_sql. */
int hist_stmt(hist *h, const char *sql, sqlite3_stmt **out);
/* Resets a kept statement and its bindings (bound text may then be freed). */
void hist_stmt_done(sqlite3_stmt *s);
/* Runs a kept statement that returns no rows, then resets it. */
int hist_step_done(hist *h, sqlite3_stmt *s);
/* A one-off query, and its end: the callback's non-zero return wins, else
 * step must have reached SQLITE_DONE. */
int hist_query(hist *h, const char *sql, sqlite3_stmt **st);
int hist_query_end(hist *h, sqlite3_stmt *st, int step, int cb_rc);

/* Keys sorted, compact: the text space_config_json writes and the digests
 * hash, so equal objects compare equal as strings whoever wrote them. NULL
 * (message "<what> ...") when text is not a JSON object. Caller frees. */
char *hist_canonical(hist *h, const char *what, const char *text);
char *hist_col_strdup(sqlite3_stmt *st, int i);
int64_t hist_now_ms(void);
/* Shortest %g text that reads back as the same double. */
void hist_fmt_real(char *out, size_t n, double v);
/* A JSON array of finite reals in that form (sqlite3_malloc'd), or NULL
 * with the message set. */
char *hist_reals_json(hist *h, const double *v, size_t n);

/* ---- the trials table (common/history_trials.c) ---- */

/* SQL generated from the column table. */
enum hist_trial_sql {
  HIST_TRIALS_CREATE,  /* CREATE TABLE of the current version */
  HIST_TRIALS_INSERT,  /* every column but id, in order; hist_trial_bind fills it */
  HIST_TRIALS_EXPORT,  /* every column, in order, oldest trial first */
  HIST_TRIALS_EXPORT_ONE, /* the same columns of the trial whose id is ?1 */
  HIST_TRIALS_EXPORT_SESSION, /* ... of session ?1's trials after id ?2, at most ?3 */
  HIST_TRIALS_SQL_COUNT
};
/* The text, generated once per handle (so hist_stmt can keep it); NULL
 * when out of memory. */
const char *hist_trial_sql(hist *h, enum hist_trial_sql which);
/* sqlite3_malloc'd text for a handle to keep (hist_trial_sql) or for
 * one-off use; NULL when out of memory. */
char *hist_trial_sql_make(enum hist_trial_sql which);
/* Appends "ALTER TABLE trials ADD COLUMN ...;" for each column that
 * version `version` added. */
void hist_trial_sql_added(sqlite3_str *s, int version);
/* Appends a temporary view that shows the trials table of a file of an
 * older version with the current columns, those it lacks at their old
 * value. */
void hist_trial_sql_view(sqlite3_str *s, int version);
/* Binds every column of HIST_TRIALS_INSERT from t, checking it; on error
 * the bindings are cleared. */
int hist_trial_bind(hist *h, sqlite3_stmt *st, const hist_trial *t);

#endif
