/* The tracker's HTTP side (--http) over real TCP: who may read it, what
 * /api/status, /api/events and /api/sessions/ID/trials answer, that it
 * takes no writes, and that many, slow or silent clients cost a tuning
 * session nothing it can notice. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <time.h>

#include "tests/integration/harness.h"
#include "tests/integration/httpc.h"
#include "tests/test.h"

#define T_ADMIN "ann-admin-token-0123456789"
#define T_CLIENT "cid-client-token-0123456789"
#define T_RUNNER "r1-runner-token-0123456789"
#define T_BUILDER "b1-builder-token-0123456789"
#define TOKENS                                                                             \
  "admin ann " T_ADMIN "\nclient cid " T_CLIENT "\nrunner r1 " T_RUNNER "\nbuilder b1 " T_BUILDER \
  "\n"

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int get_status(const char *addr, const char *path, const char *token) {
  httpc_resp r;
  int st = httpc_get(addr, path, token, 5000, &r);
  httpc_free(&r);
  return st;
}

TEST(reading_needs_a_client_or_admin_token) {
  char tokens[300];
  farm_tokens_file(tokens, sizeof(tokens), TOKENS);
  farm f;
  char *extra[] = {"--tokens", tokens, NULL};
  farm_start_http(&f, extra);
  const char *paths[] = {"/api/status", "/metrics", "/api/events", "/api/sessions/1/trials", "/"};
  for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
    ASSERT_EQ_INT(get_status(f.http, paths[i], NULL), 401);
    ASSERT_EQ_INT(get_status(f.http, paths[i], "not-a-token-of-this-farm-0123"), 401);
    ASSERT_EQ_INT(get_status(f.http, paths[i], T_RUNNER), 403);
    ASSERT_EQ_INT(get_status(f.http, paths[i], T_BUILDER), 403);
    /* A token's start is not the token. */
    ASSERT_EQ_INT(get_status(f.http, paths[i], "cid-client-token-012345678"), 401);
  }
  ASSERT_EQ_INT(get_status(f.http, "/api/status", T_CLIENT), 200);
  ASSERT_EQ_INT(get_status(f.http, "/api/status", T_ADMIN), 200);
  ASSERT_EQ_INT(get_status(f.http, "/metrics", T_CLIENT), 200);
  ASSERT_EQ_INT(get_status(f.http, "/", T_CLIENT), 200);
  /* Without a token a browser still gets the page, which asks for one;
   * it holds no data. The answer says which scheme. */
  httpc_resp r;
  ASSERT_EQ_INT(httpc_get(f.http, "/", NULL, 5000, &r), 401);
  char v[256];
  ASSERT(httpc_header(&r, "www-authenticate", v, sizeof(v)));
  ASSERT_CONTAINS(v, "Bearer");
  ASSERT(httpc_header(&r, "content-type", v, sizeof(v)));
  ASSERT_CONTAINS(v, "text/html");
  ASSERT_CONTAINS(r.body, "<html");
  httpc_free(&r);
  ASSERT_EQ_INT(httpc_get(f.http, "/api/status", T_RUNNER, 5000, &r), 403);
  ASSERT_CONTAINS(r.body, "client or admin token");
  httpc_free(&r);
  farm_stop_tracker(&f);
}

/* The tracker's exit status and message for these --http arguments. */
static int tracker_refuses(char *const args[], char *out, size_t len) {
  char dir[256], db[300];
  proc_tmpdir(dir, sizeof(dir));
  snprintf(db, sizeof(db), "%s/h.db", dir);
  char *argv[16] = {(char *)proc_bin("tracker/ktune-tracker"), "--listen", "127.0.0.1:0", "--db",
                    db};
  int n = 5;
  for (int i = 0; args[i] && n < 15; i++) argv[n++] = args[i];
  argv[n] = NULL;
  return proc_run(argv, out, len, 10000);
}

