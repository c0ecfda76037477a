#include "runner/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include "common/frame.h"
#include "common/wire.h"
#include "proto/ktune.pb-c.h"
#include "runner/timing.h"

#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1 /* si_code of a seccomp trap (asm-generic/siginfo.h) */
#endif

/* The registers of a trapped system call, so the loader's open can be
 * answered from the handler. */
#if defined(__x86_64__)
#define SB_ARG(uc, i) \
  ((uc)->uc_mcontext.gregs[(const int[]){REG_RDI, REG_RSI, REG_RDX, REG_R10}[i]])
#define SB_RET(uc) ((uc)->uc_mcontext.gregs[REG_RAX])
#elif defined(__aarch64__)
#define SB_ARG(uc, i) ((uc)->uc_mcontext.regs[i])
#define SB_RET(uc) ((uc)->uc_mcontext.regs[0])
#elif defined(__riscv) && __riscv_xlen == 64
#define SB_ARG(uc, i) ((uc)->uc_mcontext.__gregs[10 + (i)])
#define SB_RET(uc) ((uc)->uc_mcontext.__gregs[10])
#endif

/* AddressSanitizer calls into its runtime before every noreturn call; on
 * the signal stack that reads /proc/self/maps, which the sandbox refuses.
 * The handlers are not instrumented, so that sanitized builds report too. */
#if defined(__SANITIZE_ADDRESS__) || defined(__clang__)
#define SB_NO_ASAN __attribute__((no_sanitize("address")))
#else
#define SB_NO_ASAN
#endif

#define SB_ALTSTACK (64u << 10)
#define SB_MSG 512

struct sandbox {
  sandbox_config cfg;
  char so_path[64];
  volatile sig_atomic_t phase;
  struct sock_filter *running; /* the second filter, made ahead */
  unsigned short nrunning;
  void *altstack;
};

/* Signal handlers take no user pointer, so the one sandbox of this process
 * is reachable only through this. Set once, before any handler can run. */
static sandbox *sandbox_active;

static const int sb_crash_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS};

/* Allowed in both filters: the clock (its vDSO can fall back to the system
 * call), sleeping between rounds, memory for malloc'd scratch, signals to
 * itself (abort), and leaving. */
static const int sb_common[] = {
    SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres),    SCMP_SYS(gettimeofday),
    SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep),     SCMP_SYS(mmap),
    SCMP_SYS(munmap),        SCMP_SYS(mremap),          SCMP_SYS(madvise),
    SCMP_SYS(mprotect),      SCMP_SYS(brk),             SCMP_SYS(exit),
    SCMP_SYS(exit_group),    SCMP_SYS(rt_sigreturn),    SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(getpid),        SCMP_SYS(gettid),          SCMP_SYS(futex),
    SCMP_SYS(sched_yield),   SCMP_SYS(getrandom),
};

/* Only while loading: what glibc's dlopen does with the fd it opened. */
static const int sb_loader[] = {
    SCMP_SYS(read), SCMP_SYS(pread64), SCMP_SYS(close),
    SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(statx), SCMP_SYS(lseek),
};

#define SB_NAME(n) {SCMP_SYS(n), #n},
/* Names for messages; SCMP_SYS gives a negative number for a call this
 * architecture lacks, which never matches. */
