/* metrics_http.c — GET /metrics, /healthz and /readyz of metrics_http.h. */
#include "metrics_http.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "pool/queue.h"
#include "pool/sched_accounts.h"
#include "store/metadata.h"
#include "lua_scripts.h"

#define BODY_MAX (256 * 1024)  /* the exposition is about 20 KiB */
#define HEAD_BYTES 256         /* of the queue's oldest entry, to tell it from the next */
#define WORKERS_MAX 10000      /* consumers of <p>:workers the scrape looks at */
#define LOCK_WAIT_MS 2000      /* the first request waits this long for a running probe */

struct metrics_http {
	const struct config *cfg;
	struct config store_cfg;   /* cfg with short HTTP timeouts, for the store probe */
	pthread_mutex_t lock;      /* the probe: rc, ms and the cached results */
	struct rconn rc;
	struct metadata_store *ms;
	/* cached, under lock */
	struct metrics_pool pool;
	int64_t pool_at_ms;        /* monotonic; 0: never */
	int ready;
	char ready_why[600];
	int64_t ready_at_ms;
	/* the queue's oldest entry, to tell how long it has been there */
	long long head_len;
	char head[HEAD_BYTES];
	size_t head_n;
	int64_t head_since_ms;
};

int metrics_http_handles(const char *url)
{
	return strcmp(url, "/metrics") == 0 || strcmp(url, "/healthz") == 0 ||
	       strcmp(url, "/readyz") == 0;
}

struct metrics_http *metrics_http_new(const struct config *cfg, const struct rconn_addr *redis,
				      const volatile sig_atomic_t *stop)
{
	struct metrics_http *m = util_xcalloc(1, sizeof(*m));
	m->cfg = cfg;
	m->store_cfg = *cfg; /* a shallow copy: metadata_store_open copies what it keeps */
	m->store_cfg.connect_timeout_ms = METRICS_HTTP_STORE_WAIT_MS / 2;
	m->store_cfg.http_timeout_ms = METRICS_HTTP_STORE_WAIT_MS;
	pthread_mutex_init(&m->lock, NULL);
	rconn_init(&m->rc, redis, METRICS_HTTP_REDIS_WAIT_MS, stop, "metrics");
	return m;
}

void metrics_http_free(struct metrics_http *m)
{
	if (!m)
		return;
	rconn_close(&m->rc);
	metadata_store_free(m->ms);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* Takes the probe lock: at once if free; else 1 (busy) when a cached result exists, or
 * waits up to LOCK_WAIT_MS for the first one. Returns 0 with the lock held, 1 without. */
static int probe_lock(struct metrics_http *m, int have_cache)
{
	struct timespec until;

	if (pthread_mutex_trylock(&m->lock) == 0)
		return 0;
	if (have_cache)
		return 1;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += LOCK_WAIT_MS / 1000;
	return pthread_mutex_timedlock(&m->lock, &until) == 0 ? 0 : 1;
}

/* Bounds the next Redis connect and command to METRICS_HTTP_REDIS_WAIT_MS. */
static void redis_bound(struct metrics_http *m)
{
	struct timeval tv = {0, METRICS_HTTP_REDIS_WAIT_MS * 1000};
	m->rc.timeout_ms = METRICS_HTTP_REDIS_WAIT_MS;
	m->rc.deadline_ms = util_monotonic_ms() + METRICS_HTTP_REDIS_WAIT_MS;
	if (m->rc.c && !m->rc.c->err)
		redisSetTimeout(m->rc.c, tv);
}

static long long elem_ll(const redisReply *r, size_t i)
{
	if (i >= r->elements || r->element[i]->type != REDIS_REPLY_INTEGER)
		return -1;
	return r->element[i]->integer;
}

static int pause_kind(const char *json)
{
	cJSON *o = cJSON_Parse(json);
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "kind");
	int kind = METRICS_PAUSE_ACCOUNT; /* queue_pause_get reads an unknown kind so */
	if (cJSON_IsString(k) && strcmp(k->valuestring, "operator") == 0)
		kind = METRICS_PAUSE_OPERATOR;
	else if (cJSON_IsString(k) && strcmp(k->valuestring, "credits") == 0)
		kind = METRICS_PAUSE_CREDITS;
	cJSON_Delete(o);
	return kind;
}

/* A key of the pool: <prefix>:<suffix>[:<id>], on the heap. */
static char *pool_key(const struct metrics_http *m, const char *suffix, const char *id)
{
	size_t n = strlen(m->cfg->redis_prefix) + strlen(suffix) + (id ? strlen(id) : 0) + 3;
	char *k = util_xmalloc(n);
	snprintf(k, n, "%s:%s%s%s", m->cfg->redis_prefix, suffix, id ? ":" : "", id ? id : "");
	return k;
}

