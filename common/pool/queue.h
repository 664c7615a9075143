/* queue.h — the one Redis key scheme and the atomic steps that move jobs and tasks
 * between its keys (the Lua scripts of common/pool/lua/, one file per step, so each step is
 * all-or-nothing; every key they touch is built here and passed in KEYS).
 * docs/protocol.md is the contract; the key names below must match it.
 *
 *   <p>:queue              LIST   job descriptors; producers LPUSH, workers take the right end
 *   <p>:processing:<cid>   LIST   the descriptor claimed by consumer <cid> (BLMOVE)
 *   <p>:worker:<cid>       STRING heartbeat of consumer <cid>, expires after KIE_HEARTBEAT_TTL_MS
 *   <p>:workers            SET    consumer ids seen, for recovery
 *
 * A consumer is one job runner of a worker process: <cid> = "<workerId>#<n>". Each has
 * its own processing list, so at most one descriptor sits in it while it works and any
 * other one found there is a leftover only it can own (see queue_claim()). The callback
 * consumer is "<workerId>#cb" (its own name space: never a runner's slot).
 *   <p>:recoveries         HASH   sha1(descriptor) -> times recovered from dead workers
 *   <p>:delayed            ZSET   descriptors waiting for a retry, score = due (epoch ms)
 *   <p>:job:<jobId>        HASH   job record: state, taskId, attempts, error, ...
 *   <p>:task:<taskId>      HASH   task record: jobId, createdAt, polls, record, finalizedAt
 *   <p>:polling            LIST   task ids to poll (producers, adopted tasks); promoted
 *   <p>:poll:due           ZSET   task ids being polled, score = next poll (epoch ms);
 *                                 a worker adds the tasks it creates here directly
 *   <p>:dead               LIST   dead letters (JSON), newest first
 *   <p>:results            LIST   completion events (JSON), newest first, capped
 *   <p>:events             PUBSUB channel carrying the same completion events
 *   <p>:pause              STRING pool-wide pause (account-level errors), with a TTL
 *   <p>:stats              HASH   counters
 *
 * Must not: call KIE or the store, or let a script build a key. */
#ifndef KIE_QUEUE_H
#define KIE_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "kie/kie_client.h"
#include "redis/rconn.h"

/* the scheduling structure's account (sched.h): one KIE account per pool today */
#define SCHED_ACCOUNT_NAME "default"

struct queue {
	struct rconn *r;
	char prefix[64];
	char worker_id[128];
	long record_ttl_s;   /* job/task hashes expire this long after they finish */
	long results_max;    /* <p>:results is trimmed to this many events */
	/* queue_claim() looks in its own processing list only when a leftover may be there
	 * or it is idle anyway: at start, after a lost connection (r->drops moved), a failed
	 * script or a BLMOVE that timed out */
	int check_own;
	unsigned long drops_seen;
	long dead_max;       /* <p>:dead keeps at most this many entries (KIE_DEAD_MAX) */
	long reply_max;      /* a replyTo list is trimmed to this many events (KIE_REPLY_MAX) */
	long reply_ttl_s;    /* and expires this long after each push (KIE_REPLY_TTL_S) */
	long poll_initial_ms; /* a handed-off task's first poll comes this long after */
	char err[300];       /* why the last step failed: unreachable, or Redis's error reply */
	int64_t next_err_log;
	long errs_quiet;
	/* i20-accounts: the account whose scheduling structure <p>:sched:<alias>:* the sched_*
	 * steps use ("": SCHED_ACCOUNT_NAME); <S>:inflight stays the pool's (group caps count
	 * across accounts) */
	char sched_acct[72];
	struct queue_poll_ahead *ahead; /* a poller's: see queue_poll_ahead */
};

void queue_init(struct queue *q, struct rconn *r, const char *prefix, const char *worker_id,
		long record_ttl_s, long results_max);

/* Writes "<prefix>:<suffix>" into out. */
void queue_key(const struct queue *q, char *out, size_t outlen, const char *suffix);

/* Every function below returns 0 on success and -1 when Redis could not be reached
 * before the connection's stop flag was set (the caller decides what that means). */
/* The release steps (handoff, retry, requeue, dead) act only if the descriptor is still
 * in this consumer's processing list: run again after a lost reply, or after recovery
 * took the list away, they do nothing, so a descriptor is never released twice. */

