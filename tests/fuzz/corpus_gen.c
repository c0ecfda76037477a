/* Writes the binary seed inputs of fuzz_frame and fuzz_task_proto:
 * real frames and TaskSpecs made with the same encoder the programs use,
 * plus a few near misses. The output is committed under
 * tests/fuzz/corpus/; run this (scripts/fuzz --regen-corpus) after a
 * change to proto/ktune.proto.
 *   fuzz_corpus_gen OUTDIR        writes OUTDIR/frame/ and OUTDIR/task_proto/ */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/frame.h"
#include "common/wire.h"

typedef struct {
  uint8_t *buf;
  size_t len, cap;
} bytes;

static void put(bytes *b, const void *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    uint8_t *nb = realloc(b->buf, cap);
    if (!nb) {
      perror("corpus_gen");
      exit(1);
    }
    b->buf = nb;
    b->cap = cap;
  }
  memcpy(b->buf + b->len, p, n);
  b->len += n;
}

static void put_env(bytes *b, const Ktune__Envelope *env) {
  uint8_t *f;
  size_t n;
  if (wire_pack(env, &f, &n) < 0) {
    fprintf(stderr, "corpus_gen: cannot pack\n");
    exit(1);
  }
  put(b, f, n);
  free(f);
}

static int save(const char *dir, const char *name, const bytes *b) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(b->buf ? (void *)b->buf : (void *)"", 1, b->len, f) != b->len || fclose(f) != 0) {
    fprintf(stderr, "corpus_gen: cannot write %s\n", path);
    return -1;
  }
  return 0;
}

/* ---- a small task spec, in wire form ---- */

static char *constraints_ok[] = {"TI * TJ <= 4096", "M % TI == 0", "N != 0 && M % N == 0"};
static int64_t ti_values[] = {1, 2, 4, 8, 16};
static int64_t tj_values[] = {4, 8, 16};

static void make_task(Ktune__TaskSpec *t, Ktune__Param **consts, Ktune__Arg **args,
                      Ktune__Knob **knobs) {
  static Ktune__Param m = KTUNE__PARAM__INIT, n = KTUNE__PARAM__INIT;
  static Ktune__Arg c = KTUNE__ARG__INIT, a = KTUNE__ARG__INIT;
  static Ktune__Knob ti = KTUNE__KNOB__INIT, tj = KTUNE__KNOB__INIT;
  m.name = "M";
  m.value = 64;
  n.name = "N";
  n.value = 32;
  c.name = "C";
  c.type = "float";
  c.count = "M*N";
  c.output = 1;
  a.name = "A";
  a.type = "double";
  a.count = "max(M, N) * 2";
  ti.name = "TI";
  ti.values = ti_values;
  ti.n_values = sizeof ti_values / sizeof ti_values[0];
  tj.name = "TJ";
  tj.values = tj_values;
  tj.n_values = sizeof tj_values / sizeof tj_values[0];
  consts[0] = &m;
  consts[1] = &n;
  args[0] = &c;
  args[1] = &a;
  knobs[0] = &ti;
  knobs[1] = &tj;
  ktune__task_spec__init(t);
  t->name = "tiny";
  t->source = "void k(float *C, const double *A) { C[0] = (float)A[0]; }\n";
  t->entry = "k";
  t->reference = "k_ref";
  t->constants = consts;
  t->n_constants = 2;
  t->args = args;
  t->n_args = 2;
  t->knobs = knobs;
  t->n_knobs = 2;
  t->constraints = constraints_ok;
  t->n_constraints = 3;
  t->flops = "2 * M * N";
  t->rtol = 1e-4;
  t->atol = 1e-5;
}

static void put_task(bytes *b, const Ktune__TaskSpec *t) {
  size_t n = ktune__task_spec__get_packed_size(t);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) exit(1);
  ktune__task_spec__pack(t, buf);
  put(b, buf, n);
  free(buf);
}

