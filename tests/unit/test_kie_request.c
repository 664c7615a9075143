/* test_kie_request.c — request validation, the createTask body, callback URLs and the
 * webhook signature (checked against an independent OpenSSL computation). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/util.h"
#include "kie/kie_client.h"

static const char *const one_image[] = {"https://img.example.com/a.png"};

static struct kie_task_request req_with(const char *prompt)
{
	struct kie_task_request r = {.prompt = prompt, .image_urls = one_image, .n_images = 1};
	return r;
}

/* n copies of a 3-byte character: n characters, 3n bytes */
static char *repeat_cjk(size_t n)
{
	char *s = malloc(3 * n + 1);
	for (size_t i = 0; i < n; i++)
		memcpy(s + 3 * i, "\xe8\xa1\xa3", 3); /* 衣 */
	s[3 * n] = '\0';
	return s;
}

static void prompt_limit_counts_characters(void **state)
{
	struct kie_error e;
	char *ok = repeat_cjk(5000), *over = repeat_cjk(5001);
	struct kie_task_request r = req_with(ok);
	assert_int_equal(kie_validate_request(&r, &e), 0);
	r.prompt = over;
	assert_int_equal(kie_validate_request(&r, &e), -1);
	assert_int_equal(e.cls, KIE_ERR_PERMANENT);
	assert_non_null(strstr(e.message, "5001 characters"));
	free(ok);
	free(over);
	r.prompt = "";
	assert_int_equal(kie_validate_request(&r, &e), -1);
	assert_non_null(strstr(e.message, "empty"));
	r.prompt = "\xc3\x28";
	assert_int_equal(kie_validate_request(&r, &e), -1);
	assert_non_null(strstr(e.message, "UTF-8"));
}

static void image_count_and_urls(void **state)
{
	struct kie_error e;
	const char *eleven[11];
	for (int i = 0; i < 11; i++)
		eleven[i] = "https://a.b/c.png";
	struct kie_task_request r = req_with("x");
	r.n_images = 0;
	assert_int_equal(kie_validate_request(&r, &e), -1);
	assert_non_null(strstr(e.message, "0 image URLs"));
	r.image_urls = eleven;
	r.n_images = 11;
	assert_int_equal(kie_validate_request(&r, &e), -1);
	assert_non_null(strstr(e.message, "11 image URLs"));
	r.n_images = 10;
	assert_int_equal(kie_validate_request(&r, &e), 0);
	const char *ftp[] = {"ftp://a.b/c.png"};
	r.image_urls = ftp;
	r.n_images = 1;
	assert_int_equal(kie_validate_request(&r, &e), -1);
	assert_non_null(strstr(e.message, "never file bytes"));
}

static void ratios_and_formats(void **state)
{
	const char *ok[] = {"1:1", "9:16", "16:9", "3:4", "4:3", "3:2", "2:3", "5:4", "4:5",
			    "21:9", "auto"};
	struct kie_error e;
	struct kie_task_request r = req_with("x");
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		r.ratio = ok[i];
		assert_int_equal(kie_validate_request(&r, &e), 0);
	}
	r.ratio = "7:5";
	assert_int_equal(kie_validate_request(&r, &e), -1);
	assert_non_null(strstr(e.message, "7:5"));
	r.ratio = NULL;
	r.output_format = "jpeg";
	assert_int_equal(kie_validate_request(&r, &e), 0);
	r.output_format = "gif";
	assert_int_equal(kie_validate_request(&r, &e), -1);
}

