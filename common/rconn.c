/* rconn.c — REDIS_URL parsing, connect/auth/select, reconnection with backoff. */
#include "rconn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "crypto.h"
#include "log.h"
#include "util.h"

int rconn_parse_url(const char *url, struct rconn_addr *o, char *err, size_t errlen)
{
	memset(o, 0, sizeof(*o));
	o->port = 6379;
	if (strncmp(url, "unix://", 7) == 0) {
		const char *p = url + 7, *q = strchr(p, '?');
		size_t n = q ? (size_t)(q - p) : strlen(p);
		if (!n || n >= sizeof(o->unix_path)) {
			snprintf(err, errlen, "REDIS_URL: \"%s\" has no socket path", url);
			return -1;
		}
		memcpy(o->unix_path, p, n);
		if (q && strncmp(q, "?db=", 4) == 0) {
			long long db;
			if (util_parse_ll(q + 4, &db) != 0 || db < 0 || db > 1000) {
				snprintf(err, errlen, "REDIS_URL: db in \"%s\" is not a number", url);
				return -1;
			}
			o->db = (int)db;
		}
		return 0;
	}
	if (strncmp(url, "redis://", 8) != 0) {
		snprintf(err, errlen, "REDIS_URL: \"%s\" must start with redis:// or unix:// "
			 "(rediss:// needs TLS, which hiredis 0.14 lacks)", url);
		return -1;
	}
	const char *p = url + 8, *at = strrchr(p, '@');
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		if (colon) {
			snprintf(o->user, sizeof(o->user), "%.*s", (int)(colon - p), p);
			snprintf(o->password, sizeof(o->password), "%.*s", (int)(at - colon - 1),
				 colon + 1);
		} else {
			snprintf(o->password, sizeof(o->password), "%.*s", (int)(at - p), p);
		}
		p = at + 1;
	}
	const char *slash = strchr(p, '/');
	size_t hp = slash ? (size_t)(slash - p) : strlen(p);
	char hostport[300];
	if (hp == 0 || hp >= sizeof(hostport)) {
		snprintf(err, errlen, "REDIS_URL: no host in it");
		return -1;
	}
	memcpy(hostport, p, hp);
	hostport[hp] = '\0';
	char *colon = strrchr(hostport, ':');
	if (colon && !strchr(hostport, ']')) {
		long long port;
		*colon = '\0';
		if (util_parse_ll(colon + 1, &port) != 0 || port < 1 || port > 65535) {
			snprintf(err, errlen, "REDIS_URL: port \"%s\" is not 1..65535", colon + 1);
			return -1;
		}
		o->port = (int)port;
	}
	util_strlcpy(o->host, hostport, sizeof(o->host));
	if (slash && slash[1]) {
		long long db;
		if (util_parse_ll(slash + 1, &db) != 0 || db < 0 || db > 1000) {
			snprintf(err, errlen, "REDIS_URL: database \"%s\" is not a number", slash + 1);
			return -1;
		}
		o->db = (int)db;
	}
	return 0;
}

void rconn_init(struct rconn *r, const struct rconn_addr *addr, long timeout_ms,
		const volatile sig_atomic_t *stop, const char *who)
{
	memset(r, 0, sizeof(*r));
	r->addr = *addr;
	r->timeout_ms = timeout_ms;
	r->stop = stop;
	util_strlcpy(r->who, who ? who : "redis", sizeof(r->who));
}

void rconn_close(struct rconn *r)
{
	if (r->c)
		redisFree(r->c);
	r->c = NULL;
}

