/* A supervised child process on a libuv loop: the builder's compilers
 * and the runner's measuring child. The child leads its own process
 * group, dies with this process, has pipes for its stdin and its output,
 * and a deadline after which its whole group is killed:
 *
 *   caller
 *    └─ child: its own session and process group; parent-death SIGKILL
 *
 * or, with guard (for children that start processes of their own):
 *
 *   caller
 *    └─ guard: leads the group; when the caller dies it kills the group
 *       └─ worker: exec (or a function)
 *
 * done comes exactly once, from the loop, when the child has exited and
 * its output is drained (or a grace period is over); the child then frees
 * itself once libuv lets go of its last handle. */
#ifndef KTUNE_CHILD_H
#define KTUNE_CHILD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

typedef struct child child;

typedef struct {
  int spawn_error;        /* negative errno: there never was a child */
  const char *spawn_msg;  /* the step that failed and why; "" when not known */
  int exited;             /* reaped; else it never started or would not die */
  int64_t exit_status;
  int term_signal;
  int timed_out;          /* the deadline passed and the group was killed */
  const char *out, *err;  /* what it printed (kept streams), NUL-terminated, or NULL */
  size_t out_len, err_len;
  double seconds;         /* from the start to its exit (or to now) */
} child_result;

typedef void (*child_done_fn)(void *data, const child_result *r);
typedef void (*child_out_fn)(void *data, const char *buf, size_t len);

typedef struct {
  char *const *argv;     /* exec argv[0], a path, with env (NULL: ours); or ... */
  char *const *env;
  int (*fn)(void *arg);  /* ... run fn(arg) in the child: its return is the exit code */
  void *arg;
  const char *dir;       /* its working folder; NULL: ours */
  /* In the child, once its fds are in place and it is in dir, before
   * exec or fn: only async-signal-safe calls. Its own fds above the
   * child's are still open (they close right after). Returns NULL, or the
   * failed step's name with errno set (the start then fails with that). */
  const char *(*prepare)(void *arg);
  void *prepare_arg;
  int guard;             /* a guard process kills the group when the caller dies */
  uint8_t *in;           /* written to its stdin, then closed; taken (freed) by
                          * child_start whatever it returns; NULL: /dev/null */
  size_t in_len;
  child_out_fn on_out;   /* stdout goes here as it comes; NULL: kept */
  int inherit_err;       /* stderr is the caller's; else kept */
  const int *extra_fds;  /* become its fds 3, 4, ... */
  size_t nextra;
  size_t keep_max;       /* bytes kept per stream, the rest is dropped; 0: 64 KiB */
  uint32_t timeout_ms;
  uint32_t exit_grace_ms; /* after the exit, how long something it left may hold its
                           * output open; 0: 500 ms */
  child_done_fn done;
  void *data;
} child_spec;

/* Starts s->argv (or s->fn). Returns 0 and done comes later, also when
 * the start itself failed (spawn_error); -ENOMEM when done never comes. */
int child_start(uv_loop_t *loop, const child_spec *s, child **out);

/* Kills its process group while it has not been reaped; done still comes. */
void child_kill(child *c);

#endif
