#include "builder/cc.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "builder/fsutil.h"
#include "builder/jail.h"
#include "builder/tcc.h"
#include "common/target.h"

extern char **environ;

#define CC_PROBE_TIMEOUT_MS 10000
/* Output kept per stream; the rest is read and dropped so that a chatty
 * compiler never blocks on a full pipe. */
#define CC_CAPTURE_MAX (64u << 10)
#define CC_DIAG_LINES 20
#define CC_DIAG_MAX 2000
/* Well under the wire's 64 MiB frame limit. */
#define CC_ARTIFACT_MAX (32u << 20)
/* After the compiler exits, how long something it left behind may hold
 * its output pipes open; after SIGKILL, how long to wait for the exit. */
#define CC_EXIT_GRACE_MS 500
#define CC_KILL_GRACE_MS 3000
#define CC_MAX_WORDS 256

/* ---- one child process ---- */

typedef struct cc_proc cc_proc;
typedef void (*cc_proc_fn)(cc_proc *p);

typedef struct {
  char *p;
  size_t len;
} cc_capture;

struct cc_proc {
  cc_ctx *ctx;
  cc_proc *prev, *next; /* ctx->procs, so that cc_close can kill them */
  jail_child child;     /* its pid is also its process group */
  uv_poll_t exitw;      /* the child's pidfd: readable once it has exited */
  uv_pipe_t pipes[2];   /* the child's stdout and stderr */
  uv_timer_t timer;     /* deadline, then grace periods */
  int handles;          /* initialised handles not yet closed */
  int spawned, exited, timed_out, finished, spawn_error;
  int eof[2];
  int64_t exit_status;
  int term_signal;
  uint64_t t0_ns, t1_ns;
  char rbuf[2][4096];
  cc_capture cap[2];
  cc_proc_fn done;
  void *data;
  int tag;              /* which probe question, for probes */
  char spawn_msg[256];  /* why it could not start, when the jail said */
};

/* ---- a compiler command, probed once ---- */

typedef struct cc_req cc_req;

enum { PROBE_VERSION, PROBE_MACHINE, PROBE_NATIVE, PROBE_COUNT };

typedef struct cc_probe {
  struct cc_probe *next;
  cc_ctx *ctx;
  char *key;           /* the words joined by single blanks */
  char **argv;
  int argc;
  int ready;
  int pending;         /* probe processes still running */
  char *out[PROBE_COUNT];
  int failed;          /* could not run the command at all */
  char fail[512];
  char *id;            /* compiler identity */
  char arch[64];       /* uname -m style; "" when the compiler would not say */
  char triple[128];
  cc_req *waiters;     /* builds waiting for the answers, in arrival order */
  cc_req **waiters_tail;
} cc_probe;

struct cc_req {
  cc_ctx *ctx;
  cc_req *next;        /* probe waiters */
  cc_probe *probe;
  char *command;
  char *source;
  const char *fixed_id; /* libtcc in the child: no command, no probe */
  char target[64];
  uint32_t timeout_ms;
  cc_done_fn done;
  void *data;
  char dir[4096];
  uv_timer_t defer;    /* delivers results decided outside a callback */
  const char *status;
  char *error;
  double seconds;
};

struct cc_ctx {
  uv_loop_t *loop;
  char **programs;     /* the policy's patterns, copied; NULL: the defaults */
  size_t nprograms;
  int any;
  jail *jail;
  cc_probe *probes;
  cc_proc *procs;
  size_t live;         /* procs and requests not yet freed */
  int closed;
};

static void cc_maybe_free(cc_ctx *c) {
  if (!c->closed || c->live || c->probes) return;
  for (size_t i = 0; i < c->nprograms; i++) free(c->programs[i]);
  free(c->programs);
  jail_free(c->jail);
  free(c);
}

/* ---- what may run ---- */

const char *const cc_default_programs[] = {"cc",      "gcc",         "clang",      "gcc-[0-9]*",
                                           "clang-[0-9]*", "*-gcc", "*-gcc-[0-9]*", "*-clang"};
const size_t cc_ndefault_programs = sizeof cc_default_programs / sizeof cc_default_programs[0];

/* Flags that change how code is generated and nothing else: exact words,
 * then prefixes, minus the prefixes that load code, run programs or read
 * and write files. */
