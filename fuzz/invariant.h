/* invariant.h — how the fuzz targets state invariants: a violation prints its name and
 * aborts (libFuzzer then saves the input); FUZZ_KNOWN_BUGS=1 skips the known ones. */
#ifndef KIE_FUZZ_INVARIANT_H
#define KIE_FUZZ_INVARIANT_H

#include <stddef.h>

/* Aborts with "INVARIANT <name> violated: <why>" unless ok. */
#define INVARIANT(name, ok, ...)                                   \
	do {                                                       \
		if (!(ok))                                         \
			invariant_violated(name, __VA_ARGS__);     \
	} while (0)

void invariant_violated(const char *name, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

/* 0 when the named invariant is a known bug being fixed (listed in invariant.c and
 * fuzz/README.md) and FUZZ_KNOWN_BUGS is 1 or a comma-separated list naming it; else 1.
 * A target then skips the inputs that trigger the known bug when it can tell them apart,
 * or the check. */
int invariant_enabled(const char *name);

/* 1 when s[0..len) is valid UTF-8 with no NUL byte. */
int invariant_utf8(const char *s, size_t len);

/* 1 when s is a message fit for a JSON event: not empty, valid UTF-8. */
int invariant_message(const char *s);

/* 1 when s has no control bytes (a log line stays one line). */
int invariant_printable(const char *s);

/* How the callback endpoint's HTTP server reads a query string (libmicrohttpd 0.9.75's
 * MHD_parse_arguments_, with its '+' and MHD_http_unescape decoding): the number of
 * parameters whose decoded name is exactly "jobId", and the first one's decoded value in
 * first[firstlen] ("" when it has none). */
int invariant_query_job_ids(const char *query, char *first, size_t firstlen);

#endif
