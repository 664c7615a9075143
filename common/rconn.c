/* rconn.c — REDIS_URL parsing, connect/auth/select, reconnection with backoff. */
#include "rconn.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	while (!(r->stop && *r->stop)) {
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
		for (long slept = 0; slept < r->backoff_ms && !(r->stop && *r->stop); slept += 50)
			util_sleep_ms(50);
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
		if (r->stop && *r->stop)
			return NULL;
	}
	return rep;
}
