/* The tracker's dashboard (tracker/dashboard.html, served at / by
 * `ktune-tracker --http`) in a real headless Chromium driven over its
 * DevTools pipe (cdp.c), against a real farm: it shows the agents and the
 * sessions, follows a running session without reloading (its progress
 * moves, its chart grows by the new trials alone), asks for a token where
 * the tracker has tokens, marks failed trials, keeps whatever the farm's
 * strings hold as text, fits a phone, and logs nothing on the console. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "tests/integration/cdp.h"
#include "tests/integration/harness.h"
#include "tests/test.h"

#define T_ALICE "alice-admin-token-0123456789"
#define T_BOB "bob-client-token-0123456789"
#define T_RUNNER "runner-r1-token-0123456789"
#define T_BUILDER "builder-b1-token-0123456789"

/* Opening a page, or the page showing what the tracker says: well inside
 * this; the tracker's stream and the page's poll are once a second. */
#define PAGE_MS 15000
#define SHOW_MS 10000

static char url[512];

static const char *page_url(const farm *f, const char *fragment) {
  snprintf(url, sizeof(url), "http://%s/%s", f->http, fragment ? fragment : "");
  return url;
}

/* Waits for JavaScript condition expr; fails the test, with what the page
 * shows, when it does not hold within timeout_ms. */
static void expect_page(cdp *c, const char *expr, int timeout_ms, const char *what) {
  if (cdp_wait(c, expr, timeout_ms)) return;
  char text[8192];
  cdp_eval_str(c, "document.body ? document.body.innerText.slice(0, 6000) : ''", text,
               sizeof(text), PAGE_MS);
  for (size_t i = 0; i < cdp_console_count(c); i++)
    fprintf(stderr, "console: %s\n", cdp_console(c, i));
  TEST_FAIL("the page did not %s within %d ms (%s); it shows:\n%s", what, timeout_ms, expr, text);
}

/* A tracker as a shell starts it: SIGPIPE not ignored (the test runner
 * ignores it, and an ignored signal stays ignored across exec), so that a
 * browser that goes away in the middle of the event stream must not take
 * the tracker with it. */
static void start_tracker(farm *f, char *const extra[]) {
  signal(SIGPIPE, SIG_DFL);
  farm_start_http(f, extra);
  signal(SIGPIPE, SIG_IGN);
}

/* Before a case starts its farm: without a browser it cannot run. */
static void need_chromium(void) {
  char path[4096];
  cdp_require_chromium(path, sizeof(path));
}

static long done_of(cdp *c, long id) {
  char expr[256];
  snprintf(expr, sizeof(expr),
           "Number(document.querySelector('tr[data-session=\"%ld\"] .progress').dataset.done)", id);
  return (long)cdp_eval_num(c, expr, PAGE_MS);
}

/* Every console message so far is the page's own 401 (the tracker answers
 * a page opened without a token, as a browser opens one, with 401 and the
 * page, so that it can ask for the token): the only one allowed. */
static void expect_only_page_401(cdp *c, const farm *f, const char *what) {
  char page[200];
  snprintf(page, sizeof(page), "(http://%s/", f->http);
  for (size_t i = 0; i < cdp_console_count(c); i++) {
    const char *m = cdp_console(c, i);
    if (strstr(m, "status of 401") && strstr(m, page) && !strstr(m, "/api/")) continue;
    for (size_t k = 0; k < cdp_console_count(c); k++)
      fprintf(stderr, "console: %s\n", cdp_console(c, k));
    TEST_FAIL("a console message %s besides the page's own 401: %s", what, m);
  }
}

/* ---- the driver ---- */

/* The check that the page's console stays quiet must see what a page can
 * log, or it would pass whatever Chromium does: a warning, an error, an
 * uncaught exception and a load that fails, each in the list. */
