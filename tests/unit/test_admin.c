/* test_admin.c — the pure parts of the operator library: durations of --older-than, the
 * reason classes' names, and what the page's JSON API reads from a query or a body (the
 * Redis parts are in tests/system/test_cli_ops.py and test_web.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ops/admin.h"
#include "ops/audit.h"

static void durations(void **state)
{
	static const struct { const char *in; int64_t ms; } ok[] = {
		{"90s", 90000}, {"15m", 900000}, {"2h", 7200000}, {"7d", 604800000},
		{"500ms", 500}, {"30", 30000}, {"0s", 0}, {"36500d", 36500LL * 86400000},
		{"0000000000000000007s", 7000},
	};
	/* issue 16: "nan" and "999999999999d" were cast from a double (undefined behaviour;
	 * INT64_MIN on x86-64) and then selected every dead letter. Fractions are refused
	 * too ("1.5h": write 90m), and every form strtod takes beyond digits. */
	static const char *const bad[] = {
		"", "s", "-1s", "10y", "1 h", "5sec", "1e13", "h2", "nan", "NaN", "inf", "-inf",
		"nans", "999999999999d", "36501d", "99999999999999999999", "9223372036854775807ms0",
		"1.5h", "0.5", ".5s", "5.", "+5s", " 5s", "5s ", "0x10s", "1e3s", "5\ns", "-0",
		"١s", /* an Arabic-Indic digit */
	};
	int64_t ms;
	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ms = -7;
		assert_int_equal(admin_parse_duration(ok[i].in, &ms), 0);
		assert_int_equal(ms, ok[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ms = -7;
		assert_int_equal(admin_parse_duration(bad[i], &ms), -1);
		assert_int_equal(ms, -7);
	}
	assert_int_equal(admin_parse_duration(NULL, &ms), -1);
}

static void reason_classes(void **state)
{
	enum admin_reason_class c;
	(void)state;
	for (int i = 0; i < ADMIN_RC_COUNT; i++) {
		const char *name = admin_reason_class_str((enum admin_reason_class)i);
		assert_int_equal(admin_reason_class_parse(name, &c), 0);
		assert_int_equal(c, i);
	}
	assert_string_equal(admin_reason_class_str(ADMIN_RC_ATTEMPTS_EXHAUSTED),
			    "attempts_exhausted");
	assert_int_equal(admin_reason_class_parse("Invalid", &c), -1);
	assert_int_equal(admin_reason_class_parse("", &c), -1);
	assert_int_equal(admin_reason_class_parse(NULL, &c), -1);
}

static void filter_defaults(void **state)
{
	struct admin_filter f;
	(void)state;
	memset(&f, 0x5a, sizeof(f));
	admin_filter_init(&f);
	assert_null(f.ref);
	assert_null(f.type);
	assert_int_equal(f.reason_class, -1);
	assert_int_equal(f.older_than_ms, 0);
	assert_int_equal(f.limit, 0);
	assert_int_equal(f.offset, 0);
}

/* Issue 16: the page's bodies. Every field keeps its type: a wrong one is refused, never
 * read as absent (which selected more). */
static const char *body(const char *what, const char *json, struct admin_body *b)
{
	static char why[512];
	int unknown;
	cJSON *in = cJSON_Parse(json);
	const char *w;
	assert_non_null(in);
	w = admin_body_parse(what, in, b, &unknown);
	snprintf(why, sizeof(why), "%s", w ? w : "");
	/* strings in b point into in: only the verdict and the numbers outlive it here */
	b->f.ref = b->f.type = b->reason = NULL;
	cJSON_Delete(in);
	return w ? why : NULL;
}

#define BODY_REFUSED(what, json, want)                                                 \
	do {                                                                           \
		struct admin_body b_;                                                  \
		const char *w_ = body(what, json, &b_);                                \
		if (!w_ || !strstr(w_, want))                                          \
			fail_msg("%s %s: want a refusal with \"%s\", got \"%s\"", what,      \
				 json, want, w_ ? w_ : "(accepted)");                   \
	} while (0)

