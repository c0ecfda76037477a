/* `ktune tune --workload FILE`: an application's kernels tuned together.
 * People tune a network or a program, not one kernel; what they want is
 * its end-to-end time, the weighted sum of each task's best latency
 * (weight: how often the kernel runs per application step).
 *
 * The budget (--trials) is spent a batch (--batch) at a time, each batch a
 * session of one task on the same farm. After one batch each, every next
 * batch goes where it is expected to cut the weighted total most, in the
 * spirit of Ansor's task scheduler: a task's weighted latency times how
 * fast it has been improving (its last batch) and how much it might still
 * improve (its best over the trials it has had). A task whose last three
 * batches improved nothing gets no more; when all have stopped, the
 * workload ends early. A learning search starts each batch from the
 * earlier trials of its kernel, so a task's batches make one search. */
#include "cli/workload.h"

#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/catalogue.h"
#include "cli/emit.h"
#include "cli/format.h"
#include "common/history.h"
#include "common/identity.h"
#include "common/space.h"
#include "common/wire.h"

#define WORKLOAD_MAX_TASKS 64
/* Batches in a row that improved nothing before a task gets no more. */
#define WORKLOAD_STALL 3
/* Ansor's mix of the backward (recent improvement) and forward (room
 * left) estimates of a task's gain per trial. */
#define WORKLOAD_ALPHA 0.2

typedef struct {
  task_spec t;
  char *label;       /* "matmul {"K":512,...}" */
  double weight;
  double best_s;     /* best latency so far; 0: none */
  double before_s;   /* best before its last batch */
  uint32_t trials, batches, stalled;
  json_t *best;      /* the best session's best, for --json */
  json_t *failures;
  json_t *sessions;
  int done;          /* gets no more trials */
} wl_task;

struct workload {
  wl_task tasks[WORKLOAD_MAX_TASKS];
  size_t n;
  char run[17];      /* this run's id: its sessions say it, for `ktune report` */
  char file[256];    /* the file's name, for the same */
};

size_t workload_size(const workload *w) { return w->n; }

void workload_free(workload *w) {
  if (!w) return;
  for (size_t i = 0; i < w->n; i++) {
    task_free(&w->tasks[i].t);
    free(w->tasks[i].label);
    json_decref(w->tasks[i].best);
    json_decref(w->tasks[i].failures);
    json_decref(w->tasks[i].sessions);
  }
  free(w);
}

/* A spec path in the file is relative to the file's folder. */
static int wl_resolve(const char *file, const char *name, char *out, size_t len) {
  size_t n = strlen(name);
  int is_path = strchr(name, '/') || (n > 5 && !strcmp(name + n - 5, ".json"));
  if (!is_path || name[0] == '/') return snprintf(out, len, "%s", name) < (int)len ? 0 : -1;
  char *copy = strdup(file);
  if (!copy) return -1;
  int rc = snprintf(out, len, "%s/%s", dirname(copy), name) < (int)len ? 0 : -1;
  free(copy);
  return rc;
}

static int wl_bad(const char *path, size_t i, const char *fmt, const char *what) {
  fprintf(stderr, "ktune tune: %s: tasks[%zu]: ", path, i);
  fprintf(stderr, fmt, what);
  fprintf(stderr, "\n");
  return -1;
}

