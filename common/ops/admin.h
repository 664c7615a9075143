/* admin.h — the operator's view of a pool and its few actions, shared by `kie` (cli/) and
 * the worker's web page (worker/web.c): pool stats, one job's story, the dead letters
 * (list, show, retry, purge). Reads are plain commands or read-only scripts; each retry or
 * purge of one dead entry is one Lua script, so a job is never both in the queue and in
 * the dead letters. docs/cli.md documents the JSON these functions return (their field
 * names are the CLI's --json and the web API's, and stay stable).
 *
 * Every function takes a connected struct queue (queue_init) and returns a new cJSON the
 * caller deletes, or NULL with err filled (Redis unreachable or refused: q->err's text).
 *
 * Must not: write but through one-step scripts, or sit on a job's path. */
#ifndef KIE_ADMIN_H
#define KIE_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "pool/queue.h"

/* Reason classes of dead letters (docs/cli.md, "Dead letters"): from the entry's source
 * and reason, as the worker writes them. */
enum admin_reason_class {
	ADMIN_RC_INVALID = 0,         /* source parse or prompt: the descriptor is bad */
	ADMIN_RC_OVERSIZED,           /* over KIE_JOB_MAX_BYTES: only a head is kept */
	ADMIN_RC_KIE_REJECTED,        /* KIE refused the job (400/404/422/451/505) */
	ADMIN_RC_ATTEMPTS_EXHAUSTED,  /* retryable errors until maxAttempts */
	ADMIN_RC_UNCERTAIN,           /* createTask's outcome unknown: a task may exist */
	ADMIN_RC_DUPLICATE,           /* a second copy of a job that ran or runs */
	ADMIN_RC_RECOVERY,            /* taken back from too many dead workers */
	ADMIN_RC_OTHER,
};
#define ADMIN_RC_COUNT (ADMIN_RC_OTHER + 1)
const char *admin_reason_class_str(enum admin_reason_class c);
/* 0 and *out set, or -1 for an unknown name. */
int admin_reason_class_parse(const char *s, enum admin_reason_class *out);

/* Which dead letters a list, retry or purge takes. A NULL/0 field matches anything. */
struct admin_filter {
	const char *ref;       /* one entry: a job id, or "@" + a prefix (>= 8 hex) of its ref */
	const char *type;      /* the descriptor's "type" */
	int reason_class;      /* an enum admin_reason_class, or -1 for any */
	int64_t older_than_ms; /* failed at least this long ago (the worker's clock) */
	long limit;            /* at most this many entries (0: no limit) */
	long offset;           /* list only: skip this many matches first */
};
void admin_filter_init(struct admin_filter *f);
/* 1 when s names a dead letter: a job id, or '@' and 8 to 16 lowercase hex digits of an
 * entry's ref (enough to be unambiguous in a capped list). */
int admin_ref_valid(const char *s);

/* Pool stats: depths, workers and their in-flight jobs, rates from the timestamps of the
 * newest events and dead letters, counters, pause, limiter state. account_id is the
 * limiter's (limiter_account_id() of the API token), or NULL/"" when unknown (no
 * limiter section then). */
cJSON *admin_stats(struct queue *q, const char *account_prefix, const char *account_id,
		   char *err, size_t errlen);
/* Several accounts (KIE_ACCOUNTS_FILE): s's "limiters", one limiter section per account
 * (n of them: aliases[i], ids[i] its limiter id), each with its "alias". 0, or -1 (err). */
int admin_stats_add_limiters(struct queue *q, const char *account_prefix,
			     const char *const *aliases, const char *const *ids, int n, cJSON *s,
			     char *err, size_t errlen);

/* What a job is now, as `kie job show` tells it:
 *   queued     its descriptor waits: in <p>:queue (a producer's, not claimed yet: no job
 *              hash), in <p>:delayed (retry_wait), or its hash says queued
 *   in_flight  a runner holds it (a live lease: claimed), createTask runs (creating), or
 *              its task is polled (polling)
 *   uncertain  createTask's outcome is unknown; its window has uncertainLeftMs left
 *   dead       in the dead letters (its hash says so, or only a dead letter is left)
 *   finished   completed or failed (its hash, or only its event is left)
 *   unknown    Redis knows nothing of it: never pushed, its records expired, or in the
 *              part of a long queue not scanned (ADMIN_QUEUE_SCAN_MAX) */
enum admin_job_status {
	ADMIN_JOB_UNKNOWN = 0, ADMIN_JOB_QUEUED, ADMIN_JOB_IN_FLIGHT, ADMIN_JOB_UNCERTAIN,
	ADMIN_JOB_DEAD, ADMIN_JOB_FINISHED,
};
const char *admin_job_status_str(enum admin_job_status s);

/* A job without a hash is looked for in at most this many entries of <p>:queue (all of a
 * shorter queue; else half from the consuming end, half from the newest) and of
 * <p>:delayed (earliest due first): one read-only script, admin_find_queued.lua (about
 * 20-80 ms of Redis for 10000 descriptors of 1 KiB). */
#define ADMIN_QUEUE_SCAN_MAX 10000

