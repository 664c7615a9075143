/* test_netaddr.c — URL hosts as libcurl decodes them, address classes, and
 * KIE_COPY_ALLOW_PRIVATE's policy (issue 16: copies reached loopback and link-local). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "core/util.h"
#include "net/netaddr.h"

/* An address as a sockaddr (AF_INET or AF_INET6 by its text). */
static const struct sockaddr *sa_of(const char *text, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(text, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, text, &a->sin6_addr), 1);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;
		a->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, text, &a->sin_addr), 1);
	}
	return (const struct sockaddr *)ss;
}

static void classes(void **state)
{
	static const struct { const char *a; enum netaddr_class c; } t[] = {
		{"8.8.8.8", NETADDR_PUBLIC}, {"1.1.1.1", NETADDR_PUBLIC},
		{"127.0.0.1", NETADDR_LOOPBACK}, {"127.255.0.2", NETADDR_LOOPBACK},
		{"10.1.2.3", NETADDR_PRIVATE}, {"172.16.0.1", NETADDR_PRIVATE},
		{"172.31.255.255", NETADDR_PRIVATE}, {"172.32.0.1", NETADDR_PUBLIC},
		{"192.168.1.1", NETADDR_PRIVATE}, {"100.64.0.1", NETADDR_PRIVATE},
		{"100.128.0.1", NETADDR_PUBLIC}, {"169.254.169.254", NETADDR_LINK_LOCAL},
		{"224.0.0.1", NETADDR_MULTICAST}, {"239.1.1.1", NETADDR_MULTICAST},
		{"0.0.0.0", NETADDR_UNSPECIFIED}, {"0.1.2.3", NETADDR_UNSPECIFIED},
		{"255.255.255.255", NETADDR_RESERVED}, {"240.0.0.1", NETADDR_RESERVED},
		{"192.0.2.1", NETADDR_RESERVED}, {"198.18.0.1", NETADDR_RESERVED},
		{"::1", NETADDR_LOOPBACK}, {"::", NETADDR_UNSPECIFIED},
		{"fc00::1", NETADDR_PRIVATE}, {"fd12:3456::1", NETADDR_PRIVATE},
		{"fe80::1", NETADDR_LINK_LOCAL}, {"febf::1", NETADDR_LINK_LOCAL},
		{"fec0::1", NETADDR_PRIVATE}, {"ff02::1", NETADDR_MULTICAST},
		{"2001:db8::1", NETADDR_RESERVED}, {"2606:4700::1111", NETADDR_PUBLIC},
		{"::2", NETADDR_RESERVED}, {"100::1", NETADDR_RESERVED},
		/* IPv6 addresses that carry an IPv4 one count as it */
		{"::ffff:127.0.0.1", NETADDR_LOOPBACK}, {"::ffff:169.254.169.254", NETADDR_LINK_LOCAL},
		{"::ffff:8.8.8.8", NETADDR_PUBLIC}, {"64:ff9b::a00:1", NETADDR_PRIVATE},
		{"2002:7f00:1::1", NETADDR_LOOPBACK}, {"2002:808:808::1", NETADDR_PUBLIC},
	};
	struct sockaddr_storage ss;
	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		enum netaddr_class c = netaddr_classify(sa_of(t[i].a, &ss));
		if (c != t[i].c)
			fail_msg("%s: %s, want %s", t[i].a, netaddr_class_str(c),
				 netaddr_class_str(t[i].c));
	}
}

