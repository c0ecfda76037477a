/* ktune export, best and tasks: reading the history and the task folder. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/catalogue.h"
#include "cli/cli.h"
#include "cli/emit.h"
#include "cli/format.h"
#include "cli/workload.h"
#include "common/history.h"
#include "common/identity.h"
#include "common/space.h"
#include "common/task.h"
#include "common/timing.h"
#include "common/wire.h"

static int print_line(void *ctx, const char *line) {
  (void)ctx;
  return puts(line) < 0 ? -1 : 0;
}

static int export_remote(const cli_dial *d, const char *format) {
  char err[512];
  client c;
  if (client_connect(&c, d, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune export: %s\n", err);
    return EXIT_FAIL;
  }
  Ktune__ExportRequest req = KTUNE__EXPORT_REQUEST__INIT;
  req.format = (char *)format;
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_EXPORT_REQUEST, &req);
  int rc = EXIT_OK;
  /* The request, then chunk after chunk until the last. */
  Ktune__Envelope *m = client_ask(&c, &env, 60000, err, sizeof(err));
  for (;;) {
    if (!m || m->msg_case != KTUNE__ENVELOPE__MSG_EXPORT_CHUNK) {
      fprintf(stderr, "ktune export: %s\n", m ? "unexpected reply from the tracker" : err);
      wire_free(m);
      rc = EXIT_FAIL;
      break;
    }
    for (size_t i = 0; i < m->export_chunk->n_lines; i++) puts(m->export_chunk->lines[i]);
    int last = m->export_chunk->last;
    wire_free(m);
    if (last) break;
    m = client_recv(&c, 60000, err, sizeof(err));
  }
  client_close(&c);
  return rc;
}

