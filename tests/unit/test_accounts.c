/* test_accounts.c — KIE_ACCOUNTS_FILE: the file form (comments, blank lines, CR LF, the
 * first is the default), the folder form, KIE_API_TOKEN alone, and errors that name the
 * line and never show a token; KIE_MODEL_CREDITS and the UTC day keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "core/crypto.h"
#include "core/metrics.h"
#include "core/util.h"
#include "kie/accounts.h"
#include "pool/budget.h"

#define SRC "KIE_ACCOUNTS_FILE /x"

static int parse(const char *text, struct accounts *a, char *err, size_t errlen)
{
	return accounts_parse(text, strlen(text), SRC, a, err, errlen);
}

static void file_form(void **state)
{
	struct accounts a;
	char err[512] = "", id[65];
	const char *text = "# the pool's accounts\n\n  main   tok-main-1\r\n"
			   "\tbyok-42\ttok:byok/42 \n# a comment\nspare.x tok3";

	assert_int_equal(parse(text, &a, err, sizeof(err)), 0);
	assert_int_equal(a.n, 3);
	assert_string_equal(a.v[0].alias, "main");
	assert_string_equal(a.v[0].token, "tok-main-1");
	assert_string_equal(a.v[1].alias, "byok-42");
	assert_string_equal(a.v[1].token, "tok:byok/42");
	assert_string_equal(a.v[2].alias, "spare.x");
	crypto_sha256_hex("tok-main-1", 10, id);
	id[16] = '\0';
	assert_string_equal(a.v[0].id, id); /* limiter_account_id's value */
	assert_int_equal(accounts_find(&a, NULL), 0);
	assert_int_equal(accounts_find(&a, ""), 0);
	assert_int_equal(accounts_find(&a, "byok-42"), 1);
	assert_int_equal(accounts_find(&a, "nope"), -1);
	accounts_free(&a);
	assert_int_equal(a.n, 0);
	accounts_free(&a); /* twice: a no-op */
}

/* Each bad file: the error names the line and what is wrong, never the token. */
static void errors_name_the_line(void **state)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{"a SECRET1\nb SECRET2 extra\n", "line 2: expected \"alias token\" (2 fields), found 3"},
		{"a SECRET1\nlonely\n", "line 2: expected \"alias token\" (2 fields), found 1"},
		{"\n\nb@d SECRET1\n", "line 3: \"b@d\" is not an alias"},
		{".hidden SECRET1\n", "line 1: \".hidden\" is not an alias"},
		{"a SECRET1\nb SECRET2\na SECRET3\n", "line 3: the alias \"a\" is given twice (also line 1)"},
		{"a SECRET1\nb SECRET1\n", "line 2: the same token as line 1 (alias \"a\")"},
		{"a SECRET\x01\n", "line 1 (alias \"a\"): the token has a space, a control byte"},
		{"# nothing\n\n", "no account in it"},
		{"", "no account in it"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct accounts a;
		char err[512] = "";
		assert_int_equal(parse(cases[i].text, &a, err, sizeof(err)), -1);
		if (!strstr(err, cases[i].want))
			fail_msg("case %zu: \"%s\" does not say \"%s\"", i, err, cases[i].want);
		assert_null(strstr(err, "SECRET"));
		assert_int_equal(a.n, 0);
		assert_non_null(strstr(err, SRC));
	}
	/* more than ACCOUNTS_MAX */
	{
		struct dbuf b;
		struct accounts a;
		char err[512], line[64];
		dbuf_init(&b, 1 << 20);
		for (int i = 0; i <= ACCOUNTS_MAX; i++) {
			snprintf(line, sizeof(line), "a%d t%d\n", i, i);
			dbuf_add(&b, line, strlen(line));
		}
		assert_int_equal(accounts_parse(b.data, b.len, SRC, &a, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "more than 64 accounts"));
		dbuf_free(&b);
	}
}

