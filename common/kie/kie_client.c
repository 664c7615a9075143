/* kie_client.c — builds KIE requests, classifies failures and parses every response
 * shape kie-api.md lists (msg/message, resultJson as string, fail/failed, ...). */
#include "kie/kie_client.h"

#include "config/config.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "core/crypto.h"
#include "core/metrics.h"
#include "core/util.h"

/* The model and its input field mapping live here and nowhere else. */
struct model_map {
	const char *model;
	const char *prompt_field;
	const char *images_field;
	const char *ratio_field;
	const char *format_field;
	int min_images, max_images;
};

static const struct model_map models[] = {
	{"google/nano-banana-edit", "prompt", "image_urls", "aspect_ratio", "output_format", 1, 10},
	{"google/nano-banana", "prompt", NULL, "aspect_ratio", "output_format", 0, 0},
	{"google/nano-banana-pro", "prompt", "image_input", "aspect_ratio", "output_format", 0, 8},
};

#define KIE_FALLBACK_MODEL "google/nano-banana-edit"

/* Unknown models get nano-banana-edit's mapping (models[0]) and its rules; KIE answers
 * 404 if it does not know them. */
static const struct model_map *model_lookup(const char *model)
{
	for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++)
		if (strcmp(models[i].model, model) == 0)
			return &models[i];
	return &models[0];
}

const char *kie_model_resolve(const char *model, const char *default_model)
{
	if (model && *model)
		return model;
	if (default_model && *default_model)
		return default_model;
	return KIE_FALLBACK_MODEL;
}

static const char *const ratios[] = {"1:1", "9:16", "16:9", "3:4", "4:3", "3:2",
				     "2:3", "5:4", "4:5", "21:9", "auto", NULL};

const char *kie_err_class_str(enum kie_err_class c)
{
	switch (c) {
	case KIE_ERR_NONE: return "none";
	case KIE_ERR_RETRYABLE: return "retryable";
	case KIE_ERR_PERMANENT: return "permanent";
	case KIE_ERR_ACCOUNT: return "account";
	case KIE_ERR_AMBIGUOUS: return "ambiguous";
	}
	return "?";
}

/* The class of an outcome nobody can read: createTask may have created a task. */
static enum kie_err_class unknown_outcome(enum kie_op op)
{
	return op == KIE_OP_CREATE ? KIE_ERR_AMBIGUOUS : KIE_ERR_RETRYABLE;
}

/* KIE's body codes (kie-api.md's table). */
static enum kie_err_class classify_code(enum kie_op op, int code)
{
	switch (code) {
	case 200:
		return KIE_ERR_NONE;
	case 401: case 402: case 433:
		return KIE_ERR_ACCOUNT;
	case 429: case 455:
		return KIE_ERR_RETRYABLE;
	case 400: case 404: case 408: case 422: case 451: case 501: case 505:
		return KIE_ERR_PERMANENT;
	default:
		break;
	}
	if (code >= 500)
		return unknown_outcome(op);
	if (code >= 400)
		return KIE_ERR_PERMANENT;
	if (code >= 200 && code < 300)
		return KIE_ERR_NONE;
	return unknown_outcome(op);
}

/* HTTP statuses, with HTTP's meanings: 408 is a request timeout and 501/505 are server
 * errors here, not KIE's "no result", "generation failed" and "feature disabled". */
static enum kie_err_class classify_status(enum kie_op op, long status)
{
	if (status >= 200 && status <= 299)
		return KIE_ERR_NONE;
	if (status == 401 || status == 402)
		return KIE_ERR_ACCOUNT;
	if (status == 429)
		return KIE_ERR_RETRYABLE;
	if (status >= 400 && status <= 499 && status != 408)
		return KIE_ERR_PERMANENT;
	return unknown_outcome(op); /* 5xx, 408, 1xx, 3xx */
}

enum kie_err_class kie_classify(enum kie_op op, enum http_transport t, long http_status, int code)
{
	if (t == HTTP_TRANSPORT_NOT_SENT)
		return KIE_ERR_RETRYABLE;
	if (t != HTTP_TRANSPORT_OK) /* sent, no usable answer */
		return unknown_outcome(op);
	return code ? classify_code(op, code) : classify_status(op, http_status);
}

const char *kie_task_state_str(enum kie_task_state s)
{
	switch (s) {
	case KIE_TASK_UNKNOWN: return "unknown";
	case KIE_TASK_WAITING: return "waiting";
	case KIE_TASK_QUEUING: return "queuing";
	case KIE_TASK_GENERATING: return "generating";
	case KIE_TASK_SUCCESS: return "success";
	case KIE_TASK_FAIL: return "fail";
	}
	return "?";
}

enum kie_task_state kie_task_state_parse(const char *s)
{
	if (!s) return KIE_TASK_UNKNOWN;
	if (strcmp(s, "waiting") == 0) return KIE_TASK_WAITING;
	if (strcmp(s, "queuing") == 0) return KIE_TASK_QUEUING;
	if (strcmp(s, "generating") == 0) return KIE_TASK_GENERATING;
	if (strcmp(s, "success") == 0) return KIE_TASK_SUCCESS;
	if (strcmp(s, "fail") == 0 || strcmp(s, "failed") == 0) return KIE_TASK_FAIL;
	return KIE_TASK_UNKNOWN;
}

int kie_task_state_final(enum kie_task_state s)
{
	return s == KIE_TASK_SUCCESS || s == KIE_TASK_FAIL;
}

void kie_result_free(struct kie_result *r)
{
	if (!r)
		return;
	free(r->task_id);
	free(r->model);
	for (size_t i = 0; i < r->n_results; i++)
		free(r->result_urls[i]);
	free(r->result_urls);
	free(r->fail_code);
	free(r->error);
	free(r->param);
	memset(r, 0, sizeof(*r));
}

