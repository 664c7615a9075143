/* test_lifecycle.c — the one place that decides a job's next state and a task's next
 * poll: retries, dead letters, pauses, ambiguity, backoff, KIE's poll cadence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kie/lifecycle.h"

static const struct lifecycle_policy P = {
	.max_attempts = 3, .retry_base_ms = 1000, .account_pause_ms = 60000,
	.poll_initial_ms = 2500, .poll_max_ms = 20000, .poll_timeout_ms = 900000,
};

static struct kie_error err_of(enum kie_err_class c, const char *msg)
{
	struct kie_error e = {.cls = c};
	snprintf(e.message, sizeof(e.message), "%s", msg);
	return e;
}

static void after_create(void **state)
{
	struct job_decision d;
	lifecycle_after_create(NULL, 1, 3, &P, 0, &d);
	assert_int_equal(d.action, JOB_ACT_HANDOFF);
	assert_string_equal(job_state_str(d.next), "polling");

	struct kie_error e = err_of(KIE_ERR_RETRYABLE, "KIE code 429");
	e.code = 429; /* KIE's limit: the pool backs off; the job keeps its attempts */
	lifecycle_after_create(&e, 3, 3, &P, 0, &d);
	assert_int_equal(d.action, JOB_ACT_BACKOFF);
	assert_string_equal(job_state_str(d.next), "queued");
	e.code = 0;
	e.http_status = 455;
	lifecycle_after_create(&e, 1, 1, &P, 0, &d);
	assert_int_equal(d.action, JOB_ACT_BACKOFF);
	e = err_of(KIE_ERR_AMBIGUOUS, "HTTP 500, body code 429");
	e.code = 429; /* the transport decides first: a 5xx is never a plain refusal */
	assert_false(lifecycle_is_rate_refusal(&e));

	e = err_of(KIE_ERR_RETRYABLE, "connection refused");
	lifecycle_after_create(&e, 1, 3, &P, 0, &d);
	assert_int_equal(d.action, JOB_ACT_RETRY);
	assert_string_equal(job_state_str(d.next), "retry_wait");
	assert_true(d.delay_ms >= 800 && d.delay_ms <= 1200);
	assert_non_null(strstr(d.reason, "connection refused"));
	lifecycle_after_create(&e, 3, 3, &P, 0, &d);
	assert_int_equal(d.action, JOB_ACT_DEAD);
	assert_non_null(strstr(d.reason, "gave up after 3 attempts"));

	e = err_of(KIE_ERR_ACCOUNT, "KIE code 402: insufficient credits");
	lifecycle_after_create(&e, 1, 3, &P, 0, &d);
	assert_int_equal(d.action, JOB_ACT_PAUSE);
	assert_int_equal(d.pause_ms, 60000);
	assert_string_equal(job_state_str(d.next), "queued");

	e = err_of(KIE_ERR_AMBIGUOUS, "HTTP 500");
	lifecycle_after_create(&e, 1, 3, &P, 0, &d);
	assert_int_equal(d.action, JOB_ACT_UNCERTAIN); /* never re-create blindly */
	assert_string_equal(job_state_str(d.next), "uncertain");
	assert_int_equal(strncmp(d.reason, "uncertain", 9), 0);

	e = err_of(KIE_ERR_PERMANENT, "KIE code 422: bad ratio");
	lifecycle_after_create(&e, 1, 3, &P, 0, &d);
	assert_int_equal(d.action, JOB_ACT_DEAD);
	assert_non_null(strstr(d.reason, "bad ratio"));
}

static void backoff_doubles_with_jitter_and_cap(void **state)
{
	for (uint32_t rnd = 0; rnd < 1000; rnd += 37) {
		int64_t d1 = lifecycle_backoff_ms(1, 1000, rnd), d3 = lifecycle_backoff_ms(3, 1000, rnd);
		assert_true(d1 >= 800 && d1 < 1200);
		assert_true(d3 >= 3200 && d3 < 4800);
		int64_t big = lifecycle_backoff_ms(40, 1000, rnd);
		assert_true(big <= 10 * 60 * 1000 * 6 / 5 && big >= 10 * 60 * 1000 * 4 / 5);
	}
}

static void poll_cadence_follows_kie_advice(void **state)
{
	assert_int_equal(lifecycle_poll_delay_ms(0, &P), 2500);
	assert_int_equal(lifecycle_poll_delay_ms(29999, &P), 2500);
	assert_int_equal(lifecycle_poll_delay_ms(30000, &P), 7500);
	assert_int_equal(lifecycle_poll_delay_ms(119999, &P), 7500);
	assert_int_equal(lifecycle_poll_delay_ms(120000, &P), 20000);
}

static void after_poll(void **state)
{
	struct kie_error e = err_of(KIE_ERR_RETRYABLE, "timeout");
	assert_int_equal(lifecycle_after_poll(NULL, KIE_TASK_SUCCESS, 10, 1, &P), POLL_FINALIZE);
	assert_int_equal(lifecycle_after_poll(NULL, KIE_TASK_FAIL, 10, 1, &P), POLL_FINALIZE);
	assert_int_equal(lifecycle_after_poll(NULL, KIE_TASK_GENERATING, 10, 1, &P), POLL_AGAIN);
	assert_int_equal(lifecycle_after_poll(NULL, KIE_TASK_GENERATING, 900000, 99, &P),
			 POLL_TIMEOUT);
	assert_int_equal(lifecycle_after_poll(&e, KIE_TASK_UNKNOWN, 10, 1, &P), POLL_AGAIN);
	assert_int_equal(lifecycle_after_poll(&e, KIE_TASK_UNKNOWN, 900001, 1, &P), POLL_TIMEOUT);
	e.cls = KIE_ERR_PERMANENT; /* e.g. 404 right after creation: keep looking */
	assert_int_equal(lifecycle_after_poll(&e, KIE_TASK_UNKNOWN, 10, 1, &P), POLL_AGAIN);
	e.cls = KIE_ERR_ACCOUNT;
	assert_int_equal(lifecycle_after_poll(&e, KIE_TASK_UNKNOWN, 10, 1, &P), POLL_PAUSE);
}

static void state_names_round_trip(void **state)
{
	for (int s = JOB_STATE_QUEUED; s <= JOB_STATE_DEAD; s++) {
		enum job_state back;
		assert_int_equal(job_state_parse(job_state_str((enum job_state)s), &back), 0);
		assert_int_equal(back, s);
	}
	enum job_state x;
	assert_int_equal(job_state_parse("lost", &x), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(after_create),
		cmocka_unit_test(backoff_doubles_with_jitter_and_cap),
		cmocka_unit_test(poll_cadence_follows_kie_advice),
		cmocka_unit_test(after_poll),
		cmocka_unit_test(state_names_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
