/* http_server.c — the callback endpoint of http_server.h, on libmicrohttpd. */
#include "http_server.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "job.h"
#include "json_strict.h"
#include "kie_client.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "lua_scripts.h"
#include "util.h"
#include "web.h"

#define LISTEN_BACKLOG SOMAXCONN /* connections past the limit wait here for a slot */
#define LOG_EVERY_MS 1000    /* at most one refusal line a second; the rest are counted */
#define FLUSH_EVERY_MS 1000  /* refusal counts go to <p>:stats at most once a second ... */
#define FLUSH_WAIT_MS 250    /* ... and wait at most this long for Redis */
#define SHOWN_MAX 128        /* bytes of a task id or path quoted in a log line */

/* The one Redis step of the endpoint is common/lua/callback_push.lua: push an entry and
 * count, atomically. */

struct http_server {
	const struct config *cfg;
	struct MHD_Daemon *d;
	struct web *web;           /* the operator page (KIE_ADMIN_PAGE=on), else NULL */
	char key_callbacks[160];
	char key_stats[160];
	/* one Redis connection; MHD's pool threads take turns (pthread_mutex_timedlock, so a
	 * request waits for the lock and Redis together at most HTTP_SERVER_REDIS_WAIT_MS) */
	pthread_mutex_t redis_lock;
	struct rconn rc;
	int64_t next_flush_ms;     /* under redis_lock */
	int64_t next_err_log_ms;   /* under redis_lock */
	atomic_long refused_pending; /* refusals not yet added to <p>:stats callbacks_refused */
	pthread_mutex_t log_lock;
	struct metrics_http *routes; /* /metrics, /healthz, /readyz (metrics_http.h) */
	int64_t next_log_ms;       /* under log_lock */
	unsigned long log_quiet;   /* under log_lock: refusals not logged since the last line */
};

/* What one callback request carries between MHD's calls (its con_cls). */
struct request {
	int64_t started_ms;        /* monotonic: when its headers were in */
	int has_job;
	char job_id[JOB_ID_MAX + 1];
	struct dbuf body;          /* capped at KIE_HTTP_BODY_MAX */
	int is_web;                /* one of the operator page's requests (web.c) */
	struct web_request *web;
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

static void client_ip(struct MHD_Connection *c, char *out, size_t outlen)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	util_strlcpy(out, "?", outlen);
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
			  (socklen_t)outlen);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
			  out, (socklen_t)outlen);
}

/* Queues {"code":status,"msg":msg} with Content-Type application/json (and Allow: POST
 * for a 405). MHD_NO (the connection is closed) when memory runs out. */
static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *msg)
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
static void log_refusal(struct http_server *s, struct MHD_Connection *c, unsigned status,
			const char *why, const char *job, const char *task)
{
	int64_t now = util_monotonic_ms();
	unsigned long quiet = 0;
	int now_log = 0;
	char ip[INET6_ADDRSTRLEN + 1], t[SHOWN_MAX + 1];

	pthread_mutex_lock(&s->log_lock);
	if (now >= s->next_log_ms) {
		now_log = 1;
		quiet = s->log_quiet;
		s->log_quiet = 0;
		s->next_log_ms = now + LOG_EVERY_MS;
	} else {
		s->log_quiet++;
	}
	pthread_mutex_unlock(&s->log_lock);
	if (!now_log || LOG_WARN < log_active_level)
		return;
	client_ip(c, ip, sizeof(ip));
	if (quiet)
		log_warn(job, task ? shown(task, t) : NULL, "callback endpoint: %u %s (from %s; "
			 "%lu more refused since the last such line)", status, why, ip, quiet);
	else
		log_warn(job, task ? shown(task, t) : NULL, "callback endpoint: %u %s (from %s)",
			 status, why, ip);
}

/* Sets the connection's timeouts so that a connect or a command ends by deadline. */
static void redis_timeouts(struct http_server *s, int64_t deadline)
{
	int64_t left = deadline - util_monotonic_ms();
	if (left < 100)
		left = 100;
	if (left > 1000)
		left = 1000;
	s->rc.timeout_ms = (long)left;
	s->rc.deadline_ms = deadline;
	if (s->rc.c && !s->rc.c->err) {
		struct timeval tv = {(time_t)(left / 1000), (suseconds_t)((left % 1000) * 1000)};
		redisSetTimeout(s->rc.c, tv);
	}
}

