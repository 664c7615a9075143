/* sched.c — the arguments of the scheduling scripts (route, pick, sched_put)
 * and of the "kie" Functions library; sched.h has the key layout. */
#include "pool/sched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/util.h"
#include "lua_scripts.h"
#include "pool/budget.h"
#include "pool/history.h"

/* <p>:sched:<acct>:<name> */
static void skey(const struct queue *q, char *out, size_t n, const char *name)
{
	/* i20-accounts: q's account; the group caps' in-flight counts are the pool's */
	const char *acct = q->sched_acct[0] && strcmp(name, "inflight") != 0 ? q->sched_acct
									  : SCHED_ACCOUNT;
	snprintf(out, n, "%s:sched:%s:%s", q->prefix, acct, name);
}

static void pkey(const struct queue *q, char *out, size_t n, const char *kind, const char *id)
{
	if (id)
		snprintf(out, n, "%s:%s:%s", q->prefix, kind, id);
	else
		snprintf(out, n, "%s:%s", q->prefix, kind);
}

static int done(redisReply *rep)
{
	int ok = rep && rep->type != REDIS_REPLY_ERROR;
	if (rep)
		freeReplyObject(rep);
	return ok ? 0 : -1;
}

static long long str_ll(const redisReply *e)
{
	long long v = 0;
	if (e->type == REDIS_REPLY_INTEGER)
		return e->integer;
	if (e->type == REDIS_REPLY_STRING && util_parse_ll(e->str, &v) == 0)
		return v;
	return 0;
}

static void copy_str(const redisReply *e, char *out, size_t n)
{
	out[0] = '\0';
	if (e->type == REDIS_REPLY_STRING)
		util_strlcpy(out, e->str, n);
}

/* A claim's reply, {outcome, epoch, attempts, state, taskId, owner, ...}: the fields
 * after the outcome (route.lua and pick.lua answer the same way). */
static void claim_fields(redisReply **e, struct job_claim *out)
{
	out->epoch = (long)str_ll(e[1]);
	out->attempts = (long)str_ll(e[2]);
	copy_str(e[3], out->state, sizeof(out->state));
	copy_str(e[4], out->task_id, sizeof(out->task_id));
	copy_str(e[5], out->owner, sizeof(out->owner));
}

static int flag(const redisReply *e)
{
	return e->type == REDIS_REPLY_STRING && strcmp(e->str, "1") == 0;
}

/* One route outcome tuple (route.lua) into out; -1 when it is not one. */
static int route_out(const redisReply *rep, struct job_claim *out)
{
	redisReply **e;
	memset(out, 0, sizeof(*out));
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 8 ||
	    rep->element[0]->type != REDIS_REPLY_STRING ||
	    queue_claim_outcome_parse(rep->element[0]->str, &out->outcome) != 0)
		return -1;
	e = rep->element;
	claim_fields(e, out);
	out->recoveries = (long)str_ll(e[6]);
	out->may_have_task = flag(e[7]);
	return 0;
}

