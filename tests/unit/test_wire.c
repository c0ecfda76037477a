/* Envelope encode/decode: every field survives, garbage is refused. */
#include "common/frame.h"
#include "common/wire.h"
#include "tests/test.h"

static Ktune__Envelope *round_trip(const Ktune__Envelope *env) {
  uint8_t *buf;
  size_t len;
  ASSERT_EQ_INT(wire_pack(env, &buf, &len), 0);
  frame_reader r;
  frame_reader_init(&r, FRAME_MAX_DEFAULT);
  frame_reader_feed(&r, buf, len);
  const uint8_t *p;
  uint32_t n;
  ASSERT_EQ_INT(frame_reader_next(&r, &p, &n), 1);
  ASSERT_EQ_INT(n, len - FRAME_HEADER);
  Ktune__Envelope *out = wire_unpack(p, n);
  frame_reader_free(&r);
  free(buf);
  ASSERT_NOT_NULL(out);
  return out;
}

TEST(hello_round_trip) {
  Ktune__Hello h = KTUNE__HELLO__INIT;
  char *backends[] = {"tcc", "cc"};
  h.version = WIRE_PROTOCOL_VERSION;
  h.role = KTUNE__ROLE__ROLE_RUNNER;
  h.name = "board-7";
  h.key = "rpi4";
  h.host = "pi";
  h.arch = "aarch64";
  h.backends = backends;
  h.n_backends = 2;
  h.slots = 1;
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_HELLO;
  env.hello = &h;
  Ktune__Envelope *o = round_trip(&env);
  ASSERT_EQ_INT(o->msg_case, KTUNE__ENVELOPE__MSG_HELLO);
  ASSERT_EQ_STR(wire_msg_name(o), "hello");
  ASSERT_EQ_INT(o->hello->version, WIRE_PROTOCOL_VERSION);
  ASSERT_EQ_INT(o->hello->role, KTUNE__ROLE__ROLE_RUNNER);
  ASSERT_EQ_STR(o->hello->name, "board-7");
  ASSERT_EQ_STR(o->hello->key, "rpi4");
  ASSERT_EQ_STR(o->hello->arch, "aarch64");
  ASSERT_EQ_INT(o->hello->n_backends, 2);
  ASSERT_EQ_STR(o->hello->backends[1], "cc");
  wire_free(o);
}

TEST(run_job_with_artifact_round_trip) {
  uint8_t art[3000];
  for (size_t i = 0; i < sizeof(art); i++) art[i] = (uint8_t)(i * 7);
  Ktune__Buffer b0 = KTUNE__BUFFER__INIT, b1 = KTUNE__BUFFER__INIT;
  b0.type = "float";
  b0.count = 1u << 20;
  b0.output = 1;
  b0.name = "C";
  b1.type = "int64";
  b1.count = 5;
  Ktune__Buffer *bufs[] = {&b0, &b1};
  Ktune__RunJob j = KTUNE__RUN_JOB__INIT;
  Ktune__Timing tm = KTUNE__TIMING__INIT;
  j.timing = &tm;
  j.job_id = 1ull << 40;
  j.artifact.data = art;
  j.artifact.len = sizeof(art);
  j.entry = "matmul";
  j.reference = "matmul_ref";
  j.buffers = bufs;
  j.n_buffers = 2;
  j.seed = 1;
  tm.number = 4;
  tm.repeat = 3;
  j.check = 1;
  j.rtol = 1e-4;
  j.atol = 1e-5;
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_RUN_JOB;
  env.run_job = &j;
  Ktune__Envelope *o = round_trip(&env);
  Ktune__RunJob *r = o->run_job;
  ASSERT_EQ_U64(r->job_id, 1ull << 40);
  ASSERT_EQ_INT(r->artifact.len, sizeof(art));
  ASSERT(memcmp(r->artifact.data, art, sizeof(art)) == 0);
  ASSERT_EQ_INT(r->n_buffers, 2);
  ASSERT_EQ_U64(r->buffers[0]->count, 1u << 20);
  ASSERT_EQ_STR(r->buffers[0]->name, "C");
  ASSERT_EQ_INT(r->buffers[0]->output, 1);
  ASSERT_EQ_STR(r->buffers[1]->type, "int64");
  ASSERT_EQ_INT(r->buffers[1]->output, 0);
  ASSERT_EQ_INT(r->timing->number, 4);
  ASSERT_EQ_DBL(r->rtol, 1e-4, 0);
  wire_free(o);
}

TEST(run_result_costs_round_trip) {
  double costs[] = {1.5e-3, 1.25e-3, 2e-3};
  Ktune__RunResult rr = KTUNE__RUN_RESULT__INIT;
  rr.job_id = 9;
  rr.status = KTUNE__TRIAL_STATUS__TRIAL_WRONG_ANSWER;
  rr.error = "C[3]: got 1 expected 2";
  rr.costs_s = costs;
  rr.n_costs_s = 3;
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_RUN_RESULT;
  env.run_result = &rr;
  Ktune__Envelope *o = round_trip(&env);
  ASSERT_EQ_STR(wire_status_name(o->run_result->status), "WRONG_ANSWER");
  ASSERT_EQ_INT(o->run_result->n_costs_s, 3);
  ASSERT_EQ_DBL(o->run_result->costs_s[1], 1.25e-3, 0);
  wire_free(o);
}

TEST(empty_and_garbage_payloads_refused) {
  /* An empty payload decodes to an Envelope with nothing in it. */
  ASSERT_NULL(wire_unpack((const uint8_t *)"", 0));
  const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02};
  ASSERT_NULL(wire_unpack(junk, sizeof(junk)));
  /* A length-delimited field whose length runs past the end. */
  const uint8_t trunc[] = {0x0a, 0x40, 0x01};
  ASSERT_NULL(wire_unpack(trunc, sizeof(trunc)));
  /* An unknown field numbered 0 (a two-byte tag) decodes but would not
   * decode again after re-encoding: refused (found by fuzzing). */
  const uint8_t zero[] = {0x1a, 0x00, 0x80, 0x00, 0x00};
  ASSERT_NULL(wire_unpack(zero, sizeof(zero)));
  uint8_t rnd[256];
  uint64_t s = 88172645463325252ull;
  for (int round = 0; round < 2000; round++) {
    for (size_t i = 0; i < sizeof(rnd); i++) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      rnd[i] = (uint8_t)s;
    }
    wire_free(wire_unpack(rnd, (size_t)(s % sizeof(rnd))));
  }
}

TEST(fd_round_trip) {
  int fds[2];
  ASSERT_EQ_INT(pipe(fds), 0);
  Ktune__Heartbeat hb = KTUNE__HEARTBEAT__INIT;
  hb.sent_ms = 12345;
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_HEARTBEAT;
  env.heartbeat = &hb;
  ASSERT_EQ_INT(wire_write_fd(fds[1], &env), 0);
  Ktune__Envelope *o = wire_read_fd(fds[0], 1024);
  ASSERT_NOT_NULL(o);
  ASSERT_EQ_U64(o->heartbeat->sent_ms, 12345);
  wire_free(o);
  close(fds[1]);
  ASSERT_NULL(wire_read_fd(fds[0], 1024));
  close(fds[0]);
}

TEST_LIST(TEST_ENTRY(hello_round_trip), TEST_ENTRY(run_job_with_artifact_round_trip),
          TEST_ENTRY(run_result_costs_round_trip), TEST_ENTRY(empty_and_garbage_payloads_refused),
          TEST_ENTRY(fd_round_trip))
