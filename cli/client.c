#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/addr.h"
#include "common/agent.h"
#include "common/frame.h"
#include "common/wire.h"

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const char *cli_tracker(const char *opt) {
  if (opt && *opt) return opt;
  const char *e = getenv("KTUNE_TRACKER");
  return e && *e ? e : NULL;
}

const char *cli_tracker_or_local(const char *opt) {
  const char *t = cli_tracker(opt);
  return t ? t : "127.0.0.1:9290";
}

int client_send(client *c, const Ktune__Envelope *env) {
  c->last_tx_ms = mono_ms();
  return wire_write_fd_mac(c->fd, env, &c->mac);
}

static void heartbeat(client *c) {
  Ktune__Heartbeat hb = KTUNE__HEARTBEAT__INIT;
  hb.sent_ms = mono_ms();
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_HEARTBEAT;
  env.heartbeat = &hb;
  client_send(c, &env);
}

Ktune__Envelope *client_recv(client *c, int timeout_ms, char *err, size_t errlen) {
  uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : mono_ms() + (uint64_t)timeout_ms;
  for (;;) {
    uint64_t now = mono_ms();
    if (now >= deadline) {
      snprintf(err, errlen, "tracker %s did not answer in time", c->addr);
      return NULL;
    }
    /* A live tracker sends heartbeats even when it has nothing to say. */
    if (c->silence_ms && now - c->last_rx_ms >= c->silence_ms) {
      snprintf(err, errlen, "the tracker at %s sent nothing, not even a heartbeat, for %.1f s",
               c->addr, (now - c->last_rx_ms) / 1e3);
      return NULL;
    }
    uint32_t hb = c->heartbeat_ms ? c->heartbeat_ms : 1000;
    if (now - c->last_tx_ms >= hb) heartbeat(c);
    uint64_t wait = hb - (now - c->last_tx_ms);
    if (deadline - now < wait) wait = deadline - now;
    struct pollfd pfd = {c->fd, POLLIN, 0};
    int rc = poll(&pfd, 1, (int)wait);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) {
      snprintf(err, errlen, "poll: %s", strerror(errno));
      return NULL;
    }
    if (rc == 0) continue;
    c->last_rx_ms = mono_ms();
    int forged;
    Ktune__Envelope *env = wire_read_fd_mac(c->fd, FRAME_MAX_DEFAULT, &c->mac, &forged);
    if (!env) {
      snprintf(err, errlen, forged ? "a message from the tracker at %s failed authentication"
                                   : "the tracker at %s closed the connection", c->addr);
      return NULL;
    }
    if (env->msg_case == KTUNE__ENVELOPE__MSG_HEARTBEAT) {
      wire_free(env);
      continue;
    }
    if (env->msg_case == KTUNE__ENVELOPE__MSG_ERROR) {
      snprintf(err, errlen, "%s", env->error->message);
      wire_free(env);
      return NULL;
    }
    return env;
  }
}

