/* kie_client.h — the KIE jobs API: create a task, read its record, wait, normalize
 * callbacks. Errors come back typed and classed (retryable, permanent, account, ambiguous).
 * One client per thread (it owns a kept-alive HTTP connection).
 *
 * Must not: touch Redis or the store, or retry a createTask (its caller decides, from
 * the error class). */
#ifndef KIE_CLIENT_H
#define KIE_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "net/http.h"

#define KIE_PROMPT_MAX_CHARS 5000 /* nano-banana-edit's documented limit, in characters */
#define KIE_MAX_IMAGES 10
#define KIE_DEFAULT_RATIO "9:16"  /* the seed's default */
#define KIE_DEFAULT_FORMAT "png"
#define KIE_MAX_RESPONSE_BYTES (1024 * 1024)
#define KIE_TASK_ID_MAX_BYTES 1024 /* longer ids are refused (createTask: ambiguous) */

/* What a worker should do about an error (kie-api.md's "Codes" table). */
enum kie_err_class {
	KIE_ERR_NONE = 0,
	KIE_ERR_RETRYABLE, /* try again later (429, 455, transport before sending, 5xx on query) */
	KIE_ERR_PERMANENT, /* this job will never succeed as it is (400, 404, 422, 451, 505) */
	KIE_ERR_ACCOUNT,   /* the account is unusable: stop taking jobs (401, 402, 433) */
	KIE_ERR_AMBIGUOUS, /* createTask may have created (and charged) a task: never re-create blindly */
};
const char *kie_err_class_str(enum kie_err_class c);

struct kie_error {
	enum kie_err_class cls;
	enum http_transport transport; /* HTTP_TRANSPORT_OK when an answer arrived */
	long http_status;              /* 0 when none */
	int code;                      /* the code that decided cls: the KIE body code, or
					* the HTTP status when that decided; 0 when none */
	char message[512];             /* a sentence a person can act on */
};

enum kie_op { KIE_OP_CREATE, KIE_OP_QUERY, KIE_OP_OTHER };

/* Classifies an outcome. code is the KIE body code, read with KIE's table; 0 lets
 * http_status decide with HTTP's meanings (401/402 account, 429 retryable, other 4xx
 * permanent, 408/5xx/1xx/3xx an unknown outcome: ambiguous on createTask, else
 * retryable). Which of the two decides a response is kie_parse_*'s rule: for a non-2xx
 * status, the status (>= 500) or a 4xx/5xx body code (4xx status); for 2xx, the body
 * code. A non-2xx answer is never a success. */
enum kie_err_class kie_classify(enum kie_op op, enum http_transport t, long http_status,
				int code);

enum kie_task_state {
	KIE_TASK_UNKNOWN = 0,
	KIE_TASK_WAITING,
	KIE_TASK_QUEUING,
	KIE_TASK_GENERATING,
	KIE_TASK_SUCCESS,
	KIE_TASK_FAIL, /* KIE's "fail" and the seed's "failed" */
};
const char *kie_task_state_str(enum kie_task_state s);
enum kie_task_state kie_task_state_parse(const char *s);
int kie_task_state_final(enum kie_task_state s);

struct kie_task_request {
	const char *model;          /* NULL or "": the client's default model */
	const char *prompt;
	const char *const *image_urls;
	size_t n_images;
	const char *ratio;          /* NULL: "9:16" */
	const char *output_format;  /* NULL: "png" */
	const char *callback_url;   /* NULL or "": none */
};

/* A task's outcome, from recordInfo or from a callback (the seed's processCallback).
 * Units: cost_time_ms in milliseconds (callbacks send seconds; they are converted),
 * times in epoch milliseconds. A time outside (0, 253402300799999] (year 10000) reads as
 * absent (0); a NaN, infinite or negative cost or credit amount as absent (has_* 0).
 * Every string is valid UTF-8 (bytes KIE sent that are not become '?'); error is at most
 * 1024 bytes, model and fail_code at most 200, cut at a character boundary.
 * Free with kie_result_free(). */
struct kie_result {
	char *task_id;
	char *model;
	enum kie_task_state state;
	int success;           /* state == success */
	char **result_urls;
	size_t n_results;
	char *fail_code;
	char *error;           /* failMsg, or a sentence; NULL on success */
	int has_credits;
	double credits;        /* the task's cost: creditsConsumed, else consumeCredits (the
				* older name); a failed task's is usually 0 */
	int has_remaining;
	double remaining_credits; /* remainedCredits: the account's balance after the task,
				   * never a cost */
	int has_cost_time;
	double cost_time_ms;
	int64_t create_time_ms, complete_time_ms, update_time_ms; /* 0 when absent */
	char *param;           /* the original request as KIE echoes it (a JSON string) */
};
void kie_result_free(struct kie_result *r);

/* --- pure functions (no I/O), unit-tested --- */

/* Models and their input mappings (kie_client.c's models[]):
 *   google/nano-banana-edit  prompt, image_urls (1..10), aspect_ratio, output_format
 *   google/nano-banana       prompt, no reference images, aspect_ratio, output_format
 *   google/nano-banana-pro   prompt, image_input (0..8), aspect_ratio, output_format
 * Any other model name is sent as it is with nano-banana-edit's mapping and rules (1..10
 * images as image_urls); KIE answers 404 if it does not know the model. */

/* The model a request will be sent with: model when set and not empty, else
 * default_model when set and not empty, else "google/nano-banana-edit". Returns one of
 * its arguments or a static string. */
const char *kie_model_resolve(const char *model, const char *default_model);

#define KIE_MODEL_MAX_BYTES 100
/* A model name: 1..KIE_MODEL_MAX_BYTES bytes of printable ASCII without spaces
 * ("google/nano-banana"). 1 or 0. */
