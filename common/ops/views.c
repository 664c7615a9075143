/* views.c — the operator page's paged views and search of views.h. */
#include "ops/views.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "kie/job.h"
#include "lua_scripts.h"
#include "pool/history.h"
#include "pool/sched.h"
#include "pool/sched_accounts.h"

/* rep, or NULL (err filled, rep freed) for a lost connection or an error reply. */
static redisReply *ok(struct queue *q, redisReply *rep, char *err, size_t errlen)
{
	if (rep && rep->type != REDIS_REPLY_ERROR)
		return rep;
	if (!rep)
		snprintf(err, errlen, "Redis unreachable");
	else
		snprintf(err, errlen, "Redis refused the command: %s", rep->str);
	util_strlcpy(q->err, err, sizeof(q->err));
	if (rep)
		freeReplyObject(rep);
	return NULL;
}

static redisReply *cmd(struct queue *q, char *err, size_t errlen, int argc, const char **argv)
{
	return ok(q, rconn_argv_retry(q->r, argc, argv, NULL), err, errlen);
}

static redisReply *eval(struct queue *q, char *err, size_t errlen, const struct script *s,
			int nkeys, const char **keys, int nargs, const char **args)
{
	return ok(q, script_run(q->r, s, 1, nkeys, keys, nargs, args, NULL), err, errlen);
}

static long long num(const redisReply *r)
{
	long long v = 0;
	if (r && r->type == REDIS_REPLY_INTEGER)
		return r->integer;
	if (r && r->type == REDIS_REPLY_STRING && util_parse_ll(r->str, &v) == 0)
		return v;
	return 0;
}

static int64_t redis_now_ms(struct queue *q)
{
	const char *argv[] = {"TIME"};
	char err[64];
	redisReply *rep = cmd(q, err, sizeof(err), 1, argv);
	int64_t now = util_now_ms();
	if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2)
		now = num(rep->element[0]) * 1000 + num(rep->element[1]) / 1000;
	if (rep)
		freeReplyObject(rep);
	return now;
}

/* A string reply as a JSON string (made valid UTF-8), or null. */
static cJSON *str_or_null(const redisReply *r)
{
	char *copy;
	cJSON *v;
	if (!r || r->type != REDIS_REPLY_STRING)
		return cJSON_CreateNull();
	copy = util_xmalloc(r->len + 1);
	memcpy(copy, r->str, r->len);
	copy[r->len] = '\0';
	util_utf8_sanitize(copy);
	v = cJSON_CreateString(copy);
	free(copy);
	return v;
}

/* A string reply holding a whole number, as a number, or null. */
static cJSON *num_or_null(const redisReply *r)
{
	long long v;
	if (r && r->type == REDIS_REPLY_STRING && util_parse_ll(r->str, &v) == 0)
		return cJSON_CreateNumber((double)v);
	if (r && r->type == REDIS_REPLY_INTEGER)
		return cJSON_CreateNumber((double)r->integer);
	return cJSON_CreateNull();
}

static long long length(struct queue *q, const char *command, const char *suffix, char *err,
			size_t errlen)
{
	char key[300];
	const char *argv[] = {command, key};
	redisReply *rep;
	long long n;

	queue_key(q, key, sizeof(key), suffix);
	rep = cmd(q, err, errlen, 2, argv);
	if (!rep)
		return -1;
	n = num(rep);
	freeReplyObject(rep);
	return n;
}

/* A string reply as a number (null when empty or not a number). */
static cJSON *num_or_null_str(const redisReply *r)
{
	return r && r->type == REDIS_REPLY_STRING && r->len ? num_or_null(r) : cJSON_CreateNull();
}

/* One run of admin_sched_page.lua on account acct's structure (args: from, offset,
 * limit, priority, group, scan); the reply checked, or NULL (err). */
static redisReply *sched_page(struct queue *q, const char *acct, const char *const *args,
			      char *err, size_t errlen)
{
	static const char *const names[] = {"ready", "delayed", "items", "parked"};
	char k[5][300];
	const char *keys[] = {k[0], k[1], k[2], k[3], k[4]};
	redisReply *rep;

	for (int i = 0; i < 4; i++)
		sched_accounts_key(q, acct, names[i], k[i], sizeof(k[i]));
	queue_key(q, k[4], sizeof(k[4]), "queue");
	rep = eval(q, err, errlen, &lua_admin_sched_page, 5, keys, 6, (const char **)args);
	if (rep && (rep->type != REDIS_REPLY_ARRAY || rep->elements < 6 ||
		    (rep->elements - 6) % 8)) {
		snprintf(err, errlen, "unexpected reply to admin_sched_page.lua");
		freeReplyObject(rep);
		rep = NULL;
	}
	return rep;
}