int sched_route_batch(struct queue *q, int n, const char *const *raws, const size_t *lens,
		      const struct sched_route_in *in, struct job_claim *out, int more,
		      size_t more_max_bytes, redisReply **moved)
{
	enum { FIXED_KEYS = 19, FIXED_ARGS = 12, PER_JOB = 12 };
	char k[FIXED_KEYS][300], common[10][128], nums[SCHED_ROUTE_BATCH_MAX][4][32];
	const char *keys[FIXED_KEYS + SCHED_ROUTE_BATCH_MAX];
	const char *args[FIXED_ARGS + PER_JOB * SCHED_ROUTE_BATCH_MAX];
	size_t alens[FIXED_ARGS + PER_JOB * SCHED_ROUTE_BATCH_MAX];
	int nkeys = FIXED_KEYS, nargs = FIXED_ARGS, rc = -1;
	redisReply *rep;
	static const char *const names[] = {"ready", "delayed", "items", "state", "gtag",
					    "gcount", "inflight", "picked"};

	if (moved)
		*moved = NULL;
	if (n < 1 || n > SCHED_ROUTE_BATCH_MAX) {
		snprintf(q->err, sizeof(q->err), "a route batch of %d descriptors", n);
		return -1;
	}
	pkey(q, k[0], sizeof(k[0]), "job", ""); /* prefixes: the job's key is prefix .. id */
	pkey(q, k[1], sizeof(k[1]), "recoveries", NULL);
	pkey(q, k[2], sizeof(k[2]), "processing", q->worker_id);
	for (int i = 0; i < 8; i++)
		skey(q, k[3 + i], sizeof(k[3 + i]), names[i]);
	pkey(q, k[11], sizeof(k[11]), "group:weight", NULL);
	skey(q, k[12], sizeof(k[12]), "wake");
	pkey(q, k[13], sizeof(k[13]), "cancel", "");
	pkey(q, k[14], sizeof(k[14]), "stats", NULL);
	pkey(q, k[15], sizeof(k[15]), "results", NULL);
	pkey(q, k[16], sizeof(k[16]), "queue", NULL);
	history_keys(q->prefix, util_now_ms(), k[17], k[18]); /* i21: a cancel counted */
	for (int i = 0; i < FIXED_KEYS; i++)
		keys[i] = k[i];
	snprintf(common[0], sizeof(common[0]), "%ld", in[0].lease_ms);
	snprintf(common[1], sizeof(common[1]), "%ld", in[0].max_recoveries);
	pkey(q, common[2], sizeof(common[2]), "events", NULL);
	snprintf(common[3], sizeof(common[3]), "%ld", q->results_max);
	snprintf(common[4], sizeof(common[4]), "%ld", q->reply_max);
	snprintf(common[5], sizeof(common[5]), "%ld", q->reply_ttl_s);
	snprintf(common[6], sizeof(common[6]), "%ld", q->record_ttl_s);
	snprintf(common[7], sizeof(common[7]), "%d", n);
	snprintf(common[8], sizeof(common[8]), "%d", moved ? more : 0);
	snprintf(common[9], sizeof(common[9]), "%zu", more_max_bytes);
	args[0] = q->worker_id;
	for (int i = 0; i < 10; i++)
		args[1 + i] = common[i];
	args[11] = q->sched_acct; /* i20-accounts: the job hash keeps its account ('' none) */
	for (int i = 0; i < n; i++) {
		const struct sched_route_in *x = &in[i];
		const char **a = &args[nargs];
		size_t *l = &alens[nargs];
		if (x->reply_to && *x->reply_to) {
			keys[nkeys++] = x->reply_to;
			snprintf(nums[i][0], sizeof(nums[i][0]), "%d", nkeys - FIXED_KEYS);
		} else {
			util_strlcpy(nums[i][0], "0", sizeof(nums[i][0]));
		}
		snprintf(nums[i][1], sizeof(nums[i][1]), "%ld", x->priority);
		snprintf(nums[i][2], sizeof(nums[i][2]), "%lld", x->not_before_ms);
		a[0] = raws[i]; a[1] = x->job_id; a[2] = x->type; a[3] = nums[i][0];
		a[4] = x->meta ? x->meta : ""; a[5] = x->has_callback ? "1" : "0";
		a[6] = nums[i][1]; a[7] = x->group ? x->group : ""; a[8] = nums[i][2];
		a[9] = x->own ? "1" : "0";
		snprintf(nums[i][3], sizeof(nums[i][3]), "%.6g", x->model_credits);
		a[10] = x->model ? x->model : "";
		a[11] = nums[i][3];
		for (int j = 0; j < PER_JOB; j++)
			l[j] = j == 0 ? lens[i] : strlen(a[j]);
		nargs += PER_JOB;
	}
	for (int i = 0; i < FIXED_ARGS; i++)
		alens[i] = strlen(args[i]);
	rep = queue_eval(q, &lua_route, nkeys, keys, nargs, args, alens);
	if (rep && rep->type == REDIS_REPLY_ARRAY && (int)rep->elements == n + 1 &&
	    rep->element[n]->type == REDIS_REPLY_ARRAY) {
		redisReply *m = rep->element[n];
		rc = 0;
		for (int i = 0; i < n; i++)
			if (route_out(rep->element[i], &out[i]) != 0)
				rc = -1;
		for (size_t i = 0; i < m->elements; i++)
			if (m->element[i]->type != REDIS_REPLY_STRING)
				rc = -1;
		if (rc != 0) {
			snprintf(q->err, sizeof(q->err), "unexpected reply to route");
			q->check_own = 1;
		} else if (moved && m->elements > 0) {
			/* handed to the caller: the reply keeps only the other elements */
			*moved = m;
			rep->element[n] = NULL;
			rep->elements = (size_t)n;
		}
	} else if (rep && rep->type != REDIS_REPLY_ERROR) {
		snprintf(q->err, sizeof(q->err), "unexpected reply to route");
	}
	if (rep)
		freeReplyObject(rep);
	return rc;
}

