/* The trials table: one row of trial_cols per column, and all that is
 * generated from it: the CREATE TABLE text, the upgrade of older files,
 * the INSERT and its bindings, the export query and the jsonl and csv
 * lines (docs/HISTORY.md describes each column and export field). A new
 * column is a new row here, plus the version that adds it. */
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/history_int.h"
#include "common/identity.h"
#include "common/text.h"

typedef struct trial_col trial_col;
/* Binds column c (parameter i) from t; 0 or negative with the message set. */
typedef int (*bind_fn)(hist *h, sqlite3_stmt *st, int i, const trial_col *c,
                       const hist_trial *t);

/* How a column is exported: its JSON value (and csv text). */
enum out {
  OUT_INT,     /* integer or null */
  OUT_REAL,    /* number with a decimal point or exponent, or null */
  OUT_TEXT,    /* string (invalid UTF-8 as U+FFFD) or null */
  OUT_OBJECT,  /* stored JSON object as an object, or null */
  OUT_REALS,   /* stored JSON array of numbers */
  OUT_BOOL,    /* true or false; csv too, so one reader parses both */
  OUT_TIME,    /* Unix ms: "timestamp" in ISO 8601 UTC first, then the integer */
};

struct trial_col {
  const char *name;    /* column */
  const char *decl;    /* type and constraints */
  int since;           /* schema version that added it */
  const char *before;  /* its value in a file older than that */
  bind_fn bind;        /* NULL: not inserted (the id is SQLite's) */
  size_t off;          /* the hist_trial member bind reads */
  const char *dflt;    /* bind_object: the text when the member is NULL */
  const char *label;   /* in messages, when not the name */
  enum out out;
  const char *field;   /* export field */
};

static int bind_positive(hist *, sqlite3_stmt *, int, const trial_col *, const hist_trial *);
static int bind_text(hist *, sqlite3_stmt *, int, const trial_col *, const hist_trial *);
static int bind_opt_text(hist *, sqlite3_stmt *, int, const trial_col *, const hist_trial *);
static int bind_digest(hist *, sqlite3_stmt *, int, const trial_col *, const hist_trial *);
static int bind_object(hist *, sqlite3_stmt *, int, const trial_col *, const hist_trial *);
static int bind_opt_object(hist *, sqlite3_stmt *, int, const trial_col *, const hist_trial *);
static int bind_costs(hist *, sqlite3_stmt *, int, const trial_col *, const hist_trial *);
static int bind_real(hist *, sqlite3_stmt *, int, const trial_col *, const hist_trial *);
static int bind_timed(hist *, sqlite3_stmt *, int, const trial_col *, const hist_trial *);
static int bind_gflops(hist *, sqlite3_stmt *, int, const trial_col *, const hist_trial *);
static int bind_gbps(hist *, sqlite3_stmt *, int, const trial_col *, const hist_trial *);
static int bind_int64(hist *, sqlite3_stmt *, int, const trial_col *, const hist_trial *);
static int bind_u32(hist *, sqlite3_stmt *, int, const trial_col *, const hist_trial *);
static int bind_u64(hist *, sqlite3_stmt *, int, const trial_col *, const hist_trial *);
static int bind_time(hist *, sqlite3_stmt *, int, const trial_col *, const hist_trial *);
static int bind_bool(hist *, sqlite3_stmt *, int, const trial_col *, const hist_trial *);
static int bind_config(hist *, sqlite3_stmt *, int, const trial_col *, const hist_trial *);
static int bind_opt_real(hist *, sqlite3_stmt *, int, const trial_col *, const hist_trial *);

/* The hist_trial member m, which must have type T (checked at compile
 * time, since bind reads it through its offset). */
