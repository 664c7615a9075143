/* finalize.h — the one finalization path, whoever sees a task's end first (poller,
 * callback endpoint, timeout): metadata updated, then the completion event emitted
 * exactly once (queue_finalize's atomic check). */
#ifndef KIE_FINALIZE_H
#define KIE_FINALIZE_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "kie_client.h"
#include "metadata.h"
#include "queue.h"

/* One event is at most FINALIZE_EVENT_MAX_BYTES plus its meta (KIE_JOB_META_MAX_BYTES),
 * whatever KIE answers, so <p>:results (KIE_RESULTS_MAX events) has a byte budget: at
 * most FINALIZE_EVENT_MAX_URLS result URLs of at most FINALIZE_EVENT_URL_MAX bytes (the
 * metadata record keeps every one; the event counts the rest in resultUrlsOmitted), an
 * error cut at FINALIZE_EVENT_ERROR_MAX bytes on a character boundary; an event still
 * over the bound after that (text that escapes badly) goes out without its URLs. */
#define FINALIZE_EVENT_MAX_URLS 10
#define FINALIZE_EVENT_URL_MAX 2048
#define FINALIZE_EVENT_ERROR_MAX 1024
#define FINALIZE_EVENT_MAX_BYTES 16384

/* Builds a completion event (docs/protocol.md). status: completed | failed | dead.
 * Any argument but status may be NULL. job_meta_json is the descriptor's meta, copied
 * byte for byte. Returns a new string (caller frees). */
char *finalize_event_json(const char *status, const char *job_id, const char *task_id,
			  const char *type, const struct kie_result *r, const char *error,
			  long attempts, const char *job_meta_json);

/* Finalizes task_id with result r. Returns 0 when done (by this call or an earlier one;
 * *finalized_now tells which), -1 when the metadata store or Redis failed (err filled):
 * the caller must try again later — nothing is lost. */
int finalize_task(struct queue *q, struct metadata_store *ms, const char *task_id,
		  const struct kie_result *r, int *finalized_now, char *err, size_t errlen);
/* The same with the task record t already read (queue_task_get) by the caller, e.g. the
 * poller just before its recordInfo call: no second read. The emission's atomic check
 * (queue_finalize) still makes a finalization by someone else since then a no-op. */
int finalize_task_read(struct queue *q, struct metadata_store *ms, const char *task_id,
		       const struct task_record *t, const struct kie_result *r,
		       int *finalized_now, char *err, size_t errlen);

#endif