static int cc_flag_ok(const char *w) {
  static const char *const exact[] = {"-w", "-pipe", "-ansi"};
  static const char *const allowed[] = {"-O", "-m", "-f", "-D", "-U", "-std=", "-W", "-g",
                                        "-pedantic", "--target="};
  static const char *const denied[] = {
      "-mllvm",        "-fplugin",       "-fpass-plugin", "-fprofile",   "-fauto-profile",
      "-fdump",        "-fsanitize-blacklist", "-fsanitize-ignorelist", "-fmodule",
      "-fcrash-diagnostics", "-fuse-ld",  "-foffload",     "-fself-test", "-fltrans",
      "-fwpa",         "-fresolution",   "-fcoverage",    "-fsave-optimization-record",
      "-fopt-info",    "-Wl,",           "-Wa,",          "-Wp,"};
  for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
    if (strcmp(w, exact[i]) == 0) return 1;
  for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++)
    if (strncmp(w, denied[i], strlen(denied[i])) == 0) return 0;
  for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
    if (strncmp(w, allowed[i], strlen(allowed[i])) == 0) return 1;
  return 0;
}

int cc_check(const cc_policy *policy, char *const *argv, char *err, size_t errlen) {
  if (policy && policy->any) return 0;
  const char *const *progs = policy && policy->programs ? policy->programs : cc_default_programs;
  size_t n = policy && policy->programs ? policy->nprograms : cc_ndefault_programs;
  int ok = 0;
  for (size_t i = 0; i < n && !ok; i++) ok = fnmatch(progs[i], argv[0], FNM_PATHNAME) == 0;
  if (!ok) {
    char list[512] = "";
    for (size_t i = 0, o = 0; i < n && o < sizeof list; i++)
      o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", progs[i]);
    snprintf(err, errlen,
             "this builder does not run '%.200s' (it runs %s; its operator can allow more with "
             "ktune-builder --allow-compiler PATTERN)",
             argv[0], list);
    return -EPERM;
  }
  for (char *const *w = argv + 1; *w; w++) {
    /* clang's "-target TRIPLE" is the one flag with a separate value. */
    if (strcmp(*w, "-target") == 0 && w[1] && w[1][0] != '-') {
      w++;
      continue;
    }
    if (!cc_flag_ok(*w)) {
      snprintf(err, errlen,
               "this builder does not pass '%.200s' to a compiler: only flags that change code "
               "generation are allowed (-O*, -m*, -f*, -D*, -U*, -std=*, -W*, -g*, --target=*), "
               "not ones that run programs or read or write files",
               *w);
      return -EPERM;
    }
  }
  return 0;
}

/* ---- small text helpers ---- */

static char *cc_strdup(const char *s) { return strdup(s ? s : ""); }

static char *cc_join(char *const *w, int n) {
  size_t len = 1;
  for (int i = 0; i < n; i++) len += strlen(w[i]) + 1;
  char *s = malloc(len), *p = s;
  if (!s) return NULL;
  for (int i = 0; i < n; i++) {
    size_t l = strlen(w[i]);
    if (i) *p++ = ' ';
    memcpy(p, w[i], l);
    p += l;
  }
  *p = '\0';
  return s;
}

void cc_argv_free(char **argv) {
  if (!argv) return;
  for (char **w = argv; *w; w++) free(*w);
  free(argv);
}

int cc_split(const char *command, char ***argv, char *err, size_t errlen) {
  *argv = NULL;
  if (!command) command = "";
  size_t n = strlen(command);
  char **words = calloc(CC_MAX_WORDS + 1, sizeof *words);
  char *buf = malloc(n + 1);
  int count = 0, rc = 0;
  if (!words || !buf) {
    rc = -ENOMEM;
    snprintf(err, errlen, "out of memory");
    goto out;
  }
  const char *s = command;
  for (;;) {
    while (*s == ' ' || *s == '\t' || *s == '\n') s++;
    if (!*s) break;
    size_t len = 0;
    char quote = 0;
    for (; *s; s++) {
      if (quote == '\'') {
        if (*s == '\'') quote = 0;
        else buf[len++] = *s;
      } else if (*s == '\\') {
        if (!s[1]) break; /* a trailing backslash stands for itself */
        buf[len++] = *++s;
      } else if (quote == '"') {
        if (*s == '"') quote = 0;
        else buf[len++] = *s;
      } else if (*s == '\'' || *s == '"') {
        quote = *s;
      } else if (*s == ' ' || *s == '\t' || *s == '\n') {
        break;
      } else {
        buf[len++] = *s;
      }
    }
    if (*s == '\\' && !s[1]) buf[len++] = *s++;
    if (quote) {
      rc = -EINVAL;
      snprintf(err, errlen, "compiler command '%.200s' has an unclosed %c quote", command, quote);
      goto out;
    }
    if (count == CC_MAX_WORDS) {
      rc = -EINVAL;
      snprintf(err, errlen, "compiler command has more than %d words", CC_MAX_WORDS);
      goto out;
    }
    if (!(words[count] = strndup(buf, len))) {
      rc = -ENOMEM;
      snprintf(err, errlen, "out of memory");
      goto out;
    }
    count++;
  }
  if (count == 0) {
    rc = -EINVAL;
    snprintf(err, errlen, "the compiler command is empty (give e.g. \"gcc -O3\" or tcc)");
  }
out:
  free(buf);
  if (rc < 0) {
    cc_argv_free(words);
    return rc;
  }
  *argv = words;
  return count;
}

