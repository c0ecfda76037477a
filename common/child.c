#include "common/child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define CHILD_KEEP_DEFAULT (64u << 10)
#define CHILD_EXIT_GRACE_MS 500
/* After SIGKILL, how long to wait for the exit before giving up on it. */
#define CHILD_KILL_GRACE_MS 3000
#define CHILD_MAX_EXTRA 8

/* The libuv handles a child may have. Each close callback clears its own
 * bit; the one that clears the last frees the child. */
enum { H_TIMER = 1, H_EXIT = 2, H_IN = 4, H_OUT = 8, H_ERR = 16 };

typedef struct {
  char *p;
  size_t len;
} child_keep;

struct child {
  child_spec s;          /* callbacks and limits; argv and friends are not kept */
  pid_t pid;             /* also its process group */
  int pidfd;
  unsigned open;         /* H_* bits of handles initialised and not yet closed */
  uv_timer_t timer;      /* deadline, then grace periods */
  uv_poll_t exitw;       /* the pidfd: readable once it has exited */
  uv_pipe_t in, out, err;
  uv_write_t wreq;
  uint8_t *in_data;
  int exited, timed_out, finished, spawn_error;
  int eof_out, eof_err;
  int64_t exit_status;
  int term_signal;
  int launched;          /* its launcher has it, and has not said it exited */
  char *lost;
  uint64_t t0_ns, t1_ns;
  char rbuf[8192];
  child_keep keep[2];    /* stdout, stderr */
  char spawn_msg[128];
};

/* ---- in the children: async-signal-safe calls only (the caller may
 * have threads), until exec or until the function runs ---- */

/* What a child that could not start tells the caller, over a pipe that
 * closes when exec succeeds. */
typedef struct {
  int err;
  char what[60];
} child_report;

typedef struct {
  const child_spec *s;
  int fds[3 + CHILD_MAX_EXTRA]; /* what becomes its fds 0, 1, 2, 3, ... */
  int nfds;
  int report_fd;
  pid_t parent;
} child_plan;

__attribute__((noreturn)) static void child_fail(int fd, const char *what) {
  child_report r = {.err = errno ? errno : EIO};
  size_t n = 0;
  while (what[n] && n + 1 < sizeof r.what) {
    r.what[n] = what[n];
    n++;
  }
  if (write(fd, &r, sizeof r) < 0) _exit(127);
  _exit(127);
}

/* Handlers and masks are the caller's (libuv's signal pipe): reset. */
void child_reset_signals(void) {
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
}

__attribute__((noreturn)) static void child_worker(child_plan *p, pid_t parent) {
  const child_spec *s = p->s;
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) child_fail(p->report_fd, "prctl");
  if (getppid() != parent) _exit(127); /* it died before prctl */
  /* Above every target first, so that no move overwrites a source. */
  int lowest = p->nfds;
  if (p->report_fd < lowest && (p->report_fd = fcntl(p->report_fd, F_DUPFD_CLOEXEC, lowest)) < 0)
    _exit(127);
  for (int i = 0; i < p->nfds; i++)
    if ((p->fds[i] = fcntl(p->fds[i], F_DUPFD_CLOEXEC, lowest)) < 0)
      child_fail(p->report_fd, "dup");
  for (int i = 0; i < p->nfds; i++)
    if (dup2(p->fds[i], i) < 0) child_fail(p->report_fd, "dup2");
  if (s->dir && chdir(s->dir) < 0) child_fail(p->report_fd, "chdir");
  /* Before the close: prepare may use fds of its own (a Landlock ruleset). */
  const char *failed = s->prepare ? s->prepare(s->prepare_arg) : NULL;
  if (failed) child_fail(p->report_fd, failed);
  /* Nothing else of the caller's (its tracker connection) stays open. */
  if (p->report_fd > lowest) close_range((unsigned)lowest, (unsigned)p->report_fd - 1, 0);
  close_range((unsigned)p->report_fd + 1, ~0U, 0);
  if (s->fn) {
    close(p->report_fd);
    _exit(s->fn(s->arg));
  }
  execve(s->argv[0], s->argv, s->env ? s->env : environ);
  child_fail(p->report_fd, "exec");
}

/* The guard's parent-death signal: everything of the child goes. */
static void child_on_parent_death(int sig) {
  (void)sig;
  kill(0, SIGKILL);
}

