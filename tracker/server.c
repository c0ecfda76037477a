/* Accepting connections, the per-connection state machine (Hello first,
 * then the role's commands), liveness, signals, and the loop's prepare
 * phase, where the open transaction commits (core.c) once its window is
 * up, before the replies that wait for it are flushed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/log.h"
#include "common/target.h"
#include "common/wire.h"
#include "tracker/tracker.h"

#define WHO "tracker"

/* Which roles may send which message. */
#define R_BUILDER (1u << KTUNE__ROLE__ROLE_BUILDER)
#define R_RUNNER (1u << KTUNE__ROLE__ROLE_RUNNER)
#define R_CLIENT (1u << KTUNE__ROLE__ROLE_CLIENT)
#define R_ANY (R_BUILDER | R_RUNNER | R_CLIENT)

typedef void (*handler_fn)(tracker *t, peer *p, Ktune__Envelope *env);

static void on_heartbeat(tracker *t, peer *p, Ktune__Envelope *env) { (void)t, (void)p, (void)env; }

static void on_build_result(tracker *t, peer *p, Ktune__Envelope *env) {
  jobs_on_build_result(t, p, env->build_result);
}

static void on_run_result(tracker *t, peer *p, Ktune__Envelope *env) {
  jobs_on_run_result(t, p, env->run_result);
}

static void on_submit(tracker *t, peer *p, Ktune__Envelope *env) {
  char err[512];
  if (submit_session(t, p, env->submit, err, sizeof(err)) < 0) {
    conn_send_error(p->c, "BAD_SESSION", "%s", err);
    return;
  }
  /* The verdict can take a while: say at once that it is coming. */
  Ktune__SubmitReceived rcv = KTUNE__SUBMIT_RECEIVED__INIT;
  core_send_msg(p, KTUNE__ENVELOPE__MSG_SUBMIT_RECEIVED, &rcv);
}

static void on_watch(tracker *t, peer *p, Ktune__Envelope *env) {
  session *s = session_find(t, env->watch->session_id);
  if (!s && session_progress_from_history(t, env->watch->session_id, p) == 0) return;
  if (!s) {
    conn_send_error(p->c, "NO_SESSION", "no session %llu on this tracker (see `ktune status`)",
                    (unsigned long long)env->watch->session_id);
    return;
  }
  p->watching = s->id;
  session_send_progress(t, s, p);
}

static void on_status(tracker *t, peer *p, Ktune__Envelope *env) {
  Ktune__StatusReply r;
  registry_status(t, &r, env->status_request->max_rows);
  core_send_msg_now(p, KTUNE__ENVELOPE__MSG_STATUS_REPLY, &r);
  registry_status_free(&r);
}

typedef struct {
  peer *p;
  char **lines;
  size_t n;
  int failed;
} export_ctx;

#define EXPORT_CHUNK 512

static void export_flush(export_ctx *x, int last) {
  Ktune__ExportChunk ch = KTUNE__EXPORT_CHUNK__INIT;
  ch.lines = x->lines;
  ch.n_lines = x->n;
  ch.last = last;
  if (core_send_msg(x->p, KTUNE__ENVELOPE__MSG_EXPORT_CHUNK, &ch) < 0) x->failed = 1;
  for (size_t i = 0; i < x->n; i++) free(x->lines[i]);
  x->n = 0;
}

static int export_line(void *ctx, const char *line) {
  export_ctx *x = ctx;
  x->lines[x->n++] = strdup(line);
  if (x->n == EXPORT_CHUNK) export_flush(x, 0);
  return x->failed;
}

static void on_export(tracker *t, peer *p, Ktune__Envelope *env) {
  char err[256];
  char *lines[EXPORT_CHUNK];
  export_ctx x = {p, lines, 0, 0};
  const char *fmt = env->export_request->format[0] ? env->export_request->format : "jsonl";
  if (hist_export(t->db, fmt, export_line, &x, err, sizeof(err)) < 0) {
    for (size_t i = 0; i < x.n; i++) free(lines[i]);
    conn_send_error(p->c, "EXPORT_FAILED", "%s", err);
    return;
  }
  export_flush(&x, 1);
}