static void set_err(struct kie_error *err, enum kie_err_class cls, enum http_transport t,
		    long http_status, int code, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

static void set_err(struct kie_error *err, enum kie_err_class cls, enum http_transport t,
		    long http_status, int code, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!err)
		return;
	err->cls = cls;
	err->transport = t;
	err->http_status = http_status;
	err->code = code;
	va_start(ap, fmt);
	n = vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(err->message)) { /* cut: again in full, then at a boundary */
		char *full = util_xmalloc((size_t)n + 1);
		va_start(ap, fmt);
		vsnprintf(full, (size_t)n + 1, fmt, ap);
		va_end(ap);
		util_utf8_sanitize(full);
		util_utf8_cut(full, sizeof(err->message) - 1);
		util_strlcpy(err->message, full, sizeof(err->message));
		free(full);
	}
	/* what a message quotes (a body's msg, a ratio from a job) may not be UTF-8 */
	util_utf8_sanitize(err->message);
}

/* Caps for text taken from a KIE body into a result (bytes, cut at a code point). */
#define KIE_TEXT_MAX_BYTES 1024 /* failMsg, error */
#define KIE_SHORT_MAX_BYTES 200 /* model, failCode */
#define KIE_MSG_MAX_BYTES 300   /* a body's msg quoted in an error message */

/* A copy of s that is valid UTF-8 (bad bytes become '?') and at most max_bytes long.
 * NULL in, NULL out. Caller frees. */
static char *dup_clean(const char *s, size_t max_bytes)
{
	char *d = util_strdup(s);
	if (d) {
		util_utf8_sanitize(d);
		util_utf8_cut(d, max_bytes);
	}
	return d;
}

static void clear_err(struct kie_error *err)
{
	if (err)
		memset(err, 0, sizeof(*err));
}

/* 1 when s is valid UTF-8 without control characters (C0 and DEL). */
static int is_clean_text(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return util_utf8_len(s, strlen(s)) >= 0;
}

static void escape_bytes(const char *s, char *out, size_t cap);

static int is_http_url(const char *s)
{
	return s && (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0) &&
	       strlen(s) > 8 && strlen(s) <= 2048 && is_clean_text(s);
}

int kie_model_name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > KIE_MODEL_MAX_BYTES)
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f)
			return 0;
	return 1;
}

int kie_validate_request(const struct kie_task_request *req, struct kie_error *err)
{
	return kie_validate_request_for(req, KIE_FALLBACK_MODEL, err);
}

int kie_validate_request_for(const struct kie_task_request *req, const char *default_model,
			     struct kie_error *err)
{
	const char *model = kie_model_resolve(req->model, default_model);
	const struct model_map *m = model_lookup(model);
	long chars;

	clear_err(err);
	if (!kie_model_name_valid(model)) {
		char shown[128];
		escape_bytes(model, shown, sizeof(shown));
		set_err(err, KIE_ERR_PERMANENT, HTTP_TRANSPORT_NOT_SENT, 0, 0,
			"model \"%s\" is not a model name (printable ASCII without spaces, at "
			"most %d bytes)", shown, KIE_MODEL_MAX_BYTES);
		return -1;
	}
	if (!req->prompt || !*req->prompt) {
		set_err(err, KIE_ERR_PERMANENT, HTTP_TRANSPORT_NOT_SENT, 0, 0,
			"prompt is empty: KIE requires a prompt");
		return -1;
	}
	chars = util_utf8_len(req->prompt, strlen(req->prompt));
	if (chars < 0) {
		set_err(err, KIE_ERR_PERMANENT, HTTP_TRANSPORT_NOT_SENT, 0, 0,
			"prompt is not valid UTF-8");
		return -1;
	}
	if (chars > KIE_PROMPT_MAX_CHARS) {
		set_err(err, KIE_ERR_PERMANENT, HTTP_TRANSPORT_NOT_SENT, 0, 0,
			"prompt is %ld characters; KIE accepts at most %d", chars,
			KIE_PROMPT_MAX_CHARS);
		return -1;
	}
	if (!m->images_field && req->n_images) { /* they would be dropped silently */
		set_err(err, KIE_ERR_PERMANENT, HTTP_TRANSPORT_NOT_SENT, 0, 0,
			"%s takes no reference images (%zu given)", model, req->n_images);
		return -1;
	}
	if (req->n_images < (size_t)m->min_images || req->n_images > (size_t)m->max_images) {
		set_err(err, KIE_ERR_PERMANENT, HTTP_TRANSPORT_NOT_SENT, 0, 0,
			"%zu image URLs given; %s takes %d to %d", req->n_images, model,
			m->min_images, m->max_images);
		return -1;
	}
	for (size_t i = 0; i < req->n_images; i++) {
		if (!req->image_urls || !is_http_url(req->image_urls[i])) {
			set_err(err, KIE_ERR_PERMANENT, HTTP_TRANSPORT_NOT_SENT, 0, 0,
				"image URL %zu is not an http(s) URL of at most 2048 bytes of "
				"UTF-8 without control characters (KIE takes URLs, never file "
				"bytes)", i + 1);
			return -1;
		}
	}
	if (req->ratio) {
		int ok = 0;
		for (const char *const *r = ratios; *r; r++)
			ok |= strcmp(*r, req->ratio) == 0;
		if (!ok) {
			char shown[64];
			escape_bytes(req->ratio, shown, sizeof(shown));
			set_err(err, KIE_ERR_PERMANENT, HTTP_TRANSPORT_NOT_SENT, 0, 0,
				"ratio \"%s\" is not one of 1:1 9:16 16:9 3:4 4:3 3:2 2:3 5:4 "
				"4:5 21:9 auto", shown);
			return -1;
		}
	}
	if (req->output_format && strcmp(req->output_format, "png") != 0 &&
	    strcmp(req->output_format, "jpeg") != 0) {
		char shown[64];
		escape_bytes(req->output_format, shown, sizeof(shown));
		set_err(err, KIE_ERR_PERMANENT, HTTP_TRANSPORT_NOT_SENT, 0, 0,
			"output format \"%s\" is not png or jpeg", shown);
		return -1;
	}
	if (req->callback_url && *req->callback_url && !is_http_url(req->callback_url)) {
		set_err(err, KIE_ERR_PERMANENT, HTTP_TRANSPORT_NOT_SENT, 0, 0,
			"callback URL is not an http(s) URL of at most 2048 bytes of UTF-8 "
			"without control characters");
		return -1;
	}
	return 0;
}

