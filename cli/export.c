/* ktune export, best and tasks: reading the history and the task folder. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/history.h"
#include "common/space.h"
#include "common/task.h"
#include "common/wire.h"

static int print_line(void *ctx, const char *line) {
  (void)ctx;
  return puts(line) < 0 ? -1 : 0;
}

static int export_remote(const char *tracker, const char *format) {
  char err[512];
  client c;
  if (client_connect(&c, tracker, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune export: %s\n", err);
    return EXIT_FAIL;
  }
  Ktune__ExportRequest req = KTUNE__EXPORT_REQUEST__INIT;
  req.format = (char *)format;
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_EXPORT_REQUEST;
  env.export_request = &req;
  int rc = client_send(&c, &env) < 0 ? EXIT_FAIL : EXIT_OK;
  while (rc == EXIT_OK) {
    Ktune__Envelope *m = client_recv(&c, 60000, err, sizeof(err));
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
  }
  client_close(&c);
  return rc;
}

int cmd_export(int argc, char **argv) {
  const char *db = NULL, *opt_tracker = NULL, *format = "jsonl";
  static const struct option opts[] = {{"db", required_argument, 0, 'd'},
                                       {"tracker", required_argument, 0, 't'},
                                       {"format", required_argument, 0, 'f'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (ch) {
    case 'd': db = optarg; break;
    case 't': opt_tracker = optarg; break;
    case 'f': format = optarg; break;
    case 'h':
      printf("usage: ktune export [--db PATH | --tracker HOST:PORT] [--format jsonl|csv]\n"
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
  const char *tracker = db ? NULL : cli_tracker(opt_tracker);
  if (db && opt_tracker) {
    fprintf(stderr, "ktune export: give --db or --tracker, not both\n");
    return EXIT_USAGE;
  }
  if (tracker) return export_remote(tracker, format);
  char err[512];
  hist *h;
  if (hist_open_readonly(db ? db : "ktune.db", &h, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune export: %s\n", err);
    return EXIT_FAIL;
  }
  int rc = hist_export(h, format, print_line, NULL, err, sizeof(err));
  hist_close(h);
  if (rc < 0) {
    fprintf(stderr, "ktune export: %s\n", err);
    return EXIT_FAIL;
  }
  return EXIT_OK;
}

int cmd_best(int argc, char **argv) {
  const char *db = "ktune.db", *key = NULL;
  int json = 0;
  char **defines = calloc((size_t)argc + 1, sizeof(char *));
  size_t nd = 0;
  int rc = EXIT_USAGE;
  static const struct option opts[] = {{"db", required_argument, 0, 'd'},
                                       {"key", required_argument, 0, 'k'},
                                       {"json", no_argument, 0, 'j'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "D:h", opts, NULL)) != -1) {
    switch (ch) {
    case 'D': defines[nd++] = optarg; break;
    case 'd': db = optarg; break;
    case 'k': key = optarg; break;
    case 'j': json = 1; break;
    case 'h':
      printf("usage: ktune best TASK [-D NAME=VALUE]... [--key KEY] [--db PATH] [--json]\n"
             "The fastest config measured for TASK at this size (default --db ./ktune.db).\n");
      rc = EXIT_OK;
      goto out;
    default: goto out;
    }
  }
  if (argc - optind != 1) {
    fprintf(stderr, "ktune best: name one task\n");
    goto out;
  }
  char err[1024], path[4096];
  task_spec t;
  if (task_find(argv[optind], path, sizeof(path), err, sizeof(err)) < 0 ||
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
  char *size = space_consts_json(&t);
  hist *h;
  rc = EXIT_FAIL;
  if (hist_open_readonly(db, &h, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune best: %s\n", err);
  } else {
    char *config = NULL, *compiler = NULL;
    double mean = 0, gflops = 0;
    int found = hist_best(h, t.name, size, key, &config, &mean, &gflops, &compiler);
    if (found == 1) {
      if (json)
        printf("{\"task\":\"%s\",\"size\":%s,\"config\":%s,\"mean_s\":%.9g,\"gflops\":%.6g}\n",
               t.name, size, config, mean, gflops);
      else
        printf("%s %s: %s  latency %.6g s, %.3f GFLOPS (%s)\n", t.name, size, config, mean,
               gflops, compiler);
      rc = EXIT_OK;
    } else if (found == 0) {
      fprintf(stderr, "ktune best: no successful trial of %s at %s%s%s in %s\n", t.name, size,
              key ? " on key " : "", key ? key : "", db);
    } else {
      fprintf(stderr, "ktune best: %s\n", hist_errmsg(h));
    }
    free(config);
    free(compiler);
    hist_close(h);
  }
  free(size);
  task_free(&t);
out:
  free(defines);
  return rc;
}

int cmd_tasks(int argc, char **argv) {
  (void)argc, (void)argv;
  char **paths;
  size_t n;
  char err[1024];
  if (task_list_builtin(&paths, &n, err, sizeof(err)) < 0) {
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
