/* test_kie_parse.c — every response shape of kie-api.md parses, and errors are classed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/util.h"
#include "kie/kie_client.h"

#define S(x) x, strlen(x)

static void create_ok(void **state)
{
	char *id = NULL;
	struct kie_error e;
	const char *b = "{\"code\":200,\"msg\":\"success\",\"data\":{\"taskId\":\"task_google_1765178615729\"}}";
	assert_int_equal(kie_parse_create_response(200, S(b), &id, &e), 0);
	assert_string_equal(id, "task_google_1765178615729");
	free(id);
}

static void create_body_code_is_the_verdict(void **state)
{
	static const struct { int code; enum kie_err_class cls; } cases[] = {
		{401, KIE_ERR_ACCOUNT}, {402, KIE_ERR_ACCOUNT}, {433, KIE_ERR_ACCOUNT},
		{429, KIE_ERR_RETRYABLE}, {455, KIE_ERR_RETRYABLE}, {400, KIE_ERR_PERMANENT},
		{404, KIE_ERR_PERMANENT}, {422, KIE_ERR_PERMANENT}, {451, KIE_ERR_PERMANENT},
		{505, KIE_ERR_PERMANENT}, {500, KIE_ERR_AMBIGUOUS},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char b[128], *id = NULL;
		struct kie_error e;
		snprintf(b, sizeof(b), "{\"code\":%d,\"message\":\"nope %d\"}", cases[i].code,
			 cases[i].code);
		assert_int_equal(kie_parse_create_response(200, S(b), &id, &e), -1);
		assert_null(id);
		assert_int_equal(e.code, cases[i].code);
		assert_string_equal(kie_err_class_str(e.cls), kie_err_class_str(cases[i].cls));
		assert_non_null(strstr(e.message, "nope")); /* "message" read like "msg" */
	}
}

static void create_http_status_without_json(void **state)
{
	char *id = NULL;
	struct kie_error e;
	assert_int_equal(kie_parse_create_response(403, S("error code: 1010"), &id, &e), -1);
	assert_int_equal(e.cls, KIE_ERR_PERMANENT);
	assert_int_equal(kie_parse_create_response(502, S("<html>bad gateway</html>"), &id, &e), -1);
	assert_int_equal(e.cls, KIE_ERR_AMBIGUOUS);
	/* HTTP 500 with a JSON body saying 200: the status is a verdict too */
	assert_int_equal(kie_parse_create_response(500, S("{\"code\":200}"), &id, &e), -1);
	assert_int_equal(e.cls, KIE_ERR_AMBIGUOUS);
	assert_int_equal(e.code, 500);
}

/* HTTP 5xx on createTask: the task may exist whatever the body says (a 429 or 401 body
 * must not make the worker re-create it later or stop the pool) */
static void create_http_5xx_is_ambiguous_whatever_the_body_code(void **state)
{
	static const int codes[] = {429, 401, 402, 400, 455, 200, 201, 501, 505};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		char b[160], want[96], *id = NULL;
		struct kie_error e;
		snprintf(b, sizeof(b), "{\"code\":%d,\"msg\":\"m%d\",\"data\":{\"taskId\":\"t\"}}",
			 codes[i], codes[i]);
		assert_int_equal(kie_parse_create_response(500, S(b), &id, &e), -1);
		assert_null(id);
		assert_string_equal(kie_err_class_str(e.cls), "ambiguous");
		assert_int_equal(e.http_status, 500);
		assert_int_equal(e.code, 500); /* the status decided */
		snprintf(want, sizeof(want), "createTask: HTTP 500 (body code %d: m%d): the task "
			 "may have been created", codes[i], codes[i]);
		assert_string_equal(e.message, want);
	}
	/* 501 and 505 are KIE's "generation failed" and "feature disabled" as body codes,
	 * but as HTTP statuses they are server errors like any other 5xx */
	char *id = NULL;
	struct kie_error e;
	struct kie_result r;
	assert_int_equal(kie_parse_create_response(501, S("not implemented"), &id, &e), -1);
	assert_string_equal(kie_err_class_str(e.cls), "ambiguous");
	assert_int_equal(kie_parse_create_response(505, S("{\"code\":400}"), &id, &e), -1);
	assert_string_equal(kie_err_class_str(e.cls), "ambiguous");
	assert_int_equal(kie_parse_task_response(505, S("{\"code\":404}"), &r, &e), -1);
	assert_string_equal(kie_err_class_str(e.cls), "retryable");
	assert_int_equal(kie_parse_task_response(503, S("{\"code\":401,\"msg\":\"x\"}"), &r, &e), -1);
	assert_string_equal(kie_err_class_str(e.cls), "retryable");
	assert_int_equal(e.code, 503);
}

/* HTTP 4xx: a 4xx/5xx body code is the more precise verdict; anything else (a 2xx or
 * 3xx body code, none) leaves the status to decide. A non-2xx answer is never a success. */
