/* budget.c — the day keys, group budgets, the heal sweep and a release from C, behind
 * budget.h (the arithmetic is lua/lib/budget.lua). */
#include "pool/budget.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/metrics.h"
#include "core/util.h"
#include "lua_scripts.h"
#include "pool/sched_accounts.h"
#include "redis/script.h"

void budget_day(int64_t t_ms, int days_back, char *out, size_t outlen)
{
	time_t t = (time_t)(t_ms / 1000) - (time_t)days_back * 86400;
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, outlen, "%04d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

void budget_day_key(const struct queue *q, const char *day, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s:budget:%s", q->prefix, day);
}

void spend_day_key(const struct queue *q, const char *day, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s:spend:%s", q->prefix, day);
}

void spend_groups_key(const struct queue *q, const char *day, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s:spend:%s:groups", q->prefix, day);
}

int budget_group_valid(const char *g)
{
	size_t n = g ? strlen(g) : 0;
	if (n == 0 || n > BUDGET_GROUP_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = g[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("_.:@-", c)))
			return 0;
	}
	return 1;
}

static int done(struct queue *q, redisReply *rep)
{
	return queue_done(q, rep);
}

int budget_group_set(struct queue *q, const char *group, double credits)
{
	char key[128], v[64];
	queue_key(q, key, sizeof(key), "budget:group");
	if (!(credits > 0))
		return done(q, rconn_cmd(q->r, "HDEL %s %s", key, group));
	snprintf(v, sizeof(v), "%.17g", credits);
	return done(q, rconn_cmd(q->r, "HSET %s %s %s", key, group, v));
}

int budget_heal(struct queue *q, int64_t now_ms, long age_ms, long *healed)
{
	char open[128], groups[128], models[128], today[16], yday[16], kt[160], ky[160];
	char cutoff[32], now[32], age[32], limit[16];
	redisReply *rep;
	int rc = 0;

	*healed = 0;
	queue_key(q, open, sizeof(open), "budget:open");
	queue_key(q, groups, sizeof(groups), "budget:group");
	queue_key(q, models, sizeof(models), "budget:models");
	budget_day(now_ms, 0, today, sizeof(today));
	budget_day(now_ms, 1, yday, sizeof(yday));
	budget_day_key(q, today, kt, sizeof(kt));
	budget_day_key(q, yday, ky, sizeof(ky));
	snprintf(cutoff, sizeof(cutoff), "%lld", (long long)(now_ms - age_ms));
	snprintf(now, sizeof(now), "%lld", (long long)now_ms);
	snprintf(age, sizeof(age), "%ld", age_ms);
	snprintf(limit, sizeof(limit), "%d", BUDGET_HEAL_BATCH);
	rep = rconn_cmd(q->r, "ZRANGEBYSCORE %s -inf %s LIMIT 0 %s", open, cutoff, limit);
	if (!rep || rep->type != REDIS_REPLY_ARRAY)
		return done(q, rep);
	for (size_t i = 0; i < rep->elements; i++) {
		const redisReply *m = rep->element[i];
		char job_key[600], job_id[520];
		const char *bar;
		if (m->type != REDIS_REPLY_STRING || m->len > 500 || !(bar = strchr(m->str, '|')) ||
		    bar - m->str != 8)
			continue; /* not ours: left alone */
		util_strlcpy(job_id, bar + 1, sizeof(job_id));
		snprintf(job_key, sizeof(job_key), "%s:job:%s", q->prefix, job_id);
		const char *keys[] = {open, job_key, kt, ky, groups, models};
		const char *args[] = {m->str, job_id, today, yday, now, age};
		redisReply *h = script_run(q->r, &lua_budget_heal, 0, 6, keys, 6, args, NULL);
		if (h && h->type == REDIS_REPLY_INTEGER && (h->integer == 1 || h->integer == 2))
			(*healed)++;
		if (!h || h->type == REDIS_REPLY_ERROR) {
			rc = done(q, h);
			break;
		}
		freeReplyObject(h);
	}
	freeReplyObject(rep);
	return rc;
}

