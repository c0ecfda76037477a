/* Tokens and message authentication (docs/SECURITY.md). No token crosses
 * the wire: each side proves it holds the token with an HMAC-SHA256 over
 * fresh nonces from both sides, and every later frame carries an HMAC
 * under a key derived from the same exchange, with a sequence number, so a
 * connection cannot be hijacked, altered or replayed after login. */
#ifndef KTUNE_AUTH_H
#define KTUNE_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_NONCE 32
#define AUTH_MAC 32
#define AUTH_TOKEN_MAX 256
#define AUTH_TOKEN_MIN 16

typedef struct {
  char role[32];   /* admin, client, builder, runner */
  char name[64];
  char token[AUTH_TOKEN_MAX];
  /* People only (admin, client); 0 where the line does not say. */
  uint32_t share;    /* share=N: weight of their part of a key's runners */
  uint32_t sessions; /* sessions=N: unfinished sessions at once */
  uint32_t queued;   /* queued=N: trials not yet recorded */
} auth_entry;

typedef struct {
  auth_entry *e;
  size_t n;
} auth_tokens;

/* Reads a token file: one `ROLE NAME TOKEN [share=N] [sessions=N]
 * [queued=N]` per line (the fields for admin and client lines only),
 * `#` comments. */
int auth_tokens_load(const char *path, auth_tokens *out, char *err, size_t errlen);
/* A person's `share=N sessions=N queued=N` words (any of them, each at
 * most once) into e; *any says whether there was one; -1 with why. rest
 * is cut into words in place. */
int auth_parse_fields(char *rest, auth_entry *e, int *any, char *why, size_t len);
const auth_entry *auth_tokens_find(const auth_tokens *t, const char *name);
void auth_tokens_free(auth_tokens *t);

/* An agent's or the CLI's token: the file if given, else KTUNE_TOKEN, else
 * the file KTUNE_TOKEN_FILE names. Never a command-line argument, which
 * other users could read. Returns 1 with the token in buf, 0 when there is
 * none, -1 on error. */
int auth_read_token(const char *file, char *buf, size_t len, char *err, size_t errlen);
/* The file auth_read_token reads: file, else KTUNE_TOKEN_FILE unless
 * KTUNE_TOKEN is set; NULL when the token is not in a file. */
const char *auth_token_file(const char *file);
/* 1 when users other than the owner can read path (it should be mode 600). */
int auth_file_exposed(const char *path);

int auth_init(void);
void auth_nonce(uint8_t out[AUTH_NONCE]);
/* The peer's proof, the tracker's proof and the session key. */
void auth_peer_mac(const char *token, const uint8_t *peer_nonce, const uint8_t *tracker_nonce,
                   const char *role, const char *name, uint8_t out[AUTH_MAC]);
void auth_tracker_proof(const char *token, const uint8_t *peer_nonce,
                        const uint8_t *tracker_nonce, uint8_t out[AUTH_MAC]);
void auth_session_key(const char *token, const uint8_t *peer_nonce, const uint8_t *tracker_nonce,
                      uint8_t out[AUTH_MAC]);
/* Constant time; 1 when equal. */
int auth_equal(const uint8_t *a, const uint8_t *b, size_t n);

/* Per-connection frame authentication. Each direction has its own
 * counter; a frame's tag covers the direction, its number and its bytes. */
typedef struct {
  int on;
  uint8_t key[AUTH_MAC];
  uint64_t send_seq, recv_seq;
  uint8_t send_dir, recv_dir; /* 'P' peer->tracker, 'T' tracker->peer */
} auth_stream;

void auth_stream_start(auth_stream *s, const uint8_t key[AUTH_MAC], int is_tracker);
void auth_tag(auth_stream *s, const uint8_t *payload, size_t len, uint8_t out[AUTH_MAC]);
/* 0 when the tag is right (and the counter moves on), -1 otherwise. */
int auth_check(auth_stream *s, const uint8_t *payload, size_t len, const uint8_t tag[AUTH_MAC]);

#endif
