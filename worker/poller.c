/* poller.c — a poller thread: take due task ids from <prefix>:poll:due (leased, so a
 * dead poller's tasks come due again), query recordInfo at KIE's cadence, finalize. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "finalize.h"
#include "kie_client.h"
#include "lifecycle.h"
#include "log.h"
#include "metadata.h"
#include "queue.h"
#include "util.h"
#include "worker.h"

struct poller {
	struct worker *w;
	struct worker_io io;
	int64_t lease_ms;
};

static void finalize_or_retry(struct poller *p, const char *task_id, const struct task_record *t,
			      const struct kie_result *res)
{
	char err[600];
	int now_done = 0;
	if (finalize_task(&p->io.q, p->io.ms, task_id, res, &now_done, err, sizeof(err)) != 0) {
		log_warn(t->job_id[0] ? t->job_id : NULL, task_id,
			 "finalization failed, retrying in %ld ms: %s", p->w->policy.poll_initial_ms,
			 err);
		queue_poll_reschedule(&p->io.q, task_id, util_now_ms() + p->w->policy.poll_initial_ms);
	}
}

static void poll_one(struct poller *p, const char *task_id)
{
	struct task_record t;
	struct kie_result res;
	struct kie_error kerr;
	int64_t now, elapsed;
	int rc, done;

	if (queue_task_get(&p->io.q, task_id, 1, &t) != 0)
		return; /* Redis gone: the lease expires and the task comes due again */
	if (t.finalized) { /* finalized elsewhere (e.g. a callback): just stop polling it */
		queue_finalize(&p->io.q, task_id, NULL, "completed", "", NULL, &done);
		queue_task_record_free(&t);
		return;
	}
	memset(&res, 0, sizeof(res));
	rc = kie_client_get_task(p->io.kie, task_id, &res, &kerr);
	now = util_now_ms();
	elapsed = now - t.created_at_ms;
	switch (lifecycle_after_poll(rc == 0 ? NULL : &kerr, res.state, elapsed, t.polls,
				     &p->w->policy)) {
	case POLL_FINALIZE:
		finalize_or_retry(p, task_id, &t, &res);
		break;
	case POLL_AGAIN:
		if (rc != 0)
			log_warn(t.job_id[0] ? t.job_id : NULL, task_id, "status query failed (%s): %s",
				 kie_err_class_str(kerr.cls), kerr.message);
		else
			log_debug(t.job_id[0] ? t.job_id : NULL, task_id, "state %s after %lld ms",
				  kie_task_state_str(res.state), (long long)elapsed);
		queue_poll_reschedule(&p->io.q, task_id,
				      now + lifecycle_poll_delay_ms(elapsed, &p->w->policy));
		break;
	case POLL_PAUSE:
		log_error(t.job_id[0] ? t.job_id : NULL, task_id, "account-level error while "
			  "polling, pausing the pool for %ld ms: %s", p->w->policy.account_pause_ms,
			  kerr.message);
		queue_pause_set(&p->io.q, p->w->policy.account_pause_ms, kerr.message);
		queue_poll_reschedule(&p->io.q, task_id, now + p->w->policy.account_pause_ms);
		break;
	case POLL_TIMEOUT: {
		char msg[300];
		kie_result_free(&res);
		memset(&res, 0, sizeof(res));
		res.task_id = util_strdup(task_id);
		res.state = KIE_TASK_FAIL;
		snprintf(msg, sizeof(msg), "timed out: no result after %lld ms of polling "
			 "(KIE_POLL_TIMEOUT_MS=%ld)", (long long)elapsed, p->w->policy.poll_timeout_ms);
		res.error = util_strdup(msg);
		finalize_or_retry(p, task_id, &t, &res);
		break;
	}
	}
	kie_result_free(&res);
	queue_task_record_free(&t);
}

void *poller_main(void *arg)
{
	struct poller p;
	memset(&p, 0, sizeof(p));
	p.w = arg;
	const struct config *cfg = p.w->cfg;

	/* a poll holds its task at most this long before another poller may take it */
	p.lease_ms = cfg->http_timeout_ms + 5000;
	if (worker_io_open(p.w, &p.io, "poller", p.w->id) != 0)
		goto out;
	while (!p.w->stopping) {
		int moved = 0;
		char *task_id = NULL;
		int64_t now = util_now_ms();

		if (queue_poll_promote(&p.io.q, now + p.w->policy.poll_initial_ms, 100, &moved) != 0)
			continue;
		if (queue_poll_claim(&p.io.q, now, now + p.lease_ms, &task_id) != 0)
			continue;
		if (!task_id) {
			int64_t due = -1;
			queue_poll_next_due(&p.io.q, &due);
			int64_t wait = due < 0 ? 200 : due - util_now_ms();
			util_sleep_ms(wait < 5 ? 5 : wait > 200 ? 200 : wait);
			continue;
		}
		atomic_fetch_add(&p.w->inflight, 1);
		poll_one(&p, task_id);
		atomic_fetch_sub(&p.w->inflight, 1);
		atomic_fetch_add(&p.w->polls_done, 1);
		free(task_id);
	}
out:
	worker_io_close(&p.io);
	return NULL;
}