TEST(the_browser_driver_sees_console_errors) {
  cdp *c = cdp_start();
  cdp_navigate(c, "data:text/html,<!DOCTYPE html><title>bad</title><script>"
                  "console.warn('a warning'); console.error('an error', {code: 7});"
                  "setTimeout(function () { null.x(); }, 0);</script>"
                  "<img src='http://127.0.0.1:1/missing.png'>",
               PAGE_MS);
  ASSERT_EQ_INT(cdp_eval_num(c, "1 + 1", PAGE_MS), 2);
  const char *want[] = {"console.warning: a warning", "console.error: an error Object",
                        "exception: Uncaught TypeError", "missing.png"};
  for (int i = 0; i < 4; i++) {
    int seen = 0;
    for (int tries = 0; !seen && tries < 100; tries++) {
      for (size_t k = 0; k < cdp_console_count(c); k++)
        seen |= strstr(cdp_console(c, k), want[i]) != NULL;
      if (!seen) cdp_wait(c, "false", 50);
    }
    if (!seen) {
      for (size_t k = 0; k < cdp_console_count(c); k++)
        fprintf(stderr, "console: %s\n", cdp_console(c, k));
      TEST_FAIL("the driver did not see \"%s\" on the console", want[i]);
    }
  }
  cdp_console_clear(c);
  ASSERT_EQ_INT(cdp_console_count(c), 0);
  cdp_stop(c);
}

/* ---- a live farm ---- */

TEST(dashboard_follows_a_live_farm_without_reloading) {
  need_chromium();
  farm f;
  start_tracker(&f, NULL);
  pid_t b = farm_builder(&f, "b1");
  pid_t r1 = farm_runner(&f, "r1", "k", NULL);
  pid_t r2 = farm_runner(&f, "r2", "k", NULL);
  farm_wait_agent(&f, "b1", 1);
  farm_wait_agent(&f, "r1", 1);
  farm_wait_agent(&f, "r2", 1);
  /* Random configs of a small matmul, each measured (none from the
   * history), rounds of 40 ms or more: some 10 s on two runners. */
  char *tune[] = {"matmul", "-D", "M=32", "-D", "N=32", "-D", "K=32", "--strategy", "random",
                  "--remeasure", "--confirm", "0", "--key", "k", "--trials", "100",
                  "--min-repeat-ms", "40", NULL};
  long id = farm_submit(&f, tune);
  farm_wait_trials(&f, id, 1);

  cdp *c = cdp_start();
  cdp_navigate(c, page_url(&f, NULL), PAGE_MS);
  /* A mark of this load: a reload would lose it. */
  json_decref(cdp_eval(c, "window.__dashboardTest = 42", PAGE_MS));
  char expr[512];
  snprintf(expr, sizeof(expr), "document.querySelector('tr[data-session=\"%ld\"] .progress')", id);
  expect_page(c, expr, SHOW_MS, "show the session");
  const char *names[] = {"b1", "r1", "r2"};
  for (int i = 0; i < 3; i++) {
    snprintf(expr, sizeof(expr),
             "(document.querySelector('tr[data-agent=\"%s\"]') || {}).textContent || ''", names[i]);
    char text[1024];
    cdp_eval_str(c, expr, text, sizeof(text), PAGE_MS);
    ASSERT_CONTAINS(text, names[i]);
  }
  /* A runner's device as the tracker knows it, and its key's runners. */
  char text[2048];
  cdp_eval_str(c, "document.querySelector('tr[data-agent=\"r1\"]').textContent", text,
               sizeof(text), PAGE_MS);
  ASSERT_CONTAINS(text, "runner");
  json_t *st = farm_status(&f);
  json_t *agent = farm_agent(st, "r1");
  ASSERT_NOT_NULL(agent);
  ASSERT_CONTAINS(text, json_string_value(json_object_get(agent, "arch")));
  ASSERT_CONTAINS(text, json_string_value(json_object_get(json_object_get(agent, "device"), "cpu")));
  json_decref(st);
  expect_page(c, "document.querySelector('tr[data-key=\"k\"] td:nth-child(2)').textContent === '2'",
              SHOW_MS, "show key k's two runners");
  snprintf(expr, sizeof(expr), "document.querySelector('tr[data-session=\"%ld\"]').textContent", id);
  cdp_eval_str(c, expr, text, sizeof(text), PAGE_MS);
  ASSERT_CONTAINS(text, "matmul");
  ASSERT_CONTAINS(text, "random");

  /* Live: the stream, and the progress moving without a reload. */
  expect_page(c, "window.ktune && window.ktune.state === 'live'", SHOW_MS, "go live");
  long before = done_of(c, id);
  snprintf(expr, sizeof(expr),
           "Number(document.querySelector('tr[data-session=\"%ld\"] .progress').dataset.done) > %ld",
           id, before);
  expect_page(c, expr, SHOW_MS, "show more trials done");
  long after = done_of(c, id);
  ASSERT_LT_INT(before, after);
  ASSERT_EQ_INT(cdp_eval_num(c, "window.__dashboardTest === 42", PAGE_MS), 1);
  ASSERT_EQ_INT(cdp_eval_num(c, "performance.getEntriesByType('navigation').length", PAGE_MS), 1);

  /* The running session is the one shown; its chart has points, and grew
   * by asking for the trials after the last one it had. */
  snprintf(expr, sizeof(expr), "window.ktune.selected === %ld", id);
  ASSERT_EQ_INT(cdp_eval_num(c, expr, PAGE_MS), 1);
  expect_page(c, "document.querySelectorAll('svg#chart .pt').length > 0", SHOW_MS,
              "draw points in the chart");
  expect_page(c, "document.querySelector('svg#chart #best-line')", SHOW_MS, "draw the best line");
  snprintf(expr, sizeof(expr),
           "performance.getEntriesByType('resource').some(function (e) {"
           " return /\\/api\\/sessions\\/%ld\\/trials\\?after=[1-9]/.test(e.name); })",
           id);
  expect_page(c, expr, SHOW_MS, "ask for the new trials alone");
  ASSERT_EQ_INT(cdp_eval_num(c, "window.ktune.trials.length > 0", PAGE_MS), 1);
  ASSERT_EQ_INT(cdp_eval_num(c, "window.ktune.trials.every(function (t, i, a) {"
                                " return i === 0 || a[i - 1].id < t.id; })", PAGE_MS), 1);
  /* Its axes, labelled. */
  ASSERT_EQ_INT(cdp_eval_num(c, "document.querySelectorAll('svg#chart text').length >= 4", PAGE_MS),
                1);
  cdp_eval_str(c, "document.querySelector('svg#chart .xlabel').textContent + ' / ' + "
                  "document.querySelector('svg#chart .ylabel').textContent",
               text, sizeof(text), PAGE_MS);
  ASSERT_EQ_STR(text, "trial / best GFLOPS so far");

  /* A phone: cards, nothing wider than the screen. */
  cdp_viewport(c, 390, 844, 1);
  expect_page(c, "getComputedStyle(document.querySelector('#sessions thead')).display === 'none'",
              SHOW_MS, "lay the tables out as cards on a phone");
  expect_page(c, "document.documentElement.scrollWidth <= window.innerWidth", SHOW_MS,
              "fit a phone's width");
  ASSERT_EQ_INT(cdp_eval_num(c, "window.__dashboardTest === 42", PAGE_MS), 1);
  cdp_expect_quiet(c, "while following a live farm");
  cdp_stop(c);
  /* The browser gone in the middle of the stream: the tracker's next
   * writes to it fail, and it serves on. */
  proc_sleep_ms(2500);
  int ws;
  if (waitpid(f.tracker, &ws, WNOHANG) == f.tracker) {
    farm_print_log(&f);
    if (WIFSIGNALED(ws))
      TEST_FAIL("the tracker was killed by %s once the browser left its event stream",
                strsignal(WTERMSIG(ws)));
    TEST_FAIL("the tracker exited %d once the browser left its event stream", WEXITSTATUS(ws));
  }
  json_decref(farm_status(&f));

  char ids[32], out[4096];
  snprintf(ids, sizeof(ids), "%ld", id);
  char *cancel[] = {"cancel", ids, NULL};
  farm_ktune(&f, out, sizeof(out), 10000, cancel);
  farm_stop_all(&f, b, r1, r2);
}

