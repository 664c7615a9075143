/* spend_view.c — today's spend, budgets and accounts in one read (spend_view.h). */
#include "ops/spend_view.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "kie/accounts.h"
#include "pool/budget.h"
#include "pool/sched_accounts.h"

static double num(const char *s)
{
	return s ? strtod(s, NULL) : 0;
}

/* field of an HGETALL reply, NULL when absent */
static const char *hfield(const redisReply *h, const char *name)
{
	if (!h || h->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (size_t i = 0; i + 1 < h->elements; i += 2)
		if (h->element[i]->str && strcmp(h->element[i]->str, name) == 0)
			return h->element[i + 1]->str;
	return NULL;
}

/* A pause key as stored: its JSON value parsed (else the string), with "ttlMs" (-1:
 * none); a JSON null when the key is absent. */
static cJSON *pause_read(struct queue *q, const char *key)
{
	redisReply *v = rconn_cmd(q->r, "GET %s", key), *t;
	cJSON *o;

	if (!v || v->type != REDIS_REPLY_STRING) {
		freeReplyObject(v);
		return cJSON_CreateNull();
	}
	o = cJSON_ParseWithLength(v->str, v->len);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "value", v->str);
	}
	t = rconn_cmd(q->r, "PTTL %s", key);
	cJSON_DeleteItemFromObjectCaseSensitive(o, "ttlMs");
	cJSON_AddNumberToObject(o, "ttlMs", t && t->type == REDIS_REPLY_INTEGER
				? (double)t->integer : -1);
	freeReplyObject(t);
	freeReplyObject(v);
	return o;
}

static cJSON *account_add(cJSON *acc, const char *alias, const redisReply *sp,
			  const redisReply *bal)
{
	char f[ACCOUNT_ALIAS_MAX + 16];
	cJSON *a = cJSON_GetObjectItemCaseSensitive(acc, alias);
	if (a)
		return a;
	a = cJSON_AddObjectToObject(acc, alias);
	snprintf(f, sizeof(f), "account:%s", alias);
	cJSON_AddNumberToObject(a, "spent", num(hfield(sp, f)));
	snprintf(f, sizeof(f), "%s|credits", alias);
	if (hfield(bal, f))
		cJSON_AddNumberToObject(a, "balance", num(hfield(bal, f)));
	else
		cJSON_AddNullToObject(a, "balance");
	return a;
}

static void waiting_add(struct queue *q, cJSON *waiting, const char *obk, const char *acct,
			int max);