int sched_route(struct queue *q, const char *raw, size_t len, const struct sched_route_in *in,
		struct job_claim *out)
{
	return sched_route_batch(q, 1, &raw, &len, in, out, 0, 0, NULL);
}

void sched_pick_free(struct sched_pick *p)
{
	free(p->raw);
	p->raw = NULL;
}

int sched_pick(struct queue *q, long reserve_k, long lease_ms, unsigned long token,
	       const struct sched_budget_in *b, struct sched_pick *out)
{
	char k[21][300], kk[32], lease[32], tok[32], today[16], pool[32];
	const char *keys[21];
	int nkeys = 20;
	const char *args[7] = {kk, q->worker_id, lease, tok, today, pool, ""};
	redisReply *rep;
	static const char *const names[] = {"ready", "delayed", "items", "state", "gtag",
					    "gcount", "inflight", "picked", "parked",
					    "parkedGroups"};

	memset(out, 0, sizeof(*out));
	out->outcome = SCHED_AGAIN;
	for (int i = 0; i < 10; i++)
		skey(q, k[i], sizeof(k[i]), names[i]);
	pkey(q, k[10], sizeof(k[10]), "group:weight", NULL);
	pkey(q, k[11], sizeof(k[11]), "group:limit", NULL);
	pkey(q, k[12], sizeof(k[12]), "pause", NULL);
	pkey(q, k[13], sizeof(k[13]), "processing", q->worker_id);
	skey(q, k[14], sizeof(k[14]), "wake");
	pkey(q, k[15], sizeof(k[15]), "job", ""); /* the prefix of job hashes */
	/* i20-wire: the budget reservation's keys and arguments */
	budget_day(util_now_ms(), 0, today, sizeof(today));
	budget_day_key(q, today, k[16], sizeof(k[16]));
	pkey(q, k[17], sizeof(k[17]), "budget:group", NULL);
	pkey(q, k[18], sizeof(k[18]), "budget:models", NULL);
	pkey(q, k[19], sizeof(k[19]), "budget:open", NULL);
	snprintf(pool, sizeof(pool), "%ld", b ? b->pool_budget : 0L);
	if (b) {
		args[6] = b->account ? b->account : "";
	} else {
		nkeys = 16; /* no reservation */
	}
	if (q->sched_acct[0]) { /* i20-accounts: the account's pause */
		if (nkeys == 16) {
			snprintf(q->err, sizeof(q->err), "an account's pick needs its budget keys");
			return -1;
		}
		pkey(q, k[20], sizeof(k[20]), "pause:acct", q->sched_acct);
		nkeys = 21;
	}
	for (int i = 0; i < nkeys; i++)
		keys[i] = k[i];
	snprintf(kk, sizeof(kk), "%ld", reserve_k);
	snprintf(lease, sizeof(lease), "%ld", lease_ms);
	snprintf(tok, sizeof(tok), "%lu", token);
	rep = queue_eval(q, &lua_pick, nkeys, keys, 7, args, NULL);
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
	    rep->element[0]->type != REDIS_REPLY_STRING)
		goto out;
	{
		redisReply **e = rep->element;
		const char *o = e[0]->str;
		if (strcmp(o, "paused") == 0) {
			out->outcome = SCHED_PAUSED;
		} else if (strcmp(o, "held") == 0) {
			out->outcome = SCHED_HELD;
		} else if (strcmp(o, "empty") == 0) {
			out->outcome = SCHED_EMPTY;
			if (rep->elements > 1)
				out->next_due_ms = str_ll(e[1]);
			if (rep->elements > 2)
				out->parked_groups = (long)str_ll(e[2]);
		} else if (strcmp(o, "picked") == 0 && rep->elements >= 14 &&
			   e[2]->type == REDIS_REPLY_STRING && e[7]->type == REDIS_REPLY_STRING &&
			   queue_claim_outcome_parse(e[7]->str, &out->claim.outcome) == 0) {
			struct job_claim *c = &out->claim;
			out->outcome = SCHED_PICKED;
			copy_str(e[1], out->job_id, sizeof(out->job_id));
			out->raw = util_xmalloc(e[2]->len + 1);
			memcpy(out->raw, e[2]->str, e[2]->len);
			out->raw[e[2]->len] = '\0';
			out->raw_len = e[2]->len;
			out->priority = (long)str_ll(e[3]);
			copy_str(e[4], out->group, sizeof(out->group));
			out->queued_at_ms = str_ll(e[5]);
			copy_str(e[6], out->tag, sizeof(out->tag));
			/* {outcome, epoch, attempts, state, taskId, owner, mayHaveTask} from e[7] */
			claim_fields(&e[7], c);
			c->may_have_task = flag(e[13]);
			if (rep->elements >= 16) {
				copy_str(e[14], c->budget_why, sizeof(c->budget_why));
				c->budget_est = e[15]->type == REDIS_REPLY_STRING
							? strtod(e[15]->str, NULL) : 0;
			}
		}
	}