/* ---- tokens ---- */

TEST(dashboard_asks_for_a_token_and_shows_nothing_without_one) {
  need_chromium();
  char tokens[300];
  farm_tokens_file(tokens, sizeof(tokens), "admin alice " T_ALICE "\nclient bob " T_BOB
                   "\nrunner r1 " T_RUNNER "\nbuilder b1 " T_BUILDER "\n");
  char *opts[] = {"--tokens", tokens, "--auth-delay-ms", "100", NULL};
  farm f;
  start_tracker(&f, opts);
  setenv("KTUNE_USER", "b1", 1);
  setenv("KTUNE_TOKEN", T_BUILDER, 1);
  pid_t b = farm_builder(&f, "b1");
  setenv("KTUNE_USER", "r1", 1);
  setenv("KTUNE_TOKEN", T_RUNNER, 1);
  pid_t r = farm_runner(&f, "r1", "k", NULL);
  setenv("KTUNE_USER", "alice", 1);
  setenv("KTUNE_TOKEN", T_ALICE, 1);
  farm_wait_agent(&f, "r1", 1);
  farm_wait_agent(&f, "b1", 1);

  /* No token: the form, and no data at all. */
  cdp *c = cdp_start();
  cdp_navigate(c, page_url(&f, NULL), PAGE_MS);
  expect_page(c, "!document.getElementById('auth').hidden", SHOW_MS, "ask for a token");
  ASSERT_EQ_INT(cdp_eval_num(c, "document.getElementById('data').hidden", PAGE_MS), 1);
  ASSERT_EQ_INT(cdp_eval_num(c, "document.querySelectorAll('tr[data-agent], tr[data-session]')"
                                ".length", PAGE_MS), 0);
  ASSERT_EQ_INT(cdp_eval_num(c, "document.body.innerText.indexOf('r1') < 0", PAGE_MS), 1);
  ASSERT_EQ_INT(cdp_eval_num(c, "window.ktune.state === 'token'", PAGE_MS), 1);
  expect_only_page_401(c, &f, "without a token");

  /* A client's token in the address: the farm, and the token out of the
   * address bar. */
  cdp_navigate(c, "about:blank", PAGE_MS);
  cdp_console_clear(c);
  cdp_navigate(c, page_url(&f, "#token=" T_BOB), PAGE_MS);
  expect_page(c, "document.querySelector('tr[data-agent=\"r1\"]') && "
                 "document.querySelector('tr[data-agent=\"b1\"]')",
              SHOW_MS, "show the agents with a client's token");
  ASSERT_EQ_INT(cdp_eval_num(c, "document.getElementById('auth').hidden", PAGE_MS), 1);
  ASSERT_EQ_INT(cdp_eval_num(c, "location.hash === '' && location.href.indexOf('token') < 0",
                             PAGE_MS), 1);
  expect_page(c, "window.ktune.state === 'live'", SHOW_MS, "go live with a client's token");
  expect_only_page_401(c, &f, "with a client's token");

  /* An agent's token: refused, said so; then a client's, typed in the
   * form. */
  cdp_navigate(c, "about:blank", PAGE_MS);
  cdp_console_clear(c);
  cdp_navigate(c, page_url(&f, "#token=" T_RUNNER), PAGE_MS);
  expect_page(c, "!document.getElementById('auth').hidden && "
                 "document.getElementById('auth').dataset.code === '403'",
              SHOW_MS, "refuse a runner's token");
  char msg[512];
  cdp_eval_str(c, "document.getElementById('auth-msg').textContent", msg, sizeof(msg), PAGE_MS);
  ASSERT_CONTAINS(msg, "agent");
  ASSERT_EQ_INT(cdp_eval_num(c, "document.querySelectorAll('tr[data-agent]').length", PAGE_MS), 0);
  json_decref(cdp_eval(c, "document.getElementById('token-input').value = '" T_ALICE "';"
                          "document.getElementById('auth').requestSubmit()", PAGE_MS));
  expect_page(c, "document.querySelector('tr[data-agent=\"r1\"]')", SHOW_MS,
              "show the agents once a token is typed in");
  ASSERT_EQ_INT(cdp_eval_num(c, "sessionStorage.getItem('ktune-token') === '" T_ALICE "'", PAGE_MS),
                1);
  cdp_stop(c);
  farm_stop_all(&f, b, r, 0);
}

