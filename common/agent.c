#include "common/agent.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/auth.h"
#include "common/conn.h"
#include "common/log.h"
#include "common/login.h"
#include "common/rng.h"
#include "common/wire.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* Logins refused in a row before the agent gives up: a wrong token or
 * name does not fix itself, and retrying for ever only fills two logs. */
#define MAX_REFUSALS 5

struct agent {
  uv_loop_t *loop;
  agent_config cfg;
  const agent_ops *ops;
  void *data;
  struct sockaddr_storage addr;
  conn *c;
  int welcomed;
  int stopped;
  uint32_t backoff_ms;
  uint32_t heartbeat_ms;
  uint32_t timeout_ms;
  uv_timer_t retry;
  uv_timer_t beat;
  uv_timer_t drain;
  uint64_t drain_since;
  int open_handles;
  rng jitter;
  char host[256];
  login login;                       /* this connection's */
  uint64_t holding;
  uint32_t refusals;       /* logins refused in a row */
  /* Under agent_main: */
  const agent_role *role;
  uv_signal_t sigterm, sigint;
  int signals;             /* sigterm and sigint are open */
  int draining, leaving, exit_code;
  int owned;               /* agent_main frees it, after the loop */
};

static void dial(agent *a);

void agent_default_name(char *buf, size_t len) {
  char host[128] = "host";
  gethostname(host, sizeof(host) - 1);
  snprintf(buf, len, "%s-%d", host, (int)getpid());
}

static void on_retry(uv_timer_t *t) { dial(t->data); }

static void schedule_retry(agent *a) {
  if (a->stopped) return;
  uint32_t d = a->backoff_ms;
  /* Jitter spreads a farm's reconnects after a tracker restart. */
  d += (uint32_t)rng_below(&a->jitter, d / 4 + 1);
  a->backoff_ms = a->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : a->backoff_ms * 2;
  uv_timer_start(&a->retry, on_retry, d, 0);
}

static void send_hello(agent *a) {
  Ktune__Hello h = KTUNE__HELLO__INIT;
  h.version = WIRE_PROTOCOL_VERSION;
  h.role = a->cfg.role;
  h.name = (char *)a->cfg.name;
  h.key = (char *)(a->cfg.key ? a->cfg.key : "");
  h.host = a->host;
  h.arch = (char *)(a->cfg.arch ? a->cfg.arch : "");
  h.backends = (char **)a->cfg.backends;
  h.n_backends = a->cfg.nbackends;
  h.slots = a->cfg.slots;
  h.cpu_model = (char *)(a->cfg.cpu_model ? a->cfg.cpu_model : "");
  h.cores = a->cfg.cores;
  h.kernel = (char *)(a->cfg.kernel ? a->cfg.kernel : "");
  h.governor = (char *)(a->cfg.governor ? a->cfg.governor : "");
  h.sandbox_off = (char *)(a->cfg.sandbox_off ? a->cfg.sandbox_off : "");
  h.ktune_version = KTUNE_VERSION;
  h.archs = (char **)a->cfg.archs;
  h.n_archs = a->cfg.narchs;
  h.holding = a->holding;
  login_start(&a->login, a->cfg.token, wire_role_name(a->cfg.role), a->cfg.name, &h);
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_HELLO, &h);
  conn_send(a->c, &env);
}

static void on_beat(uv_timer_t *t) {
  agent *a = t->data;
  if (!a->c || !a->welcomed) return;
  uint64_t quiet_ms = uv_now(a->loop) - a->c->last_rx_ms;
  if (quiet_ms > a->timeout_ms) {
    /* Not the tracker's fault for sure: this process, stopped (SIGSTOP,
     * a suspended VM), misses the tracker's beats just the same. */
    log_warn(a->cfg.who, "no word from the tracker %s for %.0f s (this process may have been "
             "paused); reconnecting", a->cfg.tracker, quiet_ms / 1e3);
    conn_close(a->c, "heartbeat timeout");
    return;
  }
  Ktune__Heartbeat hb = KTUNE__HEARTBEAT__INIT;
  hb.sent_ms = uv_now(a->loop);
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_HEARTBEAT, &hb);
  conn_send(a->c, &env);
}

static void answer_challenge(agent *a, const Ktune__Challenge *ch) {
  if (!a->cfg.token) {
    log_error(a->cfg.who, "tracker %s requires a token: set KTUNE_TOKEN or use --token-file",
              a->cfg.tracker);
    conn_close(a->c, "no token");
    return;
  }
  Ktune__Auth au;
  if (login_answer(&a->login, ch, &au) < 0) {
    conn_close(a->c, "malformed challenge");
    return;
  }
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_AUTH, &au);
  conn_send(a->c, &env);
}

