/* Fair shares of a key's runners (docs/OPERATIONS.md, "Sharing a farm").
 * Each owner of sessions on a key has a record of the runner seconds its
 * runs held there, from the lease to the result or the loss, decayed with
 * a half-life so that the past fades. Owners take turns by that time over
 * their weight, and an owner's sessions by their own time: runner
 * seconds, not trials, so a kernel ten times as slow costs ten times as
 * much. What is running now, and for builds what is built ahead, counts
 * at the average run, so that the jobs handed out in one turn, or built
 * ahead of the runners, do not all go to the owner who was behind.
 * Only an admin's priority reaches across owners; a client's orders its
 * own sessions. Comparing two sessions costs a few multiplications: a
 * pick stays one pass over its key's sessions. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tracker/tracker.h"

/* A record nobody refers to is dropped once its runner time has faded
 * below this many seconds. */
#define SHARE_FORGET_S 1e-3
/* Weight of the newest run in the average run. */
#define AVG_NEW 0.2

static void decay(const tracker *t, share_use *u, uint64_t now) {
  if (now <= u->used_ms) return;
  u->used_s *= exp2(-(double)(now - u->used_ms) / (1e3 * t->opts.share_half_life_s));
  u->used_ms = now;
}

/* Runner seconds as turns count them: used, and what is running (for a
 * build also what is built ahead) at the average run. */
static double level(const tracker *t, share_use *u, int for_build) {
  decay(t, u, uv_now(t->loop));
  return u->used_s + u->avg_s * (double)(u->running + (for_build ? u->ahead : 0));
}

static void charge(const tracker *t, share_use *u, double ran_s, uint64_t now) {
  decay(t, u, now);
  u->used_s += ran_s;
  if (u->running) u->running--;
  u->avg_s = u->avg_s > 0 ? u->avg_s + AVG_NEW * (ran_s - u->avg_s) : ran_s;
}

static int faded(const tracker *t, share *sh, uint64_t now) {
  decay(t, &sh->use, now);
  return !sh->refs && sh->use.used_s < SHARE_FORGET_S;
}

/* The least runner time for its weight among the owners of sh's key that
 * have sessions or runs now, in sh's weight; 0 when there are none. */
static double least_active(const tracker *t, const share *sh, uint64_t now) {
  double least = -1;
  for (share *x = t->shares; x; x = x->next)
    if (x != sh && x->refs && !strcmp(x->key, sh->key)) {
      decay(t, &x->use, now);
      double l = x->use.used_s / x->weight;
      if (least < 0 || l < least) least = l;
    }
  return least > 0 ? least * sh->weight : 0;
}

/* The least runner time among sh's other sessions on key k. */
static double least_sibling(const tracker *t, const keyq *k, const share *sh, uint64_t now) {
  double least = -1;
  for (session *x = k->sessions; x; x = x->kq_next)
    if (x->sh == sh) {
      decay(t, &x->use, now);
      if (least < 0 || x->use.used_s < least) least = x->use.used_s;
    }
  return least > 0 ? least : 0;
}

int share_join(tracker *t, session *s, const keyq *k) {
  uint64_t now = uv_now(t->loop);
  share *sh = NULL;
  /* The walk that finds the record also drops the faded ones. */
  for (share **pp = &t->shares; *pp;) {
    share *x = *pp;
    if (!strcmp(x->key, s->key) && !strcmp(x->owner, s->owner)) {
      sh = x;
    } else if (faded(t, x, now)) {
      *pp = x->next;
      free(x);
      continue;
    }
    pp = &x->next;
  }
  if (!sh) {
    if (!(sh = calloc(1, sizeof(*sh)))) return -1;
    snprintf(sh->key, sizeof(sh->key), "%s", s->key);
    snprintf(sh->owner, sizeof(sh->owner), "%s", s->owner);
    sh->weight = owner_weight(t, s->owner);
    sh->next = t->shares;
    t->shares = sh;
  }
  /* Who arrives starts level with the least served of those already
   * there, as a waking task does in a fair scheduler: the time others
   * used while nobody else wanted the key is no debt to a newcomer, who
   * would otherwise have the key alone until level. Time of one's own
   * (a returning owner, a new session among siblings) still counts. */
  if (!sh->refs) {
    decay(t, &sh->use, now);
    double floor = least_active(t, sh, now);
    if (sh->use.used_s < floor) sh->use.used_s = floor;
  }
  decay(t, &s->use, now);
  double sibling = least_sibling(t, k, sh, now);
  if (s->use.used_s < sibling) s->use.used_s = sibling;
  sh->refs++;
  s->sh = sh;
  s->admin = owner_admin(t, s->owner);
  return 0;
}

void share_leave(session *s) {
  if (!s->sh) return;
  s->sh->refs--;
  s->sh = NULL;
}

void share_run_start(job *j) {
  session *s = j->s;
  if (!s || !s->sh) return;
  j->run_sh = s->sh;
  j->run_sh->refs++;
  j->run_start_ns = uv_hrtime();
  j->run_sh->use.running++;
  s->use.running++;
}

void share_run_stop(tracker *t, job *j) {
  share *sh = j->run_sh;
  if (!sh) return;
  double ran_s = (double)(uv_hrtime() - j->run_start_ns) / 1e9;
  uint64_t now = uv_now(t->loop);
  charge(t, &sh->use, ran_s, now);
  /* A session that was dropped meanwhile has nothing left to order. */
  if (j->s) charge(t, &j->s->use, ran_s, now);
  j->run_sh = NULL;
  sh->refs--;
}

