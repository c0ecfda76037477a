/* The tracker's HTTP side (--http): the dashboard, its JSON and event
 * stream, a session's trials, and Prometheus metrics. H2O parses and
 * answers on the tracker's own loop; everything here is read-only.
 *
 * A client can cost the tracker little: a status is built at most once
 * per SNAP_MAX_AGE_MS and shared by every reader; an event stream is sent
 * the next status only once it has taken the last; trials go out a page
 * at a time, the next page read when the last was taken; connections and
 * streams are capped. */
#include <errno.h>
#include <h2o.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/auth.h"
#include "common/log.h"
#include "common/status_json.h"
#include "tracker/metrics.h"
#include "tracker/tracker.h"

#define WHO "http"
#define HTTP_MAX_CONNS 256   /* connections at once; more are closed at once */
#define HTTP_MAX_STREAMS 256 /* event streams at once; more get 503 */
#define SNAP_MAX_AGE_MS 200  /* a status this fresh is served again */
#define EVENT_EVERY_MS 1000
#define TRIALS_PAGE 256      /* trial lines per read of the history */
#define HTTP_REQ_TIMEOUT_MS 10000 /* a request's headers, however slowly sent */
#define HTTP_STOP_GRACE_MS 1000  /* a stopping tracker waits this long for answers */

extern const char tracker_dashboard_html[];
extern const unsigned long tracker_dashboard_html_len;

/* One status as JSON, shared by the requests sending it. */
typedef struct {
  unsigned refs;
  size_t len;
  char *text; /* status_json_text's */
} snap;

struct http {
  tracker *t;
  h2o_globalconf_t config;
  h2o_context_t ctx;
  h2o_accept_ctx_t accept;
  uv_tcp_t listener;
  uv_timer_t tick;     /* event streams' next status, while there are any */
  uv_timer_t grace;    /* a stopping tracker's wait for connections */
  h2o_linklist_t streams;
  unsigned nconns, nstreams;
  snap *last;          /* the newest status, and when it was built */
  uint64_t last_ms;
  int stopping;
};

/* ---- statuses ---- */

static void snap_release(snap *s) {
  if (!s || --s->refs) return;
  free(s->text);
  free(s);
}

/* The status, as fresh as SNAP_MAX_AGE_MS, with a reference for the
 * caller; NULL when out of memory. */
static snap *status_snap(http *h) {
  tracker *t = h->t;
  uint64_t now = uv_now(t->loop);
  if (!h->last || now - h->last_ms >= SNAP_MAX_AGE_MS) {
    Ktune__StatusReply r;
    registry_status(t, &r, 0);
    char *text = status_json_text(&r);
    registry_status_free(&r);
    snap *s = text ? malloc(sizeof(*s)) : NULL;
    if (!s) {
      free(text);
      return NULL;
    }
    *s = (snap){1, strlen(text), text};
    snap_release(h->last);
    h->last = s;
    h->last_ms = now;
  }
  h->last->refs++;
  return h->last;
}

/* A reference held by a request until its memory goes (h2o_mem_alloc_shared):
 * h2o may still be writing a body after the handler's last send. */
typedef struct {
  snap *s;
} snap_hold;

static void snap_hold_dispose(void *p) { snap_release(((snap_hold *)p)->s); }

/* ---- answers ---- */

static void add_header(h2o_req_t *req, const char *name, const char *value) {
  h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, value,
                        strlen(value));
}

static void start(h2o_req_t *req, int status, const char *reason, const char *type) {
  req->res.status = status;
  req->res.reason = reason;
  add_header(req, "content-type", type);
  add_header(req, "cache-control", "no-store");
  add_header(req, "x-content-type-options", "nosniff");
}

/* A short answer (copied by h2o). */
static int send_text(h2o_req_t *req, int status, const char *reason, const char *text) {
  start(req, status, reason, "text/plain; charset=utf-8");
  h2o_send_inline(req, text, strlen(text));
  return 0;
}

static int send_page(h2o_req_t *req, int status, const char *reason) {
  start(req, status, reason, "text/html; charset=utf-8");
  /* The page's own script and style only: nothing from elsewhere runs. */
  add_header(req, "content-security-policy",
             "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
             "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'");
  static h2o_generator_t none = {NULL, NULL};
  h2o_start_response(req, &none);
  h2o_iovec_t body = h2o_iovec_init(tracker_dashboard_html, tracker_dashboard_html_len);
  h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
  return 0;
}

/* ---- who asks ---- */

