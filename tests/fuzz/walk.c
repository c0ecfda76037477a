/* The handlers' view of untrusted input, for the fuzz targets. The
 * tracker's own handlers live in its executable, so this mirrors what they
 * do with a message (tracker/server.c, session.c, jobs.c) using the same
 * library calls, and adds the invariants those handlers take for granted:
 * decoded strings are never NULL, accepted specs pass their checks again
 * and survive the wire, a config index maps back to itself. */
#include "tests/fuzz/walk.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/space.h"
#include "common/wire.h"
#include "tuner/tuner.h"

/* No ktune message nests deeper than three; this only stops a descriptor
 * bug from recursing forever. */
#define WALK_MAX_DEPTH 16
/* Tuners filter the whole space up front; keep each input fast. */
#define WALK_TUNER_MAX_SPACE 256
#define WALK_TUNER_STEPS 8
/* as tracker/jobs.c and tracker/session.c */
#define WALK_MAX_COSTS 100000
#define WALK_MAX_BUFFER_BYTES (4ull << 30)

void fuzz_fail(const char *file, int line, const char *what) {
  fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", file, line, what);
  abort();
}

uint64_t fuzz_hash(const void *p, size_t n, uint64_t h) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 1099511628211ull;
  }
  return h;
}

/* Keeps the reads that produced h: without a use, the optimiser may drop
 * them and ASan would never see a bad pointer or length. */
static void keep(uint64_t h) { __asm__ volatile("" : : "r"(h) : "memory"); }

/* ---- every field of any message, by its descriptor ---- */

static size_t scalar_size(ProtobufCType type) {
  switch (type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return 8;
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(ProtobufCMessage *);
    default: return 4; /* int32, sint32, sfixed32, uint32, fixed32, float, enum */
  }
}

static uint64_t walk_message(const ProtobufCMessage *m, int depth, uint64_t h);

static uint64_t walk_value(const ProtobufCFieldDescriptor *f, const void *v, int depth,
                           uint64_t h) {
  switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
      /* handlers index strings (key[0]) without a NULL check */
      const char *s = *(char *const *)v;
      FUZZ_ASSERT(s != NULL);
      return fuzz_hash(s, strlen(s), h);
    }
    case PROTOBUF_C_TYPE_BYTES: {
      const ProtobufCBinaryData *b = v;
      FUZZ_ASSERT(b->len == 0 || b->data != NULL);
      return b->len ? fuzz_hash(b->data, b->len, h) : h;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
      const ProtobufCMessage *sub = *(ProtobufCMessage *const *)v;
      return sub ? walk_message(sub, depth + 1, h) : h;
    }
    default: return fuzz_hash(v, scalar_size(f->type), h);
  }
}

static uint64_t walk_message(const ProtobufCMessage *m, int depth, uint64_t h) {
  FUZZ_ASSERT(depth < WALK_MAX_DEPTH);
  const ProtobufCMessageDescriptor *d = m->descriptor;
  FUZZ_ASSERT(d != NULL && d->magic == PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC);
  const char *base = (const char *)m;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    const void *member = base + f->offset;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
      /* only the member the case names is set; the others share its storage */
      if (*(const uint32_t *)(base + f->quantifier_offset) != f->id) continue;
      /* the tracker dispatches on msg_case and uses the member as is */
      if (f->type == PROTOBUF_C_TYPE_MESSAGE)
        FUZZ_ASSERT(*(ProtobufCMessage *const *)member != NULL);
      h = walk_value(f, member, depth, h);
    } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)(base + f->quantifier_offset);
      const char *arr = *(const char *const *)member;
      FUZZ_ASSERT(n == 0 || arr != NULL);
      size_t es = scalar_size(f->type);
      for (size_t k = 0; k < n; k++) {
        if (f->type == PROTOBUF_C_TYPE_MESSAGE)
          FUZZ_ASSERT(*(ProtobufCMessage *const *)(arr + k * es) != NULL);
        h = walk_value(f, arr + k * es, depth, h);
      }
    } else {
      h = walk_value(f, member, depth, h);
    }
  }
  for (unsigned i = 0; i < m->n_unknown_fields; i++)
    h = fuzz_hash(m->unknown_fields[i].data, m->unknown_fields[i].len, h);
  return h;
}

