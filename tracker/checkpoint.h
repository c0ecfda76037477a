/* The history's WAL checkpoints, off the loop thread. SQLite copies the
 * write-ahead log back into the database (and syncs it) every thousand
 * pages or so, inside the commit that crosses the mark: 10 to 20 ms on
 * the tracker's one thread, a stall that every agent waiting then shares.
 * Here the loop's connection only appends to the log (with --sync normal,
 * no fsync per commit), and a connection of this module's own runs a
 * PASSIVE checkpoint on the thread pool whenever the log has grown past
 * the mark; SQLite lets it run beside the writer. */
#ifndef KTUNE_TRACKER_CHECKPOINT_H
#define KTUNE_TRACKER_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* The log's size, in pages, from which a checkpoint starts: SQLite's own
 * default mark. */
#define CHECKPOINT_PAGES 1000
/* Past the mark, the pages written since the last checkpoint began that
 * start the next one. */
#define CHECKPOINT_STEP_PAGES 100
/* The log's size from which the loop copies the rest itself, so that the
 * log can start over (checkpoint.c). */
#define CHECKPOINT_RESET_PAGES (4 * CHECKPOINT_PAGES)

typedef struct checkpointer checkpointer;

typedef struct hist hist;

/* Takes over the checkpoints of h (the loop's connection to the history
 * at path): SQLite's own are turned off. NULL with why. */
checkpointer *checkpoint_start(uv_loop_t *loop, hist *h, const char *path, char *err,
                               size_t errlen);
typedef struct {
  uint64_t pool;        /* checkpoints done on the pool */
  uint64_t loop;        /* catch-ups on the loop (see CHECKPOINT_RESET_PAGES) */
} checkpoint_stats;
void checkpoint_counts(const checkpointer *c, checkpoint_stats *out);
/* Once the loop has stopped (no checkpoint is running then) and before db
 * is closed, so that closing it can still checkpoint and remove the log. */
void checkpoint_free(checkpointer *c);

#endif
