/* test_finalize.c — completion events: bounded whatever KIE answers, strict JSON, meta
 * byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/json_strict.h"
#include "core/util.h"
#include "pool/finalize.h"

static void assert_strict(const char *s)
{
	char why[300];
	if (json_strict_check(s, strlen(s), NULL, why, sizeof(why)) != 0)
		fail_msg("event is not strict JSON (%s): %.300s", why, s);
}

static void meta_is_kept_byte_for_byte(void **state)
{
	const char *meta = "{\"orderId\":9007199254740993,\"x\":1e999,\"k\":[1,2]}";
	char *ev = finalize_event_json("dead", "j1", NULL, "raw", NULL, "bad", 0, meta);
	assert_non_null(strstr(ev, "\"meta\":{\"orderId\":9007199254740993,\"x\":1e999,"));
	assert_strict(ev);
	free(ev);
	/* something that is not JSON (an old record) is left out, never emitted broken */
	ev = finalize_event_json("dead", "j1", NULL, "raw", NULL, "bad", 0, "{\"a\":");
	assert_null(strstr(ev, "\"meta\""));
	assert_strict(ev);
	free(ev);
}

static void urls_and_error_are_bounded(void **state)
{
	struct kie_result r;
	char *urls[40], *ev, *err, *e;
	size_t n;

	memset(&r, 0, sizeof(r));
	for (int i = 0; i < 40; i++) {
		size_t len = i == 3 ? 5000 : 60;
		urls[i] = malloc(len + 1);
		memset(urls[i], 'u', len);
		memcpy(urls[i], "https://", 8);
		urls[i][len] = '\0';
	}
	r.result_urls = urls;
	r.n_results = 40;
	r.success = 1;
	r.state = KIE_TASK_SUCCESS;
	ev = finalize_event_json("completed", "j", "t", "raw", &r, NULL, 1, NULL);
	assert_strict(ev);
	assert_non_null(strstr(ev, "\"resultUrlsOmitted\":30"));
	free(ev);
	/* an error of 5000 bytes of 3-byte characters: cut on a character boundary */
	n = 5001;
	err = malloc(n * 3 + 1);
	for (size_t i = 0; i < n; i++)
		memcpy(err + 3 * i, "\xe6\xb7\xa1", 3);
	err[n * 3] = '\0';
	r.success = 0;
	r.state = KIE_TASK_FAIL;
	ev = finalize_event_json("failed", "j", "t", "raw", &r, err, 1, NULL);
	assert_strict(ev);
	e = strstr(ev, "\"error\":\"");
	assert_non_null(e);
	assert_true(strchr(e + 9, '"') - (e + 9) <= FINALIZE_EVENT_ERROR_MAX);
	assert_true(strlen(ev) <= FINALIZE_EVENT_MAX_BYTES);
	free(ev);
	/* an error of control characters escapes six-fold: the bound still holds */
	memset(err, 1, 1024);
	err[1024] = '\0';
	ev = finalize_event_json("failed", "j", "t", "raw", &r, err, 1, NULL);
	assert_strict(ev);
	assert_true(strlen(ev) <= FINALIZE_EVENT_MAX_BYTES);
	free(ev);
	/* invalid UTF-8 from KIE never reaches the event */
	ev = finalize_event_json("failed", "j", "t", "raw", &r, "bad \xff\xfe text", 1, NULL);
	assert_strict(ev);
	free(ev);
	free(err);
	for (int i = 0; i < 40; i++)
		free(urls[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(meta_is_kept_byte_for_byte),
		cmocka_unit_test(urls_and_error_are_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