/* 0 when req may read; otherwise it has been answered (401 or 403). A
 * token is compared with every entry, so the time says nothing of which
 * came close. */
static int authorized(http *h, h2o_req_t *req, int page) {
  const auth_tokens *tok = &h->t->tokens;
  if (!tok->n) return 0;
  const auth_entry *who = NULL;
  ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
  if (i >= 0) {
    h2o_iovec_t v = req->headers.entries[i].value;
    if (v.len > 7 && h2o_lcstris(v.base, 7, "bearer ", 7)) {
      char given[AUTH_TOKEN_MAX] = {0};
      size_t n = v.len - 7 < sizeof(given) - 1 ? v.len - 7 : sizeof(given) - 1;
      memcpy(given, v.base + 7, n);
      for (size_t k = 0; k < tok->n; k++) {
        char want[AUTH_TOKEN_MAX] = {0};
        memcpy(want, tok->e[k].token, strnlen(tok->e[k].token, sizeof(want) - 1));
        if (auth_equal((const uint8_t *)given, (const uint8_t *)want, sizeof(want)) &&
            strlen(tok->e[k].token) == v.len - 7)
          who = &tok->e[k];
      }
    }
  }
  if (!who) {
    add_header(req, "www-authenticate", "Bearer realm=\"ktune\"");
    /* The page asks a browser for the token; it holds nothing else. */
    if (page) return send_page(req, 401, "Unauthorized"), -1;
    send_text(req, 401, "Unauthorized",
              "a client or admin token is needed: Authorization: Bearer TOKEN\n");
    return -1;
  }
  if (strcmp(who->role, "client") && strcmp(who->role, "admin")) {
    send_text(req, 403, "Forbidden",
              "an agent's token reads nothing here: use a client or admin token\n");
    return -1;
  }
  return 0;
}

/* ---- routes ---- */

static int on_page(http *h, h2o_req_t *req, const char *rest) {
  (void)h;
  if (*rest && strcmp(rest, "index.html")) return send_text(req, 404, "Not Found", "no such page\n");
  return send_page(req, 200, "OK");
}

static int on_status(http *h, h2o_req_t *req, const char *rest) {
  if (*rest) return send_text(req, 404, "Not Found", "no such page\n");
  snap *s = status_snap(h);
  if (!s) return send_text(req, 503, "Service Unavailable", "out of memory\n");
  snap_hold *hold = h2o_mem_alloc_shared(&req->pool, sizeof(*hold), snap_hold_dispose);
  hold->s = s;
  start(req, 200, "OK", "application/json");
  static h2o_generator_t none = {NULL, NULL};
  h2o_start_response(req, &none);
  h2o_iovec_t body[2] = {h2o_iovec_init(s->text, s->len), h2o_iovec_init(H2O_STRLIT("\n"))};
  h2o_send(req, body, 2, H2O_SEND_STATE_FINAL);
  return 0;
}

