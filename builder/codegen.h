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

#endif
