/* netaddr.h — which network addresses and host names the worker accepts: a URL's host
 * (decoded, as libcurl will use it), the class of an IP address (public, loopback,
 * private, ...) and KIE_COPY_ALLOW_PRIVATE's policy for the result copies. Pure logic,
 * no I/O, no resolving.
 *
 * Must not: resolve names or do I/O. */
#ifndef KIE_NETADDR_H
#define KIE_NETADDR_H

#include <stddef.h>

#include <sys/socket.h>

#include "net/client_addr.h"

/* Whether url (http or https) names a host that can be connected to: its host, as
 * libcurl percent-decodes it, is an ASCII host name (labels of letters, digits, '-' and
 * '_', 1 to 63 bytes, not starting or ending with '-'; at most 253 bytes; one trailing
 * dot allowed), an IPv4 address, or an IPv6 literal in brackets. A name outside ASCII is
 * refused (write it in punycode, xn--...). Returns 0, or -1 with why holding a sentence
 * that quotes the host safely (at most 64 bytes of it, '?' for bytes not shown) but
 * names no setting. */
int netaddr_url_host_check(const char *url, char *why, size_t whylen);

/* The same rule for a host already taken out of its URL (and decoded): 1 when host is
 * such a name, an IPv4 address, or an IPv6 address (bracketed or not); else 0. */
int netaddr_host_ok(const char *host);

/* What an IP address is, for the copies' refusal. An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d) and one in NAT64's (64:ff9b::/96) or 6to4's (2002::/16) prefix count
 * as the IPv4 address they carry. */
enum netaddr_class {
	NETADDR_PUBLIC = 0,
	NETADDR_LOOPBACK,    /* 127/8, ::1 */
	NETADDR_PRIVATE,     /* 10/8, 172.16/12, 192.168/16, 100.64/10 (carrier NAT),
			      * fc00::/7 (ULA), fec0::/10 (site-local) */
	NETADDR_LINK_LOCAL,  /* 169.254/16 (cloud metadata services live there), fe80::/10 */
	NETADDR_MULTICAST,   /* 224/4, ff00::/8 */
	NETADDR_UNSPECIFIED, /* 0/8, :: */
	NETADDR_RESERVED,    /* the rest that is not the public Internet: 192.0.0/24,
			      * documentation, benchmarking, 240/4, broadcast, IPv6 outside
			      * 2000::/3, 2001:db8::/32 */
};
const char *netaddr_class_str(enum netaddr_class c); /* "loopback", ... */

/* The class of an AF_INET or AF_INET6 address; any other family is NETADDR_RESERVED. */
enum netaddr_class netaddr_classify(const struct sockaddr *sa);

/* The address as text: "127.0.0.1", "::1", "::ffff:127.0.0.1" (as inet_ntop writes it). */
void netaddr_str(const struct sockaddr *sa, char *out, size_t outlen);

/* KIE_COPY_ALLOW_PRIVATE: "0" (public addresses only), "1" (every address), or a comma
 * list of addresses and CIDRs (127.0.0.2, 10.0.0.0/8, fd00::/8) allowed besides the
 * public ones — read by client_addr_list_parse, the one parser of address lists. */
struct netaddr_policy {
	int all;
	struct client_addr_list list;
};

/* Parses a policy. Returns 0, or -1 with why naming the item at fault (quoted safely). */
int netaddr_policy_parse(const char *s, struct netaddr_policy *p, char *why, size_t whylen);

/* 1 when sa may be connected to under p: public, or allowed by p; else 0 with why
 * holding "<address> is a <class> address (not allowed by KIE_COPY_ALLOW_PRIVATE)". */
int netaddr_allowed(const struct netaddr_policy *p, const struct sockaddr *sa, char *why,
		    size_t whylen);

#endif
