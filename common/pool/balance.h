/* balance.h — each account's credit balance, read from KIE at most once a minute across
 * the pool and shared through Redis, for the kie_account_balance gauge (metrics.h) and
 * the operator's views.
 *
 *   <p>:balance                  HASH   <alias>|credits, <alias>|at (epoch ms of the read)
 *   <p>:balance:lease:<alias>    STRING the worker that may ask KIE now; SET NX PX
 *                                       BALANCE_LEASE_MS: one GET /api/v1/chat/credit
 *                                       per account per minute, whatever the pool's size
 *
 * Must not: keep a token (the caller's accounts own them), or ask KIE without the lease. */
#ifndef KIE_BALANCE_H
#define KIE_BALANCE_H

#include <stdint.h>

#include "config/config.h"
#include "kie/accounts.h"
#include "pool/queue.h"

#define BALANCE_LEASE_MS 60000L  /* one balance query per account per this, pool-wide */
#define BALANCE_TIMEOUT_MS 10000L /* one balance query may take this long */
#define BALANCE_CHECK_MS 1000L   /* at most this often a worker looks (its lease, or the value) */

/* One thread's prober: a KIE client per account, made on first use. */
struct balance_prober {
	struct kie_client **clients;
	int n;
	int64_t next_ms; /* monotonic: the next look */
};

void balance_prober_init(struct balance_prober *b, const struct accounts *a);
void balance_prober_free(struct balance_prober *b);

/* At most once per BALANCE_CHECK_MS (now_mono_ms: a monotonic clock): for each account,
 * asks KIE for the balance when this worker takes the lease and writes it to Redis, else
 * reads the value another worker wrote; either way metrics_balance() gets it. A failed
 * query is logged and leaves the last value. */
void balance_tick(struct balance_prober *b, struct queue *q, const struct accounts *a,
		  const struct config *cfg, int64_t now_mono_ms);

/* The last balance written for alias: *known 0 when none. 0 or -1 (Redis, q->err). */
int balance_read(struct queue *q, const char *alias, double *credits, int64_t *at_ms,
		 int *known);

#endif
