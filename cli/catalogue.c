/* The built-in tasks: the spec files the CLI finds by name (`ktune tune
 * matmul`), in KTUNE_TASKS, else the source tree's tasks/ folder, else the
 * installed one. Only the CLI looks here; the tracker and the agents get
 * every spec over the wire. */
#include "cli/catalogue.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/task.h"

#ifndef KTUNE_TASKS_DIR
#define KTUNE_TASKS_DIR ""
#endif
#ifndef KTUNE_TASKS_INSTALL_DIR
#define KTUNE_TASKS_INSTALL_DIR ""
#endif

/* The folders holding built-in specs, in the order they are searched. */
static size_t catalogue_dirs(const char *dirs[2]) {
  const char *env = getenv("KTUNE_TASKS");
  size_t n = 0;
  if (env && *env) {
    dirs[n++] = env;
    return n;
  }
  if (*KTUNE_TASKS_DIR) dirs[n++] = KTUNE_TASKS_DIR;
  if (*KTUNE_TASKS_INSTALL_DIR && strcmp(KTUNE_TASKS_INSTALL_DIR, KTUNE_TASKS_DIR) != 0)
    dirs[n++] = KTUNE_TASKS_INSTALL_DIR;
  return n;
}

static int is_regular(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

typedef struct {
  char *name;
  char *path;
} entry;

static int entry_cmp(const void *a, const void *b) {
  return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

/* Built-in specs by name, the first folder winning a name; sorted. */
static int scan_builtin(entry **out, size_t *n) {
  const char *dirs[2];
  size_t ndirs = catalogue_dirs(dirs), cap = 0;
  entry *list = NULL;
  *n = 0;
  for (size_t d = 0; d < ndirs; d++) {
    DIR *dir = opendir(dirs[d]);
    if (!dir) continue;
    struct dirent *de;
    while ((de = readdir(dir))) {
      size_t len = strlen(de->d_name);
      if (len <= 5 || de->d_name[0] == '.' || strcmp(de->d_name + len - 5, ".json") != 0)
        continue;
      int seen = 0;
      for (size_t i = 0; i < *n && !seen; i++)
        seen = strlen(list[i].name) == len - 5 && memcmp(list[i].name, de->d_name, len - 5) == 0;
      if (seen) continue;
      size_t plen = strlen(dirs[d]) + 1 + len + 1;
      char *path = malloc(plen);
      char *name = strndup(de->d_name, len - 5);
      if (*n == cap) {
        size_t ncap = cap ? cap * 2 : 8;
        entry *nl = realloc(list, ncap * sizeof *nl);
        if (nl) {
          list = nl;
          cap = ncap;
        }
      }
      if (!path || !name || *n == cap) {
        free(path);
        free(name);
        closedir(dir);
        for (size_t i = 0; i < *n; i++) {
          free(list[i].name);
          free(list[i].path);
        }
        free(list);
        *n = 0;
        return -ENOMEM;
      }
      snprintf(path, plen, "%s/%s", dirs[d], de->d_name);
      if (!is_regular(path)) {
        free(path);
        free(name);
        continue;
      }
      list[*n].name = name;
      list[*n].path = path;
      (*n)++;
    }
    closedir(dir);
  }
  if (*n) qsort(list, *n, sizeof *list, entry_cmp);
  *out = list;
  return 0;
}

int catalogue_list(char ***paths, size_t *n, char *err, size_t errlen) {
  entry *list = NULL;
  size_t cnt = 0;
  *paths = NULL;
  *n = 0;
  if (scan_builtin(&list, &cnt) < 0)
    return task_bad(err, errlen, "tasks", NULL, "out of memory");
  char **out = cnt ? calloc(cnt, sizeof *out) : NULL;
  if (cnt && !out) {
    for (size_t i = 0; i < cnt; i++) {
      free(list[i].name);
      free(list[i].path);
    }
    free(list);
    return task_bad(err, errlen, "tasks", NULL, "out of memory");
  }
  for (size_t i = 0; i < cnt; i++) {
    out[i] = list[i].path;
    free(list[i].name);
  }
  free(list);
  *paths = out;
  *n = cnt;
  return 0;
}

int catalogue_find(const char *name, char *path, size_t pathlen, char *err, size_t errlen) {
  if (!name || !*name)
    return task_bad(err, errlen, "task", NULL,
                    "no task given (name a built-in task, see 'ktune tasks', or a spec file)");
  if (is_regular(name)) {
    if (strlen(name) >= pathlen) return task_bad(err, errlen, name, NULL, "path too long");
    snprintf(path, pathlen, "%s", name);
    return 0;
  }
  size_t len = strlen(name);
  if (strchr(name, '/') || (len > 5 && strcmp(name + len - 5, ".json") == 0))
    return task_bad(err, errlen, name, NULL, "no such task spec file");
  const char *dirs[2];
  size_t ndirs = catalogue_dirs(dirs);
  for (size_t d = 0; d < ndirs; d++) {
    char cand[4096];
    int n = snprintf(cand, sizeof cand, "%s/%s.json", dirs[d], name);
    if (n < 0 || (size_t)n >= sizeof cand || !is_regular(cand)) continue;
    if ((size_t)n >= pathlen) return task_bad(err, errlen, cand, NULL, "path too long");
    snprintf(path, pathlen, "%s", cand);
    return 0;
  }
  entry *list = NULL;
  size_t cnt = 0;
  char names[512] = "";
  size_t used = 0;
  if (scan_builtin(&list, &cnt) == 0) {
    for (size_t i = 0; i < cnt; i++) {
      if (used < sizeof names) {
        int w = snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "", list[i].name);
        if (w > 0) used += (size_t)w;
      }
      free(list[i].name);
      free(list[i].path);
    }
    free(list);
  }
  if (cnt)
    return task_bad(err, errlen, "task", NULL,
                    "unknown task '%.128s'; built-in tasks: %s (or give the path of a task spec "
                    "file)",
                    name, names);
  return task_bad(err, errlen, "task", NULL,
                  "unknown task '%.128s'; no built-in tasks found in %s%s%s (set KTUNE_TASKS, or "
                  "give the path of a task spec file)",
                  name, ndirs ? dirs[0] : "(none)", ndirs > 1 ? " or " : "",
                  ndirs > 1 ? dirs[1] : "");
}
