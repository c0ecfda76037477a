/* The tracker's state, shared by its subsystems. From the ground up,
 * each calling only those below it:
 *   metrics.c  counters and histograms its hooks feed, and the Prometheus
 *              text of a scrape (tracker/metrics.h); it calls no other part
 *   checkpoint.c the history's WAL checkpoints, on the thread pool
 *              (tracker/checkpoint.h); it calls no other part
 *   store.c    the history's writes (sessions, trials, jobs) and the reads
 *              only the tracker makes (reuse, resume)
 *   core.c     this loop turn's history transaction, and sending
 *   guard.c    what an agent may report, and agents that misbehave
 *   owners.c   what each person may use: weight and quotas, and where
 *              each came from (tokens file, --owner, default)
 *   share.c    fair shares of a key's runners: each owner's runner time,
 *              weights, the order in which sessions are served
 *   queue.c    where unfinished jobs wait: per session, per key, by id
 *   dblock.c   one tracker per history file
 *   registry.c connected peers (builders, runners, clients), status
 *   jobs.c     the job queue: build, run, leases, what agents report; it
 *              tells the session layer through t->hooks, never by name
 *   confirm.c  a session's best configs measured again at its end: the
 *              candidates, their runs' turns, the winner
 *   trial.c    a trial's statistics, identity and row: recorded here only
 *   external.c the configs of an external session (ktune measure): checked,
 *              queued for session.c to take, answered as their trials end
 *   session.c  tuning sessions: the tuner's candidates, reuse, progress,
 *              the end
 *   submit.c   checking a submission on the thread pool, storing it, and
 *              resuming stored sessions after a restart
 *   server.c   listening, per-connection state machine, command table,
 *              liveness sweep, signals
 * One thread, one libuv loop; nothing here blocks on the network. */
#ifndef KTUNE_TRACKER_H
#define KTUNE_TRACKER_H

#include <stdint.h>
#include <uv.h>

#include "common/auth.h"
#include "common/conn.h"
#include "common/history.h"
#include "common/space.h"
#include "common/task.h"
#include "tracker/checkpoint.h"
#include "tracker/metrics.h"
#include "tuner/tuner.h"

typedef struct session session;
typedef struct session_pending session_pending;
typedef struct job job;
typedef struct peer peer;
typedef struct agent_record agent_record;
typedef struct external external;
typedef struct replay replay;
typedef struct replay_entry replay_entry;
typedef struct keyq keyq;
typedef struct confirm confirm;
typedef struct share share;
typedef struct http http;

typedef struct {
  const char *listen;
  const char *db_path;
  const char *port_file;
  const char *http;        /* --http: serve the dashboard and metrics there */
  const char *http_port_file;
  const char *replay_path; /* --replay: answer trials from this recording */
  int sync_full;
  uint32_t heartbeat_ms;
  uint32_t timeout_ms;
  uint32_t hello_timeout_ms;
  uint32_t max_frame;
  uint32_t build_timeout_ms;
  uint32_t run_timeout_ms;
  uint32_t max_lost;       /* agents a job may lose before RUNNER_LOST */
  const char *tokens_path; /* --tokens: who may connect, in which role */
  int insecure;            /* listen beyond loopback without tokens */
  uint32_t max_conns;      /* connections at once */
  uint32_t max_unauth;     /* connections that have not logged in yet */
  uint32_t max_unauth_addr; /* the same, from one address */
  uint32_t auth_delay_ms;  /* a failed login waits this long for its answer */
  uint32_t max_sessions;   /* unfinished sessions per client */
  uint32_t max_queued;     /* trials not yet recorded, per client */
  uint32_t max_knobs;      /* knobs per task */
  uint32_t max_values;     /* values per knob */
  uint64_t max_space;      /* configs in a task's space */
  uint32_t max_artifact;   /* bytes of a built shared object */
  uint32_t max_constraint_bytes; /* text of a task's constraints */
  uint32_t grace_ms;       /* a leased job's deadline: its limit plus this */
  double max_gflops;       /* results faster than this are refused as implausible */
  uint32_t unknown_key_wait_ms; /* a never-served key's wait without --wait-timeout; 0: none */
  uint32_t remeasure_spread_pct; /* rounds spread wider (std / mean, %) are measured again; 0: never */
  uint32_t share_half_life_s; /* runner time used counts half after this long (share.c) */
  auth_entry *owners;      /* --owner and --share: fields for people the tokens file
                            * gives none (owners.c); the last for a name counts */
  uint32_t nowners;
} tracker_opts;

typedef struct tracker tracker;

/* How the job queue tells the session layer about its jobs (set by
 * session_init), so that calls only ever go down. */
