/* Who may talk to the tracker, and what hostile peers cannot do to it:
 * tokens with roles, challenge-response both ways, authenticated frames,
 * and a tracker that keeps serving through garbage and idle connections. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/auth.h"
#include "common/frame.h"
#include "common/wire.h"
#include "tests/integration/harness.h"
#include "tests/test.h"

#define T_ALICE "alice-admin-token-0123456789"
#define T_BOB "bob-client-token-0123456789"
#define T_CAROL "carol-client-token-0123456789"
#define T_RUNNER "runner-r1-token-0123456789"
#define T_BUILDER "builder-b1-token-0123456789"

static void tokens_file(char *path, size_t len) {
  farm_tokens_file(path, len, "# role name token\nadmin alice " T_ALICE "\nclient bob " T_BOB
                              "\nclient carol " T_CAROL "\nrunner r1 " T_RUNNER "\nbuilder b1 "
                              T_BUILDER "\n");
}

static void as_user(const char *name, const char *token) {
  setenv("KTUNE_USER", name, 1);
  if (token) setenv("KTUNE_TOKEN", token, 1);
  else unsetenv("KTUNE_TOKEN");
}

static pid_t agent_with_token(farm *f, int runner, const char *name, const char *token) {
  as_user(name, token);
  pid_t p = runner ? farm_runner(f, name, "k", NULL) : farm_builder(f, name);
  as_user("alice", T_ALICE);
  return p;
}

static int log_contains(const farm *f, const char *text) {
  FILE *lf = fopen(f->log, "r");
  char line[2048];
  int found = 0;
  while (lf && !found && fgets(line, sizeof(line), lf)) found = strstr(line, text) != NULL;
  if (lf) fclose(lf);
  return found;
}

static void wait_log(const farm *f, const char *text) {
  for (int i = 0; i < 500 && !log_contains(f, text); i++) proc_sleep_ms(20);
  if (!log_contains(f, text)) {
    farm_print_log(f);
    TEST_FAIL("the farm log never said \"%s\"", text);
  }
}

TEST(wrong_or_missing_tokens_are_refused) {
  char tokens[300];
  tokens_file(tokens, sizeof(tokens));
  farm f;
  char *opts[] = {"--tokens", tokens, "--auth-delay-ms", "100", NULL};
  farm_start(&f, opts);
  as_user("alice", T_ALICE);
  pid_t bad = agent_with_token(&f, 1, "r1", "not-the-runner-token-000");
  pid_t none = agent_with_token(&f, 1, "r2", NULL);
  pid_t good = agent_with_token(&f, 1, "r1", T_RUNNER);
  farm_wait_agent(&f, "r1", 1);
  wait_log(&f, "failed login as runner r1");
  wait_log(&f, "authentication failed for r1");
  wait_log(&f, "requires a token");
  json_t *st = farm_status(&f);
  ASSERT_EQ_INT(json_array_size(json_object_get(st, "agents")), 1);
  ASSERT_NULL(farm_agent(st, "r2"));
  json_decref(st);
  /* A client without a token, or with someone else's. */
  char out[4096];
  char *status[] = {"status", NULL};
  as_user("bob", NULL);
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 10000, status), 1);
  ASSERT_CONTAINS(out, "requires a token");
  as_user("bob", T_CAROL);
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 10000, status), 1);
  ASSERT_CONTAINS(out, "authentication failed for bob");
  /* A runner token does not make a client. */
  as_user("r1", T_RUNNER);
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 10000, status), 1);
  ASSERT_CONTAINS(out, "not for a client");
  as_user("bob", T_BOB);
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 10000, status), 0);
  proc_stop(bad, SIGKILL, 1000);
  proc_stop(none, SIGKILL, 1000);
  proc_stop(good, SIGTERM, 5000);
  farm_stop_tracker(&f);
}

