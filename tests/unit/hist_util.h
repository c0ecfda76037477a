/* A history file in a fresh temporary folder, for the unit tests of the
 * history and of what writes it. Header-only: each test program is one
 * file. */
#ifndef KTUNE_TEST_HIST_UTIL_H
#define KTUNE_TEST_HIST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tests/test.h"

typedef struct {
  char dir[64];
  char db[128];
  char wal[140]; /* the write-ahead log beside db */
} tmp;

static void tmp_init(tmp *t) {
  snprintf(t->dir, sizeof(t->dir), "/tmp/ktune-hist-XXXXXX");
  ASSERT_NOT_NULL(mkdtemp(t->dir));
  snprintf(t->db, sizeof(t->db), "%s/ktune.db", t->dir);
  snprintf(t->wal, sizeof(t->wal), "%s-wal", t->db);
}

/* Removes the history, whatever SQLite left beside it, and the folder. */
static void tmp_free(tmp *t) {
  const char *sfx[] = {"", "-wal", "-shm", "-journal"};
  char p[160];
  for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
    snprintf(p, sizeof(p), "%s%s", t->db, sfx[i]);
    unlink(p);
  }
  rmdir(t->dir);
}

#endif