static void page_bodies_are_checked(void **state)
{
	struct admin_body b;
	(void)state;
	/* the inputs */
	BODY_REFUSED("dead/purge", "{\"olderThan\":\"nan\"}", "olderThan must be a duration");
	BODY_REFUSED("dead/purge", "{\"olderThan\":\"999999999999d\"}", "olderThan");
	BODY_REFUSED("pause", "{\"forMs\":0.5}", "forMs must be a whole number");
	/* fractions, negatives, overflow, wrong types */
	BODY_REFUSED("pause", "{\"forMs\":-1}", "forMs");
	BODY_REFUSED("pause", "{\"forMs\":0}", "forMs");
	BODY_REFUSED("pause", "{\"forMs\":1e300}", "forMs");
	BODY_REFUSED("pause", "{\"forMs\":31622400001}", "forMs");
	BODY_REFUSED("pause", "{\"forMs\":\"5000\"}", "forMs");
	BODY_REFUSED("pause", "{\"reason\":5}", "reason must be a string");
	BODY_REFUSED("dead/purge", "{\"all\":true,\"limit\":0.5}", "limit must be a whole number");
	BODY_REFUSED("dead/purge", "{\"all\":true,\"limit\":0}", "limit");
	BODY_REFUSED("dead/purge", "{\"all\":true,\"limit\":-3}", "limit");
	BODY_REFUSED("dead/purge", "{\"all\":true,\"limit\":\"5\"}", "limit");
	BODY_REFUSED("dead/purge", "{\"all\":true,\"limit\":1e18}", "limit");
	BODY_REFUSED("dead/purge", "{\"type\":\"raw\",\"dryRun\":\"true\"}", "dryRun must be");
	BODY_REFUSED("dead/purge", "{\"all\":\"yes\"}", "all must be true or false");
	BODY_REFUSED("dead/purge", "{\"type\":\"raw\",\"olderThan\":3600}", "olderThan must be");
	BODY_REFUSED("dead/purge", "{\"type\":\"raw\",\"olderThan\":\"\"}", "olderThan must be");
	BODY_REFUSED("dead/purge", "{\"type\":5}", "type must be");
	BODY_REFUSED("dead/purge", "{\"reason\":\"bogus\"}", "reason must be one of");
	BODY_REFUSED("dead/purge", "{\"ref\":\"@12\"}", "ref must be");
	BODY_REFUSED("dead/purge", "{\"ref\":\"j1\",\"all\":true}", "not both");
	BODY_REFUSED("dead/purge", "{\"allowUncertain\":true,\"all\":true}", "dead/retry only");
	BODY_REFUSED("dead/purge", "{}", "say which entries");
	BODY_REFUSED("dead/purge", "{\"dryRun\":true}", "say which entries");
	BODY_REFUSED("dead/purge", "[]", "must be a JSON object");
	/* a typo is not "absent": it would purge every raw job, whatever its age */
	BODY_REFUSED("dead/purge", "{\"type\":\"raw\",\"olderthan\":\"7d\"}",
		     "unknown field \"olderthan\"");
	BODY_REFUSED("pause", "{\"forms\":60000}", "unknown field \"forms\"");
	/* issue 17: "for" is a duration as `kie pause --for` takes it, a string; a number is
	 * refused, not read as milliseconds or seconds */
	BODY_REFUSED("pause", "{\"for\":60000}", "for must be a non-empty string");
	BODY_REFUSED("pause", "{\"for\":\"nan\"}", "for must be a duration");
	BODY_REFUSED("pause", "{\"for\":\"1.5h\"}", "for must be a duration");
	BODY_REFUSED("pause", "{\"for\":\"-5m\"}", "for must be a duration");
	BODY_REFUSED("pause", "{\"for\":\"0\"}", "for must be a duration");
	BODY_REFUSED("pause", "{\"for\":\"367d\"}", "for must be a duration");
	BODY_REFUSED("pause", "{\"for\":\"99999999999999999999s\"}", "for must be a duration");
	BODY_REFUSED("pause", "{\"for\":\"\"}", "for must be a non-empty string");
	BODY_REFUSED("pause", "{\"for\":\"1m\",\"forMs\":60000}", "not both");
	BODY_REFUSED("resume", "{\"now\":true}", "unknown field \"now\"");
	/* accepted, read as meant */
	assert_null(body("dead/purge", "{\"olderThan\":\"7d\",\"limit\":10,\"dryRun\":true}", &b));
	assert_int_equal(b.f.older_than_ms, 7LL * 86400000);
	assert_int_equal(b.f.limit, 10);
	assert_true(b.dry_run);
	assert_null(body("dead/retry", "{\"ref\":\"@0123abcd\",\"allowUncertain\":true}", &b));
	assert_int_equal(b.f.limit, 1);
	assert_true(b.allow_uncertain);
	assert_null(body("dead/purge", "{\"olderThan\":\"0s\"}", &b)); /* every entry, asked */
	assert_null(body("dead/purge", "{\"all\":true,\"limit\":null}", &b));
	assert_int_equal(b.f.limit, 0);
	assert_null(body("pause", "{\"forMs\":1500,\"reason\":\"deploy\"}", &b));
	assert_int_equal(b.for_ms, 1500);
	assert_null(body("pause", "{\"forMs\":1.5e3}", &b));
	assert_int_equal(b.for_ms, 1500);
	assert_null(body("pause", "{\"for\":\"15m\"}", &b));
	assert_int_equal(b.for_ms, 900000);
	assert_null(body("pause", "{\"for\":\"90\"}", &b)); /* a plain number: seconds */
	assert_int_equal(b.for_ms, 90000);
	assert_null(body("pause", "{\"for\":\"500ms\",\"reason\":\"x\"}", &b));
	assert_int_equal(b.for_ms, 500);
	assert_null(body("pause", "{\"for\":null}", &b));
	assert_int_equal(b.for_ms, 0);
	assert_null(body("pause", "{}", &b));
	assert_int_equal(b.for_ms, 0);
	assert_null(body("resume", "{}", &b));
	/* issue 21: the count of the dry run the operator confirmed */
	BODY_REFUSED("dead/retry", "{\"type\":\"raw\",\"expect\":0}", "expect must be");
	BODY_REFUSED("dead/retry", "{\"type\":\"raw\",\"expect\":\"30\"}", "expect must be");
	BODY_REFUSED("dead/retry", "{\"type\":\"raw\",\"expect\":2.5}", "expect must be");
	BODY_REFUSED("dead/retry", "{\"ref\":\"j1\",\"expect\":1}", "not with ref");
	BODY_REFUSED("pause", "{\"expect\":1}", "unknown field \"expect\"");
	assert_null(body("dead/purge", "{\"all\":true,\"expect\":30}", &b));
	assert_int_equal(b.expect, 30);
	assert_null(body("dead/purge", "{\"all\":true}", &b));
	assert_int_equal(b.expect, 0);
	{
		int unknown = 0;
		cJSON *in = cJSON_Parse("{}");
		assert_non_null(admin_body_parse("dead/explode", in, &b, &unknown));
		assert_true(unknown);
		cJSON_Delete(in);
	}
}

