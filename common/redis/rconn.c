/* rconn.c — REDIS_URL parsing (libcurl's URL API), REDIS_SENTINELS, connect (TLS through
 * redis_tls)/auth/select, reconnection with backoff, and leaving a node that was demoted
 * to a replica. */
#include "redis/rconn.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include <poll.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "net/netaddr.h"
#include "redis/redis_tls.h"

/* One part of a parsed URL, percent-decoded, into out[size]. Returns 0, 1 when the URL
 * has no such part, -1 when it is longer than size - 1 bytes, -2 when it does not decode
 * (curl refuses control characters such as %00 and %0A). The host is the exception:
 * libcurl decoded it as it parsed, and decoding it again made "a%%32ff" (host "a%2ff")
 * the host "a/f". */
static int url_part(CURLU *h, CURLUPart part, char *out, size_t size)
{
	char *v = NULL;
	CURLUcode rc = curl_url_get(h, part, &v, part == CURLUPART_HOST ? 0 : CURLU_URLDECODE);
	int ret = 0;

	out[0] = '\0';
	if (rc == CURLUE_URLDECODE)
		return -2;
	if (rc != CURLUE_OK || !v)
		return 1; /* CURLUE_NO_USER, CURLUE_NO_PORT, ... */
	if (util_strlcpy(out, v, size) >= size) {
		out[0] = '\0';
		ret = -1;
	}
	curl_free(v);
	return ret;
}

/* A database number: 1 to 4 digits, 0..1000 (no sign, no blanks). */
static int parse_db(const char *s, int *db)
{
	long long v;
	size_t n = strlen(s);

	if (n == 0 || n > 4 || strspn(s, "0123456789") != n || util_parse_ll(s, &v) != 0 ||
	    v > 1000)
		return -1;
	*db = (int)v;
	return 0;
}

/* The query of unix:///path?db=N: db=N is its one parameter. */
static int parse_unix_query(const char *q, struct rconn_addr *o, char *err, size_t errlen)
{
	while (*q) {
		size_t n = strcspn(q, "&");
		char val[8];
		if (n > 3 && strncmp(q, "db=", 3) == 0) {
			snprintf(val, sizeof(val), "%.*s", (int)(n - 3), q + 3);
			if (n - 3 >= sizeof(val) || parse_db(val, &o->db) != 0) {
				snprintf(err, errlen, "REDIS_URL: db in the unix:// URL is not a "
					 "number 0..1000");
				return -1;
			}
		} else if (n) {
			/* the text is not echoed: a password may have been put there */
			snprintf(err, errlen, "REDIS_URL: unix:// takes one query parameter, db=N "
				 "(0..1000), and nothing else");
			return -1;
		}
		q += n + (q[n] == '&');
	}
	return 0;
}

/* unix:///path[?db=N]. curl reads the first segment of unix:///tmp/r.sock as a host
 * ("tmp"), as it does for any scheme it does not know; the file scheme has the same shape
 * (no authority) and curl parses it as such, so the URL is read as file:///path. */
static int parse_unix(CURLU *h, const char *url, struct rconn_addr *o, char *err, size_t errlen)
{
	char buf[1024], query[256];
	int r;

	if (snprintf(buf, sizeof(buf), "file://%s", url + 7) >= (int)sizeof(buf)) {
		snprintf(err, errlen, "REDIS_URL is longer than %zu bytes", sizeof(buf) - 8);
		return -1;
	}
	if (curl_url_set(h, CURLUPART_URL, buf, 0) != CURLUE_OK) {
		snprintf(err, errlen, "REDIS_URL: a unix socket URL is unix:///path/to/redis.sock"
			 "[?db=N], with no host or password in it (a password goes in "
			 "REDIS_PASSWORD_FILE)");
		return -1;
	}
	r = url_part(h, CURLUPART_PATH, o->unix_path, sizeof(o->unix_path));
	if (r == -1) {
		snprintf(err, errlen, "REDIS_URL: the socket path is longer than %zu bytes",
			 sizeof(o->unix_path) - 1);
		return -1;
	}
	if (r != 0 || strcmp(o->unix_path, "/") == 0) {
		snprintf(err, errlen, "REDIS_URL: no socket path in it (unix:///path/to/redis.sock)");
		return -1;
	}
	if (url_part(h, CURLUPART_FRAGMENT, query, sizeof(query)) != 1) {
		snprintf(err, errlen, "REDIS_URL: a #fragment means nothing in a Redis URL");
		return -1;
	}
	r = url_part(h, CURLUPART_QUERY, query, sizeof(query));
	if (r < 0) {
		snprintf(err, errlen, "REDIS_URL: the query is not db=N (0..1000)");
		return -1;
	}
	return r == 0 ? parse_unix_query(query, o, err, errlen) : 0;
}

/* Why curl refused a redis:// URL, as a sentence that does not quote the URL. */
static void curl_refusal(CURLUcode rc, char *err, size_t errlen)
{
	switch (rc) {
	case CURLUE_NO_HOST:
		snprintf(err, errlen, "REDIS_URL has no host (redis://host[:port][/db])");
		break;
	case CURLUE_BAD_PORT_NUMBER:
		snprintf(err, errlen, "REDIS_URL: the port is not a number 1..65535");
		break;
	case CURLUE_BAD_SCHEME:
	case CURLUE_BAD_SLASHES:
		snprintf(err, errlen, "REDIS_URL must start with redis://, rediss:// or unix://");
		break;
	default:
		snprintf(err, errlen, "REDIS_URL is not a valid URL (%s; in a password, '@' ':' '/' "
			 "are written %%40 %%3A %%2F)", curl_url_strerror(rc));
		break;
	}
}

/* Host, port, user and password of a parsed redis:// URL into o. */
static int parse_authority(CURLU *h, const char *password, struct rconn_addr *o, char *err,
			   size_t errlen)
{
	char port[16], zone[64], user[512];
	int r, has_pass;

	/* the host: brackets off an IPv6 literal (hiredis connects to "::1"), zone id kept */
	r = url_part(h, CURLUPART_HOST, o->host, sizeof(o->host));
	if (r == -1)
		goto host_too_long;
	if (r != 0 || !o->host[0] || strcmp(o->host, "[]") == 0) {
		snprintf(err, errlen, "REDIS_URL has no host (redis://host[:port][/db])");
		return -1;
	}
	if (!netaddr_host_ok(o->host)) {
		char shown[72];
		snprintf(err, errlen, "REDIS_URL: the host \"%s\" is not a host name or IP address",
			 util_text_shown(o->host, 64, shown, sizeof(shown)));
		return -1;
	}
	if (o->host[0] == '[') {
		size_t n = strlen(o->host) - 2;
		memmove(o->host, o->host + 1, n);
		o->host[n] = '\0';
		if (url_part(h, CURLUPART_ZONEID, zone, sizeof(zone)) == 0 &&
		    snprintf(o->host + n, sizeof(o->host) - n, "%%%s", zone) >=
			    (int)(sizeof(o->host) - n))
			goto host_too_long;
	}

	if (url_part(h, CURLUPART_PORT, port, sizeof(port)) == 0) {
		long long v;
		if (util_parse_ll(port, &v) != 0 || v < 1 || v > 65535) {
			snprintf(err, errlen, "REDIS_URL: port %s is not 1..65535", port);
			return -1;
		}
		o->port = (int)v;
	}

	/* user and password, percent-decoded; neither is ever quoted in err. A user part with
	 * no password part is the password, as redis-cli reads redis://secret@host, unless the
	 * password is given apart: then it is the ACL user name. */
	r = url_part(h, CURLUPART_PASSWORD, o->password, sizeof(o->password));
	if (r == -1)
		goto password_too_long;
	if (r == -2) {
		snprintf(err, errlen, "REDIS_URL: the password has a control character in it");
		return -1;
	}
	has_pass = r == 0;
	r = url_part(h, CURLUPART_USER, user, sizeof(user));
	if (r == -2) {
		snprintf(err, errlen, "REDIS_URL: the user name has a control character in it");
		return -1;
	}
	if (r == 1)
		return 0;
	if (!has_pass && !(password && *password)) {
		if (r == -1 || util_strlcpy(o->password, user, sizeof(o->password)) >=
				       sizeof(o->password))
			goto password_too_long;
		return 0;
	}
	if (r == -1 || util_strlcpy(o->user, user, sizeof(o->user)) >= sizeof(o->user)) {
		snprintf(err, errlen, "REDIS_URL: the user name is longer than %zu bytes",
			 sizeof(o->user) - 1);
		return -1;
	}
	return 0;

host_too_long:
	snprintf(err, errlen, "REDIS_URL: the host is longer than %zu bytes", sizeof(o->host) - 1);
	return -1;
password_too_long:
	snprintf(err, errlen, "REDIS_URL: the password is longer than %zu bytes",
		 sizeof(o->password) - 1);
	return -1;
}