char *kie_build_create_body(const struct kie_task_request *req, const char *default_model,
			    struct kie_error *err)
{
	const char *model = kie_model_resolve(req->model, default_model);
	const struct model_map *m = model_lookup(model);
	cJSON *root = NULL, *input;
	char *out = NULL;

	if (kie_validate_request_for(req, default_model, err) != 0)
		return NULL;
	root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "model", model);
	if (req->callback_url && *req->callback_url)
		cJSON_AddStringToObject(root, "callBackUrl", req->callback_url);
	input = cJSON_AddObjectToObject(root, "input");
	cJSON_AddStringToObject(input, m->prompt_field, req->prompt);
	if (m->images_field && req->n_images) {
		cJSON *arr = cJSON_AddArrayToObject(input, m->images_field);
		for (size_t i = 0; i < req->n_images; i++)
			cJSON_AddItemToArray(arr, cJSON_CreateString(req->image_urls[i]));
	}
	cJSON_AddStringToObject(input, m->format_field,
				req->output_format ? req->output_format : KIE_DEFAULT_FORMAT);
	cJSON_AddStringToObject(input, m->ratio_field, req->ratio ? req->ratio : KIE_DEFAULT_RATIO);
	out = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return out;
}

/* 1 when a query parameter (its bytes up to '&') is named jobId once decoded, as the
 * endpoint's HTTP server decodes names ("job%49d" and "jobId" are one name there). */
static int is_job_id_param(const char *kv, size_t len)
{
	size_t n = 0;
	char name[16];

	for (size_t i = 0; i < len && kv[i] != '='; i++) {
		char c = kv[i];
		if (c == '%' && i + 2 < len && isxdigit((unsigned char)kv[i + 1]) &&
		    isxdigit((unsigned char)kv[i + 2])) {
			char hex[3] = {kv[i + 1], kv[i + 2], '\0'};
			c = (char)strtol(hex, NULL, 16);
			i += 2;
		} else if (c == '+') {
			c = ' ';
		}
		if (n + 1 >= sizeof(name))
			return 0;
		name[n++] = c;
	}
	name[n] = '\0';
	return strcmp(name, "jobId") == 0;
}

char *kie_callback_url_with_job(const char *base, const char *job_id)
{
	/* libcurl's URL API: percent-encodes, appends after an existing query and before
	 * any #fragment (KIE drops fragments), keeps IPv6 hosts and ports as they are */
	CURLU *u = curl_url();
	char *q = NULL, *old = NULL, *full = NULL, *out = NULL;
	size_t n = strlen(job_id) + 7;
	struct dbuf kept;

	if (!u)
		abort();
	dbuf_init(&kept, (size_t)-1);
	q = util_xmalloc(n);
	snprintf(q, n, "jobId=%s", job_id);
	if (curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK)
		goto out;
	/* a jobId already there is replaced, not joined by a second one (which the endpoint
	 * refuses with 400) */
	if (curl_url_get(u, CURLUPART_QUERY, &old, 0) == CURLUE_OK && old) {
		int removed = 0;
		for (const char *kv = old; kv;) {
			const char *amp = strchr(kv, '&');
			size_t len = amp ? (size_t)(amp - kv) : strlen(kv);
			if (len && !is_job_id_param(kv, len))
				dbuf_printf(&kept, "%s%.*s", kept.len ? "&" : "", (int)len, kv);
			else
				removed = 1;
			kv = amp ? amp + 1 : NULL;
		}
		/* set again only when something went (libcurl then writes %XX in lower case,
		 * the same bytes once decoded); otherwise the query stays as it was written */
		if (removed &&
		    curl_url_set(u, CURLUPART_QUERY, kept.len ? kept.data : NULL, 0) != CURLUE_OK)
			goto out;
	}
	if (curl_url_set(u, CURLUPART_QUERY, q, CURLU_APPENDQUERY | CURLU_URLENCODE) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_URL, &full, 0) == CURLUE_OK) {
		/* only a URL that reads back as one ("http:///x" has no host: it does not) */
		CURLU *check = curl_url();
		if (check && curl_url_set(check, CURLUPART_URL, full, 0) == CURLUE_OK)
			out = util_strdup(full);
		curl_url_cleanup(check);
	}
out:
	curl_free(old);
	curl_free(full);
	dbuf_free(&kept);
	free(q);
	curl_url_cleanup(u);
	return out;
}

/* ---- parsing helpers ---- */

static const char *json_str(const cJSON *obj, const char *name)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
	return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* A number written as a decimal string ("12", "-1.5", "1e14"); strtod alone would also
 * take hex, leading spaces, "inf" and "nan". */
static int decimal_str(const char *s, double *out)
{
	char *end;
	double v;

	if (!((*s >= '0' && *s <= '9') || *s == '-'))
		return 0;
	if (s[strspn(s, "0123456789+-.eE")] != '\0')
		return 0;
	v = strtod(s, &end);
	if (*end != '\0')
		return 0;
	*out = v;
	return 1;
}