/* The entries of one page reply (at most max of them) into arr, each with its account
 * (acct; NULL for descriptors not yet routed). */
static void page_entries(const redisReply *rep, const char *from, const char *acct, long max,
			 cJSON *arr)
{
	for (size_t i = 6; i + 7 < rep->elements && max > 0; i += 8, max--) {
		cJSON *e = cJSON_CreateObject();
		const redisReply *id = rep->element[i], *gr = rep->element[i + 2];
		if (id->type == REDIS_REPLY_STRING && id->len)
			cJSON_AddItemToObject(e, "jobId", str_or_null(id));
		else
			cJSON_AddNullToObject(e, "jobId");
		cJSON_AddItemToObject(e, "priority", num_or_null_str(rep->element[i + 1]));
		if (gr->type == REDIS_REPLY_STRING && gr->len)
			cJSON_AddItemToObject(e, "group", str_or_null(gr));
		else
			cJSON_AddStringToObject(e, "group", "(default)");
		cJSON_AddItemToObject(e, "queuedAt", num_or_null_str(rep->element[i + 3]));
		if (rep->element[i + 4]->type == REDIS_REPLY_STRING && rep->element[i + 4]->len)
			cJSON_AddItemToObject(e, "type", str_or_null(rep->element[i + 4]));
		else
			cJSON_AddNullToObject(e, "type");
		cJSON_AddNumberToObject(e, "bytes", (double)num(rep->element[i + 5]));
		cJSON_AddNumberToObject(e, "position", (double)num(rep->element[i + 6]));
		if (strcmp(from, "delayed") == 0)
			cJSON_AddItemToObject(e, "dueAt", num_or_null_str(rep->element[i + 7]));
		if (acct)
			cJSON_AddStringToObject(e, "account", acct);
		else
			cJSON_AddNullToObject(e, "account");
		cJSON_AddItemToArray(arr, e);
	}
}

/* The ETA of each ready entry of account acct: its place over the pace kie_position
 * measures for that account (one FCALL_RO per account on the page; without the
 * Functions library, no ETA). The first pace found is o's "pace". */
static void page_etas(struct queue *q, cJSON *o, cJSON *arr, const char *acct, int64_t now)
{
	cJSON *e, *first = NULL, *pos = NULL;
	const cJSON *pace;
	char *json = NULL;

	cJSON_ArrayForEach(e, arr) {
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(e, "account");
		if (cJSON_IsString(a) && strcmp(a->valuestring, acct) == 0 &&
		    cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "jobId"))) {
			first = e;
			break;
		}
	}
	if (!first)
		return;
	if (sched_position(q, cJSON_GetObjectItemCaseSensitive(first, "jobId")->valuestring,
			   &json) == 0)
		pos = cJSON_Parse(json);
	free(json);
	pace = cJSON_GetObjectItemCaseSensitive(pos, "pace");
	if (cJSON_IsNumber(pace) && pace->valuedouble > 0) {
		if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "pace")))
			cJSON_ReplaceItemInObjectCaseSensitive(o, "pace",
							       cJSON_CreateNumber(pace->valuedouble));
		cJSON_ArrayForEach(e, arr) {
			const cJSON *a = cJSON_GetObjectItemCaseSensitive(e, "account");
			double p = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(e,
											 "position"));
			if (cJSON_IsString(a) && strcmp(a->valuestring, acct) == 0)
				cJSON_AddNumberToObject(e, "eta", (double)now + (p + 1) * 1000.0 /
								  pace->valuedouble);
		}
	}
	cJSON_Delete(pos);
}