static void http_4xx_uses_a_4xx_or_5xx_body_code_else_the_status(void **state)
{
	static const struct {
		long status;
		const char *body;
		const char *cls;
		int code;
	} cases[] = {
		{404, "{\"code\":201,\"msg\":\"created\",\"data\":{\"taskId\":\"t\"}}", "permanent", 404},
		{401, "{\"code\":200,\"data\":{\"taskId\":\"t\"}}", "account", 401},
		{429, "{\"code\":402,\"msg\":\"no credits\"}", "account", 402},
		{400, "{\"code\":500,\"msg\":\"oops\"}", "ambiguous", 500},
		{403, "{\"code\":302}", "permanent", 403},
		{429, "{\"msg\":\"slow down\"}", "retryable", 429},
		{302, "{\"code\":200,\"data\":{\"taskId\":\"t\"}}", "ambiguous", 302},
		{408, "{\"code\":200}", "ambiguous", 408},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *id = NULL;
		struct kie_error e;
		print_message("case %zu: HTTP %ld %s\n", i, cases[i].status, cases[i].body);
		assert_int_equal(kie_parse_create_response(cases[i].status, S(cases[i].body), &id, &e),
				 -1);
		assert_null(id);
		assert_string_equal(kie_err_class_str(e.cls), cases[i].cls);
		assert_int_equal(e.code, cases[i].code);
	}
	char *id = NULL;
	struct kie_error e;
	struct kie_result r;
	assert_int_equal(kie_parse_create_response(429, S("{\"code\":402,\"msg\":\"no credits\"}"),
						   &id, &e), -1);
	assert_string_equal(e.message, "createTask: HTTP 429 (body code 402: no credits)");
	/* HTTP 408 is a request timeout, not KIE's 408 "no result for 10 minutes" */
	assert_int_equal(kie_parse_task_response(408, S("timeout"), &r, &e), -1);
	assert_string_equal(kie_err_class_str(e.cls), "retryable");
	assert_int_equal(kie_parse_task_response(404, S("{\"code\":201,\"data\":{\"taskId\":\"t\","
						     "\"state\":\"success\"}}"), &r, &e), -1);
	assert_string_equal(kie_err_class_str(e.cls), "permanent");
}

static void create_malformed_or_missing_id_is_ambiguous(void **state)
{
	char *id = NULL;
	struct kie_error e;
	assert_int_equal(kie_parse_create_response(200, S("{\"code\":200,\"data\":"), &id, &e), -1);
	assert_int_equal(e.cls, KIE_ERR_AMBIGUOUS);
	assert_int_equal(kie_parse_create_response(200, S("{\"code\":200,\"data\":{}}"), &id, &e), -1);
	assert_int_equal(e.cls, KIE_ERR_AMBIGUOUS);
	assert_non_null(strstr(e.message, "may have been created"));
}

/* Task ids up to KIE_TASK_ID_MAX_BYTES are followed (and stored under an encoded name);
 * a longer one, or one with control characters, cannot be: KIE made the task, so the
 * outcome is ambiguous (the job waits for its callback). */
static void create_task_id_unusable_is_ambiguous(void **state)
{
	char b[KIE_TASK_ID_MAX_BYTES + 100], *id = NULL;
	struct kie_error e;
	char long_id[KIE_TASK_ID_MAX_BYTES + 2];
	memset(long_id, 'a', KIE_TASK_ID_MAX_BYTES);
	long_id[KIE_TASK_ID_MAX_BYTES] = '\0';
	snprintf(b, sizeof(b), "{\"code\":200,\"data\":{\"taskId\":\"%s\"}}", long_id);
	assert_int_equal(kie_parse_create_response(200, S(b), &id, &e), 0);
	assert_string_equal(id, long_id);
	free(id);
	id = NULL;
	long_id[KIE_TASK_ID_MAX_BYTES] = 'a';
	long_id[KIE_TASK_ID_MAX_BYTES + 1] = '\0';
	snprintf(b, sizeof(b), "{\"code\":200,\"data\":{\"taskId\":\"%s\"}}", long_id);
	assert_int_equal(kie_parse_create_response(200, S(b), &id, &e), -1);
	assert_null(id);
	assert_string_equal(kie_err_class_str(e.cls), "ambiguous");
	assert_non_null(strstr(e.message, "1025 bytes"));
	assert_non_null(strstr(e.message, "may have been created"));
	assert_int_equal(kie_parse_create_response(200, S("{\"code\":200,\"data\":{\"taskId\":"
							  "\"task\\n1\"}}"), &id, &e), -1);
	assert_null(id);
	assert_string_equal(kie_err_class_str(e.cls), "ambiguous");
	assert_non_null(strstr(e.message, "task\\x0A1"));
	/* 200 bytes is still a task id */
	long_id[200] = '\0';
	snprintf(b, sizeof(b), "{\"code\":200,\"data\":{\"taskId\":\"%s\"}}", long_id);
	assert_int_equal(kie_parse_create_response(200, S(b), &id, &e), 0);
	assert_int_equal(strlen(id), 200);
	free(id);
}

static void record_success_result_json_is_a_string(void **state)
{
	struct kie_result r;
	struct kie_error e;
	const char *b = "{\"code\":200,\"msg\":\"success\",\"data\":{\"taskId\":\"t1\","
		"\"model\":\"google/nano-banana-edit\",\"state\":\"success\",\"param\":\"{\\\"a\\\":1}\","
		"\"resultJson\":\"{\\\"resultUrls\\\":[\\\"https://x/1.png\\\",\\\"https://x/2.png\\\"]}\","
		"\"failCode\":\"\",\"failMsg\":\"\",\"costTime\":15000,\"completeTime\":1700000015000,"
		"\"createTime\":1700000000000,\"updateTime\":1700000015001}}";
	assert_int_equal(kie_parse_task_response(200, S(b), &r, &e), 0);
	assert_string_equal(r.task_id, "t1");
	assert_int_equal(r.state, KIE_TASK_SUCCESS);
	assert_true(r.success);
	assert_int_equal(r.n_results, 2);
	assert_string_equal(r.result_urls[1], "https://x/2.png");
	assert_true(r.has_cost_time);
	assert_int_equal((long)r.cost_time_ms, 15000); /* recordInfo: already milliseconds */
	assert_int_equal(r.update_time_ms, 1700000015001LL);
	assert_string_equal(r.param, "{\"a\":1}");
	assert_null(r.error);
	kie_result_free(&r);
}

