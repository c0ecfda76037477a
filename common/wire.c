#include "common/wire.h"

#include <stdlib.h>
#include <string.h>

#include "common/frame.h"

int wire_pack_mac(const Ktune__Envelope *env, auth_stream *mac, uint8_t **frame, size_t *len) {
  size_t n = ktune__envelope__get_packed_size(env);
  size_t tag = mac && mac->on ? AUTH_MAC : 0;
  if (n + tag > UINT32_MAX) return -1;
  uint8_t *buf = malloc(FRAME_HEADER + n + tag);
  if (!buf) return -1;
  frame_put_header(buf, (uint32_t)(n + tag));
  ktune__envelope__pack(env, buf + FRAME_HEADER);
  if (tag) auth_tag(mac, buf + FRAME_HEADER, n, buf + FRAME_HEADER + n);
  *frame = buf;
  *len = FRAME_HEADER + n + tag;
  return 0;
}

int wire_pack(const Ktune__Envelope *env, uint8_t **frame, size_t *len) {
  return wire_pack_mac(env, NULL, frame, len);
}

/* libprotobuf-c accepts an unknown field numbered 0 written as a two-byte
 * tag, and re-encodes it in a form it then refuses: a message stored as
 * received (a session's submission) would not decode again. Found by
 * fuzzing (tests/fuzz/corpus/frame/field-zero-*). */
static int has_field_zero(const ProtobufCMessage *m, int depth) {
  if (depth > 16) return 1;
  for (unsigned i = 0; i < m->n_unknown_fields; i++)
    if (m->unknown_fields[i].tag == 0) return 1;
  const ProtobufCMessageDescriptor *d = m->descriptor;
  const char *base = (const char *)m;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
    const void *member = base + f->offset;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
      if (*(const uint32_t *)(base + f->quantifier_offset) != f->id) continue;
    } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)(base + f->quantifier_offset);
      ProtobufCMessage *const *arr = *(ProtobufCMessage *const *const *)member;
      for (size_t k = 0; k < n; k++)
        if (has_field_zero(arr[k], depth + 1)) return 1;
      continue;
    }
    const ProtobufCMessage *sub = *(ProtobufCMessage *const *)member;
    if (sub && has_field_zero(sub, depth + 1)) return 1;
  }
  return 0;
}

Ktune__Envelope *wire_unpack(const uint8_t *payload, size_t len) {
  Ktune__Envelope *env = ktune__envelope__unpack(NULL, len, payload);
  if (env && (env->msg_case == KTUNE__ENVELOPE__MSG__NOT_SET || has_field_zero(&env->base, 0))) {
    ktune__envelope__free_unpacked(env, NULL);
    return NULL;
  }
  return env;
}

Ktune__Envelope *wire_unpack_mac(const uint8_t *payload, size_t len, auth_stream *mac, int *forged) {
  *forged = 0;
  if (!mac || !mac->on) return wire_unpack(payload, len);
  if (len < AUTH_MAC || auth_check(mac, payload, len - AUTH_MAC, payload + len - AUTH_MAC) < 0) {
    *forged = 1;
    return NULL;
  }
  return wire_unpack(payload, len - AUTH_MAC);
}

void wire_free(Ktune__Envelope *env) {
  if (env) ktune__envelope__free_unpacked(env, NULL);
}

const char *wire_role_name(Ktune__Role r) {
  switch (r) {
  case KTUNE__ROLE__ROLE_BUILDER: return "builder";
  case KTUNE__ROLE__ROLE_RUNNER: return "runner";
  case KTUNE__ROLE__ROLE_CLIENT: return "client";
  default: return "peer";
  }
}

