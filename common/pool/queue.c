/* queue.c — the commands behind queue.h, and the arguments of the scripts in
 * common/pool/lua/ (one file per atomic step, its KEYS and ARGV in its header), run with
 * EVALSHA by script.c. Every key a script touches is built here and passed in KEYS. */
#include "pool/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/util.h"
#include "lua_scripts.h"
#include "pool/history.h"

void queue_init(struct queue *q, struct rconn *r, const char *prefix, const char *worker_id,
		long record_ttl_s, long results_max)
{
	memset(q, 0, sizeof(*q));
	q->r = r;
	util_strlcpy(q->prefix, prefix, sizeof(q->prefix));
	util_strlcpy(q->worker_id, worker_id ? worker_id : "", sizeof(q->worker_id));
	q->record_ttl_s = record_ttl_s;
	q->results_max = results_max;
	q->check_own = 1;
	q->dead_max = 10000;
	q->reply_max = 1000;      /* the defaults of KIE_REPLY_MAX and KIE_REPLY_TTL_S */
	q->reply_ttl_s = 604800;
}

void queue_key(const struct queue *q, char *out, size_t outlen, const char *suffix)
{
	snprintf(out, outlen, "%s:%s", q->prefix, suffix);
}

/* Builds <p>:<kind>:<id>. */
static void key2(const struct queue *q, char *out, size_t outlen, const char *kind,
		 const char *id)
{
	snprintf(out, outlen, "%s:%s:%s", q->prefix, kind, id);
}

/* Runs a script of common/pool/lua/ (script_run: EVALSHA, EVAL on NOSCRIPT) with keys and
 * args (args may carry lengths for binary data; a NULL lens array means C strings).
 * Retries across reconnects. */
static redisReply *eval(struct queue *q, const struct script *s, int nkeys, const char **keys,
			int nargs, const char **args, const size_t *arglens)
{
	redisReply *rep = script_run(q->r, s, 1, nkeys, keys, nargs, args, arglens);

	if (rep && rep->type == REDIS_REPLY_ERROR) {
		/* an error that repeats (OOM, READONLY, MISCONF) is logged once per 10 s */
		int64_t now = util_monotonic_ms();
		if (now >= q->next_err_log) {
			log_error(NULL, NULL, "Redis script error (%s): %s%s", s->name, rep->str,
				  q->errs_quiet ? " (repeated errors not logged)" : "");
			q->next_err_log = now + 10000;
			q->errs_quiet = 0;
		} else {
			q->errs_quiet++;
		}
		snprintf(q->err, sizeof(q->err), "Redis refused the step: %s", rep->str);
	} else if (!rep) {
		snprintf(q->err, sizeof(q->err), "Redis unreachable");
	}
	if (!rep || rep->type == REDIS_REPLY_ERROR)
		q->check_own = 1; /* a release may not have happened */
	return rep;
}

redisReply *queue_eval(struct queue *q, const struct script *s, int nkeys, const char **keys,
		       int nargs, const char **args, const size_t *arglens)
{
	return eval(q, s, nkeys, keys, nargs, args, arglens);
}

int queue_done(struct queue *q, redisReply *rep)
{
	int rc = 0;
	if (!rep) {
		snprintf(q->err, sizeof(q->err), "Redis could not be reached");
		rc = -1;
	} else if (rep->type == REDIS_REPLY_ERROR) {
		snprintf(q->err, sizeof(q->err), "Redis: %s", rep->str);
		rc = -1;
	}
	freeReplyObject(rep);
	return rc;
}

static int ok_reply(redisReply *rep)
{
	int ok = rep && rep->type != REDIS_REPLY_ERROR;
	if (rep)
		freeReplyObject(rep);
	return ok ? 0 : -1;
}

static void now_str(char *out, size_t n)
{
	snprintf(out, n, "%lld", (long long)util_now_ms());
}

/* The oldest descriptor in list dst, read only when one can be there (check_own, or a
 * lost connection since the last look); out->type REDIS_REPLY_NIL when none. */
static int own_leftover(struct queue *q, const char *dst, size_t max_keep,
			struct rconn_bulk *out)
{
	const char *argv[3];
	memset(out, 0, sizeof(*out));
	out->type = REDIS_REPLY_NIL;
	if (q->check_own || q->r->drops != q->drops_seen) {
		unsigned long drops = q->r->drops;
		argv[0] = "LINDEX"; argv[1] = dst; argv[2] = "-1";
		if (rconn_bulk_bounded(q->r, 3, argv, NULL, max_keep, out) != 0)
			return -1;
		if (out->type == REDIS_REPLY_NIL) {
			q->check_own = 0;
			q->drops_seen = drops;
		}
	}
	return 0;
}

int queue_leftover(struct queue *q, size_t max_keep, struct rconn_bulk *out)
{
	char dst[300];
	key2(q, dst, sizeof(dst), "processing", q->worker_id);
	return own_leftover(q, dst, max_keep, out);
}

static int claim_list(struct queue *q, const char *src_name, const char *dst_kind,
		      double timeout_s, size_t max_keep, struct rconn_bulk *out, int *leftover)
{
	char src[128], dst[300], tmo[32];
	const char *argv[6];

	memset(out, 0, sizeof(*out));
	*leftover = 0;
	queue_key(q, src, sizeof(src), src_name);
	key2(q, dst, sizeof(dst), dst_kind, q->worker_id);

	/* Our list is empty whenever we are idle, unless a BLMOVE's reply was lost with the
	 * connection or a release failed: then the oldest such descriptor is ours to redo.
	 * It is read at start, after either of those, and after an idle BLMOVE timeout
	 * (cheap then), until found empty; back-to-back claims under load skip it. Both
	 * reads stream the value (rconn_bulk_bounded): an oversized one is never held. */
	if (own_leftover(q, dst, max_keep, out) != 0)
		return -1;
	if (out->type == REDIS_REPLY_STRING) {
		*leftover = 1;
		return 0;
	}

	snprintf(tmo, sizeof(tmo), "%.3f", timeout_s);
	argv[0] = "BLMOVE"; argv[1] = src; argv[2] = dst; argv[3] = "RIGHT"; argv[4] = "LEFT";
	argv[5] = tmo;
	if (rconn_bulk_bounded(q->r, 6, argv, NULL, max_keep, out) != 0)
		return -1;
	if (out->type == REDIS_REPLY_NIL) {
		q->check_own = 1; /* idle: look again before the next wait */
	} else if (out->type == REDIS_REPLY_ERROR) {
		int64_t now = util_monotonic_ms();
		snprintf(q->err, sizeof(q->err), "Redis refused BLMOVE: %s", out->err);
		if (now >= q->next_err_log) { /* OOM, READONLY, ...: once per 10 s */
			log_error(NULL, NULL, "BLMOVE failed: %s%s", out->err,
				  strstr(out->err, "unknown command") ? " (Redis 6.2 or newer is required)"
								      : "");
			q->next_err_log = now + 10000;
		}
		util_sleep_ms(1000);
		return -1;
	}
	return 0;
}

int queue_claim(struct queue *q, double timeout_s, size_t max_keep, struct rconn_bulk *out,
		int *leftover)
{
	return claim_list(q, "queue", "processing", timeout_s, max_keep, out, leftover);
}

int queue_callback_claim(struct queue *q, double timeout_s, size_t max_keep,
			 struct rconn_bulk *out, int *leftover)
{
	return claim_list(q, "callbacks", "callbacks:processing", timeout_s, max_keep, out,
			  leftover);
}

int queue_callback_release(struct queue *q, const char *raw, size_t len)
{
	char proc[300];
	const char *argv[] = {"LREM", proc, "1", raw};
	size_t lens[] = {4, 0, 1, len};
	key2(q, proc, sizeof(proc), "callbacks:processing", q->worker_id);
	lens[1] = strlen(proc);
	return ok_reply(rconn_argv_retry(q->r, 4, argv, lens));
}

int queue_callback_release_oversized(struct queue *q, const struct rconn_bulk *b)
{
	char proc[300], stats[128], n[32];
	const char *keys[] = {proc, stats};
	const char *args[] = {n, b->head};
	size_t lens[2];
	key2(q, proc, sizeof(proc), "callbacks:processing", q->worker_id);
	queue_key(q, stats, sizeof(stats), "stats");
	snprintf(n, sizeof(n), "%zu", b->len);
	lens[0] = strlen(n);
	lens[1] = b->head_len;
	return ok_reply(eval(q, &lua_callback_drop_oversized, 2, keys, 2, args, lens));
}