/* Numbers may arrive as numbers or numeric strings. Returns 1 when present and finite
 * (cJSON reads 1e999 as infinity). */
static int json_num(const cJSON *obj, const char *name, double *out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
	double v;

	if (cJSON_IsNumber(it))
		v = it->valuedouble;
	else if (!cJSON_IsString(it) || !decimal_str(it->valuestring, &v))
		return 0;
	if (!isfinite(v))
		return 0;
	*out = v;
	return 1;
}

/* The last millisecond of year 9999: a later (or non-positive) time is no time at all. */
#define KIE_TIME_MAX_MS 253402300799999.0

/* An epoch-milliseconds time; 0 when absent or outside (0, KIE_TIME_MAX_MS]. */
static int64_t json_time_ms(const cJSON *obj, const char *name)
{
	double v;
	if (!json_num(obj, name, &v) || !(v > 0) || v > KIE_TIME_MAX_MS)
		return 0;
	return (int64_t)v; /* in range: the conversion is defined */
}

/* A cost or credit amount times scale; 1 when present, not negative and finite. */
static int json_amount(const cJSON *obj, const char *name, double scale, double *out)
{
	double v;
	if (!json_num(obj, name, &v) || v < 0 || !isfinite(v * scale))
		return 0;
	*out = v * scale;
	return 1;
}

static const char *json_msg(const cJSON *root)
{
	const char *m = json_str(root, "msg");
	if (!m)
		m = json_str(root, "message");
	return m ? m : "";
}

/* Reads the body code: 0 when absent or null, -1 when present but not an integer from
 * 0 to 999 (no KIE code, and (int) of a huge double would be undefined). */
static int json_code(const cJSON *root)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, "code");
	double v;

	if (!it || cJSON_IsNull(it))
		return 0;
	if (!json_num(root, "code", &v) || v < 0 || v > 999 || v != floor(v))
		return -1;
	return (int)v;
}

/* json_code for an error's code field: an unusable code is reported as none. */
static int json_code_or_0(const cJSON *root)
{
	int code = json_code(root);
	return code > 0 ? code : 0;
}

/* Fills resultUrls from resultJson, which is a JSON string (or, leniently, an object). */
static void parse_result_json(const cJSON *data, struct kie_result *out)
{
	const cJSON *rj = cJSON_GetObjectItemCaseSensitive(data, "resultJson");
	cJSON *parsed = NULL;
	const cJSON *obj = NULL, *urls;

	if (cJSON_IsString(rj) && rj->valuestring[0]) {
		parsed = cJSON_Parse(rj->valuestring);
		obj = parsed;
	} else if (cJSON_IsObject(rj)) {
		obj = rj;
	}
	urls = obj ? cJSON_GetObjectItemCaseSensitive(obj, "resultUrls") : NULL;
	if (!urls) /* some records put resultUrls straight in data */
		urls = cJSON_GetObjectItemCaseSensitive(data, "resultUrls");
	if (cJSON_IsArray(urls)) {
		int n = cJSON_GetArraySize(urls);
		out->result_urls = util_xcalloc((size_t)n + 1, sizeof(char *));
		const cJSON *u;
		cJSON_ArrayForEach(u, urls) {
			if (cJSON_IsString(u))
				out->result_urls[out->n_results++] = dup_clean(u->valuestring,
									       SIZE_MAX);
		}
	}
	cJSON_Delete(parsed);
}

/* Fills a kie_result from a "data" object; cost_scale converts costTime to ms. */
static void fill_result(const cJSON *data, double cost_scale, struct kie_result *out)
{
	const char *s;
	double v;

	/* ids, URLs and param are cleaned but never cut (a cut would change them) */
	if ((s = json_str(data, "taskId")) || (s = json_str(data, "task_id")))
		out->task_id = dup_clean(s, SIZE_MAX);
	if ((s = json_str(data, "model")))
		out->model = dup_clean(s, KIE_SHORT_MAX_BYTES);
	out->state = kie_task_state_parse(json_str(data, "state"));
	if ((s = json_str(data, "param")))
		out->param = dup_clean(s, SIZE_MAX);
	parse_result_json(data, out);
	if ((s = json_str(data, "failCode")) && *s) {
		out->fail_code = dup_clean(s, KIE_SHORT_MAX_BYTES);
	} else if (json_num(data, "failCode", &v) && v == floor(v) && fabs(v) < 1e9) {
		char tmp[32];
		snprintf(tmp, sizeof(tmp), "%.0f", v);
		out->fail_code = util_strdup(tmp);
	}
	if ((s = json_str(data, "failMsg")) && *s)
		out->error = dup_clean(s, KIE_TEXT_MAX_BYTES);
	if (json_amount(data, "creditsConsumed", 1.0, &v) ||
	    json_amount(data, "consumeCredits", 1.0, &v)) {
		out->has_credits = 1;
		out->credits = v;
	}
	if (json_amount(data, "remainedCredits", 1.0, &v)) {
		out->has_remaining = 1;
		out->remaining_credits = v;
	}
	if (json_amount(data, "costTime", cost_scale, &v)) {
		out->has_cost_time = 1;
		out->cost_time_ms = v;
	}
	out->create_time_ms = json_time_ms(data, "createTime");
	out->complete_time_ms = json_time_ms(data, "completeTime");
	out->update_time_ms = json_time_ms(data, "updateTime");
	out->success = out->state == KIE_TASK_SUCCESS;
	if (out->state == KIE_TASK_FAIL && !out->error) {
		char tmp[KIE_SHORT_MAX_BYTES + 64];
		snprintf(tmp, sizeof(tmp), "KIE task failed%s%s", out->fail_code ? " with code " : "",
			 out->fail_code ? out->fail_code : "");
		out->error = util_strdup(tmp);
	}
}

