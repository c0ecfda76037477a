#include "builder/jail.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "builder/fsutil.h"

/* Rights of Landlock ABIs newer than some distributions' headers. */
#define JAIL_FS_REFER (1ULL << 13)     /* ABI 2 */
#define JAIL_FS_TRUNCATE (1ULL << 14)  /* ABI 3 */
#define JAIL_FS_IOCTL_DEV (1ULL << 15) /* ABI 5 */
#define JAIL_NET_TCP 3ULL              /* ABI 4: bind and connect */
#define JAIL_SCOPE_ALL 3ULL            /* ABI 6: abstract unix sockets, signals */
#define JAIL_FS_RX \
  (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
/* What a rule on a file (not a folder) may grant. */
#define JAIL_FS_FILE                                                                  \
  (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |                        \
   LANDLOCK_ACCESS_FS_READ_FILE | JAIL_FS_TRUNCATE | JAIL_FS_IOCTL_DEV)
/* Larger compiler outputs than this are runaway ones (artifacts are <= 32 MiB). */
#define JAIL_FSIZE_MAX (512ULL << 20)

/* The ruleset layout of ABI 6; older kernels are given a prefix of it. */
typedef struct {
  uint64_t fs, net, scoped;
} jail_ruleset_attr;

/* The toolchain: compilers, their helpers, headers and libraries. Not
 * /etc, /home, /root or /tmp, where secrets and tokens live. */
static const char *const jail_ro_dirs[] = {"/usr", "/lib", "/lib32", "/lib64", "/libx32",
                                           "/bin", "/sbin"};
static const struct {
  const char *path;
  uint64_t rights;
} jail_files[] = {
    {"/etc/ld.so.cache", LANDLOCK_ACCESS_FS_READ_FILE},
    {"/dev/null", LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE},
    {"/dev/zero", LANDLOCK_ACCESS_FS_READ_FILE},
    {"/dev/urandom", LANDLOCK_ACCESS_FS_READ_FILE}, /* gcc's random seed */
};

struct jail {
  unsigned mem_mb;
  char **read_dirs;
  size_t nread_dirs;
  int abi; /* Landlock ABI; <= 0: none */
  char describe[256];
};

/* What a child that could not start tells the builder, over a pipe that
 * closes when exec succeeds. */
typedef struct {
  int err;
  char what[60];
} jail_report;

typedef struct {
  const jail_spec *s;
  int report_fd, null_fd, ruleset_fd;
  pid_t builder;
  struct rlimit as, cpu;
} jail_plan;

static uint64_t jail_fs_rights(int abi) {
  uint64_t r = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1; /* ABI 1 */
  if (abi >= 2) r |= JAIL_FS_REFER;
  if (abi >= 3) r |= JAIL_FS_TRUNCATE;
  if (abi >= 5) r |= JAIL_FS_IOCTL_DEV;
  return r;
}

int jail_new(const jail_opts *o, jail **out) {
  *out = NULL;
  jail *j = calloc(1, sizeof *j);
  if (!j) return -ENOMEM;
  j->mem_mb = o && o->mem_limit_mb ? o->mem_limit_mb : JAIL_DEFAULT_MEM_MB;
  size_t n = o && o->read_dirs ? o->nread_dirs : 0;
  if (n && !(j->read_dirs = calloc(n, sizeof *j->read_dirs))) {
    free(j);
    return -ENOMEM;
  }
  for (; j->nread_dirs < n; j->nread_dirs++)
    if (!(j->read_dirs[j->nread_dirs] = strdup(o->read_dirs[j->nread_dirs]))) {
      jail_free(j);
      return -ENOMEM;
    }
  j->abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
  if (j->abi > 0)
    snprintf(j->describe, sizeof j->describe,
             "Landlock ABI %d (toolchain read-only, own work folder), %u MB, parent-death kill",
             j->abi, j->mem_mb);
  else
    snprintf(j->describe, sizeof j->describe,
             "NO file-system sandbox: this kernel lacks Landlock (%s), so a template can "
             "#include any file this user can read; limits %u MB and parent-death kill only",
             strerror(errno), j->mem_mb);
  *out = j;
  return 0;
}

void jail_free(jail *j) {
  if (!j) return;
  for (size_t i = 0; i < j->nread_dirs; i++) free(j->read_dirs[i]);
  free(j->read_dirs);
  free(j);
}

const char *jail_describe(const jail *j, int *confined) {
  if (confined) *confined = j->abi > 0;
  return j->describe;
}

/* ---- the ruleset, made in the builder ---- */

/* A missing path is no error: not every system has /lib32. */
static int jail_rule(int rs, const char *path, uint64_t rights, uint64_t handled) {
  int fd = open(path, O_PATH | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
  struct stat st;
  if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode)) rights &= JAIL_FS_FILE;
  struct landlock_path_beneath_attr pb = {.allowed_access = rights & handled, .parent_fd = fd};
  int rc = (int)syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
  rc = rc < 0 ? -errno : 0;
  close(fd);
  return rc;
}

