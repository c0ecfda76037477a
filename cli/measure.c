/* ktune measure: the measurement back end for a tuner of one's own
 * (Optuna, Kernel Tuner, a script). It reads configs as JSON lines on
 * stdin, sends each to an external session (tracker/external.c) on the
 * same farm `ktune tune` uses, and writes one line per config on stdout
 * as its trial ends: the trial's fields as `ktune export` writes them,
 * after the input's line number ("line"), or {"line":N,"error":"..."} for
 * a config that was not measured. Results come in the order trials end. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/wire.h"

/* Configs sent and not answered yet: stdin waits beyond this (the
 * tracker takes at most 1024 per session). */
#define MEASURE_WINDOW 256
/* A longer line is an error line, not a config. */
#define MEASURE_LINE_MAX (1 << 20)

typedef struct {
  client *c;
  uint64_t session;
  uint64_t lineno;         /* lines of stdin read so far */
  char *buf;               /* the line being read */
  size_t len, cap;
  int skipping;            /* the rest of a line that is too long */
  char in[65536];          /* read from stdin, taken from in_pos on */
  size_t in_pos, in_len;
  int eof;
  uint64_t *open;          /* lines sent and not answered */
  size_t nopen, capopen;
} measure;

static void usage(FILE *f) {
  static const char *const own[] = {NULL};
  cli_session_usage(f, "measure", own);
  fprintf(f,
          "\n"
          "Measures the configs of TASK that standard input gives, one JSON object of\n"
          "knob values a line, e.g. {\"MR\":4,\"NV\":2,\"VW\":8,\"KU\":2,\"KC\":128,\"MC\":64,\"NC\":512},\n"
          "on the farm `ktune tune` would use: for the tuner you bring. Configs the history\n"
          "measured under the same conditions are answered from it (unless --remeasure).\n");
  cli_session_help(f);
  fprintf(f,
          "\n"
          "Prints one JSON line per config on standard output as its trial ends, so not\n"
          "in input order: \"line\" (its line number in the input, from 1), then the\n"
          "fields `ktune export --format jsonl` writes for a trial (status, mean_s,\n"
          "gflops, config, ...; docs/HISTORY.md). A config that is not measured (bad\n"
          "JSON, an unknown or missing knob, a value not in the knob's list, a config\n"
          "the constraints rule out) gets {\"line\":N,\"error\":\"...\"} and the rest go on.\n"
          "Blank lines are skipped. At the end of input it waits for the trials still\n"
          "running. Messages go to standard error.\n"
          "\n"
          "Exit status: 0 when every config got its line (whatever the trials' status),\n"
          "1 when the farm failed (lines not measured then get an error line), 2 for a\n"
          "usage error.\n");
}

/* {"line":N,"error":"..."}: the line first, as every output line has it. */
static void print_error(uint64_t line, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  json_t *o = json_object();
  json_object_set_new(o, "line", json_integer((json_int_t)line));
  json_t *text_of = json_string(msg);
  json_object_set_new(o, "error", text_of ? text_of : json_string("(the message is not UTF-8)"));
  char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  if (text) printf("%s\n", text);
  free(text);
  json_decref(o);
  fflush(stdout);
}

/* The export line with "line" put in front of its fields, its text
 * otherwise untouched. */
static void print_trial(uint64_t line, const char *trial) {
  if (trial[0] != '{') {
    print_error(line, "the tracker sent a trial that is not a JSON object");
    return;
  }
  printf("{\"line\":%llu%s%s\n", (unsigned long long)line, trial[1] == '}' ? "" : ",", trial + 1);
  fflush(stdout);
}

static int open_add(measure *m, uint64_t line) {
  if (m->nopen == m->capopen) {
    size_t cap = m->capopen ? 2 * m->capopen : 64;
    uint64_t *p = realloc(m->open, cap * sizeof(*p));
    if (!p) return -1;
    m->open = p;
    m->capopen = cap;
  }
  m->open[m->nopen++] = line;
  return 0;
}

/* 1 when line was open (now answered), 0 when it was not. */
static int open_take(measure *m, uint64_t line) {
  for (size_t i = 0; i < m->nopen; i++)
    if (m->open[i] == line) {
      m->open[i] = m->open[--m->nopen];
      return 1;
    }
  return 0;
}

/* A knob's value: a whole number (4, or 4.0). */
static int knob_value(json_t *v, int64_t *out) {
  if (json_is_integer(v)) {
    *out = json_integer_value(v);
    return 0;
  }
  double d = json_is_real(v) ? json_real_value(v) : 0.5;
  if (d != (double)(int64_t)d || d < -9.2e18 || d > 9.2e18) return -1;
  *out = (int64_t)d;
  return 0;
}

