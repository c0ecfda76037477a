/* What a builder lets run, and the words of a compiler command: the
 * policy half of cc.h, free of processes and of the loop. */
#ifndef KTUNE_CCPOLICY_H
#define KTUNE_CCPOLICY_H

#include <stddef.h>

/* Which commands a builder runs. A session's command comes over the
 * network: unchecked, it could name any program, or compiler flags that
 * run one (gcc -wrapper, -fplugin, -B) or read and write files (@file,
 * -include, -MF, -Wl,...). By default the first word must match one of
 * cc_default_programs and every other word must be a flag known to only
 * change code generation (-O*, -m*, -f*, -D*, -U*, -std=, -W*, -g*, ...,
 * --target=). */
typedef struct {
  const char *const *programs; /* fnmatch patterns ('*' stops at '/'); NULL: the defaults */
  size_t nprograms;
  int any;                     /* run any command as given: for trusted farms only */
} cc_policy;

extern const char *const cc_default_programs[];
extern const size_t cc_ndefault_programs;

/* 0 when policy (NULL: the defaults) lets argv run; else -EPERM and why. */
int cc_check(const cc_policy *policy, char *const *argv, char *err, size_t errlen);

/* Splits a command line into words like a shell would without running
 * one: blanks separate words; '...' keeps everything literally, "..." and
 * a backslash escape the next character. No variables, globs or
 * redirections. Returns the word count (>0) and a NULL-terminated array
 * (free with cc_argv_free), or -EINVAL with a reason in err. */
int cc_split(const char *command, char ***argv, char *err, size_t errlen);
void cc_argv_free(char **argv);

/* The version in the first line of `CMD --version` output ("gcc (Debian
 * 12.2.0-14) 12.2.0" -> "12.2.0"); the whole first line when it holds no
 * dotted number. */
void cc_version(const char *version_output, char *out, size_t len);

#endif