static const struct {
  int nr;
  const char *name;
} sb_names[] = {
    SB_NAME(open) SB_NAME(openat) SB_NAME(openat2) SB_NAME(creat) SB_NAME(fork) SB_NAME(vfork)
    SB_NAME(clone) SB_NAME(clone3) SB_NAME(execve) SB_NAME(execveat) SB_NAME(socket)
    SB_NAME(socketpair) SB_NAME(connect) SB_NAME(bind) SB_NAME(listen) SB_NAME(accept)
    SB_NAME(accept4) SB_NAME(sendto) SB_NAME(sendmsg) SB_NAME(recvfrom) SB_NAME(recvmsg)
    SB_NAME(read) SB_NAME(readv) SB_NAME(pread64) SB_NAME(write) SB_NAME(writev)
    SB_NAME(pwrite64) SB_NAME(close) SB_NAME(ioctl) SB_NAME(fcntl) SB_NAME(dup) SB_NAME(dup2)
    SB_NAME(dup3) SB_NAME(pipe) SB_NAME(pipe2) SB_NAME(kill) SB_NAME(tgkill) SB_NAME(tkill)
    SB_NAME(ptrace) SB_NAME(prctl) SB_NAME(seccomp) SB_NAME(rt_sigaction) SB_NAME(sigaltstack)
    SB_NAME(unlink) SB_NAME(unlinkat) SB_NAME(mkdir) SB_NAME(mkdirat) SB_NAME(rename)
    SB_NAME(renameat) SB_NAME(renameat2) SB_NAME(chdir) SB_NAME(fchdir) SB_NAME(stat)
    SB_NAME(lstat) SB_NAME(fstat) SB_NAME(newfstatat) SB_NAME(statx) SB_NAME(access)
    SB_NAME(faccessat) SB_NAME(faccessat2) SB_NAME(readlink) SB_NAME(readlinkat)
    SB_NAME(getdents64) SB_NAME(lseek) SB_NAME(memfd_create) SB_NAME(setrlimit)
    SB_NAME(prlimit64) SB_NAME(sched_setaffinity) SB_NAME(sched_getaffinity) SB_NAME(mount)
    SB_NAME(uname) SB_NAME(sysinfo) SB_NAME(getuid) SB_NAME(getppid) SB_NAME(wait4)
    SB_NAME(waitid) SB_NAME(setsid) SB_NAME(setpgid) SB_NAME(getcwd) SB_NAME(select)
    SB_NAME(pselect6) SB_NAME(poll) SB_NAME(ppoll) SB_NAME(epoll_create1) SB_NAME(shmget)
    SB_NAME(mlock) SB_NAME(personality) SB_NAME(io_uring_setup) SB_NAME(bpf)
    SB_NAME(perf_event_open) SB_NAME(userfaultfd) SB_NAME(set_robust_list) SB_NAME(rseq)
};

const char *sandbox_syscall_name(long nr) {
  for (size_t i = 0; i < sizeof sb_names / sizeof sb_names[0]; i++)
    if (sb_names[i].nr >= 0 && sb_names[i].nr == nr) return sb_names[i].name;
  return NULL;
}

int sandbox_loader_inside(void) {
#ifdef SB_RET
  return 1;
#else
  return 0;
#endif
}

/* ---- what the handlers use: no malloc, no stdio, no locks ---- */

typedef struct {
  char b[SB_MSG];
  size_t n;
} sb_text;

static void sb_put(sb_text *t, const char *s) {
  while (s && *s && t->n + 1 < sizeof t->b) t->b[t->n++] = *s++;
  t->b[t->n] = '\0';
}

static void sb_put_num(sb_text *t, uint64_t v, unsigned base) {
  char d[24];
  int i = 0;
  do {
    d[i++] = "0123456789abcdef"[v % base];
    v /= base;
  } while (v && i < (int)sizeof d);
  if (base == 16) sb_put(t, "0x");
  char one[2] = {0, 0};
  while (i > 0) {
    one[0] = d[--i];
    sb_put(t, one);
  }
}

static int sb_streq(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return *a == *b;
}

static const char *sb_subject(sandbox_phase p) {
  switch (p) {
    case SANDBOX_LOADING: return "the artifact's initialisation code (run by dlopen)";
    case SANDBOX_REFERENCE: return "the reference function";
    case SANDBOX_KERNEL: return "the kernel";
    default: return "the runner itself, while checking";
  }
}

/* Writes a RUNTIME_ERROR result and leaves. Packing into a stack buffer
 * and frame_write_fd do not allocate, so this is safe from a signal handler
 * even when the trapped call was made with malloc's lock held (fork does
 * that). */