out:
	return done(rep);
}

int sched_put(struct queue *q, const char *raw, size_t len, const struct sched_pick *p,
	      long epoch, enum sched_put_mode mode, int64_t due_ms, const char *error)
{
	char k[13][300], est[32], ep[32], due[32], now[32], prio[8], qa[32];
	const char *keys[13];
	const char *args[14];
	size_t lens[14];
	static const char *const modes[] = {"front", "unattempt", "retry",
					    "over_budget"};
	static const char *const names[] = {"ready", "delayed", "items", "state", "gcount",
					    "inflight"};

	pkey(q, k[0], sizeof(k[0]), "processing", q->worker_id);
	pkey(q, k[1], sizeof(k[1]), "job", p->job_id);
	for (int i = 0; i < 6; i++)
		skey(q, k[2 + i], sizeof(k[2 + i]), names[i]);
	pkey(q, k[8], sizeof(k[8]), "stats", NULL);
	skey(q, k[9], sizeof(k[9]), "wake");
	pkey(q, k[10], sizeof(k[10]), "recoveries", NULL);
	skey(q, k[11], sizeof(k[11]), "overBudget");
	skey(q, k[12], sizeof(k[12]), "overBudgetEst");
	for (int i = 0; i < 13; i++)
		keys[i] = k[i];
	snprintf(ep, sizeof(ep), "%ld", epoch);
	snprintf(due, sizeof(due), "%lld", (long long)due_ms);
	snprintf(now, sizeof(now), "%lld", (long long)util_now_ms());
	snprintf(prio, sizeof(prio), "%ld", p->priority);
	snprintf(qa, sizeof(qa), "%lld", p->queued_at_ms);
	args[0] = raw; args[1] = p->job_id; args[2] = q->worker_id; args[3] = ep;
	args[4] = modes[mode]; args[5] = due; args[6] = error ? error : ""; args[7] = now;
	args[8] = prio; args[9] = p->group; args[10] = qa; args[11] = p->tag[0] ? p->tag : "0";
	snprintf(est, sizeof(est), "%.6g", p->budget_est);
	args[12] = mode == SCHED_PUT_OVER_BUDGET ? (error ? error : "") : "";
	args[13] = est;
	for (int i = 0; i < 14; i++)
		lens[i] = i == 0 ? len : strlen(args[i]);
	/* it must happen: a job left out of the structure would wait in a list for ever */
	for (long backoff = 100;; backoff = backoff < 2500 ? backoff * 2 : 5000) {
		redisReply *rep = queue_eval(q, &lua_sched_put, 13, keys, 14, args, lens);
		if (!rep || rep->type != REDIS_REPLY_ERROR)
			return done(rep);
		freeReplyObject(rep);
		for (long t = 0; t < backoff; t += 50) {
			if (q->r->stop && *q->r->stop)
				return -1;
			util_sleep_ms(50);
		}
	}
}

