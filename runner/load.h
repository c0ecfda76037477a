/* Loads a built artifact (a shared object's bytes) into this process
 * without touching the file system: the bytes go into a memfd and dlopen
 * maps it through /proc/self/fd. */
#ifndef KTUNE_LOAD_H
#define KTUNE_LOAD_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  void *dl; /* dlopen handle */
  int fd;   /* the memfd, kept open while loaded so its path stays unique */
} load_so;

/* Loads bytes[0..len). On failure returns a negative code and writes the
 * reason (dlerror's text when dlopen refused it) to err. */
int load_open(load_so *so, const uint8_t *bytes, size_t len, char *err, size_t errlen);

/* Looks up a function by name. Returns 0 and sets *fn, or a negative code
 * with the reason in err. */
int load_sym(const load_so *so, const char *name, void **fn, char *err, size_t errlen);

/* Unloads; safe after a failed load_open and when called twice. */
void load_close(load_so *so);

#endif
