/* ktune report: the history as one HTML file that needs nothing else to
 * be read: no server, no network, no script. Styles are inline, charts are
 * SVG drawn here, and a Content-Security-Policy forbids loading anything,
 * so the page shows the same from a laptop's disk, a mail or a CI
 * artifact. Every string from the history (task names, errors, compiler
 * lines, device JSON come from users and agents) is escaped as text.
 *
 * The history is read in a few passes, each one SQL statement
 * (common/history.c): the tasks with their aggregates, the failures by
 * status, the trials in chart order, and the devices, compilers and
 * timing options. Only what is drawn is kept: a chart's line has a point
 * where its best improved, not one per trial. */
#include "cli/report.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/format.h"
#include "common/history.h"

/* A callback's failure that no SQLite code is. */
#define REPORT_OOM (-1000)

/* Room for one more element in arr (len used of cap): 1, or 0 when out of
 * memory (arr unchanged). */
#define RESERVE(arr, len, cap)                                          \
  __extension__({                                                       \
    int ok_ = 1;                                                        \
    if ((len) >= (cap)) {                                               \
      size_t c_ = (cap) ? (cap) * 2 : 8;                                \
      __typeof__(arr) p_ = realloc((arr), c_ * sizeof(*(arr)));         \
      if (p_) (arr) = p_, (cap) = c_;                                   \
      else ok_ = 0;                                                     \
    }                                                                   \
    ok_;                                                                \
  })

/* One session's trials of a task, as a chart line. */
typedef struct {
  int64_t session;          /* 0: trials recorded outside any session */
  int64_t n;                /* its trials */
  double best;              /* best speed so far; 0 while none */
  struct step {
    int64_t n;              /* trial number */
    double v;               /* the best speed from it on */
  } *steps;                 /* where the best improved */
  size_t nsteps, capsteps;
  int64_t *fails;           /* trial numbers of the failed trials, ascending */
  size_t nfails, capfails;
} series;

typedef struct {
  char *status, *error;     /* error NULL when none of them has one */
  int64_t n;
} failure;

/* A task at one size. */
typedef struct {
  hist_task_row r;          /* its strings point into the copies below */
  char *task, *size, *best_compiler, *best_key;
  int gbps;                 /* the task counts its bytes: speeds are GB/s */
  failure *fails;
  size_t nfails, capfails;
  series *ser;
  size_t nser, capser;
} group;

typedef struct {
  group *g;
  size_t n, cap;
  group **by_name;          /* g sorted by task, then size: hist_points' order */
  group *cur;               /* the group hist_points is in */
} report;

static void report_free(report *rp) {
  for (size_t i = 0; i < rp->n; i++) {
    group *g = &rp->g[i];
    free(g->task), free(g->size), free(g->best_compiler), free(g->best_key);
    for (size_t k = 0; k < g->nfails; k++) free(g->fails[k].status), free(g->fails[k].error);
    free(g->fails);
    for (size_t k = 0; k < g->nser; k++) free(g->ser[k].steps), free(g->ser[k].fails);
    free(g->ser);
  }
  free(rp->g);
  free(rp->by_name);
  memset(rp, 0, sizeof(*rp));
}

static char *dup_or_null(const char *s, int *oom) {
  char *d = s ? strdup(s) : NULL;
  if (s && !d) *oom = 1;
  return d;
}

/* ---- reading ---- */

static int add_group(void *ctx, const hist_task_row *r) {
  report *rp = ctx;
  if (!RESERVE(rp->g, rp->n, rp->cap)) return REPORT_OOM;
  group *g = &rp->g[rp->n++];
  memset(g, 0, sizeof(*g));
  int oom = 0;
  g->task = dup_or_null(r->task ? r->task : "", &oom);
  g->size = dup_or_null(r->size_json ? r->size_json : "{}", &oom);
  g->best_compiler = dup_or_null(r->best_compiler, &oom);
  g->best_key = dup_or_null(r->best_key, &oom);
  g->r = *r;
  g->r.task = g->task;
  g->r.size_json = g->size;
  g->r.best_compiler = g->best_compiler;
  g->r.best_key = g->best_key;
  g->gbps = r->bytes > 0;
  return oom ? REPORT_OOM : 0;
}

static int cmp_name(const char *task_a, const char *size_a, const group *b) {
  int c = strcmp(task_a, b->task);
  return c ? c : strcmp(size_a, b->size);
}

static int cmp_groups(const void *a, const void *b) {
  const group *ga = *(group *const *)a;
  return cmp_name(ga->task, ga->size, *(group *const *)b);
}

static group *find_group(const report *rp, const char *task, const char *size) {
  if (!task || !size) return NULL;
  size_t lo = 0, hi = rp->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = cmp_name(task, size, rp->by_name[mid]);
    if (!c) return rp->by_name[mid];
    if (c < 0) hi = mid;
    else lo = mid + 1;
  }
  return NULL;
}

