/* web.c — the operator's page and JSON API of web.h, on libmicrohttpd. */
#include "web.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cjson/cJSON.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/util.h"
#include "kie/accounts.h"
#include "kie/job.h"
#include "net/client_addr.h"
#include "ops/admin.h"
#include "ops/audit.h"
#include "ops/views.h"
#include "ops/sched_view.h"
#include "ops/spend_view.h"
#include "pool/budget.h"
#include "pool/history.h"
#include "pool/limiter.h"
#include "pool/queue.h"
#include "pool/sched.h"
#include "store/metadata.h"
#include "web_assets.h"

/* Every answer carries these: no inline script, nothing framed, nothing cached, nothing
 * sniffed; images (the thumbnails) from the result hosts, over http or https. */
static const char csp[] =
	"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
	"img-src 'self' http: https: data:; base-uri 'none'; form-action 'none'; "
	"frame-ancestors 'none'";

struct web {
	const struct config *cfg;
	pthread_mutex_t lock; /* one Redis connection for the page, MHD's threads take turns */
	struct rconn rc;
	struct queue q;
	pthread_mutex_t store_lock; /* the job page's metadata record reads, one at a time */
	struct metadata_store *store; /* opened at the first read */
	char account_id[17];
	/* several accounts: each one's alias and limiter id (the stats' "limiters") */
	int nacct;
	char acct_alias[ACCOUNTS_MAX][ACCOUNT_ALIAS_MAX + 1];
	char acct_id[ACCOUNTS_MAX][17];
	size_t nhosts;        /* the Host headers answered, compared whole, any case */
	char hosts[WEB_HOSTS_MAX][WEB_HOST_MAX_BYTES + 1];
};

/* Splits KIE_ADMIN_HOSTS into w's hosts (w NULL: only checks). 0, or -1 with err. */
static int hosts_parse(const char *text, struct web *w, char *err, size_t errlen)
{
	const char *p = text;
	size_t n = 0;

	while (*p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		while (len && (*p == ' ' || *p == '\t')) {
			p++;
			len--;
		}
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == 0 || len > WEB_HOST_MAX_BYTES) {
			snprintf(err, errlen, "KIE_ADMIN_HOSTS: an entry is empty or longer than %d "
				 "bytes", WEB_HOST_MAX_BYTES);
			return -1;
		}
		for (size_t i = 0; i < len; i++)
			if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]",
				    p[i])) {
				snprintf(err, errlen, "KIE_ADMIN_HOSTS: \"%.*s\" is not a host or "
					 "host:port (letters, digits, '.', '-', '_', ':', '[', ']')",
					 (int)(len < 64 ? len : 64), p);
				util_utf8_sanitize(err);
				return -1;
			}
		if (n == WEB_HOSTS_MAX) {
			snprintf(err, errlen, "KIE_ADMIN_HOSTS: more than %d entries", WEB_HOSTS_MAX);
			return -1;
		}
		if (w) {
			memcpy(w->hosts[n], p, len);
			w->hosts[n][len] = '\0';
		}
		n++;
		if (!comma)
			break;
		p = comma + 1;
	}
	if (w)
		w->nhosts = n;
	return 0;
}

/* Adds host (in brackets when v6) with ":port" when port > 0. */
static void host_add(struct web *w, const char *host, int v6, int port)
{
	char *out;

	if (w->nhosts == WEB_HOSTS_MAX)
		return;
	out = w->hosts[w->nhosts++];
	if (port > 0)
		snprintf(out, WEB_HOST_MAX_BYTES + 1, "%s%s%s:%d", v6 ? "[" : "", host,
			 v6 ? "]" : "", port);
	else
		snprintf(out, WEB_HOST_MAX_BYTES + 1, "%s%s%s", v6 ? "[" : "", host, v6 ? "]" : "");
}

/* The default hosts of the listener at addr (web.h). */
static void hosts_default(struct web *w, const char *addr)
{
	struct util_listen_addr a;
	char why[200];

	w->nhosts = 0;
	if (util_parse_listen_addr(addr, &a, why, sizeof(why)) != 0)
		return; /* config.c checked it: not reached */
	if (strcmp(a.host, "0.0.0.0") != 0 && strcmp(a.host, "::") != 0) {
		host_add(w, a.host, a.ipv6, 0);
		host_add(w, a.host, a.ipv6, a.port);
	}
	host_add(w, "localhost", 0, a.port);
	host_add(w, "127.0.0.1", 0, a.port);
	host_add(w, "::1", 1, a.port);
	if (a.port == 80) { /* a browser leaves the default port out */
		host_add(w, "localhost", 0, 0);
		host_add(w, "127.0.0.1", 0, 0);
		host_add(w, "::1", 1, 0);
	}
}

static int host_allowed(const struct web *w, const char *host, size_t len)
{
	for (size_t i = 0; i < w->nhosts; i++)
		if (strlen(w->hosts[i]) == len && strncasecmp(w->hosts[i], host, len) == 0)
			return 1;
	return 0;
}

/* A group name as descriptors give it (docs/protocol.md): 1..128 of A-Z a-z 0-9 . _ : - @ */
static int web_group_valid(const char *g)
{
	size_t n = strlen(g);
	if (n == 0 || n > 128)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-@",
			    g[i]))
			return 0;
	return 1;
}

struct web_request {
	struct dbuf body;
	int refused; /* answered already (from the headers) */
};