cJSON *views_queued(struct queue *q, const char *from, int priority, const char *group,
		    const char *account, long offset, long limit, char *err, size_t errlen)
{
	char off[32], lim[32], prio[8], scan[32], g[VIEWS_GROUP_MAX + 2];
	const char *args[] = {from, off, lim, prio, g, scan};
	struct sched_accounts *sa = util_xcalloc(1, sizeof(*sa));
	redisReply *rep;
	cJSON *o, *arr, *counts, *acc;
	int64_t now = redis_now_ms(q);
	long long total[4] = {0, 0, 0, 0}, before = 0;
	long remaining = limit;
	int capped = 0, queue_mode = strcmp(from, "queue") == 0;

	/* i20-counts: every account's structure (sched_accounts.h), or the one asked for */
	if (account && *account) {
		sa->n = 1;
		util_strlcpy(sa->v[0].name, account, sizeof(sa->v[0].name));
		sa->v[0].registered = 1;
	} else if (sched_accounts_list(q, sa) != 0) {
		snprintf(err, errlen, "%s", q->err);
		free(sa);
		return NULL;
	}
	if (priority >= 0)
		snprintf(prio, sizeof(prio), "%d", priority);
	else
		prio[0] = '\0';
	/* "(default)" names the default group, stored as "" ("\1" to the script) */
	if (group && strcmp(group, "(default)") == 0)
		util_strlcpy(g, "\1", sizeof(g));
	else
		util_strlcpy(g, group ? group : "", sizeof(g));
	snprintf(scan, sizeof(scan), "%d", VIEWS_SCAN_MAX);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "from", from);
	counts = cJSON_AddObjectToObject(o, "counts");
	acc = cJSON_CreateObject();
	arr = cJSON_CreateArray();
	cJSON_AddNullToObject(o, "pace");
	/* The accounts' matching entries one account after the other (by name), each with
	 * its position in its own account's order: offset and limit count in that list. The
	 * descriptors not yet routed (from "queue") are the pool's: read once. */
	for (int i = 0; i < sa->n; i++) {
		long loff = offset > before ? (long)(offset - before) : 0;
		long long matched;
		int page_queue = queue_mode && i == 0;
		args[0] = queue_mode && !page_queue ? "ready" : from;
		snprintf(off, sizeof(off), "%ld", queue_mode && !page_queue ? 0 : loff);
		snprintf(lim, sizeof(lim), "%ld", remaining > 0 && (!queue_mode || page_queue)
						  ? remaining : 1);
		if (queue_mode && !page_queue)
			prio[0] = g[0] = '\0';
		rep = sched_page(q, sa->v[i].name, args, err, errlen);
		if (!rep) {
			cJSON_Delete(acc);
			cJSON_Delete(arr);
			cJSON_Delete(o);
			free(sa);
			return NULL;
		}
		for (int c = 0; c < 4; c++)
			total[c] += c == 3 && i > 0 ? 0 : num(rep->element[c]);
		if (sa->v[i].registered || num(rep->element[0]) || num(rep->element[1]) ||
		    num(rep->element[2])) {
			cJSON *a = cJSON_AddObjectToObject(acc, sa->v[i].name);
			cJSON_AddNumberToObject(a, "ready", (double)num(rep->element[0]));
			cJSON_AddNumberToObject(a, "delayed", (double)num(rep->element[1]));
			cJSON_AddNumberToObject(a, "parked", (double)num(rep->element[2]));
		}
		if (!queue_mode || page_queue) {
			matched = num(rep->element[4]);
			capped |= num(rep->element[5]) != 0;
			if (remaining > 0 && offset < before + matched) {
				long had = cJSON_GetArraySize(arr);
				page_entries(rep, from, page_queue ? NULL : sa->v[i].name, remaining,
					     arr);
				remaining -= cJSON_GetArraySize(arr) - had;
			}
			before += matched;
		}
		freeReplyObject(rep);
	}
	cJSON_AddNumberToObject(counts, "ready", (double)total[0]);
	cJSON_AddNumberToObject(counts, "delayed", (double)total[1]);
	cJSON_AddNumberToObject(counts, "parked", (double)total[2]);
	cJSON_AddNumberToObject(counts, "notRouted", (double)total[3]);
	cJSON_AddItemToObject(o, "accounts", acc);
	cJSON_AddNumberToObject(o, "matched", (double)before);
	cJSON_AddBoolToObject(o, "capped", capped);
	cJSON_AddNumberToObject(o, "offset", (double)offset);
	cJSON_AddNumberToObject(o, "now", (double)now);
	cJSON_AddItemToObject(o, "entries", arr);
	if (strcmp(from, "ready") == 0)
		for (int i = 0; i < sa->n; i++)
			page_etas(q, o, arr, sa->v[i].name, now);
	free(sa);
	return o;
}

/* ZRANGE key offset..offset+limit-1 WITHSCORES, then the fields of each member's hash
 * (<p>:<hash_kind>:<member>) in one admin_hashes.lua. *ids and *fields are the replies
 * (freed by the caller), NULL on -1 (err). */
