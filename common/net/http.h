/* http.h — the one HTTP layer: a kept-alive libcurl handle per thread, capped bodies,
 * typed transport failures, optional AWS SigV4 signing.
 *
 * Must not: know KIE, S3 or Redis, or decide a retry (callers do, from the typed
 * failure); a request marked once is never sent twice by libcurl. */
#ifndef KIE_HTTP_H
#define KIE_HTTP_H

#include <stddef.h>

#include <sys/socket.h>

#include "core/util.h"

/* What happened on the wire, independent of the HTTP status. */
enum http_transport {
	HTTP_TRANSPORT_OK = 0,   /* a complete response arrived */
	HTTP_TRANSPORT_NOT_SENT, /* nothing reached the server (DNS, connect, TLS) */
	HTTP_TRANSPORT_NO_ANSWER,/* the request went out; no (complete) answer came back */
	HTTP_TRANSPORT_TOO_BIG,  /* the answer exceeded max_response_bytes */
};

const char *http_transport_str(enum http_transport t);

struct http_request {
	const char *method;            /* "GET", "POST", "PUT", "DELETE", "HEAD" */
	const char *url;
	const char *const *headers;    /* NULL-terminated "Name: value" list, or NULL */
	const void *body;
	size_t body_len;
	size_t max_response_bytes;     /* 0 means 1 MiB */
	const char *aws_sigv4;         /* e.g. "aws:amz:auto:s3", or NULL */
	const char *userpwd;           /* "key:secret" for SigV4; never logged */
	long timeout_ms;               /* 0: the client's default */
	long max_redirects;            /* 0: a redirect is the answer; else follow this many
					* (http and https only, like the request itself) */
	int once;                      /* 1: libcurl must not send it a second time by itself
					* (a request that costs money): a connection of its
					* own (CURLOPT_FRESH_CONNECT + CURLOPT_FORBID_REUSE),
					* HTTP/1.1 and no redirect followed (max_redirects is
					* ignored), so none of libcurl's hidden retries can fire
					* (docs/architecture.md, "Hidden retries") */
	/* Optional: asked before each socket of the transfer is opened (the first URL's
	 * and every redirect's, each address DNS gave), with the address it is for; 0
	 * refuses it (nothing is connected; libcurl tries the next address, or fails with
	 * CURLE_COULDNT_CONNECT). Connections kept alive were asked when they were opened. */
	int (*addr_ok)(void *ud, const struct sockaddr *sa);
	void *addr_ud;
};

struct http_response {
	long status;                   /* 0 when no response; with HTTP_TRANSPORT_TOO_BIG the
					* status of the answer that was too big */
	enum http_transport transport;
	struct dbuf body;
	char content_type[128];        /* of the last response (the one after redirects);
					* bytes outside printable ASCII shown as '?' */
	int curl_code;                 /* libcurl's CURLcode of the transfer (0: CURLE_OK) */
};

struct http_client;

/* Call once per process before any thread uses HTTP. Returns 0 or -1. */
int http_global_init(void);
void http_global_cleanup(void);

/* Returns a client for one thread; caller frees with http_client_free(NULL-safe). */
struct http_client *http_client_new(const char *user_agent, long connect_timeout_ms,
				    long timeout_ms);
void http_client_free(struct http_client *c);

/* Performs req. Returns 0 when a complete response arrived (any status), else -1 with
 * resp->transport set and err holding a sentence. HTTP_TRANSPORT_NOT_SENT means no byte
 * of the request reached the socket (CURLINFO_REQUEST_SIZE is 0); anything else after
 * the first byte is HTTP_TRANSPORT_NO_ANSWER or HTTP_TRANSPORT_TOO_BIG. A Content-Length over
 * max_response_bytes is refused before the body is read (HTTP_TRANSPORT_TOO_BIG, as for
 * a body that grows past it). resp must be freed with
 * http_response_free() in both cases. */
int http_do(struct http_client *c, const struct http_request *req,
	    struct http_response *resp, char *err, size_t errlen);

void http_response_free(struct http_response *resp);

#endif