SB_NO_ASAN __attribute__((noreturn)) static void sb_report(const sandbox *sb, const char *msg) {
  Ktune__RunResult res = KTUNE__RUN_RESULT__INIT;
  res.job_id = sb->cfg.job_id;
  res.status = WIRE_TRIAL(RUNTIME_ERROR);
  res.error = (char *)msg;
  res.clock = (char *)TIMING_CLOCK_NAME;
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_RUN_RESULT, &res);
  uint8_t payload[SB_MSG + 128];
  size_t n = ktune__envelope__get_packed_size(&env);
  if (n <= sizeof payload) {
    ktune__envelope__pack(&env, payload);
    frame_write_fd(sb->cfg.out_fd, payload, (uint32_t)n);
  }
  _exit(0);
}

static const char *sb_code_text(int sig, int code) {
  switch (sig) {
    case SIGSEGV:
      return code == SEGV_MAPERR   ? "address not mapped"
             : code == SEGV_ACCERR ? "access not permitted"
                                   : NULL;
    case SIGBUS:
      return code == BUS_ADRALN   ? "misaligned address"
             : code == BUS_ADRERR ? "address does not exist"
                                  : NULL;
    case SIGFPE:
      switch (code) {
        case FPE_INTDIV: return "integer divide by zero";
        case FPE_INTOVF: return "integer overflow";
        case FPE_FLTDIV: return "floating-point divide by zero";
        case FPE_FLTINV: return "invalid floating-point operation";
        default: return NULL;
      }
    case SIGILL:
      return code == ILL_ILLOPC ? "illegal opcode" : code == ILL_PRVOPC ? "privileged opcode" : NULL;
    default: return NULL;
  }
}

/* The loader's open of the artifact's own memfd becomes a dup of it; every
 * other open fails. Returns 1 when the call was answered. */
static int sb_emulate(const sandbox *sb, const siginfo_t *si, void *ctx) {
#ifdef SB_RET
  ucontext_t *uc = ctx;
  const char *path;
  long flags;
  if (si->si_syscall == SCMP_SYS(openat)) {
    path = (const char *)SB_ARG(uc, 1);
    flags = (long)SB_ARG(uc, 2);
  } else if (si->si_syscall == SCMP_SYS(open)) {
    path = (const char *)SB_ARG(uc, 0);
    flags = (long)SB_ARG(uc, 1);
  } else {
    return 0;
  }
  long ret = -EACCES;
  if (path && sb->cfg.so_fd >= 0 && sb_streq(path, sb->so_path) &&
      (flags & (O_ACCMODE | O_CREAT | O_TRUNC)) == O_RDONLY) {
    int saved = errno;
    /* A dup shares the file offset; a fresh open would start at 0. */
    int fd = fcntl(sb->cfg.so_fd, F_DUPFD_CLOEXEC, 0);
    ret = fd >= 0 && lseek(fd, 0, SEEK_SET) == 0 ? fd : -errno;
    if (ret < 0 && fd >= 0) close(fd);
    errno = saved;
  }
  SB_RET(uc) = ret;
  return 1;
#else
  (void)sb;
  (void)si;
  (void)ctx;
  return 0;
#endif
}

