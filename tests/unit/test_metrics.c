/* test_metrics.c — the Prometheus text of common/metrics: label escaping, HELP/TYPE before
 * each family, counters by label, histogram buckets cumulative with _count equal to the
 * +Inf bucket and _sum in seconds, code and type classes, the pool's gauges present only
 * when Redis was read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/metrics.h"

/* The exposition as a NUL-terminated string (caller frees). */
static char *render(const struct metrics_pool *pool)
{
	struct dbuf b;
	char *s;
	dbuf_init(&b, 1 << 20);
	assert_int_equal(metrics_render(&b, pool), 0);
	s = calloc(1, b.len + 1);
	memcpy(s, b.data, b.len);
	dbuf_free(&b);
	return s;
}

/* The value of the sample line that starts with "name{labels} " (or "name "); fails when
 * absent. */
static double value_of(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	}
	print_error("no sample %s in:\n%s\n", series, text);
	fail();
	return -1;
}

static int has_line(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);
	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, prefix, n) == 0)
			return 1;
	return 0;
}

static int setup(void **state)
{
	static const char *const types[] = {"generate_image", "model_pose", "extract_clothing",
					    "outfit_change_v2", "raw"};
	metrics_set_job_types(types, 5);
	metrics_reset();
	return 0;
}

static void escaping(void **state)
{
	char out[64];
	assert_string_equal(metrics_escape_label("plain", out, sizeof(out)), "plain");
	assert_string_equal(metrics_escape_label("a\"b", out, sizeof(out)), "a\\\"b");
	assert_string_equal(metrics_escape_label("a\\b", out, sizeof(out)), "a\\\\b");
	assert_string_equal(metrics_escape_label("l1\nl2", out, sizeof(out)), "l1\\nl2");
	assert_string_equal(metrics_escape_label(NULL, out, sizeof(out)), "");
	/* cut to fit, never in the middle of an escape */
	assert_string_equal(metrics_escape_label("ab\"c", out, 4), "ab");
	assert_string_equal(metrics_escape_label("ab\"c", out, 5), "ab\\\"");
}

static void help_and_type_before_samples(void **state)
{
	char *t = render(NULL);
	const char *families[] = {"kie_jobs_total counter", "kie_api_requests_total counter",
				  "kie_retries_total counter", "kie_dead_letters_total counter",
				  "kie_recoveries_total counter", "kie_callbacks_total counter",
				  "kie_callbacks_handled_total counter",
				  "kie_result_copies_total counter", "kie_limiter_waits_total counter",
				  "kie_limiter_wait_seconds_total counter",
				  "kie_api_request_duration_seconds histogram",
				  "kie_claim_to_task_seconds histogram",
				  "kie_task_to_completion_seconds histogram"};
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		char type[128], name[100], help[120];
		const char *sp = strchr(families[i], ' ');
		snprintf(name, sizeof(name), "%.*s", (int)(sp - families[i]), families[i]);
		snprintf(type, sizeof(type), "# TYPE %s", families[i]);
		snprintf(help, sizeof(help), "# HELP %s ", name);
		const char *h = strstr(t, help), *ty = strstr(t, type);
		if (!h || !ty)
			print_error("missing HELP/TYPE for %s\n", families[i]);
		assert_non_null(h);
		assert_non_null(ty);
		assert_true(h < ty);
	}
	/* no pool given: no Redis gauges */
	assert_false(has_line(t, "kie_redis_up"));
	assert_false(has_line(t, "kie_queue_jobs"));
	free(t);
}

static void counters_by_label(void **state)
{
	char *t;
	metrics_job("generate_image", METRICS_JOB_COMPLETED);
	metrics_job("generate_image", METRICS_JOB_COMPLETED);
	metrics_job("raw", METRICS_JOB_FAILED);
	metrics_job("no-such-type", METRICS_JOB_RETRIED);
	metrics_job(NULL, METRICS_JOB_RETRIED);
	metrics_dead_letter("kie", "raw");
	metrics_dead_letter("duplicate", "raw"); /* a copy, not the job's end */
	metrics_dead_letter("something-new", NULL);
	metrics_api(METRICS_EP_CREATE, 200, 0.01);
	metrics_api(METRICS_EP_CREATE, 429, 0.01);
	metrics_api(METRICS_EP_CREATE, 0, 0.01);
	metrics_api(METRICS_EP_CREATE, 418, 0.01);
	metrics_api(METRICS_EP_QUERY, 200, 0.01);
	metrics_callback(METRICS_CB_BAD_SIGNATURE);
	metrics_callback_handled(METRICS_CBH_FINALIZED);
	metrics_copy(METRICS_COPY_WRONG_TYPE);
	metrics_recoveries(3);
	metrics_limiter_wait(METRICS_LIM_QUERY, 0.25);
	metrics_limiter_wait(METRICS_LIM_QUERY, 0.5);
	t = render(NULL);
	assert_int_equal(value_of(t, "kie_jobs_total{type=\"generate_image\",outcome=\"completed\"}"), 2);
	assert_int_equal(value_of(t, "kie_jobs_total{type=\"raw\",outcome=\"failed\"}"), 1);
	assert_int_equal(value_of(t, "kie_jobs_total{type=\"unknown\",outcome=\"retried\"}"), 2);
	assert_int_equal(value_of(t, "kie_retries_total"), 2);
	assert_int_equal(value_of(t, "kie_jobs_total{type=\"raw\",outcome=\"dead\"}"), 1);
	assert_int_equal(value_of(t, "kie_jobs_total{type=\"unknown\",outcome=\"dead\"}"), 1);
	assert_int_equal(value_of(t, "kie_dead_letters_total{reason=\"kie\"}"), 1);
	assert_int_equal(value_of(t, "kie_dead_letters_total{reason=\"duplicate\"}"), 1);
	assert_int_equal(value_of(t, "kie_dead_letters_total{reason=\"other\"}"), 1);
	assert_int_equal(value_of(t, "kie_api_requests_total{endpoint=\"createTask\",code=\"200\"}"), 1);
	assert_int_equal(value_of(t, "kie_api_requests_total{endpoint=\"createTask\",code=\"429\"}"), 1);
	assert_int_equal(value_of(t, "kie_api_requests_total{endpoint=\"createTask\",code=\"error\"}"), 1);
	assert_int_equal(value_of(t, "kie_api_requests_total{endpoint=\"createTask\",code=\"other\"}"), 1);
	assert_int_equal(value_of(t, "kie_api_requests_total{endpoint=\"recordInfo\",code=\"200\"}"), 1);
	assert_int_equal(value_of(t, "kie_callbacks_total{result=\"bad_signature\"}"), 1);
	assert_int_equal(value_of(t, "kie_callbacks_handled_total{result=\"finalized\"}"), 1);
	assert_int_equal(value_of(t, "kie_result_copies_total{outcome=\"wrong_type\"}"), 1);
	assert_int_equal(value_of(t, "kie_result_copies_total{outcome=\"stored\"}"), 0);
	assert_int_equal(value_of(t, "kie_recoveries_total"), 3);
	assert_int_equal(value_of(t, "kie_limiter_waits_total{limiter=\"query\"}"), 2);
	assert_float_equal(value_of(t, "kie_limiter_wait_seconds_total{limiter=\"query\"}"), 0.75,
			   1e-9);
	free(t);
}

