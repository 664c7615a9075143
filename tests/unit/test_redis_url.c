/* test_redis_url.c — REDIS_URL parsing (rconn_parse_url, libcurl's URL API): hosts and
 * IPv6 literals, ports, percent-decoded user and password and their limits, the database,
 * unix sockets, rediss:// and the TLS settings (rconn_addr_tls), refused schemes, and
 * errors that never quote the password. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "redis/rconn.h"
#include "redis/redis_tls.h"

static struct rconn_addr parse_ok(const char *url, const char *password)
{
	struct rconn_addr a;
	char err[512] = "";
	int rc = rconn_parse_url(url, password, &a, err, sizeof(err));
	if (rc != 0)
		print_error("%s: %s\n", url, err);
	assert_int_equal(rc, 0);
	return a;
}

/* Parses url expecting a refusal whose message holds want; returns nothing, checks that
 * the message names REDIS_URL (or REDIS_PASSWORD_FILE) and that out is zeroed. */
static void parse_bad(const char *url, const char *password, const char *want)
{
	struct rconn_addr a, zero;
	char err[512] = "";
	memset(&zero, 0, sizeof(zero));
	int rc = rconn_parse_url(url, password, &a, err, sizeof(err));
	if (rc == 0 || !strstr(err, want))
		print_error("%s: rc %d, err \"%s\", wanted \"%s\"\n", url, rc, err, want);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(err, want));
	assert_true(strstr(err, "REDIS_URL") || strstr(err, "REDIS_PASSWORD_FILE"));
	assert_memory_equal(&a, &zero, sizeof(a));
}

static void host_port_db(void **state)
{
	struct rconn_addr a = parse_ok("redis://127.0.0.1:6379/0", NULL);
	assert_string_equal(a.host, "127.0.0.1");
	assert_int_equal(a.port, 6379);
	assert_int_equal(a.db, 0);
	assert_string_equal(a.user, "");
	assert_string_equal(a.password, "");
	assert_string_equal(a.unix_path, "");

	a = parse_ok("redis://redis.internal", NULL);
	assert_string_equal(a.host, "redis.internal");
	assert_int_equal(a.port, 6379); /* the default */
	assert_int_equal(a.db, 0);
	a = parse_ok("REDIS://Cache.Example:7000/", NULL);
	assert_string_equal(a.host, "Cache.Example");
	assert_int_equal(a.port, 7000);
	a = parse_ok("redis://h:1/1000", NULL);
	assert_int_equal(a.port, 1);
	assert_int_equal(a.db, 1000);
	a = parse_ok("redis://h:65535/07", NULL);
	assert_int_equal(a.port, 65535);
	assert_int_equal(a.db, 7);
}

/* Before: the port of redis://[::1]:6380 was ignored. hiredis wants "::1", no brackets. */
static void ipv6_literals(void **state)
{
	struct rconn_addr a = parse_ok("redis://[::1]:6380", NULL);
	assert_string_equal(a.host, "::1");
	assert_int_equal(a.port, 6380);
	a = parse_ok("redis://[::1]/2", NULL);
	assert_string_equal(a.host, "::1");
	assert_int_equal(a.port, 6379);
	assert_int_equal(a.db, 2);
	a = parse_ok("redis://:pw@[2001:db8::7]:7001/3", NULL);
	assert_string_equal(a.host, "2001:db8::7");
	assert_int_equal(a.port, 7001);
	assert_string_equal(a.password, "pw");
	a = parse_ok("redis://[fe80::1%25eth0]:7000/1", NULL);
	assert_string_equal(a.host, "fe80::1%eth0"); /* the zone, as getaddrinfo reads it */
	assert_int_equal(a.port, 7000);
	parse_bad("redis://[::1", NULL, "not a valid URL");
	parse_bad("redis://[::1]:0", NULL, "port 0 is not 1..65535");
}