static int zpage_with_hashes(struct queue *q, const char *zset, const char *hash_kind,
			     long offset, long limit, const char *const *fields, int nfields,
			     redisReply **ids, redisReply **vals, char *err, size_t errlen)
{
	char key[300], a[32], b[32];
	const char *argv[] = {"ZRANGE", key, a, b, "WITHSCORES"};
	char **keys = NULL;
	size_t n;

	*ids = *vals = NULL;
	queue_key(q, key, sizeof(key), zset);
	snprintf(a, sizeof(a), "%ld", offset);
	snprintf(b, sizeof(b), "%ld", offset + limit - 1);
	*ids = cmd(q, err, errlen, 5, argv);
	if (!*ids)
		return -1;
	if ((*ids)->type != REDIS_REPLY_ARRAY) {
		snprintf(err, errlen, "%s is not a sorted set", key);
		freeReplyObject(*ids);
		*ids = NULL;
		return -1;
	}
	n = (*ids)->elements / 2;
	if (n == 0)
		return 0;
	keys = util_xcalloc(n, sizeof(*keys));
	for (size_t i = 0; i < n; i++) {
		const redisReply *m = (*ids)->element[2 * i];
		size_t len = strlen(q->prefix) + strlen(hash_kind) + (m->str ? m->len : 0) + 3;
		keys[i] = util_xmalloc(len);
		snprintf(keys[i], len, "%s:%s:%s", q->prefix, hash_kind, m->str ? m->str : "");
	}
	*vals = eval(q, err, errlen, &lua_admin_hashes, (int)n, (const char **)keys, nfields,
		     (const char **)fields);
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
	if (!*vals || (*vals)->type != REDIS_REPLY_ARRAY || (*vals)->elements != n) {
		if (*vals) {
			snprintf(err, errlen, "unexpected reply to admin_hashes.lua");
			freeReplyObject(*vals);
			*vals = NULL;
		}
		freeReplyObject(*ids);
		*ids = NULL;
		return -1;
	}
	return 0;
}

/* Field i of a hash's values (admin_hashes.lua), or NULL. */
static const redisReply *field(const redisReply *vals, size_t k, size_t i)
{
	const redisReply *h = vals ? vals->element[k] : NULL;
	return h && h->type == REDIS_REPLY_ARRAY && i < h->elements ? h->element[i] : NULL;
}

cJSON *views_in_flight(struct queue *q, long offset, long limit, char *err, size_t errlen)
{
	static const char *const fields[] = {"jobId", "type", "createdAt", "polls", "kieState",
					     "status", "copyTries", "attempts"};
	redisReply *ids, *vals;
	long long total, waiting;
	int64_t now;
	cJSON *o, *arr;

	total = length(q, "ZCARD", "poll:due", err, errlen);
	waiting = total < 0 ? -1 : length(q, "LLEN", "polling", err, errlen);
	if (waiting < 0)
		return NULL;
	now = redis_now_ms(q);
	if (zpage_with_hashes(q, "poll:due", "task", offset, limit, fields, 8, &ids, &vals, err,
			      errlen) != 0)
		return NULL;
	o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "total", (double)total);
	cJSON_AddNumberToObject(o, "notPromoted", (double)waiting);
	cJSON_AddNumberToObject(o, "offset", (double)offset);
	cJSON_AddNumberToObject(o, "now", (double)now);
	arr = cJSON_AddArrayToObject(o, "entries");
	for (size_t k = 0; 2 * k + 1 < ids->elements; k++) {
		cJSON *e = cJSON_CreateObject();
		double due = strtod(ids->element[2 * k + 1]->str ? ids->element[2 * k + 1]->str
								 : "0", NULL);
		const redisReply *created = field(vals, k, 2);
		long long c;
		cJSON_AddItemToObject(e, "taskId", str_or_null(ids->element[2 * k]));
		cJSON_AddItemToObject(e, "jobId", str_or_null(field(vals, k, 0)));
		cJSON_AddItemToObject(e, "type", str_or_null(field(vals, k, 1)));
		cJSON_AddItemToObject(e, "createdAt", num_or_null(created));
		if (created && created->type == REDIS_REPLY_STRING &&
		    util_parse_ll(created->str, &c) == 0)
			cJSON_AddNumberToObject(e, "ageMs", (double)(now - c));
		else
			cJSON_AddNullToObject(e, "ageMs");
		cJSON_AddItemToObject(e, "polls", num_or_null(field(vals, k, 3)));
		cJSON_AddNumberToObject(e, "nextPollAt", due);
		cJSON_AddNumberToObject(e, "nextPollInMs", due - (double)now);
		for (size_t i = 4; i < 8; i++) {
			const redisReply *v = field(vals, k, i);
			if (v && v->type == REDIS_REPLY_STRING)
				cJSON_AddItemToObject(e, fields[i],
						      i >= 6 ? num_or_null(v) : str_or_null(v));
		}
		cJSON_AddItemToArray(arr, e);
	}
	freeReplyObject(ids);
	if (vals)
		freeReplyObject(vals);
	return o;
}

