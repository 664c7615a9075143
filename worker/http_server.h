/* http_server.h — the callback endpoint: an HTTP server (libmicrohttpd) inside kie-worker
 * that takes KIE's callbacks, POST <KIE_CALLBACK_PATH>[?jobId=<id>], checks them (size,
 * JSON, task id, signature, job id) and pushes each onto <prefix>:callbacks for the
 * consumer. docs/protocol.md section 9 is the contract: responses, the entry format, caps.
 *
 * It faces the internet: every input is capped (body KIE_HTTP_BODY_MAX, connections
 * KIE_HTTP_MAX_CONNECTIONS and HTTP_SERVER_PER_IP_CONNECTIONS per address, idle time and
 * body time KIE_HTTP_CONN_TIMEOUT_S), a request never waits on Redis much longer than
 * HTTP_SERVER_REDIS_WAIT_MS, and secrets (the HMAC key, the signature) are never logged. */
#ifndef KIE_HTTP_SERVER_H
#define KIE_HTTP_SERVER_H

#include <signal.h>
#include <stddef.h>

#include "config.h"
#include "rconn.h"

#define HTTP_SERVER_PER_IP_CONNECTIONS 16 /* or KIE_HTTP_MAX_CONNECTIONS when smaller */
#define HTTP_SERVER_THREADS 2             /* MHD's thread pool (1 for a 1-connection limit) */
#define HTTP_SERVER_REDIS_WAIT_MS 2000    /* then 503: KIE tries again */
#define HTTP_SERVER_CALLBACKS_MAX 100000  /* <prefix>:callbacks keeps the newest this many */

struct http_server;

/* Starts serving on cfg->http_addr (which must be set and valid: config.c checked it)
 * with the settings of cfg, pushing to the Redis at redis (one connection, shared by
 * MHD's threads under a mutex). cfg must outlive the server. stop, when set, makes a
 * request waiting for Redis give up (503) at once. Returns a new server (stop it with
 * http_server_stop) or NULL with err saying why (the address is in use, ...), naming
 * KIE_HTTP_ADDR. */
struct http_server *http_server_start(const struct config *cfg, const struct rconn_addr *redis,
				      const volatile sig_atomic_t *stop, char *err,
				      size_t errlen);

/* Stops accepting, waits for requests being handled (each bounded by the Redis wait),
 * flushes the refusal count when Redis answers, and frees everything. NULL is a no-op. */
void http_server_stop(struct http_server *s);

#endif
