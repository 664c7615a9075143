/* spend_view.h — today's spend against the budgets and the accounts' state, one read for
 * `kie stats` (cli/credits.c) and the operator page (worker/web.c, GET /admin/api/spend):
 * the pool's budget (spent + reserved), each account's spend, balance and pauses, the
 * groups that spent most and every group with a budget, and the jobs waiting
 * over_budget. Keys: docs/protocol.md section 10 (<p>:spend:<day>, <p>:budget:<day>,
 * <p>:budget:group, <p>:balance, <p>:sched:<acct>:overBudget) and section 2 (<p>:pause,
 * <p>:pause:acct:<alias>).
 *
 * Must not: write. */
#ifndef KIE_SPEND_VIEW_H
#define KIE_SPEND_VIEW_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "pool/queue.h"

#define SPEND_VIEW_TOP 5        /* groups by today's spend */
#define SPEND_VIEW_BUDGETS 200  /* groups with a budget listed */
#define SPEND_VIEW_WAITING 20   /* over_budget jobs named */

/* {"day" (yyyymmdd, UTC), "total", "tasks" (today's spend counters), "budget"
 * (pool_budget: KIE_DAILY_CREDIT_BUDGET, 0 none), "spent", "reserved" (its day's
 * figures), "overBudget" (jobs waiting), "accounts": {alias: {"spent", "balance" (null
 * unknown)}}, "topGroups": [{"group","spent"[,"budget","reserved"]}] (the top
 * SPEND_VIEW_TOP by spend)}. With full = 1 also: each account's "balanceAt" (epoch ms
 * of the read, or null) and "pause" (its <p>:pause:acct:<alias> as stored, parsed when
 * JSON, with "ttlMs"; null when none), "pause" (the pool's <p>:pause, the same way;
 * "default" is always listed), "budgets": [{"group","budget","spent","reserved"}] (every
 * group with a budget, at most SPEND_VIEW_BUDGETS, by name), "waiting": [{"jobId",
 * "account","group","estimate"}] (the first SPEND_VIEW_WAITING over_budget jobs, one
 * account's structure after the other; "account" is the structure's name, "default"
 * with one account). "overBudget" and "waiting" cover every account's structure
 * (sched_accounts.h). NULL with err when Redis failed. */
cJSON *spend_view(struct queue *q, long pool_budget, int full, char *err, size_t errlen);

#endif