static int try_connect(struct rconn *r, char *why, size_t whylen)
{
	struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
	redisReply *rep;

	if (r->addr.unix_path[0])
		r->c = redisConnectUnixWithTimeout(r->addr.unix_path, tv);
	else
		r->c = redisConnectWithTimeout(r->addr.host, r->addr.port, tv);
	if (!r->c || r->c->err) {
		snprintf(why, whylen, "%s", r->c ? r->c->errstr : "out of memory");
		goto fail;
	}
	redisSetTimeout(r->c, tv);
	redisEnableKeepAlive(r->c);
	if (r->addr.password[0]) {
		if (r->addr.user[0])
			rep = redisCommand(r->c, "AUTH %s %s", r->addr.user, r->addr.password);
		else
			rep = redisCommand(r->c, "AUTH %s", r->addr.password);
		if (!rep || rep->type == REDIS_REPLY_ERROR) {
			snprintf(why, whylen, "AUTH failed: %s",
				 rep ? rep->str : r->c->errstr);
			if (rep)
				freeReplyObject(rep);
			goto fail;
		}
		freeReplyObject(rep);
	}
	/* A reconnect loop to a local port nobody listens on can pick that very port as its
	 * source and connect to itself (TCP simultaneous open): every command would then be
	 * "answered" by its own echo. A real server answers PING with PONG. */
	rep = redisCommand(r->c, "PING");
	if (!rep || rep->type != REDIS_REPLY_STATUS || strcmp(rep->str, "PONG") != 0) {
		snprintf(why, whylen, "no PONG to PING (%s)",
			 rep ? "not a Redis server, or a self-connected socket" : r->c->errstr);
		if (rep)
			freeReplyObject(rep);
		goto fail;
	}
	freeReplyObject(rep);
	if (r->addr.db) {
		rep = redisCommand(r->c, "SELECT %d", r->addr.db);
		if (!rep || rep->type == REDIS_REPLY_ERROR) {
			snprintf(why, whylen, "SELECT %d failed", r->addr.db);
			if (rep)
				freeReplyObject(rep);
			goto fail;
		}
		freeReplyObject(rep);
	}
	return 0;
fail:
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
	char why[256];
	int logged = 0;

	if (r->c && !r->c->err)
		return 0;
	if (r->c)
		conn_lost(r);
	while (!(r->stop && *r->stop) &&
	       !(r->deadline_ms && util_monotonic_ms() >= r->deadline_ms)) {
		if (try_connect(r, why, sizeof(why)) == 0) {
			if (logged || r->backoff_ms || r->lost)
				log_info(NULL, NULL, "%s: reconnected to Redis", r->who);
			r->backoff_ms = 0;
			r->lost = 0;
			return 0;
		}
		r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : 100;
		if (r->backoff_ms > 5000)
			r->backoff_ms = 5000;
		if (!logged || r->backoff_ms == 5000) {
			log_warn(NULL, NULL, "%s: Redis %s:%d unreachable (%s); retrying in %ld ms",
				 r->who, r->addr.unix_path[0] ? r->addr.unix_path : r->addr.host,
				 r->addr.port, why, r->backoff_ms);
			logged = 1;
		}
		/* sleep in slices so a stop request is seen quickly */
		for (long slept = 0; slept < r->backoff_ms && !(r->stop && *r->stop); slept += 50) {
			if (r->deadline_ms && util_monotonic_ms() >= r->deadline_ms)
				break;
			util_sleep_ms(50);
		}
	}
	return -1;
}

redisReply *rconn_argv(struct rconn *r, int argc, const char **argv, const size_t *lens)
{
	redisReply *rep;
	if (rconn_ensure(r) != 0)
		return NULL;
	rep = redisCommandArgv(r->c, argc, argv, lens);
	if (!rep)
		conn_lost(r);
	return rep;
}

redisReply *rconn_cmd(struct rconn *r, const char *fmt, ...)
{
	redisReply *rep;
	va_list ap;
	if (rconn_ensure(r) != 0)
		return NULL;
	va_start(ap, fmt);
	rep = redisvCommand(r->c, fmt, ap);
	va_end(ap);
	if (!rep)
		conn_lost(r);
	return rep;
}

redisReply *rconn_argv_retry(struct rconn *r, int argc, const char **argv, const size_t *lens)
{
	redisReply *rep;
	while (!(rep = rconn_argv(r, argc, argv, lens))) {
		if ((r->stop && *r->stop) ||
		    (r->deadline_ms && util_monotonic_ms() >= r->deadline_ms))
			return NULL;
	}
	return rep;
}

void rconn_bulk_free(struct rconn_bulk *b)
{
	free(b->data);
	b->data = NULL;
}

/* Reads up to n bytes of the reply straight from the socket (hiredis 0.14 has no hook
 * for streaming a bulk; with TLS this becomes c->funcs->read). The socket's receive
 * timeout (redisSetTimeout) bounds each read. */
static ssize_t raw_read(redisContext *c, char *buf, size_t n)
{
	for (;;) {
		ssize_t k = read(c->fd, buf, n);
		if (k < 0 && errno == EINTR)
			continue;
		return k;
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
		if (k <= 0)
			return bulk_fail(r, k == 0 ? "closed by the server" : strerror(errno));
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
			if (k <= 0) {
				crypto_sha256_end(&sha, out->sha256);
				rconn_bulk_free(out);
				return bulk_fail(r, k == 0 ? "closed by the server" : strerror(errno));
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