cJSON *views_uncertain(struct queue *q, long offset, long limit, char *err, size_t errlen)
{
	static const char *const fields[] = {"type", "attempts", "workerId", "error",
					     "updatedAt"};
	redisReply *ids, *vals;
	long long total;
	int64_t now;
	cJSON *o, *arr;

	total = length(q, "ZCARD", "uncertain", err, errlen);
	if (total < 0)
		return NULL;
	now = redis_now_ms(q);
	if (zpage_with_hashes(q, "uncertain", "job", offset, limit, fields, 5, &ids, &vals, err,
			      errlen) != 0)
		return NULL;
	o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "total", (double)total);
	cJSON_AddNumberToObject(o, "offset", (double)offset);
	cJSON_AddNumberToObject(o, "now", (double)now);
	arr = cJSON_AddArrayToObject(o, "entries");
	for (size_t k = 0; 2 * k + 1 < ids->elements; k++) {
		cJSON *e = cJSON_CreateObject();
		double end = strtod(ids->element[2 * k + 1]->str ? ids->element[2 * k + 1]->str
								 : "0", NULL);
		cJSON_AddItemToObject(e, "jobId", str_or_null(ids->element[2 * k]));
		cJSON_AddNumberToObject(e, "windowEndsAt", end);
		cJSON_AddNumberToObject(e, "leftMs", end > (double)now ? end - (double)now : 0);
		cJSON_AddItemToObject(e, "type", str_or_null(field(vals, k, 0)));
		cJSON_AddItemToObject(e, "attempts", num_or_null(field(vals, k, 1)));
		cJSON_AddItemToObject(e, "workerId", str_or_null(field(vals, k, 2)));
		cJSON_AddItemToObject(e, "error", str_or_null(field(vals, k, 3)));
		cJSON_AddItemToObject(e, "updatedAt", num_or_null(field(vals, k, 4)));
		cJSON_AddItemToArray(arr, e);
	}
	freeReplyObject(ids);
	if (vals)
		freeReplyObject(vals);
	return o;
}

cJSON *views_rates_minutes(struct queue *q, long minutes, char *err, size_t errlen)
{
	char results[300], dead[300], cut[UTIL_ISO8601_SIZE], cap[32];
	const char *keys[] = {results, dead};
	const char *args[] = {cut, cap};
	int64_t now = redis_now_ms(q), first = (now / 60000 - minutes) * 60000;
	redisReply *rep;
	cJSON *o, *arr;
	size_t j = 1;

	queue_key(q, results, sizeof(results), "results");
	queue_key(q, dead, sizeof(dead), "dead");
	util_iso8601(first, cut);
	snprintf(cap, sizeof(cap), "%d", VIEWS_RATES_SCAN);
	rep = eval(q, err, errlen, &lua_admin_rates_minutes, 2, keys, 2, args);
	if (!rep)
		return NULL;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 || (rep->elements - 1) % 4) {
		snprintf(err, errlen, "unexpected reply to admin_rates_minutes.lua");
		freeReplyObject(rep);
		return NULL;
	}
	o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "minutes", (double)minutes);
	cJSON_AddBoolToObject(o, "capped", num(rep->element[0]) != 0);
	arr = cJSON_AddArrayToObject(o, "points");
	for (int64_t t = first; t <= now; t += 60000) {
		char iso[UTIL_ISO8601_SIZE], minute[17];
		cJSON *p = cJSON_CreateObject();
		long long c = 0, f = 0, d = 0;
		util_iso8601(t, iso);
		util_strlcpy(minute, iso, sizeof(minute));
		/* the script's minutes are sorted, as these are: walk both */
		while (j + 3 < rep->elements && rep->element[j]->type == REDIS_REPLY_STRING &&
		       strcmp(rep->element[j]->str, minute) < 0)
			j += 4;
		if (j + 3 < rep->elements && rep->element[j]->type == REDIS_REPLY_STRING &&
		    strcmp(rep->element[j]->str, minute) == 0) {
			c = num(rep->element[j + 1]);
			f = num(rep->element[j + 2]);
			d = num(rep->element[j + 3]);
			j += 4;
		}
		cJSON_AddStringToObject(p, "minute", minute);
		cJSON_AddNumberToObject(p, "t", (double)(t / 1000));
		cJSON_AddNumberToObject(p, "completed", (double)c);
		cJSON_AddNumberToObject(p, "failed", (double)f);
		cJSON_AddNumberToObject(p, "dead", (double)d);
		cJSON_AddItemToArray(arr, p);
	}
	freeReplyObject(rep);
	return o;
}

