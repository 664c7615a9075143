/* callback_endpoint.h — KIE's callbacks, POST <KIE_CALLBACK_PATH>[?jobId=<id>]: each is
 * checked (size, JSON, task id, signature, replay of a signed one, job id) and pushed
 * onto <prefix>:callbacks for the consumer (common/pool/lua/callback_push.lua), and KIE is
 * answered at once. docs/protocol.md section 9 is the contract: responses, the entry
 * format, caps.
 *
 * The HTTP server (http_server.c) owns the listeners, the connection limits and the
 * request deadline, and routes a request here once its headers are in. This module owns
 * what a callback may say: every input capped (body KIE_HTTP_BODY_MAX, the list
 * KIE_CALLBACKS_MAX), a request never waits on Redis much longer than
 * CALLBACK_ENDPOINT_REDIS_WAIT_MS, every refusal answered {"code","msg"}, logged at most
 * once a second and counted; secrets (the HMAC key, the signature) are never logged. */
#ifndef KIE_CALLBACK_ENDPOINT_H
#define KIE_CALLBACK_ENDPOINT_H

#include <signal.h>
#include <stddef.h>

#include <microhttpd.h>

#include "config/config.h"
#include "redis/rconn.h"

#define CALLBACK_ENDPOINT_REDIS_WAIT_MS 2000 /* then 503: KIE tries again */

struct callback_endpoint;
struct callback_request;

/* A new endpoint pushing to the Redis at redis (one connection, not yet made, shared by
 * MHD's threads under a mutex). cfg must outlive it. stop, when set, makes a request
 * waiting for Redis give up (503) at once. Warns when no KIE_WEBHOOK_HMAC_KEY is set.
 * Free with callback_endpoint_free (NULL is a no-op) once no request is being handled:
 * it adds the refusals not yet counted to <p>:stats when Redis answers. */
struct callback_endpoint *callback_endpoint_new(const struct config *cfg,
						const struct rconn_addr *redis,
						const volatile sig_atomic_t *stop);
void callback_endpoint_free(struct callback_endpoint *ep);

/* MHD's access handler for one request to the callback path. client names the client
 * in log lines ("192.0.2.7", or "203.0.113.9 via 10.0.0.2" behind a proxy). *req is the
 * request's state: NULL at first; free it with callback_request_free() when MHD says
 * the request is done. */
enum MHD_Result callback_endpoint_on_request(struct callback_endpoint *ep,
					     struct MHD_Connection *c, const char *client,
					     const char *method, const char *upload,
					     size_t *upload_size, struct callback_request **req);
void callback_request_free(struct callback_request *r);

/* Answers a request the router refuses (404, 429) the endpoint's way: status and
 * {"code":status,"msg":why}, logged as the endpoint's refusals are (rate-limited), with
 * logged instead of why in the log line when it is not NULL (a 404's path: the log says
 * what was asked, the answer stays "not found"); counted: also counted in <p>:stats
 * callbacks_refused (a POST to the callback path). */
enum MHD_Result callback_endpoint_refuse(struct callback_endpoint *ep,
					 struct MHD_Connection *c, const char *client,
					 unsigned status, const char *why, const char *logged,
					 int counted);

/* Queues {"code":status,"msg":msg} with Content-Type: application/json (Allow: POST
 * with a 405; Connection: close when close). MHD_NO (the connection is closed) when
 * memory runs out. */
enum MHD_Result callback_endpoint_reply(struct MHD_Connection *c, unsigned status,
					const char *msg, int close);

#endif
