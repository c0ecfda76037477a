/* The dialling side of a login, the same for agents and the CLI: a fresh
 * nonce in Hello when it holds a token, the answer to the tracker's
 * Challenge, and the check of the tracker's proof in Welcome, which also
 * starts frame authentication (docs/SECURITY.md). */
#ifndef KTUNE_LOGIN_H
#define KTUNE_LOGIN_H

#include <stdint.h>

#include "common/auth.h"
#include "proto/ktune.pb-c.h"

typedef struct {
  const char *token;       /* NULL: logging in without one */
  const char *role, *name; /* what the proof covers */
  uint8_t nonce[AUTH_NONCE], tracker_nonce[AUTH_NONCE];
  uint8_t mac[AUTH_MAC];   /* the answer, which Auth points at */
  int challenged;
} login;

/* Starts a login: with a token, a fresh nonce goes into the Hello. The
 * strings must outlive the login. */
void login_start(login *l, const char *token, const char *role, const char *name,
                 Ktune__Hello *hello);

/* Answers a Challenge into out (which points into l). -1 when there is no
 * token to answer with or the challenge is malformed. */
int login_answer(login *l, const Ktune__Challenge *ch, Ktune__Auth *out);

/* A Welcome arrived: without a token, 0. With one, 0 when the tracker
 * proved it holds the same token, and frame authentication starts on mac;
 * -1 when it did not (the peer must not work for it). */
int login_welcome(login *l, const Ktune__Welcome *w, auth_stream *mac);

#endif