static void on_cancel(tracker *t, peer *p, Ktune__Envelope *env) {
  session *s = session_find(t, env->cancel->session_id);
  hist_session_row row;
  if (!s && env->cancel->session_id <= INT64_MAX &&
      hist_session_get(t->db, (int64_t)env->cancel->session_id, &row) == 1) {
    /* Only ended sessions leave memory. */
    conn_send_error(p->c, "SESSION_ENDED", "session %llu had already ended: %s",
                    (unsigned long long)env->cancel->session_id, row.state ? row.state : "?");
    hist_session_row_clear(&row);
    return;
  }
  if (!s) {
    conn_send_error(p->c, "NO_SESSION", "no session %llu on this tracker (see `ktune status`)",
                    (unsigned long long)env->cancel->session_id);
    return;
  }
  if (strcmp(s->owner, p->name) != 0 && !p->is_admin) {
    conn_send_error(p->c, "FORBIDDEN", "session %llu belongs to %s: only its owner or an admin "
                    "may cancel it", (unsigned long long)s->id, s->owner);
    return;
  }
  if (!session_active(s)) {
    conn_send_error(p->c, "SESSION_ENDED", "session %llu had already ended: %s",
                    (unsigned long long)s->id, wire_state_name(s->state));
    return;
  }
  char why[128];
  snprintf(why, sizeof(why), "cancelled by %s", p->name);
  session_end(t, s, WIRE_SESSION(CANCELLED), why);
  session_send_progress(t, s, p);
}

/* An external session's configs (ktune measure): each one queued goes to
 * the session's search at once, as a tuner's candidate would. */
static void on_measure_config(tracker *t, peer *p, Ktune__Envelope *env) {
  session *s = external_add(t, p, env->measure_config);
  if (s) session_fill(t, s);
  jobs_dispatch(t);
}

static void on_measure_done(tracker *t, peer *p, Ktune__Envelope *env) {
  session *s = external_close(t, p, env->measure_done);
  if (s) session_fill(t, s);
}

static void on_goodbye(tracker *t, peer *p, Ktune__Envelope *env) {
  (void)env;
  p->draining = 1;
  jobs_peer_changed(t, p);
  log_info(WHO, "%s %s is leaving after the %u job(s) it holds", wire_role_name(p->role), p->name,
           p->busy);
}

static const struct {
  handler_fn fn;
  unsigned roles;
} commands[] = {
    [KTUNE__ENVELOPE__MSG_GOODBYE] = {on_goodbye, R_BUILDER | R_RUNNER},
    [KTUNE__ENVELOPE__MSG_HEARTBEAT] = {on_heartbeat, R_ANY},
    [KTUNE__ENVELOPE__MSG_BUILD_RESULT] = {on_build_result, R_BUILDER},
    [KTUNE__ENVELOPE__MSG_RUN_RESULT] = {on_run_result, R_RUNNER},
    [KTUNE__ENVELOPE__MSG_SUBMIT] = {on_submit, R_CLIENT},
    [KTUNE__ENVELOPE__MSG_WATCH] = {on_watch, R_CLIENT},
    [KTUNE__ENVELOPE__MSG_STATUS_REQUEST] = {on_status, R_CLIENT},
    [KTUNE__ENVELOPE__MSG_EXPORT_REQUEST] = {on_export, R_CLIENT},
    [KTUNE__ENVELOPE__MSG_CANCEL] = {on_cancel, R_CLIENT},
    [KTUNE__ENVELOPE__MSG_MEASURE_CONFIG] = {on_measure_config, R_CLIENT},
    [KTUNE__ENVELOPE__MSG_MEASURE_DONE] = {on_measure_done, R_CLIENT},
};