int queue_replace_claimed(struct queue *q, const char *old_raw, size_t old_len,
			  const char *new_raw, size_t new_len)
{
	char proc[300];
	const char *keys[] = {proc};
	const char *args[] = {old_raw, new_raw};
	size_t lens[] = {old_len, new_len};
	key2(q, proc, sizeof(proc), "processing", q->worker_id);
	return ok_reply(eval(q, &lua_replace_claimed, 1, keys, 2, args, lens));
}

/* owns(job, cid, epoch): the fencing check every step after the claim makes. */

/* Runs a step that must not be skipped (it carries a paid task's id): an error reply
 * (OOM, READONLY, MISCONF, BUSY, ...) is not a lost connection, so it is retried with
 * backoff (100 ms doubling to 5 s) until it succeeds or the worker's hard stop. */
static redisReply *eval_must(struct queue *q, const struct script *script, int nkeys, const char **keys,
			     int nargs, const char **args, const size_t *arglens)
{
	long backoff = 100;
	for (;;) {
		redisReply *rep = eval(q, script, nkeys, keys, nargs, args, arglens);
		if (!rep || rep->type != REDIS_REPLY_ERROR)
			return rep;
		freeReplyObject(rep);
		for (long t = 0; t < backoff; t += 50) {
			if (q->r->stop && *q->r->stop)
				return NULL;
			util_sleep_ms(50);
		}
		backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
	}
}

static const char *const claim_names[] = {"claimed", "takeover", "has_task", "finished",
					  "owned", "uncertain", "too_many_recoveries", "paused",
					  "queued", "delayed", "cancelled", "queued_already",
					  "started", "not_held", "over_budget"};

const char *queue_claim_outcome_str(enum claim_outcome c)
{
	return (unsigned)c <= CLAIM_OVER_BUDGET ? claim_names[c] : "?";
}

int queue_claim_outcome_parse(const char *s, enum claim_outcome *out)
{
	for (int i = 0; i <= CLAIM_OVER_BUDGET; i++)
		if (strcmp(s, claim_names[i]) == 0) {
			*out = (enum claim_outcome)i;
			return 0;
		}
	return -1;
}

int queue_job_creating(struct queue *q, const char *job_id, long epoch, const char *raw,
		       size_t len, long *attempts, int *fenced, int *paused)
{
	/* returns the attempt number, -1 when the job is not this consumer's any more, -2
	 * when the pool is paused */
	char key[300], pause[128], now[32], ep[32];
	const char *keys[] = {key, pause};
	const char *args[] = {now, q->worker_id, ep, raw ? raw : ""};
	size_t lens[4];
	redisReply *rep;

	*fenced = *paused = 0;
	key2(q, key, sizeof(key), "job", job_id);
	queue_key(q, pause, sizeof(pause), "pause");
	now_str(now, sizeof(now));
	snprintf(ep, sizeof(ep), "%ld", epoch);
	for (int i = 0; i < 4; i++)
		lens[i] = i == 3 ? (raw ? len : 0) : strlen(args[i]);
	rep = eval(q, &lua_job_creating, 2, keys, 4, args, lens);
	if (rep && rep->type == REDIS_REPLY_INTEGER) {
		if (rep->integer == -2)
			*paused = 1;
		else if (rep->integer < 0)
			*fenced = 1;
		else
			*attempts = (long)rep->integer;
	}
	return ok_reply(rep);
}

/* record_task.lua with mode "0" (record), "1" (also push onto <p>:polling) or "h" (also
 * hand off: raw is the claimed descriptor). */
static int record_task(struct queue *q, const char *job_id, const char *task_id,
		       const char *type, const char *reply_to, const char *record_json,
		       const char *job_meta_json, long attempts, const char *mode, const char *raw,
		       size_t len, enum record_outcome *out)
{
	char jkey[300], tkey[KIE_TASK_ID_MAX_BYTES + 200], unc[128], poll[128], stats[128];
	char due[128], proc[300], rec[128], now[32], att[32], first[32], chan[128];
	char hmin[HISTORY_KEY_MAX], hday[HISTORY_KEY_MAX];
	const char *keys[] = {jkey, tkey, unc, poll, stats, due, proc, rec, hmin, hday};
	const char *args[] = {task_id, job_id, now, type ? type : "", reply_to ? reply_to : "",
			      record_json ? record_json : "", job_meta_json ? job_meta_json : "",
			      att, mode, first, raw ? raw : "", q->worker_id, chan};
	size_t lens[13];
	int64_t t = util_now_ms();
	redisReply *rep;

	*out = RECORD_RECORDED;
	key2(q, jkey, sizeof(jkey), "job", job_id);
	key2(q, tkey, sizeof(tkey), "task", task_id);
	queue_key(q, unc, sizeof(unc), "uncertain");
	queue_key(q, poll, sizeof(poll), "polling");
	queue_key(q, stats, sizeof(stats), "stats");
	queue_key(q, due, sizeof(due), "poll:due");
	key2(q, proc, sizeof(proc), "processing", q->worker_id);
	queue_key(q, rec, sizeof(rec), "recoveries");
	snprintf(now, sizeof(now), "%lld", (long long)t);
	snprintf(first, sizeof(first), "%lld", (long long)(t + q->poll_initial_ms));
	snprintf(att, sizeof(att), "%ld", attempts);
	queue_key(q, chan, sizeof(chan), "events"); /* i19: job.started */
	for (int i = 0; i < 13; i++)
		lens[i] = i == 10 ? (raw ? len : 0) : strlen(args[i]);
	history_keys(q->prefix, t, hmin, hday); /* i21 */
	rep = eval_must(q, &lua_record_task, 10, keys, 13, args, lens);
	if (rep && rep->type == REDIS_REPLY_STRING) {
		if (strcmp(rep->str, "same") == 0)
			*out = RECORD_SAME;
		else if (strcmp(rep->str, "duplicate") == 0)
			*out = RECORD_DUPLICATE;
		else if (strcmp(rep->str, "dead") == 0)
			*out = RECORD_DEAD;
	}
	return ok_reply(rep);
}

int queue_record_task(struct queue *q, const char *job_id, const char *task_id,
		      const char *type, const char *reply_to, const char *record_json,
		      const char *job_meta_json, long attempts, int push, enum record_outcome *out)
{
	return record_task(q, job_id, task_id, type, reply_to, record_json, job_meta_json,
			   attempts, push ? "1" : "0", NULL, 0, out);
}

int queue_record_task_handoff(struct queue *q, const char *raw, size_t len, const char *job_id,
			      const char *task_id, const char *type, const char *reply_to,
			      const char *record_json, const char *job_meta_json, long attempts,
			      enum record_outcome *out)
{
	return record_task(q, job_id, task_id, type, reply_to, record_json, job_meta_json,
			   attempts, "h", raw, len, out);
}

int queue_handoff_to_polling(struct queue *q, const char *raw, size_t len, const char *job_id,
			     const char *task_id)
{
	/* The task goes to the pollers whether or not this consumer still holds the
	 * descriptor (a fenced runner's task is collected too); the copy is released. */
	char due[128], proc[300], rec[128], jkey[300], first[32];
	const char *keys[] = {due, proc, rec, jkey};
	const char *args[] = {task_id, raw, q->worker_id, first};
	size_t lens[] = {strlen(task_id), len, strlen(q->worker_id), 0};
	queue_key(q, due, sizeof(due), "poll:due");
	key2(q, proc, sizeof(proc), "processing", q->worker_id);
	queue_key(q, rec, sizeof(rec), "recoveries");
	key2(q, jkey, sizeof(jkey), "job", job_id);
	snprintf(first, sizeof(first), "%lld", (long long)(util_now_ms() + q->poll_initial_ms));
	lens[3] = strlen(first);
	return ok_reply(eval_must(q, &lua_handoff, 4, keys, 4, args, lens));
}

/* LREM this consumer's copy; requeue: RPUSH it back to the consuming end of the queue
 * and, when this consumer owns its job (epoch > 0), give the ownership up; else forget
 * its recovery count. */
static int release_own(struct queue *q, const char *raw, size_t len, int requeue,
		       const char *job_id, long epoch)
{
	char proc[300], queue[128], rec[128], jkey[300], ep[32];
	const char *keys[] = {proc, queue, rec, jkey};
	const char *args[] = {raw, requeue ? "1" : "0", ep, q->worker_id};
	size_t lens[4];
	key2(q, proc, sizeof(proc), "processing", q->worker_id);
	queue_key(q, queue, sizeof(queue), "queue");
	queue_key(q, rec, sizeof(rec), "recoveries");
	key2(q, jkey, sizeof(jkey), "job", job_id ? job_id : "-");
	snprintf(ep, sizeof(ep), "%ld", job_id ? epoch : 0);
	lens[0] = len;
	for (int i = 1; i < 4; i++)
		lens[i] = strlen(args[i]);
	return ok_reply(eval_must(q, &lua_release_copy, 4, keys, 4, args, lens));
}