TEST(tracker_without_tokens_turns_away_agents_that_hold_one) {
  farm f;
  farm_start(&f, NULL); /* no tokens at all */
  unsetenv("KTUNE_TOKEN");
  pid_t b = farm_builder(&f, "b1");
  setenv("KTUNE_TOKEN", T_RUNNER, 1);
  pid_t r = farm_runner(&f, "r1", "k", NULL);
  unsetenv("KTUNE_TOKEN");
  wait_log(&f, "cannot prove it holds your token");
  char *args[] = {"matmul", "-D", "M=16", "--trials", "2", "--key", "k", "--wait-timeout",
                  "1500", NULL};
  long id = farm_submit(&f, args);
  char out[4096];
  ASSERT_EQ_INT(farm_wait(&f, id, 30000, out, sizeof(out)), 1);
  ASSERT_CONTAINS(out, "no runner with key 'k'");
  sqlite3 *db = farm_db(&f);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM trials"), 0);
  sqlite3_close(db);
  proc_stop(r, SIGKILL, 1000);
  proc_stop(b, SIGTERM, 5000);
  farm_stop_tracker(&f);
}

/* A fake tracker that welcomes a runner without proving it holds the
 * runner's token, then hands it a job: the runner must not run it. */
TEST(runner_refuses_a_tracker_that_does_not_prove_its_token) {
  farm f = {0};
  int ls = farm_listen(f.addr, sizeof(f.addr));
  proc_tmpdir(f.dir, sizeof(f.dir));
  snprintf(f.log, sizeof(f.log), "%s/farm.log", f.dir);
  setenv("KTUNE_TOKEN", T_RUNNER, 1);
  pid_t r = farm_runner(&f, "r1", "k", NULL);
  unsetenv("KTUNE_TOKEN");
  struct timeval tv = {10, 0};
  setsockopt(ls, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  int fd = accept(ls, NULL, NULL);
  ASSERT_GE_INT(fd, 0);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  Ktune__Envelope *h = wire_read_fd(fd, FRAME_MAX_DEFAULT);
  ASSERT_NOT_NULL(h);
  ASSERT_EQ_INT(h->msg_case, KTUNE__ENVELOPE__MSG_HELLO);
  ASSERT_EQ_INT(h->hello->nonce.len, AUTH_NONCE);
  wire_free(h);
  Ktune__Welcome w = KTUNE__WELCOME__INIT;
  w.version = WIRE_PROTOCOL_VERSION;
  w.heartbeat_ms = 1000;
  w.timeout_ms = 10000;
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_WELCOME;
  env.welcome = &w;
  ASSERT_EQ_INT(wire_write_fd(fd, &env), 0);
  Ktune__RunJob job = KTUNE__RUN_JOB__INIT;
  job.job_id = 1;
  job.entry = "k";
  env.msg_case = KTUNE__ENVELOPE__MSG_RUN_JOB;
  env.run_job = &job;
  wire_write_fd(fd, &env); /* may fail: the runner may have hung up already */
  /* Nothing comes back but the end of the connection. */
  ASSERT_NULL(wire_read_fd(fd, FRAME_MAX_DEFAULT));
  close(fd);
  close(ls);
  wait_log(&f, "did not prove it holds this runner's token");
  proc_stop(r, SIGTERM, 5000);
}


/* Logs in as bob by hand; returns the socket with mac ready. */
static int login(const farm *f, auth_stream *mac) {
  ASSERT_EQ_INT(auth_init(), 0);
  int fd = farm_dial(f);
  uint8_t pn[AUTH_NONCE], tn[AUTH_NONCE], m[AUTH_MAC];
  auth_nonce(pn);
  Ktune__Hello h = KTUNE__HELLO__INIT;
  h.version = WIRE_PROTOCOL_VERSION;
  h.role = KTUNE__ROLE__ROLE_CLIENT;
  h.name = "bob";
  h.nonce.data = pn;
  h.nonce.len = AUTH_NONCE;
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_HELLO;
  env.hello = &h;
  ASSERT_EQ_INT(wire_write_fd(fd, &env), 0);
  Ktune__Envelope *ch = wire_read_fd(fd, FRAME_MAX_DEFAULT);
  ASSERT_NOT_NULL(ch);
  ASSERT_EQ_INT(ch->msg_case, KTUNE__ENVELOPE__MSG_CHALLENGE);
  memcpy(tn, ch->challenge->nonce.data, AUTH_NONCE);
  wire_free(ch);
  auth_peer_mac(T_BOB, pn, tn, "client", "bob", m);
  Ktune__Auth au = KTUNE__AUTH__INIT;
  au.mac.data = m;
  au.mac.len = AUTH_MAC;
  env.msg_case = KTUNE__ENVELOPE__MSG_AUTH;
  env.auth = &au;
  ASSERT_EQ_INT(wire_write_fd(fd, &env), 0);
  Ktune__Envelope *w = wire_read_fd(fd, FRAME_MAX_DEFAULT);
  ASSERT_NOT_NULL(w);
  ASSERT_EQ_INT(w->msg_case, KTUNE__ENVELOPE__MSG_WELCOME);
  uint8_t proof[AUTH_MAC];
  auth_tracker_proof(T_BOB, pn, tn, proof);
  ASSERT_EQ_INT(w->welcome->proof.len, AUTH_MAC);
  ASSERT(auth_equal(proof, w->welcome->proof.data, AUTH_MAC));
  ASSERT_EQ_STR(w->welcome->granted, "client");
  wire_free(w);
  auth_session_key(T_BOB, pn, tn, m);
  auth_stream_start(mac, m, 0);
  return fd;
}

static Ktune__Envelope status_request(Ktune__StatusRequest *req) {
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_STATUS_REQUEST;
  env.status_request = req;
  return env;
}

/* The next message that is not a heartbeat. */
static Ktune__Envelope *read_reply(int fd, auth_stream *mac) {
  for (int i = 0; i < 100; i++) {
    int forged;
    Ktune__Envelope *m = wire_read_fd_mac(fd, FRAME_MAX_DEFAULT, mac, &forged);
    ASSERT_EQ_INT(forged, 0);
    if (!m || m->msg_case != KTUNE__ENVELOPE__MSG_HEARTBEAT) return m;
    wire_free(m);
  }
  return NULL;
}

TEST(altered_frame_after_login_closes_the_connection) {
  char tokens[300];
  tokens_file(tokens, sizeof(tokens));
  farm f;
  char *opts[] = {"--tokens", tokens, NULL};
  farm_start(&f, opts);
  auth_stream mac;
  int fd = login(&f, &mac);
  Ktune__StatusRequest req = KTUNE__STATUS_REQUEST__INIT;
  Ktune__Envelope env = status_request(&req);
  ASSERT_EQ_INT(wire_write_fd_mac(fd, &env, &mac), 0);
  Ktune__Envelope *r = read_reply(fd, &mac);
  ASSERT_NOT_NULL(r);
  ASSERT_EQ_INT(r->msg_case, KTUNE__ENVELOPE__MSG_STATUS_REPLY);
  wire_free(r);
  /* The same request with one bit of the payload flipped. */
  uint8_t *frame;
  size_t len;
  ASSERT_EQ_INT(wire_pack_mac(&env, &mac, &frame, &len), 0);
  frame[FRAME_HEADER] ^= 0x01;
  ASSERT_EQ_INT(write(fd, frame, len), (ssize_t)len);
  free(frame);
  r = read_reply(fd, &mac);
  ASSERT_NULL(r); /* closed, nothing answered */
  close(fd);
  /* A replayed frame (right bytes, old sequence number) fails too. */
  fd = login(&f, &mac);
  ASSERT_EQ_INT(wire_pack_mac(&env, &mac, &frame, &len), 0);
  ASSERT_EQ_INT(write(fd, frame, len), (ssize_t)len);
  r = read_reply(fd, &mac);
  ASSERT_NOT_NULL(r);
  wire_free(r);
  ASSERT_EQ_INT(write(fd, frame, len), (ssize_t)len);
  free(frame);
  ASSERT_NULL(read_reply(fd, &mac));
  close(fd);
  wait_log(&f, "failed authentication");
  farm_stop_tracker(&f);
}

typedef struct {
  const farm *f;
  volatile int stop;
} dribble_ctx;

/* A peer that sends a hello one byte a second. */
static void *dribble(void *arg) {
  dribble_ctx *d = arg;
  int fd = farm_dial(d->f);
  uint8_t hdr[4];
  frame_put_header(hdr, 200);
  for (int i = 0; i < 30 && !d->stop; i++) {
    if (write(fd, &hdr[i % 4], 1) != 1) break;
    proc_sleep_ms(1000);
  }
  close(fd);
  return NULL;
}

TEST(hostile_peers_and_idle_connections_do_not_stop_a_session) {
  char tokens[300];
  tokens_file(tokens, sizeof(tokens));
  farm f;
  char *opts[] = {"--tokens", tokens, "--hello-timeout-ms", "2000", NULL};
  farm_start(&f, opts);
  as_user("alice", T_ALICE);
  pid_t b = agent_with_token(&f, 0, "b1", T_BUILDER);
  pid_t r = agent_with_token(&f, 1, "r1", T_RUNNER);
  farm_wait_agent(&f, "r1", 1);
  farm_wait_agent(&f, "b1", 1);
  /* The session's client is connected before the flood begins. */
  char *argv[] = {(char *)proc_bin("cli/ktune"), "tune", "matmul", "-D", "M=64", "-D", "N=64",
                  "-D", "K=64", "--number", "40", "--trials", "12", "--key", "k", "--tracker",
                  f.addr, NULL};
  char tune_log[300];
  snprintf(tune_log, sizeof(tune_log), "%s/tune.out", f.dir);
  pid_t tune = proc_start(argv, tune_log);
  proc_sleep_ms(300);

  dribble_ctx d = {&f, 0};
  pthread_t th;
  ASSERT_EQ_INT(pthread_create(&th, NULL, dribble, &d), 0);
  int idle[500];
  for (int i = 0; i < 500; i++) idle[i] = farm_dial(&f);
  int g = farm_dial(&f);
  ASSERT_EQ_INT(write(g, "\x00\x00\x00\x08garbage!", 12), 12);
  int big = farm_dial(&f);
  ASSERT_EQ_INT(write(big, "\x80\x00\x00\x00", 4), 4);
  int trunc = farm_dial(&f);
  ASSERT_EQ_INT(write(trunc, "\x00\x00\x10\x00short", 9), 9);
  close(trunc);

  int st = 0;
  for (int i = 0; i < 6000 && waitpid(tune, &st, WNOHANG) == 0; i++) proc_sleep_ms(10);
  d.stop = 1;
  pthread_join(th, NULL);
  for (int i = 0; i < 500; i++) close(idle[i]);
  close(g);
  close(big);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    farm_print_log(&f);
    TEST_FAIL("the session did not complete through the flood (status %d)", st);
  }
  sqlite3 *db = farm_db(&f);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(*) FROM trials WHERE status = 'ok'"), 12);
  ASSERT_EQ_INT(farm_query(db, "SELECT count(DISTINCT config) FROM trials"), 12);
  sqlite3_close(db);
  /* Once the idle ones are gone the tracker takes new clients again. */
  for (int i = 0; i < 300; i++) {
    char out[4096];
    char *status[] = {"status", NULL};
    if (farm_ktune(&f, out, sizeof(out), 10000, status) == 0) break;
    proc_sleep_ms(50);
  }
  json_t *js = farm_status(&f);
  ASSERT_NOT_NULL(farm_agent(js, "r1"));
  json_decref(js);
  proc_stop(r, SIGTERM, 5000);
  proc_stop(b, SIGTERM, 5000);
  farm_stop_tracker(&f);
}