#define LABEL_MAX 63

static int label_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > LABEL_MAX) return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) return 0;
  return 1;
}

static void copy_field(char *dst, size_t n, const char *src) {
  snprintf(dst, n, "%s", src ? src : "");
}

/* Answers a failed login late (slowing down guessing) and then closes. */
static void reject(tracker *t, peer *p, const char *code, const char *msg) {
  snprintf(p->reject_code, sizeof(p->reject_code), "%s", code);
  snprintf(p->reject_msg, sizeof(p->reject_msg), "%s", msg);
  p->state = PEER_REJECTED;
  p->close_at = uv_now(t->loop) + t->opts.auth_delay_ms;
}

/* A second agent under a name already connected would merge with it in
 * status and in its record (guard.c): refused. Checked once the login is
 * proven, so that it tells nobody without a token which names are here. */
static int name_taken(tracker *t, peer *p) {
  if (p->role == KTUNE__ROLE__ROLE_CLIENT) return 0;
  for (peer *o = t->peers; o; o = o->next)
    if (o != p && o->state == PEER_READY && o->role == p->role && !strcmp(o->name, p->name)) {
      char msg[256];
      snprintf(msg, sizeof(msg), "a %s named %s is already connected (from %s); give each agent "
               "its own --name", wire_role_name(p->role), p->name, o->c ? o->c->peer : "?");
      conn_send_error(p->c, "NAME_TAKEN", "%s", msg);
      conn_close(p->c, "name taken");
      return 1;
    }
  return 0;
}

static void welcome(tracker *t, peer *p, const auth_entry *e) {
  if (name_taken(t, p)) return;
  p->state = PEER_READY;
  Ktune__Welcome w = KTUNE__WELCOME__INIT;
  w.version = WIRE_PROTOCOL_VERSION;
  w.agent_id = p->id;
  w.heartbeat_ms = t->opts.heartbeat_ms;
  w.timeout_ms = t->opts.timeout_ms;
  uint8_t proof[AUTH_MAC], key[AUTH_MAC];
  if (e) {
    auth_tracker_proof(e->token, p->peer_nonce, p->tracker_nonce, proof);
    w.proof.data = proof;
    w.proof.len = AUTH_MAC;
    w.granted = (char *)e->role;
  }
  if (p->role == KTUNE__ROLE__ROLE_CLIENT) core_send_msg_now(p, KTUNE__ENVELOPE__MSG_WELCOME, &w);
  else core_send_msg(p, KTUNE__ENVELOPE__MSG_WELCOME, &w);
  if (e) {
    /* Everything after the Welcome is authenticated frame by frame. */
    auth_session_key(e->token, p->peer_nonce, p->tracker_nonce, key);
    auth_stream_start(&p->c->mac, key, 1);
  }
  if (p->role != KTUNE__ROLE__ROLE_CLIENT)
    log_info(WHO, "%s %s joined from %s%s%s", wire_role_name(p->role), p->name, p->c->peer,
             p->key[0] ? " with key " : "", p->key);
  if (p->role != KTUNE__ROLE__ROLE_CLIENT) p->rec = guard_record(t, p->name, p->role);
  if (p->role == KTUNE__ROLE__ROLE_RUNNER) registry_note_key(t, p->key);
  if (p->holding) jobs_adopt(t, p, p->holding);
  jobs_peer_changed(t, p);
  jobs_dispatch(t);
}