/* SMEMBERS <p>:workers: the reply (the caller frees it), with *wrongtype 0; NULL with
 * *wrongtype 1 when the key holds another type; NULL with *wrongtype 0 when Redis failed
 * (logged when it answered an error). */
static redisReply *list_workers(struct metrics_http *m, int *wrongtype)
{
	char *key = pool_key(m, "workers", NULL);
	const char *argv[] = {"SMEMBERS", key};
	redisReply *r = rconn_argv(&m->rc, 2, argv, NULL);

	free(key);
	*wrongtype = r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "WRONGTYPE", 9) == 0;
	if (r && (r->type == REDIS_REPLY_ARRAY || r->type == REDIS_REPLY_SET))
		return r;
	if (r && r->type == REDIS_REPLY_ERROR && !*wrongtype)
		log_warn(NULL, NULL, "metrics: Redis refused SMEMBERS: %s", r->str);
	freeReplyObject(r);
	return NULL;
}

/* The scheduling structures' gauges (pool/sched.h): for each account's structure
 * (sched_accounts.h, i20-counts) one HMGET of its state (ready jobs by priority) and ZCARD
 * of its delayed set, summed per priority across accounts; the pool's cancelled count. */
static void sched_scrape(struct metrics_http *m, struct metrics_pool *p)
{
	struct sched_accounts *sa = util_xcalloc(1, sizeof(*sa));
	struct queue q;
	char state[300], delayed[300];
	char *stats = pool_key(m, "stats", NULL);
	const char *hm[12] = {"HMGET", state, "n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7",
			      "n8", "n9"};
	redisReply *rep;

	queue_init(&q, &m->rc, m->cfg->redis_prefix, NULL, 0, 0);
	sched_accounts_list(&q, sa); /* on failure: "default" alone */
	for (int a = 0; a < sa->n; a++) {
		sched_accounts_key(&q, sa->v[a].name, "state", state, sizeof(state));
		sched_accounts_key(&q, sa->v[a].name, "delayed", delayed, sizeof(delayed));
		hm[0] = "HMGET";
		hm[1] = state;
		rep = rconn_argv(&m->rc, 12, hm, NULL);
		if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 10) {
			p->has_sched = 1;
			for (int i = 0; i < 10; i++) {
				const redisReply *e = rep->element[i];
				p->queued_prio[i] += e->type == REDIS_REPLY_STRING
							     ? strtoll(e->str, NULL, 10) : 0;
			}
		}
		freeReplyObject(rep);
		hm[0] = "ZCARD";
		hm[1] = delayed;
		rep = rconn_argv(&m->rc, 2, hm, NULL);
		if (rep && rep->type == REDIS_REPLY_INTEGER)
			p->sched_delayed += rep->integer;
		freeReplyObject(rep);
	}
	hm[0] = "HGET";
	hm[1] = stats;
	hm[2] = "cancelled";
	rep = rconn_argv(&m->rc, 3, hm, NULL);
	if (rep && rep->type == REDIS_REPLY_STRING)
		p->cancelled_total = strtoll(rep->str, NULL, 10);
	freeReplyObject(rep);
	free(stats);
	free(sa);
}

/* Reads the pool into m->pool; the caller holds the lock. Two round trips: the consumers
 * of <p>:workers, then metrics_scrape.lua with every key it reads. */