/* q->worker_id is a consumer id here. Hands back the oldest descriptor already in the
 * consumer's processing list (*leftover = 1: a BLMOVE whose reply was lost with the
 * connection, or a release that failed), else BLMOVE <p>:queue -> <p>:processing:<cid>.
 * The list is read only when one of those can have happened (see check_own).
 * out->type is REDIS_REPLY_NIL on timeout; for a descriptor, out->kept says whether its
 * bytes are in out->data (at most max_keep of them) or only its length, head and SHA-256
 * (queue_dead_oversized()). Free with rconn_bulk_free(). */
int queue_claim(struct queue *q, double timeout_s, size_t max_keep, struct rconn_bulk *out,
		int *leftover);

/* Only the leftover part of queue_claim(): the oldest descriptor already in the
 * consumer's processing list (out->type REDIS_REPLY_STRING), read when one can be there;
 * REDIS_REPLY_NIL otherwise. A runner picks (sched.h) rather than BLMOVEs. */
int queue_leftover(struct queue *q, size_t max_keep, struct rconn_bulk *out);

/* The callback consumer's claim: <p>:callbacks -> <p>:callbacks:processing:<cid>, with
 * leftovers as in queue_claim(); released with queue_callback_release(). */
int queue_callback_claim(struct queue *q, double timeout_s, size_t max_keep,
			 struct rconn_bulk *out, int *leftover);
int queue_callback_release(struct queue *q, const char *raw, size_t len);
/* Drops a claimed callback entry too large to read (counted as callbacks_refused). */
int queue_callback_release_oversized(struct queue *q, const struct rconn_bulk *b);

/* Swaps a claimed descriptor for a rewritten one (e.g. with a generated id). */
int queue_replace_claimed(struct queue *q, const char *old_raw, size_t old_len,
			  const char *new_raw, size_t new_len);

/* --- one owner per job id (docs/protocol.md, "Ownership") ---
 * <p>:job:<id> holds owner (a consumer id), epoch (a fencing token, +1 per claim) and
 * lease (Redis-clock ms, renewed with the owner's heartbeat). Every step after the claim
 * acts only while owner and epoch are still the caller's; recording a created task is
 * the one exception (a paid task id is never dropped). */
enum claim_outcome {
	CLAIM_OK = 0,          /* this consumer owns the job now (epoch) */
	CLAIM_TAKEOVER,        /* owns it, but its last owner was inside createTask: a task
				* may exist, so the job goes uncertain rather than created */
	CLAIM_HAS_TASK,        /* created and recorded already: hand task_id to the pollers */
	CLAIM_FINISHED,        /* completed or failed: this descriptor is a duplicate */
	CLAIM_OWNED,           /* another live consumer holds it: a duplicate in flight */
	CLAIM_UNCERTAIN,       /* waiting for its task to be adopted: a duplicate */
	CLAIM_TOO_MANY_RECOVERIES, /* owns it; it was taken back from too many dead workers */
	CLAIM_PAUSED,          /* the pool was paused after the runner looked: put it back */
	/* routing and starting (sched.h) */
	CLAIM_QUEUED,          /* routed: queued in the scheduling structure */
	CLAIM_DELAYED,         /* routed: waits for its notBefore */
	CLAIM_CANCELLED,       /* routed: a cancel came first; it ended cancelled */
	CLAIM_QUEUED_ALREADY,  /* the job is queued already: this descriptor is a duplicate */
	CLAIM_STARTED,         /* started: owned, state creating, attempts + 1 */
	CLAIM_NOT_HELD,        /* the consumer's copy was released already (a lost reply) */
	CLAIM_OVER_BUDGET,     /* not started: its estimate would pass a budget (job_claim's
				* budget_why); it waits over_budget (sched_put's park) */
};
const char *queue_claim_outcome_str(enum claim_outcome c);
/* The outcome named s (a script's answer); -1 when unknown. */
int queue_claim_outcome_parse(const char *s, enum claim_outcome *out);

