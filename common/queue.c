/* queue.c — the Lua scripts and commands behind queue.h. Scripts are sent with EVAL
 * every time (Redis caches them by hash), so a restarted Redis needs no reloading. */
#include "queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "crypto.h"
#include "log.h"
#include "util.h"

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

#define MAXARGS 24

/* Runs EVAL script with keys and args (args may carry lengths for binary data; a NULL
 * lens array means C strings). Retries across reconnects. Up to MAXARGS words on the
 * stack; more (the heartbeat of a wide worker) on the heap. */
static redisReply *eval(struct queue *q, const char *script, int nkeys, const char **keys,
			int nargs, const char **args, const size_t *arglens)
{
	const char *argv_s[MAXARGS], **argv = argv_s;
	size_t lens_s[MAXARGS], *lens = lens_s;
	char nk[16];
	int argc = 0, words = 3 + nkeys + nargs;
	redisReply *rep;

	if (words > MAXARGS) {
		argv = util_xcalloc((size_t)words, sizeof(*argv));
		lens = util_xcalloc((size_t)words, sizeof(*lens));
	}

	snprintf(nk, sizeof(nk), "%d", nkeys);
	argv[argc] = "EVAL"; lens[argc++] = 4;
	argv[argc] = script; lens[argc++] = strlen(script);
	argv[argc] = nk; lens[argc++] = strlen(nk);
	for (int i = 0; i < nkeys; i++) {
		argv[argc] = keys[i];
		lens[argc++] = strlen(keys[i]);
	}
	for (int i = 0; i < nargs; i++) {
		argv[argc] = args[i];
		lens[argc++] = arglens ? arglens[i] : strlen(args[i]);
	}
	rep = rconn_argv_retry(q->r, argc, argv, lens);
	if (argv != argv_s) {
		free(argv);
		free(lens);
	}
	if (rep && rep->type == REDIS_REPLY_ERROR) {
		/* an error that repeats (OOM, READONLY, MISCONF) is logged once per 10 s */
		int64_t now = util_monotonic_ms();
		if (now >= q->next_err_log) {
			log_error(NULL, NULL, "Redis script error: %s%s", rep->str,
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
	if (q->check_own || q->r->drops != q->drops_seen) {
		unsigned long drops = q->r->drops;
		argv[0] = "LINDEX"; argv[1] = dst; argv[2] = "-1";
		if (rconn_bulk_bounded(q->r, 3, argv, NULL, max_keep, out) != 0)
			return -1;
		if (out->type == REDIS_REPLY_STRING) {
			*leftover = 1;
			return 0;
		}
		if (out->type == REDIS_REPLY_NIL) {
			q->check_own = 0;
			q->drops_seen = drops;
		}
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
	static const char lua[] =
		"local n = tonumber(ARGV[1]) "
		"for _, i in ipairs({0, -1}) do "
		"  local v = redis.call('LINDEX', KEYS[1], i) "
		"  if v and string.len(v) == n and string.sub(v, 1, string.len(ARGV[2])) == ARGV[2] "
		"  then redis.call('LREM', KEYS[1], 1, v) "
		"    redis.call('HINCRBY', KEYS[2], 'callbacks_refused', 1) return 1 end end "
		"return 0";
	char proc[300], stats[128], n[32];
	const char *keys[] = {proc, stats};
	const char *args[] = {n, b->head};
	size_t lens[2];
	key2(q, proc, sizeof(proc), "callbacks:processing", q->worker_id);
	queue_key(q, stats, sizeof(stats), "stats");
	snprintf(n, sizeof(n), "%zu", b->len);
	lens[0] = strlen(n);
	lens[1] = b->head_len;
	return ok_reply(eval(q, lua, 2, keys, 2, args, lens));
}

int queue_replace_claimed(struct queue *q, const char *old_raw, size_t old_len,
			  const char *new_raw, size_t new_len)
{
	static const char lua[] =
		"if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then "
		"  redis.call('LPUSH', KEYS[1], ARGV[2]) return 1 end return 0";
	char proc[300];
	const char *keys[] = {proc};
	const char *args[] = {old_raw, new_raw};
	size_t lens[] = {old_len, new_len};
	key2(q, proc, sizeof(proc), "processing", q->worker_id);
	return ok_reply(eval(q, lua, 1, keys, 2, args, lens));
}

/* owns(job, cid, epoch): the fencing check every step after the claim makes. */
#define OWNS_LUA_FN \
	"local function owns(job, cid, epoch) " \
	"  local o = redis.call('HMGET', job, 'owner', 'epoch') " \
	"  return o[1] == cid and o[2] == epoch end " \
	"local function now_ms() local t = redis.call('TIME') " \
	"  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) end "

/* Runs a step that must not be skipped (it carries a paid task's id): an error reply
 * (OOM, READONLY, MISCONF, BUSY, ...) is not a lost connection, so it is retried with
 * backoff (100 ms doubling to 5 s) until it succeeds or the worker's hard stop. */
static redisReply *eval_must(struct queue *q, const char *script, int nkeys, const char **keys,
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
					  "owned", "uncertain", "too_many_recoveries", "paused"};

const char *queue_claim_outcome_str(enum claim_outcome c)
{
	return (unsigned)c <= CLAIM_PAUSED ? claim_names[c] : "?";
}

int queue_job_claim(struct queue *q, const char *job_id, const char *raw, size_t len,
		    long lease_ms, long max_recoveries, const char *type, const char *reply_to,
		    const char *meta, int has_callback, struct job_claim *out)
{
	/* KEYS: job, recoveries. ARGV: cid, lease_ms, sha1(descriptor), max recoveries, type,
	 * replyTo, meta, has callback. Returns {outcome, epoch, attempts, state, taskId, owner,
	 * recoveries}. One owner per job id: a live lease, a recorded task, a finished job or
	 * an uncertain one all keep a second descriptor from creating anything. */
	static const char lua[] = OWNS_LUA_FN
		"local now = now_ms() "
		"local j = redis.call('HMGET', KEYS[1], 'state', 'owner', 'epoch', 'lease', "
		"  'taskId', 'attempts') "
		"local st, owner, epoch = j[1] or '', j[2] or '', tonumber(j[3] or '0') or 0 "
		"local lease, task, att = tonumber(j[4] or '0') or 0, j[5] or '', j[6] or '0' "
		"local rec = tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0') or 0 "
		"local function out(o) return {o, epoch, att, st, task, owner, rec} end "
		"if st == 'completed' or st == 'failed' then return out('finished') end "
		"if task ~= '' then return out('has_task') end "
		"if owner ~= '' and owner ~= ARGV[1] and lease > now then return out('owned') end "
		"if st == 'uncertain' then return out('uncertain') end "
		/* paused after this runner looked: the job goes back untouched */
		"if redis.call('EXISTS', KEYS[3]) == 1 then return out('paused') end "
		"epoch = epoch + 1 "
		"redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'epoch', epoch, "
		"  'lease', string.format('%d', now + tonumber(ARGV[2])), 'workerId', ARGV[1], "
		"  'type', ARGV[5], 'replyTo', ARGV[6], 'jobMeta', ARGV[7], 'callback', ARGV[8], "
		"  'updatedAt', string.format('%d', now)) "
		"redis.call('HSETNX', KEYS[1], 'createdAt', string.format('%d', now)) "
		"redis.call('PERSIST', KEYS[1]) "
		/* taken back from that many dead workers: this job may be what kills them */
		"if rec > tonumber(ARGV[4]) then return out('too_many_recoveries') end "
		/* its last owner died (or was cut off) inside createTask: a task may exist */
		"if st == 'creating' then return out('takeover') end "
		"if st == '' or st == 'dead' then "
		"  redis.call('HSET', KEYS[1], 'state', 'queued') st = 'queued' end "
		"return out('claimed')";
	char jkey[300], rec[128], pause[128], sha[41], lease[32], maxr[32];
	const char *keys[] = {jkey, rec, pause};
	const char *args[] = {q->worker_id, lease, sha, maxr, type, reply_to ? reply_to : "",
			      meta ? meta : "", has_callback ? "1" : "0"};
	redisReply *rep;

	memset(out, 0, sizeof(*out));
	key2(q, jkey, sizeof(jkey), "job", job_id);
	queue_key(q, rec, sizeof(rec), "recoveries");
	queue_key(q, pause, sizeof(pause), "pause");
	crypto_sha1_hex(raw, len, sha);
	snprintf(lease, sizeof(lease), "%ld", lease_ms);
	snprintf(maxr, sizeof(maxr), "%ld", max_recoveries);
	rep = eval(q, lua, 3, keys, 8, args, NULL);
	if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 7) {
		redisReply **e = rep->element;
		long long v;
		for (int i = 0; i <= CLAIM_PAUSED; i++)
			if (e[0]->type == REDIS_REPLY_STRING && strcmp(e[0]->str, claim_names[i]) == 0)
				out->outcome = (enum claim_outcome)i;
		out->epoch = (long)e[1]->integer;
		if (e[2]->type == REDIS_REPLY_STRING && util_parse_ll(e[2]->str, &v) == 0)
			out->attempts = (long)v;
		if (e[3]->type == REDIS_REPLY_STRING)
			util_strlcpy(out->state, e[3]->str, sizeof(out->state));
		if (e[4]->type == REDIS_REPLY_STRING)
			util_strlcpy(out->task_id, e[4]->str, sizeof(out->task_id));
		if (e[5]->type == REDIS_REPLY_STRING)
			util_strlcpy(out->owner, e[5]->str, sizeof(out->owner));
		out->recoveries = (long)e[6]->integer;
	} else if (rep && rep->type != REDIS_REPLY_ERROR) {
		freeReplyObject(rep);
		snprintf(q->err, sizeof(q->err), "unexpected reply to the claim");
		return -1;
	}
	return ok_reply(rep);
}

int queue_job_creating(struct queue *q, const char *job_id, long epoch, long *attempts,
		       int *fenced)
{
	/* returns the attempt number, or -1 when the job is not this consumer's any more */
	static const char lua[] = OWNS_LUA_FN
		"if not owns(KEYS[1], ARGV[2], ARGV[3]) then return -1 end "
		"redis.call('HSET', KEYS[1], 'state', 'creating', 'updatedAt', ARGV[1]) "
		"return redis.call('HINCRBY', KEYS[1], 'attempts', 1)";
	char key[300], now[32], ep[32];
	const char *keys[] = {key};
	const char *args[] = {now, q->worker_id, ep};
	redisReply *rep;

	*fenced = 0;
	key2(q, key, sizeof(key), "job", job_id);
	now_str(now, sizeof(now));
	snprintf(ep, sizeof(ep), "%ld", epoch);
	rep = eval(q, lua, 1, keys, 3, args, NULL);
	if (rep && rep->type == REDIS_REPLY_INTEGER) {
		if (rep->integer < 0)
			*fenced = 1;
		else
			*attempts = (long)rep->integer;
	}
	return ok_reply(rep);
}

int queue_record_task(struct queue *q, const char *job_id, const char *task_id,
		      const char *type, const char *reply_to, const char *record_json,
		      const char *job_meta_json, long attempts, int push, enum record_outcome *out)
{
	/* Not fenced: whoever holds a paid task id records it. The job's first task becomes
	 * its task; a different one is recorded as a duplicate of it and collected too.
	 * KEYS: job, task, uncertain, polling, stats. ARGV: taskId, jobId, now, type, replyTo,
	 * record, jobMeta, attempts, push (1: push onto <p>:polling now). */
	static const char lua[] =
		"local cur = redis.call('HGET', KEYS[1], 'taskId') "
		"local outcome = 'recorded' "
		"if cur and cur ~= '' and cur ~= ARGV[1] then outcome = 'duplicate' "
		"elseif cur == ARGV[1] then outcome = 'same' end "
		"if outcome == 'recorded' then "
		"  redis.call('HSET', KEYS[1], 'taskId', ARGV[1], 'state', 'polling', "
		"    'updatedAt', ARGV[3]) "
		"  redis.call('HDEL', KEYS[1], 'raw', 'uncertainUntil') "
		"  redis.call('ZREM', KEYS[3], ARGV[2]) "
		"  redis.call('HINCRBY', KEYS[5], 'tasks_created', 1) end "
		/* the task hash may exist without its job (a callback that came first read it) */
		"if not redis.call('HGET', KEYS[2], 'jobId') then "
		"  redis.call('HSETNX', KEYS[2], 'createdAt', ARGV[3]) "
		"  redis.call('HSET', KEYS[2], 'jobId', ARGV[2], "
		"    'type', ARGV[4], 'replyTo', ARGV[5], 'record', ARGV[6], 'jobMeta', ARGV[7], "
		"    'attempts', ARGV[8]) "
		"  if outcome == 'duplicate' then "
		"    redis.call('HSET', KEYS[2], 'duplicateOf', cur) "
		"    redis.call('HINCRBY', KEYS[5], 'duplicate_tasks', 1) end end "
		"if ARGV[9] == '1' or outcome == 'duplicate' then "
		"  redis.call('LPUSH', KEYS[4], ARGV[1]) end "
		/* pushed by whoever did not create it (a callback): an adoption */
		"if ARGV[9] == '1' and outcome == 'recorded' then "
		"  redis.call('HINCRBY', KEYS[5], 'adopted', 1) end "
		"return outcome";
	char jkey[300], tkey[KIE_TASK_ID_MAX_BYTES + 200], unc[128], poll[128], stats[128];
	char now[32], att[32];
	const char *keys[] = {jkey, tkey, unc, poll, stats};
	const char *args[] = {task_id, job_id, now, type ? type : "", reply_to ? reply_to : "",
			      record_json ? record_json : "", job_meta_json ? job_meta_json : "",
			      att, push ? "1" : "0"};
	redisReply *rep;

	*out = RECORD_RECORDED;
	key2(q, jkey, sizeof(jkey), "job", job_id);
	key2(q, tkey, sizeof(tkey), "task", task_id);
	queue_key(q, unc, sizeof(unc), "uncertain");
	queue_key(q, poll, sizeof(poll), "polling");
	queue_key(q, stats, sizeof(stats), "stats");
	now_str(now, sizeof(now));
	snprintf(att, sizeof(att), "%ld", attempts);
	rep = eval_must(q, lua, 5, keys, 9, args, NULL);
	if (rep && rep->type == REDIS_REPLY_STRING) {
		if (strcmp(rep->str, "same") == 0)
			*out = RECORD_SAME;
		else if (strcmp(rep->str, "duplicate") == 0)
			*out = RECORD_DUPLICATE;
	}
	return ok_reply(rep);
}

int queue_handoff_to_polling(struct queue *q, const char *raw, size_t len, const char *job_id,
			     const char *task_id)
{
	/* The task goes to the pollers whether or not this consumer still holds the
	 * descriptor (a fenced runner's task is collected too); the copy is released. */
	static const char lua[] =
		"redis.call('LPUSH', KEYS[1], ARGV[1]) "
		"if redis.call('LREM', KEYS[2], 1, ARGV[2]) == 1 then "
		"  redis.call('HDEL', KEYS[3], redis.sha1hex(ARGV[2])) end "
		"if redis.call('HGET', KEYS[4], 'owner') == ARGV[3] then "
		"  redis.call('HDEL', KEYS[4], 'owner', 'lease') end "
		"return 1";
	char poll[128], proc[300], rec[128], jkey[300];
	const char *keys[] = {poll, proc, rec, jkey};
	const char *args[] = {task_id, raw, q->worker_id};
	size_t lens[] = {strlen(task_id), len, strlen(q->worker_id)};
	queue_key(q, poll, sizeof(poll), "polling");
	key2(q, proc, sizeof(proc), "processing", q->worker_id);
	queue_key(q, rec, sizeof(rec), "recoveries");
	key2(q, jkey, sizeof(jkey), "job", job_id);
	return ok_reply(eval_must(q, lua, 4, keys, 3, args, lens));
}

/* LREM this consumer's copy; requeue: RPUSH it back to the consuming end of the queue
 * and, when this consumer owns its job (epoch > 0), give the ownership up; else forget
 * its recovery count. */
static int release_own(struct queue *q, const char *raw, size_t len, int requeue,
		       const char *job_id, long epoch)
{
	static const char lua[] = OWNS_LUA_FN
		"if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end "
		"if ARGV[2] == '1' then redis.call('RPUSH', KEYS[2], ARGV[1]) "
		"  if ARGV[3] ~= '0' and owns(KEYS[4], ARGV[4], ARGV[3]) then "
		"    redis.call('HDEL', KEYS[4], 'owner', 'lease') end "
		"else redis.call('HDEL', KEYS[3], redis.sha1hex(ARGV[1])) end return 1";
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
	return ok_reply(eval_must(q, lua, 4, keys, 4, args, lens));
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
	static const char lua[] = OWNS_LUA_FN
		"if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end "
		"redis.call('HDEL', KEYS[4], redis.sha1hex(ARGV[1])) "
		"if not owns(KEYS[3], ARGV[5], ARGV[6]) then return -1 end "
		"redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1]) "
		"redis.call('HSET', KEYS[3], 'state', 'retry_wait', 'error', ARGV[3], "
		"  'updatedAt', ARGV[4], 'retryAt', ARGV[2]) "
		"redis.call('HDEL', KEYS[3], 'owner', 'lease') "
		"redis.call('HINCRBY', KEYS[5], 'retries', 1) return 1";
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
	return ok_reply(eval(q, lua, 5, keys, 6, args, lens));
}

int queue_requeue_front(struct queue *q, const char *raw, size_t len, const char *job_id,
			long epoch)
{
	static const char lua[] = OWNS_LUA_FN
		"if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end "
		"if not owns(KEYS[3], ARGV[3], ARGV[4]) then return -1 end "
		"redis.call('RPUSH', KEYS[2], ARGV[1]) "
		"redis.call('HSET', KEYS[3], 'state', 'queued', 'updatedAt', ARGV[2]) "
		"redis.call('HDEL', KEYS[3], 'owner', 'lease') "
		"redis.call('HINCRBY', KEYS[3], 'attempts', -1) return 1";
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
	return ok_reply(eval(q, lua, 3, keys, 4, args, lens));
}

int queue_job_uncertain(struct queue *q, const char *raw, size_t len, const char *job_id,
			long epoch, long window_ms, const char *reason)
{
	/* The job's createTask outcome is unknown: its descriptor moves into the job hash
	 * (raw) and its id into <p>:uncertain until now + window (Redis's clock), where a
	 * callback, the late recording of its task, or the window's end decides. */
	static const char lua[] = OWNS_LUA_FN
		"if not owns(KEYS[2], ARGV[3], ARGV[4]) then "
		"  redis.call('LREM', KEYS[1], 1, ARGV[1]) return -1 end "
		"local task = redis.call('HGET', KEYS[2], 'taskId') "
		"redis.call('LREM', KEYS[1], 1, ARGV[1]) "
		"if task and task ~= '' then return 0 end " /* adopted meanwhile */
		"local untl = string.format('%d', now_ms() + tonumber(ARGV[5])) "
		"redis.call('HSET', KEYS[2], 'state', 'uncertain', 'raw', ARGV[1], 'error', ARGV[6], "
		"  'uncertainUntil', untl, 'updatedAt', ARGV[2]) "
		"redis.call('HDEL', KEYS[2], 'owner', 'lease') "
		"redis.call('ZADD', KEYS[3], untl, ARGV[7]) "
		"redis.call('HINCRBY', KEYS[4], 'uncertain', 1) return 1";
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
	return ok_reply(eval_must(q, lua, 4, keys, 7, args, lens));
}


/* Lua helpers shared by the scripts that end a job. A script cannot be rolled back, so
 * every key it will write is checked first (keytype_ok); a replyTo key that holds
 * another type is skipped rather than aborting the script half-way.
 * emit(results, max, reply, chan, ev): a completion event to <p>:results (trimmed to
 * max), to the job's reply list when there is one, and on <p>:events.
 * push_dead(dead, entry, max, stats): LPUSH a dead letter, keep the newest max, count
 * what was dropped in stats.dead_dropped. */
#define EMIT_LUA_FN \
	"local function keytype_ok(k, want) " \
	"  local t = redis.call('TYPE', k)['ok'] " \
	"  if t == want or t == 'none' then return true end " \
	"  return false, k .. ' holds a ' .. t .. ', not a ' .. want end " \
	"local function need(k, want) " \
	"  local ok, why = keytype_ok(k, want) " \
	"  if not ok then error(why) end end " \
	"local function emit(results, max, reply, chan, ev) " \
	"  redis.call('LPUSH', results, ev) " \
	"  redis.call('LTRIM', results, 0, tonumber(max) - 1) " \
	"  if reply then redis.call('LPUSH', reply, ev) end " \
	"  redis.call('PUBLISH', chan, ev) end " \
	"local function push_dead(dead, entry, max, stats) " \
	"  redis.call('LPUSH', dead, entry) " \
	"  local over = redis.call('LLEN', dead) - tonumber(max) " \
	"  if over > 0 then " \
	"    redis.call('LTRIM', dead, 0, tonumber(max) - 1) " \
	"    redis.call('HINCRBY', stats, 'dead_dropped', over) end end "

/* The arguments of emit() that come from the queue. */
struct event_dest {
	char results[128], chan[128], max[32], dead_max[32];
};

static void event_dest_init(const struct queue *q, struct event_dest *d)
{
	queue_key(q, d->results, sizeof(d->results), "results");
	queue_key(q, d->chan, sizeof(d->chan), "events");
	snprintf(d->max, sizeof(d->max), "%ld", q->results_max);
	snprintf(d->dead_max, sizeof(d->dead_max), "%ld", q->dead_max);
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
			const char *reason, const char *source, long attempts)
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
	       const char *reason, const char *source, long attempts, const char *event_json,
	       const char *reply_to, int *reply_skipped)
{
	/* returns 0 (not held any more), 1 done, 2 done but replyTo skipped (wrong type),
	 * -1 the copy was released but the job is another consumer's (fenced): no entry */
	static const char lua[] = EMIT_LUA_FN OWNS_LUA_FN
		"need(KEYS[2], 'list') need(KEYS[3], 'hash') need(KEYS[5], 'hash') "
		"need(KEYS[6], 'list') "
		"local reply, skipped = KEYS[7], 0 "
		"if reply and not keytype_ok(reply, 'list') then reply, skipped = nil, 1 end "
		"if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end "
		"if ARGV[11] ~= '0' and not owns(KEYS[3], ARGV[12], ARGV[11]) then return -1 end "
		"push_dead(KEYS[2], ARGV[2], ARGV[10], KEYS[5]) "
		"if ARGV[3] == '1' then "
		"  redis.call('HSET', KEYS[3], 'state', 'dead', 'error', ARGV[5], 'updatedAt', ARGV[4]) "
		"  redis.call('HDEL', KEYS[3], 'owner', 'lease', 'raw') "
		"  redis.call('EXPIRE', KEYS[3], ARGV[6]) end "
		"redis.call('HDEL', KEYS[4], redis.sha1hex(ARGV[1])) "
		"redis.call('HINCRBY', KEYS[5], 'dead', 1) "
		"if ARGV[7] ~= '' then emit(KEYS[6], ARGV[9], reply, ARGV[8], ARGV[7]) end "
		"return 1 + skipped";
	char proc[300], dead[128], jkey[300], rec[128], stats[128], now[32], ttl[32];
	struct event_dest ed;
	char *entry = dead_entry(q, raw, len, job_id, reason, source, attempts);
	const char *keys[] = {proc, dead, jkey, rec, stats, ed.results, reply_to};
	char ep[32];
	const char *args[] = {raw, entry, job_id && epoch ? "1" : "0", now, reason, ttl,
			      event_json ? event_json : "", ed.chan, ed.max, ed.dead_max, ep,
			      q->worker_id};
	size_t lens[12];
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
	for (int i = 1; i < 12; i++)
		lens[i] = strlen(args[i]);
	rep = eval(q, lua, reply_to && *reply_to ? 7 : 6, keys, 12, args, lens);
	if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 2 && reply_skipped)
		*reply_skipped = 1;
	free(entry);
	return ok_reply(rep);
}

int queue_dead_oversized(struct queue *q, const struct rconn_bulk *b, const char *reason)
{
	/* The descriptor is compared by length and head inside Redis, never sent back. */
	static const char lua[] = EMIT_LUA_FN
		"need(KEYS[2], 'list') need(KEYS[3], 'hash') "
		"local n = tonumber(ARGV[1]) "
		"local function same(v) return v and string.len(v) == n and "
		"  string.sub(v, 1, string.len(ARGV[2])) == ARGV[2] end "
		"local v = redis.call('LINDEX', KEYS[1], 0) "
		"if not same(v) then v = redis.call('LINDEX', KEYS[1], -1) end "
		"if not same(v) then return 0 end "
		"redis.call('LREM', KEYS[1], 1, v) "
		"push_dead(KEYS[2], ARGV[3], ARGV[4], KEYS[3]) "
		"redis.call('HINCRBY', KEYS[3], 'dead', 1) return 1";
	char proc[300], dead[128], stats[128], n[32], max[32];
	const char *keys[] = {proc, dead, stats};
	char *entry = dead_entry_oversized(q, b, reason);
	const char *args[] = {n, b->head, entry, max};
	size_t lens[4];
	int rc;

	key2(q, proc, sizeof(proc), "processing", q->worker_id);
	queue_key(q, dead, sizeof(dead), "dead");
	queue_key(q, stats, sizeof(stats), "stats");
	snprintf(n, sizeof(n), "%zu", b->len);
	snprintf(max, sizeof(max), "%ld", q->dead_max);
	lens[0] = strlen(n);
	lens[1] = b->head_len;
	lens[2] = strlen(entry);
	lens[3] = strlen(max);
	rc = ok_reply(eval(q, lua, 3, keys, 4, args, lens));
	free(entry);
	return rc;
}

int queue_uncertain_due(struct queue *q, int limit, char ***ids, size_t *n)
{
	static const char lua[] =
		"#!lua flags=no-writes\n"
		"local t = redis.call('TIME') "
		"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
		"return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now), "
		"  'LIMIT', 0, tonumber(ARGV[1]))";
	char unc[128], lim[16];
	const char *keys[] = {unc};
	const char *args[] = {lim};
	redisReply *rep;

	*ids = NULL;
	*n = 0;
	queue_key(q, unc, sizeof(unc), "uncertain");
	snprintf(lim, sizeof(lim), "%d", limit);
	rep = eval(q, lua, 1, keys, 1, args, NULL);
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
	 * entry, reason, now, ttl, event, chan, max, dead max. Acts only while the job is
	 * still uncertain without a task; returns 0 (nothing to do), 1 requeued, 2 dead. */
	static const char lua[] = EMIT_LUA_FN
		"need(KEYS[1], 'hash') need(KEYS[3], 'list') need(KEYS[4], 'list') "
		"need(KEYS[5], 'hash') need(KEYS[6], 'list') "
		"local reply = KEYS[7] "
		"if reply and not keytype_ok(reply, 'list') then reply = nil end "
		"local j = redis.call('HMGET', KEYS[1], 'state', 'taskId', 'raw') "
		"redis.call('ZREM', KEYS[2], ARGV[1]) "
		"if j[1] ~= 'uncertain' or (j[2] and j[2] ~= '') or not j[3] then return 0 end "
		"redis.call('HDEL', KEYS[1], 'raw', 'uncertainUntil') "
		"if ARGV[2] == '1' then "
		"  redis.call('RPUSH', KEYS[3], j[3]) "
		"  redis.call('HSET', KEYS[1], 'state', 'queued', 'error', ARGV[4], "
		"    'updatedAt', ARGV[5]) return 1 end "
		"push_dead(KEYS[4], ARGV[3], ARGV[10], KEYS[5]) "
		"redis.call('HSET', KEYS[1], 'state', 'dead', 'error', ARGV[4], 'updatedAt', ARGV[5]) "
		"redis.call('EXPIRE', KEYS[1], ARGV[6]) "
		"redis.call('HINCRBY', KEYS[5], 'dead', 1) "
		"emit(KEYS[6], ARGV[9], reply, ARGV[8], ARGV[7]) return 2";
	char jkey[300], unc[128], queue[128], dead[128], stats[128], now[32], ttl[32];
	struct event_dest ed;
	char *entry = create ? util_strdup("") : dead_entry(q, u->raw ? u->raw : "", u->raw_len,
							     job_id, reason, "uncertain",
							     u->attempts);
	const char *keys[] = {jkey, unc, queue, dead, stats, ed.results, u->reply_to};
	const char *args[] = {job_id, create ? "1" : "0", entry, reason, now, ttl,
			      event_json ? event_json : "", ed.chan, ed.max, ed.dead_max};
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
	rep = eval(q, lua, u->reply_to[0] ? 7 : 6, keys, 10, args, NULL);
	if (rep && rep->type == REDIS_REPLY_INTEGER)
		*acted = (int)rep->integer;
	free(entry);
	return ok_reply(rep);
}

int queue_pause_set(struct queue *q, const char *kind, long ms, const char *reason, int *set)
{
	/* An automatic pause never replaces an operator's (nor shortens it). */
	static const char lua[] =
		"local v = redis.call('GET', KEYS[1]) "
		"if v and ARGV[1] ~= 'operator' then "
		"  local ok, o = pcall(cjson.decode, v) "
		"  if ok and type(o) == 'table' and o.kind == 'operator' then return 0 end end "
		"if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) "
		"else redis.call('SET', KEYS[1], ARGV[2]) end return 1";
	char key[128], pms[32], ts[UTIL_ISO8601_SIZE], *val;
	const char *keys[] = {key};
	const char *args[3];
	cJSON *o = cJSON_CreateObject();
	redisReply *rep;

	if (set)
		*set = 0;
	queue_key(q, key, sizeof(key), "pause");
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
	rep = eval(q, lua, 1, keys, 3, args, NULL);
	if (rep && rep->type == REDIS_REPLY_INTEGER && set)
		*set = rep->integer == 1;
	free(val);
	return ok_reply(rep);
}

int queue_pause_get(struct queue *q, long *remaining_ms, char *kind, size_t kindlen,
		    char *reason, size_t reasonlen)
{
	/* read-only: runs when Redis refuses writes (OOM) and on replicas */
	static const char lua[] =
		"#!lua flags=no-writes\n"
		"return {redis.call('GET', KEYS[1]) or '', redis.call('PTTL', KEYS[1])}";
	char key[128];
	const char *keys[] = {key};
	redisReply *rep;

	*remaining_ms = 0;
	if (kind && kindlen)
		kind[0] = '\0';
	if (reason && reasonlen)
		reason[0] = '\0';
	queue_key(q, key, sizeof(key), "pause");
	rep = eval(q, lua, 1, keys, 0, NULL, NULL);
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
	static const char lua[] =
		"local v = redis.call('GET', KEYS[1]) "
		"if not v then return 0 end "
		"if ARGV[1] ~= '' then "
		"  local ok, o = pcall(cjson.decode, v) "
		"  if not (ok and type(o) == 'table' and o.kind == ARGV[1]) then return 0 end end "
		"redis.call('DEL', KEYS[1]) return 1";
	char key[128];
	const char *keys[] = {key};
	const char *args[] = {kind ? kind : ""};
	redisReply *rep;

	if (cleared)
		*cleared = 0;
	queue_key(q, key, sizeof(key), "pause");
	rep = eval(q, lua, 1, keys, 1, args, NULL);
	if (rep && rep->type == REDIS_REPLY_INTEGER && cleared)
		*cleared = rep->integer == 1;
	return ok_reply(rep);
}

int queue_pause_probe_lock(struct queue *q, long ms, int *got)
{
	char key[160];
	redisReply *rep;

	*got = 0;
	queue_key(q, key, sizeof(key), "pause:probe");
	rep = rconn_cmd(q->r, "SET %s %s NX PX %ld", key, q->worker_id, ms);
	if (rep && rep->type == REDIS_REPLY_STATUS)
		*got = 1;
	return ok_reply(rep);
}

int queue_job_not_created(struct queue *q, const char *job_id, long epoch)
{
	static const char lua[] = OWNS_LUA_FN
		"if not owns(KEYS[1], ARGV[2], ARGV[3]) then return -1 end "
		"redis.call('HSET', KEYS[1], 'state', 'queued', 'updatedAt', ARGV[1]) "
		"return redis.call('HINCRBY', KEYS[1], 'attempts', -1)";
	char key[300], now[32], ep[32];
	const char *keys[] = {key};
	const char *args[] = {now, q->worker_id, ep};

	key2(q, key, sizeof(key), "job", job_id);
	now_str(now, sizeof(now));
	snprintf(ep, sizeof(ep), "%ld", epoch);
	return ok_reply(eval(q, lua, 1, keys, 3, args, NULL));
}

int queue_poll_promote(struct queue *q, int64_t due_ms, int limit, int *moved)
{
	static const char lua[] =
		"local n = 0 "
		"for i = 1, tonumber(ARGV[2]) do "
		"  local t = redis.call('RPOP', KEYS[1]) "
		"  if not t then break end "
		"  redis.call('ZADD', KEYS[2], 'NX', ARGV[1], t) n = n + 1 "
		"end return n";
	char poll[128], due[128], d[32], lim[16];
	const char *keys[] = {poll, due};
	const char *args[] = {d, lim};
	redisReply *rep;

	*moved = 0;
	queue_key(q, poll, sizeof(poll), "polling");
	queue_key(q, due, sizeof(due), "poll:due");
	snprintf(d, sizeof(d), "%lld", (long long)due_ms);
	snprintf(lim, sizeof(lim), "%d", limit);
	rep = eval(q, lua, 2, keys, 2, args, NULL);
	if (rep && rep->type == REDIS_REPLY_INTEGER)
		*moved = (int)rep->integer;
	return ok_reply(rep);
}

int queue_poll_claim(struct queue *q, int64_t now_ms, int64_t lease_until_ms, char **task_id)
{
	static const char lua[] =
		"local t = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1) "
		"if #t == 0 then return false end "
		"redis.call('ZADD', KEYS[1], 'XX', ARGV[2], t[1]) return t[1]";
	char due[128], now[32], lease[32];
	const char *keys[] = {due};
	const char *args[] = {now, lease};
	redisReply *rep;

	*task_id = NULL;
	queue_key(q, due, sizeof(due), "poll:due");
	snprintf(now, sizeof(now), "%lld", (long long)now_ms);
	snprintf(lease, sizeof(lease), "%lld", (long long)lease_until_ms);
	rep = eval(q, lua, 1, keys, 2, args, NULL);
	if (rep && rep->type == REDIS_REPLY_STRING)
		*task_id = util_strdup(rep->str);
	return ok_reply(rep);
}

int queue_poll_reschedule(struct queue *q, const char *task_id, int64_t due_ms)
{
	char due[128];
	queue_key(q, due, sizeof(due), "poll:due");
	redisReply *rep = rconn_cmd(q->r, "ZADD %s XX %lld %s", due, (long long)due_ms, task_id);
	return ok_reply(rep);
}

int queue_poll_next_due(struct queue *q, int64_t *due_ms)
{
	char due[128];
	redisReply *rep;
	*due_ms = -1;
	queue_key(q, due, sizeof(due), "poll:due");
	rep = rconn_cmd(q->r, "ZRANGE %s 0 0 WITHSCORES", due);
	if (!rep)
		return -1;
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2)
		*due_ms = (int64_t)strtoll(rep->element[1]->str, NULL, 10);
	freeReplyObject(rep);
	return 0;
}

