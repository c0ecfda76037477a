#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/frame.h"
#include "common/wire.h"
#include "tests/test.h"

static void start_tracker(farm *f, const char *listen, char *const extra[]) {
  char port_file[300];
  snprintf(port_file, sizeof(port_file), "%s/port", f->dir);
  unlink(port_file);
  char *argv[32] = {(char *)proc_bin("tracker/ktune-tracker"), "--listen", (char *)listen,
                    "--db", f->db, "--port-file", port_file, "--heartbeat-ms", "200",
                    "--timeout-ms", "3000"};
  int n = 11;
  for (int i = 0; extra && extra[i] && n < 31; i++) argv[n++] = extra[i];
  argv[n] = NULL;
  f->tracker = proc_start(argv, f->log);
  if (proc_wait_file(port_file, f->addr, sizeof(f->addr), 10000) < 0) {
    farm_print_log(f);
    TEST_FAIL("the tracker did not start");
  }
}

void farm_start(farm *f, char *const extra[]) {
  memset(f, 0, sizeof(*f));
  proc_tmpdir(f->dir, sizeof(f->dir));
  snprintf(f->db, sizeof(f->db), "%s/history.db", f->dir);
  snprintf(f->log, sizeof(f->log), "%s/farm.log", f->dir);
  start_tracker(f, "127.0.0.1:0", extra);
}

void farm_tokens_file(char *path, size_t len, const char *lines) {
  char dir[256];
  proc_tmpdir(dir, sizeof(dir));
  snprintf(path, len, "%s/tokens", dir);
  proc_write_file(path, lines);
  ASSERT_EQ_INT(chmod(path, 0600), 0);
}

void farm_start_http(farm *f, char *const extra[]) {
  char dir[256], port_file[300];
  proc_tmpdir(dir, sizeof(dir));
  snprintf(port_file, sizeof(port_file), "%s/http-port", dir);
  char *args[24] = {"--http", "127.0.0.1:0", "--http-port-file", port_file};
  int n = 4;
  for (int i = 0; extra && extra[i] && n < 23; i++) args[n++] = extra[i];
  args[n] = NULL;
  farm_start(f, args);
  if (proc_wait_file(port_file, f->http, sizeof(f->http), 10000) < 0) {
    farm_print_log(f);
    TEST_FAIL("the tracker's HTTP side did not start");
  }
}

void farm_restart_tracker(farm *f, char *const extra[]) {
  char addr[80];
  snprintf(addr, sizeof(addr), "%s", f->addr);
  start_tracker(f, addr, extra);
}

pid_t farm_runner(farm *f, const char *name, const char *key, const char *dump_dir) {
  char *argv[] = {(char *)proc_bin("runner/ktune-runner"), "--tracker", f->addr, "--key",
                  (char *)key, "--name", (char *)name, dump_dir ? "--dump-dir" : NULL,
                  (char *)dump_dir, NULL};
  return proc_start(argv, f->log);
}

pid_t farm_runner_args(farm *f, const char *name, const char *key, char *const extra[]) {
  char *argv[32] = {(char *)proc_bin("runner/ktune-runner"), "--tracker", f->addr, "--key",
                    (char *)key, "--name", (char *)name};
  int n = 7;
  for (int i = 0; extra && extra[i] && n < 31; i++) argv[n++] = extra[i];
  argv[n] = NULL;
  return proc_start(argv, f->log);
}

pid_t farm_builder(farm *f, const char *name) {
  char *argv[] = {(char *)proc_bin("builder/ktune-builder"), "--tracker", f->addr, "--name",
                  (char *)name, NULL};
  return proc_start(argv, f->log);
}

void farm_print_log(const farm *f) {
  FILE *lf = fopen(f->log, "r");
  char line[1024];
  fprintf(stderr, "--- farm log %s ---\n", f->log);
  while (lf && fgets(line, sizeof(line), lf)) fputs(line, stderr);
  if (lf) fclose(lf);
}

void farm_stop_tracker(farm *f) {
  int st = proc_stop(f->tracker, SIGTERM, 5000);
  if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
    farm_print_log(f);
    TEST_FAIL("tracker did not stop cleanly on SIGTERM (status %d)", st);
  }
}

int farm_listen(char *addr, size_t len) {
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE_INT(ls, 0);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  ASSERT_EQ_INT(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
  ASSERT_EQ_INT(listen(ls, 4), 0);
  socklen_t sl = sizeof(sa);
  ASSERT_EQ_INT(getsockname(ls, (struct sockaddr *)&sa, &sl), 0);
  snprintf(addr, len, "127.0.0.1:%d", ntohs(sa.sin_port));
  return ls;
}

int farm_hello(const farm *f, Ktune__Hello *h) {
  int fd = farm_dial(f);
  h->version = WIRE_PROTOCOL_VERSION;
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_HELLO, h);
  ASSERT_EQ_INT(wire_write_fd(fd, &env), 0);
  Ktune__Envelope *w = wire_read_fd(fd, FRAME_MAX_DEFAULT);
  ASSERT_NOT_NULL(w);
  ASSERT_EQ_INT(w->msg_case, KTUNE__ENVELOPE__MSG_WELCOME);
  wire_free(w);
  return fd;
}