int sched_wait(struct queue *q, long timeout_ms, int *woken)
{
	char wake[300], tmo[32];
	const char *argv[3] = {"BLPOP", wake, tmo};
	redisReply *rep;

	*woken = 0;
	skey(q, wake, sizeof(wake), "wake");
	if (timeout_ms < 10)
		timeout_ms = 10;
	snprintf(tmo, sizeof(tmo), "%.3f", (double)timeout_ms / 1000.0);
	rep = rconn_argv(q->r, 3, argv, NULL);
	if (rep && rep->type == REDIS_REPLY_ARRAY)
		*woken = 1;
	return done(rep);
}

int sched_ready(struct queue *q, long *n, int64_t *next_due_ms, long *parked_groups)
{
	char ready[300], delayed[300], parked[300];
	const char *argv[6] = {"ZCARD", ready};
	redisReply *rep;

	*n = 0;
	*next_due_ms = 0;
	*parked_groups = 0;
	skey(q, ready, sizeof(ready), "ready");
	skey(q, delayed, sizeof(delayed), "delayed");
	skey(q, parked, sizeof(parked), "parkedGroups");
	rep = rconn_argv(q->r, 2, argv, NULL);
	if (rep && rep->type == REDIS_REPLY_INTEGER)
		*n = (long)rep->integer;
	if (done(rep) != 0)
		return -1;
	argv[1] = parked;
	rep = rconn_argv(q->r, 2, argv, NULL);
	if (rep && rep->type == REDIS_REPLY_INTEGER)
		*parked_groups = (long)rep->integer;
	if (done(rep) != 0)
		return -1;
	argv[0] = "ZRANGE"; argv[1] = delayed; argv[2] = "0"; argv[3] = "0";
	argv[4] = "WITHSCORES";
	rep = rconn_argv(q->r, 5, argv, NULL);
	if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2)
		*next_due_ms = str_ll(rep->element[1]);
	return done(rep);
}

int sched_functions_load(struct queue *q)
{
	const char *argv[4] = {"FCALL_RO", "kie_version", "0", NULL};
	redisReply *rep = rconn_argv(q->r, 3, argv, NULL);
	int ok = rep && rep->type == REDIS_REPLY_STRING &&
		 strcmp(rep->str, SCHED_FUNCTIONS_VERSION) == 0;
	if (rep)
		freeReplyObject(rep);
	if (!rep)
		return -1;
	if (ok)
		return 0;
	argv[0] = "FUNCTION"; argv[1] = "LOAD"; argv[2] = "REPLACE";
	argv[3] = lua_kie_functions.src;
	{
		size_t lens[4] = {8, 4, 7, lua_kie_functions.len};
		rep = rconn_argv(q->r, 4, argv, lens);
	}
	if (!rep || rep->type == REDIS_REPLY_ERROR) {
		snprintf(q->err, sizeof(q->err), "FUNCTION LOAD failed: %s (Redis 7 is needed for "
			 "kie_cancel and kie_position)", rep ? rep->str : "Redis unreachable");
		if (rep)
			freeReplyObject(rep);
		return -1;
	}
	freeReplyObject(rep);
	return 0;
}

