#include "runner/device.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/target.h"

#ifndef KTUNE_VERSION
#define KTUNE_VERSION "unknown"
#endif

#define DEVICE_UNKNOWN "unknown"

/* Copies s without surrounding blanks. */
static void device_trimmed(char *out, size_t len, const char *s, size_t n) {
  while (n > 0 && isspace((unsigned char)*s)) s++, n--;
  while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
  if (n >= len) n = len - 1;
  memcpy(out, s, n);
  out[n] = '\0';
}

/* The value of the first "key : value" line whose key is exactly key. */
static int device_field(const char *text, const char *key, char *out, size_t len) {
  size_t klen = strlen(key);
  for (const char *line = text; line && *line;) {
    const char *end = strchr(line, '\n');
    size_t n = end ? (size_t)(end - line) : strlen(line);
    const char *colon = memchr(line, ':', n);
    if (colon) {
      size_t k = (size_t)(colon - line);
      while (k > 0 && isspace((unsigned char)line[k - 1])) k--;
      if (k == klen && strncmp(line, key, klen) == 0) {
        device_trimmed(out, len, colon + 1, n - (size_t)(colon + 1 - line));
        if (out[0]) return 0;
      }
    }
    line = end ? end + 1 : NULL;
  }
  return -1;
}

int device_parse_cpuinfo(const char *text, char *model, size_t len) {
  static const char *const keys[] = {"model name", "Model", "Hardware", "cpu model", "uarch", "isa"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    if (device_field(text, keys[i], model, len) == 0) return 0;
  return -1;
}

/* A small text file's first len-1 bytes; -1 when it cannot be read. */
static int device_read(const char *path, char *buf, size_t len) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, len - 1, f);
  fclose(f);
  buf[n] = '\0';
  return n > 0 ? 0 : -1;
}

int device_identity(int cpu, device_info *out) {
  memset(out, 0, sizeof *out);
  char *text = malloc(1 << 16);
  if (!text || device_read("/proc/cpuinfo", text, 1 << 16) < 0 ||
      device_parse_cpuinfo(text, out->cpu_model, sizeof out->cpu_model) < 0) {
    char model[256];
    /* Device-tree boards name themselves here ("Raspberry Pi 4 Model B"). */
    if (device_read("/sys/firmware/devicetree/base/model", model, sizeof model) == 0)
      device_trimmed(out->cpu_model, sizeof out->cpu_model, model, strlen(model));
  }
  free(text);
  if (!out->cpu_model[0]) snprintf(out->cpu_model, sizeof out->cpu_model, DEVICE_UNKNOWN);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  out->cores = n > 0 ? (uint32_t)n : 0;
  struct utsname u;
  if (uname(&u) == 0) {
    target_arch(u.machine, out->arch, sizeof out->arch);
    snprintf(out->kernel, sizeof out->kernel, "%s", u.release);
  } else {
    snprintf(out->arch, sizeof out->arch, DEVICE_UNKNOWN);
    snprintf(out->kernel, sizeof out->kernel, DEVICE_UNKNOWN);
  }
  char path[128], gov[64];
  snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/cpufreq/scaling_governor",
           cpu < 0 ? 0 : cpu);
  if (device_read(path, gov, sizeof gov) == 0)
    device_trimmed(out->governor, sizeof out->governor, gov, strlen(gov));
  if (!out->governor[0]) snprintf(out->governor, sizeof out->governor, DEVICE_UNKNOWN);
  snprintf(out->version, sizeof out->version, "%s", KTUNE_VERSION);
  return 0;
}