SB_NO_ASAN static void sb_handler(int sig, siginfo_t *si, void *ctx) {
  int err = errno; /* before anything here can change it */
  const sandbox *sb = sandbox_active;
  sandbox_phase phase = (sandbox_phase)sb->phase;
  sb_text t = {.n = 0};
  if (sig == SIGSYS && si->si_code == SYS_SECCOMP) {
    if (phase == SANDBOX_LOADING && sb_emulate(sb, si, ctx)) return;
    const char *name = sandbox_syscall_name(si->si_syscall);
    sb_put(&t, "sandbox: ");
    sb_put(&t, sb_subject(phase));
    sb_put(&t, " made a forbidden system call: ");
    sb_put(&t, name ? name : "system call");
    sb_put(&t, " (");
    sb_put_num(&t, (uint64_t)(unsigned)si->si_syscall, 10);
    sb_put(&t, "); a kernel may only compute on its buffers, allocate memory and read the clock"
               " (docs/MEASUREMENT.md)");
    sb_report(sb, t.b);
  }
  sb_put(&t, sb_subject(phase));
  sb_put(&t, " crashed: SIG");
  sb_put(&t, sigabbrev_np(sig));
  sb_put(&t, " (");
  sb_put(&t, sigdescr_np(sig));
  const char *code = sb_code_text(sig, si->si_code);
  if (code) {
    sb_put(&t, ": ");
    sb_put(&t, code);
  }
  sb_put(&t, ")");
  if (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL) {
    sb_put(&t, " at address ");
    sb_put_num(&t, (uint64_t)(uintptr_t)si->si_addr, 16);
  }
  if (err == ENOMEM) {
    sb_put(&t, "; a memory allocation had failed before");
    if (sb->cfg.mem_limit_mb) {
      sb_put(&t, ": the measuring process may use ");
      sb_put_num(&t, sb->cfg.mem_limit_mb, 10);
      sb_put(&t, " MB (ktune-runner --mem-limit-mb)");
    }
  }
  sb_report(sb, t.b);
}

/* ---- filters ---- */

/* What a filter compares with that differs between children: the result
 * fd, the dump fd and the child's pid. A fork server compiles its filters
 * once with these stand-ins in their place (sandbox_filters_new), and each
 * child writes its own values over them, which spares it libseccomp's
 * compile (a fifth of a trivial trial's measuring process). No fd or pid
 * is this large, and no system call number, architecture token or other
 * argument a filter compares with equals one. */
enum { SB_VAL_OUT, SB_VAL_EXTRA, SB_VAL_SELF, SB_VALS };
static const uint32_t sb_standin[SB_VALS] = {0x7b6b7401u, 0x7b6b7402u, 0x7b6b7403u};

typedef struct {
  struct sock_filter *f;
  unsigned short n;
} sb_prog;

struct sandbox_filters {
  sb_prog loading, running;
};

static int sb_allow(scmp_filter_ctx ctx, int nr, unsigned n, const struct scmp_arg_cmp *a) {
  if (nr < 0) return 0; /* not a system call on this architecture */
  return seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, n, a);
}

/* v: the values (or stand-ins) of SB_VAL_*; extra: whether there is a
 * dump fd to allow. */