/* Common envelope check: JSON, HTTP status, body code. Returns the root or NULL (err
 * set). The transport and the HTTP status decide first:
 *   - status >= 500 (or 1xx/3xx): the status alone decides, whatever the body says
 *     (on createTask the task may exist: ambiguous);
 *   - status 4xx: a 4xx/5xx body code decides (it is more precise), else the status;
 *   - status 2xx: the body code is the verdict (no code: ok only if data is there).
 * err->code is the code that decided: the body code, or the HTTP status. */
static cJSON *parse_envelope(enum kie_op op, long http_status, const char *body, size_t len,
			     const char *what, struct kie_error *err)
{
	cJSON *root = cJSON_ParseWithLength(body, len);
	int code, verdict;
	enum kie_err_class cls;
	const char *maybe = op == KIE_OP_CREATE ? ": the task may have been created" : "";
	char *msg = NULL;

	if (!root || !cJSON_IsObject(root)) {
		cJSON_Delete(root);
		cls = kie_classify(op, HTTP_TRANSPORT_OK, http_status, 0);
		if (cls == KIE_ERR_NONE) /* a 2xx we cannot read: unknown outcome */
			cls = unknown_outcome(op);
		set_err(err, cls, HTTP_TRANSPORT_OK, http_status,
			http_status >= 200 && http_status <= 299 ? 0 : (int)http_status,
			"%s: HTTP %ld with a body that is not a JSON object (%zu bytes)%s", what,
			http_status, len, cls == KIE_ERR_AMBIGUOUS ? maybe : "");
		return NULL;
	}
	code = json_code(root);
	msg = dup_clean(json_msg(root), KIE_MSG_MAX_BYTES);
	if (http_status < 200 || http_status > 299) {
		char detail[400];
		verdict = 0; /* the status decides */
		if (http_status >= 400 && http_status <= 499 && code >= 400 && code <= 599)
			verdict = code;
		cls = kie_classify(op, HTTP_TRANSPORT_OK, http_status, verdict);
		if (code > 0)
			snprintf(detail, sizeof(detail), "body code %d: %s", code, msg);
		else if (code < 0)
			snprintf(detail, sizeof(detail), "body code not a KIE code: %s", msg);
		else
			snprintf(detail, sizeof(detail), "no body code: %s", msg);
		set_err(err, cls, HTTP_TRANSPORT_OK, http_status,
			verdict ? verdict : (int)http_status, "%s: HTTP %ld (%s)%s", what,
			http_status, detail, cls == KIE_ERR_AMBIGUOUS ? maybe : "");
		goto fail;
	}
	if (code < 0) {
		cls = unknown_outcome(op);
		set_err(err, cls, HTTP_TRANSPORT_OK, http_status, 0,
			"%s: HTTP %ld with a body code that is not a KIE code (an integer from 0 "
			"to 999): %s%s", what, http_status, msg,
			cls == KIE_ERR_AMBIGUOUS ? maybe : "");
		goto fail;
	}
	if (!code && !cJSON_GetObjectItemCaseSensitive(root, "data")) {
		cls = unknown_outcome(op);
		set_err(err, cls, HTTP_TRANSPORT_OK, http_status, 0,
			"%s: HTTP %ld with neither a body code nor data: %s%s", what, http_status,
			msg, cls == KIE_ERR_AMBIGUOUS ? maybe : "");
		goto fail;
	}
	if (!code) /* 2xx, no code, data there: ok */
		code = 200;
	cls = kie_classify(op, HTTP_TRANSPORT_OK, http_status, code);
	if (cls != KIE_ERR_NONE) {
		set_err(err, cls, HTTP_TRANSPORT_OK, http_status, code, "%s: KIE code %d: %s%s",
			what, code, msg, cls == KIE_ERR_AMBIGUOUS ? maybe : "");
		goto fail;
	}
	free(msg);
	return root;
fail:
	free(msg);
	cJSON_Delete(root);
	return NULL;
}

/* Writes s with bytes outside printable ASCII (and the backslash) as \xHH, for naming
 * a value that cannot be shown as it is; "..." when it does not fit. */
static void escape_bytes(const char *s, char *out, size_t cap)
{
	size_t j = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (j + 8 >= cap) {
			j += (size_t)snprintf(out + j, cap - j, "...");
			break;
		}
		if (*p >= 0x20 && *p < 0x7f && *p != '\\')
			out[j++] = (char)*p;
		else
			j += (size_t)snprintf(out + j, cap - j, "\\x%02X", *p);
	}
	out[j < cap ? j : cap - 1] = '\0';
}

int kie_parse_create_response(long http_status, const char *body, size_t len, char **task_id,
			      struct kie_error *err)
{
	cJSON *root;
	const cJSON *data;
	const char *id;