static int write_task_proto(const char *dir) {
  Ktune__TaskSpec t;
  Ktune__Param *consts[2];
  Ktune__Arg *args[2];
  Ktune__Knob *knobs[2];
  int rc = 0;
  bytes b = {0};

  make_task(&t, consts, args, knobs);
  put_task(&b, &t);
  rc |= save(dir, "valid", &b);

  b.len = 0;
  t.n_constraints = 0;
  t.n_knobs = 0;
  t.reference = "";
  put_task(&b, &t);
  rc |= save(dir, "no-knobs", &b);

  /* near misses: each one check away from valid */
  make_task(&t, consts, args, knobs);
  b.len = 0;
  t.flops = "M * TI";
  put_task(&b, &t);
  rc |= save(dir, "flops-names-knob", &b);

  make_task(&t, consts, args, knobs);
  b.len = 0;
  knobs[1]->name = "TI";
  put_task(&b, &t);
  rc |= save(dir, "duplicate-knob", &b);

  make_task(&t, consts, args, knobs);
  b.len = 0;
  args[0]->count = "M - 64";
  put_task(&b, &t);
  rc |= save(dir, "count-zero", &b);

  make_task(&t, consts, args, knobs);
  b.len = 0;
  args[1]->type = "half";
  t.rtol = -1;
  put_task(&b, &t);
  rc |= save(dir, "bad-type", &b);
  free(b.buf);
  return rc;
}

/* ---- frames ---- */

