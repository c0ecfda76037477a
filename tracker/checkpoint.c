/* See checkpoint.h. One checkpoint at a time: the WAL hook, which SQLite
 * calls on the loop thread after each commit, queues one when the log is
 * past the mark and none is running; one that could not copy everything
 * (the writer went on meanwhile, or a reader holds old pages) leaves the
 * log past the mark, and a commit queues another once CHECKPOINT_STEP_PAGES
 * more have come.
 *
 * The log starts over from its beginning only when a transaction begins
 * with every frame of it copied, which a checkpoint beside a writer that
 * commits every millisecond never sees: the file would grow by everything
 * written. So once it passes CHECKPOINT_RESET_PAGES, the hook itself, on
 * the loop thread between two transactions, copies the few frames
 * written since the last checkpoint on the pool, and the next transaction
 * starts the log over. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/history_int.h"
#include "common/log.h"
#include "tracker/checkpoint.h"

#define WHO "tracker"

struct checkpointer {
  uv_work_t req;
  uv_loop_t *loop;
  sqlite3 *db;   /* the worker's own connection, opened on first use */
  char *path;
  int running;
  uint64_t caught_up_at; /* done when the hook last caught up */
  uint64_t catch_ups;
  int rc;        /* the last checkpoint's SQLite code */
  int warned;
  char err[256];
  uint64_t done;  /* checkpoints on the pool */
  int copied_to;  /* the log's size, in pages, at the last one */
};

static void work(uv_work_t *req) {
  checkpointer *c = req->data;
  if (!c->db) {
    /* A connection finds the log only once it has read the database: a
     * checkpoint before that looks at nothing and says SQLITE_OK. */
    c->rc = sqlite3_open_v2(c->path, &c->db, SQLITE_OPEN_READWRITE, NULL);
    if (c->rc == SQLITE_OK)
      c->rc = sqlite3_exec(c->db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
    if (c->rc != SQLITE_OK) {
      snprintf(c->err, sizeof(c->err), "%s", c->db ? sqlite3_errmsg(c->db) : "out of memory");
      sqlite3_close_v2(c->db);
      c->db = NULL;
      return;
    }
  }
  int log = -1, copied = -1;
  c->rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
  if (c->rc != SQLITE_OK) snprintf(c->err, sizeof(c->err), "%s", sqlite3_errmsg(c->db));
  else if (log < 0) c->rc = SQLITE_ERROR, snprintf(c->err, sizeof(c->err), "no log to copy");
  else c->copied_to = log;
}

static void after(uv_work_t *req, int status) {
  checkpointer *c = req->data;
  c->running = 0;
  if (status == 0 && c->rc == SQLITE_OK) {
    c->done++;
    c->warned = 0;
  } else if (!c->warned) {
    /* The log grows meanwhile and nothing is lost: the next commit past
     * the mark tries again, and closing the history checkpoints too. */
    log_warn(WHO, "history: a checkpoint of %s failed: %s; trying again", c->path,
             status ? uv_strerror(status) : c->err);
    c->warned = 1;
  }
}

static int on_wal(void *arg, sqlite3 *db, const char *name, int pages) {
  checkpointer *c = arg;
  if (c->running) return SQLITE_OK;
  if (pages >= CHECKPOINT_RESET_PAGES && c->done > c->caught_up_at) {
    sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    c->catch_ups++;
    c->caught_up_at = c->done; /* not again before the pool's next one */
    return SQLITE_OK;
  }
  if (pages < c->copied_to) c->copied_to = 0; /* the log started over */
  /* Past the mark, every commit would start one for its own few pages,
   * two fsyncs each. */
  if (pages >= CHECKPOINT_PAGES && pages - c->copied_to >= CHECKPOINT_STEP_PAGES) {
    c->req.data = c;
    if (uv_queue_work(c->loop, &c->req, work, after) == 0) c->running = 1;
  }
  return SQLITE_OK;
}

checkpointer *checkpoint_start(uv_loop_t *loop, hist *h, const char *path, char *err,
                               size_t errlen) {
  checkpointer *c = calloc(1, sizeof(*c));
  if (!c || !(c->path = strdup(path))) {
    free(c);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  c->loop = loop;
  /* The hook replaces SQLite's automatic checkpoints (which are a WAL
   * hook of their own). */
  sqlite3_wal_hook(hist_db(h), on_wal, c);
  return c;
}

void checkpoint_counts(const checkpointer *c, checkpoint_stats *out) {
  out->pool = c ? c->done : 0;
  out->loop = c ? c->catch_ups : 0;
}

void checkpoint_free(checkpointer *c) {
  if (!c) return;
  sqlite3_close_v2(c->db);
  free(c->path);
  free(c);
}
