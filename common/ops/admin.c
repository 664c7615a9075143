/* admin.c — the operator's reads and actions of admin.h: stats, job show, dead letters. */
#include "ops/admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/crypto.h"
#include "core/util.h"
#include "kie/job.h"
#include "lua_scripts.h"
#include "pool/sched_accounts.h"

/* ---- Redis helpers ---- */

static void set_err(struct queue *q, const redisReply *rep, char *err, size_t errlen)
{
	if (!rep)
		snprintf(err, errlen, "Redis unreachable");
	else if (rep->type == REDIS_REPLY_ERROR)
		snprintf(err, errlen, "Redis refused the command: %s", rep->str);
	else
		snprintf(err, errlen, "unexpected reply from Redis");
	util_strlcpy(q->err, err, sizeof(q->err));
}

/* rep itself, or NULL (err filled, rep freed) for a lost connection or an error reply. */
static redisReply *checked(struct queue *q, redisReply *rep, char *err, size_t errlen)
{
	if (!rep || rep->type == REDIS_REPLY_ERROR) {
		set_err(q, rep, err, errlen);
		if (rep)
			freeReplyObject(rep);
		return NULL;
	}
	return rep;
}

/* One command; NULL (err filled) on a lost connection or an error reply. */
static redisReply *cmd(struct queue *q, char *err, size_t errlen, int argc, const char **argv,
		       const size_t *lens)
{
	return checked(q, rconn_argv_retry(q->r, argc, argv, lens), err, errlen);
}

static redisReply *cmd2(struct queue *q, char *err, size_t errlen, const char *a, const char *b)
{
	const char *argv[] = {a, b};
	return cmd(q, err, errlen, 2, argv, NULL);
}

/* One script of common/ops/lua (script_run, every key in KEYS); NULL (err filled) on a lost
 * connection or an error reply. */
static redisReply *eval(struct queue *q, char *err, size_t errlen, const struct script *s,
			int nkeys, const char **keys, int nargs, const char **args,
			const size_t *arglens)
{
	return checked(q, script_run(q->r, s, 1, nkeys, keys, nargs, args, arglens), err,
		       errlen);
}

static long long int_reply(const redisReply *r)
{
	long long v = 0;
	if (!r)
		return 0;
	if (r->type == REDIS_REPLY_INTEGER)
		return r->integer;
	if (r->type == REDIS_REPLY_STRING && util_parse_ll(r->str, &v) == 0)
		return v;
	return 0;
}

/* A length command (LLEN, ZCARD, SCARD, HLEN) on <p>:<suffix>; -1 when Redis failed. */
static long long count(struct queue *q, const char *command, const char *suffix, char *err,
		       size_t errlen)
{
	char key[300];
	redisReply *rep;
	long long n;

	queue_key(q, key, sizeof(key), suffix);
	rep = cmd2(q, err, errlen, command, key);
	if (!rep)
		return -1;
	n = int_reply(rep);
	freeReplyObject(rep);
	return n;
}

static int64_t redis_now_ms(struct queue *q)
{
	const char *argv[] = {"TIME"};
	char err[64];
	redisReply *rep = cmd(q, err, sizeof(err), 1, argv, NULL);
	int64_t now = util_now_ms();
	if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2)
		now = int_reply(rep->element[0]) * 1000 + int_reply(rep->element[1]) / 1000;
	if (rep)
		freeReplyObject(rep);
	return now;
}

/* A string as JSON when it parses, else as a string. */
static cJSON *json_or_string(const char *s, size_t len)
{
	cJSON *v = cJSON_ParseWithLength(s, len);
	if (v)
		return v;
	char *copy = util_xmalloc(len + 1);
	memcpy(copy, s, len);
	copy[len] = '\0';
	util_utf8_sanitize(copy);
	v = cJSON_CreateString(copy);
	free(copy);
	return v;
}

/* An array reply of list entries (events, dead letters) as a JSON array: each entry
 * parsed, or as a string when it is not JSON. */
static cJSON *entries_json(const redisReply *rep)
{
	cJSON *arr = cJSON_CreateArray();

	for (size_t i = 0; i < rep->elements; i++)
		if (rep->element[i]->type == REDIS_REPLY_STRING)
			cJSON_AddItemToArray(arr, json_or_string(rep->element[i]->str,
								 rep->element[i]->len));
	return arr;
}

/* A hash reply (HGETALL) as an object: numbers for the fields in numeric (a NULL-ended
 * list), parsed JSON for those in json, the length only for those in sizes. */
static cJSON *hash_object(const redisReply *rep, const char *const *numeric,
			  const char *const *json, const char *const *sizes)
{
	cJSON *o = cJSON_CreateObject();
	for (size_t i = 0; rep && i + 1 < rep->elements; i += 2) {
		const redisReply *k = rep->element[i], *v = rep->element[i + 1];
		int done = 0;
		if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		for (const char *const *n = sizes; n && *n && !done; n++)
			if (strcmp(k->str, *n) == 0) {
				char name[80];
				snprintf(name, sizeof(name), "%sBytes", *n);
				cJSON_AddNumberToObject(o, name, (double)v->len);
				done = 1;
			}
		for (const char *const *n = numeric; n && *n && !done; n++)
			if (strcmp(k->str, *n) == 0) {
				long long x;
				if (util_parse_ll(v->str, &x) == 0) {
					cJSON_AddNumberToObject(o, k->str, (double)x);
					done = 1;
				}
			}
		for (const char *const *n = json; n && *n && !done; n++)
			if (strcmp(k->str, *n) == 0) {
				cJSON_AddItemToObject(o, k->str, json_or_string(v->str, v->len));
				done = 1;
			}
		if (!done) {
			char *copy = util_strdup(v->str);
			util_utf8_sanitize(copy);
			cJSON_AddStringToObject(o, k->str, copy);
			free(copy);
		}
	}
	return o;
}

/* ---- reason classes ---- */

static const char *const rc_names[ADMIN_RC_COUNT] = {
	"invalid", "oversized", "kie_rejected", "attempts_exhausted", "uncertain", "duplicate",
	"recovery", "other"};

const char *admin_reason_class_str(enum admin_reason_class c)
{
	return (unsigned)c < ADMIN_RC_COUNT ? rc_names[c] : "other";
}

int admin_reason_class_parse(const char *s, enum admin_reason_class *out)
{
	for (int i = 0; i < ADMIN_RC_COUNT; i++)
		if (s && strcmp(s, rc_names[i]) == 0) {
			*out = (enum admin_reason_class)i;
			return 0;
		}
	return -1;
}