static int add_failure(void *ctx, const char *task, const char *size, const char *status,
                       int64_t n, const char *first_error) {
  /* A task first recorded after the tasks were read waits for the next
   * report. */
  group *g = find_group(ctx, task, size);
  if (!g) return 0;
  if (!RESERVE(g->fails, g->nfails, g->capfails)) return REPORT_OOM;
  failure *f = &g->fails[g->nfails++];
  int oom = 0;
  f->status = dup_or_null(status ? status : "?", &oom);
  f->error = dup_or_null(first_error, &oom);
  f->n = n;
  return oom ? REPORT_OOM : 0;
}

static int add_point(void *ctx, const hist_point *p) {
  report *rp = ctx;
  group *g = rp->cur;
  if (!g || !p->task || !p->size_json || cmp_name(p->task, p->size_json, g) != 0)
    g = rp->cur = find_group(rp, p->task, p->size_json);
  if (!g) return 0;
  series *s = g->nser ? &g->ser[g->nser - 1] : NULL;
  if (!s || s->session != p->session) {
    if (!RESERVE(g->ser, g->nser, g->capser)) return REPORT_OOM;
    s = &g->ser[g->nser++];
    memset(s, 0, sizeof(*s));
    s->session = p->session;
  }
  s->n++;
  if (p->status && !strcmp(p->status, "ok")) {
    double v = g->gbps ? p->gbps : p->gflops;
    if (!(isfinite(v) && v > s->best)) return 0;
    if (!RESERVE(s->steps, s->nsteps, s->capsteps)) return REPORT_OOM;
    s->steps[s->nsteps++] = (struct step){s->n, v};
    s->best = v;
  } else {
    if (!RESERVE(s->fails, s->nfails, s->capfails)) return REPORT_OOM;
    s->fails[s->nfails++] = s->n;
  }
  return 0;
}

/* Says why when it fails. */
static int report_read(hist *h, report *rp) {
  int rc = hist_tasks(h, add_group, rp);
  if (rc == 0 && rp->n) {
    if (!(rp->by_name = malloc(rp->n * sizeof(*rp->by_name)))) {
      rc = REPORT_OOM;
    } else {
      for (size_t i = 0; i < rp->n; i++) rp->by_name[i] = &rp->g[i];
      qsort(rp->by_name, rp->n, sizeof(*rp->by_name), cmp_groups);
      rc = hist_failures(h, add_failure, rp);
      if (rc == 0) rc = hist_points(h, add_point, rp);
    }
  }
  if (rc < 0)
    fprintf(stderr, "ktune report: %s\n", rc == REPORT_OOM ? "out of memory" : hist_errmsg(h));
  return rc;
}

/* ---- writing ---- */

/* s as HTML text, or as an attribute value in double quotes. */
static void esc(FILE *f, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
    case '&': fputs("&amp;", f); break;
    case '<': fputs("&lt;", f); break;
    case '>': fputs("&gt;", f); break;
    case '"': fputs("&quot;", f); break;
    case '\'': fputs("&#39;", f); break;
    default: fputc(*s, f);
    }
  }
}

static void fmt_time(char *buf, size_t len, int64_t ms) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  if (ms <= 0 || !gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M", &tm))
    snprintf(buf, len, "-");
}

/* Constants as "K=24 M=24 N=24"; "" when the task has none. */
static void fmt_size(char *buf, size_t len, const char *size_json) {
  buf[0] = 0;
  if (size_json && strcmp(size_json, "{}") != 0) cli_fmt_config(buf, len, size_json, NULL);
}

/* The speed of the group's best trial in its unit; NAN when it has none.
 * GB/s from the bytes when the trial did not store it, as ktune best. */
static double best_speed(const group *g) {
  if (!g->r.best_id) return NAN;
  if (!g->gbps) return g->r.best_gflops;
  if (isfinite(g->r.best_gbps)) return g->r.best_gbps;
  return g->r.best_mean_s > 0 ? (double)g->r.bytes / g->r.best_mean_s / 1e9 : NAN;
}

static const char *unit(const group *g) { return g->gbps ? "GB/s" : "GFLOPS"; }

static void put_rate(FILE *f, const group *g, double v) {
  char buf[64];
  if (!isfinite(v)) {
    fputs("-", f);
    return;
  }
  cli_fmt_rate(buf, sizeof(buf), 0, v, g->gbps);
  esc(f, buf);
}

static void put_count(FILE *f, int64_t n) {
  char buf[32];
  cli_fmt_count(buf, sizeof(buf), n > 0 ? (uint64_t)n : 0);
  fputs(buf, f);
}

/* Session colours: one class per session, for its line, dots and legend. */
#define NCOLOURS 10

