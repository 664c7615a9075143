/* finalize.c — metadata first, then the once-only event; see finalize.h. */
#include "pool/finalize.h"
#include "pool/budget.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_strict.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"

/* storedUrls and copyErrors of an event (see finalize.h). */
/* the alias a task's cost is counted under when its job hash names none (finalize.h) */
static const char *finalize_default_account = "";

void finalize_set_default_account(const char *alias)
{
	finalize_default_account = alias ? alias : "";
}

/* i20-accounts: several accounts: the job hash's account names a task's */
static int finalize_multi_account;

void finalize_set_multi_account(int on)
{
	finalize_multi_account = on;
}

/* The alias task t's cost is counted under: t's account, else (several accounts) its job
 * hash's, else the default; into out. */
static void task_account(struct queue *q, const struct task_record *t, char *out, size_t n)
{
	util_strlcpy(out, t->account[0] ? t->account : finalize_default_account, n);
	if (finalize_multi_account && !t->account[0] && t->job_id[0]) {
		char key[300];
		const char *argv[3] = {"HGET", key, "account"};
		redisReply *rep;
		queue_key(q, key, sizeof(key), "job:");
		util_strlcpy(key + strlen(key), t->job_id, sizeof(key) - strlen(key));
		rep = rconn_argv(q->r, 3, argv, NULL);
		if (rep && rep->type == REDIS_REPLY_STRING && rep->len > 0)
			util_strlcpy(out, rep->str, n);
		if (rep)
			freeReplyObject(rep);
	}
}

static void add_copies(cJSON *o, const struct finalize_copies *c, int max_urls)
{
	cJSON *su = cJSON_AddArrayToObject(o, "storedUrls");
	cJSON *ce = cJSON_AddArrayToObject(o, "copyErrors");
	size_t omitted = 0;

	for (size_t i = 0; i < c->n; i++) {
		if (cJSON_GetArraySize(su) >= max_urls) {
			omitted++;
		} else if (c->stored[i] && strlen(c->stored[i]) <= FINALIZE_EVENT_URL_MAX) {
			cJSON_AddItemToArray(su, cJSON_CreateString(c->stored[i]));
		} else {
			cJSON_AddItemToArray(su, cJSON_CreateNull());
		}
		if (c->errors[i] && cJSON_GetArraySize(ce) < FINALIZE_EVENT_MAX_URLS) {
			cJSON *e = cJSON_CreateObject();
			char *why = util_strdup(c->errors[i]);
			util_utf8_cut(why, 256);
			util_utf8_sanitize(why);
			cJSON_AddNumberToObject(e, "index", (double)i);
			cJSON_AddStringToObject(e, "reason", why);
			free(why);
			cJSON_AddItemToArray(ce, e);
		}
	}
	if (omitted)
		cJSON_AddNumberToObject(o, "storedUrlsOmitted", (double)omitted);
}

