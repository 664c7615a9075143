/* fuzz_url.c — REDIS_URL parsing and the callback URL's jobId: the input is a URL, then
 * optionally a NUL byte and a job id. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <curl/curl.h>

#include "kie/kie_client.h"
#include "net/netaddr.h"
#include "redis/rconn.h"
#include "invariant.h"

static int terminated(const char *field, size_t size)
{
	return memchr(field, 0, size) != NULL;
}

static void check_redis_url(const char *url)
{
	struct rconn_addr a;
	char err[512];

	err[0] = '\0';
	if (rconn_parse_url(url, NULL, &a, err, sizeof(err)) != 0) {
		INVARIANT("url.error", err[0] != '\0', "refused without a reason");
		/* the password is never printed: look for it in front of its '@' */
		const char *scheme = strstr(url, "://"), *at = strrchr(url, '@');
		if (invariant_enabled("url.no_secret_in_error") && scheme && at > scheme) {
			const char *colon = memchr(scheme + 3, ':', (size_t)(at - scheme - 3));
			const char *pw = colon ? colon + 1 : scheme + 3;
			size_t n = (size_t)(at - pw) + 1; /* with the '@' */
			/* a password of at least 4 bytes, quoted with its '@' (shorter ones match
			 * the message's own words) */
			INVARIANT("url.no_secret_in_error", n < 5 || !memmem(err, strlen(err), pw, n),
				  "the error message shows the password: \"%s\"", err);
		}
		return;
	}
	INVARIANT("url.fields", terminated(a.host, sizeof(a.host)) &&
		  terminated(a.unix_path, sizeof(a.unix_path)) && terminated(a.user, sizeof(a.user)) &&
		  terminated(a.password, sizeof(a.password)), "a field is not NUL-terminated");
	INVARIANT("url.fields", a.db >= 0 && a.db <= 1000, "db %d", a.db);
	if (strncasecmp(url, "unix://", 7) == 0) { /* schemes are case-insensitive */
		INVARIANT("url.fields", a.unix_path[0] != '\0', "unix:// URL without a path");
		return;
	}
	INVARIANT("url.port", a.port >= 1 && a.port <= 65535, "port %d", a.port);
	if (!invariant_enabled("url.host"))
		return;
	INVARIANT("url.host", a.host[0] != '\0', "redis:// URL \"%.200s\" gave an empty host", url);
	{ /* the address part (an IPv6 zone id after '%' is the interface's business) */
		char addr[sizeof(a.host)];
		snprintf(addr, sizeof(addr), "%.*s", (int)strcspn(a.host, "%"), a.host);
		INVARIANT("url.host", !strpbrk(addr, "/@?#"), "host \"%s\" has a URL delimiter",
			  a.host);
	}
	/* hiredis takes an IPv6 literal without brackets: a ':' only in one of those */
	if (strchr(a.host, ':')) {
		char lit[sizeof(a.host)], *zone;
		struct in6_addr in6;
		snprintf(lit, sizeof(lit), "%s", a.host);
		if ((zone = strchr(lit, '%'))) /* a zone id is the interface's business */
			*zone = '\0';
		INVARIANT("url.host", !strpbrk(lit, "[]"), "host \"%s\" kept its brackets", a.host);
		INVARIANT("url.host", inet_pton(AF_INET6, lit, &in6) == 1,
			  "host \"%s\" still has a port or is not an IPv6 address", a.host);
	}
}

/* The callback URL KIE gets: jobId in its query, decoding back to the whole id, and
 * never after a #fragment (KIE drops fragments), or NULL when base is not a URL. */
static void check_callback_url(const char *base, const char *job_id)
{
	char *out = kie_callback_url_with_job(base, job_id), *query = NULL, *frag = NULL;
	CURLU *u;
	int found = 0;

	if (!out)
		return;
	u = curl_url();
	INVARIANT("url.callback_complete", u && curl_url_set(u, CURLUPART_URL, out, 0) == CURLUE_OK,
		  "the result does not parse as a URL: \"%.200s\"", out);
	if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK) {
		/* read as the endpoint's HTTP server reads it: exactly one jobId, the whole id
		 * (a base that had one already got a second: the endpoint answers 400) */
		char *first = malloc(strlen(query) + 1);
		int n = invariant_query_job_ids(query, first, strlen(query) + 1);
		INVARIANT("url.callback_one_job_id", n <= 1,
			  "%d jobId parameters in \"%.200s\"", n, out);
		found = n == 1 && strcmp(first, job_id) == 0;
		free(first);
	}
	INVARIANT("url.callback_complete", found,
		  "no jobId=<the whole id> in the query of \"%.200s\"", out);
	/* what follows '#' is never sent: the fragment is the base's, jobId is not in it */
	if (curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK) {
		CURLU *b = curl_url();
		char *bfrag = NULL;
		INVARIANT("url.callback_before_fragment",
			  b && curl_url_set(b, CURLUPART_URL, base, 0) == CURLUE_OK &&
			  curl_url_get(b, CURLUPART_FRAGMENT, &bfrag, 0) == CURLUE_OK &&
			  strcmp(bfrag, frag) == 0,
			  "the fragment changed: \"%.200s\"", out);
		curl_free(bfrag);
		curl_url_cleanup(b);
	}
	curl_free(query);
	curl_free(frag);
	curl_url_cleanup(u);
	free(out);
}

/* A URL's host, as libcurl decodes it: netaddr_url_host_check accepts it only when it
 * is a name of printable ASCII or an IP literal, and its refusals are text. */
static void check_url_host(const char *url)
{
	char why[300], *host = NULL;
	CURLU *u;

	why[0] = '\0';
	if (netaddr_url_host_check(url, why, sizeof(why)) != 0) {
		INVARIANT("url.host_check", invariant_message(why) && invariant_printable(why),
			  "refusal is empty, not UTF-8 or has control bytes: \"%s\"", why);
		return;
	}
	u = curl_url();
	INVARIANT("url.host_check", u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		  curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK,
		  "accepted a URL libcurl does not parse: \"%.200s\"", url);
	for (const unsigned char *p = (const unsigned char *)host; *p; p++)
		INVARIANT("url.host_check", (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
			  (*p >= 'A' && *p <= 'Z') || strchr("-_.:[]", *p),
			  "accepted the host \"%.200s\" (byte 0x%02x)", host, *p);
	curl_free(host);
	curl_url_cleanup(u);
}

/* KIE_COPY_ALLOW_PRIVATE: a policy parsed is within its bounds; a refusal is text. */
static void check_policy(const char *s)
{
	struct netaddr_policy p;
	char why[300];

	why[0] = '\0';
	if (netaddr_policy_parse(s, &p, why, sizeof(why)) != 0) {
		INVARIANT("url.policy", invariant_message(why) && invariant_printable(why),
			  "refusal is empty, not UTF-8 or has control bytes: \"%s\"", why);
		return;
	}
	INVARIANT("url.policy", p.list.n <= CLIENT_ADDR_LIST_MAX, "%zu networks", p.list.n);
	for (size_t i = 0; i < p.list.n; i++)
		INVARIANT("url.policy", p.list.bits[i] >= 0 && p.list.bits[i] <= 128,
			  "prefix %d of network %zu", p.list.bits[i], i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	const char *job_id;
	size_t n;

	memcpy(s, data, size);
	s[size] = '\0';
	n = strlen(s);
	job_id = n < size ? s + n + 1 : "job-1";
	check_redis_url(s);
	check_callback_url(s, job_id);
	check_url_host(s);
	check_policy(s);
	free(s);
	return 0;
}
