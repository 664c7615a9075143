/* budget.h — credits: the UTC day keys of the spend counters and budgets, the group
 * budgets (`kie budget`), the recovery sweep's healing of lost reservations, and a
 * reservation's release from C. The arithmetic itself is Lua (lua/lib/budget.lua and
 * lua/lib/spend.lua, included by the scripts that pick and finalize jobs).
 *
 *   <p>:spend:<yyyymmdd>         HASH  total, tasks, type:<t>, account:<a>, group:(other)
 *   <p>:spend:<yyyymmdd>:groups  ZSET  group -> credits, at most SPEND_GROUPS_MAX members
 *                                      (both expire SPEND_TTL_S after their last write)
 *   <p>:budget:group             HASH  group -> daily budget (credits)
 *   <p>:budget:<yyyymmdd>        HASH  reserved, spent, reserved|<g>, spent|<g>
 *   <p>:budget:models            HASH  <model>|n, <model>|sum (observed costs)
 *   <p>:budget:open              ZSET  "<yyyymmdd>|<jobId>" -> reserved at (ms)
 *
 * Must not: build a key inside a script (every key is built here), or call KIE. */
#ifndef KIE_BUDGET_H
#define KIE_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#include "pool/queue.h"

#define SPEND_GROUPS_MAX 1000          /* groups named per day; the rest in (other) */
#define SPEND_TTL_S (90L * 86400L)     /* spend counters are kept 90 days */
#define SPEND_DAYS_MAX 90
#define BUDGET_HEAL_AGE_MS 60000L      /* a reservation is looked at by the sweep after */
#define BUDGET_HEAL_BATCH 100          /* open reservations looked at per sweep */
#define BUDGET_GROUP_MAX 64            /* bytes of a group name */
#define BUDGET_MAX 1000000000000.0     /* credits: the largest budget */

/* The UTC day of epoch ms t as yyyymmdd (out: at least 9 bytes), days_back days before. */
void budget_day(int64_t t_ms, int days_back, char *out, size_t outlen);

/* "<p>:budget:<day>", "<p>:spend:<day>", "<p>:spend:<day>:groups". */
void budget_day_key(const struct queue *q, const char *day, char *out, size_t outlen);
void spend_day_key(const struct queue *q, const char *day, char *out, size_t outlen);
void spend_groups_key(const struct queue *q, const char *day, char *out, size_t outlen);

/* A group name a budget may be set for: 1..BUDGET_GROUP_MAX bytes of [A-Za-z0-9_.:@-].
 * 1 or 0. */
int budget_group_valid(const char *g);

/* Sets group's daily budget (credits > 0), or removes it (credits <= 0). 0 or -1 (q->err). */
int budget_group_set(struct queue *q, const char *group, double credits);

/* The recovery sweep's step: the open reservations older than age_ms whose job holds no
 * createTask or task in flight are released (or, for a finished job whose settlement was
 * lost, settled at their estimate): budget_heal.lua, at most BUDGET_HEAL_BATCH per call.
 * *healed counts them. 0 or -1 (Redis). */
int budget_heal(struct queue *q, int64_t now_ms, long age_ms, long *healed);

/* Gives back job_id's reservation (no task was made): budget_release.lua, on today's and
 * yesterday's keys of now_ms. *credits is the estimate given back (0: none held).
 * 0 or -1. */
int budget_release(struct queue *q, const char *job_id, int64_t now_ms, double *credits);

/* Jobs waiting over_budget in account acct's scheduling structure (<p>:sched:<acct>:
 * overBudget) go back to its ready set while today's budgets have room for them
 * (budget_unpark.lua; pool_budget: KIE_DAILY_CREDIT_BUDGET). *woken (may be NULL) counts
 * them. Called after `kie budget set` and every second by each worker: a new UTC day
 * releases them within a second. 0 or -1 (q->err). */
int budget_unpark(struct queue *q, const char *acct, long pool_budget, int64_t now_ms,
		  long *woken);

/* budget_unpark() on every scheduling structure of the pool (sched_accounts_list: each
 * account's, and any still listed with jobs), for a raise from `kie budget set` or the
 * page. *woken (may be NULL) sums them. 0, or -1 (q->err) when one of them failed (the
 * others were still tried). */
int budget_unpark_all(struct queue *q, long pool_budget, int64_t now_ms, long *woken);

/* Reads today's budget figures (the pool's: KIE_DAILY_CREDIT_BUDGET = pool_budget, and
 * each group's with a budget) into metrics_budgets(). 0 or -1 (Redis). */
int budget_gauges(struct queue *q, long pool_budget, int64_t now_ms);

#endif
