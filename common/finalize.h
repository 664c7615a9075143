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

/* Builds a completion event (docs/protocol.md). status: completed | failed | dead.
 * Any argument but status may be NULL. Returns a new string (caller frees). */
char *finalize_event_json(const char *status, const char *job_id, const char *task_id,
			  const char *type, const struct kie_result *r, const char *error,
			  long attempts, const char *job_meta_json);

/* Finalizes task_id with result r. Returns 0 when done (by this call or an earlier one;
 * *finalized_now tells which), -1 when the metadata store or Redis failed (err filled):
 * the caller must try again later — nothing is lost. */
int finalize_task(struct queue *q, struct metadata_store *ms, const char *task_id,
		  const struct kie_result *r, int *finalized_now, char *err, size_t errlen);

#endif
