#include "builder/buildserver.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "builder/jail.h"
#include "builder/tcc.h"
#include "common/fdmsg.h"
#include "common/log.h"

#define WHO "builder"
/* Builds one server forks at once; ktune-builder --jobs takes at most 64. */
#define BS_MAX_KIDS 128
/* A source larger than a frame of the wire never comes. */
#define BS_SOURCE_MAX (64u << 20)
/* stdin, stdout, stderr, the Landlock ruleset, the working folder. */
#define BS_MAX_FDS 5
/* How long buildserver_free waits for the server to leave by itself. */
#define BS_EXIT_WAIT_MS 1000

/* Builder to server: RUN (with the fds), KILL. Server to builder: ENDED
 * (a wait status) or FAILED (an errno and the step). */
enum { BS_RUN = 1, BS_KILL, BS_ENDED, BS_FAILED };
/* RUN: which fds follow stdin, stdout and stderr, in this order. */
enum { BS_HAS_RULESET = 1, BS_HAS_DIR = 2 };

typedef struct {
  uint32_t kind;
  int32_t value;      /* ENDED: the wait status; FAILED: an errno */
  uint64_t id;
  uint64_t mem_bytes; /* RUN: buildserver_limits */
  uint32_t cpu_s;
  uint32_t has;       /* RUN: BS_HAS_* */
  char what[24];      /* FAILED: the step that failed */
} bs_msg;

/* ---- the server ---- */

typedef struct {
  uint64_t id;
  pid_t pid;
  int pidfd;
} bs_kid;

static int bs_report(int sock, uint32_t kind, int32_t value, uint64_t id, const char *what) {
  bs_msg m = {.kind = kind, .value = value, .id = id};
  if (what) snprintf(m.what, sizeof m.what, "%s", what);
  return fdmsg_send(sock, &m, sizeof m, NULL, 0, 0);
}

/* The build child's work: stdin is the source, stdout gets the object,
 * stderr the messages. tcc writes its output by name and in order, so
 * the name of our stdout makes it go down the pipe with no file. */
static int bs_compile(void) {
  size_t len = 0, cap = 1 << 14;
  char *src = malloc(cap);
  while (src) {
    if (len + 1 == cap) {
      char *q = cap < BS_SOURCE_MAX ? realloc(src, cap * 2) : NULL;
      if (!q) {
        free(src);
        src = NULL;
        errno = cap < BS_SOURCE_MAX ? ENOMEM : EFBIG;
        break;
      }
      src = q;
      cap *= 2;
    }
    ssize_t r = read(0, src + len, cap - 1 - len);
    if (r == 0) break;
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      free(src);
      src = NULL;
      break;
    }
    len += (size_t)r;
  }
  if (!src) {
    dprintf(2, "the build could not read its source: %s", strerror(errno));
    return 2;
  }
  src[len] = '\0';
  char diag[2048];
  int rc = tcc_build_file(src, "/proc/self/fd/1", diag, sizeof diag);
  free(src);
  if (rc != 0 && diag[0] && write(2, diag, strlen(diag)) < 0) return 3;
  return rc == 0 ? 0 : rc == -1 ? 1 : 2;
}

/* The build child, forked: fds are its stdin, stdout, stderr, and as
 * m->has says the ruleset and its folder, all above the server's own (0
 * to 4). */
