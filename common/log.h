/* Logging to stderr: "2026-11-28T01:02:03.456Z tracker info: text". One
 * call is one line: control bytes in the text (a newline in a peer's name
 * or a compiler error) are replaced, so nobody can forge a log line. */
#ifndef KTUNE_LOG_H
#define KTUNE_LOG_H

#include <stdarg.h>

enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Debug lines show only when KTUNE_DEBUG is set in the environment. */
void log_msg(int level, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(who, ...) log_msg(LOG_DEBUG, who, __VA_ARGS__)
#define log_info(who, ...) log_msg(LOG_INFO, who, __VA_ARGS__)
#define log_warn(who, ...) log_msg(LOG_WARN, who, __VA_ARGS__)
#define log_error(who, ...) log_msg(LOG_ERROR, who, __VA_ARGS__)

#endif
