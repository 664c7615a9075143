/* metrics.h — the process's counters and histograms (what this worker did) and the text
 * that GET /metrics serves (Prometheus text exposition format 0.0.4), with the pool's
 * gauges that the caller read from Redis at scrape time.
 *
 * Hot path: every metrics_* recording call is a few relaxed atomic adds on fixed arrays
 * (label sets are enums here, not a registry): no lock, no allocation, no I/O. They are
 * safe from any thread. The state is process-wide and lives as long as the process;
 * docs/operations.md ("Metrics and alerts") lists every metric and what it means.
 *
 * Must not: include a higher layer (label values are strings; the job types are
 * registered at start), or lock, allocate or do I/O when recording. */
#ifndef KIE_METRICS_H
#define KIE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

/* kie_api_requests_total{endpoint}, kie_api_request_duration_seconds{endpoint} */
enum metrics_endpoint {
	METRICS_EP_CREATE = 0, /* createTask */
	METRICS_EP_QUERY,      /* recordInfo */
	METRICS_EP_CREDIT,     /* chat/credit */
	METRICS_EP_N
};

/* kie_jobs_total{outcome} */
enum metrics_job_outcome {
	METRICS_JOB_COMPLETED = 0, /* job.completed event emitted by this process */
	METRICS_JOB_FAILED,        /* job.failed (the task failed or timed out) */
	METRICS_JOB_DEAD,          /* the job ended in the dead letters (not duplicates) */
	METRICS_JOB_RETRIED,       /* a retryable createTask error: to <p>:delayed */
	METRICS_JOB_UNCERTAIN,     /* createTask's outcome unknown: the job waits uncertain */
	METRICS_JOB_N
};

/* kie_callbacks_total{result}: what the HTTP endpoint did with a POST to the path */
enum metrics_callback {
	METRICS_CB_VERIFIED = 0,   /* pushed, signature verified */
	METRICS_CB_UNVERIFIED,     /* pushed, no KIE_WEBHOOK_HMAC_KEY set */
	METRICS_CB_BAD_SIGNATURE,  /* 401: signature or timestamp did not verify */
	METRICS_CB_NO_SIGNATURE,   /* 401: a key is set and the headers are missing */
	METRICS_CB_BAD_BODY,       /* 400: not strict JSON, or no task id */
	METRICS_CB_BAD_JOB_ID,     /* 400: jobId repeated or invalid */
	METRICS_CB_TOO_LARGE,      /* 413: a body over KIE_HTTP_BODY_MAX */
	METRICS_CB_UNAVAILABLE,    /* 503: Redis did not take it */
	METRICS_CB_LIST_FULL,      /* 503: <p>:callbacks holds KIE_CALLBACKS_MAX entries */
	METRICS_CB_REPLAYED,       /* 200, not pushed: a signed task + timestamp seen already */
	METRICS_CB_N
};

/* kie_http_refused_total{reason}: what the HTTP server refused before any route */
enum metrics_http_refusal {
	METRICS_HTTP_PER_ADDRESS = 0, /* a connection over KIE_HTTP_MAX_PER_ADDRESS: closed */
	METRICS_HTTP_PER_CLIENT,      /* 429: a client behind a proxy over the same limit */
	METRICS_HTTP_DEADLINE,        /* a connection whose request was not answered within
				       * KIE_HTTP_REQUEST_TIMEOUT_MS: closed */
	METRICS_HTTP_N
};