cJSON *views_create_slots(struct queue *q, const char *account_prefix, const char *account_id,
			  long limit, long window_ms, char *err, size_t errlen)
{
	char log[300], from[32], to[32], after[32];
	const char *used_argv[] = {"ZCOUNT", log, from, to};
	const char *later_argv[] = {"ZCOUNT", log, after, "+inf"};
	redisReply *used, *later;
	int64_t now;
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "limit", (double)limit);
	cJSON_AddNumberToObject(o, "windowMs", (double)window_ms);
	if (!account_id || !*account_id) {
		cJSON_AddNullToObject(o, "used");
		cJSON_AddNullToObject(o, "reserved");
		return o;
	}
	/* the log holds reserved call times (limiter_acquire.lua): those in (now - W, now]
	 * are calls made in the window, later ones are reservations of waiting runners */
	now = redis_now_ms(q);
	snprintf(log, sizeof(log), "%s:{%s}:create", account_prefix, account_id);
	snprintf(from, sizeof(from), "(%lld", (long long)(now - window_ms));
	snprintf(to, sizeof(to), "%lld", (long long)now);
	snprintf(after, sizeof(after), "(%lld", (long long)now);
	used = cmd(q, err, errlen, 4, used_argv);
	later = used ? cmd(q, err, errlen, 4, later_argv) : NULL;
	if (!later) {
		if (used)
			freeReplyObject(used);
		cJSON_Delete(o);
		return NULL;
	}
	cJSON_AddNumberToObject(o, "used", (double)num(used));
	cJSON_AddNumberToObject(o, "reserved", (double)num(later));
	freeReplyObject(used);
	freeReplyObject(later);
	return o;
}

cJSON *views_search(struct queue *q, const char *term, char *err, size_t errlen)
{
	char key[400], needle[JOB_ID_MAX + 32], cap[16];
	const char *exists[] = {"EXISTS", key};
	const char *hget[] = {"HGET", key, "jobId"};
	redisReply *rep;
	cJSON *o;

	if (!term || !(job_id_valid(term) || job_group_valid(term))) {
		snprintf(err, errlen, "search for a job id, a task id or a group "
			 "([A-Za-z0-9._:@-], 1 to 128 bytes)");
		return NULL;
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "term", term);
	snprintf(key, sizeof(key), "%s:job:%s", q->prefix, term);
	if (!(rep = cmd(q, err, errlen, 2, exists)))
		goto fail;
	if (num(rep) == 1) {
		freeReplyObject(rep);
		cJSON_AddStringToObject(o, "by", "job");
		cJSON_AddStringToObject(o, "jobId", term);
		cJSON_AddNullToObject(o, "taskId");
		return o;
	}
	freeReplyObject(rep);
	snprintf(key, sizeof(key), "%s:task:%s", q->prefix, term);
	if (!(rep = cmd(q, err, errlen, 3, hget)))
		goto fail;
	if (rep->type == REDIS_REPLY_STRING && job_id_valid(rep->str)) {
		cJSON_AddStringToObject(o, "by", "task");
		cJSON_AddStringToObject(o, "jobId", rep->str);
		cJSON_AddStringToObject(o, "taskId", term);
		freeReplyObject(rep);
		return o;
	}
	freeReplyObject(rep);
	{ /* the task hash expired or never was: a completion event names it */
		const char *keys[] = {key};
		const char *args[] = {needle, cap, "1"};
		queue_key(q, key, sizeof(key), "results");
		snprintf(needle, sizeof(needle), "\"taskId\":\"%s\"", term);
		snprintf(cap, sizeof(cap), "%d", 10000);
		if (!(rep = eval(q, err, errlen, &lua_admin_find, 1, keys, 3, args)))
			goto fail;
		if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
		    rep->element[0]->type == REDIS_REPLY_STRING) {
			cJSON *ev = cJSON_ParseWithLength(rep->element[0]->str, rep->element[0]->len);
			const cJSON *id = cJSON_GetObjectItemCaseSensitive(ev, "jobId");
			if (cJSON_IsString(id) && job_id_valid(id->valuestring)) {
				cJSON_AddStringToObject(o, "by", "event");
				cJSON_AddStringToObject(o, "jobId", id->valuestring);
				cJSON_AddStringToObject(o, "taskId", term);
				cJSON_Delete(ev);
				freeReplyObject(rep);
				return o;
			}
			cJSON_Delete(ev);
		}
		freeReplyObject(rep);
	}
	{ /* a group with jobs waiting in a structure (any account's, i20-counts): the page
	   * lists them (queued view) */
		const char *hexists[] = {"HEXISTS", key, term};
		struct sched_accounts *sa = util_xcalloc(1, sizeof(*sa));
		long long found = 0;
		if (sched_accounts_list(q, sa) != 0) {
			snprintf(err, errlen, "%s", q->err);
			free(sa);
			goto fail;
		}
		for (int i = 0; i < sa->n && !found; i++) {
			sched_accounts_key(q, sa->v[i].name, "gcount", key, sizeof(key));
			if (!(rep = cmd(q, err, errlen, 3, hexists))) {
				free(sa);
				goto fail;
			}
			found = num(rep);
			freeReplyObject(rep);
		}
		free(sa);
		if (found == 1) {
			cJSON_AddStringToObject(o, "by", "group");
			cJSON_AddStringToObject(o, "group", term);
			cJSON_AddNullToObject(o, "jobId");
			cJSON_AddNullToObject(o, "taskId");
			return o;
		}
	}
	cJSON_AddStringToObject(o, "by", "id");
	cJSON_AddStringToObject(o, "jobId", term);
	cJSON_AddNullToObject(o, "taskId");
	return o;