/* Runs callback_push.lua with entry (NULL: count only) and refused; the caller holds redis_lock.
 * Returns 0, -1 when Redis could not be reached by deadline, -2 when it answered with
 * an error (logged at most once per 10 s). */
static int run_push(struct http_server *s, const char *entry, long refused, int64_t deadline)
{
	char max[24], ref[24];
	const char *keys[2], *args[3];
	redisReply *rep;
	int rc = 0;

	snprintf(max, sizeof(max), "%d", HTTP_SERVER_CALLBACKS_MAX);
	snprintf(ref, sizeof(ref), "%ld", refused);
	keys[0] = s->key_callbacks; keys[1] = s->key_stats;
	args[0] = entry ? entry : ""; args[1] = max; args[2] = ref;
	redis_timeouts(s, deadline);
	/* a command whose reply was lost with the connection is sent again: the entry may
	 * then be pushed twice, which the consumer handles as any duplicate callback */
	rep = script_run(&s->rc, &lua_callback_push, 1, 2, keys, 3, args, NULL);
	if (!rep)
		return -1;
	if (rep->type == REDIS_REPLY_ERROR) {
		int64_t now = util_monotonic_ms();
		if (now >= s->next_err_log_ms) {
			log_error(NULL, NULL, "callback endpoint: Redis refused the push: %s", rep->str);
			s->next_err_log_ms = now + 10000;
		}
		rc = -2;
	}
	freeReplyObject(rep);
	return rc;
}

/* Adds the refusals counted so far to <p>:stats, at most once a second, when the
 * connection is free; waits for Redis at most FLUSH_WAIT_MS (what is not added stays
 * pending: the next accepted push or the stop carries it). */
static void flush_refusals(struct http_server *s)
{
	int64_t now = util_monotonic_ms();
	long n;

	if (pthread_mutex_trylock(&s->redis_lock) != 0)
		return;
	if (now >= s->next_flush_ms && atomic_load(&s->refused_pending) > 0) {
		s->next_flush_ms = now + FLUSH_EVERY_MS;
		n = atomic_exchange(&s->refused_pending, 0);
		if (run_push(s, NULL, n, now + FLUSH_WAIT_MS) != 0)
			atomic_fetch_add(&s->refused_pending, n);
	}
	pthread_mutex_unlock(&s->redis_lock);
}

/* Refuses a request: answers status {"code","msg":why}, logs it (rate-limited) and, for
 * a callback (a POST to the path), counts it in callbacks_refused. */
static enum MHD_Result refuse(struct http_server *s, struct MHD_Connection *c, unsigned status,
			      const char *why, const char *job, const char *task, int counted)
{
	enum MHD_Result rc = reply(c, status, why);
	log_refusal(s, c, status, why, job, task);
	if (counted) {
		atomic_fetch_add(&s->refused_pending, 1);
		flush_refusals(s);
	}
	return rc;
}

/* Refuses a callback whose body is still coming: MHD cannot answer in the middle of an
 * upload, so the connection is closed (a body announced by Content-Length is refused
 * before it is read, with a 413). */
static enum MHD_Result drop(struct http_server *s, struct MHD_Connection *c, unsigned status,
			    const char *why, const struct request *q)
{
	log_refusal(s, c, status, why, q->has_job ? q->job_id : NULL, NULL);
	atomic_fetch_add(&s->refused_pending, 1);
	flush_refusals(s);
	return MHD_NO;
}