struct job_claim {
	enum claim_outcome outcome;
	long epoch;
	long attempts;
	char state[32];     /* the state before the claim */
	char task_id[KIE_TASK_ID_MAX_BYTES + 1];
	char owner[160];    /* the owner before the claim */
	long recoveries;
	int may_have_task;  /* mayHaveTask: a createTask of unknown outcome, no task since */
	char budget_why[160]; /* CLAIM_OVER_BUDGET: which budget, used of budget, estimate */
	double budget_est;  /* CLAIM_OVER_BUDGET: the job's estimate */
};
/* State creating, attempts + 1 (*attempts) — only while owned (*fenced = 1 if not) and
 * while the pool is not paused (*paused = 1 if it is; nothing written). raw/len: the
 * job's descriptor (NULL for none), kept in the job hash (raw) for whoever records the
 * task about to be created (an adoption rebuilds its pending metadata record from it). */
int queue_job_creating(struct queue *q, const char *job_id, long epoch, const char *raw,
		       size_t len, long *attempts, int *fenced, int *paused);

enum record_outcome {
	RECORD_RECORDED,  /* the job's task now */
	RECORD_SAME,      /* it already was (a retry, a callback that came first) */
	RECORD_DUPLICATE, /* the job has another task: this one is recorded as its duplicate
			   * (task hash duplicateOf) and collected without a job event */
	RECORD_DEAD,      /* the job was dead-lettered meanwhile: the task is its task now (a
			   * dead retry is refused) and is collected without a job event */
};
/* Records a created task on the job and creates the task record, owner or not. Retried
 * through reconnects and error replies until done or the hard stop. push: 1 puts the
 * task onto <p>:polling in the same step (else queue_handoff_to_polling does); a
 * duplicate is always pushed. record_json: the task's pending metadata record (NULL:
 * the job's pending, kept by older versions). */
int queue_record_task(struct queue *q, const char *job_id, const char *task_id,
		      const char *type, const char *reply_to, const char *record_json,
		      const char *job_meta_json, long attempts, int push, enum record_outcome *out);

/* queue_record_task and the hand-off below in one step: the task is recorded, put into
 * <p>:poll:due (first poll q->poll_initial_ms from now), and this consumer's copy and
 * ownership released. A duplicate's copy is released too (*out RECORD_DUPLICATE). */
int queue_record_task_handoff(struct queue *q, const char *raw, size_t len, const char *job_id,
			      const char *task_id, const char *type, const char *reply_to,
			      const char *record_json, const char *job_meta_json, long attempts,
			      enum record_outcome *out);

/* Puts the task id into <p>:poll:due (unless there) and releases this consumer's copy (if it still has
 * it) and ownership. Retried on error replies like queue_record_task. */
int queue_handoff_to_polling(struct queue *q, const char *raw, size_t len, const char *job_id,
			     const char *task_id);

/* Puts a claimed descriptor back at the consuming end of the queue; the job's state is
 * untouched, and its ownership given up when this consumer holds it (job_id, epoch > 0;
 * NULL/0: not claimed). */
int queue_unclaim(struct queue *q, const char *raw, size_t len, const char *job_id, long epoch);

/* Releases this consumer's copy of a descriptor (a duplicate, or one whose job another
 * consumer took over) without touching the job. */
int queue_release_copy(struct queue *q, const char *raw, size_t len);

/* Releases the claimed descriptor into <p>:delayed until due_ms (owner only). */
int queue_retry_later(struct queue *q, const char *raw, size_t len, const char *job_id,
		      long epoch, int64_t due_ms, const char *error);

/* Puts the claimed descriptor back at the consuming end of the queue (account pause),
 * taking back the attempt (owner only). */
int queue_requeue_front(struct queue *q, const char *raw, size_t len, const char *job_id,
			long epoch);

/* createTask's outcome is unknown (owner only): the descriptor moves into the job hash,
 * the job id into <p>:uncertain for window_ms (Redis's clock). Retried like
 * queue_record_task. */
int queue_job_uncertain(struct queue *q, const char *raw, size_t len, const char *job_id,
			long epoch, long window_ms, const char *reason);

/* --- uncertain jobs whose window ended (the supervisor) --- */
/* Up to limit job ids whose window ended by Redis's clock: *ids is a new array of new
 * strings (caller frees each and the array), *n of them. */