/* set_err cuts a long message at a code point boundary and cleans what it quotes */
static void error_messages_are_valid_utf8(void **state)
{
	struct kie_error e;
	char ratio[1024];
	size_t n = 0;
	ratio[n++] = 'x'; /* 7 + 1 bytes before the 3-byte characters: 511 falls inside one */
	for (int i = 0; i < 300; i++, n += 3)
		memcpy(ratio + n, "\xe8\xa1\xa3", 3);
	ratio[n] = '\0';
	struct kie_task_request r = req_with("x");
	r.ratio = ratio;
	assert_int_equal(kie_validate_request(&r, &e), -1);
	assert_true(util_utf8_len(e.message, strlen(e.message)) >= 0);
	assert_non_null(strstr(e.message, "x\\xE8\\xA1\\xA3")); /* quoted escaped, capped */
	assert_true(strlen(e.message) < 200);
	r.ratio = "\xff:1\n";
	assert_int_equal(kie_validate_request(&r, &e), -1);
	assert_string_equal(e.message, "ratio \"\\xFF:1\\x0A\" is not one of 1:1 9:16 16:9 3:4 "
			    "4:3 3:2 2:3 5:4 4:5 21:9 auto");
}

static void create_body_fields_and_defaults(void **state)
{
	struct kie_error e;
	struct kie_task_request r = req_with("a coat");
	char *body = kie_build_create_body(&r, "google/nano-banana-edit", &e);
	cJSON *o = cJSON_Parse(body), *in = cJSON_GetObjectItem(o, "input");
	assert_string_equal(cJSON_GetObjectItem(o, "model")->valuestring, "google/nano-banana-edit");
	assert_null(cJSON_GetObjectItem(o, "callBackUrl"));
	assert_string_equal(cJSON_GetObjectItem(in, "prompt")->valuestring, "a coat");
	assert_string_equal(cJSON_GetObjectItem(in, "aspect_ratio")->valuestring, "9:16");
	assert_string_equal(cJSON_GetObjectItem(in, "output_format")->valuestring, "png");
	assert_null(cJSON_GetObjectItem(in, "image_size")); /* deprecated name never sent */
	assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(in, "image_urls"), 0)->valuestring,
			    one_image[0]);
	cJSON_Delete(o);
	free(body);
	r.callback_url = "https://app.example.com/cb?jobId=j1";
	r.ratio = "1:1";
	body = kie_build_create_body(&r, "google/nano-banana-edit", &e);
	o = cJSON_Parse(body);
	assert_string_equal(cJSON_GetObjectItem(o, "callBackUrl")->valuestring,
			    "https://app.example.com/cb?jobId=j1");
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "input"),
						"aspect_ratio")->valuestring, "1:1");
	cJSON_Delete(o);
	free(body);
	r.prompt = "";
	assert_null(kie_build_create_body(&r, "google/nano-banana-edit", &e));
}

/* The model that will be sent decides the rules: the client's default model (KIE_MODEL)
 * when the request names none, nano-banana-edit when neither does */
static void model_resolution(void **state)
{
	assert_string_equal(kie_model_resolve(NULL, NULL), "google/nano-banana-edit");
	assert_string_equal(kie_model_resolve("", ""), "google/nano-banana-edit");
	assert_string_equal(kie_model_resolve(NULL, "google/nano-banana"), "google/nano-banana");
	assert_string_equal(kie_model_resolve("", "google/nano-banana"), "google/nano-banana");
	assert_string_equal(kie_model_resolve("google/nano-banana-pro", "google/nano-banana"),
			    "google/nano-banana-pro");
}