#define M(m, T)                                                                        \
  .off = offsetof(hist_trial, m) +                                                      \
         0 * sizeof(struct {                                                            \
           _Static_assert(_Generic(((hist_trial *)0)->m, T: 1, default: 0), #m " is " #T); \
           char c;                                                                      \
         })

/* The on-disk order: a new file gets these in this order, and an upgraded
 * one gets the later versions' columns appended in it, so both keep the
 * same CREATE TABLE text. */
static const trial_col trial_cols[] = {
  {"id", "INTEGER PRIMARY KEY", 1, NULL, NULL, 0, .out = OUT_INT, .field = "id"},
  {"session", "INTEGER REFERENCES sessions(id)", 1, NULL, bind_positive, M(session, int64_t),
   .out = OUT_INT, .field = "session"},
  {"task", "TEXT NOT NULL", 1, NULL, bind_text, M(task, const char *), .out = OUT_TEXT,
   .field = "task"},
  {"size", "TEXT NOT NULL", 1, NULL, bind_object, M(size_json, const char *),
   .out = OUT_OBJECT, .field = "size"},
  {"config", "TEXT NOT NULL", 1, NULL, bind_config, M(config_json, const char *),
   .out = OUT_OBJECT, .field = "config"},
  {"key", "TEXT NOT NULL", 1, NULL, bind_text, M(key, const char *), .out = OUT_TEXT,
   .field = "key"},
  {"compiler", "TEXT NOT NULL", 1, NULL, bind_text, M(compiler, const char *),
   .out = OUT_TEXT, .field = "compiler"},
  {"status", "TEXT NOT NULL", 1, NULL, bind_text, M(status, const char *), .out = OUT_TEXT,
   .field = "status"},
  {"error", "TEXT", 1, NULL, bind_opt_text, M(error, const char *), .out = OUT_TEXT,
   .field = "error"},
  {"costs", "TEXT NOT NULL", 1, NULL, bind_costs, M(costs, const double *), .out = OUT_REALS,
   .field = "costs_s"},
  {"mean_s", "REAL", 1, NULL, bind_timed, M(mean_s, double), .out = OUT_REAL,
   .field = "mean_s"},
  {"gflops", "REAL", 1, NULL, bind_gflops, M(gflops, double), .out = OUT_REAL,
   .field = "gflops"},
  {"flops", "INTEGER NOT NULL", 1, NULL, bind_int64, M(flops, int64_t), .out = OUT_INT,
   .field = "flops"},
  {"runner", "TEXT", 1, NULL, bind_opt_text, M(runner, const char *), .out = OUT_TEXT,
   .field = "runner"},
  {"build_s", "REAL", 1, NULL, bind_real, M(build_s, double), .out = OUT_REAL,
   .field = "build_s"},
  {"timestamp_ms", "INTEGER NOT NULL", 1, NULL, bind_time, M(timestamp_ms, int64_t),
   .out = OUT_TIME, .field = "timestamp_ms"},
  {"number", "INTEGER NOT NULL", 1, NULL, bind_u32, M(number, uint32_t), .out = OUT_INT,
   .field = "number"},
  {"repeat", "INTEGER NOT NULL", 1, NULL, bind_u32, M(repeat, uint32_t), .out = OUT_INT,
   .field = "repeat"},
  {"compiler_id", "TEXT", 1, NULL, bind_opt_text, M(compiler_id, const char *),
   .out = OUT_TEXT, .field = "compiler_id"},
  {"device", "TEXT", 1, NULL, bind_opt_object, M(device_json, const char *),
   .out = OUT_OBJECT, .field = "device"},
  {"median_s", "REAL", 1, NULL, bind_timed, M(median_s, double), .out = OUT_REAL,
   .field = "median_s"},
  {"std_s", "REAL", 1, NULL, bind_timed, M(std_s, double), .out = OUT_REAL,
   .field = "std_s"},
  {"calls", "INTEGER", 1, NULL, bind_u64, M(calls, uint64_t), .out = OUT_INT,
   .field = "calls"},
  {"clock", "TEXT", 1, NULL, bind_opt_text, M(clock, const char *), .out = OUT_TEXT,
   .field = "clock"},
  {"timing", "TEXT NOT NULL DEFAULT '{}'", 1, NULL, bind_object, M(timing_json, const char *),
   .dflt = "{}", .out = OUT_OBJECT, .field = "timing"},
  {"reused", "INTEGER REFERENCES trials(id)", 1, NULL, bind_positive, M(reused, int64_t),
   .out = OUT_INT, .field = "reused_from"},
  {"digest", "TEXT", 2, "NULL", bind_digest, M(digest, const char *), .out = OUT_TEXT,
   .field = "digest"},
  {"kernel", "TEXT", 2, "NULL", bind_digest, M(kernel, const char *),
   .label = "kernel digest", .out = OUT_TEXT, .field = "kernel"},
  {"checked", "INTEGER NOT NULL DEFAULT 0", 2, "0", bind_bool, M(checked, int),
   .out = OUT_BOOL, .field = "checked"},
  {"builder", "TEXT", 2, "NULL", bind_opt_text, M(builder, const char *), .out = OUT_TEXT,
   .field = "builder"},
  {"bytes", "INTEGER", 3, "NULL", bind_positive, M(bytes, int64_t), .out = OUT_INT,
   .field = "bytes"},
  {"gbps", "REAL", 3, "NULL", bind_gbps, M(gbps, double), .out = OUT_REAL, .field = "gbps"},
  /* Set once, when the session's end measures its best configs again
   * (store_trial_confirm); never inserted. */
  {"confirmed_s", "REAL", 4, "NULL", NULL, 0, .out = OUT_REAL, .field = "confirmed_s"},
  {"confirm_costs", "TEXT", 4, "NULL", NULL, 0, .out = OUT_REALS, .field = "confirm_costs_s"},
  {"retried_cv", "REAL", 4, "NULL", bind_opt_real, M(retried_cv, double), .out = OUT_REAL,
   .field = "retried_cv"},
};

#define NCOLS (sizeof(trial_cols) / sizeof(trial_cols[0]))

/* ---- SQL ---- */

/* SQLite's ALTER TABLE ADD COLUMN appends ", <name> <decl>" before the
 * closing parenthesis; joining every column that way makes a new file's
 * text the same as an upgraded one's. */
char *hist_trial_sql_make(enum hist_trial_sql which) {
  sqlite3_str *s = sqlite3_str_new(NULL);
  const char *sep = "";
  switch (which) {
  case HIST_TRIALS_CREATE:
    sqlite3_str_appendall(s, "CREATE TABLE trials ( ");
    for (size_t i = 0; i < NCOLS; i++, sep = ", ")
      sqlite3_str_appendf(s, "%s%s %s", sep, trial_cols[i].name, trial_cols[i].decl);
    sqlite3_str_appendall(s, ")");
    break;
  case HIST_TRIALS_INSERT:
    sqlite3_str_appendall(s, "INSERT INTO trials(");
    for (size_t i = 0; i < NCOLS; i++)
      if (trial_cols[i].bind) {
        sqlite3_str_appendf(s, "%s%s", sep, trial_cols[i].name);
        sep = ", ";
      }
    sqlite3_str_appendall(s, ") VALUES (");
    sep = "";
    for (size_t i = 0; i < NCOLS; i++)
      if (trial_cols[i].bind) {
        sqlite3_str_appendf(s, "%s?", sep);
        sep = ",";
      }
    sqlite3_str_appendall(s, ")");
    break;
  case HIST_TRIALS_EXPORT:
  case HIST_TRIALS_EXPORT_ONE:
  case HIST_TRIALS_EXPORT_SESSION:
    sqlite3_str_appendall(s, "SELECT ");
    for (size_t i = 0; i < NCOLS; i++, sep = ", ")
      sqlite3_str_appendf(s, "%s%s", sep, trial_cols[i].name);
    sqlite3_str_appendall(s, which == HIST_TRIALS_EXPORT       ? " FROM trials ORDER BY id"
                             : which == HIST_TRIALS_EXPORT_ONE ? " FROM trials WHERE id = ?1"
                                                               : " FROM trials WHERE session = ?1"
                                                                 " AND id > ?2 ORDER BY id LIMIT ?3");
    break;
  default:
    break;
  }
  return sqlite3_str_finish(s);
}

void hist_trial_sql_added(sqlite3_str *s, int version) {
  for (size_t i = 0; i < NCOLS; i++)
    if (trial_cols[i].since == version)
      sqlite3_str_appendf(s, "ALTER TABLE trials ADD COLUMN %s %s;", trial_cols[i].name,
                          trial_cols[i].decl);
}

/* The columns are listed, not *, so a tracker upgrading the file meanwhile
 * does not duplicate them. */
void hist_trial_sql_view(sqlite3_str *s, int version) {
  sqlite3_str_appendall(s, "CREATE TEMP VIEW trials AS SELECT ");
  for (size_t i = 0; i < NCOLS; i++) {
    const trial_col *c = &trial_cols[i];
    if (c->since <= version)
      sqlite3_str_appendf(s, "%s%s", i ? ", " : "", c->name);
    else
      sqlite3_str_appendf(s, "%s%s AS %s", i ? ", " : "", c->before, c->name);
  }
  sqlite3_str_appendall(s, " FROM main.trials;");
}

/* ---- binding ---- */

#define MEMBER(t, c, T) (*(T const *)((const char *)(t) + (c)->off))

static const char *label(const trial_col *c) { return c->label ? c->label : c->name; }

static int bound(hist *h, int rc) { return rc == SQLITE_OK ? 0 : hist_fail_db(h, rc); }

/* A failure before the trial was timed has no latency: its zero would
 * read as infinitely fast. */
static int timed(const hist_trial *t) { return t->ncosts > 0 || strcmp(t->status, "ok") == 0; }

/* Ids and counts where 0 means none: NULL. */
static int bind_positive(hist *h, sqlite3_stmt *st, int i, const trial_col *c,
                         const hist_trial *t) {
  int64_t v = MEMBER(t, c, int64_t);
  return bound(h, v > 0 ? sqlite3_bind_int64(st, i, v) : sqlite3_bind_null(st, i));
}

static int bind_text(hist *h, sqlite3_stmt *st, int i, const trial_col *c,
                     const hist_trial *t) {
  const char *v = MEMBER(t, c, const char *);
  if (!v) return hist_fail(h, "trial has no %s", label(c));
  return bound(h, sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC));
}

