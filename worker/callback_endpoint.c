/* callback_endpoint.c — the callback path of callback_endpoint.h. */
#include "callback_endpoint.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "core/crypto.h"
#include "core/json_strict.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "kie/job.h"
#include "kie/kie_client.h"
#include "lua_scripts.h"

#define FLUSH_EVERY_MS 1000  /* refusal counts go to <p>:stats at most once a second ... */
#define FLUSH_WAIT_MS 250    /* ... and wait at most this long for Redis */
#define SHOWN_MAX 128        /* bytes of a task id or method quoted in a log line */

/* The one Redis step of the endpoint is common/pool/lua/callback_push.lua: push an entry (or
 * refuse it: list full, signed pair seen already) and count, atomically. */
enum push_result { PUSHED, PUSH_FULL, PUSH_REPLAYED, PUSH_UNAVAILABLE };

struct callback_endpoint {
	const struct config *cfg;
	char key_callbacks[160];
	char key_stats[160];
	char key_seen[160];        /* <p>:callbacks:seen: (a pair's hash follows) */
	/* one Redis connection; MHD's threads take turns (pthread_mutex_timedlock, so a
	 * request waits for the lock and Redis together at most the Redis wait) */
	pthread_mutex_t redis_lock;
	struct rconn rc;
	int64_t next_flush_ms;     /* under redis_lock */
	int64_t next_err_log_ms;   /* under redis_lock */
	atomic_long refused_pending; /* refusals not yet added to <p>:stats callbacks_refused */
	struct log_every log;      /* one refusal line a second */
};

/* What one callback request carries between MHD's calls. */
struct callback_request {
	int answered;              /* refused from its headers: the body is not read */
	int too_large;             /* the body passed KIE_HTTP_BODY_MAX: the rest is read
				    * and dropped, then 413 */
	int has_job;
	char job_id[JOB_ID_MAX + 1];
	struct dbuf body;          /* capped at KIE_HTTP_BODY_MAX */
};

/* A copy of s fit for a log line: valid UTF-8, at most SHOWN_MAX bytes (whole
 * characters), control bytes as '?'. */
static const char *shown(const char *s, char out[SHOWN_MAX + 1])
{
	util_strlcpy(out, s ? s : "", SHOWN_MAX + 1);
	util_utf8_sanitize(out);
	util_utf8_cut(out, SHOWN_MAX);
	for (unsigned char *p = (unsigned char *)out; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			*p = '?';
	return out;
}

struct callback_endpoint *callback_endpoint_new(const struct config *cfg,
						const struct rconn_addr *redis,
						const volatile sig_atomic_t *stop)
{
	struct callback_endpoint *ep = util_xcalloc(1, sizeof(*ep));

	ep->cfg = cfg;
	snprintf(ep->key_callbacks, sizeof(ep->key_callbacks), "%s:callbacks", cfg->redis_prefix);
	snprintf(ep->key_stats, sizeof(ep->key_stats), "%s:stats", cfg->redis_prefix);
	snprintf(ep->key_seen, sizeof(ep->key_seen), "%s:callbacks:seen:", cfg->redis_prefix);
	pthread_mutex_init(&ep->redis_lock, NULL);
	atomic_init(&ep->refused_pending, 0);
	ep->log = (struct log_every)LOG_EVERY_INIT(1000);
	rconn_init(&ep->rc, redis, 1000, stop, "http");
	if (!*cfg->webhook_hmac_key)
		log_warn(NULL, NULL, "callback endpoint: no KIE_WEBHOOK_HMAC_KEY: unsigned "
			 "callbacks are accepted, each confirmed with recordInfo before it is "
			 "trusted. Set the key (KIE's webhook HMAC key, the production setting): "
			 "then only signed callbacks are taken and a replayed one is not");
	return ep;
}

enum MHD_Result callback_endpoint_reply(struct MHD_Connection *c, unsigned status,
					const char *msg, int close)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;
	struct MHD_Response *r = NULL;
	enum MHD_Result rc = MHD_NO;

	if (!o || !cJSON_AddNumberToObject(o, "code", status) ||
	    !cJSON_AddStringToObject(o, "msg", msg))
		goto out;
	text = cJSON_PrintUnformatted(o);
	if (!text)
		goto out;
	r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_COPY);
	if (!r || MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
					  "application/json") != MHD_YES)
		goto out;
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED &&
	    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "POST") != MHD_YES)
		goto out;
	/* MHD closes the connection after a response that says so (response.c, connection.c
	 * keepalive_possible) */
	if (close && MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close") != MHD_YES)
		goto out;
	rc = MHD_queue_response(c, status, r);
out:
	if (r)
		MHD_destroy_response(r);
	cJSON_free(text);
	cJSON_Delete(o);
	return rc;
}