static void on_auth(tracker *t, peer *p, const Ktune__Auth *a) {
  const auth_entry *e = auth_tokens_find(&t->tokens, p->name);
  const char *role = wire_role_name(p->role);
  /* An admin token also logs in as a client; every other role is itself. */
  int role_ok = e && (strcmp(e->role, role) == 0 ||
                      (strcmp(e->role, "admin") == 0 && p->role == KTUNE__ROLE__ROLE_CLIENT));
  uint8_t want[AUTH_MAC];
  int ok = 0;
  if (role_ok && a->mac.len == AUTH_MAC) {
    auth_peer_mac(e->token, p->peer_nonce, p->tracker_nonce, role, p->name, want);
    ok = auth_equal(want, a->mac.data, AUTH_MAC);
  }
  if (!ok) {
    log_warn(WHO, "failed login as %s %s from %s", role, p->name, p->c->peer);
    char msg[256];
    snprintf(msg, sizeof(msg), "authentication failed for %s: wrong token, or the token is not "
             "for a %s", p->name, role);
    reject(t, p, "AUTH_FAILED", msg);
    return;
  }
  p->is_admin = strcmp(e->role, "admin") == 0;
  welcome(t, p, e);
}

static void on_hello(tracker *t, peer *p, const Ktune__Hello *h) {
  if (h->version != WIRE_PROTOCOL_VERSION) {
    conn_send_error(p->c, "VERSION", "protocol version %u is not supported; this tracker speaks %d",
                    h->version, WIRE_PROTOCOL_VERSION);
    conn_close(p->c, "protocol version");
    return;
  }
  if (h->role != KTUNE__ROLE__ROLE_BUILDER && h->role != KTUNE__ROLE__ROLE_RUNNER &&
      h->role != KTUNE__ROLE__ROLE_CLIENT) {
    conn_send_error(p->c, "BAD_HELLO", "unknown role %d", (int)h->role);
    conn_close(p->c, "bad role");
    return;
  }
  if (h->role == KTUNE__ROLE__ROLE_RUNNER && !h->key[0]) {
    conn_send_error(p->c, "BAD_HELLO", "a runner needs a device key (--key KEY)");
    conn_close(p->c, "runner without key");
    return;
  }
  /* Names and keys reach logs and status: checked before either sees them. */
  const char *bad = !label_ok(h->name) ? "name" : h->key[0] && !label_ok(h->key) ? "key" : NULL;
  if (bad) {
    conn_send_error(p->c, "BAD_HELLO", "the %s must be 1 to %d printable characters without "
                    "spaces", bad, LABEL_MAX);
    conn_close(p->c, "bad name or key");
    return;
  }
  p->role = h->role;
  copy_field(p->name, sizeof(p->name), h->name);
  copy_field(p->key, sizeof(p->key), h->key);
  copy_field(p->host, sizeof(p->host), h->host);
  /* Architectures are compared by name: each peer's is normalised here,
   * whatever spelling its platform uses. */
  target_arch(h->arch, p->arch, sizeof(p->arch));
  for (size_t i = 0; i < h->n_backends; i++) {
    if (strcmp(h->backends[i], "tcc") == 0) p->has_tcc = 1;
    if (strcmp(h->backends[i], "cc") == 0) p->has_cc = 1;
  }
  for (size_t i = 0; i < h->n_archs && p->narchs < 4; i++)
    target_arch(h->archs[i], p->archs[p->narchs++], sizeof(p->archs[0]));
  copy_field(p->cpu_model, sizeof(p->cpu_model), h->cpu_model);
  copy_field(p->kernel, sizeof(p->kernel), h->kernel);
  copy_field(p->governor, sizeof(p->governor), h->governor);
  copy_field(p->version, sizeof(p->version), h->ktune_version);
  copy_field(p->sandbox_off, sizeof(p->sandbox_off), h->sandbox_off);
  p->cores = h->cores;
  if (h->role == KTUNE__ROLE__ROLE_RUNNER) {
    p->device_json = registry_device_json(p);
    p->holding = h->holding;
  }
  /* A runner owns its device: one measurement at a time, whatever it asks. */
  p->slots = h->role == KTUNE__ROLE__ROLE_RUNNER ? 1 : (h->slots ? h->slots : 1);
  if (p->slots > 64) p->slots = 64;
  if (h->nonce.len == AUTH_NONCE) memcpy(p->peer_nonce, h->nonce.data, AUTH_NONCE);
  if (t->tokens.n == 0 && h->nonce.len) {
    /* The peer holds a token and will not work for a tracker that cannot
     * prove it; leasing it jobs would only lose them. */
    reject(t, p, "AUTH_UNAVAILABLE", "this tracker has no token file, so it cannot prove it "
           "holds your token; start it with --tokens FILE, or run this agent without a token");
    return;
  }
  if (t->tokens.n == 0) {
    welcome(t, p, NULL);
    return;
  }
  if (h->nonce.len != AUTH_NONCE) {
    log_warn(WHO, "login without a token as %s %s from %s", wire_role_name(p->role), p->name,
             p->c->peer);
    reject(t, p, "AUTH_REQUIRED", "this tracker requires a token: set KTUNE_TOKEN or use "
           "--token-file (ask the farm's admin for one)");
    return;
  }
  /* The same challenge whether or not the name is known: a failure must
   * not tell which names exist. */
  auth_nonce(p->tracker_nonce);
  p->state = PEER_AWAIT_AUTH;
  Ktune__Challenge ch = KTUNE__CHALLENGE__INIT;
  ch.nonce.data = p->tracker_nonce;
  ch.nonce.len = AUTH_NONCE;
  core_send_msg(p, KTUNE__ENVELOPE__MSG_CHALLENGE, &ch);
}

