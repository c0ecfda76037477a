/* Turns a template plus one config into C source: constants and knobs
 * become #defines ahead of the template text. */
#ifndef KTUNE_CODEGEN_H
#define KTUNE_CODEGEN_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  const char *name;
  int64_t value;
} codegen_define;

/* Returns malloc'd source text, or NULL on a bad define name or no memory. */
char *codegen_source(const char *task, const char *tmpl, const codegen_define *defs, size_t ndefs);

/* The same, with the last nknobs of defs kept away from the function named
 * reference (and the template's functions it calls): a knob named there
 * returns NULL with err saying so; one reached through a macro is left for
 * the compiler to report (codegen_reference_error). err is "" for the other
 * NULLs. reference NULL or "": as codegen_source. */
char *codegen_source_guarded(const char *task, const char *tmpl, const codegen_define *defs,
                             size_t ndefs, const char *reference, size_t nknobs, char *err,
                             size_t errlen);

/* When a compiler's diagnostics show a knob that the reference reached:
 * writes the sentence naming it, then diag, into out and returns 1; else 0. */
int codegen_reference_error(const char *reference, const char *diag, char *out, size_t len);

#endif
