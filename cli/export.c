/* ktune export, best and tasks: reading the history and the task folder. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/catalogue.h"
#include "cli/cli.h"
#include "common/history.h"
#include "common/identity.h"
#include "common/space.h"
#include "common/task.h"
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

/* A stored JSON text as a value: an object stays an object. */
static json_t *json_text(const char *text) {
  json_t *j = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
  return j ? j : json_null();
}

static json_t *json_opt_string(const char *s) { return s ? json_string(s) : json_null(); }

static const char *or_dash(const char *s) { return s && *s ? s : "-"; }

static int best_print_json(const task_spec *t, const char *size, const hist_best_row *b,
                           int unchecked) {
  json_t *o = json_object();
  json_object_set_new(o, "task", json_string(t->name));
  json_object_set_new(o, "size", json_text(size));
  json_object_set_new(o, "config", json_text(b->config_json));
  json_object_set_new(o, "mean_s", json_real(b->mean_s));
  json_object_set_new(o, "gflops", json_real(b->gflops));
  json_object_set_new(o, "compiler", json_opt_string(b->compiler));
  json_object_set_new(o, "compiler_id", json_opt_string(b->compiler_id));
  json_object_set_new(o, "key", json_opt_string(b->key));
  json_object_set_new(o, "runner", json_opt_string(b->runner));
  json_object_set_new(o, "builder", json_opt_string(b->builder));
  json_object_set_new(o, "timing", json_text(b->timing_json));
  json_object_set_new(o, "kernel", json_opt_string(b->kernel));
  json_object_set_new(o, "checked", json_boolean(b->checked));
  json_object_set_new(o, "unchecked_accepted", json_boolean(unchecked));
  json_object_set_new(o, "trial", json_integer(b->id));
  json_object_set_new(o, "session", b->session ? json_integer(b->session) : json_null());
  char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(o);
  if (!text) return -1;
  int rc = puts(text) < 0 ? -1 : 0;
  free(text);
  return rc;
}

static void best_print_text(const task_spec *t, const char *size, const hist_best_row *b,
                            int unchecked) {
  printf("%s %s: %s  latency %.6g s, %.3f GFLOPS\n", t->name, size, b->config_json, b->mean_s,
         b->gflops);
  printf("  compiler %s", or_dash(b->compiler));
  if (b->compiler_id) printf(" (%s)", b->compiler_id);
  printf(", key %s, runner %s, builder %s\n", or_dash(b->key), or_dash(b->runner),
         or_dash(b->builder));
  printf("  trial %lld", (long long)b->id);
  if (b->session) printf(" of session %lld", (long long)b->session);
  printf("\n");
  if (unchecked)
    printf("  --unchecked: trials measured with --no-check count too; this one's outputs %s\n",
           b->checked ? "were checked against the reference" : "were NOT checked");
}

/* Nothing of this kernel answered: say why, when the history can tell. */
static void best_explain_none(hist *h, const task_spec *t, const char *size,
                              const hist_best_query *q, const char *db) {
  int64_t n = 0;
  hist_best_query any = *q;
  any.checked_only = 0;
  if (q->checked_only && hist_count_ok(h, &any, &n) == 0 && n > 0) {
    fprintf(stderr,
            "ktune best: no checked trial of this exact kernel: %lld %s of task %s measured "
            "with --no-check; pass --unchecked to accept them\n",
            (long long)n, n == 1 ? "trial was" : "trials were", t->name);
    return;
  }
  any.kernel = NULL;
  if (hist_count_ok(h, &any, &n) == 0 && n > 0) {
    fprintf(stderr,
            "ktune best: no trial of this exact kernel: %lld %s of task %s measured from "
            "other template or spec versions\n",
            (long long)n, n == 1 ? "trial was" : "trials were", t->name);
    return;
  }
  fprintf(stderr, "ktune best: no successful trial of %s at %s%s%s in %s\n", t->name, size,
          q->key ? " on key " : "", q->key ? q->key : "", db);
}

int cmd_best(int argc, char **argv) {
  const char *db = "ktune.db", *key = NULL;
  int json = 0, unchecked = 0;
  char **defines = calloc((size_t)argc + 1, sizeof(char *));
  size_t nd = 0;
  int rc = EXIT_USAGE;
  static const struct option opts[] = {{"db", required_argument, 0, 'd'},
                                       {"key", required_argument, 0, 'k'},
                                       {"json", no_argument, 0, 'j'},
                                       {"unchecked", no_argument, 0, 'u'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "D:h", opts, NULL)) != -1) {
    switch (ch) {
    case 'D': defines[nd++] = optarg; break;
    case 'd': db = optarg; break;
    case 'k': key = optarg; break;
    case 'j': json = 1; break;
    case 'u': unchecked = 1; break;
    case 'h':
      printf("usage: ktune best TASK [-D NAME=VALUE]... [--key KEY] [--db PATH] [--json]\n"
             "                  [--unchecked]\n"
             "The fastest config measured for exactly this kernel (template and spec, after\n"
             "-D) at this size, with its outputs checked against the reference (default\n"
             "--db ./ktune.db). --unchecked also accepts trials measured with --no-check.\n");
      rc = EXIT_OK;
      goto out;
    default: goto out;
    }
  }
  if (argc - optind != 1) {
    fprintf(stderr, "ktune best: name one task\n");
    goto out;
  }
  if (key && cli_check_key("best", key) < 0) goto out;
  char err[1024], path[4096];
  task_spec t;
  if (catalogue_find(argv[optind], path, sizeof(path), err, sizeof(err)) < 0 ||
      task_load(path, &t, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune best: %s\n", err);
    goto out;
  }
  for (size_t i = 0; i < nd; i++) {
    char name[128];
    int64_t v;
    if (cli_parse_define(defines[i], name, sizeof(name), &v) < 0 ||
        task_set_const(&t, name, v, err, sizeof(err)) < 0) {
      fprintf(stderr, "ktune best: bad -D %s\n", defines[i]);
      task_free(&t);
      goto out;
    }
  }
  rc = EXIT_FAIL;
  /* The digest of the kernel as it would be built now, constants included:
   * only its own trials answer for it. */
  char kernel[IDENT_HEX];
  char *size = space_consts_json(&t);
  hist *h = NULL;
  if (!size || ident_kernel(&t, kernel) < 0) {
    fprintf(stderr, "ktune best: cannot compute the identity of %s\n", t.name);
  } else if (hist_open_readonly(db, &h, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune best: %s\n", err);
  } else {
    hist_best_query q = {.task = t.name, .kernel = kernel, .size_json = size, .key = key,
                         .checked_only = !unchecked};
    hist_best_row b;
    int found = hist_best(h, &q, &b);
    if (found == 1) {
      if (json)
        rc = best_print_json(&t, size, &b, unchecked) < 0 ? EXIT_FAIL : EXIT_OK;
      else {
        best_print_text(&t, size, &b, unchecked);
        rc = EXIT_OK;
      }
      hist_best_row_clear(&b);
    } else if (found == 0) {
      best_explain_none(h, &t, size, &q, db);
    } else {
      fprintf(stderr, "ktune best: %s\n", hist_errmsg(h));
    }
  }
  hist_close(h);
  free(size);
  task_free(&t);
out:
  free(defines);
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
