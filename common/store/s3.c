/* s3.c — S3 object calls over the shared HTTP layer. curl 7.88 does not hash the
 * payload into x-amz-content-sha256 itself, and R2 requires that header, so we set it. */
#include "store/s3.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "net/http.h"

struct s3_client {
	struct http_client *http;
	char *endpoint;
	char *bucket;
	char *userpwd;  /* "key:secret" — never printed */
	char sigv4[128];
};

void s3_r2_endpoint(const char *account_id, char *out, size_t outlen)
{
	snprintf(out, outlen, "https://%s.r2.cloudflarestorage.com", account_id);
}

struct s3_client *s3_client_new(const struct s3_opts *o)
{
	struct s3_client *c = util_xcalloc(1, sizeof(*c));
	size_t n;

	c->http = http_client_new(o->user_agent, o->connect_timeout_ms, o->timeout_ms);
	if (!c->http) {
		free(c);
		return NULL;
	}
	c->endpoint = util_url_base(o->endpoint);
	c->bucket = util_strdup(o->bucket);
	n = strlen(o->access_key) + strlen(o->secret_key) + 2;
	c->userpwd = util_xmalloc(n);
	snprintf(c->userpwd, n, "%s:%s", o->access_key, o->secret_key);
	snprintf(c->sigv4, sizeof(c->sigv4), "aws:amz:%s:s3", o->region ? o->region : "auto");
	return c;
}

void s3_client_free(struct s3_client *c)
{
	if (!c)
		return;
	http_client_free(c->http);
	free(c->endpoint);
	free(c->bucket);
	if (c->userpwd)
		memset(c->userpwd, 0, strlen(c->userpwd));
	free(c->userpwd);
	free(c);
}

/* Copies the text of <tag>...</tag> from an S3 XML error body, as util_text_shown shows
 * it (cut at a character boundary, bytes that are not UTF-8 text as '?'): it is quoted
 * into error sentences that reach logs and records. */
static void xml_field(const char *xml, const char *tag, char *out, size_t outlen)
{
	char open[64], close[64];
	const char *a, *b;

	out[0] = '\0';
	if (!xml)
		return;
	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	a = strstr(xml, open);
	if (!a)
		return;
	a += strlen(open);
	b = strstr(a, close);
	if (!b)
		return;
	{
		/* one byte past the cap, so the cut can see whether it splits a character */
		size_t n = (size_t)(b - a) < outlen ? (size_t)(b - a) : outlen;
		char *text = util_xmalloc(n + 1);
		memcpy(text, a, n);
		text[n] = '\0';
		util_text_shown(text, outlen - 1, out, outlen);
		free(text);
	}
}

void s3_error_message(const char *method, const char *key, long status, const char *body,
		      char *err, size_t errlen)
{
	char code[128], msg[256];
	const char *hint = "";

	xml_field(body, "Code", code, sizeof(code));
	xml_field(body, "Message", msg, sizeof(msg));
	if (strcmp(code, "SignatureDoesNotMatch") == 0)
		hint = " (check R2_SECRET_ACCESS_KEY)";
	else if (strcmp(code, "InvalidAccessKeyId") == 0)
		hint = " (check R2_ACCESS_KEY_ID)";
	else if (strcmp(code, "NoSuchBucket") == 0)
		hint = " (check R2_BUCKET_NAME)";
	snprintf(err, errlen, "S3 %s %s: HTTP %ld %s%s%s%s", method, key, status,
		 code[0] ? code : "error", msg[0] ? ": " : "", msg, hint);
	util_utf8_fix_end(err); /* errlen may cut the message inside a character */
}

static void s3_error(const char *method, const char *key, const struct http_response *r,
		     char *err, size_t errlen)
{
	s3_error_message(method, key, r->status, r->body.data, err, errlen);
}

void s3_object_url(const struct s3_client *c, const char *key, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/%s/%s", c->endpoint, c->bucket, key);
}

