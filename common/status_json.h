#ifndef KTUNE_COMMON_STATUS_JSON_H
#define KTUNE_COMMON_STATUS_JSON_H

#include <jansson.h>

#include "proto/ktune.pb-c.h"

/* r as the object `ktune status --json` prints; NULL when out of memory. */
json_t *status_json(const Ktune__StatusReply *r);

/* The same as one line of text (malloc'd), or NULL. */
char *status_json_text(const Ktune__StatusReply *r);

#endif
