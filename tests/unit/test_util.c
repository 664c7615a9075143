/* test_util.c — the one checked number parser (counts, durations, JSON numbers) and the
 * text helpers that quote outside bytes into messages (issue 16). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/util.h"
#include "store/s3.h"

static void parse_ll_takes_digits_only(void **state)
{
	static const struct { const char *in; long long v; } ok[] = {
		{"0", 0}, {"-0", 0}, {"42", 42}, {"-42", -42}, {"007", 7},
		{"9223372036854775807", INT64_MAX}, {"-9223372036854775808", INT64_MIN},
	};
	/* strtoll alone takes the first five */
	static const char *const bad[] = {
		" 5", "\t5", "+5", "5 ", "5\n", "", "-", "--5", "1.5", "1e3", "0x10", "nan", "inf",
		"9223372036854775808", "-9223372036854775809", "99999999999999999999", "5a", "٥",
	};
	long long v;
	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		v = 99;
		assert_int_equal(util_parse_ll(ok[i].in, &v), 0);
		assert_int_equal(v, ok[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 99;
		if (util_parse_ll(bad[i], &v) != -1)
			fail_msg("accepted \"%s\" as %lld", bad[i], v);
		assert_int_equal(v, 99);
	}
	assert_int_equal(util_parse_ll(NULL, &v), -1);
	assert_int_equal(util_parse_int("10", 1, 10, &v), 0);
	assert_int_equal(v, 10);
	v = 99;
	assert_int_equal(util_parse_int("11", 1, 10, &v), -1);
	assert_int_equal(util_parse_int("0", 1, 10, &v), -1);
	assert_int_equal(util_parse_int("-1", 0, 10, &v), -1);
	assert_int_equal(v, 99);
}

static void whole_numbers_of_json(void **state)
{
	long long v = 99;
	(void)state;
	assert_int_equal(util_whole_number(5.0, 1, 10, &v), 0);
	assert_int_equal(v, 5);
	assert_int_equal(util_whole_number(1500.0, 1, 31622400000LL, &v), 0);
	assert_int_equal(v, 1500);
	v = 99;
	assert_int_equal(util_whole_number(0.5, 0, 10, &v), -1); /* forMs: 0.5 was "no end" */
	assert_int_equal(util_whole_number(-1.0, 0, 10, &v), -1);
	assert_int_equal(util_whole_number(11.0, 0, 10, &v), -1);
	assert_int_equal(util_whole_number(NAN, 0, 10, &v), -1);
	assert_int_equal(util_whole_number(INFINITY, 0, 10, &v), -1);
	assert_int_equal(util_whole_number(-INFINITY, 0, 10, &v), -1);
	assert_int_equal(util_whole_number(1e300, 0, 9007199254740992LL, &v), -1);
	assert_int_equal(v, 99);
}

static void durations_refuse_nan_fractions_and_overflow(void **state)
{
	int64_t ms = -7;
	(void)state;
	assert_int_equal(util_parse_duration_ms("90", 1000, INT64_MAX, &ms), 0);
	assert_int_equal(ms, 90000);
	assert_int_equal(util_parse_duration_ms("90", 1, INT64_MAX, &ms), 0);
	assert_int_equal(ms, 90);
	assert_int_equal(util_parse_duration_ms("2h", 1, INT64_MAX, &ms), 0);
	assert_int_equal(ms, 7200000);
	/* the largest product that fits, and one past it */
	assert_int_equal(util_parse_duration_ms("106751991167d", 1, INT64_MAX, &ms), 0);
	assert_int_equal(ms, 106751991167LL * 86400000);
	ms = -7;
	assert_int_equal(util_parse_duration_ms("106751991168d", 1, INT64_MAX, &ms), -1);
	assert_int_equal(util_parse_duration_ms("9223372036854775807s", 1, INT64_MAX, &ms), -1);
	assert_int_equal(util_parse_duration_ms("999999999999d", 1, 3153600000000LL, &ms), -1);
	assert_int_equal(util_parse_duration_ms("nan", 1, INT64_MAX, &ms), -1);
	assert_int_equal(util_parse_duration_ms("1.5h", 1, INT64_MAX, &ms), -1);
	assert_int_equal(util_parse_duration_ms("-5s", 1, INT64_MAX, &ms), -1);
	assert_int_equal(util_parse_duration_ms("5S", 1, INT64_MAX, &ms), -1);
	assert_int_equal(util_parse_duration_ms(NULL, 1, INT64_MAX, &ms), -1);
	assert_int_equal(ms, -7);
}