int queue_uncertain_due(struct queue *q, int limit, char ***ids, size_t *n);
struct uncertain_job {
	char state[32];
	char task_id[KIE_TASK_ID_MAX_BYTES + 1];
	char *raw;          /* the descriptor kept while uncertain; caller frees */
	size_t raw_len;
	char reply_to[512];
	char *meta;         /* caller frees */
	char type[32];
	int callback;       /* KIE was given a callback URL */
	long attempts;
};
int queue_uncertain_get(struct queue *q, const char *job_id, struct uncertain_job *u);
void queue_uncertain_free(struct uncertain_job *u);
/* Ends the window of a job still uncertain without a task: create = its descriptor back
 * at the consuming end of the queue (*acted 1); else the dead letters with event_json
 * (*acted 2). *acted 0: it was adopted meanwhile (it just leaves <p>:uncertain). */
int queue_uncertain_resolve(struct queue *q, const char *job_id, const struct uncertain_job *u,
			    int create, const char *reason, const char *event_json, int *acted);

/* Releases the claimed descriptor into <p>:dead with the reason. job_id may be NULL;
 * may_have_task: the entry says "mayHaveTask": true (the claim's may_have_task);
 * epoch > 0: the job's state becomes dead, and only while this consumer owns it (else
 * the copy is just released); epoch 0 leaves the job hash alone.
 * In the same step, when event_json is given, emits that completion event (to
 * <p>:results, reply_to when non-NULL, and <p>:events). A reply_to key holding another
 * type than a list is skipped (*reply_skipped = 1; may be NULL). <p>:dead keeps the
 * newest dead_max entries; the number dropped is counted in <p>:stats dead_dropped. */
int queue_dead(struct queue *q, const char *raw, size_t len, const char *job_id, long epoch,
	       const char *reason, const char *source, long attempts, int may_have_task,
	       const char *event_json, const char *reply_to, int *reply_skipped);

/* Releases a claimed descriptor that was too large to read (b->kept == 0) into <p>:dead:
 * its size, SHA-256 and first 4 KiB; the bytes never leave Redis. */
int queue_dead_oversized(struct queue *q, const struct rconn_bulk *b, const char *reason);

/* A createTask that KIE refused as a whole (429/455): the job is back to queued and the
 * attempt counted by queue_job_creating() is taken back (owner only). */
int queue_job_not_created(struct queue *q, const char *job_id, long epoch);

/* Pool-wide pause, <p>:pause = {"kind","reason","since","by"}. kind is "account"
 * (401/433: expires after ms), "credits" (402: no expiry; lifted when a credit probe
 * sees credits) or "operator" (kie pause; until kie resume). An automatic pause never
 * replaces an operator's (*set = 0 then; set may be NULL). ms <= 0: no expiry. */
int queue_pause_set(struct queue *q, const char *kind, long ms, const char *reason, int *set);
/* *remaining_ms: 0 not paused, -1 paused until lifted, else ms left. kind and reason
 * (may be NULL) get the pause's. */
int queue_pause_get(struct queue *q, long *remaining_ms, char *kind, size_t kindlen,
		    char *reason, size_t reasonlen);
/* Lifts the pause when its kind is kind (NULL: whatever it is). */
int queue_pause_clear(struct queue *q, const char *kind, int *cleared);
/* i20-accounts: the same on one account's pause <p>:pause:acct:<alias> (alias NULL or
 * "": the pool-wide <p>:pause), and its credit probe's lock <p>:pause:probe:<alias>. */
int queue_acct_pause_set(struct queue *q, const char *alias, const char *kind, long ms,
			 const char *reason, int *set);
int queue_acct_pause_get(struct queue *q, const char *alias, long *remaining_ms, char *kind,
			 size_t kindlen, char *reason, size_t reasonlen);
int queue_acct_pause_clear(struct queue *q, const char *alias, const char *kind, int *cleared);
int queue_acct_pause_probe_lock(struct queue *q, const char *alias, long ms, int *got);
/* One credit probe per ms across the pool: *got = 1 for the worker that may probe. */
int queue_pause_probe_lock(struct queue *q, long ms, int *got);

/* --- polling --- */
struct task_record;
/* One poller step (poll_next.lua): moves up to limit task ids from <p>:polling into
 * <p>:poll:due (first poll at first_due_ms), then claims the earliest task due by now_ms,
 * leasing it until lease_until_ms, and reads its task hash into *t counting one poll
 * (queue_task_record_free() it): *task_id (new string, caller frees) or NULL. *due_ms
 * is the earliest due time of a task not claimed (the next one after the claimed one),
 * -1 when there is none. */
