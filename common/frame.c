#include "common/frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

void frame_reader_init(frame_reader *r, uint32_t max) {
  memset(r, 0, sizeof(*r));
  r->max = max ? max : FRAME_MAX_DEFAULT;
}

void frame_reader_free(frame_reader *r) {
  free(r->buf);
  memset(r, 0, sizeof(*r));
}

static uint32_t get_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void frame_put_header(uint8_t out[FRAME_HEADER], uint32_t len) {
  out[0] = (uint8_t)(len >> 24);
  out[1] = (uint8_t)(len >> 16);
  out[2] = (uint8_t)(len >> 8);
  out[3] = (uint8_t)len;
}

int frame_reader_feed(frame_reader *r, const void *data, size_t n) {
  if (n == 0) return 0;
  /* Drop what was consumed before growing, so a long-lived connection
   * keeps a buffer the size of its largest frame, not of its history. */
  if (r->off > 0) {
    memmove(r->buf, r->buf + r->off, r->len - r->off);
    r->len -= r->off;
    r->off = 0;
  }
  if (r->len + n > r->cap) {
    size_t cap = r->cap ? r->cap : 4096;
    while (cap < r->len + n) cap *= 2;
    uint8_t *nb = realloc(r->buf, cap);
    if (!nb) return FRAME_ENOMEM;
    r->buf = nb;
    r->cap = cap;
  }
  memcpy(r->buf + r->len, data, n);
  r->len += n;
  return 0;
}

int frame_reader_next(frame_reader *r, const uint8_t **payload, uint32_t *len) {
  size_t avail = r->len - r->off;
  if (avail < FRAME_HEADER) return 0;
  uint32_t n = get_be32(r->buf + r->off);
  /* Refuse before buffering: a hostile prefix must not make us allocate. */
  if (n > r->max) return FRAME_ETOOBIG;
  if (avail - FRAME_HEADER < n) return 0;
  *payload = r->buf + r->off + FRAME_HEADER;
  *len = n;
  r->off += FRAME_HEADER + (size_t)n;
  return 1;
}

static int read_full(int fd, void *buf, size_t n) {
  uint8_t *p = buf;
  while (n > 0) {
    ssize_t k = read(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}


int frame_read_fd(int fd, uint32_t max, uint8_t **payload, uint32_t *len) {
  uint8_t hdr[FRAME_HEADER];
  if (read_full(fd, hdr, sizeof(hdr)) < 0) return -1;
  uint32_t n = get_be32(hdr);
  if (n > (max ? max : FRAME_MAX_DEFAULT)) return FRAME_ETOOBIG;
  uint8_t *p = malloc(n ? n : 1);
  if (!p) return FRAME_ENOMEM;
  if (read_full(fd, p, n) < 0) {
    free(p);
    return -1;
  }
  *payload = p;
  *len = n;
  return 0;
}

/* Header and payload in one writev: written apart, the payload of a small
 * frame waits for the peer's delayed ACK of the header (Nagle), about
 * 40 ms a message on a socket without TCP_NODELAY. No allocation, so a
 * signal handler may call it. */
int frame_write_fd(int fd, const void *payload, uint32_t len) {
  uint8_t hdr[FRAME_HEADER];
  frame_put_header(hdr, len);
  struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)payload, len}};
  struct iovec *v = iov;
  int nv = len ? 2 : 1;
  while (nv > 0) {
    ssize_t k = writev(fd, v, nv);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    /* A partial write: skip what went out. */
    while (nv > 0 && (size_t)k >= v->iov_len) {
      k -= (ssize_t)v->iov_len;
      v++;
      nv--;
    }
    if (nv > 0) {
      v->iov_base = (uint8_t *)v->iov_base + k;
      v->iov_len -= (size_t)k;
    }
  }
  return 0;
}