/* ---- tasks, as a session takes them ---- */

static int same_str(const char *a, const char *b) {
  if (!a || !b) return a == b;
  return strcmp(a, b) == 0;
}

static int same_task(const task_spec *a, const task_spec *b) {
  if (!same_str(a->name, b->name) || !same_str(a->source, b->source) ||
      !same_str(a->entry, b->entry) || !same_str(a->reference, b->reference) ||
      !same_str(a->flops, b->flops) || a->nconsts != b->nconsts || a->nargs != b->nargs ||
      a->nknobs != b->nknobs || a->nconstraints != b->nconstraints || a->rtol != b->rtol ||
      a->atol != b->atol)
    return 0;
  for (size_t i = 0; i < a->nconsts; i++)
    if (!same_str(a->consts[i].name, b->consts[i].name) || a->consts[i].value != b->consts[i].value)
      return 0;
  for (size_t i = 0; i < a->nargs; i++)
    if (!same_str(a->args[i].name, b->args[i].name) || !same_str(a->args[i].type, b->args[i].type) ||
        !same_str(a->args[i].count, b->args[i].count) || a->args[i].output != b->args[i].output)
      return 0;
  for (size_t i = 0; i < a->nknobs; i++) {
    if (!same_str(a->knobs[i].name, b->knobs[i].name) ||
        a->knobs[i].nvalues != b->knobs[i].nvalues)
      return 0;
    if (a->knobs[i].nvalues &&
        memcmp(a->knobs[i].values, b->knobs[i].values, a->knobs[i].nvalues * sizeof(int64_t)) != 0)
      return 0;
  }
  for (size_t i = 0; i < a->nconstraints; i++)
    if (!same_str(a->constraints[i], b->constraints[i])) return 0;
  return 1;
}

static size_t elem_size(const char *type) {
  return strcmp(type, "double") == 0 || strcmp(type, "int64") == 0 ? 8 : 4;
}

/* What session.c's prepare evaluates: FLOPs and buffer sizes. */
static void walk_sizes(const task_spec *t) {
  char err[512];
  int64_t flops = 0;
  FUZZ_ASSERT(task_eval(t, NULL, t->flops, &flops, err, sizeof err) == 0);
  FUZZ_ASSERT(flops > 0); /* task_check promised it */
  uint64_t bytes = 0;
  for (size_t i = 0; i < t->nargs; i++) {
    int64_t c = 0;
    FUZZ_ASSERT(task_eval(t, NULL, t->args[i].count, &c, err, sizeof err) == 0);
    FUZZ_ASSERT(c > 0);
    uint64_t b;
    if (__builtin_mul_overflow((uint64_t)c, elem_size(t->args[i].type), &b) ||
        __builtin_add_overflow(bytes, b, &bytes))
      bytes = UINT64_MAX;
  }
  keep(bytes + (uint64_t)flops);
}

/* A config at index idx: values, validity, JSON, and back to idx. */
static void walk_config(const space *sp, uint64_t idx, int64_t *values) {
  char err[512];
  FUZZ_ASSERT(space_config(sp, idx, values) == 0);
  int ok = -1;
  err[0] = '\0';
  int rc = space_valid(sp, values, &ok, err, sizeof err);
  FUZZ_ASSERT(ok == 0 || ok == 1);
  if (rc < 0) FUZZ_ASSERT(ok == 0 && err[0] != '\0');
  char *json = space_config_json(sp, values);
  FUZZ_ASSERT(json != NULL);
  free(json);
  uint64_t back = 0;
  FUZZ_ASSERT(space_index(sp, values, &back) == 0);
  FUZZ_ASSERT(back == idx);
}

