/* The builder's fork server: one small clean process, started once, that
 * forks the confined child of every libtcc build, so that a build costs a
 * fork of a small process instead of two forks of the builder, and its
 * child holds nothing of the builder's (its token, its cache).
 *
 *   builder (libuv agent)
 *    └─ build server: ktune-builder --build-server, exec'd (or, for a
 *       library caller, forked before it holds anything); single-threaded,
 *       its own session; dies with the builder, killing its children first
 *       └─ build child: its own session and group; rlimits, no new
 *          privileges, Landlock (builder/jail.h); dies with the server
 *
 * They talk over a unix socketpair in fixed-size messages. The builder
 * sends a build with the child's fds (source on stdin, the object on
 * stdout, messages on stderr, the Landlock ruleset, its working folder)
 * and its limits; the
 * server forks, and says how the child ended once it has reaped it. The
 * server never reads a source or an object: those pass between the
 * builder and the child. Many builds may be under way at once.
 *
 * It is a child_launcher (common/child.h): the builder's deadline, output
 * and kill are child.c's. A server that dies, or does not answer a kill,
 * loses the builds it had (child_result.lost); the next build starts a
 * new one. */
#ifndef KTUNE_BUILDSERVER_H
#define KTUNE_BUILDSERVER_H

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "common/child.h"

/* The server's fd for its socket (ktune-builder --build-server PID). */
#define BUILDSERVER_FD 3
/* The option that makes ktune-builder a build server. */
#define BUILDSERVER_OPTION "--build-server"

/* ---- in the server process ---- */

/* Serves the builder whose pid is parent on sock until the builder
 * closes it or dies; every build child compiles its stdin with libtcc.
 * Returns the exit status. */
int buildserver_main(int sock, pid_t parent);

/* ---- in the builder ---- */

typedef struct buildserver buildserver;

/* What confines one build child: child_spec.launch_how. */
typedef struct {
  int ruleset_fd;     /* Landlock ruleset, -1: none */
  int dir_fd;         /* its working folder (O_PATH), -1: / */
  uint64_t mem_bytes; /* address space it may add to the server's; 0: no limit */
  uint32_t cpu_s;     /* CPU-time limit (RLIMIT_CPU soft; the hard one is +1) */
} buildserver_limits;

/* exe: the server is `exe --build-server PID` (this program); NULL: a fork
 * of the calling process, made now, so call it before the process holds
 * secrets. The server starts at once. 0, or a negative code with the
 * reason in err. */
int buildserver_new(uv_loop_t *loop, const char *exe, buildserver **out, char *err,
                    size_t errlen);

/* The launcher for child_spec.launcher; its children's launch_how is a
 * buildserver_limits. */
const child_launcher *buildserver_launcher(buildserver *bs);

/* The server's pid, 0 while none runs (for tests and logs). */
pid_t buildserver_pid(const buildserver *bs);

/* Ends the server; call once none of its children is left (their done has
 * come). The loop must run once more to close its handles. */
void buildserver_free(buildserver *bs);

#endif