int web_settings_ok(const struct config *cfg, char *err, size_t errlen)
{
	if (strcmp(cfg->admin_page, "on") == 0 && !*cfg->http_addr && !*cfg->ops_addr) {
		snprintf(err, errlen, "KIE_ADMIN_PAGE=on needs KIE_HTTP_ADDR or KIE_OPS_ADDR (the "
			 "page is served by the worker's HTTP server; a private KIE_OPS_ADDR is the "
			 "production setting)");
		return -1;
	}
	if (hosts_parse(cfg->admin_hosts, NULL, err, errlen) != 0)
		return -1;
	if (*cfg->admin_token && strlen(cfg->admin_token) < WEB_TOKEN_MIN_BYTES) {
		snprintf(err, errlen, "KIE_ADMIN_TOKEN is shorter than %d bytes: use a long random "
			 "one (openssl rand -hex 32)", WEB_TOKEN_MIN_BYTES);
		return -1;
	}
	return 0;
}

struct web *web_start(const struct config *cfg, const struct rconn_addr *redis,
		      const volatile sig_atomic_t *stop, char *err, size_t errlen)
{
	struct web *w;

	if (web_settings_ok(cfg, err, errlen) != 0)
		return NULL;
	w = util_xcalloc(1, sizeof(*w));
	w->cfg = cfg;
	pthread_mutex_init(&w->lock, NULL);
	pthread_mutex_init(&w->store_lock, NULL);
	rconn_init(&w->rc, redis, 2000, stop, "web");
	queue_init(&w->q, &w->rc, cfg->redis_prefix, "web", cfg->record_ttl_s, cfg->results_max);
	w->q.dead_max = cfg->dead_max;
	if (*cfg->kie_api_token) {
		limiter_account_id(cfg->kie_api_token, w->account_id);
	} else { /* KIE_ACCOUNTS_FILE: the first account's limiter (the stats' limiter lines) */
		struct accounts a;
		char aerr[256];
		if (accounts_load(cfg, &a, aerr, sizeof(aerr)) == 0) {
			if (a.n > 0)
				util_strlcpy(w->account_id, a.v[0].id, sizeof(w->account_id));
			for (int i = 0; a.n > 1 && i < a.n && i < ACCOUNTS_MAX; i++) {
				util_strlcpy(w->acct_alias[i], a.v[i].alias, sizeof(w->acct_alias[i]));
				util_strlcpy(w->acct_id[i], a.v[i].id, sizeof(w->acct_id[i]));
				w->nacct = i + 1;
			}
			accounts_free(&a);
		}
	}
	if (*cfg->admin_hosts)
		hosts_parse(cfg->admin_hosts, w, err, errlen); /* checked above */
	else
		hosts_default(w, *cfg->ops_addr ? cfg->ops_addr : cfg->http_addr);
	{
		char list[600] = "";
		size_t n = 0;
		for (size_t i = 0; i < w->nhosts && n < sizeof(list); i++)
			n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s", i ? ", " : "",
					      w->hosts[i]);
		log_info(NULL, NULL, "operator page on %s%s/ (%s; Host %s)",
			 *cfg->ops_addr ? cfg->ops_addr : cfg->http_addr, WEB_PREFIX,
			 *cfg->admin_token ? "actions need KIE_ADMIN_TOKEN"
					   : "read-only: no KIE_ADMIN_TOKEN", list);
	}
	return w;
}

void web_stop(struct web *w)
{
	if (!w)
		return;
	rconn_close(&w->rc);
	metadata_store_free(w->store);
	pthread_mutex_destroy(&w->store_lock);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

int web_wants(const char *url)
{
	size_t n = strlen(WEB_PREFIX);
	return strncmp(url, WEB_PREFIX, n) == 0 && (url[n] == '\0' || url[n] == '/');
}

void web_request_free(struct web_request *r)
{
	if (!r)
		return;
	dbuf_free(&r->body);
	free(r);
}

/* ---- answers ---- */

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *type,
			      const void *data, size_t len, int copy)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		len, (void *)data, copy ? MHD_RESPMEM_MUST_COPY : MHD_RESPMEM_PERSISTENT);
	enum MHD_Result rc;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, "Content-Security-Policy", csp);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "Cross-Origin-Resource-Policy", "same-origin");
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	if (status == MHD_HTTP_MOVED_PERMANENTLY)
		MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, WEB_PREFIX "/");
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result answer_json(struct MHD_Connection *c, unsigned status, cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);
	enum MHD_Result rc;
	if (!s)
		return MHD_NO;
	rc = answer(c, status, "application/json", s, strlen(s), 1);
	free(s);
	return rc;
}

static enum MHD_Result error(struct MHD_Connection *c, unsigned status, const char *msg)
{
	cJSON *o = cJSON_CreateObject();
	enum MHD_Result rc;
	cJSON_AddNumberToObject(o, "code", status);
	cJSON_AddStringToObject(o, "error", msg);
	rc = answer_json(c, status, o);
	cJSON_Delete(o);
	return rc;
}

/* ---- Redis under the lock ---- */

/* The createTask slots used and reserved now against the limit (views_create_slots): with
 * several accounts, the sums over every account's log, against the sum of their limits */
