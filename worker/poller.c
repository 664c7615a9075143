/* poller.c — a poller thread: take due task ids from <prefix>:poll:due (leased, so a
 * dead poller's tasks come due again), query recordInfo at KIE's cadence, finalize.
 * Idle, it waits until the earliest due time it knows or a kick from this process
 * (worker_poll_wait): no fixed interval between a task made due and its poll. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "kie/kie_client.h"
#include "kie/lifecycle.h"
#include "pool/finalize.h"
#include "pool/queue.h"
#include "store/metadata.h"
#include "worker.h"

struct poller {
	struct worker *w;
	struct worker_io io;
	struct limiter *query;   /* the task's account's recordInfo limit (queries[i]) */
	struct limiter *queries; /* i20-accounts: one per account, shared pool-wide */
	int64_t lease_ms;
	int64_t next_pause_log;
};

/* The task's next poll at due_ms; this process's pollers wake by then (a kick). */
static void reschedule(struct poller *p, const char *task_id, int64_t due_ms)
{
	if (queue_poll_reschedule(&p->io.q, task_id, due_ms) == 0)
		worker_poll_kick(p->w, due_ms);
}

static void finalize_or_retry(struct poller *p, const char *task_id, const struct task_record *t,
			      const struct kie_result *res)
{
	char err[600];
	int now_done = 0;
	if (finalize_task_read(&p->io.q, p->io.ms, task_id, t, res, NULL, &now_done, err,
			       sizeof(err)) != 0) {
		log_warn(t->job_id[0] ? t->job_id : NULL, task_id,
			 "finalization failed, retrying in %ld ms: %s", p->w->policy.poll_initial_ms,
			 err);
		reschedule(p, task_id, util_now_ms() + p->w->policy.poll_initial_ms);
	}
}

/* A copy round (finalize.h): the one step between a succeeded task and its end, whether
 * the success was polled here or came by callback (callbacks.c hands the task over). */
static void copy_round(struct poller *p, const char *task_id, const struct task_record *t)
{
	char err[600];
	int finalized = 0;
	int64_t next = 0;

	if (finalize_copy_round(&p->io.q, p->io.ms, p->io.copier, p->w->cfg, task_id, t,
				&finalized, &next, err, sizeof(err)) != 0) {
		log_warn(t->job_id[0] ? t->job_id : NULL, task_id,
			 "copy round failed, retrying in %ld ms: %s", p->w->policy.poll_initial_ms, err);
		reschedule(p, task_id, util_now_ms() + p->w->policy.poll_initial_ms);
	} else if (!finalized) {
		worker_poll_kick(p->w, next); /* finalize_copy_round rescheduled it */
		log_debug(t->job_id[0] ? t->job_id : NULL, task_id, "copies to retry in %lld ms",
			  (long long)(next - util_now_ms()));
	}
}

/* A success polled with copies on: save it for the copy rounds, then run the first. */
static void begin_copies(struct poller *p, const char *task_id, const struct task_record *t,
			 const struct kie_result *res)
{
	char err[600];
	if (finalize_begin_copies(&p->io.q, task_id, res, err, sizeof(err)) != 0) {
		log_warn(t->job_id[0] ? t->job_id : NULL, task_id, "%s; polling again in %ld ms", err,
			 p->w->policy.poll_initial_ms);
		reschedule(p, task_id, util_now_ms() + p->w->policy.poll_initial_ms);
		return;
	}
	copy_round(p, task_id, t);
}

/* The task t was claimed and read with (poll_next.lua); a recordInfo slot is taken here
 * only when KIE must be asked. */
static int query_slot(struct poller *p, const char *task_id);