static int on_metrics(http *h, h2o_req_t *req, const char *rest) {
  if (*rest) return send_text(req, 404, "Not Found", "no such page\n");
  char *text = NULL;
  size_t len = 0;
  if (metrics_render(h->t, &text, &len) < 0)
    return send_text(req, 503, "Service Unavailable", "out of memory\n");
  start(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8");
  h2o_send_inline(req, text, len);
  free(text);
  return 0;
}

/* -- event streams -- */

typedef struct {
  h2o_generator_t gen; /* first: h2o hands it back */
  h2o_req_t *req;
  http *h;
  snap *sending;       /* until h2o has taken it (proceed) */
  int ending;          /* the tracker stops: the answer ends once it has */
  h2o_linklist_t link; /* in h->streams while it gets statuses */
} stream;

static void stream_send(stream *st, snap *s) {
  st->sending = s;
  static const char head[] = "event: status\ndata: ";
  h2o_iovec_t bufs[3] = {h2o_iovec_init(head, sizeof(head) - 1), h2o_iovec_init(s->text, s->len),
                         h2o_iovec_init(H2O_STRLIT("\n\n"))};
  h2o_send(st->req, bufs, 3, H2O_SEND_STATE_IN_PROGRESS);
}

static void stream_proceed(h2o_generator_t *g, h2o_req_t *req) {
  stream *st = (stream *)g;
  snap_release(st->sending);
  st->sending = NULL;
  if (st->ending) h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
}

/* It gets no more statuses. */
static void stream_unlist(stream *st) {
  if (!h2o_linklist_is_linked(&st->link)) return;
  h2o_linklist_unlink(&st->link);
  st->h->nstreams--;
}

/* The client left. */
static void stream_stop(h2o_generator_t *g, h2o_req_t *req) {
  (void)req;
  stream_unlist((stream *)g);
}

/* The request's memory goes: nothing is being written from its status. */
static void stream_dispose(void *p) {
  stream *st = p;
  stream_unlist(st);
  snap_release(st->sending);
  st->sending = NULL;
}

static void on_tick(uv_timer_t *timer) {
  http *h = timer->data;
  if (h2o_linklist_is_empty(&h->streams)) {
    uv_timer_stop(&h->tick);
    return;
  }
  snap *s = status_snap(h);
  if (!s) return;
  /* A stream still sending the last one skips this: a slow reader holds
   * one status, never a backlog. */
  for (h2o_linklist_t *l = h->streams.next; l != &h->streams; l = l->next) {
    stream *st = H2O_STRUCT_FROM_MEMBER(stream, link, l);
    if (st->sending) continue;
    s->refs++;
    stream_send(st, s);
  }
  snap_release(s);
}

static int on_events(http *h, h2o_req_t *req, const char *rest) {
  if (*rest) return send_text(req, 404, "Not Found", "no such page\n");
  if (h->nstreams >= HTTP_MAX_STREAMS || h->stopping)
    return send_text(req, 503, "Service Unavailable", "too many event streams; poll /api/status\n");
  snap *s = status_snap(h);
  if (!s) return send_text(req, 503, "Service Unavailable", "out of memory\n");
  stream *st = h2o_mem_alloc_shared(&req->pool, sizeof(*st), stream_dispose);
  memset(st, 0, sizeof(*st));
  st->gen.proceed = stream_proceed;
  st->gen.stop = stream_stop;
  st->req = req;
  st->h = h;
  h2o_linklist_insert(&h->streams, &st->link);
  h->nstreams++;
  start(req, 200, "OK", "text/event-stream");
  h2o_start_response(req, &st->gen);
  stream_send(st, s);
  if (!uv_is_active((uv_handle_t *)&h->tick))
    uv_timer_start(&h->tick, on_tick, EVENT_EVERY_MS, EVENT_EVERY_MS);
  return 0;
}

/* -- a session's trials -- */

typedef struct {
  h2o_generator_t gen;
  http *h;
  int64_t session, after;
  char *page;          /* the page h2o is sending */
  size_t len, cap;
} trials;

static int trials_add(void *ctx, const char *line) {
  trials *tr = ctx;
  size_t n = strlen(line);
  if (tr->len + n + 1 > tr->cap) {
    size_t cap = (tr->len + n + 1) * 2;
    char *p = realloc(tr->page, cap);
    if (!p) return -ENOMEM;
    tr->page = p, tr->cap = cap;
  }
  memcpy(tr->page + tr->len, line, n);
  tr->page[tr->len + n] = '\n';
  tr->len += n + 1;
  return 0;
}

/* The next page, sent; the last one (short) ends the answer. */
static void trials_next(h2o_generator_t *g, h2o_req_t *req) {
  trials *tr = (trials *)g;
  tr->len = 0;
  int n = hist_export_session(tr->h->t->db, tr->session, tr->after, TRIALS_PAGE, trials_add, tr,
                              &tr->after);
  if (n < 0) {
    /* The status line is gone: all the client can see is a cut answer. */
    log_warn(WHO, "trials of session %lld: %s", (long long)tr->session,
             hist_errmsg(tr->h->t->db));
    h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
    return;
  }
  h2o_iovec_t body = h2o_iovec_init(tr->page, tr->len);
  h2o_send(req, &body, tr->len ? 1 : 0,
           n < TRIALS_PAGE ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void trials_dispose(void *p) { free(((trials *)p)->page); }

/* "ID/trials", with ?after=N: whole numbers, nothing else. */
static int parse_trials(const char *rest, const char *query, int64_t *id, int64_t *after) {
  char *end;
  if (*rest < '1' || *rest > '9') return -1;
  long long v = strtoll(rest, &end, 10);
  if (strcmp(end, "/trials") || v <= 0) return -1;
  *id = v;
  *after = 0;
  if (!query) return 0;
  if (strncmp(query, "after=", 6) || query[6] < '0' || query[6] > '9') return -1;
  *after = strtoll(query + 6, &end, 10);
  return *end || *after < 0 ? -1 : 0;
}

static int session_known(http *h, int64_t id) {
  if (session_find(h->t, (uint64_t)id)) return 1;
  hist_session_row row;
  int rc = hist_session_get(h->t->db, id, &row);
  hist_session_row_clear(&row);
  return rc;
}

static int on_sessions(http *h, h2o_req_t *req, const char *rest, const char *query) {
  int64_t id, after;
  if (parse_trials(rest, query, &id, &after) < 0)
    return send_text(req, 404, "Not Found",
                     "no such page: /api/sessions/ID/trials[?after=TRIAL_ID]\n");
  int known = session_known(h, id);
  if (known < 0) return send_text(req, 503, "Service Unavailable", "the history cannot be read\n");
  if (!known) return send_text(req, 404, "Not Found", "no such session\n");
  trials *tr = h2o_mem_alloc_shared(&req->pool, sizeof(*tr), trials_dispose);
  memset(tr, 0, sizeof(*tr));
  tr->gen.proceed = trials_next;
  tr->h = h;
  tr->session = id;
  tr->after = after;
  start(req, 200, "OK", "application/x-ndjson");
  h2o_start_response(req, &tr->gen);
  trials_next(&tr->gen, req);
  return 0;
}

/* Who asks, then the route: each handler gets the rest of the path after
 * its prefix, and answers 404 for what it does not know. */
static int on_req(h2o_handler_t *self, h2o_req_t *req) {
  http *h = *(http **)(self + 1);
  if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
    add_header(req, "allow", "GET");
    return send_text(req, 405, "Method Not Allowed", "read-only: GET only\n");
  }
  char path[256], query[64];
  h2o_iovec_t p = req->path_normalized;
  if (p.len >= sizeof(path)) return send_text(req, 404, "Not Found", "no such page\n");
  memcpy(path, p.base, p.len);
  path[p.len] = 0;
  const char *q = NULL;
  if (req->query_at != SIZE_MAX) {
    size_t ql = req->path.len - req->query_at - 1;
    if (ql >= sizeof(query)) return send_text(req, 404, "Not Found", "no such page\n");
    memcpy(query, req->path.base + req->query_at + 1, ql);
    query[ql] = 0;
    q = query;
  }
  int page = strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0;
  if (authorized(h, req, page) < 0) return 0;
  if (!strncmp(path, "/api/sessions/", 14)) return on_sessions(h, req, path + 14, q);
  static const struct {
    const char *prefix;
    int (*fn)(http *, h2o_req_t *, const char *rest);
  } routes[] = {{"/api/status", on_status}, {"/api/events", on_events},
                {"/metrics", on_metrics}, {"/", on_page}};
  for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
    size_t n = strlen(routes[i].prefix);
    if (!strncmp(path, routes[i].prefix, n)) return routes[i].fn(h, req, path + n);
  }
  return send_text(req, 404, "Not Found", "no such page\n");
}

/* ---- connections ---- */

/* h2o takes the handle's data for its own: the way back is the struct. */
typedef struct {
  uv_tcp_t tcp; /* first */
  http *h;
} http_conn;

static void on_conn_closed(uv_handle_t *handle) {
  http_conn *c = (http_conn *)handle;
  c->h->nconns--;
  free(c);
}

static void on_accept(uv_stream_t *listener, int status) {
  http *h = listener->data;
  if (status < 0) return;
  http_conn *c = malloc(sizeof(*c));
  if (!c) return;
  uv_tcp_init(listener->loop, &c->tcp);
  c->h = h;
  h->nconns++;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0 || h->nconns > HTTP_MAX_CONNS ||
      h->stopping) {
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  h2o_accept(&h->accept, h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_closed));
}

