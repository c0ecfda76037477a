/* Real processes for integration tests: start the programs from the build
 * tree, run a command and capture what it printed, with time limits. */
#ifndef KTUNE_TEST_PROC_H
#define KTUNE_TEST_PROC_H

#include <stddef.h>
#include <sys/types.h>

/* Path of a program in the build tree ("tracker/ktune-tracker"). */
const char *proc_bin(const char *rel);

/* Starts argv with stdout and stderr appended to log_path. */
pid_t proc_start(char *const argv[], const char *log_path);

/* Runs argv to the end (killed after timeout_ms); stdout and stderr go to
 * out. Returns the exit code, or 128+signal. */
int proc_run(char *const argv[], char *out, size_t outlen, int timeout_ms);

/* Runs the build's `ktune ARGS...` (at most 46 of them) in folder cwd
 * (NULL: here) as proc_run does. */
int proc_ktune(const char *cwd, char *const args[], char *out, size_t outlen, int timeout_ms);

/* Sends sig and waits up to timeout_ms for the process to end (then
 * SIGKILL). Returns the wait status. */
int proc_stop(pid_t pid, int sig, int timeout_ms);

/* Waits until path exists and holds a line; copies it (no newline). */
int proc_wait_file(const char *path, char *buf, size_t len, int timeout_ms);

void proc_sleep_ms(long ms);
/* prog found on the PATH, its path in path (may be NULL); 0 when none. */
int proc_find(const char *prog, char *path, size_t len);

/* A new folder /tmp/ktune-test.XXXXXX, removed with what is in it when
 * the case that made it ends well. */
void proc_tmpdir(char *buf, size_t len);

/* Writes text to path (aborts when it cannot). */
void proc_write_file(const char *path, const char *text);
/* The whole of a file, at most len - 1 bytes (a client's output so far);
 * "" when there is none. */
void proc_read_file(const char *path, char *buf, size_t len);

#endif
