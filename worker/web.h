/* web.h — the operator's web page and its JSON API under /admin/ on the worker's HTTP
 * server (http_server.c routes every /admin request of the operator listener here when
 * KIE_ADMIN_PAGE=on). The page's files (worker/web/) are embedded at build time; the API
 * reads the pool through common/admin.c. Every request must name one of the page's own
 * hosts (KIE_ADMIN_HOSTS) in its Host header, else 421: a page on a rebound DNS name
 * cannot read the API from an operator's browser. Reads are open to whoever reaches the
 * address; actions (retry, purge, pause, resume) are POSTs that need KIE_ADMIN_TOKEN as a
 * Bearer token, an Origin (when sent) of http:// or https:// and one of those hosts, and
 * Content-Type: application/json. docs/operations.md ("The web page") is the contract.
 * The token is never logged. */
#ifndef KIE_WEB_H
#define KIE_WEB_H

#include <signal.h>
#include <stddef.h>

#include <microhttpd.h>

#include "config/config.h"
#include "redis/rconn.h"

#define WEB_PREFIX "/admin"
#define WEB_BODY_MAX 16384        /* an action's JSON body */
#define WEB_TOKEN_MIN_BYTES 16    /* a shorter KIE_ADMIN_TOKEN stops start-up */
#define WEB_REDIS_WAIT_MS 5000    /* a request waits for the lock and Redis this long, then 503 */
#define WEB_HOSTS_MAX 32          /* KIE_ADMIN_HOSTS entries */
#define WEB_HOST_MAX_BYTES 255    /* one entry: host or host:port */
#define WEB_DESCRIPTOR_MAX_BYTES 262144 /* the job page's descriptor, read whole up to this */

struct web;
struct web_request;

/* The page's settings, checked at start-up (exit 2: a restart would not fix them):
 * KIE_ADMIN_PAGE=on needs KIE_OPS_ADDR or KIE_HTTP_ADDR, a KIE_ADMIN_TOKEN has
 * WEB_TOKEN_MIN_BYTES at least, KIE_ADMIN_HOSTS is a comma list of at most WEB_HOSTS_MAX
 * host or host:port entries (letters, digits, '.', '-', '_', ':', '[', ']'). 0, or -1 with
 * err naming the variable. */
int web_settings_ok(const struct config *cfg, char *err, size_t errlen);

/* A new web (its own Redis connection, not yet connected), or NULL with err when a
 * setting is refused (web_settings_ok). Its hosts are KIE_ADMIN_HOSTS, or by default the
 * operator listener's address (KIE_OPS_ADDR, else KIE_HTTP_ADDR) with and without its
 * port, and localhost, 127.0.0.1 and [::1] with the port (and without it on port 80).
 * cfg must outlive it. */
struct web *web_start(const struct config *cfg, const struct rconn_addr *redis,
		      const volatile sig_atomic_t *stop, char *err, size_t errlen);
void web_stop(struct web *w);

/* 1 when url is the page's (WEB_PREFIX or under it). */
int web_wants(const char *url);

/* MHD's access handler for one of the page's requests; *req is the request's state
 * (NULL at first; web_request_free() it when MHD says the request is done). */
enum MHD_Result web_on_request(struct web *w, struct MHD_Connection *c, const char *url,
			       const char *method, const char *upload, size_t *upload_size,
			       struct web_request **req);
void web_request_free(struct web_request *r);

#endif