int sched_setup(struct queue *q, const struct sched_settings *s)
{
	char state[300], chan[128], v[7][32];
	const char *argv[16];
	const long vals[7] = {s->results_max, s->reply_max, s->reply_ttl_s, s->record_ttl_s,
			      s->cancel_ttl_s, s->create_limit, s->create_window_ms};
	static const char *const names[7] = {"resultsMax", "replyMax", "replyTtlS", "recordTtlS",
					     "cancelTtlS", "createLimit", "createWindowMs"};
	redisReply *rep;
	int n = 0;

	skey(q, state, sizeof(state), "state");
	pkey(q, chan, sizeof(chan), "events", NULL);
	argv[n++] = "HSET";
	argv[n++] = state;
	argv[n++] = "chan";
	argv[n++] = chan;
	for (int i = 0; i < 6; i++) { /* 16 argv: the window goes in a second command */
		snprintf(v[i], sizeof(v[i]), "%ld", vals[i]);
		argv[n++] = names[i];
		argv[n++] = v[i];
	}
	rep = rconn_argv_retry(q->r, n, argv, NULL);
	if (done(rep) != 0)
		return -1;
	snprintf(v[6], sizeof(v[6]), "%ld", vals[6]);
	argv[2] = names[6];
	argv[3] = v[6];
	rep = rconn_argv_retry(q->r, 4, argv, NULL);
	if (done(rep) != 0)
		return -1;
	return sched_functions_load(q);
}

void sched_function_keys(const struct queue *q, const char *job_id, const char *reply_to,
			 char buf[11][300], const char *keys[11])
{
	pkey(q, buf[0], 300, "job", job_id);
	pkey(q, buf[1], 300, "cancel", job_id);
	skey(q, buf[2], 300, "ready");
	skey(q, buf[3], 300, "delayed");
	skey(q, buf[4], 300, "items");
	skey(q, buf[5], 300, "state");
	skey(q, buf[6], 300, "gcount");
	pkey(q, buf[7], 300, "stats", NULL);
	pkey(q, buf[8], 300, "results", NULL);
	skey(q, buf[9], 300, "parked");
	util_strlcpy(buf[10], reply_to && *reply_to ? reply_to : buf[0], 300);
	for (int i = 0; i < 11; i++)
		keys[i] = buf[i];
}