int client_connect(client *c, const char *tracker, char *err, size_t errlen) {
  memset(c, 0, sizeof(*c));
  c->fd = -1;
  c->addr = tracker;
  struct sockaddr_storage ss;
  if (addr_resolve(tracker, &ss, err, errlen) < 0) return -1;
  c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  socklen_t len = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&ss, len) < 0) {
    snprintf(err, errlen, "cannot reach the tracker at %s: %s (is ktune-tracker running there?)",
             tracker, strerror(errno));
    client_close(c);
    return -1;
  }
  /* The session owner: the login name, so that the same person can find
   * and cancel their sessions from another shell. */
  char name[128] = "user";
  const char *user = getenv("USER");
  struct passwd *pw = getpwuid(getuid());
  if (user && *user) snprintf(name, sizeof(name), "%s", user);
  else if (pw) snprintf(name, sizeof(name), "%s", pw->pw_name);
  char token[AUTH_TOKEN_MAX];
  int have = auth_read_token(NULL, token, sizeof(token), err, errlen);
  if (have < 0 || (have && auth_init() < 0)) {
    client_close(c);
    return -1;
  }
  /* With a token the name is the one the token was issued to. */
  const char *as = getenv("KTUNE_USER");
  if (as && *as) snprintf(name, sizeof(name), "%s", as);
  uint8_t nonce[AUTH_NONCE], tnonce[AUTH_NONCE];
  Ktune__Hello h = KTUNE__HELLO__INIT;
  h.version = WIRE_PROTOCOL_VERSION;
  h.role = KTUNE__ROLE__ROLE_CLIENT;
  h.name = name;
  if (have) {
    auth_nonce(nonce);
    h.nonce.data = nonce;
    h.nonce.len = AUTH_NONCE;
  }
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = KTUNE__ENVELOPE__MSG_HELLO;
  env.hello = &h;
  if (client_send(c, &env) < 0) {
    snprintf(err, errlen, "cannot talk to the tracker at %s: %s", tracker, strerror(errno));
    client_close(c);
    return -1;
  }
  Ktune__Envelope *w = client_recv(c, 10000, err, errlen);
  if (w && w->msg_case == KTUNE__ENVELOPE__MSG_CHALLENGE && have &&
      w->challenge->nonce.len == AUTH_NONCE) {
    memcpy(tnonce, w->challenge->nonce.data, AUTH_NONCE);
    wire_free(w);
    uint8_t m[AUTH_MAC];
    auth_peer_mac(token, nonce, tnonce, "client", name, m);
    Ktune__Auth au = KTUNE__AUTH__INIT;
    au.mac.data = m;
    au.mac.len = AUTH_MAC;
    env.msg_case = KTUNE__ENVELOPE__MSG_AUTH;
    env.auth = &au;
    w = client_send(c, &env) < 0 ? NULL : client_recv(c, 15000, err, errlen);
    uint8_t want[AUTH_MAC];
    auth_tracker_proof(token, nonce, tnonce, want);
    if (w && w->msg_case == KTUNE__ENVELOPE__MSG_WELCOME &&
        (w->welcome->proof.len != AUTH_MAC || !auth_equal(want, w->welcome->proof.data, AUTH_MAC))) {
      snprintf(err, errlen, "the tracker at %s did not prove it holds your token", tracker);
      wire_free(w);
      w = NULL;
    } else if (w && w->msg_case == KTUNE__ENVELOPE__MSG_WELCOME) {
      auth_session_key(token, nonce, tnonce, want);
      auth_stream_start(&c->mac, want, 0);
    }
  } else if (w && w->msg_case == KTUNE__ENVELOPE__MSG_CHALLENGE) {
    snprintf(err, errlen, "the tracker at %s requires a token: set KTUNE_TOKEN or KTUNE_TOKEN_FILE",
             tracker);
    wire_free(w);
    w = NULL;
  }
  memset(token, 0, sizeof(token));
  if (!w) {
    client_close(c);
    return -1;
  }
  if (w->msg_case != KTUNE__ENVELOPE__MSG_WELCOME) {
    snprintf(err, errlen, "the tracker at %s answered hello with %s", tracker, wire_msg_name(w));
    wire_free(w);
    client_close(c);
    return -1;
  }
  c->heartbeat_ms = w->welcome->heartbeat_ms;
  c->silence_ms = w->welcome->timeout_ms;
  wire_free(w);
  return 0;
}

void client_close(client *c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
}

int cli_parse_define(const char *s, char *name, size_t namelen, int64_t *value) {
  const char *eq = strchr(s, '=');
  if (!eq || eq == s || (size_t)(eq - s) >= namelen) return -1;
  char *end;
  errno = 0;
  long long v = strtoll(eq + 1, &end, 0);
  if (!eq[1] || *end || errno) return -1;
  memcpy(name, s, (size_t)(eq - s));
  name[eq - s] = 0;
  *value = v;
  return 0;
}
