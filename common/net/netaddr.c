/* netaddr.c — host names, address classes and the copies' address policy (netaddr.h). */
#include "net/netaddr.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <curl/curl.h>

#include "core/util.h"

#define HOST_SHOWN_MAX 64

/* One DNS label: 1..63 of [A-Za-z0-9_-], not starting or ending with '-'. */
static int label_ok(const char *s, size_t n)
{
	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

static int host_name_ok(const char *h)
{
	size_t n = strlen(h);

	if (n && h[n - 1] == '.')
		n--; /* the root's dot */
	if (n == 0 || n > 253)
		return 0;
	for (size_t i = 0; i < n;) {
		const char *dot = memchr(h + i, '.', n - i);
		size_t len = dot ? (size_t)(dot - (h + i)) : n - i;
		if (!label_ok(h + i, len))
			return 0;
		i += len + 1;
		if (dot && i == n) /* "a..": an empty label */
			return 0;
	}
	return 1;
}

int netaddr_host_ok(const char *host)
{
	char lit[64];
	size_t n = strlen(host);
	struct in6_addr a6;
	struct in_addr a4;

	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		if (n - 2 >= sizeof(lit))
			return 0;
		memcpy(lit, host + 1, n - 2);
		lit[n - 2] = '\0';
		return inet_pton(AF_INET6, lit, &a6) == 1;
	}
	return inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1 ||
	       host_name_ok(host);
}

int netaddr_url_host_check(const char *url, char *why, size_t whylen)
{
	CURLU *u = curl_url();
	char *host = NULL, shown[HOST_SHOWN_MAX + 8];
	int rc = -1;

	if (!u) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	/* libcurl percent-decodes the host as it parses: this is the name it would use */
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host) {
		snprintf(why, whylen, "is not a URL with a host");
		goto out;
	}
	/* an IPv6 literal comes bracketed, its zone id apart; one unbracketed is no host */
	if (netaddr_host_ok(host) && (host[0] == '[' || !strchr(host, ':')))
		rc = 0;
	if (rc != 0) {
		int ascii = 1;
		for (const unsigned char *p = (const unsigned char *)host; *p; p++)
			ascii &= *p < 0x80;
		snprintf(why, whylen, "has the host \"%s\"%s, which is not a host name or IP "
			 "address%s", util_text_shown(host, HOST_SHOWN_MAX, shown, sizeof(shown)),
			 strchr(url, '%') ? " once percent-decoded" : "",
			 ascii ? "" : " (write a name outside ASCII in punycode, xn--...)");
	}
out:
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}

const char *netaddr_class_str(enum netaddr_class c)
{
	switch (c) {
	case NETADDR_PUBLIC: return "public";
	case NETADDR_LOOPBACK: return "loopback";
	case NETADDR_PRIVATE: return "private";
	case NETADDR_LINK_LOCAL: return "link-local";
	case NETADDR_MULTICAST: return "multicast";
	case NETADDR_UNSPECIFIED: return "unspecified";
	case NETADDR_RESERVED: return "reserved";
	}
	return "?";
}

/* 1 when the first prefix bits of a and net agree. */
static int in_net(const unsigned char *a, const unsigned char *net, int prefix)
{
	int full = prefix / 8, rest = prefix % 8;
	if (memcmp(a, net, (size_t)full) != 0)
		return 0;
	if (rest) {
		unsigned char mask = (unsigned char)(0xFF << (8 - rest));
		if ((a[full] & mask) != (net[full] & mask))
			return 0;
	}
	return 1;
}

static enum netaddr_class class4(const unsigned char *b)
{
	static const struct { unsigned char net[4]; int prefix; enum netaddr_class c; } t[] = {
		{{0, 0, 0, 0}, 8, NETADDR_UNSPECIFIED},
		{{10, 0, 0, 0}, 8, NETADDR_PRIVATE},
		{{100, 64, 0, 0}, 10, NETADDR_PRIVATE},
		{{127, 0, 0, 0}, 8, NETADDR_LOOPBACK},
		{{169, 254, 0, 0}, 16, NETADDR_LINK_LOCAL},
		{{172, 16, 0, 0}, 12, NETADDR_PRIVATE},
		{{192, 0, 0, 0}, 24, NETADDR_RESERVED},
		{{192, 0, 2, 0}, 24, NETADDR_RESERVED},
		{{192, 168, 0, 0}, 16, NETADDR_PRIVATE},
		{{198, 18, 0, 0}, 15, NETADDR_RESERVED},
		{{198, 51, 100, 0}, 24, NETADDR_RESERVED},
		{{203, 0, 113, 0}, 24, NETADDR_RESERVED},
		{{224, 0, 0, 0}, 4, NETADDR_MULTICAST},
		{{240, 0, 0, 0}, 4, NETADDR_RESERVED}, /* 255.255.255.255 too */
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (in_net(b, t[i].net, t[i].prefix))
			return t[i].c;
	return NETADDR_PUBLIC;
}

/* 1 for an IPv4-mapped IPv6 address, ::ffff:a.b.c.d */
static int is_mapped(const unsigned char *b)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	return memcmp(b, mapped, 12) == 0;
}

