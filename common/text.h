/* Text from the network or from untrusted code: compiler diagnostics, a
 * kernel's error, an agent's report. */
#ifndef KTUNE_TEXT_H
#define KTUNE_TEXT_H

#include <stddef.h>

/* Length of the valid UTF-8 sequence at p, reading at most n bytes (a NUL
 * ends a sequence too); 0 when there is none. */
size_t text_utf8_len(const unsigned char *p, size_t n);

/* A copy safe to store and show: at most max bytes of the input, valid
 * UTF-8, control bytes other than newline and tab replaced by '?', and
 * " [cut]" after a cut. NULL on no memory. Caller frees. */
char *text_clean(const char *in, size_t max);

#endif
