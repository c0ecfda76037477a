/* Replay (--replay FILE): the tracker answers every trial from a recorded
 * history instead of a farm, as Kernel Tuner's simulation mode does, so
 * that strategies are compared and tested without timing noise. The
 * recording is a ktune history (SQLite) or its export as JSON lines; a
 * config is looked up by task, problem size and knob values, and one it
 * does not hold is a failed trial. A search sees only what it asked for. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tracker/tracker.h"

/* One recorded trial; the strings live as long as the tracker. */
struct replay_entry {
  char *key;               /* task, size and config (canonical), joined */
  char *status, *error, *clock, *compiler_id, *device_json;
  double *costs;
  size_t ncosts;
  uint32_t number;
  size_t order;            /* place in the recording: the first ok one answers */
};

struct replay {
  char *path;
  replay_entry *e;
  size_t n, cap;
  char *tasks;             /* what it holds, for the error when a task is missing */
};

/* task \x1f size \x1f config: the lookup key of a trial. */
static char *make_key(const char *task, const char *size, const char *config) {
  size_t n = strlen(task) + strlen(size) + strlen(config) + 3;
  char *k = malloc(n);
  if (k) snprintf(k, n, "%s\x1f%s\x1f%s", task, size, config);
  return k;
}

static char *dup_or_null(const char *s) {
  return s ? strdup(s) : NULL;
}

/* The canonical form the tracker writes: keys sorted, compact. */
static char *canonical(json_t *o) {
  return json_is_object(o) ? json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
}

static void entry_free(replay_entry *e) {
  free(e->key);
  free(e->status);
  free(e->error);
  free(e->clock);
  free(e->compiler_id);
  free(e->device_json);
  free(e->costs);
}

/* One exported trial; a line that is not one is skipped, since a
 * recording may be a hand-cut file. Returns -1 only out of memory. */
static int add_line(void *ctx, const char *line) {
  replay *r = ctx;
  json_error_t je;
  json_t *o = json_loads(line, 0, &je);
  const char *task = json_string_value(json_object_get(o, "task"));
  const char *status = json_string_value(json_object_get(o, "status"));
  char *size = canonical(json_object_get(o, "size"));
  char *config = canonical(json_object_get(o, "config"));
  json_t *costs = json_object_get(o, "costs_s");
  int rc = 0;
  if (task && status && size && config && json_is_array(costs)) {
    if (r->n == r->cap) {
      size_t cap = r->cap ? 2 * r->cap : 256;
      replay_entry *e = realloc(r->e, cap * sizeof *e);
      if (!e) rc = -1;
      else r->e = e, r->cap = cap;
    }
    if (rc == 0) {
      replay_entry *e = &r->e[r->n];
      memset(e, 0, sizeof *e);
      e->order = r->n;
      e->key = make_key(task, size, config);
      e->status = strdup(status);
      e->error = dup_or_null(json_string_value(json_object_get(o, "error")));
      e->clock = dup_or_null(json_string_value(json_object_get(o, "clock")));
      e->compiler_id = dup_or_null(json_string_value(json_object_get(o, "compiler_id")));
      e->device_json = canonical(json_object_get(o, "device"));
      e->number = (uint32_t)json_integer_value(json_object_get(o, "number"));
      e->ncosts = json_array_size(costs);
      e->costs = calloc(e->ncosts ? e->ncosts : 1, sizeof *e->costs);
      for (size_t i = 0; e->costs && i < e->ncosts; i++)
        e->costs[i] = json_number_value(json_array_get(costs, i));
      if (!e->key || !e->status || !e->costs) {
        entry_free(e);
        rc = -1;
      } else {
        r->n++;
      }
    }
  }
  free(size);
  free(config);
  json_decref(o);
  return rc;
}

/* By key; within a key the ok trials first, then the recording's order. */
static int by_key(const void *a, const void *b) {
  const replay_entry *x = a, *y = b;
  int c = strcmp(x->key, y->key);
  if (c) return c;
  int xo = strcmp(x->status, "ok") == 0, yo = strcmp(y->status, "ok") == 0;
  if (xo != yo) return yo - xo;
  return x->order < y->order ? -1 : x->order > y->order;
}

static int read_jsonl(replay *r, FILE *f, char *err, size_t errlen) {
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  int rc = 0;
  while (rc == 0 && (len = getline(&line, &cap, f)) > 0) rc = add_line(r, line);
  free(line);
  if (rc < 0) snprintf(err, errlen, "%s: out of memory reading the recording", r->path);
  return rc;
}

