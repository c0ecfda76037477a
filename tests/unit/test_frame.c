/* The frame reader: any split of bytes, several frames at once, limits. */
#include "common/frame.h"
#include "tests/test.h"

static size_t make_frame(uint8_t *out, const char *payload, uint32_t len) {
  frame_put_header(out, len);
  memcpy(out + FRAME_HEADER, payload, len);
  return FRAME_HEADER + len;
}

TEST(several_frames_in_one_read) {
  uint8_t buf[64];
  size_t n = make_frame(buf, "abc", 3);
  n += make_frame(buf + n, "", 0);
  n += make_frame(buf + n, "hello", 5);
  frame_reader r;
  frame_reader_init(&r, 1024);
  ASSERT_EQ_INT(frame_reader_feed(&r, buf, n), 0);
  const uint8_t *p;
  uint32_t len;
  ASSERT_EQ_INT(frame_reader_next(&r, &p, &len), 1);
  ASSERT_EQ_INT(len, 3);
  ASSERT(memcmp(p, "abc", 3) == 0);
  ASSERT_EQ_INT(frame_reader_next(&r, &p, &len), 1);
  ASSERT_EQ_INT(len, 0);
  ASSERT_EQ_INT(frame_reader_next(&r, &p, &len), 1);
  ASSERT_EQ_INT(len, 5);
  ASSERT(memcmp(p, "hello", 5) == 0);
  ASSERT_EQ_INT(frame_reader_next(&r, &p, &len), 0);
  frame_reader_free(&r);
}

TEST(split_at_every_byte_boundary) {
  uint8_t buf[64];
  size_t n = make_frame(buf, "0123456789", 10);
  n += make_frame(buf + n, "xy", 2);
  for (size_t cut = 0; cut <= n; cut++) {
    frame_reader r;
    frame_reader_init(&r, 1024);
    const uint8_t *p;
    uint32_t len;
    int got = 0;
    ASSERT_EQ_INT(frame_reader_feed(&r, buf, cut), 0);
    while (frame_reader_next(&r, &p, &len) == 1) {
      ASSERT_EQ_INT(len, got == 0 ? 10 : 2);
      ASSERT(memcmp(p, got == 0 ? "0123456789" : "xy", len) == 0);
      got++;
    }
    ASSERT_EQ_INT(got, cut >= n ? 2 : cut >= 14 ? 1 : 0);
    ASSERT_EQ_INT(frame_reader_feed(&r, buf + cut, n - cut), 0);
    while (frame_reader_next(&r, &p, &len) == 1) {
      ASSERT_EQ_INT(len, got == 0 ? 10 : 2);
      got++;
    }
    ASSERT_EQ_INT(got, 2);
    frame_reader_free(&r);
  }
}

TEST(one_byte_at_a_time) {
  uint8_t buf[64];
  size_t n = make_frame(buf, "ktune", 5);
  frame_reader r;
  frame_reader_init(&r, 1024);
  const uint8_t *p;
  uint32_t len;
  for (size_t i = 0; i < n; i++) {
    ASSERT_EQ_INT(frame_reader_next(&r, &p, &len), 0);
    ASSERT_EQ_INT(frame_reader_feed(&r, buf + i, 1), 0);
  }
  ASSERT_EQ_INT(frame_reader_next(&r, &p, &len), 1);
  ASSERT_EQ_INT(len, 5);
  frame_reader_free(&r);
}

TEST(zero_length_frame) {
  uint8_t buf[4];
  frame_put_header(buf, 0);
  frame_reader r;
  frame_reader_init(&r, 16);
  frame_reader_feed(&r, buf, 4);
  const uint8_t *p;
  uint32_t len = 99;
  ASSERT_EQ_INT(frame_reader_next(&r, &p, &len), 1);
  ASSERT_EQ_INT(len, 0);
  frame_reader_free(&r);
}

TEST(length_over_maximum_refused_before_buffering) {
  uint8_t hdr[4];
  frame_put_header(hdr, 0x80000000u);
  frame_reader r;
  frame_reader_init(&r, 1 << 20);
  frame_reader_feed(&r, hdr, 4);
  const uint8_t *p;
  uint32_t len;
  ASSERT_EQ_INT(frame_reader_next(&r, &p, &len), FRAME_ETOOBIG);
  /* Nothing near the announced size was allocated. */
  ASSERT_LT_INT(r.cap, 1 << 20);
  frame_reader_free(&r);

  frame_reader_init(&r, 8);
  uint8_t buf[16];
  size_t n = make_frame(buf, "123456789", 9);
  frame_reader_feed(&r, buf, n);
  ASSERT_EQ_INT(frame_reader_next(&r, &p, &len), FRAME_ETOOBIG);
  frame_reader_free(&r);
}