static int s3_call(struct s3_client *c, const char *method, const char *key, const void *data,
		   size_t len, const char *content_type, const char *extra_header, size_t max_bytes,
		   struct http_response *resp, char *err, size_t errlen)
{
	char url[4096], sha_hdr[100], ct_hdr[160], hash[65];
	const char *headers[4] = {sha_hdr, NULL, NULL, NULL};
	int nh = 1;
	struct http_request req = {
		.method = method,
		.url = url,
		.headers = headers,
		.body = data,
		.body_len = len,
		.max_response_bytes = max_bytes,
		.aws_sigv4 = c->sigv4,
		.userpwd = c->userpwd,
	};

	s3_object_url(c, key, url, sizeof(url));
	crypto_sha256_hex(data ? data : "", data ? len : 0, hash);
	snprintf(sha_hdr, sizeof(sha_hdr), "x-amz-content-sha256: %s", hash);
	if (content_type) {
		snprintf(ct_hdr, sizeof(ct_hdr), "Content-Type: %s", content_type);
		headers[nh++] = ct_hdr;
	}
	if (extra_header) /* signed like the others: SigV4 covers every header we set */
		headers[nh++] = extra_header;
	return http_do(c->http, &req, resp, err, errlen);
}

int s3_put(struct s3_client *c, const char *key, const void *data, size_t len,
	   const char *content_type, char *err, size_t errlen)
{
	struct http_response r;
	int rc = s3_call(c, "PUT", key, data, len, content_type, NULL, 64 * 1024, &r, err,
			 errlen);
	if (rc == 0 && (r.status < 200 || r.status > 299)) {
		s3_error("PUT", key, &r, err, errlen);
		rc = -1;
	}
	http_response_free(&r);
	return rc;
}

int s3_put_new(struct s3_client *c, const char *key, const void *data, size_t len,
	       const char *content_type, char *err, size_t errlen)
{
	struct http_response r;
	int rc = s3_call(c, "PUT", key, data, len, content_type, "If-None-Match: *", 64 * 1024,
			 &r, err, errlen);
	if (rc == 0 && r.status == 412) {
		rc = 1;
	} else if (rc == 0 && (r.status < 200 || r.status > 299)) {
		s3_error("PUT", key, &r, err, errlen);
		rc = -1;
	}
	http_response_free(&r);
	return rc;
}

int s3_get(struct s3_client *c, const char *key, struct dbuf *out, size_t max_bytes,
	   char *err, size_t errlen)
{
	struct http_response r;
	int rc = s3_call(c, "GET", key, NULL, 0, NULL, NULL, max_bytes, &r, err, errlen);

	dbuf_init(out, max_bytes);
	if (rc == 0) {
		if (r.status == 404) {
			rc = 1;
		} else if (r.status < 200 || r.status > 299) {
			s3_error("GET", key, &r, err, errlen);
			rc = -1;
		} else {
			*out = r.body; /* hand the buffer over */
			dbuf_init(&r.body, max_bytes);
		}
	}
	http_response_free(&r);
	return rc;
}

int s3_delete(struct s3_client *c, const char *key, char *err, size_t errlen)
{
	struct http_response r;
	int rc = s3_call(c, "DELETE", key, NULL, 0, NULL, NULL, 64 * 1024, &r, err, errlen);
	if (rc == 0 && (r.status < 200 || r.status > 299) && r.status != 404) {
		s3_error("DELETE", key, &r, err, errlen);
		rc = -1;
	}
	http_response_free(&r);
	return rc;
}

int s3_head_bucket(struct s3_client *c, char *err, size_t errlen)
{
	struct http_response r;
	/* an empty key: the URL is <endpoint>/<bucket>/, which S3 reads as the bucket */
	int rc = s3_call(c, "HEAD", "", NULL, 0, NULL, NULL, 64 * 1024, &r, err, errlen);
	if (rc == 0 && (r.status < 200 || r.status > 299)) {
		snprintf(err, errlen, "S3 HEAD bucket %s: HTTP %ld%s", c->bucket, r.status,
			 r.status == 404 ? " (no such bucket)" : r.status == 403
			 ? " (the credentials may not use it)" : "");
		rc = -1;
	}
	http_response_free(&r);
	return rc;
}
