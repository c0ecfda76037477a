/* What this runner's device is: reported in Hello so that every trial in
 * the history says what it was measured on. */
#ifndef KTUNE_DEVICE_H
#define KTUNE_DEVICE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  char cpu_model[128]; /* /proc/cpuinfo, else the device tree's model */
  uint32_t cores;      /* online CPUs */
  char arch[80];       /* uname -m */
  char kernel[128];    /* uname -r */
  char governor[64];   /* cpufreq governor of the runner's core, or "unknown" */
  char version[32];    /* ktune's version */
} device_info;

/* Fills out for the core the runner pins its measurements to (cpu < 0:
 * core 0). Fields that cannot be read say "unknown". Returns 0. */
int device_identity(int cpu, device_info *out);

/* The CPU model named in /proc/cpuinfo text: "model name" (x86), else
 * "Model" or "Hardware" (ARM boards), "uarch" or "isa" (RISC-V). Returns 0
 * and fills model, or -1 when the text names none. */
int device_parse_cpuinfo(const char *text, char *model, size_t len);

#endif
