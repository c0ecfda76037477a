#include "tests/integration/cdp.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/proc.h"
#include "tests/test.h"

/* Chromium's start, attaching to its page, one command: seconds at most. */
#define START_MS 30000
#define CALL_MS 15000
#define CLOSE_MS 5000

struct cdp {
  pid_t pid;              /* Chromium, the leader of its own process group */
  int to_fd, from_fd;     /* its fd 3 (we write) and fd 4 (we read) */
  char dir[256];          /* profile, home and log */
  char log[300];
  char session[128];      /* the page's flat session id */
  long next_id;
  long loads;             /* Page.loadEventFired seen */
  int gone;               /* its pipe closed */
  char *buf;              /* bytes read, up to a message's NUL */
  size_t len, cap;
  char **console;         /* errors and warnings, one line each */
  size_t nconsole, capconsole;
};

/* The process group of a Chromium still running: a case that fails
 * aborts, and must not leave a browser behind. */
static pid_t live_group;
static struct sigaction old_abrt;

static void on_abort(int sig) {
  (void)sig;
  if (live_group > 0) kill(-live_group, SIGKILL);
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The end of Chromium's own log, after a failure. */
static void print_log(const cdp *c) {
  static char text[1 << 16];
  proc_read_file(c->log, text, sizeof(text));
  size_t n = strlen(text);
  const char *from = n > 6000 ? text + n - 6000 : text;
  fprintf(stderr, "--- chromium log %s (its end) ---\n%s\n---\n", c->log, from);
}

static void add_console(cdp *c, const char *line) {
  if (c->nconsole == c->capconsole) {
    c->capconsole = c->capconsole ? c->capconsole * 2 : 16;
    c->console = realloc(c->console, c->capconsole * sizeof(*c->console));
    ASSERT_NOT_NULL(c->console);
  }
  c->console[c->nconsole] = strdup(line);
  ASSERT_NOT_NULL(c->console[c->nconsole]);
  c->nconsole++;
}

static const char *jstr(json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? s : "";
}

/* A console argument as text: a primitive's value, else its description. */
static void append_arg(char *line, size_t len, json_t *arg) {
  size_t at = strlen(line);
  if (at + 2 >= len) return;
  json_t *v = json_object_get(arg, "value");
  if (json_is_string(v)) snprintf(line + at, len - at, " %s", json_string_value(v));
  else if (v) {
    char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    snprintf(line + at, len - at, " %s", t ? t : "?");
    free(t);
  } else if (json_object_get(arg, "description"))
    snprintf(line + at, len - at, " %s", jstr(arg, "description"));
  else if (json_object_get(arg, "unserializableValue"))
    snprintf(line + at, len - at, " %s", jstr(arg, "unserializableValue"));
  else snprintf(line + at, len - at, " (%s)", jstr(arg, "type"));
}

/* Where a console message came from: url:line of its first frame. */
static void append_where(char *line, size_t len, const char *url, json_t *lineno) {
  size_t at = strlen(line);
  if (!url[0] || at + 4 >= len) return;
  if (json_is_integer(lineno))
    snprintf(line + at, len - at, " (%s:%lld)", url, (long long)json_integer_value(lineno) + 1);
  else snprintf(line + at, len - at, " (%s)", url);
}

static void on_event(cdp *c, json_t *m) {
  const char *method = jstr(m, "method");
  json_t *p = json_object_get(m, "params");
  char line[4096];
  if (!strcmp(method, "Page.loadEventFired")) {
    c->loads++;
  } else if (!strcmp(method, "Runtime.consoleAPICalled")) {
    const char *type = jstr(p, "type");
    if (strcmp(type, "error") && strcmp(type, "warning") && strcmp(type, "assert")) return;
    snprintf(line, sizeof(line), "console.%s:", type);
    size_t i;
    json_t *arg;
    json_array_foreach(json_object_get(p, "args"), i, arg) append_arg(line, sizeof(line), arg);
    json_t *frame = json_array_get(json_object_get(json_object_get(p, "stackTrace"), "callFrames"), 0);
    if (frame) append_where(line, sizeof(line), jstr(frame, "url"), json_object_get(frame, "lineNumber"));
    add_console(c, line);
  } else if (!strcmp(method, "Runtime.exceptionThrown")) {
    json_t *d = json_object_get(p, "exceptionDetails");
    json_t *ex = json_object_get(d, "exception");
    snprintf(line, sizeof(line), "exception: %s%s%s", jstr(d, "text"),
             ex && json_object_get(ex, "description") ? " " : "", ex ? jstr(ex, "description") : "");
    append_where(line, sizeof(line), jstr(d, "url"), json_object_get(d, "lineNumber"));
    add_console(c, line);
  } else if (!strcmp(method, "Log.entryAdded")) {
    json_t *e = json_object_get(p, "entry");
    const char *level = jstr(e, "level");
    if (strcmp(level, "error") && strcmp(level, "warning")) return;
    snprintf(line, sizeof(line), "log %s %s: %s", jstr(e, "source"), level, jstr(e, "text"));
    append_where(line, sizeof(line), jstr(e, "url"), json_object_get(e, "lineNumber"));
    add_console(c, line);
  } else if (!strcmp(method, "Inspector.targetCrashed")) {
    add_console(c, "the page crashed (Inspector.targetCrashed)");
  }
}

/* The next message from Chromium, or NULL when none came by deadline (or
 * its pipe closed: c->gone). */
static json_t *next_message(cdp *c, long long deadline) {
  for (;;) {
    char *nul = c->len ? memchr(c->buf, 0, c->len) : NULL;
    if (nul) {
      size_t n = (size_t)(nul - c->buf);
      json_error_t e;
      json_t *m = json_loadb(c->buf, n, 0, &e);
      memmove(c->buf, nul + 1, c->len - n - 1);
      c->len -= n + 1;
      if (!m) TEST_FAIL("chromium sent a message that is not JSON: %s", e.text);
      return m;
    }
    if (c->gone) return NULL;
    long long left = deadline - now_ms();
    if (left <= 0) return NULL;
    struct pollfd pfd = {c->from_fd, POLLIN, 0};
    int r = poll(&pfd, 1, (int)left);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    if (c->cap - c->len < 65536) {
      c->cap = c->cap ? c->cap * 2 : 1 << 17;
      c->buf = realloc(c->buf, c->cap);
      ASSERT_NOT_NULL(c->buf);
    }
    ssize_t n = read(c->from_fd, c->buf + c->len, c->cap - c->len);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      c->gone = 1;
      continue;
    }
    c->len += (size_t)n;
  }
}