static const char style[] =
    ":root{color-scheme:light dark;--fg:#1d232a;--mute:#5b6570;--bg:#fff;--line:#d8dde2;"
    "--card:#f3f5f7;--bad:#c62828;--good:#2e8b57}"
    "@media (prefers-color-scheme:dark){:root{--fg:#e6e9ec;--mute:#9aa4ae;--bg:#15191d;"
    "--line:#39414a;--card:#1f252b;--bad:#ef6f6c;--good:#5cc08a}}"
    "*{box-sizing:border-box}"
    "body{margin:0 auto;max-width:70rem;padding:1rem;color:var(--fg);background:var(--bg);"
    "font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}"
    "h1{font-size:1.5rem;margin:.2rem 0}"
    "h2{font-size:1.2rem;margin:2.2rem 0 .6rem;padding-bottom:.2rem;"
    "border-bottom:1px solid var(--line);overflow-wrap:anywhere}"
    "h2 small{font-weight:normal;color:var(--mute);font-size:.95rem}"
    ".meta,.note{color:var(--mute)}"
    ".scroll{overflow-x:auto}"
    "table{border-collapse:collapse;font-variant-numeric:tabular-nums}"
    "th,td{padding:.3rem .7rem .3rem 0;border-bottom:1px solid var(--line);text-align:left;"
    "vertical-align:top;white-space:nowrap}"
    "th{font-weight:600;color:var(--mute);font-size:.85rem}"
    "td.n,th.n{text-align:right}"
    "td.wrap{white-space:normal;min-width:14rem;overflow-wrap:anywhere}"
    "a{color:inherit}"
    ".cards{display:flex;flex-wrap:wrap;gap:.5rem;margin:.4rem 0 .8rem}"
    ".card{background:var(--card);border-radius:.4rem;padding:.35rem .8rem;min-width:7.5rem}"
    ".card b{display:block;font-size:1.3rem;font-variant-numeric:tabular-nums}"
    ".card span{color:var(--mute);font-size:.8rem}"
    "svg{display:block;width:100%;height:auto;max-width:36rem}"
    "svg text{fill:var(--mute);font-size:12px}"
    /* A phone shows the chart at two thirds of its units: larger text. */
    "@media (max-width:32rem){svg text{font-size:16px}}"
    ".axis{stroke:var(--mute);fill:none}"
    ".grid{stroke:var(--line);fill:none}"
    "polyline{fill:none;stroke:var(--c);stroke-width:2;stroke-linejoin:round}"
    "circle{fill:var(--c)}"
    "path.fail{stroke:var(--bad);stroke-width:2;fill:none}"
    ".legend{list-style:none;padding:0;margin:.4rem 0}"
    ".legend li{margin:.2rem 0;overflow-wrap:anywhere}"
    ".sw{display:inline-block;width:1.4rem;height:.3rem;border-radius:.15rem;"
    "vertical-align:middle;margin-right:.45rem;background:var(--c)}"
    ".bar{display:inline-block;width:3.5rem;height:.45rem;margin-left:.45rem;"
    "vertical-align:middle;border-radius:.2rem;overflow:hidden;background:var(--bad)}"
    ".bar i{display:block;height:100%;background:var(--good)}"
    ".bad{color:var(--bad)}"
    "details summary{cursor:pointer}"
    "details pre{white-space:pre-wrap;overflow-wrap:anywhere;max-width:36rem;font-size:.8rem;"
    "margin:.2rem 0 .4rem;color:var(--mute)}"
    "code{font-size:.9em;overflow-wrap:anywhere}"
    ".s0{--c:#4e79a7}.s1{--c:#f28e2b}.s2{--c:#e15759}.s3{--c:#76b7b2}.s4{--c:#59a14f}"
    ".s5{--c:#edc948}.s6{--c:#b07aa1}.s7{--c:#ff9da7}.s8{--c:#9c755f}.s9{--c:#bab0ac}";

static void page_head(FILE *f, const char *db) {
  fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        /* Nothing may load or run: the page is whole as written. */
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'\">\n"
        "<meta name=\"generator\" content=\"ktune " KTUNE_VERSION "\">\n<title>ktune report: ",
        f);
  esc(f, db);
  fprintf(f, "</title>\n<style>%s</style>\n</head>\n<body>\n", style);
}

/* The header's one line on the whole history. */
static void page_summary(FILE *f, const report *rp, const char *db) {
  int64_t trials = 0, sessions = 0, first = 0, last = 0;
  for (size_t i = 0; i < rp->n; i++) {
    const group *g = &rp->g[i];
    trials += g->r.trials;
    for (size_t k = 0; k < g->nser; k++) sessions += g->ser[k].session > 0;
    if (g->r.first_ms > 0 && (!first || g->r.first_ms < first)) first = g->r.first_ms;
    if (g->r.last_ms > last) last = g->r.last_ms;
  }
  fputs("<header>\n<h1>ktune report</h1>\n<p class=\"meta\">history <code>", f);
  esc(f, db);
  fputs("</code>", f);
  if (trials) {
    char a[32], b[32];
    fmt_time(a, sizeof(a), first);
    fmt_time(b, sizeof(b), last);
    fputs(": ", f);
    put_count(f, trials);
    fprintf(f, " %s of %zu %s in %lld %s, %s to %s UTC", trials == 1 ? "trial" : "trials", rp->n,
            rp->n == 1 ? "task" : "tasks", (long long)sessions,
            sessions == 1 ? "session" : "sessions", a, b);
  }
  fputs("</p>\n</header>\n", f);
}