static enum admin_reason_class classify(const char *source, const char *reason, int oversized)
{
	if (oversized)
		return ADMIN_RC_OVERSIZED;
	if (strcmp(source, "parse") == 0 || strcmp(source, "prompt") == 0)
		return ADMIN_RC_INVALID;
	if (strcmp(source, "uncertain") == 0)
		return ADMIN_RC_UNCERTAIN;
	if (strcmp(source, "duplicate") == 0)
		return ADMIN_RC_DUPLICATE;
	if (strcmp(source, "recovery") == 0)
		return ADMIN_RC_RECOVERY;
	if (strcmp(source, "kie") == 0)
		return strncmp(reason, "gave up after", 13) == 0 ? ADMIN_RC_ATTEMPTS_EXHAUSTED
								  : ADMIN_RC_KIE_REJECTED;
	return ADMIN_RC_OTHER;
}

int admin_ref_valid(const char *s)
{
	if (s[0] != '@')
		return job_id_valid(s);
	size_t n = strlen(s + 1);
	if (n < 8 || n > 16)
		return 0;
	for (const char *p = s + 1; *p; p++)
		if (!strchr("0123456789abcdef", *p))
			return 0;
	return 1;
}

void admin_filter_init(struct admin_filter *f)
{
	memset(f, 0, sizeof(*f));
	f->reason_class = -1;
}

int admin_parse_duration(const char *s, int64_t *ms)
{
	/* no unit: seconds */
	return util_parse_duration_ms(s, 1000, ADMIN_DURATION_MAX_MS, ms);
}

/* ---- dead letters ---- */

/* One dead letter as read: the entry's bytes and what is derived from them. */
struct dead_item {
	char *entry;
	size_t len;
	cJSON *summary;   /* the list's object for it */
	char job_id[JOB_ID_MAX + 1];
	char *raw;        /* the descriptor, NULL when the entry does not hold it as text */
	char source[32];
	int may_have_task; /* "mayHaveTask": true — a createTask of unknown outcome */
	enum admin_reason_class cls;
};

/* Reads one entry into it (0), or -1 when it is not a JSON object (kept as "other"). */
static void dead_item_fill(struct dead_item *it, int64_t now_ms, int full)
{
	cJSON *e = cJSON_ParseWithLength(it->entry, it->len), *s = cJSON_CreateObject(), *d = NULL;
	const cJSON *v;
	const char *reason = "", *source = "", *failed = NULL, *type = NULL;
	char sha[41], ref[17];
	int oversized = 0;

	crypto_sha1_hex(it->entry, it->len, sha);
	util_strlcpy(ref, sha, sizeof(ref));
	cJSON_AddStringToObject(s, "ref", ref);
	if (cJSON_IsObject(e)) {
		if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(e, "jobId")) &&
		    job_id_valid(v->valuestring))
			util_strlcpy(it->job_id, v->valuestring, sizeof(it->job_id));
		if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(e, "reason")))
			reason = v->valuestring;
		if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(e, "source")))
			source = v->valuestring;
		if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(e, "failedAt")))
			failed = v->valuestring;
		if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(e, "raw")))
			it->raw = util_strdup(v->valuestring);
		it->may_have_task = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "mayHaveTask"));
		oversized = cJSON_GetObjectItemCaseSensitive(e, "sha256") != NULL &&
			    cJSON_GetObjectItemCaseSensitive(e, "size") != NULL && !it->raw;
		if (it->raw)
			d = cJSON_Parse(it->raw);
		/* a duplicate's entry names no job: its descriptor does */
		if (!it->job_id[0] && cJSON_IsObject(d) &&
		    cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(d, "id")) &&
		    job_id_valid(v->valuestring))
			util_strlcpy(it->job_id, v->valuestring, sizeof(it->job_id));
		if (cJSON_IsObject(d) &&
		    cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(d, "type")))
			type = v->valuestring;
	} else {
		reason = "not a JSON object (written by something else than the worker)";
	}
	util_strlcpy(it->source, source, sizeof(it->source));
	it->cls = classify(source, reason, oversized);
	if (it->job_id[0])
		cJSON_AddStringToObject(s, "jobId", it->job_id);
	else
		cJSON_AddNullToObject(s, "jobId");
	if (type)
		cJSON_AddStringToObject(s, "type", type);
	else
		cJSON_AddNullToObject(s, "type");
	cJSON_AddStringToObject(s, "reasonClass", admin_reason_class_str(it->cls));
	cJSON_AddStringToObject(s, "reason", reason);
	cJSON_AddStringToObject(s, "source", source);
	if (it->may_have_task || strcmp(source, "uncertain") == 0)
		cJSON_AddTrueToObject(s, "mayHaveTask");
	if (cJSON_IsObject(e)) {
		if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(e, "attempts")))
			cJSON_AddNumberToObject(s, "attempts", v->valuedouble);
		if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(e, "workerId")))
			cJSON_AddStringToObject(s, "workerId", v->valuestring);
		if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(e, "size")))
			cJSON_AddNumberToObject(s, "size", v->valuedouble);
	}
	if (failed) {
		int64_t at;
		cJSON_AddStringToObject(s, "failedAt", failed);
		if (util_parse_iso8601(failed, &at) == 0)
			cJSON_AddNumberToObject(s, "ageMs", (double)(now_ms > at ? now_ms - at : 0));
	}
	{
		const char *why = NULL;
		if (it->cls == ADMIN_RC_OVERSIZED)
			why = "only the descriptor's size, SHA-256 and first 4 KiB are kept: the "
			      "producer must send it again";
		else if (it->cls == ADMIN_RC_DUPLICATE)
			why = "a duplicate copy of a job that ran or runs: replaying it would pay twice";
		else if (!it->raw)
			why = "the descriptor is not text (rawBase64): it cannot parse";
		cJSON_AddBoolToObject(s, "retryable", why == NULL);
		if (why)
			cJSON_AddStringToObject(s, "notRetryable", why);
	}
	if (full) {
		if (it->raw)
			cJSON_AddStringToObject(s, "raw", it->raw);
		cJSON_AddItemToObject(s, "entry", e ? e : cJSON_CreateNull());
		e = NULL;
	}
	cJSON_Delete(d);
	cJSON_Delete(e);
	it->summary = s;
}

static void dead_item_free(struct dead_item *it)
{
	free(it->entry);
	free(it->raw);
	cJSON_Delete(it->summary);
}

static int matches(const struct dead_item *it, const struct admin_filter *f, int64_t now_ms)
{
	if (f->ref && *f->ref) {
		if (f->ref[0] == '@') {
			const cJSON *ref = cJSON_GetObjectItemCaseSensitive(it->summary, "ref");
			size_t n = strlen(f->ref + 1);
			if (n == 0 || strncmp(ref->valuestring, f->ref + 1, n) != 0)
				return 0;
		} else if (strcmp(it->job_id, f->ref) != 0) {
			return 0;
		}
	}
	if (f->type) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(it->summary, "type");
		if (!cJSON_IsString(t) || strcmp(t->valuestring, f->type) != 0)
			return 0;
	}
	if (f->reason_class >= 0 && (int)it->cls != f->reason_class)
		return 0;
	if (f->older_than_ms > 0) {
		const cJSON *age = cJSON_GetObjectItemCaseSensitive(it->summary, "ageMs");
		(void)now_ms;
		if (!cJSON_IsNumber(age) || age->valuedouble < (double)f->older_than_ms)
			return 0;
	}
	return 1;
}

