/* finalize.c — metadata first, then the once-only event; see finalize.h. */
#include "finalize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_strict.h"
#include "log.h"
#include "util.h"

static char *event_json(const char *status, const char *job_id, const char *task_id,
			const char *type, const struct kie_result *r, const char *error,
			long attempts, const char *job_meta_json, int max_urls, size_t error_max)
{
	cJSON *o = cJSON_CreateObject(), *urls;
	char ts[UTIL_ISO8601_SIZE], ev[32], *s, why[200];
	size_t omitted = 0;

	cJSON_AddNumberToObject(o, "v", 1);
	snprintf(ev, sizeof(ev), "job.%s", status);
	cJSON_AddStringToObject(o, "event", ev);
	cJSON_AddStringToObject(o, "status", status);
	if (job_id && *job_id) cJSON_AddStringToObject(o, "jobId", job_id);
	else cJSON_AddNullToObject(o, "jobId");
	if (task_id && *task_id) cJSON_AddStringToObject(o, "taskId", task_id);
	else cJSON_AddNullToObject(o, "taskId");
	if (type && *type) cJSON_AddStringToObject(o, "type", type);
	else cJSON_AddNullToObject(o, "type");
	urls = cJSON_AddArrayToObject(o, "resultUrls");
	for (size_t i = 0; r && i < r->n_results; i++) {
		if (cJSON_GetArraySize(urls) < max_urls &&
		    strlen(r->result_urls[i]) <= FINALIZE_EVENT_URL_MAX)
			cJSON_AddItemToArray(urls, cJSON_CreateString(r->result_urls[i]));
		else
			omitted++;
	}
	if (omitted) /* all of them are in the metadata record */
		cJSON_AddNumberToObject(o, "resultUrlsOmitted", (double)omitted);
	if (!error && r && !r->success)
		error = r->error;
	if (error) {
		char *e = util_strdup(error);
		util_utf8_cut(e, error_max);
		util_utf8_sanitize(e);
		cJSON_AddStringToObject(o, "error", e);
		free(e);
	} else {
		cJSON_AddNullToObject(o, "error");
	}
	if (r && r->has_credits) cJSON_AddNumberToObject(o, "credits", r->credits);
	else cJSON_AddNullToObject(o, "credits");
	if (r && r->has_cost_time) cJSON_AddNumberToObject(o, "costTime", r->cost_time_ms);
	else cJSON_AddNullToObject(o, "costTime");
	cJSON_AddNumberToObject(o, "attempts", (double)attempts);
	util_iso8601(util_now_ms(), ts);
	cJSON_AddStringToObject(o, "finishedAt", ts);
	/* meta byte for byte (it passed the strict check when the job was parsed; checked
	 * again, as it comes back from Redis) */
	if (job_meta_json && *job_meta_json &&
	    json_strict_check(job_meta_json, strlen(job_meta_json), NULL, why, sizeof(why)) == 0)
		cJSON_AddRawToObject(o, "meta", job_meta_json);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!s)
		abort(); /* out of memory for a bounded event */
	return s;
}

char *finalize_event_json(const char *status, const char *job_id, const char *task_id,
			  const char *type, const struct kie_result *r, const char *error,
			  long attempts, const char *job_meta_json)
{
	size_t meta_len = job_meta_json ? strlen(job_meta_json) : 0;
	char *s = event_json(status, job_id, task_id, type, r, error, attempts, job_meta_json,
			     FINALIZE_EVENT_MAX_URLS, FINALIZE_EVENT_ERROR_MAX);
	if (strlen(s) <= FINALIZE_EVENT_MAX_BYTES + meta_len)
		return s;
	free(s); /* ids are capped, so this fits */
	return event_json(status, job_id, task_id, type, r, error, attempts, job_meta_json, 0,
			  256);
}

int finalize_task(struct queue *q, struct metadata_store *ms, const char *task_id,
		  const struct kie_result *r, int *finalized_now, char *err, size_t errlen)
{
	struct task_record t;
	int rc;

	*finalized_now = 0;
	if (queue_task_get(q, task_id, 0, &t) != 0) {
		snprintf(err, errlen, "reading the task record: %s", q->err);
		return -1;
	}
	rc = finalize_task_read(q, ms, task_id, &t, r, finalized_now, err, errlen);
	queue_task_record_free(&t);
	return rc;
}

int finalize_task_read(struct queue *q, struct metadata_store *ms, const char *task_id,
		       const struct task_record *tr, const struct kie_result *r,
		       int *finalized_now, char *err, size_t errlen)
{
	const struct task_record t = *tr; /* a shallow copy: read only */
	cJSON *rec = NULL, *fields = NULL;
	char *event = NULL;
	const char *status = r->success ? "completed" : "failed";
	int rc = -1, g;

	*finalized_now = 0;
	if (t.finalized) { /* someone else got there first: a no-op */
		rc = 0;
		goto out;
	}
	/* 1. metadata: merge into the stored record; rebuild it from Redis when missing */
	g = metadata_store_get(ms, task_id, &rec, err, errlen);
	if (g < 0)
		goto out;
	if (g == 1) {
		rec = t.record ? cJSON_Parse(t.record) : NULL;
		if (!cJSON_IsObject(rec)) {
			cJSON_Delete(rec);
			rec = cJSON_CreateObject();
			cJSON_AddStringToObject(rec, "taskId", task_id);
			if (t.job_id[0])
				cJSON_AddStringToObject(rec, "jobId", t.job_id);
		}
	}
	fields = metadata_result_fields(r, util_now_ms());
	metadata_merge(rec, fields);
	if (metadata_store_put(ms, task_id, rec, err, errlen) != 0)
		goto out;
	/* 2. the event, once; a job's duplicate task is collected without one (its job has
	 * its own task and event) */
	if (!t.duplicate_of[0])
		event = finalize_event_json(status, t.job_id, task_id, t.type, r, NULL, t.attempts,
					    t.job_meta);
	if (queue_finalize(q, task_id, t.duplicate_of[0] ? NULL : t.job_id, status, event,
			   t.reply_to, finalized_now) != 0) {
		snprintf(err, errlen, "emitting the event: %s", q->err);
		goto out;
	}
	if (*finalized_now)
		log_info(t.job_id[0] ? t.job_id : NULL, task_id, "task %s: %zu result URL(s)%s%s",
			 status, r->n_results, r->success ? "" : ", error: ",
			 r->success ? "" : (r->error ? r->error : "?"));
	rc = 0;
out:
	free(event);
	cJSON_Delete(fields);
	cJSON_Delete(rec);
	return rc;
}