/* One line of input: a config sent, or an error line. -1 only when the
 * tracker cannot be written to. */
static int take_line(measure *m, const char *text, size_t n, char *err, size_t errlen) {
  uint64_t line = ++m->lineno;
  size_t blank = 0;
  while (blank < n && strchr(" \t\r", text[blank])) blank++;
  if (blank == n) return 0;
  json_error_t je;
  json_t *o = json_loadb(text, n, 0, &je);
  if (!o) {
    print_error(line, "malformed JSON: %s (at column %d)", je.text, je.column);
    return 0;
  }
  if (!json_is_object(o)) {
    print_error(line, "a config is a JSON object of knob values, such as {\"MR\":4}");
    json_decref(o);
    return 0;
  }
  size_t nk = json_object_size(o), i = 0;
  Ktune__Param *ps = calloc(nk ? nk : 1, sizeof(*ps));
  Ktune__Param **pp = calloc(nk ? nk : 1, sizeof(*pp));
  const char *name;
  json_t *v;
  int rc = ps && pp ? 0 : -1;
  json_object_foreach(o, name, v) {
    if (rc < 0) break;
    ktune__param__init(&ps[i]);
    ps[i].name = (char *)name;
    if (knob_value(v, &ps[i].value) < 0) {
      char *shown = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
      print_error(line, "%s: a knob's value is a whole number, not %.60s", name,
                  shown ? shown : "that");
      free(shown);
      rc = 1;
      break;
    }
    pp[i] = &ps[i];
    i++;
  }
  if (rc == 0) {
    Ktune__MeasureConfig mc = KTUNE__MEASURE_CONFIG__INIT;
    mc.session_id = m->session;
    mc.line = line;
    mc.config = pp;
    mc.n_config = nk;
    Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_MEASURE_CONFIG, &mc);
    rc = open_add(m, line) < 0 ? -1 : client_send(m->c, &env, err, errlen);
  } else if (rc < 0) {
    snprintf(err, errlen, "out of memory");
  }
  free(ps);
  free(pp);
  json_decref(o);
  return rc < 0 ? -1 : 0;
}

/* The end of a line: a config, or an error line for one too long. */
static int end_line(measure *m, char *err, size_t errlen) {
  int rc = 0;
  if (m->skipping) print_error(++m->lineno, "the line is longer than %d bytes", MEASURE_LINE_MAX);
  else rc = take_line(m, m->buf, m->len, err, errlen);
  m->len = 0;
  m->skipping = 0;
  return rc;
}

/* Takes the lines read so far while fewer than MEASURE_WINDOW configs
 * wait for their answer. -1 when a config cannot be sent. */
static int take_input(measure *m, char *err, size_t errlen) {
  while (m->in_pos < m->in_len && m->nopen < MEASURE_WINDOW) {
    char ch = m->in[m->in_pos++];
    if (ch == '\n') {
      if (end_line(m, err, errlen) < 0) return -1;
    } else if (m->skipping) {
      continue;
    } else if (m->len == MEASURE_LINE_MAX) {
      m->skipping = 1;
    } else {
      if (m->len == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 4096;
        char *b = realloc(m->buf, cap);
        if (!b) {
          snprintf(err, errlen, "out of memory");
          return -1;
        }
        m->buf = b;
        m->cap = cap;
      }
      m->buf[m->len++] = ch;
    }
  }
  return 0;
}

/* Reads what stdin has; at its end, the last line may lack a newline. */
static int read_input(measure *m, char *err, size_t errlen) {
  ssize_t n = read(STDIN_FILENO, m->in, sizeof(m->in));
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return 0;
  if (n < 0) fprintf(stderr, "ktune measure: reading standard input: %s\n", strerror(errno));
  if (n > 0) {
    m->in_pos = 0;
    m->in_len = (size_t)n;
    return take_input(m, err, errlen);
  }
  m->eof = 1;
  return m->len || m->skipping ? end_line(m, err, errlen) : 0;
}

/* The farm failed: every config sent and not answered gets its error. */
static int fail_open(measure *m, const char *why) {
  for (size_t i = 0; i < m->nopen; i++)
    print_error(m->open[i], "not measured: %s", why);
  m->nopen = 0;
  return EXIT_FAIL;
}

/* The session's end: all is well when every config sent was answered
 * after the input ended. */
