/* audit.h — the pool's audit list, <p>:audit: which operator action was done, by whom,
 * when, from which address and on how many entries; newest first, the newest AUDIT_MAX
 * kept. The web page's actions (worker/web.c) and kie's (`kie dead retry|purge`, `kie
 * pause|resume`, cli/) write it; the page shows it. A dry run changes nothing and is not
 * recorded.
 *
 * Entry (JSON, docs/protocol.md section 2): {"at": ISO-8601 UTC, "who": "<name> (token
 * <8 hex>)" | "token <8 hex>" | "cli:<user>", "from": an address or "<host> (cli)",
 * "action": "dead/retry" | "dead/purge" | "pause" | "resume", then what the action
 * reports: "filter", "selected", "done", "refused", "gone", "reason", "forMs"}.
 *
 * Must not: hold a secret (the token appears only as the first 8 hex digits of its
 * SHA-256), or fail the action it records (the caller logs a failed write). */
#ifndef KIE_AUDIT_H
#define KIE_AUDIT_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "pool/queue.h"

#define AUDIT_MAX 1000
#define AUDIT_WHO_MAX_BYTES 64 /* a name an operator gives, cut to this */

/* Records one action: who, from, action as above (each cut to 200 bytes, made valid
 * UTF-8); the members of detail (an object, or NULL; not taken) are copied in after
 * them. One script, admin_audit_add.lua (LPUSH and LTRIM). 0, or -1 with err. */
int audit_add(struct queue *q, const char *who, const char *from, const char *action,
	      const cJSON *detail, char *err, size_t errlen);

/* One page of the list, newest first: {"total", "offset", "entries": [...]} (an entry
 * that is not JSON is given as a string). NULL with err when Redis failed. */
cJSON *audit_list(struct queue *q, long offset, long limit, char *err, size_t errlen);

/* The "who" of an action sent with token, by an operator who may give a name (NULL or
 * ""): "<name> (token 1a2b3c4d)", the name reduced to letters, digits, space and
 * ".-_@" and cut to AUDIT_WHO_MAX_BYTES. */
void audit_who(const char *name, const char *token, char *out, size_t outlen);

#endif
