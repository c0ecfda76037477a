#include "builder/ccpolicy.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CC_MAX_WORDS 256

const char *const cc_default_programs[] = {"cc",      "gcc",         "clang",      "gcc-[0-9]*",
                                           "clang-[0-9]*", "*-gcc", "*-gcc-[0-9]*", "*-clang"};
const size_t cc_ndefault_programs = sizeof cc_default_programs / sizeof cc_default_programs[0];

/* Flags that change how code is generated and nothing else: exact words,
 * then prefixes, minus the prefixes that load code, run programs or read
 * and write files. */
static int cc_flag_ok(const char *w) {
  static const char *const exact[] = {"-w", "-pipe", "-ansi"};
  static const char *const allowed[] = {"-O", "-m", "-f", "-D", "-U", "-std=", "-W", "-g",
                                        "-pedantic", "--target="};
  static const char *const denied[] = {
      "-mllvm",        "-fplugin",       "-fpass-plugin", "-fprofile",   "-fauto-profile",
      "-fdump",        "-fsanitize-blacklist", "-fsanitize-ignorelist", "-fmodule",
      "-fcrash-diagnostics", "-fuse-ld",  "-foffload",     "-fself-test", "-fltrans",
      "-fwpa",         "-fresolution",   "-fcoverage",    "-fsave-optimization-record",
      "-fopt-info",    "-Wl,",           "-Wa,",          "-Wp,"};
  for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
    if (strcmp(w, exact[i]) == 0) return 1;
  for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++)
    if (strncmp(w, denied[i], strlen(denied[i])) == 0) return 0;
  for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
    if (strncmp(w, allowed[i], strlen(allowed[i])) == 0) return 1;
  return 0;
}

int cc_check(const cc_policy *policy, char *const *argv, char *err, size_t errlen) {
  if (policy && policy->any) return 0;
  const char *const *progs = policy && policy->programs ? policy->programs : cc_default_programs;
  size_t n = policy && policy->programs ? policy->nprograms : cc_ndefault_programs;
  int ok = 0;
  for (size_t i = 0; i < n && !ok; i++) ok = fnmatch(progs[i], argv[0], FNM_PATHNAME) == 0;
  if (!ok) {
    char list[512] = "";
    for (size_t i = 0, o = 0; i < n && o < sizeof list; i++)
      o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", progs[i]);
    snprintf(err, errlen,
             "this builder does not run '%.200s' (it runs %s; its operator can allow more with "
             "ktune-builder --allow-compiler PATTERN)",
             argv[0], list);
    return -EPERM;
  }
  for (char *const *w = argv + 1; *w; w++) {
    /* clang's "-target TRIPLE" is the one flag with a separate value. */
    if (strcmp(*w, "-target") == 0 && w[1] && w[1][0] != '-') {
      w++;
      continue;
    }
    if (!cc_flag_ok(*w)) {
      snprintf(err, errlen,
               "this builder does not pass '%.200s' to a compiler: only flags that change code "
               "generation are allowed (-O*, -m*, -f*, -D*, -U*, -std=*, -W*, -g*, --target=*), "
               "not ones that run programs or read or write files",
               *w);
      return -EPERM;
    }
  }
  return 0;
}

/* ---- command lines ---- */

void cc_argv_free(char **argv) {
  if (!argv) return;
  for (char **w = argv; *w; w++) free(*w);
  free(argv);
}

int cc_split(const char *command, char ***argv, char *err, size_t errlen) {
  *argv = NULL;
  if (!command) command = "";
  size_t n = strlen(command);
  char **words = calloc(CC_MAX_WORDS + 1, sizeof *words);
  char *buf = malloc(n + 1);
  int count = 0, rc = 0;
  if (!words || !buf) {
    rc = -ENOMEM;
    snprintf(err, errlen, "out of memory");
    goto out;
  }
  const char *s = command;
  for (;;) {
    while (*s == ' ' || *s == '\t' || *s == '\n') s++;
    if (!*s) break;
    size_t len = 0;
    char quote = 0;
    for (; *s; s++) {
      if (quote == '\'') {
        if (*s == '\'') quote = 0;
        else buf[len++] = *s;
      } else if (*s == '\\') {
        if (!s[1]) break; /* a trailing backslash stands for itself */
        buf[len++] = *++s;
      } else if (quote == '"') {
        if (*s == '"') quote = 0;
        else buf[len++] = *s;
      } else if (*s == '\'' || *s == '"') {
        quote = *s;
      } else if (*s == ' ' || *s == '\t' || *s == '\n') {
        break;
      } else {
        buf[len++] = *s;
      }
    }
    if (*s == '\\' && !s[1]) buf[len++] = *s++;
    if (quote) {
      rc = -EINVAL;
      snprintf(err, errlen, "compiler command '%.200s' has an unclosed %c quote", command, quote);
      goto out;
    }
    if (count == CC_MAX_WORDS) {
      rc = -EINVAL;
      snprintf(err, errlen, "compiler command has more than %d words", CC_MAX_WORDS);
      goto out;
    }
    if (!(words[count] = strndup(buf, len))) {
      rc = -ENOMEM;
      snprintf(err, errlen, "out of memory");
      goto out;
    }
    count++;
  }
  if (count == 0) {
    rc = -EINVAL;
    snprintf(err, errlen, "the compiler command is empty (give e.g. \"gcc -O3\" or tcc)");
  }
out:
  free(buf);
  if (rc < 0) {
    cc_argv_free(words);
    return rc;
  }
  *argv = words;
  return count;
}

void cc_version(const char *text, char *out, size_t len) {
  if (!len) return;
  out[0] = '\0';
  if (!text) return;
  size_t line = strcspn(text, "\n");
  const char *best = NULL;
  size_t best_len = 0;
  for (size_t i = 0; i < line;) {
    while (i < line && text[i] == ' ') i++;
    size_t j = i;
    while (j < line && text[j] != ' ') j++;
    /* A dotted number: "12.2.0", "14.0.6", "0.9.27". */
    if (j > i && text[i] >= '0' && text[i] <= '9' && memchr(text + i, '.', j - i)) {
      size_t k = i;
      while (k < j && ((text[k] >= '0' && text[k] <= '9') || text[k] == '.')) k++;
      best = text + i;
      best_len = k - i;
    }
    i = j;
  }
  if (!best) {
    best = text;
    best_len = line;
  }
  if (best_len >= len) best_len = len - 1;
  memcpy(out, best, best_len);
  out[best_len] = '\0';
}

