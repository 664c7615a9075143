/* test_copies.c — result copies: the type sniffer, the declared-type check, keys and
 * stored URLs, the retry backoff, and storedUrls/copyErrors in events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/json_strict.h"
#include "pool/finalize.h"
#include "store/copies.h"

static void sniffs_by_magic_number(void **state)
{
	static const unsigned char png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0};
	static const unsigned char jpeg[] = {0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 'J', 'F'};
	static const unsigned char webp[] = "RIFF\x24\0\0\0WEBPVP8 ";
	static const unsigned char gif[] = "GIF89a\x01\0\x01\0";
	const char *ext;

	assert_string_equal(copies_sniff(png, sizeof(png), &ext), "image/png");
	assert_string_equal(ext, "png");
	assert_string_equal(copies_sniff(jpeg, sizeof(jpeg), &ext), "image/jpeg");
	assert_string_equal(ext, "jpg");
	assert_string_equal(copies_sniff(webp, sizeof(webp) - 1, &ext), "image/webp");
	assert_string_equal(ext, "webp");
	assert_string_equal(copies_sniff(gif, sizeof(gif) - 1, &ext), "image/gif");
	assert_string_equal(ext, "gif");
	assert_string_equal(copies_sniff("GIF87a", 6, &ext), "image/gif");
}

static void refuses_what_is_no_known_image(void **state)
{
	static const unsigned char png7[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a};
	const char *ext = "x";

	assert_null(copies_sniff(NULL, 0, &ext));
	assert_null(ext);
	assert_null(copies_sniff("", 0, &ext));
	assert_null(copies_sniff(png7, sizeof(png7), &ext)); /* cut short */
	assert_null(copies_sniff("<!doctype html><html>", 21, &ext));
	assert_null(copies_sniff("\xff\xd8", 2, &ext));
	assert_null(copies_sniff("RIFF\x24\0\0\0WAVEfmt ", 16, &ext)); /* RIFF, not WebP */
	assert_null(copies_sniff("GIF88a", 6, &ext));
	assert_null(ext);
}

static void declared_type_must_agree(void **state)
{
	assert_true(copies_declared_ok(NULL, "image/png"));
	assert_true(copies_declared_ok("", "image/png"));
	assert_true(copies_declared_ok("application/octet-stream", "image/png"));
	assert_true(copies_declared_ok("Binary/Octet-Stream", "image/jpeg"));
	assert_true(copies_declared_ok("image/png", "image/png"));
	assert_true(copies_declared_ok(" IMAGE/PNG; charset=binary", "image/png"));
	assert_true(copies_declared_ok("image/jpg", "image/jpeg"));
	assert_true(copies_declared_ok("image/pjpeg", "image/jpeg"));
	assert_false(copies_declared_ok("image/png", "image/jpeg"));
	assert_false(copies_declared_ok("image/jpg", "image/png"));
	assert_false(copies_declared_ok("text/html", "image/png"));
	assert_false(copies_declared_ok("image/pngx", "image/png"));
	assert_false(copies_declared_ok("image/png", NULL));
}

static void keys_follow_the_record_names(void **state)
{
	char key[COPIES_KEY_MAX], err[200];

	assert_int_equal(copies_key("task_google_1765178615729", 0, "png", key, err,
				    sizeof(err)), 0);
	assert_string_equal(key, "kie-results/task_google_1765178615729/0.png");
	assert_int_equal(copies_key("t1", 12, "jpg", key, err, sizeof(err)), 0);
	assert_string_equal(key, "kie-results/t1/12.jpg");
	/* an id unsafe as a path segment gets metadata_task_key's encoded name */
	assert_int_equal(copies_key("task/../x", 1, "webp", key, err, sizeof(err)), 0);
	assert_string_equal(key, "kie-results/~task%2F%2E%2E%2Fx/1.webp");
	assert_int_equal(copies_key("..", 0, "png", key, err, sizeof(err)), 0);
	assert_string_equal(key, "kie-results/~%2E%2E/0.png");
	assert_int_equal(copies_key("", 0, "png", key, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "empty"));
}

static void stored_urls_prefer_the_public_base(void **state)
{
	char out[COPIES_URL_MAX];
	const char *key = "kie-results/t1/0.png";

	copies_stored_url("https://cdn.example.com", key, "http://s3/b/x", out, sizeof(out));
	assert_string_equal(out, "https://cdn.example.com/kie-results/t1/0.png");
	copies_stored_url("https://cdn.example.com/img//", key, "http://s3/b/x", out, sizeof(out));
	assert_string_equal(out, "https://cdn.example.com/img/kie-results/t1/0.png");
	copies_stored_url("", key, "http://127.0.0.1:9000/bucket/kie-results/t1/0.png", out,
			  sizeof(out));
	assert_string_equal(out, "http://127.0.0.1:9000/bucket/kie-results/t1/0.png");
	copies_stored_url(NULL, key, "/data/kie-results/t1/0.png", out, sizeof(out));
	assert_string_equal(out, "/data/kie-results/t1/0.png");
}