/* The compiler's own folder, and when that is a bin/, the lib/, libexec/
 * and include/ next to it (a toolchain under /opt). Not the prefix
 * itself: for ~/bin/gcc that would be the home folder. */
static int jail_exe_rules(int rs, const char *exe, uint64_t handled) {
  char dir[4096];
  const char *slash = exe ? strrchr(exe, '/') : NULL;
  if (!slash || slash == exe || (size_t)(slash - exe) >= sizeof dir - 16) return 0;
  memcpy(dir, exe, (size_t)(slash - exe));
  dir[slash - exe] = '\0';
  int rc = jail_rule(rs, dir, JAIL_FS_RX, handled);
  char *base = strrchr(dir, '/');
  if (rc < 0 || !base || strcmp(base, "/bin") != 0) return rc;
  static const char *const sibling[] = {"lib", "lib64", "libexec", "include"};
  for (size_t i = 0; rc == 0 && i < sizeof sibling / sizeof sibling[0]; i++) {
    snprintf(base + 1, sizeof dir - (size_t)(base + 1 - dir), "%s", sibling[i]);
    rc = jail_rule(rs, dir, JAIL_FS_RX, handled);
  }
  return rc;
}

static int jail_ruleset(const jail *j, const jail_spec *s, char *err, size_t errlen) {
  uint64_t fs = jail_fs_rights(j->abi);
  jail_ruleset_attr attr = {fs, JAIL_NET_TCP, JAIL_SCOPE_ALL};
  size_t size = j->abi >= 6 ? sizeof attr : j->abi >= 4 ? 2 * sizeof(uint64_t) : sizeof(uint64_t);
  int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
  if (rs < 0) {
    snprintf(err, errlen, "landlock_create_ruleset: %s", strerror(errno));
    return -errno;
  }
  int rc = 0;
  const char *what = "";
  for (size_t i = 0; rc == 0 && i < sizeof jail_ro_dirs / sizeof jail_ro_dirs[0]; i++)
    rc = jail_rule(rs, what = jail_ro_dirs[i], JAIL_FS_RX, fs);
  for (size_t i = 0; rc == 0 && i < j->nread_dirs; i++)
    rc = jail_rule(rs, what = j->read_dirs[i], JAIL_FS_RX, fs);
  for (size_t i = 0; rc == 0 && i < sizeof jail_files / sizeof jail_files[0]; i++)
    rc = jail_rule(rs, what = jail_files[i].path, jail_files[i].rights, fs);
  if (rc == 0 && s->argv) rc = jail_exe_rules(rs, what = s->argv[0], fs);
  if (rc == 0 && s->dir) rc = jail_rule(rs, what = s->dir, fs, fs);
  if (rc < 0) {
    snprintf(err, errlen, "landlock rule for %.200s: %s", what, strerror(-rc));
    close(rs);
    return rc;
  }
  return rs;
}

/* ---- in the children: async-signal-safe calls only (the builder may
 * have threads), until exec or until the worker runs its function ---- */