/* kie_callbacks_handled_total{result}: what the consumer of <p>:callbacks did */
enum metrics_cb_handled {
	METRICS_CBH_FINALIZED = 0, /* the callback finalized its task */
	METRICS_CBH_ALREADY_FINAL, /* final state, the task was finalized before: no-op */
	METRICS_CBH_PROGRESS,      /* a non-final state: adopted if needed, polling goes on */
	METRICS_CBH_UNKNOWN_TASK,  /* recordInfo does not know the task (unverified entry) */
	METRICS_CBH_JOB_MISMATCH,  /* KIE's record names another job: refused */
	METRICS_CBH_NO_JOB,        /* unrecorded task, no job id: dropped (no KIE call) */
	METRICS_CBH_MALFORMED,     /* not an entry (no body, task ids disagree, too big) */
	METRICS_CBH_RETRY,         /* kept for another try (recordInfo or Redis failed) */
	METRICS_CBH_FINALIZE_FAILED, /* the store or Redis failed: polling finalizes it */
	METRICS_CBH_TO_COPIES,     /* a success handed to a poller for the result copies */
	METRICS_CBH_UNKNOWN_JOB,   /* unrecorded task, its jobId names no job: dropped (no KIE
				    * call) */
	METRICS_CBH_KIE_NO_JOB,    /* unrecorded task whose KIE record names no job: dropped */
	METRICS_CBH_TO_POLLER,     /* unverified, for a recorded task: made due now, the
				    * poller's recordInfo confirms it */
	METRICS_CBH_N
};

/* kie_result_copies_total{outcome} */
enum metrics_copy_outcome {
	METRICS_COPY_STORED = 0,
	METRICS_COPY_FAILED,
	METRICS_COPY_TOO_LARGE,
	METRICS_COPY_WRONG_TYPE,
	METRICS_COPY_N
};

/* kie_limiter_waits_total{limiter}, kie_limiter_wait_seconds_total{limiter} */
enum metrics_limiter { METRICS_LIM_CREATE = 0, METRICS_LIM_QUERY, METRICS_LIM_N };

/* kie_queue_jobs{queue}: the pool's keys (docs/protocol.md section 2) */
enum metrics_queue {
	METRICS_Q_QUEUE = 0,  /* LLEN <p>:queue */
	METRICS_Q_PROCESSING, /* sum of LLEN <p>:processing:<cid> over <p>:workers */
	METRICS_Q_DELAYED,    /* ZCARD <p>:delayed */
	METRICS_Q_POLLING,    /* LLEN <p>:polling + ZCARD <p>:poll:due */
	METRICS_Q_UNCERTAIN,  /* ZCARD <p>:uncertain */
	METRICS_Q_DEAD,       /* LLEN <p>:dead */
	METRICS_Q_CALLBACKS,  /* LLEN <p>:callbacks */
	METRICS_Q_N
};
const char *metrics_queue_str(enum metrics_queue q);

/* kie_paused{kind} */
enum metrics_pause { METRICS_PAUSE_OPERATOR = 0, METRICS_PAUSE_CREDITS, METRICS_PAUSE_ACCOUNT,
		     METRICS_PAUSE_N };

/* The pool as the scrape read it from Redis (metrics_http.c). */
struct metrics_pool {
	int redis_up;                /* 0: the fields below are not rendered */
	long long queue[METRICS_Q_N];
	int paused;                  /* 1 when <p>:pause exists */
	int pause_kind;              /* enum metrics_pause, when paused */
	long long workers_alive;     /* worker processes with a live heartbeat */
	int has_head;                /* the queue is not empty: head_wait_s is set */
	double head_wait_s;          /* how long its consuming end has held the same entry */
	double scrape_s;             /* how long the Redis read took */
	int has_sched;               /* the scheduling structure was read (sched.h) */
	long long queued_prio[10];   /* ready jobs by priority 0..9 */
	long long sched_delayed;     /* jobs waiting for notBefore or a retry */
	long long cancelled_total;   /* <p>:stats cancelled */
};

/* --- recording (hot path) --- */

/* A monotonic clock in seconds, for the durations below. */
double metrics_now_s(void);

/* One KIE call: code is KIE's body code or the HTTP status that decided it (200 for a
 * success), 0 for a transport error (nothing or no answer came back); seconds is its
 * wall time. Codes outside kie-api.md's table are counted as "other". */
void metrics_api(enum metrics_endpoint ep, int code, double seconds);
/* A job's outcome. type is a descriptor type name (job_type_str), NULL or unknown: "unknown".
 * METRICS_JOB_RETRIED also counts kie_retries_total. */
/* The label values of `type` (the job types, in order), registered once at start before
 * any thread counts; names must outlive the process. A type not registered counts as
 * "unknown". At most METRICS_TYPES_MAX. */
