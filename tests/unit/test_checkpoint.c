/* The history's checkpoints on the thread pool (tracker/checkpoint.c):
 * real SQLite files, a real libuv loop and its worker threads. */
#include "tracker/checkpoint.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include "common/history.h"
#include "common/history_int.h"
#include "tests/test.h"
#include "tests/unit/hist_util.h"

/* Rows of some 2 KB, each its own commit: about two pages of the log each. */
#define ROWS 6000

static off_t file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? st.st_size : -1;
}

/* ROWS commits through h, letting the loop reap finished checkpoints
 * every few; returns the largest size the log reached. */
static off_t write_rows(hist *h, uv_loop_t *loop) {
  sqlite3 *db = hist_db(h);
  ASSERT_EQ_INT(sqlite3_exec(db, "CREATE TABLE scratch(x BLOB)", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_stmt *st;
  ASSERT_EQ_INT(sqlite3_prepare_v2(db, "INSERT INTO scratch VALUES (randomblob(2000))", -1, &st,
                                   NULL), SQLITE_OK);
  off_t largest = 0;
  char wal[300];
  snprintf(wal, sizeof(wal), "%s-wal", sqlite3_db_filename(db, "main"));
  for (int i = 0; i < ROWS; i++) {
    ASSERT_EQ_INT(sqlite3_step(st), SQLITE_DONE);
    sqlite3_reset(st);
    if (i % 50 == 0) {
      uv_run(loop, UV_RUN_NOWAIT);
      off_t n = file_size(wal);
      if (n > largest) largest = n;
    }
  }
  sqlite3_finalize(st);
  uv_run(loop, UV_RUN_DEFAULT); /* the checkpoint still running, if any */
  return largest;
}

static long long rows_in(const char *path) {
  sqlite3 *db;
  ASSERT_EQ_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *st;
  ASSERT_EQ_INT(sqlite3_prepare_v2(db, "SELECT count(*) FROM scratch", -1, &st, NULL), SQLITE_OK);
  ASSERT_EQ_INT(sqlite3_step(st), SQLITE_ROW);
  long long n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

/* A history in a fresh folder, its loop, and a checkpointer that opens
 * path (NULL: the history's own). */
typedef struct {
  tmp t;
  hist *h;
  uv_loop_t loop;
  checkpointer *c;
} fixture;

static void setup(fixture *x, const char *path) {
  tmp_init(&x->t);
  char err[256];
  ASSERT_EQ_INT(hist_open(x->t.db, 0, &x->h, err, sizeof(err)), 0);
  ASSERT_EQ_INT(uv_loop_init(&x->loop), 0);
  x->c = checkpoint_start(&x->loop, x->h, path ? path : x->t.db, err, sizeof(err));
  ASSERT_NOT_NULL(x->c);
}

/* Closes everything; the last close checkpoints and removes the log, and
 * every row must then be in the database. */
static void teardown(fixture *x) {
  checkpoint_free(x->c);
  hist_close(x->h);
  ASSERT_EQ_INT(uv_loop_close(&x->loop), 0);
  ASSERT_LT_INT(file_size(x->t.wal), 1);
  ASSERT_EQ_INT(rows_in(x->t.db), ROWS);
  tmp_free(&x->t);
}

/* Some 24 MB go through the log; checkpoints beside the writer keep it
 * near the mark, and every row is in the database once it closes. */
TEST(checkpoints_keep_the_log_short_beside_the_writer) {
  fixture x;
  setup(&x, NULL);
  off_t largest = write_rows(x.h, &x.loop);
  checkpoint_stats n;
  checkpoint_counts(x.c, &n);
  fprintf(stderr, "%llu checkpoints on the pool, %llu catch-ups on the loop; the log reached "
          "%lld bytes\n", (unsigned long long)n.pool, (unsigned long long)n.loop,
          (long long)largest);
  /* A checkpoint on the pool that found no log would count as failed. */
  ASSERT_GE_INT((long long)n.pool, 2);
  ASSERT_GE_INT((long long)n.loop, 1);
  /* Without checkpoints it would hold every page written (about 48 MB). */
  ASSERT_LT_INT(largest, 6 * CHECKPOINT_PAGES * 4096);
  teardown(&x);
}

/* A checkpointer that cannot open the history says so and the writer
 * goes on: nothing is lost, the log only grows until the close. */
TEST(a_checkpoint_that_fails_loses_nothing) {
  fixture x;
  setup(&x, "/nonexistent/ktune.db");
  write_rows(x.h, &x.loop);
  checkpoint_stats n;
  checkpoint_counts(x.c, &n);
  ASSERT_EQ_INT((long long)n.pool, 0);
  teardown(&x);
}

TEST_LIST(TEST_ENTRY(checkpoints_keep_the_log_short_beside_the_writer),
          TEST_ENTRY(a_checkpoint_that_fails_loses_nothing))