/* A failing status with its count, and its first error to unfold. */
static void put_failure(FILE *f, const failure *x) {
  if (x->error) fputs("<details><summary>", f);
  else fputs("<div>", f);
  fputs("<span class=\"bad\">", f);
  esc(f, x->status);
  fputs("</span> ", f);
  put_count(f, x->n);
  if (x->error) {
    fputs("</summary><pre>", f);
    esc(f, x->error);
    fputs("</pre></details>", f);
  } else {
    fputs("</div>", f);
  }
}

static void tasks_table(FILE *f, const report *rp) {
  fputs("<section>\n<h2>Tasks</h2>\n<div class=\"scroll\"><table>\n<tr><th>task</th><th>size</th>"
        "<th class=\"n\">FLOPs per call</th><th class=\"n\">best latency</th>"
        "<th class=\"n\">best speed</th><th class=\"n\">trials</th><th>failures</th>"
        "<th>best measured with</th></tr>\n",
        f);
  for (size_t i = 0; i < rp->n; i++) {
    const group *g = &rp->g[i];
    char size[1024], lat[32];
    fmt_size(size, sizeof(size), g->size);
    cli_fmt_latency(lat, sizeof(lat), g->r.best_id ? g->r.best_mean_s : 0);
    fprintf(f, "<tr><td><a href=\"#task-%zu\">", i + 1);
    esc(f, g->task);
    fputs("</a></td><td>", f);
    esc(f, size);
    fputs("</td><td class=\"n\">", f);
    put_count(f, g->r.flops);
    if (g->gbps) {
      fputs("<br><span class=\"note\">", f);
      put_count(f, g->r.bytes);
      fputs(" bytes</span>", f);
    }
    fprintf(f, "</td><td class=\"n\">%s</td><td class=\"n\">", lat);
    put_rate(f, g, best_speed(g));
    fputs("</td><td class=\"n\">", f);
    put_count(f, g->r.trials);
    double ok = g->r.trials ? 100.0 * (double)(g->r.trials - g->r.failures) / (double)g->r.trials
                            : 0;
    fprintf(f, "<span class=\"bar\" title=\"%lld ok, %lld failed\"><i style=\"width:%.0f%%\">"
               "</i></span></td><td>",
            (long long)(g->r.trials - g->r.failures), (long long)g->r.failures, ok);
    for (size_t k = 0; k < g->nfails; k++) put_failure(f, &g->fails[k]);
    if (!g->nfails) fputs("none", f);
    fputs("</td><td>", f);
    if (g->r.best_id) {
      fputs("<code>", f);
      esc(f, g->best_compiler ? g->best_compiler : "-");
      fputs("</code>, key ", f);
      esc(f, g->best_key ? g->best_key : "-");
      if (g->r.best_session) fprintf(f, ", session %lld", (long long)g->r.best_session);
      if (!g->r.best_checked) fputs(", <span class=\"bad\">outputs not checked</span>", f);
    } else {
      fputs("no successful trial", f);
    }
    fputs("</td></tr>\n", f);
  }
  fputs("</table></div>\n</section>\n", f);
}

/* ---- a task's chart ---- */

/* The viewBox and the plot area inside it; text is 12 units. */
enum { CW = 480, CH = 250, CL = 50, CR = 14, CT = 26, CB = 42 };

/* 1, 2 or 5 times a power of ten, near span / ticks. */
static double nice_step(double span, int ticks) {
  double raw = span / ticks, p = pow(10, floor(log10(raw))), m = raw / p;
  return (m < 1.5 ? 1 : m < 3 ? 2 : m < 7 ? 5 : 10) * p;
}

typedef struct {
  double x1;    /* the last trial number on the axis; trial 1 is at the left */
  double ymax;  /* speed at the top */
} scale;

static double sx(const scale *s, double n) {
  return CL + (n - 1) / (s->x1 - 1) * (CW - CL - CR);
}

static double sy(const scale *s, double v) { return CH - CB - v / s->ymax * (CH - CB - CT); }

/* Trial numbers under the axis: 1, then the multiples of step not so
 * close to 1 that their labels would overlap. */
static int x_tick(int64_t n, int64_t step) {
  return n == 1 || (n % step == 0 && n - 1 >= step / 2.0);
}

static void chart_axes(FILE *f, const group *g, const scale *s, double ystep) {
  /* Horizontal grid lines and speeds on the left. */
  int ny = (int)lround(s->ymax / ystep);
  double digits = -floor(log10(ystep) + 1e-9);
  int decimals = digits > 0 ? (int)digits : 0;
  fputs("<path class=\"grid\" d=\"", f);
  for (int i = 1; i <= ny; i++) fprintf(f, "M%d %.1fH%d", CL, sy(s, i * ystep), CW - CR);
  fputs("\"/>", f);
  for (int i = 0; i <= ny; i++)
    fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.*f</text>", CL - 6,
            sy(s, i * ystep) + 4, decimals, i * ystep);
  int64_t last = (int64_t)s->x1, step = (int64_t)nice_step(s->x1 - 1, 5);
  if (step < 1) step = 1;
  fprintf(f, "<path class=\"axis\" d=\"M%d %dV%dH%d", CL, CT, CH - CB, CW - CR);
  for (int64_t n = 1; n <= last; n = n < step ? step : n + step)
    if (x_tick(n, step)) fprintf(f, "M%.1f %dv5", sx(s, (double)n), CH - CB);
  fputs("\"/>", f);
  for (int64_t n = 1; n <= last; n = n < step ? step : n + step) {
    if (!x_tick(n, step)) continue;
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", sx(s, (double)n),
            CH - CB + 17);
    put_count(f, n);
    fputs("</text>", f);
  }
  fprintf(f, "<text x=\"%d\" y=\"%d\">best %s so far</text>", CL, CT - 10, unit(g));
  fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">trial number in its session</text>",
          CL + (CW - CL - CR) / 2, CH - 6);
}

