/* fuzz_endpoint.c — what the callback endpoint reads besides the body (the body is
 * fuzz_kie_response's): the request's query string, read as libmicrohttpd reads it, with
 * the endpoint's jobId rule, and the signature headers (kie_webhook_verify). The first
 * byte picks the part (even: query, odd: signature); the rest is its input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "core/util.h"
#include "kie/job.h"
#include "kie/kie_client.h"
#include "invariant.h"

#define NOW_S 1700000000LL
#define WINDOW_S 300

/* The query: the endpoint takes at most one jobId (a second is a 400), and only a valid
 * job id. An id it takes, put into a callback URL whose query is this one, comes back
 * exactly once and whole: kie_callback_url_with_job replaced the jobIds already there. */
static void check_query(const char *q)
{
	char *first = malloc(strlen(q) + 1), *base, *out, *oq = NULL, *again;
	int n = invariant_query_job_ids(q, first, strlen(q) + 1);
	size_t blen;
	CURLU *u;

	if (n != 1 || !job_id_valid(first)) {
		free(first);
		return; /* refused (n > 1, invalid) or a callback without a job id (n == 0) */
	}
	INVARIANT("endpoint.job_id", strlen(first) >= 1 && strlen(first) <= JOB_ID_MAX &&
		  strspn(first, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789._:-") == strlen(first),
		  "job_id_valid took \"%.200s\"", first);
	blen = strlen(q) + 32;
	base = malloc(blen);
	snprintf(base, blen, "https://cb.example/kie?%s", q);
	out = kie_callback_url_with_job(base, first);
	if (out) {
		u = curl_url();
		again = malloc(strlen(out) + 1);
		INVARIANT("endpoint.round_trip",
			  u && curl_url_set(u, CURLUPART_URL, out, 0) == CURLUE_OK &&
			  curl_url_get(u, CURLUPART_QUERY, &oq, 0) == CURLUE_OK &&
			  invariant_query_job_ids(oq, again, strlen(out) + 1) == 1 &&
			  strcmp(again, first) == 0,
			  "jobId=%s put into \"%.200s\" gave \"%.300s\"", first, base, out);
		curl_free(oq);
		curl_url_cleanup(u);
		free(again);
		free(out);
	}
	free(base);
	free(first);
}

/* key, task id, X-Webhook-Timestamp and X-Webhook-Signature, NUL-separated. */
static void check_signature(const char *p, size_t len)
{
	const char *part[4] = {"", "", "", ""};
	char why[300], sig[64], good[64];
	long long ts;
	int k = 0, ok;

	for (size_t i = 0; i < len && k < 4; k++) {
		part[k] = p + i;
		i += strlen(p + i) + 1;
	}
	why[0] = '\0';
	ok = kie_webhook_verify(part[0], part[1], part[2], part[3], NOW_S, WINDOW_S, why,
				sizeof(why)) == 0;
	if (!ok) {
		INVARIANT("endpoint.why", invariant_message(why) && invariant_printable(why),
			  "refusal is empty, not UTF-8 or has control bytes: \"%s\"", why);
	} else {
		/* only the signature of these very bytes, within the window */
		INVARIANT("endpoint.signature",
			  util_parse_ll(part[2], &ts) == 0 && ts >= NOW_S - WINDOW_S &&
			  ts <= NOW_S + WINDOW_S &&
			  kie_webhook_signature(part[0], part[1], part[2], good, sizeof(good)) == 0 &&
			  strcmp(good, part[3]) == 0,
			  "accepted timestamp \"%.40s\" signature \"%.80s\"", part[2], part[3]);
	}
	/* round trip: the signature we compute for a timestamp in the window verifies, and
	 * one byte changed does not */
	snprintf(sig, sizeof(sig), "%lld", NOW_S + (long long)(len % (2 * WINDOW_S + 1)) - WINDOW_S);
	if (kie_webhook_signature(part[0], part[1], sig, good, sizeof(good)) != 0)
		return; /* key and task id too long for the signed message */
	INVARIANT("endpoint.round_trip",
		  kie_webhook_verify(part[0], part[1], sig, good, NOW_S, WINDOW_S, why,
				     sizeof(why)) == 0,
		  "our own signature is refused: %s", why);
	good[0] = good[0] == 'A' ? 'B' : 'A';
	INVARIANT("endpoint.signature",
		  kie_webhook_verify(part[0], part[1], sig, good, NOW_S, WINDOW_S, why,
				     sizeof(why)) != 0,
		  "a changed signature is accepted");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size < 1)
		return 0;
	s = malloc(size);
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	if (data[0] % 2 == 0)
		check_query(s);
	else
		check_signature(s, size - 1);
	free(s);
	return 0;
}
