#include "runner/forkserver.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fdmsg.h"
#include "common/log.h"

#define WHO "runner"
/* After a kill request, how long the server may take to report the end
 * before the runner gives up on it. */
#define FS_KILL_GRACE_MS 3000
/* The job frame, the result pipe, the reference image. */
#define FS_MAX_FDS 3

/* Runner to server: RUN (with the fds), KILL. Server to runner: READY
 * once set up, then per trial STARTED and ENDED, or FAILED. */
enum { FS_RUN = 1, FS_KILL, FS_READY, FS_STARTED, FS_ENDED, FS_FAILED };

typedef struct {
  uint32_t kind;
  int32_t value;  /* STARTED: the child's pid; ENDED: its wait status; FAILED: an errno */
  uint64_t job_id;
  char what[32];  /* FAILED: the step that failed */
} fs_msg;

/* Sends m with n fds. 0, or a negative errno. */
static int fs_send(int sock, const fs_msg *m, const int *fds, size_t n, int flags) {
  return fdmsg_send(sock, m, sizeof *m, fds, n, flags);
}

static void fs_close_fds(const int *fds, size_t n) { fdmsg_close(fds, n); }

/* Receives one message and its fds (at most FS_MAX_FDS): as fdmsg_recv. */
static int fs_recv(int sock, fs_msg *m, int *fds, size_t *n, int flags) {
  int r = fdmsg_recv(sock, m, sizeof *m, fds, FS_MAX_FDS, n, flags);
  if (r == 1) m->what[sizeof m->what - 1] = '\0';
  return r;
}

/* ---- the server ---- */

static int fs_report(int sock, uint32_t kind, int32_t value, uint64_t job_id, const char *what) {
  fs_msg m = {.kind = kind, .value = value, .job_id = job_id};
  if (what) snprintf(m.what, sizeof m.what, "%s", what);
  return fs_send(sock, &m, NULL, 0, 0);
}

__attribute__((noreturn)) static void fs_child_fail(const char *what) {
  fprintf(stderr, "ktune-runner: measuring process: %s: %s\n", what, strerror(errno));
  _exit(127);
}

/* The measuring child, forked: fds are the job, the result pipe and maybe
 * the reference image. */
__attribute__((noreturn)) static void fs_child(pid_t server, const int *fds, size_t n,
                                               const measure_opts *base) {
  /* Its own group, so that one kill reaches all of it and nothing of the
   * server; and gone when the server goes. */
  if (setsid() < 0) fs_child_fail("setsid");
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) fs_child_fail("prctl");
  if (getppid() != server) _exit(127); /* it died before prctl */
  /* The server keeps 0 to 3 open, so every fd it received is above 3
   * and no dup2 here overwrites another one's source. */
  if (dup2(fds[0], 0) < 0 || dup2(fds[1], 1) < 0 || (n > 2 && dup2(fds[2], 3) < 0))
    fs_child_fail("dup2");
  /* The control socket (fd 3, unless the reference took its number) and
   * anything else of the server's: gone before a byte of the job is read. */
  if (close_range(n > 2 ? 4 : 3, ~0U, 0) < 0) fs_child_fail("close_range");
  measure_opts mo = *base;
  mo.ref_fd = n > 2 ? 3 : -1;
  mo.sandbox = 1;
  _exit(measure_child_main(0, 1, &mo));
}

/* The child's group, and the child itself in case it has not yet made
 * its group (setsid); it is unreaped, so its pid is still its own. */
static void fs_kill_child(pid_t pid) {
  kill(-pid, SIGKILL);
  kill(pid, SIGKILL);
}

/* Waits for the child to exit, killing its group when the runner asks.
 * Returns 1 when the runner is gone (then the child was killed too). */
static int fs_watch(int sock, pid_t pid, int pidfd, uint64_t job_id) {
  struct pollfd p[2] = {{pidfd, POLLIN, 0}, {sock, POLLIN, 0}};
  int gone = 0;
  while (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "ktune-runner --fork-server: poll: %s\n", strerror(errno));
      fs_kill_child(pid);
      return 1;
    }
    if (!p[1].revents) continue;
    fs_msg m;
    int fds[FS_MAX_FDS];
    size_t n;
    int r = fs_recv(sock, &m, fds, &n, MSG_DONTWAIT);
    fs_close_fds(fds, n);
    if (r == -EAGAIN) continue;
    if (r == 1 && m.kind == FS_KILL) {
      /* A kill for a trial already over crossed its report: ignored. */
      if (m.job_id == job_id) fs_kill_child(pid);
      continue;
    }
    if (r != 0)
      fprintf(stderr, "ktune-runner --fork-server: a request the runner should not send during "
                      "a trial (%s)\n", r < 0 ? strerror(-r) : "not a kill");
    /* Nobody is left to want this child. */
    fs_kill_child(pid);
    gone = 1;
    p[1].fd = -1;
  }
  return gone;
}

