/* rconn.h — one Redis connection per thread, from REDIS_URL, that reconnects with
 * backoff. A hiredis context with err set is dead: it is freed and replaced. */
#ifndef KIE_RCONN_H
#define KIE_RCONN_H

#include <signal.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

struct rconn_addr {
	char host[256];      /* without IPv6 brackets: "::1", "fe80::1%eth0" */
	int port;            /* 1..65535, default 6379 */
	char unix_path[512]; /* set for unix:// (then host and port are unused) */
	char user[128];      /* ACL user name, at most 127 bytes; "" for the default user */
	char password[256];  /* at most 255 bytes; "" for none (no AUTH); never printed */
	int db;              /* 0..1000 */
};

/* Parses REDIS_URL with libcurl's URL API:
 *   redis://[[user]:password@]host[:port][/db]   host may be an IPv6 literal in brackets
 *   unix:///path/to/redis.sock[?db=N]
 * User and password are percent-decoded (a '@', ':' or '/' in them is written %40, %3A,
 * %2F). A user part with no password part (redis://secret@host) is the password, as
 * redis-cli reads it. password, when non-NULL and non-empty (REDIS_PASSWORD_FILE), replaces
 * the URL's password; the URL's user part is then the ACL user name. rediss:// is refused
 * (TLS is not built in). Returns 0, or -1 with err naming REDIS_URL and the problem; err
 * never quotes the URL, the user name or the password, and out is left zeroed. */
int rconn_parse_url(const char *url, const char *password, struct rconn_addr *out, char *err,
		    size_t errlen);

struct rconn {
	redisContext *c;
	struct rconn_addr addr;
	long timeout_ms;
	const volatile sig_atomic_t *stop; /* when set, reconnect gives up */
	long backoff_ms;
	int lost;                           /* a connection died: log when it is back */
	unsigned long drops;                /* connections lost so far (a reply may be lost) */
	char who[64];                       /* thread name for logs */
};

/* Initializes (does not connect). stop may be NULL. */
void rconn_init(struct rconn *r, const struct rconn_addr *addr, long timeout_ms,
		const volatile sig_atomic_t *stop, const char *who);

/* Makes sure r->c is a live context, reconnecting with backoff (100 ms doubling to 5 s)
 * until it succeeds or *stop is set. Returns 0 or -1 (stopped). */
int rconn_ensure(struct rconn *r);

/* Runs a command with argv; returns the reply (caller frees with freeReplyObject) or NULL
 * when the connection failed (the context is dropped; the next call reconnects). A Redis
 * error reply is returned as a reply of type REDIS_REPLY_ERROR, not NULL. */
redisReply *rconn_argv(struct rconn *r, int argc, const char **argv, const size_t *lens);
redisReply *rconn_cmd(struct rconn *r, const char *fmt, ...);

/* Like rconn_argv, but on a connection failure reconnects and retries until it gets a
 * reply or *stop is set (then NULL). Use for steps that must not be skipped. */
redisReply *rconn_argv_retry(struct rconn *r, int argc, const char **argv, const size_t *lens);

void rconn_close(struct rconn *r);

#endif