#define PAGE 100

static void dead_items_free(struct dead_item *items, size_t n);

/* Scans <p>:dead newest first and keeps the entries that match (up to f->limit after
 * f->offset). *items is a new array (dead_item_free each, then free it); on -1 it is
 * freed already. */
/* 1 when f selects by what an entry holds (not only how many). */
static int filters(const struct admin_filter *f)
{
	return (f->ref && *f->ref) || f->type || f->reason_class >= 0 || f->older_than_ms > 0;
}

/* Reads <p>:dead newest first and keeps the entries that match f (after f->offset of
 * them, at most f->limit). *scanned: the list's length. matched NULL: the scan stops once
 * f->limit entries are kept; else it goes on counting the matches into *matched (at most
 * ADMIN_SCAN_MAX entries read; *lower_bound = 1 when the list is longer) — without a
 * filter every entry matches, and nothing more is read. */
static int dead_select(struct queue *q, const struct admin_filter *f, int full,
		       struct dead_item **items, size_t *n, long *scanned, long *matched,
		       int *lower_bound, char *err, size_t errlen)
{
	char key[300], a[32], b[32];
	int64_t now = redis_now_ms(q);
	size_t cap = 0;
	long skipped = 0, read = 0, hits = 0;
	int full_page = 0, count_all = matched && filters(f);

	*items = NULL;
	*n = 0;
	*scanned = 0;
	queue_key(q, key, sizeof(key), "dead");
	for (long start = 0; start < ADMIN_SCAN_MAX; start += PAGE) {
		if (f->limit > 0 && (long)*n >= f->limit && !count_all)
			break; /* enough kept: the rest is only counted (LLEN below) */
		const char *argv[] = {"LRANGE", key, a, b};
		redisReply *rep;
		snprintf(a, sizeof(a), "%ld", start);
		snprintf(b, sizeof(b), "%ld", start + PAGE - 1);
		rep = cmd(q, err, errlen, 4, argv, NULL);
		if (!rep) { /* what a page before kept goes too: the caller gets nothing */
			dead_items_free(*items, *n);
			*items = NULL;
			*n = 0;
			return -1;
		}
		for (size_t i = 0; i < rep->elements; i++) {
			const redisReply *e = rep->element[i];
			struct dead_item it;
			if (e->type != REDIS_REPLY_STRING)
				continue;
			read++;
			memset(&it, 0, sizeof(it));
			it.entry = util_xmalloc(e->len + 1);
			memcpy(it.entry, e->str, e->len);
			it.entry[e->len] = '\0';
			it.len = e->len;
			dead_item_fill(&it, now, full);
			if (!matches(&it, f, now)) {
				dead_item_free(&it);
				continue;
			}
			hits++;
			if ((f->limit > 0 && (long)*n >= f->limit) ||
			    (f->offset > 0 && skipped++ < f->offset)) {
				dead_item_free(&it);
				continue;
			}
			if (*n == cap) {
				cap = cap ? cap * 2 : 16;
				*items = realloc(*items, cap * sizeof(**items));
				if (!*items)
					abort();
			}
			(*items)[(*n)++] = it;
		}
		size_t got = rep->elements;
		freeReplyObject(rep);
		full_page = got == PAGE;
		if (!full_page)
			break;
	}
	*scanned = read;
	if (full_page) { /* stopped before the end: *scanned is the list's length */
		const char *argv[] = {"LLEN", key};
		redisReply *rep = cmd(q, err, errlen, 2, argv, NULL);
		if (rep && rep->type == REDIS_REPLY_INTEGER)
			*scanned = (long)rep->integer;
		if (rep)
			freeReplyObject(rep);
	}
	if (matched) {
		*matched = count_all ? hits : *scanned;
		*lower_bound = count_all && read < *scanned;
	}
	return 0;
}

static void dead_items_free(struct dead_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dead_item_free(&items[i]);
	free(items);
}

cJSON *admin_dead_list(struct queue *q, const struct admin_filter *f, int full, char *err,
		       size_t errlen)
{
	struct dead_item *items;
	size_t n;
	long scanned, matched;
	int lower_bound;
	cJSON *o, *arr;

	if (dead_select(q, f, full, &items, &n, &scanned, &matched, &lower_bound, err,
			errlen) != 0)
		return NULL;
	o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "total", (double)scanned);
	cJSON_AddNumberToObject(o, "matched", (double)matched);
	cJSON_AddBoolToObject(o, "matchedLowerBound", lower_bound);
	cJSON_AddNumberToObject(o, "shown", (double)n);
	arr = cJSON_AddArrayToObject(o, "entries");
	for (size_t i = 0; i < n; i++) {
		cJSON_AddItemToArray(arr, items[i].summary);
		items[i].summary = NULL;
	}
	dead_items_free(items, n);
	return o;
}

