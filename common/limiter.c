/* limiter.c — the sliding-window log with reservations behind limiter.h. */
#include "limiter.h"

#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

/* KEYS: log, state. ARGV: limit, window_ms (with margin), member, late_ms.
 * Returns {granted 0|1, wait_ms, blocked 0|1}. Time is Redis's (TIME), never a worker's. */
static const char acquire_lua[] =
	"local t = redis.call('TIME') "
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
	"local limit, window, late = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4]) "
	"local blocked = tonumber(redis.call('HGET', KEYS[2], 'blockedUntil') or '0') or 0 "
	"local s = redis.call('ZSCORE', KEYS[1], ARGV[3]) "
	"if blocked > now then "
	"  if s then redis.call('ZREM', KEYS[1], ARGV[3]) end "
	"  return {0, blocked - now, 1} end "
	"if s then "
	"  s = tonumber(s) "
	"  if s > now then return {0, s - now, 0} end "
	"  if now - s <= late then return {1, 0, 0} end "
	/* woken too late: the call would not happen at the time logged, so log it anew */
	"  redis.call('ZREM', KEYS[1], ARGV[3]) end "
	"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window) "
	"local n = redis.call('ZCARD', KEYS[1]) "
	"local at = now "
	"if n > 0 then "
	"  local last = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]) "
	"  if last > at then at = last end "
	/* the log stays sorted by appending, so the window rule is s[n+1] >= s[n+1-limit] + W */
	"  if n >= limit then "
	"    local e = tonumber(redis.call('ZRANGE', KEYS[1], n - limit, n - limit, "
	"      'WITHSCORES')[2]) + window "
	"    if e > at then at = e end end end "
	"redis.call('ZADD', KEYS[1], at, ARGV[3]) "
	"redis.call('PEXPIRE', KEYS[1], at - now + window + 1000) "
	"if at <= now then return {1, 0, 0} end "
	"return {0, at - now, 0}";

/* KEYS: log, state. ARGV: backoff_base_ms, backoff_max_ms, reason.
 * Returns {pause_ms, started 0|1}. Refusals during a pause join it; one that comes
 * within twice the last backoff after it ended doubles it. */
static const char penalize_lua[] =
	"local t = redis.call('TIME') "
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
	"local st = redis.call('HMGET', KEYS[2], 'blockedUntil', 'backoffMs') "
	"local untl = tonumber(st[1] or '0') or 0 "
	"local b = tonumber(st[2] or '0') or 0 "
	"if untl > now then return {untl - now, 0} end "
	"local base, max = tonumber(ARGV[1]), tonumber(ARGV[2]) "
	"if b > 0 and now - untl < 2 * b then b = math.min(b * 2, max) else b = base end "
	"untl = now + b "
	"redis.call('HSET', KEYS[2], 'blockedUntil', string.format('%d', untl), "
	"  'backoffMs', string.format('%d', b), 'lastReason', ARGV[3], "
	"  'lastAt', string.format('%d', now)) "
	"redis.call('HINCRBY', KEYS[2], 'penalties', 1) "
	"redis.call('PEXPIRE', KEYS[2], 86400000) "
	/* reservations not yet due would call into the refusal: their holders ask again */
	"redis.call('ZREMRANGEBYSCORE', KEYS[1], string.format('(%d', now), '+inf') "
	"return {b, 1}";

void limiter_account_id(const char *token, char out[17])
{
	char hex[65];
	crypto_sha256_hex(token, strlen(token), hex);
	memcpy(out, hex, 16);
	out[16] = '\0';
}

void limiter_init(struct limiter *l, struct rconn *r, const char *account_prefix,
		  const char *account_id, const char *name, long limit, long window_ms,
		  long margin_ms, long backoff_base_ms, long backoff_max_ms,
		  const char *member_prefix)
{
	memset(l, 0, sizeof(*l));
	l->r = r;
	snprintf(l->log_key, sizeof(l->log_key), "%s:{%s}:%s", account_prefix, account_id, name);
	snprintf(l->state_key, sizeof(l->state_key), "%s:state", l->log_key);
	l->limit = limit;
	l->window_ms = window_ms + margin_ms;
	l->late_ms = margin_ms / 2;
	l->backoff_base_ms = backoff_base_ms;
	l->backoff_max_ms = backoff_max_ms;
	util_strlcpy(l->member_prefix, member_prefix, sizeof(l->member_prefix));
}

