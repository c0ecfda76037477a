/* External sessions (strategy "external", `ktune measure`): the session
 * has no tuner; its client brings the configs (MeasureConfig), each tagged
 * with the client's line number, and gets each one's trial back
 * (TrialResult) as it is recorded, in whatever order trials end.
 *
 * A config is checked here against the session's space and answered at
 * once when it cannot be measured. The others wait here until
 * session_fill takes them (external_next) as it takes a tuner's
 * candidates, so that reuse, jobs and recording are the same as tune's.
 * A config that repeats one not answered yet waits for that answer, so
 * that the history answers it (unless the session remeasures).
 *
 * Below session.c: it is called by it, and calls only what lies lower
 * (sending, the registry, the history's export). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/text.h"
#include "common/wire.h"
#include "tracker/tracker.h"

#define WHO "tracker"
/* Configs of one session received and not answered yet: a client sends
 * more as results come back (ktune measure keeps well below this). */
#define EXTERNAL_WAITING_MAX 1024

typedef struct ext_config ext_config;
struct ext_config {
  uint64_t line;           /* the client's tag */
  uint64_t peer;           /* who sent it: its answer goes there */
  uint64_t index;          /* in the session's space */
  char *config;            /* canonical JSON of its knobs */
  ext_config *next;
  int64_t values[];        /* task.nknobs */
};

/* First in, first out. */
typedef struct {
  ext_config *head, **tail;
} ext_queue;

struct external {
  ext_queue ready;         /* session_fill may take these (counted in s->trials) */
  ext_queue held;          /* repeat a config ready or proposed: wait for its answer */
  ext_queue proposed;      /* taken: answered when a trial of their config is recorded */
  uint32_t waiting;        /* in all three */
  int closed;              /* the client said it sends no more (MeasureDone) */
};

static void queue_init(ext_queue *q) {
  q->head = NULL;
  q->tail = &q->head;
}

static void queue_push(ext_queue *q, ext_config *c) {
  c->next = NULL;
  *q->tail = c;
  q->tail = &c->next;
}

/* Takes out the first entry of config (the first of all for NULL). */
static ext_config *queue_take(ext_queue *q, const char *config) {
  for (ext_config **pp = &q->head; *pp; pp = &(*pp)->next) {
    ext_config *c = *pp;
    if (config && strcmp(c->config, config) != 0) continue;
    *pp = c->next;
    if (q->tail == &c->next) q->tail = pp;
    return c;
  }
  return NULL;
}

static int queue_has(const ext_queue *q, const char *config) {
  for (const ext_config *c = q->head; c; c = c->next)
    if (!strcmp(c->config, config)) return 1;
  return 0;
}

static void config_free(ext_config *c) {
  if (c) free(c->config);
  free(c);
}

static void queue_clear(ext_queue *q) {
  ext_config *c;
  while ((c = queue_take(q, NULL))) config_free(c);
}

external *external_new(void) {
  external *x = calloc(1, sizeof(*x));
  if (!x) return NULL;
  queue_init(&x->ready);
  queue_init(&x->held);
  queue_init(&x->proposed);
  return x;
}

void external_free(external *x) {
  if (!x) return;
  queue_clear(&x->ready);
  queue_clear(&x->held);
  queue_clear(&x->proposed);
  free(x);
}

static void send_result(tracker *t, uint64_t peer_id, uint64_t session_id, uint64_t line,
                        char *trial, char *error) {
  peer *p = registry_find(t, peer_id);
  if (!p || !p->c) return; /* it left: nobody to tell */
  Ktune__TrialResult r = KTUNE__TRIAL_RESULT__INIT;
  r.session_id = session_id;
  r.line = line;
  r.trial = trial ? trial : "";
  r.error = error ? error : "";
  core_send_msg(p, KTUNE__ENVELOPE__MSG_TRIAL_RESULT, &r);
}

/* The session p may feed: one of its own (or any, for an admin) that is
 * external and running. NULL after telling p why not. */
static session *fed_session(tracker *t, peer *p, uint64_t id) {
  session *s = t->sessions;
  while (s && s->id != id) s = s->next;
  if (!s || !s->ext) {
    conn_send_error(p->c, s ? "BAD_REQUEST" : "NO_SESSION",
                    s ? "session %llu is not an external session (ktune measure)"
                      : "no session %llu on this tracker", (unsigned long long)id);
    return NULL;
  }
  if (strcmp(s->owner, p->name) != 0 && !p->is_admin) {
    conn_send_error(p->c, "FORBIDDEN", "session %llu belongs to %s", (unsigned long long)id,
                    s->owner);
    return NULL;
  }
  if (s->ended_ms || s->ext->closed) {
    conn_send_error(p->c, "SESSION_ENDED", "session %llu %s", (unsigned long long)id,
                    s->ended_ms ? "has ended" : "was told that no more configs come");
    return NULL;
  }
  return s;
}

/* "MR, NV, VW": the knobs of s whose flag in `which` is `want` (all for
 * which NULL). */
static void knob_list(const session *s, const uint8_t *which, int want, char *out, size_t len) {
  size_t off = 0;
  out[0] = 0;
  for (size_t k = 0; k < s->task.nknobs && off < len; k++)
    if (!which || (which[k] != 0) == want)
      off += (size_t)snprintf(out + off, len - off, "%s%s", off ? ", " : "", s->task.knobs[k].name);
}

/* The config's knob values in spec order and its index; -1 with why it
 * cannot be measured. Names and values came over the network. */
