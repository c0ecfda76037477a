#include "common/text.h"

#include <stdlib.h>
#include <string.h>

#include "tests/test.h"

TEST(clean_keeps_newlines_and_replaces_control_bytes) {
  char *s = text_clean("line 1\nline\t2\x01\x1b[2J\x7f", 100);
  ASSERT_NOT_NULL(s);
  ASSERT_EQ_STR(s, "line 1\nline\t2??[2J?");
  free(s);
}

TEST(clean_replaces_invalid_utf8_and_keeps_valid) {
  char *s = text_clean("caf\xc3\xa9 \xff\xfe \xe2\x82", 100);
  ASSERT_NOT_NULL(s);
  ASSERT_EQ_STR(s, "caf\xc3\xa9 ?? ??");
  free(s);
}

TEST(clean_cuts_at_the_limit_and_says_so) {
  size_t n = 12u << 20;
  char *big = malloc(n + 1);
  ASSERT_NOT_NULL(big);
  for (size_t i = 0; i < n; i++) big[i] = (char)(1 + i % 31);
  big[n] = 0;
  char *s = text_clean(big, 4096);
  ASSERT_NOT_NULL(s);
  ASSERT_EQ_INT(strlen(s), 4096 + strlen(" [cut]"));
  for (size_t i = 0; i < 4096; i++)
    if (s[i] != '?' && s[i] != '\n' && s[i] != '\t') TEST_FAIL("byte %zu is 0x%02x", i, s[i]);
  ASSERT_CONTAINS(s, " [cut]");
  free(s);
  free(big);
  /* a multi-byte sequence split by the limit is not kept half */
  s = text_clean("ab\xc3\xa9", 3);
  ASSERT_EQ_STR(s, "ab? [cut]");
  free(s);
}

TEST(utf8_len_reads_no_further_than_allowed) {
  const unsigned char euro[] = {0xe2, 0x82, 0xac, 0};
  ASSERT_EQ_INT(text_utf8_len(euro, 3), 3);
  ASSERT_EQ_INT(text_utf8_len(euro, 2), 0);
  const unsigned char overlong[] = {0xc0, 0x80, 0};
  ASSERT_EQ_INT(text_utf8_len(overlong, 2), 0);
  const unsigned char surrogate[] = {0xed, 0xa0, 0x80, 0};
  ASSERT_EQ_INT(text_utf8_len(surrogate, 3), 0);
}

TEST_LIST(TEST_ENTRY(clean_keeps_newlines_and_replaces_control_bytes),
          TEST_ENTRY(clean_replaces_invalid_utf8_and_keeps_valid),
          TEST_ENTRY(clean_cuts_at_the_limit_and_says_so),
          TEST_ENTRY(utf8_len_reads_no_further_than_allowed))