/* One job: {"jobId", "state" (the hash's, "unknown" without one), "status"
 * (admin_job_status_str), "uncertainLeftMs" (uncertain), "queue" (when its descriptor was
 * looked for: {"in": "queue"|"delayed"|null, "dueAt", "length", "scanned", "delayedSize",
 * "delayedScanned"}), "now" (Redis's clock, ms), "job" (its hash, without the kept
 * descriptor, whose size is given), "task" (its task record), "events", "dead" (the
 * completion events and dead letters that name it)}. *found = 0 when the status is
 * unknown. */
cJSON *admin_job_show(struct queue *q, const char *job_id, int *found, char *err, size_t errlen);

/* Dead letters that match f, newest first: {"total": dead letters in <p>:dead,
 * "matched": how many match f (all of them without a filter), "matchedLowerBound": true
 * when more than ADMIN_SCAN_MAX entries would have had to be read to count them all,
 * "shown": the entries returned (after f->offset matches, at most f->limit),
 * "entries": [...]}; with full = 1 each entry also carries its raw descriptor. At most
 * ADMIN_SCAN_MAX entries of <p>:dead are read. */
#define ADMIN_SCAN_MAX 100000
cJSON *admin_dead_list(struct queue *q, const struct admin_filter *f, int full, char *err,
		       size_t errlen);

/* Retries (back to the queue, LPUSH, job hash reset to queued with 0 attempts) or purges
 * the dead letters that match f, one atomic script per entry. A retry is refused for an
 * entry without its original bytes (oversized), a duplicate copy, a job that has a task
 * or is in the pool again, and an uncertain one unless allow_uncertain (a task may exist:
 * the operator accepts a possible second one). dry_run: the same checks, nothing changed.
 * Returns {"action","dryRun","selected","done","refused","gone","results":[{ref,jobId,
 * outcome,why}]}; outcome is retried|purged|would_retry|would_purge|refused|gone. */
cJSON *admin_dead_retry(struct queue *q, const struct admin_filter *f, int allow_uncertain,
			int dry_run, char *err, size_t errlen);
cJSON *admin_dead_purge(struct queue *q, const struct admin_filter *f, int dry_run, char *err,
			size_t errlen);

/* The newest completion events of <p>:results (at most limit, <= 200), parsed. */
cJSON *admin_completions(struct queue *q, long limit, char *err, size_t errlen);

/* Parses "90s", "15m", "2h", "7d", "500ms" or a number of seconds into ms: a whole
 * number of 1 to 19 digits and an optional unit, at most ADMIN_DURATION_MAX_MS
 * (util_parse_duration_ms). NaN, fractions, signs, exponents and overflow are refused:
 * 0 or -1. */
#define ADMIN_DURATION_MAX_MS (36500LL * 86400000) /* 100 years */
int admin_parse_duration(const char *s, int64_t *ms);

/* ---- the page's JSON API (worker/web.c): what a request asks, checked ---- */

/* The longest timed pause (the page's for and forMs, `kie pause --for`): a year. */
#define ADMIN_PAUSE_MAX_MS (366LL * 86400 * 1000)

/* The filter fields of a request: type, reason (a class name) and olderThan (a
 * duration), each NULL when absent; "" counts as absent (a query string's empty field).
 * Fills f (strings point into the arguments). Returns NULL, or a sentence naming the
 * field at fault. */
const char *admin_filter_of(const char *type, const char *reason, const char *older,
			    struct admin_filter *f);

/* A count of a query string (limit, offset): NULL (absent) gives def; else a whole
 * number within min..max (util_parse_int). Returns 0, or -1 with why naming name. */
int admin_count_arg(const char *name, const char *s, long def, long min, long max, long *out,
		    char *why, size_t whylen);

/* What a POST body asks (an object, as parsed by cJSON). Every field has one type: a
 * wrong one is refused, never read as absent (a "limit":"5" or "dryRun":"true" that
 * counted as absent would purge more than asked). */
struct admin_body {
	struct admin_filter f;  /* dead/retry, dead/purge: ref, type, reason, olderThan, limit */
	int all, dry_run, allow_uncertain;
	long expect;            /* dead/retry, dead/purge: the count the operator confirmed
				 * (its dry run's); 0: no check (worker/web.c refuses when more
				 * match now, and acts on at most this many) */
	long for_ms;            /* pause: for or forMs in ms, 0 = until lifted */
	const char *reason;     /* pause: the reason, NULL when absent */
	char why[120];          /* where a refusal naming a field is written */
};
/* Reads the body of action what ("dead/retry", "dead/purge", "pause", "resume") into b
 * (strings point into in). dead/retry and dead/purge: ref (a job id or @REF), all, type,
 * reason, olderThan, limit (1..ADMIN_SCAN_MAX, absent: no limit), dryRun, allowUncertain
 * (retry only), expect (1..ADMIN_SCAN_MAX, with all or a filter); one of ref, all or a
 * filter is required. pause: reason (a string), for (a duration as `kie pause --for`
 * takes it, util_parse_duration_ms: "15m", a plain number of seconds;
 * 1 ms..ADMIN_PAUSE_MAX_MS) or forMs (a whole number of ms, the same bounds; not both;
 * absent or null: until lifted); resume: no field. Any other member is refused (a typo
 * read as absent would select more). Returns NULL, or a sentence naming the field at
 * fault, static or in b->why (also for an unknown action: *unknown = 1). */
const char *admin_body_parse(const char *what, const cJSON *in, struct admin_body *b,
			     int *unknown);

#endif
