/* callbacks.c — the callback consumer thread: takes the entries the HTTP endpoint (or a
 * web app's own callback route) pushed onto <prefix>:callbacks, adopts each task into the
 * job its callback names, and finalizes it when the callback carries a final state —
 * through the one finalization path, so a duplicate or late callback is a no-op.
 * An unverified callback is trusted for nothing: the task and its job id are confirmed
 * with recordInfo (whose param echoes the callBackUrl we gave, jobId included). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "finalize.h"
#include "job.h"
#include "kie_client.h"
#include "log.h"
#include "metrics.h"
#include "queue.h"
#include "util.h"
#include "worker.h"

#define CALLBACK_ENTRY_MAX (2 * 1024 * 1024)

struct cbc {
	struct worker *w;
	struct worker_io io;
	struct limiter query;
};

/* The jobId query parameter of the callBackUrl that recordInfo's param echoes. Returns a
 * new string or NULL. */
static char *job_id_from_param(const char *param)
{
	cJSON *p = param ? cJSON_Parse(param) : NULL;
	const cJSON *cb = cJSON_GetObjectItemCaseSensitive(p, "callBackUrl");
	CURLU *u = NULL;
	char *query = NULL, *out = NULL;

	if (!cJSON_IsString(cb))
		goto done;
	u = curl_url();
	if (!u || curl_url_set(u, CURLUPART_URL, cb->valuestring, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_QUERY, &query, CURLU_URLDECODE) != CURLUE_OK)
		goto done;
	for (char *kv = query; kv && *kv;) {
		char *amp = strchr(kv, '&');
		if (amp)
			*amp = '\0';
		if (strncmp(kv, "jobId=", 6) == 0 && job_id_valid(kv + 6)) {
			out = util_strdup(kv + 6);
			break;
		}
		kv = amp ? amp + 1 : NULL;
	}
done:
	curl_free(query);
	curl_url_cleanup(u);
	cJSON_Delete(p);
	return out;
}

/* Confirms an unverified callback's task with recordInfo. 0 with *res filled and *job_id
 * from KIE's own record (may stay NULL), 1 to try again later, -1 not a task of ours. */
static int confirm(struct cbc *c, const char *task_id, struct kie_result *res, char **job_id)
{
	struct kie_error kerr;

	if (limiter_acquire(&c->query, &c->w->stopping, NULL) != 0)
		return 1;
	if (kie_client_get_task(c->io.kie, task_id, res, &kerr) != 0) {
		log_warn(NULL, task_id, "callback not confirmed by recordInfo (%s): %s",
			 kie_err_class_str(kerr.cls), kerr.message);
		return kerr.cls == KIE_ERR_PERMANENT ? -1 : 1;
	}
	*job_id = job_id_from_param(res->param);
	return 0;
}

/* Hands a succeeded task to the pollers' copy step: an unverified callback's confirmed
 * record is saved for it (a verified one's task is polled for its URLs), and the task is
 * made due now. 0, or -1 with err. */
static int to_copies(struct cbc *c, const char *task_id, const struct kie_result *r,
		     int verified, char *err, size_t errlen)
{
	if (!verified && finalize_begin_copies(&c->io.q, task_id, r, err, errlen) != 0)
		return -1;
	if (queue_poll_due_by(&c->io.q, task_id, util_now_ms()) != 0) {
		snprintf(err, errlen, "Redis refused the poll schedule");
		return -1;
	}
	return 0;
}

/* Handles one entry; returns 0 when it is done with (handled, or refused for good), 1
 * to keep it for another try. */
