/* util.c — small helpers shared by every module: time, parsing, UTF-8, buffers. */
#include "core/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <unistd.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t util_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void util_sleep_ms(int64_t ms)
{
	struct timespec ts;
	if (ms <= 0)
		return;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

void util_iso8601(int64_t epoch_ms, char out[UTIL_ISO8601_SIZE])
{
	time_t secs = (time_t)(epoch_ms / 1000);
	struct tm tm;
	char day[64];

	gmtime_r(&secs, &tm);
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, UTIL_ISO8601_SIZE, "%s.%03dZ", day, (int)(epoch_ms % 1000));
}

/* 1 when s starts with the digits and separators of shape: 'd' a digit, 'T' either
 * case of T, anything else itself. strptime alone would skip spaces and take fewer
 * digits ("2024-2-9"), so the shape is checked first. */
static int has_shape(const char *s, const char *shape)
{
	for (; *shape; s++, shape++) {
		if (*shape == 'd' ? !(*s >= '0' && *s <= '9')
		    : *shape == 'T' ? (*s != 'T' && *s != 't') : *s != *shape)
			return 0;
	}
	return 1;
}

int util_parse_iso8601(const char *s, int64_t *out_ms)
{
	struct tm tm, back;
	const char *p;
	int ms = 0;
	long off_s = 0;
	time_t secs;

	if (!s || !has_shape(s, "dddd-dd-ddTdd:dd:dd"))
		return -1;
	memset(&tm, 0, sizeof(tm));
	/* date and time apart: strptime matches the 'T' between them case-sensitively */
	if (!(p = strptime(s, "%Y-%m-%d", &tm)) || p != s + 10 ||
	    !(p = strptime(s + 11, "%H:%M:%S", &tm)) || p != s + 19)
		return -1;
	if (*p == '.') { /* a fraction: milliseconds kept, digits past the third dropped */
		int n = 0;
		for (p++; *p >= '0' && *p <= '9'; p++, n++)
			if (n < 3)
				ms = ms * 10 + (*p - '0');
		if (n == 0)
			return -1;
		for (; n < 3; n++)
			ms *= 10;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if ((*p == '+' || *p == '-') &&
		   (has_shape(p + 1, "dd:dd") || has_shape(p + 1, "dddd"))) {
		struct tm z;
		const char *end;
		memset(&z, 0, sizeof(z));
		end = strptime(p, "%z", &z); /* +HH:MM or +HHMM, minutes below 60 */
		if (!end || z.tm_gmtoff <= -86400 || z.tm_gmtoff >= 86400)
			return -1;
		off_s = z.tm_gmtoff;
		p = end;
	} else {
		return -1; /* no zone: nothing is guessed */
	}
	if (*p || tm.tm_year < 70)
		return -1;
	back = tm;
	secs = timegm(&back);
	/* timegm normalizes (in place): February 30 comes back as March 1 or 2, second 60 as
	 * the next minute; an impossible date is one that does not come back as written */
	if (secs == (time_t)-1 || back.tm_year != tm.tm_year ||
	    back.tm_mon != tm.tm_mon || back.tm_mday != tm.tm_mday ||
	    back.tm_hour != tm.tm_hour || back.tm_min != tm.tm_min || back.tm_sec != tm.tm_sec)
		return -1;
	*out_ms = ((int64_t)secs - off_s) * 1000 + ms;
	return 0;
}

int util_parse_ll(const char *s, long long *out)
{
	char *end;
	long long v;
	const char *d;
	size_t n;

	if (!s)
		return -1;
	d = s[0] == '-' ? s + 1 : s;
	n = strspn(d, "0123456789");
	/* digits only: strtoll alone would also take leading spaces and a '+' */
	if (n < 1 || n > 19 || d[n] != '\0')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

int util_parse_int(const char *s, long long min, long long max, long long *out)
{
	long long v;

	if (util_parse_ll(s, &v) != 0 || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int util_whole_number(double v, long long min, long long max, long long *out)
{
	/* NaN fails every comparison: the range test comes first, so it is refused there;
	 * the cast happens only inside the range, where it is defined */
	if (!(v >= (double)min && v <= (double)max) || v != (double)(long long)v)
		return -1;
	*out = (long long)v;
	return 0;
}

int util_parse_duration_ms(const char *s, int64_t unit_ms, int64_t max_ms, int64_t *ms)
{
	static const struct { const char *suffix; int64_t ms; } units[] = {
		{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
	char num[24];
	size_t n;
	long long v;
	int64_t mult = unit_ms;

	if (!s)
		return -1;
	n = strspn(s, "0123456789");
	if (n == 0 || n >= sizeof(num))
		return -1;
	if (s[n]) {
		mult = 0;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (strcmp(s + n, units[i].suffix) == 0)
				mult = units[i].ms;
		if (!mult)
			return -1;
	}
	memcpy(num, s, n);
	num[n] = '\0';
	if (util_parse_ll(num, &v) != 0 || mult < 1 || v > max_ms / mult)
		return -1;
	*ms = (int64_t)v * mult;
	return 0;
}

int util_parse_listen_addr(const char *s, struct util_listen_addr *out, char *err,
			   size_t errlen)
{
	const char *host, *colon, *p;
	size_t host_len;
	unsigned char bin[16];
	long port = 0;
	char q[72]; /* s as quoted: cut at a character, control bytes as '?' */

	memset(out, 0, sizeof(*out));
	util_text_shown(s, 64, q, sizeof(q));
	if (!s || !*s) {
		snprintf(err, errlen, "no address (expected host:port, [v6]:port or :port)");
		goto bad;
	}
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':') {
			snprintf(err, errlen, "\"%s\": an IPv6 address is written [address]:port",
				 q);
			goto bad;
		}
		host = s + 1;
		host_len = (size_t)(close - host);
		colon = close + 1;
		out->ipv6 = 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon) {
			snprintf(err, errlen, "\"%s\" has no port (expected host:port, "
				 "[v6]:port or :port)", q);
			goto bad;
		}
		host = s;
		host_len = (size_t)(colon - s);
		if (memchr(host, ':', host_len)) {
			snprintf(err, errlen, "\"%s\": an IPv6 address goes in brackets, as in "
				 "[::1]:8080", q);
			goto bad;
		}
	}
	/* the port: 1 to 5 decimal digits, 1..65535 (no sign, no spaces, no 0x) */
	for (p = colon + 1; *p; p++) {
		if (*p < '0' || *p > '9' || p - colon > 5) {
			port = -1;
			break;
		}
		port = port * 10 + (*p - '0');
	}
	if (port < 1 || port > 65535) {
		snprintf(err, errlen, "\"%s\": the port must be a number from 1 to 65535", q);
		goto bad;
	}
	if (host_len == 0 && !out->ipv6) {
		util_strlcpy(out->host, "0.0.0.0", sizeof(out->host));
	} else if (host_len < sizeof(out->host)) {
		memcpy(out->host, host, host_len);
		out->host[host_len] = '\0';
	}
	if (host_len >= sizeof(out->host) ||
	    inet_pton(out->ipv6 ? AF_INET6 : AF_INET, out->host, bin) != 1) {
		snprintf(err, errlen, "\"%s\": %s is not an IP%s address (host names are "
			 "not resolved: write 127.0.0.1 or [::1])", q,
			 out->ipv6 ? "the part in brackets" : "the host", out->ipv6 ? "v6" : "v4");
		goto bad;
	}
	out->port = (int)port;
	return 0;
bad:
	memset(out, 0, sizeof(*out));
	return -1;
}

/* Reads the UTF-8 sequence at p (avail bytes readable). Returns its length when valid;
 * else 0, with *bad set to how many bytes belong to the invalid sequence (at least 1). */
static size_t utf8_seq(const unsigned char *p, size_t avail, size_t *bad)
{
	unsigned char c = p[0];
	size_t n, k;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if ((c & 0xE0) == 0xC0) {
		n = 2;
		cp = c & 0x1F;
	} else if ((c & 0xF0) == 0xE0) {
		n = 3;
		cp = c & 0x0F;
	} else if ((c & 0xF8) == 0xF0) {
		n = 4;
		cp = c & 0x07;
	} else { /* a continuation byte or 0xF8..0xFF: no sequence starts here */
		*bad = 1;
		return 0;
	}
	for (k = 1; k < n && k < avail && (p[k] & 0xC0) == 0x80; k++)
		cp = (cp << 6) | (p[k] & 0x3F);
	if (k < n) { /* cut short */
		*bad = k;
		return 0;
	}
	/* reject overlong forms, surrogates and out-of-range code points */
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF)) {
		*bad = n;
		return 0;
	}
	return n;
}

long util_utf8_len(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	long count = 0;
	size_t i = 0, n, bad;

	while (i < len) {
		if ((n = utf8_seq(p + i, len - i, &bad)) == 0)
			return -1;
		i += n;
		count++;
	}
	return count;
}

size_t util_utf8_cut(char *s, size_t max_bytes)
{
	size_t len = strnlen(s, max_bytes), i;

	if (s[len] == '\0') /* already short enough */
		return len;
	/* s[max_bytes] would be the first byte dropped: if it continues a sequence, drop
	 * that sequence's first bytes too (at most 3 back; further back it is not UTF-8) */
	i = max_bytes;
	while (i > 0 && max_bytes - i < 3 && ((unsigned char)s[i] & 0xC0) == 0x80)
		i--;
	s[i] = '\0';
	return i;
}

void util_utf8_sanitize(char *s)
{
	unsigned char *p = (unsigned char *)s;
	size_t len = strlen(s), i = 0, n, bad;

	while (i < len) {
		if ((n = utf8_seq(p + i, len - i, &bad)) != 0) {
			i += n;
			continue;
		}
		memset(p + i, '?', bad);
		i += bad;
	}
}

size_t util_utf8_fix_end(char *s)
{
	size_t len = strlen(s), i = len, need;
	unsigned char c;

	/* back to the last byte that is not a continuation byte (at most 3 back) */
	while (i > 0 && len - i < 3 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
		i--;
	if (i == 0)
		return len;
	c = (unsigned char)s[i - 1];
	need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
	if (need && len - (i - 1) < need) { /* a lead byte with too few bytes after it */
		s[i - 1] = '\0';
		return i - 1;
	}
	return len;
}

const char *util_text_shown(const char *s, size_t max_bytes, char *buf, size_t buflen)
{
	size_t len = s ? strlen(s) : 0, n;

	if (!buflen)
		return "";
	n = max_bytes < buflen - 1 ? max_bytes : buflen - 1;
	if (len > n) {
		/* s[n] is the first byte dropped: if it continues a sequence, drop that
		 * sequence's first bytes too (as util_utf8_cut does) */
		len = n;
		while (len > 0 && n - len < 3 && ((unsigned char)s[len] & 0xC0) == 0x80)
			len--;
	}
	if (len)
		memcpy(buf, s, len);
	buf[len] = '\0';
	util_utf8_sanitize(buf);
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return buf;
}

void *util_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fputs("kie: out of memory\n", stderr);
		abort();
	}
	return p;
}

