/* The ground floor of the tracker: the open history transaction, and
 * sending to a peer. It calls only store.c, so every layer may use it.
 * Group commit: every history write of 2-3 ms (COMMIT_WINDOW_MS,
 * server.c) lands in one transaction, committed (core_commit, from the
 * loop's prepare phase) before any reply that depends on those writes,
 * so nothing is acknowledged that is not durable. Also the files that
 * say where it listens. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/log.h"
#include "common/wire.h"
#include "tracker/tracker.h"

#define WHO "tracker"

void core_db_write(tracker *t) {
  if (t->txn_open) return;
  if (store_begin(t->db) == 0) {
    t->txn_open = 1;
    t->txn_start_ns = uv_hrtime();
  } else log_error(WHO, "history: cannot begin a transaction: %s", hist_errmsg(t->db));
}

void core_commit(tracker *t) {
  if (!t->txn_open) return;
  t->txn_open = 0;
  uint64_t t0 = uv_hrtime();
  if (store_commit(t->db) < 0) {
    /* Replies of this turn would acknowledge what is not durable. */
    log_error(WHO, "history: commit failed: %s; stopping", hist_errmsg(t->db));
    exit(1);
  }
  t->commits++;
  metrics_commit(t, uv_hrtime() - t0);
}

int core_send(peer *p, const Ktune__Envelope *env) {
  if (!p->c) return -1;
  return conn_send(p->c, env);
}

int core_send_msg(peer *p, Ktune__Envelope__MsgCase which, void *msg) {
  Ktune__Envelope env = wire_envelope(which, msg);
  return core_send(p, &env);
}

int core_send_msg_now(peer *p, Ktune__Envelope__MsgCase which, void *msg) {
  int alone = p->c && p->c->out_len == 0;
  int rc = core_send_msg(p, which, msg);
  if (rc == 0 && alone) conn_send_now(p->c);
  return rc;
}

int core_bound(uv_tcp_t *l, const char *opt, const char *path, char *addr, size_t addrlen,
               char *err, size_t errlen) {
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  uv_tcp_getsockname(l, (struct sockaddr *)&ss, &len);
  addr_format(&ss, addr, addrlen);
  if (!path) return 0;
  /* Whole or not at all: whoever waits for the file reads it once. */
  char tmp[4096];
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (f) fprintf(f, "%s\n", addr);
  if (!f || fclose(f) != 0 || rename(tmp, path) != 0) {
    unlink(tmp);
    snprintf(err, errlen, "cannot write %s %s", opt, path);
    return -1;
  }
  return 0;
}
