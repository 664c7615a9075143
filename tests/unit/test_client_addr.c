/* test_client_addr.c — client addresses of the HTTP server (client_addr.h): the forms an
 * address comes in, KIE_HTTP_TRUSTED_PROXIES's lists and CIDR blocks, the client an
 * X-Forwarded-For chain names (rightmost untrusted entry: a client cannot hide behind
 * entries it writes itself), and the per-address counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/client_addr.h"

static const char *str_of(const char *s)
{
	static char out[CLIENT_ADDR_STRLEN];
	struct client_addr a;
	if (client_addr_parse(s, strlen(s), &a) != 0)
		return "(refused)";
	return client_addr_str(&a, out, sizeof(out));
}

static void forms(void **state)
{
	(void)state;
	assert_string_equal(str_of("192.0.2.7"), "192.0.2.7");
	assert_string_equal(str_of(" 192.0.2.7 "), "192.0.2.7");
	assert_string_equal(str_of("192.0.2.7:8080"), "192.0.2.7");
	assert_string_equal(str_of("2001:DB8::1"), "2001:db8::1");
	assert_string_equal(str_of("[2001:db8::1]"), "2001:db8::1");
	assert_string_equal(str_of("[2001:db8::1]:443"), "2001:db8::1");
	assert_string_equal(str_of("::1"), "::1");
	const char *bad[] = {"", " ", "unknown", "192.0.2", "192.0.2.256", "192.0.2.7:",
			     "192.0.2.7:123456", "192.0.2.7:x", "[2001:db8::1", "[2001:db8::1]x",
			     "[192.0.2.7]", "2001:db8::1:8080:1:1:1:1", "host.example", "[]",
			     "1.2.3.4.5", "_hidden"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (strcmp(str_of(bad[i]), "(refused)") != 0)
			print_error("\"%s\" was read as %s\n", bad[i], str_of(bad[i]));
		assert_string_equal(str_of(bad[i]), "(refused)");
	}
	/* a length is honoured: the rest of the buffer is not read */
	struct client_addr a;
	assert_int_equal(client_addr_parse("10.1.2.3, 10.9.9.9", 8, &a), 0);
	char out[CLIENT_ADDR_STRLEN];
	assert_string_equal(client_addr_str(&a, out, sizeof(out)), "10.1.2.3");
}

static struct client_addr A(const char *s)
{
	struct client_addr a;
	assert_int_equal(client_addr_parse(s, strlen(s), &a), 0);
	return a;
}

