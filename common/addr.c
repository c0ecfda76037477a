#include "common/addr.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A host name or IPv4 address: letters, digits, '.', '-' and '_'. Inside
 * brackets an IPv6 address: hex digits, ':', '.' and a "%zone". */
static int host_ok(const char *h, int bracketed) {
  for (const char *p = h; *p; p++) {
    unsigned char c = (unsigned char)*p;
    int ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             c == '.' || c == '-' || c == '_' || (bracketed && (c == ':' || c == '%'));
    if (!ok) return 0;
  }
  return 1;
}

int addr_parse(const char *spec, char *host, size_t hostlen, int *port, char *err,
               size_t errlen) {
  const char *ps = NULL;
  if (!spec || !*spec) {
    snprintf(err, errlen, "empty address: expected HOST:PORT, e.g. 127.0.0.1:%d", ADDR_DEFAULT_PORT);
    return -1;
  }
  int bracketed = spec[0] == '[';
  size_t hl;
  const char *h = spec + bracketed;
  if (bracketed) {
    const char *end = strchr(spec, ']');
    if (!end) {
      snprintf(err, errlen, "bad address '%s': no ']' after the IPv6 address", spec);
      return -1;
    }
    hl = (size_t)(end - h);
    if (end[1] == ':') ps = end + 2;
    else if (end[1]) {
      snprintf(err, errlen, "bad address '%s': expected ':PORT' after ']', not '%s'", spec,
               end + 1);
      return -1;
    }
  } else {
    const char *colon = strrchr(spec, ':');
    hl = colon ? (size_t)(colon - spec) : strlen(spec);
    if (colon) ps = colon + 1;
  }
  if (hl >= hostlen) {
    snprintf(err, errlen, "bad address '%.40s...': the host is longer than %zu characters", spec,
             hostlen - 1);
    return -1;
  }
  memcpy(host, h, hl);
  host[hl] = 0;
  if (!host_ok(host, bracketed)) {
    snprintf(err, errlen, "bad host '%s' in address '%s': expected a host name or IP address%s",
             host, spec, bracketed ? "" : " (an IPv6 address goes in brackets: [::1]:9290)");
    return -1;
  }
  if (!host[0]) snprintf(host, hostlen, "127.0.0.1");
  *port = ADDR_DEFAULT_PORT;
  if (ps) {
    /* Digits only: strtol would take " 80", "+80" and "-0". */
    size_t nd = strspn(ps, "0123456789");
    long p = nd && nd <= 5 && !ps[nd] ? strtol(ps, NULL, 10) : -1;
    if (p < 0 || p > 65535) {
      snprintf(err, errlen, "bad port '%s' in address '%s': expected a number from 0 to 65535", ps,
               spec);
      return -1;
    }
    *port = (int)p;
  }
  return 0;
}

int addr_resolve(const char *spec, struct sockaddr_storage *out, char *err, size_t errlen) {
  char host[256];
  int port;
  if (addr_parse(spec, host, sizeof(host), &port, err, errlen) < 0) return -1;
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  char ps[8];
  snprintf(ps, sizeof(ps), "%d", port);
  int rc = getaddrinfo(host, ps, &hints, &res);
  if (rc != 0 || !res) {
    snprintf(err, errlen, "cannot resolve '%s': %s", host, gai_strerror(rc));
    return -1;
  }
  memset(out, 0, sizeof(*out));
  memcpy(out, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  return 0;
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