/* Reads and handles events until deadline. */
static void pump_until(cdp *c, long long deadline) {
  json_t *m;
  while ((m = next_message(c, deadline))) {
    if (!json_object_get(m, "id")) on_event(c, m);
    json_decref(m);
  }
}

static int send_all(cdp *c, const char *text, size_t len, long long deadline) {
  size_t off = 0;
  while (off < len) {
    long long left = deadline - now_ms();
    if (left <= 0) return -1;
    struct pollfd pfd = {c->to_fd, POLLOUT, 0};
    int r = poll(&pfd, 1, (int)left);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    ssize_t n = write(c->to_fd, text + off, len - off);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return -1;
    off += (size_t)n;
  }
  return 0;
}

/* Sends method (to the page's session when in_page) and waits for its
 * answer: the whole message, or NULL when none came in time. Events that
 * come first are handled. params is taken (NULL: none). */
static json_t *call_raw(cdp *c, const char *method, json_t *params, int in_page, int timeout_ms) {
  long id = ++c->next_id;
  json_t *m = json_pack("{s:I, s:s, s:o}", "id", (json_int_t)id, "method", method, "params",
                        params ? params : json_object());
  ASSERT_NOT_NULL(m);
  if (in_page) json_object_set_new(m, "sessionId", json_string(c->session));
  char *text = json_dumps(m, JSON_COMPACT);
  json_decref(m);
  ASSERT_NOT_NULL(text);
  long long deadline = now_ms() + timeout_ms;
  /* The message and its NUL. */
  int sent = send_all(c, text, strlen(text) + 1, deadline);
  free(text);
  if (sent < 0) return NULL;
  json_t *r;
  while ((r = next_message(c, deadline))) {
    json_t *rid = json_object_get(r, "id");
    if (rid && json_integer_value(rid) == id) return r;
    if (!rid) on_event(c, r);
    json_decref(r);
  }
  return NULL;
}

/* call_raw's result object (a new reference); fails the test on an error
 * or no answer. */
static json_t *call(cdp *c, const char *method, json_t *params, int in_page, int timeout_ms) {
  json_t *r = call_raw(c, method, params, in_page, timeout_ms);
  if (!r) {
    print_log(c);
    TEST_FAIL("chromium did not answer %s within %d ms%s", method, timeout_ms,
              c->gone ? " (its pipe closed)" : "");
  }
  json_t *err = json_object_get(r, "error");
  if (err) {
    char *t = json_dumps(err, JSON_COMPACT);
    TEST_FAIL("chromium answered %s with an error: %s", method, t ? t : "?");
  }
  json_t *res = json_incref(json_object_get(r, "result"));
  json_decref(r);
  return res ? res : json_object();
}

static void call_void(cdp *c, const char *method, json_t *params, int in_page) {
  json_decref(call(c, method, params, in_page, CALL_MS));
}

