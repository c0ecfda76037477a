/* What a trial is: the kernel that was built and how it was measured, as
 * SHA-256 digests in lowercase hex (docs/HISTORY.md, "Identity"). A result
 * in the history answers only for a trial with the same digest, so a
 * changed template, constant or tolerance never reuses an old measurement. */
#ifndef KTUNE_IDENTITY_H
#define KTUNE_IDENTITY_H

#include "common/task.h"

#define IDENT_HEX 65 /* 64 hex chars + NUL */

/* The kernel digest: the template source bytes (the reference function
 * lives in it), the entry and reference names, the args (name, type, count
 * expression, output flag) in order, the constants (name, current value, so
 * after -D) in order, the FLOP expression, rtol and atol, and the bytes
 * expression when the spec gives one. Not the task
 * name, the knobs' value lists or the constraints: they change which
 * configs are searched, not what one config computes. Returns 0, or
 * -EINVAL when t or one of its strings is missing. */
int ident_kernel(const task_spec *t, char out[IDENT_HEX]);

/* The trial digest: a kernel digest, the config (knob values, a JSON
 * object), the compiler, the device key, the timing options (a JSON object;
 * NULL is {}) and whether outputs were checked against the reference. The
 * JSON is canonicalised (keys sorted, compact) first, so equal objects
 * written in another key order give the same digest. Returns 0, -EINVAL
 * for a missing string or JSON that is not an object, -ENOMEM. */
int ident_trial(const char *kernel_hex, const char *config_json, const char *compiler,
                const char *key, const char *timing_json, int checked, char out[IDENT_HEX]);
/* The same for JSON that is canonical already (what space_config_json and
 * timing_json write): no parse on the tracker's hot path. */
int ident_trial_canonical(const char *kernel_hex, const char *config_json, const char *compiler,
                          const char *key, const char *timing_json, int checked,
                          char out[IDENT_HEX]);

/* 1 when s looks like a digest: 64 lowercase hex characters. */
int ident_is_digest(const char *s);

/* The canonical text of a JSON object (keys sorted, compact), the form the
 * history stores and the digests hash. Returns 0 and a malloc'd *out;
 * -EINVAL with a reason in err when text is not a JSON object (duplicate
 * keys included); -ENOMEM. */
int ident_canonical_object(const char *text, char **out, char *err, size_t errlen);

#endif
