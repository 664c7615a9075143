/* sched_view.c — the operator's reads of the scheduling structure (sched_view.h). Plain
 * commands: a view, not a step (the numbers may be a moment apart). */
#include "ops/sched_view.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "pool/sched.h"
#include "pool/sched_accounts.h"

static void skey(const struct queue *q, char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s:sched:%s:%s", q->prefix, SCHED_ACCOUNT, name);
}

static redisReply *cmd(struct queue *q, int argc, const char **argv, char *err, size_t errlen)
{
	redisReply *rep = rconn_argv_retry(q->r, argc, argv, NULL);
	if (!rep || rep->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen, "Redis %s", rep ? rep->str : "unreachable");
		if (rep)
			freeReplyObject(rep);
		return NULL;
	}
	return rep;
}

static long long num(const redisReply *e)
{
	long long v = 0;
	if (e && e->type == REDIS_REPLY_INTEGER)
		return e->integer;
	if (e && e->type == REDIS_REPLY_STRING && util_parse_ll(e->str, &v) == 0)
		return v;
	return 0;
}

/* HGETALL key as a cJSON object of numbers (new), or NULL. */
static cJSON *hash_numbers(struct queue *q, const char *key, char *err, size_t errlen)
{
	const char *argv[2] = {"HGETALL", key};
	redisReply *rep = cmd(q, 2, argv, err, errlen);
	cJSON *o;
	if (!rep)
		return NULL;
	o = cJSON_CreateObject();
	for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i + 1 < rep->elements; i += 2)
		cJSON_AddNumberToObject(o, rep->element[i]->str, (double)num(rep->element[i + 1]));
	freeReplyObject(rep);
	return o;
}

static int by_queued_desc(const void *a, const void *b)
{
	double x = cJSON_GetNumberValue(*(cJSON *const *)a);
	double y = cJSON_GetNumberValue(*(cJSON *const *)b);
	return x < y ? 1 : x > y ? -1 : strcmp((*(cJSON *const *)a)->string,
					       (*(cJSON *const *)b)->string);
}

static double member_num(const cJSON *o, const char *name, double dflt)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsNumber(it) ? it->valuedouble : dflt;
}

/* Adds the numbers of hash key to those of sum (by field). 0 or -1 (err). */
static int hash_add(struct queue *q, const char *key, cJSON *sum, char *err, size_t errlen)
{
	cJSON *h = hash_numbers(q, key, err, errlen), *it;
	if (!h)
		return -1;
	cJSON_ArrayForEach(it, h) {
		cJSON *have = cJSON_GetObjectItemCaseSensitive(sum, it->string);
		if (have)
			cJSON_SetNumberValue(have, have->valuedouble + it->valuedouble);
		else
			cJSON_AddNumberToObject(sum, it->string, it->valuedouble);
	}
	cJSON_Delete(h);
	return 0;
}

/* The queuedAt of the oldest among the next 100 of ready (by queuedAt in items), or -1. */
static int oldest_ready(struct queue *q, const char *ready, const char *items,
			long long *oldest, char *err, size_t errlen)
{
	const char *zr[] = {"ZRANGE", ready, "0", "99"};
	redisReply *rep = cmd(q, 4, zr, err, errlen);
	if (!rep)
		return -1;
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements > 0) {
		const char **hm = util_xcalloc(rep->elements + 2, sizeof(char *));
		redisReply *v;
		hm[0] = "HMGET";
		hm[1] = items;
		for (size_t i = 0; i < rep->elements; i++)
			hm[2 + i] = rep->element[i]->str;
		v = cmd(q, (int)rep->elements + 2, hm, err, errlen);
		free(hm);
		for (size_t i = 0; v && v->type == REDIS_REPLY_ARRAY && i < v->elements; i++) {
			long long qa;
			const char *s = v->element[i]->type == REDIS_REPLY_STRING ?
					v->element[i]->str : NULL;
			/* "prio\tgroup\tqueuedAt\t..." */
			s = s ? strchr(s, '\t') : NULL;
			s = s ? strchr(s + 1, '\t') : NULL;
			if (s && sscanf(s + 1, "%lld", &qa) == 1 && (*oldest < 0 || qa < *oldest))
				*oldest = qa;
		}
		if (v)
			freeReplyObject(v);
	}
	freeReplyObject(rep);
	return 0;
}