/* A refused login: say what to check, and after a few give up. */
static void refused(agent *a, const char *code) {
  if (!strcmp(code, "AUTH_FAILED"))
    log_error(a->cfg.who, "the tracker refused the token: it must be issued to this %s under the "
              "name '%s' (--name), with role %s, in the tracker's tokens file",
              wire_role_name(a->cfg.role), a->cfg.name, wire_role_name(a->cfg.role));
  if (++a->refusals < MAX_REFUSALS) return;
  log_error(a->cfg.who, "giving up after %u refused logins", a->refusals);
  if (a->cfg.on_give_up) a->cfg.on_give_up(a);
  else agent_stop(a);
}

static void on_message(conn *c, Ktune__Envelope *env) {
  agent *a = c->data;
  switch (env->msg_case) {
  case KTUNE__ENVELOPE__MSG_CHALLENGE:
    if (!a->welcomed) answer_challenge(a, env->challenge);
    return;
  case KTUNE__ENVELOPE__MSG_WELCOME:
    if (a->welcomed) return;
    /* An agent with a token runs code only for a tracker that holds it too. */
    if (login_welcome(&a->login, env->welcome, &a->c->mac) < 0) {
      log_error(a->cfg.who, "tracker %s did not prove it holds this %s's token: refusing to "
                "work for it", a->cfg.tracker, wire_role_name(a->cfg.role));
      conn_close(c, "tracker not authenticated");
      return;
    }
    a->welcomed = 1;
    a->refusals = 0;
    a->backoff_ms = BACKOFF_MIN_MS;
    a->heartbeat_ms = env->welcome->heartbeat_ms ? env->welcome->heartbeat_ms : 1000;
    a->timeout_ms = env->welcome->timeout_ms ? env->welcome->timeout_ms : 10 * a->heartbeat_ms;
    uv_timer_start(&a->beat, on_beat, a->heartbeat_ms, a->heartbeat_ms);
    log_info(a->cfg.who, "connected to tracker %s as %s (id %llu)", a->cfg.tracker, a->cfg.name,
             (unsigned long long)env->welcome->agent_id);
    if (a->cfg.on_welcome) a->cfg.on_welcome(a);
    return;
  case KTUNE__ENVELOPE__MSG_HEARTBEAT:
    return;
  case KTUNE__ENVELOPE__MSG_ERROR:
    log_error(a->cfg.who, "tracker says %s: %s", env->error->code, env->error->message);
    if (!a->welcomed && !strncmp(env->error->code, "AUTH_", 5)) refused(a, env->error->code);
    return;
  default:
    if (!a->welcomed) {
      conn_close(c, "message before welcome");
      return;
    }
    a->ops->on_message(a, env);
  }
}

static void on_close(conn *c, const char *why) {
  agent *a = c->data;
  int was = a->welcomed;
  a->c = NULL;
  a->welcomed = 0;
  uv_timer_stop(&a->beat);
  if (was) log_warn(a->cfg.who, "lost tracker %s: %s", a->cfg.tracker, why);
  a->ops->on_disconnect(a);
  schedule_retry(a);
}

static void on_connect(conn *c, int status) {
  agent *a = c->data;
  if (status < 0) {
    log_debug(a->cfg.who, "cannot reach tracker %s: %s", a->cfg.tracker, uv_strerror(status));
    conn_close(c, uv_strerror(status));
    return;
  }
  send_hello(a);
}

static const conn_ops agent_conn_ops = {on_message, on_close, on_connect};

static void dial(agent *a) {
  if (a->stopped || a->c) return;
  a->c = conn_new(a->loop, &agent_conn_ops, a, FRAME_MAX_DEFAULT);
  if (!a->c) {
    schedule_retry(a);
    return;
  }
  int rc = conn_connect(a->c, (struct sockaddr *)&a->addr);
  if (rc < 0) conn_close(a->c, uv_strerror(rc));
}

int agent_new(uv_loop_t *loop, const agent_config *cfg, const agent_ops *ops, void *data,
              agent **out, char *err, size_t errlen) {
  agent *a = calloc(1, sizeof(*a));
  if (!a) return -1;
  if (addr_resolve(cfg->tracker, &a->addr, err, errlen) < 0) {
    free(a);
    return -1;
  }
  a->loop = loop;
  a->cfg = *cfg;
  a->ops = ops;
  a->data = data;
  a->backoff_ms = BACKOFF_MIN_MS;
  gethostname(a->host, sizeof(a->host) - 1);
  uv_timer_init(loop, &a->retry);
  uv_timer_init(loop, &a->beat);
  uv_timer_init(loop, &a->drain);
  a->retry.data = a->beat.data = a->drain.data = a;
  rng_seed(&a->jitter, (uint64_t)getpid() ^ uv_hrtime());
  dial(a);
  *out = a;
  return 0;
}