TEST(http_beyond_loopback_needs_tokens_or_insecure) {
  char out[2048];
  char *wide[] = {"--http", "0.0.0.0:0", NULL};
  ASSERT_EQ_INT(tracker_refuses(wide, out, sizeof(out)), 2);
  ASSERT_CONTAINS(out, "refusing to serve HTTP on 0.0.0.0:0 without --tokens");
  ASSERT_CONTAINS(out, "--insecure");
  /* The farm's own port: the same rule, the same words. */
  char *agents[] = {"--listen", "0.0.0.0:0", NULL};
  ASSERT_EQ_INT(tracker_refuses(agents, out, sizeof(out)), 2);
  ASSERT_CONTAINS(out, "refusing to listen on 0.0.0.0:0 without --tokens");
  char *bad[] = {"--http", "127.0.0.1:99999", NULL};
  ASSERT_EQ_INT(tracker_refuses(bad, out, sizeof(out)), 2);
  ASSERT_CONTAINS(out, "--http");
  /* A port in use is said, and the tracker does not start without it. */
  char busy[80];
  int ls = farm_listen(busy, sizeof(busy));
  char *taken[] = {"--http", busy, NULL};
  ASSERT_EQ_INT(tracker_refuses(taken, out, sizeof(out)), 1);
  ASSERT_CONTAINS(out, "cannot serve HTTP on");
  close(ls);
}

TEST(a_bare_port_is_this_machine) {
  char dir[256], db[300], portf[300], log[300], addr[80];
  proc_tmpdir(dir, sizeof(dir));
  snprintf(db, sizeof(db), "%s/h.db", dir);
  snprintf(portf, sizeof(portf), "%s/http-port", dir);
  snprintf(log, sizeof(log), "%s/tracker.log", dir);
  /* Port 0 here: a free one, on loopback. */
  char *argv[] = {(char *)proc_bin("tracker/ktune-tracker"), "--listen", "127.0.0.1:0", "--db", db,
                  "--http", "0", "--http-port-file", portf, NULL};
  pid_t t = proc_start(argv, log);
  ASSERT_GE_INT(proc_wait_file(portf, addr, sizeof(addr), 10000), 0);
  ASSERT(strncmp(addr, "127.0.0.1:", 10) == 0);
  ASSERT_EQ_INT(get_status(addr, "/api/status", NULL), 200);
  ASSERT_EQ_INT(proc_stop(t, SIGTERM, 5000), 0);
}

/* Values that change from one moment to the next. */
static void drop_moving(json_t *j) {
  static const char *moving[] = {"uptime_s", "last_heard_s", "runner_s", "actual", "elapsed_s",
                                 "eta_s"};
  if (json_is_object(j)) {
    for (size_t i = 0; i < sizeof(moving) / sizeof(moving[0]); i++) json_object_del(j, moving[i]);
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) drop_moving(v);
  } else if (json_is_array(j)) {
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v) drop_moving(v);
  }
}

/* A builder and two runners of key k. */
static void small_farm(farm *f, pid_t *b, pid_t *r1, pid_t *r2) {
  *b = farm_builder(f, "b1");
  *r1 = farm_runner(f, "r1", "k", NULL);
  *r2 = farm_runner(f, "r2", "k", NULL);
  farm_wait_agent(f, "b1", 1);
  farm_wait_agent(f, "r1", 1);
  farm_wait_agent(f, "r2", 1);
}

#define FAST "matmul", "-D", "M=16", "-D", "N=16", "-D", "K=16", "--strategy", "random", \
             "--confirm", "0", "--repeat", "1", "--key", "k"

TEST(api_status_is_ktune_status_json) {
  farm f;
  farm_start_http(&f, NULL);
  pid_t b, r1, r2;
  small_farm(&f, &b, &r1, &r2);
  char *args[] = {FAST, "--trials", "6", NULL};
  long id = farm_submit(&f, args);
  char out[4096];
  ASSERT_EQ_INT(farm_wait(&f, id, 60000, out, sizeof(out)), 0);
  json_t *cli = farm_status(&f);
  httpc_resp r;
  ASSERT_EQ_INT(httpc_get(f.http, "/api/status", NULL, 5000, &r), 200);
  char v[128];
  ASSERT(httpc_header(&r, "content-type", v, sizeof(v)));
  ASSERT_EQ_STR(v, "application/json");
  json_error_t e;
  json_t *web = json_loads(r.body, 0, &e);
  if (!web) TEST_FAIL("/api/status is not JSON (%s): %s", e.text, r.body);
  /* The fields this side adds for the dashboard are in both. */
  json_t *s = farm_session(web, id);
  ASSERT_NOT_NULL(s);
  ASSERT_EQ_INT(json_integer_value(json_object_get(s, "trials_done")), 6);
  ASSERT(json_real_value(json_object_get(s, "best_latency_s")) > 0);
  ASSERT(json_is_object(json_object_get(s, "failures_by_code")));
  ASSERT(json_is_number(json_object_get(s, "eta_s")));
  drop_moving(cli);
  drop_moving(web);
  if (!json_equal(cli, web)) {
    char *a = json_dumps(cli, JSON_SORT_KEYS), *c = json_dumps(web, JSON_SORT_KEYS);
    TEST_FAIL("ktune status --json and /api/status differ:\n%s\n%s", a, c);
  }
  json_decref(cli);
  json_decref(web);
  httpc_free(&r);
  farm_stop_all(&f, b, r1, r2);
}