static int handle(struct cbc *c, const char *raw, size_t len)
{
	cJSON *e = cJSON_ParseWithLength(raw, len);
	const cJSON *jid = cJSON_GetObjectItemCaseSensitive(e, "jobId");
	const cJSON *tid = cJSON_GetObjectItemCaseSensitive(e, "taskId");
	const cJSON *body = cJSON_GetObjectItemCaseSensitive(e, "body");
	int verified = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "verified"));
	struct kie_result r, kr;
	struct kie_error kerr;
	struct task_record t;
	char err[600], *job_id = NULL, *kie_job = NULL;
	const char *task_id;
	int rc = 0, have_r = 0;
	enum metrics_cb_handled res = METRICS_CBH_MALFORMED; /* what came of it, counted at out */

	memset(&r, 0, sizeof(r));
	memset(&kr, 0, sizeof(kr));
	memset(&t, 0, sizeof(t));
	if (!cJSON_IsObject(e) || !cJSON_IsString(body) ||
	    kie_parse_callback(body->valuestring, strlen(body->valuestring), &r, &kerr) != 0) {
		log_warn(NULL, NULL, "callback entry refused: %s", cJSON_IsObject(e) ?
			 (cJSON_IsString(body) ? kerr.message : "no body") : "not a JSON object");
		goto out;
	}
	have_r = 1;
	task_id = r.task_id;
	if (cJSON_IsString(tid) && strcmp(tid->valuestring, task_id) != 0) {
		log_warn(NULL, task_id, "callback entry refused: its taskId does not match the body's");
		goto out;
	}
	if (cJSON_IsString(jid) && job_id_valid(jid->valuestring))
		job_id = util_strdup(jid->valuestring);
	if (!verified) { /* trust KIE's record, not the body */
		int k = confirm(c, task_id, &kr, &kie_job);
		if (k != 0) {
			res = k > 0 ? METRICS_CBH_RETRY : METRICS_CBH_UNKNOWN_TASK;
			rc = k > 0 ? 1 : 0;
			goto out;
		}
		if (job_id && kie_job && strcmp(job_id, kie_job) != 0) {
			log_warn(job_id, task_id, "callback refused: KIE's record of the task names job "
				 "%s", kie_job);
			res = METRICS_CBH_JOB_MISMATCH;
			goto out;
		}
		if (!job_id && kie_job)
			job_id = util_strdup(kie_job);
		kie_result_free(&r);
		r = kr;
		memset(&kr, 0, sizeof(kr));
		task_id = r.task_id;
		if (!task_id) {
			rc = 0;
			goto out;
		}
	}
	res = METRICS_CBH_RETRY; /* until it is done with */
	if (queue_task_get(&c->io.q, task_id, 0, &t) != 0) {
		rc = 1;
		goto out;
	}
	if (!t.job_id[0]) { /* a task no job has recorded yet: adopt it */
		struct uncertain_job u;
		enum record_outcome ro;
		if (!job_id) {
			log_warn(NULL, task_id, "callback for a task no job has recorded, without a job "
				 "id: left to its creator's recording");
			res = METRICS_CBH_NO_JOB;
			goto out;
		}
		if (queue_uncertain_get(&c->io.q, job_id, &u) != 0) {
			rc = 1;
			goto out;
		}
		if (queue_record_task(&c->io.q, job_id, task_id, u.type[0] ? u.type : NULL,
				      u.reply_to, NULL, u.meta, u.attempts, 1, &ro) != 0) {
			queue_uncertain_free(&u);
			rc = 1;
			goto out;
		}
		log_info(job_id, task_id, "task %s from its callback%s",
			 ro == RECORD_DUPLICATE ? "recorded as a duplicate of the job's task"
						: "adopted", ro == RECORD_RECORDED && !strcmp(u.state,
						"uncertain") ? " (the job was uncertain)" : "");
		queue_uncertain_free(&u);
	}
	res = METRICS_CBH_PROGRESS;
	if (kie_task_state_final(r.state) && r.success && c->w->cfg->copy_results) {
		/* the same copy step as a polled success: a poller copies, then finalizes. The
		 * files are downloaded only from URLs KIE's recordInfo gave: a verified body is
		 * signed on its task id alone, so its task is polled now rather than its URLs
		 * fetched; an unverified one was confirmed above and r is KIE's record. */
		if (t.finalized) {
			res = METRICS_CBH_ALREADY_FINAL;
			log_debug(job_id, task_id, "callback for a task already finalized: no-op");
		} else if (to_copies(c, task_id, &r, verified, err, sizeof(err)) != 0) {
			res = METRICS_CBH_FINALIZE_FAILED;
			log_warn(job_id, task_id, "handing the callback's success to the result copies "
				 "failed (%s); polling finds it", err);
		} else {
			res = METRICS_CBH_TO_COPIES;
			log_debug(job_id, task_id, "callback success: handed to the result copies");
		}
	} else if (kie_task_state_final(r.state)) {
		int now_done = 0;
		if (finalize_task(&c->io.q, c->io.ms, task_id, &r, &now_done, err, sizeof(err)) != 0) {
			res = METRICS_CBH_FINALIZE_FAILED;
			log_warn(job_id, task_id, "finalization from the callback failed (%s); polling "
				 "finalizes it", err);
		} else if (!now_done) {
			res = METRICS_CBH_ALREADY_FINAL;
			log_debug(job_id, task_id, "callback for a task already finalized: no-op");
		} else {
			res = METRICS_CBH_FINALIZED;
		}
	}
out:
	metrics_callback_handled(res);
	queue_task_record_free(&t);
	if (have_r)
		kie_result_free(&r);
	kie_result_free(&kr);
	free(job_id);
	free(kie_job);
	cJSON_Delete(e);
	return rc;
}

void *callbacks_main(void *arg)
{
	struct cbc c;
	char cid[160], member[200];
	long retry_ms = 0;

	memset(&c, 0, sizeof(c));
	c.w = arg;
	/* the consumer slot after the runners': its claimed callbacks come back to
	 * <p>:callbacks if this worker dies (queue.c, recover()) */
	queue_consumer_id(cid, sizeof(cid), c.w->id, (int)c.w->cfg->concurrency);
	if (worker_io_open(c.w, &c.io, "callbacks", cid) != 0)
		goto out;
	snprintf(member, sizeof(member), "%s/callbacks", c.w->id);
	worker_limiter(c.w, &c.io, &c.query, 0, member);
	worker_blocking(c.w, &c.io.rc, 1);
	while (!c.w->stopping) {
		struct rconn_bulk b;
		int leftover = 0;

		if (queue_callback_claim(&c.io.q, 1.0, CALLBACK_ENTRY_MAX, &b, &leftover) != 0 ||
		    b.type != REDIS_REPLY_STRING)
			continue;
		if (!b.kept) { /* the endpoint caps bodies; an app pushed something else */
			log_warn(NULL, NULL, "callback entry of %zu bytes refused (over %d)", b.len,
				 CALLBACK_ENTRY_MAX);
			queue_callback_release_oversized(&c.io.q, &b);
			metrics_callback_handled(METRICS_CBH_MALFORMED);
			continue;
		}
		atomic_fetch_add(&c.w->inflight, 1);
		if (handle(&c, b.data, b.len) == 0) {
			queue_callback_release(&c.io.q, b.data, b.len);
			retry_ms = 0;
		} else { /* kept in the processing list; handled again after a pause */
			c.io.q.check_own = 1;
			retry_ms = retry_ms ? (retry_ms * 2 > 30000 ? 30000 : retry_ms * 2) : 500;
			for (long t = 0; t < retry_ms && !c.w->stopping; t += 100)
				worker_nap(c.w, 100);
		}
		worker_done(c.w);
		rconn_bulk_free(&b);
	}
	worker_blocking(c.w, &c.io.rc, 0);
out:
	worker_io_close(&c.io);
	return NULL;
}
