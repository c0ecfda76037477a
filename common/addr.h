/* HOST:PORT parsing and resolution for --listen and --tracker. */
#ifndef KTUNE_ADDR_H
#define KTUNE_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* Where a tracker listens, and where the CLI looks for one, unless told:
 * this machine only. */
#define ADDR_DEFAULT_PORT 9290
#define ADDR_DEFAULT_TRACKER "127.0.0.1:9290"

/* Checks the syntax of "HOST:PORT", "HOST" or ":PORT" ("[::1]:9290" for
 * IPv6) without resolving anything: host gets the host (127.0.0.1 when
 * empty), port the port (ADDR_DEFAULT_PORT when none). The message names
 * the bad part. */
int addr_parse(const char *spec, char *host, size_t hostlen, int *port, char *err,
               size_t errlen);

/* addr_parse, then resolves the host numerically or through getaddrinfo. */
int addr_resolve(const char *spec, struct sockaddr_storage *out, char *err, size_t errlen);

/* 1 when the address is a loopback address. */
int addr_is_loopback(const struct sockaddr_storage *a);

/* "127.0.0.1:9290" */
void addr_format(const struct sockaddr_storage *a, char *buf, size_t len);

#endif
