#include "cli/format.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/timing.h"

void cli_fmt_latency(char *buf, size_t len, double s) {
  if (!(s > 0)) snprintf(buf, len, "-");
  else if (s < 1e-3) snprintf(buf, len, "%.2f us", s * 1e6);
  else if (s < 1) snprintf(buf, len, "%.3f ms", s * 1e3);
  else snprintf(buf, len, "%.3f s", s);
}

void cli_fmt_count(char *buf, size_t len, uint64_t n) {
  char digits[24];
  int nd = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)n);
  size_t off = 0;
  for (int i = 0; i < nd && off + 1 < len; i++) {
    if (i && (nd - i) % 3 == 0) buf[off++] = ',';
    if (off + 1 < len) buf[off++] = digits[i];
  }
  buf[off] = 0;
}

void cli_fmt_rate(char *buf, size_t len, int width, double rate, int gbps) {
  snprintf(buf, len, "%*.3f %s", width, rate, gbps ? "GB/s" : "GFLOPS");
}

/* Appends to buf at *off, never past len. */
static void put(char *buf, size_t len, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t len, size_t *off, const char *fmt, ...) {
  if (*off >= len) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + *off, len - *off, fmt, ap);
  va_end(ap);
  if (n > 0) *off += (size_t)n;
}

void cli_fmt_timing(char *buf, size_t len, const char *timing_json) {
  json_t *o = timing_json ? json_loads(timing_json, 0, NULL) : NULL;
  size_t off = 0;
  buf[0] = 0;
  /* number and repeat are never 0; the others say nothing while unset. */
  for (int i = 0; json_is_object(o) && i < TIMING_NOPTS; i++) {
    const timing_field *f = &timing_fields[i];
    json_t *v = json_object_get(o, f->name);
    if (!f->identity || !v || json_is_false(v) || (json_is_integer(v) && !json_integer_value(v)))
      continue;
    if (json_is_true(v)) put(buf, len, &off, "%s%s", off ? " " : "", f->name);
    else if (json_is_integer(v))
      put(buf, len, &off, "%s%s=%lld", off ? " " : "", f->name, (long long)json_integer_value(v));
  }
  json_decref(o);
  if (!off) snprintf(buf, len, "%s", timing_json && *timing_json ? timing_json : "-");
}

static void put_knob(char *buf, size_t len, size_t *off, const char *name, json_t *v) {
  if (json_is_integer(v))
    put(buf, len, off, "%s%s=%lld", *off ? " " : "", name, (long long)json_integer_value(v));
}

void cli_fmt_config(char *buf, size_t len, const char *config_json, const task_spec *t) {
  json_t *o = config_json ? json_loads(config_json, 0, NULL) : NULL;
  size_t off = 0;
  buf[0] = 0;
  if (!json_is_object(o)) {
    snprintf(buf, len, "%s", config_json ? config_json : "-");
    json_decref(o);
    return;
  }
  /* A stored knob the spec does not have (another version) still shows. */
  for (size_t i = 0; t && i < t->nknobs; i++) {
    put_knob(buf, len, &off, t->knobs[i].name, json_object_get(o, t->knobs[i].name));
    json_object_del(o, t->knobs[i].name);
  }
  const char *name;
  json_t *v;
  json_object_foreach(o, name, v) put_knob(buf, len, &off, name, v);
  json_decref(o);
  if (!off) snprintf(buf, len, "(no knobs)");
}
