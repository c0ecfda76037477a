/* Where unfinished jobs are kept so that handing one out costs the same
 * however many wait: each session holds its build-queued and run-queued
 * jobs in two lists, oldest first; each device key lists its sessions
 * and counts what waits there; every job is found by id in a hash
 * table. A job changes state only through queue_set, which keeps the
 * lists and counts true. */
#include <stdlib.h>
#include <string.h>

#include "tracker/tracker.h"

/* Index buckets to start with; the table doubles past one job per bucket. */
#define QUEUE_INDEX_MIN 1024

static int queue_of(enum job_state st) {
  return st == JOB_BUILD_QUEUED ? QUEUE_BUILD : st == JOB_RUN_QUEUED ? QUEUE_RUN : -1;
}

keyq *queue_key(tracker *t, const char *key) {
  for (keyq *k = t->keys; k; k = k->next)
    if (!strcmp(k->key, key)) return k;
  return NULL;
}

keyq *queue_key_make(tracker *t, const char *key) {
  keyq *k = queue_key(t, key);
  if (k) return k;
  k = calloc(1, sizeof(*k));
  if (!k || !(k->key = strdup(key))) {
    free(k);
    return NULL;
  }
  k->next = t->keys;
  t->keys = k;
  t->tally_due = 1;
  return k;
}

int queue_session_join(tracker *t, session *s) {
  if (s->kq) return 0;
  keyq *k = queue_key_make(t, s->key);
  if (!k || share_join(t, s, k) < 0) return -1;
  s->kq = k;
  s->home = t;
  s->kq_prev = NULL;
  s->kq_next = k->sessions;
  if (k->sessions) k->sessions->kq_prev = s;
  k->sessions = s;
  return 0;
}

void queue_session_leave(tracker *t, session *s) {
  keyq *k = s->kq;
  if (!k) return;
  share_leave(s);
  if (s->kq_prev) s->kq_prev->kq_next = s->kq_next;
  else k->sessions = s->kq_next;
  if (s->kq_next) s->kq_next->kq_prev = s->kq_prev;
  s->kq = NULL;
  queue_key_release(t, k);
}

void queue_key_release(tracker *t, keyq *k) {
  if (k->sessions || k->runners) return;
  for (keyq **pp = &t->keys; *pp; pp = &(*pp)->next)
    if (*pp == k) {
      *pp = k->next;
      break;
    }
  free(k->key);
  free(k);
}

/* ---- the index by id ---- */

static size_t bucket(const tracker *t, uint64_t id) {
  return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 20) & (t->jindex_cap - 1);
}

static int index_grow(tracker *t) {
  size_t cap = t->jindex_cap ? t->jindex_cap * 2 : QUEUE_INDEX_MIN;
  job **nb = calloc(cap, sizeof(*nb));
  if (!nb) return t->jindex_cap ? 0 : -1; /* a fuller table still works */
  job **old = t->jindex;
  size_t ocap = t->jindex_cap;
  t->jindex = nb;
  t->jindex_cap = cap;
  for (size_t i = 0; i < ocap; i++)
    for (job *j = old[i], *next; j; j = next) {
      next = j->hnext;
      size_t b = bucket(t, j->id);
      j->hnext = nb[b];
      nb[b] = j;
    }
  free(old);
  return 0;
}

job *queue_find(tracker *t, uint64_t id) {
  if (!t->jindex_cap) return NULL;
  for (job *j = t->jindex[bucket(t, id)]; j; j = j->hnext)
    if (j->id == id) return j;
  return NULL;
}

/* ---- states ---- */

/* Built (or building) and not yet running: what limits how far builders
 * run ahead of a key's runners. A confirmation run waiting for its turn
 * does not: its candidates take turns, and one that could not be built
 * because the others wait would never have its turn. */
static int builds_ahead(const job *j) {
  return (j->state == JOB_BUILDING || j->state == JOB_RUN_QUEUED) && !j->confirm;
}

/* What j's state adds to its session's and key's lists and counts. */
static void enter(tracker *t, job *j) {
  session *s = j->s;
  if (!s) return;
  int q = queue_of(j->state);
  if (builds_ahead(j)) s->kq->ahead++, share_ahead(s, 1);
  if (q < 0) return;
  /* Oldest first: a new job goes last, a job sent back walks to its place. */
  job *after = s->qtail[q];
  while (after && after->id > j->id) after = after->qprev;
  j->qprev = after;
  j->qnext = after ? after->qnext : s->qhead[q];
  if (j->qnext) j->qnext->qprev = j;
  else s->qtail[q] = j;
  if (after) after->qnext = j;
  else s->qhead[q] = j;
  s->queued[q]++;
  s->kq->queued[q]++;
  t->queued[q]++;
}

static void leave(tracker *t, job *j) {
  session *s = j->s;
  if (!s) return;
  int q = queue_of(j->state);
  if (builds_ahead(j)) s->kq->ahead--, share_ahead(s, -1);
  if (q < 0) return;
  if (j->qprev) j->qprev->qnext = j->qnext;
  else s->qhead[q] = j->qnext;
  if (j->qnext) j->qnext->qprev = j->qprev;
  else s->qtail[q] = j->qprev;
  j->qnext = j->qprev = NULL;
  s->queued[q]--;
  s->kq->queued[q]--;
  t->queued[q]--;
}

int queue_add(tracker *t, job *j) {
  /* A resumed session queues its jobs before it is linked. */
  if (queue_session_join(t, j->s) < 0) return -1;
  if (t->jindex_n >= t->jindex_cap && index_grow(t) < 0) return -1;
  size_t b = bucket(t, j->id);
  j->hnext = t->jindex[b];
  t->jindex[b] = j;
  t->jindex_n++;
  j->state = JOB_BUILD_QUEUED;
  j->s->outstanding++;
  enter(t, j);
  return 0;
}

void queue_set(tracker *t, job *j, enum job_state st) {
  leave(t, j);
  j->state = st;
  if (st == JOB_RUN_QUEUED) j->runnable_ns = uv_hrtime();
  enter(t, j);
}

void queue_detach(tracker *t, job *j) {
  if (!j->s) return;
  leave(t, j);
  j->s->outstanding--;
  j->s = NULL;
}

void queue_remove(tracker *t, job *j) {
  queue_detach(t, j);
  if (!t->jindex_cap) return;
  for (job **pp = &t->jindex[bucket(t, j->id)]; *pp; pp = &(*pp)->hnext)
    if (*pp == j) {
      *pp = j->hnext;
      t->jindex_n--;
      return;
    }
}

void queue_free_all(tracker *t) {
  free(t->jindex);
  t->jindex = NULL;
  t->jindex_cap = t->jindex_n = 0;
  while (t->keys) {
    keyq *k = t->keys;
    t->keys = k->next;
    free(k->key);
    free(k);
  }
}
