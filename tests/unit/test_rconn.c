/* test_rconn.c — REDIS_SENTINELS parsing (rconn_addr_sentinels): host:port entries,
 * IPv6 literals in brackets, default port, blanks, limits and refusals that name the
 * entry; and which error replies mean "this node was demoted" (rconn_error_kind). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "redis/rconn.h"

/* A REDIS_URL-parsed address with the sentinel list applied; fails the test on refusal. */
static struct rconn_addr with_sentinels(const char *list, const char *master,
					const char *password)
{
	struct rconn_addr a;
	char err[512] = "";
	assert_int_equal(rconn_parse_url("redis://:urlpass@127.0.0.1:1/3", NULL, &a, err,
					 sizeof(err)), 0);
	int rc = rconn_addr_sentinels(&a, list, master, password, err, sizeof(err));
	if (rc != 0)
		print_error("\"%s\": %s\n", list ? list : "(null)", err);
	assert_int_equal(rc, 0);
	return a;
}

/* Expects a refusal whose message holds want; the address keeps no sentinel. */
static void refused(const char *list, const char *master, const char *want)
{
	struct rconn_addr a;
	char err[512] = "";
	assert_int_equal(rconn_parse_url("redis://127.0.0.1/0", NULL, &a, err, sizeof(err)), 0);
	int rc = rconn_addr_sentinels(&a, list, master, "sentinel-secret", err, sizeof(err));
	if (rc == 0 || !strstr(err, want))
		print_error("\"%s\": rc %d, err \"%s\", wanted \"%s\"\n", list, rc, err, want);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(err, want));
	assert_null(strstr(err, "sentinel-secret"));
	assert_int_equal(a.nsentinels, 0);
	assert_string_equal(a.master_name, "");
	assert_string_equal(a.sentinel_password, "");
	assert_string_equal(a.host, "127.0.0.1"); /* REDIS_URL's part is left alone */
}

static void host_port_entries(void **state)
{
	struct rconn_addr a = with_sentinels("127.0.0.1:26379,10.0.0.2:26380,sentinel-3.internal:5000",
					     "mymaster", NULL);
	assert_int_equal(a.nsentinels, 3);
	assert_string_equal(a.sentinels[0].host, "127.0.0.1");
	assert_int_equal(a.sentinels[0].port, 26379);
	assert_string_equal(a.sentinels[1].host, "10.0.0.2");
	assert_int_equal(a.sentinels[1].port, 26380);
	assert_string_equal(a.sentinels[2].host, "sentinel-3.internal");
	assert_int_equal(a.sentinels[2].port, 5000);
	assert_string_equal(a.master_name, "mymaster");
	assert_string_equal(a.sentinel_password, "");
	/* REDIS_URL still gives the primary's password and db */
	assert_string_equal(a.password, "urlpass");
	assert_int_equal(a.db, 3);
}

static void default_port_and_blanks(void **state)
{
	struct rconn_addr a = with_sentinels(" s1 ,\ts2:1\t, [::1] ", "m", "pw");
	assert_int_equal(a.nsentinels, 3);
	assert_string_equal(a.sentinels[0].host, "s1");
	assert_int_equal(a.sentinels[0].port, RCONN_SENTINEL_PORT);
	assert_string_equal(a.sentinels[1].host, "s2");
	assert_int_equal(a.sentinels[1].port, 1);
	assert_string_equal(a.sentinels[2].host, "::1");
	assert_int_equal(a.sentinels[2].port, 26379);
	assert_string_equal(a.sentinel_password, "pw");
}

