#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
#include "common/login.h"
#include "common/wire.h"

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void cli_dial_option(cli_dial *d, int ch, const char *arg) {
  if (ch == CLI_OPT_TRACKER) d->tracker = arg;
  else if (ch == CLI_OPT_TOKEN_FILE) d->token_file = arg;
}

int cli_dial_settle(cli_dial *d, const char *cmd, const char *fallback) {
  const char *from = "--tracker";
  if (!d->tracker || !*d->tracker) {
    const char *e = getenv("KTUNE_TRACKER");
    from = "KTUNE_TRACKER";
    d->tracker = e && *e ? e : NULL;
  }
  if (!d->tracker) {
    d->tracker = fallback;
    return 0;
  }
  /* Syntax now, as a usage error; whether it resolves and answers is a
   * runtime matter for client_connect. */
  char host[256], err[512];
  int port;
  if (addr_parse(d->tracker, host, sizeof(host), &port, err, sizeof(err)) < 0) {
    fprintf(stderr, "ktune %s: %s: %s\n", cmd, from, err);
    return -1;
  }
  return 0;
}

int client_send(client *c, const Ktune__Envelope *env, char *err, size_t errlen) {
  c->last_tx_ms = mono_ms();
  if (wire_write_fd_mac(c->fd, env, &c->mac) == 0) return 0;
  c->refused = 0;
  if (err && (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN))
    snprintf(err, errlen, "the tracker at %s closed the connection", c->addr);
  else if (err)
    snprintf(err, errlen, "cannot send to the tracker at %s: %s", c->addr, strerror(errno));
  return -1;
}

Ktune__Envelope *client_ask(client *c, const Ktune__Envelope *env, int timeout_ms, char *err,
                            size_t errlen) {
  if (client_send(c, env, err, errlen) < 0) return NULL;
  return client_recv(c, timeout_ms, err, errlen);
}

static void heartbeat(client *c) {
  Ktune__Heartbeat hb = KTUNE__HEARTBEAT__INIT;
  hb.sent_ms = mono_ms();
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_HEARTBEAT, &hb);
  /* A failure shows as a closed connection on the next read. */
  client_send(c, &env, NULL, 0);
}

Ktune__Envelope *client_recv(client *c, int timeout_ms, char *err, size_t errlen) {
  return client_recv_or(c, -1, NULL, timeout_ms, err, errlen);
}

Ktune__Envelope *client_recv_or(client *c, int fd, int *ready, int timeout_ms, char *err,
                                size_t errlen) {
  c->refused = 0;
  if (ready) *ready = 0;
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
    struct pollfd pfd[2] = {{c->fd, POLLIN, 0}, {fd, POLLIN, 0}};
    int rc = poll(pfd, fd >= 0 ? 2 : 1, (int)wait);
    if (c->stop && *c->stop) {
      snprintf(err, errlen, "interrupted");
      c->interrupted = 1;
      return NULL;
    }
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) {
      snprintf(err, errlen, "poll: %s", strerror(errno));
      return NULL;
    }
    if (rc == 0) continue;
    if (!pfd[0].revents) {
      *ready = 1; /* fd, and nothing from the tracker yet */
      return NULL;
    }
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
      c->refused = 1;
      wire_free(env);
      return NULL;
    }
    return env;
  }
}

/* The token's source, for messages: with three of them, which one was
 * used is the first thing to know when a login fails. */
static void token_source(const cli_dial *d, int have, char *buf, size_t len) {
  const char *file = auth_token_file(d->token_file);
  if (!have) snprintf(buf, len, "without a token (--token-file, KTUNE_TOKEN or KTUNE_TOKEN_FILE)");
  else if (!file) snprintf(buf, len, "with the token from KTUNE_TOKEN");
  else snprintf(buf, len, "with the token from %s %s",
                d->token_file ? "--token-file" : "KTUNE_TOKEN_FILE", file);
}

/* Reads the token before dialing, so that a missing or exposed file is
 * reported whether or not the tracker answers. */
static int read_token(const cli_dial *d, char *token, size_t len, char *err, size_t errlen) {
  const char *file = auth_token_file(d->token_file);
  /* The tracker refuses a tokens file others can read; a user's token is
   * theirs to guard, so here it is a warning and the command goes on. */
  if (file && auth_file_exposed(file))
    fprintf(stderr, "ktune: warning: token file %s can be read by others: chmod 600 %s\n", file,
            file);
  int have = auth_read_token(d->token_file, token, len, err, errlen);
  if (have <= 0) return have;
  if (auth_init() < 0) {
    snprintf(err, errlen, "cannot initialise libsodium for the login");
    return -1;
  }
  return 1;
}

