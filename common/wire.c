#include "common/wire.h"

#include <stdlib.h>

#include "common/frame.h"

int wire_pack(const Ktune__Envelope *env, uint8_t **frame, size_t *len) {
  size_t n = ktune__envelope__get_packed_size(env);
  if (n > UINT32_MAX) return -1;
  uint8_t *buf = malloc(FRAME_HEADER + n);
  if (!buf) return -1;
  frame_put_header(buf, (uint32_t)n);
  ktune__envelope__pack(env, buf + FRAME_HEADER);
  *frame = buf;
  *len = FRAME_HEADER + n;
  return 0;
}

Ktune__Envelope *wire_unpack(const uint8_t *payload, size_t len) {
  Ktune__Envelope *env = ktune__envelope__unpack(NULL, len, payload);
  if (env && env->msg_case == KTUNE__ENVELOPE__MSG__NOT_SET) {
    ktune__envelope__free_unpacked(env, NULL);
    return NULL;
  }
  return env;
}

void wire_free(Ktune__Envelope *env) {
  if (env) ktune__envelope__free_unpacked(env, NULL);
}

const char *wire_msg_name(const Ktune__Envelope *env) {
  const ProtobufCFieldDescriptor *f =
      protobuf_c_message_descriptor_get_field(&ktune__envelope__descriptor, (unsigned)env->msg_case);
  return f ? f->name : "unknown";
}

int wire_write_fd(int fd, const Ktune__Envelope *env) {
  uint8_t *buf;
  size_t len;
  if (wire_pack(env, &buf, &len) < 0) return -1;
  int rc = frame_write_fd(fd, buf + FRAME_HEADER, (uint32_t)(len - FRAME_HEADER));
  free(buf);
  return rc;
}

Ktune__Envelope *wire_read_fd(int fd, uint32_t max) {
  uint8_t *p;
  uint32_t n;
  if (frame_read_fd(fd, max, &p, &n) < 0) return NULL;
  Ktune__Envelope *env = wire_unpack(p, n);
  free(p);
  return env;
}