int limiter_try(struct limiter *l, long *wait_ms, int *blocked)
{
	char limit[32], window[32], late[32];
	const char *argv[9];
	redisReply *rep;
	int rc = -1;

	*wait_ms = 0;
	*blocked = 0;
	if (!l->member[0])
		snprintf(l->member, sizeof(l->member), "%s:%lu", l->member_prefix, ++l->seq);
	snprintf(limit, sizeof(limit), "%ld", l->limit);
	snprintf(window, sizeof(window), "%ld", l->window_ms);
	snprintf(late, sizeof(late), "%ld", l->late_ms);
	argv[0] = "EVAL"; argv[1] = acquire_lua; argv[2] = "2";
	argv[3] = l->log_key; argv[4] = l->state_key;
	argv[5] = limit; argv[6] = window; argv[7] = l->member; argv[8] = late;
	rep = rconn_argv(l->r, 9, argv, NULL);
	if (!rep)
		return -1;
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3) {
		if (rep->element[0]->integer == 1) {
			/* used: it stays in the log as the call's time */
			util_strlcpy(l->granted, l->member, sizeof(l->granted));
			l->member[0] = '\0';
			rc = 0;
		} else {
			*wait_ms = (long)rep->element[1]->integer;
			*blocked = rep->element[2]->integer == 1;
			if (*blocked)
				l->member[0] = '\0'; /* dropped by the script */
			rc = 1;
		}
	} else if (rep->type == REDIS_REPLY_ERROR) {
		log_error(NULL, NULL, "rate limiter %s: Redis error: %s", l->log_key, rep->str);
		*wait_ms = 1000; /* e.g. OOM or READONLY: do not spin, do not call KIE unmetered */
		rc = 1;
	}
	freeReplyObject(rep);
	return rc;
}

/* kie_limiter_waits_total / kie_limiter_wait_seconds_total, for a call that slept */
static void count_wait(const struct limiter *l, double start_s)
{
	size_t n = strlen(l->log_key);
	if (l->waits)
		metrics_limiter_wait(n >= 6 && strcmp(l->log_key + n - 6, "create") == 0
				     ? METRICS_LIM_CREATE : METRICS_LIM_QUERY,
				     metrics_now_s() - start_s);
}

int limiter_acquire(struct limiter *l, const volatile sig_atomic_t *stop, long *waited_ms)
{
	double start_s = metrics_now_s();
	int64_t start = util_monotonic_ms();
	int rc;

	l->waits = l->blocked_waits = 0;
	for (;;) {
		long wait = 0;
		int blocked = 0;
		if (stop && *stop)
			break;
		rc = limiter_try(l, &wait, &blocked);
		if (rc == 0)
			goto granted;
		if (rc < 0) {
			util_sleep_ms(100); /* rconn already backed off; look at stop again */
			continue;
		}
		l->waits++;
		l->blocked_waits += blocked;
		/* the script's answer is exact: sleep it (plus a tick so Redis's clock has moved
		 * past the slot), in slices so a stop is seen */
		for (int64_t end = util_monotonic_ms() + wait + 2; !(stop && *stop);) {
			int64_t left = end - util_monotonic_ms();
			if (left <= 0)
				break;
			util_sleep_ms(left < 100 ? left : 100);
		}
	}
	limiter_cancel(l);
	count_wait(l, start_s);
	if (waited_ms)
		*waited_ms = (long)(util_monotonic_ms() - start);
	return -1;
granted:
	count_wait(l, start_s);
	if (waited_ms)
		*waited_ms = (long)(util_monotonic_ms() - start);
	return 0;
}

/* Takes member out of the log and forgets it (a slot given back is never a violation). */
static void zrem_member(struct limiter *l, char *member)
{
	const char *argv[3];
	redisReply *rep;

	if (!member[0])
		return;
	argv[0] = "ZREM"; argv[1] = l->log_key; argv[2] = member;
	rep = rconn_argv(l->r, 3, argv, NULL);
	if (rep)
		freeReplyObject(rep);
	member[0] = '\0';
}

void limiter_cancel(struct limiter *l)
{
	zrem_member(l, l->member);
}

void limiter_unuse(struct limiter *l)
{
	zrem_member(l, l->granted);
}

long limiter_penalize(struct limiter *l, const char *why, int *first)
{
	char base[32], max[32];
	const char *argv[8];
	redisReply *rep;
	long ms = 0;

	*first = 0;
	snprintf(base, sizeof(base), "%ld", l->backoff_base_ms);
	snprintf(max, sizeof(max), "%ld", l->backoff_max_ms);
	argv[0] = "EVAL"; argv[1] = penalize_lua; argv[2] = "2";
	argv[3] = l->log_key; argv[4] = l->state_key;
	argv[5] = base; argv[6] = max; argv[7] = why;
	rep = rconn_argv_retry(l->r, 8, argv, NULL);
	if (!rep)
		return 0;
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
		ms = (long)rep->element[0]->integer;
		*first = rep->element[1]->integer == 1;
	} else if (rep->type == REDIS_REPLY_ERROR) {
		log_error(NULL, NULL, "rate limiter %s: Redis error: %s", l->log_key, rep->str);
	}
	freeReplyObject(rep);
	return ms;
}
