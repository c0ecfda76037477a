/* `ktune report` makes one self-contained HTML page from a real history:
 * two sessions of matmul at one size and a task whose compile error
 * carries markup, each tuned on the private local farm of `ktune tune`.
 * The page is checked as text (one chart per task, one line per session,
 * nothing loaded from elsewhere, history strings escaped) and opened in a
 * real headless Chromium, whose console must stay silent. */
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/integration/harness.h"
#include "tests/integration/proc.h"
#include "tests/test.h"

/* A tune with its farm's start and stop, or a report: each well inside
 * the case's two minutes. */
#define RUN_MS 60000
/* Chromium's start, one page and its exit take seconds; longer is a hang. */
#define BROWSER_MS 60000

/* The text of the hostile error, as the template's #error writes it. */
#define HOSTILE "<script>alert(1)</script>"
#define HOSTILE_ESCAPED "&lt;script&gt;alert(1)&lt;/script&gt;"

static char out[1 << 16];
static char page[1 << 20];

/* `ktune ARGS...` in folder cwd; its exit code, its output in out. */
static int ktune_in(const char *cwd, char *const args[]) {
  return proc_ktune(cwd, args, out, sizeof(out), RUN_MS);
}

static void expect_rc(int rc, int want, const char *what) {
  if (rc != want) TEST_FAIL("%s exited %d, not %d: %s", what, rc, want, out);
}

typedef struct {
  char root[256], db[300], html[300];
} place;

