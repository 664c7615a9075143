/* client_addr.h — who a client of the worker's HTTP server is: IPv4 and IPv6 addresses,
 * lists of addresses and CIDR blocks (KIE_HTTP_TRUSTED_PROXIES), the client an
 * X-Forwarded-For chain names, and a table that counts connections or requests per
 * address. Pure logic: no sockets are opened, nothing locks (the caller does).
 *
 * Must not: open sockets or lock. */
#ifndef KIE_CLIENT_ADDR_H
#define KIE_CLIENT_ADDR_H

#include <stddef.h>

#include <sys/socket.h>

#define CLIENT_ADDR_STRLEN 46     /* INET6_ADDRSTRLEN: the longest text form, with NUL */
#define CLIENT_ADDR_LIST_MAX 256  /* entries of one list */
#define CLIENT_ADDR_XFF_MAX 64    /* X-Forwarded-For entries looked at, from the right */

/* An address; IPv4 is kept as IPv4-mapped IPv6 (::ffff:a.b.c.d), so one compare fits
 * both. The all-zero address (::) stands for "not an address". */
struct client_addr {
	unsigned char b[16];
};

/* Reads s[0..len): "192.0.2.7", "192.0.2.7:8080", "2001:db8::1", "[2001:db8::1]" or
 * "[2001:db8::1]:8080" (a port is ignored), spaces around it allowed. 0, or -1 when it is
 * none of these. */
int client_addr_parse(const char *s, size_t len, struct client_addr *out);

/* The address of an AF_INET or AF_INET6 socket address. 0, or -1 for another family. */
int client_addr_from_sockaddr(const struct sockaddr *sa, struct client_addr *out);

/* The usual text form ("192.0.2.7", "2001:db8::1") into out[outlen]; returns out. */
const char *client_addr_str(const struct client_addr *a, char *out, size_t outlen);

/* A list of addresses and CIDR blocks. */
struct client_addr_list {
	size_t n;
	struct client_addr net[CLIENT_ADDR_LIST_MAX];
	int bits[CLIENT_ADDR_LIST_MAX]; /* prefix length over the 128 bits (IPv4 /n is 96+n) */
};

/* Reads a comma-separated list of addresses and CIDR blocks ("10.0.0.0/8, 192.0.2.1,
 * 2001:db8::/32"; "" is the empty list) into out. 0, or -1 with err naming the entry at
 * fault (a block with host bits set, such as 10.0.0.1/8, is refused: it is a typo more
 * often than not). */
int client_addr_list_parse(const char *text, struct client_addr_list *out, char *err,
			   size_t errlen);

/* 1 when a is in one of l's blocks. */
int client_addr_list_has(const struct client_addr_list *l, const struct client_addr *a);

/* The client an X-Forwarded-For chain names, as a trusted proxy sees it: values are the
 * header's values in the order its lines came (each a comma-separated list, the proxy
 * closest to us appended last). The answer is the rightmost entry that is not itself
 * in trusted; when every entry looked at is trusted, the leftmost of them. Only the
 * last CLIENT_ADDR_XFF_MAX entries are looked at. An entry that is not an address is
 * the address :: (all such clients share it). Returns 1 with *out set, or 0 when the
 * chain has no entry. */
int client_addr_forwarded(const char *const *values, size_t nvalues,
			  const struct client_addr_list *trusted, struct client_addr *out);

/* Counts per address (connections, requests); entries at 0 are freed. */
struct client_addr_counts;

/* A new table sized for about expected addresses at once. Free with
 * client_addr_counts_free (NULL is a no-op). */
struct client_addr_counts *client_addr_counts_new(size_t expected);
void client_addr_counts_free(struct client_addr_counts *t);

/* Adds delta (may be negative) to a's count; returns the new count (never below 0). */
long client_addr_counts_add(struct client_addr_counts *t, const struct client_addr *a,
			    long delta);

/* a's count, 0 when it has none. */
long client_addr_counts_get(const struct client_addr_counts *t, const struct client_addr *a);

/* How many addresses have a count above 0. */
size_t client_addr_counts_size(const struct client_addr_counts *t);

#endif
