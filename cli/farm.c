/* The embedded default: `ktune tune` without --tracker runs a private
 * tracker, builder and runner on loopback and tears them down after. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/wire.h"

extern char **environ;

/* The other programs sit beside this one once installed, or in their own
 * folders of the build tree. */
static int find_program(const char *name, const char *subdir, char *out, size_t len) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return -1;
  self[n] = 0;
  char *slash = strrchr(self, '/');
  if (!slash) return -1;
  *slash = 0;
  if ((size_t)snprintf(out, len, "%s/%s", self, name) < len && access(out, X_OK) == 0) return 0;
  if ((size_t)snprintf(out, len, "%s/../%s/%s", self, subdir, name) >= len) return -1;
  return access(out, X_OK) == 0 ? 0 : -1;
}

static pid_t spawn(const char *path, char *const argv[], int log_fd) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, log_fd, 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, log_fd, 1);
  pid_t pid;
  int rc = posix_spawn(&pid, path, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Waits up to ms for pid; kills it hard after that. */
static void reap(pid_t pid, int sig, long ms) {
  if (pid <= 0) return;
  kill(pid, sig);
  for (long waited = 0; waited < ms; waited += 10) {
    if (waitpid(pid, NULL, WNOHANG) == pid) return;
    sleep_ms(10);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

/* Without reaping it: farm_stop does, and a reaped pid may be another's. */
static int exited(pid_t pid) {
  siginfo_t si = {0};
  return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

/* Until the builder and the runner have said hello (up to FARM_AGENTS_MS):
 * a session submitted before would start with "waiting for a runner ...
 * (no runner is connected)", which on a private farm only says that the
 * runner was a few milliseconds slower than the submission. One that dies
 * or stays away is left to the session, whose messages say what it waits
 * for. */
static void wait_agents(const farm *f) {
  cli_dial d = {.tracker = f->addr};
  for (long waited = 0; waited < FARM_AGENTS_MS; waited += 10) {
    Ktune__Envelope *m;
    char err[256];
    /* One row: agents_total counts them all. */
    if (cli_fetch_status(&d, 1, &m, err, sizeof(err)) < 0) return;
    uint32_t agents = m->status_reply->agents_total;
    wire_free(m);
    if (agents >= 2 || exited(f->builder) || exited(f->runner)) return;
    sleep_ms(10);
  }
}

int farm_start(farm *f, const char *db_path, const char *replay, char *err, size_t errlen) {
  memset(f, 0, sizeof(*f));
  char tracker[PATH_MAX], builder[PATH_MAX], runner[PATH_MAX];
  if (find_program("ktune-tracker", "tracker", tracker, sizeof(tracker)) < 0 ||
      find_program("ktune-builder", "builder", builder, sizeof(builder)) < 0 ||
      find_program("ktune-runner", "runner", runner, sizeof(runner)) < 0) {
    snprintf(err, errlen, "cannot find ktune-tracker, ktune-builder and ktune-runner beside "
                          "ktune: build the whole project (scripts/quickstart) or install it");
    return -1;
  }
  const char *tmp = getenv("TMPDIR");
  snprintf(f->dir, sizeof(f->dir), "%s/ktune-farm.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(f->dir)) {
    snprintf(err, errlen, "cannot create a folder for the local farm: %s", strerror(errno));
    return -1;
  }
  char port_file[300], log_file[300];
  snprintf(port_file, sizeof(port_file), "%s/port", f->dir);
  snprintf(log_file, sizeof(log_file), "%s/farm.log", f->dir);
  int log_fd = open(log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    snprintf(err, errlen, "cannot create %s: %s", log_file, strerror(errno));
    return -1;
  }
  /* A tracker's knob limits keep one client from loading a shared farm;
   * this one has no other client, so it takes any space a spec may hold
   * (common/task_int.h: 64 knobs of 65536 values). */
  char *targv[] = {tracker, "--listen", "127.0.0.1:0", "--db", (char *)db_path,
                   "--port-file", port_file, "--max-knobs", "64", "--max-values", "65536",
                   replay ? "--replay" : NULL, (char *)replay, NULL};
  f->tracker = spawn(tracker, targv, log_fd);
  if (f->tracker < 0) {
    snprintf(err, errlen, "cannot start %s", tracker);
    close(log_fd);
    return -1;
  }
  /* The tracker writes its bound address once it listens. */
  for (int i = 0; i < 1000 && !f->addr[0]; i++) {
    FILE *pf = fopen(port_file, "r");
    if (pf) {
      if (!fgets(f->addr, sizeof(f->addr), pf)) f->addr[0] = 0;
      f->addr[strcspn(f->addr, "\n")] = 0;
      fclose(pf);
      break;
    }
    if (waitpid(f->tracker, NULL, WNOHANG) == f->tracker) {
      f->tracker = 0;
      break;
    }
    sleep_ms(10);
  }
  if (!f->addr[0]) {
    snprintf(err, errlen, "the local tracker did not start (its log follows)");
    close(log_fd);
    return -1;
  }
  if (replay) {
    /* The recording answers every trial: no agent is needed. */
    close(log_fd);
    return 0;
  }
  char *bargv[] = {builder, "--tracker", f->addr, "--name", "local-builder", NULL};
  char *rargv[] = {runner, "--tracker", f->addr, "--key", "local", "--name", "local-runner", NULL};
  f->builder = spawn(builder, bargv, log_fd);
  f->runner = spawn(runner, rargv, log_fd);
  close(log_fd);
  if (f->builder < 0 || f->runner < 0) {
    snprintf(err, errlen, "cannot start the local builder and runner");
    return -1;
  }
  wait_agents(f);
  return 0;
}

void farm_stop(farm *f, int show_log) {
  reap(f->runner, SIGTERM, 5000);
  reap(f->builder, SIGTERM, 5000);
  reap(f->tracker, SIGTERM, 10000);
  char path[300];
  snprintf(path, sizeof(path), "%s/farm.log", f->dir);
  if (show_log) {
    FILE *lf = fopen(path, "r");
    char line[1024];
    fprintf(stderr, "--- local farm log ---\n");
    while (lf && fgets(line, sizeof(line), lf)) fputs(line, stderr);
    if (lf) fclose(lf);
  }
  unlink(path);
  snprintf(path, sizeof(path), "%s/port", f->dir);
  unlink(path);
  rmdir(f->dir);
}