void *util_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p) {
		fputs("kie: out of memory\n", stderr);
		abort();
	}
	return p;
}

char *util_strdup(const char *s)
{
	size_t n;
	char *d;
	if (!s)
		return NULL;
	n = strlen(s) + 1;
	d = util_xmalloc(n);
	memcpy(d, s, n);
	return d;
}

char *util_url_base(const char *url)
{
	char *s = util_strdup(url);
	size_t n = s ? strlen(s) : 0;
	while (n && s[n - 1] == '/')
		s[--n] = '\0';
	return s;
}

size_t util_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);
	if (size) {
		size_t c = n < size - 1 ? n : size - 1;
		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return n;
}

void dbuf_init(struct dbuf *b, size_t max_bytes)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max_bytes = max_bytes;
}

int dbuf_add(struct dbuf *b, const void *data, size_t len)
{
	if (b->len + len > b->max_bytes)
		return -1;
	if (b->len + len + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 256;
		while (ncap < b->len + len + 1)
			ncap *= 2;
		char *n = realloc(b->data, ncap);
		if (!n)
			return -1;
		b->data = n;
		b->cap = ncap;
	}
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int dbuf_addstr(struct dbuf *b, const char *s)
{
	return dbuf_add(b, s, strlen(s));
}

int dbuf_printf(struct dbuf *b, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof(small))
		return dbuf_add(b, small, (size_t)n);
	char *big = util_xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	int rc = dbuf_add(b, big, (size_t)n);
	free(big);
	return rc;
}

