/* Confinement for compiles. A template is untrusted code and compiling
 * it runs the preprocessor on it, so every process the builder starts (a
 * compiler, its probes) is a guarded child (common/child.h: a guard leads
 * its process group and kills it when the builder dies) whose worker
 * enters a jail before exec, and every libtcc compile a child of the
 * build fork server (buildserver.h) that enters one before it reads the
 * source.
 *
 * The worker's file-system view (Landlock) is the toolchain, read-only,
 * plus its own work folder; no TCP, no signals or abstract sockets out of
 * it. Its address space, CPU time and file sizes are limited; the
 * wall-clock deadline is the child's. */
#ifndef KTUNE_JAIL_H
#define KTUNE_JAIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#define JAIL_DEFAULT_MEM_MB 1024
/* Work folders are $TMPDIR/JAIL_PREFIX-PID-XXXXXX: the pid of the builder
 * that made them tells a stale one (its builder is gone) from a live one. */
#define JAIL_PREFIX "ktune-build"

typedef struct {
  unsigned mem_limit_mb;        /* address space a compile may add; 0: the default */
  const char *const *read_dirs; /* more toolchain folders, read-only */
  size_t nread_dirs;
  const char *server_exe;       /* the program that serves libtcc builds with
                                 * --build-server (builder/buildserver.h);
                                 * NULL: a fork of the caller serves them */
} jail_opts;

typedef struct jail jail;

/* Copies o (NULL: the defaults) and asks the kernel which Landlock ABI
 * it has. Returns 0 or -ENOMEM. */
int jail_new(const jail_opts *o, jail **out);
void jail_free(jail *j);

/* How builds are confined, for the builder's log; *confined is 0 when
 * the kernel offers no file-system sandbox. */
const char *jail_describe(const jail *j, int *confined);

/* What confines one compile, made in the builder before the fork: the
 * Landlock ruleset and the limits. */
typedef struct {
  int ruleset_fd;        /* -1: no Landlock on this kernel */
  struct rlimit as, cpu;
} jail_plan;

/* A plan for exe (a path; NULL when the child runs a function of ours,
 * libtcc) writing only in dir (NULL: nowhere), with a CPU-time limit
 * that backs up the caller's deadline of timeout_ms. 0, or a negative
 * errno with the reason in err. Release with jail_plan_release. */
int jail_plan_make(const jail *j, const char *exe, const char *dir, uint32_t timeout_ms,
                   jail_plan *p, char *err, size_t errlen);
void jail_plan_release(jail_plan *p);

/* child_spec.prepare for a plan: rlimits, no new privileges, Landlock.
 * In the worker; returns NULL or the failed step with errno set. */
const char *jail_enter(void *plan);

/* The CPU-time limit, in seconds, that backs up a deadline of timeout_ms. */
uint32_t jail_cpu_limit_s(uint32_t timeout_ms);

/* The address space a compile may add to the process it starts from
 * (--build-mem-limit-mb), in bytes. */
rlim_t jail_mem_limit(const jail *j);

/* The address space this process maps now, in bytes; 0 when unknown. */
rlim_t jail_own_vm(void);

/* Finds a command on PATH as execvp would. 0, or -ENOENT / -EACCES. */
int jail_which(const char *name, char *path, size_t len);

/* A fresh private work folder (mode 0700) named as JAIL_PREFIX says. */
int jail_mkdtemp(char *buf, size_t len);

/* Removes the work folders under $TMPDIR that builders which are gone
 * left behind. Returns how many. */
int jail_remove_stale(void);

#endif