static cJSON *web_create_slots(struct web *w, char *err, size_t errlen)
{
	cJSON *all = views_create_slots(&w->q, w->cfg->account_prefix, w->account_id,
					w->cfg->create_limit, w->cfg->create_window_ms, err, errlen);
	static const char *const sums[] = {"used", "reserved", "limit"};

	for (int i = 1; all && i < w->nacct; i++) { /* acct_id[0] is account_id */
		cJSON *one = views_create_slots(&w->q, w->cfg->account_prefix, w->acct_id[i],
						w->cfg->create_limit, w->cfg->create_window_ms, err,
						errlen);
		if (!one) {
			cJSON_Delete(all);
			return NULL;
		}
		for (size_t k = 0; k < sizeof(sums) / sizeof(sums[0]); k++) {
			cJSON *a = cJSON_GetObjectItemCaseSensitive(all, sums[k]);
			const cJSON *b = cJSON_GetObjectItemCaseSensitive(one, sums[k]);
			if (cJSON_IsNumber(a) && cJSON_IsNumber(b))
				cJSON_SetNumberValue(a, a->valuedouble + b->valuedouble);
		}
		cJSON_Delete(one);
	}
	if (all && w->nacct > 1)
		cJSON_AddNumberToObject(all, "accounts", w->nacct);
	return all;
}

/* admin_stats with each account's limiter ("limiters") when the pool has several */
static cJSON *web_stats(struct web *w, char *err, size_t errlen)
{
	cJSON *res = admin_stats(&w->q, w->cfg->account_prefix, w->account_id, err, errlen);
	const char *aliases[ACCOUNTS_MAX], *ids[ACCOUNTS_MAX];

	if (!res || w->nacct < 2)
		return res;
	for (int i = 0; i < w->nacct; i++) {
		aliases[i] = w->acct_alias[i];
		ids[i] = w->acct_id[i];
	}
	if (admin_stats_add_limiters(&w->q, w->cfg->account_prefix, aliases, ids, w->nacct, res,
				     err, errlen) != 0) {
		cJSON_Delete(res);
		return NULL;
	}
	return res;
}

static int lock(struct web *w)
{
	struct timespec ts;
	int64_t deadline = util_monotonic_ms() + WEB_REDIS_WAIT_MS;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += WEB_REDIS_WAIT_MS / 1000;
	if (pthread_mutex_timedlock(&w->lock, &ts) != 0)
		return -1;
	w->rc.deadline_ms = deadline; /* a lost Redis ends the request, not the thread */
	return 0;
}

/* ---- the API ---- */

/* A search Redis could not answer (a finished job's task hash is gone, its event trimmed
 * off <p>:results): the task's metadata record in the store names its job. One store read,
 * outside the Redis lock; nothing in Redis is kept for it (docs/protocol.md section 2). */
static void search_in_store(struct web *w, cJSON *res, const char *term)
{
	const cJSON *by = cJSON_GetObjectItemCaseSensitive(res, "by"), *id;
	cJSON *rec = NULL;
	char err[512];
	int got;

	if (!cJSON_IsString(by) || strcmp(by->valuestring, "id") != 0 || !job_id_valid(term))
		return;
	pthread_mutex_lock(&w->store_lock);
	if (!w->store)
		w->store = metadata_store_open(w->cfg, err, sizeof(err));
	got = w->store ? metadata_store_get(w->store, term, &rec, err, sizeof(err)) : -1;
	pthread_mutex_unlock(&w->store_lock);
	id = got == 0 ? cJSON_GetObjectItemCaseSensitive(rec, "jobId") : NULL;
	if (cJSON_IsString(id) && job_id_valid(id->valuestring)) {
		cJSON_ReplaceItemInObjectCaseSensitive(res, "by", cJSON_CreateString("record"));
		cJSON_ReplaceItemInObjectCaseSensitive(res, "jobId",
						       cJSON_CreateString(id->valuestring));
		cJSON_ReplaceItemInObjectCaseSensitive(res, "taskId", cJSON_CreateString(term));
	}
	cJSON_Delete(rec);
}

static const char *arg(struct MHD_Connection *c, const char *name)
{
	return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
}

/* A task's metadata record as the store holds it (kie-tasks/<taskId>.json): read through
 * the worker's store (fs or R2), outside the Redis lock, one read at a time. */
static enum MHD_Result api_record(struct web *w, struct MHD_Connection *c, const char *task)
{
	char err[512];
	cJSON *rec = NULL, *o;
	enum MHD_Result rc;
	unsigned status = MHD_HTTP_OK;
	int got;

	if (!task || !job_id_valid(task))
		return error(c, MHD_HTTP_BAD_REQUEST, "task must be a task id ([A-Za-z0-9._:-], 1 "
			     "to 128 bytes)");
	pthread_mutex_lock(&w->store_lock);
	if (!w->store)
		w->store = metadata_store_open(w->cfg, err, sizeof(err));
	got = w->store ? metadata_store_get(w->store, task, &rec, err, sizeof(err)) : -1;
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "taskId", task);
	if (w->store)
		cJSON_AddStringToObject(o, "store", metadata_store_kind(w->store));
	pthread_mutex_unlock(&w->store_lock);
	if (got == 0) {
		cJSON_AddItemToObject(o, "record", rec);
	} else {
		cJSON_AddNullToObject(o, "record");
		if (got < 0) {
			util_utf8_sanitize(err);
			cJSON_AddStringToObject(o, "error", err);
			status = MHD_HTTP_SERVICE_UNAVAILABLE;
		} else {
			status = MHD_HTTP_NOT_FOUND;
		}
	}
	rc = answer_json(c, status, o);
	cJSON_Delete(o);
	return rc;
}

static enum MHD_Result api_get(struct web *w, struct MHD_Connection *c, const char *what)
{
	char err[512];
	cJSON *res = NULL;
	enum MHD_Result rc;
	int found = 1;

