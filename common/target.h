/* What code is built for, named one way everywhere: a builder's compiler,
 * a runner's `uname -m` and the tracker's routing all use these. */
#ifndef KTUNE_TARGET_H
#define KTUNE_TARGET_H

#include <stddef.h>

/* The compiler every builder has: libtcc, in process. */
#define TARGET_BUILTIN_COMPILER "tcc"

/* 1 when a session's compiler is the built-in one ("tcc", blanks around
 * it allowed, or nothing). */
int target_builtin_compiler(const char *compiler);

/* The uname -m name of an architecture, from a uname -m name or a GNU
 * triple: "x86_64-pc-linux-gnu" -> "x86_64", amd64 -> x86_64, arm64 ->
 * aarch64, armv7l -> arm, i386 -> i686, powerpc64le -> ppc64le. */
void target_arch(const char *name, char *out, size_t len);

#endif