__attribute__((noreturn)) static void jail_fail(int fd, const char *what) {
  jail_report r = {.err = errno ? errno : EIO};
  size_t n = 0;
  while (what[n] && n + 1 < sizeof r.what) {
    r.what[n] = what[n];
    n++;
  }
  if (write(fd, &r, sizeof r) < 0) _exit(127);
  _exit(127);
}

/* The supervisor's parent-death signal: everything of this compile goes. */
static void jail_on_builder_death(int sig) {
  (void)sig;
  kill(0, SIGKILL);
}

__attribute__((noreturn)) static void jail_worker(const jail_plan *p, pid_t supervisor) {
  const jail_spec *s = p->s;
  signal(SIGTERM, SIG_DFL);
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != supervisor)
    jail_fail(p->report_fd, "prctl");
  if (dup2(p->null_fd, 0) < 0 || dup2(s->out_fd, 1) < 0 || dup2(s->err_fd, 2) < 0)
    jail_fail(p->report_fd, "dup2");
  if (chdir(s->dir ? s->dir : "/") < 0) jail_fail(p->report_fd, "chdir");
  struct rlimit fsize = {JAIL_FSIZE_MAX, JAIL_FSIZE_MAX}, none = {0, 0};
  if ((p->as.rlim_cur && setrlimit(RLIMIT_AS, &p->as) < 0) ||
      setrlimit(RLIMIT_CPU, &p->cpu) < 0 || setrlimit(RLIMIT_FSIZE, &fsize) < 0 ||
      setrlimit(RLIMIT_CORE, &none) < 0)
    jail_fail(p->report_fd, "setrlimit");
  /* No setuid program can give the compile more than the builder has. */
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) jail_fail(p->report_fd, "no_new_privs");
  if (p->ruleset_fd >= 0 && syscall(SYS_landlock_restrict_self, p->ruleset_fd, 0) < 0)
    jail_fail(p->report_fd, "landlock_restrict_self");
  /* Nothing of the builder's (its tracker connection) stays open. */
  if (p->report_fd > 3) close_range(3, (unsigned)p->report_fd - 1, 0);
  close_range((unsigned)p->report_fd + 1, ~0U, 0);
  if (s->fn) {
    close(p->report_fd);
    _exit(s->fn(s->arg));
  }
  execve(s->argv[0], s->argv, s->env);
  jail_fail(p->report_fd, "exec");
}

__attribute__((noreturn)) static void jail_supervisor(const jail_plan *p) {
  /* Handlers and masks are the builder's (libuv's signal pipe): reset. */
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  if (setsid() < 0) jail_fail(p->report_fd, "setsid");
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = jail_on_builder_death;
  sigaction(SIGTERM, &sa, NULL);
  if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0) jail_fail(p->report_fd, "prctl");
  if (getppid() != p->builder) kill(0, SIGKILL); /* it died before prctl */
  pid_t self = getpid(), w = fork();
  if (w < 0) jail_fail(p->report_fd, "fork");
  if (w == 0) jail_worker(p, self);
  close(p->report_fd);
  int st;
  while (waitpid(w, &st, 0) < 0)
    if (errno != EINTR) _exit(127);
  if (WIFSIGNALED(st)) {
    /* Die the same way, so that the builder can name the signal. */
    struct rlimit zero = {0, 0};
    setrlimit(RLIMIT_CORE, &zero);
    signal(WTERMSIG(st), SIG_DFL);
    kill(self, WTERMSIG(st));
  }
  _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 127);
}

/* ---- in the builder ---- */

/* Address space the builder already has: a forked worker starts with it. */
static rlim_t jail_own_vm(void) {
  uint8_t *text;
  size_t len;
  if (fsutil_read_file("/proc/self/statm", 64, &text, &len) < 0) return 0;
  unsigned long long pages = strtoull((const char *)text, NULL, 10);
  free(text);
  return (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE);
}