static int bind_opt_text(hist *h, sqlite3_stmt *st, int i, const trial_col *c,
                         const hist_trial *t) {
  const char *v = MEMBER(t, c, const char *);
  if (!v || !*v) return bound(h, sqlite3_bind_null(st, i));
  return bound(h, sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC));
}

/* A malformed digest would never be asked for again: refuse it now. */
static int bind_digest(hist *h, sqlite3_stmt *st, int i, const trial_col *c,
                       const hist_trial *t) {
  const char *v = MEMBER(t, c, const char *);
  if (v && *v && !ident_is_digest(v))
    return hist_fail(h, "trial %s is not 64 lowercase hex digits: %.80s", label(c), v);
  return bind_opt_text(h, st, i, c, t);
}

static int bind_canonical(hist *h, sqlite3_stmt *st, int i, const trial_col *c,
                          const char *v) {
  char what[64];
  snprintf(what, sizeof(what), "trial %s", label(c));
  char *json = hist_canonical(h, what, v);
  /* SQLite frees it, also when binding fails. */
  return json ? bound(h, sqlite3_bind_text(st, i, json, -1, free)) : -1;
}

/* The tracker's sizes, timings and devices are canonical as made, once a
 * session or an agent: no parse per trial (its few texts cached could not
 * hold a farm's thousand devices). */