/* Before: redis:///0 and redis://:6379 were taken, with an empty host. */
static void empty_host_refused(void **state)
{
	const char *urls[] = {"redis://", "redis:///0", "redis://:6379", "redis://:pw@/3",
			      "redis://:6379/1", "redis://[]:6379"};
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++)
		parse_bad(urls[i], NULL, "REDIS_URL");
	parse_bad("redis://", NULL, "has no host");
	parse_bad("redis://:pw@/3", NULL, "has no host");
	/* found by fuzz_url's long run (issue 16): libcurl decodes the host as it parses, and
	 * a second decoding made "a%%32ff" (host "a%2ff") the host "a/f" */
	parse_bad("redis://a%%32ff", NULL, "the host \"a%2ff\" is not a host name");
	parse_bad("redis://a%%32ff:6380/1", NULL, "is not a host name or IP address");
	parse_bad("redis://-bad-:6380", NULL, "is not a host name or IP address");
	/* a host percent-encoded into a good name is that name */
	struct rconn_addr a = parse_ok("redis://r%65dis.example:6380/1", NULL);
	assert_string_equal(a.host, "redis.example");
}

static void ports(void **state)
{
	parse_bad("redis://h:0", NULL, "port 0 is not 1..65535");
	parse_bad("redis://h:65536", NULL, "port is not a number 1..65535");
	parse_bad("redis://h:99999999999", NULL, "port is not a number 1..65535");
	parse_bad("redis://h:-1", NULL, "REDIS_URL");
	parse_bad("redis://h:abc/0", NULL, "port is not a number 1..65535");
}

static void user_and_password(void **state)
{
	struct rconn_addr a = parse_ok("redis://alice:s3cr%40t%3A%2F@h:6380/4", NULL);
	assert_string_equal(a.user, "alice");
	assert_string_equal(a.password, "s3cr@t:/"); /* percent-decoded */
	assert_int_equal(a.db, 4);
	a = parse_ok("redis://:only-pw@h", NULL);
	assert_string_equal(a.user, "");
	assert_string_equal(a.password, "only-pw");
	a = parse_ok("redis://b%C3%BCcher:x@h", NULL);
	assert_string_equal(a.user, "b\xc3\xbc" "cher");
	/* a lone user part is the password, as redis-cli reads it */
	a = parse_ok("redis://lone-secret@h", NULL);
	assert_string_equal(a.user, "");
	assert_string_equal(a.password, "lone-secret");
	/* an empty password part: the user name, and no AUTH */
	a = parse_ok("redis://alice:@h", NULL);
	assert_string_equal(a.user, "alice");
	assert_string_equal(a.password, "");
}

/* REDIS_PASSWORD_FILE's password replaces the URL's; a lone user part is then the user. */
static void password_given_apart(void **state)
{
	struct rconn_addr a = parse_ok("redis://h/1", "from-file");
	assert_string_equal(a.password, "from-file");
	assert_string_equal(a.user, "");
	a = parse_ok("redis://:in-url@h", "from-file");
	assert_string_equal(a.password, "from-file");
	a = parse_ok("redis://alice@h", "from-file");
	assert_string_equal(a.user, "alice");
	assert_string_equal(a.password, "from-file");
	a = parse_ok("redis://alice:in-url@h", "from-file");
	assert_string_equal(a.user, "alice");
	assert_string_equal(a.password, "from-file");
	a = parse_ok("redis://:in-url@h", ""); /* empty: not given */
	assert_string_equal(a.password, "in-url");
	a = parse_ok("unix:///run/redis.sock", "from-file");
	assert_string_equal(a.password, "from-file");
	char long_pw[300];
	memset(long_pw, 'p', sizeof(long_pw) - 1);
	long_pw[sizeof(long_pw) - 1] = '\0';
	parse_bad("redis://h", long_pw, "REDIS_PASSWORD_FILE: the password is longer than 255");
}

/* Before: long user names and passwords were cut short without a word. */
static void limits(void **state)
{
	char url[2048], name[300];
	struct rconn_addr a;

	memset(name, 'u', 127);
	name[127] = '\0';
	snprintf(url, sizeof(url), "redis://%s:pw@h", name);
	a = parse_ok(url, NULL);
	assert_int_equal(strlen(a.user), 127);
	snprintf(url, sizeof(url), "redis://%su:pw@h", name);
	parse_bad(url, NULL, "the user name is longer than 127 bytes");

	memset(name, 'p', 255);
	name[255] = '\0';
	snprintf(url, sizeof(url), "redis://:%s@h", name);
	a = parse_ok(url, NULL);
	assert_int_equal(strlen(a.password), 255);
	snprintf(url, sizeof(url), "redis://:%sp@h", name);
	parse_bad(url, NULL, "the password is longer than 255 bytes");
	snprintf(url, sizeof(url), "redis://%sp@h", name); /* a lone user part: the password */
	parse_bad(url, NULL, "the password is longer than 255 bytes");

	/* the limits are on the decoded bytes: 255 x "%41" is 255 bytes */
	size_t n = (size_t)snprintf(url, sizeof(url), "redis://:");
	for (int i = 0; i < 255; i++)
		n += (size_t)snprintf(url + n, sizeof(url) - n, "%%41");
	snprintf(url + n, sizeof(url) - n, "@h");
	a = parse_ok(url, NULL);
	assert_int_equal(strlen(a.password), 255);
	assert_int_equal(a.password[0], 'A');
}

