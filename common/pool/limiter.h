/* limiter.h — the pool-wide rate limits of one KIE account, kept in Redis and applied
 * atomically by Lua, so every worker of every pool that uses the same token shares them.
 *
 * Algorithm: a sliding-window log with reservations (docs/architecture.md says why).
 * The log is a sorted set of call times (Redis's clock, ms); a caller asking for a slot
 * gets the earliest time t >= now at which the window (t - W, t] still has room, and t is
 * written into the log at once (a reservation), so callers never race for the same slot
 * and nobody polls: a caller that gets a future t sleeps until then and confirms. W is the
 * window plus a margin for network jitter. A 429/455 from KIE blocks every caller for a
 * backoff that doubles while refusals continue, and drops the reservations not yet due.
 *
 *   <account_prefix>:{<account id>}:<name>          ZSET  member -> reserved call time (ms)
 *   <account_prefix>:{<account id>}:<name>:state    HASH  blockedUntil, backoffMs,
 *                                                        penalties, lastReason
 * The account id is the first 16 hex digits of SHA-256(token): never the token.
 *
 * Must not: use a worker's clock for a window: Redis's TIME only. */
#ifndef KIE_LIMITER_H
#define KIE_LIMITER_H

#include <signal.h>

#include "redis/rconn.h"

#define LIMITER_LATE_MIN_MS 20 /* a wake this late still takes its reserved slot */

struct limiter {
	struct rconn *r;
	char log_key[256];
	char state_key[272];
	long limit;           /* calls per window */
	long window_ms;       /* the window plus the margin */
	long late_ms;         /* a reservation woken later than this is made anew */
	long burst;           /* 0: the window alone; b: also at most b calls per
			       * b x window/limit (paced slots; set after limiter_init) */
	long backoff_base_ms, backoff_max_ms;
	char member_prefix[180];
	unsigned long seq;
	char member[220];     /* the reservation being waited on, "" when none */
	char granted[220];    /* the last slot granted */
	/* what the last limiter_acquire() did, for logs and metrics */
	int metric;           /* enum metrics_limiter: which limit this is, for its counters */
	long waits;           /* times a caller had to sleep */
	long blocked_waits;   /* of which because of a 429/455 backoff */
};

/* Writes the account id of token (16 lowercase hex digits and a NUL) into out. */
void limiter_account_id(const char *token, char out[17]);

/* Initializes (no I/O). name is "create" or "query"; member_prefix identifies the
 * caller (a consumer id) in the log. */
void limiter_init(struct limiter *l, struct rconn *r, const char *account_prefix,
		  const char *account_id, const char *name, long limit, long window_ms,
		  long margin_ms, long backoff_base_ms, long backoff_max_ms,
		  const char *member_prefix);

/* One try: 0 granted (the caller may call KIE now), 1 not yet (*wait_ms until the
 * reserved slot or the end of a backoff; *blocked is 1 for a backoff), -1 Redis lost. */
int limiter_try(struct limiter *l, long *wait_ms, int *blocked);

/* Sleeps until a slot is granted, as the script says (no polling in between). Returns 0
 * when granted, -1 when *stop was set (the reservation is dropped) or Redis was lost
 * until then. *waited_ms (may be NULL) is the time slept. */
int limiter_acquire(struct limiter *l, const volatile sig_atomic_t *stop, long *waited_ms);

/* Like limiter_acquire(), but returns 1 as soon as the reserved slot is at most lead_ms
 * away, its reservation kept pending: the caller prepares its call (the scheduler's
 * pick), then limiter_acquire() sleeps the rest and confirms, or limiter_cancel() drops
 * it. 0: granted already; -1: *stop was set (the reservation is dropped). Spending the
 * preparation before the slot keeps the call's send time close to the time logged. */
int limiter_reserve(struct limiter *l, const volatile sig_atomic_t *stop, long lead_ms);

/* Drops the pending reservation, if any (a caller that gives up). */
void limiter_cancel(struct limiter *l);
/* Takes back the slot the last limiter_acquire() granted, when it was not used. */
void limiter_unuse(struct limiter *l);

/* KIE refused a call as over its limit (429) or under maintenance (455): every caller
 * sharing this limiter waits. Returns the pause in ms (0 when Redis was lost). *first is
 * 1 when this call started the pause (the others of the same storm join it). */
long limiter_penalize(struct limiter *l, const char *why, int *first);

#endif