void cc_version(const char *text, char *out, size_t len) {
  if (!len) return;
  out[0] = '\0';
  if (!text) return;
  size_t line = strcspn(text, "\n");
  const char *best = NULL;
  size_t best_len = 0;
  for (size_t i = 0; i < line;) {
    while (i < line && text[i] == ' ') i++;
    size_t j = i;
    while (j < line && text[j] != ' ') j++;
    /* A dotted number: "12.2.0", "14.0.6", "0.9.27". */
    if (j > i && text[i] >= '0' && text[i] <= '9' && memchr(text + i, '.', j - i)) {
      size_t k = i;
      while (k < j && ((text[k] >= '0' && text[k] <= '9') || text[k] == '.')) k++;
      best = text + i;
      best_len = k - i;
    }
    i = j;
  }
  if (!best) {
    best = text;
    best_len = line;
  }
  if (best_len >= len) best_len = len - 1;
  memcpy(out, best, best_len);
  out[best_len] = '\0';
}

/* The first lines of what a process printed, plain ASCII, for a message
 * that ends up in JSON and in terminals. */
static void cc_diag(const cc_capture *c, char *out, size_t len) {
  size_t o = 0;
  int lines = 0;
  for (size_t i = 0; c->p && i < c->len && o + 1 < len && lines < CC_DIAG_LINES; i++) {
    unsigned char ch = (unsigned char)c->p[i];
    if (ch == '\n') {
      lines++;
      if (lines == CC_DIAG_LINES || i + 1 == c->len) break;
    } else if (ch == '\t') {
      ch = ' ';
    } else if (ch < 0x20 || ch >= 0x7f) {
      ch = '?';
    }
    out[o++] = (char)ch;
  }
  while (o && (out[o - 1] == '\n' || out[o - 1] == ' ')) o--;
  out[o] = '\0';
}

/* ---- running a process ---- */

static void cc_proc_closed(uv_handle_t *h) {
  cc_proc *p = h->data;
  if (--p->handles > 0) return;
  cc_ctx *c = p->ctx;
  if (p->child.pidfd >= 0) close(p->child.pidfd);
  free(p->cap[0].p);
  free(p->cap[1].p);
  free(p);
  c->live--;
  cc_maybe_free(c);
}

static void cc_proc_close(uv_handle_t *h) {
  if (!uv_is_closing(h)) uv_close(h, cc_proc_closed);
}

static void cc_proc_kill(cc_proc *p) {
  /* The child leads its own process group (jail.h), so this reaches cc1,
   * as and ld too. */
  if (p->spawned && !p->exited) kill(-p->child.pid, SIGKILL);
}

static void cc_proc_finish(cc_proc *p) {
  if (p->finished) return;
  p->finished = 1;
  uv_timer_stop(&p->timer);
  if (p->prev) p->prev->next = p->next;
  else p->ctx->procs = p->next;
  if (p->next) p->next->prev = p->prev;
  if (p->done) p->done(p);
  cc_proc_close((uv_handle_t *)&p->timer);
  cc_proc_close((uv_handle_t *)&p->pipes[0]);
  cc_proc_close((uv_handle_t *)&p->pipes[1]);
  if (p->spawned) cc_proc_close((uv_handle_t *)&p->exitw);
}

static void cc_proc_check(cc_proc *p) {
  if (p->exited && p->eof[0] && p->eof[1]) cc_proc_finish(p);
}

static void cc_proc_on_timer(uv_timer_t *t) {
  cc_proc *p = t->data;
  if (p->spawn_error || p->exited) {
    cc_proc_finish(p); /* pipes still open: held by something that escaped the group */
  } else if (!p->timed_out) {
    p->timed_out = 1;
    cc_proc_kill(p);
    uv_timer_start(&p->timer, cc_proc_on_timer, CC_KILL_GRACE_MS, 0);
  } else {
    cc_proc_finish(p); /* SIGKILL did not end it in time: give up waiting */
  }
}

