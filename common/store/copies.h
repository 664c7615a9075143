/* copies.h — copies of a task's result files in our own store, before KIE's links
 * expire: kie-results/<taskId>/<n>.<ext> (docs/protocol.md, section 5, "Result copies").
 *
 * The pure half (sniffing an image type from its bytes, the key and the URL a copy gets)
 * is unit-tested; copies_copy_one() is the I/O: one download (http and https only, a
 * size cap, a timeout) and one write to the metadata store. The retry schedule and the
 * task's copy state in Redis belong to finalize.c.
 *
 * Must not: touch Redis (finalize.c keeps the copy state), or fetch from an address
 * that is not public (KIE_COPY_ALLOW_PRIVATE aside). */
#ifndef KIE_COPIES_H
#define KIE_COPIES_H

#include <stddef.h>

#include "config/config.h"
#include "store/metadata.h"

#define COPIES_KEY_PREFIX "kie-results/"
#define COPIES_KEY_MAX 512
#define COPIES_URL_MAX 4096
#define COPIES_MAX_REDIRECTS 5

/* The image type of data by its magic number: PNG, JPEG, WebP or GIF (KIE's output
 * formats are png and jpeg; the others are taken as what they are). Returns the MIME type
 * ("image/png", ...) and sets *ext ("png", "jpg", "webp", "gif"), or NULL when the bytes
 * are none of them. */
const char *copies_sniff(const void *data, size_t len, const char **ext);

/* Whether a response's declared Content-Type agrees with the sniffed type. No type,
 * application/octet-stream and binary/octet-stream declare nothing (1); image/jpg and
 * image/pjpeg count as image/jpeg; parameters (";...") and case are ignored; anything
 * else must be the sniffed type (0 otherwise). */
int copies_declared_ok(const char *declared, const char *sniffed);

/* The key of result n of task_id: kie-results/<name>/<n>.<ext>, name as
 * metadata_task_key() writes it. Returns 0, or -1 (err filled) for an empty task id. */
int copies_key(const char *task_id, size_t n, const char *ext, char out[COPIES_KEY_MAX],
	       char *err, size_t errlen);

/* The URL a copy is read back from: "<public_base>/<key>" (trailing slashes of the base
 * dropped) when public_base is set and not empty, else store_url (the store's own
 * address of the object). Writes into out[outlen]. */
void copies_stored_url(const char *public_base, const char *key, const char *store_url,
		       char *out, size_t outlen);

/* --- one copy --- */

enum copy_outcome {
	COPY_STORED = 0, /* in the store; the stored URL is filled */
	COPY_RETRY,      /* a failure that may pass (network, 5xx, 408/429, the store) */
	COPY_REFUSED,    /* will not get better: over the size cap, not an image we know,
			  * a declared type the bytes contradict, another 4xx, a bad URL */
};
const char *copy_outcome_str(enum copy_outcome o);

struct copier;

/* A copier for one thread (its own HTTP handle). The caps and timeout come from cfg
 * (KIE_COPY_MAX_BYTES, KIE_COPY_TIMEOUT_MS). Returns NULL when copies are off
 * (KIE_COPY_RESULTS=0) or no handle could be made (*err filled then). Free with
 * copies_free (NULL-safe). */
struct copier *copies_new(const struct config *cfg, char *err, size_t errlen);
void copies_free(struct copier *c);

/* Downloads url (result n of task_id) and writes it into ms under copies_key(), with the
 * sniffed type as its Content-Type. On COPY_STORED, stored_url gets copies_stored_url()
 * (R2_PUBLIC_BASE_URL when set). Otherwise err holds the reason. Memory: the body is held
 * in one buffer of at most KIE_COPY_MAX_BYTES (grown by doubling, freed before return).
 * This is the one place where a copy's outcome is known (for counters). */
enum copy_outcome copies_copy_one(struct copier *c, struct metadata_store *ms,
				  const char *task_id, size_t n, const char *url,
				  char *stored_url, size_t stored_len, char *err, size_t errlen);

#endif