static int bind_object(hist *h, sqlite3_stmt *st, int i, const trial_col *c,
                       const hist_trial *t) {
  const char *v = MEMBER(t, c, const char *);
  if (t->objects_canonical && v) return bound(h, sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC));
  return bind_canonical(h, st, i, c, v ? v : c->dflt);
}

/* The tracker's configs are canonical as made (space_config_json): no
 * parse per trial. */
static int bind_config(hist *h, sqlite3_stmt *st, int i, const trial_col *c,
                       const hist_trial *t) {
  const char *v = MEMBER(t, c, const char *);
  if (!t->config_canonical || !v) return bind_object(h, st, i, c, t);
  return bound(h, sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC));
}

static int bind_opt_object(hist *h, sqlite3_stmt *st, int i, const trial_col *c,
                           const hist_trial *t) {
  const char *v = MEMBER(t, c, const char *);
  if (!v || !*v) return bound(h, sqlite3_bind_null(st, i));
  if (t->objects_canonical) return bound(h, sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC));
  return bind_canonical(h, st, i, c, v);
}

char *hist_reals_json(hist *h, const double *v, size_t n) {
  if (n > 0 && !v) {
    hist_fail(h, "%zu costs but no array", n);
    return NULL;
  }
  sqlite3_str *s = sqlite3_str_new(NULL);
  sqlite3_str_appendall(s, "[");
  for (size_t k = 0; k < n; k++) {
    if (!isfinite(v[k])) {
      sqlite3_free(sqlite3_str_finish(s));
      hist_fail(h, "cost %zu is not a finite number", k);
      return NULL;
    }
    char b[40];
    hist_fmt_real(b, sizeof(b), v[k]);
    sqlite3_str_appendf(s, "%s%s", k ? "," : "", b);
  }
  sqlite3_str_appendall(s, "]");
  char *text = sqlite3_str_finish(s);
  if (!text) hist_fail(h, "out of memory");
  return text;
}

