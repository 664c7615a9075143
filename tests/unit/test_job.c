/* test_job.c — job descriptors: every type parses, every bad field is named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kie/job.h"

#define MAX 65536

static const struct job_parse_opts OPTS = {
	.max_bytes = MAX, .default_model = "google/nano-banana-edit", .prefix = "kie",
	.meta_max_bytes = 4096, .default_callback_url = NULL,
};

static struct job *parse_with(const char *s, const struct job_parse_opts *o, char *err)
{
	return job_parse(s, strlen(s), o, err, 512);
}

static struct job *parse(const char *s, char *err)
{
	return parse_with(s, &OPTS, err);
}

/* Parses s, expecting a refusal whose reason contains want. */
static void refused(const char *s, const char *want)
{
	char err[512] = "";
	struct job *j = parse(s, err);
	if (j || !strstr(err, want))
		fail_msg("descriptor %s: expected a refusal containing \"%s\", got %s \"%s\"", s,
			 want, j ? "acceptance" : "", err);
	job_free(j);
}

#define RAW_OK "\"type\":\"raw\",\"input\":{\"prompt\":\"p\",\"imageUrl\":\"https://a.b/c\"}"

static void strict_json_refusals_name_the_problem(void **state)
{
	/* two objects in one list element: the second would vanish */
	refused("{\"v\":1," RAW_OK "}{\"v\":1," RAW_OK "}", "bytes after the JSON value");
	/* NUL, escaped or raw, would cut the prompt short at KIE */
	refused("{\"v\":1,\"type\":\"raw\",\"input\":{\"prompt\":\"a\\u0000b\","
		"\"imageUrl\":\"https://a.b/c\"}}", "NUL");
	refused("{\"v\":1,\"type\":\"raw\",\"input\":{\"prompt\":\"a\nb\","
		"\"imageUrl\":\"https://a.b/c\"}}", "control byte");
	/* duplicate keys: cJSON takes the first, JavaScript and Python the last */
	refused("{\"v\":1,\"type\":\"raw\",\"input\":{\"prompt\":\"a\",\"prompt\":\"b\","
		"\"imageUrl\":\"https://a.b/c\"}}", "duplicate key \"prompt\"");
	refused("{\"v\":1,\"id\":\"a\",\"\\u0069d\":\"b\"," RAW_OK "}", "duplicate key \"id\"");
	/* nesting past the depth limit says so */
	{
		char deep[4096];
		int k = snprintf(deep, sizeof(deep), "{\"v\":1," RAW_OK ",\"meta\":");
		for (int i = 0; i < 200; i++)
			deep[k++] = '[';
		for (int i = 0; i < 200; i++)
			deep[k++] = ']';
		snprintf(deep + k, sizeof(deep) - (size_t)k, "}");
		refused(deep, "nesting deeper than");
	}
	/* "id": null is not "no id": it would get a second one appended */
	refused("{\"v\":1,\"id\":null," RAW_OK "}", "id must be a string");
	/* callbackUrl scheme checked now, not by KIE with an attempt counted */
	refused("{\"v\":1," RAW_OK ",\"callbackUrl\":\"ftp://a.b/cb\"}", "scheme \"ftp\"");
	/* replyTo never names the worker's own keys */
	refused("{\"v\":1," RAW_OK ",\"replyTo\":\"kie:polling\"}", "worker's own keys");
	refused("{\"v\":1," RAW_OK ",\"replyTo\":\"kie:stats\"}", "worker's own keys");
	refused("{\"v\":1," RAW_OK ",\"replyTo\":\"\"}", "replyTo is empty");
	char err[512];
	struct job *j = parse("{\"v\":1," RAW_OK ",\"replyTo\":\"kie:replies:u1\"}", err);
	assert_non_null(j);
	job_free(j);
	j = parse("{\"v\":1," RAW_OK ",\"replyTo\":\"kiex:polling\"}", err);
	assert_non_null(j);
	job_free(j);
}