/* Runs the retry (retry = 1) or purge script over the selected entries. */
static cJSON *dead_act(struct queue *q, const struct admin_filter *f, int retry,
		       int allow_uncertain, int dry_run, char *err, size_t errlen)
{
	struct dead_item *items;
	size_t n;
	long scanned, done = 0, refused = 0, gone = 0;
	char dead[300], queue[300], rec[300], stats[300], job[400], now[32];
	cJSON *o, *arr;

	if (dead_select(q, f, 0, &items, &n, &scanned, NULL, NULL, err, errlen) != 0)
		return NULL;
	queue_key(q, dead, sizeof(dead), "dead");
	queue_key(q, queue, sizeof(queue), "queue");
	queue_key(q, rec, sizeof(rec), "recoveries");
	queue_key(q, stats, sizeof(stats), "stats");
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "action", retry ? "retry" : "purge");
	cJSON_AddBoolToObject(o, "dryRun", dry_run);
	cJSON_AddNumberToObject(o, "selected", (double)n);
	arr = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++) {
		struct dead_item *it = &items[i];
		cJSON *r = cJSON_CreateObject();
		const cJSON *ref = cJSON_GetObjectItemCaseSensitive(it->summary, "ref");
		const cJSON *nr = cJSON_GetObjectItemCaseSensitive(it->summary, "notRetryable");
		char outcome[32] = "", why[600] = "";
		redisReply *rep = NULL;

		cJSON_AddStringToObject(r, "ref", ref->valuestring);
		if (it->job_id[0])
			cJSON_AddStringToObject(r, "jobId", it->job_id);
		else
			cJSON_AddNullToObject(r, "jobId");
		if (retry && cJSON_IsString(nr)) {
			util_strlcpy(outcome, "refused", sizeof(outcome));
			util_strlcpy(why, nr->valuestring, sizeof(why));
		} else if (retry) {
			const char *keys[] = {dead, queue, rec, stats, job};
			const char *args[] = {it->entry, it->raw, allow_uncertain ? "1" : "0",
					      dry_run ? "1" : "0", it->source, now,
					      it->may_have_task ? "1" : "0"};
			size_t lens[7];
			snprintf(job, sizeof(job), "%s:job:%s", q->prefix, it->job_id);
			snprintf(now, sizeof(now), "%lld", (long long)util_now_ms());
			for (int k = 0; k < 7; k++)
				lens[k] = k == 0 ? it->len : strlen(args[k]);
			rep = eval(q, err, errlen, &lua_admin_dead_retry, it->job_id[0] ? 5 : 4,
				   keys, 7, args, lens);
		} else {
			const char *keys[] = {dead, stats};
			const char *args[] = {it->entry, dry_run ? "1" : "0"};
			size_t lens[] = {it->len, 1};
			rep = eval(q, err, errlen, &lua_admin_dead_purge, 2, keys, 2, args, lens);
		}
		if (!outcome[0]) {
			if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
				if (rep) {
					freeReplyObject(rep);
					snprintf(err, errlen, "unexpected reply to the %s script",
						 retry ? "retry" : "purge");
				}
				cJSON_Delete(r);
				cJSON_Delete(arr);
				cJSON_Delete(o);
				dead_items_free(items, n);
				return NULL;
			}
			util_strlcpy(outcome, rep->element[0]->str ? rep->element[0]->str : "",
				     sizeof(outcome));
			util_strlcpy(why, rep->element[1]->str ? rep->element[1]->str : "",
				     sizeof(why));
			freeReplyObject(rep);
		}
		cJSON_AddStringToObject(r, "outcome", outcome);
		if (why[0])
			cJSON_AddStringToObject(r, "why", why);
		if (strcmp(outcome, "refused") == 0)
			refused++;
		else if (strcmp(outcome, "gone") == 0)
			gone++;
		else
			done++;
		cJSON_AddItemToArray(arr, r);
	}
	cJSON_AddNumberToObject(o, "done", (double)done);
	cJSON_AddNumberToObject(o, "refused", (double)refused);
	cJSON_AddNumberToObject(o, "gone", (double)gone);
	cJSON_AddItemToObject(o, "results", arr);
	dead_items_free(items, n);
	return o;
}

cJSON *admin_dead_retry(struct queue *q, const struct admin_filter *f, int allow_uncertain,
			int dry_run, char *err, size_t errlen)
{
	return dead_act(q, f, 1, allow_uncertain, dry_run, err, errlen);
}

cJSON *admin_dead_purge(struct queue *q, const struct admin_filter *f, int dry_run, char *err,
			size_t errlen)
{
	return dead_act(q, f, 0, 0, dry_run, err, errlen);
}

/* ---- completions ---- */

cJSON *admin_completions(struct queue *q, long limit, char *err, size_t errlen)
{
	char key[300], b[32];
	const char *argv[] = {"LRANGE", key, "0", b};
	redisReply *rep;
	cJSON *arr;

	if (limit < 1)
		limit = 1;
	if (limit > 200)
		limit = 200;
	queue_key(q, key, sizeof(key), "results");
	snprintf(b, sizeof(b), "%ld", limit - 1);
	rep = cmd(q, err, errlen, 4, argv, NULL);
	if (!rep)
		return NULL;
	arr = entries_json(rep);
	freeReplyObject(rep);
	return arr;
}

/* ---- job show ---- */

static cJSON *find_entries(struct queue *q, const char *suffix, const char *job_id, long max,
			   char *err, size_t errlen)
{
	char key[300], needle[JOB_ID_MAX + 16], cap[32], mx[32];
	const char *keys[] = {key};
	const char *args[] = {needle, cap, mx};
	redisReply *rep;
	cJSON *arr;

	queue_key(q, key, sizeof(key), suffix);
	snprintf(needle, sizeof(needle), "\"jobId\":\"%s\"", job_id);
	snprintf(cap, sizeof(cap), "%d", 10000);
	snprintf(mx, sizeof(mx), "%ld", max);
	rep = eval(q, err, errlen, &lua_admin_find, 1, keys, 3, args, NULL);
	if (!rep)
		return NULL;
	arr = entries_json(rep);
	freeReplyObject(rep);
	return arr;
}

/* A number member of o, or def. */
static double num_or(const cJSON *o, const char *name, double def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsNumber(v) ? v->valuedouble : def;
}

/* Where a job with no hash, or a hash that says it waits, is: admin_find_queued.lua. Adds
 * "queue" {"in": "queue"|"delayed"|null, "dueAt", "length", "scanned", "delayedSize",
 * "delayedScanned"} to o; *in_queue = 1 when the descriptor was found. -1 (err) when Redis
 * failed. */
static int find_queued(struct queue *q, const char *job_id, cJSON *o, int *in_queue, char *err,
		       size_t errlen)
{
	char queue[300], delayed[300], cap[32];
	const char *keys[] = {queue, delayed};
	const char *args[] = {job_id, cap};
	redisReply *rep;
	cJSON *w;

	*in_queue = 0;
	queue_key(q, queue, sizeof(queue), "queue");
	queue_key(q, delayed, sizeof(delayed), "delayed");
	snprintf(cap, sizeof(cap), "%d", ADMIN_QUEUE_SCAN_MAX);
	rep = eval(q, err, errlen, &lua_admin_find_queued, 2, keys, 2, args, NULL);
	if (!rep)
		return -1;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 6) {
		snprintf(err, errlen, "admin_find_queued.lua gave an unexpected reply");
		freeReplyObject(rep);
		return -1;
	}
	w = cJSON_AddObjectToObject(o, "queue");
	if (rep->element[0]->type == REDIS_REPLY_STRING && rep->element[0]->len) {
		long long due;
		*in_queue = 1;
		cJSON_AddStringToObject(w, "in", rep->element[0]->str);
		/* a queued job's position goes here when the scheduling issue gives it one */
		if (rep->element[1]->type == REDIS_REPLY_STRING &&
		    util_parse_ll(rep->element[1]->str, &due) == 0)
			cJSON_AddNumberToObject(w, "dueAt", (double)due);
	} else {
		cJSON_AddNullToObject(w, "in");
	}
	cJSON_AddNumberToObject(w, "length", (double)int_reply(rep->element[2]));
	cJSON_AddNumberToObject(w, "scanned", (double)int_reply(rep->element[3]));
	cJSON_AddNumberToObject(w, "delayedSize", (double)int_reply(rep->element[4]));
	cJSON_AddNumberToObject(w, "delayedScanned", (double)int_reply(rep->element[5]));
	freeReplyObject(rep);
	return 0;
}

