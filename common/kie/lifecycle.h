/* lifecycle.h — the one place that decides a job's next state and a task's next poll.
 * States match docs/protocol.md and the "state" field of <prefix>:job:<id>.
 *
 * Must not: do I/O: decisions only, pure functions. */
#ifndef KIE_LIFECYCLE_H
#define KIE_LIFECYCLE_H

#include <stdint.h>

#include "kie/kie_client.h"

enum job_state {
	JOB_STATE_QUEUED = 0, /* in <p>:queue (or back there after an account pause) */
	JOB_STATE_CREATING,   /* claimed; createTask is being called */
	JOB_STATE_POLLING,    /* task created and recorded; waiting for its end */
	JOB_STATE_RETRY_WAIT, /* in <p>:delayed until its retry is due */
	JOB_STATE_COMPLETED,  /* task succeeded; event emitted */
	JOB_STATE_FAILED,     /* task failed (or timed out); event emitted */
	JOB_STATE_DEAD,       /* in <p>:dead: needs a person */
	JOB_STATE_UNCERTAIN,  /* createTask's outcome unknown: waiting for its task to be adopted */
};
const char *job_state_str(enum job_state s);
int job_state_parse(const char *s, enum job_state *out);

struct lifecycle_policy {
	long max_attempts;      /* createTask attempts for retryable errors */
	long retry_base_ms;     /* first retry delay; doubles per attempt, capped at 10 min */
	long account_pause_ms;  /* pool pause after 401/402/433 */
	long poll_initial_ms;   /* first poll delay and the cadence for the first 30 s */
	long poll_max_ms;       /* cadence after 2 minutes */
	long poll_timeout_ms;   /* give up on a task after this long */
};

enum job_action {
	JOB_ACT_HANDOFF,   /* task created: record, save metadata, hand over to polling */
	JOB_ACT_RETRY,     /* back to <p>:delayed for delay_ms */
	JOB_ACT_PAUSE,     /* account-level: pause the pool pause_ms, requeue untouched */
	JOB_ACT_DEAD,      /* to the dead letters with reason */
	JOB_ACT_UNCERTAIN, /* the task may exist (5xx, no answer after sending): wait for it to be
			    * adopted (callback, late recording) before deciding; never re-create
			    * blindly */
	JOB_ACT_BACKOFF,   /* KIE's own limit (429) or maintenance (455): the pool backs off,
			    * the job is kept and tried again; no attempt is spent */
};
const char *job_action_str(enum job_action a);

struct job_decision {
	enum job_action action;
	enum job_state next;
	int64_t delay_ms;
	long pause_ms;
	char reason[640];
};

/* Decides what follows a createTask call. err is NULL on success; attempt counts from 1;
 * rnd adds jitter (0..2^32-1). Only the job's own errors count toward max_attempts: a
 * 429 or 455 (a pool-wide condition) is JOB_ACT_BACKOFF, an account-level one PAUSE. */
void lifecycle_after_create(const struct kie_error *err, long attempt, long max_attempts,
			    const struct lifecycle_policy *p, uint32_t rnd,
			    struct job_decision *out);

/* 1 when err is KIE refusing for its rate limit (429) or maintenance (455). */
int lifecycle_is_rate_refusal(const struct kie_error *err);

/* Exponential backoff with +-20% jitter: base * 2^(attempt-1), capped at 10 minutes. */
int64_t lifecycle_backoff_ms(long attempt, long base_ms, uint32_t rnd);

/* KIE's advice as a schedule: poll_initial_ms for the first 30 s, then three times that
 * (at most poll_max_ms) until 2 minutes, then poll_max_ms. */
int64_t lifecycle_poll_delay_ms(int64_t elapsed_ms, const struct lifecycle_policy *p);

enum poll_action { POLL_FINALIZE, POLL_AGAIN, POLL_TIMEOUT, POLL_PAUSE };
/* Decides what follows a recordInfo call (err NULL when it answered). */
enum poll_action lifecycle_after_poll(const struct kie_error *err, enum kie_task_state state,
				      int64_t elapsed_ms, long polls,
				      const struct lifecycle_policy *p);

#endif