static scmp_filter_ctx sb_filter(const uint32_t v[SB_VALS], int extra, int loading) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
  if (!ctx) return NULL;
  int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  /* Some kernels force the speculative-store-bypass mitigation on every
   * seccomp process, slowing kernels that forward stores to loads: the
   * numbers would not be production's. It protects a process from its own
   * code, which here can read its memory anyway. Older libseccomp or
   * kernels lack the flag; then it stays as the kernel decides. */
  seccomp_attr_set(ctx, SCMP_FLTATR_CTL_SSB, 1);
  for (size_t i = 0; rc == 0 && i < sizeof sb_common / sizeof sb_common[0]; i++)
    rc = sb_allow(ctx, sb_common[i], 0, NULL);
  struct scmp_arg_cmp a[2];
  /* frame_write_fd sends a frame with one writev; write and writev reach
   * these fds only. */
  const int writes[] = {SCMP_SYS(write), SCMP_SYS(writev)};
  for (size_t i = 0; rc == 0 && i < sizeof writes / sizeof writes[0]; i++) {
    a[0] = SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)v[SB_VAL_OUT]);
    rc = sb_allow(ctx, writes[i], 1, a);
    a[0] = SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)v[SB_VAL_EXTRA]);
    if (rc == 0 && extra) rc = sb_allow(ctx, writes[i], 1, a);
  }
  /* abort() is raise(SIGABRT): tgkill(getpid(), gettid(), sig); one thread. */
  a[0] = SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)v[SB_VAL_SELF]);
  a[1] = SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)v[SB_VAL_SELF]);
  if (rc == 0) rc = sb_allow(ctx, SCMP_SYS(tgkill), 2, a);
  if (rc == 0) rc = sb_allow(ctx, SCMP_SYS(tkill), 1, a);
  /* Asking which signal stack is in use changes nothing; sanitizers ask
   * before every noreturn call, including the handlers' own _exit. */
  a[0] = SCMP_A0(SCMP_CMP_EQ, 0);
  if (rc == 0) rc = sb_allow(ctx, SCMP_SYS(sigaltstack), 1, a);
  if (loading) {
    for (size_t i = 0; rc == 0 && i < sizeof sb_loader / sizeof sb_loader[0]; i++)
      rc = sb_allow(ctx, sb_loader[i], 0, NULL);
    a[0] = SCMP_A1(SCMP_CMP_EQ, F_DUPFD_CLOEXEC); /* the open emulation */
    if (rc == 0) rc = sb_allow(ctx, SCMP_SYS(fcntl), 1, a);
    a[0] = SCMP_A0(SCMP_CMP_EQ, SECCOMP_SET_MODE_FILTER); /* sandbox_lockdown */
    if (rc == 0) rc = sb_allow(ctx, SCMP_SYS(seccomp), 1, a);
  }
  if (rc != 0) {
    seccomp_release(ctx);
    return NULL;
  }
  return ctx;
}

/* Compiles a filter to BPF, for installing later (after the first filter
 * is in, libseccomp's own system calls, probing the kernel, are refused). */
static int sb_compile(const uint32_t v[SB_VALS], int extra, int loading, sb_prog *out) {
  scmp_filter_ctx ctx = sb_filter(v, extra, loading);
  if (!ctx) return -1;
  int fd = memfd_create("ktune-bpf", MFD_CLOEXEC);
  int rc = fd < 0 ? -1 : seccomp_export_bpf(ctx, fd);
  seccomp_release(ctx);
  off_t size = rc == 0 ? lseek(fd, 0, SEEK_END) : -1;
  size_t n = size > 0 ? (size_t)size / sizeof(struct sock_filter) : 0;
  out->f = NULL;
  if (n == 0 || n > BPF_MAXINSNS || (out->f = malloc((size_t)size)) == NULL ||
      pread(fd, out->f, (size_t)size, 0) != size)
    rc = -1;
  else
    out->n = (unsigned short)n;
  if (fd >= 0) close(fd);
  if (rc != 0) {
    free(out->f);
    out->f = NULL;
  }
  return rc != 0 ? -1 : 0;
}

static int sb_is_compare(const struct sock_filter *i) {
  return BPF_CLASS(i->code) == BPF_JMP && BPF_OP(i->code) == BPF_JEQ && BPF_SRC(i->code) == BPF_K;
}

/* Whether every stand-in is compared with somewhere, and used nowhere
 * else: then writing values over them gives the filter of those values. */
static int sb_standins_hold(const sb_prog *p) {
  unsigned seen[SB_VALS] = {0};
  for (unsigned i = 0; i < p->n; i++)
    for (int v = 0; v < SB_VALS; v++) {
      if (p->f[i].k != sb_standin[v]) continue;
      if (!sb_is_compare(&p->f[i])) return 0;
      seen[v]++;
    }
  for (int v = 0; v < SB_VALS; v++)
    if (!seen[v]) return 0;
  return 1;
}