fail:
	cJSON_Delete(o);
	return NULL;
}

cJSON *views_job_descriptor(struct queue *q, const char *job_id, size_t max_bytes, char *err,
			    size_t errlen)
{
	char key[400];
	const char *argv[] = {"HGET", key, "raw"};
	struct rconn_bulk b;
	cJSON *v;
	char *copy;

	snprintf(key, sizeof(key), "%s:job:%s", q->prefix, job_id);
	memset(&b, 0, sizeof(b));
	if (rconn_bulk_bounded(q->r, 3, argv, NULL, max_bytes, &b) != 0) {
		snprintf(err, errlen, "Redis unreachable");
		rconn_bulk_free(&b);
		return NULL;
	}
	if (b.type != REDIS_REPLY_STRING) {
		rconn_bulk_free(&b);
		return cJSON_CreateNull();
	}
	{ /* over max_bytes: its head only */
		const char *src = b.kept ? b.data : b.head;
		size_t n = b.kept ? b.len : b.head_len;
		copy = util_xmalloc(n + 1);
		memcpy(copy, src, n);
		copy[n] = '\0';
		util_utf8_fix_end(copy);
	}
	util_utf8_sanitize(copy);
	v = cJSON_CreateString(copy);
	free(copy);
	rconn_bulk_free(&b);
	return v;
}

/* The bounds of lib/history.lua's buckets (ms), for the percentiles. */
static const long hist_bounds[] = {1000, 2000, 5000, 10000, 20000, 30000, 60000, 120000,
				   300000, 600000, 1200000, 3600000, 10800000};
#define HIST_NB (sizeof(hist_bounds) / sizeof(hist_bounds[0]))

/* The q-quantile of a histogram (counts per bound, the last one "inf"): the bound of the
 * bucket that holds it, 2 x the last bound for "inf"; -1 when empty. */
static double quantile(const long long *h, double qq)
{
	long long total = 0, run = 0;
	for (size_t i = 0; i <= HIST_NB; i++)
		total += h[i];
	if (total == 0)
		return -1;
	for (size_t i = 0; i <= HIST_NB; i++) {
		run += h[i];
		if ((double)run >= qq * (double)total)
			return i < HIST_NB ? (double)hist_bounds[i] : 2.0 * (double)hist_bounds[HIST_NB - 1];
	}
	return -1;
}

/* Index of a bucket field's bound ("1000", "inf"), or -1. */
static int bucket_index(const char *le)
{
	long long v;
	if (strcmp(le, "inf") == 0)
		return (int)HIST_NB;
	if (util_parse_ll(le, &v) != 0)
		return -1;
	for (size_t i = 0; i < HIST_NB; i++)
		if (hist_bounds[i] == v)
			return (int)i;
	return -1;
}

static void add_quantile(cJSON *p, const char *name, const long long *h, double qq)
{
	double v = quantile(h, qq);
	if (v < 0)
		cJSON_AddNullToObject(p, name);
	else
		cJSON_AddNumberToObject(p, name, v);
}

