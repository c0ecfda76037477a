/* Debian's Chromium, headless, driven over the DevTools protocol on a
 * pipe (--remote-debugging-pipe: JSON commands NUL-terminated on its fd 3,
 * answers and events NUL-terminated on its fd 4), for the tests of pages:
 * open a URL, evaluate JavaScript in it, and collect every console error
 * and warning (a script's, an uncaught exception, a failed load). Every
 * read has a time limit; a failure fails the test with what went wrong. */
#ifndef KTUNE_TESTS_CDP_H
#define KTUNE_TESTS_CDP_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct cdp cdp;

/* Chromium on the PATH in path, failing the test when there is none: the
 * message says that `scripts/deps --test` installs it. */
void cdp_require_chromium(char *path, size_t len);

/* Chromium on the PATH, started with a fresh profile in a folder of its
 * own, attached to its page with Page, Runtime and Log enabled. Fails the
 * test when Chromium is not installed (scripts/deps --test installs it)
 * or does not answer. */
cdp *cdp_start(void);

/* Opens url in the page and waits up to timeout_ms for its load event. */
void cdp_navigate(cdp *c, const char *url, int timeout_ms);

/* The value of JavaScript expression expr in the page (promises awaited),
 * as JSON (a new reference; null for undefined). Fails the test when expr
 * throws or Chromium does not answer within timeout_ms. */
json_t *cdp_eval(cdp *c, const char *expr, int timeout_ms);
/* The same for an expression whose value is a number (a boolean: 0 or 1),
 * or a string copied into buf. */
double cdp_eval_num(cdp *c, const char *expr, int timeout_ms);
const char *cdp_eval_str(cdp *c, const char *expr, char *buf, size_t len, int timeout_ms);

/* Evaluates expr every 50 ms until it is truthy (1) or timeout_ms passes
 * (0). */
int cdp_wait(cdp *c, const char *expr, int timeout_ms);

/* The page's size as a laptop's or a phone's screen (mobile: touch, and
 * the viewport meta tag applies). */
void cdp_viewport(cdp *c, int width, int height, int mobile);

/* Console errors and warnings so far, each as one line of text. */
size_t cdp_console_count(const cdp *c);
const char *cdp_console(const cdp *c, size_t i);
/* Forgets those so far (after a step that must log some). */
void cdp_console_clear(cdp *c);
/* Fails the test, listing them, when there is any; what says when. */
void cdp_expect_quiet(cdp *c, const char *what);

/* Closes Chromium (then kills its processes), reaps it and removes its
 * profile folder. */
void cdp_stop(cdp *c);

#endif