/* Forks one trial's child and reports on it. Returns 1 when the server
 * should leave (the runner is gone). */
static int fs_trial(int sock, const fs_msg *rq, int *fds, size_t n, const measure_opts *mo) {
  pid_t self = getpid();
  pid_t pid = fork();
  if (pid == 0) fs_child(self, fds, n, mo);
  int err = errno;
  fs_close_fds(fds, n);
  if (pid < 0) return fs_report(sock, FS_FAILED, err, rq->job_id, "fork") < 0;
  /* Without a pidfd the server could not serve kill requests. */
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  err = errno;
  int gone = 0;
  if (pidfd >= 0) {
    gone = fs_report(sock, FS_STARTED, pid, rq->job_id, NULL) < 0 ||
           fs_watch(sock, pid, pidfd, rq->job_id);
    close(pidfd);
  }
  /* Whatever it left in its group: the unreaped child keeps the group
   * id, so this reaches no stranger. */
  fs_kill_child(pid);
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (pidfd < 0) return fs_report(sock, FS_FAILED, err, rq->job_id, "pidfd_open") < 0;
  return gone || fs_report(sock, FS_ENDED, st, rq->job_id, NULL) < 0;
}

static int fs_serve(int sock, const measure_opts *mo) {
  if (fs_report(sock, FS_READY, getpid(), 0, NULL) < 0) return 1;
  for (;;) {
    fs_msg m;
    int fds[FS_MAX_FDS];
    size_t n;
    int r = fs_recv(sock, &m, fds, &n, 0);
    if (r == 0) return 0; /* the runner closed its end: it is leaving */
    if (r == 1 && m.kind == FS_KILL) {
      fs_close_fds(fds, n); /* crossed the report of its trial */
      continue;
    }
    int low = 0;
    for (size_t i = 0; i < n; i++) low |= fds[i] <= sock;
    if (r < 0 || m.kind != FS_RUN || n < 2 || low) {
      fs_close_fds(fds, n);
      fprintf(stderr, "ktune-runner --fork-server: a malformed request from the runner (%s)\n",
              r < 0 ? strerror(-r) : "not a trial with its fds");
      return 1;
    }
    if (fs_trial(sock, &m, fds, n, mo)) return 0;
  }
}

int forkserver_main(int sock, pid_t parent, const measure_opts *base) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) {
    fprintf(stderr, "ktune-runner --fork-server: prctl: %s\n", strerror(errno));
    return 1;
  }
  if (getppid() != parent) return 1; /* the runner died before prctl */
  /* Nothing of the runner's beyond the socket, and 0 to 2 kept open so
   * that the fds of a request land above the socket (fs_child). */
  close_range((unsigned)sock + 1, ~0U, 0);
  /* The filters once, for every child. */
  measure_opts mo = *base;
  sandbox_filters *filters = NULL;
  char err[256];
  if (!(mo.sandbox_off & SANDBOX_PART_SECCOMP) && sandbox_filters_new(&filters, err, sizeof err) < 0)
    fprintf(stderr, "ktune-runner --fork-server: %s; each trial compiles its own\n", err);
  mo.filters = filters;
  int rc = fs_serve(sock, &mo);
  sandbox_filters_free(filters);
  return rc;
}

/* ---- in the runner ---- */

/* One server process; it outlives its place in the forkserver until
 * libuv has closed its handles. */
typedef struct fs_proc {
  forkserver *fs; /* NULL once it is no longer the current one */
  uv_process_t proc;
  uv_poll_t poll;
  int sock;
  int open;       /* handles not yet closed */
  int ready;      /* it came up: worth starting again should it die */
  int eof;        /* its socket closed: its exit is due */
  int killed;     /* the runner killed it, for why */
  char why[200];
} fs_proc;

struct forkserver {
  uv_loop_t *loop;
  forkserver_opts o;
  fs_proc *p;       /* the server, or NULL while none runs */
  uv_timer_t grace; /* a kill request not answered, or an exit not come, in time */
  /* The trial in flight. */
  int busy, started;
  uint64_t job_id;
  const forkserver_events *ev;
  void *data;
  int freeing;
};