/* ---- failures ---- */

/* A task whose config U=3 does not compile (and says so with markup),
 * U=5 crashes, U=7 gives a wrong answer; the others are right. */
static void write_failing_task(char *spec, size_t len) {
  char dir[256], path[400];
  proc_tmpdir(dir, sizeof(dir));
  snprintf(path, sizeof(path), "%s/shaky.c", dir);
  proc_write_file(path, "#if U == 3\n"
                        "#error <img src=x onerror=alert(1)> & three\n"
                        "#endif\n"
                        "void k(float *C, const float *A) {\n"
                        "#if U == 5\n"
                        "  *(volatile float *)0 = 1.0f;\n"
                        "#endif\n"
                        "  for (long i = 0; i < N; i++) C[i] = A[i] * 2.0f + (U == 7);\n"
                        "}\n"
                        "void k_ref(float *C, const float *A) {\n"
                        "  for (long i = 0; i < N; i++) C[i] = A[i] * 2.0f;\n"
                        "}\n");
  snprintf(spec, len, "%s/shaky.json", dir);
  proc_write_file(spec, "{\"name\": \"shaky\", \"source\": \"shaky.c\", \"entry\": \"k\",\n"
                        " \"reference\": \"k_ref\", \"constants\": {\"N\": 1024},\n"
                        " \"args\": [{\"name\": \"C\", \"type\": \"float\", \"count\": \"N\","
                        " \"output\": true},\n"
                        "          {\"name\": \"A\", \"type\": \"float\", \"count\": \"N\"}],\n"
                        " \"knobs\": {\"U\": [1, 2, 3, 4, 5, 6, 7, 8]},\n"
                        " \"flops\": \"N\"}\n");
}

