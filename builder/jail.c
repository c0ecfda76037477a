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

static int jail_ruleset(const jail *j, const char *exe, const char *dir, char *err,
                        size_t errlen) {
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
  if (rc == 0 && exe) rc = jail_exe_rules(rs, what = exe, fs);
  if (rc == 0 && dir) rc = jail_rule(rs, what = dir, fs, fs);
  if (rc < 0) {
    snprintf(err, errlen, "landlock rule for %.200s: %s", what, strerror(-rc));
    close(rs);
    return rc;
  }
  return rs;
}

/* ---- in the worker: async-signal-safe calls only (the builder may
 * have threads) ---- */

const char *jail_enter(void *plan) {
  const jail_plan *p = plan;
  struct rlimit fsize = {JAIL_FSIZE_MAX, JAIL_FSIZE_MAX}, none = {0, 0};
  if ((p->as.rlim_cur && setrlimit(RLIMIT_AS, &p->as) < 0) ||
      setrlimit(RLIMIT_CPU, &p->cpu) < 0 || setrlimit(RLIMIT_FSIZE, &fsize) < 0 ||
      setrlimit(RLIMIT_CORE, &none) < 0)
    return "setrlimit";
  /* No setuid program can give the compile more than the builder has. */
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return "no_new_privs";
  if (p->ruleset_fd >= 0 && syscall(SYS_landlock_restrict_self, p->ruleset_fd, 0) < 0)
    return "landlock_restrict_self";
  return NULL;
}

/* ---- in the builder ---- */

uint32_t jail_cpu_limit_s(uint32_t timeout_ms) { return timeout_ms / 1000 + 2; }

rlim_t jail_mem_limit(const jail *j) { return (rlim_t)j->mem_mb << 20; }

/* Address space the caller already has: a forked worker starts with it.
 * A plain read: /proc files say they have no size, which fsutil's reader
 * takes for an empty file (and this returned 0: no limit at all). */
rlim_t jail_own_vm(void) {
  char text[64];
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, text, sizeof text - 1);
  close(fd);
  if (n <= 0) return 0;
  text[n] = '\0';
  return (rlim_t)strtoull(text, NULL, 10) * (rlim_t)sysconf(_SC_PAGESIZE);
}

int jail_plan_make(const jail *j, const char *exe, const char *dir, uint32_t timeout_ms,
                   jail_plan *p, char *err, size_t errlen) {
  memset(p, 0, sizeof *p);
  p->ruleset_fd = -1;
  /* A function runs in a fork of the builder, which starts with its size. */
  rlim_t mem = jail_mem_limit(j), base = exe ? 0 : jail_own_vm();
  p->as.rlim_cur = p->as.rlim_max = !exe && !base ? 0 : base + mem;
  p->cpu.rlim_cur = jail_cpu_limit_s(timeout_ms);
  p->cpu.rlim_max = p->cpu.rlim_cur + 1;
  if (j->abi > 0 && (p->ruleset_fd = jail_ruleset(j, exe, dir, err, errlen)) < 0) {
    int rc = p->ruleset_fd;
    p->ruleset_fd = -1;
    return rc;
  }
  return 0;
}

void jail_plan_release(jail_plan *p) {
  if (p->ruleset_fd >= 0) close(p->ruleset_fd);
  p->ruleset_fd = -1;
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
