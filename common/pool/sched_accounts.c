/* sched_accounts.c — the set of the pool's scheduling structures (sched_accounts.h). */
#include "pool/sched_accounts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "lua_scripts.h"
#include "redis/script.h"

static int reply_ok(struct queue *q, redisReply *rep)
{
	return queue_done(q, rep);
}

void sched_accounts_key(const struct queue *q, const char *acct, const char *name, char *out,
			size_t outlen)
{
	snprintf(out, outlen, "%s:sched:%s:%s", q->prefix, acct, name);
}

const char *sched_accounts_name(const struct accounts *a, int i)
{
	return a->n > 1 ? a->v[i].alias : SCHED_ACCOUNT_NAME;
}

static int by_name(const void *x, const void *y)
{
	return strcmp(((const struct sched_account *)x)->name,
		      ((const struct sched_account *)y)->name);
}

int sched_accounts_list(struct queue *q, struct sched_accounts *out)
{
	char key[160];
	const char *argv[2] = {"SMEMBERS", key};
	redisReply *rep;
	int have_default = 0, rc = 0;

	out->n = 0;
	queue_key(q, key, sizeof(key), "accounts");
	rep = rconn_argv_retry(q->r, 2, argv, NULL);
	if (rep && (rep->type == REDIS_REPLY_ARRAY || rep->type == REDIS_REPLY_SET)) {
		for (size_t i = 0; i < rep->elements && out->n < SCHED_ACCOUNTS_READ_MAX; i++) {
			const redisReply *e = rep->element[i];
			if (e->type != REDIS_REPLY_STRING || !accounts_alias_valid(e->str) ||
			    strlen(e->str) != e->len)
				continue;
			util_strlcpy(out->v[out->n].name, e->str, sizeof(out->v[0].name));
			out->v[out->n].registered = 1;
			have_default |= strcmp(e->str, SCHED_ACCOUNT_NAME) == 0;
			out->n++;
		}
		freeReplyObject(rep);
	} else {
		rc = reply_ok(q, rep);
		if (rc == 0) { /* another type under the name: read default alone */
			snprintf(q->err, sizeof(q->err), "%s is not a set", key);
			rc = -1;
		}
	}
	if (!have_default) {
		util_strlcpy(out->v[out->n].name, SCHED_ACCOUNT_NAME, sizeof(out->v[0].name));
		out->v[out->n].registered = 0;
		out->n++;
	}
	qsort(out->v, (size_t)out->n, sizeof(out->v[0]), by_name);
	return rc;
}

int sched_accounts_register(struct queue *q, const struct accounts *a)
{
	char key[160];
	const char **argv = util_xcalloc((size_t)a->n + 2, sizeof(char *));
	int n = 2, rc;

	queue_key(q, key, sizeof(key), "accounts");
	argv[0] = "SADD";
	argv[1] = key;
	for (int i = 0; i < a->n; i++) {
		argv[n++] = sched_accounts_name(a, i);
		if (a->n == 1)
			break;
	}
	rc = reply_ok(q, rconn_argv(q->r, n, argv, NULL));
	free(argv);
	return rc;
}

int sched_accounts_prune(struct queue *q, const struct accounts *a, long *removed)
{
	struct sched_accounts *s = util_xcalloc(1, sizeof(*s));
	char k[4][300];
	const char *keys[4] = {k[0], k[1], k[2], k[3]};
	int rc = 0;

	if (removed)
		*removed = 0;
	if (sched_accounts_list(q, s) != 0) {
		rc = -1;
		goto out;
	}
	queue_key(q, k[0], sizeof(k[0]), "accounts");
	for (int i = 0; i < s->n; i++) {
		const char *name = s->v[i].name, *args[1] = {name};
		int used = 0;
		redisReply *rep;
		for (int j = 0; j < a->n && !used; j++)
			used = strcmp(sched_accounts_name(a, j), name) == 0;
		if (used || !s->v[i].registered)
			continue;
		sched_accounts_key(q, name, "items", k[1], sizeof(k[1]));
		sched_accounts_key(q, name, "overBudget", k[2], sizeof(k[2]));
		sched_accounts_key(q, name, "delayed", k[3], sizeof(k[3]));
		rep = script_run(q->r, &lua_accounts_prune, 0, 4, keys, 1, args, NULL);
		if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1 && removed)
			(*removed)++;
		if (reply_ok(q, rep) != 0) {
			rc = -1;
			goto out;
		}
	}
out:
	free(s);
	return rc;
}