__attribute__((noreturn)) static void child_guard(child_plan *p) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = child_on_parent_death;
  sigaction(SIGTERM, &sa, NULL);
  if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0) child_fail(p->report_fd, "prctl");
  if (getppid() != p->parent) kill(0, SIGKILL); /* it died before prctl */
  pid_t self = getpid(), w = fork();
  if (w < 0) child_fail(p->report_fd, "fork");
  if (w == 0) {
    signal(SIGTERM, SIG_DFL);
    child_worker(p, self);
  }
  /* Its pipes are the worker's alone: their ends close with it. */
  close_range(0, ~0U, 0);
  int st;
  while (waitpid(w, &st, 0) < 0)
    if (errno != EINTR) _exit(127);
  if (WIFSIGNALED(st)) {
    /* Die the same way, so that the caller can name the signal. */
    struct rlimit zero = {0, 0};
    setrlimit(RLIMIT_CORE, &zero);
    signal(WTERMSIG(st), SIG_DFL);
    kill(self, WTERMSIG(st));
  }
  _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 127);
}

__attribute__((noreturn)) static void child_main(child_plan *p) {
  child_reset_signals();
  if (setsid() < 0) child_fail(p->report_fd, "setsid");
  if (p->s->guard) child_guard(p);
  child_worker(p, p->parent);
}

/* ---- in the caller ---- */

/* Forks the child with fds as its 0, 1, 2, ... and returns once it runs
 * (exec done, or the function started), or a negative errno. */
static int child_fork(struct child *c, child_plan *p) {
  int rp[2];
  if (pipe2(rp, O_CLOEXEC) < 0) {
    snprintf(c->spawn_msg, sizeof c->spawn_msg, "pipe: %s", strerror(errno));
    return -errno;
  }
  p->report_fd = rp[1];
  p->parent = getpid();
  c->t0_ns = uv_hrtime();
  pid_t pid = fork();
  if (pid == 0) child_main(p);
  int rc = pid < 0 ? -errno : 0;
  close(rp[1]);
  if (pid < 0) {
    snprintf(c->spawn_msg, sizeof c->spawn_msg, "fork: %s", strerror(-rc));
    close(rp[0]);
    return rc;
  }
  /* Blocks for the fork and exec only, as libuv's own spawn does. */
  child_report r;
  ssize_t n;
  while ((n = read(rp[0], &r, sizeof r)) < 0 && errno == EINTR) {
  }
  close(rp[0]);
  int pidfd = n == 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
  if (pidfd < 0) {
    rc = n == (ssize_t)sizeof r ? -r.err : n == 0 ? -errno : -EIO;
    if (n == (ssize_t)sizeof r)
      snprintf(c->spawn_msg, sizeof c->spawn_msg, "%.60s: %s", r.what, strerror(r.err));
    else
      snprintf(c->spawn_msg, sizeof c->spawn_msg, "pidfd_open: %s", strerror(-rc));
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return rc;
  }
  c->pid = pid;
  c->pidfd = pidfd;
  return 0;
}

static void child_closed(uv_handle_t *h) {
  struct child *c = h->data;
  unsigned bit = h == (uv_handle_t *)&c->timer  ? H_TIMER
                 : h == (uv_handle_t *)&c->exitw ? H_EXIT
                 : h == (uv_handle_t *)&c->in    ? H_IN
                 : h == (uv_handle_t *)&c->out   ? H_OUT
                                                 : H_ERR;
  c->open &= ~bit;
  if (c->open) return;
  if (c->pidfd >= 0) close(c->pidfd);
  free(c->lost);
  free(c->keep[0].p);
  free(c->keep[1].p);
  free(c->in_data);
  free(c);
}

static void child_close(struct child *c, unsigned bit, uv_handle_t *h) {
  if ((c->open & bit) && !uv_is_closing(h)) uv_close(h, child_closed);
}

void child_kill(child *c) {
  if (c->launched) {
    c->s.launcher->kill(c->s.launcher->self, c);
    return;
  }
  /* It leads its own process group, so this reaches all it started. Only
   * while it is not reaped, so that a reused pid is never hit. */
  if (c->pid > 0 && !c->exited) kill(-c->pid, SIGKILL);
}

