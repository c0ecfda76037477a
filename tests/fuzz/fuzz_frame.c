/* The bytes of one connection, as common/conn.c's read callback takes
 * them before login: fed to a frame_reader in chunks of varying size, each
 * whole frame decoded (wire_unpack_mac without a key is wire_unpack) and
 * handed to a handler walk (walk.c), stopping where conn would close (a
 * frame above the maximum, a frame that does not decode). The same bytes
 * fed in one piece must give the same frames. After login every frame
 * carries an HMAC, so unauthenticated bytes never get further than here. */
#include <stdlib.h>
#include <string.h>

#include "common/frame.h"
#include "common/wire.h"
#include "tests/fuzz/walk.h"

/* Small enough that the fuzzer reaches the "too big" refusal with short
 * inputs, larger than any input it makes, so both sides get exercised. */
#define FUZZ_FRAME_MAX (64u << 10)

enum { END_MORE, END_TOO_BIG, END_BAD_FRAME };

typedef struct {
  size_t frames;
  uint64_t hash; /* over every frame's length and payload, in order */
  int end;
} stream_summary;

/* Chunk sizes come from the input itself, so a crash reproduces from the
 * saved input alone. Mostly tiny chunks (split headers), sometimes the
 * 16 KiB conn reads at once. */
static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static size_t next_chunk(uint64_t *s) {
  uint64_t r = splitmix(s);
  return (r & 3) == 0 ? 1 + (size_t)((r >> 8) % 16384) : 1 + (size_t)((r >> 8) % 17);
}

/* Takes every whole frame out of the reader; 0 while the stream is good. */
static int drain(frame_reader *rd, stream_summary *out, int walk) {
  for (;;) {
    const uint8_t *p = NULL;
    uint32_t len = 0;
    int rc = frame_reader_next(rd, &p, &len);
    if (rc == 0) return 0;
    if (rc < 0) {
      FUZZ_ASSERT(rc == FRAME_ETOOBIG);
      out->end = END_TOO_BIG;
      return -1;
    }
    FUZZ_ASSERT(rc == 1);
    FUZZ_ASSERT(len <= rd->max);
    FUZZ_ASSERT(p >= rd->buf && p + len <= rd->buf + rd->len);
    out->frames++;
    out->hash = fuzz_hash(&len, sizeof len, out->hash);
    out->hash = fuzz_hash(p, len, out->hash);
    Ktune__Envelope *env = wire_unpack(p, len);
    if (!env) {
      out->end = END_BAD_FRAME;
      return -1;
    }
    if (walk) fuzz_walk_envelope(env);
    wire_free(env);
  }
}

static void read_stream(const uint8_t *data, size_t size, uint64_t seed, stream_summary *out) {
  frame_reader rd;
  frame_reader_init(&rd, FUZZ_FRAME_MAX);
  memset(out, 0, sizeof *out);
  out->end = END_MORE;
  size_t off = 0;
  while (off < size) {
    size_t n = seed ? next_chunk(&seed) : size;
    if (n > size - off) n = size - off;
    FUZZ_ASSERT(frame_reader_feed(&rd, data + off, n) == 0);
    off += n;
    if (drain(&rd, out, seed != 0) < 0) break;
  }
  frame_reader_free(&rd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  stream_summary chunked, whole;
  /* | 1: seed 0 means "one piece" */
  uint64_t seed = fuzz_hash(data, size, 1469598103934665603ull) | 1;
  read_stream(data, size, seed, &chunked);
  read_stream(data, size, 0, &whole);
  FUZZ_ASSERT(chunked.frames == whole.frames);
  FUZZ_ASSERT(chunked.hash == whole.hash);
  FUZZ_ASSERT(chunked.end == whole.end);
  return 0;
}