static void backoff_doubles_to_a_minute(void **state)
{
	assert_int_equal(finalize_copy_backoff_ms(2000, 1), 2000);
	assert_int_equal(finalize_copy_backoff_ms(2000, 2), 4000);
	assert_int_equal(finalize_copy_backoff_ms(2000, 5), 32000);
	assert_int_equal(finalize_copy_backoff_ms(2000, 6), FINALIZE_COPY_RETRY_MAX_MS);
	assert_int_equal(finalize_copy_backoff_ms(2000, 1000000), FINALIZE_COPY_RETRY_MAX_MS);
	assert_int_equal(finalize_copy_backoff_ms(100000, 1), FINALIZE_COPY_RETRY_MAX_MS);
	assert_int_equal(finalize_copy_backoff_ms(0, 3), 4);
}

static void events_carry_stored_urls_and_copy_errors(void **state)
{
	struct kie_result r;
	char *urls[] = {"https://k/0.png", "https://k/1.png", "https://k/2.png"};
	const char *stored[] = {"https://cdn/kie-results/t/0.png", NULL, NULL};
	const char *errors[] = {NULL, "result 1 is larger than KIE_COPY_MAX_BYTES", NULL};
	struct finalize_copies fc = {3, stored, errors};
	char why[200], *ev;

	memset(&r, 0, sizeof(r));
	r.result_urls = urls;
	r.n_results = 3;
	r.success = 1;
	r.state = KIE_TASK_SUCCESS;
	ev = finalize_event_json_copies("completed", "j", "t", "raw", &r, &fc, NULL, 1, NULL);
	assert_int_equal(json_strict_check(ev, strlen(ev), NULL, why, sizeof(why)), 0);
	assert_non_null(strstr(ev, "\"storedUrls\":[\"https://cdn/kie-results/t/0.png\",null,"
				   "null]"));
	assert_non_null(strstr(ev, "\"copyErrors\":[{\"index\":1,\"reason\":\"result 1 is "
				   "larger than KIE_COPY_MAX_BYTES\"}]"));
	free(ev);
	/* without copies (off, or a failed task): neither field */
	ev = finalize_event_json("completed", "j", "t", "raw", &r, NULL, 1, NULL);
	assert_null(strstr(ev, "storedUrls"));
	assert_null(strstr(ev, "copyErrors"));
	free(ev);
}

static void event_copy_fields_are_bounded(void **state)
{
	enum { N = 40 };
	struct kie_result r;
	char *urls[N], *long_err = malloc(5000), *ev, why[200];
	const char *stored[N], *errors[N];
	struct finalize_copies fc = {N, stored, errors};

	memset(long_err, 'e', 4999);
	long_err[4999] = '\0';
	memset(&r, 0, sizeof(r));
	for (int i = 0; i < N; i++) {
		urls[i] = "https://k/x.png";
		stored[i] = i % 2 ? NULL : "https://cdn/x.png";
		errors[i] = i % 2 ? long_err : NULL;
	}
	r.result_urls = urls;
	r.n_results = N;
	r.success = 1;
	ev = finalize_event_json_copies("completed", "j", "t", "raw", &r, &fc, NULL, 1, NULL);
	assert_int_equal(json_strict_check(ev, strlen(ev), NULL, why, sizeof(why)), 0);
	assert_non_null(strstr(ev, "\"storedUrlsOmitted\":30"));
	assert_true(strlen(ev) <= FINALIZE_EVENT_MAX_BYTES);
	assert_null(strstr(ev, "\"index\":21")); /* at most 10 copy errors */
	assert_non_null(strstr(ev, "\"index\":19"));
	free(ev);
	free(long_err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sniffs_by_magic_number),
		cmocka_unit_test(refuses_what_is_no_known_image),
		cmocka_unit_test(declared_type_must_agree),
		cmocka_unit_test(keys_follow_the_record_names),
		cmocka_unit_test(stored_urls_prefer_the_public_base),
		cmocka_unit_test(backoff_doubles_to_a_minute),
		cmocka_unit_test(events_carry_stored_urls_and_copy_errors),
		cmocka_unit_test(event_copy_fields_are_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