static int read_history(replay *r, char *err, size_t errlen) {
  hist *h;
  char herr[256];
  if (hist_open_readonly(r->path, &h, herr, sizeof herr) < 0) {
    snprintf(err, errlen, "%s", herr);
    return -1;
  }
  int rc = hist_export(h, "jsonl", add_line, r, herr, sizeof herr);
  hist_close(h);
  if (rc < 0) snprintf(err, errlen, "%s: %s", r->path, herr);
  return rc;
}

/* The length of a key's task and size. */
static size_t key_head(const char *k) {
  const char *a = strchr(k, '\x1f'), *b = a ? strchr(a + 1, '\x1f') : NULL;
  return b ? (size_t)(b - k) : strlen(k);
}

/* "matmul {"K":128,...} (1664 trials); ..." for each task and size held. */
static char *describe_tasks(const replay *r) {
  size_t cap = 1024, off = 0;
  char *out = calloc(cap, 1);
  for (size_t i = 0, j; out && i < r->n && off < cap - 1; i = j) {
    size_t head = key_head(r->e[i].key);
    for (j = i + 1; j < r->n && key_head(r->e[j].key) == head &&
                    strncmp(r->e[i].key, r->e[j].key, head) == 0;
         j++) {
    }
    int n = snprintf(out + off, cap - off, "%s%.*s (%zu trials)", off ? "; " : "", (int)head,
                     r->e[i].key, j - i);
    off = n < 0 || off + (size_t)n >= cap ? cap - 1 : off + (size_t)n;
  }
  for (char *p = out; p && *p; p++)
    if (*p == '\x1f') *p = ' ';
  return out;
}

int replay_load(tracker *t, const char *path, char *err, size_t errlen) {
  replay *r = calloc(1, sizeof *r);
  if (!r || !(r->path = strdup(path))) {
    free(r);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  FILE *f = fopen(path, "rb");
  char magic[16] = "";
  if (!f) {
    snprintf(err, errlen, "cannot read the recording %s: %m", path);
    replay_free(r);
    return -1;
  }
  size_t got = fread(magic, 1, sizeof magic, f);
  rewind(f);
  int rc = got == sizeof magic && memcmp(magic, "SQLite format 3", 16) == 0
               ? read_history(r, err, errlen)
               : read_jsonl(r, f, err, errlen);
  fclose(f);
  if (rc == 0 && r->n == 0) {
    snprintf(err, errlen, "the recording %s holds no trials (it must be a ktune history or "
                          "the output of `ktune export --format jsonl`)", path);
    rc = -1;
  }
  if (rc < 0) {
    replay_free(r);
    return -1;
  }
  qsort(r->e, r->n, sizeof *r->e, by_key);
  r->tasks = describe_tasks(r);
  t->replay = r;
  return 0;
}

void replay_free(replay *r) {
  if (!r) return;
  for (size_t i = 0; i < r->n; i++) entry_free(&r->e[i]);
  free(r->e);
  free(r->tasks);
  free(r->path);
  free(r);
}

/* The first entry whose key is `key` (exact) or starts with it. */
static const replay_entry *find(const replay *r, const char *key, int exact) {
  size_t lo = 0, hi = r->n, len = strlen(key);
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (strcmp(r->e[mid].key, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  if (lo >= r->n) return NULL;
  const char *k = r->e[lo].key;
  if (exact ? strcmp(k, key) != 0 : strncmp(k, key, len) != 0) return NULL;
  return &r->e[lo];
}

int replay_covers(const tracker *t, const session *s, char *err, size_t errlen) {
  char *prefix = make_key(s->task.name, s->size_json, "");
  const replay_entry *e = prefix ? find(t->replay, prefix, 0) : NULL;
  free(prefix);
  if (e) return 0;
  snprintf(err, errlen, "the recording %s has no trials of %s %s; it holds: %s",
           t->replay->path, s->task.name, s->size_json, t->replay->tasks ? t->replay->tasks : "?");
  return -1;
}

void replay_answer(const tracker *t, const session *s, const char *config_json, hist_trial *tr) {
  char *key = make_key(s->task.name, s->size_json, config_json);
  const replay_entry *e = key ? find(t->replay, key, 1) : NULL;
  free(key);
  memset(tr, 0, sizeof *tr);
  tr->runner = "replay";
  tr->builder = "replay";
  if (!e) {
    /* Not measured: to the search, as good as a kernel that failed. */
    tr->status = "RUNTIME_ERROR";
    tr->error = "replay: this config is not in the recording";
    return;
  }
  tr->status = e->status;
  tr->error = e->error;
  tr->costs = e->costs;
  tr->ncosts = strcmp(e->status, "ok") == 0 ? e->ncosts : 0;
  tr->number = e->number;
  tr->clock = e->clock;
  tr->compiler_id = e->compiler_id;
  tr->device_json = e->device_json;
}
