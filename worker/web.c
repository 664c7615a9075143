/* web.c — the operator's page and JSON API of web.h, on libmicrohttpd. */
#include "web.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cjson/cJSON.h>

#include "admin.h"
#include "crypto.h"
#include "job.h"
#include "limiter.h"
#include "log.h"
#include "queue.h"
#include "util.h"
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
	char account_id[17];
};

struct web_request {
	struct dbuf body;
	int refused; /* answered already (from the headers) */
};

int web_settings_ok(const struct config *cfg, char *err, size_t errlen)
{
	if (strcmp(cfg->admin_page, "on") == 0 && !*cfg->http_addr) {
		snprintf(err, errlen, "KIE_ADMIN_PAGE=on needs KIE_HTTP_ADDR (the page is served "
			 "by the worker's HTTP server)");
		return -1;
	}
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
	rconn_init(&w->rc, redis, 2000, stop, "web");
	queue_init(&w->q, &w->rc, cfg->redis_prefix, "web", cfg->record_ttl_s, cfg->results_max);
	w->q.dead_max = cfg->dead_max;
	if (*cfg->kie_api_token)
		limiter_account_id(cfg->kie_api_token, w->account_id);
	log_info(NULL, NULL, "operator page on %s%s/ (%s)", cfg->http_addr, WEB_PREFIX,
		 *cfg->admin_token ? "actions need KIE_ADMIN_TOKEN" : "read-only: no KIE_ADMIN_TOKEN");
	return w;
}

void web_stop(struct web *w)
{
	if (!w)
		return;
	rconn_close(&w->rc);
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

static const char *arg(struct MHD_Connection *c, const char *name)
{
	return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
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
	} else if (strcmp(what, "stats") == 0 || strcmp(what, "completions") == 0) {
		long limit = 24;
		if (strcmp(what, "completions") == 0 &&
		    admin_count_arg("limit", arg(c, "limit"), 24, 1, 200, &limit, err,
				    sizeof(err)) != 0)
			return error(c, MHD_HTTP_BAD_REQUEST, err);
		if (lock(w) != 0)
			return error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "busy; try again");
		if (strcmp(what, "stats") == 0) {
			res = admin_stats(&w->q, w->cfg->account_prefix, w->account_id, err,
					  sizeof(err));
			if (res)
				cJSON_AddBoolToObject(res, "actions", *w->cfg->admin_token != '\0');
		} else {
			res = admin_completions(&w->q, limit, err, sizeof(err));
		}
	} else {
		return error(c, MHD_HTTP_NOT_FOUND, "no such API (stats, dead, completions, job)");
	}
	pthread_mutex_unlock(&w->lock);
	if (!res)
		return error(c, MHD_HTTP_SERVICE_UNAVAILABLE, err);
	rc = answer_json(c, found ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND, res);
	cJSON_Delete(res);
	return rc;
}

/* Why an action request is refused from its headers (status in *status), or NULL. */
static const char *refuse_action(struct web *w, struct MHD_Connection *c, unsigned *status)
{
	const char *site = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
	const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
	const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
	const char *type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
	const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");

	*status = MHD_HTTP_FORBIDDEN;
	if (!*w->cfg->admin_token)
		return "actions are off: set KIE_ADMIN_TOKEN (or KIE_ADMIN_TOKEN_FILE) on the "
		       "worker to enable retry, purge, pause and resume";
	/* a browser says where a request comes from; a script (curl) says nothing */
	if (site && strcmp(site, "same-origin") != 0)
		return "cross-site request refused (Sec-Fetch-Site)";
	if (origin) {
		char own[600], own_tls[600];
		snprintf(own, sizeof(own), "http://%s", host ? host : "");
		snprintf(own_tls, sizeof(own_tls), "https://%s", host ? host : "");
		if (!host || (strcmp(origin, own) != 0 && strcmp(origin, own_tls) != 0))
			return "cross-site request refused (Origin is not this page's)";
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

static enum MHD_Result api_post(struct web *w, struct MHD_Connection *c, const char *what,
				const struct dbuf *body)
{
	cJSON *in = cJSON_ParseWithLength(body->data ? body->data : "", body->len), *res = NULL;
	char err[512], ip[64] = "?";
	enum MHD_Result rc;
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	struct admin_body b;
	const char *why;
	int unknown;

	/* every field checked, with its type, before anything is done (admin.h) */
	why = admin_body_parse(what, in, &b, &unknown);
	if (why) {
		cJSON_Delete(in);
		return error(c, unknown ? MHD_HTTP_NOT_FOUND : MHD_HTTP_BAD_REQUEST, why);
	}
	if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, ip,
			  sizeof(ip));
	if (strcmp(what, "dead/retry") == 0 || strcmp(what, "dead/purge") == 0) {
		int retry = strcmp(what, "dead/retry") == 0;
		if (lock(w) != 0) {
			cJSON_Delete(in);
			return error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "busy; try again");
		}
		res = retry ? admin_dead_retry(&w->q, &b.f, b.allow_uncertain, b.dry_run, err,
					       sizeof(err))
			    : admin_dead_purge(&w->q, &b.f, b.dry_run, err, sizeof(err));
		pthread_mutex_unlock(&w->lock);
		if (res && !b.dry_run)
			log_info(b.f.ref && job_id_valid(b.f.ref) ? b.f.ref : NULL, NULL,
				 "operator page (%s): dead %s: %.0f done, %.0f refused", ip,
				 retry ? "retry" : "purge",
				 cJSON_GetObjectItemCaseSensitive(res, "done")->valuedouble,
				 cJSON_GetObjectItemCaseSensitive(res, "refused")->valuedouble);
	} else { /* pause, resume */
		int pause = strcmp(what, "pause") == 0, done = 0, ok;
		char reason[300];
		snprintf(reason, sizeof(reason), "%s", b.reason ? b.reason : "paused from the "
			 "operator page");
		util_utf8_fix_end(reason);
		util_utf8_sanitize(reason);
		if (lock(w) != 0) {
			cJSON_Delete(in);
			return error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "busy; try again");
		}
		ok = pause ? queue_pause_set(&w->q, "operator", b.for_ms, reason, &done)
			   : queue_pause_clear(&w->q, NULL, &done);
		if (ok == 0) {
			res = admin_stats(&w->q, w->cfg->account_prefix, w->account_id, err,
					  sizeof(err));
			if (res)
				cJSON_AddBoolToObject(res, "changed", done);
		} else {
			snprintf(err, sizeof(err), "%s", w->q.err);
		}
		pthread_mutex_unlock(&w->lock);
		if (ok == 0)
			log_info(NULL, NULL, "operator page (%s): %s", ip,
				 pause ? "paused the pool" : "resumed the pool");
	}
	cJSON_Delete(in);
	if (!res)
		return error(c, MHD_HTTP_SERVICE_UNAVAILABLE, err);
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
		unsigned status;
		const char *why;
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