int budget_release(struct queue *q, const char *job_id, int64_t now_ms, double *credits)
{
	char job_key[600], open[128], groups[128], today[16], yday[16], kt[160], ky[160];
	const char *keys[] = {job_key, kt, ky, groups, open};
	const char *args[] = {job_id, today, yday};
	redisReply *rep;

	*credits = 0;
	snprintf(job_key, sizeof(job_key), "%s:job:%s", q->prefix, job_id);
	queue_key(q, open, sizeof(open), "budget:open");
	queue_key(q, groups, sizeof(groups), "budget:group");
	budget_day(now_ms, 0, today, sizeof(today));
	budget_day(now_ms, 1, yday, sizeof(yday));
	budget_day_key(q, today, kt, sizeof(kt));
	budget_day_key(q, yday, ky, sizeof(ky));
	rep = script_run(q->r, &lua_budget_release, 1, 5, keys, 3, args, NULL);
	if (rep && rep->type == REDIS_REPLY_STRING)
		*credits = strtod(rep->str, NULL);
	return done(q, rep);
}

int budget_unpark(struct queue *q, const char *acct, long pool_budget, int64_t now_ms,
		  long *woken)
{
	static const char *const names[] = {"overBudget", "overBudgetEst", "ready", "state",
					    "items"};
	char k[8][300], today[16], pool[32], most[16];
	const char *keys[8] = {k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7]};
	const char *args[2] = {pool, most};
	redisReply *rep;

	if (woken)
		*woken = 0;
	for (int i = 0; i < 5; i++)
		snprintf(k[i], sizeof(k[i]), "%s:sched:%s:%s", q->prefix, acct, names[i]);
	budget_day(now_ms, 0, today, sizeof(today));
	budget_day_key(q, today, k[5], sizeof(k[5]));
	queue_key(q, k[6], sizeof(k[6]), "budget:group");
	snprintf(k[7], sizeof(k[7]), "%s:sched:%s:wake", q->prefix, acct);
	snprintf(pool, sizeof(pool), "%ld", pool_budget);
	snprintf(most, sizeof(most), "%d", 1000);
	rep = script_run(q->r, &lua_budget_unpark, 1, 8, keys, 2, args, NULL);
	if (woken && rep && rep->type == REDIS_REPLY_INTEGER)
		*woken = (long)rep->integer;
	return done(q, rep);
}

int budget_unpark_all(struct queue *q, long pool_budget, int64_t now_ms, long *woken)
{
	struct sched_accounts *s = util_xcalloc(1, sizeof(*s));
	int rc = sched_accounts_list(q, s);

	if (woken)
		*woken = 0;
	for (int i = 0; i < s->n; i++) {
		long n = 0;
		if (budget_unpark(q, s->v[i].name, pool_budget, now_ms, &n) != 0)
			rc = -1;
		if (woken)
			*woken += n;
	}
	free(s);
	return rc;
}

int budget_gauges(struct queue *q, long pool_budget, int64_t now_ms)
{
	char gkey[128], dkey[160], today[16], f[BUDGET_GROUP_MAX + 16];
	const char *names[METRICS_BUDGET_GROUPS_MAX + 1];
	double budget[METRICS_BUDGET_GROUPS_MAX + 1], used[METRICS_BUDGET_GROUPS_MAX + 1];
	redisReply *g, *d;
	int n = 0;

	queue_key(q, gkey, sizeof(gkey), "budget:group");
	budget_day(now_ms, 0, today, sizeof(today));
	budget_day_key(q, today, dkey, sizeof(dkey));
	g = rconn_cmd(q->r, "HGETALL %s", gkey);
	d = rconn_cmd(q->r, "HGETALL %s", dkey);
	if (!g || g->type != REDIS_REPLY_ARRAY || !d || d->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(g);
		return done(q, d);
	}
	/* the figure of field name in today's hash */
#define FIG(name, out) do { \
		out = 0; \
		for (size_t k_ = 0; k_ + 1 < d->elements; k_ += 2) \
			if (d->element[k_]->str && strcmp(d->element[k_]->str, (name)) == 0) \
				out = strtod(d->element[k_ + 1]->str, NULL); \
	} while (0)
	double spent, reserved;
	FIG("spent", spent);
	FIG("reserved", reserved);
	names[n] = "(pool)";
	budget[n] = (double)pool_budget;
	used[n++] = spent + reserved;
	for (size_t i = 0; i + 1 < g->elements && n <= METRICS_BUDGET_GROUPS_MAX; i += 2) {
		if (!g->element[i]->str || !g->element[i + 1]->str)
			continue;
		names[n] = g->element[i]->str;
		budget[n] = strtod(g->element[i + 1]->str, NULL);
		snprintf(f, sizeof(f), "spent|%s", names[n]);
		FIG(f, spent);
		snprintf(f, sizeof(f), "reserved|%s", names[n]);
		FIG(f, reserved);
		used[n++] = spent + reserved;
	}
#undef FIG
	metrics_budgets(names, budget, used, n);
	freeReplyObject(g);
	freeReplyObject(d);
	return 0;
}
