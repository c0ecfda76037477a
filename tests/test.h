/* A small test runner in the spirit of libuv's: typed asserts that print
 * both values, and one process per test case so that a crash or a leaked
 * fd in one case cannot hide or cause a failure in another.
 *
 *   TEST(frame_split) { ... ASSERT_EQ_INT(a, b); ... }
 *   TEST_LIST(TEST_ENTRY(frame_split), ...)
 *
 * `prog` runs every case; `prog NAME` runs one case in this process. */
#ifndef KTUNE_TEST_H
#define KTUNE_TEST_H

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST(name) static void test_##name(void)
#define TEST_ENTRY(name) {#name, test_##name}

typedef struct {
  const char *name;
  void (*fn)(void);
} test_case;

#define TEST_FAIL(...)                                          \
  do {                                                          \
    fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);             \
    fprintf(stderr, __VA_ARGS__);                               \
    fprintf(stderr, "\n");                                      \
    abort();                                                    \
  } while (0)

#define ASSERT(c) \
  do { if (!(c)) TEST_FAIL("assertion failed: %s", #c); } while (0)

#define ASSERT_EQ_INT(a, b)                                                        \
  do {                                                                             \
    long long a_ = (long long)(a), b_ = (long long)(b);                            \
    if (a_ != b_) TEST_FAIL("%s == %s: %lld != %lld", #a, #b, a_, b_);             \
  } while (0)

#define ASSERT_NE_INT(a, b)                                                        \
  do {                                                                             \
    long long a_ = (long long)(a), b_ = (long long)(b);                            \
    if (a_ == b_) TEST_FAIL("%s != %s: both %lld", #a, #b, a_);                    \
  } while (0)

#define ASSERT_GE_INT(a, b)                                                        \
  do {                                                                             \
    long long a_ = (long long)(a), b_ = (long long)(b);                            \
    if (a_ < b_) TEST_FAIL("%s >= %s: %lld < %lld", #a, #b, a_, b_);               \
  } while (0)

#define ASSERT_LT_INT(a, b)                                                        \
  do {                                                                             \
    long long a_ = (long long)(a), b_ = (long long)(b);                            \
    if (!(a_ < b_)) TEST_FAIL("%s < %s: %lld >= %lld", #a, #b, a_, b_);            \
  } while (0)

#define ASSERT_EQ_U64(a, b)                                                        \
  do {                                                                             \
    uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                               \
    if (a_ != b_) TEST_FAIL("%s == %s: %" PRIu64 " != %" PRIu64, #a, #b, a_, b_);  \
  } while (0)

#define ASSERT_EQ_DBL(a, b, tol)                                                   \
  do {                                                                             \
    double a_ = (double)(a), b_ = (double)(b);                                     \
    if (!(a_ - b_ <= (tol) && b_ - a_ <= (tol)))                                   \
      TEST_FAIL("%s == %s: %.9g != %.9g (tol %g)", #a, #b, a_, b_, (double)(tol)); \
  } while (0)

#define ASSERT_GT_DBL(a, b)                                                        \
  do {                                                                             \
    double a_ = (double)(a), b_ = (double)(b);                                     \
    if (!(a_ > b_)) TEST_FAIL("%s > %s: %.9g <= %.9g", #a, #b, a_, b_);            \
  } while (0)

#define ASSERT_EQ_STR(a, b)                                                        \
  do {                                                                             \
    const char *a_ = (a), *b_ = (b);                                               \
    if (!a_ || !b_ || strcmp(a_, b_) != 0)                                         \
      TEST_FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)",          \
                b_ ? b_ : "(null)");                                               \
  } while (0)

#define ASSERT_CONTAINS(hay, needle)                                               \
  do {                                                                             \
    const char *h_ = (hay), *n_ = (needle);                                        \
    if (!h_ || !strstr(h_, n_))                                                    \
      TEST_FAIL("%s contains \"%s\": got \"%s\"", #hay, n_, h_ ? h_ : "(null)");   \
  } while (0)

#define ASSERT_NULL(p) \
  do { if ((p) != NULL) TEST_FAIL("%s is not NULL", #p); } while (0)
#define ASSERT_NOT_NULL(p) \
  do { if ((p) == NULL) TEST_FAIL("%s is NULL", #p); } while (0)

static inline int test_run_one(const test_case *t) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    alarm(120); /* no case may hang the suite */
    t->fn();
    /* exit, not _exit: under AddressSanitizer the leak check runs then. */
    exit(0);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0) {
  }
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
  if (WIFSIGNALED(st))
    fprintf(stderr, "  (killed by signal %d: %s)\n", WTERMSIG(st), strsignal(WTERMSIG(st)));
  return 1;
}

static inline int test_main(const test_case *cases, size_t n, int argc, char **argv) {
  /* A peer that hangs up makes a write fail, which a test can check; the
   * default SIGPIPE would kill the case instead. */
  signal(SIGPIPE, SIG_IGN);
  if (argc > 1) {
    for (size_t i = 0; i < n; i++)
      if (strcmp(cases[i].name, argv[1]) == 0) {
        cases[i].fn();
        return 0;
      }
    fprintf(stderr, "no test case named %s\n", argv[1]);
    return 2;
  }
  int failed = 0;
  for (size_t i = 0; i < n; i++) {
    int rc = test_run_one(&cases[i]);
    printf("%s - %s\n", rc == 0 ? "ok" : "not ok", cases[i].name);
    failed += rc != 0;
  }
  printf("%zu passed, %d failed\n", n - (size_t)failed, failed);
  return failed ? 1 : 0;
}

#define TEST_LIST(...)                                                        \
  int main(int argc, char **argv) {                                           \
    static const test_case cases_[] = {__VA_ARGS__};                          \
    return test_main(cases_, sizeof(cases_) / sizeof(cases_[0]), argc, argv); \
  }

#endif