int farm_dial(const farm *f) {
  char host[64];
  int port;
  ASSERT_EQ_INT(sscanf(f->addr, "%63[^:]:%d", host, &port), 2);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  inet_pton(AF_INET, host, &sa.sin_addr);
  ASSERT_EQ_INT(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

void farm_stop_all(farm *f, pid_t a, pid_t b, pid_t c) {
  pid_t agents[] = {a, b, c};
  for (int i = 0; i < 3; i++)
    if (agents[i] > 0) proc_stop(agents[i], SIGTERM, 5000);
  farm_stop_tracker(f);
}

int farm_ktune(farm *f, char *out, size_t outlen, int timeout_ms, char *const args[]) {
  char *argv[48] = {(char *)proc_bin("cli/ktune")};
  int n = 1;
  for (int i = 0; args[i] && n < 45; i++) argv[n++] = args[i];
  argv[n++] = "--tracker";
  argv[n++] = f->addr;
  argv[n] = NULL;
  return proc_run(argv, out, outlen, timeout_ms);
}

long farm_submit(farm *f, char *const args[]) {
  char *argv[48] = {"tune"};
  int n = 1;
  for (int i = 0; args[i] && n < 46; i++) argv[n++] = args[i];
  argv[n++] = "--detach";
  argv[n] = NULL;
  char out[4096];
  int rc = farm_ktune(f, out, sizeof(out), 30000, argv);
  if (rc != 0) TEST_FAIL("ktune tune --detach exited %d: %s", rc, out);
  long id = strtol(out, NULL, 10);
  if (id <= 0) TEST_FAIL("ktune tune --detach printed no session id: %s", out);
  return id;
}

json_t *farm_status(farm *f) {
  static char out[1 << 17];
  char *args[] = {"status", "--json", NULL};
  int rc = farm_ktune(f, out, sizeof(out), 10000, args);
  if (rc != 0) TEST_FAIL("ktune status exited %d: %s", rc, out);
  json_error_t e;
  json_t *j = json_loads(out, 0, &e);
  if (!j) TEST_FAIL("ktune status --json is not JSON (%s): %s", e.text, out);
  return j;
}

json_t *farm_agent(json_t *st, const char *name) {
  size_t i;
  json_t *a;
  json_array_foreach(json_object_get(st, "agents"), i, a)
    if (!strcmp(json_string_value(json_object_get(a, "name")), name)) return a;
  return NULL;
}

json_t *farm_session(json_t *st, long id) {
  size_t i;
  json_t *s;
  json_array_foreach(json_object_get(st, "sessions"), i, s)
    if (json_integer_value(json_object_get(s, "id")) == id) return s;
  return NULL;
}

void farm_wait_agent(farm *f, const char *name, int present) {
  for (int i = 0; i < 500; i++) {
    json_t *st = farm_status(f);
    int here = farm_agent(st, name) != NULL;
    json_decref(st);
    if (here == present) return;
    proc_sleep_ms(20);
  }
  farm_print_log(f);
  TEST_FAIL("agent %s never %s ktune status", name, present ? "appeared in" : "left");
}

void farm_wait_busy(farm *f, const char *name) {
  for (int i = 0; i < 1000; i++) {
    json_t *st = farm_status(f);
    json_t *a = farm_agent(st, name);
    int busy = a && json_array_size(json_object_get(a, "jobs")) > 0;
    json_decref(st);
    if (busy) return;
    proc_sleep_ms(10);
  }
  farm_print_log(f);
  TEST_FAIL("runner %s never took a job", name);
}

int farm_wait(farm *f, long id, int timeout_ms, char *out, size_t outlen) {
  char ids[32];
  snprintf(ids, sizeof(ids), "%ld", id);
  char *args[] = {"wait", ids, NULL};
  return farm_ktune(f, out, outlen, timeout_ms, args);
}

void farm_wait_trials(farm *f, long id, int n) {
  for (int i = 0; i < 1500; i++) {
    json_t *st = farm_status(f);
    json_t *s = farm_session(st, id);
    long done = s ? (long)json_integer_value(json_object_get(s, "trials_done")) : -1;
    json_decref(st);
    if (done >= n) return;
    proc_sleep_ms(20);
  }
  farm_print_log(f);
  TEST_FAIL("session %ld never reached %d trials", id, n);
}

sqlite3 *farm_db(farm *f) {
  sqlite3 *db;
  ASSERT_EQ_INT(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  return db;
}

long long farm_query(sqlite3 *db, const char *fmt, ...) {
  char sql[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sql, sizeof(sql), fmt, ap);
  va_end(ap);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
    TEST_FAIL("%s: %s", sql, sqlite3_errmsg(db));
  ASSERT_EQ_INT(sqlite3_step(st), SQLITE_ROW);
  long long v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}