static int bind_costs(hist *h, sqlite3_stmt *st, int i, const trial_col *c,
                      const hist_trial *t) {
  char *text = hist_reals_json(h, MEMBER(t, c, const double *), t->ncosts);
  return text ? bound(h, sqlite3_bind_text(st, i, text, -1, sqlite3_free)) : -1;
}

static int bind_double(hist *h, sqlite3_stmt *st, int i, double v, int present) {
  if (!present || !isfinite(v)) return bound(h, sqlite3_bind_null(st, i));
  return bound(h, sqlite3_bind_double(st, i, v));
}

static int bind_real(hist *h, sqlite3_stmt *st, int i, const trial_col *c,
                     const hist_trial *t) {
  return bind_double(h, st, i, MEMBER(t, c, double), 1);
}

/* A measure where 0 means there is none: NULL. */
static int bind_opt_real(hist *h, sqlite3_stmt *st, int i, const trial_col *c,
                         const hist_trial *t) {
  double v = MEMBER(t, c, double);
  return bind_double(h, st, i, v, v > 0);
}

static int bind_timed(hist *h, sqlite3_stmt *st, int i, const trial_col *c,
                      const hist_trial *t) {
  return bind_double(h, st, i, MEMBER(t, c, double), timed(t));
}

static int bind_gflops(hist *h, sqlite3_stmt *st, int i, const trial_col *c,
                       const hist_trial *t) {
  return bind_double(h, st, i, MEMBER(t, c, double), timed(t) && isfinite(t->mean_s));
}

/* A task that does not count its bytes has no GB/s, not one of 0. */
static int bind_gbps(hist *h, sqlite3_stmt *st, int i, const trial_col *c,
                     const hist_trial *t) {
  return t->bytes > 0 ? bind_gflops(h, st, i, c, t) : bound(h, sqlite3_bind_null(st, i));
}

static int bind_int64(hist *h, sqlite3_stmt *st, int i, const trial_col *c,
                      const hist_trial *t) {
  return bound(h, sqlite3_bind_int64(st, i, MEMBER(t, c, int64_t)));
}

static int bind_u32(hist *h, sqlite3_stmt *st, int i, const trial_col *c,
                    const hist_trial *t) {
  return bound(h, sqlite3_bind_int64(st, i, MEMBER(t, c, uint32_t)));
}

/* SQLite integers are signed: the same 64 bits. */
static int bind_u64(hist *h, sqlite3_stmt *st, int i, const trial_col *c,
                    const hist_trial *t) {
  return bound(h, sqlite3_bind_int64(st, i, (int64_t)MEMBER(t, c, uint64_t)));
}

/* No time given: recorded now, by the tracker's clock. */
static int bind_time(hist *h, sqlite3_stmt *st, int i, const trial_col *c,
                     const hist_trial *t) {
  int64_t v = MEMBER(t, c, int64_t);
  return bound(h, sqlite3_bind_int64(st, i, v > 0 ? v : hist_now_ms()));
}

static int bind_bool(hist *h, sqlite3_stmt *st, int i, const trial_col *c,
                     const hist_trial *t) {
  return bound(h, sqlite3_bind_int(st, i, MEMBER(t, c, int) != 0));
}

int hist_trial_bind(hist *h, sqlite3_stmt *st, const hist_trial *t) {
  /* timed() reads the status, wherever its column is. */
  if (!t->status) return hist_fail(h, "trial has no status");
  int param = 1;
  for (size_t i = 0; i < NCOLS; i++) {
    if (!trial_cols[i].bind) continue;
    if (trial_cols[i].bind(h, st, param++, &trial_cols[i], t) < 0) {
      hist_stmt_done(st);
      return -1;
    }
  }
  return 0;
}

/* ---- export ---- */