	if (strcmp(what, "dead") == 0) {
		struct admin_filter f;
		const char *why;
		admin_filter_init(&f);
		why = admin_filter_of(arg(c, "type"), arg(c, "reason"), arg(c, "olderThan"), &f);
		if (why)
			return error(c, MHD_HTTP_BAD_REQUEST, why);
		if (admin_count_arg("limit", arg(c, "limit"), 50, 1, 500, &f.limit, err,
				    sizeof(err)) != 0 ||
		    admin_count_arg("offset", arg(c, "offset"), 0, 0, ADMIN_SCAN_MAX, &f.offset, err,
				    sizeof(err)) != 0)
			return error(c, MHD_HTTP_BAD_REQUEST, err);
		if (lock(w) != 0)
			return error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "busy; try again");
		res = admin_dead_list(&w->q, &f, arg(c, "full") != NULL, err, sizeof(err));
	} else if (strcmp(what, "job") == 0) {
		const char *id = arg(c, "id");
		if (!id || !job_id_valid(id))
			return error(c, MHD_HTTP_BAD_REQUEST, "id must be a job id ([A-Za-z0-9._:-], "
				     "1 to 128 bytes)");
		if (lock(w) != 0)
			return error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "busy; try again");
		res = admin_job_show(&w->q, id, &found, err, sizeof(err));
		if (res) { /* the page shows the descriptor the hash keeps, as stored */
			cJSON *d = views_job_descriptor(&w->q, id, WEB_DESCRIPTOR_MAX_BYTES, err,
							sizeof(err));
			if (d) {
				/* i21: a queued or delayed job's place and ETA (kie_position) */
				char perr[300];
				cJSON *pos = sched_view_position(&w->q, id, perr, sizeof(perr));
				cJSON_AddItemToObject(res, "descriptor", d);
				cJSON_AddItemToObject(res, "schedule", pos ? pos : cJSON_CreateNull());
			} else {
				cJSON_Delete(res);
				res = NULL;
			}
		}
	} else if (strcmp(what, "stats") == 0 || strcmp(what, "completions") == 0) {
		long limit = 24;
		if (strcmp(what, "completions") == 0 &&
		    admin_count_arg("limit", arg(c, "limit"), 24, 1, 200, &limit, err,
				    sizeof(err)) != 0)
			return error(c, MHD_HTTP_BAD_REQUEST, err);
		if (lock(w) != 0)
			return error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "busy; try again");
		if (strcmp(what, "stats") == 0) {
			res = web_stats(w, err, sizeof(err));
			if (res)
				cJSON_AddBoolToObject(res, "actions", *w->cfg->admin_token != '\0');
		} else {
			res = admin_completions(&w->q, limit, err, sizeof(err));
		}
	} else if (strcmp(what, "queued") == 0 || strcmp(what, "inflight") == 0 ||
		   strcmp(what, "uncertain") == 0 || strcmp(what, "audit") == 0) {
		const char *from = arg(c, "from");
		long limit, offset;
		if (admin_count_arg("limit", arg(c, "limit"), 50, 1, VIEWS_PAGE_MAX, &limit, err,
				    sizeof(err)) != 0 ||
		    admin_count_arg("offset", arg(c, "offset"), 0, 0, 1000000000L, &offset, err,
				    sizeof(err)) != 0)
			return error(c, MHD_HTTP_BAD_REQUEST, err);
		const char *prio = arg(c, "priority"), *group = arg(c, "group");
		long p = -1;
		if (what[0] == 'q') {
			if (from && strcmp(from, "ready") != 0 && strcmp(from, "delayed") != 0 &&
			    strcmp(from, "parked") != 0 && strcmp(from, "queue") != 0)
				return error(c, MHD_HTTP_BAD_REQUEST, "from must be ready, delayed, "
					     "parked or queue");
			if (prio && *prio && admin_count_arg("priority", prio, 0, 0, 9, &p, err,
							     sizeof(err)) != 0)
				return error(c, MHD_HTTP_BAD_REQUEST, err);
			if (group && *group && strcmp(group, "(default)") != 0 &&
			    !web_group_valid(group))
				return error(c, MHD_HTTP_BAD_REQUEST, "group must be 1 to 128 of "
					     "A-Z a-z 0-9 . _ : - @, or (default)");
			if (arg(c, "account") && *arg(c, "account") &&
			    !accounts_alias_valid(arg(c, "account")))
				return error(c, MHD_HTTP_BAD_REQUEST, "account must be an account's "
					     "alias (1 to 64 of A-Z a-z 0-9 _ . -)");
		}
		if (lock(w) != 0)
			return error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "busy; try again");
		if (what[0] == 'q') {
			/* i21: the scheduling structure, by priority and group (sched_view.h) */
			res = views_queued(&w->q, from ? from : "ready", prio && *prio ? (int)p : -1,
					   group, arg(c, "account"), offset, limit, err,
					   sizeof(err));
			if (res) {
				cJSON *sum = sched_view_stats(&w->q, 20, err, sizeof(err));
				if (sum) {
					cJSON_AddItemToObject(res, "summary", sum);
				} else {
					cJSON_Delete(res);
					res = NULL;
				}
			}
		} else if (what[0] == 'i')
			res = views_in_flight(&w->q, offset, limit, err, sizeof(err));
		else if (what[0] == 'u')
			res = views_uncertain(&w->q, offset, limit, err, sizeof(err));
		else
			res = audit_list(&w->q, offset, limit, err, sizeof(err));
	} else if (strcmp(what, "rates") == 0) {
		long minutes;
		if (admin_count_arg("minutes", arg(c, "minutes"), 15, 1, VIEWS_MINUTES_MAX, &minutes,
				    err, sizeof(err)) != 0)
			return error(c, MHD_HTTP_BAD_REQUEST, err);
		if (lock(w) != 0)
			return error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "busy; try again");
		res = views_rates_minutes(&w->q, minutes, err, sizeof(err));
		if (res) {
			cJSON *slots = web_create_slots(w, err, sizeof(err));
			if (slots) {
				cJSON_AddItemToObject(res, "createSlots", slots);
			} else {
				cJSON_Delete(res);
				res = NULL;
			}
		}
	} else if (strcmp(what, "history") == 0) {
		/* i21: the history counters (views_history): ?minutes=N[&step=S] or ?days=N */
		long n, step, days = arg(c, "days") != NULL;
		if ((days ? admin_count_arg("days", arg(c, "days"), 30, 1, HISTORY_DAYS, &n, err,
					    sizeof(err))
			  : admin_count_arg("minutes", arg(c, "minutes"), 60, 1, HISTORY_MINUTES, &n,
					    err, sizeof(err))) != 0 ||
		    admin_count_arg("step", arg(c, "step"), 1, 1, 1440, &step, err, sizeof(err)) != 0)
			return error(c, MHD_HTTP_BAD_REQUEST, err);
		if (lock(w) != 0)
			return error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "busy; try again");
		res = views_history(&w->q, (int)days, n, step, err, sizeof(err));
		if (res) {
			/* what the charts draw the counts against */
			/* several accounts: each has its own createTask limit */
			cJSON_AddNumberToObject(res, "createLimitPerMinute",
						(double)w->cfg->create_limit * 60000.0 /
							(double)w->cfg->create_window_ms *
							(w->nacct > 1 ? w->nacct : 1));
			cJSON_AddNumberToObject(res, "dailyCreditBudget",
						(double)w->cfg->daily_credit_budget);
		}
	} else if (strcmp(what, "search") == 0) {
		const char *term = arg(c, "q");
		if (!term || !(job_id_valid(term) || job_group_valid(term)))
			return error(c, MHD_HTTP_BAD_REQUEST, "q must be a job id, a task id or a "
				     "group ([A-Za-z0-9._:@-], 1 to 128 bytes)");
		if (lock(w) != 0)
			return error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "busy; try again");
		res = views_search(&w->q, term, err, sizeof(err));
	} else if (strcmp(what, "record") == 0) {
		return api_record(w, c, arg(c, "task"));
	} else if (strcmp(what, "schedule") == 0) {
		/* i19: the scheduling structure (sched_view.h); with ?id=, one job's place */
		const char *id = arg(c, "id");
		if (id && !job_id_valid(id))
			return error(c, MHD_HTTP_BAD_REQUEST, "id must be a job id ([A-Za-z0-9._:-], "
				     "1 to 128 bytes)");
		if (lock(w) != 0)
			return error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "busy; try again");
		res = id ? sched_view_position(&w->q, id, err, sizeof(err))
			 : sched_view_stats(&w->q, 10, err, sizeof(err));
	} else if (strcmp(what, "spend") == 0) {
		/* i21: today's spend, budgets, accounts (balance, pauses), over_budget jobs */
		if (lock(w) != 0)
			return error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "busy; try again");
		res = spend_view(&w->q, w->cfg->daily_credit_budget, 1, err, sizeof(err));
	} else {
		return error(c, MHD_HTTP_NOT_FOUND, "no such API (stats, dead, completions, job, "
			     "queued, inflight, uncertain, audit, rates, history, search, record, "
			     "schedule, spend)");
	}
	pthread_mutex_unlock(&w->lock);
	if (!res)
		return error(c, MHD_HTTP_SERVICE_UNAVAILABLE, err);
	if (strcmp(what, "search") == 0)
		search_in_store(w, res, arg(c, "q"));
	rc = answer_json(c, found ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND, res);
	cJSON_Delete(res);
	return rc;
}