/* session id's entry in /api/status. */
static json_t *web_session(const farm *f, long id) {
  httpc_resp r;
  ASSERT_EQ_INT(httpc_get(f->http, "/api/status", NULL, 5000, &r), 200);
  json_t *st = json_loads(r.body, 0, NULL);
  httpc_free(&r);
  ASSERT_NOT_NULL(st);
  json_t *s = farm_session(st, id);
  if (!s) TEST_FAIL("no session %ld in /api/status", id);
  json_incref(s);
  json_decref(st);
  return s;
}

static long long failed_with(json_t *s, const char *status) {
  return json_integer_value(json_object_get(json_object_get(s, "failures_by_code"), status));
}

/* A session read back from the history (after a restart, or once it
 * leaves the tracker's memory) still says how its trials failed, how long
 * it took, and that it has no time left. */
TEST(an_ended_session_read_back_keeps_its_failures_and_pace) {
  farm f;
  farm_start_http(&f, NULL);
  pid_t b = farm_builder(&f, "b1"), r = farm_runner(&f, "r1", "hostile", NULL);
  farm_wait_agent(&f, "r1", 1);
  char spec[512], out[16384];
  snprintf(spec, sizeof(spec), "%s/../tests/tasks/hostile.json", getenv("KTUNE_TASKS"));
  /* MODE 0 to 5: one ok kernel, and crashes, a timeout, a wrong answer. */
  char *args[] = {"tune", spec, "--key", "hostile", "--strategy", "grid", "--trials", "6",
                  "--timeout", "500", "--confirm", "0", "--detach", NULL};
  ASSERT_EQ_INT(farm_ktune(&f, out, sizeof(out), 30000, args), 0);
  long id = strtol(out, NULL, 10);
  ASSERT_EQ_INT(farm_wait(&f, id, 60000, out, sizeof(out)), 0); /* done, with failures */
  json_t *live = web_session(&f, id);
  ASSERT_GE_INT(failed_with(live, "RUNTIME_ERROR"), 1);
  ASSERT_EQ_INT(failed_with(live, "RUN_TIMEOUT"), 1);
  ASSERT_EQ_INT(failed_with(live, "WRONG_ANSWER"), 1);
  proc_stop(f.tracker, SIGTERM, 5000);
  /* Its HTTP side listens after the agents' port: wait for its own file. */
  char dir[256], port_file[300], addr[80];
  proc_tmpdir(dir, sizeof(dir));
  snprintf(port_file, sizeof(port_file), "%s/http-port", dir);
  char *again[] = {"--http", f.http, "--http-port-file", port_file, NULL};
  farm_restart_tracker(&f, again);
  ASSERT_GE_INT(proc_wait_file(port_file, addr, sizeof(addr), 10000), 0);
  ASSERT_EQ_STR(addr, f.http);
  json_t *back = web_session(&f, id);
  ASSERT(json_equal(json_object_get(live, "failures_by_code"),
                    json_object_get(back, "failures_by_code")));
  ASSERT_EQ_INT(json_integer_value(json_object_get(back, "failures")),
                json_integer_value(json_object_get(live, "failures")));
  ASSERT(json_real_value(json_object_get(back, "best_latency_s")) > 0);
  ASSERT(json_real_value(json_object_get(back, "elapsed_s")) > 0);
  ASSERT(json_number_value(json_object_get(back, "eta_s")) == 0);
  json_decref(live);
  json_decref(back);
  farm_stop_all(&f, b, r, 0);
}