/* Chromium in a process group of its own, its DevTools pipe on fds 3 and
 * 4, everything it prints in c->log. */
static void launch(cdp *c, const char *chromium) {
  int to[2], from[2];
  ASSERT_EQ_INT(pipe2(to, O_CLOEXEC), 0);
  ASSERT_EQ_INT(pipe2(from, O_CLOEXEC), 0);
  char profile[320], home[320];
  snprintf(profile, sizeof(profile), "--user-data-dir=%s/profile", c->dir);
  snprintf(home, sizeof(home), "%s/home", c->dir);
  ASSERT_EQ_INT(mkdir(home, 0700), 0);
  char *argv[] = {(char *)chromium, "--headless=new", "--disable-gpu", "--no-sandbox",
                  "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                  "--disable-background-networking", "--password-store=basic", profile,
                  "--remote-debugging-pipe", "about:blank", NULL};
  pid_t parent = getpid();
  fflush(NULL);
  pid_t pid = fork();
  ASSERT_GE_INT(pid, 0);
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    /* Out of the way of 3 and 4 first: a pipe's end may be either. */
    int in = fcntl(to[0], F_DUPFD_CLOEXEC, 10), out = fcntl(from[1], F_DUPFD_CLOEXEC, 10);
    int logfd = open(c->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (in < 0 || out < 0 || logfd < 0 || nul < 0) _exit(126);
    if (dup2(nul, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0 || dup2(in, 3) < 0 ||
        dup2(out, 4) < 0)
      _exit(126);
    /* Its profile, cache and crash files under the test's folder. */
    setenv("HOME", home, 1);
    setenv("XDG_CONFIG_HOME", home, 1);
    setenv("XDG_CACHE_HOME", home, 1);
    execv(argv[0], argv);
    _exit(127);
  }
  setpgid(pid, pid); /* as the child does: whichever runs first */
  c->pid = pid;
  live_group = pid;
  close(to[0]);
  close(from[1]);
  c->to_fd = to[1];
  c->from_fd = from[0];
  fcntl(c->to_fd, F_SETFL, O_NONBLOCK);
  fcntl(c->from_fd, F_SETFL, O_NONBLOCK);
}

void cdp_require_chromium(char *path, size_t len) {
  if (!proc_find("chromium", path, len))
    TEST_FAIL("chromium is not installed (no chromium on the PATH): this test opens the page in "
              "a real browser; `scripts/deps --test` installs Debian's chromium");
}

cdp *cdp_start(void) {
  char chromium[4096];
  cdp_require_chromium(chromium, sizeof(chromium));
  cdp *c = calloc(1, sizeof(*c));
  ASSERT_NOT_NULL(c);
  c->to_fd = c->from_fd = -1;
  proc_tmpdir(c->dir, sizeof(c->dir));
  snprintf(c->log, sizeof(c->log), "%s/chromium.log", c->dir);
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_abort;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGABRT, &sa, &old_abrt);
  launch(c, chromium);

  /* Its page target, once it has one. */
  char target[128] = "";
  long long deadline = now_ms() + START_MS;
  while (!target[0]) {
    json_t *r = call_raw(c, "Target.getTargets", NULL, 0, (int)(deadline - now_ms()));
    if (!r || c->gone) {
      json_decref(r);
      print_log(c);
      TEST_FAIL("chromium did not answer on its DevTools pipe within %d ms", START_MS);
    }
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(json_object_get(r, "result"), "targetInfos"), i, t)
      if (!target[0] && !strcmp(jstr(t, "type"), "page"))
        snprintf(target, sizeof(target), "%s", jstr(t, "targetId"));
    json_decref(r);
    if (!target[0]) {
      if (now_ms() > deadline) {
        print_log(c);
        TEST_FAIL("chromium opened no page within %d ms", START_MS);
      }
      pump_until(c, now_ms() + 50);
    }
  }
  json_t *r = call(c, "Target.attachToTarget",
                   json_pack("{s:s, s:b}", "targetId", target, "flatten", 1), 0, CALL_MS);
  snprintf(c->session, sizeof(c->session), "%s", jstr(r, "sessionId"));
  json_decref(r);
  if (!c->session[0]) TEST_FAIL("Target.attachToTarget gave no sessionId");
  call_void(c, "Page.enable", NULL, 1);
  call_void(c, "Runtime.enable", NULL, 1);
  call_void(c, "Log.enable", NULL, 1);
  return c;
}

