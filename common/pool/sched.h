/* sched.h — who goes first under the account's createTask limit: the per-account
 * scheduling structure between <p>:queue and the runners (docs/protocol.md, "Who goes
 * first"), its steps (route.lua, pick.lua, sched_put.lua) and the Redis
 * Functions library "kie" (kie_cancel, kie_position: kie_functions.lua).
 *
 *   <S> = <p>:sched:<acct>, <acct> = "default" with one KIE account; with several
 *         (KIE_ACCOUNTS_FILE), each account's alias (queue.sched_acct); <S>:inflight is
 *         always <p>:sched:default:inflight (the group caps count across accounts)
 *   <S>:ready        ZSET  jobId -> (9 - priority) * 1e12 + start tag (smallest first)
 *   <S>:delayed      ZSET  jobId -> due (notBefore, or a retry's time), epoch ms
 *   <S>:items        HASH  jobId -> "prio\tgroup\tqueuedAt\ttag\tdescriptor"
 *   <S>:state        HASH  v<p> virtual time, n<p> ready, s<p> last served, picks, pace
 *                          buckets b<k>/bt<k>, and the settings the functions read
 *   <S>:gtag         HASH  "<p>|<group>" -> the group's last start tag at p
 *   <S>:gcount       HASH  group -> jobs queued or delayed (kie stats' top groups)
 *   <S>:inflight     HASH  group -> jobs between start and final state (the caps)
 *   <S>:picked       HASH  jobId -> group, between pick and start
 *   <S>:parked       ZSET  "group\1score\1jobId" (lex): jobs of groups at their cap
 *   <S>:parkedGroups ZSET  group -> pick count when last looked at
 *   <S>:wake         LIST  a token wakes one idle runner (BLPOP)
 *   <p>:group:weight HASH  group -> weight 1..1000 (kie group weight)
 *   <p>:group:limit  HASH  group -> cap (kie group limit)
 *   <p>:cancel:<id>  STRING an early cancel, TTL KIE_CANCEL_TTL_S
 *
 * Must not: build keys in a script; call KIE. */
#ifndef KIE_SCHED_H
#define KIE_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "pool/queue.h"

#define SCHED_ACCOUNT SCHED_ACCOUNT_NAME
#define SCHED_FUNCTIONS_VERSION "4"

/* What route.lua needs to know of a descriptor besides its bytes. */
struct sched_route_in {
	const char *job_id, *type, *reply_to, *meta;
	int has_callback;
	long priority;
	const char *group;      /* NULL or "": the default group */
	long long not_before_ms;
	int own;                /* claim it instead of queueing (it is dead-lettered next) */
	long lease_ms, max_recoveries;
	const char *model;      /* the model its task names, and its configured estimate */
	double model_credits;   /* (the budget reservation the pick makes) */
};
/* Routes the descriptor q's consumer holds (route.lua). out->outcome is one of
 * CLAIM_QUEUED, CLAIM_DELAYED, CLAIM_CANCELLED (released), CLAIM_OK (own), CLAIM_TAKEOVER,
 * CLAIM_TOO_MANY_RECOVERIES (owned), CLAIM_HAS_TASK, CLAIM_FINISHED, CLAIM_OWNED,
 * CLAIM_UNCERTAIN, CLAIM_QUEUED_ALREADY (nothing written). */
int sched_route(struct queue *q, const char *raw, size_t len, const struct sched_route_in *in,
		struct job_claim *out);
/* Routes n (1..SCHED_ROUTE_BATCH_MAX) descriptors q's consumer holds in one step, in that
 * order, each as sched_route would (in[0]'s lease_ms and max_recoveries serve all):
 * out[i] is raws[i]'s outcome. With moved, the same step then moves up to `more` further
 * descriptors (none longer than more_max_bytes) from <p>:queue into the consumer's list:
 * *moved is an array reply of them, oldest first (caller frees with freeReplyObject), or
 * NULL when none. -1 when the step failed (some may be routed, some moved: the others
 * stay in the consumer's list, handled as leftovers). */
#define SCHED_ROUTE_BATCH_MAX 32
int sched_route_batch(struct queue *q, int n, const char *const *raws, const size_t *lens,
		      const struct sched_route_in *in, struct job_claim *out, int more,
		      size_t more_max_bytes, redisReply **moved);