/* A session's best so far as steps, a dot where it improved, and a red
 * tick on the axis per failed trial (one per unit of width: a session of
 * 100,000 trials draws no more ticks than the chart is wide). */
static void chart_series(FILE *f, const series *s, const scale *sc, size_t colour) {
  if (s->nsteps) {
    fprintf(f, "<polyline class=\"s%zu\" points=\"", colour);
    for (size_t k = 0; k < s->nsteps; k++) {
      double x = sx(sc, (double)s->steps[k].n);
      if (k) fprintf(f, " %.1f,%.1f", x, sy(sc, s->steps[k - 1].v));
      fprintf(f, "%s%.1f,%.1f", k ? " " : "", x, sy(sc, s->steps[k].v));
    }
    if (s->n > s->steps[s->nsteps - 1].n)
      fprintf(f, " %.1f,%.1f", sx(sc, (double)s->n), sy(sc, s->best));
    fputs("\"><title>", f);
    if (s->session) fprintf(f, "session %lld", (long long)s->session);
    else fputs("no session", f);
    fputs("</title></polyline>", f);
    for (size_t k = 0; k < s->nsteps; k++)
      fprintf(f, "<circle class=\"s%zu\" cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\"/>", colour,
              sx(sc, (double)s->steps[k].n), sy(sc, s->steps[k].v));
  }
  if (s->nfails) {
    fputs("<path class=\"fail\" d=\"", f);
    long last = -1;
    for (size_t k = 0; k < s->nfails; k++) {
      long x = lround(sx(sc, (double)s->fails[k]));
      if (x == last) continue;
      fprintf(f, "M%ld %dv-9", x, CH - CB - 1);
      last = x;
    }
    fputs("\"/>", f);
  }
}

static void chart(FILE *f, const group *g) {
  scale sc = {.x1 = 2, .ymax = 1};
  double top = 0;
  for (size_t k = 0; k < g->nser; k++) {
    if ((double)g->ser[k].n > sc.x1) sc.x1 = (double)g->ser[k].n;
    if (g->ser[k].best > top) top = g->ser[k].best;
  }
  double ystep = 0.5;
  if (top > 0) {
    ystep = nice_step(top * 1.05, 4);
    sc.ymax = ceil(top * 1.05 / ystep) * ystep;
  }
  fprintf(f, "<svg viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"best %s so far against "
             "trial number, one line per session\">",
          CW, CH, unit(g));
  chart_axes(f, g, &sc, ystep);
  for (size_t k = 0; k < g->nser; k++) chart_series(f, &g->ser[k], &sc, k % NCOLOURS);
  if (!(top > 0))
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">no successful trial yet</text>",
            CL + (CW - CL - CR) / 2, (CT + CH - CB) / 2);
  fputs("</svg>\n", f);
}

/* Which session each line is, in words. */
static void legend(FILE *f, hist *h, const group *g) {
  int any_fail = 0;
  fputs("<ul class=\"legend\">\n", f);
  for (size_t k = 0; k < g->nser; k++) {
    const series *s = &g->ser[k];
    any_fail |= s->nfails > 0;
    fprintf(f, "<li class=\"s%zu\"><span class=\"sw\"></span>", k % NCOLOURS);
    hist_session_row r;
    if (s->session && hist_session_get(h, s->session, &r) == 1) {
      fprintf(f, "<b>session %lld</b> ", (long long)s->session);
      esc(f, r.strategy);
      fputs(" &middot; <code>", f);
      esc(f, r.compiler);
      fputs("</code> &middot; key ", f);
      esc(f, r.key);
      if (r.state && strcmp(r.state, "done") != 0) {
        fputs(" &middot; ", f);
        esc(f, r.state);
      }
      hist_session_row_clear(&r);
    } else if (s->session) {
      fprintf(f, "<b>session %lld</b>", (long long)s->session);
    } else {
      fputs("<b>no session</b>", f);
    }
    fputs(": ", f);
    put_count(f, s->n);
    fputs(s->n == 1 ? " trial" : " trials", f);
    if (s->nfails) {
      fputs(", <span class=\"bad\">", f);
      put_count(f, (int64_t)s->nfails);
      fputs(" failed</span>", f);
    }
    fputs(", best ", f);
    put_rate(f, g, s->best > 0 ? s->best : NAN);
    fputs("</li>\n", f);
  }
  if (any_fail)
    fputs("<li class=\"note\"><span class=\"bad\">red ticks</span> on the bottom axis: failed "
          "trials</li>\n",
          f);
  fputs("</ul>\n", f);
}

