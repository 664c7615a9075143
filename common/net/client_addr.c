/* client_addr.c — addresses, CIDR lists, X-Forwarded-For and per-address counts of
 * client_addr.h. */
#include "net/client_addr.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "core/util.h"

static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static int is_v4(const struct client_addr *a)
{
	return memcmp(a->b, v4_mapped, sizeof(v4_mapped)) == 0;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* 1 when s[0..n) is a port: 1 to 5 digits. */
static int is_port(const char *s, size_t n)
{
	if (n == 0 || n > 5)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

int client_addr_parse(const char *s, size_t len, struct client_addr *out)
{
	char buf[CLIENT_ADDR_STRLEN + 8];
	const char *end;
	struct in_addr a4;

	while (len && is_space(*s)) {
		s++;
		len--;
	}
	while (len && is_space(s[len - 1]))
		len--;
	end = s + len;
	memset(out, 0, sizeof(*out));
	if (len && *s == '[') { /* [v6] or [v6]:port */
		const char *close = memchr(s, ']', len);
		size_t n;
		if (!close)
			return -1;
		if (close + 1 != end && (close[1] != ':' || !is_port(close + 2,
								     (size_t)(end - close - 2))))
			return -1;
		n = (size_t)(close - s - 1);
		if (n == 0 || n >= sizeof(buf))
			return -1;
		memcpy(buf, s + 1, n);
		buf[n] = '\0';
		return inet_pton(AF_INET6, buf, out->b) == 1 ? 0 : -1;
	}
	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (strchr(buf, ':') && strchr(buf, ':') == strrchr(buf, ':')) { /* v4:port */
		char *colon = strchr(buf, ':');
		if (!is_port(colon + 1, strlen(colon + 1)))
			return -1;
		*colon = '\0';
	}
	if (inet_pton(AF_INET, buf, &a4) == 1) {
		memcpy(out->b, v4_mapped, sizeof(v4_mapped));
		memcpy(out->b + 12, &a4, 4);
		return 0;
	}
	return inet_pton(AF_INET6, buf, out->b) == 1 ? 0 : -1;
}

int client_addr_from_sockaddr(const struct sockaddr *sa, struct client_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (sa && sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
		memcpy(out->b, v4_mapped, sizeof(v4_mapped));
		memcpy(out->b + 12, &s4->sin_addr, 4);
		return 0;
	}
	if (sa && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
		memcpy(out->b, &s6->sin6_addr, 16);
		return 0;
	}
	return -1;
}

const char *client_addr_str(const struct client_addr *a, char *out, size_t outlen)
{
	if (outlen == 0)
		return out;
	if (!inet_ntop(is_v4(a) ? AF_INET : AF_INET6, is_v4(a) ? a->b + 12 : a->b, out,
		       (socklen_t)outlen))
		util_strlcpy(out, "?", outlen);
	return out;
}

/* 1 when a and net agree on their first bits bits. */
static int in_block(const struct client_addr *a, const struct client_addr *net, int bits)
{
	int whole = bits / 8, rest = bits % 8;
	if (memcmp(a->b, net->b, (size_t)whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a->b[whole] ^ net->b[whole]) & (0xff << (8 - rest)) & 0xff) == 0;
}

/* One entry "addr" or "addr/bits" of s[0..n) into net, bits. */
static int parse_block(const char *s, size_t n, struct client_addr *net, int *bits)
{
	const char *slash = memchr(s, '/', n);
	size_t alen = slash ? (size_t)(slash - s) : n;
	struct client_addr masked;
	long long b;
	char num[8];

	const char *colon = memchr(s, ':', alen);
	/* written as IPv6 (two colons at least, or brackets): "::ffff:10.0.0.0/104" is an
	 * IPv6 block that holds IPv4 addresses, and its prefix counts over 128 bits */
	int v6_text = colon && memchr(colon + 1, ':', alen - (size_t)(colon - s) - 1);

	if (client_addr_parse(s, alen, net) != 0)
		return -1;
	/* a block is written without a port: "192.0.2.1:80" is not a proxy */
	if (memchr(s, ']', alen) ? s[alen - 1] != ']' : (colon && !v6_text))
		return -1;
	v6_text |= memchr(s, '[', alen) != NULL;
	*bits = 128;
	if (slash) {
		size_t nn = n - alen - 1;
		while (nn && is_space(slash[nn]))
			nn--;
		if (nn == 0 || nn >= sizeof(num))
			return -1;
		memcpy(num, slash + 1, nn);
		num[nn] = '\0';
		if (util_parse_ll(num, &b) != 0 || b < 0 || b > (v6_text ? 128 : 32))
			return -1;
		*bits = (int)b + (v6_text ? 0 : 96);
	}
	masked = *net;
	for (int i = *bits; i < 128; i++)
		masked.b[i / 8] &= (unsigned char)~(0x80 >> (i % 8));
	return memcmp(masked.b, net->b, 16) == 0 ? 0 : -2;
}

int client_addr_list_parse(const char *text, struct client_addr_list *out, char *err,
			   size_t errlen)
{
	const char *p = text ? text : "";

	memset(out, 0, sizeof(*out));
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		size_t lead = 0;
		int rc;

		while (lead < n && is_space(p[lead]))
			lead++;
		if (lead == n) {
			if (comma || p != text) {
				snprintf(err, errlen, "an empty entry (two commas, or one at an end)");
				return -1;
			}
			break; /* only spaces: the empty list */
		}
		if (out->n == CLIENT_ADDR_LIST_MAX) {
			snprintf(err, errlen, "more than %d entries", CLIENT_ADDR_LIST_MAX);
			return -1;
		}
		rc = parse_block(p + lead, n - lead, &out->net[out->n], &out->bits[out->n]);
		if (rc != 0) {
			char item[80], shown[80];
			size_t sn = n - lead < sizeof(item) - 1 ? n - lead : sizeof(item) - 1;
			memcpy(item, p + lead, sn);
			item[sn] = '\0';
			util_text_shown(item, 64, shown, sizeof(shown));
			snprintf(err, errlen, rc == -2 ? "\"%s\" has bits set past its prefix length "
				 "(write the block's first address)" : "\"%s\" is not an IPv4 or IPv6 "
				 "address or CIDR block", shown);
			return -1;
		}
		out->n++;
		if (!comma)
			break;
		p = comma + 1;
		if (!*p) {
			snprintf(err, errlen, "an empty entry (two commas, or one at an end)");
			return -1;
		}
	}
	return 0;
}

int client_addr_list_has(const struct client_addr_list *l, const struct client_addr *a)
{
	for (size_t i = 0; l && i < l->n; i++)
		if (in_block(a, &l->net[i], l->bits[i]))
			return 1;
	return 0;
}

int client_addr_forwarded(const char *const *values, size_t nvalues,
			  const struct client_addr_list *trusted, struct client_addr *out)
{
	int seen = 0;

	for (size_t v = nvalues; v-- > 0;) {
		const char *s = values[v] ? values[v] : "";
		size_t end = strlen(s);
		for (;;) { /* the entries of this line, right to left */
			size_t start = end, i;
			while (start > 0 && s[start - 1] != ',')
				start--;
			for (i = start; i < end && is_space(s[i]); i++)
				;
			if (i < end) { /* not an empty entry ("a,,b") */
				if (client_addr_parse(s + start, end - start, out) != 0)
					memset(out, 0, sizeof(*out));
				if (++seen == CLIENT_ADDR_XFF_MAX ||
				    !client_addr_list_has(trusted, out))
					return 1;
			}
			if (start == 0)
				break;
			end = start - 1; /* past the comma */
		}
	}
	return seen ? 1 : 0;
}

/* ---- counts: a chained hash table ---- */

struct count_entry {
	struct count_entry *next;
	struct client_addr a;
	long n;
};

struct client_addr_counts {
	size_t nbuckets;
	size_t size;
	struct count_entry **buckets;
};

struct client_addr_counts *client_addr_counts_new(size_t expected)
{
	struct client_addr_counts *t = util_xcalloc(1, sizeof(*t));
	t->nbuckets = expected < 16 ? 16 : expected;
	t->buckets = util_xcalloc(t->nbuckets, sizeof(*t->buckets));
	return t;
}

void client_addr_counts_free(struct client_addr_counts *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct count_entry *e = t->buckets[i], *next;
		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(t->buckets);
	free(t);
}

/* FNV-1a over the 16 bytes. */
static size_t bucket_of(const struct client_addr_counts *t, const struct client_addr *a)
{
	uint64_t h = 1469598103934665603ULL;
	for (int i = 0; i < 16; i++) {
		h ^= a->b[i];
		h *= 1099511628211ULL;
	}
	return (size_t)(h % t->nbuckets);
}

long client_addr_counts_add(struct client_addr_counts *t, const struct client_addr *a,
			    long delta)
{
	struct count_entry **pp = &t->buckets[bucket_of(t, a)], *e;
	long n;

	for (; *pp; pp = &(*pp)->next)
		if (memcmp((*pp)->a.b, a->b, 16) == 0)
			break;
	e = *pp;
	n = (e ? e->n : 0) + delta;
	if (n < 0)
		n = 0;
	if (n == 0) {
		if (e) {
			*pp = e->next;
			free(e);
			t->size--;
		}
		return 0;
	}
	if (!e) {
		e = util_xcalloc(1, sizeof(*e));
		e->a = *a;
		e->next = t->buckets[bucket_of(t, a)];
		t->buckets[bucket_of(t, a)] = e;
		t->size++;
	}
	e->n = n;
	return n;
}

long client_addr_counts_get(const struct client_addr_counts *t, const struct client_addr *a)
{
	for (const struct count_entry *e = t->buckets[bucket_of(t, a)]; e; e = e->next)
		if (memcmp(e->a.b, a->b, 16) == 0)
			return e->n;
	return 0;
}

size_t client_addr_counts_size(const struct client_addr_counts *t)
{
	return t->size;
}
