/* rconn.h — one Redis connection per thread, from REDIS_URL, that reconnects with
 * backoff. A hiredis context with err set is dead: it is freed and replaced. */
#ifndef KIE_RCONN_H
#define KIE_RCONN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

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

/* The longest pause between reconnection attempts (rconn_ensure backs off 100 ms,
 * doubling, up to this). */
#define RCONN_BACKOFF_MAX_MS 5000

struct rconn {
	redisContext *c;
	struct rconn_addr addr;
	long timeout_ms;
	const volatile sig_atomic_t *stop; /* when set, reconnect gives up */
	long backoff_ms;
	int lost;                           /* a connection died: log when it is back */
	unsigned long drops;                /* connections lost so far (a reply may be lost) */
	char who[64];                       /* thread name for logs */
	int64_t deadline_ms;                /* monotonic ms after which reconnecting gives up; 0: none */
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

/* A reply that is one bulk string, read without ever holding more of it than a cap:
 * a list element can be up to 512 MB, and a worker must not be made to allocate that
 * (or die trying) because a producer pushed it. */
#define RCONN_HEAD_BYTES 4096
struct rconn_bulk {
	int type;           /* REDIS_REPLY_STRING, REDIS_REPLY_NIL or REDIS_REPLY_ERROR */
	char *data;         /* the whole value plus a NUL when len <= max_keep, else NULL;
			     * caller frees (rconn_bulk_free) */
	size_t len;         /* the value's full length */
	int kept;           /* data holds it */
	char head[RCONN_HEAD_BYTES]; /* when not kept: its first head_len bytes ... */
	size_t head_len;
	char sha256[65];    /* ... and the SHA-256 of all of it */
	char err[256];      /* the error reply's text */
};

/* Sends a command whose reply is a bulk string or nil (BLMOVE, LINDEX, ...) and streams
 * the reply: up to max_keep bytes are kept, a longer value only leaves its length, head
 * and SHA-256 (memory: max_keep plus 16 KiB, whatever the value's size). Returns 0 with
 * out filled, or -1 when the connection failed (dropped; the next call reconnects). */
int rconn_bulk_bounded(struct rconn *r, int argc, const char **argv, const size_t *lens,
		       size_t max_keep, struct rconn_bulk *out);
void rconn_bulk_free(struct rconn_bulk *b);

void rconn_close(struct rconn *r);

#endif
