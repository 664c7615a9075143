/* callbacks.c — the callback consumer thread: takes the entries the HTTP endpoint (or a
 * web app's own callback route) pushed onto <prefix>:callbacks and, for each:
 *  - a task a job has recorded: an unverified entry is trusted for nothing, so its task
 *    is just made due now in <p>:poll:due — the poller's one recordInfo confirms, copies
 *    and finalizes; a verified one is finalized (or handed to the copies) as it says;
 *  - a task no job has recorded: adopted only when KIE's own record of the request
 *    (recordInfo's param.callBackUrl, with the jobId the worker put there) names the job
 *    the entry names — one recordInfo, signed or not, since a signature covers the task
 *    id and the timestamp, not the URL's jobId. Before that call, an entry that names no
 *    job, or a job that does not exist, is dropped and counted: a flood of forged entries
 *    costs Redis one step each, not KIE's recordInfo allowance.
 * Finalization goes through the one path, so a duplicate or late callback is a no-op. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "kie/job.h"
#include "kie/kie_client.h"
#include "pool/finalize.h"
#include "pool/queue.h"
#include "worker.h"

/* The largest entry read whole: the endpoint's entry for a body of KIE_HTTP_BODY_MAX
 * bytes — the body as a JSON string, at most 6 bytes per byte (\u00XX) — plus its other
 * members (a task id of up to KIE_TASK_ID_MAX_BYTES, the job id, ...); at least 2 MiB, the
 * room a web app's own entries had before. Anything larger is dropped and counted. */
#define CALLBACK_ENTRY_MIN (2 * 1024 * 1024)
static size_t entry_max(const struct config *cfg)
{
	size_t n = 6 * (size_t)cfg->http_body_max + 6 * KIE_TASK_ID_MAX_BYTES + 4096;
	return n > CALLBACK_ENTRY_MIN ? n : CALLBACK_ENTRY_MIN;
}

struct cbc {
	struct worker *w;
	struct worker_io io;
	struct limiter *queries; /* i20-accounts: one per account */
	int64_t next_drop_log;  /* entries dropped for want of a job: one line a second */
	long drops_quiet;
};

/* The job id KIE's record of the request names: the jobId the worker put into its
 * callBackUrl (kie_param_callback_arg), when it is a valid job id. New string or NULL. */
static char *job_id_from_param(const char *param)
{
	char *v = kie_param_callback_arg(param, "jobId");
	if (v && !job_id_valid(v)) {
		free(v);
		v = NULL;
	}
	return v;
}

/* Confirms a callback's task with recordInfo. 0 with *res filled and *job_id from KIE's
 * own record (may stay NULL), 1 to try again later, -1 not a task KIE knows. */
static int confirm(struct cbc *c, const char *task_id, const char *job_hint,
		   struct kie_result *res, char **job_id)
{
	struct kie_error kerr;
	struct task_record t; /* i20-accounts: the entry's job's account asks */
	int ai;

	memset(&t, 0, sizeof(t));
	util_strlcpy(t.job_id, job_hint ? job_hint : "", sizeof(t.job_id));
	ai = worker_task_account(c->w, &c->io.q, &t);
	if (limiter_acquire(&c->queries[ai], &c->w->stopping, NULL) != 0)
		return 1;
	if (kie_client_get_task(c->io.kies[ai], task_id, res, &kerr) != 0) {
		log_warn(NULL, task_id, "callback not confirmed by recordInfo (%s): %s",
			 kie_err_class_str(kerr.cls), kerr.message);
		return kerr.cls == KIE_ERR_PERMANENT ? -1 : 1;
	}
	*job_id = job_id_from_param(res->param);
	return 0;
}

/* Hands a succeeded task to the pollers' copy step: KIE's record read to confirm it (r)
 * is saved for it — NULL for a signed callback's body, whose task is polled for its URLs
 * instead — and the task is made due now. 0, or -1 with err. */
