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
 * all `rows` rows must then be in the database. */
static void teardown_rows(fixture *x, long long rows) {
  checkpoint_free(x->c);
  hist_close(x->h);
  ASSERT_EQ_INT(uv_loop_close(&x->loop), 0);
  ASSERT_LT_INT(file_size(x->t.wal), 1);
  ASSERT_EQ_INT(rows_in(x->t.db), rows);
  tmp_free(&x->t);
}

static void teardown(fixture *x) { teardown_rows(x, ROWS); }

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

/* Pages in the log, from its size (a 32-byte header, then frames of a
 * 24-byte header and a page). */
static long long log_pages(const char *wal) {
  off_t n = file_size(wal);
  return n > 32 ? (n - 32) / (24 + 4096) : 0;
}

/* A checkpoint that could not copy everything (here a reader holds an
 * old snapshot, as the writer's own next commits do on a busy farm)
 * leaves the log past the mark. The next commits, a page or two each,
 * must not each start another (with its two fsyncs): one waits until
 * CHECKPOINT_STEP_PAGES more have come. */
TEST(checkpoints_past_the_mark_wait_for_pages_worth_copying) {
  fixture x;
  setup(&x, NULL);
  sqlite3 *db = hist_db(x.h);
  ASSERT_EQ_INT(sqlite3_exec(db, "CREATE TABLE scratch(x BLOB)", NULL, NULL, NULL), SQLITE_OK);
  sqlite3 *reader;
  ASSERT_EQ_INT(sqlite3_open_v2(x.t.db, &reader, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  ASSERT_EQ_INT(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM scratch", NULL, NULL, NULL),
                SQLITE_OK);
  sqlite3_stmt *st;
  ASSERT_EQ_INT(sqlite3_prepare_v2(db, "INSERT INTO scratch VALUES (randomblob(2000))", -1, &st,
                                   NULL), SQLITE_OK);
  long long rows = 0, past = 0;
  /* Up to 2,500 pages: below CHECKPOINT_RESET_PAGES, where the loop
   * would step in. */
  for (int i = 0; i < 20000 && log_pages(x.t.wal) < 5 * CHECKPOINT_PAGES / 2; i++) {
    ASSERT_EQ_INT(sqlite3_step(st), SQLITE_DONE);
    sqlite3_reset(st);
    rows++;
    if (log_pages(x.t.wal) >= CHECKPOINT_PAGES) past++;
    /* Each checkpoint ends before the next commit. */
    uv_run(&x.loop, UV_RUN_DEFAULT);
  }
  sqlite3_finalize(st);
  checkpoint_stats n;
  checkpoint_counts(x.c, &n);
  fprintf(stderr, "%lld commits past the mark, %llu checkpoints on the pool\n", past,
          (unsigned long long)n.pool);
  ASSERT_GE_INT(past, 500);
  ASSERT_GE_INT((long long)n.pool, 2);
  /* About 1,500 pages past the mark: 15 steps. One a commit would be
   * past / 1. */
  ASSERT_LT_INT((long long)n.pool, 1500 / CHECKPOINT_STEP_PAGES + 5);
  ASSERT_EQ_INT(sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(reader);
  teardown_rows(&x, rows);
}

TEST_LIST(TEST_ENTRY(checkpoints_keep_the_log_short_beside_the_writer),
          TEST_ENTRY(checkpoints_past_the_mark_wait_for_pages_worth_copying),
          TEST_ENTRY(a_checkpoint_that_fails_loses_nothing))