static void on_message(conn *c, Ktune__Envelope *env) {
  peer *p = c->data;
  tracker *t = p->t;
  switch (p->state) {
  case PEER_AWAIT_HELLO:
    if (env->msg_case != KTUNE__ENVELOPE__MSG_HELLO) {
      conn_send_error(c, "NOT_HELLO", "the first message must be hello, not %s", wire_msg_name(env));
      conn_close(c, "no hello");
      return;
    }
    on_hello(t, p, env->hello);
    return;
  case PEER_AWAIT_AUTH:
    if (env->msg_case != KTUNE__ENVELOPE__MSG_AUTH) {
      conn_send_error(c, "NOT_AUTH", "answer the challenge with auth first, not %s",
                      wire_msg_name(env));
      conn_close(c, "no auth");
      return;
    }
    on_auth(t, p, env->auth);
    return;
  case PEER_REJECTED:
    return;
  case PEER_READY:
    break;
  }
  unsigned mc = (unsigned)env->msg_case;
  if (mc >= sizeof(commands) / sizeof(commands[0]) || !commands[mc].fn) {
    conn_send_error(c, "BAD_REQUEST", "the tracker does not take %s", wire_msg_name(env));
    return;
  }
  if (!(commands[mc].roles & (1u << p->role))) {
    conn_send_error(c, "FORBIDDEN", "a %s may not send %s", wire_role_name(p->role),
                    wire_msg_name(env));
    return;
  }
  commands[mc].fn(t, p, env);
}

static void on_close(conn *c, const char *why) {
  peer *p = c->data;
  if (!p) return; /* never got as far as a peer */
  tracker *t = p->t;
  if (p->state == PEER_READY && p->role != KTUNE__ROLE__ROLE_CLIENT)
    log_info(WHO, "%s %s left: %s", wire_role_name(p->role), p->name, why);
  p->c = NULL;
  jobs_release(t, p); /* and out of the idle lists */
  registry_remove(t, p);
  if (!t->stopping) jobs_dispatch(t);
}

static const conn_ops server_conn_ops = {on_message, on_close, NULL};

/* "127.0.0.2:4000" and "127.0.0.2:4001" are the same host. */
static int same_host(const char *a, const char *b) {
  const char *ca = strrchr(a, ':'), *cb = strrchr(b, ':');
  size_t la = ca ? (size_t)(ca - a) : strlen(a), lb = cb ? (size_t)(cb - b) : strlen(b);
  return la == lb && memcmp(a, b, la) == 0;
}