/* A copy of the compiled t with the values v in place of the stand-ins. */
static int sb_fill(const sb_prog *t, const uint32_t v[SB_VALS], sb_prog *out) {
  out->n = t->n;
  out->f = malloc(t->n * sizeof *t->f);
  if (!out->f) return -1;
  memcpy(out->f, t->f, t->n * sizeof *t->f);
  for (unsigned i = 0; i < out->n; i++)
    for (int s = 0; s < SB_VALS; s++)
      if (out->f[i].k == sb_standin[s] && sb_is_compare(&out->f[i])) out->f[i].k = v[s];
  return 0;
}

/* The filter for cfg's values: filled in from the precompiled ones, or
 * compiled now. */
static int sb_prog_for(const sandbox_config *cfg, int loading, sb_prog *out) {
  uint32_t v[SB_VALS] = {(uint32_t)cfg->out_fd, (uint32_t)cfg->extra_fd, (uint32_t)getpid()};
  int extra = cfg->extra_fd >= 0;
  if (!cfg->filters) return sb_compile(v, extra, loading, out);
  /* Without a dump fd the stand-in's rule allows the result fd twice. */
  if (!extra) v[SB_VAL_EXTRA] = v[SB_VAL_OUT];
  return sb_fill(loading ? &cfg->filters->loading : &cfg->filters->running, v, out);
}

/* As libseccomp's load would: no forced store-bypass mitigation (see
 * sb_filter), when the kernel knows the flag. */
static int sb_install(const sb_prog *p) {
  struct sock_fprog prog = {.len = p->n, .filter = p->f};
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_SPEC_ALLOW, &prog) == 0)
    return 0;
  if (errno != EINVAL) return -1;
  return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

int sandbox_filters_new(sandbox_filters **out, char *err, size_t errlen) {
  *out = NULL;
  sandbox_filters *f = calloc(1, sizeof *f);
  if (!f) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  if (sb_compile(sb_standin, 1, 1, &f->loading) < 0 ||
      sb_compile(sb_standin, 1, 0, &f->running) < 0) {
    snprintf(err, errlen, "libseccomp could not compile the filters");
  } else if (!sb_standins_hold(&f->loading) || !sb_standins_hold(&f->running)) {
    snprintf(err, errlen, "libseccomp compiled the filters in a form whose values cannot be "
                          "filled in later");
  } else {
    *out = f;
    return 0;
  }
  sandbox_filters_free(f);
  return -1;
}

void sandbox_filters_free(sandbox_filters *f) {
  if (!f) return;
  free(f->loading.f);
  free(f->running.f);
  free(f);
}

int sandbox_enter(const sandbox_config *cfg, sandbox **out, char *err, size_t errlen) {
  *out = NULL;
  if (sandbox_active) {
    snprintf(err, errlen, "cannot enter the sandbox: this process is already in one");
    return -1;
  }
  sandbox *sb = calloc(1, sizeof *sb);
  if (!sb) {
    snprintf(err, errlen, "cannot enter the sandbox: out of memory");
    return -1;
  }
  sb->cfg = *cfg;
  snprintf(sb->so_path, sizeof sb->so_path, "%s", cfg->so_path ? cfg->so_path : "");
  sb->cfg.so_path = sb->so_path;
  sb->phase = SANDBOX_LOADING;
  int filters = !(cfg->off & SANDBOX_PART_SECCOMP);
  sb_prog loading = {NULL, 0}, running = {NULL, 0};
  if (filters && (sb_prog_for(cfg, 1, &loading) < 0 || sb_prog_for(cfg, 0, &running) < 0)) {
    free(loading.f);
    snprintf(err, errlen, "cannot enter the sandbox: %s",
             cfg->filters ? "out of memory" : "libseccomp could not compile the filter");
    goto fail;
  }
  sb->running = running.f;
  sb->nrunning = running.n;
  stack_t ss = {.ss_size = SB_ALTSTACK + (size_t)SIGSTKSZ};
  sb->altstack = ss.ss_sp = malloc(ss.ss_size);
  if (!ss.ss_sp || sigaltstack(&ss, NULL) < 0) {
    snprintf(err, errlen, "cannot enter the sandbox: sigaltstack: %s", strerror(errno));
    goto fail;
  }
  sandbox_active = sb;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = sb_handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < sizeof sb_crash_signals / sizeof sb_crash_signals[0]; i++) {
    if (sigaction(sb_crash_signals[i], &sa, NULL) < 0) {
      snprintf(err, errlen, "cannot enter the sandbox: sigaction: %s", strerror(errno));
      goto fail;
    }
  }
  sigset_t unblock;
  sigemptyset(&unblock);
  for (size_t i = 0; i < sizeof sb_crash_signals / sizeof sb_crash_signals[0]; i++)
    sigaddset(&unblock, sb_crash_signals[i]);
  sigprocmask(SIG_UNBLOCK, &unblock, NULL);
  /* Nothing may gain privileges; without filters (--sandbox-off=seccomp,
   * the operator's choice) crashes are still reported. */
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
    snprintf(err, errlen, "cannot enter the sandbox: no_new_privs: %s", strerror(errno));
    goto fail;
  }
  if (filters && sb_install(&loading) < 0) {
    snprintf(err, errlen, "cannot enter the sandbox: seccomp: %s", strerror(errno));
    goto fail;
  }
  free(loading.f);
  *out = sb;
  return 0;