/* Lines of body, each a JSON object of session id; their ids, rising. */
static int trial_lines(const char *body, long session, long long *ids, int max) {
  int n = 0;
  for (const char *p = body; *p;) {
    const char *nl = strchr(p, '\n');
    if (!nl) TEST_FAIL("a trial line without its line break: %s", p);
    json_error_t e;
    json_t *j = json_loadb(p, (size_t)(nl - p), 0, &e);
    if (!j) TEST_FAIL("not JSON (%s): %.*s", e.text, (int)(nl - p), p);
    ASSERT_EQ_INT(json_integer_value(json_object_get(j, "session")), session);
    ASSERT_NOT_NULL(json_object_get(j, "status"));
    ASSERT(json_is_object(json_object_get(j, "config")));
    long long id = json_integer_value(json_object_get(j, "id"));
    if (n > 0) ASSERT(id > ids[n - 1]);
    if (n < max) ids[n] = id;
    n++;
    json_decref(j);
    p = nl + 1;
  }
  return n;
}

TEST(session_trials_as_json_lines_a_page_at_a_time) {
  farm f;
  farm_start_http(&f, NULL);
  pid_t b, r1, r2;
  small_farm(&f, &b, &r1, &r2);
  /* More than one page of the history (256 lines), and a second session
   * whose trials must not show in the first's. */
  char *args[] = {FAST, "--trials", "270", "--number", "1", NULL};
  long id = farm_submit(&f, args);
  char *other[] = {FAST, "--trials", "3", "-D", "M=8", NULL};
  long id2 = farm_submit(&f, other);
  char out[4096];
  ASSERT_EQ_INT(farm_wait(&f, id, 180000, out, sizeof(out)), 0);
  ASSERT_EQ_INT(farm_wait(&f, id2, 60000, out, sizeof(out)), 0);
  httpc_resp r;
  char path[128];
  snprintf(path, sizeof(path), "/api/sessions/%ld/trials", id);
  ASSERT_EQ_INT(httpc_get(f.http, path, NULL, 10000, &r), 200);
  char v[128];
  ASSERT(httpc_header(&r, "content-type", v, sizeof(v)));
  ASSERT_EQ_STR(v, "application/x-ndjson");
  static long long ids[300];
  ASSERT_EQ_INT(trial_lines(r.body, id, ids, 300), 270);
  httpc_free(&r);
  /* What came after the 100th. */
  snprintf(path, sizeof(path), "/api/sessions/%ld/trials?after=%lld", id, ids[99]);
  ASSERT_EQ_INT(httpc_get(f.http, path, NULL, 10000, &r), 200);
  static long long rest[300];
  ASSERT_EQ_INT(trial_lines(r.body, id, rest, 300), 170);
  ASSERT_EQ_INT(rest[0], ids[100]);
  httpc_free(&r);
  /* After the last: nothing, and still 200. */
  snprintf(path, sizeof(path), "/api/sessions/%ld/trials?after=%lld", id, ids[269]);
  ASSERT_EQ_INT(httpc_get(f.http, path, NULL, 10000, &r), 200);
  ASSERT_EQ_INT(r.body_len, 0);
  httpc_free(&r);
  snprintf(path, sizeof(path), "/api/sessions/%ld/trials", id2);
  ASSERT_EQ_INT(httpc_get(f.http, path, NULL, 10000, &r), 200);
  ASSERT_EQ_INT(trial_lines(r.body, id2, rest, 300), 3);
  httpc_free(&r);
  const char *bad[] = {"/api/sessions/999/trials", "/api/sessions/0/trials",
                       "/api/sessions/abc/trials", "/api/sessions/1/trial",
                       "/api/sessions/1/trials?after=x", "/api/sessions/1/trials?after=-1",
                       "/api/sessions//trials", "/api/sessions/1/trials/extra", "/nowhere",
                       "/api/statusx"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    ASSERT_EQ_INT(httpc_get(f.http, bad[i], NULL, 5000, &r), 404);
    httpc_free(&r);
  }
  farm_stop_all(&f, b, r1, r2);
}

/* Sends raw bytes of a request; returns the connection. */
static int raw_request(const char *addr, const char *text) {
  int fd = httpc_dial(addr);
  size_t n = strlen(text);
  ASSERT_EQ_INT(write(fd, text, n), (long)n);
  return fd;
}

/* Reads from fd until needle has come n times or ms pass; returns the
 * count seen. */
static int read_until(int fd, const char *needle, int n, int ms, char *buf, size_t len) {
  size_t off = 0;
  long long end = now_ms() + ms;
  int seen = 0;
  buf[0] = 0;
  while (seen < n && now_ms() < end) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, (int)(end - now_ms())) <= 0) continue;
    ssize_t r = read(fd, buf + off, len - 1 - off);
    if (r <= 0) break;
    off += (size_t)r;
    buf[off] = 0;
    seen = 0;
    for (const char *q = buf; (q = strstr(q, needle)); q += strlen(needle)) seen++;
    if (off > len / 2) { /* keep the tail */
      memmove(buf, buf + off - len / 4, len / 4);
      off = len / 4;
      buf[off] = 0;
    }
  }
  return seen;
}