static void on_connection(uv_stream_t *server, int status) {
  tracker *t = server->data;
  if (status < 0 || t->stopping) return;
  conn *c = conn_new(t->loop, &server_conn_ops, NULL, t->opts.max_frame);
  if (!c) return;
  /* Reading starts now (which also learns the peer's address, for the
   * limits below); nothing is read before this callback returns. */
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || conn_start(c) != 0) {
    conn_close(c, "accept failed");
    return;
  }
  uint32_t total = 0, unauth = 0, here = 0;
  for (peer *p = t->peers; p; p = p->next) {
    total++;
    unauth += p->state != PEER_READY;
    here += p->state != PEER_READY && p->c && same_host(p->c->peer, c->peer);
  }
  /* Per address first: one flooding host must not take every slot that
   * the others need to log in. */
  const char *what = NULL, *opt = NULL;
  uint32_t limit = 0;
  if (total >= t->opts.max_conns)
    what = "", opt = "max-conns", limit = t->opts.max_conns;
  else if (here >= t->opts.max_unauth_addr)
    what = "unauthenticated connections from one address: the limit is", opt = "max-unauth-per-addr",
    limit = t->opts.max_unauth_addr;
  else if (unauth >= t->opts.max_unauth)
    what = "unauthenticated ", opt = "max-unauth", limit = t->opts.max_unauth;
  if (what) {
    if (!strcmp(opt, "max-unauth-per-addr"))
      conn_send_error(c, "LIMIT", "too many %s %u (--%s)", what, limit, opt);
    else
      conn_send_error(c, "LIMIT", "too many %sconnections: the limit is %u (--%s)", what, limit,
                      opt);
    conn_close(c, "over the connection limit");
    return;
  }
  c->batch = &t->outbox;
  peer *p = registry_add(t, c);
  if (!p) {
    conn_close(c, "out of memory");
    return;
  }
  c->data = p;
}

/* How long a transaction stays open for the writes that follow its
 * first (group commit): one commit then pays for every trial of those
 * milliseconds, and a reply that needs the commit (an acknowledgement, a
 * job made in the transaction, progress) waits at most this long, plus
 * the timer's millisecond. Longer windows write fewer pages a trial (2 ms
 * against the 1 ms kept open before only while messages came: 4-6% more
 * trials/s in figure 1, 10-15% less tracker CPU a trial in figure 2). */
#define COMMIT_WINDOW_MS 2

/* The prepare that follows commits. */
static void on_window(uv_timer_t *h) { (void)h; }

/* Runs just before the loop waits for I/O: hand out work, commit when the
 * transaction has been open for the window (until then the loop sleeps
 * until a message or the window's end), then let replies go. */
static void on_prepare(uv_prepare_t *h) {
  tracker *t = h->data;
  jobs_dispatch_due(t);
  jobs_send_early(t);
  if (t->txn_open && !t->stopping) {
    uint64_t open_ms = (uv_hrtime() - t->txn_start_ns) / 1000000u;
    if (open_ms < COMMIT_WINDOW_MS) {
      if (!uv_is_active((uv_handle_t *)&t->window))
        uv_timer_start(&t->window, on_window, COMMIT_WINDOW_MS - open_ms, 0);
      return;
    }
  }
  uv_timer_stop(&t->window);
  core_commit(t);
  jobs_committed(t);
  conn_batch_flush(&t->outbox);
}

/* A peer hears from the tracker at least every --heartbeat-ms: a
 * heartbeat goes only to one that was sent nothing for that long, and
 * each when its own interval is up, not all in one turn (a thousand
 * writes at once held a farm's loop for 15 ms every second). */
