/* lifecycle.c — retry, dead-letter, pause and poll-cadence decisions. Pure functions. */
#include "kie/lifecycle.h"

#include <stdio.h>
#include <string.h>

static const char *const state_names[] = {"queued", "creating", "polling", "retry_wait",
					  "completed", "failed", "dead", "uncertain"};

const char *job_state_str(enum job_state s)
{
	return (unsigned)s <= JOB_STATE_UNCERTAIN ? state_names[s] : "?";
}

int job_state_parse(const char *s, enum job_state *out)
{
	for (int i = 0; i <= JOB_STATE_UNCERTAIN; i++) {
		if (strcmp(s, state_names[i]) == 0) {
			*out = (enum job_state)i;
			return 0;
		}
	}
	return -1;
}

const char *job_action_str(enum job_action a)
{
	switch (a) {
	case JOB_ACT_HANDOFF: return "handoff";
	case JOB_ACT_RETRY: return "retry";
	case JOB_ACT_PAUSE: return "pause";
	case JOB_ACT_DEAD: return "dead";
	case JOB_ACT_BACKOFF: return "backoff";
	case JOB_ACT_UNCERTAIN: return "uncertain";
	}
	return "?";
}

#define BACKOFF_CAP_MS (10L * 60 * 1000)

int64_t lifecycle_backoff_ms(long attempt, long base_ms, uint32_t rnd)
{
	int64_t d = base_ms;
	for (long i = 1; i < attempt && d < BACKOFF_CAP_MS; i++)
		d *= 2;
	if (d > BACKOFF_CAP_MS)
		d = BACKOFF_CAP_MS;
	/* jitter in [-20%, +20%) spreads a pool's retries apart */
	int64_t span = d * 2 / 5;
	if (span > 0)
		d = d - d / 5 + (int64_t)(rnd % (uint64_t)span);
	return d < 1 ? 1 : d;
}

int lifecycle_is_rate_refusal(const struct kie_error *err)
{
	if (!err || err->cls != KIE_ERR_RETRYABLE)
		return 0;
	return err->code == 429 || err->code == 455 || err->http_status == 429 ||
	       err->http_status == 455;
}

void lifecycle_after_create(const struct kie_error *err, long attempt, long max_attempts,
			    const struct lifecycle_policy *p, uint32_t rnd,
			    struct job_decision *out)
{
	memset(out, 0, sizeof(*out));
	if (!err || err->cls == KIE_ERR_NONE) {
		out->action = JOB_ACT_HANDOFF;
		out->next = JOB_STATE_POLLING;
		return;
	}
	if (lifecycle_is_rate_refusal(err)) {
		out->action = JOB_ACT_BACKOFF;
		out->next = JOB_STATE_QUEUED;
		snprintf(out->reason, sizeof(out->reason),
			 "KIE refused the call (%s); the pool backs off, the job waits, no attempt "
			 "spent", err->message);
		return;
	}
	switch (err->cls) {
	case KIE_ERR_RETRYABLE:
		if (attempt < max_attempts) {
			out->action = JOB_ACT_RETRY;
			out->next = JOB_STATE_RETRY_WAIT;
			out->delay_ms = lifecycle_backoff_ms(attempt, p->retry_base_ms, rnd);
			snprintf(out->reason, sizeof(out->reason),
				 "attempt %ld of %ld failed, retrying in %lld ms: %s", attempt,
				 max_attempts, (long long)out->delay_ms, err->message);
		} else {
			out->action = JOB_ACT_DEAD;
			out->next = JOB_STATE_DEAD;
			snprintf(out->reason, sizeof(out->reason),
				 "gave up after %ld attempts; last error: %s", attempt, err->message);
		}
		return;
	case KIE_ERR_ACCOUNT:
		out->action = JOB_ACT_PAUSE;
		out->next = JOB_STATE_QUEUED;
		out->pause_ms = p->account_pause_ms;
		snprintf(out->reason, sizeof(out->reason),
			 "account-level error, pausing the pool for %ld ms: %s", p->account_pause_ms,
			 err->message);
		return;
	case KIE_ERR_AMBIGUOUS:
		/* The task may exist and be charged: creating another could pay twice. It
		 * waits to be adopted (its callback carries the job id). */
		out->action = JOB_ACT_UNCERTAIN;
		out->next = JOB_STATE_UNCERTAIN;
		snprintf(out->reason, sizeof(out->reason),
			 "uncertain: KIE may have created (and charged) a task; waiting for it to "
			 "be adopted, not re-created: %s", err->message);
		return;
	case KIE_ERR_PERMANENT:
	case KIE_ERR_NONE:
		break;
	}
	out->action = JOB_ACT_DEAD;
	out->next = JOB_STATE_DEAD;
	snprintf(out->reason, sizeof(out->reason), "KIE refused the job: %s", err->message);
}

int64_t lifecycle_poll_delay_ms(int64_t elapsed_ms, const struct lifecycle_policy *p)
{
	int64_t mid = p->poll_initial_ms * 3;
	if (mid > p->poll_max_ms)
		mid = p->poll_max_ms;
	if (elapsed_ms < 30000)
		return p->poll_initial_ms;
	if (elapsed_ms < 120000)
		return mid;
	return p->poll_max_ms;
}

enum poll_action lifecycle_after_poll(const struct kie_error *err, enum kie_task_state state,
				      int64_t elapsed_ms, long polls,
				      const struct lifecycle_policy *p)
{
	(void)polls;
	if (!err || err->cls == KIE_ERR_NONE) {
		if (kie_task_state_final(state))
			return POLL_FINALIZE;
		return elapsed_ms >= p->poll_timeout_ms ? POLL_TIMEOUT : POLL_AGAIN;
	}
	if (err->cls == KIE_ERR_ACCOUNT)
		return POLL_PAUSE;
	/* Anything else (including 404 just after creation) is retried until the window ends:
	 * a created task is paid for, so we never stop looking for its result early. */
	return elapsed_ms >= p->poll_timeout_ms ? POLL_TIMEOUT : POLL_AGAIN;
}
