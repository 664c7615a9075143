/* fuzz_url.c — REDIS_URL parsing and the callback URL's jobId: the input is a URL, then
 * optionally a NUL byte and a job id. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "invariant.h"
#include "kie_client.h"
#include "rconn.h"

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
			INVARIANT("url.no_secret_in_error", n < 2 || !memmem(err, strlen(err), pw, n),
				  "the error message shows the password: \"%s\"", err);
		}
		return;
	}
	INVARIANT("url.fields", terminated(a.host, sizeof(a.host)) &&
		  terminated(a.unix_path, sizeof(a.unix_path)) && terminated(a.user, sizeof(a.user)) &&
		  terminated(a.password, sizeof(a.password)), "a field is not NUL-terminated");
	INVARIANT("url.fields", a.db >= 0 && a.db <= 1000, "db %d", a.db);
	if (strncmp(url, "unix://", 7) == 0) {
		INVARIANT("url.fields", a.unix_path[0] != '\0', "unix:// URL without a path");
		return;
	}
	INVARIANT("url.port", a.port >= 1 && a.port <= 65535, "port %d", a.port);
	if (!invariant_enabled("url.host"))
		return;
	INVARIANT("url.host", a.host[0] != '\0', "redis:// URL \"%.200s\" gave an empty host", url);
	INVARIANT("url.host", !strpbrk(a.host, "/@?#"), "host \"%s\" has a URL delimiter", a.host);
	/* a ':' only inside an IPv6 literal, and then nothing after its ']' */
	if (strchr(a.host, ':')) {
		const char *close = strchr(a.host, ']');
		INVARIANT("url.host", a.host[0] == '[' && close && close[1] == '\0',
			  "host \"%s\" still has a port or is not a bracketed IPv6 address", a.host);
	}
}

static int unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == '~';
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static void check_callback_url(const char *base, const char *job_id)
{
	char *out = kie_callback_url_with_job(base, job_id);
	size_t blen = strlen(base), olen;
	const char *p, *frag;
	size_t k = 0;

	INVARIANT("url.callback", out != NULL, "NULL");
	olen = strlen(out);
	/* the jobId parameter is there whole: base, separator, percent-encoded id */
	/* the known bug's trigger: a result longer than the 8192-byte buffer */
	if (invariant_enabled("url.callback_complete") || blen + 7 + 3 * strlen(job_id) <= 8192) {
		INVARIANT("url.callback_complete",
			  olen >= blen + 7 && memcmp(out, base, blen) == 0 &&
			  (memcmp(out + blen, "?jobId=", 7) == 0 ||
			   memcmp(out + blen, "&jobId=", 7) == 0),
			  "%zu-byte base, %zu-byte result lacks \"jobId=\" after the base", blen, olen);
		for (p = out + blen + 7; *p; k++) {
			int c;
			if (*p == '%') {
				INVARIANT("url.callback_complete", hexval(p[1]) >= 0 && hexval(p[2]) >= 0,
					  "bad escape in \"%s\"", out + blen);
				c = hexval(p[1]) * 16 + hexval(p[2]);
				p += 3;
			} else {
				INVARIANT("url.callback", unreserved((unsigned char)*p),
					  "byte 0x%02x left unencoded in the job id", (unsigned char)*p);
				c = (unsigned char)*p++;
			}
			INVARIANT("url.callback_complete", c == (unsigned char)job_id[k],
				  "the job id does not decode back at byte %zu", k);
		}
		INVARIANT("url.callback_complete", job_id[k] == '\0',
			  "job id cut after %zu of %zu bytes", k, strlen(job_id));
	}
	/* a query parameter after '#' is never sent to the server */
	frag = strchr(base, '#');
	if (frag && invariant_enabled("url.callback_before_fragment")) {
		const char *j = strstr(out, "jobId=");
		INVARIANT("url.callback_before_fragment", j && j < out + (frag - base),
			  "jobId lands in the fragment: \"%.200s\"", out);
	}
	free(out);
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
	free(s);
	return 0;
}