static int fs_spawn(forkserver *fs, char *err, size_t errlen);
static void fs_on_grace(uv_timer_t *t);

static void fs_freed(uv_handle_t *h) { free(h->data); }

static void fs_proc_closed(uv_handle_t *h) {
  fs_proc *p = h->data;
  if (--p->open == 0) free(p);
}

static void fs_proc_close(fs_proc *p) {
  if (p->sock >= 0) {
    uv_close((uv_handle_t *)&p->poll, fs_proc_closed);
    close(p->sock);
    p->sock = -1;
  }
  if (!uv_is_closing((uv_handle_t *)&p->proc)) uv_close((uv_handle_t *)&p->proc, fs_proc_closed);
}

/* The server broke the protocol or stopped answering: it is killed, and
 * its exit (fs_on_exit) settles the trial in flight. */
static void fs_broken(fs_proc *p, const char *why) {
  if (p->killed) return;
  p->killed = 1;
  snprintf(p->why, sizeof p->why, "%s", why);
  uv_poll_stop(&p->poll);
  uv_process_kill(&p->proc, SIGKILL);
}

/* Gives up on the server between trials, for why: it is killed, and its
 * exit no longer concerns the forkserver. */
static void fs_retire(forkserver *fs, const char *why) {
  fs_proc *p = fs->p;
  log_warn(WHO, "the fork server (pid %d) is of no use (%s): starting a new one",
           (int)p->proc.pid, why);
  fs->p = NULL;
  p->fs = NULL;
  uv_timer_stop(&fs->grace);
  uv_poll_stop(&p->poll);
  if (!p->killed) uv_process_kill(&p->proc, SIGKILL);
  p->killed = 1;
}

/* The trial in flight is over: its events end here. */
static void fs_settle(forkserver *fs) {
  fs->busy = 0;
  uv_timer_stop(&fs->grace);
}

static void fs_on_report(fs_proc *p, const fs_msg *m) {
  forkserver *fs = p->fs;
  char why[200];
  if (m->kind == FS_READY) {
    p->ready = 1;
    return;
  }
  /* Per trial: STARTED then ENDED, or FAILED alone. */
  int known = m->kind == FS_STARTED || m->kind == FS_ENDED || m->kind == FS_FAILED;
  if (!known || !fs->busy || m->job_id != fs->job_id || fs->started != (m->kind == FS_ENDED)) {
    snprintf(why, sizeof why, "it sent a report (kind %u, job %llu) that fits no trial of ours",
             m->kind, (unsigned long long)m->job_id);
    fs_broken(p, why);
    return;
  }
  const forkserver_events *ev = fs->ev;
  void *data = fs->data;
  if (m->kind == FS_STARTED) {
    fs->started = 1;
    ev->started(data, (pid_t)m->value);
  } else if (m->kind == FS_ENDED) {
    fs_settle(fs);
    ev->ended(data, m->value);
  } else {
    fs_settle(fs);
    snprintf(why, sizeof why, "cannot start the measuring process: %s: %s", m->what,
             strerror(m->value));
    ev->failed(data, why);
  }
}

/* Its socket closed or failed. It is dying, most likely, and its exit
 * says how; one that lives on without it is killed after the grace. */
static void fs_hung_up(fs_proc *p) {
  p->eof = 1;
  uv_poll_stop(&p->poll);
  uv_timer_start(&p->fs->grace, fs_on_grace, FS_KILL_GRACE_MS, 0);
}

static void fs_on_readable(uv_poll_t *h, int status, int events) {
  (void)events;
  fs_proc *p = h->data;
  if (status < 0) {
    fs_hung_up(p);
    return;
  }
  /* Until drained, or until a report made this server one to forget. */
  while (p->fs && !p->killed) {
    fs_msg m;
    int fds[FS_MAX_FDS];
    size_t n;
    int r = fs_recv(p->sock, &m, fds, &n, MSG_DONTWAIT);
    fs_close_fds(fds, n);
    if (r == -EAGAIN) return;
    if (r == -EPROTO) {
      fs_broken(p, "it sent a malformed message");
      return;
    }
    if (r <= 0) {
      fs_hung_up(p);
      return;
    }
    fs_on_report(p, &m);
  }
}

/* The server is gone: the trial in flight is the runner's fault, and a
 * server that had come up is started again at once (one that died while
 * starting is tried again at the next trial, not in a loop). */
