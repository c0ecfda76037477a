/* Task spec files: the input is the JSON text of a spec, written to a
 * file that task_load reads; next to it sits a small template, kernel.c,
 * which a spec names with "source": "kernel.c". What task_load accepts is
 * then used the way a session uses it (walk.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/task.h"
#include "tests/fuzz/walk.h"

static const char template_text[] =
    "void k(float *C, const float *A) {\n"
    "  for (int i = 0; i < M; i += TI) C[i] = A[i];\n"
    "}\n";

/* libFuzzer calls the entry point millions of times in one process; the
 * folder holding the spec file and its template is made once, here, and
 * removed at exit. This is the only state kept between inputs. */
static char fuzz_dir[256];
static char spec_path[300];
static char template_path[300];

static void remove_dir(void) {
  unlink(spec_path);
  unlink(template_path);
  rmdir(fuzz_dir);
}

static int write_file(const char *path, const void *data, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  const uint8_t *p = data;
  while (n > 0) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      close(fd);
      return -1;
    }
    p += k;
    n -= (size_t)k;
  }
  return close(fd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const char *tmp = getenv("TMPDIR");
  snprintf(fuzz_dir, sizeof fuzz_dir, "%s/ktune-fuzz-task.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(fuzz_dir)) {
    perror("fuzz_task: mkdtemp");
    exit(1);
  }
  snprintf(spec_path, sizeof spec_path, "%s/spec.json", fuzz_dir);
  snprintf(template_path, sizeof template_path, "%s/kernel.c", fuzz_dir);
  if (write_file(template_path, template_text, sizeof template_text - 1) != 0) {
    perror("fuzz_task: writing the template");
    exit(1);
  }
  atexit(remove_dir);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FUZZ_ASSERT(write_file(spec_path, data, size) == 0);
  task_spec t;
  char err[1024];
  err[0] = '\0';
  if (task_load(spec_path, &t, err, sizeof err) != 0) {
    /* every refusal says what was wrong */
    FUZZ_ASSERT(err[0] != '\0');
    FUZZ_ASSERT(t.name == NULL && t.source == NULL && t.nargs == 0);
    return 0;
  }
  fuzz_walk_task(&t);
  task_free(&t);
  return 0;
}
