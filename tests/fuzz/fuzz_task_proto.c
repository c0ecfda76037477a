/* Task specs off the wire: the input is a serialized TaskSpec, the form a
 * SubmitSession carries to the tracker. task_from_proto must refuse
 * anything malformed with a reason; what it accepts is used the way a
 * session uses it (walk.c). fuzz_frame reaches the same code through whole
 * frames; this target starts at the TaskSpec so that mutations land there. */
#include <stdio.h>

#include "common/task.h"
#include "proto/ktune.pb-c.h"
#include "tests/fuzz/walk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Ktune__TaskSpec *p = ktune__task_spec__unpack(NULL, size, data);
  if (!p) return 0;
  task_spec t;
  char err[1024];
  err[0] = '\0';
  if (task_from_proto(p, &t, err, sizeof err) == 0) {
    fuzz_walk_task(&t);
    task_free(&t);
  } else {
    FUZZ_ASSERT(err[0] != '\0');
    FUZZ_ASSERT(t.name == NULL && t.source == NULL && t.nargs == 0);
  }
  ktune__task_spec__free_unpacked(p, NULL);
  return 0;
}