cJSON *views_history(struct queue *q, int days, long n, long step, char *err, size_t errlen)
{
	static const char *const counts[] = {"completed", "failed", "dead", "cancelled",
					     "created", "refused"};
	int64_t now = redis_now_ms(q);
	long nkeys = days ? 2 * n : n;
	char **keys = util_xcalloc((size_t)nkeys, sizeof(char *));
	const char *args[] = {days ? "1" : "0"};
	redisReply *rep;
	cJSON *o = NULL, *arr, *bounds;
	int64_t first = days ? now / 86400000 - (n - 1) : now / 60000 - (n - 1);

	for (long i = 0; i < n; i++) {
		char k[HISTORY_KEY_MAX];
		if (days) {
			history_day_key(q->prefix, (first + i) * 86400, k);
			keys[2 * i] = util_strdup(k);
			/* <p>:spend:<yyyymmdd>: the day part of the history key */
			{
				char s[HISTORY_KEY_MAX + 16];
				snprintf(s, sizeof(s), "%s:spend:%s", q->prefix, strrchr(k, ':') + 1);
				keys[2 * i + 1] = util_strdup(s);
			}
		} else {
			history_minute_key(q->prefix, first + i, k);
			keys[i] = util_strdup(k);
		}
	}
	rep = eval(q, err, errlen, &lua_admin_hist_read, (int)nkeys, (const char **)keys, 1, args);
	for (long i = 0; i < nkeys; i++)
		free(keys[i]);
	free(keys);
	if (!rep)
		return NULL;
	if (rep->type != REDIS_REPLY_ARRAY || (long)rep->elements != nkeys) {
		snprintf(err, errlen, "unexpected reply to admin_hist_read.lua");
		freeReplyObject(rep);
		return NULL;
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "unit", days ? "day" : "minute");
	cJSON_AddNumberToObject(o, "step", (double)step);
	cJSON_AddNumberToObject(o, "now", (double)now);
	bounds = cJSON_AddArrayToObject(o, "boundsMs");
	for (size_t i = 0; i < HIST_NB; i++)
		cJSON_AddItemToArray(bounds, cJSON_CreateNumber((double)hist_bounds[i]));
	arr = cJSON_AddArrayToObject(o, "points");
	/* step > 1: consecutive periods summed into one point (the 48 h chart: 10 minutes) */
	for (long i = 0; i < n; i += step) {
		cJSON *p = cJSON_CreateObject(), *raw;
		long long c[6] = {0}, wait[HIST_NB + 1] = {0}, gen[HIST_NB + 1] = {0};
		double credits = 0;
		int has_credits = 0;
		for (long s = i; s < i + step && s < n; s++) {
			const redisReply *h = rep->element[days ? 2 * s : s];
			for (size_t k = 0; h->type == REDIS_REPLY_ARRAY && k + 1 < h->elements; k += 2) {
				const char *f = h->element[k]->str;
				long long v = num(h->element[k + 1]);
				int b;
				if (!f)
					continue;
				for (size_t x = 0; x < 6; x++)
					if (strcmp(f, counts[x]) == 0)
						c[x] += v;
				if (strncmp(f, "wait:", 5) == 0 && (b = bucket_index(f + 5)) >= 0)
					wait[b] += v;
				if (strncmp(f, "gen:", 4) == 0 && (b = bucket_index(f + 4)) >= 0)
					gen[b] += v;
			}
			if (days) {
				const redisReply *sp = rep->element[2 * s + 1];
				if (sp->type == REDIS_REPLY_ARRAY && sp->elements == 2 &&
				    sp->element[1]->type == REDIS_REPLY_STRING) {
					credits += strtod(sp->element[1]->str, NULL);
					has_credits = 1;
				}
			}
		}
		cJSON_AddNumberToObject(p, "t", (double)((first + i) * (days ? 86400 : 60)));
		for (size_t x = 0; x < 6; x++)
			cJSON_AddNumberToObject(p, counts[x], (double)c[x]);
		add_quantile(p, "waitP50", wait, 0.5);
		add_quantile(p, "waitP95", wait, 0.95);
		add_quantile(p, "genP50", gen, 0.5);
		add_quantile(p, "genP95", gen, 0.95);
		raw = cJSON_AddObjectToObject(p, "wait");
		for (size_t b = 0; b <= HIST_NB; b++) {
			char le[24];
			if (!wait[b])
				continue;
			if (b < HIST_NB)
				snprintf(le, sizeof(le), "%ld", hist_bounds[b]);
			else
				snprintf(le, sizeof(le), "inf");
			cJSON_AddNumberToObject(raw, le, (double)wait[b]);
		}
		raw = cJSON_AddObjectToObject(p, "gen");
		for (size_t b = 0; b <= HIST_NB; b++) {
			char le[24];
			if (!gen[b])
				continue;
			if (b < HIST_NB)
				snprintf(le, sizeof(le), "%ld", hist_bounds[b]);
			else
				snprintf(le, sizeof(le), "inf");
			cJSON_AddNumberToObject(raw, le, (double)gen[b]);
		}
		if (days) {
			if (has_credits)
				cJSON_AddNumberToObject(p, "credits", credits);
			else
				cJSON_AddNumberToObject(p, "credits", 0);
		}
		cJSON_AddItemToArray(arr, p);
	}
	freeReplyObject(rep);
	return o;
}