static void fs_on_exit(uv_process_t *h, int64_t status, int sig) {
  fs_proc *p = h->data;
  forkserver *fs = p->fs;
  char how[64], cause[240], text[400];
  if (sig) snprintf(how, sizeof how, "was killed by SIG%s", sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
  else snprintf(how, sizeof how, "exited with status %lld", (long long)status);
  snprintf(cause, sizeof cause, "%s%s%s", p->killed ? " (" : "", p->killed ? p->why : "",
           p->killed ? ")" : "");
  int pid = h->pid;
  fs_proc_close(p);
  if (!fs) return;
  fs->p = NULL;
  uv_timer_stop(&fs->grace);
  const char *next = p->ready ? "starting a new fork server" : "a new one starts with the next job";
  if (fs->busy) {
    log_warn(WHO, "the fork server (pid %d) %s%s; job %llu in flight is a runner error (the "
                  "tracker gives it to a runner again); %s", pid, how, cause,
             (unsigned long long)fs->job_id, next);
    fs_settle(fs);
    snprintf(text, sizeof text, "the fork server (pid %d) %s during the trial%s; the runner "
                                "starts a new one", pid, how, cause);
    fs->ev->failed(fs->data, text);
  } else {
    log_warn(WHO, "the fork server (pid %d) %s%s; %s", pid, how, cause, next);
  }
  if (p->ready && !fs->freeing && !fs->p) {
    char err[256];
    if (fs_spawn(fs, err, sizeof err) < 0) log_error(WHO, "%s; trying again at the next job", err);
    else log_info(WHO, "fork server started again (pid %d)", (int)fs->p->proc.pid);
  }
}

static void fs_on_grace(uv_timer_t *t) {
  forkserver *fs = t->data;
  char why[128];
  if (!fs->p) return;
  if (fs->p->eof)
    snprintf(why, sizeof why, "it closed its socket and did not exit within %d ms",
             FS_KILL_GRACE_MS);
  else
    snprintf(why, sizeof why, "it did not end the measuring process within %d ms of being asked",
             FS_KILL_GRACE_MS);
  fs_broken(fs->p, why);
}

static int fs_spawn(forkserver *fs, char *err, size_t errlen) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    snprintf(err, errlen, "cannot start the fork server: socketpair: %s", strerror(errno));
    return -1;
  }
  fs_proc *p = calloc(1, sizeof *p);
  if (!p) {
    close(sv[0]);
    close(sv[1]);
    snprintf(err, errlen, "cannot start the fork server: out of memory");
    return -1;
  }
  char parent[16], cpu[16], mem[32];
  char *args[16];
  int na = 0;
  args[na++] = (char *)fs->o.exe;
  args[na++] = "--fork-server";
  snprintf(parent, sizeof parent, "%d", (int)getpid());
  args[na++] = "--parent-pid";
  args[na++] = parent;
  if (fs->o.cpu >= 0) {
    snprintf(cpu, sizeof cpu, "%d", fs->o.cpu);
    args[na++] = "--cpu";
    args[na++] = cpu;
  }
  snprintf(mem, sizeof mem, "%llu", (unsigned long long)fs->o.mem_limit_mb);
  args[na++] = "--mem-limit-mb";
  args[na++] = mem;
  if (fs->o.dump_dir) {
    args[na++] = "--dump-dir";
    args[na++] = (char *)fs->o.dump_dir;
  }
  if (fs->o.sandbox_off) {
    args[na++] = "--sandbox-off";
    args[na++] = (char *)fs->o.sandbox_off;
  }
  args[na] = NULL;
  /* Its own session: a terminal's Ctrl-C goes to the runner, which drains. */
  uv_stdio_container_t stdio[FORKSERVER_FD + 1] = {
      {.flags = UV_IGNORE}, {.flags = UV_IGNORE},
      {.flags = UV_INHERIT_FD, .data.fd = 2}, {.flags = UV_INHERIT_FD, .data.fd = sv[1]}};
  uv_process_options_t po = {.exit_cb = fs_on_exit, .file = fs->o.exe, .args = args,
                             .flags = UV_PROCESS_DETACHED, .stdio_count = FORKSERVER_FD + 1,
                             .stdio = stdio};
  p->proc.data = p;
  int rc = uv_spawn(fs->loop, &p->proc, &po);
  close(sv[1]);
  if (rc < 0) {
    close(sv[0]);
    snprintf(err, errlen, "cannot start the fork server (%s --fork-server): %s", fs->o.exe,
             uv_strerror(rc));
    /* A handle uv_spawn failed on must still be closed. */
    p->sock = -1;
    p->open = 1;
    uv_close((uv_handle_t *)&p->proc, fs_proc_closed);
    return -1;
  }
  p->fs = fs;
  p->sock = sv[0];
  p->open = 2;
  fcntl(p->sock, F_SETFL, O_NONBLOCK);
  uv_poll_init(fs->loop, &p->poll, p->sock);
  p->poll.data = p;
  uv_poll_start(&p->poll, UV_READABLE, fs_on_readable);
  /* The runner leaves when its agent is done, whatever the server does. */
  uv_unref((uv_handle_t *)&p->proc);
  uv_unref((uv_handle_t *)&p->poll);
  fs->p = p;
  return 0;
}