/* One account's structure acct, added into out's totals (byp: queuedByPriority, gc: the
 * groups' counts) and, as {"ready","delayed","parked","overBudget"}, into acc when it is
 * registered or holds jobs. 0 or -1 (err). */
static int stats_one(struct queue *q, const struct sched_account *a, cJSON *out, cJSON *byp,
		     cJSON *gc, cJSON *acc, long long *oldest, char *err, size_t errlen)
{
	static const char *const names[] = {"ready", "delayed", "parked", "overBudget"};
	char k[7][300];
	long long c[4], items = 0;
	const char *argv[2];
	redisReply *rep;

	sched_accounts_key(q, a->name, "state", k[0], sizeof(k[0]));
	for (int i = 0; i < 4; i++)
		sched_accounts_key(q, a->name, names[i], k[1 + i], sizeof(k[1 + i]));
	sched_accounts_key(q, a->name, "gcount", k[5], sizeof(k[5]));
	sched_accounts_key(q, a->name, "items", k[6], sizeof(k[6]));
	{
		const char *hm[] = {"HMGET", k[0], "n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7",
				    "n8", "n9", "picks"};
		rep = cmd(q, 13, hm, err, errlen);
		if (!rep)
			return -1;
		for (int p = 9; p >= 0 && rep->type == REDIS_REPLY_ARRAY && rep->elements == 11;
		     p--) {
			char pv[4];
			long long v = num(rep->element[p]);
			cJSON *have;
			snprintf(pv, sizeof(pv), "%d", p);
			if (v <= 0)
				continue;
			if ((have = cJSON_GetObjectItemCaseSensitive(byp, pv)))
				cJSON_SetNumberValue(have, have->valuedouble + (double)v);
			else
				cJSON_AddNumberToObject(byp, pv, (double)v);
		}
		if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 11)
			cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(out, "picks"),
					     member_num(out, "picks", 0) +
						     (double)num(rep->element[10]));
		freeReplyObject(rep);
	}
	for (int i = 0; i < 4; i++) {
		argv[0] = "ZCARD";
		argv[1] = k[1 + i];
		rep = cmd(q, 2, argv, err, errlen);
		if (!rep)
			return -1;
		c[i] = num(rep);
		freeReplyObject(rep);
		if (i < 3)
			cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(out, names[i]),
					     member_num(out, names[i], 0) + (double)c[i]);
	}
	argv[0] = "HLEN";
	argv[1] = k[6];
	if (!(rep = cmd(q, 2, argv, err, errlen)))
		return -1;
	items = num(rep);
	freeReplyObject(rep);
	if (oldest_ready(q, k[1], k[6], oldest, err, errlen) != 0 ||
	    hash_add(q, k[5], gc, err, errlen) != 0)
		return -1;
	if (a->registered || items > 0) {
		cJSON *o = cJSON_AddObjectToObject(acc, a->name);
		for (int i = 0; i < 4; i++)
			cJSON_AddNumberToObject(o, names[i], (double)c[i]);
	}
	return 0;
}