/* Why an action request is refused from its headers (status in *status), or NULL. */
static const char *refuse_action(struct web *w, struct MHD_Connection *c, unsigned *status)
{
	const char *site = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
	const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
	const char *type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
	const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");

	*status = MHD_HTTP_FORBIDDEN;
	if (!*w->cfg->admin_token)
		return "actions are off: set KIE_ADMIN_TOKEN (or KIE_ADMIN_TOKEN_FILE) on the "
		       "worker to enable retry, purge, pause and resume";
	/* a browser says where a request comes from; a script (curl) says nothing */
	if (site && strcmp(site, "same-origin") != 0)
		return "cross-site request refused (Sec-Fetch-Site)";
	/* compared with the page's own hosts, not with the request's Host: a rebound name
	 * would make them agree */
	if (origin) {
		const char *h = strncasecmp(origin, "http://", 7) == 0	  ? origin + 7
				: strncasecmp(origin, "https://", 8) == 0 ? origin + 8
									  : NULL;
		if (!h || !host_allowed(w, h, strlen(h)))
			return "cross-site request refused (Origin is not one of KIE_ADMIN_HOSTS)";
	}
	if (!type || strncmp(type, "application/json", 16) != 0 ||
	    (type[16] != '\0' && type[16] != ';')) {
		*status = MHD_HTTP_UNSUPPORTED_MEDIA_TYPE;
		return "actions take Content-Type: application/json";
	}
	*status = MHD_HTTP_UNAUTHORIZED;
	if (!auth || strncmp(auth, "Bearer ", 7) != 0)
		return "missing Authorization: Bearer <KIE_ADMIN_TOKEN>";
	if (!crypto_equal_consttime(auth + 7, w->cfg->admin_token))
		return "wrong operator token";
	return NULL;
}

