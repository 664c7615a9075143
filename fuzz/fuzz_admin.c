/* fuzz_admin.c — every parser the operator page, the CLI's filters and the settings reach
 * (issue 16): durations (admin_parse_duration), whole numbers (util_parse_ll,
 * util_whole_number), the page's JSON bodies (admin_body_parse), its query filters and
 * counts (admin_filter_of, admin_count_arg), and settings (config_set). The first byte
 * picks the parser (b % 6); the rest is its input. Each is checked against a statement of
 * what it must accept, written here independently of the code under test. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "config/config.h"
#include "core/util.h"
#include "ops/admin.h"
#include "invariant.h"

static struct config cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	config_defaults(&cfg);
	return 0;
}

/* The value of a run of decimal digits, or -1 past 2^100 (no overflow: __int128). */
static __int128 digits_value(const char *s, size_t n)
{
	__int128 v = 0;
	for (size_t i = 0; i < n; i++) {
		v = v * 10 + (s[i] - '0');
		if (v > ((__int128)1 << 100))
			return -1;
	}
	return v;
}

/* Durations: a run of 1 to 19 digits and an optional unit (ms s m h d); accepted exactly
 * when the product fits ADMIN_DURATION_MAX_MS, and then *ms is that product. */
static void check_duration(const char *s)
{
	static const struct { const char *u; int64_t ms; } units[] = {
		{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
	size_t n = strspn(s, "0123456789");
	int64_t ms = -7, mult = 0;
	int rc = admin_parse_duration(s, &ms);
	__int128 v = n ? digits_value(s, n) : -1;

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(s + n, units[i].u) == 0)
			mult = units[i].ms;
	int want = n >= 1 && n <= 19 && mult && v >= 0 && v * mult <= ADMIN_DURATION_MAX_MS;
	INVARIANT("admin.duration", (rc == 0) == want, "\"%.80s\": %s, want %s", s,
		  rc == 0 ? "accepted" : "refused", want ? "accepted" : "refused");
	if (rc == 0)
		INVARIANT("admin.duration", ms == (int64_t)(v * mult), "\"%.80s\" gave %lld ms", s,
			  (long long)ms);
	else
		INVARIANT("admin.duration", ms == -7, "refused, yet wrote %lld", (long long)ms);
}

/* Whole numbers: '-'? and 1 to 19 digits, nothing else, within long long; the value
 * printed back reads as the same. */
static void check_count(const char *s)
{
	long long v = 99, w = 99;
	const char *d = s[0] == '-' ? s + 1 : s;
	size_t n = strspn(d, "0123456789");
	int rc = util_parse_ll(s, &v);
	__int128 mag = n && d[n] == '\0' ? digits_value(d, n) : -1;
	int want = n >= 1 && n <= 19 && mag >= 0 &&
		   (s[0] == '-' ? mag <= (__int128)INT64_MAX + 1 : mag <= INT64_MAX);
	char back[32];

	INVARIANT("admin.count", (rc == 0) == want, "util_parse_ll(\"%.80s\") %s", s,
		  rc == 0 ? "accepted" : "refused");
	if (rc != 0) {
		INVARIANT("admin.count", v == 99, "refused, yet wrote %lld", v);
		return;
	}
	INVARIANT("admin.count", (s[0] == '-' ? -mag : mag) == (__int128)v,
		  "\"%.80s\" read as %lld", s, v);
	snprintf(back, sizeof(back), "%lld", v);
	INVARIANT("admin.count", util_parse_ll(back, &w) == 0 && w == v, "%s does not read back",
		  back);
	/* util_parse_int is the same with bounds */
	INVARIANT("admin.count", (util_parse_int(s, -5, 5, &w) == 0) == (v >= -5 && v <= 5),
		  "util_parse_int(\"%.80s\", -5, 5)", s);
}

/* A JSON number (8 bytes of a double): util_whole_number takes exactly the integral
 * values within the bounds. */
static void check_whole(const uint8_t *p, size_t len)
{
	double d;
	long long v = 99;
	uint64_t bits = 0;
	int want;

	memcpy(&bits, p, len < 8 ? len : 8);
	memcpy(&d, &bits, sizeof(d));
	want = isfinite(d) && d == floor(d) && d >= 1 && d <= (double)ADMIN_PAUSE_MAX_MS;
	INVARIANT("admin.whole", (util_whole_number(d, 1, ADMIN_PAUSE_MAX_MS, &v) == 0) == want,
		  "%.17g %s", d, want ? "refused" : "accepted");
	if (want)
		INVARIANT("admin.whole", (double)v == d, "%.17g read as %lld", d, v);
}

static void check_message(const char *what, const char *why)
{
	INVARIANT("admin.message", why && invariant_message(why) && invariant_printable(why),
		  "%s: refusal is empty, not UTF-8 or has control bytes: \"%s\"", what,
		  why ? why : "(null)");
}

/* A member present with a value other than null. */
static const cJSON *given(const cJSON *in, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, name);
	return v && !cJSON_IsNull(v) ? v : NULL;
}