/* Pushes entry; 0, or -1 when Redis did not take it within HTTP_SERVER_REDIS_WAIT_MS. */
static int push(struct http_server *s, const char *entry)
{
	int64_t deadline = util_monotonic_ms() + HTTP_SERVER_REDIS_WAIT_MS;
	struct timespec until;
	long refused;
	int rc;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += HTTP_SERVER_REDIS_WAIT_MS / 1000;
	until.tv_nsec += (HTTP_SERVER_REDIS_WAIT_MS % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	if (pthread_mutex_timedlock(&s->redis_lock, &until) != 0)
		return -1; /* the connection is stuck on a Redis that does not answer */
	refused = atomic_exchange(&s->refused_pending, 0);
	rc = run_push(s, entry, refused, deadline);
	if (rc != 0)
		atomic_fetch_add(&s->refused_pending, refused);
	pthread_mutex_unlock(&s->redis_lock);
	return rc;
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

/* The whole body is in: check it, verify it, push it, answer. */
static enum MHD_Result on_body(struct http_server *s, struct MHD_Connection *c,
			       struct request *q)
{
	const struct config *cfg = s->cfg;
	const char *body = q->body.data ? q->body.data : "";
	const char *job = q->has_job ? q->job_id : NULL;
	size_t len = q->body.len;
	struct kie_result res;
	struct kie_error kerr;
	char why[512], detail[400], t[SHOWN_MAX + 1];
	char *entry = NULL;
	int verified = 0;
	enum MHD_Result rc;

	memset(&res, 0, sizeof(res));
	/* strict first: the body goes into the entry byte for byte as a JSON string, which
	 * needs valid UTF-8 without NUL, and the consumer must read the task id we read (two
	 * "taskId" members would let two parsers disagree) */
	if (json_strict_check(body, len, NULL, detail, sizeof(detail)) != 0) {
		metrics_callback(METRICS_CB_BAD_BODY);
		snprintf(why, sizeof(why), "callback body is not strict JSON: %s", detail);
		return refuse(s, c, MHD_HTTP_BAD_REQUEST, why, job, NULL, 1);
	}
	if (kie_parse_callback(body, len, &res, &kerr) != 0) {
		metrics_callback(METRICS_CB_BAD_BODY);
		return refuse(s, c, MHD_HTTP_BAD_REQUEST, kerr.message, job, NULL, 1);
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
			rc = refuse(s, c, MHD_HTTP_UNAUTHORIZED, why, job, res.task_id, 1);
			goto out;
		}
		verified = 1;
	}
	entry = entry_json(job, res.task_id, verified, util_now_ms(), body);
	if (!entry) {
		rc = MHD_NO;
		goto out;
	}
	if (push(s, entry) != 0) {
		metrics_callback(METRICS_CB_UNAVAILABLE);
		log_refusal(s, c, MHD_HTTP_SERVICE_UNAVAILABLE, "Redis did not take the callback "
			    "(unreachable for 2 s, or it refused the push)", job, res.task_id);
		rc = reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "Redis is unavailable; try again");
		goto out;
	}
	log_debug(job, shown(res.task_id, t), "callback accepted (%s, %zu bytes)",
		  verified ? "signature verified" : "unverified: no KIE_WEBHOOK_HMAC_KEY", len);
	metrics_callback(verified ? METRICS_CB_VERIFIED : METRICS_CB_UNVERIFIED);
	rc = reply(c, MHD_HTTP_OK, "success");
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
	if (key && key_size == 5 && memcmp(key, "jobId", 5) == 0 && a->n++ == 0)
		a->value = value && strlen(value) == value_size ? value : NULL;
	return MHD_YES;
}

/* The headers are in: refuse what can be refused before reading a body, else set up the
 * request's state. */