TEST(only_the_owner_or_an_admin_may_cancel) {
  char tokens[300];
  tokens_file(tokens, sizeof(tokens));
  farm f;
  char *opts[] = {"--tokens", tokens, NULL};
  farm_start(&f, opts);
  as_user("bob", T_BOB);
  char *args[] = {"matmul", "-D", "M=16", "--trials", "4", "--key", "nobody", NULL};
  long id = farm_submit(&f, args);
  json_t *st = farm_status(&f);
  ASSERT_EQ_STR(json_string_value(json_object_get(farm_session(st, id), "owner")), "bob");
  json_decref(st);
  char out[4096], ids[32];
  snprintf(ids, sizeof(ids), "%ld", id);
  char *cancel[] = {"cancel", ids, NULL};
  as_user("carol", T_CAROL);
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 10000, cancel), 1);
  ASSERT_CONTAINS(out, "belongs to bob");
  as_user("alice", T_ALICE);
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 10000, cancel), 0);
  ASSERT_CONTAINS(out, "cancelled");
  farm_stop_tracker(&f);
}

TEST(no_tokens_means_loopback_only) {
  char out[4096];
  char *argv[] = {(char *)proc_bin("tracker/ktune-tracker"), "--listen", "0.0.0.0:0", "--db",
                  "/nonexistent/x.db", NULL};
  ASSERT_EQ_INT(proc_run(argv, out, sizeof(out), 10000), 2);
  ASSERT_CONTAINS(out, "without --tokens");
  char path[300];
  tokens_file(path, sizeof(path));
  ASSERT_EQ_INT(chmod(path, 0644), 0);
  char *loose[] = {(char *)proc_bin("tracker/ktune-tracker"), "--tokens", path, NULL};
  ASSERT_EQ_INT(proc_run(loose, out, sizeof(out), 10000), 2);
  ASSERT_CONTAINS(out, "chmod 600");
}