fail:
  free(loading.f);
  /* Once handlers may point at it, sb stays (harmless without a filter);
   * the caller ends the trial without running anything untrusted. */
  if (sandbox_active != sb) {
    free(sb->running);
    free(sb->altstack);
    free(sb);
  }
  return -1;
}

int sandbox_lockdown(sandbox *sb, char *err, size_t errlen) {
  if (sb->cfg.off & SANDBOX_PART_SECCOMP) {
    sb->phase = SANDBOX_REFERENCE;
    return 0;
  }
  sb_prog running = {sb->running, sb->nrunning};
  if (sb_install(&running) < 0) {
    snprintf(err, errlen, "cannot tighten the sandbox: seccomp: %s", strerror(errno));
    return -1;
  }
  sb->phase = SANDBOX_REFERENCE;
  return 0;
}

void sandbox_set_phase(sandbox *sb, sandbox_phase phase) { sb->phase = phase; }

/* ---- the parts an operator may turn off, and what this machine honours ---- */

/* getppid, answered by the probe's filter with this errno instead. */
#define SB_PROBE_ERRNO EL2HLT
#define SB_PROBE_SLACK_MB 64

/* In the probe's child: a filter like a measuring child's, on a call the
 * child can tell apart. "" when it holds. */
static void sb_probe_seccomp(char *why, size_t len) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  int rc = ctx ? seccomp_rule_add(ctx, SCMP_ACT_ERRNO(SB_PROBE_ERRNO), SCMP_SYS(getppid), 0)
               : -ENOMEM;
  if (rc == 0) rc = seccomp_load(ctx);
  if (ctx) seccomp_release(ctx);
  if (rc != 0) {
    snprintf(why, len, "a seccomp filter cannot be installed (%s)", strerror(-rc));
    return;
  }
  errno = 0;
  long r = syscall(SYS_getppid);
  if (r != -1 || errno != SB_PROBE_ERRNO)
    snprintf(why, len, "a seccomp filter was installed but does not act on this program's "
                       "system calls");
}

/* The address space of this process, from /proc/self/statm; 0 unknown. */
static uint64_t sb_vm_bytes(void) {
  unsigned long long pages = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f && fscanf(f, "%llu", &pages) != 1) pages = 0;
  if (f) fclose(f);
  return (uint64_t)pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* In the probe's child: a limit a little above what it maps now, then a
 * mapping far past it, which must fail. */