/* Issue 16: the page's query counts were clamped or defaulted silently; now refused. */
static void query_counts_and_filters(void **state)
{
	static const char *const bad[] = {"0", "501", "-1", "1.5", "nan", " 5", "+5", "5 ",
					  "", "1e2", "99999999999999999999"};
	char why[200];
	long v = -7;
	struct admin_filter f;
	(void)state;
	assert_int_equal(admin_count_arg("limit", NULL, 50, 1, 500, &v, why, sizeof(why)), 0);
	assert_int_equal(v, 50);
	assert_int_equal(admin_count_arg("limit", "500", 50, 1, 500, &v, why, sizeof(why)), 0);
	assert_int_equal(v, 500);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		v = -7;
		assert_int_equal(admin_count_arg("limit", bad[i], 50, 1, 500, &v, why, sizeof(why)),
				 -1);
		assert_int_equal(v, -7);
		assert_non_null(strstr(why, "limit must be a whole number from 1 to 500"));
	}
	admin_filter_init(&f);
	assert_non_null(admin_filter_of(NULL, NULL, "nan", &f));
	assert_int_equal(f.older_than_ms, 0);
	assert_null(admin_filter_of("raw", "duplicate", "2h", &f));
	assert_string_equal(f.type, "raw");
	assert_int_equal(f.reason_class, ADMIN_RC_DUPLICATE);
	assert_int_equal(f.older_than_ms, 7200000);
}

/* Issue 21: the audit's "who": a name reduced to harmless characters, and the token only
 * as a fingerprint. */
static void audit_names(void **state)
{
	char who[160];
	(void)state;
	audit_who("ana", "op-token-0123456789abcdef", who, sizeof(who));
	assert_string_equal(who, "ana (token f5ba0ed5)");
	audit_who(NULL, "op-token-0123456789abcdef", who, sizeof(who));
	assert_string_equal(who, "token f5ba0ed5");
	audit_who("<b>eve</b>\"; DROP", "op-token-0123456789abcdef", who, sizeof(who));
	assert_string_equal(who, "beveb DROP (token f5ba0ed5)");
	audit_who("   ", "x", who, sizeof(who));
	assert_null(strstr(who, "("));
	audit_who("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		  "x", who, sizeof(who));
	assert_int_equal(strchr(who, ' ') - who, AUDIT_WHO_MAX_BYTES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(durations),
		cmocka_unit_test(page_bodies_are_checked),
		cmocka_unit_test(query_counts_and_filters),
		cmocka_unit_test(reason_classes),
		cmocka_unit_test(filter_defaults),
		cmocka_unit_test(audit_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
