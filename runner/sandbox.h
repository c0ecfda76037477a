/* The measuring child's seccomp sandbox (libseccomp). Everything that came
 * over the network (the artifact's initialisers, the reference, the kernel)
 * runs inside it; what the runner must do with the file system (read the
 * job, allocate and fill buffers, open the dump file) happens before.
 *
 * Two filters, stacked:
 *   1. loading: the dynamic loader's needs. Opening a file is trapped and
 *      emulated: only the artifact's own memfd path opens (as a dup of the
 *      memfd); any other path fails with EACCES, so a DT_NEEDED library or a
 *      constructor opening a file gets nothing.
 *   2. running (sandbox_lockdown, before the reference and the kernel): the
 *      clock, sleeping, memory management, writing to the result fd, exit.
 * Any other system call raises SIGSYS; the handler writes a RUNTIME_ERROR
 * result naming the call and exits. Crash signals are reported the same way,
 * naming the signal and the phase. See docs/MEASUREMENT.md. */
#ifndef KTUNE_SANDBOX_H
#define KTUNE_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
  SANDBOX_LOADING,   /* dlopen: the artifact's initialisers run */
  SANDBOX_REFERENCE, /* the reference function */
  SANDBOX_KERNEL,    /* warm-up and timed calls */
  SANDBOX_CHECKING,  /* the runner's own comparison and report */
} sandbox_phase;

/* The parts of the measuring child's confinement that an operator may
 * turn off (--sandbox-off) where the machine cannot honour them: under
 * qemu-user a seccomp filter would apply to the emulator's own system
 * calls, and the address-space limit is not applied at all. */
enum {
  SANDBOX_PART_SECCOMP = 1u << 0,   /* the system-call filters below */
  SANDBOX_PART_MEM_LIMIT = 1u << 1, /* the address-space rlimit (--mem-limit-mb) */
  SANDBOX_PARTS = SANDBOX_PART_SECCOMP | SANDBOX_PART_MEM_LIMIT,
};

/* "seccomp,mem-limit" -> the parts' bits; -1 with the reason in err for
 * anything else. */
int sandbox_parse_parts(const char *list, unsigned *parts, char *err, size_t errlen);

/* The names of parts, comma-separated ("" for none), as parsed above. */
void sandbox_parts_text(unsigned parts, char *out, size_t len);

/* Tries each part of `parts` in a child process, as a measuring child
 * would use it, and returns those that do not hold here; why gets one
 * sentence per failing part. A part this build never applies (the memory
 * limit under AddressSanitizer) is not tried. */
unsigned sandbox_probe(unsigned parts, char *why, size_t len);

/* Both filters compiled once, for the many children of a fork server:
 * each child fills in its own pid and fds (sandbox_enter) instead of
 * compiling. */
typedef struct sandbox_filters sandbox_filters;

/* Returns 0, or -1 with the reason in err (then children compile their
 * own, as without). */
int sandbox_filters_new(sandbox_filters **out, char *err, size_t errlen);
void sandbox_filters_free(sandbox_filters *f);

typedef struct {
  uint64_t job_id;
  int out_fd;            /* result frames are written here */
  int extra_fd;          /* also writable (the dump file); -1: none */
  int so_fd;             /* the artifact's memfd the loader may open; -1: none */
  const char *so_path;   /* its /proc/self/fd/N path */
  uint64_t mem_limit_mb; /* named in messages about failed allocations; 0: none */
  unsigned off;          /* SANDBOX_PART_SECCOMP: crash reports only, no filter */
  const sandbox_filters *filters; /* compiled ahead, or NULL: compile them here */
} sandbox_config;

typedef struct sandbox sandbox;

/* Installs the crash handlers and the loading filter (and no_new_privs;
 * with cfg->off & SANDBOX_PART_SECCOMP, no filter).
 * The running filter is made now (from cfg->filters, or compiled), while
 * memory and files are still at hand. Returns 0, or a negative code with
 * the reason in err; then nothing was installed and the caller must not
 * run untrusted code. */
int sandbox_enter(const sandbox_config *cfg, sandbox **out, char *err, size_t errlen);

/* Installs the running filter and moves to SANDBOX_REFERENCE. */
int sandbox_lockdown(sandbox *sb, char *err, size_t errlen);

/* Tells the handlers what is running, for their messages. */
void sandbox_set_phase(sandbox *sb, sandbox_phase phase);

/* 1 when the loader can run inside the sandbox on this architecture (the
 * open emulation needs the signal frame's registers); otherwise the caller
 * must load before sandbox_enter. */
int sandbox_loader_inside(void);

/* The name of a system call on this architecture ("openat"), or NULL. */
const char *sandbox_syscall_name(long nr);

#endif
