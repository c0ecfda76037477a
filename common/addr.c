#include "common/addr.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int addr_resolve(const char *spec, struct sockaddr_storage *out, char *err, size_t errlen) {
  char host[256];
  const char *port = NULL;
  if (!spec || !*spec) {
    snprintf(err, errlen, "empty address: expected HOST:PORT, e.g. 127.0.0.1:%d", ADDR_DEFAULT_PORT);
    return -1;
  }
  if (spec[0] == '[') {
    const char *end = strchr(spec, ']');
    if (!end || (size_t)(end - spec - 1) >= sizeof(host)) goto bad;
    memcpy(host, spec + 1, (size_t)(end - spec - 1));
    host[end - spec - 1] = 0;
    if (end[1] == ':') port = end + 2;
    else if (end[1]) goto bad;
  } else {
    const char *colon = strrchr(spec, ':');
    size_t hl = colon ? (size_t)(colon - spec) : strlen(spec);
    if (hl >= sizeof(host)) goto bad;
    memcpy(host, spec, hl);
    host[hl] = 0;
    if (colon) port = colon + 1;
  }
  if (!host[0]) strcpy(host, "127.0.0.1");
  long p = ADDR_DEFAULT_PORT;
  if (port) {
    char *e;
    p = strtol(port, &e, 10);
    if (!*port || *e || p < 0 || p > 65535) goto bad;
  }
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  char ps[8];
  snprintf(ps, sizeof(ps), "%ld", p);
  int rc = getaddrinfo(host, ps, &hints, &res);
  if (rc != 0 || !res) {
    snprintf(err, errlen, "cannot resolve '%s': %s", host, gai_strerror(rc));
    return -1;
  }
  memset(out, 0, sizeof(*out));
  memcpy(out, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  return 0;
bad:
  snprintf(err, errlen, "bad address '%s': expected HOST:PORT, e.g. 127.0.0.1:%d", spec,
           ADDR_DEFAULT_PORT);
  return -1;
}

int addr_is_loopback(const struct sockaddr_storage *a) {
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *s = (const struct sockaddr_in *)a;
    return (ntohl(s->sin_addr.s_addr) >> 24) == 127;
  }
  if (a->ss_family == AF_INET6) {
    const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)a;
    return IN6_IS_ADDR_LOOPBACK(&s->sin6_addr);
  }
  return 0;
}

void addr_format(const struct sockaddr_storage *a, char *buf, size_t len) {
  char ip[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *s = (const struct sockaddr_in *)a;
    inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
    port = ntohs(s->sin_port);
    snprintf(buf, len, "%s:%d", ip, port);
  } else if (a->ss_family == AF_INET6) {
    const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)a;
    inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
    port = ntohs(s->sin6_port);
    snprintf(buf, len, "[%s]:%d", ip, port);
  } else {
    snprintf(buf, len, "?");
  }
}
