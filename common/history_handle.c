/* The history handle: one SQLite connection, its kept statements and
 * its last error. Everything else of the history (history.c,
 * history_trials.c, tracker/store.c) works through these, and this file
 * calls none of them. */
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/history_int.h"
#include "common/identity.h"

/* Statements kept per handle: the history's own and the tracker's. */
#define HIST_KEPT 16
#define HIST_CANON 8

struct hist {
  sqlite3 *db;
  struct {
    const char *sql;
    sqlite3_stmt *st;
  } kept[HIST_KEPT];
  char *sql[HIST_SQL_SLOTS]; /* generated text kept for the handle's life */
  /* The last texts hist_canonical made canonical, and what it made: a
   * trial's size, timing and device repeat from one trial to the next. */
  struct {
    char *in, *out;
    uint64_t used; /* the least recently used goes first */
  } canon[HIST_CANON];
  uint64_t canon_clock;
  char err[512]; /* our own message for the last failure; empty: ask SQLite */
};

hist *hist_handle_new(sqlite3 *db) {
  hist *h = calloc(1, sizeof(*h));
  if (h) h->db = db;
  return h;
}

sqlite3 *hist_db(hist *h) { return h->db; }

void hist_clear_err(hist *h) { h->err[0] = '\0'; }

int hist_fail(hist *h, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(h->err, sizeof(h->err), fmt, ap);
  va_end(ap);
  return -1;
}

int hist_fail_db(hist *h, int rc) {
  snprintf(h->err, sizeof(h->err), "%s", sqlite3_errmsg(h->db));
  rc &= 0xff;
  return rc > 0 ? -rc : -1;
}

int64_t hist_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int hist_stmt(hist *h, const char *sql, sqlite3_stmt **out) {
  int i = 0;
  while (i < HIST_KEPT && h->kept[i].sql && h->kept[i].sql != sql) i++;
  if (i == HIST_KEPT) return hist_fail(h, "more than %d kept statements", HIST_KEPT);
  if (!h->kept[i].sql) {
    int rc = sqlite3_prepare_v3(h->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &h->kept[i].st, NULL);
    if (rc != SQLITE_OK) return hist_fail_db(h, rc);
    h->kept[i].sql = sql;
  }
  *out = h->kept[i].st;
  return 0;
}


void hist_stmt_done(sqlite3_stmt *s) {
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
}

int hist_step_done(hist *h, sqlite3_stmt *s) {
  int rc = sqlite3_step(s);
  int ret = rc == SQLITE_DONE ? 0 : hist_fail_db(h, rc);
  hist_stmt_done(s);
  return ret;
}

/* Shortest %.*g that reads back as the same double. Starting at 15 loses
 * nothing: %g drops trailing zeros, so 0.001 still prints as 0.001. */
void hist_fmt_real(char *out, size_t n, double v) {
  int p = 15;
  for (; p < 17; p++) {
    snprintf(out, n, "%.*g", p, v);
    if (strtod(out, NULL) == v) return;
  }
  snprintf(out, n, "%.*g", p, v);
}

char *hist_canonical(hist *h, const char *what, const char *text) {
  unsigned i = 0;
  for (unsigned k = 0; k < HIST_CANON; k++) {
    if (text && h->canon[k].in && !strcmp(h->canon[k].in, text)) {
      h->canon[k].used = ++h->canon_clock;
      return strdup(h->canon[k].out);
    }
    if (h->canon[k].used < h->canon[i].used) i = k;
  }
  char why[200], *out;
  if (ident_canonical_object(text, &out, why, sizeof(why)) < 0) {
    hist_fail(h, "%s %s", what, why);
    return NULL;
  }
  h->canon[i].used = ++h->canon_clock;
  free(h->canon[i].in);
  free(h->canon[i].out);
  h->canon[i].in = strdup(text);
  h->canon[i].out = strdup(out);
  if (!h->canon[i].in || !h->canon[i].out) {
    free(h->canon[i].in);
    free(h->canon[i].out);
    h->canon[i].in = h->canon[i].out = NULL;
  }
  return out;
}

char **hist_sql_slot(hist *h, int which) {
  return which >= 0 && which < HIST_SQL_SLOTS ? &h->sql[which] : NULL;
}

void hist_close(hist *h) {
  if (!h) return;
  for (int i = 0; i < HIST_KEPT; i++) sqlite3_finalize(h->kept[i].st);
  for (int i = 0; i < HIST_SQL_SLOTS; i++) sqlite3_free(h->sql[i]);
  for (int i = 0; i < HIST_CANON; i++) {
    free(h->canon[i].in);
    free(h->canon[i].out);
  }
  /* An open transaction is rolled back here: uncommitted means not recorded. */
  sqlite3_close_v2(h->db);
  free(h);
}

const char *hist_errmsg(hist *h) {
  if (!h) return "no history handle";
  return h->err[0] ? h->err : sqlite3_errmsg(h->db);
}

char *hist_col_strdup(sqlite3_stmt *st, int i) {
  const unsigned char *t = sqlite3_column_text(st, i);
  return t ? strdup((const char *)t) : NULL;
}

int hist_query(hist *h, const char *sql, sqlite3_stmt **st) {
  h->err[0] = '\0';
  int rc = sqlite3_prepare_v2(h->db, sql, -1, st, NULL);
  return rc == SQLITE_OK ? 0 : hist_fail_db(h, rc);
}

int hist_query_end(hist *h, sqlite3_stmt *st, int step, int cb_rc) {
  sqlite3_finalize(st);
  if (cb_rc) return cb_rc;
  return step == SQLITE_DONE ? 0 : hist_fail_db(h, step);
}


int hist_read_begin(hist *h) {
  hist_clear_err(h);
  int rc = sqlite3_exec(hist_db(h), "BEGIN", NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : hist_fail_db(h, rc);
}

int hist_read_end(hist *h) {
  hist_clear_err(h);
  int rc = sqlite3_exec(hist_db(h), "COMMIT", NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : hist_fail_db(h, rc);
}