int queue_unclaim(struct queue *q, const char *raw, size_t len, const char *job_id, long epoch)
{
	return release_own(q, raw, len, 1, job_id, epoch);
}

int queue_release_copy(struct queue *q, const char *raw, size_t len)
{
	return release_own(q, raw, len, 0, NULL, 0);
}

int queue_retry_later(struct queue *q, const char *raw, size_t len, const char *job_id,
		      long epoch, int64_t due_ms, const char *error)
{
	char proc[300], delayed[128], jkey[300], rec[128], stats[128], due[32], now[32], ep[32];
	const char *keys[] = {proc, delayed, jkey, rec, stats};
	const char *args[] = {raw, due, error, now, q->worker_id, ep};
	size_t lens[6];
	key2(q, proc, sizeof(proc), "processing", q->worker_id);
	queue_key(q, delayed, sizeof(delayed), "delayed");
	key2(q, jkey, sizeof(jkey), "job", job_id);
	queue_key(q, rec, sizeof(rec), "recoveries");
	queue_key(q, stats, sizeof(stats), "stats");
	snprintf(due, sizeof(due), "%lld", (long long)due_ms);
	snprintf(ep, sizeof(ep), "%ld", epoch);
	now_str(now, sizeof(now));
	lens[0] = len;
	for (int i = 1; i < 6; i++)
		lens[i] = strlen(args[i]);
	return ok_reply(eval(q, &lua_job_retry, 5, keys, 6, args, lens));
}

int queue_requeue_front(struct queue *q, const char *raw, size_t len, const char *job_id,
			long epoch)
{
	char proc[300], queue[128], jkey[300], now[32], ep[32];
	const char *keys[] = {proc, queue, jkey};
	const char *args[] = {raw, now, q->worker_id, ep};
	size_t lens[4];
	key2(q, proc, sizeof(proc), "processing", q->worker_id);
	queue_key(q, queue, sizeof(queue), "queue");
	key2(q, jkey, sizeof(jkey), "job", job_id);
	now_str(now, sizeof(now));
	snprintf(ep, sizeof(ep), "%ld", epoch);
	lens[0] = len;
	for (int i = 1; i < 4; i++)
		lens[i] = strlen(args[i]);
	return ok_reply(eval(q, &lua_job_requeue_front, 3, keys, 4, args, lens));
}

int queue_job_uncertain(struct queue *q, const char *raw, size_t len, const char *job_id,
			long epoch, long window_ms, const char *reason)
{
	/* The job's createTask outcome is unknown: its descriptor moves into the job hash
	 * (raw) and its id into <p>:uncertain until now + window (Redis's clock), where a
	 * callback, the late recording of its task, or the window's end decides. */
	char proc[300], jkey[300], unc[128], stats[128], now[32], ep[32], win[32];
	const char *keys[] = {proc, jkey, unc, stats};
	const char *args[] = {raw, now, q->worker_id, ep, win, reason, job_id};
	size_t lens[7];
	key2(q, proc, sizeof(proc), "processing", q->worker_id);
	key2(q, jkey, sizeof(jkey), "job", job_id);
	queue_key(q, unc, sizeof(unc), "uncertain");
	queue_key(q, stats, sizeof(stats), "stats");
	now_str(now, sizeof(now));
	snprintf(ep, sizeof(ep), "%ld", epoch);
	snprintf(win, sizeof(win), "%ld", window_ms);
	lens[0] = len;
	for (int i = 1; i < 7; i++)
		lens[i] = strlen(args[i]);
	return ok_reply(eval_must(q, &lua_job_uncertain, 4, keys, 7, args, lens));
}


/* Lua helpers shared by the scripts that end a job. A script cannot be rolled back, so
 * every key it will write is checked first (keytype_ok); a replyTo key that holds
 * another type is skipped rather than aborting the script half-way.
 * emit(results, max, reply, chan, ev): a completion event to <p>:results (trimmed to
 * max), to the job's reply list when there is one, and on <p>:events.
 * push_dead(dead, entry, max, stats): LPUSH a dead letter, keep the newest max, count
 * what was dropped in stats.dead_dropped. */

/* The arguments of emit() that come from the queue. */
struct event_dest {
	char results[128], chan[128], max[32], dead_max[32], reply_max[32], reply_ttl[32];
};

static void event_dest_init(const struct queue *q, struct event_dest *d)
{
	queue_key(q, d->results, sizeof(d->results), "results");
	queue_key(q, d->chan, sizeof(d->chan), "events");
	snprintf(d->max, sizeof(d->max), "%ld", q->results_max);
	snprintf(d->dead_max, sizeof(d->dead_max), "%ld", q->dead_max);
	snprintf(d->reply_max, sizeof(d->reply_max), "%ld", q->reply_max);
	snprintf(d->reply_ttl, sizeof(d->reply_ttl), "%ld", q->reply_ttl_s);
}

/* Bytes as a JSON string when they are UTF-8 without NULs, else base64 under b64name. */
static void add_bytes(cJSON *o, const char *name, const char *b64name, const char *raw,
		      size_t len)
{
	if (!memchr(raw, '\0', len) && util_utf8_len(raw, len) >= 0) {
		char *copy = util_xmalloc(len + 1);
		memcpy(copy, raw, len);
		copy[len] = '\0';
		cJSON_AddStringToObject(o, name, copy);
		free(copy);
	} else {
		size_t cap = 4 * ((len + 2) / 3) + 1;
		char *b64 = util_xmalloc(cap);
		crypto_base64(raw, len, b64, cap);
		cJSON_AddStringToObject(o, b64name, b64);
		free(b64);
	}
}

/* The dead-letter entry: raw bytes as a string when they are UTF-8 without NULs, else
 * base64 in rawBase64 — the original bytes are never lost. */
static char *dead_entry(const struct queue *q, const char *raw, size_t len, const char *job_id,
			const char *reason, const char *source, long attempts, int may_have_task)
{
	cJSON *o = cJSON_CreateObject();
	char ts[UTIL_ISO8601_SIZE], *s;

	cJSON_AddNumberToObject(o, "v", 1);
	if (job_id)
		cJSON_AddStringToObject(o, "jobId", job_id);
	else
		cJSON_AddNullToObject(o, "jobId");
	cJSON_AddStringToObject(o, "reason", reason);
	cJSON_AddStringToObject(o, "source", source);
	add_bytes(o, "raw", "rawBase64", raw, len);
	cJSON_AddNumberToObject(o, "attempts", (double)attempts);
	cJSON_AddStringToObject(o, "workerId", q->worker_id);
	util_iso8601(util_now_ms(), ts);
	cJSON_AddStringToObject(o, "failedAt", ts);
	if (may_have_task) /* a createTask of unknown outcome: a retry may pay twice */
		cJSON_AddTrueToObject(o, "mayHaveTask");
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!s)
		abort(); /* out of memory for an entry of at most ~6 x KIE_JOB_MAX_BYTES */
	return s;
}

/* The dead letter of a descriptor too large to keep: its size, SHA-256 and first bytes
 * (cut back to a whole UTF-8 character when the rest is text), never the whole. */
static char *dead_entry_oversized(const struct queue *q, const struct rconn_bulk *b,
				  const char *reason)
{
	cJSON *o = cJSON_CreateObject();
	char ts[UTIL_ISO8601_SIZE], *s;
	size_t head = b->head_len;

	/* a head cut inside a multi-byte character is still text: drop the partial one */
	for (int i = 0; i < 3 && head > 0 && util_utf8_len(b->head, head) < 0; i++)
		head--;
	if (util_utf8_len(b->head, head) < 0)
		head = b->head_len; /* not text: base64 of all of it */
	cJSON_AddNumberToObject(o, "v", 1);
	cJSON_AddNullToObject(o, "jobId");
	cJSON_AddStringToObject(o, "reason", reason);
	cJSON_AddStringToObject(o, "source", "parse");
	cJSON_AddNumberToObject(o, "size", (double)b->len);
	cJSON_AddStringToObject(o, "sha256", b->sha256);
	add_bytes(o, "rawHead", "rawHeadBase64", b->head, head);
	cJSON_AddNumberToObject(o, "attempts", 0);
	cJSON_AddStringToObject(o, "workerId", q->worker_id);
	util_iso8601(util_now_ms(), ts);
	cJSON_AddStringToObject(o, "failedAt", ts);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!s)
		abort(); /* cJSON is out of memory: the entry is small, so is the process */
	return s;
}