static void database(void **state)
{
	parse_bad("redis://h/1001", NULL, "the database (the path) is not a number 0..1000");
	parse_bad("redis://h/-1", NULL, "is not a number 0..1000");
	parse_bad("redis://h/+1", NULL, "is not a number 0..1000");
	parse_bad("redis://h/x", NULL, "is not a number 0..1000");
	parse_bad("redis://h/0/1", NULL, "is not a number 0..1000");
	parse_bad("redis://h/00000", NULL, "is not a number 0..1000");
	parse_bad("redis://h/0?db=1", NULL, "takes no query parameters");
	parse_bad("redis://h?password=x", NULL, "takes no query parameters");
	parse_bad("redis://h/0#top", NULL, "#fragment");
}

static void unix_sockets(void **state)
{
	struct rconn_addr a = parse_ok("unix:///var/run/redis/redis.sock", NULL);
	assert_string_equal(a.unix_path, "/var/run/redis/redis.sock");
	assert_int_equal(a.db, 0);
	a = parse_ok("unix:///tmp/r.sock?db=3", NULL);
	assert_string_equal(a.unix_path, "/tmp/r.sock");
	assert_int_equal(a.db, 3);
	a = parse_ok("unix:///tmp/with%20space.sock?db=1000", NULL);
	assert_string_equal(a.unix_path, "/tmp/with space.sock");
	assert_int_equal(a.db, 1000);
	a = parse_ok("UNIX:///r.sock", NULL);
	assert_string_equal(a.unix_path, "/r.sock");
	parse_bad("unix://", NULL, "REDIS_URL");
	parse_bad("unix:///", NULL, "no socket path");
	parse_bad("unix:///tmp/r.sock?db=1001", NULL, "is not a number 0..1000");
	parse_bad("unix:///tmp/r.sock?db=", NULL, "and nothing else");
	parse_bad("unix:///tmp/r.sock?password=hunter22", NULL, "and nothing else");
	parse_bad("unix:///tmp/r.sock?timeout=5", NULL, "and nothing else");
	parse_bad("unix://host/tmp/r.sock", NULL, "with no host or password");
	parse_bad("unix://:pw@/tmp/r.sock", NULL, "REDIS_PASSWORD_FILE");
}

static void schemes(void **state)
{
	struct rconn_addr a = parse_ok("rediss://alice:pw@cache.example.com:6380/2", NULL);
	assert_int_equal(a.tls, 1);
	assert_string_equal(a.host, "cache.example.com");
	assert_int_equal(a.port, 6380);
	assert_int_equal(a.db, 2);
	assert_string_equal(a.user, "alice");
	assert_string_equal(a.password, "pw");
	a = parse_ok("rediss://[::1]/0", NULL);
	assert_int_equal(a.tls, 1);
	assert_string_equal(a.host, "::1");
	assert_int_equal(a.port, 6379);
	assert_int_equal(parse_ok("redis://h/0", NULL).tls, 0);
	assert_int_equal(parse_ok("unix:///tmp/r.sock", NULL).tls, 0);
	parse_bad("rediss://h:6380/0?ssl_cert_reqs=none", NULL, "REDIS_TLS_*");
	parse_bad("http://h:6379", NULL,
		  "must start with redis://, rediss:// or unix:// (not http://)");
	parse_bad("127.0.0.1:6379", NULL, "must start with redis://, rediss:// or unix://");
	parse_bad("redis:/h", NULL, "must start with redis://, rediss:// or unix://");
	parse_bad("redis:h", NULL, "must start with redis://, rediss:// or unix://");
	parse_bad("rediss:///0", NULL, "has no host");
	parse_bad("", NULL, "REDIS_URL");
}

