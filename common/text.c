#include "common/text.h"

#include <stdlib.h>
#include <string.h>

size_t text_utf8_len(const unsigned char *p, size_t n) {
  unsigned c = p[0];
  size_t len;
  unsigned min;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) len = 2, min = 0x80;
  else if (c >= 0xe0 && c <= 0xef) len = 3, min = 0x800;
  else if (c >= 0xf0 && c <= 0xf4) len = 4, min = 0x10000;
  else return 0;
  if (len > n) return 0;
  unsigned cp = c & (0xff >> (len + 1));
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xc0) != 0x80) return 0;
    cp = cp << 6 | (p[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

char *text_clean(const char *in, size_t max) {
  static const char cut[] = " [cut]";
  if (!in) in = "";
  size_t n = strnlen(in, max + 1);
  int over = n > max;
  if (over) n = max;
  char *out = malloc(n + sizeof(cut));
  if (!out) return NULL;
  size_t o = 0;
  const unsigned char *p = (const unsigned char *)in;
  for (size_t i = 0; i < n;) {
    size_t l = text_utf8_len(p + i, n - i);
    if (l == 1 && (p[i] < 0x20 || p[i] == 0x7f) && p[i] != '\n' && p[i] != '\t') l = 0;
    if (l == 0) {
      out[o++] = '?';
      i++;
      continue;
    }
    memcpy(out + o, p + i, l);
    o += l;
    i += l;
  }
  if (over) {
    memcpy(out + o, cut, sizeof(cut) - 1);
    o += sizeof(cut) - 1;
  }
  out[o] = 0;
  return out;
}