/* The page's additions (full = 1), see spend_view.h. */
static void add_full(struct queue *q, cJSON *o, const redisReply *bal, const redisReply *bg,
		     const redisReply *bd, const struct sched_accounts *sa)
{
	char k[300];
	cJSON *it, *budgets, *waiting;

	if (!cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "accounts"),
					      ACCOUNT_DEFAULT_ALIAS))
		cJSON_AddItemToObject(cJSON_GetObjectItemCaseSensitive(o, "accounts"),
				      ACCOUNT_DEFAULT_ALIAS, cJSON_CreateObject());
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "accounts")) {
		const char *at;
		if (!cJSON_GetObjectItemCaseSensitive(it, "spent"))
			cJSON_AddNumberToObject(it, "spent", 0);
		if (!cJSON_GetObjectItemCaseSensitive(it, "balance"))
			cJSON_AddNullToObject(it, "balance");
		snprintf(k, sizeof(k), "%s|at", it->string);
		at = hfield(bal, k);
		if (at)
			cJSON_AddNumberToObject(it, "balanceAt", num(at));
		else
			cJSON_AddNullToObject(it, "balanceAt");
		snprintf(k, sizeof(k), "%s:pause:acct:%s", q->prefix, it->string);
		cJSON_AddItemToObject(it, "pause", pause_read(q, k));
	}
	queue_key(q, k, sizeof(k), "pause");
	cJSON_AddItemToObject(o, "pause", pause_read(q, k));

	budgets = cJSON_AddArrayToObject(o, "budgets");
	for (size_t i = 0; bg && bg->type == REDIS_REPLY_ARRAY && i + 1 < bg->elements &&
			   i / 2 < SPEND_VIEW_BUDGETS; i += 2) {
		char f[BUDGET_GROUP_MAX + 16];
		const char *g = bg->element[i]->str;
		if (!g || !bg->element[i + 1]->str)
			continue;
		cJSON *x = cJSON_CreateObject();
		cJSON_AddStringToObject(x, "group", g);
		cJSON_AddNumberToObject(x, "budget", num(bg->element[i + 1]->str));
		snprintf(f, sizeof(f), "spent|%s", g);
		cJSON_AddNumberToObject(x, "spent", num(hfield(bd, f)));
		snprintf(f, sizeof(f), "reserved|%s", g);
		cJSON_AddNumberToObject(x, "reserved", num(hfield(bd, f)));
		cJSON_AddItemToArray(budgets, x);
	}

	/* the first SPEND_VIEW_WAITING, one account's structure after the other */
	waiting = cJSON_AddArrayToObject(o, "waiting");
	for (int a = 0; a < sa->n && cJSON_GetArraySize(waiting) < SPEND_VIEW_WAITING; a++) {
		char obk[300];
		sched_accounts_key(q, sa->v[a].name, "overBudget", obk, sizeof(obk));
		waiting_add(q, waiting, obk, sa->v[a].name,
			    SPEND_VIEW_WAITING - cJSON_GetArraySize(waiting));
	}
}

/* The first max jobs of one structure's over_budget set obk into waiting. */
static void waiting_add(struct queue *q, cJSON *waiting, const char *obk, const char *acct,
			int max)
{
	char k[320];
	redisReply *z, *e;

	z = rconn_cmd(q->r, "ZRANGE %s 0 %d", obk, max - 1);
	snprintf(k, sizeof(k), "%sEst", obk);
	for (size_t i = 0; z && z->type == REDIS_REPLY_ARRAY && i < z->elements; i++) {
		const char *id = z->element[i]->str, *tab;
		cJSON *x;
		if (!id)
			continue;
		x = cJSON_CreateObject();
		cJSON_AddStringToObject(x, "jobId", id);
		cJSON_AddStringToObject(x, "account", acct);
		e = rconn_cmd(q->r, "HGET %s %s", k, id);
		if (e && e->type == REDIS_REPLY_STRING && (tab = strchr(e->str, '\t'))) {
			char g[BUDGET_GROUP_MAX + 1];
			size_t n = (size_t)(tab - e->str) < sizeof(g) - 1 ? (size_t)(tab - e->str)
									 : sizeof(g) - 1;
			memcpy(g, e->str, n);
			g[n] = '\0';
			cJSON_AddStringToObject(x, "group", g);
			cJSON_AddNumberToObject(x, "estimate", num(tab + 1));
		}
		freeReplyObject(e);
		cJSON_AddItemToArray(waiting, x);
	}
	freeReplyObject(z);
}