static char *event_json(const char *status, const char *job_id, const char *task_id,
			const char *type, const struct kie_result *r,
			const struct finalize_copies *copies, const char *error,
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
	if (copies)
		add_copies(o, copies, max_urls);
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

char *finalize_event_json_copies(const char *status, const char *job_id, const char *task_id,
				 const char *type, const struct kie_result *r,
				 const struct finalize_copies *copies, const char *error,
				 long attempts, const char *job_meta_json)
{
	size_t meta_len = job_meta_json ? strlen(job_meta_json) : 0;
	char *s = event_json(status, job_id, task_id, type, r, copies, error, attempts,
			     job_meta_json, FINALIZE_EVENT_MAX_URLS, FINALIZE_EVENT_ERROR_MAX);
	if (strlen(s) <= FINALIZE_EVENT_MAX_BYTES + meta_len)
		return s;
	free(s); /* ids are capped, so this fits */
	return event_json(status, job_id, task_id, type, r, copies, error, attempts,
			  job_meta_json, 0, 256);
}

char *finalize_event_json(const char *status, const char *job_id, const char *task_id,
			  const char *type, const struct kie_result *r, const char *error,
			  long attempts, const char *job_meta_json)
{
	return finalize_event_json_copies(status, job_id, task_id, type, r, NULL, error,
					  attempts, job_meta_json);
}

/* storedUrls and copyErrors of the metadata record: every index, nothing cut. */
static void record_copies(cJSON *fields, const struct finalize_copies *c)
{
	cJSON *su = cJSON_AddArrayToObject(fields, "storedUrls");
	cJSON *ce = cJSON_AddArrayToObject(fields, "copyErrors");

	for (size_t i = 0; i < c->n; i++) {
		cJSON_AddItemToArray(su, c->stored[i] ? cJSON_CreateString(c->stored[i])
						      : cJSON_CreateNull());
		if (c->errors[i]) {
			cJSON *e = cJSON_CreateObject();
			cJSON_AddNumberToObject(e, "index", (double)i);
			cJSON_AddStringToObject(e, "reason", c->errors[i]);
			cJSON_AddItemToArray(ce, e);
		}
	}
}

/* The request fields of a record (what the task was asked to do), as opposed to its
 * outcome: a job's second task was asked the same. */
static const char *const request_fields[] = {"type", "model", "prompt", "imageUrls",
					     "character", "ratio", "outputFormat", NULL};

/* A duplicate task recorded without a pending record (its job's was dropped when the
 * job's own task finished): its request fields come from that task's stored record. */
static void complete_from(struct metadata_store *ms, cJSON *rec, const char *other_task)
{
	cJSON *o = NULL, *prompt = cJSON_GetObjectItemCaseSensitive(rec, "prompt");
	char err[300];

	if (cJSON_IsString(prompt) || metadata_store_get(ms, other_task, &o, err, sizeof(err)) != 0)
		return;
	for (int i = 0; request_fields[i]; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, request_fields[i]);
		cJSON *have = cJSON_GetObjectItemCaseSensitive(rec, request_fields[i]);
		if (!v || (have && !cJSON_IsNull(have)))
			continue;
		if (have)
			cJSON_ReplaceItemViaPointer(rec, have, cJSON_Duplicate(v, 1));
		else
			cJSON_AddItemToObject(rec, request_fields[i], cJSON_Duplicate(v, 1));
	}
	cJSON_Delete(o);
}

int finalize_task(struct queue *q, struct metadata_store *ms, const char *task_id,
		  const struct kie_result *r, int *finalized_now, char *err, size_t errlen)
{
	return finalize_task_copies(q, ms, task_id, r, NULL, finalized_now, err, errlen);
}

int finalize_task_copies(struct queue *q, struct metadata_store *ms, const char *task_id,
			 const struct kie_result *r, const struct finalize_copies *copies,
			 int *finalized_now, char *err, size_t errlen)
{
	struct task_record t;
	int rc;

	*finalized_now = 0;
	if (queue_task_get(q, task_id, &t) != 0) {
		snprintf(err, errlen, "reading the task record: %s", q->err);
		return -1;
	}
	rc = finalize_task_read(q, ms, task_id, &t, r, copies, finalized_now, err, errlen);
	queue_task_record_free(&t);
	return rc;
}