static void policy_and_refusals(void **state)
{
	struct netaddr_policy p;
	struct sockaddr_storage ss;
	char why[200];
	(void)state;
	/* 0: public only; the reason names the address and its class */
	assert_int_equal(netaddr_policy_parse("0", &p, why, sizeof(why)), 0);
	assert_int_equal(netaddr_allowed(&p, sa_of("8.8.8.8", &ss), why, sizeof(why)), 1);
	assert_int_equal(netaddr_allowed(&p, sa_of("127.0.0.1", &ss), why, sizeof(why)), 0);
	assert_string_equal(why, "127.0.0.1 is a loopback address (not allowed by "
			    "KIE_COPY_ALLOW_PRIVATE)");
	assert_int_equal(netaddr_allowed(&p, sa_of("169.254.169.254", &ss), why, sizeof(why)), 0);
	assert_non_null(strstr(why, "169.254.169.254 is a link-local address"));
	assert_int_equal(netaddr_allowed(&p, sa_of("::ffff:10.0.0.1", &ss), why, sizeof(why)), 0);
	assert_non_null(strstr(why, "::ffff:10.0.0.1 is a private address"));
	assert_int_equal(netaddr_allowed(&p, sa_of("::", &ss), why, sizeof(why)), 0);
	assert_non_null(strstr(why, "is an unspecified address"));
	/* 1: everything */
	assert_int_equal(netaddr_policy_parse("1", &p, why, sizeof(why)), 0);
	assert_int_equal(netaddr_allowed(&p, sa_of("127.0.0.1", &ss), why, sizeof(why)), 1);
	/* a list: those, and nothing else that is not public */
	assert_int_equal(netaddr_policy_parse("127.0.0.2, 10.0.0.0/8,fd00::/8,::ffff:192.168.0.0/112",
					      &p, why, sizeof(why)), 0);
	assert_int_equal(p.list.n, 4);
	assert_int_equal(netaddr_allowed(&p, sa_of("127.0.0.2", &ss), why, sizeof(why)), 1);
	assert_int_equal(netaddr_allowed(&p, sa_of("::ffff:127.0.0.2", &ss), why, sizeof(why)), 1);
	assert_int_equal(netaddr_allowed(&p, sa_of("127.0.0.1", &ss), why, sizeof(why)), 0);
	assert_int_equal(netaddr_allowed(&p, sa_of("10.200.3.4", &ss), why, sizeof(why)), 1);
	assert_int_equal(netaddr_allowed(&p, sa_of("fd00::5", &ss), why, sizeof(why)), 1);
	assert_int_equal(netaddr_allowed(&p, sa_of("fc00::5", &ss), why, sizeof(why)), 0);
	assert_int_equal(netaddr_allowed(&p, sa_of("192.168.7.7", &ss), why, sizeof(why)), 1);
	assert_int_equal(netaddr_allowed(&p, sa_of("169.254.169.254", &ss), why, sizeof(why)), 0);
	/* refusals name the item */
	static const char *const bad[] = {"", "2", "yes", "127.0.0.1/33", "fd00::/129",
					  "10.0.0.0/-1", "10.0.0.0/", "localhost", "1.2.3.4,,5.6.7.8",
					  "1.2.3", "10.0.0.0/8 ,", "\xdd"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		if (netaddr_policy_parse(bad[i], &p, why, sizeof(why)) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_non_null(strstr(why, "expected 0, 1, or a comma list"));
		assert_true(util_utf8_len(why, strlen(why)) >= 0);
	}
	{
		char many[8000] = "";
		for (int i = 0; i < CLIENT_ADDR_LIST_MAX + 1; i++)
			snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s10.0.%d.%d",
				 i ? "," : "", i / 256, i % 256);
		assert_int_equal(netaddr_policy_parse(many, &p, why, sizeof(why)), -1);
		assert_non_null(strstr(why, "256"));
	}
}

static void url_hosts_as_libcurl_decodes_them(void **state)
{
	static const char *const ok[] = {
		"https://app.example.com/cb", "http://127.0.0.1:9/x", "http://[::1]:8080/cb",
		"http://localhost/", "https://%61pp.example/cb", "https://a_b.example./",
		"http://[fe80::1%25eth0]/", "http://x.y-z.example/",
	};
	static const char *const bad[] = {
		"https://a%dd.example/cb", "https://a%2520b/", "https://-a.example/",
		"https://a-.example/", "https://a..example/", "https://b\xc3\xbc" "cher.example/",
		"ftp//nohost", "https://a%00b.example/",
	};
	char why[300];
	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (netaddr_url_host_check(ok[i], why, sizeof(why)) != 0)
			fail_msg("refused %s: %s", ok[i], why);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		if (netaddr_url_host_check(bad[i], why, sizeof(why)) != -1)
			fail_msg("accepted %s", bad[i]);
		assert_true(why[0] != '\0');
		assert_true(util_utf8_len(why, strlen(why)) >= 0);
		for (const char *p = why; *p; p++)
			assert_true((unsigned char)*p >= 0x20);
	}
	netaddr_url_host_check("https://a%dd.example/cb", why, sizeof(why));
	assert_string_equal(why, "has the host \"a?.example\" once percent-decoded, which is not "
			    "a host name or IP address (write a name outside ASCII in punycode, "
			    "xn--...)");
	netaddr_url_host_check("https://b\xc3\xbc" "cher.example/", why, sizeof(why));
	assert_non_null(strstr(why, "punycode"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(classes),
		cmocka_unit_test(policy_and_refusals),
		cmocka_unit_test(url_hosts_as_libcurl_decodes_them),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