void queue_task_record_free(struct task_record *t)
{
	free(t->record);
	free(t->job_meta);
	t->record = t->job_meta = NULL;
}

int queue_task_get(struct queue *q, const char *task_id, int count_poll, struct task_record *out)
{
	static const char lua[] =
		"redis.call('HSETNX', KEYS[1], 'createdAt', ARGV[1]) "
		"if ARGV[2] == '1' then redis.call('HINCRBY', KEYS[1], 'polls', 1) end "
		"return redis.call('HMGET', KEYS[1], 'jobId', 'type', 'replyTo', 'createdAt', "
		"  'polls', 'attempts', 'finalizedAt', 'record', 'jobMeta', 'duplicateOf')";
	char key[KIE_TASK_ID_MAX_BYTES + 200], now[32];
	const char *keys[] = {key};
	const char *args[] = {now, count_poll ? "1" : "0"};
	redisReply *rep;

	memset(out, 0, sizeof(*out));
	key2(q, key, sizeof(key), "task", task_id);
	now_str(now, sizeof(now));
	rep = eval(q, lua, 1, keys, 2, args, NULL);
	if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 10) {
		redisReply **e = rep->element;
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
	}
	return ok_reply(rep);
}

int queue_finalize(struct queue *q, const char *task_id, const char *job_id,
		   const char *status, const char *event_json, const char *reply_to, int *done)
{
	/* returns 0 already finalized, 1 finalized now, 3 finalized now but replyTo skipped */
	static const char lua[] = EMIT_LUA_FN
		"need(KEYS[1], 'hash') need(KEYS[2], 'hash') need(KEYS[3], 'list') "
		"need(KEYS[4], 'zset') need(KEYS[5], 'hash') "
		"local reply, skipped = KEYS[6], 0 "
		"if reply and not keytype_ok(reply, 'list') then reply, skipped = nil, 2 end "
		"if redis.call('HSETNX', KEYS[1], 'finalizedAt', ARGV[3]) == 0 then "
		"  redis.call('ZREM', KEYS[4], ARGV[7]) return 0 end "
		"redis.call('HSET', KEYS[1], 'status', ARGV[2]) "
		"redis.call('EXPIRE', KEYS[1], ARGV[8]) "
		"redis.call('ZREM', KEYS[4], ARGV[7]) "
		"if ARGV[6] == '1' then "
		"  redis.call('HSET', KEYS[2], 'state', ARGV[2], 'updatedAt', ARGV[3], 'taskId', ARGV[7]) "
		"  redis.call('EXPIRE', KEYS[2], ARGV[8]) end "
		"if ARGV[1] ~= '' then emit(KEYS[3], ARGV[5], reply, ARGV[4], ARGV[1]) "
		"  redis.call('HINCRBY', KEYS[5], ARGV[2], 1) "
		"else redis.call('HINCRBY', KEYS[5], 'duplicate_tasks_collected', 1) end "
		"return 1 + skipped";
	char tkey[KIE_TASK_ID_MAX_BYTES + 200], jkey[300], due[128], stats[128], now[32], ttl[32];
	struct event_dest ed;
	const char *keys[6] = {tkey, jkey, ed.results, due, stats, reply_to};
	const char *args[] = {event_json ? event_json : "", status, now, ed.chan, ed.max,
			      job_id && *job_id ? "1" : "0", task_id, ttl};
	redisReply *rep;

	*done = 0;
	key2(q, tkey, sizeof(tkey), "task", task_id);
	key2(q, jkey, sizeof(jkey), "job", job_id && *job_id ? job_id : "-");
	queue_key(q, due, sizeof(due), "poll:due");
	queue_key(q, stats, sizeof(stats), "stats");
	event_dest_init(q, &ed);
	now_str(now, sizeof(now));
	snprintf(ttl, sizeof(ttl), "%ld", q->record_ttl_s);
	rep = eval(q, lua, reply_to && *reply_to ? 6 : 5, keys, 8, args, NULL);
	if (rep && rep->type == REDIS_REPLY_INTEGER) {
		*done = rep->integer != 0;
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

int queue_heartbeat(struct queue *q, long ttl_ms, const char *info, int nconsumers,
		    const char *const *job_ids, const long *epochs)
{
	/* ARGV: prefix, own id prefix, n, info, ttl, then per consumer: job id, epoch. The
	 * lease of each job a consumer owns is renewed in the same step as its heartbeat, by
	 * Redis's clock. Keys are built from the prefix (one slot with a {tag} prefix). */
	static const char lua[] =
		"local t = redis.call('TIME') "
		"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
		"local p, ttl = ARGV[1], tonumber(ARGV[5]) "
		"for i = 0, tonumber(ARGV[3]) - 1 do "
		"  local c = ARGV[2] .. i "
		"  redis.call('SET', p .. ':worker:' .. c, ARGV[4], 'PX', ttl) "
		"  redis.call('SADD', p .. ':workers', c) "
		"  local id, ep = ARGV[6 + 2 * i], ARGV[7 + 2 * i] "
		"  if id and id ~= '' then "
		"    local jk = p .. ':job:' .. id "
		"    local o = redis.call('HMGET', jk, 'owner', 'epoch') "
		"    if o[1] == c and o[2] == ep then "
		"      redis.call('HSET', jk, 'lease', string.format('%d', now + ttl)) end end end "
		"return 1";
	char own[160], n[16], ttl[32];
	const char **args = util_xcalloc(5 + 2 * (size_t)nconsumers, sizeof(char *));
	char (*eps)[24] = util_xcalloc((size_t)nconsumers, sizeof(*eps));
	int rc;

	snprintf(own, sizeof(own), "%s#", q->worker_id);
	snprintf(n, sizeof(n), "%d", nconsumers);
	snprintf(ttl, sizeof(ttl), "%ld", ttl_ms);
	args[0] = q->prefix; args[1] = own; args[2] = n; args[3] = info; args[4] = ttl;
	for (int i = 0; i < nconsumers; i++) {
		snprintf(eps[i], sizeof(eps[i]), "%ld", epochs ? epochs[i] : 0);
		args[5 + 2 * i] = job_ids && job_ids[i] ? job_ids[i] : "";
		args[6 + 2 * i] = eps[i];
	}
	rc = ok_reply(eval(q, lua, 0, NULL, 5 + 2 * nconsumers, args, NULL));
	free(eps);
	free(args);
	return rc;
}

/* recover(consumer, count): returns a consumer's claimed descriptors to the queue and
 * its claimed callbacks to <p>:callbacks. When count is true (its heartbeat expired)
 * each descriptor's return is counted (<p>:recoveries); the runner that claims it next
 * dead-letters it past KIE_MAX_RECOVERIES, through the one dead path (event, state).
 * A descriptor too large to read is not counted: it cannot have killed its worker.
 * Keys are built from the prefix (ARGV[1]): with a {hash tag} prefix they share a slot. */
#define RECOVER_LUA_FN \
	"local p = ARGV[1] " \
	"local function recover(w, count) " \
	"  local proc, back = p .. ':processing:' .. w, 0 " \
	"  while true do " \
	"    local item = redis.call('RPOP', proc) " \
	"    if not item then break end " \
	"    if count and string.len(item) <= tonumber(ARGV[5]) then " \
	"      redis.call('HINCRBY', p .. ':recoveries', redis.sha1hex(item), 1) end " \
	"    redis.call('RPUSH', p .. ':queue', item) " \
	"    back = back + 1 " \
	"  end " \
	"  local cbp = p .. ':callbacks:processing:' .. w " \
	"  while redis.call('RPOPLPUSH', cbp, p .. ':callbacks') do end " \
	"  redis.call('SREM', p .. ':workers', w) " \
	"  if count then redis.call('HINCRBY', p .. ':stats', 'recovered', back) " \
	"  else redis.call('DEL', p .. ':worker:' .. w) end " \
	"  return back, 0 " \
	"end "

int queue_recover_dead_workers(struct queue *q, long max_recoveries, size_t max_keep,
			       long *recovered, long *dead)
{
	/* ARGV: prefix, max, now, own consumer-id prefix, largest descriptor read, dead max.
	 * Returns {consumer, back, dead}... */
	static const char lua[] = RECOVER_LUA_FN
		"local out = {} "
		"for _, w in ipairs(redis.call('SMEMBERS', p .. ':workers')) do "
		"  if string.sub(w, 1, #ARGV[4]) ~= ARGV[4] and "
		"     redis.call('EXISTS', p .. ':worker:' .. w) == 0 then "
		"    local b, d = recover(w, true) "
		"    out[#out + 1] = w out[#out + 1] = b out[#out + 1] = d end end "
		"return out";
	char max[32], ts[UTIL_ISO8601_SIZE], own[160], keep[32], dmax[32];
	const char *args[] = {q->prefix, max, ts, own, keep, dmax};
	redisReply *rep;
	long quiet = 0;

	*recovered = *dead = 0;
	snprintf(max, sizeof(max), "%ld", max_recoveries);
	snprintf(keep, sizeof(keep), "%zu", max_keep);
	snprintf(dmax, sizeof(dmax), "%ld", q->dead_max);
	snprintf(own, sizeof(own), "%s#", q->worker_id);
	util_iso8601(util_now_ms(), ts);
	rep = eval(q, lua, 0, NULL, 6, args, NULL);
	for (size_t i = 0; rep && rep->type == REDIS_REPLY_ARRAY && i + 2 < rep->elements; i += 3) {
		const char *w = rep->element[i]->str;
		long b = (long)rep->element[i + 1]->integer, d = (long)rep->element[i + 2]->integer;
		if (b == 0 && d == 0) {
			quiet++;
			continue;
		}
		log_warn(NULL, NULL, "worker consumer %s is dead (heartbeat expired): %ld job(s) "
			 "back on the queue", w, b);
		*recovered += b;
		*dead += d;
	}
	if (quiet)
		log_info(NULL, NULL, "%ld consumer(s) of stopped workers left without claimed jobs",
			 quiet);
	return ok_reply(rep);
}

int queue_release_self(struct queue *q, int nconsumers, long *returned)
{
	static const char lua[] = RECOVER_LUA_FN
		"local back = 0 "
		"for i = 0, tonumber(ARGV[5]) - 1 do "
		"  local b = recover(ARGV[4] .. i, false) back = back + b end "
		"return back";
	char own[160], n[16];
	const char *args[] = {q->prefix, "0", "", own, n};
	redisReply *rep;

	*returned = 0;
	snprintf(own, sizeof(own), "%s#", q->worker_id);
	snprintf(n, sizeof(n), "%d", nconsumers);
	rep = eval(q, lua, 0, NULL, 5, args, NULL);
	if (rep && rep->type == REDIS_REPLY_INTEGER)
		*returned = (long)rep->integer;
	return ok_reply(rep);
}

int queue_promote_delayed(struct queue *q, int64_t now_ms, long *moved)
{
	static const char lua[] =
		"local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100) "
		"for _, it in ipairs(items) do "
		"  redis.call('ZREM', KEYS[1], it) redis.call('RPUSH', KEYS[2], it) end "
		"return #items";
	char delayed[128], queue[128], now[32];
	const char *keys[] = {delayed, queue};
	const char *args[] = {now};
	redisReply *rep;

	*moved = 0;
	queue_key(q, delayed, sizeof(delayed), "delayed");
	queue_key(q, queue, sizeof(queue), "queue");
	snprintf(now, sizeof(now), "%lld", (long long)now_ms);
	rep = eval(q, lua, 2, keys, 1, args, NULL);
	if (rep && rep->type == REDIS_REPLY_INTEGER)
		*moved = (long)rep->integer;
	return ok_reply(rep);
}

int queue_pool_idle(struct queue *q, int with_callbacks, int *idle)
{
	static const char lua[] =
		"local n = redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2]) + "
		"  redis.call('ZCARD', KEYS[3]) + redis.call('ZCARD', KEYS[4]) + "
		"  redis.call('ZCARD', KEYS[6]) "
		"if KEYS[7] then n = n + redis.call('LLEN', KEYS[7]) end "
		"for _, w in ipairs(redis.call('SMEMBERS', KEYS[5])) do "
		"  n = n + redis.call('LLEN', ARGV[1] .. ':processing:' .. w) end "
		"return n";
	char queue[128], poll[128], due[128], delayed[128], workers[128], uncertain[128],
		callbacks[128];
	const char *keys[] = {queue, poll, due, delayed, workers, uncertain, callbacks};
	const char *args[] = {q->prefix};
	redisReply *rep;

	*idle = 0;
	queue_key(q, queue, sizeof(queue), "queue");
	queue_key(q, poll, sizeof(poll), "polling");
	queue_key(q, due, sizeof(due), "poll:due");
	queue_key(q, delayed, sizeof(delayed), "delayed");
	queue_key(q, workers, sizeof(workers), "workers");
	queue_key(q, uncertain, sizeof(uncertain), "uncertain");
	queue_key(q, callbacks, sizeof(callbacks), "callbacks");
	rep = eval(q, lua, with_callbacks ? 7 : 6, keys, 1, args, NULL);
	if (rep && rep->type == REDIS_REPLY_INTEGER)
		*idle = rep->integer == 0;
	return ok_reply(rep);
}

/* ---- result copies: plain commands on the task hash (queue.h) ---- */

int queue_task_copying(struct queue *q, const char *task_id, int *yes)
{
	char key[KIE_TASK_ID_MAX_BYTES + 200];
	redisReply *rep;

	*yes = 0;
	key2(q, key, sizeof(key), "task", task_id);
	rep = rconn_cmd(q->r, "HEXISTS %s copyResult", key);
	if (rep && rep->type == REDIS_REPLY_INTEGER)
		*yes = rep->integer == 1;
	return ok_reply(rep);
}

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
	return ok_reply(rconn_cmd(q->r, "ZADD %s LT %lld %s", due, (long long)due_ms, task_id));
}