/* A spec whose space of 2^20 configs with 32 constraints takes seconds to
 * list; the tracker must keep answering meanwhile. */
static void costly_spec(const char *dir, char *path, size_t len, int constraint_bytes, int knobs,
                        const char *never) {
  char p[400];
  snprintf(p, sizeof(p), "%s/k.c", dir);
  FILE *f = fopen(p, "w");
  ASSERT_NOT_NULL(f);
  fprintf(f, "void k(float *C) { C[0] = 1; }\nvoid k_ref(float *C) { C[0] = 1; }\n");
  fclose(f);
  snprintf(path, len, "%s/costly.json", dir);
  f = fopen(path, "w");
  ASSERT_NOT_NULL(f);
  fprintf(f, "{\"name\": \"costly\", \"source\": \"k.c\", \"entry\": \"k\", \"reference\": \"k_ref\",\n"
             " \"args\": [{\"name\": \"C\", \"type\": \"float\", \"count\": \"1\", \"output\": true}],\n"
             " \"knobs\": {");
  for (int k = 0; k < knobs; k++) {
    fprintf(f, "%s\"K%d\": [", k ? ", " : "", k);
    for (int v = 0; v < 16; v++) fprintf(f, "%s%d", v ? "," : "", v + 1);
    fprintf(f, "]");
  }
  fprintf(f, "},\n \"constraints\": [");
  if (never) fprintf(f, "\"%s\", ", never);
  int written = 0;
  for (int c = 0; written < constraint_bytes || c < 32; c++) {
    char one[128];
    snprintf(one, sizeof(one), "(K0 * K1 + K2 * K3 + K4 + %d) %% 7 != 100", c);
    fprintf(f, "%s\"%s\"", c ? ", " : "", one);
    written += (int)strlen(one);
    if (c >= 31 && written >= constraint_bytes) break;
  }
  fprintf(f, "],\n \"flops\": \"1\"}\n");
  fclose(f);
}