static void fix_end_drops_a_cut_character(void **state)
{
	static const struct { const char *in, *out; } cases[] = {
		{"abc", "abc"}, {"", ""}, {"ab\xc3", "ab"}, {"ab\xc3\xa9", "ab\xc3\xa9"},
		{"a\xe2\x82", "a"}, {"a\xe2\x82\xac", "a\xe2\x82\xac"}, {"a\xf0\x9f\x98", "a"},
		{"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"},
		/* not a cut character: left for util_utf8_sanitize */
		{"a\x80", "a\x80"}, {"\x80\x80\x80\x80", "\x80\x80\x80\x80"}, {"a\xff", "a\xff"},
	};
	char b[32];
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		util_strlcpy(b, cases[i].in, sizeof(b));
		util_utf8_fix_end(b);
		assert_string_equal(b, cases[i].out);
	}
}

static void text_shown_cuts_at_characters_and_hides_controls(void **state)
{
	char b[80], big[400];
	(void)state;
	assert_string_equal(util_text_shown("plain", 64, b, sizeof(b)), "plain");
	assert_string_equal(util_text_shown(NULL, 64, b, sizeof(b)), "");
	assert_string_equal(util_text_shown("a\nb\x7f\x01", 64, b, sizeof(b)), "a?b??");
	assert_string_equal(util_text_shown("a\xdd.example", 64, b, sizeof(b)), "a?.example");
	/* 63 ASCII bytes then é: the cap of 64 would split it */
	memset(big, 'x', 63);
	memcpy(big + 63, "\xc3\xa9tail", 7);
	util_text_shown(big, 64, b, sizeof(b));
	assert_int_equal(strlen(b), 63);
	assert_true(util_utf8_len(b, strlen(b)) == 63);
	/* the buffer smaller than the cap: the buffer rules */
	for (int i = 0; i < 100; i++)
		memcpy(big + 2 * i, "\xc3\xa9", 2);
	big[200] = '\0';
	for (size_t n = 1; n < 12; n++) {
		char small[12];
		util_text_shown(big, 64, small, n);
		assert_true(strlen(small) <= n - 1);
		assert_true(strlen(small) % 2 == 0);
		assert_true(util_utf8_len(small, strlen(small)) >= 0);
	}
	/* every cut of a 4-byte character */
	for (size_t cap = 0; cap < 9; cap++) {
		util_text_shown("\xf0\x9f\x98\x80\xf0\x9f\x98\x80", cap, b, sizeof(b));
		assert_int_equal(strlen(b), cap / 4 * 4);
	}
}

/* Issue 16: S3 error sentences quoted <Message> cut byte-wise into 256 bytes. */
static void s3_error_sentences_stay_utf8(void **state)
{
	char body[2000], err[600];
	int k;
	(void)state;
	k = snprintf(body, sizeof(body), "<Error><Code>AccessDenied</Code><Message>");
	for (int i = 0; i < 300; i++) /* 2-byte characters past 255 bytes: byte 255 splits one */
		k += snprintf(body + k, sizeof(body) - (size_t)k, "\xc3\xa9");
	snprintf(body + k, sizeof(body) - (size_t)k, "</Message></Error>");
	s3_error_message("PUT", "kie-tasks/t.json", 403, body, err, sizeof(err));
	assert_non_null(strstr(err, "S3 PUT kie-tasks/t.json: HTTP 403 AccessDenied: \xc3\xa9"));
	assert_true(util_utf8_len(err, strlen(err)) >= 0);
	/* bytes that are not UTF-8 text, and a short buffer */
	s3_error_message("GET", "k", 500, "<Code>Bad\xdd\n</Code><Message>m</Message>", err,
			 sizeof(err));
	assert_string_equal(err, "S3 GET k: HTTP 500 Bad??: m");
	for (size_t n = 20; n < 80; n++) {
		s3_error_message("PUT", "k", 403, body, err, n);
		assert_true(util_utf8_len(err, strlen(err)) >= 0);
	}
	s3_error_message("PUT", "k", 502, NULL, err, sizeof(err));
	assert_string_equal(err, "S3 PUT k: HTTP 502 error");
}