__attribute__((noreturn)) static void bs_child(pid_t server, rlim_t own, const bs_msg *m,
                                               const int *fds, size_t n) {
  /* Its own group, so that one kill reaches all of it and nothing of the
   * server; and gone when the server goes. */
  if (setsid() < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) _exit(126);
  if (getppid() != server) _exit(126); /* it died before prctl */
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  int ruleset = (m->has & BS_HAS_RULESET) != 0;
  if ((m->has & BS_HAS_DIR) && fchdir(fds[n - 1]) < 0) _exit(126);
  for (int i = 0; i < 3 + ruleset; i++)
    if (dup2(fds[i], i) < 0) _exit(126);
  /* The server's socket and everything else: gone before the source is read. */
  close_range(ruleset ? 4 : 3, ~0U, 0);
  jail_plan plan = {.ruleset_fd = ruleset ? 3 : -1};
  plan.as.rlim_cur = plan.as.rlim_max = own && m->mem_bytes ? own + (rlim_t)m->mem_bytes : 0;
  plan.cpu.rlim_cur = m->cpu_s;
  plan.cpu.rlim_max = (rlim_t)m->cpu_s + 1;
  const char *failed = jail_enter(&plan);
  if (failed) {
    dprintf(2, "cannot confine the build: %s: %s", failed, strerror(errno));
    _exit(2);
  }
  if (ruleset) close(3);
  _exit(bs_compile());
}

/* The child's group, and the child itself in case it has not yet made
 * its group; it is unreaped, so its pid is still its own. */
static void bs_kill_kid(const bs_kid *k) {
  kill(-k->pid, SIGKILL);
  kill(k->pid, SIGKILL);
}

static int bs_reap(const bs_kid *k) {
  bs_kill_kid(k); /* whatever it left in its group */
  int st;
  while (waitpid(k->pid, &st, 0) < 0 && errno == EINTR) {
  }
  close(k->pidfd);
  return st;
}

static void bs_kill_all(bs_kid *kids, size_t n) {
  for (size_t i = 0; i < n; i++) bs_reap(&kids[i]);
}

/* Forks a build. 0, or -1 when the builder is gone. */
static int bs_run(int sock, rlim_t own, const bs_msg *m, const int *fds, size_t n, bs_kid *kids,
                  size_t *nkids) {
  if (*nkids == BS_MAX_KIDS) return bs_report(sock, BS_FAILED, EAGAIN, m->id, "too many builds");
  /* Without the fork handlers: a server forked from a libuv program has
   * libuv's, which would close fds whose numbers the server has reused.
   * The server has one thread, so its child may call anything. */
  pid_t self = getpid(), pid = _Fork();
  if (pid == 0) bs_child(self, own, m, fds, n);
  int err = errno;
  if (pid < 0) return bs_report(sock, BS_FAILED, err, m->id, "fork");
  bs_kid k = {m->id, pid, (int)syscall(SYS_pidfd_open, pid, 0)};
  if (k.pidfd < 0) {
    err = errno;
    bs_kill_kid(&k);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    return bs_report(sock, BS_FAILED, err, m->id, "pidfd_open");
  }
  kids[(*nkids)++] = k;
  return 0;
}

/* One request from the builder. 1 to go on, 0 when the builder has left
 * (or broke the protocol: then nobody wants these builds). */
static int bs_request(int sock, int top, rlim_t own, bs_kid *kids, size_t *nkids) {
  bs_msg m;
  int fds[BS_MAX_FDS];
  size_t n;
  int r = fdmsg_recv(sock, &m, sizeof m, fds, BS_MAX_FDS, &n, MSG_DONTWAIT);
  if (r == -EAGAIN) return 1;
  int low = 0;
  for (size_t i = 0; i < n; i++) low |= fds[i] <= top;
  if (r == 1 && m.kind == BS_KILL && n == 0) {
    /* A kill for a build already over crossed its report: ignored. */
    for (size_t i = 0; i < *nkids; i++)
      if (kids[i].id == m.id) bs_kill_kid(&kids[i]);
    return 1;
  }
  size_t want = 3 + !!(m.has & BS_HAS_RULESET) + !!(m.has & BS_HAS_DIR);
  if (r == 1 && m.kind == BS_RUN && n == want && !low) {
    r = bs_run(sock, own, &m, fds, n, kids, nkids);
    fdmsg_close(fds, n);
    return r == 0;
  }
  fdmsg_close(fds, n);
  if (r != 0)
    fprintf(stderr, "ktune-builder %s: a malformed request from the builder (%s)\n",
            BUILDSERVER_OPTION, r < 0 ? strerror(-r) : "not a build with its fds");
  return 0;
}