static void validation_follows_the_model_sent(void **state)
{
	struct kie_error e;
	struct kie_task_request r = req_with("a coat");
	char *body;

	/* text-to-image: reference images would be dropped silently */
	assert_int_equal(kie_validate_request_for(&r, "google/nano-banana", &e), -1);
	assert_int_equal(e.cls, KIE_ERR_PERMANENT);
	assert_string_equal(e.message, "google/nano-banana takes no reference images (1 given)");
	assert_null(kie_build_create_body(&r, "google/nano-banana", &e));
	assert_string_equal(e.message, "google/nano-banana takes no reference images (1 given)");
	r.n_images = 0;
	assert_int_equal(kie_validate_request_for(&r, "google/nano-banana", &e), 0);
	body = kie_build_create_body(&r, "google/nano-banana", &e);
	assert_non_null(body);
	cJSON *o = cJSON_Parse(body), *in = cJSON_GetObjectItem(o, "input");
	assert_string_equal(cJSON_GetObjectItem(o, "model")->valuestring, "google/nano-banana");
	assert_null(cJSON_GetObjectItem(in, "image_urls"));
	assert_string_equal(cJSON_GetObjectItem(in, "prompt")->valuestring, "a coat");
	cJSON_Delete(o);
	free(body);
	/* the wrapper keeps nano-banana-edit's rules: at least one image */
	assert_int_equal(kie_validate_request(&r, &e), -1);
	assert_non_null(strstr(e.message, "google/nano-banana-edit takes 1 to 10"));

	/* the request's own model wins over the default */
	r = req_with("a coat");
	r.model = "google/nano-banana-edit";
	assert_int_equal(kie_validate_request_for(&r, "google/nano-banana", &e), 0);
	body = kie_build_create_body(&r, "google/nano-banana", &e);
	o = cJSON_Parse(body);
	assert_string_equal(cJSON_GetObjectItem(o, "model")->valuestring, "google/nano-banana-edit");
	assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "input"), "image_urls"));
	cJSON_Delete(o);
	free(body);

	/* nano-banana-pro: 0 to 8 images, sent as image_input */
	const char *nine[9];
	for (int i = 0; i < 9; i++)
		nine[i] = "https://a.b/c.png";
	r = req_with("a coat");
	r.image_urls = nine;
	r.n_images = 9;
	assert_null(kie_build_create_body(&r, "google/nano-banana-pro", &e));
	assert_non_null(strstr(e.message, "9 image URLs given; google/nano-banana-pro takes 0 to 8"));
	r.n_images = 2;
	body = kie_build_create_body(&r, "google/nano-banana-pro", &e);
	o = cJSON_Parse(body);
	in = cJSON_GetObjectItem(o, "input");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(in, "image_input")), 2);
	assert_null(cJSON_GetObjectItem(in, "image_urls"));
	cJSON_Delete(o);
	free(body);

	/* an unknown model is sent as named, with nano-banana-edit's mapping and rules */
	r = req_with("a coat");
	r.model = "acme/imagine";
	body = kie_build_create_body(&r, NULL, &e);
	o = cJSON_Parse(body);
	assert_string_equal(cJSON_GetObjectItem(o, "model")->valuestring, "acme/imagine");
	assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "input"), "image_urls"));
	cJSON_Delete(o);
	free(body);
	r.n_images = 0;
	assert_int_equal(kie_validate_request_for(&r, NULL, &e), -1);
	assert_non_null(strstr(e.message, "acme/imagine takes 1 to 10"));
}

/* Whatever goes into the createTask body is text JSON can carry: URLs and the model name
 * without control characters or invalid UTF-8 (cJSON would copy the bytes as they are) */
static void urls_and_model_are_clean_text(void **state)
{
	struct kie_error e;
	struct kie_task_request r = req_with("x");
	const char *bad_urls[] = {"https://a.b/\xff.png", "https://a.b/c\n.png",
				  "https://a.b/c\x7f.png"};
	for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
		const char *one[] = {bad_urls[i]};
		r = req_with("x");
		r.image_urls = one;
		assert_int_equal(kie_validate_request(&r, &e), -1);
		assert_non_null(strstr(e.message, "image URL 1"));
		r = req_with("x");
		r.callback_url = bad_urls[i];
		assert_int_equal(kie_validate_request(&r, &e), -1);
		assert_non_null(strstr(e.message, "callback URL"));
	}
	const char *ok[] = {"https://a.b/\xe8\xa1\xa3.png"}; /* UTF-8 in a URL is fine */
	r = req_with("x");
	r.image_urls = ok;
	assert_int_equal(kie_validate_request(&r, &e), 0);

	char long_model[300];
	memset(long_model, 'm', sizeof(long_model) - 1);
	long_model[sizeof(long_model) - 1] = '\0';
	const char *bad_models[] = {"google/nano\xff", "google/nano banana", "a\nb", long_model};
	for (size_t i = 0; i < sizeof(bad_models) / sizeof(bad_models[0]); i++) {
		r = req_with("x");
		r.model = bad_models[i];
		assert_int_equal(kie_validate_request(&r, &e), -1);
		assert_non_null(strstr(e.message, "not a model name"));
		r.model = NULL;
		assert_null(kie_build_create_body(&r, bad_models[i], &e));
		assert_non_null(strstr(e.message, "not a model name"));
	}
	/* images counted but not given */
	r = req_with("x");
	r.image_urls = NULL;
	assert_int_equal(kie_validate_request(&r, &e), -1);
	assert_non_null(strstr(e.message, "image URL 1"));
}