/* The page's bodies: a field of the wrong type is refused, never read as absent (which
 * would select more than asked); what is accepted is read as written. */
static void check_body(const cJSON *in, const char *what)
{
	struct admin_body b;
	int unknown, dead = strncmp(what, "dead/", 5) == 0, badtype = 0;
	const char *why = admin_body_parse(what, in, &b, &unknown);
	const cJSON *v;

	if (why) {
		check_message(what, why);
		return;
	}
	INVARIANT("admin.body", cJSON_IsObject(in), "%s: accepted a body that is no object", what);
	cJSON_ArrayForEach(v, in) { /* a typo read as absent would select more */
		const char *known = dead ? ",ref,all,type,reason,olderThan,limit,dryRun,"
					   "allowUncertain,"
				    : strcmp(what, "pause") == 0 ? ",reason,for,forMs," : ",";
		size_t qn = strlen(v->string) + 3;
		char *quoted = malloc(qn);
		snprintf(quoted, qn, ",%s,", v->string);
		INVARIANT("admin.body", !strchr(v->string, ',') && strstr(known, quoted),
			  "%s: accepted the unknown field \"%.40s\"", what, v->string);
		free(quoted);
	}
	if (!dead) {
		if (strcmp(what, "pause") != 0)
			return;
		v = given(in, "forMs");
		{
			const cJSON *d = given(in, "for");
			int64_t ms = 0;
			INVARIANT("admin.body", !(v && d), "pause: both for and forMs accepted");
			/* for: the duration `kie pause --for` reads, a string, 1 ms to a year */
			INVARIANT("admin.body", !d || (cJSON_IsString(d) &&
				  util_parse_duration_ms(d->valuestring, 1000, ADMIN_PAUSE_MAX_MS,
							 &ms) == 0 && ms >= 1 && ms == b.for_ms),
				  "pause: for read as %ld", b.for_ms);
			/* forMs: the whole number written, or 0 only when neither is given */
			INVARIANT("admin.body", d || (v ? cJSON_IsNumber(v) && b.for_ms >= 1 &&
				  b.for_ms <= ADMIN_PAUSE_MAX_MS &&
				  (double)b.for_ms == v->valuedouble : b.for_ms == 0),
				  "pause: forMs read as %ld", b.for_ms);
		}
		v = given(in, "reason");
		INVARIANT("admin.body", !v || cJSON_IsString(v), "pause: reason of another type");
		return;
	}
	for (const char *const *n = (const char *const[]){"ref", "type", "reason", "olderThan",
							  NULL}; *n; n++)
		if ((v = given(in, *n)) && (!cJSON_IsString(v) || !*v->valuestring))
			badtype = 1;
	for (const char *const *n = (const char *const[]){"all", "dryRun", "allowUncertain",
							  NULL}; *n; n++)
		if ((v = given(in, *n)) && !cJSON_IsBool(v))
			badtype = 1;
	INVARIANT("admin.body", !badtype, "%s: a field of the wrong type was read as absent", what);
	if ((v = given(in, "olderThan"))) {
		int64_t ms;
		INVARIANT("admin.body", admin_parse_duration(v->valuestring, &ms) == 0 &&
			  ms == b.f.older_than_ms, "%s: olderThan \"%.40s\" read as %lld", what,
			  v->valuestring, (long long)b.f.older_than_ms);
	}
	/* a purge or retry of everything is asked for, never the fallback of a bad field */
	INVARIANT("admin.body", b.f.ref || b.all || b.f.type || b.f.reason_class >= 0 ||
		  given(in, "olderThan"), "%s: accepted without ref, all or a filter", what);
	v = given(in, "limit");
	INVARIANT("admin.body", b.f.ref ? b.f.limit == 1
		  : v ? cJSON_IsNumber(v) && (double)b.f.limit == v->valuedouble &&
			    b.f.limit >= 1 && b.f.limit <= ADMIN_SCAN_MAX
		      : b.f.limit == 0, "%s: limit read as %ld", what, b.f.limit);
	INVARIANT("admin.body", b.dry_run == cJSON_IsTrue(given(in, "dryRun")),
		  "%s: dryRun read as %d", what, b.dry_run);
}

