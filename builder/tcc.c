#include "builder/tcc.h"

#include <libtcc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "builder/fsutil.h"

/* Where Debian's `tcc` package puts libtcc1.a and tcc's own headers. */
#ifndef KTUNE_TCC_LIB_DIR
#define KTUNE_TCC_LIB_DIR "/usr/lib/x86_64-linux-gnu/tcc"
#endif

/* Lines of diagnostics kept: the first errors are the useful ones. */
#define TCC_DIAG_LINES 20
/* Well under the wire's 64 MiB frame limit. */
#define TCC_ARTIFACT_MAX (32u << 20)

/* libtcc 0.9.27 keeps global state (its compile semaphore is created lazily
 * and unguarded, and the error and symbol machinery is shared), so every
 * use of it in this process goes through this one lock. It is the only
 * global mutable state in the builder and it cannot be owned by a caller,
 * because any thread that reaches libtcc must be serialised. */
static pthread_mutex_t tcc_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct {
  char *buf;
  size_t cap;
  size_t len;
  int lines;
  int errors; /* messages seen, warnings included */
} tcc_diag;

static void tcc_on_error(void *opaque, const char *msg) {
  tcc_diag *d = opaque;
  d->errors++;
  if (!d->buf || d->cap == 0 || d->lines >= TCC_DIAG_LINES) return;
  size_t room = d->cap - d->len;
  if (room <= 1) return;
  int n = snprintf(d->buf + d->len, room, "%s%s", d->lines ? "\n" : "", msg);
  if (n < 0) return;
  d->len += (size_t)n < room ? (size_t)n : room - 1;
  d->lines++;
}

/* tcc can only write a file by name. A memfd reopened through /proc keeps
 * the artifact off every file system; tcc's unlink() of the name first
 * fails harmlessly there. Returns 1 when the memfd route is unavailable. */
static int tcc_output_memfd(TCCState *s, uint8_t **so, size_t *solen) {
  int fd = memfd_create("ktune-so", MFD_CLOEXEC);
  if (fd < 0) return 1;
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  int rc;
  if (access(path, W_OK) < 0)
    rc = 1;
  else if (tcc_output_file(s, path) < 0)
    rc = -2; /* tcc has written into the state; a second try is unsafe */
  else
    rc = fsutil_read_fd(fd, TCC_ARTIFACT_MAX, so, solen) < 0 ? 1 : 0;
  close(fd);
  return rc;
}

/* tcc unlinks the name and recreates it without O_EXCL, so the file goes
 * in a fresh private directory rather than straight into a shared /tmp. */
static int tcc_output_tmpfile(TCCState *s, uint8_t **so, size_t *solen) {
  char dir[4096], path[4096 + 16];
  if (fsutil_mkdtemp("ktune-so", dir, sizeof dir) < 0) return -2;
  snprintf(path, sizeof path, "%s/kernel.so", dir);
  int rc = tcc_output_file(s, path) < 0 ? -2 : 0;
  if (rc == 0) rc = fsutil_read_file(path, TCC_ARTIFACT_MAX, so, solen) < 0 ? -2 : 0;
  fsutil_rmtree(dir);
  return rc;
}

/* With path, tcc writes the object there; else it comes back in *so. */
static int tcc_build_locked(const char *source, const char *path, uint8_t **so, size_t *solen,
                            tcc_diag *d) {
  TCCState *s = tcc_new();
  if (!s) return -2;
  tcc_set_error_func(s, d, tcc_on_error);
  tcc_set_lib_path(s, KTUNE_TCC_LIB_DIR);
  /* Without libc the link is ~20x faster (no libc.so to parse) and the
   * object needs no DT_NEEDED: anything a kernel takes from libc (memset,
   * memcpy) is left undefined and resolved by dlopen against the runner,
   * which already has libc loaded. */
  tcc_set_options(s, "-nostdlib");
  int rc = -2;
  if (tcc_set_output_type(s, TCC_OUTPUT_DLL) < 0) goto out;
  if (tcc_compile_string(s, source) < 0) {
    rc = -1;
    goto out;
  }
  /* libtcc1.a holds the helpers tcc calls for e.g. float <-> uint64
   * conversions. Kernels rarely need it, so a missing file is not fatal:
   * such a kernel then fails to load, naming the symbol. */
  if (access(KTUNE_TCC_LIB_DIR "/libtcc1.a", R_OK) == 0 &&
      tcc_add_file(s, KTUNE_TCC_LIB_DIR "/libtcc1.a") < 0)
    goto out;
  int errors = d->errors;
  if (path) {
    rc = tcc_output_file(s, path) < 0 ? -2 : 0;
  } else {
    rc = tcc_output_memfd(s, so, solen);
    if (rc == 1) rc = tcc_output_tmpfile(s, so, solen);
  }
  /* A link failure that tcc explained is the source's fault. */
  if (rc == -2 && d->errors > errors) rc = -1;
out:
  tcc_delete(s);
  return rc;
}

static int tcc_build(const char *source, const char *path, uint8_t **so, size_t *solen,
                     char *diag, size_t diaglen) {
  if (diag && diaglen) diag[0] = '\0';
  tcc_diag d = {.buf = diag, .cap = diag ? diaglen : 0};
  pthread_mutex_lock(&tcc_lock);
  int rc = tcc_build_locked(source, path, so, solen, &d);
  pthread_mutex_unlock(&tcc_lock);
  if (rc == -1 && diag && diaglen && diag[0] == '\0')
    snprintf(diag, diaglen, "tcc failed without a message");
  return rc;
}

int tcc_build_so(const char *source, uint8_t **so, size_t *solen, char *diag, size_t diaglen) {
  if (diag && diaglen) diag[0] = '\0';
  if (!source || !so || !solen) return -2;
  *so = NULL;
  *solen = 0;
  return tcc_build(source, NULL, so, solen, diag, diaglen);
}

int tcc_build_file(const char *source, const char *path, char *diag, size_t diaglen) {
  if (diag && diaglen) diag[0] = '\0';
  if (!source || !path) return -2;
  return tcc_build(source, path, NULL, NULL, diag, diaglen);
}

const char *tcc_compiler_id(void) { return "tcc 0.9.27 -shared -nostdlib"; }