/* A missing token or base URL was strlen(NULL); a URL longer than the call buffer was
 * cut and sent to the wrong place */
static void client_refuses_missing_settings_and_long_urls(void **state)
{
	struct kie_client_opts o = {.base_url = "http://127.0.0.1:1", .token = "t",
				    .user_agent = "kie-tests", .connect_timeout_ms = 1000,
				    .timeout_ms = 1000};
	struct kie_client_opts no_token = o, no_base = o;
	no_token.token = NULL;
	no_base.base_url = NULL;
	assert_null(kie_client_new(&no_token));
	assert_null(kie_client_new(&no_base));

	char *base = malloc(5000);
	memcpy(base, "http://127.0.0.1:1/", 19);
	memset(base + 19, 'a', 5000 - 20);
	base[4999] = '\0';
	o.base_url = base;
	struct kie_client *c = kie_client_new(&o);
	assert_non_null(c);
	double credits = -1;
	struct kie_error e;
	assert_int_equal(kie_client_credits(c, &credits, &e), -1);
	assert_int_equal(e.transport, HTTP_TRANSPORT_NOT_SENT);
	assert_string_equal(kie_err_class_str(e.cls), "retryable");
	assert_non_null(strstr(e.message, "longer than"));
	kie_client_free(c);
	free(base);
}

static void callback_url_gets_the_job_id(void **state)
{
	char *a = kie_callback_url_with_job("https://app.example.com/cb", "job-1");
	char *b = kie_callback_url_with_job("https://app.example.com/cb?src=x", "a b/c");
	char *c = kie_callback_url_with_job("https://[::1]:8443/cb?src=x#done", "j-1");
	assert_string_equal(a, "https://app.example.com/cb?jobId=job-1");
	assert_string_equal(b, "https://app.example.com/cb?src=x&jobId=a+b%2fc");
	/* before the fragment (KIE drops fragments), IPv6 host and port kept */
	assert_string_equal(c, "https://[::1]:8443/cb?src=x&jobId=j-1#done");
	assert_null(kie_callback_url_with_job("not a url", "j"));
	free(a);
	free(b);
	free(c);
}

static void webhook_signature_matches_openssl(void **state)
{
	unsigned char md[32];
	unsigned int md_len = 0;
	char expect[64], got[64], why[128];
	const char *msg = "task_1.1700000000";

	HMAC(EVP_sha256(), "k", 1, (const unsigned char *)msg, strlen(msg), md, &md_len);
	EVP_EncodeBlock((unsigned char *)expect, md, (int)md_len);
	assert_int_equal(kie_webhook_signature("k", "task_1", "1700000000", got, sizeof(got)), 0);
	assert_string_equal(got, expect);
	assert_int_equal(kie_webhook_verify("k", "task_1", "1700000000", expect, 1700000100, 300,
					    why, sizeof(why)), 0);
	got[3] ^= 1;
	assert_int_equal(kie_webhook_verify("k", "task_1", "1700000000", got, 1700000100, 300,
					    why, sizeof(why)), -1);
	assert_non_null(strstr(why, "does not match"));
	assert_int_equal(kie_webhook_verify("k", "task_1", "1700000000", expect, 1700000400, 300,
					    why, sizeof(why)), -1);
	assert_non_null(strstr(why, "window"));
	assert_int_equal(kie_webhook_verify("k", "task_1", "17e8", expect, 1700000000, 300, why,
					    sizeof(why)), -1);
	assert_non_null(strstr(why, "not a number"));
	assert_int_equal(kie_webhook_verify("k", "task_1", NULL, expect, 1700000000, 300, why,
					    sizeof(why)), -1);
	assert_non_null(strstr(why, "missing"));
	/* the key matters */
	assert_int_equal(kie_webhook_verify("other", "task_1", "1700000000", expect, 1700000000,
					    300, why, sizeof(why)), -1);
}