TEST(costly_submission_does_not_stall_the_tracker) {
  farm f;
  farm_start(&f, NULL);
  char spec[400];
  costly_spec(f.dir, spec, sizeof(spec), 0, 5, NULL);
  char *argv[] = {(char *)proc_bin("cli/ktune"), "tune", spec, "--trials", "3", "--key", "nobody",
                  "--detach", "--tracker", f.addr, NULL};
  char tune_log[300];
  snprintf(tune_log, sizeof(tune_log), "%s/tune.out", f.dir);
  pid_t tune = proc_start(argv, tune_log);
  proc_sleep_ms(300);
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  json_t *st = farm_status(&f);
  clock_gettime(CLOCK_MONOTONIC, &b);
  json_decref(st);
  double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
  if (s > 1.0) TEST_FAIL("ktune status took %.2f s while a submission was being checked", s);
  int rc = 0;
  for (int i = 0; i < 12000 && waitpid(tune, &rc, WNOHANG) == 0; i++) proc_sleep_ms(10);
  ASSERT(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
  /* Too much constraint text is refused before any work, naming the limit. */
  costly_spec(f.dir, spec, sizeof(spec), 9000, 5, NULL);
  char out[4096];
  char *big[] = {"tune", spec, "--trials", "3", "--key", "nobody", "--detach", NULL};
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 30000, big), 2);
  ASSERT_CONTAINS(out, "--max-constraint-bytes");
  farm_stop_tracker(&f);
}