static void record_result_json_as_object_and_numeric_strings(void **state)
{
	struct kie_result r;
	struct kie_error e;
	const char *b = "{\"code\":\"200\",\"data\":{\"taskId\":\"t2\",\"state\":\"success\","
		"\"resultJson\":{\"resultUrls\":[\"https://x/o.png\"]},\"costTime\":\"900\"}}";
	assert_int_equal(kie_parse_task_response(200, S(b), &r, &e), 0);
	assert_int_equal(r.n_results, 1);
	assert_string_equal(r.result_urls[0], "https://x/o.png");
	assert_int_equal((long)r.cost_time_ms, 900);
	kie_result_free(&r);
}

static void record_fail_and_failed_alike(void **state)
{
	const char *states[] = {"fail", "failed"};
	for (int i = 0; i < 2; i++) {
		struct kie_result r;
		struct kie_error e;
		char b[256];
		snprintf(b, sizeof(b), "{\"code\":200,\"msg\":\"ok\",\"data\":{\"taskId\":\"t\","
			 "\"state\":\"%s\",\"failCode\":\"501\",\"failMsg\":\"bad input\","
			 "\"resultJson\":\"\"}}", states[i]);
		assert_int_equal(kie_parse_task_response(200, S(b), &r, &e), 0);
		assert_int_equal(r.state, KIE_TASK_FAIL);
		assert_false(r.success);
		assert_string_equal(r.fail_code, "501");
		assert_string_equal(r.error, "bad input");
		assert_int_equal(r.n_results, 0);
		kie_result_free(&r);
	}
}

static void record_in_progress_states(void **state)
{
	const char *states[] = {"waiting", "queuing", "generating"};
	enum kie_task_state want[] = {KIE_TASK_WAITING, KIE_TASK_QUEUING, KIE_TASK_GENERATING};
	for (int i = 0; i < 3; i++) {
		struct kie_result r;
		struct kie_error e;
		char b[128];
		snprintf(b, sizeof(b), "{\"code\":200,\"data\":{\"taskId\":\"t\",\"state\":\"%s\"}}",
			 states[i]);
		assert_int_equal(kie_parse_task_response(200, S(b), &r, &e), 0);
		assert_int_equal(r.state, want[i]);
		assert_false(kie_task_state_final(r.state));
		kie_result_free(&r);
	}
}

static void record_errors_are_retryable_or_typed(void **state)
{
	struct kie_result r;
	struct kie_error e;
	assert_int_equal(kie_parse_task_response(200, S("{\"code\":404,\"msg\":\"task not found\"}"),
						 &r, &e), -1);
	assert_int_equal(e.cls, KIE_ERR_PERMANENT);
	assert_int_equal(kie_parse_task_response(200, S("{\"code\":500,\"msg\":\"oops\"}"), &r, &e), -1);
	assert_int_equal(e.cls, KIE_ERR_RETRYABLE); /* a read is safe to repeat */
	assert_int_equal(kie_parse_task_response(200, S("{\"code\":200,\"data\":"), &r, &e), -1);
	assert_int_equal(e.cls, KIE_ERR_RETRYABLE);
	assert_int_equal(kie_parse_task_response(200, S("{\"code\":401,\"msg\":\"x\"}"), &r, &e), -1);
	assert_int_equal(e.cls, KIE_ERR_ACCOUNT);
	assert_int_equal(kie_parse_task_response(200,
		S("{\"code\":200,\"data\":{\"taskId\":\"t\",\"state\":\"dreaming\"}}"), &r, &e), -1);
	assert_non_null(strstr(e.message, "unknown task state"));
}

/* (int64_t)1e300 is undefined behaviour (x86 gives INT64_MIN): out-of-range numbers must
 * read as absent, as must NaN/inf/negative costs and credits */