static int to_copies(struct cbc *c, const char *task_id, const struct kie_result *kie_record,
		     char *err, size_t errlen)
{
	if (kie_record && finalize_begin_copies(&c->io.q, task_id, kie_record, err, errlen) != 0)
		return -1;
	if (queue_poll_due_by(&c->io.q, task_id, util_now_ms()) != 0) {
		snprintf(err, errlen, "Redis refused the poll schedule");
		return -1;
	}
	worker_poll_kick(c->w, util_now_ms()); /* a poller of this process takes it now */
	return 0;
}

/* An entry dropped for want of a job that owns its task: a warning at most once a second
 * (a flood of forged entries must not flood the log), the next one counting the rest. */
static void drop_log(struct cbc *c, const char *job_id, const char *task_id, const char *why)
{
	int64_t now = util_monotonic_ms();
	if (now < c->next_drop_log) {
		c->drops_quiet++;
		return;
	}
	if (c->drops_quiet)
		log_warn(job_id, task_id, "callback entry dropped: %s (and %ld more entries since "
			 "the last such line)", why, c->drops_quiet);
	else
		log_warn(job_id, task_id, "callback entry dropped: %s", why);
	c->next_drop_log = now + 1000;
	c->drops_quiet = 0;
}

/* Records a task KIE's record tied to job_id, as its task (or its duplicate, or the task
 * of a job dead-lettered meanwhile), with the pending metadata record rebuilt from the
 * job's descriptor (raw, kept in its hash from createTask on), and hands it to the
 * pollers. 0, or -1 (Redis: try again). */