static enum MHD_Result on_headers(struct http_server *s, struct MHD_Connection *c,
				  const char *url, const char *method, void **con_cls)
{
	const struct config *cfg = s->cfg;
	struct job_args ja = {0, NULL};
	struct request *q;
	const char *cl;
	long long n;
	char why[200], p[SHOWN_MAX + 1];

	if (strcmp(url, cfg->callback_path) != 0) {
		/* the operator's routes; the callback path wins if it names one of them */
		if (metrics_http_handles(url))
			return metrics_http_serve(s->routes, c, url, method);
		return refuse(s, c, MHD_HTTP_NOT_FOUND, "not found", NULL, NULL, 0);
	}
	if (strcmp(method, MHD_HTTP_METHOD_POST) != 0) {
		snprintf(why, sizeof(why), "method %s not allowed: POST only", shown(method, p));
		return refuse(s, c, MHD_HTTP_METHOD_NOT_ALLOWED, why, NULL, NULL, 0);
	}
	MHD_get_connection_values_n(c, MHD_GET_ARGUMENT_KIND, count_job_args, &ja);
	if (ja.n > 1) {
		metrics_callback(METRICS_CB_BAD_JOB_ID);
		return refuse(s, c, MHD_HTTP_BAD_REQUEST, "jobId is given more than once", NULL,
			      NULL, 1);
	}
	if (ja.n == 1 && (!ja.value || !job_id_valid(ja.value))) {
		metrics_callback(METRICS_CB_BAD_JOB_ID);
		return refuse(s, c, MHD_HTTP_BAD_REQUEST, "jobId is not a valid job id "
			      "([A-Za-z0-9._:-], 1 to 128 bytes)", NULL, NULL, 1);
	}
	cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && util_parse_ll(cl, &n) == 0 && n > cfg->http_body_max) {
		snprintf(why, sizeof(why), "callback body of %lld bytes is over the %ld-byte limit",
			 n, cfg->http_body_max);
		metrics_callback(METRICS_CB_TOO_LARGE);
		return refuse(s, c, MHD_HTTP_CONTENT_TOO_LARGE, why, ja.n ? ja.value : NULL, NULL, 1);
	}
	if (*cfg->webhook_hmac_key &&
	    (!MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Webhook-Timestamp") ||
	     !MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Webhook-Signature"))) {
		metrics_callback(METRICS_CB_NO_SIGNATURE);
		return refuse(s, c, MHD_HTTP_UNAUTHORIZED, "missing X-Webhook-Timestamp or "
			      "X-Webhook-Signature", ja.n ? ja.value : NULL, NULL, 1);
	}
	q = calloc(1, sizeof(*q));
	if (!q)
		return MHD_NO;
	q->started_ms = util_monotonic_ms();
	if (ja.n) {
		q->has_job = 1;
		util_strlcpy(q->job_id, ja.value, sizeof(q->job_id));
	}
	dbuf_init(&q->body, (size_t)cfg->http_body_max);
	*con_cls = q;
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct http_server *s = cls;
	struct request *q = *con_cls;
	char why[160];

	if (!q && s->web && strcmp(url, s->cfg->callback_path) != 0 && web_wants(url)) {
		q = util_xcalloc(1, sizeof(*q));
		q->is_web = 1;
		*con_cls = q;
	}
	if (q && q->is_web)
		return web_on_request(s->web, c, url, method, upload, upload_size, &q->web);
	if (!q) {
		enum MHD_Result rc = on_headers(s, c, url, method, con_cls);
		q = *con_cls;
		if (rc != MHD_YES || !q || *upload_size == 0)
			return rc; /* MHD's first call carries no body: this is the usual way out */
	}
	if (*upload_size) {
		if (util_monotonic_ms() - q->started_ms > s->cfg->http_conn_timeout_s * 1000) {
			snprintf(why, sizeof(why), "callback body not received within %ld s "
				 "(KIE_HTTP_CONN_TIMEOUT_S): connection closed",
				 s->cfg->http_conn_timeout_s);
			metrics_callback(METRICS_CB_TOO_SLOW);
			return drop(s, c, MHD_HTTP_REQUEST_TIMEOUT, why, q);
		}
		if (dbuf_add(&q->body, upload, *upload_size) != 0) {
			snprintf(why, sizeof(why), "callback body over the %ld-byte limit: "
				 "connection closed", s->cfg->http_body_max);
			metrics_callback(METRICS_CB_TOO_LARGE);
			return drop(s, c, MHD_HTTP_CONTENT_TOO_LARGE, why, q);
		}
		*upload_size = 0;
		return MHD_YES;
	}
	return on_body(s, c, q);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct request *q = *con_cls;
	if (q) {
		web_request_free(q->web);
		dbuf_free(&q->body);
		free(q);
		*con_cls = NULL;
	}
}

/* libmicrohttpd's own messages, at debug only (MHD_USE_ERROR_LOG is off otherwise). */
__attribute__((format(printf, 2, 0)))
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_debug(NULL, NULL, "libmicrohttpd: %s", msg);
}