void share_ahead(session *s, int delta) {
  s->use.ahead += (uint32_t)delta;
  if (s->sh) s->sh->use.ahead += (uint32_t)delta;
}

static uint32_t rank(const session *s) { return s->admin ? s->priority : 0; }

static int cmp(double a, double b) { return a < b ? -1 : a > b; }

int share_order(tracker *t, session *a, session *b, int for_build) {
  uint32_t ra = rank(a), rb = rank(b);
  if (ra != rb) return ra > rb ? -1 : 1;
  if (a->sh != b->sh && a->sh && b->sh) {
    int o = cmp(level(t, &a->sh->use, for_build) / a->sh->weight,
                level(t, &b->sh->use, for_build) / b->sh->weight);
    if (o) return o;
  } else if (a->priority != b->priority) {
    return a->priority > b->priority ? -1 : 1;
  }
  return cmp(level(t, &a->use, for_build), level(t, &b->use, for_build));
}

void share_reload(tracker *t) {
  for (share *sh = t->shares; sh; sh = sh->next) sh->weight = owner_weight(t, sh->owner);
  for (session *s = t->sessions; s; s = s->next) s->admin = owner_admin(t, s->owner);
}

/* ---- status ---- */

static int waiting(const session *s) {
  return s->sh && (s->queued[QUEUE_BUILD] || s->queued[QUEUE_RUN]);
}

/* Its oldest queued job: who goes first between sessions in a tie. */
static uint64_t oldest(const session *s) {
  uint64_t a = s->qhead[QUEUE_BUILD] ? s->qhead[QUEUE_BUILD]->id : UINT64_MAX;
  uint64_t b = s->qhead[QUEUE_RUN] ? s->qhead[QUEUE_RUN]->id : UINT64_MAX;
  return a < b ? a : b;
}

static int line_cmp(const void *a, const void *b, void *ctx) {
  session *x = *(session *const *)a, *y = *(session *const *)b;
  int o = share_order(ctx, x, y, 0);
  if (o) return o;
  uint64_t ox = oldest(x), oy = oldest(y);
  return ox < oy ? -1 : ox > oy;
}

/* Each waiting session's place in q's line: one sort, not a comparison
 * of every pair (a key may hold a thousand sessions). */
static void places(tracker *t, keyq *q) {
  size_t n = 0;
  for (session *s = q->sessions; s; s = s->kq_next) n += waiting(s);
  session **line = n ? malloc(n * sizeof(*line)) : NULL;
  if (!line) return;
  n = 0;
  for (session *s = q->sessions; s; s = s->kq_next)
    if (waiting(s)) line[n++] = s;
  qsort_r(line, n, sizeof(*line), line_cmp, t);
  for (size_t i = 0; i < n; i++) line[i]->place = (uint32_t)i + 1;
  free(line);
}

void share_status(tracker *t, keyq *q, Ktune__KeyInfo *k) {
  size_t n = 0;
  for (share *sh = t->shares; sh; sh = sh->next) n += !strcmp(sh->key, k->key);
  if (!n) return;
  Ktune__OwnerShare *rows = calloc(n, sizeof(*rows));
  k->owners = calloc(n, sizeof(*k->owners));
  if (!rows || !k->owners) {
    free(rows);
    free(k->owners);
    k->owners = NULL;
    return;
  }
  for (share *sh = t->shares; sh; sh = sh->next) sh->waiting = 0;
  if (q) {
    for (session *s = q->sessions; s; s = s->kq_next)
      if (waiting(s)) s->sh->waiting++;
    places(t, q);
  }
  double used = 0, weights = 0;
  for (share *sh = t->shares; sh; sh = sh->next) {
    if (strcmp(sh->key, k->key) != 0) continue;
    Ktune__OwnerShare *r = &rows[k->n_owners];
    ktune__owner_share__init(r);
    r->owner = sh->owner;
    r->weight = sh->weight;
    decay(t, &sh->use, uv_now(t->loop));
    r->runner_s = sh->use.used_s;
    r->running = sh->use.running;
    r->sessions = sh->waiting;
    used += r->runner_s;
    weights += r->sessions ? sh->weight : 0;
    k->owners[k->n_owners++] = r;
  }
  for (size_t i = 0; i < k->n_owners; i++) {
    Ktune__OwnerShare *r = k->owners[i];
    r->actual = used > 0 ? r->runner_s / used : 0;
    r->target = r->sessions && weights > 0 ? r->weight / weights : 0;
  }
}

void share_session_status(tracker *t, session *s, Ktune__SessionInfo *si) {
  si->place = waiting(s) ? s->place : 0;
  decay(t, &s->use, uv_now(t->loop));
  si->runner_s = s->use.used_s;
  si->admin = s->admin;
}

void share_status_free(Ktune__KeyInfo *k) {
  /* The rows are one array, the first row its start. */
  if (k->n_owners) free(k->owners[0]);
  free(k->owners);
}

void share_free_all(tracker *t) {
  while (t->shares) {
    share *sh = t->shares;
    t->shares = sh->next;
    free(sh);
  }
}