	clear_err(err);
	*task_id = NULL;
	root = parse_envelope(KIE_OP_CREATE, http_status, body, len, "createTask", err);
	if (!root)
		return -1;
	data = cJSON_GetObjectItemCaseSensitive(root, "data");
	id = cJSON_IsObject(data) ? json_str(data, "taskId") : NULL;
	if (!id && cJSON_IsObject(data))
		id = json_str(data, "task_id");
	if (!id || !*id) {
		set_err(err, KIE_ERR_AMBIGUOUS, HTTP_TRANSPORT_OK, http_status,
			json_code_or_0(root),
			"createTask: success answer without data.taskId; the task may have been "
			"created");
		cJSON_Delete(root);
		return -1;
	}
	/* An id that is not UTF-8 would reach JSON output as it is, control characters
	 * would reach log lines, and recordInfo refuses ids over KIE_TASK_ID_MAX_BYTES:
	 * none can be followed, but KIE probably made the task. */
	if (!is_clean_text(id) || strlen(id) > KIE_TASK_ID_MAX_BYTES) {
		char shown[256];
		escape_bytes(id, shown, sizeof(shown));
		set_err(err, KIE_ERR_AMBIGUOUS, HTTP_TRANSPORT_OK, http_status, 200,
			"createTask: the task id \"%s\" (%zu bytes) is not UTF-8 text without "
			"control characters of at most %d bytes; the task may have been created",
			shown, strlen(id), KIE_TASK_ID_MAX_BYTES);
		cJSON_Delete(root);
		return -1;
	}
	*task_id = util_strdup(id);
	cJSON_Delete(root);
	return 0;
}

int kie_parse_task_response(long http_status, const char *body, size_t len,
			    struct kie_result *out, struct kie_error *err)
{
	cJSON *root;
	const cJSON *data;

	clear_err(err);
	memset(out, 0, sizeof(*out));
	root = parse_envelope(KIE_OP_QUERY, http_status, body, len, "recordInfo", err);
	if (!root)
		return -1;
	data = cJSON_GetObjectItemCaseSensitive(root, "data");
	if (!cJSON_IsObject(data)) {
		set_err(err, KIE_ERR_RETRYABLE, HTTP_TRANSPORT_OK, http_status,
			json_code_or_0(root), "recordInfo: answer has no data object");
		cJSON_Delete(root);
		return -1;
	}
	fill_result(data, 1.0, out); /* recordInfo's costTime is in milliseconds */
	cJSON_Delete(root);
	if (out->state == KIE_TASK_UNKNOWN) {
		set_err(err, KIE_ERR_RETRYABLE, HTTP_TRANSPORT_OK, http_status, 200,
			"recordInfo: unknown task state");
		kie_result_free(out);
		return -1;
	}
	return 0;
}

int kie_parse_callback(const char *body, size_t len, struct kie_result *out,
		       struct kie_error *err)
{
	cJSON *root = cJSON_ParseWithLength(body, len);
	const cJSON *data;
	int code;
	const char *top_id;

	clear_err(err);
	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(root)) {
		set_err(err, KIE_ERR_PERMANENT, HTTP_TRANSPORT_OK, 0, 0,
			"callback body is not a JSON object");
		cJSON_Delete(root);
		return -1;
	}
	code = json_code_or_0(root); /* an unusable code counts as none */
	data = cJSON_GetObjectItemCaseSensitive(root, "data");
	if (cJSON_IsObject(data))
		fill_result(data, 1000.0, out); /* callbacks send costTime in seconds */
	if (!out->task_id && (top_id = json_str(root, "taskId")))
		out->task_id = dup_clean(top_id, SIZE_MAX);
	if (!out->task_id || !*out->task_id) {
		set_err(err, KIE_ERR_PERMANENT, HTTP_TRANSPORT_OK, 0, code,
			"callback carries no task id (looked at data.taskId, data.task_id, taskId)");
		cJSON_Delete(root);
		kie_result_free(out);
		return -1;
	}
	/* a failure code ends the task whatever the state says; without a state, the code
	 * tells (200 success, another failure); with neither, nothing is known */
	if (code && code != 200)
		out->state = KIE_TASK_FAIL;
	else if (out->state == KIE_TASK_UNKNOWN && code == 200)
		out->state = KIE_TASK_SUCCESS;
	out->success = out->state == KIE_TASK_SUCCESS;
	if (out->state == KIE_TASK_FAIL && !out->error) {
		char tmp[KIE_MSG_MAX_BYTES + 32];
		char *msg = dup_clean(json_msg(root), KIE_MSG_MAX_BYTES);
		snprintf(tmp, sizeof(tmp), "KIE code %d: %s", code, msg);
		out->error = util_strdup(tmp);
		free(msg);
	}
	cJSON_Delete(root);
	return 0;
}

char *kie_result_to_json(const struct kie_result *r)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *urls;
	char *s;

	cJSON_AddStringToObject(o, "taskId", r->task_id ? r->task_id : "");
	cJSON_AddBoolToObject(o, "success", r->success);
	cJSON_AddStringToObject(o, "state", kie_task_state_str(r->state));
	urls = cJSON_AddArrayToObject(o, "resultUrls");
	for (size_t i = 0; i < r->n_results; i++)
		cJSON_AddItemToArray(urls, cJSON_CreateString(r->result_urls[i]));
	if (r->error)
		cJSON_AddStringToObject(o, "error", r->error);
	else
		cJSON_AddNullToObject(o, "error");
	if (r->has_credits)
		cJSON_AddNumberToObject(o, "credits", r->credits);
	else
		cJSON_AddNullToObject(o, "credits");
	if (r->has_cost_time)
		cJSON_AddNumberToObject(o, "costTime", r->cost_time_ms);
	else
		cJSON_AddNullToObject(o, "costTime");
	if (r->update_time_ms)
		cJSON_AddNumberToObject(o, "updateTime", (double)r->update_time_ms);
	else
		cJSON_AddNullToObject(o, "updateTime");
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

int kie_webhook_signature(const char *key, const char *task_id, const char *timestamp,
			  char *out, size_t out_size)
{
	char msg[1024];
	int n;

	if (!key || !task_id || !timestamp)
		return -1;
	n = snprintf(msg, sizeof(msg), "%s.%s", task_id, timestamp);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return -1;
	return crypto_hmac_sha256_b64(key, strlen(key), msg, (size_t)n, out, out_size);
}

