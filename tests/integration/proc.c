#include "tests/integration/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *proc_bin(const char *rel) {
  static char buf[8][4096];
  static int next;
  const char *dir = getenv("KTUNE_BUILD_DIR");
  char *b = buf[next++ % 8];
  snprintf(b, sizeof(buf[0]), "%s/%s", dir ? dir : "build", rel);
  return b;
}

void proc_sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

int proc_ktune(const char *cwd, char *const args[], char *out, size_t outlen, int timeout_ms) {
  char *argv[48] = {(char *)proc_bin("cli/ktune")};
  int n = 1;
  for (int i = 0; args[i] && n < 47; i++) argv[n++] = args[i];
  argv[n] = NULL;
  if (cwd && chdir(cwd) != 0) {
    perror(cwd);
    abort();
  }
  return proc_run(argv, out, outlen, timeout_ms);
}

/* The folders a case made, removed when it passes. A case that fails
 * aborts, which runs no atexit handler: its folders stay to be read. */
static struct {
  pid_t pid;
  size_t n;
  char path[64][64];
} made;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

static void remove_made(void) {
  /* Only in the case's own process: a fork of it that exits (a fake
   * server, say) must not take the case's files away. */
  if (getpid() != made.pid) return;
  for (size_t i = 0; i < made.n; i++) nftw(made.path[i], rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void proc_tmpdir(char *buf, size_t len) {
  snprintf(buf, len, "/tmp/ktune-test.XXXXXX");
  if (!mkdtemp(buf)) {
    perror("mkdtemp");
    abort();
  }
  if (made.pid != getpid()) {
    made.pid = getpid();
    made.n = 0;
    atexit(remove_made);
  }
  if (made.n < sizeof made.path / sizeof made.path[0] && strlen(buf) < sizeof made.path[0])
    snprintf(made.path[made.n++], sizeof made.path[0], "%s", buf);
}

void proc_write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    abort();
  }
  fputs(text, f);
  fclose(f);
}

void proc_read_file(const char *path, char *buf, size_t len) {
  buf[0] = 0;
  FILE *f = fopen(path, "r");
  if (!f) return;
  size_t n = fread(buf, 1, len - 1, f);
  buf[n] = 0;
  fclose(f);
}

pid_t proc_start(char *const argv[], const char *log_path) {
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid != 0) return pid;
  /* A test case that fails leaves no daemons behind. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(126);
  int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
  int nul = open("/dev/null", O_RDONLY);
  if (fd < 0 || nul < 0) _exit(126);
  dup2(nul, 0);
  dup2(fd, 1);
  dup2(fd, 2);
  execv(argv[0], argv);
  _exit(127);
}

static int status_code(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return -1;
}

int proc_stop(pid_t pid, int sig, int timeout_ms) {
  int st = 0;
  kill(pid, sig);
  for (int waited = 0; waited < timeout_ms; waited += 10) {
    if (waitpid(pid, &st, WNOHANG) == pid) return st;
    proc_sleep_ms(10);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  return st;
}

int proc_run(char *const argv[], char *out, size_t outlen, int timeout_ms) {
  int fds[2];
  if (pipe(fds) < 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    int nul = open("/dev/null", O_RDONLY);
    dup2(nul, 0);
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    execv(argv[0], argv);
    _exit(127);
  }
  close(fds[1]);
  fcntl(fds[0], F_SETFL, O_NONBLOCK);
  size_t off = 0;
  int st = 0, done = 0;
  for (int waited = 0; waited < timeout_ms && !done; waited += 5) {
    for (;;) {
      char tmp[4096];
      ssize_t n = read(fds[0], tmp, sizeof(tmp));
      if (n <= 0) break;
      size_t k = (size_t)n < outlen - 1 - off ? (size_t)n : outlen - 1 - off;
      memcpy(out + off, tmp, k);
      off += k;
    }
    if (waitpid(pid, &st, WNOHANG) == pid) done = 1;
    else proc_sleep_ms(5);
  }
  if (!done) {
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    fprintf(stderr, "proc_run: %s timed out after %d ms\n", argv[0], timeout_ms);
  }
  for (;;) {
    char tmp[4096];
    ssize_t n = read(fds[0], tmp, sizeof(tmp));
    if (n <= 0) break;
    size_t k = (size_t)n < outlen - 1 - off ? (size_t)n : outlen - 1 - off;
    memcpy(out + off, tmp, k);
    off += k;
  }
  out[off] = 0;
  close(fds[0]);
  return done ? status_code(st) : -1;
}

int proc_wait_file(const char *path, char *buf, size_t len, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 10) {
    FILE *f = fopen(path, "r");
    if (f) {
      int ok = fgets(buf, (int)len, f) != NULL;
      fclose(f);
      if (ok) {
        buf[strcspn(buf, "\n")] = 0;
        return 0;
      }
    }
    proc_sleep_ms(10);
  }
  return -1;
}

int proc_find(const char *prog, char *path, size_t len) {
  const char *dirs = getenv("PATH");
  char dir[4096], full[4200];
  for (const char *p = dirs ? dirs : "/usr/bin:/bin"; *p;) {
    size_t n = strcspn(p, ":");
    snprintf(dir, sizeof(dir), "%.*s", (int)n, p);
    snprintf(full, sizeof(full), "%s/%s", dir, prog);
    if (n && access(full, X_OK) == 0) {
      if (path) snprintf(path, len, "%s", full);
      return 1;
    }
    p += n + (p[n] == ':');
  }
  return 0;
}
