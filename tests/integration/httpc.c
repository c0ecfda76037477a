#include "tests/integration/httpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/test.h"

int httpc_dial(const char *addr) {
  char host[64];
  int port;
  if (sscanf(addr, "%63[^:]:%d", host, &port) != 2) TEST_FAIL("not HOST:PORT: '%s'", addr);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE_INT(fd, 0);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) TEST_FAIL("not an IPv4 address: '%s'", host);
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
    TEST_FAIL("connect %s: %s", addr, strerror(errno));
  return fd;
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int httpc_get(const char *addr, const char *path, const char *token, int timeout_ms,
              httpc_resp *out) {
  memset(out, 0, sizeof(*out));
  out->status = -1;
  int fd = httpc_dial(addr);
  char req[2048];
  int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n%s%s%sConnection: close\r\n\r\n",
                   path, addr, token ? "Authorization: Bearer " : "", token ? token : "",
                   token ? "\r\n" : "");
  if (write(fd, req, (size_t)n) != n) TEST_FAIL("write to %s: %s", addr, strerror(errno));
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  ASSERT_NOT_NULL(buf);
  long long end = now_ms() + timeout_ms;
  int closed = 0;
  while (!closed) {
    long long left = end - now_ms();
    if (left <= 0) break;
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, (int)left) <= 0) continue;
    if (len + 4096 > cap) {
      cap *= 2;
      buf = realloc(buf, cap);
      ASSERT_NOT_NULL(buf);
    }
    ssize_t r = read(fd, buf + len, cap - len - 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) closed = 1;
    else len += (size_t)r;
  }
  close(fd);
  buf[len] = 0;
  char *sep = strstr(buf, "\r\n\r\n");
  if (!closed || !sep || sscanf(buf, "HTTP/%*d.%*d %d", &out->status) != 1) {
    out->status = -1;
    out->body = buf;
    out->body_len = len;
    return -1;
  }
  size_t hl = (size_t)(sep - buf);
  snprintf(out->head, sizeof(out->head), "%.*s", (int)hl, buf);
  out->body_len = len - hl - 4;
  memmove(buf, sep + 4, out->body_len + 1);
  out->body = buf;
  return out->status;
}

int httpc_header(const httpc_resp *r, const char *name, char *buf, size_t len) {
  size_t nl = strlen(name);
  for (const char *line = strchr(r->head, '\n'); line; line = strchr(line, '\n')) {
    line++;
    if (strncasecmp(line, name, nl) != 0 || line[nl] != ':') continue;
    const char *v = line + nl + 1;
    while (*v == ' ') v++;
    size_t vl = strcspn(v, "\r\n");
    snprintf(buf, len, "%.*s", (int)vl, v);
    return 1;
  }
  return 0;
}

void httpc_free(httpc_resp *r) {
  free(r->body);
  r->body = NULL;
}