static void cc_proc_on_exit(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  cc_proc *p = h->data;
  int st;
  if (p->exited || !jail_reap(&p->child, &st)) return;
  uv_poll_stop(h);
  /* Nothing the compiler started may outlive it. Its group id stays taken
   * while any member lives, so this cannot reach a stranger. */
  kill(-p->child.pid, SIGKILL);
  p->exited = 1;
  p->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 0;
  p->term_signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
  p->t1_ns = uv_hrtime();
  uv_timer_start(&p->timer, cc_proc_on_timer, CC_EXIT_GRACE_MS, 0);
  cc_proc_check(p);
}

static void cc_proc_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  cc_proc *p = h->data;
  int i = h == (uv_handle_t *)&p->pipes[1];
  buf->base = p->rbuf[i];
  buf->len = sizeof p->rbuf[i];
}

static void cc_proc_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  cc_proc *p = s->data;
  int i = s == (uv_stream_t *)&p->pipes[1];
  if (n < 0) {
    uv_read_stop(s);
    p->eof[i] = 1;
    cc_proc_check(p);
    return;
  }
  cc_capture *c = &p->cap[i];
  size_t room = CC_CAPTURE_MAX - c->len, take = (size_t)n < room ? (size_t)n : room;
  if (take == 0) return;
  char *q = realloc(c->p, c->len + take + 1);
  if (!q) return;
  memcpy(q + c->len, buf->base, take);
  c->p = q;
  c->len += take;
  c->p[c->len] = '\0';
}

/* The environment of a compiler: ours, with messages in plain ASCII
 * (gcc quotes names with UTF-8 marks in other locales) and temporary
 * files in its work folder, the one place it may write (tmpdir, a
 * "TMPDIR=..." string, or NULL). */
static char **cc_env(char *tmpdir) {
  size_t n = 0;
  while (environ && environ[n]) n++;
  char **env = calloc(n + 3, sizeof *env);
  if (!env) return NULL;
  size_t k = 0;
  env[k++] = "LC_ALL=C";
  if (tmpdir) env[k++] = tmpdir;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "LC_ALL=", 7) != 0 && strncmp(environ[i], "TMPDIR=", 7) != 0)
      env[k++] = environ[i];
  return env;
}

/* Starts argv, or fn(arg) when argv is NULL, in a confined child (jail.h)
 * working in cwd; done(p) runs later, exactly once, from the loop (also
 * when the start itself fails: then p->spawn_error is set). */
static cc_proc *cc_proc_start(cc_ctx *c, char **argv, int (*fn)(void *), void *arg,
                              const char *cwd, uint32_t timeout_ms, cc_proc_fn done, void *data,
                              int tag) {
  cc_proc *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->ctx = c;
  p->done = done;
  p->data = data;
  p->tag = tag;
  p->child.pidfd = -1;
  c->live++;
  p->next = c->procs;
  if (c->procs) c->procs->prev = p;
  c->procs = p;
  uv_timer_init(c->loop, &p->timer);
  uv_pipe_init(c->loop, &p->pipes[0], 0);
  uv_pipe_init(c->loop, &p->pipes[1], 0);
  p->timer.data = p->pipes[0].data = p->pipes[1].data = p->exitw.data = p;
  p->handles = 3; /* the exit watcher joins once the child runs */

  char exe[4096], tmpdir[4096 + 8], **env = NULL;
  int fds[4] = {-1, -1, -1, -1}, rc = 0;
  if (argv && (rc = jail_which(argv[0], exe, sizeof exe)) < 0) goto failed;
  snprintf(tmpdir, sizeof tmpdir, "TMPDIR=%s", cwd ? cwd : "");
  if (argv && !(env = cc_env(cwd ? tmpdir : NULL))) {
    rc = -ENOMEM;
    goto failed;
  }
  if (pipe2(fds, O_CLOEXEC) < 0 || pipe2(fds + 2, O_CLOEXEC) < 0) {
    rc = -errno;
    goto failed;
  }
  char *exe_argv0 = argv ? argv[0] : NULL;
  if (argv) argv[0] = exe;
  jail_spec spec = {argv, env, fn, arg, cwd, timeout_ms, fds[1], fds[3]};
  p->t0_ns = uv_hrtime();
  rc = jail_start(c->jail, &spec, &p->child, p->spawn_msg, sizeof p->spawn_msg);
  if (argv) argv[0] = exe_argv0;
  close(fds[1]);
  close(fds[3]);
  fds[1] = fds[3] = -1;
  if (rc < 0) goto failed;
  uv_pipe_open(&p->pipes[0], fds[0]);
  uv_pipe_open(&p->pipes[1], fds[2]);
  uv_poll_init(c->loop, &p->exitw, p->child.pidfd);
  p->handles++;
  p->spawned = 1;
  free(env);
  uv_poll_start(&p->exitw, UV_READABLE, cc_proc_on_exit);
  uv_read_start((uv_stream_t *)&p->pipes[0], cc_proc_alloc, cc_proc_read);
  uv_read_start((uv_stream_t *)&p->pipes[1], cc_proc_alloc, cc_proc_read);
  uv_timer_start(&p->timer, cc_proc_on_timer, timeout_ms, 0);
  return p;
failed:
  for (int i = 0; i < 4; i++)
    if (fds[i] >= 0) close(fds[i]);
  free(env);
  p->spawn_error = rc;
  p->eof[0] = p->eof[1] = 1;
  uv_timer_start(&p->timer, cc_proc_on_timer, 0, 0);
  return p;
}