/* The filter of a dead-letter action as the audit entry records it. */
static cJSON *filter_json(const struct admin_body *b)
{
	cJSON *f = cJSON_CreateObject();
	char ms[32];
	if (b->f.ref)
		cJSON_AddStringToObject(f, "ref", b->f.ref);
	if (b->all)
		cJSON_AddTrueToObject(f, "all");
	if (b->f.type)
		cJSON_AddStringToObject(f, "type", b->f.type);
	if (b->f.reason_class >= 0)
		cJSON_AddStringToObject(f, "reason", admin_reason_class_str(b->f.reason_class));
	if (b->f.older_than_ms > 0) {
		snprintf(ms, sizeof(ms), "%lldms", (long long)b->f.older_than_ms);
		cJSON_AddStringToObject(f, "olderThan", ms);
	}
	return f;
}

/* How many dead letters b's filter selects now (admin_dead_list's count), or -1 (err). */
static long dead_matching(struct web *w, const struct admin_body *b, char *err, size_t errlen)
{
	struct admin_filter f = b->f;
	cJSON *l;
	const cJSON *m;
	long n;

	f.limit = 1;
	f.offset = 0;
	l = admin_dead_list(&w->q, &f, 0, err, errlen);
	if (!l)
		return -1;
	m = cJSON_GetObjectItemCaseSensitive(l, "matched");
	n = cJSON_IsNumber(m) ? (long)m->valuedouble : 0;
	cJSON_Delete(l);
	return n;
}

/* i21: the scheduling actions (pool/sched.h): "job/cancel" {"jobId"} is FCALL kie_cancel
 * (as `kie job cancel`); "group/weight" {"group", "weight": 0..1000} and "group/limit"
 * {"group", "limit": 0..100000} are `kie group weight|limit` (0 removes the setting). The
 * headers were checked (refuse_action); each done action is in the audit list. */
static enum MHD_Result api_post_sched(struct web *w, struct MHD_Connection *c,
				      const char *what, const cJSON *in, const char *who,
				      const char *ip)
{
	char err[512] = "", aerr[300];
	cJSON *res = NULL, *detail = cJSON_CreateObject(), *it;
	enum MHD_Result rc;
	unsigned status = MHD_HTTP_BAD_REQUEST;
	const char *name = strcmp(what, "job/cancel") == 0 ? "jobId" : "group";
	const char *num_name = strcmp(what, "group/weight") == 0 ? "weight" : "limit";
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(in, name);
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(in, num_name);
	int cancel = name[0] == 'j';

	cJSON_ArrayForEach(it, in)
		if (strcmp(it->string, name) != 0 && (cancel || strcmp(it->string, num_name) != 0)) {
			snprintf(err, sizeof(err), "unknown field \"%.60s\"", it->string);
			util_utf8_sanitize(err);
			goto out;
		}
	if (!cJSON_IsString(id) || !(cancel ? job_id_valid(id->valuestring)
					    : web_group_valid(id->valuestring))) {
		snprintf(err, sizeof(err), cancel ? "jobId must be a job id ([A-Za-z0-9._:-], 1 to "
			 "128 bytes)" : "group must be 1 to 128 of A-Z a-z 0-9 . _ : - @");
		goto out;
	}
	if (!cancel && (!cJSON_IsNumber(n) || n->valuedouble != (double)(long)n->valuedouble ||
			n->valuedouble < 0 || n->valuedouble > (num_name[0] == 'w' ? 1000 : 100000))) {
		snprintf(err, sizeof(err), "%s must be a whole number from 0 (remove it) to %d",
			 num_name, num_name[0] == 'w' ? 1000 : 100000);
		goto out;
	}
	status = MHD_HTTP_SERVICE_UNAVAILABLE;
	if (lock(w) != 0) {
		snprintf(err, sizeof(err), "busy; try again");
		goto out;
	}
	cJSON_AddStringToObject(detail, name, id->valuestring);
	if (cancel) {
		char *json = NULL;
		if (sched_cancel(&w->q, id->valuestring, &json) == 0)
			res = cJSON_Parse(json);
		free(json);
		if (!res)
			snprintf(err, sizeof(err), "cancel: %s", w->q.err);
		else
			cJSON_AddItemToObject(detail, "result", cJSON_Duplicate(
				cJSON_GetObjectItemCaseSensitive(res, "result"), 1));
	} else if (sched_view_set(&w->q, id->valuestring, num_name[0] == 'l',
				  (long)n->valuedouble, err, sizeof(err)) == 0) {
		res = cJSON_CreateObject();
		cJSON_AddStringToObject(res, "group", id->valuestring);
		cJSON_AddNumberToObject(res, num_name, n->valuedouble);
		cJSON_AddNumberToObject(detail, num_name, n->valuedouble);
	}
	if (res && audit_add(&w->q, who, ip, what, detail, aerr, sizeof(aerr)) != 0)
		log_warn(NULL, NULL, "operator page (%s): %s done, but not recorded in the audit "
			 "list: %s", ip, what, aerr);
	pthread_mutex_unlock(&w->lock);
	if (res) {
		char *d = cJSON_PrintUnformatted(detail);
		log_info(cancel ? id->valuestring : NULL, NULL, "operator page (%s, %s): %s %s", ip,
			 who, what, d ? d : "");
		free(d);
	}
out:
	cJSON_Delete(detail);
	if (!res)
		return error(c, status, err);
	rc = answer_json(c, MHD_HTTP_OK, res);
	cJSON_Delete(res);
	return rc;
}

/* i21: "group/budget" {"group", "credits": 0..BUDGET_MAX} is `kie budget set` (0 removes
 * the budget; the jobs waiting over_budget are looked at again at once). The headers were
 * checked (refuse_action); each done action is in the audit list. */