static void meta_is_copied_byte_for_byte_and_capped(void **state)
{
	char err[512], big[6000];
	struct job *j = parse("{\"v\":1," RAW_OK ",\"meta\": {\"n\": 9007199254740993, "
			      "\"x\": 1e999, \"s\": \"\\u00e9\"}}", err);
	assert_non_null(j);
	assert_string_equal(j->meta_raw, "{\"n\":9007199254740993,\"x\":1e999,\"s\":\"\\u00e9\"}");
	job_free(j);
	int k = snprintf(big, sizeof(big), "{\"v\":1," RAW_OK ",\"meta\":{\"a\":\"");
	memset(big + k, 'x', 4200);
	snprintf(big + k + 4200, sizeof(big) - (size_t)k - 4200, "\"}}");
	refused(big, "KIE_JOB_META_MAX_BYTES");
}

static void callback_url_gets_job_id_before_fragment_within_2048(void **state)
{
	char err[512], url[2100], desc[2400];
	struct job *j = parse("{\"v\":1,\"id\":\"j-1\"," RAW_OK ",\"callbackUrl\":"
			      "\"https://app.example.com/cb?x=1#frag\"}", err);
	assert_non_null(j);
	assert_string_equal(j->callback_final, "https://app.example.com/cb?x=1&jobId=j-1#frag");
	job_free(j);
	/* 2048 bytes as given, over once jobId is added */
	int k = snprintf(url, sizeof(url), "https://a.b/");
	memset(url + k, 'p', 2048 - (size_t)k);
	url[2048] = '\0';
	snprintf(desc, sizeof(desc), "{\"v\":1,\"id\":\"j-2\"," RAW_OK ",\"callbackUrl\":\"%s\"}",
		 url);
	refused(desc, "KIE accepts at most 2048");
	/* the worker's KIE_CALLBACK_URL gets the id the same way */
	struct job_parse_opts o = OPTS;
	o.default_callback_url = "http://127.0.0.1:9/kie/cb";
	j = parse_with("{\"v\":1,\"id\":\"j-3\"," RAW_OK "}", &o, err);
	assert_non_null(j);
	assert_string_equal(j->callback_final, "http://127.0.0.1:9/kie/cb?jobId=j-3");
	job_free(j);
}

static void generated_id_is_spliced_within_the_limit(void **state)
{
	char err[512];
	struct job_parse_opts o = OPTS;
	char *desc = malloc(600), *spliced;
	size_t len, nlen;
	struct job *j, *again;

	/* a descriptor exactly at the limit, without an id */
	len = (size_t)snprintf(desc, 600, "{\"v\":1," RAW_OK ",\"meta\":{\"pad\":\"");
	o.max_bytes = 300;
	memset(desc + len, 'x', 300 - len - 3);
	memcpy(desc + 300 - 3, "\"}}", 3);
	desc[300] = '\0';
	len = 300;
	j = job_parse(desc, len, &o, err, sizeof(err));
	assert_non_null(j);
	assert_true(j->id_generated);
	spliced = job_splice_id(desc, len, j->id, &nlen);
	assert_non_null(spliced);
	assert_int_equal(nlen, len + JOB_ID_SPLICE_BYTES);
	again = job_parse(spliced, nlen, &o, err, sizeof(err)); /* as after a recovery */
	if (!again)
		fail_msg("spliced descriptor refused: %s", err);
	assert_string_equal(again->id, j->id);
	assert_false(again->id_generated);
	assert_string_equal(again->meta_raw, j->meta_raw);
	job_free(again);
	job_free(j);
	free(spliced);
	/* one byte over the limit is refused, spliced look or not */
	desc[300] = ' ';
	assert_null(job_parse(desc, 301, &o, err, sizeof(err)));
	assert_non_null(strstr(err, "KIE_JOB_MAX_BYTES"));
	free(desc);
}

