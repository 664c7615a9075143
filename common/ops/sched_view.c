/* sched_view.c — the operator's reads of the scheduling structure (sched_view.h). Plain
 * commands: a view, not a step (the numbers may be a moment apart). */
#include "ops/sched_view.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "pool/sched.h"

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

cJSON *sched_view_stats(struct queue *q, int top_n, char *err, size_t errlen)
{
	char k[8][300];
	const char *argv[8];
	redisReply *rep;
	cJSON *out = cJSON_CreateObject(), *byp, *gc = NULL, *inf = NULL, *w = NULL, *lim = NULL;
	cJSON *top, **arr = NULL, *it;
	int n = 0;
	long long oldest = -1;

	skey(q, k[0], sizeof(k[0]), "state");
	skey(q, k[1], sizeof(k[1]), "ready");
	skey(q, k[2], sizeof(k[2]), "delayed");
	skey(q, k[3], sizeof(k[3]), "parked");
	skey(q, k[4], sizeof(k[4]), "gcount");
	skey(q, k[5], sizeof(k[5]), "inflight");
	snprintf(k[6], sizeof(k[6]), "%s:group:weight", q->prefix);
	snprintf(k[7], sizeof(k[7]), "%s:group:limit", q->prefix);
	{
		const char *hm[] = {"HMGET", k[0], "n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7",
				    "n8", "n9", "picks"};
		rep = cmd(q, 13, hm, err, errlen);
		if (!rep)
			goto fail;
		byp = cJSON_AddObjectToObject(out, "queuedByPriority");
		for (int p = 9; p >= 0; p--) {
			char pv[4];
			long long v = num(rep->element[p]);
			snprintf(pv, sizeof(pv), "%d", p);
			if (v > 0)
				cJSON_AddNumberToObject(byp, pv, (double)v);
		}
		cJSON_AddNumberToObject(out, "picks", (double)num(rep->element[10]));
		freeReplyObject(rep);
	}
	for (int i = 1; i <= 3; i++) {
		static const char *const names[] = {"", "ready", "delayed", "parked"};
		argv[0] = "ZCARD";
		argv[1] = k[i];
		rep = cmd(q, 2, argv, err, errlen);
		if (!rep)
			goto fail;
		cJSON_AddNumberToObject(out, names[i], (double)num(rep));
		freeReplyObject(rep);
	}
	/* the oldest wait among the next 100 to go (by queuedAt in the items) */
	{
		const char *zr[] = {"ZRANGE", k[1], "0", "99"};
		char items[300];
		rep = cmd(q, 4, zr, err, errlen);
		if (!rep)
			goto fail;
		skey(q, items, sizeof(items), "items");
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
				if (s && sscanf(s + 1, "%lld", &qa) == 1 && (oldest < 0 || qa < oldest))
					oldest = qa;
			}
			if (v)
				freeReplyObject(v);
		}
		freeReplyObject(rep);
		if (oldest >= 0)
			cJSON_AddNumberToObject(out, "oldestWaitMs", (double)(util_now_ms() - oldest));
		else
			cJSON_AddNullToObject(out, "oldestWaitMs");
	}
	gc = hash_numbers(q, k[4], err, errlen);
	inf = gc ? hash_numbers(q, k[5], err, errlen) : NULL;
	w = inf ? hash_numbers(q, k[6], err, errlen) : NULL;
	lim = w ? hash_numbers(q, k[7], err, errlen) : NULL;
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
	return out;
fail:
	cJSON_Delete(gc);
	cJSON_Delete(inf);
	cJSON_Delete(w);
	cJSON_Delete(lim);
	cJSON_Delete(out);
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