int buildserver_main(int sock, pid_t parent) {
  /* The builder's death comes as SIGTERM, read from a signalfd, so that
   * the server can kill its builds' groups before it goes. */
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  child_reset_signals();
  sigprocmask(SIG_BLOCK, &term, NULL);
  int sfd = signalfd(-1, &term, SFD_CLOEXEC);
  if (sfd < 0 || prctl(PR_SET_PDEATHSIG, SIGTERM) < 0) {
    fprintf(stderr, "ktune-builder %s: %s: %s\n", BUILDSERVER_OPTION,
            sfd < 0 ? "signalfd" : "prctl", strerror(errno));
    return 1;
  }
  if (getppid() != parent) return 1; /* the builder died before prctl */
  /* Its own session: a terminal's Ctrl-C goes to the builder, which
   * drains; and no folder of the builder's is held. */
  setsid();
  if (chdir("/") < 0) return 1;
  int top = sock > sfd ? sock : sfd;
  close_range((unsigned)top + 1, ~0U, 0);
  /* A child starts with the server's size, which stays as it is now. */
  rlim_t own = jail_own_vm();
  bs_kid kids[BS_MAX_KIDS];
  size_t nkids = 0;
  struct pollfd p[2 + BS_MAX_KIDS];
  for (;;) {
    p[0] = (struct pollfd){sock, POLLIN, 0};
    p[1] = (struct pollfd){sfd, POLLIN, 0};
    for (size_t i = 0; i < nkids; i++) p[2 + i] = (struct pollfd){kids[i].pidfd, POLLIN, 0};
    if (poll(p, 2 + nkids, -1) < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "ktune-builder %s: poll: %s\n", BUILDSERVER_OPTION, strerror(errno));
      bs_kill_all(kids, nkids);
      return 1;
    }
    if (p[1].revents) { /* the builder died */
      bs_kill_all(kids, nkids);
      return 0;
    }
    /* Ends first, so that each is reported before a request that may
     * reuse its slot. Backwards: the last kid fills a freed slot. */
    for (size_t i = nkids; i-- > 0;) {
      if (!p[2 + i].revents) continue;
      int st = bs_reap(&kids[i]);
      uint64_t id = kids[i].id;
      kids[i] = kids[--nkids];
      if (bs_report(sock, BS_ENDED, st, id, NULL) < 0) {
        bs_kill_all(kids, nkids);
        return 0;
      }
    }
    if (p[0].revents && !bs_request(sock, top, own, kids, &nkids)) {
      bs_kill_all(kids, nkids);
      return 0;
    }
  }
}

/* ---- in the builder ---- */

/* A build under way: its child and its id at the server. */
typedef struct bs_build {
  struct bs_build *next;
  child *c;
  uint64_t id;
} bs_build;

/* One server process; it outlives its place in the buildserver until it
 * is reaped and libuv has closed its handles. */
typedef struct bs_proc {
  struct bs_proc *next; /* buildserver.procs */
  buildserver *bs; /* NULL once reaped, or once the buildserver is freed */
  pid_t pid;
  int pidfd, sock;
  uv_poll_t exitw, poll;
  int open;        /* handles not yet closed */
  int killed;      /* by the builder: why says why */
  bs_build *builds;
  char why[200];
} bs_proc;

struct buildserver {
  uv_loop_t *loop;
  char *exe;       /* NULL: forked */
  bs_proc *p;      /* the server that takes builds, or NULL while none runs */
  bs_proc *procs;  /* every server not yet reaped: p, and killed ones */
  uint64_t next_id;
  child_launcher launcher;
};

static void bs_proc_closed(uv_handle_t *h) {
  bs_proc *p = h->data;
  if (--p->open > 0) return;
  close(p->pidfd);
  free(p);
}

/* The server broke the protocol or stopped answering: it is killed, and
 * its exit (bs_on_exit) loses the builds it had. The next build starts
 * a new one. */