static void iso_utc_ms(int64_t ms, char *out, size_t n) {
  int64_t s = ms / 1000, r = ms % 1000;
  if (r < 0) {
    r += 1000;
    s--;
  }
  time_t t = (time_t)s;
  struct tm tm;
  if (!gmtime_r(&t, &tm)) {
    snprintf(out, n, "%s", "");
    return;
  }
  char day[48];
  strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, n, "%s.%03dZ", day, (int)r);
}

static const char *col_text(sqlite3_stmt *st, int i) {
  return (const char *)sqlite3_column_text(st, i);
}

/* Compiler diagnostics can carry any bytes; jansson takes only UTF-8, so
 * invalid bytes become U+FFFD. */
static json_t *json_text(const char *v) {
  json_t *j = json_string(v);
  if (j) return j;
  size_t n = strlen(v), len = 0;
  char *fixed = malloc(n * 3 + 1);
  if (!fixed) return NULL;
  for (const unsigned char *p = (const unsigned char *)v; *p;) {
    size_t k = text_utf8_len(p, 4);
    if (k) {
      memcpy(fixed + len, p, k);
      len += k;
      p += k;
    } else {
      memcpy(fixed + len, "\xef\xbf\xbd", 3);
      len += 3;
      p++;
    }
  }
  j = json_stringn(fixed, len);
  free(fixed);
  return j;
}

/* Stored JSON is parsed back, so what goes out is valid whoever wrote the
 * row; objects stay objects rather than strings. */
static json_t *col_json(hist *h, sqlite3_stmt *st, int i, int array) {
  const char *t = col_text(st, i);
  json_error_t je;
  json_t *j = t ? json_loads(t, JSON_DECODE_ANY, &je) : NULL;
  if (!j || (array ? !json_is_array(j) : !json_is_object(j))) {
    json_decref(j);
    hist_fail(h, "trial %lld: stored %s is not a JSON %s: %.100s",
              (long long)sqlite3_column_int64(st, 0), trial_cols[i].name,
              array ? "array" : "object", t ? t : "(null)");
    return NULL;
  }
  return j;
}

/* Costs as reals, so that 2 reads as 2.0 like every other cost. */
static json_t *col_reals(hist *h, sqlite3_stmt *st, int i) {
  json_t *stored = col_json(h, st, i, 1);
  if (!stored) return NULL;
  json_t *out = json_array(), *v;
  size_t k, n = json_array_size(stored);
  json_array_foreach(stored, k, v)
    json_array_append_new(out, json_is_number(v) ? json_real(json_number_value(v)) : json_null());
  json_decref(stored);
  if (!out || json_array_size(out) != n) {
    json_decref(out);
    hist_fail(h, "out of memory");
    return NULL;
  }
  return out;
}

/* Column i of the row as JSON; NULL with the message set on error. */
static json_t *col_value(hist *h, sqlite3_stmt *st, int i) {
  enum out out = trial_cols[i].out;
  if (out == OUT_REALS)
    return sqlite3_column_type(st, i) == SQLITE_NULL ? json_null() : col_reals(h, st, i);
  if (out == OUT_OBJECT && sqlite3_column_type(st, i) != SQLITE_NULL)
    return col_json(h, st, i, 0);
  json_t *v;
  if (out == OUT_BOOL)
    v = json_boolean(sqlite3_column_int(st, i) != 0);
  else if (sqlite3_column_type(st, i) == SQLITE_NULL)
    v = json_null();
  else if (out == OUT_REAL)
    v = isfinite(sqlite3_column_double(st, i)) ? json_real(sqlite3_column_double(st, i))
                                               : json_null();
  else if (out == OUT_TEXT)
    v = json_text(col_text(st, i));
  else
    v = json_integer(sqlite3_column_int64(st, i));
  if (!v) hist_fail(h, "out of memory");
  return v;
}

static int put_chunk(const char *buf, size_t size, void *data) {
  sqlite3_str_append(data, buf, (int)size);
  return 0;
}

/* jansson writes reals with %.17g (0.1 as 0.10000000000000001); a line
 * keeps the shortest text that reads back as the same double, and a
 * decimal point (2.0, not 2) so each field has one JSON type. So the
 * line's members and arrays, where reals are, are joined here; every
 * other value is jansson's. Object keys are our field names: no escaping. */