static int write_addr(http *h, char *err, size_t errlen) {
  char buf[80];
  int rc = core_bound(&h->listener, "--http-port-file", h->t->opts.http_port_file, buf,
                      sizeof(buf), err, errlen);
  log_info(WHO, "dashboard on http://%s/", buf);
  return rc;
}

/* The loop's handles, before h2o adds its own. */
typedef struct {
  uv_handle_t **v;
  size_t n, cap;
  int failed;
} handle_set;

static void note_handle(uv_handle_t *hd, void *arg) {
  handle_set *s = arg;
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 32;
    uv_handle_t **v = realloc(s->v, cap * sizeof(*v));
    if (!v) {
      s->failed = 1;
      return;
    }
    s->v = v, s->cap = cap;
  }
  s->v[s->n++] = hd;
}

static void unref_new(uv_handle_t *hd, void *arg) {
  handle_set *s = arg;
  for (size_t i = 0; i < s->n; i++)
    if (s->v[i] == hd) return;
  uv_unref(hd);
}

/* h2o_context_init, with h2o's own handles (its timers, its queue's wakeup)
 * unreferenced: they would keep a stopped tracker's loop going forever. */
static int h2o_context_init_unref(http *h, uv_loop_t *loop) {
  handle_set before = {0};
  uv_walk(loop, note_handle, &before);
  if (before.failed) {
    free(before.v);
    return -1;
  }
  h2o_context_init(&h->ctx, loop, &h->config);
  uv_walk(loop, unref_new, &before);
  free(before.v);
  return 0;
}