static void bs_broken(bs_proc *p, const char *why) {
  if (p->bs && p->bs->p == p) p->bs->p = NULL;
  if (p->killed) return;
  p->killed = 1;
  snprintf(p->why, sizeof p->why, "%s", why);
  uv_poll_stop(&p->poll);
  kill(p->pid, SIGKILL);
}

static bs_build *bs_take(bs_proc *p, const child *c, uint64_t id) {
  for (bs_build **q = &p->builds; *q; q = &(*q)->next)
    if (c ? (*q)->c == c : (*q)->id == id) {
      bs_build *b = *q;
      *q = b->next;
      return b;
    }
  return NULL;
}

static void bs_on_report(bs_proc *p, const bs_msg *m) {
  bs_build *b = bs_take(p, NULL, m->id);
  if (!b) return; /* forgotten: its child gave up waiting */
  child *c = b->c;
  free(b);
  if (m->kind == BS_ENDED) {
    child_exited(c, m->value, NULL);
  } else {
    char why[200];
    snprintf(why, sizeof why, "the build fork server (pid %d) could not start it: %.24s: %s",
             (int)p->pid, m->what, strerror(m->value));
    child_exited(c, SIGKILL, why);
  }
}

/* Reports until drained; 0 at the end of the stream or on an error. A
 * report's done may free the buildserver (p->bs is then NULL): that ends
 * the drain too, quietly. */
static int bs_drain(bs_proc *p) {
  while (p->bs) {
    bs_msg m;
    int fds[BS_MAX_FDS];
    size_t n;
    int r = fdmsg_recv(p->sock, &m, sizeof m, fds, BS_MAX_FDS, &n, MSG_DONTWAIT);
    fdmsg_close(fds, n);
    if (r == -EAGAIN) return 1;
    if (r == 1 && n == 0 && (m.kind == BS_ENDED || m.kind == BS_FAILED)) {
      bs_on_report(p, &m);
      continue;
    }
    if (r != 0) bs_broken(p, r < 0 && r != -EPROTO ? strerror(-r) : "it sent a malformed message");
    return 0;
  }
  return 1;
}

static void bs_on_readable(uv_poll_t *h, int status, int events) {
  (void)events;
  bs_proc *p = h->data;
  if (status == 0 && bs_drain(p)) return;
  /* Its socket closed: it is going, and its exit says how. One that
   * lingers is killed when a kill request for one of its builds fails. */
  uv_poll_stop(&p->poll);
  if (p->bs && p->bs->p == p) p->bs->p = NULL;
}

/* The server is gone: the builds it had are lost, each told why. */
static void bs_on_exit(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  bs_proc *p = h->data;
  int st;
  if (waitpid(p->pid, &st, WNOHANG) != p->pid) return;
  uv_poll_stop(h);
  buildserver *bs = p->bs;
  if (bs->p == p) bs->p = NULL;
  if (!p->killed) bs_drain(p); /* reports it sent before it went */
  if (!p->bs) return;           /* their done freed the buildserver, and p */
  for (bs_proc **q = &bs->procs; *q; q = &(*q)->next)
    if (*q == p) {
      *q = p->next;
      break;
    }
  p->bs = NULL;
  char how[300], lost[400];
  if (WIFSIGNALED(st))
    snprintf(how, sizeof how, "(pid %d) was killed by SIG%s", (int)p->pid,
             sigabbrev_np(WTERMSIG(st)) ? sigabbrev_np(WTERMSIG(st)) : "?");
  else
    snprintf(how, sizeof how, "(pid %d) exited with status %d", (int)p->pid, WEXITSTATUS(st));
  if (p->killed) snprintf(how + strlen(how), sizeof how - strlen(how), " (%s)", p->why);
  snprintf(lost, sizeof lost, "the build fork server %s during the build", how);
  log_warn(WHO, "the build fork server %s; the next build starts a new one", how);
  for (bs_build *b; (b = p->builds);) {
    p->builds = b->next;
    child *c = b->c;
    free(b);
    child_exited(c, SIGKILL, lost);
  }
  uv_close((uv_handle_t *)&p->exitw, bs_proc_closed);
  uv_close((uv_handle_t *)&p->poll, bs_proc_closed);
  close(p->sock);
  p->sock = -1;
}