static void put_json(sqlite3_str *s, json_t *v, int top) {
  if (json_is_real(v)) {
    char num[48];
    hist_fmt_real(num, sizeof(num), json_real_value(v));
    sqlite3_str_appendf(s, "%s%s", num, strpbrk(num, ".e") ? "" : ".0");
  } else if (json_is_array(v)) {
    size_t k;
    json_t *e;
    sqlite3_str_appendall(s, "[");
    json_array_foreach(v, k, e) {
      if (k) sqlite3_str_appendall(s, ",");
      put_json(s, e, 0);
    }
    sqlite3_str_appendall(s, "]");
  } else if (top) {
    const char *key;
    json_t *e;
    const char *sep = "{";
    json_object_foreach(v, key, e) {
      sqlite3_str_appendf(s, "%s\"%s\":", sep, key);
      put_json(s, e, 0);
      sep = ",";
    }
    sqlite3_str_appendall(s, "}");
  } else {
    json_dump_callback(v, put_chunk, s, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
  }
}

static int jsonl_row(hist *h, sqlite3_stmt *st, char **line) {
  json_t *row = json_object();
  for (size_t i = 0; row && i < NCOLS; i++) {
    json_t *v = col_value(h, st, (int)i);
    if (!v) {
      json_decref(row);
      return -1;
    }
    if (trial_cols[i].out == OUT_TIME) {
      char ts[64];
      iso_utc_ms(sqlite3_column_int64(st, (int)i), ts, sizeof(ts));
      json_object_set_new(row, "timestamp", json_string(ts));
    }
    json_object_set_new(row, trial_cols[i].field, v);
  }
  if (!row) return hist_fail(h, "out of memory");
  sqlite3_str *s = sqlite3_str_new(NULL);
  put_json(s, row, 1);
  json_decref(row);
  *line = sqlite3_str_finish(s);
  return *line ? 0 : hist_fail(h, "out of memory");
}

/* RFC 4180: quote a field that holds a comma, quote or line break. */
static void csv_field(sqlite3_str *s, int first, const char *v) {
  if (!first) sqlite3_str_appendall(s, ",");
  if (!v) return;
  if (!strpbrk(v, ",\"\r\n")) {
    sqlite3_str_appendall(s, v);
    return;
  }
  sqlite3_str_appendall(s, "\"");
  for (const char *p = v; *p; p++) {
    if (*p == '"') sqlite3_str_appendchar(s, 1, '"');
    sqlite3_str_appendchar(s, 1, *p);
  }
  sqlite3_str_appendall(s, "\"");
}

/* The field names need no quoting. */
static char *csv_header(void) {
  sqlite3_str *s = sqlite3_str_new(NULL);
  for (size_t i = 0; i < NCOLS; i++)
    sqlite3_str_appendf(s, "%s%s%s", i ? "," : "",
                        trial_cols[i].out == OUT_TIME ? "timestamp," : "", trial_cols[i].field);
  return sqlite3_str_finish(s);
}

/* The same fields as jsonl: numbers as text, JSON as its stored text,
 * NULL as an empty field. */
static int csv_row(hist *h, sqlite3_stmt *st, char **line) {
  sqlite3_str *s = sqlite3_str_new(NULL);
  char num[48];
  for (int i = 0; i < (int)NCOLS; i++) {
    const char *v = NULL;
    int type = sqlite3_column_type(st, i);
    if (trial_cols[i].out == OUT_BOOL) {
      v = sqlite3_column_int(st, i) ? "true" : "false";
    } else if (trial_cols[i].out == OUT_TIME) {
      iso_utc_ms(sqlite3_column_int64(st, i), num, sizeof(num));
      csv_field(s, i == 0, num);
      v = col_text(st, i);
    } else if (type == SQLITE_FLOAT) {
      hist_fmt_real(num, sizeof(num), sqlite3_column_double(st, i));
      v = num;
    } else if (type != SQLITE_NULL) {
      v = col_text(st, i);
    }
    csv_field(s, i == 0, v);
  }
  *line = sqlite3_str_finish(s);
  return *line ? 0 : hist_fail(h, "out of memory");
}

/* The statement of one of the export's queries. */
static int export_stmt(hist *h, enum hist_trial_sql which, sqlite3_stmt **st) {
  const char *sql = hist_trial_sql(h, which);
  return sql ? hist_stmt(h, sql, st) : hist_fail(h, "out of memory");
}

/* The one loop of every export: each row of st (a trial in the export's
 * columns, its id first) as a line of csv or jsonl to cb, until the end,
 * a failure of the history (returned, with h's message) or a non-zero
 * answer of cb (in *cb_rc). *rows counts the lines cb had, *last is the
 * last one's id. st is finished. */
static int export_rows(hist *h, sqlite3_stmt *st, int csv, hist_line_fn cb, void *ctx, int *cb_rc,
                       int *rows, int64_t *last) {
  int rc = 0;
  *cb_rc = 0;
  while (*cb_rc == 0) {
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE) break;
    char *line = NULL;
    if (step != SQLITE_ROW) rc = hist_fail_db(h, step);
    else rc = csv ? csv_row(h, st, &line) : jsonl_row(h, st, &line);
    if (rc < 0) break;
    *last = sqlite3_column_int64(st, 0);
    (*rows)++;
    *cb_rc = cb(ctx, line);
    sqlite3_free(line);
  }
  hist_stmt_done(st);
  return rc;
}

