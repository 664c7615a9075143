/* balance.c — the pool's once-a-minute balance query per account, behind balance.h. */
#include "pool/balance.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "kie/kie_client.h"

void balance_prober_init(struct balance_prober *b, const struct accounts *a)
{
	memset(b, 0, sizeof(*b));
	b->n = a->n;
	b->clients = util_xcalloc((size_t)(a->n ? a->n : 1), sizeof(*b->clients));
}

void balance_prober_free(struct balance_prober *b)
{
	for (int i = 0; i < b->n; i++)
		kie_client_free(b->clients[i]);
	free(b->clients);
	memset(b, 0, sizeof(*b));
}

int balance_read(struct queue *q, const char *alias, double *credits, int64_t *at_ms,
		 int *known)
{
	char key[128], fc[128], fa[128];
	redisReply *rep;
	int rc = 0;

	*known = 0;
	queue_key(q, key, sizeof(key), "balance");
	snprintf(fc, sizeof(fc), "%s|credits", alias);
	snprintf(fa, sizeof(fa), "%s|at", alias);
	rep = rconn_cmd(q->r, "HMGET %s %s %s", key, fc, fa);
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
		snprintf(q->err, sizeof(q->err), "%s", !rep ? "Redis could not be reached"
			 : rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
		rc = -1;
	} else if (rep->element[0]->type == REDIS_REPLY_STRING &&
		   rep->element[1]->type == REDIS_REPLY_STRING) {
		long long at;
		*credits = strtod(rep->element[0]->str, NULL);
		if (util_parse_ll(rep->element[1]->str, &at) == 0) {
			*at_ms = at;
			*known = 1;
		}
	}
	freeReplyObject(rep);
	return rc;
}

/* Asks KIE for account i's balance and shares it. */
static void probe(struct balance_prober *b, struct queue *q, const struct accounts *a,
		  const struct config *cfg, int i)
{
	struct kie_error kerr;
	double credits = 0;
	char key[128], fc[128], fa[128], v[64], at[32];
	int64_t now = util_now_ms();

	if (!b->clients[i]) {
		/* a short timeout: a stop waits for a query in flight (BALANCE_TIMEOUT_MS) */
		struct kie_client_opts ko = {
			.base_url = cfg->kie_base_url, .token = a->v[i].token,
			.user_agent = cfg->kie_user_agent, .default_model = cfg->kie_model,
			.connect_timeout_ms = cfg->connect_timeout_ms < BALANCE_TIMEOUT_MS
						      ? cfg->connect_timeout_ms : BALANCE_TIMEOUT_MS,
			.timeout_ms = cfg->http_timeout_ms < BALANCE_TIMEOUT_MS ? cfg->http_timeout_ms
										: BALANCE_TIMEOUT_MS,
		};
		b->clients[i] = kie_client_new(&ko);
	}
	if (!b->clients[i])
		return;
	if (kie_client_credits(b->clients[i], &credits, &kerr) != 0) {
		log_warn(NULL, NULL, "account %s: the balance query failed (%s); asking again in "
			 "%ld s", a->v[i].alias, kerr.message, BALANCE_LEASE_MS / 1000);
		return;
	}
	queue_key(q, key, sizeof(key), "balance");
	snprintf(fc, sizeof(fc), "%s|credits", a->v[i].alias);
	snprintf(fa, sizeof(fa), "%s|at", a->v[i].alias);
	snprintf(v, sizeof(v), "%.17g", credits);
	snprintf(at, sizeof(at), "%lld", (long long)now);
	freeReplyObject(rconn_cmd(q->r, "HSET %s %s %s %s %s", key, fc, v, fa, at));
	metrics_balance(a->v[i].alias, credits, now);
}

void balance_tick(struct balance_prober *b, struct queue *q, const struct accounts *a,
		  const struct config *cfg, int64_t now_mono_ms)
{
	if (now_mono_ms < b->next_ms || b->n != a->n)
		return;
	b->next_ms = now_mono_ms + BALANCE_CHECK_MS;
	for (int i = 0; i < a->n; i++) {
		char lease[200];
		double credits;
		int64_t at;
		int known = 0;
		redisReply *rep;

		snprintf(lease, sizeof(lease), "%s:balance:lease:%s", q->prefix, a->v[i].alias);
		rep = rconn_cmd(q->r, "SET %s %s NX PX %ld", lease, q->worker_id, BALANCE_LEASE_MS);
		int got = rep && rep->type == REDIS_REPLY_STATUS;
		freeReplyObject(rep);
		if (got)
			probe(b, q, a, cfg, i);
		else if (balance_read(q, a->v[i].alias, &credits, &at, &known) == 0 && known)
			metrics_balance(a->v[i].alias, credits, at);
	}
}
