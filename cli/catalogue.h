/* The built-in task specs, found by name. */
#ifndef KTUNE_CATALOGUE_H
#define KTUNE_CATALOGUE_H

#include <stddef.h>

/* Resolves NAME to a spec path: an existing file path is taken as is;
 * otherwise NAME.json in the built-in tasks folder (KTUNE_TASKS, else the
 * compiled-in folders). An unknown name lists the built-in ones. */
int catalogue_find(const char *name, char *path, size_t pathlen, char *err, size_t errlen);

/* Lists the built-in task spec paths (sorted by name); caller frees each
 * and the array. */
int catalogue_list(char ***paths, size_t *n, char *err, size_t errlen);

#endif