static enum MHD_Result api_post_budget(struct web *w, struct MHD_Connection *c,
				       const cJSON *in, const char *who, const char *ip)
{
	char err[300] = "", aerr[300];
	const cJSON *g = cJSON_GetObjectItemCaseSensitive(in, "group");
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(in, "credits"), *it;
	cJSON *res = NULL, *detail;
	enum MHD_Result rc;
	long woken = 0;

	cJSON_ArrayForEach(it, in)
		if (strcmp(it->string, "group") != 0 && strcmp(it->string, "credits") != 0) {
			snprintf(err, sizeof(err), "unknown field \"%.60s\"", it->string);
			util_utf8_sanitize(err);
			return error(c, MHD_HTTP_BAD_REQUEST, err);
		}
	if (!cJSON_IsString(g) || !budget_group_valid(g->valuestring)) {
		snprintf(err, sizeof(err), "group must be 1 to %d of A-Z a-z 0-9 _ . : @ -",
			 BUDGET_GROUP_MAX);
		return error(c, MHD_HTTP_BAD_REQUEST, err);
	}
	if (!cJSON_IsNumber(n) || !(n->valuedouble >= 0) || n->valuedouble > BUDGET_MAX)
		return error(c, MHD_HTTP_BAD_REQUEST, "credits must be a number from 0 (remove "
			     "the budget) to 1e12");
	if (lock(w) != 0)
		return error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "busy; try again");
	if (budget_group_set(&w->q, g->valuestring, n->valuedouble) != 0) {
		snprintf(err, sizeof(err), "%s", w->q.err);
		pthread_mutex_unlock(&w->lock);
		return error(c, MHD_HTTP_SERVICE_UNAVAILABLE, err);
	}
	/* every account's structure (i20-counts) */
	budget_unpark_all(&w->q, w->cfg->daily_credit_budget, util_now_ms(), &woken);
	detail = cJSON_CreateObject();
	cJSON_AddStringToObject(detail, "group", g->valuestring);
	if (n->valuedouble > 0)
		cJSON_AddNumberToObject(detail, "budget", n->valuedouble);
	else
		cJSON_AddNullToObject(detail, "budget");
	if (audit_add(&w->q, who, ip, "group/budget", detail, aerr, sizeof(aerr)) != 0)
		log_warn(NULL, NULL, "operator page (%s): group/budget done, but not recorded in "
			 "the audit list: %s", ip, aerr);
	pthread_mutex_unlock(&w->lock);
	{
		char *d = cJSON_PrintUnformatted(detail);
		log_info(NULL, NULL, "operator page (%s, %s): group/budget %s", ip, who, d ? d : "");
		free(d);
	}
	res = cJSON_Duplicate(detail, 1);
	cJSON_AddNumberToObject(res, "woken", (double)woken);
	cJSON_Delete(detail);
	rc = answer_json(c, MHD_HTTP_OK, res);
	cJSON_Delete(res);
	return rc;
}