static int session_ended(measure *m, const Ktune__SessionProgress *p) {
  char why[512];
  snprintf(why, sizeof(why), "session %llu %s%s%s", (unsigned long long)m->session,
           wire_state_name(p->state), p->message[0] ? ": " : "", p->message);
  if (!m->eof || m->nopen) {
    fprintf(stderr, "ktune measure: %s\n", why);
    return fail_open(m, why);
  }
  fprintf(stderr, "session %llu: %u trials, %u failed, %u from the history\n",
          (unsigned long long)m->session, p->trials_done, p->failures, p->reused);
  return EXIT_OK;
}

static int measure_loop(measure *m) {
  char err[512], said[256] = "";
  int told_done = 0;
  for (;;) {
    if (m->eof && !told_done) {
      /* No more configs: the session ends once the last is answered. */
      Ktune__MeasureDone md = KTUNE__MEASURE_DONE__INIT;
      md.session_id = m->session;
      Ktune__Envelope env = wire_envelope(KTUNE__ENVELOPE__MSG_MEASURE_DONE, &md);
      if (client_send(m->c, &env, err, sizeof(err)) < 0) break;
      told_done = 1;
    }
    int room = m->nopen < MEASURE_WINDOW, ready;
    if (room && m->in_pos < m->in_len) {
      if (take_input(m, err, sizeof(err)) < 0) break;
      continue;
    }
    int input = !m->eof && room ? STDIN_FILENO : -1;
    Ktune__Envelope *e = client_recv_or(m->c, input, &ready, -1, err, sizeof(err));
    if (!e && ready) {
      if (read_input(m, err, sizeof(err)) < 0) break;
      continue;
    }
    if (!e) break;
    if (e->msg_case == KTUNE__ENVELOPE__MSG_TRIAL_RESULT &&
        e->trial_result->session_id == m->session && open_take(m, e->trial_result->line)) {
      const Ktune__TrialResult *r = e->trial_result;
      if (r->error[0]) print_error(r->line, "%s", r->error);
      else print_trial(r->line, r->trial);
    } else if (e->msg_case == KTUNE__ENVELOPE__MSG_PROGRESS) {
      const Ktune__SessionProgress *p = e->progress;
      if (p->state != WIRE_SESSION(RUNNING) && p->state != WIRE_SESSION(QUEUED)) {
        int rc = session_ended(m, p);
        wire_free(e);
        return rc;
      }
      /* What a running session waits for is said once. */
      if (strcmp(p->message, said) != 0) {
        snprintf(said, sizeof(said), "%s", p->message);
        if (said[0]) fprintf(stderr, "ktune measure: %s\n", said);
      }
    }
    wire_free(e);
  }
  fprintf(stderr, "ktune measure: %s\n", err);
  return fail_open(m, err);
}

typedef struct {
  cli_session_opts *o;
  const task_spec *t;
} measure_job;

static int run_measure(void *ctx, const cli_dial *d, int shared) {
  const measure_job *j = ctx;
  (void)shared; /* the session ends with this connection, on any farm */
  client c;
  int rc;
  Ktune__Envelope *acc = cli_session_submit("measure", j->o, d, j->t, &c, &rc);
  if (!acc) return rc;
  measure m = {.c = &c, .session = acc->accepted->session_id};
  wire_free(acc);
  fprintf(stderr, "session %llu: %s on key %s, configs from standard input\n",
          (unsigned long long)m.session, j->t->name, j->o->key);
  rc = measure_loop(&m);
  client_close(&c);
  free(m.buf);
  free(m.open);
  return rc;
}

int cmd_measure(int argc, char **argv) {
  cli_session_opts o;
  cli_session_defaults(&o, argc);
  o.strategy = "external"; /* no tuner: the configs are ours */
  o.trials = 0;
  const struct option *opts = cli_session_longopts(NULL, 0);
  int ch, rc = EXIT_USAGE;
  while ((ch = getopt_long(argc, argv, "D:h", opts, NULL)) != -1) {
    int shared = cli_session_option(&o, "measure", ch, optarg);
    if (shared < 0) goto out;
    if (shared) continue;
    usage(ch == 'h' ? stdout : stderr);
    if (ch == 'h') rc = EXIT_OK;
    goto out;
  }
  if (argc - optind != 1) {
    fprintf(stderr, "ktune measure: name one task (`ktune tasks` lists the built-in ones) or a "
                    "spec file\n");
    usage(stderr);
    goto out;
  }
  o.task_arg = argv[optind];
  if (cli_session_check(&o, "measure") < 0) goto out;
  task_spec t;
  if (cli_session_task("measure", &o, &t) < 0) goto out;
  measure_job j = {&o, &t};
  /* stdout carries the results alone. */
  rc = cli_session_run("measure", &o, stderr, run_measure, &j);
  task_free(&t);
out:
  cli_session_opts_free(&o);
  return rc;
}
