/* test_job.c — job descriptors: every type parses, every bad field is named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "job.h"

#define MAX 65536

static struct job *parse(const char *s, char *err)
{
	return job_parse(s, strlen(s), MAX, err, 512);
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
	assert_non_null(j->meta);
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
		{"nope", "not JSON"},
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
	assert_null(job_parse(big, strlen(big), MAX, err, sizeof(err)));
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
	assert_null(job_parse(bad_utf8, sizeof(bad_utf8) - 1, MAX, err, sizeof(err)));
	assert_non_null(strstr(err, "not valid UTF-8"));
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