/* A listening socket on a; -1 with err naming KIE_HTTP_ADDR. */
static int listen_on(const struct util_listen_addr *a, const char *shown_addr, char *err,
		     size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (a->ipv6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)a->port);
		inet_pton(AF_INET6, a->host, &s6->sin6_addr);
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)a->port);
		inet_pton(AF_INET, a->host, &s4->sin_addr);
		len = sizeof(*s4);
	}
	fd = socket(a->ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "KIE_HTTP_ADDR: cannot listen on %s: %s", shown_addr,
			 strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (a->ipv6) /* [::]:port is IPv6 only, whatever net.ipv6.bindv6only says */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
		snprintf(err, errlen, "KIE_HTTP_ADDR: cannot listen on %s: %s", shown_addr,
			 strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

struct http_server *http_server_start(const struct config *cfg, const struct rconn_addr *redis,
				      const volatile sig_atomic_t *stop, char *err,
				      size_t errlen)
{
	struct util_listen_addr a;
	struct http_server *s;
	char why[256];
	unsigned flags, conns, per_ip, threads;
	int fd;

	if (util_parse_listen_addr(cfg->http_addr, &a, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "KIE_HTTP_ADDR: %s", why);
		return NULL;
	}
	fd = listen_on(&a, cfg->http_addr, err, errlen);
	if (fd < 0)
		return NULL;
	s = util_xcalloc(1, sizeof(*s));
	s->cfg = cfg;
	if (strcmp(cfg->admin_page, "on") == 0 && !(s->web = web_start(cfg, redis, stop, err, errlen))) {
		close(fd);
		free(s);
		return NULL;
	}
	snprintf(s->key_callbacks, sizeof(s->key_callbacks), "%s:callbacks", cfg->redis_prefix);
	snprintf(s->key_stats, sizeof(s->key_stats), "%s:stats", cfg->redis_prefix);
	pthread_mutex_init(&s->redis_lock, NULL);
	pthread_mutex_init(&s->log_lock, NULL);
	atomic_init(&s->refused_pending, 0);
	rconn_init(&s->rc, redis, 1000, stop, "http");
	s->routes = metrics_http_new(cfg, redis, stop);

	conns = (unsigned)cfg->http_max_connections;
	per_ip = conns < HTTP_SERVER_PER_IP_CONNECTIONS ? conns : HTTP_SERVER_PER_IP_CONNECTIONS;
	threads = conns < HTTP_SERVER_THREADS ? conns : HTTP_SERVER_THREADS;
	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;
	if (a.ipv6)
		flags |= MHD_USE_IPv6;
	if (log_active_level <= LOG_DEBUG)
		flags |= MHD_USE_ERROR_LOG;
	s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
				MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, /* first: MHD wants it so */
				MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
				MHD_OPTION_THREAD_POOL_SIZE, threads,
				MHD_OPTION_CONNECTION_LIMIT, conns,
				MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->http_conn_timeout_s,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
				MHD_OPTION_END);
	if (!s->d) {
		snprintf(err, errlen, "KIE_HTTP_ADDR: libmicrohttpd could not start on %s",
			 cfg->http_addr);
		close(fd);
		web_stop(s->web);
		metrics_http_free(s->routes);
		pthread_mutex_destroy(&s->redis_lock);
		pthread_mutex_destroy(&s->log_lock);
		free(s);
		return NULL;
	}
	log_info(NULL, NULL, "callback endpoint listening on %s%s (POST %s, body at most %ld "
		 "bytes, %u connections, %s; GET /metrics, /healthz, /readyz)", cfg->http_addr,
		 a.ipv6 || *cfg->http_addr != ':' ? "" : " (every IPv4 interface)",
		 cfg->callback_path, cfg->http_body_max, conns,
		 *cfg->webhook_hmac_key ? "signatures required" : "unsigned callbacks accepted "
		 "as unverified");
	return s;
}

void http_server_stop(struct http_server *s)
{
	long n;

	if (!s)
		return;
	MHD_stop_daemon(s->d); /* waits for the requests being handled */
	n = atomic_exchange(&s->refused_pending, 0);
	if (n > 0 && run_push(s, NULL, n, util_monotonic_ms() + FLUSH_WAIT_MS) != 0)
		log_warn(NULL, NULL, "callback endpoint: %ld refusal(s) not counted in %s "
			 "(Redis unavailable)", n, s->key_stats);
	rconn_close(&s->rc);
	web_stop(s->web);
	metrics_http_free(s->routes);
	pthread_mutex_destroy(&s->redis_lock);
	pthread_mutex_destroy(&s->log_lock);
	free(s);
}