static void make_place(place *p) {
  proc_tmpdir(p->root, sizeof(p->root));
  snprintf(p->db, sizeof(p->db), "%s/t.db", p->root);
  snprintf(p->html, sizeof(p->html), "%s/t.html", p->root);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

/* At the end of a passing case; a failing one keeps its files to look at. */
static void remove_place(const place *p) {
  if (chdir("/") == 0) nftw(p->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Task names are letters, digits, '_', '-' and '.', so the markup comes
 * in through what a user's template makes the compiler say: U=8 fails to
 * compile with an error that holds a script element, quotes and an
 * ampersand. */
static void write_evil(const char *dir) {
  char path[400];
  snprintf(path, sizeof(path), "%s/evil.c", dir);
  proc_write_file(path, "#if U == 8\n"
                        "#error " HOSTILE " & \"quotes\" 'too'\n"
                        "#endif\n"
                        "void k(float *C, const float *A) {\n"
                        "  for (long i = 0; i < N; i += U)\n"
                        "    for (long u = 0; u < U; u++) C[i + u] = A[i + u] * 2.0f;\n"
                        "}\n"
                        "void k_ref(float *C, const float *A) {\n"
                        "  for (long i = 0; i < N; i++) C[i] = A[i] * 2.0f;\n"
                        "}\n");
  snprintf(path, sizeof(path), "%s/evil.json", dir);
  proc_write_file(path, "{\"name\": \"evil\", \"source\": \"evil.c\", \"entry\": \"k\",\n"
                        " \"reference\": \"k_ref\", \"constants\": {\"N\": 1024},\n"
                        " \"args\": [{\"name\": \"C\", \"type\": \"float\", \"count\": \"N\","
                        " \"output\": true},\n"
                        "          {\"name\": \"A\", \"type\": \"float\", \"count\": \"N\"}],\n"
                        " \"knobs\": {\"U\": [1, 2, 4, 8]},\n"
                        " \"constraints\": [\"N % U == 0\"],\n"
                        " \"flops\": \"N\"}\n");
}

/* matmul 24x24x24 by random and by grid search (two sessions of one task
 * and size), and evil by grid: all four of its configs, U=8 failing. */
static void make_history(const place *p) {
  write_evil(p->root);
  const char *strategies[] = {"random", "grid"};
  for (int i = 0; i < 2; i++) {
    char *tune[] = {"tune", "matmul", "-D", "M=24", "-D", "N=24", "-D", "K=24", "--trials", "4",
                    "--strategy", (char *)strategies[i], "--db", (char *)p->db, NULL};
    expect_rc(ktune_in(p->root, tune), 0, "ktune tune matmul");
  }
  char *evil[] = {"tune", "./evil.json", "--trials", "4", "--strategy", "grid", "--db",
                  (char *)p->db, NULL};
  expect_rc(ktune_in(p->root, evil), 0, "ktune tune ./evil.json");
  ASSERT_CONTAINS(out, "COMPILE_ERROR 1");
}

/* `ktune report` of the place's history into its page, read into page. */
static void make_report(const place *p) {
  char *report[] = {"report", "--db", (char *)p->db, "-o", (char *)p->html, NULL};
  expect_rc(ktune_in(p->root, report), 0, "ktune report");
  ASSERT_CONTAINS(out, "wrote ");
  proc_read_file(p->html, page, sizeof(page));
  if (strlen(page) + 1 >= sizeof(page))
    TEST_FAIL("the page is larger than %zu bytes", sizeof(page));
}

static int count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *s = hay; (s = strstr(s, needle)); s += strlen(needle)) n++;
  return n;
}

/* The <section> whose heading starts with the task's name, as its own
 * string in buf. */
static void task_section(const char *html, const char *task, char *buf, size_t len) {
  char head[64];
  snprintf(head, sizeof(head), "<h2>%s <small>", task);
  const char *h = strstr(html, head);
  if (!h) TEST_FAIL("no section for task %s", task);
  const char *start = h;
  while (start > html && strncmp(start, "<section", 8) != 0) start--;
  const char *end = strstr(h, "</section>");
  if (!end || (size_t)(end - start) >= len) TEST_FAIL("section of %s has no end", task);
  snprintf(buf, len, "%.*s", (int)(end - start), start);
}

/* Every src= and href= of the page, and anything that would load. */
static void expect_nothing_loaded(const char *html) {
  const char *never[] = {"http://", "https://", "src=", "url(", "@import", "<link", "<script",
                         "<iframe", "<object", "<embed", "<img"};
  for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
    if (strcasestr(html, never[i])) TEST_FAIL("the page has \"%s\"", never[i]);
  for (const char *s = html; (s = strstr(s, "href=")); s += 5)
    if (strncmp(s, "href=\"#", 7) != 0) TEST_FAIL("a link leaves the page: %.60s", s);
}

TEST(report_has_a_chart_per_task_a_line_per_session_and_escapes_the_history) {
  place p;
  make_place(&p);
  make_history(&p);
  make_report(&p);
  ASSERT(strncmp(page, "<!DOCTYPE html>\n", 16) == 0);
  ASSERT_CONTAINS(page, "<meta name=\"viewport\" content=\"width=device-width");
  ASSERT_CONTAINS(page, "</html>\n");
  /* One chart per task and size, each drawn to the page's width. */
  ASSERT_EQ_INT(count(page, "<svg"), 2);
  ASSERT_EQ_INT(count(page, "<svg viewBox=\""), 2);
  static char sec[1 << 16];
  task_section(page, "matmul", sec, sizeof(sec));
  ASSERT_CONTAINS(sec, "K=24 M=24 N=24");
  ASSERT_EQ_INT(count(sec, "<polyline"), 2);
  ASSERT_EQ_INT(count(sec, "<li class=\"s"), 2);
  ASSERT_CONTAINS(sec, "</b> random &middot; <code>tcc</code>");
  ASSERT_CONTAINS(sec, "</b> grid &middot; <code>tcc</code>");
  ASSERT_CONTAINS(sec, ">8</b><span>trials</span>");
  ASSERT_CONTAINS(sec, " GFLOPS</li>");
  /* evil's failed trial is a tick on its chart's axis. */
  task_section(page, "evil", sec, sizeof(sec));
  ASSERT_EQ_INT(count(sec, "<polyline"), 1);
  ASSERT_EQ_INT(count(sec, "<path class=\"fail\""), 1);
  ASSERT_CONTAINS(sec, "1 failed</span>");
  /* The table: FLOPs per call (2*M*N*K), latencies in the units of
   * `ktune tune`, failures by status with the first error. */
  ASSERT_CONTAINS(page, ">27,648</td>");
  ASSERT(strstr(page, " us</td>") || strstr(page, " ms</td>"));
  ASSERT_CONTAINS(page, "<span class=\"bad\">COMPILE_ERROR</span> 1</summary><pre>");
  /* The error's markup is text: escaped, never an element. */
  ASSERT_CONTAINS(page, HOSTILE_ESCAPED " &amp; &quot;quotes&quot; &#39;too&#39;");
  if (strstr(page, HOSTILE)) TEST_FAIL("the hostile error came out as markup");
  expect_nothing_loaded(page);
  /* What measured the trials. */
  ASSERT_CONTAINS(page, "<td>local-runner</td><td>local</td>");
  ASSERT_CONTAINS(page, "<code>tcc 0.9.27");
  ASSERT_CONTAINS(page, "<td>number=1 repeat=3</td>");
  remove_place(&p);
}

/* ---- a real browser ---- */

static char dom[1 << 20];
static char console_log[1 << 20];

/* Opens url in headless Chromium: its DOM after loading in dom (with
 * whatever it says on stderr), its log in console_log. In a container it
 * runs as root without a sandbox, and keeps its profile, cache and crash
 * files under the test's folder. */
static void browse(const char *chromium, const place *p, const char *url) {
  char profile[400], log[400], log_opt[420], profile_opt[420];
  snprintf(profile, sizeof(profile), "%s/chromium-profile", p->root);
  snprintf(log, sizeof(log), "%s/chromium.log", p->root);
  snprintf(profile_opt, sizeof(profile_opt), "--user-data-dir=%s", profile);
  snprintf(log_opt, sizeof(log_opt), "--log-file=%s", log);
  unlink(log);
  /* The test's own process (a case is a forked child): HOME is ours. */
  setenv("HOME", p->root, 1);
  setenv("XDG_CONFIG_HOME", p->root, 1);
  setenv("XDG_CACHE_HOME", p->root, 1);
  /* Console messages go to the log file, each with its source: the DOM
   * alone on standard output. */
  char *argv[] = {(char *)chromium, "--headless=new", "--disable-gpu", "--no-sandbox",
                  "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                  "--disable-background-networking", profile_opt, "--enable-logging", log_opt,
                  "--v=0", "--dump-dom", (char *)url, NULL};
  int rc = proc_run(argv, dom, sizeof(dom), BROWSER_MS);
  if (rc != 0) TEST_FAIL("chromium exited %d on %s: %s", rc, url, dom);
  proc_read_file(log, console_log, sizeof(console_log));
}

/* The first line of the log that is a message on the page's console (an
 * error in SVG or HTML, a blocked load, a script's error), or NULL. */
static const char *console_message(char *line, size_t len) {
  for (const char *s = console_log; *s;) {
    const char *e = strchr(s, '\n');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    snprintf(line, len, "%.*s", (int)n, s);
    /* The page runs no script: whatever reaches its console is an error. */
    if (strstr(line, ":CONSOLE") || strstr(line, "Uncaught")) return line;
    s += n + (e ? 1 : 0);
  }
  return NULL;
}

TEST(report_opens_in_headless_chromium_without_console_errors) {
  char chromium[4096];
  if (!proc_find("chromium", chromium, sizeof(chromium))) {
    fprintf(stderr, "  (skipped: chromium not installed; scripts/deps --test installs it)\n");
    return;
  }
  place p;
  make_place(&p);
  /* First a page with an SVG error: the check must see it, or it would
   * pass whatever Chromium logs. */
  char bad[400], url[420], line[1024];
  snprintf(bad, sizeof(bad), "%s/bad.html", p.root);
  proc_write_file(bad, "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>bad</title>"
                       "</head><body><svg viewBox=\"0 0 10 nan\"><polyline points=\"0,0 5,x\"/>"
                       "</svg></body></html>\n");
  snprintf(url, sizeof(url), "file://%s", bad);
  browse(chromium, &p, url);
  if (!console_message(line, sizeof(line)))
    TEST_FAIL("chromium's log shows no console error for a page with a bad viewBox; its log "
              "format may have changed: %s", console_log);
  ASSERT_CONTAINS(line, "viewBox");

  make_history(&p);
  make_report(&p);
  snprintf(url, sizeof(url), "file://%s", p.html);
  browse(chromium, &p, url);
  if (console_message(line, sizeof(line)))
    TEST_FAIL("the report's page has a console message: %s", line);
  /* The browser built what the page says: both charts and their lines,
   * and the hostile error as text. */
  ASSERT_EQ_INT(count(dom, "<svg"), 2);
  ASSERT_EQ_INT(count(dom, "<polyline"), 3);
  ASSERT_CONTAINS(dom, HOSTILE_ESCAPED);
  if (strcasestr(dom, "<script")) TEST_FAIL("the browser's DOM has a script element");
  remove_place(&p);
}

/* ---- errors ---- */

TEST(usage_errors_exit_2_and_a_missing_or_foreign_history_exits_1) {
  place p;
  make_place(&p);
  char *help[] = {"report", "--help", NULL};
  expect_rc(ktune_in(p.root, help), 0, "ktune report --help");
  ASSERT_CONTAINS(out, "usage: ktune report [--db PATH] [-o FILE]");
  char *bogus[] = {"report", "--bogus", NULL};
  expect_rc(ktune_in(p.root, bogus), 2, "ktune report --bogus");
  ASSERT_CONTAINS(out, "usage: ktune report");
  char *extra[] = {"report", "more", NULL};
  expect_rc(ktune_in(p.root, extra), 2, "ktune report more");
  ASSERT_CONTAINS(out, "ktune report: unexpected argument 'more'");
  char *empty[] = {"report", "-o", "", NULL};
  expect_rc(ktune_in(p.root, empty), 2, "ktune report -o ''");
  ASSERT_CONTAINS(out, "-o takes a file name");

  /* The default --db is ./ktune.db, and nothing is written without it. */
  char *none[] = {"report", NULL};
  expect_rc(ktune_in(p.root, none), 1, "ktune report without a history");
  ASSERT_CONTAINS(out, "ktune report: no history at ktune.db: run `ktune tune` first");
  char path[400];
  snprintf(path, sizeof(path), "%s/report.html", p.root);
  if (access(path, F_OK) == 0) TEST_FAIL("a report was written without a history");

  char *text_db[] = {"report", "--db", "notes.txt", NULL};
  proc_write_file("notes.txt", "not a history\n");
  expect_rc(ktune_in(p.root, text_db), 1, "ktune report --db notes.txt");
  ASSERT_CONTAINS(out, "ktune report: cannot read history at notes.txt: ");
  sqlite3 *db;
  if (sqlite3_open("other.db", &db) != SQLITE_OK ||
      sqlite3_exec(db, "CREATE TABLE x (a)", NULL, NULL, NULL) != SQLITE_OK)
    TEST_FAIL("cannot make other.db");
  sqlite3_close(db);
  char *other[] = {"report", "--db", "other.db", NULL};
  expect_rc(ktune_in(p.root, other), 1, "ktune report --db other.db");
  ASSERT_CONTAINS(out, "ktune report: other.db is not a ktune history");
  if (access(path, F_OK) == 0) TEST_FAIL("a report was written from a foreign file");
  remove_place(&p);
}

TEST(empty_history_writes_a_page_that_says_so) {
  /* A tracker makes the schema of a fresh history and records nothing. */
  farm f;
  farm_start(&f, NULL);
  farm_stop_tracker(&f);
  char *report[] = {"report", "--db", f.db, "-o", "-", NULL};
  expect_rc(ktune_in(f.dir, report), 0, "ktune report of an empty history -o -");
  ASSERT(strncmp(out, "<!DOCTYPE html>\n", 16) == 0);
  ASSERT_CONTAINS(out, "This history has no trials yet");
  ASSERT_CONTAINS(out, "</html>\n");
  if (strstr(out, "<svg") || strstr(out, "wrote "))
    TEST_FAIL("an empty history's page has a chart, or stdout has more than the page: %s", out);
  if (chdir("/") == 0) nftw(f.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A workload run gets a table with its tasks' weights and bests, and the
 * end-to-end estimate `ktune best --workload` gives for it. */
TEST(report_shows_a_workloads_end_to_end_estimate) {
  place p;
  make_place(&p);
  char wl[400];
  snprintf(wl, sizeof(wl), "%s/app.json", p.root);
  proc_write_file(wl, "{\"tasks\": [{\"task\": \"matmul\", \"constants\": {\"M\": 16, "
                      "\"N\": 16, \"K\": 16}, \"weight\": 3},\n {\"task\": \"transpose\", "
                      "\"constants\": {\"M\": 32, \"N\": 32}, \"weight\": 2}]}\n");
  char *tune[] = {"tune", "--workload", wl, "--trials", "8", "--batch", "4", "--strategy",
                  "random", "--db", p.db, NULL};
  expect_rc(ktune_in(p.root, tune), 0, "ktune tune --workload");
  char *best[] = {"best", "--workload", wl, "--db", p.db, NULL};
  expect_rc(ktune_in(p.root, best), 0, "ktune best --workload");
  static const char said[] = "end to end (weighted sum of the bests): ";
  const char *line = strstr(out, said);
  ASSERT_NOT_NULL(line);
  line += sizeof(said) - 1;
  char want[64];
  snprintf(want, sizeof(want), "<th class=\"n\">%.*s</th>", (int)strcspn(line, "\n"), line);
  make_report(&p);
  ASSERT_CONTAINS(page, "<h2>Workloads</h2>");
  ASSERT_CONTAINS(page, "<h3>app.json ");
  ASSERT_CONTAINS(page, "end to end: the weighted sum of the bests</th>");
  ASSERT_CONTAINS(page, want);
  remove_place(&p);
}

TEST_LIST(TEST_ENTRY(report_has_a_chart_per_task_a_line_per_session_and_escapes_the_history),
          TEST_ENTRY(report_shows_a_workloads_end_to_end_estimate),
          TEST_ENTRY(report_opens_in_headless_chromium_without_console_errors),
          TEST_ENTRY(usage_errors_exit_2_and_a_missing_or_foreign_history_exits_1),
          TEST_ENTRY(empty_history_writes_a_page_that_says_so))