/* The IPv4 address an IPv6 one carries, for the prefixes that carry one; else NULL. */
static const unsigned char *carried_v4(const unsigned char *b)
{
	static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b};
	if (is_mapped(b) || memcmp(b, nat64, 12) == 0)
		return b + 12;
	if (b[0] == 0x20 && b[1] == 0x02) /* 6to4: 2002:AABB:CCDD::/48 */
		return b + 2;
	return NULL;
}

static enum netaddr_class class6(const unsigned char *b)
{
	static const unsigned char zero[16];
	const unsigned char *v4 = carried_v4(b);

	if (v4)
		return class4(v4);
	if (memcmp(b, zero, 16) == 0)
		return NETADDR_UNSPECIFIED;
	if (memcmp(b, zero, 15) == 0 && b[15] == 1)
		return NETADDR_LOOPBACK;
	if (b[0] == 0xff)
		return NETADDR_MULTICAST;
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
		return NETADDR_LINK_LOCAL;
	if ((b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0))
		return NETADDR_PRIVATE;
	if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
		return NETADDR_RESERVED; /* 2001:db8::/32, documentation */
	if ((b[0] & 0xe0) != 0x20)
		return NETADDR_RESERVED; /* outside 2000::/3, the global unicast space */
	return NETADDR_PUBLIC;
}

enum netaddr_class netaddr_classify(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return class4((const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr);
	if (sa->sa_family == AF_INET6)
		return class6((const unsigned char *)&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return NETADDR_RESERVED;
}

void netaddr_str(const struct sockaddr *sa, char *out, size_t outlen)
{
	const void *a = sa->sa_family == AF_INET
				? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
				: (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
	if ((sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
	    !inet_ntop(sa->sa_family, a, out, (socklen_t)outlen))
		snprintf(out, outlen, "(an address of family %d)", (int)sa->sa_family);
}

int netaddr_policy_parse(const char *s, struct netaddr_policy *p, char *why, size_t whylen)
{
	char detail[256];

	memset(p, 0, sizeof(*p));
	if (strcmp(s, "0") == 0)
		return 0;
	if (strcmp(s, "1") == 0) {
		p->all = 1;
		return 0;
	}
	if (!*s)
		snprintf(detail, sizeof(detail), "an empty value is not a policy");
	if (!*s || client_addr_list_parse(s, &p->list, detail, sizeof(detail)) != 0) {
		snprintf(why, whylen, "%s (expected 0, 1, or a comma list such as "
			 "127.0.0.2,10.0.0.0/8,fd00::/8)", detail);
		memset(p, 0, sizeof(*p));
		return -1;
	}
	return 0;
}

int netaddr_allowed(const struct netaddr_policy *p, const struct sockaddr *sa, char *why,
		    size_t whylen)
{
	enum netaddr_class c = netaddr_classify(sa);
	struct client_addr a;
	char shown[INET6_ADDRSTRLEN + 32];

	if (c == NETADDR_PUBLIC || p->all)
		return 1;
	/* an IPv4-mapped IPv6 address is the IPv4 one: client_addr keeps both mapped */
	if (client_addr_from_sockaddr(sa, &a) == 0 && client_addr_list_has(&p->list, &a))
		return 1;
	netaddr_str(sa, shown, sizeof(shown));
	snprintf(why, whylen, "%s is a%s %s address (not allowed by KIE_COPY_ALLOW_PRIVATE)",
		 shown, c == NETADDR_UNSPECIFIED ? "n" : "", netaddr_class_str(c));
	return 0;
}