static void lists(void **state)
{
	struct client_addr_list l;
	char err[256] = "";
	(void)state;
	assert_int_equal(client_addr_list_parse("10.0.0.0/8, 192.0.2.1 ,2001:db8::/32,::1", &l,
						err, sizeof(err)), 0);
	assert_int_equal(l.n, 4);
	struct client_addr in[] = {A("10.0.0.1"), A("10.255.255.255"), A("192.0.2.1"),
				   A("2001:db8:ffff::5"), A("::1")};
	struct client_addr out[] = {A("11.0.0.1"), A("192.0.2.2"), A("2001:db9::1"),
				    A("::2"), A("::ffff:9.0.0.1")};
	for (size_t i = 0; i < 5; i++) {
		assert_true(client_addr_list_has(&l, &in[i]));
		assert_false(client_addr_list_has(&l, &out[i]));
	}
	/* /0 of IPv4 is every IPv4 address, not every address */
	assert_int_equal(client_addr_list_parse("0.0.0.0/0", &l, err, sizeof(err)), 0);
	struct client_addr v4 = A("198.51.100.9"), v6 = A("2001:db8::9");
	assert_true(client_addr_list_has(&l, &v4));
	assert_false(client_addr_list_has(&l, &v6));
	/* odd prefix lengths */
	assert_int_equal(client_addr_list_parse("172.16.0.0/12", &l, err, sizeof(err)), 0);
	struct client_addr e1 = A("172.31.255.1"), e2 = A("172.32.0.1");
	assert_true(client_addr_list_has(&l, &e1));
	assert_false(client_addr_list_has(&l, &e2));
	/* the empty list, and only spaces */
	assert_int_equal(client_addr_list_parse("", &l, err, sizeof(err)), 0);
	assert_int_equal(l.n, 0);
	assert_false(client_addr_list_has(&l, &v4));
	assert_int_equal(client_addr_list_parse("  ", &l, err, sizeof(err)), 0);
	assert_int_equal(l.n, 0);

	const struct {
		const char *text, *want;
	} bad[] = {
		{"10.0.0.1/8", "bits set past its prefix"},
		{"10.0.0.0/33", "not an IPv4 or IPv6"},
		{"2001:db8::/129", "not an IPv4 or IPv6"},
		{"10.0.0.0/-1", "not an IPv4 or IPv6"},
		{"10.0.0.0/", "not an IPv4 or IPv6"},
		{"10.0.0.0/8x", "not an IPv4 or IPv6"},
		{"proxy.internal", "\"proxy.internal\" is not"},
		{"192.0.2.1:80", "not an IPv4 or IPv6"},
		{"[::1]:80", "not an IPv4 or IPv6"},
		{"10.0.0.1,,10.0.0.2", "empty entry"},
		{"10.0.0.1,", "empty entry"},
		{",10.0.0.1", "empty entry"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		int rc = client_addr_list_parse(bad[i].text, &l, err, sizeof(err));
		if (rc != -1 || !strstr(err, bad[i].want))
			print_error("\"%s\": rc %d, \"%s\", wanted \"%s\"\n", bad[i].text, rc, err,
				    bad[i].want);
		assert_int_equal(rc, -1);
		assert_non_null(strstr(err, bad[i].want));
	}
	/* at most CLIENT_ADDR_LIST_MAX entries */
	char big[CLIENT_ADDR_LIST_MAX * 12 + 32] = "";
	size_t n = 0;
	for (int i = 0; i <= CLIENT_ADDR_LIST_MAX; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "%s10.0.%d.%d", i ? "," : "",
				      i / 256, i % 256);
	assert_int_equal(client_addr_list_parse(big, &l, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "more than"));
}

static const char *client_of(const char *const *values, size_t n, const char *trusted)
{
	static char out[CLIENT_ADDR_STRLEN];
	struct client_addr_list l;
	struct client_addr a;
	char err[128];
	assert_int_equal(client_addr_list_parse(trusted, &l, err, sizeof(err)), 0);
	if (!client_addr_forwarded(values, n, &l, &a))
		return "(none)";
	return client_addr_str(&a, out, sizeof(out));
}

static void forwarded_for(void **state)
{
	(void)state;
	const char *one[] = {"203.0.113.7"};
	assert_string_equal(client_of(one, 1, "10.0.0.0/8"), "203.0.113.7");
	/* a client writes entries of its own to the left: the rightmost untrusted one wins */
	const char *forged[] = {"198.51.100.1, 203.0.113.7"};
	assert_string_equal(client_of(forged, 1, "10.0.0.0/8"), "203.0.113.7");
	/* proxies in a chain, each trusted, are skipped */
	const char *chain[] = {"198.51.100.1, 203.0.113.7, 10.1.1.1, 10.2.2.2"};
	assert_string_equal(client_of(chain, 1, "10.0.0.0/8"), "203.0.113.7");
	/* several header lines: one list, in their order */
	const char *lines[] = {"198.51.100.1", "203.0.113.7 , 10.1.1.1", ""};
	assert_string_equal(client_of(lines, 3, "10.0.0.0/8"), "203.0.113.7");
	/* every entry trusted: the leftmost */
	const char *all[] = {"10.3.3.3, 10.2.2.2"};
	assert_string_equal(client_of(all, 1, "10.0.0.0/8"), "10.3.3.3");
	/* ports and brackets */
	const char *ports[] = {"[2001:db8::7]:5555, 10.0.0.9:443"};
	assert_string_equal(client_of(ports, 1, "10.0.0.0/8"), "2001:db8::7");
	/* not an address: all such clients are "::" */
	const char *junk[] = {"203.0.113.7, unknown"};
	assert_string_equal(client_of(junk, 1, "10.0.0.0/8"), "::");
	/* empty entries are skipped; no entry at all is none */
	const char *gaps[] = {"203.0.113.7,, ,"};
	assert_string_equal(client_of(gaps, 1, "10.0.0.0/8"), "203.0.113.7");
	const char *empty[] = {"", " , "};
	assert_string_equal(client_of(empty, 2, "10.0.0.0/8"), "(none)");
	assert_string_equal(client_of(NULL, 0, "10.0.0.0/8"), "(none)");
	/* only the last CLIENT_ADDR_XFF_MAX entries are looked at */
	char longest[CLIENT_ADDR_XFF_MAX * 16 + 64] = "203.0.113.7";
	size_t n = strlen(longest);
	for (int i = 0; i < CLIENT_ADDR_XFF_MAX; i++)
		n += (size_t)snprintf(longest + n, sizeof(longest) - n, ",10.0.%d.%d", i / 256,
				      i % 256 + 1);
	const char *many[] = {longest};
	assert_string_equal(client_of(many, 1, "10.0.0.0/8"), "10.0.0.1");
}

static void counts(void **state)
{
	(void)state;
	struct client_addr_counts *t = client_addr_counts_new(4);
	struct client_addr a = A("192.0.2.1"), b = A("2001:db8::1"), c;
	assert_int_equal(client_addr_counts_get(t, &a), 0);
	assert_int_equal(client_addr_counts_add(t, &a, 1), 1);
	assert_int_equal(client_addr_counts_add(t, &a, 1), 2);
	assert_int_equal(client_addr_counts_add(t, &b, 1), 1);
	assert_int_equal(client_addr_counts_size(t), 2);
	assert_int_equal(client_addr_counts_add(t, &a, -2), 0);
	assert_int_equal(client_addr_counts_size(t), 1);
	assert_int_equal(client_addr_counts_add(t, &a, -1), 0); /* never below 0 */
	assert_int_equal(client_addr_counts_size(t), 1);
	/* many addresses over few buckets */
	for (int i = 0; i < 1000; i++) {
		char s[32];
		snprintf(s, sizeof(s), "10.%d.%d.1", i / 256, i % 256);
		c = A(s);
		assert_int_equal(client_addr_counts_add(t, &c, 3), 3);
	}
	assert_int_equal(client_addr_counts_size(t), 1001);
	for (int i = 0; i < 1000; i += 2) {
		char s[32];
		snprintf(s, sizeof(s), "10.%d.%d.1", i / 256, i % 256);
		c = A(s);
		assert_int_equal(client_addr_counts_add(t, &c, -3), 0);
	}
	assert_int_equal(client_addr_counts_size(t), 501);
	c = A("10.0.1.1");
	assert_int_equal(client_addr_counts_get(t, &c), 3);
	client_addr_counts_free(t);
	client_addr_counts_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(forms),
		cmocka_unit_test(lists),
		cmocka_unit_test(forwarded_for),
		cmocka_unit_test(counts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
