/* metrics_http.h — the operator's read-only routes on the worker's HTTP server:
 *   GET /metrics  Prometheus text: the process's counters (metrics.h) and the pool's gauges
 *                 read from Redis at scrape time (one script, its own connection)
 *   GET /healthz  200 while the process's loops turn (no Redis needed), else 503
 *   GET /readyz   200 when Redis answers PING and the metadata store is usable, else 503
 *                 naming what failed
 * HEAD is answered as GET without a body; any other method gets 405 with Allow: GET, HEAD.
 *
 * Nothing here touches the callback endpoint's Redis connection. Redis and store reads
 * are cached for METRICS_HTTP_CACHE_MS and bounded (METRICS_HTTP_REDIS_WAIT_MS, the
 * store's METRICS_HTTP_STORE_WAIT_MS); at most one request at a time refreshes them, the
 * others answer from the last result at once, so of libmicrohttpd's threads at most one
 * waits on a probe. docs/operations.md describes every metric. */
#ifndef KIE_METRICS_HTTP_H
#define KIE_METRICS_HTTP_H

#include <signal.h>

#include <microhttpd.h>

#include "config/config.h"
#include "redis/rconn.h"

#define METRICS_HTTP_CACHE_MS 1000
#define METRICS_HTTP_REDIS_WAIT_MS 500
#define METRICS_HTTP_STORE_WAIT_MS 1000
#define METRICS_HTTP_HEALTH_STALE_MS 60000 /* (or the KIE HTTP timeout + 15 s, if longer) */

struct metrics_http;

/* A new router for cfg's pool (cfg must outlive it). Opens nothing yet: the Redis
 * connection and the store handle are made on first use. stop, when set, ends a Redis
 * wait at once. Free with metrics_http_free (NULL is a no-op). */
struct metrics_http *metrics_http_new(const struct config *cfg, const struct rconn_addr *redis,
				      const volatile sig_atomic_t *stop);
void metrics_http_free(struct metrics_http *m);

/* 1 when url (the decoded request path) is one of the routes above. */
int metrics_http_handles(const char *url);

/* Answers a request whose path metrics_http_handles() took. */
enum MHD_Result metrics_http_serve(struct metrics_http *m, struct MHD_Connection *c,
				   const char *url, const char *method);

#endif
