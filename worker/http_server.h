/* http_server.h — the worker's HTTP listeners (libmicrohttpd): the daemons, the limits
 * that keep hostile clients from taking every slot, the request deadline, and the
 * routing of each request to its module.
 *
 *   KIE_HTTP_ADDR  the callback listener: POST <KIE_CALLBACK_PATH> (callback_endpoint.h);
 *                  with KIE_OPS_ADDR unset also the operator routes below
 *   KIE_OPS_ADDR   the operator listener: /metrics, /healthz, /readyz (metrics_http.h)
 *                  and /admin/ (web.h, KIE_ADMIN_PAGE=on); any other path 404
 *
 * It faces the internet, so every connection is bounded (docs/protocol.md sections 8 and
 * 9): in number (KIE_HTTP_MAX_CONNECTIONS on the callback listener, at most
 * KIE_HTTP_MAX_PER_ADDRESS of them from one client address, except from
 * KIE_HTTP_TRUSTED_PROXIES, whose clients are told apart by X-Forwarded-For and held to
 * the same number of requests at once, 429 past it) and in time (idle
 * KIE_HTTP_CONN_TIMEOUT_S; each request answered within KIE_HTTP_REQUEST_TIMEOUT_MS of
 * the connection's opening or its previous answer, headers included, else the
 * connection is shut down by a reaper thread). The operator listener, meant for a
 * private network, has the deadline and a connection cap of its own, so the operator
 * routes answer while the callback path is saturated. */
#ifndef KIE_HTTP_SERVER_H
#define KIE_HTTP_SERVER_H

#include <signal.h>
#include <stddef.h>

#include "config/config.h"
#include "redis/rconn.h"

#define HTTP_SERVER_THREADS 2          /* MHD's thread pool per listener (1 for a
					* 1-connection limit) */
#define HTTP_SERVER_OPS_CONNECTIONS 64 /* the operator listener's connection cap */
#define HTTP_SERVER_REAP_EVERY_MS 100  /* how often the deadline is checked */

struct http_server;

/* Starts the listeners cfg asks for (KIE_HTTP_ADDR, KIE_OPS_ADDR: at least one set, and
 * valid: config.c checked them) with the settings of cfg, the callback endpoint pushing
 * to the Redis at redis. cfg must outlive the server. stop, when set, makes a request
 * waiting for Redis give up (503) at once. Returns a new server (stop it with
 * http_server_stop) or NULL with err saying why (an address in use, ...), naming the
 * variable. */
struct http_server *http_server_start(const struct config *cfg, const struct rconn_addr *redis,
				      const volatile sig_atomic_t *stop, char *err,
				      size_t errlen);

/* Stops accepting, waits for requests being handled (each bounded by its Redis wait),
 * flushes the callback refusal count when Redis answers, and frees everything. NULL is
 * a no-op. */
void http_server_stop(struct http_server *s);

#endif