struct sched_pick {
	int outcome;            /* SCHED_PICKED, SCHED_EMPTY, SCHED_PAUSED, SCHED_AGAIN,
				 * SCHED_HELD */
	char job_id[160];
	char *raw;              /* the descriptor (caller frees with sched_pick_free) */
	size_t raw_len;
	long priority;
	char group[160];
	long long queued_at_ms;
	char tag[32];
	struct job_claim claim; /* SCHED_PICKED: the start (outcome CLAIM_STARTED, ...) */
	long long next_due_ms;  /* SCHED_EMPTY: the earliest delayed job's due time, 0: none */
	long parked_groups;     /* SCHED_EMPTY: groups with jobs parked at their cap */
	double budget_est;      /* sched_put's over_budget: the job's estimate (i20-wire) */
};
enum { SCHED_PICKED = 0, SCHED_EMPTY, SCHED_PAUSED, SCHED_AGAIN, SCHED_HELD };
/* The budget reservation the pick makes with the slot (lua/lib/budget.lua): the pool's
 * budget and the account alias the job hash keeps (the job's group, model and estimate
 * are in its job hash, written at routing). */
struct sched_budget_in {
	const char *account;    /* several accounts: the alias ("" with one) */
	long pool_budget;       /* KIE_DAILY_CREDIT_BUDGET, 0: none */
};
/* The pick rule and the start of the job picked, in one step (pick.lua), for q's
 * consumer, which holds a createTask slot; reserve_k: KIE_SCHED_RESERVE; lease_ms: the
 * owner's lease; token: a number this runner never used for another pick (a retry after
 * a lost reply finds the job that call started); b NULL: no budget reservation (tests,
 * tools). SCHED_PICKED: the descriptor is in the consumer's processing list and
 * out->claim says the start: CLAIM_STARTED (owner, state creating, attempts + 1),
 * CLAIM_TAKEOVER, CLAIM_HAS_TASK, CLAIM_FINISHED, CLAIM_OWNED, CLAIM_UNCERTAIN, or
 * CLAIM_OVER_BUDGET (not started: claim.budget_why says which budget; park it with
 * sched_put(..., SCHED_PUT_OVER_BUDGET, ...)). SCHED_HELD: the consumer's list holds a
 * leftover; route it first. */
int sched_pick(struct queue *q, long reserve_k, long lease_ms, unsigned long token,
	       const struct sched_budget_in *b, struct sched_pick *out);
void sched_pick_free(struct sched_pick *p);

enum sched_put_mode { SCHED_PUT_FRONT, SCHED_PUT_UNATTEMPT, SCHED_PUT_RETRY,
		      SCHED_PUT_OVER_BUDGET };
/* Gives a picked job back (sched_put.lua): epoch 0 when not started (not owned). */
int sched_put(struct queue *q, const char *raw, size_t len, const struct sched_pick *p,
	      long epoch, enum sched_put_mode mode, int64_t due_ms, const char *error);

/* Waits up to timeout_ms for a wake token (BLPOP <S>:wake); *woken = 1 when one came. */
int sched_wait(struct queue *q, long timeout_ms, int *woken);
/* i20-accounts: the same over the wake keys of the n accounts accts (aliases): *which is
 * the index of the account whose token came, -1 when none came. */
int sched_wait_any(struct queue *q, const char *const *accts, int n, long timeout_ms,
		   int *which);
/* *n = the jobs ready now (ZCARD <S>:ready), *next_due_ms the earliest delayed job's
 * due time (0: none), *parked_groups the groups waiting at their cap: an idle runner's
 * look after a quiet wait. */
int sched_ready(struct queue *q, long *n, int64_t *next_due_ms, long *parked_groups);

/* Settings kie_cancel and kie_position read from <S>:state (the events channel, caps,
 * TTLs, the createTask rate), and the Functions library loaded when missing or of
 * another version. */
struct sched_settings {
	long results_max, reply_max, reply_ttl_s, record_ttl_s, cancel_ttl_s;
	long create_limit, create_window_ms;
};
int sched_setup(struct queue *q, const struct sched_settings *s);
/* Loads the "kie" Functions library when kie_version answers anything else. */
int sched_functions_load(struct queue *q);

/* The keys of kie_cancel and kie_position, in order (11), for job_id: reply_to is the
 * job's replyTo key (NULL: none, KEYS[11] is the job hash again). keys[i] point into buf. */
void sched_function_keys(const struct queue *q, const char *job_id, const char *reply_to,
			 char buf[11][300], const char *keys[11]);
/* FCALL kie_cancel (reading the job's replyTo first) / FCALL_RO kie_position: *json is
 * the function's answer (caller frees). */
int sched_cancel(struct queue *q, const char *job_id, char **json);
int sched_position(struct queue *q, const char *job_id, char **json);

#endif