const char *admin_job_status_str(enum admin_job_status s)
{
	static const char *const names[] = {"unknown", "queued", "in_flight", "uncertain", "dead",
					    "finished"};
	return (size_t)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

/* The status of a job from its hash (job, possibly NULL), Redis's clock now and what the
 * lists hold (see admin.h). */
static enum admin_job_status job_status(const cJSON *job, int64_t now, int in_queue,
					int has_events, int has_dead)
{
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(job, "state");
	const char *s = cJSON_IsString(st) ? st->valuestring : NULL;

	if (s && (strcmp(s, "completed") == 0 || strcmp(s, "failed") == 0))
		return ADMIN_JOB_FINISHED;
	if (s && strcmp(s, "dead") == 0)
		return ADMIN_JOB_DEAD;
	if (s && strcmp(s, "uncertain") == 0)
		return ADMIN_JOB_UNCERTAIN;
	if (s && (strcmp(s, "creating") == 0 || strcmp(s, "polling") == 0))
		return ADMIN_JOB_IN_FLIGHT;
	/* claimed: a runner holds it (a live lease), before its createTask */
	if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(job, "owner")) &&
	    num_or(job, "lease", 0) > (double)now)
		return ADMIN_JOB_IN_FLIGHT;
	if (s || in_queue) /* queued, retry_wait; or a descriptor not claimed yet */
		return ADMIN_JOB_QUEUED;
	/* the hash expired (KIE_RECORD_TTL_S): what the lists still say */
	if (has_dead)
		return ADMIN_JOB_DEAD;
	if (has_events)
		return ADMIN_JOB_FINISHED;
	return ADMIN_JOB_UNKNOWN;
}

cJSON *admin_job_show(struct queue *q, const char *job_id, int *found, char *err, size_t errlen)
{
	static const char *const job_num[] = {"attempts", "epoch", "lease", "callback", "createdAt",
					      "updatedAt", "retryAt", "retriedAt",
					      "uncertainUntil", "mayHaveTask", NULL};
	static const char *const job_json[] = {"jobMeta", "pending", NULL};
	static const char *const job_size[] = {"raw", NULL};
	static const char *const task_num[] = {"createdAt", "polls", "attempts", "finalizedAt",
					       NULL};
	static const char *const task_json[] = {"record", "jobMeta", NULL};
	char key[400];
	redisReply *rep;
	cJSON *o, *job = NULL, *events, *dead;
	const cJSON *task_id, *st;
	enum admin_job_status status;
	int64_t now;
	int in_queue = 0;

	*found = 0;
	if (!job_id_valid(job_id)) {
		snprintf(err, errlen, "\"%s\" is not a valid job id ([A-Za-z0-9._:-], 1 to 128 "
			 "bytes)", job_id);
		return NULL;
	}
	now = redis_now_ms(q);
	snprintf(key, sizeof(key), "%s:job:%s", q->prefix, job_id);
	rep = cmd2(q, err, errlen, "HGETALL", key);
	if (!rep)
		return NULL;
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "jobId", job_id);
	if (rep->elements)
		job = hash_object(rep, job_num, job_json, job_size);
	freeReplyObject(rep);
	st = cJSON_GetObjectItemCaseSensitive(job, "state");
	cJSON_AddStringToObject(o, "state", cJSON_IsString(st) ? st->valuestring : "unknown");
	/* status and its details come first; filled below, once the lists are read */
	cJSON_AddStringToObject(o, "status", "unknown");
	cJSON_AddItemToObject(o, "job", job ? job : cJSON_CreateNull());
	task_id = cJSON_GetObjectItemCaseSensitive(job, "taskId");
	if (cJSON_IsString(task_id) && task_id->valuestring[0]) {
		snprintf(key, sizeof(key), "%s:task:%s", q->prefix, task_id->valuestring);
		rep = cmd2(q, err, errlen, "HGETALL", key);
		if (!rep) {
			cJSON_Delete(o);
			return NULL;
		}
		cJSON_AddItemToObject(o, "task", rep->elements ? hash_object(rep, task_num, task_json,
									  NULL)
							       : cJSON_CreateNull());
		freeReplyObject(rep);
	} else {
		cJSON_AddNullToObject(o, "task");
	}
	events = find_entries(q, "results", job_id, 20, err, errlen);
	dead = events ? find_entries(q, "dead", job_id, 20, err, errlen) : NULL;
	if (!events || !dead) {
		cJSON_Delete(events);
		cJSON_Delete(dead);
		cJSON_Delete(o);
		return NULL;
	}
	/* a hash that says the job waits, or none at all: look where descriptors wait */
	if (!job || (cJSON_IsString(st) && (strcmp(st->valuestring, "queued") == 0 ||
					    strcmp(st->valuestring, "retry_wait") == 0))) {
		if (find_queued(q, job_id, o, &in_queue, err, errlen) != 0) {
			cJSON_Delete(events);
			cJSON_Delete(dead);
			cJSON_Delete(o);
			return NULL;
		}
	}
	status = job_status(job, now, in_queue, cJSON_GetArraySize(events) > 0,
			    cJSON_GetArraySize(dead) > 0);
	cJSON_ReplaceItemInObjectCaseSensitive(o, "status",
					       cJSON_CreateString(admin_job_status_str(status)));
	if (status == ADMIN_JOB_UNCERTAIN) {
		double until = num_or(job, "uncertainUntil", 0);
		cJSON_AddNumberToObject(o, "uncertainLeftMs",
					until > (double)now ? until - (double)now : 0);
	}
	cJSON_AddNumberToObject(o, "now", (double)now);
	*found = status != ADMIN_JOB_UNKNOWN || job;
	cJSON_AddItemToObject(o, "events", events);
	cJSON_AddItemToObject(o, "dead", dead);
	return o;
}

/* ---- stats ---- */