int kie_model_name_valid(const char *s);

/* Checks a request against the documented limits of the model it will be sent with
 * (kie_model_resolve(req->model, default_model)): prompt, image count (a model without
 * an image field takes none: "google/nano-banana takes no reference images (N given)"),
 * the model name (printable ASCII without spaces, at most 100 bytes), URLs (http(s), at
 * most 2048 bytes of UTF-8 without control characters), ratio, format. Returns 0 or -1
 * (err filled, class permanent). */
int kie_validate_request_for(const struct kie_task_request *req, const char *default_model,
			     struct kie_error *err);
/* kie_validate_request_for(req, "google/nano-banana-edit", err). */
int kie_validate_request(const struct kie_task_request *req, struct kie_error *err);

/* Builds the createTask JSON body for kie_model_resolve(req->model, default_model), after
 * kie_validate_request_for(req, default_model). Returns a new string (caller frees) or
 * NULL (err filled). */
char *kie_build_create_body(const struct kie_task_request *req, const char *default_model,
			    struct kie_error *err);

/* Puts jobId=<id> (percent-encoded) into a callback URL's query, before any #fragment:
 * every jobId parameter base already has is removed first (its name compared after
 * percent-decoding, as the endpoint reads it), so the result has exactly one; the other
 * parameters keep their order and meaning (their bytes too when nothing was removed;
 * else libcurl may write %XX in lower case). Returns a new string, or NULL when base is
 * not a URL. */
char *kie_callback_url_with_job(const char *base, const char *job_id);

/* Reads a createTask answer. A task id that is not UTF-8 text without control
 * characters of at most KIE_TASK_ID_MAX_BYTES is refused as ambiguous (KIE probably made
 * the task). kie_error.message is always valid UTF-8. */
int kie_parse_create_response(long http_status, const char *body, size_t len,
			      char **task_id, struct kie_error *err);
int kie_parse_task_response(long http_status, const char *body, size_t len,
			    struct kie_result *out, struct kie_error *err);
/* Normalizes a callback body. Fails only when no task id can be found or not JSON.
 * A callback may be non-final: state waiting/queuing/generating comes back as it is,
 * with success 0 and error NULL (not a failure), and so does KIE_TASK_UNKNOWN when the
 * body has neither a state nor a code. A body code other than 200 makes it
 * KIE_TASK_FAIL; code 200 without a state makes it KIE_TASK_SUCCESS. Only a final
 * state (kie_task_state_final) finishes a task: the caller decides what to do with the
 * rest (keep polling). An unsigned body is a hint, not a verdict: re-query recordInfo. */
int kie_parse_callback(const char *body, size_t len, struct kie_result *out,
		       struct kie_error *err);

/* Reads a GET /api/v1/chat/credit answer: {"code":200,"data":<credits>} (a number or a
 * numeric string; it may be negative or fractional). 0 with *credits set, or -1 (err:
 * the envelope's class — 401/402/433 account —, or retryable for a data that is not a
 * number). */
int kie_parse_credit_response(long http_status, const char *body, size_t len,
			      double *credits, struct kie_error *err);

/* Serializes a result as the normalized JSON object
 * {taskId, success, state, resultUrls, error, credits, costTime (ms), updateTime}.
 * Returns a new string (caller frees). */
char *kie_result_to_json(const struct kie_result *r);

/* The callback signature: base64(HMAC-SHA256(key, taskId + "." + timestamp)). */
int kie_webhook_signature(const char *key, const char *task_id, const char *timestamp,
			  char *out, size_t out_size);
/* Verifies X-Webhook-Signature/Timestamp; window_s bounds the clock skew. 0 ok, -1 not. */
int kie_webhook_verify(const char *key, const char *task_id, const char *timestamp,
		       const char *signature, int64_t now_s, long window_s, char *why,
		       size_t whylen);

/* The value of query parameter name in the callBackUrl of a recordInfo param (the
 * original request, a JSON string): the query is split on '&' first and only then each
 * value percent-decoded, so an encoded "%26jobId%3D..." inside another parameter is never
 * read as one. Exactly one such parameter, decoded without a NUL; else NULL. Returns a
 * new string (caller frees) or NULL. */
char *kie_param_callback_arg(const char *param, const char *name);

/* --- the client --- */

struct kie_client_opts {
	const char *base_url;
	const char *token;          /* never printed */
	const char *user_agent;
	const char *default_model;
	long connect_timeout_ms;
	long timeout_ms;
};

struct kie_client;
/* Returns a new client (copies opts) or NULL (also when base_url or token is NULL);
 * free with kie_client_free (NULL-safe). */
struct kie_client *kie_client_new(const struct kie_client_opts *opts);
void kie_client_free(struct kie_client *c);
struct config;
/* A client with the settings of cfg (KIE_BASE_URL, KIE_API_TOKEN, timeouts, ...). */
struct kie_client *kie_client_from_config(const struct config *cfg);

/* POST /api/v1/jobs/createTask. On success *task_id is a new string (caller frees). */
int kie_client_create_task(struct kie_client *c, const struct kie_task_request *req,
			   char **task_id, struct kie_error *err);
/* GET /api/v1/jobs/recordInfo?taskId=. */
int kie_client_get_task(struct kie_client *c, const char *task_id, struct kie_result *out,
			struct kie_error *err);
/* Polls until success/fail or attempts run out (then -1, class retryable, "timed out"). */
int kie_client_wait(struct kie_client *c, const char *task_id, long attempts,
		    long interval_ms, struct kie_result *out, struct kie_error *err);
/* GET /api/v1/chat/credit: the account's balance (kie_parse_credit_response). */
int kie_client_credits(struct kie_client *c, double *credits, struct kie_error *err);

#endif
