/* Following a session: its progress lines while it runs, the lines that
 * end it, and the pieces of its --json summary. `ktune tune`, `ktune
 * wait`/`attach` and the batches of a workload all follow sessions. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/format.h"
#include "common/wire.h"

static void fmt_config(char *buf, size_t len, Ktune__Param **ps, size_t n) {
  size_t off = 0;
  buf[0] = 0;
  for (size_t i = 0; i < n && off < len; i++)
    off += (size_t)snprintf(buf + off, len - off, "%s%s=%lld", i ? " " : "", ps[i]->name,
                            (long long)ps[i]->value);
}

static void print_progress(const Ktune__SessionProgress *p, int verbose) {
  char lat[32], last[32], best[32];
  /* A memory-bound task's speed is the bytes it moves. */
  int gb = p->bytes_counted;
  cli_fmt_latency(lat, sizeof(lat), p->best_latency_s);
  cli_fmt_rate(best, sizeof(best), 8, gb ? p->best_gbps : p->best_gflops, gb);
  /* A batch with nothing measured has no speed, not a speed of 0; its "-"
   * keeps the column as wide as a speed. */
  cli_fmt_rate(last, sizeof(last), 8, gb ? p->last_gbps : p->last_gflops, gb);
  int last_w = (int)strlen(last);
  if (!(p->last_gflops > 0)) snprintf(last, sizeof(last), "       -");
  int w = snprintf(NULL, 0, "%u", p->trials);
  char reused[32] = "";
  /* A rerun answered from the history must not look like a measurement. */
  if (p->reused) snprintf(reused, sizeof(reused), "  reused %u", p->reused);
  /* Why trials fail belongs where people look: this line. */
  const char *why = p->failures && p->failures_text && p->failures_text[0] ? p->failures_text : NULL;
  printf("[%*u/%u] last %-*s  best %s (%s)  failed %u%s%s%s%s  %.1f s\n", w,
         p->trials_done, p->trials, last_w, last, best, lat, p->failures, why ? " (" : "",
         why ? why : "", why ? ")" : "", reused, p->wall_s);
  /* What the search is doing, under the numbers it explains. */
  if (p->search && p->search[0]) printf("%*s  %s\n", 2 * w + 1, "", p->search);
  /* Choosing must cost a small share of measuring: here is the share. */
  if (verbose && p->wall_s > 0)
    printf("%*s  search: %.3f s in all, %.2f%% of the %.1f s so far\n", 2 * w + 1, "",
           p->search_s, 100 * p->search_s / p->wall_s, p->wall_s);
  fflush(stdout);
}