void cdp_navigate(cdp *c, const char *url, int timeout_ms) {
  long before = c->loads;
  long long deadline = now_ms() + timeout_ms;
  json_t *r = call(c, "Page.navigate", json_pack("{s:s}", "url", url), 1, timeout_ms);
  const char *err = jstr(r, "errorText");
  if (err[0]) TEST_FAIL("chromium could not open %s: %s", url, err);
  json_decref(r);
  while (c->loads == before) {
    json_t *m = next_message(c, deadline);
    if (!m) {
      if (c->gone) print_log(c);
      TEST_FAIL("%s did not load within %d ms%s", url, timeout_ms,
                c->gone ? " (chromium's pipe closed)" : "");
    }
    if (!json_object_get(m, "id")) on_event(c, m);
    json_decref(m);
  }
}

json_t *cdp_eval(cdp *c, const char *expr, int timeout_ms) {
  json_t *r = call(c, "Runtime.evaluate",
                   json_pack("{s:s, s:b, s:b}", "expression", expr, "returnByValue", 1,
                             "awaitPromise", 1),
                   1, timeout_ms);
  json_t *ex = json_object_get(r, "exceptionDetails");
  if (ex) {
    json_t *e = json_object_get(ex, "exception");
    TEST_FAIL("%s threw: %s %s", expr, jstr(ex, "text"), e ? jstr(e, "description") : "");
  }
  json_t *v = json_object_get(json_object_get(r, "result"), "value");
  v = v ? json_incref(v) : json_null();
  json_decref(r);
  return v;
}

double cdp_eval_num(cdp *c, const char *expr, int timeout_ms) {
  json_t *v = cdp_eval(c, expr, timeout_ms);
  double d;
  if (json_is_boolean(v)) d = json_is_true(v);
  else if (json_is_number(v)) d = json_number_value(v);
  else {
    char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    TEST_FAIL("%s is not a number: %s", expr, t ? t : "?");
  }
  json_decref(v);
  return d;
}

const char *cdp_eval_str(cdp *c, const char *expr, char *buf, size_t len, int timeout_ms) {
  json_t *v = cdp_eval(c, expr, timeout_ms);
  if (!json_is_string(v)) {
    char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    TEST_FAIL("%s is not a string: %s", expr, t ? t : "?");
  }
  snprintf(buf, len, "%s", json_string_value(v));
  json_decref(v);
  return buf;
}

int cdp_wait(cdp *c, const char *expr, int timeout_ms) {
  char wrapped[8192];
  snprintf(wrapped, sizeof(wrapped), "!!(%s)", expr);
  long long deadline = now_ms() + timeout_ms;
  for (;;) {
    json_t *v = cdp_eval(c, wrapped, CALL_MS);
    int yes = json_is_true(v);
    json_decref(v);
    if (yes) return 1;
    if (now_ms() >= deadline) return 0;
    pump_until(c, now_ms() + 50);
  }
}

void cdp_viewport(cdp *c, int width, int height, int mobile) {
  call_void(c, "Emulation.setDeviceMetricsOverride",
            json_pack("{s:i, s:i, s:i, s:b}", "width", width, "height", height,
                      "deviceScaleFactor", 1, "mobile", mobile),
            1);
}

size_t cdp_console_count(const cdp *c) { return c->nconsole; }

const char *cdp_console(const cdp *c, size_t i) { return i < c->nconsole ? c->console[i] : NULL; }

void cdp_console_clear(cdp *c) {
  pump_until(c, now_ms()); /* whatever has come already */
  for (size_t i = 0; i < c->nconsole; i++) free(c->console[i]);
  c->nconsole = 0;
}

void cdp_expect_quiet(cdp *c, const char *what) {
  /* Messages already on their way are read first. */
  pump_until(c, now_ms() + 100);
  if (!c->nconsole) return;
  fprintf(stderr, "%zu console error(s) or warning(s) %s:\n", c->nconsole, what);
  for (size_t i = 0; i < c->nconsole; i++) fprintf(stderr, "  %s\n", c->console[i]);
  TEST_FAIL("the page logged %zu console error(s) or warning(s) %s", c->nconsole, what);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

void cdp_stop(cdp *c) {
  if (!c) return;
  if (!c->gone) json_decref(call_raw(c, "Browser.close", NULL, 0, CLOSE_MS));
  /* Until the browser has exited; its zombie keeps the group's id ours
   * while the rest of the group (renderers, zygotes) is killed. */
  siginfo_t si;
  for (long long end = now_ms() + CLOSE_MS; now_ms() < end;) {
    memset(&si, 0, sizeof(si));
    if (waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == c->pid)
      break;
    proc_sleep_ms(20);
  }
  kill(-c->pid, SIGKILL);
  int st;
  while (waitpid(c->pid, &st, 0) < 0 && errno == EINTR) {
  }
  live_group = 0;
  sigaction(SIGABRT, &old_abrt, NULL);
  close(c->to_fd);
  close(c->from_fd);
  nftw(c->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  for (size_t i = 0; i < c->nconsole; i++) free(c->console[i]);
  free(c->console);
  free(c->buf);
  free(c);
}