static enum MHD_Result api_post(struct web *w, struct MHD_Connection *c, const char *what,
				const struct dbuf *body)
{
	cJSON *in = cJSON_ParseWithLength(body->data ? body->data : "", body->len), *res = NULL;
	cJSON *detail = NULL;
	char err[512], ip[CLIENT_ADDR_STRLEN] = "?", who[160], aerr[300];
	enum MHD_Result rc;
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	struct admin_body b;
	struct client_addr ca;
	const char *why;
	unsigned status = MHD_HTTP_SERVICE_UNAVAILABLE;
	int unknown;

	if (strcmp(what, "job/cancel") == 0 || strcmp(what, "group/weight") == 0 ||
	    strcmp(what, "group/limit") == 0 || strcmp(what, "group/budget") == 0) {
		if (ci && ci->client_addr && client_addr_from_sockaddr(ci->client_addr, &ca) == 0)
			client_addr_str(&ca, ip, sizeof(ip));
		audit_who(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Kie-Operator"),
			  w->cfg->admin_token, who, sizeof(who));
		if (!cJSON_IsObject(in)) {
			cJSON_Delete(in);
			return error(c, MHD_HTTP_BAD_REQUEST, "the body must be a JSON object");
		}
		rc = strcmp(what, "group/budget") == 0 ? api_post_budget(w, c, in, who, ip)
						       : api_post_sched(w, c, what, in, who, ip);
		cJSON_Delete(in);
		return rc;
	}
	/* every field checked, with its type, before anything is done (admin.h) */
	why = admin_body_parse(what, in, &b, &unknown);
	if (why) {
		cJSON_Delete(in);
		return error(c, unknown ? MHD_HTTP_NOT_FOUND : MHD_HTTP_BAD_REQUEST, why);
	}
	if (ci && ci->client_addr && client_addr_from_sockaddr(ci->client_addr, &ca) == 0)
		client_addr_str(&ca, ip, sizeof(ip));
	/* who: the token's fingerprint, and the name the operator typed into the page */
	audit_who(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Kie-Operator"),
		  w->cfg->admin_token, who, sizeof(who));
	if (lock(w) != 0) {
		cJSON_Delete(in);
		return error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "busy; try again");
	}
	if (strcmp(what, "dead/retry") == 0 || strcmp(what, "dead/purge") == 0) {
		int retry = strcmp(what, "dead/retry") == 0;
		long now_matching = 0;
		if (b.expect && !b.dry_run) {
			/* the operator confirmed the dry run's count: never act on more */
			now_matching = dead_matching(w, &b, err, sizeof(err));
			if (now_matching > b.expect) {
				snprintf(err, sizeof(err), "%ld entries match now, %ld were confirmed: "
					 "run the dry run again", now_matching, b.expect);
				status = MHD_HTTP_CONFLICT;
			} else if (now_matching >= 0 && (b.f.limit == 0 || b.f.limit > b.expect)) {
				b.f.limit = b.expect;
			}
		}
		if (now_matching >= 0 && status != MHD_HTTP_CONFLICT)
			res = retry ? admin_dead_retry(&w->q, &b.f, b.allow_uncertain, b.dry_run, err,
						       sizeof(err))
				    : admin_dead_purge(&w->q, &b.f, b.dry_run, err, sizeof(err));
		if (res && !b.dry_run) {
			static const char *const counts[] = {"selected", "done", "refused", "gone"};
			detail = cJSON_CreateObject();
			cJSON_AddItemToObject(detail, "filter", filter_json(&b));
			for (size_t i = 0; i < 4; i++) {
				const cJSON *n = cJSON_GetObjectItemCaseSensitive(res, counts[i]);
				cJSON_AddNumberToObject(detail, counts[i],
							cJSON_IsNumber(n) ? n->valuedouble : 0);
			}
			if (b.expect)
				cJSON_AddNumberToObject(detail, "confirmed", (double)b.expect);
		}
	} else { /* pause, resume */
		int pause = strcmp(what, "pause") == 0, done = 0, ok;
		char reason[300];
		snprintf(reason, sizeof(reason), "%s", b.reason ? b.reason : "paused from the "
			 "operator page");
		util_utf8_fix_end(reason);
		util_utf8_sanitize(reason);
		ok = pause ? queue_pause_set(&w->q, "operator", b.for_ms, reason, &done)
			   : queue_pause_clear(&w->q, NULL, &done);
		if (ok == 0) {
			res = web_stats(w, err, sizeof(err));
			if (res)
				cJSON_AddBoolToObject(res, "changed", done);
			detail = cJSON_CreateObject();
			cJSON_AddBoolToObject(detail, "changed", done);
			if (pause) {
				cJSON_AddStringToObject(detail, "reason", reason);
				if (b.for_ms)
					cJSON_AddNumberToObject(detail, "forMs", (double)b.for_ms);
				else
					cJSON_AddNullToObject(detail, "forMs");
			}
		} else {
			snprintf(err, sizeof(err), "%s", w->q.err);
		}
	}
	if (detail && audit_add(&w->q, who, ip, what, detail, aerr, sizeof(aerr)) != 0)
		log_warn(NULL, NULL, "operator page (%s): %s done, but not recorded in the audit "
			 "list: %s", ip, what, aerr);
	pthread_mutex_unlock(&w->lock);
	if (detail) {
		char *d = cJSON_PrintUnformatted(detail);
		log_info(b.f.ref && job_id_valid(b.f.ref) ? b.f.ref : NULL, NULL,
			 "operator page (%s, %s): %s %s", ip, who, what, d ? d : "");
		free(d);
	}
	cJSON_Delete(detail);
	cJSON_Delete(in);
	if (!res)
		return error(c, status, err);
	rc = answer_json(c, MHD_HTTP_OK, res);
	cJSON_Delete(res);
	return rc;
}

static enum MHD_Result file(struct MHD_Connection *c, const char *name)
{
	for (const struct web_asset *a = web_assets; a->name; a++)
		if (strcmp(a->name, name) == 0)
			return answer(c, MHD_HTTP_OK, a->content_type, a->data, a->len, 0);
	return error(c, MHD_HTTP_NOT_FOUND, "not found");
}

enum MHD_Result web_on_request(struct web *w, struct MHD_Connection *c, const char *url,
			       const char *method, const char *upload, size_t *upload_size,
			       struct web_request **req)
{
	const char *path = url + strlen(WEB_PREFIX);
	int get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
		  strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	int post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
	int api = strncmp(path, "/api/", 5) == 0;

	if (!*req) { /* the headers are in */
		const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
		unsigned status;
		const char *why;
		if (!host || !host_allowed(w, host, strlen(host))) {
			*req = util_xcalloc(1, sizeof(**req));
			(*req)->refused = 1;
			return error(c, MHD_HTTP_MISDIRECTED_REQUEST, "this page answers only its own "
				     "host names (KIE_ADMIN_HOSTS): the Host header names another");
		}
		if (!api && get) {
			if (!*path)
				return answer(c, MHD_HTTP_MOVED_PERMANENTLY, "text/plain", "", 0, 0);
			return file(c, strcmp(path, "/") == 0 ? "index.html" : path + 1);
		}
		if (api && get)
			return api_get(w, c, path + 5);
		if (!api || !post)
			return error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET for the page and reads, POST "
				     "for actions");
		*req = util_xcalloc(1, sizeof(**req));
		dbuf_init(&(*req)->body, WEB_BODY_MAX);
		why = refuse_action(w, c, &status);
		if (why) {
			(*req)->refused = 1;
			return error(c, status, why);
		}
		return MHD_YES;
	}
	if ((*req)->refused) {
		*upload_size = 0; /* answered: the body is not read */
		return MHD_YES;
	}
	if (*upload_size) {
		if (dbuf_add(&(*req)->body, upload, *upload_size) != 0)
			return MHD_NO; /* over WEB_BODY_MAX: MHD cannot answer mid-upload; closed */
		*upload_size = 0;
		return MHD_YES;
	}
	return api_post(w, c, path + 5, &(*req)->body);
}
