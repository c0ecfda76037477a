/* Trial and kernel identities (docs/HISTORY.md, "Identity").
 *
 * Every field goes into the hash with a length or count in front of it, so
 * no two different specs or trials hash the same bytes by concatenation
 * ("ab"+"c" vs "a"+"bc"), and each digest starts with its own domain tag so
 * a kernel digest can never equal a trial digest. Integers are 8 bytes
 * little-endian and doubles their IEEE 754 bits, so the digest does not
 * depend on the machine that computed it. Changing what goes in, or how,
 * changes every digest: bump the tag's version when doing so. */
#include "common/identity.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDENT_KERNEL_TAG "ktune kernel v1"
#define IDENT_TRIAL_TAG "ktune trial v1"

static void put_u64(crypto_hash_sha256_state *st, uint64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
  crypto_hash_sha256_update(st, b, sizeof(b));
}

static void put_str(crypto_hash_sha256_state *st, const char *s) {
  size_t n = strlen(s);
  put_u64(st, n);
  crypto_hash_sha256_update(st, (const unsigned char *)s, n);
}

static void put_f64(crypto_hash_sha256_state *st, double v) {
  /* -0.0 and 0.0 are the same tolerance. */
  if (v == 0) v = 0;
  uint64_t bits;
  memcpy(&bits, &v, sizeof(bits));
  put_u64(st, bits);
}

static int finish(crypto_hash_sha256_state *st, char out[IDENT_HEX]) {
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(st, h);
  sodium_bin2hex(out, IDENT_HEX, h, sizeof(h));
  return 0;
}

static int start(crypto_hash_sha256_state *st, const char *tag) {
  /* Idempotent; the hash itself needs no state, but libsodium asks that
   * every program calls it before anything else. */
  if (sodium_init() < 0) return -ENOMEM;
  crypto_hash_sha256_init(st);
  put_str(st, tag);
  return 0;
}

static int spec_complete(const task_spec *t) {
  /* The reference is optional (docs/TASKS.md): without it nothing is checked. */
  if (!t || !t->source || !t->entry || !t->flops) return 0;
  if ((t->nargs && !t->args) || (t->nconsts && !t->consts)) return 0;
  for (size_t i = 0; i < t->nargs; i++)
    if (!t->args[i].name || !t->args[i].type || !t->args[i].count) return 0;
  for (size_t i = 0; i < t->nconsts; i++)
    if (!t->consts[i].name) return 0;
  return 1;
}

int ident_kernel(const task_spec *t, char out[IDENT_HEX]) {
  if (!out) return -EINVAL;
  out[0] = '\0';
  if (!spec_complete(t)) return -EINVAL;
  crypto_hash_sha256_state st;
  int rc = start(&st, IDENT_KERNEL_TAG);
  if (rc < 0) return rc;
  put_str(&st, t->source);
  put_str(&st, t->entry);
  put_str(&st, t->reference ? t->reference : "");
  put_u64(&st, t->nargs);
  for (size_t i = 0; i < t->nargs; i++) {
    put_str(&st, t->args[i].name);
    put_str(&st, t->args[i].type);
    put_str(&st, t->args[i].count);
    put_u64(&st, t->args[i].output != 0);
  }
  put_u64(&st, t->nconsts);
  for (size_t i = 0; i < t->nconsts; i++) {
    put_str(&st, t->consts[i].name);
    put_u64(&st, (uint64_t)t->consts[i].value);
  }
  put_str(&st, t->flops);
  put_f64(&st, t->rtol);
  put_f64(&st, t->atol);
  /* The history stores GB/s from it. Hashed only when given, so the
   * digests of specs without it stay what they were. */
  if (t->bytes) {
    put_str(&st, "bytes");
    put_str(&st, t->bytes);
  }
  return finish(&st, out);
}

int ident_canonical_object(const char *text, char **out, char *err, size_t errlen) {
  *out = NULL;
  if (!text) {
    snprintf(err, errlen, "is missing");
    return -EINVAL;
  }
  json_error_t je;
  json_t *j = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
  if (!j) {
    snprintf(err, errlen, "is not valid JSON (%s): %.100s", je.text, text);
    return -EINVAL;
  }
  int rc = 0;
  if (!json_is_object(j)) {
    snprintf(err, errlen, "must be a JSON object, got: %.100s", text);
    rc = -EINVAL;
  } else if (!(*out = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS))) {
    snprintf(err, errlen, "out of memory");
    rc = -ENOMEM;
  }
  json_decref(j);
  return rc;
}

int ident_is_digest(const char *s) {
  if (!s || strlen(s) != IDENT_HEX - 1) return 0;
  for (const char *c = s; *c; c++)
    if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'))) return 0;
  return 1;
}

int ident_trial_canonical(const char *kernel_hex, const char *config_json, const char *compiler,
                          const char *key, const char *timing_json, int checked,
                          char out[IDENT_HEX]) {
  if (!out) return -EINVAL;
  out[0] = '\0';
  if (!ident_is_digest(kernel_hex) || !config_json || !compiler || !key) return -EINVAL;
  crypto_hash_sha256_state st;
  int rc = start(&st, IDENT_TRIAL_TAG);
  if (rc == 0) {
    put_str(&st, kernel_hex);
    put_str(&st, config_json);
    put_str(&st, compiler);
    put_str(&st, key);
    put_str(&st, timing_json ? timing_json : "{}");
    put_u64(&st, checked != 0);
    rc = finish(&st, out);
  }
  return rc;
}

int ident_trial(const char *kernel_hex, const char *config_json, const char *compiler,
                const char *key, const char *timing_json, int checked, char out[IDENT_HEX]) {
  if (!out) return -EINVAL;
  out[0] = '\0';
  if (!ident_is_digest(kernel_hex) || !compiler || !key) return -EINVAL;
  char err[160], *config = NULL, *timing = NULL;
  int rc = ident_canonical_object(config_json, &config, err, sizeof(err));
  if (rc == 0) rc = ident_canonical_object(timing_json ? timing_json : "{}", &timing, err,
                                           sizeof(err));
  if (rc == 0) rc = ident_trial_canonical(kernel_hex, config, compiler, key, timing, checked, out);
  free(config);
  free(timing);
  return rc;
}
