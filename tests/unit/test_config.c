/* test_config.c — the settings table: defaults, bounds, errors that name the variable,
 * secrets masked, refused on the command line and read from <NAME>_FILE, Redis URLs
 * printed masked, and which metadata store the settings select. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "core/util.h"

/* config_print's output (caller frees). */
static char *printed(const struct config *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	config_print(c, f);
	fclose(f);
	return buf;
}

/* Writes data to a new file in dir; returns its path in out. */
/* A setting's bounds: one below (by its flag name) and one above (by its variable) are
 * refused, the error naming the variable and the range. */
struct bound {
	const char *flag, *env, *low, *high, *range;
};

static void refuses_outside(struct config *c, const struct bound *b, size_t n)
{
	char err[512];

	for (size_t i = 0; i < n; i++) {
		assert_int_equal(config_set(c, b[i].flag, b[i].low, err, sizeof(err)), -1);
		assert_non_null(strstr(err, b[i].env));
		assert_non_null(strstr(err, b[i].range));
		assert_int_equal(config_set(c, b[i].env, b[i].high, err, sizeof(err)), -1);
		assert_non_null(strstr(err, b[i].env));
	}
}

static void write_file(const char *dir, const char *name, const char *data, size_t len,
		       char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/%s", dir, name);
	FILE *f = fopen(out, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

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

static void new_settings_defaults_and_bounds(void **state)
{
	struct config c;
	char err[256];
	config_defaults(&c);
	assert_int_equal(c.create_limit, 20);
	assert_int_equal(c.create_window_ms, 10000);
	assert_int_equal(c.poll_rate, 10);
	assert_int_equal(c.limit_margin_ms, 250);
	assert_int_equal(c.rate_backoff_ms, 1000);
	assert_int_equal(c.rate_backoff_max_ms, 60000);
	assert_int_equal(c.credit_probe_ms, 30000);
	assert_int_equal(c.dead_max, 10000);
	assert_int_equal(c.meta_max_bytes, 4096);
	assert_string_equal(c.account_prefix, "kie:account");
	assert_int_equal(c.results_max, 10000);
	assert_string_equal(c.redis_password, "");
	assert_string_equal(c.kie_api_token_file, "");

	static const struct bound b[] = {
		{"create-limit", "KIE_CREATE_LIMIT", "0", "100001", "(1..100000)"},
		{"create-window-ms", "KIE_CREATE_WINDOW_MS", "99", "3600001", "(100..3600000)"},
		{"poll-rate", "KIE_POLL_RATE", "0", "10001", "(1..10000)"},
		{"limit-margin-ms", "KIE_LIMIT_MARGIN_MS", "-1", "60001", "(0..60000)"},
		{"rate-backoff-ms", "KIE_RATE_BACKOFF_MS", "9", "600001", "(10..600000)"},
		{"rate-backoff-max-ms", "KIE_RATE_BACKOFF_MAX_MS", "9", "3600001", "(10..3600000)"},
		{"credit-probe-ms", "KIE_CREDIT_PROBE_MS", "99", "3600001", "(100..3600000)"},
		{"dead-max", "KIE_DEAD_MAX", "0", "10000001", "(1..10000000)"},
		{"meta-max-bytes", "KIE_JOB_META_MAX_BYTES", "-1", "65537", "(0..65536)"},
	};
	refuses_outside(&c, b, sizeof(b) / sizeof(b[0]));
	assert_int_equal(config_set(&c, "--create-limit", "5", err, sizeof(err)), 0);
	assert_int_equal(c.create_limit, 5);
	assert_int_equal(config_set(&c, "KIE_JOB_META_MAX_BYTES", "0", err, sizeof(err)), 0);
	assert_int_equal(c.meta_max_bytes, 0);
	assert_int_equal(config_set(&c, "account-prefix", "{acct}", err, sizeof(err)), 0);
	assert_string_equal(c.account_prefix, "{acct}");
	config_free(&c);
}

/* Any local user can read /proc/<pid>/cmdline: a secret given as a flag (by its flag name
 * or its env name with "--") is refused, naming the variables to use instead. */
static void secrets_refused_on_the_command_line(void **state)
{
	struct config c;
	char err[512];
	static const struct {
		const char *name, *want;
	} cases[] = {
		{"token", "--token: secrets are not taken on the command line"},
		{"--token", "--token: secrets are not taken on the command line"},
		{"--KIE_API_TOKEN", "set KIE_API_TOKEN or KIE_API_TOKEN_FILE"},
		{"--webhook-hmac-key", "set KIE_WEBHOOK_HMAC_KEY or KIE_WEBHOOK_HMAC_KEY_FILE"},
		{"--KIE_WEBHOOK_HMAC_KEY", "/proc/<pid>/cmdline"},
		{"--R2_SECRET_ACCESS_KEY", "set R2_SECRET_ACCESS_KEY or R2_SECRET_ACCESS_KEY_FILE"},
	};
	config_defaults(&c);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(config_set(&c, cases[i].name, "sk-cmdline-secret", err,
					    sizeof(err)), -1);
		if (!strstr(err, cases[i].want))
			print_error("%s: %s\n", cases[i].name, err);
		assert_non_null(strstr(err, cases[i].want));
		assert_null(strstr(err, "sk-cmdline-secret"));
	}
	assert_string_equal(c.kie_api_token, "");
	assert_string_equal(c.webhook_hmac_key, "");
	assert_string_equal(c.r2_secret_access_key, "");
	/* the environment's names are still taken (config_load_env, and programs) */
	assert_int_equal(config_set(&c, "KIE_API_TOKEN", "from-env", err, sizeof(err)), 0);
	assert_string_equal(c.kie_api_token, "from-env");

	/* a Redis URL with a password in it, likewise; one without is fine */
	const char *with_pw[] = {"redis://:hunter2@h:6379/0", "redis://alice:hunter2@h/1",
				 "redis://hunter2@h/0"};
	for (size_t i = 0; i < sizeof(with_pw) / sizeof(with_pw[0]); i++) {
		assert_int_equal(config_set(&c, "--redis-url", with_pw[i], err, sizeof(err)), -1);
		assert_non_null(strstr(err, "--redis-url: a Redis password is not taken on the "
					    "command line"));
		assert_non_null(strstr(err, "REDIS_PASSWORD_FILE"));
		assert_null(strstr(err, "hunter2"));
		assert_int_equal(config_set(&c, "--REDIS_URL", with_pw[i], err, sizeof(err)), -1);
		assert_null(strstr(err, "hunter2"));
	}
	assert_string_equal(c.redis_url, "redis://127.0.0.1:6379/0");
	assert_int_equal(config_set(&c, "redis-url", "redis://alice:@h:7000/2", err,
				    sizeof(err)), 0);
	assert_int_equal(config_set(&c, "--redis-url", "redis://[::1]:6380/1", err, sizeof(err)),
			 0);
	assert_string_equal(c.redis_url, "redis://[::1]:6380/1");
	assert_int_equal(config_set(&c, "REDIS_URL", "redis://:pw@h/0", err, sizeof(err)), 0);
	/* a bad URL: the message says what, never quoting it */
	assert_int_equal(config_set(&c, "--redis-url", "rediss://:hunter2@h:0", err, sizeof(err)),
			 -1);
	assert_null(strstr(err, "hunter2"));
	assert_int_equal(config_set(&c, "REDIS_URL", "redis://:hunter2@h:0", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "REDIS_URL: port 0 is not 1..65535"));
	assert_null(strstr(err, "hunter2"));
	config_free(&c);
}

static void secrets_from_files(void **state)
{
	char dir[] = "/tmp/kie-cfg-XXXXXX", err[512], path[300], p2[300];
	struct config c;
	assert_non_null(mkdtemp(dir));
	config_defaults(&c);

	/* one trailing newline stripped (LF or CR LF), and only one */
	write_file(dir, "token", "sk-from-file\n", 13, path, sizeof(path));
	setenv("KIE_API_TOKEN_FILE", path, 1);
	write_file(dir, "hmac", "hmac-key\r\n", 10, p2, sizeof(p2));
	setenv("KIE_WEBHOOK_HMAC_KEY_FILE", p2, 1);
	assert_int_equal(config_load_env(&c, err, sizeof(err)), 0);
	assert_string_equal(c.kie_api_token, "sk-from-file");
	assert_string_equal(c.kie_api_token_file, path);
	assert_string_equal(c.webhook_hmac_key, "hmac-key");
	assert_int_equal(config_require(&c, "KIE_API_TOKEN", err, sizeof(err)), 0);
	char *out = printed(&c);
	assert_non_null(strstr(out, "KIE_API_TOKEN=(set)\n"));
	assert_non_null(strstr(out, "KIE_API_TOKEN_FILE=/tmp/kie-cfg-"));
	assert_null(strstr(out, "sk-from-file"));
	assert_null(strstr(out, "hmac-key\n"));
	free(out);
	unsetenv("KIE_WEBHOOK_HMAC_KEY_FILE");

	write_file(dir, "plain", "no-newline", 10, path, sizeof(path));
	setenv("R2_SECRET_ACCESS_KEY_FILE", path, 1);
	write_file(dir, "redis", "r3dis-pw\n", 9, p2, sizeof(p2));
	setenv("REDIS_PASSWORD_FILE", p2, 1);
	assert_int_equal(config_load_env(&c, err, sizeof(err)), 0);
	assert_string_equal(c.r2_secret_access_key, "no-newline");
	assert_string_equal(c.redis_password, "r3dis-pw");
	assert_string_equal(c.redis_password_file, p2);
	out = printed(&c);
	assert_null(strstr(out, "r3dis-pw"));
	assert_non_null(strstr(out, "REDIS_PASSWORD_FILE=/tmp/kie-cfg-"));
	free(out);
	unsetenv("R2_SECRET_ACCESS_KEY_FILE");
	unsetenv("REDIS_PASSWORD_FILE");

	/* both NAME and NAME_FILE: an error naming both (an empty NAME counts as unset) */
	setenv("KIE_API_TOKEN", "sk-env", 1);
	assert_int_equal(config_load_env(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "KIE_API_TOKEN and KIE_API_TOKEN_FILE are both set"));
	assert_null(strstr(err, "sk-env"));
	setenv("KIE_API_TOKEN", "", 1);
	assert_int_equal(config_load_env(&c, err, sizeof(err)), 0);
	unsetenv("KIE_API_TOKEN");

	/* missing, empty, more than one line, NUL, too large: errors naming the variable and
	 * the path, never the content */
	static const struct {
		const char *data;
		size_t len;
		const char *want;
	} bad[] = {
		{"", 0, "is empty"},
		{"\n", 1, "is empty"},
		{"sk-two\n\n", 8, "has more than one line"},
		{"sk-a\nsk-b\n", 10, "has more than one line"},
		{"sk-\0nul\n", 8, "has a NUL byte"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(dir, "bad", bad[i].data, bad[i].len, path, sizeof(path));
		setenv("KIE_API_TOKEN_FILE", path, 1);
		assert_int_equal(config_load_env(&c, err, sizeof(err)), -1);
		if (!strstr(err, bad[i].want))
			print_error("case %zu: %s\n", i, err);
		assert_non_null(strstr(err, bad[i].want));
		assert_non_null(strstr(err, "KIE_API_TOKEN_FILE: "));
		assert_non_null(strstr(err, path));
		assert_null(strstr(err, "sk-"));
		unlink(path);
	}
	char *big = calloc(1, CONFIG_SECRET_FILE_MAX_BYTES + 2);
	memset(big, 'k', CONFIG_SECRET_FILE_MAX_BYTES + 1);
	write_file(dir, "big", big, CONFIG_SECRET_FILE_MAX_BYTES + 1, path, sizeof(path));
	free(big);
	setenv("KIE_API_TOKEN_FILE", path, 1);
	assert_int_equal(config_load_env(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "is larger than 16384 bytes"));
	unlink(path);
	snprintf(path, sizeof(path), "%s/missing", dir);
	setenv("REDIS_PASSWORD_FILE", path, 1);
	unsetenv("KIE_API_TOKEN_FILE");
	assert_int_equal(config_load_env(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "REDIS_PASSWORD_FILE: cannot read "));
	assert_non_null(strstr(err, "/missing: No such file or directory"));
	setenv("REDIS_PASSWORD_FILE", dir, 1); /* a directory: unreadable */
	assert_int_equal(config_load_env(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "REDIS_PASSWORD_FILE: cannot read "));
	unsetenv("REDIS_PASSWORD_FILE");

	/* a path is not a secret: the command line may name one */
	write_file(dir, "token2", "sk-second\n", 10, path, sizeof(path));
	assert_int_equal(config_set(&c, "--KIE_API_TOKEN_FILE", path, err, sizeof(err)), 0);
	assert_string_equal(c.kie_api_token, "sk-second");
	unlink(path);
	snprintf(path, sizeof(path), "%s/token", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/hmac", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/plain", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/redis", dir);
	unlink(path);
	assert_int_equal(rmdir(dir), 0);
	config_free(&c);
}

static void urls_print_masked(void **state)
{
	static const struct {
		const char *url, *want;
	} cases[] = {
		{"redis://alice:hunter2@cache:6380/3", "redis://alice:***@cache:6380/3"},
		{"redis://:hunter2@cache/0", "redis://:***@cache/0"},
		{"redis://hunter2@cache/0", "redis://***@cache/0"}, /* redis-cli's password */
		{"redis://:hunter2%40x@[::1]:6380/1", "redis://:***@[::1]:6380/1"},
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
		{"redis://alice:@h:1/2", "redis://alice:@h:1/2"},
		{"unix:///tmp/redis.sock?db=2", "unix:///tmp/redis.sock?db=2"},
		{"https://cb:hunter2@hooks.example/kie?x=1", "https://cb:***@hooks.example/kie?x=1"},
		{"redis://alice:hun@ter2@h/0", "(not shown: not a valid URL)"},
		{"unix://:hunter2@/tmp/r.sock", "(not shown: not a valid URL)"},
		{"not a url", "not a url"},
		{"", ""},
	};
	char out[256];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		config_url_masked(cases[i].url, out, sizeof(out));
		assert_string_equal(out, cases[i].want);
	}
	assert_ptr_equal(config_url_masked("redis://h", out, sizeof(out)), out);

	struct config c;
	char err[256];
	config_defaults(&c);
	assert_int_equal(config_set(&c, "REDIS_URL", "redis://alice:hunter2@cache:6380/3", err,
				    sizeof(err)), 0);
	assert_int_equal(config_set(&c, "KIE_CALLBACK_URL", "https://cb:hunter2@hooks.example/k",
				    err, sizeof(err)), 0);
	char *text = printed(&c);
	assert_non_null(strstr(text, "REDIS_URL=redis://alice:***@cache:6380/3\n"));
	assert_non_null(strstr(text, "KIE_CALLBACK_URL=https://cb:***@hooks.example/k\n"));
	assert_null(strstr(text, "hunter2"));
	free(text);
	/* nor in the error of a URL setting that is not a URL */
	assert_int_equal(config_set(&c, "KIE_CALLBACK_URL", "ftp://cb:hunter2@hooks.example/k",
				    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "KIE_CALLBACK_URL: \"ftp://cb:***@hooks.example/k\" is not a URL"));
	config_free(&c);
}

static void require_names_the_variable(void **state)
{
	struct config c;
	char err[256];
	config_defaults(&c);
	assert_int_equal(config_require(&c, "KIE_API_TOKEN", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "KIE_API_TOKEN is not set (nor KIE_API_TOKEN_FILE)"));
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
			       "R2_PUBLIC_BASE_URL", "KIE_BASE_URL", "REDIS_URL", "KIE_PROMPTS_DIR",
			       "KIE_API_TOKEN_FILE", "KIE_WEBHOOK_HMAC_KEY_FILE",
			       "R2_SECRET_ACCESS_KEY_FILE", "REDIS_PASSWORD_FILE", "KIE_CREATE_LIMIT",
			       "--create-window-ms", "KIE_POLL_RATE", "KIE_LIMIT_MARGIN_MS",
			       "KIE_RATE_BACKOFF_MS", "KIE_RATE_BACKOFF_MAX_MS", "KIE_CREDIT_PROBE_MS",
			       "KIE_DEAD_MAX", "KIE_JOB_META_MAX_BYTES", "--account-prefix",
			       "default \"kie:account\"", "KIE_HTTP_ADDR", "--http-addr",
			       "KIE_CALLBACK_PATH", "default \"/api/kie/callback\"",
			       "KIE_HTTP_BODY_MAX", "KIE_HTTP_MAX_CONNECTIONS",
			       "KIE_HTTP_CONN_TIMEOUT_S", "KIE_WEBHOOK_WINDOW_S"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_non_null(strstr(buf, names[i]));
	assert_non_null(strstr(buf, "default \"https://api.kie.ai\""));
	free(buf);
}

static void callback_endpoint_settings(void **state)
{
	struct config c;
	char err[256];
	config_defaults(&c);
	assert_string_equal(c.http_addr, "");       /* off */
	assert_string_equal(c.callback_path, "/api/kie/callback");
	assert_int_equal(c.http_body_max, 65536);
	assert_int_equal(c.http_max_connections, 256);
	assert_int_equal(c.http_max_per_address, 8);
	assert_int_equal(c.http_conn_timeout_s, 10);
	assert_int_equal(c.http_request_timeout_ms, 10000);
	assert_string_equal(c.http_trusted_proxies, "");
	assert_string_equal(c.ops_addr, "");       /* the operator routes on KIE_HTTP_ADDR */
	assert_string_equal(c.admin_hosts, "");
	assert_int_equal(c.callbacks_max, 100000);
	assert_int_equal(c.webhook_window_s, 300);

	/* the operator listener takes KIE_HTTP_ADDR's forms; proxies are addresses/CIDRs */
	assert_int_equal(config_set(&c, "KIE_OPS_ADDR", "127.0.0.1:9090", err, sizeof(err)), 0);
	assert_string_equal(c.ops_addr, "127.0.0.1:9090");
	assert_int_equal(config_set(&c, "KIE_OPS_ADDR", "localhost:9090", err, sizeof(err)), -1);
	assert_int_equal(strncmp(err, "KIE_OPS_ADDR: ", 14), 0);
	assert_int_equal(config_set(&c, "KIE_HTTP_TRUSTED_PROXIES", "10.0.0.0/8, ::1", err,
				    sizeof(err)), 0);
	assert_string_equal(c.http_trusted_proxies, "10.0.0.0/8, ::1");
	assert_int_equal(config_set(&c, "KIE_HTTP_TRUSTED_PROXIES", "10.0.0.1/8", err,
				    sizeof(err)), -1);
	assert_int_equal(strncmp(err, "KIE_HTTP_TRUSTED_PROXIES: ", 26), 0);
	assert_string_equal(c.http_trusted_proxies, "10.0.0.0/8, ::1");
	assert_int_equal(config_set(&c, "KIE_HTTP_REQUEST_TIMEOUT_MS", "99", err, sizeof(err)), -1);
	assert_int_equal(config_set(&c, "KIE_HTTP_MAX_PER_ADDRESS", "0", err, sizeof(err)), -1);
	assert_int_equal(config_set(&c, "KIE_CALLBACKS_MAX", "0", err, sizeof(err)), -1);
	assert_int_equal(config_set(&c, "KIE_CALLBACKS_MAX", "100", err, sizeof(err)), 0);

	assert_int_equal(config_set(&c, "http-addr", "127.0.0.1:8080", err, sizeof(err)), 0);
	assert_string_equal(c.http_addr, "127.0.0.1:8080");
	assert_int_equal(config_set(&c, "KIE_HTTP_ADDR", "[::1]:8080", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "KIE_HTTP_ADDR", ":8080", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "KIE_HTTP_ADDR", "", err, sizeof(err)), 0);
	assert_string_equal(c.http_addr, "");
	static const char *const bad_addr[] = {"8080", "localhost:8080", "127.0.0.1:0",
					       "::1:8080", "127.0.0.1:70000", "[::1]"};
	for (size_t i = 0; i < sizeof(bad_addr) / sizeof(bad_addr[0]); i++) {
		assert_int_equal(config_set(&c, "KIE_HTTP_ADDR", bad_addr[i], err, sizeof(err)),
				 -1);
		if (strncmp(err, "KIE_HTTP_ADDR: ", 15) != 0)
			print_error("%s: %s\n", bad_addr[i], err);
		assert_int_equal(strncmp(err, "KIE_HTTP_ADDR: ", 15), 0);
	}
	assert_int_equal(config_set(&c, "--http-addr", "nope", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "--http-addr"));
	assert_non_null(strstr(err, "KIE_HTTP_ADDR"));
	assert_string_equal(c.http_addr, ""); /* a refused value changes nothing */

	assert_int_equal(config_set(&c, "callback-path", "/hooks/kie", err, sizeof(err)), 0);
	assert_string_equal(c.callback_path, "/hooks/kie");
	static const char *const bad_path[] = {"hooks", "", "/a b", "/a?b", "/a#b", "/a%20b",
					       "/caf\xc3\xa9", "/a\tb"};
	for (size_t i = 0; i < sizeof(bad_path) / sizeof(bad_path[0]); i++) {
		assert_int_equal(config_set(&c, "KIE_CALLBACK_PATH", bad_path[i], err,
					    sizeof(err)), -1);
		assert_non_null(strstr(err, "KIE_CALLBACK_PATH"));
		assert_non_null(strstr(err, "is not a URL path"));
	}
	char long_path[600];
	memset(long_path, 'a', sizeof(long_path) - 1);
	long_path[0] = '/';
	long_path[sizeof(long_path) - 1] = '\0';
	assert_int_equal(config_set(&c, "KIE_CALLBACK_PATH", long_path, err, sizeof(err)), -1);

	static const struct bound b[] = {
		{"http-body-max", "KIE_HTTP_BODY_MAX", "1023", "1048577", "(1024..1048576)"},
		{"http-max-connections", "KIE_HTTP_MAX_CONNECTIONS", "0", "10001", "(1..10000)"},
		{"http-conn-timeout-s", "KIE_HTTP_CONN_TIMEOUT_S", "0", "601", "(1..600)"},
		{"webhook-window-s", "KIE_WEBHOOK_WINDOW_S", "0", "86401", "(1..86400)"},
	};
	refuses_outside(&c, b, sizeof(b) / sizeof(b[0]));
	assert_int_equal(config_set(&c, "KIE_HTTP_BODY_MAX", "1024", err, sizeof(err)), 0);
	assert_int_equal(c.http_body_max, 1024);
	config_free(&c);

	/* from the environment: a bad address stops start-up naming the variable */
	config_defaults(&c);
	setenv("KIE_HTTP_ADDR", "0.0.0.0", 1);
	assert_int_equal(config_load_env(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "KIE_HTTP_ADDR"));
	setenv("KIE_HTTP_ADDR", "127.0.0.1:18080", 1);
	assert_int_equal(config_load_env(&c, err, sizeof(err)), 0);
	assert_string_equal(c.http_addr, "127.0.0.1:18080");
	unsetenv("KIE_HTTP_ADDR");
	config_free(&c);
}

/* Issue 16: every numeric setting takes digits only (strtoll took " 5" and "+5"); a
 * refused value is quoted cut at a character, never inside one (%.64s did); a URL whose
 * host libcurl would decode into bytes no resolver takes is refused at start-up. */
static void numbers_quotes_and_url_hosts(void **state)
{
	static const char *const bad_numbers[] = {" 4", "4 ", "+4", "4.0", "0.5", "nan", "inf",
						  "4e0", "0x4", "", "99999999999999999999"};
	struct config c;
	char err[512], path[200];
	(void)state;
	config_defaults(&c);
	for (size_t i = 0; i < sizeof(bad_numbers) / sizeof(bad_numbers[0]); i++) {
		err[0] = '\0';
		if (config_set(&c, "KIE_WORKER_CONCURRENCY", bad_numbers[i], err, sizeof(err)) != -1)
			fail_msg("KIE_WORKER_CONCURRENCY=\"%s\" accepted", bad_numbers[i]);
		assert_non_null(strstr(err, "KIE_WORKER_CONCURRENCY"));
		assert_non_null(strstr(err, "is not a whole number"));
	}
	assert_int_equal(c.concurrency, 4);
	/* 63 ASCII bytes and a 2-byte character: the quote stops before it, and stays UTF-8 */
	memset(path, 'p', sizeof(path));
	path[0] = '/';
	memcpy(path + 63, "\xc3\xa9?", 3);
	path[66] = '\0';
	assert_int_equal(config_set(&c, "KIE_CALLBACK_PATH", path, err, sizeof(err)), -1);
	assert_true(util_utf8_len(err, strlen(err)) >= 0);
	assert_non_null(strstr(err, "KIE_CALLBACK_PATH: \"/ppp"));
	assert_null(strstr(err, "\xc3"));
	assert_int_equal(config_set(&c, "KIE_LOG_LEVEL", "\xdd\n", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "\"??\" is not one of"));
	assert_int_equal(config_set(&c, "--concurrency", "\xe2\x82\xac\xe2\x82", err, 40), -1);
	assert_true(util_utf8_len(err, strlen(err)) >= 0);
	/* KIE_CALLBACK_URL (and every URL setting): the host as libcurl decodes it */
	assert_int_equal(config_set(&c, "KIE_CALLBACK_URL", "https://a%dd.example/cb", err,
				    sizeof(err)), -1);
	assert_non_null(strstr(err, "KIE_CALLBACK_URL has the host \"a?.example\" once "
			       "percent-decoded"));
	assert_int_equal(config_set(&c, "KIE_BASE_URL", "https://api%2ekie.ai", err, sizeof(err)),
			 0);
	assert_int_equal(config_set(&c, "KIE_CALLBACK_URL", "", err, sizeof(err)), 0);
	/* KIE_COPY_ALLOW_PRIVATE: 0 by default, 1, or a list */
	assert_string_equal(c.copy_allow_private, "0");
	assert_int_equal(config_set(&c, "--copy-allow-private", "127.0.0.2,10.0.0.0/8", err,
				    sizeof(err)), 0);
	assert_int_equal(config_set(&c, "KIE_COPY_ALLOW_PRIVATE", "yes", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "KIE_COPY_ALLOW_PRIVATE: \"yes\" is not an IPv4 or IPv6 address"));
	config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults),
		cmocka_unit_test(set_by_flag_or_env_name),
		cmocka_unit_test(from_environment),
		cmocka_unit_test(new_settings_defaults_and_bounds),
		cmocka_unit_test(secrets_refused_on_the_command_line),
		cmocka_unit_test(secrets_from_files),
		cmocka_unit_test(urls_print_masked),
		cmocka_unit_test(require_names_the_variable),
		cmocka_unit_test(metadata_store_choice),
		cmocka_unit_test(help_lists_every_setting),
		cmocka_unit_test(callback_endpoint_settings),
		cmocka_unit_test(numbers_quotes_and_url_hosts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