static cJSON *workers_section(struct queue *q, long *in_flight, long long *processing,
			      char *err, size_t errlen)
{
	char key[300];
	redisReply *members;
	cJSON *arr = cJSON_CreateArray();

	*in_flight = 0;
	*processing = 0;
	queue_key(q, key, sizeof(key), "workers");
	members = cmd2(q, err, errlen, "SMEMBERS", key);
	if (!members) {
		cJSON_Delete(arr);
		return NULL;
	}
	for (size_t i = 0; i < members->elements && i < 1000; i++) {
		const char *cid = members->element[i]->str;
		cJSON *w = cJSON_CreateObject();
		redisReply *hb, *len;
		struct rconn_bulk b;
		char proc[400];

		if (!cid)
			continue;
		cJSON_AddStringToObject(w, "consumer", cid);
		snprintf(key, sizeof(key), "%s:worker:%s", q->prefix, cid);
		hb = cmd2(q, err, errlen, "GET", key);
		if (!hb) {
			cJSON_Delete(w);
			goto fail;
		}
		cJSON_AddBoolToObject(w, "alive", hb->type == REDIS_REPLY_STRING);
		if (hb->type == REDIS_REPLY_STRING)
			cJSON_AddItemToObject(w, "heartbeat", json_or_string(hb->str, hb->len));
		freeReplyObject(hb);
		snprintf(proc, sizeof(proc), "%s:processing:%s", q->prefix, cid);
		len = cmd2(q, err, errlen, "LLEN", proc);
		if (!len) {
			cJSON_Delete(w);
			goto fail;
		}
		*processing += int_reply(len);
		cJSON_AddNumberToObject(w, "processing", (double)int_reply(len));
		if (int_reply(len) > 0) {
			/* the descriptor it holds, read with a cap: only its id is wanted */
			const char *argv[] = {"LINDEX", proc, "-1"};
			memset(&b, 0, sizeof(b));
			if (rconn_bulk_bounded(q->r, 3, argv, NULL, 65536, &b) == 0 &&
			    b.type == REDIS_REPLY_STRING && b.kept) {
				cJSON *d = cJSON_ParseWithLength(b.data, b.len);
				const cJSON *id = cJSON_GetObjectItemCaseSensitive(d, "id");
				const cJSON *ty = cJSON_GetObjectItemCaseSensitive(d, "type");
				if (cJSON_IsString(id) && job_id_valid(id->valuestring)) {
					char jk[400];
					redisReply *st;
					cJSON_AddStringToObject(w, "jobId", id->valuestring);
					snprintf(jk, sizeof(jk), "%s:job:%s", q->prefix, id->valuestring);
					/* the state only (the hash may hold a raw descriptor) */
					const char *hget[] = {"HGET", jk, "state"};
					st = cmd(q, err, errlen, 3, hget, NULL);
					if (st) {
						if (st->type == REDIS_REPLY_STRING)
							cJSON_AddStringToObject(w, "state", st->str);
						freeReplyObject(st);
					}
				}
				if (cJSON_IsString(ty))
					cJSON_AddStringToObject(w, "type", ty->valuestring);
				cJSON_Delete(d);
			}
			rconn_bulk_free(&b);
			(*in_flight)++;
		}
		freeReplyObject(len);
		cJSON_AddItemToArray(arr, w);
	}
	freeReplyObject(members);
	return arr;
fail:
	freeReplyObject(members);
	cJSON_Delete(arr);
	return NULL;
}

static cJSON *pause_section(struct queue *q, char *err, size_t errlen)
{
	/* pause_get.lua, as the runners read it: the value and its PTTL in one step (a
	 * pause that expires in between reads as none, not as "until lifted") */
	char key[300];
	const char *keys[] = {key};
	const redisReply *v;
	redisReply *rep;
	cJSON *o;

	queue_key(q, key, sizeof(key), "pause");
	rep = eval(q, err, errlen, &lua_pause_get, 1, keys, 0, NULL, NULL);
	if (!rep)
		return NULL;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
	    rep->element[1]->type != REDIS_REPLY_INTEGER) {
		snprintf(err, errlen, "Redis answered the pause read with something else");
		freeReplyObject(rep);
		return NULL;
	}
	v = rep->element[0];
	o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "paused", v->type == REDIS_REPLY_STRING &&
						   rep->element[1]->integer != -2);
	if (v->type == REDIS_REPLY_STRING && rep->element[1]->integer != -2) {
		cJSON *p = cJSON_ParseWithLength(v->str, v->len);
		static const char *const fields[] = {"kind", "reason", "since", "by"};
		long long pttl = rep->element[1]->integer;
		for (size_t i = 0; i < 4; i++) {
			const cJSON *f = cJSON_GetObjectItemCaseSensitive(p, fields[i]);
			if (cJSON_IsString(f))
				cJSON_AddStringToObject(o, fields[i], f->valuestring);
		}
		if (!cJSON_GetObjectItemCaseSensitive(o, "kind"))
			cJSON_AddStringToObject(o, "kind", "account");
		cJSON_AddNumberToObject(o, "remainingMs", (double)(pttl > 0 ? pttl : -1));
		cJSON_Delete(p);
	}
	freeReplyObject(rep);
	return o;
}

static cJSON *limiter_section(struct queue *q, const char *account_prefix,
			      const char *account_id, int64_t now, char *err, size_t errlen)
{
	static const char *const names[] = {"create", "query"};
	static const char *const num[] = {"blockedUntil", "backoffMs", "penalties", "lastAt", NULL};
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "account", account_id);
	for (size_t i = 0; i < 2; i++) {
		char log[300], state[320];
		redisReply *n, *last, *st;
		cJSON *l;
		snprintf(log, sizeof(log), "%s:{%s}:%s", account_prefix, account_id, names[i]);
		snprintf(state, sizeof(state), "%s:state", log);
		n = cmd2(q, err, errlen, "ZCARD", log);
		{
			const char *argv[] = {"ZRANGE", log, "-1", "-1", "WITHSCORES"};
			last = n ? cmd(q, err, errlen, 5, argv, NULL) : NULL;
		}
		st = last ? cmd2(q, err, errlen, "HGETALL", state) : NULL;
		if (!st) {
			if (n)
				freeReplyObject(n);
			if (last)
				freeReplyObject(last);
			cJSON_Delete(o);
			return NULL;
		}
		l = hash_object(st, num, NULL, NULL);
		cJSON_AddNumberToObject(l, "logEntries", (double)int_reply(n));
		if (last->elements == 2) {
			double at = strtod(last->element[1]->str, NULL);
			cJSON_AddNumberToObject(l, "lastReservedMs", at);
		}
		{
			const cJSON *bu = cJSON_GetObjectItemCaseSensitive(l, "blockedUntil");
			double left = cJSON_IsNumber(bu) ? bu->valuedouble - (double)now : 0;
			cJSON_AddNumberToObject(l, "blockedForMs", left > 0 ? left : 0);
		}
		cJSON_AddItemToObject(o, names[i], l);
		freeReplyObject(n);
		freeReplyObject(last);
		freeReplyObject(st);
	}
	return o;
}

int admin_stats_add_limiters(struct queue *q, const char *account_prefix,
			     const char *const *aliases, const char *const *ids, int n, cJSON *s,
			     char *err, size_t errlen)
{
	cJSON *arr = cJSON_AddArrayToObject(s, "limiters");
	int64_t now = util_now_ms();

	for (int i = 0; i < n; i++) {
		cJSON *sect = limiter_section(q, account_prefix, ids[i], now, err, errlen);
		if (!sect)
			return -1;
		cJSON_AddStringToObject(sect, "alias", aliases[i]);
		cJSON_AddItemToArray(arr, sect);
	}
	return 0;
}

/* i19: jobs routed into the scheduling structures (pool/sched.h) wait too: each
 * account's (i20-counts: sched_accounts.h) adds its items less its delayed ones to
 * "queue", its delayed ones to "delayed", and has its line in o's "accounts" (those
 * <p>:accounts names, and "default" when it holds jobs). 0 or -1 (err). */