/* One entry of "tasks": its spec, its constants, its weight. */
static int wl_task_load(const char *path, size_t i, json_t *e, wl_task *wt) {
  const char *name = json_string_value(json_object_get(e, "task"));
  if (!json_is_object(e) || !name)
    return wl_bad(path, i, "%s", "needs \"task\": a built-in task or a spec file");
  const char *key;
  json_t *v;
  json_object_foreach(e, key, v)
    if (strcmp(key, "task") && strcmp(key, "constants") && strcmp(key, "weight"))
      return wl_bad(path, i, "unknown field '%s' (expected task, constants, weight)", key);
  json_t *wj = json_object_get(e, "weight");
  wt->weight = wj ? json_number_value(wj) : 1;
  if (wj && (!json_is_number(wj) || !(wt->weight > 0) || !isfinite(wt->weight)))
    return wl_bad(path, i, "%s", "\"weight\" must be a positive number (runs per step)");
  char spec[4096], where[4096], err[1024];
  if (wl_resolve(path, name, spec, sizeof(spec)) < 0)
    return wl_bad(path, i, "task '%s' is too long a path", name);
  if (catalogue_find(spec, where, sizeof(where), err, sizeof(err)) < 0 ||
      task_load(where, &wt->t, err, sizeof(err)) < 0)
    return wl_bad(path, i, "%s", err);
  json_t *consts = json_object_get(e, "constants");
  if (consts && !json_is_object(consts))
    return wl_bad(path, i, "%s", "\"constants\" must be an object of whole numbers");
  json_object_foreach(consts, key, v) {
    if (!json_is_integer(v))
      return wl_bad(path, i, "constant '%s' must be a whole number", key);
    if (task_set_const(&wt->t, key, json_integer_value(v), err, sizeof(err)) < 0)
      return wl_bad(path, i, "%s", err);
  }
  if (task_check(&wt->t, err, sizeof(err)) < 0) return wl_bad(path, i, "%s", err);
  json_t *size = json_object();
  for (size_t k = 0; k < wt->t.nconsts; k++)
    json_object_set_new(size, wt->t.consts[k].name, json_integer(wt->t.consts[k].value));
  char *text = json_dumps(size, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(size);
  size_t len = strlen(wt->t.name) + (text ? strlen(text) : 0) + 2;
  wt->label = malloc(len);
  if (wt->label) snprintf(wt->label, len, "%s %s", wt->t.name, text ? text : "");
  free(text);
  wt->failures = json_object();
  wt->sessions = json_array();
  wt->best = json_null();
  return wt->label && wt->failures && wt->sessions ? 0 : wl_bad(path, i, "%s", "out of memory");
}

int workload_load(const char *path, workload **out) {
  *out = NULL;
  json_error_t je;
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
  if (!root) {
    fprintf(stderr, "ktune tune: --workload %s: %s (line %d)\n", path, je.text, je.line);
    return -1;
  }
  json_t *tasks = json_object_get(root, "tasks");
  size_t n = json_array_size(tasks);
  if (!json_is_object(root) || !json_is_array(tasks) || n == 0 || n > WORKLOAD_MAX_TASKS) {
    fprintf(stderr, "ktune tune: --workload %s: expected {\"tasks\": [{\"task\": ..., "
                    "\"constants\": {...}, \"weight\": N}, ...]} with 1 to %d tasks\n",
            path, WORKLOAD_MAX_TASKS);
    json_decref(root);
    return -1;
  }
  workload *w = calloc(1, sizeof(*w));
  int rc = w ? 0 : -1;
  uint64_t run = 0;
  if (w) {
    if (getrandom(&run, sizeof(run), 0) != (ssize_t)sizeof(run)) run = (uint64_t)time(NULL);
    snprintf(w->run, sizeof(w->run), "%016llx", (unsigned long long)run);
    char *copy = strdup(path);
    snprintf(w->file, sizeof(w->file), "%s", copy ? basename(copy) : "workload");
    free(copy);
  }
  for (size_t i = 0; rc == 0 && i < n; i++) {
    rc = wl_task_load(path, i, json_array_get(tasks, i), &w->tasks[i]);
    w->n = i + 1;
  }
  json_decref(root);
  if (rc < 0) {
    workload_free(w);
    return -1;
  }
  *out = w;
  return 0;
}

/* The weighted sum of the bests; NAN while a task has none. */
static double wl_end_to_end(const workload *w) {
  double sum = 0;
  for (size_t i = 0; i < w->n; i++) {
    if (!(w->tasks[i].best_s > 0)) return NAN;
    sum += w->tasks[i].weight * w->tasks[i].best_s;
  }
  return sum;
}

/* Expected cut in weighted seconds per trial of task i's next batch. */
static double wl_gain(const wl_task *t) {
  if (t->done || !(t->best_s > 0)) return t->done ? -1 : INFINITY;
  double backward = (t->before_s - t->best_s) / (t->batches ? t->trials / t->batches : 1);
  double forward = t->best_s / t->trials;
  return t->weight * (WORKLOAD_ALPHA * (backward > 0 ? backward : 0) +
                      (1 - WORKLOAD_ALPHA) * forward);
}

static void wl_print(const workload *w, uint32_t spent, uint32_t budget) {
  size_t width = 0;
  for (size_t i = 0; i < w->n; i++)
    if (strlen(w->tasks[i].label) > width) width = strlen(w->tasks[i].label);
  if (width > 48) width = 48;
  for (size_t i = 0; i < w->n; i++) {
    const wl_task *t = &w->tasks[i];
    char lat[32] = "-", rate[32] = "";
    if (t->best_s > 0) {
      cli_fmt_latency(lat, sizeof(lat), t->best_s);
      snprintf(rate, sizeof(rate), "  x%-4g = ", t->weight);
      char part[32];
      cli_fmt_latency(part, sizeof(part), t->best_s * t->weight);
      strncat(rate, part, sizeof(rate) - strlen(rate) - 1);
    }
    printf("  %-*.*s  trials %4u  best %10s%s%s\n", (int)width, (int)width, t->label, t->trials,
           lat, rate, t->done ? "  (stopped improving)" : "");
  }
  double e2e = wl_end_to_end(w);
  char total[32] = "-";
  if (!isnan(e2e)) cli_fmt_latency(total, sizeof(total), e2e);
  printf("[%u/%u] end to end (weighted sum of the bests): %s\n", spent, budget, total);
  fflush(stdout);
}

/* One batch of task i: a session of `trials` on the farm, followed
 * quietly; its outcome updates the task. */
static int wl_batch(workload *w, size_t i, const cli_session_opts *base, const cli_dial *d,
                    uint32_t trials, uint32_t round, int last) {
  wl_task *t = &w->tasks[i];
  cli_session_opts o = *base;
  o.trials = trials;
  o.batch = trials;
  o.seed = base->seed + round;
  /* A batch is a slice of a search, not its end: only a task's last
   * confirms, and it confirms the best of all its batches (the tracker
   * takes the earlier ones from the history). */
  if (!last) o.confirm = 0;
  json_t *tag = json_pack("{s:s, s:s, s:f}", "run", w->run, "file", w->file, "weight",
                          t->weight);
  char *tag_text = tag ? json_dumps(tag, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(tag);
  o.workload = tag_text;
  client c;
  int rc;
  Ktune__Envelope *m = cli_session_submit("tune", &o, d, &t->t, &c, &rc);
  free(tag_text);
  if (!m) return rc;
  uint64_t id = m->accepted->session_id;
  wire_free(m);
  Ktune__Envelope *final = NULL;
  rc = cli_follow(&c, id, CLI_FOLLOW_SILENT, &final);
  client_close(&c);
  const Ktune__SessionProgress *p = final ? final->progress : NULL;
  if (p) {
    t->trials += p->trials_done;
    t->batches++;
    t->before_s = t->best_s;
    if (p->n_best_config && p->best_latency_s > 0 &&
        (!(t->best_s > 0) || p->best_latency_s < t->best_s)) {
      t->best_s = p->best_latency_s;
      json_decref(t->best);
      t->best = cli_best_json(p);
      json_object_set_new(t->best, "session", json_integer((json_int_t)id));
    }
    t->stalled = t->before_s > 0 && t->best_s >= t->before_s ? t->stalled + 1 : 0;
    if (last && p->confirmed_latency_s > 0) {
      /* The confirmed winner, whichever batch found it. */
      t->best_s = p->best_latency_s;
      json_decref(t->best);
      t->best = cli_best_json(p);
      json_object_set_new(t->best, "session", json_integer((json_int_t)id));
    }
    cli_add_failures(t->failures, p);
    json_array_append_new(t->sessions, json_integer((json_int_t)id));
  }
  wire_free(final);
  /* A batch that measured nothing is the task's trouble, not the run's:
   * say it and go on with the others. */
  if (rc == EXIT_FAIL && p && p->state == WIRE_SESSION(DONE)) rc = EXIT_OK;
  if (rc != EXIT_OK) {
    fprintf(stderr, "ktune tune: %s: its batch (session %llu) ended without a result; it gets "
                    "no more trials\n", t->label, (unsigned long long)id);
    t->done = 1;
  }
  if (t->stalled >= WORKLOAD_STALL) t->done = 1;
  return EXIT_OK;
}

int workload_run(workload *w, const cli_session_opts *o, const cli_dial *d) {
  uint32_t budget = o->trials, batch = o->batch ? o->batch : 8, spent = 0, round = 0;
  /* A trial per task is kept for the end, whose session confirms it. */
  uint32_t reserve = o->confirm && budget >= 2 * w->n ? (uint32_t)w->n : 0;
  budget -= reserve;
  printf("workload: %zu tasks, %u trials in batches of %u, strategy %s\n", w->n, budget, batch,
         o->strategy);
  /* One batch each first: nothing can be compared before. */
  for (size_t i = 0; i < w->n && spent < budget; i++) {
    uint32_t n = budget - spent < batch ? budget - spent : batch;
    int rc = wl_batch(w, i, o, d, n, round++, 0);
    if (rc != EXIT_OK) return rc;
    spent += n;
    wl_print(w, spent, budget + reserve);
  }
  while (spent < budget) {
    size_t pick = 0;
    double g = -1;
    for (size_t i = 0; i < w->n; i++)
      if (wl_gain(&w->tasks[i]) > g) g = wl_gain(&w->tasks[i]), pick = i;
    if (g < 0) {
      printf("every task stopped improving: %u of %u trials left unspent\n", budget - spent,
             budget);
      break;
    }
    uint32_t n = budget - spent < batch ? budget - spent : batch;
    int rc = wl_batch(w, pick, o, d, n, round++, 0);
    if (rc != EXIT_OK) return rc;
    spent += n;
    wl_print(w, spent, budget + reserve);
  }
  if (reserve) {
    printf("confirming each task's best configs, measured again taking turns on one runner\n");
    for (size_t i = 0; i < w->n; i++) {
      if (!(w->tasks[i].best_s > 0)) continue;
      int rc = wl_batch(w, i, o, d, 1, round++, 1);
      if (rc != EXIT_OK) return rc;
      spent++;
    }
    wl_print(w, spent, budget + reserve);
  }
  for (size_t i = 0; i < w->n; i++)
    if (w->tasks[i].best_s > 0) return EXIT_OK;
  fprintf(stderr, "ktune tune: no task of the workload measured a config successfully\n");
  return EXIT_FAIL;
}

int workload_json(const workload *w, FILE *out) {
  json_t *tasks = json_array();
  for (size_t i = 0; i < w->n; i++) {
    const wl_task *t = &w->tasks[i];
    json_t *size = json_object();
    for (size_t k = 0; k < t->t.nconsts; k++)
      json_object_set_new(size, t->t.consts[k].name, json_integer(t->t.consts[k].value));
    json_array_append_new(tasks, json_pack("{s:s, s:o, s:f, s:O, s:i, s:O, s:O, s:b}", "task",
                                           t->t.name, "size", size, "weight", t->weight, "best",
                                           t->best, "trials", (json_int_t)t->trials, "failures",
                                           t->failures, "sessions", t->sessions,
                                           "stopped_improving", t->stalled >= WORKLOAD_STALL));
  }
  double e2e = wl_end_to_end(w);
  json_t *all = json_pack("{s:o, s:o}", "tasks", tasks, "end_to_end_s",
                          isnan(e2e) ? json_null() : json_real(e2e));
  int rc = all && json_dumpf(all, out, JSON_COMPACT) == 0 && fputc('\n', out) != EOF &&
           fflush(out) == 0 ? 0 : -1;
  json_decref(all);
  return rc;
}

/* The n-th task of w with this name before index i: 0 for the first. */
static int wl_same_name(const workload *w, size_t i) {
  int n = 0;
  for (size_t k = 0; k < i; k++) n += !strcmp(w->tasks[k].t.name, w->tasks[i].t.name);
  return n;
}

int workload_best(const workload *w, const char *db, const hist_best_query *filters,
                  const char *emit_dir) {
  char err[512];
  hist *h = NULL;
  if (hist_open_readonly(db, &h, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune best: %s\n", err);
    return EXIT_FAIL;
  }
  if (emit_dir && mkdir(emit_dir, 0777) < 0 && errno != EEXIST) {
    fprintf(stderr, "ktune best: cannot create %s: %s\n", emit_dir, strerror(errno));
    hist_close(h);
    return EXIT_FAIL;
  }
  double e2e = 0;
  int missing = 0, rc = EXIT_OK;
  for (size_t i = 0; i < w->n && rc == EXIT_OK; i++) {
    const wl_task *t = &w->tasks[i];
    char kernel[IDENT_HEX];
    char *size = space_consts_json(&t->t);
    hist_best_query q = *filters;
    q.task = t->t.name;
    q.size_json = size;
    q.kernel = kernel;
    hist_best_row b;
    int got = size && ident_kernel(&t->t, kernel) == 0 ? hist_best(h, &q, &b) : -1;
    free(size);
    if (got < 0) {
      fprintf(stderr, "ktune best: %s: %s\n", t->label, hist_errmsg(h));
      rc = EXIT_FAIL;
      break;
    }
    if (got == 0) {
      printf("  %s  weight %g  no trial of this kernel and size in %s\n", t->label, t->weight,
             db);
      missing = 1;
      continue;
    }
    char lat[32], rate[32];
    cli_fmt_latency(lat, sizeof(lat), b.mean_s);
    cli_fmt_rate(rate, sizeof(rate), 0, b.gflops, 0);
    printf("  %s  weight %g  best %s, %s  %s (trial %lld)\n", t->label, t->weight, lat, rate,
           b.config_json, (long long)b.id);
    e2e += t->weight * b.mean_s;
    if (emit_dir) {
      /* Two sizes of one task: the second and later get _2, _3, ... on
       * their files and functions, so all link into one program. */
      char suffix[16] = "", c_path[4096], h_path[4096];
      int dup = wl_same_name(w, i);
      if (dup) snprintf(suffix, sizeof(suffix), "_%d", dup + 1);
      snprintf(c_path, sizeof(c_path), "%s/%s%s.c", emit_dir, t->t.name, suffix);
      snprintf(h_path, sizeof(h_path), "%s/%s%s.h", emit_dir, t->t.name, suffix);
      emit_winner ew = {.task = &t->t, .config_json = b.config_json, .latency = lat,
                        .rate = rate, .key = b.key ? b.key : "-",
                        .compiler = b.compiler ? b.compiler : "-", .db = db, .trial = b.id,
                        .session = b.session, .suffix = suffix};
      if (emit_files(&ew, c_path, h_path, err, sizeof(err)) < 0) {
        fprintf(stderr, "ktune best: %s\n", err);
        rc = EXIT_FAIL;
      } else {
        printf("    wrote %s and %s (%s%s)\n", c_path, h_path, t->t.entry, suffix);
      }
    }
    hist_best_row_clear(&b);
  }
  hist_close(h);
  if (rc != EXIT_OK) return rc;
  if (missing) {
    printf("end to end: not known while a task has no trial (tune it: ktune tune --workload)\n");
    return EXIT_FAIL;
  }
  char total[32];
  cli_fmt_latency(total, sizeof(total), e2e);
  printf("end to end (weighted sum of the bests): %s\n", total);
  return EXIT_OK;
}