/* The one table of trial statuses: every program converts through it. */
static const struct {
  Ktune__TrialStatus status;
  const char *name;
  unsigned who;
} statuses[] = {
    {WIRE_TRIAL(OK), "ok", WIRE_BY_BUILDER | WIRE_BY_RUNNER | WIRE_BY_CHILD | WIRE_STORED},
    {WIRE_TRIAL(INVALID_CONFIG), "INVALID_CONFIG", WIRE_STORED},
    {WIRE_TRIAL(COMPILE_ERROR), "COMPILE_ERROR", WIRE_BY_BUILDER | WIRE_STORED},
    {WIRE_TRIAL(BUILD_TIMEOUT), "BUILD_TIMEOUT", WIRE_BY_BUILDER | WIRE_STORED},
    {WIRE_TRIAL(LOAD_ERROR), "LOAD_ERROR", WIRE_BY_RUNNER | WIRE_BY_CHILD | WIRE_STORED},
    {WIRE_TRIAL(RUNTIME_ERROR), "RUNTIME_ERROR", WIRE_BY_RUNNER | WIRE_BY_CHILD | WIRE_STORED},
    /* The runner's timer says it, never the kernel's own process. */
    {WIRE_TRIAL(RUN_TIMEOUT), "RUN_TIMEOUT", WIRE_BY_RUNNER | WIRE_STORED},
    {WIRE_TRIAL(WRONG_ANSWER), "WRONG_ANSWER", WIRE_BY_RUNNER | WIRE_BY_CHILD | WIRE_STORED},
    {WIRE_TRIAL(RUNNER_LOST), "RUNNER_LOST", WIRE_STORED},
    {WIRE_TRIAL(CANCELLED), "CANCELLED", WIRE_STORED},
    /* Not trial results: the job goes back to the queue (tracker/jobs.c). */
    {WIRE_TRIAL(REFUSED), "REFUSED", 0},
    {WIRE_TRIAL(RUNNER_ERROR), "RUNNER_ERROR", 0},
    /* The builder, not the candidate: another builder gets the job. */
    {WIRE_TRIAL(UNSUPPORTED), "UNSUPPORTED", WIRE_BY_BUILDER},
};
#define NSTATUSES (sizeof(statuses) / sizeof(statuses[0]))

const char *wire_status_name(Ktune__TrialStatus s) {
  for (size_t i = 0; i < NSTATUSES; i++)
    if (statuses[i].status == s) return statuses[i].name;
  return NULL;
}

Ktune__TrialStatus wire_status_parse(const char *name) {
  for (size_t i = 0; name && i < NSTATUSES; i++)
    if (strcmp(statuses[i].name, name) == 0) return statuses[i].status;
  return KTUNE__TRIAL_STATUS__TRIAL_STATUS_UNSET;
}

int wire_status_by(Ktune__TrialStatus s, unsigned who) {
  for (size_t i = 0; i < NSTATUSES; i++)
    if (statuses[i].status == s) return (statuses[i].who & who) != 0;
  return 0;
}

static const char *const states[] = {
    [WIRE_SESSION(QUEUED)] = "queued",
    [WIRE_SESSION(RUNNING)] = "running",
    [WIRE_SESSION(DONE)] = "done",
    [WIRE_SESSION(FAILED)] = "failed",
    [WIRE_SESSION(CANCELLED)] = "cancelled",
};
#define NSTATES (sizeof(states) / sizeof(states[0]))

const char *wire_state_name(Ktune__SessionState s) {
  return (unsigned)s < NSTATES && states[s] ? states[s] : "unknown";
}

Ktune__SessionState wire_state_parse(const char *name) {
  for (size_t i = 0; name && i < NSTATES; i++)
    if (states[i] && strcmp(states[i], name) == 0) return (Ktune__SessionState)i;
  return KTUNE__SESSION_STATE__SESSION_STATE_UNSET;
}

Ktune__Envelope wire_envelope(Ktune__Envelope__MsgCase which, void *msg) {
  Ktune__Envelope env = KTUNE__ENVELOPE__INIT;
  env.msg_case = which;
  /* Every case of the oneof is a pointer in one union: storing through
   * one member sets whichever the case names. */
  env.hello = msg;
  return env;
}

const char *wire_msg_name(const Ktune__Envelope *env) {
  const ProtobufCFieldDescriptor *f =
      protobuf_c_message_descriptor_get_field(&ktune__envelope__descriptor, (unsigned)env->msg_case);
  return f ? f->name : "unknown";
}

int wire_write_fd_mac(int fd, const Ktune__Envelope *env, auth_stream *mac) {
  uint8_t *buf;
  size_t len;
  if (wire_pack_mac(env, mac, &buf, &len) < 0) return -1;
  int rc = frame_write_fd(fd, buf + FRAME_HEADER, (uint32_t)(len - FRAME_HEADER));
  free(buf);
  return rc;
}

Ktune__Envelope *wire_read_fd_mac(int fd, uint32_t max, auth_stream *mac, int *forged) {
  uint8_t *p;
  uint32_t n;
  *forged = 0;
  if (frame_read_fd(fd, max, &p, &n) < 0) return NULL;
  Ktune__Envelope *env = wire_unpack_mac(p, n, mac, forged);
  free(p);
  return env;
}

int wire_write_fd(int fd, const Ktune__Envelope *env) { return wire_write_fd_mac(fd, env, NULL); }

Ktune__Envelope *wire_read_fd(int fd, uint32_t max) {
  int forged;
  return wire_read_fd_mac(fd, max, NULL, &forged);
}