/* The GET filters and counts: type, reason, olderThan, limit, offset, NUL-separated. */
static void check_query(const char *p, size_t len)
{
	const char *part[5] = {NULL, NULL, NULL, NULL, NULL};
	struct admin_filter f;
	char why[200];
	long n = -7;
	int k = 0;
	const char *w;

	for (size_t i = 0; i < len && k < 5; k++) {
		part[k] = p + i;
		i += strlen(p + i) + 1;
	}
	admin_filter_init(&f);
	w = admin_filter_of(part[0], part[1], part[2], &f);
	if (w) {
		check_message("filter", w);
	} else if (part[2] && *part[2]) {
		int64_t ms;
		INVARIANT("admin.query", admin_parse_duration(part[2], &ms) == 0 &&
			  ms == f.older_than_ms, "olderThan \"%.40s\" read as %lld", part[2],
			  (long long)f.older_than_ms);
	}
	why[0] = '\0';
	if (admin_count_arg("limit", part[3], 50, 1, 500, &n, why, sizeof(why)) == 0)
		INVARIANT("admin.query", part[3] ? n >= 1 && n <= 500 : n == 50,
			  "limit \"%.40s\" read as %ld", part[3] ? part[3] : "(absent)", n);
	else
		INVARIANT("admin.query", n == -7 && strstr(why, "limit") != NULL,
			  "refused limit: n %ld, \"%s\"", n, why);
}

/* Settings: a refusal names the variable and is text; an accepted number is the one
 * written, within its bounds. */
static void check_setting(const char *p, size_t len)
{
	static const char *const names[] = {
		"KIE_WORKER_CONCURRENCY", "KIE_COPY_MAX_BYTES", "KIE_CALLBACK_URL",
		"KIE_COPY_ALLOW_PRIVATE", "KIE_CALLBACK_PATH", "KIE_LOG_LEVEL", "KIE_BASE_URL",
		"KIE_UNCERTAIN_WINDOW_MS"};
	const char *name = names[(len ? (unsigned char)p[0] : 0) % 8];
	const char *value = len ? p + 1 : "";
	char err[600];
	long long v;

	err[0] = '\0';
	if (config_set(&cfg, name, value, err, sizeof(err)) != 0) {
		check_message(name, err);
		INVARIANT("admin.setting", strstr(err, name) != NULL,
			  "the refusal does not name %s: \"%s\"", name, err);
		return;
	}
	if (strcmp(name, "KIE_WORKER_CONCURRENCY") == 0 || strcmp(name, "KIE_COPY_MAX_BYTES") == 0) {
		/* digits only (a '-' before them), as written here, not as strtoll reads */
		const char *d = value[0] == '-' ? value + 1 : value;
		size_t nd = strspn(d, "0123456789");
		long got = strcmp(name, "KIE_COPY_MAX_BYTES") == 0 ? cfg.copy_max_bytes
								 : cfg.concurrency;
		INVARIANT("admin.setting", nd >= 1 && nd <= 19 && d[nd] == '\0' &&
			  util_parse_ll(value, &v) == 0 && v == got,
			  "%s=\"%.40s\" accepted, read as %ld", name, value, got);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;
	size_t n;

	if (size < 1)
		return 0;
	n = size - 1;
	s = malloc(n + 1);
	memcpy(s, data + 1, n);
	s[n] = '\0';
	switch (data[0] % 6) {
	case 0:
		check_duration(s);
		break;
	case 1:
		check_count(s);
		break;
	case 2: {
		cJSON *in = cJSON_ParseWithLength(s, n);
		static const char *const what[] = {"dead/retry", "dead/purge", "pause", "resume",
						   "other"};
		if (in)
			for (size_t i = 0; i < 5; i++)
				check_body(in, what[i]);
		cJSON_Delete(in);
		break;
	}
	case 3:
		check_query(s, n);
		break;
	case 4:
		check_setting(s, n);
		break;
	case 5:
		check_whole(data + 1, n);
		break;
	}
	free(s);
	return 0;
}