int queue_dead(struct queue *q, const char *raw, size_t len, const char *job_id, long epoch,
	       const char *reason, const char *source, long attempts, int may_have_task,
	       const char *event_json, const char *reply_to, int *reply_skipped)
{
	/* returns 0 (not held any more), 1 done, 2 done but replyTo skipped (wrong type),
	 * -1 the copy was released but the job is another consumer's (fenced): no entry */
	char proc[300], dead[128], jkey[300], rec[128], stats[128], now[32], ttl[32];
	struct event_dest ed;
	char *entry = dead_entry(q, raw, len, job_id, reason, source, attempts, may_have_task);
	char infl[160];
	char hmin[HISTORY_KEY_MAX], hday[HISTORY_KEY_MAX];
	const char *keys[] = {proc, dead, jkey, rec, stats, ed.results, infl, hmin, hday, reply_to};
	char ep[32];
	const char *args[] = {raw, entry, job_id && epoch ? "1" : "0", now, reason, ttl,
			      event_json ? event_json : "", ed.chan, ed.max, ed.dead_max, ep,
			      q->worker_id, ed.reply_max, ed.reply_ttl};
	size_t lens[14];
	redisReply *rep;

	snprintf(ep, sizeof(ep), "%ld", epoch);
	if (reply_skipped)
		*reply_skipped = 0;
	key2(q, proc, sizeof(proc), "processing", q->worker_id);
	queue_key(q, dead, sizeof(dead), "dead");
	key2(q, jkey, sizeof(jkey), "job", job_id ? job_id : "-");
	queue_key(q, rec, sizeof(rec), "recoveries");
	queue_key(q, stats, sizeof(stats), "stats");
	event_dest_init(q, &ed);
	now_str(now, sizeof(now));
	snprintf(ttl, sizeof(ttl), "%ld", q->record_ttl_s);
	lens[0] = len;
	for (int i = 1; i < 14; i++)
		lens[i] = strlen(args[i]);
	queue_key(q, infl, sizeof(infl), "sched:" SCHED_ACCOUNT_NAME ":inflight"); /* i19 */
	history_keys(q->prefix, util_now_ms(), hmin, hday); /* i21 */
	rep = eval(q, &lua_job_dead, reply_to && *reply_to ? 10 : 9, keys, 14, args, lens);
	if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 2 && reply_skipped)
		*reply_skipped = 1;
	free(entry);
	return ok_reply(rep);
}

int queue_dead_oversized(struct queue *q, const struct rconn_bulk *b, const char *reason)
{
	/* The descriptor is compared by length and head inside Redis, never sent back. */
	char proc[300], dead[128], stats[128], n[32], max[32];
	char hmin[HISTORY_KEY_MAX], hday[HISTORY_KEY_MAX];
	const char *keys[] = {proc, dead, stats, hmin, hday};
	char *entry = dead_entry_oversized(q, b, reason);
	const char *args[] = {n, b->head, entry, max};
	size_t lens[4];
	int rc;

	key2(q, proc, sizeof(proc), "processing", q->worker_id);
	queue_key(q, dead, sizeof(dead), "dead");
	queue_key(q, stats, sizeof(stats), "stats");
	snprintf(n, sizeof(n), "%zu", b->len);
	snprintf(max, sizeof(max), "%ld", q->dead_max);
	history_keys(q->prefix, util_now_ms(), hmin, hday); /* i21 */
	lens[0] = strlen(n);
	lens[1] = b->head_len;
	lens[2] = strlen(entry);
	lens[3] = strlen(max);
	rc = ok_reply(eval(q, &lua_dead_oversized, 5, keys, 4, args, lens));
	free(entry);
	return rc;
}

int queue_uncertain_due(struct queue *q, int limit, char ***ids, size_t *n)
{
	char unc[128], lim[16];
	const char *keys[] = {unc};
	const char *args[] = {lim};
	redisReply *rep;

	*ids = NULL;
	*n = 0;
	queue_key(q, unc, sizeof(unc), "uncertain");
	snprintf(lim, sizeof(lim), "%d", limit);
	rep = eval(q, &lua_uncertain_due, 1, keys, 1, args, NULL);
	if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements) {
		*ids = util_xcalloc(rep->elements, sizeof(char *));
		for (size_t i = 0; i < rep->elements; i++)
			if (rep->element[i]->type == REDIS_REPLY_STRING)
				(*ids)[(*n)++] = util_strdup(rep->element[i]->str);
	}
	return ok_reply(rep);
}

void queue_uncertain_free(struct uncertain_job *u)
{
	free(u->raw);
	free(u->meta);
	u->raw = u->meta = NULL;
}

int queue_uncertain_get(struct queue *q, const char *job_id, struct uncertain_job *u)
{
	char key[300];
	const char *argv[] = {"HMGET", key, "state", "taskId", "raw", "replyTo", "jobMeta", "type",
			      "callback", "attempts"};
	redisReply *rep;

	memset(u, 0, sizeof(*u));
	key2(q, key, sizeof(key), "job", job_id);
	rep = rconn_argv(q->r, 10, argv, NULL);
	if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 8) {
		redisReply **e = rep->element;
		long long v;
		if (e[0]->type == REDIS_REPLY_STRING)
			util_strlcpy(u->state, e[0]->str, sizeof(u->state));
		if (e[1]->type == REDIS_REPLY_STRING)
			util_strlcpy(u->task_id, e[1]->str, sizeof(u->task_id));
		if (e[2]->type == REDIS_REPLY_STRING) {
			u->raw = util_xmalloc(e[2]->len + 1);
			memcpy(u->raw, e[2]->str, e[2]->len);
			u->raw[e[2]->len] = '\0';
			u->raw_len = e[2]->len;
		}
		if (e[3]->type == REDIS_REPLY_STRING)
			util_strlcpy(u->reply_to, e[3]->str, sizeof(u->reply_to));
		if (e[4]->type == REDIS_REPLY_STRING && e[4]->len)
			u->meta = util_strdup(e[4]->str);
		if (e[5]->type == REDIS_REPLY_STRING)
			util_strlcpy(u->type, e[5]->str, sizeof(u->type));
		u->callback = e[6]->type == REDIS_REPLY_STRING && strcmp(e[6]->str, "1") == 0;
		if (e[7]->type == REDIS_REPLY_STRING && util_parse_ll(e[7]->str, &v) == 0)
			u->attempts = (long)v;
	}
	if (!rep)
		snprintf(q->err, sizeof(q->err), "Redis unreachable");
	return ok_reply(rep);
}

int queue_uncertain_resolve(struct queue *q, const char *job_id, const struct uncertain_job *u,
			    int create, const char *reason, const char *event_json, int *acted)
{
	/* KEYS: job, uncertain, queue, dead, stats, results, [replyTo]. ARGV: jobId, create,
	 * entry, reason, now, ttl, event, chan, max, dead max, reply max, reply ttl. Acts only
	 * while the job is still uncertain without a task; returns 0 (nothing to do), 1
	 * requeued, 2 dead. */
	char jkey[300], unc[128], queue[128], dead[128], stats[128], now[32], ttl[32];
	struct event_dest ed;
	char *entry = create ? util_strdup("") : dead_entry(q, u->raw ? u->raw : "", u->raw_len,
							     job_id, reason, "uncertain",
							     u->attempts, 1);
	char infl[160], hmin[HISTORY_KEY_MAX], hday[HISTORY_KEY_MAX];
	const char *keys[] = {jkey, unc, queue, dead, stats, ed.results, infl, hmin, hday,
			      u->reply_to};
	const char *args[] = {job_id, create ? "1" : "0", entry, reason, now, ttl,
			      event_json ? event_json : "", ed.chan, ed.max, ed.dead_max,
			      ed.reply_max, ed.reply_ttl};
	redisReply *rep;

	*acted = 0;
	key2(q, jkey, sizeof(jkey), "job", job_id);
	queue_key(q, unc, sizeof(unc), "uncertain");
	queue_key(q, queue, sizeof(queue), "queue");
	queue_key(q, dead, sizeof(dead), "dead");
	queue_key(q, stats, sizeof(stats), "stats");
	event_dest_init(q, &ed);
	now_str(now, sizeof(now));
	snprintf(ttl, sizeof(ttl), "%ld", q->record_ttl_s);
	queue_key(q, infl, sizeof(infl), "sched:" SCHED_ACCOUNT_NAME ":inflight"); /* i19 */
	history_keys(q->prefix, util_now_ms(), hmin, hday); /* i21: dead by policy counted */
	rep = eval(q, &lua_uncertain_resolve, u->reply_to[0] ? 10 : 9, keys, 12, args, NULL);
	if (rep && rep->type == REDIS_REPLY_INTEGER)
		*acted = (int)rep->integer;
	free(entry);
	return ok_reply(rep);
}

/* i20-accounts: "pause", or "pause:acct:<alias>" */
static void pause_name(const char *alias, const char *base, char *out, size_t n)
{
	if (alias && *alias)
		snprintf(out, n, "%s:%s", base, alias);
	else
		snprintf(out, n, "%s", base);
}