static void histogram_cumulative(void **state)
{
	/* the claim histogram's bounds: 0.1 0.25 0.5 1 2.5 5 10 30 60 120 300 600 */
	const double obs[] = {0.05, 0.1, 0.3, 0.3, 7, 1000, -1 /* a clock step: 0 */};
	const char *le[] = {"0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "120",
			    "300", "600", "+Inf"};
	const double want[] = {3, 3, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 7};
	char series[128], *t;
	double prev = 0;

	for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
		metrics_claim_to_task(obs[i]);
	t = render(NULL);
	for (size_t i = 0; i < sizeof(le) / sizeof(le[0]); i++) {
		snprintf(series, sizeof(series), "kie_claim_to_task_seconds_bucket{le=\"%s\"}", le[i]);
		double v = value_of(t, series);
		if (v != want[i])
			print_error("%s = %g, want %g\n", series, v, want[i]);
		assert_true(v == want[i]);
		assert_true(v >= prev);
		prev = v;
	}
	assert_int_equal(value_of(t, "kie_claim_to_task_seconds_count"), 7);
	assert_float_equal(value_of(t, "kie_claim_to_task_seconds_sum"), 1007.75, 1e-6);
	/* a labelled histogram: le comes after the family's own label */
	metrics_api(METRICS_EP_QUERY, 200, 0.2);
	free(t);
	t = render(NULL);
	assert_int_equal(value_of(t, "kie_api_request_duration_seconds_bucket{endpoint=\"recordInfo\",le=\"0.1\"}"), 0);
	assert_int_equal(value_of(t, "kie_api_request_duration_seconds_bucket{endpoint=\"recordInfo\",le=\"0.25\"}"), 1);
	assert_int_equal(value_of(t, "kie_api_request_duration_seconds_count{endpoint=\"recordInfo\"}"), 1);
	assert_float_equal(value_of(t, "kie_api_request_duration_seconds_sum{endpoint=\"recordInfo\"}"), 0.2, 1e-6);
	free(t);
}

static void pool_gauges(void **state)
{
	struct metrics_pool p;
	char *t;

	memset(&p, 0, sizeof(p));
	t = render(&p); /* Redis down: only kie_redis_up 0 */
	assert_int_equal(value_of(t, "kie_redis_up"), 0);
	assert_false(has_line(t, "kie_queue_jobs"));
	assert_false(has_line(t, "kie_paused"));
	free(t);

	p.redis_up = 1;
	for (int i = 0; i < METRICS_Q_N; i++)
		p.queue[i] = 10 + i;
	p.queue[METRICS_Q_DEAD] = -1; /* a key of the wrong type: left out */
	p.paused = 1;
	p.pause_kind = METRICS_PAUSE_OPERATOR;
	p.workers_alive = 2;
	p.has_head = 1;
	p.head_wait_s = 12.5;
	t = render(&p);
	assert_int_equal(value_of(t, "kie_redis_up"), 1);
	assert_int_equal(value_of(t, "kie_queue_jobs{queue=\"queue\"}"), 10);
	assert_int_equal(value_of(t, "kie_queue_jobs{queue=\"callbacks\"}"), 16);
	assert_false(has_line(t, "kie_queue_jobs{queue=\"dead\"}"));
	assert_int_equal(value_of(t, "kie_paused{kind=\"operator\"}"), 1);
	assert_int_equal(value_of(t, "kie_paused{kind=\"credits\"}"), 0);
	assert_int_equal(value_of(t, "kie_paused{kind=\"account\"}"), 0);
	assert_int_equal(value_of(t, "kie_workers_alive"), 2);
	assert_float_equal(value_of(t, "kie_queue_head_wait_seconds"), 12.5, 1e-9);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(escaping, setup),
		cmocka_unit_test_setup(help_and_type_before_samples, setup),
		cmocka_unit_test_setup(counters_by_label, setup),
		cmocka_unit_test_setup(histogram_cumulative, setup),
		cmocka_unit_test_setup(pool_gauges, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