typedef struct {
  /* A job of s ended with a trial: tr carries what the agents said; the
   * job's row is already retired in the open transaction. */
  void (*job_ended)(tracker *t, session *s, const int64_t *values, const char *config_json,
                    hist_trial *tr);
  /* A job of s was handed to a runner. */
  void (*job_started)(tracker *t, session *s);
  /* A confirmation run of s ended (confirm.c): 1 when its job runs
   * again, 2 when it is over. No trial is recorded. */
  int (*confirm_ended)(tracker *t, job *j, Ktune__TrialStatus status, const double *costs,
                       size_t ncosts);
  /* After a confirmation job is gone: the session may go on or end. */
  void (*poke)(tracker *t, session *s);
} tracker_hooks;

struct tracker {
  uv_loop_t *loop;
  tracker_opts opts;
  tracker_hooks hooks;
  uv_tcp_t listener;
  uv_timer_t sweep;
  uv_timer_t beat;         /* heartbeats to peers told nothing lately (server.c) */
  uv_prepare_t commit;
  conn_batch outbox;       /* replies held until the next commit */
  uv_timer_t window;       /* the open transaction's commit (server.c) */
  uint64_t txn_start_ns;   /* uv_hrtime when the open transaction began */
  uv_idle_t refill;        /* runs while a session's search has more to look at */
  uv_signal_t sigterm, sigint, sighup;
  http *web;               /* --http (http.c); NULL without */
  hist *db;
  checkpointer *ckpt;      /* the history's checkpoints, on the thread pool */
  auth_tokens tokens;      /* empty: no authentication (loopback only) */
  int txn_open;
  uint64_t commits;        /* transactions committed so far (core.c) */
  peer *due;               /* peers with a job to send or results to acknowledge
                            * this turn (jobs.c), through p->due_next */
  uv_timer_t acks_timer;   /* sends the parked acknowledgements (jobs.c) */
  int stopping;
  int fatal;               /* stopped for a reason that makes the exit status 1 */
  replay *replay;          /* --replay: trials are answered from a recording */
  uint64_t started_ms;
  uint64_t next_peer_id;
  peer *peers;
  job *jobs;       /* every unfinished job, oldest first */
  job *jobs_tail;
  job **jindex;    /* the same by id (queue.c) */
  size_t jindex_cap, jindex_n;
  keyq *keys;      /* device keys of the sessions in memory (queue.c) */
  share *shares;   /* each owner's runner time on each key, lately (share.c) */
  uint32_t queued[2]; /* jobs waiting to be built, to be run */
  int dispatch_due; /* jobs_dispatch was asked for this turn */
  int tally_due;    /* the keys' runner counts are stale (jobs.c) */
  peer *idle_builders; /* builders with a free slot (jobs.c) */
  peer **builders;  /* the builders taking work, as of the last tally (jobs.c) */
  size_t nbuilders, builders_cap;
  uint32_t avoiding; /* jobs waiting for a second opinion */
  uint64_t confirm_ids; /* confirmation jobs numbered so far (confirm.c) */
  session *sessions;
  session_pending *pending; /* submissions being checked on the thread pool */
  agent_record *records;   /* what each agent name has done wrong, by name */
  uint32_t nrecords;
  /* Keys a runner has served since the start, or the history has trials
   * of (registry_key_served). Past TRACKER_KEYS_SEEN every key counts. */
#define TRACKER_KEYS_SEEN 256
  char keys_seen[TRACKER_KEYS_SEEN][64];
  uint32_t nkeys_seen;
  int db_dev_ino_known;    /* the history file's identity, to notice it replaced */
  uint64_t db_dev, db_ino;
  int lock_fd;             /* holds the history's lock file (dblock.c) */
  metrics metrics;         /* counters and histograms for a scrape (metrics.c) */
};

/* --- store.c --- */
/* What a new session is recorded with. */
typedef struct {
  const char *task;
  const char *size_json;   /* canonical JSON of the constants */
  const char *key;
  const char *strategy;
  const char *compiler;
  const char *owner;
  uint32_t trials;
  uint64_t seed;
  const char *state;       /* queued, running, done, failed, cancelled */
  const void *spec;        /* serialized SubmitSession, to resume it */
  size_t spec_len;
  const char *workload;    /* canonical JSON of its workload part, or NULL */
} store_new_session;

/* What store_find_ok found (strings malloc'd; free with store_found_clear). */
typedef struct {
  int64_t id;
  double *costs;
  size_t ncosts;
  double mean_s, median_s, std_s, build_s;
  uint32_t number;
  uint64_t calls;
  char *runner, *compiler_id, *device_json, *clock, *builder;
} store_found;

/* Groups writes into one transaction. */
/* SQLite's page cache for the tracker's handle, in MB: the indexes of a
 * busy history are written at random places, and a page that is not in
 * the cache is read again before it is changed. */