static void scrape(struct metrics_http *m)
{
	static const char *const fixed[] = {"queue", "delayed", "uncertain", "dead",
					    "callbacks", "polling", "poll:due", "pause"};
	enum { NFIXED = sizeof(fixed) / sizeof(fixed[0]) };
	struct metrics_pool *p = &m->pool;
	char headn[16];
	redisReply *rep = NULL, *ws = NULL;
	double t0 = metrics_now_s();
	int64_t now;
	int nw, wrongtype, nkeys;
	char **keys;
	const char **args;

	memset(p, 0, sizeof(*p));
	snprintf(headn, sizeof(headn), "%d", HEAD_BYTES);
	redis_bound(m);
	ws = list_workers(m, &wrongtype);
	if (ws || wrongtype) {
		size_t nmembers = ws ? ws->elements : 0;
		size_t cap = nmembers < WORKERS_MAX ? nmembers : WORKERS_MAX;
		keys = util_xcalloc(NFIXED + 2 * cap, sizeof(*keys));
		args = util_xcalloc(2 + cap, sizeof(*args));
		for (int i = 0; i < NFIXED; i++)
			keys[i] = pool_key(m, fixed[i], NULL);
		args[0] = headn;
		args[1] = wrongtype ? "0" : "1";
		nw = 0;
		for (size_t i = 0; i < nmembers && (size_t)nw < cap; i++) {
			const redisReply *e = ws->element[i];
			if (e->type != REDIS_REPLY_STRING)
				continue;
			keys[NFIXED + 2 * nw] = pool_key(m, "processing", e->str);
			keys[NFIXED + 2 * nw + 1] = pool_key(m, "worker", e->str);
			args[2 + nw++] = e->str;
		}
		nkeys = NFIXED + 2 * nw;
		rep = script_run(&m->rc, &lua_metrics_scrape, 0, nkeys, (const char *const *)keys,
				 nw + 2, args, NULL);
		for (int i = 0; i < nkeys; i++)
			free(keys[i]);
		free(keys);
		free(args);
	}
	freeReplyObject(ws);
	now = util_monotonic_ms();
	m->pool_at_ms = now;
	p->scrape_s = metrics_now_s() - t0;
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 11) {
		if (rep && rep->type == REDIS_REPLY_ERROR)
			log_warn(NULL, NULL, "metrics: Redis refused the scrape: %s", rep->str);
		freeReplyObject(rep);
		return; /* redis_up 0 */
	}
	p->redis_up = 1;
	sched_scrape(m, p);
	for (int i = 0; i < METRICS_Q_N; i++)
		p->queue[i] = elem_ll(rep, (size_t)i);
	p->workers_alive = elem_ll(rep, 7);
	if (rep->element[8]->type == REDIS_REPLY_STRING && rep->element[8]->len > 0) {
		p->paused = 1;
		p->pause_kind = pause_kind(rep->element[8]->str);
	}
	/* the oldest entry: the same length and first bytes as last time is the same entry
	 * (or an identical one right behind it): its wait goes on */
	long long len = elem_ll(rep, 9);
	const redisReply *h = rep->element[10];
	size_t hn = h->type == REDIS_REPLY_STRING ? h->len : 0;
	if (hn > HEAD_BYTES)
		hn = HEAD_BYTES;
	if (len < 0) {
		m->head_len = -1;
		m->head_n = 0;
	} else {
		if (len != m->head_len || hn != m->head_n || memcmp(h->str, m->head, hn) != 0) {
			m->head_len = len;
			m->head_n = hn;
			memcpy(m->head, h->str, hn);
			m->head_since_ms = now;
		}
		p->has_head = 1;
		p->head_wait_s = (double)(now - m->head_since_ms) / 1000.0;
	}
	freeReplyObject(rep);
}

/* Redis PING and the store check into m->ready / ready_why; the caller holds the lock. */
static void probe_ready(struct metrics_http *m)
{
	char err[500];
	redisReply *rep;
	int redis_ok;

	m->ready_why[0] = '\0';
	redis_bound(m);
	rep = rconn_cmd(&m->rc, "PING");
	redis_ok = rep && rep->type == REDIS_REPLY_STATUS;
	if (!redis_ok)
		snprintf(m->ready_why, sizeof(m->ready_why), "redis: %s",
			 rep && rep->type == REDIS_REPLY_ERROR ? rep->str
				: "unreachable (no answer within 500 ms)");
	freeReplyObject(rep);
	if (!m->ms) {
		m->ms = metadata_store_open(&m->store_cfg, err, sizeof(err));
		if (!m->ms)
			goto store_failed;
	}
	if (metadata_store_check(m->ms, err, sizeof(err)) != 0)
		goto store_failed;
	goto done;
store_failed:
	{
		size_t n = strlen(m->ready_why);
		snprintf(m->ready_why + n, sizeof(m->ready_why) - n, "%sstore (%s): %s",
			 n ? "; " : "", config_metadata_store(m->cfg), err);
	}
done:
	m->ready = m->ready_why[0] == '\0';
	m->ready_at_ms = util_monotonic_ms();
}

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *ctype,
			       const char *body, size_t len, int head_only)
{
	struct MHD_Response *r;
	enum MHD_Result rc;

	/* HEAD: the length of the GET's body, none sent (MHD leaves it out for HEAD) */
	(void)head_only;
	r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) != MHD_YES ||
	    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED &&
	    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") != MHD_YES) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

/* {"status":"ok"|"fail","checks":{...},"error":...} */
static enum MHD_Result json_status(struct MHD_Connection *c, unsigned status, const char *what,
				   const char *why, int head_only)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;
	enum MHD_Result rc = MHD_NO;

	if (o && cJSON_AddStringToObject(o, "status", status == MHD_HTTP_OK ? "ok" : "fail") &&
	    cJSON_AddStringToObject(o, "check", what) &&
	    (why && *why ? cJSON_AddStringToObject(o, "error", why) != NULL : 1))
		text = cJSON_PrintUnformatted(o);
	if (text)
		rc = respond(c, status, "application/json", text, strlen(text), head_only);
	cJSON_free(text);
	cJSON_Delete(o);
	return rc;
}

