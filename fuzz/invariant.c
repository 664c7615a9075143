/* invariant.c — invariant violations, the known-bug switch, and UTF-8 checks for fuzzing. */
#include "invariant.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "core/util.h"

/* Invariants that fail because of a known bug still being fixed (fuzz/README.md has a
 * reproducer for each). FUZZ_KNOWN_BUGS=1 skips exactly these. Every bug the fuzzers
 * found so far is fixed: the list is empty, and their reproducers in fuzz/known/ are
 * regression inputs (`make fuzz-known` prints FIXED for each). */
static const char *const known_bugs[] = {
	NULL,
};

void invariant_violated(const char *name, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "\nINVARIANT %s violated: ", name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	for (size_t i = 0; known_bugs[i]; i++)
		if (strcmp(known_bugs[i], name) == 0)
			fprintf(stderr, "(a known bug: FUZZ_KNOWN_BUGS=1 skips it; fuzz/README.md)\n");
	abort();
}

/* FUZZ_KNOWN_BUGS=1 skips every known bug; a comma-separated list of names skips those. */
int invariant_enabled(const char *name)
{
	const char *v = getenv("FUZZ_KNOWN_BUGS");
	size_t n = strlen(name);
	int known = 0;

	for (size_t i = 0; known_bugs[i]; i++)
		known |= strcmp(known_bugs[i], name) == 0;
	if (!known || !v)
		return 1;
	if (strcmp(v, "1") == 0)
		return 0;
	for (const char *p = v; (p = strstr(p, name)) != NULL; p += n)
		if ((p == v || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
			return 0;
	return 1;
}

int invariant_utf8(const char *s, size_t len)
{
	return memchr(s, 0, len) == NULL && util_utf8_len(s, len) >= 0;
}

int invariant_message(const char *s)
{
	size_t n = strlen(s);
	return n > 0 && util_utf8_len(s, n) >= 0;
}

int invariant_printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7F)
			return 0;
	return 1;
}

/* MHD_unescape_plus */
static void plus_to_space(char *s)
{
	for (; *s; s++)
		if (*s == '+')
			*s = ' ';
}

/* One parameter as MHD hands it to an iterator (key, key_size, value). */
static void query_param(char *key, char *value, int *n, char *first, size_t firstlen)
{
	size_t klen;
	plus_to_space(key);
	klen = MHD_http_unescape(key);
	if (value) {
		plus_to_space(value);
		MHD_http_unescape(value);
	}
	/* http_server.c: key_size == 5 && memcmp(key, "jobId", 5) == 0 */
	if (klen == 5 && memcmp(key, "jobId", 5) == 0 && (*n)++ == 0)
		snprintf(first, firstlen, "%s", value ? value : "");
}

int invariant_query_job_ids(const char *query, char *first, size_t firstlen)
{
	char *copy = strdup(query), *args = copy;
	int n = 0;

	first[0] = '\0';
	/* MHD_parse_arguments_ of libmicrohttpd 0.9.75 (src/microhttpd/internal.c) */
	while (args && args[0]) {
		char *equals = strchr(args, '='), *amper = strchr(args, '&');
		if (!amper) {
			if (equals)
				*equals++ = '\0';
			query_param(args, equals, &n, first, firstlen);
			break;
		}
		*amper++ = '\0';
		if (!equals || equals >= amper) {
			query_param(args, NULL, &n, first, firstlen);
		} else {
			*equals++ = '\0';
			query_param(args, equals, &n, first, firstlen);
		}
		args = amper;
	}
	free(copy);
	return n;
}