/* Each strategy proposes distinct, valid configs of the space. */
static void walk_tuner(const space *sp, const char *strategy, int64_t *values) {
  char err[512];
  tuner *tu = NULL;
  FUZZ_ASSERT(tuner_new(strategy, sp, 42, &tu, err, sizeof err) == 0);
  uint64_t seen[WALK_TUNER_STEPS];
  size_t nseen = 0;
  for (int step = 0; step < WALK_TUNER_STEPS; step++) {
    uint64_t idx = UINT64_MAX;
    int rc = tuner_next(tu, values, &idx);
    FUZZ_ASSERT(rc == 0 || rc == 1);
    if (rc == 1) break;
    FUZZ_ASSERT(idx < sp->size);
    int ok = 0;
    FUZZ_ASSERT(space_valid(sp, values, &ok, err, sizeof err) == 0 && ok == 1);
    uint64_t back = 0;
    FUZZ_ASSERT(space_index(sp, values, &back) == 0 && back == idx);
    for (size_t k = 0; k < nseen; k++) FUZZ_ASSERT(seen[k] != idx);
    seen[nseen++] = idx;
  }
  tuner_free(tu);
}

/* Through the wire form and back: the tracker must see the spec the
 * client loaded. */
static void walk_roundtrip(const task_spec *t) {
  char err[512];
  Ktune__TaskSpec *p = NULL;
  FUZZ_ASSERT(task_to_proto(t, &p) == 0);
  size_t n = ktune__task_spec__get_packed_size(p);
  uint8_t *buf = malloc(n ? n : 1);
  FUZZ_ASSERT(buf != NULL);
  FUZZ_ASSERT(ktune__task_spec__pack(p, buf) == n);
  task_proto_free(p);
  Ktune__TaskSpec *q = ktune__task_spec__unpack(NULL, n, buf);
  FUZZ_ASSERT(q != NULL);
  task_spec back;
  int rc = task_from_proto(q, &back, err, sizeof err);
  if (rc != 0) fprintf(stderr, "task_from_proto refused its own task_to_proto: %s\n", err);
  FUZZ_ASSERT(rc == 0);
  FUZZ_ASSERT(same_task(t, &back));

  /* -D NAME=VALUE on the copy: extreme values must give errors, not UB */
  if (back.nconsts) {
    static const int64_t extremes[] = {0, -1, 1, INT64_MAX, INT64_MIN, 65536};
    size_t which = (size_t)(fuzz_hash(buf, n, 1469598103934665603ull) % 6);
    size_t ci = which % back.nconsts;
    FUZZ_ASSERT(task_set_const(&back, back.consts[ci].name, extremes[which], err, sizeof err) == 0);
    if (task_check(&back, err, sizeof err) == 0)
      walk_sizes(&back);
    else
      FUZZ_ASSERT(err[0] != '\0');
  }
  FUZZ_ASSERT(task_set_const(&back, "no such constant", 1, err, sizeof err) < 0);
  task_free(&back);
  ktune__task_spec__free_unpacked(q, NULL);
  free(buf);
}

void fuzz_walk_task(const task_spec *t) {
  char err[512];
  int rc = task_check(t, err, sizeof err);
  if (rc != 0) fprintf(stderr, "an accepted task fails task_check: %s\n", err);
  FUZZ_ASSERT(rc == 0);
  walk_sizes(t);
  char *consts = space_consts_json(t);
  FUZZ_ASSERT(consts != NULL);
  free(consts);

  space sp;
  FUZZ_ASSERT(space_init(&sp, t, err, sizeof err) == 0);
  FUZZ_ASSERT(sp.size >= 1);
  int64_t *values = calloc(t->nknobs ? t->nknobs : 1, sizeof *values);
  FUZZ_ASSERT(values != NULL);
  uint64_t picks[] = {0, sp.size - 1, sp.size / 2, sp.size / 3,
                      fuzz_hash(t->flops, strlen(t->flops), 7) % sp.size};
  for (size_t i = 0; i < sizeof picks / sizeof picks[0]; i++) walk_config(&sp, picks[i], values);
  FUZZ_ASSERT(space_config(&sp, sp.size, values) == -ERANGE);
  if (sp.size <= WALK_TUNER_MAX_SPACE) {
    walk_tuner(&sp, "grid", values);
    walk_tuner(&sp, "random", values);
  }
  free(values);
  walk_roundtrip(t);
}

/* ---- messages, as their handlers take them ---- */