static enum MHD_Result serve_metrics(struct metrics_http *m, struct MHD_Connection *c,
				     int head_only)
{
	struct metrics_pool pool;
	struct dbuf b;
	enum MHD_Result rc;
	int held;

	pthread_mutex_lock(&m->lock); /* a short look at the cache */
	int fresh = m->pool_at_ms && util_monotonic_ms() - m->pool_at_ms < METRICS_HTTP_CACHE_MS;
	int have = m->pool_at_ms != 0;
	pool = m->pool;
	pthread_mutex_unlock(&m->lock);
	if (!fresh) {
		held = probe_lock(m, have) == 0;
		if (held) {
			if (!m->pool_at_ms || util_monotonic_ms() - m->pool_at_ms >=
			    METRICS_HTTP_CACHE_MS)
				scrape(m);
			pool = m->pool;
			pthread_mutex_unlock(&m->lock);
		} else if (!have) {
			memset(&pool, 0, sizeof(pool)); /* a first probe still running: Redis unknown */
		}
	}
	dbuf_init(&b, BODY_MAX);
	if (metrics_render(&b, &pool) != 0) {
		dbuf_free(&b);
		return json_status(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "metrics",
				   "the exposition passed its size cap", head_only);
	}
	rc = respond(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
		     b.data ? b.data : "", b.len, head_only);
	dbuf_free(&b);
	return rc;
}

static enum MHD_Result serve_ready(struct metrics_http *m, struct MHD_Connection *c,
				   int head_only)
{
	char why[sizeof(m->ready_why)];
	int ready, have;

	pthread_mutex_lock(&m->lock);
	have = m->ready_at_ms != 0;
	int fresh = have && util_monotonic_ms() - m->ready_at_ms < METRICS_HTTP_CACHE_MS;
	pthread_mutex_unlock(&m->lock);
	if (!fresh && probe_lock(m, have) == 0) {
		if (!m->ready_at_ms || util_monotonic_ms() - m->ready_at_ms >= METRICS_HTTP_CACHE_MS)
			probe_ready(m);
		pthread_mutex_unlock(&m->lock);
	}
	pthread_mutex_lock(&m->lock);
	have = m->ready_at_ms != 0;
	ready = m->ready;
	util_strlcpy(why, m->ready_why, sizeof(why));
	pthread_mutex_unlock(&m->lock);
	if (!have)
		return json_status(c, MHD_HTTP_SERVICE_UNAVAILABLE, "ready",
				   "the first readiness probe is still running", head_only);
	return json_status(c, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "ready", why,
			   head_only);
}

/* Alive: the supervisor's loop turned recently, or the process is waiting for Redis (a
 * reconnect attempt recently): restarting a worker does not bring Redis back. */
static enum MHD_Result serve_health(struct metrics_http *m, struct MHD_Connection *c,
				    int head_only)
{
	int64_t now = util_monotonic_ms(), tick = metrics_last_tick_ms();
	int64_t redis = metrics_last_redis_attempt_ms();
	long stale = METRICS_HTTP_HEALTH_STALE_MS;
	char why[200];

	if (m->cfg->http_timeout_ms + 15000 > stale) /* a credit probe may take that long */
		stale = m->cfg->http_timeout_ms + 15000;
	if (tick && now - tick < stale)
		return json_status(c, MHD_HTTP_OK, "alive", NULL, head_only);
	if (redis && now - redis < 10000)
		return json_status(c, MHD_HTTP_OK, "alive", "the supervisor is waiting for Redis",
				   head_only);
	if (!tick)
		snprintf(why, sizeof(why), "the supervisor loop has not started");
	else
		snprintf(why, sizeof(why), "the supervisor loop has not turned for %lld ms",
			 (long long)(now - tick));
	return json_status(c, MHD_HTTP_SERVICE_UNAVAILABLE, "alive", why, head_only);
}

enum MHD_Result metrics_http_serve(struct metrics_http *m, struct MHD_Connection *c,
				   const char *url, const char *method)
{
	int head_only = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;

	if (!head_only && strcmp(method, MHD_HTTP_METHOD_GET) != 0)
		return json_status(c, MHD_HTTP_METHOD_NOT_ALLOWED, url + 1,
				   "method not allowed: GET or HEAD", 0);
	if (strcmp(url, "/metrics") == 0)
		return serve_metrics(m, c, head_only);
	if (strcmp(url, "/readyz") == 0)
		return serve_ready(m, c, head_only);
	return serve_health(m, c, head_only);
}