int queue_pause_set(struct queue *q, const char *kind, long ms, const char *reason, int *set)
{
	return queue_acct_pause_set(q, NULL, kind, ms, reason, set);
}

int queue_acct_pause_set(struct queue *q, const char *alias, const char *kind, long ms,
			 const char *reason, int *set)
{
	/* An automatic pause never replaces an operator's (nor shortens it). */
	char key[200], pms[32], ts[UTIL_ISO8601_SIZE], *val;
	const char *keys[] = {key};
	const char *args[3];
	cJSON *o = cJSON_CreateObject();
	redisReply *rep;

	char name[100];
	if (set)
		*set = 0;
	pause_name(alias, "pause:acct", name, sizeof(name));
	queue_key(q, key, sizeof(key), alias && *alias ? name : "pause");
	cJSON_AddStringToObject(o, "kind", kind);
	cJSON_AddStringToObject(o, "reason", reason);
	util_iso8601(util_now_ms(), ts);
	cJSON_AddStringToObject(o, "since", ts);
	cJSON_AddStringToObject(o, "by", q->worker_id);
	val = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	snprintf(pms, sizeof(pms), "%ld", ms > 0 ? ms : 0);
	args[0] = kind;
	args[1] = val;
	args[2] = pms;
	rep = eval(q, &lua_pause_set, 1, keys, 3, args, NULL);
	if (rep && rep->type == REDIS_REPLY_INTEGER && set)
		*set = rep->integer == 1;
	free(val);
	return ok_reply(rep);
}

int queue_pause_get(struct queue *q, long *remaining_ms, char *kind, size_t kindlen,
		    char *reason, size_t reasonlen)
{
	return queue_acct_pause_get(q, NULL, remaining_ms, kind, kindlen, reason, reasonlen);
}

int queue_acct_pause_get(struct queue *q, const char *alias, long *remaining_ms, char *kind,
			 size_t kindlen, char *reason, size_t reasonlen)
{
	/* read-only: runs when Redis refuses writes (OOM) and on replicas */
	char key[200];
	const char *keys[] = {key};
	redisReply *rep;

	*remaining_ms = 0;
	if (kind && kindlen)
		kind[0] = '\0';
	char name[100];
	if (reason && reasonlen)
		reason[0] = '\0';
	pause_name(alias, "pause:acct", name, sizeof(name));
	queue_key(q, key, sizeof(key), alias && *alias ? name : "pause");
	rep = eval(q, &lua_pause_get, 1, keys, 0, NULL, NULL);
	if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
	    rep->element[1]->type == REDIS_REPLY_INTEGER && rep->element[1]->integer != -2) {
		const redisReply *v = rep->element[0];
		cJSON *o = v->type == REDIS_REPLY_STRING ? cJSON_ParseWithLength(v->str, v->len) : NULL;
		const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "kind");
		const cJSON *why = cJSON_GetObjectItemCaseSensitive(o, "reason");
		long long pttl = rep->element[1]->integer;
		*remaining_ms = pttl == -1 ? -1 : pttl > 0 ? (long)pttl : 1;
		if (kind && kindlen)
			util_strlcpy(kind, cJSON_IsString(k) ? k->valuestring : "account", kindlen);
		if (reason && reasonlen)
			util_strlcpy(reason, cJSON_IsString(why) ? why->valuestring
				     : v->type == REDIS_REPLY_STRING ? v->str : "", reasonlen);
		cJSON_Delete(o);
	}
	return ok_reply(rep);
}

int queue_pause_clear(struct queue *q, const char *kind, int *cleared)
{
	return queue_acct_pause_clear(q, NULL, kind, cleared);
}

int queue_acct_pause_clear(struct queue *q, const char *alias, const char *kind, int *cleared)
{
	char key[200];
	const char *keys[] = {key};
	const char *args[] = {kind ? kind : ""};
	redisReply *rep;

	char name[100];
	if (cleared)
		*cleared = 0;
	pause_name(alias, "pause:acct", name, sizeof(name));
	queue_key(q, key, sizeof(key), alias && *alias ? name : "pause");
	rep = eval(q, &lua_pause_clear, 1, keys, 1, args, NULL);
	if (rep && rep->type == REDIS_REPLY_INTEGER && cleared)
		*cleared = rep->integer == 1;
	return ok_reply(rep);
}

int queue_pause_probe_lock(struct queue *q, long ms, int *got)
{
	return queue_acct_pause_probe_lock(q, NULL, ms, got);
}

int queue_acct_pause_probe_lock(struct queue *q, const char *alias, long ms, int *got)
{
	char key[200];
	redisReply *rep;

	char name[100];
	*got = 0;
	pause_name(alias, "pause:probe", name, sizeof(name));
	queue_key(q, key, sizeof(key), name);
	rep = rconn_cmd(q->r, "SET %s %s NX PX %ld", key, q->worker_id, ms);
	if (rep && rep->type == REDIS_REPLY_STATUS)
		*got = 1;
	return ok_reply(rep);
}

int queue_job_not_created(struct queue *q, const char *job_id, long epoch)
{
	char key[300], now[32], ep[32], hmin[HISTORY_KEY_MAX], hday[HISTORY_KEY_MAX];
	const char *keys[] = {key, hmin, hday};
	const char *args[] = {now, q->worker_id, ep};

	key2(q, key, sizeof(key), "job", job_id);
	now_str(now, sizeof(now));
	snprintf(ep, sizeof(ep), "%ld", epoch);
	history_keys(q->prefix, util_now_ms(), hmin, hday); /* i21: the refusal counted */
	return ok_reply(eval(q, &lua_job_not_created, 3, keys, 3, args, NULL));
}

/* The fields of task_get.lua's reply (poll_next.lua's after its first two) into out. */
static void task_fields(redisReply **e, struct task_record *out)
{
	long long v;
	if (e[0]->type == REDIS_REPLY_STRING)
		util_strlcpy(out->job_id, e[0]->str, sizeof(out->job_id));
	if (e[1]->type == REDIS_REPLY_STRING)
		util_strlcpy(out->type, e[1]->str, sizeof(out->type));
	if (e[2]->type == REDIS_REPLY_STRING)
		util_strlcpy(out->reply_to, e[2]->str, sizeof(out->reply_to));
	if (e[3]->type == REDIS_REPLY_STRING && util_parse_ll(e[3]->str, &v) == 0)
		out->created_at_ms = v;
	if (e[4]->type == REDIS_REPLY_STRING && util_parse_ll(e[4]->str, &v) == 0)
		out->polls = (long)v;
	if (e[5]->type == REDIS_REPLY_STRING && util_parse_ll(e[5]->str, &v) == 0)
		out->attempts = (long)v;
	out->finalized = e[6]->type == REDIS_REPLY_STRING;
	if (e[7]->type == REDIS_REPLY_STRING && e[7]->len)
		out->record = util_strdup(e[7]->str);
	if (e[8]->type == REDIS_REPLY_STRING && e[8]->len)
		out->job_meta = util_strdup(e[8]->str);
	if (e[9]->type == REDIS_REPLY_STRING)
		util_strlcpy(out->duplicate_of, e[9]->str, sizeof(out->duplicate_of));
	out->copying = e[10]->type == REDIS_REPLY_STRING;
}

/* poll_next.lua's answer into queue_poll_next's outputs (set to none first by the caller) */
static void poll_next_out(const redisReply *rep, char **task_id, int64_t *due_ms,
			  struct task_record *t)
{
	if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2) {
		const redisReply *e = rep->element[1];
		if (rep->element[0]->type == REDIS_REPLY_STRING && rep->elements == 13) {
			*task_id = util_strdup(rep->element[0]->str);
			task_fields(rep->element + 2, t);
		}
		if (e->type == REDIS_REPLY_STRING)
			*due_ms = (int64_t)strtoll(e->str, NULL, 10);
		else if (e->type == REDIS_REPLY_INTEGER)
			*due_ms = (int64_t)e->integer;
	}
}

int queue_poll_next(struct queue *q, int limit, int64_t first_due_ms, int64_t now_ms,
		    int64_t lease_until_ms, char **task_id, int64_t *due_ms,
		    struct task_record *t)
{
	char poll[128], due[128], tpre[128], lim[16], first[32], now[32], lease[32];
	const char *keys[] = {poll, due, tpre};
	const char *args[] = {lim, first, now, lease};
	redisReply *rep;

