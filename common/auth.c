#include "common/auth.h"

#include <errno.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int auth_init(void) { return sodium_init() < 0 ? -1 : 0; }

void auth_nonce(uint8_t out[AUTH_NONCE]) { randombytes_buf(out, AUTH_NONCE); }

int auth_equal(const uint8_t *a, const uint8_t *b, size_t n) { return sodium_memcmp(a, b, n) == 0; }

/* HMAC-SHA256(token, label || parts...): every value the two sides agree
 * on goes in with its length, so no two different inputs collide. */
static void mac(const char *token, const char *label, const void *const parts[],
                const size_t lens[], size_t nparts, uint8_t out[AUTH_MAC]) {
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, (const unsigned char *)token, strlen(token));
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)label, strlen(label) + 1);
  for (size_t i = 0; i < nparts; i++) {
    uint8_t len[4] = {(uint8_t)(lens[i] >> 24), (uint8_t)(lens[i] >> 16), (uint8_t)(lens[i] >> 8),
                      (uint8_t)lens[i]};
    crypto_auth_hmacsha256_update(&st, len, 4);
    crypto_auth_hmacsha256_update(&st, parts[i], lens[i]);
  }
  crypto_auth_hmacsha256_final(&st, out);
}

void auth_peer_mac(const char *token, const uint8_t *pn, const uint8_t *tn, const char *role,
                   const char *name, uint8_t out[AUTH_MAC]) {
  const void *parts[] = {pn, tn, role, name};
  size_t lens[] = {AUTH_NONCE, AUTH_NONCE, strlen(role), strlen(name)};
  mac(token, "ktune-peer-proof", parts, lens, 4, out);
}

void auth_tracker_proof(const char *token, const uint8_t *pn, const uint8_t *tn,
                        uint8_t out[AUTH_MAC]) {
  const void *parts[] = {pn, tn};
  size_t lens[] = {AUTH_NONCE, AUTH_NONCE};
  mac(token, "ktune-tracker-proof", parts, lens, 2, out);
}

void auth_session_key(const char *token, const uint8_t *pn, const uint8_t *tn,
                      uint8_t out[AUTH_MAC]) {
  const void *parts[] = {pn, tn};
  size_t lens[] = {AUTH_NONCE, AUTH_NONCE};
  mac(token, "ktune-session-key", parts, lens, 2, out);
}

void auth_stream_start(auth_stream *s, const uint8_t key[AUTH_MAC], int is_tracker) {
  memset(s, 0, sizeof(*s));
  memcpy(s->key, key, AUTH_MAC);
  s->send_dir = is_tracker ? 'T' : 'P';
  s->recv_dir = is_tracker ? 'P' : 'T';
  s->on = 1;
}

static void frame_mac(const uint8_t key[AUTH_MAC], uint8_t dir, uint64_t seq, const uint8_t *p,
                      size_t len, uint8_t out[AUTH_MAC]) {
  uint8_t hdr[9] = {dir};
  for (int i = 0; i < 8; i++) hdr[1 + i] = (uint8_t)(seq >> (56 - 8 * i));
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, AUTH_MAC);
  crypto_auth_hmacsha256_update(&st, hdr, sizeof(hdr));
  crypto_auth_hmacsha256_update(&st, p, len);
  crypto_auth_hmacsha256_final(&st, out);
}

void auth_tag(auth_stream *s, const uint8_t *payload, size_t len, uint8_t out[AUTH_MAC]) {
  frame_mac(s->key, s->send_dir, s->send_seq++, payload, len, out);
}

int auth_check(auth_stream *s, const uint8_t *payload, size_t len, const uint8_t tag[AUTH_MAC]) {
  uint8_t want[AUTH_MAC];
  frame_mac(s->key, s->recv_dir, s->recv_seq, payload, len, want);
  if (!auth_equal(want, tag, AUTH_MAC)) return -1;
  s->recv_seq++;
  return 0;
}

static const char *const roles[] = {"admin", "client", "builder", "runner"};