static int adopt(struct cbc *c, const char *job_id, const char *task_id)
{
	struct uncertain_job u;
	enum record_outcome ro;
	char err[600], *rec = NULL;

	if (queue_uncertain_get(&c->io.q, job_id, &u) != 0)
		return -1;
	if (u.raw) {
		rec = worker_pending_from_raw(c->w, u.raw, u.raw_len, task_id, err, sizeof(err));
		if (!rec)
			log_warn(job_id, task_id, "the adopted task's record cannot be rebuilt from "
				 "its job's descriptor (%s): finalization writes what it has", err);
	}
	if (queue_record_task(&c->io.q, job_id, task_id, u.type[0] ? u.type : NULL, u.reply_to,
			      rec, u.meta, u.attempts, 1, &ro) != 0) {
		free(rec);
		queue_uncertain_free(&u);
		return -1;
	}
	free(rec);
	worker_poll_kick(c->w, util_now_ms() + c->w->policy.poll_initial_ms);
	log_info(job_id, task_id, "task %s from its callback%s",
		 ro == RECORD_DUPLICATE ? "recorded as a duplicate of the job's task"
		 : ro == RECORD_DEAD ? "adopted into a job already dead-lettered (collected, no "
				       "event; its dead letter stays)" : "adopted",
		 ro == RECORD_RECORDED && !strcmp(u.state, "uncertain") ? " (the job was uncertain)"
									 : "");
	queue_uncertain_free(&u);
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
	char err[600], task_job[256], *job_id = NULL, *kie_job = NULL;
	const char *task_id;
	enum callback_verdict verdict;
	int rc = 0, have_r = 0, finalized = 0, from_kie;
	enum metrics_cb_handled res = METRICS_CBH_MALFORMED; /* what came of it, counted at out */

	memset(&r, 0, sizeof(r));
	memset(&kr, 0, sizeof(kr));
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
	res = METRICS_CBH_RETRY; /* until it is done with */
	if (queue_callback_lookup(&c->io.q, task_id, job_id, &verdict, task_job, sizeof(task_job),
				  &finalized) != 0) {
		rc = 1;
		goto out;
	}
	if (verdict == CALLBACK_UNOWNED) { /* counted in <p>:stats by the lookup */
		res = job_id ? METRICS_CBH_UNKNOWN_JOB : METRICS_CBH_NO_JOB;
		drop_log(c, job_id, task_id, job_id ? "no job has recorded its task and the job its "
			 "URL names does not exist" : "no job has recorded its task and its URL names "
			 "no job");
		goto out;
	}
	if (verdict == CALLBACK_RECORDED) {
		if (finalized) {
			res = METRICS_CBH_ALREADY_FINAL;
			log_debug(task_job, task_id, "callback for a task already finalized: no-op");
			goto out;
		}
		if (!verified) { /* nothing in it is trusted: the poller's recordInfo decides */
			if (queue_poll_due_by(&c->io.q, task_id, util_now_ms()) != 0) {
				rc = 1;
				goto out;
			}
			worker_poll_kick(c->w, util_now_ms());
			res = METRICS_CBH_TO_POLLER;
			log_debug(task_job, task_id, "unverified callback: the task is polled now");
			goto out;
		}
		from_kie = 0; /* signed: the body is taken as KIE's word */
	} else { /* CALLBACK_ADOPT: KIE's record must name the entry's job */
		int k = confirm(c, task_id, job_id, &kr, &kie_job);
		if (k != 0) {
			res = k > 0 ? METRICS_CBH_RETRY : METRICS_CBH_UNKNOWN_TASK;
			rc = k > 0 ? 1 : 0;
			if (k < 0)
				queue_stat_add(&c->io.q, "callbacks_unowned", 1);
			goto out;
		}
		if (!kie_job || strcmp(kie_job, job_id) != 0) {
			res = kie_job ? METRICS_CBH_JOB_MISMATCH : METRICS_CBH_KIE_NO_JOB;
			queue_stat_add(&c->io.q, "callbacks_unowned", 1);
			if (kie_job)
				log_warn(job_id, task_id, "callback refused: KIE's record of the task names "
					 "job %s", kie_job);
			else
				drop_log(c, job_id, task_id, "KIE's record of the task names no job (a "
					 "task someone else created): not adopted");
			goto out;
		}
		kie_result_free(&r);
		r = kr; /* KIE's record, not the body */
		memset(&kr, 0, sizeof(kr));
		task_id = r.task_id;
		if (!task_id) {
			res = METRICS_CBH_UNKNOWN_TASK;
			goto out;
		}
		if (adopt(c, job_id, task_id) != 0) {
			rc = 1;
			goto out;
		}
		from_kie = 1;
	}
	res = METRICS_CBH_PROGRESS;
	if (kie_task_state_final(r.state) && r.success && c->w->cfg->copy_results) {
		/* the same copy step as a polled success: a poller copies, then finalizes. The
		 * files are downloaded only from URLs KIE's recordInfo gave: a verified body is
		 * signed on its task id alone, so its task is polled now rather than its URLs
		 * fetched; an adopted one was confirmed above and r is KIE's record. */
		if (to_copies(c, task_id, from_kie ? &r : NULL, err, sizeof(err)) != 0) {
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
	size_t max_entry;

	memset(&c, 0, sizeof(c));
	c.w = arg;
	max_entry = entry_max(c.w->cfg);
	/* its own consumer id, "<workerId>#cb", never a runner's slot: its claimed callbacks
	 * come back to <p>:callbacks if this worker dies (queue.c, recover()) */
	queue_callback_consumer_id(cid, sizeof(cid), c.w->id);
	if (worker_io_open(c.w, &c.io, "callbacks", cid) != 0)
		goto out;
	snprintf(member, sizeof(member), "%s/callbacks", c.w->id);
	c.queries = util_xcalloc((size_t)c.w->accounts.n, sizeof(*c.queries));
	for (int a = 0; a < c.w->accounts.n; a++)
		worker_limiter_acct(c.w, &c.io, &c.queries[a], 0, member, a);
	worker_blocking(c.w, &c.io.rc, 1);
	while (!c.w->stopping) {
		struct rconn_bulk b;
		int leftover = 0;

		if (queue_callback_claim(&c.io.q, 1.0, max_entry, &b, &leftover) != 0 ||
		    b.type != REDIS_REPLY_STRING)
			continue;
		if (!b.kept) { /* the endpoint caps bodies; an app pushed something else */
			log_warn(NULL, NULL, "callback entry of %zu bytes refused (over %zu)", b.len,
				 max_entry);
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
	free(c.queries);
	return NULL;
}