/* A grid over 2^28 configs of which none is valid, by a constraint on
 * every knob that no pruning can cut short: the search looks at a bounded
 * number per loop turn, and the tracker keeps answering. */
TEST(sparse_search_does_not_stall_the_tracker) {
  farm f;
  farm_start(&f, NULL);
  char spec[400];
  costly_spec(f.dir, spec, sizeof(spec), 0, 7, "K0 + K1 + K2 + K3 + K4 + K5 + K6 > 1000");
  char out[4096];
  char *args[] = {spec, "--trials", "3", "--key", "nobody", "--strategy", "grid", NULL};
  long id = farm_submit(&f, args);
  for (int i = 0; i < 5; i++) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    json_t *st = farm_status(&f);
    clock_gettime(CLOCK_MONOTONIC, &b);
    ASSERT_EQ_STR(json_string_value(json_object_get(farm_session(st, id), "state")), "queued");
    json_decref(st);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    if (s > 1.0) TEST_FAIL("ktune status took %.2f s while a search was scanning", s);
    proc_sleep_ms(100);
  }
  char ids[32];
  snprintf(ids, sizeof(ids), "%ld", id);
  char *cancel[] = {"cancel", ids, NULL};
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 10000, cancel), 0);
  farm_stop_tracker(&f);
}