/* ---- requests ---- */

static void cc_req_closed(uv_handle_t *h) {
  cc_req *r = h->data;
  cc_ctx *c = r->ctx;
  free(r->command);
  free(r->source);
  free(r->error);
  free(r);
  c->live--;
  cc_maybe_free(c);
}

static void cc_req_free(cc_req *r) {
  if (r->dir[0]) fsutil_rmtree(r->dir);
  uv_close((uv_handle_t *)&r->defer, cc_req_closed);
}

static void cc_req_deliver(cc_req *r, const char *status, const char *error, const uint8_t *so,
                           size_t solen) {
  /* Once the builder is closing, the probe may be freed already. */
  const char *id = r->fixed_id ? r->fixed_id : r->command;
  if (!r->ctx->closed && r->probe && r->probe->id) id = r->probe->id;
  cc_result res = {status, error ? error : "", so, solen, id, r->seconds};
  if (r->ctx->closed) {
    res.status = "CANCELLED";
    res.error = "the builder is stopping";
    res.so = NULL;
    res.solen = 0;
    res.compiler_id = r->fixed_id ? r->fixed_id : r->command; /* its probe may be gone */
  }
  r->done(r->data, &res);
  cc_req_free(r);
}

static void cc_req_on_defer(uv_timer_t *t) {
  cc_req *r = t->data;
  cc_req_deliver(r, r->status, r->error, NULL, 0);
}

/* Results decided while no libuv callback is running are delivered on
 * the next loop turn, so that done never runs inside cc_build. */
