/* A small HTTP/1.0 client for the tests of the tracker's HTTP side: one
 * request per connection, read to its close. */
#ifndef KTUNE_TESTS_HTTPC_H
#define KTUNE_TESTS_HTTPC_H

#include <stddef.h>

typedef struct {
  int status;        /* the status code; -1: no answer within the time */
  char head[4096];   /* the status line and headers */
  char *body;        /* malloc'd, NUL-terminated */
  size_t body_len;
} httpc_resp;

/* A connected socket to addr ("127.0.0.1:PORT"); fails the test if none. */
int httpc_dial(const char *addr);

/* GET path from addr, with "Authorization: Bearer token" when token is not
 * NULL; within timeout_ms. Returns the status (out->status). */
int httpc_get(const char *addr, const char *path, const char *token, int timeout_ms,
              httpc_resp *out);

/* The value of header name (case-insensitive) in r's head, in buf; 0 when
 * it has none. */
int httpc_header(const httpc_resp *r, const char *name, char *buf, size_t len);

void httpc_free(httpc_resp *r);

#endif