static void card(FILE *f, const char *value, const char *what, int bad) {
  fputs(bad ? "<div class=\"card\"><b class=\"bad\">" : "<div class=\"card\"><b>", f);
  esc(f, value);
  fputs("</b><span>", f);
  esc(f, what);
  fputs("</span></div>", f);
}

static void task_section(FILE *f, hist *h, const group *g, size_t i) {
  char size[1024], v[64], what[64];
  fmt_size(size, sizeof(size), g->size);
  fprintf(f, "<section id=\"task-%zu\">\n<h2>", i + 1);
  esc(f, g->task);
  fputs(" <small>", f);
  esc(f, size);
  fputs("</small></h2>\n<div class=\"cards\">", f);
  double speed = best_speed(g);
  if (isfinite(speed)) snprintf(v, sizeof(v), "%.3f", speed);
  else snprintf(v, sizeof(v), "-");
  snprintf(what, sizeof(what), "best %s", unit(g));
  card(f, v, what, 0);
  cli_fmt_latency(v, sizeof(v), g->r.best_id ? g->r.best_mean_s : 0);
  card(f, v, "best latency", 0);
  cli_fmt_count(v, sizeof(v), (uint64_t)g->r.trials);
  card(f, v, "trials", 0);
  cli_fmt_count(v, sizeof(v), (uint64_t)g->r.failures);
  card(f, v, "failed", g->r.failures > 0);
  fputs("</div>\n", f);
  chart(f, g);
  legend(f, h, g);
  fputs("</section>\n", f);
}

/* ---- what the trials were measured on and with ---- */

typedef struct {
  FILE *f;
  size_t rows;
} rows_ctx;

static void put_cell(FILE *f, const char *s, int code) {
  fputs(code ? "<td><code>" : "<td>", f);
  esc(f, s && *s ? s : "-");
  fputs(code ? "</code></td>" : "</td>", f);
}

/* The device JSON's fields, each a column; others are listed after them. */
static const char *const device_fields[] = {"cpu", "cores", "governor", "arch", "kernel", "host",
                                            "ktune"};
#define NDEVICE (sizeof(device_fields) / sizeof(device_fields[0]))

static void put_json_value(FILE *f, json_t *v) {
  if (json_is_string(v)) esc(f, json_string_value(v));
  else if (json_is_integer(v)) fprintf(f, "%lld", (long long)json_integer_value(v));
  else if (v) {
    char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    esc(f, t ? t : "?");
    free(t);
  } else {
    fputs("-", f);
  }
}

static int device_row(void *ctx, const char *const *v, int64_t trials) {
  rows_ctx *c = ctx;
  const char *runner = v[0], *key = v[1], *device = v[2];
  /* Trials no runner measured (a compile error) were on no device. */
  if (!runner && !device) return 0;
  FILE *f = c->f;
  c->rows++;
  fputs("<tr>", f);
  put_cell(f, runner, 0);
  put_cell(f, key, 0);
  json_t *o = device ? json_loads(device, 0, NULL) : NULL;
  if (!json_is_object(o)) {
    for (size_t i = 0; i < NDEVICE; i++) fputs("<td>-</td>", f);
    put_cell(f, device, 1);
  } else {
    for (size_t i = 0; i < NDEVICE; i++) {
      fputs(i == 0 ? "<td class=\"wrap\">" : "<td>", f);
      put_json_value(f, json_object_get(o, device_fields[i]));
      fputs("</td>", f);
    }
    fputs("<td>", f);
    const char *name;
    json_t *x;
    int others = 0;
    json_object_foreach(o, name, x) {
      size_t i = 0;
      while (i < NDEVICE && strcmp(name, device_fields[i])) i++;
      /* Its name is the runner's, in the first column. */
      if (i < NDEVICE || (!strcmp(name, "name") && json_is_string(x) && runner &&
                          !strcmp(json_string_value(x), runner)))
        continue;
      fputs(others++ ? ", " : "", f);
      esc(f, name);
      fputs("=", f);
      put_json_value(f, x);
    }
    if (!others) fputs("-", f);
    fputs("</td>", f);
  }
  json_decref(o);
  fputs("<td class=\"n\">", f);
  put_count(f, trials);
  fputs("</td></tr>\n", f);
  return 0;
}

static int compiler_row(void *ctx, const char *const *v, int64_t trials) {
  rows_ctx *c = ctx;
  c->rows++;
  fputs("<tr>", c->f);
  put_cell(c->f, v[0], 1);
  if (v[1]) put_cell(c->f, v[1], 1);
  else fputs("<td class=\"note\">none reported (not built)</td>", c->f);
  fputs("<td class=\"n\">", c->f);
  put_count(c->f, trials);
  fputs("</td></tr>\n", c->f);
  return 0;
}