/* Issue 17: one ISO-8601 reader (strptime + timegm) where metadata.c and admin.c each had
 * their own date arithmetic: the forms they took, the impossible dates they refused, and
 * the edges strptime alone would let through (spaces, short fields, a bare +HH). */
static void iso8601_reads_the_forms_written_and_refuses_impossible_dates(void **state)
{
	static const struct { const char *in; int64_t ms; } ok[] = {
		{"1970-01-01T00:00:00.000Z", 0},
		{"2023-11-14T22:13:20.000Z", 1700000000000LL},
		{"2023-11-14T22:13:20Z", 1700000000000LL},
		{"2023-11-14t22:13:20z", 1700000000000LL},          /* RFC 3339 allows either case */
		{"2023-11-14T22:13:20.5Z", 1700000000500LL},
		{"2023-11-14T22:13:20.123456Z", 1700000000123LL},   /* past the third: dropped */
		{"2023-11-14T23:13:20+01:00", 1700000000000LL},
		{"2023-11-14T23:13:20+0100", 1700000000000LL},
		{"2023-11-14T17:43:20.250-04:30", 1700000000250LL},
		{"2024-02-29T12:00:00Z", 1709208000000LL},          /* a leap day */
		{"2000-02-29T00:00:00Z", 951782400000LL},           /* 2000 is a leap year */
		{"9999-12-31T23:59:59.999Z", 253402300799999LL},
	};
	static const char *const bad[] = {
		"", "yesterday", "2023-11-14", "2023-11-14T22:13:20",  /* no zone: nothing guessed */
		"2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z",      /* not leap years */
		"2023-04-31T00:00:00Z", "2023-13-01T00:00:00Z", "2023-00-10T00:00:00Z",
		"2023-01-00T00:00:00Z", "2023-01-01T24:00:00Z", "2023-01-01T23:60:00Z",
		"2023-01-01T23:59:60Z",                              /* strptime's %S takes 60 */
		"1969-12-31T23:59:59.999Z", "2023-13-40T99:00:00Z",
		" 2023-11-14T22:13:20Z", "2023-1-14T22:13:20Z", "2023-11-14 22:13:20Z",
		"2023-11-14T22:13:20.Z", "2023-11-14T22:13:20.000Zjunk", "2023-11-14T22:13:20+01",
		"2023-11-14T22:13:20+24:00", "2023-11-14T22:13:20+01:60", "2023-11-14T22:13:20+1:00",
		"2023-11-14T22:13:20+01:00:00", "+2023-11-14T22:13:20Z", "20231-11-14T22:13:20Z",
	};
	int64_t ms;
	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ms = -1;
		if (util_parse_iso8601(ok[i].in, &ms) != 0 || ms != ok[i].ms)
			fail_msg("\"%s\": got %lld, want %lld", ok[i].in, (long long)ms,
				 (long long)ok[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ms = 7;
		if (util_parse_iso8601(bad[i], &ms) != -1 || ms != 7)
			fail_msg("\"%s\" was read as %lld", bad[i], (long long)ms);
	}
	assert_int_equal(util_parse_iso8601(NULL, &ms), -1);
	/* what util_iso8601 (strftime) writes reads back the same, to the millisecond */
	for (int64_t t = 0; t < 253402300800000LL; t += 7777777777777LL) {
		char ts[UTIL_ISO8601_SIZE];
		util_iso8601(t, ts);
		assert_int_equal(util_parse_iso8601(ts, &ms), 0);
		assert_int_equal(ms, t);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_ll_takes_digits_only),
		cmocka_unit_test(whole_numbers_of_json),
		cmocka_unit_test(durations_refuse_nan_fractions_and_overflow),
		cmocka_unit_test(fix_end_drops_a_cut_character),
		cmocka_unit_test(text_shown_cuts_at_characters_and_hides_controls),
		cmocka_unit_test(s3_error_sentences_stay_utf8),
		cmocka_unit_test(iso8601_reads_the_forms_written_and_refuses_impossible_dates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
