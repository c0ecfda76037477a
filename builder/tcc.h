/* The libtcc back end: compiles generated source into a shared object in
 * the calling process (the builder calls it in a confined child, cc.h).
 * libtcc 0.9.27 keeps global state, so calls from any thread are
 * serialised by one lock inside (one compile at a time per process); the
 * first call must come before threads race to make it. */
#ifndef KTUNE_TCC_H
#define KTUNE_TCC_H

#include <stddef.h>
#include <stdint.h>

/* Compiles `source` into a shared object. On success returns 0 and sets
 * *so / *solen (malloc'd). On a compile error returns -1 and writes the
 * first lines of diagnostics to diag. Other failures return -2. */
int tcc_build_so(const char *source, uint8_t **so, size_t *solen, char *diag, size_t diaglen);

/* The same, writing the object to path (a private folder: tcc replaces
 * the name without O_EXCL). For a confined child (jail.h), whose only
 * writable place is its work folder. */
int tcc_build_file(const char *source, const char *path, char *diag, size_t diaglen);

/* "tcc 0.9.27" and the fixed flags, for the trial's compiler identity. */
const char *tcc_compiler_id(void);

#endif
