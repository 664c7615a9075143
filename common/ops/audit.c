/* audit.c — the pool's audit list of audit.h. */
#include "ops/audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/util.h"
#include "lua_scripts.h"

static void clean(const char *in, char *out, size_t outlen)
{
	util_strlcpy(out, in ? in : "", outlen);
	util_utf8_fix_end(out);
	util_utf8_sanitize(out);
}

int audit_add(struct queue *q, const char *who, const char *from, const char *action,
	      const cJSON *detail, char *err, size_t errlen)
{
	char key[300], at[UTIL_ISO8601_SIZE], cap[32], buf[201];
	const char *keys[] = {key};
	const char *args[2];
	cJSON *e = cJSON_CreateObject();
	const cJSON *m;
	redisReply *rep;
	char *s;
	int rc = -1;

	util_iso8601(util_now_ms(), at);
	cJSON_AddStringToObject(e, "at", at);
	clean(who, buf, sizeof(buf));
	cJSON_AddStringToObject(e, "who", buf);
	clean(from, buf, sizeof(buf));
	cJSON_AddStringToObject(e, "from", buf);
	clean(action, buf, sizeof(buf));
	cJSON_AddStringToObject(e, "action", buf);
	if (cJSON_IsObject(detail))
		cJSON_ArrayForEach(m, detail)
			if (!cJSON_GetObjectItemCaseSensitive(e, m->string))
				cJSON_AddItemToObject(e, m->string, cJSON_Duplicate(m, 1));
	s = cJSON_PrintUnformatted(e);
	cJSON_Delete(e);
	if (!s) {
		snprintf(err, errlen, "out of memory building the audit entry");
		return -1;
	}
	queue_key(q, key, sizeof(key), "audit");
	snprintf(cap, sizeof(cap), "%d", AUDIT_MAX);
	args[0] = s;
	args[1] = cap;
	rep = script_run(q->r, &lua_admin_audit_add, 1, 1, keys, 2, args, NULL);
	if (!rep)
		snprintf(err, errlen, "Redis unreachable");
	else if (rep->type == REDIS_REPLY_ERROR)
		snprintf(err, errlen, "Redis refused the audit entry: %s", rep->str);
	else
		rc = 0;
	if (rep)
		freeReplyObject(rep);
	free(s);
	return rc;
}

cJSON *audit_list(struct queue *q, long offset, long limit, char *err, size_t errlen)
{
	char key[300], a[32], b[32];
	const char *lrange[] = {"LRANGE", key, a, b};
	const char *llen[] = {"LLEN", key};
	redisReply *n, *rep;
	cJSON *o, *arr;

	queue_key(q, key, sizeof(key), "audit");
	snprintf(a, sizeof(a), "%ld", offset);
	snprintf(b, sizeof(b), "%ld", offset + limit - 1);
	n = rconn_argv_retry(q->r, 2, llen, NULL);
	rep = n && n->type == REDIS_REPLY_INTEGER ? rconn_argv_retry(q->r, 4, lrange, NULL)
						   : NULL;
	if (!rep || rep->type != REDIS_REPLY_ARRAY) {
		const redisReply *bad = rep ? rep : n;
		if (bad && bad->type == REDIS_REPLY_ERROR)
			snprintf(err, errlen, "Redis refused the audit read: %s", bad->str);
		else
			snprintf(err, errlen, "Redis unreachable");
		if (n)
			freeReplyObject(n);
		if (rep)
			freeReplyObject(rep);
		return NULL;
	}
	o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "total", (double)n->integer);
	cJSON_AddNumberToObject(o, "offset", (double)offset);
	arr = cJSON_AddArrayToObject(o, "entries");
	for (size_t i = 0; i < rep->elements; i++) {
		const redisReply *e = rep->element[i];
		cJSON *v;
		if (e->type != REDIS_REPLY_STRING)
			continue;
		v = cJSON_ParseWithLength(e->str, e->len);
		if (!v) {
			char *copy = util_xmalloc(e->len + 1);
			memcpy(copy, e->str, e->len);
			copy[e->len] = '\0';
			util_utf8_sanitize(copy);
			v = cJSON_CreateString(copy);
			free(copy);
		}
		cJSON_AddItemToArray(arr, v);
	}
	freeReplyObject(n);
	freeReplyObject(rep);
	return o;
}

void audit_who(const char *name, const char *token, char *out, size_t outlen)
{
	char sha[65], nm[AUDIT_WHO_MAX_BYTES + 1];
	size_t k = 0;

	crypto_sha256_hex(token ? token : "", token ? strlen(token) : 0, sha);
	for (const char *p = name ? name : ""; *p && k < AUDIT_WHO_MAX_BYTES; p++)
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr(" .-_@", *p))
			nm[k++] = *p;
	nm[k] = '\0';
	while (k && nm[k - 1] == ' ')
		nm[--k] = '\0';
	if (k)
		snprintf(out, outlen, "%s (token %.8s)", nm, sha);
	else
		snprintf(out, outlen, "token %.8s", sha);
}