/* One warn line per refused or failed request, at most one a second; the lines not
 * written are counted and the next line says how many. Never the key or the signature. */
static void log_refusal(struct callback_endpoint *ep, const char *client, unsigned status,
			const char *why, const char *job, const char *task)
{
	unsigned long quiet = 0;
	char t[SHOWN_MAX + 1];

	if (LOG_WARN < log_active_level || !log_every_take(&ep->log, &quiet))
		return;
	if (quiet)
		log_warn(job, task ? shown(task, t) : NULL, "callback endpoint: %u %s (from %s; "
			 "%lu more refused since the last such line)", status, why, client, quiet);
	else
		log_warn(job, task ? shown(task, t) : NULL, "callback endpoint: %u %s (from %s)",
			 status, why, client);
}

/* Sets the connection's timeouts so that a connect or a command ends by deadline. */
static void redis_timeouts(struct callback_endpoint *ep, int64_t deadline)
{
	int64_t left = deadline - util_monotonic_ms();
	if (left < 100)
		left = 100;
	if (left > 1000)
		left = 1000;
	ep->rc.timeout_ms = (long)left;
	ep->rc.deadline_ms = deadline;
	if (ep->rc.c && !ep->rc.c->err) {
		struct timeval tv = {(time_t)(left / 1000), (suseconds_t)((left % 1000) * 1000)};
		redisSetTimeout(ep->rc.c, tv);
	}
}

/* Runs callback_push.lua with entry (NULL: count only), refused, and seen_key (the
 * replay cache's key of a signed callback, or NULL); the caller holds redis_lock. */
static enum push_result run_push(struct callback_endpoint *ep, const char *entry,
				 const char *seen_key, long refused, int64_t deadline)
{
	char max[24], ref[24], ttl[24];
	const char *keys[3], *args[4];
	redisReply *rep;
	enum push_result res = PUSHED;

	snprintf(max, sizeof(max), "%ld", ep->cfg->callbacks_max);
	snprintf(ref, sizeof(ref), "%ld", refused);
	snprintf(ttl, sizeof(ttl), "%ld", 2 * ep->cfg->webhook_window_s * 1000);
	keys[0] = ep->key_callbacks; keys[1] = ep->key_stats; keys[2] = seen_key;
	args[0] = entry ? entry : ""; args[1] = max; args[2] = ref; args[3] = ttl;
	redis_timeouts(ep, deadline);
	/* a command whose reply was lost with the connection is sent again: the entry may
	 * then be pushed twice (a signed one is not: its pair is remembered), which the
	 * consumer handles as any duplicate callback */
	rep = script_run(&ep->rc, &lua_callback_push, 1, seen_key ? 3 : 2, keys,
			 seen_key ? 4 : 3, args, NULL);
	if (!rep)
		return PUSH_UNAVAILABLE;
	if (rep->type == REDIS_REPLY_ERROR) {
		int64_t now = util_monotonic_ms();
		if (now >= ep->next_err_log_ms) {
			log_error(NULL, NULL, "callback endpoint: Redis refused the push: %s", rep->str);
			ep->next_err_log_ms = now + 10000;
		}
		res = PUSH_UNAVAILABLE;
	} else if (rep->type == REDIS_REPLY_INTEGER && rep->integer == -1) {
		res = PUSH_FULL;
	} else if (rep->type == REDIS_REPLY_INTEGER && rep->integer == -2) {
		res = PUSH_REPLAYED;
	}
	freeReplyObject(rep);
	return res;
}

/* Adds the refusals counted so far to <p>:stats, at most once a second, when the
 * connection is free; waits for Redis at most FLUSH_WAIT_MS (what is not added stays
 * pending: the next accepted push or the stop carries it). */
static void flush_refusals(struct callback_endpoint *ep)
{
	int64_t now = util_monotonic_ms();
	long n;

	if (pthread_mutex_trylock(&ep->redis_lock) != 0)
		return;
	if (now >= ep->next_flush_ms && atomic_load(&ep->refused_pending) > 0) {
		ep->next_flush_ms = now + FLUSH_EVERY_MS;
		n = atomic_exchange(&ep->refused_pending, 0);
		if (run_push(ep, NULL, NULL, n, now + FLUSH_WAIT_MS) != PUSHED)
			atomic_fetch_add(&ep->refused_pending, n);
	}
	pthread_mutex_unlock(&ep->redis_lock);
}

static void count_refusal(struct callback_endpoint *ep)
{
	atomic_fetch_add(&ep->refused_pending, 1);
	flush_refusals(ep);
}

