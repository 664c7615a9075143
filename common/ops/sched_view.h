/* sched_view.h — the operator's view of the scheduling structure (pool/sched.h): queued
 * jobs by priority and by group, the oldest wait, in-flight counts, weights and caps; one
 * job's place and ETA; and the operator's settings (kie group weight|limit). Shared by
 * `kie stats`, `kie job show`, `kie group` and the worker's admin API.
 *
 * Each read returns a new cJSON the caller deletes, or NULL with err filled.
 * Must not: sit on a job's path. */
#ifndef KIE_SCHED_VIEW_H
#define KIE_SCHED_VIEW_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "pool/queue.h"

/* {"queuedByPriority": {"9": n, ...}, "ready": n, "delayed": n, "parked": n,
 *  "topGroups": [{"group", "queued", "inFlight", "weight", "limit"}...] (the top_n by
 *  backlog), "groups": n, "oldestWaitMs": ms (the oldest of each account's next 100 to
 *  go, null when none is ready), "picks": n, "accounts": {acct: {"ready", "delayed",
 *  "parked", "overBudget"}}}: every account's structure summed (sched_accounts.h; an
 *  account is listed when <p>:accounts names it or it holds jobs). */
cJSON *sched_view_stats(struct queue *q, int top_n, char *err, size_t errlen);

/* kie_position's answer for job_id, parsed. */
cJSON *sched_view_position(struct queue *q, const char *job_id, char *err, size_t errlen);

/* Sets group's weight (1..1000; 0 removes it: weight 1) or cap (n >= 1; 0 removes it). */
int sched_view_set(struct queue *q, const char *group, int limit, long n, char *err,
		   size_t errlen);

#endif