void dbuf_reset(struct dbuf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void dbuf_free(struct dbuf *b)
{
	free(b->data);
	dbuf_init(b, b->max_bytes);
}

/* Reads the whole file path, at most max bytes, into a new NUL-terminated string (*len its
 * length; a NUL byte inside is the caller's to refuse). what names the setting in the
 * error. The buffers it read through are wiped: the file may hold a secret. */
int util_read_file(const char *path, size_t max, const char *what, char **out, size_t *len,
		   char *err, size_t errlen)
{
	struct dbuf b;
	char chunk[4096];
	ssize_t n;
	int fd, rc = -1;

	dbuf_init(&b, max);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot read %s: %s", what, path, strerror(errno));
		goto out;
	}
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "%s: cannot read %s: %s", what, path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (dbuf_add(&b, chunk, (size_t)n) != 0) {
			snprintf(err, errlen, "%s: %s is larger than %zu bytes", what, path, max);
			goto out;
		}
	}
	*out = util_xmalloc(b.len + 1);
	if (b.len)
		memcpy(*out, b.data, b.len);
	(*out)[b.len] = '\0';
	*len = b.len;
	rc = 0;
out:
	memset(chunk, 0, sizeof(chunk));
	if (fd >= 0)
		close(fd);
	if (b.data)
		memset(b.data, 0, b.cap);
	dbuf_free(&b);
	return rc;
}