static enum MHD_Result refuse(struct callback_endpoint *ep, struct MHD_Connection *c,
			      const char *client, unsigned status, const char *why,
			      const char *job, const char *task, int counted, int close)
{
	enum MHD_Result rc = callback_endpoint_reply(c, status, why, close);
	log_refusal(ep, client, status, why, job, task);
	if (counted)
		count_refusal(ep);
	return rc;
}

enum MHD_Result callback_endpoint_refuse(struct callback_endpoint *ep,
					 struct MHD_Connection *c, const char *client,
					 unsigned status, const char *why, const char *logged,
					 int counted)
{
	enum MHD_Result rc;

	if (!logged)
		return refuse(ep, c, client, status, why, NULL, NULL, counted, 0);
	rc = callback_endpoint_reply(c, status, why, 0);
	log_refusal(ep, client, status, logged, NULL, NULL);
	if (counted)
		count_refusal(ep);
	return rc;
}

/* Pushes entry; waits for the lock and Redis at most CALLBACK_ENDPOINT_REDIS_WAIT_MS. */
static enum push_result push(struct callback_endpoint *ep, const char *entry,
			     const char *seen_key)
{
	int64_t deadline = util_monotonic_ms() + CALLBACK_ENDPOINT_REDIS_WAIT_MS;
	struct timespec until;
	enum push_result res;
	long refused;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += CALLBACK_ENDPOINT_REDIS_WAIT_MS / 1000;
	until.tv_nsec += (CALLBACK_ENDPOINT_REDIS_WAIT_MS % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	if (pthread_mutex_timedlock(&ep->redis_lock, &until) != 0)
		return PUSH_UNAVAILABLE; /* the connection is stuck on a Redis that does not answer */
	refused = atomic_exchange(&ep->refused_pending, 0);
	res = run_push(ep, entry, seen_key, refused, deadline);
	if (res == PUSH_UNAVAILABLE)
		atomic_fetch_add(&ep->refused_pending, refused);
	pthread_mutex_unlock(&ep->redis_lock);
	return res;
}

/* The entry docs/protocol.md section 9 describes. Returns a new string (cJSON_free) or
 * NULL when memory runs out. body is valid UTF-8 without NUL (json_strict_check). */
static char *entry_json(const char *job_id, const char *task_id, int verified,
			int64_t received_ms, const char *body)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;

	if (o && cJSON_AddNumberToObject(o, "v", 1) &&
	    (job_id ? cJSON_AddStringToObject(o, "jobId", job_id)
		    : cJSON_AddNullToObject(o, "jobId")) &&
	    cJSON_AddStringToObject(o, "taskId", task_id) &&
	    cJSON_AddBoolToObject(o, "verified", verified) &&
	    cJSON_AddNumberToObject(o, "receivedAt", (double)received_ms) &&
	    cJSON_AddStringToObject(o, "body", body))
		text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

/* The replay cache's key of a verified pair: <p>:callbacks:seen:<sha256 hex of
 * "<taskId>.<timestamp>">, into out[outlen]. */
static void seen_key(const struct callback_endpoint *ep, const char *task_id, const char *ts,
		     char *out, size_t outlen)
{
	size_t n = strlen(task_id), m = strlen(ts);
	char *msg = util_xcalloc(1, n + m + 2), hex[65];

	memcpy(msg, task_id, n);
	msg[n] = '.';
	memcpy(msg + n + 1, ts, m);
	crypto_sha256_hex(msg, n + m + 1, hex);
	free(msg);
	snprintf(out, outlen, "%s%s", ep->key_seen, hex);
}

/* The whole body is in: check it, verify it, push it, answer. */
static enum MHD_Result on_body(struct callback_endpoint *ep, struct MHD_Connection *c,
			       const char *client, struct callback_request *q)
{
	const struct config *cfg = ep->cfg;
	const char *body = q->body.data ? q->body.data : "";
	const char *job = q->has_job ? q->job_id : NULL;
	size_t len = q->body.len;
	struct kie_result res;
	struct kie_error kerr;
	char why[512], detail[400], t[SHOWN_MAX + 1], seen[256];
	char *entry = NULL;
	int verified = 0;
	enum push_result pushed;
	enum MHD_Result rc;

	memset(&res, 0, sizeof(res));
	/* strict first: the body goes into the entry byte for byte as a JSON string, which
	 * needs valid UTF-8 without NUL, and the consumer must read the task id we read (two
	 * "taskId" members would let two parsers disagree) */
	if (json_strict_check(body, len, NULL, detail, sizeof(detail)) != 0) {
		metrics_callback(METRICS_CB_BAD_BODY);
		snprintf(why, sizeof(why), "callback body is not strict JSON: %s", detail);
		return refuse(ep, c, client, MHD_HTTP_BAD_REQUEST, why, job, NULL, 1, 0);
	}
	if (kie_parse_callback(body, len, &res, &kerr) != 0) {
		metrics_callback(METRICS_CB_BAD_BODY);
		return refuse(ep, c, client, MHD_HTTP_BAD_REQUEST, kerr.message, job, NULL, 1, 0);
	}
	if (*cfg->webhook_hmac_key) {
		const char *ts = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							     "X-Webhook-Timestamp");
		const char *sig = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							      "X-Webhook-Signature");
		if (kie_webhook_verify(cfg->webhook_hmac_key, res.task_id, ts, sig,
				       util_now_ms() / 1000, cfg->webhook_window_s, why,
				       sizeof(why)) != 0) {
			metrics_callback(METRICS_CB_BAD_SIGNATURE);
			rc = refuse(ep, c, client, MHD_HTTP_UNAUTHORIZED, why, job, res.task_id, 1, 0);
			goto out;
		}
		verified = 1;
		seen_key(ep, res.task_id, ts, seen, sizeof(seen));
	}
	entry = entry_json(job, res.task_id, verified, util_now_ms(), body);
	if (!entry) {
		rc = MHD_NO;
		goto out;
	}
	pushed = push(ep, entry, verified ? seen : NULL);
	switch (pushed) {
	case PUSH_UNAVAILABLE:
		metrics_callback(METRICS_CB_UNAVAILABLE);
		log_refusal(ep, client, MHD_HTTP_SERVICE_UNAVAILABLE, "Redis did not take the "
			    "callback (unreachable for 2 s, or it refused the push)", job,
			    res.task_id);
		rc = callback_endpoint_reply(c, MHD_HTTP_SERVICE_UNAVAILABLE,
					     "Redis is unavailable; try again", 0);
		break;
	case PUSH_FULL:
		metrics_callback(METRICS_CB_LIST_FULL);
		snprintf(why, sizeof(why), "%s holds KIE_CALLBACKS_MAX (%ld) entries: not taken "
			 "(a flood, or no consumer); try again", ep->key_callbacks,
			 cfg->callbacks_max);
		log_refusal(ep, client, MHD_HTTP_SERVICE_UNAVAILABLE, why, job, res.task_id);
		rc = callback_endpoint_reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "the callbacks list "
					     "is full; try again", 0);
		break;
	case PUSH_REPLAYED:
		/* the signed pair was pushed already: KIE calling again, or a replay (perhaps
		 * with another ?jobId); either way there is nothing new to push */
		metrics_callback(METRICS_CB_REPLAYED);
		log_debug(job, shown(res.task_id, t), "signed callback seen already (same task "
			  "and timestamp): answered, not pushed");
		rc = callback_endpoint_reply(c, MHD_HTTP_OK, "success", 0);
		break;
	case PUSHED:
	default:
		log_debug(job, shown(res.task_id, t), "callback accepted (%s, %zu bytes)",
			  verified ? "signature verified" : "unverified: no KIE_WEBHOOK_HMAC_KEY",
			  len);
		metrics_callback(verified ? METRICS_CB_VERIFIED : METRICS_CB_UNVERIFIED);
		rc = callback_endpoint_reply(c, MHD_HTTP_OK, "success", 0);
		break;
	}