/* In the new server before it serves: the socket at BUILDSERVER_FD, 0
 * and 1 on /dev/null, 2 kept (a closed 2 on /dev/null too), nothing else
 * of the builder's. Async-signal-safe calls only. */
__attribute__((noreturn)) static void bs_exec(int sock, const char *exe, char *const *argv,
                                              pid_t parent) {
  int s = fcntl(sock, F_DUPFD, BUILDSERVER_FD + 1);
  int null = open("/dev/null", O_RDWR);
  if (s < 0 || null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 ||
      (fcntl(2, F_GETFD) < 0 && dup2(null, 2) < 0) || dup2(s, BUILDSERVER_FD) < 0)
    _exit(127);
  close_range(BUILDSERVER_FD + 1, ~0U, 0);
  if (!exe) _exit(buildserver_main(BUILDSERVER_FD, parent));
  execv(exe, argv);
  _exit(127);
}

static int bs_spawn(buildserver *bs, char *err, size_t errlen) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    snprintf(err, errlen, "cannot start the build fork server: socketpair: %s", strerror(errno));
    return -errno;
  }
  bs_proc *p = calloc(1, sizeof *p);
  char parent[24];
  snprintf(parent, sizeof parent, "%ld", (long)getpid());
  char *argv[] = {"ktune-builder", BUILDSERVER_OPTION, parent, NULL};
  pid_t me = getpid(), pid = p ? fork() : -1;
  if (pid == 0) bs_exec(sv[1], bs->exe, argv, me);
  int e = p ? errno : ENOMEM;
  close(sv[1]);
  int pidfd = pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
  if (pidfd < 0) {
    if (pid > 0) {
      e = errno;
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
    }
    close(sv[0]);
    free(p);
    snprintf(err, errlen, "cannot start the build fork server: %s: %s",
             pid > 0 ? "pidfd_open" : "fork", strerror(e));
    return -e;
  }
  p->bs = bs;
  p->next = bs->procs;
  bs->procs = p;
  p->pid = pid;
  p->pidfd = pidfd;
  p->sock = sv[0];
  fcntl(p->sock, F_SETFL, O_NONBLOCK);
  uv_poll_init(bs->loop, &p->exitw, pidfd);
  uv_poll_init(bs->loop, &p->poll, p->sock);
  p->exitw.data = p->poll.data = p;
  p->open = 2;
  uv_poll_start(&p->exitw, UV_READABLE, bs_on_exit);
  uv_poll_start(&p->poll, UV_READABLE, bs_on_readable);
  /* The builder leaves when its agent is done, whatever the server does. */
  uv_unref((uv_handle_t *)&p->exitw);
  uv_unref((uv_handle_t *)&p->poll);
  bs->p = p;
  return 0;
}

static int bs_start(void *self, child *c, const void *how, const int *fds, size_t nfds,
                    char *msg, size_t msglen) {
  buildserver *bs = self;
  const buildserver_limits *l = how;
  if (nfds != 3) {
    snprintf(msg, msglen, "a build child takes stdin, stdout and stderr only");
    return -EINVAL;
  }
  bs_build *b = calloc(1, sizeof *b);
  if (!b) {
    snprintf(msg, msglen, "builder out of memory");
    return -ENOMEM;
  }
  int all[BS_MAX_FDS] = {fds[0], fds[1], fds[2]};
  size_t nall = 3;
  bs_msg m = {.kind = BS_RUN, .id = ++bs->next_id, .mem_bytes = l->mem_bytes, .cpu_s = l->cpu_s};
  if (l->ruleset_fd >= 0) {
    all[nall++] = l->ruleset_fd;
    m.has |= BS_HAS_RULESET;
  }
  if (l->dir_fd >= 0) {
    all[nall++] = l->dir_fd;
    m.has |= BS_HAS_DIR;
  }
  /* A server that died while idle costs no build: a new one takes it. */
  int rc = 0;
  for (int attempt = 0; attempt < 2; attempt++) {
    if (!bs->p && (rc = bs_spawn(bs, msg, msglen)) < 0) break;
    rc = fdmsg_send(bs->p->sock, &m, sizeof m, all, nall, MSG_DONTWAIT);
    if (rc == 0) break;
    char why[96];
    snprintf(why, sizeof why, "it takes no request (%s)", strerror(-rc));
    snprintf(msg, msglen, "the build fork server (pid %d): %s", (int)bs->p->pid, why);
    bs_broken(bs->p, why);
  }
  if (rc < 0) {
    free(b);
    return rc;
  }
  b->c = c;
  b->id = m.id;
  b->next = bs->p->builds;
  bs->p->builds = b;
  return 0;
}