static int sched_depths(struct queue *q, cJSON *o, cJSON *d, char *err, size_t errlen)
{
	struct sched_accounts *s = util_xcalloc(1, sizeof(*s));
	cJSON *qd = cJSON_GetObjectItemCaseSensitive(d, "queue");
	cJSON *dd = cJSON_GetObjectItemCaseSensitive(d, "delayed");
	cJSON *acc = cJSON_AddObjectToObject(o, "accounts");
	int rc = -1;

	if (sched_accounts_list(q, s) != 0) {
		snprintf(err, errlen, "%s", q->err);
		goto out;
	}
	for (int i = 0; i < s->n; i++) {
		char k[3][160];
		long long items, later, over;
		snprintf(k[0], sizeof(k[0]), "sched:%s:items", s->v[i].name);
		snprintf(k[1], sizeof(k[1]), "sched:%s:delayed", s->v[i].name);
		snprintf(k[2], sizeof(k[2]), "sched:%s:overBudget", s->v[i].name);
		items = count(q, "HLEN", k[0], err, errlen);
		later = items < 0 ? -1 : count(q, "ZCARD", k[1], err, errlen);
		over = later < 0 ? -1 : count(q, "ZCARD", k[2], err, errlen);
		if (over < 0)
			goto out;
		cJSON_SetNumberValue(qd, qd->valuedouble + (double)(items - later));
		cJSON_SetNumberValue(dd, dd->valuedouble + (double)later);
		if (s->v[i].registered || items > 0) {
			cJSON *a = cJSON_AddObjectToObject(acc, s->v[i].name);
			cJSON_AddNumberToObject(a, "queued", (double)(items - later));
			cJSON_AddNumberToObject(a, "delayed", (double)later);
			cJSON_AddNumberToObject(a, "overBudget", (double)over);
		}
	}
	rc = 0;
out:
	free(s);
	return rc;
}

cJSON *admin_stats(struct queue *q, const char *account_prefix, const char *account_id,
		   char *err, size_t errlen)
{
	static const struct { const char *name, *cmd, *suffix; } depths[] = {
		{"queue", "LLEN", "queue"}, {"delayed", "ZCARD", "delayed"},
		{"polling", "LLEN", "polling"}, {"pollDue", "ZCARD", "poll:due"},
		{"uncertain", "ZCARD", "uncertain"}, {"dead", "LLEN", "dead"},
		{"callbacks", "LLEN", "callbacks"}, {"results", "LLEN", "results"},
	};
	cJSON *o = cJSON_CreateObject(), *d, *w, *sect;
	int64_t now = redis_now_ms(q);
	long in_flight;
	long long processing;
	char ts[UTIL_ISO8601_SIZE];

	cJSON_AddStringToObject(o, "prefix", q->prefix);
	util_iso8601(now, ts);
	cJSON_AddStringToObject(o, "time", ts);
	d = cJSON_AddObjectToObject(o, "depths");
	for (size_t i = 0; i < sizeof(depths) / sizeof(depths[0]); i++) {
		long long n = count(q, depths[i].cmd, depths[i].suffix, err, errlen);
		if (n < 0)
			goto fail;
		cJSON_AddNumberToObject(d, depths[i].name, (double)n);
	}
	if (sched_depths(q, o, d, err, errlen) != 0)
		goto fail;
	w = workers_section(q, &in_flight, &processing, err, errlen);
	if (!w)
		goto fail;
	cJSON_AddNumberToObject(d, "processing", (double)processing);
	cJSON_AddItemToObject(o, "workers", w);
	{
		cJSON *f = cJSON_AddObjectToObject(o, "inFlight");
		const cJSON *pd = cJSON_GetObjectItemCaseSensitive(d, "pollDue");
		const cJSON *pl = cJSON_GetObjectItemCaseSensitive(d, "polling");
		cJSON_AddNumberToObject(f, "jobs", (double)in_flight);
		cJSON_AddNumberToObject(f, "tasks", pd->valuedouble + pl->valuedouble);
	}
	{ /* rates over the last 5 minutes, from the newest 2000 events and dead letters */
		char results[300], dead[300], cut[UTIL_ISO8601_SIZE];
		const char *keys[] = {results, dead};
		const char *args[] = {cut, "2000"};
		redisReply *rep;
		cJSON *r;
		queue_key(q, results, sizeof(results), "results");
		queue_key(q, dead, sizeof(dead), "dead");
		util_iso8601(util_now_ms() - 300000, cut);
		rep = eval(q, err, errlen, &lua_admin_rates, 2, keys, 2, args, NULL);
		if (!rep)
			goto fail;
		if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 8) {
			freeReplyObject(rep);
			snprintf(err, errlen, "unexpected reply to the rates script");
			goto fail;
		}
		r = cJSON_AddObjectToObject(o, "rates");
		cJSON_AddNumberToObject(r, "windowS", 300);
		cJSON_AddNumberToObject(r, "completedPerMin", (double)int_reply(rep->element[0]) / 5);
		cJSON_AddNumberToObject(r, "failedPerMin", (double)int_reply(rep->element[1]) / 5);
		cJSON_AddNumberToObject(r, "deadPerMin", (double)int_reply(rep->element[4]) / 5);
		cJSON_AddBoolToObject(r, "lowerBound", int_reply(rep->element[6]) ||
						       int_reply(rep->element[7]));
		freeReplyObject(rep);
	}
	{
		char key[300];
		redisReply *rep;
		queue_key(q, key, sizeof(key), "stats");
		rep = cmd2(q, err, errlen, "HGETALL", key);
		if (!rep)
			goto fail;
		cJSON *c = cJSON_AddObjectToObject(o, "counters");
		for (size_t i = 0; i + 1 < rep->elements; i += 2)
			cJSON_AddNumberToObject(c, rep->element[i]->str,
						(double)int_reply(rep->element[i + 1]));
		freeReplyObject(rep);
	}
	sect = pause_section(q, err, errlen);
	if (!sect)
		goto fail;
	cJSON_AddItemToObject(o, "pause", sect);
	if (account_id && *account_id) {
		sect = limiter_section(q, account_prefix, account_id, now, err, errlen);
		if (!sect)
			goto fail;
		cJSON_AddItemToObject(o, "limiter", sect);
	} else {
		cJSON_AddNullToObject(o, "limiter");
	}
	return o;
fail:
	cJSON_Delete(o);
	return NULL;
}

/* ---- the page's JSON API ---- */

const char *admin_filter_of(const char *type, const char *reason, const char *older,
			    struct admin_filter *f)
{
	if (type && *type)
		f->type = type;
	if (reason && *reason) {
		enum admin_reason_class rc;
		if (admin_reason_class_parse(reason, &rc) != 0)
			return "reason must be one of invalid, oversized, kie_rejected, "
			       "attempts_exhausted, uncertain, duplicate, recovery, other";
		f->reason_class = (int)rc;
	}
	if (older && *older && admin_parse_duration(older, &f->older_than_ms) != 0)
		return "olderThan must be a duration: a whole number and a unit, such as 90s, "
		       "15m, 2h, 7d or 500ms (at most 100 years)";
	return NULL;
}