TEST(event_stream_sends_the_status_every_second) {
  farm f;
  farm_start_http(&f, NULL);
  int fd = raw_request(f.http, "GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n");
  static char buf[1 << 16];
  long long t0 = now_ms();
  ASSERT_EQ_INT(read_until(fd, "event: status\ndata: {", 3, 6000, buf, sizeof(buf)), 3);
  long long took = now_ms() - t0;
  /* The first at once, then one a second: three within about 2 s. */
  ASSERT(took >= 1500);
  ASSERT(took < 4500);
  ASSERT_CONTAINS(buf, "\"agents\"");
  close(fd);
  /* HTTP/1.0 too: no chunks, the same events. */
  fd = raw_request(f.http, "GET /api/events HTTP/1.0\r\n\r\n");
  ASSERT_EQ_INT(read_until(fd, "event: status\n", 1, 3000, buf, sizeof(buf)), 1);
  ASSERT_CONTAINS(buf, "text/event-stream");
  close(fd);
  /* A stopping tracker ends the streams it has, and is not held by them. */
  fd = raw_request(f.http, "GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ_INT(read_until(fd, "event: status\n", 1, 3000, buf, sizeof(buf)), 1);
  long long s0 = now_ms();
  ASSERT_EQ_INT(proc_stop(f.tracker, SIGTERM, 5000), 0);
  ASSERT(now_ms() - s0 < 3000);
  close(fd);
}

TEST(writes_are_refused) {
  farm f;
  farm_start_http(&f, NULL);
  static char buf[8192];
  const char *reqs[] = {"POST /api/status HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
                        "DELETE /api/sessions/1/trials HTTP/1.0\r\n\r\n",
                        "PUT /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n"};
  for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
    int fd = raw_request(f.http, reqs[i]);
    read_until(fd, "\r\n\r\n", 1, 3000, buf, sizeof(buf));
    ASSERT_CONTAINS(buf, " 405 ");
    ASSERT_CONTAINS(buf, "allow: GET");
    close(fd);
  }
  /* A body is refused before it is kept. */
  int fd = raw_request(f.http, "POST /api/status HTTP/1.0\r\nContent-Length: 100000000\r\n\r\nxx");
  read_until(fd, "\r\n\r\n", 1, 3000, buf, sizeof(buf));
  ASSERT_CONTAINS(buf, " 413 ");
  close(fd);
  /* Garbage is answered or dropped, and the tracker goes on. */
  fd = raw_request(f.http, "\x16\x03\x01\x02\x00 not http at all\r\n\r\n");
  read_until(fd, "\r\n\r\n", 1, 2000, buf, sizeof(buf));
  close(fd);
  ASSERT_EQ_INT(get_status(f.http, "/api/status", NULL), 200);
  farm_stop_tracker(&f);
}

TEST(connections_beyond_the_cap_are_closed_at_once) {
  farm f;
  farm_start_http(&f, NULL);
  enum { N = 300 };
  static int fds[N];
  for (int i = 0; i < N; i++) fds[i] = httpc_dial(f.http);
  /* The tracker closed those over 256 without a word: they read an end
   * of file, the others nothing yet. */
  proc_sleep_ms(500);
  int closed = 0;
  for (int i = 0; i < N; i++) {
    struct pollfd p = {fds[i], POLLIN, 0};
    char c;
    if (poll(&p, 1, 0) == 1 && read(fds[i], &c, 1) == 0) closed++;
  }
  ASSERT_EQ_INT(closed, N - 256);
  /* The farm's own port is another matter: the CLI still gets its answer. */
  json_t *st = farm_status(&f);
  json_decref(st);
  for (int i = 0; i < N; i++) close(fds[i]);
  /* The places free up. */
  int st200 = 0;
  for (int i = 0; i < 50 && st200 != 200; i++) {
    st200 = get_status(f.http, "/api/status", NULL);
    if (st200 != 200) proc_sleep_ms(100);
  }
  ASSERT_EQ_INT(st200, 200);
  farm_stop_tracker(&f);
}

/* Trials of some 30 ms (rounds of at least 20 ms), measured even when the
 * history has them: about 5 s of two runners' time. */