out:
	cJSON_free(entry);
	kie_result_free(&res);
	return rc;
}

struct job_args {
	int n;
	const char *value; /* the first one's, NULL for "?jobId" without '=' or for a value
			    * with a NUL in it (%00: the C string would say less) */
};

static enum MHD_Result count_job_args(void *cls, enum MHD_ValueKind kind, const char *key,
				      size_t key_size, const char *value, size_t value_size)
{
	struct job_args *a = cls;
	(void)kind;
	if (key && key_size == 5 && memcmp(key, "jobId", 5) == 0 && a->n++ == 0)
		a->value = value && strlen(value) == value_size ? value : NULL;
	return MHD_YES;
}

/* The headers are in: refuse what can be refused before reading a body (q->answered),
 * else keep what the body's checks need. */
static enum MHD_Result on_headers(struct callback_endpoint *ep, struct MHD_Connection *c,
				  const char *client, const char *method,
				  struct callback_request *q)
{
	const struct config *cfg = ep->cfg;
	struct job_args ja = {0, NULL};
	const char *cl;
	long long n;
	char why[200], p[SHOWN_MAX + 1];

	q->answered = 1;
	if (strcmp(method, MHD_HTTP_METHOD_POST) != 0) {
		snprintf(why, sizeof(why), "method %s not allowed: POST only", shown(method, p));
		return refuse(ep, c, client, MHD_HTTP_METHOD_NOT_ALLOWED, why, NULL, NULL, 0, 0);
	}
	MHD_get_connection_values_n(c, MHD_GET_ARGUMENT_KIND, count_job_args, &ja);
	if (ja.n > 1) {
		metrics_callback(METRICS_CB_BAD_JOB_ID);
		return refuse(ep, c, client, MHD_HTTP_BAD_REQUEST, "jobId is given more than once",
			      NULL, NULL, 1, 0);
	}
	if (ja.n == 1 && (!ja.value || !job_id_valid(ja.value))) {
		metrics_callback(METRICS_CB_BAD_JOB_ID);
		return refuse(ep, c, client, MHD_HTTP_BAD_REQUEST, "jobId is not a valid job id "
			      "([A-Za-z0-9._:-], 1 to 128 bytes)", NULL, NULL, 1, 0);
	}
	cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && util_parse_ll(cl, &n) == 0 && n > cfg->http_body_max) {
		snprintf(why, sizeof(why), "callback body of %lld bytes is over the %ld-byte limit",
			 n, cfg->http_body_max);
		metrics_callback(METRICS_CB_TOO_LARGE);
		return refuse(ep, c, client, MHD_HTTP_CONTENT_TOO_LARGE, why,
			      ja.n ? ja.value : NULL, NULL, 1, 0);
	}
	if (*cfg->webhook_hmac_key &&
	    (!MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Webhook-Timestamp") ||
	     !MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Webhook-Signature"))) {
		metrics_callback(METRICS_CB_NO_SIGNATURE);
		return refuse(ep, c, client, MHD_HTTP_UNAUTHORIZED, "missing X-Webhook-Timestamp "
			      "or X-Webhook-Signature", ja.n ? ja.value : NULL, NULL, 1, 0);
	}
	q->answered = 0;
	if (ja.n) {
		q->has_job = 1;
		util_strlcpy(q->job_id, ja.value, sizeof(q->job_id));
	}
	dbuf_init(&q->body, (size_t)cfg->http_body_max);
	return MHD_YES;
}