	*task_id = NULL;
	*due_ms = -1;
	memset(t, 0, sizeof(*t));
	queue_key(q, poll, sizeof(poll), "polling");
	queue_key(q, due, sizeof(due), "poll:due");
	queue_key(q, tpre, sizeof(tpre), "task:");
	snprintf(lim, sizeof(lim), "%d", limit);
	snprintf(first, sizeof(first), "%lld", (long long)first_due_ms);
	snprintf(now, sizeof(now), "%lld", (long long)now_ms);
	snprintf(lease, sizeof(lease), "%lld", (long long)lease_until_ms);
	rep = eval(q, &lua_poll_next, 3, keys, 4, args, NULL);
	poll_next_out(rep, task_id, due_ms, t);
	return ok_reply(rep);
}

int queue_poll_reschedule(struct queue *q, const char *task_id, int64_t due_ms)
{
	char due[128];
	queue_key(q, due, sizeof(due), "poll:due");
	redisReply *rep = rconn_cmd(q->r, "ZADD %s XX %lld %s", due, (long long)due_ms, task_id);
	return ok_reply(rep);
}

int queue_poll_reschedule_state(struct queue *q, const char *task_id, int64_t due_ms,
				const char *kie_state)
{
	char tkey[KIE_TASK_ID_MAX_BYTES + 200], due[128], at[32];
	const char *keys[] = {tkey, due};
	const char *args[] = {task_id, at, kie_state};

	key2(q, tkey, sizeof(tkey), "task", task_id);
	queue_key(q, due, sizeof(due), "poll:due");
	snprintf(at, sizeof(at), "%lld", (long long)due_ms);
	return ok_reply(eval(q, &lua_poll_state, 2, keys, 3, args, NULL));
}

void queue_task_record_free(struct task_record *t)
{
	free(t->record);
	free(t->job_meta);
	t->record = t->job_meta = NULL;
}

int queue_task_get(struct queue *q, const char *task_id, struct task_record *out)
{
	char key[KIE_TASK_ID_MAX_BYTES + 200];
	const char *keys[] = {key};
	redisReply *rep;

	memset(out, 0, sizeof(*out));
	key2(q, key, sizeof(key), "task", task_id);
	rep = eval(q, &lua_task_get, 1, keys, 0, NULL, NULL);
	if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 11)
		task_fields(rep->element, out);
	return ok_reply(rep);
}

/* finalize.lua and, in the same round trip, the poller's next poll_next.lua (q->ahead).
 * finalize.lua's answer is the answer whatever poll_next.lua's was (an error of that one
 * only leaves no claim ahead); a failed round trip, or an error of finalize.lua, falls
 * back to finalize.lua alone (its run is idempotent). A poll_next claim lost either way
 * comes due again after its lease. */
static redisReply *finalize_and_poll_next(struct queue *q, int nkeys, const char **keys,
					  int nargs, const char **args)
{
	struct queue_poll_ahead *a = q->ahead;
	char poll[128], due[128], tpre[128], lim[16], first[32], now[32], lease[32];
	const char *pkeys[] = {poll, due, tpre};
	const char *pargs[] = {lim, first, now, lease};
	struct script_call fin = {&lua_finalize, nkeys, nargs, keys, args, NULL};
	struct script_call next = {&lua_poll_next, 3, 4, pkeys, pargs, NULL};
	redisReply *rep = NULL, *prep = NULL;
	int64_t t = util_now_ms();

	a->on = 0;
	queue_key(q, poll, sizeof(poll), "polling");
	queue_key(q, due, sizeof(due), "poll:due");
	queue_key(q, tpre, sizeof(tpre), "task:");
	snprintf(lim, sizeof(lim), "%d", a->limit);
	snprintf(first, sizeof(first), "%lld", (long long)(t + a->first_delay_ms));
	snprintf(now, sizeof(now), "%lld", (long long)t);
	snprintf(lease, sizeof(lease), "%lld", (long long)(t + a->lease_ms));
	if (script_run2(q->r, &fin, &next, &rep, &prep) == 0 && rep &&
	    rep->type != REDIS_REPLY_ERROR) {
		if (prep && prep->type != REDIS_REPLY_ERROR) {
			a->task_id = NULL;
			a->due_ms = -1;
			memset(&a->t, 0, sizeof(a->t));
			poll_next_out(prep, &a->task_id, &a->due_ms, &a->t);
			a->have = 1;
		}
		if (prep)
			freeReplyObject(prep);
		return rep;
	}
	if (rep)
		freeReplyObject(rep);
	if (prep)
		freeReplyObject(prep);
	return eval(q, &lua_finalize, nkeys, keys, nargs, args, NULL);
}

int queue_finalize(struct queue *q, const char *task_id, const char *job_id,
		   const char *status, const char *event_json, const char *reply_to,
		   const struct queue_cost *cost, int *done)
{
	/* returns 0 already finalized, 1 finalized now, 3 finalized now but replyTo skipped,
	 * 4 finalized now without an event (the job is dead) */
	char tkey[KIE_TASK_ID_MAX_BYTES + 200], jkey[300], due[128], stats[128], now[32], ttl[32];
	struct event_dest ed;
	char infl[160];
	char hmin[HISTORY_KEY_MAX], hday[HISTORY_KEY_MAX]; /* i21 */
	/* i20-wire: the cost's keys and arguments */
	char ck[7][200], cr[40], gmax[24], sttl[24], name[64];
	const char *keys[16] = {tkey, jkey, ed.results, due, stats, infl, hmin, hday,
				reply_to ? reply_to : "", ck[0], ck[1], ck[2], ck[3], ck[4],
				ck[5], ck[6]};
	const char *args[18] = {event_json ? event_json : "", status, now, ed.chan, ed.max,
				job_id && *job_id ? "1" : "0", task_id, ttl, ed.reply_max,
				ed.reply_ttl, cr, "", "", "", "", gmax, sttl,
				job_id ? job_id : ""};
	int nkeys = reply_to && *reply_to ? 9 : 8;
	redisReply *rep;

	*done = 0;
	key2(q, tkey, sizeof(tkey), "task", task_id);
	key2(q, jkey, sizeof(jkey), "job", job_id && *job_id ? job_id : "-");
	queue_key(q, due, sizeof(due), "poll:due");
	queue_key(q, stats, sizeof(stats), "stats");
	event_dest_init(q, &ed);
	now_str(now, sizeof(now));
	snprintf(ttl, sizeof(ttl), "%ld", q->record_ttl_s);
	queue_key(q, infl, sizeof(infl), "sched:" SCHED_ACCOUNT_NAME ":inflight"); /* i19 */
	history_keys(q->prefix, util_now_ms(), hmin, hday); /* i21 */
	if (cost) {
		snprintf(name, sizeof(name), "budget:%s", cost->today);
		queue_key(q, ck[0], sizeof(ck[0]), name);
		snprintf(name, sizeof(name), "budget:%s", cost->yday);
		queue_key(q, ck[1], sizeof(ck[1]), name);
		queue_key(q, ck[2], sizeof(ck[2]), "budget:group");
		queue_key(q, ck[3], sizeof(ck[3]), "budget:models");
		queue_key(q, ck[4], sizeof(ck[4]), "budget:open");
		snprintf(name, sizeof(name), "spend:%s", cost->today);
		queue_key(q, ck[5], sizeof(ck[5]), name);
		snprintf(name, sizeof(name), "spend:%s:groups", cost->today);
		queue_key(q, ck[6], sizeof(ck[6]), name);
		if (cost->known)
			snprintf(cr, sizeof(cr), "%.17g", cost->credits);
		else
			cr[0] = '\0';
		snprintf(gmax, sizeof(gmax), "%ld", cost->groups_max);
		snprintf(sttl, sizeof(sttl), "%ld", cost->ttl_s);
		args[11] = cost->today;
		args[12] = cost->yday;
		args[13] = cost->type ? cost->type : "";
		args[14] = cost->account ? cost->account : "";
		nkeys = 16;
	}
	if (q->ahead && q->ahead->on && !q->ahead->have)
		rep = finalize_and_poll_next(q, nkeys, keys, cost ? 18 : 10, args);
	else
		rep = eval(q, &lua_finalize, nkeys, keys, cost ? 18 : 10, args, NULL);
	if (rep && rep->type == REDIS_REPLY_INTEGER) {
		*done = rep->integer == 4 ? 2 : rep->integer != 0;
		if (rep->integer == 3)
			log_warn(job_id, task_id, "replyTo key %s holds another type than a list: the "
				 "event was not pushed there (it is in %s and was published)", reply_to,
				 ed.results);
	}
	return ok_reply(rep);
}

void queue_consumer_id(char *out, size_t outlen, const char *worker_id, int slot)
{
	snprintf(out, outlen, "%s#%d", worker_id, slot);
}

void queue_router_consumer_id(char *out, size_t outlen, const char *worker_id)
{
	snprintf(out, outlen, "%s#router", worker_id);
}

void queue_callback_consumer_id(char *out, size_t outlen, const char *worker_id)
{
	snprintf(out, outlen, "%s#cb", worker_id);
}

