#include "common/conn.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/log.h"
#include "common/wire.h"

conn *conn_new(uv_loop_t *loop, const conn_ops *ops, void *data, uint32_t max_frame) {
  conn *c = calloc(1, sizeof(*c));
  if (!c) return NULL;
  if (uv_tcp_init(loop, &c->tcp) != 0) {
    free(c);
    return NULL;
  }
  c->tcp.data = c;
  c->ops = ops;
  c->data = data;
  frame_reader_init(&c->rd, max_frame);
  c->opened_ms = c->last_rx_ms = uv_now(loop);
  snprintf(c->peer, sizeof(c->peer), "?");
  return c;
}

static void on_handle_closed(uv_handle_t *h) {
  conn *c = h->data;
  frame_reader_free(&c->rd);
  free(c->out);
  free(c->wbuf);
  free(c);
}

static void batch_add(conn *c) {
  if (c->in_batch) return;
  c->in_batch = 1;
  c->bprev = NULL;
  c->bnext = c->batch->head;
  if (c->bnext) c->bnext->bprev = c;
  c->batch->head = c;
}

static void batch_remove(conn *c) {
  if (!c->in_batch) return;
  c->in_batch = 0;
  if (c->bprev) c->bprev->bnext = c->bnext;
  else c->batch->head = c->bnext;
  if (c->bnext) c->bnext->bprev = c->bprev;
  c->bnext = c->bprev = NULL;
}

void conn_batch_flush(conn_batch *b) {
  /* One still writing leaves the list too: write_cb puts it back. */
  while (b->head) {
    conn *c = b->head;
    batch_remove(c);
    conn_flush(c);
  }
}

void conn_close(conn *c, const char *why) {
  if (c->closing) return;
  c->closing = 1;
  if (c->batch) batch_remove(c);
  uv_read_stop((uv_stream_t *)&c->tcp);
  if (c->out_len && !c->writing) {
    uv_buf_t b = uv_buf_init((char *)c->out, (unsigned)c->out_len);
    uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  }
  if (c->ops->on_close) c->ops->on_close(c, why);
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  conn *c = h->data;
  *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  conn *c = s->data;
  (void)buf;
  if (n < 0) {
    conn_close(c, n == UV_EOF ? "closed by peer" : uv_strerror((int)n));
    return;
  }
  if (n == 0) return;
  c->last_rx_ms = uv_now(s->loop);
  if (frame_reader_feed(&c->rd, c->rbuf, (size_t)n) < 0) {
    conn_close(c, "out of memory");
    return;
  }
  while (!c->closing) {
    const uint8_t *p;
    uint32_t len;
    int rc = frame_reader_next(&c->rd, &p, &len);
    if (rc == 0) break;
    if (rc < 0) {
      conn_send_error(c, "FRAME_TOO_BIG", "frame larger than the maximum of %u bytes", c->rd.max);
      conn_close(c, "frame too big");
      return;
    }
    int forged = 0;
    Ktune__Envelope *env = wire_unpack_mac(p, len, &c->mac, &forged);
    if (forged) {
      log_warn("conn", "%s: a frame failed authentication (altered or replayed); closing", c->peer);
      conn_close(c, "a frame failed authentication");
      return;
    }
    if (!env) {
      conn_send_error(c, "BAD_FRAME", "frame of %u bytes is not a ktune message", len);
      conn_close(c, "undecodable frame");
      return;
    }
    c->ops->on_message(c, env);
    wire_free(env);
  }
}

int conn_start(conn *c) {
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
    addr_format(&ss, c->peer, sizeof(c->peer));
  uv_tcp_nodelay(&c->tcp, 1);
  return uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

static void connect_cb(uv_connect_t *req, int status) {
  conn *c = req->data;
  if (c->closing) return;
  if (status == 0) status = conn_start(c);
  c->ops->on_connect(c, status);
}

int conn_connect(conn *c, const struct sockaddr *addr) {
  c->creq.data = c;
  return uv_tcp_connect(&c->creq, &c->tcp, addr, connect_cb);
}

static void write_cb(uv_write_t *req, int status) {
  conn *c = req->data;
  free(c->wbuf);
  c->wbuf = NULL;
  c->writing = 0;
  if (c->closing) return;
  if (status < 0) {
    conn_close(c, uv_strerror(status));
    return;
  }
  if (!c->batch) conn_flush(c);
  else if (c->out_len) batch_add(c);
}

void conn_send_now(conn *c) {
  if (c->batch) batch_remove(c);
  conn_flush(c);
}

/* Queues kept for the next frames after a write; larger ones are freed. */
#define CONN_KEEP_BYTES (64u << 10)

void conn_flush(conn *c) {
  if (c->closing || c->writing || c->out_len == 0) return;
  c->last_tx_ms = uv_now(c->tcp.loop);
  /* Everything queued since the last write leaves in one system call,
   * here when the socket takes it all, as it mostly does: no request, no
   * callback, and no epoll_ctl (libuv's uv_write changes the poll set
   * after every request it finishes). */
  uv_buf_t b = uv_buf_init((char *)c->out, (unsigned)c->out_len);
  int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n == UV_EAGAIN) n = 0;
  if (n < 0) {
    conn_close(c, uv_strerror(n));
    return;
  }
  if ((size_t)n == c->out_len) {
    c->out_len = 0;
    if (c->out_cap > CONN_KEEP_BYTES) {
      free(c->out);
      c->out = NULL;
      c->out_cap = 0;
    }
    return;
  }
  /* The rest goes to libuv, and a new queue starts. */
  c->wbuf = c->out;
  b = uv_buf_init((char *)c->wbuf + n, (unsigned)(c->out_len - (size_t)n));
  c->out = NULL;
  c->out_len = c->out_cap = 0;
  c->wreq.data = c;
  c->writing = 1;
  int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
  if (rc < 0) {
    c->writing = 0;
    conn_close(c, uv_strerror(rc));
  }
}

int conn_send(conn *c, const Ktune__Envelope *env) {
  if (c->closing) return -1;
  uint8_t *frame;
  size_t len;
  if (wire_pack_mac(env, &c->mac, &frame, &len) < 0) return -1;
  if (c->out_len + len > c->out_cap) {
    size_t cap = c->out_cap ? c->out_cap : 4096;
    while (cap < c->out_len + len) cap *= 2;
    uint8_t *nb = realloc(c->out, cap);
    if (!nb) {
      free(frame);
      return -1;
    }
    c->out = nb;
    c->out_cap = cap;
  }
  memcpy(c->out + c->out_len, frame, len);
  c->out_len += len;
  free(frame);
  if (c->batch) batch_add(c);
  else conn_flush(c);
  return 0;
}

int conn_send_error(conn *c, const char *code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  Ktune__Error e = KTUNE__ERROR__INIT;
  e.code = (char *)code;
  e.message = msg;
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_ERROR, &e);
  return conn_send(c, &env);
}
