/* copies.c — result copies: sniffing, keys and URLs, and one download into the store. */
#include "store/copies.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "net/http.h"
#include "net/netaddr.h"

const char *copies_sniff(const void *data, size_t len, const char **ext)
{
	const unsigned char *b = data;
	static const unsigned char png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

	*ext = NULL;
	if (!b)
		return NULL;
	if (len >= 8 && memcmp(b, png, 8) == 0) {
		*ext = "png";
		return "image/png";
	}
	if (len >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) {
		*ext = "jpg";
		return "image/jpeg";
	}
	if (len >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0) {
		*ext = "webp";
		return "image/webp";
	}
	if (len >= 6 && (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0)) {
		*ext = "gif";
		return "image/gif";
	}
	return NULL;
}

int copies_declared_ok(const char *declared, const char *sniffed)
{
	char t[128];
	size_t n = 0;
	const char *p = declared;

	if (!declared)
		return 1;
	while (*p == ' ' || *p == '\t')
		p++;
	while (*p && *p != ';' && *p != ' ' && *p != '\t' && n + 1 < sizeof(t))
		t[n++] = *p++;
	t[n] = '\0';
	if (n == 0 || strcasecmp(t, "application/octet-stream") == 0 ||
	    strcasecmp(t, "binary/octet-stream") == 0)
		return 1;
	if (!sniffed)
		return 0;
	if (strcmp(sniffed, "image/jpeg") == 0 &&
	    (strcasecmp(t, "image/jpg") == 0 || strcasecmp(t, "image/pjpeg") == 0))
		return 1;
	return strcasecmp(t, sniffed) == 0;
}

int copies_key(const char *task_id, size_t n, const char *ext, char out[COPIES_KEY_MAX],
	       char *err, size_t errlen)
{
	char name[METADATA_KEY_NAME_MAX];

	if (metadata_task_key(task_id, name, err, errlen) != 0)
		return -1;
	snprintf(out, COPIES_KEY_MAX, COPIES_KEY_PREFIX "%s/%zu.%s", name, n, ext);
	return 0;
}

void copies_stored_url(const char *public_base, const char *key, const char *store_url,
		       char *out, size_t outlen)
{
	if (public_base && *public_base) {
		size_t n = strlen(public_base);
		while (n && public_base[n - 1] == '/')
			n--;
		snprintf(out, outlen, "%.*s/%s", (int)n, public_base, key);
	} else {
		snprintf(out, outlen, "%s", store_url);
	}
}

const char *copy_outcome_str(enum copy_outcome o)
{
	switch (o) {
	case COPY_STORED: return "stored";
	case COPY_RETRY: return "retry";
	case COPY_REFUSED: return "refused";
	}
	return "?";
}

struct copier {
	struct http_client *http;
	size_t max_bytes;
	long timeout_ms;
	char *public_base;
	struct netaddr_policy allow;  /* KIE_COPY_ALLOW_PRIVATE */
	char refused[200];            /* the current download's first refused address, why */
};

/* http_request.addr_ok: public addresses, and those KIE_COPY_ALLOW_PRIVATE allows. The
 * first refusal is kept for the copy's reason. */
static int addr_ok(void *ud, const struct sockaddr *sa)
{
	struct copier *c = ud;
	char why[sizeof(c->refused)];
	if (netaddr_allowed(&c->allow, sa, why, sizeof(why)))
		return 1;
	if (!c->refused[0])
		util_strlcpy(c->refused, why, sizeof(c->refused));
	return 0;
}

struct copier *copies_new(const struct config *cfg, char *err, size_t errlen)
{
	struct copier *c;

	if (!cfg->copy_results)
		return NULL;
	c = util_xcalloc(1, sizeof(*c));
	if (netaddr_policy_parse(cfg->copy_allow_private ? cfg->copy_allow_private : "0",
				 &c->allow, err, errlen) != 0) {
		free(c); /* config_load_env checked it: only a config built otherwise gets here */
		return NULL;
	}
	c->http = http_client_new(cfg->kie_user_agent, cfg->connect_timeout_ms,
				  cfg->copy_timeout_ms);
	if (!c->http) {
		snprintf(err, errlen, "result copies: cannot create an HTTP handle");
		free(c);
		return NULL;
	}
	c->max_bytes = (size_t)cfg->copy_max_bytes;
	c->timeout_ms = cfg->copy_timeout_ms;
	c->public_base = util_strdup(cfg->r2_public_base_url);
	return c;
}

void copies_free(struct copier *c)
{
	if (!c)
		return;
	http_client_free(c->http);
	free(c->public_base);
	free(c);
}

/* The outcome of a completed HTTP answer's status. */
static enum copy_outcome status_outcome(long status)
{
	if (status >= 200 && status <= 299)
		return COPY_STORED;
	if (status >= 500 || status == 408 || status == 425 || status == 429)
		return COPY_RETRY;
	return COPY_REFUSED;
}