/* The optional NAME=N fields of a person's line, N from 1 to max. */
static const struct {
  const char *name;
  size_t offset;
  uint32_t max;
} fields[] = {
    {"share", offsetof(auth_entry, share), 1000},
    {"sessions", offsetof(auth_entry, sessions), 1000000},
    {"queued", offsetof(auth_entry, queued), 1000000000},
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

int auth_parse_fields(char *rest, auth_entry *e, int *any, char *why, size_t len) {
  char *save = NULL;
  *any = 0;
  for (char *w = strtok_r(rest, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
    const char *eq = strchr(w, '=');
    size_t i = 0;
    while (i < NFIELDS && !(eq && (size_t)(eq - w) == strlen(fields[i].name) &&
                            strncmp(w, fields[i].name, (size_t)(eq - w)) == 0))
      i++;
    if (i == NFIELDS) {
      snprintf(why, len, "'%.40s' is not a field: a line is ROLE NAME TOKEN [share=N] "
               "[sessions=N] [queued=N]", w);
      return -1;
    }
    uint32_t *dst = (uint32_t *)((char *)e + fields[i].offset);
    char *end;
    errno = 0;
    unsigned long long v = strtoull(eq + 1, &end, 10);
    if (eq[1] < '0' || eq[1] > '9' || *end || errno || v < 1 || v > fields[i].max) {
      snprintf(why, len, "'%.40s': %s takes a whole number from 1 to %u", w, fields[i].name,
               fields[i].max);
      return -1;
    }
    if (*dst) {
      snprintf(why, len, "%s appears twice", fields[i].name);
      return -1;
    }
    *dst = (uint32_t)v;
    *any = 1;
  }
  return 0;
}

int auth_tokens_load(const char *path, auth_tokens *out, char *err, size_t errlen) {
  memset(out, 0, sizeof(*out));
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, errlen, "cannot read token file %s: %s", path, strerror(errno));
    return -1;
  }
  struct stat stt;
  if (fstat(fileno(f), &stt) == 0 && (stt.st_mode & 077)) {
    snprintf(err, errlen, "token file %s is readable by other users (mode %03o): chmod 600 it",
             path, (unsigned)(stt.st_mode & 0777));
    fclose(f);
    return -1;
  }
  char line[1024];
  int lineno = 0, rc = 0;
  while (rc == 0 && fgets(line, sizeof(line), f)) {
    lineno++;
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    char role[32], name[128], token[AUTH_TOKEN_MAX + 2], why[160];
    int used = 0, any = 0;
    int n = sscanf(line, "%31s %127s %257s%n", role, name, token, &used);
    if (n <= 0) continue;
    int known = 0;
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) known |= !strcmp(role, roles[i]);
    auth_entry extra = {0};
    if (n != 3) {
      snprintf(err, errlen, "%s:%d: expected ROLE NAME TOKEN", path, lineno);
      rc = -1;
    } else if (!known) {
      snprintf(err, errlen, "%s:%d: role '%s' is not admin, client, builder or runner", path,
               lineno, role);
      rc = -1;
    } else if (strlen(name) >= sizeof(out->e[0].name)) {
      snprintf(err, errlen, "%s:%d: name longer than %zu characters", path, lineno,
               sizeof(out->e[0].name) - 1);
      rc = -1;
    } else if (strlen(token) < AUTH_TOKEN_MIN || strlen(token) >= AUTH_TOKEN_MAX) {
      snprintf(err, errlen, "%s:%d: token for %s must be %d to %d characters", path, lineno, name,
               AUTH_TOKEN_MIN, AUTH_TOKEN_MAX - 1);
      rc = -1;
    } else if (auth_parse_fields(line + used, &extra, &any, why, sizeof(why)) < 0) {
      snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
      rc = -1;
    } else if (any && strcmp(role, "admin") != 0 && strcmp(role, "client") != 0) {
      snprintf(err, errlen, "%s:%d: share=, sessions= and queued= are for admin and client "
               "lines, not %s", path, lineno, role);
      rc = -1;
    } else if (auth_tokens_find(out, name)) {
      snprintf(err, errlen, "%s:%d: name %s appears twice", path, lineno, name);
      rc = -1;
    } else {
      auth_entry *ne = realloc(out->e, (out->n + 1) * sizeof(*ne));
      if (!ne) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
        break;
      }
      out->e = ne;
      auth_entry *e = &out->e[out->n++];
      memset(e, 0, sizeof(*e));
      snprintf(e->role, sizeof(e->role), "%s", role);
      snprintf(e->name, sizeof(e->name), "%s", name);
      snprintf(e->token, sizeof(e->token), "%s", token);
      e->share = extra.share;
      e->sessions = extra.sessions;
      e->queued = extra.queued;
    }
  }
  fclose(f);
  sodium_memzero(line, sizeof(line));
  if (rc == 0 && out->n == 0) {
    snprintf(err, errlen, "token file %s has no tokens", path);
    rc = -1;
  }
  if (rc < 0) auth_tokens_free(out);
  return rc;
}

const auth_entry *auth_tokens_find(const auth_tokens *t, const char *name) {
  for (size_t i = 0; i < t->n; i++)
    if (strcmp(t->e[i].name, name) == 0) return &t->e[i];
  return NULL;
}

void auth_tokens_free(auth_tokens *t) {
  if (t->e) sodium_memzero(t->e, t->n * sizeof(*t->e));
  free(t->e);
  memset(t, 0, sizeof(*t));
}

const char *auth_token_file(const char *file) {
  if (file) return file;
  const char *env = getenv("KTUNE_TOKEN");
  if (env && *env) return NULL;
  file = getenv("KTUNE_TOKEN_FILE");
  return file && *file ? file : NULL;
}

int auth_file_exposed(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH));
}

int auth_read_token(const char *file, char *buf, size_t len, char *err, size_t errlen) {
  const char *env = getenv("KTUNE_TOKEN");
  file = auth_token_file(file);
  if (file) {
    FILE *f = fopen(file, "r");
    if (!f) {
      snprintf(err, errlen, "cannot read token file %s: %s", file, strerror(errno));
      return -1;
    }
    int ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    if (!ok) {
      snprintf(err, errlen, "token file %s is empty", file);
      return -1;
    }
  } else {
    if (!env || !*env) return 0;
    snprintf(buf, len, "%s", env);
  }
  buf[strcspn(buf, "\r\n")] = 0;
  if (strlen(buf) < AUTH_TOKEN_MIN) {
    /* Say where it came from: with three sources, "the token" is a riddle. */
    if (file)
      snprintf(err, errlen, "the token in file %s must be at least %d characters", file,
               AUTH_TOKEN_MIN);
    else
      snprintf(err, errlen, "the token in KTUNE_TOKEN must be at least %d characters",
               AUTH_TOKEN_MIN);
    return -1;
  }
  return 1;
}