/* FCALL[_RO] name 11 keys... job_id; loads the library once when Redis does not know it. */
static int fcall(struct queue *q, const char *cmd, const char *name, const char *job_id,
		 const char *reply_to, char **json)
{
	char buf[11][300], hmin[HISTORY_KEY_MAX], hday[HISTORY_KEY_MAX];
	const char *keys[11], *argv[17];
	redisReply *rep = NULL;

	*json = NULL;
	sched_function_keys(q, job_id, reply_to, buf, keys);
	/* i21: + the history counters' keys (kie_cancel's optional KEYS[12], KEYS[13]) */
	history_keys(q->prefix, util_now_ms(), hmin, hday);
	argv[0] = cmd; argv[1] = name; argv[2] = "13";
	for (int i = 0; i < 11; i++)
		argv[3 + i] = keys[i];
	argv[14] = hmin;
	argv[15] = hday;
	argv[16] = job_id;
	for (int tries = 0; tries < 2; tries++) {
		rep = rconn_argv_retry(q->r, 17, argv, NULL);
		if (!rep) {
			snprintf(q->err, sizeof(q->err), "Redis unreachable");
			return -1;
		}
		if (rep->type == REDIS_REPLY_ERROR && strstr(rep->str, "Function not found") &&
		    tries == 0) {
			freeReplyObject(rep);
			rep = NULL;
			if (sched_functions_load(q) != 0)
				return -1;
			continue;
		}
		break;
	}
	if (rep->type != REDIS_REPLY_STRING) {
		snprintf(q->err, sizeof(q->err), "%s: %s", name,
			 rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
		freeReplyObject(rep);
		return -1;
	}
	*json = util_strdup(rep->str);
	freeReplyObject(rep);
	return 0;
}

/* i20-accounts: q's structure becomes the job's account's (the job hash's account field,
 * written by routing when the pool has several accounts); *saved keeps q's own. */
static void job_account(struct queue *q, const char *job_id, char saved[72])
{
	char jkey[300];
	const char *argv[3] = {"HGET", jkey, "account"};
	redisReply *rep;

	util_strlcpy(saved, q->sched_acct, 72);
	pkey(q, jkey, sizeof(jkey), "job", job_id);
	rep = rconn_argv_retry(q->r, 3, argv, NULL);
	if (rep && rep->type == REDIS_REPLY_STRING && rep->len > 0 && rep->len < 72)
		util_strlcpy(q->sched_acct, rep->str, sizeof(q->sched_acct));
	if (rep)
		freeReplyObject(rep);
}

int sched_cancel(struct queue *q, const char *job_id, char **json)
{
	char jkey[300], reply[300] = "", saved[72];
	const char *argv[3] = {"HGET", jkey, "replyTo"};
	redisReply *rep;
	int rc;

	pkey(q, jkey, sizeof(jkey), "job", job_id);
	rep = rconn_argv_retry(q->r, 3, argv, NULL);
	if (rep && rep->type == REDIS_REPLY_STRING)
		util_strlcpy(reply, rep->str, sizeof(reply));
	if (rep)
		freeReplyObject(rep);
	job_account(q, job_id, saved);
	/* the function re-checks the replyTo it is given against the job's */
	rc = fcall(q, "FCALL", "kie_cancel", job_id, reply, json);
	util_strlcpy(q->sched_acct, saved, sizeof(q->sched_acct));
	return rc;
}

int sched_position(struct queue *q, const char *job_id, char **json)
{
	char saved[72];
	int rc;

	job_account(q, job_id, saved);
	rc = fcall(q, "FCALL_RO", "kie_position", job_id, NULL, json);
	util_strlcpy(q->sched_acct, saved, sizeof(q->sched_acct));
	return rc;
}

/* i20-accounts */
int sched_wait_any(struct queue *q, const char *const *accts, int n, long timeout_ms,
		   int *which)
{
	char (*wake)[300] = util_xcalloc((size_t)n, sizeof(*wake)), tmo[32], saved[72];
	const char **argv = util_xcalloc((size_t)n + 2, sizeof(char *));
	redisReply *rep;

	*which = -1;
	util_strlcpy(saved, q->sched_acct, sizeof(saved));
	argv[0] = "BLPOP";
	for (int i = 0; i < n; i++) {
		util_strlcpy(q->sched_acct, accts[i], sizeof(q->sched_acct));
		skey(q, wake[i], sizeof(wake[i]), "wake");
		argv[1 + i] = wake[i];
	}
	util_strlcpy(q->sched_acct, saved, sizeof(q->sched_acct));
	if (timeout_ms < 10)
		timeout_ms = 10;
	snprintf(tmo, sizeof(tmo), "%.3f", (double)timeout_ms / 1000.0);
	argv[n + 1] = tmo;
	rep = rconn_argv(q->r, n + 2, argv, NULL);
	if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
	    rep->element[0]->type == REDIS_REPLY_STRING) {
		for (int i = 0; i < n; i++)
			if (strcmp(rep->element[0]->str, wake[i]) == 0)
				*which = i;
	}
	free(argv);
	free(wake);
	return done(rep);
}