int queue_poll_next(struct queue *q, int limit, int64_t first_due_ms, int64_t now_ms,
		    int64_t lease_until_ms, char **task_id, int64_t *due_ms,
		    struct task_record *t);
/* Sets the next poll time of a task still being polled (no-op once finalized). */
struct script;
/* Runs a script (script_run: EVALSHA, EVAL on NOSCRIPT) for the modules beside this one
 * (sched.c): an error reply is logged once per 10 s, goes into q->err and makes the
 * consumer check what it owns; arglens NULL: C strings. */
/* 0 for a reply that is not an error; else -1 with q->err filled ("Redis could not be
 * reached", or Redis's error). Frees rep. */
int queue_done(struct queue *q, redisReply *rep);
redisReply *queue_eval(struct queue *q, const struct script *s, int nkeys, const char **keys,
		       int nargs, const char **args, const size_t *arglens);
int queue_poll_reschedule(struct queue *q, const char *task_id, int64_t due_ms);
/* The same, and KIE's state as the poll read it into the task hash (kieState: the page's
 * In flight view), in one step (poll_state.lua); nothing is written for a task no longer
 * polled. */
int queue_poll_reschedule_state(struct queue *q, const char *task_id, int64_t due_ms,
				const char *kie_state);

struct task_record {
	char job_id[256];
	char type[32];
	char reply_to[512];
	int64_t created_at_ms;  /* first seen, when the worker did not create it */
	long polls;
	long attempts;
	int finalized;
	char *record;           /* pending metadata record JSON, or NULL; caller frees */
	char *job_meta;         /* the job's "meta" JSON, or NULL; caller frees */
	char duplicate_of[256]; /* a second task of its job: collected, no job event */
	int copying;            /* its success is saved for the result copies (copyResult) */
	char account[72];       /* i20-accounts: its job's account alias ("": the default) */
};
/* Reads <p>:task:<id>, read only (all fields empty when it is not there). */
int queue_task_get(struct queue *q, const char *task_id, struct task_record *out);
void queue_task_record_free(struct task_record *t);

/* A poller's next step sent with its finalization (BullMQ's moveToFinished fetches the
 * next job the same way): while q->ahead points at one with `on` set, the next
 * queue_finalize() also runs poll_next.lua (limit, first poll delay_ms after, lease_ms)
 * in the same round trip and leaves its answer here (`have`, as queue_poll_next's
 * outputs; task_id and t are the caller's to free), then clears `on`. */
struct queue_poll_ahead {
	int on, have, limit;
	long first_delay_ms, lease_ms;
	char *task_id;
	int64_t due_ms;
	struct task_record t;
};

/* --- finalization: once per task --- */
/* event_json NULL or "": no event and no job update (a job's duplicate task). */
/* Atomically: marks the task finalized (unless it already was), pushes event_json to
 * <p>:results and reply_to (when non-empty), publishes it on <p>:events, stops polling,
 * and sets the job's state. *done is 1 when this call finalized, 0 when already done,
 * 2 when it finalized a task of a job already dead-lettered: no event, the job stays
 * dead (no job.completed after a job.dead). */
/* The task's cost (i20-wire): the job's budget reservation is settled with it and it is
 * counted in the day's spend counters, in the same step (docs/protocol.md, "Credits,
 * spend and budgets"). today/yday: UTC days yyyymmdd (budget_day). */
struct queue_cost {
	int known;              /* KIE said creditsConsumed */
	double credits;
	const char *type;       /* the task's type, account: its alias (when the job has none) */
	const char *account;
	const char *today, *yday;
	long groups_max, ttl_s; /* SPEND_GROUPS_MAX, SPEND_TTL_S */
};
/* cost NULL: no cost counted (stopping a finalized task's polling). */
int queue_finalize(struct queue *q, const char *task_id, const char *job_id,
		   const char *status, const char *event_json, const char *reply_to,
		   const struct queue_cost *cost, int *done);

/* --- result copies (copies.h; finalize.c runs the rounds) ---
 * Fields of <p>:task:<id> while its result files are copied: copyResult (the success
 * result, JSON, first writer wins), copy:<n> (stored URL of result n), copyFail:<n> (why
 * result n was refused for good), copyTries (rounds that left a copy to retry). Plain
 * commands, no scripts: each write is one idempotent command. */
