/* Framing: a 4-byte big-endian length, then that many bytes of payload (one
 * serialized Envelope). The reader takes bytes as they arrive, in any
 * split, and hands out whole frames. */
#ifndef KTUNE_FRAME_H
#define KTUNE_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_HEADER 4
#define FRAME_MAX_DEFAULT (64u << 20)

enum {
  FRAME_ETOOBIG = -1, /* length prefix above the maximum */
  FRAME_ENOMEM = -2,
};

typedef struct {
  uint8_t *buf;
  size_t len;   /* bytes held */
  size_t cap;
  size_t off;   /* start of the first unread byte */
  uint32_t max; /* largest payload accepted */
} frame_reader;

void frame_reader_init(frame_reader *r, uint32_t max);
void frame_reader_free(frame_reader *r);

/* Appends received bytes. */
int frame_reader_feed(frame_reader *r, const void *data, size_t n);

/* Returns 1 and points *payload at the next whole frame (valid until the
 * next call), 0 when more bytes are needed, FRAME_ETOOBIG when the next
 * length prefix is above the maximum (the stream cannot be trusted after). */
int frame_reader_next(frame_reader *r, const uint8_t **payload, uint32_t *len);

/* Writes the 4-byte header for a payload of len bytes. */
void frame_put_header(uint8_t out[FRAME_HEADER], uint32_t len);

/* Blocking helpers for pipes and tests: read or write exactly one frame.
 * frame_read_fd returns a malloc'd payload; 0 on success, -1 on EOF or
 * error, FRAME_ETOOBIG when above max. */
int frame_read_fd(int fd, uint32_t max, uint8_t **payload, uint32_t *len);
int frame_write_fd(int fd, const void *payload, uint32_t len);

#endif