enum copy_outcome copies_copy_one(struct copier *c, struct metadata_store *ms,
				  const char *task_id, size_t n, const char *url,
				  char *stored_url, size_t stored_len, char *err, size_t errlen)
{
	struct http_request req = {
		.method = "GET",
		.url = url,
		.max_response_bytes = c->max_bytes,
		.timeout_ms = c->timeout_ms,
		.max_redirects = COPIES_MAX_REDIRECTS,
		.addr_ok = addr_ok,
		.addr_ud = c,
	};
	struct http_response resp;
	char herr[600], key[COPIES_KEY_MAX], store_url[COPIES_URL_MAX];
	const char *type, *ext;
	enum copy_outcome o;
	enum metrics_copy_outcome m = METRICS_COPY_FAILED; /* kie_result_copies_total */

	stored_url[0] = '\0';
	c->refused[0] = '\0';
	if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) {
		snprintf(err, errlen, "result %zu: not an http(s) URL", n);
		metrics_copy(METRICS_COPY_FAILED);
		return COPY_REFUSED;
	}
	if (http_do(c->http, &req, &resp, herr, sizeof(herr)) != 0) {
		if (c->refused[0] && resp.curl_code == CURLE_COULDNT_CONNECT) {
			/* the host (or a redirect's) is, after DNS, an address copies may not
			 * reach: that will not change by retrying */
			snprintf(err, errlen, "result %zu: refused: %s", n, c->refused);
			o = COPY_REFUSED;
		} else if (resp.transport == HTTP_TRANSPORT_TOO_BIG && resp.status &&
			   status_outcome(resp.status) != COPY_STORED) {
			/* the status first: a 503's error page over the cap is still a 503 */
			o = status_outcome(resp.status);
			snprintf(err, errlen, "result %zu: download answered HTTP %ld (its body over "
				 "KIE_COPY_MAX_BYTES)%s", n, resp.status,
				 o == COPY_REFUSED ? " (not retried)" : "");
		} else if (resp.transport == HTTP_TRANSPORT_TOO_BIG) {
			snprintf(err, errlen, "result %zu is larger than KIE_COPY_MAX_BYTES (%zu "
				 "bytes): not copied", n, c->max_bytes);
			m = METRICS_COPY_TOO_LARGE;
			o = COPY_REFUSED;
		} else if (resp.curl_code == CURLE_TOO_MANY_REDIRECTS ||
			   resp.curl_code == CURLE_UNSUPPORTED_PROTOCOL) {
			snprintf(err, errlen, "result %zu: %s (http(s) only, at most %d redirects)",
				 n, herr, COPIES_MAX_REDIRECTS);
			o = COPY_REFUSED;
		} else {
			snprintf(err, errlen, "result %zu: download failed: %s", n, herr);
			o = COPY_RETRY;
		}
		goto out;
	}
	o = status_outcome(resp.status);
	if (o != COPY_STORED) {
		snprintf(err, errlen, "result %zu: download answered HTTP %ld%s", n, resp.status,
			 o == COPY_REFUSED ? " (not retried)" : "");
		goto out;
	}
	type = copies_sniff(resp.body.data, resp.body.len, &ext);
	if (!type) {
		snprintf(err, errlen, "result %zu: %zu bytes (declared %s) are not a PNG, JPEG, "
			 "WebP or GIF image: not copied", n, resp.body.len,
			 resp.content_type[0] ? resp.content_type : "no type");
		m = METRICS_COPY_WRONG_TYPE;
		o = COPY_REFUSED;
		goto out;
	}
	if (!copies_declared_ok(resp.content_type, type)) {
		snprintf(err, errlen, "result %zu: declared Content-Type %s but the bytes are %s: "
			 "not copied", n, resp.content_type, type);
		m = METRICS_COPY_WRONG_TYPE;
		o = COPY_REFUSED;
		goto out;
	}
	if (copies_key(task_id, n, ext, key, err, errlen) != 0) {
		o = COPY_REFUSED;
		goto out;
	}
	if (metadata_store_put_object(ms, key, resp.body.data, resp.body.len, type, herr,
				      sizeof(herr)) != 0) {
		snprintf(err, errlen, "result %zu: writing %s to the store: %s", n, key, herr);
		o = COPY_RETRY;
		goto out;
	}
	metadata_store_object_url(ms, key, store_url, sizeof(store_url));
	copies_stored_url(c->public_base, key, store_url, stored_url, stored_len);
	m = METRICS_COPY_STORED;
	log_debug(NULL, task_id, "result %zu copied: %zu bytes of %s to %s", n, resp.body.len,
		  type, key);
out:
	if (o != COPY_STORED) { /* the reason goes into records and events: text only */
		util_utf8_fix_end(err);
		util_utf8_sanitize(err);
	}
	metrics_copy(m);
	http_response_free(&resp);
	return o;
}