/* Answers the tracker's challenge and checks its proof; NULL with err
 * set on failure. */
static Ktune__Envelope *prove(client *c, login *l, Ktune__Envelope *challenge, char *err,
                              size_t errlen) {
  Ktune__Auth au;
  int bad = login_answer(l, challenge->challenge, &au);
  wire_free(challenge);
  if (bad) {
    snprintf(err, errlen, "the tracker at %s sent a malformed challenge", c->addr);
    return NULL;
  }
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_AUTH, &au);
  Ktune__Envelope *w = client_ask(c, &env, 15000, err, errlen);
  if (!w || w->msg_case != KTUNE__ENVELOPE__MSG_WELCOME) return w;
  if (login_welcome(l, w->welcome, &c->mac) < 0) {
    snprintf(err, errlen, "the tracker at %s did not prove it holds your token", c->addr);
    wire_free(w);
    return NULL;
  }
  return w;
}

int client_connect(client *c, const cli_dial *d, char *err, size_t errlen) {
  const char *tracker = d->tracker;
  memset(c, 0, sizeof(*c));
  c->fd = -1;
  c->addr = tracker;
  char token[AUTH_TOKEN_MAX];
  int have = read_token(d, token, sizeof(token), err, errlen);
  if (have < 0) return -1;
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
  /* A request is one small frame; it must not wait for an ACK (Nagle). */
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  /* The session owner: the login name, so that the same person can find
   * and cancel their sessions from another shell; with a token, the name
   * the token was issued to (KTUNE_USER). */
  char name[128] = "user";
  const char *name_from = "the login name";
  const char *user = getenv("USER"), *as = getenv("KTUNE_USER");
  struct passwd *pw;
  if (as && *as) {
    snprintf(name, sizeof(name), "%s", as);
    name_from = "KTUNE_USER";
  } else if (user && *user) {
    snprintf(name, sizeof(name), "%s", user);
  } else if ((pw = getpwuid(getuid()))) { /* reads nsswitch.conf and passwd: only when needed */
    snprintf(name, sizeof(name), "%s", pw->pw_name);
  }
  Ktune__Hello h = KTUNE__HELLO__INIT;
  h.version = WIRE_PROTOCOL_VERSION;
  h.role = KTUNE__ROLE__ROLE_CLIENT;
  h.name = name;
  login l;
  login_start(&l, have ? token : NULL, "client", name, &h);
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_HELLO, &h);
  Ktune__Envelope *w = client_ask(c, &env, 10000, err, errlen);
  if (w && w->msg_case == KTUNE__ENVELOPE__MSG_CHALLENGE && have) {
    w = prove(c, &l, w, err, errlen);
  } else if (w && w->msg_case == KTUNE__ENVELOPE__MSG_CHALLENGE) {
    snprintf(err, errlen, "the tracker at %s requires a token", tracker);
    wire_free(w);
    w = NULL;
    c->refused = 1;
  }
  memset(token, 0, sizeof(token));
  if (!w && c->refused) {
    /* The tracker's reason, and what this side sent it. */
    char src[300];
    token_source(d, have, src, sizeof(src));
    size_t n = strlen(err);
    snprintf(err + n, errlen - n, " (logged in as %s, from %s, %s)", name, name_from, src);
  }
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

int cli_parse_u64(const char *s, int base, uint64_t max, uint64_t *out) {
  /* strtoull alone would take "-1" (as 2^64-1), " 7" and "+7". */
  if (!s || *s < '0' || *s > '9') return -1;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, base);
  if (*end || errno || v > max) return -1;
  *out = v;
  return 0;
}

int cli_check_label(const char *cmd, const char *what, const char *key) {
  size_t n = strlen(key);
  int ok = n >= 1 && n <= CLI_KEY_MAX;
  for (size_t i = 0; ok && i < n; i++) ok = isgraph((unsigned char)key[i]) != 0;
  if (ok) return 0;
  /* Shown with control bytes escaped: they are the reason, and must not
   * act on the terminal. */
  char shown[4 * 80 + 8];
  size_t o = 0;
  for (size_t i = 0; i < n && o < sizeof(shown) - 8; i++) {
    unsigned char ch = (unsigned char)key[i];
    if (isprint(ch)) shown[o++] = (char)ch;
    else o += (size_t)snprintf(shown + o, sizeof(shown) - o, "\\x%02x", ch);
  }
  shown[o] = 0;
  fprintf(stderr, "ktune %s: %s takes 1 to %d printable characters without spaces, not '%s'%s\n",
          cmd, what, CLI_KEY_MAX, shown, n > CLI_KEY_MAX ? " (too long)" : "");
  return -1;
}
