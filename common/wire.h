/* Envelope encode/decode on top of framing, and checks on what arrived. */
#ifndef KTUNE_WIRE_H
#define KTUNE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "common/auth.h"
#include "proto/ktune.pb-c.h"

#define WIRE_PROTOCOL_VERSION 1

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

/* The message's name for logs and errors ("hello", "run_job", ...). */
const char *wire_msg_name(const Ktune__Envelope *env);

/* Blocking: one Envelope over a pipe or socket. */
int wire_write_fd(int fd, const Ktune__Envelope *env);
Ktune__Envelope *wire_read_fd(int fd, uint32_t max);
int wire_write_fd_mac(int fd, const Ktune__Envelope *env, auth_stream *mac);
Ktune__Envelope *wire_read_fd_mac(int fd, uint32_t max, auth_stream *mac, int *forged);

#endif