int cli_follow(client *c, uint64_t id, int how, Ktune__Envelope **final) {
  int silent = how & CLI_FOLLOW_SILENT;
  int quiet = silent || (how & CLI_FOLLOW_QUIET), verbose = how & CLI_FOLLOW_VERBOSE;
  if (final) *final = NULL;
  char err[512], said[256] = "";
  uint32_t shown = 0; /* trials_done of the last progress line printed */
  for (;;) {
    Ktune__Envelope *m = client_recv(c, -1, err, sizeof(err));
    if (!m && c->interrupted) return CLI_INTERRUPTED;
    if (!m) {
      fprintf(stderr, "ktune: %s; session %llu may still be running on the tracker\n", err,
              (unsigned long long)id);
      return EXIT_FAIL;
    }
    if (m->msg_case != KTUNE__ENVELOPE__MSG_PROGRESS) {
      wire_free(m);
      continue;
    }
    Ktune__SessionProgress *p = m->progress;
    int running = p->state == WIRE_SESSION(RUNNING) || p->state == WIRE_SESSION(QUEUED);
    if (running) {
      /* What a running session waits for gets a line of its own, once. */
      const char *msg = p->message ? p->message : "";
      int news = strcmp(msg, said) != 0;
      if (news) snprintf(said, sizeof(said), "%s", msg);
      if (!quiet && news && msg[0]) printf("%s\n", msg);
      if (!quiet && (!news || p->trials_done != shown)) print_progress(p, verbose);
      shown = p->trials_done;
      fflush(stdout);
      wire_free(m);
      continue;
    }
    int rc = EXIT_OK;
    int done = p->state == WIRE_SESSION(DONE);
    if (silent) {
      rc = done && p->n_best_config ? EXIT_OK : EXIT_FAIL;
      if (final) *final = m;
      else wire_free(m);
      return rc;
    }
    print_progress(p, verbose);
    if (done && p->message && p->message[0]) printf("note: %s\n", p->message);
    if (!done) {
      fprintf(stderr, "ktune: session %llu %s%s%s\n", (unsigned long long)id,
              wire_state_name(p->state),
              p->message[0] ? ": " : "", p->message);
      rc = EXIT_FAIL;
    } else if (p->n_best_config == 0) {
      fprintf(stderr, "ktune: session %llu measured no config successfully (%u failed); "
                      "`ktune export` shows each trial's error\n",
              (unsigned long long)id, p->failures);
      rc = EXIT_FAIL;
    } else {
      char cfg[1024], lat[32], rate[32];
      fmt_config(cfg, sizeof(cfg), p->best_config, p->n_best_config);
      cli_fmt_latency(lat, sizeof(lat), p->best_latency_s);
      cli_fmt_rate(rate, sizeof(rate), 0, p->bytes_counted ? p->best_gbps : p->best_gflops,
                   p->bytes_counted);
      printf("best: %s\n      latency %s, %s (session %llu, %u trials, %u failed, "
             "%u from the history)\n", cfg, lat, rate, (unsigned long long)id,
             p->trials_done, p->failures, p->reused);
      if (p->confirmed_latency_s > 0) {
        char conf[32];
        cli_fmt_latency(conf, sizeof(conf), p->confirmed_latency_s);
        double diff = (p->confirmed_latency_s / p->best_latency_s - 1) * 100;
        printf("      confirmed: %s when measured again with the %u best, taking turns on one "
               "runner (%+.1f%% from the search's %s)\n", conf, p->confirmed, diff, lat);
        if (p->search_best_latency_s > 0 && p->search_best_latency_s < p->best_latency_s) {
          /* Why the best went down at the end: another config won. */
          char fastest[32];
          cli_fmt_latency(fastest, sizeof(fastest), p->search_best_latency_s);
          printf("      (the search's fastest, %s, was slower than this when measured again: "
                 "this config is the winner)\n", fastest);
        }
      }
    }
    if (final) *final = m;
    else wire_free(m);
    return rc;
  }
}

json_t *cli_best_json(const Ktune__SessionProgress *p) {
  if (!p || !p->n_best_config) return json_null();
  json_t *best = json_object(), *cfg = json_object();
  for (size_t i = 0; i < p->n_best_config; i++)
    json_object_set_new(cfg, p->best_config[i]->name, json_integer(p->best_config[i]->value));
  json_object_set_new(best, "config", cfg);
  json_object_set_new(best, "latency_s", json_real(p->best_latency_s));
  json_object_set_new(best, "gflops", json_real(p->best_gflops));
  if (p->bytes_counted) json_object_set_new(best, "gbps", json_real(p->best_gbps));
  /* Measured again at the end (--confirm): the winner's latency then. */
  json_object_set_new(best, "confirmed_latency_s", p->confirmed_latency_s > 0
                                                       ? json_real(p->confirmed_latency_s)
                                                       : json_null());
  json_object_set_new(best, "confirmed", json_integer(p->confirmed));
  /* The search's fastest, when confirmation chose another config. */
  if (p->search_best_latency_s > 0 && p->search_best_latency_s < p->best_latency_s)
    json_object_set_new(best, "search_fastest_latency_s", json_real(p->search_best_latency_s));
  return best;
}

void cli_add_failures(json_t *failures, const Ktune__SessionProgress *p) {
  for (size_t i = 0; p && i < p->n_failure_counts; i++) {
    const char *st = p->failure_counts[i]->status;
    json_int_t had = json_integer_value(json_object_get(failures, st));
    json_object_set_new(failures, st, json_integer(had + p->failure_counts[i]->count));
  }
}