static int timing_row(void *ctx, const char *const *v, int64_t trials) {
  rows_ctx *c = ctx;
  char words[256];
  cli_fmt_timing(words, sizeof(words), v[0]);
  c->rows++;
  fputs("<tr>", c->f);
  put_cell(c->f, words, 0);
  put_cell(c->f, v[0], 1);
  fputs("<td class=\"n\">", c->f);
  put_count(c->f, trials);
  fputs("</td></tr>\n", c->f);
  return 0;
}

/* A table of the values some trials columns take; says why when the
 * history cannot be read. */
static int values_table(FILE *f, hist *h, const char *title, const char *head,
                        const char *const *cols, size_t ncols, hist_values_fn row) {
  fprintf(f, "<section>\n<h2>%s</h2>\n<div class=\"scroll\"><table>\n<tr>%s</tr>\n", title, head);
  rows_ctx c = {f, 0};
  int rc = hist_trial_values(h, cols, ncols, row, &c);
  if (rc < 0) {
    fprintf(stderr, "ktune report: %s\n", hist_errmsg(h));
    return rc;
  }
  if (!c.rows) fputs("<tr><td class=\"note\">none recorded</td></tr>\n", f);
  fputs("</table></div>\n</section>\n", f);
  return 0;
}

static int used_tables(FILE *f, hist *h) {
  static const char *const devices[] = {"runner", "key", "device"};
  static const char *const compilers[] = {"compiler", "compiler_id"};
  static const char *const timings[] = {"timing"};
  if (values_table(f, h, "Devices",
                   "<th>runner</th><th>key</th><th>CPU</th><th>cores</th><th>governor</th>"
                   "<th>arch</th><th>kernel</th><th>host</th><th>ktune</th><th>other</th>"
                   "<th class=\"n\">trials</th>",
                   devices, 3, device_row) < 0 ||
      values_table(f, h, "Compilers",
                   "<th>compiler</th><th>as the builder reported it</th>"
                   "<th class=\"n\">trials</th>",
                   compilers, 2, compiler_row) < 0 ||
      values_table(f, h, "Timing options",
                   "<th>options</th><th>as recorded</th><th class=\"n\">trials</th>", timings, 1,
                   timing_row) < 0)
    return -1;
  return 0;
}

/* The whole page into f; -1 after saying why. */
/* ---- workloads: the end-to-end estimate ---- */

typedef struct {
  FILE *f;
  char run[64];            /* the run whose table is open; "" when none */
  double total;
  int complete;            /* every task of the open run has a best */
  int n;
} wl_state;

static void wl_close(wl_state *w) {
  if (!w->run[0]) return;
  char total[32] = "-";
  if (w->complete) cli_fmt_latency(total, sizeof(total), w->total);
  fprintf(w->f, "<tr><th colspan=\"4\">end to end: the weighted sum of the bests</th>"
                "<th class=\"n\">%s</th><th></th></tr>\n</table></div>\n", total);
  w->run[0] = 0;
}

static int wl_row(void *ctx, const hist_workload_row *r) {
  wl_state *w = ctx;
  if (strcmp(w->run, r->run) != 0) {
    wl_close(w);
    snprintf(w->run, sizeof(w->run), "%s", r->run);
    w->total = 0;
    w->complete = 1;
    fputs("<h3>", w->f);
    esc(w->f, r->file ? r->file : "workload");
    fputs(" <span class=\"note\">(run ", w->f);
    esc(w->f, r->run);
    fputs(")</span></h3>\n<div class=\"scroll\"><table>\n<tr><th>task</th><th>size</th>"
          "<th class=\"n\">weight</th><th class=\"n\">best latency</th>"
          "<th class=\"n\">weighted</th><th class=\"n\">trials</th></tr>\n", w->f);
  }
  char size[1024], lat[32] = "-", part[32] = "-";
  fmt_size(size, sizeof(size), r->size);
  if (r->best_mean_s > 0) {
    cli_fmt_latency(lat, sizeof(lat), r->best_mean_s);
    cli_fmt_latency(part, sizeof(part), r->weight * r->best_mean_s);
    w->total += r->weight * r->best_mean_s;
  } else {
    w->complete = 0;
  }
  fputs("<tr><td>", w->f);
  esc(w->f, r->task);
  fputs("</td><td>", w->f);
  esc(w->f, size);
  fprintf(w->f, "</td><td class=\"n\">%g</td><td class=\"n\">%s</td><td class=\"n\">%s</td>"
                "<td class=\"n\">", r->weight, lat, part);
  put_count(w->f, r->trials);
  fputs("</td></tr>\n", w->f);
  w->n++;
  return 0;
}

/* Each workload run (`ktune tune --workload`) with its end-to-end
 * estimate; nothing when the history has none. */