int agent_send(agent *a, const Ktune__Envelope *env) {
  if (!a->c || !a->welcomed) return -1;
  return conn_send(a->c, env);
}

void *agent_data(agent *a) { return a->data; }

void agent_set_holding(agent *a, uint64_t job_id) { a->holding = job_id; }

/* libuv runs close callbacks in no promised order: the last one frees. */
static void handle_closed(uv_handle_t *h) {
  agent *a = h->data;
  if (--a->open_handles == 0 && !a->owned) free(a);
}

void agent_stop(agent *a) {
  if (a->stopped) return;
  a->stopped = 1;
  if (a->c) conn_close(a->c, "stopping");
  a->open_handles = 3;
  uv_close((uv_handle_t *)&a->retry, handle_closed);
  uv_close((uv_handle_t *)&a->drain, handle_closed);
  uv_close((uv_handle_t *)&a->beat, handle_closed);
}

void agent_goodbye(agent *a) {
  Ktune__Goodbye g = KTUNE__GOODBYE__INIT;
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_GOODBYE, &g);
  agent_send(a, &env);
}

static void on_drain(uv_timer_t *t) {
  agent *a = t->data;
  int flushed = !a->c || (!a->c->writing && a->c->out_len == 0);
  if (flushed || uv_now(a->loop) - a->drain_since > 5000) agent_stop(a);
}

void agent_stop_flushed(agent *a) {
  if (a->stopped) return;
  a->drain_since = uv_now(a->loop);
  uv_timer_start(&a->drain, on_drain, 0, 20);
}

/* ---- a builder's or a runner's main ---- */

int agent_token(const char *prog, const char *token_file, char *token, size_t len) {
  char err[512];
  int have = auth_read_token(token_file, token, len, err, sizeof err);
  if (have < 0) fprintf(stderr, "%s: %s\n", prog, err);
  unsetenv("KTUNE_TOKEN");
  unsetenv("KTUNE_TOKEN_FILE");
  return have < 0 ? -1 : have > 0;
}

static void close_signals(agent *a) {
  if (!a->signals) return;
  a->signals = 0;
  uv_close((uv_handle_t *)&a->sigterm, NULL);
  uv_close((uv_handle_t *)&a->sigint, NULL);
}

static void leave_now(agent *a) {
  if (a->leaving) return;
  a->leaving = 1;
  close_signals(a);
  if (!a->role->stop_now(a->data)) agent_stop(a);
}

static void on_signal(uv_signal_t *h, int sig) {
  agent *a = h->data;
  char what[128];
  if (sig == SIGTERM && !a->draining && a->role->busy(a->data, what, sizeof what)) {
    a->draining = 1;
    agent_goodbye(a);
    log_info(a->cfg.who, "SIGTERM: finishing %s, then leaving (SIGTERM again to stop now)", what);
    return;
  }
  log_info(a->cfg.who, "signal %d: leaving", sig);
  leave_now(a);
}

/* The tracker keeps refusing our login: a configuration error. */
static void on_give_up(agent *a) {
  a->exit_code = 2;
  leave_now(a);
}

void agent_idle(agent *a, const char *finished) {
  if (a->stopped) return;
  if (a->leaving) {
    agent_stop(a);
  } else if (a->draining) {
    log_info(a->cfg.who, "%s: leaving", finished);
    close_signals(a);
    agent_stop_flushed(a);
  }
}

int agent_main(uv_loop_t *loop, const char *prog, const agent_config *cfg, const agent_ops *ops,
               const agent_role *role, void *data, agent **out) {
  agent_config mine = *cfg;
  mine.on_give_up = on_give_up;
  char err[256];
  agent *a;
  if (agent_new(loop, &mine, ops, data, &a, err, sizeof err) < 0) {
    fprintf(stderr, "%s: %s\n", prog, err);
    return 2;
  }
  a->owned = 1;
  a->role = role;
  *out = a;
  uv_signal_init(loop, &a->sigterm);
  uv_signal_init(loop, &a->sigint);
  a->sigterm.data = a->sigint.data = a;
  a->signals = 1;
  uv_signal_start(&a->sigterm, on_signal, SIGTERM);
  uv_signal_start(&a->sigint, on_signal, SIGINT);
  /* A tracker gone in the middle of a write is a failed write and a
   * reconnect, not the agent's end. */
  signal(SIGPIPE, SIG_IGN);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  int code = a->exit_code;
  free(a);
  return code;
}