/* now - timestamp overflowed (and llabs(INT64_MIN) is undefined): extreme timestamps
 * are refused by the window, with overflow-free arithmetic */
static void webhook_window_extremes(void **state)
{
	char sig[64], why[160];
	static const char *const stamps[] = {"-9223372036854775808", "9223372036854775807",
					     "-1", "0"};
	static const int64_t nows[] = {1700000000, INT64_MAX - 1000, INT64_MIN + 1000,
				       -1700000000};
	for (size_t i = 0; i < sizeof(stamps) / sizeof(stamps[0]); i++) {
		assert_int_equal(kie_webhook_signature("k", "t", stamps[i], sig, sizeof(sig)), 0);
		for (size_t j = 0; j < sizeof(nows) / sizeof(nows[0]); j++) {
			print_message("timestamp %s, now %lld\n", stamps[i], (long long)nows[j]);
			assert_int_equal(kie_webhook_verify("k", "t", stamps[i], sig, nows[j], 300, why,
							    sizeof(why)), -1);
			assert_non_null(strstr(why, "window"));
		}
	}
	/* the edges of the window, both sides */
	assert_int_equal(kie_webhook_signature("k", "t", "1700000000", sig, sizeof(sig)), 0);
	assert_int_equal(kie_webhook_verify("k", "t", "1700000000", sig, 1700000300, 300, why,
					    sizeof(why)), 0);
	assert_int_equal(kie_webhook_verify("k", "t", "1700000000", sig, 1699999700, 300, why,
					    sizeof(why)), 0);
	assert_int_equal(kie_webhook_verify("k", "t", "1700000000", sig, 1700000301, 300, why,
					    sizeof(why)), -1);
	assert_non_null(strstr(why, "301 s behind"));
	assert_int_equal(kie_webhook_verify("k", "t", "1700000000", sig, 1699999699, 300, why,
					    sizeof(why)), -1);
	assert_non_null(strstr(why, "301 s ahead"));
	/* a negative window lets nothing but the exact second through */
	assert_int_equal(kie_webhook_verify("k", "t", "1700000000", sig, 1700000001, -1, why,
					    sizeof(why)), -1);
	assert_int_equal(kie_webhook_verify("k", "t", "1700000000", sig, 1700000000, -1, why,
					    sizeof(why)), 0);
	/* no task id or no key: refused, not a NULL passed to printf */
	assert_int_equal(kie_webhook_verify("k", NULL, "1700000000", sig, 1700000000, 300, why,
					    sizeof(why)), -1);
	assert_int_equal(kie_webhook_verify(NULL, "t", "1700000000", sig, 1700000000, 300, why,
					    sizeof(why)), -1);
	assert_int_equal(kie_webhook_signature("k", NULL, "1", sig, sizeof(sig)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(prompt_limit_counts_characters),
		cmocka_unit_test(image_count_and_urls),
		cmocka_unit_test(ratios_and_formats),
		cmocka_unit_test(error_messages_are_valid_utf8),
		cmocka_unit_test(create_body_fields_and_defaults),
		cmocka_unit_test(model_resolution),
		cmocka_unit_test(validation_follows_the_model_sent),
		cmocka_unit_test(urls_and_model_are_clean_text),
		cmocka_unit_test(client_refuses_missing_settings_and_long_urls),
		cmocka_unit_test(callback_url_gets_the_job_id),
		cmocka_unit_test(webhook_signature_matches_openssl),
		cmocka_unit_test(webhook_window_extremes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