int store_cache(hist *h, uint32_t mb);
int store_begin(hist *h);
int store_commit(hist *h);
int store_session_add(hist *h, const store_new_session *s, int64_t *id);
/* Sets state and message (NULL clears it) and the update time. */
int store_session_update(hist *h, int64_t id, const char *state, const char *message);
int store_trial_add(hist *h, const hist_trial *t, int64_t *id);
/* A trial's confirmed latency (median seconds per call) and the rounds
 * it came from: the one change ever made to a recorded trial. */
int store_trial_confirm(hist *h, int64_t id, double confirmed_s, const double *costs,
                        size_t ncosts);
/* Jobs: candidates proposed and not yet recorded, so that a restarted
 * tracker queues them again. */
int store_job_add(hist *h, int64_t session, uint64_t index, const char *config_json,
                  int64_t *id);
int store_job_delete(hist *h, int64_t id);
int store_job_lost(hist *h, int64_t id, uint32_t lost);
/* Resuming after a restart. Each calls cb per row, oldest first; a
 * non-zero return of cb stops and is returned. */
typedef int (*store_job_fn)(void *ctx, int64_t id, uint64_t index, uint32_t lost);
int store_jobs_of(hist *h, int64_t session, store_job_fn cb, void *ctx);
/* Sessions left queued or running, with what resumes them. */
typedef int (*store_session_fn)(void *ctx, int64_t id, const void *spec, size_t spec_len,
                                const char *owner, int64_t created_ms);
int store_sessions_unfinished(hist *h, store_session_fn cb, void *ctx);
/* A session's trials: the config (canonical JSON of the knobs), status,
 * and mean seconds per call (0 when none), for its tuner to restore from. */
typedef int (*store_session_trial_fn)(void *ctx, const char *config_json, const char *status,
                                      double mean_s);
int store_session_trials(hist *h, int64_t session, store_session_trial_fn cb, void *ctx);
/* One session's stored submission, as store_sessions_unfinished gives it. */
int store_session_spec(hist *h, int64_t session, store_session_fn cb, void *ctx);
/* Earlier measured trials of other sessions with the same kernel digest,
 * compiler, key, timing and checking, oldest first (at most
 * STORE_PRIOR_MAX): what a learning search starts from. */
#define STORE_PRIOR_MAX 100000
typedef struct {
  const char *kernel, *compiler, *key, *timing_json;
  int checked;
  int64_t session;         /* not this one's */
} store_prior_query;
int store_prior_trials(hist *h, const store_prior_query *q, store_session_trial_fn cb, void *ctx);
/* The newest ok, timed trial with this trial digest (ident_trial). Returns
 * 1 and fills out, 0 when there is none (always for a NULL digest). */
int store_find_ok(hist *h, const char *digest, store_found *out);
void store_found_clear(store_found *f);
/* 1 when the history has a trial of this device key, 0 when not. */
int store_key_has_trials(hist *h, const char *key);

/* --- core.c --- */
/* Opens the transaction if it is not open; core_commit commits it
 * (and exits the process if it cannot: replies would lie). */
void core_db_write(tracker *t);
void core_commit(tracker *t);
int core_send(peer *p, const Ktune__Envelope *env);
/* The address l is bound to, in addr; written to path (option opt) when
 * not NULL. */
int core_bound(uv_tcp_t *l, const char *opt, const char *path, char *addr, size_t addrlen,
               char *err, size_t errlen);
/* Sends msg (a message of the Envelope case `which`). */
int core_send_msg(peer *p, Ktune__Envelope__MsgCase which, void *msg);
/* The same for a reply that claims nothing of the open transaction (a
 * status, a client's Welcome): it goes at once instead of after the
 * commit, unless replies that do wait before it on the connection. */
int core_send_msg_now(peer *p, Ktune__Envelope__MsgCase which, void *msg);

/* --- registry.c --- */
/* A connection's state machine: Hello, then (with tokens) a challenge
 * answered by Auth, then the role's commands. A rejected peer gets its
 * answer late, then the close. */
enum peer_state { PEER_AWAIT_HELLO, PEER_AWAIT_AUTH, PEER_READY, PEER_REJECTED };