int queue_heartbeat(struct queue *q, long ttl_ms, const char *info, int nconsumers,
		    const char *const *cids, const char *const *job_ids, const long *epochs)
{
	/* heartbeat.lua: KEYS workers, the consumers' heartbeats, the jobs they own; ARGV
	 * ttl, info, n, then per consumer: id, KEYS index of its job (0 none), epoch */
	size_t n = (size_t)nconsumers;
	const char **keys = util_xcalloc(1 + 2 * n, sizeof(char *));
	const char **args = util_xcalloc(3 + 3 * n, sizeof(char *));
	char (*kbuf)[300] = util_xcalloc(1 + 2 * n, sizeof(*kbuf));
	char (*abuf)[160] = util_xcalloc(3 * n + 3, sizeof(*abuf));
	int nkeys = 1 + nconsumers, rc;

	queue_key(q, kbuf[0], sizeof(kbuf[0]), "workers");
	keys[0] = kbuf[0];
	snprintf(abuf[0], sizeof(abuf[0]), "%ld", ttl_ms);
	snprintf(abuf[2], sizeof(abuf[2]), "%d", nconsumers);
	args[0] = abuf[0]; args[1] = info; args[2] = abuf[2];
	for (int i = 0; i < nconsumers; i++) {
		char *ki = abuf[4 + 3 * i], *ep = abuf[5 + 3 * i];
		const char *cid = cids[i];
		key2(q, kbuf[1 + i], sizeof(kbuf[0]), "worker", cid);
		keys[1 + i] = kbuf[1 + i];
		snprintf(ki, sizeof(abuf[0]), "0");
		snprintf(ep, sizeof(abuf[0]), "%ld", epochs ? epochs[i] : 0);
		if (job_ids && job_ids[i] && job_ids[i][0]) {
			key2(q, kbuf[nkeys], sizeof(kbuf[0]), "job", job_ids[i]);
			keys[nkeys] = kbuf[nkeys];
			nkeys++;
			snprintf(ki, sizeof(abuf[0]), "%d", nkeys); /* Lua indexes from 1 */
		}
		args[3 + 3 * i] = cid; args[4 + 3 * i] = ki; args[5 + 3 * i] = ep;
	}
	rc = ok_reply(eval(q, &lua_heartbeat, nkeys, keys, 3 + 3 * nconsumers, args, NULL));
	free(abuf);
	free(kbuf);
	free(args);
	free(keys);
	return rc;
}

/* recover.lua for the consumers cids[0..n-1]: count 1 recovers dead ones (re-checked by
 * the script), 0 releases this worker's own. *rep_out gets the reply. */
static int recover(struct queue *q, int count, size_t max_keep, char **cids, size_t n,
		   redisReply **rep_out)
{
	const char **keys = util_xcalloc(5 + 3 * n, sizeof(char *));
	const char **args = util_xcalloc(2 + n, sizeof(char *));
	char (*kbuf)[400] = util_xcalloc(5 + 3 * n, sizeof(*kbuf));
	char keep[32];
	static const char *const common[] = {"queue", "callbacks", "workers", "recoveries",
					     "stats"};

	for (int i = 0; i < 5; i++) {
		queue_key(q, kbuf[i], sizeof(kbuf[i]), common[i]);
		keys[i] = kbuf[i];
	}
	snprintf(keep, sizeof(keep), "%zu", max_keep);
	args[0] = count ? "1" : "0";
	args[1] = keep;
	for (size_t i = 0; i < n; i++) {
		key2(q, kbuf[5 + 3 * i], sizeof(kbuf[0]), "worker", cids[i]);
		key2(q, kbuf[6 + 3 * i], sizeof(kbuf[0]), "processing", cids[i]);
		key2(q, kbuf[7 + 3 * i], sizeof(kbuf[0]), "callbacks:processing", cids[i]);
		for (int k = 0; k < 3; k++)
			keys[5 + 3 * i + (size_t)k] = kbuf[5 + 3 * i + (size_t)k];
		args[2 + i] = cids[i];
	}
	*rep_out = eval(q, &lua_recover, (int)(5 + 3 * n), keys, (int)(2 + n), args, NULL);
	free(kbuf);
	free(args);
	free(keys);
	return *rep_out && (*rep_out)->type != REDIS_REPLY_ERROR ? 0 : -1;
}

/* Reads <p>:workers: *ids new strings (caller frees each and the array). */
static int workers_list(struct queue *q, char ***ids, size_t *n)
{
	char key[128];
	redisReply *rep;

	*ids = NULL;
	*n = 0;
	queue_key(q, key, sizeof(key), "workers");
	rep = rconn_cmd(q->r, "SMEMBERS %s", key);
	if (!rep || rep->type != REDIS_REPLY_ARRAY) {
		snprintf(q->err, sizeof(q->err), "%s", rep ? "Redis refused SMEMBERS" : "Redis unreachable");
		if (rep)
			freeReplyObject(rep);
		return -1;
	}
	*ids = util_xcalloc(rep->elements + 1, sizeof(char *));
	for (size_t i = 0; i < rep->elements; i++)
		if (rep->element[i]->type == REDIS_REPLY_STRING && rep->element[i]->len < 200)
			(*ids)[(*n)++] = util_strdup(rep->element[i]->str);
	freeReplyObject(rep);
	return 0;
}

static void ids_free(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

#define RECOVER_BATCH 64

/* 1 when cid is one of the consumers this process runs. */
static int own_consumer(const char *cid, const char *const *own, int nown)
{
	for (int i = 0; i < nown; i++)
		if (strcmp(cid, own[i]) == 0)
			return 1;
	return 0;
}

int queue_recover_dead_workers(struct queue *q, const char *const *own, int nown,
			       size_t max_keep, long *recovered)
{
	/* Lists <p>:workers, reads the heartbeats of every consumer this process does not
	 * run (MGET) — other workers', and this worker id's slots a previous process ran
	 * (a fixed KIE_WORKER_ID restarted with fewer runners: nobody beats those now) —
	 * then recovers those without one, RECOVER_BATCH per script; the script checks
	 * each heartbeat again, so one that came back meanwhile is left alone. */
	char **ids, **gone;
	size_t n, ngone = 0;
	long quiet = 0;
	int rc = 0;

	*recovered = 0;
	if (workers_list(q, &ids, &n) != 0)
		return -1;
	gone = util_xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n && rc == 0; i += RECOVER_BATCH) {
		size_t m = n - i < RECOVER_BATCH ? n - i : RECOVER_BATCH, k = 0;
		const char *argv[RECOVER_BATCH + 1];
		char keys[RECOVER_BATCH][300];
		size_t idx[RECOVER_BATCH];
		redisReply *rep;
		argv[0] = "MGET";
		for (size_t j = 0; j < m; j++) {
			if (own_consumer(ids[i + j], own, nown))
				continue;
			key2(q, keys[k], sizeof(keys[k]), "worker", ids[i + j]);
			argv[1 + k] = keys[k];
			idx[k++] = i + j;
		}
		if (!k)
			continue;
		rep = rconn_argv(q->r, (int)(1 + k), argv, NULL);
		if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != k) {
			snprintf(q->err, sizeof(q->err), "reading heartbeats: %s",
				 rep && rep->type == REDIS_REPLY_ERROR ? rep->str : "Redis unreachable");
			rc = -1;
		} else {
			for (size_t j = 0; j < k; j++)
				if (rep->element[j]->type == REDIS_REPLY_NIL)
					gone[ngone++] = ids[idx[j]];
		}
		if (rep)
			freeReplyObject(rep);
	}
	for (size_t i = 0; i < ngone && rc == 0; i += RECOVER_BATCH) {
		size_t m = ngone - i < RECOVER_BATCH ? ngone - i : RECOVER_BATCH;
		redisReply *rep = NULL;
		rc = recover(q, 1, max_keep, gone + i, m, &rep);
		for (size_t j = 0; rc == 0 && j + 1 < rep->elements; j += 2) {
			const char *w = rep->element[j]->str;
			long b = (long)rep->element[j + 1]->integer;
			if (b == 0) {
				quiet++;
				continue;
			}
			log_warn(NULL, NULL, "worker consumer %s is dead (heartbeat expired): %ld job(s) "
				 "back on the queue", w, b);
			*recovered += b;
		}
		if (rep)
			freeReplyObject(rep);
	}
	if (quiet)
		log_info(NULL, NULL, "%ld consumer(s) of stopped workers left without claimed jobs",
			 quiet);
	free(gone);
	ids_free(ids, n);
	return rc;
}