int http_start(tracker *t, char *err, size_t errlen) {
  struct sockaddr_storage ss;
  if (addr_resolve(t->opts.http, &ss, err, errlen) < 0) return -1;
  http *h = calloc(1, sizeof(*h));
  if (!h) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  h->t = t;
  h2o_config_init(&h->config);
  h->config.server_name = h2o_iovec_init(H2O_STRLIT("ktune-tracker"));
  h->config.http1.req_timeout = HTTP_REQ_TIMEOUT_MS;
  /* Nothing is posted: a body is refused before it is buffered. */
  h->config.max_request_entity_size = 0;
  h2o_hostconf_t *host =
      h2o_config_register_host(&h->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
  h2o_pathconf_t *pc = h2o_config_register_path(host, "/", 0);
  h2o_handler_t *handler = h2o_create_handler(pc, sizeof(*handler) + sizeof(http *));
  handler->on_req = on_req;
  *(http **)(handler + 1) = h;
  if (h2o_context_init_unref(h, t->loop) < 0) {
    h2o_config_dispose(&h->config);
    free(h);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  h->accept.ctx = &h->ctx;
  h->accept.hosts = h->config.hosts;
  h2o_linklist_init_anchor(&h->streams);
  uv_timer_init(t->loop, &h->tick);
  uv_timer_init(t->loop, &h->grace);
  h->tick.data = h->grace.data = h;
  uv_tcp_init(t->loop, &h->listener);
  h->listener.data = h;
  t->web = h;
  int rc = uv_tcp_bind(&h->listener, (struct sockaddr *)&ss, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&h->listener, 128, on_accept);
  if (rc < 0) snprintf(err, errlen, "cannot serve HTTP on %s: %s", t->opts.http, uv_strerror(rc));
  else rc = write_addr(h, err, errlen);
  if (rc < 0) {
    uv_close((uv_handle_t *)&h->listener, NULL);
    uv_close((uv_handle_t *)&h->tick, NULL);
    http_free(t);
    return -1;
  }
  return 0;
}

static void on_grace(uv_timer_t *timer) {
  http *h = timer->data;
  if (!h->nconns) return;
  log_warn(WHO, "%u HTTP connection(s) still open %d ms after the stop: cut", h->nconns,
           HTTP_STOP_GRACE_MS);
  uv_stop(timer->loop);
}

/* The listener closes and event streams end; answers being sent get
 * HTTP_STOP_GRACE_MS. An idle or unread connection does not hold the
 * tracker: the loop is stopped then. */
void http_stop(tracker *t) {
  http *h = t->web;
  if (!h || h->stopping) return;
  h->stopping = 1;
  uv_close((uv_handle_t *)&h->listener, NULL);
  uv_close((uv_handle_t *)&h->tick, NULL);
  while (!h2o_linklist_is_empty(&h->streams)) {
    stream *st = H2O_STRUCT_FROM_MEMBER(stream, link, h->streams.next);
    stream_unlist(st);
    st->ending = 1;
    if (!st->sending) h2o_send(st->req, NULL, 0, H2O_SEND_STATE_FINAL);
  }
  /* Each connection closes after its answer. (Not h2o_context_request_
   * shutdown: its HTTP/2 timer would outlive the connections.) */
  h->ctx.shutdown_requested = 1;
  /* Unreferenced: it fires only while connections keep the loop going. */
  uv_timer_start(&h->grace, on_grace, HTTP_STOP_GRACE_MS, 0);
  uv_unref((uv_handle_t *)&h->grace);
}

/* Held, not leaked, when connections were cut: they still point into it
 * and the process is ending. */
static http *cut;

/* Outside the loop: h2o's disposal runs it once. */
void http_free(tracker *t) {
  http *h = t->web;
  if (!h) return;
  if (h->nconns) {
    cut = h;
    return;
  }
  uv_close((uv_handle_t *)&h->grace, NULL);
  h2o_context_dispose(&h->ctx);
  h2o_config_dispose(&h->config);
  snap_release(h->last);
  free(h);
  t->web = NULL;
}