struct peer {
  tracker *t;
  conn *c;
  uint64_t id;
  enum peer_state state;
  Ktune__Role role;
  char name[64];
  char key[64];
  char host[128];
  char arch[32];
  int has_tcc, has_cc;     /* builders: back ends */
  char archs[4][32];       /* builders: what it builds for (tcc: arch only) */
  char refused[4][128];    /* builders: compiler commands they said they cannot run */
  unsigned nrefused;
  size_t narchs;
  char cpu_model[128];     /* runners: device identity */
  uint32_t cores;
  char kernel[64];
  char governor[32];
  char version[32];
  char sandbox_off[32];    /* runners: Hello.sandbox_off */
  char *device_json;       /* the identity as stored with each trial */
  uint32_t slots;          /* jobs it takes at once */
  uint32_t busy;           /* jobs it holds */
  uint32_t trials_done;
  uint32_t trials_failed;
  int draining;            /* said goodbye: finishing what it holds */
  uint64_t holding;        /* runners: a job it measures that we do not lease
                              (from before a reconnect or a restart), 0: none */
  uint64_t holding_until;  /* uv_now after which that is given up on */
  agent_record *rec;       /* its record by name (guard.c) */
  job *leases;             /* the jobs it holds, through j->lnext */
  keyq *kq;                /* runners: its key's queue, once it is ready */
  peer *idle_next, *idle_prev; /* its key's (builders: t's) list of agents with a free slot */
  int idle;                /* in that list */
  uint64_t free_ns;        /* uv_hrtime when it last came to have a free slot (metrics.c) */
  int serving;             /* a runner or builder taking work: in the tally */
  uint64_t watching;       /* clients: session id followed, 0 for none */
  uint8_t peer_nonce[AUTH_NONCE], tracker_nonce[AUTH_NONCE];
  int is_admin;
  uint64_t close_at;       /* rejected: uv_now at which to answer and close */
  char reject_code[32];
  char reject_msg[256];
  /* This turn (jobs.c): sent a job whose row is durable, so its bytes may
   * go before the commit; sent one whose row is not, so they wait. */
  uint8_t send_now, send_late;
  uint64_t *acks;          /* results to acknowledge once committed */
  uint32_t nacks, acks_cap;
  uint32_t acks_parked;    /* the first of acks, committed, waiting to ride
                            * along with the next bytes to this peer */
  peer *due_next, *due_prev; /* in t->due while any of the three is set */
  int due;
  peer *next, *prev;
};

peer *registry_add(tracker *t, conn *c);
void registry_remove(tracker *t, peer *p);
/* p joins or leaves t->due (registry_remove takes it out too). */
void registry_due(tracker *t, peer *p, int due);
peer *registry_find(tracker *t, uint64_t id);
uint32_t registry_runners(tracker *t, const char *key);
/* "rpi4, local": each key of the runners connected now, once. */
void registry_keys(tracker *t, char *out, size_t len);
#define NCODES (sizeof(((session *)0)->fail_count) / sizeof(uint32_t))
/* s's failed trials by status into c, pointed at by ptrs (room for each
 * status); returns how many statuses had some. */
size_t registry_fail_counts(const session *s, Ktune__StatusCount *c, Ktune__StatusCount **ptrs);
/* What ktune status shows (free with registry_status_free): max_rows
 * agents and sessions at most, 0 for all (StatusRequest.max_rows). */
void registry_status(tracker *t, Ktune__StatusReply *out, uint32_t max_rows);
void registry_status_free(Ktune__StatusReply *r);
/* A runner's device identity as the JSON object stored with its trials. */
char *registry_device_json(const peer *p);
/* Remembers that a runner of key logged in. */
void registry_note_key(tracker *t, const char *key);
/* 1 when a runner of key has logged in since the tracker started or the
 * history has a trial of it: a session waiting for it is not waiting for
 * a mistyped key. */
int registry_key_served(tracker *t, const char *key);

/* --- jobs.c --- */
enum job_state { JOB_BUILD_QUEUED, JOB_BUILDING, JOB_RUN_QUEUED, JOB_RUNNING };

struct job {
  uint64_t id;             /* row of the history's jobs table */
  uint64_t durable_at;     /* t->commits from which that row is committed */
  session *s;
  enum job_state state;
  uint64_t index;          /* config index in the session's space */
  int64_t *values;         /* knob values */
  char *config_json;
  peer *owner;             /* holder of the lease */
  uint8_t *artifact;
  size_t artifact_len;
  double build_s;
  char *compiler_id;
  char arch[32];           /* what it is built for: only runners of it run it */
  char builder[64];        /* who built it */
  char digest[65];         /* its trial identity, "" when it has none */
  char avoid[64];          /* an agent whose failure awaits a second opinion */
  uint32_t confirm;        /* a confirmation run of candidate confirm - 1; 0: a trial */
  Ktune__TrialStatus held_status; /* that failure, recorded if no other agent can try */
  char *held_error;
  uint64_t deadline;       /* uv_now by which its holder must answer */
  uint32_t lost;           /* times its agent went away */
  double retried_cv;       /* its first measurement's spread, too wide to keep; 0: none */
  job *next, *prev;        /* t->jobs */
  job *qnext, *qprev;      /* its session's queue of its state (queue.c) */
  job *hnext;              /* t->jindex */
  job *lnext, *lprev;      /* its holder's leases */
  share *run_sh;           /* holding a runner: the owner charged for it (share.c) */
  uint64_t run_start_ns;   /* uv_hrtime when it took the runner */
  uint64_t runnable_ns;    /* uv_hrtime when it last became run-queued (metrics.c) */
};

/* Queues a job for a candidate already stored as history job `id`;
 * digest is its trial identity (trial_digest), or NULL when it has none. */