int jail_start(const jail *j, const jail_spec *s, jail_child *out, char *err, size_t errlen) {
  out->pid = -1;
  out->pidfd = -1;
  jail_plan p = {.s = s, .ruleset_fd = -1, .builder = getpid()};
  rlim_t mem = (rlim_t)j->mem_mb << 20, base = s->fn ? jail_own_vm() : 0;
  p.as.rlim_cur = p.as.rlim_max = s->fn && !base ? 0 : base + mem;
  p.cpu.rlim_cur = s->timeout_ms / 1000 + 2;
  p.cpu.rlim_max = p.cpu.rlim_cur + 1;
  if (j->abi > 0 && (p.ruleset_fd = jail_ruleset(j, s, err, errlen)) < 0) return p.ruleset_fd;
  int rp[2] = {-1, -1}, rc = 0;
  p.null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (p.null_fd < 0 || pipe2(rp, O_CLOEXEC) < 0) {
    rc = -errno;
    snprintf(err, errlen, "cannot start a compile: %s", strerror(errno));
    goto out;
  }
  p.report_fd = rp[1];
  pid_t pid = fork();
  if (pid == 0) jail_supervisor(&p);
  if (pid < 0) {
    rc = -errno;
    snprintf(err, errlen, "cannot start a compile: fork: %s", strerror(errno));
    goto out;
  }
  close(rp[1]);
  rp[1] = -1;
  /* Blocks for the fork and exec only, as libuv's own spawn does. */
  jail_report r;
  ssize_t n;
  while ((n = read(rp[0], &r, sizeof r)) < 0 && errno == EINTR) {
  }
  int pidfd = n == 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
  if (pidfd < 0) {
    rc = n == (ssize_t)sizeof r ? -r.err : -errno;
    if (n == (ssize_t)sizeof r)
      snprintf(err, errlen, "cannot start the compile: %.60s: %s", r.what, strerror(r.err));
    else
      snprintf(err, errlen, "cannot watch the compile: pidfd_open: %s", strerror(errno));
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    goto out;
  }
  out->pid = pid;
  out->pidfd = pidfd;
out:
  for (int i = 0; i < 2; i++)
    if (rp[i] >= 0) close(rp[i]);
  if (p.null_fd >= 0) close(p.null_fd);
  if (p.ruleset_fd >= 0) close(p.ruleset_fd);
  return rc;
}

int jail_reap(const jail_child *c, int *status) {
  pid_t r;
  while ((r = waitpid(c->pid, status, WNOHANG)) < 0 && errno == EINTR) {
  }
  return r == c->pid;
}

int jail_which(const char *name, char *path, size_t len) {
  if (strchr(name, '/')) {
    snprintf(path, len, "%s", name);
    return access(path, X_OK) == 0 ? 0 : -errno;
  }
  const char *dirs = getenv("PATH");
  if (!dirs || !*dirs) dirs = "/usr/local/bin:/usr/bin:/bin";
  int rc = -ENOENT;
  while (*dirs) {
    size_t n = strcspn(dirs, ":");
    snprintf(path, len, "%.*s%s%s", (int)n, dirs, n ? "/" : "", name);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
      if (access(path, X_OK) == 0) return 0;
      rc = -EACCES;
    }
    dirs += n + (dirs[n] == ':');
  }
  return rc;
}

int jail_mkdtemp(char *buf, size_t len) {
  char prefix[64];
  snprintf(prefix, sizeof prefix, "%s-%ld", JAIL_PREFIX, (long)getpid());
  return fsutil_mkdtemp(prefix, buf, len);
}

int jail_remove_stale(void) {
  const char *tmp = getenv("TMPDIR");
  if (!tmp || !*tmp) tmp = "/tmp";
  DIR *d = opendir(tmp);
  if (!d) return 0;
  int removed = 0;
  size_t plen = strlen(JAIL_PREFIX);
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strncmp(e->d_name, JAIL_PREFIX "-", plen + 1) != 0) continue;
    char *end;
    long pid = strtol(e->d_name + plen + 1, &end, 10);
    if (pid <= 0 || *end != '-') continue;
    /* Its builder still runs (or the pid is taken again): not stale. */
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", tmp, e->d_name);
    if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid()) continue;
    if (fsutil_rmtree(path) == 0) removed++;
  }
  closedir(d);
  return removed;
}