static void ipv6_literals(void **state)
{
	struct rconn_addr a = with_sentinels("[::1]:26379,[2001:db8::7]:65535,[fe80::1%eth0]:3,"
					     "[::ffff:10.1.2.3]:4", "mymaster", NULL);
	assert_int_equal(a.nsentinels, 4);
	assert_string_equal(a.sentinels[0].host, "::1");
	assert_int_equal(a.sentinels[0].port, 26379);
	assert_string_equal(a.sentinels[1].host, "2001:db8::7");
	assert_int_equal(a.sentinels[1].port, 65535);
	assert_string_equal(a.sentinels[2].host, "fe80::1%eth0");
	assert_int_equal(a.sentinels[2].port, 3);
	assert_string_equal(a.sentinels[3].host, "::ffff:10.1.2.3");

	refused("::1:26379", "m", "written in brackets");
	refused("2001:db8::7", "m", "written in brackets");
	refused("[::1", "m", "entry 1");
	refused("[::1]26379", "m", "entry 1");
	refused("[]:26379", "m", "entry 1");
	refused("[127.0.0.1]:26379", "m", "entry 1"); /* brackets are for IPv6 */
	refused("[::1%]:1", "m", "entry 1");
	refused("[::1%e/0]:1", "m", "entry 1");
	refused("[zz::1]:1", "m", "entry 1");
}

static void off_when_empty(void **state)
{
	struct rconn_addr a = with_sentinels("", "mymaster", "pw");
	assert_int_equal(a.nsentinels, 0);
	assert_string_equal(a.master_name, "");
	assert_string_equal(a.sentinel_password, "");
	a = with_sentinels(NULL, "mymaster", NULL);
	assert_int_equal(a.nsentinels, 0);
	a = with_sentinels("  \t ", "", NULL); /* off: the master name is not needed */
	assert_int_equal(a.nsentinels, 0);
	assert_string_equal(a.host, "127.0.0.1");
	assert_int_equal(a.port, 1);
}

static void ports(void **state)
{
	refused("h:0", "m", "entry 1 (\"h:0\"): the port is not a number 1..65535");
	refused("h:65536", "m", "the port is not a number 1..65535");
	refused("a:1,h:", "m", "entry 2 (\"h:\"): the port");
	refused("h:+1", "m", "the port");
	refused("h:-1", "m", "the port");
	refused("h:1 2", "m", "the port");
	refused("h:0x10", "m", "the port");
	refused("h:123456", "m", "the port");
	refused("[::1]:99999", "m", "the port");
	struct rconn_addr a = with_sentinels("h:00080", "m", NULL);
	assert_int_equal(a.sentinels[0].port, 80);
}

static void bad_entries(void **state)
{
	refused(",h:1", "m", "entry 1 is empty");
	refused("h:1,", "m", "entry 2 is empty");
	refused("h:1,,h:2", "m", "entry 2 is empty");
	refused("h:1, ,h:2", "m", "entry 2 is empty");
	refused(":26379", "m", "entry 1 (\":26379\") is not host:port");
	refused("redis://h:1", "m", "is not host:port");
	refused("fe80::1%eth0:1", "m", "written in brackets");
	refused("user@h:1", "m", "is not host:port");
	refused("h/0:1", "m", "is not host:port");
	refused("h 1:2", "m", "is not host:port");
	refused("a:1;b:2", "m", "is not host:port");
	refused("a:1;b", "m", "the port");
	refused("h\n:1", "m", "is not host:port");
}

static void limits(void **state)
{
	char list[4096] = "", host[300];
	size_t n = 0;
	for (int i = 0; i < RCONN_SENTINELS_MAX; i++)
		n += (size_t)snprintf(list + n, sizeof(list) - n, "%sh%d:%d", i ? "," : "", i, i + 1);
	struct rconn_addr a = with_sentinels(list, "m", NULL);
	assert_int_equal(a.nsentinels, RCONN_SENTINELS_MAX);
	assert_string_equal(a.sentinels[RCONN_SENTINELS_MAX - 1].host, "h15");
	assert_int_equal(a.sentinels[RCONN_SENTINELS_MAX - 1].port, RCONN_SENTINELS_MAX);
	snprintf(list + n, sizeof(list) - n, ",one-too-many:1");
	refused(list, "m", "more than 16 sentinels");

	memset(host, 'a', 255);
	host[255] = '\0';
	a = with_sentinels(host, "m", NULL);
	assert_int_equal(strlen(a.sentinels[0].host), 255);
	host[255] = 'a';
	host[256] = '\0';
	refused(host, "m", "the host is longer than 255 bytes");
}