int rconn_parse_url(const char *url, const char *password, struct rconn_addr *o, char *err,
		    size_t errlen)
{
	CURLU *h = curl_url();
	CURLUcode cu;
	char scheme[16], part[512];
	const char *sep;
	int rc = -1, r;

	memset(o, 0, sizeof(*o));
	o->port = 6379;
	if (!h) {
		snprintf(err, errlen, "REDIS_URL: out of memory");
		return -1;
	}
	if (strncasecmp(url, "unix://", 7) == 0) {
		if (parse_unix(h, url, o, err, errlen) != 0)
			goto out;
		goto password;
	}
	/* curl takes one to three slashes after the scheme, and reads redis:///0 as the host
	 * "0" (0.0.0.0): a Redis URL has exactly two, then its authority */
	sep = strstr(url, "://");
	if (!sep || strcspn(url, ":/@") != (size_t)(sep - url)) {
		snprintf(err, errlen, "REDIS_URL must start with redis://, rediss:// or unix://");
		goto out;
	}
	if (sep[3] == '/') {
		snprintf(err, errlen, "REDIS_URL has no host (redis://host[:port][/db])");
		goto out;
	}
	cu = curl_url_set(h, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
	if (cu != CURLUE_OK) {
		curl_refusal(cu, err, errlen);
		goto out;
	}
	if (url_part(h, CURLUPART_SCHEME, scheme, sizeof(scheme)) != 0 ||
	    (strcmp(scheme, "redis") != 0 && strcmp(scheme, "rediss") != 0)) {
		snprintf(err, errlen, "REDIS_URL must start with redis://, rediss:// or unix://%s%s%s",
			 *scheme ? " (not " : "", scheme, *scheme ? "://)" : "");
		goto out;
	}
	o->tls = strcmp(scheme, "rediss") == 0;
	if (parse_authority(h, password, o, err, errlen) != 0)
		goto out;

	/* the database: the path, /N or nothing; no query, no fragment */
	if (url_part(h, CURLUPART_QUERY, part, sizeof(part)) != 1) {
		snprintf(err, errlen, "REDIS_URL: %s:// takes no query parameters (the database "
			 "goes in the path: %s://host:port/N; TLS files go in REDIS_TLS_*)", scheme,
			 scheme);
		goto out;
	}
	if (url_part(h, CURLUPART_FRAGMENT, part, sizeof(part)) != 1) {
		snprintf(err, errlen, "REDIS_URL: a #fragment means nothing in a Redis URL");
		goto out;
	}
	r = url_part(h, CURLUPART_PATH, part, sizeof(part));
	if (r < 0 || (r == 0 && part[0] && strcmp(part, "/") != 0 &&
		      (part[0] != '/' || parse_db(part + 1, &o->db) != 0))) {
		snprintf(err, errlen, "REDIS_URL: the database (the path) is not a number 0..1000");
		goto out;
	}

password:
	if (password && *password &&
	    util_strlcpy(o->password, password, sizeof(o->password)) >= sizeof(o->password)) {
		snprintf(err, errlen, "REDIS_PASSWORD_FILE: the password is longer than %zu bytes",
			 sizeof(o->password) - 1);
		goto out;
	}
	rc = 0;
out:
	curl_url_cleanup(h);
	if (rc != 0)
		memset(o, 0, sizeof(*o)); /* no half-parsed password left behind */
	return rc;
}

/* ---- REDIS_SENTINELS ---- */

/* A sentinel's port: 1..5 digits, 1..65535. */
static int parse_port(const char *s, size_t n, int *port)
{
	char buf[8];
	long long v;

	if (n == 0 || n > 5 || strspn(s, "0123456789") < n)
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (util_parse_ll(buf, &v) != 0 || v < 1 || v > 65535)
		return -1;
	*port = (int)v;
	return 0;
}

/* One entry of REDIS_SENTINELS, s[0..n) without blanks around it: host, host:port,
 * [v6] or [v6]:port. A host name is letters, digits, '.', '-' and '_'; an IPv6 literal
 * (in brackets) hex digits, ':' and '.', then an optional %zone. */
static int parse_sentinel(const char *s, size_t n, int idx, struct rconn_sentinel *out,
			  char *err, size_t errlen)
{
	const char *host = s, *port = NULL;
	size_t hlen, plen = 0;

	if (s[0] == '[') {
		const char *close = memchr(s, ']', n);
		if (!close)
			goto bad;
		host = s + 1;
		hlen = (size_t)(close - host);
		if (close + 1 < s + n) {
			if (close[1] != ':')
				goto bad;
			port = close + 2;
			plen = (size_t)(s + n - port);
		}
		size_t addr = strspn(host, "0123456789abcdefABCDEF:.");
		if (hlen == 0 || addr == 0 || memchr(host, ':', hlen) == NULL ||
		    (addr < hlen && (host[addr] != '%' || addr + 1 == hlen)))
			goto bad;
		for (size_t i = addr + 1; i < hlen; i++)
			if (!isalnum((unsigned char)host[i]) && !strchr("._-", host[i]))
				goto bad;
	} else {
		const char *colon = memchr(s, ':', n);
		if (colon && memchr(colon + 1, ':', (size_t)(s + n - colon - 1))) {
			size_t v6 = strspn(s, "0123456789abcdefABCDEF:.");
			if (v6 < n && s[v6] != '%')
				goto bad; /* not an IPv6 literal either */
			snprintf(err, errlen, "REDIS_SENTINELS: entry %d (\"%.*s\"): an IPv6 address is "
				 "written in brackets, [::1]:26379", idx, (int)(n > 64 ? 64 : n), s);
			return -1;
		}
		hlen = colon ? (size_t)(colon - s) : n;
		if (colon) {
			port = colon + 1;
			plen = (size_t)(s + n - port);
		}
		if (hlen == 0)
			goto bad;
		for (size_t i = 0; i < hlen; i++)
			if (!isalnum((unsigned char)host[i]) && !strchr(".-_", host[i]))
				goto bad;
	}
	if (hlen >= sizeof(out->host)) {
		snprintf(err, errlen, "REDIS_SENTINELS: entry %d: the host is longer than %zu bytes",
			 idx, sizeof(out->host) - 1);
		return -1;
	}
	memcpy(out->host, host, hlen);
	out->host[hlen] = '\0';
	out->port = RCONN_SENTINEL_PORT;
	if (port && parse_port(port, plen, &out->port) != 0) {
		snprintf(err, errlen, "REDIS_SENTINELS: entry %d (\"%.*s\"): the port is not a "
			 "number 1..65535", idx, (int)(n > 64 ? 64 : n), s);
		return -1;
	}
	return 0;
bad:
	snprintf(err, errlen, "REDIS_SENTINELS: entry %d (\"%.*s\") is not host:port or "
		 "[ipv6]:port", idx, (int)(n > 64 ? 64 : n), s);
	return -1;
}

static void sentinels_clear(struct rconn_addr *a)
{
	a->nsentinels = 0;
	memset(a->sentinels, 0, sizeof(a->sentinels));
	memset(a->master_name, 0, sizeof(a->master_name));
	memset(a->sentinel_password, 0, sizeof(a->sentinel_password));
}

int rconn_addr_sentinels(struct rconn_addr *a, const char *list, const char *master,
			 const char *password, char *err, size_t errlen)
{
	static const char blanks[] = " \t";
	const char *p = list;
	int n = 0;

	sentinels_clear(a);
	if (!list || list[strspn(list, blanks)] == '\0')
		return 0;
	for (;;) {
		size_t len = strcspn(p, ","), lead = strspn(p, blanks), end = len;
		while (end > lead && strchr(blanks, p[end - 1]))
			end--;
		if (end <= lead) {
			snprintf(err, errlen, "REDIS_SENTINELS: entry %d is empty (a comma-separated "
				 "list of host:port)", n + 1);
			goto fail;
		}
		if (n == RCONN_SENTINELS_MAX) {
			snprintf(err, errlen, "REDIS_SENTINELS: more than %d sentinels",
				 RCONN_SENTINELS_MAX);
			goto fail;
		}
		if (parse_sentinel(p + lead, end - lead, n + 1, &a->sentinels[n], err, errlen) != 0)
			goto fail;
		n++;
		if (p[len] == '\0')
			break;
		p += len + 1;
	}
	if (!master || !*master) {
		snprintf(err, errlen, "KIE_REDIS_MASTER_NAME is empty: with REDIS_SENTINELS it names "
			 "the primary the sentinels monitor");
		goto fail;
	}
	for (const char *m = master; *m; m++) {
		if ((unsigned char)*m <= ' ' || *m == 0x7f) {
			snprintf(err, errlen, "KIE_REDIS_MASTER_NAME has a blank or a control character "
				 "in it");
			goto fail;
		}
	}
	if (util_strlcpy(a->master_name, master, sizeof(a->master_name)) >= sizeof(a->master_name)) {
		snprintf(err, errlen, "KIE_REDIS_MASTER_NAME is longer than %zu bytes",
			 sizeof(a->master_name) - 1);
		goto fail;
	}
	if (password && util_strlcpy(a->sentinel_password, password,
				     sizeof(a->sentinel_password)) >= sizeof(a->sentinel_password)) {
		snprintf(err, errlen, "REDIS_SENTINEL_PASSWORD_FILE: the password is longer than %zu "
			 "bytes", sizeof(a->sentinel_password) - 1);
		goto fail;
	}
	a->nsentinels = n;
	return 0;
fail:
	sentinels_clear(a);
	return -1;
}

/* ---- TLS ---- */

int rconn_addr_tls(struct rconn_addr *a, int sentinel_tls, const char *ca_file,
		   const char *cert_file, const char *key_file, const char *server_name,
		   char *err, size_t errlen)
{
	const char *set = ca_file && *ca_file		? "REDIS_TLS_CA_FILE"
			  : cert_file && *cert_file	? "REDIS_TLS_CERT_FILE"
			  : key_file && *key_file	? "REDIS_TLS_KEY_FILE"
			  : server_name && *server_name ? "REDIS_TLS_SERVER_NAME"
							: NULL;

	a->sentinel_tls = 0;
	a->tls_server_name[0] = '\0';
	if (sentinel_tls && !a->nsentinels) {
		snprintf(err, errlen, "REDIS_SENTINEL_TLS=1 without REDIS_SENTINELS: it says how "
			 "the sentinels are reached (REDIS_URL's scheme, rediss://, says whether "
			 "Redis itself is)");
		return -1;
	}
	if (!a->tls && !sentinel_tls) {
		if (!set)
			return 0;
		snprintf(err, errlen, "%s is set but no Redis connection uses TLS: REDIS_URL is "
			 "%s (write rediss:// for TLS%s)", set,
			 a->unix_path[0] ? "unix://" : "redis://",
			 a->nsentinels ? "; REDIS_SENTINEL_TLS=1 for the sentinels" : "");
		return -1;
	}
	if (server_name && *server_name) {
		size_t n = strlen(server_name);
		if (n >= sizeof(a->tls_server_name) ||
		    strspn(server_name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					"0123456789.-_:") != n) {
			char shown[72];
			snprintf(err, errlen, "REDIS_TLS_SERVER_NAME: \"%s\" is not a DNS name or "
				 "an IP address (at most %zu bytes)",
				 util_text_shown(server_name, 64, shown, sizeof(shown)),
				 sizeof(a->tls_server_name) - 1);
			return -1;
		}
		memcpy(a->tls_server_name, server_name, n + 1);
	}
	if (redis_tls_init(ca_file, cert_file, key_file, err, errlen) != 0) {
		a->tls_server_name[0] = '\0';
		return -1;
	}
	a->sentinel_tls = sentinel_tls != 0;
	return 0;
}

/* ---- error replies that mean "this node was demoted" ---- */

static int has_code(const char *msg, const char *code)
{
	size_t n = strlen(code);
	return strncmp(msg, code, n) == 0 && (msg[n] == ' ' || msg[n] == '\0');
}

enum rconn_err_kind rconn_error_kind(const char *msg)
{
	static const char *const demoted[] = {"READONLY", "MASTERDOWN", "NOREPLICAS"};
	char inner[16];

	if (!msg)
		return RCONN_ERR_OTHER;
	for (size_t i = 0; i < sizeof(demoted) / sizeof(demoted[0]); i++) {
		if (has_code(msg, demoted[i]))
			return RCONN_ERR_DEMOTED;
		/* Redis 6 wraps the error of a command a script called */
		snprintf(inner, sizeof(inner), "-%s ", demoted[i]);
		if (strncmp(msg, "ERR Error running script", 24) == 0 && strstr(msg, inner))
			return RCONN_ERR_DEMOTED;
	}
	/* a blocked command (BLMOVE) undone because the node became a replica */
	if (has_code(msg, "UNBLOCKED") && strstr(msg, "master -> replica"))
		return RCONN_ERR_DEMOTED;
	if (has_code(msg, "LOADING"))
		return RCONN_ERR_LOADING;
	return RCONN_ERR_OTHER;
}

/* The kind of a reply: its own error, or (EXEC, a script's table) the first demotion
 * error among its elements. *msg points at the error text. */
static enum rconn_err_kind reply_kind(const redisReply *rep, int depth, const char **msg)
{
	if (rep->type == REDIS_REPLY_ERROR) {
		*msg = rep->str;
		return rconn_error_kind(rep->str);
	}
	if (rep->type != REDIS_REPLY_ARRAY || depth >= 4)
		return RCONN_ERR_OTHER;
	for (size_t i = 0; i < rep->elements; i++) {
		if (rep->element[i] &&
		    reply_kind(rep->element[i], depth + 1, msg) == RCONN_ERR_DEMOTED)
			return RCONN_ERR_DEMOTED;
	}
	return RCONN_ERR_OTHER;
}

/* ---- process-wide state: one generation, one sentinel watch ---- */

#define SENTINEL_TIMEOUT_MS 500  /* connect and read, per sentinel */
#define SENTINEL_CHECK_MS 1000   /* the sentinel watch: once a second per process */
#define SENTINEL_EVENTS_MS 5     /* sentinel pub/sub messages are read this often */
#define SENTINEL_RESUB_MS 1000   /* a lost subscription is made again after this, */
#define SENTINEL_RESUB_MAX_MS 30000 /* doubling while they fail (a connect may block) */
#define FAILOVER_HOLD_MS 10000   /* commands wait for a failover at most this long */
#define DEMOTE_FIRST_MS 100      /* pause before reconnecting after a demotion reply ... */
#define DEMOTE_MAX_MS 5000       /* ... doubling up to this ... */
#define DEMOTE_QUIET_MS 30000    /* ... while they come less than this apart */
#define NOTE_EVERY_MS 10000      /* demotion notes: one line per 10 s per rconn */

static atomic_ulong g_gen;                /* rconn_generation() */
static _Atomic int64_t g_pause_until_ms;  /* reconnects a demotion's bump causes wait this */
static _Atomic int64_t g_watch_due_ms;    /* the next sentinel watch (monotonic ms) */
static atomic_int g_sentinel_first;       /* the sentinel that answered last: asked first */
static pthread_mutex_t g_primary_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_primary[300];               /* the primary last logged, host:port */
/* The sentinels' failover events (sentinel_events()): one subscription per sentinel,
 * read by whichever rconn comes first; g_failing_ms[i] is when sentinel i's failover of
 * our primary stops holding commands (0: it runs none). */
static pthread_mutex_t g_sub_mu = PTHREAD_MUTEX_INITIALIZER;
static redisContext *g_sub[RCONN_SENTINELS_MAX];
static int64_t g_sub_retry_ms[RCONN_SENTINELS_MAX];
static long g_sub_backoff_ms[RCONN_SENTINELS_MAX];
static _Atomic int64_t g_events_due_ms;
static _Atomic int64_t g_failing_ms[RCONN_SENTINELS_MAX];
static char g_switched_to[300];           /* the last +switch-master's new address */

unsigned long rconn_generation(void)
{
	return atomic_load(&g_gen);
}

/* host:port, with brackets around an IPv6 literal. */
static const char *hostport(char *out, size_t n, const char *host, int port)
{
	snprintf(out, n, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
	return out;
}

/* The node of r for logs: its socket path, or host:port. */
static const char *node_str(const struct rconn *r, char *out, size_t n)
{
	if (!r->addr.nsentinels && r->addr.unix_path[0])
		util_strlcpy(out, r->addr.unix_path, n);
	else
		hostport(out, n, r->node_host, r->node_port);
	return out;
}

static int stopped(const struct rconn *r)
{
	return (r->stop && *r->stop) || (r->deadline_ms && util_monotonic_ms() >= r->deadline_ms);
}

/* Sleeps until the monotonic time until_ms in 50 ms slices; returns -1 when stopped. */
static int sleep_until(const struct rconn *r, int64_t until_ms)
{
	for (int64_t now = util_monotonic_ms(); now < until_ms; now = util_monotonic_ms()) {
		if (stopped(r))
			return -1;
		util_sleep_ms(until_ms - now < 50 ? until_ms - now : 50);
	}
	return stopped(r) ? -1 : 0;
}

/* A demotion or LOADING note: at most one line per NOTE_EVERY_MS per rconn, the next one
 * saying how many were left out. */
static void note(struct rconn *r, enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void note(struct rconn *r, enum log_level lvl, const char *fmt, ...)
{
	int64_t now = util_monotonic_ms();
	char msg[768];
	va_list ap;

	if (now < r->next_note_ms) {
		r->notes_quiet++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (r->notes_quiet)
		log_emit(lvl, NULL, NULL, "%s (and %lu more such event(s) in the last %d s)", msg,
			 r->notes_quiet, NOTE_EVERY_MS / 1000);
	else
		log_emit(lvl, NULL, NULL, "%s", msg);
	r->next_note_ms = now + NOTE_EVERY_MS;
	r->notes_quiet = 0;
}

/* The connection's node answered a command with a demotion error (msg): drop the
 * connection, make every other rconn of the process drop theirs (once per generation:
 * only a connection made under the current one bumps it), and wait before reconnecting. */
static void on_demoted(struct rconn *r, const char *msg)
{
	int64_t now = util_monotonic_ms();
	unsigned long g = r->gen;
	char node[300];
	int bumped;

	if (r->demoted_at_ms && now - r->demoted_at_ms < DEMOTE_QUIET_MS)
		r->demote_ms = r->demote_ms * 2 > DEMOTE_MAX_MS ? DEMOTE_MAX_MS : r->demote_ms * 2;
	else
		r->demote_ms = DEMOTE_FIRST_MS;
	r->demoted_at_ms = now;
	r->pause_until_ms = now + r->demote_ms;
	bumped = atomic_compare_exchange_strong(&g_gen, &g, g + 1);
	if (bumped)
		atomic_store(&g_pause_until_ms, r->pause_until_ms);
	note(r, LOG_WARN, "%s: Redis %s answered \"%.80s\": it is not a primary that takes "
	     "writes (demoted by a failover?); %sreconnecting in %ld ms", r->who,
	     node_str(r, node, sizeof(node)), msg,
	     bumped ? "every connection of this process is " : "", r->demote_ms);
	rconn_close(r);
	r->drops++;
	r->demoted = 1;
}

/* A blocking connection to host:port, or to the socket unix_path when non-NULL, with
 * timeout_ms bounding the connect and then every read and write (the TLS handshake too),
 * over TLS when tls is set: the certificate must name verify_name, or host when that is
 * NULL. Returns the context, or NULL with why. */
static redisContext *connect_node(const char *host, int port, const char *unix_path,
				  long timeout_ms, int tls, const char *verify_name, char *why,
				  size_t whylen)
{
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	redisOptions o;
	redisContext *c;
	char tlswhy[512];

	memset(&o, 0, sizeof(o));
	if (unix_path)
		REDIS_OPTIONS_SET_UNIX(&o, unix_path);
	else
		REDIS_OPTIONS_SET_TCP(&o, host, port);
	o.connect_timeout = &tv;
	o.command_timeout = &tv;
	c = redisConnectWithOptions(&o);
	if (!c || c->err) {
		snprintf(why, whylen, "%s", c ? c->errstr : "out of memory");
		goto fail;
	}
	redisEnableKeepAlive(c);
	if (tls && redis_tls_handshake(c, verify_name ? verify_name : host, tlswhy,
				       sizeof(tlswhy)) != 0) {
		snprintf(why, whylen, "%s", tlswhy);
		goto fail;
	}
	return c;
fail:
	if (c)
		redisFree(c);
	return NULL;
}

/* Asks the sentinels in turn, from the one that answered last, for the primary's
 * address. Returns 0 with host, port and via (the sentinel that answered), or -1 with why
 * (each sentinel's failure). */
static int sentinel_resolve(const struct rconn_addr *a, char *host, size_t hostlen, int *port,
			    char *via, size_t vialen, char *why, size_t whylen)
{
	int first = atomic_load(&g_sentinel_first);
	size_t used;

	used = (size_t)snprintf(why, whylen, "no sentinel named the primary of %s:",
				a->master_name);
	for (int k = 0; k < a->nsentinels; k++) {
		int i = (first + k) % a->nsentinels;
		const struct rconn_sentinel *s = &a->sentinels[i];
		char problem[200] = "", sp[300];
		/* a sentinel's certificate names the sentinel (REDIS_TLS_SERVER_NAME is the
		 * data node's name) */
		redisContext *c = connect_node(s->host, s->port, NULL, SENTINEL_TIMEOUT_MS,
					       a->sentinel_tls, NULL, problem, sizeof(problem));
		redisReply *rep = NULL;

		if (!c)
			goto next;
		if (a->sentinel_password[0]) {
			rep = redisCommand(c, "AUTH %s", a->sentinel_password);
			if (!rep || rep->type == REDIS_REPLY_ERROR) {
				snprintf(problem, sizeof(problem), "AUTH failed: %.100s",
					 rep ? rep->str : c->errstr);
				goto next;
			}
			freeReplyObject(rep);
		}
		rep = redisCommand(c, "SENTINEL get-master-addr-by-name %s", a->master_name);
		if (!rep) {
			snprintf(problem, sizeof(problem), "%s", c->errstr);
		} else if (rep->type == REDIS_REPLY_NIL) {
			snprintf(problem, sizeof(problem), "does not monitor %s", a->master_name);
		} else if (rep->type == REDIS_REPLY_ERROR) {
			snprintf(problem, sizeof(problem), "%.100s", rep->str);
		} else if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
			   rep->element[0]->type != REDIS_REPLY_STRING ||
			   rep->element[1]->type != REDIS_REPLY_STRING ||
			   rep->element[0]->len == 0 || rep->element[0]->len >= hostlen ||
			   parse_port(rep->element[1]->str, rep->element[1]->len, port) != 0) {
			snprintf(problem, sizeof(problem), "not an address in reply to "
				 "SENTINEL get-master-addr-by-name (not a sentinel?)");
		} else {
			memcpy(host, rep->element[0]->str, rep->element[0]->len);
			host[rep->element[0]->len] = '\0';
			hostport(via, vialen, s->host, s->port);
			atomic_store(&g_sentinel_first, i);
			freeReplyObject(rep);
			redisFree(c);
			return 0;
		}
next:
		if (rep)
			freeReplyObject(rep);
		if (c)
			redisFree(c);
		if (used < whylen)
			used += (size_t)snprintf(why + used, whylen - used, "%s %s: %s", k ? ";" : "",
						 hostport(sp, sizeof(sp), s->host, s->port), problem);
	}
	return -1;
}

/* A subscription to sentinel i's failover events, or -1 (tried again after
 * SENTINEL_RESUB_MS, doubling up to SENTINEL_RESUB_MAX_MS while it fails: a connect to a
 * host that does not answer takes SENTINEL_TIMEOUT_MS of some rconn's time). Caller holds
 * g_sub_mu. */
static int subscribe(const struct rconn_addr *a, int i, int64_t now)
{
	static const char *const argv[] = {
		"SUBSCRIBE", "+try-failover", "+switch-master", "-failover-abort-not-elected",
		"-failover-abort-no-good-slave", "-failover-abort-slave-timeout",
		"+failover-end-for-timeout",
	};
	const struct rconn_sentinel *s = &a->sentinels[i];
	char why[256];
	redisContext *c = connect_node(s->host, s->port, NULL, SENTINEL_TIMEOUT_MS,
				       a->sentinel_tls, NULL, why, sizeof(why));
	redisReply *rep = NULL;
	int done = 0;

	g_sub_backoff_ms[i] = g_sub_backoff_ms[i] ? g_sub_backoff_ms[i] * 2 : SENTINEL_RESUB_MS;
	if (g_sub_backoff_ms[i] > SENTINEL_RESUB_MAX_MS)
		g_sub_backoff_ms[i] = SENTINEL_RESUB_MAX_MS;
	g_sub_retry_ms[i] = now + g_sub_backoff_ms[i];
	if (!c)
		goto fail;
	if (a->sentinel_password[0]) {
		rep = redisCommand(c, "AUTH %s", a->sentinel_password);
		if (!rep || rep->type == REDIS_REPLY_ERROR)
			goto fail;
		freeReplyObject(rep);
		rep = NULL;
	}
	/* the confirmations are read later with the messages, and skipped */
	if (redisAppendCommandArgv(c, (int)(sizeof(argv) / sizeof(argv[0])), (const char **)argv,
				   NULL) != REDIS_OK)
		goto fail;
	while (!done)
		if (redisBufferWrite(c, &done) != REDIS_OK)
			goto fail;
	g_sub[i] = c;
	g_sub_backoff_ms[i] = 0;
	return 0;
fail:
	if (rep)
		freeReplyObject(rep);
	if (c)
		redisFree(c);
	return -1;
}

static int failover_held(int64_t now)
{
	for (int i = 0; i < RCONN_SENTINELS_MAX; i++)
		if (atomic_load(&g_failing_ms[i]) > now)
			return 1;
	return 0;
}

/* One message from sentinel i: ["message", channel, payload]. A failover of our primary
 * that starts (+try-failover master <name> <ip> <port>) holds every connection of the
 * process; it ends with +switch-master <name> <old ip> <old port> <new ip> <new port>
 * (then the announcing sentinel is asked first) or an abort. */
static void sentinel_message(const struct rconn_addr *a, int i, const redisReply *m,
			     int64_t now)
{
	const char *ch, *pl, *name;
	size_t nlen = strlen(a->master_name);
	char from[300];

	if (m->type != REDIS_REPLY_ARRAY || m->elements != 3 ||
	    m->element[0]->type != REDIS_REPLY_STRING || strcmp(m->element[0]->str, "message") != 0 ||
	    m->element[1]->type != REDIS_REPLY_STRING || m->element[2]->type != REDIS_REPLY_STRING)
		return; /* subscribe confirmations */
	ch = m->element[1]->str;
	pl = m->element[2]->str;
	name = strcmp(ch, "+switch-master") == 0 ? pl : strncmp(pl, "master ", 7) == 0 ? pl + 7 : NULL;
	if (!name || strncmp(name, a->master_name, nlen) != 0 || name[nlen] != ' ')
		return; /* another master's, or a replica's */
	hostport(from, sizeof(from), a->sentinels[i].host, a->sentinels[i].port);
	if (strcmp(ch, "+try-failover") == 0) {
		int held = failover_held(now);
		atomic_store(&g_failing_ms[i], now + FAILOVER_HOLD_MS);
		if (!held) {
			log_warn(NULL, NULL, "sentinel %s: a failover of %s starts: Redis commands wait "
				 "until the sentinels name the new primary (at most %d s)", from,
				 a->master_name, FAILOVER_HOLD_MS / 1000);
			atomic_fetch_add(&g_gen, 1);
		}
	} else if (strcmp(ch, "+switch-master") == 0) {
		/* every sentinel announces it: the first one moves the process */
		const char *to = pl + nlen;
		for (int field = 0; field < 2 && to; field++) /* past the old ip and port */
			to = strchr(to + 1, ' ');
		if (!to)
			return;
		to++;
		if (!failover_held(now) && strcmp(g_switched_to, to) == 0)
			return;
		util_strlcpy(g_switched_to, to, sizeof(g_switched_to));
		for (int k = 0; k < RCONN_SENTINELS_MAX; k++)
			atomic_store(&g_failing_ms[k], 0);
		atomic_store(&g_sentinel_first, i);
		log_info(NULL, NULL, "sentinel %s: %s switched to %.200s: every connection of this "
			 "process moves", from, a->master_name, to);
		atomic_fetch_add(&g_gen, 1);
	} else if (atomic_load(&g_failing_ms[i])) {
		atomic_store(&g_failing_ms[i], 0);
		if (!failover_held(now))
			log_warn(NULL, NULL, "sentinel %s: the failover of %s ended without a switch "
				 "(%s): Redis commands go on", from, a->master_name, ch);
	}
}

/* Reads the sentinels' failover events, at most once per SENTINEL_EVENTS_MS per process
 * and never waiting for one: the subscriptions are polled, not blocked on. */
static void sentinel_events(const struct rconn_addr *a)
{
	int64_t now = util_monotonic_ms(), due = atomic_load(&g_events_due_ms);

	if (now < due ||
	    !atomic_compare_exchange_strong(&g_events_due_ms, &due, now + SENTINEL_EVENTS_MS) ||
	    pthread_mutex_trylock(&g_sub_mu) != 0)
		return;
	for (int i = 0; i < a->nsentinels; i++) {
		struct pollfd pfd;
		void *m = NULL;
		if (!g_sub[i] && (now < g_sub_retry_ms[i] || subscribe(a, i, now) != 0))
			continue;
		pfd = (struct pollfd){.fd = g_sub[i]->fd, .events = POLLIN};
		if (poll(&pfd, 1, 0) <= 0)
			continue;
		/* readable: one read takes what is there (with TLS, one record: OpenSSL reads
		 * no further ahead, so the rest stays in the socket for the next poll), then
		 * every whole message */
		if (redisBufferRead(g_sub[i]) != REDIS_OK)
			goto lost;
		for (;;) {
			if (redisGetReplyFromReader(g_sub[i], &m) != REDIS_OK)
				goto lost;
			if (!m)
				break;
			sentinel_message(a, i, m, now);
			freeReplyObject(m);
		}
		continue;
lost: /* e.g. the sentinel restarted: subscribe again after a pause */
		redisFree(g_sub[i]);
		g_sub[i] = NULL;
		g_sub_retry_ms[i] = now + SENTINEL_RESUB_MS;
	}
	pthread_mutex_unlock(&g_sub_mu);
}

/* While a sentinel runs a failover of our primary: wait, reading its events. Returns -1
 * when stopped. */
static int failover_wait(const struct rconn *r)
{
	while (failover_held(util_monotonic_ms())) {
		if (stopped(r))
			return -1;
		util_sleep_ms(SENTINEL_EVENTS_MS);
		sentinel_events(&r->addr);
	}
	return 0;
}

/* In Sentinel mode, once per SENTINEL_CHECK_MS per process (whichever rconn comes first):
 * if the sentinels name another primary than the one r is on, bump the generation: the
 * fallback for failover events missed (a subscription down at that moment). */
static void sentinel_watch(struct rconn *r)
{
	int64_t now = util_monotonic_ms(), due = atomic_load(&g_watch_due_ms);
	char host[256], via[300], why[1024], was[300], now_at[300];
	int port;

	if (now < due ||
	    !atomic_compare_exchange_strong(&g_watch_due_ms, &due, now + SENTINEL_CHECK_MS))
		return;
	if (sentinel_resolve(&r->addr, host, sizeof(host), &port, via, sizeof(via), why,
			     sizeof(why)) != 0) {
		note(r, LOG_WARN, "%s: checking the Redis primary: %s", r->who, why);
		return;
	}
	if (port == r->node_port && strcmp(host, r->node_host) == 0)
		return;
	log_warn(NULL, NULL, "%s: sentinel %s names %s as the Redis primary for %s, not %s: "
		 "every connection of this process reconnects", r->who, via,
		 hostport(now_at, sizeof(now_at), host, port), r->addr.master_name,
		 node_str(r, was, sizeof(was)));
	atomic_fetch_add(&g_gen, 1);
}

/* ---- connecting ---- */

void rconn_init(struct rconn *r, const struct rconn_addr *addr, long timeout_ms,
		const volatile sig_atomic_t *stop, const char *who)
{
	memset(r, 0, sizeof(*r));
	r->addr = *addr;
	r->timeout_ms = timeout_ms;
	r->stop = stop;
	util_strlcpy(r->who, who ? who : "redis", sizeof(r->who));
	util_strlcpy(r->node_host, addr->host, sizeof(r->node_host));
	r->node_port = addr->port;
}

void rconn_close(struct rconn *r)
{
	if (r->c)
		redisFree(r->c);
	r->c = NULL;
	/* ids are per server: a stale one could name someone else's client after a
	 * restart or a failover (worker_unblock would end their BLMOVE) */
	r->client_id = 0;
}

/* One command while connecting: 0, or -1 with why ("<what> failed: <reply or error>"). */
static int setup_cmd(struct rconn *r, redisReply **out, char *why, size_t whylen,
		     const char *what, const char *fmt, ...)
{
	va_list ap;
	redisReply *rep;

	va_start(ap, fmt);
	rep = redisvCommand(r->c, fmt, ap);
	va_end(ap);
	if (!rep || rep->type == REDIS_REPLY_ERROR) {
		snprintf(why, whylen, "%s failed: %.200s", what, rep ? rep->str : r->c->errstr);
		if (rep)
			freeReplyObject(rep);
		return -1;
	}
	if (out)
		*out = rep;
	else
		freeReplyObject(rep);
	return 0;
}

/* Logs the primary a sentinel named, once per change in the process. */
static void primary_found(const struct rconn *r, const char *via)
{
	char now_at[300];

	hostport(now_at, sizeof(now_at), r->node_host, r->node_port);
	pthread_mutex_lock(&g_primary_mu);
	if (strcmp(g_primary, now_at) != 0) {
		util_strlcpy(g_primary, now_at, sizeof(g_primary));
		log_info(NULL, NULL, "Redis primary for %s is %s (via sentinel %s)",
			 r->addr.master_name, now_at, via);
	}
	pthread_mutex_unlock(&g_primary_mu);
}

static int try_connect(struct rconn *r, char *why, size_t whylen)
{
	char via[300] = "", node[300];
	redisReply *rep = NULL;

	metrics_redis_attempt(); /* GET /healthz: waiting for Redis is not being stuck */
	if (r->addr.nsentinels &&
	    sentinel_resolve(&r->addr, r->node_host, sizeof(r->node_host), &r->node_port, via,
			     sizeof(via), why, whylen) != 0)
		return -1;
	r->c = connect_node(r->node_host, r->node_port,
			    !r->addr.nsentinels && r->addr.unix_path[0] ? r->addr.unix_path : NULL,
			    r->timeout_ms, r->addr.tls,
			    r->addr.tls_server_name[0] ? r->addr.tls_server_name : NULL, why, whylen);
	if (!r->c)
		goto fail;
	if (r->addr.password[0]) {
		int bad = r->addr.user[0]
			? setup_cmd(r, NULL, why, whylen, "AUTH", "AUTH %s %s", r->addr.user,
				    r->addr.password)
			: setup_cmd(r, NULL, why, whylen, "AUTH", "AUTH %s", r->addr.password);
		if (bad)
			goto fail;
	}
	/* A reconnect loop to a local port nobody listens on can pick that very port as its
	 * source and connect to itself (TCP simultaneous open): every command would then be
	 * "answered" by its own echo. A real server answers PING with PONG. */
	rep = redisCommand(r->c, "PING");
	if (!rep || rep->type != REDIS_REPLY_STATUS || strcmp(rep->str, "PONG") != 0) {
		snprintf(why, whylen, "no PONG to PING (%s)",
			 rep ? "not a Redis server, or a self-connected socket" : r->c->errstr);
		goto fail;
	}
	freeReplyObject(rep);
	rep = NULL;
	if (r->addr.db && setup_cmd(r, NULL, why, whylen, "SELECT", "SELECT %d", r->addr.db) != 0)
		goto fail;
	if (r->want_client_id) {
		if (setup_cmd(r, &rep, why, whylen, "CLIENT ID", "CLIENT ID") != 0)
			goto fail;
		r->client_id = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
		freeReplyObject(rep);
		rep = NULL;
	}
	if (r->addr.nsentinels) {
		/* a sentinel's view lags a failover: the node itself says what it is */
		if (setup_cmd(r, &rep, why, whylen, "ROLE", "ROLE") != 0)
			goto fail;
		if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
		    rep->element[0]->type != REDIS_REPLY_STRING ||
		    strcmp(rep->element[0]->str, "master") != 0) {
			snprintf(why, whylen, "%s, named by sentinel %s, is not a primary (ROLE: %.20s)",
				 node_str(r, node, sizeof(node)), via,
				 rep->type == REDIS_REPLY_ARRAY && rep->elements &&
						 rep->element[0]->type == REDIS_REPLY_STRING
					 ? rep->element[0]->str
					 : "?");
			goto fail;
		}
		freeReplyObject(rep);
		rep = NULL;
		primary_found(r, via);
	}
	return 0;
fail:
	if (rep)
		freeReplyObject(rep);
	rconn_close(r);
	return -1;
}

/* The context died: a reply may have gone with it (counted in drops). */
static void conn_lost(struct rconn *r)
{
	log_warn(NULL, NULL, "%s: Redis connection lost: %s", r->who, r->c->errstr);
	rconn_close(r);
	r->lost = 1;
	r->drops++;
}

int rconn_ensure(struct rconn *r)
{
	char why[1024], node[300];
	int logged = 0;

	if (r->addr.nsentinels)
		sentinel_events(&r->addr);
	if (r->c && !r->c->err) {
		if (r->addr.nsentinels)
			sentinel_watch(r);
		if (r->gen == atomic_load(&g_gen))
			return 0;
		/* another rconn found the node demoted, or the sentinels name another primary:
		 * reconnect (after the demotion's pause, if it was one) */
		int64_t until = atomic_load(&g_pause_until_ms);
		if (until > r->pause_until_ms)
			r->pause_until_ms = until;
		note(r, LOG_INFO, "%s: leaving Redis %s: %s; reconnecting", r->who,
		     node_str(r, node, sizeof(node)),
		     r->addr.nsentinels ? "a sentinel announced a failover or names another "
					  "primary, or another connection of this process found "
					  "it demoted"
					: "another connection of this process found it demoted");
		rconn_close(r);
		r->drops++;
		r->demoted = 1;
	}
	if (r->c)
		conn_lost(r);
	if (sleep_until(r, r->pause_until_ms) != 0)
		return -1;
	while (!stopped(r)) {
		unsigned long gen;
		if (r->addr.nsentinels && failover_wait(r) != 0)
			break;
		gen = atomic_load(&g_gen);
		if (try_connect(r, why, sizeof(why)) == 0) {
			r->gen = gen;
			if (logged || r->backoff_ms || r->lost)
				log_info(NULL, NULL, "%s: reconnected to Redis %s", r->who,
					 node_str(r, node, sizeof(node)));
			else if (r->demoted && util_monotonic_ms() >= r->next_back_ms) {
				log_info(NULL, NULL, "%s: reconnected to Redis %s", r->who,
					 node_str(r, node, sizeof(node)));
				r->next_back_ms = util_monotonic_ms() + NOTE_EVERY_MS;
			}
			r->backoff_ms = 0;
			r->lost = 0;
			r->demoted = 0;
			return 0;
		}
		r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : 100;
		if (r->backoff_ms > RCONN_BACKOFF_MAX_MS)
			r->backoff_ms = RCONN_BACKOFF_MAX_MS;
		if (!logged || r->backoff_ms == RCONN_BACKOFF_MAX_MS) {
			if (r->addr.nsentinels)
				snprintf(node, sizeof(node), "primary for %s", r->addr.master_name);
			else
				node_str(r, node, sizeof(node));
			log_warn(NULL, NULL, "%s: Redis %s unreachable (%s); retrying in %ld ms",
				 r->who, node, why, r->backoff_ms);
			logged = 1;
		}
		/* sleep in slices so a stop request is seen quickly */
		sleep_until(r, util_monotonic_ms() + r->backoff_ms);
	}
	return -1;
}

/* Sends a formatted command and reads its reply: NULL when the connection failed.
 * Demotion replies drop the connection (on_demoted); LOADING is waited out. */
static redisReply *run(struct rconn *r, const char *cmd, size_t len)
{
	long wait_ms = 100;

	for (;;) {
		void *v = NULL;
		redisReply *rep;
		const char *msg = NULL;
		char node[300];

		if (rconn_ensure(r) != 0)
			return NULL;
		if (redisAppendFormattedCommand(r->c, cmd, len) != REDIS_OK ||
		    redisGetReply(r->c, &v) != REDIS_OK || !v) {
			if (v)
				freeReplyObject(v);
			conn_lost(r);
			return NULL;
		}
		rep = v;
		switch (reply_kind(rep, 0, &msg)) {
		case RCONN_ERR_DEMOTED:
			on_demoted(r, msg);
			return rep;
		case RCONN_ERR_LOADING: /* the command did not run: wait, send it again */
			note(r, LOG_WARN, "%s: Redis %s is loading its data set; waiting", r->who,
			     node_str(r, node, sizeof(node)));
			if (sleep_until(r, util_monotonic_ms() + wait_ms) != 0)
				return rep;
			freeReplyObject(rep);
			wait_ms = wait_ms * 2 > 1000 ? 1000 : wait_ms * 2;
			continue;
		case RCONN_ERR_OTHER:
			break;
		}
		return rep;
	}
}

redisReply *rconn_argv(struct rconn *r, int argc, const char **argv, const size_t *lens)
{
	char *cmd = NULL;
	long long len = redisFormatCommandArgv(&cmd, argc, argv, lens);
	redisReply *rep;

	if (len < 0) {
		log_error(NULL, NULL, "%s: a Redis command could not be formatted (out of memory)",
			  r->who);
		return NULL;
	}
	rep = run(r, cmd, (size_t)len);
	redisFreeCommand(cmd);
	return rep;
}

int rconn_argv2(struct rconn *r, int argc1, const char **argv1, const size_t *lens1,
		int argc2, const char **argv2, const size_t *lens2, redisReply **rep1,
		redisReply **rep2)
{
	char *c1 = NULL, *c2 = NULL;
	long long l1 = redisFormatCommandArgv(&c1, argc1, argv1, lens1);
	long long l2 = redisFormatCommandArgv(&c2, argc2, argv2, lens2);
	void *v1 = NULL, *v2 = NULL;
	int rc = -1;

	*rep1 = *rep2 = NULL;
	if (l1 < 0 || l2 < 0) {
		log_error(NULL, NULL, "%s: a Redis command could not be formatted (out of memory)",
			  r->who);
		goto out;
	}
	if (rconn_ensure(r) != 0)
		goto out;
	if (redisAppendFormattedCommand(r->c, c1, (size_t)l1) != REDIS_OK ||
	    redisAppendFormattedCommand(r->c, c2, (size_t)l2) != REDIS_OK ||
	    redisGetReply(r->c, &v1) != REDIS_OK || !v1 || redisGetReply(r->c, &v2) != REDIS_OK ||
	    !v2) {
		if (v1)
			freeReplyObject(v1);
		if (v2)
			freeReplyObject(v2);
		conn_lost(r);
		goto out;
	}
	*rep1 = v1;
	*rep2 = v2;
	rc = 0;
out:
	if (c1)
		redisFreeCommand(c1);
	if (c2)
		redisFreeCommand(c2);
	return rc;
}

redisReply *rconn_cmd(struct rconn *r, const char *fmt, ...)
{
	char *cmd = NULL;
	redisReply *rep;
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = redisvFormatCommand(&cmd, fmt, ap);
	va_end(ap);
	if (len < 0) {
		log_error(NULL, NULL, "%s: a Redis command could not be formatted (bad format or "
			  "out of memory)", r->who);
		return NULL;
	}
	rep = run(r, cmd, (size_t)len);
	redisFreeCommand(cmd);
	return rep;
}

redisReply *rconn_argv_retry(struct rconn *r, int argc, const char **argv, const size_t *lens)
{
	redisReply *rep;
	while (!(rep = rconn_argv(r, argc, argv, lens))) {
		if (stopped(r))
			return NULL;
	}
	return rep;
}

void rconn_bulk_free(struct rconn_bulk *b)
{
	free(b->data);
	b->data = NULL;
}

/* Reads up to n bytes of the reply past hiredis's reader (it has no hook for streaming a
 * bulk), through the context's own read function: recv(2), or SSL_read() with TLS, so the
 * bytes are the decrypted stream either way. The socket's receive timeout
 * (redisSetTimeout) bounds each read (a TLS read that times out fails like a plain one).
 * Returns > 0, or -1 with c->errstr saying why ("Server closed the connection" at EOF);
 * hiredis answers 0 for EINTR: read again. */
static ssize_t raw_read(redisContext *c, char *buf, size_t n)
{
	for (;;) {
		ssize_t k = c->funcs->read(c, buf, n);
		if (k == 0)
			continue;
		return k < 0 ? -1 : k;
	}
}

static int bulk_fail(struct rconn *r, const char *why)
{
	log_warn(NULL, NULL, "%s: Redis connection lost: %s", r->who, why);
	rconn_close(r);
	r->lost = 1;
	r->drops++;
	return -1;
}

int rconn_bulk_bounded(struct rconn *r, int argc, const char **argv, const size_t *lens,
		       size_t max_keep, struct rconn_bulk *out)
{
	char buf[16384], *eol;
	size_t got = 0, have, need, pos;
	long long n;
	int done = 0;
	struct crypto_sha256 sha = {NULL};

	memset(out, 0, sizeof(*out));
	if (rconn_ensure(r) != 0)
		return -1;
	/* nothing may be buffered from an earlier reply: the bytes read below are ours */
	if (r->c->reader->len != r->c->reader->pos)
		return bulk_fail(r, "unexpected buffered reply");
	if (redisAppendCommandArgv(r->c, argc, argv, lens) != REDIS_OK)
		return bulk_fail(r, r->c->errstr);
	while (!done) {
		if (redisBufferWrite(r->c, &done) != REDIS_OK)
			return bulk_fail(r, r->c->errstr);
	}
	/* the first line: "$<len>", "$-1", or "-<error>" */
	for (;;) {
		ssize_t k;
		eol = got >= 2 ? memmem(buf, got, "\r\n", 2) : NULL;
		if (eol)
			break;
		if (got == sizeof(buf))
			return bulk_fail(r, "reply line too long");
		k = raw_read(r->c, buf + got, sizeof(buf) - got);
		if (k < 0)
			return bulk_fail(r, r->c->errstr);
		got += (size_t)k;
	}
	*eol = '\0';
	have = got - (size_t)(eol + 2 - buf); /* bytes of the value already read */
	pos = (size_t)(eol + 2 - buf);
	if (buf[0] == '-') {
		out->type = REDIS_REPLY_ERROR;
		util_strlcpy(out->err, buf + 1, sizeof(out->err));
		return have ? bulk_fail(r, "bytes after an error reply") : 0;
	}
	/* a blocking command that timed out answers a null array ("*-1") in RESP2 */
	if (buf[0] == '*' && strcmp(buf, "*-1") == 0) {
		out->type = REDIS_REPLY_NIL;
		return have ? bulk_fail(r, "bytes after a nil reply") : 0;
	}
	if (buf[0] != '$' || util_parse_ll(buf + 1, &n) != 0 || n < -1)
		return bulk_fail(r, "unexpected reply (not a bulk string)");
	if (n == -1) {
		out->type = REDIS_REPLY_NIL;
		return have ? bulk_fail(r, "bytes after a nil reply") : 0;
	}
	out->type = REDIS_REPLY_STRING;
	out->len = (size_t)n;
	out->kept = out->len <= max_keep;
	if (out->kept)
		out->data = util_xmalloc(out->len + 1);
	else if (crypto_sha256_begin(&sha) != 0)
		return bulk_fail(r, "out of memory");
	need = out->len + 2; /* the value and its CRLF */
	for (size_t off = 0; off < need;) {
		size_t take;
		if (have == 0) {
			size_t want = need - off < sizeof(buf) ? need - off : sizeof(buf);
			ssize_t k = raw_read(r->c, buf, want);
			if (k < 0) {
				crypto_sha256_end(&sha, out->sha256);
				rconn_bulk_free(out);
				return bulk_fail(r, r->c->errstr);
			}
			pos = 0;
			have = (size_t)k;
		}
		take = have;
		if (off < out->len) {
			size_t v = out->len - off < take ? out->len - off : take;
			if (out->kept) {
				memcpy(out->data + off, buf + pos, v);
			} else {
				if (out->head_len < sizeof(out->head)) {
					size_t h = sizeof(out->head) - out->head_len;
					if (h > v)
						h = v;
					memcpy(out->head + out->head_len, buf + pos, h);
					out->head_len += h;
				}
				crypto_sha256_update(&sha, buf + pos, v);
			}
		}
		if (off + take > need) { /* more than this reply: the stream is out of step */
			crypto_sha256_end(&sha, out->sha256);
			rconn_bulk_free(out);
			return bulk_fail(r, "bytes after a bulk reply");
		}
		off += take;
		pos += take;
		have = 0;
	}
	if (out->kept)
		out->data[out->len] = '\0';
	else
		crypto_sha256_end(&sha, out->sha256);
	return 0;
}