TEST(dashboard_marks_failed_trials_and_counts_them_by_code) {
  need_chromium();
  farm f;
  start_tracker(&f, NULL);
  pid_t b = farm_builder(&f, "b1");
  pid_t r = farm_runner(&f, "r1", "k", NULL);
  farm_wait_agent(&f, "b1", 1);
  farm_wait_agent(&f, "r1", 1);
  char spec[400];
  write_failing_task(spec, sizeof(spec));
  char *tune[] = {spec, "--strategy", "grid", "--trials", "8", "--confirm", "0", "--key", "k",
                  NULL};
  long id = farm_submit(&f, tune);
  char out[8192];
  int rc = farm_wait(&f, id, 60000, out, sizeof(out));
  if (rc != 0) {
    farm_print_log(&f);
    TEST_FAIL("ktune wait %ld exited %d: %s", id, rc, out);
  }

  cdp *c = cdp_start();
  cdp_navigate(c, page_url(&f, NULL), PAGE_MS);
  char expr[512];
  snprintf(expr, sizeof(expr), "window.ktune && window.ktune.selected === %ld", id);
  expect_page(c, expr, SHOW_MS, "select the ended session");
  /* One red tick per failed trial, a point per good one. */
  expect_page(c, "document.querySelectorAll('svg#chart .fail').length === 3", SHOW_MS,
              "mark the three failed trials");
  ASSERT_EQ_INT(cdp_eval_num(c, "document.querySelectorAll('svg#chart .pt').length", PAGE_MS), 5);
  char codes[512];
  cdp_eval_str(c, "Array.prototype.map.call(document.querySelectorAll('svg#chart .fail'),"
                  " function (e) { return e.dataset.status; }).join(' ')",
               codes, sizeof(codes), PAGE_MS);
  ASSERT_EQ_STR(codes, "COMPILE_ERROR RUNTIME_ERROR WRONG_ANSWER");
  /* The session's failures by code. */
  const char *want[][2] = {{"COMPILE_ERROR", "1"}, {"RUNTIME_ERROR", "1"}, {"WRONG_ANSWER", "1"}};
  for (int i = 0; i < 3; i++) {
    snprintf(expr, sizeof(expr),
             "(document.querySelector('tr[data-session=\"%ld\"] .code[data-code=\"%s\"]') || "
             "{dataset: {}}).dataset.count || ''",
             id, want[i][0]);
    char n[32];
    cdp_eval_str(c, expr, n, sizeof(n), PAGE_MS);
    if (strcmp(n, want[i][1])) {
      snprintf(expr, sizeof(expr), "document.querySelector('tr[data-session=\"%ld\"]').innerText",
               id);
      char row[2048];
      cdp_eval_str(c, expr, row, sizeof(row), PAGE_MS);
      TEST_FAIL("the session's row does not count %s %s times: %s", want[i][0], want[i][1], row);
    }
  }
  snprintf(expr, sizeof(expr), "Number(document.querySelector('tr[data-session=\"%ld\"] "
                               ".progress').dataset.done)", id);
  ASSERT_EQ_INT(cdp_eval_num(c, expr, PAGE_MS), 8);
  /* The compiler's words, markup and all, are text in the tick's title. */
  char title[1024];
  cdp_eval_str(c, "document.querySelector('svg#chart .fail[data-status=\"COMPILE_ERROR\"] title')"
                  ".textContent", title, sizeof(title), PAGE_MS);
  ASSERT_CONTAINS(title, "<img src=x onerror=alert(1)>");
  ASSERT_EQ_INT(cdp_eval_num(c, "document.querySelectorAll('img').length", PAGE_MS), 0);
  cdp_expect_quiet(c, "showing failed trials");
  cdp_stop(c);
  farm_stop_all(&f, b, r, 0);
}

TEST_LIST(TEST_ENTRY(the_browser_driver_sees_console_errors),
          TEST_ENTRY(dashboard_follows_a_live_farm_without_reloading),
          TEST_ENTRY(dashboard_asks_for_a_token_and_shows_nothing_without_one),
          TEST_ENTRY(dashboard_marks_failed_trials_and_counts_them_by_code))