#define METRICS_TYPES_MAX 15
void metrics_set_job_types(const char *const *names, int n);
void metrics_job(const char *type, enum metrics_job_outcome o);
/* An entry written to <p>:dead. source is the entry's "source" (parse, prompt, kie,
 * duplicate, recovery, uncertain; anything else counts as "other"). Except for a
 * duplicate (a second copy of a job, not the job's end) it also counts
 * kie_jobs_total{type,outcome="dead"}. */
void metrics_dead_letter(const char *source, const char *type);
/* n jobs taken back from dead workers. */
void metrics_recoveries(long n);
void metrics_callback(enum metrics_callback r);
void metrics_http_refused(enum metrics_http_refusal r);
void metrics_callback_handled(enum metrics_cb_handled r);
/* One result copy's outcome (issue 11 item 1 calls it). */
void metrics_copy(enum metrics_copy_outcome o);
/* A limiter_acquire() that slept: seconds it waited in all. */
void metrics_limiter_wait(enum metrics_limiter l, double seconds);
/* The runner's claim of a descriptor to its task id recorded. */
void metrics_claim_to_task(double seconds);
/* A task's recording to its finalization (completion event or failure). */
void metrics_task_to_completion(double seconds);
/* kie_queue_wait_seconds{priority}: a job's wait from queuedAt to its pick. */
void metrics_wait(long priority, double seconds);
/* A job ended cancelled by this worker's routing (its cancel came first). */
void metrics_cancelled(void);

/* --- credits (docs/protocol.md, "Credits, spend and budgets") --- */

/* The label values of `account` (the pool's account aliases, v[0] the default), copied,
 * registered once at start before any thread counts. At most METRICS_ACCOUNTS_MAX; an
 * alias not registered counts as "unknown". */
#define METRICS_ACCOUNTS_MAX 64
void metrics_set_accounts(const char *const *aliases, int n);
/* kie_credits_consumed_total{type,account}: a task's final cost as this process
 * finalized it (kept in thousandths of a credit). */
void metrics_credits(const char *type, const char *account, double credits);
/* kie_account_balance{account} and kie_account_balance_time_seconds{account} (epoch s):
 * the last balance known, read from KIE by this worker or by another and shared through
 * Redis (balance.h); rendered once known. */
void metrics_balance(const char *account, double balance, int64_t at_ms);

/* kie_budget_credits{group} and kie_budget_used_credits{group} (spent + reserved today,
 * UTC): group "(pool)" for KIE_DAILY_CREDIT_BUDGET (budget 0: none), then each group with
 * a budget, at most METRICS_BUDGET_GROUPS_MAX. Replaces the whole set; names are copied.
 * Set every few seconds by the supervisor (budget.h), it takes a lock: never call it on
 * a hot path. */
#define METRICS_BUDGET_GROUPS_MAX 32
void metrics_budgets(const char *const *groups, const double *budget, const double *used,
		     int n);

/* --- liveness (GET /healthz) --- */

/* The supervisor's loop turned (monotonic clock). */
void metrics_tick(void);
/* A Redis (re)connect attempt by any connection of the process: waiting for Redis is
 * being alive, not stuck. */
void metrics_redis_attempt(void);
/* Monotonic ms of the last metrics_tick() / metrics_redis_attempt(); 0 when never. */
int64_t metrics_last_tick_ms(void);
int64_t metrics_last_redis_attempt_ms(void);

/* --- rendering --- */

/* Writes value into out as a Prometheus label value: backslash, double quote and line
 * feed escaped (\\, \", \n). Truncated (never mid-escape) to fit outlen; returns out. */
char *metrics_escape_label(const char *value, char *out, size_t outlen);
/* Appends the whole exposition to out: process counters and histograms, then (pool not
 * NULL) kie_redis_up and, when Redis was up, the pool's gauges. 0, or -1 when out's cap
 * was reached. */
int metrics_render(struct dbuf *out, const struct metrics_pool *pool);
/* Sets every counter and histogram back to zero (unit tests). */
void metrics_reset(void);

#endif