int finalize_task_read(struct queue *q, struct metadata_store *ms, const char *task_id,
		       const struct task_record *tr, const struct kie_result *r,
		       const struct finalize_copies *copies, int *finalized_now, char *err,
		       size_t errlen)
{
	const struct task_record t = *tr; /* a shallow copy: read only */
	cJSON *rec = NULL, *fields = NULL, *pending = NULL;
	char *event = NULL;
	const char *status = r->success ? "completed" : "failed";
	int rc = -1, g;
	struct queue_cost cost;
	char today[16], yday[16], acct[72];

	*finalized_now = 0;
	if (t.finalized) { /* someone else got there first: a no-op */
		rc = 0;
		goto out;
	}
	/* 1. metadata: the pending record kept in Redis with the result merged in, written
	 * once. The stored record is read back only when Redis keeps none (a task pushed by
	 * a producer, an adoption whose descriptor was gone) or for a job's duplicate task
	 * (its request fields may come from its job's task's record): the store holds
	 * nothing the pending record lacks — the runner's create-if-absent write of that
	 * same record, or an earlier try of this same finalization */
	pending = t.record ? cJSON_Parse(t.record) : NULL;
	if (cJSON_IsObject(pending) && !t.duplicate_of[0]) {
		g = 1;
	} else {
		g = metadata_store_get(ms, task_id, &rec, err, errlen);
		if (g < 0)
			goto out;
	}
	if (g == 1)
		rec = cJSON_CreateObject();
	metadata_complete(rec, cJSON_IsObject(pending) ? pending : NULL, task_id, t.job_id);
	if (t.duplicate_of[0])
		complete_from(ms, rec, t.duplicate_of);
	fields = metadata_result_fields(r, util_now_ms());
	if (copies)
		record_copies(fields, copies);
	metadata_merge(rec, fields);
	if (metadata_store_put(ms, task_id, rec, err, errlen) != 0)
		goto out;
	/* 2. the event, once; a job's duplicate task is collected without one (its job has
	 * its own task and event) */
	if (!t.duplicate_of[0])
		event = finalize_event_json_copies(status, t.job_id, task_id, t.type, r, copies,
						   NULL, t.attempts, t.job_meta);
	/* i20-wire: the cost, settled and counted in the same step */
	budget_day(util_now_ms(), 0, today, sizeof(today));
	budget_day(util_now_ms(), 1, yday, sizeof(yday));
	cost.known = r->has_credits;
	cost.credits = r->has_credits ? r->credits : 0;
	cost.type = t.type;
	task_account(q, &t, acct, sizeof(acct)); /* i20-accounts */
	cost.account = acct;
	cost.today = today;
	cost.yday = yday;
	cost.groups_max = SPEND_GROUPS_MAX;
	cost.ttl_s = SPEND_TTL_S;
	if (queue_finalize(q, task_id, t.duplicate_of[0] ? NULL : t.job_id, status, event,
			   t.reply_to, &cost, finalized_now) != 0) {
		snprintf(err, errlen, "emitting the event: %s", q->err);
		goto out;
	}
	if (*finalized_now == 2) /* its job was dead-lettered before the task was adopted */
		log_info(t.job_id, task_id, "task %s, collected without an event: its job was "
			 "dead-lettered before its task was adopted (its dead letter stays)", status);
	if (*finalized_now == 1) {
		if (!t.duplicate_of[0])
			metrics_job(t.type, r->success ? METRICS_JOB_COMPLETED : METRICS_JOB_FAILED);
		if (t.created_at_ms > 0)
			metrics_task_to_completion((double)(util_now_ms() - t.created_at_ms) / 1000.0);
		if (r->has_credits) /* i20-wire: kie_credits_consumed_total{type,account} */
			metrics_credits(t.type, acct, r->credits);
	}
	if (*finalized_now == 1)
		log_info(t.job_id[0] ? t.job_id : NULL, task_id, "task %s: %zu result URL(s)%s%s",
			 status, r->n_results, r->success ? "" : ", error: ",
			 r->success ? "" : (r->error ? r->error : "?"));
	rc = 0;
out:
	free(event);
	cJSON_Delete(fields);
	cJSON_Delete(pending);
	cJSON_Delete(rec);
	return rc;
}

/* ---- the copy step (finalize.h) ---- */

/* The saved result: {"startedAt","resultUrls","credits","costTime","updateTime"}. */
static char *result_json(const struct kie_result *r, int64_t started_ms)
{
	cJSON *o = cJSON_CreateObject(), *urls;
	char *s;

	cJSON_AddNumberToObject(o, "startedAt", (double)started_ms);
	urls = cJSON_AddArrayToObject(o, "resultUrls");
	for (size_t i = 0; i < r->n_results; i++)
		cJSON_AddItemToArray(urls, cJSON_CreateString(r->result_urls[i]));
	if (r->has_credits)
		cJSON_AddNumberToObject(o, "credits", r->credits);
	if (r->has_cost_time)
		cJSON_AddNumberToObject(o, "costTime", r->cost_time_ms);
	if (r->update_time_ms)
		cJSON_AddNumberToObject(o, "updateTime", (double)r->update_time_ms);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!s)
		abort();
	return s;
}