job *jobs_add(tracker *t, session *s, uint64_t id, uint64_t index, const int64_t *values,
              const char *config_json, const char *digest, uint32_t lost);
/* Hands queued work to free builders and runners: asked for wherever
 * work or an agent may have become free, done once per loop turn by
 * jobs_dispatch_due (from the prepare phase), so that a turn that
 * brought many results looks at the agents once. */
void jobs_dispatch(tracker *t);
void jobs_dispatch_due(tracker *t);
/* Writes now to the agents sent only jobs whose rows are committed
 * (before the open transaction's commit, which they need not wait for). */
void jobs_send_early(tracker *t);
/* After a commit: the acknowledgements of the results it made durable,
 * and the agents' bytes that waited for it may go. An agent with nothing
 * else to be sent gets its acknowledgements with the next bytes it is
 * sent, or after JOBS_ACK_PARK_MS. */
void jobs_committed(tracker *t);
#define JOBS_ACK_PARK_MS 5
/* Sends every parked acknowledgement now (the timer, and a stop). */
void jobs_acks_unpark(tracker *t);
void jobs_on_build_result(tracker *t, peer *p, const Ktune__BuildResult *r);
void jobs_on_run_result(tracker *t, peer *p, const Ktune__RunResult *r);
/* A peer is gone: its leases go back to the queue. */
void jobs_release(tracker *t, peer *p);
/* p's state, slots or connection changed (ready, draining, closed):
 * whether it waits for work, and its key's counts, follow. Before a
 * peer is freed, with p->c NULL. */
void jobs_peer_changed(tracker *t, peer *p);
/* Runners serving s's key now (draining ones do not). */
uint32_t jobs_key_runners(tracker *t, const session *s);
/* Jobs held past their deadline go back to the queue, their holders are
 * marked (guard.c), and run artifacts no runner can take are rebuilt. */
void jobs_sweep(tracker *t);
/* A runner says in Hello that it still measures job id: lease it the job
 * if we have it, else keep it busy until it answers. */
void jobs_adopt(tracker *t, peer *p, uint64_t id);
/* Drops every job of a session (ended or cancelled). */
void jobs_drop_session(tracker *t, session *s);
uint32_t jobs_outstanding(tracker *t, const session *s);
/* 1 when s's key has ready runners but no connected builder can make
 * code for any of them with s's compiler; want gets their architectures
 * ("aarch64"). */
int jobs_builder_missing(tracker *t, const session *s, char *want, size_t len);
void jobs_free_all(tracker *t);

/* --- queue.c --- */
enum { QUEUE_BUILD, QUEUE_RUN };
/* The sessions in memory of one device key, and what waits there. */
struct keyq {
  char *key;
  session *sessions;       /* through s->kq_next */
  uint32_t queued[2];      /* jobs waiting to be built, to be run */
  uint32_t ahead;          /* built or building and not yet running */
  peer *idle;              /* runners with a free slot (jobs.c) */
  uint32_t runners;        /* runners whose p->kq this is: it lives while any does */
  /* Runners that serve the key (draining ones do not) and, of those,
   * the ready ones (not quarantined), by architecture: counted again
   * when the roster changes (jobs_tally). */
  uint32_t serving;
  uint32_t ready;
  struct {
    const char *arch;
    uint32_t n;
  } archs[4];
  uint32_t narchs;
  /* While one builder takes jobs in a dispatch: the best build of this
   * key for it, and the architecture to build it for (jobs.c). */
  job *build_pick;
  const char *build_pick_arch;
  keyq *next;
};

/* A session joins its key's list when linked and leaves it when freed;
 * -1 when out of memory. */
int queue_session_join(tracker *t, session *s);
void queue_session_leave(tracker *t, session *s);
keyq *queue_key(tracker *t, const char *key);
/* The key's queue, made when missing (a runner's key may have no session
 * yet); NULL when out of memory. */
keyq *queue_key_make(tracker *t, const char *key);
/* Frees k once no session and no runner names it. */
void queue_key_release(tracker *t, keyq *k);
/* A new job (j->s set, j->id its row) is indexed and build-queued; -1
 * when out of memory. */
int queue_add(tracker *t, job *j);
job *queue_find(tracker *t, uint64_t id);
void queue_set(tracker *t, job *j, enum job_state st);
/* The job no longer belongs to its session (j->s becomes NULL). */
void queue_detach(tracker *t, job *j);
/* Out of the index and every queue, before it is freed. */
void queue_remove(tracker *t, job *j);
void queue_free_all(tracker *t);

/* --- owners.c --- */
enum owner_field { OWNER_SHARE, OWNER_SESSIONS, OWNER_QUEUED };
/* owner's weight or quota; from (when not NULL) says where it came from,
 * as a refusal names it: "sessions=1 on bob's line of the tokens file",
 * "--owner 'bob queued=50'", "--max-sessions". */
