#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

void log_msg(int level, const char *who, const char *fmt, ...) {
  static const char *names[] = {"debug", "info", "warn", "error"};
  if (level == LOG_DEBUG && !getenv("KTUNE_DEBUG")) return;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char line[1024];
  int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                   tm.tm_sec, ts.tv_nsec / 1000000, who, names[level & 3]);
  va_list ap;
  va_start(ap, fmt);
  if (n > 0 && (size_t)n < sizeof(line)) vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
  va_end(ap);
  /* Names and errors come from the network: a control byte in them must
   * not start a forged line or move the terminal's cursor. */
  for (char *c = line; *c; c++)
    if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = (*c == '\n' || *c == '\r') ? '|' : '?';
  /* One write per line so that lines of several processes do not interleave. */
  fprintf(stderr, "%s\n", line);
}