static void record_numbers_out_of_range_are_absent(void **state)
{
	struct kie_result r;
	struct kie_error e;
	const char *b = "{\"code\":200,\"data\":{\"taskId\":\"t\",\"state\":\"success\","
		"\"createTime\":1e300,\"completeTime\":-5,\"updateTime\":-9.3e18,"
		"\"costTime\":-1,\"creditsConsumed\":1e999,\"remainedCredits\":-1e999}}";
	assert_int_equal(kie_parse_task_response(200, S(b), &r, &e), 0);
	assert_int_equal(r.create_time_ms, 0);
	assert_int_equal(r.complete_time_ms, 0);
	assert_int_equal(r.update_time_ms, 0);
	assert_false(r.has_cost_time);
	assert_false(r.has_credits);
	assert_false(r.has_remaining);
	char *js = kie_result_to_json(&r);
	assert_non_null(strstr(js, "\"credits\":null,\"costTime\":null,\"updateTime\":null"));
	free(js);
	kie_result_free(&r);

	/* the last millisecond of year 9999 is kept; one more is not */
	b = "{\"code\":200,\"data\":{\"taskId\":\"t\",\"state\":\"success\","
	    "\"createTime\":253402300799999,\"updateTime\":253402300800000,"
	    "\"completeTime\":\"1e14\",\"costTime\":\"nan\",\"consumeCredits\":\"inf\"}}";
	assert_int_equal(kie_parse_task_response(200, S(b), &r, &e), 0);
	assert_int_equal(r.create_time_ms, 253402300799999LL);
	assert_int_equal(r.update_time_ms, 0);
	assert_int_equal(r.complete_time_ms, 100000000000000LL);
	assert_false(r.has_cost_time);
	assert_false(r.has_credits);
	kie_result_free(&r);

	/* numeric strings are decimal: no hex, no spaces */
	b = "{\"code\":200,\"data\":{\"taskId\":\"t\",\"state\":\"success\","
	    "\"createTime\":\"0x1F4\",\"updateTime\":\" 12\",\"costTime\":\"0x10\"}}";
	assert_int_equal(kie_parse_task_response(200, S(b), &r, &e), 0);
	assert_int_equal(r.create_time_ms, 0);
	assert_int_equal(r.update_time_ms, 0);
	assert_false(r.has_cost_time);
	kie_result_free(&r);
}

static void callback_cost_time_overflowing_to_ms_is_absent(void **state)
{
	struct kie_result r;
	struct kie_error e;
	/* finite in seconds, infinite once multiplied by 1000 */
	const char *b = "{\"code\":200,\"data\":{\"taskId\":\"t\",\"state\":\"success\","
		"\"costTime\":1e306,\"consumeCredits\":2}}";
	assert_int_equal(kie_parse_callback(S(b), &r, &e), 0);
	assert_false(r.has_cost_time);
	assert_true(r.has_credits);
	kie_result_free(&r);
}

static void fail_code_number_must_be_sane(void **state)
{
	struct kie_result r;
	struct kie_error e;
	const char *b = "{\"code\":200,\"data\":{\"taskId\":\"t\",\"state\":\"fail\",\"failCode\":1e999}}";
	assert_int_equal(kie_parse_task_response(200, S(b), &r, &e), 0);
	assert_null(r.fail_code); /* not "inf" */
	assert_string_equal(r.error, "KIE task failed");
	kie_result_free(&r);
	b = "{\"code\":200,\"data\":{\"taskId\":\"t\",\"state\":\"fail\",\"failCode\":422}}";
	assert_int_equal(kie_parse_task_response(200, S(b), &r, &e), 0);
	assert_string_equal(r.fail_code, "422");
	kie_result_free(&r);
}

/* (int)1e300 is undefined behaviour; a code outside 0..999 is no verdict at all, and
 * neither the data beside it nor the HTTP 200 may turn it into a success */
static void body_code_out_of_range_is_not_a_verdict(void **state)
{
	const char *codes[] = {"1e300", "-200", "1000", "200.5", "\"0x0C8\"", "true"};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		char b[160], *id = NULL;
		struct kie_result r;
		struct kie_error e;
		snprintf(b, sizeof(b), "{\"code\":%s,\"msg\":\"m\",\"data\":{\"taskId\":\"t\","
			 "\"state\":\"success\"}}", codes[i]);
		assert_int_equal(kie_parse_create_response(200, S(b), &id, &e), -1);
		assert_null(id);
		assert_int_equal(e.cls, KIE_ERR_AMBIGUOUS);
		assert_int_equal(e.code, 0);
		assert_non_null(strstr(e.message, "not a KIE code"));
		assert_int_equal(kie_parse_task_response(200, S(b), &r, &e), -1);
		assert_int_equal(e.cls, KIE_ERR_RETRYABLE);
		assert_int_equal(e.code, 0);
	}
}

static void callback_seed_example_seconds_to_ms(void **state)
{
	struct kie_result r;
	struct kie_error e;
	const char *b = "{\"code\":200,\"msg\":\"success\",\"data\":{\"taskId\":\"kie-task-123\","
		"\"state\":\"success\",\"resultJson\":\"{\\\"resultUrls\\\":[\\\"https://cdn.example.com/kie/task123.png\\\"]}\","
		"\"consumeCredits\":3,\"costTime\":18.4,\"createTime\":1731571200000,"
		"\"completeTime\":1731571218000,\"updateTime\":1731571218000,"
		"\"model\":\"google/nano-banana-edit\",\"param\":\"...\",\"remainedCredits\":997}}";
	assert_int_equal(kie_parse_callback(S(b), &r, &e), 0);
	assert_string_equal(r.task_id, "kie-task-123");
	assert_true(r.success);
	assert_int_equal(r.n_results, 1);
	assert_true(r.has_credits);
	assert_int_equal((int)r.credits, 3);
	assert_true(r.has_remaining);
	assert_int_equal((int)r.remaining_credits, 997);
	assert_int_equal((long)(r.cost_time_ms + 0.5), 18400); /* seconds in callbacks */
	assert_int_equal(r.update_time_ms, 1731571218000LL);
	char *js = kie_result_to_json(&r);
	assert_string_equal(js, "{\"taskId\":\"kie-task-123\",\"success\":true,\"state\":\"success\","
			    "\"resultUrls\":[\"https://cdn.example.com/kie/task123.png\"],"
			    "\"error\":null,\"credits\":3,\"costTime\":18400,"
			    "\"updateTime\":1731571218000}");
	free(js);
	kie_result_free(&r);
}