static int write_frames(const char *dir) {
  int rc = 0;
  bytes b = {0};
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;

  /* a runner's first words, then a heartbeat and a result */
  static char *backends[] = {"tcc", "cc"};
  Ktune__Hello hello = KTUNE__HELLO__INIT;
  hello.version = WIRE_PROTOCOL_VERSION;
  hello.role = KTUNE__ROLE__ROLE_RUNNER;
  hello.name = "board-1";
  hello.key = "rpi4";
  hello.host = "pi";
  hello.arch = "aarch64";
  hello.backends = backends;
  hello.n_backends = 2;
  hello.slots = 1;
  env.msg_case = KTUNE__ENVELOPE__MSG_HELLO;
  env.hello = &hello;
  put_env(&b, &env);
  rc |= save(dir, "hello", &b);

  Ktune__Heartbeat hb = KTUNE__HEARTBEAT__INIT;
  hb.sent_ms = 123456;
  env.msg_case = KTUNE__ENVELOPE__MSG_HEARTBEAT;
  env.heartbeat = &hb;
  put_env(&b, &env);
  static double costs[] = {0.0125, 0.0124, 0.0126};
  Ktune__RunResult rr = KTUNE__RUN_RESULT__INIT;
  rr.job_id = 7;
  rr.status = WIRE_TRIAL(OK);
  rr.error = "";
  rr.costs_s = costs;
  rr.n_costs_s = 3;
  rr.number = 1;
  rr.clock = "CLOCK_MONOTONIC_RAW";
  env.msg_case = KTUNE__ENVELOPE__MSG_RUN_RESULT;
  env.run_result = &rr;
  put_env(&b, &env);
  rc |= save(dir, "runner-session", &b);

  /* results that must be refused: NaN, negative, none */
  static double bad_costs[] = {NAN, -1.0, INFINITY};
  b.len = 0;
  rr.costs_s = bad_costs;
  put_env(&b, &env);
  rr.n_costs_s = 0;
  rr.status = WIRE_TRIAL(WRONG_ANSWER);
  rr.error = "max abs error 3.5 at C[17]";
  put_env(&b, &env);
  rc |= save(dir, "bad-results", &b);

  /* a client: hello, then a session with a real task */
  b.len = 0;
  Ktune__Hello client = KTUNE__HELLO__INIT;
  client.version = WIRE_PROTOCOL_VERSION;
  client.role = KTUNE__ROLE__ROLE_CLIENT;
  client.name = "alice";
  env.msg_case = KTUNE__ENVELOPE__MSG_HELLO;
  env.hello = &client;
  put_env(&b, &env);
  Ktune__TaskSpec task;
  Ktune__Param *consts[2];
  Ktune__Arg *args[2];
  Ktune__Knob *knobs[2];
  make_task(&task, consts, args, knobs);
  Ktune__SubmitSession sub = KTUNE__SUBMIT_SESSION__INIT;
  sub.task = &task;
  sub.key = "rpi4";
  sub.trials = 16;
  sub.strategy = "grid";
  sub.seed = 1;
  sub.compiler = "tcc";
  Ktune__Timing sub_timing = KTUNE__TIMING__INIT;
  sub_timing.repeat = 3;
  sub.timing = &sub_timing;
  sub.check = 1;
  env.msg_case = KTUNE__ENVELOPE__MSG_SUBMIT;
  env.submit = &sub;
  put_env(&b, &env);
  Ktune__WatchSession watch = KTUNE__WATCH_SESSION__INIT;
  watch.session_id = 1;
  env.msg_case = KTUNE__ENVELOPE__MSG_WATCH;
  env.watch = &watch;
  put_env(&b, &env);
  rc |= save(dir, "client-submit", &b);

  b.len = 0;
  sub.strategy = "annealing";
  knobs[0]->n_values = 0;
  env.msg_case = KTUNE__ENVELOPE__MSG_SUBMIT;
  env.submit = &sub; /* the oneof members share storage with watch */
  put_env(&b, &env);
  rc |= save(dir, "submit-bad-task", &b);

  /* tracker -> agents */
  b.len = 0;
  static Ktune__Param d1 = KTUNE__PARAM__INIT, d2 = KTUNE__PARAM__INIT;
  static Ktune__Param *defines[] = {&d1, &d2};
  d1.name = "M";
  d1.value = 64;
  d2.name = "TI";
  d2.value = 8;
  Ktune__BuildJob bj = KTUNE__BUILD_JOB__INIT;
  bj.job_id = 3;
  bj.task = "tiny";
  bj.source = "void k(float *C) { C[0] = TI; }\n";
  bj.defines = defines;
  bj.n_defines = 2;
  bj.compiler = "tcc";
  bj.timeout_ms = 10000;
  env.msg_case = KTUNE__ENVELOPE__MSG_BUILD_JOB;
  env.build_job = &bj;
  put_env(&b, &env);
  static uint8_t elf[] = {0x7f, 'E', 'L', 'F', 2, 1, 1, 0};
  Ktune__BuildResult br = KTUNE__BUILD_RESULT__INIT;
  br.job_id = 3;
  br.status = WIRE_TRIAL(OK);
  br.artifact.data = elf;
  br.artifact.len = sizeof elf;
  br.build_s = 0.0004;
  br.compiler_id = "tcc 0.9.27";
  env.msg_case = KTUNE__ENVELOPE__MSG_BUILD_RESULT;
  env.build_result = &br;
  put_env(&b, &env);
  static Ktune__Buffer bc = KTUNE__BUFFER__INIT, ba = KTUNE__BUFFER__INIT;
  static Ktune__Buffer *bufs[] = {&bc, &ba};
  bc.type = "float";
  bc.count = 2048;
  bc.output = 1;
  bc.name = "C";
  ba.type = "int64";
  ba.count = UINT64_MAX / 4;
  ba.name = "A";
  Ktune__RunJob rj = KTUNE__RUN_JOB__INIT;
  rj.job_id = 4;
  rj.artifact.data = elf;
  rj.artifact.len = sizeof elf;
  rj.entry = "k";
  rj.reference = "k_ref";
  rj.buffers = bufs;
  rj.n_buffers = 2;
  Ktune__Timing rj_timing = KTUNE__TIMING__INIT;
  rj_timing.number = 1;
  rj_timing.repeat = 3;
  rj.timing = &rj_timing;
  rj.check = 1;
  env.msg_case = KTUNE__ENVELOPE__MSG_RUN_JOB;
  env.run_job = &rj;
  put_env(&b, &env);
  rc |= save(dir, "jobs", &b);

  /* tracker -> client */
  b.len = 0;
  Ktune__Welcome w = KTUNE__WELCOME__INIT;
  w.version = 1;
  w.agent_id = 9;
  w.heartbeat_ms = 1000;
  w.timeout_ms = 10000;
  env.msg_case = KTUNE__ENVELOPE__MSG_WELCOME;
  env.welcome = &w;
  put_env(&b, &env);
  Ktune__SessionProgress pr = KTUNE__SESSION_PROGRESS__INIT;
  pr.session_id = 1;
  pr.state = "running";
  pr.trials = 16;
  pr.trials_done = 8;
  pr.best_gflops = 2.1;
  pr.best_config = defines;
  pr.n_best_config = 2;
  env.msg_case = KTUNE__ENVELOPE__MSG_PROGRESS;
  env.progress = &pr;
  put_env(&b, &env);
  static Ktune__AgentInfo ai = KTUNE__AGENT_INFO__INIT;
  static Ktune__AgentInfo *agents[] = {&ai};
  ai.role = KTUNE__ROLE__ROLE_BUILDER;
  ai.name = "b1";
  ai.state = "idle";
  static Ktune__SessionInfo si = KTUNE__SESSION_INFO__INIT;
  static Ktune__SessionInfo *sessions[] = {&si};
  si.id = 1;
  si.key = "rpi4";
  si.state = "done";
  Ktune__StatusReply st = KTUNE__STATUS_REPLY__INIT;
  st.uptime_s = 12.5;
  st.agents = agents;
  st.n_agents = 1;
  st.sessions = sessions;
  st.n_sessions = 1;
  env.msg_case = KTUNE__ENVELOPE__MSG_STATUS_REPLY;
  env.status_reply = &st;
  put_env(&b, &env);
  static char *lines[] = {"{\"task\":\"tiny\"}"};
  Ktune__ExportChunk ex = KTUNE__EXPORT_CHUNK__INIT;
  ex.lines = lines;
  ex.n_lines = 1;
  ex.last = 1;
  env.msg_case = KTUNE__ENVELOPE__MSG_EXPORT_CHUNK;
  env.export_chunk = &ex;
  put_env(&b, &env);
  Ktune__Error er = KTUNE__ERROR__INIT;
  er.code = "BAD_FRAME";
  er.message = "frame of 3 bytes is not a ktune message";
  env.msg_case = KTUNE__ENVELOPE__MSG_ERROR;
  env.error = &er;
  put_env(&b, &env);
  rc |= save(dir, "tracker-replies", &b);

  /* hostile framing: what the integration test also throws */
  uint8_t hdr[FRAME_HEADER];
  b.len = 0;
  frame_put_header(hdr, 0x80000000u);
  put(&b, hdr, sizeof hdr);
  put(&b, "xyz", 3);
  rc |= save(dir, "length-2-31", &b);

  b.len = 0;
  frame_put_header(hdr, 100);
  put(&b, hdr, sizeof hdr);
  put(&b, "\x0a\x05", 2);
  rc |= save(dir, "truncated", &b);

  b.len = 0;
  frame_put_header(hdr, 0);
  put(&b, hdr, sizeof hdr);
  rc |= save(dir, "empty-frame", &b);

  b.len = 0;
  frame_put_header(hdr, 5);
  put(&b, hdr, sizeof hdr);
  put(&b, "\xff\xff\xff\xff\xff", 5);
  rc |= save(dir, "garbage", &b);
  free(b.buf);
  return rc;
}

static int make_dir(const char *path) {
  if (mkdir(path, 0755) == 0 || errno == EEXIST) return 0;
  fprintf(stderr, "corpus_gen: cannot create %s: %s\n", path, strerror(errno));
  return -1;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: fuzz_corpus_gen OUTDIR\n");
    return 2;
  }
  char frame_dir[1024], proto_dir[1024];
  snprintf(frame_dir, sizeof frame_dir, "%s/frame", argv[1]);
  snprintf(proto_dir, sizeof proto_dir, "%s/task_proto", argv[1]);
  if (make_dir(argv[1]) || make_dir(frame_dir) || make_dir(proto_dir)) return 1;
  int rc = write_frames(frame_dir);
  rc |= write_task_proto(proto_dir);
  return rc ? 1 : 0;
}