int kie_webhook_verify(const char *key, const char *task_id, const char *timestamp,
		       const char *signature, int64_t now_s, long window_s, char *why,
		       size_t whylen)
{
	char expect[64];
	long long ts;
	uint64_t away; /* |now_s - ts|, computed without overflow */

	if (!key || !task_id) {
		snprintf(why, whylen, "no webhook key or no task id to verify against");
		return -1;
	}
	if (!timestamp || !signature) {
		snprintf(why, whylen, "missing X-Webhook-Timestamp or X-Webhook-Signature");
		return -1;
	}
	if (util_parse_ll(timestamp, &ts) != 0) {
		snprintf(why, whylen, "X-Webhook-Timestamp is not a number");
		return -1;
	}
	/* the difference of two int64 always fits in a uint64 (unsigned wrap is defined) */
	away = ts >= now_s ? (uint64_t)ts - (uint64_t)now_s : (uint64_t)now_s - (uint64_t)ts;
	if (away > (uint64_t)(window_s > 0 ? window_s : 0)) {
		snprintf(why, whylen, "X-Webhook-Timestamp is %llu s %s now (window %ld s)",
			 (unsigned long long)away, ts >= now_s ? "ahead of" : "behind",
			 window_s > 0 ? window_s : 0);
		return -1;
	}
	if (kie_webhook_signature(key, task_id, timestamp, expect, sizeof(expect)) != 0 ||
	    !crypto_equal_consttime(expect, signature)) {
		snprintf(why, whylen, "X-Webhook-Signature does not match");
		return -1;
	}
	return 0;
}

/* ---- the client ---- */

struct kie_client {
	struct http_client *http;
	char *base_url;
	char *auth_header; /* "Authorization: Bearer ..." — never printed */
	char *default_model;
};

struct kie_client *kie_client_new(const struct kie_client_opts *o)
{
	struct kie_client *c;
	size_t n;

	if (!o || !o->base_url || !o->token)
		return NULL;
	c = util_xcalloc(1, sizeof(*c));
	c->http = http_client_new(o->user_agent, o->connect_timeout_ms, o->timeout_ms);
	if (!c->http) {
		free(c);
		return NULL;
	}
	c->base_url = util_url_base(o->base_url);
	n = strlen(o->token) + 32;
	c->auth_header = util_xmalloc(n);
	snprintf(c->auth_header, n, "Authorization: Bearer %s", o->token);
	c->default_model = util_strdup(kie_model_resolve(NULL, o->default_model));
	return c;
}

struct kie_client *kie_client_from_config(const struct config *cfg)
{
	struct kie_client_opts ko = {
		.base_url = cfg->kie_base_url, .token = cfg->kie_api_token,
		.user_agent = cfg->kie_user_agent, .default_model = cfg->kie_model,
		.connect_timeout_ms = cfg->connect_timeout_ms, .timeout_ms = cfg->http_timeout_ms,
	};
	return kie_client_new(&ko);
}

void kie_client_free(struct kie_client *c)
{
	if (!c)
		return;
	http_client_free(c->http);
	free(c->base_url);
	if (c->auth_header) /* scrub the token before giving the memory back */
		memset(c->auth_header, 0, strlen(c->auth_header));
	free(c->auth_header);
	free(c->default_model);
	free(c);
}

/* Performs one call; returns 0 with resp filled, or -1 with err set (transport failure). */
static int kie_call(struct kie_client *c, enum kie_op op, const char *method, const char *path,
		    const char *body, struct http_response *resp, struct kie_error *err)
{
	char url[4096], msg[512];
	const char *headers[] = {c->auth_header, "Content-Type: application/json",
				 "Accept: application/json", NULL};
	struct http_request req = {
		.method = method,
		.url = url,
		.headers = headers,
		.body = body,
		.body_len = body ? strlen(body) : 0,
		.max_response_bytes = KIE_MAX_RESPONSE_BYTES,
		/* a createTask KIE may have taken is never sent twice by libcurl: "sent, no
		 * answer" comes back to us, and the job goes uncertain (lifecycle.c) */
		.once = op == KIE_OP_CREATE,
	};

	int n = snprintf(url, sizeof(url), "%s%s", c->base_url, path);

	if (n < 0 || (size_t)n >= sizeof(url)) { /* a cut URL would go somewhere else */
		memset(resp, 0, sizeof(*resp));
		dbuf_init(&resp->body, 0);
		resp->transport = HTTP_TRANSPORT_NOT_SENT;
		set_err(err, KIE_ERR_RETRYABLE, HTTP_TRANSPORT_NOT_SENT, 0, 0,
			"the request URL would be longer than %zu bytes (KIE_BASE_URL is %zu "
			"bytes); nothing was sent", sizeof(url) - 1, strlen(c->base_url));
		return -1;
	}
	if (http_do(c->http, &req, resp, msg, sizeof(msg)) != 0) {
		set_err(err, kie_classify(op, resp->transport, 0, 0), resp->transport,
			resp->status, 0, "%s%s", msg,
			op == KIE_OP_CREATE && resp->transport != HTTP_TRANSPORT_NOT_SENT
				? "; the task may have been created"
				: "");
		return -1;
	}
	return 0;
}

/* kie_api_requests_total and kie_api_request_duration_seconds for one call: code 200 for
 * a success, else KIE's code or the deciding HTTP status, 0 for no answer. */
static void count_call(enum metrics_endpoint ep, int rc, const struct kie_error *err,
		       double start_s)
{
	int code = 200;
	if (rc != 0)
		code = err->transport != HTTP_TRANSPORT_OK ? 0
		       : err->code ? err->code : (int)err->http_status;
	metrics_api(ep, code, metrics_now_s() - start_s);
}

