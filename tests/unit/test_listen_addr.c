/* test_listen_addr.c — KIE_HTTP_ADDR's forms (util_parse_listen_addr): IPv4 host:port,
 * [IPv6]:port, :port for every IPv4 interface; ports, host names and malformed values
 * refused with a sentence that says what to write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/util.h"

static struct util_listen_addr parse_ok(const char *s)
{
	struct util_listen_addr a;
	char err[256] = "";
	int rc = util_parse_listen_addr(s, &a, err, sizeof(err));
	if (rc != 0)
		print_error("\"%s\": %s\n", s, err);
	assert_int_equal(rc, 0);
	return a;
}

/* Expects a refusal whose message holds want, and out zeroed. */
static void parse_bad(const char *s, const char *want)
{
	struct util_listen_addr a, zero;
	char err[256] = "";
	memset(&a, 0x5a, sizeof(a));
	memset(&zero, 0, sizeof(zero));
	int rc = util_parse_listen_addr(s, &a, err, sizeof(err));
	if (rc != -1 || !strstr(err, want))
		print_error("\"%s\": rc %d, message \"%s\", wanted one with \"%s\"\n",
			    s ? s : "(null)", rc, err, want);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(err, want));
	assert_memory_equal(&a, &zero, sizeof(a));
}

static void ipv4_host_and_port(void **state)
{
	struct util_listen_addr a = parse_ok("127.0.0.1:8080");
	assert_int_equal(a.ipv6, 0);
	assert_string_equal(a.host, "127.0.0.1");
	assert_int_equal(a.port, 8080);
	a = parse_ok("10.1.2.3:1");
	assert_string_equal(a.host, "10.1.2.3");
	assert_int_equal(a.port, 1);
	a = parse_ok("0.0.0.0:65535");
	assert_int_equal(a.port, 65535);
}

static void port_alone_is_every_ipv4_interface(void **state)
{
	struct util_listen_addr a = parse_ok(":8080");
	assert_int_equal(a.ipv6, 0);
	assert_string_equal(a.host, "0.0.0.0");
	assert_int_equal(a.port, 8080);
}

static void ipv6_in_brackets(void **state)
{
	struct util_listen_addr a = parse_ok("[::1]:9000");
	assert_int_equal(a.ipv6, 1);
	assert_string_equal(a.host, "::1");
	assert_int_equal(a.port, 9000);
	a = parse_ok("[::]:80");
	assert_string_equal(a.host, "::");
	a = parse_ok("[2001:db8::42]:443");
	assert_string_equal(a.host, "2001:db8::42");
	a = parse_ok("[::ffff:127.0.0.1]:8080");
	assert_int_equal(a.ipv6, 1);
	/* the longest textual form fits */
	a = parse_ok("[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:1");
	assert_int_equal(a.port, 1);
}

static void bad_ports(void **state)
{
	parse_bad("127.0.0.1:0", "port must be a number from 1 to 65535");
	parse_bad("127.0.0.1:65536", "from 1 to 65535");
	parse_bad("127.0.0.1:", "from 1 to 65535");
	parse_bad(":", "from 1 to 65535");
	parse_bad("127.0.0.1:+80", "from 1 to 65535");
	parse_bad("127.0.0.1:-1", "from 1 to 65535");
	parse_bad("127.0.0.1: 80", "from 1 to 65535");
	parse_bad("127.0.0.1:80 ", "from 1 to 65535");
	parse_bad("127.0.0.1:0x50", "from 1 to 65535");
	parse_bad("127.0.0.1:000080", "from 1 to 65535");  /* six digits */
	parse_bad("127.0.0.1:99999999999999999999", "from 1 to 65535");
	parse_bad("[::1]:", "from 1 to 65535");
	parse_bad("[::1]:http", "from 1 to 65535");
}

static void no_port(void **state)
{
	parse_bad("127.0.0.1", "has no port");
	parse_bad("localhost", "has no port");
	parse_bad("", "no address");
	parse_bad(NULL, "no address");
	parse_bad("[::1]", "[address]:port");
	parse_bad("[::1]8080", "[address]:port");
	parse_bad("[::1", "[address]:port");
}

static void hosts_must_be_literals(void **state)
{
	parse_bad("localhost:8080", "host names are not resolved");
	parse_bad("example.com:80", "is not an IPv4 address");
	parse_bad("127.1:80", "is not an IPv4 address");       /* inet_aton's short forms */
	parse_bad("256.0.0.1:80", "is not an IPv4 address");
	parse_bad("1.2.3.4.5:80", "is not an IPv4 address");
	parse_bad(" 127.0.0.1:80", "is not an IPv4 address");
	parse_bad("::1:8080", "goes in brackets");
	parse_bad("[127.0.0.1]:80", "is not an IPv6 address");
	parse_bad("[]:80", "is not an IPv6 address");
	parse_bad("[fe80::1%eth0]:80", "is not an IPv6 address"); /* no zone ids */
	parse_bad("[::1]]:80", "[address]:port");
}

static void long_values_are_quoted_short(void **state)
{
	char big[4096], err[512];
	struct util_listen_addr a;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[100] = ':';
	assert_int_equal(util_parse_listen_addr(big, &a, err, sizeof(err)), -1);
	assert_true(strlen(err) < 250);
	big[100] = '1';
	memcpy(big + sizeof(big) - 6, ":8080", 5);
	assert_int_equal(util_parse_listen_addr(big, &a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not an IPv4 address"));
	/* an error buffer too small is cut, never overrun */
	char tiny[8];
	assert_int_equal(util_parse_listen_addr("x", &a, tiny, sizeof(tiny)), -1);
	assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
	/* issue 16: "%.64s" cut a character in two: the quote stops before it, and a control
	 * byte (a forged log line) shows as '?' */
	memset(big, 'h', 63);
	memcpy(big + 63, "\xc3\xa9\n:99999", 10);
	assert_int_equal(util_parse_listen_addr(big, &a, err, sizeof(err)), -1);
	assert_true(util_utf8_len(err, strlen(err)) >= 0);
	assert_null(strchr(err, '\n'));
	assert_non_null(strstr(err, "hhh\": the port must be"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ipv4_host_and_port),
		cmocka_unit_test(port_alone_is_every_ipv4_interface),
		cmocka_unit_test(ipv6_in_brackets),
		cmocka_unit_test(bad_ports),
		cmocka_unit_test(no_port),
		cmocka_unit_test(hosts_must_be_literals),
		cmocka_unit_test(long_values_are_quoted_short),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