static void child_finish(struct child *c) {
  if (c->finished) return;
  c->finished = 1;
  if (c->launched) { /* its exit never came: the launcher lets go before done */
    c->launched = 0;
    c->s.launcher->forget(c->s.launcher->self, c);
  }
  uv_timer_stop(&c->timer);
  child_result r = {.spawn_error = c->spawn_error, .spawn_msg = c->spawn_msg,
                    .exited = c->exited, .exit_status = c->exit_status,
                    .term_signal = c->term_signal, .timed_out = c->timed_out,
                    .out = c->keep[0].p, .out_len = c->keep[0].len,
                    .err = c->keep[1].p, .err_len = c->keep[1].len, .lost = c->lost};
  r.seconds = (double)((c->exited ? c->t1_ns : uv_hrtime()) - c->t0_ns) / 1e9;
  if (c->s.done) c->s.done(c->s.data, &r);
  child_close(c, H_EXIT, (uv_handle_t *)&c->exitw);
  child_close(c, H_IN, (uv_handle_t *)&c->in);
  child_close(c, H_OUT, (uv_handle_t *)&c->out);
  child_close(c, H_ERR, (uv_handle_t *)&c->err);
  child_close(c, H_TIMER, (uv_handle_t *)&c->timer);
}

static void child_check(struct child *c) {
  if (c->exited && c->eof_out && c->eof_err) child_finish(c);
}

static void child_on_timer(uv_timer_t *t) {
  struct child *c = t->data;
  if (c->spawn_error || c->exited) {
    child_finish(c); /* output still open: held by something that escaped the group */
  } else if (!c->timed_out) {
    c->timed_out = 1;
    child_kill(c);
    uv_timer_start(&c->timer, child_on_timer, CHILD_KILL_GRACE_MS, 0);
  } else {
    child_finish(c); /* SIGKILL did not end it in time: give up waiting */
  }
}

/* It has exited (or its launcher lost it): its output may still come. */
static void child_ended(struct child *c, int st) {
  c->exited = 1;
  c->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 0;
  c->term_signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
  c->t1_ns = uv_hrtime();
  uv_timer_start(&c->timer, child_on_timer, c->s.exit_grace_ms, 0);
  child_check(c);
}

static void child_on_exit(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  struct child *c = h->data;
  int st;
  pid_t r;
  while ((r = waitpid(c->pid, &st, WNOHANG)) < 0 && errno == EINTR) {
  }
  if (c->exited || r != c->pid) return;
  uv_poll_stop(h);
  /* Nothing it started may outlive it. Its group id stays taken while
   * any member lives, so this cannot reach a stranger. */
  kill(-c->pid, SIGKILL);
  child_ended(c, st);
}

void child_exited(child *c, int wait_status, const char *lost) {
  if (!c->launched) return;
  c->launched = 0;
  if (lost) c->lost = strdup(lost); /* NULL without memory: then a plain exit */
  child_ended(c, wait_status);
}

static void child_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  struct child *c = h->data;
  *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void child_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  struct child *c = st->data;
  int i = st == (uv_stream_t *)&c->err;
  if (n < 0) {
    uv_read_stop(st);
    *(i ? &c->eof_err : &c->eof_out) = 1;
    child_check(c);
    return;
  }
  if (n == 0) return;
  if (!i && c->s.on_out) {
    c->s.on_out(c->s.data, buf->base, (size_t)n);
    return;
  }
  child_keep *k = &c->keep[i];
  size_t room = c->s.keep_max - k->len, take = (size_t)n < room ? (size_t)n : room;
  if (take == 0) return;
  char *q = realloc(k->p, k->len + take + 1);
  if (!q) return;
  memcpy(q + k->len, buf->base, take);
  k->p = q;
  k->len += take;
  k->p[k->len] = '\0';
}

static void child_written(uv_write_t *req, int status) {
  struct child *c = req->data;
  (void)status; /* a child that died early is reported by its exit */
  child_close(c, H_IN, (uv_handle_t *)&c->in);
}

/* Opens our end of a pipe on the loop. */
static void child_pipe(uv_loop_t *loop, struct child *c, uv_pipe_t *pp, unsigned bit, int fd) {
  uv_pipe_init(loop, pp, 0);
  pp->data = c;
  c->open |= bit;
  uv_pipe_open(pp, fd);
}