int kie_client_create_task(struct kie_client *c, const struct kie_task_request *req,
			   char **task_id, struct kie_error *err)
{
	double start_s;
	struct http_response resp;
	char *body;
	int rc;

	*task_id = NULL;
	clear_err(err);
	body = kie_build_create_body(req, c->default_model, err);
	if (!body)
		return -1;
	start_s = metrics_now_s();
	rc = kie_call(c, KIE_OP_CREATE, "POST", "/api/v1/jobs/createTask", body, &resp, err);
	if (rc == 0)
		rc = kie_parse_create_response(resp.status, resp.body.data ? resp.body.data : "",
					       resp.body.len, task_id, err);
	count_call(METRICS_EP_CREATE, rc, err, start_s);
	http_response_free(&resp);
	free(body);
	return rc;
}

int kie_client_get_task(struct kie_client *c, const char *task_id, struct kie_result *out,
			struct kie_error *err)
{
	struct http_response resp;
	char path[3 * KIE_TASK_ID_MAX_BYTES + 64], *enc;
	int rc;

	memset(out, 0, sizeof(*out));
	clear_err(err);
	if (!task_id || !*task_id || strlen(task_id) > KIE_TASK_ID_MAX_BYTES) {
		set_err(err, KIE_ERR_PERMANENT, HTTP_TRANSPORT_NOT_SENT, 0, 0,
			"task id is empty or longer than %d bytes", KIE_TASK_ID_MAX_BYTES);
		return -1;
	}
	/* every byte but A-Z a-z 0-9 - . _ ~ as %XX (RFC 3986's unreserved); the handle
	 * argument is ignored since libcurl 7.82. At most 3 bytes per byte: path holds it. */
	enc = curl_easy_escape(NULL, task_id, 0);
	if (!enc)
		abort(); /* out of memory, as util_xmalloc does */
	snprintf(path, sizeof(path), "/api/v1/jobs/recordInfo?taskId=%s", enc);
	curl_free(enc);
	double start_s = metrics_now_s();
	rc = kie_call(c, KIE_OP_QUERY, "GET", path, NULL, &resp, err);
	if (rc == 0)
		rc = kie_parse_task_response(resp.status, resp.body.data ? resp.body.data : "",
					     resp.body.len, out, err);
	count_call(METRICS_EP_QUERY, rc, err, start_s);
	http_response_free(&resp);
	return rc;
}

int kie_client_wait(struct kie_client *c, const char *task_id, long attempts, long interval_ms,
		    struct kie_result *out, struct kie_error *err)
{
	for (long i = 0; i < attempts; i++) {
		if (kie_client_get_task(c, task_id, out, err) == 0) {
			if (kie_task_state_final(out->state))
				return 0;
			kie_result_free(out);
		} else if (err->cls != KIE_ERR_RETRYABLE) {
			return -1;
		}
		if (i + 1 < attempts)
			util_sleep_ms(interval_ms);
	}
	set_err(err, KIE_ERR_RETRYABLE, HTTP_TRANSPORT_OK, 0, 0,
		"task %s did not finish after %ld status queries %ld ms apart", task_id, attempts,
		interval_ms);
	return -1;
}

int kie_parse_credit_response(long http_status, const char *body, size_t len,
			      double *credits, struct kie_error *err)
{
	cJSON *root;
	double v;
	int rc = 0;

	clear_err(err);
	root = parse_envelope(KIE_OP_OTHER, http_status, body, len, "credit", err);
	if (!root)
		return -1;
	if (!json_num(root, "data", &v)) {
		set_err(err, KIE_ERR_RETRYABLE, HTTP_TRANSPORT_OK, http_status, 200,
			"credit: data is not a number");
		rc = -1;
	} else {
		*credits = v;
	}
	cJSON_Delete(root);
	return rc;
}

int kie_client_credits(struct kie_client *c, double *credits, struct kie_error *err)
{
	struct http_response resp;
	int rc;
	double start_s = metrics_now_s();

	clear_err(err);
	rc = kie_call(c, KIE_OP_OTHER, "GET", "/api/v1/chat/credit", NULL, &resp, err);
	if (rc == 0)
		rc = kie_parse_credit_response(resp.status, resp.body.data ? resp.body.data : "",
					       resp.body.len, credits, err);
	count_call(METRICS_EP_CREDIT, rc, err, start_s);
	http_response_free(&resp);
	return rc;
}

char *kie_param_callback_arg(const char *param, const char *name)
{
	cJSON *p = param ? cJSON_Parse(param) : NULL;
	const cJSON *cb = cJSON_GetObjectItemCaseSensitive(p, "callBackUrl");
	CURLU *u = NULL;
	char *query = NULL, *out = NULL;
	size_t nlen = strlen(name);
	int found = 0;

	if (!cJSON_IsString(cb))
		goto done;
	u = curl_url();
	if (!u || curl_url_set(u, CURLUPART_URL, cb->valuestring, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_QUERY, &query, 0) != CURLUE_OK)
		goto done;
	for (char *kv = query; kv && *kv;) {
		char *amp = strchr(kv, '&');
		if (amp)
			*amp = '\0';
		if (strncmp(kv, name, nlen) == 0 && kv[nlen] == '=') {
			int n = 0;
			char *v = curl_easy_unescape(NULL, kv + nlen + 1, 0, &n);
			found++;
			free(out);
			out = v && n >= 0 && (size_t)n == strlen(v) ? util_strdup(v) : NULL;
			curl_free(v);
		}
		kv = amp ? amp + 1 : NULL;
	}
	if (found != 1) { /* given twice: which one is the caller's? */
		free(out);
		out = NULL;
	}
done:
	curl_free(query);
	curl_url_cleanup(u);
	cJSON_Delete(p);
	return out;
}