TEST(exactly_maximum_accepted) {
  uint8_t buf[16];
  size_t n = make_frame(buf, "12345678", 8);
  frame_reader r;
  frame_reader_init(&r, 8);
  frame_reader_feed(&r, buf, n);
  const uint8_t *p;
  uint32_t len;
  ASSERT_EQ_INT(frame_reader_next(&r, &p, &len), 1);
  ASSERT_EQ_INT(len, 8);
  frame_reader_free(&r);
}

TEST(buffer_does_not_grow_with_history) {
  uint8_t buf[600];
  char payload[512];
  memset(payload, 'x', sizeof(payload));
  size_t n = make_frame(buf, payload, sizeof(payload));
  frame_reader r;
  frame_reader_init(&r, 4096);
  for (int i = 0; i < 10000; i++) {
    const uint8_t *p;
    uint32_t len;
    ASSERT_EQ_INT(frame_reader_feed(&r, buf, n), 0);
    ASSERT_EQ_INT(frame_reader_next(&r, &p, &len), 1);
  }
  ASSERT_LT_INT(r.cap, 8192);
  frame_reader_free(&r);
}

TEST(fd_helpers_round_trip_and_limits) {
  int fds[2];
  ASSERT_EQ_INT(pipe(fds), 0);
  ASSERT_EQ_INT(frame_write_fd(fds[1], "abc", 3), 0);
  uint8_t hdr[4];
  frame_put_header(hdr, 1000);
  ASSERT_EQ_INT(write(fds[1], hdr, 4), 4);
  uint8_t *p;
  uint32_t len;
  ASSERT_EQ_INT(frame_read_fd(fds[0], 100, &p, &len), 0);
  ASSERT_EQ_INT(len, 3);
  free(p);
  ASSERT_EQ_INT(frame_read_fd(fds[0], 100, &p, &len), FRAME_ETOOBIG);
  /* A truncated frame is an error, not a hang, once the writer is gone. */
  frame_put_header(hdr, 10);
  ASSERT_EQ_INT(write(fds[1], hdr, 4), 4);
  ASSERT_EQ_INT(write(fds[1], "abc", 3), 3);
  close(fds[1]);
  ASSERT_EQ_INT(frame_read_fd(fds[0], 100, &p, &len), -1);
  close(fds[0]);
}

/* A frame larger than the pipe goes out in several partial writes; the
 * reader (a child) still gets it whole and byte for byte, and an empty
 * frame is just its header. */
TEST(fd_write_survives_partial_writes) {
  enum { N = 1 << 20 };
  static uint8_t big[N];
  for (size_t i = 0; i < N; i++) big[i] = (uint8_t)(i * 7 + 3);
  int fds[2];
  ASSERT_EQ_INT(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT(pid >= 0);
  if (pid == 0) {
    close(fds[1]);
    uint8_t *p;
    uint32_t len;
    int bad = frame_read_fd(fds[0], N, &p, &len) != 0 || len != N || memcmp(p, big, N) != 0;
    if (!bad) free(p);
    bad = bad || frame_read_fd(fds[0], N, &p, &len) != 0 || len != 0;
    _exit(bad);
  }
  close(fds[0]);
  ASSERT_EQ_INT(frame_write_fd(fds[1], big, N), 0);
  ASSERT_EQ_INT(frame_write_fd(fds[1], NULL, 0), 0);
  close(fds[1]);
  int status;
  ASSERT_EQ_INT(waitpid(pid, &status, 0), pid);
  ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST_LIST(TEST_ENTRY(several_frames_in_one_read), TEST_ENTRY(split_at_every_byte_boundary),
          TEST_ENTRY(one_byte_at_a_time), TEST_ENTRY(zero_length_frame),
          TEST_ENTRY(length_over_maximum_refused_before_buffering),
          TEST_ENTRY(exactly_maximum_accepted), TEST_ENTRY(buffer_does_not_grow_with_history),
          TEST_ENTRY(fd_helpers_round_trip_and_limits),
          TEST_ENTRY(fd_write_survives_partial_writes))