/* rconn_addr_tls: what needs TLS, what is refused, and errors naming the variable. */
static void tls_settings(void **state)
{
	char err[512] = "";
	struct rconn_addr a = parse_ok("redis://h/0", NULL);

	/* no TLS anywhere and nothing set: fine, nothing loaded */
	assert_int_equal(rconn_addr_tls(&a, 0, "", "", "", "", err, sizeof(err)), 0);
	/* a TLS file without rediss:// would silently not be used */
	assert_int_equal(rconn_addr_tls(&a, 0, "/etc/ssl/certs/ca-certificates.crt", "", "", "",
					err, sizeof(err)), -1);
	assert_non_null(strstr(err, "REDIS_TLS_CA_FILE is set but no Redis connection uses TLS"));
	assert_int_equal(rconn_addr_tls(&a, 0, NULL, NULL, NULL, "name", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "REDIS_TLS_SERVER_NAME is set"));
	assert_int_equal(rconn_addr_tls(&a, 1, "", "", "", "", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "REDIS_SENTINEL_TLS=1 without REDIS_SENTINELS"));

	a = parse_ok("rediss://h/0", NULL);
	assert_int_equal(rconn_addr_tls(&a, 0, "/nonexistent/ca.pem", "", "", "", err,
					sizeof(err)), -1);
	assert_non_null(strstr(err, "REDIS_TLS_CA_FILE: cannot read /nonexistent/ca.pem"));
	assert_int_equal(rconn_addr_tls(&a, 0, "", "/nonexistent/c.pem", "", "", err,
					sizeof(err)), -1);
	assert_non_null(strstr(err, "REDIS_TLS_CERT_FILE is set without REDIS_TLS_KEY_FILE"));
	assert_int_equal(rconn_addr_tls(&a, 0, "", "", "", "bad name!", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "REDIS_TLS_SERVER_NAME"));
	assert_string_equal(a.tls_server_name, "");
	/* the system's CAs (ca-certificates is installed where the tests run) */
	assert_int_equal(rconn_addr_tls(&a, 0, "", "", "", "redis.internal", err, sizeof(err)), 0);
	assert_string_equal(a.tls_server_name, "redis.internal");
	assert_int_equal(a.sentinel_tls, 0);
	redis_tls_cleanup();
}

/* No message quotes the password or the user name, whatever is wrong with the URL. */
static void errors_never_quote_the_password(void **state)
{
	const char *urls[] = {
		"redis://alice:hunter2@h:0/0", "redis://alice:hunter2@h:99999/0",
		"redis://alice:hunter2@/0", "redis://alice:hunter2@h/1001",
		"redis://alice:hunter2@h/0?x=1", "redis://alice:hunter2@h/0#frag",
		"rediss://alice:hunter2@h/0?x=1", "redis://alice:hun@ter2@h/0",
		"redis://alice:hunter2%00@h/0", "redis://alice%0A:hunter2@h/0",
		"redis://alice:hunter2@[::1/0", "redis://alice:hunter2@h:port/0",
		"unix://alice:hunter2@/tmp/x.sock", "ftp://alice:hunter2@h/0",
		"redis:/alice:hunter2@h:0", "redis://hunter2@h/9999",
	};
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		struct rconn_addr a;
		char err[512] = "";
		assert_int_equal(rconn_parse_url(urls[i], NULL, &a, err, sizeof(err)), -1);
		if (strstr(err, "hunter2") || strstr(err, "alice"))
			print_error("%s: %s\n", urls[i], err);
		assert_null(strstr(err, "hunter2"));
		assert_null(strstr(err, "alice"));
		assert_non_null(strstr(err, "REDIS_URL"));
		assert_string_equal(a.password, "");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(host_port_db),
		cmocka_unit_test(ipv6_literals),
		cmocka_unit_test(empty_host_refused),
		cmocka_unit_test(ports),
		cmocka_unit_test(user_and_password),
		cmocka_unit_test(password_given_apart),
		cmocka_unit_test(limits),
		cmocka_unit_test(database),
		cmocka_unit_test(unix_sockets),
		cmocka_unit_test(schemes),
		cmocka_unit_test(tls_settings),
		cmocka_unit_test(errors_never_quote_the_password),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