static void on_beat(uv_timer_t *h) {
  tracker *t = h->data;
  uint64_t now = uv_now(t->loop);
  Ktune__Heartbeat hb = KTUNE__HEARTBEAT__INIT;
  hb.sent_ms = now;
  Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_HEARTBEAT, &hb);
  for (peer *p = t->peers; p; p = p->next)
    if (p->c && p->state == PEER_READY && now - p->c->last_tx_ms >= t->opts.heartbeat_ms)
      core_send(p, &env);
}

static void on_sweep(uv_timer_t *h) {
  tracker *t = h->data;
  uint64_t now = uv_now(t->loop);
  for (peer *p = t->peers, *next; p; p = next) {
    next = p->next;
    if (!p->c) continue;
    if (p->state == PEER_REJECTED) {
      if (now < p->close_at) continue;
      conn_send_error(p->c, p->reject_code, "%s", p->reject_msg);
      conn_close(p->c, "login refused");
      continue;
    }
    if (p->state != PEER_READY && now - p->c->opened_ms > t->opts.hello_timeout_ms) {
      conn_send_error(p->c, "LIMIT", "no login within %u ms (--hello-timeout-ms)",
                      t->opts.hello_timeout_ms);
      conn_close(p->c, "no login in time");
      continue;
    }
    if (now - p->c->last_rx_ms > t->opts.timeout_ms) {
      log_warn(WHO, "%s %s silent for %llu ms: dropping it", wire_role_name(p->role), p->name,
               (unsigned long long)(now - p->c->last_rx_ms));
      conn_close(p->c, "heartbeat timeout");
      continue;
    }
  }
  char why[300];
  if (dblock_check(t, why, sizeof(why)) < 0) {
    /* Writing on would record results nobody will ever read. */
    log_error(WHO, "%s: stopping; restart the tracker on a history that stays in place", why);
    t->fatal = 1;
    server_stop(t);
    return;
  }
  jobs_sweep(t);
  session_sweep(t);
  session_evict(t);
}

static void on_signal(uv_signal_t *h, int sig) {
  tracker *t = h->data;
  log_info(WHO, "signal %d: committing and stopping", sig);
  server_stop(t);
}

static int same_entry(const auth_entry *a, const auth_entry *b) {
  return a && b && !strcmp(a->role, b->role) && !strcmp(a->token, b->token);
}

/* Names of one token list that the other lacks or holds differently. */
static void token_changes(const auth_tokens *from, const auth_tokens *to, char *out, size_t len) {
  size_t off = 0;
  out[0] = 0;
  for (size_t i = 0; i < from->n && off < len; i++)
    if (!same_entry(&from->e[i], auth_tokens_find(to, from->e[i].name)))
      off += (size_t)snprintf(out + off, len - off, "%s%s", off ? ", " : "", from->e[i].name);
  if (!out[0]) snprintf(out, len, "none");
}

/* SIGHUP: read the tokens file again, as daemons do. Whoever lost their
 * token (or had it changed) is disconnected; everyone else stays. */
static void on_hangup(uv_signal_t *h, int sig) {
  tracker *t = h->data;
  (void)sig;
  if (!t->opts.tokens_path) {
    log_warn(WHO, "SIGHUP: there is no --tokens file to read again");
    return;
  }
  auth_tokens fresh = {0};
  char err[512];
  if (auth_tokens_load(t->opts.tokens_path, &fresh, err, sizeof(err)) < 0) {
    log_error(WHO, "SIGHUP: keeping the tokens in use: %s", err);
    return;
  }
  char gone[512], added[512];
  token_changes(&t->tokens, &fresh, gone, sizeof(gone));
  token_changes(&fresh, &t->tokens, added, sizeof(added));
  log_info(WHO, "SIGHUP: tokens read again from %s: %zu entries; removed or changed: %s; added "
           "or changed: %s", t->opts.tokens_path, fresh.n, gone, added);
  for (peer *p = t->peers, *next; p; p = next) {
    next = p->next;
    if (p->state != PEER_READY || !p->c || t->tokens.n == 0) continue;
    const auth_entry *was = auth_tokens_find(&t->tokens, p->name);
    if (same_entry(was, auth_tokens_find(&fresh, p->name))) continue;
    log_info(WHO, "%s %s: its token was removed or changed; disconnecting it",
             wire_role_name(p->role), p->name);
    conn_send_error(p->c, "AUTH_REVOKED", "your token was removed from the tracker's tokens file");
    conn_close(p->c, "token revoked");
  }
  auth_tokens_free(&t->tokens);
  t->tokens = fresh;
  share_reload(t);
}

