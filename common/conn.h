/* One framed protobuf connection on a libuv TCP stream: reads whole
 * Envelopes out of any split of bytes, and batches writes (messages sent
 * while a write is in flight go out together in the next one). */
#ifndef KTUNE_CONN_H
#define KTUNE_CONN_H

#include <stdint.h>
#include <uv.h>

#include "common/auth.h"
#include "common/frame.h"
#include "proto/ktune.pb-c.h"

typedef struct conn conn;

/* Connections whose messages wait for their owner's word (group commit):
 * the owner flushes the ones with bytes queued, not every connection. */
typedef struct {
  conn *head;
} conn_batch;

typedef struct {
  /* A decoded message; conn frees env after the call returns. */
  void (*on_message)(conn *c, Ktune__Envelope *env);
  /* Called once when the connection ends, for any reason; the conn is
   * freed by conn itself afterwards. */
  void (*on_close)(conn *c, const char *why);
  /* Outbound connections only: status 0 or a libuv error. */
  void (*on_connect)(conn *c, int status);
} conn_ops;

struct conn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  const conn_ops *ops;
  void *data;             /* owner's state */
  frame_reader rd;
  uint8_t *out;           /* queued, not yet handed to libuv */
  size_t out_len, out_cap;
  uint8_t *wbuf;          /* handed to libuv, in flight */
  int writing;
  conn_batch *batch;      /* set: writes wait for conn_batch_flush */
  conn *bnext, *bprev;    /* in batch->head while bytes wait there */
  int in_batch;
  auth_stream mac;        /* on after login: every frame carries an HMAC */
  int closing;
  uint64_t last_rx_ms;    /* uv_now of the last bytes received */
  uint64_t last_tx_ms;    /* uv_now of the last write started */
  uint64_t opened_ms;
  char peer[64];          /* remote address, for logs */
  char rbuf[16384];
};

/* Allocates a conn whose uv_tcp_t is initialised on loop; the caller
 * accepts into c->tcp or calls conn_connect. */
conn *conn_new(uv_loop_t *loop, const conn_ops *ops, void *data, uint32_t max_frame);

/* Starts reading an accepted connection. */
int conn_start(conn *c);

int conn_connect(conn *c, const struct sockaddr *addr);

/* Queues one message. With a batch set, nothing is written until
 * conn_batch_flush; otherwise a write starts now unless one is in flight. */
int conn_send(conn *c, const Ktune__Envelope *env);
int conn_send_error(conn *c, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void conn_flush(conn *c);
/* Starts a write on every connection of b that has bytes queued. */
void conn_batch_flush(conn_batch *b);
/* Takes c out of its batch and starts its write now. */
void conn_send_now(conn *c);

/* Ends the connection: on_close runs now, the memory goes when libuv has
 * closed the handle. Queued bytes are tried once without blocking, so an
 * error reply usually reaches the peer. Idempotent. */
void conn_close(conn *c, const char *why);

#endif