int queue_release_self(struct queue *q, const char *const *cids, int n, long *returned)
{
	char **copy = util_xcalloc((size_t)n + 1, sizeof(char *));
	redisReply *rep = NULL;
	int rc;

	*returned = 0;
	for (int i = 0; i < n; i++)
		copy[i] = util_strdup(cids[i]);
	rc = recover(q, 0, 0, copy, (size_t)n, &rep);
	for (size_t j = 0; rc == 0 && j + 1 < rep->elements; j += 2)
		*returned += (long)rep->element[j + 1]->integer;
	if (rep)
		freeReplyObject(rep);
	ids_free(copy, (size_t)n);
	return rc;
}

int queue_promote_delayed(struct queue *q, int64_t now_ms, long *moved)
{
	char delayed[128], queue[128], now[32];
	const char *keys[] = {delayed, queue};
	const char *args[] = {now};
	redisReply *rep;

	*moved = 0;
	queue_key(q, delayed, sizeof(delayed), "delayed");
	queue_key(q, queue, sizeof(queue), "queue");
	snprintf(now, sizeof(now), "%lld", (long long)now_ms);
	rep = eval(q, &lua_promote_delayed, 2, keys, 1, args, NULL);
	if (rep && rep->type == REDIS_REPLY_INTEGER)
		*moved = (long)rep->integer;
	return ok_reply(rep);
}

int queue_pool_idle(struct queue *q, int with_callbacks, int *idle)
{
	/* pool_idle.lua takes the processing list of every consumer listed; it answers -1
	 * when <p>:workers changed in between, and the list is read again */
	*idle = 0;
	for (int tries = 0; tries < 5; tries++) {
		char **ids, base[8][128];
		size_t n;
		const char **keys, **args;
		char (*kbuf)[300];
		static const char *const names[] = {"queue", "polling", "poll:due", "delayed",
						    "workers", "uncertain", "callbacks",
						    "sched:" SCHED_ACCOUNT_NAME ":items"};
		redisReply *rep;
		long long left = -1;

		if (workers_list(q, &ids, &n) != 0)
			return -1;
		keys = util_xcalloc(8 + n, sizeof(char *));
		args = util_xcalloc(n + 1, sizeof(char *));
		kbuf = util_xcalloc(n + 1, sizeof(*kbuf));
		for (int i = 0; i < 8; i++) {
			queue_key(q, base[i], sizeof(base[i]), names[i]);
			keys[i] = base[i];
		}
		args[0] = with_callbacks ? "1" : "0";
		for (size_t i = 0; i < n; i++) {
			key2(q, kbuf[i], sizeof(kbuf[i]), "processing", ids[i]);
			keys[8 + i] = kbuf[i];
			args[1 + i] = ids[i];
		}
		rep = eval(q, &lua_pool_idle, (int)(8 + n), keys, (int)(n + 1), args, NULL);
		if (rep && rep->type == REDIS_REPLY_INTEGER)
			left = rep->integer;
		free(kbuf);
		free(args);
		free(keys);
		ids_free(ids, n);
		if (ok_reply(rep) != 0)
			return -1;
		if (left >= 0) {
			*idle = left == 0;
			return 0;
		}
	}
	return 0; /* consumers kept joining: not idle */
}

/* ---- result copies: plain commands on the task hash (queue.h) ---- */

void queue_task_copies_free(struct task_copies *c)
{
	free(c->result);
	for (int i = 0; i < QUEUE_COPIES_MAX; i++) {
		free(c->stored[i]);
		free(c->refused[i]);
	}
	memset(c, 0, sizeof(*c));
}

int queue_task_copies_get(struct queue *q, const char *task_id, struct task_copies *out)
{
	char key[KIE_TASK_ID_MAX_BYTES + 200];
	redisReply *rep;

	memset(out, 0, sizeof(*out));
	key2(q, key, sizeof(key), "task", task_id);
	rep = rconn_cmd(q->r, "HGETALL %s", key);
	if (rep && rep->type == REDIS_REPLY_ARRAY) {
		for (size_t i = 0; i + 1 < rep->elements; i += 2) {
			const redisReply *f = rep->element[i], *v = rep->element[i + 1];
			long long n;
			char **slot = NULL;
			if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
				continue;
			if (strcmp(f->str, "copyResult") == 0) {
				free(out->result);
				out->result = util_strdup(v->str);
			} else if (strcmp(f->str, "copyTries") == 0 && util_parse_ll(v->str, &n) == 0) {
				out->tries = (long)n;
			} else if (strncmp(f->str, "copy:", 5) == 0 &&
				   util_parse_ll(f->str + 5, &n) == 0 && n >= 0 && n < QUEUE_COPIES_MAX) {
				slot = &out->stored[n];
			} else if (strncmp(f->str, "copyFail:", 9) == 0 &&
				   util_parse_ll(f->str + 9, &n) == 0 && n >= 0 && n < QUEUE_COPIES_MAX) {
				slot = &out->refused[n];
			}
			if (slot) {
				free(*slot);
				*slot = util_strdup(v->str);
			}
		}
	}
	if (rep && rep->type != REDIS_REPLY_ARRAY && rep->type != REDIS_REPLY_ERROR)
		snprintf(q->err, sizeof(q->err), "HGETALL %s: unexpected reply", key);
	return ok_reply(rep);
}

int queue_task_copies_begin(struct queue *q, const char *task_id, const char *result_json)
{
	char key[KIE_TASK_ID_MAX_BYTES + 200];
	key2(q, key, sizeof(key), "task", task_id);
	return ok_reply(rconn_cmd(q->r, "HSETNX %s copyResult %s", key, result_json));
}

int queue_task_copy_set(struct queue *q, const char *task_id, int n, int refused,
			const char *value)
{
	char key[KIE_TASK_ID_MAX_BYTES + 200], field[32];
	key2(q, key, sizeof(key), "task", task_id);
	snprintf(field, sizeof(field), "%s:%d", refused ? "copyFail" : "copy", n);
	return ok_reply(rconn_cmd(q->r, "HSET %s %s %s", key, field, value));
}

int queue_task_copy_tried(struct queue *q, const char *task_id, long *tries)
{
	char key[KIE_TASK_ID_MAX_BYTES + 200];
	redisReply *rep;

	*tries = 1;
	key2(q, key, sizeof(key), "task", task_id);
	rep = rconn_cmd(q->r, "HINCRBY %s copyTries 1", key);
	if (rep && rep->type == REDIS_REPLY_INTEGER)
		*tries = (long)rep->integer;
	return ok_reply(rep);
}

int queue_poll_due_by(struct queue *q, const char *task_id, int64_t due_ms)
{
	char due[128];
	queue_key(q, due, sizeof(due), "poll:due");
	/* XX: only a task still being polled (a finalized one is not brought back) */
	return ok_reply(rconn_cmd(q->r, "ZADD %s XX LT %lld %s", due, (long long)due_ms, task_id));
}

int queue_callback_lookup(struct queue *q, const char *task_id, const char *job_id,
			  enum callback_verdict *verdict, char *task_job, size_t task_job_len,
			  int *finalized)
{
	char tkey[KIE_TASK_ID_MAX_BYTES + 200], jkey[300], stats[128];
	const char *keys[] = {tkey, jkey, stats};
	const char *args[] = {job_id ? "1" : "0", task_id, job_id ? job_id : ""};
	redisReply *rep;

	*verdict = CALLBACK_UNOWNED;
	*finalized = 0;
	if (task_job_len)
		task_job[0] = '\0';
	key2(q, tkey, sizeof(tkey), "task", task_id);
	key2(q, jkey, sizeof(jkey), "job", job_id ? job_id : "-");
	queue_key(q, stats, sizeof(stats), "stats");
	rep = eval(q, &lua_callback_lookup, 3, keys, 3, args, NULL);
	if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
	    rep->element[0]->type == REDIS_REPLY_STRING) {
		const char *v = rep->element[0]->str;
		*verdict = strcmp(v, "recorded") == 0 ? CALLBACK_RECORDED
			   : strcmp(v, "adopt") == 0 ? CALLBACK_ADOPT : CALLBACK_UNOWNED;
		if (rep->element[1]->type == REDIS_REPLY_STRING)
			util_strlcpy(task_job, rep->element[1]->str, task_job_len);
		*finalized = rep->element[2]->type == REDIS_REPLY_STRING &&
			     strcmp(rep->element[2]->str, "1") == 0;
	} else if (rep && rep->type != REDIS_REPLY_ERROR) {
		freeReplyObject(rep);
		snprintf(q->err, sizeof(q->err), "unexpected reply to the callback lookup");
		return -1;
	}
	return ok_reply(rep);
}

int queue_stat_add(struct queue *q, const char *field, long n)
{
	char stats[128];
	queue_key(q, stats, sizeof(stats), "stats");
	return ok_reply(rconn_cmd(q->r, "HINCRBY %s %s %ld", stats, field, n));
}
