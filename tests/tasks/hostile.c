/* A kernel that misbehaves on purpose, one way per value of MODE, for the
 * runner's tests (tests/integration/test_runner.c):
 *
 *   0 well-behaved: out = 2 * in + 1      6 creates a file
 *   1 segmentation fault                  7 forks
 *   2 abort()                             8 allocates HUGE_MB and touches it
 *   3 never returns                       9 opens a socket
 *   4 integer division by zero           10 a constructor, run by dlopen,
 *   5 a wrong element, out[N / 2]           creates a file and forks
 *
 * Files are named /tmp/ktune-hostile-TAG (and -TAG-ctor) so that a test
 * can check that none appeared. No headers: the few libc functions are
 * declared here and resolved against the runner when it loads the kernel. */

typedef unsigned long size_t;
void *malloc(size_t);
void abort(void);
int open(const char *, int, ...);
int fork(void);
int socket(int, int, int);

#define HOSTILE_CREATE 0101 /* O_WRONLY | O_CREAT */

/* "/tmp/ktune-hostile-" TAG suffix, without libc. */
static void hostile_path(char *p, const char *suffix) {
  const char *head = "/tmp/ktune-hostile-";
  while (*head) *p++ = *head++;
  char digits[24];
  int n = 0;
  long tag = TAG;
  do {
    digits[n++] = (char)('0' + tag % 10);
    tag /= 10;
  } while (tag > 0 && n < 20);
  while (n > 0) *p++ = digits[--n];
  while (*suffix) *p++ = *suffix++;
  *p = '\0';
}

static void hostile_good(float *out, const float *in) {
  for (long i = 0; i < N; i++) out[i] = 2.0f * in[i] + 1.0f;
}

#if MODE == 10
__attribute__((constructor)) static void hostile_init(void) {
  char path[96];
  hostile_path(path, "-ctor");
  open(path, HOSTILE_CREATE, 0644);
  fork();
}
#endif

void hostile(float *out, const float *in) {
  volatile int zero = 0;
  char path[96];
  switch (MODE) {
    case 1: *(volatile int *)16 = 1; break;
    case 2: abort(); break;
    case 3:
      for (;;) zero++;
    case 4: out[0] = (float)(1 / zero); break;
    case 5:
      hostile_good(out, in);
      out[N / 2] += 1.0f;
      return;
    case 6:
      hostile_path(path, "");
      open(path, HOSTILE_CREATE, 0644);
      break;
    case 7: fork(); break;
    case 8: {
      size_t n = (size_t)HUGE_MB << 20;
      char *p = malloc(n);
      for (size_t i = 0; i < n; i += 4096) p[i] = 1;
      break;
    }
    case 9: socket(2, 1, 0); break;
    default: break;
  }
  hostile_good(out, in);
}

/* The obviously correct version. */
void hostile_ref(float *out, const float *in) {
  for (long i = 0; i < N; i++) out[i] = 2.0f * in[i] + 1.0f;
}