int cmd_export(int argc, char **argv) {
  const char *db = NULL, *format = "jsonl";
  cli_dial d = {0};
  static const struct option opts[] = {{"db", required_argument, 0, 'd'}, CLI_DIAL_OPTIONS,
                                       {"format", required_argument, 0, 'f'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (ch) {
    case 'd': db = optarg; break;
    case CLI_OPT_TRACKER: case CLI_OPT_TOKEN_FILE: cli_dial_option(&d, ch, optarg); break;
    case 'f': format = optarg; break;
    case 'h':
      printf("usage: ktune export [--db PATH | --tracker HOST:PORT [--token-file PATH]]\n"
             "                    [--format jsonl|csv]\n"
             "Writes every trial of the history, one per line (docs/HISTORY.md).\n"
             "Default: --db ./ktune.db, unless --tracker or KTUNE_TRACKER is given.\n");
      return EXIT_OK;
    default: return EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "ktune export: unexpected argument '%s'\n", argv[optind]);
    return EXIT_USAGE;
  }
  if (strcmp(format, "jsonl") && strcmp(format, "csv")) {
    fprintf(stderr, "ktune export: --format takes jsonl or csv, not '%s'\n", format);
    return EXIT_USAGE;
  }
  if (db && d.tracker) {
    fprintf(stderr, "ktune export: give --db or --tracker, not both\n");
    return EXIT_USAGE;
  }
  /* With --db the history is read here: KTUNE_TRACKER does not matter. */
  if (!db && cli_dial_settle(&d, "export", NULL) < 0) return EXIT_USAGE;
  if (d.tracker) return export_remote(&d, format);
  char err[512];
  hist *h;
  if (hist_open_readonly(db ? db : "ktune.db", &h, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune export: %s\n", err);
    return EXIT_FAIL;
  }
  err[0] = 0;
  errno = 0;
  int rc = hist_export(h, format, print_line, NULL, err, sizeof(err));
  int out_errno = errno;
  hist_close(h);
  /* A reader that has read enough (`| head`) is not an error to report. */
  if (rc < 0 && !err[0] && out_errno == EPIPE) return EXIT_OK;
  if (rc < 0) {
    fprintf(stderr, "ktune export: %s\n", err[0] ? err : "cannot write the output");
    return EXIT_FAIL;
  }
  return EXIT_OK;
}

/* ---- best ---- */

/* A stored JSON text as a value: an object stays an object. */
static json_t *json_text(const char *text) {
  json_t *j = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
  return j ? j : json_null();
}

static json_t *json_opt_string(const char *s) { return s ? json_string(s) : json_null(); }

static const char *or_dash(const char *s) { return s && *s ? s : "-"; }

/* The filters a question to `ktune best` may leave open, each a column of
 * the trials. Left open while the trials differ in it, the answer says
 * which value won and which others there are, so that nothing mixes
 * silently (tcc's trials and gcc's, say). */
static const struct {
  const char *col;     /* the trials column, and its word in the output */
  const char *option;  /* what narrows it */
  const char *json;    /* the --json field that lists its values; the word's plural */
  size_t off;          /* its member of hist_best_query */
  size_t row_off;      /* and of hist_best_row */
} best_dims[] = {
    {"compiler", "--compiler", "compilers", offsetof(hist_best_query, compiler),
     offsetof(hist_best_row, compiler)},
    {"key", "--key", "keys", offsetof(hist_best_query, key), offsetof(hist_best_row, key)},
    {"timing", "the timing options", "timings", offsetof(hist_best_query, timing_json),
     offsetof(hist_best_row, timing_json)},
};
#define NDIMS (sizeof(best_dims) / sizeof(best_dims[0]))
#define DIM(q, d) (*(const char *const *)((const char *)(q) + best_dims[d].off))
#define ROW_DIM(b, d) (*(const char *const *)((const char *)(b) + best_dims[d].row_off))

/* Values of a column with their trial counts, most recently measured
 * first. */
typedef struct {
  char **v;
  int64_t *n;
  size_t len;
} best_values;

/* add_value's failure: no SQLite code is this. */
#define VALUES_OOM (-1000)

static int add_value(void *ctx, const char *value, int64_t trials) {
  best_values *vs = ctx;
  char **v = realloc(vs->v, (vs->len + 1) * sizeof(*v));
  if (v) vs->v = v;
  int64_t *n = v ? realloc(vs->n, (vs->len + 1) * sizeof(*n)) : NULL;
  if (n) vs->n = n;
  if (!v || !n || !(vs->v[vs->len] = strdup(value ? value : ""))) return VALUES_OOM;
  vs->n[vs->len++] = trials;
  return 0;
}

static void values_free(best_values *vs) {
  for (size_t i = 0; i < vs->len; i++) free(vs->v[i]);
  free(vs->v);
  free(vs->n);
  memset(vs, 0, sizeof(*vs));
}

/* Says why when it fails. */
static int values_of(hist *h, const hist_best_query *q, const char *col, best_values *out) {
  memset(out, 0, sizeof(*out));
  int rc = hist_best_values(h, q, col, add_value, out);
  if (rc < 0) {
    values_free(out);
    fprintf(stderr, "ktune best: %s\n", rc == VALUES_OOM ? "out of memory" : hist_errmsg(h));
  }
  return rc;
}

/* A stored value as JSON: timing is an object. */
static json_t *value_json(const char *col, const char *v) {
  return !v ? json_null() : !strcmp(col, "timing") ? json_text(v) : json_string(v);
}

/* q without filter d. */
static hist_best_query lifted(const hist_best_query *q, size_t d) {
  hist_best_query l = *q;
  *(const char **)((char *)&l + best_dims[d].off) = NULL;
  return l;
}

/* A value of a filter as the output names it: compilers quoted (they hold
 * spaces), timing in words. */
static void fmt_value(char *buf, size_t len, const char *col, const char *v) {
  if (!strcmp(col, "timing")) cli_fmt_timing(buf, len, v);
  else if (!strcmp(col, "compiler")) snprintf(buf, len, "\"%s\"", v);
  else snprintf(buf, len, "%s", v);
}

/* "compiler "tcc" (32 trials), "gcc -O3" (16 trials)" to f. */
static void print_values(FILE *f, const char *col, const best_values *vs) {
  for (size_t i = 0; i < vs->len; i++) {
    char v[512];
    fmt_value(v, sizeof(v), col, vs->v[i]);
    fprintf(f, "%s%s (%lld %s)", i ? ", " : "", v, (long long)vs->n[i],
            vs->n[i] == 1 ? "trial" : "trials");
  }
}

/* What `ktune best` was asked, and what it learnt on the way. */
typedef struct {
  hist *h;
  const char *db, *name;
  int unchecked;
  hist_best_query q;
  task_spec t;             /* the task's spec; t.name NULL when unknown */
  char *size;              /* canonical JSON of the size asked about */
  char *timing;            /* the timing filter, when timing options were given */
  char kernel[IDENT_HEX];
  int from_history;        /* the name was found only in the history */
  int64_t other_versions;  /* ... trials of its other kernels, not counted */
} best_ask;

/* " with compiler "gcc -O3", any key, any timing": the filters q used
 * (all, or only those given). */
static void print_filters(FILE *f, const hist_best_query *q, int all) {
  const char *sep = " with ";
  for (size_t d = 0; d < NDIMS; d++) {
    const char *v = DIM(q, d);
    char text[512];
    if (v) fmt_value(text, sizeof(text), best_dims[d].col, v);
    if (v) fprintf(f, "%s%s %s", sep, best_dims[d].col, text);
    else if (all) fprintf(f, "%sany %s", sep, best_dims[d].col);
    else continue;
    sep = ", ";
  }
}

/* The spec the winner was measured with, from its session's submission:
 * a task known only by name then shows its knobs in the spec's order. */
static void spec_of_session(best_ask *a, int64_t session) {
  void *blob;
  size_t len;
  if (session <= 0 || hist_session_spec(a->h, session, &blob, &len) != 1) return;
  Ktune__SubmitSession *s = ktune__submit_session__unpack(NULL, len, blob);
  char err[256];
  if (s && s->task && task_from_proto(s->task, &a->t, err, sizeof(err)) < 0)
    memset(&a->t, 0, sizeof(a->t));
  ktune__submit_session__free_unpacked(s, NULL);
  free(blob);
}

/* GB/s for a task that counts its bytes: from the spec when it is known
 * (the bytes as the spec says now), else as recorded; NAN when neither. */
static double best_gbps(const best_ask *a, const hist_best_row *b) {
  if (!a->t.name) return b->gbps;
  int64_t bytes = task_bytes(&a->t);
  return bytes > 0 && b->mean_s > 0 ? (double)bytes / b->mean_s / 1e9 : NAN;
}

static json_t *values_json(const char *col, const best_values *vs) {
  json_t *arr = json_array();
  for (size_t i = 0; i < vs->len; i++) {
    json_t *o = json_object();
    json_object_set_new(o, col, value_json(col, vs->v[i]));
    json_object_set_new(o, "trials", json_integer(vs->n[i]));
    json_array_append_new(arr, o);
  }
  return arr;
}

/* vals[d]: the values of filter d among the trials the other filters
 * allow. */
static int best_print_json(const best_ask *a, const hist_best_row *b, int64_t matched,
                           const best_values vals[NDIMS]) {
  json_t *o = json_object();
  double gbps = best_gbps(a, b);
  json_object_set_new(o, "task", json_string(a->name));
  json_object_set_new(o, "size", json_text(a->size));
  json_object_set_new(o, "config", json_text(b->config_json));
  json_object_set_new(o, "mean_s", json_real(b->mean_s));
  json_object_set_new(o, "gflops", json_real(b->gflops));
  json_object_set_new(o, "gbps", isfinite(gbps) ? json_real(gbps) : json_null());
  json_object_set_new(o, "compiler", json_opt_string(b->compiler));
  json_object_set_new(o, "compiler_id", json_opt_string(b->compiler_id));
  json_object_set_new(o, "key", json_opt_string(b->key));
  json_object_set_new(o, "runner", json_opt_string(b->runner));
  json_object_set_new(o, "builder", json_opt_string(b->builder));
  json_object_set_new(o, "timing", json_text(b->timing_json));
  json_object_set_new(o, "kernel", json_opt_string(b->kernel));
  json_object_set_new(o, "checked", json_boolean(b->checked));
  json_object_set_new(o, "unchecked_accepted", json_boolean(a->unchecked));
  json_object_set_new(o, "trial", json_integer(b->id));
  json_object_set_new(o, "session", b->session ? json_integer(b->session) : json_null());
  json_object_set_new(o, "from_history", json_boolean(a->from_history));
  json_object_set_new(o, "matched", json_integer(matched));
  json_t *filters = json_object();
  for (size_t d = 0; d < NDIMS; d++)
    json_object_set_new(filters, best_dims[d].col, value_json(best_dims[d].col, DIM(&a->q, d)));
  json_object_set_new(filters, "checked", json_boolean(!a->unchecked));
  json_object_set_new(o, "filters", filters);
  for (size_t d = 0; d < NDIMS; d++)
    json_object_set_new(o, best_dims[d].json, values_json(best_dims[d].col, &vals[d]));
  char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(o);
  if (!text) return -1;
  int rc = puts(text) < 0 ? -1 : 0;
  free(text);
  return rc;
}

static void best_print_text(const best_ask *a, const hist_best_row *b, int64_t matched,
                            const best_values vals[NDIMS]) {
  printf("best of %lld %s%s of %s %s", (long long)matched, a->unchecked ? "" : "checked ",
         matched == 1 ? "trial" : "trials", a->name, a->size);
  print_filters(stdout, &a->q, 1);
  printf("%s\n", a->unchecked ? " (checked or not: --unchecked)" : "");
  char cfg[1024], lat[32], rate[32], timing[256];
  cli_fmt_config(cfg, sizeof(cfg), b->config_json, a->t.name ? &a->t : NULL);
  cli_fmt_latency(lat, sizeof(lat), b->mean_s);
  double gbps = best_gbps(a, b);
  cli_fmt_rate(rate, sizeof(rate), 0, isfinite(gbps) ? gbps : b->gflops, isfinite(gbps));
  cli_fmt_timing(timing, sizeof(timing), b->timing_json);
  printf("best: %s\n      latency %s, %s\n", cfg, lat, rate);
  printf("      compiler \"%s\"", or_dash(b->compiler));
  if (b->compiler_id) printf(" (%s)", b->compiler_id);
  printf(", key %s, timing %s\n", or_dash(b->key), timing);
  printf("      runner %s, builder %s, trial %lld", or_dash(b->runner), or_dash(b->builder),
         (long long)b->id);
  if (b->session) printf(" of session %lld", (long long)b->session);
  printf("\n");
  if (a->unchecked)
    printf("note: --unchecked: trials measured with --no-check count too; this one's outputs %s\n",
           b->checked ? "were checked against the reference" : "were NOT checked");
  if (a->from_history) {
    printf("note: %s is not a built-in task or a spec file here: these are the trials of its "
           "version measured last (kernel %.12s)", a->name, or_dash(b->kernel));
    if (a->other_versions)
      printf("; %lld trials of other versions of its template or spec are not counted (pass its "
             "spec file to ask about one)", (long long)a->other_versions);
    printf("\n");
  }
  for (size_t d = 0; d < NDIMS; d++) {
    if (DIM(&a->q, d) || vals[d].len < 2) continue;
    char won[512];
    fmt_value(won, sizeof(won), best_dims[d].col, or_dash(ROW_DIM(b, d)));
    printf("note: the best is from %s %s, and these trials come from %zu %s: ",
           best_dims[d].col, won, vals[d].len, best_dims[d].json);
    print_values(stdout, best_dims[d].col, &vals[d]);
    printf("; %s picks one\n", best_dims[d].option);
  }
}

/* Nothing answered: say why, when the history can tell. */
static void best_explain_none(const best_ask *a) {
  const hist_best_query *q = &a->q;
  fprintf(stderr, "ktune best: no %s trial of %s %s", q->checked_only ? "checked" : "successful",
          a->name, a->size);
  print_filters(stderr, q, 0);
  fprintf(stderr, " in %s\n", a->db);
  /* Each filter given, lifted alone: what it ruled out. */
  for (size_t d = 0; d < NDIMS; d++) {
    if (!DIM(q, d)) continue;
    hist_best_query l = lifted(q, d);
    best_values vs;
    if (values_of(a->h, &l, best_dims[d].col, &vs) < 0) return;
    if (vs.len) {
      fprintf(stderr, "  without %s there are trials with %s ", best_dims[d].option,
              best_dims[d].col);
      print_values(stderr, best_dims[d].col, &vs);
      fprintf(stderr, "\n");
    }
    values_free(&vs);
  }
  int64_t n = 0;
  hist_best_query any = *q;
  any.checked_only = 0;
  if (q->checked_only && hist_count_ok(a->h, &any, &n) == 0 && n > 0)
    fprintf(stderr, "  %lld %s measured with --no-check; pass --unchecked to accept them\n",
            (long long)n, n == 1 ? "trial was" : "trials were");
  any.kernel = NULL;
  if (q->kernel && !a->from_history && hist_count_ok(a->h, &any, &n) == 0 && n > 0)
    fprintf(stderr, "  %lld %s of task %s measured from other template or spec versions\n",
            (long long)n, n == 1 ? "trial was" : "trials were", a->name);
  /* The kernel's digest covers its constants: other sizes are other kernels. */
  hist_best_query named = {.task = a->name};
  best_values sizes;
  if (a->from_history || values_of(a->h, &named, "size", &sizes) < 0) return;
  if (sizes.len) {
    fprintf(stderr, "  task %s has trials at: ", a->name);
    print_values(stderr, "size", &sizes);
    fprintf(stderr, "; -D picks a size\n");
  }
  values_free(&sizes);
}

/* 1 when the stored size has every constant -D names at its value. */
static int size_matches(const char *size_json, char *const *defines, size_t nd) {
  json_t *o = json_loads(size_json, 0, NULL);
  int ok = json_is_object(o);
  for (size_t i = 0; ok && i < nd; i++) {
    char name[128];
    int64_t v;
    json_t *c = cli_parse_define(defines[i], name, sizeof(name), &v) == 0
                    ? json_object_get(o, name) : NULL;
    ok = json_is_integer(c) && json_integer_value(c) == v;
  }
  json_decref(o);
  return ok;
}

/* A task known only by its name in the history (a spec file tuned
 * elsewhere): the size -D picks among those measured, and the version of
 * its kernel measured last. 1 when the history has no such task, 2 when
 * -D leaves several sizes (a usage error), -1 after saying why not. */
static int best_from_history(best_ask *a, const cli_session_opts *o) {
  hist_best_query named = {.task = a->name};
  best_values sizes;
  if (values_of(a->h, &named, "size", &sizes) < 0) return -1;
  if (!sizes.len) return 1;
  size_t pick = 0, matches = 0;
  for (size_t i = 0; i < sizes.len; i++)
    if (size_matches(sizes.v[i], o->defines, o->ndefines)) {
      matches++;
      pick = i;
    }
  if (matches == 1) {
    a->size = sizes.v[pick];
    sizes.v[pick] = NULL;
  } else {
    char given[512] = "";
    size_t off = 0;
    for (size_t i = 0; i < o->ndefines && off < sizeof(given); i++)
      off += (size_t)snprintf(given + off, sizeof(given) - off, "%s%s", i ? " " : "",
                              o->defines[i]);
    if (matches)
      fprintf(stderr, "ktune best: task %s has trials at %zu sizes%s%s in %s:\n", a->name,
              matches, off ? " with " : "", given, a->db);
    else
      fprintf(stderr, "ktune best: task %s has no trial at %s in %s; the sizes it has there:\n",
              a->name, given, a->db);
    for (size_t i = 0; i < sizes.len; i++)
      if (!matches || size_matches(sizes.v[i], o->defines, o->ndefines))
        fprintf(stderr, "  %s (%lld %s)\n", sizes.v[i], (long long)sizes.n[i],
                sizes.n[i] == 1 ? "trial" : "trials");
    fprintf(stderr, "pick one with -D NAME=VALUE\n");
  }
  values_free(&sizes);
  if (!a->size) return matches > 1 ? 2 : -1;
  a->q.size_json = a->size;
  best_values kernels;
  if (values_of(a->h, &a->q, "kernel", &kernels) < 0) return -1;
  if (kernels.len) {
    snprintf(a->kernel, sizeof(a->kernel), "%s", kernels.v[0]);
    a->q.kernel = a->kernel;
    for (size_t i = 1; i < kernels.len; i++) a->other_versions += kernels.n[i];
  }
  values_free(&kernels);
  return 0;
}

/* The timing filter: the options given, the others at their defaults, as
 * `ktune tune` would record them; NULL when none that changes what is
 * measured was given. */
static int best_timing(const cli_session_opts *o, char **out) {
  *out = NULL;
  int given = 0;
  for (int i = 0; i < TIMING_NOPTS; i++)
    given |= timing_fields[i].identity &&
             *(const uint32_t *)((const char *)&o->timing + timing_fields[i].offset) != 0;
  if (!given) return 0;
  Ktune__Timing t = o->timing;
  char err[256];
  if (timing_fill(&t, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune best: %s\n", err);
    return -1;
  }
  return (*out = timing_json(&t)) ? 0 : -1;
}

static void best_usage(FILE *f) {
  fprintf(f,
          "usage: ktune best TASK [-D NAME=VALUE]... [--key KEY] [--compiler C]\n"
          "                  [--number N] [--repeat N] [--min-repeat-ms MS] [--cooldown-ms MS]\n"
          "                  [--flush-cache] [--db PATH] [--json] [--unchecked]\n"
          "                  [--emit FILE.c] [--emit-header FILE.h]\n"
          "       ktune best --workload FILE [--emit-dir DIR] [filters as above]\n"
          "The fastest config measured for exactly this kernel (template and spec, after\n"
          "-D) at this size, with its outputs checked against the reference (default\n"
          "--db ./ktune.db). TASK is a built-in task, a spec file, or the name of a task\n"
          "in the history (a spec file tuned elsewhere; -D then picks among its sizes).\n"
          "--compiler, --key and the timing options (as `ktune tune` takes them) narrow\n"
          "the trials; the answer names the filters and, for each one left open, the\n"
          "values the trials differ in. --unchecked also accepts trials measured with\n"
          "--no-check.\n"
          "--emit FILE.c writes the winner as one C file: the constants and knobs defined,\n"
          "then the template, with its entry function as the spec declares it; it builds\n"
          "into an application with no ktune header or library. --emit-header FILE.h\n"
          "writes the entry's prototype.\n"
          "--workload FILE (as `ktune tune --workload` takes it) answers for each of its\n"
          "tasks and sizes, and adds the end-to-end estimate, the weighted sum of their\n"
          "best latencies; --emit-dir DIR writes each winner there as TASK.c and TASK.h\n"
          "(a second size of one task as TASK_2.c, its function renamed to match).\n");
}

/* Options of `ktune tune` that say how to measure, not which trials: the
 * name of the one ch is, else NULL. */
static const char *best_refuses(const struct option *opts, int ch) {
  if (ch != CLI_OPT_TRACKER && ch != CLI_OPT_TOKEN_FILE && ch != CLI_OPT_NOCHECK &&
      ch != CLI_OPT_REMEASURE && ch != CLI_OPT_PRIO && ch != CLI_OPT_WAITTO)
    return NULL;
  while (opts->name && opts->val != ch) opts++;
  return opts->name ? opts->name : "that option";
}

/* --emit and --emit-header: the winner as C (cli/emit.c). */
static int best_emit(const best_ask *a, const hist_best_row *b, const char *c_path,
                     const char *h_path) {
  if (!a->t.name) {
    fprintf(stderr, "ktune best: cannot emit %s: its spec is not here and its session did not "
            "keep it; pass the spec file\n", a->name);
    return -1;
  }
  char lat[32], rate[32], err[512];
  cli_fmt_latency(lat, sizeof(lat), b->mean_s);
  cli_fmt_rate(rate, sizeof(rate), 0, b->gflops, 0);
  emit_winner w = {.task = &a->t, .config_json = b->config_json, .latency = lat, .rate = rate,
                   .key = or_dash(b->key), .compiler = or_dash(b->compiler), .db = a->db,
                   .trial = b->id, .session = b->session};
  if (emit_files(&w, c_path, h_path, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune best: %s\n", err);
    return -1;
  }
  if (c_path) fprintf(stderr, "wrote %s: %s with the winner's knobs\n", c_path, a->t.name);
  if (h_path) fprintf(stderr, "wrote %s: the prototype of %s\n", h_path, a->t.entry);
  return 0;
}

/* --workload FILE: every task's best and the end-to-end estimate. */
static int best_workload(const cli_session_opts *o, best_ask *a, const char *path,
                         const char *emit_dir, int extra_args, int single_only) {
  if (extra_args || o->ndefines || single_only) {
    fprintf(stderr, "ktune best: --workload names its tasks and sizes itself; it takes no "
                    "TASK, -D, --json, --emit or --emit-header (--emit-dir DIR writes them all)\n");
    return EXIT_USAGE;
  }
  if (o->key && cli_check_key("best", o->key) < 0) return EXIT_USAGE;
  if (best_timing(o, &a->timing) < 0) return EXIT_USAGE;
  workload *w;
  if (workload_load(path, &w) < 0) return EXIT_USAGE;
  hist_best_query q = {.key = o->key, .compiler = o->compiler, .timing_json = a->timing,
                       .checked_only = !a->unchecked};
  int rc = workload_best(w, o->db, &q, emit_dir);
  workload_free(w);
  return rc;
}

int cmd_best(int argc, char **argv) {
  enum { OPT_JSON = 300, OPT_UNCHECKED, OPT_EMIT, OPT_EMIT_HEADER, OPT_WORKLOAD, OPT_EMIT_DIR };
  static const struct option own[] = {{"json", no_argument, 0, OPT_JSON},
                                      {"unchecked", no_argument, 0, OPT_UNCHECKED},
                                      {"emit", required_argument, 0, OPT_EMIT},
                                      {"emit-header", required_argument, 0, OPT_EMIT_HEADER},
                                      {"workload", required_argument, 0, OPT_WORKLOAD},
                                      {"emit-dir", required_argument, 0, OPT_EMIT_DIR}};
  const struct option *opts = cli_session_longopts(own, sizeof(own) / sizeof(own[0]));
  cli_session_opts o;
  cli_session_defaults(&o, argc);
  /* NULL: any compiler, unless --compiler names one. */
  o.compiler = NULL;
  int json = 0, ch, rc = EXIT_USAGE;
  const char *emit_c = NULL, *emit_h = NULL, *workload_path = NULL, *emit_dir = NULL;
  best_ask a = {0};
  while ((ch = getopt_long(argc, argv, "D:h", opts, NULL)) != -1) {
    const char *refused = best_refuses(opts, ch);
    if (refused) {
      fprintf(stderr, "ktune best: --%s is about measuring; best reads the history (--db)\n",
              refused);
      goto out;
    }
    int shared = cli_session_option(&o, "best", ch, optarg);
    if (shared < 0) goto out;
    if (shared) continue;
    switch (ch) {
    case OPT_JSON: json = 1; break;
    case OPT_UNCHECKED: a.unchecked = 1; break;
    case OPT_EMIT: emit_c = optarg; break;
    case OPT_EMIT_HEADER: emit_h = optarg; break;
    case OPT_WORKLOAD: workload_path = optarg; break;
    case OPT_EMIT_DIR: emit_dir = optarg; break;
    case 'h': best_usage(stdout); rc = EXIT_OK; goto out;
    default: best_usage(stderr); goto out;
    }
  }
  if (emit_dir && !workload_path) {
    fprintf(stderr, "ktune best: --emit-dir goes with --workload; one task's winner goes to "
                    "--emit FILE.c\n");
    goto out;
  }
  if (workload_path) {
    rc = best_workload(&o, &a, workload_path, emit_dir, argc - optind, json || emit_c || emit_h);
    goto out;
  }
  if (argc - optind != 1) {
    fprintf(stderr, "ktune best: name one task\n");
    goto out;
  }
  if (o.key && cli_check_key("best", o.key) < 0) goto out;
  if (o.compiler && !o.compiler[0]) {
    fprintf(stderr, "ktune best: --compiler takes tcc or a compiler command line\n");
    goto out;
  }
  for (size_t i = 0; i < o.ndefines; i++) {
    char name[128];
    int64_t v;
    if (cli_parse_define(o.defines[i], name, sizeof(name), &v) < 0) {
      fprintf(stderr, "ktune best: -D takes NAME=VALUE with a whole number, not '%s'\n",
              o.defines[i]);
      goto out;
    }
  }
  if (best_timing(&o, &a.timing) < 0) goto out;
  a.db = o.db;
  a.q = (hist_best_query){.key = o.key, .compiler = o.compiler, .timing_json = a.timing,
                          .checked_only = !a.unchecked};
  char err[1024], path[4096];
  o.task_arg = argv[optind];
  int found = catalogue_find(o.task_arg, path, sizeof(path), err, sizeof(err)) == 0;
  size_t len = strlen(o.task_arg);
  /* A path that is not there is a mistake, not a name to look up. */
  if (!found && (strchr(o.task_arg, '/') || (len > 5 && !strcmp(o.task_arg + len - 5, ".json")))) {
    fprintf(stderr, "ktune best: %s\n", err);
    goto out;
  }
  if (found && cli_session_task("best", &o, &a.t) < 0) goto out;
  rc = EXIT_FAIL;
  if (found) {
    a.name = a.t.name;
    /* The digest of the kernel as it would be built now, constants
     * included: only its own trials answer for it. */
    if (!(a.size = space_consts_json(&a.t)) || ident_kernel(&a.t, a.kernel) < 0) {
      fprintf(stderr, "ktune best: cannot compute the identity of %s\n", a.name);
      goto out;
    }
    a.q.size_json = a.size;
    a.q.kernel = a.kernel;
  }
  char herr[512];
  if (hist_open_readonly(a.db, &a.h, herr, sizeof(herr)) < 0) {
    if (!found) fprintf(stderr, "ktune best: %s\n", err);
    fprintf(stderr, "ktune best: %s\n", herr);
    goto out;
  }
  a.q.task = a.name ? a.name : o.task_arg;
  if (!found) {
    a.name = o.task_arg;
    a.from_history = 1;
    int r = best_from_history(&a, &o);
    if (r == 1)
      fprintf(stderr, "ktune best: %s; nor has %s a trial of a task of that name\n", err, a.db);
    if (r != 0) {
      rc = r > 0 ? EXIT_USAGE : EXIT_FAIL;
      goto out;
    }
  }
  hist_best_row b;
  int got = hist_best(a.h, &a.q, &b);
  if (got < 0) {
    fprintf(stderr, "ktune best: %s\n", hist_errmsg(a.h));
  } else if (got == 0) {
    best_explain_none(&a);
  } else {
    if (a.from_history) spec_of_session(&a, b.session);
    int64_t matched = 0;
    best_values vals[NDIMS] = {0};
    int ok = hist_count_ok(a.h, &a.q, &matched) == 0;
    if (!ok) fprintf(stderr, "ktune best: %s\n", hist_errmsg(a.h));
    for (size_t d = 0; ok && d < NDIMS; d++) {
      hist_best_query l = lifted(&a.q, d);
      ok = values_of(a.h, &l, best_dims[d].col, &vals[d]) == 0;
    }
    if (ok && json) {
      rc = best_print_json(&a, &b, matched, vals) < 0 ? EXIT_FAIL : EXIT_OK;
    } else if (ok) {
      best_print_text(&a, &b, matched, vals);
      rc = EXIT_OK;
    }
    if (rc == EXIT_OK && (emit_c || emit_h) && best_emit(&a, &b, emit_c, emit_h) < 0)
      rc = EXIT_FAIL;
    for (size_t d = 0; d < NDIMS; d++) values_free(&vals[d]);
    hist_best_row_clear(&b);
  }
out:
  hist_close(a.h);
  free(a.size);
  free(a.timing);
  task_free(&a.t);
  cli_session_opts_free(&o);
  return rc;
}

int cmd_tasks(int argc, char **argv) {
  static const struct option opts[] = {{"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    if (ch != 'h') return EXIT_USAGE;
    printf("usage: ktune tasks\n"
           "The built-in tasks: their constants, knobs and the size of each one's space.\n");
    return EXIT_OK;
  }
  if (optind < argc) {
    fprintf(stderr, "ktune tasks: takes no arguments, not '%s' (`ktune tune TASK` tunes one)\n",
            argv[optind]);
    return EXIT_USAGE;
  }
  char **paths;
  size_t n;
  char err[1024];
  if (catalogue_list(&paths, &n, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune tasks: %s\n", err);
    return EXIT_FAIL;
  }
  int rc = EXIT_OK;
  for (size_t i = 0; i < n; i++) {
    task_spec t;
    space sp;
    if (task_load(paths[i], &t, err, sizeof(err)) < 0) {
      fprintf(stderr, "ktune tasks: %s\n", err);
      rc = EXIT_FAIL;
      free(paths[i]);
      continue;
    }
    printf("%s  (%s)\n  constants:", t.name, paths[i]);
    for (size_t k = 0; k < t.nconsts; k++)
      printf(" %s=%lld", t.consts[k].name, (long long)t.consts[k].value);
    printf("\n  knobs:");
    for (size_t k = 0; k < t.nknobs; k++) {
      printf(" %s[", t.knobs[k].name);
      for (size_t v = 0; v < t.knobs[k].nvalues; v++)
        printf("%s%lld", v ? "," : "", (long long)t.knobs[k].values[v]);
      printf("]");
    }
    uint64_t valid = 0;
    if (space_init(&sp, &t, err, sizeof(err)) == 0 && space_count_valid(&sp, 1u << 22, &valid) == 0)
      printf("\n  space: %llu configs, %llu meet the constraints\n\n", (unsigned long long)sp.size,
             (unsigned long long)valid);
    else
      printf("\n  space: %llu configs before constraints\n\n", (unsigned long long)sp.size);
    task_free(&t);
    free(paths[i]);
  }
  free(paths);
  return rc;
}
