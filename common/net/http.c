/* http.c — libcurl easy handle reuse, body capping and failure typing. */
#include "net/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#define DEFAULT_MAX_RESPONSE (1024 * 1024)

struct http_client {
	CURL *curl;
	char *user_agent;
	long connect_timeout_ms;
	long timeout_ms;
};

const char *http_transport_str(enum http_transport t)
{
	switch (t) {
	case HTTP_TRANSPORT_OK: return "ok";
	case HTTP_TRANSPORT_NOT_SENT: return "not-sent";
	case HTTP_TRANSPORT_NO_ANSWER: return "no-answer";
	case HTTP_TRANSPORT_TOO_BIG: return "too-big";
	}
	return "?";
}

int http_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void http_global_cleanup(void)
{
	curl_global_cleanup();
}

struct http_client *http_client_new(const char *user_agent, long connect_timeout_ms,
				    long timeout_ms)
{
	struct http_client *c = util_xcalloc(1, sizeof(*c));
	c->curl = curl_easy_init();
	if (!c->curl) {
		free(c);
		return NULL;
	}
	c->user_agent = util_strdup(user_agent);
	c->connect_timeout_ms = connect_timeout_ms;
	c->timeout_ms = timeout_ms;
	return c;
}

void http_client_free(struct http_client *c)
{
	if (!c)
		return;
	curl_easy_cleanup(c->curl);
	free(c->user_agent);
	free(c);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct dbuf *b = userdata;
	size_t n = size * nmemb;
	if (dbuf_add(b, ptr, n) != 0)
		return 0; /* over the cap: abort the transfer */
	return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct http_response *r = userdata;
	size_t n = size * nmemb;
	static const char ct[] = "content-type:";
	if (n > 5 && strncmp(ptr, "HTTP/", 5) == 0) /* a new response (after a redirect) */
		r->content_type[0] = '\0';
	if (n > sizeof(ct) && strncasecmp(ptr, ct, sizeof(ct) - 1) == 0) {
		size_t i = sizeof(ct) - 1, j = 0;
		while (i < n && (ptr[i] == ' ' || ptr[i] == '\t'))
			i++;
		while (i < n && ptr[i] != '\r' && ptr[i] != '\n' && j + 1 < sizeof(r->content_type)) {
			/* a media type is ASCII: anything else would reach records and error
			 * sentences as bytes that are not UTF-8 */
			unsigned char ch = (unsigned char)ptr[i++];
			r->content_type[j++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
		}
		r->content_type[j] = '\0';
	}
	return n;
}

/* CURLOPT_OPENSOCKETFUNCTION: the request's addr_ok decides, then the socket libcurl
 * would have opened itself. Chosen over CURLOPT_PREREQFUNCTION (7.80+), which is asked
 * only once connected: here a refused address is never connected to at all, every
 * address of a name is asked (a name resolving to a public and a private address cannot
 * slip through on the second), and the address is the one used, after DNS, whatever
 * the URL said. */
static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose,
				    struct curl_sockaddr *a)
{
	const struct http_request *req = clientp;
	/* http(s) only opens IPCXN sockets; anything else is refused rather than unchecked */
	if (purpose != CURLSOCKTYPE_IPCXN || !req->addr_ok(req->addr_ud, &a->addr))
		return CURL_SOCKET_BAD;
	return socket(a->family, a->socktype, a->protocol);
}

int http_do(struct http_client *c, const struct http_request *req,
	    struct http_response *resp, char *err, size_t errlen)
{
	CURL *h = c->curl;
	struct curl_slist *hdrs = NULL;
	char curl_err[CURL_ERROR_SIZE] = "";
	CURLcode cc;
	int rc = -1;

	memset(resp, 0, sizeof(*resp));
	dbuf_init(&resp->body, req->max_response_bytes ? req->max_response_bytes
						       : DEFAULT_MAX_RESPONSE);

	curl_easy_reset(h); /* keeps the connection cache: keep-alive survives */
	curl_easy_setopt(h, CURLOPT_URL, req->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, c->user_agent);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, req->timeout_ms ? req->timeout_ms : c->timeout_ms);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp->body);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)resp->body.max_bytes);
	if (req->addr_ok) {
		curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
		curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, (void *)req);
	}
	if (req->once) {
		/* libcurl 7.88 sends a request again by itself when a reused connection
		 * turns out dead before any answer byte (lib/transfer.c:1760-1774), and on
		 * HTTP/2 after REFUSED_STREAM, GOAWAY or HTTP_1_1_REQUIRED (transfer.c:1775,
		 * multi.c:2455-2477). A connection of its own is never "reused" (url.c:3683),
		 * and HTTP/1.1 has none of the HTTP/2 paths; the connection is closed after */
		curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
		curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
		curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	}
	if (req->max_redirects > 0 && !req->once) { /* 307/308 would send it again */
		curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(h, CURLOPT_MAXREDIRS, req->max_redirects);
		curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	}

	if (strcmp(req->method, "GET") == 0) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(req->method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
		if (req->body || strcmp(req->method, "DELETE") != 0) {
			curl_easy_setopt(h, CURLOPT_POST, 1L);
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? req->body : "");
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t)(req->body ? req->body_len : 0));
		}
	}
	/* curl adds "Expect: 100-continue" to large bodies; it costs a round trip. Not on
	 * SigV4 requests: curl 7.88 signs the empty "Expect:" it then does not send, and S3
	 * refuses the signature (our bodies there are small: no 100-continue happens). */
	if (!req->aws_sigv4)
		hdrs = curl_slist_append(hdrs, "Expect:");
	for (const char *const *p = req->headers; p && *p; p++)
		hdrs = curl_slist_append(hdrs, *p);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	if (req->aws_sigv4) {
		curl_easy_setopt(h, CURLOPT_AWS_SIGV4, req->aws_sigv4);
		curl_easy_setopt(h, CURLOPT_USERPWD, req->userpwd);
	}

	cc = curl_easy_perform(h);
	resp->curl_code = (int)cc;
	if (cc == CURLE_OK) {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
		resp->transport = HTTP_TRANSPORT_OK;
		rc = 0;
		goto out;
	}

	long req_bytes = 0;
	curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &req_bytes);
	if (cc == CURLE_FILESIZE_EXCEEDED ||
	    (cc == CURLE_WRITE_ERROR && resp->body.len + CURL_MAX_WRITE_SIZE > resp->body.max_bytes)) {
		resp->transport = HTTP_TRANSPORT_TOO_BIG;
		snprintf(err, errlen, "%s %s: response larger than %zu bytes", req->method,
			 req->url, resp->body.max_bytes);
	} else {
		resp->transport = req_bytes > 0 ? HTTP_TRANSPORT_NO_ANSWER : HTTP_TRANSPORT_NOT_SENT;
		snprintf(err, errlen, "%s %s: %s (%s)", req->method, req->url,
			 curl_err[0] ? curl_err : curl_easy_strerror(cc),
			 req_bytes > 0 ? "request was sent, no answer" : "request was not sent");
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status); /* TOO_BIG has it too */
out:
	/* the header list must outlive the transfer, and the handle must not keep it */
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	return rc;
}

void http_response_free(struct http_response *resp)
{
	dbuf_free(&resp->body);
}