/* tracker/server.c on_hello */
static void walk_hello(const Ktune__Hello *h) {
  char name[64], key[64];
  snprintf(name, sizeof name, "%s", h->name);
  snprintf(key, sizeof key, "%s", h->key);
  int tcc = 0;
  for (size_t i = 0; i < h->n_backends; i++) tcc |= strcmp(h->backends[i], "tcc") == 0;
  int known = h->role == KTUNE__ROLE__ROLE_BUILDER || h->role == KTUNE__ROLE__ROLE_RUNNER ||
              h->role == KTUNE__ROLE__ROLE_CLIENT;
  keep(fuzz_hash(name, strlen(name), (uint64_t)tcc + (uint64_t)known) ^
       fuzz_hash(key, strlen(key), 0));
}

/* tracker/session.c prepare: the task is checked, then used. */
static void walk_submit(const Ktune__SubmitSession *req) {
  char err[512];
  tuner *tu = NULL;
  const char *strategy = req->strategy[0] ? req->strategy : "random";
  if (strcmp(strategy, "random") != 0 && strcmp(strategy, "grid") != 0) {
    FUZZ_ASSERT(tuner_new(strategy, NULL, 0, &tu, err, sizeof err) < 0 && tu == NULL);
    FUZZ_ASSERT(err[0] != '\0');
  }
  if (!req->task) return;
  task_spec t;
  err[0] = '\0';
  if (task_from_proto(req->task, &t, err, sizeof err) != 0) {
    /* every refusal tells the client why */
    FUZZ_ASSERT(err[0] != '\0');
    FUZZ_ASSERT(t.name == NULL && t.nargs == 0 && t.nknobs == 0);
    return;
  }
  fuzz_walk_task(&t);
  task_free(&t);
}

/* tracker/jobs.c jobs_on_run_result */
static void walk_run_result(const Ktune__RunResult *r) {
  size_t n = r->n_costs_s;
  int ok = n > 0 && n <= WALK_MAX_COSTS;
  double sum = 0;
  for (size_t i = 0; ok && i < n; i++) {
    ok = isfinite(r->costs_s[i]) && r->costs_s[i] > 0;
    sum += r->costs_s[i];
  }
  if (ok) FUZZ_ASSERT(sum / (double)n > 0);
}

/* runner: buffer sizes it would allocate */
static void walk_run_job(const Ktune__RunJob *j) {
  uint64_t bytes = 0;
  for (size_t i = 0; i < j->n_buffers; i++) {
    uint64_t b;
    if (__builtin_mul_overflow(j->buffers[i]->count, elem_size(j->buffers[i]->type), &b) ||
        __builtin_add_overflow(bytes, b, &bytes))
      bytes = UINT64_MAX;
  }
  keep(bytes);
}

/* Encoding what was decoded and decoding that again gives the same
 * bytes: nothing the tracker stores or forwards changes on the way. */
static void check_repack(const Ktune__Envelope *env) {
  uint8_t *a = NULL, *b = NULL;
  size_t alen = 0, blen = 0;
  FUZZ_ASSERT(wire_pack(env, &a, &alen) == 0);
  FUZZ_ASSERT(alen >= 4);
  Ktune__Envelope *again = wire_unpack(a + 4, alen - 4);
  FUZZ_ASSERT(again != NULL);
  FUZZ_ASSERT(again->msg_case == env->msg_case);
  FUZZ_ASSERT(wire_pack(again, &b, &blen) == 0);
  FUZZ_ASSERT(alen == blen && memcmp(a, b, alen) == 0);
  wire_free(again);
  free(a);
  free(b);
}

void fuzz_walk_envelope(const Ktune__Envelope *env) {
  FUZZ_ASSERT(env->msg_case != KTUNE__ENVELOPE__MSG__NOT_SET);
  const char *name = wire_msg_name(env);
  FUZZ_ASSERT(name != NULL && name[0] != '\0');
  keep(walk_message(&env->base, 0, 1469598103934665603ull));
  switch (env->msg_case) {
    case KTUNE__ENVELOPE__MSG_HELLO: walk_hello(env->hello); break;
    case KTUNE__ENVELOPE__MSG_SUBMIT: walk_submit(env->submit); break;
    case KTUNE__ENVELOPE__MSG_RUN_RESULT: walk_run_result(env->run_result); break;
    case KTUNE__ENVELOPE__MSG_RUN_JOB: walk_run_job(env->run_job); break;
    default: break;
  }
  check_repack(env);
}