cJSON *sched_view_stats(struct queue *q, int top_n, char *err, size_t errlen)
{
	char k[3][300];
	struct sched_accounts *sa = util_xcalloc(1, sizeof(*sa));
	cJSON *out = cJSON_CreateObject(), *byp, *acc, *gc = cJSON_CreateObject(), *inf = NULL;
	cJSON *w = NULL, *lim = NULL, *top, **arr = NULL, *it;
	int n = 0;
	long long oldest = -1;

	/* i20-counts: every account's structure (sched_accounts.h), summed */
	if (sched_accounts_list(q, sa) != 0) {
		snprintf(err, errlen, "%s", q->err);
		goto fail;
	}
	byp = cJSON_AddObjectToObject(out, "queuedByPriority");
	cJSON_AddNumberToObject(out, "picks", 0);
	cJSON_AddNumberToObject(out, "ready", 0);
	cJSON_AddNumberToObject(out, "delayed", 0);
	cJSON_AddNumberToObject(out, "parked", 0);
	acc = cJSON_CreateObject();
	for (int i = 0; i < sa->n; i++) {
		if (stats_one(q, &sa->v[i], out, byp, gc, acc, &oldest, err, errlen) != 0) {
			cJSON_Delete(acc);
			goto fail;
		}
	}
	if (oldest >= 0)
		cJSON_AddNumberToObject(out, "oldestWaitMs", (double)(util_now_ms() - oldest));
	else
		cJSON_AddNullToObject(out, "oldestWaitMs");
	cJSON_AddItemToObject(out, "accounts", acc);
	/* the caps count across accounts: <p>:sched:default:inflight is the pool's */
	skey(q, k[0], sizeof(k[0]), "inflight");
	snprintf(k[1], sizeof(k[1]), "%s:group:weight", q->prefix);
	snprintf(k[2], sizeof(k[2]), "%s:group:limit", q->prefix);
	inf = hash_numbers(q, k[0], err, errlen);
	w = inf ? hash_numbers(q, k[1], err, errlen) : NULL;
	lim = w ? hash_numbers(q, k[2], err, errlen) : NULL;
	if (!lim)
		goto fail;
	n = cJSON_GetArraySize(gc);
	cJSON_AddNumberToObject(out, "groups", n);
	arr = util_xcalloc((size_t)n + 1, sizeof(*arr));
	n = 0;
	cJSON_ArrayForEach(it, gc)
		arr[n++] = it;
	qsort(arr, (size_t)n, sizeof(*arr), by_queued_desc);
	top = cJSON_AddArrayToObject(out, "topGroups");
	for (int i = 0; i < n && i < top_n; i++) {
		cJSON *g = cJSON_CreateObject();
		const char *name = arr[i]->string;
		cJSON_AddStringToObject(g, "group", *name ? name : "(default)");
		cJSON_AddNumberToObject(g, "queued", arr[i]->valuedouble);
		cJSON_AddNumberToObject(g, "inFlight", member_num(inf, name, 0));
		cJSON_AddNumberToObject(g, "weight", member_num(w, name, 1));
		if (member_num(lim, name, 0) > 0)
			cJSON_AddNumberToObject(g, "limit", member_num(lim, name, 0));
		else
			cJSON_AddNullToObject(g, "limit");
		cJSON_AddItemToArray(top, g);
	}
	cJSON_AddItemToObject(out, "weights", w);
	cJSON_AddItemToObject(out, "limits", lim);
	cJSON_AddItemToObject(out, "inFlight", inf);
	cJSON_Delete(gc);
	free(arr);
	free(sa);
	return out;
fail:
	cJSON_Delete(gc);
	cJSON_Delete(inf);
	cJSON_Delete(w);
	cJSON_Delete(lim);
	cJSON_Delete(out);
	free(sa);
	return NULL;
}

cJSON *sched_view_position(struct queue *q, const char *job_id, char *err, size_t errlen)
{
	char *json = NULL;
	cJSON *o;
	if (sched_position(q, job_id, &json) != 0) {
		snprintf(err, errlen, "%s", q->err);
		return NULL;
	}
	o = cJSON_Parse(json);
	free(json);
	if (!o)
		snprintf(err, errlen, "kie_position answered something that is not JSON");
	return o;
}

int sched_view_set(struct queue *q, const char *group, int limit, long n, char *err,
		   size_t errlen)
{
	char key[300], v[32];
	const char *argv[4];
	redisReply *rep;

	snprintf(key, sizeof(key), "%s:group:%s", q->prefix, limit ? "limit" : "weight");
	snprintf(v, sizeof(v), "%ld", n);
	argv[1] = key;
	argv[2] = group;
	argv[3] = v;
	if (n == 0) {
		argv[0] = "HDEL";
		rep = cmd(q, 3, argv, err, errlen);
	} else {
		argv[0] = "HSET";
		rep = cmd(q, 4, argv, err, errlen);
	}
	if (!rep)
		return -1;
	freeReplyObject(rep);
	return 0;
}