/* Our ends and its ends of its stdin, stdout and stderr. */
typedef struct {
  int in[2], out[2], err[2], null;
} child_fds;

static void child_fds_close(child_fds *f, int ours) {
  int *all[] = {&f->in[0], &f->in[1], &f->out[0], &f->out[1], &f->err[0], &f->err[1], &f->null};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    int our_end = all[i] == &f->in[1] || all[i] == &f->out[0] || all[i] == &f->err[0];
    if (*all[i] >= 0 && (ours || !our_end)) {
      close(*all[i]);
      *all[i] = -1;
    }
  }
}

static int child_open_fds(const child_spec *s, child_fds *f, child_plan *p) {
  if ((s->in ? pipe2(f->in, O_CLOEXEC) : (f->null = open("/dev/null", O_RDONLY | O_CLOEXEC))) < 0 ||
      pipe2(f->out, O_CLOEXEC) < 0 || (!s->inherit_err && pipe2(f->err, O_CLOEXEC) < 0))
    return -errno;
  p->fds[0] = s->in ? f->in[0] : f->null;
  p->fds[1] = f->out[1];
  p->fds[2] = s->inherit_err ? 2 : f->err[1];
  for (size_t i = 0; i < s->nextra; i++) p->fds[3 + i] = s->extra_fds[i];
  p->nfds = 3 + (int)s->nextra;
  return 0;
}

int child_start(uv_loop_t *loop, const child_spec *s, child **out) {
  if (out) *out = NULL;
  struct child *c = calloc(1, sizeof *c);
  if (!c || s->nextra > CHILD_MAX_EXTRA) {
    free(c);
    free(s->in);
    return -ENOMEM;
  }
  c->s = *s;
  if (!c->s.keep_max) c->s.keep_max = CHILD_KEEP_DEFAULT;
  if (!c->s.exit_grace_ms) c->s.exit_grace_ms = CHILD_EXIT_GRACE_MS;
  c->in_data = s->in;
  c->pidfd = -1;
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  c->open = H_TIMER;
  if (out) *out = c;

  child_fds f = {{-1, -1}, {-1, -1}, {-1, -1}, -1};
  child_plan p = {.s = s};
  int rc = child_open_fds(s, &f, &p);
  if (rc < 0) {
    snprintf(c->spawn_msg, sizeof c->spawn_msg, "pipe: %s", strerror(-rc));
  } else if (s->launcher) {
    c->t0_ns = uv_hrtime();
    rc = s->launcher->start(s->launcher->self, c, s->launch_how, p.fds, (size_t)p.nfds,
                            c->spawn_msg, sizeof c->spawn_msg);
    c->launched = rc == 0;
  } else {
    rc = child_fork(c, &p);
  }
  child_fds_close(&f, rc < 0);
  if (rc < 0) {
    /* done comes from the loop, never inside child_start. */
    c->spawn_error = rc;
    c->eof_out = c->eof_err = 1;
    uv_timer_start(&c->timer, child_on_timer, 0, 0);
    return 0;
  }
  if (!s->launcher) {
    uv_poll_init(loop, &c->exitw, c->pidfd);
    c->exitw.data = c;
    c->open |= H_EXIT;
    uv_poll_start(&c->exitw, UV_READABLE, child_on_exit);
  }
  child_pipe(loop, c, &c->out, H_OUT, f.out[0]);
  uv_read_start((uv_stream_t *)&c->out, child_alloc, child_read);
  if (s->inherit_err) {
    c->eof_err = 1;
  } else {
    child_pipe(loop, c, &c->err, H_ERR, f.err[0]);
    uv_read_start((uv_stream_t *)&c->err, child_alloc, child_read);
  }
  if (s->in) {
    child_pipe(loop, c, &c->in, H_IN, f.in[1]);
    c->wreq.data = c;
    uv_buf_t b = uv_buf_init((char *)c->in_data, (unsigned)s->in_len);
    if (uv_write(&c->wreq, (uv_stream_t *)&c->in, &b, 1, child_written) < 0)
      child_close(c, H_IN, (uv_handle_t *)&c->in);
  }
  uv_timer_start(&c->timer, child_on_timer, s->timeout_ms, 0);
  return 0;
}
