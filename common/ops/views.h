/* views.h — the operator page's paged views of a pool and its search box (worker/web.c):
 * jobs waiting (the queue from its consuming end, the delayed set), tasks in flight (with
 * their next poll), uncertain jobs (with the time left in their window), completions and
 * dead letters per minute for the live chart, the createTask slots in use, and "where is
 * job X" by job id or task id. Reads only: plain commands or read-only scripts
 * (common/ops/lua/admin_*.lua), each bounded by its page size. docs/operations.md gives
 * the JSON.
 *
 * Every function takes a connected struct queue and returns a new cJSON the caller
 * deletes, or NULL with err filled (Redis unreachable or refused).
 *
 * Must not: write, or read a whole key whose size producers control (descriptors are
 * summarized by a script: id, type, size). */
#ifndef KIE_VIEWS_H
#define KIE_VIEWS_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "pool/queue.h"

#define VIEWS_PAGE_MAX 200      /* entries of one page at most */
#define VIEWS_MINUTES_MAX 60    /* the live chart's span at most */
#define VIEWS_RATES_SCAN 2000   /* events and dead letters read for it at most, each (as
				 * admin_stats's rates: ~30 ms of Redis for 2 x 2000 1-KiB entries) */

#define VIEWS_SCAN_MAX 20000   /* members walked at most by a filtered queued page */
#define VIEWS_GROUP_MAX 128

/* Jobs that wait, from the accounts' scheduling structures (pool/sched.h, the script
 * admin_sched_page.lua run on each; every structure of sched_accounts_list, or account's
 * alone when account is not NULL/""): from "ready" (in the order they go: position 0 is
 * picked next in its account), "delayed" (earliest due first), "parked" (at their group's
 * cap, by group) or "queue" (<p>:queue, not yet routed, from its consuming end);
 * priority 0..9 or -1 for any, group NULL/"" for any ("(default)": the default group).
 * With several accounts their entries come one account after the other (by name), each
 * with its position in its own account's line; offset and limit count in that list.
 * {"from", "counts": {"ready", "delayed", "parked", "notRouted"} (summed), "accounts":
 * {acct: {"ready", "delayed", "parked"}} (those <p>:accounts names and any holding jobs),
 * "matched", "capped" (a filtered walk stopped at VIEWS_SCAN_MAX in an account), "offset",
 * "now", "pace" (ready: picks/s, kie_position's, the first account's on the page; else
 * null), "entries": [{"jobId", "priority", "group", "queuedAt", "type", "bytes",
 * "position", "account" (null: not routed yet), "dueAt" (delayed), "eta" (ready, epoch
 * ms, at its account's pace)}]}. */
cJSON *views_queued(struct queue *q, const char *from, int priority, const char *group,
		    const char *account, long offset, long limit, char *err, size_t errlen);

/* Tasks being polled, <p>:poll:due by next poll: {"total", "notPromoted" (LLEN
 * <p>:polling), "offset", "now", "entries": [{"taskId", "jobId", "type", "createdAt",
 * "ageMs", "polls", "nextPollAt", "nextPollInMs" (negative: overdue, or a poller holds
 * it), and "kieState", "status", "copyTries" when the task hash has them}]}. */
cJSON *views_in_flight(struct queue *q, long offset, long limit, char *err, size_t errlen);

/* Jobs whose createTask outcome is unknown, <p>:uncertain by the end of their window:
 * {"total", "offset", "now", "entries": [{"jobId", "windowEndsAt", "leftMs", "type",
 * "attempts", "workerId", "error", "updatedAt"}]}. */
cJSON *views_uncertain(struct queue *q, long offset, long limit, char *err, size_t errlen);

/* Completions, failures and dead letters per minute over the last `minutes` whole minutes
 * and the current one (admin_rates_minutes.lua): {"minutes", "capped", "points":
 * [{"minute": "2026-11-24T12:03", "t": epoch seconds, "completed", "failed", "dead"}]},
 * one point per minute, oldest first, zeros included. */
cJSON *views_rates_minutes(struct queue *q, long minutes, char *err, size_t errlen);

/* The account's createTask slots in use now: {"used": calls logged in the window ending
 * now, "reserved": calls reserved for later, "limit", "windowMs"}; account_id as
 * admin_stats takes it (NULL or "": {"used": null}). */
cJSON *views_create_slots(struct queue *q, const char *account_prefix, const char *account_id,
			  long limit, long window_ms, char *err, size_t errlen);

/* Which job a search term names: a job id with a job hash ("by": "job"), a task id with a
 * task hash ("task") or named by a completion event ("event"), else the term itself as a
 * job id ("id": the job page then says where it is, or that it is unknown). {"term",
 * "by", "jobId", "taskId" (null unless found by task)}. The term must be a job id's
 * characters (job_id_valid); NULL with err otherwise. */
cJSON *views_search(struct queue *q, const char *term, char *err, size_t errlen);

/* The descriptor a job hash keeps (its `raw` field, while the pool holds it: uncertain,
 * and from routing on once the scheduling issue keeps it) as a string, at most max_bytes
 * kept (a longer one gives its first RCONN_HEAD_BYTES); null when the hash has none. NULL with err when Redis failed. */
cJSON *views_job_descriptor(struct queue *q, const char *job_id, size_t max_bytes, char *err,
			    size_t errlen);

/* The history counters (pool/history.h, lib/history.lua) of the last n minutes (days 0,
 * n 1..HISTORY_MINUTES) or the last n UTC days (days 1, n 1..HISTORY_DAYS), the current
 * one included, summed by step periods per point: {"unit": "minute"|"day", "step",
 * "now", "boundsMs": the buckets' bounds, "points": [{"t" (epoch s, the first period),
 * "completed", "failed", "dead", "cancelled", "created", "refused", "waitP50",
 * "waitP95", "genP50", "genP95" (ms: the bound of the bucket holding it; null when none),
 * "wait", "gen" ({"<le>": n}), "credits" (days: <p>:spend:<day>'s total)}]}. */
cJSON *views_history(struct queue *q, int days, long n, long step, char *err, size_t errlen);

#endif
