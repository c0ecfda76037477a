/* Confined children for compiles. A template is untrusted code and
 * compiling it runs the preprocessor on it, so every process the builder
 * starts (a compiler, its probes, a libtcc compile) is forked here:
 *
 *   builder
 *    └─ supervisor: leads a new process group; when the builder dies
 *       │           (parent-death signal) it kills that group
 *       └─ worker:  rlimits, Landlock, then exec of the compiler (or a
 *                   function, for libtcc)
 *
 * The worker's file-system view (Landlock) is the toolchain, read-only,
 * plus its own work folder; no TCP, no signals or abstract sockets out of
 * it. Its address space, CPU time and file sizes are limited. The caller
 * enforces the wall-clock deadline by killing the group (pid is its id). */
#ifndef KTUNE_JAIL_H
#define KTUNE_JAIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define JAIL_DEFAULT_MEM_MB 1024
/* Work folders are $TMPDIR/JAIL_PREFIX-PID-XXXXXX: the pid of the builder
 * that made them tells a stale one (its builder is gone) from a live one. */
#define JAIL_PREFIX "ktune-build"

typedef struct {
  unsigned mem_limit_mb;        /* address space a compile may add; 0: the default */
  const char *const *read_dirs; /* more toolchain folders, read-only */
  size_t nread_dirs;
} jail_opts;

typedef struct jail jail;

/* Copies o (NULL: the defaults) and asks the kernel which Landlock ABI
 * it has. Returns 0 or -ENOMEM. */
int jail_new(const jail_opts *o, jail **out);
void jail_free(jail *j);

/* How builds are confined, for the builder's log; *confined is 0 when
 * the kernel offers no file-system sandbox. */
const char *jail_describe(const jail *j, int *confined);

typedef struct {
  char *const *argv;   /* exec argv[0], a path (jail_which), or ... */
  char *const *env;
  int (*fn)(void *arg); /* ... run fn in the worker: its return is the exit code */
  void *arg;
  const char *dir;     /* cwd and the only writable folder; NULL: none (cwd /) */
  uint32_t timeout_ms; /* sets the CPU-time limit, a backstop for the caller's deadline */
  int out_fd, err_fd;  /* the worker's stdout and stderr */
} jail_spec;

typedef struct {
  pid_t pid;  /* the supervisor: also the process group of the whole compile */
  int pidfd;  /* readable once the supervisor has exited (reap with jail_reap) */
} jail_child;

/* Starts a confined child and returns once it runs the compiler (or
 * the function), or a negative errno with the reason in err. */
int jail_start(const jail *j, const jail_spec *s, jail_child *out, char *err, size_t errlen);

/* Reaps the supervisor without blocking: 1 and its wait status, 0 while
 * it runs. */
int jail_reap(const jail_child *c, int *status);

/* Finds a command on PATH as execvp would. 0, or -ENOENT / -EACCES. */
int jail_which(const char *name, char *path, size_t len);

/* A fresh private work folder (mode 0700) named as JAIL_PREFIX says. */
int jail_mkdtemp(char *buf, size_t len);

/* Removes the work folders under $TMPDIR that builders which are gone
 * left behind. Returns how many. */
int jail_remove_stale(void);

#endif
