/* test_admin.c — the pure parts of the operator library: durations of --older-than and
 * the reason classes' names (the Redis parts are in tests/system/test_cli_ops.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "admin.h"

static void durations(void **state)
{
	static const struct { const char *in; int64_t ms; } ok[] = {
		{"90s", 90000}, {"15m", 900000}, {"2h", 7200000}, {"7d", 604800000},
		{"500ms", 500}, {"30", 30000}, {"1.5h", 5400000}, {"0s", 0},
	};
	static const char *const bad[] = {"", "s", "-1s", "10y", "1 h", "5sec", "1e13", "h2"};
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(durations),
		cmocka_unit_test(reason_classes),
		cmocka_unit_test(filter_defaults),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