int hist_export(hist *h, const char *format, hist_line_fn cb, void *ctx, char *err,
                size_t errlen) {
  hist_clear_err(h);
  int csv = format && strcmp(format, "csv") == 0;
  if (!csv && !(format && strcmp(format, "jsonl") == 0)) {
    hist_fail(h, "unknown export format '%s': use jsonl or csv", format ? format : "");
    snprintf(err, errlen, "%s", hist_errmsg(h));
    return -1;
  }
  sqlite3_stmt *st;
  int rc = export_stmt(h, HIST_TRIALS_EXPORT, &st);
  if (rc < 0) {
    snprintf(err, errlen, "export: %s", hist_errmsg(h));
    return rc;
  }
  /* The cursor is kept; a callback that exports again would reset it. */
  if (sqlite3_stmt_busy(st)) {
    hist_fail(h, "an export is already running on this history handle");
    snprintf(err, errlen, "%s", hist_errmsg(h));
    return -1;
  }
  int rc_cb = 0;
  if (csv) {
    char *header = csv_header();
    rc_cb = header ? cb(ctx, header) : hist_fail(h, "out of memory");
    sqlite3_free(header);
  }
  if (rc_cb != 0) {
    hist_stmt_done(st);
    return rc_cb;
  }
  int rows = 0;
  int64_t last;
  rc = export_rows(h, st, csv, cb, ctx, &rc_cb, &rows, &last);
  if (rc < 0) {
    snprintf(err, errlen, "export: %s", hist_errmsg(h));
    return rc;
  }
  return rc_cb;
}

/* hist_export_trial's callback: the line kept. */
static int keep_line(void *ctx, const char *line) {
  char **out = ctx;
  *out = strdup(line);
  return *out ? 1 : -1;
}

int hist_export_trial(hist *h, int64_t id, char **line) {
  hist_clear_err(h);
  *line = NULL;
  sqlite3_stmt *st;
  int rc = export_stmt(h, HIST_TRIALS_EXPORT_ONE, &st);
  if (rc < 0) return rc;
  sqlite3_bind_int64(st, 1, id);
  int rc_cb, rows = 0;
  int64_t last;
  rc = export_rows(h, st, 0, keep_line, line, &rc_cb, &rows, &last);
  if (rc < 0) return rc;
  return rc_cb < 0 ? hist_fail(h, "out of memory") : rows > 0;
}

int hist_export_session(hist *h, int64_t session, int64_t after, uint32_t limit,
                        hist_line_fn cb, void *ctx, int64_t *last) {
  hist_clear_err(h);
  sqlite3_stmt *st;
  int rc = export_stmt(h, HIST_TRIALS_EXPORT_SESSION, &st);
  if (rc < 0) return rc;
  sqlite3_bind_int64(st, 1, session);
  sqlite3_bind_int64(st, 2, after);
  sqlite3_bind_int64(st, 3, limit);
  int rc_cb, rows = 0;
  rc = export_rows(h, st, 0, cb, ctx, &rc_cb, &rows, last);
  return rc < 0 ? rc : rc_cb < 0 ? rc_cb : rows;
}

const char *hist_trial_sql(hist *h, enum hist_trial_sql which) {
  char **slot = hist_sql_slot(h, (int)which);
  if (!slot) return NULL;
  if (!*slot) *slot = hist_trial_sql_make(which);
  return *slot;
}