int forkserver_new(uv_loop_t *loop, const forkserver_opts *o, forkserver **out, char *err,
                   size_t errlen) {
  *out = NULL;
  forkserver *fs = calloc(1, sizeof *fs);
  if (!fs) {
    snprintf(err, errlen, "cannot start the fork server: out of memory");
    return -1;
  }
  fs->loop = loop;
  fs->o = *o;
  uv_timer_init(loop, &fs->grace);
  fs->grace.data = fs;
  uv_unref((uv_handle_t *)&fs->grace);
  if (fs_spawn(fs, err, errlen) < 0) {
    fs->freeing = 1;
    uv_close((uv_handle_t *)&fs->grace, fs_freed);
    return -1;
  }
  *out = fs;
  return 0;
}

int forkserver_trial(forkserver *fs, uint64_t job_id, int job_fd, int out_fd, int ref_fd,
                     const forkserver_events *ev, void *data, char *err, size_t errlen) {
  if (fs->busy) {
    snprintf(err, errlen, "cannot start the measuring process: job %llu is still in flight",
             (unsigned long long)fs->job_id);
    return -1;
  }
  int fds[FS_MAX_FDS] = {job_fd, out_fd, ref_fd};
  fs_msg m = {.kind = FS_RUN, .job_id = job_id};
  /* A server that died while idle costs no trial: the next one takes it. */
  for (int attempt = 0;; attempt++) {
    if (fs->p && (fs->p->killed || fs->p->eof))
      fs_retire(fs, fs->p->killed ? fs->p->why : "it closed its socket");
    if (!fs->p && fs_spawn(fs, err, errlen) < 0) return -1;
    int rc = fs_send(fs->p->sock, &m, fds, ref_fd >= 0 ? 3 : 2, MSG_DONTWAIT);
    if (rc == 0) break;
    char why[96];
    snprintf(why, sizeof why, "it takes no request (%s)", strerror(-rc));
    if (attempt > 0) {
      snprintf(err, errlen, "cannot start the measuring process: the fork server (pid %d): %s",
               (int)fs->p->proc.pid, why);
      fs_broken(fs->p, why);
      return -1;
    }
    fs_retire(fs, why);
  }
  fs->busy = 1;
  fs->started = 0;
  fs->job_id = job_id;
  fs->ev = ev;
  fs->data = data;
  return 0;
}

void forkserver_kill(forkserver *fs) {
  if (!fs->busy || !fs->p || uv_is_active((uv_handle_t *)&fs->grace)) return;
  fs_msg m = {.kind = FS_KILL, .job_id = fs->job_id};
  int rc = fs_send(fs->p->sock, &m, NULL, 0, MSG_DONTWAIT);
  if (rc < 0) {
    char why[128];
    snprintf(why, sizeof why, "it takes no kill request: %s", strerror(-rc));
    fs_broken(fs->p, why);
    return;
  }
  uv_timer_start(&fs->grace, fs_on_grace, FS_KILL_GRACE_MS, 0);
}

void forkserver_free(forkserver *fs) {
  fs->freeing = 1;
  fs_proc *p = fs->p;
  if (p) {
    /* Its child dies with it (parent-death signal); the wait makes sure
     * that nothing of it outlives the runner. */
    pid_t pid = p->proc.pid;
    p->fs = NULL;
    /* Killed before its socket closes: the end of file would start its own
     * exit, and a kill during that exit cuts a sanitizer's leak check short
     * (a report of its own). */
    if (!p->killed) kill(pid, SIGKILL);
    fs_proc_close(p);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
  }
  uv_close((uv_handle_t *)&fs->grace, fs_freed);
}