cJSON *spend_view(struct queue *q, long pool_budget, int full, char *err, size_t errlen)
{
	char day[16], sk[160], gk[170], bk[160], grk[128], balk[128], obk[300];
	redisReply *sp, *gr, *bd, *bg, *bal, *c;
	long long over = 0;
	cJSON *o, *acc, *grs;
	struct sched_accounts *sa;

	budget_day(util_now_ms(), 0, day, sizeof(day));
	spend_day_key(q, day, sk, sizeof(sk));
	spend_groups_key(q, day, gk, sizeof(gk));
	budget_day_key(q, day, bk, sizeof(bk));
	queue_key(q, grk, sizeof(grk), "budget:group");
	queue_key(q, balk, sizeof(balk), "balance");
	sp = rconn_cmd(q->r, "HGETALL %s", sk);
	if (!sp || sp->type != REDIS_REPLY_ARRAY) {
		snprintf(err, errlen, "%s", !sp ? "Redis could not be reached"
			 : sp->type == REDIS_REPLY_ERROR ? sp->str : "unexpected reply");
		freeReplyObject(sp);
		return NULL;
	}
	/* i20-counts: the jobs over budget in every account's structure */
	sa = util_xcalloc(1, sizeof(*sa));
	sched_accounts_list(q, sa); /* on failure: "default" alone, as before */
	gr = rconn_cmd(q->r, "ZREVRANGE %s 0 %d WITHSCORES", gk, SPEND_VIEW_TOP - 1);
	bd = rconn_cmd(q->r, "HGETALL %s", bk);
	bg = rconn_cmd(q->r, "HGETALL %s", grk);
	bal = rconn_cmd(q->r, "HGETALL %s", balk);
	for (int i = 0; i < sa->n; i++) {
		sched_accounts_key(q, sa->v[i].name, "overBudget", obk, sizeof(obk));
		c = rconn_cmd(q->r, "ZCARD %s", obk);
		if (c && c->type == REDIS_REPLY_INTEGER)
			over += c->integer;
		freeReplyObject(c);
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "day", day);
	cJSON_AddNumberToObject(o, "total", num(hfield(sp, "total")));
	cJSON_AddNumberToObject(o, "tasks", num(hfield(sp, "tasks")));
	cJSON_AddNumberToObject(o, "budget", (double)pool_budget);
	cJSON_AddNumberToObject(o, "spent", num(hfield(bd, "spent")));
	cJSON_AddNumberToObject(o, "reserved", num(hfield(bd, "reserved")));
	cJSON_AddNumberToObject(o, "overBudget", (double)over);
	acc = cJSON_AddObjectToObject(o, "accounts");
	/* every account seen today or with a balance known */
	for (int pass = 0; pass < 2; pass++) {
		const redisReply *h = pass == 0 ? sp : bal;
		if (!h || h->type != REDIS_REPLY_ARRAY)
			continue;
		for (size_t i = 0; i + 1 < h->elements; i += 2) {
			char alias[ACCOUNT_ALIAS_MAX + 1];
			const char *n = h->element[i]->str, *bar;
			if (!n)
				continue;
			if (pass == 0) {
				if (strncmp(n, "account:", 8) != 0)
					continue;
				util_strlcpy(alias, n + 8, sizeof(alias));
			} else {
				if (!(bar = strchr(n, '|')) || strcmp(bar, "|credits") != 0 ||
				    (size_t)(bar - n) > ACCOUNT_ALIAS_MAX)
					continue;
				memcpy(alias, n, (size_t)(bar - n));
				alias[bar - n] = '\0';
			}
			account_add(acc, alias, sp, bal);
		}
	}
	grs = cJSON_AddArrayToObject(o, "topGroups");
	for (size_t i = 0; gr && gr->type == REDIS_REPLY_ARRAY && i + 1 < gr->elements; i += 2) {
		char f[BUDGET_GROUP_MAX + 16];
		const char *g = gr->element[i]->str, *b;
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "group", g ? g : "");
		cJSON_AddNumberToObject(e, "spent", num(gr->element[i + 1]->str));
		b = g ? hfield(bg, g) : NULL;
		if (b) {
			cJSON_AddNumberToObject(e, "budget", num(b));
			snprintf(f, sizeof(f), "reserved|%s", g);
			cJSON_AddNumberToObject(e, "reserved", num(hfield(bd, f)));
		}
		cJSON_AddItemToArray(grs, e);
	}
	if (full)
		add_full(q, o, bal, bg, bd, sa);
	free(sa);
	freeReplyObject(sp);
	freeReplyObject(gr);
	freeReplyObject(bd);
	freeReplyObject(bg);
	freeReplyObject(bal);
	return o;
}
