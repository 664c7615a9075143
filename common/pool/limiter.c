/* limiter.c — the sliding-window log with reservations behind limiter.h. */
#include "pool/limiter.h"

#include <stdio.h>
#include <string.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "lua_scripts.h"

/* The scripts are common/pool/lua/limiter_acquire.lua and limiter_penalize.lua. */

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
	l->metric = strcmp(name, "create") == 0 ? METRICS_LIM_CREATE : METRICS_LIM_QUERY;
	l->limit = limit;
	l->window_ms = window_ms + margin_ms;
	/* at least LIMITER_LATE_MIN_MS: the sleep itself wakes a few ms past the slot, and
	 * with no margin every wake would count as late and reserve anew, for ever */
	l->late_ms = margin_ms / 2 > LIMITER_LATE_MIN_MS ? margin_ms / 2 : LIMITER_LATE_MIN_MS;
	l->backoff_base_ms = backoff_base_ms;
	l->backoff_max_ms = backoff_max_ms;
	util_strlcpy(l->member_prefix, member_prefix, sizeof(l->member_prefix));
}

int limiter_try(struct limiter *l, long *wait_ms, int *blocked)
{
	char limit[32], window[32], late[32];
	const char *keys[2], *args[6];
	char burst[32];
	redisReply *rep;
	int rc = -1, fresh = 0;

	*wait_ms = 0;
	*blocked = 0;
	if (!l->member[0]) { /* a new member has no reservation to look up */
		snprintf(l->member, sizeof(l->member), "%s:%lu", l->member_prefix, ++l->seq);
		fresh = 1;
	}
	snprintf(limit, sizeof(limit), "%ld", l->limit);
	snprintf(window, sizeof(window), "%ld", l->window_ms);
	snprintf(late, sizeof(late), "%ld", l->late_ms);
	keys[0] = l->log_key; keys[1] = l->state_key;
	args[0] = limit; args[1] = window; args[2] = l->member; args[3] = late;
	args[4] = fresh ? "1" : "0";
	snprintf(burst, sizeof(burst), "%ld", l->burst);
	args[5] = burst;
	rep = script_run(l->r, &lua_limiter_acquire, 0, 2, keys, 6, args, NULL);
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
/* Counts a call that had to wait, and how long since start (monotonic ms); returns that. */
static long count_wait(const struct limiter *l, int64_t start)
{
	long ms = (long)(util_monotonic_ms() - start);
	if (l->waits)
		metrics_limiter_wait((enum metrics_limiter)l->metric, ms / 1000.0);
	return ms;
}

int limiter_acquire(struct limiter *l, const volatile sig_atomic_t *stop, long *waited_ms)
{
	int64_t start = util_monotonic_ms();
	long ms;
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
	ms = count_wait(l, start);
	if (waited_ms)
		*waited_ms = ms;
	return -1;
granted:
	ms = count_wait(l, start);
	if (waited_ms)
		*waited_ms = ms;
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

int limiter_reserve(struct limiter *l, const volatile sig_atomic_t *stop, long lead_ms)
{
	l->waits = l->blocked_waits = 0;
	for (;;) {
		long wait = 0;
		int blocked = 0, rc;
		if (stop && *stop) {
			limiter_cancel(l);
			return -1;
		}
		rc = limiter_try(l, &wait, &blocked);
		if (rc == 0)
			return 0;
		if (rc < 0) {
			util_sleep_ms(100);
			continue;
		}
		if (!blocked && wait <= lead_ms)
			return 1; /* close enough: the caller prepares, limiter_acquire() confirms */
		l->waits++;
		l->blocked_waits += blocked;
		for (int64_t end = util_monotonic_ms() + wait - (blocked ? -2 : lead_ms);
		     !(stop && *stop);) {
			int64_t left = end - util_monotonic_ms();
			if (left <= 0)
				break;
			util_sleep_ms(left < 100 ? left : 100);
		}
	}
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
	const char *keys[2], *args[3];
	redisReply *rep;
	long ms = 0;

	*first = 0;
	snprintf(base, sizeof(base), "%ld", l->backoff_base_ms);
	snprintf(max, sizeof(max), "%ld", l->backoff_max_ms);
	keys[0] = l->log_key; keys[1] = l->state_key;
	args[0] = base; args[1] = max; args[2] = why;
	rep = script_run(l->r, &lua_limiter_penalize, 1, 2, keys, 3, args, NULL);
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
