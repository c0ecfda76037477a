#include "common/login.h"

#include <string.h>

void login_start(login *l, const char *token, const char *role, const char *name,
                 Ktune__Hello *hello) {
  memset(l, 0, sizeof(*l));
  l->token = token;
  l->role = role;
  l->name = name;
  if (!token) return;
  auth_nonce(l->nonce);
  hello->nonce.data = l->nonce;
  hello->nonce.len = AUTH_NONCE;
}

int login_answer(login *l, const Ktune__Challenge *ch, Ktune__Auth *out) {
  if (!l->token || ch->nonce.len != AUTH_NONCE) return -1;
  memcpy(l->tracker_nonce, ch->nonce.data, AUTH_NONCE);
  l->challenged = 1;
  auth_peer_mac(l->token, l->nonce, l->tracker_nonce, l->role, l->name, l->mac);
  ktune__auth__init(out);
  out->mac.data = l->mac;
  out->mac.len = AUTH_MAC;
  return 0;
}

int login_welcome(login *l, const Ktune__Welcome *w, auth_stream *mac) {
  if (!l->token) return 0;
  uint8_t want[AUTH_MAC];
  if (!l->challenged || w->proof.len != AUTH_MAC) return -1;
  auth_tracker_proof(l->token, l->nonce, l->tracker_nonce, want);
  if (!auth_equal(want, w->proof.data, AUTH_MAC)) return -1;
  auth_session_key(l->token, l->nonce, l->tracker_nonce, want);
  auth_stream_start(mac, want, 0);
  memset(want, 0, sizeof(want));
  return 0;
}