static void alias_charset(void **state)
{
	char long_alias[ACCOUNT_ALIAS_MAX + 2];
	memset(long_alias, 'a', sizeof(long_alias) - 1);
	long_alias[sizeof(long_alias) - 1] = '\0';
	assert_true(accounts_alias_valid("default"));
	assert_true(accounts_alias_valid("A-z_0.9"));
	assert_false(accounts_alias_valid(""));
	assert_false(accounts_alias_valid(NULL));
	assert_false(accounts_alias_valid("a b"));
	assert_false(accounts_alias_valid("a|b"));
	assert_false(accounts_alias_valid(".a"));
	assert_false(accounts_alias_valid(long_alias));
	long_alias[ACCOUNT_ALIAS_MAX] = '\0';
	assert_true(accounts_alias_valid(long_alias));
}

static void write_file(const char *path, const char *data)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	fputs(data, f);
	fclose(f);
}

static void load_forms(void **state)
{
	struct config c;
	struct accounts a;
	char dir[] = "/tmp/kie-accounts-XXXXXX", path[512], err[512];

	assert_non_null(mkdtemp(dir));
	config_defaults(&c);
	/* neither: KIE_API_TOKEN is required */
	assert_int_equal(accounts_load(&c, &a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "KIE_API_TOKEN is not set"));
	/* KIE_API_TOKEN alone: one account, "default" */
	assert_int_equal(config_set(&c, "KIE_API_TOKEN", "tok-one", err, sizeof(err)), 0);
	assert_int_equal(accounts_load(&c, &a, err, sizeof(err)), 0);
	assert_int_equal(a.n, 1);
	assert_string_equal(a.v[0].alias, "default");
	assert_string_equal(a.v[0].token, "tok-one");
	accounts_free(&a);
	/* both: refused */
	snprintf(path, sizeof(path), "%s/accounts", dir);
	write_file(path, "main tok-a\nother tok-b\n");
	assert_int_equal(config_set(&c, "KIE_ACCOUNTS_FILE", path, err, sizeof(err)), 0);
	assert_int_equal(accounts_load(&c, &a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "KIE_ACCOUNTS_FILE and KIE_API_TOKEN are both set"));
	assert_null(strstr(err, "tok-"));
	/* the file */
	assert_int_equal(config_set(&c, "KIE_API_TOKEN", "", err, sizeof(err)), 0);
	assert_int_equal(accounts_load(&c, &a, err, sizeof(err)), 0);
	assert_int_equal(a.n, 2);
	assert_string_equal(a.v[1].alias, "other");
	accounts_free(&a);
	/* a bad one names its path and line */
	write_file(path, "main tok-a\nother\n");
	assert_int_equal(accounts_load(&c, &a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "line 2"));
	unlink(path);
	/* the folder: "default" first, then by name; dot files skipped */
	snprintf(path, sizeof(path), "%s/zeta", dir);
	write_file(path, "tok-z\n");
	snprintf(path, sizeof(path), "%s/default", dir);
	write_file(path, "tok-d\r\n");
	snprintf(path, sizeof(path), "%s/alpha", dir);
	write_file(path, "tok-a");
	snprintf(path, sizeof(path), "%s/..data", dir);
	write_file(path, "junk junk");
	assert_int_equal(config_set(&c, "KIE_ACCOUNTS_FILE", dir, err, sizeof(err)), 0);
	assert_int_equal(accounts_load(&c, &a, err, sizeof(err)), 0);
	assert_int_equal(a.n, 3);
	assert_string_equal(a.v[0].alias, "default");
	assert_string_equal(a.v[0].token, "tok-d");
	assert_string_equal(a.v[1].alias, "alpha");
	assert_string_equal(a.v[2].alias, "zeta");
	accounts_free(&a);
	/* a token file of two lines is refused, naming the file */
	snprintf(path, sizeof(path), "%s/alpha", dir);
	write_file(path, "tok-a\nSECRET-line-2\n");
	assert_int_equal(accounts_load(&c, &a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "alpha"));
	assert_null(strstr(err, "SECRET"));
	/* clean up */
	static const char *const names[] = {"zeta", "default", "alpha", "..data"};
	for (size_t i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
	config_free(&c);
}

static void model_credits(void **state)
{
	struct config c;
	char err[512];

	config_defaults(&c);
	assert_true(config_model_credits(&c, "google/nano-banana") == 4);
	assert_true(config_model_credits(&c, "google/nano-banana-pro") == 18);
	assert_true(config_model_credits(&c, "someone/else") == 18); /* the largest */
	assert_int_equal(config_set(&c, "KIE_MODEL_CREDITS", "a/b=2.5,c=0", err, sizeof(err)), 0);
	assert_true(config_model_credits(&c, "a/b") == 2.5);
	assert_true(config_model_credits(&c, "c") == 0);
	assert_true(config_model_credits(&c, "x") == 2.5);
	static const char *const bad[] = {"a", "=3", "a=", "a=-1", "a=1e3", "a=x", "a=1,",
					  "a b=1", "a=2000000"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(config_set(&c, "KIE_MODEL_CREDITS", bad[i], err, sizeof(err)), -1);
		assert_non_null(strstr(err, "KIE_MODEL_CREDITS"));
	}
	assert_int_equal(config_set(&c, "KIE_DAILY_CREDIT_BUDGET", "-1", err, sizeof(err)), -1);
	assert_int_equal(config_set(&c, "KIE_DAILY_CREDIT_BUDGET", "5000", err, sizeof(err)), 0);
	assert_int_equal(c.daily_credit_budget, 5000);
	config_free(&c);
}

static void utc_days(void **state)
{
	char d[16];
	budget_day(1735775999999LL, 0, d, sizeof(d)); /* 2025-01-01T23:59:59.999Z */
	assert_string_equal(d, "20250101");
	budget_day(1735776000000LL, 0, d, sizeof(d));
	assert_string_equal(d, "20250102");
	budget_day(1735776000000LL, 1, d, sizeof(d));
	assert_string_equal(d, "20250101");
	budget_day(1709251200000LL, 1, d, sizeof(d)); /* 2024-03-01: the day before is 29 Feb */
	assert_string_equal(d, "20240229");
	assert_true(budget_group_valid("acme:eu@1"));
	assert_false(budget_group_valid("a|b"));
	assert_false(budget_group_valid(""));
}

static void credits_metrics(void **state)
{
	static const char *const types[] = {"generate-image", "outfit-change-v2"};
	static const char *const accts[] = {"main", "by\"ok"};
	struct dbuf out;

	metrics_reset();
	metrics_set_job_types(types, 2);
	metrics_set_accounts(accts, 2);
	metrics_credits("outfit-change-v2", "main", 6);
	metrics_credits("outfit-change-v2", "main", 0.5);
	metrics_credits("generate-image", "by\"ok", 4);
	metrics_credits("nope", "main", 1);
	metrics_credits("generate-image", "main", -3); /* ignored */
	metrics_balance("main", 1234.5, 1735776000123LL);
	dbuf_init(&out, 1 << 20);
	assert_int_equal(metrics_render(&out, NULL), 0);
	dbuf_add(&out, "", 1);
	const char *t = out.data;
	assert_non_null(strstr(t, "kie_credits_consumed_total{type=\"outfit-change-v2\","
			       "account=\"main\"} 6.500\n"));
	assert_non_null(strstr(t, "kie_credits_consumed_total{type=\"generate-image\","
			       "account=\"by\\\"ok\"} 4.000\n"));
	assert_non_null(strstr(t, "kie_credits_consumed_total{type=\"generate-image\","
			       "account=\"main\"} 0.000\n"));
	assert_non_null(strstr(t, "kie_credits_consumed_total{type=\"unknown\","
			       "account=\"main\"} 1.000\n"));
	assert_null(strstr(t, "type=\"unknown\",account=\"unknown\""));
	assert_non_null(strstr(t, "kie_account_balance{account=\"main\"} 1234.500\n"));
	assert_null(strstr(t, "kie_account_balance{account=\"by"));
	assert_non_null(strstr(t, "kie_account_balance_time_seconds{account=\"main\"} "
			       "1735776000.123\n"));
	dbuf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(file_form),
		cmocka_unit_test(errors_name_the_line),
		cmocka_unit_test(alias_charset),
		cmocka_unit_test(load_forms),
		cmocka_unit_test(model_credits),
		cmocka_unit_test(utc_days),
		cmocka_unit_test(credits_metrics),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