static void cc_req_fail(cc_req *r, const char *status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void cc_req_fail(cc_req *r, const char *status, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  r->status = status;
  free(r->error);
  r->error = strdup(msg);
  uv_timer_start(&r->defer, cc_req_on_defer, 0, 0);
}

static void cc_compiled(cc_proc *p) {
  cc_req *r = p->data;
  char diag[CC_DIAG_MAX + 1];
  if (r->ctx->closed) { /* its probe may be gone already */
    cc_req_deliver(r, "CANCELLED", "", NULL, 0);
    return;
  }
  r->seconds = (double)((p->exited ? p->t1_ns : uv_hrtime()) - p->t0_ns) / 1e9;
  if (p->spawn_error) {
    cc_req_fail(r, "UNSUPPORTED", "cannot run '%.200s': %s",
                r->probe ? r->probe->argv[0] : r->command,
                p->spawn_msg[0] ? p->spawn_msg : uv_strerror(p->spawn_error));
    return;
  }
  if (p->timed_out) {
    cc_req_fail(r, "BUILD_TIMEOUT", "compile took longer than %u ms; '%.200s' was killed",
                r->timeout_ms, r->command);
    return;
  }
  cc_diag(&p->cap[1], diag, sizeof diag);
  if (!diag[0]) cc_diag(&p->cap[0], diag, sizeof diag);
  if (!p->exited || p->term_signal || p->exit_status != 0) {
    if (diag[0])
      cc_req_fail(r, "COMPILE_ERROR", "%s", diag);
    else if (p->term_signal)
      cc_req_fail(r, "COMPILE_ERROR", "'%.200s' was killed by signal %d", r->command,
                  p->term_signal);
    else
      cc_req_fail(r, "COMPILE_ERROR", "'%.200s' failed with exit status %lld and no message",
                  r->command, (long long)p->exit_status);
    return;
  }
  char path[4096 + 16];
  snprintf(path, sizeof path, "%s/out.so", r->dir);
  uint8_t *so;
  size_t solen;
  int rc = fsutil_read_file(path, CC_ARTIFACT_MAX, &so, &solen);
  if (rc < 0) {
    cc_req_fail(r, "COMPILE_ERROR", "'%.200s' succeeded but left no usable out.so (%s)%s%s",
                r->command,
                rc == -EFBIG ? "larger than 32 MiB" : rc == -ENODATA ? "empty" : strerror(-rc),
                diag[0] ? ": " : "", diag);
    return;
  }
  cc_req_deliver(r, "ok", "", so, solen);
  free(so);
}

/* The child of a libtcc build: the source is in its copy of our memory,
 * the object goes to its work folder, the messages to stderr. */
static int cc_tcc_main(void *arg) {
  cc_req *r = arg;
  char diag[CC_DIAG_MAX];
  int rc = tcc_build_file(r->source, "out.so", diag, sizeof diag);
  if (rc != 0 && diag[0] && write(2, diag, strlen(diag)) < 0) return 3;
  return rc == 0 ? 0 : rc == -1 ? 1 : 2;
}

/* Makes the work folder, and for an external compiler writes kernel.c
 * there. */
static int cc_workdir(cc_req *r) {
  int rc = jail_mkdtemp(r->dir, sizeof r->dir);
  if (rc < 0) {
    r->dir[0] = '\0';
    cc_req_fail(r, "COMPILE_ERROR", "builder cannot make a temporary folder: %s", strerror(-rc));
    return rc;
  }
  if (r->fixed_id) return 0;
  char path[4096 + 16];
  snprintf(path, sizeof path, "%s/kernel.c", r->dir);
  if ((rc = fsutil_write_file(path, r->source, strlen(r->source))) < 0)
    cc_req_fail(r, "COMPILE_ERROR", "builder cannot write %s: %s", path, strerror(-rc));
  return rc;
}

static void cc_compile(cc_req *r) {
  cc_probe *pr = r->probe;
  char want[64];
  if (!pr) { /* libtcc */
    if (cc_workdir(r) == 0 && !cc_proc_start(r->ctx, NULL, cc_tcc_main, r, r->dir,
                                             r->timeout_ms, cc_compiled, r, 0))
      cc_req_fail(r, "COMPILE_ERROR", "builder out of memory");
    return;
  }
  if (r->target[0]) {
    target_arch(r->target, want, sizeof want);
    if (!pr->arch[0]) {
      cc_req_fail(r, "COMPILE_ERROR",
                  "cannot tell which architecture '%.200s' builds for (it did not answer "
                  "-dumpmachine); the runners need %s",
                  r->command, want);
      return;
    }
    if (strcmp(want, pr->arch) != 0) {
      cc_req_fail(r, "UNSUPPORTED",
                  "target mismatch: '%.200s' builds for %s (%s) but the runners need %s; use a "
                  "compiler that targets %s (a cross compiler) or runners of that architecture",
                  r->command, pr->arch, pr->triple, want, want);
      return;
    }
  }
  if (cc_workdir(r) < 0) return;
  static const char *const tail[] = {"-shared", "-fPIC", "-o", "out.so", "kernel.c"};
  enum { NTAIL = sizeof tail / sizeof tail[0] };
  char **argv = calloc((size_t)pr->argc + NTAIL + 1, sizeof *argv);
  if (!argv) {
    cc_req_fail(r, "COMPILE_ERROR", "builder out of memory");
    return;
  }
  memcpy(argv, pr->argv, (size_t)pr->argc * sizeof *argv);
  memcpy(argv + pr->argc, tail, sizeof tail);
  cc_proc *p = cc_proc_start(r->ctx, argv, NULL, NULL, r->dir, r->timeout_ms, cc_compiled, r, 0);
  free(argv);
  if (!p) cc_req_fail(r, "COMPILE_ERROR", "builder out of memory");
}

/* ---- probes ---- */

static void cc_probe_free(cc_probe *pr) {
  cc_argv_free(pr->argv);
  free(pr->key);
  free(pr->id);
  for (int i = 0; i < PROBE_COUNT; i++) free(pr->out[i]);
  free(pr);
}

static void cc_probe_unlink(cc_probe *pr) {
  for (cc_probe **q = &pr->ctx->probes; *q; q = &(*q)->next)
    if (*q == pr) {
      *q = pr->next;
      return;
    }
}

/* What "native" means to this compiler: gcc shows the CPU it picked in
 * the cc1 command line (-march=znver3), clang as -target-cpu. */
static void cc_native(const char *dump, char *out, size_t len) {
  out[0] = '\0';
  if (!dump) return;
  static const char *const keys[] = {"-march=", "-mcpu=", "\"-target-cpu\" \""};
  for (size_t k = 0; k < sizeof keys / sizeof keys[0] && !out[0]; k++) {
    size_t kl = strlen(keys[k]);
    for (const char *s = strstr(dump, keys[k]); s; s = strstr(s + 1, keys[k])) {
      const char *v = s + kl;
      size_t n = strcspn(v, "\" \n'");
      if (n == 0 || (n == 6 && strncmp(v, "native", 6) == 0)) continue;
      snprintf(out, len, "%.*s", (int)n, v);
      break;
    }
  }
}

static int cc_probe_identify(cc_probe *pr) {
  char version[128], native[64] = "";
  cc_version(pr->out[PROBE_VERSION], version, sizeof version);
  if (!version[0]) snprintf(version, sizeof version, "?");
  cc_native(pr->out[PROBE_NATIVE], native, sizeof native);
  snprintf(pr->triple, sizeof pr->triple, "%.*s",
           (int)strcspn(pr->out[PROBE_MACHINE] ? pr->out[PROBE_MACHINE] : "", " \r\n"),
           pr->out[PROBE_MACHINE] ? pr->out[PROBE_MACHINE] : "");
  if (pr->triple[0]) target_arch(pr->triple, pr->arch, sizeof pr->arch);
  const char *base = strrchr(pr->argv[0], '/');
  base = base ? base + 1 : pr->argv[0];
  char *flags = cc_join(pr->argv + 1, pr->argc - 1);
  if (!flags) return -ENOMEM;
  size_t len = strlen(base) + strlen(version) + strlen(flags) + strlen(native) + 32;
  if (!(pr->id = malloc(len))) {
    free(flags);
    return -ENOMEM;
  }
  snprintf(pr->id, len, "%s %s%s%s%s%s%s", base, version, flags[0] ? " " : "", flags,
           native[0] ? " (native=" : "", native, native[0] ? ")" : "");
  free(flags);
  return 0;
}

/* Every question has its answer (or failed): start the waiting builds. */
static void cc_probe_done(cc_probe *pr) {
  cc_probe_unlink(pr);
  int failed = pr->failed || pr->ctx->closed;
  if (!failed && cc_probe_identify(pr) < 0) {
    failed = 1;
    snprintf(pr->fail, sizeof pr->fail, "builder out of memory");
  }
  cc_req *w = pr->waiters;
  pr->waiters = NULL;
  if (failed) {
    /* Not remembered: the compiler may be installed by the next job. */
    for (; w; w = w->next) {
      w->probe = NULL;
      cc_req_fail(w, "UNSUPPORTED", "%s", pr->fail);
    }
    cc_probe_free(pr);
    return;
  }
  pr->ready = 1;
  pr->next = pr->ctx->probes;
  pr->ctx->probes = pr;
  while (w) {
    cc_req *next = w->next;
    w->next = NULL;
    cc_compile(w);
    w = next;
  }
}

static void cc_probed(cc_proc *p) {
  cc_probe *pr = p->data;
  if (p->tag == PROBE_VERSION && p->spawn_error) {
    pr->failed = 1;
    snprintf(pr->fail, sizeof pr->fail, "cannot run '%.200s': %s%s", pr->argv[0],
             uv_strerror(p->spawn_error),
             p->spawn_error == UV_ENOENT ? " (is the compiler installed on this builder?)" : "");
  }
  /* --version and -dumpmachine answer on stdout; -### on stderr. */
  const cc_capture *cap = &p->cap[p->tag == PROBE_NATIVE ? 1 : 0];
  if (!p->timed_out && p->exited && p->exit_status == 0 && cap->p)
    pr->out[p->tag] = strdup(cap->p);
  if (--pr->pending == 0) cc_probe_done(pr);
}

static int cc_probe_start(cc_probe *pr) {
  static const char *const extra[PROBE_COUNT][5] = {
      {"--version", NULL}, {"-dumpmachine", NULL}, {"-###", "-E", "-x", "c", "/dev/null"}};
  int want_native = strstr(pr->key, "=native") != NULL;
  for (int i = 0; i < PROBE_COUNT; i++) {
    if (i == PROBE_NATIVE && !want_native) continue;
    size_t ne = 0;
    while (ne < 5 && extra[i][ne]) ne++;
    char **argv = calloc((size_t)pr->argc + ne + 1, sizeof *argv);
    if (!argv) return -ENOMEM;
    memcpy(argv, pr->argv, (size_t)pr->argc * sizeof *argv);
    memcpy(argv + pr->argc, extra[i], ne * sizeof *argv);
    cc_proc *p =
        cc_proc_start(pr->ctx, argv, NULL, NULL, NULL, CC_PROBE_TIMEOUT_MS, cc_probed, pr, i);
    free(argv);
    if (!p) return -ENOMEM;
    pr->pending++;
  }
  return 0;
}

/* ---- the interface ---- */

int cc_new_limited(uv_loop_t *loop, const cc_policy *policy, const jail_opts *limits,
                   cc_ctx **out) {
  *out = NULL;
  cc_ctx *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  c->loop = loop;
  c->any = policy && policy->any;
  if (jail_new(limits, &c->jail) < 0) {
    free(c);
    return -ENOMEM;
  }
  if (policy && policy->programs && policy->nprograms) {
    if (!(c->programs = calloc(policy->nprograms, sizeof *c->programs))) {
      c->closed = 1;
      cc_maybe_free(c);
      return -ENOMEM;
    }
    for (; c->nprograms < policy->nprograms; c->nprograms++)
      if (!(c->programs[c->nprograms] = strdup(policy->programs[c->nprograms]))) {
        c->closed = 1;
        cc_maybe_free(c);
        return -ENOMEM;
      }
  }
  *out = c;
  return 0;
}

int cc_new(uv_loop_t *loop, const cc_policy *policy, cc_ctx **out) {
  return cc_new_limited(loop, policy, NULL, out);
}

const char *cc_sandbox(const cc_ctx *c, int *confined) { return jail_describe(c->jail, confined); }

void cc_close(cc_ctx *c) {
  if (!c || c->closed) return;
  c->closed = 1;
  for (cc_proc *p = c->procs; p; p = p->next) cc_proc_kill(p);
  /* Probes still asking are freed when their processes end. */
  cc_probe **q = &c->probes;
  while (*q) {
    cc_probe *pr = *q;
    if (pr->ready) {
      *q = pr->next;
      cc_probe_free(pr);
    } else {
      q = &pr->next;
    }
  }
  cc_maybe_free(c);
}

static cc_req *cc_req_new(cc_ctx *c, const char *command, const char *source,
                          const char *target_arch, uint32_t timeout_ms, cc_done_fn done,
                          void *data) {
  if (!c || c->closed || !done) return NULL;
  cc_req *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  if (!(r->command = cc_strdup(command)) || !(r->source = cc_strdup(source))) {
    free(r->command);
    free(r);
    return NULL;
  }
  r->ctx = c;
  r->done = done;
  r->data = data;
  r->timeout_ms = timeout_ms ? timeout_ms : CC_DEFAULT_TIMEOUT_MS;
  snprintf(r->target, sizeof r->target, "%s", target_arch ? target_arch : "");
  uv_timer_init(c->loop, &r->defer);
  r->defer.data = r;
  c->live++;
  return r;
}

int cc_build_tcc(cc_ctx *c, const char *source, uint32_t timeout_ms, cc_done_fn done,
                 void *data) {
  if (!c || c->closed || !done) return -EINVAL;
  cc_req *r = cc_req_new(c, "tcc", source, NULL, timeout_ms, done, data);
  if (!r) return -ENOMEM;
  r->fixed_id = tcc_compiler_id();
  cc_compile(r);
  return 0;
}

int cc_build(cc_ctx *c, const char *command, const char *source, const char *target_arch,
             uint32_t timeout_ms, cc_done_fn done, void *data) {
  if (!c || c->closed || !done) return -EINVAL;
  cc_req *r = cc_req_new(c, command, source, target_arch, timeout_ms, done, data);
  if (!r) return -ENOMEM;

  char **argv, err[1024];
  int argc = cc_split(command, &argv, err, sizeof err);
  if (argc < 0) {
    cc_req_fail(r, "COMPILE_ERROR", "%s", err);
    return 0;
  }
  cc_policy pol = {(const char *const *)c->programs, c->nprograms, c->any};
  if (cc_check(&pol, argv, err, sizeof err) < 0) {
    cc_argv_free(argv);
    cc_req_fail(r, "UNSUPPORTED", "%s", err);
    return 0;
  }
  char *key = cc_join(argv, argc);
  cc_probe *pr = NULL;
  for (cc_probe *q = c->probes; key && q && !pr; q = q->next)
    if (strcmp(q->key, key) == 0) pr = q;
  if (pr) {
    free(key);
    cc_argv_free(argv);
    r->probe = pr;
    if (pr->ready) cc_compile(r);
    else {
      *pr->waiters_tail = r;
      pr->waiters_tail = &r->next;
    }
    return 0;
  }
  if (!key || !(pr = calloc(1, sizeof *pr))) {
    free(key);
    cc_argv_free(argv);
    cc_req_fail(r, "COMPILE_ERROR", "builder out of memory");
    return 0;
  }
  pr->ctx = c;
  pr->key = key;
  pr->argv = argv;
  pr->argc = argc;
  pr->waiters = r;
  pr->waiters_tail = &r->next;
  r->probe = pr;
  pr->next = c->probes;
  c->probes = pr;
  if (cc_probe_start(pr) < 0) {
    pr->failed = 1;
    snprintf(pr->fail, sizeof pr->fail, "builder out of memory");
    if (pr->pending == 0) cc_probe_done(pr); /* nothing started will call back */
  }
  return 0;
}
