/* metadata.h — the seed's KIETaskMetadata record (kie-tasks/<taskId>.json) and the store
 * that keeps it: "fs" (a local directory, atomic writes) or "r2" (R2's S3 API).
 *
 * Record fields (the seed's names): taskId, jobId, type, model, prompt, imageUrls,
 * character (optional), ratio, status (pending|completed|failed), resultUrls, error,
 * consumeCredits, costTime (milliseconds), createdAt, updatedAt (ISO-8601 UTC); and
 * outputFormat (png|jpeg), the one request field the seed did not keep.
 *
 * Must not: touch Redis, or let a pending record overwrite a final one (it is written
 * create-if-absent). */
#ifndef KIE_METADATA_H
#define KIE_METADATA_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "config/config.h"
#include "kie/kie_client.h"

#define METADATA_KEY_PREFIX "kie-tasks/"
#define METADATA_MAX_BYTES (1024 * 1024)

enum meta_status { META_PENDING = 0, META_COMPLETED, META_FAILED };
const char *meta_status_str(enum meta_status s);

struct task_metadata {
	const char *task_id;
	const char *job_id;
	const char *type;
	const char *model;
	const char *prompt;
	const char *const *image_urls;
	size_t n_images;
	const char *character; /* NULL: omitted */
	const char *ratio;
	const char *output_format; /* NULL: omitted */
};

/* A new pending record (status pending, createdAt = updatedAt = now). task_id NULL
 * writes "taskId": null (a record made before createTask answered; metadata_set_ids
 * fills it in). Caller deletes. */
cJSON *metadata_pending(const struct task_metadata *m, int64_t now_ms);

/* The fields a finished task updates: status, resultUrls, error, consumeCredits,
 * costTime, updatedAt. updatedAt is KIE's updateTime when it sent one, else now_ms: KIE's
 * clock, so it can be earlier than the record's createdAt (ours); metadata_merge clamps it.
 * Caller deletes. */
cJSON *metadata_result_fields(const struct kie_result *r, int64_t now_ms);

/* Copies every member of fields into record. Names match case-sensitively ("Status" is
 * not "status"); a member replaces the record's same-named one in its place, and the
 * record is left with one member of each name (cJSON keeps a parsed document's duplicate
 * keys: the extra ones are dropped). Then, when the record's createdAt and updatedAt both
 * parse as ISO-8601 timestamps with a zone and updatedAt is the earlier (KIE's clock
 * against ours), updatedAt is set to createdAt. */
void metadata_merge(cJSON *record, const cJSON *fields);

/* Adds to record every member of base it does not have (a record never loses a field its
 * pending version had), then sets taskId to task_id and, when job_id is non-empty and
 * the record's jobId is missing or null, jobId. */
void metadata_complete(cJSON *record, const cJSON *base, const char *task_id,
		       const char *job_id);

/* The name a task's record is stored under (kie-tasks/<name>.json): any task id KIE
 * returns gets one. An id of 1..200 bytes of A-Z a-z 0-9 - _ . : (not "." or "..") is
 * its own name; any other is "~" and its percent-encoding (bytes outside A-Z a-z 0-9 -
 * _), or "~h-<sha256 hex of the id>" when that passes 200 bytes. Injective: a plain
 * name never starts with "~". -1 (err filled) only for an empty id. */
#define METADATA_KEY_NAME_MAX 201
int metadata_task_key(const char *task_id, char out[METADATA_KEY_NAME_MAX], char *err,
		      size_t errlen);

struct metadata_store;

/* Opens the store the configuration selects (config_metadata_store()). One per thread.
 * Returns NULL with err filled (names the missing variable). */
struct metadata_store *metadata_store_open(const struct config *cfg, char *err, size_t errlen);
void metadata_store_free(struct metadata_store *s);
const char *metadata_store_kind(const struct metadata_store *s);

/* Whether the store can be used now, cheaply (GET /readyz): fs, its directory exists and is
 * writable (access(2); as root only a read-only file system fails); r2, HEAD bucket. 0 or
 * -1 with err saying what failed. */
int metadata_store_check(struct metadata_store *s, char *err, size_t errlen);
/* Writes a whole record. */
int metadata_store_put(struct metadata_store *s, const char *task_id, const cJSON *record,
		       char *err, size_t errlen);
/* Writes a record only when none is stored under the task's name (the pending record,
 * which must never replace a final one): r2 PUTs with If-None-Match: * (a 412 is a record
 * already there), fs links the written temporary file into place (EEXIST likewise), so
 * the write stays atomic either way. Returns 0 written, 1 one was there (left as it is),
 * -1 error (err). */
int metadata_store_put_new(struct metadata_store *s, const char *task_id,
			   const cJSON *record, char *err, size_t errlen);
/* Reads a record: 0 (*out is new, caller deletes), 1 not found, -1 error. */
int metadata_store_get(struct metadata_store *s, const char *task_id, cJSON **out, char *err,
		       size_t errlen);
/* Saves the pending record (the seed's saveKIETaskMetadata). */
int metadata_store_save_pending(struct metadata_store *s, const struct task_metadata *m,
				char *err, size_t errlen);
/* Merges fields into the stored record, keeping the rest; creates it (with taskId)
 * when missing (the seed's updateKIETaskMetadata). */
int metadata_store_update(struct metadata_store *s, const char *task_id, const cJSON *fields,
			  char *err, size_t errlen);

/* Any other object of the store (result copies, copies.h), under key — a path of
 * segments of A-Z a-z 0-9 - _ . : ~ % (metadata_task_key's names) joined by "/", no "."
 * or ".." segment: r2 PUTs it to <endpoint>/<bucket>/<key>, fs writes
 * <KIE_METADATA_DIR>/<key> atomically (directories created). Returns 0 or -1 (err). */
int metadata_store_put_object(struct metadata_store *s, const char *key, const void *data,
			      size_t len, const char *content_type, char *err, size_t errlen);
/* The store's own address of the object under key: the S3 URL (r2) or the file path (fs). */
void metadata_store_object_url(const struct metadata_store *s, const char *key, char *out,
			       size_t outlen);

#endif