uint32_t owner_setting(const tracker *t, const char *owner, enum owner_field f, char *from,
                       size_t fromlen);
uint32_t owner_weight(const tracker *t, const char *owner);
int owner_admin(const tracker *t, const char *owner);

/* --- share.c --- */
/* Runner seconds used, as fair shares count them: decayed with the
 * half-life, and what is running (and, for builds, built ahead) counted
 * at the average run. Kept for each owner of a key and each session. */
typedef struct {
  double used_s;           /* runner seconds, decayed as of used_ms */
  uint64_t used_ms;        /* uv_now of the last decay */
  double avg_s;            /* runner seconds of a run, a moving average; 0: none yet */
  uint32_t running;        /* runs holding a runner now */
  uint32_t ahead;          /* jobs built or building, not yet running */
} share_use;

/* One owner's use of one device key. It outlives its sessions until
 * its runner time has faded, so that a new session does not start afresh. */
struct share {
  char key[64], owner[64];
  uint32_t weight;         /* share=N (tokens file), --share NAME=N, or 1 */
  share_use use;
  uint32_t refs;           /* sessions in memory and runs holding a runner */
  uint32_t waiting;        /* its sessions with work queued (share_status) */
  share *next;
};

/* A session of s's key (k) and owner joins that owner's record (made
 * when missing), starting no lower than the least served of those there
 * already; -1 when out of memory. */
int share_join(tracker *t, session *s, const keyq *k);
void share_leave(session *s);
/* j takes a runner, or lets it go (the result came, or it was lost):
 * the time between is its owner's and its session's. */
void share_run_start(job *j);
void share_run_stop(tracker *t, job *j);
/* A job of s is built ahead of its run (+1), or no longer (-1). */
void share_ahead(session *s, int delta);
/* Which of two sessions of a key is served first: -1 a, 1 b, 0 neither
 * (the older job then). An admin's priority first; then the owner with
 * the least runner time for its weight; within an owner, its priority,
 * then the session with the least runner time. for_build also counts
 * what is built ahead, so that builds go in the order runs will. */
int share_order(tracker *t, session *a, session *b, int for_build);
/* Weights and admins again, after the tokens file was read again. */
void share_reload(tracker *t);
/* The owners of key k's status entry (k->owners, freed by
 * share_status_free), and the places of the sessions of q (its queue, or
 * NULL) in its line; then a session's place (1: next; 0: nothing
 * waiting), runner time and rank. */
void share_status(tracker *t, keyq *q, Ktune__KeyInfo *k);
void share_status_free(Ktune__KeyInfo *k);
void share_session_status(tracker *t, session *s, Ktune__SessionInfo *si);
void share_free_all(tracker *t);

/* --- trial.c --- */
/* Fills in the session's part of tr (statistics, GFLOPS) and inserts it
 * in this turn's transaction, setting tr->id to its row (0 on failure).
 * tr->digest is the caller's: it computed the trial's identity once, when
 * the config was proposed. */
void trial_record(tracker *t, session *s, const char *config_json, hist_trial *tr);
/* The trial identity digest of a config of s; -1 when s has no kernel
 * digest. */
int trial_digest(const session *s, const char *config_json, char out[65]);
/* GFLOPS of a mean time per call; 0 for no time. */
double trial_gflops(int64_t flops, double mean_s);

/* --- external.c --- */
/* A session of this strategy has no tuner: its client sends the configs
 * (MeasureConfig) and gets each trial back (TrialResult). */
#define EXTERNAL_STRATEGY "external"
/* NULL when out of memory. */
external *external_new(void);
void external_free(external *x);
/* A config from p for one of its external sessions. One that cannot be
 * measured is answered at once (a TrialResult with its error; an Error
 * when the session is not p's running external session); otherwise it
 * is queued and its session returned, for session_fill. */
session *external_add(tracker *t, peer *p, const Ktune__MeasureConfig *m);
/* p sends no more configs: the session (returned, for session_fill) ends
 * once every config is answered. NULL after an Error to p. */
session *external_close(tracker *t, peer *p, const Ktune__MeasureDone *m);
/* The next queued config, for session_fill in place of the tuner's: 0
 * with its values and index, 1 when none is queued (then s->proposed has
 * reached s->trials, which counts the configs queued). */
int external_next(session *s, int64_t *values, uint64_t *index);
/* A trial of s is recorded: its answer goes to the client that sent the
 * config. */
void external_answer(tracker *t, session *s, const hist_trial *tr);
/* 1 when the client said it is done and every config has its answer. */
int external_finished(const session *s);
/* 1 when no connected client follows s: nobody can feed it any more. */
int external_orphaned(tracker *t, const session *s);

