/* What each person may use of the farm: their weight in the shares of a
 * key and their quotas. Each comes from their line of the tokens file,
 * else from the last --owner (or --share) naming them, else from the
 * tracker's default; and each says where it came from, so that a refusal
 * can name the limit a person ran into. */
#include <stdio.h>
#include <string.h>

#include "tracker/tracker.h"

static uint32_t field(const auth_entry *e, enum owner_field f) {
  return f == OWNER_SHARE ? e->share : f == OWNER_SESSIONS ? e->sessions : e->queued;
}

static const char *const field_names[] = {"share", "sessions", "queued"};
static const char *const defaults[] = {NULL, "--max-sessions", "--max-queued"};

uint32_t owner_setting(const tracker *t, const char *owner, enum owner_field f, char *from,
                       size_t fromlen) {
  const auth_entry *e = auth_tokens_find(&t->tokens, owner);
  uint32_t v = e ? field(e, f) : 0;
  if (v) {
    if (from) snprintf(from, fromlen, "%s=%u on %s's line of the tokens file", field_names[f], v,
                       owner);
    return v;
  }
  /* The last word for a name is the one that counts. */
  for (uint32_t i = t->opts.nowners; i-- > 0;) {
    const auth_entry *o = &t->opts.owners[i];
    if (strcmp(o->name, owner) != 0 || !(v = field(o, f))) continue;
    if (from) snprintf(from, fromlen, "--owner '%s %s=%u'", owner, field_names[f], v);
    return v;
  }
  v = f == OWNER_SHARE ? 1 : f == OWNER_SESSIONS ? t->opts.max_sessions : t->opts.max_queued;
  if (from) snprintf(from, fromlen, "%s", defaults[f] ? defaults[f] : "the default weight");
  return v;
}

uint32_t owner_weight(const tracker *t, const char *owner) {
  return owner_setting(t, owner, OWNER_SHARE, NULL, 0);
}

/* Without a tokens file nobody is. */
int owner_admin(const tracker *t, const char *owner) {
  const auth_entry *e = auth_tokens_find(&t->tokens, owner);
  return e && !strcmp(e->role, "admin");
}