static int config_values(const session *s, const Ktune__MeasureConfig *m, int64_t *vals,
                         uint64_t *index, char *why, size_t len) {
  const task_spec *task = &s->task;
  uint8_t seen[64] = {0};
  char list[512];
  for (size_t i = 0; i < m->n_config; i++) {
    const char *name = m->config[i]->name;
    size_t k = 0;
    while (k < task->nknobs && strcmp(task->knobs[k].name, name) != 0) k++;
    if (k == task->nknobs || seen[k]) {
      char *shown = text_clean(name, 64);
      knob_list(s, NULL, 0, list, sizeof(list));
      if (k < task->nknobs) snprintf(why, len, "knob %s is given twice", task->knobs[k].name);
      else snprintf(why, len, "unknown knob '%s' (the knobs of %s: %s)", shown ? shown : "?",
                    task->name, list);
      free(shown);
      return -1;
    }
    seen[k] = 1;
    vals[k] = m->config[i]->value;
  }
  if (m->n_config < task->nknobs) {
    knob_list(s, seen, 0, list, sizeof(list));
    snprintf(why, len, "missing knob%s %s", task->nknobs - m->n_config > 1 ? "s" : "", list);
    return -1;
  }
  for (size_t k = 0; k < task->nknobs; k++) {
    const task_knob *kn = &task->knobs[k];
    size_t v = 0;
    while (v < kn->nvalues && kn->values[v] != vals[k]) v++;
    if (v < kn->nvalues) continue;
    size_t off = 0;
    for (v = 0; v < kn->nvalues && off < sizeof(list); v++)
      off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%lld", v ? ", " : "",
                              (long long)kn->values[v]);
    snprintf(why, len, "%s=%lld is not one of %s's values (%s)", kn->name, (long long)vals[k],
             kn->name, list);
    return -1;
  }
  int ok = 0;
  char err[400] = "";
  if (space_index(&s->sp, vals, index) < 0 || space_valid(&s->sp, vals, &ok, err, sizeof(err)) < 0 ||
      !ok) {
    snprintf(why, len, "invalid config: %s", err[0] ? err : "not in the task's space");
    return -1;
  }
  return 0;
}

/* A new config: ready for session_fill, or held behind the same config
 * not answered yet. */
static void enqueue(session *s, ext_config *c) {
  external *x = s->ext;
  x->waiting++;
  if (queue_has(&x->ready, c->config) || queue_has(&x->proposed, c->config) ||
      queue_has(&x->held, c->config)) {
    queue_push(&x->held, c);
    return;
  }
  queue_push(&x->ready, c);
  s->trials++;
}

session *external_add(tracker *t, peer *p, const Ktune__MeasureConfig *m) {
  session *s = fed_session(t, p, m->session_id);
  if (!s) return NULL;
  size_t nk = s->task.nknobs;
  char why[1024];
  int64_t vals[64];
  uint64_t index = 0;
  if (nk > 64) {
    snprintf(why, sizeof(why), "task %s has %zu knobs; an external session takes at most 64",
             s->task.name, nk);
  } else if (s->ext->waiting >= EXTERNAL_WAITING_MAX) {
    snprintf(why, sizeof(why), "LIMIT: session %llu already has %u configs not answered yet; "
             "send more as results come back", (unsigned long long)s->id, s->ext->waiting);
  } else if (config_values(s, m, vals, &index, why, sizeof(why)) == 0) {
    ext_config *c = calloc(1, sizeof(*c) + (nk ? nk : 1) * sizeof(int64_t));
    char *config = space_config_json(&s->sp, vals);
    if (c && config) {
      c->line = m->line;
      c->peer = p->id;
      c->index = index;
      c->config = config;
      memcpy(c->values, vals, nk * sizeof(int64_t));
      enqueue(s, c);
      return s;
    }
    free(c);
    free(config);
    snprintf(why, sizeof(why), "the tracker is out of memory");
  }
  send_result(t, p->id, s->id, m->line, NULL, why);
  return NULL;
}

session *external_close(tracker *t, peer *p, const Ktune__MeasureDone *m) {
  session *s = fed_session(t, p, m->session_id);
  if (s) s->ext->closed = 1;
  return s;
}

int external_next(session *s, int64_t *values, uint64_t *index) {
  ext_config *c = queue_take(&s->ext->ready, NULL);
  if (!c) return 1;
  memcpy(values, c->values, s->task.nknobs * sizeof(int64_t));
  *index = c->index;
  queue_push(&s->ext->proposed, c);
  return 0;
}

void external_answer(tracker *t, session *s, const hist_trial *tr) {
  external *x = s->ext;
  ext_config *c = tr->config_json ? queue_take(&x->proposed, tr->config_json) : NULL;
  if (!c) {
    log_warn(WHO, "session %llu: a trial of a config nobody asked for", (unsigned long long)s->id);
    return;
  }
  char *line = NULL;
  int found = tr->id > 0 ? hist_export_trial(t->db, tr->id, &line) : 0;
  if (found <= 0)
    log_error(WHO, "session %llu: cannot read back trial %lld: %s", (unsigned long long)s->id,
              (long long)tr->id, found < 0 ? hist_errmsg(t->db) : "it was not recorded");
  send_result(t, c->peer, s->id, c->line, line,
              found > 0 ? NULL : "the trial could not be recorded (history error)");
  free(line);
  x->waiting--;
  /* The next repeat of this config may go now: the history answers it. */
  ext_config *again = queue_take(&x->held, c->config);
  if (again) {
    queue_push(&x->ready, again);
    s->trials++;
  }
  config_free(c);
}

int external_finished(const session *s) {
  const external *x = s->ext;
  return x->closed && !x->ready.head && !x->held.head && !x->proposed.head;
}

int external_orphaned(tracker *t, const session *s) {
  for (peer *p = t->peers; p; p = p->next)
    if (p->c && p->role == KTUNE__ROLE__ROLE_CLIENT && p->watching == s->id) return 0;
  return 1;
}