static void callback_failure_and_credits_consumed(void **state)
{
	struct kie_result r;
	struct kie_error e;
	const char *b = "{\"code\":501,\"msg\":\"generation failed\",\"data\":{\"taskId\":\"t9\","
		"\"model\":\"google/nano-banana-edit\",\"state\":\"fail\",\"failCode\":\"501\","
		"\"failMsg\":\"Content policy\",\"completeTime\":1,\"creditsConsumed\":0}}";
	assert_int_equal(kie_parse_callback(S(b), &r, &e), 0);
	assert_false(r.success);
	assert_int_equal(r.state, KIE_TASK_FAIL);
	assert_string_equal(r.error, "Content policy");
	assert_true(r.has_credits);
	assert_int_equal((int)r.credits, 0);
	assert_int_equal(r.n_results, 0);
	kie_result_free(&r);
}

/* The cost under each of its names, in recordInfo and in callbacks: creditsConsumed
 * first, consumeCredits (the older name) when it is absent or unusable; remainedCredits
 * is the balance and never read as a cost */
static void credits_under_every_name(void **state)
{
	static const struct {
		const char *fields; /* inside data, after the state */
		int has;
		double credits;
		int has_rem;
		double rem;
	} cases[] = {
		{"\"creditsConsumed\":6", 1, 6, 0, 0},
		{"\"consumeCredits\":4.5", 1, 4.5, 0, 0},
		{"\"creditsConsumed\":6,\"consumeCredits\":9", 1, 6, 0, 0},
		{"\"consumeCredits\":9,\"creditsConsumed\":6", 1, 6, 0, 0},
		{"\"creditsConsumed\":\"x\",\"consumeCredits\":3", 1, 3, 0, 0},
		{"\"creditsConsumed\":\"2.5\"", 1, 2.5, 0, 0},
		{"\"remainedCredits\":997", 0, 0, 1, 997},
		{"\"consumeCredits\":4,\"remainedCredits\":996", 1, 4, 1, 996},
		{"\"creditsConsumed\":null", 0, 0, 0, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (int cb = 0; cb < 2; cb++) {
			char body[512];
			struct kie_result r;
			struct kie_error e;
			snprintf(body, sizeof(body), "{\"code\":200,\"msg\":\"success\",\"data\":{"
				 "\"taskId\":\"t1\",\"state\":\"success\",%s}}", cases[i].fields);
			if (cb)
				assert_int_equal(kie_parse_callback(body, strlen(body), &r, &e), 0);
			else
				assert_int_equal(kie_parse_task_response(200, body, strlen(body), &r,
									 &e), 0);
			if (r.has_credits != cases[i].has || r.has_remaining != cases[i].has_rem ||
			    (r.has_credits && r.credits != cases[i].credits) ||
			    (r.has_remaining && r.remaining_credits != cases[i].rem))
				fail_msg("case %zu (%s): has %d credits %g, remaining %d %g", i,
					 cb ? "callback" : "recordInfo", r.has_credits, r.credits,
					 r.has_remaining, r.remaining_credits);
			kie_result_free(&r);
		}
	}
}

static void credit_answer(void **state)
{
	struct kie_error e;
	double c = -7;

	assert_int_equal(kie_parse_credit_response(200, S("{\"code\":200,\"msg\":\"success\","
						    "\"data\":1234}"), &c, &e), 0);
	assert_true(c == 1234);
	assert_int_equal(kie_parse_credit_response(200, S("{\"code\":200,\"data\":\"12.5\"}"), &c,
						   &e), 0);
	assert_true(c == 12.5);
	assert_int_equal(kie_parse_credit_response(200, S("{\"code\":200,\"data\":-3}"), &c, &e),
			 0);
	assert_true(c == -3);
	c = 5;
	assert_int_equal(kie_parse_credit_response(200, S("{\"code\":200,\"data\":{\"x\":1}}"), &c,
						   &e), -1);
	assert_int_equal(e.cls, KIE_ERR_RETRYABLE);
	assert_true(c == 5); /* untouched */
	assert_int_equal(kie_parse_credit_response(200, S("{\"code\":401,\"msg\":\"bad key\"}"),
						   &c, &e), -1);
	assert_int_equal(e.cls, KIE_ERR_ACCOUNT);
	assert_int_equal(kie_parse_credit_response(500, S("oops"), &c, &e), -1);
	assert_int_equal(e.cls, KIE_ERR_RETRYABLE);
}

/* A callback may report a task still on its way: it is no failure ("KIE code 200:
 * success" was the error before); the caller decides what to do with it */
static void callback_in_progress_keeps_its_state(void **state)
{
	const char *states[] = {"waiting", "queuing", "generating"};
	enum kie_task_state want[] = {KIE_TASK_WAITING, KIE_TASK_QUEUING, KIE_TASK_GENERATING};
	for (int i = 0; i < 3; i++) {
		for (int with_code = 0; with_code < 2; with_code++) {
			struct kie_result r;
			struct kie_error e;
			char b[160];
			snprintf(b, sizeof(b), "{%s\"data\":{\"taskId\":\"t\",\"state\":\"%s\"}}",
				 with_code ? "\"code\":200,\"msg\":\"success\"," : "", states[i]);
			assert_int_equal(kie_parse_callback(S(b), &r, &e), 0);
			assert_int_equal(r.state, want[i]);
			assert_false(r.success);
			assert_null(r.error);
			assert_false(kie_task_state_final(r.state));
			kie_result_free(&r);
		}
	}
	struct kie_result r;
	struct kie_error e;
	assert_int_equal(kie_parse_callback(S("{\"code\":200,\"data\":{\"taskId\":\"t\","
					       "\"state\":\"generating\"}}"), &r, &e), 0);
	char *js = kie_result_to_json(&r);
	assert_string_equal(js, "{\"taskId\":\"t\",\"success\":false,\"state\":\"generating\","
			    "\"resultUrls\":[],\"error\":null,\"credits\":null,\"costTime\":null,"
			    "\"updateTime\":null}");
	free(js);
	kie_result_free(&r);
	/* a failure code still ends the task, whatever the state says */
	assert_int_equal(kie_parse_callback(S("{\"code\":501,\"msg\":\"boom\",\"data\":{\"taskId\":"
					       "\"t\",\"state\":\"generating\"}}"), &r, &e), 0);
	assert_int_equal(r.state, KIE_TASK_FAIL);
	assert_string_equal(r.error, "KIE code 501: boom");
	kie_result_free(&r);
	/* neither a code nor a state: nothing is known, nothing is claimed */
	assert_int_equal(kie_parse_callback(S("{\"taskId\":\"t\"}"), &r, &e), 0);
	assert_int_equal(r.state, KIE_TASK_UNKNOWN);
	assert_false(r.success);
	assert_null(r.error);
	kie_result_free(&r);
}

static void callback_task_id_locations(void **state)
{
	const char *bodies[] = {
		"{\"code\":200,\"data\":{\"taskId\":\"A\",\"state\":\"success\"}}",
		"{\"code\":200,\"data\":{\"task_id\":\"A\",\"state\":\"success\"}}",
		"{\"code\":200,\"taskId\":\"A\",\"data\":{\"state\":\"success\"}}",
	};
	for (int i = 0; i < 3; i++) {
		struct kie_result r;
		struct kie_error e;
		assert_int_equal(kie_parse_callback(S(bodies[i]), &r, &e), 0);
		assert_string_equal(r.task_id, "A");
		kie_result_free(&r);
	}
	struct kie_result r;
	struct kie_error e;
	assert_int_equal(kie_parse_callback(S("{\"code\":200,\"data\":{}}"), &r, &e), -1);
	assert_non_null(strstr(e.message, "no task id"));
	assert_int_equal(kie_parse_callback(S("not json"), &r, &e), -1);
	/* a non-200 code without a state is a failure, with the message kept */
	assert_int_equal(kie_parse_callback(S("{\"code\":501,\"message\":\"boom\",\"taskId\":\"B\"}"),
					    &r, &e), 0);
	assert_false(r.success);
	assert_non_null(strstr(r.error, "boom"));
	kie_result_free(&r);
}

/* --- UTF-8 cleaning (util.c) for text taken from KIE bodies --- */

static void utf8_cut_at_code_point_boundaries(void **state)
{
	static const struct { const char *in; size_t max; size_t want; } cases[] = {
		{"a\xc3\xa9", 2, 1}, {"a\xc3\xa9", 3, 3}, {"a\xc3\xa9", 0, 0},
		{"\xe8\xa1\xa3\xe8\xa1\xa3", 4, 3}, {"\xe8\xa1\xa3\xe8\xa1\xa3", 5, 3},
		{"\xe8\xa1\xa3\xe8\xa1\xa3", 6, 6}, {"\xe8\xa1\xa3\xe8\xa1\xa3", 100, 6},
		{"\xf0\x9f\x98\x80x", 1, 0}, {"\xf0\x9f\x98\x80x", 3, 0},
		{"\xf0\x9f\x98\x80x", 4, 4}, {"abc", 2, 2},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[32];
		util_strlcpy(buf, cases[i].in, sizeof(buf));
		print_message("case %zu\n", i);
		assert_int_equal(util_utf8_cut(buf, cases[i].max), cases[i].want);
		assert_int_equal(strlen(buf), cases[i].want);
		assert_memory_equal(buf, cases[i].in, cases[i].want);
		assert_true(util_utf8_len(buf, strlen(buf)) >= 0);
	}
}

static void utf8_sanitize_replaces_each_bad_byte(void **state)
{
	static const struct { const char *in, *want; } cases[] = {
		{"a\xff" "b", "a?b"},
		{"\xe8\xa1(", "?\?("},                   /* sequence cut short */
		{"\xc0\xaf", "??"},                     /* overlong */
		{"\xed\xa0\x80", "???"},                /* surrogate */
		{"\xf4\x90\x80\x80", "????"},           /* above U+10FFFF */
		{"\x80\x80z", "??z"},                   /* stray continuation bytes */
		{"ab\xf0\x9f", "ab??"},                 /* incomplete at the end */
		{"\xe8\xa1\xa3\xc3\xa9\xf0\x9f\x98\x80", "\xe8\xa1\xa3\xc3\xa9\xf0\x9f\x98\x80"},
		{"", ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[32];
		util_strlcpy(buf, cases[i].in, sizeof(buf));
		util_utf8_sanitize(buf);
		assert_string_equal(buf, cases[i].want);
		assert_true(util_utf8_len(buf, strlen(buf)) >= 0);
	}
}

static int valid_utf8(const char *s)
{
	return s && util_utf8_len(s, strlen(s)) >= 0;
}

/* Everything taken from a KIE body into a message or a result field is valid UTF-8
 * (Python's json.loads refused kie callback's output) */
static void kie_text_fields_are_valid_utf8(void **state)
{
	struct kie_result r;
	struct kie_error e;
	const char *b = "{\"code\":200,\"data\":{\"taskId\":\"t\xff\",\"model\":\"m\xc3\","
		"\"state\":\"fail\",\"failCode\":\"\xfe\",\"failMsg\":\"\xff bad \xe8\xa1\","
		"\"resultUrls\":[\"https://x/\xff.png\"],\"param\":\"{\\\"p\\\":\\\"\xc0\\\"}\"}}";
	assert_int_equal(kie_parse_task_response(200, S(b), &r, &e), 0);
	assert_string_equal(r.task_id, "t?");
	assert_string_equal(r.model, "m?");
	assert_string_equal(r.fail_code, "?");
	assert_string_equal(r.error, "? bad ??");
	assert_int_equal(r.n_results, 1);
	assert_string_equal(r.result_urls[0], "https://x/?.png");
	assert_true(valid_utf8(r.param));
	char *js = kie_result_to_json(&r);
	assert_true(valid_utf8(js));
	free(js);
	kie_result_free(&r);

	assert_int_equal(kie_parse_task_response(200, S("{\"code\":404,\"msg\":\"\xff nope\"}"),
						 &r, &e), -1);
	assert_true(valid_utf8(e.message));
	assert_non_null(strstr(e.message, "? nope"));
	assert_int_equal(kie_parse_task_response(500, S("{\"code\":429,\"msg\":\"\xff\"}"),
						 &r, &e), -1);
	assert_true(valid_utf8(e.message));

	/* a callback's error, built from msg, and a long failMsg cut at a boundary */
	assert_int_equal(kie_parse_callback(S("{\"code\":501,\"msg\":\"\xe8\xa1\",\"taskId\":\"c\xff\"}"),
					    &r, &e), 0);
	assert_string_equal(r.error, "KIE code 501: ??");
	assert_string_equal(r.task_id, "c?");
	kie_result_free(&r);
	char big[8192];
	size_t n = (size_t)snprintf(big, sizeof(big), "{\"code\":501,\"data\":{\"taskId\":\"t\","
				    "\"state\":\"fail\",\"failMsg\":\"x");
	for (int i = 0; i < 2000; i++, n += 3)
		memcpy(big + n, "\xe8\xa1\xa3", 3);
	snprintf(big + n, sizeof(big) - n, "\"}}");
	assert_int_equal(kie_parse_callback(S(big), &r, &e), 0);
	assert_true(valid_utf8(r.error));
	assert_true(strlen(r.error) <= 1024 && strlen(r.error) >= 1000);
	js = kie_result_to_json(&r);
	assert_true(valid_utf8(js));
	free(js);
	kie_result_free(&r);
}

/* A task id that is not UTF-8 must not reach JSON output; KIE probably created the
 * task, so the error is ambiguous and names the id, escaped */
static void create_task_id_not_utf8_is_ambiguous(void **state)
{
	char *id = NULL;
	struct kie_error e;
	assert_int_equal(kie_parse_create_response(200, S("{\"code\":200,\"data\":{\"taskId\":"
							  "\"task_\xff" "1\"}}"), &id, &e), -1);
	assert_null(id);
	assert_string_equal(kie_err_class_str(e.cls), "ambiguous");
	assert_true(valid_utf8(e.message));
	assert_non_null(strstr(e.message, "task_\\xFF1"));
	assert_non_null(strstr(e.message, "may have been created"));
}

static void classify_transport(void **state)
{
	assert_int_equal(kie_classify(KIE_OP_CREATE, HTTP_TRANSPORT_NOT_SENT, 0, 0), KIE_ERR_RETRYABLE);
	assert_int_equal(kie_classify(KIE_OP_CREATE, HTTP_TRANSPORT_NO_ANSWER, 0, 0), KIE_ERR_AMBIGUOUS);
	assert_int_equal(kie_classify(KIE_OP_QUERY, HTTP_TRANSPORT_NO_ANSWER, 0, 0), KIE_ERR_RETRYABLE);
	assert_int_equal(kie_classify(KIE_OP_CREATE, HTTP_TRANSPORT_TOO_BIG, 200, 0), KIE_ERR_AMBIGUOUS);
	assert_int_equal(kie_classify(KIE_OP_QUERY, HTTP_TRANSPORT_OK, 503, 0), KIE_ERR_RETRYABLE);
	assert_int_equal(kie_classify(KIE_OP_CREATE, HTTP_TRANSPORT_OK, 200, 200), KIE_ERR_NONE);
	/* code 0: the HTTP status decides, with HTTP's meanings */
	assert_int_equal(kie_classify(KIE_OP_CREATE, HTTP_TRANSPORT_OK, 501, 0), KIE_ERR_AMBIGUOUS);
	assert_int_equal(kie_classify(KIE_OP_QUERY, HTTP_TRANSPORT_OK, 505, 0), KIE_ERR_RETRYABLE);
	assert_int_equal(kie_classify(KIE_OP_QUERY, HTTP_TRANSPORT_OK, 408, 0), KIE_ERR_RETRYABLE);
	assert_int_equal(kie_classify(KIE_OP_CREATE, HTTP_TRANSPORT_OK, 402, 0), KIE_ERR_ACCOUNT);
	assert_int_equal(kie_classify(KIE_OP_CREATE, HTTP_TRANSPORT_OK, 429, 0), KIE_ERR_RETRYABLE);
	assert_int_equal(kie_classify(KIE_OP_CREATE, HTTP_TRANSPORT_OK, 403, 0), KIE_ERR_PERMANENT);
	/* a code: KIE's table */
	assert_int_equal(kie_classify(KIE_OP_QUERY, HTTP_TRANSPORT_OK, 200, 501), KIE_ERR_PERMANENT);
	assert_int_equal(kie_classify(KIE_OP_QUERY, HTTP_TRANSPORT_OK, 200, 408), KIE_ERR_PERMANENT);
}

static void state_parse(void **state)
{
	assert_int_equal(kie_task_state_parse("fail"), KIE_TASK_FAIL);
	assert_int_equal(kie_task_state_parse("failed"), KIE_TASK_FAIL);
	assert_int_equal(kie_task_state_parse("success"), KIE_TASK_SUCCESS);
	assert_int_equal(kie_task_state_parse("SUCCESS"), KIE_TASK_UNKNOWN);
	assert_int_equal(kie_task_state_parse(NULL), KIE_TASK_UNKNOWN);
	assert_string_equal(kie_task_state_str(KIE_TASK_QUEUING), "queuing");
}

/* The jobId a recordInfo param's callBackUrl carries: split first, decode each value. */
static void param_callback_arg_splits_before_decoding(void **state)
{
	(void)state;
	char *v;
	/* decoding the whole query first read x=%26jobId%3Devil as job "evil" */
	v = kie_param_callback_arg("{\"callBackUrl\":\"https://a.example/cb?x=%26jobId%3Devil"
				   "&jobId=real\"}", "jobId");
	assert_non_null(v);
	assert_string_equal(v, "real");
	free(v);
	v = kie_param_callback_arg("{\"callBackUrl\":\"https://a.example/cb?x=%26jobId%3Devil\"}",
				   "jobId");
	assert_null(v);
	/* each value decoded on its own; a key that only starts with the name is another */
	v = kie_param_callback_arg("{\"callBackUrl\":\"https://a.example/cb?jobIdx=1&jobId=a%3Ab"
				   "#frag\"}", "jobId");
	assert_non_null(v);
	assert_string_equal(v, "a:b");
	free(v);
	/* given twice, or decoded to a NUL, or no URL at all: none */
	assert_null(kie_param_callback_arg("{\"callBackUrl\":\"https://a.example/?jobId=a&jobId=b"
					   "\"}", "jobId"));
	assert_null(kie_param_callback_arg("{\"callBackUrl\":\"https://a.example/?jobId=a%00b\"}",
					   "jobId"));
	assert_null(kie_param_callback_arg("{\"model\":\"m\"}", "jobId"));
	assert_null(kie_param_callback_arg("not json", "jobId"));
	assert_null(kie_param_callback_arg(NULL, "jobId"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(create_ok),
		cmocka_unit_test(create_body_code_is_the_verdict),
		cmocka_unit_test(create_http_status_without_json),
		cmocka_unit_test(create_http_5xx_is_ambiguous_whatever_the_body_code),
		cmocka_unit_test(http_4xx_uses_a_4xx_or_5xx_body_code_else_the_status),
		cmocka_unit_test(create_malformed_or_missing_id_is_ambiguous),
		cmocka_unit_test(create_task_id_unusable_is_ambiguous),
		cmocka_unit_test(record_success_result_json_is_a_string),
		cmocka_unit_test(record_result_json_as_object_and_numeric_strings),
		cmocka_unit_test(record_fail_and_failed_alike),
		cmocka_unit_test(record_in_progress_states),
		cmocka_unit_test(record_errors_are_retryable_or_typed),
		cmocka_unit_test(record_numbers_out_of_range_are_absent),
		cmocka_unit_test(callback_cost_time_overflowing_to_ms_is_absent),
		cmocka_unit_test(fail_code_number_must_be_sane),
		cmocka_unit_test(body_code_out_of_range_is_not_a_verdict),
		cmocka_unit_test(callback_seed_example_seconds_to_ms),
		cmocka_unit_test(callback_failure_and_credits_consumed),
		cmocka_unit_test(credits_under_every_name),
		cmocka_unit_test(credit_answer),
		cmocka_unit_test(callback_in_progress_keeps_its_state),
		cmocka_unit_test(callback_task_id_locations),
		cmocka_unit_test(utf8_cut_at_code_point_boundaries),
		cmocka_unit_test(utf8_sanitize_replaces_each_bad_byte),
		cmocka_unit_test(kie_text_fields_are_valid_utf8),
		cmocka_unit_test(create_task_id_not_utf8_is_ambiguous),
		cmocka_unit_test(classify_transport),
		cmocka_unit_test(state_parse),
		cmocka_unit_test(param_callback_arg_splits_before_decoding),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