static void poll_one(struct poller *p, const char *task_id, struct task_record *tr)
{
	struct task_record t = *tr;
	struct kie_result res;
	struct kie_error kerr;
	int64_t now, elapsed;
	int rc, done, ai;

	if (t.finalized) { /* finalized elsewhere (e.g. a callback): just stop polling it */
		queue_finalize(&p->io.q, task_id, NULL, "completed", "", NULL, NULL, &done);
		return;
	}
	if (t.copying) { /* its end is known: no recordInfo, the copies go on */
		copy_round(p, task_id, &t);
		return;
	}
	/* i20-accounts: the task's account's client and limiter */
	ai = worker_task_account(p->w, &p->io.q, &t);
	p->query = &p->queries[ai];
	/* a recordInfo slot; a stop gives the task back at once */
	if (query_slot(p, task_id) != 0) {
		reschedule(p, task_id, util_now_ms());
		return;
	}
	memset(&res, 0, sizeof(res));
	rc = kie_client_get_task(p->io.kies[ai], task_id, &res, &kerr);
	if (rc != 0 && lifecycle_is_rate_refusal(&kerr)) {
		int first = 0;
		long ms = limiter_penalize(p->query, kerr.message, &first);
		if (first)
			log_warn(t.job_id[0] ? t.job_id : NULL, task_id, "KIE refused recordInfo (%s): "
				 "the pool's polling waits %ld ms", kerr.message, ms);
	}
	now = util_now_ms();
	elapsed = now - t.created_at_ms;
	switch (lifecycle_after_poll(rc == 0 ? NULL : &kerr, res.state, elapsed, t.polls,
				     &p->w->policy)) {
	case POLL_FINALIZE:
		if (res.success && p->w->cfg->copy_results)
			begin_copies(p, task_id, &t, &res);
		else
			finalize_or_retry(p, task_id, &t, &res);
		break;
	case POLL_AGAIN:
		if (rc != 0)
			log_warn(t.job_id[0] ? t.job_id : NULL, task_id, "status query failed (%s): %s",
				 kie_err_class_str(kerr.cls), kerr.message);
		else
			log_debug(t.job_id[0] ? t.job_id : NULL, task_id, "state %s after %lld ms",
				  kie_task_state_str(res.state), (long long)elapsed);
		if (rc == 0) { /* KIE's state beside the next due time (the page shows it) */
			int64_t due = now + lifecycle_poll_delay_ms(elapsed, &p->w->policy);
			if (queue_poll_reschedule_state(&p->io.q, task_id, due,
							kie_task_state_str(res.state)) == 0)
				worker_poll_kick(p->w, due);
		} else {
			reschedule(p, task_id, now + lifecycle_poll_delay_ms(elapsed, &p->w->policy));
		}
		break;
	case POLL_PAUSE: {
		/* new tasks stop; this one exists and is paid for, so it stays polled at its
		 * cadence (a 402 does not stop recordInfo) */
		int credits = kerr.code == 402 || kerr.http_status == 402, set = 0;
		/* i20-accounts: with several accounts, the task's account's pause only */
		queue_acct_pause_set(&p->io.q, p->w->accounts.n > 1 ? p->w->accounts.v[ai].alias
				     : NULL, credits ? "credits" : "account",
				     credits ? 0 : p->w->policy.account_pause_ms, kerr.message, &set);
		if (set || util_monotonic_ms() >= p->next_pause_log) {
			log_error(t.job_id[0] ? t.job_id : NULL, task_id, "account-level error while "
				  "polling: %s%s takes no new jobs%s; polling goes on: %s",
				  p->w->accounts.n > 1 ? "account " : "the pool",
				  p->w->accounts.n > 1 ? p->w->accounts.v[ai].alias : "",
				  credits ? " until credits are back" : " for a while", kerr.message);
			p->next_pause_log = util_monotonic_ms() + 10000;
		}
		reschedule(p, task_id, now + lifecycle_poll_delay_ms(elapsed, &p->w->policy));
		break;
	}
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
}

/* A recordInfo slot for the task this poller has claimed (limiter_acquire's loop): a
 * wait longer than what is left of the lease first pushes the lease past it, so no
 * other poller takes the task while this one waits (a 429 backoff can last a minute).
 * Returns 0 granted, -1 stopping (the reservation dropped). */
static int query_slot(struct poller *p, const char *task_id)
{
	int64_t lease_end = util_monotonic_ms() + p->lease_ms;

	while (!p->w->stopping) {
		long wait = 0;
		int blocked = 0, rc = limiter_try(p->query, &wait, &blocked);
		int64_t end;
		if (rc == 0)
			return 0;
		if (rc < 0) {
			util_sleep_ms(100); /* rconn already backed off; look at stop again */
			continue;
		}
		end = util_monotonic_ms() + wait + 2; /* a tick past the slot on Redis's clock */
		if (end + p->lease_ms / 2 > lease_end) {
			lease_end = end + p->lease_ms;
			queue_poll_reschedule(&p->io.q, task_id, util_now_ms() + wait + p->lease_ms);
		}
		while (!p->w->stopping) {
			int64_t left = end - util_monotonic_ms();
			if (left <= 0)
				break;
			util_sleep_ms(left < 100 ? left : 100);
		}
	}
	limiter_cancel(p->query);
	return -1;
}

void *poller_main(void *arg)
{
	struct poller p;
	struct queue_poll_ahead ahead;
	memset(&p, 0, sizeof(p));
	memset(&ahead, 0, sizeof(ahead));
	p.w = arg;
	const struct config *cfg = p.w->cfg;

	/* a poll holds its task at most this long before another poller may take it: the
	 * lease covers its recordInfo call and, with copies on, the first result file's
	 * download and store write (finalize_copy_round renews it for each further one) */
	p.lease_ms = cfg->http_timeout_ms + 5000 +
		     (cfg->copy_results ? cfg->copy_timeout_ms + cfg->http_timeout_ms : 0);
	ahead.limit = 100;
	ahead.first_delay_ms = p.w->policy.poll_initial_ms;
	ahead.lease_ms = p.lease_ms;
	if (worker_io_open(p.w, &p.io, "poller", p.w->id) != 0)
		goto out;
	if (cfg->copy_results) {
		char err[300];
		p.io.copier = copies_new(cfg, err, sizeof(err));
		if (!p.io.copier) {
			log_error(NULL, NULL, "poller cannot start: %s", err);
			p.w->stopping = 1;
			goto out;
		}
	}
	{
		char member[200];
		snprintf(member, sizeof(member), "%s/poller%d", p.w->id,
			 atomic_fetch_add(&p.w->next_poller, 1));
		p.queries = util_xcalloc((size_t)p.w->accounts.n, sizeof(*p.queries));
		for (int a = 0; a < p.w->accounts.n; a++)
			worker_limiter_acct(p.w, &p.io, &p.queries[a], 0, member, a);
		p.query = &p.queries[0];
	}
	p.io.q.ahead = &ahead;
	while (!p.w->stopping) {
		char *task_id = NULL;
		struct task_record t;
		int64_t now = util_now_ms(), due = -1;

		if (ahead.have) {
			/* claimed with the last task's finalization (queue_poll_ahead) */
			ahead.have = 0;
			task_id = ahead.task_id;
			due = ahead.due_ms;
			t = ahead.t;
		} else if (queue_poll_next(&p.io.q, 100, now + p.w->policy.poll_initial_ms, now,
					   now + p.lease_ms, &task_id, &due, &t) != 0) {
			/* one step: promote what <p>:polling holds, claim the earliest due task,
			 * lease it and read its hash; a step Redis refuses (OOM, MISCONF, ...) is
			 * tried again after a pause, not in a loop */
			worker_nap(p.w, 250);
			continue;
		}
		if (!task_id) { /* until the next due time, a kick, or the cap */
			queue_task_record_free(&t);
			worker_poll_wait(p.w, due);
			continue;
		}
		if (due >= 0) /* more due: a waiting poller may take the next one meanwhile */
			worker_poll_kick(p.w, due);
		atomic_fetch_add(&p.w->inflight, 1);
		/* a finalization sends the next step with it (one round trip for both) */
		ahead.on = 1;
		poll_one(&p, task_id, &t);
		ahead.on = 0;
		atomic_fetch_add(&p.w->polls_done, 1);
		worker_done(p.w);
		queue_task_record_free(&t);
		free(task_id);
		if (ahead.have)
			continue;
		/* the next task was kicked when this one was claimed: a waiting poller took it
		 * if there was one, else this one looks now. A task due later, or made due by
		 * this process since (kicked too), wakes it then: it does not ask Redis now */
		worker_poll_wait(p.w, -1); /* (due was kicked already: not set again) */
	}
	if (ahead.have) { /* stopping: its lease runs out and another poller takes it */
		free(ahead.task_id);
		queue_task_record_free(&ahead.t);
	}
	p.io.q.ahead = NULL;
out:
	worker_io_close(&p.io);
	free(p.queries);
	return NULL;
}