#define QUEUE_COPIES_MAX 32 /* result files copied per task; more are reported, not copied */
struct task_copies {
	char *result;                    /* copyResult, or NULL: no copy round began */
	long tries;
	char *stored[QUEUE_COPIES_MAX];  /* copy:<n>, or NULL */
	char *refused[QUEUE_COPIES_MAX]; /* copyFail:<n>, or NULL */
};
/* Reads the copy fields; free with queue_task_copies_free (also after a failure). */
int queue_task_copies_get(struct queue *q, const char *task_id, struct task_copies *out);
void queue_task_copies_free(struct task_copies *c);
/* HSETNX copyResult: the first result saved is the one copied and finalized. */
int queue_task_copies_begin(struct queue *q, const char *task_id, const char *result_json);
/* Sets copy:<n> (refused 0) or copyFail:<n> (refused 1) to value. */
int queue_task_copy_set(struct queue *q, const char *task_id, int n, int refused,
			const char *value);
/* Counts a round that left copies to retry; *tries gets the new count. */
int queue_task_copy_tried(struct queue *q, const char *task_id, long *tries);
/* Makes the task due at due_ms in <p>:poll:due, adding it when it is not there and
 * moving it earlier when it is (ZADD LT): hands a task to the pollers now. */
int queue_poll_due_by(struct queue *q, const char *task_id, int64_t due_ms);

/* --- the callback consumer's first look (callback_lookup.lua), before any KIE call --- */
enum callback_verdict {
	CALLBACK_RECORDED, /* a job recorded the task: job_id (its job), *finalized */
	CALLBACK_ADOPT,    /* not recorded; the job the entry names exists: confirm with KIE */
	CALLBACK_UNOWNED,  /* not recorded; no job named, or no such job: counted
			    * (<p>:stats callbacks_unowned), to be dropped */
};
/* Reads the task hash without creating it, and the named job's existence (job_id NULL:
 * none named). task_job gets the recording job's id for CALLBACK_RECORDED. */
int queue_callback_lookup(struct queue *q, const char *task_id, const char *job_id,
			  enum callback_verdict *verdict, char *task_job, size_t task_job_len,
			  int *finalized);
/* Counts n in <p>:stats field (a plain HINCRBY). */
int queue_stat_add(struct queue *q, const char *field, long n);

/* --- supervision (q->worker_id is the process's worker id) --- */
/* Writes the id of runner slot of worker_id: "<worker_id>#<slot>". */
void queue_consumer_id(char *out, size_t outlen, const char *worker_id, int slot);
/* Writes the router's id: "<worker_id>#router" (it routes <p>:queue, sched.h). */
void queue_router_consumer_id(char *out, size_t outlen, const char *worker_id);
/* Writes the callback consumer's id: "<worker_id>#cb". */
void queue_callback_consumer_id(char *out, size_t outlen, const char *worker_id);
/* Refreshes the heartbeats of the consumers cids[0..nconsumers-1] and, in the same step,
 * the lease of the job each owns (job_ids[i] "" or NULL: none; may be NULL). */
int queue_heartbeat(struct queue *q, long ttl_ms, const char *info, int nconsumers,
		    const char *const *cids, const char *const *job_ids, const long *epochs);
/* Recovers the claimed jobs of every consumer whose heartbeat expired except the nown
 * consumers own[] this process runs: other workers' and this worker id's stale slots (a
 * fixed KIE_WORKER_ID restarted with fewer runners) alike. A descriptor longer than
 * max_keep goes back uncounted: it is never read whole, so it cannot be what killed its
 * worker. */
int queue_recover_dead_workers(struct queue *q, const char *const *own, int nown,
			       size_t max_keep, long *recovered);
/* Moves due retries from <p>:delayed to the queue. */
int queue_promote_delayed(struct queue *q, int64_t now_ms, long *moved);
/* On a clean exit: returns anything the consumers cids[0..n-1] still hold to the queue
 * (not counted as a recovery), drops their heartbeats and leaves the worker set. */
int queue_release_self(struct queue *q, const char *const *cids, int n, long *returned);
/* *idle = 1 when queue, polling, poll:due, delayed, uncertain, every processing list and,
 * with_callbacks, <p>:callbacks are empty. */
int queue_pool_idle(struct queue *q, int with_callbacks, int *idle);

#endif