/* Reads a saved result back into r (a success). Returns 0, or -1 when it is not one. */
static int result_parse(const char *json, const char *task_id, struct kie_result *r,
			int64_t *started_ms)
{
	cJSON *o = cJSON_Parse(json);
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "startedAt");
	const cJSON *urls = cJSON_GetObjectItemCaseSensitive(o, "resultUrls");
	const cJSON *cr = cJSON_GetObjectItemCaseSensitive(o, "credits");
	const cJSON *ct = cJSON_GetObjectItemCaseSensitive(o, "costTime");
	const cJSON *ut = cJSON_GetObjectItemCaseSensitive(o, "updateTime");
	const cJSON *u;
	size_t n = 0;

	memset(r, 0, sizeof(*r));
	if (!cJSON_IsNumber(st) || !cJSON_IsArray(urls)) {
		cJSON_Delete(o);
		return -1;
	}
	*started_ms = (int64_t)st->valuedouble;
	r->task_id = util_strdup(task_id);
	r->state = KIE_TASK_SUCCESS;
	r->success = 1;
	r->result_urls = util_xcalloc((size_t)cJSON_GetArraySize(urls) + 1, sizeof(char *));
	cJSON_ArrayForEach(u, urls) {
		if (cJSON_IsString(u))
			r->result_urls[n++] = util_strdup(u->valuestring);
	}
	r->n_results = n;
	if (cJSON_IsNumber(cr)) {
		r->has_credits = 1;
		r->credits = cr->valuedouble;
	}
	if (cJSON_IsNumber(ct)) {
		r->has_cost_time = 1;
		r->cost_time_ms = ct->valuedouble;
	}
	if (cJSON_IsNumber(ut))
		r->update_time_ms = (int64_t)ut->valuedouble;
	cJSON_Delete(o);
	return 0;
}

int finalize_begin_copies(struct queue *q, const char *task_id, const struct kie_result *r,
			  char *err, size_t errlen)
{
	char *json = result_json(r, util_now_ms());
	int rc = queue_task_copies_begin(q, task_id, json);
	free(json);
	if (rc != 0)
		snprintf(err, errlen, "saving the result for its copies: Redis refused or is "
			 "unreachable");
	return rc;
}

int64_t finalize_copy_backoff_ms(long retry_ms, long tries)
{
	int64_t d = retry_ms > 0 ? retry_ms : 1;
	for (long i = 1; i < tries && d < FINALIZE_COPY_RETRY_MAX_MS; i++)
		d *= 2;
	return d < FINALIZE_COPY_RETRY_MAX_MS ? d : FINALIZE_COPY_RETRY_MAX_MS;
}

