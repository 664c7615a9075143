/* rconn.h — one Redis connection per thread, from REDIS_URL, that reconnects with
 * backoff. A hiredis context with err set is dead: it is freed and replaced. */
#ifndef KIE_RCONN_H
#define KIE_RCONN_H

#include <signal.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

struct rconn_addr {
	char host[256];
	int port;
	char unix_path[512];
	char user[128];
	char password[256]; /* never printed */
	int db;
};

/* Parses redis://[[user]:password@]host[:port][/db] or unix:///path[?db=N].
 * Returns 0 or -1 with err naming REDIS_URL and the problem. */
int rconn_parse_url(const char *url, struct rconn_addr *out, char *err, size_t errlen);

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