static void sb_probe_mem_limit(char *why, size_t len) {
  uint64_t limit = sb_vm_bytes() + ((uint64_t)SB_PROBE_SLACK_MB << 20);
  struct rlimit as = {(rlim_t)limit, (rlim_t)limit};
  if (setrlimit(RLIMIT_AS, &as) < 0) {
    snprintf(why, len, "the address-space limit cannot be set (%s)", strerror(errno));
    return;
  }
  size_t big = (size_t)4 * SB_PROBE_SLACK_MB << 20;
  void *p = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p != MAP_FAILED) {
    munmap(p, big);
    snprintf(why, len, "the address-space limit is accepted but not applied (--mem-limit-mb "
                       "would not hold)");
  }
}

/* Runs one probe in a child, which never comes back: a filter cannot be
 * removed and a limit should not stay. 0 when the part holds; else why. */
static int sb_probe_one(void (*probe)(char *, size_t), char *why, size_t len) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) {
    snprintf(why, len, "cannot try it: pipe: %s", strerror(errno));
    return -1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    snprintf(why, len, "cannot try it: fork: %s", strerror(errno));
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    char said[256] = "";
    close(fds[0]);
    probe(said, sizeof said);
    ssize_t w = write(fds[1], said, strlen(said));
    _exit(w < 0 ? 1 : 0);
  }
  close(fds[1]);
  char said[256];
  size_t n = 0;
  ssize_t r;
  while (n + 1 < sizeof said && ((r = read(fds[0], said + n, sizeof said - 1 - n)) > 0 ||
                                 (r < 0 && errno == EINTR)))
    if (r > 0) n += (size_t)r;
  said[n] = '\0';
  close(fds[0]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
  if (WIFSIGNALED(st))
    snprintf(why, len, "trying it killed the process (SIG%s)", sigabbrev_np(WTERMSIG(st)));
  else if (n)
    snprintf(why, len, "%s", said);
  else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    snprintf(why, len, "trying it failed (exit status %d)", WEXITSTATUS(st));
  else
    return 0;
  return -1;
}

static const struct {
  unsigned part;
  const char *name;
  void (*probe)(char *why, size_t len);
} sb_parts[] = {{SANDBOX_PART_SECCOMP, "seccomp", sb_probe_seccomp},
                {SANDBOX_PART_MEM_LIMIT, "mem-limit", sb_probe_mem_limit}};
#define SB_NPARTS (sizeof sb_parts / sizeof sb_parts[0])

int sandbox_parse_parts(const char *list, unsigned *parts, char *err, size_t errlen) {
  *parts = 0;
  for (const char *w = list; w;) {
    const char *comma = strchr(w, ',');
    size_t n = comma ? (size_t)(comma - w) : strlen(w);
    size_t i = 0;
    while (i < SB_NPARTS && !(strlen(sb_parts[i].name) == n && !strncmp(w, sb_parts[i].name, n)))
      i++;
    if (i == SB_NPARTS) {
      snprintf(err, errlen, "expected seccomp, mem-limit or both (comma-separated), got \"%s\"",
               list);
      return -1;
    }
    *parts |= sb_parts[i].part;
    w = comma ? comma + 1 : NULL;
  }
  return 0;
}

void sandbox_parts_text(unsigned parts, char *out, size_t len) {
  size_t off = 0;
  out[0] = '\0';
  for (size_t i = 0; i < SB_NPARTS && off < len; i++)
    if (parts & sb_parts[i].part)
      off += (size_t)snprintf(out + off, len - off, "%s%s", off ? "," : "", sb_parts[i].name);
}

unsigned sandbox_probe(unsigned parts, char *why, size_t len) {
  unsigned missing = 0;
  size_t off = 0;
  why[0] = '\0';
  for (size_t i = 0; i < SB_NPARTS; i++) {
    char one[300];
    if (!(parts & sb_parts[i].part) || sb_probe_one(sb_parts[i].probe, one, sizeof one) == 0) continue;
    missing |= sb_parts[i].part;
    if (off < len)
      off += (size_t)snprintf(why + off, len - off, "%s%s: %s", off ? "; " : "", sb_parts[i].name,
                              one);
  }
  return missing;
}
