/* Shared by the fuzz targets: what the tracker does with untrusted input,
 * done to fuzzer-made input, with the invariants it relies on checked.
 * A broken invariant aborts, so libFuzzer reports it like a crash. */
#ifndef KTUNE_FUZZ_WALK_H
#define KTUNE_FUZZ_WALK_H

#include <stddef.h>
#include <stdint.h>

#include "common/task.h"
#include "proto/ktune.pb-c.h"

#define FUZZ_ASSERT(c) \
  ((c) ? (void)0 : fuzz_fail(__FILE__, __LINE__, #c))

_Noreturn void fuzz_fail(const char *file, int line, const char *what);

/* FNV-1a over n bytes: reading every byte lets ASan see a bad length. */
uint64_t fuzz_hash(const void *p, size_t n, uint64_t h);

/* A decoded Envelope as the tracker's and agents' handlers take it:
 * every field read, a submitted task taken through the session checks,
 * results read as jobs.c reads them, and the message re-encoded and
 * decoded again to the same bytes. */
void fuzz_walk_envelope(const Ktune__Envelope *env);

/* A task that task_load or task_from_proto accepted: what a session does
 * with it (space, FLOPs, buffer sizes, a few configs, the tuners on small
 * spaces) and the round trip through its wire form. */
void fuzz_walk_task(const task_spec *t);

#endif
