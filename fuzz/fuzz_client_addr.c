/* fuzz_client_addr.c — who a client is (client_addr.h): the input is a
 * KIE_HTTP_TRUSTED_PROXIES list, then a NUL byte and X-Forwarded-For header lines
 * separated by '\n' (what a trusted proxy passes on from a client). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/client_addr.h"
#include "invariant.h"

#define LINES_MAX 16

/* parse(str(a)) is a again: the text form is an address the parser reads back. */
static void round_trip(const struct client_addr *a)
{
	char text[CLIENT_ADDR_STRLEN];
	struct client_addr b;

	client_addr_str(a, text, sizeof(text));
	INVARIANT("client_addr.round_trip", client_addr_parse(text, strlen(text), &b) == 0 &&
		  memcmp(a->b, b.b, 16) == 0, "\"%s\" does not read back", text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *nul, *p;
	const char *lines[LINES_MAX];
	struct client_addr_list l;
	struct client_addr a;
	size_t n = 0;
	char err[256];

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	nul = memchr(buf, '\0', size);
	err[0] = '\0';
	if (client_addr_list_parse(buf, &l, err, sizeof(err)) != 0) {
		INVARIANT("client_addr.list_error", err[0] != '\0' && invariant_utf8(err, strlen(err)),
			  "a list refused without a readable reason");
		memset(&l, 0, sizeof(l));
	}
	INVARIANT("client_addr.list_size", l.n <= CLIENT_ADDR_LIST_MAX, "%zu entries", l.n);
	for (size_t i = 0; i < l.n; i++) {
		INVARIANT("client_addr.bits", l.bits[i] >= 0 && l.bits[i] <= 128, "/%d", l.bits[i]);
		INVARIANT("client_addr.block_in_list", client_addr_list_has(&l, &l.net[i]),
			  "entry %zu is not in its own list", i);
		round_trip(&l.net[i]);
	}
	if (nul) {
		for (p = nul + 1; n < LINES_MAX;) {
			char *nl = strchr(p, '\n');
			lines[n++] = p;
			if (!nl)
				break;
			*nl = '\0';
			p = nl + 1;
		}
		if (client_addr_forwarded(lines, n, &l, &a)) {
			round_trip(&a);
			/* the answer is trusted only when the chain looked at holds nothing else */
		} else {
			for (size_t i = 0; i < n; i++)
				INVARIANT("client_addr.no_entry", strspn(lines[i], " \t,") ==
					  strlen(lines[i]), "line \"%.80s\" has an entry", lines[i]);
		}
	}
	free(buf);
	return 0;
}
