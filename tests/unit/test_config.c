/* test_config.c — the settings table: defaults, bounds, errors that name the variable,
 * secrets masked, and which metadata store the settings select. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

static void defaults(void **state)
{
	struct config c;
	config_defaults(&c);
	assert_string_equal(c.kie_base_url, "https://api.kie.ai");
	assert_string_equal(c.kie_model, "google/nano-banana-edit");
	assert_string_equal(c.redis_prefix, "kie");
	assert_int_equal(c.wait_attempts, 30);     /* the seed's waitForTaskCompletion */
	assert_int_equal(c.wait_interval_ms, 2000);
	assert_int_equal(c.poll_timeout_ms, 15 * 60 * 1000);
	assert_string_equal(c.kie_api_token, "");
	config_free(&c);
}

static void set_by_flag_or_env_name(void **state)
{
	struct config c;
	char err[256];
	config_defaults(&c);
	assert_int_equal(config_set(&c, "concurrency", "12", err, sizeof(err)), 0);
	assert_int_equal(c.concurrency, 12);
	assert_int_equal(config_set(&c, "KIE_WORKER_POLLERS", "3", err, sizeof(err)), 0);
	assert_int_equal(c.pollers, 3);
	assert_int_equal(config_set(&c, "concurrency", "0", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "KIE_WORKER_CONCURRENCY"));
	assert_non_null(strstr(err, "out of range (1..256)"));
	assert_int_equal(config_set(&c, "KIE_HTTP_TIMEOUT_MS", "30s", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "KIE_HTTP_TIMEOUT_MS: \"30s\" is not a whole number"));
	assert_int_equal(config_set(&c, "KIE_LOG_FORMAT", "xml", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "text|json"));
	assert_int_equal(config_set(&c, "KIE_BASE_URL", "api.kie.ai", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "is not a URL"));
	assert_int_equal(config_set(&c, "no-such", "1", err, sizeof(err)), -2);
	config_free(&c);
}

static void from_environment(void **state)
{
	struct config c;
	char err[256];
	config_defaults(&c);
	setenv("KIE_WORKER_CONCURRENCY", "7", 1);
	setenv("KIE_API_TOKEN", "sk-secret-123", 1);
	assert_int_equal(config_load_env(&c, err, sizeof(err)), 0);
	assert_int_equal(c.concurrency, 7);
	setenv("KIE_JOB_MAX_ATTEMPTS", "many", 1);
	assert_int_equal(config_load_env(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "KIE_JOB_MAX_ATTEMPTS"));
	unsetenv("KIE_JOB_MAX_ATTEMPTS");
	unsetenv("KIE_WORKER_CONCURRENCY");
	/* secrets print masked */
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	config_print(&c, f);
	fclose(f);
	assert_non_null(strstr(buf, "KIE_API_TOKEN=(set)"));
	assert_null(strstr(buf, "sk-secret-123"));
	assert_non_null(strstr(buf, "R2_SECRET_ACCESS_KEY=(unset)"));
	free(buf);
	unsetenv("KIE_API_TOKEN");
	config_free(&c);
}

static void require_names_the_variable(void **state)
{
	struct config c;
	char err[256];
	config_defaults(&c);
	assert_int_equal(config_require(&c, "KIE_API_TOKEN", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "KIE_API_TOKEN is not set"));
	config_set(&c, "KIE_API_TOKEN", "x", err, sizeof(err));
	assert_int_equal(config_require(&c, "KIE_API_TOKEN", err, sizeof(err)), 0);
	config_free(&c);
}

static void metadata_store_choice(void **state)
{
	struct config c;
	char err[256];
	config_defaults(&c);
	assert_string_equal(config_metadata_store(&c), "fs");
	config_set(&c, "R2_ACCESS_KEY_ID", "ak", err, sizeof(err));
	config_set(&c, "R2_SECRET_ACCESS_KEY", "sk", err, sizeof(err));
	config_set(&c, "R2_BUCKET_NAME", "b", err, sizeof(err));
	assert_string_equal(config_metadata_store(&c), "fs"); /* no account id or endpoint */
	config_set(&c, "R2_ACCOUNT_ID", "acc", err, sizeof(err));
	assert_string_equal(config_metadata_store(&c), "r2");
	config_set(&c, "KIE_METADATA_STORE", "fs", err, sizeof(err));
	assert_string_equal(config_metadata_store(&c), "fs");
	config_free(&c);
}

static void help_lists_every_setting(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	config_print_help(f);
	fclose(f);
	const char *names[] = {"KIE_API_TOKEN", "KIE_CALLBACK_URL", "R2_ACCOUNT_ID",
			       "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY", "R2_BUCKET_NAME",
			       "R2_PUBLIC_BASE_URL", "KIE_BASE_URL", "REDIS_URL", "KIE_PROMPTS_DIR"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_non_null(strstr(buf, names[i]));
	assert_non_null(strstr(buf, "default \"https://api.kie.ai\""));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults),
		cmocka_unit_test(set_by_flag_or_env_name),
		cmocka_unit_test(from_environment),
		cmocka_unit_test(require_names_the_variable),
		cmocka_unit_test(metadata_store_choice),
		cmocka_unit_test(help_lists_every_setting),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
