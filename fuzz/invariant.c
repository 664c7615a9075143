/* invariant.c — invariant violations, the known-bug switch, and UTF-8 checks for fuzzing. */
#include "invariant.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Invariants that fail today because of bugs other people are fixing (fuzz/README.md has
 * a reproducer for each). FUZZ_KNOWN_BUGS=1 skips exactly these. */
static const char *const known_bugs[] = {
	"descriptor.strict_gate",     /* job_parse does not run json_strict_check yet */
	"descriptor.error_utf8",      /* "%.64s" cuts a quoted name inside a character */
	"descriptor.error_printable", /* names are quoted raw: newlines reach log lines */
	"kie_response.no_ub",         /* (int)/(int64_t) casts of huge doubles */
	"kie_response.strict_output", /* invalid UTF-8 from KIE passes into our JSON */
	"kie_response.error_utf8",    /* KIE's msg copied raw, cut at 512 bytes */
	"metadata_merge.case",        /* case-insensitive lookup, case-sensitive replace */
	"url.host",                   /* "redis://:6379" and "redis://[::1]:6380" */
	"url.no_secret_in_error",     /* the whole REDIS_URL, password included, in errors */
	"url.callback_complete",      /* jobId silently dropped past 8192 bytes */
	"url.callback_before_fragment", /* jobId appended after a #fragment */
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