static int workloads_section(FILE *f, hist *h) {
  /* Written to memory first: the heading only when there is a run. */
  char *buf = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&buf, &len);
  if (!m) return -1;
  wl_state w = {.f = m};
  int rc = hist_workload_tasks(h, wl_row, &w);
  wl_close(&w);
  if (fclose(m) != 0) rc = -1;
  if (rc < 0 || !w.n) {
    free(buf);
    return rc < 0 ? -1 : 0;
  }
  fputs("<section>\n<h2>Workloads</h2>\n<p class=\"note\">The end-to-end estimate of a "
        "workload is the weighted sum of its tasks' best latencies (weight: runs per step of "
        "the application).</p>\n", f);
  fwrite(buf, 1, len, f);
  free(buf);
  fputs("</section>\n", f);
  return 0;
}

static int write_page(FILE *f, hist *h, const report *rp, const char *db) {
  page_head(f, db);
  page_summary(f, rp, db);
  if (!rp->n) {
    fputs("<p>This history has no trials yet: <code>ktune tune</code> and <code>ktune "
          "measure</code> record them.</p>\n",
          f);
  } else {
    tasks_table(f, rp);
    if (workloads_section(f, h) < 0) return -1;
    for (size_t i = 0; i < rp->n; i++) task_section(f, h, &rp->g[i], i);
    if (used_tables(f, h) < 0) return -1;
  }
  fputs("<footer class=\"note\"><p>Written by <code>ktune report</code> (ktune " KTUNE_VERSION
        "). Speeds compare only within a task and size; docs/METRICS.md says what each "
        "number means.</p></footer>\n</body>\n</html>\n",
        f);
  return 0;
}

/* ---- the command ---- */

static void usage(FILE *f) {
  fprintf(f, "usage: ktune report [--db PATH] [-o FILE]\n"
             "Writes the history as one self-contained HTML page (docs/REPORTS.md): each task\n"
             "and size with its best latency and speed, trials and failures, a chart of the\n"
             "best speed so far of each session, and the devices, compilers and timing\n"
             "options used. It needs no server or network to be read.\n"
             "  --db PATH          the history to read (default ./ktune.db)\n"
             "  -o, --output FILE  where to write the page (default report.html; - for\n"
             "                     standard output)\n");
}

/* Writes len bytes of text to path ("-": standard output); -1 after
 * saying why. */
static int write_out(const char *path, const char *text, size_t len) {
  int to_stdout = !strcmp(path, "-");
  FILE *f = to_stdout ? stdout : fopen(path, "w");
  if (!f) {
    fprintf(stderr, "ktune report: cannot write %s: %s\n", path, strerror(errno));
    return -1;
  }
  errno = 0;
  size_t n = fwrite(text, 1, len, f);
  int rc = n == len ? 0 : -1;
  int e = errno;
  if ((to_stdout ? fflush(f) : fclose(f)) != 0 && rc == 0) {
    rc = -1;
    e = errno;
  }
  if (rc < 0)
    fprintf(stderr, "ktune report: cannot write %s: %s\n", to_stdout ? "standard output" : path,
            e ? strerror(e) : "short write");
  return rc;
}

int cmd_report(int argc, char **argv) {
  const char *db = "ktune.db", *out = "report.html";
  static const struct option opts[] = {{"db", required_argument, 0, 'd'},
                                       {"output", required_argument, 0, 'o'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
    switch (ch) {
    case 'd': db = optarg; break;
    case 'o': out = optarg; break;
    case 'h': usage(stdout); return EXIT_OK;
    default: usage(stderr); return EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "ktune report: unexpected argument '%s'\n", argv[optind]);
    return EXIT_USAGE;
  }
  if (!*db || !*out) {
    fprintf(stderr, "ktune report: %s takes a file name, not an empty one\n",
            *db ? "-o" : "--db");
    return EXIT_USAGE;
  }
  char err[512];
  hist *h;
  if (hist_open_readonly(db, &h, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune report: %s\n", err);
    return EXIT_FAIL;
  }
  /* The page is made in memory first: a history that fails half-way
   * leaves an earlier report as it was. */
  report rp = {0};
  char *text = NULL;
  size_t len = 0;
  FILE *page = open_memstream(&text, &len);
  int rc = EXIT_FAIL;
  /* Every table and chart from one version of the history, though a
   * tracker records trials meanwhile. */
  if (hist_read_begin(h) < 0) {
    fprintf(stderr, "ktune report: %s\n", hist_errmsg(h));
  } else if (!page) {
    fprintf(stderr, "ktune report: out of memory\n");
  } else if (report_read(h, &rp) == 0 && write_page(page, h, &rp, db) == 0) {
    if (fclose(page) != 0) fprintf(stderr, "ktune report: out of memory\n");
    else if (write_out(out, text, len) == 0) rc = EXIT_OK;
    page = NULL;
  }
  if (page) fclose(page);
  if (rc == EXIT_OK && strcmp(out, "-") != 0) {
    int64_t trials = 0;
    for (size_t i = 0; i < rp.n; i++) trials += rp.g[i].r.trials;
    fprintf(stderr, "wrote %s: %zu %s, %lld %s\n", out, rp.n,
            rp.n == 1 ? "task and size" : "tasks and sizes", (long long)trials,
            trials == 1 ? "trial" : "trials");
  }
  free(text);
  report_free(&rp);
  hist_read_end(h);
  hist_close(h);
  return rc;
}