enum MHD_Result callback_endpoint_on_request(struct callback_endpoint *ep,
					     struct MHD_Connection *c, const char *client,
					     const char *method, const char *upload,
					     size_t *upload_size, struct callback_request **req)
{
	struct callback_request *q = *req;
	char why[200];

	if (!q) { /* MHD's first call: the headers are in, no body yet */
		q = *req = util_xcalloc(1, sizeof(*q));
		return on_headers(ep, c, client, method, q);
	}
	if (q->answered) {
		*upload_size = 0; /* answered from the headers: the body is not read */
		return MHD_YES;
	}
	if (*upload_size) {
		/* libmicrohttpd 0.9.75 cannot answer in the middle of an upload
		 * (MHD_queue_response takes a response only right after the headers or once
		 * the whole body is in: connection.c:5127-5130), so a body over the cap is
		 * read to its end and dropped, then answered 413 with Connection: close; the
		 * request deadline (KIE_HTTP_REQUEST_TIMEOUT_MS) bounds how long that takes */
		if (!q->too_large && dbuf_add(&q->body, upload, *upload_size) != 0) {
			q->too_large = 1;
			dbuf_free(&q->body);
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (q->too_large) {
		snprintf(why, sizeof(why), "callback body over the %ld-byte limit",
			 ep->cfg->http_body_max);
		metrics_callback(METRICS_CB_TOO_LARGE);
		return refuse(ep, c, client, MHD_HTTP_CONTENT_TOO_LARGE, why,
			      q->has_job ? q->job_id : NULL, NULL, 1, 1);
	}
	return on_body(ep, c, client, q);
}

void callback_request_free(struct callback_request *r)
{
	if (!r)
		return;
	dbuf_free(&r->body);
	free(r);
}

void callback_endpoint_free(struct callback_endpoint *ep)
{
	long n;

	if (!ep)
		return;
	n = atomic_exchange(&ep->refused_pending, 0);
	if (n > 0 && run_push(ep, NULL, NULL, n, util_monotonic_ms() + FLUSH_WAIT_MS) != PUSHED)
		log_warn(NULL, NULL, "callback endpoint: %ld refusal(s) not counted in %s "
			 "(Redis unavailable)", n, ep->key_stats);
	rconn_close(&ep->rc);
	pthread_mutex_destroy(&ep->redis_lock);
	free(ep);
}