int finalize_copy_round(struct queue *q, struct metadata_store *ms, struct copier *cp,
			const struct config *cfg, const char *task_id,
			const struct task_record *known, int *finalized, int64_t *next_ms,
			char *err, size_t errlen)
{
	struct task_copies tc;
	struct task_record t;
	const struct task_record *tp = known ? known : &t;
	int downloads = 0;
	char retry[QUEUE_COPIES_MAX] = {0}; /* 1: this round's failure may pass (COPY_RETRY) */
	struct kie_result r;
	const char *stored[QUEUE_COPIES_MAX], *errors[QUEUE_COPIES_MAX];
	char *owned[QUEUE_COPIES_MAX] = {0}; /* reasons and URLs made in this round */
	int64_t started = 0, now, deadline;
	size_t n, pending = 0;
	int rc = -1, done = 0, have_r = 0;

	*finalized = 0;
	*next_ms = 0;
	memset(&t, 0, sizeof(t));
	if (queue_task_copies_get(q, task_id, &tc) != 0 ||
	    (!known && queue_task_get(q, task_id, &t) != 0)) {
		snprintf(err, errlen, "reading the task's copies: Redis refused or is unreachable");
		goto out;
	}
	if (tp->finalized) {
		*finalized = 1;
		rc = 0;
		goto out;
	}
	if (!tc.result || result_parse(tc.result, task_id, &r, &started) != 0) {
		snprintf(err, errlen, "the task's saved result (copyResult) is missing or not "
			 "readable");
		goto out;
	}
	have_r = 1;
	n = r.n_results < QUEUE_COPIES_MAX ? r.n_results : QUEUE_COPIES_MAX;
	deadline = started + cfg->copy_deadline_ms;
	for (size_t i = 0; i < n; i++) {
		char why[800], url[COPIES_URL_MAX];
		enum copy_outcome o;

		stored[i] = tc.stored[i];
		errors[i] = stored[i] ? NULL : tc.refused[i];
		if (stored[i] || errors[i])
			continue;
		if (!cp) {
			errors[i] = "not copied: KIE_COPY_RESULTS was turned off";
			continue;
		}
		/* the poll lease covers one download and one store write: the claim's lease
		 * covers the first (poller.c), each further one pushes it out */
		if (downloads++ > 0)
			queue_poll_reschedule(q, task_id, util_now_ms() + cfg->copy_timeout_ms +
					      cfg->http_timeout_ms + 5000);
		o = copies_copy_one(cp, ms, task_id, i, r.result_urls[i], url, sizeof(url), why,
				    sizeof(why));
		if (o == COPY_STORED) {
			if (queue_task_copy_set(q, task_id, (int)i, 0, url) != 0)
				pending++; /* copied again next round: same key, same bytes */
			stored[i] = owned[i] = util_strdup(url);
			continue;
		}
		log_warn(tp->job_id[0] ? tp->job_id : NULL, task_id, "result copy %s: %s",
			 copy_outcome_str(o), why);
		if (o == COPY_REFUSED) {
			queue_task_copy_set(q, task_id, (int)i, 1, why); /* else: refused again */
		} else {
			retry[i] = 1;
			pending++;
		}
		errors[i] = owned[i] = util_strdup(why);
	}
	now = util_now_ms();
	if (pending && now < deadline) {
		long tries = 1;
		if (queue_task_copy_tried(q, task_id, &tries) != 0) {
			snprintf(err, errlen, "counting the copy round: Redis refused or is "
				 "unreachable");
			goto out;
		}
		*next_ms = now + finalize_copy_backoff_ms(cfg->copy_retry_ms, tries);
		if (*next_ms > deadline)
			*next_ms = deadline;
		queue_poll_reschedule(q, task_id, *next_ms);
		rc = 0;
		goto out;
	}
	if (pending) { /* the deadline passed: the event goes out with what was copied */
		for (size_t i = 0; i < n; i++) {
			if (retry[i]) { /* not a file refused for good: its reason stays as is */
				char *m = util_xmalloc(strlen(owned[i]) + 100);
				snprintf(m, strlen(owned[i]) + 100, "%s (gave up: KIE_COPY_DEADLINE_MS "
					 "passed)", owned[i]);
				free(owned[i]);
				errors[i] = owned[i] = m;
			}
		}
	}
	{
		/* results past QUEUE_COPIES_MAX are listed with a reason, never dropped silently */
		size_t total = r.n_results;
		const char **st_all = util_xcalloc(total + 1, sizeof(char *));
		const char **er_all = util_xcalloc(total + 1, sizeof(char *));
		for (size_t i = 0; i < total; i++) {
			st_all[i] = i < n ? stored[i] : NULL;
			er_all[i] = i < n ? errors[i] : "not copied: only the first 32 result files "
							"of a task are copied";
		}
		struct finalize_copies fc = {total, st_all, er_all};
		/* the record read at the round's start: queue_finalize's atomic check makes a
		 * finalization by someone else since then a no-op */
		rc = finalize_task_read(q, ms, task_id, tp, &r, &fc, &done, err, errlen);
		free(st_all);
		free(er_all);
	}
	if (rc == 0) {
		size_t have = 0;
		for (size_t i = 0; i < n; i++)
			have += stored[i] != NULL;
		*finalized = 1;
		if (done && have < r.n_results)
			log_warn(tp->job_id[0] ? tp->job_id : NULL, task_id, "finalized with %zu of %zu "
				 "result file(s) copied (copyErrors says why)", have, r.n_results);
	}
out:
	for (size_t i = 0; i < QUEUE_COPIES_MAX; i++)
		free(owned[i]);
	if (have_r)
		kie_result_free(&r);
	queue_task_copies_free(&tc);
	queue_task_record_free(&t);
	return rc;
}
