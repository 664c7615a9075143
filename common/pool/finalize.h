/* finalize.h — the one finalization path, whoever sees a task's end first (poller,
 * callback endpoint, timeout): metadata updated, then the completion event emitted
 * exactly once (queue_finalize's atomic check).
 *
 * Must not: emit an event twice, or before the record is written. */
#ifndef KIE_FINALIZE_H
#define KIE_FINALIZE_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "config/config.h"
#include "kie/kie_client.h"
#include "pool/queue.h"
#include "store/copies.h"
#include "store/metadata.h"

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

/* The copies of a succeeded task's result files (copies.h), index for index with
 * r->result_urls: stored[i] is the copy's URL or NULL, errors[i] why there is none (or
 * NULL). n is r->n_results. */
struct finalize_copies {
	size_t n;
	const char *const *stored;
	const char *const *errors;
};
/* finalize_event_json with the copies: "storedUrls" (the first FINALIZE_EVENT_MAX_URLS,
 * null where none; the rest counted in "storedUrlsOmitted") and "copyErrors" ([{"index",
 * "reason"}], reasons cut at 256 bytes, at most FINALIZE_EVENT_MAX_URLS). copies NULL:
 * neither field (copies off, or a failed task). */
char *finalize_event_json_copies(const char *status, const char *job_id, const char *task_id,
				 const char *type, const struct kie_result *r,
				 const struct finalize_copies *copies, const char *error,
				 long attempts, const char *job_meta_json);

/* The account alias a task's cost is counted under (spend counters, the
 * kie_credits_consumed_total metric) when its job hash names none: the pool's default
 * account. Set once at start, before any thread finalizes; alias must outlive them. */
void finalize_set_default_account(const char *alias);
/* i20-accounts: on (the pool has several accounts): a task whose record names no account
 * is counted under its job hash's account field (one Redis read more). */
void finalize_set_multi_account(int on);

/* Finalizes task_id with result r. Returns 0 when done (by this call or an earlier one;
 * *finalized_now tells which: 1 this call, 2 this call but without an event because the
 * job was dead-lettered before its task was adopted, 0 earlier), -1 when the metadata
 * store or Redis failed (err filled): the caller must try again later — nothing is lost.
 * The record written is the stored one (or, when none is, the pending record kept in
 * Redis) with the result merged in and any field of the pending record it lacked added. */
int finalize_task(struct queue *q, struct metadata_store *ms, const char *task_id,
		  const struct kie_result *r, int *finalized_now, char *err, size_t errlen);
/* The same with the task record t already read (queue_task_get) by the caller, e.g. the
 * poller just before its recordInfo call: no second read. The emission's atomic check
 * (queue_finalize) still makes a finalization by someone else since then a no-op. */
int finalize_task_read(struct queue *q, struct metadata_store *ms, const char *task_id,
		       const struct task_record *t, const struct kie_result *r,
		       const struct finalize_copies *copies, int *finalized_now, char *err,
		       size_t errlen);

/* finalize_task with the copies (NULL: none), written into the metadata record
 * (storedUrls, copyErrors) and the event. */
int finalize_task_copies(struct queue *q, struct metadata_store *ms, const char *task_id,
			 const struct kie_result *r, const struct finalize_copies *copies,
			 int *finalized_now, char *err, size_t errlen);

/* --- the copy step between a task's success and its finalization ---
 * A succeeded task whose copies are on (KIE_COPY_RESULTS) is not finalized at once: its
 * result is saved in its task hash (finalize_begin_copies; the first one saved wins, so a
 * callback and a poll agree) and the pollers run copy rounds on it until every file is
 * copied or refused, or KIE_COPY_DEADLINE_MS has passed since the round began; then it is
 * finalized with what was copied. A round that leaves copies to retry puts the task back
 * in <p>:poll:due at the backoff's due time: no thread waits. */
int finalize_begin_copies(struct queue *q, const char *task_id, const struct kie_result *r,
			  char *err, size_t errlen);

/* One copy round of a task whose copies began (task_record.copying). cp NULL (copies
 * turned off since): finalizes at once with the copies already made. Returns 0 with
 * *finalized (1: finalized by this round or before; 0: rescheduled for *next_ms), or -1
 * (Redis or the store failed; err filled): the caller reschedules. known: the task
 * record the caller has just read (no second read), or NULL. The claim's poll lease
 * covers the round's first download (poller.c sizes it so); it is renewed before each
 * further one. */
int finalize_copy_round(struct queue *q, struct metadata_store *ms, struct copier *cp,
			const struct config *cfg, const char *task_id,
			const struct task_record *known, int *finalized, int64_t *next_ms,
			char *err, size_t errlen);

/* The wait after the tries-th round that left copies to retry: retry_ms doubled per
 * round, at most 60 s (FINALIZE_COPY_RETRY_MAX_MS). */
#define FINALIZE_COPY_RETRY_MAX_MS 60000
int64_t finalize_copy_backoff_ms(long retry_ms, long tries);

#endif
