#include "common/target.h"

#include <stdio.h>
#include <string.h>

int target_builtin_compiler(const char *compiler) {
  if (!compiler) return 1;
  while (*compiler == ' ' || *compiler == '\t') compiler++;
  size_t n = strlen(compiler);
  while (n && (compiler[n - 1] == ' ' || compiler[n - 1] == '\t')) n--;
  return n == 0 || (n == strlen(TARGET_BUILTIN_COMPILER) &&
                    strncmp(compiler, TARGET_BUILTIN_COMPILER, n) == 0);
}

void target_arch(const char *name, char *out, size_t len) {
  static const struct {
    const char *from, *to;
  } alias[] = {{"amd64", "x86_64"}, {"x64", "x86_64"},   {"arm64", "aarch64"},
               {"i386", "i686"},    {"i486", "i686"},    {"i586", "i686"},
               {"x86", "i686"},     {"armhf", "arm"},    {"ppc64el", "ppc64le"},
               {"powerpc64le", "ppc64le"}};
  char cpu[64];
  size_t n = 0;
  if (!len) return;
  if (!name) name = "";
  while (name[n] && name[n] != '-' && name[n] != '\n' && n + 1 < sizeof cpu) {
    cpu[n] = name[n];
    n++;
  }
  cpu[n] = '\0';
  const char *arch = cpu;
  for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
    if (strcmp(cpu, alias[i].from) == 0) arch = alias[i].to;
  /* armv7l, armv7a, armv6l...: one 32-bit ARM family for matching. */
  if (strncmp(cpu, "armv", 4) == 0 || strcmp(cpu, "armel") == 0) arch = "arm";
  snprintf(out, len, "%s", arch);
}