static void validated_for_the_model_that_is_sent(void **state)
{
	char err[512];
	struct job_parse_opts o = OPTS;
	o.default_model = "google/nano-banana";
	/* nano-banana takes no reference images: refused, not silently dropped */
	struct job *j = parse_with("{\"v\":1," RAW_OK "}", &o, err);
	assert_null(j);
	assert_non_null(strstr(err, "google/nano-banana"));
	j = parse_with("{\"v\":1,\"type\":\"raw\",\"input\":{\"prompt\":\"p\"}}", &o, err);
	assert_non_null(j);
	assert_string_equal(j->model_used, "google/nano-banana");
	job_free(j);
	j = parse("{\"v\":1,\"type\":\"raw\",\"input\":{\"prompt\":\"p\",\"model\":"
		  "\"google/nano-banana-edit\",\"imageUrl\":\"https://a.b/c\"}}", err);
	assert_non_null(j);
	assert_string_equal(j->model_used, "google/nano-banana-edit");
	job_free(j);
}

/* Issue 16, found by fuzzing: cJSON_Minify (1.7.15) read the '"' closing "C:\\" as
 * escaped, and from there took spaces in strings for whitespace and "//" for a comment. */
static void meta_with_backslashes_is_kept_as_sent(void **state)
{
	static const struct { const char *meta, *want; } cases[] = {
		{"{\"dir\":\"C:\\\\\", \"note\":\"a b\"}",
		 "{\"dir\":\"C:\\\\\",\"note\":\"a b\"}"},
		{"{\"p\":\"C:\\\\\",\"u\":\"http://x\"}",
		 "{\"p\":\"C:\\\\\",\"u\":\"http://x\"}"},
		{"{ \"q\" : \"say \\\"hi \\\\\\\" /* no */ //x\" , \"n\" : [ 1 , -2.5e3 ] }",
		 "{\"q\":\"say \\\"hi \\\\\\\" /* no */ //x\",\"n\":[1,-2.5e3]}"},
		{"{\"t\":\"\\t\\\\\",\"s\":\" \\u0020 \"}", "{\"t\":\"\\t\\\\\",\"s\":\" \\u0020 \"}"},
	};
	char err[512], desc[512];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(desc, sizeof(desc), "{\"v\":1," RAW_OK ",\"meta\":%s}", cases[i].meta);
		struct job *j = parse(desc, err);
		if (!j)
			fail_msg("refused %s: %s", desc, err);
		assert_string_equal(j->meta_raw, cases[i].want);
		/* and into what the events and the kept descriptor carry */
		char *out = job_to_json(j);
		assert_non_null(strstr(out, cases[i].want));
		free(out);
		job_free(j);
	}
}

/* Issue 16: "model": "" was checked as google/nano-banana-edit and sent as KIE_MODEL. */
static void empty_or_malformed_model_is_refused_at_parse(void **state)
{
	refused("{\"v\":1,\"type\":\"raw\",\"input\":{\"prompt\":\"p\",\"model\":\"\","
		"\"imageUrl\":\"https://a.b/c\"}}", "input.model is empty");
	refused("{\"v\":1,\"type\":\"raw\",\"input\":{\"prompt\":\"p\",\"model\":\"a b\","
		"\"imageUrl\":\"https://a.b/c\"}}", "input.model \"a b\" is not a model name");
	refused("{\"v\":1,\"type\":\"raw\",\"input\":{\"prompt\":\"p\",\"model\":\"m\\u00e9\","
		"\"imageUrl\":\"https://a.b/c\"}}", "input.model");
	/* null is "not given": KIE_MODEL */
	char err[512];
	struct job *j = parse("{\"v\":1,\"type\":\"raw\",\"input\":{\"prompt\":\"p\",\"model\":null,"
			      "\"imageUrl\":\"https://a.b/c\"}}", err);
	assert_non_null(j);
	assert_string_equal(j->model_used, "google/nano-banana-edit");
	job_free(j);
}

/* Issue 16: libcurl decodes a percent-encoded host into bytes no resolver takes; the
 * createTask was refused only after an attempt was counted. */
