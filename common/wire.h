/* Envelope encode/decode on top of framing, and checks on what arrived. */
#ifndef KTUNE_WIRE_H
#define KTUNE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/ktune.pb-c.h"

#define WIRE_PROTOCOL_VERSION 1

/* Seed of the generator that fills every kernel input: fixed, so that a
 * runner can cache reference outputs and anyone can reproduce the inputs. */
#define KTUNE_INPUT_SEED 1

/* Packs env into a whole frame (header + payload), malloc'd. */
int wire_pack(const Ktune__Envelope *env, uint8_t **frame, size_t *len);

/* Decodes one payload. Returns NULL when the bytes are not an Envelope or
 * carry no message. Free with wire_free. */
Ktune__Envelope *wire_unpack(const uint8_t *payload, size_t len);
void wire_free(Ktune__Envelope *env);

/* The message's name for logs and errors ("hello", "run_job", ...). */
const char *wire_msg_name(const Ktune__Envelope *env);

/* Blocking: one Envelope over a pipe or socket. */
int wire_write_fd(int fd, const Ktune__Envelope *env);
Ktune__Envelope *wire_read_fd(int fd, uint32_t max);

#endif
