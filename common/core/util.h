/* util.h — clocks, checked number parsing, UTF-8 checks and a capped growable buffer.
 *
 * Must not: depend on any other module, or do I/O beyond clocks and sleeps. */
#ifndef KIE_UTIL_H
#define KIE_UTIL_H

#include <stddef.h>
#include <stdint.h>

int64_t util_now_ms(void);       /* wall clock, epoch milliseconds */
int64_t util_monotonic_ms(void); /* for intervals and deadlines */
void util_sleep_ms(int64_t ms);

/* Writes an ISO-8601 UTC timestamp with milliseconds ("2026-11-24T12:00:00.000Z"). */
#define UTIL_ISO8601_SIZE 80
void util_iso8601(int64_t epoch_ms, char out[UTIL_ISO8601_SIZE]);
/* Reads an ISO-8601 timestamp with a zone, as util_iso8601 and KIE write them:
 * YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM|+HHMM|-HHMM), T and Z in either case,
 * years 1970..9999, into epoch milliseconds (fraction digits past the third dropped).
 * strptime reads the fields and timegm does the arithmetic; a date that does not exist
 * (February 30, hour 24, second 60) is refused, and so is anything without a zone
 * (nothing is guessed). Returns 0, or -1 (*out_ms untouched). */
int util_parse_iso8601(const char *s, int64_t *out_ms);

/* The one checked number parser: every count, duration and setting read from text goes
 * through these. A number is written as an optional '-' and 1 to 19 decimal digits, and
 * nothing else: no spaces, no '+', no fraction, no exponent, no hex, no "nan"/"inf"; a
 * value that does not fit a long long is refused, never clamped. Returns 0 or -1. */
int util_parse_ll(const char *s, long long *out);
/* util_parse_ll, and the value within min..max. Returns 0 or -1 (*out untouched then). */
int util_parse_int(const char *s, long long min, long long max, long long *out);
/* A JSON number (a double) that is a whole number within min..max (min and max at most
 * 2^53 in magnitude): no NaN, no infinity, no fraction. Returns 0 or -1. */
int util_whole_number(double v, long long min, long long max, long long *out);
/* A duration as the CLI and the page write it: a whole number (util_parse_ll's form, no
 * sign) and an optional unit, ms, s, m, h or d; without a unit it is unit_ms
 * milliseconds each. Returns 0 with *ms at most max_ms, or -1 (also when the product
 * would pass max_ms: nothing overflows). */
int util_parse_duration_ms(const char *s, int64_t unit_ms, int64_t max_ms, int64_t *ms);

/* An address to listen on, as KIE_HTTP_ADDR writes it:
 *   "127.0.0.1:8080"  an IPv4 literal and a port
 *   "[::1]:8080"      an IPv6 literal in brackets (no zone id)
 *   ":8080"           every IPv4 interface (0.0.0.0)
 * No host names (nothing is resolved at start-up), port 1..65535 in decimal digits. */
struct util_listen_addr {
	int ipv6;       /* host is an IPv6 literal */
	char host[48];  /* without brackets, as inet_pton reads it */
	int port;
};
/* Returns 0 with out filled, or -1 with err holding a sentence that quotes s (at most 64
 * bytes of it) but names no setting; out is zeroed then. */
int util_parse_listen_addr(const char *s, struct util_listen_addr *out, char *err,
			   size_t errlen);

/* Counts UTF-8 code points; returns -1 if s is not valid UTF-8. */
long util_utf8_len(const char *s, size_t len);
/* Truncates s in place to at most max_bytes bytes, never inside a UTF-8 sequence (it
 * backs up to the start of the code point the cut would split). Returns the new length. */
size_t util_utf8_cut(char *s, size_t max_bytes);
/* Replaces every byte of each invalid UTF-8 sequence in s with '?', in place: the length
 * does not change and the result is valid UTF-8 (overlong forms, surrogates, code points
 * above U+10FFFF, stray continuation bytes and cut-short sequences are all invalid). */
void util_utf8_sanitize(char *s);
/* Drops a UTF-8 sequence cut short at the very end of s (what snprintf leaves when it
 * truncates inside a character), in place. Returns the new length. */
size_t util_utf8_fix_end(char *s);
/* s as a message may quote it: at most max_bytes bytes (and what buf[buflen] holds), cut
 * at a character boundary, invalid UTF-8 and control bytes (C0, DEL) shown as '?'. Writes
 * into buf and returns it; NULL s gives "". */
const char *util_text_shown(const char *s, size_t max_bytes, char *buf, size_t buflen);

/* Copies a C string; NULL in, NULL out. Aborts on out-of-memory. */
char *util_strdup(const char *s);
/* A copy of a base URL without its trailing slashes (caller frees). */
char *util_url_base(const char *url);
void *util_xmalloc(size_t n);
void *util_xcalloc(size_t n, size_t size);

/* A growable byte buffer with a hard cap (curl's dynbuf idea). Always NUL-terminated. */
struct dbuf {
	char *data;
	size_t len;
	size_t cap;
	size_t max_bytes;
};

void dbuf_init(struct dbuf *b, size_t max_bytes);
/* Returns 0, or -1 when the cap would be exceeded (the buffer keeps what it had). */
int dbuf_add(struct dbuf *b, const void *data, size_t len);
int dbuf_addstr(struct dbuf *b, const char *s);
int dbuf_printf(struct dbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dbuf_reset(struct dbuf *b);
void dbuf_free(struct dbuf *b);

/* Copies src into dst[size] always NUL-terminated; returns strlen(src). */
size_t util_strlcpy(char *dst, const char *src, size_t size);

/* Reads the whole file path (at most max bytes) into a new NUL-terminated string and its
 * length; the buffers read through are wiped (secrets). -1 with err naming what and path. */
int util_read_file(const char *path, size_t max, const char *what, char **out, size_t *len,
		   char *err, size_t errlen);

#endif