static int write_port_file(tracker *t, char *err, size_t errlen) {
  char buf[80];
  int rc = core_bound(&t->listener, "--port-file", t->opts.port_file, buf, sizeof(buf), err, errlen);
  log_info(WHO, "listening on %s, history %s", buf, t->opts.db_path);
  dblock_note_address(t, buf);
  return rc;
}

int server_start(tracker *t, char *err, size_t errlen) {
  struct sockaddr_storage ss;
  if (addr_resolve(t->opts.listen, &ss, err, errlen) < 0) return -1;
  uv_tcp_init(t->loop, &t->listener);
  t->listener.data = t;
  int rc = uv_tcp_bind(&t->listener, (struct sockaddr *)&ss, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&t->listener, 511, on_connection);
  if (rc < 0) {
    snprintf(err, errlen, "cannot listen on %s: %s", t->opts.listen, uv_strerror(rc));
    return -1;
  }
  if (write_port_file(t, err, errlen) < 0) return -1;
  uv_timer_init(t->loop, &t->sweep);
  t->sweep.data = t;
  uint32_t tick = t->opts.heartbeat_ms < 1000 ? t->opts.heartbeat_ms : 1000;
  uv_timer_start(&t->sweep, on_sweep, tick, tick);
  uv_timer_init(t->loop, &t->beat);
  t->beat.data = t;
  uint32_t beat = t->opts.heartbeat_ms >= 80 ? t->opts.heartbeat_ms / 8 : 10;
  uv_timer_start(&t->beat, on_beat, beat, beat);
  uv_timer_init(t->loop, &t->window);
  uv_timer_init(t->loop, &t->acks_timer);
  uv_prepare_init(t->loop, &t->commit);
  t->commit.data = t;
  uv_prepare_start(&t->commit, on_prepare);
  uv_signal_init(t->loop, &t->sigterm);
  uv_signal_init(t->loop, &t->sigint);
  t->sigterm.data = t->sigint.data = t;
  uv_signal_start(&t->sigterm, on_signal, SIGTERM);
  uv_signal_start(&t->sigint, on_signal, SIGINT);
  uv_signal_init(t->loop, &t->sighup);
  t->sighup.data = t;
  uv_signal_start(&t->sighup, on_hangup, SIGHUP);
  return 0;
}

void server_stop(tracker *t) {
  if (t->stopping) return;
  t->stopping = 1;
  http_stop(t);
  core_commit(t);
  jobs_committed(t);
  jobs_acks_unpark(t);
  conn_batch_flush(&t->outbox);
  while (t->peers) {
    peer *p = t->peers;
    if (p->c) conn_close(p->c, "tracker stopping");
    else registry_remove(t, p);
  }
  core_commit(t);
  uv_close((uv_handle_t *)&t->listener, NULL);
  uv_close((uv_handle_t *)&t->sweep, NULL);
  uv_close((uv_handle_t *)&t->beat, NULL);
  uv_close((uv_handle_t *)&t->commit, NULL);
  uv_close((uv_handle_t *)&t->window, NULL);
  uv_close((uv_handle_t *)&t->acks_timer, NULL);
  uv_close((uv_handle_t *)&t->refill, NULL);
  uv_close((uv_handle_t *)&t->sigterm, NULL);
  uv_close((uv_handle_t *)&t->sigint, NULL);
  uv_close((uv_handle_t *)&t->sighup, NULL);
}