static void callback_url_host_is_checked_decoded(void **state)
{
	char err[512];
	struct job_parse_opts o = OPTS;
	refused("{\"v\":1," RAW_OK ",\"callbackUrl\":\"https://a%dd.example/cb\"}",
		"callbackUrl has the host \"a?.example\" once percent-decoded");
	refused("{\"v\":1," RAW_OK ",\"callbackUrl\":\"https://a%2520b.example/cb\"}",
		"callbackUrl has the host");
	refused("{\"v\":1," RAW_OK ",\"callbackUrl\":\"https://-x.example/cb\"}",
		"not a host name");
	/* decoded to a good name, an IP literal, an IPv6 literal: fine */
	struct job *j = parse("{\"v\":1,\"id\":\"h\"," RAW_OK ",\"callbackUrl\":"
			      "\"https://%61pp.example/cb\"}", err);
	assert_non_null(j);
	assert_string_equal(j->callback_final, "https://app.example/cb?jobId=h");
	job_free(j);
	j = parse("{\"v\":1,\"id\":\"h\"," RAW_OK ",\"callbackUrl\":\"http://[::1]:8080/cb\"}",
		  err);
	assert_non_null(j);
	job_free(j);
	/* the same with KIE_CALLBACK_URL: every job would fail */
	o.default_callback_url = "https://a%dd.example/cb";
	assert_null(parse_with("{\"v\":1," RAW_OK "}", &o, err));
	assert_non_null(strstr(err, "KIE_CALLBACK_URL has the host"));
}

/* Issue 16: a callbackUrl that has jobId= already got a second one, and the endpoint
 * answers 400 to a query with two. */
