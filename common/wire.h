/* Envelope encode/decode on top of framing, and checks on what arrived. */
#ifndef KTUNE_WIRE_H
#define KTUNE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "common/auth.h"
#include "proto/ktune.pb-c.h"

#define WIRE_PROTOCOL_VERSION 2

/* Seed of the generator that fills every kernel input: fixed, so that a
 * runner can cache reference outputs and anyone can reproduce the inputs. */
#define KTUNE_INPUT_SEED 1

/* Packs env into a whole frame (header + payload), malloc'd. With mac on,
 * the payload ends with the frame's HMAC tag. */
int wire_pack(const Ktune__Envelope *env, uint8_t **frame, size_t *len);
int wire_pack_mac(const Ktune__Envelope *env, auth_stream *mac, uint8_t **frame, size_t *len);

/* Decodes one payload. Returns NULL when the bytes are not an Envelope or
 * carry no message. Free with wire_free. */
Ktune__Envelope *wire_unpack(const uint8_t *payload, size_t len);
/* The same for an authenticated stream: NULL and *forged set when the tag
 * does not match (the connection must close). */
Ktune__Envelope *wire_unpack_mac(const uint8_t *payload, size_t len, auth_stream *mac, int *forged);
void wire_free(Ktune__Envelope *env);

/* An Envelope holding msg (a pointer to the message of that case). The
 * message stays the caller's; the Envelope only points at it. */
Ktune__Envelope wire_envelope(Ktune__Envelope__MsgCase which, void *msg);

/* "builder", "runner", "client": also what a login proof covers. */
const char *wire_role_name(Ktune__Role r);

/* A TrialStatus by its short name: WIRE_TRIAL(OK), WIRE_TRIAL(RUN_TIMEOUT). */
#define WIRE_TRIAL(name) KTUNE__TRIAL_STATUS__TRIAL_##name

/* A SessionState by its short name: WIRE_SESSION(DONE). */
#define WIRE_SESSION(name) KTUNE__SESSION_STATE__SESSION_##name

/* Who may say a trial status (wire_status_by). */
enum {
  WIRE_BY_BUILDER = 1, /* in a BuildResult */
  WIRE_BY_RUNNER = 2,  /* in a RunResult, as a trial's result */
  WIRE_BY_CHILD = 4,   /* the runner's measuring child, which ran the kernel */
  WIRE_STORED = 8,     /* a trial's result: the history may hold it */
};
/* A trial status's documented name ("ok", "COMPILE_ERROR", ...): what the
 * history stores and the CLI and export print; NULL for none. */
const char *wire_status_name(Ktune__TrialStatus s);
/* The status of a documented name; TRIAL_STATUS_UNSET for none. */
Ktune__TrialStatus wire_status_parse(const char *name);
/* 1 when one of `who` (WIRE_BY_* and WIRE_STORED bits) may say s. */
int wire_status_by(Ktune__TrialStatus s, unsigned who);
/* "queued", "running", "done", "failed", "cancelled"; "unknown" for a
 * value this build does not know (a newer tracker's). */
const char *wire_state_name(Ktune__SessionState s);
Ktune__SessionState wire_state_parse(const char *name);

/* The message's name for logs and errors ("hello", "run_job", ...). */
const char *wire_msg_name(const Ktune__Envelope *env);

/* Blocking: one Envelope over a pipe or socket. */
int wire_write_fd(int fd, const Ktune__Envelope *env);
Ktune__Envelope *wire_read_fd(int fd, uint32_t max);
int wire_write_fd_mac(int fd, const Ktune__Envelope *env, auth_stream *mac);
Ktune__Envelope *wire_read_fd_mac(int fd, uint32_t max, auth_stream *mac, int *forged);

#endif