/* --- session.c --- */
struct session {
  uint64_t id;
  task_spec task;
  space sp;
  tuner *tu;               /* NULL for an external session */
  external *ext;           /* strategy external: its client's configs (external.c) */
  char *key, *strategy, *compiler, *size_json;
  char *workload;          /* the workload it is a batch of (canonical JSON), or NULL */
  uint64_t seed;
  int64_t flops;
  uint64_t *counts;        /* element count of each arg */
  uint32_t trials, proposed, done, failures, reused, batch;
  char kernel[65];         /* identity digest of the kernel (common/identity.h) */
  uint32_t fail_count[16]; /* per trial status (Ktune__TrialStatus), NCODES */
  char *first_error[16];   /* the first message of each */
  Ktune__Timing timing;    /* filled in: no option is left 0 for its default */
  char *timing_json;       /* the timing options, part of a trial's identity */
  int check;
  int remeasure;
  int short_rounds_said;   /* the log told that its rounds are too short to remeasure */
  uint32_t priority;
  uint32_t wait_timeout_ms;
  uint32_t wait_limit_ms;  /* this wait's: --wait-timeout, or a never-served key's; 0: none */
  char owner[64];
  share *sh;               /* its owner's share of its key (share.c) */
  share_use use;           /* its own runner time, for its turn among its owner's */
  int admin;               /* its owner is an admin: its priority counts across owners */
  uint32_t place;          /* in its key's line, as of the last status (share_status) */
  uint64_t waiting_since;  /* uv_now when its key last had no runner, or 0 */
  int waiting_builder;     /* ... or had runners but no builder for them */
  char message[256];       /* what it waits for, or why it ended */
  char search[256];        /* what its search is doing (tuner_describe) */
  uint64_t valid_configs;  /* meeting the constraints, when valid_exact */
  int valid_exact;         /* the count at submission finished in its budget */
  int exhausted;           /* the tuner has no new config */
  int refill;              /* its search ran out of budget: go on next turn */
  uv_work_t train;         /* its search's training, on the thread pool */
  int training;            /* ... is running: the tuner may not step */
  int train_rc;
  uint64_t train_ns;       /* the last training's time, from the thread pool */
  double search_s;         /* time its strategy spent proposing and training */
  tracker *home;           /* its tracker, for the training's completion */
  uint32_t prior;          /* earlier trials of its kernel the search started from */
  Ktune__SessionState state;
  double best_gflops, best_latency, batch_best;
  uint64_t ended_ms;       /* uv_now when it ended, 0 while it runs */
  int64_t *best_values;
  uint64_t started_ms;
  keyq *kq;                /* its key's queues (queue.c) */
  session *kq_next, *kq_prev;
  job *qhead[2], *qtail[2]; /* its jobs waiting to be built, to be run */
  uint32_t queued[2];
  uint32_t outstanding;    /* its unfinished jobs */
  uint32_t confirm;        /* configs to confirm at the end (confirm.c); 0: none */
  confirm *cf;
  uint32_t confirm_turn;   /* the candidate (1-based) whose run goes next */
  char confirm_runner[64]; /* the one runner confirming, once chosen */
  double confirmed_s;      /* the winner's confirmed latency; 0: none */
  double search_best_s;    /* the search's fastest before confirmation chose */
  uint32_t confirmed_n;    /* candidates confirmed */
  session *next;
};

/* A submission on its way: checked on the thread pool, then stored and
 * answered (SessionAccepted or Error) from the loop. */
struct session_pending {
  uv_work_t work;
  tracker *t;
  uint64_t peer_id;
  uint32_t trials;
  session *s;
  uint8_t *blob;           /* the SubmitSession as received, packed */
  size_t blob_len;
  uint64_t resume;         /* --resume: this ended session goes on */
  int rc;
  char err[512];
  session_pending *next;
};

/* ---- replay.c: trials answered from a recording (--replay) ---- */

/* Reads a recording (a ktune history, or `ktune export --format jsonl`
 * output) into t->replay. */
int replay_load(tracker *t, const char *path, char *err, size_t errlen);
void replay_free(replay *r);
/* 0 when the recording holds trials of the session's task and size; else
 * -1 and an error naming what it holds. */
int replay_covers(const tracker *t, const session *s, char *err, size_t errlen);
/* The recorded trial of a config into tr (pointing into the recording),
 * or a failed one when the recording does not hold it. */
void replay_answer(const tracker *t, const session *s, const char *config_json, hist_trial *tr);

/* Sets the hooks through which the job queue reaches sessions. */
void session_init(tracker *t);
session *session_find(tracker *t, uint64_t id);
void session_link(tracker *t, session *s);
void session_free(session *s);
/* Unlinks and frees an ended session (not one still training). */
void session_forget(tracker *t, session *s);
/* Forgets ended sessions beyond the few kept for `ktune status`; the
 * history still answers for them. */