static void callback_url_job_id_is_replaced_not_added(void **state)
{
	static const struct { const char *base, *want; } cases[] = {
		{"https://a.example/cb?jobId=old", "https://a.example/cb?jobId=j-9"},
		{"https://a.example/cb?x=1&jobId=old&y=2#f", "https://a.example/cb?x=1&y=2&jobId=j-9#f"},
		{"https://a.example/cb?jobId=a&jobId=b&job%49d=c&jobId", "https://a.example/cb?jobId=j-9"},
		{"https://a.example/cb?jobIdx=1&xjobId=2&jobid=3",
		 "https://a.example/cb?jobIdx=1&xjobId=2&jobid=3&jobId=j-9"},
		{"https://a.example/cb?x=%26jobId%3Devil", "https://a.example/cb?x=%26jobId%3Devil&jobId=j-9"},
		{"https://a.example/cb?&&x=1&", "https://a.example/cb?x=1&jobId=j-9"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = kie_callback_url_with_job(cases[i].base, "j-9");
		if (!out || strcmp(out, cases[i].want) != 0)
			fail_msg("%s\n  gave %s\n  want %s", cases[i].base, out ? out : "NULL",
				 cases[i].want);
		free(out);
	}
	char err[512];
	struct job *j = parse("{\"v\":1,\"id\":\"j-9\"," RAW_OK ",\"callbackUrl\":"
			      "\"https://a.example/cb?jobId=other\"}", err);
	assert_non_null(j);
	assert_string_equal(j->callback_final, "https://a.example/cb?jobId=j-9");
	job_free(j);
}

static void every_type_parses(void **state)
{
	char err[512];
	struct job *j = parse("{\"v\":1,\"id\":\"g1\",\"type\":\"generate_image\",\"input\":"
			      "{\"description\":\"d\",\"imageUrl\":\"https://a.b/c.png\","
			      "\"extractTopOnly\":true,\"wearMask\":true},\"replyTo\":\"r\","
			      "\"maxAttempts\":5,\"meta\":{\"u\":1},\"character\":\"ava\"}", err);
	assert_non_null(j);
	assert_string_equal(j->id, "g1");
	assert_false(j->id_generated);
	assert_int_equal(j->type, JOB_GENERATE_IMAGE);
	assert_true(j->extract_top_only && j->wear_mask);
	assert_int_equal(j->max_attempts, 5);
	assert_string_equal(j->reply_to, "r");
	assert_string_equal(j->meta_raw, "{\"u\":1}");
	job_free(j);
	j = parse("{\"v\":1,\"type\":\"model_pose\",\"input\":{\"imageUrls\":[\"https://a.b/1\","
		  "\"https://a.b/2\"],\"pose\":\"p\"}}", err);
	assert_non_null(j);
	assert_int_equal(j->n_images, 2);
	assert_true(j->id_generated);
	assert_int_equal(strncmp(j->id, "job_", 4), 0);
	assert_int_equal(strlen(j->id), 4 + 24);
	job_free(j);
	j = parse("{\"v\":1,\"type\":\"outfit_change_v2\",\"input\":{\"clothingImageUrl\":"
		  "\"https://a.b/c\",\"modelImageUrl\":\"https://a.b/m\",\"poseTweak\":true,"
		  "\"seed\":9}}", err);
	assert_non_null(j);
	assert_string_equal(j->image_urls[0], "https://a.b/c"); /* clothing first */
	assert_string_equal(j->image_urls[1], "https://a.b/m");
	assert_int_equal(j->seed, 9);
	job_free(j);
	j = parse("{\"v\":1,\"type\":\"extract_clothing\",\"input\":{\"imageUrl\":\"https://a.b/c\"}}", err);
	assert_non_null(j);
	struct kie_task_request req;
	job_to_request(j, "p", &req);
	assert_string_equal(req.ratio, "1:1");
	job_free(j);
	j = parse("{\"v\":1,\"type\":\"raw\",\"input\":{\"prompt\":\"p\",\"model\":\"google/nano-banana\"}}", err);
	assert_non_null(j);
	assert_string_equal(j->model, "google/nano-banana");
	job_free(j);
}

static void bad_descriptors_name_the_problem(void **state)
{
	static const struct { const char *in, *needle; } cases[] = {
		{"nope", "not strict JSON"},
		{"[]", "must be a JSON object"},
		{"{\"type\":\"raw\",\"input\":{}}", "v is missing"},
		{"{\"v\":2,\"type\":\"raw\",\"input\":{}}", "v=2 is not supported"},
		{"{\"v\":1,\"type\":\"paint\",\"input\":{}}", "type \"paint\" is unknown"},
		{"{\"v\":1,\"type\":\"raw\",\"input\":{\"prompt\":\"x\"},\"extra\":1}", "unknown field \"extra\""},
		{"{\"v\":1,\"type\":\"raw\",\"input\":{\"prompt\":\"x\",\"colour\":1}}", "input.unknown field \"colour\""},
		{"{\"v\":1,\"type\":\"raw\"}", "input is missing"},
		{"{\"v\":1,\"type\":\"generate_image\",\"input\":{\"imageUrl\":\"https://a.b\"}}", "input.description is missing"},
		{"{\"v\":1,\"type\":\"model_pose\",\"input\":{\"imageUrl\":7}}", "input.imageUrl must be a string"},
		{"{\"v\":1,\"type\":\"model_pose\",\"input\":{\"imageUrl\":\"https://a.b\",\"imageUrls\":[]}}", "not both"},
		{"{\"v\":1,\"type\":\"model_pose\",\"input\":{}}", "input.imageUrl (or imageUrls) is missing"},
		{"{\"v\":1,\"type\":\"raw\",\"ratio\":\"7:5\",\"input\":{\"prompt\":\"x\",\"imageUrl\":\"https://a.b/c\"}}", "ratio \"7:5\""},
		{"{\"v\":1,\"type\":\"extract_clothing\",\"ratio\":\"16:9\",\"input\":{\"imageUrl\":\"https://a.b/c\"}}", "always produces 1:1"},
		{"{\"v\":1,\"type\":\"raw\",\"maxAttempts\":0,\"input\":{\"prompt\":\"x\"}}", "maxAttempts must be"},
		{"{\"v\":1,\"type\":\"raw\",\"maxAttempts\":101,\"input\":{\"prompt\":\"x\"}}", "maxAttempts must be"},
		{"{\"v\":1,\"type\":\"raw\",\"maxAttempts\":1.5,\"input\":{\"prompt\":\"x\"}}", "maxAttempts must be"},
		{"{\"v\":1,\"id\":\"a b\",\"type\":\"raw\",\"input\":{\"prompt\":\"x\"}}", "id must be"},
		{"{\"v\":1,\"type\":\"raw\",\"meta\":[1],\"input\":{\"prompt\":\"x\"}}", "meta must be an object"},
		{"{\"v\":1,\"type\":\"raw\",\"input\":{\"prompt\":\"x\",\"imageUrl\":\"file:///etc/passwd\"}}", "http(s)"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[512] = "";
		struct job *j = parse(cases[i].in, err);
		if (j || !strstr(err, cases[i].needle))
			fail_msg("case %zu: %s -> \"%s\" (wanted \"%s\")", i, cases[i].in, err,
				 cases[i].needle);
	}
}

static void limits_size_images_prompt_utf8(void **state)
{
	char err[512], *big = malloc(MAX + 100);
	memset(big, ' ', MAX + 99);
	big[MAX + 99] = '\0';
	assert_null(job_parse(big, strlen(big), &OPTS, err, sizeof(err)));
	assert_non_null(strstr(err, "KIE_JOB_MAX_BYTES"));
	free(big);
	char buf[2048];
	int len = snprintf(buf, sizeof(buf), "{\"v\":1,\"type\":\"raw\",\"input\":{\"prompt\":"
			   "\"x\",\"imageUrls\":[");
	for (int i = 0; i < 11; i++)
		len += snprintf(buf + len, sizeof(buf) - (size_t)len, "%s\"https://a.b/c\"",
				i ? "," : "");
	snprintf(buf + len, sizeof(buf) - (size_t)len, "]}}");
	assert_null(parse(buf, err));
	assert_non_null(strstr(err, "at most 10"));
	const char bad_utf8[] = "{\"v\":1,\"type\":\"raw\",\"input\":{\"prompt\":\"\xff\"}}";
	assert_null(job_parse(bad_utf8, sizeof(bad_utf8) - 1, &OPTS, err, sizeof(err)));
	assert_non_null(strstr(err, "invalid UTF-8"));
	size_t n = 5001;
	char *p = malloc(n + 200);
	int k = snprintf(p, 200, "{\"v\":1,\"type\":\"raw\",\"input\":{\"prompt\":\"");
	memset(p + k, 'x', n);
	snprintf(p + k + n, 200, "\",\"imageUrl\":\"https://a.b/c\"}}");
	assert_null(parse(p, err));
	assert_non_null(strstr(err, "5001 characters"));
	free(p);
}

static void round_trip_and_prompt(void **state)
{
	char err[512];
	struct prompts *pr = prompts_load(NULL, err, sizeof(err));
	struct job *j = parse("{\"v\":1,\"id\":\"rt\",\"type\":\"generate_image\",\"ratio\":\"3:4\","
			      "\"input\":{\"description\":\"红色大衣\",\"imageUrl\":\"https://a.b/c\","
			      "\"wearMask\":true},\"meta\":{\"k\":\"v\"}}", err);
	char *js = job_to_json(j);
	struct job *k = parse(js, err);
	assert_non_null(k);
	assert_string_equal(k->id, "rt");
	assert_string_equal(k->description, "红色大衣");
	assert_string_equal(k->ratio, "3:4");
	assert_true(k->wear_mask);
	char *p1 = job_build_prompt(j, pr, err, sizeof(err));
	char *p2 = job_build_prompt(k, pr, err, sizeof(err));
	assert_string_equal(p1, p2);
	assert_non_null(strstr(p1, "红色大衣"));
	free(p1);
	free(p2);
	free(js);
	job_free(j);
	job_free(k);
	job_free(NULL);
	prompts_free(pr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_type_parses),
		cmocka_unit_test(bad_descriptors_name_the_problem),
		cmocka_unit_test(limits_size_images_prompt_utf8),
		cmocka_unit_test(round_trip_and_prompt),
		cmocka_unit_test(strict_json_refusals_name_the_problem),
		cmocka_unit_test(meta_is_copied_byte_for_byte_and_capped),
		cmocka_unit_test(callback_url_gets_job_id_before_fragment_within_2048),
		cmocka_unit_test(generated_id_is_spliced_within_the_limit),
		cmocka_unit_test(validated_for_the_model_that_is_sent),
		cmocka_unit_test(meta_with_backslashes_is_kept_as_sent),
		cmocka_unit_test(empty_or_malformed_model_is_refused_at_parse),
		cmocka_unit_test(callback_url_host_is_checked_decoded),
		cmocka_unit_test(callback_url_job_id_is_replaced_not_added),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