int admin_count_arg(const char *name, const char *s, long def, long min, long max, long *out,
		    char *why, size_t whylen)
{
	long long v;

	if (!s) {
		*out = def;
		return 0;
	}
	if (util_parse_int(s, min, max, &v) != 0) {
		snprintf(why, whylen, "%s must be a whole number from %ld to %ld", name, min, max);
		return -1;
	}
	*out = (long)v;
	return 0;
}

/* A member that must be a string when present: 0 with *out (NULL when absent or null),
 * -1 when it has another type or is empty. */
static int body_str(const cJSON *in, const char *name, const char **out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, name);
	*out = NULL;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsString(v) || !*v->valuestring)
		return -1;
	*out = v->valuestring;
	return 0;
}

/* A member that must be true or false when present (absent, null: false). */
static int body_bool(const cJSON *in, const char *name, int *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, name);
	*out = 0;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsBool(v))
		return -1;
	*out = cJSON_IsTrue(v);
	return 0;
}

/* A member that must be a whole number within min..max when present (absent, null:
 * *out = 0). */
static int body_count(const cJSON *in, const char *name, long long min, long long max,
		      long *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, name);
	long long n;
	*out = 0;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsNumber(v) || util_whole_number(v->valuedouble, min, max, &n) != 0)
		return -1;
	*out = (long)n;
	return 0;
}

/* NULL when every member of in is one of names (a NULL-terminated list); else a
 * sentence naming the first other one, in buf. */
static const char *body_unknown(const cJSON *in, const char *const *names, char *buf,
				size_t buflen)
{
	const cJSON *m;
	cJSON_ArrayForEach(m, in) {
		const char *const *n = names;
		char shown[72];
		while (*n && strcmp(*n, m->string) != 0)
			n++;
		if (!*n) {
			/* a typo ("olderthan") read as absent would select more than asked */
			snprintf(buf, buflen, "unknown field \"%s\"",
				 util_text_shown(m->string, 64, shown, sizeof(shown)));
			return buf;
		}
	}
	return NULL;
}

const char *admin_body_parse(const char *what, const cJSON *in, struct admin_body *b,
			     int *unknown)
{
	static const char *const dead_names[] = {"ref", "all", "type", "reason", "olderThan",
						 "limit", "dryRun", "allowUncertain", "expect",
						 NULL};
	static const char *const pause_names[] = {"reason", "for", "forMs", NULL};
	static const char *const no_names[] = {NULL};
	const char *type, *reason, *older, *why, *dur;
	int dead_retry = strcmp(what, "dead/retry") == 0;

	memset(b, 0, sizeof(*b));
	admin_filter_init(&b->f);
	*unknown = 0;
	if (!cJSON_IsObject(in))
		return "the body must be a JSON object";
	if (dead_retry || strcmp(what, "dead/purge") == 0) {
		if ((why = body_unknown(in, dead_names, b->why, sizeof(b->why))) != NULL)
			return why;
		if (body_str(in, "ref", &b->f.ref) != 0)
			return "ref must be a string: a job id or @ and 8 to 16 hex digits";
		if (b->f.ref && !admin_ref_valid(b->f.ref))
			return "ref must be a job id or @ and 8 to 16 hex digits of an entry's ref";
		if (body_str(in, "type", &type) != 0)
			return "type must be a non-empty string (a job type)";
		if (body_str(in, "reason", &reason) != 0)
			return "reason must be a non-empty string (a reason class)";
		if (body_str(in, "olderThan", &older) != 0)
			return "olderThan must be a non-empty string such as \"7d\"";
		if ((why = admin_filter_of(type, reason, older, &b->f)) != NULL)
			return why;
		if (body_bool(in, "all", &b->all) != 0)
			return "all must be true or false";
		if (body_bool(in, "dryRun", &b->dry_run) != 0)
			return "dryRun must be true or false";
		if (body_bool(in, "allowUncertain", &b->allow_uncertain) != 0)
			return "allowUncertain must be true or false";
		if (b->allow_uncertain && !dead_retry)
			return "allowUncertain is for dead/retry only";
		if (body_count(in, "limit", 1, ADMIN_SCAN_MAX, &b->f.limit) != 0)
			return "limit must be a whole number from 1 to 100000 (leave it out for no "
			       "limit)";
		if (body_count(in, "expect", 1, ADMIN_SCAN_MAX, &b->expect) != 0)
			return "expect must be a whole number from 1 to 100000: the count of the "
			       "dry run the operator confirmed";
		/* older means "given": "0s" is a filter that selects every entry, on purpose */
		if (!b->f.ref && !b->all && !b->f.type && b->f.reason_class < 0 && !older)
			return "say which entries: ref, all, or a filter (type, reason, olderThan)";
		if (b->f.ref && (b->all || b->f.type || b->f.reason_class >= 0 || older))
			return "give ref, or all/filters, not both";
		if (b->f.ref && b->expect)
			return "expect goes with all or a filter, not with ref";
		if (b->f.ref)
			b->f.limit = 1;
		return NULL;
	}
	if (strcmp(what, "pause") == 0) {
		const cJSON *r = cJSON_GetObjectItemCaseSensitive(in, "reason");
		if ((why = body_unknown(in, pause_names, b->why, sizeof(b->why))) != NULL)
			return why;
		if (r && !cJSON_IsNull(r) && !cJSON_IsString(r))
			return "reason must be a string";
		b->reason = cJSON_IsString(r) && *r->valuestring ? r->valuestring : NULL;
		if (body_count(in, "forMs", 1, ADMIN_PAUSE_MAX_MS, &b->for_ms) != 0)
			return "forMs must be a whole number of milliseconds from 1 to 31622400000 "
			       "(a year; leave it out to pause until resumed)";
		if (body_str(in, "for", &dur) != 0)
			return "for must be a non-empty string: a duration such as \"15m\"";
		if (dur) {
			int64_t ms;
			if (b->for_ms)
				return "give for or forMs, not both";
			if (util_parse_duration_ms(dur, 1000, ADMIN_PAUSE_MAX_MS, &ms) != 0 ||
			    ms < 1)
				return "for must be a duration from 1 ms to a year: a whole number and "
				       "an optional unit, such as \"500ms\", \"90s\", \"15m\", \"2h\" "
				       "or \"1d\" (a plain number is seconds)";
			b->for_ms = (long)ms;
		}
		return NULL;
	}
	if (strcmp(what, "resume") == 0)
		return body_unknown(in, no_names, b->why, sizeof(b->why));
	*unknown = 1;
	return "no such action (dead/retry, dead/purge, pause, resume)";
}
