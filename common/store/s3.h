/* s3.h — a minimal S3 client for R2 (or any S3-compatible endpoint): path-style
 * PUT/GET/DELETE signed with AWS Signature V4 through libcurl's CURLOPT_AWS_SIGV4.
 *
 * Must not: know the record's fields or any key scheme. */
#ifndef KIE_S3_H
#define KIE_S3_H

#include <stddef.h>

#include "core/util.h"

struct s3_opts {
	const char *endpoint;   /* "https://<account>.r2.cloudflarestorage.com" or any S3 URL */
	const char *bucket;
	const char *access_key;
	const char *secret_key; /* never printed */
	const char *region;     /* "auto" for R2 */
	const char *user_agent;
	long connect_timeout_ms;
	long timeout_ms;
};

struct s3_client;
/* Returns a new client for one thread (copies opts); free with s3_client_free (NULL-safe). */
struct s3_client *s3_client_new(const struct s3_opts *o);
void s3_client_free(struct s3_client *c);

/* Builds R2's endpoint for an account id into out. */
void s3_r2_endpoint(const char *account_id, char *out, size_t outlen);

/* Returns 0 or -1 with err naming the key, HTTP status and S3 error code. */
int s3_put(struct s3_client *c, const char *key, const void *data, size_t len,
	   const char *content_type, char *err, size_t errlen);
/* PUT with If-None-Match: * — written only when the key does not exist yet (S3 and R2
 * conditional writes). Returns 0 written, 1 the key existed (412: nothing written), -1
 * with err. */
int s3_put_new(struct s3_client *c, const char *key, const void *data, size_t len,
	       const char *content_type, char *err, size_t errlen);
/* Returns 0 (out filled, caller frees with dbuf_free), 1 when the key does not exist,
 * or -1 with err filled. */
int s3_get(struct s3_client *c, const char *key, struct dbuf *out, size_t max_bytes,
	   char *err, size_t errlen);
/* Writes the URL an object is PUT to and read from: <endpoint>/<bucket>/<key>. */
void s3_object_url(const struct s3_client *c, const char *key, char *out, size_t outlen);
int s3_delete(struct s3_client *c, const char *key, char *err, size_t errlen);

/* HEAD /<bucket>: the endpoint answers and the credentials may use the bucket (a cheap
 * signed request for readiness). Returns 0 or -1 with err naming the HTTP status. */
int s3_head_bucket(struct s3_client *c, char *err, size_t errlen);

/* The sentence for an S3 error answer (status, XML body or NULL): "S3 <method> <key>:
 * HTTP <status> <Code>: <Message>" and a hint for the usual causes. Code and Message
 * are quoted cut at a character boundary (127 and 255 bytes), bytes that are not UTF-8
 * text as '?'; a cut by errlen never splits a character. */
void s3_error_message(const char *method, const char *key, long status, const char *body,
		      char *err, size_t errlen);

#endif