void session_evict(tracker *t);
/* Progress of a session that is no longer in memory, from the history;
 * 0 when found, -1 when there is no such session. */
int session_progress_from_history(tracker *t, uint64_t id, peer *to);
/* Asks the tuner for more candidates while the session has room. */
void session_fill(tracker *t, session *s);
/* Sends the session's progress to one client, or (to NULL) to all that
 * watch it. session_notify also starts a new batch. */
void session_send_progress(tracker *t, session *s, peer *to);
void session_notify(tracker *t, session *s);
void session_free_all(tracker *t);
void session_end(tracker *t, session *s, Ktune__SessionState state, const char *why);
/* 1 while s is queued or running. */
int session_active(const session *s);
/* queued -> running, when its first trial is measured or answered. */
void session_started(tracker *t, session *s);
/* Marks sessions whose key has no runner as waiting; fails those past
 * their --wait-timeout. */
void session_sweep(tracker *t);
/* Notes (and tells its watchers at once) when no runner serves s's key,
 * or no builder can make code for its runners, and forgets the note when
 * one does. */
void session_check_runners(tracker *t, session *s);

/* --- confirm.c --- */
#define CONFIRM_MAX 8
/* An ok trial of s: kept when it is among the s->confirm best so far. */
void confirm_note(session *s, const int64_t *values, const char *config, const hist_trial *tr);
/* The same for an ok trial of the kernel the history had before (an
 * earlier session, or this one before a restart). */
void confirm_note_known(session *s, const int64_t *values, const char *config, double mean_s);
/* The search is over: queues the candidates' runs; 1 when it did (the
 * session goes on until confirm_finished), 0 when there is nothing to
 * confirm. */
int confirm_start(tracker *t, session *s);
int confirm_running(const session *s);
int confirm_finished(const session *s);
/* A confirmation run ended (tracker_hooks.confirm_ended). */
int confirm_result(tracker *t, job *j, Ktune__TrialStatus status, const double *costs,
                   size_t ncosts);
/* Starts over when the confirming runner is gone; ends the confirmation
 * with what it has when no runner of the key is left, and then returns 1
 * (the session can end). */
int confirm_sweep(tracker *t, session *s);
void confirm_free(session *s);

/* --- guard.c --- */
/* What an agent name has done wrong. A strike: a job held past its
 * deadline, lost with its connection, answered with something the agent
 * cannot honestly say, or a failure that another agent's success
 * contradicts. Three within a minute quarantine it: it is fed nothing for
 * a time that doubles with each quarantine. */
struct agent_record {
  char name[64];
  int role;
  uint32_t strikes;
  uint64_t window_ms;      /* when the strikes being counted began */
  uint32_t quarantines;
  uint64_t until_ms;       /* quarantined until this uv_now */
  uint32_t loss_streak;    /* jobs lost with its connection, none delivered since */
  char reason[200];
  agent_record *next;
};

agent_record *guard_record(tracker *t, const char *name, int role);
void guard_strike(tracker *t, agent_record *r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 1 when the peer may not be fed work now. */
int guard_quarantined(tracker *t, const peer *p);
/* "quarantined for 12 s: ..." or "" (for status). */
void guard_describe(tracker *t, const peer *p, char *out, size_t len);
/* Trial statuses each role may report. */
int guard_runner_status(Ktune__TrialStatus status);
int guard_builder_status(Ktune__TrialStatus status);
/* Checks an ok run result against what the job asked for and what a
 * clock can measure; -1 with the reason when it cannot be true. */
int guard_plausible(tracker *t, const job *j, const Ktune__RunResult *r, char *why, size_t len);
void guard_free_all(tracker *t);

/* --- dblock.c --- */
/* Takes the history's lock file (PATH.lock) for this tracker, writing its
 * pid and listen address; -1 with the holder named in err when another
 * tracker has it. */
int dblock_take(tracker *t, char *err, size_t errlen);
/* Says where this tracker listens, once it knows. */
void dblock_note_address(tracker *t, const char *addr);
/* 0 while the history file is the one opened (the first call, right
 * after opening, learns which that is); -1 with why when it was deleted
 * or replaced. */
int dblock_check(tracker *t, char *why, size_t len);

/* --- submit.c --- */
/* Checks the per-client limits now and queues the rest; a refusal here
 * returns -1 with the reason in err. */
int submit_session(tracker *t, peer *p, const Ktune__SubmitSession *req, char *err,
                   size_t errlen);
/* Picks up the sessions an earlier run of the tracker left unfinished. */
int submit_resume_all(tracker *t);

/* --- server.c --- */
/* The HTTP side on opts.http (http.c): started after the server, stopped
 * with it, freed after the loop. */
int http_start(tracker *t, char *err, size_t errlen);
void http_stop(tracker *t);
void http_free(tracker *t);
int server_start(tracker *t, char *err, size_t errlen);
void server_stop(tracker *t);

#endif