#define SLOW_SESSION FAST, "--trials", "300", "--remeasure", "--min-repeat-ms", "20", NULL

/* The session's own time from its submission to its end, as the tracker
 * measured it. */
static double session_seconds(farm *f, long id) {
  json_t *st = farm_status(f);
  json_t *s = farm_session(st, id);
  ASSERT_NOT_NULL(s);
  double t = json_real_value(json_object_get(s, "elapsed_s"));
  json_decref(st);
  return t;
}

/* Runs a session, looking at it once a second (and sending one more byte
 * of a request on each of the nslow connections); its seconds. */
static double watched_session(farm *f, const int *slow, int nslow, size_t *sent) {
  static const char req[] = "GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n";
  char *args[] = {SLOW_SESSION};
  long id = farm_submit(f, args);
  for (int tick = 0; tick < 120; tick++) {
    for (int i = 0; i < nslow && *sent < sizeof(req) - 1; i++)
      if (write(slow[i], req + *sent, 1) != 1 && errno != EPIPE && errno != ECONNRESET)
        TEST_FAIL("write: %s", strerror(errno));
    if (nslow) (*sent)++;
    json_t *st = farm_status(f);
    json_t *s = farm_session(st, id);
    const char *state = s ? json_string_value(json_object_get(s, "state")) : NULL;
    int over = state && strcmp(state, "running") && strcmp(state, "queued");
    json_decref(st);
    if (over) break;
    proc_sleep_ms(1000);
  }
  char out[4096];
  ASSERT_EQ_INT(farm_wait(f, id, 120000, out, sizeof(out)), 0);
  return session_seconds(f, id);
}

TEST(many_slow_and_silent_clients_do_not_slow_a_session) {
  signal(SIGPIPE, SIG_IGN); /* a slow client the tracker gave up on */
  farm f;
  farm_start_http(&f, NULL);
  pid_t b, r1, r2;
  small_farm(&f, &b, &r1, &r2);
  size_t sent = 0;
  double before = watched_session(&f, NULL, 0, &sent);
  /* 200 event streams that read their first status and then nothing; 20
   * clients sending a request a byte a second. */
  enum { STREAMS = 200, SLOW = 20 };
  static int streams[STREAMS], slow[SLOW];
  static char buf[8192];
  for (int i = 0; i < STREAMS; i++) {
    streams[i] = raw_request(f.http, "GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_EQ_INT(read_until(streams[i], "event: status\n", 1, 5000, buf, sizeof(buf)), 1);
  }
  for (int i = 0; i < SLOW; i++) slow[i] = httpc_dial(f.http);
  double loaded = watched_session(&f, slow, SLOW, &sent);
  ASSERT(sent >= 3);
  /* The streams are still served: the kernel holds what they did not read. */
  ASSERT_GE_INT(read_until(streams[0], "event: status\n", 2, 4000, buf, sizeof(buf)), 2);
  for (int i = 0; i < STREAMS; i++) close(streams[i]);
  for (int i = 0; i < SLOW; i++) close(slow[i]);
  /* Before and after, so that a machine busy with something else for a
   * while is less likely to be taken for the clients' doing. */
  double after = watched_session(&f, NULL, 0, &sent);
  double alone = (before + after) / 2;
  fprintf(stderr, "a session of 300 trials: %.2f and %.2f s alone, %.2f s with %d event streams "
          "and %d clients sending a byte a second (%zu bytes each)\n", before, after, loaded,
          STREAMS, SLOW, sent);
  if (loaded > alone * 1.3 + 0.5)
    TEST_FAIL("the session took %.2f s with the clients, %.2f s without", loaded, alone);
  farm_stop_all(&f, b, r1, r2);
}

TEST_LIST(TEST_ENTRY(reading_needs_a_client_or_admin_token),
          TEST_ENTRY(http_beyond_loopback_needs_tokens_or_insecure),
          TEST_ENTRY(a_bare_port_is_this_machine), TEST_ENTRY(api_status_is_ktune_status_json),
          TEST_ENTRY(an_ended_session_read_back_keeps_its_failures_and_pace),
          TEST_ENTRY(session_trials_as_json_lines_a_page_at_a_time),
          TEST_ENTRY(event_stream_sends_the_status_every_second), TEST_ENTRY(writes_are_refused),
          TEST_ENTRY(connections_beyond_the_cap_are_closed_at_once),
          TEST_ENTRY(many_slow_and_silent_clients_do_not_slow_a_session))