/* The server that holds c's build: the current one, or one killed and
 * not yet reaped. */
static bs_proc *bs_owner(buildserver *bs, const child *c, bs_build **out) {
  *out = NULL;
  for (bs_proc *p = bs->procs; p; p = p->next)
    for (bs_build *b = p->builds; b; b = b->next)
      if (b->c == c) {
        *out = b;
        return p;
      }
  return NULL;
}

static void bs_kill(void *self, child *c) {
  bs_build *b;
  bs_proc *p = bs_owner(self, c, &b);
  if (!p || p->killed) return; /* a killed server's exit ends its builds */
  bs_msg m = {.kind = BS_KILL, .id = b->id};
  int rc = fdmsg_send(p->sock, &m, sizeof m, NULL, 0, MSG_DONTWAIT);
  if (rc < 0) {
    char why[128];
    snprintf(why, sizeof why, "it takes no kill request: %s", strerror(-rc));
    bs_broken(p, why);
  }
}

/* c gave up waiting for the end of its killed build: its server does
 * not answer, so it goes, with the other builds it had (whose children
 * are told by its exit). */
static void bs_forget(void *self, child *c) {
  bs_build *b;
  bs_proc *p = bs_owner(self, c, &b);
  if (!p) return;
  free(bs_take(p, c, 0));
  bs_broken(p, "it did not end a killed build in time");
}

int buildserver_new(uv_loop_t *loop, const char *exe, buildserver **out, char *err,
                    size_t errlen) {
  *out = NULL;
  buildserver *bs = calloc(1, sizeof *bs);
  if (!bs || (exe && !(bs->exe = strdup(exe)))) {
    free(bs);
    snprintf(err, errlen, "cannot start the build fork server: out of memory");
    return -ENOMEM;
  }
  bs->loop = loop;
  bs->launcher = (child_launcher){bs_start, bs_kill, bs_forget, bs};
  int rc = bs_spawn(bs, err, errlen);
  if (rc < 0) {
    free(bs->exe);
    free(bs);
    return rc;
  }
  *out = bs;
  return 0;
}

const child_launcher *buildserver_launcher(buildserver *bs) { return &bs->launcher; }

pid_t buildserver_pid(const buildserver *bs) { return bs->p ? bs->p->pid : 0; }

void buildserver_free(buildserver *bs) {
  if (!bs) return;
  for (bs_proc *p; (p = bs->procs);) {
    bs->procs = p->next;
    /* With its socket closed it kills what it still has and leaves; one
     * that does not is killed. Its builds' children die with it. */
    p->bs = NULL;
    uv_poll_stop(&p->poll);
    uv_poll_stop(&p->exitw);
    close(p->sock);
    p->sock = -1;
    struct pollfd w = {p->pidfd, POLLIN, 0};
    while (poll(&w, 1, BS_EXIT_WAIT_MS) < 0 && errno == EINTR) {
    }
    if (!w.revents) kill(p->pid, SIGKILL);
    while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    for (bs_build *b; (b = p->builds);) {
      p->builds = b->next;
      free(b);
    }
    uv_close((uv_handle_t *)&p->exitw, bs_proc_closed);
    uv_close((uv_handle_t *)&p->poll, bs_proc_closed);
  }
  free(bs->exe);
  free(bs);
}