/* A socket to the tracker from another loopback address. */
static int dial_from(const farm *f, const char *from) {
  char host[64];
  int port;
  ASSERT_EQ_INT(sscanf(f->addr, "%63[^:]:%d", host, &port), 2);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE_INT(fd, 0);
  struct sockaddr_in me = {0}, to = {0};
  me.sin_family = to.sin_family = AF_INET;
  inet_pton(AF_INET, from, &me.sin_addr);
  ASSERT_EQ_INT(bind(fd, (struct sockaddr *)&me, sizeof(me)), 0);
  to.sin_port = htons((uint16_t)port);
  inet_pton(AF_INET, host, &to.sin_addr);
  if (connect(fd, (struct sockaddr *)&to, sizeof(to)) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* 1,000 idle sockets from 127.0.0.2 take at most their address's share
 * of the login slots: a client on 127.0.0.1 tunes and asks for status
 * throughout, and an agent reconnects. */
TEST(flood_from_one_address_does_not_lock_out_another) {
  farm f;
  farm_start(&f, NULL);
  pid_t b = farm_builder(&f, "b1");
  pid_t r = farm_runner(&f, "r1", "k", NULL);
  farm_wait_agent(&f, "r1", 1);
  farm_wait_agent(&f, "b1", 1);
  enum { FLOOD = 1000 };
  static int idle[FLOOD];
  int opened = 0;
  for (int i = 0; i < FLOOD; i++)
    if ((idle[i] = dial_from(&f, "127.0.0.2")) >= 0) opened++;
  ASSERT_GE_INT(opened, 1);
  char out[8192];
  int failed = 0;
  for (int i = 0; i < 10; i++) {
    char *status[] = {"status", NULL};
    if (farm_ktune(&f, out, sizeof(out), 10000, status) != 0) {
      failed++;
      fprintf(stderr, "ktune status failed during the flood: %s\n", out);
    }
  }
  if (failed) {
    farm_print_log(&f);
    TEST_FAIL("%d of 10 status calls failed during the flood", failed);
  }
  /* An agent that comes back meanwhile is let in. */
  proc_stop(r, SIGKILL, 1000);
  r = farm_runner(&f, "r1", "k", NULL);
  farm_wait_agent(&f, "r1", 1);
  char *args[] = {"tune", "matmul", "-D", "M=16", "-D", "N=16", "-D", "K=16", "--trials", "6",
                  "--key", "k", NULL};
  int rc = farm_ktune(&f, out, sizeof(out), 60000, args);
  if (rc != 0) {
    farm_print_log(&f);
    TEST_FAIL("the session failed during the flood (exit %d): %s", rc, out);
  }
  ASSERT_CONTAINS(out, "best: ");
  /* The sockets past the address's share were told why. */
  struct timeval tv = {5, 0};
  setsockopt(idle[FLOOD - 1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  Ktune__Envelope *m = idle[FLOOD - 1] >= 0 ? wire_read_fd(idle[FLOOD - 1], FRAME_MAX_DEFAULT) : NULL;
  ASSERT_NOT_NULL(m);
  ASSERT_EQ_INT(m->msg_case, KTUNE__ENVELOPE__MSG_ERROR);
  ASSERT_CONTAINS(m->error->message, "--max-unauth-per-addr");
  wire_free(m);
  for (int i = 0; i < FLOOD; i++)
    if (idle[i] >= 0) close(idle[i]);
  farm_stop_all(&f, r, b, 0);
}

/* A Hello whose name carries a newline and a fake log line is refused
 * before anything logs it, and the log keeps one line per event. */
TEST(hello_name_with_a_newline_forges_no_log_line) {
  farm f;
  farm_start(&f, NULL);
  int fd = farm_dial(&f);
  Ktune__Hello h = KTUNE__HELLO__INIT;
  h.version = WIRE_PROTOCOL_VERSION;
  h.role = KTUNE__ROLE__ROLE_RUNNER;
  h.name = "evil\n2026-01-01T00:00:00.000Z tracker info: FORGED admin joined";
  h.key = "k";
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_HELLO;
  env.hello = &h;
  ASSERT_EQ_INT(wire_write_fd(fd, &env), 0);
  Ktune__Envelope *m = wire_read_fd(fd, FRAME_MAX_DEFAULT);
  ASSERT_NOT_NULL(m);
  ASSERT_EQ_INT(m->msg_case, KTUNE__ENVELOPE__MSG_ERROR);
  ASSERT_EQ_STR(m->error->code, "BAD_HELLO");
  ASSERT_CONTAINS(m->error->message, "printable");
  wire_free(m);
  close(fd);
  /* Even a message that is logged cannot start a line of its own. */
  as_user("bob\nFORGED", NULL);
  char out[4096];
  char *status[] = {"status", NULL};
  farm_ktune(&f, out, sizeof(out), 10000, status);
  unsetenv("KTUNE_USER");
  farm_stop_tracker(&f);
  FILE *lf = fopen(f.log, "r");
  ASSERT_NOT_NULL(lf);
  char line[4096];
  while (fgets(line, sizeof(line), lf))
    if (!strncmp(line, "FORGED", 6) || strstr(line, "Z tracker info: FORGED"))
      TEST_FAIL("a forged line reached the log: %s", line);
  fclose(lf);
}

/* SIGHUP reads the tokens file again: the agent whose token was removed
 * is disconnected (and, refused again and again, gives up with exit 2);
 * the others stay. */
TEST(sighup_with_a_token_removed_disconnects_only_that_agent) {
  char tokens[300];
  tokens_file(tokens, sizeof(tokens));
  FILE *tf = fopen(tokens, "a");
  ASSERT_NOT_NULL(tf);
  fprintf(tf, "runner r2 runner-r2-token-0123456789\n");
  fclose(tf);
  farm f;
  char *opts[] = {"--tokens", tokens, "--auth-delay-ms", "50", NULL};
  farm_start(&f, opts);
  as_user("alice", T_ALICE);
  pid_t r1 = agent_with_token(&f, 1, "r1", T_RUNNER);
  pid_t r2 = agent_with_token(&f, 1, "r2", "runner-r2-token-0123456789");
  farm_wait_agent(&f, "r1", 1);
  farm_wait_agent(&f, "r2", 1);
  tf = fopen(tokens, "w");
  ASSERT_NOT_NULL(tf);
  fprintf(tf, "admin alice " T_ALICE "\nrunner r1 " T_RUNNER "\n");
  fclose(tf);
  ASSERT_EQ_INT(kill(f.tracker, SIGHUP), 0);
  farm_wait_agent(&f, "r2", 0);
  wait_log(&f, "SIGHUP: tokens read again");
  wait_log(&f, "removed or changed: bob, carol, b1, r2");
  json_t *st = farm_status(&f);
  ASSERT_NOT_NULL(farm_agent(st, "r1"));
  ASSERT_NULL(farm_agent(st, "r2"));
  json_decref(st);
  /* r2 is refused from now on; it says why and gives up. */
  int rc = -1;
  for (int i = 0; i < 600 && rc < 0; i++) {
    int w;
    if (waitpid(r2, &w, WNOHANG) == r2) rc = WIFEXITED(w) ? WEXITSTATUS(w) : 128;
    else proc_sleep_ms(50);
  }
  if (rc != 2) {
    farm_print_log(&f);
    TEST_FAIL("the refused runner exited %d, not 2", rc);
  }
  ASSERT(log_contains(&f, "under the name 'r2'"));
  ASSERT(log_contains(&f, "giving up after 5 refused logins"));
  proc_stop(r1, SIGTERM, 5000);
  farm_stop_tracker(&f);
}

/* A second runner under a name that is connected is refused and says
 * why; status keeps one agent of that name. */
TEST(second_agent_under_a_taken_name_is_refused) {
  farm f;
  farm_start(&f, NULL);
  pid_t a = farm_runner(&f, "r1", "k", NULL);
  farm_wait_agent(&f, "r1", 1);
  pid_t b = farm_runner(&f, "r1", "k", NULL);
  wait_log(&f, "NAME_TAKEN: a runner named r1 is already connected");
  json_t *st = farm_status(&f);
  ASSERT_EQ_INT(json_array_size(json_object_get(st, "agents")), 1);
  json_decref(st);
  proc_stop(b, SIGKILL, 1000);
  proc_stop(a, SIGTERM, 5000);
  farm_stop_tracker(&f);
}

TEST_LIST(TEST_ENTRY(sparse_search_does_not_stall_the_tracker), TEST_ENTRY(costly_submission_does_not_stall_the_tracker), TEST_ENTRY(wrong_or_missing_tokens_are_refused),
          TEST_ENTRY(tracker_without_tokens_turns_away_agents_that_hold_one),
          TEST_ENTRY(runner_refuses_a_tracker_that_does_not_prove_its_token),
          TEST_ENTRY(altered_frame_after_login_closes_the_connection),
          TEST_ENTRY(hostile_peers_and_idle_connections_do_not_stop_a_session),
          TEST_ENTRY(only_the_owner_or_an_admin_may_cancel),
          TEST_ENTRY(no_tokens_means_loopback_only),
          TEST_ENTRY(flood_from_one_address_does_not_lock_out_another),
          TEST_ENTRY(hello_name_with_a_newline_forges_no_log_line),
          TEST_ENTRY(sighup_with_a_token_removed_disconnects_only_that_agent),
          TEST_ENTRY(second_agent_under_a_taken_name_is_refused))
