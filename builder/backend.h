/* Turns a BuildJob into a BuildResult on the builder's libuv loop: code
 * generation, then the back end the job names. "tcc" (or "") compiles
 * with libtcc in a forked child; anything else is an external compiler
 * command run as a child process. Either runs confined and is killed at
 * its deadline (cc.h, jail.h), as many at once as jobs arrive. */
#ifndef KTUNE_BACKEND_H
#define KTUNE_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "builder/cc.h"
#include "proto/ktune.pb-c.h"

typedef struct backend backend;

typedef struct {
  uint64_t job_id;
  const char *status;       /* ok, COMPILE_ERROR, BUILD_TIMEOUT, UNSUPPORTED (this builder
                               cannot run the compiler or make the target), CANCELLED
                               after close */
  const char *error;        /* "" when ok */
  const uint8_t *artifact;
  size_t artifact_len;
  double build_s;           /* for a build the cache answered: of the compile that made it */
  const char *compiler_id;
  const char *cache;        /* "hit", "shared", "miss" or NULL: cc_result.cache */
} backend_result;

/* Called once per backend_build, from the loop; r lives only for the call. */
typedef void (*backend_done_fn)(void *data, const backend_result *r);

/* Also makes libtcc safe to use from several threads (one warm-up
 * compile) and removes stale work folders (jail_remove_stale); err says
 * why libtcc does not work. policy (NULL: the defaults) limits the
 * external commands a job may name (cc.h); limits (NULL: the defaults)
 * what a compile may use (jail.h). */
int backend_new(uv_loop_t *loop, const cc_policy *policy, backend **out, char *err,
                size_t errlen);
int backend_new_limited(uv_loop_t *loop, const cc_policy *policy, const jail_opts *limits,
                        backend **out, char *err, size_t errlen);

/* Keeps successful builds' artifacts in at most max_bytes of memory, 0
 * for none (the default): cc_set_cache. 0 or -ENOMEM. */
int backend_set_cache(backend *b, size_t max_bytes);
void backend_cache_stats(const backend *b, buildcache_stats *st);
uint64_t backend_compiles(const backend *b); /* cc_compiles */

/* How compiles are confined, for the log; *confined 0: no file-system
 * sandbox on this kernel. */
const char *backend_sandbox(const backend *b, int *confined);

/* Kills running compiler processes. Builds in flight still call back,
 * with status "CANCELLED", so that callers can free their data; frees
 * itself once the last has. */
void backend_close(backend *b);

/* Starts a build. Returns 0 and calls done later, or a negative code (no
 * memory, closed) and never calls it. The job may be freed on return. */
int backend_build(backend *b, const Ktune__BuildJob *job, backend_done_fn done, void *data);

/* What the builder advertises in Hello: back end names, its own
 * architecture (the only one libtcc makes code for), and the
 * architectures it can build for: its own, and the targets of the
 * compilers its operator named (backend_add_compiler). */
extern const char *const backend_names[];
#define BACKEND_NNAMES 2
#define BACKEND_MAX_ARCHS 4
const char *backend_host_arch(const backend *b);
size_t backend_archs(const backend *b, const char **archs, size_t max);

/* A compiler command this builder offers (--compiler "aarch64-linux-gnu-gcc
 * -O2"): checked against policy, found on the PATH and asked
 * `-dumpmachine`; its architecture goes to arch and is advertised from
 * then on. 0, or a negative code with the reason in err (not allowed, not
 * installed, no answer, more than BACKEND_MAX_ARCHS architectures). */
int backend_add_compiler(backend *b, const cc_policy *policy, const char *command, char *arch,
                         size_t archlen, char *err, size_t errlen);

#endif
