/* Compiles on the builder's libuv loop, each in a confined child process
 * (jail.h) in a fresh private work folder: any compiler command line
 * ("gcc -O3 -march=native", "clang -O2", "aarch64-linux-gnu-gcc -O2"),
 * run without a shell as
 *
 *   CMD -shared -fPIC -o out.so kernel.c
 *
 * or libtcc in a child of the build fork server (buildserver.h: libtcc
 * cannot be interrupted, and a child keeps its memory out of the
 * builder), with a time limit after which the compile and everything it
 * started (its process group) is killed. Each distinct command is asked once for
 * `--version` and `-dumpmachine` (and, when a flag says "native", what
 * native means), and the answers are kept for the life of the context. */
#ifndef KTUNE_CC_H
#define KTUNE_CC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "builder/buildcache.h"
#include "builder/ccpolicy.h"
#include "builder/jail.h"

typedef struct cc_ctx cc_ctx;

typedef struct {
  const char *status;      /* "ok", "COMPILE_ERROR", "BUILD_TIMEOUT" (or "CANCELLED") */
  const char *error;       /* first lines of diagnostics or the reason; "" when ok */
  const uint8_t *so;       /* the shared object when ok */
  size_t solen;
  const char *compiler_id; /* "gcc 12.2.0 -O3 -march=native (native=znver3)" */
  double seconds;          /* wall time of the compile itself (for a build
                              answered by the cache: of the one that made it) */
  const char *cache;       /* "hit" (from the cache), "shared" (an identical build
                              under way answered it), "miss" (compiled), or NULL
                              when it could not be cached (no cache, failed before) */
} cc_result;

/* Called once per cc_build, from the loop; r and its strings live only
 * for the call. */
typedef void (*cc_done_fn)(void *data, const cc_result *r);

/* policy and limits may be NULL (the defaults); they are copied. */
int cc_new(uv_loop_t *loop, const cc_policy *policy, cc_ctx **out);
int cc_new_limited(uv_loop_t *loop, const cc_policy *policy, const jail_opts *limits,
                   cc_ctx **out);

/* Keeps the artifacts of successful builds (buildcache.h) in at most
 * max_bytes, 0 for none (the default); replaces the cache there was.
 * With a cache, a build whose key is there is answered from it without a
 * process, and one whose key is being compiled (with the same time limit)
 * waits for that compile and shares its outcome, failures included.
 * Returns 0 or -ENOMEM (the cache is then off). */
int cc_set_cache(cc_ctx *c, size_t max_bytes);
void cc_cache_stats(const cc_ctx *c, buildcache_stats *st);
/* Compiles started, with the cache on or off. */
uint64_t cc_compiles(const cc_ctx *c);

/* How compiles are confined, for the log (jail_describe). */
const char *cc_sandbox(const cc_ctx *c, int *confined);

/* Kills every compile still running; their callbacks still come, with
 * status "CANCELLED", so that callers can free what they passed. Frees
 * the context once libuv lets go of its handles. */
void cc_close(cc_ctx *c);

/* Starts a build of `source` with `command`. target_arch (uname -m style;
 * NULL or "" for any) must match what the command builds for.
 * timeout_ms 0 means CC_DEFAULT_TIMEOUT_MS. Returns 0 and calls done
 * later, exactly once; a negative code (no memory, closed context) means
 * done will not be called. */
#define CC_DEFAULT_TIMEOUT_MS 60000
int cc_build(cc_ctx *c, const char *command, const char *source, const char *target_arch,
             uint32_t timeout_ms, cc_done_fn done, void *data);

/* The same with libtcc (tcc.h) in the child; its identity is
 * tcc_compiler_id(). The caller checks the target (tcc builds for the
 * host only) and names it in target_arch, for the cache key. */
int cc_build_tcc(cc_ctx *c, const char *source, const char *target_arch, uint32_t timeout_ms,
                 cc_done_fn done, void *data);

#endif
