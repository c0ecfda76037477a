/* Loads a built artifact (a shared object's bytes) into this process
 * without touching the file system: the bytes go into a memfd and dlopen
 * maps it through /proc/self/fd. Loading is split in two so that the
 * memfd can be made before the measuring child enters its sandbox and
 * the mapping (which runs the object's initialisers) after. */
#ifndef KTUNE_LOAD_H
#define KTUNE_LOAD_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  void *dl;       /* dlopen handle */
  int fd;         /* the memfd, kept open while loaded so its path stays unique */
  char path[64];  /* /proc/self/fd/N: what the loader opens */
} load_so;

/* Copies bytes[0..len) into a fresh memfd and picks its path. On failure
 * returns a negative code and writes the reason to err. */
int load_prepare(load_so *so, const uint8_t *bytes, size_t len, char *err, size_t errlen);

/* dlopens a prepared object. On failure returns a negative code and writes
 * dlerror's text to err. */
int load_map(load_so *so, char *err, size_t errlen);

/* load_prepare then load_map. */
int load_open(load_so *so, const uint8_t *bytes, size_t len, char *err, size_t errlen);

/* Looks up a function by name. Returns 0 and sets *fn, or a negative code
 * with the reason in err. */
int load_sym(const load_so *so, const char *name, void **fn, char *err, size_t errlen);

/* Closes the memfd once mapped (the mapping keeps the object alive); the
 * measuring child does this so a kernel finds no handle to its own code. */
void load_drop_fd(load_so *so);

/* Unloads; safe after a failed load and when called twice. */
void load_close(load_so *so);

#endif