static void master_name_and_password(void **state)
{
	char name[200], pw[300];
	refused("h:1", "", "KIE_REDIS_MASTER_NAME is empty");
	refused("h:1", NULL, "KIE_REDIS_MASTER_NAME is empty");
	refused("h:1", "my master", "KIE_REDIS_MASTER_NAME has a blank");
	refused("h:1", "m\n", "KIE_REDIS_MASTER_NAME has a blank or a control character");
	memset(name, 'm', 128);
	name[128] = '\0';
	refused("h:1", name, "KIE_REDIS_MASTER_NAME is longer than 127 bytes");
	name[127] = '\0';
	struct rconn_addr a = with_sentinels("h:1", name, NULL);
	assert_int_equal(strlen(a.master_name), 127);

	struct rconn_addr b;
	char err[512] = "";
	memset(pw, 'p', 256);
	pw[256] = '\0';
	assert_int_equal(rconn_parse_url("redis://h/0", NULL, &b, err, sizeof(err)), 0);
	assert_int_equal(rconn_addr_sentinels(&b, "h:1", "m", pw, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "REDIS_SENTINEL_PASSWORD_FILE: the password is longer than 255"));
	assert_null(strstr(err, "ppp"));
	assert_int_equal(b.nsentinels, 0);
	assert_string_equal(b.sentinel_password, "");
}

/* rconn_parse_url clears the sentinel part: it is applied after, as main.c does */
static void parse_url_clears_sentinels(void **state)
{
	struct rconn_addr a = with_sentinels("h:1", "m", "pw");
	char err[512] = "";
	assert_int_equal(a.nsentinels, 1);
	assert_int_equal(rconn_parse_url("redis://x/0", NULL, &a, err, sizeof(err)), 0);
	assert_int_equal(a.nsentinels, 0);
	assert_string_equal(a.sentinel_password, "");
}

static void error_kinds(void **state)
{
	static const struct {
		const char *msg;
		enum rconn_err_kind want;
	} cases[] = {
		{"READONLY You can't write against a read only replica.", RCONN_ERR_DEMOTED},
		{"READONLY You can't write against a read only replica. script: 67ed14c1, on "
		 "@user_script:1.", RCONN_ERR_DEMOTED},
		{"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
		 RCONN_ERR_DEMOTED},
		{"NOREPLICAS Not enough good replicas to write.", RCONN_ERR_DEMOTED},
		{"READONLY", RCONN_ERR_DEMOTED},
		{"ERR Error running script (call to f_1234): @user_script:1: @user_script: 1: "
		 "-READONLY You can't write against a read only replica.", RCONN_ERR_DEMOTED},
		{"UNBLOCKED force unblock from blocking operation, instance state changed "
		 "(master -> replica?)", RCONN_ERR_DEMOTED},
		{"LOADING Redis is loading the dataset in memory", RCONN_ERR_LOADING},
		{"UNBLOCKED client unblocked via CLIENT UNBLOCK", RCONN_ERR_OTHER},
		{"READONLYX", RCONN_ERR_OTHER},
		{"ERR READONLY", RCONN_ERR_OTHER},
		{"ERR wrong number of arguments", RCONN_ERR_OTHER},
		{"OOM command not allowed when used memory > 'maxmemory'.", RCONN_ERR_OTHER},
		{"EXECABORT Transaction discarded because of previous errors.", RCONN_ERR_OTHER},
		{"readonly lower case is not Redis's", RCONN_ERR_OTHER},
		{"", RCONN_ERR_OTHER},
		{NULL, RCONN_ERR_OTHER},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum rconn_err_kind got = rconn_error_kind(cases[i].msg);
		if (got != cases[i].want)
			print_error("\"%s\": kind %d, wanted %d\n", cases[i].msg ? cases[i].msg : "(null)",
				    (int)got, (int)cases[i].want);
		assert_int_equal(got, cases[i].want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(host_port_entries),
		cmocka_unit_test(default_port_and_blanks),
		cmocka_unit_test(ipv6_literals),
		cmocka_unit_test(off_when_empty),
		cmocka_unit_test(ports),
		cmocka_unit_test(bad_entries),
		cmocka_unit_test(limits),
		cmocka_unit_test(master_name_and_password),
		cmocka_unit_test(parse_url_clears_sentinels),
		cmocka_unit_test(error_kinds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
