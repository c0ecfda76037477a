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
 * or, with a launcher, a child forked by another process (a fork server,
 * builder/buildserver.h) that says when it has exited.
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
  const char *lost;       /* its launcher lost it (its fork server died): why; else NULL */
} child_result;

typedef void (*child_done_fn)(void *data, const child_result *r);
typedef void (*child_out_fn)(void *data, const char *buf, size_t len);

/* Another process forks the child (a fork server). start hands it the
 * fds that become the child's 0, 1, 2, ... (they stay the caller's) and
 * how (the spec's launch_how, read during the call only); it returns 0,
 * or a negative errno with why in msg. After a 0 the launcher calls
 * child_exited once, unless forget came first: the child is finishing
 * without its exit (the kill's grace is over), and the launcher must not
 * name it again. kill kills the child's process group. */
typedef struct child_launcher {
  int (*start)(void *self, child *c, const void *how, const int *fds, size_t nfds, char *msg,
               size_t msglen);
  void (*kill)(void *self, child *c);
  void (*forget)(void *self, child *c);
  void *self;
} child_launcher;

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
  const child_launcher *launcher; /* NULL: forked here; else argv, env, fn, dir,
                                   * prepare and guard are the launcher's business */
  const void *launch_how;         /* what the launcher is told of this child */
  child_done_fn done;
  void *data;
} child_spec;

/* Starts s->argv (or s->fn). Returns 0 and done comes later, also when
 * the start itself failed (spawn_error); -ENOMEM when done never comes. */
int child_start(uv_loop_t *loop, const child_spec *s, child **out);

/* Kills its process group while it has not been reaped; done still comes. */
void child_kill(child *c);

/* From a launcher: c has ended with wait_status, or, with lost, the
 * launcher lost it (why). */
void child_exited(child *c, int wait_status, const char *lost);

/* Default handlers and an empty mask, for a process forked from one
 * whose handlers are libuv's. Async-signal-safe. */
void child_reset_signals(void);

#endif
